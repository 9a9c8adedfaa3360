/*  =========================================================================
    pl_envelope - the internal envelope between gateways, broker and plugins

    One envelope is one ZeroMQ message of one or two frames after any routing
    id: a header frame (a msgpack map, described in proto/ENVELOPE.md) and an
    optional body frame (a msgpack map: the request's fields, a reply's result
    fields, or an event). The body is opaque to the broker: it is never
    re-encoded on the way, so an event is encoded once and fanned out by
    reference.

    Ownership: an envelope owns every string, array and frame set into it;
    setters copy strings and take frames; getters return borrowed pointers
    valid until the field is set again or the envelope is destroyed.
    =========================================================================
*/

#ifndef PL_ENVELOPE_H_INCLUDED
#define PL_ENVELOPE_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The header's "v": a decoder refuses any other major
#define PL_ENVELOPE_VERSION 1

//  Largest header and body frame accepted from a peer (ZMQ_MAXMSGSIZE too).
//  A header lists the users or sessions of a delivery: a room of 10,000
//  members with 32-byte names takes about 340 KB.
#define PL_ENVELOPE_MAX_HEADER  (512 * 1024)
#define PL_ENVELOPE_MAX_BODY    (1024 * 1024)

typedef enum {
    PL_OP_INVALID = 0,
    PL_OP_HELLO = 1,            //  peer -> broker: kind, name, instance, abi, routes, flags
    PL_OP_WELCOME = 2,          //  broker -> peer: HELLO accepted (heartbeat)
    PL_OP_REFUSE = 3,           //  broker -> peer: HELLO refused (code, message)
    PL_OP_HEARTBEAT = 4,        //  both ways, when idle
    PL_OP_BYE = 5,              //  peer -> broker: leaving now
    PL_OP_REQUEST = 6,          //  rid, type, [sid], [cid], [user], [addr], [dl], body
    PL_OP_REPLY = 7,            //  rid, [sid], [cid], [code, message, [outcome]] | body,
                                //  [bind|unbind]
    PL_OP_DELIVER = 8,          //  plugin -> broker: users or sids + body;
                                //  broker -> gateway: sids + body
    PL_OP_SESSION_OPEN = 9,     //  gateway -> broker: sid, addr
    PL_OP_SESSION_CLOSE = 10,   //  gateway -> broker: sid closed;
                                //  broker -> gateway: unbind sid (user left empty)
    PL_OP_SESSION_EVENT = 11,   //  broker -> plugin with PARLEY_PLUGIN_SESSIONS:
                                //  event, sid, user
    PL_OP_WHO = 12,             //  broker -> peer: I don't know you, say HELLO again
    PL_OP_STATS = 13            //  gateway -> broker: asks for the broker's figures;
                                //  broker -> gateway: body = them as Prometheus text
} pl_op_t;

//  One route as announced in HELLO
typedef struct {
    char *prefix;               //  owned
    uint32_t flags;             //  PARLEY_ROUTE_*
    uint32_t shard;             //  parley_shard_t
    char *shard_field;          //  owned, may be NULL
} pl_route_t;

typedef struct _pl_envelope_t pl_envelope_t;

//  Create a new empty envelope for op
pl_envelope_t *
    pl_envelope_new (pl_op_t op);

//  Destroy the envelope and nullify the reference; safe on NULL
void
    pl_envelope_destroy (pl_envelope_t **self_p);

//  Encode the header into a new msgpack buffer. Caller owns return value
//  (free with free ()); *size_p gets its size. Returns NULL on failure.
uint8_t *
    pl_envelope_encode (pl_envelope_t *self, size_t *size_p);

//  Decode a header from a msgpack buffer (the body is set separately).
//  Returns a new envelope the caller owns, or NULL when the bytes are not a
//  valid header of a version we speak; never asserts on input. When reason is
//  not NULL, a short English reason is written there on failure.
pl_envelope_t *
    pl_envelope_decode (const uint8_t *data, size_t size, char *reason, size_t reason_size);

