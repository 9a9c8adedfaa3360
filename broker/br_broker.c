/*  =========================================================================
    br_broker - the Parley broker: peers, routes, sessions, delivery

    One actor owns everything here: the ROUTER socket, the peer registry, the
    route table, the session registry and the table of requests in flight.
    Nothing is shared with other threads and nothing blocks: every send is
    ZMQ_DONTWAIT and a message that cannot be queued is dropped and counted.

    The peer protocol is proto/ENVELOPE.md. The shape of the state:

        peers       routing id (hex) -> peer_t          (owns the peers)
        instances   instance name    -> peer_t          (live plugin/gateway instances)
        gateways    gateway name     -> peer_t          (live gateway nonces)
        routes      prefix           -> route_t         (kept after its last instance
                                                          dies: unavailable, not unknown)
        sessions    sid              -> session_t       (owns the sessions)
        users       user name        -> user_t          (the bound sessions of a user)
        pending     broker rid       -> pending_t       (owns the requests in flight)
        fifo        pending_t with the whole timeout    (in deadline order as they come)
        shorter     pending_t with less time left       (sorted as they go in)

    Every cross reference has a handle in the list it sits in, so that a
    session close, a reply or a peer's death costs only what it touches.

    Commands on the actor pipe: "$TERM" ends it; "STATUS" is answered with
    zsock_signal 0 (bound and running) or -1 (could not bind): zactor_new
    swallows the actor's first signal, so br_broker_start asks again.
    =========================================================================
*/

#include "br_broker.h"
#include "br_admin.h"
#include "pl_thread.h"
#include "parley_plugin.h"
#include "pl_envelope.h"
#include "pl_stats.h"

#include <ctype.h>
#include <errno.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

//  Bounds: nothing in the broker grows without one
#define BR_HWM                  100000      //  messages queued per peer, each way
#define BR_MAX_MSGSIZE          (PL_ENVELOPE_MAX_BODY + PL_ENVELOPE_MAX_HEADER)
#define BR_MAX_PEERS            4096
#define BR_MAX_ROUTES           4096
#define BR_MAX_PENDING          262144
#define BR_MAX_SESSIONS         (4 * 1024 * 1024)
#define BR_MAX_TYPE             256         //  longest message type we route
#define BR_MAX_BATCH            1024        //  messages handled between timer checks
#define BR_LOG_INTERVAL         5000        //  ms between two "dropped" summaries
//  A request goes on with its time left less 1/BR_MARGIN_PART of it, so that
//  the plugin's own unavailable reaches its caller before our backstop does
#define BR_MARGIN_PART          20
//  retry_after_ms of our own unavailable: no instance, or no answer in time
#define BR_RETRY_AFTER_MS       1000

//  The protocol's own prefixes: a type under one of these is never
//  unknown_type, only unavailable while no plugin serves it (one without
//  a final '.' is a whole type: search)
static const char *s_protocol_prefixes [] = {
    "auth.", "room.", "msg.", "pm.", "presence.", "search", "files.", NULL
};

typedef struct _peer_t peer_t;
typedef struct _route_t route_t;
typedef struct _session_t session_t;
typedef struct _user_t user_t;
typedef struct _pending_t pending_t;

typedef enum {
    PEER_GATEWAY = 1,
    PEER_PLUGIN = 2,
    PEER_ADMIN = 3              //  parleyctl: sends admin.* requests only
} peer_kind_t;

struct _peer_t {
    char *key;                  //  routing id in hex: the registry key
    zframe_t *routing_id;       //  the ROUTER address of the peer
    peer_kind_t kind;           //  gateway or plugin
    char *name;                 //  plugin name, or gateway name (its nonce)
    char *instance;             //  unique instance name, may be NULL for a gateway
    uint32_t flags;             //  PARLEY_PLUGIN_*
    uint32_t heartbeat_ms;      //  the interval the peer announced
    int64_t last_heard;         //  monotonic ms of the last message from it
    int64_t last_sent;          //  monotonic ms of the last message to it
    char **prefixes;            //  the route prefixes this peer serves
    size_t prefix_count;        //  entries in prefixes
    zlistx_t *sessions;         //  gateway: its session_t (borrowed)
    zlistx_t *pending_to;       //  pending_t this peer has to answer (borrowed)
    zlistx_t *pending_from;     //  pending_t this peer waits for (borrowed)
    void *subscriber_handle;    //  handle in broker->subscribers, or NULL
    uint64_t deliver_mark;      //  the deliver pass that last touched this gateway
    uint64_t *deliver_sids;     //  that pass's sids for this gateway
    size_t deliver_count;       //  sids in deliver_sids
    size_t deliver_size;        //  allocated entries of deliver_sids
    zframe_t *stats;            //  plugin: its last STATS body, its figures for
                                //  /metrics (pl_stats), or NULL
};

struct _route_t {
    char *prefix;               //  "room."
    char *service;              //  name of the plugin that serves it, for messages
    uint32_t flags;             //  PARLEY_ROUTE_*
    uint32_t shard;             //  parley_shard_t
    char *shard_field;          //  body field of the shard key, or NULL
    peer_t **instances;         //  live instances (borrowed)
    size_t instance_count;      //  entries in instances
    size_t instance_size;       //  allocated entries
    size_t next_instance;       //  round-robin cursor
};

struct _session_t {
    uint64_t sid;               //  the key in broker->sessions (points here)
    peer_t *gateway;            //  the gateway that hosts it
    void *gateway_handle;       //  handle in gateway->sessions
    char *addr;                 //  client address, or NULL
    user_t *user;               //  bound user, or NULL
    void *user_handle;          //  handle in user->sessions
    uint64_t deliver_mark;      //  the deliver pass that last listed it
};

struct _user_t {
    char *name;                 //  the user's name, the key in broker->users
    zlistx_t *sessions;         //  session_t bound to this user (borrowed)
};

struct _pending_t {
    uint64_t rid;               //  the broker's rid: the key in broker->pending
    uint64_t requester_rid;     //  the rid the requester chose
    uint64_t sid;               //  the requester's session, or 0
    uint8_t *cid;               //  the client's id, one msgpack value, or NULL
    size_t cid_size;            //  bytes in cid
    route_t *route;             //  the route it went to (routes are never freed)
    peer_t *requester;          //  who waits for the answer
    peer_t *target;             //  who has to answer
    void *requester_handle;     //  handle in requester->pending_from
    void *target_handle;        //  handle in target->pending_to
    zlistx_t *fifo;             //  broker->fifo or broker->shorter, borrowed
    void *fifo_handle;          //  handle in that list
    int64_t deadline;           //  monotonic ms when it is answered unavailable
};

typedef struct {
    zsock_t *pipe;              //  actor pipe
    zsock_t *router;            //  the one ROUTER socket
    zpoller_t *poller;          //  pipe and router
    bool inproc_bound;          //  BR_BROKER_INPROC is ours, to unbind at the end
    bool insecure;              //  tcp:// without keys, as the operator asked
    zcertstore_t *admin_keys;   //  operators' keys (--curve-admin), or NULL
    bool terminated;            //  $TERM received
    uint32_t heartbeat_ms;      //  our interval, sent in welcome
    uint32_t request_timeout_ms;    //  unanswered requests fail after this
    int64_t tick_ms;            //  how often heartbeats and deaths are checked
    int64_t next_tick;          //  monotonic ms of the next check
    zhashx_t *peers;            //  routing id hex -> peer_t (owned)
    zhashx_t *instances;        //  instance name -> peer_t
    zhashx_t *gateways;         //  gateway name -> peer_t
    zhashx_t *routes;           //  prefix -> route_t (owned)
    zhashx_t *sessions;         //  sid -> session_t (owned)
    zhashx_t *users;            //  user name -> user_t (owned)
    zhashx_t *pending;          //  broker rid -> pending_t (owned)
    zlistx_t *fifo;             //  pending_t with the whole timeout: appended, so in
                                //  deadline order (the clock only goes forward)
    zlistx_t *shorter;          //  pending_t with less (a plugin's call for a request
                                //  that has waited): in deadline order, sorted in
    zlistx_t *subscribers;      //  plugin peer_t with PARLEY_PLUGIN_SESSIONS
    uint64_t next_rid;          //  the broker's next request id
    uint64_t deliver_mark;      //  counter of deliver passes
    uint64_t dropped;           //  messages we could not queue, ever
    uint64_t dropped_logged;    //  value of dropped at the last summary
    int64_t next_drop_log;      //  monotonic ms before which we stay quiet
    zsock_t *monitor;           //  the ROUTER's failed handshakes, with keys only
    char *monitor_endpoint;     //  its inproc name, unique per broker
    uint64_t refused;           //  handshakes refused (no key, key not allowed), ever
    uint64_t routed;            //  requests forwarded to a plugin, ever (stats)
    uint64_t unavailable;       //  requests the broker answered unavailable, ever
    uint64_t timed_out;         //  ... of them because the plugin did not answer in time
    uint64_t refused_logged;    //  value of refused at the last summary
    int64_t next_refused_log;   //  monotonic ms before which we stay quiet
    char *refused_at;           //  the endpoint of the last refusal
    br_bstar_t *bstar;          //  one of a standby pair, or NULL: always serves
    int64_t stats_asked;        //  monotonic ms we last asked the plugins for
                                //  their figures (STATS)
} broker_t;


//  --------------------------------------------------------------------------
//  Small helpers

//  A 64-bit finalizer (splitmix64): spreads FNV's weak low bits
static uint64_t
s_mix64 (uint64_t value)
{
    value ^= value >> 30;
    value *= 0xbf58476d1ce4e5b9ULL;
    value ^= value >> 27;
    value *= 0x94d049bb133111ebULL;
    value ^= value >> 31;
    return value;
}

