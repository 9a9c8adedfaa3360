/*  =========================================================================
    fuzz_mention - pl_mention_scan on arbitrary texts and members, checked
    against a slow reading of PROTOCOL.md's rule

    An input is the members, one per line, then an empty line, then the
    text (all of the rest, NUL bytes included). The scan must find what the
    reference finds: at each '@' that may start a mention, the longest
    member whose name follows without regard to case and ends where a name
    may end; the members in order of first mention, each once.
    =========================================================================
*/

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pl_limits.h"
#include "pl_mention.h"

#define S_MEMBERS_MAX 64

typedef struct {
    char names [S_MEMBERS_MAX][PL_USERNAME_MAX + 1];
    size_t count;
} s_members_t;

static const char *
s_find (void *arg, const char *name, size_t size)
{
    s_members_t *members = (s_members_t *) arg;
    for (size_t index = 0; index < members->count; index++)
        if (strlen (members->names [index]) == size
        &&  strncasecmp (members->names [index], name, size) == 0)
            return members->names [index];
    return NULL;
}

static bool
s_word (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        || c == '_' || c == '-';
}

//  The reference: every member tried at every '@', the longest match kept
static size_t
s_reference (const char *text, size_t size, s_members_t *members, const char **found)
{
    size_t count = 0;
    for (size_t at = 0; at < size; at++) {
        if (text [at] != '@' || (at > 0 && (s_word (text [at - 1]) || text [at - 1] == '.')))
            continue;
        const char *best = NULL;
        for (size_t index = 0; index < members->count; index++) {
            const char *name = members->names [index];
            size_t length = strlen (name);
            if (length == 0 || at + 1 + length > size
            ||  strncasecmp (text + at + 1, name, length) != 0 || memchr (name, 0, length)
            ||  (at + 1 + length < size && s_word (text [at + 1 + length])))
                continue;
            if (!best || length > strlen (best))
                best = s_find (members, text + at + 1, length);
        }
        bool seen = false;
        for (size_t index = 0; best && index < count; index++)
            seen = seen || found [index] == best;
        if (best && !seen)
            found [count++] = best;
    }
    return count;
}

//  Reads the members (lines up to an empty one) into members; returns
//  where the text starts
static size_t
s_read_members (const uint8_t *data, size_t size, s_members_t *members)
{
    size_t at = 0;
    members->count = 0;
    while (at < size && members->count < S_MEMBERS_MAX) {
        const uint8_t *end = memchr (data + at, '\n', size - at);
        size_t length = end ? (size_t) (end - (data + at)) : size - at;
        if (length == 0)
            return at + 1;
        if (length <= PL_USERNAME_MAX && !memchr (data + at, 0, length)) {
            memcpy (members->names [members->count], data + at, length);
            members->names [members->count++][length] = 0;
        }
        at += length + (end != NULL);
    }
    return at;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static s_members_t members;
    size_t start = s_read_members (data, size, &members);
    const char *text = (const char *) data + start;
    size_t text_size = size - start;
    size_t count;
    const char **names = pl_mention_scan (text, text_size, s_find, &members, &count);
    const char *expected [S_MEMBERS_MAX];
    //  Two members may have the same name in other cases: the first wins
    //  in both readings (s_find), so the lists still agree
    size_t expected_count = s_reference (text, text_size, &members, expected);
    if (count != expected_count || (count && !names) || (!count && names))
        abort ();
    for (size_t index = 0; index < count; index++)
        if (names [index] != expected [index])
            abort ();
    free ((void *) names);
    return 0;
}
