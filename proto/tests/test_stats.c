/*  =========================================================================
    test_stats - plugins' series, from the host's checks to the page's text
    =========================================================================
*/

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "pl_stats.h"

static const double s_bounds [] = { 0.005, 0.05 };

static parley_metric_t
s_histogram (const char *const *labels, const uint64_t *counts, double sum)
{
    return (parley_metric_t) {
        .size = sizeof (parley_metric_t), .type = PARLEY_METRIC_HISTOGRAM,
        .name = "parley_store_commit_seconds", .help = "Commit latency.", .labels = labels,
        .bounds = s_bounds, .counts = counts, .bound_count = 2, .sum = sum
    };
}

//  Renders these parts into a string the caller frees
static char *
s_render (const pl_stats_part_t *parts, size_t count, size_t *written_p)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    assert_non_null (out);
    *written_p = pl_stats_render (out, parts, count);
    assert_int_equal (fclose (out), 0);
    return text;
}

static uint8_t *
s_body (pl_stats_t *stats, size_t *size_p)
{
    uint8_t *body = pl_stats_body (stats, size_p);
    assert_non_null (body);
    return body;
}

static void
test_two_instances_share_one_family_each_with_its_label (void **state)
{
    (void) state;
    pl_stats_t *stats = pl_stats_new ();
    char error [256];
    const char *labels [] = { "store", "sqlite", "operation", "transaction", NULL };
    const uint64_t first [] = { 2, 1, 0 }, second [] = { 0, 0, 4 };
    parley_metric_t metric = s_histogram (labels, first, 0.02);
    assert_int_equal (pl_stats_add (stats, &metric, error, sizeof error), 0);
    parley_metric_t counter = { .size = sizeof (parley_metric_t), .type = PARLEY_METRIC_COUNTER,
        .name = "parley_a_total", .help = "A \\ thing\nmore.", .value = 3 };
    assert_int_equal (pl_stats_add (stats, &counter, error, sizeof error), 0);
    assert_int_equal (pl_stats_count (stats), 2);
    size_t size1, size2;
    uint8_t *body1 = s_body (stats, &size1);
    assert_int_equal (pl_stats_count (stats), 0);
    metric = s_histogram (labels, second, 1.5);
    assert_int_equal (pl_stats_add (stats, &metric, error, sizeof error), 0);
    uint8_t *body2 = s_body (stats, &size2);
    pl_stats_part_t parts [] = { { "one", body1, size1 }, { "t\"wo", body2, size2 } };
    size_t written;
    char *text = s_render (parts, 2, &written);
    assert_int_equal (written, 3);
    const char *expected =
        "# HELP parley_a_total A \\\\ thing\\nmore.\n"
        "# TYPE parley_a_total counter\n"
        "parley_a_total{instance=\"one\"} 3\n"
        "# HELP parley_store_commit_seconds Commit latency.\n"
        "# TYPE parley_store_commit_seconds histogram\n"
        "parley_store_commit_seconds_bucket{store=\"sqlite\",operation=\"transaction\",instance=\"one\",le=\"0.005\"} 2\n"
        "parley_store_commit_seconds_bucket{store=\"sqlite\",operation=\"transaction\",instance=\"one\",le=\"0.05\"} 3\n"
        "parley_store_commit_seconds_bucket{store=\"sqlite\",operation=\"transaction\",instance=\"one\",le=\"+Inf\"} 3\n"
        "parley_store_commit_seconds_sum{store=\"sqlite\",operation=\"transaction\",instance=\"one\"} 0.02\n"
        "parley_store_commit_seconds_count{store=\"sqlite\",operation=\"transaction\",instance=\"one\"} 3\n"
        "parley_store_commit_seconds_bucket{store=\"sqlite\",operation=\"transaction\",instance=\"t\\\"wo\",le=\"0.005\"} 0\n"
        "parley_store_commit_seconds_bucket{store=\"sqlite\",operation=\"transaction\",instance=\"t\\\"wo\",le=\"0.05\"} 0\n"
        "parley_store_commit_seconds_bucket{store=\"sqlite\",operation=\"transaction\",instance=\"t\\\"wo\",le=\"+Inf\"} 4\n"
        "parley_store_commit_seconds_sum{store=\"sqlite\",operation=\"transaction\",instance=\"t\\\"wo\"} 1.5\n"
        "parley_store_commit_seconds_count{store=\"sqlite\",operation=\"transaction\",instance=\"t\\\"wo\"} 4\n";
    assert_string_equal (text, expected);
    free (text);
    free (body1);
    free (body2);
    pl_stats_destroy (&stats);
}