static uint64_t
s_fnv1a (uint64_t hash, const void *data, size_t size, bool lower)
{
    const uint8_t *bytes = (const uint8_t *) data;
    for (size_t index = 0; index < size; index++) {
        uint8_t byte = bytes [index];
        if (lower && byte >= 'A' && byte <= 'Z')
            byte = (uint8_t) (byte - 'A' + 'a');
        hash ^= byte;
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

//  zhashx callbacks for uint64 keys stored inside the items themselves
static size_t
s_u64_hash (const void *key)
{
    return (size_t) s_mix64 (*(const uint64_t *) key);
}

static int
s_u64_compare (const void *key1, const void *key2)
{
    uint64_t value1 = *(const uint64_t *) key1;
    uint64_t value2 = *(const uint64_t *) key2;
    return value1 < value2 ? -1 : value1 > value2 ? 1 : 0;
}

static zhashx_t *
s_u64_hash_new (void)
{
    zhashx_t *hash = zhashx_new ();
    if (hash) {
        zhashx_set_key_hasher (hash, s_u64_hash);
        zhashx_set_key_comparator (hash, s_u64_compare);
        zhashx_set_key_duplicator (hash, NULL);
        zhashx_set_key_destructor (hash, NULL);
    }
    return hash;
}

//  Writes the routing id as hex into key (at least 2 * 255 + 1 bytes)
static void
s_routing_key (zframe_t *routing_id, char *key, size_t key_size)
{
    static const char hex [] = "0123456789abcdef";
    const uint8_t *data = zframe_data (routing_id);
    size_t size = zframe_size (routing_id);
    size_t out = 0;
    for (size_t index = 0; index < size && out + 2 < key_size; index++) {
        key [out++] = hex [data [index] >> 4];
        key [out++] = hex [data [index] & 15];
    }
    key [out] = 0;
}

#define BR_ROUTING_KEY_SIZE 520


//  --------------------------------------------------------------------------
//  A light msgpack reader: finds one string field of the body's top-level
//  map without decoding or copying anything. Never trusts a length.

//  Reads the header of the value at *pos. Sets *items_p to the number of
//  values it contains (2n for a map, n for an array) and *skip_p to the
//  bytes of payload after the header. Returns -1 on malformed input.
static int
s_mp_header (const uint8_t *data, size_t size, size_t *pos, uint64_t *items_p,
             uint64_t *skip_p, bool *is_str_p, bool *is_map_p)
{
    if (*pos >= size)
        return -1;
    uint8_t byte = data [(*pos)++];
    uint64_t items = 0, skip = 0;
    size_t length_bytes = 0;        //  big-endian length that follows
    int length_kind = 0;            //  0 none, 1 payload bytes, 2 array, 3 map
    uint64_t extra = 0;             //  fixed payload bytes after a length
    *is_str_p = false;
    *is_map_p = false;

    if (byte <= 0x7f || byte >= 0xe0 || byte == 0xc0 || byte == 0xc2 || byte == 0xc3)
        ;
    else
    if (byte >= 0x80 && byte <= 0x8f) {
        items = 2 * (uint64_t) (byte & 0x0f);
        *is_map_p = true;
    }
    else
    if (byte >= 0x90 && byte <= 0x9f)
        items = byte & 0x0f;
    else
    if (byte >= 0xa0 && byte <= 0xbf) {
        skip = byte & 0x1f;
        *is_str_p = true;
    }
    else {
        switch (byte) {
            case 0xc4: length_bytes = 1; length_kind = 1; break;
            case 0xc5: length_bytes = 2; length_kind = 1; break;
            case 0xc6: length_bytes = 4; length_kind = 1; break;
            case 0xc7: length_bytes = 1; length_kind = 1; extra = 1; break;
            case 0xc8: length_bytes = 2; length_kind = 1; extra = 1; break;
            case 0xc9: length_bytes = 4; length_kind = 1; extra = 1; break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc: skip = 1; break;
            case 0xcd: skip = 2; break;
            case 0xce: skip = 4; break;
            case 0xcf: skip = 8; break;
            case 0xd0: skip = 1; break;
            case 0xd1: skip = 2; break;
            case 0xd2: skip = 4; break;
            case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xd9: length_bytes = 1; length_kind = 1; *is_str_p = true; break;
            case 0xda: length_bytes = 2; length_kind = 1; *is_str_p = true; break;
            case 0xdb: length_bytes = 4; length_kind = 1; *is_str_p = true; break;
            case 0xdc: length_bytes = 2; length_kind = 2; break;
            case 0xdd: length_bytes = 4; length_kind = 2; break;
            case 0xde: length_bytes = 2; length_kind = 3; *is_map_p = true; break;
            case 0xdf: length_bytes = 4; length_kind = 3; *is_map_p = true; break;
            default: return -1;        //  0xc1, never used
        }
    }
    if (length_bytes) {
        if (size - *pos < length_bytes)
            return -1;
        uint64_t length = 0;
        for (size_t index = 0; index < length_bytes; index++)
            length = (length << 8) | data [(*pos)++];
        if (length_kind == 1)
            skip = length + extra;
        else
        if (length_kind == 2)
            items = length;
        else
            items = 2 * length;
    }
    if (skip > size - *pos)
        return -1;
    //  Every contained value takes at least one byte: refuse lying counts
    if (items > size - *pos)
        return -1;
    *items_p = items;
    *skip_p = skip;
    return 0;
}

//  Skips one complete value at *pos. Returns -1 on malformed input.
static int
s_mp_skip (const uint8_t *data, size_t size, size_t *pos)
{
    uint64_t remaining = 1;
    while (remaining > 0) {
        uint64_t items, skip;
        bool is_str, is_map;
        if (s_mp_header (data, size, pos, &items, &skip, &is_str, &is_map))
            return -1;
        *pos += (size_t) skip;
        remaining--;
        if (items > size - *pos || remaining > size - *pos)
            return -1;
        remaining += items;
    }
    return 0;
}

//  Finds the string value of field in the msgpack map body. Returns 0 with
//  *value_p (borrowed, not terminated) and *length_p, or -1 if the body is
//  not a map, has no such field, or the field is not a string.
static int
s_mp_find_string (const uint8_t *data, size_t size, const char *field,
                  const char **value_p, size_t *length_p)
{
    size_t pos = 0;
    uint64_t items, skip;
    bool is_str, is_map;
    if (!data || s_mp_header (data, size, &pos, &items, &skip, &is_str, &is_map)
    ||  !is_map)
        return -1;
    size_t field_length = strlen (field);
    for (uint64_t pair = 0; pair < items / 2; pair++) {
        uint64_t key_items, key_skip;
        if (s_mp_header (data, size, &pos, &key_items, &key_skip, &is_str, &is_map))
            return -1;
        bool match = is_str && key_skip == field_length
                  && memcmp (data + pos, field, field_length) == 0;
        if (!is_str) {
            //  A non-string key: skip its payload and contents
            pos += (size_t) key_skip;
            uint64_t remaining = key_items;
            while (remaining-- > 0)
                if (s_mp_skip (data, size, &pos))
                    return -1;
        }
        else
            pos += (size_t) key_skip;
        if (match) {
            uint64_t value_items, value_skip;
            if (s_mp_header (data, size, &pos, &value_items, &value_skip, &is_str, &is_map)
            ||  !is_str)
                return -1;
            *value_p = (const char *) data + pos;
            *length_p = (size_t) value_skip;
            return 0;
        }
        if (s_mp_skip (data, size, &pos))
            return -1;
    }
    return -1;
}


//  --------------------------------------------------------------------------
//  Destructors (also used by the hashes at teardown)

static void
s_peer_destroy (peer_t **self_p)
{
    if (*self_p) {
        peer_t *self = *self_p;
        free (self->key);
        zframe_destroy (&self->routing_id);
        free (self->name);
        free (self->instance);
        for (size_t index = 0; index < self->prefix_count; index++)
            free (self->prefixes [index]);
        free (self->prefixes);
        zlistx_destroy (&self->sessions);
        zlistx_destroy (&self->pending_to);
        zlistx_destroy (&self->pending_from);
        free (self->deliver_sids);
        zframe_destroy (&self->stats);
        free (self);
        *self_p = NULL;
    }
}

static void
s_route_destroy (route_t **self_p)
{
    if (*self_p) {
        route_t *self = *self_p;
        free (self->prefix);
        free (self->service);
        free (self->shard_field);
        free (self->instances);
        free (self);
        *self_p = NULL;
    }
}

static void
s_session_destroy (session_t **self_p)
{
    if (*self_p) {
        session_t *self = *self_p;
        free (self->addr);
        free (self);
        *self_p = NULL;
    }
}

static void
s_user_destroy (user_t **self_p)
{
    if (*self_p) {
        user_t *self = *self_p;
        free (self->name);
        zlistx_destroy (&self->sessions);
        free (self);
        *self_p = NULL;
    }
}

static void
s_pending_destroy (pending_t **self_p)
{
    if (*self_p) {
        pending_t *self = *self_p;
        free (self->cid);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Sending

//  Sends the envelope to peer and destroys it. A message that cannot be
//  queued is dropped and counted: the broker never waits for a peer.
static int
s_send (broker_t *self, peer_t *peer, pl_envelope_t **envelope_p)
{
    pl_envelope_set_routing_id (*envelope_p, zframe_dup (peer->routing_id));
    //  Our clock on everything a peer gets: the peer learns from it how
    //  long a request waited on its way (pl_lag)
    pl_envelope_set_sent_at (*envelope_p, (uint64_t) zclock_mono ());
    int rc = pl_envelope_send (envelope_p, self->router);
    pl_envelope_destroy (envelope_p);
    if (rc == 0)
        peer->last_sent = zclock_mono ();
    else
        self->dropped++;
    return rc;
}

//  Sends to a routing id we hold no peer for (WHO, REFUSE)
static int
s_send_to_routing_id (broker_t *self, zframe_t *routing_id, pl_envelope_t **envelope_p)
{
    pl_envelope_set_routing_id (*envelope_p, zframe_dup (routing_id));
    int rc = pl_envelope_send (envelope_p, self->router);
    pl_envelope_destroy (envelope_p);
    if (rc)
        self->dropped++;
    return rc;
}

//  An error reply to a requester's rid, sid, cid; the caller sets the error
static pl_envelope_t *
s_reply_new (uint64_t rid, uint64_t sid, const uint8_t *cid, size_t cid_size)
{
    pl_envelope_t *reply = pl_envelope_new (PL_OP_REPLY);
    if (!reply)
        return NULL;
    pl_envelope_set_rid (reply, rid);
    if (sid)
        pl_envelope_set_sid (reply, sid);
    if (cid && cid_size)
        pl_envelope_set_cid (reply, cid, cid_size);
    return reply;
}

//  Answers a request with an error, echoing the requester's rid, sid, cid
static void
s_reply_error (broker_t *self, peer_t *requester, uint64_t rid, uint64_t sid,
               const uint8_t *cid, size_t cid_size, const char *code, const char *message)
{
    pl_envelope_t *reply = s_reply_new (rid, sid, cid, cid_size);
    if (!reply)
        return;
    pl_envelope_set_error (reply, code, message);
    s_send (self, requester, &reply);
}

//  The service name for messages: the plugin's name, else the type's
//  first segment ("room" for "room.join")
static void
s_service_name (route_t *route, const char *type, char *name, size_t name_size)
{
    if (route && route->service)
        snprintf (name, name_size, "%s", route->service);
    else {
        size_t length = strcspn (type, ".");
        snprintf (name, name_size, "%.*s", (int) length, type);
    }
}

//  Answers unavailable with retry_after_ms; with "outcome": "unknown" when
//  the request reached a plugin that then died or went silent (unknown):
//  it may have done it (PROTOCOL.md 1.1 "Outcomes")
static void
s_reply_unavailable (broker_t *self, peer_t *requester, uint64_t rid, uint64_t sid,
                     const uint8_t *cid, size_t cid_size, route_t *route, const char *type,
                     bool unknown)
{
    char service [128];
    s_service_name (route, type ? type : "", service, sizeof service);
    char message [256];
    snprintf (message, sizeof message, unknown
              ? "The %s service did not answer in time; the request may or may not have"
                " taken effect."
              : "The %s service is unavailable; try again later.", service);
    pl_envelope_t *reply = s_reply_new (rid, sid, cid, cid_size);
    if (!reply)
        return;
    pl_envelope_set_error_retry (reply, "unavailable", message, BR_RETRY_AFTER_MS);
    if (unknown)
        pl_envelope_set_outcome (reply, "unknown");
    s_send (self, requester, &reply);
    self->unavailable++;
}


//  --------------------------------------------------------------------------
//  Pending requests

static void
s_pending_remove (broker_t *self, pending_t *pending)
{
    if (pending->requester)
        zlistx_detach (pending->requester->pending_from, pending->requester_handle);
    if (pending->target)
        zlistx_detach (pending->target->pending_to, pending->target_handle);
    zlistx_detach (pending->fifo, pending->fifo_handle);
    zhashx_delete (self->pending, &pending->rid);
}

//  Answers the pending request unavailable (if its requester still lives)
//  and forgets it. Its plugin had it: the outcome is unknown.
static void
s_pending_fail (broker_t *self, pending_t *pending)
{
    if (pending->requester)
        s_reply_unavailable (self, pending->requester, pending->requester_rid,
                             pending->sid, pending->cid, pending->cid_size,
                             pending->route, pending->route ? pending->route->prefix : "",
                             true);
    s_pending_remove (self, pending);
}

//  The fifo's order: the earliest deadline first
static int
s_pending_compare (const void *item1, const void *item2)
{
    int64_t deadline1 = ((const pending_t *) item1)->deadline;
    int64_t deadline2 = ((const pending_t *) item2)->deadline;
    return deadline1 < deadline2 ? -1 : deadline1 > deadline2 ? 1 : 0;
}

//  The pending request with the earliest deadline, or NULL: the first of
//  one of the two lists
static pending_t *
s_pending_earliest (broker_t *self)
{
    pending_t *whole = (pending_t *) zlistx_first (self->fifo);
    pending_t *shorter = (pending_t *) zlistx_first (self->shorter);
    if (!whole || (shorter && shorter->deadline < whole->deadline))
        return shorter;
    return whole;
}

//  Keeps a new pending request in deadline order. Most come from gateways
//  with the whole timeout: appended to fifo, in order at no cost. A
//  plugin's call carries what its request has left, so those are sorted
//  into a list of their own, which holds only the calls in flight, not
//  every client request waiting behind them.
static void
s_pending_queue (broker_t *self, pending_t *pending, int64_t time_left)
{
    pending->fifo = time_left >= self->request_timeout_ms ? self->fifo : self->shorter;
    pending->fifo_handle = pending->fifo == self->fifo
                         ? zlistx_add_end (self->fifo, pending)
                         : zlistx_insert (self->shorter, pending, false);
}

static void
s_pending_expire (broker_t *self, int64_t now)
{
    size_t expired = 0;
    pending_t *pending;
    while ((pending = s_pending_earliest (self)) && pending->deadline <= now) {
        s_pending_fail (self, pending);
        expired++;
    }
    self->timed_out += expired;
    if (expired)
        zsys_warning ("broker: %zu request(s) unanswered by their deadline (at most %"
                      PRIu32 " ms); answered unavailable, outcome unknown", expired,
                      self->request_timeout_ms);
}


//  --------------------------------------------------------------------------
//  Sessions and users

//  Tells every SESSIONS plugin instance that session was bound or closed
static void
s_session_event (broker_t *self, session_t *session, uint32_t event)
{
    if (!session->user)
        return;
    peer_t *subscriber = (peer_t *) zlistx_first (self->subscribers);
    while (subscriber) {
        pl_envelope_t *envelope = pl_envelope_new (PL_OP_SESSION_EVENT);
        if (envelope) {
            pl_envelope_set_event (envelope, event);
            pl_envelope_set_sid (envelope, session->sid);
            pl_envelope_set_user (envelope, session->user->name);
            s_send (self, subscriber, &envelope);
        }
        subscriber = (peer_t *) zlistx_next (self->subscribers);
    }
}

static void
s_session_unbind (broker_t *self, session_t *session)
{
    if (!session->user)
        return;
    s_session_event (self, session, PARLEY_SESSION_CLOSED);
    user_t *user = session->user;
    zlistx_detach (user->sessions, session->user_handle);
    session->user = NULL;
    session->user_handle = NULL;
    if (zlistx_size (user->sessions) == 0)
        zhashx_delete (self->users, user->name);
}

static int
s_session_bind (broker_t *self, session_t *session, const char *name)
{
    if (session->user && streq (session->user->name, name))
        return 0;
    s_session_unbind (self, session);
    user_t *user = (user_t *) zhashx_lookup (self->users, name);
    if (!user) {
        user = (user_t *) zmalloc (sizeof (user_t));
        if (!user)
            return -1;
        user->name = strdup (name);
        user->sessions = zlistx_new ();
        if (!user->name || !user->sessions) {
            s_user_destroy (&user);
            return -1;
        }
        zhashx_insert (self->users, user->name, user);
    }
    session->user_handle = zlistx_add_end (user->sessions, session);
    session->user = user;
    s_session_event (self, session, PARLEY_SESSION_BOUND);
    return 0;
}

//  Unbinds a session and tells its gateway, so that it forgets the user too
static void
s_session_unbind_and_tell (broker_t *self, session_t *session)
{
    if (!session->user)
        return;
    s_session_unbind (self, session);
    pl_envelope_t *close = pl_envelope_new (PL_OP_SESSION_CLOSE);
    if (close) {
        pl_envelope_set_sid (close, session->sid);
        s_send (self, session->gateway, &close);
    }
}

//  A plugin unbinds sessions (auth's logout on every session of a token)
static void
s_sessions_unbind (broker_t *self, peer_t *plugin, pl_envelope_t *envelope)
{
    size_t count = 0;
    const uint64_t *sids = pl_envelope_sids (envelope, &count);
    for (size_t index = 0; index < count; index++) {
        session_t *session = (session_t *) zhashx_lookup (self->sessions, &sids [index]);
        if (session && session->user) {
            zsys_info ("broker: plugin '%s' unbound session %" PRIx64 " of '%s'",
                       plugin->name, session->sid, session->user->name);
            s_session_unbind_and_tell (self, session);
        }
    }
}

//  A SESSIONS plugin just welcomed starts from the registry as it is now
static void
s_sessions_snapshot (broker_t *self, peer_t *subscriber)
{
    pl_envelope_t *reset = pl_envelope_new (PL_OP_SESSION_EVENT);
    if (!reset)
        return;
    pl_envelope_set_event (reset, PARLEY_SESSION_RESET);
    s_send (self, subscriber, &reset);
    session_t *session = (session_t *) zhashx_first (self->sessions);
    while (session) {
        if (session->user) {
            pl_envelope_t *bound = pl_envelope_new (PL_OP_SESSION_EVENT);
            if (bound) {
                pl_envelope_set_event (bound, PARLEY_SESSION_BOUND);
                pl_envelope_set_sid (bound, session->sid);
                pl_envelope_set_user (bound, session->user->name);
                s_send (self, subscriber, &bound);
            }
        }
        session = (session_t *) zhashx_next (self->sessions);
    }
}

static void
s_session_remove (broker_t *self, session_t *session)
{
    s_session_unbind (self, session);
    zlistx_detach (session->gateway->sessions, session->gateway_handle);
    zhashx_delete (self->sessions, &session->sid);
}

static void
s_session_open (broker_t *self, peer_t *gateway, pl_envelope_t *envelope)
{
    uint64_t sid = pl_envelope_sid (envelope);
    if (!sid) {
        zsys_warning ("broker: gateway '%s' opened a session without a sid; ignored",
                      gateway->name);
        return;
    }
    const char *addr = pl_envelope_addr (envelope);
    session_t *session = (session_t *) zhashx_lookup (self->sessions, &sid);
    if (session && session->gateway != gateway) {
        zsys_warning ("broker: gateway '%s' opened session %" PRIx64 " held by gateway '%s';"
                      " moved it", gateway->name, sid, session->gateway->name);
        s_session_remove (self, session);
        session = NULL;
    }
    const char *user = pl_envelope_user (envelope);
    if (session) {
        //  Announced again (after WHO): refresh the address and the binding
        free (session->addr);
        session->addr = addr ? strdup (addr) : NULL;
        if (user && *user && s_session_bind (self, session, user))
            zsys_error ("broker: out of memory binding session %" PRIx64, sid);
        return;
    }
    if (zhashx_size (self->sessions) >= BR_MAX_SESSIONS) {
        zsys_error ("broker: session limit (%d) reached; session %" PRIx64
                    " of gateway '%s' not registered", BR_MAX_SESSIONS, sid, gateway->name);
        return;
    }
    session = (session_t *) zmalloc (sizeof (session_t));
    if (!session)
        return;
    session->sid = sid;
    session->gateway = gateway;
    session->addr = addr ? strdup (addr) : NULL;
    session->gateway_handle = zlistx_add_end (gateway->sessions, session);
    zhashx_insert (self->sessions, &session->sid, session);
    //  A gateway re-announcing its sessions after a broker restart says who
    //  each was bound to: gateways are trusted peers
    if (user && *user && s_session_bind (self, session, user))
        zsys_error ("broker: out of memory binding session %" PRIx64, sid);
}

static void
s_session_close (broker_t *self, peer_t *gateway, pl_envelope_t *envelope)
{
    uint64_t sid = pl_envelope_sid (envelope);
    session_t *session = (session_t *) zhashx_lookup (self->sessions, &sid);
    if (session && session->gateway == gateway)
        s_session_remove (self, session);
}


//  --------------------------------------------------------------------------
//  Routes

static route_t *
s_route_lookup (broker_t *self, const char *type)
{
    size_t length = strlen (type);
    if (length >= BR_MAX_TYPE)
        return NULL;
    char prefix [BR_MAX_TYPE];
    memcpy (prefix, type, length + 1);
    //  Longest prefix first: at most BR_MAX_TYPE lookups, usually a few
    while (length > 0) {
        prefix [length] = 0;
        route_t *route = (route_t *) zhashx_lookup (self->routes, prefix);
        if (route)
            return route;
        length--;
    }
    return NULL;
}

static bool
s_is_protocol_type (const char *type)
{
    for (int index = 0; s_protocol_prefixes [index]; index++) {
        const char *prefix = s_protocol_prefixes [index];
        size_t length = strlen (prefix);
        if (strncmp (type, prefix, length) == 0
        &&  (prefix [length - 1] == '.' || type [length] == 0))
            return true;
    }
    return false;
}

static void
s_route_remove_instance (route_t *route, peer_t *peer)
{
    for (size_t index = 0; index < route->instance_count; index++)
        if (route->instances [index] == peer) {
            memmove (route->instances + index, route->instances + index + 1,
                     (route->instance_count - index - 1) * sizeof (peer_t *));
            route->instance_count--;
            return;
        }
}

static int
s_route_add_instance (broker_t *self, peer_t *peer, const pl_route_t *announced)
{
    route_t *route = (route_t *) zhashx_lookup (self->routes, announced->prefix);
    if (!route) {
        if (zhashx_size (self->routes) >= BR_MAX_ROUTES)
            return -1;
        route = (route_t *) zmalloc (sizeof (route_t));
        if (!route)
            return -1;
        route->prefix = strdup (announced->prefix);
        if (!route->prefix) {
            s_route_destroy (&route);
            return -1;
        }
        zhashx_insert (self->routes, route->prefix, route);
    }
    //  The newest registration defines the route's behaviour
    free (route->service);
    route->service = strdup (peer->name);
    free (route->shard_field);
    route->shard_field = announced->shard_field ? strdup (announced->shard_field) : NULL;
    route->flags = announced->flags;
    route->shard = announced->shard;
    if (route->instance_count == route->instance_size) {
        size_t size = route->instance_size ? route->instance_size * 2 : 4;
        peer_t **instances = (peer_t **) realloc (route->instances, size * sizeof (peer_t *));
        if (!instances)
            return -1;
        route->instances = instances;
        route->instance_size = size;
    }
    route->instances [route->instance_count++] = peer;
    return 0;
}

//  Picks the instance for a request: rendezvous hashing of the shard key
//  (highest hash of instance name + lower-cased key wins), or round-robin
static peer_t *
s_route_pick (route_t *route, const char *user, zframe_t *body)
{
    if (route->instance_count == 0)
        return NULL;
    if (route->instance_count == 1)
        return route->instances [0];

    const char *key = NULL;
    size_t key_length = 0;
    bool keyed = false;
    if (route->shard != PARLEY_SHARD_NONE && route->shard_field && body)
        keyed = s_mp_find_string (zframe_data (body), zframe_size (body),
                                  route->shard_field, &key, &key_length) == 0;
    if (!keyed) {
        //  No key (stateless, or the plugin will answer bad_request)
        peer_t *peer = route->instances [route->next_instance % route->instance_count];
        route->next_instance++;
        return peer;
    }
    //  The pair's order must not depend on who asks: sort case-insensitively
    const char *first = key, *second = NULL;
    size_t first_length = key_length, second_length = 0;
    if (route->shard == PARLEY_SHARD_USER_PAIR && user) {
        size_t user_length = strlen (user);
        size_t common = user_length < key_length ? user_length : key_length;
        int order = strncasecmp (user, key, common);
        if (order == 0)
            order = user_length < key_length ? -1 : user_length > key_length ? 1 : 0;
        if (order <= 0) {
            first = user; first_length = user_length;
            second = key; second_length = key_length;
        }
        else {
            second = user; second_length = user_length;
        }
    }
    peer_t *best = NULL;
    uint64_t best_score = 0;
    for (size_t index = 0; index < route->instance_count; index++) {
        peer_t *peer = route->instances [index];
        const char *instance = peer->instance ? peer->instance : peer->key;
        uint64_t hash = 0xcbf29ce484222325ULL;
        hash = s_fnv1a (hash, instance, strlen (instance) + 1, false);
        hash = s_fnv1a (hash, first, first_length, true);
        if (second) {
            hash = s_fnv1a (hash, "\n", 1, false);
            hash = s_fnv1a (hash, second, second_length, true);
        }
        uint64_t score = s_mix64 (hash);
        if (!best || score > best_score) {
            best = peer;
            best_score = score;
        }
    }
    return best;
}


//  --------------------------------------------------------------------------
//  Peers

//  Forgets a peer: its routes, its pending requests (answered unavailable
//  at once), its sessions if a gateway. Destroys the peer.
static void
s_peer_remove (broker_t *self, peer_t *peer, const char *why)
{
    size_t failed = zlistx_size (peer->pending_to);
    size_t sessions = zlistx_size (peer->sessions);
    zsys_info ("broker: %s '%s' (%s) %s; dropped its routes, %zu pending request(s)"
               " answered unavailable, %zu session(s) closed",
               peer->kind == PEER_GATEWAY ? "gateway"
               : peer->kind == PEER_ADMIN ? "admin" : "plugin", peer->name,
               peer->instance ? peer->instance : peer->key, why, failed, sessions);

    for (size_t index = 0; index < peer->prefix_count; index++) {
        route_t *route = (route_t *) zhashx_lookup (self->routes, peer->prefixes [index]);
        if (route)
            s_route_remove_instance (route, peer);
    }
    if (peer->subscriber_handle) {
        zlistx_detach (self->subscribers, peer->subscriber_handle);
        peer->subscriber_handle = NULL;
    }
    pending_t *pending;
    while ((pending = (pending_t *) zlistx_first (peer->pending_to))) {
        //  Detach from us first so that the reply goes nowhere near us
        zlistx_detach (peer->pending_to, pending->target_handle);
        pending->target = NULL;
        s_pending_fail (self, pending);
    }
    while ((pending = (pending_t *) zlistx_first (peer->pending_from))) {
        //  Nobody waits for it now: a late answer is dropped as unknown
        zlistx_detach (peer->pending_from, pending->requester_handle);
        pending->requester = NULL;
        s_pending_remove (self, pending);
    }
    session_t *session;
    while ((session = (session_t *) zlistx_first (peer->sessions)))
        s_session_remove (self, session);

    if (peer->instance && zhashx_lookup (self->instances, peer->instance) == peer)
        zhashx_delete (self->instances, peer->instance);
    if (peer->kind == PEER_GATEWAY && zhashx_lookup (self->gateways, peer->name) == peer)
        zhashx_delete (self->gateways, peer->name);
    zhashx_delete (self->peers, peer->key);    //  destroys the peer
}

static void
s_refuse (broker_t *self, zframe_t *routing_id, const char *code, const char *message)
{
    zsys_warning ("broker: refused a peer: %s", message);
    pl_envelope_t *refuse = pl_envelope_new (PL_OP_REFUSE);
    if (!refuse)
        return;
    pl_envelope_set_error (refuse, code, message);
    s_send_to_routing_id (self, routing_id, &refuse);
}

//  May this connection say hello as an admin peer? ZeroMQ stamps every
//  message with its connection's metadata (pl_envelope_peer_user_id): over
//  CURVE (tcp://) "User-Id" is the peer's public key in Z85 (zauth sets it);
//  over ipc:// and tcp:// without keys it is empty or missing, and
//  "Peer-Address" is the numeric IP address for tcp:// only
//  ("localhost:UID:GID:PID" for ipc://); inproc has no metadata.
//  The socket file's mode 0600 is the operator's credential over ipc://.
static bool
s_admin_allowed (broker_t *self, pl_envelope_t *hello, char *message, size_t size)
{
    const char *user_id = pl_envelope_peer_user_id (hello);
    if (user_id && *user_id) {
        if (self->admin_keys && zcertstore_lookup (self->admin_keys, user_id))
            return true;
        snprintf (message, size, "the key %.40s may not say hello as admin: it is not"
                  " in the broker's --curve-admin folder", user_id);
        return false;
    }
    const char *address = pl_envelope_peer_address (hello);
    unsigned char ip [sizeof (struct in6_addr)];
    if (address && (inet_pton (AF_INET, address, ip) == 1
                ||  inet_pton (AF_INET6, address, ip) == 1)) {
        snprintf (message, size, "a peer at %.64s may not say hello as admin over"
                  " tcp:// without CURVE keys (--insecure-peers); use ipc://", address);
        return false;
    }
    return true;
}

static void
s_hello (broker_t *self, pl_envelope_t *envelope, const char *key)
{
    zframe_t *routing_id = pl_envelope_routing_id (envelope);
    //  A known peer that says HELLO again decided we were dead: start over
    peer_t *old = (peer_t *) zhashx_lookup (self->peers, key);
    if (old)
        s_peer_remove (self, old, "registered again");

    char message [512];
    const char *kind = pl_envelope_kind (envelope);
    const char *name = pl_envelope_name (envelope);
    const char *instance = pl_envelope_instance (envelope);
    peer_kind_t peer_kind;
    if (kind && streq (kind, "gateway"))
        peer_kind = PEER_GATEWAY;
    else
    if (kind && streq (kind, "plugin"))
        peer_kind = PEER_PLUGIN;
    else
    if (kind && streq (kind, "admin"))
        peer_kind = PEER_ADMIN;
    else {
        snprintf (message, sizeof message, "a peer said hello with kind '%s'; "
                  "expected 'gateway', 'plugin' or 'admin'", kind ? kind : "");
        s_refuse (self, routing_id, "bad_request", message);
        return;
    }
    if (!name || !*name) {
        s_refuse (self, routing_id, "bad_request",
                  "a peer said hello without a name");
        return;
    }
    if (peer_kind == PEER_ADMIN && !s_admin_allowed (self, envelope, message,
                                                     sizeof message)) {
        s_refuse (self, routing_id, "forbidden", message);
        return;
    }
    if (peer_kind == PEER_PLUGIN) {
        uint32_t major = 0, minor = 0;
        pl_envelope_abi (envelope, &major, &minor);
        if (major != PARLEY_ABI_MAJOR) {
            snprintf (message, sizeof message,
                      "plugin '%s' speaks plugin ABI %" PRIu32 ".%" PRIu32
                      "; this broker supports ABI %d (%d.%d)",
                      name, major, minor, PARLEY_ABI_MAJOR, PARLEY_ABI_MAJOR,
                      PARLEY_ABI_MINOR);
            s_refuse (self, routing_id, "unsupported_abi", message);
            return;
        }
        if (!instance || !*instance) {
            snprintf (message, sizeof message,
                      "plugin '%s' said hello without an instance name", name);
            s_refuse (self, routing_id, "bad_request", message);
            return;
        }
    }
    if (instance && *instance && zhashx_lookup (self->instances, instance)) {
        snprintf (message, sizeof message,
                  "%s '%s': instance '%s' is already registered and alive",
                  kind, name, instance);
        s_refuse (self, routing_id, "duplicate_instance", message);
        return;
    }
    if (peer_kind == PEER_GATEWAY && zhashx_lookup (self->gateways, name)) {
        snprintf (message, sizeof message,
                  "gateway '%s' is already registered and alive", name);
        s_refuse (self, routing_id, "duplicate_gateway", message);
        return;
    }
    size_t route_count = 0;
    const pl_route_t *routes = pl_envelope_routes (envelope, &route_count);
    if (peer_kind == PEER_PLUGIN) {
        for (size_t index = 0; index < route_count; index++) {
            const pl_route_t *route = &routes [index];
            const char *problem = NULL;
            if (!route->prefix || !*route->prefix)
                problem = "a route with an empty prefix";
            else
            if (strlen (route->prefix) >= BR_MAX_TYPE)
                problem = "a route prefix that is too long";
            else
            if (route->shard > PARLEY_SHARD_USER_PAIR)
                problem = "a route with an unknown shard kind";
            else
            if (route->shard != PARLEY_SHARD_NONE
            && (!route->shard_field || !*route->shard_field))
                problem = "a sharded route without a shard field";
            if (problem) {
                snprintf (message, sizeof message, "plugin '%s' announced %s ('%s')",
                          name, problem, route->prefix ? route->prefix : "");
                s_refuse (self, routing_id, "bad_request", message);
                return;
            }
        }
    }
    if (zhashx_size (self->peers) >= BR_MAX_PEERS) {
        snprintf (message, sizeof message,
                  "%s '%s' refused: the broker already has %d peers", kind, name,
                  BR_MAX_PEERS);
        s_refuse (self, routing_id, "unavailable", message);
        return;
    }

    peer_t *peer = (peer_t *) zmalloc (sizeof (peer_t));
    if (!peer)
        return;
    peer->key = strdup (key);
    peer->routing_id = zframe_dup (routing_id);
    peer->kind = peer_kind;
    peer->name = strdup (name);
    peer->instance = instance && *instance ? strdup (instance) : NULL;
    peer->flags = pl_envelope_flags (envelope);
    peer->heartbeat_ms = pl_envelope_heartbeat (envelope);
    peer->last_heard = zclock_mono ();
    peer->sessions = zlistx_new ();
    peer->pending_to = zlistx_new ();
    peer->pending_from = zlistx_new ();
    if (peer_kind == PEER_PLUGIN && route_count) {
        peer->prefixes = (char **) calloc (route_count, sizeof (char *));
        if (peer->prefixes)
            for (size_t index = 0; index < route_count; index++) {
                peer->prefixes [index] = strdup (routes [index].prefix);
                if (peer->prefixes [index])
                    peer->prefix_count++;
            }
    }
    if (!peer->key || !peer->routing_id || !peer->name || !peer->sessions
    ||  !peer->pending_to || !peer->pending_from
    ||  (route_count && peer_kind == PEER_PLUGIN && peer->prefix_count != route_count)) {
        zsys_error ("broker: out of memory registering '%s'", name);
        s_peer_destroy (&peer);
        return;
    }
    zhashx_insert (self->peers, peer->key, peer);
    if (peer->instance)
        zhashx_insert (self->instances, peer->instance, peer);
    if (peer_kind == PEER_GATEWAY)
        zhashx_insert (self->gateways, peer->name, peer);
    for (size_t index = 0; index < peer->prefix_count; index++)
        if (s_route_add_instance (self, peer, &routes [index]))
            zsys_error ("broker: could not add route '%s' of plugin '%s'",
                        routes [index].prefix, name);
    if (peer_kind == PEER_PLUGIN && (peer->flags & PARLEY_PLUGIN_SESSIONS))
        peer->subscriber_handle = zlistx_add_end (self->subscribers, peer);

    pl_envelope_t *welcome = pl_envelope_new (PL_OP_WELCOME);
    if (welcome) {
        pl_envelope_set_heartbeat (welcome, self->heartbeat_ms);
        s_send (self, peer, &welcome);
    }
    if (peer->subscriber_handle)
        s_sessions_snapshot (self, peer);
    char route_list [256] = "";
    size_t used = 0;
    for (size_t index = 0; index < peer->prefix_count && used < sizeof route_list; index++)
        used += (size_t) snprintf (route_list + used, sizeof route_list - used, "%s%s",
                                   index ? " " : "", peer->prefixes [index]);
    zsys_info ("broker: welcomed %s '%s' (%s)%s%s", kind, name,
               peer->instance ? peer->instance : peer->key,
               peer->prefix_count ? " serving " : "", route_list);
}


//  --------------------------------------------------------------------------
//  Admin peers (parleyctl): admin.* routes only, answered by a plugin or,
//  for what only the broker knows, here (br_admin). ENVELOPE.md, "Admin".

//  An admin peer reaches only PARLEY_ROUTE_ADMIN routes; nobody else does
static bool
s_admin_route_allowed (peer_t *requester, route_t *route)
{
    bool admin_route = route && (route->flags & PARLEY_ROUTE_ADMIN);
    return requester->kind == PEER_ADMIN ? admin_route : !admin_route;
}

//  Identity is stamped: no user, and "admin:" with the peer's name as the
//  address, which no gateway session and no plugin call carries
static void
s_admin_stamp (peer_t *requester, pl_envelope_t *envelope)
{
    char addr [300];
    snprintf (addr, sizeof addr, "admin:%.250s",
              requester->instance ? requester->instance : requester->name);
    pl_envelope_set_user (envelope, NULL);
    pl_envelope_set_addr (envelope, addr);
}

static void
s_admin_answer (broker_t *self, peer_t *requester, uint64_t rid, zframe_t **answer_p)
{
    pl_envelope_t *reply = pl_envelope_new (PL_OP_REPLY);
    if (!reply) {
        zframe_destroy (answer_p);
        return;
    }
    pl_envelope_set_rid (reply, rid);
    pl_envelope_set_body (reply, answer_p);
    s_send (self, requester, &reply);
}

//  admin.online: every user with bound sessions, and how many
static int
s_admin_online (broker_t *self, zframe_t *body, zframe_t **answer_p, char *message,
                size_t message_size)
{
    size_t count = zhashx_size (self->users);
    br_admin_user_t *users = (br_admin_user_t *) calloc (count ? count : 1,
                                                         sizeof (br_admin_user_t));
    if (!users) {
        snprintf (message, message_size, "The broker ran out of memory.");
        return -1;
    }
    size_t used = 0;
    for (user_t *user = (user_t *) zhashx_first (self->users); user && used < count;
         user = (user_t *) zhashx_next (self->users))
        users [used++] = (br_admin_user_t) { user->name, zlistx_size (user->sessions) };
    int rc = br_admin_online (users, used, body ? zframe_data (body) : NULL,
                              body ? zframe_size (body) : 0, answer_p, message, message_size);
    free (users);
    return rc;
}

//  admin.plugins: every peer, with its routes or sessions
static int
s_admin_peers (broker_t *self, zframe_t **answer_p)
{
    size_t count = zhashx_size (self->peers);
    br_admin_peer_t *peers = (br_admin_peer_t *) calloc (count ? count : 1,
                                                         sizeof (br_admin_peer_t));
    if (!peers)
        return -1;
    size_t used = 0;
    for (peer_t *peer = (peer_t *) zhashx_first (self->peers); peer && used < count;
         peer = (peer_t *) zhashx_next (self->peers))
        peers [used++] = (br_admin_peer_t) {
            peer->kind == PEER_GATEWAY ? "gateway" : peer->kind == PEER_ADMIN ? "admin"
                                                                              : "plugin",
            peer->name, peer->instance, peer->prefixes, peer->prefix_count,
            zlistx_size (peer->sessions) };
    int rc = br_admin_peers (peers, used, answer_p);
    free (peers);
    return rc;
}

//  The admin requests the broker answers itself. Returns true when the
//  request was one of them (answered), false to route it.
static bool
s_admin_request (broker_t *self, peer_t *requester, pl_envelope_t *envelope)
{
    const char *type = pl_envelope_type (envelope);
    bool online = streq (type, "admin.online");
    if (!online && !streq (type, "admin.plugins"))
        return false;
    uint64_t rid = pl_envelope_rid (envelope);
    zframe_t *answer = NULL;
    char message [160] = "The broker ran out of memory.";
    int rc = online ? s_admin_online (self, pl_envelope_body (envelope), &answer, message,
                                      sizeof message)
                    : s_admin_peers (self, &answer);
    if (rc)
        s_reply_error (self, requester, rid, 0, NULL, 0, online ? "bad_request" : "internal",
                       message);
    else
        s_admin_answer (self, requester, rid, &answer);
    return true;
}


//  --------------------------------------------------------------------------
//  Requests, replies, deliveries

static void
s_request (broker_t *self, peer_t *requester, pl_envelope_t **envelope_p)
{
    pl_envelope_t *envelope = *envelope_p;
    uint64_t rid = pl_envelope_rid (envelope);
    uint64_t sid = requester->kind == PEER_GATEWAY ? pl_envelope_sid (envelope) : 0;
    size_t cid_size = 0;
    const uint8_t *cid = pl_envelope_cid (envelope, &cid_size);
    const char *type = pl_envelope_type (envelope);
    char message [BR_MAX_TYPE + 128];

    if (!type || !*type) {
        s_reply_error (self, requester, rid, sid, cid, cid_size, "bad_request",
                       "The request has no type.");
        return;
    }
    if (requester->kind == PEER_ADMIN && s_admin_request (self, requester, envelope))
        return;                 //  answered by the broker itself
    route_t *route = s_route_lookup (self, type);
    bool gateway = requester->kind == PEER_GATEWAY;
    //  A type too long to route is unknown whatever its prefix: no plugin
    //  can serve it, so "unavailable" would send the client retrying forever
    bool routable = strlen (type) < BR_MAX_TYPE;
    if ((!route && (!routable || !s_is_protocol_type (type)))
    ||  (route && gateway && (route->flags & PARLEY_ROUTE_INTERNAL))
    ||  !s_admin_route_allowed (requester, route)) {
        snprintf (message, sizeof message, "Unknown message type '%.*s'.",
                  BR_MAX_TYPE, type);
        s_reply_error (self, requester, rid, sid, cid, cid_size, "unknown_type", message);
        return;
    }
    session_t *session = NULL;
    if (gateway) {
        session = sid ? (session_t *) zhashx_lookup (self->sessions, &sid) : NULL;
        if (session && session->gateway != requester)
            session = NULL;
        //  With no route registered yet, PROTOCOL.md decides: only auth.*
        //  is served before login, and files.* (the gateway's HTTP side,
        //  which a token authenticates) never needs a session: without
        //  the files plugin they are unavailable, not unauthenticated
        bool public_route = route ? (route->flags & PARLEY_ROUTE_PUBLIC) != 0
                                  : strncmp (type, "auth.", 5) == 0
                                    || strncmp (type, "files.", 6) == 0;
        if (!public_route && !(session && session->user)) {
            snprintf (message, sizeof message,
                      "Log in first: '%.*s' needs an authenticated session.",
                      BR_MAX_TYPE, type);
            s_reply_error (self, requester, rid, sid, cid, cid_size,
                           "unauthenticated", message);
            return;
        }
    }
    const char *user = session && session->user ? session->user->name : NULL;
    peer_t *target = route ? s_route_pick (route, user, pl_envelope_body (envelope)) : NULL;
    //  The time the request has: what its sender gave it, never more than
    //  our timeout; it goes on with a margin less, or not at all
    int64_t time_left = pl_envelope_deadline (envelope);
    if (time_left < 0 || time_left > self->request_timeout_ms)
        time_left = self->request_timeout_ms;
    int64_t forward = time_left - time_left / BR_MARGIN_PART;
    if (!target || forward <= 0) {
        s_reply_unavailable (self, requester, rid, sid, cid, cid_size, route, type, false);
        return;
    }
    if (zhashx_size (self->pending) >= BR_MAX_PENDING) {
        zsys_warning ("broker: %d requests in flight; '%s' answered unavailable",
                      BR_MAX_PENDING, type);
        s_reply_unavailable (self, requester, rid, sid, cid, cid_size, route, type, false);
        return;
    }
    pending_t *pending = (pending_t *) zmalloc (sizeof (pending_t));
    if (!pending)
        return;
    pending->rid = self->next_rid++;
    pending->requester_rid = rid;
    pending->sid = sid;
    if (cid && cid_size) {
        pending->cid = (uint8_t *) malloc (cid_size);
        if (!pending->cid) {
            s_pending_destroy (&pending);
            return;
        }
        memcpy (pending->cid, cid, cid_size);
        pending->cid_size = cid_size;
    }
    pending->route = route;
    pending->requester = requester;
    pending->target = target;
    pending->deadline = zclock_mono () + time_left;
    pending->requester_handle = zlistx_add_end (requester->pending_from, pending);
    pending->target_handle = zlistx_add_end (target->pending_to, pending);
    s_pending_queue (self, pending, time_left);
    zhashx_insert (self->pending, &pending->rid, pending);

    //  Identity is stamped, never trusted: whatever the gateway sent goes
    pl_envelope_set_rid (envelope, pending->rid);
    pl_envelope_set_user (envelope, user);
    pl_envelope_set_addr (envelope, session ? session->addr : NULL);
    pl_envelope_set_deadline (envelope, forward);
    if (requester->kind == PEER_ADMIN)
        s_admin_stamp (requester, envelope);
    if (!gateway)
        pl_envelope_set_sid (envelope, 0);
    s_send (self, target, envelope_p);
    self->routed++;
}

//  A label value as the text format wants it: \, " and newline escaped
static void
s_stats_label (FILE *out, const char *value)
{
    for (; value && *value; value++) {
        if (*value == '\\' || *value == '"')
            fputc ('\\', out);
        if (*value == '\n')
            fputs ("\\n", out);
        else
            fputc (*value, out);
    }
}

//  The plugins' figures, from the last STATS of each instance alive
static void
s_stats_plugins (broker_t *self, FILE *out)
{
    size_t count = 0;
    pl_stats_part_t *parts = (pl_stats_part_t *) calloc (zhashx_size (self->peers) + 1,
                                                         sizeof (pl_stats_part_t));
    if (!parts)
        return;
    for (peer_t *peer = (peer_t *) zhashx_first (self->peers); peer;
         peer = (peer_t *) zhashx_next (self->peers))
        if (peer->kind == PEER_PLUGIN && peer->stats && peer->instance)
            parts [count++] = (pl_stats_part_t) { peer->instance,
                zframe_data (peer->stats), zframe_size (peer->stats) };
    pl_stats_render (out, parts, count);
    free (parts);
}

//  Asks every plugin instance for its figures, at most about twice a
//  heartbeat however many gateways ask us: the answers reach the next
//  page (a plugin of ABI 1.3 or before answers nothing)
static void
s_stats_ask_plugins (broker_t *self)
{
    int64_t now = zclock_mono ();
    if (now - self->stats_asked < self->heartbeat_ms / 2)
        return;
    self->stats_asked = now;
    for (peer_t *peer = (peer_t *) zhashx_first (self->peers); peer;
         peer = (peer_t *) zhashx_next (self->peers))
        if (peer->kind == PEER_PLUGIN) {
            pl_envelope_t *ask = pl_envelope_new (PL_OP_STATS);
            if (ask)
                s_send (self, peer, &ask);
        }
}

//  STATS from a plugin: its figures, kept for the next page
static void
s_stats_keep (peer_t *peer, pl_envelope_t *envelope)
{
    zframe_t *body = pl_envelope_body (envelope);
    zframe_destroy (&peer->stats);
    if (body)
        peer->stats = zframe_dup (body);
}

//  STATS from a gateway: the broker's figures and the plugins', as
//  Prometheus text the gateway puts on its /metrics page as it is
//  (ENVELOPE.md, "Stats")
static void
s_stats (broker_t *self, peer_t *gateway)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    if (!out)
        return;
    fprintf (out, "# HELP parley_broker_plugin_up Plugin instances registered with the broker "
                  "and alive, by name and instance.\n# TYPE parley_broker_plugin_up gauge\n");
    for (peer_t *peer = (peer_t *) zhashx_first (self->peers); peer;
         peer = (peer_t *) zhashx_next (self->peers))
        if (peer->kind == PEER_PLUGIN) {
            fputs ("parley_broker_plugin_up{name=\"", out);
            s_stats_label (out, peer->name);
            fputs ("\",instance=\"", out);
            s_stats_label (out, peer->instance);
            fputs ("\"} 1\n", out);
        }
    fprintf (out, "# HELP parley_broker_requests_routed_total Requests the broker passed to a "
                  "plugin.\n# TYPE parley_broker_requests_routed_total counter\n"
                  "parley_broker_requests_routed_total %" PRIu64 "\n"
                  "# HELP parley_broker_requests_unavailable_total Requests the broker answered "
                  "unavailable (no live instance, too many in flight, the instance died, or "
                  "no answer in time).\n"
                  "# TYPE parley_broker_requests_unavailable_total counter\n"
                  "parley_broker_requests_unavailable_total %" PRIu64 "\n"
                  "# HELP parley_broker_requests_timed_out_total Requests answered unavailable "
                  "by the broker's backstop: the plugin did not answer within the request "
                  "timeout.\n# TYPE parley_broker_requests_timed_out_total counter\n"
                  "parley_broker_requests_timed_out_total %" PRIu64 "\n"
                  "# HELP parley_broker_sessions Sessions the broker knows, of every gateway.\n"
                  "# TYPE parley_broker_sessions gauge\nparley_broker_sessions %zu\n",
             self->routed, self->unavailable, self->timed_out, zhashx_size (self->sessions));
    s_stats_plugins (self, out);
    s_stats_ask_plugins (self);
    if (fclose (out)) {
        free (text);
        return;
    }
    pl_envelope_t *envelope = pl_envelope_new (PL_OP_STATS);
    if (envelope && text)
        pl_envelope_set_body_copy (envelope, (const uint8_t *) text, size);
    free (text);
    if (envelope)
        s_send (self, gateway, &envelope);
}

static void
s_reply (broker_t *self, peer_t *peer, pl_envelope_t **envelope_p)
{
    pl_envelope_t *envelope = *envelope_p;
    uint64_t rid = pl_envelope_rid (envelope);
    pending_t *pending = (pending_t *) zhashx_lookup (self->pending, &rid);
    if (!pending || pending->target != peer)
        return;                 //  late, or not theirs to answer: dropped
    session_t *session = pending->sid
                       ? (session_t *) zhashx_lookup (self->sessions, &pending->sid) : NULL;
    if (session && pending->requester && session->gateway != pending->requester)
        session = NULL;
    if (!pl_envelope_code (envelope) && session) {
        const char *bind = pl_envelope_bind (envelope);
        if (bind && *bind) {
            if (s_session_bind (self, session, bind))
                zsys_error ("broker: out of memory binding session %" PRIx64, session->sid);
        }
        else
        if (pl_envelope_unbind (envelope))
            s_session_unbind_and_tell (self, session);
    }
    peer_t *requester = pending->requester;
    if (requester) {
        pl_envelope_set_rid (envelope, pending->requester_rid);
        pl_envelope_set_sid (envelope, pending->sid);
        pl_envelope_set_cid (envelope, pending->cid, pending->cid_size);
        s_send (self, requester, envelope_p);
    }
    s_pending_remove (self, pending);
}

//  Adds session to its gateway's list for this deliver pass (once)
static void
s_deliver_collect (broker_t *self, session_t *session, zlistx_t *gateways)
{
    if (session->deliver_mark == self->deliver_mark)
        return;
    session->deliver_mark = self->deliver_mark;
    peer_t *gateway = session->gateway;
    if (gateway->deliver_mark != self->deliver_mark) {
        gateway->deliver_mark = self->deliver_mark;
        gateway->deliver_count = 0;
        zlistx_add_end (gateways, gateway);
    }
    if (gateway->deliver_count == gateway->deliver_size) {
        size_t size = gateway->deliver_size ? gateway->deliver_size * 2 : 16;
        uint64_t *sids = (uint64_t *) realloc (gateway->deliver_sids, size * sizeof (uint64_t));
        if (!sids)
            return;
        gateway->deliver_sids = sids;
        gateway->deliver_size = size;
    }
    gateway->deliver_sids [gateway->deliver_count++] = session->sid;
}

static void
s_deliver (broker_t *self, peer_t *peer, pl_envelope_t **envelope_p)
{
    pl_envelope_t *envelope = *envelope_p;
    zframe_t *body = pl_envelope_body (envelope);
    if (!body) {
        zsys_warning ("broker: plugin '%s' sent a delivery without a body; dropped",
                      peer->name);
        return;
    }
    zlistx_t *gateways = zlistx_new ();
    if (!gateways)
        return;
    self->deliver_mark++;
    size_t count = 0;
    char **users = pl_envelope_users (envelope, &count);
    for (size_t index = 0; index < count; index++) {
        user_t *user = users [index] ? (user_t *) zhashx_lookup (self->users, users [index])
                                     : NULL;
        if (!user)
            continue;
        session_t *session = (session_t *) zlistx_first (user->sessions);
        while (session) {
            s_deliver_collect (self, session, gateways);
            session = (session_t *) zlistx_next (user->sessions);
        }
    }
    const uint64_t *sids = pl_envelope_sids (envelope, &count);
    for (size_t index = 0; index < count; index++) {
        session_t *session = (session_t *) zhashx_lookup (self->sessions, &sids [index]);
        if (session)
            s_deliver_collect (self, session, gateways);
    }
    //  One frame per gateway: the body bytes as the plugin encoded them
    peer_t *gateway = (peer_t *) zlistx_first (gateways);
    while (gateway) {
        pl_envelope_t *deliver = pl_envelope_new (PL_OP_DELIVER);
        zframe_t *frame = zframe_dup (body);
        if (deliver && frame) {
            pl_envelope_set_sids (deliver, gateway->deliver_sids, gateway->deliver_count);
            pl_envelope_set_body (deliver, &frame);
            s_send (self, gateway, &deliver);
        }
        zframe_destroy (&frame);
        pl_envelope_destroy (&deliver);
        gateway = (peer_t *) zlistx_next (gateways);
    }
    zlistx_destroy (&gateways);
}


//  --------------------------------------------------------------------------
//  The standby pair (br_bstar.h): only the active broker serves peers

static int
s_bstar_start (broker_t *self, const br_broker_config_t *config)
{
    br_bstar_config_t bstar = *config->bstar;
    bstar.heartbeat_ms = self->heartbeat_ms;
    bstar.curve = config->curve;
    self->bstar = br_bstar_new (&bstar, zclock_mono ());
    if (!self->bstar)
        return -1;
    zsock_t *socket = br_bstar_socket (self->bstar);
    return socket ? zpoller_add (self->poller, socket) : 0;
}

//  A broker that leaves the active state forgets every peer: they go on
//  hearing nothing from it, and move to the other broker
static void
s_bstar_forget_peers (broker_t *self)
{
    zlistx_t *peers = zhashx_values (self->peers);
    if (!peers)
        return;
    //  The list comes with the hash's destructor: the hash owns the peers
    zlistx_set_destructor (peers, NULL);
    for (peer_t *peer = (peer_t *) zlistx_first (peers); peer;
         peer = (peer_t *) zlistx_next (peers))
        s_peer_remove (self, peer, "left: this broker went passive");
    zlistx_destroy (&peers);
}

static void
s_bstar_input (broker_t *self)
{
    if (br_bstar_recv (self->bstar, zclock_mono ()) == BR_BSTAR_WENT_PASSIVE)
        s_bstar_forget_peers (self);
}

//  True when the message is to be handled: always without a pair; else
//  when active, or when a peer's hello makes us so. A passive broker
//  answers nothing, not even WHO: a peer hears silence and moves on.
static bool
s_bstar_admits (broker_t *self, pl_op_t op)
{
    if (!self->bstar || br_bstar_active (self->bstar))
        return true;
    return op == PL_OP_HELLO && br_bstar_admit (self->bstar, zclock_mono ());
}


//  --------------------------------------------------------------------------
//  The loop

static void
s_log_drops (broker_t *self, int64_t now)
{
    if (self->dropped != self->dropped_logged && now >= self->next_drop_log) {
        zsys_warning ("broker: dropped %" PRIu64 " message(s) for peers that were gone or"
                      " full (%" PRIu64 " in all)", self->dropped - self->dropped_logged,
                      self->dropped);
        self->dropped_logged = self->dropped;
        self->next_drop_log = now + BR_LOG_INTERVAL;
    }
}

//  Peers refused at the handshake, summed up at most every BR_LOG_INTERVAL:
//  the operator learns of a peer with a wrong key, and a scanner cannot
//  flood the log
static void
s_log_refused (broker_t *self, int64_t now)
{
    if (self->refused != self->refused_logged && now >= self->next_refused_log) {
        zsys_warning ("broker: refused %" PRIu64 " peer connection(s) on %s: no CURVE key, or"
                      " a key not in the allowed folder (%" PRIu64 " in all)",
                      self->refused - self->refused_logged,
                      self->refused_at ? self->refused_at : "tcp", self->refused);
        self->refused_logged = self->refused;
        self->next_refused_log = now + BR_LOG_INTERVAL;
    }
}

static void
s_handle_monitor (broker_t *self)
{
    zmsg_t *msg = zmsg_recv (self->monitor);
    if (!msg)
        return;
    zframe_t *event = zmsg_first (msg);
    zframe_t *address = zmsg_next (msg);
    if (event && zframe_size (event) >= 2) {
        self->refused++;
        if (address) {
            zstr_free (&self->refused_at);
            self->refused_at = zframe_strdup (address);
        }
    }
    zmsg_destroy (&msg);
    s_log_refused (self, zclock_mono ());
}

//  Heartbeats idle peers, buries silent ones
static void
s_tick (broker_t *self, int64_t now)
{
    zlistx_t *dead = NULL;
    peer_t *peer = (peer_t *) zhashx_first (self->peers);
    while (peer) {
        uint32_t their_interval = peer->heartbeat_ms ? peer->heartbeat_ms : self->heartbeat_ms;
        uint32_t our_interval = self->heartbeat_ms < their_interval
                              ? self->heartbeat_ms : their_interval;
        if (now - peer->last_heard > 3 * (int64_t) their_interval) {
            if (!dead)
                dead = zlistx_new ();
            if (dead)
                zlistx_add_end (dead, peer);
        }
        else
        if (now - peer->last_sent >= (int64_t) our_interval) {
            pl_envelope_t *heartbeat = pl_envelope_new (PL_OP_HEARTBEAT);
            if (heartbeat)
                s_send (self, peer, &heartbeat);
        }
        peer = (peer_t *) zhashx_next (self->peers);
    }
    if (dead) {
        while ((peer = (peer_t *) zlistx_first (dead))) {
            zlistx_detach_cur (dead);
            s_peer_remove (self, peer, "went silent");
        }
        zlistx_destroy (&dead);
    }
    s_log_drops (self, now);
    s_log_refused (self, now);
    if (self->bstar)
        br_bstar_tick (self->bstar, now);
}

static void
s_handle_router (broker_t *self)
{
    pl_envelope_t *envelope = pl_envelope_recv (self->router);
    if (!envelope)
        return;                 //  malformed (dropped by the codec) or interrupted
    zframe_t *routing_id = pl_envelope_routing_id (envelope);
    if (!routing_id) {
        pl_envelope_destroy (&envelope);
        return;
    }
    char key [BR_ROUTING_KEY_SIZE];
    s_routing_key (routing_id, key, sizeof key);
    pl_op_t op = pl_envelope_op (envelope);
    if (!s_bstar_admits (self, op)) {
        pl_envelope_destroy (&envelope);
        return;
    }
    if (op == PL_OP_HELLO) {
        s_hello (self, envelope, key);
        pl_envelope_destroy (&envelope);
        return;
    }
    peer_t *peer = (peer_t *) zhashx_lookup (self->peers, key);
    if (!peer) {
        if (op != PL_OP_BYE) {
            pl_envelope_t *who = pl_envelope_new (PL_OP_WHO);
            if (who)
                s_send_to_routing_id (self, routing_id, &who);
        }
        pl_envelope_destroy (&envelope);
        return;
    }
    peer->last_heard = zclock_mono ();
    switch (op) {
        case PL_OP_HEARTBEAT:
            break;
        case PL_OP_BYE:
            s_peer_remove (self, peer, "said bye");
            break;
        case PL_OP_REQUEST:
            s_request (self, peer, &envelope);
            break;
        case PL_OP_REPLY:
            if (peer->kind == PEER_PLUGIN)
                s_reply (self, peer, &envelope);
            break;
        case PL_OP_DELIVER:
            if (peer->kind == PEER_PLUGIN)
                s_deliver (self, peer, &envelope);
            break;
        case PL_OP_SESSION_OPEN:
            if (peer->kind == PEER_GATEWAY)
                s_session_open (self, peer, envelope);
            break;
        case PL_OP_STATS:
            if (peer->kind == PEER_GATEWAY)
                s_stats (self, peer);
            else
            if (peer->kind == PEER_PLUGIN)
                s_stats_keep (peer, envelope);
            break;
        case PL_OP_SESSION_CLOSE:
            if (peer->kind == PEER_GATEWAY)
                s_session_close (self, peer, envelope);
            else
                s_sessions_unbind (self, peer, envelope);
            break;
        default:
            break;              //  ops only the broker sends: ignored
    }
    pl_envelope_destroy (&envelope);
}

static void
s_handle_pipe (broker_t *self)
{
    zmsg_t *msg = zmsg_recv (self->pipe);
    if (!msg) {
        self->terminated = true;
        return;
    }
    char *command = zmsg_popstr (msg);
    if (command && streq (command, "$TERM"))
        self->terminated = true;
    else
    if (command && streq (command, "STATUS"))
        zsock_signal (self->pipe, 0);
    free (command);
    zmsg_destroy (&msg);
}

static void
s_broker_destroy (broker_t **self_p)
{
    if (*self_p) {
        broker_t *self = *self_p;
        zpoller_destroy (&self->poller);
        if (self->monitor) {
            zmq_socket_monitor (zsock_resolve (self->router), NULL, 0);
            zsock_destroy (&self->monitor);
        }
        zstr_free (&self->monitor_endpoint);
        zstr_free (&self->refused_at);
        br_bstar_destroy (&self->bstar);
        //  Closing a socket frees its inproc name only later, in ZeroMQ's
        //  reaper thread; unbinding frees it now, for the next broker
        if (self->router && self->inproc_bound)
            zsock_unbind (self->router, "%s", BR_BROKER_INPROC);
        zsock_destroy (&self->router);
        //  Lists and secondary indexes borrow; the owning hashes free
        zlistx_destroy (&self->fifo);
        zlistx_destroy (&self->shorter);
        zlistx_destroy (&self->subscribers);
        zhashx_destroy (&self->pending);
        zhashx_destroy (&self->users);
        zhashx_destroy (&self->sessions);
        zhashx_destroy (&self->routes);
        zhashx_destroy (&self->instances);
        zhashx_destroy (&self->gateways);
        zhashx_destroy (&self->peers);
        zcertstore_destroy (&self->admin_keys);
        free (self);
        *self_p = NULL;
    }
}

static broker_t *
s_broker_new (zsock_t *pipe, const br_broker_config_t *config)
{
    broker_t *self = (broker_t *) zmalloc (sizeof (broker_t));
    if (!self)
        return NULL;
    self->pipe = pipe;
    self->heartbeat_ms = config && config->heartbeat_ms
                       ? config->heartbeat_ms : BR_BROKER_HEARTBEAT_DEFAULT;
    self->request_timeout_ms = config && config->request_timeout_ms
                             ? config->request_timeout_ms : BR_BROKER_REQUEST_TIMEOUT_DEFAULT;
    self->insecure = config && !config->curve && config->insecure_peers;
    if (config && config->curve_admin) {
        //  zcertstore rereads the folder when it changes: no restart needed
        struct stat info;
        if (stat (config->curve_admin, &info) || !S_ISDIR (info.st_mode)) {
            zsys_error ("broker: --curve-admin %s is not a folder", config->curve_admin);
            free (self);
            return NULL;
        }
        self->admin_keys = zcertstore_new (config->curve_admin);
    }
    self->tick_ms = self->heartbeat_ms / 4;
    if (self->tick_ms < 5)
        self->tick_ms = 5;
    if (self->tick_ms > 250)
        self->tick_ms = 250;
    self->next_rid = 1;
    self->peers = zhashx_new ();
    self->instances = zhashx_new ();
    self->gateways = zhashx_new ();
    self->routes = zhashx_new ();
    self->users = zhashx_new ();
    self->sessions = s_u64_hash_new ();
    self->pending = s_u64_hash_new ();
    self->fifo = zlistx_new ();
    self->shorter = zlistx_new ();
    self->subscribers = zlistx_new ();
    if (self->shorter)
        zlistx_set_comparator (self->shorter, s_pending_compare);
    if (!self->peers || !self->instances || !self->gateways || !self->routes || !self->users
    ||  !self->sessions || !self->pending || !self->fifo || !self->shorter
    ||  !self->subscribers) {
        s_broker_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->peers, (zhashx_destructor_fn *) s_peer_destroy);
    zhashx_set_destructor (self->routes, (zhashx_destructor_fn *) s_route_destroy);
    zhashx_set_destructor (self->users, (zhashx_destructor_fn *) s_user_destroy);
    zhashx_set_destructor (self->sessions, (zhashx_destructor_fn *) s_session_destroy);
    zhashx_set_destructor (self->pending, (zhashx_destructor_fn *) s_pending_destroy);
    return self;
}

//  A tcp:// endpoint takes any peer that can reach it unless the broker has
//  keys: refused, unless the operator said so. Returns -1 after logging.
static int
s_broker_check_keys (const br_broker_config_t *config)
{
    size_t count = config ? config->endpoint_count : 0;
    for (size_t index = 0; index < count; index++) {
        const char *endpoint = config->endpoints [index];
        if (!pl_curve_endpoint_needs_keys (endpoint) || config->curve)
            continue;
        if (!config->insecure_peers) {
            zsys_error ("broker: refusing to listen on %s without peer keys: anyone who"
                        " reaches it could act as any user. Give the broker's certificate"
                        " and the folder of allowed peer certificates (parley-keygen makes"
                        " them), or --insecure-peers to accept any peer", endpoint);
            return -1;
        }
        zsys_warning ("broker: INSECURE: %s accepts any peer without a key"
                      " (--insecure-peers): anyone who reaches it can act as any user",
                      endpoint);
    }
    return 0;
}

//  Creates the folder of an ipc:// socket file, owner-only, if it is missing
static int
s_ipc_folder (const char *path)
{
    char *folder = strdup (path);
    if (!folder)
        return -1;
    char *slash = strrchr (folder, '/');
    int rc = 0;
    if (slash && slash != folder) {
        *slash = 0;
        if (mkdir (folder, 0700) == 0)
            zsys_info ("broker: created %s (mode 0700) for its ipc socket", folder);
        else
        if (errno != EEXIST) {
            zsys_error ("broker: cannot create the folder %s: %s", folder, strerror (errno));
            rc = -1;
        }
    }
    free (folder);
    return rc;
}

//  Binds one extra endpoint; an ipc:// socket file is made owner-only (a
//  peer needs write permission on it to connect). Returns -1 after logging.
static int
s_broker_bind_endpoint (broker_t *self, const char *endpoint)
{
    bool ipc = endpoint && strncmp (endpoint, "ipc://", 6) == 0;
    bool abstract = ipc && (endpoint [6] == '@' || endpoint [6] == '*');
    if (ipc && !abstract && s_ipc_folder (endpoint + 6))
        return -1;
    if (!endpoint || zsock_bind (self->router, "%s", endpoint) == -1) {
        zsys_error ("broker: could not bind %s: %s", endpoint ? endpoint : "(null)",
                    zmq_strerror (errno));
        return -1;
    }
    if (ipc && !abstract && chmod (endpoint + 6, 0600)) {
        zsys_error ("broker: cannot make %s owner-only: %s", endpoint + 6, strerror (errno));
        return -1;
    }
    zsys_info ("broker: listening on %s%s", endpoint,
               ipc && !abstract ? " (socket file mode 0600)"
               : pl_curve_endpoint_needs_keys (endpoint) && !self->insecure
               ? " (CURVE: allowed peer keys only)" : "");
    return 0;
}

//  With keys, the handshakes ZeroMQ refuses never reach us as messages: a
//  socket monitor tells us of them, for the log
static int
s_broker_watch_handshakes (broker_t *self)
{
    self->monitor_endpoint = zsys_sprintf ("inproc://parley-broker-monitor-%p", (void *) self);
    if (!self->monitor_endpoint
    ||  zmq_socket_monitor (zsock_resolve (self->router), self->monitor_endpoint,
                            ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                            | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)) {
        zsys_error ("broker: cannot watch the handshakes of peers: %s", zmq_strerror (errno));
        return -1;
    }
    self->monitor = zsock_new (ZMQ_PAIR);
    if (!self->monitor || zsock_connect (self->monitor, "%s", self->monitor_endpoint))
        return -1;
    return 0;
}

//  Creates and binds the ROUTER. Returns -1 after logging which endpoint
//  failed and why.
static int
s_broker_bind (broker_t *self, const br_broker_config_t *config)
{
    self->router = zsock_new (ZMQ_ROUTER);
    if (!self->router) {
        zsys_error ("broker: could not create the ROUTER socket: %s", zmq_strerror (errno));
        return -1;
    }
    zsock_set_router_mandatory (self->router, 1);
    zsock_set_sndhwm (self->router, BR_HWM);
    zsock_set_rcvhwm (self->router, BR_HWM);
    zsock_set_maxmsgsize (self->router, BR_MAX_MSGSIZE);
    zsock_set_linger (self->router, 0);
    if (zsock_bind (self->router, "%s", BR_BROKER_INPROC) == -1) {
        zsys_error ("broker: could not bind %s: %s", BR_BROKER_INPROC, zmq_strerror (errno));
        return -1;
    }
    self->inproc_bound = true;
    if (s_broker_check_keys (config))
        return -1;
    if (config && config->curve && s_broker_watch_handshakes (self))
        return -1;
    //  ZeroMQ takes a socket's security options when it binds an endpoint:
    //  ipc:// first, without CURVE (its file's permissions guard it), then
    //  the keys, then tcp://
    size_t count = config ? config->endpoint_count : 0;
    for (size_t pass = 0; pass < 2; pass++) {
        if (pass == 1)
            pl_curve_apply (config ? config->curve : NULL, self->router, "tcp://");
        for (size_t index = 0; index < count; index++) {
            const char *endpoint = config->endpoints [index];
            if (pl_curve_endpoint_needs_keys (endpoint) != (pass == 1))
                continue;
            if (s_broker_bind_endpoint (self, endpoint))
                return -1;
        }
    }
    self->poller = zpoller_new (self->pipe, self->router, NULL);
    if (!self->poller || (self->monitor && zpoller_add (self->poller, self->monitor)))
        return -1;
    if (config && config->bstar && s_bstar_start (self, config))
        return -1;
    //  Signals are the program's business, not ours: only $TERM ends us
    zpoller_set_nonstop (self->poller, true);
    return 0;
}

//  After a failed start: answer STATUS with -1 until $TERM
static void
s_broker_failed (zsock_t *pipe)
{
    while (true) {
        zmsg_t *msg = zmsg_recv (pipe);
        if (!msg)
            continue;
        char *command = zmsg_popstr (msg);
        bool terminate = command && streq (command, "$TERM");
        if (command && streq (command, "STATUS"))
            zsock_signal (pipe, (byte) -1);
        free (command);
        zmsg_destroy (&msg);
        if (terminate)
            return;
    }
}

void
br_broker_actor (zsock_t *pipe, void *args)
{
    const br_broker_config_t *config = (const br_broker_config_t *) args;
    pl_thread_name ("broker");
    broker_t *self = s_broker_new (pipe, config);
    if (!self || s_broker_bind (self, config)) {
        s_broker_destroy (&self);
        zsock_signal (pipe, (byte) -1);
        s_broker_failed (pipe);
        return;
    }
    zsock_signal (pipe, 0);
    self->next_tick = zclock_mono () + self->tick_ms;

    while (!self->terminated) {
        int64_t now = zclock_mono ();
        int64_t wake = self->next_tick;
        pending_t *oldest = s_pending_earliest (self);
        if (oldest && oldest->deadline < wake)
            wake = oldest->deadline;
        int timeout = wake > now ? (int) (wake - now) : 0;
        void *which = zpoller_wait (self->poller, timeout);
        if (which == self->pipe)
            s_handle_pipe (self);
        else
        if (which && which == self->monitor)
            s_handle_monitor (self);
        else
        if (which && self->bstar && which == br_bstar_socket (self->bstar))
            s_bstar_input (self);
        else
        if (which == self->router) {
            //  Drain a batch, then look at the clock again
            for (int count = 0; count < BR_MAX_BATCH; count++) {
                s_handle_router (self);
                if (!(zsock_events (self->router) & ZMQ_POLLIN))
                    break;
            }
        }
        now = zclock_mono ();
        s_pending_expire (self, now);
        if (now >= self->next_tick) {
            s_tick (self, now);
            self->next_tick = now + self->tick_ms;
        }
    }
    s_broker_destroy (&self);
}

zactor_t *
br_broker_start (const br_broker_config_t *config)
{
    zactor_t *actor = zactor_new (br_broker_actor, (void *) config);
    if (!actor)
        return NULL;
    int status = -1;
    if (zstr_send (actor, "STATUS") == 0)
        status = zsock_wait (actor);
    if (status != 0) {
        zactor_destroy (&actor);
        return NULL;
    }
    return actor;
}
