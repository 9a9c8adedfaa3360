/*  =========================================================================
    sm_rooms - rooms, members, invitations and room timelines
    =========================================================================
*/

#include "sm_store.h"
#include "pl_body.h"
#include "st_list.h"
#include "sm_append.h"
#include "sm_common.h"
#include "st_reply.h"
#include "sm_conn.h"
#include "sm_markers.h"
#include "sm_rooms.h"
#include "sm_changes.h"
#include "st_reactions.h"
#include "sm_users.h"
#include "sm_words.h"
#include "sm_files.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  --------------------------------------------------------------------------
//  Rooms, members, invitations and timelines
//
//  rooms     {_id: ObjectId, name, name_lower, created_at (BSON date),
//             users: [member names as registered], owner,
//             metadata: {description, settings: {is_private, max_participants}},
//             invited: [names as registered], last_seq,
//             banned: [names as registered] (schema version 10; absent: none)}
//                                  unique index on name_lower; index on users
//  messages  {_id: ObjectId, room (name_lower), seq, kind, user,
//             ts (BSON date), text | event, mentions?, mentioned?, by?,
//             schema 9: reply_to?, edited?, deleted?, reactions?
//             [{emoji, user, key, at, since}], target?, emoji?, on?}
//                                  unique index on (room, seq); index on
//                                  (room, mentioned, seq)
//  markers   the members' read markers: sm_markers.h
//
//  A membership change is one conditional update of the room's document,
//  atomic on any server: the filter carries the checks (not a member yet,
//  fewer than max_participants members, still invited), so concurrent
//  joins can never exceed the limit. Its timeline entry is a second
//  document: see README.md for what that means without transactions.



//  Room administration's (schema version 10), at the end of the file
static bool s_refuse_banned (sm_pending_t *pending, const bson_t *room, const char *user);
static int s_member_ban (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                         bson_error_t *error);


//  The room map of proto/STORE.md from a room's document (borrowing its
//  strings); joined is added when given; last_seq < 0 takes the document's
static st_room_t
s_room_map (const bson_t *room, const bool *joined, int64_t last_seq)
{
    if (last_seq < 0)
        last_seq = sm_bson_int (room, "last_seq", 0);
    int64_t max_participants = sm_bson_int (room, "metadata.settings.max_participants", 0);
    st_room_t map = {
        .name = sm_bson_st_text (room, "name"),
        .description = sm_bson_st_text (room, "metadata.description"),
        .is_private = sm_bson_bool (room, "metadata.settings.is_private"),
        .max_participants = max_participants > 0 ? (uint64_t) max_participants : 0,
        .owner = sm_bson_st_text (room, "owner"),
        .created_at = sm_bson_int (room, "created_at", 0),
        .members = sm_bson_array_count (room, "users"),
        .last_seq = last_seq > 0 ? (uint64_t) last_seq : 0,
        .active_at = sm_bson_int (room, "active_at", 0),
        .joined = joined ? *joined : -1
    };
    return map;
}

static void
s_pack_room (msgpack_packer *packer, const bson_t *room, const bool *joined, int64_t last_seq)
{
    st_room_t map = s_room_map (room, joined, last_seq);
    st_reply_room (packer, &map);
}

//  Packs a timeline entry from its document
void
sm_pack_entry (msgpack_packer *packer, const bson_t *document)
{
    msgpack_sbuffer mentions;
    msgpack_sbuffer_init (&mentions);
    st_entry_t entry = {
        .seq = (uint64_t) sm_bson_int (document, "seq", 0),
        .user = sm_bson_st_text (document, "user"),
        .ts = sm_bson_int (document, "ts", 0),
        .text = sm_bson_st_text (document, "text"),
        .event = sm_bson_st_text (document, "event"),
        .nonce = sm_bson_nonce (document)
    };
    if (bson_has_field (document, "by"))
        entry.by = sm_bson_st_text (document, "by");
    st_reactions_t *reactions;
    sm_changes_read (document, entry.seq, &entry.change, &reactions);
    sm_entry_mentions_read (document, &mentions, &entry);
    st_reply_entry (packer, &entry);
    st_reactions_destroy (&reactions);
    msgpack_sbuffer_destroy (&mentions);
}

//  The document of a timeline entry of the room whose lower-cased name is
//  room_key
void
sm_build_entry (const char *room_key, const st_entry_t *entry, bson_t *document)
{
    bson_oid_t oid;
    bson_oid_init (&oid, NULL);
    BSON_APPEND_OID (document, "_id", &oid);
    BSON_APPEND_UTF8 (document, "room", room_key);
    BSON_APPEND_INT64 (document, "seq", (int64_t) entry->seq);
    BSON_APPEND_UTF8 (document, "kind", st_kind_name (entry->change.kind));
    bson_append_utf8 (document, "user", 4, entry->user.data, (int) entry->user.size);
    BSON_APPEND_DATE_TIME (document, "ts", entry->ts);
    if (entry->change.kind == ST_KIND_SYSTEM)
        bson_append_utf8 (document, "event", 5, entry->event.data, (int) entry->event.size);
    else
    if (entry->text.data)
        bson_append_utf8 (document, "text", 4, entry->text.data, (int) entry->text.size);
    //  A message is searched by its words (schema version 12)
    if (entry->change.kind == ST_KIND_MESSAGE)
        sm_words_append (document, "words", entry->text.data, entry->text.size);
    if (entry->by.data)
        bson_append_utf8 (document, "by", 2, entry->by.data, (int) entry->by.size);
    sm_changes_build (&entry->change, document);
    if (entry->nonce.data) {
        char sender [ST_NAME_MAX + 1];
        st_text_lower (entry->user, sender);
        sm_append_nonce (document, sender, entry->nonce);
    }
    sm_entry_mentions_build (entry, document);
}

//  The room's document, the seed's shape
static void
s_build_room (const sm_pending_t *pending, const char *owner, bson_t *room)
{
    bson_oid_t oid;
    bson_oid_init (&oid, NULL);
    BSON_APPEND_OID (room, "_id", &oid);
    bson_append_utf8 (room, "name", 4, pending->room.data, (int) pending->room.size);
    BSON_APPEND_UTF8 (room, "name_lower", pending->room_key);
    //  A BSON date: exact to the millisecond of the contract's time, ordered,
    //  and shown by every MongoDB tool as ISODate("2024-06-15T12:34:56Z")
    BSON_APPEND_DATE_TIME (room, "created_at", pending->created_at);
    bson_t users, metadata, settings, invited;
    BSON_APPEND_ARRAY_BEGIN (room, "users", &users);
    BSON_APPEND_UTF8 (&users, "0", owner);
    bson_append_array_end (room, &users);
    BSON_APPEND_UTF8 (room, "owner", owner);
    BSON_APPEND_DOCUMENT_BEGIN (room, "metadata", &metadata);
    bson_append_utf8 (&metadata, "description", 11,
                      pending->description.data ? pending->description.data : "",
                      (int) pending->description.size);
    BSON_APPEND_DOCUMENT_BEGIN (&metadata, "settings", &settings);
    BSON_APPEND_BOOL (&settings, "is_private", pending->is_private);
    BSON_APPEND_INT64 (&settings, "max_participants", (int64_t) pending->max_participants);
    bson_append_document_end (&metadata, &settings);
    bson_append_document_end (room, &metadata);
    BSON_APPEND_ARRAY_BEGIN (room, "invited", &invited);
    bson_append_array_end (room, &invited);
    BSON_APPEND_INT64 (room, "last_seq", 0);
    BSON_APPEND_DATE_TIME (room, "active_at", pending->created_at);
}

//  The room whose lower-cased name is key, into room (empty). Returns 1 if
//  found, 0 if not, -1 with error set.
static int
s_find_room (sm_store_t *self, const char *key, bson_t *room, bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("name_lower", BCON_UTF8 (key));
    int rc = sm_find_one (self, self->rooms, filter, NULL, room, error);
    bson_destroy (filter);
    return rc;
}

//  Whether the room's timeline holds the entry's seq: 1, 0, or -1
static int
s_seq_taken (sm_store_t *self, const sm_pending_t *pending, bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("room", BCON_UTF8 (pending->room_key),
                               "seq", BCON_INT64 ((int64_t) pending->entry.seq));
    bson_t *projection = BCON_NEW ("seq", BCON_INT32 (1));
    bson_t found = BSON_INITIALIZER;
    int rc = sm_find_one (self, self->messages, filter, projection, &found, error);
    bson_destroy (&found);
    bson_destroy (projection);
    bson_destroy (filter);
    return rc;
}

