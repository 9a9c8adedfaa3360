/*  =========================================================================
    sm_pm - private messages: conversations, read markers
    =========================================================================
*/

#include "sm_store.h"
#include "pl_body.h"
#include "st_list.h"
#include "sm_append.h"
#include "sm_common.h"
#include "st_reply.h"
#include "sm_conn.h"
#include "sm_pm.h"
#include "sm_changes.h"
#include "st_reactions.h"
#include "sm_words.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  --------------------------------------------------------------------------
//  Private messages: conversations, read markers
//
//  pm_messages    {_id: ObjectId, conv, seq, from, to (names as registered),
//                  text, ts (BSON date)}
//                                  unique index on (conv, seq)
//  conversations  {_id: ObjectId, conv, users: [a, b] (lower-cased),
//                  names: [a, b] (as registered), last_seq,
//                  last_ts (BSON date), last: {seq, from, to, text, ts},
//                  read_a, read_b}
//                                  unique index on conv; index on
//                                  (users, last_ts desc, _id desc)
//
//  conv is the pair's key: the two lower-cased names in byte order, joined
//  by a newline ("alice\nbob"); a is the first of them. The read markers are
//  fields of their own, not keys named after users, since a name may hold a
//  '.' or begin with '$'. The conversation document is a copy of the
//  newest entry, advanced by a conditional update (last_seq below the new
//  one) so that it never goes back; pm.conversations is one range of its
//  index, and the unread counts are one aggregation over ranges of
//  (conv, seq). A message is stored before its conversation document is
//  advanced: see README.md for what that means without transactions.

//  A user of a pm request: lower-cased key and name as registered
typedef struct {
    char key [ST_NAME_MAX + 1];     //  name_lower
    char name [ST_NAME_MAX + 1];    //  name
} s_user_name_t;

//  The users a run names that exist, sorted by key once found
typedef struct {
    s_user_name_t *users;           //  capacity entries
    size_t count;                   //  entries found
    size_t capacity;                //  entries allocated
} s_user_names_t;

static void
s_on_user_name (void *arg, const bson_t *document)
{
    s_user_names_t *names = (s_user_names_t *) arg;
    if (names->count == names->capacity)
        return;
    s_user_name_t *user = &names->users [names->count++];
    sm_copy_bson_str (document, "name_lower", user->key, sizeof user->key);
    sm_copy_bson_str (document, "name", user->name, sizeof user->name);
}

static int
s_compare_user_names (const void *left, const void *right)
{
    return strcmp (((const s_user_name_t *) left)->key, ((const s_user_name_t *) right)->key);
}

static int
s_compare_key_to_user_name (const void *key, const void *user)
{
    return strcmp ((const char *) key, ((const s_user_name_t *) user)->key);
}

//  The name as registered of the user whose key this is, or NULL
static const char *
s_user_name_of (const s_user_names_t *names, const char *key)
{
    const s_user_name_t *user = (const s_user_name_t *) bsearch (
        key, names->users, names->count, sizeof (s_user_name_t), s_compare_key_to_user_name);
    return user ? user->name : NULL;
}

//  Finds both sides of every live request of [first, end) in one find;
//  names->users holds room for two per request. Returns 0, or -1 with
//  error set.
static int
s_find_pm_users (sm_store_t *self, sm_pending_t *first, sm_pending_t *end, s_user_names_t *names,
                 bson_error_t *error)
{
    bson_t filter, condition, array;
    sm_in_begin (&filter, "name_lower", &condition, &array);
    uint32_t count = 0;
    for (sm_pending_t *pending = first; pending < end; pending++)
        if (sm_is_live (pending)) {
            sm_array_append_text (&array, &count, pending->key, (uint32_t) strlen (pending->key));
            sm_array_append_text (&array, &count, pending->peer_key,
                                  (uint32_t) strlen (pending->peer_key));
        }
    sm_in_end (&filter, &condition, &array);
    int rc = 0;
    if (count > 0) {
        bson_t *opts = BCON_NEW ("projection", "{", "name_lower", BCON_INT32 (1),
                                 "name", BCON_INT32 (1), "}");
        rc = sm_find (self, self->users, &filter, opts, s_on_user_name, names, error);
        bson_destroy (opts);
    }
    bson_destroy (&filter);
    qsort (names->users, names->count, sizeof (s_user_name_t), s_compare_user_names);
    return rc;
}

//  Fails pending with not_found, naming the side that does not exist
static void
s_fail_no_pm_user (sm_pending_t *pending, bool me_missing)
{
    const st_text_t *missing = me_missing ? &pending->name : &pending->peer;
    sm_fail (pending, "not_found", "No user is named '%.*s'.", (int) missing->size,
             missing->data);
}

