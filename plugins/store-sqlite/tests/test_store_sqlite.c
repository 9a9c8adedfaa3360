/*  =========================================================================
    test_store_sqlite - what only store-sqlite does

    The shared suite (plugins/store/tests/conformance) checks the contract; these
    tests check the SQLite side of it: the file it creates (WAL, schema
    version S_SCHEMA_NOW), the migrations of version-1 and version-2 files in
    place, a file of every older version migrated to a new file's schema, the
    files earlier builds recorded without running their migrations repaired,
    history pages served by primary keys, the conversation list and
    the room lists and quotas served by indexes, the files it refuses at start and what it says about them,
    group commit versus one transaction per request, a batch that cannot
    commit answered unavailable as a whole, and a search whose index is
    behind set aside while the writes after it are answered.

    Read-only files do not stop root, and these tests may run as root: the
    read-only cases then run in a child process that drops to nobody first
    (this program re-executed with --probe).
    =========================================================================
*/

//  memmem
#define _GNU_SOURCE
#include "sc_broker.h"
#include "sc_log.h"
#include "ss_db.h"

#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#define S_LOG_ENDPOINT "inproc://test-store-sqlite-log"
//  The newest schema version store_sqlite.c knows
#define S_SCHEMA_NOW    15
_Static_assert (S_SCHEMA_NOW == SS_DB_SCHEMA_VERSION, "a new schema version: test it here");

static sc_log_t *s_log;             //  every log line of this process

//  A fresh folder per test
typedef struct {
    char folder [256];              //  the temporary folder
    char path [300];                //  folder/parley.db
    char index [320];               //  folder/parley.search.db, the search index
    char option [340];              //  store-sqlite.path=...
} fixture_t;

static int
s_setup (void **state)
{
    fixture_t *fixture = (fixture_t *) zmalloc (sizeof (fixture_t));
    snprintf (fixture->folder, sizeof fixture->folder, "/tmp/test-store-sqlite-XXXXXX");
    if (!mkdtemp (fixture->folder))
        return -1;
    snprintf (fixture->path, sizeof fixture->path, "%s/parley.db", fixture->folder);
    snprintf (fixture->index, sizeof fixture->index, "%s/parley.search.db", fixture->folder);
    snprintf (fixture->option, sizeof fixture->option, "store-sqlite.path=%s", fixture->path);
    *state = fixture;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    chmod (fixture->folder, 0700);
    char *command = zsys_sprintf ("rm -rf '%s'", fixture->folder);
    if (system (command) != 0)
        fprintf (stderr, "could not remove %s\n", fixture->folder);
    zstr_free (&command);
    free (fixture);
    return 0;
}

//  Starts the plugin with these options; returns the broker (plugin running)
//  or NULL if the plugin refused to start
static sc_broker_t *
s_start (const char *first, const char *second)
{
    const char *options [] = { first, second };
    return sc_broker_new_started (STORE_SQLITE_PLUGIN, options, second ? 2 : 1);
}

static void
s_create_user (sc_broker_t *broker, const char *name)
{
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "name", name);
    pl_pack_kstr (&body, "password_hash", "h");
    pl_pack_kint (&body, "created_at", 1);
    sc_reply_t *reply = sc_broker_call_body (broker, "store.user.create", &body);
    assert_non_null (reply);
    assert_null (reply->code);
    sc_reply_destroy (&reply);
}

//  Runs SQL on the file directly, as another process would
static void
s_sql (const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal (sqlite3_open (path, &db), SQLITE_OK);
    char *error = NULL;
    if (sqlite3_exec (db, sql, NULL, NULL, &error) != SQLITE_OK)
        fail_msg ("%s: %s", sql, error);
    sqlite3_close (db);
}

static int64_t
s_sql_int (const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *stmt;
    assert_int_equal (sqlite3_open (path, &db), SQLITE_OK);
    assert_int_equal (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    int64_t value = sqlite3_column_int64 (stmt, 0);
    sqlite3_finalize (stmt);
    sqlite3_close (db);
    return value;
}

//  Runs this program as "--probe OPTION WORD" in a child (as nobody when we
//  are root): true if the plugin refused to start and logged WORD
static bool
s_refused_in_child (const char *option, const char *word)
{
    pid_t child = fork ();
    if (child == 0) {
        if (geteuid () == 0 && (setgid (65534) || setuid (65534)))
            _exit (3);
        char *args [] = { "test_store_sqlite", "--probe", (char *) option, (char *) word, NULL };
        execv ("/proc/self/exe", args);
        _exit (4);
    }
    int status = 0;
    waitpid (child, &status, 0);
    return WIFEXITED (status) && WEXITSTATUS (status) == 0;
}

static int
s_probe (const char *option, const char *word)
{
    s_log = sc_log_new (S_LOG_ENDPOINT);
    sc_broker_t *broker = s_start (option, NULL);
    int rc = broker ? 1 : sc_log_says (s_log, "cannot open", word) ? 0 : 2;
    sc_broker_destroy (&broker);
    sc_log_destroy (&s_log);
    return rc;
}


//  --------------------------------------------------------------------------

static void
test_new_database_is_wal_at_the_newest_schema_version (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    s_create_user (broker, "alice");
    sc_broker_destroy (&broker);
    assert_int_equal (s_sql_int (fixture->path, "SELECT MAX (version) FROM schema_version"), S_SCHEMA_NOW);
    assert_int_equal (s_sql_int (fixture->path,
                                 "SELECT count (*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1);
    assert_int_equal (s_sql_int (fixture->path, "SELECT count (*) FROM users"), 1);
    //  The files' bytes have a file of their own beside it, in WAL mode too
    char chunks [sizeof fixture->path + 16];
    snprintf (chunks, sizeof chunks, "%s/parley.files.db", fixture->folder);
    assert_int_equal (s_sql_int (chunks, "SELECT count (*) FROM chunks"), 0);
    assert_int_equal (s_sql_int (chunks,
                                 "SELECT count (*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1);
}

//  Sends one request with a body built by the caller; asserts ok
static void
s_call_ok (sc_broker_t *broker, const char *type, msgpack_sbuffer *buffer)
{
    sc_reply_t *reply = sc_broker_call (broker, type, buffer->data, buffer->size);
    msgpack_sbuffer_destroy (buffer);
    assert_non_null (reply);
    if (reply->code)
        fail_msg ("%s: %s: %s", type, reply->code, reply->message);
    sc_reply_destroy (&reply);
}

static void
s_create_room (sc_broker_t *broker, const char *name, const char *owner)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 6);
    sc_pack_kstr (&packer, "name", name);
    sc_pack_kstr (&packer, "description", "");
    sc_pack_key (&packer, "private");
    msgpack_pack_false (&packer);
    sc_pack_kint (&packer, "max_participants", 50);
    sc_pack_kstr (&packer, "owner", owner);
    sc_pack_kint (&packer, "created_at", 1);
    s_call_ok (broker, "store.room.create", &buffer);
}

static void
s_delete_room (sc_broker_t *broker, const char *name)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 1);
    sc_pack_kstr (&packer, "name", name);
    s_call_ok (broker, "store.room.delete", &buffer);
}

//  Removes the search index's file (schema version 15), its WAL and shared
//  memory, as an operator would while the store is stopped
static void
s_remove_index (const fixture_t *fixture)
{
    char *command = zsys_sprintf ("rm -f '%s' '%s-wal' '%s-shm'", fixture->index,
                                  fixture->index, fixture->index);
    assert_int_equal (system (command), 0);
    zstr_free (&command);
}

static void
s_append_message (sc_broker_t *broker, const char *room, int64_t seq)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 2);
    sc_pack_kstr (&packer, "room", room);
    sc_pack_key (&packer, "entry");
    msgpack_pack_map (&packer, 5);
    sc_pack_kint (&packer, "seq", seq);
    sc_pack_kstr (&packer, "kind", "message");
    sc_pack_kstr (&packer, "user", "alice");
    sc_pack_kint (&packer, "ts", 1);
    sc_pack_kstr (&packer, "text", "hello");
    s_call_ok (broker, "store.msg.append", &buffer);
}

//  The accounts schema as version 1 wrote it, with one user and one token
static const char *s_version_1_file =
    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);"
    "INSERT INTO schema_version VALUES (1, 0);"
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
    "CREATE INDEX tokens_by_expiry ON tokens (expires_at);"
    "INSERT INTO users VALUES (1, 'Alice', 'alice', 'hash', 5, 77);"
    "INSERT INTO tokens VALUES ('kept', 1, 6, 999);";

