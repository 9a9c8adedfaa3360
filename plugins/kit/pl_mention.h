/*  =========================================================================
    pl_mention - the members a message mentions (PROTOCOL.md 1.1, "Read
    markers, unread counts and mentions")

    A message mentions a member when its text holds '@', at its start or
    after a character that is not an ASCII letter, digit, '_', '.' or '-'
    (so an e-mail address mentions nobody), followed by that member's name
    (without regard to case; the longest member name that fits) and then
    the end of the text or any character but an ASCII letter, digit, '_'
    or '-' (so "@bob." and "@bob," mention bob).

    The caller knows the members: find looks a candidate up, without
    regard to case, and gives the member's name as registered (a pointer
    that stays valid for the scan and that is the same for the same
    member), or NULL. A candidate is at most PL_USERNAME_MAX bytes, and the
    scan tries at most that many candidates at each '@', the longest first.

        const char **names = pl_mention_scan (text, strlen (text), find, members, &count);
        //  names [0 .. count - 1]: order of first mention, each once
        free (names);

    Plain function of its input: no state. libc only.
    =========================================================================
*/

#ifndef PL_MENTION_H_INCLUDED
#define PL_MENTION_H_INCLUDED

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Looks a member up by the size bytes at name (not NUL-terminated), without
//  regard to ASCII case: its name as registered, or NULL for no member
typedef const char *(pl_mention_find_fn) (void *arg, const char *name, size_t size);

//  The members the size bytes of text mention, in order of first mention,
//  each once (the same pointer from find counts once): a new array of
//  *count_p names as find gave them, which the caller frees (not the
//  names). NULL with *count_p 0 when nobody is mentioned, or out of memory.
const char **
    pl_mention_scan (const char *text, size_t size, pl_mention_find_fn *find, void *arg,
                     size_t *count_p);

#ifdef __cplusplus
}
#endif

#endif