//  A pm entry of a document that holds seq, from, to, text, ts, and the
//  change's fields (schema version 9); its reactions into *reactions_p
//  (the caller destroys them), borrowed from the document
static st_pm_entry_t
s_pm_entry_of (const bson_t *document, st_reactions_t **reactions_p)
{
    st_pm_entry_t entry = {
        .seq = (uint64_t) sm_bson_int (document, "seq", 0),
        .from = sm_bson_st_text (document, "from"),
        .to = sm_bson_st_text (document, "to"),
        .text = sm_bson_st_text (document, "text"),
        .ts = sm_bson_int (document, "ts", 0),
        .nonce = sm_bson_nonce (document)
    };
    sm_changes_read (document, entry.seq, &entry.change, reactions_p);
    return entry;
}

void
sm_pack_pm_entry (msgpack_packer *packer, const bson_t *document)
{
    st_reactions_t *reactions;
    st_pm_entry_t entry = s_pm_entry_of (document, &reactions);
    st_reply_pm_entry (packer, &entry);
    st_reactions_destroy (&reactions);
}

//  A message's fields, as in pm_messages and in a conversation's last: from
//  and to as registered, by the message's direction
static void
s_append_pm_fields (const sm_pending_t *pending, const st_pm_message_t *message,
                    bson_t *document)
{
    BSON_APPEND_INT64 (document, "seq", (int64_t) message->seq);
    BSON_APPEND_UTF8 (document, "from", message->from_peer ? pending->to_name
                                                           : pending->from_name);
    BSON_APPEND_UTF8 (document, "to", message->from_peer ? pending->from_name
                                                         : pending->to_name);
    bson_append_utf8 (document, "text", 4, message->text.data ? message->text.data : "",
                      (int) message->text.size);
    BSON_APPEND_DATE_TIME (document, "ts", message->ts);
}

void
sm_build_pm_message (const sm_pending_t *pending, const st_pm_message_t *message,
                     bson_t *document)
{
    bson_oid_t oid;
    bson_oid_init (&oid, NULL);
    BSON_APPEND_OID (document, "_id", &oid);
    BSON_APPEND_UTF8 (document, "conv", pending->conv);
    s_append_pm_fields (pending, message, document);
    BSON_APPEND_UTF8 (document, "kind", st_kind_name (message->change.kind));
    //  A message is searched by its words (schema version 12)
    if (message->change.kind == ST_KIND_MESSAGE)
        sm_words_append (document, "words", message->text.data, message->text.size);
    sm_changes_build (&message->change, document);
    if (message->nonce.data)
        sm_append_nonce (document, message->from_peer ? pending->peer_key : pending->key,
                         message->nonce);
}

static void
s_on_conversation_exists (void *arg, const bson_t *document)
{
    sm_span_t *span = (sm_span_t *) arg;
    uint32_t size;
    const char *conv = sm_bson_text (document, "conv", &size);
    for (sm_pending_t *pending = span->first; pending < span->end; pending++)
        if (sm_is_live (pending) && strlen (pending->conv) == size
        &&  memcmp (pending->conv, conv, size) == 0)
            pending->room_found = true;
}

//  Marks the live requests of the run whose conversation exists
//  (room_found): one find. Returns how many requests are live, or -1 with
//  error set.
static int
s_find_conversations (sm_store_t *self, sm_pending_t *first, sm_pending_t *end,
                      bson_error_t *error)
{
    sm_span_t span = { first, end };
    bson_t filter, condition, array;
    sm_in_begin (&filter, "conv", &condition, &array);
    uint32_t count = 0;
    for (sm_pending_t *pending = first; pending < end; pending++)
        if (sm_is_live (pending))
            sm_array_append_text (&array, &count, pending->conv,
                                  (uint32_t) strlen (pending->conv));
    sm_in_end (&filter, &condition, &array);
    int rc = 0;
    if (count > 0) {
        bson_t *opts = BCON_NEW ("projection", "{", "conv", BCON_INT32 (1), "}");
        rc = sm_find (self, self->conversations, &filter, opts, s_on_conversation_exists, &span,
                      error);
        bson_destroy (opts);
    }
    bson_destroy (&filter);
    return rc ? -1 : (int) count;
}

