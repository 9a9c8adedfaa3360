/*  =========================================================================
    sm_validate - a store request's fields, read and checked (see sm_validate.h)
    =========================================================================
*/

#include "sm_store.h"
#include "sm_append.h"
#include "sm_common.h"
#include "sm_validate.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  --------------------------------------------------------------------------
//  Validation: reads a request's fields into its pending slot, or says why not

//  The value of key in map, or NULL
const msgpack_object *
sm_field (const msgpack_object *map, const char *key)
{
    size_t key_size = strlen (key);
    for (uint32_t index = 0; index < map->via.map.size; index++) {
        const msgpack_object_kv *pair = &map->via.map.ptr [index];
        if (pair->key.type == MSGPACK_OBJECT_STR
        &&  pair->key.via.str.size == key_size
        &&  memcmp (pair->key.via.str.ptr, key, key_size) == 0)
            return &pair->val;
    }
    return NULL;
}

//  The value of key in map unless absent or nil, else NULL
static const msgpack_object *
s_given (const msgpack_object *map, const char *key)
{
    const msgpack_object *value = sm_field (map, key);
    return value && value->type != MSGPACK_OBJECT_NIL ? value : NULL;
}

//  Puts where in front of pending's sentence, to say which part of the
//  request was refused ("In 'entries' [3]: The field 'ts' is missing.")
static void
s_fail_where (sm_pending_t *pending, const char *where)
{
    char reason [sizeof pending->message];
    memcpy (reason, pending->message, sizeof reason);
    snprintf (pending->message, sizeof pending->message, "%.32s: %.160s", where, reason);
}

//  Reads a string field of 1 to max bytes without NUL. Returns 0, or -1
//  after failing pending with bad_request.
static int
s_read_text (sm_pending_t *pending, const msgpack_object *map, const char *key,
             uint32_t max, bool required, sm_text_t *text)
{
    const msgpack_object *value = sm_field (map, key);
    if (!value) {
        if (!required)
            return 0;
        sm_fail (pending, "bad_request", "The field '%s' is missing.", key);
        return -1;
    }
    if (value->type != MSGPACK_OBJECT_STR) {
        sm_fail (pending, "bad_request", "The field '%s' must be a string.", key);
        return -1;
    }
    if (value->via.str.size == 0 || value->via.str.size > max
    ||  memchr (value->via.str.ptr, 0, value->via.str.size)) {
        sm_fail (pending, "bad_request",
                 "The field '%s' must have 1 to %u bytes and no NUL.", key, max);
        return -1;
    }
    text->data = value->via.str.ptr;
    text->size = value->via.str.size;
    return 0;
}

//  Reads a name and its lower-cased key
static int
s_read_name (sm_pending_t *pending, const msgpack_object *map, const char *key, bool required)
{
    if (s_read_text (pending, map, key, SM_NAME_MAX, required, &pending->name))
        return -1;
    sm_lower (pending->name.data, pending->name.size, pending->key);
    return 0;
}

//  Reads a time: an integer, 0 or more, that fits int64
static int
s_read_time_object (sm_pending_t *pending, const msgpack_object *value, const char *key,
                    int64_t *time_p)
{
    if (!value) {
        sm_fail (pending, "bad_request", "The field '%s' is missing.", key);
        return -1;
    }
    if (value->type != MSGPACK_OBJECT_POSITIVE_INTEGER || value->via.u64 > INT64_MAX) {
        sm_fail (pending, "bad_request",
                 "The field '%s' must be an integer of milliseconds since 1970, 0 or more.", key);
        return -1;
    }
    *time_p = (int64_t) value->via.u64;
    return 0;
}

static int
s_read_time (sm_pending_t *pending, const msgpack_object *map, const char *key, int64_t *time_p)
{
    return s_read_time_object (pending, sm_field (map, key), key, time_p);
}

