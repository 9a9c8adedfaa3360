/*  test_timer - a host timer armed while wanted, cancelled when not */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pl_timer.h"

//  A host whose timers are counted: the last added id, how many run
static int s_next_id;
static int s_running;
static int s_cancelled;

static int
s_timer_add (parley_ctx_t *ctx, uint32_t interval_ms, void (*handler) (void *state))
{
    (void) ctx;
    assert_int_equal (interval_ms, 125);
    assert_non_null (handler);
    s_running++;
    return ++s_next_id;
}

static int
s_timer_cancel (parley_ctx_t *ctx, int timer_id)
{
    (void) ctx;
    s_cancelled = timer_id;
    s_running--;
    return 0;
}

static int
s_timer_refuse (parley_ctx_t *ctx, uint32_t interval_ms, void (*handler) (void *state))
{
    (void) ctx; (void) interval_ms; (void) handler;
    return -1;
}

static void
s_tick (void *state)
{
    (void) state;
}

static void
test_armed_once_while_wanted_and_cancelled_when_not (void **state)
{
    parley_host_t host = { .timer_add = s_timer_add, .timer_cancel = s_timer_cancel };
    s_next_id = 6;
    s_running = 0;
    int timer = 0;
    pl_timer_while (&host, NULL, &timer, false, 125, s_tick);
    assert_int_equal (timer, 0);
    assert_int_equal (s_running, 0);
    pl_timer_while (&host, NULL, &timer, true, 125, s_tick);
    assert_int_equal (timer, 7);
    //  Still wanted: the one running stays, no second one
    pl_timer_while (&host, NULL, &timer, true, 125, s_tick);
    assert_int_equal (timer, 7);
    assert_int_equal (s_running, 1);
    pl_timer_while (&host, NULL, &timer, false, 125, s_tick);
    assert_int_equal (timer, 0);
    assert_int_equal (s_cancelled, 7);
    assert_int_equal (s_running, 0);
    //  Wanted again: a new one
    pl_timer_while (&host, NULL, &timer, true, 125, s_tick);
    assert_int_equal (timer, 8);
}

static void
test_a_host_without_timers_leaves_none (void **state)
{
    parley_host_t none = { .timer_add = NULL };
    int timer = 0;
    pl_timer_while (&none, NULL, &timer, true, 125, s_tick);
    assert_int_equal (timer, 0);
    parley_host_t refusing = { .timer_add = s_timer_refuse };
    pl_timer_while (&refusing, NULL, &timer, true, 125, s_tick);
    assert_int_equal (timer, 0);
    //  Nothing to cancel: no call
    pl_timer_while (&refusing, NULL, &timer, false, 125, s_tick);
    assert_int_equal (timer, 0);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_armed_once_while_wanted_and_cancelled_when_not),
        cmocka_unit_test (test_a_host_without_timers_leaves_none),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