//  The request of the run whose messages end highest in pending's
//  conversation; NULL if an earlier request of the run has that
//  conversation (it was handled then: once per conversation)
static sm_pending_t *
s_newest_of (sm_pending_t *pending, sm_pending_t *first, sm_pending_t *end)
{
    sm_pending_t *newest = pending;
    for (sm_pending_t *other = first; other < end; other++) {
        if (other == pending || !sm_is_live (other) || strcmp (other->conv, pending->conv))
            continue;
        if (other < pending)
            return NULL;
        if (sm_last_seq (other) > sm_last_seq (newest))
            newest = other;
    }
    return newest;
}

//  A new conversation's own fields, for the upsert: users and names in
//  the order of conv (a, then b)
static void
s_conversation_insert (const sm_pending_t *newest, bson_t *update)
{
    bool from_first = strcmp (newest->key, newest->peer_key) < 0;
    bson_t insert, users, names;
    bson_oid_t oid;
    bson_oid_init (&oid, NULL);
    BSON_APPEND_DOCUMENT_BEGIN (update, "$setOnInsert", &insert);
    BSON_APPEND_OID (&insert, "_id", &oid);
    BSON_APPEND_ARRAY_BEGIN (&insert, "users", &users);
    BSON_APPEND_UTF8 (&users, "0", from_first ? newest->key : newest->peer_key);
    BSON_APPEND_UTF8 (&users, "1", from_first ? newest->peer_key : newest->key);
    bson_append_array_end (&insert, &users);
    BSON_APPEND_ARRAY_BEGIN (&insert, "names", &names);
    BSON_APPEND_UTF8 (&names, "0", from_first ? newest->from_name : newest->to_name);
    BSON_APPEND_UTF8 (&names, "1", from_first ? newest->to_name : newest->from_name);
    bson_append_array_end (&insert, &names);
    BSON_APPEND_INT64 (&insert, "read_a", 0);
    BSON_APPEND_INT64 (&insert, "read_b", 0);
    bson_append_document_end (update, &insert);
}

//  The move to the newest message (the run's newest request's)
static void
s_advance_message (mongoc_bulk_operation_t *bulk, const sm_pending_t *pending,
                   const sm_pending_t *newest, const st_pm_message_t *newest_message)
{
    const st_pm_message_t message = *newest_message;
    bson_t *selector = BCON_NEW ("conv", BCON_UTF8 (pending->conv),
                                 "last_seq", "{", "$lt", BCON_INT64 ((int64_t) message.seq),
                                 "}");
    bson_t update = BSON_INITIALIZER, set, last;
    BSON_APPEND_DOCUMENT_BEGIN (&update, "$set", &set);
    BSON_APPEND_INT64 (&set, "last_seq", (int64_t) message.seq);
    BSON_APPEND_DATE_TIME (&set, "last_ts", message.ts);
    BSON_APPEND_DOCUMENT_BEGIN (&set, "last", &last);
    s_append_pm_fields (newest, &message, &last);
    bson_append_document_end (&set, &last);
    bson_append_document_end (&update, &set);
    bson_t *update_opts = NULL;
    if (!pending->room_found) {
        s_conversation_insert (newest, &update);
        update_opts = BCON_NEW ("upsert", BCON_BOOL (true));
    }
    mongoc_bulk_operation_update_one_with_opts (bulk, selector, &update, update_opts, NULL);
    bson_destroy (update_opts);
    bson_destroy (&update);
    bson_destroy (selector);
}

//  Queues the move of pending's conversation to the newest message of
//  newest's run. The filter carries the condition: the newest never goes
//  back. A conversation not found is upserted; if a concurrent writer
//  created it with a newer entry, the upsert's insert meets the unique
//  index on conv and changes nothing.
static void
s_advance_one (mongoc_bulk_operation_t *bulk, const sm_pending_t *pending,
               const sm_pending_t *newest)
{
    //  The conversation's last is its newest message (schema version 9:
    //  not a change), its last_seq the newest entry of any kind
    const st_pm_message_t *newest_message = NULL;
    for (uint32_t index = newest->entry_count; index > 0 && !newest_message; index--)
        if (newest->messages [index - 1].change.kind == ST_KIND_MESSAGE)
            newest_message = &newest->messages [index - 1];
    uint64_t last_seq = newest->messages [newest->entry_count - 1].seq;
    if (newest_message)
        s_advance_message (bulk, pending, newest, newest_message);
    if (!newest_message || newest_message->seq < last_seq) {
        bson_t *selector = BCON_NEW ("conv", BCON_UTF8 (pending->conv),
                                     "last_seq", "{", "$lt", BCON_INT64 ((int64_t) last_seq), "}");
        bson_t *update = BCON_NEW ("$set", "{", "last_seq", BCON_INT64 ((int64_t) last_seq), "}");
        mongoc_bulk_operation_update_one_with_opts (bulk, selector, update, NULL, NULL);
        bson_destroy (update);
        bson_destroy (selector);
    }
}


