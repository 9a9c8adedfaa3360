/*  =========================================================================
    pl_envelope - the internal envelope between gateways, broker and plugins

    The header is a msgpack map with short string keys (proto/ENVELOPE.md).
    Encoding uses msgpack-c's packer; decoding walks the bytes with the
    bounded reader of pl_mp.h, so hostile headers cost no allocation beyond
    the fields they really carry. Both run on every message through the
    broker: no DOM, no zone, a handful of mallocs for the strings.
    =========================================================================
*/

#include "pl_envelope.h"
#include "pl_mp.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

//  Largest sids, users or routes array a header may carry
#define PL_ENVELOPE_MAX_ARRAY   100000

struct _pl_envelope_t {
    pl_op_t op;                 //  what this envelope is
    zframe_t *routing_id;       //  owned: ROUTER routing id, or NULL
    char *peer_user_id;         //  owned: a received HELLO's "User-Id", or NULL
    char *peer_address;         //  owned: a received HELLO's "Peer-Address", or NULL
    uint64_t rid;               //  request id, 0 = none
    uint64_t sid;               //  session id, 0 = none
    char *type;                 //  owned: message type
    char *user;                 //  owned: user the broker stamped
    char *addr;                 //  owned: client address
    uint8_t *cid;               //  owned: client id, one msgpack value
    size_t cid_size;            //  its size
    char *code;                 //  owned: error code, NULL = ok
    char *message;              //  owned: error sentence
    char *outcome;              //  owned: "unknown" when an error may have taken effect
    char *bind;                 //  owned: bind the session to this user
    bool unbind;                //  unbind the session
    uint64_t *sids;             //  owned: deliver targets
    size_t sids_count;          //  how many
    char **users;               //  owned, each owned: deliver targets
    size_t users_count;         //  how many
    uint32_t event;             //  session event
    char *kind;                 //  owned: "gateway" or "plugin"
    char *name;                 //  owned: plugin or gateway name
    char *instance;             //  owned: unique instance name
    uint32_t abi_major;         //  plugin ABI major
    uint32_t abi_minor;         //  plugin ABI minor
    bool abi_set;               //  abi was set (0.0 is still written)
    uint32_t flags;             //  PARLEY_PLUGIN_*
    pl_route_t *routes;         //  owned: announced routes
    size_t routes_count;        //  how many
    size_t routes_capacity;     //  allocated
    uint32_t heartbeat;         //  heartbeat interval, msecs
    uint32_t deadline;          //  request: msecs left to answer it
    bool deadline_set;          //  deadline was set (0 is still written: no time left)
    uint64_t sent_at;           //  the sender's monotonic msecs when it sent this, 0 = unset
    zframe_t *body;             //  owned: body frame, or NULL
};

static const char *s_op_names [] = {
    "invalid", "hello", "welcome", "refuse", "heartbeat", "bye", "request", "reply",
    "deliver", "session-open", "session-close", "session-event", "who", "stats"
};
#define PL_OP_COUNT ((int) (sizeof (s_op_names) / sizeof (s_op_names [0])))


//  --------------------------------------------------------------------------
//  Create a new empty envelope for op

pl_envelope_t *
pl_envelope_new (pl_op_t op)
{
    pl_envelope_t *self = (pl_envelope_t *) calloc (1, sizeof (pl_envelope_t));
    assert (self);
    self->op = op;
    return self;
}


static void
s_free_users (pl_envelope_t *self)
{
    for (size_t index = 0; index < self->users_count; index++)
        free (self->users [index]);
    free (self->users);
    self->users = NULL;
    self->users_count = 0;
}

static void
s_free_routes (pl_envelope_t *self)
{
    for (size_t index = 0; index < self->routes_count; index++) {
        free (self->routes [index].prefix);
        free (self->routes [index].shard_field);
    }
    free (self->routes);
    self->routes = NULL;
    self->routes_count = 0;
    self->routes_capacity = 0;
}


//  --------------------------------------------------------------------------
//  Destroy the envelope and nullify the reference; safe on NULL

void
pl_envelope_destroy (pl_envelope_t **self_p)
{
    assert (self_p);
    pl_envelope_t *self = *self_p;
    if (!self)
        return;
    zframe_destroy (&self->routing_id);
    free (self->peer_user_id);
    free (self->peer_address);
    free (self->type);
    free (self->user);
    free (self->addr);
    free (self->cid);
    free (self->code);
    free (self->message);
    free (self->bind);
    free (self->outcome);
    free (self->sids);
    s_free_users (self);
    free (self->kind);
    free (self->name);
    free (self->instance);
    s_free_routes (self);
    zframe_destroy (&self->body);
    free (self);
    *self_p = NULL;
}


//  --------------------------------------------------------------------------
//  Encoding

static void
s_pack_key (msgpack_packer *packer, const char *key, size_t length)
{
    msgpack_pack_str (packer, length);
    msgpack_pack_str_body (packer, key, length);
}

#define PACK_KEY(packer, key) s_pack_key ((packer), key, sizeof (key) - 1)

static void
s_pack_string (msgpack_packer *packer, const char *string)
{
    size_t length = strlen (string);
    msgpack_pack_str (packer, length);
    msgpack_pack_str_body (packer, string, length);
}


//  --------------------------------------------------------------------------
//  Encode the header into a new msgpack buffer. Caller owns return value.

