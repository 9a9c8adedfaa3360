/*  =========================================================================
    test_gw_metrics - the gateway's counters, their page and who may read it,
    without sockets
    =========================================================================
*/

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "gw_metrics.h"

static void
test_types_and_codes_are_bounded (void **state)
{
    int other = gw_metrics_type (NULL);
    assert_int_equal (other, GW_METRICS_TYPES - 1);
    assert_int_equal (gw_metrics_type ("alice's.own.type"), other);
    assert_true (gw_metrics_type ("msg.send") < other);
    assert_true (gw_metrics_type ("auth.login") < other);
    assert_true (gw_metrics_type ("typing") < other);
    assert_int_not_equal (gw_metrics_type ("ping"), gw_metrics_type ("pm.send"));
}

static void
test_file_statuses_are_bounded (void **state)
{
    gw_metrics_t *metrics = gw_metrics_new ();
    gw_metrics_file (metrics, GW_FILE_UPLOAD, 201);
    gw_metrics_file (metrics, GW_FILE_UPLOAD, 418);         //  not one of ours: other
    gw_metrics_file (metrics, GW_FILE_DOWNLOAD, 200);
    gw_metrics_file (metrics, GW_FILE_DOWNLOAD, 200);
    metrics->file_bytes [GW_FILE_DOWNLOAD] += 12345;
    gw_metrics_gauges_t gauges = { 0 };
    size_t size = 0;
    char *page = gw_metrics_render (metrics, &gauges, NULL, 0, 0, &size);
    assert_non_null (page);
    char *text = strndup (page, size);
    assert_non_null (strstr (text, "parley_gateway_file_requests_total{way=\"upload\",status=\"201\"} 1\n"));
    assert_non_null (strstr (text, "parley_gateway_file_requests_total{way=\"upload\",status=\"other\"} 1\n"));
    assert_non_null (strstr (text, "parley_gateway_file_requests_total{way=\"download\",status=\"200\"} 2\n"));
    assert_non_null (strstr (text, "parley_gateway_file_requests_total{way=\"download\",status=\"404\"} 0\n"));
    assert_non_null (strstr (text, "parley_gateway_file_bytes_total{way=\"download\"} 12345\n"));
    assert_null (strstr (text, "418"));
    free (text);
    free (page);
    gw_metrics_destroy (&metrics);
}

static void
test_page_has_cumulative_buckets_and_no_user_text (void **state)
{
    gw_metrics_t *metrics = gw_metrics_new ();
    int send = gw_metrics_type ("msg.send");
    gw_metrics_request (metrics, send, "ok", 300);          //  le 0.0005
    gw_metrics_request (metrics, send, "ok", 2000);         //  le 0.0025
    gw_metrics_request (metrics, send, "room_full", 20000000);     //  +Inf only
    gw_metrics_request (metrics, gw_metrics_type ("evil\"type"), "evil\ncode", 1);
    gw_metrics_gauges_t gauges = { .sessions = 3 };
    const char broker [] = "# HELP parley_broker_x x\n# TYPE parley_broker_x gauge\nparley_broker_x 1\n";
    size_t size = 0;
    char *page = gw_metrics_render (metrics, &gauges, broker, strlen (broker), 16, &size);
    assert_non_null (page);
    char *text = strndup (page + 16, size);
    assert_non_null (strstr (text, "parley_gateway_requests_total{type=\"msg.send\",code=\"ok\"} 2\n"));
    assert_non_null (strstr (text, "parley_gateway_requests_total{type=\"msg.send\",code=\"room_full\"} 1\n"));
    assert_non_null (strstr (text, "parley_gateway_requests_total{type=\"other\",code=\"other\"} 1\n"));
    assert_non_null (strstr (text, "{type=\"msg.send\",le=\"0.0005\"} 1\n"));
    assert_non_null (strstr (text, "{type=\"msg.send\",le=\"0.001\"} 1\n"));
    assert_non_null (strstr (text, "{type=\"msg.send\",le=\"0.0025\"} 2\n"));
    assert_non_null (strstr (text, "{type=\"msg.send\",le=\"10\"} 2\n"));
    assert_non_null (strstr (text, "{type=\"msg.send\",le=\"+Inf\"} 3\n"));
    assert_non_null (strstr (text, "parley_gateway_request_duration_seconds_sum{type=\"msg.send\"} 20.002300\n"));
    assert_non_null (strstr (text, "parley_gateway_sessions_open 3\n"));
    assert_null (strstr (text, "evil"));
    assert_non_null (strstr (text, "\nparley_broker_x 1\n"));
    free (text);
    free (page);
    //  A broker part that does not end a line is left out, not cut into the page
    page = gw_metrics_render (metrics, &gauges, broker, strlen (broker) - 1, 0, &size);
    assert_non_null (page);
    assert_int_equal (page [size - 1], '\n');
    assert_null (strstr (page, "parley_broker_x"));
    free (page);
    gw_metrics_destroy (&metrics);
    assert_null (metrics);
}

static void
test_policy_says_who_reads (void **state)
{
    char error [160] = "";
    const char *valid [] = { "local", "off", "any", "10.0.0.1", "10.0.0.1,::1,2001:db8::7" };
    for (size_t index = 0; index < sizeof valid / sizeof valid [0]; index++)
        assert_true (gw_metrics_policy_valid (valid [index], error, sizeof error));
    const char *invalid [] = { "", "nobody", "10.0.0.1,", ",10.0.0.1", "10.0.0.0/8", "10.0.0.1 ",
                               "LOCAL" };
    for (size_t index = 0; index < sizeof invalid / sizeof invalid [0]; index++) {
        assert_false (gw_metrics_policy_valid (invalid [index], error, sizeof error));
        assert_non_null (strstr (error, "--metrics wants"));
    }
    assert_true (gw_metrics_allowed (NULL, "127.0.0.1"));
    assert_true (gw_metrics_allowed ("local", "127.8.9.10"));
    assert_true (gw_metrics_allowed ("local", "::1"));
    assert_false (gw_metrics_allowed ("local", "10.0.0.1"));
    assert_false (gw_metrics_allowed ("local", "?"));
    assert_false (gw_metrics_allowed ("off", "127.0.0.1"));
    assert_true (gw_metrics_allowed ("any", "192.0.2.1"));
    assert_true (gw_metrics_allowed ("10.0.0.1,2001:db8::7", "2001:0db8:0::7"));
    assert_true (gw_metrics_allowed ("10.0.0.1,2001:db8::7", "10.0.0.1"));
    assert_false (gw_metrics_allowed ("10.0.0.1,2001:db8::7", "10.0.0.11"));
    assert_false (gw_metrics_allowed ("10.0.0.1", "127.0.0.1"));
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_types_and_codes_are_bounded),
        cmocka_unit_test (test_file_statuses_are_bounded),
        cmocka_unit_test (test_page_has_cumulative_buckets_and_no_user_text),
        cmocka_unit_test (test_policy_says_who_reads),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
