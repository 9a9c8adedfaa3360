/*  =========================================================================
    sc_broker - a fake broker that drives one store plugin through the host
    =========================================================================
*/

#include "sc_broker.h"
#include "br_host.h"
#include "pl_envelope.h"

#include <stdatomic.h>

//  Long heartbeats: the suite sends nothing while it checks, and neither side
//  should call the other dead meanwhile
#define S_HEARTBEAT_MS  30000

static atomic_uint s_broker_count;

struct _sc_broker_t {
    zsock_t *router;                //  what the plugin's host connects to
    char *endpoint;                 //  inproc://sc-broker-PID-N
    zactor_t *host;                 //  the running plugin, or NULL
    zframe_t *peer;                 //  the plugin's routing id, from its HELLO
    char *route_prefix;             //  its first route, from HELLO
    uint32_t route_flags;
    uint64_t next_rid;              //  last rid sent
    char *address;                  //  stamped on requests, or NULL
};

void
sc_broker_set_address (sc_broker_t *self, const char *address)
{
    zstr_free (&self->address);
    self->address = address ? strdup (address) : NULL;
}

sc_broker_t *
sc_broker_new (void)
{
    sc_broker_t *self = (sc_broker_t *) zmalloc (sizeof (sc_broker_t));
    assert (self);
    self->endpoint = zsys_sprintf ("inproc://sc-broker-%d-%u", (int) getpid (),
                                   atomic_fetch_add (&s_broker_count, 1));
    self->router = zsock_new (ZMQ_ROUTER);
    assert (self->router);
    zsock_set_sndhwm (self->router, 100000);
    zsock_set_rcvhwm (self->router, 100000);
    if (zsock_bind (self->router, "%s", self->endpoint)) {
        zsys_error ("sc_broker: cannot bind %s", self->endpoint);
        abort ();
    }
    return self;
}

void
sc_broker_destroy (sc_broker_t **self_p)
{
    assert (self_p);
    sc_broker_t *self = *self_p;
    if (self) {
        sc_broker_stop (self);
        zsock_destroy (&self->router);
        zstr_free (&self->endpoint);
        zstr_free (&self->route_prefix);
        zstr_free (&self->address);
        free (self);
        *self_p = NULL;
    }
}

int
sc_broker_start (sc_broker_t *self, const char *plugin_path,
                 const char *const *options, size_t option_count,
                 char *error, size_t error_size)
{
    assert (self);
    assert (!self->host);
    br_host_config_t config = {
        .plugin_path = plugin_path,
        .endpoint = self->endpoint,
        .options = options,
        .option_count = option_count,
        .heartbeat_ms = S_HEARTBEAT_MS
    };
    self->host = br_host_start (&config, error, error_size);
    if (!self->host)
        return -1;
    zpoller_t *poller = zpoller_new (self->router, NULL);
    int64_t deadline = zclock_mono () + 5000;
    while (zclock_mono () < deadline) {
        if (!zpoller_wait (poller, (int) (deadline - zclock_mono ())))
            break;
        pl_envelope_t *envelope = pl_envelope_recv (zsock_resolve (self->router));
        if (!envelope || pl_envelope_op (envelope) != PL_OP_HELLO) {
            pl_envelope_destroy (&envelope);
            continue;
        }
        zframe_destroy (&self->peer);
        self->peer = zframe_dup (pl_envelope_routing_id (envelope));
        size_t count = 0;
        const pl_route_t *routes = pl_envelope_routes (envelope, &count);
        zstr_free (&self->route_prefix);
        if (count > 0) {
            self->route_prefix = strdup (routes [0].prefix ? routes [0].prefix : "");
            self->route_flags = routes [0].flags;
        }
        pl_envelope_destroy (&envelope);

        pl_envelope_t *welcome = pl_envelope_new (PL_OP_WELCOME);
        pl_envelope_set_routing_id (welcome, zframe_dup (self->peer));
        pl_envelope_set_heartbeat (welcome, S_HEARTBEAT_MS);
        pl_envelope_send (&welcome, zsock_resolve (self->router));
        zpoller_destroy (&poller);
        return 0;
    }
    zpoller_destroy (&poller);
    snprintf (error, error_size, "plugin %s said no HELLO within 5 s", plugin_path);
    zactor_destroy (&self->host);
    return -1;
}