static void
test_version_1_file_migrated_in_place_keeping_accounts (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_sql (fixture->path, s_version_1_file);
    sc_log_clear (s_log);
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    assert_true (sc_log_says (s_log, fixture->path, "migrated to schema version 2"));
    assert_true (sc_log_says (s_log, fixture->path, "migrated to schema version 3"));
    //  The accounts are there, and rooms can be had
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 1);
    sc_pack_kstr (&packer, "token_hash", "kept");
    s_call_ok (broker, "store.token.get", &buffer);
    s_create_room (broker, "general", "ALICE");
    s_append_message (broker, "general", 1);
    sc_broker_destroy (&broker);

    assert_int_equal (s_sql_int (fixture->path, "SELECT MAX (version) FROM schema_version"), S_SCHEMA_NOW);
    assert_int_equal (s_sql_int (fixture->path, "SELECT count (*) FROM schema_version"), S_SCHEMA_NOW);
    assert_int_equal (s_sql_int (fixture->path, "SELECT last_seen FROM users"), 77);
    //  Version 4: a token's last use starts at its creation
    assert_int_equal (s_sql_int (fixture->path,
                                 "SELECT last_used_at FROM tokens WHERE token_hash = 'kept'"), 6);
    assert_int_equal (s_sql_int (fixture->path,
                                 "SELECT count (*) FROM members JOIN rooms ON rooms.id = room_id"
                                 " WHERE rooms.name = 'general' AND user_id = 1"), 1);
    assert_int_equal (s_sql_int (fixture->path, "SELECT count (*) FROM entries"), 1);
    //  Version 14: both nonce indexes keyed by the nonce first
    assert_int_equal (s_sql_int (fixture->path, "SELECT count (*) FROM pragma_index_info"
                                 " ('entries_by_nonce') WHERE seqno = 0 AND name = 'nonce'"), 1);
    assert_int_equal (s_sql_int (fixture->path, "SELECT count (*) FROM pragma_index_info"
                                 " ('pm_entries_by_nonce') WHERE seqno = 0 AND name = 'nonce'"), 1);

    //  Opened again: nothing more to migrate
    sc_log_clear (s_log);
    broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    sc_broker_destroy (&broker);
    assert_int_equal (s_sql_int (fixture->path, "SELECT count (*) FROM schema_version"), S_SCHEMA_NOW);
}

//  The plan SQLite chooses for sql, all its lines joined
static char *
s_query_plan (const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *stmt;
    assert_int_equal (sqlite3_open (path, &db), SQLITE_OK);
    char *explain = zsys_sprintf ("EXPLAIN QUERY PLAN %s", sql);
    assert_int_equal (sqlite3_prepare_v2 (db, explain, -1, &stmt, NULL), SQLITE_OK);
    char *plan = strdup ("");
    while (sqlite3_step (stmt) == SQLITE_ROW) {
        char *next = zsys_sprintf ("%s%s; ", plan, (const char *) sqlite3_column_text (stmt, 3));
        free (plan);
        plan = next;
    }
    sqlite3_finalize (stmt);
    sqlite3_close (db);
    zstr_free (&explain);
    return plan;
}

static void
test_history_and_counts_are_searches_of_primary_keys_not_scans (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    s_create_user (broker, "alice");
    s_create_room (broker, "big", "alice");
    s_create_room (broker, "other", "alice");
    for (int64_t seq = 1; seq <= 300; seq++) {
        s_append_message (broker, "big", seq);
        if (seq <= 10)
            s_append_message (broker, "other", seq);
    }
    sc_broker_destroy (&broker);
    s_sql (fixture->path, "ANALYZE");

    //  The statements of store_sqlite.c that touch a timeline
    const char *queries [] = {
        "SELECT seq, kind, user, ts, text, event FROM entries"
        " WHERE room_id = 1 AND seq < 100 ORDER BY seq DESC LIMIT 51",
        "SELECT seq, kind, user, ts, text, event FROM entries"
        " WHERE room_id = 1 AND seq > 100 ORDER BY seq ASC LIMIT 51",
        "SELECT COALESCE (MAX (seq), 0) FROM entries WHERE entries.room_id = 1",
        "SELECT count (*) FROM members WHERE room_id = 1",
        //  Schema 7: a joined room's unread messages and mentions after
        //  the marker (store.room.joined), and the marker itself
        "SELECT count (*) FROM entries WHERE entries.room_id = 1 AND entries.seq > 250"
        " AND entries.kind = 'message' AND entries.user <> 'bob' COLLATE NOCASE",
        "SELECT count (*) FROM mentions WHERE mentions.room_id = 1"
        " AND mentions.user_id = 1 AND mentions.seq > 250",
        "SELECT read_seq FROM members WHERE room_id = 1 AND user_id = 1"
    };
    for (size_t index = 0; index < sizeof queries / sizeof queries [0]; index++) {
        char *plan = s_query_plan (fixture->path, queries [index]);
        if (strstr (plan, "SCAN") || !strstr (plan, "SEARCH")
        ||  !strstr (plan, "PRIMARY KEY") || strstr (plan, "TEMP B-TREE"))
            fail_msg ("'%s' is planned as '%s'", queries [index], plan);
        free (plan);
    }
}
static void
s_append_pm (sc_broker_t *broker, const char *from, const char *to, int64_t seq)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 5);
    sc_pack_kstr (&packer, "from", from);
    sc_pack_kstr (&packer, "to", to);
    sc_pack_kint (&packer, "seq", seq);
    sc_pack_kstr (&packer, "text", "psst");
    sc_pack_kint (&packer, "ts", seq);
    s_call_ok (broker, "store.pm.append", &buffer);
}

//  The rooms schema as version 2 wrote it (migration 2 verbatim), with a
//  room, its owner as member and one entry
static const char *s_version_2_schema =
    "INSERT INTO schema_version VALUES (2, 0);"
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
    ") WITHOUT ROWID;"
    "INSERT INTO users VALUES (2, 'bob', 'bob', 'hash', 5, NULL);"
    "INSERT INTO rooms VALUES (1, 'General', 'general', '', 0, 50, 1, 5);"
    "INSERT INTO members VALUES (1, 1, 5);"
    "INSERT INTO entries VALUES (1, 1, 'message', 'Alice', 6, 'before pm', NULL);";

//  A repeat is found by one search of a nonce index, whatever the length of
//  the timeline (schema version 6)
static void
test_nonce_lookups_are_searches_of_their_index_not_scans (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    s_create_user (broker, "alice");
    s_create_room (broker, "big", "alice");
    for (int64_t seq = 1; seq <= 300; seq++)
        s_append_message (broker, "big", seq);
    sc_broker_destroy (&broker);
    s_sql (fixture->path, "ANALYZE");
    const char *queries [] = {
        "SELECT seq, ts FROM entries WHERE room_id = 1"
        " AND user = 'Alice' COLLATE NOCASE AND nonce = 'n-1'",
        "SELECT entries.seq, entries.ts FROM rooms JOIN entries ON entries.room_id = rooms.id"
        " WHERE rooms.name_key = 'big' AND entries.user = 'alice' COLLATE NOCASE"
        " AND entries.nonce = 'n-1'",
        "SELECT seq, ts FROM pm_entries WHERE conversation_id = 1 AND from_id = 1"
        " AND nonce = 'n-1'"
    };
    for (size_t index = 0; index < sizeof queries / sizeof queries [0]; index++) {
        char *plan = s_query_plan (fixture->path, queries [index]);
        if (strstr (plan, "SCAN") || !strstr (plan, "_by_nonce"))
            fail_msg ("'%s' is planned as '%s'", queries [index], plan);
        free (plan);
    }
}

