/*  =========================================================================
    store-mongo - the store for clusters: proto/STORE.md on MongoDB

    Serves the store.* requests of proto/STORE.md from two collections of
    one MongoDB database, through one mongoc_client_t used only on this
    instance's own thread (calls block that thread, which exists for it):

        users   {_id: ObjectId, name, name_lower, password_hash, created_at,
                 last_seen}                       unique index on name_lower
        tokens  {_id: ObjectId, token_hash, user, created_at, expires_at}
                 unique index on token_hash; indexes on user and expires_at

    tokens.user is the owner's name as registered (names never change), so
    that store.token.get, the hot path of every login by token, is one find.

    Batching: on_request validates a request and queues it; on_batch_end
    applies the queue in the order received. A run of consecutive
    user.create, of token.put or of user.seen requests goes to the server
    together: one find for what the run needs to know (taken names, owners,
    known users), then one insert_many (unordered: each document's error
    comes back with its index, so every request gets its own answer) or one
    ordered bulk of updates. Every other request is one round trip. Answers
    go out in order, each after the server acknowledged its write.

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
#define S_SCHEMA_VERSION        1
//  Most requests queued before they are applied
#define S_BATCH_MAX             1024
//  Most user.seen entries sent to the server in one bulk
#define S_SEEN_RUN_MAX          4096
//  Bounds of the values of proto/STORE.md
#define S_NAME_MAX              256
#define S_HASH_MAX              1024
#define S_SEEN_MAX              1024
#define S_LIST_LIMIT_MAX        1000
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
    S_OP_TOKEN_PURGE
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
    { "store.token.purge",       S_OP_TOKEN_PURGE }
};
#define S_OP_COUNT (sizeof s_ops / sizeof s_ops [0])

//  A string borrowed from a request's body
typedef struct {
    const char *data;               //  not NUL-terminated
    uint32_t size;                  //  bytes
} s_text_t;

//  One queued request, validated, waiting for the batch to run
typedef struct {
    parley_request_t *request;      //  lent by the host until we reply
    s_op_t op;                      //  what it asks
    msgpack_unpacked fields;        //  owns what the fields below point into
    s_text_t name;                  //  name, after, or user for the token requests
    char key [S_NAME_MAX + 1];      //  name, lower-cased, NUL-terminated
    s_text_t hash;                  //  password_hash or token_hash
    int64_t created_at;             //  time fields
    int64_t expires_at;
    int64_t before;
    uint32_t limit;                 //  user.list
    const msgpack_object *users;    //  user.seen: the array, in fields
    uint32_t updated;               //  user.seen: entries that named a user
    char owner [S_NAME_MAX + 1];    //  token.put: the user as registered
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
            //  Say which entry: prefix the sentence we were given
            char reason [sizeof pending->message];
            memcpy (reason, pending->message, sizeof reason);
            snprintf (pending->message, sizeof pending->message, "Entry %u of 'users': %.120s",
                      index, reason);
            return -1;
        }
    }
    pending->users = users;
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
        "]");
    self->round_trips += 2;
    ok = mongoc_database_write_command_with_opts (database, users, NULL, NULL, error)
      && mongoc_database_write_command_with_opts (database, tokens, NULL, NULL, error);
    bson_destroy (users);
    bson_destroy (tokens);
    mongoc_database_destroy (database);
    if (!ok)
        return -1;
    self->prepared = true;
    self->host->log (self->ctx, PARLEY_LOG_INFO,
                     "MongoDB at %s: indexes on users and tokens are in place", self->where);
    return 0;
}


//  --------------------------------------------------------------------------
//  Runs of writes that go to the server together

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
        if (match->code && strcmp (match->code, "conflict") == 0) {
            if (pending->op == S_OP_USER_CREATE)
                s_fail (pending, "conflict", "The name '%.*s' is taken (names ignore case).",
                        (int) pending->name.size, pending->name.data);
            else
                s_fail (pending, "conflict", "This token hash is stored already.");
        }
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
                if (pending->op == S_OP_USER_CREATE)
                    s_fail (pending, "conflict", "The name '%.*s' is taken (names ignore case).",
                            (int) pending->name.size, pending->name.data);
                else
                    s_fail (pending, "conflict", "This token hash is stored already.");
                break;
            }
        }
    }
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
            bson_iter_t iter, errors;
            if (bson_iter_init_find (&iter, &reply, "writeErrors")
            &&  BSON_ITER_HOLDS_ARRAY (&iter) && bson_iter_recurse (&iter, &errors)) {
                while (bson_iter_next (&errors)) {
                    bson_t entry;
                    uint32_t size;
                    const uint8_t *data;
                    if (!BSON_ITER_HOLDS_DOCUMENT (&errors))
                        continue;
                    bson_iter_document (&errors, &size, &data);
                    if (!bson_init_static (&entry, data, size))
                        continue;
                    bson_iter_t field;
                    int64_t index = -1, code = 0;
                    if (bson_iter_init_find (&field, &entry, "index"))
                        index = bson_iter_as_int64 (&field);
                    if (bson_iter_init_find (&field, &entry, "code"))
                        code = bson_iter_as_int64 (&field);
                    if (index < 0 || (size_t) index >= count)
                        continue;
                    s_pending_t *pending = owners [index];
                    bson_error_t own = { .domain = MONGOC_ERROR_SERVER, .code = (uint32_t) code };
                    s_copy_bson_str (&entry, "errmsg", own.message, sizeof own.message);
                    if (s_is_duplicate_key (&own)) {
                        if (pending->op == S_OP_USER_CREATE)
                            s_fail (pending, "conflict",
                                    "The name '%.*s' is taken (names ignore case).",
                                    (int) pending->name.size, pending->name.data);
                        else
                            s_fail (pending, "conflict", "This token hash is stored already.");
                    }
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

static int
s_run_token_delete_user (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                         bson_error_t *error)
{
    //  Tokens hold the name as registered: find it first
    bson_t *filter = BCON_NEW ("name_lower", BCON_UTF8 (pending->key));
    bson_t *projection = BCON_NEW ("name", BCON_INT32 (1));
    bson_t found = BSON_INITIALIZER;
    int rc = s_find_one (self, self->users, filter, projection, &found, error);
    bson_destroy (projection);
    bson_destroy (filter);
    if (rc == 0) {
        msgpack_pack_map (packer, 1);
        s_pack_str (packer, "deleted");
        msgpack_pack_uint32 (packer, 0);
    }
    else
    if (rc == 1) {
        char owner [S_NAME_MAX + 1];
        s_copy_bson_str (&found, "name", owner, sizeof owner);
        bson_t *selector = BCON_NEW ("user", BCON_UTF8 (owner));
        rc = s_delete_counted (self, selector, packer, error);
        bson_destroy (selector);
    }
    bson_destroy (&found);
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
        case S_OP_USER_CREATE:
        case S_OP_USER_SEEN:
        case S_OP_TOKEN_PUT:
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

//  The end of the run that starts at first: requests of the same kind, with
//  requests refused at validation among them (they touch nothing)
static s_pending_t *
s_run_end (s_pending_t *first, s_pending_t *limit)
{
    s_pending_t *end = first + 1;
    size_t entries = first->op == S_OP_USER_SEEN ? first->users->via.array.size : 0;
    for (; end < limit; end++) {
        if (!s_is_live (end))
            continue;
        if (end->op != first->op)
            break;
        if (end->op == S_OP_USER_SEEN) {
            entries += end->users->via.array.size;
            if (entries > S_SEEN_RUN_MAX)
                break;
        }
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
