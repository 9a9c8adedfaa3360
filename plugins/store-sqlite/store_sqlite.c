/*  =========================================================================
    store-sqlite - the embedded store: proto/STORE.md on one SQLite file

    A backend of the store front (plugins/store): the front validates each
    request and queues it; at the end of the host's batch it hands the
    queue to s_run, which runs the whole of it in ONE transaction (BEGIN
    IMMEDIATE ... COMMIT), each write inside a savepoint of its own so that
    one request failing (a conflict) does not undo the others. Answers go
    out only after COMMIT returned: a request is never acknowledged before
    it is durable (group commit: one fsync for the batch).

    If COMMIT itself fails (disk full, I/O error), the transaction is rolled
    back and every request of the batch is answered unavailable.

    The file, its schema and transactions are ss_db's; what it keeps is
    served by ss_users (users, tokens), ss_rooms (rooms, members,
    invitations, timelines), ss_pm (private messages) and ss_files (files,
    their bytes in a second file attached to the same connection). The
    search index is a third file, written by ss_indexer's thread after the
    commits and attached read-only for store.search (ss_search).
    =========================================================================
*/

#include "pl_options.h"
#include "st_front.h"
#include "st_reply.h"
#include "ss_backup.h"
#include "ss_db.h"
#include "ss_files.h"
#include "ss_indexer.h"
#include "ss_pm.h"
#include "ss_rooms.h"
#include "ss_search.h"
#include "ss_users.h"
#include "pl_time.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_BUSY_TIMEOUT_DEFAULT  5000
#define S_BUSY_TIMEOUT_MAX      600000
//  The search index's compaction: at most this long after a deletion its
//  words leave the file (proto/STORE.md, "Search"); at most an hour
#define S_SEARCH_COMPACT_DEFAULT 1800
#define S_SEARCH_COMPACT_MAX    3600
//  How long a search waits aside for the indexer to pass the commits before it
//  (proto/STORE.md, "Search"); then it answers unavailable
#define S_SEARCH_WAIT_DEFAULT   2000
#define S_SEARCH_WAIT_MAX       60000

//  Per-instance state
typedef struct {
    parley_ctx_t *ctx;              //  the host's handle
    const parley_host_t *host;      //  the host's function table
    ss_db_t *db;                    //  the open database
    ss_users_t *users;              //  users and tokens
    ss_rooms_t *rooms;              //  rooms, members, timelines
    ss_pm_t *pm;                    //  private messages
    ss_indexer_t *indexer;          //  the search index's file and thread (schema 15)
    ss_search_t *search;            //  store.search
    int64_t search_wait_ms;         //  store-sqlite.search_wait_ms
    int64_t compact_ms;             //  store-sqlite.search_compact_s, in ms
    int64_t compacted_at;           //  monotonic ms of the last compaction (or the start)
    bool words_left;                //  an edit or deletion committed since then
    bool compacting;                //  the indexer was asked to compact
    int64_t changes_removed;        //  search_changes rows removed up to this id
    ss_files_t *files;              //  files (schema version 13)
    ss_backup_t *backup;            //  parleyctl backup: a copy made on its own thread
    bool group_commit;              //  one transaction per batch (else per request)
    uint64_t batches;               //  transactions committed, for the log
    uint64_t requests;              //  requests run, for the log
    st_stats_t *stats;              //  the front's figures, lent; NULL before
} s_store_t;


//  --------------------------------------------------------------------------
//  The backend's table

static void
s_close (void **state_p)
{
    s_store_t *self = (s_store_t *) *state_p;
    if (!self)
        return;
    if (self->db)
        self->host->log (self->ctx, PARLEY_LOG_INFO,
                         "closing %s after %" PRIu64 " requests in %" PRIu64 " transactions",
                         ss_db_path (self->db), self->requests, self->batches);
    ss_backup_destroy (&self->backup);      //  waits for a copy still running
    ss_search_destroy (&self->search);
    ss_files_destroy (&self->files);
    ss_pm_destroy (&self->pm);
    ss_rooms_destroy (&self->rooms);
    ss_indexer_destroy (&self->indexer);    //  stops its thread
    ss_users_destroy (&self->users);
    ss_db_destroy (&self->db);
    free (self);
    *state_p = NULL;
}

