/*  =========================================================================
    test_gw_filehdr - the files endpoints' header rules, without sockets
    =========================================================================
*/

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "gw_filehdr.h"

//  Decodes value; returns the length (or -1) and the name in name
static int
s_filename (const char *value, char *name)
{
    char error [128] = "";
    int rc = gw_filehdr_filename (value, strlen (value), name, error);
    if (rc < 0)
        assert_true (strlen (error) > 0);
    return rc;
}

static void
test_filename_is_percent_decoded_utf8 (void **state)
{
    char name [GW_FILEHDR_NAME_MAX + 1];
    assert_int_equal (s_filename ("report.pdf", name), 10);
    assert_string_equal (name, "report.pdf");
    assert_int_equal (s_filename ("caf%C3%A9%20menu.txt", name), 14);
    assert_string_equal (name, "caf\xc3\xa9 menu.txt");
    assert_int_equal (s_filename ("a+b%2b", name), 4);           //  '+' is itself
    assert_string_equal (name, "a+b+");
    assert_int_equal (s_filename ("%e6%9d%b1%e4%ba%ac", name), 6);
    //  Raw UTF-8 is taken too, as valid UTF-8
    assert_int_equal (s_filename ("\xc3\xa9t\xc3\xa9", name), 5);
}

static void
test_filename_refuses_what_the_protocol_forbids (void **state)
{
    char name [GW_FILEHDR_NAME_MAX + 1];
    assert_int_equal (s_filename ("", name), -1);                //  empty
    assert_int_equal (s_filename ("a%2Fb", name), -1);           //  '/'
    assert_int_equal (s_filename ("a/b", name), -1);
    assert_int_equal (s_filename ("a%00b", name), -1);           //  NUL
    assert_int_equal (s_filename ("a%0Ab", name), -1);           //  LF
    assert_int_equal (s_filename ("a%7Fb", name), -1);           //  DEL
    assert_int_equal (s_filename ("a%C2%85b", name), -1);        //  NEL, C1
    assert_int_equal (s_filename ("a%C2%A0b", name), 4);         //  NBSP is not C1
    assert_int_equal (s_filename ("%C3", name), -1);             //  cut sequence
    assert_int_equal (s_filename ("%FF", name), -1);             //  not UTF-8
    assert_int_equal (s_filename ("%C0%AF", name), -1);          //  overlong '/'
    assert_int_equal (s_filename ("%ED%A0%80", name), -1);       //  surrogate
    assert_int_equal (s_filename ("50%", name), -1);             //  bare '%'
    assert_int_equal (s_filename ("50%4", name), -1);
    assert_int_equal (s_filename ("50%zz", name), -1);
    //  255 bytes decoded pass, 256 do not, however they were written
    char value [3 * 256 + 1];
    memset (value, 'a', 255);
    value [255] = 0;
    assert_int_equal (s_filename (value, name), 255);
    value [255] = 'a';
    value [256] = 0;
    assert_int_equal (s_filename (value, name), -1);
    for (int index = 0; index < 256; index++)
        memcpy (value + 3 * index, "%41", 3);
    value [3 * 256] = 0;
    assert_int_equal (s_filename (value, name), -1);
    value [3 * 255] = 0;
    assert_int_equal (s_filename (value, name), 255);
}

static void
test_id_has_its_shape (void **state)
{
    char id [GW_FILEHDR_ID_SIZE + 1];
    const char *good = "/files/AAAAAAAAAAAAAAAAAAAAAA";
    assert_true (gw_filehdr_file_path (good, strlen (good), id));
    assert_string_equal (id, "AAAAAAAAAAAAAAAAAAAAAA");
    const char *mixed = "/files/aZ09-_aZ09-_aZ09-_";
    assert_false (gw_filehdr_file_path (mixed, strlen (mixed), id));   //  24 characters
    const char *bad [] = {
        "/files/", "/files/AAAAAAAAAAAAAAAAAAAAA", "/files/AAAAAAAAAAAAAAAAAAAAAAA",
        "/files/AAAAAAAAAAAAAAAAAAAAA=", "/files/AAAAAAAAAAAAAAAAAAAAA/",
        "/files/AAAAAAAAAAAAAAAAAAAAA.", "/filesAAAAAAAAAAAAAAAAAAAAAAA", NULL
    };
    for (int index = 0; bad [index]; index++)
        assert_false (gw_filehdr_file_path (bad [index], strlen (bad [index]), id));
    assert_true (gw_filehdr_files_path ("/files", 6));
    assert_true (gw_filehdr_files_path ("/files/x", 8));
    assert_false (gw_filehdr_files_path ("/filesx", 7));
    assert_false (gw_filehdr_files_path ("/file", 5));
}