//  Moves the conversation documents of the run's appends to their newest
//  entry, creating those that do not exist: one find, one bulk. Returns 0,
//  or -1 with error set.
static int
s_advance_conversations (sm_store_t *self, sm_pending_t *first, sm_pending_t *end,
                         bson_error_t *error)
{
    int live = s_find_conversations (self, first, end, error);
    if (live <= 0)
        return live;
    //  Ordered: a conversation's move to its newest message comes before
    //  the move of its last_seq past it
    bson_t *bulk_opts = BCON_NEW ("ordered", BCON_BOOL (true));
    mongoc_bulk_operation_t *bulk
        = mongoc_collection_create_bulk_operation_with_opts (self->conversations, bulk_opts);
    bson_destroy (bulk_opts);
    for (sm_pending_t *pending = first; pending < end; pending++) {
        sm_pending_t *newest = sm_is_live (pending) ? s_newest_of (pending, first, end) : NULL;
        if (newest)
            s_advance_one (bulk, pending, newest);
    }
    bson_t reply;
    int rc = 0;
    self->round_trips++;
    if (!mongoc_bulk_operation_execute (bulk, &reply, error) && !sm_is_duplicate_key (error))
        rc = -1;
    bson_destroy (&reply);
    mongoc_bulk_operation_destroy (bulk);
    return rc;
}

//  The users of the run's live requests, as registered (from_name,
//  to_name): one find; a request naming one that does not exist fails.
//  Returns 0, or -1 with error set (the run failed).
static int
s_name_pm_users (sm_store_t *self, sm_pending_t *first, sm_pending_t *end, bson_error_t *error)
{
    size_t live = 0;
    for (sm_pending_t *pending = first; pending < end; pending++)
        live += sm_is_live (pending);
    s_user_names_t names = { NULL, 0, 2 * live };
    names.users = (s_user_name_t *) calloc (names.capacity ? names.capacity : 1,
                                            sizeof (s_user_name_t));
    if (!names.users) {
        for (sm_pending_t *pending = first; pending < end; pending++)
            if (sm_is_live (pending))
                sm_fail (pending, "internal", "The store ran out of memory.");
        return 0;
    }
    int rc = s_find_pm_users (self, first, end, &names, error);
    if (rc == 0)
        for (sm_pending_t *pending = first; pending < end; pending++) {
            if (!sm_is_live (pending))
                continue;
            const char *from = s_user_name_of (&names, pending->key);
            const char *to = s_user_name_of (&names, pending->peer_key);
            if (!from || !to)
                s_fail_no_pm_user (pending, !from);
            else {
                snprintf (pending->from_name, sizeof pending->from_name, "%s", from);
                snprintf (pending->to_name, sizeof pending->to_name, "%s", to);
            }
        }
    free (names.users);
    if (rc) {
        sm_note_failure (self, "looking up the users of private messages", error);
        sm_fail_run (self, first, end, error);
    }
    return rc;
}

//  pm.append, a run of requests, each appending a run of 1 to ST_RUN_MAX
//  messages to one conversation: one find of the users, then as msg.append
//  (see above, also for a failure part way): one find of the seqs taken,
//  one ordered insert_many of every message of the run; then
//  s_advance_conversations
int
sm_run_pm_append (sm_store_t *self, sm_pending_t *first, sm_pending_t *end)
{
    bson_error_t error;
    if (s_name_pm_users (self, first, end, &error))
        return sm_is_unreachable (&error) ? -1 : 0;
    //  The repeated nonces first (nothing of such a request is appended);
    //  the seqs taken: looked for before inserting, as the test server does
    //  not enforce the unique index. Then the run's own overlaps.
    if (sm_find_repeats (self, first, end, &error)) {
        sm_note_failure (self, "looking for repeated nonces of private messages", &error);
        sm_fail_run (self, first, end, &error);
        return sm_is_unreachable (&error) ? -1 : 0;
    }
    if (sm_check_changes (self, first, end, &error)) {
        sm_note_failure (self, "checking timeline changes of private messages", &error);
        sm_fail_run (self, first, end, &error);
        return sm_is_unreachable (&error) ? -1 : 0;
    }
    if (sm_find_seqs_taken (self, first, end, &error)) {
        sm_note_failure (self, "looking for taken seqs of private messages", &error);
        sm_fail_run (self, first, end, &error);
        sm_apply_changes (self, first, end);
        return sm_is_unreachable (&error) ? -1 : 0;
    }
    sm_settle_overlaps (first, end);
    int rc = sm_insert_entries (self, first, end);
    sm_apply_changes (self, first, end);
    //  The conversation documents: their failure leaves the messages
    //  stored, and their ok stands (README.md)
    if (rc == 0 && s_advance_conversations (self, first, end, &error))
        sm_note_failure (self, "advancing the conversations", &error);
    for (sm_pending_t *pending = first; pending < end; pending++)
        if (sm_is_live (pending)) {
            msgpack_packer *packer = sm_packer (pending);
            msgpack_pack_map (packer, 3);
            pl_body_pack_str (packer, "seq");
            msgpack_pack_uint64 (packer, sm_last_seq (pending));
            pl_body_pack_str (packer, "from");
            pl_body_pack_str (packer, pending->from_name);
            pl_body_pack_str (packer, "to");
            pl_body_pack_str (packer, pending->to_name);
        }
    return rc;
}

