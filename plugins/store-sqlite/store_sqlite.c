/*  =========================================================================
    store-sqlite - the embedded store: proto/STORE.md on one SQLite file

    Serves the store.* requests of proto/STORE.md from a database file in WAL
    mode with synchronous=FULL, so that an ok is a committed, fsync'ed write.

    Group commit: on_request only validates a request and queues it; when the
    host has no more input waiting it calls on_batch_end, and the whole queue
    runs in ONE transaction (BEGIN IMMEDIATE ... COMMIT), each write inside a
    savepoint of its own so that one request failing (a conflict) does not
    undo the others. Answers go out only after COMMIT returned: a request is
    never acknowledged before it is durable. A queue that reaches S_BATCH_MAX
    is committed at once, which bounds both memory and latency.

    If COMMIT itself fails (disk full, I/O error), the transaction is rolled
    back and every request of the batch is answered unavailable.
    =========================================================================
*/

#include "parley_plugin.h"
#include "pl_envelope.h"

#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  The newest schema this code knows; see s_migrations
#define S_SCHEMA_VERSION        5
//  Most requests committed in one transaction
#define S_BATCH_MAX             1024
//  Bounds of the values of proto/STORE.md
#define S_NAME_MAX              256
#define S_HASH_MAX              1024
#define S_SEEN_MAX              1024
#define S_LIST_LIMIT_MAX        1000
//  Tokens store.token.trim deletes at most in one request
#define S_TRIM_MAX              1000
#define S_KEEP_MAX              1000000
#define S_BUSY_TIMEOUT_DEFAULT  5000
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
    bool writes;                    //  needs a savepoint
} s_ops [] = {
    { "store.info",              S_OP_INFO,              false },
    { "store.user.create",       S_OP_USER_CREATE,       true },
    { "store.user.get",          S_OP_USER_GET,          false },
    { "store.user.list",         S_OP_USER_LIST,         false },
    { "store.user.seen",         S_OP_USER_SEEN,         true },
    { "store.token.put",         S_OP_TOKEN_PUT,         true },
    { "store.token.get",         S_OP_TOKEN_GET,         false },
    { "store.token.delete",      S_OP_TOKEN_DELETE,      true },
    { "store.token.delete_user", S_OP_TOKEN_DELETE_USER, true },
    { "store.token.purge",       S_OP_TOKEN_PURGE,       true },
    { "store.token.touch",       S_OP_TOKEN_TOUCH,       true },
    { "store.token.trim",        S_OP_TOKEN_TRIM,        true },
    { "store.room.create",       S_OP_ROOM_CREATE,       true },
    { "store.room.get",          S_OP_ROOM_GET,          false },
    { "store.room.list",         S_OP_ROOM_LIST,         false },
    { "store.room.joined",       S_OP_ROOM_JOINED,       false },
    { "store.room.public",       S_OP_ROOM_PUBLIC,       false },
    { "store.room.directory",    S_OP_ROOM_DIRECTORY,    false },
    { "store.room.delete",       S_OP_ROOM_DELETE,       true },
    { "store.member.add",        S_OP_MEMBER_ADD,        true },
    { "store.member.remove",     S_OP_MEMBER_REMOVE,     true },
    { "store.member.list",       S_OP_MEMBER_LIST,       false },
    { "store.invite.add",        S_OP_INVITE_ADD,        true },
    { "store.msg.append",        S_OP_MSG_APPEND,        true },
    { "store.msg.history",       S_OP_MSG_HISTORY,       false },
    { "store.pm.append",         S_OP_PM_APPEND,         true },
    { "store.pm.last_seq",       S_OP_PM_LAST_SEQ,       false },
    { "store.pm.history",        S_OP_PM_HISTORY,        false },
    { "store.pm.conversations",  S_OP_PM_CONVERSATIONS,  false },
    { "store.pm.read",           S_OP_PM_READ,           true }
};
#define S_OP_COUNT (sizeof s_ops / sizeof s_ops [0])

//  The prepared statements, prepared once after migrations
typedef enum {
    S_SQL_BEGIN,
    S_SQL_COMMIT,
    S_SQL_ROLLBACK,
    S_SQL_SAVEPOINT,
    S_SQL_RELEASE,
    S_SQL_ROLLBACK_TO,
    S_SQL_USER_INSERT,
    S_SQL_USER_GET,
    S_SQL_USER_LIST,
    S_SQL_USER_SEEN,
    S_SQL_TOKEN_INSERT,
    S_SQL_TOKEN_GET,
    S_SQL_TOKEN_DELETE,
    S_SQL_TOKEN_DELETE_USER,
    S_SQL_TOKEN_PURGE,
    S_SQL_TOKEN_TOUCH,
    S_SQL_TOKEN_BEYOND,
    S_SQL_ROOM_INSERT,
    S_SQL_ROOM_GET,
    S_SQL_ROOM_LIST,
    S_SQL_ROOM_JOINED,
    S_SQL_ROOM_PUBLIC,
    S_SQL_ROOM_DIRECTORY,
    S_SQL_ROOM_ACTIVE,
    S_SQL_OWNED_COUNT,
    S_SQL_JOINED_COUNT,
    S_SQL_ROOM_DELETE,
    S_SQL_MEMBER_NAMES,
    S_SQL_MEMBER_IS,
    S_SQL_MEMBER_INSERT,
    S_SQL_MEMBER_DELETE,
    S_SQL_MEMBER_COUNT,
    S_SQL_INVITE_IS,
    S_SQL_INVITE_PUT,
    S_SQL_INVITE_DELETE,
    S_SQL_ENTRY_INSERT,
    S_SQL_HISTORY_BEFORE,
    S_SQL_HISTORY_AFTER,
    S_SQL_CONV_GET,
    S_SQL_CONV_INSERT,
    S_SQL_CONV_ADVANCE,
    S_SQL_CONV_READ,
    S_SQL_CONV_LIST,
    S_SQL_PM_INSERT,
    S_SQL_PM_BEFORE,
    S_SQL_PM_AFTER,
    S_SQL_PM_UNREAD,
    S_SQL_COUNT
} s_sql_t;

static const char *s_sql_text [S_SQL_COUNT] = {
    [S_SQL_BEGIN]        = "BEGIN IMMEDIATE",
    [S_SQL_COMMIT]       = "COMMIT",
    [S_SQL_ROLLBACK]     = "ROLLBACK",
    [S_SQL_SAVEPOINT]    = "SAVEPOINT request",
    [S_SQL_RELEASE]      = "RELEASE request",
    [S_SQL_ROLLBACK_TO]  = "ROLLBACK TO request",
    [S_SQL_USER_INSERT]  = "INSERT INTO users (name, name_key, password_hash, created_at)"
                           " VALUES (?1, ?2, ?3, ?4)",
    [S_SQL_USER_GET]     = "SELECT id, name, password_hash, created_at, last_seen"
                           " FROM users WHERE name_key = ?1",
    [S_SQL_USER_LIST]    = "SELECT name, created_at, last_seen FROM users"
                           " WHERE name_key > ?1 ORDER BY name_key LIMIT ?2",
    [S_SQL_USER_SEEN]    = "UPDATE users SET last_seen = ?2 WHERE name_key = ?1",
    [S_SQL_TOKEN_INSERT] = "INSERT INTO tokens (token_hash, user_id, created_at, expires_at,"
                           " last_used_at) VALUES (?1, ?2, ?3, ?4, ?3)",
    [S_SQL_TOKEN_GET]    = "SELECT users.name, tokens.created_at, tokens.expires_at"
                           " FROM tokens JOIN users ON users.id = tokens.user_id"
                           " WHERE tokens.token_hash = ?1",
    [S_SQL_TOKEN_DELETE] = "DELETE FROM tokens WHERE token_hash = ?1",
    [S_SQL_TOKEN_DELETE_USER]
                         = "DELETE FROM tokens WHERE user_id ="
                           " (SELECT id FROM users WHERE name_key = ?1)",
    [S_SQL_TOKEN_PURGE]  = "DELETE FROM tokens WHERE expires_at <= ?1",
    [S_SQL_TOKEN_TOUCH]  = "UPDATE tokens SET last_used_at = MAX (last_used_at, ?2)"
                           " WHERE token_hash = ?1",
    //  A user's tokens past the keep (?2) most recently used, least
    //  recently used last: one range of tokens_by_use
    [S_SQL_TOKEN_BEYOND] = "SELECT token_hash FROM tokens WHERE user_id ="
                           " (SELECT id FROM users WHERE name_key = ?1)"
                           " ORDER BY last_used_at DESC, created_at DESC, token_hash DESC"
                           " LIMIT ?3 OFFSET ?2",
    //  The room map's columns, in the order s_pack_room reads them; the
    //  counts are lookups on the primary keys of members and entries
#define S_ROOM_COLUMNS \
    "SELECT rooms.id, rooms.name, rooms.description, rooms.private, rooms.max_participants," \
    " users.name, rooms.created_at," \
    " (SELECT count (*) FROM members WHERE members.room_id = rooms.id)," \
    " (SELECT COALESCE (MAX (seq), 0) FROM entries WHERE entries.room_id = rooms.id)," \
    " rooms.owner_id, rooms.active_at"
    [S_SQL_ROOM_INSERT]  = "INSERT INTO rooms (name, name_key, description, private,"
                           " max_participants, owner_id, created_at, active_at)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    [S_SQL_ROOM_GET]     = S_ROOM_COLUMNS
                           " FROM rooms JOIN users ON users.id = rooms.owner_id"
                           " WHERE rooms.name_key = ?1",
    [S_SQL_ROOM_LIST]    = S_ROOM_COLUMNS ", mine.user_id IS NOT NULL"
                           " FROM rooms JOIN users ON users.id = rooms.owner_id"
                           " LEFT JOIN members AS mine ON mine.room_id = rooms.id"
                           " AND mine.user_id = (SELECT id FROM users WHERE name_key = ?1)"
                           " WHERE rooms.private = 0 OR mine.user_id IS NOT NULL"
                           " ORDER BY rooms.name_key",
    //  The user's rooms: members_by_user, then a sort of at most the
    //  user's quota of rooms
    [S_SQL_ROOM_JOINED]  = S_ROOM_COLUMNS ", 1"
                           " FROM members AS mine JOIN rooms ON rooms.id = mine.room_id"
                           " JOIN users ON users.id = rooms.owner_id"
                           " WHERE mine.user_id = (SELECT id FROM users WHERE name_key = ?1)"
                           " AND rooms.name_key > ?2 ORDER BY rooms.name_key LIMIT ?3",
    //  Public rooms, most recently active first: a walk of
    //  rooms_public_by_active from the cursor (?2, ?3), skipping the user's
    //  own rooms (a primary-key search each)
    [S_SQL_ROOM_PUBLIC]  = S_ROOM_COLUMNS ", 0"
                           " FROM rooms JOIN users ON users.id = rooms.owner_id"
                           " WHERE rooms.private = 0 AND (rooms.active_at < ?2"
                           " OR (rooms.active_at = ?2 AND rooms.name_key > ?3))"
                           " AND NOT EXISTS (SELECT 1 FROM members WHERE members.room_id = rooms.id"
                           " AND members.user_id = (SELECT id FROM users WHERE name_key = ?1))"
                           " ORDER BY rooms.active_at DESC, rooms.name_key LIMIT ?4",
    //  Public rooms by name, from a prefix: one range of rooms_public_by_name
    [S_SQL_ROOM_DIRECTORY]
                         = S_ROOM_COLUMNS ", mine.user_id IS NOT NULL"
                           " FROM rooms JOIN users ON users.id = rooms.owner_id"
                           " LEFT JOIN members AS mine ON mine.room_id = rooms.id"
                           " AND mine.user_id = (SELECT id FROM users WHERE name_key = ?1)"
                           " WHERE rooms.private = 0 AND rooms.name_key > ?2"
                           " AND rooms.name_key >= ?3 AND rooms.name_key < ?4"
                           " ORDER BY rooms.name_key LIMIT ?5",
    [S_SQL_ROOM_ACTIVE]  = "UPDATE rooms SET active_at = MAX (active_at, ?2) WHERE id = ?1",
    //  The quotas: ranges of rooms_by_owner and members_by_user
    [S_SQL_OWNED_COUNT]  = "SELECT count (*) FROM rooms WHERE owner_id = ?1",
    [S_SQL_JOINED_COUNT] = "SELECT count (*) FROM members WHERE user_id = ?1",
    [S_SQL_ROOM_DELETE]  = "DELETE FROM rooms WHERE id = ?1",
    [S_SQL_MEMBER_NAMES] = "SELECT users.name FROM members JOIN users ON users.id = members.user_id"
                           " WHERE members.room_id = ?1 ORDER BY users.name_key",
    [S_SQL_MEMBER_IS]    = "SELECT 1 FROM members WHERE room_id = ?1 AND user_id = ?2",
    [S_SQL_MEMBER_INSERT]
                         = "INSERT INTO members (room_id, user_id, joined_at) VALUES (?1, ?2, ?3)",
    [S_SQL_MEMBER_DELETE]
                         = "DELETE FROM members WHERE room_id = ?1 AND user_id = ?2",
    [S_SQL_MEMBER_COUNT] = "SELECT count (*) FROM members WHERE room_id = ?1",
    [S_SQL_INVITE_IS]    = "SELECT 1 FROM invitations WHERE room_id = ?1 AND user_id = ?2",
    [S_SQL_INVITE_PUT]   = "INSERT INTO invitations (room_id, user_id, invited_by, invited_at)"
                           " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (room_id, user_id)"
                           " DO UPDATE SET invited_by = excluded.invited_by,"
                           " invited_at = excluded.invited_at",
    [S_SQL_INVITE_DELETE]
                         = "DELETE FROM invitations WHERE room_id = ?1 AND user_id = ?2",
    [S_SQL_ENTRY_INSERT] = "INSERT INTO entries (room_id, seq, kind, user, ts, text, event)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    //  Both walk the primary key (room_id, seq) from the cursor: one more
    //  row than asked tells whether more remain
    [S_SQL_HISTORY_BEFORE]
                         = "SELECT seq, kind, user, ts, text, event FROM entries"
                           " WHERE room_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
    [S_SQL_HISTORY_AFTER]
                         = "SELECT seq, kind, user, ts, text, event FROM entries"
                           " WHERE room_id = ?1 AND seq > ?2 ORDER BY seq ASC LIMIT ?3",
    //  A conversation is keyed by its two user ids, the lower first
    [S_SQL_CONV_GET]     = "SELECT id, last_seq, read_a, read_b FROM conversations"
                           " WHERE user_a = ?1 AND user_b = ?2",
    [S_SQL_CONV_INSERT]  = "INSERT INTO conversations (user_a, user_b, last_seq, last_ts,"
                           " read_a, read_b) VALUES (?1, ?2, 0, 0, 0, 0)",
    //  An append below last_seq (the pm plugin filling a seq it skipped)
    //  leaves the newest as it is
    [S_SQL_CONV_ADVANCE] = "UPDATE conversations SET last_seq = ?2, last_ts = ?3"
                           " WHERE id = ?1 AND last_seq < ?2",
    //  Markers never go back: MAX of the old and the new
    [S_SQL_CONV_READ]    = "UPDATE conversations"
                           " SET read_a = CASE WHEN user_a = ?2 THEN MAX (read_a, ?3) ELSE read_a END,"
                           " read_b = CASE WHEN user_b = ?2 THEN MAX (read_b, ?3) ELSE read_b END"
                           " WHERE id = ?1",
    //  The user's conversations, newest first: the two arms walk
    //  conversations_by_a and conversations_by_b from their newest end and
    //  SQLite merges them, so the LIMIT stops both early (no sort, no scan
    //  of the user's messages). Per row: the other's name, the newest entry
    //  and the unread count are searches of primary keys.
#define S_CONV_ARM(me, other, marker) \
    "SELECT c.id, u.name, c.last_seq, c.last_ts, e.from_id, e.text, e.ts," \
    " (SELECT count (*) FROM pm_entries AS n WHERE n.conversation_id = c.id" \
    "  AND n.seq > c." marker " AND n.from_id <> c." me ")" \
    " FROM conversations AS c JOIN users AS u ON u.id = c." other \
    " JOIN pm_entries AS e ON e.conversation_id = c.id AND e.seq = c.last_seq" \
    " WHERE c." me " = ?1"
    [S_SQL_CONV_LIST]    = S_CONV_ARM ("user_a", "user_b", "read_a")
                           " UNION ALL "
                           S_CONV_ARM ("user_b", "user_a", "read_b")
                           " ORDER BY 4 DESC, 1 DESC LIMIT ?2",
    [S_SQL_PM_INSERT]    = "INSERT INTO pm_entries (conversation_id, seq, from_id, ts, text)"
                           " VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_SQL_PM_BEFORE]    = "SELECT seq, from_id, ts, text FROM pm_entries"
                           " WHERE conversation_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
    [S_SQL_PM_AFTER]     = "SELECT seq, from_id, ts, text FROM pm_entries"
                           " WHERE conversation_id = ?1 AND seq > ?2 ORDER BY seq ASC LIMIT ?3",
    //  Messages to ?3's user above the marker ?2: a range of the primary key
    [S_SQL_PM_UNREAD]    = "SELECT count (*) FROM pm_entries"
                           " WHERE conversation_id = ?1 AND seq > ?2 AND from_id <> ?3"
};

