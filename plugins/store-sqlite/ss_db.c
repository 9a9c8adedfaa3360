/*  =========================================================================
    ss_db - store-sqlite's database file: opening it, its schema and
    migrations, transactions, and the helpers every statement uses
    =========================================================================
*/

#include "ss_db.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ss_db_s {
    parley_ctx_t *ctx;              //  the host's handle, for the log
    const parley_host_t *host;      //  the host's function table
    char *path;                     //  the database file
    sqlite3 *db;                    //  the open connection
    sqlite3_stmt *steps [SS_DB_STEP_COUNT];    //  the transaction's statements
};

static const char *s_step_text [SS_DB_STEP_COUNT] = {
    [SS_DB_BEGIN]       = "BEGIN IMMEDIATE",
    [SS_DB_COMMIT]      = "COMMIT",
    [SS_DB_ROLLBACK]    = "ROLLBACK",
    [SS_DB_SAVEPOINT]   = "SAVEPOINT request",
    [SS_DB_RELEASE]     = "RELEASE request",
    [SS_DB_ROLLBACK_TO] = "ROLLBACK TO request"
};

//  Schema 12's triggers on a timeline table (T, its key column K): a
//  message with text enters the index at its place in time (the next free
//  rowid of its millisecond: 65536 messages of one millisecond in one store
//  would be one too many, and the write would fail); an edit gives the old
//  text back ('delete') and the new one under the same rowid; a deletion
//  (deleted set, or the row gone with its room) gives the text back and
//  drops the row of search_docs
#define SS_DB_SEARCH_TRIGGERS(T, K) \
    "CREATE TRIGGER search_" T "_insert AFTER INSERT ON " T \
    "    WHEN new.kind = 'message' AND new.deleted = 0 AND new.text <> '' BEGIN" \
    "    INSERT INTO search_docs (id, " K ", seq) VALUES (COALESCE ((SELECT MAX (id) + 1" \
    "        FROM search_docs WHERE id >= new.ts * 65536 AND id < (new.ts + 1) * 65536)," \
    "        new.ts * 65536), new." K ", new.seq);" \
    "    INSERT INTO search (rowid, text) VALUES (last_insert_rowid (), new.text);" \
    "END;" \
    "CREATE TRIGGER search_" T "_update AFTER UPDATE OF text, deleted ON " T \
    "    WHEN old.kind = 'message' BEGIN" \
    "    INSERT INTO search (search, rowid, text) SELECT 'delete', id, old.text" \
    "        FROM search_docs WHERE " K " = old." K " AND seq = old.seq;" \
    "    DELETE FROM search_docs WHERE (new.deleted <> 0 OR new.text = '')" \
    "        AND " K " = old." K " AND seq = old.seq;" \
    "    INSERT OR IGNORE INTO search_docs (id, " K ", seq) SELECT COALESCE ((SELECT MAX (id) + 1" \
    "        FROM search_docs WHERE id >= new.ts * 65536 AND id < (new.ts + 1) * 65536)," \
    "        new.ts * 65536), new." K ", new.seq WHERE new.deleted = 0 AND new.text <> '';" \
    "    INSERT INTO search (rowid, text) SELECT id, new.text FROM search_docs" \
    "        WHERE " K " = new." K " AND seq = new.seq;" \
    "END;" \
    "CREATE TRIGGER search_" T "_delete AFTER DELETE ON " T \
    "    WHEN old.kind = 'message' BEGIN" \
    "    INSERT INTO search (search, rowid, text) SELECT 'delete', id, old.text" \
    "        FROM search_docs WHERE " K " = old." K " AND seq = old.seq;" \
    "    DELETE FROM search_docs WHERE " K " = old." K " AND seq = old.seq;" \
    "END;"

//  Schema 15's change table: id never reused (AUTOINCREMENT), so that
//  the indexer's watermark (the last id it applied) stays true after the
//  store removed the rows up to it. text is the text the message had in
//  the index before the change (NULL when it had none: deleted, empty,
//  not a message); seq 0 says the whole timeline went (its room or
//  conversation deleted: the id may come back for another).
#define SS_DB_CHANGE_TABLE \
    "CREATE TABLE search_changes (" \
    "    id INTEGER PRIMARY KEY AUTOINCREMENT," \
    "    room_id INTEGER," \
    "    conversation_id INTEGER," \
    "    seq INTEGER NOT NULL," \
    "    text TEXT" \
    ");"

