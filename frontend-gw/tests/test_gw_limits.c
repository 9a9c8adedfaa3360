/*  =========================================================================
    test_gw_limits - the gateway's connection counts and its web allow-list,
    without sockets
    =========================================================================
*/

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "gw_limits.h"
#include "gw_web.h"

static void
test_per_address_cap_is_per_address (void **state)
{
    gw_limits_t *limits = gw_limits_new (100, 2, 1);
    gw_admit_t verdict;
    gw_limits_conn_t *a1 = gw_limits_admit (limits, "10.0.0.1", &verdict);
    assert_int_equal (verdict, GW_ADMIT_OK);
    gw_limits_conn_t *a2 = gw_limits_admit (limits, "10.0.0.1", &verdict);
    assert_int_equal (verdict, GW_ADMIT_OK);
    assert_null (gw_limits_admit (limits, "10.0.0.1", &verdict));
    assert_int_equal (verdict, GW_ADMIT_ADDRESS);
    gw_limits_conn_t *b1 = gw_limits_admit (limits, "10.0.0.2", &verdict);
    assert_int_equal (verdict, GW_ADMIT_OK);
    assert_int_equal (gw_limits_connections (limits), 3);
    gw_limits_release (limits, &a1);
    assert_null (a1);
    assert_int_equal (gw_limits_address_connections (limits, "10.0.0.1"), 1);
    a1 = gw_limits_admit (limits, "10.0.0.1", &verdict);
    assert_int_equal (verdict, GW_ADMIT_OK);
    gw_limits_release (limits, &a1);
    gw_limits_release (limits, &a2);
    gw_limits_release (limits, &b1);
    assert_int_equal (gw_limits_connections (limits), 0);
    assert_int_equal (gw_limits_address_connections (limits, "10.0.0.1"), 0);
    gw_limits_destroy (&limits);
    assert_null (limits);
}

static void
test_unauthenticated_sessions_are_counted_per_address (void **state)
{
    gw_limits_t *limits = gw_limits_new (100, 10, 2);
    gw_admit_t verdict;
    gw_limits_conn_t *conns [3];
    for (int index = 0; index < 3; index++)
        conns [index] = gw_limits_admit (limits, "10.0.0.1", &verdict);
    gw_limits_conn_t *other = gw_limits_admit (limits, "10.0.0.2", &verdict);
    assert_true (gw_limits_session_allowed (limits, conns [0]));
    gw_limits_set_unauthenticated (limits, conns [0], true);
    gw_limits_set_unauthenticated (limits, conns [0], true);     //  twice counts once
    gw_limits_set_unauthenticated (limits, conns [1], true);
    assert_false (gw_limits_session_allowed (limits, conns [2]));
    assert_true (gw_limits_session_allowed (limits, other));
    //  Signing in, or closing, makes room
    gw_limits_set_unauthenticated (limits, conns [0], false);
    assert_true (gw_limits_session_allowed (limits, conns [2]));
    gw_limits_set_unauthenticated (limits, conns [0], true);
    gw_limits_release (limits, &conns [1]);
    assert_true (gw_limits_session_allowed (limits, conns [2]));
    gw_limits_release (limits, &conns [0]);
    gw_limits_release (limits, &conns [2]);
    gw_limits_release (limits, &other);
    gw_limits_destroy (&limits);
}

static void
test_global_cap_keeps_health_slots_then_refuses (void **state)
{
    gw_limits_t *limits = gw_limits_new (3, 100, 100);
    gw_admit_t verdict;
    gw_limits_conn_t *conns [3 + GW_LIMITS_HEALTH_SLOTS];
    for (int index = 0; index < 3; index++) {
        conns [index] = gw_limits_admit (limits, "10.0.0.1", &verdict);
        assert_int_equal (verdict, GW_ADMIT_OK);
        assert_false (gw_limits_health_only (conns [index]));
    }
    for (int index = 3; index < 3 + GW_LIMITS_HEALTH_SLOTS; index++) {
        conns [index] = gw_limits_admit (limits, "10.0.0.2", &verdict);
        assert_int_equal (verdict, GW_ADMIT_HEALTH_ONLY);
        assert_true (gw_limits_health_only (conns [index]));
    }
    assert_null (gw_limits_admit (limits, "10.0.0.3", &verdict));
    assert_int_equal (verdict, GW_ADMIT_FULL);
    //  One served connection closes: the next is served again
    gw_limits_release (limits, &conns [0]);
    conns [0] = gw_limits_admit (limits, "10.0.0.3", &verdict);
    assert_int_equal (verdict, GW_ADMIT_OK);
    for (int index = 0; index < 3 + GW_LIMITS_HEALTH_SLOTS; index++)
        gw_limits_release (limits, &conns [index]);
    assert_int_equal (gw_limits_connections (limits), 0);
    gw_limits_destroy (&limits);
}

static gw_web_route_t
s_route (const char *path, char *file, const char **content_type)
{
    return gw_web_route (path, strlen (path), file, content_type);
}

static void
test_web_serves_only_the_ui_files (void **state)
{
    char file [GW_WEB_FILE_MAX];
    const char *content_type;
    assert_int_equal (s_route ("/", file, &content_type), GW_WEB_FILE);
    assert_string_equal (file, "index.html");
    assert_string_equal (content_type, "text/html; charset=utf-8");
    assert_int_equal (s_route ("/app.js", file, &content_type), GW_WEB_FILE);
    assert_string_equal (file, "app.js");
    assert_int_equal (s_route ("/vendor/bootstrap/js/bootstrap.bundle.min.js", file,
                               &content_type), GW_WEB_FILE);
    assert_string_equal (file, "node_modules/bootstrap/dist/js/bootstrap.bundle.min.js");
    assert_int_equal (s_route ("/healthz", file, &content_type), GW_WEB_HEALTHZ);
    assert_int_equal (s_route ("/ws", file, &content_type), GW_WEB_SOCKET);
    assert_int_equal (s_route ("/metrics", file, &content_type), GW_WEB_METRICS);
    const char *refused [] = {
        "/package.json", "/package-lock.json", "/README.md", "/.hidden.js", "/a/b.js",
        "/node_modules/bootstrap/dist/css/bootstrap.min.css", "/vendor/bootstrap/scss/x.scss",
        "/vendor/bootstrap/../../package.json", "/..", "/../web/app.js", "//app.js",
        "/app.js/", "/.js", "app.js", "", "/ws/", "/healthz/x", "/index.html%00.js",
        "/metrics/", "/metrics.txt",
    };
    for (size_t index = 0; index < sizeof refused / sizeof refused [0]; index++) {
        assert_int_equal (s_route (refused [index], file, &content_type), GW_WEB_NOT_FOUND);
        assert_null (content_type);
    }
    //  An embedded NUL ends nothing: the whole length is judged
    assert_int_equal (gw_web_route ("/index.html\0.js", 15, file, &content_type),
                      GW_WEB_NOT_FOUND);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_per_address_cap_is_per_address),
        cmocka_unit_test (test_unauthenticated_sessions_are_counted_per_address),
        cmocka_unit_test (test_global_cap_keeps_health_slots_then_refuses),
        cmocka_unit_test (test_web_serves_only_the_ui_files),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