static void
test_content_length_is_digits_only (void **state)
{
    uint64_t size = 0;
    assert_int_equal (gw_filehdr_content_length ("10485760", 8, &size), 0);
    assert_int_equal (size, 10485760);
    assert_int_equal (gw_filehdr_content_length ("0", 1, &size), 0);
    assert_int_equal (size, 0);
    assert_int_equal (gw_filehdr_content_length ("9999999999999999999", 19, &size), 0);
    assert_int_equal (gw_filehdr_content_length ("99999999999999999999", 20, &size), -1);
    assert_int_equal (gw_filehdr_content_length ("", 0, &size), -1);
    assert_int_equal (gw_filehdr_content_length ("12abc", 5, &size), -1);
    assert_int_equal (gw_filehdr_content_length ("-1", 2, &size), -1);
    assert_int_equal (gw_filehdr_content_length ("+1", 2, &size), -1);
    assert_int_equal (gw_filehdr_content_length ("1,1", 3, &size), -1);
    assert_int_equal (gw_filehdr_content_length (" 1", 2, &size), -1);
}

static void
test_bearer_token (void **state)
{
    const char *token = NULL;
    assert_int_equal (gw_filehdr_bearer ("Bearer abc.DEF-1", 16, &token), 9);
    assert_memory_equal (token, "abc.DEF-1", 9);
    assert_int_equal (gw_filehdr_bearer ("bearer   xyz  ", 14, &token), 3);
    assert_memory_equal (token, "xyz", 3);
    assert_int_equal (gw_filehdr_bearer ("Bearer ", 7, &token), -1);
    assert_int_equal (gw_filehdr_bearer ("Basic abc", 9, &token), -1);
    assert_int_equal (gw_filehdr_bearer ("Bearer a b", 10, &token), -1);
    assert_int_equal (gw_filehdr_bearer ("Bearerabc", 9, &token), -1);
    char long_token [7 + GW_FILEHDR_TOKEN_MAX + 2];
    memcpy (long_token, "Bearer ", 7);
    memset (long_token + 7, 'x', GW_FILEHDR_TOKEN_MAX + 1);
    assert_int_equal (gw_filehdr_bearer (long_token, 7 + GW_FILEHDR_TOKEN_MAX, &token),
                      GW_FILEHDR_TOKEN_MAX);
    assert_int_equal (gw_filehdr_bearer (long_token, 8 + GW_FILEHDR_TOKEN_MAX, &token), -1);
}

static void
test_type_and_disposition (void **state)
{
    assert_true (gw_filehdr_type_valid ("image/png", 9));
    assert_true (gw_filehdr_type_valid ("text/plain; charset=utf-8", 25));
    assert_false (gw_filehdr_type_valid ("png", 3));
    assert_false (gw_filehdr_type_valid ("text/plain\r\nX: y", 16));
    assert_false (gw_filehdr_type_valid ("", 0));
    assert_true (gw_filehdr_inline ("image/png"));
    assert_true (gw_filehdr_inline ("IMAGE/JPEG"));
    assert_true (gw_filehdr_inline ("image/webp; q=1"));
    assert_true (gw_filehdr_inline ("image/gif"));
    assert_false (gw_filehdr_inline ("image/svg+xml"));
    assert_false (gw_filehdr_inline ("image/pngx"));
    assert_false (gw_filehdr_inline ("text/html"));
    char out [GW_FILEHDR_DISPOSITION_MAX];
    const char *name = "caf\xc3\xa9 \"x\";y%.txt";
    gw_filehdr_disposition ("text/html", name, strlen (name), out);
    assert_string_equal (out, "attachment; filename*=UTF-8''caf%C3%A9%20%22x%22%3By%25.txt");
    gw_filehdr_disposition ("image/png", "a b.png", 7, out);
    assert_string_equal (out, "inline; filename*=UTF-8''a%20b.png");
    //  The longest name fits
    char longest [GW_FILEHDR_NAME_MAX];
    memset (longest, 0xFF, sizeof longest);
    size_t size = gw_filehdr_disposition (NULL, longest, sizeof longest, out);
    assert_int_equal (size, strlen (out));
    assert_true (size < GW_FILEHDR_DISPOSITION_MAX);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_filename_is_percent_decoded_utf8),
        cmocka_unit_test (test_filename_refuses_what_the_protocol_forbids),
        cmocka_unit_test (test_id_has_its_shape),
        cmocka_unit_test (test_content_length_is_digits_only),
        cmocka_unit_test (test_bearer_token),
        cmocka_unit_test (test_type_and_disposition),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