//  Schema 15's triggers on a timeline table (T, its key column K, the
//  table P of its timelines): a message's edit or deletion, or its row
//  gone, appends its old indexed text; the timeline's own row gone
//  appends the mark (seq 0), after the rows its cascade removed. An
//  append fires none of them.
#define SS_DB_CHANGE_OLD_TEXT \
    " CASE WHEN old.deleted = 0 AND old.text <> '' THEN old.text END"
#define SS_DB_CHANGE_TRIGGERS(T, K, P) \
    "CREATE TRIGGER search_" T "_update AFTER UPDATE OF text, deleted ON " T \
    "    WHEN old.kind = 'message' AND (old.text IS NOT new.text" \
    "        OR old.deleted IS NOT new.deleted) BEGIN" \
    "    INSERT INTO search_changes (" K ", seq, text)" \
    "        VALUES (old." K ", old.seq," SS_DB_CHANGE_OLD_TEXT ");" \
    "END;" \
    "CREATE TRIGGER search_" T "_delete AFTER DELETE ON " T \
    "    WHEN old.kind = 'message' BEGIN" \
    "    INSERT INTO search_changes (" K ", seq, text)" \
    "        VALUES (old." K ", old.seq," SS_DB_CHANGE_OLD_TEXT ");" \
    "END;" \
    "CREATE TRIGGER search_" P "_delete AFTER DELETE ON " P " BEGIN" \
    "    INSERT INTO search_changes (" K ", seq) VALUES (old.id, 0);" \
    "END;"

