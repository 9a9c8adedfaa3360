/*  =========================================================================
    pl_text - the protocol's rules for names and texts, for plugins

    Shared by the plugins that check what users send (rooms, pm): one place
    for PROTOCOL.md's username pattern and its "1 to 4000 Unicode characters,
    not only white space". Depends on nothing but libc.
    =========================================================================
*/

#ifndef PL_TEXT_H_INCLUDED
#define PL_TEXT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Lower-cases the ASCII letters of text, in place (names are ASCII)
void
pl_text_lower (char *text);

//  Caller owns the returned copy, lower-cased; NULL when out of memory
char *
pl_text_lower_dup (const char *text);

//  Unicode characters in valid UTF-8 text (the gateway checked validity)
size_t
pl_text_utf8_length (const char *text);

//  Length of the valid UTF-8 sequence at bytes (remaining > 0), or 0 when
//  it is not one: overlong forms, surrogates and code points over U+10FFFF
//  are invalid. The transcoder's check, shared so that plugins measure text
//  exactly as the gateway writes it.
size_t
pl_text_utf8_sequence (const uint8_t *bytes, size_t remaining);

//  True when the text holds something other than white space (ASCII and
//  the Unicode space characters)
bool
pl_text_has_content (const char *text);

//  True for a reaction's emoji (PROTOCOL.md 1.1, "Replies, edits, deletions
//  and reactions"): size bytes of valid UTF-8, 1 to PL_EMOJI_MAX, holding no
//  white space (pl_text_has_content's) and no control character (C0, DEL,
//  C1). Any other character passes: a server cannot follow every emoji
//  sequence Unicode will define.
bool
pl_text_emoji_valid (const char *bytes, size_t size);

//  True for a username of PROTOCOL.md: ^[A-Za-z0-9_.-]{3,32}$
bool
pl_text_username_valid (const char *name);

//  True when text (size bytes) is min to max characters of [A-Za-z0-9_-]
//  (base64url: a file's id, an upload's handle)
bool
pl_text_word_valid (const char *text, size_t size, size_t min, size_t max);

//  True when two names are the same without regard to ASCII case
bool
pl_text_same_name (const char *one, const char *two);

#ifdef __cplusplus
}
#endif

#endif
