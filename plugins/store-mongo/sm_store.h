/*  =========================================================================
    sm_store - store-mongo's instance and its queued requests, shared by the
    plugin's files: the bounds, the request types, a queued request (its
    fields validated) and the instance's state (the client, the collections,
    the batch).
    =========================================================================
*/

#ifndef SM_STORE_H_INCLUDED
#define SM_STORE_H_INCLUDED

#include "parley_plugin.h"
#include "pl_envelope.h"

#include <mongoc/mongoc.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  store.info's schema_version: the collections and indexes above
#define SM_SCHEMA_VERSION        5
//  Most requests queued before they are applied
#define SM_BATCH_MAX             1024
//  Most user.seen entries sent to the server in one bulk
#define SM_SEEN_RUN_MAX          4096
//  Most timeline entries or private messages sent to the server in one
//  insert (up to 16 MB of text): a run of msg.append or of pm.append
//  requests ends before it would pass this
#define SM_APPEND_RUN_MAX        1024
//  Bounds of the values of proto/STORE.md
#define SM_NAME_MAX              256
#define SM_HASH_MAX              1024
#define SM_SEEN_MAX              1024
#define SM_LIST_LIMIT_MAX        1000
//  Tokens store.token.trim deletes at most in one request
#define SM_TRIM_MAX              1000
#define SM_KEEP_MAX              1000000
#define SM_ROOM_MAX              64
#define SM_DESCRIPTION_MAX       2000
#define SM_TEXT_MAX              16000
#define SM_ENTRIES_MAX           256
#define SM_HISTORY_DEFAULT       50
#define SM_CONVERSATIONS_DEFAULT 200
//  What the list of one answer may take, packed: an answer stays under the
//  envelope's body limit, with room for the rest of it (proto/STORE.md,
//  "Answers bounded by bytes")
#define SM_REPLY_BUDGET          (PL_ENVELOPE_MAX_BODY - 64 * 1024)
#define SM_PUBLIC_DEFAULT        200
#define SM_DIRECTORY_DEFAULT     50
//  How often member.add re-reads a room that changed between its checks
//  and its conditional update (another writer joined, left, deleted)
#define SM_JOIN_ATTEMPTS         3
//  The index that serves every timeline read and guards (room, seq)
#define SM_TIMELINE_INDEX        "room_seq_unique"
//  The index that serves every pm history page and unread count, and
//  guards (conv, seq); the one that serves pm.conversations
#define SM_PM_INDEX              "conv_seq_unique"
#define SM_CONVERSATIONS_INDEX   "users_last_ts"
//  Defaults for what the URI does not set: a cluster client that answers
//  unavailable within seconds rather than hang while the server is away.
//  Each blocking call stays under the 3 s after which the broker declares
//  a silent peer dead (proto/ENVELOPE.md, Heartbeats), and the answer comes
//  before the broker's own 5 s request timeout.
#define SM_DEFAULT_URI           "mongodb://127.0.0.1:27017/parley"
#define SM_DEFAULT_DATABASE      "parley"
#define SM_SERVER_SELECTION_MS   2000
#define SM_CONNECT_MS            2000
#define SM_SOCKET_MS             2500
//  MongoDB's duplicate key errors
#define SM_DUPLICATE_KEY         11000
#define SM_DUPLICATE_KEY_OLD     11001

//  The requests we serve
typedef enum {
    SM_OP_INFO,
    SM_OP_USER_CREATE,
    SM_OP_USER_GET,
    SM_OP_USER_LIST,
    SM_OP_USER_SEEN,
    SM_OP_TOKEN_PUT,
    SM_OP_TOKEN_GET,
    SM_OP_TOKEN_DELETE,
    SM_OP_TOKEN_DELETE_USER,
    SM_OP_TOKEN_PURGE,
    SM_OP_TOKEN_TOUCH,
    SM_OP_TOKEN_TRIM,
    SM_OP_ROOM_CREATE,
    SM_OP_ROOM_GET,
    SM_OP_ROOM_LIST,
    SM_OP_ROOM_JOINED,
    SM_OP_ROOM_PUBLIC,
    SM_OP_ROOM_DIRECTORY,
    SM_OP_ROOM_DELETE,
    SM_OP_MEMBER_ADD,
    SM_OP_MEMBER_REMOVE,
    SM_OP_MEMBER_LIST,
    SM_OP_INVITE_ADD,
    SM_OP_MSG_APPEND,
    SM_OP_MSG_HISTORY,
    SM_OP_PM_APPEND,
    SM_OP_PM_LAST_SEQ,
    SM_OP_PM_HISTORY,
    SM_OP_PM_CONVERSATIONS,
    SM_OP_PM_READ
} sm_op_t;