//  The index file, read-only on the store's connection as 'idx': the
//  store's BEGIN IMMEDIATE takes no lock on it (only a read), so that the
//  indexer's thread writes it while the store writes the main file
static int
s_attach_index (s_store_t *self)
{
    int rc = ss_db_attach_read_only (ss_db_handle (self->db), ss_indexer_path (self->indexer),
                                     "idx");
    if (rc != SQLITE_OK)
        self->host->log (self->ctx, PARLEY_LOG_ERROR, "cannot attach the search index %s: %s",
                         ss_indexer_path (self->indexer),
                         sqlite3_errmsg (ss_db_handle (self->db)));
    return rc == SQLITE_OK ? 0 : -1;
}

static int
s_open (parley_ctx_t *ctx, const parley_host_t *host, void **state_p)
{
    s_store_t *self = (s_store_t *) calloc (1, sizeof (s_store_t));
    if (!self) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        return -1;
    }
    self->ctx = ctx;
    self->host = host;
    pl_options_t options = pl_options (host, ctx, "store-sqlite");
    const char *path = pl_options_str (&options, "path", "parley.db");
    self->group_commit = pl_options_bool (&options, "group_commit", true);
    int busy_timeout = (int) pl_options_uint (&options, "busy_timeout_ms",
                                              S_BUSY_TIMEOUT_DEFAULT, 0, S_BUSY_TIMEOUT_MAX);
    self->compact_ms = 1000 * (int64_t) pl_options_uint (&options, "search_compact_s",
                                                         S_SEARCH_COMPACT_DEFAULT, 1,
                                                         S_SEARCH_COMPACT_MAX);
    self->search_wait_ms = (int64_t) pl_options_uint (&options, "search_wait_ms",
                                                      S_SEARCH_WAIT_DEFAULT, 0,
                                                      S_SEARCH_WAIT_MAX);
    self->compacted_at = pl_time_mono ();
    if (pl_options_refused (&options)
    ||  !(self->db = ss_db_new (path, busy_timeout, ctx, host))
    ||  !(self->indexer = ss_indexer_new (ss_db_path (self->db), ctx, host))
    ||  s_attach_index (self)
    ||  !(self->users = ss_users_new (self->db))
    ||  !(self->rooms = ss_rooms_new (self->db, self->users, self->indexer))
    ||  !(self->pm = ss_pm_new (self->db, self->users, self->indexer))
    ||  !(self->search = ss_search_new (self->db, self->users, self->rooms, self->pm))
    ||  !(self->files = ss_files_new (self->db, self->users))
    ||  !(self->backup = ss_backup_new (ctx, host))) {
        void *state = self;
        s_close (&state);
        return -1;
    }
    host->log (ctx, PARLEY_LOG_INFO, "serving %s (schema version %d, WAL, synchronous=FULL, %s)",
               ss_db_path (self->db), SS_DB_SCHEMA_VERSION,
               self->group_commit ? "group commit" : "one transaction per request");
    *state_p = self;
    return 0;
}

//  Runs one request inside the open transaction: the SQLite result that
//  ended it, SQLITE_OK for an ok or a request error set on the request
static int
s_run_one (s_store_t *self, st_request_t *request)
{
    if (request->type == ST_INFO) {
        st_reply_info (request, "sqlite", SS_DB_SCHEMA_VERSION);
        return SQLITE_OK;
    }
    if (ss_users_serves (request->type))
        return ss_users_run (self->users, request);
    if (ss_rooms_serves (request->type))
        return ss_rooms_run (self->rooms, request);
    if (request->type == ST_SEARCH)
        return ss_search_run (self->search, request);
    if (ss_files_serves (request->type))
        return ss_files_run (self->files, request);
    return ss_pm_run (self->pm, request);
}