//  Validates store.user.seen's users array in place
static int
s_read_seen (sm_pending_t *pending, const msgpack_object *map)
{
    const msgpack_object *users = sm_field (map, "users");
    if (!users || users->type != MSGPACK_OBJECT_ARRAY
    ||  users->via.array.size == 0 || users->via.array.size > SM_SEEN_MAX) {
        sm_fail (pending, "bad_request",
                 "The field 'users' must be an array of 1 to %d maps {name, last_seen}.",
                 SM_SEEN_MAX);
        return -1;
    }
    for (uint32_t index = 0; index < users->via.array.size; index++) {
        const msgpack_object *entry = &users->via.array.ptr [index];
        if (entry->type != MSGPACK_OBJECT_MAP) {
            sm_fail (pending, "bad_request", "Entry %u of 'users' is not a map.", index);
            return -1;
        }
        sm_text_t name;
        int64_t last_seen;
        if (s_read_text (pending, entry, "name", SM_NAME_MAX, true, &name)
        ||  s_read_time (pending, entry, "last_seen", &last_seen)) {
            char where [32];
            snprintf (where, sizeof where, "Entry %u of 'users'", index);
            s_fail_where (pending, where);
            return -1;
        }
    }
    pending->users = users;
    return 0;
}

//  Reads a string of 0 to max bytes without NUL (a description, a text)
static int
s_read_string (sm_pending_t *pending, const msgpack_object *map, const char *key,
               uint32_t max, bool required, sm_text_t *text)
{
    const msgpack_object *value = sm_field (map, key);
    if (!value) {
        if (!required)
            return 0;
        sm_fail (pending, "bad_request", "The field '%s' is missing.", key);
        return -1;
    }
    if (value->type != MSGPACK_OBJECT_STR || value->via.str.size > max
    ||  memchr (value->via.str.ptr, 0, value->via.str.size)) {
        sm_fail (pending, "bad_request",
                 "The field '%s' must be a string of at most %u bytes and no NUL.", key, max);
        return -1;
    }
    text->data = value->via.str.ptr;
    text->size = value->via.str.size;
    return 0;
}

//  Reads a room's name and its lower-cased key
static int
s_read_room (sm_pending_t *pending, const msgpack_object *map, const char *key)
{
    if (s_read_text (pending, map, key, SM_ROOM_MAX, true, &pending->room))
        return -1;
    sm_lower (pending->room.data, pending->room.size, pending->room_key);
    return 0;
}

//  Reads an unsigned integer from min to max; absent: fallback if optional
static int
s_read_uint (sm_pending_t *pending, const msgpack_object *map, const char *key,
             uint64_t min, uint64_t max, bool required, uint64_t fallback, uint64_t *value_p)
{
    const msgpack_object *value = sm_field (map, key);
    if (!value && !required) {
        *value_p = fallback;
        return 0;
    }
    if (!value) {
        sm_fail (pending, "bad_request", "The field '%s' is missing.", key);
        return -1;
    }
    if (value->type != MSGPACK_OBJECT_POSITIVE_INTEGER
    ||  value->via.u64 < min || value->via.u64 > max) {
        sm_fail (pending, "bad_request", "The field '%s' must be an integer from %" PRIu64
                 " to %" PRIu64 ".", key, min, max);
        return -1;
    }
    *value_p = value->via.u64;
    return 0;
}