//  Each rule of the ABI, broken once: refused with a sentence, nothing added
static void
test_series_the_abi_refuses_are_not_added (void **state)
{
    (void) state;
    pl_stats_t *stats = pl_stats_new ();
    char error [256];
    const uint64_t counts [] = { 1, 1, 1 };
    const char *le [] = { "le", "x", NULL };
    const char *instance [] = { "instance", "x", NULL };
    const char *upper [] = { "Store", "x", NULL };
    const char *odd [] = { "store", NULL };
    const double descending [] = { 0.5, 0.1 };
    parley_metric_t bad [8];
    for (int index = 0; index < 8; index++)
        bad [index] = s_histogram (NULL, counts, 1);
    bad [0].name = "store_commit_seconds";
    bad [1].name = "parley_Commit";
    bad [2].labels = le;
    bad [3].labels = instance;
    bad [4].labels = upper;
    bad [5].labels = odd;
    bad [6].bounds = descending;
    bad [7].type = 9;
    for (int index = 0; index < 8; index++) {
        error [0] = 0;
        assert_int_equal (pl_stats_add (stats, &bad [index], error, sizeof error), -1);
        assert_non_null (strstr (error, "the metric"));
    }
    parley_metric_t negative = { .size = sizeof (parley_metric_t),
        .type = PARLEY_METRIC_COUNTER, .name = "parley_x_total", .value = -1 };
    assert_int_equal (pl_stats_add (stats, &negative, error, sizeof error), -1);
    parley_metric_t small = s_histogram (NULL, counts, 1);
    small.size = offsetof (parley_metric_t, bounds);
    assert_int_equal (pl_stats_add (stats, &small, error, sizeof error), -1);
    assert_int_equal (pl_stats_count (stats), 0);
    pl_stats_destroy (&stats);
}

//  A body that is not what a host sends spoils its own part only; a name
//  reported with two types keeps the first
static void
test_broken_parts_and_type_clashes_are_left_out (void **state)
{
    (void) state;
    pl_stats_t *stats = pl_stats_new ();
    char error [256];
    parley_metric_t gauge = { .size = sizeof (parley_metric_t), .type = PARLEY_METRIC_GAUGE,
        .name = "parley_depth", .help = "Depth.", .value = 2.5 };
    assert_int_equal (pl_stats_add (stats, &gauge, error, sizeof error), 0);
    size_t size1, size2;
    uint8_t *body1 = s_body (stats, &size1);
    parley_metric_t counter = gauge;
    counter.type = PARLEY_METRIC_COUNTER;
    assert_int_equal (pl_stats_add (stats, &counter, error, sizeof error), 0);
    uint8_t *body2 = s_body (stats, &size2);
    const uint8_t junk [] = { 0x91, 0x93, 0x01, 0x02, 0x03 };   //  [[1, 2, 3]]
    pl_stats_part_t parts [] = {
        { "junk", junk, sizeof junk }, { "a", body1, size1 }, { "b", body2, size2 },
        { "cut", body1, size1 - 3 } };
    size_t written;
    char *text = s_render (parts, 4, &written);
    assert_int_equal (written, 1);
    assert_string_equal (text, "# HELP parley_depth Depth.\n# TYPE parley_depth gauge\n"
                               "parley_depth{instance=\"a\"} 2.5\n");
    free (text);
    free (body1);
    free (body2);
    pl_stats_destroy (&stats);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_two_instances_share_one_family_each_with_its_label),
        cmocka_unit_test (test_series_the_abi_refuses_are_not_added),
        cmocka_unit_test (test_broken_parts_and_type_clashes_are_left_out),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
