/*  =========================================================================
    store-mongo - the store for clusters: proto/STORE.md on MongoDB

    Serves the store.* requests of proto/STORE.md from six collections of
    one MongoDB database, through one mongoc_client_t used only on this
    instance's own thread (calls block that thread, which exists for it):

        users   {_id: ObjectId, name, name_lower, password_hash, created_at,
                 last_seen}                       unique index on name_lower
        tokens  {_id: ObjectId, token_hash, user, created_at, expires_at,
                 last_used_at}    unique index on token_hash; indexes on user,
                                  expires_at and (user, last_used_at)
        rooms, messages: see "Rooms, members, invitations and timelines"
        pm_messages, conversations: see "Private messages"

    tokens.user is the owner's name as registered (names never change), so
    that store.token.get, the hot path of every login by token, is one find.

    Batching: on_request validates a request and queues it; on_batch_end
    applies the queue in the order received. A run of consecutive
    user.create, of token.put, of user.seen, of msg.append or of pm.append
    requests goes to the server
    together: one find for what the run needs to know (taken names, owners,
    known users, taken seqs), then one insert_many (unordered: each
    document's error comes back with its index, so every request gets its
    own answer; msg.append's and pm.append's are ordered, so that a
    request's run never leaves a gap: see s_run_msg_append) or one ordered
    bulk of updates. Every
    other request is one round trip. Answers go out in order, each after
    the server acknowledged its write.

    Uniqueness: the unique indexes are the guarantee (a duplicate key, error
    11000, answers conflict). The run also looks for taken names and token
    hashes before inserting, and settles duplicates inside the run itself:
    the JavaScript test server creates unique indexes but does not enforce
    them (NOTES.md), and an error decided here is cheaper than one decided
    by the server.

    Failure: an error that says the server cannot be reached (no server
    selectable, a broken connection) answers unavailable to that request and
    to the rest of the batch without trying them; the next batch tries
    again. A server that is down at start is not an error: init succeeds,
    logs a warning, and creates the indexes once the server answers.
    =========================================================================
*/

#include "parley_plugin.h"
#include "pl_envelope.h"

#include <assert.h>
#include <inttypes.h>
#include <mongoc/mongoc.h>
#include <msgpack.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  store.info's schema_version: the collections and indexes above
#define S_SCHEMA_VERSION        5
//  Most requests queued before they are applied
#define S_BATCH_MAX             1024
//  Most user.seen entries sent to the server in one bulk
#define S_SEEN_RUN_MAX          4096
//  Most timeline entries or private messages sent to the server in one
//  insert (up to 16 MB of text): a run of msg.append or of pm.append
//  requests ends before it would pass this
#define S_APPEND_RUN_MAX        1024
//  Bounds of the values of proto/STORE.md
#define S_NAME_MAX              256
#define S_HASH_MAX              1024
#define S_SEEN_MAX              1024
#define S_LIST_LIMIT_MAX        1000
//  Tokens store.token.trim deletes at most in one request
#define S_TRIM_MAX              1000
#define S_KEEP_MAX              1000000
#define S_ROOM_MAX              64
#define S_DESCRIPTION_MAX       2000
#define S_TEXT_MAX              16000
#define S_ENTRIES_MAX           256
#define S_HISTORY_DEFAULT       50
#define S_CONVERSATIONS_DEFAULT 200
//  What the list of one answer may take, packed: an answer stays under the
//  envelope's body limit, with room for the rest of it (proto/STORE.md,
//  "Answers bounded by bytes")
#define S_REPLY_BUDGET          (PL_ENVELOPE_MAX_BODY - 64 * 1024)
#define S_PUBLIC_DEFAULT        200
#define S_DIRECTORY_DEFAULT     50
//  How often member.add re-reads a room that changed between its checks
//  and its conditional update (another writer joined, left, deleted)
#define S_JOIN_ATTEMPTS         3
//  The index that serves every timeline read and guards (room, seq)
#define S_TIMELINE_INDEX        "room_seq_unique"
//  The index that serves every pm history page and unread count, and
//  guards (conv, seq); the one that serves pm.conversations
#define S_PM_INDEX              "conv_seq_unique"
#define S_CONVERSATIONS_INDEX   "users_last_ts"
//  Defaults for what the URI does not set: a cluster client that answers
//  unavailable within seconds rather than hang while the server is away.
//  Each blocking call stays under the 3 s after which the broker declares
//  a silent peer dead (proto/ENVELOPE.md, Heartbeats), and the answer comes
//  before the broker's own 5 s request timeout.
#define S_DEFAULT_URI           "mongodb://127.0.0.1:27017/parley"
#define S_DEFAULT_DATABASE      "parley"
#define S_SERVER_SELECTION_MS   2000
#define S_CONNECT_MS            2000
#define S_SOCKET_MS             2500
//  MongoDB's duplicate key errors
#define S_DUPLICATE_KEY         11000
#define S_DUPLICATE_KEY_OLD     11001

//  The requests we serve
typedef enum {
    S_OP_INFO,
    S_OP_USER_CREATE,
    S_OP_USER_GET,
    S_OP_USER_LIST,
    S_OP_USER_SEEN,
    S_OP_TOKEN_PUT,
    S_OP_TOKEN_GET,
    S_OP_TOKEN_DELETE,
    S_OP_TOKEN_DELETE_USER,
    S_OP_TOKEN_PURGE,
    S_OP_TOKEN_TOUCH,
    S_OP_TOKEN_TRIM,
    S_OP_ROOM_CREATE,
    S_OP_ROOM_GET,
    S_OP_ROOM_LIST,
    S_OP_ROOM_JOINED,
    S_OP_ROOM_PUBLIC,
    S_OP_ROOM_DIRECTORY,
    S_OP_ROOM_DELETE,
    S_OP_MEMBER_ADD,
    S_OP_MEMBER_REMOVE,
    S_OP_MEMBER_LIST,
    S_OP_INVITE_ADD,
    S_OP_MSG_APPEND,
    S_OP_MSG_HISTORY,
    S_OP_PM_APPEND,
    S_OP_PM_LAST_SEQ,
    S_OP_PM_HISTORY,
    S_OP_PM_CONVERSATIONS,
    S_OP_PM_READ
} s_op_t;

static const struct {
    const char *type;               //  the request type
    s_op_t op;                      //  what it does
} s_ops [] = {
    { "store.info",              S_OP_INFO },
    { "store.user.create",       S_OP_USER_CREATE },
    { "store.user.get",          S_OP_USER_GET },
    { "store.user.list",         S_OP_USER_LIST },
    { "store.user.seen",         S_OP_USER_SEEN },
    { "store.token.put",         S_OP_TOKEN_PUT },
    { "store.token.get",         S_OP_TOKEN_GET },
    { "store.token.delete",      S_OP_TOKEN_DELETE },
    { "store.token.delete_user", S_OP_TOKEN_DELETE_USER },
    { "store.token.purge",       S_OP_TOKEN_PURGE },
    { "store.token.touch",       S_OP_TOKEN_TOUCH },
    { "store.token.trim",        S_OP_TOKEN_TRIM },
    { "store.room.create",       S_OP_ROOM_CREATE },
    { "store.room.get",          S_OP_ROOM_GET },
    { "store.room.list",         S_OP_ROOM_LIST },
    { "store.room.joined",       S_OP_ROOM_JOINED },
    { "store.room.public",       S_OP_ROOM_PUBLIC },
    { "store.room.directory",    S_OP_ROOM_DIRECTORY },
    { "store.room.delete",       S_OP_ROOM_DELETE },
    { "store.member.add",        S_OP_MEMBER_ADD },
    { "store.member.remove",     S_OP_MEMBER_REMOVE },
    { "store.member.list",       S_OP_MEMBER_LIST },
    { "store.invite.add",        S_OP_INVITE_ADD },
    { "store.msg.append",        S_OP_MSG_APPEND },
    { "store.msg.history",       S_OP_MSG_HISTORY },
    { "store.pm.append",         S_OP_PM_APPEND },
    { "store.pm.last_seq",       S_OP_PM_LAST_SEQ },
    { "store.pm.history",        S_OP_PM_HISTORY },
    { "store.pm.conversations",  S_OP_PM_CONVERSATIONS },
    { "store.pm.read",           S_OP_PM_READ }
};
#define S_OP_COUNT (sizeof s_ops / sizeof s_ops [0])

//  A string borrowed from a request's body
typedef struct {
    const char *data;               //  not NUL-terminated
    uint32_t size;                  //  bytes
} s_text_t;

//  A timeline entry of a request, validated (proto/STORE.md, entry)
typedef struct {
    bool present;                   //  the request carries one
    uint64_t seq;                   //  1 or more
    bool system;                    //  kind "system", else "message"
    s_text_t user;                  //  the sender, or whom a system entry is about
    int64_t ts;                     //  milliseconds since 1970
    s_text_t text;                  //  a message's text, may be empty
    s_text_t event;                 //  a system entry's event: join or leave
} s_entry_t;

//  A private message of pm.append, validated (proto/STORE.md)
typedef struct {
    uint64_t seq;                   //  1 or more
    bool from_peer;                 //  sent by 'to', not 'from': a run may go both ways
    int64_t ts;                     //  milliseconds since 1970
    s_text_t text;                  //  may be empty
} s_pm_message_t;

//  Where msg.history starts
typedef enum {
    S_CURSOR_NONE,                  //  the newest entries
    S_CURSOR_BEFORE,                //  the newest with seq < cursor
    S_CURSOR_AFTER                  //  the oldest with seq > cursor
} s_cursor_t;

//  One queued request, validated, waiting for the batch to run
typedef struct {
    parley_request_t *request;      //  lent by the host until we reply
    s_op_t op;                      //  what it asks
    msgpack_unpacked fields;        //  owns what the fields below point into
    s_text_t name;                  //  name, after, user; pm: from or user
    char key [S_NAME_MAX + 1];      //  name, lower-cased, NUL-terminated
    s_text_t hash;                  //  password_hash or token_hash
    int64_t created_at;             //  time fields
    int64_t expires_at;
    int64_t before;
    uint32_t limit;                 //  user.list
    const msgpack_object *users;    //  user.seen: the array, in fields
    uint32_t updated;               //  user.seen: entries that named a user
    char owner [S_NAME_MAX + 1];    //  token.put: the user as registered
    s_text_t room;                  //  the room's name (name in room.*, room elsewhere)
    char room_key [S_ROOM_MAX + 1]; //  the room's name, lower-cased
    s_text_t description;           //  room.create, may be empty
    bool is_private;                //  room.create
    uint32_t max_participants;      //  room.create
    s_entry_t entry;                //  member.add/remove; msg.append: the run's first
    const msgpack_object *entries;  //  msg.append's entry maps, pm.append's message maps
                                    //  (its own map for one message), in fields
    uint32_t entry_count;           //  msg.append, pm.append: how many, 1 to S_ENTRIES_MAX
    bool room_found;                //  msg.append: its room exists; pm.append: its conversation
    s_cursor_t cursor;              //  msg.history, pm.history
    uint64_t cursor_seq;            //  before or after
    s_text_t peer;                  //  pm: to or with
    char peer_key [S_NAME_MAX + 1]; //  peer, lower-cased
    char conv [2 * S_NAME_MAX + 2]; //  pm: the conversation's key (see "Private messages")
    uint64_t seq;                   //  pm.append: the run's first; pm.read
    uint64_t keep;                  //  token.trim
    char from_name [S_NAME_MAX + 1];    //  pm.append: 'from' as registered
    char to_name [S_NAME_MAX + 1];      //  pm.append: 'to' as registered
    char after_key [S_ROOM_MAX + 1];    //  room.joined/public/directory: the cursor's
                                        //  room, lower-cased; "" for none
    char prefix_key [S_ROOM_MAX + 1];   //  room.directory: lower-cased; "" for none
    bool has_after_active;          //  room.public: the cursor's active_at is given
    int64_t after_active;
    uint64_t max_owned;             //  room.create: the owner's quota, 0 for none
    uint64_t max_joined;            //  room.create, member.add: the user's quota, 0 for none
    const char *code;               //  error code, NULL for ok
    char message [200];             //  error sentence
    msgpack_sbuffer result;         //  ok result map
} s_pending_t;

//  Per-instance state
typedef struct {
    parley_ctx_t *ctx;              //  the host's handle
    const parley_host_t *host;      //  the host's function table
    char *where;                    //  "hosts/database" for the log, no credentials
    mongoc_client_t *client;        //  the one connection, this thread only
    mongoc_collection_t *users;     //  the users collection
    mongoc_collection_t *tokens;    //  the tokens collection
    mongoc_collection_t *rooms;     //  the rooms collection
    mongoc_collection_t *messages;  //  the messages collection: every room's timeline
    mongoc_collection_t *pm_messages;   //  every conversation's messages
    mongoc_collection_t *conversations; //  one document per conversation
    char *database;                 //  the database's name
    bool prepared;                  //  indexes created
    bool reachable;                 //  last we knew, for logging changes once
    bool batch_down;                //  this batch met an unreachable server
    bson_error_t down_error;        //  and why
    s_pending_t *pending;           //  S_BATCH_MAX slots
    size_t pending_count;           //  slots in use
    uint64_t requests;              //  requests answered, for the log
    uint64_t round_trips;           //  server operations, for the log
} store_t;


//  --------------------------------------------------------------------------
//  Helpers

//  The ASCII-lower-cased copy of text, into key (S_NAME_MAX + 1 bytes)
static void
s_lower (const char *data, uint32_t size, char *key)
{
    for (uint32_t index = 0; index < size; index++) {
        char c = data [index];
        key [index] = (c >= 'A' && c <= 'Z') ? (char) (c - 'A' + 'a') : c;
    }
    key [size] = 0;
}

static void
s_pack_str (msgpack_packer *packer, const char *string)
{
    msgpack_pack_str_with_body (packer, string, strlen (string));
}

static void
s_fail (s_pending_t *pending, const char *code, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_fail (s_pending_t *pending, const char *code, const char *format, ...)
{
    pending->code = code;
    va_list args;
    va_start (args, format);
    vsnprintf (pending->message, sizeof pending->message, format, args);
    va_end (args);
    msgpack_sbuffer_clear (&pending->result);
}

static void
s_pending_reset (s_pending_t *pending)
{
    msgpack_unpacked_destroy (&pending->fields);
    msgpack_sbuffer_destroy (&pending->result);
    memset (pending, 0, sizeof *pending);
}

//  True for requests that are still to be applied: valid, not answered
static bool
s_is_live (const s_pending_t *pending)
{
    return pending->code == NULL;
}

//  Packs a string field of a document, "" if absent
static void
s_pack_bson_str (msgpack_packer *packer, const bson_t *document, const char *key)
{
    bson_iter_t iter;
    uint32_t size = 0;
    const char *string = NULL;
    if (bson_iter_init_find (&iter, document, key) && BSON_ITER_HOLDS_UTF8 (&iter))
        string = bson_iter_utf8 (&iter, &size);
    msgpack_pack_str_with_body (packer, string ? string : "", string ? size : 0);
}

//  Packs a time field of a document: an integer, or nil if null or absent
static void
s_pack_bson_time (msgpack_packer *packer, const bson_t *document, const char *key)
{
    bson_iter_t iter;
    if (bson_iter_init_find (&iter, document, key)
    &&  (BSON_ITER_HOLDS_INT64 (&iter) || BSON_ITER_HOLDS_INT32 (&iter)
    ||   BSON_ITER_HOLDS_DOUBLE (&iter)))
        msgpack_pack_int64 (packer, bson_iter_as_int64 (&iter));
    else
        msgpack_pack_nil (packer);
}

//  Copies a string field of a document into buffer (size bytes); "" if absent
static void
s_copy_bson_str (const bson_t *document, const char *key, char *buffer, size_t size)
{
    bson_iter_t iter;
    uint32_t length = 0;
    const char *string = NULL;
    if (bson_iter_init_find (&iter, document, key) && BSON_ITER_HOLDS_UTF8 (&iter))
        string = bson_iter_utf8 (&iter, &length);
    snprintf (buffer, size, "%.*s", string ? (int) length : 0, string ? string : "");
}


//  --------------------------------------------------------------------------
//  Errors from the server: which mean it cannot be reached

//  The server is out of reach: no server to select, a broken or timed-out
//  connection, a failed handshake or login
static bool
s_is_unreachable (const bson_error_t *error)
{
    return error->domain == MONGOC_ERROR_SERVER_SELECTION
        || error->domain == MONGOC_ERROR_STREAM
        || (error->domain == MONGOC_ERROR_CLIENT
            && error->code == MONGOC_ERROR_CLIENT_AUTHENTICATE);
}

static bool
s_is_duplicate_key (const bson_error_t *error)
{
    return (error->domain == MONGOC_ERROR_SERVER || error->domain == MONGOC_ERROR_COLLECTION
         || error->domain == MONGOC_ERROR_QUERY || error->domain == MONGOC_ERROR_COMMAND)
        && (error->code == S_DUPLICATE_KEY || error->code == S_DUPLICATE_KEY_OLD);
}

//  The server answered: say so once, if it had been unreachable
static void
s_mark_reachable (store_t *self)
{
    if (!self->reachable) {
        self->host->log (self->ctx, PARLEY_LOG_INFO, "MongoDB at %s answers again", self->where);
        self->reachable = true;
    }
}

//  An operation failed. If the server is out of reach the rest of the batch
//  is not tried; the change is logged once. Other failures are logged each.
static void
s_note_failure (store_t *self, const char *what, const bson_error_t *error)
{
    if (s_is_unreachable (error)) {
        if (!self->batch_down) {
            self->batch_down = true;
            self->down_error = *error;
        }
        if (self->reachable) {
            self->host->log (self->ctx, PARLEY_LOG_WARNING,
                             "MongoDB at %s is unreachable (%s); store requests are answered "
                             "unavailable until it answers", self->where, error->message);
            self->reachable = false;
        }
    }
    else
        self->host->log (self->ctx, PARLEY_LOG_ERROR, "%s on %s failed: %s (error %" PRIu32 ")",
                         what, self->where, error->message, error->code);
}

static void
s_fail_unavailable (store_t *self, s_pending_t *pending, const bson_error_t *error)
{
    if (s_is_unreachable (error))
        s_fail (pending, "unavailable", "The store cannot reach its database: %.140s",
                error->message);
    else
        s_fail (pending, "unavailable", "The store's database failed: %.140s", error->message);
}


//  --------------------------------------------------------------------------
//  Validation: reads a request's fields into its pending slot, or says why not

//  The value of key in map, or NULL
static const msgpack_object *
s_field (const msgpack_object *map, const char *key)
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
    const msgpack_object *value = s_field (map, key);
    return value && value->type != MSGPACK_OBJECT_NIL ? value : NULL;
}

//  Puts where in front of pending's sentence, to say which part of the
//  request was refused ("In 'entries' [3]: The field 'ts' is missing.")
static void
s_fail_where (s_pending_t *pending, const char *where)
{
    char reason [sizeof pending->message];
    memcpy (reason, pending->message, sizeof reason);
    snprintf (pending->message, sizeof pending->message, "%.32s: %.160s", where, reason);
}

//  Reads a string field of 1 to max bytes without NUL. Returns 0, or -1
//  after failing pending with bad_request.
static int
s_read_text (s_pending_t *pending, const msgpack_object *map, const char *key,
             uint32_t max, bool required, s_text_t *text)
{
    const msgpack_object *value = s_field (map, key);
    if (!value) {
        if (!required)
            return 0;
        s_fail (pending, "bad_request", "The field '%s' is missing.", key);
        return -1;
    }
    if (value->type != MSGPACK_OBJECT_STR) {
        s_fail (pending, "bad_request", "The field '%s' must be a string.", key);
        return -1;
    }
    if (value->via.str.size == 0 || value->via.str.size > max
    ||  memchr (value->via.str.ptr, 0, value->via.str.size)) {
        s_fail (pending, "bad_request",
                "The field '%s' must have 1 to %u bytes and no NUL.", key, max);
        return -1;
    }
    text->data = value->via.str.ptr;
    text->size = value->via.str.size;
    return 0;
}

//  Reads a name and its lower-cased key
static int
s_read_name (s_pending_t *pending, const msgpack_object *map, const char *key, bool required)
{
    if (s_read_text (pending, map, key, S_NAME_MAX, required, &pending->name))
        return -1;
    s_lower (pending->name.data, pending->name.size, pending->key);
    return 0;
}

//  Reads a time: an integer, 0 or more, that fits int64
static int
s_read_time_object (s_pending_t *pending, const msgpack_object *value, const char *key,
                    int64_t *time_p)
{
    if (!value) {
        s_fail (pending, "bad_request", "The field '%s' is missing.", key);
        return -1;
    }
    if (value->type != MSGPACK_OBJECT_POSITIVE_INTEGER || value->via.u64 > INT64_MAX) {
        s_fail (pending, "bad_request",
                "The field '%s' must be an integer of milliseconds since 1970, 0 or more.", key);
        return -1;
    }
    *time_p = (int64_t) value->via.u64;
    return 0;
}

static int
s_read_time (s_pending_t *pending, const msgpack_object *map, const char *key, int64_t *time_p)
{
    return s_read_time_object (pending, s_field (map, key), key, time_p);
}