//  Schema migrations: s_migrations [n - 1] takes a database from version n - 1
//  to n. Never edit a released one; add the next. Each ends with a comma:
//  without one C joins it to the next, and the array's size (checked
//  below) no longer says the schema version.
static const char *s_migrations [] = {
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
    "CREATE INDEX tokens_by_use ON tokens (user_id, last_used_at);",

    //  6: nonces (PROTOCOL.md 1.1): a message's nonce is a column of its
    //  entry, unique per (room, sender) and per (conversation, sender) by a
    //  partial index, so that entries without one cost the index nothing and
    //  a repeat is one search of it
    "ALTER TABLE entries ADD COLUMN nonce TEXT;"
    "CREATE UNIQUE INDEX entries_by_nonce ON entries (room_id, user COLLATE NOCASE, nonce)"
    "    WHERE nonce IS NOT NULL;"
    "ALTER TABLE pm_entries ADD COLUMN nonce TEXT;"
    "CREATE UNIQUE INDEX pm_entries_by_nonce ON pm_entries (conversation_id, from_id, nonce)"
    "    WHERE nonce IS NOT NULL;",

    //  7: an account's state, set by the operator (parleyctl): a disabled
    //  one cannot log in, a deleted one is gone but its row stays, so that
    //  its name stays taken
    "ALTER TABLE users ADD COLUMN state TEXT NOT NULL DEFAULT 'active';",

    //  8: read markers and mentions. A member's read marker is a column of
    //  its membership; the members of an older file start with everything
    //  read (the room's newest entry). An entry keeps the members it
    //  mentions as the msgpack array it came with, and each member it
    //  mentions, but its sender, is a row of mentions, clustered on
    //  (room_id, user_id, seq): the mentions after a marker are one range
    //  of that key, and the unread messages one range of entries' own.
    "ALTER TABLE members ADD COLUMN read_seq INTEGER NOT NULL DEFAULT 0;"
    "UPDATE members SET read_seq = COALESCE ((SELECT MAX (seq) FROM entries"
    "    WHERE entries.room_id = members.room_id), 0);"
    "ALTER TABLE entries ADD COLUMN mentions BLOB;"
    "CREATE TABLE mentions ("
    "    room_id INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,"
    "    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
    "    seq INTEGER NOT NULL,"
    "    PRIMARY KEY (room_id, user_id, seq)"
    ") WITHOUT ROWID;",

    //  9: timeline changes (edits, deletions, reactions, replies). A
    //  message's row holds it as it is now (text, edited, deleted), so that
    //  a history page stays one range; a change's row names its target. A
    //  message's edits are found by the partial index *_by_target (plain
    //  messages are not in it). Reactions are rows clustered on (timeline,
    //  seq, emoji, user): a page's reactions are one range of that key, a
    //  user's reaction one search; since is the seq at which the emoji went
    //  from none to one on the message (the order they are answered in). A
    //  conversation's last_message is its newest message entry (its `last`
    //  in pm.conversations), last_ts that message's ts.
    "ALTER TABLE entries ADD COLUMN reply_to INTEGER;"
    "ALTER TABLE entries ADD COLUMN edited INTEGER;"
    "ALTER TABLE entries ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE entries ADD COLUMN target INTEGER;"
    "ALTER TABLE entries ADD COLUMN emoji TEXT;"
    "ALTER TABLE entries ADD COLUMN on_ INTEGER;"
    "ALTER TABLE entries ADD COLUMN by_name TEXT;"
    "CREATE INDEX entries_by_target ON entries (room_id, target) WHERE target IS NOT NULL;"
    "ALTER TABLE pm_entries ADD COLUMN kind TEXT NOT NULL DEFAULT 'message';"
    "ALTER TABLE pm_entries ADD COLUMN reply_to INTEGER;"
    "ALTER TABLE pm_entries ADD COLUMN edited INTEGER;"
    "ALTER TABLE pm_entries ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE pm_entries ADD COLUMN target INTEGER;"
    "ALTER TABLE pm_entries ADD COLUMN emoji TEXT;"
    "ALTER TABLE pm_entries ADD COLUMN on_ INTEGER;"
    "CREATE INDEX pm_entries_by_target ON pm_entries (conversation_id, target)"
    "    WHERE target IS NOT NULL;"
    "ALTER TABLE conversations ADD COLUMN last_message INTEGER NOT NULL DEFAULT 0;"
    "UPDATE conversations SET last_message = last_seq;"
    "CREATE TABLE reactions ("
    "    room_id INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,"
    "    seq INTEGER NOT NULL,"
    "    emoji TEXT NOT NULL,"
    "    user_key TEXT NOT NULL,"
    "    user TEXT NOT NULL,"
    "    at INTEGER NOT NULL,"
    "    since INTEGER NOT NULL,"
    "    PRIMARY KEY (room_id, seq, emoji, user_key)"
    ") WITHOUT ROWID;"
    "CREATE TABLE pm_reactions ("
    "    conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,"
    "    seq INTEGER NOT NULL,"
    "    emoji TEXT NOT NULL,"
    "    user_key TEXT NOT NULL,"
    "    user TEXT NOT NULL,"
    "    at INTEGER NOT NULL,"
    "    since INTEGER NOT NULL,"
    "    PRIMARY KEY (conversation_id, seq, emoji, user_key)"
    ") WITHOUT ROWID;",

    //  10: room administration. A ban is a row per (room, user), gone with
    //  the room or the user; a member.add or invite.add looks it up on its
    //  primary key. (A system entry's 'by', a kick's, is schema 9's by_name.)
    "CREATE TABLE bans ("
    "    room_id INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,"
    "    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
    "    banned_by TEXT,"
    "    banned_at INTEGER NOT NULL,"
    "    PRIMARY KEY (room_id, user_id)"
    ") WITHOUT ROWID;",

    //  11: the nonce indexes keyed by the nonce before the sender. The same
    //  uniqueness and the same look-ups (equality on all three), but where a
    //  new key goes: nonces that grow with time (a time or a counter first,
    //  as parley-bench's) land at the end of their room's or conversation's
    //  range, one page for all its senders, where a sender first gave each
    //  sender of a room a page of its own to write at each commit (a random
    //  nonce, a UUID, lands anywhere in the range either way).
    "DROP INDEX entries_by_nonce;"
    "CREATE UNIQUE INDEX entries_by_nonce ON entries (room_id, nonce, user COLLATE NOCASE)"
    "    WHERE nonce IS NOT NULL;"
    "DROP INDEX pm_entries_by_nonce;"
    "CREATE UNIQUE INDEX pm_entries_by_nonce ON pm_entries (conversation_id, nonce, from_id)"
    "    WHERE nonce IS NOT NULL;",

    //  12: search (proto/STORE.md, "Search"). An FTS5 index of the message
    //  entries that are not deleted, contentless (the texts stay in their
    //  tables only) and without positions (a search ANDs single words). A
    //  message's rowid in it is its place in time: ts * 65536 plus its rank
    //  among the messages of that millisecond, so that walking the index
    //  by rowid from its end is newest first, and a page stops early.
    //  search_docs maps that rowid to the timeline and seq, and back (its
    //  two partial indexes). Triggers keep both in step in the statement
    //  that appends, edits, deletes or cascades: every write path is
    //  covered, none can forget. A contentless index forgets a text by
    //  being given it again ('delete'), which the row's old text is.
    "CREATE TABLE search_docs ("
    "    id INTEGER PRIMARY KEY,"
    "    room_id INTEGER,"
    "    conversation_id INTEGER,"
    "    seq INTEGER NOT NULL"
    ");"
    "CREATE UNIQUE INDEX search_docs_by_room ON search_docs (room_id, seq)"
    "    WHERE room_id IS NOT NULL;"
    "CREATE UNIQUE INDEX search_docs_by_conversation ON search_docs (conversation_id, seq)"
    "    WHERE conversation_id IS NOT NULL;"
    "CREATE VIRTUAL TABLE search USING fts5 (text, content = '', detail = none,"
    "    tokenize = 'unicode61 remove_diacritics 2');"
    //  The messages of an older file, each millisecond's in timeline order
    "INSERT INTO search_docs (id, room_id, conversation_id, seq)"
    "    SELECT ts * 65536 + row_number () OVER (PARTITION BY ts ORDER BY room_id,"
    "        conversation_id, seq) - 1, room_id, conversation_id, seq FROM ("
    "        SELECT ts, room_id, NULL AS conversation_id, seq FROM entries"
    "            WHERE kind = 'message' AND deleted = 0 AND text <> ''"
    "        UNION ALL SELECT ts, NULL, conversation_id, seq FROM pm_entries"
    "            WHERE kind = 'message' AND deleted = 0 AND text <> '');"
    "INSERT INTO search (rowid, text)"
    "    SELECT d.id, e.text FROM search_docs AS d JOIN entries AS e"
    "        ON e.room_id = d.room_id AND e.seq = d.seq WHERE d.room_id IS NOT NULL"
    "    UNION ALL SELECT d.id, e.text FROM search_docs AS d JOIN pm_entries AS e"
    "        ON e.conversation_id = d.conversation_id AND e.seq = d.seq"
    "        WHERE d.conversation_id IS NOT NULL;"
    SS_DB_SEARCH_TRIGGERS ("entries", "room_id")
    SS_DB_SEARCH_TRIGGERS ("pm_entries", "conversation_id"),

    //  13: files. A file's row is in the main database, its bytes in the
    //  chunk file (blobs.chunks, created at each open: ss_db_attach). A
    //  message keeps the file it refers to in its own row (the id and the
    //  map it was sent with); the partial indexes find a file's
    //  references, files_by_ts the sweep's old files.
    "CREATE TABLE files ("
    "    id TEXT PRIMARY KEY,"
    "    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
    "    name TEXT NOT NULL,"
    "    type TEXT NOT NULL,"
    "    size INTEGER NOT NULL,"
    "    ts INTEGER NOT NULL,"
    "    written INTEGER NOT NULL DEFAULT 0,"
    "    complete INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE INDEX files_by_user ON files (user_id);"
    "CREATE INDEX files_by_ts ON files (ts);"
    "ALTER TABLE entries ADD COLUMN file_id TEXT;"
    "ALTER TABLE entries ADD COLUMN file_name TEXT;"
    "ALTER TABLE entries ADD COLUMN file_size INTEGER;"
    "ALTER TABLE entries ADD COLUMN file_type TEXT;"
    "CREATE INDEX entries_by_file ON entries (file_id) WHERE file_id IS NOT NULL;"
    "ALTER TABLE pm_entries ADD COLUMN file_id TEXT;"
    "ALTER TABLE pm_entries ADD COLUMN file_name TEXT;"
    "ALTER TABLE pm_entries ADD COLUMN file_size INTEGER;"
    "ALTER TABLE pm_entries ADD COLUMN file_type TEXT;"
    "CREATE INDEX pm_entries_by_file ON pm_entries (file_id) WHERE file_id IS NOT NULL;",

    //  14: the nonce indexes keyed by the nonce first, before the room or
    //  the conversation. The same uniqueness and look-ups (equality on all
    //  three columns); but nonces that grow with time (the web client's
    //  begin with the time) now land at the end of one range shared by
    //  every room, so a commit carrying the runs of many rooms writes one
    //  or two index pages, where version 11's gave each room in it a page
    //  of its own (the end of its range) to write to the WAL at each
    //  commit and again at the checkpoint. A random nonce lands anywhere
    //  either way.
    "DROP INDEX entries_by_nonce;"
    "CREATE UNIQUE INDEX entries_by_nonce ON entries (nonce, room_id, user COLLATE NOCASE)"
    "    WHERE nonce IS NOT NULL;"
    "DROP INDEX pm_entries_by_nonce;"
    "CREATE UNIQUE INDEX pm_entries_by_nonce ON pm_entries (nonce, conversation_id, from_id)"
    "    WHERE nonce IS NOT NULL;",

    //  15: the search index leaves the store's transactions (proto/STORE.md,
    //  "Search"). Schema 12's FTS5 table, its map and its triggers go: the
    //  index now lives in its own file (parley.search.db), written by the
    //  indexer's thread (ss_indexer), which finds new messages by itself
    //  (an append writes nothing for it). Only what it cannot see by
    //  reading the timelines stays here: search_changes, the texts that
    //  leave the index (an edit's or deletion's old text, a message gone
    //  with its room), appended by the triggers below and removed by the
    //  store once the indexer has consumed them.
    "DROP TRIGGER search_entries_insert; DROP TRIGGER search_entries_update;"
    "DROP TRIGGER search_entries_delete; DROP TRIGGER search_pm_entries_insert;"
    "DROP TRIGGER search_pm_entries_update; DROP TRIGGER search_pm_entries_delete;"
    "DROP TABLE search; DROP TABLE search_docs;"
    SS_DB_CHANGE_TABLE
    SS_DB_CHANGE_TRIGGERS ("entries", "room_id", "rooms")
    SS_DB_CHANGE_TRIGGERS ("pm_entries", "conversation_id", "conversations")
};
_Static_assert (sizeof s_migrations / sizeof s_migrations [0] == SS_DB_SCHEMA_VERSION,
                "one migration per schema version: is a comma missing between two?");