//  The seq of the room's newest entry, 0 for none, from the timeline's
//  index (one key read). Returns 0, or -1 with error set.
static int
s_newest_seq (sm_store_t *self, const char *key, int64_t *seq_p, bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("room", BCON_UTF8 (key));
    bson_t *opts = BCON_NEW ("sort", "{", "seq", BCON_INT32 (-1), "}",
                             "limit", BCON_INT64 (1), "singleBatch", BCON_BOOL (true),
                             "hint", BCON_UTF8 (SM_TIMELINE_INDEX),
                             "projection", "{", "seq", BCON_INT32 (1), "}");
    bson_t found = BSON_INITIALIZER;
    int rc = sm_find (self, self->messages, filter, opts, sm_keep_first, &found, error);
    *seq_p = sm_bson_int (&found, "seq", 0);
    bson_destroy (&found);
    bson_destroy (opts);
    bson_destroy (filter);
    return rc;
}

//  Inserts the entry of pending. Returns 0, 1 if its seq is taken, -1 with
//  error set.
static int
s_insert_entry (sm_store_t *self, const sm_pending_t *pending, bson_error_t *error)
{
    bson_t document = BSON_INITIALIZER;
    sm_build_entry (pending->room_key, &pending->entry, &document);
    self->round_trips++;
    bool ok = mongoc_collection_insert_one (self->messages, &document, NULL, NULL, error);
    bson_destroy (&document);
    if (ok)
        return 0;
    return sm_is_duplicate_key (error) ? 1 : -1;
}