uint8_t *
pl_envelope_encode (pl_envelope_t *self, size_t *size_p)
{
    assert (self);
    assert (size_p);
    if (self->op <= PL_OP_INVALID || self->op >= PL_OP_COUNT)
        return NULL;

    size_t pairs = 2
        + (self->rid != 0) + (self->sid != 0) + (self->type != NULL) + (self->user != NULL)
        + (self->addr != NULL) + (self->cid != NULL) + (self->code != NULL)
        + (self->message != NULL) + (self->outcome != NULL) + (self->bind != NULL) + self->unbind
        + (self->sids_count > 0) + (self->users_count > 0) + (self->event != 0)
        + (self->kind != NULL) + (self->name != NULL) + (self->instance != NULL)
        + self->abi_set + (self->flags != 0) + (self->routes_count > 0)
        + (self->heartbeat != 0) + self->deadline_set + (self->sent_at != 0);

    pl_buf_t buffer = {0};
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, pl_buf_packer_write);

    msgpack_pack_map (&packer, pairs);
    PACK_KEY (&packer, "v");
    msgpack_pack_uint32 (&packer, PL_ENVELOPE_VERSION);
    PACK_KEY (&packer, "op");
    s_pack_string (&packer, s_op_names [self->op]);
    if (self->rid) {
        PACK_KEY (&packer, "rid");
        msgpack_pack_uint64 (&packer, self->rid);
    }
    if (self->sid) {
        PACK_KEY (&packer, "sid");
        msgpack_pack_uint64 (&packer, self->sid);
    }
    if (self->type) {
        PACK_KEY (&packer, "type");
        s_pack_string (&packer, self->type);
    }
    if (self->user) {
        PACK_KEY (&packer, "user");
        s_pack_string (&packer, self->user);
    }
    if (self->addr) {
        PACK_KEY (&packer, "addr");
        s_pack_string (&packer, self->addr);
    }
    if (self->cid) {
        PACK_KEY (&packer, "cid");
        pl_buf_append (&buffer, self->cid, self->cid_size);
    }
    if (self->code) {
        PACK_KEY (&packer, "code");
        s_pack_string (&packer, self->code);
    }
    if (self->message) {
        PACK_KEY (&packer, "message");
        s_pack_string (&packer, self->message);
    }
    if (self->outcome) {
        PACK_KEY (&packer, "outcome");
        s_pack_string (&packer, self->outcome);
    }
    if (self->bind) {
        PACK_KEY (&packer, "bind");
        s_pack_string (&packer, self->bind);
    }
    if (self->unbind) {
        PACK_KEY (&packer, "unbind");
        msgpack_pack_true (&packer);
    }
    if (self->sids_count) {
        PACK_KEY (&packer, "sids");
        msgpack_pack_array (&packer, self->sids_count);
        for (size_t index = 0; index < self->sids_count; index++)
            msgpack_pack_uint64 (&packer, self->sids [index]);
    }
    if (self->users_count) {
        PACK_KEY (&packer, "users");
        msgpack_pack_array (&packer, self->users_count);
        for (size_t index = 0; index < self->users_count; index++)
            s_pack_string (&packer, self->users [index]);
    }
    if (self->event) {
        PACK_KEY (&packer, "event");
        msgpack_pack_uint32 (&packer, self->event);
    }
    if (self->kind) {
        PACK_KEY (&packer, "kind");
        s_pack_string (&packer, self->kind);
    }
    if (self->name) {
        PACK_KEY (&packer, "name");
        s_pack_string (&packer, self->name);
    }
    if (self->instance) {
        PACK_KEY (&packer, "instance");
        s_pack_string (&packer, self->instance);
    }
    if (self->abi_set) {
        PACK_KEY (&packer, "abi");
        msgpack_pack_array (&packer, 2);
        msgpack_pack_uint32 (&packer, self->abi_major);
        msgpack_pack_uint32 (&packer, self->abi_minor);
    }
    if (self->flags) {
        PACK_KEY (&packer, "flags");
        msgpack_pack_uint32 (&packer, self->flags);
    }
    if (self->routes_count) {
        PACK_KEY (&packer, "routes");
        msgpack_pack_array (&packer, self->routes_count);
        for (size_t index = 0; index < self->routes_count; index++) {
            pl_route_t *route = &self->routes [index];
            msgpack_pack_map (&packer, route->shard_field ? 4 : 3);
            PACK_KEY (&packer, "prefix");
            s_pack_string (&packer, route->prefix);
            PACK_KEY (&packer, "flags");
            msgpack_pack_uint32 (&packer, route->flags);
            PACK_KEY (&packer, "shard");
            msgpack_pack_uint32 (&packer, route->shard);
            if (route->shard_field) {
                PACK_KEY (&packer, "field");
                s_pack_string (&packer, route->shard_field);
            }
        }
    }
    if (self->heartbeat) {
        PACK_KEY (&packer, "hb");
        msgpack_pack_uint32 (&packer, self->heartbeat);
    }
    if (self->deadline_set) {
        PACK_KEY (&packer, "dl");
        msgpack_pack_uint32 (&packer, self->deadline);
    }
    if (self->sent_at) {
        PACK_KEY (&packer, "at");
        msgpack_pack_uint64 (&packer, self->sent_at);
    }
    if (buffer.failed) {
        pl_buf_free (&buffer);
        return NULL;
    }
    //  A peer would drop it: say so here, where the sender can be named
    if (buffer.size > PL_ENVELOPE_MAX_HEADER) {
        zsys_warning ("pl_envelope: a '%s' header of %zu bytes is over the %d-byte limit; "
                      "not sent", pl_op_name (self->op), buffer.size, PL_ENVELOPE_MAX_HEADER);
        pl_buf_free (&buffer);
        return NULL;
    }
    *size_p = buffer.size;
    return buffer.data;
}


