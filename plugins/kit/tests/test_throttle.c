/*  test_throttle - at most one typing per user and room every interval; a
    read event held and handed over with the newest seq */

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

//  What a holding throttle handed over, in order
typedef struct {
    char who [32][16];
    char where [32][16];
    uint64_t value [32];
    size_t count;
} s_handed_t;

static void
s_take (void *arg, const char *who, const char *where, uint64_t value)
{
    s_handed_t *handed = (s_handed_t *) arg;
    assert_true (handed->count < 32);
    snprintf (handed->who [handed->count], 16, "%s", who);
    snprintf (handed->where [handed->count], 16, "%s", where);
    handed->value [handed->count++] = value;
}

static void
test_a_burst_gives_the_first_at_once_and_the_newest_an_interval_later (void **state)
{
    pl_throttle_t *throttle = pl_throttle_new (250, 100);
    s_handed_t handed = { .count = 0 };
    assert_true (pl_throttle_hold (throttle, "Alice", "General", 3, 1000, s_take, &handed));
    assert_int_equal (pl_throttle_held (throttle), 0);
    //  Within the interval: held, the largest kept (values only grow, but
    //  a smaller one must not take a larger one's place)
    assert_false (pl_throttle_hold (throttle, "alice", "general", 5, 1010, s_take, &handed));
    assert_false (pl_throttle_hold (throttle, "ALICE", "general", 9, 1020, s_take, &handed));
    assert_false (pl_throttle_hold (throttle, "alice", "general", 7, 1030, s_take, &handed));
    assert_int_equal (pl_throttle_held (throttle), 1);
    pl_throttle_due (throttle, 1249, s_take, &handed);
    assert_int_equal (handed.count, 0);
    //  The interval is over: the newest, once, with the names the hold
    //  began with
    pl_throttle_due (throttle, 1250, s_take, &handed);
    pl_throttle_due (throttle, 1251, s_take, &handed);
    assert_int_equal (handed.count, 1);
    assert_string_equal (handed.who [0], "alice");
    assert_string_equal (handed.where [0], "general");
    assert_int_equal (handed.value [0], 9);
    assert_int_equal (pl_throttle_held (throttle), 0);
    //  The hand-over counted as a pass at 1250: the next is held again
    assert_false (pl_throttle_hold (throttle, "alice", "general", 11, 1300, s_take, &handed));
    //  A hold that finds the interval over hands the held value over first
    //  and holds its own for the next interval
    assert_false (pl_throttle_hold (throttle, "alice", "general", 12, 1500, s_take, &handed));
    assert_int_equal (handed.count, 2);
    assert_int_equal (handed.value [1], 11);
    pl_throttle_due (throttle, 1750, s_take, &handed);
    assert_int_equal (handed.count, 3);
    assert_int_equal (handed.value [2], 12);
    //  A quiet interval later the entry is gone: the next passes at once
    pl_throttle_due (throttle, 2000, s_take, &handed);
    assert_int_equal (pl_throttle_size (throttle), 0);
    assert_true (pl_throttle_hold (throttle, "alice", "general", 13, 2000, s_take, &handed));
    assert_int_equal (handed.count, 3);
    pl_throttle_destroy (&throttle);
}

static void
test_a_value_made_known_otherwise_is_settled (void **state)
{
    pl_throttle_t *throttle = pl_throttle_new (250, 100);
    s_handed_t handed = { .count = 0 };
    assert_true (pl_throttle_hold (throttle, "alice", "general", 3, 0, s_take, &handed));
    assert_false (pl_throttle_hold (throttle, "alice", "general", 5, 1, s_take, &handed));
    //  A smaller value made known leaves the larger held
    pl_throttle_settle (throttle, "Alice", "GENERAL", 4);
    assert_int_equal (pl_throttle_held (throttle), 1);
    //  One as large or larger: nothing left to hand over
    pl_throttle_settle (throttle, "alice", "general", 5);
    assert_int_equal (pl_throttle_held (throttle), 0);
    pl_throttle_settle (throttle, "bob", "general", 5);      //  unknown: nothing
    pl_throttle_due (throttle, 1000, s_take, &handed);
    assert_int_equal (handed.count, 0);
    pl_throttle_destroy (&throttle);
}

static void
test_the_bound_hands_a_held_value_over_early (void **state)
{
    pl_throttle_t *throttle = pl_throttle_new (250, 2);
    s_handed_t handed = { .count = 0 };
    assert_true (pl_throttle_hold (throttle, "alice", "one", 1, 0, s_take, &handed));
    assert_false (pl_throttle_hold (throttle, "alice", "one", 2, 1, s_take, &handed));
    assert_true (pl_throttle_hold (throttle, "bob", "one", 1, 2, s_take, &handed));
    //  A third name: the oldest goes, and what it held is not lost
    assert_true (pl_throttle_hold (throttle, "carol", "one", 1, 3, s_take, &handed));
    assert_int_equal (handed.count, 1);
    assert_string_equal (handed.who [0], "alice");
    assert_int_equal (handed.value [0], 2);
    assert_int_equal (pl_throttle_size (throttle), 2);
    assert_int_equal (pl_throttle_held (throttle), 0);
    pl_throttle_destroy (&throttle);
}

static void
test_destroy_frees_what_is_held (void **state)
{
    pl_throttle_t *throttle = pl_throttle_new (250, 100);
    s_handed_t handed = { .count = 0 };
    assert_true (pl_throttle_hold (throttle, "alice", "general", 1, 0, s_take, &handed));
    assert_false (pl_throttle_hold (throttle, "alice", "general", 2, 1, s_take, &handed));
    assert_true (pl_throttle_hold (throttle, "alice", "random", 0, 0, NULL, NULL));
    //  Interval 0 holds nothing
    pl_throttle_t *open = pl_throttle_new (0, 100);
    assert_true (pl_throttle_hold (open, "alice", "general", 1, 0, s_take, &handed));
    assert_true (pl_throttle_hold (open, "alice", "general", 2, 0, s_take, &handed));
    assert_int_equal (pl_throttle_held (open), 0);
    pl_throttle_destroy (&open);
    pl_throttle_destroy (&throttle);        //  the sanitizer checks the names are freed
    assert_int_equal (handed.count, 0);
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
        cmocka_unit_test (test_a_burst_gives_the_first_at_once_and_the_newest_an_interval_later),
        cmocka_unit_test (test_a_value_made_known_otherwise_is_settled),
        cmocka_unit_test (test_the_bound_hands_a_held_value_over_early),
        cmocka_unit_test (test_destroy_frees_what_is_held),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
