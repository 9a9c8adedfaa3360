/*  test_bucket - the token bucket behind rate_limited and retry_after_ms */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pl_bucket.h"

static void
test_a_burst_is_allowed_then_the_wait_is_told (void **state)
{
    pl_bucket_t bucket = pl_bucket_full (3, 1000);
    for (int index = 0; index < 3; index++)
        assert_int_equal (pl_bucket_take (&bucket, 2, 3, 1000), 0);
    //  Empty: at 2 a second the next token is 500 ms away
    assert_int_equal (pl_bucket_take (&bucket, 2, 3, 1000), 500);
    assert_int_equal (pl_bucket_take (&bucket, 2, 3, 1400), 100);
    assert_int_equal (pl_bucket_take (&bucket, 2, 3, 1500), 0);
}

static void
test_a_bucket_never_holds_more_than_its_burst (void **state)
{
    pl_bucket_t bucket = pl_bucket_full (2, 0);
    //  An hour idle refills to the burst, not to 7,200
    assert_int_equal (pl_bucket_take (&bucket, 2, 2, 3600000), 0);
    assert_int_equal (pl_bucket_take (&bucket, 2, 2, 3600000), 0);
    assert_true (pl_bucket_take (&bucket, 2, 2, 3600000) > 0);
}

static void
test_a_rate_of_zero_never_limits (void **state)
{
    pl_bucket_t bucket = pl_bucket_full (0, 0);
    for (int index = 0; index < 100; index++)
        assert_int_equal (pl_bucket_take (&bucket, 0, 0, 0), 0);
}

static void
test_a_clock_going_back_refills_nothing (void **state)
{
    pl_bucket_t bucket = pl_bucket_full (1, 5000);
    assert_int_equal (pl_bucket_take (&bucket, 1, 1, 5000), 0);
    assert_int_equal (pl_bucket_take (&bucket, 1, 1, 4000), 1000);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_a_burst_is_allowed_then_the_wait_is_told),
        cmocka_unit_test (test_a_bucket_never_holds_more_than_its_burst),
        cmocka_unit_test (test_a_rate_of_zero_never_limits),
        cmocka_unit_test (test_a_clock_going_back_refills_nothing),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
