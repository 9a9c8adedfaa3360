/*  test_config - the argument list pl_config builds from a file and a command line */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include "pl_config.h"

static const struct option s_options [] = {
    { "listen",  required_argument, NULL, 0 },
    { "bind",    required_argument, NULL, 0 },
    { "option",  required_argument, NULL, 0 },
    { "verbose", no_argument,       NULL, 0 },
    { NULL, 0, NULL, 0 }
};

//  Writes text to a new file; returns its path (caller frees)
static char *
s_file (const char *text)
{
    char *path = strdup ("/tmp/test_config_XXXXXX");
    int handle = mkstemp (path);
    assert_true (handle >= 0);
    assert_int_equal (write (handle, text, strlen (text)), (ssize_t) strlen (text));
    close (handle);
    return path;
}

//  The built argument list after argv [0], joined by spaces
static char *
s_joined (pl_config_t *config)
{
    char *joined = strdup ("");
    for (int index = 1; index < pl_config_argc (config); index++) {
        char *longer = zsys_sprintf ("%s%s%s", joined, index > 1 ? " " : "",
                                     pl_config_argv (config) [index]);
        free (joined);
        joined = longer;
    }
    assert_null (pl_config_argv (config) [pl_config_argc (config)]);
    return joined;
}

//  Builds the list for a file and a command line; returns it joined, or
//  "refused" when pl_config_load refuses
static char *
s_build (const char *program, const char *text, int argc, char **argv)
{
    char *path = s_file (text);
    char *args [16] = { (char *) program, "--config", path };
    for (int index = 0; index < argc; index++)
        args [3 + index] = argv [index];
    pl_config_t *config = pl_config_new (program, s_options);
    char *joined = pl_config_load (config, argc + 3, args) == 0 ? s_joined (config)
                                                               : strdup ("refused");
    pl_config_destroy (&config);
    unlink (path);
    free (path);
    return joined;
}

static void
test_the_file_comes_first_and_the_command_line_wins (void **state)
{
    const char *text = "listen = a:1\nverbose = false\nbind = x\nbind = y\n"
                       "rooms/msg_rate = 20\nrooms\n    max_owned = 3\n";
    char *none [] = { NULL };
    char *joined = s_build ("parley", text, 0, none);
    assert_string_equal (joined, "--listen a:1 --bind x --bind y --option rooms.msg_rate=20 "
                                 "--option rooms.max_owned=3");
    free (joined);
    //  An abbreviation and --name=value are the options they stand for
    char *command_line [] = { "--lis=b:2", "--bind", "z", "--option", "rooms.msg_rate=5", "--verbose" };
    joined = s_build ("parley", text, 6, command_line);
    assert_string_equal (joined, "--option rooms.max_owned=3 --listen b:2 --bind z "
                                 "--option rooms.msg_rate=5 --verbose");
    free (joined);
}

static void
test_a_program_reads_its_sections_and_its_instances (void **state)
{
    const char *text = "verbose = true\nparley-gw\n    listen = g:1\n"
                       "parley-plugin\n    bind = p\nparley-plugin@rooms\n    rooms/msg_rate = 9\n";
    char *rooms [] = { "rooms" };
    char *joined = s_build ("parley-plugin", text, 1, rooms);
    assert_string_equal (joined, "--verbose --bind p --option rooms.msg_rate=9 rooms");
    free (joined);
    char *pm [] = { "pm" };
    joined = s_build ("parley-plugin", text, 1, pm);
    assert_string_equal (joined, "--verbose --bind p pm");
    free (joined);
}

static void
test_bad_keys_are_refused (void **state)
{
    const char *bad [] = {
        "lisen = a:1\n", "verbose = maybe\n", "listen\n", "config = other\n",
        "rooms/a/b = 1\n", "a = 1\n    b = 2\n", "log-format = xml\n", "x = \"1\n"
    };
    char *none [] = { NULL };
    for (size_t index = 0; index < sizeof bad / sizeof bad [0]; index++) {
        char *joined = s_build ("parley", bad [index], 0, none);
        assert_string_equal (joined, "refused");
        free (joined);
    }
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_the_file_comes_first_and_the_command_line_wins),
        cmocka_unit_test (test_a_program_reads_its_sections_and_its_instances),
        cmocka_unit_test (test_bad_keys_are_refused),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