//  Schema migrations: s_migrations [n - 1] takes a database from version n - 1
//  to n. Never edit a released one; add the next.
static const char *s_migrations [S_SCHEMA_VERSION] = {
    //  1: accounts. name_key is the ASCII-lower-cased name: unique without
    //  regard to case, and the sort order of store.user.list.
    "CREATE TABLE users ("
    "    id INTEGER PRIMARY KEY,"
    "    name TEXT NOT NULL,"
    "    name_key TEXT NOT NULL UNIQUE,"
    "    password_hash TEXT NOT NULL,"
    "    created_at INTEGER NOT NULL,"
    "    last_seen INTEGER"
    ");"
    "CREATE TABLE tokens ("
    "    token_hash TEXT PRIMARY KEY,"
    "    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
    "    created_at INTEGER NOT NULL,"
    "    expires_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX tokens_by_user ON tokens (user_id);"
    "CREATE INDEX tokens_by_expiry ON tokens (expires_at);",

    //  2: rooms, members, invitations and timelines. A room's rows go with
    //  it (ON DELETE CASCADE). entries is clustered on (room_id, seq), so
    //  that a history page is one range of the primary key and a taken seq
    //  is a constraint error, never a scan.
    "CREATE TABLE rooms ("
    "    id INTEGER PRIMARY KEY,"
    "    name TEXT NOT NULL,"
    "    name_key TEXT NOT NULL UNIQUE,"
    "    description TEXT NOT NULL,"
    "    private INTEGER NOT NULL,"
    "    max_participants INTEGER NOT NULL,"
    "    owner_id INTEGER NOT NULL REFERENCES users (id),"
    "    created_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX rooms_by_owner ON rooms (owner_id);"
    "CREATE TABLE members ("
    "    room_id INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,"
    "    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
    "    joined_at INTEGER NOT NULL,"
    "    PRIMARY KEY (room_id, user_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX members_by_user ON members (user_id);"
    "CREATE TABLE invitations ("
    "    room_id INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,"
    "    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
    "    invited_by TEXT NOT NULL,"
    "    invited_at INTEGER NOT NULL,"
    "    PRIMARY KEY (room_id, user_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX invitations_by_user ON invitations (user_id);"
    "CREATE TABLE entries ("
    "    room_id INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,"
    "    seq INTEGER NOT NULL,"
    "    kind TEXT NOT NULL,"
    "    user TEXT NOT NULL,"
    "    ts INTEGER NOT NULL,"
    "    text TEXT,"
    "    event TEXT,"
    "    PRIMARY KEY (room_id, seq)"
    ") WITHOUT ROWID;",

    //  3: private messages. A conversation is the pair of user ids, the
    //  lower in user_a; it carries its newest seq and ts and each side's
    //  read marker, so that the conversation list of a user is a walk of
    //  conversations_by_a and conversations_by_b by last_ts, never a scan
    //  of messages. pm_entries is clustered on (conversation_id, seq): a
    //  history page and an unread count are ranges of that key, and a taken
    //  seq is a constraint error.
    "CREATE TABLE conversations ("
    "    id INTEGER PRIMARY KEY,"
    "    user_a INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
    "    user_b INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
    "    last_seq INTEGER NOT NULL,"
    "    last_ts INTEGER NOT NULL,"
    "    read_a INTEGER NOT NULL,"
    "    read_b INTEGER NOT NULL,"
    "    UNIQUE (user_a, user_b),"
    "    CHECK (user_a < user_b)"
    ");"
    "CREATE INDEX conversations_by_a ON conversations (user_a, last_ts);"
    "CREATE INDEX conversations_by_b ON conversations (user_b, last_ts);"
    "CREATE TABLE pm_entries ("
    "    conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,"
    "    seq INTEGER NOT NULL,"
    "    from_id INTEGER NOT NULL,"
    "    ts INTEGER NOT NULL,"
    "    text TEXT NOT NULL,"
    "    PRIMARY KEY (conversation_id, seq)"
    ") WITHOUT ROWID;",

    //  4: room.list and room.directory in pages. active_at is the time of
    //  a room's newest message (its creation before any), kept by
    //  msg.append in the same transaction; public rooms are walked by it
    //  (most recently active first) and by name (the directory), each an
    //  index range. The quotas count ranges of rooms_by_owner and
    //  members_by_user.
    "ALTER TABLE rooms ADD COLUMN active_at INTEGER NOT NULL DEFAULT 0;"
    "UPDATE rooms SET active_at = MAX (created_at, COALESCE ((SELECT MAX (ts) FROM entries"
    "    WHERE entries.room_id = rooms.id AND entries.kind = 'message'), 0));"
    "CREATE INDEX rooms_public_by_active ON rooms (private, active_at DESC, name_key);"
    "CREATE INDEX rooms_public_by_name ON rooms (private, name_key);",

    //  5: a token's last use (login, resume), so that store.token.trim
    //  keeps a user's most recently used tokens; tokens_by_use serves it
    "ALTER TABLE tokens ADD COLUMN last_used_at INTEGER NOT NULL DEFAULT 0;"
    "UPDATE tokens SET last_used_at = created_at;"
    "CREATE INDEX tokens_by_use ON tokens (user_id, last_used_at);"
};

//  A string borrowed from a request's body
typedef struct {
    const char *data;               //  not NUL-terminated
    uint32_t size;                  //  bytes
} s_text_t;

//  A timeline entry of a request, validated (proto/STORE.md, entry)
typedef struct {
    uint64_t seq;                   //  1 or more
    s_text_t kind;                  //  "message" or "system"
    s_text_t user;                  //  the sender, or whom a system entry is about
    int64_t ts;                     //  milliseconds since 1970
    s_text_t text;                  //  a message's text, else size 0
    s_text_t event;                 //  a system entry's event, else size 0
} s_entry_t;

//  A private message of store.pm.append, validated (proto/STORE.md)
typedef struct {
    uint64_t seq;                   //  1 or more
    bool from_peer;                 //  sent by 'to', not 'from': a run may go both ways
    int64_t ts;                     //  milliseconds since 1970
    s_text_t text;                  //  stored as sent, may be empty
} s_pm_message_t;

//  One queued request, validated, waiting for the batch to run
typedef struct {
    parley_request_t *request;      //  lent by the host until we reply
    s_op_t op;                      //  what it asks
    bool writes;                    //  runs in a savepoint
    msgpack_unpacked fields;        //  owns what the fields below point into
    s_text_t name;                  //  name, or user for the token requests
    s_text_t hash;                  //  password_hash or token_hash
    int64_t created_at;             //  time fields
    int64_t expires_at;
    int64_t before;
    uint32_t limit;                 //  user.list, msg.history
    const msgpack_object *users;    //  user.seen: the array, in fields
    s_text_t room;                  //  a room's name
    s_text_t description;           //  room.create; may be empty
    s_text_t from;                  //  invite.add: the inviter; pm.append: 'from'
    s_text_t peer;                  //  pm.append: 'to'; other pm requests: 'with'
    bool is_private;                //  room.create
    uint64_t max_participants;      //  room.create
    bool has_entry;                 //  member.add/remove: an entry given
    s_entry_t entry;                //  member.add/remove, msg.append's 'entry': it
    const msgpack_object *entries;  //  msg.append's entry maps, pm.append's message maps
                                    //  (its own map for one message), in fields
    uint32_t entry_count;           //  msg.append, pm.append: how many, 1 to S_ENTRIES_MAX
    uint64_t seq;                   //  pm.read
    uint64_t keep;                  //  token.trim
    bool has_before;                //  msg.history cursors
    bool has_after;
    uint64_t cursor;
    s_text_t after;                 //  room.joined/public/directory: a room name cursor
    s_text_t prefix;                //  room.directory
    bool has_after_active;          //  room.public: the cursor's active_at is given
    int64_t after_active;
    uint64_t max_owned;             //  room.create: the owner's quota, 0 for none
    uint64_t max_joined;            //  room.create, member.add: the user's quota, 0 for none
    const char *code;               //  error code after running, NULL for ok
    char message [160];             //  error sentence
    msgpack_sbuffer result;         //  ok result map after running
} s_pending_t;

//  Per-instance state
typedef struct {
    parley_ctx_t *ctx;              //  the host's handle
    const parley_host_t *host;      //  the host's function table
    char *path;                     //  database file
    sqlite3 *db;                    //  the open database
    sqlite3_stmt *sql [S_SQL_COUNT];    //  prepared statements
    bool group_commit;              //  one transaction per batch (else per request)
    s_pending_t *pending;           //  S_BATCH_MAX slots
    size_t pending_count;           //  slots in use
    uint64_t batches;               //  transactions committed, for the log
    uint64_t requests;              //  requests answered, for the log
} store_t;


//  --------------------------------------------------------------------------
//  Helpers

//  SQLite results that mean the database cannot take writes now: the whole
//  batch fails with unavailable
static bool
s_is_fatal (int rc)
{
    switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
        case SQLITE_IOERR:
        case SQLITE_FULL:
        case SQLITE_READONLY:
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
        case SQLITE_CANTOPEN:
        case SQLITE_PROTOCOL:
            return true;
        default:
            return false;
    }
}

//  The ASCII-lower-cased copy of a name, into key (S_NAME_MAX + 1 bytes)
static void
s_name_key (const s_text_t *name, char *key)
{
    for (uint32_t index = 0; index < name->size; index++) {
        char c = name->data [index];
        key [index] = (c >= 'A' && c <= 'Z') ? (char) (c - 'A' + 'a') : c;
    }
    key [name->size] = 0;
}

static void
s_pack_str (msgpack_packer *packer, const char *string)
{
    size_t size = strlen (string);
    msgpack_pack_str_with_body (packer, string, size);
}

static void
s_pack_text_column (msgpack_packer *packer, sqlite3_stmt *stmt, int column)
{
    const unsigned char *text = sqlite3_column_text (stmt, column);
    int size = sqlite3_column_bytes (stmt, column);
    msgpack_pack_str_with_body (packer, text ? (const char *) text : "", text ? (size_t) size : 0);
}

static void
s_pack_time_column (msgpack_packer *packer, sqlite3_stmt *stmt, int column)
{
    if (sqlite3_column_type (stmt, column) == SQLITE_NULL)
        msgpack_pack_nil (packer);
    else
        msgpack_pack_int64 (packer, sqlite3_column_int64 (stmt, column));
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
}

static void
s_pending_reset (s_pending_t *pending)
{
    msgpack_unpacked_destroy (&pending->fields);
    msgpack_sbuffer_destroy (&pending->result);
    memset (pending, 0, sizeof *pending);
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

static int
    s_read_time (s_pending_t *pending, const msgpack_object *map, const char *key,
                 int64_t *time_p);

//  Reads a string field of min to max bytes; NUL refused unless allow_nul.
//  Returns 0, or -1 after failing pending with bad_request.
static int
s_read_string (s_pending_t *pending, const msgpack_object *map, const char *key,
               uint32_t min, uint32_t max, bool allow_nul, bool required, s_text_t *text)
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
    if (value->via.str.size < min || value->via.str.size > max
    ||  (!allow_nul && memchr (value->via.str.ptr, 0, value->via.str.size))) {
        s_fail (pending, "bad_request", "The field '%s' must have %u to %u bytes%s.",
                key, min, max, allow_nul ? "" : " and no NUL");
        return -1;
    }
    text->data = value->via.str.ptr;
    text->size = value->via.str.size;
    return 0;
}

