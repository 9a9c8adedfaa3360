/*  =========================================================================
    pl_bucket - a token bucket: how many requests a user may make now, and
    how long to wait for the next one
    =========================================================================
*/

#include "pl_bucket.h"

#include <math.h>

pl_bucket_t
pl_bucket_full (double burst, int64_t now_ms)
{
    pl_bucket_t bucket = { .tokens = burst, .refilled = now_ms };
    return bucket;
}

int64_t
pl_bucket_take (pl_bucket_t *self, double rate, double burst, int64_t now_ms)
{
    if (rate <= 0)
        return 0;
    if (now_ms > self->refilled) {
        self->tokens += (double) (now_ms - self->refilled) * rate / 1000.0;
        if (self->tokens > burst)
            self->tokens = burst;
        self->refilled = now_ms;
    }
    if (self->tokens >= 1.0) {
        self->tokens -= 1.0;
        return 0;
    }
    int64_t wait = (int64_t) ceil ((1.0 - self->tokens) * 1000.0 / rate);
    return wait < 1? 1: wait;
}
