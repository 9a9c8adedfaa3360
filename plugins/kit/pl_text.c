/*  =========================================================================
    pl_text - the protocol's rules for names and texts, for plugins
    =========================================================================
*/

#include "pl_text.h"
#include "pl_limits.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
pl_text_lower (char *text)
{
    for (char *cursor = text; *cursor; cursor++)
        if (*cursor >= 'A' && *cursor <= 'Z')
            *cursor = (char) (*cursor - 'A' + 'a');
}

//  Caller owns the returned copy, lower-cased; NULL when out of memory
char *
pl_text_lower_dup (const char *text)
{
    char *copy = strdup (text);
    if (copy)
        pl_text_lower (copy);
    return copy;
}

//  Unicode characters in valid UTF-8 text (the gateway checked validity)
size_t
pl_text_utf8_length (const char *text)
{
    size_t count = 0;
    for (const unsigned char *cursor = (const unsigned char *) text; *cursor; cursor++)
        if ((*cursor & 0xC0) != 0x80)
            count++;
    return count;
}

//  Length of the valid UTF-8 sequence at bytes, or 0 when it is not one
//  (overlong forms, surrogates and code points over U+10FFFF are invalid)
size_t
pl_text_utf8_sequence (const uint8_t *bytes, size_t remaining)
{
    uint8_t lead = bytes [0];
    if (lead < 0x80)
        return 1;
    if (lead < 0xc2)
        return 0;
    if (lead < 0xe0) {
        if (remaining < 2 || (bytes [1] & 0xc0) != 0x80)
            return 0;
        return 2;
    }
    if (lead < 0xf0) {
        if (remaining < 3 || (bytes [1] & 0xc0) != 0x80 || (bytes [2] & 0xc0) != 0x80)
            return 0;
        if (lead == 0xe0 && bytes [1] < 0xa0)
            return 0;           //  overlong
        if (lead == 0xed && bytes [1] > 0x9f)
            return 0;           //  a UTF-16 surrogate
        return 3;
    }
    if (lead < 0xf5) {
        if (remaining < 4 || (bytes [1] & 0xc0) != 0x80 || (bytes [2] & 0xc0) != 0x80
        ||  (bytes [3] & 0xc0) != 0x80)
            return 0;
        if (lead == 0xf0 && bytes [1] < 0x90)
            return 0;           //  overlong
        if (lead == 0xf4 && bytes [1] > 0x8f)
            return 0;           //  over U+10FFFF
        return 4;
    }
    return 0;
}

//  True for white space: ASCII and the Unicode space characters (one rule
//  for a message's "not only white space" and an emoji's "none at all")
static bool
s_is_space (uint32_t code)
{
    return code == ' ' || (code >= 0x09 && code <= 0x0D) || code == 0x85
        || code == 0xA0 || code == 0x1680 || (code >= 0x2000 && code <= 0x200B)
        || code == 0x2028 || code == 0x2029 || code == 0x202F || code == 0x205F
        || code == 0x3000 || code == 0xFEFF;
}

//  True when the text holds something other than white space (ASCII and
//  the Unicode space characters)
bool
pl_text_has_content (const char *text)
{
    const unsigned char *cursor = (const unsigned char *) text;
    while (*cursor) {
        uint32_t code = *cursor;
        int extra = code >= 0xF0? 3: code >= 0xE0? 2: code >= 0xC0? 1: 0;
        if (extra)
            code &= 0x3F >> extra;
        cursor++;
        for (int index = 0; index < extra && *cursor; index++, cursor++)
            code = (code << 6) | (*cursor & 0x3F);
        if (!s_is_space (code))
            return true;
    }
    return false;
}

//  The code point of the valid sequence of length bytes at bytes
static uint32_t
s_code_point (const uint8_t *bytes, size_t length)
{
    uint32_t code = length == 1? bytes [0]: bytes [0] & (0x7F >> length);
    for (size_t index = 1; index < length; index++)
        code = (code << 6) | (bytes [index] & 0x3F);
    return code;
}

bool
pl_text_emoji_valid (const char *bytes, size_t size)
{
    if (size < 1 || size > PL_EMOJI_MAX)
        return false;
    const uint8_t *cursor = (const uint8_t *) bytes;
    const uint8_t *end = cursor + size;
    while (cursor < end) {
        size_t length = pl_text_utf8_sequence (cursor, (size_t) (end - cursor));
        if (length == 0)
            return false;
        uint32_t code = s_code_point (cursor, length);
        //  C0 and C1 controls, DEL: nothing a reaction shows
        if (code < 0x20 || (code >= 0x7F && code <= 0x9F) || s_is_space (code))
            return false;
        cursor += length;
    }
    return true;
}

bool
pl_text_username_valid (const char *name)
{
    size_t length = strlen (name);
    if (length < PL_USERNAME_MIN || length > PL_USERNAME_MAX)
        return false;
    for (const char *cursor = name; *cursor; cursor++)
        if (!isalnum ((unsigned char) *cursor) && *cursor != '_' && *cursor != '.'
        &&  *cursor != '-')
            return false;
    return true;
}

bool
pl_text_word_valid (const char *text, size_t size, size_t min, size_t max)
{
    if (size < min || size > max)
        return false;
    for (size_t index = 0; index < size; index++)
        if (!isalnum ((unsigned char) text [index]) && text [index] != '_' && text [index] != '-')
            return false;
    return true;
}

bool
pl_text_same_name (const char *one, const char *two)
{
    return strcasecmp (one, two) == 0;
}

