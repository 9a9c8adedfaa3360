/*  =========================================================================
    st_reply - the parts of proto/STORE.md's answers, packed once for every
    backend
    =========================================================================
*/

#include "st_reply.h"
#include "st_reactions.h"
#include "pl_body.h"

#include <string.h>

void
st_reply_text (msgpack_packer *packer, st_text_t text)
{
    msgpack_pack_str_with_body (packer, text.data ? text.data : "", text.data ? text.size : 0);
}

void
st_reply_bool (msgpack_packer *packer, bool value)
{
    if (value)
        msgpack_pack_true (packer);
    else
        msgpack_pack_false (packer);
}

void
st_reply_user (msgpack_packer *packer, const st_user_t *user)
{
    bool with_hash = user->password_hash.data != NULL;
    msgpack_pack_map (packer, with_hash ? 5 : 4);
    pl_body_pack_str (packer, "name");
    st_reply_text (packer, user->name);
    if (with_hash) {
        pl_body_pack_str (packer, "password_hash");
        st_reply_text (packer, user->password_hash);
    }
    pl_body_pack_str (packer, "created_at");
    msgpack_pack_int64 (packer, user->created_at);
    pl_body_pack_str (packer, "last_seen");
    if (user->seen)
        msgpack_pack_int64 (packer, user->last_seen);
    else
        msgpack_pack_nil (packer);
    pl_body_pack_str (packer, "state");
    if (user->state.data && user->state.size)
        st_reply_text (packer, user->state);
    else
        pl_body_pack_str (packer, "active");
}

void
st_reply_room (msgpack_packer *packer, const st_room_t *room)
{
    msgpack_pack_map (packer, 9 + (room->joined >= 0) + (room->has_marker ? 3 : 0)
                              + room->invited + room->banned);
    pl_body_pack_str (packer, "name");
    st_reply_text (packer, room->name);
    pl_body_pack_str (packer, "description");
    st_reply_text (packer, room->description);
    pl_body_pack_str (packer, "private");
    st_reply_bool (packer, room->is_private);
    pl_body_pack_str (packer, "max_participants");
    msgpack_pack_uint64 (packer, room->max_participants);
    pl_body_pack_str (packer, "owner");
    st_reply_text (packer, room->owner);
    pl_body_pack_str (packer, "created_at");
    msgpack_pack_int64 (packer, room->created_at);
    pl_body_pack_str (packer, "members");
    msgpack_pack_uint64 (packer, room->members);
    pl_body_pack_str (packer, "last_seq");
    msgpack_pack_uint64 (packer, room->last_seq);
    pl_body_pack_str (packer, "active_at");
    msgpack_pack_int64 (packer, room->active_at);
    if (room->joined >= 0) {
        pl_body_pack_str (packer, "joined");
        st_reply_bool (packer, room->joined != 0);
    }
    if (room->has_marker) {
        pl_body_pack_str (packer, "read_seq");
        msgpack_pack_uint64 (packer, room->read_seq);
        pl_body_pack_str (packer, "unread");
        msgpack_pack_uint64 (packer, room->unread);
        pl_body_pack_str (packer, "mentions");
        msgpack_pack_uint64 (packer, room->mentions);
    }
    if (room->invited) {
        pl_body_pack_str (packer, "invited");
        st_reply_bool (packer, true);
    }
    if (room->banned) {
        pl_body_pack_str (packer, "banned");
        st_reply_bool (packer, true);
    }
}

//  How many fields a message's reply_to and state take
static uint32_t
s_state_fields (const st_change_t *change)
{
    return (change->reply_to ? 1 : 0) + (change->edited ? 1 : 0) + (change->deleted ? 1 : 0)
         + (st_reactions_any (change->reactions) ? 1 : 0) + (change->file.id.data ? 1 : 0);
}

