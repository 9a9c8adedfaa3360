/*  =========================================================================
    st_stats - a store's figures for /metrics: how long its commits take and
    how many entries each carries
    =========================================================================
*/

#include "st_stats.h"

#include <time.h>

//  Seconds: from a fast SSD's fsync to a stalled replica set's
static const double s_seconds [] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5
};
//  Entries: powers of two up to a whole batch (ST_BATCH_MAX, 1024)
static const double s_sizes [] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024 };

static const char *s_operations [ST_COMMITS] = { "transaction", "msg.append", "pm.append" };

void
st_stats_init (st_stats_t *self, const char *store, uint32_t uses)
{
    self->store = store;
    self->uses = uses;
    for (int index = 0; index < ST_COMMITS; index++) {
        pl_histogram_init (&self->seconds [index], s_seconds,
                           sizeof s_seconds / sizeof s_seconds [0]);
        pl_histogram_init (&self->sizes [index], s_sizes, sizeof s_sizes / sizeof s_sizes [0]);
    }
}

int64_t
st_stats_now (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000000000 + now.tv_nsec;
}

void
st_stats_commit (st_stats_t *self, st_commit_t operation, int64_t started, size_t entries)
{
    pl_histogram_observe (&self->seconds [operation], (st_stats_now () - started) / 1e9);
    pl_histogram_observe (&self->sizes [operation], (double) entries);
}

void
st_stats_report (const st_stats_t *self, const parley_host_t *host, parley_ctx_t *ctx)
{
    for (int index = 0; index < ST_COMMITS; index++) {
        //  An operation this store never commits has no series at all
        if (!(self->uses & (1u << index)) && !pl_histogram_count (&self->seconds [index]))
            continue;
        const char *labels [] = { "store", self->store, "operation", s_operations [index], NULL };
        pl_histogram_report (&self->seconds [index], host, ctx, "parley_store_commit_seconds",
                             "Time from a store's transaction or bulk write starting until "
                             "the database acknowledged it durable.", labels);
        pl_histogram_report (&self->sizes [index], host, ctx, "parley_store_batch_size",
                             "Entries (requests of a transaction, messages of an append) "
                             "one store commit carried.", labels);
    }
}