//  Receive one envelope from a socket. From a ROUTER, the first frame is taken
//  as the routing id. Returns NULL on interrupt or on a malformed message
//  (which is consumed and dropped). Caller owns return value.
pl_envelope_t *
    pl_envelope_recv (void *socket);

//  Send the envelope (routing id first if set and the socket is a ROUTER,
//  then header, then body if any) and destroy it, nullifying the reference.
//  Sends with ZMQ_DONTWAIT: returns 0, or -1 if the message could not be
//  queued (peer gone, or its queue full), in which case it is dropped.
int
    pl_envelope_send (pl_envelope_t **self_p, void *socket);

//  Send a copy of the envelope; self is unchanged. Same returns as send.
int
    pl_envelope_send_copy (pl_envelope_t *self, void *socket);

//  Duplicate the envelope, body included. Caller owns return value.
pl_envelope_t *
    pl_envelope_dup (pl_envelope_t *self);

//  Name of an op, "request", for logs
const char *
    pl_op_name (pl_op_t op);

//  --- Fields. Strings are copied; NULL clears. Getters return NULL/0 when unset.

pl_op_t     pl_envelope_op (pl_envelope_t *self);
void        pl_envelope_set_op (pl_envelope_t *self, pl_op_t op);

//  ROUTER routing id (not part of the header)
zframe_t   *pl_envelope_routing_id (pl_envelope_t *self);
void        pl_envelope_set_routing_id (pl_envelope_t *self, zframe_t *routing_id);

//  For a HELLO read by pl_envelope_recv: its connection's ZeroMQ metadata.
//  "User-Id": over CURVE (tcp:// with keys) the peer's public key in Z85, as
//  zauth sets it; empty or NULL without CURVE. "Peer-Address": the numeric
//  IP address over tcp://, "localhost:UID:GID:PID" over ipc://. Both NULL
//  over inproc (no metadata) and for every other op. Owned by the envelope.
const char *pl_envelope_peer_user_id (pl_envelope_t *self);
const char *pl_envelope_peer_address (pl_envelope_t *self);

//  Request id, chosen by whoever sent the request; 0 = none
uint64_t    pl_envelope_rid (pl_envelope_t *self);
void        pl_envelope_set_rid (pl_envelope_t *self, uint64_t rid);

//  Session id (globally unique, chosen by the gateway); 0 = none
uint64_t    pl_envelope_sid (pl_envelope_t *self);
void        pl_envelope_set_sid (pl_envelope_t *self, uint64_t sid);

//  Message type, "example.echo"
const char *pl_envelope_type (pl_envelope_t *self);
void        pl_envelope_set_type (pl_envelope_t *self, const char *type);

//  The user the broker stamped; never trusted from gateways
const char *pl_envelope_user (pl_envelope_t *self);
void        pl_envelope_set_user (pl_envelope_t *self, const char *user);

//  The client's address, stamped by the broker from session-open
const char *pl_envelope_addr (pl_envelope_t *self);
void        pl_envelope_set_addr (pl_envelope_t *self, const char *addr);

//  The client's own id, carried opaquely as one msgpack value (int or str)
const uint8_t *pl_envelope_cid (pl_envelope_t *self, size_t *size_p);
void        pl_envelope_set_cid (pl_envelope_t *self, const uint8_t *cid, size_t size);

//  Error of a reply or refuse: code NULL means ok
const char *pl_envelope_code (pl_envelope_t *self);
const char *pl_envelope_message (pl_envelope_t *self);
void        pl_envelope_set_error (pl_envelope_t *self, const char *code, const char *message);

//  An error that says when to try again: code and message, and as body the
//  map {"retry_after_ms": retry_ms} (PROTOCOL.md 1.1 "Outcomes"; the
//  gateway writes it after the message). Replaces any body.
void        pl_envelope_set_error_retry (pl_envelope_t *self, const char *code,
                                         const char *message, int64_t retry_ms);