//  Reads one timeline entry map (msg.append's 'entry' or an element of its
//  'entries', member.add/remove's 'entry') into entry. Returns 0, or -1
//  after failing pending with a sentence that does not say where the entry
//  was: the caller puts that in front (s_fail_where).
int
sm_entry_read (sm_pending_t *pending, const msgpack_object *value, sm_entry_t *entry)
{
    memset (entry, 0, sizeof *entry);
    if (value->type != MSGPACK_OBJECT_MAP) {
        sm_fail (pending, "bad_request",
                 "The entry must be a map {seq, kind, user, ts, text or event}.");
        return -1;
    }
    sm_text_t kind = { NULL, 0 };
    if (s_read_uint (pending, value, "seq", 1, INT64_MAX, true, 0, &entry->seq)
    ||  s_read_text (pending, value, "kind", 16, true, &kind)
    ||  s_read_text (pending, value, "user", SM_NAME_MAX, true, &entry->user)
    ||  s_read_time (pending, value, "ts", &entry->ts))
        return -1;
    if (kind.size == 7 && memcmp (kind.data, "message", 7) == 0) {
        if (s_read_string (pending, value, "text", SM_TEXT_MAX, true, &entry->text))
            return -1;
    }
    else
    if (kind.size == 6 && memcmp (kind.data, "system", 6) == 0) {
        entry->system = true;
        if (s_read_text (pending, value, "event", 16, true, &entry->event))
            return -1;
        if (!((entry->event.size == 4 && memcmp (entry->event.data, "join", 4) == 0)
        ||    (entry->event.size == 5 && memcmp (entry->event.data, "leave", 5) == 0))) {
            sm_fail (pending, "bad_request", "The field 'event' must be \"join\" or \"leave\".");
            return -1;
        }
    }
    else {
        sm_fail (pending, "bad_request", "The field 'kind' must be \"message\" or \"system\".");
        return -1;
    }
    entry->present = true;
    return 0;
}

//  Reads the timeline entry of msg.append, member.add/remove (optional
//  there; nil is absent)
static int
s_read_entry (sm_pending_t *pending, const msgpack_object *map, bool required)
{
    const msgpack_object *value = sm_field (map, "entry");
    if (!value || value->type == MSGPACK_OBJECT_NIL) {
        if (!required)
            return 0;
        sm_fail (pending, "bad_request", "The field 'entry' is missing.");
        return -1;
    }
    if (value->type != MSGPACK_OBJECT_MAP) {
        sm_fail (pending, "bad_request",
                 "The field 'entry' must be a map {seq, kind, user, ts, text or event}.");
        return -1;
    }
    if (sm_entry_read (pending, value, &pending->entry)) {
        s_fail_where (pending, "In 'entry'");
        return -1;
    }
    return 0;
}

//  Reads one element of a run (an entry of msg.append, a message of
//  pm.append) and gives its seq. Returns 0, or -1 after failing pending
//  with a sentence that does not say where the element was.
typedef int (s_element_fn) (sm_pending_t *pending, const msgpack_object *value,
                            uint64_t *seq_p);

//  Reads the run in the array field key: 1 to SM_ENTRIES_MAX elements, each
//  read by read, whose seqs follow one another. Every element is checked
//  now, so that a run is never refused half way; the run stays in fields,
//  where sm_insert_entries reads it again. Returns 0, or -1 failed with a
//  sentence that names the element ("In 'entries' [3]: ...").
static int
s_read_run_array (sm_pending_t *pending, const msgpack_object *array, const char *key,
                  s_element_fn *read)
{
    if (array->type != MSGPACK_OBJECT_ARRAY
    ||  array->via.array.size == 0 || array->via.array.size > SM_ENTRIES_MAX) {
        sm_fail (pending, "bad_request", "The field '%s' must be an array of 1 to %d %s.",
                 key, SM_ENTRIES_MAX, key);
        return -1;
    }
    uint64_t first = 0;
    for (uint32_t index = 0; index < array->via.array.size; index++) {
        uint64_t seq = 0;
        int rc = read (pending, &array->via.array.ptr [index], &seq);
        if (rc == 0 && index == 0)
            first = seq;
        else
        if (rc == 0 && seq != first + index) {
            sm_fail (pending, "bad_request", "The seq must be %" PRIu64 ", one more than the"
                     " seq before.", first + index);
            rc = -1;
        }
        if (rc) {
            char where [32];
            snprintf (where, sizeof where, "In '%s' [%u]", key, index);
            s_fail_where (pending, where);
            return -1;
        }
    }
    pending->entries = array->via.array.ptr;
    pending->entry_count = array->via.array.size;
    return 0;
}

static int
s_entry_seq_read (sm_pending_t *pending, const msgpack_object *value, uint64_t *seq_p)
{
    sm_entry_t entry;
    if (sm_entry_read (pending, value, &entry))
        return -1;
    *seq_p = entry.seq;
    return 0;
}

