/*  =========================================================================
    ss_indexer - store-sqlite's search index, written off the store's
    transactions, by a thread of its own (ss_indexer.h)
    =========================================================================
*/

#include "ss_indexer.h"
#include "ss_db.h"
#include "pl_thread.h"
#include "pl_time.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

//  The index file's layout (PRAGMA user_version): a file of another is
//  built again
#define S_LAYOUT                1

//  Touched timelines waiting for the thread at most; past it the thread
//  reconciles every timeline instead (bounds memory, never loses one)
#define S_TOUCHED_MAX           65536

//  Work that no search waits for lingers this long (or until this many
//  timelines wait), so that a pass takes many commits' messages at once:
//  one FTS5 segment and one fsync for them all, not one a commit
#define S_LINGER_MS             100
#define S_LINGER_TIMELINES      4096

static const char *s_layout =
    "CREATE VIRTUAL TABLE search USING fts5 (text, content = '', detail = none,"
    "    tokenize = 'unicode61 remove_diacritics 2');"
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
    "CREATE TABLE search_progress ("
    "    kind INTEGER NOT NULL,"
    "    key INTEGER NOT NULL,"
    "    seq INTEGER NOT NULL,"
    "    PRIMARY KEY (kind, key)"
    ") WITHOUT ROWID;"
    "CREATE TABLE search_state (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "PRAGMA user_version = 1;";

//  What one pass has seen changed, in memory (temp_store = MEMORY). What
//  it reads is in an array (s_entries_t): a temporary table of it cost
//  more than the index itself (an insert, a sort and a delete a message)
static const char *s_temp =
    "CREATE TEMP TABLE done (kind INTEGER, key INTEGER, seq INTEGER,"
    "    PRIMARY KEY (kind, key, seq)) WITHOUT ROWID;";

//  The statements of one kind of timeline (T its table, K its column)
typedef enum {
    S_KIND_FETCH,
    S_KIND_CURRENT,
    S_KIND_DOC_GET,
    S_KIND_DOC_PUT,
    S_KIND_RECONCILE,
    S_KIND_COUNT
} s_kind_sql_t;

#define S_KIND_SQL(T, K, N, P, LAST) { \
    /*  The entries after a seq (?2), each with its text when it is in the \
        index (a message, not deleted, with text), NULL when not, and \
        whether it may be in the index already (known: at or below the \
        timeline's progress ?4, a seq filled below it; or changed, so \
        indexed again by the changes) */ \
    [S_KIND_FETCH]    = "SELECT ts, seq, CASE WHEN kind = 'message'" \
                        " AND deleted = 0 AND text <> '' THEN text END, seq <= ?4 OR EXISTS" \
                        " (SELECT 1 FROM temp.done AS d WHERE d.kind = " N " AND d.key = " K \
                        " AND d.seq = " T ".seq)" \
                        " FROM m." T " WHERE " K " = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3", \
    [S_KIND_CURRENT]  = "SELECT ts, text FROM m." T " WHERE " K " = ?1 AND seq = ?2" \
                        " AND kind = 'message' AND deleted = 0 AND text <> ''", \
    [S_KIND_DOC_GET]  = "SELECT id FROM search_docs WHERE " K " = ?1 AND seq = ?2", \
    [S_KIND_DOC_PUT]  = "INSERT INTO search_docs (id, " K ", seq) VALUES (?3, ?1, ?2)", \
    /*  Every timeline whose last seq is past its progress */ \
    [S_KIND_RECONCILE] = "SELECT t.id FROM m." P " AS t" \
                        " LEFT JOIN search_progress AS p ON p.kind = " N " AND p.key = t.id" \
                        " WHERE " LAST " > COALESCE (p.seq, 0)" \
}

//  The last seq of a timeline t: a room's newest entry, a conversation's
//  column
#define S_ROOM_LAST "(SELECT COALESCE (MAX (seq), 0) FROM m.entries WHERE room_id = t.id)"
#define S_CONVERSATION_LAST "t.last_seq"

static const char *s_kind_text [2][S_KIND_COUNT] = {
    S_KIND_SQL ("entries", "room_id", "0", "rooms", S_ROOM_LAST),
    S_KIND_SQL ("pm_entries", "conversation_id", "1", "conversations", S_CONVERSATION_LAST)
};

typedef enum {
    S_SQL_BEGIN,
    S_SQL_COMMIT,
    S_SQL_ROLLBACK,
    S_SQL_DONE_PUT,
    S_SQL_DONE_WALK,
    S_SQL_DONE_CLEAR,
    S_SQL_NEXT_ID,
    S_SQL_FTS_PUT,
    S_SQL_FTS_DELETE,
    S_SQL_DOC_DELETE,
    S_SQL_PROGRESS_GET,
    S_SQL_PROGRESS_PUT,
    S_SQL_PROGRESS_DROP,
    S_SQL_WATERMARK_GET,
    S_SQL_WATERMARK_PUT,
    S_SQL_CHANGES,
    S_SQL_OPTIMIZE,
    S_SQL_COUNT
} s_sql_t;

