/*  =========================================================================
    pl_histogram - a histogram a plugin counts into on its hot path and
    reports for /metrics (plugin ABI 1.4)
    =========================================================================
*/

#include "pl_histogram.h"

#include <stddef.h>
#include <string.h>

void
pl_histogram_init (pl_histogram_t *self, const double *bounds, uint32_t bound_count)
{
    memset (self, 0, sizeof *self);
    self->bounds = bounds;
    self->bound_count = bound_count > PARLEY_METRIC_BOUNDS_MAX ? PARLEY_METRIC_BOUNDS_MAX
                                                               : bound_count;
}

void
pl_histogram_observe (pl_histogram_t *self, double value)
{
    uint32_t index = 0;
    while (index < self->bound_count && value > self->bounds [index])
        index++;
    self->counts [index]++;
    self->sum += value;
}

uint64_t
pl_histogram_count (const pl_histogram_t *self)
{
    uint64_t count = 0;
    for (uint32_t index = 0; index <= self->bound_count; index++)
        count += self->counts [index];
    return count;
}

int
pl_histogram_report (const pl_histogram_t *self, const parley_host_t *host,
                     parley_ctx_t *ctx, const char *name, const char *help,
                     const char *const *labels)
{
    //  A host older than 1.4 has no metric, and never calls on_metrics
    if (host->abi_minor < 4
    ||  host->size < offsetof (parley_host_t, metric) + sizeof host->metric || !host->metric)
        return -1;
    parley_metric_t metric = {
        .size = sizeof (parley_metric_t),
        .type = PARLEY_METRIC_HISTOGRAM,
        .name = name,
        .help = help,
        .labels = labels,
        .bounds = self->bounds,
        .counts = self->counts,
        .bound_count = self->bound_count,
        .sum = self->sum
    };
    return host->metric (ctx, &metric);
}
