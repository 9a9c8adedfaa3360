/*  =========================================================================
    sm_markers - the read markers of room members, and the counts after them
    =========================================================================
*/

#include "sm_markers.h"
#include "sm_common.h"
#include "sm_conn.h"
#include "pl_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
sm_marker_set (sm_store_t *self, const char *room_key, const char *user_key, int64_t seq,
               bool forward_only, bson_error_t *error)
{
    bson_t *query = BCON_NEW ("room", BCON_UTF8 (room_key), "user", BCON_UTF8 (user_key));
    bson_t *update = BCON_NEW (forward_only ? "$max" : "$set",
                               "{", "read_seq", BCON_INT64 (seq), "}");
    bson_t *opts = BCON_NEW ("upsert", BCON_BOOL (true));
    self->round_trips++;
    bool ok = mongoc_collection_update_one (self->markers, query, update, opts, NULL, error);
    bson_destroy (opts);
    bson_destroy (update);
    bson_destroy (query);
    return ok ? 0 : -1;
}

int
sm_marker_get (sm_store_t *self, const char *room_key, const char *user_key, int64_t *seq_p,
               bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("room", BCON_UTF8 (room_key), "user", BCON_UTF8 (user_key));
    bson_t *projection = BCON_NEW ("read_seq", BCON_INT32 (1));
    bson_t found = BSON_INITIALIZER;
    int rc = sm_find_one (self, self->markers, filter, projection, &found, error);
    *seq_p = rc == 1 ? sm_bson_int (&found, "read_seq", 0) : 0;
    bson_destroy (&found);
    bson_destroy (projection);
    bson_destroy (filter);
    return rc;
}

//  The rooms of sm_markers_of and where their markers go
typedef struct {
    bson_t *const *rooms;
    uint32_t count;
    int64_t *markers;
} s_markers_of_t;

static void
s_on_marker (void *arg, const bson_t *document)
{
    s_markers_of_t *found = (s_markers_of_t *) arg;
    uint32_t size;
    const char *room = sm_bson_text (document, "room", &size);
    for (uint32_t index = 0; index < found->count; index++) {
        uint32_t key_size;
        const char *key = sm_bson_text (found->rooms [index], "name_lower", &key_size);
        if (key_size == size && memcmp (key, room, size) == 0)
            found->markers [index] = sm_bson_int (document, "read_seq", 0);
    }
}

int
sm_markers_of (sm_store_t *self, const char *user_key, bson_t *const *rooms, uint32_t count,
               int64_t *markers, bson_error_t *error)
{
    for (uint32_t index = 0; index < count; index++)
        markers [index] = -1;
    if (count == 0)
        return 0;
    bson_t filter, condition, array;
    sm_in_begin (&filter, "room", &condition, &array);
    uint32_t keys = 0;
    for (uint32_t index = 0; index < count; index++) {
        uint32_t size;
        const char *key = sm_bson_text (rooms [index], "name_lower", &size);
        sm_array_append_text (&array, &keys, key, size);
    }
    sm_in_end (&filter, &condition, &array);
    BSON_APPEND_UTF8 (&filter, "user", user_key);
    s_markers_of_t found = { rooms, count, markers };
    int rc = sm_find (self, self->markers, &filter, NULL, s_on_marker, &found, error);
    bson_destroy (&filter);
    return rc;
}

int
sm_markers_drop (sm_store_t *self, const char *room_key, const char *user_key,
                 bson_error_t *error)
{
    bson_t *filter = user_key
        ? BCON_NEW ("room", BCON_UTF8 (room_key), "user", BCON_UTF8 (user_key))
        : BCON_NEW ("room", BCON_UTF8 (room_key));
    self->round_trips++;
    bool ok = mongoc_collection_delete_many (self->markers, filter, NULL, NULL, error);
    bson_destroy (filter);
    return ok ? 0 : -1;
}

//  Whether a later message entry of the request has the same sender: then
//  that one moves the marker, not this one
static bool
s_sender_sends_again (const sm_pending_t *pending, uint32_t index)
{
    const st_entry_t *entry = &pending->entries [index];
    for (uint32_t later = index + 1; later < pending->entry_count; later++) {
        const st_entry_t *other = &pending->entries [later];
        if (other->change.kind == ST_KIND_MESSAGE && sm_same_name (other->user.data, other->user.size,
                                            entry->user.data, entry->user.size))
            return true;
    }
    return false;
}

//  Adds one request's marker moves to the bulk; returns how many
static size_t
s_advance_request (mongoc_bulk_operation_t *bulk, const sm_pending_t *pending)
{
    size_t updates = 0;
    for (uint32_t index = 0; index < pending->entry_count; index++) {
        const st_entry_t *entry = &pending->entries [index];
        if (entry->change.kind != ST_KIND_MESSAGE || entry->user.size > ST_NAME_MAX
        ||  s_sender_sends_again (pending, index))
            continue;
        char user_key [ST_NAME_MAX + 1];
        st_text_lower (entry->user, user_key);
        //  Only members have markers: no upsert (one that left has none)
        bson_t *selector = BCON_NEW ("room", BCON_UTF8 (pending->room_key),
                                     "user", BCON_UTF8 (user_key));
        bson_t *update = BCON_NEW ("$max", "{", "read_seq",
                                   BCON_INT64 ((int64_t) entry->seq), "}");
        mongoc_bulk_operation_update_one_with_opts (bulk, selector, update, NULL, NULL);
        bson_destroy (selector);
        bson_destroy (update);
        updates++;
    }
    return updates;
}

