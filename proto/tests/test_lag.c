/*  =========================================================================
    test_lag - how long messages waited on the way, from the sender's stamps
    =========================================================================
*/

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pl_lag.h"

static void
test_the_first_message_and_quicker_ones_did_not_wait (void **state)
{
    (void) state;
    pl_lag_t lag;
    pl_lag_reset (&lag);
    //  Two clocks 1,000,000 ms apart: only differences count
    assert_int_equal (pl_lag_observe (&lag, 5000, 1005003), 0);
    assert_int_equal (pl_lag_observe (&lag, 5010, 1005011), 0);      //  quicker: 1 ms trip
    assert_int_equal (pl_lag_observe (&lag, 5020, 1005024), 3);      //  3 ms slower than that
}

static void
test_a_stall_shows_as_what_it_cost (void **state)
{
    (void) state;
    pl_lag_t lag;
    pl_lag_reset (&lag);
    assert_int_equal (pl_lag_observe (&lag, 100, 200), 0);
    //  Sent 100 ms later, read 6 s later: it waited almost 5.9 s; the
    //  quickest trip may creep by 1 ms a second only
    int64_t waited = pl_lag_observe (&lag, 200, 6200);
    assert_true (waited >= 5900 - 6 && waited <= 5900);
    //  What was sent after the stall is read at once again
    assert_int_equal (pl_lag_observe (&lag, 6150, 6250), 0);
}

static void
test_drift_is_followed (void **state)
{
    (void) state;
    pl_lag_t lag;
    pl_lag_reset (&lag);
    pl_lag_observe (&lag, 1000, 1000);
    //  Our clock runs 500 ppm fast: over 100 s the trip grows by 50 ms,
    //  message by message a second apart; the lag seen stays within a ms
    int64_t worst = 0;
    for (int64_t second = 1; second <= 100; second++) {
        int64_t waited = pl_lag_observe (&lag, 1000 + second * 1000,
                                         1000 + second * 1000 + second / 2);
        if (waited > worst)
            worst = waited;
    }
    assert_true (worst <= 1);
}

static void
test_unstamped_messages_teach_nothing_and_reset_forgets (void **state)
{
    (void) state;
    pl_lag_t lag;
    pl_lag_reset (&lag);
    assert_int_equal (pl_lag_observe (&lag, 0, 123456), 0);
    assert_false (lag.known);
    pl_lag_observe (&lag, 100, 100);
    assert_int_equal (pl_lag_observe (&lag, 100, 2100), 2000 - 2);
    //  Another sender, another clock: a reset takes its first message as fresh
    pl_lag_reset (&lag);
    assert_int_equal (pl_lag_observe (&lag, 1, 900000), 0);
    assert_int_equal (pl_lag_observe (&lag, 11, 900010), 0);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_the_first_message_and_quicker_ones_did_not_wait),
        cmocka_unit_test (test_a_stall_shows_as_what_it_cost),
        cmocka_unit_test (test_drift_is_followed),
        cmocka_unit_test (test_unstamped_messages_teach_nothing_and_reset_forgets),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
