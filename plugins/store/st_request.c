/*  =========================================================================
    st_request - one store.* request of proto/STORE.md, parsed and validated

    The readers below are the one copy of proto/STORE.md's rules on values:
    where the stores disagreed before the front, the file decides, and
    where it was silent, the stricter rule is written into it ("Values on
    the wire"): a nil is a mistyped field, never an absent one; a message's
    text holds no NUL; room.create's description and private are required;
    max_participants is at most 2^32 - 1.
    =========================================================================
*/

#include "st_request.h"
#include "pl_body.h"
#include "pl_text.h"
#include "pl_time.h"
#include "pl_words.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>

//  The kinds by name, in st_kind_t's order
static const char *s_kind_names [] = { "message", "system", "edit", "delete", "reaction" };

typedef int (s_reader_fn) (st_request_t *self, const msgpack_object *map);

static s_reader_fn
    s_read_none, s_read_user_create, s_read_user_get, s_read_user_list, s_read_user_seen,
    s_read_token_put, s_read_token_hash, s_read_token_user, s_read_token_purge,
    s_read_token_touch, s_read_token_trim, s_read_room_create, s_read_room_name,
    s_read_room_list, s_read_room_joined, s_read_room_public, s_read_room_directory,
    s_read_member_add, s_read_member_remove, s_read_member_list, s_read_invite_add,
    s_read_msg_append, s_read_msg_history, s_read_pm_append, s_read_pm_last_seq,
    s_read_pm_history, s_read_pm_conversations, s_read_pm_read, s_read_msg_nonce,
    s_read_pm_nonce, s_read_room_invited, s_read_member_read, s_read_user_set_state,
    s_read_user_set_password, s_read_room_all, s_read_room_update, s_read_room_unban,
    s_read_search,
    s_read_file_create, s_read_file_write, s_read_file_id, s_read_file_read,
    s_read_file_sweep;

static const struct {
    const char *name;               //  the request type
    bool writes;                    //  needs a savepoint of its own
    s_reader_fn *read;              //  reads its fields
} s_types [ST_TYPE_COUNT] = {
    [ST_INFO]              = { "store.info",              false, s_read_none },
    [ST_USER_CREATE]       = { "store.user.create",       true,  s_read_user_create },
    [ST_USER_GET]          = { "store.user.get",          false, s_read_user_get },
    [ST_USER_LIST]         = { "store.user.list",         false, s_read_user_list },
    [ST_USER_SEEN]         = { "store.user.seen",         true,  s_read_user_seen },
    [ST_TOKEN_PUT]         = { "store.token.put",         true,  s_read_token_put },
    [ST_TOKEN_GET]         = { "store.token.get",         false, s_read_token_hash },
    [ST_TOKEN_DELETE]      = { "store.token.delete",      true,  s_read_token_hash },
    [ST_TOKEN_DELETE_USER] = { "store.token.delete_user", true,  s_read_token_user },
    [ST_TOKEN_PURGE]       = { "store.token.purge",       true,  s_read_token_purge },
    [ST_TOKEN_TOUCH]       = { "store.token.touch",       true,  s_read_token_touch },
    [ST_TOKEN_TRIM]        = { "store.token.trim",        true,  s_read_token_trim },
    [ST_ROOM_CREATE]       = { "store.room.create",       true,  s_read_room_create },
    [ST_ROOM_GET]          = { "store.room.get",          false, s_read_room_name },
    [ST_ROOM_LIST]         = { "store.room.list",         false, s_read_room_list },
    [ST_ROOM_JOINED]       = { "store.room.joined",       false, s_read_room_joined },
    [ST_ROOM_PUBLIC]       = { "store.room.public",       false, s_read_room_public },
    [ST_ROOM_DIRECTORY]    = { "store.room.directory",    false, s_read_room_directory },
    [ST_ROOM_INVITED]      = { "store.room.invited",      false, s_read_room_invited },
    [ST_ROOM_DELETE]       = { "store.room.delete",       true,  s_read_room_name },
    [ST_MEMBER_ADD]        = { "store.member.add",        true,  s_read_member_add },
    [ST_MEMBER_REMOVE]     = { "store.member.remove",     true,  s_read_member_remove },
    [ST_MEMBER_LIST]       = { "store.member.list",       false, s_read_member_list },
    [ST_MEMBER_READ]       = { "store.member.read",       true,  s_read_member_read },
    [ST_INVITE_ADD]        = { "store.invite.add",        true,  s_read_invite_add },
    [ST_MSG_APPEND]        = { "store.msg.append",        true,  s_read_msg_append },
    [ST_MSG_HISTORY]       = { "store.msg.history",       false, s_read_msg_history },
    [ST_MSG_NONCE]         = { "store.msg.nonce",         false, s_read_msg_nonce },
    [ST_PM_APPEND]         = { "store.pm.append",         true,  s_read_pm_append },
    [ST_PM_LAST_SEQ]       = { "store.pm.last_seq",       false, s_read_pm_last_seq },
    [ST_PM_HISTORY]        = { "store.pm.history",        false, s_read_pm_history },
    [ST_PM_CONVERSATIONS]  = { "store.pm.conversations",  false, s_read_pm_conversations },
    [ST_PM_READ]           = { "store.pm.read",           true,  s_read_pm_read },
    [ST_PM_NONCE]          = { "store.pm.nonce",          false, s_read_pm_nonce },
    [ST_USER_SET_STATE]    = { "store.user.set_state",    true,  s_read_user_set_state },
    [ST_USER_SET_PASSWORD] = { "store.user.set_password", true,  s_read_user_set_password },
    [ST_ROOM_ALL]          = { "store.room.all",          false, s_read_room_all },
    [ST_ROOM_UPDATE]       = { "store.room.update",       true,  s_read_room_update },
    [ST_ROOM_UNBAN]        = { "store.room.unban",        true,  s_read_room_unban },
    [ST_SEARCH]            = { "store.search",            false, s_read_search },
    [ST_FILE_CREATE]       = { "store.file.create",       true,  s_read_file_create },
    [ST_FILE_WRITE]        = { "store.file.write",        true,  s_read_file_write },
    [ST_FILE_COMMIT]       = { "store.file.commit",       true,  s_read_file_id },
    [ST_FILE_GET]          = { "store.file.get",          false, s_read_file_id },
    [ST_FILE_READ]         = { "store.file.read",         false, s_read_file_read },
    [ST_FILE_SWEEP]        = { "store.file.sweep",        true,  s_read_file_sweep }
};


//  --------------------------------------------------------------------------
//  Types

int
st_type_find (const char *name, st_type_t *type_p)
{
    for (int index = 0; name && index < ST_TYPE_COUNT; index++)
        if (strcmp (name, s_types [index].name) == 0) {
            *type_p = (st_type_t) index;
            return 0;
        }
    return -1;
}

const char *
st_type_name (st_type_t type)
{
    return type < ST_TYPE_COUNT ? s_types [type].name : "store.?";
}

bool
st_type_writes (st_type_t type)
{
    return type < ST_TYPE_COUNT && s_types [type].writes;
}

