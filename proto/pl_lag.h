/*  =========================================================================
    pl_lag - how long messages from one sender waited on their way here

    Peers' clocks differ, so a deadline travels as time left (ENVELOPE.md,
    "dl"). Time left is counted from when a message is read, which misses
    the time it waited in queues on the way: a process that was stopped or
    stuck reads, when it runs again, requests whose caller gave up long ago.
    The sender stamps each message with its own monotonic clock ("at"); the
    receiver keeps the smallest difference between its clock and the stamp
    it has seen (the quickest trip), and a message whose difference is
    larger waited that much longer. The smallest difference may rise by
    PL_LAG_DRIFT_PER_S msecs a second, so that two clocks that drift apart
    are followed, while a stall of seconds still shows almost whole.

    A value on the caller's side, with no clock of its own (exact to test).
    Reset it when the sender may be another (a broker that restarted).

        pl_lag_t lag;
        pl_lag_reset (&lag);
        ...
        int64_t waited = pl_lag_observe (&lag, pl_envelope_sent_at (envelope), zclock_mono ());
        int64_t left = pl_envelope_deadline (envelope) - waited;
    =========================================================================
*/

#ifndef PL_LAG_H_INCLUDED
#define PL_LAG_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  How fast the quickest trip may grow, msecs a second (1,000 ppm: far more
//  than two NTP-disciplined clocks drift)
#define PL_LAG_DRIFT_PER_S  1

typedef struct {
    bool known;                     //  a message has been seen since the reset
    int64_t quickest;               //  our clock less the sender's, at its smallest
    int64_t seen;                   //  our clock at the last message
} pl_lag_t;

//  Forgets the sender: the next message counts as one that did not wait
void
    pl_lag_reset (pl_lag_t *self);

//  Learns from a message the sender stamped sent_at (its clock; 0 = not
//  stamped, which teaches nothing and answers 0) and that we read at now
//  (ours). Returns the msecs it waited beyond the quickest trip (>= 0).
int64_t
    pl_lag_observe (pl_lag_t *self, uint64_t sent_at, int64_t now);

#ifdef __cplusplus
}
#endif

#endif