int
sm_run_pm_last_seq (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                    bson_error_t *error)
{
    //  From the messages' index, one key read: unknown users have none
    bson_t *filter = BCON_NEW ("conv", BCON_UTF8 (pending->conv));
    bson_t *opts = BCON_NEW ("sort", "{", "seq", BCON_INT32 (-1), "}",
                             "limit", BCON_INT64 (1), "singleBatch", BCON_BOOL (true),
                             "hint", BCON_UTF8 (SM_PM_INDEX),
                             "projection", "{", "seq", BCON_INT32 (1), "}");
    bson_t found = BSON_INITIALIZER;
    int rc = sm_find (self, self->pm_messages, filter, opts, sm_keep_first, &found, error);
    if (rc == 0) {
        msgpack_pack_map (packer, 1);
        pl_body_pack_str (packer, "last_seq");
        msgpack_pack_uint64 (packer, (uint64_t) sm_bson_int (&found, "seq", 0));
    }
    bson_destroy (&found);
    bson_destroy (opts);
    bson_destroy (filter);
    return rc;
}

int
sm_run_pm_history (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                   bson_error_t *error)
{
    //  Names as registered are in the entries: no look-up of the users
    return sm_run_page (self, pending, self->pm_messages, "conv", pending->conv, SM_PM_INDEX,
                        sm_pack_pm_entry, packer, error);
}

//  The conversations of pm.conversations, in the order found, and what
//  their unread counts need
typedef struct {
    bson_t **documents;             //  owned copies
    bson_t **current;               //  per document: its last message as it is now
                                    //  (schema version 9), owned, NULL if not found
    int64_t *unread;                //  per document
    uint32_t count;
    uint32_t capacity;              //  the limit
    const char *key;                //  the user's key
} s_conversations_t;

static void
s_on_conversation (void *arg, const bson_t *document)
{
    s_conversations_t *list = (s_conversations_t *) arg;
    if (list->count < list->capacity)
        list->documents [list->count++] = bson_copy (document);
}

//  Whether the user is a (the first of conv) in this conversation document
static bool
s_is_first_user (const bson_t *conversation, const char *key)
{
    uint32_t size;
    const char *first = sm_bson_text (conversation, "users.0", &size);
    return strlen (key) == size && memcmp (first, key, size) == 0;
}

//  Only messages count as unread, and not deleted ones (schema version 9;
//  a message of an older store has no kind)
static void
s_unread_only (bson_t *range)
{
    bson_t not_in, kinds, deleted;
    BSON_APPEND_DOCUMENT_BEGIN (range, "kind", &not_in);
    BSON_APPEND_ARRAY_BEGIN (&not_in, "$nin", &kinds);
    BSON_APPEND_UTF8 (&kinds, "0", "edit");
    BSON_APPEND_UTF8 (&kinds, "1", "delete");
    BSON_APPEND_UTF8 (&kinds, "2", "reaction");
    bson_append_array_end (&not_in, &kinds);
    bson_append_document_end (range, &not_in);
    BSON_APPEND_DOCUMENT_BEGIN (range, "deleted", &deleted);
    BSON_APPEND_BOOL (&deleted, "$ne", true);
    bson_append_document_end (range, &deleted);
}

