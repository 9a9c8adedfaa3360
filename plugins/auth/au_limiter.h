/*  =========================================================================
    au_limiter - counts failures per key in a sliding window, with a bound

    The auth plugin keeps two: failed logins per lower-cased username and per
    client address. A key that failed max_failures times within the last
    window_ms is refused until the oldest of those failures leaves the window.
    The table holds at most max_keys keys; a new key beyond that evicts the
    key whose last failure is the oldest, so a flood of made-up names costs
    a bounded amount of memory (and forgets the quietest keys first).

    Not thread-safe: one owner, the plugin's own thread.

        au_limiter_t *limiter = au_limiter_new (5, 60000, 10000);
        int64_t wait_ms = au_limiter_check (limiter, "alice", now);
        if (wait_ms > 0) ... refuse, "try again in wait_ms" ...
        au_limiter_fail (limiter, "alice", now);
        au_limiter_destroy (&limiter);
    =========================================================================
*/

#ifndef AU_LIMITER_H_INCLUDED
#define AU_LIMITER_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _au_limiter_t au_limiter_t;

//  Creates a limiter. max_failures 0 disables it (check always answers 0).
//  Returns NULL when out of memory or when window_ms or max_keys is 0 while
//  max_failures is not. Caller owns return value.
au_limiter_t *
    au_limiter_new (size_t max_failures, int64_t window_ms, size_t max_keys);

//  Destroys the limiter; nullifies the reference. Safe to call twice.
void
    au_limiter_destroy (au_limiter_t **self_p);

//  Returns 0 when key may try now, else how many milliseconds remain until
//  it may (> 0). now is any monotonic clock in milliseconds.
int64_t
    au_limiter_check (au_limiter_t *self, const char *key, int64_t now);

//  Records one failure of key at now. Returns 0, or -1 when out of memory
//  (the failure is then not counted).
int
    au_limiter_fail (au_limiter_t *self, const char *key, int64_t now);

//  Forgets every failure of key (a successful login).
void
    au_limiter_clear (au_limiter_t *self, const char *key);

//  Drops the keys whose every failure has left the window.
void
    au_limiter_expire (au_limiter_t *self, int64_t now);

//  How many keys the table holds now
size_t
    au_limiter_size (au_limiter_t *self);

#ifdef __cplusplus
}
#endif

#endif