//  A message's reply_to and its state now: what s_state_fields counted
static void
s_pack_state (msgpack_packer *packer, const st_change_t *change)
{
    if (change->reply_to) {
        pl_body_pack_str (packer, "reply_to");
        msgpack_pack_uint64 (packer, change->reply_to);
    }
    if (change->edited) {
        pl_body_pack_str (packer, "edited");
        msgpack_pack_int64 (packer, change->edited_at);
    }
    if (change->deleted) {
        pl_body_pack_str (packer, "deleted");
        st_reply_bool (packer, true);
    }
    if (st_reactions_any (change->reactions)) {
        pl_body_pack_str (packer, "reactions");
        st_reactions_pack (change->reactions, packer);
    }
    if (change->file.id.data) {
        pl_body_pack_str (packer, "file");
        st_reply_file_ref (packer, &change->file);
    }
}

//  How many fields a change takes beside its text: target, emoji, on
static uint32_t
s_change_fields (const st_change_t *change)
{
    if (change->kind == ST_KIND_MESSAGE || change->kind == ST_KIND_SYSTEM)
        return 0;
    return change->kind == ST_KIND_REACTION ? 3 : 1;
}

static void
s_pack_change (msgpack_packer *packer, const st_change_t *change)
{
    if (s_change_fields (change) == 0)
        return;
    pl_body_pack_str (packer, "target");
    msgpack_pack_uint64 (packer, change->target);
    if (change->kind != ST_KIND_REACTION)
        return;
    pl_body_pack_str (packer, "emoji");
    st_reply_text (packer, change->emoji);
    pl_body_pack_str (packer, "on");
    st_reply_bool (packer, change->on);
}

//  An entry's own fields after the four every entry has, by its kind
static uint32_t
s_entry_fields (const st_entry_t *entry)
{
    const st_change_t *change = &entry->change;
    switch (change->kind) {
        case ST_KIND_MESSAGE:
            return 1 + (entry->nonce.data ? 1 : 0)
                 + (entry->mentions_packed.data || entry->mentions ? 1 : 0)
                 + s_state_fields (change);
        case ST_KIND_SYSTEM:
            return 1 + (entry->by.data ? 1 : 0);
        case ST_KIND_EDIT:
            return 1 + s_change_fields (change);
        default:
            return s_change_fields (change);
    }
}

//  A message's mentions as stored: the msgpack array the request gave
static void
s_pack_mentions (msgpack_packer *packer, const st_entry_t *entry)
{
    if (!entry->mentions_packed.data && !entry->mentions)
        return;
    pl_body_pack_str (packer, "mentions");
    if (entry->mentions_packed.data)
        packer->callback (packer->data, entry->mentions_packed.data,
                          entry->mentions_packed.size);
    else
        msgpack_pack_object (packer, *entry->mentions);
}

void
st_reply_entry (msgpack_packer *packer, const st_entry_t *entry)
{
    const st_change_t *change = &entry->change;
    msgpack_pack_map (packer, 4 + s_entry_fields (entry));
    pl_body_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, entry->seq);
    pl_body_pack_str (packer, "kind");
    pl_body_pack_str (packer, st_kind_name (change->kind));
    pl_body_pack_str (packer, "user");
    st_reply_text (packer, entry->user);
    pl_body_pack_str (packer, "ts");
    msgpack_pack_int64 (packer, entry->ts);
    if (change->kind == ST_KIND_SYSTEM) {
        pl_body_pack_str (packer, "event");
        st_reply_text (packer, entry->event);
        if (entry->by.data) {
            pl_body_pack_str (packer, "by");
            st_reply_text (packer, entry->by);
        }
        return;
    }
    if (change->kind == ST_KIND_MESSAGE || change->kind == ST_KIND_EDIT) {
        pl_body_pack_str (packer, "text");
        st_reply_text (packer, entry->text);
    }
    s_pack_change (packer, change);
    if (change->kind != ST_KIND_MESSAGE)
        return;
    if (entry->nonce.data) {
        pl_body_pack_str (packer, "nonce");
        st_reply_text (packer, entry->nonce);
    }
    s_pack_mentions (packer, entry);
    s_pack_state (packer, change);
}