static void
s_on_unread_group (void *arg, const bson_t *document)
{
    s_conversations_t *list = (s_conversations_t *) arg;
    uint32_t size;
    const char *conv = sm_bson_text (document, "_id", &size);
    for (uint32_t index = 0; index < list->count; index++) {
        uint32_t other_size;
        const char *other = sm_bson_text (list->documents [index], "conv", &other_size);
        if (other_size == size && memcmp (other, conv, size) == 0)
            list->unread [index] = sm_bson_int (document, "n", 0);
    }
}

//  Counts the messages to the user above the user's marker in each listed
//  conversation that has any: one aggregation, a range of (conv, seq) per
//  conversation. Returns 0, or -1 with error set.
static int
s_count_unread (sm_store_t *self, s_conversations_t *list, bson_error_t *error)
{
    bson_t pipeline = BSON_INITIALIZER, stages, stage, match, any, group, sum;
    BSON_APPEND_ARRAY_BEGIN (&pipeline, "pipeline", &stages);
    BSON_APPEND_DOCUMENT_BEGIN (&stages, "0", &stage);
    BSON_APPEND_DOCUMENT_BEGIN (&stage, "$match", &match);
    BSON_APPEND_ARRAY_BEGIN (&match, "$or", &any);
    uint32_t ranges = 0;
    for (uint32_t index = 0; index < list->count; index++) {
        const bson_t *conversation = list->documents [index];
        bool first = s_is_first_user (conversation, list->key);
        int64_t marker = sm_bson_int (conversation, first ? "read_a" : "read_b", 0);
        if (sm_bson_int (conversation, "last_seq", 0) <= marker)
            continue;           //  nothing above the marker
        uint32_t size, name_size;
        const char *conv = sm_bson_text (conversation, "conv", &size);
        const char *name = sm_bson_text (conversation, first ? "names.0" : "names.1",
                                         &name_size);
        char index_key [16];
        const char *key;
        size_t key_size = bson_uint32_to_string (ranges++, &key, index_key, sizeof index_key);
        bson_t range, above;
        bson_append_document_begin (&any, key, (int) key_size, &range);
        bson_append_utf8 (&range, "conv", 4, conv, (int) size);
        BSON_APPEND_DOCUMENT_BEGIN (&range, "seq", &above);
        BSON_APPEND_INT64 (&above, "$gt", marker);
        bson_append_document_end (&range, &above);
        bson_append_utf8 (&range, "to", 2, name, (int) name_size);
        s_unread_only (&range);
        bson_append_document_end (&any, &range);
    }
    bson_append_array_end (&match, &any);
    bson_append_document_end (&stage, &match);
    bson_append_document_end (&stages, &stage);
    BSON_APPEND_DOCUMENT_BEGIN (&stages, "1", &stage);
    BSON_APPEND_DOCUMENT_BEGIN (&stage, "$group", &group);
    BSON_APPEND_UTF8 (&group, "_id", "$conv");
    BSON_APPEND_DOCUMENT_BEGIN (&group, "n", &sum);
    BSON_APPEND_INT32 (&sum, "$sum", 1);
    bson_append_document_end (&group, &sum);
    bson_append_document_end (&stage, &group);
    bson_append_document_end (&stages, &stage);
    bson_append_array_end (&pipeline, &stages);
    int rc = 0;
    if (ranges > 0) {
        self->round_trips++;
        mongoc_cursor_t *cursor = mongoc_collection_aggregate (
            self->pm_messages, MONGOC_QUERY_NONE, &pipeline, NULL, NULL);
        const bson_t *document;
        while (mongoc_cursor_next (cursor, &document))
            s_on_unread_group (list, document);
        if (mongoc_cursor_error (cursor, error))
            rc = -1;
        mongoc_cursor_destroy (cursor);
    }
    bson_destroy (&pipeline);
    return rc;
}

static void
s_on_current (void *arg, const bson_t *document)
{
    s_conversations_t *list = (s_conversations_t *) arg;
    uint32_t size;
    const char *conv = sm_bson_text (document, "conv", &size);
    int64_t seq = sm_bson_int (document, "seq", 0);
    for (uint32_t index = 0; index < list->count; index++) {
        uint32_t other_size;
        const char *other = sm_bson_text (list->documents [index], "conv", &other_size);
        if (other_size == size && memcmp (other, conv, size) == 0 && !list->current [index]
        &&  sm_bson_int (list->documents [index], "last.seq", 0) == seq)
            list->current [index] = bson_copy (document);
    }
}