//  Validates store.user.seen's users array in place
static int
s_read_seen (s_pending_t *pending, const msgpack_object *map)
{
    const msgpack_object *users = s_field (map, "users");
    if (!users || users->type != MSGPACK_OBJECT_ARRAY
    ||  users->via.array.size == 0 || users->via.array.size > S_SEEN_MAX) {
        s_fail (pending, "bad_request",
                "The field 'users' must be an array of 1 to %d maps {name, last_seen}.",
                S_SEEN_MAX);
        return -1;
    }
    for (uint32_t index = 0; index < users->via.array.size; index++) {
        const msgpack_object *entry = &users->via.array.ptr [index];
        if (entry->type != MSGPACK_OBJECT_MAP) {
            s_fail (pending, "bad_request", "Entry %u of 'users' is not a map.", index);
            return -1;
        }
        s_text_t name;
        int64_t last_seen;
        if (s_read_text (pending, entry, "name", S_NAME_MAX, true, &name)
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
s_read_string (s_pending_t *pending, const msgpack_object *map, const char *key,
               uint32_t max, bool required, s_text_t *text)
{
    const msgpack_object *value = s_field (map, key);
    if (!value) {
        if (!required)
            return 0;
        s_fail (pending, "bad_request", "The field '%s' is missing.", key);
        return -1;
    }
    if (value->type != MSGPACK_OBJECT_STR || value->via.str.size > max
    ||  memchr (value->via.str.ptr, 0, value->via.str.size)) {
        s_fail (pending, "bad_request",
                "The field '%s' must be a string of at most %u bytes and no NUL.", key, max);
        return -1;
    }
    text->data = value->via.str.ptr;
    text->size = value->via.str.size;
    return 0;
}

//  Reads a room's name and its lower-cased key
static int
s_read_room (s_pending_t *pending, const msgpack_object *map, const char *key)
{
    if (s_read_text (pending, map, key, S_ROOM_MAX, true, &pending->room))
        return -1;
    s_lower (pending->room.data, pending->room.size, pending->room_key);
    return 0;
}

//  Reads an unsigned integer from min to max; absent: fallback if optional
static int
s_read_uint (s_pending_t *pending, const msgpack_object *map, const char *key,
             uint64_t min, uint64_t max, bool required, uint64_t fallback, uint64_t *value_p)
{
    const msgpack_object *value = s_field (map, key);
    if (!value && !required) {
        *value_p = fallback;
        return 0;
    }
    if (!value) {
        s_fail (pending, "bad_request", "The field '%s' is missing.", key);
        return -1;
    }
    if (value->type != MSGPACK_OBJECT_POSITIVE_INTEGER
    ||  value->via.u64 < min || value->via.u64 > max) {
        s_fail (pending, "bad_request", "The field '%s' must be an integer from %" PRIu64
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
static int
s_entry_read (s_pending_t *pending, const msgpack_object *value, s_entry_t *entry)
{
    memset (entry, 0, sizeof *entry);
    if (value->type != MSGPACK_OBJECT_MAP) {
        s_fail (pending, "bad_request",
                "The entry must be a map {seq, kind, user, ts, text or event}.");
        return -1;
    }
    s_text_t kind = { NULL, 0 };
    if (s_read_uint (pending, value, "seq", 1, INT64_MAX, true, 0, &entry->seq)
    ||  s_read_text (pending, value, "kind", 16, true, &kind)
    ||  s_read_text (pending, value, "user", S_NAME_MAX, true, &entry->user)
    ||  s_read_time (pending, value, "ts", &entry->ts))
        return -1;
    if (kind.size == 7 && memcmp (kind.data, "message", 7) == 0) {
        if (s_read_string (pending, value, "text", S_TEXT_MAX, true, &entry->text))
            return -1;
    }
    else
    if (kind.size == 6 && memcmp (kind.data, "system", 6) == 0) {
        entry->system = true;
        if (s_read_text (pending, value, "event", 16, true, &entry->event))
            return -1;
        if (!((entry->event.size == 4 && memcmp (entry->event.data, "join", 4) == 0)
        ||    (entry->event.size == 5 && memcmp (entry->event.data, "leave", 5) == 0))) {
            s_fail (pending, "bad_request", "The field 'event' must be \"join\" or \"leave\".");
            return -1;
        }
    }
    else {
        s_fail (pending, "bad_request", "The field 'kind' must be \"message\" or \"system\".");
        return -1;
    }
    entry->present = true;
    return 0;
}

//  Reads the timeline entry of msg.append, member.add/remove (optional
//  there; nil is absent)
static int
s_read_entry (s_pending_t *pending, const msgpack_object *map, bool required)
{
    const msgpack_object *value = s_field (map, "entry");
    if (!value || value->type == MSGPACK_OBJECT_NIL) {
        if (!required)
            return 0;
        s_fail (pending, "bad_request", "The field 'entry' is missing.");
        return -1;
    }
    if (value->type != MSGPACK_OBJECT_MAP) {
        s_fail (pending, "bad_request",
                "The field 'entry' must be a map {seq, kind, user, ts, text or event}.");
        return -1;
    }
    if (s_entry_read (pending, value, &pending->entry)) {
        s_fail_where (pending, "In 'entry'");
        return -1;
    }
    return 0;
}

//  Reads one element of a run (an entry of msg.append, a message of
//  pm.append) and gives its seq. Returns 0, or -1 after failing pending
//  with a sentence that does not say where the element was.
typedef int (s_element_fn) (s_pending_t *pending, const msgpack_object *value,
                            uint64_t *seq_p);

//  Reads the run in the array field key: 1 to S_ENTRIES_MAX elements, each
//  read by read, whose seqs follow one another. Every element is checked
//  now, so that a run is never refused half way; the run stays in fields,
//  where s_insert_entries reads it again. Returns 0, or -1 failed with a
//  sentence that names the element ("In 'entries' [3]: ...").
static int
s_read_run_array (s_pending_t *pending, const msgpack_object *array, const char *key,
                  s_element_fn *read)
{
    if (array->type != MSGPACK_OBJECT_ARRAY
    ||  array->via.array.size == 0 || array->via.array.size > S_ENTRIES_MAX) {
        s_fail (pending, "bad_request", "The field '%s' must be an array of 1 to %d %s.",
                key, S_ENTRIES_MAX, key);
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
            s_fail (pending, "bad_request", "The seq must be %" PRIu64 ", one more than the"
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
s_entry_seq_read (s_pending_t *pending, const msgpack_object *value, uint64_t *seq_p)
{
    s_entry_t entry;
    if (s_entry_read (pending, value, &entry))
        return -1;
    *seq_p = entry.seq;
    return 0;
}

//  Reads msg.append's run: 'entry' (a run of one) or 'entries', not both
static int
s_read_run (s_pending_t *pending, const msgpack_object *map)
{
    const msgpack_object *single = s_given (map, "entry");
    const msgpack_object *entries = s_given (map, "entries");
    if (single && entries) {
        s_fail (pending, "bad_request", "Give 'entry' or 'entries', not both.");
        return -1;
    }
    if (!single && !entries) {
        s_fail (pending, "bad_request", "The field 'entry' or 'entries' is missing.");
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
    return s_entry_read (pending, &pending->entries [0], &pending->entry);
}

//  Reads one private message (pm.append's own fields, or an element of its
//  'messages') into message: its 'from' must be one of the request's two
//  users, read before. Returns 0, or -1 after failing pending with a
//  sentence that does not say where the message was.
static int
s_pm_message_read (s_pending_t *pending, const msgpack_object *value, s_pm_message_t *message)
{
    memset (message, 0, sizeof *message);
    if (value->type != MSGPACK_OBJECT_MAP) {
        s_fail (pending, "bad_request", "The message must be a map {from, seq, text, ts}.");
        return -1;
    }
    s_text_t from;
    if (s_read_text (pending, value, "from", S_NAME_MAX, true, &from)
    ||  s_read_uint (pending, value, "seq", 1, INT64_MAX, true, 0, &message->seq)
    ||  s_read_string (pending, value, "text", S_TEXT_MAX, true, &message->text)
    ||  s_read_time (pending, value, "ts", &message->ts))
        return -1;
    char key [S_NAME_MAX + 1];
    s_lower (from.data, from.size, key);
    if (strcmp (key, pending->key) == 0)
        return 0;
    if (strcmp (key, pending->peer_key) == 0) {
        message->from_peer = true;
        return 0;
    }
    s_fail (pending, "bad_request", "The message's 'from' must be '%.*s' or '%.*s'.",
            (int) (pending->name.size < 40 ? pending->name.size : 40), pending->name.data,
            (int) (pending->peer.size < 40 ? pending->peer.size : 40), pending->peer.data);
    return -1;
}

static int
s_pm_message_seq_read (s_pending_t *pending, const msgpack_object *value, uint64_t *seq_p)
{
    s_pm_message_t message;
    if (s_pm_message_read (pending, value, &message))
        return -1;
    *seq_p = message.seq;
    return 0;
}

//  Reads pm.append's run: one message in the request's own fields (seq,
//  text, ts, from 'from') or 'messages', not both
static int
s_read_pm_run (s_pending_t *pending, const msgpack_object *map)
{
    const msgpack_object *messages = s_given (map, "messages");
    bool single = s_given (map, "seq") || s_given (map, "text") || s_given (map, "ts");
    if (single && messages) {
        s_fail (pending, "bad_request", "Give 'seq', 'text' and 'ts', or 'messages', not both.");
        return -1;
    }
    if (!single && !messages) {
        s_fail (pending, "bad_request",
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
    s_pm_message_t message;
    if (s_pm_message_read (pending, &pending->entries [0], &message))
        return -1;
    pending->seq = message.seq;
    return 0;
}

//  The seqs of msg.append's and pm.append's runs: the first, the last
static uint64_t
s_first_seq (const s_pending_t *pending)
{
    return pending->op == S_OP_PM_APPEND ? pending->seq : pending->entry.seq;
}

static uint64_t
s_last_seq (const s_pending_t *pending)
{
    return s_first_seq (pending) + pending->entry_count - 1;
}

//  The timeline a msg.append or pm.append request appends to: a room's, in
//  messages by 'room', or a conversation's, in pm_messages by 'conv'
static const char *
s_timeline_key (const s_pending_t *pending)
{
    return pending->op == S_OP_PM_APPEND ? pending->conv : pending->room_key;
}

static const char *
s_timeline_field (const s_pending_t *pending)
{
    return pending->op == S_OP_PM_APPEND ? "conv" : "room";
}

//  Reads the page of a history request: limit, and before or after
static int
s_read_page (s_pending_t *pending, const msgpack_object *map)
{
    uint64_t limit;
    if (s_read_uint (pending, map, "limit", 1, S_LIST_LIMIT_MAX, false, S_HISTORY_DEFAULT,
                     &limit))
        return -1;
    pending->limit = (uint32_t) limit;
    const msgpack_object *before = s_field (map, "before");
    const msgpack_object *after = s_field (map, "after");
    if (before && before->type == MSGPACK_OBJECT_NIL)
        before = NULL;
    if (after && after->type == MSGPACK_OBJECT_NIL)
        after = NULL;
    if (before && after) {
        s_fail (pending, "bad_request", "Give 'before' or 'after', not both.");
        return -1;
    }
    if (before || after) {
        pending->cursor = before ? S_CURSOR_BEFORE : S_CURSOR_AFTER;
        if (s_read_uint (pending, map, before ? "before" : "after", 0, INT64_MAX, true, 0,
                         &pending->cursor_seq))
            return -1;
    }
    return 0;
}

//  Reads the two sides of a pm request: me into name and key, other into
//  peer and peer_key, and makes the conversation's key
static int
s_read_pm_pair (s_pending_t *pending, const msgpack_object *map, const char *me,
                const char *other)
{
    if (s_read_name (pending, map, me, true)
    ||  s_read_text (pending, map, other, S_NAME_MAX, true, &pending->peer))
        return -1;
    s_lower (pending->peer.data, pending->peer.size, pending->peer_key);
    bool me_first = strcmp (pending->key, pending->peer_key) < 0;
    snprintf (pending->conv, sizeof pending->conv, "%s\n%s",
              me_first ? pending->key : pending->peer_key,
              me_first ? pending->peer_key : pending->key);
    return 0;
}

//  The quotas of room.create and member.add: absent or 0 for none
static int
s_read_quotas (s_pending_t *pending, const msgpack_object *map, bool owned)
{
    if (owned && s_read_uint (pending, map, "max_owned", 0, INT64_MAX, false, 0,
                              &pending->max_owned))
        return -1;
    return s_read_uint (pending, map, "max_joined", 0, INT64_MAX, false, 0,
                        &pending->max_joined);
}

//  A room list's page: user, after (a room name), limit 1 .. 1000
static int
s_read_room_page (s_pending_t *pending, const msgpack_object *map, uint64_t fallback)
{
    uint64_t limit;
    s_text_t after = { NULL, 0 };
    if (s_read_name (pending, map, "user", true)
    ||  s_read_text (pending, map, "after", S_ROOM_MAX, false, &after)
    ||  s_read_uint (pending, map, "limit", 1, S_LIST_LIMIT_MAX, false, fallback, &limit))
        return -1;
    s_lower (after.data, after.size, pending->after_key);
    pending->limit = (uint32_t) limit;
    return 0;
}

//  store.room.public: the page and its cursor, (after_active, after) both or neither
static int
s_read_room_public (s_pending_t *pending, const msgpack_object *map)
{
    if (s_read_room_page (pending, map, S_PUBLIC_DEFAULT))
        return -1;
    pending->has_after_active = s_field (map, "after_active") != NULL;
    if (pending->has_after_active
    &&  s_read_time (pending, map, "after_active", &pending->after_active))
        return -1;
    if (pending->has_after_active != (pending->after_key [0] != 0)) {
        s_fail (pending, "bad_request", "Give 'after_active' and 'after' together, or neither.");
        return -1;
    }
    return 0;
}

//  store.room.directory: the page and a prefix of ASCII letters, digits,
//  '_' and '-' (the names of rooms), so that its range has an end
static int
s_read_room_directory (s_pending_t *pending, const msgpack_object *map)
{
    s_text_t prefix = { NULL, 0 };
    if (s_read_room_page (pending, map, S_DIRECTORY_DEFAULT)
    ||  s_read_text (pending, map, "prefix", S_ROOM_MAX, false, &prefix))
        return -1;
    for (uint32_t index = 0; index < prefix.size; index++) {
        char c = prefix.data [index];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c == '_' || c == '-')) {
            s_fail (pending, "bad_request",
                    "The field 'prefix' must hold only letters, digits, '_' and '-'.");
            return -1;
        }
    }
    s_lower (prefix.data, prefix.size, pending->prefix_key);
    return 0;
}

//  Validates the fields of pending->op. Returns 0, or -1 with pending failed.
static int
s_validate (s_pending_t *pending, const uint8_t *body, size_t size)
{
    size_t offset = 0;
    msgpack_unpack_return unpacked
        = msgpack_unpack_next (&pending->fields, (const char *) body, size, &offset);
    if (unpacked != MSGPACK_UNPACK_SUCCESS || pending->fields.data.type != MSGPACK_OBJECT_MAP) {
        s_fail (pending, "bad_request", "The request's fields are not a msgpack map.");
        return -1;
    }
    const msgpack_object *map = &pending->fields.data;
    switch (pending->op) {
        case S_OP_INFO:
            return 0;
        case S_OP_USER_CREATE:
            if (s_read_name (pending, map, "name", true)
            ||  s_read_text (pending, map, "password_hash", S_HASH_MAX, true, &pending->hash)
            ||  s_read_time (pending, map, "created_at", &pending->created_at))
                return -1;
            return 0;
        case S_OP_USER_GET:
            return s_read_name (pending, map, "name", true);
        case S_OP_USER_LIST: {
            if (s_read_name (pending, map, "after", false))
                return -1;
            pending->limit = S_LIST_LIMIT_MAX;
            const msgpack_object *limit = s_field (map, "limit");
            if (limit) {
                if (limit->type != MSGPACK_OBJECT_POSITIVE_INTEGER
                ||  limit->via.u64 < 1 || limit->via.u64 > S_LIST_LIMIT_MAX) {
                    s_fail (pending, "bad_request",
                            "The field 'limit' must be an integer from 1 to %d.",
                            S_LIST_LIMIT_MAX);
                    return -1;
                }
                pending->limit = (uint32_t) limit->via.u64;
            }
            return 0;
        }
        case S_OP_USER_SEEN:
            return s_read_seen (pending, map);
        case S_OP_TOKEN_PUT:
            if (s_read_text (pending, map, "token_hash", S_HASH_MAX, true, &pending->hash)
            ||  s_read_name (pending, map, "user", true)
            ||  s_read_time (pending, map, "created_at", &pending->created_at)
            ||  s_read_time (pending, map, "expires_at", &pending->expires_at))
                return -1;
            return 0;
        case S_OP_TOKEN_GET:
        case S_OP_TOKEN_DELETE:
            return s_read_text (pending, map, "token_hash", S_HASH_MAX, true, &pending->hash);
        case S_OP_TOKEN_DELETE_USER:
            return s_read_name (pending, map, "user", true);
        case S_OP_TOKEN_PURGE:
            return s_read_time (pending, map, "before", &pending->before);
        case S_OP_TOKEN_TOUCH:
            if (s_read_text (pending, map, "token_hash", S_HASH_MAX, true, &pending->hash)
            ||  s_read_time (pending, map, "at", &pending->before))
                return -1;
            return 0;
        case S_OP_TOKEN_TRIM:
            if (s_read_name (pending, map, "user", true)
            ||  s_read_uint (pending, map, "keep", 1, S_KEEP_MAX, true, 0, &pending->keep))
                return -1;
            return 0;
        case S_OP_ROOM_CREATE: {
            uint64_t max_participants;
            if (s_read_room (pending, map, "name")
            ||  s_read_string (pending, map, "description", S_DESCRIPTION_MAX, false,
                               &pending->description)
            ||  s_read_uint (pending, map, "max_participants", 1, UINT32_MAX, true, 0,
                             &max_participants)
            ||  s_read_name (pending, map, "owner", true)
            ||  s_read_time (pending, map, "created_at", &pending->created_at)
            ||  s_read_quotas (pending, map, true))
                return -1;
            pending->max_participants = (uint32_t) max_participants;
            const msgpack_object *is_private = s_field (map, "private");
            if (is_private && is_private->type != MSGPACK_OBJECT_BOOLEAN) {
                s_fail (pending, "bad_request", "The field 'private' must be true or false.");
                return -1;
            }
            pending->is_private = is_private && is_private->via.boolean;
            return 0;
        }
        case S_OP_ROOM_GET:
        case S_OP_ROOM_DELETE:
            return s_read_room (pending, map, "name");
        case S_OP_ROOM_LIST:
            return s_read_name (pending, map, "user", true);
        case S_OP_ROOM_JOINED:
            return s_read_room_page (pending, map, S_LIST_LIMIT_MAX);
        case S_OP_ROOM_PUBLIC:
            return s_read_room_public (pending, map);
        case S_OP_ROOM_DIRECTORY:
            return s_read_room_directory (pending, map);
        case S_OP_MEMBER_ADD:
        case S_OP_MEMBER_REMOVE:
            return s_read_room (pending, map, "room")
                || s_read_name (pending, map, "user", true)
                || s_read_entry (pending, map, false)
                || (pending->op == S_OP_MEMBER_ADD && s_read_quotas (pending, map, false))
                   ? -1 : 0;
        case S_OP_MEMBER_LIST:
            return s_read_room (pending, map, "room");
        case S_OP_INVITE_ADD: {
            s_text_t from = { NULL, 0 };
            return s_read_room (pending, map, "room")
                || s_read_name (pending, map, "user", true)
                || s_read_text (pending, map, "from", S_NAME_MAX, true, &from) ? -1 : 0;
        }
        case S_OP_MSG_APPEND:
            return s_read_room (pending, map, "room") || s_read_run (pending, map) ? -1 : 0;
        case S_OP_MSG_HISTORY:
            return s_read_room (pending, map, "room") || s_read_page (pending, map) ? -1 : 0;
        case S_OP_PM_APPEND:
            if (s_read_pm_pair (pending, map, "from", "to"))
                return -1;
            if (strcmp (pending->key, pending->peer_key) == 0) {
                s_fail (pending, "bad_request",
                        "'from' and 'to' are the same user: a conversation needs two.");
                return -1;
            }
            return s_read_pm_run (pending, map);
        case S_OP_PM_LAST_SEQ:
            return s_read_pm_pair (pending, map, "user", "with");
        case S_OP_PM_HISTORY:
            return s_read_pm_pair (pending, map, "user", "with") || s_read_page (pending, map)
                   ? -1 : 0;
        case S_OP_PM_CONVERSATIONS: {
            uint64_t limit;
            if (s_read_name (pending, map, "user", true)
            ||  s_read_uint (pending, map, "limit", 1, S_LIST_LIMIT_MAX, false,
                             S_CONVERSATIONS_DEFAULT, &limit))
                return -1;
            pending->limit = (uint32_t) limit;
            return 0;
        }
        case S_OP_PM_READ:
            return s_read_pm_pair (pending, map, "user", "with")
                || s_read_uint (pending, map, "seq", 0, INT64_MAX, true, 0, &pending->seq)
                   ? -1 : 0;
    }
    s_fail (pending, "internal", "The store has no handler for this request.");
    return -1;
}


//  --------------------------------------------------------------------------
//  Talking to the server

//  Runs a find; calls each (arg, document) per document. Returns 0, or -1
//  with error set.
typedef void (s_each_fn) (void *arg, const bson_t *document);

static int
s_find (store_t *self, mongoc_collection_t *collection, const bson_t *filter,
        const bson_t *opts, s_each_fn *each, void *arg, bson_error_t *error)
{
    self->round_trips++;
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (collection, filter, opts, NULL);
    const bson_t *document;
    while (mongoc_cursor_next (cursor, &document))
        each (arg, document);
    bool failed = mongoc_cursor_error (cursor, error);
    mongoc_cursor_destroy (cursor);
    return failed ? -1 : 0;
}

//  Runs a find for at most one document, copied into found (initialized by
//  the caller). Returns 1 if found, 0 if not, -1 with error set.
static void
s_keep_first (void *arg, const bson_t *document)
{
    bson_t *found = (bson_t *) arg;
    if (bson_empty (found))
        bson_concat (found, document);
}

static int
s_find_one (store_t *self, mongoc_collection_t *collection, const bson_t *filter,
            const bson_t *projection, bson_t *found, bson_error_t *error)
{
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_INT64 (&opts, "limit", 1);
    BSON_APPEND_BOOL (&opts, "singleBatch", true);
    if (projection)
        BSON_APPEND_DOCUMENT (&opts, "projection", projection);
    int rc = s_find (self, collection, filter, &opts, s_keep_first, found, error);
    bson_destroy (&opts);
    if (rc)
        return -1;
    return bson_empty (found) ? 0 : 1;
}

//  The filter {field: {$in: [...]}}, started: append values to *array_p,
//  then call s_in_end
static void
s_in_begin (bson_t *filter, const char *field, bson_t *condition, bson_t *array)
{
    bson_init (filter);
    BSON_APPEND_DOCUMENT_BEGIN (filter, field, condition);
    BSON_APPEND_ARRAY_BEGIN (condition, "$in", array);
}

static void
s_in_end (bson_t *filter, bson_t *condition, bson_t *array)
{
    bson_append_array_end (condition, array);
    bson_append_document_end (filter, condition);
}

//  Appends the next value of an array being built
static void
s_array_append_text (bson_t *array, uint32_t *count, const char *data, uint32_t size)
{
    char index_key [16];
    const char *key;
    size_t key_size = bson_uint32_to_string (*count, &key, index_key, sizeof index_key);
    bson_append_utf8 (array, key, (int) key_size, data, (int) size);
    (*count)++;
}

//  Rooms stored before schema 4 have no active_at: they take the epoch, so
//  that they sort after every room active since (until their next message)
static int
s_prepare_active_at (store_t *self, bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("active_at", "{", "$exists", BCON_BOOL (false), "}");
    bson_t *update = BCON_NEW ("$set", "{", "active_at", BCON_DATE_TIME (0), "}");
    self->round_trips++;
    bool ok = mongoc_collection_update_many (self->rooms, filter, update, NULL, NULL, error);
    bson_destroy (update);
    bson_destroy (filter);
    return ok ? 0 : -1;
}

//  Pings the server and creates the indexes, once. Returns 0, or -1 with
//  error set.
static int
s_prepare (store_t *self, bson_error_t *error)
{
    if (self->prepared)
        return 0;
    bson_t *ping = BCON_NEW ("ping", BCON_INT32 (1));
    self->round_trips++;
    bool ok = mongoc_client_command_simple (self->client, "admin", ping, NULL, NULL, error);
    bson_destroy (ping);
    if (!ok)
        return -1;

    mongoc_database_t *database = mongoc_client_get_database (self->client, self->database);
    bson_t *users = BCON_NEW (
        "createIndexes", BCON_UTF8 ("users"),
        "indexes", "[",
            "{", "key", "{", "name_lower", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("name_lower_unique"), "unique", BCON_BOOL (true), "}",
        "]");
    bson_t *tokens = BCON_NEW (
        "createIndexes", BCON_UTF8 ("tokens"),
        "indexes", "[",
            "{", "key", "{", "token_hash", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("token_hash_unique"), "unique", BCON_BOOL (true), "}",
            "{", "key", "{", "user", BCON_INT32 (1), "}", "name", BCON_UTF8 ("user"), "}",
            "{", "key", "{", "expires_at", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("expires_at"), "}",
            "{", "key", "{", "user", BCON_INT32 (1), "last_used_at", BCON_INT32 (-1), "}",
                 "name", BCON_UTF8 ("user_last_used"), "}",
        "]");
    //  users: the rooms a user belongs to, by name, for room.list and the
    //  joined quota (multikey); owner: the owned quota; the public rooms
    //  by activity (room.list) and by name (room.directory)
    bson_t *rooms = BCON_NEW (
        "createIndexes", BCON_UTF8 ("rooms"),
        "indexes", "[",
            "{", "key", "{", "name_lower", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("name_lower_unique"), "unique", BCON_BOOL (true), "}",
            "{", "key", "{", "users", BCON_INT32 (1), "}", "name", BCON_UTF8 ("users"), "}",
            "{", "key", "{", "users", BCON_INT32 (1), "name_lower", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("users_name_lower"), "}",
            "{", "key", "{", "owner", BCON_INT32 (1), "}", "name", BCON_UTF8 ("owner"), "}",
            "{", "key", "{", "metadata.settings.is_private", BCON_INT32 (1),
                              "active_at", BCON_INT32 (-1), "name_lower", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("public_by_active"), "}",
            "{", "key", "{", "metadata.settings.is_private", BCON_INT32 (1),
                              "name_lower", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("public_by_name"), "}",
        "]");
    bson_t *messages = BCON_NEW (
        "createIndexes", BCON_UTF8 ("messages"),
        "indexes", "[",
            "{", "key", "{", "room", BCON_INT32 (1), "seq", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 (S_TIMELINE_INDEX), "unique", BCON_BOOL (true), "}",
        "]");
    bson_t *pm_messages = BCON_NEW (
        "createIndexes", BCON_UTF8 ("pm_messages"),
        "indexes", "[",
            "{", "key", "{", "conv", BCON_INT32 (1), "seq", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 (S_PM_INDEX), "unique", BCON_BOOL (true), "}",
        "]");
    //  users: a user's conversations, newest first (multikey)
    bson_t *conversations = BCON_NEW (
        "createIndexes", BCON_UTF8 ("conversations"),
        "indexes", "[",
            "{", "key", "{", "conv", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("conv_unique"), "unique", BCON_BOOL (true), "}",
            "{", "key", "{", "users", BCON_INT32 (1), "last_ts", BCON_INT32 (-1),
                              "_id", BCON_INT32 (-1), "}",
                 "name", BCON_UTF8 (S_CONVERSATIONS_INDEX), "}",
        "]");
    self->round_trips += 6;
    ok = mongoc_database_write_command_with_opts (database, users, NULL, NULL, error)
      && mongoc_database_write_command_with_opts (database, tokens, NULL, NULL, error)
      && mongoc_database_write_command_with_opts (database, rooms, NULL, NULL, error)
      && mongoc_database_write_command_with_opts (database, messages, NULL, NULL, error)
      && mongoc_database_write_command_with_opts (database, pm_messages, NULL, NULL, error)
      && mongoc_database_write_command_with_opts (database, conversations, NULL, NULL, error);
    bson_destroy (pm_messages);
    bson_destroy (conversations);
    bson_destroy (users);
    bson_destroy (tokens);
    bson_destroy (rooms);
    bson_destroy (messages);
    mongoc_database_destroy (database);
    if (!ok || s_prepare_active_at (self, error))
        return -1;
    self->prepared = true;
    self->host->log (self->ctx, PARLEY_LOG_INFO,
                     "MongoDB at %s: indexes on users, tokens, rooms, messages, pm_messages "
                     "and conversations are in place", self->where);
    return 0;
}


//  --------------------------------------------------------------------------
//  Runs of writes that go to the server together

//  A seq of pending's run is taken in its timeline (msg.append,
//  member.add/remove: the room's; pm.append: the conversation's): conflict,
//  or unavailable when a first part of the run was stored before the seq
//  was found taken (the outcome is unknown, as any lost answer's)
static void
s_fail_seq_taken (s_pending_t *pending, uint64_t seq, bool part_stored)
{
    bool pm = pending->op == S_OP_PM_APPEND;
    char timeline [2 * S_NAME_MAX + 32];
    if (pm)
        snprintf (timeline, sizeof timeline, "The conversation of '%s' and '%s'",
                  pending->from_name, pending->to_name);
    else
        snprintf (timeline, sizeof timeline, "The room '%.*s'", (int) pending->room.size,
                  pending->room.data);
    if (part_stored)
        s_fail (pending, "unavailable", "%s: seq %" PRIu64 " was taken meanwhile; the run's"
                " %s before it are appended, the rest not.", timeline, seq,
                pm ? "messages" : "entries");
    else
        s_fail (pending, "conflict", "%s has %s with seq %" PRIu64 " already.", timeline,
                pm ? "a message" : "an entry", seq);
}

//  A unique key of pending's is taken: says which
static void
s_fail_conflict (s_pending_t *pending)
{
    switch (pending->op) {
        case S_OP_USER_CREATE:
            s_fail (pending, "conflict", "The name '%.*s' is taken (names ignore case).",
                    (int) pending->name.size, pending->name.data);
            break;
        case S_OP_ROOM_CREATE:
            s_fail (pending, "conflict", "A room named '%.*s' exists (room names ignore case).",
                    (int) pending->room.size, pending->room.data);
            break;
        case S_OP_MSG_APPEND:
        case S_OP_MEMBER_ADD:
        case S_OP_MEMBER_REMOVE:
        case S_OP_PM_APPEND:
            s_fail_seq_taken (pending, s_first_seq (pending), false);
            break;
        default:
            s_fail (pending, "conflict", "This token hash is stored already.");
            break;
    }
}

//  Marks, among the live requests of [first, end), every one whose key
//  (from key_of) equals key as failed with code and message
typedef const char *(s_key_of_fn) (const s_pending_t *pending, uint32_t *size_p);

static const char *
s_name_key_of (const s_pending_t *pending, uint32_t *size_p)
{
    *size_p = (uint32_t) strlen (pending->key);
    return pending->key;
}

static const char *
s_hash_key_of (const s_pending_t *pending, uint32_t *size_p)
{
    *size_p = pending->hash.size;
    return pending->hash.data;
}

//  What a lookup by $in finds: the range of the run and how to fail a match
typedef struct {
    s_pending_t *first;             //  the run
    s_pending_t *end;
    s_key_of_fn *key_of;            //  the request's key
    const char *field;              //  the document's field that holds the key
    const char *code;               //  failure for a match, or NULL for token.put owners
} s_match_t;

static void
s_on_match (void *arg, const bson_t *document)
{
    s_match_t *match = (s_match_t *) arg;
    bson_iter_t iter;
    if (!bson_iter_init_find (&iter, document, match->field) || !BSON_ITER_HOLDS_UTF8 (&iter))
        return;
    uint32_t size;
    const char *value = bson_iter_utf8 (&iter, &size);
    for (s_pending_t *pending = match->first; pending < match->end; pending++) {
        if (!s_is_live (pending))
            continue;
        uint32_t key_size;
        const char *key = match->key_of (pending, &key_size);
        if (key_size != size || memcmp (key, value, size) != 0)
            continue;
        if (match->code && strcmp (match->code, "conflict") == 0)
            s_fail_conflict (pending);
        else
            //  token.put: the owner, as registered
            s_copy_bson_str (document, "name", pending->owner, sizeof pending->owner);
    }
}

//  Finds the documents of collection whose field equals the key of a live
//  request of the run, and applies match to each. Returns 0 or -1.
static int
s_match_run (store_t *self, mongoc_collection_t *collection, s_match_t *match,
             const char *projected, bson_error_t *error)
{
    bson_t filter, condition, array;
    s_in_begin (&filter, match->field, &condition, &array);
    uint32_t count = 0;
    for (s_pending_t *pending = match->first; pending < match->end; pending++)
        if (s_is_live (pending)) {
            uint32_t size;
            const char *key = match->key_of (pending, &size);
            s_array_append_text (&array, &count, key, size);
        }
    s_in_end (&filter, &condition, &array);
    int rc = 0;
    if (count > 0) {
        bson_t opts = BSON_INITIALIZER, projection;
        BSON_APPEND_DOCUMENT_BEGIN (&opts, "projection", &projection);
        BSON_APPEND_INT32 (&projection, match->field, 1);
        if (projected)
            BSON_APPEND_INT32 (&projection, projected, 1);
        bson_append_document_end (&opts, &projection);
        rc = s_find (self, collection, &filter, &opts, s_on_match, match, error);
        bson_destroy (&opts);
    }
    bson_destroy (&filter);
    return rc;
}

//  Two live requests of the run with one key: the later one conflicts, as
//  it would have had they come in separate batches
static void
s_settle_duplicates (s_pending_t *first, s_pending_t *end, s_key_of_fn *key_of)
{
    for (s_pending_t *pending = first + 1; pending < end; pending++) {
        if (!s_is_live (pending))
            continue;
        uint32_t size;
        const char *key = key_of (pending, &size);
        for (s_pending_t *earlier = first; earlier < pending; earlier++) {
            uint32_t earlier_size;
            const char *earlier_key = s_is_live (earlier) ? key_of (earlier, &earlier_size) : NULL;
            if (earlier_key && earlier_size == size && memcmp (earlier_key, key, size) == 0) {
                s_fail_conflict (pending);
                break;
            }
        }
    }
}

//  The writeErrors of an insert's reply, to step through with
//  bson_iter_next. False if it has none.
static bool
s_write_errors (const bson_t *reply, bson_iter_t *errors)
{
    bson_iter_t iter;
    return bson_iter_init_find (&iter, reply, "writeErrors")
        && BSON_ITER_HOLDS_ARRAY (&iter) && bson_iter_recurse (&iter, errors);
}

//  The write error at errors: the index of its document, below count, and
//  the server's error. False if it is not one we can read.
static bool
s_write_error (const bson_iter_t *errors, size_t count, size_t *index_p, bson_error_t *own)
{
    bson_t entry;
    uint32_t size;
    const uint8_t *data;
    if (!BSON_ITER_HOLDS_DOCUMENT (errors))
        return false;
    bson_iter_document (errors, &size, &data);
    if (!bson_init_static (&entry, data, size))
        return false;
    bson_iter_t field;
    int64_t index = -1, code = 0;
    if (bson_iter_init_find (&field, &entry, "index"))
        index = bson_iter_as_int64 (&field);
    if (bson_iter_init_find (&field, &entry, "code"))
        code = bson_iter_as_int64 (&field);
    if (index < 0 || (uint64_t) index >= count)
        return false;
    *index_p = (size_t) index;
    *own = (bson_error_t) { .domain = MONGOC_ERROR_SERVER, .code = (uint32_t) code };
    s_copy_bson_str (&entry, "errmsg", own->message, sizeof own->message);
    return true;
}

//  Inserts one document per live request of [first, end), built by
//  build (pending, document), unordered, and answers each from the server's
//  verdict on it. Returns 0, or -1 if the server could not be reached.
typedef void (s_build_fn) (const s_pending_t *pending, bson_t *document);

static int
s_insert_run (store_t *self, mongoc_collection_t *collection, s_pending_t *first,
              s_pending_t *end, s_build_fn *build, const char *what)
{
    size_t capacity = (size_t) (end - first);
    bson_t **documents = (bson_t **) calloc (capacity, sizeof (bson_t *));
    s_pending_t **owners = (s_pending_t **) calloc (capacity, sizeof (s_pending_t *));
    if (!documents || !owners) {
        free (documents);
        free (owners);
        for (s_pending_t *pending = first; pending < end; pending++)
            if (s_is_live (pending))
                s_fail (pending, "internal", "The store ran out of memory.");
        return 0;
    }
    size_t count = 0;
    for (s_pending_t *pending = first; pending < end; pending++)
        if (s_is_live (pending)) {
            documents [count] = bson_new ();
            build (pending, documents [count]);
            owners [count++] = pending;
        }
    int rc = 0;
    if (count > 0) {
        bson_t *opts = BCON_NEW ("ordered", BCON_BOOL (false));
        bson_t reply;
        bson_error_t error;
        self->round_trips++;
        bool ok = mongoc_collection_insert_many (collection, (const bson_t **) documents, count,
                                                 opts, &reply, &error);
        bson_destroy (opts);
        if (!ok && !s_is_unreachable (&error)) {
            //  Each failed document names its index; the others are in
            bson_iter_t errors;
            if (s_write_errors (&reply, &errors)) {
                while (bson_iter_next (&errors)) {
                    size_t index;
                    bson_error_t own;
                    if (!s_write_error (&errors, count, &index, &own))
                        continue;
                    s_pending_t *pending = owners [index];
                    if (s_is_duplicate_key (&own))
                        s_fail_conflict (pending);
                    else {
                        s_note_failure (self, what, &own);
                        s_fail_unavailable (self, pending, &own);
                    }
                }
                //  A write concern not met leaves the rest unacknowledged
                if (bson_has_field (&reply, "writeConcernErrors")) {
                    s_note_failure (self, what, &error);
                    for (size_t index = 0; index < count; index++)
                        if (s_is_live (owners [index]))
                            s_fail_unavailable (self, owners [index], &error);
                }
            }
            else {
                s_note_failure (self, what, &error);
                for (size_t index = 0; index < count; index++)
                    if (s_is_live (owners [index]))
                        s_fail_unavailable (self, owners [index], &error);
            }
        }
        else
        if (!ok) {
            s_note_failure (self, what, &error);
            for (size_t index = 0; index < count; index++)
                s_fail_unavailable (self, owners [index], &error);
            rc = -1;
        }
        else
            s_mark_reachable (self);
        bson_destroy (&reply);
    }
    for (size_t index = 0; index < count; index++)
        bson_destroy (documents [index]);
    free (documents);
    free (owners);
    return rc;
}

//  Fails every live request of the run as unavailable
static void
s_fail_run (store_t *self, s_pending_t *first, s_pending_t *end, const bson_error_t *error)
{
    for (s_pending_t *pending = first; pending < end; pending++)
        if (s_is_live (pending))
            s_fail_unavailable (self, pending, error);
}

static void
s_build_user (const s_pending_t *pending, bson_t *document)
{
    bson_oid_t oid;
    bson_oid_init (&oid, NULL);
    BSON_APPEND_OID (document, "_id", &oid);
    bson_append_utf8 (document, "name", 4, pending->name.data, (int) pending->name.size);
    BSON_APPEND_UTF8 (document, "name_lower", pending->key);
    bson_append_utf8 (document, "password_hash", 13, pending->hash.data, (int) pending->hash.size);
    BSON_APPEND_INT64 (document, "created_at", pending->created_at);
    BSON_APPEND_NULL (document, "last_seen");
}

static int
s_run_user_create (store_t *self, s_pending_t *first, s_pending_t *end)
{
    bson_error_t error;
    s_match_t match = { first, end, s_name_key_of, "name_lower", "conflict" };
    if (s_match_run (self, self->users, &match, NULL, &error)) {
        s_note_failure (self, "looking for taken names", &error);
        s_fail_run (self, first, end, &error);
        return s_is_unreachable (&error) ? -1 : 0;
    }
    s_settle_duplicates (first, end, s_name_key_of);
    int rc = s_insert_run (self, self->users, first, end, s_build_user, "inserting users");
    for (s_pending_t *pending = first; pending < end; pending++)
        if (s_is_live (pending)) {
            msgpack_packer packer;
            msgpack_packer_init (&packer, &pending->result, msgpack_sbuffer_write);
            msgpack_pack_map (&packer, 2);
            s_pack_str (&packer, "name");
            msgpack_pack_str_with_body (&packer, pending->name.data, pending->name.size);
            s_pack_str (&packer, "created_at");
            msgpack_pack_int64 (&packer, pending->created_at);
        }
    return rc;
}

static void
s_build_token (const s_pending_t *pending, bson_t *document)
{
    bson_oid_t oid;
    bson_oid_init (&oid, NULL);
    BSON_APPEND_OID (document, "_id", &oid);
    bson_append_utf8 (document, "token_hash", 10, pending->hash.data, (int) pending->hash.size);
    BSON_APPEND_UTF8 (document, "user", pending->owner);
    BSON_APPEND_INT64 (document, "created_at", pending->created_at);
    BSON_APPEND_INT64 (document, "expires_at", pending->expires_at);
    BSON_APPEND_INT64 (document, "last_used_at", pending->created_at);
}

static int
s_run_token_put (store_t *self, s_pending_t *first, s_pending_t *end)
{
    bson_error_t error;
    //  The owners first: not_found is the caller's to know, and the token
    //  is stored under the name as registered
    s_match_t owners = { first, end, s_name_key_of, "name_lower", NULL };
    if (s_match_run (self, self->users, &owners, "name", &error)) {
        s_note_failure (self, "looking up token owners", &error);
        s_fail_run (self, first, end, &error);
        return s_is_unreachable (&error) ? -1 : 0;
    }
    for (s_pending_t *pending = first; pending < end; pending++)
        if (s_is_live (pending) && pending->owner [0] == 0)
            s_fail (pending, "not_found", "No user is named '%.*s'.",
                    (int) pending->name.size, pending->name.data);

    s_match_t taken = { first, end, s_hash_key_of, "token_hash", "conflict" };
    if (s_match_run (self, self->tokens, &taken, NULL, &error)) {
        s_note_failure (self, "looking for stored token hashes", &error);
        s_fail_run (self, first, end, &error);
        return s_is_unreachable (&error) ? -1 : 0;
    }
    s_settle_duplicates (first, end, s_hash_key_of);
    int rc = s_insert_run (self, self->tokens, first, end, s_build_token, "inserting tokens");
    for (s_pending_t *pending = first; pending < end; pending++)
        if (s_is_live (pending)) {
            msgpack_packer packer;
            msgpack_packer_init (&packer, &pending->result, msgpack_sbuffer_write);
            msgpack_pack_map (&packer, 1);
            s_pack_str (&packer, "user");
            s_pack_str (&packer, pending->owner);
        }
    return rc;
}

//  user.seen: the names of a run that exist, sorted for bsearch
typedef struct {
    char **keys;                    //  owned strings
    size_t count;
    size_t capacity;
} s_keys_t;

static int
s_compare_keys (const void *left, const void *right)
{
    return strcmp (*(char *const *) left, *(char *const *) right);
}

static void
s_on_known_user (void *arg, const bson_t *document)
{
    s_keys_t *known = (s_keys_t *) arg;
    char key [S_NAME_MAX + 1];
    s_copy_bson_str (document, "name_lower", key, sizeof key);
    if (known->count == known->capacity) {
        size_t capacity = known->capacity ? known->capacity * 2 : 64;
        char **keys = (char **) realloc (known->keys, capacity * sizeof (char *));
        if (!keys)
            return;         //  the user counts as unknown: skipped, never a crash
        known->keys = keys;
        known->capacity = capacity;
    }
    char *copy = strdup (key);
    if (copy)
        known->keys [known->count++] = copy;
}

static bool
s_is_known (const s_keys_t *known, const char *key)
{
    return known->count > 0
        && bsearch (&key, known->keys, known->count, sizeof (char *), s_compare_keys) != NULL;
}

static int
s_run_user_seen (store_t *self, s_pending_t *first, s_pending_t *end)
{
    bson_t filter, condition, array;
    s_in_begin (&filter, "name_lower", &condition, &array);
    uint32_t count = 0;
    char key [S_NAME_MAX + 1];
    for (s_pending_t *pending = first; pending < end; pending++) {
        if (!s_is_live (pending))
            continue;
        for (uint32_t index = 0; index < pending->users->via.array.size; index++) {
            const msgpack_object *name = s_field (&pending->users->via.array.ptr [index], "name");
            s_lower (name->via.str.ptr, name->via.str.size, key);
            s_array_append_text (&array, &count, key, name->via.str.size);
        }
    }
    s_in_end (&filter, &condition, &array);

    s_keys_t known = { NULL, 0, 0 };
    bson_t *opts = BCON_NEW ("projection", "{", "name_lower", BCON_INT32 (1), "}");
    bson_error_t error;
    int rc = s_find (self, self->users, &filter, opts, s_on_known_user, &known, &error);
    bson_destroy (opts);
    bson_destroy (&filter);
    if (rc) {
        s_note_failure (self, "looking up users seen", &error);
        s_fail_run (self, first, end, &error);
        rc = s_is_unreachable (&error) ? -1 : 0;
    }
    else {
        qsort (known.keys, known.count, sizeof (char *), s_compare_keys);
        //  Ordered: a name listed twice takes the later entry
        bson_t *bulk_opts = BCON_NEW ("ordered", BCON_BOOL (true));
        mongoc_bulk_operation_t *bulk
            = mongoc_collection_create_bulk_operation_with_opts (self->users, bulk_opts);
        bson_destroy (bulk_opts);
        size_t updates = 0;
        for (s_pending_t *pending = first; pending < end; pending++) {
            if (!s_is_live (pending))
                continue;
            for (uint32_t index = 0; index < pending->users->via.array.size; index++) {
                const msgpack_object *entry = &pending->users->via.array.ptr [index];
                const msgpack_object *name = s_field (entry, "name");
                const msgpack_object *last_seen = s_field (entry, "last_seen");
                s_lower (name->via.str.ptr, name->via.str.size, key);
                if (!s_is_known (&known, key))
                    continue;       //  no such user: skipped, not an error
                pending->updated++;
                bson_t *selector = BCON_NEW ("name_lower", BCON_UTF8 (key));
                bson_t *update = BCON_NEW ("$set", "{",
                                           "last_seen", BCON_INT64 ((int64_t) last_seen->via.u64),
                                           "}");
                mongoc_bulk_operation_update_one_with_opts (bulk, selector, update, NULL, NULL);
                bson_destroy (selector);
                bson_destroy (update);
                updates++;
            }
        }
        if (updates > 0) {
            bson_t reply;
            self->round_trips++;
            bool ok = mongoc_bulk_operation_execute (bulk, &reply, &error) != 0;
            bson_destroy (&reply);
            if (!ok) {
                //  Setting last_seen again is harmless: the caller's retry
                //  converges on the values it asked for
                s_note_failure (self, "setting last_seen", &error);
                s_fail_run (self, first, end, &error);
                rc = s_is_unreachable (&error) ? -1 : 0;
            }
            else
                s_mark_reachable (self);
        }
        mongoc_bulk_operation_destroy (bulk);
    }
    for (size_t index = 0; index < known.count; index++)
        free (known.keys [index]);
    free (known.keys);

    for (s_pending_t *pending = first; pending < end; pending++)
        if (s_is_live (pending)) {
            msgpack_packer packer;
            msgpack_packer_init (&packer, &pending->result, msgpack_sbuffer_write);
            msgpack_pack_map (&packer, 1);
            s_pack_str (&packer, "updated");
            msgpack_pack_uint32 (&packer, pending->updated);
        }
    return rc;
}


//  --------------------------------------------------------------------------
//  Requests that are one round trip each. Each returns 0, or -1 with error
//  set when the server failed (pending is then failed by the caller).

static int
s_run_info (store_t *self, s_pending_t *pending, msgpack_packer *packer, bson_error_t *error)
{
    //  Asks the server, so that info says whether the store can serve
    bson_t *ping = BCON_NEW ("ping", BCON_INT32 (1));
    self->round_trips++;
    bool ok = mongoc_client_command_simple (self->client, "admin", ping, NULL, NULL, error);
    bson_destroy (ping);
    if (!ok)
        return -1;
    msgpack_pack_map (packer, 2);
    s_pack_str (packer, "backend");
    s_pack_str (packer, "mongo");
    s_pack_str (packer, "schema_version");
    msgpack_pack_uint32 (packer, S_SCHEMA_VERSION);
    return 0;
}

static int
s_run_user_get (store_t *self, s_pending_t *pending, msgpack_packer *packer, bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("name_lower", BCON_UTF8 (pending->key));
    bson_t found = BSON_INITIALIZER;
    int rc = s_find_one (self, self->users, filter, NULL, &found, error);
    if (rc == 1) {
        msgpack_pack_map (packer, 4);
        s_pack_str (packer, "name");
        s_pack_bson_str (packer, &found, "name");
        s_pack_str (packer, "password_hash");
        s_pack_bson_str (packer, &found, "password_hash");
        s_pack_str (packer, "created_at");
        s_pack_bson_time (packer, &found, "created_at");
        s_pack_str (packer, "last_seen");
        s_pack_bson_time (packer, &found, "last_seen");
    }
    else
    if (rc == 0)
        s_fail (pending, "not_found", "No user is named '%.*s'.",
                (int) pending->name.size, pending->name.data);
    bson_destroy (&found);
    bson_destroy (filter);
    return rc < 0 ? -1 : 0;
}

//  Packs the users of a list into a buffer of their own: the count comes first
typedef struct {
    msgpack_packer packer;          //  writing into rows
    msgpack_sbuffer rows;           //  the packed users
    uint32_t count;                 //  users packed
    uint32_t limit;                 //  most to pack
    bool more;                      //  one more was found
} s_list_t;

static void
s_on_listed_user (void *arg, const bson_t *document)
{
    s_list_t *list = (s_list_t *) arg;
    if (list->count == list->limit) {
        list->more = true;
        return;
    }
    msgpack_pack_map (&list->packer, 3);
    s_pack_str (&list->packer, "name");
    s_pack_bson_str (&list->packer, document, "name");
    s_pack_str (&list->packer, "created_at");
    s_pack_bson_time (&list->packer, document, "created_at");
    s_pack_str (&list->packer, "last_seen");
    s_pack_bson_time (&list->packer, document, "last_seen");
    list->count++;
}

static int
s_run_user_list (store_t *self, s_pending_t *pending, msgpack_packer *packer, bson_error_t *error)
{
    //  No 'after': every name sorts after "", as names are not empty. A
    //  string comparison without collation is the byte order STORE.md asks.
    bson_t *filter = BCON_NEW ("name_lower", "{", "$gt", BCON_UTF8 (pending->key), "}");
    //  One more than asked, to know whether more remain
    bson_t *opts = BCON_NEW ("sort", "{", "name_lower", BCON_INT32 (1), "}",
                             "limit", BCON_INT64 ((int64_t) pending->limit + 1),
                             "projection", "{", "name", BCON_INT32 (1),
                                                "created_at", BCON_INT32 (1),
                                                "last_seen", BCON_INT32 (1), "}");
    s_list_t list = { .limit = pending->limit };
    msgpack_sbuffer_init (&list.rows);
    msgpack_packer_init (&list.packer, &list.rows, msgpack_sbuffer_write);
    int rc = s_find (self, self->users, filter, opts, s_on_listed_user, &list, error);
    if (rc == 0) {
        msgpack_pack_map (packer, 2);
        s_pack_str (packer, "users");
        msgpack_pack_array (packer, list.count);
        msgpack_sbuffer_write (&pending->result, list.rows.data, list.rows.size);
        s_pack_str (packer, "more");
        if (list.more)
            msgpack_pack_true (packer);
        else
            msgpack_pack_false (packer);
    }
    msgpack_sbuffer_destroy (&list.rows);
    bson_destroy (opts);
    bson_destroy (filter);
    return rc;
}

static int
s_run_token_get (store_t *self, s_pending_t *pending, msgpack_packer *packer, bson_error_t *error)
{
    bson_t filter = BSON_INITIALIZER;
    bson_append_utf8 (&filter, "token_hash", 10, pending->hash.data, (int) pending->hash.size);
    bson_t found = BSON_INITIALIZER;
    int rc = s_find_one (self, self->tokens, &filter, NULL, &found, error);
    if (rc == 1) {
        msgpack_pack_map (packer, 4);
        s_pack_str (packer, "token_hash");
        msgpack_pack_str_with_body (packer, pending->hash.data, pending->hash.size);
        s_pack_str (packer, "user");
        s_pack_bson_str (packer, &found, "user");
        s_pack_str (packer, "created_at");
        s_pack_bson_time (packer, &found, "created_at");
        s_pack_str (packer, "expires_at");
        s_pack_bson_time (packer, &found, "expires_at");
    }
    else
    if (rc == 0)
        s_fail (pending, "not_found", "No such token.");
    bson_destroy (&found);
    bson_destroy (&filter);
    return rc < 0 ? -1 : 0;
}

static int
s_run_token_delete (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                    bson_error_t *error)
{
    //  One findAndModify removes the token and tells us its owner, whom
    //  the caller needs to unbind the sessions
    bson_t filter = BSON_INITIALIZER;
    bson_append_utf8 (&filter, "token_hash", 10, pending->hash.data, (int) pending->hash.size);
    mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new ();
    mongoc_find_and_modify_opts_set_flags (opts, MONGOC_FIND_AND_MODIFY_REMOVE);
    bson_t reply;
    self->round_trips++;
    bool ok = mongoc_collection_find_and_modify_with_opts (self->tokens, &filter, opts,
                                                           &reply, error);
    int rc = ok ? 0 : -1;
    if (ok) {
        bson_iter_t iter;
        bson_t removed;
        uint32_t size;
        const uint8_t *data;
        if (bson_iter_init_find (&iter, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT (&iter)) {
            bson_iter_document (&iter, &size, &data);
            bson_init_static (&removed, data, size);
            msgpack_pack_map (packer, 1);
            s_pack_str (packer, "user");
            s_pack_bson_str (packer, &removed, "user");
        }
        else
            s_fail (pending, "not_found", "No such token.");
    }
    bson_destroy (&reply);
    mongoc_find_and_modify_opts_destroy (opts);
    bson_destroy (&filter);
    return rc;
}

//  Deletes what filter selects and answers {deleted}
static int
s_delete_counted (store_t *self, const bson_t *filter, msgpack_packer *packer,
                  bson_error_t *error)
{
    bson_t reply;
    self->round_trips++;
    bool ok = mongoc_collection_delete_many (self->tokens, filter, NULL, &reply, error);
    if (ok) {
        bson_iter_t iter;
        int64_t deleted = 0;
        if (bson_iter_init_find (&iter, &reply, "deletedCount"))
            deleted = bson_iter_as_int64 (&iter);
        msgpack_pack_map (packer, 1);
        s_pack_str (packer, "deleted");
        msgpack_pack_uint64 (packer, deleted > 0 ? (uint64_t) deleted : 0);
    }
    bson_destroy (&reply);
    return ok ? 0 : -1;
}

//  The user's name as registered, into name (S_NAME_MAX + 1 bytes)
static int
s_find_user_name (store_t *self, const char *key, char *name, bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("name_lower", BCON_UTF8 (key));
    bson_t *projection = BCON_NEW ("name", BCON_INT32 (1));
    bson_t found = BSON_INITIALIZER;
    int rc = s_find_one (self, self->users, filter, projection, &found, error);
    if (rc == 1)
        s_copy_bson_str (&found, "name", name, S_NAME_MAX + 1);
    bson_destroy (&found);
    bson_destroy (projection);
    bson_destroy (filter);
    return rc;
}

static int
s_run_token_delete_user (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                         bson_error_t *error)
{
    //  Tokens hold the name as registered: find it first
    char owner [S_NAME_MAX + 1];
    int rc = s_find_user_name (self, pending->key, owner, error);
    if (rc == 0) {
        msgpack_pack_map (packer, 1);
        s_pack_str (packer, "deleted");
        msgpack_pack_uint32 (packer, 0);
    }
    else
    if (rc == 1) {
        bson_t *selector = BCON_NEW ("user", BCON_UTF8 (owner));
        rc = s_delete_counted (self, selector, packer, error);
        bson_destroy (selector);
    }
    return rc < 0 ? -1 : 0;
}

static int
s_run_token_purge (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                   bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("expires_at", "{", "$lte", BCON_INT64 (pending->before), "}");
    int rc = s_delete_counted (self, filter, packer, error);
    bson_destroy (filter);
    return rc;
}


//  store.token.touch {token_hash, at}: the token's last use is at least at
static int
s_run_token_touch (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                   bson_error_t *error)
{
    bson_t filter = BSON_INITIALIZER;
    bson_append_utf8 (&filter, "token_hash", 10, pending->hash.data, (int) pending->hash.size);
    bson_t *update = BCON_NEW ("$max", "{", "last_used_at", BCON_INT64 (pending->before), "}");
    bson_t reply;
    self->round_trips++;
    bool ok = mongoc_collection_update_one (self->tokens, &filter, update, NULL, &reply, error);
    if (ok) {
        bson_iter_t iter;
        int64_t matched = 0;
        if (bson_iter_init_find (&iter, &reply, "matchedCount"))
            matched = bson_iter_as_int64 (&iter);
        if (matched == 0)
            s_fail (pending, "not_found", "No such token.");
        else
            msgpack_pack_map (packer, 0);
    }
    bson_destroy (&reply);
    bson_destroy (update);
    bson_destroy (&filter);
    return ok ? 0 : -1;
}

//  The hashes of the tokens found by store.token.trim, packed as found
typedef struct {
    msgpack_packer packer;          //  into hashes
    msgpack_sbuffer hashes;         //  msgpack strings, one per token
    bson_t in;                      //  the array of the same hashes, for $in
    uint32_t count;
} s_trim_t;

static void
s_on_trimmed (void *arg, const bson_t *document)
{
    s_trim_t *trim = (s_trim_t *) arg;
    bson_iter_t iter;
    if (!bson_iter_init_find (&iter, document, "token_hash") || !BSON_ITER_HOLDS_UTF8 (&iter))
        return;
    uint32_t size;
    const char *hash = bson_iter_utf8 (&iter, &size);
    msgpack_pack_str_with_body (&trim->packer, hash, size);
    char index_key [16];
    const char *key;
    size_t key_size = bson_uint32_to_string (trim->count++, &key, index_key, sizeof index_key);
    bson_append_utf8 (&trim->in, key, (int) key_size, hash, (int) size);
}

//  Deletes the tokens of trim (each of them $in one delete_many)
static int
s_trim_delete (store_t *self, s_trim_t *trim, bson_error_t *error)
{
    if (trim->count == 0)
        return 0;
    bson_t filter = BSON_INITIALIZER, hash;
    BSON_APPEND_DOCUMENT_BEGIN (&filter, "token_hash", &hash);
    BSON_APPEND_ARRAY (&hash, "$in", &trim->in);
    bson_append_document_end (&filter, &hash);
    self->round_trips++;
    bool ok = mongoc_collection_delete_many (self->tokens, &filter, NULL, NULL, error);
    bson_destroy (&filter);
    return ok ? 0 : -1;
}

//  store.token.trim {user, keep}: deletes the user's tokens past the keep
//  most recently used (at most S_TRIM_MAX) and answers their hashes. One
//  range of the (user, last_used_at) index.
static int
s_run_token_trim (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                  bson_error_t *error)
{
    //  Tokens hold the name as registered: find it first
    char owner [S_NAME_MAX + 1];
    int rc = s_find_user_name (self, pending->key, owner, error);
    s_trim_t trim = { .count = 0 };
    msgpack_sbuffer_init (&trim.hashes);
    msgpack_packer_init (&trim.packer, &trim.hashes, msgpack_sbuffer_write);
    bson_init (&trim.in);
    if (rc == 1) {
        bson_t *filter = BCON_NEW ("user", BCON_UTF8 (owner));
        bson_t *opts = BCON_NEW ("sort", "{", "last_used_at", BCON_INT32 (-1),
                                 "created_at", BCON_INT32 (-1), "token_hash", BCON_INT32 (-1), "}",
                                 "skip", BCON_INT64 ((int64_t) pending->keep),
                                 "limit", BCON_INT64 (S_TRIM_MAX),
                                 "projection", "{", "token_hash", BCON_INT32 (1), "}");
        rc = s_find (self, self->tokens, filter, opts, s_on_trimmed, &trim, error);
        if (rc == 0)
            rc = s_trim_delete (self, &trim, error);
        bson_destroy (opts);
        bson_destroy (filter);
    }
    if (rc >= 0) {
        msgpack_pack_map (packer, 1);
        s_pack_str (packer, "revoked");
        msgpack_pack_array (packer, trim.count);
        packer->callback (packer->data, trim.hashes.data, trim.hashes.size);
    }
    bson_destroy (&trim.in);
    msgpack_sbuffer_destroy (&trim.hashes);
    return rc < 0 ? -1 : 0;
}

//  --------------------------------------------------------------------------
//  Rooms, members, invitations and timelines
//
//  rooms     {_id: ObjectId, name, name_lower, created_at (BSON date),
//             users: [member names as registered], owner,
//             metadata: {description, settings: {is_private, max_participants}},
//             invited: [names as registered], last_seq}
//                                  unique index on name_lower; index on users
//  messages  {_id: ObjectId, room (name_lower), seq, kind, user,
//             ts (BSON date), text | event}
//                                  unique index on (room, seq)
//
//  A membership change is one conditional update of the room's document,
//  atomic on any server: the filter carries the checks (not a member yet,
//  fewer than max_participants members, still invited), so concurrent
//  joins can never exceed the limit. Its timeline entry is a second
//  document: see README.md for what that means without transactions.

//  Two names equal without regard to ASCII case
static bool
s_same_name (const char *left, uint32_t left_size, const char *right, uint32_t right_size)
{
    if (left_size != right_size)
        return false;
    for (uint32_t index = 0; index < left_size; index++) {
        char a = left [index], b = right [index];
        if (a >= 'A' && a <= 'Z')
            a = (char) (a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (char) (b - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

//  The field at a dotted path of a document
static bool
s_bson_at (const bson_t *document, const char *path, bson_iter_t *found)
{
    bson_iter_t iter;
    return bson_iter_init (&iter, document) && bson_iter_find_descendant (&iter, path, found);
}

//  An integer or date at path, or fallback
static int64_t
s_bson_int (const bson_t *document, const char *path, int64_t fallback)
{
    bson_iter_t iter;
    if (!s_bson_at (document, path, &iter))
        return fallback;
    if (BSON_ITER_HOLDS_DATE_TIME (&iter))
        return bson_iter_date_time (&iter);
    if (BSON_ITER_HOLDS_INT64 (&iter) || BSON_ITER_HOLDS_INT32 (&iter)
    ||  BSON_ITER_HOLDS_DOUBLE (&iter))
        return bson_iter_as_int64 (&iter);
    return fallback;
}

static bool
s_bson_bool (const bson_t *document, const char *path)
{
    bson_iter_t iter;
    return s_bson_at (document, path, &iter) && BSON_ITER_HOLDS_BOOL (&iter)
        && bson_iter_bool (&iter);
}

//  The string at path, "" if absent; size into *size_p
static const char *
s_bson_text (const bson_t *document, const char *path, uint32_t *size_p)
{
    bson_iter_t iter;
    if (s_bson_at (document, path, &iter) && BSON_ITER_HOLDS_UTF8 (&iter))
        return bson_iter_utf8 (&iter, size_p);
    *size_p = 0;
    return "";
}

static void
s_pack_bson_text (msgpack_packer *packer, const bson_t *document, const char *path)
{
    uint32_t size;
    const char *text = s_bson_text (document, path, &size);
    msgpack_pack_str_with_body (packer, text, size);
}

//  The elements of an array field that are strings, counted
static uint32_t
s_bson_array_count (const bson_t *document, const char *key)
{
    bson_iter_t iter, element;
    uint32_t count = 0;
    if (bson_iter_init_find (&iter, document, key) && BSON_ITER_HOLDS_ARRAY (&iter)
    &&  bson_iter_recurse (&iter, &element))
        while (bson_iter_next (&element))
            if (BSON_ITER_HOLDS_UTF8 (&element))
                count++;
    return count;
}

//  Whether the array field holds name without regard to case; the element
//  as stored goes into found (S_NAME_MAX + 1 bytes) if given
static bool
s_bson_array_has (const bson_t *document, const char *key, const char *name, uint32_t size,
                  char *found)
{
    bson_iter_t iter, element;
    if (!bson_iter_init_find (&iter, document, key) || !BSON_ITER_HOLDS_ARRAY (&iter)
    ||  !bson_iter_recurse (&iter, &element))
        return false;
    while (bson_iter_next (&element)) {
        if (!BSON_ITER_HOLDS_UTF8 (&element))
            continue;
        uint32_t length;
        const char *value = bson_iter_utf8 (&element, &length);
        if (s_same_name (value, length, name, size)) {
            if (found)
                snprintf (found, S_NAME_MAX + 1, "%.*s", (int) length, value);
            return true;
        }
    }
    return false;
}

static int
s_compare_lower (const void *left, const void *right)
{
    const char *a = *(char *const *) left, *b = *(char *const *) right;
    for (;; a++, b++) {
        unsigned char x = (unsigned char) *a, y = (unsigned char) *b;
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char) (x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char) (y - 'A' + 'a');
        if (x != y || x == 0)
            return (int) x - (int) y;
    }
}

//  Packs the strings of an array field, sorted by lower-cased name
static void
s_pack_sorted_names (msgpack_packer *packer, const bson_t *document, const char *key)
{
    uint32_t count = s_bson_array_count (document, key);
    const char **names = count ? (const char **) calloc (count, sizeof (char *)) : NULL;
    uint32_t used = 0;
    bson_iter_t iter, element;
    if (names && bson_iter_init_find (&iter, document, key) && BSON_ITER_HOLDS_ARRAY (&iter)
    &&  bson_iter_recurse (&iter, &element))
        while (bson_iter_next (&element) && used < count)
            if (BSON_ITER_HOLDS_UTF8 (&element))
                names [used++] = bson_iter_utf8 (&element, NULL);
    //  Names hold no NUL (validated), so the BSON strings end where they should
    qsort (names, used, sizeof (char *), s_compare_lower);
    msgpack_pack_array (packer, used);
    for (uint32_t index = 0; index < used; index++)
        s_pack_str (packer, names [index]);
    free (names);
}

//  Packs the room map of proto/STORE.md from a room's document; joined is
//  added when given; last_seq < 0 takes the document's
static void
s_pack_room (msgpack_packer *packer, const bson_t *room, const bool *joined, int64_t last_seq)
{
    if (last_seq < 0)
        last_seq = s_bson_int (room, "last_seq", 0);
    int64_t max_participants = s_bson_int (room, "metadata.settings.max_participants", 0);
    msgpack_pack_map (packer, joined ? 10 : 9);
    s_pack_str (packer, "name");
    s_pack_bson_text (packer, room, "name");
    s_pack_str (packer, "description");
    s_pack_bson_text (packer, room, "metadata.description");
    s_pack_str (packer, "private");
    if (s_bson_bool (room, "metadata.settings.is_private"))
        msgpack_pack_true (packer);
    else
        msgpack_pack_false (packer);
    s_pack_str (packer, "max_participants");
    msgpack_pack_uint64 (packer, max_participants > 0 ? (uint64_t) max_participants : 0);
    s_pack_str (packer, "owner");
    s_pack_bson_text (packer, room, "owner");
    s_pack_str (packer, "created_at");
    msgpack_pack_int64 (packer, s_bson_int (room, "created_at", 0));
    s_pack_str (packer, "members");
    msgpack_pack_uint32 (packer, s_bson_array_count (room, "users"));
    s_pack_str (packer, "last_seq");
    msgpack_pack_uint64 (packer, last_seq > 0 ? (uint64_t) last_seq : 0);
    s_pack_str (packer, "active_at");
    msgpack_pack_int64 (packer, s_bson_int (room, "active_at", 0));
    if (joined) {
        s_pack_str (packer, "joined");
        if (*joined)
            msgpack_pack_true (packer);
        else
            msgpack_pack_false (packer);
    }
}

//  Packs a timeline entry from its document
static void
s_pack_entry (msgpack_packer *packer, const bson_t *document)
{
    uint32_t kind_size;
    const char *kind = s_bson_text (document, "kind", &kind_size);
    bool system = kind_size == 6 && memcmp (kind, "system", 6) == 0;
    msgpack_pack_map (packer, 5);
    s_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, (uint64_t) s_bson_int (document, "seq", 0));
    s_pack_str (packer, "kind");
    msgpack_pack_str_with_body (packer, kind, kind_size);
    s_pack_str (packer, "user");
    s_pack_bson_text (packer, document, "user");
    s_pack_str (packer, "ts");
    msgpack_pack_int64 (packer, s_bson_int (document, "ts", 0));
    s_pack_str (packer, system ? "event" : "text");
    s_pack_bson_text (packer, document, system ? "event" : "text");
}

//  The document of a timeline entry of the room whose lower-cased name is
//  room_key
static void
s_build_entry (const char *room_key, const s_entry_t *entry, bson_t *document)
{
    bson_oid_t oid;
    bson_oid_init (&oid, NULL);
    BSON_APPEND_OID (document, "_id", &oid);
    BSON_APPEND_UTF8 (document, "room", room_key);
    BSON_APPEND_INT64 (document, "seq", (int64_t) entry->seq);
    BSON_APPEND_UTF8 (document, "kind", entry->system ? "system" : "message");
    bson_append_utf8 (document, "user", 4, entry->user.data, (int) entry->user.size);
    BSON_APPEND_DATE_TIME (document, "ts", entry->ts);
    if (entry->system)
        bson_append_utf8 (document, "event", 5, entry->event.data, (int) entry->event.size);
    else
        bson_append_utf8 (document, "text", 4, entry->text.data, (int) entry->text.size);
}

//  The room's document, the seed's shape
static void
s_build_room (const s_pending_t *pending, const char *owner, bson_t *room)
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
s_find_room (store_t *self, const char *key, bson_t *room, bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("name_lower", BCON_UTF8 (key));
    int rc = s_find_one (self, self->rooms, filter, NULL, room, error);
    bson_destroy (filter);
    return rc;
}

//  Whether the room's timeline holds the entry's seq: 1, 0, or -1
static int
s_seq_taken (store_t *self, const s_pending_t *pending, bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("room", BCON_UTF8 (pending->room_key),
                               "seq", BCON_INT64 ((int64_t) pending->entry.seq));
    bson_t *projection = BCON_NEW ("seq", BCON_INT32 (1));
    bson_t found = BSON_INITIALIZER;
    int rc = s_find_one (self, self->messages, filter, projection, &found, error);
    bson_destroy (&found);
    bson_destroy (projection);
    bson_destroy (filter);
    return rc;
}

//  The seq of the room's newest entry, 0 for none, from the timeline's
//  index (one key read). Returns 0, or -1 with error set.
static int
s_newest_seq (store_t *self, const char *key, int64_t *seq_p, bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("room", BCON_UTF8 (key));
    bson_t *opts = BCON_NEW ("sort", "{", "seq", BCON_INT32 (-1), "}",
                             "limit", BCON_INT64 (1), "singleBatch", BCON_BOOL (true),
                             "hint", BCON_UTF8 (S_TIMELINE_INDEX),
                             "projection", "{", "seq", BCON_INT32 (1), "}");
    bson_t found = BSON_INITIALIZER;
    int rc = s_find (self, self->messages, filter, opts, s_keep_first, &found, error);
    *seq_p = s_bson_int (&found, "seq", 0);
    bson_destroy (&found);
    bson_destroy (opts);
    bson_destroy (filter);
    return rc;
}

//  Inserts the entry of pending. Returns 0, 1 if its seq is taken, -1 with
//  error set.
static int
s_insert_entry (store_t *self, const s_pending_t *pending, bson_error_t *error)
{
    bson_t document = BSON_INITIALIZER;
    s_build_entry (pending->room_key, &pending->entry, &document);
    self->round_trips++;
    bool ok = mongoc_collection_insert_one (self->messages, &document, NULL, NULL, error);
    bson_destroy (&document);
    if (ok)
        return 0;
    return s_is_duplicate_key (error) ? 1 : -1;
}

//  Runs findAndModify on the rooms; the document after the update, if one
//  matched, goes into room (emptied first). Returns 1 if one matched, 0 if
//  none, -1 with error set.
static int
s_modify_room (store_t *self, const bson_t *query, const bson_t *update, bson_t *room,
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
s_fail_no_room (s_pending_t *pending)
{
    s_fail (pending, "not_found", "No room is named '%.*s'.",
            (int) pending->room.size, pending->room.data);
}

static void
s_fail_no_user (s_pending_t *pending)
{
    s_fail (pending, "not_found", "No user is named '%.*s'.",
            (int) pending->name.size, pending->name.data);
}

//  Counts the rooms whose field holds name (as registered): the owner or
//  users index. Returns the count, or -1 with error set.
static int64_t
s_count_rooms (store_t *self, const char *field, const char *name, bson_error_t *error)
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
s_check_quotas (store_t *self, s_pending_t *pending, const char *user, bson_error_t *error)
{
    if (pending->max_owned) {
        int64_t count = s_count_rooms (self, "owner", user, error);
        if (count < 0)
            return -1;
        if (count >= (int64_t) pending->max_owned) {
            s_fail (pending, "quota_owned", "'%s' owns %" PRId64 " rooms, the most allowed.",
                    user, count);
            return 0;
        }
    }
    if (pending->max_joined) {
        int64_t count = s_count_rooms (self, "users", user, error);
        if (count < 0)
            return -1;
        if (count >= (int64_t) pending->max_joined)
            s_fail (pending, "quota_joined", "'%s' belongs to %" PRId64 " rooms, the most"
                    " allowed.", user, count);
    }
    return 0;
}

static int
s_run_room_create (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                   bson_error_t *error)
{
    char owner [S_NAME_MAX + 1];
    int rc = s_find_user_name (self, pending->key, owner, error);
    if (rc <= 0) {
        if (rc == 0)
            s_fail (pending, "not_found", "No user is named '%.*s' (the owner).",
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
            s_fail_conflict (pending);
        return rc < 0 ? -1 : 0;
    }
    //  The quotas after the name: a repeated create answers conflict
    if (s_check_quotas (self, pending, owner, error))
        return -1;
    if (pending->code)
        return 0;
    //  A timeline that a delete interrupted midway left behind is not this
    //  room's: cleared first (one index range, usually empty)
    bson_t *stale = BCON_NEW ("room", BCON_UTF8 (pending->room_key));
    self->round_trips++;
    bool ok = mongoc_collection_delete_many (self->messages, stale, NULL, NULL, error);
    bson_destroy (stale);
    if (!ok)
        return -1;
    bson_t room = BSON_INITIALIZER;
    s_build_room (pending, owner, &room);
    self->round_trips++;
    ok = mongoc_collection_insert_one (self->rooms, &room, NULL, NULL, error);
    if (ok) {
        msgpack_pack_map (packer, 1);
        s_pack_str (packer, "room");
        s_pack_room (packer, &room, NULL, -1);
    }
    else
    if (s_is_duplicate_key (error)) {
        s_fail_conflict (pending);
        ok = true;
    }
    bson_destroy (&room);
    return ok ? 0 : -1;
}

static int
s_run_room_get (store_t *self, s_pending_t *pending, msgpack_packer *packer, bson_error_t *error)
{
    bson_t room = BSON_INITIALIZER;
    int rc = s_find_room (self, pending->room_key, &room, error);
    if (rc == 1) {
        //  The timeline is the authority on last_seq: the document's copy
        //  can lag behind an append whose second write failed (README.md)
        int64_t newest = 0;
        rc = s_newest_seq (self, pending->room_key, &newest, error);
        if (rc == 0) {
            int64_t stored = s_bson_int (&room, "last_seq", 0);
            msgpack_pack_map (packer, 1);
            s_pack_str (packer, "room");
            s_pack_room (packer, &room, NULL, newest > stored ? newest : stored);
        }
    }
    else
    if (rc == 0)
        s_fail_no_room (pending);
    bson_destroy (&room);
    return rc < 0 ? -1 : 0;
}

//  Packs the rooms of a list into a buffer of their own: the count comes first
typedef struct {
    msgpack_packer packer;          //  writing into rows
    msgpack_sbuffer rows;           //  the packed rooms
    uint32_t count;                 //  rooms packed
    const char *user;               //  the user as registered, "" for none
    uint32_t limit;                 //  rooms to pack at most (0: no limit)
    bool more;                      //  rooms were left out: past limit or budget
} s_room_list_t;

//  Packs a room found, with joined, unless the list is full: past its
//  limit, or past S_REPLY_BUDGET bytes (the answer stops at a whole room)
static void
s_on_listed_room (void *arg, const bson_t *document)
{
    s_room_list_t *list = (s_room_list_t *) arg;
    if (list->more || (list->limit && list->count == list->limit)) {
        list->more = true;
        return;
    }
    bool joined = list->user [0]
               && s_bson_array_has (document, "users", list->user,
                                    (uint32_t) strlen (list->user), NULL);
    size_t before = list->rows.size;
    s_pack_room (&list->packer, document, &joined, -1);
    if (list->rows.size > S_REPLY_BUDGET) {
        list->rows.size = before;
        list->more = true;
        return;
    }
    list->count++;
}

//  Finds rooms into {rooms, more}: at most pending->limit (one more is
//  asked for, to tell whether more remain), each with joined for user
static int
s_find_room_page (store_t *self, s_pending_t *pending, const bson_t *filter,
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
    s_room_list_t list = { .user = user, .limit = pending->limit };
    msgpack_sbuffer_init (&list.rows);
    msgpack_packer_init (&list.packer, &list.rows, msgpack_sbuffer_write);
    int rc = s_find (self, self->rooms, filter, &opts, s_on_listed_room, &list, error);
    if (rc == 0) {
        msgpack_pack_map (packer, 2);
        s_pack_str (packer, "rooms");
        msgpack_pack_array (packer, list.count);
        msgpack_sbuffer_write (&pending->result, list.rows.data, list.rows.size);
        s_pack_str (packer, "more");
        if (list.more)
            msgpack_pack_true (packer);
        else
            msgpack_pack_false (packer);
    }
    msgpack_sbuffer_destroy (&list.rows);
    bson_destroy (&opts);
    return rc;
}

//  The rooms the user belongs to, by lower-cased name, after the cursor:
//  the users_name_lower index
static int
s_run_room_joined (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                   bson_error_t *error)
{
    char user [S_NAME_MAX + 1] = "";
    int rc = s_find_user_name (self, pending->key, user, error);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        msgpack_pack_map (packer, 2);
        s_pack_str (packer, "rooms");
        msgpack_pack_array (packer, 0);
        s_pack_str (packer, "more");
        msgpack_pack_false (packer);
        return 0;
    }
    bson_t *filter = BCON_NEW ("users", BCON_UTF8 (user),
                               "name_lower", "{", "$gt", BCON_UTF8 (pending->after_key), "}");
    bson_t *sort = BCON_NEW ("name_lower", BCON_INT32 (1));
    rc = s_find_room_page (self, pending, filter, sort, user, packer, error);
    bson_destroy (sort);
    bson_destroy (filter);
    return rc;
}

//  Public rooms the user is not in, most recently active first, after the
//  cursor (after_active, after): the public_by_active index
static int
s_run_room_public (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                   bson_error_t *error)
{
    char user [S_NAME_MAX + 1] = "";
    if (s_find_user_name (self, pending->key, user, error) < 0)
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
static int
s_run_room_directory (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                      bson_error_t *error)
{
    char user [S_NAME_MAX + 1] = "";
    if (s_find_user_name (self, pending->key, user, error) < 0)
        return -1;
    char end [S_ROOM_MAX + 2];
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

static int
s_run_room_list (store_t *self, s_pending_t *pending, msgpack_packer *packer, bson_error_t *error)
{
    //  A user that does not exist sees the public rooms
    char user [S_NAME_MAX + 1] = "";
    int rc = s_find_user_name (self, pending->key, user, error);
    if (rc < 0)
        return -1;
    bson_t *filter = user [0]
        ? BCON_NEW ("$or", "[", "{", "metadata.settings.is_private", BCON_BOOL (false), "}",
                                "{", "users", BCON_UTF8 (user), "}", "]")
        : BCON_NEW ("metadata.settings.is_private", BCON_BOOL (false));
    bson_t *opts = BCON_NEW ("sort", "{", "name_lower", BCON_INT32 (1), "}",
                             "projection", "{", "invited", BCON_INT32 (0), "}");
    s_room_list_t list = { .user = user };
    msgpack_sbuffer_init (&list.rows);
    msgpack_packer_init (&list.packer, &list.rows, msgpack_sbuffer_write);
    rc = s_find (self, self->rooms, filter, opts, s_on_listed_room, &list, error);
    if (rc == 0) {
        msgpack_pack_map (packer, 2);
        s_pack_str (packer, "rooms");
        msgpack_pack_array (packer, list.count);
        msgpack_sbuffer_write (&pending->result, list.rows.data, list.rows.size);
        s_pack_str (packer, "more");
        if (list.more)
            msgpack_pack_true (packer);
        else
            msgpack_pack_false (packer);
    }
    msgpack_sbuffer_destroy (&list.rows);
    bson_destroy (opts);
    bson_destroy (filter);
    return rc;
}

static int
s_run_room_delete (store_t *self, s_pending_t *pending, msgpack_packer *packer,
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
            s_pack_str (packer, "name");
            s_pack_bson_text (packer, &removed, "name");
            s_pack_str (packer, "members");
            s_pack_sorted_names (packer, &removed, "users");
        }
        bson_t *timeline = BCON_NEW ("room", BCON_UTF8 (pending->room_key));
        bson_error_t timeline_error;
        self->round_trips++;
        if (!mongoc_collection_delete_many (self->messages, timeline, NULL, NULL,
                                            &timeline_error))
            //  The room is gone, which is what the caller asked: ok stands
            s_note_failure (self, "deleting a deleted room's timeline", &timeline_error);
        bson_destroy (timeline);
    }
    else
    if (ok)
        s_fail_no_room (pending);
    bson_destroy (&reply);
    return ok ? 0 : -1;
}

static int
s_run_member_add (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                  bson_error_t *error)
{
    char user [S_NAME_MAX + 1] = "";
    bson_t room = BSON_INITIALIZER;
    bool added = false;             //  our conditional update matched
    bool decided = false;           //  answered without adding
    bool consumed = false;          //  the update took an invitation
    int rc = 0;
    for (int attempt = 0; attempt < S_JOIN_ATTEMPTS && !added && !decided; attempt++) {
        bson_reinit (&room);
        rc = s_find_room (self, pending->room_key, &room, error);
        if (rc <= 0) {
            if (rc == 0)
                s_fail_no_room (pending);
            break;
        }
        if (user [0] == 0) {
            rc = s_find_user_name (self, pending->key, user, error);
            if (rc <= 0) {
                if (rc == 0)
                    s_fail_no_user (pending);
                break;
            }
        }
        uint32_t user_size = (uint32_t) strlen (user);
        if (s_bson_array_has (&room, "users", user, user_size, NULL)) {
            decided = true;         //  a member already: ok, nothing appended
            break;
        }
        uint32_t owner_size;
        const char *owner = s_bson_text (&room, "owner", &owner_size);
        bool is_owner = s_same_name (owner, owner_size, user, user_size);
        bool is_private = s_bson_bool (&room, "metadata.settings.is_private");
        bool needs_invitation = is_private && !is_owner;
        if (needs_invitation && !s_bson_array_has (&room, "invited", user, user_size, NULL)) {
            s_fail (pending, "forbidden", "The room '%.*s' is private and '%s' is not invited.",
                    (int) pending->room.size, pending->room.data, user);
            rc = 0;
            break;
        }
        uint32_t members = s_bson_array_count (&room, "users");
        int64_t max_participants = s_bson_int (&room, "metadata.settings.max_participants", 0);
        if ((int64_t) members >= max_participants) {
            s_fail (pending, "full", "The room '%.*s' is full (%u of %" PRId64 ").",
                    (int) pending->room.size, pending->room.data, members, max_participants);
            rc = 0;
            break;
        }
        if (attempt == 0) {
            rc = s_check_quotas (self, pending, user, error);
            if (rc < 0 || pending->code)
                break;
        }
        if (pending->entry.present && attempt == 0) {
            rc = s_seq_taken (self, pending, error);
            if (rc != 0) {
                if (rc == 1) {
                    s_fail_conflict (pending);
                    rc = 0;
                }
                break;
            }
        }
        //  The checks again, in the filter, so that the update applies only
        //  to the room as we judged it: no concurrent join can pass the
        //  limit (the element at index max - 1 exists once the room is full)
        char full_key [32];
        snprintf (full_key, sizeof full_key, "users.%" PRId64, max_participants - 1);
        bson_t query = BSON_INITIALIZER, condition;
        BSON_APPEND_UTF8 (&query, "name_lower", pending->room_key);
        BSON_APPEND_DOCUMENT_BEGIN (&query, "users", &condition);
        BSON_APPEND_UTF8 (&condition, "$ne", user);
        bson_append_document_end (&query, &condition);
        BSON_APPEND_DOCUMENT_BEGIN (&query, full_key, &condition);
        BSON_APPEND_BOOL (&condition, "$exists", false);
        bson_append_document_end (&query, &condition);
        if (needs_invitation)
            BSON_APPEND_UTF8 (&query, "invited", user);
        bson_t update = BSON_INITIALIZER, operation;
        BSON_APPEND_DOCUMENT_BEGIN (&update, "$push", &operation);
        BSON_APPEND_UTF8 (&operation, "users", user);
        bson_append_document_end (&update, &operation);
        //  An invitation is consumed by joining
        BSON_APPEND_DOCUMENT_BEGIN (&update, "$pull", &operation);
        BSON_APPEND_UTF8 (&operation, "invited", user);
        bson_append_document_end (&update, &operation);
        if (pending->entry.present) {
            BSON_APPEND_DOCUMENT_BEGIN (&update, "$max", &operation);
            BSON_APPEND_INT64 (&operation, "last_seq", (int64_t) pending->entry.seq);
            bson_append_document_end (&update, &operation);
        }
        consumed = s_bson_array_has (&room, "invited", user, user_size, NULL);
        rc = s_modify_room (self, &query, &update, &room, error);
        bson_destroy (&query);
        bson_destroy (&update);
        if (rc < 0)
            break;
        added = rc == 1;
        if (!added)
            //  Not matched: the room changed since we read it; judge it again
            self->host->log (self->ctx, PARLEY_LOG_DEBUG,
                             "room '%s' changed while %s was joining it; judging again",
                             pending->room_key, user);
    }
    if (rc >= 0 && !added && !decided && !pending->code) {
        s_fail (pending, "unavailable", "The room '%.*s' kept changing; try again.",
                (int) pending->room.size, pending->room.data);
        rc = 0;
    }
    if (added && pending->entry.present) {
        rc = s_insert_entry (self, pending, error);
        if (rc != 0) {
            //  Not appended: the membership goes too, so that the request
            //  changed nothing (best effort when the server is away)
            bson_t *query = BCON_NEW ("name_lower", BCON_UTF8 (pending->room_key));
            bson_t *update = consumed
                ? BCON_NEW ("$pull", "{", "users", BCON_UTF8 (user), "}",
                            "$addToSet", "{", "invited", BCON_UTF8 (user), "}")
                : BCON_NEW ("$pull", "{", "users", BCON_UTF8 (user), "}");
            bson_error_t undo_error;
            self->round_trips++;
            if (!mongoc_collection_update_one (self->rooms, query, update, NULL, NULL,
                                               &undo_error))
                s_note_failure (self, "undoing a join whose notice failed", &undo_error);
            bson_destroy (query);
            bson_destroy (update);
            if (rc == 1) {
                s_fail_conflict (pending);
                rc = 0;
            }
            added = false;
            decided = false;
        }
    }
    if (rc >= 0 && (added || decided) && !pending->code) {
        msgpack_pack_map (packer, 3);
        s_pack_str (packer, "added");
        if (added)
            msgpack_pack_true (packer);
        else
            msgpack_pack_false (packer);
        s_pack_str (packer, "members");
        msgpack_pack_uint32 (packer, s_bson_array_count (&room, "users"));
        s_pack_str (packer, "room");
        s_pack_room (packer, &room, NULL, -1);
    }
    bson_destroy (&room);
    return rc < 0 ? -1 : 0;
}

static int
s_run_member_remove (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                     bson_error_t *error)
{
    bson_t room = BSON_INITIALIZER;
    int rc = s_find_room (self, pending->room_key, &room, error);
    char member [S_NAME_MAX + 1];
    if (rc == 0)
        s_fail_no_room (pending);
    else
    if (rc == 1 && !s_bson_array_has (&room, "users", pending->name.data, pending->name.size,
                                      member)) {
        s_fail (pending, "not_member", "'%.*s' is not a member of the room '%.*s'.",
                (int) pending->name.size, pending->name.data,
                (int) pending->room.size, pending->room.data);
        rc = 0;
    }
    else
    if (rc == 1 && pending->entry.present) {
        rc = s_seq_taken (self, pending, error);
        if (rc == 1) {
            s_fail_conflict (pending);
            rc = 0;
        }
        else
        if (rc == 0)
            rc = 1;
    }
    if (rc == 1) {
        bson_t *query = BCON_NEW ("name_lower", BCON_UTF8 (pending->room_key),
                                  "users", BCON_UTF8 (member));
        bson_t *update = pending->entry.present
            ? BCON_NEW ("$pull", "{", "users", BCON_UTF8 (member), "}",
                        "$max", "{", "last_seq", BCON_INT64 ((int64_t) pending->entry.seq), "}")
            : BCON_NEW ("$pull", "{", "users", BCON_UTF8 (member), "}");
        rc = s_modify_room (self, query, update, &room, error);
        bson_destroy (query);
        bson_destroy (update);
        if (rc == 0)
            //  Left meanwhile, or the room went
            s_fail (pending, "not_member", "'%.*s' is not a member of the room '%.*s'.",
                    (int) pending->name.size, pending->name.data,
                    (int) pending->room.size, pending->room.data);
    }
    if (rc == 1 && pending->entry.present) {
        int inserted = s_insert_entry (self, pending, error);
        if (inserted != 0) {
            //  Not appended: the member stays, so that nothing changed
            bson_t *query = BCON_NEW ("name_lower", BCON_UTF8 (pending->room_key));
            bson_t *update = BCON_NEW ("$addToSet", "{", "users", BCON_UTF8 (member), "}");
            bson_error_t undo_error;
            self->round_trips++;
            if (!mongoc_collection_update_one (self->rooms, query, update, NULL, NULL,
                                               &undo_error))
                s_note_failure (self, "undoing a leave whose notice failed", &undo_error);
            bson_destroy (query);
            bson_destroy (update);
            if (inserted == 1) {
                s_fail_conflict (pending);
                rc = 0;
            }
            else
                rc = -1;
        }
    }
    if (rc == 1) {
        msgpack_pack_map (packer, 1);
        s_pack_str (packer, "members");
        msgpack_pack_uint32 (packer, s_bson_array_count (&room, "users"));
        rc = 0;
    }
    bson_destroy (&room);
    return rc < 0 ? -1 : 0;
}

static int
s_run_member_list (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                   bson_error_t *error)
{
    bson_t room = BSON_INITIALIZER;
    int rc = s_find_room (self, pending->room_key, &room, error);
    if (rc == 1) {
        msgpack_pack_map (packer, 1);
        s_pack_str (packer, "members");
        s_pack_sorted_names (packer, &room, "users");
    }
    else
    if (rc == 0)
        s_fail_no_room (pending);
    bson_destroy (&room);
    return rc < 0 ? -1 : 0;
}

static int
s_run_invite_add (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                  bson_error_t *error)
{
    bson_t room = BSON_INITIALIZER;
    char user [S_NAME_MAX + 1] = "";
    int rc = s_find_room (self, pending->room_key, &room, error);
    if (rc == 0)
        s_fail_no_room (pending);
    else
    if (rc == 1) {
        rc = s_find_user_name (self, pending->key, user, error);
        if (rc == 0)
            s_fail_no_user (pending);
    }
    if (rc == 1) {
        bool already_member
            = s_bson_array_has (&room, "users", user, (uint32_t) strlen (user), NULL);
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
            s_pack_str (packer, "user");
            s_pack_str (packer, user);
            s_pack_str (packer, "already_member");
            if (already_member)
                msgpack_pack_true (packer);
            else
                msgpack_pack_false (packer);
        }
    }
    bson_destroy (&room);
    return rc < 0 ? -1 : 0;
}

//  Entries read for msg.history, in the order found
typedef struct {
    bson_t **documents;             //  owned copies
    uint32_t count;
    uint32_t capacity;              //  limit + 1
} s_entries_t;

static void
s_on_entry (void *arg, const bson_t *document)
{
    s_entries_t *entries = (s_entries_t *) arg;
    if (entries->count < entries->capacity)
        entries->documents [entries->count++] = bson_copy (document);
}

//  A page of a timeline: one range of its (key, seq) index, read from the
//  cursor's side, one entry more than asked to tell whether more remain.
//  Packs {messages, more} with pack. Returns 0, or -1 with error set.
typedef void (s_pack_fn) (msgpack_packer *packer, const bson_t *document);

//  Cuts *count_p so that the first *count_p documents, packed, take at most
//  S_REPLY_BUDGET bytes. Returns true if it cut.
static bool
s_page_cut (bson_t **documents, uint32_t *count_p, s_pack_fn *pack)
{
    msgpack_sbuffer scratch;
    msgpack_sbuffer_init (&scratch);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &scratch, msgpack_sbuffer_write);
    bool cut = false;
    for (uint32_t index = 0; index < *count_p; index++) {
        pack (&packer, documents [index]);
        if (scratch.size > S_REPLY_BUDGET) {
            *count_p = index;
            cut = true;
            break;
        }
    }
    msgpack_sbuffer_destroy (&scratch);
    return cut;
}

static int
s_run_page (store_t *self, s_pending_t *pending, mongoc_collection_t *collection,
            const char *field, const char *key, const char *hint, s_pack_fn *pack,
            msgpack_packer *packer, bson_error_t *error)
{
    bson_t filter = BSON_INITIALIZER, range;
    BSON_APPEND_UTF8 (&filter, field, key);
    if (pending->cursor != S_CURSOR_NONE) {
        BSON_APPEND_DOCUMENT_BEGIN (&filter, "seq", &range);
        BSON_APPEND_INT64 (&range, pending->cursor == S_CURSOR_AFTER ? "$gt" : "$lt",
                           (int64_t) pending->cursor_seq);
        bson_append_document_end (&filter, &range);
    }
    bool oldest_first = pending->cursor == S_CURSOR_AFTER;
    bson_t *opts = BCON_NEW ("sort", "{", "seq", BCON_INT32 (oldest_first ? 1 : -1), "}",
                             "limit", BCON_INT64 ((int64_t) pending->limit + 1),
                             "hint", BCON_UTF8 (hint),
                             "projection", "{", "_id", BCON_INT32 (0), "}");
    s_entries_t entries = { .capacity = pending->limit + 1 };
    entries.documents = (bson_t **) calloc (entries.capacity, sizeof (bson_t *));
    int rc = 0;
    if (!entries.documents)
        s_fail (pending, "internal", "The store ran out of memory.");
    else {
        rc = s_find (self, collection, &filter, opts, s_on_entry, &entries, error);
        if (rc == 0) {
            bool more = entries.count > pending->limit;
            uint32_t count = more ? pending->limit : entries.count;
            //  The documents came from the cursor's side: a page cut for
            //  its bytes keeps the entries next to the cursor
            if (s_page_cut (entries.documents, &count, pack))
                more = true;
            msgpack_pack_map (packer, 2);
            s_pack_str (packer, "messages");
            msgpack_pack_array (packer, count);
            for (uint32_t index = 0; index < count; index++)
                pack (packer, entries.documents [oldest_first ? index : count - 1 - index]);
            s_pack_str (packer, "more");
            if (more)
                msgpack_pack_true (packer);
            else
                msgpack_pack_false (packer);
        }
        for (uint32_t index = 0; index < entries.count; index++)
            bson_destroy (entries.documents [index]);
        free (entries.documents);
    }
    bson_destroy (opts);
    bson_destroy (&filter);
    return rc;
}

static int
s_run_msg_history (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                   bson_error_t *error)
{
    bson_t *room_filter = BCON_NEW ("name_lower", BCON_UTF8 (pending->room_key));
    bson_t *room_projection = BCON_NEW ("_id", BCON_INT32 (1));
    bson_t found = BSON_INITIALIZER;
    int rc = s_find_one (self, self->rooms, room_filter, room_projection, &found, error);
    bson_destroy (&found);
    bson_destroy (room_projection);
    bson_destroy (room_filter);
    if (rc <= 0) {
        if (rc == 0)
            s_fail_no_room (pending);
        return rc;
    }
    return s_run_page (self, pending, self->messages, "room", pending->room_key,
                       S_TIMELINE_INDEX, s_pack_entry, packer, error);
}

//  msg.append, a run of requests, each appending a run of 1 to
//  S_ENTRIES_MAX entries to one room: one find of the rooms, one of the
//  seqs taken, one ordered insert_many of every entry of the run, one bulk
//  of $max on the rooms' last_seq.
//
//  A request is applied whole or not at all (proto/STORE.md, Atomicity) as
//  far as a server without transactions allows. Every reason to refuse one
//  is found before anything is inserted: no such room, a seq of its run
//  taken in the timeline or by an earlier request of the same run. Its
//  entries then go in one ordered insert, in seq order: the server stores
//  them in that order and stops at the first that fails, so that a failure
//  part way (the server lost, a write concern not met, a seq taken
//  meanwhile by another writer) can leave a first part of a request's run
//  stored, never a gap. That request answers unavailable, and its outcome
//  is unknown as any lost answer's: a retry answers conflict if its first
//  seq was stored. Requests whose entries all came before the failure are
//  ok; those after it are inserted again from the first of them.

typedef struct {
    s_pending_t *first;             //  the run
    s_pending_t *end;
} s_span_t;

static void
s_on_room_exists (void *arg, const bson_t *document)
{
    s_span_t *span = (s_span_t *) arg;
    uint32_t size;
    const char *key = s_bson_text (document, "name_lower", &size);
    for (s_pending_t *pending = span->first; pending < span->end; pending++)
        if (s_is_live (pending) && strlen (pending->room_key) == size
        &&  memcmp (pending->room_key, key, size) == 0)
            pending->room_found = true;
}

//  An entry of a timeline (a room's or a conversation's) holds a seq that
//  the appends of a run of msg.append or pm.append to it would take
static void
s_on_seq_taken (void *arg, const bson_t *document)
{
    s_span_t *span = (s_span_t *) arg;
    uint32_t size;
    const char *key = s_bson_text (document, s_timeline_field (span->first), &size);
    int64_t seq = s_bson_int (document, "seq", 0);
    if (seq <= 0)
        return;
    for (s_pending_t *pending = span->first; pending < span->end; pending++)
        if (s_is_live (pending) && strlen (s_timeline_key (pending)) == size
        &&  memcmp (s_timeline_key (pending), key, size) == 0
        &&  s_first_seq (pending) <= (uint64_t) seq && (uint64_t) seq <= s_last_seq (pending))
            s_fail_seq_taken (pending, (uint64_t) seq, false);
}

//  Looks for entries of the timelines with a seq that a live request of the
//  run (msg.append or pm.append, from first) would append:
//  {$or: [{room, seq: {$gte: first, $lte: last}}, ...]}, one range of the
//  (room, seq) or (conv, seq) index per request. Returns 0 or -1.
static int
s_find_seqs_taken (store_t *self, s_pending_t *first, s_pending_t *end, bson_error_t *error)
{
    bool pm = first->op == S_OP_PM_APPEND;
    bson_t filter = BSON_INITIALIZER, clauses;
    BSON_APPEND_ARRAY_BEGIN (&filter, "$or", &clauses);
    uint32_t count = 0;
    for (s_pending_t *pending = first; pending < end; pending++) {
        if (!s_is_live (pending))
            continue;
        char index_key [16];
        const char *key;
        size_t key_size = bson_uint32_to_string (count++, &key, index_key, sizeof index_key);
        bson_t clause, range;
        bson_append_document_begin (&clauses, key, (int) key_size, &clause);
        BSON_APPEND_UTF8 (&clause, s_timeline_field (pending), s_timeline_key (pending));
        BSON_APPEND_DOCUMENT_BEGIN (&clause, "seq", &range);
        BSON_APPEND_INT64 (&range, "$gte", (int64_t) s_first_seq (pending));
        BSON_APPEND_INT64 (&range, "$lte", (int64_t) s_last_seq (pending));
        bson_append_document_end (&clause, &range);
        bson_append_document_end (&clauses, &clause);
    }
    bson_append_array_end (&filter, &clauses);
    int rc = 0;
    if (count > 0) {
        s_span_t span = { first, end };
        bson_t *opts = BCON_NEW ("projection", "{", s_timeline_field (first), BCON_INT32 (1),
                                 "seq", BCON_INT32 (1), "}",
                                 "hint", BCON_UTF8 (pm ? S_PM_INDEX : S_TIMELINE_INDEX));
        rc = s_find (self, pm ? self->pm_messages : self->messages, &filter, opts,
                     s_on_seq_taken, &span, error);
        bson_destroy (opts);
    }
    bson_destroy (&filter);
    return rc;
}

//  Two live requests of the run whose runs share a seq of one timeline: the
//  later one conflicts, as it would have had they come in separate batches
static void
s_settle_overlaps (s_pending_t *first, s_pending_t *end)
{
    for (s_pending_t *pending = first + 1; pending < end; pending++) {
        if (!s_is_live (pending))
            continue;
        for (s_pending_t *earlier = first; earlier < pending; earlier++)
            if (s_is_live (earlier)
            &&  strcmp (s_timeline_key (earlier), s_timeline_key (pending)) == 0
            &&  s_first_seq (earlier) <= s_last_seq (pending)
            &&  s_first_seq (pending) <= s_last_seq (earlier)) {
                //  The first seq they share
                uint64_t shared = s_first_seq (earlier) > s_first_seq (pending)
                                ? s_first_seq (earlier) : s_first_seq (pending);
                s_fail_seq_taken (pending, shared, false);
                break;
            }
    }
}

static void
    s_build_pm_message (const s_pending_t *pending, const s_pm_message_t *message,
                        bson_t *document);

//  Builds the document of element index of pending's run (msg.append: an
//  entry; pm.append: a message), read again from fields as validation read
//  it. Returns 0, or -1 if it could not be read (it cannot).
static int
s_build_run_document (s_pending_t *pending, uint32_t index, bson_t *document)
{
    const msgpack_object *value = &pending->entries [index];
    if (pending->op == S_OP_PM_APPEND) {
        s_pm_message_t message;
        if (s_pm_message_read (pending, value, &message))
            return -1;
        s_build_pm_message (pending, &message, document);
    }
    else {
        s_entry_t entry;
        if (s_entry_read (pending, value, &entry))
            return -1;
        s_build_entry (pending->room_key, &entry, document);
    }
    return 0;
}

//  Inserts the entries (or private messages) of the live requests of
//  [first, end), in order, with ordered insert_many (see above for a
//  failure part way) and answers the requests it could not append.
//  Returns 0, or -1 if the server could not be reached.
static int
s_insert_entries (store_t *self, s_pending_t *first, s_pending_t *end)
{
    bool pm = first->op == S_OP_PM_APPEND;
    mongoc_collection_t *collection = pm ? self->pm_messages : self->messages;
    const char *what = pm ? "appending private messages" : "appending entries";
    size_t capacity = 0;
    for (s_pending_t *pending = first; pending < end; pending++)
        if (s_is_live (pending))
            capacity += pending->entry_count;
    bson_t **documents = (bson_t **) calloc (capacity ? capacity : 1, sizeof (bson_t *));
    s_pending_t **owners = (s_pending_t **) calloc (capacity ? capacity : 1,
                                                    sizeof (s_pending_t *));
    if (!documents || !owners) {
        free (documents);
        free (owners);
        for (s_pending_t *pending = first; pending < end; pending++)
            if (s_is_live (pending))
                s_fail (pending, "internal", "The store ran out of memory.");
        return 0;
    }
    size_t count = 0;
    for (s_pending_t *pending = first; pending < end; pending++) {
        for (uint32_t index = 0; index < pending->entry_count && s_is_live (pending); index++) {
            documents [count] = bson_new ();
            owners [count++] = pending;
            if (s_build_run_document (pending, index, documents [count - 1]))
                break;
        }
        //  A request refused while its documents were built sends none
        while (count > 0 && owners [count - 1] == pending && !s_is_live (pending))
            bson_destroy (documents [--count]);
    }
    int rc = 0;
    bson_t *opts = BCON_NEW ("ordered", BCON_BOOL (true));
    size_t start = 0;               //  the first document not yet inserted
    while (start < count) {
        bson_t reply;
        bson_error_t error;
        self->round_trips++;
        if (mongoc_collection_insert_many (collection, (const bson_t **) documents + start,
                                           count - start, opts, &reply, &error)) {
            s_mark_reachable (self);
            bson_destroy (&reply);
            break;
        }
        //  An ordered insert reports its one failed document: those before
        //  it are stored, those after it are not
        bson_iter_t errors;
        size_t index;
        bson_error_t own;
        if (s_is_unreachable (&error) || bson_has_field (&reply, "writeConcernErrors")
        ||  !s_write_errors (&reply, &errors) || !bson_iter_next (&errors)
        ||  !s_write_error (&errors, count - start, &index, &own)) {
            //  What the server stored of the rest is unknown
            s_note_failure (self, what, &error);
            for (size_t rest = start; rest < count; rest++)
                if (s_is_live (owners [rest]))
                    s_fail_unavailable (self, owners [rest], &error);
            rc = s_is_unreachable (&error) ? -1 : 0;
            bson_destroy (&reply);
            break;
        }
        bson_destroy (&reply);
        size_t failed = start + index;
        s_pending_t *owner = owners [failed];
        bool first_of_its_run = failed == 0 || owners [failed - 1] != owner;
        if (s_is_duplicate_key (&own))
            //  Nothing of its run is stored if it failed first: a plain
            //  conflict; else its outcome is unknown
            s_fail_seq_taken (owner, (uint64_t) s_bson_int (documents [failed], "seq", 0),
                              !first_of_its_run);
        else {
            s_note_failure (self, what, &own);
            s_fail_unavailable (self, owner, &own);
        }
        //  The requests after it, again
        start = failed;
        while (start < count && owners [start] == owner)
            start++;
    }
    bson_destroy (opts);
    for (size_t index = 0; index < count; index++)
        bson_destroy (documents [index]);
    free (documents);
    free (owners);
    return rc;
}

//  The newest ts of a msg.append's run (the entries were validated)
static int64_t
s_newest_ts (const s_pending_t *pending)
{
    int64_t newest = 0;
    for (uint32_t index = 0; index < pending->entry_count; index++) {
        const msgpack_object *ts = s_field (&pending->entries [index], "ts");
        if (ts && ts->type == MSGPACK_OBJECT_POSITIVE_INTEGER && (int64_t) ts->via.u64 > newest)
            newest = (int64_t) ts->via.u64;
    }
    return newest;
}

//  The rooms' last_seq, one $max per room: a copy for the room map
//  (room.get reads the timeline itself). Its failure leaves the entries
//  appended, and their ok stands.
static void
s_advance_rooms (store_t *self, s_pending_t *first, s_pending_t *end)
{
    bson_t *bulk_opts = BCON_NEW ("ordered", BCON_BOOL (false));
    mongoc_bulk_operation_t *bulk
        = mongoc_collection_create_bulk_operation_with_opts (self->rooms, bulk_opts);
    bson_destroy (bulk_opts);
    size_t updates = 0;
    for (s_pending_t *pending = first; pending < end; pending++) {
        if (!s_is_live (pending))
            continue;
        //  The highest seq of this room in the run, once per room
        bool seen_before = false;
        uint64_t highest = s_last_seq (pending);
        for (s_pending_t *other = first; other < end; other++) {
            if (other == pending || !s_is_live (other)
            ||  strcmp (other->room_key, pending->room_key) != 0)
                continue;
            if (other < pending)
                seen_before = true;
            if (s_last_seq (other) > highest)
                highest = s_last_seq (other);
        }
        if (seen_before)
            continue;
        //  The room's activity too, for room.list's public rooms: the
        //  newest ts of the room's requests in the run, in the same update
        int64_t active = s_newest_ts (pending);
        for (s_pending_t *other = pending + 1; other < end; other++)
            if (s_is_live (other) && strcmp (other->room_key, pending->room_key) == 0
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
            s_note_failure (self, "updating the rooms' last_seq", &error);
        bson_destroy (&reply);
    }
    mongoc_bulk_operation_destroy (bulk);
}

static int
s_run_msg_append (store_t *self, s_pending_t *first, s_pending_t *end)
{
    s_span_t span = { first, end };
    bson_error_t error;
    bson_t filter, condition, array;
    s_in_begin (&filter, "name_lower", &condition, &array);
    uint32_t count = 0;
    for (s_pending_t *pending = first; pending < end; pending++)
        if (s_is_live (pending))
            s_array_append_text (&array, &count, pending->room_key,
                                 (uint32_t) strlen (pending->room_key));
    s_in_end (&filter, &condition, &array);
    bson_t *opts = BCON_NEW ("projection", "{", "name_lower", BCON_INT32 (1), "}");
    int rc = s_find (self, self->rooms, &filter, opts, s_on_room_exists, &span, &error);
    bson_destroy (opts);
    bson_destroy (&filter);
    if (rc) {
        s_note_failure (self, "looking up the rooms of appends", &error);
        s_fail_run (self, first, end, &error);
        return s_is_unreachable (&error) ? -1 : 0;
    }
    for (s_pending_t *pending = first; pending < end; pending++)
        if (s_is_live (pending) && !pending->room_found)
            s_fail_no_room (pending);

    //  The seqs taken: looked for before inserting, as the JavaScript test
    //  server does not enforce the unique index. Then the run's own overlaps,
    //  among the requests still live, as if each came alone in order.
    if (s_find_seqs_taken (self, first, end, &error)) {
        s_note_failure (self, "looking for taken seqs", &error);
        s_fail_run (self, first, end, &error);
        return s_is_unreachable (&error) ? -1 : 0;
    }
    s_settle_overlaps (first, end);
    rc = s_insert_entries (self, first, end);
    if (rc == 0)
        s_advance_rooms (self, first, end);
    for (s_pending_t *pending = first; pending < end; pending++)
        if (s_is_live (pending)) {
            msgpack_packer packer;
            msgpack_packer_init (&packer, &pending->result, msgpack_sbuffer_write);
            msgpack_pack_map (&packer, 1);
            s_pack_str (&packer, "seq");
            msgpack_pack_uint64 (&packer, s_last_seq (pending));
        }
    return rc;
}


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
    char key [S_NAME_MAX + 1];      //  name_lower
    char name [S_NAME_MAX + 1];     //  name
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
    s_copy_bson_str (document, "name_lower", user->key, sizeof user->key);
    s_copy_bson_str (document, "name", user->name, sizeof user->name);
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
s_find_pm_users (store_t *self, s_pending_t *first, s_pending_t *end, s_user_names_t *names,
                 bson_error_t *error)
{
    bson_t filter, condition, array;
    s_in_begin (&filter, "name_lower", &condition, &array);
    uint32_t count = 0;
    for (s_pending_t *pending = first; pending < end; pending++)
        if (s_is_live (pending)) {
            s_array_append_text (&array, &count, pending->key, (uint32_t) strlen (pending->key));
            s_array_append_text (&array, &count, pending->peer_key,
                                 (uint32_t) strlen (pending->peer_key));
        }
    s_in_end (&filter, &condition, &array);
    int rc = 0;
    if (count > 0) {
        bson_t *opts = BCON_NEW ("projection", "{", "name_lower", BCON_INT32 (1),
                                 "name", BCON_INT32 (1), "}");
        rc = s_find (self, self->users, &filter, opts, s_on_user_name, names, error);
        bson_destroy (opts);
    }
    bson_destroy (&filter);
    qsort (names->users, names->count, sizeof (s_user_name_t), s_compare_user_names);
    return rc;
}

//  Fails pending with not_found, naming the side that does not exist
static void
s_fail_no_pm_user (s_pending_t *pending, bool me_missing)
{
    const s_text_t *missing = me_missing ? &pending->name : &pending->peer;
    s_fail (pending, "not_found", "No user is named '%.*s'.", (int) missing->size,
            missing->data);
}

//  Packs a pm entry from a document that holds seq, from, to, text, ts
static void
s_pack_pm_entry (msgpack_packer *packer, const bson_t *document)
{
    msgpack_pack_map (packer, 5);
    s_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, (uint64_t) s_bson_int (document, "seq", 0));
    s_pack_str (packer, "from");
    s_pack_bson_text (packer, document, "from");
    s_pack_str (packer, "to");
    s_pack_bson_text (packer, document, "to");
    s_pack_str (packer, "text");
    s_pack_bson_text (packer, document, "text");
    s_pack_str (packer, "ts");
    msgpack_pack_int64 (packer, s_bson_int (document, "ts", 0));
}

//  A message's fields, as in pm_messages and in a conversation's last: from
//  and to as registered, by the message's direction
static void
s_append_pm_fields (const s_pending_t *pending, const s_pm_message_t *message,
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

static void
s_build_pm_message (const s_pending_t *pending, const s_pm_message_t *message,
                    bson_t *document)
{
    bson_oid_t oid;
    bson_oid_init (&oid, NULL);
    BSON_APPEND_OID (document, "_id", &oid);
    BSON_APPEND_UTF8 (document, "conv", pending->conv);
    s_append_pm_fields (pending, message, document);
}

static void
s_on_conversation_exists (void *arg, const bson_t *document)
{
    s_span_t *span = (s_span_t *) arg;
    uint32_t size;
    const char *conv = s_bson_text (document, "conv", &size);
    for (s_pending_t *pending = span->first; pending < span->end; pending++)
        if (s_is_live (pending) && strlen (pending->conv) == size
        &&  memcmp (pending->conv, conv, size) == 0)
            pending->room_found = true;
}

//  Moves the conversation documents of the run's appends to their newest
//  entry, creating those that do not exist: one find, one bulk. Returns 0,
//  or -1 with error set.
static int
s_advance_conversations (store_t *self, s_pending_t *first, s_pending_t *end,
                         bson_error_t *error)
{
    s_span_t span = { first, end };
    bson_t filter, condition, array;
    s_in_begin (&filter, "conv", &condition, &array);
    uint32_t count = 0;
    for (s_pending_t *pending = first; pending < end; pending++)
        if (s_is_live (pending))
            s_array_append_text (&array, &count, pending->conv,
                                 (uint32_t) strlen (pending->conv));
    s_in_end (&filter, &condition, &array);
    int rc = 0;
    if (count > 0) {
        bson_t *opts = BCON_NEW ("projection", "{", "conv", BCON_INT32 (1), "}");
        rc = s_find (self, self->conversations, &filter, opts, s_on_conversation_exists, &span,
                     error);
        bson_destroy (opts);
    }
    bson_destroy (&filter);
    if (rc || count == 0)
        return rc;

    bson_t *bulk_opts = BCON_NEW ("ordered", BCON_BOOL (false));
    mongoc_bulk_operation_t *bulk
        = mongoc_collection_create_bulk_operation_with_opts (self->conversations, bulk_opts);
    bson_destroy (bulk_opts);
    for (s_pending_t *pending = first; pending < end; pending++) {
        if (!s_is_live (pending))
            continue;
        //  The newest message of this conversation in the run, once per
        //  conversation: the last of the request whose run ends highest
        bool seen_before = false;
        s_pending_t *newest = pending;
        for (s_pending_t *other = first; other < end; other++) {
            if (other == pending || !s_is_live (other) || strcmp (other->conv, pending->conv))
                continue;
            if (other < pending)
                seen_before = true;
            if (s_last_seq (other) > s_last_seq (newest))
                newest = other;
        }
        if (seen_before)
            continue;
        //  Read again from fields, as validation read it: it cannot fail
        s_pm_message_t message;
        if (s_pm_message_read (newest, &newest->entries [newest->entry_count - 1], &message))
            continue;
        //  The filter carries the condition: the newest never goes back.
        //  A conversation not found is upserted; if a concurrent writer
        //  created it with a newer entry, the upsert's insert meets the
        //  unique index on conv and changes nothing.
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
            //  users and names in the order of conv: a, then b
            bool from_first = strcmp (newest->key, newest->peer_key) < 0;
            const char *a_name = from_first ? newest->from_name : newest->to_name;
            const char *b_name = from_first ? newest->to_name : newest->from_name;
            bson_t insert, users, names;
            bson_oid_t oid;
            bson_oid_init (&oid, NULL);
            BSON_APPEND_DOCUMENT_BEGIN (&update, "$setOnInsert", &insert);
            BSON_APPEND_OID (&insert, "_id", &oid);
            BSON_APPEND_ARRAY_BEGIN (&insert, "users", &users);
            BSON_APPEND_UTF8 (&users, "0", from_first ? newest->key : newest->peer_key);
            BSON_APPEND_UTF8 (&users, "1", from_first ? newest->peer_key : newest->key);
            bson_append_array_end (&insert, &users);
            BSON_APPEND_ARRAY_BEGIN (&insert, "names", &names);
            BSON_APPEND_UTF8 (&names, "0", a_name);
            BSON_APPEND_UTF8 (&names, "1", b_name);
            bson_append_array_end (&insert, &names);
            BSON_APPEND_INT64 (&insert, "read_a", 0);
            BSON_APPEND_INT64 (&insert, "read_b", 0);
            bson_append_document_end (&update, &insert);
            update_opts = BCON_NEW ("upsert", BCON_BOOL (true));
        }
        mongoc_bulk_operation_update_one_with_opts (bulk, selector, &update, update_opts, NULL);
        bson_destroy (update_opts);
        bson_destroy (&update);
        bson_destroy (selector);
    }
    bson_t reply;
    self->round_trips++;
    if (!mongoc_bulk_operation_execute (bulk, &reply, error) && !s_is_duplicate_key (error))
        rc = -1;
    bson_destroy (&reply);
    mongoc_bulk_operation_destroy (bulk);
    return rc;
}

//  pm.append, a run of requests, each appending a run of 1 to S_ENTRIES_MAX
//  messages to one conversation: one find of the users, then as msg.append
//  (see above, also for a failure part way): one find of the seqs taken,
//  one ordered insert_many of every message of the run; then
//  s_advance_conversations
static int
s_run_pm_append (store_t *self, s_pending_t *first, s_pending_t *end)
{
    bson_error_t error;
    size_t live = 0;
    for (s_pending_t *pending = first; pending < end; pending++)
        live += s_is_live (pending);
    s_user_names_t names = { NULL, 0, 2 * live };
    names.users = (s_user_name_t *) calloc (names.capacity ? names.capacity : 1,
                                            sizeof (s_user_name_t));
    if (!names.users) {
        for (s_pending_t *pending = first; pending < end; pending++)
            if (s_is_live (pending))
                s_fail (pending, "internal", "The store ran out of memory.");
        return 0;
    }
    int rc = s_find_pm_users (self, first, end, &names, &error);
    if (rc == 0)
        for (s_pending_t *pending = first; pending < end; pending++) {
            if (!s_is_live (pending))
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
        s_note_failure (self, "looking up the users of private messages", &error);
        s_fail_run (self, first, end, &error);
        return s_is_unreachable (&error) ? -1 : 0;
    }
    //  The seqs taken: looked for before inserting, as the test server does
    //  not enforce the unique index. Then the run's own overlaps.
    if (s_find_seqs_taken (self, first, end, &error)) {
        s_note_failure (self, "looking for taken seqs of private messages", &error);
        s_fail_run (self, first, end, &error);
        return s_is_unreachable (&error) ? -1 : 0;
    }
    s_settle_overlaps (first, end);
    rc = s_insert_entries (self, first, end);
    //  The conversation documents: their failure leaves the messages
    //  stored, and their ok stands (README.md)
    if (rc == 0 && s_advance_conversations (self, first, end, &error))
        s_note_failure (self, "advancing the conversations", &error);
    for (s_pending_t *pending = first; pending < end; pending++)
        if (s_is_live (pending)) {
            msgpack_packer packer;
            msgpack_packer_init (&packer, &pending->result, msgpack_sbuffer_write);
            msgpack_pack_map (&packer, 3);
            s_pack_str (&packer, "seq");
            msgpack_pack_uint64 (&packer, s_last_seq (pending));
            s_pack_str (&packer, "from");
            s_pack_str (&packer, pending->from_name);
            s_pack_str (&packer, "to");
            s_pack_str (&packer, pending->to_name);
        }
    return rc;
}

static int
s_run_pm_last_seq (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                   bson_error_t *error)
{
    //  From the messages' index, one key read: unknown users have none
    bson_t *filter = BCON_NEW ("conv", BCON_UTF8 (pending->conv));
    bson_t *opts = BCON_NEW ("sort", "{", "seq", BCON_INT32 (-1), "}",
                             "limit", BCON_INT64 (1), "singleBatch", BCON_BOOL (true),
                             "hint", BCON_UTF8 (S_PM_INDEX),
                             "projection", "{", "seq", BCON_INT32 (1), "}");
    bson_t found = BSON_INITIALIZER;
    int rc = s_find (self, self->pm_messages, filter, opts, s_keep_first, &found, error);
    if (rc == 0) {
        msgpack_pack_map (packer, 1);
        s_pack_str (packer, "last_seq");
        msgpack_pack_uint64 (packer, (uint64_t) s_bson_int (&found, "seq", 0));
    }
    bson_destroy (&found);
    bson_destroy (opts);
    bson_destroy (filter);
    return rc;
}

static int
s_run_pm_history (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                  bson_error_t *error)
{
    //  Names as registered are in the entries: no look-up of the users
    return s_run_page (self, pending, self->pm_messages, "conv", pending->conv, S_PM_INDEX,
                       s_pack_pm_entry, packer, error);
}

//  The conversations of pm.conversations, in the order found, and what
//  their unread counts need
typedef struct {
    bson_t **documents;             //  owned copies
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
    const char *first = s_bson_text (conversation, "users.0", &size);
    return strlen (key) == size && memcmp (first, key, size) == 0;
}

static void
s_on_unread_group (void *arg, const bson_t *document)
{
    s_conversations_t *list = (s_conversations_t *) arg;
    uint32_t size;
    const char *conv = s_bson_text (document, "_id", &size);
    for (uint32_t index = 0; index < list->count; index++) {
        uint32_t other_size;
        const char *other = s_bson_text (list->documents [index], "conv", &other_size);
        if (other_size == size && memcmp (other, conv, size) == 0)
            list->unread [index] = s_bson_int (document, "n", 0);
    }
}

//  Counts the messages to the user above the user's marker in each listed
//  conversation that has any: one aggregation, a range of (conv, seq) per
//  conversation. Returns 0, or -1 with error set.
static int
s_count_unread (store_t *self, s_conversations_t *list, bson_error_t *error)
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
        int64_t marker = s_bson_int (conversation, first ? "read_a" : "read_b", 0);
        if (s_bson_int (conversation, "last_seq", 0) <= marker)
            continue;           //  nothing above the marker
        uint32_t size, name_size;
        const char *conv = s_bson_text (conversation, "conv", &size);
        const char *name = s_bson_text (conversation, first ? "names.0" : "names.1",
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

//  Packs {conversations, more}: the newest conversations of list whose
//  entries fit in S_REPLY_BUDGET (each carries its last message), at least one
static void
s_pack_conversations (msgpack_packer *packer, s_conversations_t *list)
{
    msgpack_sbuffer rows;
    msgpack_sbuffer_init (&rows);
    msgpack_packer row_packer;
    msgpack_packer_init (&row_packer, &rows, msgpack_sbuffer_write);
    uint32_t count = 0;
    for (; count < list->count; count++) {
        const bson_t *conversation = list->documents [count];
        bool first = s_is_first_user (conversation, list->key);
        bson_iter_t iter;
        bson_t last = BSON_INITIALIZER;
        if (s_bson_at (conversation, "last", &iter) && BSON_ITER_HOLDS_DOCUMENT (&iter)) {
            uint32_t size;
            const uint8_t *data;
            bson_iter_document (&iter, &size, &data);
            bson_destroy (&last);
            bson_init_static (&last, data, size);
        }
        size_t start = rows.size;
        msgpack_pack_map (&row_packer, 3);
        s_pack_str (&row_packer, "with");
        s_pack_bson_text (&row_packer, conversation, first ? "names.1" : "names.0");
        s_pack_str (&row_packer, "last");
        s_pack_pm_entry (&row_packer, &last);
        s_pack_str (&row_packer, "unread");
        msgpack_pack_uint64 (&row_packer, (uint64_t) list->unread [count]);
        bson_destroy (&last);
        if (count && rows.size > S_REPLY_BUDGET) {
            rows.size = start;
            break;
        }
    }
    msgpack_pack_map (packer, 2);
    s_pack_str (packer, "conversations");
    msgpack_pack_array (packer, count);
    packer->callback (packer->data, rows.data, rows.size);
    s_pack_str (packer, "more");
    if (count < list->count)
        msgpack_pack_true (packer);
    else
        msgpack_pack_false (packer);
    msgpack_sbuffer_destroy (&rows);
}

static int
s_run_pm_conversations (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                        bson_error_t *error)
{
    //  One range of the (users, last_ts, _id) index, newest first; a user
    //  who does not exist has none
    bson_t *filter = BCON_NEW ("users", BCON_UTF8 (pending->key));
    bson_t *opts = BCON_NEW ("sort", "{", "last_ts", BCON_INT32 (-1), "_id", BCON_INT32 (-1), "}",
                             "limit", BCON_INT64 ((int64_t) pending->limit),
                             "hint", BCON_UTF8 (S_CONVERSATIONS_INDEX));
    s_conversations_t list = { .capacity = pending->limit, .key = pending->key };
    list.documents = (bson_t **) calloc (list.capacity, sizeof (bson_t *));
    list.unread = (int64_t *) calloc (list.capacity, sizeof (int64_t));
    int rc = 0;
    if (!list.documents || !list.unread)
        s_fail (pending, "internal", "The store ran out of memory.");
    else {
        rc = s_find (self, self->conversations, filter, opts, s_on_conversation, &list, error);
        if (rc == 0)
            rc = s_count_unread (self, &list, error);
        if (rc == 0)
            s_pack_conversations (packer, &list);
    }
    for (uint32_t index = 0; index < list.count; index++)
        bson_destroy (list.documents [index]);
    free (list.documents);
    free (list.unread);
    bson_destroy (opts);
    bson_destroy (filter);
    return rc;
}
static int
s_run_pm_read (store_t *self, s_pending_t *pending, msgpack_packer *packer,
               bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("conv", BCON_UTF8 (pending->conv));
    bson_t conversation = BSON_INITIALIZER;
    int rc = s_find_one (self, self->conversations, filter, NULL, &conversation, error);
    int64_t unread = 0;
    if (rc == 0) {
        //  Without a conversation there is nothing to mark (a marker alone
        //  would not make one), but both users must exist
        s_user_name_t found [2];
        s_user_names_t names = { found, 0, 2 };
        rc = s_find_pm_users (self, pending, pending + 1, &names, error);
        if (rc == 0) {
            bool me = s_user_name_of (&names, pending->key) != NULL;
            if (!me || !s_user_name_of (&names, pending->peer_key))
                s_fail_no_pm_user (pending, !me);
        }
    }
    else
    if (rc == 1) {
        //  The conversation's two users exist: it was made with them
        rc = 0;
        bool first = s_is_first_user (&conversation, pending->key);
        const char *field = first ? "read_a" : "read_b";
        int64_t marker = s_bson_int (&conversation, field, 0);
        if ((int64_t) pending->seq > marker) {
            //  Conditional: a marker never goes back, whoever wrote last
            bson_t *selector = BCON_NEW ("conv", BCON_UTF8 (pending->conv),
                                         field, "{", "$lt", BCON_INT64 ((int64_t) pending->seq),
                                         "}");
            bson_t *update = BCON_NEW ("$set", "{", field,
                                       BCON_INT64 ((int64_t) pending->seq), "}");
            self->round_trips++;
            if (!mongoc_collection_update_one (self->conversations, selector, update, NULL,
                                               NULL, error))
                rc = -1;
            bson_destroy (update);
            bson_destroy (selector);
            marker = (int64_t) pending->seq;
        }
        if (rc == 0 && s_bson_int (&conversation, "last_seq", 0) > marker) {
            uint32_t name_size;
            const char *name = s_bson_text (&conversation, first ? "names.0" : "names.1",
                                            &name_size);
            bson_t count_filter = BSON_INITIALIZER, above;
            BSON_APPEND_UTF8 (&count_filter, "conv", pending->conv);
            BSON_APPEND_DOCUMENT_BEGIN (&count_filter, "seq", &above);
            BSON_APPEND_INT64 (&above, "$gt", marker);
            bson_append_document_end (&count_filter, &above);
            bson_append_utf8 (&count_filter, "to", 2, name, (int) name_size);
            self->round_trips++;
            unread = mongoc_collection_count_documents (self->pm_messages, &count_filter, NULL,
                                                        NULL, NULL, error);
            bson_destroy (&count_filter);
            if (unread < 0)
                rc = -1;
        }
    }
    if (rc == 0 && s_is_live (pending)) {
        msgpack_pack_map (packer, 1);
        s_pack_str (packer, "unread");
        msgpack_pack_uint64 (packer, (uint64_t) unread);
    }
    bson_destroy (&conversation);
    bson_destroy (filter);
    return rc;
}


//  --------------------------------------------------------------------------
//  Runs one request that is a round trip of its own. Returns 0, or -1 if
//  the server could not be reached.
static int
s_run_single (store_t *self, s_pending_t *pending)
{
    msgpack_packer packer;
    msgpack_packer_init (&packer, &pending->result, msgpack_sbuffer_write);
    bson_error_t error;
    int rc = -1;
    switch (pending->op) {
        case S_OP_INFO:
            rc = s_run_info (self, pending, &packer, &error);
            break;
        case S_OP_USER_GET:
            rc = s_run_user_get (self, pending, &packer, &error);
            break;
        case S_OP_USER_LIST:
            rc = s_run_user_list (self, pending, &packer, &error);
            break;
        case S_OP_TOKEN_GET:
            rc = s_run_token_get (self, pending, &packer, &error);
            break;
        case S_OP_TOKEN_DELETE:
            rc = s_run_token_delete (self, pending, &packer, &error);
            break;
        case S_OP_TOKEN_DELETE_USER:
            rc = s_run_token_delete_user (self, pending, &packer, &error);
            break;
        case S_OP_TOKEN_PURGE:
            rc = s_run_token_purge (self, pending, &packer, &error);
            break;
        case S_OP_TOKEN_TOUCH:
            rc = s_run_token_touch (self, pending, &packer, &error);
            break;
        case S_OP_TOKEN_TRIM:
            rc = s_run_token_trim (self, pending, &packer, &error);
            break;
        case S_OP_ROOM_CREATE:
            rc = s_run_room_create (self, pending, &packer, &error);
            break;
        case S_OP_ROOM_GET:
            rc = s_run_room_get (self, pending, &packer, &error);
            break;
        case S_OP_ROOM_LIST:
            rc = s_run_room_list (self, pending, &packer, &error);
            break;
        case S_OP_ROOM_JOINED:
            rc = s_run_room_joined (self, pending, &packer, &error);
            break;
        case S_OP_ROOM_PUBLIC:
            rc = s_run_room_public (self, pending, &packer, &error);
            break;
        case S_OP_ROOM_DIRECTORY:
            rc = s_run_room_directory (self, pending, &packer, &error);
            break;
        case S_OP_ROOM_DELETE:
            rc = s_run_room_delete (self, pending, &packer, &error);
            break;
        case S_OP_MEMBER_ADD:
            rc = s_run_member_add (self, pending, &packer, &error);
            break;
        case S_OP_MEMBER_REMOVE:
            rc = s_run_member_remove (self, pending, &packer, &error);
            break;
        case S_OP_MEMBER_LIST:
            rc = s_run_member_list (self, pending, &packer, &error);
            break;
        case S_OP_INVITE_ADD:
            rc = s_run_invite_add (self, pending, &packer, &error);
            break;
        case S_OP_MSG_HISTORY:
            rc = s_run_msg_history (self, pending, &packer, &error);
            break;
        case S_OP_PM_LAST_SEQ:
            rc = s_run_pm_last_seq (self, pending, &packer, &error);
            break;
        case S_OP_PM_HISTORY:
            rc = s_run_pm_history (self, pending, &packer, &error);
            break;
        case S_OP_PM_CONVERSATIONS:
            rc = s_run_pm_conversations (self, pending, &packer, &error);
            break;
        case S_OP_PM_READ:
            rc = s_run_pm_read (self, pending, &packer, &error);
            break;
        case S_OP_USER_CREATE:
        case S_OP_USER_SEEN:
        case S_OP_TOKEN_PUT:
        case S_OP_MSG_APPEND:
        case S_OP_PM_APPEND:
            assert (false);     //  runs, see s_flush
            break;
    }
    if (rc == 0) {
        s_mark_reachable (self);
        return 0;
    }
    s_note_failure (self, s_ops [pending->op].type, &error);
    s_fail_unavailable (self, pending, &error);
    return s_is_unreachable (&error) ? -1 : 0;
}


//  --------------------------------------------------------------------------
//  The batch: runs and single requests in order, answers in order

static void
s_reply (store_t *self, s_pending_t *pending)
{
    if (pending->code)
        self->host->reply_error (self->ctx, &pending->request, pending->code, pending->message);
    else
        self->host->reply (self->ctx, &pending->request, pending->result.data,
                           pending->result.size);
    self->requests++;
    s_pending_reset (pending);
}

//  What a request adds to the documents its run sends, into the most a run
//  may send (bound_p): user.seen's entries, msg.append's entries and
//  pm.append's messages; 0 for the runs that only the batch bounds
static size_t
s_run_weight (const s_pending_t *pending, size_t *bound_p)
{
    switch (pending->op) {
        case S_OP_USER_SEEN:
            *bound_p = S_SEEN_RUN_MAX;
            return pending->users->via.array.size;
        case S_OP_MSG_APPEND:
        case S_OP_PM_APPEND:
            *bound_p = S_APPEND_RUN_MAX;
            return pending->entry_count;
        default:
            *bound_p = SIZE_MAX;
            return 0;
    }
}

//  The end of the run that starts at first: requests of the same kind, with
//  requests refused at validation among them (they touch nothing)
static s_pending_t *
s_run_end (s_pending_t *first, s_pending_t *limit)
{
    s_pending_t *end = first + 1;
    size_t bound;
    size_t weight = s_run_weight (first, &bound);
    for (; end < limit; end++) {
        if (!s_is_live (end))
            continue;
        if (end->op != first->op)
            break;
        weight += s_run_weight (end, &bound);
        if (weight > bound)
            break;
    }
    return end;
}

//  Applies and answers everything queued
static void
s_flush (store_t *self)
{
    if (self->pending_count == 0)
        return;
    self->batch_down = false;
    bson_error_t error;
    if (s_prepare (self, &error)) {
        s_note_failure (self, "creating the indexes", &error);
        if (!self->batch_down) {
            //  The server answered no: it cannot serve us as it is
            self->batch_down = true;
            self->down_error = error;
        }
    }
    s_pending_t *limit = self->pending + self->pending_count;
    s_pending_t *answered = self->pending;
    s_pending_t *pending = self->pending;
    while (pending < limit) {
        if (!s_is_live (pending)) {
            pending++;          //  refused at validation; its answer stands
            continue;
        }
        if (self->batch_down) {
            s_fail_unavailable (self, pending, &self->down_error);
            pending++;
            continue;
        }
        s_pending_t *end = pending + 1;
        switch (pending->op) {
            case S_OP_USER_CREATE:
                end = s_run_end (pending, limit);
                s_run_user_create (self, pending, end);
                break;
            case S_OP_TOKEN_PUT:
                end = s_run_end (pending, limit);
                s_run_token_put (self, pending, end);
                break;
            case S_OP_USER_SEEN:
                end = s_run_end (pending, limit);
                s_run_user_seen (self, pending, end);
                break;
            case S_OP_MSG_APPEND:
                end = s_run_end (pending, limit);
                s_run_msg_append (self, pending, end);
                break;
            case S_OP_PM_APPEND:
                end = s_run_end (pending, limit);
                s_run_pm_append (self, pending, end);
                break;
            default:
                s_run_single (self, pending);
                break;
        }
        //  What is decided goes out now, in order
        for (; answered < end; answered++)
            s_reply (self, answered);
        pending = end;
    }
    for (; answered < limit; answered++)
        s_reply (self, answered);
    self->pending_count = 0;
}


//  --------------------------------------------------------------------------
//  Starting: the URI, its defaults, the client

//  True while this thread parses a URI: libmongoc logs the reason it refuses
//  one and also returns it, and we say it once, naming the option
static _Thread_local bool s_quiet_driver;

//  libmongoc's own log: warnings and worse, except what we report ourselves
static void
s_driver_log (mongoc_log_level_t level, const char *domain, const char *message, void *arg)
{
    if (level <= MONGOC_LOG_LEVEL_WARNING && !s_quiet_driver)
        mongoc_log_default_handler (level, domain, message, arg);
}

//  Instances running in this process: the last one out gives libmongoc its
//  default log handler back, as ours goes away when the host unloads us
static atomic_int s_instances;

static void
s_instance_leaves (void)
{
    if (atomic_fetch_sub (&s_instances, 1) == 1)
        mongoc_log_set_handler (mongoc_log_default_handler, NULL);
    //  libmongoc initializes OpenSSL on the thread that loads it, ours,
    //  which leaves per-thread random generators behind. The host's thread
    //  ends after we return, detached, possibly while the process exits, and
    //  LeakSanitizer then finds them lost: free them while the thread is ours.
    OPENSSL_thread_stop ();
}

static void
s_store_free (store_t **self_p)
{
    store_t *self = *self_p;
    if (!self)
        return;
    if (self->users)
        mongoc_collection_destroy (self->users);
    if (self->tokens)
        mongoc_collection_destroy (self->tokens);
    if (self->rooms)
        mongoc_collection_destroy (self->rooms);
    if (self->messages)
        mongoc_collection_destroy (self->messages);
    if (self->pm_messages)
        mongoc_collection_destroy (self->pm_messages);
    if (self->conversations)
        mongoc_collection_destroy (self->conversations);
    if (self->client)
        mongoc_client_destroy (self->client);
    free (self->pending);
    free (self->database);
    free (self->where);
    free (self);
    *self_p = NULL;
    s_instance_leaves ();
}

//  Sets an int32 URI option to fallback unless the URI sets it
static void
s_uri_default (mongoc_uri_t *uri, const char *option, int32_t fallback)
{
    if (!mongoc_uri_has_option (uri, option))
        mongoc_uri_set_option_as_int32 (uri, option, fallback);
}

//  "host:port,host:port/database": the URI without credentials or options
static char *
s_describe (const mongoc_uri_t *uri, const char *database)
{
    char text [512] = "";
    size_t used = 0;
    const char *service = mongoc_uri_get_srv_hostname (uri);
    if (service)
        used = (size_t) snprintf (text, sizeof text, "srv:%s", service);
    else
        for (const mongoc_host_list_t *host = mongoc_uri_get_hosts (uri);
             host && used < sizeof text; host = host->next)
            used += (size_t) snprintf (text + used, sizeof text - used, "%s%s",
                                       used ? "," : "", host->host_and_port);
    if (used < sizeof text)
        snprintf (text + used, sizeof text - used, "/%s", database);
    return strdup (text);
}

static int
s_init (parley_ctx_t *ctx, const parley_host_t *host, void **state_p)
{
    //  Debian's libmongoc initializes itself when loaded; this call, once
    //  per loaded copy, does nothing more then. mongoc_cleanup is never
    //  called: it cannot be undone, and another instance may start later.
    mongoc_init ();
    if (atomic_fetch_add (&s_instances, 1) == 0)
        mongoc_log_set_handler (s_driver_log, NULL);
    store_t *self = (store_t *) calloc (1, sizeof (store_t));
    if (!self) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        s_instance_leaves ();
        return -1;
    }
    self->ctx = ctx;
    self->host = host;
    self->reachable = true;
    self->pending = (s_pending_t *) calloc (S_BATCH_MAX, sizeof (s_pending_t));
    if (!self->pending) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        s_store_free (&self);
        return -1;
    }
    const char *uri_text = host->option (ctx, "uri");
    if (!uri_text)
        uri_text = S_DEFAULT_URI;
    bson_error_t error;
    s_quiet_driver = true;
    mongoc_uri_t *uri = mongoc_uri_new_with_error (uri_text, &error);
    s_quiet_driver = false;
    if (!uri) {
        //  The URI itself is not logged: it may hold a password
        host->log (ctx, PARLEY_LOG_ERROR,
                   "option uri is not a usable MongoDB URI: %s (expected "
                   "mongodb://[user:password@]host[:port][,host...]/database[?options])",
                   error.message);
        s_store_free (&self);
        return -1;
    }
    const char *database = mongoc_uri_get_database (uri);
    self->database = strdup (database && *database ? database : S_DEFAULT_DATABASE);

    //  Acknowledged and journaled unless the URI says otherwise (w=majority
    //  for a replica set); never unacknowledged: an ok must mean written
    const mongoc_write_concern_t *given = mongoc_uri_get_write_concern (uri);
    if (mongoc_write_concern_get_w (given) == MONGOC_WRITE_CONCERN_W_UNACKNOWLEDGED) {
        host->log (ctx, PARLEY_LOG_ERROR,
                   "option uri asks for w=0, unacknowledged writes: the store answers ok only "
                   "for a write the server acknowledged; remove w=0 or use w=majority");
        mongoc_uri_destroy (uri);
        s_store_free (&self);
        return -1;
    }
    mongoc_write_concern_t *concern = mongoc_write_concern_copy (given);
    if (mongoc_write_concern_get_w (concern) == MONGOC_WRITE_CONCERN_W_DEFAULT)
        mongoc_write_concern_set_w (concern, 1);
    if (!mongoc_write_concern_journal_is_set (concern))
        mongoc_write_concern_set_journal (concern, true);
    mongoc_uri_set_write_concern (uri, concern);
    bool majority = mongoc_write_concern_get_wmajority (concern);
    int32_t w = mongoc_write_concern_get_w (concern);
    bool journal = mongoc_write_concern_get_journal (concern);
    mongoc_write_concern_destroy (concern);

    s_uri_default (uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, S_SERVER_SELECTION_MS);
    s_uri_default (uri, MONGOC_URI_CONNECTTIMEOUTMS, S_CONNECT_MS);
    s_uri_default (uri, MONGOC_URI_SOCKETTIMEOUTMS, S_SOCKET_MS);
    if (!mongoc_uri_get_appname (uri))
        mongoc_uri_set_appname (uri, "parley-store-mongo");
    self->where = s_describe (uri, self->database);
    int32_t selection_ms = mongoc_uri_get_option_as_int32 (
        uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, S_SERVER_SELECTION_MS);

    self->client = mongoc_client_new_from_uri_with_error (uri, &error);
    mongoc_uri_destroy (uri);
    if (!self->client || !self->where) {
        host->log (ctx, PARLEY_LOG_ERROR, "cannot create a MongoDB client from option uri: %s",
                   self->client ? "out of memory" : error.message);
        s_store_free (&self);
        return -1;
    }
    mongoc_client_set_error_api (self->client, MONGOC_ERROR_API_VERSION_2);
    self->users = mongoc_client_get_collection (self->client, self->database, "users");
    self->tokens = mongoc_client_get_collection (self->client, self->database, "tokens");
    self->rooms = mongoc_client_get_collection (self->client, self->database, "rooms");
    self->messages = mongoc_client_get_collection (self->client, self->database, "messages");
    self->pm_messages = mongoc_client_get_collection (self->client, self->database,
                                                      "pm_messages");
    self->conversations = mongoc_client_get_collection (self->client, self->database,
                                                        "conversations");

    //  A server that is down now may be up in a minute: serve unavailable
    //  meanwhile. A server that answers with an error (a login refused, an
    //  index that conflicts with ours) needs an operator: refuse to start.
    if (s_prepare (self, &error)) {
        if (!s_is_unreachable (&error) || (error.domain == MONGOC_ERROR_CLIENT
                                           && error.code == MONGOC_ERROR_CLIENT_AUTHENTICATE)) {
            host->log (ctx, PARLEY_LOG_ERROR, "MongoDB at %s refused to set up the store: %s",
                       self->where, error.message);
            s_store_free (&self);
            return -1;
        }
        host->log (ctx, PARLEY_LOG_WARNING,
                   "MongoDB at %s is unreachable (%s); starting all the same: store requests "
                   "are answered unavailable until it answers", self->where, error.message);
        self->reachable = false;
    }
    char concern_text [32];
    if (majority)
        snprintf (concern_text, sizeof concern_text, "majority");
    else
        snprintf (concern_text, sizeof concern_text, "%" PRId32, w);
    host->log (ctx, PARLEY_LOG_INFO,
               "serving %s (schema version %d, write concern w=%s j=%s, server selection "
               "timeout %" PRId32 " ms)", self->where, S_SCHEMA_VERSION, concern_text,
               journal ? "true" : "false", selection_ms);
    *state_p = self;
    return 0;
}

static void
s_destroy (void **state_p)
{
    store_t *self = (store_t *) *state_p;
    if (!self)
        return;
    //  What was queued still gets applied and answered
    s_flush (self);
    self->host->log (self->ctx, PARLEY_LOG_INFO,
                     "closing %s after %" PRIu64 " requests in %" PRIu64 " server operations",
                     self->where, self->requests, self->round_trips);
    s_store_free (&self);
    *state_p = NULL;
}

static void
s_on_request (void *state, parley_request_t *request)
{
    store_t *self = (store_t *) state;
    if (self->pending_count == S_BATCH_MAX)
        s_flush (self);

    const char *type = self->host->request_type (request);
    size_t op_index = 0;
    while (op_index < S_OP_COUNT && !(type && strcmp (type, s_ops [op_index].type) == 0))
        op_index++;
    if (op_index == S_OP_COUNT) {
        char message [160];
        snprintf (message, sizeof message, "store-mongo does not serve '%.64s'.",
                  type ? type : "");
        self->host->reply_error (self->ctx, &request, "unknown_type", message);
        return;
    }
    //  Queued even when invalid, so that answers keep the order received
    s_pending_t *pending = &self->pending [self->pending_count++];
    memset (pending, 0, sizeof *pending);
    pending->request = request;
    pending->op = s_ops [op_index].op;
    msgpack_unpacked_init (&pending->fields);
    msgpack_sbuffer_init (&pending->result);
    size_t size;
    const uint8_t *body = self->host->request_body (request, &size);
    s_validate (pending, body, size);
}

static void
s_on_batch_end (void *state)
{
    s_flush ((store_t *) state);
}


//  --------------------------------------------------------------------------
//  The descriptor

static const parley_route_t s_routes [] = {
    //  INTERNAL: only plugins call the store. SHARD_NONE: any instance may
    //  serve any request; per-caller order holds only with one instance
    //  (proto/STORE.md, Ordering), as for store-sqlite.
    { .prefix = "store.", .flags = PARLEY_ROUTE_INTERNAL, .shard = PARLEY_SHARD_NONE },
    { .prefix = NULL }
};

static const parley_plugin_t s_descriptor = {
    .abi_major = PARLEY_ABI_MAJOR,
    .abi_minor = PARLEY_ABI_MINOR,
    .size = sizeof (parley_plugin_t),
    .flags = 0,
    .name = "store-mongo",
    .version = "1.0.0",
    .description = "the store for clusters: proto/STORE.md on MongoDB, batched writes",
    .routes = s_routes,
    .init = s_init,
    .destroy = s_destroy,
    .on_request = s_on_request,
    .on_reply = NULL,
    .on_batch_end = s_on_batch_end,
    .on_session = NULL
};

PARLEY_PLUGIN_DEFINE (s_descriptor)