//  Runs one live request in its savepoint (a write) and undoes what it
//  wrote when it failed. Returns SQLITE_OK, or a fatal code that fails the
//  batch; *where_p then says what failed.
static int
s_run_saved (s_store_t *self, st_request_t *request, const char **where_p)
{
    bool writes = st_type_writes (request->type);
    int rc;
    if (writes && (rc = ss_db_step (self->db, SS_DB_SAVEPOINT)) != SQLITE_OK) {
        *where_p = "SAVEPOINT";
        return rc;
    }
    rc = s_run_one (self, request);
    self->requests++;
    if (rc != SQLITE_OK && ss_db_is_fatal (rc)) {
        *where_p = st_type_name (request->type);
        return rc;
    }
    if (rc != SQLITE_OK) {
        //  The request's own failure, not the batch's: it alone answers internal
        st_request_fail (request, "internal", "The store failed: %s.", sqlite3_errstr (rc));
        self->host->log (self->ctx, PARLEY_LOG_ERROR, "%s on %s: %s (%d)",
                         st_type_name (request->type), ss_db_path (self->db),
                         sqlite3_errmsg (ss_db_handle (self->db)), rc);
    }
    if (!writes)
        return SQLITE_OK;
    //  A request that failed leaves nothing behind
    if (!st_request_live (request))
        ss_db_step (self->db, SS_DB_ROLLBACK_TO);
    *where_p = "RELEASE";
    return ss_db_step (self->db, SS_DB_RELEASE);
}

//  The batch could not commit: nothing of it stays, and every request that
//  ran answers unavailable (one refused at validation keeps its answer, a
//  search set aside did not run and keeps waiting)
static void
s_fail_batch (s_store_t *self, st_request_t **requests, size_t count, int fatal,
              const char *where)
{
    self->host->log (self->ctx, PARLEY_LOG_ERROR,
                     "%s failed on %s: %s; %zu requests answered unavailable, none applied",
                     where, ss_db_path (self->db), sqlite3_errstr (fatal), count);
    if (ss_db_in_transaction (self->db))
        ss_db_step (self->db, SS_DB_ROLLBACK);
    for (size_t index = 0; index < count; index++) {
        const char *code = st_request_code (requests [index]);
        if ((code && strcmp (code, "bad_request") == 0) || st_request_is_aside (requests [index]))
            continue;
        st_request_fail (requests [index], "unavailable", "The store could not commit: %s.",
                         sqlite3_errstr (fatal));
    }
}

//  The requests a transaction will run: the live ones, before it runs
static size_t
s_count_live (st_request_t **requests, size_t count)
{
    size_t live = 0;
    for (size_t index = 0; index < count; index++)
        live += st_request_live (requests [index]);
    return live;
}

//  How long a search may wait for the indexer: store-sqlite.search_wait_ms,
//  SS_INDEXER_REBUILD_WAIT_MS at most while the index is built from nothing
static int64_t
s_search_wait_ms (s_store_t *self)
{
    if (self->search_wait_ms > SS_INDEXER_REBUILD_WAIT_MS
    &&  ss_indexer_rebuilding (self->indexer))
        return SS_INDEXER_REBUILD_WAIT_MS;
    return self->search_wait_ms;
}

//  Read your writes (proto/STORE.md, "Search"): a search runs in a
//  transaction that begins after the indexer passed every commit before
//  the search came (its read of the index file starts at BEGIN). One
//  whose index is behind is set aside, marked with that commit, and the
//  rest of the batch runs without it: a write never waits for a search.
//  The front runs it again later (on the indexer's wake, the next batch,
//  its timer); past its wait it answers unavailable.
static void
s_set_aside_searches (s_store_t *self, st_request_t **requests, size_t count)
{
    int64_t now = 0;
    for (size_t index = 0; index < count; index++) {
        st_request_t *request = requests [index];
        if (!st_request_live (request) || request->type != ST_SEARCH)
            continue;
        int64_t since = st_request_aside_since (request);
        uint64_t target = since ? st_request_aside_mark (request)
                                : ss_indexer_target (self->indexer);
        if (ss_indexer_passed (self->indexer, target))
            continue;
        now = now ? now : pl_time_mono ();
        if ((since ? now - since : 0) >= s_search_wait_ms (self))
            st_request_fail (request, "unavailable", "The search index is behind the"
                             " messages (being built); try again.");
        else
            st_request_set_aside (request, target);
    }
}