const char *
st_kind_name (st_kind_t kind)
{
    return kind <= ST_KIND_REACTION ? s_kind_names [kind] : "message";
}


//  --------------------------------------------------------------------------
//  Names

void
st_text_lower (st_text_t text, char *key)
{
    if (text.size)
        memcpy (key, text.data, text.size);
    key [text.size] = 0;
    //  A request's names hold no NUL (st_request checks): all of it is lowered
    pl_text_lower (key);
}

bool
st_text_is (st_text_t text, const char *value)
{
    size_t size = strlen (value);
    return text.size == size && (size == 0 || memcmp (text.data, value, size) == 0);
}


//  --------------------------------------------------------------------------
//  The request

st_request_t *
st_request_new (st_type_t type, const void *body, size_t size, void *host_request)
{
    st_request_t *self = (st_request_t *) calloc (1, sizeof (st_request_t));
    if (!self)
        return NULL;
    self->type = type;
    self->host_request = host_request;
    msgpack_unpacked_init (&self->body);
    msgpack_sbuffer_init (&self->result);
    msgpack_packer_init (&self->packer, &self->result, msgpack_sbuffer_write);
    //  The unpacked strings point into the bytes they came from: a copy of
    //  the request's own keeps them valid whatever the caller does
    self->raw = (char *) malloc (size ? size : 1);
    if (!self->raw) {
        st_request_destroy (&self);
        return NULL;
    }
    if (size)
        memcpy (self->raw, body, size);
    const msgpack_object *map = pl_body_unpack (&self->body, self->raw, size);
    if (!map)
        st_request_fail (self, "bad_request", "The request's fields are not a msgpack map.");
    else
    if (type >= ST_TYPE_COUNT)
        st_request_fail (self, "unknown_type", "The store does not serve this request.");
    else
        s_types [type].read (self, map);
    return self;
}

void
st_request_destroy (st_request_t **self_p)
{
    st_request_t *self = *self_p;
    if (!self)
        return;
    if (self->type == ST_USER_SEEN)
        free (self->as.user_seen.users);
    else
    if (self->type == ST_MSG_APPEND)
        free (self->as.msg_append.entries);
    else
    if (self->type == ST_PM_APPEND)
        free (self->as.pm_append.messages);
    msgpack_unpacked_destroy (&self->body);
    msgpack_sbuffer_destroy (&self->result);
    free (self->raw);
    free (self);
    *self_p = NULL;
}

bool
st_request_live (const st_request_t *self)
{
    return self->code == NULL && !self->aside;
}

void
st_request_set_aside (st_request_t *self, uint64_t mark)
{
    self->aside = true;
    self->aside_mark = mark;
    if (!self->aside_since) {
        int64_t now = pl_time_mono ();
        self->aside_since = now > 0 ? now : 1;
    }
}

bool
st_request_is_aside (const st_request_t *self)
{
    return self->aside;
}

void
st_request_resume (st_request_t *self)
{
    self->aside = false;
}

uint64_t
st_request_aside_mark (const st_request_t *self)
{
    return self->aside_mark;
}

int64_t
st_request_aside_since (const st_request_t *self)
{
    return self->aside_since;
}

void
st_request_fail (st_request_t *self, const char *code, const char *format, ...)
{
    self->code = code;
    self->aside = false;
    va_list args;
    va_start (args, format);
    vsnprintf (self->message, sizeof self->message, format, args);
    va_end (args);
    msgpack_sbuffer_clear (&self->result);
}

msgpack_packer *
st_request_packer (st_request_t *self)
{
    return &self->packer;
}

void
st_request_clear (st_request_t *self)
{
    msgpack_sbuffer_clear (&self->result);
}

const char *
st_request_code (const st_request_t *self)
{
    return self->code;
}

const char *
st_request_message (const st_request_t *self)
{
    return self->code ? self->message : "";
}

const char *
st_request_result (const st_request_t *self, size_t *size_p)
{
    *size_p = self->result.size;
    return self->result.data;
}

void *
st_request_host (const st_request_t *self)
{
    return self->host_request;
}


//  --------------------------------------------------------------------------
//  Readers of one value. Each returns 0, or -1 after failing the request
//  with bad_request and a sentence that names the field.

//  Puts where in front of the sentence, to say which part of the request
//  was refused ("In 'entries' [3]: The field 'ts' is missing.")
static void
s_fail_where (st_request_t *self, const char *where)
{
    char reason [sizeof self->message];
    memcpy (reason, self->message, sizeof reason);
    snprintf (self->message, sizeof self->message, "%.32s: %.160s", where, reason);
}

static int
s_missing (st_request_t *self, const char *key)
{
    st_request_fail (self, "bad_request", "The field '%s' is missing.", key);
    return -1;
}

//  A string of min to max bytes with no NUL; absent is an error if required
static int
s_read_string (st_request_t *self, const msgpack_object *map, const char *key,
               uint32_t min, uint32_t max, bool required, st_text_t *text)
{
    const msgpack_object *value = pl_body_field (map, key);
    if (!value)
        return required ? s_missing (self, key) : 0;
    if (value->type != MSGPACK_OBJECT_STR) {
        st_request_fail (self, "bad_request", "The field '%s' must be a string.", key);
        return -1;
    }
    if (value->via.str.size < min || value->via.str.size > max
    ||  memchr (value->via.str.ptr, 0, value->via.str.size)) {
        st_request_fail (self, "bad_request", "The field '%s' must have %u to %u bytes and no NUL.",
                         key, min, max);
        return -1;
    }
    //  An empty string still has data, so that "given" reads as data != NULL
    text->data = value->via.str.size ? value->via.str.ptr : "";
    text->size = value->via.str.size;
    return 0;
}

//  A name of 1 to max bytes and its lower-cased key
static int
s_read_name (st_request_t *self, const msgpack_object *map, const char *key,
             uint32_t max, bool required, st_name_t *name)
{
    if (s_read_string (self, map, key, 1, max, required, &name->text))
        return -1;
    st_text_lower (name->text, name->key);
    return 0;
}

static int
s_read_user (st_request_t *self, const msgpack_object *map, const char *key, st_name_t *name)
{
    return s_read_name (self, map, key, ST_NAME_MAX, true, name);
}

static int
s_read_room (st_request_t *self, const msgpack_object *map, const char *key, st_name_t *name)
{
    return s_read_name (self, map, key, ST_ROOM_MAX, true, name);
}

static int
s_read_hash (st_request_t *self, const msgpack_object *map, const char *key, st_text_t *text)
{
    return s_read_string (self, map, key, 1, ST_HASH_MAX, true, text);
}

//  A string of 1 to max characters of [A-Za-z0-9_-] (a nonce, a file's
//  id); absent is an error if required
static int
s_read_word (st_request_t *self, const msgpack_object *map, const char *key, uint32_t max,
             bool required, st_text_t *word)
{
    if (s_read_string (self, map, key, 1, max, required, word))
        return -1;
    for (uint32_t index = 0; word->data && index < word->size; index++) {
        char c = word->data [index];
        if (!isalnum ((unsigned char) c) && c != '_' && c != '-') {
            st_request_fail (self, "bad_request", "The field '%s' must be 1 to %u letters,"
                             " digits, '_' or '-'.", key, max);
            return -1;
        }
    }
    return 0;
}

