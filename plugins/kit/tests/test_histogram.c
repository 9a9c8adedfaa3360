/*  =========================================================================
    test_histogram - the hot path's histogram and its report to the host
    =========================================================================
*/

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "pl_histogram.h"

static const double s_bounds [] = { 0.001, 0.01, 0.1 };

static void
test_observations_land_in_the_first_bucket_that_holds_them (void **state)
{
    (void) state;
    pl_histogram_t histogram;
    pl_histogram_init (&histogram, s_bounds, 3);
    pl_histogram_observe (&histogram, 0.0005);
    pl_histogram_observe (&histogram, 0.001);      //  le is inclusive
    pl_histogram_observe (&histogram, 0.05);
    pl_histogram_observe (&histogram, 7);          //  past the last bound
    assert_int_equal (histogram.counts [0], 2);
    assert_int_equal (histogram.counts [1], 0);
    assert_int_equal (histogram.counts [2], 1);
    assert_int_equal (histogram.counts [3], 1);
    assert_int_equal (pl_histogram_count (&histogram), 4);
    assert_true (histogram.sum > 7.0514 && histogram.sum < 7.0516);
}

static void
test_too_many_bounds_are_cut_to_the_abi_s_most (void **state)
{
    (void) state;
    double bounds [PARLEY_METRIC_BOUNDS_MAX + 5];
    for (int index = 0; index < PARLEY_METRIC_BOUNDS_MAX + 5; index++)
        bounds [index] = index + 1;
    pl_histogram_t histogram;
    pl_histogram_init (&histogram, bounds, PARLEY_METRIC_BOUNDS_MAX + 5);
    assert_int_equal (histogram.bound_count, PARLEY_METRIC_BOUNDS_MAX);
    pl_histogram_observe (&histogram, 1000);
    assert_int_equal (histogram.counts [PARLEY_METRIC_BOUNDS_MAX], 1);
}

//  A fake host: keeps the last metric it was handed
static parley_metric_t s_reported;
static int s_reports;

static int
s_metric (parley_ctx_t *ctx, const parley_metric_t *metric)
{
    (void) ctx;
    s_reported = *metric;
    s_reports++;
    return 0;
}

static void
test_report_hands_the_host_the_counts_on_1_4_only (void **state)
{
    (void) state;
    pl_histogram_t histogram;
    pl_histogram_init (&histogram, s_bounds, 3);
    pl_histogram_observe (&histogram, 0.02);
    const char *labels [] = { "store", "sqlite", NULL };
    parley_host_t host;
    memset (&host, 0, sizeof host);
    host.abi_major = 1;
    host.abi_minor = 3;
    host.size = sizeof host;
    s_reports = 0;
    assert_int_equal (pl_histogram_report (&histogram, &host, NULL, "parley_x_seconds",
                                           "X.", labels), -1);
    assert_int_equal (s_reports, 0);
    host.abi_minor = 4;
    host.metric = s_metric;
    assert_int_equal (pl_histogram_report (&histogram, &host, NULL, "parley_x_seconds",
                                           "X.", labels), 0);
    assert_int_equal (s_reports, 1);
    assert_int_equal (s_reported.type, PARLEY_METRIC_HISTOGRAM);
    assert_string_equal (s_reported.name, "parley_x_seconds");
    assert_ptr_equal (s_reported.labels, labels);
    assert_int_equal (s_reported.bound_count, 3);
    assert_int_equal (s_reported.counts [2], 1);
    assert_true (s_reported.sum == 0.02);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_observations_land_in_the_first_bucket_that_holds_them),
        cmocka_unit_test (test_too_many_bounds_are_cut_to_the_abi_s_most),
        cmocka_unit_test (test_report_hands_the_host_the_counts_on_1_4_only),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