//  Runs requests [0 .. count) in one transaction
static void
s_run_transaction (s_store_t *self, st_request_t **requests, size_t count)
{
    const char *where = "BEGIN";
    s_set_aside_searches (self, requests, count);
    size_t live = s_count_live (requests, count);
    //  Nothing to run (searches set aside, requests refused): no transaction,
    //  and no commit for the indexer to pass
    if (live == 0)
        return;
    int64_t started = st_stats_now ();
    int fatal = ss_db_step (self->db, SS_DB_BEGIN);
    for (size_t index = 0; index < count && fatal == SQLITE_OK; index++)
        if (st_request_live (requests [index]))
            fatal = s_run_saved (self, requests [index], &where);
    if (fatal == SQLITE_OK) {
        where = "COMMIT";
        fatal = ss_db_step (self->db, SS_DB_COMMIT);
    }
    //  What the transaction appended goes to the indexer (a batch that
    //  failed costs it a look at timelines with nothing new)
    ss_indexer_commit (self->indexer);
    if (fatal != SQLITE_OK)
        s_fail_batch (self, requests, count, fatal, where);
    else {
        self->batches++;
        for (size_t index = 0; index < count && !self->words_left; index++)
            self->words_left = !st_request_code (requests [index])
                            && ss_search_leaves_words (requests [index]);
        if (self->stats)
            st_stats_commit (self->stats, ST_COMMIT_TRANSACTION, started, live);
    }
}

static void
s_run (void *state, st_request_t **requests, size_t count)
{
    s_store_t *self = (s_store_t *) state;
    if (self->group_commit)
        s_run_transaction (self, requests, count);
    else
        for (size_t index = 0; index < count; index++)
            s_run_transaction (self, requests + index, 1);
}

//  parleyctl backup: a copy of the file with SQLite's online backup API,
//  on the backup's thread (ss_backup)
static const char *
s_backup (void *state, const char *path, char *message, size_t size)
{
    s_store_t *self = (s_store_t *) state;
    return ss_backup_start (self->backup, ss_db_path (self->db), path, message, size);
}

static void
s_backup_status (void *state, msgpack_packer *packer)
{
    ss_backup_status (((s_store_t *) state)->backup, packer);
}

static void
s_stats (void *state, st_stats_t *stats)
{
    s_store_t *self = (s_store_t *) state;
    st_stats_init (stats, "sqlite", 1u << ST_COMMIT_TRANSACTION);
    self->stats = stats;
}

//  The changes the indexer has applied leave the main file (secure_delete:
//  their texts with them), outside any transaction
static void
s_remove_changes (s_store_t *self)
{
    int64_t watermark = ss_indexer_watermark (self->indexer);
    if (watermark <= self->changes_removed)
        return;
    char sql [96];
    snprintf (sql, sizeof sql, "DELETE FROM search_changes WHERE id <= %" PRId64, watermark);
    int rc = sqlite3_exec (ss_db_handle (self->db), sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        self->changes_removed = watermark;
}

//  The search index's compaction, when an edit or a deletion left words in
//  it and its time has come (proto/STORE.md, "Search"): the indexer's
//  thread compacts the index file; when it has, the changes it applied
//  leave the main file and the main file's WAL is checkpointed (between
//  batches, outside any transaction)
static void
s_tick (void *state)
{
    s_store_t *self = (s_store_t *) state;
    int64_t now = pl_time_mono ();
    ss_indexer_report (self->indexer);
    s_remove_changes (self);
    if (self->compacting && ss_indexer_compacted (self->indexer)) {
        s_remove_changes (self);
        int rc = sqlite3_wal_checkpoint_v2 (ss_db_handle (self->db), "main",
                                            SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        self->compacting = false;
        if (rc != SQLITE_OK) {
            //  Tried again in a minute (a backup reading the file holds the
            //  checkpoint back)
            self->host->log (self->ctx, PARLEY_LOG_WARNING, "search compaction of %s: %s;"
                             " again in a minute", ss_db_path (self->db), sqlite3_errstr (rc));
            self->words_left = true;
            self->compacted_at = now - self->compact_ms + 60000;
            return;
        }
        self->host->log (self->ctx, PARLEY_LOG_DEBUG, "search index of %s compacted",
                         ss_db_path (self->db));
    }
    if (!self->words_left || self->compacting || now - self->compacted_at < self->compact_ms)
        return;
    ss_indexer_compact (self->indexer);
    self->compacting = true;
    self->words_left = false;
    self->compacted_at = now;
}

static const st_backend_t s_backend = {
    .name = "store-sqlite",
    .version = "1.0.0",
    .description = "the embedded store: proto/STORE.md on one SQLite file, WAL, group commit",
    .open = s_open,
    .close = s_close,
    .run = s_run,
    .backup = s_backup,
    .backup_status = s_backup_status,
    .stats = s_stats,
    .tick = s_tick
};

ST_FRONT_DEFINE (s_backend)
