/*  test_service - measured service time and admission by it */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pl_service.h"

static void
test_the_average_starts_at_the_first_sample_and_follows_slowly (void **state)
{
    pl_service_t service = { 0 };
    assert_int_equal (pl_service_ms (&service), 0);
    pl_service_add (&service, 80);
    assert_int_equal (pl_service_ms (&service), 80);
    pl_service_add (&service, 160);                 //  (80 x 7/8 + 160) / (7/8 + 1)
    assert_int_equal (pl_service_ms (&service), 123);
    for (int index = 0; index < 100; index++)
        pl_service_add (&service, 20);
    assert_in_range (pl_service_ms (&service), 20, 21);    //  rounded up
    pl_service_add (&service, -5);                  //  a clock's hiccup: 0
    assert_in_range (pl_service_ms (&service), 18, 19);
}

//  A batch weighs as many jobs as it did: a run of 32 after a lone job says
//  what one job of a run costs
static void
test_a_batch_counts_as_its_jobs (void **state)
{
    pl_service_t service = { 0 };
    pl_service_add (&service, 50);
    pl_service_add_batch (&service, 200, 32);       //  (50 x 7/8 + 200) / (7/8 + 32)
    assert_int_equal (pl_service_ms (&service), 8);
    pl_service_add_batch (&service, 100, 0);        //  nothing done: nothing learnt
    assert_int_equal (pl_service_ms (&service), 8);
    assert_int_equal (service.samples, 2);
}

//  What a caller keeps in hand: a multiple of the measure, never less than
//  its least (which is all there is before the first sample)
static void
test_a_reserve_is_a_multiple_of_the_measure_and_at_least_its_least (void **state)
{
    pl_service_t service = { 0 };
    assert_int_equal (pl_service_reserve (&service, 3, 250), 250);
    pl_service_add (&service, 2);
    assert_int_equal (pl_service_reserve (&service, 3, 50), 50);
    pl_service_add (&service, 400);                 //  (2 x 7/8 + 400) / (7/8 + 1)
    assert_int_equal (pl_service_ms (&service), 215);
    assert_int_equal (pl_service_reserve (&service, 3, 50), 643);  //  3 x 214.27, rounded up
    assert_int_equal (pl_service_reserve (&service, 0, 50), 50);
}

static void
test_work_ahead_is_shared_by_the_workers (void **state)
{
    pl_service_t service = { 0 };
    pl_service_add (&service, 100);
    assert_int_equal (pl_service_wait (&service, 0, 2), 100);      //  starts now
    assert_int_equal (pl_service_wait (&service, 1, 2), 100);      //  beside it
    assert_int_equal (pl_service_wait (&service, 4, 2), 300);
    assert_int_equal (pl_service_wait (&service, 4, 0), 500);      //  0 is 1 worker
}

static void
test_a_job_is_admitted_only_when_the_work_ahead_fits (void **state)
{
    pl_service_t service = { 0 };
    //  Nothing measured yet, or no deadline: admitted
    assert_int_equal (pl_service_refuse (&service, 1000, 1, 10), 0);
    pl_service_add (&service, 50);
    assert_int_equal (pl_service_refuse (&service, 100, 2, -1), 0);
    //  100 ahead on 2 workers: 51 rounds of 50 ms = 2550 ms
    assert_int_equal (pl_service_refuse (&service, 100, 2, 2550), 0);
    assert_int_equal (pl_service_refuse (&service, 100, 2, 2000), 550);
    //  Refused by a hair: still at least one job's time, and the floor
    assert_int_equal (pl_service_refuse (&service, 100, 2, 2549), PL_SERVICE_RETRY_MIN_MS);
    pl_service_t slow = { 0 };
    pl_service_add (&slow, 400);
    assert_int_equal (pl_service_refuse (&slow, 10, 1, 4390), 400);
}

//  A measure left high by a stall that has ended comes down through the
//  refusals it causes, until a job is admitted again
static void
test_refusals_bring_a_stale_measure_down_until_a_job_is_admitted (void **state)
{
    (void) state;
    pl_service_t service = { 0 };
    for (int index = 0; index < 8; index++)
        pl_service_add (&service, 10);
    for (int index = 0; index < 8; index++)
        pl_service_add (&service, 3000);
    assert_true (pl_service_ms (&service) > 1000);
    int refusals = 0;
    while (pl_service_refuse (&service, 0, 1, 500) > 0) {
        pl_service_refused (&service, 0);
        refusals++;
        assert_true (refusals < 100);
    }
    assert_true (refusals > 0);
    assert_true (pl_service_ms (&service) <= 500);
}

//  A refusal with jobs ahead leaves the measure as it is: the work queued
//  said no, and those jobs will renew it
static void
test_a_refusal_with_jobs_ahead_leaves_the_measure (void **state)
{
    (void) state;
    pl_service_t service = { 0 };
    pl_service_add (&service, 3000);
    assert_true (pl_service_refuse (&service, 1, 1, 500) > 0);
    pl_service_refused (&service, 1);
    assert_int_equal (pl_service_ms (&service), 3000);
    pl_service_refused (&service, 0);
    assert_true (pl_service_ms (&service) < 3000);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_the_average_starts_at_the_first_sample_and_follows_slowly),
        cmocka_unit_test (test_a_batch_counts_as_its_jobs),
        cmocka_unit_test (test_a_reserve_is_a_multiple_of_the_measure_and_at_least_its_least),
        cmocka_unit_test (test_work_ahead_is_shared_by_the_workers),
        cmocka_unit_test (test_a_job_is_admitted_only_when_the_work_ahead_fits),
        cmocka_unit_test (test_refusals_bring_a_stale_measure_down_until_a_job_is_admitted),
        cmocka_unit_test (test_a_refusal_with_jobs_ahead_leaves_the_measure),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
