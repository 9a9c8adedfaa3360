/*  test_words - the words of a text as search sees them (PROTOCOL.md 1.1,
    "Search"), and their agreement with SQLite's FTS5 tokenizer */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "pl_words.h"

#define S_WORDS_MAX 64

//  The words one call gave, each NUL-terminated
typedef struct {
    char words [S_WORDS_MAX][PL_WORDS_MAX_BYTES + 1];
    size_t count;
} s_found_t;

static void
s_collect (const char *word, size_t size, void *arg)
{
    s_found_t *found = (s_found_t *) arg;
    assert_true (size > 0 && size <= PL_WORDS_MAX_BYTES);
    if (found->count < S_WORDS_MAX) {
        memcpy (found->words [found->count], word, size);
        found->words [found->count++][size] = 0;
    }
}

//  Asserts the words of text are expected (NULL-terminated)
static void
s_assert_words (const char *text, const char *const *expected)
{
    s_found_t found = { .count = 0 };
    size_t count = pl_words_each (text, strlen (text), s_collect, &found);
    size_t expected_count = 0;
    while (expected [expected_count])
        expected_count++;
    if (count != expected_count || found.count != count)
        fail_msg ("'%s': %zu words, expected %zu", text, count, expected_count);
    for (size_t index = 0; index < count; index++)
        assert_string_equal (found.words [index], expected [index]);
}

static void
test_letters_and_digits_make_words_and_everything_else_separates (void **state)
{
    (void) state;
    s_assert_words ("Hello, world! 42 times_over a-b", (const char *const []) {
        "hello", "world", "42", "times", "over", "a", "b", NULL });
    s_assert_words ("", (const char *const []) { NULL });
    s_assert_words (" ,.;!? *** ", (const char *const []) { NULL });
    s_assert_words ("emoji\xF0\x9F\x98\x80inside", (const char *const []) {
        "emoji", "inside", NULL });
}

static void
test_case_and_accents_go_in_every_script_of_the_table (void **state)
{
    (void) state;
    s_assert_words ("Café ÉCOLE Straße", (const char *const []) {
        "cafe", "ecole", "straße", NULL });
    s_assert_words ("ŁÓDŹ Ærø Ỳên", (const char *const []) { "łodz", "ærø", "yen", NULL });
    s_assert_words ("Привет ЁЛКА", (const char *const []) { "привет", "ёлка", NULL });
    s_assert_words ("ΚΑΛΗΜΕΡΑ", (const char *const []) { "καλημερα", NULL });
    //  Combining marks leave the word (decomposed "é")
    s_assert_words ("e\xCC\x81t\xC3\xA9", (const char *const []) { "ete", NULL });
}

static void
test_text_without_spaces_is_one_word (void **state)
{
    (void) state;
    s_assert_words ("東京タワー に", (const char *const []) { "東京タワー", "に", NULL });
    s_assert_words ("안녕하세요", (const char *const []) { "안녕하세요", NULL });
}

static void
test_a_long_word_is_cut_at_a_character_boundary (void **state)
{
    (void) state;
    char text [200];
    memset (text, 'A', 70);
    text [70] = 0;
    char cut [65];
    memset (cut, 'a', 64);
    cut [64] = 0;
    s_assert_words (text, (const char *const []) { cut, NULL });
    //  63 bytes then a two-byte letter: the letter does not fit, the rest
    //  of the word is skipped, and the next word is whole
    memset (text, 'b', 63);
    strcpy (text + 63, "жж next");
    char cut63 [64];
    memset (cut63, 'b', 63);
    cut63 [63] = 0;
    s_assert_words (text, (const char *const []) { cut63, "next", NULL });
}

static void
test_invalid_utf8_separates_words (void **state)
{
    (void) state;
    s_assert_words ("ab\xFF" "cd\xC0\xAF" "ef\xED\xA0\x80gh\xE2\x82",
                    (const char *const []) { "ab", "cd", "ef", "gh", NULL });
    //  The text is read to its size only, NUL bytes included
    s_found_t found = { .count = 0 };
    assert_int_equal (pl_words_each ("one\0two", 7, s_collect, &found), 2);
    assert_int_equal (pl_words_each ("one two", 3, NULL, NULL), 1);
}

