/*  test_thread - a thread's name as top -H and perf show it */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pl_thread.h"

//  The calling thread's name as the kernel shows it in /proc
static void
s_comm (char *name, size_t size)
{
    char path [64];
    snprintf (path, sizeof path, "/proc/self/task/%ld/comm", (long) syscall (SYS_gettid));
    FILE *file = fopen (path, "r");
    assert_non_null (file);
    assert_non_null (fgets (name, (int) size, file));
    fclose (file);
    name [strcspn (name, "\n")] = 0;
}

static void *
s_named (void *arg)
{
    pl_thread_name ((const char *) arg);
    char *name = (char *) calloc (1, 32);
    s_comm (name, 32);
    return name;
}

static void
test_a_thread_is_named_and_a_long_name_cut_at_the_kernels_limit (void **state)
{
    const char *names [] = { "rooms", "store-sqlite-index-writer" };
    const char *shown [] = { "rooms", "store-sqlite-in" };
    for (int index = 0; index < 2; index++) {
        pthread_t thread;
        assert_int_equal (pthread_create (&thread, NULL, s_named, (void *) names [index]), 0);
        char *name = NULL;
        assert_int_equal (pthread_join (thread, (void **) &name), 0);
        assert_string_equal (name, shown [index]);
        free (name);
    }
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_a_thread_is_named_and_a_long_name_cut_at_the_kernels_limit),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