//  --------------------------------------------------------------------------
//  Decoding

typedef struct {
    pl_mp_reader_t reader;      //  over the header bytes
    char *reason;               //  where to write why it failed, or NULL
    size_t reason_size;         //  its size
} s_decoder_t;

static int
s_fail (s_decoder_t *decoder, const char *format, ...)
{
    if (decoder->reason && decoder->reason_size) {
        va_list args;
        va_start (args, format);
        vsnprintf (decoder->reason, decoder->reason_size, format, args);
        va_end (args);
    }
    return -1;
}

static bool
s_key_is (const pl_mp_item_t *key, const char *name, size_t length)
{
    return key->length == length && memcmp (key->bytes, name, length) == 0;
}

#define KEY_IS(key, name) s_key_is ((key), name, sizeof (name) - 1)

static int
s_read_uint (s_decoder_t *decoder, const char *field, uint64_t max, uint64_t *value_p)
{
    pl_mp_item_t item;
    if (pl_mp_next (&decoder->reader, &item))
        return s_fail (decoder, "field '%s' is truncated", field);
    if (item.kind != PL_MP_UINT || item.uint > max)
        return s_fail (decoder, "field '%s' is not an unsigned integer in range", field);
    *value_p = item.uint;
    return 0;
}

static int
s_read_uint32 (s_decoder_t *decoder, const char *field, uint32_t *value_p)
{
    uint64_t value = 0;
    if (s_read_uint (decoder, field, UINT32_MAX, &value))
        return -1;
    *value_p = (uint32_t) value;
    return 0;
}

//  Read a string into a new heap copy; a string holding a NUL is refused,
//  since every consumer treats these as C strings.
static int
s_read_string (s_decoder_t *decoder, const char *field, char **string_p)
{
    pl_mp_item_t item;
    if (pl_mp_next (&decoder->reader, &item))
        return s_fail (decoder, "field '%s' is truncated", field);
    if (item.kind != PL_MP_STR)
        return s_fail (decoder, "field '%s' is not a string", field);
    if (memchr (item.bytes, 0, item.length))
        return s_fail (decoder, "field '%s' holds a NUL byte", field);
    char *string = (char *) malloc ((size_t) item.length + 1);
    if (!string)
        return s_fail (decoder, "out of memory");
    memcpy (string, item.bytes, item.length);
    string [item.length] = 0;
    free (*string_p);
    *string_p = string;
    return 0;
}

static int
s_read_array (s_decoder_t *decoder, const char *field, uint32_t *count_p)
{
    pl_mp_item_t item;
    if (pl_mp_next (&decoder->reader, &item))
        return s_fail (decoder, "field '%s' is truncated or too long", field);
    if (item.kind != PL_MP_ARRAY)
        return s_fail (decoder, "field '%s' is not an array", field);
    if (item.length > PL_ENVELOPE_MAX_ARRAY)
        return s_fail (decoder, "field '%s' has more than %d elements", field,
                       PL_ENVELOPE_MAX_ARRAY);
    *count_p = item.length;
    return 0;
}

static int
s_read_sids (s_decoder_t *decoder, pl_envelope_t *self)
{
    uint32_t count;
    if (s_read_array (decoder, "sids", &count))
        return -1;
    uint64_t *sids = NULL;
    if (count) {
        sids = (uint64_t *) malloc (count * sizeof (uint64_t));
        if (!sids)
            return s_fail (decoder, "out of memory");
    }
    for (uint32_t index = 0; index < count; index++)
        if (s_read_uint (decoder, "sids", UINT64_MAX, &sids [index])) {
            free (sids);
            return -1;
        }
    free (self->sids);
    self->sids = sids;
    self->sids_count = count;
    return 0;
}

static int
s_read_users (s_decoder_t *decoder, pl_envelope_t *self)
{
    uint32_t count;
    if (s_read_array (decoder, "users", &count))
        return -1;
    s_free_users (self);
    if (count == 0)
        return 0;
    self->users = (char **) calloc (count, sizeof (char *));
    if (!self->users)
        return s_fail (decoder, "out of memory");
    //  users_count grows as strings arrive, so destroy frees what was read
    for (uint32_t index = 0; index < count; index++) {
        if (s_read_string (decoder, "users", &self->users [index]))
            return -1;
        self->users_count++;
    }
    return 0;
}

static int
s_read_abi (s_decoder_t *decoder, pl_envelope_t *self)
{
    uint32_t count;
    if (s_read_array (decoder, "abi", &count))
        return -1;
    if (count != 2)
        return s_fail (decoder, "field 'abi' is not [major, minor]");
    if (s_read_uint32 (decoder, "abi", &self->abi_major)
    ||  s_read_uint32 (decoder, "abi", &self->abi_minor))
        return -1;
    self->abi_set = true;
    return 0;
}

