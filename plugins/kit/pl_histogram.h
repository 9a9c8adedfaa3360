/*  =========================================================================
    pl_histogram - a histogram a plugin counts into on its hot path and
    reports for /metrics (plugin ABI 1.4)

    A value on the plugin's side, like pl_bucket: no allocation, no lock (a
    plugin instance's callbacks run on one thread, on_metrics too), no
    message per observation. An observation is a walk over the bounds and
    two adds; the host reads the counts only when it gathers the plugin's
    figures (on_metrics), which is when /metrics is read.

        static const double s_bounds [] = { 0.001, 0.01, 0.1, 1 };
        pl_histogram_t latency;
        pl_histogram_init (&latency, s_bounds, 4);
        pl_histogram_observe (&latency, 0.004);
        ...in on_metrics:
        const char *labels [] = { "store", "sqlite", NULL };
        pl_histogram_report (&latency, host, ctx, "parley_store_commit_seconds",
                             "Commit latency.", labels);

    Ownership: bounds are the caller's (static storage), borrowed for the
    histogram's life; they are ascending and finite.
    =========================================================================
*/

#ifndef PL_HISTOGRAM_H_INCLUDED
#define PL_HISTOGRAM_H_INCLUDED

#include "parley_plugin.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const double *bounds;           //  upper bounds, ascending; borrowed
    uint32_t bound_count;           //  at most PARLEY_METRIC_BOUNDS_MAX
    uint64_t counts [PARLEY_METRIC_BOUNDS_MAX + 1];     //  per bucket, not cumulative;
                                    //  the last past the last bound
    double sum;                     //  of every observation
} pl_histogram_t;

//  An empty histogram over these bounds (at most PARLEY_METRIC_BOUNDS_MAX
//  are used)
void
    pl_histogram_init (pl_histogram_t *self, const double *bounds, uint32_t bound_count);

//  Counts one observation: into the first bucket whose bound is >= value
void
    pl_histogram_observe (pl_histogram_t *self, double value);

//  Observations so far
uint64_t
    pl_histogram_count (const pl_histogram_t *self);

//  Reports the histogram with host->metric as name with labels ("name",
//  "value", ..., NULL; or NULL). Only from on_metrics. Returns 0, or -1
//  when the host refused it or is older than ABI 1.4 (no metric).
int
    pl_histogram_report (const pl_histogram_t *self, const parley_host_t *host,
                         parley_ctx_t *ctx, const char *name, const char *help,
                         const char *const *labels);

#ifdef __cplusplus
}
#endif

#endif