//  A nonce (PROTOCOL.md 1.1): 1 to ST_NONCE_MAX characters of
//  [A-Za-z0-9_-]; absent is an error if required
static int
s_read_nonce (st_request_t *self, const msgpack_object *map, bool required, st_text_t *nonce)
{
    return s_read_word (self, map, "nonce", ST_NONCE_MAX, required, nonce);
}

//  A file's id (schema version 13), always required
static int
s_read_file_key (st_request_t *self, const msgpack_object *map, const char *key, st_text_t *id)
{
    return s_read_word (self, map, key, ST_FILE_ID_MAX, true, id);
}

//  An unsigned integer of min to max; absent gives fallback unless required
static int
s_read_uint (st_request_t *self, const msgpack_object *map, const char *key,
             uint64_t min, uint64_t max, bool required, uint64_t fallback, uint64_t *value_p)
{
    const msgpack_object *value = pl_body_field (map, key);
    if (!value) {
        *value_p = fallback;
        return required ? s_missing (self, key) : 0;
    }
    if (value->type != MSGPACK_OBJECT_POSITIVE_INTEGER
    ||  value->via.u64 < min || value->via.u64 > max) {
        st_request_fail (self, "bad_request", "The field '%s' must be an integer from %" PRIu64
                         " to %" PRIu64 ".", key, min, max);
        return -1;
    }
    *value_p = value->via.u64;
    return 0;
}

//  A list's limit: 1 to ST_LIST_LIMIT_MAX, fallback when absent
static int
s_read_limit (st_request_t *self, const msgpack_object *map, uint32_t fallback,
              uint32_t *limit_p)
{
    uint64_t limit;
    if (s_read_uint (self, map, "limit", 1, ST_LIST_LIMIT_MAX, false, fallback, &limit))
        return -1;
    *limit_p = (uint32_t) limit;
    return 0;
}

//  A time: an integer, 0 or more, that fits int64; always required
static int
s_read_time (st_request_t *self, const msgpack_object *map, const char *key, int64_t *time_p)
{
    const msgpack_object *value = pl_body_field (map, key);
    if (!value)
        return s_missing (self, key);
    if (value->type != MSGPACK_OBJECT_POSITIVE_INTEGER || value->via.u64 > INT64_MAX) {
        st_request_fail (self, "bad_request",
                         "The field '%s' must be an integer of milliseconds since 1970, 0 or more.",
                         key);
        return -1;
    }
    *time_p = (int64_t) value->via.u64;
    return 0;
}

static int
s_read_bool (st_request_t *self, const msgpack_object *map, const char *key, bool *value_p)
{
    const msgpack_object *value = pl_body_field (map, key);
    if (!value || value->type != MSGPACK_OBJECT_BOOLEAN) {
        st_request_fail (self, "bad_request", "The field '%s' must be true or false.", key);
        return -1;
    }
    *value_p = value->via.boolean;
    return 0;
}

//  A history page: limit, and before or after (not both)
static int
s_read_page (st_request_t *self, const msgpack_object *map, st_page_t *page)
{
    bool before = pl_body_field (map, "before") != NULL;
    bool after = pl_body_field (map, "after") != NULL;
    if (before && after) {
        st_request_fail (self, "bad_request", "Give 'before' or 'after', not both.");
        return -1;
    }
    page->cursor = before ? ST_CURSOR_BEFORE : after ? ST_CURSOR_AFTER : ST_CURSOR_NONE;
    if ((before || after)
    &&  s_read_uint (self, map, before ? "before" : "after", 0, INT64_MAX, true, 0, &page->seq))
        return -1;
    return s_read_limit (self, map, ST_HISTORY_DEFAULT, &page->limit);
}


//  --------------------------------------------------------------------------
//  Runs: msg.append's entries, pm.append's messages

//  Reads one element of a run into item (an st_entry_t or an
//  st_pm_message_t) and gives its seq. Returns 0, or -1 after failing the
//  request with a sentence that does not say where the element was.
typedef int (s_element_fn) (st_request_t *self, const msgpack_object *value, void *item,
                            uint64_t *seq_p);

//  A message entry's 'mentions' (optional): an array of 1 to
//  ST_MENTIONS_MAX names, borrowed in place
static int
s_read_mentions (st_request_t *self, const msgpack_object *entry_map, st_entry_t *entry)
{
    const msgpack_object *value = pl_body_field (entry_map, "mentions");
    if (!value)
        return 0;
    bool valid = value->type == MSGPACK_OBJECT_ARRAY && value->via.array.size >= 1
              && value->via.array.size <= ST_MENTIONS_MAX;
    for (uint32_t index = 0; valid && index < value->via.array.size; index++) {
        const msgpack_object *name = &value->via.array.ptr [index];
        valid = name->type == MSGPACK_OBJECT_STR && name->via.str.size >= 1
             && name->via.str.size <= ST_NAME_MAX
             && !memchr (name->via.str.ptr, 0, name->via.str.size);
    }
    if (!valid) {
        st_request_fail (self, "bad_request", "The field 'mentions' must be an array of 1 to %d"
                         " names of 1 to %d bytes.", ST_MENTIONS_MAX, ST_NAME_MAX);
        return -1;
    }
    entry->mentions = value;
    return 0;
}

//  The field 'kind': one of s_kind_names; system only when with_system (a
//  conversation has no system entries). Absent is an error if required,
//  else a message.
static int
s_read_kind (st_request_t *self, const msgpack_object *map, bool required, bool with_system,
             st_kind_t *kind_p)
{
    st_text_t kind = { NULL, 0 };
    *kind_p = ST_KIND_MESSAGE;
    if (s_read_string (self, map, "kind", 1, 16, required, &kind))
        return -1;
    if (!kind.data)
        return 0;                   //  optional and not given: a message
    for (int index = 0; index <= ST_KIND_REACTION; index++)
        if (st_text_is (kind, s_kind_names [index])
        &&  (with_system || index != ST_KIND_SYSTEM)) {
            *kind_p = (st_kind_t) index;
            return 0;
        }
    st_request_fail (self, "bad_request", "The field 'kind' must be %s\"message\", \"edit\","
                     " \"delete\" or \"reaction\".", with_system ? "\"system\", " : "");
    return -1;
}

//  A message's 'file' (optional, schema version 13): a map {id, name,
//  size, type}
static int
s_read_file_ref (st_request_t *self, const msgpack_object *map, st_file_ref_t *file)
{
    const msgpack_object *value = pl_body_field (map, "file");
    if (!value)
        return 0;
    if (value->type != MSGPACK_OBJECT_MAP) {
        st_request_fail (self, "bad_request", "The field 'file' must be a map {id, name, size,"
                         " type}.");
        return -1;
    }
    if (s_read_file_key (self, value, "id", &file->id)
    ||  s_read_string (self, value, "name", 1, ST_FILE_NAME_MAX, true, &file->name)
    ||  s_read_uint (self, value, "size", 0, INT64_MAX, true, 0, &file->size)
    ||  s_read_string (self, value, "type", 1, ST_FILE_TYPE_MAX, true, &file->type)) {
        file->id = (st_text_t) { NULL, 0 };
        s_fail_where (self, "In 'file'");
        return -1;
    }
    return 0;
}

