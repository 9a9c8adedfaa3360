/*  =========================================================================
    st_stats - a store's figures for /metrics: how long its commits take and
    how many entries each carries

    Two histogram families, per operation, reported from the front's
    on_metrics (plugin ABI 1.4):
    - parley_store_commit_seconds{store, operation}: each transaction's or
      bulk write's commit latency, from its start until the database
      acknowledged it durable;
    - parley_store_batch_size{store, operation}: the entries it carried.
    The front owns one and lends it to its backend (st_backend_t.stats);
    the backend calls st_stats_commit at each commit point, on the
    instance's thread: two histogram observations, a few adds.

        int64_t started = st_stats_now ();
        ... BEGIN ... COMMIT ...
        st_stats_commit (stats, ST_COMMIT_TRANSACTION, started, count);
    =========================================================================
*/

#ifndef ST_STATS_H_INCLUDED
#define ST_STATS_H_INCLUDED

#include "parley_plugin.h"
#include "pl_histogram.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  What was committed: the operation label's fixed values
typedef enum {
    ST_COMMIT_TRANSACTION = 0,      //  "transaction": a batch's transaction (SQLite)
    ST_COMMIT_MSG_APPEND,           //  "msg.append": a run of room entries (MongoDB)
    ST_COMMIT_PM_APPEND,            //  "pm.append": a run of private messages (MongoDB)
    ST_COMMITS
} st_commit_t;

typedef struct {
    const char *store;              //  the store label: "sqlite", "mongo"; static
    uint32_t uses;                  //  bit per st_commit_t the backend commits
    pl_histogram_t seconds [ST_COMMITS];
    pl_histogram_t sizes [ST_COMMITS];
} st_stats_t;

//  Empty figures for store, which commits the operations whose bits
//  (1u << ST_COMMIT_*) are in uses: those are reported from the start
void
    st_stats_init (st_stats_t *self, const char *store, uint32_t uses);

//  A monotonic clock in nanoseconds, for st_stats_commit's started
int64_t
    st_stats_now (void);

//  One commit of operation, started at started (st_stats_now), that
//  carried entries entries, acknowledged now
void
    st_stats_commit (st_stats_t *self, st_commit_t operation, int64_t started,
                     size_t entries);

//  Reports both families with host->metric; from on_metrics only
void
    st_stats_report (const st_stats_t *self, const parley_host_t *host, parley_ctx_t *ctx);

#ifdef __cplusplus
}
#endif

#endif