//  Reads a string field of 1 to max bytes without NUL (names, hashes)
static int
s_read_text (s_pending_t *pending, const msgpack_object *map, const char *key,
             uint32_t max, bool required, s_text_t *text)
{
    return s_read_string (pending, map, key, 1, max, false, required, text);
}

//  Reads an unsigned integer field of min to max; absent is an error only if required
static int
s_read_uint (s_pending_t *pending, const msgpack_object *map, const char *key,
             uint64_t min, uint64_t max, bool required, bool *present_p, uint64_t *value_p)
{
    const msgpack_object *value = s_field (map, key);
    if (present_p)
        *present_p = value != NULL;
    if (!value) {
        if (!required)
            return 0;
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

static bool
s_text_is (const s_text_t *text, const char *value)
{
    return text->size == strlen (value) && memcmp (text->data, value, text->size) == 0;
}

//  Puts where in front of pending's sentence, to say which part of the
//  request was refused ("In 'entries' [3]: The field 'ts' is missing.")
static void
s_fail_where (s_pending_t *pending, const char *where)
{
    char reason [sizeof pending->message];
    memcpy (reason, pending->message, sizeof reason);
    snprintf (pending->message, sizeof pending->message, "%.32s: %.120s", where, reason);
}

//  Reads one entry map (msg.append's 'entry' or an element of its
//  'entries', member.add/remove's 'entry') into entry. Returns 0, or -1
//  after failing pending with a sentence that does not say where the entry
//  was: the caller puts that in front (s_fail_where).
static int
s_entry_read (s_pending_t *pending, const msgpack_object *value, s_entry_t *entry)
{
    memset (entry, 0, sizeof *entry);
    if (value->type != MSGPACK_OBJECT_MAP) {
        s_fail (pending, "bad_request", "The entry must be a map.");
        return -1;
    }
    if (s_read_uint (pending, value, "seq", 1, INT64_MAX, true, NULL, &entry->seq)
    ||  s_read_text (pending, value, "kind", 16, true, &entry->kind)
    ||  s_read_text (pending, value, "user", S_NAME_MAX, true, &entry->user)
    ||  s_read_time (pending, value, "ts", &entry->ts))
        return -1;
    if (s_text_is (&entry->kind, "message"))
        //  A message's text is stored as sent, NUL and all
        return s_read_string (pending, value, "text", 0, S_TEXT_MAX, true, true, &entry->text);
    if (s_text_is (&entry->kind, "system")) {
        if (s_read_text (pending, value, "event", 16, true, &entry->event))
            return -1;
        if (!s_text_is (&entry->event, "join") && !s_text_is (&entry->event, "leave")) {
            s_fail (pending, "bad_request", "The entry's 'event' must be \"join\" or \"leave\".");
            return -1;
        }
        return 0;
    }
    s_fail (pending, "bad_request", "The entry's 'kind' must be \"message\" or \"system\".");
    return -1;
}

//  Reads the 'entry' map: required or optional. Returns 0, or -1 failed.
static int
s_read_entry (s_pending_t *pending, const msgpack_object *map, bool required)
{
    const msgpack_object *entry = s_field (map, "entry");
    if (!entry) {
        if (!required)
            return 0;
        s_fail (pending, "bad_request", "The field 'entry' is missing.");
        return -1;
    }
    if (entry->type != MSGPACK_OBJECT_MAP) {
        s_fail (pending, "bad_request", "The field 'entry' must be a map.");
        return -1;
    }
    if (s_entry_read (pending, entry, &pending->entry)) {
        s_fail_where (pending, "In 'entry'");
        return -1;
    }
    pending->has_entry = true;
    return 0;
}

//  Reads one element of a run (an entry of msg.append, a message of
//  pm.append) and gives its seq. Returns 0, or -1 after failing pending
//  with a sentence that does not say where the element was.
typedef int (s_element_fn) (s_pending_t *pending, const msgpack_object *value,
                            uint64_t *seq_p);

//  Reads the run in the array field key: 1 to S_ENTRIES_MAX elements, each
//  read by read, whose seqs follow one another. Every element is checked
//  now, so that a run once started is not refused half way; the run stays
//  in fields, where the request's runner reads it again. Returns 0, or -1
//  failed with a sentence that names the element ("In 'entries' [3]: ...").
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
    const msgpack_object *single = s_field (map, "entry");
    const msgpack_object *entries = s_field (map, "entries");
    if (single && entries) {
        s_fail (pending, "bad_request", "Give 'entry' or 'entries', not both.");
        return -1;
    }
    if (!single && !entries) {
        s_fail (pending, "bad_request", "The field 'entry' or 'entries' is missing.");
        return -1;
    }
    if (entries)
        return s_read_run_array (pending, entries, "entries", s_entry_seq_read);
    if (s_read_entry (pending, map, true))
        return -1;
    pending->entries = single;
    pending->entry_count = 1;
    return 0;
}

static int
s_read_bool (s_pending_t *pending, const msgpack_object *map, const char *key, bool *value_p)
{
    const msgpack_object *value = s_field (map, key);
    if (!value || value->type != MSGPACK_OBJECT_BOOLEAN) {
        s_fail (pending, "bad_request", "The field '%s' must be true or false.", key);
        return -1;
    }
    *value_p = value->via.boolean;
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

//  True if two names are the same user: equal without regard to ASCII case
static bool
s_same_name (const s_text_t *one, const s_text_t *other)
{
    if (one->size != other->size)
        return false;
    for (uint32_t index = 0; index < one->size; index++) {
        char a = one->data [index], b = other->data [index];
        if (a >= 'A' && a <= 'Z')
            a = (char) (a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (char) (b - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

//  Reads 'user' and 'with', the two sides of a conversation
static int
s_read_pair (s_pending_t *pending, const msgpack_object *map)
{
    if (s_read_text (pending, map, "user", S_NAME_MAX, true, &pending->name)
    ||  s_read_text (pending, map, "with", S_NAME_MAX, true, &pending->peer))
        return -1;
    return 0;
}

//  Reads one private message (store.pm.append's own fields, or an element
//  of its 'messages') into message: its 'from' must be one of the
//  request's two users, read before. Returns 0, or -1 after failing
//  pending with a sentence that does not say where the message was.
static int
s_pm_message_read (s_pending_t *pending, const msgpack_object *value, s_pm_message_t *message)
{
    memset (message, 0, sizeof *message);
    if (value->type != MSGPACK_OBJECT_MAP) {
        s_fail (pending, "bad_request", "The message must be a map {from, seq, text, ts}.");
        return -1;
    }
    s_text_t from;
    //  A message's text is stored as sent, NUL and all
    if (s_read_text (pending, value, "from", S_NAME_MAX, true, &from)
    ||  s_read_uint (pending, value, "seq", 1, INT64_MAX, true, NULL, &message->seq)
    ||  s_read_string (pending, value, "text", 0, S_TEXT_MAX, true, true, &message->text)
    ||  s_read_time (pending, value, "ts", &message->ts))
        return -1;
    if (s_same_name (&from, &pending->from))
        return 0;
    if (s_same_name (&from, &pending->peer)) {
        message->from_peer = true;
        return 0;
    }
    s_fail (pending, "bad_request", "The message's 'from' must be '%.*s' or '%.*s'.",
            (int) (pending->from.size < 40 ? pending->from.size : 40), pending->from.data,
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
    const msgpack_object *messages = s_field (map, "messages");
    bool single = s_field (map, "seq") || s_field (map, "text") || s_field (map, "ts");
    if (single && messages) {
        s_fail (pending, "bad_request", "Give 'seq', 'text' and 'ts', or 'messages', not both.");
        return -1;
    }
    if (!single && !messages) {
        s_fail (pending, "bad_request",
                "The fields 'seq', 'text' and 'ts', or the field 'messages', are missing.");
        return -1;
    }
    if (messages)
        return s_read_run_array (pending, messages, "messages", s_pm_message_seq_read);
    s_pm_message_t message;
    if (s_pm_message_read (pending, map, &message))
        return -1;
    pending->entries = map;
    pending->entry_count = 1;
    return 0;
}

//  The quotas of room.create and member.add: absent or 0 for none
static int
s_read_quotas (s_pending_t *pending, const msgpack_object *map, bool owned)
{
    if (owned && s_read_uint (pending, map, "max_owned", 0, INT64_MAX, false, NULL,
                              &pending->max_owned))
        return -1;
    return s_read_uint (pending, map, "max_joined", 0, INT64_MAX, false, NULL,
                        &pending->max_joined);
}

//  A room list's page: user, after (a room name), limit 1 .. 1000
static int
s_read_room_page (s_pending_t *pending, const msgpack_object *map, uint64_t fallback)
{
    uint64_t limit = fallback;
    if (s_read_text (pending, map, "user", S_NAME_MAX, true, &pending->name)
    ||  s_read_text (pending, map, "after", S_ROOM_MAX, false, &pending->after)
    ||  s_read_uint (pending, map, "limit", 1, S_LIST_LIMIT_MAX, false, NULL, &limit))
        return -1;
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
    if (pending->has_after_active != (pending->after.data != NULL)) {
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
    if (s_read_room_page (pending, map, S_DIRECTORY_DEFAULT)
    ||  s_read_text (pending, map, "prefix", S_ROOM_MAX, false, &pending->prefix))
        return -1;
    for (uint32_t index = 0; index < pending->prefix.size; index++) {
        char c = pending->prefix.data [index];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c == '_' || c == '-')) {
            s_fail (pending, "bad_request",
                    "The field 'prefix' must hold only letters, digits, '_' and '-'.");
            return -1;
        }
    }
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
            if (s_read_text (pending, map, "name", S_NAME_MAX, true, &pending->name)
            ||  s_read_text (pending, map, "password_hash", S_HASH_MAX, true, &pending->hash)
            ||  s_read_time (pending, map, "created_at", &pending->created_at))
                return -1;
            return 0;
        case S_OP_USER_GET:
            return s_read_text (pending, map, "name", S_NAME_MAX, true, &pending->name);
        case S_OP_USER_LIST: {
            if (s_read_text (pending, map, "after", S_NAME_MAX, false, &pending->name))
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
            ||  s_read_text (pending, map, "user", S_NAME_MAX, true, &pending->name)
            ||  s_read_time (pending, map, "created_at", &pending->created_at)
            ||  s_read_time (pending, map, "expires_at", &pending->expires_at))
                return -1;
            return 0;
        case S_OP_TOKEN_GET:
        case S_OP_TOKEN_DELETE:
            return s_read_text (pending, map, "token_hash", S_HASH_MAX, true, &pending->hash);
        case S_OP_TOKEN_DELETE_USER:
            return s_read_text (pending, map, "user", S_NAME_MAX, true, &pending->name);
        case S_OP_TOKEN_PURGE:
            return s_read_time (pending, map, "before", &pending->before);
        case S_OP_TOKEN_TOUCH:
            if (s_read_text (pending, map, "token_hash", S_HASH_MAX, true, &pending->hash)
            ||  s_read_time (pending, map, "at", &pending->before))
                return -1;
            return 0;
        case S_OP_TOKEN_TRIM:
            if (s_read_text (pending, map, "user", S_NAME_MAX, true, &pending->name)
            ||  s_read_uint (pending, map, "keep", 1, S_KEEP_MAX, true, NULL, &pending->keep))
                return -1;
            return 0;
        case S_OP_ROOM_CREATE:
            if (s_read_text (pending, map, "name", S_ROOM_MAX, true, &pending->room)
            ||  s_read_string (pending, map, "description", 0, S_DESCRIPTION_MAX, false, true,
                               &pending->description)
            ||  s_read_bool (pending, map, "private", &pending->is_private)
            ||  s_read_uint (pending, map, "max_participants", 1, INT64_MAX, true, NULL,
                             &pending->max_participants)
            ||  s_read_text (pending, map, "owner", S_NAME_MAX, true, &pending->name)
            ||  s_read_time (pending, map, "created_at", &pending->created_at)
            ||  s_read_quotas (pending, map, true))
                return -1;
            return 0;
        case S_OP_ROOM_GET:
        case S_OP_ROOM_DELETE:
            return s_read_text (pending, map, "name", S_ROOM_MAX, true, &pending->room);
        case S_OP_ROOM_LIST:
            return s_read_text (pending, map, "user", S_NAME_MAX, true, &pending->name);
        case S_OP_ROOM_JOINED:
            return s_read_room_page (pending, map, S_LIST_LIMIT_MAX);
        case S_OP_ROOM_PUBLIC:
            return s_read_room_public (pending, map);
        case S_OP_ROOM_DIRECTORY:
            return s_read_room_directory (pending, map);
        case S_OP_MEMBER_ADD:
        case S_OP_MEMBER_REMOVE:
            if (s_read_text (pending, map, "room", S_ROOM_MAX, true, &pending->room)
            ||  s_read_text (pending, map, "user", S_NAME_MAX, true, &pending->name)
            ||  s_read_entry (pending, map, false)
            ||  (pending->op == S_OP_MEMBER_ADD && s_read_quotas (pending, map, false)))
                return -1;
            return 0;
        case S_OP_MEMBER_LIST:
            return s_read_text (pending, map, "room", S_ROOM_MAX, true, &pending->room);
        case S_OP_INVITE_ADD:
            if (s_read_text (pending, map, "room", S_ROOM_MAX, true, &pending->room)
            ||  s_read_text (pending, map, "user", S_NAME_MAX, true, &pending->name)
            ||  s_read_text (pending, map, "from", S_NAME_MAX, true, &pending->from))
                return -1;
            return 0;
        case S_OP_MSG_APPEND:
            if (s_read_text (pending, map, "room", S_ROOM_MAX, true, &pending->room)
            ||  s_read_run (pending, map))
                return -1;
            return 0;
        case S_OP_MSG_HISTORY: {
            uint64_t limit = S_HISTORY_DEFAULT;
            if (s_read_text (pending, map, "room", S_ROOM_MAX, true, &pending->room)
            ||  s_read_uint (pending, map, "before", 0, INT64_MAX, false, &pending->has_before,
                             &pending->cursor)
            ||  s_read_uint (pending, map, "after", 0, INT64_MAX, false, &pending->has_after,
                             &pending->cursor)
            ||  s_read_uint (pending, map, "limit", 1, S_LIST_LIMIT_MAX, false, NULL, &limit))
                return -1;
            if (pending->has_before && pending->has_after) {
                s_fail (pending, "bad_request", "Give 'before' or 'after', not both.");
                return -1;
            }
            pending->limit = (uint32_t) limit;
            return 0;
        }
        case S_OP_PM_APPEND:
            if (s_read_text (pending, map, "from", S_NAME_MAX, true, &pending->from)
            ||  s_read_text (pending, map, "to", S_NAME_MAX, true, &pending->peer))
                return -1;
            if (s_same_name (&pending->from, &pending->peer)) {
                s_fail (pending, "bad_request",
                        "'from' and 'to' are the same user: a conversation needs two.");
                return -1;
            }
            return s_read_pm_run (pending, map);
        case S_OP_PM_LAST_SEQ:
            return s_read_pair (pending, map);
        case S_OP_PM_HISTORY: {
            uint64_t limit = S_HISTORY_DEFAULT;
            if (s_read_pair (pending, map)
            ||  s_read_uint (pending, map, "before", 0, INT64_MAX, false, &pending->has_before,
                             &pending->cursor)
            ||  s_read_uint (pending, map, "after", 0, INT64_MAX, false, &pending->has_after,
                             &pending->cursor)
            ||  s_read_uint (pending, map, "limit", 1, S_LIST_LIMIT_MAX, false, NULL, &limit))
                return -1;
            if (pending->has_before && pending->has_after) {
                s_fail (pending, "bad_request", "Give 'before' or 'after', not both.");
                return -1;
            }
            pending->limit = (uint32_t) limit;
            return 0;
        }
        case S_OP_PM_CONVERSATIONS: {
            uint64_t limit = S_CONVERSATIONS_DEFAULT;
            if (s_read_text (pending, map, "user", S_NAME_MAX, true, &pending->name)
            ||  s_read_uint (pending, map, "limit", 1, S_LIST_LIMIT_MAX, false, NULL, &limit))
                return -1;
            pending->limit = (uint32_t) limit;
            return 0;
        }
        case S_OP_PM_READ:
            if (s_read_pair (pending, map)
            ||  s_read_uint (pending, map, "seq", 0, INT64_MAX, true, NULL, &pending->seq))
                return -1;
            return 0;
    }
    s_fail (pending, "internal", "The store has no handler for this request.");
    return -1;
}


//  --------------------------------------------------------------------------
//  Running one request inside the open transaction. Each returns the SQLite
//  result that ended it: SQLITE_OK/DONE/ROW for success or a request error
//  (pending->code is set), or a fatal code that fails the whole batch.

//  Steps a statement that returns no rows; resets it
static int
s_step_done (sqlite3_stmt *stmt)
{
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void
s_finish_stmt (sqlite3_stmt *stmt)
{
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
}

static int
s_run_info (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    msgpack_pack_map (packer, 2);
    s_pack_str (packer, "backend");
    s_pack_str (packer, "sqlite");
    s_pack_str (packer, "schema_version");
    msgpack_pack_uint32 (packer, S_SCHEMA_VERSION);
    return SQLITE_OK;
}

static int
s_run_user_create (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    char key [S_NAME_MAX + 1];
    s_name_key (&pending->name, key);
    sqlite3_stmt *stmt = self->sql [S_SQL_USER_INSERT];
    sqlite3_bind_text (stmt, 1, pending->name.data, (int) pending->name.size, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, key, (int) pending->name.size, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, pending->hash.data, (int) pending->hash.size, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 4, pending->created_at);
    int rc = s_step_done (stmt);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        s_fail (pending, "conflict", "The name '%.*s' is taken (names ignore case).",
                (int) pending->name.size, pending->name.data);
        return SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        return rc;
    msgpack_pack_map (packer, 2);
    s_pack_str (packer, "name");
    msgpack_pack_str_with_body (packer, pending->name.data, pending->name.size);
    s_pack_str (packer, "created_at");
    msgpack_pack_int64 (packer, pending->created_at);
    return SQLITE_OK;
}

static int
s_run_user_get (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    char key [S_NAME_MAX + 1];
    s_name_key (&pending->name, key);
    sqlite3_stmt *stmt = self->sql [S_SQL_USER_GET];
    sqlite3_bind_text (stmt, 1, key, (int) pending->name.size, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        msgpack_pack_map (packer, 4);
        s_pack_str (packer, "name");
        s_pack_text_column (packer, stmt, 1);
        s_pack_str (packer, "password_hash");
        s_pack_text_column (packer, stmt, 2);
        s_pack_str (packer, "created_at");
        s_pack_time_column (packer, stmt, 3);
        s_pack_str (packer, "last_seen");
        s_pack_time_column (packer, stmt, 4);
        rc = SQLITE_OK;
    }
    else
    if (rc == SQLITE_DONE) {
        s_fail (pending, "not_found", "No user is named '%.*s'.",
                (int) pending->name.size, pending->name.data);
        rc = SQLITE_OK;
    }
    s_finish_stmt (stmt);
    return rc;
}

static int
s_run_user_list (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    char key [S_NAME_MAX + 1];
    s_name_key (&pending->name, key);       //  "" when no 'after': every name sorts after
    sqlite3_stmt *stmt = self->sql [S_SQL_USER_LIST];
    sqlite3_bind_text (stmt, 1, key, (int) pending->name.size, SQLITE_STATIC);
    //  One more than asked, to know whether more remain
    sqlite3_bind_int64 (stmt, 2, (int64_t) pending->limit + 1);

    //  Rows are packed into a buffer of their own: the count comes first
    msgpack_sbuffer rows;
    msgpack_sbuffer_init (&rows);
    msgpack_packer row_packer;
    msgpack_packer_init (&row_packer, &rows, msgpack_sbuffer_write);
    uint32_t count = 0;
    bool more = false;
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        if (count == pending->limit) {
            more = true;
            continue;
        }
        msgpack_pack_map (&row_packer, 3);
        s_pack_str (&row_packer, "name");
        s_pack_text_column (&row_packer, stmt, 0);
        s_pack_str (&row_packer, "created_at");
        s_pack_time_column (&row_packer, stmt, 1);
        s_pack_str (&row_packer, "last_seen");
        s_pack_time_column (&row_packer, stmt, 2);
        count++;
    }
    s_finish_stmt (stmt);
    if (rc == SQLITE_DONE) {
        msgpack_pack_map (packer, 2);
        s_pack_str (packer, "users");
        msgpack_pack_array (packer, count);
        msgpack_sbuffer_write (&pending->result, rows.data, rows.size);
        s_pack_str (packer, "more");
        if (more)
            msgpack_pack_true (packer);
        else
            msgpack_pack_false (packer);
        rc = SQLITE_OK;
    }
    msgpack_sbuffer_destroy (&rows);
    return rc;
}

static int
s_run_user_seen (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_USER_SEEN];
    uint32_t updated = 0;
    for (uint32_t index = 0; index < pending->users->via.array.size; index++) {
        //  Validated in s_read_seen
        const msgpack_object *entry = &pending->users->via.array.ptr [index];
        const msgpack_object *name = s_field (entry, "name");
        const msgpack_object *last_seen = s_field (entry, "last_seen");
        s_text_t text = { name->via.str.ptr, name->via.str.size };
        char key [S_NAME_MAX + 1];
        s_name_key (&text, key);
        sqlite3_bind_text (stmt, 1, key, (int) text.size, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 2, (int64_t) last_seen->via.u64);
        int rc = s_step_done (stmt);
        if (rc != SQLITE_OK)
            return rc;
        if (sqlite3_changes (self->db) > 0)
            updated++;
    }
    msgpack_pack_map (packer, 1);
    s_pack_str (packer, "updated");
    msgpack_pack_uint32 (packer, updated);
    return SQLITE_OK;
}

static int
s_run_token_put (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    //  The user first: not_found is the caller's to know, and we answer
    //  with the name as registered
    char key [S_NAME_MAX + 1];
    s_name_key (&pending->name, key);
    sqlite3_stmt *stmt = self->sql [S_SQL_USER_GET];
    sqlite3_bind_text (stmt, 1, key, (int) pending->name.size, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_DONE) {
        s_finish_stmt (stmt);
        s_fail (pending, "not_found", "No user is named '%.*s'.",
                (int) pending->name.size, pending->name.data);
        return SQLITE_OK;
    }
    if (rc != SQLITE_ROW) {
        s_finish_stmt (stmt);
        return rc;
    }
    int64_t user_id = sqlite3_column_int64 (stmt, 0);
    msgpack_pack_map (packer, 1);
    s_pack_str (packer, "user");
    s_pack_text_column (packer, stmt, 1);
    s_finish_stmt (stmt);

    stmt = self->sql [S_SQL_TOKEN_INSERT];
    sqlite3_bind_text (stmt, 1, pending->hash.data, (int) pending->hash.size, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, user_id);
    sqlite3_bind_int64 (stmt, 3, pending->created_at);
    sqlite3_bind_int64 (stmt, 4, pending->expires_at);
    rc = s_step_done (stmt);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        s_fail (pending, "conflict", "This token hash is stored already.");
        return SQLITE_OK;
    }
    return rc;
}

static int
s_run_token_get (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_TOKEN_GET];
    sqlite3_bind_text (stmt, 1, pending->hash.data, (int) pending->hash.size, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        msgpack_pack_map (packer, 4);
        s_pack_str (packer, "token_hash");
        msgpack_pack_str_with_body (packer, pending->hash.data, pending->hash.size);
        s_pack_str (packer, "user");
        s_pack_text_column (packer, stmt, 0);
        s_pack_str (packer, "created_at");
        s_pack_time_column (packer, stmt, 1);
        s_pack_str (packer, "expires_at");
        s_pack_time_column (packer, stmt, 2);
        rc = SQLITE_OK;
    }
    else
    if (rc == SQLITE_DONE) {
        s_fail (pending, "not_found", "No such token.");
        rc = SQLITE_OK;
    }
    s_finish_stmt (stmt);
    return rc;
}

static int
s_run_token_delete (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    //  The owner first: the caller needs it to unbind its sessions
    sqlite3_stmt *get = self->sql [S_SQL_TOKEN_GET];
    sqlite3_bind_text (get, 1, pending->hash.data, (int) pending->hash.size, SQLITE_STATIC);
    int rc = sqlite3_step (get);
    if (rc == SQLITE_DONE) {
        s_finish_stmt (get);
        s_fail (pending, "not_found", "No such token.");
        return SQLITE_OK;
    }
    if (rc != SQLITE_ROW) {
        s_finish_stmt (get);
        return rc;
    }
    msgpack_pack_map (packer, 1);
    s_pack_str (packer, "user");
    s_pack_text_column (packer, get, 0);
    s_finish_stmt (get);

    sqlite3_stmt *stmt = self->sql [S_SQL_TOKEN_DELETE];
    sqlite3_bind_text (stmt, 1, pending->hash.data, (int) pending->hash.size, SQLITE_STATIC);
    return s_step_done (stmt);
}

static int
s_run_delete_count (store_t *self, s_pending_t *pending, msgpack_packer *packer, s_sql_t sql)
{
    sqlite3_stmt *stmt = self->sql [sql];
    char key [S_NAME_MAX + 1];
    if (sql == S_SQL_TOKEN_DELETE_USER) {
        s_name_key (&pending->name, key);
        sqlite3_bind_text (stmt, 1, key, (int) pending->name.size, SQLITE_STATIC);
    }
    else
        sqlite3_bind_int64 (stmt, 1, pending->before);
    int rc = s_step_done (stmt);
    if (rc != SQLITE_OK)
        return rc;
    msgpack_pack_map (packer, 1);
    s_pack_str (packer, "deleted");
    msgpack_pack_uint64 (packer, (uint64_t) sqlite3_changes (self->db));
    return SQLITE_OK;
}

//  store.token.touch {token_hash, at}: the token's last use is at least at
static int
s_run_token_touch (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_TOKEN_TOUCH];
    sqlite3_bind_text (stmt, 1, pending->hash.data, (int) pending->hash.size, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, pending->before);
    int rc = s_step_done (stmt);
    if (rc != SQLITE_OK)
        return rc;
    if (sqlite3_changes (self->db) == 0)
        s_fail (pending, "not_found", "No such token.");
    else
        msgpack_pack_map (packer, 0);
    return SQLITE_OK;
}

//  store.token.trim {user, keep}: deletes the user's tokens past the keep
//  most recently used (at most S_TRIM_MAX) and answers their hashes
static int
s_run_token_trim (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    char key [S_NAME_MAX + 1];
    s_name_key (&pending->name, key);
    sqlite3_stmt *stmt = self->sql [S_SQL_TOKEN_BEYOND];
    sqlite3_bind_text (stmt, 1, key, (int) pending->name.size, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, (int64_t) pending->keep);
    sqlite3_bind_int64 (stmt, 3, S_TRIM_MAX);
    msgpack_sbuffer hashes;
    msgpack_sbuffer_init (&hashes);
    msgpack_packer hash_packer;
    msgpack_packer_init (&hash_packer, &hashes, msgpack_sbuffer_write);
    uint32_t count = 0;
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        s_pack_text_column (&hash_packer, stmt, 0);
        count++;
    }
    s_finish_stmt (stmt);
    if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
        //  Each hash read back from the buffer, to delete it
        msgpack_unpacked hash;
        msgpack_unpacked_init (&hash);
        size_t offset = 0;
        while (rc == SQLITE_OK
           &&  msgpack_unpack_next (&hash, hashes.data, hashes.size, &offset)
               == MSGPACK_UNPACK_SUCCESS) {
            sqlite3_stmt *delete = self->sql [S_SQL_TOKEN_DELETE];
            sqlite3_bind_text (delete, 1, hash.data.via.str.ptr, (int) hash.data.via.str.size,
                               SQLITE_STATIC);
            rc = s_step_done (delete);
        }
        msgpack_unpacked_destroy (&hash);
    }
    if (rc == SQLITE_OK) {
        msgpack_pack_map (packer, 1);
        s_pack_str (packer, "revoked");
        msgpack_pack_array (packer, count);
        msgpack_sbuffer_write (&pending->result, hashes.data, hashes.size);
    }
    msgpack_sbuffer_destroy (&hashes);
    return rc;
}

