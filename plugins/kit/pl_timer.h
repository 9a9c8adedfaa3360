/*  =========================================================================
    pl_timer - a host timer that runs only while there is work for it (part
    of the plugin kit)

    A plugin that keeps work for later (requests set aside, events held
    back) needs a timer while it has some, and none while it has none, so
    that an idle plugin is never woken. After each change of that work the
    caller says whether it still wants the timer; this arms it or cancels
    it. The caller owns the timer's id (an int in its state, 0 for none).

        pl_timer_while (host, ctx, &self->timer, self->held > 0, 50, s_tick);
    =========================================================================
*/

#ifndef PL_TIMER_H_INCLUDED
#define PL_TIMER_H_INCLUDED

#include "parley_plugin.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Arms a timer of interval_ms that calls handler (host->timer_add) when
//  wanted and *timer_p is 0; cancels *timer_p when not wanted. *timer_p is
//  the running timer's id, 0 for none (also when the host has no timers or
//  could not add one).
void
    pl_timer_while (const parley_host_t *host, parley_ctx_t *ctx, int *timer_p, bool wanted,
                    uint32_t interval_ms, void (*handler) (void *state));

#ifdef __cplusplus
}
#endif

#endif