static int
s_read_route (s_decoder_t *decoder, pl_route_t *route)
{
    pl_mp_item_t item;
    if (pl_mp_next (&decoder->reader, &item))
        return s_fail (decoder, "field 'routes' is truncated");
    if (item.kind != PL_MP_MAP)
        return s_fail (decoder, "a route is not a map");
    for (uint32_t index = 0; index < item.length; index++) {
        pl_mp_item_t key;
        if (pl_mp_next (&decoder->reader, &key))
            return s_fail (decoder, "a route is truncated");
        int rc = 0;
        if (key.kind != PL_MP_STR)
            rc = pl_mp_skip (&decoder->reader)
                 ? s_fail (decoder, "a route is truncated") : 0;
        else
        if (KEY_IS (&key, "prefix"))
            rc = s_read_string (decoder, "routes.prefix", &route->prefix);
        else
        if (KEY_IS (&key, "flags"))
            rc = s_read_uint32 (decoder, "routes.flags", &route->flags);
        else
        if (KEY_IS (&key, "shard"))
            rc = s_read_uint32 (decoder, "routes.shard", &route->shard);
        else
        if (KEY_IS (&key, "field"))
            rc = s_read_string (decoder, "routes.field", &route->shard_field);
        else
            rc = pl_mp_skip (&decoder->reader)
                 ? s_fail (decoder, "a route is truncated") : 0;
        if (rc)
            return -1;
    }
    if (!route->prefix)
        return s_fail (decoder, "a route has no prefix");
    return 0;
}

static int
s_read_routes (s_decoder_t *decoder, pl_envelope_t *self)
{
    uint32_t count;
    if (s_read_array (decoder, "routes", &count))
        return -1;
    s_free_routes (self);
    if (count == 0)
        return 0;
    self->routes = (pl_route_t *) calloc (count, sizeof (pl_route_t));
    if (!self->routes)
        return s_fail (decoder, "out of memory");
    self->routes_capacity = count;
    for (uint32_t index = 0; index < count; index++) {
        //  Counted before reading so destroy frees a half-read route
        self->routes_count++;
        if (s_read_route (decoder, &self->routes [index]))
            return -1;
    }
    return 0;
}

static int
s_read_cid (s_decoder_t *decoder, pl_envelope_t *self)
{
    size_t start = decoder->reader.pos;
    if (pl_mp_skip (&decoder->reader))
        return s_fail (decoder, "field 'cid' is truncated");
    size_t size = decoder->reader.pos - start;
    uint8_t *cid = (uint8_t *) malloc (size);
    if (!cid)
        return s_fail (decoder, "out of memory");
    memcpy (cid, decoder->reader.data + start, size);
    free (self->cid);
    self->cid = cid;
    self->cid_size = size;
    return 0;
}

static pl_op_t
s_op_from_name (const uint8_t *name, size_t length)
{
    for (int op = PL_OP_HELLO; op < PL_OP_COUNT; op++)
        if (strlen (s_op_names [op]) == length && memcmp (s_op_names [op], name, length) == 0)
            return (pl_op_t) op;
    return PL_OP_INVALID;
}

static int
s_read_field (s_decoder_t *decoder, pl_envelope_t *self, const pl_mp_item_t *key,
              bool *version_seen_p)
{
    uint64_t value = 0;
    pl_mp_item_t item;
    switch (key->length) {
        case 1:
            if (KEY_IS (key, "v")) {
                if (s_read_uint (decoder, "v", UINT64_MAX, &value))
                    return -1;
                if (value != PL_ENVELOPE_VERSION)
                    return s_fail (decoder, "version %llu is not %d",
                                   (unsigned long long) value, PL_ENVELOPE_VERSION);
                *version_seen_p = true;
                return 0;
            }
            break;
        case 2:
            if (KEY_IS (key, "op")) {
                if (pl_mp_next (&decoder->reader, &item) || item.kind != PL_MP_STR)
                    return s_fail (decoder, "field 'op' is not a string");
                self->op = s_op_from_name (item.bytes, item.length);
                if (self->op == PL_OP_INVALID)
                    return s_fail (decoder, "op '%.*s' is unknown",
                                   (int) (item.length > 32 ? 32 : item.length), item.bytes);
                return 0;
            }
            if (KEY_IS (key, "hb"))
                return s_read_uint32 (decoder, "hb", &self->heartbeat);
            if (KEY_IS (key, "dl")) {
                self->deadline_set = true;
                return s_read_uint32 (decoder, "dl", &self->deadline);
            }
            if (KEY_IS (key, "at"))
                return s_read_uint (decoder, "at", UINT64_MAX, &self->sent_at);
            break;
        case 3:
            if (KEY_IS (key, "rid"))
                return s_read_uint (decoder, "rid", UINT64_MAX, &self->rid);
            if (KEY_IS (key, "sid"))
                return s_read_uint (decoder, "sid", UINT64_MAX, &self->sid);
            if (KEY_IS (key, "cid"))
                return s_read_cid (decoder, self);
            if (KEY_IS (key, "abi"))
                return s_read_abi (decoder, self);
            break;
        case 4:
            if (KEY_IS (key, "type"))
                return s_read_string (decoder, "type", &self->type);
            if (KEY_IS (key, "user"))
                return s_read_string (decoder, "user", &self->user);
            if (KEY_IS (key, "addr"))
                return s_read_string (decoder, "addr", &self->addr);
            if (KEY_IS (key, "code"))
                return s_read_string (decoder, "code", &self->code);
            if (KEY_IS (key, "bind"))
                return s_read_string (decoder, "bind", &self->bind);
            if (KEY_IS (key, "sids"))
                return s_read_sids (decoder, self);
            if (KEY_IS (key, "kind"))
                return s_read_string (decoder, "kind", &self->kind);
            if (KEY_IS (key, "name"))
                return s_read_string (decoder, "name", &self->name);
            break;
        case 5:
            if (KEY_IS (key, "users"))
                return s_read_users (decoder, self);
            if (KEY_IS (key, "event"))
                return s_read_uint32 (decoder, "event", &self->event);
            if (KEY_IS (key, "flags"))
                return s_read_uint32 (decoder, "flags", &self->flags);
            break;
        case 6:
            if (KEY_IS (key, "unbind")) {
                if (pl_mp_next (&decoder->reader, &item) || item.kind != PL_MP_BOOL)
                    return s_fail (decoder, "field 'unbind' is not a boolean");
                self->unbind = item.boolean;
                return 0;
            }
            if (KEY_IS (key, "routes"))
                return s_read_routes (decoder, self);
            break;
        case 7:
            if (KEY_IS (key, "message"))
                return s_read_string (decoder, "message", &self->message);
            if (KEY_IS (key, "outcome"))
                return s_read_string (decoder, "outcome", &self->outcome);
            break;
        case 8:
            if (KEY_IS (key, "instance"))
                return s_read_string (decoder, "instance", &self->instance);
            break;
    }
    //  Unknown keys are ignored: a newer peer may send more
    if (pl_mp_skip (&decoder->reader))
        return s_fail (decoder, "the value of an unknown key is truncated");
    return 0;
}