//  --------------------------------------------------------------------------
//  Rooms, members, invitations and timelines

static void
s_pack_bool (msgpack_packer *packer, bool value)
{
    if (value)
        msgpack_pack_true (packer);
    else
        msgpack_pack_false (packer);
}

//  Packs the room map from a row of S_ROOM_COLUMNS, with 'joined' if asked
static void
s_pack_room (msgpack_packer *packer, sqlite3_stmt *stmt, bool with_joined)
{
    msgpack_pack_map (packer, with_joined ? 10 : 9);
    s_pack_str (packer, "name");
    s_pack_text_column (packer, stmt, 1);
    s_pack_str (packer, "description");
    s_pack_text_column (packer, stmt, 2);
    s_pack_str (packer, "private");
    s_pack_bool (packer, sqlite3_column_int (stmt, 3) != 0);
    s_pack_str (packer, "max_participants");
    msgpack_pack_uint64 (packer, (uint64_t) sqlite3_column_int64 (stmt, 4));
    s_pack_str (packer, "owner");
    s_pack_text_column (packer, stmt, 5);
    s_pack_str (packer, "created_at");
    msgpack_pack_int64 (packer, sqlite3_column_int64 (stmt, 6));
    s_pack_str (packer, "members");
    msgpack_pack_uint64 (packer, (uint64_t) sqlite3_column_int64 (stmt, 7));
    s_pack_str (packer, "last_seq");
    msgpack_pack_uint64 (packer, (uint64_t) sqlite3_column_int64 (stmt, 8));
    s_pack_str (packer, "active_at");
    msgpack_pack_int64 (packer, sqlite3_column_int64 (stmt, 10));
    if (with_joined) {
        s_pack_str (packer, "joined");
        s_pack_bool (packer, sqlite3_column_int (stmt, 11) != 0);
    }
}