const char *
ss_db_migration_sql (int version)
{
    return version >= 1 && version <= SS_DB_SCHEMA_VERSION ? s_migrations [version - 1] : NULL;
}


//  --------------------------------------------------------------------------
//  Opening: every reason to refuse the file, said once with its path

static int
s_exec (ss_db_t *self, const char *sql, const char *why)
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
s_query_int (ss_db_t *self, const char *sql, int64_t *value_p, const char *why)
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

//  Runs sql, then record when not NULL, in one transaction; rolled back
//  and -1 after logging why on failure
static int
s_exec_in_transaction (ss_db_t *self, const char *sql, const char *record, const char *why)
{
    if (s_exec (self, "BEGIN IMMEDIATE", why))
        return -1;
    if (s_exec (self, sql, why) || (record && s_exec (self, record, why))
    ||  s_exec (self, "COMMIT", why)) {
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

//  Runs migration next in its own transaction, recorded in schema_version
static int
s_migrate_to (ss_db_t *self, int64_t next)
{
    char why [64];
    snprintf (why, sizeof why, "migration to schema version %" PRId64, next);
    char record [160];
    snprintf (record, sizeof record,
              "INSERT INTO schema_version (version, applied_at)"
              " VALUES (%" PRId64 ", CAST ((julianday ('now') - 2440587.5) * 86400000 AS INTEGER))",
              next);
    if (s_exec_in_transaction (self, s_migrations [next - 1], record, why))
        return -1;
    self->host->log (self->ctx, PARLEY_LOG_INFO, "%s: migrated to schema version %" PRId64,
                     self->path, next);
    return 0;
}

static int
s_migrate (ss_db_t *self)
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
    if (version > SS_DB_SCHEMA_VERSION) {
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "cannot open %s: its schema version is %" PRId64 ", newer than the %d "
                         "this store-sqlite knows; it was written by a newer Parley: run that "
                         "version, or restore a backup", self->path, version, SS_DB_SCHEMA_VERSION);
        return -1;
    }
    for (int64_t next = version + 1; next <= SS_DB_SCHEMA_VERSION; next++)
        if (s_migrate_to (self, next))
            return -1;
    return 0;
}

