/*  test_st_stats - a store's commit figures: what each commit adds, and
    the series the front reports from on_metrics */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "st_stats.h"

#include <stdio.h>
#include <string.h>

//  What the test's host was handed: a copy of each series' scalars
typedef struct {
    char name [64];
    char operation [32];
    char store [16];
    uint64_t count;                 //  observations
    uint64_t first;                 //  in the first bucket
    double sum;
} reported_t;

static reported_t s_reported [16];
static int s_count;

static int
s_metric (parley_ctx_t *ctx, const parley_metric_t *metric)
{
    (void) ctx;
    reported_t *reported = &s_reported [s_count++];
    memset (reported, 0, sizeof *reported);
    snprintf (reported->name, sizeof reported->name, "%s", metric->name);
    for (int index = 0; metric->labels [index]; index += 2) {
        if (strcmp (metric->labels [index], "store") == 0)
            snprintf (reported->store, sizeof reported->store, "%s", metric->labels [index + 1]);
        if (strcmp (metric->labels [index], "operation") == 0)
            snprintf (reported->operation, sizeof reported->operation, "%s",
                      metric->labels [index + 1]);
    }
    for (uint32_t index = 0; index <= metric->bound_count; index++)
        reported->count += metric->counts [index];
    reported->first = metric->counts [0];
    reported->sum = metric->sum;
    return 0;
}

static void
s_report (const st_stats_t *stats)
{
    parley_host_t host;
    memset (&host, 0, sizeof host);
    host.abi_major = 1;
    host.abi_minor = PARLEY_ABI_MINOR;
    host.size = sizeof host;
    host.metric = s_metric;
    s_count = 0;
    st_stats_report (stats, &host, NULL);
}

static const reported_t *
s_find (const char *name, const char *operation)
{
    for (int index = 0; index < s_count; index++)
        if (strcmp (s_reported [index].name, name) == 0
        &&  strcmp (s_reported [index].operation, operation) == 0)
            return &s_reported [index];
    return NULL;
}

static void
test_a_store_reports_the_operations_it_commits_from_the_start (void **state)
{
    (void) state;
    st_stats_t stats;
    st_stats_init (&stats, "mongo", 1u << ST_COMMIT_MSG_APPEND | 1u << ST_COMMIT_PM_APPEND);
    s_report (&stats);
    assert_int_equal (s_count, 4);
    const reported_t *seconds = s_find ("parley_store_commit_seconds", "msg.append");
    assert_non_null (seconds);
    assert_string_equal (seconds->store, "mongo");
    assert_int_equal (seconds->count, 0);
    assert_non_null (s_find ("parley_store_batch_size", "pm.append"));
    assert_null (s_find ("parley_store_commit_seconds", "transaction"));
}

static void
test_each_commit_adds_its_time_and_its_entries (void **state)
{
    (void) state;
    st_stats_t stats;
    st_stats_init (&stats, "sqlite", 1u << ST_COMMIT_TRANSACTION);
    int64_t started = st_stats_now ();
    st_stats_commit (&stats, ST_COMMIT_TRANSACTION, started - 3000000, 1);     //  3 ms ago
    st_stats_commit (&stats, ST_COMMIT_TRANSACTION, started - 1000000000, 700);    //  1 s ago
    s_report (&stats);
    assert_int_equal (s_count, 2);
    const reported_t *seconds = s_find ("parley_store_commit_seconds", "transaction");
    assert_int_equal (seconds->count, 2);
    assert_int_equal (seconds->first, 0);       //  nothing under half a millisecond
    assert_true (seconds->sum >= 1.003 && seconds->sum < 60);
    const reported_t *sizes = s_find ("parley_store_batch_size", "transaction");
    assert_int_equal (sizes->count, 2);
    assert_int_equal (sizes->first, 1);         //  the batch of one
    assert_true (sizes->sum == 701);
    //  An operation it does not say it commits shows once it has one
    st_stats_commit (&stats, ST_COMMIT_PM_APPEND, st_stats_now (), 3);
    s_report (&stats);
    assert_int_equal (s_count, 4);
    assert_int_equal (s_find ("parley_store_batch_size", "pm.append")->count, 1);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_a_store_reports_the_operations_it_commits_from_the_start),
        cmocka_unit_test (test_each_commit_adds_its_time_and_its_entries),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
