/*  =========================================================================
    st_reply - the parts of proto/STORE.md's answers, packed once for every
    backend
    =========================================================================
*/

#include "st_reply.h"
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
                              + room->invited);
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
}

void
st_reply_entry (msgpack_packer *packer, const st_entry_t *entry)
{
    bool mentions = entry->mentions_packed.data || entry->mentions;
    bool by = entry->system && entry->by.data;
    msgpack_pack_map (packer, 5 + (entry->nonce.data ? 1 : 0) + (mentions ? 1 : 0) + by);
    pl_body_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, entry->seq);
    pl_body_pack_str (packer, "kind");
    pl_body_pack_str (packer, entry->system ? "system" : "message");
    pl_body_pack_str (packer, "user");
    st_reply_text (packer, entry->user);
    pl_body_pack_str (packer, "ts");
    msgpack_pack_int64 (packer, entry->ts);
    pl_body_pack_str (packer, entry->system ? "event" : "text");
    st_reply_text (packer, entry->system ? entry->event : entry->text);
    if (entry->nonce.data) {
        pl_body_pack_str (packer, "nonce");
        st_reply_text (packer, entry->nonce);
    }
    if (by) {
        pl_body_pack_str (packer, "by");
        st_reply_text (packer, entry->by);
    }
    if (!mentions)
        return;
    pl_body_pack_str (packer, "mentions");
    //  As stored: the msgpack array the request gave
    if (entry->mentions_packed.data)
        packer->callback (packer->data, entry->mentions_packed.data,
                          entry->mentions_packed.size);
    else
        msgpack_pack_object (packer, *entry->mentions);
}

void
st_reply_pm_entry (msgpack_packer *packer, const st_pm_entry_t *entry)
{
    msgpack_pack_map (packer, entry->nonce.data ? 6 : 5);
    pl_body_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, entry->seq);
    pl_body_pack_str (packer, "from");
    st_reply_text (packer, entry->from);
    pl_body_pack_str (packer, "to");
    st_reply_text (packer, entry->to);
    pl_body_pack_str (packer, "text");
    st_reply_text (packer, entry->text);
    pl_body_pack_str (packer, "ts");
    msgpack_pack_int64 (packer, entry->ts);
    if (entry->nonce.data) {
        pl_body_pack_str (packer, "nonce");
        st_reply_text (packer, entry->nonce);
    }
}

void
st_reply_duplicates (st_request_t *request, const st_duplicate_t *duplicates, uint32_t count)
{
    st_request_clear (request);
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, 1);
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
                       uint64_t unread, uint64_t read_seq)
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
    msgpack_pack_uint64 (packer, last->seq);
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
