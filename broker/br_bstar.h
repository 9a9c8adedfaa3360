/*  =========================================================================
    br_bstar - the standby pair: a primary and a backup broker (Binary Star)

    The state machine of the zguide's Binary Star (chapter 4), with the two
    sockets that carry it: each broker binds a PUB (--bstar-bind) on which it
    publishes its state every heartbeat, and connects a SUB to the other's
    (--bstar-peer). At most one of the two is ACTIVE and serves peers; the
    PASSIVE one ignores every peer message, so gateways and plugin processes
    never split between the two.

    The rule that avoids a split brain: a passive broker becomes active only
    when its peer broker has been silent for 2 heartbeats AND a peer (a
    gateway or a plugin process) says hello to it. A peer says hello to the
    second broker only after the first one went silent for it too (3 of its
    heartbeats), so a broken link between the two brokers alone, with every
    peer still on the active one, never makes a second active.

    Our own choices where the zguide leaves room (proto/ENVELOPE.md,
    "Standby broker"):
    - A broker that has not heard its peer broker since it started (PRIMARY
      or BACKUP) takes peers under the same rule as a passive one: a hello
      after 2 silent heartbeats. A restarted broker thus waits to hear the
      active one and comes back passive; a broker alone still serves.
    - Two actives (the link between the brokers healed after a split): the
      backup yields, goes passive and forgets its peers, which move to the
      primary. Two passives: the primary takes over.

    Time is given by the caller (zclock_mono ms), so the machine can be
    driven by tests without sockets: br_bstar_new with no endpoints.

        br_bstar_config_t config = { .primary = true, .bind = "tcp://0.0.0.0:7701",
                                     .peer = "tcp://backup:7701",
                                     .heartbeat_ms = 1000, .curve = keys };
        br_bstar_t *bstar = br_bstar_new (&config, zclock_mono ());
        ...poll br_bstar_socket (bstar); on input br_bstar_recv (bstar, now)
        ...every tick br_bstar_tick (bstar, now)
        ...on a peer's hello: if (!br_bstar_admit (bstar, now)) ignore it
        br_bstar_destroy (&bstar);
    =========================================================================
*/

#ifndef BR_BSTAR_H_INCLUDED
#define BR_BSTAR_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include "pl_curve.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _br_bstar_t br_bstar_t;

//  The states, as published on the wire (one byte)
typedef enum {
    BR_BSTAR_PRIMARY = 1,       //  primary, not yet heard its peer
    BR_BSTAR_BACKUP = 2,        //  backup, not yet heard its peer
    BR_BSTAR_ACTIVE = 3,        //  serves peers
    BR_BSTAR_PASSIVE = 4        //  ignores peers while its peer broker lives
} br_bstar_state_t;

//  What an event did to us
typedef enum {
    BR_BSTAR_STAYED = 0,        //  no change of being active or not
    BR_BSTAR_WENT_ACTIVE = 1,   //  now active: take peers
    BR_BSTAR_WENT_PASSIVE = 2   //  was active, yielded: forget every peer
} br_bstar_change_t;

//  A peer broker silent this many of our heartbeats counts as gone
#define BR_BSTAR_PEER_LIVENESS  2

typedef struct {
    bool primary;               //  primary or backup
    const char *bind;           //  our state PUB endpoint, or NULL (no sockets)
    const char *peer;           //  the peer broker's state endpoint, or NULL
    uint32_t heartbeat_ms;      //  how often we publish our state (0 = 1000)
    const pl_curve_t *curve;    //  the broker's keys, borrowed: a tcp:// state
                                //  link is CURVE, with the one key pair both
                                //  brokers share (ENVELOPE.md); NULL = plain
} br_bstar_config_t;

//  Creates the machine in PRIMARY or BACKUP, its peer taken as silent since
//  now. With bind and peer, binds the PUB and connects the SUB; returns NULL
//  (after logging why) if the PUB cannot be bound. Caller owns return value.
br_bstar_t *
    br_bstar_new (const br_bstar_config_t *config, int64_t now);

//  Destroys the machine and its sockets; nullifies the reference
void
    br_bstar_destroy (br_bstar_t **self_p);

//  The SUB to poll for the peer's states, or NULL without sockets
zsock_t *
    br_bstar_socket (br_bstar_t *self);

//  Reads one state from the SUB and applies it (br_bstar_peer_said)
br_bstar_change_t
    br_bstar_recv (br_bstar_t *self, int64_t now);

//  Publishes our state when a heartbeat is due; logs, once, a peer broker
//  that went silent
void
    br_bstar_tick (br_bstar_t *self, int64_t now);

//  The peer broker said it is in state: the machine's peer events
br_bstar_change_t
    br_bstar_peer_said (br_bstar_t *self, br_bstar_state_t state, int64_t now);

//  A peer said hello: the zguide's client request. True if we are active,
//  or just became so (the peer broker silent long enough); false if the
//  hello is to be ignored.
bool
    br_bstar_admit (br_bstar_t *self, int64_t now);

//  True while active
bool
    br_bstar_active (br_bstar_t *self);

//  The state now
br_bstar_state_t
    br_bstar_state (br_bstar_t *self);

//  "primary", "backup", "active", "passive" (or "unknown")
const char *
    br_bstar_state_name (br_bstar_state_t state);

#ifdef __cplusplus
}
#endif

#endif