//  Why s_repair exists: from the merge of schemas 12 and 13 until this
//  repair, s_migrations lacked the comma after migration 12, and from
//  schema 14 on the one after 13 too. C joined them into one element, the
//  ones after it moved down, and the last were NULL, which sqlite3_exec
//  runs as nothing, yet s_migrate_to recorded the version. A new file, or
//  one at version 11 or before, came out right; a file such a build took
//  from version 12, 13 or 14 was recorded at its newest version with 13,
//  14 or 15 never run (and a version-12 file given 15's text in 13's
//  place by the builds of schema 15, which then refused to start on any
//  of them: a table their statements need was missing). Each of these migrations makes an
//  object no other one does; a file recorded at or past the migration
//  without it gets the migration's text again, in order: 13 and 14 only
//  add to what 15 leaves alone, and 15 finds the search triggers of 12
//  that it drops (a file given 15's text already has search_changes). A
//  later migration that drops or reshapes one of these objects must bound
//  its check with the versions recorded.
typedef struct {
    int version;                    //  the migration run again
    const char *present;            //  counts its object in the file
} s_repair_t;

static const s_repair_t s_repairs [] = {
    { 13, "SELECT count (*) FROM sqlite_schema WHERE type = 'table' AND name = 'files'" },
    { 14, "SELECT count (*) FROM sqlite_schema WHERE type = 'index'"
          " AND name = 'entries_by_nonce' AND instr (sql, '(nonce, room_id') > 0" },
    { 15, "SELECT count (*) FROM sqlite_schema WHERE type = 'table'"
          " AND name = 'search_changes'" }
};