//  Runs findAndModify on the rooms; the document after the update, if one
//  matched, goes into room (emptied first). Returns 1 if one matched, 0 if
//  none, -1 with error set.
static int
s_modify_room (sm_store_t *self, const bson_t *query, const bson_t *update, bson_t *room,
               bson_error_t *error)
{
    mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new ();
    mongoc_find_and_modify_opts_set_update (opts, update);
    mongoc_find_and_modify_opts_set_flags (opts, MONGOC_FIND_AND_MODIFY_RETURN_NEW);
    bson_t reply;
    self->round_trips++;
    bool ok = mongoc_collection_find_and_modify_with_opts (self->rooms, query, opts, &reply,
                                                           error);
    int rc = ok ? 0 : -1;
    bson_iter_t iter;
    if (ok && bson_iter_init_find (&iter, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT (&iter)) {
        uint32_t size;
        const uint8_t *data;
        bson_t value;
        bson_iter_document (&iter, &size, &data);
        if (bson_init_static (&value, data, size)) {
            bson_reinit (room);
            bson_concat (room, &value);
            rc = 1;
        }
    }
    bson_destroy (&reply);
    mongoc_find_and_modify_opts_destroy (opts);
    return rc;
}

static void
s_fail_no_room (sm_pending_t *pending)
{
    st_reply_no_room (pending->request, pending->room);
}

static void
s_fail_no_user (sm_pending_t *pending)
{
    st_reply_no_user (pending->request, pending->name);
}

//  Counts the rooms whose field holds name (as registered): the owner or
//  users index. Returns the count, or -1 with error set.
static int64_t
s_count_rooms (sm_store_t *self, const char *field, const char *name, bson_error_t *error)
{
    bson_t *filter = BCON_NEW (field, BCON_UTF8 (name));
    self->round_trips++;
    int64_t count = mongoc_collection_count_documents (self->rooms, filter, NULL, NULL, NULL,
                                                       error);
    bson_destroy (filter);
    return count;
}

//  Fails pending with quota_owned or quota_joined when user (as registered)
//  has reached a quota (0 for none): owns max_owned rooms, or belongs to
//  max_joined. Returns 0, or -1 with error set.
static int
s_check_quotas (sm_store_t *self, sm_pending_t *pending, const char *user, bson_error_t *error)
{
    if (pending->max_owned) {
        int64_t count = s_count_rooms (self, "owner", user, error);
        if (count < 0)
            return -1;
        if (count >= (int64_t) pending->max_owned) {
            sm_fail (pending, "quota_owned", "'%s' owns %" PRId64 " rooms, the most allowed.",
                     user, count);
            return 0;
        }
    }
    if (pending->max_joined) {
        int64_t count = s_count_rooms (self, "users", user, error);
        if (count < 0)
            return -1;
        if (count >= (int64_t) pending->max_joined)
            sm_fail (pending, "quota_joined", "'%s' belongs to %" PRId64 " rooms, the most"
                     " allowed.", user, count);
    }
    return 0;
}

//  A room's timeline, and the files nothing refers to after it (schema
//  version 13): a deleted room's, or one that an interrupted deletion
//  left behind. Returns 0, or -1 with error set when the timeline is not
//  deleted; files it could not settle are left to store.file.sweep.
static int
s_delete_timeline (sm_store_t *self, const char *room_key, bson_error_t *error)
{
    sm_file_id_t *files = NULL;
    uint32_t file_count = 0;
    bson_error_t files_error;
    if (sm_files_of_room (self, room_key, &files, &file_count, &files_error))
        sm_note_failure (self, "finding a room's files", &files_error);
    bson_t *timeline = BCON_NEW ("room", BCON_UTF8 (room_key));
    self->round_trips++;
    bool ok = mongoc_collection_delete_many (self->messages, timeline, NULL, NULL, error);
    bson_destroy (timeline);
    if (ok && sm_files_release (self, files, file_count, &files_error))
        sm_note_failure (self, "deleting a room's files", &files_error);
    free (files);
    return ok ? 0 : -1;
}

int
sm_run_room_create (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                    bson_error_t *error)
{
    char owner [ST_NAME_MAX + 1];
    int rc = sm_find_user_name (self, pending->key, owner, error);
    if (rc <= 0) {
        if (rc == 0)
            sm_fail (pending, "not_found", "No user is named '%.*s' (the owner).",
                     (int) pending->name.size, pending->name.data);
        return rc;
    }
    //  Looked for before inserting: the unique index on name_lower is the
    //  guarantee, but the JavaScript test server does not enforce it
    bson_t found = BSON_INITIALIZER;
    rc = s_find_room (self, pending->room_key, &found, error);
    bson_destroy (&found);
    if (rc != 0) {
        if (rc == 1)
            sm_fail_conflict (pending);
        return rc < 0 ? -1 : 0;
    }
    //  The quotas after the name: a repeated create answers conflict
    if (s_check_quotas (self, pending, owner, error))
        return -1;
    if (!sm_is_live (pending))
        return 0;
    //  A timeline that a delete interrupted midway left behind is not this
    //  room's: cleared first (one index range, usually empty)
    if (s_delete_timeline (self, pending->room_key, error)
    ||  sm_markers_drop (self, pending->room_key, NULL, error))
        return -1;
    bson_t room = BSON_INITIALIZER;
    s_build_room (pending, owner, &room);
    self->round_trips++;
    bool ok = mongoc_collection_insert_one (self->rooms, &room, NULL, NULL, error);
    //  The owner, its first member, has nothing to read yet
    if (ok && sm_marker_set (self, pending->room_key, pending->key, 0, false, error))
        ok = false;
    else
    if (ok) {
        msgpack_pack_map (packer, 1);
        pl_body_pack_str (packer, "room");
        s_pack_room (packer, &room, NULL, -1);
    }
    else
    if (sm_is_duplicate_key (error)) {
        sm_fail_conflict (pending);
        ok = true;
    }
    bson_destroy (&room);
    return ok ? 0 : -1;
}

int
sm_run_room_get (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                 bson_error_t *error)
{
    bson_t room = BSON_INITIALIZER;
    int rc = s_find_room (self, pending->room_key, &room, error);
    if (rc == 1) {
        //  The timeline is the authority on last_seq: the document's copy
        //  can lag behind an append whose second write failed (README.md)
        int64_t newest = 0;
        rc = s_newest_seq (self, pending->room_key, &newest, error);
        if (rc == 0) {
            int64_t stored = sm_bson_int (&room, "last_seq", 0);
            msgpack_pack_map (packer, 1);
            pl_body_pack_str (packer, "room");
            s_pack_room (packer, &room, NULL, newest > stored ? newest : stored);
        }
    }
    else
    if (rc == 0)
        s_fail_no_room (pending);
    bson_destroy (&room);
    return rc < 0 ? -1 : 0;
}

//  A list of rooms being read: each with joined for user, and banned when
//  the user is banned from it
typedef struct {
    st_list_t *list;                //  bounded by its limit and bytes
    const char *user;               //  the user as registered, "" for none
    bool full;                      //  a room was left out: the rest are too
    bool invited;                   //  room.invited: each room says so
} s_room_list_t;

static void
s_on_listed_room (void *arg, const bson_t *document)
{
    s_room_list_t *rooms = (s_room_list_t *) arg;
    if (rooms->full)
        return;
    bool joined = rooms->user && rooms->user [0]
               && sm_bson_array_has (document, "users", rooms->user,
                                     (uint32_t) strlen (rooms->user), NULL);
    //  No user: the operator's list, without 'joined'
    st_room_t map = s_room_map (document, rooms->user ? &joined : NULL, -1);
    map.invited = rooms->invited;
    //  A room the user is banned from: the document's own array, read with
    //  it (no query of its own); a ban makes no member
    map.banned = !joined && rooms->user && rooms->user [0]
              && sm_bson_array_has (document, "banned", rooms->user,
                                    (uint32_t) strlen (rooms->user), NULL);
    st_reply_room (st_list_packer (rooms->list), &map);
    rooms->full = !st_list_push (rooms->list);
}

//  Finds rooms into pending's answer {rooms, more}: at most limit
//  (UINT32_MAX: as many as the bytes allow). Returns 0, or -1 with error set.
static int
s_find_rooms (sm_store_t *self, sm_pending_t *pending, const bson_t *filter,
              const bson_t *opts, const char *user, uint32_t limit, bson_error_t *error)
{
    s_room_list_t rooms = { st_list_new (limit, false), user, false,
                            pending->op == ST_ROOM_INVITED };
    if (!rooms.list) {
        sm_fail (pending, "internal", "The store ran out of memory.");
        return 0;
    }
    int rc = sm_find (self, self->rooms, filter, opts, s_on_listed_room, &rooms, error);
    if (rc == 0)
        st_list_answer (rooms.list, pending->request, "rooms");
    st_list_destroy (&rooms.list);
    return rc;
}

//  Finds a page of rooms into {rooms, more}: at most pending->limit (one
//  more is asked for, to tell whether more remain), each with joined for user
static int
s_find_room_page (sm_store_t *self, sm_pending_t *pending, const bson_t *filter,
                  const bson_t *sort, const char *user, msgpack_packer *packer,
                  bson_error_t *error)
{
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_DOCUMENT (&opts, "sort", sort);
    BSON_APPEND_INT64 (&opts, "limit", (int64_t) pending->limit + 1);
    bson_t projection;
    BSON_APPEND_DOCUMENT_BEGIN (&opts, "projection", &projection);
    BSON_APPEND_INT32 (&projection, "invited", 0);
    bson_append_document_end (&opts, &projection);
    int rc = s_find_rooms (self, pending, filter, &opts, user, pending->limit, error);
    bson_destroy (&opts);
    return rc;
}

//  The documents of a page of rooms, copied (a find's cursor is done with
//  before the counts of each room are asked)
typedef struct {
    bson_t **documents;             //  owned
    uint32_t count;
    uint32_t capacity;
} s_room_docs_t;

static void
s_on_room_doc (void *arg, const bson_t *document)
{
    s_room_docs_t *docs = (s_room_docs_t *) arg;
    if (docs->count < docs->capacity)
        docs->documents [docs->count++] = bson_copy (document);
}

//  Packs a joined room with user's read marker (read_seq, -1 for a member
//  without a marker document, who has read up to the newest entry) and the
//  counts after it: asked only of a room with entries after the marker.
//  Returns 0, or -1 with error set.
static int
s_pack_joined_room (sm_store_t *self, msgpack_packer *packer, const bson_t *room,
                    const char *user, const char *user_key, int64_t read_seq,
                    bson_error_t *error)
{
    bool joined = true;
    st_room_t map = s_room_map (room, &joined, -1);
    char room_key [ST_ROOM_MAX + 1];
    sm_copy_bson_str (room, "name_lower", room_key, sizeof room_key);
    int64_t unread = 0, mentions = 0;
    if (read_seq < 0)
        read_seq = (int64_t) map.last_seq;
    if (read_seq < (int64_t) map.last_seq
    &&  sm_marker_counts (self, room_key, user, user_key, read_seq, &unread, &mentions, error))
        return -1;
    map.has_marker = true;
    map.read_seq = (uint64_t) read_seq;
    map.unread = (uint64_t) unread;
    map.mentions = (uint64_t) mentions;
    st_reply_room (packer, &map);
    return 0;
}

//  room.joined's page: as s_find_room_page, each room with the user's
//  marker and counts
static int
s_find_joined_page (sm_store_t *self, sm_pending_t *pending, const bson_t *filter,
                    const bson_t *sort, const char *user, bson_error_t *error)
{
    bson_t *opts = BCON_NEW ("limit", BCON_INT64 ((int64_t) pending->limit + 1),
                             "projection", "{", "invited", BCON_INT32 (0), "}");
    BSON_APPEND_DOCUMENT (opts, "sort", sort);
    s_room_docs_t docs = { .capacity = pending->limit + 1 };
    docs.documents = (bson_t **) calloc (docs.capacity, sizeof (bson_t *));
    st_list_t *list = st_list_new (pending->limit, false);
    int rc = 0;
    if (!docs.documents || !list)
        sm_fail (pending, "internal", "The store ran out of memory.");
    else
        rc = sm_find (self, self->rooms, filter, opts, s_on_room_doc, &docs, error);
    int64_t *markers = (int64_t *) calloc (docs.capacity, sizeof (int64_t));
    if (rc == 0 && !markers)
        sm_fail (pending, "internal", "The store ran out of memory.");
    if (rc == 0 && markers)
        rc = sm_markers_of (self, pending->key, docs.documents, docs.count, markers, error);
    for (uint32_t index = 0; rc == 0 && list && markers && index < docs.count; index++) {
        rc = s_pack_joined_room (self, st_list_packer (list), docs.documents [index], user,
                                 pending->key, markers [index], error);
        if (rc == 0 && !st_list_push (list))
            break;
    }
    if (rc == 0 && list && docs.documents && markers)
        st_list_answer (list, pending->request, "rooms");
    free (markers);
    for (uint32_t index = 0; index < docs.count; index++)
        bson_destroy (docs.documents [index]);
    free (docs.documents);
    st_list_destroy (&list);
    bson_destroy (opts);
    return rc;
}

//  The rooms the user belongs to, by lower-cased name, after the cursor:
//  the users_name_lower index
int
sm_run_room_joined (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                    bson_error_t *error)
{
    char user [ST_NAME_MAX + 1] = "";
    int rc = sm_find_user_name (self, pending->key, user, error);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        msgpack_pack_map (packer, 2);
        pl_body_pack_str (packer, "rooms");
        msgpack_pack_array (packer, 0);
        pl_body_pack_str (packer, "more");
        msgpack_pack_false (packer);
        return 0;
    }
    bson_t *filter = BCON_NEW ("users", BCON_UTF8 (user),
                               "name_lower", "{", "$gt", BCON_UTF8 (pending->after_key), "}");
    bson_t *sort = BCON_NEW ("name_lower", BCON_INT32 (1));
    rc = s_find_joined_page (self, pending, filter, sort, user, error);
    bson_destroy (sort);
    bson_destroy (filter);
    return rc;
}

//  The private rooms the user is invited to, by lower-cased name, after
//  the cursor: the invited_name_lower index (an invitation is consumed by
//  joining, so none of them is the user's)
int
sm_run_room_invited (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                     bson_error_t *error)
{
    char user [ST_NAME_MAX + 1] = "";
    int rc = sm_find_user_name (self, pending->key, user, error);
    if (rc < 0)
        return -1;
    bson_t *filter = BCON_NEW ("invited", BCON_UTF8 (rc == 1 ? user : ""),
                               "metadata.settings.is_private", BCON_BOOL (true),
                               "name_lower", "{", "$gt", BCON_UTF8 (pending->after_key), "}");
    bson_t *sort = BCON_NEW ("name_lower", BCON_INT32 (1));
    rc = s_find_room_page (self, pending, filter, sort, user, packer, error);
    bson_destroy (sort);
    bson_destroy (filter);
    return rc;
}