//  Reads msg.append's run: 'entry' (a run of one) or 'entries', not both
static int
s_read_run (sm_pending_t *pending, const msgpack_object *map)
{
    const msgpack_object *single = s_given (map, "entry");
    const msgpack_object *entries = s_given (map, "entries");
    if (single && entries) {
        sm_fail (pending, "bad_request", "Give 'entry' or 'entries', not both.");
        return -1;
    }
    if (!single && !entries) {
        sm_fail (pending, "bad_request", "The field 'entry' or 'entries' is missing.");
        return -1;
    }
    if (single) {
        if (s_read_entry (pending, map, true))
            return -1;
        pending->entries = single;
        pending->entry_count = 1;
        return 0;
    }
    if (s_read_run_array (pending, entries, "entries", s_entry_seq_read))
        return -1;
    //  The run's first, read again: it cannot fail
    return sm_entry_read (pending, &pending->entries [0], &pending->entry);
}

//  Reads one private message (pm.append's own fields, or an element of its
//  'messages') into message: its 'from' must be one of the request's two
//  users, read before. Returns 0, or -1 after failing pending with a
//  sentence that does not say where the message was.
int
sm_pm_message_read (sm_pending_t *pending, const msgpack_object *value, sm_pm_message_t *message)
{
    memset (message, 0, sizeof *message);
    if (value->type != MSGPACK_OBJECT_MAP) {
        sm_fail (pending, "bad_request", "The message must be a map {from, seq, text, ts}.");
        return -1;
    }
    sm_text_t from;
    if (s_read_text (pending, value, "from", SM_NAME_MAX, true, &from)
    ||  s_read_uint (pending, value, "seq", 1, INT64_MAX, true, 0, &message->seq)
    ||  s_read_string (pending, value, "text", SM_TEXT_MAX, true, &message->text)
    ||  s_read_time (pending, value, "ts", &message->ts))
        return -1;
    char key [SM_NAME_MAX + 1];
    sm_lower (from.data, from.size, key);
    if (strcmp (key, pending->key) == 0)
        return 0;
    if (strcmp (key, pending->peer_key) == 0) {
        message->from_peer = true;
        return 0;
    }
    sm_fail (pending, "bad_request", "The message's 'from' must be '%.*s' or '%.*s'.",
             (int) (pending->name.size < 40 ? pending->name.size : 40), pending->name.data,
             (int) (pending->peer.size < 40 ? pending->peer.size : 40), pending->peer.data);
    return -1;
}

static int
s_pm_message_seq_read (sm_pending_t *pending, const msgpack_object *value, uint64_t *seq_p)
{
    sm_pm_message_t message;
    if (sm_pm_message_read (pending, value, &message))
        return -1;
    *seq_p = message.seq;
    return 0;
}

//  Reads pm.append's run: one message in the request's own fields (seq,
//  text, ts, from 'from') or 'messages', not both
static int
s_read_pm_run (sm_pending_t *pending, const msgpack_object *map)
{
    const msgpack_object *messages = s_given (map, "messages");
    bool single = s_given (map, "seq") || s_given (map, "text") || s_given (map, "ts");
    if (single && messages) {
        sm_fail (pending, "bad_request", "Give 'seq', 'text' and 'ts', or 'messages', not both.");
        return -1;
    }
    if (!single && !messages) {
        sm_fail (pending, "bad_request",
                 "The fields 'seq', 'text' and 'ts', or the field 'messages', are missing.");
        return -1;
    }
    if (messages) {
        if (s_read_run_array (pending, messages, "messages", s_pm_message_seq_read))
            return -1;
    }
    else {
        pending->entries = map;
        pending->entry_count = 1;
    }
    //  The run's first (read again for 'messages': it cannot fail)
    sm_pm_message_t message;
    if (sm_pm_message_read (pending, &pending->entries [0], &message))
        return -1;
    pending->seq = message.seq;
    return 0;
}

//  The seqs of msg.append's and pm.append's runs: the first, the last
uint64_t
sm_first_seq (const sm_pending_t *pending)
{
    return pending->op == SM_OP_PM_APPEND ? pending->seq : pending->entry.seq;
}