sc_broker_t *
sc_broker_new_started (const char *plugin_path, const char *const *options, size_t option_count)
{
    sc_broker_t *self = sc_broker_new ();
    char error [512];
    if (sc_broker_start (self, plugin_path, options, option_count, error, sizeof error))
        sc_broker_destroy (&self);
    return self;
}

void
sc_broker_stop (sc_broker_t *self)
{
    assert (self);
    zactor_destroy (&self->host);
    zframe_destroy (&self->peer);
}

const char *
sc_broker_route_prefix (sc_broker_t *self)
{
    return self->route_prefix;
}

uint32_t
sc_broker_route_flags (sc_broker_t *self)
{
    return self->route_flags;
}

uint64_t
sc_broker_send (sc_broker_t *self, const char *type, const void *body, size_t size)
{
    assert (self);
    if (!self->peer)
        return 0;
    pl_envelope_t *request = pl_envelope_new (PL_OP_REQUEST);
    uint64_t rid = ++self->next_rid;
    pl_envelope_set_routing_id (request, zframe_dup (self->peer));
    pl_envelope_set_rid (request, rid);
    pl_envelope_set_type (request, type);
    if (self->address)
        pl_envelope_set_addr (request, self->address);
    if (body && size)
        pl_envelope_set_body_copy (request, body, size);
    return pl_envelope_send (&request, zsock_resolve (self->router)) == 0 ? rid : 0;
}

sc_reply_t *
sc_broker_recv (sc_broker_t *self, int timeout_ms)
{
    assert (self);
    zpoller_t *poller = zpoller_new (self->router, NULL);
    int64_t deadline = zclock_mono () + timeout_ms;
    sc_reply_t *reply = NULL;
    while (!reply) {
        int64_t now = zclock_mono ();
        if (now >= deadline || !zpoller_wait (poller, (int) (deadline - now)))
            break;
        pl_envelope_t *envelope = pl_envelope_recv (zsock_resolve (self->router));
        if (!envelope)
            continue;
        if (pl_envelope_op (envelope) == PL_OP_REPLY) {
            reply = (sc_reply_t *) zmalloc (sizeof (sc_reply_t));
            assert (reply);
            reply->rid = pl_envelope_rid (envelope);
            if (pl_envelope_code (envelope)) {
                reply->code = strdup (pl_envelope_code (envelope));
                reply->message = strdup (pl_envelope_message (envelope)
                                         ? pl_envelope_message (envelope) : "");
            }
            msgpack_unpacked_init (&reply->body);
            zframe_t *body = pl_envelope_body (envelope);
            static const uint8_t empty_map [] = { 0x80 };
            const char *data = body ? (const char *) zframe_data (body) : (const char *) empty_map;
            size_t size = body ? zframe_size (body) : sizeof empty_map;
            //  The unpacked strings point into the bytes: keep our own copy
            reply->data = (char *) malloc (size);
            assert (reply->data);
            memcpy (reply->data, data, size);
            size_t offset = 0;
            if (msgpack_unpack_next (&reply->body, reply->data, size, &offset) == MSGPACK_UNPACK_SUCCESS
            &&  reply->body.data.type == MSGPACK_OBJECT_MAP)
                reply->body_valid = true;
        }
        pl_envelope_destroy (&envelope);
    }
    zpoller_destroy (&poller);
    return reply;
}