//  Runs again each migration of s_repairs the file lacks, each in its own
//  transaction; -1 after logging why on failure. Called after s_migrate,
//  which leaves every file recorded at SS_DB_SCHEMA_VERSION: each of them
//  is recorded, so only its object is checked.
static int
s_repair (ss_db_t *self)
{
    for (size_t index = 0; index < sizeof s_repairs / sizeof s_repairs [0]; index++) {
        const s_repair_t *repair = &s_repairs [index];
        char why [64];
        snprintf (why, sizeof why, "repair of schema version %d", repair->version);
        int64_t present = 0;
        if (s_query_int (self, repair->present, &present, why))
            return -1;
        if (present)
            continue;
        if (s_exec_in_transaction (self, s_migrations [repair->version - 1], NULL, why))
            return -1;
        self->host->log (self->ctx, PARLEY_LOG_WARNING,
                         "%s: repaired schema version %d: it was recorded, but an earlier "
                         "build had skipped its migration; ran it now", self->path,
                         repair->version);
    }
    return 0;
}

//  Opens the file read-write: a folder that does not exist or a
//  write-protected file is refused now rather than at each later write
static int
s_open_file (ss_db_t *self, int busy_timeout_ms)
{
    int rc = sqlite3_open_v2 (self->path, &self->db,
                              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL);
    if (rc != SQLITE_OK) {
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "cannot open %s: %s (does its folder exist and is it writable?)",
                         self->path, self->db ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
        return -1;
    }
    sqlite3_extended_result_codes (self->db, 1);
    //  SQLite falls back to read-only when the file is write-protected: we
    //  could serve no write
    if (sqlite3_db_readonly (self->db, "main") == 1) {
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "cannot open %s: the file is read-only; the store needs to write it",
                         self->path);
        return -1;
    }
    sqlite3_busy_timeout (self->db, busy_timeout_ms);
    //  The first statement reads the file: a file that is not a database
    //  fails here
    int64_t ignored;
    return s_query_int (self, "SELECT count (*) FROM sqlite_schema", &ignored,
                        "the file is not a usable SQLite database");
}

//  Runs a pragma that answers one text and checks it is expected; logs
//  complaint (with the answer) when not
static int
s_pragma_is (ss_db_t *self, const char *pragma, const char *expected, const char *complaint)
{
    sqlite3_stmt *stmt = NULL;
    const unsigned char *answer = NULL;
    if (sqlite3_prepare_v2 (self->db, pragma, -1, &stmt, NULL) == SQLITE_OK
    &&  sqlite3_step (stmt) == SQLITE_ROW)
        answer = sqlite3_column_text (stmt, 0);
    bool as_expected = answer && strcmp ((const char *) answer, expected) == 0;
    if (!as_expected)
        self->host->log (self->ctx, PARLEY_LOG_ERROR, complaint, self->path,
                         answer ? (const char *) answer : sqlite3_errmsg (self->db));
    sqlite3_finalize (stmt);
    return as_expected ? 0 : -1;
}

char *
ss_db_sibling (const char *path, const char *suffix)
{
    size_t size = strlen (path);
    if (size > 3 && strcmp (path + size - 3, ".db") == 0)
        size -= 3;
    char *sibling = (char *) malloc (size + strlen (suffix) + 1);
    if (sibling) {
        memcpy (sibling, path, size);
        strcpy (sibling + size, suffix);
    }
    return sibling;
}