//  The fields of a change (schema version 9) that its kind takes: a
//  message's reply_to (optional), the target of an edit, a delete or a
//  reaction, a reaction's emoji and on. A field of another kind is ignored.
static int
s_read_change (st_request_t *self, const msgpack_object *map, st_change_t *change)
{
    if (change->kind == ST_KIND_MESSAGE)
        return s_read_uint (self, map, "reply_to", 1, INT64_MAX, false, 0, &change->reply_to)
            || s_read_file_ref (self, map, &change->file) ? -1 : 0;
    if (change->kind == ST_KIND_SYSTEM)
        return 0;
    if (s_read_uint (self, map, "target", 1, INT64_MAX, true, 0, &change->target))
        return -1;
    if (change->kind != ST_KIND_REACTION)
        return 0;
    return s_read_string (self, map, "emoji", 1, ST_EMOJI_MAX, true, &change->emoji)
        || s_read_bool (self, map, "on", &change->on) ? -1 : 0;
}

//  The text a kind takes: a message's (may be empty), an edit's (1 byte
//  or more); a delete and a reaction have none (text stays as it is)
static int
s_read_change_text (st_request_t *self, const msgpack_object *map, st_kind_t kind,
                    st_text_t *text)
{
    if (kind == ST_KIND_MESSAGE || kind == ST_KIND_EDIT)
        return s_read_string (self, map, "text", kind == ST_KIND_EDIT ? 1 : 0, ST_TEXT_MAX,
                              true, text);
    return 0;
}

//  A system entry's event and, optionally, who did it
static int
s_read_system (st_request_t *self, const msgpack_object *value, st_entry_t *entry)
{
    if (s_read_string (self, value, "event", 1, 16, true, &entry->event)
    ||  s_read_string (self, value, "by", 1, ST_NAME_MAX, false, &entry->by))
        return -1;
    if (!st_text_is (entry->event, "join") && !st_text_is (entry->event, "leave")
    &&  !st_text_is (entry->event, "update") && !st_text_is (entry->event, "kick")) {
        st_request_fail (self, "bad_request", "The entry's 'event' must be \"join\", \"leave\","
                         " \"update\" or \"kick\".");
        return -1;
    }
    return 0;
}

//  Reads one timeline entry map into entry
static int
s_read_entry_map (st_request_t *self, const msgpack_object *value, st_entry_t *entry)
{
    memset (entry, 0, sizeof *entry);
    if (value->type != MSGPACK_OBJECT_MAP) {
        st_request_fail (self, "bad_request", "The entry must be a map.");
        return -1;
    }
    st_change_t *change = &entry->change;
    if (s_read_uint (self, value, "seq", 1, INT64_MAX, true, 0, &entry->seq)
    ||  s_read_kind (self, value, true, true, &change->kind)
    ||  s_read_string (self, value, "user", 1, ST_NAME_MAX, true, &entry->user)
    ||  s_read_time (self, value, "ts", &entry->ts))
        return -1;
    if (change->kind == ST_KIND_SYSTEM)
        return s_read_system (self, value, entry);
    if (s_read_change_text (self, value, change->kind, &entry->text)
    ||  s_read_change (self, value, change))
        return -1;
    if (change->kind != ST_KIND_MESSAGE)
        return 0;
    return s_read_nonce (self, value, false, &entry->nonce)
        || s_read_mentions (self, value, entry) ? -1 : 0;
}

static int
s_entry_element (st_request_t *self, const msgpack_object *value, void *item, uint64_t *seq_p)
{
    st_entry_t *entry = (st_entry_t *) item;
    if (s_read_entry_map (self, value, entry))
        return -1;
    *seq_p = entry->seq;
    return 0;
}

//  Reads the field 'entry' (member.add/remove's notice, msg.append's one)
static int
s_read_entry (st_request_t *self, const msgpack_object *map, bool required,
              bool *has_p, st_entry_t *entry)
{
    const msgpack_object *value = pl_body_field (map, "entry");
    *has_p = value != NULL;
    if (!value)
        return required ? s_missing (self, "entry") : 0;
    if (value->type != MSGPACK_OBJECT_MAP) {
        st_request_fail (self, "bad_request", "The field 'entry' must be a map.");
        return -1;
    }
    if (s_read_entry_map (self, value, entry)) {
        s_fail_where (self, "In 'entry'");
        return -1;
    }
    return 0;
}

//  Reads the run in the array field key: 1 to ST_RUN_MAX elements of
//  item_size bytes each, read by read, whose seqs follow one another,
//  into a new array (*items_p, the request's). Returns 0, or -1 failed
//  with a sentence that names the element ("In 'entries' [3]: ...").
static int
s_read_run_array (st_request_t *self, const msgpack_object *array, const char *key,
                  s_element_fn *read, size_t item_size, void **items_p, uint32_t *count_p)
{
    if (array->type != MSGPACK_OBJECT_ARRAY
    ||  array->via.array.size == 0 || array->via.array.size > ST_RUN_MAX) {
        st_request_fail (self, "bad_request", "The field '%s' must be an array of 1 to %d %s.",
                         key, ST_RUN_MAX, key);
        return -1;
    }
    char *items = (char *) calloc (array->via.array.size, item_size);
    if (!items) {
        st_request_fail (self, "internal", "The store is out of memory.");
        return -1;
    }
    *items_p = items;               //  the request's now, even if refused
    uint64_t first = 0;
    for (uint32_t index = 0; index < array->via.array.size; index++) {
        uint64_t seq = 0;
        int rc = read (self, &array->via.array.ptr [index], items + index * item_size, &seq);
        if (rc == 0 && index == 0)
            first = seq;
        else
        if (rc == 0 && seq != first + index) {
            st_request_fail (self, "bad_request", "The seq must be %" PRIu64 ", one more than"
                             " the seq before.", first + index);
            rc = -1;
        }
        if (rc) {
            char where [32];
            snprintf (where, sizeof where, "In '%s' [%u]", key, index);
            s_fail_where (self, where);
            return -1;
        }
    }
    *count_p = array->via.array.size;
    return 0;
}