//  --------------------------------------------------------------------------
//  Decode a header from a msgpack buffer. Caller owns return value.

pl_envelope_t *
pl_envelope_decode (const uint8_t *data, size_t size, char *reason, size_t reason_size)
{
    s_decoder_t decoder = {.reason = reason, .reason_size = reason_size};
    if (reason && reason_size)
        reason [0] = 0;
    if (!data || size == 0) {
        s_fail (&decoder, "the header is empty");
        return NULL;
    }
    if (size > PL_ENVELOPE_MAX_HEADER) {
        s_fail (&decoder, "the header is %zu bytes, over %d", size, PL_ENVELOPE_MAX_HEADER);
        return NULL;
    }
    pl_mp_reader_init (&decoder.reader, data, size);

    pl_mp_item_t map;
    if (pl_mp_next (&decoder.reader, &map) || map.kind != PL_MP_MAP) {
        s_fail (&decoder, "the header is not a msgpack map");
        return NULL;
    }
    pl_envelope_t *self = pl_envelope_new (PL_OP_INVALID);
    bool version_seen = false;
    for (uint32_t index = 0; index < map.length; index++) {
        pl_mp_item_t key;
        if (pl_mp_next (&decoder.reader, &key)) {
            s_fail (&decoder, "the header is truncated");
            goto failed;
        }
        if (key.kind != PL_MP_STR) {
            if (key.kind == PL_MP_ARRAY || key.kind == PL_MP_MAP) {
                s_fail (&decoder, "the header has a container as a key");
                goto failed;
            }
            if (pl_mp_skip (&decoder.reader)) {
                s_fail (&decoder, "the header is truncated");
                goto failed;
            }
            continue;
        }
        if (s_read_field (&decoder, self, &key, &version_seen))
            goto failed;
    }
    if (decoder.reader.pos != size) {
        s_fail (&decoder, "the header has %zu bytes after its map", size - decoder.reader.pos);
        goto failed;
    }
    if (!version_seen) {
        s_fail (&decoder, "the header has no version");
        goto failed;
    }
    if (self->op == PL_OP_INVALID) {
        s_fail (&decoder, "the header has no op");
        goto failed;
    }
    return self;

failed:
    pl_envelope_destroy (&self);
    return NULL;
}


//  --------------------------------------------------------------------------
//  Sockets

static bool
s_is_router (void *handle)
{
    int type = 0;
    size_t type_size = sizeof (type);
    if (zmq_getsockopt (handle, ZMQ_TYPE, &type, &type_size))
        return false;
    return type == ZMQ_ROUTER;
}

//  Drain what remains of a multipart message after a frame with MORE
static void
s_drain (void *handle)
{
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    int more = 1;
    while (more) {
        if (zmq_msg_recv (&msg, handle, 0) < 0)
            break;
        more = zmq_msg_more (&msg);
    }
    zmq_msg_close (&msg);
}


//  --------------------------------------------------------------------------
//  Receive one envelope from a socket. Caller owns return value.

//  A HELLO keeps its connection's metadata, which ZeroMQ puts on every
//  message frame it received (not always on a ROUTER's routing id frame:
//  not when the socket was polled before the read), for the broker to tell
//  who may say hello as what. Only HELLO pays for the copies.
static void
s_keep_peer_meta (pl_envelope_t *self, zmq_msg_t *header)
{
    const char *user_id = zmq_msg_gets (header, "User-Id");
    const char *address = zmq_msg_gets (header, "Peer-Address");
    self->peer_user_id = user_id ? strdup (user_id) : NULL;
    self->peer_address = address ? strdup (address) : NULL;
}