void
st_reply_pm_entry (msgpack_packer *packer, const st_pm_entry_t *entry)
{
    const st_change_t *change = &entry->change;
    bool message = change->kind == ST_KIND_MESSAGE;
    msgpack_pack_map (packer, 6 + s_change_fields (change)
                              + (message ? (entry->nonce.data ? 1 : 0) + s_state_fields (change)
                                         : 0));
    pl_body_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, entry->seq);
    pl_body_pack_str (packer, "kind");
    pl_body_pack_str (packer, st_kind_name (change->kind));
    pl_body_pack_str (packer, "from");
    st_reply_text (packer, entry->from);
    pl_body_pack_str (packer, "to");
    st_reply_text (packer, entry->to);
    pl_body_pack_str (packer, "text");
    st_reply_text (packer, entry->text);
    pl_body_pack_str (packer, "ts");
    msgpack_pack_int64 (packer, entry->ts);
    s_pack_change (packer, change);
    if (!message)
        return;
    if (entry->nonce.data) {
        pl_body_pack_str (packer, "nonce");
        st_reply_text (packer, entry->nonce);
    }
    s_pack_state (packer, change);
}

void
st_reply_duplicates (st_request_t *request, const st_duplicate_t *duplicates, uint32_t count)
{
    st_reply_refused (request, NULL, 0, duplicates, count);
}

void
st_reply_refused (st_request_t *request, const st_refusal_t *refused, uint32_t refused_count,
                  const st_duplicate_t *duplicates, uint32_t count)
{
    st_request_clear (request);
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, (refused_count ? 1 : 0) + (count ? 1 : 0));
    if (refused_count) {
        pl_body_pack_str (packer, "refused");
        msgpack_pack_array (packer, refused_count);
    }
    for (uint32_t item = 0; item < refused_count; item++) {
        msgpack_pack_map (packer, 2);
        pl_body_pack_str (packer, "index");
        msgpack_pack_uint32 (packer, refused [item].index);
        pl_body_pack_str (packer, "code");
        pl_body_pack_str (packer, refused [item].code);
    }
    if (!count)
        return;
    pl_body_pack_str (packer, "duplicates");
    msgpack_pack_array (packer, count);
    for (uint32_t item = 0; item < count; item++) {
        msgpack_pack_map (packer, 3);
        pl_body_pack_str (packer, "index");
        msgpack_pack_uint32 (packer, duplicates [item].index);
        pl_body_pack_str (packer, "seq");
        msgpack_pack_uint64 (packer, duplicates [item].seq);
        pl_body_pack_str (packer, "ts");
        msgpack_pack_int64 (packer, duplicates [item].ts);
    }
}

void
st_reply_nonce (st_request_t *request, bool found, uint64_t seq, int64_t ts)
{
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, found ? 3 : 1);
    pl_body_pack_str (packer, "duplicate");
    st_reply_bool (packer, found);
    if (found) {
        pl_body_pack_str (packer, "seq");
        msgpack_pack_uint64 (packer, seq);
        pl_body_pack_str (packer, "ts");
        msgpack_pack_int64 (packer, ts);
    }
}

void
st_reply_conversation (msgpack_packer *packer, st_text_t with, const st_pm_entry_t *last,
                       uint64_t unread, uint64_t read_seq, uint64_t last_seq)
{
    msgpack_pack_map (packer, 5);
    pl_body_pack_str (packer, "with");
    st_reply_text (packer, with);
    pl_body_pack_str (packer, "last");
    st_reply_pm_entry (packer, last);
    pl_body_pack_str (packer, "unread");
    msgpack_pack_uint64 (packer, unread);
    pl_body_pack_str (packer, "read_seq");
    msgpack_pack_uint64 (packer, read_seq);
    pl_body_pack_str (packer, "last_seq");
    msgpack_pack_uint64 (packer, last_seq);
}

