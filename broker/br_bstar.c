/*  =========================================================================
    br_bstar - the standby pair: a primary and a backup broker (Binary Star)

    See br_bstar.h. The state message is one frame of two bytes: the
    version (1) and the sender's state; anything else is dropped.
    =========================================================================
*/

#include "br_bstar.h"

#include <errno.h>
#include <inttypes.h>

#define S_VERSION   1

struct _br_bstar_t {
    bool primary;               //  our role
    br_bstar_state_t state;     //  where the machine is
    uint32_t heartbeat_ms;      //  publish interval
    int64_t peer_expiry;        //  zclock_mono after which the peer counts as gone
    int64_t next_publish;       //  zclock_mono of our next state message
    bool peer_silent_logged;    //  the silence of the peer is in the log already
    zsock_t *publisher;         //  our state, to the peer (PUB), or NULL
    zsock_t *subscriber;        //  the peer's state (SUB), or NULL
    char *peer;                 //  its endpoint, for the log
};

const char *
br_bstar_state_name (br_bstar_state_t state)
{
    switch (state) {
        case BR_BSTAR_PRIMARY: return "primary";
        case BR_BSTAR_BACKUP:  return "backup";
        case BR_BSTAR_ACTIVE:  return "active";
        case BR_BSTAR_PASSIVE: return "passive";
    }
    return "unknown";
}

void
br_bstar_destroy (br_bstar_t **self_p)
{
    assert (self_p);
    br_bstar_t *self = *self_p;
    if (self) {
        zsock_destroy (&self->publisher);
        zsock_destroy (&self->subscriber);
        free (self->peer);
        free (self);
        *self_p = NULL;
    }
}

//  Binds the PUB and connects the SUB. Returns -1 after logging.
static int
s_bstar_sockets (br_bstar_t *self, const br_bstar_config_t *config)
{
    self->publisher = zsock_new (ZMQ_PUB);
    self->subscriber = zsock_new (ZMQ_SUB);
    self->peer = strdup (config->peer);
    if (!self->publisher || !self->subscriber || !self->peer)
        return -1;
    //  A state is worth nothing once the next one is due: keep one
    zsock_set_sndhwm (self->publisher, 2);
    zsock_set_linger (self->publisher, 0);
    zsock_set_linger (self->subscriber, 0);
    //  Bounds the handshake's commands too: CURVE's are a few hundred bytes
    zsock_set_maxmsgsize (self->subscriber, 4096);
    if (!config->curve && (pl_curve_endpoint_needs_keys (config->bind)
                       ||  pl_curve_endpoint_needs_keys (config->peer)))
        zsys_warning ("broker: INSECURE: the standby pair's link (%s, %s) has no keys:"
                      " anyone who reaches it can read our state, or play our peer",
                      config->bind, config->peer);
    pl_curve_apply (config->curve, self->publisher, config->bind);
    if (zsock_bind (self->publisher, "%s", config->bind) == -1) {
        zsys_error ("broker: standby pair: could not bind %s: %s", config->bind,
                    zmq_strerror (errno));
        return -1;
    }
    pl_curve_apply_twin (config->curve, self->subscriber, config->peer);
    zsock_set_subscribe (self->subscriber, "");
    if (zsock_connect (self->subscriber, "%s", config->peer) == -1) {
        zsys_error ("broker: standby pair: could not connect to %s: %s", config->peer,
                    zmq_strerror (errno));
        return -1;
    }
    zsys_info ("broker: standby pair: %s, state on %s, watching its peer at %s",
               self->primary ? "primary" : "backup", config->bind, config->peer);
    return 0;
}

br_bstar_t *
br_bstar_new (const br_bstar_config_t *config, int64_t now)
{
    assert (config);
    br_bstar_t *self = (br_bstar_t *) zmalloc (sizeof (br_bstar_t));
    if (!self)
        return NULL;
    self->primary = config->primary;
    self->state = config->primary ? BR_BSTAR_PRIMARY : BR_BSTAR_BACKUP;
    self->heartbeat_ms = config->heartbeat_ms ? config->heartbeat_ms : 1000;
    //  Silent since now: a broker alone takes peers after the same wait
    self->peer_expiry = now + BR_BSTAR_PEER_LIVENESS * (int64_t) self->heartbeat_ms;
    self->next_publish = now;
    if (config->bind && config->peer && s_bstar_sockets (self, config))
        br_bstar_destroy (&self);
    return self;
}

zsock_t *
br_bstar_socket (br_bstar_t *self)
{
    assert (self);
    return self->subscriber;
}

static br_bstar_change_t
s_become (br_bstar_t *self, br_bstar_state_t state, const char *why)
{
    bool was_active = self->state == BR_BSTAR_ACTIVE;
    if (state == self->state)
        return BR_BSTAR_STAYED;
    zsys_info ("broker: standby pair: %s -> %s (%s)", br_bstar_state_name (self->state),
               br_bstar_state_name (state), why);
    self->state = state;
    self->next_publish = 0;         //  tell the peer at once
    if (state == BR_BSTAR_ACTIVE)
        return BR_BSTAR_WENT_ACTIVE;
    return was_active ? BR_BSTAR_WENT_PASSIVE : BR_BSTAR_STAYED;
}

