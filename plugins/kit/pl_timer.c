/*  =========================================================================
    pl_timer - a host timer that runs only while there is work for it (see
    pl_timer.h)
    =========================================================================
*/

#include "pl_timer.h"

void
pl_timer_while (const parley_host_t *host, parley_ctx_t *ctx, int *timer_p, bool wanted,
                uint32_t interval_ms, void (*handler) (void *state))
{
    if (wanted && !*timer_p && host->timer_add) {
        int timer = host->timer_add (ctx, interval_ms, handler);
        *timer_p = timer > 0? timer: 0;
    }
    else
    if (!wanted && *timer_p) {
        if (host->timer_cancel)
            host->timer_cancel (ctx, *timer_p);
        *timer_p = 0;
    }
}