//  Public rooms the user is not in, most recently active first, after the
//  cursor (after_active, after): the public_by_active index
int
sm_run_room_public (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                    bson_error_t *error)
{
    char user [ST_NAME_MAX + 1] = "";
    if (sm_find_user_name (self, pending->key, user, error) < 0)
        return -1;
    bson_t filter = BSON_INITIALIZER, condition;
    BSON_APPEND_BOOL (&filter, "metadata.settings.is_private", false);
    if (user [0]) {
        BSON_APPEND_DOCUMENT_BEGIN (&filter, "users", &condition);
        BSON_APPEND_UTF8 (&condition, "$ne", user);
        bson_append_document_end (&filter, &condition);
    }
    if (pending->has_after_active) {
        bson_t *after = BCON_NEW ("$or", "[",
            "{", "active_at", "{", "$lt", BCON_DATE_TIME (pending->after_active), "}", "}",
            "{", "active_at", BCON_DATE_TIME (pending->after_active),
                 "name_lower", "{", "$gt", BCON_UTF8 (pending->after_key), "}", "}",
            "]");
        bson_concat (&filter, after);
        bson_destroy (after);
    }
    bson_t *sort = BCON_NEW ("active_at", BCON_INT32 (-1), "name_lower", BCON_INT32 (1));
    int rc = s_find_room_page (self, pending, &filter, sort, user, packer, error);
    bson_destroy (sort);
    bson_destroy (&filter);
    return rc;
}

//  Public rooms by lower-cased name, from a prefix, after the cursor: one
//  range of the public_by_name index (names are ASCII: every name that
//  starts with the prefix sorts below the prefix followed by DEL)
int
sm_run_room_directory (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                       bson_error_t *error)
{
    char user [ST_NAME_MAX + 1] = "";
    if (sm_find_user_name (self, pending->key, user, error) < 0)
        return -1;
    char end [ST_ROOM_MAX + 2];
    snprintf (end, sizeof end, "%s\x7f", pending->prefix_key);
    bool from_after = pending->after_key [0]
                   && strcmp (pending->after_key, pending->prefix_key) >= 0;
    bson_t filter = BSON_INITIALIZER, range;
    BSON_APPEND_BOOL (&filter, "metadata.settings.is_private", false);
    BSON_APPEND_DOCUMENT_BEGIN (&filter, "name_lower", &range);
    if (from_after)
        BSON_APPEND_UTF8 (&range, "$gt", pending->after_key);
    else
        BSON_APPEND_UTF8 (&range, "$gte", pending->prefix_key);
    if (pending->prefix_key [0])
        BSON_APPEND_UTF8 (&range, "$lt", end);
    bson_append_document_end (&filter, &range);
    bson_t *sort = BCON_NEW ("name_lower", BCON_INT32 (1));
    int rc = s_find_room_page (self, pending, &filter, sort, user, packer, error);
    bson_destroy (sort);
    bson_destroy (&filter);
    return rc;
}

//  store.room.all: every room by lower-cased name after the cursor, for the
//  operator (parleyctl): the name_lower index
int
sm_run_room_all (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                 bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("name_lower", "{", "$gt", BCON_UTF8 (pending->after_key), "}");
    bson_t *sort = BCON_NEW ("name_lower", BCON_INT32 (1));
    int rc = s_find_room_page (self, pending, filter, sort, NULL, packer, error);
    bson_destroy (sort);
    bson_destroy (filter);
    return rc;
}

int
sm_run_room_list (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                  bson_error_t *error)
{
    //  A user that does not exist sees the public rooms
    char user [ST_NAME_MAX + 1] = "";
    int rc = sm_find_user_name (self, pending->key, user, error);
    if (rc < 0)
        return -1;
    bson_t *filter = user [0]
        ? BCON_NEW ("$or", "[", "{", "metadata.settings.is_private", BCON_BOOL (false), "}",
                                "{", "users", BCON_UTF8 (user), "}", "]")
        : BCON_NEW ("metadata.settings.is_private", BCON_BOOL (false));
    bson_t *opts = BCON_NEW ("sort", "{", "name_lower", BCON_INT32 (1), "}",
                             "projection", "{", "invited", BCON_INT32 (0), "}");
    rc = s_find_rooms (self, pending, filter, opts, user, UINT32_MAX, error);
    bson_destroy (opts);
    bson_destroy (filter);
    return rc;
}

