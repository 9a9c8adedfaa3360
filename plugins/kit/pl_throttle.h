/*  =========================================================================
    pl_throttle - at most one event per (who, where) every interval: which
    pass, which are swallowed

    PROTOCOL.md 1.1, "Typing": the server passes on at most one typing per
    user and room (or recipient) every 2 s and answers the others ok. A
    throttle remembers when each (who, where) last passed; one that asks
    again within the interval does not pass. Names compare without regard
    to ASCII case (they are lower-cased into the entry's name).

    Memory is bounded two ways: an entry expires interval_ms after it
    passed (every pass first drops the expired ones: all entries share the
    interval, so they expire oldest first, from the head of a list), and
    at most max entries are kept (past it the oldest goes, which may then
    pass again early: a bound, not a rule). An interval of 0 lets
    everything pass and keeps nothing.

    The clock is the caller's (monotonic ms, pl_time_mono), so that a test
    can drive it; it must not go back.

    Ownership: the throttle owns its entries; names are copied.

        pl_throttle_t *typing = pl_throttle_new (2000, PL_THROTTLE_MAX);
        if (pl_throttle_pass (typing, "alice", "general", pl_time_mono ()))
            ...relay it
        pl_throttle_destroy (&typing);
    =========================================================================
*/

#ifndef PL_THROTTLE_H_INCLUDED
#define PL_THROTTLE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Entries a throttle keeps at most, by default: far more than an
//  instance's users type into rooms within one interval
#define PL_THROTTLE_MAX     100000

typedef struct _pl_throttle_t pl_throttle_t;

//  Creates an empty throttle: one pass per (who, where) every interval_ms
//  (0: everything passes), at most max entries (at least 1). Caller owns
//  return value; NULL if out of memory.
pl_throttle_t *
    pl_throttle_new (int64_t interval_ms, size_t max);

//  Destroys the throttle and nullifies the reference
void
    pl_throttle_destroy (pl_throttle_t **self_p);

//  True when (who, where) may pass at now (monotonic ms), which is then
//  remembered; false when it passed less than interval_ms before now.
//  Out of memory lets it pass, unremembered.
bool
    pl_throttle_pass (pl_throttle_t *self, const char *who, const char *where, int64_t now);

//  The entries it holds now (expired ones may still be counted until the
//  next pass)
size_t
    pl_throttle_size (pl_throttle_t *self);

#ifdef __cplusplus
}
#endif

#endif