sc_reply_t *
sc_broker_call (sc_broker_t *self, const char *type, const void *body, size_t size)
{
    uint64_t rid = sc_broker_send (self, type, body, size);
    if (!rid)
        return NULL;
    sc_reply_t *reply = sc_broker_recv (self, 10000);
    if (reply && reply->rid != rid)
        sc_reply_destroy (&reply);
    return reply;
}

void
sc_body_init (pl_pack_t *body, uint32_t fields)
{
    pl_pack_init (body);
    pl_pack_map (body, fields);
}

uint64_t
sc_broker_send_body (sc_broker_t *self, const char *type, pl_pack_t *body)
{
    uint64_t rid = sc_broker_send (self, type, body ? body->buffer.data : NULL,
                                   body ? body->buffer.size : 0);
    if (body)
        pl_pack_release (body);
    return rid;
}

sc_reply_t *
sc_broker_call_body (sc_broker_t *self, const char *type, pl_pack_t *body)
{
    sc_reply_t *reply = sc_broker_call (self, type, body ? body->buffer.data : NULL,
                                        body ? body->buffer.size : 0);
    if (body)
        pl_pack_release (body);
    return reply;
}

void
sc_reply_destroy (sc_reply_t **self_p)
{
    assert (self_p);
    sc_reply_t *self = *self_p;
    if (self) {
        free (self->code);
        free (self->message);
        msgpack_unpacked_destroy (&self->body);
        free (self->data);
        free (self);
        *self_p = NULL;
    }
}

const msgpack_object *
sc_map_field (const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t key_size = strlen (key);
    for (uint32_t index = 0; index < map->via.map.size; index++) {
        const msgpack_object_kv *pair = &map->via.map.ptr [index];
        if (pair->key.type == MSGPACK_OBJECT_STR && pair->key.via.str.size == key_size
        &&  memcmp (pair->key.via.str.ptr, key, key_size) == 0)
            return &pair->val;
    }
    return NULL;
}

const msgpack_object *
sc_reply_field (sc_reply_t *self, const char *key)
{
    return self && self->body_valid ? sc_map_field (&self->body.data, key) : NULL;
}

bool
sc_object_streq (const msgpack_object *object, const char *value)
{
    return object && object->type == MSGPACK_OBJECT_STR
        && object->via.str.size == strlen (value)
        && memcmp (object->via.str.ptr, value, object->via.str.size) == 0;
}

void
sc_pack_key (msgpack_packer *packer, const char *key)
{
    msgpack_pack_str_with_body (packer, key, strlen (key));
}

void
sc_pack_kstr (msgpack_packer *packer, const char *key, const char *value)
{
    sc_pack_key (packer, key);
    msgpack_pack_str_with_body (packer, value, strlen (value));
}

void
sc_pack_kint (msgpack_packer *packer, const char *key, int64_t value)
{
    sc_pack_key (packer, key);
    msgpack_pack_int64 (packer, value);
}

const char *
sc_pack_change (msgpack_sbuffer *buffer, const char *room, int64_t seq, int64_t target,
                const char *text, int64_t ts)
{
    msgpack_packer packer;
    msgpack_packer_init (&packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, room ? 2 : 3);
    sc_pack_kstr (&packer, room ? "room" : "from", room ? room : "alice");
    if (room)
        sc_pack_key (&packer, "entry");
    else {
        sc_pack_kstr (&packer, "to", "bob");
        sc_pack_key (&packer, "messages");
        msgpack_pack_array (&packer, 1);
    }
    msgpack_pack_map (&packer, 4 + (target != 0) + (text != NULL));
    sc_pack_kint (&packer, "seq", seq);
    sc_pack_kstr (&packer, "kind", !target ? "message" : text ? "edit" : "delete");
    sc_pack_kstr (&packer, room ? "user" : "from", "alice");
    sc_pack_kint (&packer, "ts", ts);
    if (target)
        sc_pack_kint (&packer, "target", target);
    if (text)
        sc_pack_kstr (&packer, "text", text);
    return room ? "store.msg.append" : "store.pm.append";
}
