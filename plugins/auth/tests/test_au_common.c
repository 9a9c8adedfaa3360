/*  =========================================================================
    test_au_common - the passwords auth refuses (au_common): the built-in
    list of common passwords, case, the username, the lengths, a list of
    one's own, files that cannot serve
    =========================================================================
*/

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "au_common.h"
#include "pl_limits.h"

#include <czmq.h>

static void
test_builtin_list_holds_ten_thousand_passwords (void **state)
{
    (void) state;
    au_common_t *common = au_common_new (NULL, NULL, 0);
    assert_non_null (common);
    //  10,000 lines; a few differ only by case and count once
    assert_true (au_common_size (common) > 9900);
    assert_true (au_common_size (common) <= 10000);
    au_common_destroy (&common);
    assert_null (common);
    au_common_destroy (&common);        //  twice is harmless
}

static void
test_common_passwords_are_found_without_regard_to_case (void **state)
{
    (void) state;
    au_common_t *common = au_common_new (NULL, NULL, 0);
    assert_non_null (common);
    assert_true (au_common_has (common, "12345678", 8));
    assert_true (au_common_has (common, "password", 8));
    assert_true (au_common_has (common, "PassWord", 8));
    assert_true (au_common_has (common, "QWERTY123", 9));
    //  The last line of the list is in it too
    assert_true (au_common_has (common, "brady", 5));
    assert_false (au_common_has (common, "correct horse battery", 21));
    assert_false (au_common_has (common, "12345678x", 9));      //  nor one a letter longer
    assert_false (au_common_has (common, "12345678\0x", 10));   //  a NUL is never listed
    assert_false (au_common_has (common, "", 0));
    //  The header's comment lines are not passwords
    const char *header = "# the 10,000 most common passwords, most common first, one a line (ascii).";
    assert_false (au_common_has (common, header, strlen (header)));
    au_common_destroy (&common);
}

static void
test_weak_says_why_in_order (void **state)
{
    (void) state;
    au_common_t *common = au_common_new (NULL, NULL, 0);
    assert_non_null (common);
    assert_string_equal (au_common_weak (common, "alice", "short", 5),
                         "A password has at least 8 bytes.");
    char *long_one = (char *) malloc (PL_PASSWORD_MAX + 1);
    memset (long_one, 'x', PL_PASSWORD_MAX + 1);
    assert_string_equal (au_common_weak (common, "alice", long_one, PL_PASSWORD_MAX + 1),
                         "A password has at most 1024 bytes.");
    assert_null (au_common_weak (common, "alice", long_one, PL_PASSWORD_MAX));
    free (long_one);
    assert_string_equal (au_common_weak (common, "Alice.Long", "aLICE.lONG", 10),
                         "A password must not be the username.");
    assert_string_equal (au_common_weak (common, "alice", "12345678", 8),
                         "This password is one of the most common ones; choose another.");
    //  A name that is itself a common password: the username is said first
    assert_string_equal (au_common_weak (common, "password", "PASSWORD", 8),
                         "A password must not be the username.");
    assert_null (au_common_weak (common, "alice", "alice-in-chains-1973", 20));
    assert_null (au_common_weak (common, NULL, "alice-in-chains-1973", 20));
    assert_null (au_common_weak (common, "alice", "alicealice", 10));
    au_common_destroy (&common);
}

static void
test_own_list_replaces_the_builtin_one (void **state)
{
    (void) state;
    char path [] = "/tmp/test_au_common_XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    const char *list = "# my list\r\nHunter2Hunter2\r\n\r\nsummer-2026\nsummer-2026\nlast-no-newline";
    assert_int_equal (write (fd, list, strlen (list)), (ssize_t) strlen (list));
    close (fd);
    au_common_t *common = au_common_new (path, NULL, 0);
    assert_non_null (common);
    assert_int_equal (au_common_size (common), 3);
    assert_true (au_common_has (common, "hunter2hunter2", 14));
    assert_true (au_common_has (common, "SUMMER-2026", 11));
    assert_true (au_common_has (common, "last-no-newline", 15));
    assert_false (au_common_has (common, "12345678", 8));      //  not the built-in one
    assert_false (au_common_has (common, "# my list", 9));
    au_common_destroy (&common);
    unlink (path);
}

static void
test_unreadable_or_empty_list_is_refused_with_a_reason (void **state)
{
    (void) state;
    char error [128] = "";
    assert_null (au_common_new ("/nonexistent/common.txt", error, sizeof error));
    assert_string_equal (error, "No such file or directory");
    char path [] = "/tmp/test_au_common_XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    assert_int_equal (write (fd, "# only a comment\n\n", 18), 18);
    close (fd);
    assert_null (au_common_new (path, error, sizeof error));
    assert_string_equal (error, "it holds no password");
    assert_null (au_common_new (path, NULL, 0));               //  no room for a reason
    unlink (path);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_builtin_list_holds_ten_thousand_passwords),
        cmocka_unit_test (test_common_passwords_are_found_without_regard_to_case),
        cmocka_unit_test (test_weak_says_why_in_order),
        cmocka_unit_test (test_own_list_replaces_the_builtin_one),
        cmocka_unit_test (test_unreadable_or_empty_list_is_refused_with_a_reason),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
