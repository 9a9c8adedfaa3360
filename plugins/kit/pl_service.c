/*  =========================================================================
    pl_service - a queue's measured service time, and admission by it
    =========================================================================
*/

#include "pl_service.h"

#include <assert.h>
#include <math.h>

void
pl_service_add (pl_service_t *self, int64_t sample_ms)
{
    pl_service_add_batch (self, sample_ms, 1);
}

void
pl_service_add_batch (pl_service_t *self, int64_t spent_ms, uint64_t count)
{
    assert (self);
    if (count == 0)
        return;
    self->spent_ms = self->spent_ms * (1 - PL_SERVICE_WEIGHT) + (spent_ms > 0 ? spent_ms : 0);
    self->jobs = self->jobs * (1 - PL_SERVICE_WEIGHT) + (double) count;
    self->samples++;
}

//  One job's time, msecs
static double
s_average (const pl_service_t *self)
{
    return self->jobs > 0 ? self->spent_ms / self->jobs : 0;
}

int64_t
pl_service_ms (const pl_service_t *self)
{
    assert (self);
    return (int64_t) ceil (s_average (self));
}

int64_t
pl_service_reserve (const pl_service_t *self, uint64_t factor, int64_t least_ms)
{
    assert (self);
    int64_t reserve = (int64_t) ceil (s_average (self) * (double) factor);
    return reserve > least_ms ? reserve : least_ms;
}

int64_t
pl_service_wait (const pl_service_t *self, uint64_t waiting, uint64_t workers)
{
    assert (self);
    if (workers < 1)
        workers = 1;
    //  The jobs ahead go workers at a time; ours starts when a worker is free
    return (int64_t) ceil (s_average (self) * (double) (waiting / workers + 1));
}

int64_t
pl_service_refuse (const pl_service_t *self, uint64_t waiting, uint64_t workers,
                   int64_t time_left)
{
    assert (self);
    int64_t wait = pl_service_wait (self, waiting, workers);
    if (time_left < 0 || wait <= time_left)
        return 0;
    int64_t retry = wait - time_left;
    int64_t one = pl_service_ms (self);
    if (retry < one)
        retry = one;
    return retry < PL_SERVICE_RETRY_MIN_MS ? PL_SERVICE_RETRY_MIN_MS : retry;
}

void
pl_service_refused (pl_service_t *self, uint64_t waiting)
{
    assert (self);
    if (waiting == 0)
        self->spent_ms *= 1 - PL_SERVICE_WEIGHT;
}