static void
test_version_2_file_migrated_in_place_keeping_rooms (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_sql (fixture->path, s_version_1_file);
    s_sql (fixture->path, s_version_2_schema);
    sc_log_clear (s_log);
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    assert_true (sc_log_says (s_log, fixture->path, "migrated to schema version 3"));
    assert_true (sc_log_says (s_log, fixture->path, "migrated to schema version 4"));
    assert_false (sc_log_says (s_log, fixture->path, "migrated to schema version 2"));
    //  Schema 7: the member of before starts with everything read
    assert_int_equal (s_sql_int (fixture->path,
                                 "SELECT read_seq FROM members WHERE room_id = 1"), 1);
    //  The room goes on where it stopped, and private messages can be had
    s_append_message (broker, "general", 2);
    s_append_pm (broker, "alice", "BOB", 1);
    s_append_pm (broker, "bob", "alice", 2);
    sc_broker_destroy (&broker);

    assert_int_equal (s_sql_int (fixture->path, "SELECT MAX (version) FROM schema_version"), S_SCHEMA_NOW);
    assert_int_equal (s_sql_int (fixture->path, "SELECT count (*) FROM schema_version"), S_SCHEMA_NOW);
    assert_int_equal (s_sql_int (fixture->path, "SELECT count (*) FROM entries"), 2);
    assert_int_equal (s_sql_int (fixture->path, "SELECT count (*) FROM tokens"), 1);
    //  Schema 4: the room's activity, from its newest message (the one
    //  appended since, ts 1, is older than the one before the migration)
    assert_int_equal (s_sql_int (fixture->path,
                                 "SELECT active_at FROM rooms WHERE name_key = 'general'"), 6);
    //  One conversation, the lower user id first, at seq 2
    assert_int_equal (s_sql_int (fixture->path,
                                 "SELECT last_seq FROM conversations"
                                 " WHERE user_a = 1 AND user_b = 2"), 2);
    assert_int_equal (s_sql_int (fixture->path, "SELECT count (*) FROM pm_entries"), 2);
    //  Schema 7: the member of before starts with everything read (seq 1),
    //  and its own message since moved its marker on
    assert_int_equal (s_sql_int (fixture->path,
                                 "SELECT read_seq FROM members WHERE room_id = 1"), 2);

    //  Opened again: nothing more to migrate
    broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    sc_broker_destroy (&broker);
    assert_int_equal (s_sql_int (fixture->path, "SELECT count (*) FROM schema_version"), S_SCHEMA_NOW);
}

static void
test_pm_history_unread_and_conversation_list_never_scan (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    const char *names [] = { "alice", "bob", "carol", "dave" };
    for (size_t index = 0; index < 4; index++)
        s_create_user (broker, names [index]);
    for (int64_t seq = 1; seq <= 300; seq++) {
        s_append_pm (broker, seq % 2 ? "alice" : "bob", seq % 2 ? "bob" : "alice", seq);
        if (seq <= 10) {
            s_append_pm (broker, "carol", "alice", seq);
            s_append_pm (broker, "dave", "bob", seq);
        }
    }
    sc_broker_destroy (&broker);
    s_sql (fixture->path, "ANALYZE");

    //  The statements of store_sqlite.c that read private messages
    const char *queries [] = {
        "SELECT seq, from_id, ts, text FROM pm_entries"
        " WHERE conversation_id = 1 AND seq < 100 ORDER BY seq DESC LIMIT 51",
        "SELECT seq, from_id, ts, text FROM pm_entries"
        " WHERE conversation_id = 1 AND seq > 100 ORDER BY seq ASC LIMIT 51",
        "SELECT count (*) FROM pm_entries"
        " WHERE conversation_id = 1 AND seq > 150 AND from_id <> 1",
        "SELECT id, last_seq, read_a, read_b FROM conversations WHERE user_a = 1 AND user_b = 2"
    };
    for (size_t index = 0; index < sizeof queries / sizeof queries [0]; index++) {
        char *plan = s_query_plan (fixture->path, queries [index]);
        if (strstr (plan, "SCAN") || !strstr (plan, "SEARCH") || strstr (plan, "TEMP B-TREE"))
            fail_msg ("'%s' is planned as '%s'", queries [index], plan);
        free (plan);
    }
    //  The conversation list: both per-user indexes walked in last_ts
    //  order and merged, no sort, no scan
#define S_CONV_ARM(me, other, marker) \
    "SELECT c.id, u.name, c.last_seq, c.last_ts, e.from_id, e.text, e.ts," \
    " (SELECT count (*) FROM pm_entries AS n WHERE n.conversation_id = c.id" \
    "  AND n.seq > c." marker " AND n.from_id <> c." me ")" \
    " FROM conversations AS c JOIN users AS u ON u.id = c." other \
    " JOIN pm_entries AS e ON e.conversation_id = c.id AND e.seq = c.last_seq" \
    " WHERE c." me " = 1"
    const char *list = S_CONV_ARM ("user_a", "user_b", "read_a")
                       " UNION ALL "
                       S_CONV_ARM ("user_b", "user_a", "read_b")
                       " ORDER BY 4 DESC, 1 DESC LIMIT 200";
    char *plan = s_query_plan (fixture->path, list);
    if (strstr (plan, "SCAN") || strstr (plan, "TEMP B-TREE")
    ||  !strstr (plan, "conversations_by_a") || !strstr (plan, "conversations_by_b"))
        fail_msg ("the conversation list is planned as '%s'", plan);
    free (plan);
}


static void
test_room_lists_and_quotas_are_index_ranges_not_scans (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    s_create_user (broker, "alice");
    for (int index = 0; index < 200; index++) {
        char name [16];
        snprintf (name, sizeof name, "room%d", index);
        s_create_room (broker, name, "alice");
    }
    sc_broker_destroy (&broker);
    s_sql (fixture->path, "ANALYZE");

    //  The lists of public rooms say whether the user is banned from each:
    //  a search of the bans' primary key per room, never a scan of bans
#define S_BANNED \
    "EXISTS (SELECT 1 FROM bans WHERE bans.room_id = rooms.id" \
    " AND bans.user_id = (SELECT id FROM users WHERE name_key = 'alice'))"
    const char *bans_key = "SEARCH bans USING PRIMARY KEY (room_id=? AND user_id=?)";
    struct {
        const char *sql;                //  as store_sqlite.c asks, values inlined
        const char *index;              //  the index it must walk
        const char *also;               //  and another it must search, or NULL
    } queries [] = {
        { "SELECT rooms.id, " S_BANNED " FROM rooms WHERE rooms.private = 0"
          " AND (rooms.active_at < 9 OR (rooms.active_at = 9 AND rooms.name_key > 'x'))"
          " ORDER BY rooms.active_at DESC, rooms.name_key LIMIT 201", "rooms_public_by_active",
          bans_key },
        { "SELECT rooms.id, " S_BANNED " FROM rooms WHERE rooms.private = 0"
          " AND rooms.name_key > '' AND rooms.name_key >= 'ro' AND rooms.name_key < 'ro~'"
          " ORDER BY rooms.name_key LIMIT 51", "rooms_public_by_name", bans_key },
        { "SELECT rooms.id FROM members AS mine JOIN rooms ON rooms.id = mine.room_id"
          " WHERE mine.user_id = 1 AND rooms.name_key > '' LIMIT 1001", "members_by_user", NULL },
        { "SELECT count (*) FROM rooms WHERE owner_id = 1", "rooms_by_owner", NULL },
        { "SELECT count (*) FROM members WHERE user_id = 1", "members_by_user", NULL }
    };
#undef S_BANNED
    for (size_t index = 0; index < sizeof queries / sizeof queries [0]; index++) {
        char *plan = s_query_plan (fixture->path, queries [index].sql);
        if (strstr (plan, "SCAN") || !strstr (plan, queries [index].index)
        ||  (queries [index].also && !strstr (plan, queries [index].also)))
            fail_msg ("'%s' is planned as '%s'", queries [index].sql, plan);
        free (plan);
    }
}

static void
test_missing_folder_refused_naming_the_path (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    char option [400];
    snprintf (option, sizeof option, "store-sqlite.path=%s/no/such/folder/parley.db",
              fixture->folder);
    sc_log_clear (s_log);
    assert_null (s_start (option, NULL));
    assert_true (sc_log_says (s_log, "cannot open", "/no/such/folder/parley.db"));
}

static void
test_file_that_is_not_a_database_refused (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    FILE *file = fopen (fixture->path, "w");
    assert_non_null (file);
    for (int index = 0; index < 500; index++)
        fprintf (file, "this is a chat log, not a database %d\n", index);
    fclose (file);
    sc_log_clear (s_log);
    assert_null (s_start (fixture->option, NULL));
    assert_true (sc_log_says (s_log, fixture->path, "not a database"));
}

static void
test_corrupt_database_refused (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    for (int index = 0; index < 300; index++) {
        char name [32];
        snprintf (name, sizeof name, "user%d", index);
        s_create_user (broker, name);
    }
    sc_broker_destroy (&broker);
    s_sql (fixture->path, "PRAGMA wal_checkpoint (TRUNCATE)");
    //  Scribble over the pages after the first: the header still says SQLite
    FILE *file = fopen (fixture->path, "r+");
    assert_non_null (file);
    fseek (file, 4096, SEEK_SET);
    for (int index = 0; index < 8192; index++)
        fputc (0x5a, file);
    fclose (file);
    sc_log_clear (s_log);
    assert_null (s_start (fixture->option, NULL));
    assert_true (sc_log_says (s_log, fixture->path, "malformed") || sc_log_says (s_log, fixture->path, "corrupt"));
}

