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

    A throttle may hold instead of swallow, for events that carry a value
    that only grows (a read marker's seq: the newest says all the others
    said): pl_throttle_hold lets the first through as pass does, keeps
    the largest value of the rest, and hands it over once the interval is
    over (pl_throttle_due, or the next hold that finds it over), the hand-
    over counting as a pass. So a burst gives the first event at once and
    one more with the newest value an interval later. One throttle either
    passes or holds: pass and its expiry drop what a throttle holds.

    Ownership: the throttle owns its entries; names are copied.

        pl_throttle_t *typing = pl_throttle_new (2000, PL_THROTTLE_MAX);
        if (pl_throttle_pass (typing, "alice", "general", pl_time_mono ()))
            ...relay it
        pl_throttle_destroy (&typing);

        if (pl_throttle_hold (reads, "alice", "general", seq, now, s_due, self))
            ...tell of seq now; else s_due (self, "alice", "general", newest)
            comes later, from pl_throttle_due (reads, now, s_due, self) on a timer
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

//  Takes a held value that came due: who and where as the hold that began
//  holding gave them (borrowed for the call), value the largest held
typedef void (pl_throttle_due_fn) (void *arg, const char *who, const char *where,
                                   uint64_t value);

//  True when (who, where) may pass at now, as pl_throttle_pass. Else value
//  is held (the largest of those held for it) and false. Held values whose
//  interval is over at now, or whose entry the bound drops, go to due
//  first (which may be called for other names during this call). Out of
//  memory lets it pass.
bool
    pl_throttle_hold (pl_throttle_t *self, const char *who, const char *where,
                      uint64_t value, int64_t now, pl_throttle_due_fn *due, void *arg);

//  Hands every held value whose interval is over at now to due (a hand-
//  over counts as a pass at now), and drops the expired entries
void
    pl_throttle_due (pl_throttle_t *self, int64_t now, pl_throttle_due_fn *due, void *arg);

//  Forgets the value held for (who, where) when it is not above value: the
//  caller made value known another way
void
    pl_throttle_settle (pl_throttle_t *self, const char *who, const char *where,
                        uint64_t value);

//  How many names hold a value now (for a caller's timer: 0, none due)
size_t
    pl_throttle_held (pl_throttle_t *self);

//  The entries it holds now (expired ones may still be counted until the
//  next pass)
size_t
    pl_throttle_size (pl_throttle_t *self);

#ifdef __cplusplus
}
#endif

#endif
