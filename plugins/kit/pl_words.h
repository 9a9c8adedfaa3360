/*  =========================================================================
    pl_words - the words of a text as search sees them (PROTOCOL.md 1.1,
    "Search")

    A word is a run of Unicode letters and digits; everything else
    separates words (text with no spaces, such as Chinese, is not split
    further). Each word is normalized: case-folded (lower case) and accents
    removed, as SQLite's FTS5 tokenizer 'unicode61 remove_diacritics 2'
    does. The table of which code points are part of a word and what each
    folds to is read from that tokenizer itself (pl_words_gen.py writes
    pl_words_table.inc), so that the words store-sqlite's index holds and
    the words a query asks for agree, and store-mongo's `words` are the
    same words.

        size_t count = pl_words_each (text, size, on_word, &state);

    Plain functions of their input: no state, no allocation (the scratch
    buffer is on the stack). libc only.
    =========================================================================
*/

#ifndef PL_WORDS_H_INCLUDED
#define PL_WORDS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  A word longer than this many bytes once normalized is cut there, at a
//  character boundary
#define PL_WORDS_MAX_BYTES 64

//  Called once per word with its normalized UTF-8 bytes (not
//  NUL-terminated), which are valid for the call only
typedef void (pl_words_fn) (const char *word, size_t size, void *arg);

//  Splits the size bytes of UTF-8 text into words (see above) and calls
//  word_fn once per word, in order, with a pointer into a scratch buffer of
//  pl_words valid for the call only. Invalid UTF-8 bytes separate words.
//  Returns the number of words.
size_t
    pl_words_each (const char *text, size_t size, pl_words_fn *word_fn, void *arg);

//  Whether the last character of the size bytes of text is part of a word
//  (a query's '*' right after it marks that word as a prefix)
bool
    pl_words_ends_in_word (const char *text, size_t size);

#ifdef __cplusplus
}
#endif

#endif