void
sm_markers_advance (sm_store_t *self, sm_pending_t *first, sm_pending_t *end)
{
    bson_t *bulk_opts = BCON_NEW ("ordered", BCON_BOOL (false));
    mongoc_bulk_operation_t *bulk
        = mongoc_collection_create_bulk_operation_with_opts (self->markers, bulk_opts);
    bson_destroy (bulk_opts);
    size_t updates = 0;
    for (sm_pending_t *pending = first; pending < end; pending++)
        if (sm_is_live (pending))
            updates += s_advance_request (bulk, pending);
    if (updates > 0) {
        bson_t reply;
        bson_error_t error;
        self->round_trips++;
        if (!mongoc_bulk_operation_execute (bulk, &reply, &error))
            sm_note_failure (self, "moving the senders' read markers", &error);
        bson_destroy (&reply);
    }
    mongoc_bulk_operation_destroy (bulk);
}

//  Counts the messages that match filter. Returns the count, or -1.
static int64_t
s_count (sm_store_t *self, const bson_t *filter, const char *hint, bson_error_t *error)
{
    bson_t *opts = BCON_NEW ("hint", BCON_UTF8 (hint));
    self->round_trips++;
    int64_t count = mongoc_collection_count_documents (self->messages, filter, opts, NULL, NULL,
                                                       error);
    bson_destroy (opts);
    return count;
}

int
sm_marker_counts (sm_store_t *self, const char *room_key, const char *user,
                  const char *user_key, int64_t read_seq, int64_t *unread_p,
                  int64_t *mentions_p, bson_error_t *error)
{
    //  One range of (room, seq) after the marker
    bson_t *unread = BCON_NEW ("room", BCON_UTF8 (room_key),
                               "seq", "{", "$gt", BCON_INT64 (read_seq), "}",
                               "kind", BCON_UTF8 ("message"),
                               "user", "{", "$ne", BCON_UTF8 (user), "}");
    *unread_p = s_count (self, unread, SM_TIMELINE_INDEX, error);
    bson_destroy (unread);
    if (*unread_p < 0)
        return -1;
    //  One range of (room, mentioned, seq): a sender is never in its own
    //  message's 'mentioned', so these are all among the unread
    bson_t *mentions = BCON_NEW ("room", BCON_UTF8 (room_key),
                                 "mentioned", BCON_UTF8 (user_key),
                                 "seq", "{", "$gt", BCON_INT64 (read_seq), "}");
    *mentions_p = s_count (self, mentions, SM_MENTIONS_INDEX, error);
    bson_destroy (mentions);
    return *mentions_p < 0 ? -1 : 0;
}

void
sm_entry_mentions_build (const st_entry_t *entry, bson_t *document)
{
    if (!entry->mentions)
        return;
    bson_t names, keys;
    uint32_t name_count = 0, key_count = 0;
    BSON_APPEND_ARRAY_BEGIN (document, "mentions", &names);
    for (uint32_t index = 0; index < entry->mentions->via.array.size; index++) {
        const msgpack_object *name = &entry->mentions->via.array.ptr [index];
        sm_array_append_text (&names, &name_count, name->via.str.ptr, name->via.str.size);
    }
    bson_append_array_end (document, &names);
    BSON_APPEND_ARRAY_BEGIN (document, "mentioned", &keys);
    for (uint32_t index = 0; index < entry->mentions->via.array.size; index++) {
        const msgpack_object *name = &entry->mentions->via.array.ptr [index];
        if (sm_same_name (name->via.str.ptr, name->via.str.size,
                          entry->user.data, entry->user.size))
            continue;
        char key [ST_NAME_MAX + 1];
        st_text_lower ((st_text_t) { name->via.str.ptr, name->via.str.size }, key);
        sm_array_append_text (&keys, &key_count, key, (uint32_t) strlen (key));
    }
    bson_append_array_end (document, &keys);
}

void
sm_entry_mentions_read (const bson_t *document, msgpack_sbuffer *buffer, st_entry_t *entry)
{
    bson_iter_t iter, names;
    if (!bson_iter_init_find (&iter, document, "mentions") || !BSON_ITER_HOLDS_ARRAY (&iter)
    ||  !bson_iter_recurse (&iter, &names))
        return;
    uint32_t count = 0;
    bson_iter_t counting = names;
    while (bson_iter_next (&counting))
        count += BSON_ITER_HOLDS_UTF8 (&counting);
    if (count == 0)
        return;
    msgpack_packer packer;
    msgpack_packer_init (&packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_array (&packer, count);
    while (bson_iter_next (&names))
        if (BSON_ITER_HOLDS_UTF8 (&names)) {
            uint32_t size;
            const char *name = bson_iter_utf8 (&names, &size);
            msgpack_pack_str_with_body (&packer, name, size);
        }
    entry->mentions_packed = (st_text_t) { buffer->data, (uint32_t) buffer->size };
}