//  Looks the room up: its row stays on S_SQL_ROOM_GET for the caller, who
//  must s_finish_stmt it. Returns SQLITE_ROW, or SQLITE_DONE after failing
//  pending with not_found, or a fatal code.
static int
s_room_find (store_t *self, s_pending_t *pending, char *key)
{
    s_name_key (&pending->room, key);
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_GET];
    sqlite3_bind_text (stmt, 1, key, (int) pending->room.size, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_DONE)
        s_fail (pending, "not_found", "No room is named '%.*s'.",
                (int) pending->room.size, pending->room.data);
    return rc;
}

//  The room's id, or 0 after failing pending with not_found; rc_p gets a fatal code
static int64_t
s_room_id (store_t *self, s_pending_t *pending, int *rc_p)
{
    char key [S_NAME_MAX + 1];
    int rc = s_room_find (self, pending, key);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64 (self->sql [S_SQL_ROOM_GET], 0) : 0;
    s_finish_stmt (self->sql [S_SQL_ROOM_GET]);
    *rc_p = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
    return id;
}

//  The user's id (name any case), 0 if there is none; the name as
//  registered into registered (S_NAME_MAX + 1) if not NULL
static int64_t
s_user_id (store_t *self, const s_text_t *name, char *registered, int *rc_p)
{
    char key [S_NAME_MAX + 1];
    s_name_key (name, key);
    sqlite3_stmt *stmt = self->sql [S_SQL_USER_GET];
    sqlite3_bind_text (stmt, 1, key, (int) name->size, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    int64_t id = 0;
    if (rc == SQLITE_ROW) {
        id = sqlite3_column_int64 (stmt, 0);
        if (registered)
            snprintf (registered, S_NAME_MAX + 1, "%s", (const char *) sqlite3_column_text (stmt, 1));
    }
    s_finish_stmt (stmt);
    *rc_p = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
    return id;
}

//  Runs a statement with (room_id, user_id) and says whether it gave a row
static int
s_pair_exists (store_t *self, s_sql_t sql, int64_t room_id, int64_t user_id, bool *exists_p)
{
    sqlite3_stmt *stmt = self->sql [sql];
    sqlite3_bind_int64 (stmt, 1, room_id);
    sqlite3_bind_int64 (stmt, 2, user_id);
    int rc = sqlite3_step (stmt);
    *exists_p = rc == SQLITE_ROW;
    s_finish_stmt (stmt);
    return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
}

static int
s_pair_run (store_t *self, s_sql_t sql, int64_t room_id, int64_t user_id)
{
    sqlite3_stmt *stmt = self->sql [sql];
    sqlite3_bind_int64 (stmt, 1, room_id);
    sqlite3_bind_int64 (stmt, 2, user_id);
    return s_step_done (stmt);
}

//  Appends an entry of pending's to the room; a taken seq fails pending
//  with conflict
static int
s_entry_insert (store_t *self, s_pending_t *pending, int64_t room_id, const s_entry_t *entry)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_ENTRY_INSERT];
    sqlite3_bind_int64 (stmt, 1, room_id);
    sqlite3_bind_int64 (stmt, 2, (int64_t) entry->seq);
    sqlite3_bind_text (stmt, 3, entry->kind.data, (int) entry->kind.size, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 4, entry->user.data, (int) entry->user.size, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 5, entry->ts);
    if (entry->event.size == 0)
        sqlite3_bind_text (stmt, 6, entry->text.data ? entry->text.data : "",
                           (int) entry->text.size, SQLITE_STATIC);
    else
        sqlite3_bind_text (stmt, 7, entry->event.data, (int) entry->event.size, SQLITE_STATIC);
    int rc = s_step_done (stmt);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        s_fail (pending, "conflict", "The room '%.*s' has an entry with seq %" PRIu64 " already.",
                (int) pending->room.size, pending->room.data, entry->seq);
        return SQLITE_OK;
    }
    return rc;
}

static int64_t
s_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

//  Packs 'room' (the room map, as it is now) as the next key of an open map
static int
s_pack_room_field (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    char key [S_NAME_MAX + 1];
    int rc = s_room_find (self, pending, key);
    if (rc == SQLITE_ROW) {
        s_pack_str (packer, "room");
        s_pack_room (packer, self->sql [S_SQL_ROOM_GET], false);
    }
    s_finish_stmt (self->sql [S_SQL_ROOM_GET]);
    return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
}

//  Binds a name (user or room) lower-cased, as a transient copy
static void
s_bind_key (sqlite3_stmt *stmt, int param, const s_text_t *name)
{
    char key [S_NAME_MAX + 1];
    s_name_key (name, key);
    sqlite3_bind_text (stmt, param, key, (int) name->size, SQLITE_TRANSIENT);
}

//  Counts the rows of a count statement bound to one id
static int
s_count_by_id (store_t *self, s_sql_t sql, int64_t id, int64_t *count_p)
{
    sqlite3_stmt *stmt = self->sql [sql];
    sqlite3_bind_int64 (stmt, 1, id);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        *count_p = sqlite3_column_int64 (stmt, 0);
        rc = SQLITE_OK;
    }
    s_finish_stmt (stmt);
    return rc;
}

//  Fails pending with quota_owned or quota_joined when the user has
//  reached a quota (0 for none): owns max_owned rooms, or belongs to
//  max_joined. Counted by index, before the new room or membership.
static int
s_check_quotas (store_t *self, s_pending_t *pending, int64_t user_id)
{
    int64_t count = 0;
    int rc;
    if (pending->max_owned) {
        if ((rc = s_count_by_id (self, S_SQL_OWNED_COUNT, user_id, &count)) != SQLITE_OK)
            return rc;
        if (count >= (int64_t) pending->max_owned) {
            s_fail (pending, "quota_owned", "'%.*s' owns %" PRId64 " rooms, the most allowed.",
                    (int) pending->name.size, pending->name.data, count);
            return SQLITE_OK;
        }
    }
    if (pending->max_joined) {
        if ((rc = s_count_by_id (self, S_SQL_JOINED_COUNT, user_id, &count)) != SQLITE_OK)
            return rc;
        if (count >= (int64_t) pending->max_joined)
            s_fail (pending, "quota_joined", "'%.*s' belongs to %" PRId64 " rooms, the most"
                    " allowed.", (int) pending->name.size, pending->name.data, count);
    }
    return SQLITE_OK;
}

//  Whether a room named as pending's exists: a taken name answers conflict
//  before any quota (a repeated create is recognised first)
static int
s_room_taken (store_t *self, s_pending_t *pending, bool *taken_p)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_GET];
    s_bind_key (stmt, 1, &pending->room);
    int rc = sqlite3_step (stmt);
    s_finish_stmt (stmt);
    *taken_p = rc == SQLITE_ROW;
    return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
}

static int
s_run_room_create (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    int rc;
    int64_t owner_id = s_user_id (self, &pending->name, NULL, &rc);
    if (rc != SQLITE_OK)
        return rc;
    if (!owner_id) {
        s_fail (pending, "not_found", "No user is named '%.*s' to own the room.",
                (int) pending->name.size, pending->name.data);
        return SQLITE_OK;
    }
    if (pending->max_owned || pending->max_joined) {
        bool taken = false;
        if ((rc = s_room_taken (self, pending, &taken)) != SQLITE_OK)
            return rc;
        if (!taken && ((rc = s_check_quotas (self, pending, owner_id)) != SQLITE_OK
                       || pending->code))
            return rc;
    }
    char key [S_NAME_MAX + 1];
    s_name_key (&pending->room, key);
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_INSERT];
    sqlite3_bind_text (stmt, 1, pending->room.data, (int) pending->room.size, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, key, (int) pending->room.size, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, pending->description.data ? pending->description.data : "",
                       (int) pending->description.size, SQLITE_STATIC);
    sqlite3_bind_int (stmt, 4, pending->is_private ? 1 : 0);
    sqlite3_bind_int64 (stmt, 5, (int64_t) pending->max_participants);
    sqlite3_bind_int64 (stmt, 6, owner_id);
    sqlite3_bind_int64 (stmt, 7, pending->created_at);
    rc = s_step_done (stmt);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        s_fail (pending, "conflict", "A room named '%.*s' exists (room names ignore case).",
                (int) pending->room.size, pending->room.data);
        return SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *member = self->sql [S_SQL_MEMBER_INSERT];
    sqlite3_bind_int64 (member, 1, sqlite3_last_insert_rowid (self->db));
    sqlite3_bind_int64 (member, 2, owner_id);
    sqlite3_bind_int64 (member, 3, pending->created_at);
    if ((rc = s_step_done (member)) != SQLITE_OK)
        return rc;
    msgpack_pack_map (packer, 1);
    return s_pack_room_field (self, pending, packer);
}

static int
s_run_room_get (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    msgpack_pack_map (packer, 1);
    return s_pack_room_field (self, pending, packer);
}

//  Packs {rooms, more} from a stepped statement: at most limit rooms, and
//  fewer, with more, at a whole room before the answer would pass
//  S_REPLY_BUDGET. A statement that yields a room past limit says more too.
static int
s_pack_rooms (s_pending_t *pending, msgpack_packer *packer, sqlite3_stmt *stmt, uint32_t limit)
{
    msgpack_sbuffer rows;
    msgpack_sbuffer_init (&rows);
    msgpack_packer row_packer;
    msgpack_packer_init (&row_packer, &rows, msgpack_sbuffer_write);
    uint32_t count = 0;
    bool more = false;
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        size_t before = rows.size;
        if (count < limit)
            s_pack_room (&row_packer, stmt, true);
        if (count == limit || rows.size > S_REPLY_BUDGET) {
            rows.size = before;         //  the answer stops at a whole room
            more = true;
            rc = SQLITE_DONE;
            break;
        }
        count++;
    }
    s_finish_stmt (stmt);
    if (rc == SQLITE_DONE) {
        msgpack_pack_map (packer, 2);
        s_pack_str (packer, "rooms");
        msgpack_pack_array (packer, count);
        msgpack_sbuffer_write (&pending->result, rows.data, rows.size);
        s_pack_str (packer, "more");
        s_pack_bool (packer, more);
        rc = SQLITE_OK;
    }
    msgpack_sbuffer_destroy (&rows);
    return rc;
}

static int
s_run_room_list (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    char key [S_NAME_MAX + 1];
    s_name_key (&pending->name, key);
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_LIST];
    sqlite3_bind_text (stmt, 1, key, (int) pending->name.size, SQLITE_STATIC);
    return s_pack_rooms (pending, packer, stmt, UINT32_MAX);
}

//  Packs a page of rooms from a statement bound but for its LIMIT, the
//  parameter limit_param (bound here to one more room than asked, to tell
//  whether more remain)
static int
s_pack_room_page (store_t *self, s_pending_t *pending, msgpack_packer *packer,
                  sqlite3_stmt *stmt, int limit_param)
{
    (void) self;
    sqlite3_bind_int64 (stmt, limit_param, (int64_t) pending->limit + 1);
    return s_pack_rooms (pending, packer, stmt, pending->limit);
}

static int
s_run_room_joined (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_JOINED];
    s_bind_key (stmt, 1, &pending->name);
    s_bind_key (stmt, 2, &pending->after);
    return s_pack_room_page (self, pending, packer, stmt, 3);
}

static int
s_run_room_public (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_PUBLIC];
    s_bind_key (stmt, 1, &pending->name);
    sqlite3_bind_int64 (stmt, 2, pending->has_after_active ? pending->after_active : INT64_MAX);
    s_bind_key (stmt, 3, &pending->after);
    return s_pack_room_page (self, pending, packer, stmt, 4);
}

static int
s_run_room_directory (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    //  Room names are ASCII (the prefix is checked so): every name that
    //  starts with the prefix sorts below the prefix followed by DEL
    char end [S_ROOM_MAX + 2];
    s_name_key (&pending->prefix, end);
    end [pending->prefix.size] = 0x7f;
    end [pending->prefix.size + 1] = 0;
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_DIRECTORY];
    s_bind_key (stmt, 1, &pending->name);
    s_bind_key (stmt, 2, &pending->after);
    s_bind_key (stmt, 3, &pending->prefix);
    sqlite3_bind_text (stmt, 4, end, (int) pending->prefix.size + 1, SQLITE_TRANSIENT);
    return s_pack_room_page (self, pending, packer, stmt, 5);
}

//  Packs the member names of a room, sorted, as an array
static int
s_pack_member_names (store_t *self, int64_t room_id, msgpack_packer *packer,
                     msgpack_sbuffer *into)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_MEMBER_NAMES];
    sqlite3_bind_int64 (stmt, 1, room_id);
    msgpack_sbuffer rows;
    msgpack_sbuffer_init (&rows);
    msgpack_packer row_packer;
    msgpack_packer_init (&row_packer, &rows, msgpack_sbuffer_write);
    uint32_t count = 0;
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        s_pack_text_column (&row_packer, stmt, 0);
        count++;
    }
    s_finish_stmt (stmt);
    if (rc == SQLITE_DONE) {
        msgpack_pack_array (packer, count);
        msgpack_sbuffer_write (into, rows.data, rows.size);
        rc = SQLITE_OK;
    }
    msgpack_sbuffer_destroy (&rows);
    return rc;
}