//  Reads one private message (pm.append's own fields, or an element of
//  its 'messages'): its 'from' must be one of the request's two users
static int
s_read_pm_message (st_request_t *self, const msgpack_object *value, st_pm_message_t *message)
{
    memset (message, 0, sizeof *message);
    if (value->type != MSGPACK_OBJECT_MAP) {
        st_request_fail (self, "bad_request", "The message must be a map {from, seq, text, ts}.");
        return -1;
    }
    st_text_t from = { NULL, 0 };
    st_change_t *change = &message->change;
    message->text = (st_text_t) { "", 0 };  //  a delete's or a reaction's
    if (s_read_string (self, value, "from", 1, ST_NAME_MAX, true, &from)
    ||  s_read_uint (self, value, "seq", 1, INT64_MAX, true, 0, &message->seq)
    ||  s_read_kind (self, value, false, false, &change->kind)
    ||  s_read_change_text (self, value, change->kind, &message->text)
    ||  s_read_time (self, value, "ts", &message->ts)
    ||  s_read_change (self, value, change)
    ||  (change->kind == ST_KIND_MESSAGE && s_read_nonce (self, value, false, &message->nonce)))
        return -1;
    const st_pm_append_t *append = &self->as.pm_append;
    char key [ST_NAME_MAX + 1];
    st_text_lower (from, key);
    if (strcmp (key, append->from.key) == 0)
        return 0;
    if (strcmp (key, append->to.key) == 0) {
        message->from_peer = true;
        return 0;
    }
    st_request_fail (self, "bad_request", "The message's 'from' must be '%.*s' or '%.*s'.",
                     (int) (append->from.text.size < 40 ? append->from.text.size : 40),
                     append->from.text.data,
                     (int) (append->to.text.size < 40 ? append->to.text.size : 40),
                     append->to.text.data);
    return -1;
}

static int
s_pm_element (st_request_t *self, const msgpack_object *value, void *item, uint64_t *seq_p)
{
    st_pm_message_t *message = (st_pm_message_t *) item;
    if (s_read_pm_message (self, value, message))
        return -1;
    *seq_p = message->seq;
    return 0;
}


//  --------------------------------------------------------------------------
//  The requests' readers

static int
s_read_none (st_request_t *self, const msgpack_object *map)
{
    return 0;
}

static int
s_read_user_create (st_request_t *self, const msgpack_object *map)
{
    st_user_create_t *create = &self->as.user_create;
    return s_read_user (self, map, "name", &create->name)
        || s_read_hash (self, map, "password_hash", &create->password_hash)
        || s_read_time (self, map, "created_at", &create->created_at) ? -1 : 0;
}

static int
s_read_user_get (st_request_t *self, const msgpack_object *map)
{
    return s_read_user (self, map, "name", &self->as.user_get.name);
}

static int
s_read_user_list (st_request_t *self, const msgpack_object *map)
{
    st_user_list_t *list = &self->as.user_list;
    return s_read_name (self, map, "after", ST_NAME_MAX, false, &list->after)
        || s_read_limit (self, map, ST_USER_LIST_DEFAULT, &list->limit) ? -1 : 0;
}

static int
s_read_seen_entry (st_request_t *self, const msgpack_object *entry, uint32_t index,
                   st_seen_t *seen)
{
    if (entry->type != MSGPACK_OBJECT_MAP) {
        st_request_fail (self, "bad_request", "Entry %u of 'users' is not a map.", index);
        return -1;
    }
    if (s_read_user (self, entry, "name", &seen->name)
    ||  s_read_time (self, entry, "last_seen", &seen->last_seen)) {
        char where [32];
        snprintf (where, sizeof where, "Entry %u of 'users'", index);
        s_fail_where (self, where);
        return -1;
    }
    return 0;
}

static int
s_read_user_seen (st_request_t *self, const msgpack_object *map)
{
    const msgpack_object *users = pl_body_field (map, "users");
    if (!users || users->type != MSGPACK_OBJECT_ARRAY
    ||  users->via.array.size == 0 || users->via.array.size > ST_SEEN_MAX) {
        st_request_fail (self, "bad_request",
                         "The field 'users' must be an array of 1 to %d maps {name, last_seen}.",
                         ST_SEEN_MAX);
        return -1;
    }
    st_user_seen_t *seen = &self->as.user_seen;
    seen->users = (st_seen_t *) calloc (users->via.array.size, sizeof (st_seen_t));
    if (!seen->users) {
        st_request_fail (self, "internal", "The store is out of memory.");
        return -1;
    }
    for (uint32_t index = 0; index < users->via.array.size; index++)
        if (s_read_seen_entry (self, &users->via.array.ptr [index], index, &seen->users [index]))
            return -1;
    seen->count = users->via.array.size;
    return 0;
}

static int
s_read_token_put (st_request_t *self, const msgpack_object *map)
{
    st_token_put_t *put = &self->as.token_put;
    return s_read_hash (self, map, "token_hash", &put->token_hash)
        || s_read_user (self, map, "user", &put->user)
        || s_read_time (self, map, "created_at", &put->created_at)
        || s_read_time (self, map, "expires_at", &put->expires_at) ? -1 : 0;
}

//  token.get and token.delete share their struct
static int
s_read_token_hash (st_request_t *self, const msgpack_object *map)
{
    return s_read_hash (self, map, "token_hash", &self->as.token_get.token_hash);
}

static int
s_read_token_user (st_request_t *self, const msgpack_object *map)
{
    return s_read_user (self, map, "user", &self->as.token_delete_user.user);
}

static int
s_read_token_purge (st_request_t *self, const msgpack_object *map)
{
    return s_read_time (self, map, "before", &self->as.token_purge.before);
}

static int
s_read_token_touch (st_request_t *self, const msgpack_object *map)
{
    st_token_touch_t *touch = &self->as.token_touch;
    touch->expires_at = 0;
    return s_read_hash (self, map, "token_hash", &touch->token_hash)
        || s_read_time (self, map, "at", &touch->at)
        || (pl_body_field (map, "expires_at")
            && s_read_time (self, map, "expires_at", &touch->expires_at)) ? -1 : 0;
}

static int
s_read_token_trim (st_request_t *self, const msgpack_object *map)
{
    st_token_trim_t *trim = &self->as.token_trim;
    return s_read_user (self, map, "user", &trim->user)
        || s_read_uint (self, map, "keep", 1, ST_KEEP_MAX, true, 0, &trim->keep) ? -1 : 0;
}

static int
s_read_room_create (st_request_t *self, const msgpack_object *map)
{
    st_room_create_t *create = &self->as.room_create;
    uint64_t max_participants = 0;
    if (s_read_room (self, map, "name", &create->name)
    ||  s_read_string (self, map, "description", 0, ST_DESCRIPTION_MAX, true,
                       &create->description)
    ||  s_read_bool (self, map, "private", &create->is_private)
    ||  s_read_uint (self, map, "max_participants", 1, ST_PARTICIPANTS_MAX, true, 0,
                     &max_participants)
    ||  s_read_user (self, map, "owner", &create->owner)
    ||  s_read_time (self, map, "created_at", &create->created_at)
    ||  s_read_uint (self, map, "max_owned", 0, INT64_MAX, false, 0, &create->max_owned)
    ||  s_read_uint (self, map, "max_joined", 0, INT64_MAX, false, 0, &create->max_joined))
        return -1;
    create->max_participants = (uint32_t) max_participants;
    return 0;
}