void
st_reply_pm_read (st_request_t *request, uint64_t unread, uint64_t read_seq)
{
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, 2);
    pl_body_pack_str (packer, "unread");
    msgpack_pack_uint64 (packer, unread);
    pl_body_pack_str (packer, "read_seq");
    msgpack_pack_uint64 (packer, read_seq);
}

void
st_reply_info (st_request_t *request, const char *backend, uint32_t schema_version)
{
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, 2);
    pl_body_pack_str (packer, "backend");
    pl_body_pack_str (packer, backend);
    pl_body_pack_str (packer, "schema_version");
    msgpack_pack_uint32 (packer, schema_version);
}

void
st_reply_uint (st_request_t *request, const char *key, uint64_t value)
{
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, 1);
    pl_body_pack_str (packer, key);
    msgpack_pack_uint64 (packer, value);
}

void
st_reply_name (st_request_t *request, const char *key, st_text_t name)
{
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, 1);
    pl_body_pack_str (packer, key);
    st_reply_text (packer, name);
}

void
st_reply_no_user (st_request_t *request, st_text_t name)
{
    st_request_fail (request, "not_found", "No user is named '%.*s'.",
                     (int) name.size, name.data ? name.data : "");
}

void
st_reply_no_room (st_request_t *request, st_text_t name)
{
    st_request_fail (request, "not_found", "No room is named '%.*s'.",
                     (int) name.size, name.data ? name.data : "");
}

void
st_reply_no_token (st_request_t *request)
{
    st_request_fail (request, "not_found", "No such token.");
}


//  --------------------------------------------------------------------------
//  Files (schema version 13)

void
st_reply_file_ref (msgpack_packer *packer, const st_file_ref_t *file)
{
    msgpack_pack_map (packer, 4);
    pl_body_pack_str (packer, "id");
    st_reply_text (packer, file->id);
    pl_body_pack_str (packer, "name");
    st_reply_text (packer, file->name);
    pl_body_pack_str (packer, "size");
    msgpack_pack_uint64 (packer, file->size);
    pl_body_pack_str (packer, "type");
    st_reply_text (packer, file->type);
}

void
st_reply_file (st_request_t *request, const st_file_ref_t *file)
{
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, 1);
    pl_body_pack_str (packer, "file");
    st_reply_file_ref (packer, file);
}

void
st_reply_file_get (st_request_t *request, const st_file_ref_t *file, st_text_t user,
                   int64_t ts, bool complete)
{
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, 7);
    pl_body_pack_str (packer, "id");
    st_reply_text (packer, file->id);
    pl_body_pack_str (packer, "user");
    st_reply_text (packer, user);
    pl_body_pack_str (packer, "name");
    st_reply_text (packer, file->name);
    pl_body_pack_str (packer, "type");
    st_reply_text (packer, file->type);
    pl_body_pack_str (packer, "size");
    msgpack_pack_uint64 (packer, file->size);
    pl_body_pack_str (packer, "ts");
    msgpack_pack_int64 (packer, ts);
    pl_body_pack_str (packer, "complete");
    st_reply_bool (packer, complete);
}

void
st_reply_file_data (st_request_t *request, const st_file_ref_t *file, const void *data,
                    size_t size)
{
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, 4);
    pl_body_pack_str (packer, "name");
    st_reply_text (packer, file->name);
    pl_body_pack_str (packer, "type");
    st_reply_text (packer, file->type);
    pl_body_pack_str (packer, "size");
    msgpack_pack_uint64 (packer, file->size);
    pl_body_pack_str (packer, "data");
    msgpack_pack_bin (packer, size);
    msgpack_pack_bin_body (packer, data, size);
}

void
st_reply_no_file (st_request_t *request)
{
    st_request_fail (request, "not_found", "No such file.");
}