static int
s_run_room_delete (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    char key [S_NAME_MAX + 1];
    int rc = s_room_find (self, pending, key);
    if (rc != SQLITE_ROW) {
        s_finish_stmt (self->sql [S_SQL_ROOM_GET]);
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_stmt *room = self->sql [S_SQL_ROOM_GET];
    int64_t room_id = sqlite3_column_int64 (room, 0);
    msgpack_pack_map (packer, 2);
    s_pack_str (packer, "name");
    s_pack_text_column (packer, room, 1);
    s_finish_stmt (room);
    s_pack_str (packer, "members");
    if ((rc = s_pack_member_names (self, room_id, packer, &pending->result)) != SQLITE_OK)
        return rc;
    //  Members, invitations and the timeline go by ON DELETE CASCADE
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_DELETE];
    sqlite3_bind_int64 (stmt, 1, room_id);
    return s_step_done (stmt);
}

static int
s_member_count (store_t *self, int64_t room_id, int64_t *count_p)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_MEMBER_COUNT];
    sqlite3_bind_int64 (stmt, 1, room_id);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        *count_p = sqlite3_column_int64 (stmt, 0);
        rc = SQLITE_OK;
    }
    s_finish_stmt (stmt);
    return rc;
}

static int
s_run_member_add (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    //  The checks in the order of proto/STORE.md
    char key [S_NAME_MAX + 1];
    int rc = s_room_find (self, pending, key);
    if (rc != SQLITE_ROW) {
        s_finish_stmt (self->sql [S_SQL_ROOM_GET]);
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_stmt *room = self->sql [S_SQL_ROOM_GET];
    int64_t room_id = sqlite3_column_int64 (room, 0);
    bool is_private = sqlite3_column_int (room, 3) != 0;
    int64_t max_participants = sqlite3_column_int64 (room, 4);
    int64_t members = sqlite3_column_int64 (room, 7);
    int64_t owner_id = sqlite3_column_int64 (room, 9);
    s_finish_stmt (room);

    int64_t user_id = s_user_id (self, &pending->name, NULL, &rc);
    if (rc != SQLITE_OK)
        return rc;
    if (!user_id) {
        s_fail (pending, "not_found", "No user is named '%.*s'.",
                (int) pending->name.size, pending->name.data);
        return SQLITE_OK;
    }
    bool member, invited = false;
    if ((rc = s_pair_exists (self, S_SQL_MEMBER_IS, room_id, user_id, &member)) != SQLITE_OK)
        return rc;
    if (!member) {
        //  The owner, who may have left, is always let back in
        if (is_private && (rc = s_pair_exists (self, S_SQL_INVITE_IS, room_id, user_id,
                                               &invited)) != SQLITE_OK)
            return rc;
        bool is_owner = user_id == owner_id;
        if (is_private && !invited && !is_owner) {
            s_fail (pending, "forbidden", "The room '%.*s' is private and '%.*s' is not invited.",
                    (int) pending->room.size, pending->room.data,
                    (int) pending->name.size, pending->name.data);
            return SQLITE_OK;
        }
        if (members >= max_participants) {
            s_fail (pending, "full", "The room '%.*s' is full (%" PRId64 " members).",
                    (int) pending->room.size, pending->room.data, max_participants);
            return SQLITE_OK;
        }
        if ((rc = s_check_quotas (self, pending, user_id)) != SQLITE_OK || pending->code)
            return rc;
        sqlite3_stmt *insert = self->sql [S_SQL_MEMBER_INSERT];
        sqlite3_bind_int64 (insert, 1, room_id);
        sqlite3_bind_int64 (insert, 2, user_id);
        sqlite3_bind_int64 (insert, 3, pending->has_entry ? pending->entry.ts : s_now_ms ());
        if ((rc = s_step_done (insert)) != SQLITE_OK)
            return rc;
        //  Joining consumes the invitation
        if (invited && (rc = s_pair_run (self, S_SQL_INVITE_DELETE, room_id, user_id)) != SQLITE_OK)
            return rc;
        if (pending->has_entry) {
            rc = s_entry_insert (self, pending, room_id, &pending->entry);
            if (rc != SQLITE_OK || pending->code)
                return rc;
        }
        members++;
    }
    msgpack_pack_map (packer, 3);
    s_pack_str (packer, "added");
    s_pack_bool (packer, !member);
    s_pack_str (packer, "members");
    msgpack_pack_uint64 (packer, (uint64_t) members);
    return s_pack_room_field (self, pending, packer);
}

static int
s_run_member_remove (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    int rc;
    int64_t room_id = s_room_id (self, pending, &rc);
    if (!room_id)
        return rc;
    int64_t user_id = s_user_id (self, &pending->name, NULL, &rc);
    if (rc != SQLITE_OK)
        return rc;
    if (user_id) {
        if ((rc = s_pair_run (self, S_SQL_MEMBER_DELETE, room_id, user_id)) != SQLITE_OK)
            return rc;
    }
    if (!user_id || sqlite3_changes (self->db) == 0) {
        s_fail (pending, "not_member", "'%.*s' is not a member of the room '%.*s'.",
                (int) pending->name.size, pending->name.data,
                (int) pending->room.size, pending->room.data);
        return SQLITE_OK;
    }
    if (pending->has_entry) {
        rc = s_entry_insert (self, pending, room_id, &pending->entry);
        if (rc != SQLITE_OK || pending->code)
            return rc;
    }
    int64_t members = 0;
    if ((rc = s_member_count (self, room_id, &members)) != SQLITE_OK)
        return rc;
    msgpack_pack_map (packer, 1);
    s_pack_str (packer, "members");
    msgpack_pack_uint64 (packer, (uint64_t) members);
    return SQLITE_OK;
}

static int
s_run_member_list (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    int rc;
    int64_t room_id = s_room_id (self, pending, &rc);
    if (!room_id)
        return rc;
    msgpack_pack_map (packer, 1);
    s_pack_str (packer, "members");
    return s_pack_member_names (self, room_id, packer, &pending->result);
}

static int
s_run_invite_add (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    int rc;
    int64_t room_id = s_room_id (self, pending, &rc);
    if (!room_id)
        return rc;
    char registered [S_NAME_MAX + 1];
    int64_t user_id = s_user_id (self, &pending->name, registered, &rc);
    if (rc != SQLITE_OK)
        return rc;
    if (!user_id) {
        s_fail (pending, "not_found", "No user is named '%.*s'.",
                (int) pending->name.size, pending->name.data);
        return SQLITE_OK;
    }
    bool member;
    if ((rc = s_pair_exists (self, S_SQL_MEMBER_IS, room_id, user_id, &member)) != SQLITE_OK)
        return rc;
    if (!member) {
        sqlite3_stmt *stmt = self->sql [S_SQL_INVITE_PUT];
        sqlite3_bind_int64 (stmt, 1, room_id);
        sqlite3_bind_int64 (stmt, 2, user_id);
        sqlite3_bind_text (stmt, 3, pending->from.data, (int) pending->from.size, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 4, s_now_ms ());
        if ((rc = s_step_done (stmt)) != SQLITE_OK)
            return rc;
    }
    msgpack_pack_map (packer, 2);
    s_pack_str (packer, "user");
    s_pack_str (packer, registered);
    s_pack_str (packer, "already_member");
    s_pack_bool (packer, member);
    return SQLITE_OK;
}

static int
s_run_msg_append (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    int rc;
    int64_t room_id = s_room_id (self, pending, &rc);
    if (!room_id)
        return rc;
    //  Every entry of the run inside the request's savepoint: a taken seq
    //  fails the request, and s_run_batch then rolls the savepoint back, so
    //  that none of the run stays (proto/STORE.md, Atomicity)
    s_entry_t entry = { 0 };
    for (uint32_t index = 0; index < pending->entry_count; index++) {
        //  Read again from fields, as s_read_run read it: it cannot fail
        if (s_entry_read (pending, &pending->entries [index], &entry))
            return SQLITE_OK;
        rc = s_entry_insert (self, pending, room_id, &entry);
        if (rc != SQLITE_OK || pending->code)
            return rc;
    }
    //  The room's activity, for room.list's public rooms: one row, in the
    //  same transaction (no round trip of its own)
    sqlite3_stmt *active = self->sql [S_SQL_ROOM_ACTIVE];
    sqlite3_bind_int64 (active, 1, room_id);
    sqlite3_bind_int64 (active, 2, entry.ts);
    if ((rc = s_step_done (active)) != SQLITE_OK)
        return rc;
    msgpack_pack_map (packer, 1);
    s_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, entry.seq);
    return SQLITE_OK;
}

static void
s_pack_entry_row (msgpack_packer *packer, sqlite3_stmt *stmt)
{
    bool is_message = sqlite3_column_type (stmt, 4) != SQLITE_NULL;
    msgpack_pack_map (packer, 5);
    s_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, (uint64_t) sqlite3_column_int64 (stmt, 0));
    s_pack_str (packer, "kind");
    s_pack_text_column (packer, stmt, 1);
    s_pack_str (packer, "user");
    s_pack_text_column (packer, stmt, 2);
    s_pack_str (packer, "ts");
    msgpack_pack_int64 (packer, sqlite3_column_int64 (stmt, 3));
    if (is_message) {
        s_pack_str (packer, "text");
        const void *text = sqlite3_column_blob (stmt, 4);
        int size = sqlite3_column_bytes (stmt, 4);
        msgpack_pack_str_with_body (packer, text ? text : "", (size_t) size);
    }
    else {
        s_pack_str (packer, "event");
        s_pack_text_column (packer, stmt, 5);
    }
}

static int
s_run_msg_history (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    int rc;
    int64_t room_id = s_room_id (self, pending, &rc);
    if (!room_id)
        return rc;
    bool forward = pending->has_after;
    sqlite3_stmt *stmt = self->sql [forward ? S_SQL_HISTORY_AFTER : S_SQL_HISTORY_BEFORE];
    sqlite3_bind_int64 (stmt, 1, room_id);
    sqlite3_bind_int64 (stmt, 2, pending->has_before || forward
                                 ? (int64_t) pending->cursor : INT64_MAX);
    sqlite3_bind_int64 (stmt, 3, (int64_t) pending->limit + 1);

    //  Backward pages come newest first: each row is packed apart and the
    //  rows are written out in reverse, oldest first
    msgpack_sbuffer rows;
    msgpack_sbuffer_init (&rows);
    msgpack_packer row_packer;
    msgpack_packer_init (&row_packer, &rows, msgpack_sbuffer_write);
    size_t *starts = (size_t *) malloc ((pending->limit + 1) * sizeof (size_t));
    if (!starts) {
        s_finish_stmt (stmt);
        msgpack_sbuffer_destroy (&rows);
        return SQLITE_NOMEM;
    }
    uint32_t count = 0;
    bool more = false;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        if (count == pending->limit) {
            more = true;
            break;
        }
        //  Rows come from the cursor's side: a page cut for its bytes
        //  keeps the entries next to the cursor
        size_t start = rows.size;
        s_pack_entry_row (&row_packer, stmt);
        if (rows.size > S_REPLY_BUDGET) {
            rows.size = start;
            more = true;
            break;
        }
        starts [count++] = start;
    }
    s_finish_stmt (stmt);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
        msgpack_pack_map (packer, 2);
        s_pack_str (packer, "messages");
        msgpack_pack_array (packer, count);
        if (forward)
            msgpack_sbuffer_write (&pending->result, rows.data, rows.size);
        else
            for (uint32_t index = count; index-- > 0;) {
                size_t end = index + 1 < count ? starts [index + 1] : rows.size;
                msgpack_sbuffer_write (&pending->result, rows.data + starts [index],
                                       end - starts [index]);
            }
        s_pack_str (packer, "more");
        s_pack_bool (packer, more);
        rc = SQLITE_OK;
    }
    free (starts);
    msgpack_sbuffer_destroy (&rows);
    return rc;
}

//  --------------------------------------------------------------------------
//  Private messages: conversations, read markers

//  The two sides of a private-message request, looked up
typedef struct {
    int64_t me;                     //  user id of 'from' or 'user', 0 if none
    int64_t peer;                   //  user id of 'to' or 'with', 0 if none
    char me_name [S_NAME_MAX + 1];      //  as registered
    char peer_name [S_NAME_MAX + 1];    //  as registered
    int64_t conversation;           //  conversations.id, 0 if none yet
    int64_t last_seq;               //  of the conversation
    int64_t my_marker;              //  me's read marker
} s_pm_pair_t;

//  Looks up both users and their conversation. Returns SQLITE_OK (the ids
//  are 0 for what does not exist) or a fatal code.
static int
s_pm_pair_find (store_t *self, const s_text_t *me, const s_text_t *peer, s_pm_pair_t *pair)
{
    memset (pair, 0, sizeof *pair);
    int rc;
    pair->me = s_user_id (self, me, pair->me_name, &rc);
    if (rc != SQLITE_OK)
        return rc;
    pair->peer = s_user_id (self, peer, pair->peer_name, &rc);
    if (rc != SQLITE_OK || !pair->me || !pair->peer || pair->me == pair->peer)
        return rc;
    sqlite3_stmt *stmt = self->sql [S_SQL_CONV_GET];
    bool me_first = pair->me < pair->peer;
    sqlite3_bind_int64 (stmt, 1, me_first ? pair->me : pair->peer);
    sqlite3_bind_int64 (stmt, 2, me_first ? pair->peer : pair->me);
    rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        pair->conversation = sqlite3_column_int64 (stmt, 0);
        pair->last_seq = sqlite3_column_int64 (stmt, 1);
        pair->my_marker = sqlite3_column_int64 (stmt, me_first ? 2 : 3);
    }
    s_finish_stmt (stmt);
    return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
}

//  Fails pending with not_found if either side does not exist; true if so
static bool
s_pm_pair_missing (s_pending_t *pending, const s_text_t *me, const s_pm_pair_t *pair)
{
    if (pair->me && pair->peer)
        return false;
    const s_text_t *missing = pair->me ? &pending->peer : me;
    s_fail (pending, "not_found", "No user is named '%.*s'.",
            (int) missing->size, missing->data);
    return true;
}

//  Counts the messages to me above marker in the conversation
static int
s_pm_unread (store_t *self, const s_pm_pair_t *pair, int64_t marker, int64_t *unread_p)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_PM_UNREAD];
    sqlite3_bind_int64 (stmt, 1, pair->conversation);
    sqlite3_bind_int64 (stmt, 2, marker);
    sqlite3_bind_int64 (stmt, 3, pair->me);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        *unread_p = sqlite3_column_int64 (stmt, 0);
        rc = SQLITE_OK;
    }
    s_finish_stmt (stmt);
    return rc;
}