//  Each conversation's last message as it is now (edited, deleted,
//  reacted to since it was copied into the conversation): one find, a
//  search of (conv, seq) per conversation. Returns 0, or -1 with error set.
static int
s_find_current (sm_store_t *self, s_conversations_t *list, bson_error_t *error)
{
    bson_t filter = BSON_INITIALIZER, any;
    BSON_APPEND_ARRAY_BEGIN (&filter, "$or", &any);
    for (uint32_t index = 0; index < list->count; index++) {
        char index_key [16];
        const char *key;
        size_t key_size = bson_uint32_to_string (index, &key, index_key, sizeof index_key);
        uint32_t size;
        const char *conv = sm_bson_text (list->documents [index], "conv", &size);
        bson_t one;
        bson_append_document_begin (&any, key, (int) key_size, &one);
        bson_append_utf8 (&one, "conv", 4, conv, (int) size);
        BSON_APPEND_INT64 (&one, "seq", sm_bson_int (list->documents [index], "last.seq", 0));
        bson_append_document_end (&any, &one);
    }
    bson_append_array_end (&filter, &any);
    int rc = list->count ? sm_find (self, self->pm_messages, &filter, NULL, s_on_current, list,
                                    error) : 0;
    bson_destroy (&filter);
    return rc;
}

//  Packs {conversations, more}: the newest conversations of list whose
//  entries fit in ST_LIST_BUDGET (each carries its last message), at least one
//  Packs one conversation of the list {with, last, unread, read_seq, last_seq}
static void
s_pack_conversation (msgpack_packer *packer, const s_conversations_t *list, uint32_t index)
{
    const bson_t *conversation = list->documents [index];
    bool first = s_is_first_user (conversation, list->key);
    bson_iter_t iter;
    bson_t last = BSON_INITIALIZER;
    if (sm_bson_at (conversation, "last", &iter) && BSON_ITER_HOLDS_DOCUMENT (&iter)) {
        uint32_t size;
        const uint8_t *data;
        bson_iter_document (&iter, &size, &data);
        bson_destroy (&last);
        bson_init_static (&last, data, size);
    }
    st_reactions_t *reactions;
    st_pm_entry_t entry = s_pm_entry_of (list->current [index] ? list->current [index] : &last,
                                         &reactions);
    int64_t marker = sm_bson_int (conversation, first ? "read_a" : "read_b", 0);
    int64_t last_seq = sm_bson_int (conversation, "last_seq", (int64_t) entry.seq);
    st_reply_conversation (packer, sm_bson_st_text (conversation, first ? "names.1" : "names.0"),
                           &entry, (uint64_t) list->unread [index],
                           marker > 0 ? (uint64_t) marker : 0, (uint64_t) last_seq);
    st_reactions_destroy (&reactions);
    bson_destroy (&last);
}

//  The answer {conversations, more}: as many as the bytes allow (the
//  find kept to the limit)
static void
s_answer_conversations (sm_pending_t *pending, const s_conversations_t *list)
{
    st_list_t *rows = st_list_new (UINT32_MAX, false);
    if (!rows) {
        sm_fail (pending, "internal", "The store ran out of memory.");
        return;
    }
    for (uint32_t index = 0; index < list->count; index++) {
        s_pack_conversation (st_list_packer (rows), list, index);
        if (!st_list_push (rows))
            break;
    }
    st_list_answer (rows, pending->request, "conversations");
    st_list_destroy (&rows);
}

int
sm_run_pm_conversations (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                         bson_error_t *error)
{
    (void) packer;                  //  the list packs the answer
    //  One range of the (users, last_ts, _id) index, newest first; a user
    //  who does not exist has none
    bson_t *filter = BCON_NEW ("users", BCON_UTF8 (pending->key));
    bson_t *opts = BCON_NEW ("sort", "{", "last_ts", BCON_INT32 (-1), "_id", BCON_INT32 (-1), "}",
                             "limit", BCON_INT64 ((int64_t) pending->limit),
                             "hint", BCON_UTF8 (SM_CONVERSATIONS_INDEX));
    s_conversations_t list = { .capacity = pending->limit, .key = pending->key };
    list.documents = (bson_t **) calloc (list.capacity, sizeof (bson_t *));
    list.current = (bson_t **) calloc (list.capacity, sizeof (bson_t *));
    list.unread = (int64_t *) calloc (list.capacity, sizeof (int64_t));
    int rc = 0;
    if (!list.documents || !list.current || !list.unread)
        sm_fail (pending, "internal", "The store ran out of memory.");
    else {
        rc = sm_find (self, self->conversations, filter, opts, s_on_conversation, &list, error);
        if (rc == 0)
            rc = s_count_unread (self, &list, error);
        if (rc == 0)
            rc = s_find_current (self, &list, error);
        if (rc == 0)
            s_answer_conversations (pending, &list);
    }
    for (uint32_t index = 0; index < list.count; index++) {
        bson_destroy (list.documents [index]);
        if (list.current [index])
            bson_destroy (list.current [index]);
    }
    free (list.current);
    free (list.documents);
    free (list.unread);
    bson_destroy (opts);
    bson_destroy (filter);
    return rc;
}
//  pm.read without a conversation: there is nothing to mark (a marker
//  alone would not make one), but both users must exist. Returns 0, or -1
//  with error set.
static int
s_read_nothing (sm_store_t *self, sm_pending_t *pending, bson_error_t *error)
{
    s_user_name_t found [2];
    s_user_names_t names = { found, 0, 2 };
    int rc = s_find_pm_users (self, pending, pending + 1, &names, error);
    if (rc == 0) {
        bool me = s_user_name_of (&names, pending->key) != NULL;
        if (!me || !s_user_name_of (&names, pending->peer_key))
            s_fail_no_pm_user (pending, !me);
    }
    return rc;
}