static void
test_read_only_file_refused (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    sc_broker_destroy (&broker);
    s_sql (fixture->path, "PRAGMA wal_checkpoint (TRUNCATE)");
    chmod (fixture->folder, 0777);
    chmod (fixture->path, 0444);
    assert_true (s_refused_in_child (fixture->option, "read-only"));
}

static void
test_read_only_folder_refused (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    chmod (fixture->folder, 0555);
    assert_true (s_refused_in_child (fixture->option, fixture->path));
}

static void
test_database_of_newer_schema_refused (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    sc_broker_destroy (&broker);
    s_sql (fixture->path, "INSERT INTO schema_version (version, applied_at) VALUES (99, 0)");
    sc_log_clear (s_log);
    assert_null (s_start (fixture->option, NULL));
    assert_true (sc_log_says (s_log, fixture->path, "schema version is 99"));
}

static void
test_invalid_option_refused (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_log_clear (s_log);
    assert_null (s_start (fixture->option, "store-sqlite.group_commit=maybe"));
    assert_true (sc_log_says (s_log, "group_commit", "maybe"));
}

//  Sends count creates at once, waits for every answer, stops the plugin and
//  returns the transactions it says it committed
static void
s_burst (fixture_t *fixture, const char *mode, int count, uint64_t *transactions_p)
{
    sc_broker_t *broker = s_start (fixture->option, mode);
    assert_non_null (broker);
    for (int index = 0; index < count; index++) {
        char name [32];
        snprintf (name, sizeof name, "user%d", index);
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        msgpack_packer packer;
        msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
        msgpack_pack_map (&packer, 3);
        sc_pack_kstr (&packer, "name", name);
        sc_pack_kstr (&packer, "password_hash", "h");
        sc_pack_kint (&packer, "created_at", 1);
        assert_true (sc_broker_send (broker, "store.user.create", buffer.data, buffer.size) > 0);
        msgpack_sbuffer_destroy (&buffer);
    }
    for (int index = 0; index < count; index++) {
        sc_reply_t *reply = sc_broker_recv (broker, 30000);
        assert_non_null (reply);
        assert_null (reply->code);
        sc_reply_destroy (&reply);
    }
    sc_log_clear (s_log);
    sc_broker_destroy (&broker);
    //  "closing PATH after N requests in M transactions"
    char *line = sc_log_line (s_log, " requests in ");
    assert_non_null (line);
    *transactions_p = strtoull (strstr (line, " requests in ") + strlen (" requests in "), NULL, 10);
    zstr_free (&line);
}

static void
test_group_commit_commits_a_burst_in_few_transactions (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    uint64_t transactions;
    s_burst (fixture, NULL, 1000, &transactions);
    assert_true (transactions >= 1);
    assert_true (transactions < 1000);
}

static void
test_group_commit_off_commits_each_request_alone (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    uint64_t transactions;
    s_burst (fixture, "store-sqlite.group_commit=false", 200, &transactions);
    assert_int_equal (transactions, 200);
}

static void
test_batch_that_cannot_commit_answered_unavailable_and_applied_later (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, "store-sqlite.busy_timeout_ms=50");
    assert_non_null (broker);
    s_create_user (broker, "first");

    //  Another process holds the write lock: the store cannot commit
    sqlite3 *other;
    assert_int_equal (sqlite3_open (fixture->path, &other), SQLITE_OK);
    assert_int_equal (sqlite3_exec (other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 3);
    sc_pack_kstr (&packer, "name", "second");
    sc_pack_kstr (&packer, "password_hash", "h");
    sc_pack_kint (&packer, "created_at", 1);
    for (int index = 0; index < 3; index++)
        sc_broker_send (broker, "store.user.create", buffer.data, buffer.size);
    for (int index = 0; index < 3; index++) {
        sc_reply_t *reply = sc_broker_recv (broker, 10000);
        assert_non_null (reply);
        assert_non_null (reply->code);
        assert_string_equal (reply->code, "unavailable");
        sc_reply_destroy (&reply);
    }
    assert_int_equal (sqlite3_exec (other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close (other);

    //  Nothing was applied: the retry succeeds
    sc_reply_t *reply = sc_broker_call (broker, "store.user.create", buffer.data, buffer.size);
    assert_non_null (reply);
    assert_null (reply->code);
    sc_reply_destroy (&reply);
    msgpack_sbuffer_destroy (&buffer);
    sc_broker_destroy (&broker);
}


//  --------------------------------------------------------------------------
//  parleyctl backup: admin.store.backup and admin.store.backup_status

static sc_reply_t *
s_backup (sc_broker_t *broker, const char *path)
{
    pl_pack_t body;
    sc_body_init (&body, path ? 1 : 0);
    if (path)
        pl_pack_kstr (&body, "path", path);
    return sc_broker_call_body (broker, "admin.store.backup", &body);
}

static void
s_assert_code (sc_reply_t *reply, const char *code)
{
    assert_non_null (reply);
    assert_non_null (reply->code);
    assert_string_equal (reply->code, code);
    sc_reply_destroy (&reply);
}

//  Asks how the backup goes until it is no longer running; returns the
//  last answer (caller destroys it)
static sc_reply_t *
s_backup_end (sc_broker_t *broker)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        sc_reply_t *reply = sc_broker_call (broker, "admin.store.backup_status", NULL, 0);
        assert_non_null (reply);
        assert_null (reply->code);
        if (!sc_object_streq (sc_reply_field (reply, "state"), "running"))
            return reply;
        sc_reply_destroy (&reply);
        zclock_sleep (10);
    }
    fail_msg ("the backup never ended");
    return NULL;
}

static void
test_backup_copies_the_database_whole_while_it_serves (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    for (int index = 0; index < 50; index++) {
        char name [32];
        snprintf (name, sizeof name, "user%d", index);
        s_create_user (broker, name);
    }
    sc_broker_set_address (broker, "admin:test");
    sc_reply_t *reply = sc_broker_call (broker, "admin.store.backup_status", NULL, 0);
    assert_true (sc_object_streq (sc_reply_field (reply, "state"), "idle"));
    sc_reply_destroy (&reply);

    char copy [400];
    snprintf (copy, sizeof copy, "%s/copy.db", fixture->folder);
    reply = s_backup (broker, copy);
    assert_non_null (reply);
    assert_null (reply->code);
    sc_reply_destroy (&reply);
    sc_broker_set_address (broker, NULL);
    s_create_user (broker, "during");           //  the store keeps serving
    sc_broker_set_address (broker, "admin:test");
    reply = s_backup_end (broker);
    assert_true (sc_object_streq (sc_reply_field (reply, "state"), "done"));
    assert_true (sc_object_streq (sc_reply_field (reply, "integrity"), "ok"));
    struct stat status;
    assert_int_equal (stat (copy, &status), 0);
    assert_int_equal (sc_reply_field (reply, "bytes")->via.i64, status.st_size);
    sc_reply_destroy (&reply);
    sc_broker_destroy (&broker);

    //  Every user written before the backup is in the copy, which is a
    //  database of the newest schema that opens clean
    assert_true (s_sql_int (copy, "SELECT count (*) FROM users WHERE name LIKE 'user%'") == 50);
    assert_true (s_sql_int (copy, "SELECT MAX (version) FROM schema_version") == S_SCHEMA_NOW);
    char partial [420];
    snprintf (partial, sizeof partial, "%s.partial", copy);
    assert_int_not_equal (stat (partial, &status), 0);
}

static void
test_backup_refuses_bad_paths_and_anyone_but_the_operator (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    char path [400];
    snprintf (path, sizeof path, "%s/copy.db", fixture->folder);
    //  A plugin's call, or a client's address: not the operator
    s_assert_code (s_backup (broker, path), "forbidden");
    sc_broker_set_address (broker, "192.0.2.7");
    s_assert_code (s_backup (broker, path), "forbidden");
    struct stat status;
    assert_int_not_equal (stat (path, &status), 0);

    sc_broker_set_address (broker, "admin:test");
    s_assert_code (s_backup (broker, NULL), "bad_request");
    s_assert_code (s_backup (broker, "copy.db"), "bad_request");
    s_assert_code (s_backup (broker, fixture->path), "conflict");   //  the live file
    char missing [400];
    snprintf (missing, sizeof missing, "%s/no/such/folder/copy.db", fixture->folder);
    s_assert_code (s_backup (broker, missing), "not_found");
    s_assert_code (sc_broker_call (broker, "admin.store.nothing", NULL, 0), "unknown_type");
    sc_broker_destroy (&broker);
    //  The live file is as it was
    assert_true (s_sql_int (fixture->path, "SELECT MAX (version) FROM schema_version")
                 == S_SCHEMA_NOW);
}