//  Packs a pm entry: seq, from_id, ts and text at columns first.. of stmt
static void
s_pack_pm_entry (msgpack_packer *packer, sqlite3_stmt *stmt, int first, int64_t me_id,
                 const char *me_name, const char *peer_name)
{
    bool from_me = sqlite3_column_int64 (stmt, first + 1) == me_id;
    msgpack_pack_map (packer, 5);
    s_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, (uint64_t) sqlite3_column_int64 (stmt, first));
    s_pack_str (packer, "from");
    s_pack_str (packer, from_me ? me_name : peer_name);
    s_pack_str (packer, "to");
    s_pack_str (packer, from_me ? peer_name : me_name);
    s_pack_str (packer, "text");
    //  Stored as sent, NUL and all
    const void *text = sqlite3_column_blob (stmt, first + 3);
    int size = sqlite3_column_bytes (stmt, first + 3);
    msgpack_pack_str_with_body (packer, text ? text : "", (size_t) size);
    s_pack_str (packer, "ts");
    msgpack_pack_int64 (packer, sqlite3_column_int64 (stmt, first + 2));
}

static int
s_run_pm_append (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    s_pm_pair_t pair;
    int rc = s_pm_pair_find (self, &pending->from, &pending->peer, &pair);
    if (rc != SQLITE_OK || s_pm_pair_missing (pending, &pending->from, &pair))
        return rc;
    if (!pair.conversation) {
        //  The first message starts the conversation; a conflict cannot
        //  follow, but the request's savepoint would undo it if one did
        sqlite3_stmt *insert = self->sql [S_SQL_CONV_INSERT];
        sqlite3_bind_int64 (insert, 1, pair.me < pair.peer ? pair.me : pair.peer);
        sqlite3_bind_int64 (insert, 2, pair.me < pair.peer ? pair.peer : pair.me);
        if ((rc = s_step_done (insert)) != SQLITE_OK)
            return rc;
        pair.conversation = sqlite3_last_insert_rowid (self->db);
    }
    //  Every message of the run inside the request's savepoint: a taken seq
    //  fails the request, and s_run_batch then rolls the savepoint back, so
    //  that none of the run stays, nor the conversation it started
    s_pm_message_t message = { 0 };
    for (uint32_t index = 0; index < pending->entry_count; index++) {
        //  Read again from fields, as s_read_pm_run read it: it cannot fail
        if (s_pm_message_read (pending, &pending->entries [index], &message))
            return SQLITE_OK;
        sqlite3_stmt *stmt = self->sql [S_SQL_PM_INSERT];
        sqlite3_bind_int64 (stmt, 1, pair.conversation);
        sqlite3_bind_int64 (stmt, 2, (int64_t) message.seq);
        sqlite3_bind_int64 (stmt, 3, message.from_peer ? pair.peer : pair.me);
        sqlite3_bind_int64 (stmt, 4, message.ts);
        sqlite3_bind_text (stmt, 5, message.text.data ? message.text.data : "",
                           (int) message.text.size, SQLITE_STATIC);
        rc = s_step_done (stmt);
        if ((rc & 0xff) == SQLITE_CONSTRAINT) {
            s_fail (pending, "conflict", "The conversation of '%s' and '%s' has a message with"
                    " seq %" PRIu64 " already.", pair.me_name, pair.peer_name, message.seq);
            return SQLITE_OK;
        }
        if (rc != SQLITE_OK)
            return rc;
    }
    //  The run's seqs rise, so its last is the newest: one advance leaves
    //  what one per message would (the unread counts are counted from
    //  pm_entries, each row with its sender)
    sqlite3_stmt *stmt = self->sql [S_SQL_CONV_ADVANCE];
    sqlite3_bind_int64 (stmt, 1, pair.conversation);
    sqlite3_bind_int64 (stmt, 2, (int64_t) message.seq);
    sqlite3_bind_int64 (stmt, 3, message.ts);
    if ((rc = s_step_done (stmt)) != SQLITE_OK)
        return rc;
    msgpack_pack_map (packer, 3);
    s_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, message.seq);
    s_pack_str (packer, "from");
    s_pack_str (packer, pair.me_name);
    s_pack_str (packer, "to");
    s_pack_str (packer, pair.peer_name);
    return SQLITE_OK;
}

static int
s_run_pm_last_seq (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    s_pm_pair_t pair;
    int rc = s_pm_pair_find (self, &pending->name, &pending->peer, &pair);
    if (rc != SQLITE_OK)
        return rc;
    msgpack_pack_map (packer, 1);
    s_pack_str (packer, "last_seq");
    msgpack_pack_uint64 (packer, (uint64_t) pair.last_seq);
    return SQLITE_OK;
}

static int
s_run_pm_history (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    s_pm_pair_t pair;
    int rc = s_pm_pair_find (self, &pending->name, &pending->peer, &pair);
    if (rc != SQLITE_OK)
        return rc;
    if (!pair.conversation) {
        //  Unknown users, or no message yet: an empty conversation
        msgpack_pack_map (packer, 2);
        s_pack_str (packer, "messages");
        msgpack_pack_array (packer, 0);
        s_pack_str (packer, "more");
        s_pack_bool (packer, false);
        return SQLITE_OK;
    }
    bool forward = pending->has_after;
    sqlite3_stmt *stmt = self->sql [forward ? S_SQL_PM_AFTER : S_SQL_PM_BEFORE];
    sqlite3_bind_int64 (stmt, 1, pair.conversation);
    sqlite3_bind_int64 (stmt, 2, pending->has_before || forward
                                 ? (int64_t) pending->cursor : INT64_MAX);
    sqlite3_bind_int64 (stmt, 3, (int64_t) pending->limit + 1);

    //  Backward pages come newest first: each row is packed apart and the
    //  rows are written out in reverse, oldest first
    msgpack_sbuffer rows;
    msgpack_sbuffer_init (&rows);
    msgpack_packer row_packer;
    msgpack_packer_init (&row_packer, &rows, msgpack_sbuffer_write);
    size_t *starts = (size_t *) malloc ((pending->limit + 1) * sizeof (size_t));
    if (!starts) {
        s_finish_stmt (stmt);
        msgpack_sbuffer_destroy (&rows);
        return SQLITE_NOMEM;
    }
    uint32_t count = 0;
    bool more = false;
    //  Rows come nearest the cursor first, so a page cut for its bytes
    //  keeps the entries next to its cursor
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        if (count == pending->limit) {
            more = true;
            break;
        }
        size_t start = rows.size;
        s_pack_pm_entry (&row_packer, stmt, 0, pair.me, pair.me_name, pair.peer_name);
        if (count && rows.size > S_REPLY_BUDGET) {
            rows.size = start;
            more = true;
            break;
        }
        starts [count++] = start;
    }
    s_finish_stmt (stmt);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
        msgpack_pack_map (packer, 2);
        s_pack_str (packer, "messages");
        msgpack_pack_array (packer, count);
        if (forward)
            msgpack_sbuffer_write (&pending->result, rows.data, rows.size);
        else
            for (uint32_t index = count; index-- > 0;) {
                size_t end = index + 1 < count ? starts [index + 1] : rows.size;
                msgpack_sbuffer_write (&pending->result, rows.data + starts [index],
                                       end - starts [index]);
            }
        s_pack_str (packer, "more");
        s_pack_bool (packer, more);
        rc = SQLITE_OK;
    }
    free (starts);
    msgpack_sbuffer_destroy (&rows);
    return rc;
}

static int
s_run_pm_conversations (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    char me_name [S_NAME_MAX + 1];
    int rc;
    int64_t me = s_user_id (self, &pending->name, me_name, &rc);
    if (rc != SQLITE_OK)
        return rc;
    msgpack_sbuffer rows;
    msgpack_sbuffer_init (&rows);
    msgpack_packer row_packer;
    msgpack_packer_init (&row_packer, &rows, msgpack_sbuffer_write);
    uint32_t count = 0;
    bool more = false;
    if (me) {
        sqlite3_stmt *stmt = self->sql [S_SQL_CONV_LIST];
        sqlite3_bind_int64 (stmt, 1, me);
        sqlite3_bind_int64 (stmt, 2, pending->limit);
        //  Columns: id, other's name, last_seq, last_ts, then the newest
        //  entry's from_id, text, ts, then the unread count
        while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
            size_t start = rows.size;
            const char *peer_name = (const char *) sqlite3_column_text (stmt, 1);
            bool from_me = sqlite3_column_int64 (stmt, 4) == me;
            msgpack_pack_map (&row_packer, 3);
            s_pack_str (&row_packer, "with");
            s_pack_str (&row_packer, peer_name ? peer_name : "");
            s_pack_str (&row_packer, "last");
            msgpack_pack_map (&row_packer, 5);
            s_pack_str (&row_packer, "seq");
            msgpack_pack_uint64 (&row_packer, (uint64_t) sqlite3_column_int64 (stmt, 2));
            s_pack_str (&row_packer, "from");
            s_pack_str (&row_packer, from_me ? me_name : peer_name);
            s_pack_str (&row_packer, "to");
            s_pack_str (&row_packer, from_me ? peer_name : me_name);
            s_pack_str (&row_packer, "text");
            const void *text = sqlite3_column_blob (stmt, 5);
            int size = sqlite3_column_bytes (stmt, 5);
            msgpack_pack_str_with_body (&row_packer, text ? text : "", (size_t) size);
            s_pack_str (&row_packer, "ts");
            msgpack_pack_int64 (&row_packer, sqlite3_column_int64 (stmt, 6));
            s_pack_str (&row_packer, "unread");
            msgpack_pack_uint64 (&row_packer, (uint64_t) sqlite3_column_int64 (stmt, 7));
            if (count && rows.size > S_REPLY_BUDGET) {
                rows.size = start;
                more = true;
                rc = SQLITE_DONE;
                break;
            }
            count++;
        }
        s_finish_stmt (stmt);
    }
    else
        rc = SQLITE_DONE;       //  no such user: no conversations
    if (rc == SQLITE_DONE) {
        msgpack_pack_map (packer, 2);
        s_pack_str (packer, "conversations");
        msgpack_pack_array (packer, count);
        msgpack_sbuffer_write (&pending->result, rows.data, rows.size);
        s_pack_str (packer, "more");
        s_pack_bool (packer, more);
        rc = SQLITE_OK;
    }
    msgpack_sbuffer_destroy (&rows);
    return rc;
}

static int
s_run_pm_read (store_t *self, s_pending_t *pending, msgpack_packer *packer)
{
    s_pm_pair_t pair;
    int rc = s_pm_pair_find (self, &pending->name, &pending->peer, &pair);
    if (rc != SQLITE_OK || s_pm_pair_missing (pending, &pending->name, &pair))
        return rc;
    int64_t unread = 0;
    //  Without a conversation there is nothing to mark: it exists from its
    //  first message, and a marker alone would not make one
    if (pair.conversation) {
        int64_t marker = pair.my_marker;
        if ((int64_t) pending->seq > marker) {
            sqlite3_stmt *stmt = self->sql [S_SQL_CONV_READ];
            sqlite3_bind_int64 (stmt, 1, pair.conversation);
            sqlite3_bind_int64 (stmt, 2, pair.me);
            sqlite3_bind_int64 (stmt, 3, (int64_t) pending->seq);
            if ((rc = s_step_done (stmt)) != SQLITE_OK)
                return rc;
            marker = (int64_t) pending->seq;
        }
        if ((rc = s_pm_unread (self, &pair, marker, &unread)) != SQLITE_OK)
            return rc;
    }
    msgpack_pack_map (packer, 1);
    s_pack_str (packer, "unread");
    msgpack_pack_uint64 (packer, (uint64_t) unread);
    return SQLITE_OK;
}

static int
s_run_one (store_t *self, s_pending_t *pending)
{
    msgpack_packer packer;
    msgpack_packer_init (&packer, &pending->result, msgpack_sbuffer_write);
    switch (pending->op) {
        case S_OP_INFO:              return s_run_info (self, pending, &packer);
        case S_OP_USER_CREATE:       return s_run_user_create (self, pending, &packer);
        case S_OP_USER_GET:          return s_run_user_get (self, pending, &packer);
        case S_OP_USER_LIST:         return s_run_user_list (self, pending, &packer);
        case S_OP_USER_SEEN:         return s_run_user_seen (self, pending, &packer);
        case S_OP_TOKEN_PUT:         return s_run_token_put (self, pending, &packer);
        case S_OP_TOKEN_GET:         return s_run_token_get (self, pending, &packer);
        case S_OP_TOKEN_DELETE:      return s_run_token_delete (self, pending, &packer);
        case S_OP_TOKEN_DELETE_USER:
            return s_run_delete_count (self, pending, &packer, S_SQL_TOKEN_DELETE_USER);
        case S_OP_TOKEN_PURGE:
            return s_run_delete_count (self, pending, &packer, S_SQL_TOKEN_PURGE);
        case S_OP_TOKEN_TOUCH:       return s_run_token_touch (self, pending, &packer);
        case S_OP_TOKEN_TRIM:        return s_run_token_trim (self, pending, &packer);
        case S_OP_ROOM_CREATE:       return s_run_room_create (self, pending, &packer);
        case S_OP_ROOM_GET:          return s_run_room_get (self, pending, &packer);
        case S_OP_ROOM_LIST:         return s_run_room_list (self, pending, &packer);
        case S_OP_ROOM_JOINED:       return s_run_room_joined (self, pending, &packer);
        case S_OP_ROOM_PUBLIC:       return s_run_room_public (self, pending, &packer);
        case S_OP_ROOM_DIRECTORY:    return s_run_room_directory (self, pending, &packer);
        case S_OP_ROOM_DELETE:       return s_run_room_delete (self, pending, &packer);
        case S_OP_MEMBER_ADD:        return s_run_member_add (self, pending, &packer);
        case S_OP_MEMBER_REMOVE:     return s_run_member_remove (self, pending, &packer);
        case S_OP_MEMBER_LIST:       return s_run_member_list (self, pending, &packer);
        case S_OP_INVITE_ADD:        return s_run_invite_add (self, pending, &packer);
        case S_OP_MSG_APPEND:        return s_run_msg_append (self, pending, &packer);
        case S_OP_MSG_HISTORY:       return s_run_msg_history (self, pending, &packer);
        case S_OP_PM_APPEND:         return s_run_pm_append (self, pending, &packer);
        case S_OP_PM_LAST_SEQ:       return s_run_pm_last_seq (self, pending, &packer);
        case S_OP_PM_HISTORY:        return s_run_pm_history (self, pending, &packer);
        case S_OP_PM_CONVERSATIONS:  return s_run_pm_conversations (self, pending, &packer);
        case S_OP_PM_READ:           return s_run_pm_read (self, pending, &packer);
    }
    return SQLITE_INTERNAL;
}