//  room.get and room.delete share their struct
static int
s_read_room_name (st_request_t *self, const msgpack_object *map)
{
    return s_read_room (self, map, "name", &self->as.room_get.name);
}

static int
s_read_room_list (st_request_t *self, const msgpack_object *map)
{
    return s_read_user (self, map, "user", &self->as.room_list.user);
}

//  A room list's page: user, after (a room name), limit
static int
s_read_room_page (st_request_t *self, const msgpack_object *map, uint32_t fallback)
{
    st_room_page_t *page = &self->as.room_joined;
    return s_read_user (self, map, "user", &page->user)
        || s_read_name (self, map, "after", ST_ROOM_MAX, false, &page->after)
        || s_read_limit (self, map, fallback, &page->limit) ? -1 : 0;
}

static int
s_read_room_joined (st_request_t *self, const msgpack_object *map)
{
    return s_read_room_page (self, map, ST_JOINED_DEFAULT);
}

static int
s_read_room_invited (st_request_t *self, const msgpack_object *map)
{
    return s_read_room_page (self, map, ST_JOINED_DEFAULT);
}

//  room.public: the page and its cursor, (after_active, after) both or neither
static int
s_read_room_public (st_request_t *self, const msgpack_object *map)
{
    st_room_page_t *page = &self->as.room_public;
    if (s_read_room_page (self, map, ST_PUBLIC_DEFAULT))
        return -1;
    page->has_after_active = pl_body_field (map, "after_active") != NULL;
    if (page->has_after_active && s_read_time (self, map, "after_active", &page->after_active))
        return -1;
    if (page->has_after_active != (page->after.text.data != NULL)) {
        st_request_fail (self, "bad_request",
                         "Give 'after_active' and 'after' together, or neither.");
        return -1;
    }
    return 0;
}

//  room.directory: the page and a prefix of ASCII letters, digits, '_' and
//  '-' (the names of rooms), so that its range has an end
static int
s_read_room_directory (st_request_t *self, const msgpack_object *map)
{
    st_room_page_t *page = &self->as.room_directory;
    if (s_read_room_page (self, map, ST_DIRECTORY_DEFAULT)
    ||  s_read_name (self, map, "prefix", ST_ROOM_MAX, false, &page->prefix))
        return -1;
    for (const char *c = page->prefix.key; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-')) {
            st_request_fail (self, "bad_request",
                             "The field 'prefix' must hold only letters, digits, '_' and '-'.");
            return -1;
        }
    return 0;
}

//  member.add/remove: a notice is a message or a system entry; a change
//  to a message goes through msg.append, where the store checks it
static int
s_read_member (st_request_t *self, const msgpack_object *map, st_member_t *member)
{
    if (s_read_room (self, map, "room", &member->room)
    ||  s_read_user (self, map, "user", &member->user)
    ||  s_read_entry (self, map, false, &member->has_entry, &member->entry))
        return -1;
    if (member->has_entry && member->entry.change.kind != ST_KIND_MESSAGE
    &&  member->entry.change.kind != ST_KIND_SYSTEM) {
        st_request_fail (self, "bad_request", "In 'entry': the field 'kind' must be"
                         " \"message\" or \"system\" here.");
        return -1;
    }
    return 0;
}

static int
s_read_member_add (st_request_t *self, const msgpack_object *map)
{
    st_member_t *member = &self->as.member_add;
    return s_read_member (self, map, member)
        || s_read_uint (self, map, "max_joined", 0, INT64_MAX, false, 0, &member->max_joined)
           ? -1 : 0;
}

//  member.remove: and 'ban' (optional bool, schema version 10)
static int
s_read_member_remove (st_request_t *self, const msgpack_object *map)
{
    st_member_t *member = &self->as.member_remove;
    if (s_read_member (self, map, member))
        return -1;
    return pl_body_field (map, "ban") ? s_read_bool (self, map, "ban", &member->ban) : 0;
}

static int
s_read_member_list (st_request_t *self, const msgpack_object *map)
{
    return s_read_room (self, map, "room", &self->as.member_list.name);
}

//  member.read: room, user, and a seq of 1 or more
static int
s_read_member_read (st_request_t *self, const msgpack_object *map)
{
    st_member_read_t *read = &self->as.member_read;
    return s_read_room (self, map, "room", &read->room)
        || s_read_user (self, map, "user", &read->user)
        || s_read_uint (self, map, "seq", 1, INT64_MAX, true, 0, &read->seq) ? -1 : 0;
}

static int
s_read_invite_add (st_request_t *self, const msgpack_object *map)
{
    st_invite_add_t *invite = &self->as.invite_add;
    return s_read_room (self, map, "room", &invite->room)
        || s_read_user (self, map, "user", &invite->user)
        || s_read_user (self, map, "from", &invite->from) ? -1 : 0;
}

//  True when two nonces are the same string
static bool
s_same_nonce (st_text_t one, st_text_t two)
{
    return one.data && two.data && one.size == two.size
        && memcmp (one.data, two.data, one.size) == 0;
}

//  A nonce its sender gives twice in one run: the second would be a repeat
//  of a message that is not stored yet. Returns -1 failed, or 0.
static int
s_repeat_in_run (st_request_t *self, const char *key, uint32_t index)
{
    st_request_fail (self, "bad_request", "In '%s' [%u]: the sender gave this 'nonce' to an"
                     " earlier message of the run.", key, index);
    return -1;
}

static int
s_entries_repeat (st_request_t *self, const st_msg_append_t *append)
{
    for (uint32_t index = 1; index < append->count; index++)
        for (uint32_t earlier = 0; earlier < index && append->entries [index].nonce.data;
             earlier++) {
            const st_entry_t *one = &append->entries [earlier], *two = &append->entries [index];
            char key_one [ST_NAME_MAX + 1], key_two [ST_NAME_MAX + 1];
            if (!s_same_nonce (one->nonce, two->nonce))
                continue;
            st_text_lower (one->user, key_one);
            st_text_lower (two->user, key_two);
            if (strcmp (key_one, key_two) == 0)
                return s_repeat_in_run (self, "entries", index);
        }
    return 0;
}

static int
s_messages_repeat (st_request_t *self, const st_pm_append_t *append)
{
    for (uint32_t index = 1; index < append->count; index++)
        for (uint32_t earlier = 0; earlier < index; earlier++)
            if (append->messages [earlier].from_peer == append->messages [index].from_peer
            &&  s_same_nonce (append->messages [earlier].nonce, append->messages [index].nonce))
                return s_repeat_in_run (self, "messages", index);
    return 0;
}

