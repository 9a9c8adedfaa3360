/*  test_mention - the members a message mentions (PROTOCOL.md 1.1) */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>

#include "pl_limits.h"
#include "pl_mention.h"

//  The members, as registered; NULL-terminated
typedef struct {
    const char *const *names;
    int lookups;                    //  find's calls
} s_room_t;

static const char *
s_find (void *arg, const char *name, size_t size)
{
    s_room_t *room = (s_room_t *) arg;
    room->lookups++;
    for (const char *const *member = room->names; *member; member++)
        if (strlen (*member) == size && strncasecmp (*member, name, size) == 0)
            return *member;
    return NULL;
}

//  Asserts the mentions of text among names are expected (a NULL-terminated
//  list of names as registered)
static void
s_assert_mentions (const char *const *names, const char *text, const char *const *expected)
{
    s_room_t room = { names, 0 };
    size_t count;
    const char **found = pl_mention_scan (text, strlen (text), s_find, &room, &count);
    size_t expected_count = 0;
    while (expected [expected_count])
        expected_count++;
    if (count != expected_count)
        fail_msg ("'%s': %zu mentions, expected %zu", text, count, expected_count);
    for (size_t index = 0; index < count; index++)
        assert_string_equal (found [index], expected [index]);
    if (count == 0)
        assert_null (found);
    free ((void *) found);
}

static const char *const s_members [] = { "alice", "Bob", "bob.smith", "carol-ann", NULL };
static const char *const s_none [] = { NULL };

static void
test_a_name_after_an_at_sign_mentions_the_member_as_registered (void **state)
{
    const char *const bob [] = { "Bob", NULL };
    s_assert_mentions (s_members, "@bob", bob);
    s_assert_mentions (s_members, "hi @BOB", bob);
    s_assert_mentions (s_members, "hi @bob!", bob);
    s_assert_mentions (s_members, "(@bob)", bob);
    s_assert_mentions (s_members, "@bob\nnext line", bob);
    s_assert_mentions (s_members, "\xc3\xa9@bob", bob);     //  after a non-ASCII letter
    s_assert_mentions (s_members, "@@bob", bob);
}

static void
test_a_name_ends_at_anything_but_a_letter_digit_underscore_or_hyphen (void **state)
{
    const char *const bob [] = { "Bob", NULL };
    //  '.' and ',' end a name: "@bob." mentions bob
    s_assert_mentions (s_members, "thanks @bob.", bob);
    s_assert_mentions (s_members, "@bob, hi", bob);
    s_assert_mentions (s_members, "@bob's idea", bob);
    //  a letter, digit, '_' or '-' goes on: another name, nobody here
    s_assert_mentions (s_members, "@bobby", s_none);
    s_assert_mentions (s_members, "@bob2", s_none);
    s_assert_mentions (s_members, "@bob_", s_none);
    s_assert_mentions (s_members, "@bob-x", s_none);
}

static void
test_an_at_sign_inside_a_word_mentions_nobody (void **state)
{
    //  An e-mail address, and '@' after '.', '_', '-' or a digit
    s_assert_mentions (s_members, "write to alice@bob.com", s_none);
    s_assert_mentions (s_members, "x.@bob y_@bob z-@bob 9@bob", s_none);
    s_assert_mentions (s_members, "@", s_none);
    s_assert_mentions (s_members, "@ bob", s_none);
    s_assert_mentions (s_members, "", s_none);
    s_assert_mentions (s_members, "@nobody here", s_none);
}

static void
test_the_longest_member_name_that_fits_wins (void **state)
{
    const char *const smith [] = { "bob.smith", NULL };
    const char *const bob [] = { "Bob", NULL };
    s_assert_mentions (s_members, "@bob.smith", smith);
    s_assert_mentions (s_members, "@Bob.Smith, hello", smith);
    //  "bob.smithy" is nobody, and "bob" is followed by '.': bob
    s_assert_mentions (s_members, "@bob.smithy", bob);
    const char *const only_bob [] = { "Bob", NULL };
    s_assert_mentions (only_bob, "@bob.smith", bob);
    const char *const hyphen [] = { "carol-ann", NULL };
    s_assert_mentions (s_members, "@carol-ann", hyphen);
    s_assert_mentions (s_members, "@carol", s_none);
}

static void
test_members_come_in_order_of_first_mention_each_once (void **state)
{
    const char *const expected [] = { "carol-ann", "Bob", "alice", NULL };
    s_assert_mentions (s_members, "@carol-ann @bob @CAROL-ANN @alice @Bob", expected);
}

static void
test_the_text_is_read_to_its_size_only (void **state)
{
    s_room_t room = { s_members, 0 };
    size_t count;
    //  "@bobby" cut after "@bob": bob, at the end of the text
    const char **found = pl_mention_scan ("@bobby", 4, s_find, &room, &count);
    assert_int_equal (count, 1);
    assert_string_equal (found [0], "Bob");
    free ((void *) found);
    //  A NUL inside the text ends a name like any other character
    found = pl_mention_scan ("@bob\0@alice", 11, s_find, &room, &count);
    assert_int_equal (count, 2);
    assert_string_equal (found [1], "alice");
    free ((void *) found);
    assert_null (pl_mention_scan (NULL, 0, s_find, &room, &count));
    assert_int_equal (count, 0);
}

static void
test_candidates_are_bounded_by_the_longest_user_name (void **state)
{
    //  A long run of letters after '@' costs no lookup (no candidate ends
    //  where a name may end), and a long run of dots at most
    //  PL_USERNAME_MAX lookups per '@'
    char text [4002];
    text [0] = '@';
    memset (text + 1, 'a', 4000);
    text [4001] = 0;
    s_room_t room = { s_members, 0 };
    size_t count;
    assert_null (pl_mention_scan (text, strlen (text), s_find, &room, &count));
    assert_int_equal (room.lookups, 0);
    memset (text + 1, '.', 4000);
    room.lookups = 0;
    assert_null (pl_mention_scan (text, strlen (text), s_find, &room, &count));
    assert_true (room.lookups <= PL_USERNAME_MAX);
}

static void
test_many_members_mentioned_once_each (void **state)
{
    //  500 members, each mentioned twice: 500 mentions, in order
    static char names [500][8];
    static const char *members [501];
    char text [500 * 2 * 9 + 1] = "";
    size_t used = 0;
    for (int index = 0; index < 500; index++) {
        snprintf (names [index], sizeof names [index], "u%03d", index);
        members [index] = names [index];
    }
    members [500] = NULL;
    for (int round = 0; round < 2; round++)
        for (int index = 0; index < 500; index++)
            used += (size_t) snprintf (text + used, sizeof text - used, "@U%03d ", index);
    s_room_t room = { members, 0 };
    size_t count;
    const char **found = pl_mention_scan (text, used, s_find, &room, &count);
    assert_int_equal (count, 500);
    for (int index = 0; index < 500; index++)
        assert_ptr_equal (found [index], members [index]);
    free ((void *) found);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_a_name_after_an_at_sign_mentions_the_member_as_registered),
        cmocka_unit_test (test_a_name_ends_at_anything_but_a_letter_digit_underscore_or_hyphen),
        cmocka_unit_test (test_an_at_sign_inside_a_word_mentions_nobody),
        cmocka_unit_test (test_the_longest_member_name_that_fits_wins),
        cmocka_unit_test (test_members_come_in_order_of_first_mention_each_once),
        cmocka_unit_test (test_the_text_is_read_to_its_size_only),
        cmocka_unit_test (test_candidates_are_bounded_by_the_longest_user_name),
        cmocka_unit_test (test_many_members_mentioned_once_each),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