static const char *s_sql_text [S_SQL_COUNT] = {
    [S_SQL_BEGIN]         = "BEGIN IMMEDIATE",
    [S_SQL_COMMIT]        = "COMMIT",
    [S_SQL_ROLLBACK]      = "ROLLBACK",
    [S_SQL_DONE_PUT]      = "INSERT OR IGNORE INTO temp.done (kind, key, seq) VALUES (?1, ?2, ?3)",
    [S_SQL_DONE_WALK]     = "SELECT kind, key, seq FROM temp.done",
    [S_SQL_DONE_CLEAR]    = "DELETE FROM temp.done",
    //  A message's place in time: ts * 65536 plus its rank in its
    //  millisecond (schema 12's rule)
    [S_SQL_NEXT_ID]       = "SELECT COALESCE (MAX (id) + 1, ?1 * 65536) FROM search_docs"
                            " WHERE id >= ?1 * 65536 AND id < (?1 + 1) * 65536",
    [S_SQL_FTS_PUT]       = "INSERT INTO search (rowid, text) VALUES (?1, ?2)",
    [S_SQL_FTS_DELETE]    = "INSERT INTO search (search, rowid, text) VALUES ('delete', ?1, ?2)",
    [S_SQL_DOC_DELETE]    = "DELETE FROM search_docs WHERE id = ?1",
    [S_SQL_PROGRESS_GET]  = "SELECT seq FROM search_progress WHERE kind = ?1 AND key = ?2",
    [S_SQL_PROGRESS_PUT]  = "INSERT OR REPLACE INTO search_progress (kind, key, seq)"
                            " VALUES (?1, ?2, ?3)",
    [S_SQL_PROGRESS_DROP] = "DELETE FROM search_progress WHERE kind = ?1 AND key = ?2",
    [S_SQL_WATERMARK_GET] = "SELECT value FROM search_state WHERE name = 'changes'",
    [S_SQL_WATERMARK_PUT] = "INSERT OR REPLACE INTO search_state (name, value)"
                            " VALUES ('changes', ?1)",
    [S_SQL_CHANGES]       = "SELECT id, room_id IS NULL, COALESCE (room_id, conversation_id),"
                            " seq, text FROM m.search_changes WHERE id > ?1 ORDER BY id",
    [S_SQL_OPTIMIZE]      = "INSERT INTO search (search) VALUES ('optimize')"
};

//  A timeline the thread has to read: entries after min (its progress,
//  first - 1)
typedef struct {
    int kind;
    int64_t key;
    int64_t first;
} s_timeline_t;

//  A growable array of them
typedef struct {
    s_timeline_t *items;
    size_t count, size;
} s_timelines_t;

//  A message a pass read, to be put in the index
typedef struct {
    int64_t ts;
    int kind;
    int64_t key;
    int64_t seq;
    bool known;                     //  it may be there already
    char *text;                     //  owned
    int size;
} s_entry_t;

//  What a pass read, indexed in time order across its timelines
typedef struct {
    s_entry_t *items;
    size_t count, size;
} s_entries_t;

struct ss_indexer_s {
    parley_ctx_t *ctx;              //  the host's handle, for the log
    const parley_host_t *host;
    char *main_path;                //  the main file
    char *path;                     //  the index file
    sqlite3 *db;                    //  the thread's connection
    sqlite3_stmt *sql [S_SQL_COUNT];
    sqlite3_stmt *kind_sql [2][S_KIND_COUNT];
    s_timelines_t pending;          //  touched in the store's open transaction
    int64_t last_ts, last_doc;      //  the thread's: the rowid given last, and its ts
    s_timelines_t dirty;            //  the thread's: still to read
    s_entries_t pass;               //  the thread's: read by the pass, not indexed yet
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;           //  guards what follows
    pthread_cond_t wake;            //  for the thread: work, or stop
    s_timelines_t touched;          //  handed over, not taken yet
    bool reconcile;                 //  every timeline is to be checked
    bool rebuilding;                //  the first reconcile has not ended
    bool stop;
    uint64_t wanted;                //  the commit set-aside searches wait for: while
                                    //  indexed is below it, no lingering
    bool compact, compacted;        //  asked, done
    uint64_t commits;               //  ss_indexer_commit calls
    uint64_t indexed;               //  the commits every pass has passed
    int64_t watermark;              //  the last change applied and committed
    int64_t indexed_count;          //  messages put in the index, for the log
    int64_t rebuild_started;        //  monotonic ms
    char said [320];                //  for ss_indexer_report, "" for nothing
};


//  --------------------------------------------------------------------------
//  Timeline arrays

static int
s_timelines_add (s_timelines_t *self, int kind, int64_t key, int64_t first)
{
    if (self->count == self->size) {
        size_t size = self->size ? self->size * 2 : 64;
        s_timeline_t *items = (s_timeline_t *) realloc (self->items, size * sizeof *items);
        if (!items)
            return -1;
        self->items = items;
        self->size = size;
    }
    self->items [self->count++] = (s_timeline_t) { kind, key, first };
    return 0;
}