//  Moves the reader's marker (field) up to pending->seq, conditionally: a
//  marker never goes back, whoever wrote last. Returns 0, or -1 with error
//  set.
static int
s_move_marker (sm_store_t *self, sm_pending_t *pending, const char *field, bson_error_t *error)
{
    bson_t *selector = BCON_NEW ("conv", BCON_UTF8 (pending->conv),
                                 field, "{", "$lt", BCON_INT64 ((int64_t) pending->seq), "}");
    bson_t *update = BCON_NEW ("$set", "{", field, BCON_INT64 ((int64_t) pending->seq), "}");
    self->round_trips++;
    bool ok = mongoc_collection_update_one (self->conversations, selector, update, NULL, NULL,
                                            error);
    bson_destroy (update);
    bson_destroy (selector);
    return ok ? 0 : -1;
}

//  The messages to the reader (name as registered) after marker. Returns
//  the count, or -1 with error set.
static int64_t
s_count_unread_after (sm_store_t *self, const sm_pending_t *pending, const char *name,
                      uint32_t name_size, int64_t marker, bson_error_t *error)
{
    bson_t filter = BSON_INITIALIZER, above;
    BSON_APPEND_UTF8 (&filter, "conv", pending->conv);
    BSON_APPEND_DOCUMENT_BEGIN (&filter, "seq", &above);
    BSON_APPEND_INT64 (&above, "$gt", marker);
    bson_append_document_end (&filter, &above);
    bson_append_utf8 (&filter, "to", 2, name, (int) name_size);
    s_unread_only (&filter);
    self->round_trips++;
    int64_t unread = mongoc_collection_count_documents (self->pm_messages, &filter, NULL, NULL,
                                                        NULL, error);
    bson_destroy (&filter);
    return unread;
}

//  pm.read on an existing conversation (its two users exist: it was made
//  with them): moves the marker, counts what remains unread
static int64_t
s_read_conversation (sm_store_t *self, sm_pending_t *pending, const bson_t *conversation,
                     int64_t *marker_p, bson_error_t *error)
{
    bool first = s_is_first_user (conversation, pending->key);
    const char *field = first ? "read_a" : "read_b";
    int64_t marker = sm_bson_int (conversation, field, 0);
    if ((int64_t) pending->seq > marker) {
        if (s_move_marker (self, pending, field, error))
            return -1;
        marker = (int64_t) pending->seq;
    }
    *marker_p = marker;
    if (sm_bson_int (conversation, "last_seq", 0) <= marker)
        return 0;
    uint32_t name_size;
    const char *name = sm_bson_text (conversation, first ? "names.0" : "names.1", &name_size);
    return s_count_unread_after (self, pending, name, name_size, marker, error);
}

int
sm_run_pm_read (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                bson_error_t *error)
{
    (void) packer;
    bson_t *filter = BCON_NEW ("conv", BCON_UTF8 (pending->conv));
    bson_t conversation = BSON_INITIALIZER;
    int rc = sm_find_one (self, self->conversations, filter, NULL, &conversation, error);
    int64_t unread = 0, marker = 0;
    if (rc == 0)
        rc = s_read_nothing (self, pending, error);
    else
    if (rc == 1) {
        unread = s_read_conversation (self, pending, &conversation, &marker, error);
        rc = unread < 0 ? -1 : 0;
    }
    if (rc == 0 && sm_is_live (pending))
        st_reply_pm_read (pending->request, (uint64_t) unread, (uint64_t) marker);
    bson_destroy (&conversation);
    bson_destroy (filter);
    return rc;
}

