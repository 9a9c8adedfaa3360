/*  =========================================================================
    pl_lag - how long messages from one sender waited on their way here
    =========================================================================
*/

#include "pl_lag.h"

#include <assert.h>
#include <string.h>

void
pl_lag_reset (pl_lag_t *self)
{
    assert (self);
    memset (self, 0, sizeof *self);
}

int64_t
pl_lag_observe (pl_lag_t *self, uint64_t sent_at, int64_t now)
{
    assert (self);
    if (sent_at == 0 || sent_at > INT64_MAX)
        return 0;
    int64_t trip = now - (int64_t) sent_at;
    if (!self->known || trip <= self->quickest) {
        self->known = true;
        self->quickest = trip;
        self->seen = now;
        return 0;
    }
    //  The quickest trip creeps up with the time gone by, so that clocks
    //  drifting apart are followed; a stall of seconds moves it by msecs
    int64_t elapsed = now > self->seen ? now - self->seen : 0;
    int64_t allowance = elapsed * PL_LAG_DRIFT_PER_S / 1000;
    self->quickest += trip - self->quickest < allowance ? trip - self->quickest : allowance;
    self->seen = now;
    return trip - self->quickest;
}