//  msg.append's run: 'entry' (a run of one) or 'entries', not both
static int
s_read_msg_append (st_request_t *self, const msgpack_object *map)
{
    st_msg_append_t *append = &self->as.msg_append;
    if (s_read_room (self, map, "room", &append->room))
        return -1;
    const msgpack_object *entries = pl_body_field (map, "entries");
    bool single = pl_body_field (map, "entry") != NULL;
    if (single && entries) {
        st_request_fail (self, "bad_request", "Give 'entry' or 'entries', not both.");
        return -1;
    }
    if (!single && !entries) {
        st_request_fail (self, "bad_request", "The field 'entry' or 'entries' is missing.");
        return -1;
    }
    if (entries)
        return s_read_run_array (self, entries, "entries", s_entry_element, sizeof (st_entry_t),
                                 (void **) &append->entries, &append->count)
            || s_entries_repeat (self, append) ? -1 : 0;
    append->entries = (st_entry_t *) calloc (1, sizeof (st_entry_t));
    if (!append->entries) {
        st_request_fail (self, "internal", "The store is out of memory.");
        return -1;
    }
    bool given;
    if (s_read_entry (self, map, true, &given, append->entries))
        return -1;
    append->count = 1;
    return 0;
}

static int
s_read_msg_history (st_request_t *self, const msgpack_object *map)
{
    st_msg_history_t *history = &self->as.msg_history;
    return s_read_room (self, map, "room", &history->room)
        || s_read_page (self, map, &history->page)
        || s_read_name (self, map, "user", ST_NAME_MAX, false, &history->user) ? -1 : 0;
}

//  pm.append's run: one message in the request's own fields (seq, text,
//  ts, from 'from') or 'messages', not both
static int
s_read_pm_run (st_request_t *self, const msgpack_object *map)
{
    st_pm_append_t *append = &self->as.pm_append;
    const msgpack_object *messages = pl_body_field (map, "messages");
    bool single = pl_body_field (map, "seq") || pl_body_field (map, "text")
               || pl_body_field (map, "ts");
    if (single && messages) {
        st_request_fail (self, "bad_request",
                         "Give 'seq', 'text' and 'ts', or 'messages', not both.");
        return -1;
    }
    if (!single && !messages) {
        st_request_fail (self, "bad_request",
                         "The fields 'seq', 'text' and 'ts', or the field 'messages', are missing.");
        return -1;
    }
    if (messages)
        return s_read_run_array (self, messages, "messages", s_pm_element,
                                 sizeof (st_pm_message_t), (void **) &append->messages,
                                 &append->count)
            || s_messages_repeat (self, append) ? -1 : 0;
    append->messages = (st_pm_message_t *) calloc (1, sizeof (st_pm_message_t));
    if (!append->messages) {
        st_request_fail (self, "internal", "The store is out of memory.");
        return -1;
    }
    if (s_read_pm_message (self, map, append->messages))
        return -1;
    append->count = 1;
    return 0;
}

static int
s_read_pm_append (st_request_t *self, const msgpack_object *map)
{
    st_pm_append_t *append = &self->as.pm_append;
    if (s_read_user (self, map, "from", &append->from)
    ||  s_read_user (self, map, "to", &append->to))
        return -1;
    if (strcmp (append->from.key, append->to.key) == 0) {
        st_request_fail (self, "bad_request",
                         "'from' and 'to' are the same user: a conversation needs two.");
        return -1;
    }
    return s_read_pm_run (self, map);
}

//  'user' and 'with', the two sides of a conversation
static int
s_read_pair (st_request_t *self, const msgpack_object *map, st_pm_pair_t *pair)
{
    return s_read_user (self, map, "user", &pair->user)
        || s_read_user (self, map, "with", &pair->with) ? -1 : 0;
}

static int
s_read_pm_last_seq (st_request_t *self, const msgpack_object *map)
{
    return s_read_pair (self, map, &self->as.pm_last_seq);
}

static int
s_read_pm_history (st_request_t *self, const msgpack_object *map)
{
    st_pm_pair_t *pair = &self->as.pm_history;
    return s_read_pair (self, map, pair) || s_read_page (self, map, &pair->page) ? -1 : 0;
}

static int
s_read_pm_conversations (st_request_t *self, const msgpack_object *map)
{
    st_pm_conversations_t *list = &self->as.pm_conversations;
    return s_read_user (self, map, "user", &list->user)
        || s_read_limit (self, map, ST_CONVERSATIONS_DEFAULT, &list->limit) ? -1 : 0;
}

static int
s_read_msg_nonce (st_request_t *self, const msgpack_object *map)
{
    st_msg_nonce_t *lookup = &self->as.msg_nonce;
    return s_read_room (self, map, "room", &lookup->room)
        || s_read_user (self, map, "user", &lookup->user)
        || s_read_nonce (self, map, true, &lookup->nonce) ? -1 : 0;
}

static int
s_read_pm_nonce (st_request_t *self, const msgpack_object *map)
{
    st_pm_nonce_t *lookup = &self->as.pm_nonce;
    return s_read_user (self, map, "from", &lookup->from)
        || s_read_user (self, map, "to", &lookup->to)
        || s_read_nonce (self, map, true, &lookup->nonce) ? -1 : 0;
}

static int
s_read_pm_read (st_request_t *self, const msgpack_object *map)
{
    st_pm_pair_t *pair = &self->as.pm_read;
    return s_read_pair (self, map, pair)
        || s_read_uint (self, map, "seq", 0, INT64_MAX, true, 0, &pair->seq) ? -1 : 0;
}


//  --------------------------------------------------------------------------
//  The operator's requests (parleyctl, through auth and rooms)

//  user.set_state: name, and a state of the three
static int
s_read_user_set_state (st_request_t *self, const msgpack_object *map)
{
    st_user_set_state_t *set = &self->as.user_set_state;
    if (s_read_user (self, map, "name", &set->name)
    ||  s_read_string (self, map, "state", 1, 16, true, &set->state))
        return -1;
    if (!st_text_is (set->state, "active") && !st_text_is (set->state, "disabled")
    &&  !st_text_is (set->state, "deleted")) {
        st_request_fail (self, "bad_request",
                         "The field 'state' must be \"active\", \"disabled\" or \"deleted\".");
        return -1;
    }
    return 0;
}

static int
s_read_user_set_password (st_request_t *self, const msgpack_object *map)
{
    st_user_set_password_t *set = &self->as.user_set_password;
    return s_read_user (self, map, "name", &set->name)
        || s_read_hash (self, map, "password_hash", &set->password_hash)
        || s_read_string (self, map, "keep_token", 1, ST_HASH_MAX, false, &set->keep_token)
         ? -1 : 0;
}

//  room.all: after (a room name) and limit, no user
static int
s_read_room_all (st_request_t *self, const msgpack_object *map)
{
    st_room_page_t *page = &self->as.room_all;
    return s_read_name (self, map, "after", ST_ROOM_MAX, false, &page->after)
        || s_read_limit (self, map, ST_ROOM_ALL_DEFAULT, &page->limit) ? -1 : 0;
}


//  --------------------------------------------------------------------------
//  Room administration (schema version 10)