int
ss_db_attach_read_only (sqlite3 *db, const char *path, const char *schema)
{
    //  A URI (SQLite is built with URI names on Debian; SQLITE_OPEN_URI
    //  on our connections makes it so elsewhere): every byte of the path
    //  that is not plain percent-encoded
    size_t size = strlen (path);
    char *uri = (char *) malloc (3 * size + sizeof "file:?mode=ro");
    if (!uri)
        return SQLITE_NOMEM;
    char *next = uri + sprintf (uri, "file:");
    for (size_t index = 0; index < size; index++) {
        unsigned char c = (unsigned char) path [index];
        if (isalnum (c) || strchr ("/._-~", c))
            *next++ = (char) c;
        else
            next += sprintf (next, "%%%02X", c);
    }
    strcpy (next, "?mode=ro");
    char *sql = sqlite3_mprintf ("ATTACH DATABASE %Q AS %s", uri, schema);
    int rc = sql ? sqlite3_exec (db, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
    sqlite3_free (sql);
    free (uri);
    return rc;
}

//  Attaches the chunk file as 'blobs' (schema version 13), in WAL mode
//  with synchronous=FULL and secure_delete as the main file, and makes
//  its table when it has none (a new file, or one an operator removed)
static int
s_attach (ss_db_t *self)
{
    char *chunks = ss_db_sibling (self->path, ".files.db");
    char *sql = chunks ? sqlite3_mprintf ("ATTACH DATABASE %Q AS blobs", chunks) : NULL;
    int rc = sql ? s_exec (self, sql, "cannot attach the file of the files' bytes") : -1;
    sqlite3_free (sql);
    free (chunks);
    if (rc)
        return -1;
    return s_pragma_is (self, "PRAGMA blobs.journal_mode = WAL", "wal",
                        "cannot open %s's chunk file: cannot switch it to WAL mode (%s)")
        || s_exec (self, "PRAGMA blobs.synchronous = FULL", "cannot set synchronous")
        || s_exec (self, "PRAGMA blobs.secure_delete = ON", "cannot enable secure_delete")
        || s_exec (self, "CREATE TABLE IF NOT EXISTS blobs.chunks ("
                         "    file_id TEXT NOT NULL,"
                         "    offset INTEGER NOT NULL,"
                         "    data BLOB NOT NULL,"
                         "    PRIMARY KEY (file_id, offset)"
                         ")", "cannot create the chunks table") ? -1 : 0;
}

static int
s_open (ss_db_t *self, int busy_timeout_ms)
{
    if (s_open_file (self, busy_timeout_ms)
    ||  s_pragma_is (self, "PRAGMA journal_mode = WAL", "wal",
                     "cannot open %s: cannot switch it to WAL mode (%s); is its folder writable?"))
        return -1;
    //  FULL: in WAL mode NORMAL may lose the last commits on power loss, and
    //  an acknowledged write must survive (proto/STORE.md)
    if (s_exec (self, "PRAGMA synchronous = FULL", "cannot set synchronous")
    ||  s_exec (self, "PRAGMA foreign_keys = ON", "cannot enable foreign keys")
    //  A deleted message's text must leave the file (proto/STORE.md,
    //  "Timeline changes"): freed bytes are overwritten with zeros
    ||  s_exec (self, "PRAGMA secure_delete = ON", "cannot enable secure_delete")
    ||  s_attach (self)
    ||  s_migrate (self)
    ||  s_repair (self))
        return -1;
    //  Checks the file's pages once: a damaged database is refused at start
    //  rather than half-served. Cheap for accounts; revisit when messages
    //  make the file large.
    return s_pragma_is (self, "PRAGMA quick_check", "ok",
                        "cannot open %s: the database is corrupt: %s")
        || ss_db_prepare (self, s_step_text, SS_DB_STEP_COUNT, self->steps) ? -1 : 0;
}


//  --------------------------------------------------------------------------
//  The database

ss_db_t *
ss_db_new (const char *path, int busy_timeout_ms, parley_ctx_t *ctx, const parley_host_t *host)
{
    ss_db_t *self = (ss_db_t *) calloc (1, sizeof (ss_db_t));
    if (self)
        self->path = strdup (path);
    if (!self || !self->path) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        free (self);
        return NULL;
    }
    self->ctx = ctx;
    self->host = host;
    if (s_open (self, busy_timeout_ms))
        ss_db_destroy (&self);
    return self;
}

void
ss_db_destroy (ss_db_t **self_p)
{
    ss_db_t *self = *self_p;
    if (!self)
        return;
    ss_db_finalize (self->steps, SS_DB_STEP_COUNT);
    if (self->db)
        sqlite3_close (self->db);
    free (self->path);
    free (self);
    *self_p = NULL;
}

sqlite3 *
ss_db_handle (ss_db_t *self)
{
    return self->db;
}

