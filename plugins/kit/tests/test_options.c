/*  test_options - options read with their ranges checked, refusals logged */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "pl_options.h"

//  The fake host: options as "key=value" strings, and the last line logged
static const char *const *s_given;
static char s_logged [256];
static int s_log_lines;

static const char *
s_host_option (parley_ctx_t *ctx, const char *name)
{
    size_t length = strlen (name);
    for (const char *const *entry = s_given; *entry; entry++)
        if (strncmp (*entry, name, length) == 0 && (*entry) [length] == '=')
            return *entry + length + 1;
    return NULL;
}

static void
s_host_log (parley_ctx_t *ctx, int level, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (s_logged, sizeof s_logged, format, args);
    va_end (args);
    s_log_lines++;
}

static pl_options_t
s_options (const parley_host_t *host, const char *const *given)
{
    s_given = given;
    s_logged [0] = 0;
    s_log_lines = 0;
    return pl_options (host, NULL, "demo");
}

static parley_host_t
s_host (void)
{
    parley_host_t host = { .abi_major = 1, .size = sizeof (parley_host_t) };
    host.option = s_host_option;
    host.log = s_host_log;
    return host;
}

static void
test_absent_keys_give_their_fallback (void **state)
{
    parley_host_t host = s_host ();
    const char *given [] = { NULL };
    pl_options_t options = s_options (&host, given);
    assert_int_equal (pl_options_uint (&options, "workers", 2, 1, 64), 2);
    assert_int_equal (pl_options_int (&options, "offset", -3, -10, 10), -3);
    assert_true (pl_options_number (&options, "rate", 0.5, 0, 100) == 0.5);
    assert_true (pl_options_bool (&options, "strict", true));
    assert_string_equal (pl_options_str (&options, "path", "/tmp"), "/tmp");
    assert_int_equal (pl_options_refused (&options), 0);
    assert_int_equal (s_log_lines, 0);
}

static void
test_values_in_range_are_taken (void **state)
{
    parley_host_t host = s_host ();
    const char *given [] = { "workers=64", "offset=-10", "rate=2.5", "strict=off",
                             "path=/var/lib/parley", NULL };
    pl_options_t options = s_options (&host, given);
    assert_int_equal (pl_options_uint (&options, "workers", 2, 1, 64), 64);
    assert_int_equal (pl_options_int (&options, "offset", 0, -10, 10), -10);
    assert_true (pl_options_number (&options, "rate", 0, 0, 100) == 2.5);
    assert_false (pl_options_bool (&options, "strict", true));
    assert_string_equal (pl_options_str (&options, "path", NULL), "/var/lib/parley");
    assert_int_equal (pl_options_refused (&options), 0);
}

static void
test_each_bad_value_is_logged_and_counted (void **state)
{
    parley_host_t host = s_host ();
    const char *given [] = { "workers=65", "queue=-1", "offset=1x", "rate=nan",
                             "strict=maybe", "path=", "big=99999999999999999999", NULL };
    pl_options_t options = s_options (&host, given);
    assert_int_equal (pl_options_uint (&options, "workers", 2, 1, 64), 2);
    assert_string_equal (s_logged, "option demo.workers=65 refused: want a whole number "
                                   "from 1 to 64");
    assert_int_equal (pl_options_uint (&options, "queue", 256, 1, 1000), 256);
    assert_int_equal (pl_options_int (&options, "offset", 0, -10, 10), 0);
    assert_true (pl_options_number (&options, "rate", 1, 0, 100) == 1);
    assert_true (pl_options_bool (&options, "strict", true));
    assert_string_equal (s_logged, "option demo.strict=maybe refused: want true or false");
    assert_null (pl_options_str (&options, "path", NULL));
    assert_int_equal (pl_options_uint (&options, "big", 1, 0, UINT64_MAX), 1);
    assert_int_equal (pl_options_refused (&options), 7);
    assert_int_equal (s_log_lines, 7);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_absent_keys_give_their_fallback),
        cmocka_unit_test (test_values_in_range_are_taken),
        cmocka_unit_test (test_each_bad_value_is_logged_and_counted),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