uint64_t
sm_last_seq (const sm_pending_t *pending)
{
    return sm_first_seq (pending) + pending->entry_count - 1;
}

//  The timeline a msg.append or pm.append request appends to: a room's, in
//  messages by 'room', or a conversation's, in pm_messages by 'conv'
const char *
sm_timeline_key (const sm_pending_t *pending)
{
    return pending->op == SM_OP_PM_APPEND ? pending->conv : pending->room_key;
}

const char *
sm_timeline_field (const sm_pending_t *pending)
{
    return pending->op == SM_OP_PM_APPEND ? "conv" : "room";
}

//  Reads the page of a history request: limit, and before or after
static int
s_read_page (sm_pending_t *pending, const msgpack_object *map)
{
    uint64_t limit;
    if (s_read_uint (pending, map, "limit", 1, SM_LIST_LIMIT_MAX, false, SM_HISTORY_DEFAULT,
                     &limit))
        return -1;
    pending->limit = (uint32_t) limit;
    const msgpack_object *before = sm_field (map, "before");
    const msgpack_object *after = sm_field (map, "after");
    if (before && before->type == MSGPACK_OBJECT_NIL)
        before = NULL;
    if (after && after->type == MSGPACK_OBJECT_NIL)
        after = NULL;
    if (before && after) {
        sm_fail (pending, "bad_request", "Give 'before' or 'after', not both.");
        return -1;
    }
    if (before || after) {
        pending->cursor = before ? SM_CURSOR_BEFORE : SM_CURSOR_AFTER;
        if (s_read_uint (pending, map, before ? "before" : "after", 0, INT64_MAX, true, 0,
                         &pending->cursor_seq))
            return -1;
    }
    return 0;
}

//  Reads the two sides of a pm request: me into name and key, other into
//  peer and peer_key, and makes the conversation's key
static int
s_read_pm_pair (sm_pending_t *pending, const msgpack_object *map, const char *me,
                const char *other)
{
    if (s_read_name (pending, map, me, true)
    ||  s_read_text (pending, map, other, SM_NAME_MAX, true, &pending->peer))
        return -1;
    sm_lower (pending->peer.data, pending->peer.size, pending->peer_key);
    bool me_first = strcmp (pending->key, pending->peer_key) < 0;
    snprintf (pending->conv, sizeof pending->conv, "%s\n%s",
              me_first ? pending->key : pending->peer_key,
              me_first ? pending->peer_key : pending->key);
    return 0;
}

//  The quotas of room.create and member.add: absent or 0 for none
static int
s_read_quotas (sm_pending_t *pending, const msgpack_object *map, bool owned)
{
    if (owned && s_read_uint (pending, map, "max_owned", 0, INT64_MAX, false, 0,
                              &pending->max_owned))
        return -1;
    return s_read_uint (pending, map, "max_joined", 0, INT64_MAX, false, 0,
                        &pending->max_joined);
}

//  A room list's page: user, after (a room name), limit 1 .. 1000
static int
s_read_room_page (sm_pending_t *pending, const msgpack_object *map, uint64_t fallback)
{
    uint64_t limit;
    sm_text_t after = { NULL, 0 };
    if (s_read_name (pending, map, "user", true)
    ||  s_read_text (pending, map, "after", SM_ROOM_MAX, false, &after)
    ||  s_read_uint (pending, map, "limit", 1, SM_LIST_LIMIT_MAX, false, fallback, &limit))
        return -1;
    sm_lower (after.data, after.size, pending->after_key);
    pending->limit = (uint32_t) limit;
    return 0;
}

//  store.room.public: the page and its cursor, (after_active, after) both or neither
static int
s_read_room_public (sm_pending_t *pending, const msgpack_object *map)
{
    if (s_read_room_page (pending, map, SM_PUBLIC_DEFAULT))
        return -1;
    pending->has_after_active = sm_field (map, "after_active") != NULL;
    if (pending->has_after_active
    &&  s_read_time (pending, map, "after_active", &pending->after_active))
        return -1;
    if (pending->has_after_active != (pending->after_key [0] != 0)) {
        sm_fail (pending, "bad_request", "Give 'after_active' and 'after' together, or neither.");
        return -1;
    }
    return 0;
}