//  --------------------------------------------------------------------------
//  Timeline changes (schema version 9): a deleted text leaves the file

//  A timeline change from alice (sc_pack_change), asserted ok
static void
s_append_change (sc_broker_t *broker, const char *room, int64_t seq, int64_t target,
                 const char *text)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    const char *type = sc_pack_change (&buffer, room, seq, target, text, seq);
    s_call_ok (broker, type, &buffer);
}

//  True when the file at path (missing: false) holds word: read whole,
//  the test's files are small
static bool
s_file_holds (const char *path, const char *word)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return false;
    struct stat status;
    assert_int_equal (fstat (fileno (file), &status), 0);
    char *bytes = (char *) malloc ((size_t) status.st_size + 1);
    assert_non_null (bytes);
    size_t size = fread (bytes, 1, (size_t) status.st_size, file);
    fclose (file);
    bool found = memmem (bytes, size, word, strlen (word)) != NULL;
    free (bytes);
    return found;
}

//  The deleted words, and whether the file, the search index's file
//  (schema version 15) or their WALs hold any of them
static const char *s_deleted_words [] = { "zebracornmessage", "quokkaplumeedit",
                                          "marmosetpmtext", "narwhalpmedit" };

static bool
s_file_holds_any (const fixture_t *fixture)
{
    char wal [320], index_wal [340];
    snprintf (wal, sizeof wal, "%s-wal", fixture->path);
    snprintf (index_wal, sizeof index_wal, "%s-wal", fixture->index);
    const char *paths [] = { fixture->path, wal, fixture->index, index_wal };
    for (size_t index = 0; index < 4; index++)
        for (size_t file = 0; file < 4; file++)
            if (s_file_holds (paths [file], s_deleted_words [index]))
                return true;
    return false;
}

static uint32_t s_search_count (sc_broker_t *broker, const char *word);

//  A message deleted as sent, and one edited first, in a room and in a
//  conversation: their texts are in the file first (so that the checks
//  after can fail), then deleted
static void
s_write_then_delete (fixture_t *fixture, sc_broker_t *broker)
{
    s_create_user (broker, "alice");
    s_create_user (broker, "bob");
    s_create_room (broker, "general", "alice");
    s_append_change (broker, "general", 1, 0, s_deleted_words [0]);
    s_append_change (broker, "general", 2, 0, "a draft");
    s_append_change (broker, "general", 3, 2, s_deleted_words [1]);
    s_append_change (broker, NULL, 1, 0, s_deleted_words [2]);
    s_append_change (broker, NULL, 2, 0, "a draft");
    s_append_change (broker, NULL, 3, 2, s_deleted_words [3]);
    //  Checkpointed by another connection, as an operator's copy would be
    s_sql (fixture->path, "PRAGMA wal_checkpoint(TRUNCATE)");
    for (size_t index = 0; index < 4; index++)
        assert_true (s_file_holds (fixture->path, s_deleted_words [index]));
    //  A search waits for the indexer: the words are in the index file (its
    //  WAL) before they are deleted, not only in its memory
    assert_int_equal (s_search_count (broker, s_deleted_words [0]), 1);
    char index_wal [340];
    snprintf (index_wal, sizeof index_wal, "%s-wal", fixture->index);
    assert_true (s_file_holds (fixture->index, "marmosetpmtext")
              || s_file_holds (index_wal, "marmosetpmtext"));
    s_append_change (broker, "general", 4, 1, NULL);
    s_append_change (broker, "general", 5, 2, NULL);
    s_append_change (broker, NULL, 4, 1, NULL);
    s_append_change (broker, NULL, 5, 2, NULL);
}

//  Schema 9 blanks a deleted message's text at once, but schema 12's search
//  index (FTS5 in SQLite 3.40 has no secure-delete) keeps its words until
//  the compaction (store-sqlite.search_compact_s, set low here) merges them
//  away: then neither the file nor its WAL holds them
static void
test_deleted_texts_leave_the_file_after_the_search_compaction (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, "store-sqlite.search_compact_s=1");
    assert_non_null (broker);
    s_write_then_delete (fixture, broker);
    //  The compaction runs on the store's tick within a few seconds; the
    //  machine may be loaded, so the wait is generous
    bool gone = false;
    for (int attempt = 0; attempt < 600 && !gone; attempt++) {
        zclock_sleep (100);
        s_sql (fixture->path, "PRAGMA wal_checkpoint(TRUNCATE)");
        gone = !s_file_holds_any (fixture);
    }
    if (!gone)
        fail_msg ("a deleted text is still in the file after 60 s");
    sc_broker_destroy (&broker);
}

//  The counterpart that shows the check above can fail: without the
//  compaction (its default period is half an hour), the words stay in the
//  search index after the deletion and the checkpoint
static void
test_deleted_words_stay_in_the_search_index_until_its_compaction (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    s_write_then_delete (fixture, broker);
    zclock_sleep (1500);
    s_sql (fixture->path, "PRAGMA wal_checkpoint(TRUNCATE)");
    assert_true (s_file_holds_any (fixture));
    //  ... though no message holds them any more
    assert_int_equal (s_sql_int (fixture->path, "SELECT count (*) FROM entries"
                                 " WHERE text LIKE '%zebra%' OR text LIKE '%quokka%'"), 0);
    sc_broker_destroy (&broker);
}

//  store.search for alice's word, the reply
static sc_reply_t *
s_search (sc_broker_t *broker, const char *word)
{
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "user", "alice");
    pl_pack_str (&body, "words");
    msgpack_pack_array (&body.packer, 1);
    pl_pack_str (&body, word);
    pl_pack_kint (&body, "limit", 100);
    sc_reply_t *reply = sc_broker_call_body (broker, "store.search", &body);
    assert_non_null (reply);
    return reply;
}

//  The same, the number of results; unavailable while the index is being
//  built (at the start) is asked again, for a while
static uint32_t
s_search_count (sc_broker_t *broker, const char *word)
{
    sc_reply_t *reply = s_search (broker, word);
    for (int attempt = 0; attempt < 300 && reply->code
                          && strcmp (reply->code, "unavailable") == 0; attempt++) {
        sc_reply_destroy (&reply);
        zclock_sleep (100);
        reply = s_search (broker, word);
    }
    if (reply->code)
        fail_msg ("store.search: %s: %s", reply->code, reply->message);
    const msgpack_object *results = sc_reply_field (reply, "results");
    assert_non_null (results);
    uint32_t count = results->via.array.size;
    sc_reply_destroy (&reply);
    return count;
}

//  A file of schema 11 with messages: the migration to 12 indexes them,
//  but not the deleted ones
static void
test_version_11_file_migrated_indexes_its_messages (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    s_create_user (broker, "alice");
    s_create_user (broker, "bob");
    s_create_room (broker, "general", "alice");
    s_append_change (broker, "general", 1, 0, "older words");
    s_append_change (broker, "general", 2, 0, "older gone");
    s_append_change (broker, "general", 3, 2, NULL);
    s_append_change (broker, NULL, 1, 0, "older private");
    sc_broker_destroy (&broker);
    //  Back to schema 11, as a file of the version before would be: 15's
    //  change table and triggers go, and 13's files and file columns, so
    //  that 12 to 15 all run again (12 makes its index in the main file,
    //  15 drops it); such a file had no index file beside it
    s_sql (fixture->path, "DROP TRIGGER search_entries_update; DROP TRIGGER search_entries_delete;"
                          "DROP TRIGGER search_rooms_delete;"
                          "DROP TRIGGER search_pm_entries_update;"
                          "DROP TRIGGER search_pm_entries_delete;"
                          "DROP TRIGGER search_conversations_delete;"
                          "DROP TABLE search_changes;"
                          //  and schema 13's files, which came after it
                          "DROP TABLE files; DROP INDEX entries_by_file;"
                          "DROP INDEX pm_entries_by_file;"
                          "ALTER TABLE entries DROP COLUMN file_id;"
                          "ALTER TABLE entries DROP COLUMN file_name;"
                          "ALTER TABLE entries DROP COLUMN file_size;"
                          "ALTER TABLE entries DROP COLUMN file_type;"
                          "ALTER TABLE pm_entries DROP COLUMN file_id;"
                          "ALTER TABLE pm_entries DROP COLUMN file_name;"
                          "ALTER TABLE pm_entries DROP COLUMN file_size;"
                          "ALTER TABLE pm_entries DROP COLUMN file_type;"
                          "DELETE FROM schema_version WHERE version >= 12");
    s_remove_index (fixture);
    broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    assert_true (sc_log_says (s_log, "migrated to schema version 12", NULL));
    assert_true (sc_log_says (s_log, "migrated to schema version 15", NULL));
    //  15 took schema 12's index out of the main file
    assert_int_equal (s_sql_int (fixture->path, "SELECT count (*) FROM sqlite_schema"
                                 " WHERE name LIKE 'search%' AND name <> 'search_changes'"
                                 " AND type <> 'trigger'"), 0);
    //  The indexer built the index file from the messages
    assert_int_equal (s_search_count (broker, "older"), 2);
    assert_int_equal (s_search_count (broker, "gone"), 0);
    //  And follows what comes after
    s_append_change (broker, "general", 4, 0, "older still");
    assert_int_equal (s_search_count (broker, "older"), 3);
    sc_broker_destroy (&broker);
}