const char *
ss_db_path (ss_db_t *self)
{
    return self->path;
}

int
ss_db_prepare (ss_db_t *self, const char *const *texts, int count, sqlite3_stmt **stmts)
{
    for (int index = 0; index < count; index++) {
        int rc = sqlite3_prepare_v3 (self->db, texts [index], -1, SQLITE_PREPARE_PERSISTENT,
                                     &stmts [index], NULL);
        if (rc != SQLITE_OK) {
            self->host->log (self->ctx, PARLEY_LOG_ERROR, "cannot open %s: cannot prepare '%s': %s",
                             self->path, texts [index], sqlite3_errmsg (self->db));
            return -1;
        }
    }
    return 0;
}

void
ss_db_finalize (sqlite3_stmt **stmts, int count)
{
    for (int index = 0; index < count; index++) {
        sqlite3_finalize (stmts [index]);
        stmts [index] = NULL;
    }
}

int
ss_db_step (ss_db_t *self, ss_db_step_t step)
{
    return ss_db_step_done (self->steps [step]);
}

bool
ss_db_in_transaction (ss_db_t *self)
{
    return !sqlite3_get_autocommit (self->db);
}


//  --------------------------------------------------------------------------
//  Statements

bool
ss_db_is_fatal (int rc)
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

int
ss_db_step_done (sqlite3_stmt *stmt)
{
    int rc = sqlite3_step (stmt);
    ss_db_finish (stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

void
ss_db_finish (sqlite3_stmt *stmt)
{
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
}

void
ss_db_bind_text (sqlite3_stmt *stmt, int param, st_text_t text)
{
    sqlite3_bind_text (stmt, param, text.data ? text.data : "", (int) text.size, SQLITE_STATIC);
}

void
ss_db_bind_key (sqlite3_stmt *stmt, int param, const st_name_t *name)
{
    sqlite3_bind_text (stmt, param, name->key, -1, SQLITE_STATIC);
}

st_text_t
ss_db_column_text (sqlite3_stmt *stmt, int column)
{
    //  The blob form: a text is answered as stored, whatever it holds
    const void *data = sqlite3_column_blob (stmt, column);
    int size = sqlite3_column_bytes (stmt, column);
    return (st_text_t) { data ? (const char *) data : "", data ? (uint32_t) size : 0 };
}

int
ss_db_count (sqlite3_stmt *stmt, int64_t *value_p)
{
    int rc = sqlite3_step (stmt);
    *value_p = rc == SQLITE_ROW ? sqlite3_column_int64 (stmt, 0) : 0;
    ss_db_finish (stmt);
    return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
}

int
ss_db_nonce_find (sqlite3_stmt *stmt, bool *found_p, st_duplicate_t *duplicate)
{
    int rc = sqlite3_step (stmt);
    *found_p = rc == SQLITE_ROW;
    if (*found_p) {
        duplicate->seq = (uint64_t) sqlite3_column_int64 (stmt, 0);
        duplicate->ts = sqlite3_column_int64 (stmt, 1);
    }
    ss_db_finish (stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int
ss_db_nonce_undo (ss_db_t *self, sqlite3_stmt *stmt, st_request_t *request, uint32_t count,
                  ss_db_nonce_bind_fn *bind, void *arg, const char *where,
                  st_duplicate_t *duplicates, uint32_t *repeated_p)
{
    int rc = ss_db_step (self, SS_DB_ROLLBACK_TO);
    *repeated_p = 0;
    if (rc == SQLITE_OK)
        rc = ss_db_nonce_repeats (stmt, count, bind, arg, duplicates, repeated_p);
    if (rc == SQLITE_OK && *repeated_p == 0)
        st_request_fail (request, "conflict", "%s has a nonce twice in one run.", where);
    return rc;
}

int
ss_db_nonce_repeats (sqlite3_stmt *stmt, uint32_t count, ss_db_nonce_bind_fn *bind, void *arg,
                     st_duplicate_t *duplicates, uint32_t *repeated_p)
{
    uint32_t repeated = 0;
    for (uint32_t index = 0; index < count && index < ST_RUN_MAX; index++) {
        bool found = false;
        if (!bind (arg, index, stmt))
            continue;
        int rc = ss_db_nonce_find (stmt, &found, &duplicates [repeated]);
        if (rc != SQLITE_OK)
            return rc;
        if (found)
            duplicates [repeated++].index = index;
    }
    *repeated_p = repeated;
    return SQLITE_OK;
}