pl_envelope_t *
pl_envelope_recv (void *socket)
{
    assert (socket);
    void *handle = zsock_resolve (socket);
    zframe_t *routing_id = NULL;
    if (s_is_router (handle)) {
        routing_id = zframe_recv (handle);
        if (!routing_id)
            return NULL;
        if (!zframe_more (routing_id)) {
            zsys_warning ("pl_envelope: dropped a message with no header");
            zframe_destroy (&routing_id);
            return NULL;
        }
    }
    zmq_msg_t header;
    zmq_msg_init (&header);
    if (zmq_msg_recv (&header, handle, 0) < 0) {
        zmq_msg_close (&header);
        zframe_destroy (&routing_id);
        return NULL;
    }
    zframe_t *body = NULL;
    bool malformed = false;
    if (zmq_msg_more (&header)) {
        body = zframe_recv (handle);
        if (!body)
            malformed = true;
        else
        if (zframe_more (body)) {
            s_drain (handle);
            zsys_warning ("pl_envelope: dropped a message of more than two frames");
            malformed = true;
        }
        else
        if (zframe_size (body) > PL_ENVELOPE_MAX_BODY) {
            zsys_warning ("pl_envelope: dropped a body of %zu bytes", zframe_size (body));
            malformed = true;
        }
    }
    pl_envelope_t *self = NULL;
    if (!malformed) {
        char reason [128];
        self = pl_envelope_decode ((const uint8_t *) zmq_msg_data (&header),
                                   zmq_msg_size (&header), reason, sizeof (reason));
        if (!self)
            zsys_warning ("pl_envelope: dropped a message: %s", reason);
    }
    if (self && self->op == PL_OP_HELLO)
        s_keep_peer_meta (self, &header);
    zmq_msg_close (&header);
    if (self) {
        self->routing_id = routing_id;
        self->body = body;
    }
    else {
        zframe_destroy (&routing_id);
        zframe_destroy (&body);
    }
    return self;
}


static void
s_free_encoded (void *data, void *hint)
{
    free (data);
}

//  Send the frames; routing id and body are sent by reference (zmq_msg_copy
//  shares the buffer), so fanning out one body costs no copies.
static int
s_send (pl_envelope_t *self, void *socket)
{
    void *handle = zsock_resolve (socket);
    size_t header_size;
    uint8_t *header_data = pl_envelope_encode (self, &header_size);
    if (!header_data)
        return -1;
    zmq_msg_t header;
    if (zmq_msg_init_data (&header, header_data, header_size, s_free_encoded, NULL)) {
        free (header_data);
        return -1;
    }
    if (self->routing_id && s_is_router (handle)) {
        if (zframe_send (&self->routing_id, handle,
                         ZFRAME_MORE | ZFRAME_REUSE | ZFRAME_DONTWAIT)) {
            zmq_msg_close (&header);
            return -1;
        }
    }
    int flags = ZMQ_DONTWAIT | (self->body ? ZMQ_SNDMORE : 0);
    if (zmq_msg_send (&header, handle, flags) < 0) {
        zmq_msg_close (&header);
        return -1;
    }
    if (self->body
    &&  zframe_send (&self->body, handle, ZFRAME_REUSE | ZFRAME_DONTWAIT))
        return -1;
    return 0;
}


//  --------------------------------------------------------------------------
//  Send the envelope and destroy it, nullifying the reference.

int
pl_envelope_send (pl_envelope_t **self_p, void *socket)
{
    assert (self_p);
    assert (socket);
    pl_envelope_t *self = *self_p;
    if (!self)
        return -1;
    int rc = s_send (self, socket);
    pl_envelope_destroy (self_p);
    return rc;
}


//  --------------------------------------------------------------------------
//  Send a copy of the envelope; self is unchanged.

int
pl_envelope_send_copy (pl_envelope_t *self, void *socket)
{
    assert (self);
    assert (socket);
    return s_send (self, socket);
}


static char *
s_strdup (const char *string)
{
    return string ? strdup (string) : NULL;
}


//  --------------------------------------------------------------------------
//  Duplicate the envelope, body included. Caller owns return value.

pl_envelope_t *
pl_envelope_dup (pl_envelope_t *self)
{
    assert (self);
    pl_envelope_t *copy = pl_envelope_new (self->op);
    copy->routing_id = self->routing_id ? zframe_dup (self->routing_id) : NULL;
    copy->rid = self->rid;
    copy->sid = self->sid;
    copy->type = s_strdup (self->type);
    copy->user = s_strdup (self->user);
    copy->addr = s_strdup (self->addr);
    pl_envelope_set_cid (copy, self->cid, self->cid_size);
    copy->code = s_strdup (self->code);
    copy->message = s_strdup (self->message);
    copy->bind = s_strdup (self->bind);
    copy->outcome = s_strdup (self->outcome);
    copy->unbind = self->unbind;
    pl_envelope_set_sids (copy, self->sids, self->sids_count);
    pl_envelope_set_users (copy, (const char *const *) self->users, self->users_count);
    copy->event = self->event;
    copy->kind = s_strdup (self->kind);
    copy->name = s_strdup (self->name);
    copy->instance = s_strdup (self->instance);
    copy->abi_major = self->abi_major;
    copy->abi_minor = self->abi_minor;
    copy->abi_set = self->abi_set;
    copy->flags = self->flags;
    for (size_t index = 0; index < self->routes_count; index++) {
        pl_route_t *route = &self->routes [index];
        pl_envelope_add_route (copy, route->prefix, route->flags, route->shard,
                               route->shard_field);
    }
    copy->heartbeat = self->heartbeat;
    copy->deadline = self->deadline;
    copy->deadline_set = self->deadline_set;
    copy->sent_at = self->sent_at;
    copy->body = self->body ? zframe_dup (self->body) : NULL;
    return copy;
}


//  --------------------------------------------------------------------------
//  Name of an op, for logs

const char *
pl_op_name (pl_op_t op)
{
    if ((int) op <= PL_OP_INVALID || (int) op >= PL_OP_COUNT)
        return s_op_names [0];
    return s_op_names [op];
}


