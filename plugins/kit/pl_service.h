/*  =========================================================================
    pl_service - a queue's measured service time, and admission by it

    A service with a queue (a room's lane, the password hashing pool)
    admits a request only when the work ahead of it fits in the time the
    request has left, and otherwise refuses it at once with retry_after_ms
    (PROTOCOL.md 1.1 "Outcomes"). Both figures come from the time one job
    takes, measured: the time spent over the jobs done, both sums decayed
    by PL_SERVICE_WEIGHT at each sample (an exponentially weighted moving
    average when each sample is one job; a sample of several jobs done
    together, a batch, weighs as many), 0 until the first.

    A value on the caller's side, with no clock and no lock of its own:
    exact to test; a caller that shares it between threads locks it.

        pl_service_t service = { 0 };
        pl_service_add (&service, finished - started);
        int64_t retry = pl_service_refuse (&service, waiting, 2, time_left);
        if (retry > 0) ... unavailable, retry_after_ms retry ...
    =========================================================================
*/

#ifndef PL_SERVICE_H_INCLUDED
#define PL_SERVICE_H_INCLUDED

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The newest sample's share of the average
#define PL_SERVICE_WEIGHT       0.125

//  The least retry_after_ms a refusal says
#define PL_SERVICE_RETRY_MIN_MS 100

typedef struct {
    double spent_ms;                //  time spent, decayed
    double jobs;                    //  jobs done in it, decayed
    uint64_t samples;               //  samples added
} pl_service_t;

//  Adds one job's time in msecs (negative counts as 0)
void
    pl_service_add (pl_service_t *self, int64_t sample_ms);

//  Adds the time of count jobs done together, msecs (a batch)
void
    pl_service_add_batch (pl_service_t *self, int64_t spent_ms, uint64_t count);

//  The time one job takes, msecs (0 until measured)
int64_t
    pl_service_ms (const pl_service_t *self);

//  How long the jobs waiting ahead (not started yet) and the one to come
//  will take with workers running in parallel (1 or more): msecs
int64_t
    pl_service_wait (const pl_service_t *self, uint64_t waiting, uint64_t workers);

//  The time to keep in hand for a job that must not start unless it can
//  finish: factor times its measured time, at least least_ms (until jobs
//  are measured, least_ms). A mean is not a bound: a job takes longer than
//  its average about half the time, so a caller that must not run out
//  keeps a multiple of it.
int64_t
    pl_service_reserve (const pl_service_t *self, uint64_t factor, int64_t least_ms);

//  Whether a job with time_left msecs (< 0: no deadline) is admitted
//  behind waiting jobs: 0 when it is (or nothing is measured yet), else
//  the retry_after_ms to refuse it with: the time until the queue has
//  drained enough for it, at least PL_SERVICE_RETRY_MIN_MS and one job
int64_t
    pl_service_refuse (const pl_service_t *self, uint64_t waiting, uint64_t workers,
                       int64_t time_left);

//  Says that a job was refused (or dropped) with waiting jobs ahead of it
//  (not started yet). With none ahead the measure alone said no: the time
//  spent decays as a sample of no time would, so one job's time falls by
//  PL_SERVICE_WEIGHT. A measure is renewed only by jobs that run, so
//  without this one left high by a stall that has ended (a store stopped
//  for seconds) would refuse every job for ever; with it, each refusal
//  brings it down until jobs are admitted and measured again. With jobs
//  ahead, the work queued said no, and they will renew the measure: it
//  stays.
void
    pl_service_refused (pl_service_t *self, uint64_t waiting);

#ifdef __cplusplus
}
#endif

#endif