//  The peer is in state: the zguide's peer events, and our two choices
static br_bstar_change_t
s_peer_event (br_bstar_t *self, br_bstar_state_t peer)
{
    switch (self->state) {
        case BR_BSTAR_PRIMARY:
            if (peer == BR_BSTAR_BACKUP)
                return s_become (self, BR_BSTAR_ACTIVE, "the backup is up and waits");
            if (peer == BR_BSTAR_ACTIVE)
                return s_become (self, BR_BSTAR_PASSIVE, "the backup is active");
            break;
        case BR_BSTAR_BACKUP:
            if (peer == BR_BSTAR_ACTIVE)
                return s_become (self, BR_BSTAR_PASSIVE, "the primary is active");
            break;
        case BR_BSTAR_ACTIVE:
            //  Two actives: the link between us healed after a split. One
            //  yields, by role, so that both choose the same one.
            if (peer == BR_BSTAR_ACTIVE && !self->primary) {
                zsys_error ("broker: standby pair: the primary is active too; the backup"
                            " yields and its peers move to the primary");
                return s_become (self, BR_BSTAR_PASSIVE, "two actives: the backup yields");
            }
            break;
        case BR_BSTAR_PASSIVE:
            if (peer == BR_BSTAR_PRIMARY || peer == BR_BSTAR_BACKUP)
                return s_become (self, BR_BSTAR_ACTIVE, "the peer restarted");
            if (peer == BR_BSTAR_PASSIVE && self->primary)
                return s_become (self, BR_BSTAR_ACTIVE, "two passives: the primary serves");
            break;
    }
    return BR_BSTAR_STAYED;
}

br_bstar_change_t
br_bstar_peer_said (br_bstar_t *self, br_bstar_state_t state, int64_t now)
{
    assert (self);
    if (state < BR_BSTAR_PRIMARY || state > BR_BSTAR_PASSIVE)
        return BR_BSTAR_STAYED;
    if (self->peer_silent_logged)
        zsys_info ("broker: standby pair: hearing the peer broker again (%s)",
                   br_bstar_state_name (state));
    self->peer_silent_logged = false;
    self->peer_expiry = now + BR_BSTAR_PEER_LIVENESS * (int64_t) self->heartbeat_ms;
    if ((state == BR_BSTAR_PRIMARY && self->primary)
    ||  (state == BR_BSTAR_BACKUP && !self->primary))
        zsys_error ("broker: standby pair: both brokers say they are the %s;"
                    " one of them must be --bstar-%s", self->primary ? "primary" : "backup",
                    self->primary ? "backup" : "primary");
    return s_peer_event (self, state);
}

br_bstar_change_t
br_bstar_recv (br_bstar_t *self, int64_t now)
{
    assert (self);
    if (!self->subscriber)
        return BR_BSTAR_STAYED;
    zframe_t *frame = zframe_recv (self->subscriber);
    br_bstar_change_t change = BR_BSTAR_STAYED;
    if (frame && zframe_size (frame) == 2 && zframe_data (frame) [0] == S_VERSION
    &&  !zframe_more (frame))
        change = br_bstar_peer_said (self, (br_bstar_state_t) zframe_data (frame) [1], now);
    zframe_destroy (&frame);
    //  A message of more frames: the rest is dropped with the socket's queue
    while (zsock_rcvmore (self->subscriber)) {
        frame = zframe_recv (self->subscriber);
        zframe_destroy (&frame);
    }
    return change;
}

void
br_bstar_tick (br_bstar_t *self, int64_t now)
{
    assert (self);
    if (now >= self->peer_expiry && !self->peer_silent_logged) {
        zsys_warning ("broker: standby pair: no word from the peer broker%s%s for %" PRId64
                      " ms (%s here); if it runs, check --bstar-peer and that its key is"
                      " allowed", self->peer ? " at " : "", self->peer ? self->peer : "",
                      (int64_t) BR_BSTAR_PEER_LIVENESS * self->heartbeat_ms,
                      br_bstar_state_name (self->state));
        self->peer_silent_logged = true;
    }
    if (!self->publisher || now < self->next_publish)
        return;
    byte message [2] = { S_VERSION, (byte) self->state };
    zframe_t *frame = zframe_new (message, sizeof message);
    if (frame && zframe_send (&frame, self->publisher, ZFRAME_DONTWAIT))
        zframe_destroy (&frame);
    self->next_publish = now + self->heartbeat_ms;
}

bool
br_bstar_admit (br_bstar_t *self, int64_t now)
{
    assert (self);
    if (self->state == BR_BSTAR_ACTIVE)
        return true;
    //  PRIMARY and BACKUP too: a broker that never heard its peer takes
    //  peers only once the peer has been silent as long as a passive waits
    if (now < self->peer_expiry)
        return false;
    s_become (self, BR_BSTAR_ACTIVE, "a peer said hello and the peer broker is silent");
    return true;
}

bool
br_bstar_active (br_bstar_t *self)
{
    assert (self);
    return self->state == BR_BSTAR_ACTIVE;
}

br_bstar_state_t
br_bstar_state (br_bstar_t *self)
{
    assert (self);
    return self->state;
}