//  A room's and a conversation's messages, one deleted and one edited
static void
s_write_searchable (sc_broker_t *broker)
{
    s_create_user (broker, "alice");
    s_create_user (broker, "bob");
    s_create_room (broker, "general", "alice");
    s_append_change (broker, "general", 1, 0, "kept words");
    s_append_change (broker, "general", 2, 0, "kept gone");
    s_append_change (broker, "general", 3, 2, NULL);
    s_append_change (broker, NULL, 1, 0, "kept draft");
    s_append_change (broker, NULL, 2, 1, "kept private");
}

static void
s_assert_searchable (sc_broker_t *broker)
{
    assert_int_equal (s_search_count (broker, "kept"), 2);
    assert_int_equal (s_search_count (broker, "gone"), 0);
    assert_int_equal (s_search_count (broker, "draft"), 0);
    assert_int_equal (s_search_count (broker, "private"), 1);
}

//  The index file is derived data (schema version 15): removed while the
//  store is stopped, or damaged, it is built again from the messages at
//  the start, and then follows them
static void
test_search_index_removed_or_damaged_is_built_again (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    s_write_searchable (broker);
    s_assert_searchable (broker);
    sc_broker_destroy (&broker);

    s_remove_index (fixture);
    broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    s_assert_searchable (broker);
    sc_broker_destroy (&broker);
    assert_true (s_sql_int (fixture->index, "SELECT count (*) FROM search_docs") == 2);

    //  Not a database any more
    FILE *file = fopen (fixture->index, "r+b");
    assert_non_null (file);
    assert_int_equal (fwrite ("garbage, not SQLite", 1, 19, file), 19);
    fclose (file);
    broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    assert_true (sc_log_says (s_log, fixture->index, "built again"));
    s_assert_searchable (broker);
    s_append_change (broker, "general", 4, 0, "kept still");
    assert_int_equal (s_search_count (broker, "kept"), 3);
    sc_broker_destroy (&broker);
}

//  A main file restored from a copy beside a newer index (parleyctl backup
//  copies the main file only): the index is ahead of it, so it is built
//  again, and finds what the restored file holds, not what came after
static void
test_search_index_ahead_of_a_restored_file_is_built_again (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    s_write_searchable (broker);
    sc_broker_destroy (&broker);
    char copy [340];
    snprintf (copy, sizeof copy, "%s.copy", fixture->path);
    s_sql (fixture->path, "PRAGMA wal_checkpoint(TRUNCATE)");
    char *command = zsys_sprintf ("cp '%s' '%s'", fixture->path, copy);
    assert_int_equal (system (command), 0);
    zstr_free (&command);

    broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    s_append_change (broker, "general", 4, 0, "kept later");
    s_append_change (broker, "general", 5, 1, NULL);
    assert_int_equal (s_search_count (broker, "kept"), 2);
    assert_int_equal (s_search_count (broker, "later"), 1);
    sc_broker_destroy (&broker);

    //  The copy back in place, the newer index beside it
    s_sql (fixture->path, "PRAGMA wal_checkpoint(TRUNCATE)");
    assert_int_equal (rename (copy, fixture->path), 0);
    broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    assert_true (sc_log_says (s_log, fixture->index, "built again"));
    s_assert_searchable (broker);
    assert_int_equal (s_search_count (broker, "later"), 0);
    sc_broker_destroy (&broker);
}

//  The same when the only thing after the copy is a new room: the index
//  names a room the restored file never had, whose id the next room
//  takes; without the rebuild that room's search would give the old
//  room's words for its own entries
static void
test_search_index_naming_a_room_a_restored_file_lacks_is_built_again (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    s_create_user (broker, "alice");
    s_create_room (broker, "general", "alice");
    s_append_change (broker, "general", 1, 0, "kept words");
    sc_broker_destroy (&broker);
    char copy [340];
    snprintf (copy, sizeof copy, "%s.copy", fixture->path);
    s_sql (fixture->path, "PRAGMA wal_checkpoint(TRUNCATE)");
    char *command = zsys_sprintf ("cp '%s' '%s'", fixture->path, copy);
    assert_int_equal (system (command), 0);
    zstr_free (&command);

    broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    s_create_room (broker, "later", "alice");
    s_append_change (broker, "later", 1, 0, "stale marmot");
    assert_int_equal (s_search_count (broker, "marmot"), 1);
    sc_broker_destroy (&broker);

    s_sql (fixture->path, "PRAGMA wal_checkpoint(TRUNCATE)");
    assert_int_equal (rename (copy, fixture->path), 0);
    broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    assert_true (sc_log_says (s_log, fixture->index, "ahead of the main file"));
    s_create_room (broker, "again", "alice");
    s_append_change (broker, "again", 1, 0, "fresh words");
    assert_int_equal (s_search_count (broker, "marmot"), 0);
    assert_int_equal (s_search_count (broker, "fresh"), 1);
    assert_int_equal (s_search_count (broker, "kept"), 1);
    sc_broker_destroy (&broker);
}

//  A room deleted takes its messages out of the index, and a room made
//  after it with the same id (SQLite reuses the highest) is indexed from
//  its first message
static void
test_search_follows_a_room_deleted_and_its_id_reused (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    s_create_user (broker, "alice");
    s_create_room (broker, "first", "alice");
    s_append_change (broker, "first", 1, 0, "older alpha");
    s_append_change (broker, "first", 2, 0, "older beta");
    assert_int_equal (s_search_count (broker, "older"), 2);
    int64_t first_id = s_sql_int (fixture->path, "SELECT id FROM rooms WHERE name_key = 'first'");
    s_delete_room (broker, "first");
    s_create_room (broker, "second", "alice");
    assert_int_equal (s_sql_int (fixture->path, "SELECT id FROM rooms WHERE name_key = 'second'"),
                      first_id);
    s_append_change (broker, "second", 1, 0, "newer gamma");
    assert_int_equal (s_search_count (broker, "older"), 0);
    assert_int_equal (s_search_count (broker, "newer"), 1);
    assert_int_equal (s_search_count (broker, "alpha"), 0);
    sc_broker_destroy (&broker);
    //  The changes the indexer applied left the main file
    assert_int_equal (s_sql_int (fixture->index, "SELECT count (*) FROM search_docs"), 1);
}

//  --------------------------------------------------------------------------
//  A search never holds the writes (proto/STORE.md, "Search"): one whose
//  index is behind is set aside while the rest of its batch, and what
//  comes after, runs and is answered

