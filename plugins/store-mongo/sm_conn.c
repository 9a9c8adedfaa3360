/*  =========================================================================
    sm_conn - store-mongo's instance: the client, the indexes, the server's errors
    =========================================================================
*/

#include "sm_store.h"
#include "sm_common.h"
#include "st_reply.h"
#include "sm_conn.h"
#include "sm_words.h"
#include "sm_gridfs.h"
#include "pl_options.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <stdatomic.h>

//  --------------------------------------------------------------------------
//  Errors from the server: which mean it cannot be reached

//  The server is out of reach: no server to select, a broken or timed-out
//  connection, a failed handshake or login
bool
sm_is_unreachable (const bson_error_t *error)
{
    return error->domain == MONGOC_ERROR_SERVER_SELECTION
        || error->domain == MONGOC_ERROR_STREAM
        || (error->domain == MONGOC_ERROR_CLIENT
            && error->code == MONGOC_ERROR_CLIENT_AUTHENTICATE);
}

bool
sm_is_duplicate_key (const bson_error_t *error)
{
    return (error->domain == MONGOC_ERROR_SERVER || error->domain == MONGOC_ERROR_COLLECTION
         || error->domain == MONGOC_ERROR_QUERY || error->domain == MONGOC_ERROR_COMMAND)
        && (error->code == SM_DUPLICATE_KEY || error->code == SM_DUPLICATE_KEY_OLD);
}

//  The server answered: say so once, if it had been unreachable
void
sm_mark_reachable (sm_store_t *self)
{
    if (!self->reachable) {
        self->host->log (self->ctx, PARLEY_LOG_INFO, "MongoDB at %s answers again", self->where);
        self->reachable = true;
    }
}

