/*  =========================================================================
    ss_db - store-sqlite's database file: opening it, its schema and
    migrations, transactions, and the helpers every statement uses

    Opens the file in WAL mode with synchronous=FULL (an ok answer is a
    committed, fsync'ed write: proto/STORE.md, Durability), migrates it to
    SS_DB_SCHEMA_VERSION (then runs again any of migrations 13 to 15 that
    an earlier build recorded without running: ss_db.c, s_repair), and
    refuses, with a log line that names the file, anything it could not
    serve: a folder it cannot write, a read-only or corrupt file, a file
    that is not a database, a newer schema.

    Ownership: ss_db_new returns a database the caller owns, closed by
    ss_db_destroy. Statements made by ss_db_prepare are the caller's, to be
    finalized by ss_db_finalize before the database is destroyed. The host
    and ctx are borrowed for the database's lifetime (for its log lines).
    =========================================================================
*/

#ifndef SS_DB_H_INCLUDED
#define SS_DB_H_INCLUDED

#include "parley_plugin.h"
#include "st_reply.h"
#include "st_request.h"

#include <msgpack.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The newest schema this code knows (proto/STORE.md, Options of store-sqlite)
#define SS_DB_SCHEMA_VERSION    15

typedef struct ss_db_s ss_db_t;

//  Opens path, waiting busy_timeout_ms for another process's lock, and
//  migrates it. Returns NULL after logging why not.
ss_db_t *
    ss_db_new (const char *path, int busy_timeout_ms, parley_ctx_t *ctx,
               const parley_host_t *host);

void
    ss_db_destroy (ss_db_t **self_p);

//  The text of the migration that takes a file from version - 1 to
//  version (borrowed, static), or NULL outside 1 to SS_DB_SCHEMA_VERSION.
//  For tests and tools that build a file of an older version; the store
//  runs them itself.
const char *
    ss_db_migration_sql (int version);

//  The open connection and the file's path (borrowed)
sqlite3 *
    ss_db_handle (ss_db_t *self);
const char *
    ss_db_path (ss_db_t *self);

//  A file beside path: path with suffix for its ".db" (or after it), as
//  ".files.db" (the files' bytes) and ".search.db" (the search index), so
//  that two databases in one folder never share one. Freed by the caller;
//  NULL when out of memory.
char *
    ss_db_sibling (const char *path, const char *suffix);

//  Attaches the file at path to db as schema, read-only (a URI with
//  mode=ro). Returns SQLITE_OK or the failure's code.
int
    ss_db_attach_read_only (sqlite3 *db, const char *path, const char *schema);

//  Prepares count statements from texts into stmts (persistent). Returns
//  0, or -1 after logging which one failed.
int
    ss_db_prepare (ss_db_t *self, const char *const *texts, int count, sqlite3_stmt **stmts);

//  Finalizes count statements made by ss_db_prepare
void
    ss_db_finalize (sqlite3_stmt **stmts, int count);

//  The batch's transaction: BEGIN IMMEDIATE, COMMIT, ROLLBACK, and a
//  savepoint per write (SAVEPOINT, RELEASE, ROLLBACK TO). Each returns
//  SQLITE_OK or the failure's code.
typedef enum {
    SS_DB_BEGIN,
    SS_DB_COMMIT,
    SS_DB_ROLLBACK,
    SS_DB_SAVEPOINT,
    SS_DB_RELEASE,
    SS_DB_ROLLBACK_TO,
    SS_DB_STEP_COUNT
} ss_db_step_t;

int
    ss_db_step (ss_db_t *self, ss_db_step_t step);

//  True while a transaction is open
bool
    ss_db_in_transaction (ss_db_t *self);

//  SQLite results that mean the database cannot take writes now: the whole
//  batch answers unavailable
bool
    ss_db_is_fatal (int rc);

//  Steps a statement that returns no rows and resets it: SQLITE_OK, or
//  the failure's code
int
    ss_db_step_done (sqlite3_stmt *stmt);

//  Resets a statement and clears its bindings
void
    ss_db_finish (sqlite3_stmt *stmt);

//  Binds a request's text as it is, or a name's lower-cased key (both
//  borrowed: valid until the statement is finished)
void
    ss_db_bind_text (sqlite3_stmt *stmt, int param, st_text_t text);
void
    ss_db_bind_key (sqlite3_stmt *stmt, int param, const st_name_t *name);

//  A text column as a borrowed st_text_t (valid until the next step)
st_text_t
    ss_db_column_text (sqlite3_stmt *stmt, int column);

//  Runs a statement that yields one integer, already bound: sets *value_p
//  (0 without a row). Returns SQLITE_OK or the failure's code.
int
    ss_db_count (sqlite3_stmt *stmt, int64_t *value_p);

//  Binds the look-up of element index of an append's run into stmt (its
//  timeline, its sender, its nonce). Returns false when the element has no
//  nonce (nothing bound).
typedef bool (ss_db_nonce_bind_fn) (void *arg, uint32_t index, sqlite3_stmt *stmt);

//  Runs a bound nonce look-up (a row: seq, ts): *found_p, and the stored
//  seq and ts into duplicate. Returns SQLITE_OK or the error.
int
    ss_db_nonce_find (sqlite3_stmt *stmt, bool *found_p, st_duplicate_t *duplicate);

//  Looks up the nonces of the count elements of an append's run (bind):
//  the stored ones into duplicates (ST_RUN_MAX of room), *repeated_p of
//  them. Returns SQLITE_OK or the error.
int
    ss_db_nonce_repeats (sqlite3_stmt *stmt, uint32_t count, ss_db_nonce_bind_fn *bind,
                         void *arg, st_duplicate_t *duplicates, uint32_t *repeated_p);

//  An append's insert failed on its timeline's nonce index (the run is
//  inserted first, so that a run with no repeat, the common case, pays no
//  look-up): undoes what the request wrote (back to its savepoint), then
//  names the repeats as ss_db_nonce_repeats does; the caller answers them
//  (with the run's refusals, schema version 9). With none found (a nonce
//  twice in the run itself) the request fails with conflict, message
//  saying where. Returns SQLITE_OK or the error.
int
    ss_db_nonce_undo (ss_db_t *self, sqlite3_stmt *stmt, st_request_t *request,
                      uint32_t count, ss_db_nonce_bind_fn *bind, void *arg,
                      const char *where, st_duplicate_t *duplicates, uint32_t *repeated_p);

#ifdef __cplusplus
}
#endif

#endif