//  store.room.directory: the page and a prefix of ASCII letters, digits,
//  '_' and '-' (the names of rooms), so that its range has an end
static int
s_read_room_directory (sm_pending_t *pending, const msgpack_object *map)
{
    sm_text_t prefix = { NULL, 0 };
    if (s_read_room_page (pending, map, SM_DIRECTORY_DEFAULT)
    ||  s_read_text (pending, map, "prefix", SM_ROOM_MAX, false, &prefix))
        return -1;
    for (uint32_t index = 0; index < prefix.size; index++) {
        char c = prefix.data [index];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c == '_' || c == '-')) {
            sm_fail (pending, "bad_request",
                     "The field 'prefix' must hold only letters, digits, '_' and '-'.");
            return -1;
        }
    }
    sm_lower (prefix.data, prefix.size, pending->prefix_key);
    return 0;
}

//  Validates the fields of pending->op. Returns 0, or -1 with pending failed.
int
sm_validate (sm_pending_t *pending, const uint8_t *body, size_t size)
{
    size_t offset = 0;
    msgpack_unpack_return unpacked
        = msgpack_unpack_next (&pending->fields, (const char *) body, size, &offset);
    if (unpacked != MSGPACK_UNPACK_SUCCESS || pending->fields.data.type != MSGPACK_OBJECT_MAP) {
        sm_fail (pending, "bad_request", "The request's fields are not a msgpack map.");
        return -1;
    }
    const msgpack_object *map = &pending->fields.data;
    switch (pending->op) {
        case SM_OP_INFO:
            return 0;
        case SM_OP_USER_CREATE:
            if (s_read_name (pending, map, "name", true)
            ||  s_read_text (pending, map, "password_hash", SM_HASH_MAX, true, &pending->hash)
            ||  s_read_time (pending, map, "created_at", &pending->created_at))
                return -1;
            return 0;
        case SM_OP_USER_GET:
            return s_read_name (pending, map, "name", true);
        case SM_OP_USER_LIST: {
            if (s_read_name (pending, map, "after", false))
                return -1;
            pending->limit = SM_LIST_LIMIT_MAX;
            const msgpack_object *limit = sm_field (map, "limit");
            if (limit) {
                if (limit->type != MSGPACK_OBJECT_POSITIVE_INTEGER
                ||  limit->via.u64 < 1 || limit->via.u64 > SM_LIST_LIMIT_MAX) {
                    sm_fail (pending, "bad_request",
                             "The field 'limit' must be an integer from 1 to %d.",
                             SM_LIST_LIMIT_MAX);
                    return -1;
                }
                pending->limit = (uint32_t) limit->via.u64;
            }
            return 0;
        }
        case SM_OP_USER_SEEN:
            return s_read_seen (pending, map);
        case SM_OP_TOKEN_PUT:
            if (s_read_text (pending, map, "token_hash", SM_HASH_MAX, true, &pending->hash)
            ||  s_read_name (pending, map, "user", true)
            ||  s_read_time (pending, map, "created_at", &pending->created_at)
            ||  s_read_time (pending, map, "expires_at", &pending->expires_at))
                return -1;
            return 0;
        case SM_OP_TOKEN_GET:
        case SM_OP_TOKEN_DELETE:
            return s_read_text (pending, map, "token_hash", SM_HASH_MAX, true, &pending->hash);
        case SM_OP_TOKEN_DELETE_USER:
            return s_read_name (pending, map, "user", true);
        case SM_OP_TOKEN_PURGE:
            return s_read_time (pending, map, "before", &pending->before);
        case SM_OP_TOKEN_TOUCH:
            if (s_read_text (pending, map, "token_hash", SM_HASH_MAX, true, &pending->hash)
            ||  s_read_time (pending, map, "at", &pending->before))
                return -1;
            return 0;
        case SM_OP_TOKEN_TRIM:
            if (s_read_name (pending, map, "user", true)
            ||  s_read_uint (pending, map, "keep", 1, SM_KEEP_MAX, true, 0, &pending->keep))
                return -1;
            return 0;
        case SM_OP_ROOM_CREATE: {
            uint64_t max_participants;
            if (s_read_room (pending, map, "name")
            ||  s_read_string (pending, map, "description", SM_DESCRIPTION_MAX, false,
                               &pending->description)
            ||  s_read_uint (pending, map, "max_participants", 1, UINT32_MAX, true, 0,
                             &max_participants)
            ||  s_read_name (pending, map, "owner", true)
            ||  s_read_time (pending, map, "created_at", &pending->created_at)
            ||  s_read_quotas (pending, map, true))
                return -1;
            pending->max_participants = (uint32_t) max_participants;
            const msgpack_object *is_private = sm_field (map, "private");
            if (is_private && is_private->type != MSGPACK_OBJECT_BOOLEAN) {
                sm_fail (pending, "bad_request", "The field 'private' must be true or false.");
                return -1;
            }
            pending->is_private = is_private && is_private->via.boolean;
            return 0;
        }
        case SM_OP_ROOM_GET:
        case SM_OP_ROOM_DELETE:
            return s_read_room (pending, map, "name");
        case SM_OP_ROOM_LIST:
            return s_read_name (pending, map, "user", true);
        case SM_OP_ROOM_JOINED:
            return s_read_room_page (pending, map, SM_LIST_LIMIT_MAX);
        case SM_OP_ROOM_PUBLIC:
            return s_read_room_public (pending, map);
        case SM_OP_ROOM_DIRECTORY:
            return s_read_room_directory (pending, map);
        case SM_OP_MEMBER_ADD:
        case SM_OP_MEMBER_REMOVE:
            return s_read_room (pending, map, "room")
                || s_read_name (pending, map, "user", true)
                || s_read_entry (pending, map, false)
                || (pending->op == SM_OP_MEMBER_ADD && s_read_quotas (pending, map, false))
                   ? -1 : 0;
        case SM_OP_MEMBER_LIST:
            return s_read_room (pending, map, "room");
        case SM_OP_INVITE_ADD: {
            sm_text_t from = { NULL, 0 };
            return s_read_room (pending, map, "room")
                || s_read_name (pending, map, "user", true)
                || s_read_text (pending, map, "from", SM_NAME_MAX, true, &from) ? -1 : 0;
        }
        case SM_OP_MSG_APPEND:
            return s_read_room (pending, map, "room") || s_read_run (pending, map) ? -1 : 0;
        case SM_OP_MSG_HISTORY:
            return s_read_room (pending, map, "room") || s_read_page (pending, map) ? -1 : 0;
        case SM_OP_PM_APPEND:
            if (s_read_pm_pair (pending, map, "from", "to"))
                return -1;
            if (strcmp (pending->key, pending->peer_key) == 0) {
                sm_fail (pending, "bad_request",
                         "'from' and 'to' are the same user: a conversation needs two.");
                return -1;
            }
            return s_read_pm_run (pending, map);
        case SM_OP_PM_LAST_SEQ:
            return s_read_pm_pair (pending, map, "user", "with");
        case SM_OP_PM_HISTORY:
            return s_read_pm_pair (pending, map, "user", "with") || s_read_page (pending, map)
                   ? -1 : 0;
        case SM_OP_PM_CONVERSATIONS: {
            uint64_t limit;
            if (s_read_name (pending, map, "user", true)
            ||  s_read_uint (pending, map, "limit", 1, SM_LIST_LIMIT_MAX, false,
                             SM_CONVERSATIONS_DEFAULT, &limit))
                return -1;
            pending->limit = (uint32_t) limit;
            return 0;
        }
        case SM_OP_PM_READ:
            return s_read_pm_pair (pending, map, "user", "with")
                || s_read_uint (pending, map, "seq", 0, INT64_MAX, true, 0, &pending->seq)
                   ? -1 : 0;
    }
    sm_fail (pending, "internal", "The store has no handler for this request.");
    return -1;
}