//  Error reply: "unknown" when the request may have taken effect although it
//  failed (PROTOCOL.md 1.1 Outcomes); the gateway adds it to the client's error
const char *pl_envelope_outcome (pl_envelope_t *self);
void        pl_envelope_set_outcome (pl_envelope_t *self, const char *outcome);

//  Reply: bind the requesting session to this user (auth)
const char *pl_envelope_bind (pl_envelope_t *self);
void        pl_envelope_set_bind (pl_envelope_t *self, const char *user);
//  Reply: unbind the requesting session
bool        pl_envelope_unbind (pl_envelope_t *self);
void        pl_envelope_set_unbind (pl_envelope_t *self, bool unbind);

//  Deliver: target sessions (copied)
const uint64_t *pl_envelope_sids (pl_envelope_t *self, size_t *count_p);
void        pl_envelope_set_sids (pl_envelope_t *self, const uint64_t *sids, size_t count);
//  Deliver: target users (copied)
char      **pl_envelope_users (pl_envelope_t *self, size_t *count_p);
void        pl_envelope_set_users (pl_envelope_t *self, const char *const *users, size_t count);

//  Session event: PARLEY_SESSION_BOUND or PARLEY_SESSION_CLOSED
uint32_t    pl_envelope_event (pl_envelope_t *self);
void        pl_envelope_set_event (pl_envelope_t *self, uint32_t event);

//  Hello: "gateway" or "plugin"; the plugin's name; a unique instance name
const char *pl_envelope_kind (pl_envelope_t *self);
void        pl_envelope_set_kind (pl_envelope_t *self, const char *kind);
const char *pl_envelope_name (pl_envelope_t *self);
void        pl_envelope_set_name (pl_envelope_t *self, const char *name);
const char *pl_envelope_instance (pl_envelope_t *self);
void        pl_envelope_set_instance (pl_envelope_t *self, const char *instance);
//  Hello: the plugin ABI the peer speaks; plugin flags (PARLEY_PLUGIN_*)
void        pl_envelope_abi (pl_envelope_t *self, uint32_t *major_p, uint32_t *minor_p);
void        pl_envelope_set_abi (pl_envelope_t *self, uint32_t major, uint32_t minor);
uint32_t    pl_envelope_flags (pl_envelope_t *self);
void        pl_envelope_set_flags (pl_envelope_t *self, uint32_t flags);
//  Hello: routes (copied in and out)
const pl_route_t *pl_envelope_routes (pl_envelope_t *self, size_t *count_p);
void        pl_envelope_add_route (pl_envelope_t *self, const char *prefix, uint32_t flags,
                                   uint32_t shard, const char *shard_field);
//  Hello/welcome: heartbeat interval in milliseconds
uint32_t    pl_envelope_heartbeat (pl_envelope_t *self);
void        pl_envelope_set_heartbeat (pl_envelope_t *self, uint32_t msecs);

//  Request: the time left to answer it, in msecs, relative (peers' clocks
//  differ): each hop sets what is left when it sends. -1 = none given
//  (the getter's answer when unset; a negative value clears it); values
//  past UINT32_MAX are cut to it.
int64_t     pl_envelope_deadline (pl_envelope_t *self);
void        pl_envelope_set_deadline (pl_envelope_t *self, int64_t msecs);
//  The sender's own monotonic clock when it sent this, msecs; 0 = unset.
//  Only differences between two stamps of one sender mean anything: a
//  receiver learns from them how long a message waited on the way
//  (pl_lag.h)
uint64_t    pl_envelope_sent_at (pl_envelope_t *self);
void        pl_envelope_set_sent_at (pl_envelope_t *self, uint64_t msecs);

//  Body frame (a msgpack map). Getter borrows; setter takes ownership of
//  the frame and nullifies the reference; set_body_copy copies bytes.
zframe_t   *pl_envelope_body (pl_envelope_t *self);
void        pl_envelope_set_body (pl_envelope_t *self, zframe_t **body_p);
void        pl_envelope_set_body_copy (pl_envelope_t *self, const void *data, size_t size);

#ifdef __cplusplus
}
#endif

#endif
