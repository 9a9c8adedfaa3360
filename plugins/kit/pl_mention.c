/*  =========================================================================
    pl_mention - the members a message mentions
    =========================================================================
*/

#include "pl_mention.h"
#include "pl_limits.h"

#include <stdbool.h>
#include <stdlib.h>

//  The characters a name runs on: an '@' after one of these (or a '.') is
//  inside a word, and a name followed by one of these does not end there
static bool
s_word_char (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        || c == '_' || c == '-';
}

//  Whether an '@' at offset at may start a mention
static bool
s_mention_starts (const char *text, size_t at)
{
    return at == 0 || (!s_word_char (text [at - 1]) && text [at - 1] != '.');
}

//  The member named right after an '@' (name: the bytes after it, size of
//  them left): the longest candidate that ends where a name may end and
//  that find knows, or NULL
static const char *
s_member_at (const char *name, size_t size, pl_mention_find_fn *find, void *arg)
{
    size_t longest = size < PL_USERNAME_MAX ? size : PL_USERNAME_MAX;
    for (size_t length = longest; length >= 1; length--) {
        if (length < size && s_word_char (name [length]))
            continue;
        const char *member = find (arg, name, length);
        if (member)
            return member;
    }
    return NULL;
}

//  Adds member to names unless there already; false when out of memory
static bool
s_add_once (const char ***names_p, size_t *count_p, size_t *capacity_p, const char *member)
{
    for (size_t index = 0; index < *count_p; index++)
        if ((*names_p) [index] == member)
            return true;
    if (*count_p == *capacity_p) {
        size_t capacity = *capacity_p ? *capacity_p * 2 : 4;
        const char **grown = (const char **) realloc ((void *) *names_p,
                                                      capacity * sizeof (char *));
        if (!grown)
            return false;
        *names_p = grown;
        *capacity_p = capacity;
    }
    (*names_p) [(*count_p)++] = member;
    return true;
}

const char **
pl_mention_scan (const char *text, size_t size, pl_mention_find_fn *find, void *arg,
                 size_t *count_p)
{
    const char **names = NULL;
    size_t count = 0, capacity = 0;
    for (size_t at = 0; text && at < size; at++) {
        if (text [at] != '@' || !s_mention_starts (text, at))
            continue;
        const char *member = s_member_at (text + at + 1, size - at - 1, find, arg);
        if (member && !s_add_once (&names, &count, &capacity, member)) {
            free ((void *) names);
            *count_p = 0;
            return NULL;
        }
    }
    if (count == 0) {
        free ((void *) names);
        names = NULL;
    }
    *count_p = count;
    return names;
}