//  An operation failed. If the server is out of reach the rest of the batch
//  is not tried; the change is logged once. Other failures are logged each.
void
sm_note_failure (sm_store_t *self, const char *what, const bson_error_t *error)
{
    if (sm_is_unreachable (error)) {
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

void
sm_fail_unavailable (sm_store_t *self, sm_pending_t *pending, const bson_error_t *error)
{
    if (sm_is_unreachable (error))
        sm_fail (pending, "unavailable", "The store cannot reach its database: %.140s",
                 error->message);
    else
        sm_fail (pending, "unavailable", "The store's database failed: %.140s", error->message);
}


//  Rooms stored before schema 4 have no active_at: they take the epoch, so
//  that they sort after every room active since (until their next message)
static int
s_prepare_active_at (sm_store_t *self, bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("active_at", "{", "$exists", BCON_BOOL (false), "}");
    bson_t *update = BCON_NEW ("$set", "{", "active_at", BCON_DATE_TIME (0), "}");
    self->round_trips++;
    bool ok = mongoc_collection_update_many (self->rooms, filter, update, NULL, NULL, error);
    bson_destroy (update);
    bson_destroy (filter);
    return ok ? 0 : -1;
}

//  The createIndexes command of each collection; caller destroys it

//  users: the unique lower-cased name
static bson_t *
s_indexes_users (void)
{
    return BCON_NEW (
        "createIndexes", BCON_UTF8 ("users"),
        "indexes", "[",
            "{", "key", "{", "name_lower", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("name_lower_unique"), "unique", BCON_BOOL (true), "}",
        "]");
}

//  tokens: the unique hash; a user's, expired, a user's by last use
static bson_t *
s_indexes_tokens (void)
{
    return BCON_NEW (
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
}

//  rooms: the unique lower-cased name;
//  users: the rooms a user belongs to, by name, for room.list and the
//  joined quota (multikey); owner: the owned quota; invited: the private
//  rooms a user is invited to, by name (multikey); the public rooms
//  by activity (room.list) and by name (room.directory)
static bson_t *
s_indexes_rooms (void)
{
    return BCON_NEW (
        "createIndexes", BCON_UTF8 ("rooms"),
        "indexes", "[",
            "{", "key", "{", "name_lower", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("name_lower_unique"), "unique", BCON_BOOL (true), "}",
            "{", "key", "{", "users", BCON_INT32 (1), "}", "name", BCON_UTF8 ("users"), "}",
            "{", "key", "{", "users", BCON_INT32 (1), "name_lower", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("users_name_lower"), "}",
            "{", "key", "{", "owner", BCON_INT32 (1), "}", "name", BCON_UTF8 ("owner"), "}",
            "{", "key", "{", "invited", BCON_INT32 (1), "name_lower", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("invited_name_lower"), "}",
            "{", "key", "{", "metadata.settings.is_private", BCON_INT32 (1),
                              "active_at", BCON_INT32 (-1), "name_lower", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("public_by_active"), "}",
            "{", "key", "{", "metadata.settings.is_private", BCON_INT32 (1),
                              "name_lower", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("public_by_name"), "}",
        "]");
}

//  messages: a room's timeline, (room, seq) unique, and a sender's nonces;
//  the members each message mentions, for the mentions after a read marker
//  (multikey)
static bson_t *
s_indexes_messages (void)
{
    return BCON_NEW (
        "createIndexes", BCON_UTF8 ("messages"),
        "indexes", "[",
            "{", "key", "{", "room", BCON_INT32 (1), "seq", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 (SM_TIMELINE_INDEX), "unique", BCON_BOOL (true), "}",
            "{", "key", "{", "room", BCON_INT32 (1), "sender", BCON_INT32 (1),
                              "nonce", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 (SM_NONCE_INDEX), "unique", BCON_BOOL (true),
                 "partialFilterExpression", "{", "nonce", "{", "$exists", BCON_BOOL (true),
                 "}", "}", "}",
            "{", "key", "{", "room", BCON_INT32 (1), "mentioned", BCON_INT32 (1),
                              "seq", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 (SM_MENTIONS_INDEX), "}",
            "{", "key", "{", "words", BCON_INT32 (1), "room", BCON_INT32 (1),
                              "ts", BCON_INT32 (-1), "}",
                 "name", BCON_UTF8 (SM_WORDS_INDEX), "}",
            "{", "key", "{", "file.id", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 (SM_FILE_REF_INDEX),
                 "partialFilterExpression", "{", "file.id", "{", "$exists", BCON_BOOL (true),
                 "}", "}", "}",
        "]");
}

//  pm_messages: a conversation's messages, (conv, seq) unique, and a sender's nonces
static bson_t *
s_indexes_pm_messages (void)
{
    return BCON_NEW (
        "createIndexes", BCON_UTF8 ("pm_messages"),
        "indexes", "[",
            "{", "key", "{", "conv", BCON_INT32 (1), "seq", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 (SM_PM_INDEX), "unique", BCON_BOOL (true), "}",
            "{", "key", "{", "conv", BCON_INT32 (1), "sender", BCON_INT32 (1),
                              "nonce", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 (SM_PM_NONCE_INDEX), "unique", BCON_BOOL (true),
                 "partialFilterExpression", "{", "nonce", "{", "$exists", BCON_BOOL (true),
                 "}", "}", "}",
            "{", "key", "{", "words", BCON_INT32 (1), "conv", BCON_INT32 (1),
                              "ts", BCON_INT32 (-1), "}",
                 "name", BCON_UTF8 (SM_PM_WORDS_INDEX), "}",
            "{", "key", "{", "file.id", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 (SM_FILE_REF_INDEX),
                 "partialFilterExpression", "{", "file.id", "{", "$exists", BCON_BOOL (true),
                 "}", "}", "}",
        "]");
}

//  conversations: one per pair, unique;
//  users: a user's conversations, newest first (multikey)
static bson_t *
s_indexes_conversations (void)
{
    return BCON_NEW (
        "createIndexes", BCON_UTF8 ("conversations"),
        "indexes", "[",
            "{", "key", "{", "conv", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("conv_unique"), "unique", BCON_BOOL (true), "}",
            "{", "key", "{", "users", BCON_INT32 (1), "last_ts", BCON_INT32 (-1),
                              "_id", BCON_INT32 (-1), "}",
                 "name", BCON_UTF8 (SM_CONVERSATIONS_INDEX), "}",
        "]");
}

//  markers: a member's read marker of a room, (room, user) unique
static bson_t *
s_indexes_markers (void)
{
    return BCON_NEW (
        "createIndexes", BCON_UTF8 ("markers"),
        "indexes", "[",
            "{", "key", "{", "room", BCON_INT32 (1), "user", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("room_user_unique"), "unique", BCON_BOOL (true), "}",
        "]");
}

//  meta: one document per key (the schema version's is "schema")
static bson_t *
s_indexes_meta (void)
{
    return BCON_NEW (
        "createIndexes", BCON_UTF8 ("meta"),
        "indexes", "[",
            "{", "key", "{", "key", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("key_unique"), "unique", BCON_BOOL (true), "}",
        "]");
}

//  files: the unique id; a user's files (the quota); by creation (the
//  sweep). Their bytes are in the GridFS bucket (sm_gridfs.h).
static bson_t *
s_indexes_files (void)
{
    return BCON_NEW (
        "createIndexes", BCON_UTF8 ("files"),
        "indexes", "[",
            "{", "key", "{", "id", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("id_unique"), "unique", BCON_BOOL (true), "}",
            "{", "key", "{", "user_key", BCON_INT32 (1), "}", "name", BCON_UTF8 ("user_key"), "}",
            "{", "key", "{", "ts", BCON_INT32 (1), "}", "name", BCON_UTF8 ("ts"), "}",
        "]");
}

//  The schema version the database is at (0 for one that never said),
//  into *version_p. Returns 0, or -1 with error set.
static int
s_schema_read (sm_store_t *self, int64_t *version_p, bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("key", BCON_UTF8 ("schema"));
    bson_t found = BSON_INITIALIZER;
    int rc = sm_find_one (self, self->meta, filter, NULL, &found, error);
    *version_p = rc == 1 ? sm_bson_int (&found, "version", 0) : 0;
    bson_destroy (&found);
    bson_destroy (filter);
    return rc < 0 ? -1 : 0;
}

//  The migrations that fill documents, after the indexes: 12, the words of
//  the messages stored before; 15, the files' bytes from schema 13's
//  file_chunks into the GridFS bucket (14 is store-sqlite's alone).
//  Versions before 12 kept no record (their fields are read with
//  defaults), so a database without one runs them all. A database of a newer version is refused. Returns 0, or -1 with
//  error set (then the next batch tries again).
static int
s_migrate (sm_store_t *self, bson_error_t *error)
{
    int64_t version;
    if (s_schema_read (self, &version, error))
        return -1;
    if (version > SM_SCHEMA_VERSION) {
        bson_set_error (error, MONGOC_ERROR_COMMAND, MONGOC_ERROR_COMMAND_INVALID_ARG,
                        "the database is at schema version %lld; this store-mongo knows "
                        "up to %d", (long long) version, SM_SCHEMA_VERSION);
        return -1;
    }
    if (version == SM_SCHEMA_VERSION)
        return 0;
    if (version < 12 && sm_words_fill (self, error))
        return -1;
    if (version < 15 && sm_gridfs_migrate (self, error))
        return -1;
    bson_t *selector = BCON_NEW ("key", BCON_UTF8 ("schema"));
    bson_t *update = BCON_NEW ("$set", "{", "version", BCON_INT64 (SM_SCHEMA_VERSION), "}");
    bson_t *opts = BCON_NEW ("upsert", BCON_BOOL (true));
    self->round_trips++;
    bool ok = mongoc_collection_update_one (self->meta, selector, update, opts, NULL, error);
    bson_destroy (opts);
    bson_destroy (update);
    bson_destroy (selector);
    return ok ? 0 : -1;
}

//  Pings the server and creates the indexes, once. Returns 0, or -1 with
//  error set.
int
sm_prepare (sm_store_t *self, bson_error_t *error)
{
    if (self->prepared)
        return 0;
    bson_t *ping = BCON_NEW ("ping", BCON_INT32 (1));
    self->round_trips++;
    bool ok = mongoc_client_command_simple (self->client, "admin", ping, NULL, NULL, error);
    bson_destroy (ping);
    if (!ok)
        return -1;

    bson_t *(*const indexes []) (void) = {
        s_indexes_users, s_indexes_tokens, s_indexes_rooms,
        s_indexes_messages, s_indexes_pm_messages, s_indexes_conversations,
        s_indexes_markers, s_indexes_meta, s_indexes_files,
        sm_gridfs_files_indexes, sm_gridfs_chunks_indexes
    };
    mongoc_database_t *database = mongoc_client_get_database (self->client, self->database);
    for (size_t index = 0; ok && index < sizeof indexes / sizeof indexes [0]; index++) {
        bson_t *command = indexes [index] ();
        self->round_trips++;
        ok = mongoc_database_write_command_with_opts (database, command, NULL, NULL, error);
        bson_destroy (command);
    }
    mongoc_database_destroy (database);
    if (!ok || s_prepare_active_at (self, error) || s_migrate (self, error))
        return -1;
    self->prepared = true;
    self->host->log (self->ctx, PARLEY_LOG_INFO,
                     "MongoDB at %s: indexes on users, tokens, rooms, messages, pm_messages, "
                     "conversations, markers, meta, files, fs.files and fs.chunks are in place "
                     "(schema version %d)", self->where, SM_SCHEMA_VERSION);
    return 0;
}


int
sm_run_info (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer, bson_error_t *error)
{
    //  Asks the server, so that info says whether the store can serve
    bson_t *ping = BCON_NEW ("ping", BCON_INT32 (1));
    self->round_trips++;
    bool ok = mongoc_client_command_simple (self->client, "admin", ping, NULL, NULL, error);
    bson_destroy (ping);
    if (!ok)
        return -1;
    (void) packer;
    st_reply_info (pending->request, "mongo", SM_SCHEMA_VERSION);
    return 0;
}

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

void
sm_store_destroy (sm_store_t **self_p)
{
    sm_store_t *self = *self_p;
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
    if (self->markers)
        mongoc_collection_destroy (self->markers);
    if (self->meta)
        mongoc_collection_destroy (self->meta);
    if (self->files)
        mongoc_collection_destroy (self->files);
    if (self->fs_files)
        mongoc_collection_destroy (self->fs_files);
    if (self->fs_chunks)
        mongoc_collection_destroy (self->fs_chunks);
    if (self->file_chunks)
        mongoc_collection_destroy (self->file_chunks);
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

//  Acknowledged and journaled unless the URI says otherwise (w=majority
//  for a replica set); never unacknowledged: an ok must mean written.
//  Describes the concern into text ("w=1 j=true"). Returns 0, or -1 after
//  logging why.
static int
s_uri_concern (sm_store_t *self, mongoc_uri_t *uri, char *text, size_t size)
{
    const mongoc_write_concern_t *given = mongoc_uri_get_write_concern (uri);
    if (mongoc_write_concern_get_w (given) == MONGOC_WRITE_CONCERN_W_UNACKNOWLEDGED) {
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "option uri asks for w=0, unacknowledged writes: the store answers ok "
                         "only for a write the server acknowledged; remove w=0 or use w=majority");
        return -1;
    }
    mongoc_write_concern_t *concern = mongoc_write_concern_copy (given);
    if (mongoc_write_concern_get_w (concern) == MONGOC_WRITE_CONCERN_W_DEFAULT)
        mongoc_write_concern_set_w (concern, 1);
    if (!mongoc_write_concern_journal_is_set (concern))
        mongoc_write_concern_set_journal (concern, true);
    mongoc_uri_set_write_concern (uri, concern);
    const char *journal = mongoc_write_concern_get_journal (concern) ? "true" : "false";
    if (mongoc_write_concern_get_wmajority (concern))
        snprintf (text, size, "w=majority j=%s", journal);
    else
        snprintf (text, size, "w=%" PRId32 " j=%s", mongoc_write_concern_get_w (concern),
                  journal);
    mongoc_write_concern_destroy (concern);
    return 0;
}

//  Option uri, parsed, with our defaults for what it does not set; the
//  database's name into self. Returns the URI (caller owns it), or NULL
//  after logging why.
static mongoc_uri_t *
s_uri_open (sm_store_t *self, char *concern, size_t size)
{
    const char *uri_text = self->host->option (self->ctx, "uri");
    if (!uri_text)
        uri_text = SM_DEFAULT_URI;
    bson_error_t error;
    s_quiet_driver = true;
    mongoc_uri_t *uri = mongoc_uri_new_with_error (uri_text, &error);
    s_quiet_driver = false;
    if (!uri) {
        //  The URI itself is not logged: it may hold a password
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "option uri is not a usable MongoDB URI: %s (expected "
                         "mongodb://[user:password@]host[:port][,host...]/database[?options])",
                         error.message);
        return NULL;
    }
    const char *database = mongoc_uri_get_database (uri);
    self->database = strdup (database && *database ? database : SM_DEFAULT_DATABASE);
    if (s_uri_concern (self, uri, concern, size)) {
        mongoc_uri_destroy (uri);
        return NULL;
    }
    s_uri_default (uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, SM_SERVER_SELECTION_MS);
    s_uri_default (uri, MONGOC_URI_CONNECTTIMEOUTMS, SM_CONNECT_MS);
    s_uri_default (uri, MONGOC_URI_SOCKETTIMEOUTMS, SM_SOCKET_MS);
    //  libmongoc's default already, said here so that a reader of this
    //  function sees every option a write's fate depends on: on a replica
    //  set, a write that fails for a primary change is sent once more to the
    //  new primary (found within serverSelectionTimeoutMS), with the same
    //  transaction number, so the server applies it at most once.
    if (!mongoc_uri_has_option (uri, MONGOC_URI_RETRYWRITES))
        mongoc_uri_set_option_as_bool (uri, MONGOC_URI_RETRYWRITES, true);
    if (!mongoc_uri_get_appname (uri))
        mongoc_uri_set_appname (uri, "parley-store-mongo");
    return uri;
}

//  The client and its collections. Returns 0, or -1 after logging why.
static int
s_client_open (sm_store_t *self, const mongoc_uri_t *uri)
{
    bson_error_t error;
    self->where = s_describe (uri, self->database);
    self->client = mongoc_client_new_from_uri_with_error (uri, &error);
    if (!self->client || !self->where) {
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "cannot create a MongoDB client from option uri: %s",
                         self->client ? "out of memory" : error.message);
        return -1;
    }
    mongoc_client_set_error_api (self->client, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_t *client = self->client;
    const char *database = self->database;
    self->users = mongoc_client_get_collection (client, database, "users");
    self->tokens = mongoc_client_get_collection (client, database, "tokens");
    self->rooms = mongoc_client_get_collection (client, database, "rooms");
    self->messages = mongoc_client_get_collection (client, database, "messages");
    self->pm_messages = mongoc_client_get_collection (client, database, "pm_messages");
    self->conversations = mongoc_client_get_collection (client, database, "conversations");
    self->markers = mongoc_client_get_collection (client, database, "markers");
    self->meta = mongoc_client_get_collection (client, database, "meta");
    self->files = mongoc_client_get_collection (client, database, "files");
    self->fs_files = mongoc_client_get_collection (client, database, SM_GRIDFS_FILES);
    self->fs_chunks = mongoc_client_get_collection (client, database, SM_GRIDFS_CHUNKS);
    self->file_chunks = mongoc_client_get_collection (client, database, "file_chunks");
    return 0;
}

//  A server that is down now may be up in a minute: serve unavailable
//  meanwhile. A server that answers with an error (a login refused, an
//  index that conflicts with ours) needs an operator: refuse to start.
//  Returns 0, or -1 after logging why.
static int
s_first_contact (sm_store_t *self)
{
    bson_error_t error;
    if (sm_prepare (self, &error) == 0)
        return 0;
    if (!sm_is_unreachable (&error) || (error.domain == MONGOC_ERROR_CLIENT
                                        && error.code == MONGOC_ERROR_CLIENT_AUTHENTICATE)) {
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "MongoDB at %s refused to set up the store: %s", self->where,
                         error.message);
        return -1;
    }
    self->host->log (self->ctx, PARLEY_LOG_WARNING,
                     "MongoDB at %s is unreachable (%s); starting all the same: store requests "
                     "are answered unavailable until it answers", self->where, error.message);
    self->reachable = false;
    return 0;
}

sm_store_t *
sm_store_new (parley_ctx_t *ctx, const parley_host_t *host)
{
    //  Debian's libmongoc initializes itself when loaded; this call, once
    //  per loaded copy, does nothing more then. mongoc_cleanup is never
    //  called: it cannot be undone, and another instance may start later.
    mongoc_init ();
    if (atomic_fetch_add (&s_instances, 1) == 0)
        mongoc_log_set_handler (s_driver_log, NULL);
    sm_store_t *self = (sm_store_t *) calloc (1, sizeof (sm_store_t));
    if (!self) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        s_instance_leaves ();
        return NULL;
    }
    self->ctx = ctx;
    self->host = host;
    self->reachable = true;
    self->pending = (sm_pending_t *) calloc (SM_BATCH_MAX, sizeof (sm_pending_t));
    if (!self->pending) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        sm_store_destroy (&self);
        return NULL;
    }
    pl_options_t options = pl_options (host, ctx, "store-mongo");
    self->chunk_size = (int32_t) pl_options_uint (&options, "file_chunk_size",
                                                  SM_CHUNK_SIZE_DEFAULT, SM_CHUNK_SIZE_MIN,
                                                  SM_CHUNK_SIZE_MAX);
    if (pl_options_refused (&options)) {
        sm_store_destroy (&self);
        return NULL;
    }
    char concern [48];
    mongoc_uri_t *uri = s_uri_open (self, concern, sizeof concern);
    int32_t selection_ms = uri ? mongoc_uri_get_option_as_int32 (
        uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, SM_SERVER_SELECTION_MS) : 0;
    int rc = uri ? s_client_open (self, uri) : -1;
    if (uri)
        mongoc_uri_destroy (uri);
    if (rc || s_first_contact (self)) {
        sm_store_destroy (&self);
        return NULL;
    }
    host->log (ctx, PARLEY_LOG_INFO,
               "serving %s (schema version %d, write concern %s, server selection timeout %"
               PRId32 " ms, file chunks of %" PRId32 " bytes)", self->where, SM_SCHEMA_VERSION,
               concern, selection_ms, self->chunk_size);
    return self;
}