//  room.update: the room's name, at least one setting to change, and the
//  update notice (optional)
static int
s_read_room_update (st_request_t *self, const msgpack_object *map)
{
    st_room_update_t *update = &self->as.room_update;
    uint64_t max_participants = 0;
    update->has_private = pl_body_field (map, "private") != NULL;
    if (s_read_room (self, map, "name", &update->name)
    ||  s_read_string (self, map, "description", 0, ST_DESCRIPTION_MAX, false,
                       &update->description)
    ||  (update->has_private && s_read_bool (self, map, "private", &update->is_private))
    ||  s_read_uint (self, map, "max_participants", 1, ST_PARTICIPANTS_MAX, false, 0,
                     &max_participants)
    ||  s_read_entry (self, map, false, &update->has_entry, &update->entry))
        return -1;
    update->max_participants = (uint32_t) max_participants;
    if (!update->description.data && !update->has_private && !update->max_participants) {
        st_request_fail (self, "bad_request", "Give at least one of 'description', 'private'"
                         " and 'max_participants'.");
        return -1;
    }
    return 0;
}

static int
s_read_room_unban (st_request_t *self, const msgpack_object *map)
{
    st_room_unban_t *unban = &self->as.room_unban;
    return s_read_room (self, map, "room", &unban->room)
        || s_read_user (self, map, "user", &unban->user) ? -1 : 0;
}


//  --------------------------------------------------------------------------
//  Search (schema version 12)

//  Whether pl_words finds exactly one word in a text, and that word is
//  the text itself
typedef struct {
    const char *text;
    size_t size;
    size_t count;                   //  words found
    bool same;                      //  the first is text itself
} s_word_check_t;

static void
s_word_seen (const char *word, size_t size, void *arg)
{
    s_word_check_t *check = (s_word_check_t *) arg;
    if (check->count++ == 0)
        check->same = size == check->size && memcmp (word, check->text, size) == 0;
}

//  A word as the search plugin sends it: one word of pl_words, already
//  normalized (splitting it again gives itself), then an optional '*'
static int
s_read_search_word (st_request_t *self, const msgpack_object *value, uint32_t index,
                    st_word_t *word)
{
    if (value->type != MSGPACK_OBJECT_STR || value->via.str.size == 0
    ||  value->via.str.size > ST_SEARCH_WORD_MAX + 1) {
        st_request_fail (self, "bad_request", "In 'words' [%u]: a word must be a string of 1"
                         " to %d bytes and an optional '*'.", index, ST_SEARCH_WORD_MAX);
        return -1;
    }
    const char *text = value->via.str.ptr;
    uint32_t size = value->via.str.size;
    word->prefix = text [size - 1] == '*';
    if (word->prefix)
        size--;
    s_word_check_t check = { .text = text, .size = size };
    if (size > 0 && size <= ST_SEARCH_WORD_MAX)
        pl_words_each (text, size, s_word_seen, &check);
    if (check.count != 1 || !check.same) {
        st_request_fail (self, "bad_request", "In 'words' [%u]: not one normalized word"
                         " (lower case, no accent, letters and digits only).", index);
        return -1;
    }
    word->text.data = text;
    word->text.size = size;
    return 0;
}

static int
s_read_words (st_request_t *self, const msgpack_object *map, st_search_t *search)
{
    const msgpack_object *words = pl_body_field (map, "words");
    if (!words)
        return s_missing (self, "words");
    if (words->type != MSGPACK_OBJECT_ARRAY || words->via.array.size == 0
    ||  words->via.array.size > ST_SEARCH_WORDS_MAX) {
        st_request_fail (self, "bad_request", "The field 'words' must be an array of 1 to %d"
                         " words.", ST_SEARCH_WORDS_MAX);
        return -1;
    }
    for (uint32_t index = 0; index < words->via.array.size; index++)
        if (s_read_search_word (self, &words->via.array.ptr [index], index,
                                &search->words [index]))
            return -1;
    search->count = words->via.array.size;
    return 0;
}

//  store.search: user, words, room or with (not both), limit, cursor
static int
s_read_search (st_request_t *self, const msgpack_object *map)
{
    st_search_t *search = &self->as.search;
    uint64_t limit;
    if (s_read_user (self, map, "user", &search->user)
    ||  s_read_words (self, map, search)
    ||  s_read_name (self, map, "room", ST_ROOM_MAX, false, &search->room)
    ||  s_read_name (self, map, "with", ST_NAME_MAX, false, &search->with)
    ||  s_read_uint (self, map, "limit", 1, ST_SEARCH_LIMIT_MAX, true, 0, &limit)
    ||  s_read_string (self, map, "cursor", 1, ST_SEARCH_CURSOR_MAX, false, &search->cursor))
        return -1;
    if (search->room.text.data && search->with.text.data) {
        st_request_fail (self, "bad_request", "Give 'room' or 'with', not both.");
        return -1;
    }
    search->limit = (uint32_t) limit;
    return 0;
}

//  --------------------------------------------------------------------------
//  Files (schema version 13)

static int
s_read_file_create (st_request_t *self, const msgpack_object *map)
{
    st_file_create_t *create = &self->as.file_create;
    return s_read_file_key (self, map, "id", &create->id)
        || s_read_user (self, map, "user", &create->user)
        || s_read_string (self, map, "name", 1, ST_FILE_NAME_MAX, true, &create->name)
        || s_read_string (self, map, "type", 1, ST_FILE_TYPE_MAX, true, &create->type)
        || s_read_uint (self, map, "size", 0, INT64_MAX, true, 0, &create->size)
        || s_read_time (self, map, "ts", &create->ts)
        || s_read_uint (self, map, "quota", 0, INT64_MAX, true, 0, &create->quota) ? -1 : 0;
}

//  file.write: id, offset, and data: a bin of 0 to ST_FILE_CHUNK_MAX bytes
static int
s_read_file_write (st_request_t *self, const msgpack_object *map)
{
    st_file_write_t *write = &self->as.file_write;
    if (s_read_file_key (self, map, "id", &write->id)
    ||  s_read_uint (self, map, "offset", 0, INT64_MAX, true, 0, &write->offset))
        return -1;
    const msgpack_object *data = pl_body_field (map, "data");
    if (!data)
        return s_missing (self, "data");
    if (data->type != MSGPACK_OBJECT_BIN || data->via.bin.size > ST_FILE_CHUNK_MAX) {
        st_request_fail (self, "bad_request", "The field 'data' must be a bin of 0 to %d bytes.",
                         ST_FILE_CHUNK_MAX);
        return -1;
    }
    write->data.data = data->via.bin.size ? data->via.bin.ptr : "";
    write->data.size = data->via.bin.size;
    return 0;
}

//  file.commit and file.get share their struct
static int
s_read_file_id (st_request_t *self, const msgpack_object *map)
{
    return s_read_file_key (self, map, "id", &self->as.file_get.id);
}

static int
s_read_file_read (st_request_t *self, const msgpack_object *map)
{
    st_file_read_t *read = &self->as.file_read;
    return s_read_file_key (self, map, "id", &read->id)
        || s_read_uint (self, map, "offset", 0, INT64_MAX, true, 0, &read->offset)
        || s_read_uint (self, map, "length", 1, ST_FILE_CHUNK_MAX, true, 0, &read->length)
         ? -1 : 0;
}

static int
s_read_file_sweep (st_request_t *self, const msgpack_object *map)
{
    return s_read_time (self, map, "before", &self->as.file_sweep.before);
}