//  --------------------------------------------------------------------------
//  Fields

static void
s_set_string (char **field_p, const char *value)
{
    char *copy = value ? strdup (value) : NULL;
    assert (copy || !value);
    free (*field_p);
    *field_p = copy;
}

pl_op_t
pl_envelope_op (pl_envelope_t *self)
{
    assert (self);
    return self->op;
}

void
pl_envelope_set_op (pl_envelope_t *self, pl_op_t op)
{
    assert (self);
    self->op = op;
}

zframe_t *
pl_envelope_routing_id (pl_envelope_t *self)
{
    assert (self);
    return self->routing_id;
}

const char *
pl_envelope_peer_user_id (pl_envelope_t *self)
{
    assert (self);
    return self->peer_user_id;
}

const char *
pl_envelope_peer_address (pl_envelope_t *self)
{
    assert (self);
    return self->peer_address;
}

void
pl_envelope_set_routing_id (pl_envelope_t *self, zframe_t *routing_id)
{
    assert (self);
    if (self->routing_id != routing_id)
        zframe_destroy (&self->routing_id);
    self->routing_id = routing_id;
}

uint64_t
pl_envelope_rid (pl_envelope_t *self)
{
    assert (self);
    return self->rid;
}

void
pl_envelope_set_rid (pl_envelope_t *self, uint64_t rid)
{
    assert (self);
    self->rid = rid;
}

uint64_t
pl_envelope_sid (pl_envelope_t *self)
{
    assert (self);
    return self->sid;
}

void
pl_envelope_set_sid (pl_envelope_t *self, uint64_t sid)
{
    assert (self);
    self->sid = sid;
}

const char *
pl_envelope_type (pl_envelope_t *self)
{
    assert (self);
    return self->type;
}

void
pl_envelope_set_type (pl_envelope_t *self, const char *type)
{
    assert (self);
    s_set_string (&self->type, type);
}

const char *
pl_envelope_user (pl_envelope_t *self)
{
    assert (self);
    return self->user;
}

void
pl_envelope_set_user (pl_envelope_t *self, const char *user)
{
    assert (self);
    s_set_string (&self->user, user);
}

const char *
pl_envelope_addr (pl_envelope_t *self)
{
    assert (self);
    return self->addr;
}

void
pl_envelope_set_addr (pl_envelope_t *self, const char *addr)
{
    assert (self);
    s_set_string (&self->addr, addr);
}

const uint8_t *
pl_envelope_cid (pl_envelope_t *self, size_t *size_p)
{
    assert (self);
    if (size_p)
        *size_p = self->cid_size;
    return self->cid;
}

//  The cid is written verbatim into the header, so bytes that are not exactly
//  one msgpack value would corrupt it: those are refused (cid left unset).
void
pl_envelope_set_cid (pl_envelope_t *self, const uint8_t *cid, size_t size)
{
    assert (self);
    free (self->cid);
    self->cid = NULL;
    self->cid_size = 0;
    if (!cid || size == 0)
        return;
    pl_mp_reader_t reader;
    pl_mp_reader_init (&reader, cid, size);
    if (pl_mp_skip (&reader) || reader.pos != size) {
        zsys_warning ("pl_envelope: refused a cid that is not one msgpack value");
        return;
    }
    self->cid = (uint8_t *) malloc (size);
    assert (self->cid);
    memcpy (self->cid, cid, size);
    self->cid_size = size;
}

const char *
pl_envelope_code (pl_envelope_t *self)
{
    assert (self);
    return self->code;
}

const char *
pl_envelope_message (pl_envelope_t *self)
{
    assert (self);
    return self->message;
}

void
pl_envelope_set_error (pl_envelope_t *self, const char *code, const char *message)
{
    assert (self);
    s_set_string (&self->code, code);
    s_set_string (&self->message, message);
}

const char *
pl_envelope_outcome (pl_envelope_t *self)
{
    assert (self);
    return self->outcome;
}

void
pl_envelope_set_outcome (pl_envelope_t *self, const char *outcome)
{
    assert (self);
    s_set_string (&self->outcome, outcome);
}

const char *
pl_envelope_bind (pl_envelope_t *self)
{
    assert (self);
    return self->bind;
}

void
pl_envelope_set_bind (pl_envelope_t *self, const char *user)
{
    assert (self);
    s_set_string (&self->bind, user);
}

bool
pl_envelope_unbind (pl_envelope_t *self)
{
    assert (self);
    return self->unbind;
}

void
pl_envelope_set_unbind (pl_envelope_t *self, bool unbind)
{
    assert (self);
    self->unbind = unbind;
}

const uint64_t *
pl_envelope_sids (pl_envelope_t *self, size_t *count_p)
{
    assert (self);
    if (count_p)
        *count_p = self->sids_count;
    return self->sids;
}

void
pl_envelope_set_sids (pl_envelope_t *self, const uint64_t *sids, size_t count)
{
    assert (self);
    assert (sids || count == 0);
    uint64_t *copy = NULL;
    if (count) {
        copy = (uint64_t *) malloc (count * sizeof (uint64_t));
        assert (copy);
        memcpy (copy, sids, count * sizeof (uint64_t));
    }
    free (self->sids);
    self->sids = copy;
    self->sids_count = count;
}

char **
pl_envelope_users (pl_envelope_t *self, size_t *count_p)
{
    assert (self);
    if (count_p)
        *count_p = self->users_count;
    return self->users;
}

