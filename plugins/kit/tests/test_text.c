/*  test_text - the protocol's rules for names and texts, and body fields */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "pl_body.h"
#include "pl_text.h"
#include "pl_limits.h"

static void
test_usernames_follow_the_protocol_pattern (void **state)
{
    assert_true (pl_text_username_valid ("bob"));
    assert_true (pl_text_username_valid ("A.b-c_9"));
    assert_true (pl_text_username_valid ("abcdefghijklmnopqrstuvwxyz012345"));
    assert_false (pl_text_username_valid ("ab"));
    assert_false (pl_text_username_valid ("abcdefghijklmnopqrstuvwxyz0123456"));
    assert_false (pl_text_username_valid ("bob smith"));
    assert_false (pl_text_username_valid ("b\xc3\xb6" "b"));
}

static void
test_text_of_only_white_space_has_no_content (void **state)
{
    assert_false (pl_text_has_content (""));
    assert_false (pl_text_has_content (" \t\r\n"));
    assert_false (pl_text_has_content ("\xc2\xa0\xe3\x80\x80"));    //  NBSP, ideographic space
    assert_true (pl_text_has_content ("  hi  "));
    assert_true (pl_text_has_content ("\xf0\x9f\x98\x80"));         //  an emoji
}

//  PROTOCOL.md 1.1: an emoji is 1 to 32 bytes without white space or
//  control characters
static void
test_emoji_are_short_without_space_or_controls (void **state)
{
    (void) state;
    const char *thumbs = "\xf0\x9f\x91\x8d";
    assert_true (pl_text_emoji_valid (thumbs, strlen (thumbs)));
    assert_true (pl_text_emoji_valid ("+1", 2));
    //  A family: people joined by ZERO WIDTH JOINERs, 25 bytes
    const char *family = "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d"
                         "\xf0\x9f\x91\xa7\xe2\x80\x8d\xf0\x9f\x91\xa6";
    assert_true (pl_text_emoji_valid (family, strlen (family)));
    char longest [PL_EMOJI_MAX + 1];
    memset (longest, 'x', sizeof longest);
    assert_true (pl_text_emoji_valid (longest, PL_EMOJI_MAX));
    assert_false (pl_text_emoji_valid (longest, PL_EMOJI_MAX + 1));
    assert_false (pl_text_emoji_valid ("", 0));
    assert_false (pl_text_emoji_valid ("a b", 3));
    assert_false (pl_text_emoji_valid ("a\tb", 3));
    assert_false (pl_text_emoji_valid ("\xc2\xa0", 2));           //  NO-BREAK SPACE
    assert_false (pl_text_emoji_valid ("\xe3\x80\x80", 3));       //  IDEOGRAPHIC SPACE
    assert_false (pl_text_emoji_valid ("a\x01", 2));
    assert_false (pl_text_emoji_valid ("a\x7f", 2));
    assert_false (pl_text_emoji_valid ("\xc2\x85", 2));           //  a C1 control (NEL)
    assert_false (pl_text_emoji_valid ("a\0b", 3));
    assert_false (pl_text_emoji_valid ("\xf0\x9f\x91", 3));       //  cut short
    assert_false (pl_text_emoji_valid ("\xed\xa0\x80", 3));       //  a surrogate
}

static void
test_text_length_counts_unicode_characters (void **state)
{
    assert_int_equal (pl_text_utf8_length ("abc"), 3);
    assert_int_equal (pl_text_utf8_length ("\xc3\xa9t\xc3\xa9"), 3);
    assert_int_equal (pl_text_utf8_length ("\xf0\x9f\x98\x80\xf0\x9f\x98\x80"), 2);
}

static void
test_names_compare_without_case (void **state)
{
    assert_true (pl_text_same_name ("Alice", "aLICE"));
    assert_false (pl_text_same_name ("alice", "alicia"));
    char *lower = pl_text_lower_dup ("MiXeD_9");
    assert_string_equal (lower, "mixed_9");
    free (lower);
    char name [] = "Bob.Z";
    pl_text_lower (name);
    assert_string_equal (name, "bob.z");
}

static void
test_body_fields_are_read_with_their_types_checked (void **state)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 4);
    pl_body_pack_str (&packer, "room");
    pl_body_pack_str (&packer, "general");
    pl_body_pack_str (&packer, "limit");
    msgpack_pack_uint32 (&packer, 20);
    pl_body_pack_str (&packer, "before");
    msgpack_pack_int32 (&packer, -1);
    pl_body_pack_str (&packer, "private");
    msgpack_pack_true (&packer);

    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    assert_int_equal (msgpack_unpack_next (&unpacked, buffer.data, buffer.size, NULL),
                      MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *body = &unpacked.data;
    char *room = NULL;
    assert_int_equal (pl_body_str (body, "room", &room), 1);
    assert_string_equal (room, "general");
    free (room);
    char *missing = NULL;
    assert_int_equal (pl_body_str (body, "text", &missing), 0);
    assert_null (missing);
    assert_int_equal (pl_body_str (body, "limit", &missing), -1);
    uint64_t limit = 0;
    assert_int_equal (pl_body_uint (body, "limit", &limit), 1);
    assert_int_equal (limit, 20);
    assert_int_equal (pl_body_uint (body, "before", &limit), -1);
    assert_int_equal (pl_body_int (body, "before"), -1);
    assert_true (pl_body_bool (body, "private"));
    assert_false (pl_body_bool (body, "room"));
    msgpack_unpacked_destroy (&unpacked);
    msgpack_sbuffer_destroy (&buffer);
}

static void
test_body_text_tells_a_nul_apart_from_a_wrong_type (void **state)
{
    (void) state;
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 3);
    pl_body_pack_str (&packer, "text");
    msgpack_pack_str_with_body (&packer, "a\0b", 3);
    pl_body_pack_str (&packer, "good");
    pl_body_pack_str (&packer, "hello");
    pl_body_pack_str (&packer, "number");
    msgpack_pack_uint32 (&packer, 7);

    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    assert_int_equal (msgpack_unpack_next (&unpacked, buffer.data, buffer.size, NULL),
                      MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *body = &unpacked.data;
    char *text = NULL;
    assert_int_equal (pl_body_text (body, "text", &text), -2);
    assert_null (text);
    assert_int_equal (pl_body_str (body, "text", &text), -1);
    assert_int_equal (pl_body_text (body, "number", &text), -1);
    assert_int_equal (pl_body_text (body, "absent", &text), 0);
    assert_int_equal (pl_body_text (body, "good", &text), 1);
    assert_string_equal (text, "hello");
    free (text);
    msgpack_unpacked_destroy (&unpacked);
    msgpack_sbuffer_destroy (&buffer);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_usernames_follow_the_protocol_pattern),
        cmocka_unit_test (test_text_of_only_white_space_has_no_content),
        cmocka_unit_test (test_text_length_counts_unicode_characters),
        cmocka_unit_test (test_emoji_are_short_without_space_or_controls),
        cmocka_unit_test (test_names_compare_without_case),
        cmocka_unit_test (test_body_fields_are_read_with_their_types_checked),
        cmocka_unit_test (test_body_text_tells_a_nul_apart_from_a_wrong_type),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
