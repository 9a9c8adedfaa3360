/*  =========================================================================
    ss_indexer - store-sqlite's search index, written off the store's
    transactions (proto/STORE.md, "Search", schema version 15)

    The index is derived data in a file of its own beside the main one
    (parley.search.db for parley.db): the FTS5 table search (contentless,
    no positions), search_docs (its rowid, a place in time, to the
    timeline and seq, and back), search_progress (per room and
    conversation: the last seq read) and search_state (the last change
    applied). Only this class's thread writes it, through a connection of
    its own that attaches the main file read-only (WAL: it never blocks
    the store's writer, nor the writer it). SQLite has one writer per file:
    the FTS5 work no longer sits in the store's commits.

    A pass of the thread is one transaction of the index file, reading one
    snapshot of the main file: it applies the changes the main file's
    triggers queued (search_changes: an edit's or deletion's old text, a
    room gone), then reads the new entries of the timelines the store
    touched (or, at the start, of every timeline whose last seq is past
    its progress), and indexes them in time order, advancing each
    timeline's progress and the change watermark in the same transaction:
    killed at any point, it redoes the pass after the last commit. A pass
    reads at most SS_INDEXER_PASS_MAX entries; the rest is the next's.

    The store's thread tells it what it appended (ss_indexer_touch in the
    transaction, ss_indexer_commit after it). A search runs only once the
    thread has passed every commit before it (ss_indexer_target when it
    comes, ss_indexer_passed): a search sees every message acknowledged
    before it was asked. The store never waits for it: a search whose
    index is behind is set aside, and ss_indexer_passed tells the thread
    so; the thread then stops lingering, and wakes the store's thread
    (host->wake) after each pass that moves it on.

    A file that is missing, unreadable, corrupt, of another layout or
    ahead of the main file (a backup restored beside a newer index) is
    removed and built again from the timelines, on the thread.

    Ownership: ss_indexer_new returns an object the caller owns;
    ss_indexer_destroy stops and joins the thread. ctx and host are
    borrowed, used on the store's thread only but for host->wake, the one
    host function the thread calls (it keeps what it has to say for
    ss_indexer_report).
    =========================================================================
*/

#ifndef SS_INDEXER_H_INCLUDED
#define SS_INDEXER_H_INCLUDED

#include "parley_plugin.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_indexer_s ss_indexer_t;

//  The kinds of timeline
typedef enum {
    SS_INDEXER_ROOM = 0,
    SS_INDEXER_CONVERSATION = 1
} ss_indexer_kind_t;

//  Entries read by one pass at most: bounds a pass's transaction (a
//  rebuild is many passes, each committed)
#define SS_INDEXER_PASS_MAX     4096

//  Opens (or makes) the index file beside main_path, a migrated main
//  file, and starts the thread. NULL after logging why not.
ss_indexer_t *
    ss_indexer_new (const char *main_path, parley_ctx_t *ctx, const parley_host_t *host);

//  Stops the thread (after its pass) and closes the file
void
    ss_indexer_destroy (ss_indexer_t **self_p);

//  The index file's path (borrowed)
const char *
    ss_indexer_path (ss_indexer_t *self);

//  On the store's thread, inside its transaction: entries from first_seq
//  on were appended to a timeline (a room's or a conversation's id)
void
    ss_indexer_touch (ss_indexer_t *self, ss_indexer_kind_t kind, int64_t key,
                      uint64_t first_seq);

//  On the store's thread, after each transaction (committed or not): hands
//  what it touched to the thread and wakes it
void
    ss_indexer_commit (ss_indexer_t *self);

//  On the store's thread: the commits so far, the target a search that
//  comes now waits for (every commit before it)
uint64_t
    ss_indexer_target (ss_indexer_t *self);

//  On the store's thread, never waits: true when the thread has passed
//  every commit up to target (from ss_indexer_target). When not, a search
//  waits for it: the thread ends its lingering, and wakes the store's
//  thread (host->wake) after each pass that moves it on.
bool
    ss_indexer_passed (ss_indexer_t *self, uint64_t target);

//  True while the index is being built from nothing (the first start
//  after the migration, a missing or damaged file): a search then waits
//  for it at most SS_INDEXER_REBUILD_WAIT_MS
#define SS_INDEXER_REBUILD_WAIT_MS  250
bool
    ss_indexer_rebuilding (ss_indexer_t *self);

//  Asks the thread to compact the index after its next pass: FTS5
//  'optimize' (the words of edited and deleted messages leave its
//  segments), then a TRUNCATE checkpoint of its WAL
void
    ss_indexer_compact (ss_indexer_t *self);

//  True once after each compaction asked for has ended
bool
    ss_indexer_compacted (ss_indexer_t *self);

//  The last change id the index has committed (rows of search_changes up
//  to it may go)
int64_t
    ss_indexer_watermark (ss_indexer_t *self);

//  On the store's thread: logs what the thread has to say (a failure, the
//  end of a rebuild) once
void
    ss_indexer_report (ss_indexer_t *self);

#ifdef __cplusplus
}
#endif

#endif