int
sm_run_room_delete (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                    bson_error_t *error)
{
    //  The room's document first, in one findAndModify that also gives its
    //  members; then its timeline. A timeline left behind by a failure
    //  between the two is invisible (history asks for the room) and cleared
    //  by the next room.create of the name.
    bson_t *filter = BCON_NEW ("name_lower", BCON_UTF8 (pending->room_key));
    mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new ();
    mongoc_find_and_modify_opts_set_flags (opts, MONGOC_FIND_AND_MODIFY_REMOVE);
    bson_t reply;
    self->round_trips++;
    bool ok = mongoc_collection_find_and_modify_with_opts (self->rooms, filter, opts, &reply,
                                                           error);
    mongoc_find_and_modify_opts_destroy (opts);
    bson_destroy (filter);
    bson_iter_t iter;
    if (ok && bson_iter_init_find (&iter, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT (&iter)) {
        uint32_t size;
        const uint8_t *data;
        bson_t removed;
        bson_iter_document (&iter, &size, &data);
        if (bson_init_static (&removed, data, size)) {
            msgpack_pack_map (packer, 2);
            pl_body_pack_str (packer, "name");
            sm_pack_bson_text (packer, &removed, "name");
            pl_body_pack_str (packer, "members");
            sm_pack_sorted_names (packer, &removed, "users");
        }
        //  The room is gone, which is what the caller asked: ok stands
        bson_error_t timeline_error;
        if (s_delete_timeline (self, pending->room_key, &timeline_error))
            sm_note_failure (self, "deleting a deleted room's timeline", &timeline_error);
        //  Its markers too (room.create of the name clears any left behind)
        if (sm_markers_drop (self, pending->room_key, NULL, &timeline_error))
            sm_note_failure (self, "deleting a deleted room's read markers", &timeline_error);
    }
    else
    if (ok)
        s_fail_no_room (pending);
    bson_destroy (&reply);
    return ok ? 0 : -1;
}

//  member.add, one attempt at a time: what an attempt came to
typedef enum {
    S_JOIN_FAILED = -1,             //  the server failed: error is set
    S_JOIN_REFUSED,                 //  pending is failed (no room, private, full, ...)
    S_JOIN_MEMBER,                  //  a member already: ok, nothing appended
    S_JOIN_ADDED,                   //  our conditional update matched
    S_JOIN_CHANGED                  //  the room changed since we read it
} s_join_t;

//  Reads the room into room, and the user's name as registered into user
//  (once: user is "" until then). Returns 1, 0 with pending failed, or -1
//  with error set.
static int
s_join_read (sm_store_t *self, sm_pending_t *pending, bson_t *room, char *user,
             bson_error_t *error)
{
    bson_reinit (room);
    int rc = s_find_room (self, pending->room_key, room, error);
    if (rc == 0)
        s_fail_no_room (pending);
    if (rc <= 0 || user [0])
        return rc;
    rc = sm_find_user_name (self, pending->key, user, error);
    if (rc == 0)
        s_fail_no_user (pending);
    return rc;
}

//  The room is private and user (as registered) is not its owner
static bool
s_needs_invitation (const bson_t *room, const char *user)
{
    uint32_t owner_size;
    const char *owner = sm_bson_text (room, "owner", &owner_size);
    return sm_bson_bool (room, "metadata.settings.is_private")
        && !sm_same_name (owner, owner_size, user, (uint32_t) strlen (user));
}

//  The checks of member.add on the room as read; the quotas and the seq
//  only on the first attempt. Returns 0 to go on, 1 with pending failed,
//  or -1 with error set.
static int
s_join_judge (sm_store_t *self, sm_pending_t *pending, const bson_t *room, const char *user,
              int attempt, bson_error_t *error)
{
    uint32_t user_size = (uint32_t) strlen (user);
    if (s_refuse_banned (pending, room, user))
        return 1;
    if (s_needs_invitation (room, user)
    &&  !sm_bson_array_has (room, "invited", user, user_size, NULL)) {
        sm_fail (pending, "forbidden", "The room '%.*s' is private and '%s' is not invited.",
                 (int) pending->room.size, pending->room.data, user);
        return 1;
    }
    uint32_t members = sm_bson_array_count (room, "users");
    int64_t max_participants = sm_bson_int (room, "metadata.settings.max_participants", 0);
    if ((int64_t) members >= max_participants) {
        sm_fail (pending, "full", "The room '%.*s' is full (%u of %" PRId64 ").",
                 (int) pending->room.size, pending->room.data, members, max_participants);
        return 1;
    }
    if (attempt > 0)
        return 0;
    if (s_check_quotas (self, pending, user, error))
        return -1;
    if (!sm_is_live (pending))
        return 1;
    int taken = pending->has_entry ? s_seq_taken (self, pending, error) : 0;
    if (taken == 1)
        sm_fail_conflict (pending);
    return taken;
}

//  The conditional update that adds user to the room: the checks again, in
//  the filter, so that it applies only to the room as we judged it. No
//  concurrent join can pass the limit (the element at index max - 1 exists
//  once the room is full). Caller destroys query and update.
static void
s_join_change (const sm_pending_t *pending, const bson_t *room, const char *user,
               bson_t *query, bson_t *update)
{
    int64_t max_participants = sm_bson_int (room, "metadata.settings.max_participants", 0);
    char full_key [32];
    snprintf (full_key, sizeof full_key, "users.%" PRId64, max_participants - 1);
    bson_t condition, operation;
    bson_init (query);
    BSON_APPEND_UTF8 (query, "name_lower", pending->room_key);
    BSON_APPEND_DOCUMENT_BEGIN (query, "users", &condition);
    BSON_APPEND_UTF8 (&condition, "$ne", user);
    bson_append_document_end (query, &condition);
    BSON_APPEND_DOCUMENT_BEGIN (query, full_key, &condition);
    BSON_APPEND_BOOL (&condition, "$exists", false);
    bson_append_document_end (query, &condition);
    //  Not banned meanwhile
    BSON_APPEND_DOCUMENT_BEGIN (query, "banned", &condition);
    BSON_APPEND_UTF8 (&condition, "$ne", user);
    bson_append_document_end (query, &condition);
    if (s_needs_invitation (room, user))
        BSON_APPEND_UTF8 (query, "invited", user);
    bson_init (update);
    BSON_APPEND_DOCUMENT_BEGIN (update, "$push", &operation);
    BSON_APPEND_UTF8 (&operation, "users", user);
    bson_append_document_end (update, &operation);
    //  An invitation is consumed by joining
    BSON_APPEND_DOCUMENT_BEGIN (update, "$pull", &operation);
    BSON_APPEND_UTF8 (&operation, "invited", user);
    bson_append_document_end (update, &operation);
    if (pending->has_entry) {
        BSON_APPEND_DOCUMENT_BEGIN (update, "$max", &operation);
        BSON_APPEND_INT64 (&operation, "last_seq", (int64_t) pending->entry.seq);
        bson_append_document_end (update, &operation);
    }
}

//  One attempt: reads the room, judges it, and adds user with a conditional
//  update; *consumed_p says whether that took an invitation
static s_join_t
s_join_attempt (sm_store_t *self, sm_pending_t *pending, bson_t *room, char *user,
                int attempt, bool *consumed_p, bson_error_t *error)
{
    int rc = s_join_read (self, pending, room, user, error);
    if (rc <= 0)
        return rc < 0 ? S_JOIN_FAILED : S_JOIN_REFUSED;
    uint32_t user_size = (uint32_t) strlen (user);
    if (sm_bson_array_has (room, "users", user, user_size, NULL))
        return S_JOIN_MEMBER;
    rc = s_join_judge (self, pending, room, user, attempt, error);
    if (rc)
        return rc < 0 ? S_JOIN_FAILED : S_JOIN_REFUSED;
    bson_t query, update;
    s_join_change (pending, room, user, &query, &update);
    *consumed_p = sm_bson_array_has (room, "invited", user, user_size, NULL);
    rc = s_modify_room (self, &query, &update, room, error);
    bson_destroy (&query);
    bson_destroy (&update);
    if (rc == 0)
        //  Not matched: the room changed since we read it; judge it again
        self->host->log (self->ctx, PARLEY_LOG_DEBUG,
                         "room '%s' changed while %s was joining it; judging again",
                         pending->room_key, user);
    return rc < 0 ? S_JOIN_FAILED : rc == 1 ? S_JOIN_ADDED : S_JOIN_CHANGED;
}

//  Appends the join's entry. If it cannot be, the membership goes too, so
//  that the request changed nothing (best effort when the server is away).
static s_join_t
s_join_notice (sm_store_t *self, sm_pending_t *pending, const char *user, bool consumed,
               bson_error_t *error)
{
    int rc = s_insert_entry (self, pending, error);
    if (rc == 0)
        return S_JOIN_ADDED;
    bson_t *query = BCON_NEW ("name_lower", BCON_UTF8 (pending->room_key));
    bson_t *update = consumed
        ? BCON_NEW ("$pull", "{", "users", BCON_UTF8 (user), "}",
                    "$addToSet", "{", "invited", BCON_UTF8 (user), "}")
        : BCON_NEW ("$pull", "{", "users", BCON_UTF8 (user), "}");
    bson_error_t undo_error;
    self->round_trips++;
    if (!mongoc_collection_update_one (self->rooms, query, update, NULL, NULL, &undo_error))
        sm_note_failure (self, "undoing a join whose notice failed", &undo_error);
    bson_destroy (query);
    bson_destroy (update);
    if (rc < 0)
        return S_JOIN_FAILED;
    sm_fail_conflict (pending);
    return S_JOIN_REFUSED;
}

//  The new member's read marker: its own join entry, or without one the
//  room's newest entry (a newcomer starts with nothing unread). Returns 0,
//  or -1 with error set (the membership stands: a retried join answers
//  added false, and the member reads from the newest entry).
static int
s_join_marker (sm_store_t *self, sm_pending_t *pending, bson_error_t *error)
{
    int64_t seq = (int64_t) pending->entry.seq;
    if (!pending->has_entry && s_newest_seq (self, pending->room_key, &seq, error))
        return -1;
    return sm_marker_set (self, pending->room_key, pending->key, seq, false, error);
}

int
sm_run_member_add (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                   bson_error_t *error)
{
    char user [ST_NAME_MAX + 1] = "";
    bson_t room = BSON_INITIALIZER;
    bool consumed = false;
    s_join_t outcome = S_JOIN_CHANGED;
    for (int attempt = 0; attempt < SM_JOIN_ATTEMPTS && outcome == S_JOIN_CHANGED; attempt++)
        outcome = s_join_attempt (self, pending, &room, user, attempt, &consumed, error);
    if (outcome == S_JOIN_CHANGED)
        sm_fail (pending, "unavailable", "The room '%.*s' kept changing; try again.",
                 (int) pending->room.size, pending->room.data);
    if (outcome == S_JOIN_ADDED && pending->has_entry)
        outcome = s_join_notice (self, pending, user, consumed, error);
    if (outcome == S_JOIN_ADDED && s_join_marker (self, pending, error))
        outcome = S_JOIN_FAILED;
    if (outcome == S_JOIN_ADDED || outcome == S_JOIN_MEMBER) {
        msgpack_pack_map (packer, 3);
        pl_body_pack_str (packer, "added");
        if (outcome == S_JOIN_ADDED)
            msgpack_pack_true (packer);
        else
            msgpack_pack_false (packer);
        pl_body_pack_str (packer, "members");
        msgpack_pack_uint32 (packer, sm_bson_array_count (&room, "users"));
        pl_body_pack_str (packer, "room");
        s_pack_room (packer, &room, NULL, -1);
    }
    bson_destroy (&room);
    return outcome == S_JOIN_FAILED ? -1 : 0;
}

//  The checks of member.remove: the room exists, the user is a member
//  (their name as registered into member), the notice's seq is free.
//  Returns 1 to go on, 0 with pending failed, or -1 with error set.
static int
s_leave_judge (sm_store_t *self, sm_pending_t *pending, bson_t *room, char *member,
               bson_error_t *error)
{
    int rc = s_find_room (self, pending->room_key, room, error);
    if (rc == 0)
        s_fail_no_room (pending);
    if (rc <= 0)
        return rc;
    if (!sm_bson_array_has (room, "users", pending->name.data, pending->name.size, member)) {
        sm_fail (pending, "not_member", "'%.*s' is not a member of the room '%.*s'.",
                 (int) pending->name.size, pending->name.data,
                 (int) pending->room.size, pending->room.data);
        return 0;
    }
    rc = pending->has_entry ? s_seq_taken (self, pending, error) : 0;
    if (rc == 1)
        sm_fail_conflict (pending);
    return rc < 0 ? -1 : rc == 0;
}

//  Takes member out of the room, conditionally (still a member), with the
//  notice's seq as the room's last. Returns 1, 0 with pending failed (left
//  meanwhile, or the room went), or -1 with error set.
static int
s_leave (sm_store_t *self, sm_pending_t *pending, bson_t *room, const char *member,
         bson_error_t *error)
{
    bson_t *query = BCON_NEW ("name_lower", BCON_UTF8 (pending->room_key),
                              "users", BCON_UTF8 (member));
    bson_t *update = pending->has_entry
        ? BCON_NEW ("$pull", "{", "users", BCON_UTF8 (member), "}",
                    "$max", "{", "last_seq", BCON_INT64 ((int64_t) pending->entry.seq), "}")
        : BCON_NEW ("$pull", "{", "users", BCON_UTF8 (member), "}");
    int rc = s_modify_room (self, query, update, room, error);
    bson_destroy (query);
    bson_destroy (update);
    if (rc == 0)
        sm_fail (pending, "not_member", "'%.*s' is not a member of the room '%.*s'.",
                 (int) pending->name.size, pending->name.data,
                 (int) pending->room.size, pending->room.data);
    return rc;
}

//  Appends the leave's notice. If it cannot be, the member stays, so that
//  nothing changed. Returns 1, 0 with pending failed, or -1 with error set.
static int
s_leave_notice (sm_store_t *self, sm_pending_t *pending, const char *member,
                bson_error_t *error)
{
    int inserted = s_insert_entry (self, pending, error);
    if (inserted == 0)
        return 1;
    bson_t *query = BCON_NEW ("name_lower", BCON_UTF8 (pending->room_key));
    bson_t *update = BCON_NEW ("$addToSet", "{", "users", BCON_UTF8 (member), "}");
    bson_error_t undo_error;
    self->round_trips++;
    if (!mongoc_collection_update_one (self->rooms, query, update, NULL, NULL, &undo_error))
        sm_note_failure (self, "undoing a leave whose notice failed", &undo_error);
    bson_destroy (query);
    bson_destroy (update);
    if (inserted < 0)
        return -1;
    sm_fail_conflict (pending);
    return 0;
}

int
sm_run_member_remove (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                      bson_error_t *error)
{
    if (pending->request->as.member_remove.ban)
        return s_member_ban (self, pending, packer, error);
    bson_t room = BSON_INITIALIZER;
    char member [ST_NAME_MAX + 1];
    int rc = s_leave_judge (self, pending, &room, member, error);
    if (rc == 1)
        rc = s_leave (self, pending, &room, member, error);
    if (rc == 1 && pending->has_entry)
        rc = s_leave_notice (self, pending, member, error);
    if (rc == 1 && sm_markers_drop (self, pending->room_key, pending->key, error))
        rc = -1;
    if (rc == 1)
        st_reply_uint (pending->request, "members", sm_bson_array_count (&room, "users"));
    bson_destroy (&room);
    return rc < 0 ? -1 : 0;
}

int
sm_run_member_list (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                    bson_error_t *error)
{
    bson_t room = BSON_INITIALIZER;
    int rc = s_find_room (self, pending->room_key, &room, error);
    if (rc == 1) {
        msgpack_pack_map (packer, 1);
        pl_body_pack_str (packer, "members");
        sm_pack_sorted_names (packer, &room, "users");
    }
    else
    if (rc == 0)
        s_fail_no_room (pending);
    bson_destroy (&room);
    return rc < 0 ? -1 : 0;
}

int
sm_run_invite_add (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                   bson_error_t *error)
{
    bson_t room = BSON_INITIALIZER;
    char user [ST_NAME_MAX + 1] = "";
    int rc = s_find_room (self, pending->room_key, &room, error);
    if (rc == 0)
        s_fail_no_room (pending);
    else
    if (rc == 1) {
        rc = sm_find_user_name (self, pending->key, user, error);
        if (rc == 0)
            s_fail_no_user (pending);
    }
    if (rc == 1 && s_refuse_banned (pending, &room, user))
        rc = 0;
    if (rc == 1) {
        bool already_member
            = sm_bson_array_has (&room, "users", user, (uint32_t) strlen (user), NULL);
        if (!already_member) {
            //  $addToSet: inviting twice records one invitation
            bson_t *query = BCON_NEW ("name_lower", BCON_UTF8 (pending->room_key));
            bson_t *update = BCON_NEW ("$addToSet", "{", "invited", BCON_UTF8 (user), "}");
            bson_t reply;
            self->round_trips++;
            bool ok = mongoc_collection_update_one (self->rooms, query, update, NULL, &reply,
                                                    error);
            bson_iter_t iter;
            if (ok && bson_iter_init_find (&iter, &reply, "matchedCount")
            &&  bson_iter_as_int64 (&iter) == 0) {
                s_fail_no_room (pending);       //  deleted meanwhile
                rc = 0;
            }
            else
            if (!ok)
                rc = -1;
            bson_destroy (&reply);
            bson_destroy (query);
            bson_destroy (update);
        }
        if (rc == 1) {
            msgpack_pack_map (packer, 2);
            pl_body_pack_str (packer, "user");
            pl_body_pack_str (packer, user);
            pl_body_pack_str (packer, "already_member");
            if (already_member)
                msgpack_pack_true (packer);
            else
                msgpack_pack_false (packer);
        }
    }
    bson_destroy (&room);
    return rc < 0 ? -1 : 0;
}


//  The read marker of the user msg.history names, 0 when not a member:
//  its document, or the room's newest entry for a member without one
static int
s_history_marker (sm_store_t *self, sm_pending_t *pending, bson_error_t *error)
{
    int64_t seq = 0;
    int rc = sm_marker_get (self, pending->room_key, pending->key, &seq, error);
    if (rc == 0) {
        bson_t room = BSON_INITIALIZER;
        rc = s_find_room (self, pending->room_key, &room, error);
        if (rc == 1 && sm_bson_array_has (&room, "users", pending->name.data,
                                          pending->name.size, NULL))
            rc = s_newest_seq (self, pending->room_key, &seq, error);
        bson_destroy (&room);
    }
    pending->read_seq = seq > 0 ? (uint64_t) seq : 0;
    return rc < 0 ? -1 : 0;
}

//  member.read's checks: the room (into room) and the membership. Returns
//  1 to go on, 0 with pending failed, -1 with error set.
static int
s_read_judge (sm_store_t *self, sm_pending_t *pending, bson_t *room, bson_error_t *error)
{
    int rc = s_find_room (self, pending->room_key, room, error);
    if (rc == 0)
        s_fail_no_room (pending);
    if (rc == 1 && !sm_bson_array_has (room, "users", pending->name.data, pending->name.size,
                                       NULL)) {
        sm_fail (pending, "not_member", "'%.*s' is not a member of the room '%.*s'.",
                 (int) pending->name.size, pending->name.data,
                 (int) pending->room.size, pending->room.data);
        rc = 0;
    }
    return rc;
}

//  Moves the member's marker forward to seq, at most to the newest entry
//  (read from the timeline: the room's copy can lag); {read_seq, moved}
int
sm_run_member_read (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                    bson_error_t *error)
{
    bson_t room = BSON_INITIALIZER;
    int rc = s_read_judge (self, pending, &room, error);
    bson_destroy (&room);
    int64_t newest = 0, marker = 0;
    if (rc == 1 && s_newest_seq (self, pending->room_key, &newest, error))
        rc = -1;
    int found = rc == 1 ? sm_marker_get (self, pending->room_key, pending->key, &marker, error)
                        : 0;
    if (found < 0)
        rc = -1;
    if (rc < 1)
        return rc;
    if (found == 0)
        marker = newest;            //  a member of before markers: read it all
    int64_t target = (int64_t) pending->seq < newest ? (int64_t) pending->seq : newest;
    bool moved = target > marker;
    if (moved && sm_marker_set (self, pending->room_key, pending->key, target, true, error))
        return -1;
    msgpack_pack_map (packer, 2);
    pl_body_pack_str (packer, "read_seq");
    msgpack_pack_uint64 (packer, (uint64_t) (moved ? target : marker));
    pl_body_pack_str (packer, "moved");
    st_reply_bool (packer, moved);
    return 0;
}

int
sm_run_msg_history (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                    bson_error_t *error)
{
    bson_t *room_filter = BCON_NEW ("name_lower", BCON_UTF8 (pending->room_key));
    bson_t *room_projection = BCON_NEW ("_id", BCON_INT32 (1));
    bson_t found = BSON_INITIALIZER;
    int rc = sm_find_one (self, self->rooms, room_filter, room_projection, &found, error);
    bson_destroy (&found);
    bson_destroy (room_projection);
    bson_destroy (room_filter);
    if (rc <= 0) {
        if (rc == 0)
            s_fail_no_room (pending);
        return rc;
    }
    if (pending->with_read_seq && s_history_marker (self, pending, error))
        return -1;
    return sm_run_page (self, pending, self->messages, "room", pending->room_key,
                        SM_TIMELINE_INDEX, sm_pack_entry, packer, error);
}


//  The newest ts of a msg.append's run's messages (the entries were
//  validated): a change does not make a room active
static int64_t
s_newest_ts (const sm_pending_t *pending)
{
    int64_t newest = 0;
    for (uint32_t index = 0; index < pending->entry_count; index++)
        if (pending->entries [index].change.kind == ST_KIND_MESSAGE
        &&  pending->entries [index].ts > newest)
            newest = pending->entries [index].ts;
    return newest;
}

//  The rooms' last_seq, one $max per room: a copy for the room map
//  (room.get reads the timeline itself). Its failure leaves the entries
//  appended, and their ok stands.
static void
s_advance_rooms (sm_store_t *self, sm_pending_t *first, sm_pending_t *end)
{
    bson_t *bulk_opts = BCON_NEW ("ordered", BCON_BOOL (false));
    mongoc_bulk_operation_t *bulk
        = mongoc_collection_create_bulk_operation_with_opts (self->rooms, bulk_opts);
    bson_destroy (bulk_opts);
    size_t updates = 0;
    for (sm_pending_t *pending = first; pending < end; pending++) {
        if (!sm_is_live (pending))
            continue;
        //  The highest seq of this room in the run, once per room
        bool seen_before = false;
        uint64_t highest = sm_last_seq (pending);
        for (sm_pending_t *other = first; other < end; other++) {
            if (other == pending || !sm_is_live (other)
            ||  strcmp (other->room_key, pending->room_key) != 0)
                continue;
            if (other < pending)
                seen_before = true;
            if (sm_last_seq (other) > highest)
                highest = sm_last_seq (other);
        }
        if (seen_before)
            continue;
        //  The room's activity too, for room.list's public rooms: the
        //  newest ts of the room's requests in the run, in the same update
        int64_t active = s_newest_ts (pending);
        for (sm_pending_t *other = pending + 1; other < end; other++)
            if (sm_is_live (other) && strcmp (other->room_key, pending->room_key) == 0
            &&  s_newest_ts (other) > active)
                active = s_newest_ts (other);
        bson_t *selector = BCON_NEW ("name_lower", BCON_UTF8 (pending->room_key));
        bson_t *update = BCON_NEW ("$max", "{", "last_seq", BCON_INT64 ((int64_t) highest),
                                               "active_at", BCON_DATE_TIME (active), "}");
        mongoc_bulk_operation_update_one_with_opts (bulk, selector, update, NULL, NULL);
        bson_destroy (selector);
        bson_destroy (update);
        updates++;
    }
    if (updates > 0) {
        bson_t reply;
        bson_error_t error;
        self->round_trips++;
        if (!mongoc_bulk_operation_execute (bulk, &reply, &error))
            sm_note_failure (self, "updating the rooms' last_seq", &error);
        bson_destroy (&reply);
    }
    mongoc_bulk_operation_destroy (bulk);
}

int
sm_run_msg_append (sm_store_t *self, sm_pending_t *first, sm_pending_t *end)
{
    sm_span_t span = { first, end };
    bson_error_t error;
    bson_t filter, condition, array;
    sm_in_begin (&filter, "name_lower", &condition, &array);
    uint32_t count = 0;
    for (sm_pending_t *pending = first; pending < end; pending++)
        if (sm_is_live (pending))
            sm_array_append_text (&array, &count, pending->room_key,
                                  (uint32_t) strlen (pending->room_key));
    sm_in_end (&filter, &condition, &array);
    bson_t *opts = BCON_NEW ("projection", "{", "name_lower", BCON_INT32 (1), "}");
    int rc = sm_find (self, self->rooms, &filter, opts, sm_on_room_exists, &span, &error);
    bson_destroy (opts);
    bson_destroy (&filter);
    if (rc) {
        sm_note_failure (self, "looking up the rooms of appends", &error);
        sm_fail_run (self, first, end, &error);
        return sm_is_unreachable (&error) ? -1 : 0;
    }
    for (sm_pending_t *pending = first; pending < end; pending++)
        if (sm_is_live (pending) && !pending->room_found)
            s_fail_no_room (pending);

    //  The repeated nonces first: a request with one appends nothing. Then
    //  the seqs taken: looked for before inserting, as the JavaScript test
    //  server does not enforce the unique index. Then the run's own overlaps,
    //  among the requests still live, as if each came alone in order.
    if (sm_find_repeats (self, first, end, &error)) {
        sm_note_failure (self, "looking for repeated nonces", &error);
        sm_fail_run (self, first, end, &error);
        return sm_is_unreachable (&error) ? -1 : 0;
    }
    if (sm_check_changes (self, first, end, &error)) {
        sm_note_failure (self, "checking timeline changes", &error);
        sm_fail_run (self, first, end, &error);
        return sm_is_unreachable (&error) ? -1 : 0;
    }
    if (sm_find_seqs_taken (self, first, end, &error)) {
        sm_note_failure (self, "looking for taken seqs", &error);
        sm_fail_run (self, first, end, &error);
        sm_apply_changes (self, first, end);
        return sm_is_unreachable (&error) ? -1 : 0;
    }
    sm_settle_overlaps (first, end);
    rc = sm_insert_entries (self, first, end);
    sm_apply_changes (self, first, end);
    if (rc == 0) {
        s_advance_rooms (self, first, end);
        sm_markers_advance (self, first, end);
    }
    for (sm_pending_t *pending = first; pending < end; pending++)
        if (sm_is_live (pending)) {
            msgpack_packer *packer = sm_packer (pending);
            msgpack_pack_map (packer, 1);
            pl_body_pack_str (packer, "seq");
            msgpack_pack_uint64 (packer, sm_last_seq (pending));
        }
    return rc;
}



//  --------------------------------------------------------------------------
//  Room administration (schema version 10): settings, bans. Each is one
//  conditional update of the room's document and, with a notice, its entry
//  (undone, best effort, when the entry cannot be appended: as a join).

//  Fails pending with banned when user (as registered) is banned from the
//  room. Returns true if it did.
static bool
s_refuse_banned (sm_pending_t *pending, const bson_t *room, const char *user)
{
    if (!sm_bson_array_has (room, "banned", user, (uint32_t) strlen (user), NULL))
        return false;
    sm_fail (pending, "banned", "'%s' is banned from the room '%.*s'.", user,
             (int) pending->room.size, pending->room.data);
    return true;
}

//  Whether the notice's seq is free: 1, 0 with pending failed (conflict),
//  or -1 with error set
static int
s_seq_free (sm_store_t *self, sm_pending_t *pending, bson_error_t *error)
{
    int taken = s_seq_taken (self, pending, error);
    if (taken == 1)
        sm_fail_conflict (pending);
    return taken < 0 ? -1 : taken == 0;
}

//  Reads the room and the user as registered (member.remove with ban,
//  room.unban). Returns 1, 0 with pending failed, or -1 with error set.
static int
s_admin_read (sm_store_t *self, sm_pending_t *pending, bson_t *room, char *user,
              bson_error_t *error)
{
    user [0] = 0;
    return s_join_read (self, pending, room, user, error);
}

//  Takes user out of the room if a member (its notice's seq as the room's
//  last), bans it and drops its invitation, in one update of the room
static int
s_ban_change (sm_store_t *self, sm_pending_t *pending, bson_t *room, const char *user,
              bool removing, bson_error_t *error)
{
    bson_t *query = removing
        ? BCON_NEW ("name_lower", BCON_UTF8 (pending->room_key), "users", BCON_UTF8 (user))
        : BCON_NEW ("name_lower", BCON_UTF8 (pending->room_key));
    bson_t *update = BCON_NEW ("$pull", "{", "users", BCON_UTF8 (user),
                                             "invited", BCON_UTF8 (user), "}",
                               "$addToSet", "{", "banned", BCON_UTF8 (user), "}");
    if (removing && pending->has_entry) {
        bson_t operation;
        BSON_APPEND_DOCUMENT_BEGIN (update, "$max", &operation);
        BSON_APPEND_INT64 (&operation, "last_seq", (int64_t) pending->entry.seq);
        bson_append_document_end (update, &operation);
    }
    int rc = s_modify_room (self, query, update, room, error);
    bson_destroy (query);
    bson_destroy (update);
    if (rc == 0)
        sm_fail (pending, "unavailable", "The room '%.*s' changed meanwhile; try again.",
                 (int) pending->room.size, pending->room.data);
    return rc;
}

//  The kick's notice; if it cannot be appended, the member is let back in
//  and the ban lifted, so that nothing changed. Returns 1, 0 with pending
//  failed, or -1 with error set.
static int
s_ban_notice (sm_store_t *self, sm_pending_t *pending, const char *user, bson_error_t *error)
{
    int inserted = s_insert_entry (self, pending, error);
    if (inserted == 0)
        return 1;
    bson_t *query = BCON_NEW ("name_lower", BCON_UTF8 (pending->room_key));
    bson_t *update = BCON_NEW ("$addToSet", "{", "users", BCON_UTF8 (user), "}",
                               "$pull", "{", "banned", BCON_UTF8 (user), "}");
    bson_error_t undo_error;
    self->round_trips++;
    if (!mongoc_collection_update_one (self->rooms, query, update, NULL, NULL, &undo_error))
        sm_note_failure (self, "undoing a kick whose notice failed", &undo_error);
    bson_destroy (query);
    bson_destroy (update);
    if (inserted < 0)
        return -1;
    sm_fail_conflict (pending);
    return 0;
}

//  member.remove with ban: answers {members, removed}
static int
s_member_ban (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
              bson_error_t *error)
{
    bson_t room = BSON_INITIALIZER;
    char user [ST_NAME_MAX + 1];
    int rc = s_admin_read (self, pending, &room, user, error);
    bool removing = rc == 1
                 && sm_bson_array_has (&room, "users", user, (uint32_t) strlen (user), NULL);
    if (removing && pending->has_entry)
        rc = s_seq_free (self, pending, error);
    if (rc == 1)
        rc = s_ban_change (self, pending, &room, user, removing, error);
    if (rc == 1 && removing && pending->has_entry)
        rc = s_ban_notice (self, pending, user, error);
    if (rc == 1 && removing && sm_markers_drop (self, pending->room_key, pending->key, error))
        rc = -1;
    if (rc == 1) {
        msgpack_pack_map (packer, 2);
        pl_body_pack_str (packer, "members");
        msgpack_pack_uint32 (packer, sm_bson_array_count (&room, "users"));
        pl_body_pack_str (packer, "removed");
        removing ? msgpack_pack_true (packer) : msgpack_pack_false (packer);
    }
    bson_destroy (&room);
    return rc < 0 ? -1 : 0;
}

//  The $set of room.update: the settings given
static bson_t *
s_update_settings (const st_room_update_t *update)
{
    bson_t *change = bson_new ();
    bson_t set;
    BSON_APPEND_DOCUMENT_BEGIN (change, "$set", &set);
    if (update->description.data)
        bson_append_utf8 (&set, "metadata.description", -1, update->description.data,
                          (int) update->description.size);
    if (update->has_private)
        BSON_APPEND_BOOL (&set, "metadata.settings.is_private", update->is_private);
    if (update->max_participants)
        BSON_APPEND_INT64 (&set, "metadata.settings.max_participants",
                           (int64_t) update->max_participants);
    bson_append_document_end (change, &set);
    return change;
}

//  Puts the settings of before (the room as it was) back: best effort,
//  when room.update's notice could not be appended
static void
s_update_undo (sm_store_t *self, sm_pending_t *pending, const bson_t *before)
{
    st_room_update_t old = {
        .description = sm_bson_st_text (before, "metadata.description"),
        .has_private = true,
        .is_private = sm_bson_bool (before, "metadata.settings.is_private"),
        .max_participants = (uint32_t) sm_bson_int (before, "metadata.settings.max_participants",
                                                    0)
    };
    bson_t *query = BCON_NEW ("name_lower", BCON_UTF8 (pending->room_key));
    bson_t *change = s_update_settings (&old);
    bson_error_t undo_error;
    self->round_trips++;
    if (!mongoc_collection_update_one (self->rooms, query, change, NULL, NULL, &undo_error))
        sm_note_failure (self, "undoing a room update whose notice failed", &undo_error);
    bson_destroy (query);
    bson_destroy (change);
}

//  Changes the settings and moves last_seq to the notice's. Returns 1, 0
//  with pending failed (the room went), or -1 with error set.
static int
s_update_apply (sm_store_t *self, sm_pending_t *pending, bson_t *room, bson_error_t *error)
{
    const st_room_update_t *update = &pending->request->as.room_update;
    bson_t *query = BCON_NEW ("name_lower", BCON_UTF8 (pending->room_key));
    bson_t *change = s_update_settings (update);
    if (pending->has_entry) {
        bson_t operation;
        BSON_APPEND_DOCUMENT_BEGIN (change, "$max", &operation);
        BSON_APPEND_INT64 (&operation, "last_seq", (int64_t) pending->entry.seq);
        bson_append_document_end (change, &operation);
    }
    int rc = s_modify_room (self, query, change, room, error);
    bson_destroy (query);
    bson_destroy (change);
    if (rc == 0)
        s_fail_no_room (pending);
    return rc;
}

//  Appends room.update's notice; if it cannot be, the settings go back.
//  Returns 1, 0 with pending failed, or -1 with error set.
static int
s_update_notice (sm_store_t *self, sm_pending_t *pending, const bson_t *before,
                 bson_error_t *error)
{
    int inserted = s_insert_entry (self, pending, error);
    if (inserted == 0)
        return 1;
    s_update_undo (self, pending, before);
    if (inserted < 0)
        return -1;
    sm_fail_conflict (pending);
    return 0;
}

int
sm_run_room_update (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                    bson_error_t *error)
{
    bson_t before = BSON_INITIALIZER, room = BSON_INITIALIZER;
    int rc = s_find_room (self, pending->room_key, &before, error);
    if (rc == 0)
        s_fail_no_room (pending);
    if (rc == 1 && pending->has_entry)
        rc = s_seq_free (self, pending, error);
    if (rc == 1)
        rc = s_update_apply (self, pending, &room, error);
    if (rc == 1 && pending->has_entry)
        rc = s_update_notice (self, pending, &before, error);
    if (rc == 1) {
        msgpack_pack_map (packer, 1);
        pl_body_pack_str (packer, "room");
        s_pack_room (packer, &room, NULL, -1);
    }
    bson_destroy (&before);
    bson_destroy (&room);
    return rc < 0 ? -1 : 0;
}

//  room.unban: answers {unbanned: whether there was a ban}
int
sm_run_room_unban (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                   bson_error_t *error)
{
    bson_t room = BSON_INITIALIZER;
    char user [ST_NAME_MAX + 1];
    int rc = s_admin_read (self, pending, &room, user, error);
    bool banned = rc == 1
               && sm_bson_array_has (&room, "banned", user, (uint32_t) strlen (user), NULL);
    if (banned) {
        bson_t *query = BCON_NEW ("name_lower", BCON_UTF8 (pending->room_key));
        bson_t *update = BCON_NEW ("$pull", "{", "banned", BCON_UTF8 (user), "}");
        rc = s_modify_room (self, query, update, &room, error);
        bson_destroy (query);
        bson_destroy (update);
        if (rc == 0)
            s_fail_no_room (pending);
    }
    if (rc == 1) {
        msgpack_pack_map (packer, 1);
        pl_body_pack_str (packer, "unbanned");
        banned ? msgpack_pack_true (packer) : msgpack_pack_false (packer);
    }
    bson_destroy (&room);
    return rc < 0 ? -1 : 0;
}
