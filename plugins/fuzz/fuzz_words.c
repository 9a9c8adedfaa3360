/*  =========================================================================
    fuzz_words - pl_words_each on arbitrary bytes

    Every word it gives is 1 to PL_WORDS_MAX_BYTES bytes of valid UTF-8
    with no separator in it, the count it returns is the calls it made, and
    a word is already normalized: splitting it again gives the word itself
    (a cut word included), so that a stored word and a query word compare
    byte for byte; and a word ends in a word character
    (pl_words_ends_in_word).
    =========================================================================
*/

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pl_words.h"

typedef struct {
    size_t calls;
    char word [PL_WORDS_MAX_BYTES];
    size_t size;
} s_again_t;

static void
s_again (const char *word, size_t size, void *arg)
{
    s_again_t *again = (s_again_t *) arg;
    again->calls++;
    if (size <= PL_WORDS_MAX_BYTES)
        memcpy (again->word, word, size);
    again->size = size;
}

//  Whether the size bytes at text are valid UTF-8 (strict)
static bool
s_valid (const unsigned char *text, size_t size)
{
    for (size_t at = 0; at < size; ) {
        unsigned char lead = text [at];
        size_t length = lead < 0x80? 1: lead >= 0xC2 && lead <= 0xDF? 2:
                        lead >= 0xE0 && lead <= 0xEF? 3: lead >= 0xF0 && lead <= 0xF4? 4: 0;
        if (length == 0 || at + length > size)
            return false;
        for (size_t index = 1; index < length; index++)
            if ((text [at + index] & 0xC0) != 0x80)
                return false;
        at += length;
    }
    return true;
}

static void
s_check (const char *word, size_t size, void *arg)
{
    size_t *calls = (size_t *) arg;
    (*calls)++;
    if (size == 0 || size > PL_WORDS_MAX_BYTES || !s_valid ((const unsigned char *) word, size))
        abort ();
    s_again_t again = { .calls = 0 };
    if (pl_words_each (word, size, s_again, &again) != 1 || again.calls != 1
    ||  again.size != size || memcmp (again.word, word, size) != 0)
        abort ();
    if (!pl_words_ends_in_word (word, size))
        abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    size_t calls = 0;
    size_t count = pl_words_each ((const char *) data, size, s_check, &calls);
    if (count != calls)
        abort ();
    if (pl_words_each ((const char *) data, size, NULL, NULL) != count)
        abort ();
    return 0;
}