static int
s_timeline_cmp (const void *a, const void *b)
{
    const s_timeline_t *x = (const s_timeline_t *) a, *y = (const s_timeline_t *) b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

//  Sorts and merges the repeats of one timeline (the lowest first kept)
static void
s_timelines_merge (s_timelines_t *self)
{
    if (self->count < 2)
        return;
    qsort (self->items, self->count, sizeof *self->items, s_timeline_cmp);
    size_t kept = 0;
    for (size_t index = 1; index < self->count; index++) {
        s_timeline_t *last = &self->items [kept];
        if (s_timeline_cmp (last, &self->items [index]) == 0) {
            if (self->items [index].first < last->first)
                last->first = self->items [index].first;
        }
        else
            self->items [++kept] = self->items [index];
    }
    self->count = kept + 1;
}

//  Appends from (emptied) to self; -1 when out of memory
static int
s_timelines_take (s_timelines_t *self, s_timelines_t *from)
{
    int rc = 0;
    for (size_t index = 0; index < from->count && rc == 0; index++)
        rc = s_timelines_add (self, from->items [index].kind, from->items [index].key,
                              from->items [index].first);
    from->count = 0;
    return rc;
}


//  Copies a message the pass read into the array; -1 when out of memory
static int
s_entries_add (s_entries_t *self, const s_entry_t *entry, const unsigned char *text)
{
    if (self->count == self->size) {
        size_t size = self->size ? self->size * 2 : 256;
        s_entry_t *items = (s_entry_t *) realloc (self->items, size * sizeof *items);
        if (!items)
            return -1;
        self->items = items;
        self->size = size;
    }
    char *copy = (char *) malloc ((size_t) entry->size + 1);
    if (!copy)
        return -1;
    memcpy (copy, text, (size_t) entry->size);
    copy [entry->size] = 0;
    s_entry_t *item = &self->items [self->count++];
    *item = *entry;
    item->text = copy;
    return 0;
}

static void
s_entries_clear (s_entries_t *self)
{
    for (size_t index = 0; index < self->count; index++)
        free (self->items [index].text);
    self->count = 0;
}

//  Time order, then timeline and seq: the order of their rowids
static int
s_entry_cmp (const void *a, const void *b)
{
    const s_entry_t *x = (const s_entry_t *) a, *y = (const s_entry_t *) b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}


//  --------------------------------------------------------------------------
//  One pass, on the thread

static void
s_say (ss_indexer_t *self, const char *what, int rc)
{
    pthread_mutex_lock (&self->lock);
    snprintf (self->said, sizeof self->said, "search index %s: %s: %s (%s)", self->path, what,
              sqlite3_errstr (rc), sqlite3_errmsg (self->db));
    pthread_mutex_unlock (&self->lock);
}

//  Steps a statement that yields at most one integer: *value_p, or
//  otherwise when it yields no row (or NULL)
static int
s_int (sqlite3_stmt *stmt, int64_t otherwise, int64_t *value_p)
{
    int rc = sqlite3_step (stmt);
    *value_p = rc == SQLITE_ROW && sqlite3_column_type (stmt, 0) != SQLITE_NULL
             ? sqlite3_column_int64 (stmt, 0) : otherwise;
    ss_db_finish (stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int
s_doc_get (ss_indexer_t *self, int kind, int64_t key, int64_t seq, int64_t *doc_p)
{
    sqlite3_stmt *stmt = self->kind_sql [kind][S_KIND_DOC_GET];
    sqlite3_bind_int64 (stmt, 1, key);
    sqlite3_bind_int64 (stmt, 2, seq);
    return s_int (stmt, 0, doc_p);
}

//  The next free rowid of a millisecond: the one after the last given
//  when it was of the same ts (a pass walks in time order), else looked up
static int
s_next_doc (ss_indexer_t *self, int64_t ts, int64_t *doc_p)
{
    if (self->last_doc && ts == self->last_ts) {
        *doc_p = ++self->last_doc;
        return SQLITE_OK;
    }
    sqlite3_bind_int64 (self->sql [S_SQL_NEXT_ID], 1, ts);
    int rc = s_int (self->sql [S_SQL_NEXT_ID], 0, doc_p);
    self->last_ts = ts;
    self->last_doc = rc == SQLITE_OK ? *doc_p : 0;
    return rc;
}

//  Puts one message in the index at its place in time; when it may be
//  there already (known), unless it is
static int
s_index_one (ss_indexer_t *self, int kind, int64_t key, int64_t seq, int64_t ts,
             const char *text, int size, bool known)
{
    int64_t doc = 0;
    int rc = known ? s_doc_get (self, kind, key, seq, &doc) : SQLITE_OK;
    if (rc != SQLITE_OK || doc)
        return rc;
    if ((rc = s_next_doc (self, ts, &doc)) != SQLITE_OK)
        return rc;
    sqlite3_stmt *put = self->kind_sql [kind][S_KIND_DOC_PUT];
    sqlite3_bind_int64 (put, 1, key);
    sqlite3_bind_int64 (put, 2, seq);
    sqlite3_bind_int64 (put, 3, doc);
    if ((rc = ss_db_step_done (put)) != SQLITE_OK)
        return rc;
    sqlite3_stmt *fts = self->sql [S_SQL_FTS_PUT];
    sqlite3_bind_int64 (fts, 1, doc);
    sqlite3_bind_text (fts, 2, text, size, SQLITE_STATIC);
    self->indexed_count++;
    return ss_db_step_done (fts);
}

//  Takes one message's old text out of the index, if it is there
static int
s_unindex (ss_indexer_t *self, int kind, int64_t key, int64_t seq, sqlite3_value *old_text)
{
    int64_t doc;
    int rc = s_doc_get (self, kind, key, seq, &doc);
    if (rc != SQLITE_OK || !doc)
        return rc;
    //  A row without a text in the index (cannot be) only loses its map
    if (sqlite3_value_type (old_text) != SQLITE_NULL) {
        sqlite3_stmt *fts = self->sql [S_SQL_FTS_DELETE];
        sqlite3_bind_int64 (fts, 1, doc);
        sqlite3_bind_value (fts, 2, old_text);
        if ((rc = ss_db_step_done (fts)) != SQLITE_OK)
            return rc;
    }
    sqlite3_bind_int64 (self->sql [S_SQL_DOC_DELETE], 1, doc);
    self->last_doc = 0;             //  the rowids of its millisecond changed
    return ss_db_step_done (self->sql [S_SQL_DOC_DELETE]);
}

static int
s_progress (ss_indexer_t *self, s_sql_t sql, int kind, int64_t key, int64_t seq)
{
    sqlite3_stmt *stmt = self->sql [sql];
    sqlite3_bind_int64 (stmt, 1, kind);
    sqlite3_bind_int64 (stmt, 2, key);
    if (sql == S_SQL_PROGRESS_PUT)
        sqlite3_bind_int64 (stmt, 3, seq);
    return ss_db_step_done (stmt);
}

//  True when the timeline went (a mark) earlier in this pass
static bool
s_gone (const s_timelines_t *gone, int kind, int64_t key)
{
    for (size_t index = 0; index < gone->count; index++)
        if (gone->items [index].kind == kind && gone->items [index].key == key)
            return true;
    return false;
}

//  One change, in id order. Only an entry's first change in the pass
//  carries the text that is in the index (those after it change what the
//  first left); a timeline's mark resets its progress, and its changes
//  after the mark are of a new timeline with the same id (not indexed
//  yet).
static int
s_change (ss_indexer_t *self, sqlite3_stmt *change, s_timelines_t *gone)
{
    int kind = sqlite3_column_int (change, 1);
    int64_t key = sqlite3_column_int64 (change, 2);
    int64_t seq = sqlite3_column_int64 (change, 3);
    if (s_gone (gone, kind, key))
        return SQLITE_OK;
    if (seq == 0) {
        int rc = s_progress (self, S_SQL_PROGRESS_DROP, kind, key, 0);
        if (rc == SQLITE_OK && s_timelines_add (gone, kind, key, 0))
            rc = SQLITE_NOMEM;
        //  Read again from its start, when it has a new life
        if (rc == SQLITE_OK && s_timelines_add (&self->dirty, kind, key, 1))
            rc = SQLITE_NOMEM;
        return rc;
    }
    sqlite3_stmt *done = self->sql [S_SQL_DONE_PUT];
    sqlite3_bind_int (done, 1, kind);
    sqlite3_bind_int64 (done, 2, key);
    sqlite3_bind_int64 (done, 3, seq);
    int rc = ss_db_step_done (done);
    if (rc != SQLITE_OK || sqlite3_changes (self->db) == 0)
        return rc;
    return s_unindex (self, kind, key, seq, sqlite3_column_value (change, 4));
}

//  After the changes: each changed entry back in the index by its current
//  text, unless its timeline went
static int
s_reindex_changed (ss_indexer_t *self, const s_timelines_t *gone)
{
    sqlite3_stmt *walk = self->sql [S_SQL_DONE_WALK];
    int rc;
    while ((rc = sqlite3_step (walk)) == SQLITE_ROW) {
        int kind = sqlite3_column_int (walk, 0);
        int64_t key = sqlite3_column_int64 (walk, 1);
        int64_t seq = sqlite3_column_int64 (walk, 2);
        if (s_gone (gone, kind, key))
            continue;
        sqlite3_stmt *current = self->kind_sql [kind][S_KIND_CURRENT];
        sqlite3_bind_int64 (current, 1, key);
        sqlite3_bind_int64 (current, 2, seq);
        int found = sqlite3_step (current);
        rc = found == SQLITE_ROW
           ? s_index_one (self, kind, key, seq, sqlite3_column_int64 (current, 0),
                         (const char *) sqlite3_column_text (current, 1),
                         sqlite3_column_bytes (current, 1), true)
           : found == SQLITE_DONE ? SQLITE_OK : found;
        ss_db_finish (current);
        if (rc != SQLITE_OK)
            break;
    }
    ss_db_finish (walk);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

//  The changes queued since the watermark, applied; the new watermark
static int
s_apply_changes (ss_indexer_t *self, int64_t *watermark_p)
{
    s_timelines_t gone = { NULL, 0, 0 };
    sqlite3_stmt *changes = self->sql [S_SQL_CHANGES];
    sqlite3_bind_int64 (changes, 1, *watermark_p);
    int rc;
    int64_t last = *watermark_p;
    while ((rc = sqlite3_step (changes)) == SQLITE_ROW) {
        last = sqlite3_column_int64 (changes, 0);
        if ((rc = s_change (self, changes, &gone)) != SQLITE_OK)
            break;
    }
    ss_db_finish (changes);
    if (rc == SQLITE_DONE)
        rc = s_reindex_changed (self, &gone);
    free (gone.items);
    if (rc == SQLITE_OK && last != *watermark_p) {
        sqlite3_bind_int64 (self->sql [S_SQL_WATERMARK_PUT], 1, last);
        rc = ss_db_step_done (self->sql [S_SQL_WATERMARK_PUT]);
        *watermark_p = last;
    }
    return rc;
}

//  Reads one timeline's entries after its progress (or after first - 1)
//  into the pass, at most *budget_p of them; *finished_p when none is left
static int
s_fetch (ss_indexer_t *self, s_timeline_t *timeline, int64_t *budget_p, bool *finished_p)
{
    int64_t progress;
    sqlite3_bind_int (self->sql [S_SQL_PROGRESS_GET], 1, timeline->kind);
    sqlite3_bind_int64 (self->sql [S_SQL_PROGRESS_GET], 2, timeline->key);
    int rc = s_int (self->sql [S_SQL_PROGRESS_GET], 0, &progress);
    if (rc != SQLITE_OK)
        return rc;
    int64_t after = timeline->first - 1 < progress ? timeline->first - 1 : progress;
    sqlite3_stmt *fetch = self->kind_sql [timeline->kind][S_KIND_FETCH];
    sqlite3_bind_int64 (fetch, 1, timeline->key);
    sqlite3_bind_int64 (fetch, 2, after);
    sqlite3_bind_int64 (fetch, 3, *budget_p);
    sqlite3_bind_int64 (fetch, 4, progress);
    int64_t read = 0, last = 0;
    while ((rc = sqlite3_step (fetch)) == SQLITE_ROW) {
        read++;
        last = sqlite3_column_int64 (fetch, 1);
        if (sqlite3_column_type (fetch, 2) == SQLITE_NULL)
            continue;               //  not in the index: only its seq counts
        s_entry_t entry = { sqlite3_column_int64 (fetch, 0), timeline->kind, timeline->key,
                            last, sqlite3_column_int (fetch, 3) != 0, NULL,
                            sqlite3_column_bytes (fetch, 2) };
        if (s_entries_add (&self->pass, &entry, sqlite3_column_text (fetch, 2))) {
            rc = SQLITE_NOMEM;
            break;
        }
    }
    ss_db_finish (fetch);
    if (rc != SQLITE_DONE)
        return rc;
    *budget_p -= read;
    *finished_p = *budget_p > 0;
    if (read == 0)
        return SQLITE_OK;
    timeline->first = last + 1;
    return last > progress ? s_progress (self, S_SQL_PROGRESS_PUT, timeline->kind,
                                         timeline->key, last) : SQLITE_OK;
}

//  Indexes what the pass read, in time order across its timelines
static int
s_index_pass (ss_indexer_t *self)
{
    s_entries_t *pass = &self->pass;
    if (pass->count > 1)
        qsort (pass->items, pass->count, sizeof *pass->items, s_entry_cmp);
    int rc = SQLITE_OK;
    for (size_t index = 0; index < pass->count && rc == SQLITE_OK; index++) {
        const s_entry_t *entry = &pass->items [index];
        rc = s_index_one (self, entry->kind, entry->key, entry->seq, entry->ts, entry->text,
                          entry->size, entry->known);
    }
    s_entries_clear (pass);
    return rc;
}

//  Every timeline whose last seq is past its progress, into dirty
static int
s_reconcile (ss_indexer_t *self)
{
    int rc = SQLITE_DONE;
    for (int kind = 0; kind < 2 && rc == SQLITE_DONE; kind++) {
        sqlite3_stmt *stmt = self->kind_sql [kind][S_KIND_RECONCILE];
        while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
            if (s_timelines_add (&self->dirty, kind, sqlite3_column_int64 (stmt, 0),
                                 INT64_MAX)) {
                rc = SQLITE_NOMEM;
                break;
            }
        ss_db_finish (stmt);
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

//  One pass in one transaction: the changes, then the dirty timelines
//  (those finished leave dirty). Rolled back whole on failure.
static int
s_pass (ss_indexer_t *self, bool reconcile, int64_t *watermark_p)
{
    int64_t watermark = *watermark_p;
    //  What dirty was, for a pass rolled back (s_fetch moves each first on)
    s_timelines_t before = { NULL, 0, 0 };
    int rc = s_timelines_take (&before, &self->dirty) ? SQLITE_NOMEM : SQLITE_OK;
    for (size_t index = 0; index < before.count && rc == SQLITE_OK; index++)
        if (s_timelines_add (&self->dirty, before.items [index].kind,
                             before.items [index].key, before.items [index].first))
            rc = SQLITE_NOMEM;
    if (rc == SQLITE_OK)
        rc = ss_db_step_done (self->sql [S_SQL_BEGIN]);
    if (rc == SQLITE_OK && reconcile)
        rc = s_reconcile (self);
    s_timelines_merge (&self->dirty);
    if (rc == SQLITE_OK)
        rc = s_apply_changes (self, &watermark);
    s_timelines_merge (&self->dirty);
    int64_t budget = SS_INDEXER_PASS_MAX;
    size_t kept = 0;
    for (size_t index = 0; index < self->dirty.count; index++) {
        bool finished = false;
        if (rc == SQLITE_OK && budget > 0)
            rc = s_fetch (self, &self->dirty.items [index], &budget, &finished);
        if (!finished)
            self->dirty.items [kept++] = self->dirty.items [index];
    }
    if (rc == SQLITE_OK)
        rc = s_index_pass (self);
    if (rc == SQLITE_OK)
        rc = ss_db_step_done (self->sql [S_SQL_DONE_CLEAR]);
    if (rc == SQLITE_OK)
        rc = ss_db_step_done (self->sql [S_SQL_COMMIT]);
    if (rc != SQLITE_OK) {
        s_say (self, "pass failed; again in a second", rc);
        self->last_doc = 0;
        if (!sqlite3_get_autocommit (self->db))
            ss_db_step_done (self->sql [S_SQL_ROLLBACK]);
        s_entries_clear (&self->pass);
        sqlite3_exec (self->db, "DELETE FROM temp.done", NULL, NULL, NULL);
        self->dirty.count = 0;
        s_timelines_take (&self->dirty, &before);
        free (before.items);
        return rc;
    }
    free (before.items);
    self->dirty.count = kept;
    *watermark_p = watermark;
    return SQLITE_OK;
}

//  The compaction, outside any transaction
static int
s_optimize (ss_indexer_t *self)
{
    int rc = ss_db_step_done (self->sql [S_SQL_OPTIMIZE]);
    return rc != SQLITE_OK ? rc : sqlite3_wal_checkpoint_v2 (self->db, "main",
                                                            SQLITE_CHECKPOINT_TRUNCATE,
                                                            NULL, NULL);
}


//  --------------------------------------------------------------------------
//  The thread

//  The time ms from now, for pthread_cond_timedwait
static struct timespec
s_deadline (int64_t ms)
{
    struct timespec until;
    clock_gettime (CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    return until;
}

//  Under the lock: waits for work; takes it. False when told to stop.
static bool
s_take_work (ss_indexer_t *self, uint64_t *commits_p, bool *reconcile_p, bool *compact_p)
{
    while (!self->stop && self->dirty.count == 0 && !self->reconcile && !self->compact
    &&     self->indexed == self->commits)
        pthread_cond_wait (&self->wake, &self->lock);
    //  New commits alone, that no search waits for: more may come
    struct timespec until = s_deadline (S_LINGER_MS);
    while (!self->stop && self->dirty.count == 0 && !self->reconcile && !self->compact
    &&     self->wanted <= self->indexed && self->touched.count < S_LINGER_TIMELINES)
        if (pthread_cond_timedwait (&self->wake, &self->lock, &until) == ETIMEDOUT)
            break;
    if (self->stop)
        return false;
    *commits_p = self->commits;
    *reconcile_p = self->reconcile;
    *compact_p = self->compact;
    self->reconcile = false;
    if (s_timelines_take (&self->dirty, &self->touched))
        *reconcile_p = true;        //  out of memory: read them all instead
    return true;
}

//  Under the lock: what a pass that committed tells the store. True when
//  the store is to be woken: it passed commits a search set aside waits for
static bool
s_passed (ss_indexer_t *self, uint64_t commits, int64_t watermark, bool compacted)
{
    uint64_t before = self->indexed;
    self->watermark = watermark;
    if (self->dirty.count == 0) {
        self->indexed = commits;
        if (self->rebuilding)
            snprintf (self->said, sizeof self->said, "search index %s: built: %" PRId64
                      " messages in %" PRId64 " ms", self->path, self->indexed_count,
                      pl_time_mono () - self->rebuild_started);
        self->rebuilding = false;
    }
    if (compacted) {
        self->compact = false;
        self->compacted = true;
    }
    return self->indexed > before && self->wanted > before;
}

//  Wakes the store's thread (plugin ABI 1.2: host->wake is the one host
//  function this thread may call; it never blocks): its front runs the
//  searches set aside again. An older host has none: the front's timer
//  brings them back all the same.
static void
s_wake_store (ss_indexer_t *self)
{
    if (self->host->abi_minor >= 2 && self->host->wake)
        self->host->wake (self->ctx);
}

static void *
s_run (void *arg)
{
    ss_indexer_t *self = (ss_indexer_t *) arg;
    pl_thread_name ("search-index");
    int64_t watermark = self->watermark;
    pthread_mutex_lock (&self->lock);
    uint64_t commits;
    bool reconcile, compact;
    while (s_take_work (self, &commits, &reconcile, &compact)) {
        pthread_mutex_unlock (&self->lock);
        int rc = s_pass (self, reconcile, &watermark);
        bool compacted = false;
        if (rc == SQLITE_OK && compact && self->dirty.count == 0) {
            rc = s_optimize (self);
            compacted = rc == SQLITE_OK;
            if (rc != SQLITE_OK)
                s_say (self, "compaction failed; again in a second", rc);
        }
        if (rc != SQLITE_OK) {
            struct timespec second = { 1, 0 };
            nanosleep (&second, NULL);
        }
        pthread_mutex_lock (&self->lock);
        if (rc != SQLITE_OK)
            self->reconcile = self->reconcile || reconcile;
        else
        if (s_passed (self, commits, watermark, compacted)) {
            pthread_mutex_unlock (&self->lock);
            s_wake_store (self);
            pthread_mutex_lock (&self->lock);
        }
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}


//  --------------------------------------------------------------------------
//  Opening the file

static int
s_exec (ss_indexer_t *self, const char *sql)
{
    return sqlite3_exec (self->db, sql, NULL, NULL, NULL);
}

//  Reads one integer with a one-off statement; otherwise when no row
static int
s_query (ss_indexer_t *self, const char *sql, int64_t otherwise, int64_t *value_p)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK)
        rc = s_int (stmt, otherwise, value_p);
    sqlite3_finalize (stmt);
    return rc;
}

//  A timeline of the progress p that the main file does not hold, and
//  whose going (a mark) is not waiting to be applied
#define S_UNKNOWN(N, P, K) \
    " OR EXISTS (SELECT 1 FROM search_progress AS p WHERE p.kind = " N \
    " AND NOT EXISTS (SELECT 1 FROM m." P " WHERE id = p.key)" \
    " AND NOT EXISTS (SELECT 1 FROM m.search_changes AS c WHERE c." K " = p.key" \
    " AND c.seq = 0 AND c.id > " S_WATERMARK "))"
#define S_WATERMARK "COALESCE ((SELECT value FROM search_state WHERE name = 'changes'), 0)"

//  True when the index is ahead of the main file (the main file restored
//  from a copy beside a newer index): a timeline's progress past its last
//  seq, a timeline the main file never had, or a change applied that the
//  main file never made
static bool
s_ahead (ss_indexer_t *self)
{
    int64_t ahead = 1;
    s_query (self, "SELECT EXISTS (SELECT 1 FROM search_progress AS p"
                   " JOIN m.rooms AS t ON p.kind = 0 AND t.id = p.key WHERE p.seq > " S_ROOM_LAST
                   ") OR EXISTS (SELECT 1 FROM search_progress AS p JOIN m.conversations AS t"
                   " ON p.kind = 1 AND t.id = p.key WHERE p.seq > " S_CONVERSATION_LAST ")"
                   S_UNKNOWN ("0", "rooms", "room_id")
                   S_UNKNOWN ("1", "conversations", "conversation_id")
                   " OR " S_WATERMARK " > COALESCE ((SELECT seq FROM m.sqlite_sequence"
                   " WHERE name = 'search_changes'), 0)", 1, &ahead);
    return ahead != 0;
}

//  Opens the file, of our layout (made when new), the main file attached;
//  *why_p says what is wrong with it when it is not usable
static int
s_open_file (ss_indexer_t *self, const char **why_p)
{
    *why_p = NULL;
    int64_t layout = -1;
    int rc = sqlite3_open_v2 (self->path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                              | SQLITE_OPEN_URI, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes (self->db, 1);
        sqlite3_busy_timeout (self->db, 5000);
        rc = s_query (self, "PRAGMA user_version", 0, &layout);
    }
    if (rc == SQLITE_OK && layout == 0)
        rc = s_exec (self, s_layout);
    else
    if (rc == SQLITE_OK && layout != S_LAYOUT) {
        *why_p = "not of this version's layout";
        rc = SQLITE_CORRUPT;
    }
    if (rc == SQLITE_OK) {
        int64_t ok = 0;
        sqlite3_stmt *check = NULL;
        rc = sqlite3_prepare_v2 (self->db, "PRAGMA quick_check", -1, &check, NULL);
        if (rc == SQLITE_OK && sqlite3_step (check) == SQLITE_ROW)
            ok = strcmp ((const char *) sqlite3_column_text (check, 0), "ok") == 0;
        sqlite3_finalize (check);
        if (rc == SQLITE_OK && !ok) {
            *why_p = "damaged (quick_check)";
            rc = SQLITE_CORRUPT;
        }
    }
    if (rc == SQLITE_OK && (rc = s_exec (self, "PRAGMA journal_mode = WAL")) == SQLITE_OK
    &&  (rc = s_exec (self, "PRAGMA synchronous = FULL")) == SQLITE_OK
    &&  (rc = s_exec (self, "PRAGMA secure_delete = ON")) == SQLITE_OK
    &&  (rc = s_exec (self, "PRAGMA temp_store = MEMORY")) == SQLITE_OK
    &&  (rc = ss_db_attach_read_only (self->db, self->main_path, "m")) == SQLITE_OK
    &&  s_ahead (self)) {
        *why_p = "ahead of the main file (restored from a copy?)";
        rc = SQLITE_CORRUPT;
    }
    return rc;
}

//  Removes the file and its WAL and shared memory, to build it again
static void
s_remove_file (ss_indexer_t *self)
{
    sqlite3_close (self->db);
    self->db = NULL;
    const char *suffixes [] = { "", "-wal", "-shm" };
    for (int index = 0; index < 3; index++) {
        char *path = sqlite3_mprintf ("%s%s", self->path, suffixes [index]);
        if (path && unlink (path) && errno != ENOENT)
            self->host->log (self->ctx, PARLEY_LOG_WARNING, "cannot remove %s: %s", path,
                             strerror (errno));
        sqlite3_free (path);
    }
}

static int
s_prepare (ss_indexer_t *self)
{
    int rc = s_exec (self, s_temp);
    for (int index = 0; index < S_SQL_COUNT && rc == SQLITE_OK; index++)
        rc = sqlite3_prepare_v3 (self->db, s_sql_text [index], -1, SQLITE_PREPARE_PERSISTENT,
                                 &self->sql [index], NULL);
    for (int kind = 0; kind < 2; kind++)
        for (int index = 0; index < S_KIND_COUNT && rc == SQLITE_OK; index++)
            rc = sqlite3_prepare_v3 (self->db, s_kind_text [kind][index], -1,
                                     SQLITE_PREPARE_PERSISTENT, &self->kind_sql [kind][index],
                                     NULL);
    int64_t watermark = 0;
    if (rc == SQLITE_OK)
        rc = s_int (self->sql [S_SQL_WATERMARK_GET], 0, &watermark);
    self->watermark = watermark;
    return rc;
}

//  Opens the file, or builds it again from nothing when it cannot serve
static int
s_open (ss_indexer_t *self)
{
    const char *why;
    int rc = s_open_file (self, &why);
    if (rc != SQLITE_OK) {
        self->host->log (self->ctx, PARLEY_LOG_WARNING, "search index %s: %s; it is built"
                         " again from the messages", self->path, why ? why
                         : self->db ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
        s_remove_file (self);
        rc = s_open_file (self, &why);
    }
    if (rc == SQLITE_OK)
        rc = s_prepare (self);
    if (rc != SQLITE_OK)
        self->host->log (self->ctx, PARLEY_LOG_ERROR, "cannot open the search index %s: %s",
                         self->path, self->db ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
    return rc;
}


//  --------------------------------------------------------------------------
//  The store's side

ss_indexer_t *
ss_indexer_new (const char *main_path, parley_ctx_t *ctx, const parley_host_t *host)
{
    ss_indexer_t *self = (ss_indexer_t *) calloc (1, sizeof (ss_indexer_t));
    if (!self)
        return NULL;
    self->ctx = ctx;
    self->host = host;
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->wake, NULL);
    self->main_path = strdup (main_path);
    self->path = ss_db_sibling (main_path, ".search.db");
    //  At the start every timeline is checked: a crash loses nothing. The
    //  start counts as a commit: a search waits for that check too.
    self->reconcile = self->rebuilding = true;
    self->commits = 1;
    self->rebuild_started = pl_time_mono ();
    if (!self->main_path || !self->path || s_open (self) != SQLITE_OK
    ||  pthread_create (&self->thread, NULL, s_run, self) != 0) {
        ss_indexer_destroy (&self);
        return NULL;
    }
    self->started = true;
    return self;
}

void
ss_indexer_destroy (ss_indexer_t **self_p)
{
    ss_indexer_t *self = *self_p;
    if (!self)
        return;
    if (self->started) {
        pthread_mutex_lock (&self->lock);
        self->stop = true;
        pthread_cond_signal (&self->wake);
        pthread_mutex_unlock (&self->lock);
        pthread_join (self->thread, NULL);
    }
    for (int index = 0; index < S_SQL_COUNT; index++)
        sqlite3_finalize (self->sql [index]);
    for (int kind = 0; kind < 2; kind++)
        ss_db_finalize (self->kind_sql [kind], S_KIND_COUNT);
    sqlite3_close (self->db);
    pthread_cond_destroy (&self->wake);
    pthread_mutex_destroy (&self->lock);
    free (self->pending.items);
    free (self->dirty.items);
    s_entries_clear (&self->pass);
    free (self->pass.items);
    free (self->touched.items);
    free (self->main_path);
    free (self->path);
    free (self);
    *self_p = NULL;
}

const char *
ss_indexer_path (ss_indexer_t *self)
{
    return self->path;
}

void
ss_indexer_touch (ss_indexer_t *self, ss_indexer_kind_t kind, int64_t key, uint64_t first_seq)
{
    //  A run's entries come one after another: one timeline once
    s_timeline_t *last = self->pending.count ? &self->pending.items [self->pending.count - 1]
                                             : NULL;
    if (last && last->kind == (int) kind && last->key == key) {
        if ((int64_t) first_seq < last->first)
            last->first = (int64_t) first_seq;
        return;
    }
    if (s_timelines_add (&self->pending, kind, key, (int64_t) first_seq)) {
        //  Out of memory: the thread checks every timeline instead
        pthread_mutex_lock (&self->lock);
        self->reconcile = true;
        pthread_mutex_unlock (&self->lock);
    }
}

void
ss_indexer_commit (ss_indexer_t *self)
{
    pthread_mutex_lock (&self->lock);
    self->commits++;
    if (self->touched.count + self->pending.count > S_TOUCHED_MAX) {
        self->touched.count = self->pending.count = 0;
        self->reconcile = true;
    }
    else
    if (s_timelines_take (&self->touched, &self->pending))
        self->reconcile = true;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->lock);
}

uint64_t
ss_indexer_target (ss_indexer_t *self)
{
    pthread_mutex_lock (&self->lock);
    uint64_t commits = self->commits;
    pthread_mutex_unlock (&self->lock);
    return commits;
}

bool
ss_indexer_passed (ss_indexer_t *self, uint64_t target)
{
    pthread_mutex_lock (&self->lock);
    bool passed = self->indexed >= target;
    if (!passed && target > self->wanted) {
        //  A search waits: the thread ends its lingering, and wakes the
        //  store once it passes
        self->wanted = target;
        pthread_cond_signal (&self->wake);
    }
    pthread_mutex_unlock (&self->lock);
    return passed;
}

bool
ss_indexer_rebuilding (ss_indexer_t *self)
{
    pthread_mutex_lock (&self->lock);
    bool rebuilding = self->rebuilding;
    pthread_mutex_unlock (&self->lock);
    return rebuilding;
}

void
ss_indexer_compact (ss_indexer_t *self)
{
    pthread_mutex_lock (&self->lock);
    self->compact = true;
    self->compacted = false;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->lock);
}

bool
ss_indexer_compacted (ss_indexer_t *self)
{
    pthread_mutex_lock (&self->lock);
    bool compacted = self->compacted;
    self->compacted = false;
    pthread_mutex_unlock (&self->lock);
    return compacted;
}

int64_t
ss_indexer_watermark (ss_indexer_t *self)
{
    pthread_mutex_lock (&self->lock);
    int64_t watermark = self->watermark;
    pthread_mutex_unlock (&self->lock);
    return watermark;
}

void
ss_indexer_report (ss_indexer_t *self)
{
    char said [sizeof self->said];
    pthread_mutex_lock (&self->lock);
    memcpy (said, self->said, sizeof said);
    self->said [0] = 0;
    pthread_mutex_unlock (&self->lock);
    if (said [0])
        self->host->log (self->ctx, strstr (said, "failed") ? PARLEY_LOG_WARNING
                                                            : PARLEY_LOG_INFO, "%s", said);
}