void
pl_envelope_set_users (pl_envelope_t *self, const char *const *users, size_t count)
{
    assert (self);
    assert (users || count == 0);
    char **copy = NULL;
    if (count) {
        copy = (char **) calloc (count, sizeof (char *));
        assert (copy);
        for (size_t index = 0; index < count; index++) {
            assert (users [index]);
            copy [index] = strdup (users [index]);
            assert (copy [index]);
        }
    }
    s_free_users (self);
    self->users = copy;
    self->users_count = count;
}

uint32_t
pl_envelope_event (pl_envelope_t *self)
{
    assert (self);
    return self->event;
}

void
pl_envelope_set_event (pl_envelope_t *self, uint32_t event)
{
    assert (self);
    self->event = event;
}

const char *
pl_envelope_kind (pl_envelope_t *self)
{
    assert (self);
    return self->kind;
}

void
pl_envelope_set_kind (pl_envelope_t *self, const char *kind)
{
    assert (self);
    s_set_string (&self->kind, kind);
}

const char *
pl_envelope_name (pl_envelope_t *self)
{
    assert (self);
    return self->name;
}

void
pl_envelope_set_name (pl_envelope_t *self, const char *name)
{
    assert (self);
    s_set_string (&self->name, name);
}

const char *
pl_envelope_instance (pl_envelope_t *self)
{
    assert (self);
    return self->instance;
}

void
pl_envelope_set_instance (pl_envelope_t *self, const char *instance)
{
    assert (self);
    s_set_string (&self->instance, instance);
}

void
pl_envelope_abi (pl_envelope_t *self, uint32_t *major_p, uint32_t *minor_p)
{
    assert (self);
    if (major_p)
        *major_p = self->abi_major;
    if (minor_p)
        *minor_p = self->abi_minor;
}

void
pl_envelope_set_abi (pl_envelope_t *self, uint32_t major, uint32_t minor)
{
    assert (self);
    self->abi_major = major;
    self->abi_minor = minor;
    self->abi_set = true;
}

uint32_t
pl_envelope_flags (pl_envelope_t *self)
{
    assert (self);
    return self->flags;
}

void
pl_envelope_set_flags (pl_envelope_t *self, uint32_t flags)
{
    assert (self);
    self->flags = flags;
}

const pl_route_t *
pl_envelope_routes (pl_envelope_t *self, size_t *count_p)
{
    assert (self);
    if (count_p)
        *count_p = self->routes_count;
    return self->routes;
}

void
pl_envelope_add_route (pl_envelope_t *self, const char *prefix, uint32_t flags,
                       uint32_t shard, const char *shard_field)
{
    assert (self);
    assert (prefix);
    if (self->routes_count == self->routes_capacity) {
        size_t capacity = self->routes_capacity ? self->routes_capacity * 2 : 4;
        pl_route_t *routes =
            (pl_route_t *) realloc (self->routes, capacity * sizeof (pl_route_t));
        assert (routes);
        self->routes = routes;
        self->routes_capacity = capacity;
    }
    pl_route_t *route = &self->routes [self->routes_count++];
    route->prefix = strdup (prefix);
    assert (route->prefix);
    route->flags = flags;
    route->shard = shard;
    route->shard_field = s_strdup (shard_field);
}

uint32_t
pl_envelope_heartbeat (pl_envelope_t *self)
{
    assert (self);
    return self->heartbeat;
}

void
pl_envelope_set_heartbeat (pl_envelope_t *self, uint32_t msecs)
{
    assert (self);
    self->heartbeat = msecs;
}

void
pl_envelope_set_error_retry (pl_envelope_t *self, const char *code, const char *message,
                             int64_t retry_ms)
{
    assert (self);
    pl_envelope_set_error (self, code, message);
    pl_buf_t buffer = {0};
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, pl_buf_packer_write);
    msgpack_pack_map (&packer, 1);
    PACK_KEY (&packer, "retry_after_ms");
    msgpack_pack_uint64 (&packer, retry_ms > 0 ? (uint64_t) retry_ms : 0);
    if (!buffer.failed)
        pl_envelope_set_body_copy (self, buffer.data, buffer.size);
    pl_buf_free (&buffer);
}

int64_t
pl_envelope_deadline (pl_envelope_t *self)
{
    assert (self);
    return self->deadline_set ? (int64_t) self->deadline : -1;
}

void
pl_envelope_set_deadline (pl_envelope_t *self, int64_t msecs)
{
    assert (self);
    self->deadline_set = msecs >= 0;
    self->deadline = msecs < 0 ? 0 : msecs > UINT32_MAX ? UINT32_MAX : (uint32_t) msecs;
}

uint64_t
pl_envelope_sent_at (pl_envelope_t *self)
{
    assert (self);
    return self->sent_at;
}

void
pl_envelope_set_sent_at (pl_envelope_t *self, uint64_t msecs)
{
    assert (self);
    self->sent_at = msecs;
}

zframe_t *
pl_envelope_body (pl_envelope_t *self)
{
    assert (self);
    return self->body;
}

void
pl_envelope_set_body (pl_envelope_t *self, zframe_t **body_p)
{
    assert (self);
    zframe_t *body = body_p ? *body_p : NULL;
    if (body != self->body)
        zframe_destroy (&self->body);
    self->body = body;
    if (body_p)
        *body_p = NULL;
}

void
pl_envelope_set_body_copy (pl_envelope_t *self, const void *data, size_t size)
{
    assert (self);
    zframe_destroy (&self->body);
    if (data)
        self->body = zframe_new (data, size);
}
