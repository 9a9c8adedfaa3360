/*  =========================================================================
    pl_bucket - a token bucket: how many requests a user may make now, and
    how long to wait for the next one

    A value on the caller's side (a plugin keeps one per user in its own
    table): no allocation, no clock of its own, so that it is exact to test.
    rate is tokens a second, burst the most a bucket holds. The wait it
    answers is what `retry_after_ms` tells the client (PROTOCOL.md 1.1).
    =========================================================================
*/

#ifndef PL_BUCKET_H_INCLUDED
#define PL_BUCKET_H_INCLUDED

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    double tokens;                  //  requests that may be made now
    int64_t refilled;               //  monotonic ms of the last refill
} pl_bucket_t;

//  A full bucket at now_ms
pl_bucket_t
pl_bucket_full (double burst, int64_t now_ms);

//  Refills for the time since the last call, then takes one token. Returns
//  0 when taken, or the whole milliseconds (at least 1) until a token will
//  be there, nothing taken. A rate of 0 or less never limits.
int64_t
pl_bucket_take (pl_bucket_t *self, double rate, double burst, int64_t now_ms);

#ifdef __cplusplus
}
#endif

#endif
