/*  test_throttle - at most one typing per user and room every interval */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "pl_throttle.h"

static void
test_one_passes_per_interval (void **state)
{
    pl_throttle_t *throttle = pl_throttle_new (2000, 100);
    assert_non_null (throttle);
    assert_true (pl_throttle_pass (throttle, "alice", "general", 1000));
    //  Within the interval: swallowed, however often asked
    assert_false (pl_throttle_pass (throttle, "alice", "general", 1001));
    assert_false (pl_throttle_pass (throttle, "alice", "general", 2999));
    //  The interval is over: it passes again, and the next window starts
    assert_true (pl_throttle_pass (throttle, "alice", "general", 3000));
    assert_false (pl_throttle_pass (throttle, "alice", "general", 4999));
    assert_true (pl_throttle_pass (throttle, "alice", "general", 5000));
    pl_throttle_destroy (&throttle);
    assert_null (throttle);
}

static void
test_each_user_and_place_has_its_own_window (void **state)
{
    pl_throttle_t *throttle = pl_throttle_new (2000, 100);
    assert_true (pl_throttle_pass (throttle, "alice", "general", 0));
    assert_true (pl_throttle_pass (throttle, "alice", "random", 0));
    assert_true (pl_throttle_pass (throttle, "bob", "general", 0));
    //  "alice\ngeneral" is not "alic\negeneral": the parts stay apart
    assert_true (pl_throttle_pass (throttle, "alic", "egeneral", 0));
    assert_false (pl_throttle_pass (throttle, "alice", "general", 10));
    assert_false (pl_throttle_pass (throttle, "bob", "general", 10));
    pl_throttle_destroy (&throttle);
}

static void
test_names_compare_without_case (void **state)
{
    pl_throttle_t *throttle = pl_throttle_new (2000, 100);
    assert_true (pl_throttle_pass (throttle, "Alice", "General", 0));
    assert_false (pl_throttle_pass (throttle, "alice", "GENERAL", 1));
    pl_throttle_destroy (&throttle);
}

static void
test_expired_entries_leave (void **state)
{
    pl_throttle_t *throttle = pl_throttle_new (100, 100000);
    char who [32];
    for (int index = 0; index < 5000; index++) {
        snprintf (who, sizeof who, "user%d", index);
        assert_true (pl_throttle_pass (throttle, who, "room", index / 100));
    }
    assert_int_equal (pl_throttle_size (throttle), 5000);
    //  The next pass, an interval after the last, finds every one expired
    assert_true (pl_throttle_pass (throttle, "late", "room", 49 + 100));
    assert_int_equal (pl_throttle_size (throttle), 1);
    //  and each of them may pass again
    assert_true (pl_throttle_pass (throttle, "user0", "room", 149));
    pl_throttle_destroy (&throttle);
}

static void
test_the_bound_drops_the_oldest (void **state)
{
    pl_throttle_t *throttle = pl_throttle_new (60000, 3);
    assert_true (pl_throttle_pass (throttle, "a", "r", 0));
    assert_true (pl_throttle_pass (throttle, "b", "r", 1));
    assert_true (pl_throttle_pass (throttle, "c", "r", 2));
    assert_true (pl_throttle_pass (throttle, "d", "r", 3));
    assert_int_equal (pl_throttle_size (throttle), 3);
    //  "a" was dropped for the bound: it passes early; the others do not
    assert_true (pl_throttle_pass (throttle, "a", "r", 4));
    assert_false (pl_throttle_pass (throttle, "c", "r", 5));
    assert_false (pl_throttle_pass (throttle, "d", "r", 5));
    assert_int_equal (pl_throttle_size (throttle), 3);
    pl_throttle_destroy (&throttle);
}

static void
test_an_interval_of_zero_lets_all_pass (void **state)
{
    pl_throttle_t *throttle = pl_throttle_new (0, 100);
    for (int index = 0; index < 10; index++)
        assert_true (pl_throttle_pass (throttle, "alice", "general", 0));
    assert_int_equal (pl_throttle_size (throttle), 0);
    pl_throttle_destroy (&throttle);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_one_passes_per_interval),
        cmocka_unit_test (test_each_user_and_place_has_its_own_window),
        cmocka_unit_test (test_names_compare_without_case),
        cmocka_unit_test (test_expired_entries_leave),
        cmocka_unit_test (test_the_bound_drops_the_oldest),
        cmocka_unit_test (test_an_interval_of_zero_lets_all_pass),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