//  Holds the search index's file as another writer would: the indexer's
//  passes wait for it, then fail and are tried again, so that the index
//  cannot pass the commits made from now on
static sqlite3 *
s_hold_index (const fixture_t *fixture)
{
    sqlite3 *db;
    assert_int_equal (sqlite3_open (fixture->index, &db), SQLITE_OK);
    sqlite3_busy_timeout (db, 10000);
    assert_int_equal (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static void
s_release_index (sqlite3 **db_p)
{
    assert_int_equal (sqlite3_exec (*db_p, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close (*db_p);
    *db_p = NULL;
}

//  Sends store.search for alice's word without waiting; the rid
static uint64_t
s_send_search (sc_broker_t *broker, const char *word)
{
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "user", "alice");
    pl_pack_str (&body, "words");
    msgpack_pack_array (&body.packer, 1);
    pl_pack_str (&body, word);
    pl_pack_kint (&body, "limit", 100);
    uint64_t rid = sc_broker_send_body (broker, "store.search", &body);
    assert_true (rid > 0);
    return rid;
}

//  Sends a message of alice's to room without waiting; the rid
static uint64_t
s_send_message (sc_broker_t *broker, const char *room, int64_t seq, const char *text)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    const char *type = sc_pack_change (&buffer, room, seq, 0, text, seq);
    uint64_t rid = sc_broker_send (broker, type, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    assert_true (rid > 0);
    return rid;
}

//  The next reply, which must answer rid; asserts it came
static sc_reply_t *
s_recv_for (sc_broker_t *broker, uint64_t rid)
{
    sc_reply_t *reply = sc_broker_recv (broker, 30000);
    assert_non_null (reply);
    assert_int_equal (reply->rid, rid);
    return reply;
}

//  A room with one message the index holds (its first build over, so a
//  search's wait is search_wait_ms), then the index held and a message
//  it cannot pass: a search for "numbat" must see it
static sqlite3 *
s_index_held_behind_a_message (const fixture_t *fixture, sc_broker_t *broker)
{
    s_create_user (broker, "alice");
    s_create_room (broker, "general", "alice");
    s_append_change (broker, "general", 1, 0, "wombat first");
    assert_int_equal (s_search_count (broker, "wombat"), 1);
    sqlite3 *held = s_hold_index (fixture);
    s_append_change (broker, "general", 2, 0, "numbat second");
    return held;
}

static void
test_search_waiting_for_the_index_is_set_aside_and_writes_go_on (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, "store-sqlite.search_wait_ms=60000");
    assert_non_null (broker);
    sqlite3 *held = s_index_held_behind_a_message (fixture, broker);
    //  The search comes first, the message after it: the message is answered,
    //  and is in the file, while the search waits for the index
    uint64_t search = s_send_search (broker, "numbat");
    uint64_t append = s_send_message (broker, "general", 3, "quoll third");
    sc_reply_t *reply = s_recv_for (broker, append);
    assert_null (reply->code);
    sc_reply_destroy (&reply);
    assert_int_equal (s_sql_int (fixture->path, "SELECT count (*) FROM entries"
                                 " WHERE text = 'quoll third'"), 1);
    //  ... and so are writes that come later still
    s_append_change (broker, "general", 4, 0, "dingo fourth");
    //  The index free again, the search answers, with the message acknowledged
    //  before it was asked
    s_release_index (&held);
    reply = s_recv_for (broker, search);
    if (reply->code)
        fail_msg ("store.search: %s: %s", reply->code, reply->message);
    const msgpack_object *results = sc_reply_field (reply, "results");
    assert_non_null (results);
    assert_int_equal (results->via.array.size, 1);
    const msgpack_object *entry = sc_map_field (&results->via.array.ptr [0], "entry");
    assert_non_null (entry);
    const msgpack_object *seq = sc_map_field (entry, "seq");
    assert_non_null (seq);
    assert_int_equal (seq->via.u64, 2);
    sc_reply_destroy (&reply);
    sc_broker_destroy (&broker);
}

static void
test_search_set_aside_past_its_wait_answers_unavailable_and_writes_go_on (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_t *broker = s_start (fixture->option, "store-sqlite.search_wait_ms=200");
    assert_non_null (broker);
    sqlite3 *held = s_index_held_behind_a_message (fixture, broker);
    uint64_t search = s_send_search (broker, "numbat");
    uint64_t append = s_send_message (broker, "general", 3, "quoll third");
    //  The message first: it never waits for the search
    sc_reply_t *reply = s_recv_for (broker, append);
    assert_null (reply->code);
    sc_reply_destroy (&reply);
    //  The search, once its wait is over: unavailable, with when to retry
    reply = s_recv_for (broker, search);
    assert_non_null (reply->code);
    assert_string_equal (reply->code, "unavailable");
    const msgpack_object *retry = sc_reply_field (reply, "retry_after_ms");
    assert_non_null (retry);
    assert_true (retry->via.u64 >= 100);
    sc_reply_destroy (&reply);
    assert_int_equal (s_sql_int (fixture->path, "SELECT count (*) FROM entries"
                                 " WHERE text = 'quoll third'"), 1);
    //  A search still set aside when the store stops is answered unavailable
    //  (the sanitizers check that nothing of it is left behind)
    search = s_send_search (broker, "numbat");
    append = s_send_message (broker, "general", 4, "dingo fourth");
    reply = s_recv_for (broker, append);
    assert_null (reply->code);
    sc_reply_destroy (&reply);
    sc_broker_stop (broker);
    reply = s_recv_for (broker, search);
    assert_non_null (reply->code);
    assert_string_equal (reply->code, "unavailable");
    sc_reply_destroy (&reply);
    s_release_index (&held);
    sc_broker_destroy (&broker);
}

//  --------------------------------------------------------------------------
//  Files of every older version, built with the migrations' own texts
//  (ss_db_migration_sql), and the files the builds whose migration list
//  lacked two commas recorded as migrated without running the migrations

//  The file's schema, one line per object (type, name, table, sql) but
//  SQLite's own. ALTER TABLE ADD COLUMN rewrites a table's sql the same way
//  on every path, so that a file migrated in steps compares equal to a new
//  one. Freed by the caller.
static char *
s_schema_of (const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *stmt;
    assert_int_equal (sqlite3_open (path, &db), SQLITE_OK);
    assert_int_equal (sqlite3_prepare_v2 (db, "SELECT type, name, tbl_name, sql FROM sqlite_master"
                                          " WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
                                          -1, &stmt, NULL), SQLITE_OK);
    char *schema = strdup ("");
    while (sqlite3_step (stmt) == SQLITE_ROW) {
        char *next = zsys_sprintf ("%s%s | %s | %s | %s\n", schema,
                                   (const char *) sqlite3_column_text (stmt, 0),
                                   (const char *) sqlite3_column_text (stmt, 1),
                                   (const char *) sqlite3_column_text (stmt, 2),
                                   sqlite3_column_text (stmt, 3)
                                   ? (const char *) sqlite3_column_text (stmt, 3) : "");
        free (schema);
        schema = next;
    }
    sqlite3_finalize (stmt);
    sqlite3_close (db);
    return schema;
}

//  Fails naming the first line where the schema of what differs from the
//  new file's
static void
s_assert_schema_is (const char *expected, const char *path, const char *what)
{
    char *schema = s_schema_of (path);
    size_t line = 0;
    for (size_t index = 0; expected [index] == schema [index]; index++) {
        if (!expected [index]) {
            free (schema);
            return;
        }
        if (expected [index] == '\n')
            line = index + 1;
    }
    fail_msg ("%s: its schema differs from a new file's at\n  new: %.300s\n  its: %.300s",
              what, expected + line, schema + line);
}

//  The schema of a new file (the fixture's), made by the store
static char *
s_new_schema (const fixture_t *fixture)
{
    sc_broker_t *broker = s_start (fixture->option, NULL);
    assert_non_null (broker);
    sc_broker_destroy (&broker);
    return s_schema_of (fixture->path);
}

//  Runs sql on an open file; fails with SQLite's error
static void
s_exec_ok (sqlite3 *db, const char *sql)
{
    char *error = NULL;
    if (sqlite3_exec (db, sql, NULL, NULL, &error) != SQLITE_OK)
        fail_msg ("%.200s: %s", sql, error);
}

//  Runs migration version's text on db unless version is 0, and records
//  recorded unless 0
static void
s_run_migration (sqlite3 *db, int version, int recorded)
{
    if (version) {
        const char *sql = ss_db_migration_sql (version);
        assert_non_null (sql);
        s_exec_ok (db, sql);
    }
    if (recorded) {
        char *record = zsys_sprintf ("INSERT INTO schema_version VALUES (%d, 0)", recorded);
        s_exec_ok (db, record);
        zstr_free (&record);
    }
}

//  Builds at path the file a build with one migration per version left at
//  version ran (migrations 1 to ran, each recorded), with alice, and from
//  version 2 her room general and its message "older words". Then, as a
//  build whose migration list lacked two commas did with it, runs
//  misplaced's text (unless 0) and records versions ran + 1 to recorded.
static void
s_build_file (const char *path, int ran, int misplaced, int recorded)
{
    sqlite3 *db;
    assert_int_equal (sqlite3_open (path, &db), SQLITE_OK);
    //  As s_migrate makes it, so that its sql compares equal
    s_exec_ok (db, "CREATE TABLE IF NOT EXISTS schema_version ("
                   "    version INTEGER PRIMARY KEY,"
                   "    applied_at INTEGER NOT NULL)");
    for (int version = 1; version <= ran; version++)
        s_run_migration (db, version, version);
    s_exec_ok (db, "INSERT INTO users (id, name, name_key, password_hash, created_at)"
                   "    VALUES (1, 'alice', 'alice', 'h', 1)");
    if (ran >= 2)
        s_exec_ok (db, "INSERT INTO rooms (id, name, name_key, description, private,"
                       "    max_participants, owner_id, created_at)"
                       "    VALUES (1, 'general', 'general', '', 0, 50, 1, 1);"
                       "INSERT INTO members (room_id, user_id, joined_at) VALUES (1, 1, 1);"
                       "INSERT INTO entries (room_id, seq, kind, user, ts, text)"
                       "    VALUES (1, 1, 'message', 'alice', 1, 'older words')");
    s_run_migration (db, misplaced, 0);
    for (int version = ran + 1; version <= recorded; version++)
        s_run_migration (db, 0, version);
    sqlite3_close (db);
}

//  Opens the file at path with the store, and closes it
static void
s_open_file (const char *path)
{
    char *option = zsys_sprintf ("store-sqlite.path=%s", path);
    sc_broker_t *broker = s_start (option, NULL);
    if (!broker)
        fail_msg ("the store refused %s", path);
    sc_broker_destroy (&broker);
    zstr_free (&option);
}

//  A file of each version before the newest, migrated at the start, has
//  the schema of a new file: no migration is skipped or run twice
static void
test_file_of_every_older_version_migrated_to_a_new_files_schema (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    char *expected = s_new_schema (fixture);
    sc_log_clear (s_log);
    for (int version = 1; version < S_SCHEMA_NOW; version++) {
        char path [320];
        snprintf (path, sizeof path, "%s/version-%d.db", fixture->folder, version);
        s_build_file (path, version, 0, version);
        s_open_file (path);
        char what [64];
        snprintf (what, sizeof what, "a version-%d file migrated", version);
        s_assert_schema_is (expected, path, what);
        assert_int_equal (s_sql_int (path, "SELECT count (*) FROM schema_version"), S_SCHEMA_NOW);
        assert_int_equal (s_sql_int (path, "SELECT count (*) FROM users"), 1);
    }
    //  Every migration ran in its turn: nothing to repair
    assert_false (sc_log_says (s_log, "repaired", NULL));
    free (expected);
}

//  The builds of schemas 13 to 15 whose migration list lacked the commas
//  after migrations 12 and 13 recorded a file of version 12, 13 or 14 at
//  their newest version without running what came after (or, for a
//  version-12 file, ran 15's text in 13's place). At the start the store
//  runs the missing migrations again: the file has a new file's schema,
//  keeps its messages, and search finds them and follows what comes after.
static void
test_files_recorded_without_their_migrations_are_repaired (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    char *expected = s_new_schema (fixture);
    struct {
        int ran;                    //  the version the file was at
        int misplaced;              //  the text a build ran in its place, or 0
        const char *repaired [3];   //  the versions run again, in order
    } shapes [] = {
        //  A version-14 file opened by a build of schema 15: 15 skipped
        { 14, 0,  { "repaired schema version 15" } },
        //  A version-13 file opened by it: 14 and 15 skipped
        { 13, 0,  { "repaired schema version 14", "repaired schema version 15" } },
        //  A version-12 file opened by it: 15's text as 13, then nothing
        { 12, 15, { "repaired schema version 13", "repaired schema version 14" } },
        //  A version-12 file opened by the builds of schemas 13, 14 and 15
        //  in turn: each recorded its version and ran nothing
        { 12, 0,  { "repaired schema version 13", "repaired schema version 14",
                    "repaired schema version 15" } }
    };
    size_t count = sizeof shapes / sizeof shapes [0];
    for (size_t index = 0; index < count; index++) {
        char path [320];
        snprintf (path, sizeof path, "%s/broken-%zu.db", fixture->folder, index);
        s_build_file (path, shapes [index].ran, shapes [index].misplaced, S_SCHEMA_NOW);
        sc_log_clear (s_log);
        char *option = zsys_sprintf ("store-sqlite.path=%s", path);
        sc_broker_t *broker = s_start (option, NULL);
        if (!broker)
            fail_msg ("the store refused %s", path);
        for (size_t repaired = 0; repaired < 3 && shapes [index].repaired [repaired]; repaired++)
            if (!sc_log_says (s_log, path, shapes [index].repaired [repaired]))
                fail_msg ("%s: no \"%s\" logged", path, shapes [index].repaired [repaired]);
        //  Its message is found, and so is one appended since; an edit
        //  (schema 15's triggers) takes the old words out
        assert_int_equal (s_search_count (broker, "older"), 1);
        s_append_change (broker, "general", 2, 0, "fresh words");
        assert_int_equal (s_search_count (broker, "fresh"), 1);
        s_append_change (broker, "general", 3, 1, "edited text");
        assert_int_equal (s_search_count (broker, "older"), 0);
        assert_int_equal (s_search_count (broker, "edited"), 1);
        sc_broker_destroy (&broker);
        zstr_free (&option);
        char what [64];
        snprintf (what, sizeof what, "the repaired file %zu", index);
        s_assert_schema_is (expected, path, what);
        assert_int_equal (s_sql_int (path, "SELECT count (*) FROM schema_version"), S_SCHEMA_NOW);
    }
    //  Opened again, there is nothing more to repair
    sc_log_clear (s_log);
    for (size_t index = 0; index < count; index++) {
        char path [320];
        snprintf (path, sizeof path, "%s/broken-%zu.db", fixture->folder, index);
        s_open_file (path);
    }
    assert_false (sc_log_says (s_log, "repaired", NULL));
    free (expected);
}

int
main (int argc, char *argv [])
{
    if (argc == 4 && strcmp (argv [1], "--probe") == 0)
        return s_probe (argv [2], argv [3]);

    zsys_handler_set (NULL);
    s_log = sc_log_new (S_LOG_ENDPOINT);
    assert (s_log);

#define S_TEST(name) cmocka_unit_test_setup_teardown (name, s_setup, s_teardown)
    const struct CMUnitTest tests [] = {
        S_TEST (test_backup_copies_the_database_whole_while_it_serves),
        S_TEST (test_backup_refuses_bad_paths_and_anyone_but_the_operator),
        S_TEST (test_new_database_is_wal_at_the_newest_schema_version),
        S_TEST (test_room_lists_and_quotas_are_index_ranges_not_scans),
        S_TEST (test_version_1_file_migrated_in_place_keeping_accounts),
        S_TEST (test_history_and_counts_are_searches_of_primary_keys_not_scans),
        S_TEST (test_version_2_file_migrated_in_place_keeping_rooms),
        S_TEST (test_nonce_lookups_are_searches_of_their_index_not_scans),
        S_TEST (test_pm_history_unread_and_conversation_list_never_scan),
        S_TEST (test_missing_folder_refused_naming_the_path),
        S_TEST (test_file_that_is_not_a_database_refused),
        S_TEST (test_corrupt_database_refused),
        S_TEST (test_read_only_file_refused),
        S_TEST (test_read_only_folder_refused),
        S_TEST (test_database_of_newer_schema_refused),
        S_TEST (test_invalid_option_refused),
        S_TEST (test_group_commit_commits_a_burst_in_few_transactions),
        S_TEST (test_group_commit_off_commits_each_request_alone),
        S_TEST (test_batch_that_cannot_commit_answered_unavailable_and_applied_later),
        S_TEST (test_deleted_texts_leave_the_file_after_the_search_compaction),
        S_TEST (test_deleted_words_stay_in_the_search_index_until_its_compaction),
        S_TEST (test_version_11_file_migrated_indexes_its_messages),
        S_TEST (test_search_index_removed_or_damaged_is_built_again),
        S_TEST (test_search_index_ahead_of_a_restored_file_is_built_again),
        S_TEST (test_search_follows_a_room_deleted_and_its_id_reused),
        S_TEST (test_search_waiting_for_the_index_is_set_aside_and_writes_go_on),
        S_TEST (test_search_set_aside_past_its_wait_answers_unavailable_and_writes_go_on),
        S_TEST (test_search_index_naming_a_room_a_restored_file_lacks_is_built_again),
        S_TEST (test_file_of_every_older_version_migrated_to_a_new_files_schema),
        S_TEST (test_files_recorded_without_their_migrations_are_repaired),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    sc_log_destroy (&s_log);
    return rc;
}