//  --------------------------------------------------------------------------
//  The batch: one transaction, a savepoint per write, answers after COMMIT

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

//  A request's own failure that is not the batch's: its savepoint is undone
//  and it alone answers internal
static void
s_fail_internal (store_t *self, s_pending_t *pending, int rc)
{
    s_fail (pending, "internal", "The store failed: %s.", sqlite3_errstr (rc));
    self->host->log (self->ctx, PARLEY_LOG_ERROR, "%s on %s: %s (%d)",
                     s_ops [pending->op].type, self->path, sqlite3_errmsg (self->db), rc);
}

//  Runs pending [first .. first + count) in one transaction and answers each
static void
s_run_batch (store_t *self, size_t first, size_t count)
{
    int fatal = SQLITE_OK;
    const char *fatal_where = "BEGIN";
    int rc = s_step_done (self->sql [S_SQL_BEGIN]);
    if (rc != SQLITE_OK)
        fatal = rc;

    for (size_t index = first; index < first + count && fatal == SQLITE_OK; index++) {
        s_pending_t *pending = &self->pending [index];
        if (pending->code)
            continue;           //  refused at validation
        if (pending->writes && (rc = s_step_done (self->sql [S_SQL_SAVEPOINT])) != SQLITE_OK) {
            fatal = rc;
            fatal_where = "SAVEPOINT";
            break;
        }
        rc = s_run_one (self, pending);
        if (rc != SQLITE_OK) {
            if (s_is_fatal (rc)) {
                fatal = rc;
                fatal_where = s_ops [pending->op].type;
                break;
            }
            msgpack_sbuffer_clear (&pending->result);
            s_fail_internal (self, pending, rc);
        }
        if (pending->writes) {
            //  A request that failed leaves nothing behind
            if (pending->code)
                s_step_done (self->sql [S_SQL_ROLLBACK_TO]);
            if ((rc = s_step_done (self->sql [S_SQL_RELEASE])) != SQLITE_OK) {
                fatal = rc;
                fatal_where = "RELEASE";
            }
        }
    }
    if (fatal == SQLITE_OK) {
        rc = s_step_done (self->sql [S_SQL_COMMIT]);
        if (rc != SQLITE_OK) {
            fatal = rc;
            fatal_where = "COMMIT";
        }
    }
    if (fatal != SQLITE_OK) {
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "%s failed on %s: %s; %zu requests answered unavailable, none applied",
                         fatal_where, self->path, sqlite3_errstr (fatal), count);
        if (!sqlite3_get_autocommit (self->db))
            s_step_done (self->sql [S_SQL_ROLLBACK]);
        for (size_t index = first; index < first + count; index++) {
            s_pending_t *pending = &self->pending [index];
            if (pending->code && strcmp (pending->code, "bad_request") == 0)
                continue;       //  never ran; its answer stands
            msgpack_sbuffer_clear (&pending->result);
            s_fail (pending, "unavailable", "The store could not commit: %s.",
                    sqlite3_errstr (fatal));
        }
    }
    else
        self->batches++;
    for (size_t index = first; index < first + count; index++)
        s_reply (self, &self->pending [index]);
}

//  Commits and answers everything queued
static void
s_flush (store_t *self)
{
    if (self->pending_count == 0)
        return;
    if (self->group_commit)
        s_run_batch (self, 0, self->pending_count);
    else
        for (size_t index = 0; index < self->pending_count; index++)
            s_run_batch (self, index, 1);
    self->pending_count = 0;
}


//  --------------------------------------------------------------------------
//  Opening the database: every reason to refuse it, said once with the path

static int
s_exec (store_t *self, const char *sql, const char *why)
{
    char *error = NULL;
    int rc = sqlite3_exec (self->db, sql, NULL, NULL, &error);
    if (rc != SQLITE_OK) {
        self->host->log (self->ctx, PARLEY_LOG_ERROR, "cannot open %s: %s: %s",
                         self->path, why, error ? error : sqlite3_errstr (rc));
        sqlite3_free (error);
        return -1;
    }
    return 0;
}

//  Reads one integer from a query; -1 and a log line on failure
static int
s_query_int (store_t *self, const char *sql, int64_t *value_p, const char *why)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step (stmt);
        if (rc == SQLITE_ROW) {
            *value_p = sqlite3_column_int64 (stmt, 0);
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK)
        self->host->log (self->ctx, PARLEY_LOG_ERROR, "cannot open %s: %s: %s%s",
                         self->path, why, sqlite3_errmsg (self->db),
                         (rc & 0xff) == SQLITE_CORRUPT
                         ? " (the database is corrupt: restore a backup)" : "");
    sqlite3_finalize (stmt);
    return rc == SQLITE_OK ? 0 : -1;
}

static int
s_migrate (store_t *self)
{
    if (s_exec (self, "CREATE TABLE IF NOT EXISTS schema_version ("
                      "    version INTEGER PRIMARY KEY,"
                      "    applied_at INTEGER NOT NULL)",
                "cannot create the schema_version table"))
        return -1;
    int64_t version = 0;
    if (s_query_int (self, "SELECT COALESCE (MAX (version), 0) FROM schema_version",
                     &version, "cannot read the schema version"))
        return -1;
    if (version > S_SCHEMA_VERSION) {
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "cannot open %s: its schema version is %" PRId64 ", newer than the %d "
                         "this store-sqlite knows; it was written by a newer Parley: run that "
                         "version, or restore a backup", self->path, version, S_SCHEMA_VERSION);
        return -1;
    }
    for (int64_t next = version + 1; next <= S_SCHEMA_VERSION; next++) {
        char why [64];
        snprintf (why, sizeof why, "migration to schema version %" PRId64, next);
        char record [160];
        snprintf (record, sizeof record,
                  "INSERT INTO schema_version (version, applied_at)"
                  " VALUES (%" PRId64 ", CAST ((julianday ('now') - 2440587.5) * 86400000 AS INTEGER))",
                  next);
        if (s_exec (self, "BEGIN IMMEDIATE", why))
            return -1;
        if (s_exec (self, s_migrations [next - 1], why) || s_exec (self, record, why)
        ||  s_exec (self, "COMMIT", why)) {
            sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
        self->host->log (self->ctx, PARLEY_LOG_INFO, "%s: migrated to schema version %" PRId64,
                         self->path, next);
    }
    return 0;
}

static int
s_open (store_t *self, int busy_timeout)
{
    int rc = sqlite3_open_v2 (self->path, &self->db,
                              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "cannot open %s: %s (does its folder exist and is it writable?)",
                         self->path, self->db ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
        return -1;
    }
    sqlite3_extended_result_codes (self->db, 1);
    //  SQLite falls back to read-only when the file is write-protected: we
    //  could serve no write, so we refuse now rather than fail each later
    if (sqlite3_db_readonly (self->db, "main") == 1) {
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "cannot open %s: the file is read-only; the store needs to write it",
                         self->path);
        return -1;
    }
    sqlite3_busy_timeout (self->db, busy_timeout);

    //  The first statement reads the file: a file that is not a database
    //  fails here
    int64_t ignored;
    if (s_query_int (self, "SELECT count (*) FROM sqlite_schema", &ignored,
                     "the file is not a usable SQLite database"))
        return -1;

    sqlite3_stmt *stmt = NULL;
    const unsigned char *mode = NULL;
    rc = sqlite3_prepare_v2 (self->db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL);
    if (rc == SQLITE_OK && sqlite3_step (stmt) == SQLITE_ROW)
        mode = sqlite3_column_text (stmt, 0);
    bool wal = mode && strcmp ((const char *) mode, "wal") == 0;
    if (!wal)
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "cannot open %s: cannot switch it to WAL mode (%s); is its folder "
                         "writable?", self->path, mode ? (const char *) mode : sqlite3_errmsg (self->db));
    sqlite3_finalize (stmt);
    if (!wal)
        return -1;

    //  FULL: in WAL mode NORMAL may lose the last commits on power loss, and
    //  an acknowledged write must survive (proto/STORE.md)
    if (s_exec (self, "PRAGMA synchronous = FULL", "cannot set synchronous")
    ||  s_exec (self, "PRAGMA foreign_keys = ON", "cannot enable foreign keys")
    ||  s_migrate (self))
        return -1;

    //  Checks the file's pages once: a damaged database is refused at start
    //  rather than half-served. Cheap for accounts; revisit when messages
    //  make the file large.
    sqlite3_stmt *check = NULL;
    rc = sqlite3_prepare_v2 (self->db, "PRAGMA quick_check", -1, &check, NULL);
    const unsigned char *verdict = NULL;
    if (rc == SQLITE_OK && sqlite3_step (check) == SQLITE_ROW)
        verdict = sqlite3_column_text (check, 0);
    bool healthy = verdict && strcmp ((const char *) verdict, "ok") == 0;
    if (!healthy)
        self->host->log (self->ctx, PARLEY_LOG_ERROR, "cannot open %s: the database is corrupt: %s",
                         self->path, verdict ? (const char *) verdict : sqlite3_errmsg (self->db));
    sqlite3_finalize (check);
    if (!healthy)
        return -1;

    for (int index = 0; index < S_SQL_COUNT; index++) {
        rc = sqlite3_prepare_v3 (self->db, s_sql_text [index], -1, SQLITE_PREPARE_PERSISTENT,
                                 &self->sql [index], NULL);
        if (rc != SQLITE_OK) {
            self->host->log (self->ctx, PARLEY_LOG_ERROR, "cannot open %s: cannot prepare '%s': %s",
                             self->path, s_sql_text [index], sqlite3_errmsg (self->db));
            return -1;
        }
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  The callbacks

static void
s_store_free (store_t **self_p)
{
    store_t *self = *self_p;
    if (!self)
        return;
    for (int index = 0; index < S_SQL_COUNT; index++)
        sqlite3_finalize (self->sql [index]);
    if (self->db)
        sqlite3_close (self->db);
    free (self->pending);
    free (self->path);
    free (self);
    *self_p = NULL;
}

static bool
s_option_bool (const char *value, bool fallback, bool *valid_p)
{
    *valid_p = true;
    if (!value)
        return fallback;
    if (strcmp (value, "true") == 0 || strcmp (value, "1") == 0 || strcmp (value, "on") == 0)
        return true;
    if (strcmp (value, "false") == 0 || strcmp (value, "0") == 0 || strcmp (value, "off") == 0)
        return false;
    *valid_p = false;
    return fallback;
}

static int
s_init (parley_ctx_t *ctx, const parley_host_t *host, void **state_p)
{
    store_t *self = (store_t *) calloc (1, sizeof (store_t));
    if (!self) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        return -1;
    }
    self->ctx = ctx;
    self->host = host;
    const char *path = host->option (ctx, "path");
    self->path = strdup (path ? path : "parley.db");
    self->pending = (s_pending_t *) calloc (S_BATCH_MAX, sizeof (s_pending_t));
    if (!self->path || !self->pending) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        s_store_free (&self);
        return -1;
    }
    bool valid;
    const char *group_commit = host->option (ctx, "group_commit");
    self->group_commit = s_option_bool (group_commit, true, &valid);
    if (!valid) {
        host->log (ctx, PARLEY_LOG_ERROR, "option group_commit must be true or false, not '%s'",
                   group_commit);
        s_store_free (&self);
        return -1;
    }
    int busy_timeout = S_BUSY_TIMEOUT_DEFAULT;
    const char *busy = host->option (ctx, "busy_timeout_ms");
    if (busy) {
        char *end;
        errno = 0;
        long value = strtol (busy, &end, 10);
        if (errno || *end || end == busy || value < 0 || value > 600000) {
            host->log (ctx, PARLEY_LOG_ERROR,
                       "option busy_timeout_ms must be 0 to 600000 milliseconds, not '%s'", busy);
            s_store_free (&self);
            return -1;
        }
        busy_timeout = (int) value;
    }
    if (s_open (self, busy_timeout)) {
        s_store_free (&self);
        return -1;
    }
    host->log (ctx, PARLEY_LOG_INFO, "serving %s (schema version %d, WAL, synchronous=FULL, %s)",
               self->path, S_SCHEMA_VERSION,
               self->group_commit ? "group commit" : "one transaction per request");
    *state_p = self;
    return 0;
}

static void
s_destroy (void **state_p)
{
    store_t *self = (store_t *) *state_p;
    if (!self)
        return;
    //  What was queued still gets its commit and its answer
    s_flush (self);
    self->host->log (self->ctx, PARLEY_LOG_INFO,
                     "closing %s after %" PRIu64 " requests in %" PRIu64 " transactions",
                     self->path, self->requests, self->batches);
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
        snprintf (message, sizeof message, "store-sqlite does not serve '%.64s'.",
                  type ? type : "");
        self->host->reply_error (self->ctx, &request, "unknown_type", message);
        return;
    }
    //  Queued even when invalid, so that answers keep the order received
    s_pending_t *pending = &self->pending [self->pending_count++];
    memset (pending, 0, sizeof *pending);
    pending->request = request;
    pending->op = s_ops [op_index].op;
    pending->writes = s_ops [op_index].writes;
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
    //  INTERNAL: only plugins call the store. SHARD_NONE: one instance per
    //  database file (proto/STORE.md, Ordering).
    { .prefix = "store.", .flags = PARLEY_ROUTE_INTERNAL, .shard = PARLEY_SHARD_NONE },
    { .prefix = NULL }
};

static const parley_plugin_t s_descriptor = {
    .abi_major = PARLEY_ABI_MAJOR,
    .abi_minor = PARLEY_ABI_MINOR,
    .size = sizeof (parley_plugin_t),
    .flags = 0,
    .name = "store-sqlite",
    .version = "1.0.0",
    .description = "the embedded store: proto/STORE.md on one SQLite file, WAL, group commit",
    .routes = s_routes,
    .init = s_init,
    .destroy = s_destroy,
    .on_request = s_on_request,
    .on_reply = NULL,
    .on_batch_end = s_on_batch_end,
    .on_session = NULL
};

PARLEY_PLUGIN_DEFINE (s_descriptor)
