/*  =========================================================================
    pl_words - the words of a text as search sees them
    =========================================================================
*/

#include "pl_words.h"

#include <stdint.h>
#include <string.h>

#include "pl_words_table.inc"

#define S_COUNT(table) (sizeof (table) / sizeof ((table) [0]))

//  Marks a byte that starts no valid UTF-8 sequence
#define S_INVALID UINT32_MAX

//  Decodes the character at text (size bytes left, at least one): its code
//  point, or S_INVALID for a byte that starts no valid sequence (overlong
//  forms, surrogates and points past U+10FFFF included); *length_p gets the
//  bytes it took (1 for an invalid byte, so that it separates words)
static uint32_t
s_decode (const unsigned char *text, size_t size, size_t *length_p)
{
    *length_p = 1;
    unsigned char lead = text [0];
    if (lead < 0x80)
        return lead;
    size_t length = lead >= 0xF0 && lead <= 0xF4? 4: lead >= 0xE0? 3: lead >= 0xC2? 2: 0;
    if (lead > 0xF4 || length == 0 || length > size)
        return S_INVALID;
    uint32_t point = lead & (0x7F >> length);
    for (size_t index = 1; index < length; index++) {
        if ((text [index] & 0xC0) != 0x80)
            return S_INVALID;
        point = (point << 6) | (text [index] & 0x3F);
    }
    static const uint32_t least [5] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (point < least [length] || point > 0x10FFFF || (point >= 0xD800 && point <= 0xDFFF))
        return S_INVALID;
    *length_p = length;
    return point;
}

//  The index of the entry of table (count pairs sorted by their first
//  value) whose range holds point, or count
static size_t
s_find (const uint32_t (*table) [2], size_t count, uint32_t point)
{
    size_t low = 0, high = count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (table [middle][1] < point)
            low = middle + 1;
        else
        if (table [middle][0] > point)
            high = middle;
        else
            return middle;
    }
    return count;
}

static bool
s_word_point (uint32_t point)
{
    if (point < 0x80)
        return (point >= 'a' && point <= 'z') || (point >= 'A' && point <= 'Z')
            || (point >= '0' && point <= '9');
    return s_find (s_word_ranges, S_COUNT (s_word_ranges), point) < S_COUNT (s_word_ranges);
}

//  What a character of a word folds to: lower case without its accent, or
//  0 for a mark that leaves the word
static uint32_t
s_fold (uint32_t point)
{
    if (point < 0x80)
        return point >= 'A' && point <= 'Z'? point + ('a' - 'A'): point;
    //  s_folds maps single points: its pairs read as ranges of one point
    size_t count = S_COUNT (s_folds);
    size_t index = 0, high = count;
    while (index < high) {
        size_t middle = index + (high - index) / 2;
        if (s_folds [middle][0] < point)
            index = middle + 1;
        else
            high = middle;
    }
    return index < count && s_folds [index][0] == point? s_folds [index][1]: point;
}

//  Writes point as UTF-8 at out (room for 4 bytes); returns its length
static size_t
s_encode (uint32_t point, char *out)
{
    if (point < 0x80) {
        out [0] = (char) point;
        return 1;
    }
    size_t length = point < 0x800? 2: point < 0x10000? 3: 4;
    static const unsigned char lead [5] = { 0, 0, 0xC0, 0xE0, 0xF0 };
    for (size_t index = length - 1; index > 0; index--) {
        out [index] = (char) (0x80 | (point & 0x3F));
        point >>= 6;
    }
    out [0] = (char) (lead [length] | point);
    return length;
}

size_t
pl_words_each (const char *text, size_t size, pl_words_fn *word_fn, void *arg)
{
    char word [PL_WORDS_MAX_BYTES];
    size_t word_size = 0, count = 0;
    bool full = false;              //  the word was cut: its rest is skipped
    const unsigned char *bytes = (const unsigned char *) text;
    for (size_t at = 0; at <= size; ) {
        size_t length = 1;
        uint32_t point = at < size? s_decode (bytes + at, size - at, &length): S_INVALID;
        if (point != S_INVALID && s_word_point (point)) {
            uint32_t folded = s_fold (point);
            char encoded [4];
            size_t encoded_size = folded? s_encode (folded, encoded): 0;
            if (!full && word_size + encoded_size <= PL_WORDS_MAX_BYTES) {
                memcpy (word + word_size, encoded, encoded_size);
                word_size += encoded_size;
            }
            else
                full = true;
        }
        else {
            //  A word of marks only (all dropped) is no word, as in SQLite
            if (word_size > 0) {
                if (word_fn)
                    word_fn (word, word_size, arg);
                count++;
            }
            word_size = 0;
            full = false;
        }
        at += length;
    }
    return count;
}

bool
pl_words_ends_in_word (const char *text, size_t size)
{
    //  The last character starts at the last byte that is not a
    //  continuation byte (at most 4 back)
    const unsigned char *bytes = (const unsigned char *) text;
    for (size_t back = 1; back <= 4 && back <= size; back++) {
        if ((bytes [size - back] & 0xC0) == 0x80)
            continue;
        size_t length;
        uint32_t point = s_decode (bytes + size - back, back, &length);
        return point != S_INVALID && length == back && s_word_point (point);
    }
    return false;
}
