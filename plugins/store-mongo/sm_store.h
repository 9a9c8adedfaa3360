/*  =========================================================================
    sm_store - store-mongo's instance and the requests of a batch, shared by
    the plugin's files: its own bounds, a request's slot in the batch (the
    front's typed request and what the runs work out about it) and the
    instance's state (the client, the collections, the batch).
    =========================================================================
*/

#ifndef SM_STORE_H_INCLUDED
#define SM_STORE_H_INCLUDED

#include "parley_plugin.h"
#include "st_front.h"
#include "st_reply.h"
#include "st_request.h"

#include <mongoc/mongoc.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  store.info's schema_version: the collections and indexes above
#define SM_SCHEMA_VERSION        15
//  Most requests run as one batch: the front hands over ST_BATCH_MAX at most
#define SM_BATCH_MAX             ST_BATCH_MAX
//  Most user.seen entries sent to the server in one bulk
#define SM_SEEN_RUN_MAX          4096
//  Most timeline entries or private messages sent to the server in one
//  insert (up to 16 MB of text): a run of msg.append or of pm.append
//  requests ends before it would pass this
#define SM_APPEND_RUN_MAX        1024
//  How often member.add re-reads a room that changed between its checks
//  and its conditional update (another writer joined, left, deleted)
#define SM_JOIN_ATTEMPTS         3
//  The index that serves every timeline read and guards (room, seq)
#define SM_TIMELINE_INDEX        "room_seq_unique"
//  The index that serves every pm history page and unread count, and
//  guards (conv, seq); the one that serves pm.conversations
#define SM_PM_INDEX              "conv_seq_unique"
#define SM_CONVERSATIONS_INDEX   "users_last_ts"
//  The indexes that keep a sender's nonces unique in a room, and in a
//  conversation: partial, so that entries without a nonce are not in them
#define SM_NONCE_INDEX           "room_sender_nonce_unique"
#define SM_PM_NONCE_INDEX        "conv_sender_nonce_unique"
//  The index that counts the messages mentioning a member after its marker
#define SM_MENTIONS_INDEX        "room_mentioned_seq"
//  The multikey indexes of the messages' words (schema version 12)
#define SM_WORDS_INDEX           "words_room_ts"
#define SM_PM_WORDS_INDEX        "words_conv_ts"
//  The indexes of the messages that refer to a file (schema version 13):
//  partial, so that messages without a file are not in them
#define SM_FILE_REF_INDEX        "file_id"
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
//  A new file's GridFS chunk size (option file_chunk_size): the GridFS
//  spec's default, 255 KiB; the bounds of the option
#define SM_CHUNK_SIZE_DEFAULT    (255 * 1024)
#define SM_CHUNK_SIZE_MIN        1
#define SM_CHUNK_SIZE_MAX        (4 * 1024 * 1024)
//  MongoDB's duplicate key errors
#define SM_DUPLICATE_KEY         11000
#define SM_DUPLICATE_KEY_OLD     11001

//  One request of the batch: the front's typed request (validated) and
//  what the runs need of it, under the names they use
typedef struct {
    st_request_t *request;          //  the front's, borrowed for the run
    st_type_t op;                   //  what it asks
    st_text_t name;                 //  name, after, user, owner; pm: from or user
    char key [ST_NAME_MAX + 1];     //  name, lower-cased, NUL-terminated
    st_text_t hash;                 //  password_hash or token_hash
    st_text_t keep_hash;            //  user.set_password: the token kept, or none
    int64_t created_at;             //  time fields
    int64_t expires_at;
    int64_t before;                 //  token.purge; token.touch's at
    uint32_t limit;                 //  the lists' and pages' limit
    const st_seen_t *users;         //  user.seen's, in the request
    uint32_t user_count;
    uint32_t updated;               //  user.seen: entries that named a user
    char owner [ST_NAME_MAX + 1];   //  token.put: the user as registered
    st_text_t room;                 //  the room's name (name in room.*, room elsewhere)
    char room_key [ST_ROOM_MAX + 1];    //  the room's name, lower-cased
    st_text_t description;          //  room.create, may be empty
    bool is_private;                //  room.create
    uint32_t max_participants;      //  room.create
    bool has_entry;                 //  member.add/remove: a notice given; msg.append
    st_entry_t entry;               //  member.add/remove; msg.append: the run's first
    const st_entry_t *entries;      //  msg.append's, in the request
    const st_pm_message_t *messages;    //  pm.append's, in the request
    uint32_t entry_count;           //  msg.append, pm.append: how many, 1 to ST_RUN_MAX
    bool room_found;                //  msg.append: its room exists; pm.append: its conversation
    st_cursor_t cursor;             //  msg.history, pm.history
    uint64_t cursor_seq;            //  before or after
    st_text_t peer;                 //  pm: to or with
    char peer_key [ST_NAME_MAX + 1];    //  peer, lower-cased
    char conv [2 * ST_NAME_MAX + 2];    //  pm: the conversation's key (see sm_pm.c)
    uint64_t seq;                   //  pm.append: the run's first; pm.read
    uint64_t keep;                  //  token.trim
    char from_name [ST_NAME_MAX + 1];   //  pm.append: 'from' as registered
    char to_name [ST_NAME_MAX + 1];     //  pm.append: 'to' as registered
    char after_key [ST_ROOM_MAX + 1];   //  room.joined/public/directory: the cursor's
                                        //  room, lower-cased; "" for none
    char prefix_key [ST_ROOM_MAX + 1];  //  room.directory: lower-cased; "" for none
    bool has_after_active;          //  room.public: the cursor's active_at is given
    int64_t after_active;
    uint64_t max_owned;             //  room.create: the owner's quota, 0 for none
    uint64_t max_joined;            //  room.create, member.add: the user's quota, 0 for none
    st_text_t nonce;                //  msg.nonce, pm.nonce
    st_duplicate_t *duplicates;     //  msg.append, pm.append: its repeated nonces, owned
    uint32_t duplicate_count;       //  until answered
    bool repeated;                  //  answered with its duplicates: no longer live
    void *changes;                  //  msg.append, pm.append: the effects of its
                                    //  changes, queued (sm_changes.h), or NULL
    bool with_read_seq;             //  msg.history: a user is named, answer its read_seq
    uint64_t read_seq;              //  msg.history: that user's marker
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
    mongoc_collection_t *markers;   //  a member's read marker per room
    mongoc_collection_t *meta;      //  the schema version the database is at
    mongoc_collection_t *files;     //  an uploaded file's metadata (schema 13)
    mongoc_collection_t *fs_files;  //  the GridFS bucket of their bytes (schema 15):
    mongoc_collection_t *fs_chunks; //  a complete file's document, and every chunk
    mongoc_collection_t *file_chunks;   //  schema 13's bytes, read by the migration
    int32_t chunk_size;             //  a new file's GridFS chunk size
    char *database;                 //  the database's name
    bool prepared;                  //  indexes created
    bool reachable;                 //  last we knew, for logging changes once
    bool batch_down;                //  this batch met an unreachable server
    bson_error_t down_error;        //  and why
    sm_pending_t *pending;          //  SM_BATCH_MAX slots
    size_t pending_count;           //  slots in use
    uint64_t requests;              //  requests run, for the log
    uint64_t round_trips;           //  server operations, for the log
    st_stats_t *stats;              //  the front's figures, lent; NULL before
} sm_store_t;

#endif