static void
test_a_trailing_letter_or_digit_ends_in_a_word (void **state)
{
    (void) state;
    assert_true (pl_words_ends_in_word ("caf", 3));
    assert_true (pl_words_ends_in_word ("café", strlen ("café")));
    assert_true (pl_words_ends_in_word ("東京", strlen ("東京")));
    assert_false (pl_words_ends_in_word ("caf ", 4));
    assert_false (pl_words_ends_in_word ("", 0));
    assert_false (pl_words_ends_in_word ("a\xA9", 2));
    assert_false (pl_words_ends_in_word ("x\xF0\x9F\x98\x80", 5));
}

//  The terms SQLite's tokenizer finds in text, in order, into found
static void
s_sqlite_words (sqlite3 *db, const char *text, s_found_t *found)
{
    found->count = 0;
    sqlite3_stmt *stmt;
    assert_int_equal (sqlite3_exec (db, "DELETE FROM t", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_prepare_v2 (db, "INSERT INTO t (rowid, x) VALUES (1, ?)", -1,
                                          &stmt, NULL), SQLITE_OK);
    sqlite3_bind_text (stmt, 1, text, -1, SQLITE_STATIC);
    assert_int_equal (sqlite3_step (stmt), SQLITE_DONE);
    sqlite3_finalize (stmt);
    assert_int_equal (sqlite3_prepare_v2 (db, "SELECT term FROM v ORDER BY offset", -1,
                                          &stmt, NULL), SQLITE_OK);
    while (sqlite3_step (stmt) == SQLITE_ROW && found->count < S_WORDS_MAX) {
        const char *term = (const char *) sqlite3_column_text (stmt, 0);
        snprintf (found->words [found->count++], PL_WORDS_MAX_BYTES + 1, "%s", term);
    }
    sqlite3_finalize (stmt);
}

//  A pseudo-random text of letters, digits, marks and separators from
//  every script of the table
static size_t
s_random_text (uint32_t *seed, char *text)
{
    static const char *const pieces [] = {
        "a", "Z", "7", "é", "É", "ß", "ø", "Ł", "ǅ", "ẞ", "Ấ", "\xCC\x81", "α", "Σ", "ς",
        "Ж", "ё", "Ա", "ש", "ع", "٣", "न", "\xE0\xA5\x8D", "ก", "한", "カ", "ー", "の", "東",
        "ｱ", "Ａ", " ", ",", "-", "_", "'", "\xE2\x80\x99", "\xF0\x9F\x98\x80", "\xE3\x80\x82", "*",
    };
    size_t size = 0, count = sizeof pieces / sizeof pieces [0];
    for (int index = 0; index < 24; index++) {
        *seed = *seed * 1103515245u + 12345u;
        const char *piece = pieces [(*seed >> 16) % count];
        memcpy (text + size, piece, strlen (piece));
        size += strlen (piece);
    }
    text [size] = 0;
    return size;
}

static void
test_the_words_are_sqlite_fts5_unicode61_remove_diacritics_2s (void **state)
{
    (void) state;
    sqlite3 *db;
    assert_int_equal (sqlite3_open (":memory:", &db), SQLITE_OK);
    assert_int_equal (sqlite3_exec (db,
        "CREATE VIRTUAL TABLE t USING fts5(x, tokenize='unicode61 remove_diacritics 2');"
        "CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance');", NULL, NULL, NULL), SQLITE_OK);
    uint32_t seed = 15;
    char text [24 * 4 + 1];
    for (int round = 0; round < 2000; round++) {
        size_t size = s_random_text (&seed, text);
        s_found_t ours = { .count = 0 }, theirs;
        pl_words_each (text, size, s_collect, &ours);
        s_sqlite_words (db, text, &theirs);
        if (ours.count != theirs.count)
            fail_msg ("'%s': %zu words, SQLite %zu", text, ours.count, theirs.count);
        for (size_t index = 0; index < ours.count; index++)
            assert_string_equal (ours.words [index], theirs.words [index]);
    }
    sqlite3_close (db);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_letters_and_digits_make_words_and_everything_else_separates),
        cmocka_unit_test (test_case_and_accents_go_in_every_script_of_the_table),
        cmocka_unit_test (test_text_without_spaces_is_one_word),
        cmocka_unit_test (test_a_long_word_is_cut_at_a_character_boundary),
        cmocka_unit_test (test_invalid_utf8_separates_words),
        cmocka_unit_test (test_a_trailing_letter_or_digit_ends_in_a_word),
        cmocka_unit_test (test_the_words_are_sqlite_fts5_unicode61_remove_diacritics_2s),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
