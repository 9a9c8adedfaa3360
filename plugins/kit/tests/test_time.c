/*  test_time - the protocol's ISO 8601 times */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pl_time.h"
#include <string.h>

static void
test_time_is_iso8601_utc_with_milliseconds (void **state)
{
    char text [PL_TIME_ISO8601_SIZE];
    assert_int_equal (pl_time_iso8601 (INT64_C (1795574751123), text, sizeof text), 0);
    assert_string_equal (text, "2026-11-25T02:45:51.123Z");
    assert_int_equal (pl_time_iso8601 (0, text, sizeof text), 0);
    assert_string_equal (text, "1970-01-01T00:00:00.000Z");
    assert_int_equal (pl_time_iso8601 (-1, text, sizeof text), 0);
    assert_string_equal (text, "1969-12-31T23:59:59.999Z");
}

static void
test_time_outside_four_digit_years_is_refused (void **state)
{
    char text [PL_TIME_ISO8601_SIZE];
    assert_int_equal (pl_time_iso8601 (INT64_C (253402300800000), text, sizeof text), -1);
    assert_string_equal (text, "");
    assert_int_equal (pl_time_iso8601 (INT64_MIN, text, sizeof text), -1);
    assert_int_equal (pl_time_iso8601 (INT64_C (253402300799999), text, sizeof text), 0);
    assert_string_equal (text, "9999-12-31T23:59:59.999Z");
}

//  The length is what the writer writes, for every year it accepts
static void
test_time_length_matches_what_is_written (void **state)
{
    int64_t samples [] = { INT64_C (1795574751123), 0, -1, INT64_C (253402300799999),
                           -INT64_C (62167219200000), INT64_C (253402300800000), INT64_MIN };
    for (size_t index = 0; index < sizeof samples / sizeof samples [0]; index++) {
        char text [PL_TIME_ISO8601_SIZE];
        pl_time_iso8601 (samples [index], text, sizeof text);
        assert_int_equal (pl_time_iso8601_length (samples [index]), strlen (text));
    }
}

static void
test_time_into_a_short_buffer_is_refused (void **state)
{
    char text [8] = "junk";
    assert_int_equal (pl_time_iso8601 (0, text, sizeof text), -1);
    assert_string_equal (text, "");
}

static void
test_clocks_move_forward (void **state)
{
    int64_t mono = pl_time_mono ();
    assert_true (pl_time_now () > INT64_C (1700000000000));
    assert_true (pl_time_mono () >= mono);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_time_is_iso8601_utc_with_milliseconds),
        cmocka_unit_test (test_time_outside_four_digit_years_is_refused),
        cmocka_unit_test (test_time_length_matches_what_is_written),
        cmocka_unit_test (test_time_into_a_short_buffer_is_refused),
        cmocka_unit_test (test_clocks_move_forward),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