//  A string borrowed from a request's body
typedef struct {
    const char *data;               //  not NUL-terminated
    uint32_t size;                  //  bytes
} sm_text_t;

//  A timeline entry of a request, validated (proto/STORE.md, entry)
typedef struct {
    bool present;                   //  the request carries one
    uint64_t seq;                   //  1 or more
    bool system;                    //  kind "system", else "message"
    sm_text_t user;                  //  the sender, or whom a system entry is about
    int64_t ts;                     //  milliseconds since 1970
    sm_text_t text;                  //  a message's text, may be empty
    sm_text_t event;                 //  a system entry's event: join or leave
} sm_entry_t;

//  A private message of pm.append, validated (proto/STORE.md)
typedef struct {
    uint64_t seq;                   //  1 or more
    bool from_peer;                 //  sent by 'to', not 'from': a run may go both ways
    int64_t ts;                     //  milliseconds since 1970
    sm_text_t text;                  //  may be empty
} sm_pm_message_t;

//  Where msg.history starts
typedef enum {
    SM_CURSOR_NONE,                  //  the newest entries
    SM_CURSOR_BEFORE,                //  the newest with seq < cursor
    SM_CURSOR_AFTER                  //  the oldest with seq > cursor
} sm_cursor_t;

//  One queued request, validated, waiting for the batch to run
typedef struct {
    parley_request_t *request;      //  lent by the host until we reply
    sm_op_t op;                      //  what it asks
    msgpack_unpacked fields;        //  owns what the fields below point into
    sm_text_t name;                  //  name, after, user; pm: from or user
    char key [SM_NAME_MAX + 1];      //  name, lower-cased, NUL-terminated
    sm_text_t hash;                  //  password_hash or token_hash
    int64_t created_at;             //  time fields
    int64_t expires_at;
    int64_t before;
    uint32_t limit;                 //  user.list
    const msgpack_object *users;    //  user.seen: the array, in fields
    uint32_t updated;               //  user.seen: entries that named a user
    char owner [SM_NAME_MAX + 1];    //  token.put: the user as registered
    sm_text_t room;                  //  the room's name (name in room.*, room elsewhere)
    char room_key [SM_ROOM_MAX + 1]; //  the room's name, lower-cased
    sm_text_t description;           //  room.create, may be empty
    bool is_private;                //  room.create
    uint32_t max_participants;      //  room.create
    sm_entry_t entry;                //  member.add/remove; msg.append: the run's first
    const msgpack_object *entries;  //  msg.append's entry maps, pm.append's message maps
                                    //  (its own map for one message), in fields
    uint32_t entry_count;           //  msg.append, pm.append: how many, 1 to SM_ENTRIES_MAX
    bool room_found;                //  msg.append: its room exists; pm.append: its conversation
    sm_cursor_t cursor;              //  msg.history, pm.history
    uint64_t cursor_seq;            //  before or after
    sm_text_t peer;                  //  pm: to or with
    char peer_key [SM_NAME_MAX + 1]; //  peer, lower-cased
    char conv [2 * SM_NAME_MAX + 2]; //  pm: the conversation's key (see "Private messages")
    uint64_t seq;                   //  pm.append: the run's first; pm.read
    uint64_t keep;                  //  token.trim
    char from_name [SM_NAME_MAX + 1];    //  pm.append: 'from' as registered
    char to_name [SM_NAME_MAX + 1];      //  pm.append: 'to' as registered
    char after_key [SM_ROOM_MAX + 1];    //  room.joined/public/directory: the cursor's
                                        //  room, lower-cased; "" for none
    char prefix_key [SM_ROOM_MAX + 1];   //  room.directory: lower-cased; "" for none
    bool has_after_active;          //  room.public: the cursor's active_at is given
    int64_t after_active;
    uint64_t max_owned;             //  room.create: the owner's quota, 0 for none
    uint64_t max_joined;            //  room.create, member.add: the user's quota, 0 for none
    const char *code;               //  error code, NULL for ok
    char message [200];             //  error sentence
    msgpack_sbuffer result;         //  ok result map
} sm_pending_t;

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
    sm_pending_t *pending;           //  SM_BATCH_MAX slots
    size_t pending_count;           //  slots in use
    uint64_t requests;              //  requests answered, for the log
    uint64_t round_trips;           //  server operations, for the log
} sm_store_t;

#endif
