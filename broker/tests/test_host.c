/*  =========================================================================
    test_host - the plugin host against a broker played by the test

    Each test starts a real host actor with a real plugin .so, and plays the
    broker itself on a ROUTER socket, speaking envelopes through pl_envelope:
    what the host says, and how it answers, is exactly what a broker sees.
    =========================================================================
*/

#include "br_host.h"
#include "pl_envelope.h"
#include "pl_stats.h"

#include <msgpack.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

//  Generous: the machine is shared and the sanitizers are slow
#define WAIT_MS 3000

//  The broker the test plays
typedef struct {
    char endpoint [64];             //  inproc://test-host-N
    zsock_t *router;                //  bound there
    zframe_t *peer;                 //  routing id of the host, once heard
} broker_t;

static broker_t *
broker_new (void)
{
    static int count;
    broker_t *self = (broker_t *) zmalloc (sizeof (broker_t));
    assert_non_null (self);
    snprintf (self->endpoint, sizeof self->endpoint, "inproc://test-host-%d", ++count);
    self->router = zsock_new (ZMQ_ROUTER);
    assert_non_null (self->router);
    assert_int_equal (zsock_bind (self->router, "%s", self->endpoint), 0);
    return self;
}

//  A broker on TCP, on the port given, or on a random free port when 0
static broker_t *
broker_new_tcp (int port)
{
    broker_t *self = (broker_t *) zmalloc (sizeof (broker_t));
    assert_non_null (self);
    self->router = zsock_new (ZMQ_ROUTER);
    assert_non_null (self->router);
    if (port)
        assert_int_equal (zsock_bind (self->router, "tcp://127.0.0.1:%d", port), port);
    else
        //  Below the kernel's ephemeral range: a host reconnecting to a port
        //  in that range while nothing listens there may be handed that very
        //  port as its own, connect to itself, and keep the port from us.
        //  Random, so that tests running at the same time do not meet.
        for (int attempt = 0; attempt < 50 && port <= 0; attempt++)
            port = zsock_bind (self->router, "tcp://127.0.0.1:%d", 20000 + randof (10000));
    assert_true (port > 0);
    snprintf (self->endpoint, sizeof self->endpoint, "tcp://127.0.0.1:%d", port);
    return self;
}

static void
broker_destroy (broker_t **self_p)
{
    broker_t *self = *self_p;
    zsock_destroy (&self->router);
    zframe_destroy (&self->peer);
    free (self);
    *self_p = NULL;
}

//  Next envelope from the host within timeout msecs, or NULL
static pl_envelope_t *
broker_recv (broker_t *self, int timeout)
{
    zmq_pollitem_t item = { zsock_resolve (self->router), 0, ZMQ_POLLIN, 0 };
    if (zmq_poll (&item, 1, timeout) != 1)
        return NULL;
    pl_envelope_t *envelope = pl_envelope_recv (zsock_resolve (self->router));
    if (envelope && pl_envelope_routing_id (envelope)) {
        zframe_destroy (&self->peer);
        self->peer = zframe_dup (pl_envelope_routing_id (envelope));
    }
    return envelope;
}

//  Next envelope with this op, skipping others (heartbeats); fails the test
//  if none comes within WAIT_MS
static pl_envelope_t *
broker_expect (broker_t *self, pl_op_t op)
{
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (zclock_mono () < deadline) {
        pl_envelope_t *envelope = broker_recv (self, (int) (deadline - zclock_mono ()));
        if (envelope && pl_envelope_op (envelope) == op)
            return envelope;
        pl_envelope_destroy (&envelope);
    }
    fail_msg ("no '%s' from the host within %d ms", pl_op_name (op), WAIT_MS);
    return NULL;
}

//  Fails the test if the host says anything but heartbeats within msecs
static void
broker_expect_silence (broker_t *self, int msecs)
{
    int64_t deadline = zclock_mono () + msecs;
    while (zclock_mono () < deadline) {
        pl_envelope_t *envelope = broker_recv (self, (int) (deadline - zclock_mono ()));
        if (envelope && pl_envelope_op (envelope) != PL_OP_HEARTBEAT)
            fail_msg ("unexpected '%s' from the host", pl_op_name (pl_envelope_op (envelope)));
        pl_envelope_destroy (&envelope);
    }
}

//  Sends the envelope to the host and destroys it
static void
broker_send (broker_t *self, pl_envelope_t **envelope_p)
{
    assert_non_null (self->peer);
    pl_envelope_set_routing_id (*envelope_p, zframe_dup (self->peer));
    assert_int_equal (pl_envelope_send (envelope_p, zsock_resolve (self->router)), 0);
}

static void
broker_send_op (broker_t *self, pl_op_t op)
{
    pl_envelope_t *envelope = pl_envelope_new (op);
    if (op == PL_OP_WELCOME)
        pl_envelope_set_heartbeat (envelope, 100);
    assert_non_null (envelope);
    broker_send (self, &envelope);
}

//  Sends a REQUEST with a deadline (time_left; -1 for none) and our clock's
//  stamp (sent_at; 0 for none); user may be NULL. The body is {"text": text}.
static void
broker_send_request_within (broker_t *self, uint64_t rid, const char *type, const char *user,
                            const char *text, int64_t time_left, uint64_t sent_at)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 1);
    msgpack_pack_str_with_body (&packer, "text", 4);
    msgpack_pack_str_with_body (&packer, text, strlen (text));

    pl_envelope_t *request = pl_envelope_new (PL_OP_REQUEST);
    pl_envelope_set_rid (request, rid);
    pl_envelope_set_sid (request, 0x1234567800000001ULL);
    pl_envelope_set_type (request, type);
    pl_envelope_set_addr (request, "127.0.0.1");
    if (user)
        pl_envelope_set_user (request, user);
    pl_envelope_set_deadline (request, time_left);
    pl_envelope_set_sent_at (request, sent_at);
    pl_envelope_set_body_copy (request, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    broker_send (self, &request);
}

//  Sends a REQUEST without a deadline; user may be NULL
static void
broker_send_request (broker_t *self, uint64_t rid, const char *type, const char *user,
                     const char *text)
{
    broker_send_request_within (self, rid, type, user, text, -1, 0);
}

//  Starts a host for the plugin at path against the broker
static zactor_t *
host_start_config (broker_t *broker, br_host_config_t *config)
{
    config->endpoint = broker->endpoint;
    char error [256];
    zactor_t *host = br_host_start (config, error, sizeof error);
    if (!host)
        fail_msg ("host did not start: %s", error);
    return host;
}

//  Starts the example plugin against the broker; heartbeat in msecs
static zactor_t *
host_start (broker_t *broker, uint32_t heartbeat, const char *const *options,
            size_t option_count)
{
    br_host_config_t config = {
        .plugin_path = EXAMPLE_PLUGIN,
        .options = options,
        .option_count = option_count,
        .heartbeat_ms = heartbeat
    };
    return host_start_config (broker, &config);
}

//  Starts the probe plugin, welcomed, with a heartbeat long enough that
//  the tests need not answer heartbeats
static zactor_t *
probe_start_path (broker_t *broker, const char *path, uint32_t call_timeout)
{
    br_host_config_t config = {
        .plugin_path = path,
        .heartbeat_ms = 1000,
        .call_timeout_ms = call_timeout
    };
    zactor_t *host = host_start_config (broker, &config);
    pl_envelope_t *hello = broker_expect (broker, PL_OP_HELLO);
    pl_envelope_destroy (&hello);
    broker_send_op (broker, PL_OP_WELCOME);
    return host;
}

static zactor_t *
probe_start_welcomed (broker_t *broker, uint32_t call_timeout)
{
    return probe_start_path (broker, PROBE_PLUGIN, call_timeout);
}

//  Starts a host and completes its registration
static zactor_t *
host_start_welcomed (broker_t *broker, const char *const *options, size_t option_count)
{
    zactor_t *host = host_start (broker, 100, options, option_count);
    pl_envelope_t *hello = broker_expect (broker, PL_OP_HELLO);
    pl_envelope_destroy (&hello);
    broker_send_op (broker, PL_OP_WELCOME);
    return host;
}

//  Looks key up in a msgpack map object; NULL if absent
static msgpack_object *
map_get (msgpack_object *map, const char *key)
{
    assert_int_equal (map->type, MSGPACK_OBJECT_MAP);
    for (uint32_t index = 0; index < map->via.map.size; index++) {
        msgpack_object *name = &map->via.map.ptr [index].key;
        if (name->type == MSGPACK_OBJECT_STR
        &&  name->via.str.size == strlen (key)
        &&  memcmp (name->via.str.ptr, key, name->via.str.size) == 0)
            return &map->via.map.ptr [index].val;
    }
    return NULL;
}

//  Unpacks an envelope's body into result, which must be a map
static void
unpack_body (pl_envelope_t *envelope, msgpack_unpacked *result)
{
    zframe_t *body = pl_envelope_body (envelope);
    assert_non_null (body);
    msgpack_unpacked_init (result);
    size_t offset = 0;
    assert_int_equal (msgpack_unpack_next (result, (const char *) zframe_data (body),
                                           zframe_size (body), &offset),
                      MSGPACK_UNPACK_SUCCESS);
    assert_int_equal (result->data.type, MSGPACK_OBJECT_MAP);
}

static void
assert_str_object (msgpack_object *object, const char *expected)
{
    assert_non_null (object);
    assert_int_equal (object->type, MSGPACK_OBJECT_STR);
    assert_int_equal (object->via.str.size, strlen (expected));
    assert_memory_equal (object->via.str.ptr, expected, strlen (expected));
}

//  Checks an echo reply: rid, {"echo": {"text": text}, "user": user|nil}
//  and, if greeting is not NULL, "greeting": greeting
static void
assert_echo_reply (pl_envelope_t *reply, uint64_t rid, const char *text, const char *user,
                   const char *greeting)
{
    assert_int_equal (pl_envelope_rid (reply), rid);
    assert_null (pl_envelope_code (reply));
    zframe_t *body = pl_envelope_body (reply);
    assert_non_null (body);

    msgpack_unpacked result;
    msgpack_unpacked_init (&result);
    size_t offset = 0;
    assert_int_equal (msgpack_unpack_next (&result, (const char *) zframe_data (body),
                                           zframe_size (body), &offset),
                      MSGPACK_UNPACK_SUCCESS);
    assert_int_equal (result.data.type, MSGPACK_OBJECT_MAP);
    assert_int_equal (result.data.via.map.size, greeting ? 3 : 2);

    msgpack_object *echo = map_get (&result.data, "echo");
    assert_non_null (echo);
    assert_int_equal (echo->type, MSGPACK_OBJECT_MAP);
    assert_int_equal (echo->via.map.size, 1);
    assert_str_object (map_get (echo, "text"), text);

    msgpack_object *user_object = map_get (&result.data, "user");
    assert_non_null (user_object);
    if (user)
        assert_str_object (user_object, user);
    else
        assert_int_equal (user_object->type, MSGPACK_OBJECT_NIL);
    if (greeting)
        assert_str_object (map_get (&result.data, "greeting"), greeting);
    msgpack_unpacked_destroy (&result);
}


//  --------------------------------------------------------------------------
//  Tests

static void
test_hello_announces_routes_abi_and_unique_instance (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = host_start (broker, 100, NULL, 0);
    zactor_t *second = host_start (broker, 100, NULL, 0);

    pl_envelope_t *hello = broker_expect (broker, PL_OP_HELLO);
    assert_string_equal (pl_envelope_kind (hello), "plugin");
    assert_string_equal (pl_envelope_name (hello), "example");
    uint32_t major, minor;
    pl_envelope_abi (hello, &major, &minor);
    assert_int_equal (major, PARLEY_ABI_MAJOR);
    assert_int_equal (minor, PARLEY_ABI_MINOR);
    assert_int_equal (pl_envelope_heartbeat (hello), 100);
    size_t count;
    const pl_route_t *routes = pl_envelope_routes (hello, &count);
    assert_int_equal (count, 1);
    assert_string_equal (routes [0].prefix, "example.");
    assert_int_equal (routes [0].flags, PARLEY_ROUTE_PUBLIC);
    assert_int_equal (routes [0].shard, PARLEY_SHARD_NONE);
    const char *instance = pl_envelope_instance (hello);
    assert_non_null (instance);
    assert_int_equal (strncmp (instance, "example@", 8), 0);

    pl_envelope_t *other = broker_expect (broker, PL_OP_HELLO);
    assert_string_not_equal (pl_envelope_instance (other), instance);

    pl_envelope_destroy (&other);
    pl_envelope_destroy (&hello);
    zactor_destroy (&second);
    zactor_destroy (&host);
    broker_destroy (&broker);
}

static void
test_echo_request_gets_reply_with_same_rid_and_nil_user (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = host_start_welcomed (broker, NULL, 0);

    broker_send_request (broker, 42, "example.echo", NULL, "hello");
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    assert_echo_reply (reply, 42, "hello", NULL, NULL);

    pl_envelope_destroy (&reply);
    zactor_destroy (&host);
    broker_destroy (&broker);
}

static void
test_echo_request_with_stamped_user_echoes_user (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = host_start_welcomed (broker, NULL, 0);

    broker_send_request (broker, 7, "example.echo", "alice", "hi there");
    broker_send_request (broker, 8, "example.echo", "bob", "second");
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    assert_echo_reply (reply, 7, "hi there", "alice", NULL);
    pl_envelope_destroy (&reply);
    reply = broker_expect (broker, PL_OP_REPLY);
    assert_echo_reply (reply, 8, "second", "bob", NULL);

    pl_envelope_destroy (&reply);
    zactor_destroy (&host);
    broker_destroy (&broker);
}

static void
test_unknown_example_type_gets_unknown_type_error (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = host_start_welcomed (broker, NULL, 0);

    broker_send_request (broker, 9, "example.nope", NULL, "x");
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    assert_int_equal (pl_envelope_rid (reply), 9);
    assert_string_equal (pl_envelope_code (reply), "unknown_type");
    assert_non_null (strstr (pl_envelope_message (reply), "example.nope"));

    pl_envelope_destroy (&reply);
    zactor_destroy (&host);
    broker_destroy (&broker);
}

static void
test_request_without_type_gets_bad_request_from_host (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = host_start_welcomed (broker, NULL, 0);

    pl_envelope_t *request = pl_envelope_new (PL_OP_REQUEST);
    pl_envelope_set_rid (request, 31);
    broker_send (broker, &request);
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    assert_int_equal (pl_envelope_rid (reply), 31);
    assert_string_equal (pl_envelope_code (reply), "bad_request");

    pl_envelope_destroy (&reply);
    zactor_destroy (&host);
    broker_destroy (&broker);
}

static void
test_greeting_option_adds_greeting_to_echo (void **state)
{
    broker_t *broker = broker_new ();
    const char *options [] = {
        "other.greeting=not for us", "example.greeting=Hello, world", "example.bad"
    };
    zactor_t *host = host_start_welcomed (broker, options, 3);

    broker_send_request (broker, 11, "example.echo", "carol", "hey");
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    assert_echo_reply (reply, 11, "hey", "carol", "Hello, world");

    pl_envelope_destroy (&reply);
    zactor_destroy (&host);
    broker_destroy (&broker);
}

static void
test_who_triggers_new_hello (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = host_start (broker, 1000, NULL, 0);
    pl_envelope_t *hello = broker_expect (broker, PL_OP_HELLO);
    char *instance = strdup (pl_envelope_instance (hello));
    pl_envelope_destroy (&hello);
    broker_send_op (broker, PL_OP_WELCOME);

    int64_t sent_at = zclock_mono ();
    broker_send_op (broker, PL_OP_WHO);
    hello = broker_expect (broker, PL_OP_HELLO);
    //  At once, not after a heartbeat's silence
    assert_true (zclock_mono () - sent_at < 900);
    assert_string_equal (pl_envelope_instance (hello), instance);

    free (instance);
    pl_envelope_destroy (&hello);
    zactor_destroy (&host);
    broker_destroy (&broker);
}

static void
test_abi_major_2_plugin_refused_naming_both_versions (void **state)
{
    br_host_config_t config = {
        .plugin_path = ABI_MISMATCH_PLUGIN,
        .endpoint = "inproc://test-host-nobody"
    };
    char error [256];
    zactor_t *host = br_host_start (&config, error, sizeof error);
    assert_null (host);
    assert_non_null (strstr (error, "'abi-mismatch'"));
    assert_non_null (strstr (error, "ABI 2.0"));
    char supported [32];
    snprintf (supported, sizeof supported, "ABI 1 (1.%d)", PARLEY_ABI_MINOR);
    assert_non_null (strstr (error, supported));
    assert_non_null (strstr (error, ABI_MISMATCH_PLUGIN));
}

static void
test_missing_plugin_file_gives_dlerror_text (void **state)
{
    br_host_config_t config = {
        .plugin_path = "/nonexistent/parley/missing.so",
        .endpoint = "inproc://test-host-nobody"
    };
    char error [256];
    zactor_t *host = br_host_start (&config, error, sizeof error);
    assert_null (host);
    assert_non_null (strstr (error, "/nonexistent/parley/missing.so"));
    assert_non_null (strstr (error, "No such file or directory"));
}

static void
test_idle_host_sends_heartbeats (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = host_start_welcomed (broker, NULL, 0);

    //  heartbeat 100 ms: two beats within a generous window, and the broker
    //  keeps talking so that the host never counts it silent
    int beats = 0;
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (beats < 2 && zclock_mono () < deadline) {
        pl_envelope_t *envelope = broker_recv (broker, 50);
        if (envelope) {
            assert_int_equal (pl_envelope_op (envelope), PL_OP_HEARTBEAT);
            beats++;
            broker_send_op (broker, PL_OP_HEARTBEAT);
        }
        pl_envelope_destroy (&envelope);
    }
    assert_int_equal (beats, 2);

    zactor_destroy (&host);
    broker_destroy (&broker);
}

static void
test_silent_broker_gets_hello_again (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = host_start_welcomed (broker, NULL, 0);
    int64_t welcomed_at = zclock_mono ();

    //  The broker says nothing; after 3 x 100 ms the host takes it for dead
    pl_envelope_t *hello = broker_expect (broker, PL_OP_HELLO);
    assert_true (zclock_mono () - welcomed_at >= 250);
    pl_envelope_destroy (&hello);
    //  And keeps saying hello, every heartbeat, until welcomed
    hello = broker_expect (broker, PL_OP_HELLO);
    pl_envelope_destroy (&hello);
    broker_send_op (broker, PL_OP_WELCOME);

    //  Welcomed again, it serves requests
    broker_send_request (broker, 99, "example.echo", NULL, "back");
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    assert_echo_reply (reply, 99, "back", NULL, NULL);

    pl_envelope_destroy (&reply);
    zactor_destroy (&host);
    broker_destroy (&broker);
}

static void
test_host_registers_again_with_restarted_broker_over_tcp (void **state)
{
    broker_t *broker = broker_new_tcp (0);
    zactor_t *host = host_start (broker, 100, NULL, 0);
    pl_envelope_t *hello = broker_expect (broker, PL_OP_HELLO);
    pl_envelope_destroy (&hello);
    broker_send_op (broker, PL_OP_WELCOME);
    broker_send_request (broker, 1, "example.echo", NULL, "before");
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    pl_envelope_destroy (&reply);

    //  The broker goes away and comes back on the same port, knowing
    //  nothing: the host must say hello to it exactly once it hears of it
    int port = atoi (strrchr (broker->endpoint, ':') + 1);
    broker_destroy (&broker);
    zclock_sleep (500);
    broker = broker_new_tcp (port);
    hello = broker_expect (broker, PL_OP_HELLO);
    assert_string_equal (pl_envelope_name (hello), "example");
    pl_envelope_destroy (&hello);
    broker_send_op (broker, PL_OP_WELCOME);
    broker_send_request (broker, 2, "example.echo", NULL, "after");
    reply = broker_expect (broker, PL_OP_REPLY);
    assert_echo_reply (reply, 2, "after", NULL, NULL);
    pl_envelope_destroy (&reply);
    //  No stale hellos queued while it was away
    broker_expect_silence (broker, 150);

    zactor_destroy (&host);
    broker_destroy (&broker);
}

static void
test_refused_host_stops_serving (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = host_start (broker, 100, NULL, 0);
    pl_envelope_t *hello = broker_expect (broker, PL_OP_HELLO);
    pl_envelope_destroy (&hello);

    pl_envelope_t *refuse = pl_envelope_new (PL_OP_REFUSE);
    pl_envelope_set_error (refuse, "duplicate", "instance already registered");
    broker_send (broker, &refuse);
    broker_send_request (broker, 5, "example.echo", NULL, "anyone?");
    //  No reply, no heartbeat, no hello: silence for several heartbeats
    pl_envelope_t *envelope = broker_recv (broker, 600);
    assert_null (envelope);

    zactor_destroy (&host);
    broker_destroy (&broker);
}

//  A broker that still holds our previous connection refuses our instance
//  for a while: the host says hello again rather than give up
static void
test_duplicate_instance_refusal_is_transient (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = host_start (broker, 100, NULL, 0);
    pl_envelope_t *hello = broker_expect (broker, PL_OP_HELLO);
    pl_envelope_destroy (&hello);
    pl_envelope_t *refuse = pl_envelope_new (PL_OP_REFUSE);
    pl_envelope_set_error (refuse, "duplicate_instance", "instance already registered");
    broker_send (broker, &refuse);
    hello = broker_expect (broker, PL_OP_HELLO);
    pl_envelope_destroy (&hello);
    broker_send_op (broker, PL_OP_WELCOME);
    broker_send_request (broker, 5, "example.echo", NULL, "still here");
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    assert_int_equal (pl_envelope_rid (reply), 5);
    pl_envelope_destroy (&reply);
    zactor_destroy (&host);
    broker_destroy (&broker);
}

//  A request taken before a new hello belongs to a registration the broker
//  forgot: its late reply goes nowhere (its rid may name another request)
static void
test_reply_of_an_older_registration_is_dropped (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = probe_start_welcomed (broker, 0);
    broker_send_request (broker, 9, "probe.slow", NULL, "later");
    zclock_sleep (100);
    broker_send_op (broker, PL_OP_WHO);
    pl_envelope_t *hello = broker_expect (broker, PL_OP_HELLO);
    pl_envelope_destroy (&hello);
    broker_send_op (broker, PL_OP_WELCOME);
    //  probe.slow answers a second after: nothing comes
    broker_expect_silence (broker, 1500);
    //  A request of the new registration is answered as always
    broker_send_request (broker, 10, "probe.batches", NULL, "now");
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    assert_int_equal (pl_envelope_rid (reply), 10);
    pl_envelope_destroy (&reply);
    zactor_destroy (&host);
    broker_destroy (&broker);
}

//  Given the two brokers of a standby pair, the host moves to the second
//  when the first falls silent, and comes back when the second says nothing
static void
test_host_moves_between_two_brokers (void **state)
{
    broker_t *first = broker_new ();
    broker_t *second = broker_new ();
    char endpoints [160];
    snprintf (endpoints, sizeof endpoints, "%s,%s", first->endpoint, second->endpoint);
    br_host_config_t config = { .plugin_path = EXAMPLE_PLUGIN, .heartbeat_ms = 100,
                                .endpoint = endpoints };
    char error [256];
    zactor_t *host = br_host_start (&config, error, sizeof error);
    assert_non_null (host);
    pl_envelope_t *hello = broker_expect (first, PL_OP_HELLO);
    pl_envelope_destroy (&hello);
    broker_send_op (first, PL_OP_WELCOME);
    //  The first says nothing more: 3 heartbeats later the host is at the second
    hello = broker_expect (second, PL_OP_HELLO);
    pl_envelope_destroy (&hello);
    //  The second ignores it (a passive broker): back to the first
    hello = broker_expect (first, PL_OP_HELLO);
    pl_envelope_destroy (&hello);
    broker_send_op (first, PL_OP_WELCOME);
    broker_send_request (first, 3, "example.echo", NULL, "back");
    pl_envelope_t *reply = broker_expect (first, PL_OP_REPLY);
    assert_int_equal (pl_envelope_rid (reply), 3);
    pl_envelope_destroy (&reply);
    zactor_destroy (&host);
    broker_destroy (&first);
    broker_destroy (&second);
}

static void
test_destroyed_host_says_bye_promptly (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = host_start_welcomed (broker, NULL, 0);
    broker_send_request (broker, 1, "example.echo", NULL, "one");
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    pl_envelope_destroy (&reply);

    int64_t started = zclock_mono ();
    zactor_destroy (&host);
    assert_true (zclock_mono () - started < 500);
    pl_envelope_t *bye = broker_expect (broker, PL_OP_BYE);
    pl_envelope_destroy (&bye);
    broker_destroy (&broker);
}

static void
test_call_sends_request_and_reply_reaches_on_reply (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = probe_start_welcomed (broker, 0);

    broker_send_request (broker, 5, "probe.call", "alice", "to store");
    pl_envelope_t *call = broker_expect (broker, PL_OP_REQUEST);
    assert_string_equal (pl_envelope_type (call), "store.probe");
    assert_true (pl_envelope_rid (call) > 0);
    assert_int_equal (pl_envelope_sid (call), 0);
    assert_null (pl_envelope_user (call));
    msgpack_unpacked fields;
    unpack_body (call, &fields);
    assert_str_object (map_get (&fields.data, "text"), "to store");
    msgpack_unpacked_destroy (&fields);

    //  The store answers {"n": 1}; the probe replies with what it got
    pl_envelope_t *answer = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (answer, pl_envelope_rid (call));
    const uint8_t result [] = { 0x81, 0xa1, 'n', 0x01 };
    pl_envelope_set_body_copy (answer, result, sizeof result);
    broker_send (broker, &answer);

    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    assert_int_equal (pl_envelope_rid (reply), 5);
    msgpack_unpacked outcome;
    unpack_body (reply, &outcome);
    assert_int_equal (map_get (&outcome.data, "code")->type, MSGPACK_OBJECT_NIL);
    msgpack_object *got = map_get (&outcome.data, "result");
    assert_non_null (got);
    assert_int_equal (got->type, MSGPACK_OBJECT_MAP);
    assert_int_equal (map_get (got, "n")->via.u64, 1);
    msgpack_unpacked_destroy (&outcome);

    //  A second reply to the same rid is late and dropped
    answer = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (answer, pl_envelope_rid (call));
    broker_send (broker, &answer);
    broker_expect_silence (broker, 200);

    pl_envelope_destroy (&reply);
    pl_envelope_destroy (&call);
    zactor_destroy (&host);
    broker_destroy (&broker);
}

static void
test_call_error_reply_passes_code_to_on_reply (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = probe_start_welcomed (broker, 0);

    broker_send_request (broker, 6, "probe.call", "alice", "x");
    pl_envelope_t *call = broker_expect (broker, PL_OP_REQUEST);
    pl_envelope_t *answer = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (answer, pl_envelope_rid (call));
    pl_envelope_set_error (answer, "no_such_room", "No room.");
    broker_send (broker, &answer);

    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    assert_int_equal (pl_envelope_rid (reply), 6);
    msgpack_unpacked outcome;
    unpack_body (reply, &outcome);
    assert_str_object (map_get (&outcome.data, "code"), "no_such_room");
    //  Minor 3: an error without fields hands on_reply an empty map
    msgpack_object *result = map_get (&outcome.data, "result");
    assert_int_equal (result->type, MSGPACK_OBJECT_MAP);
    assert_int_equal (result->via.map.size, 0);
    msgpack_unpacked_destroy (&outcome);

    pl_envelope_destroy (&reply);
    pl_envelope_destroy (&call);
    zactor_destroy (&host);
    broker_destroy (&broker);
}

//  An error's fields (retry_after_ms) and its outcome reach a minor 3
//  plugin's on_reply as a map; a minor 2 plugin gets no body, as before
static void
test_call_error_fields_and_outcome_reach_minor_3_only (void **state)
{
    const char *paths [] = { PROBE_PLUGIN, PROBE_MINOR2_PLUGIN };
    for (int minor2 = 0; minor2 < 2; minor2++) {
        broker_t *broker = broker_new ();
        zactor_t *host = probe_start_path (broker, paths [minor2], 0);
        broker_send_request (broker, 6, "probe.call", "alice", "x");
        pl_envelope_t *call = broker_expect (broker, PL_OP_REQUEST);
        pl_envelope_t *answer = pl_envelope_new (PL_OP_REPLY);
        pl_envelope_set_rid (answer, pl_envelope_rid (call));
        pl_envelope_set_error_retry (answer, "unavailable", "Lost.", 750);
        pl_envelope_set_outcome (answer, "unknown");
        broker_send (broker, &answer);

        pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
        msgpack_unpacked outcome;
        unpack_body (reply, &outcome);
        assert_str_object (map_get (&outcome.data, "code"), "unavailable");
        msgpack_object *result = map_get (&outcome.data, "result");
        if (minor2)
            assert_int_equal (result->type, MSGPACK_OBJECT_NIL);
        else {
            assert_int_equal (result->type, MSGPACK_OBJECT_MAP);
            assert_int_equal (result->via.map.size, 2);
            assert_int_equal (map_get (result, "retry_after_ms")->via.u64, 750);
            assert_str_object (map_get (result, "outcome"), "unknown");
        }
        msgpack_unpacked_destroy (&outcome);
        pl_envelope_destroy (&reply);
        pl_envelope_destroy (&call);
        zactor_destroy (&host);
        broker_destroy (&broker);
    }
}

//  Asks probe.left with this deadline; returns what the plugin saw
static int64_t
s_probe_left (broker_t *broker, uint64_t rid, int64_t time_left)
{
    broker_send_request_within (broker, rid, "probe.left", "alice", "x", time_left, 0);
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    assert_null (pl_envelope_code (reply));
    msgpack_unpacked result;
    unpack_body (reply, &result);
    int64_t left = map_get (&result.data, "left")->via.i64;
    msgpack_unpacked_destroy (&result);
    pl_envelope_destroy (&reply);
    return left;
}

//  The time left of the request being handled goes with a call made then
static int64_t
s_call_deadline (broker_t *broker, uint64_t rid, const char *type, int64_t time_left)
{
    broker_send_request_within (broker, rid, type, "alice", "x", time_left, 0);
    pl_envelope_t *call = broker_expect (broker, PL_OP_REQUEST);
    int64_t deadline = pl_envelope_deadline (call);
    pl_envelope_t *answer = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (answer, pl_envelope_rid (call));
    broker_send (broker, &answer);
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    pl_envelope_destroy (&reply);
    pl_envelope_destroy (&call);
    return deadline;
}

static void
test_deadline_reaches_the_plugin_and_its_calls (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = probe_start_welcomed (broker, 0);

    int64_t left = s_probe_left (broker, 1, 3000);
    assert_true (left > 3000 - WAIT_MS && left <= 3000);
    assert_int_equal (s_probe_left (broker, 2, -1), -1);

    int64_t inherited = s_call_deadline (broker, 3, "probe.call", 3000);
    assert_true (inherited > 3000 - WAIT_MS && inherited <= 3000);
    assert_int_equal (s_call_deadline (broker, 4, "probe.call", -1), -1);
    assert_int_equal (s_call_deadline (broker, 5, "probe.within", -1), 1234);

    zactor_destroy (&host);
    broker_destroy (&broker);
}

//  A request that comes with no time left, or that waited on its way
//  longer than it had, is answered unavailable by the host: the plugin,
//  which would answer probe.left ok, never sees it
static void
s_expect_expired (broker_t *broker, uint64_t rid)
{
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    assert_int_equal (pl_envelope_rid (reply), rid);
    assert_string_equal (pl_envelope_code (reply), "unavailable");
    assert_null (pl_envelope_outcome (reply));
    msgpack_unpacked result;
    unpack_body (reply, &result);
    assert_true (map_get (&result.data, "retry_after_ms")->via.u64 >= 100);
    msgpack_unpacked_destroy (&result);
    pl_envelope_destroy (&reply);
}

static void
test_request_whose_time_is_gone_never_reaches_the_plugin (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = probe_start_welcomed (broker, 0);

    broker_send_request_within (broker, 1, "probe.left", "alice", "x", 0, 0);
    s_expect_expired (broker, 1);

    //  Our clock on a message teaches the host the quickest trip; a request
    //  stamped 5 s earlier waited 5 s somewhere, more than its 3 s
    pl_envelope_t *heartbeat = pl_envelope_new (PL_OP_HEARTBEAT);
    pl_envelope_set_sent_at (heartbeat, (uint64_t) zclock_mono ());
    broker_send (broker, &heartbeat);
    broker_send_request_within (broker, 2, "probe.left", "alice", "x", 3000,
                                (uint64_t) zclock_mono () - 5000);
    s_expect_expired (broker, 2);
    //  One stamped now has its time
    broker_send_request_within (broker, 3, "probe.left", "alice", "x", 3000,
                                (uint64_t) zclock_mono ());
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    assert_null (pl_envelope_code (reply));
    pl_envelope_destroy (&reply);

    //  A plugin's "outcome": "unknown" goes into the header
    broker_send_request (broker, 4, "probe.unknown", "alice", "x");
    reply = broker_expect (broker, PL_OP_REPLY);
    assert_string_equal (pl_envelope_code (reply), "unavailable");
    assert_string_equal (pl_envelope_outcome (reply), "unknown");
    pl_envelope_destroy (&reply);

    zactor_destroy (&host);
    broker_destroy (&broker);
}

static void
test_unanswered_call_gets_unavailable (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = probe_start_welcomed (broker, 200);

    int64_t sent_at = zclock_mono ();
    broker_send_request (broker, 7, "probe.call", "alice", "into the void");
    pl_envelope_t *call = broker_expect (broker, PL_OP_REQUEST);
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    assert_true (zclock_mono () - sent_at >= 190);
    assert_int_equal (pl_envelope_rid (reply), 7);
    msgpack_unpacked outcome;
    unpack_body (reply, &outcome);
    assert_str_object (map_get (&outcome.data, "code"), "unavailable");
    //  The call left and nothing came back: it may have been done
    assert_str_object (map_get (map_get (&outcome.data, "result"), "outcome"), "unknown");
    msgpack_unpacked_destroy (&outcome);

    pl_envelope_destroy (&reply);
    pl_envelope_destroy (&call);
    zactor_destroy (&host);
    broker_destroy (&broker);
}

static void
test_deliver_sends_users_and_sessions (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = probe_start_welcomed (broker, 0);

    broker_send_request (broker, 8, "probe.deliver", "alice", "x");
    pl_envelope_t *to_users = broker_expect (broker, PL_OP_DELIVER);
    size_t count;
    char **users = pl_envelope_users (to_users, &count);
    assert_int_equal (count, 2);
    assert_string_equal (users [0], "alice");
    assert_string_equal (users [1], "bob");
    msgpack_unpacked event;
    unpack_body (to_users, &event);
    assert_str_object (map_get (&event.data, "type"), "probe.event");
    msgpack_unpacked_destroy (&event);

    pl_envelope_t *to_sessions = broker_expect (broker, PL_OP_DELIVER);
    const uint64_t *sids = pl_envelope_sids (to_sessions, &count);
    assert_int_equal (count, 1);
    assert_int_equal (sids [0], 77);

    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    assert_int_equal (pl_envelope_rid (reply), 8);

    pl_envelope_destroy (&reply);
    pl_envelope_destroy (&to_sessions);
    pl_envelope_destroy (&to_users);
    zactor_destroy (&host);
    broker_destroy (&broker);
}

static void
test_plugin_timer_ticks_until_cancelled (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = probe_start_welcomed (broker, 0);

    int64_t sent_at = zclock_mono ();
    broker_send_request (broker, 9, "probe.timer", "alice", "x");
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    assert_true (zclock_mono () - sent_at >= 55);
    msgpack_unpacked result;
    unpack_body (reply, &result);
    assert_int_equal (map_get (&result.data, "ticks")->via.u64, 3);
    msgpack_unpacked_destroy (&result);

    pl_envelope_destroy (&reply);
    zactor_destroy (&host);
    broker_destroy (&broker);
}

static void
test_session_events_and_batch_end_reach_plugin (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = probe_start_welcomed (broker, 0);

    pl_envelope_t *event = pl_envelope_new (PL_OP_SESSION_EVENT);
    pl_envelope_set_event (event, PARLEY_SESSION_BOUND);
    pl_envelope_set_sid (event, 99);
    pl_envelope_set_user (event, "alice");
    broker_send (broker, &event);
    //  Let the event's batch end before asking
    zclock_sleep (100);
    broker_send_request (broker, 10, "probe.batches", "alice", "x");
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    msgpack_unpacked result;
    unpack_body (reply, &result);
    assert_int_equal (map_get (&result.data, "sessions")->via.u64, 1);
    assert_true (map_get (&result.data, "batches")->via.u64 >= 1);
    msgpack_unpacked_destroy (&result);

    pl_envelope_destroy (&reply);
    zactor_destroy (&host);
    broker_destroy (&broker);
}

//  Threads of the plugin's own hand results back through host->wake: the
//  probe sets no timer, so its answer can only come from on_wake, and it
//  comes only after the last waker's wake (none is lost between them)
static void
test_wake_from_plugin_threads_reaches_on_wake_without_a_timer (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = probe_start_welcomed (broker, 0);

    broker_send_request (broker, 13, "probe.wake", "alice", "x");
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    assert_int_equal (pl_envelope_rid (reply), 13);
    msgpack_unpacked result;
    unpack_body (reply, &result);
    assert_int_equal (map_get (&result.data, "wakers")->via.u64, 4);
    //  Wakes coalesce: at least one on_wake, at most one per wake
    uint64_t on_wakes = map_get (&result.data, "on_wake")->via.u64;
    assert_true (on_wakes >= 1 && on_wakes <= 4 * 501);
    msgpack_unpacked_destroy (&result);
    pl_envelope_destroy (&reply);

    //  And again: the pipe and the flag are ready for the next round
    broker_send_request (broker, 14, "probe.wake", "alice", "x");
    reply = broker_expect (broker, PL_OP_REPLY);
    assert_int_equal (pl_envelope_rid (reply), 14);
    pl_envelope_destroy (&reply);
    zactor_destroy (&host);
    broker_destroy (&broker);
}

//  The broker's STATS reaches a minor 4 plugin's on_metrics: its series come
//  back in a STATS body, the one the ABI refuses left out; a minor 2 plugin
//  has no on_metrics and answers nothing
static void
test_stats_gathers_a_minor_4_plugin_s_metrics (void **state)
{
    const char *paths [] = { PROBE_PLUGIN, PROBE_MINOR2_PLUGIN };
    for (int minor2 = 0; minor2 < 2; minor2++) {
        broker_t *broker = broker_new ();
        zactor_t *host = probe_start_path (broker, paths [minor2], 0);
        pl_envelope_t *ask = pl_envelope_new (PL_OP_STATS);
        broker_send (broker, &ask);
        if (minor2)
            broker_expect_silence (broker, 300);
        else {
            pl_envelope_t *stats = broker_expect (broker, PL_OP_STATS);
            zframe_t *body = pl_envelope_body (stats);
            assert_non_null (body);
            pl_stats_part_t part = { "p1", zframe_data (body), zframe_size (body) };
            char *text = NULL;
            size_t size = 0;
            FILE *out = open_memstream (&text, &size);
            assert_int_equal (pl_stats_render (out, &part, 1), 2);
            fclose (out);
            const char *batches = "# TYPE parley_probe_batches_total counter\n"
                                  "parley_probe_batches_total{instance=\"p1\"} ";
            //  The count itself races with the batch that answered probe.batches
            assert_non_null (strstr (text, batches));
            assert_non_null (strstr (text, "parley_probe_wait_seconds_bucket"
                                           "{kind=\"a\",instance=\"p1\",le=\"1\"} 1\n"));
            assert_null (strstr (text, "unprefixed"));
            free (text);
            pl_envelope_destroy (&stats);
        }
        zactor_destroy (&host);
        broker_destroy (&broker);
    }
}

static void
test_requests_held_at_destroy_are_freed_by_host (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = probe_start_welcomed (broker, 0);

    broker_send_request (broker, 11, "probe.hold", "alice", "kept");
    broker_send_request (broker, 12, "probe.call", "alice", "pending");
    pl_envelope_t *call = broker_expect (broker, PL_OP_REQUEST);
    pl_envelope_destroy (&call);
    //  The sanitizer's leak check is the assertion
    zactor_destroy (&host);
    broker_destroy (&broker);
}


//  A reply past the body limit is answered internal with outcome unknown at
//  once, never left to time out; an event past it is not sent
static void
test_oversized_reply_is_answered_internal_outcome_unknown (void **state)
{
    broker_t *broker = broker_new ();
    zactor_t *host = probe_start_welcomed (broker, 0);

    for (uint64_t rid = 20; rid < 22; rid++) {
        broker_send_request (broker, rid, "probe.huge", "alice", "x");
        pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
        assert_int_equal (pl_envelope_rid (reply), rid);
        assert_string_equal (pl_envelope_code (reply), "internal");
        assert_string_equal (pl_envelope_outcome (reply), "unknown");
        assert_non_null (strstr (pl_envelope_message (reply), "too large"));
        assert_null (pl_envelope_body (reply));
        pl_envelope_destroy (&reply);
    }

    broker_send_request (broker, 22, "probe.huge_event", "alice", "x");
    pl_envelope_t *reply = broker_expect (broker, PL_OP_REPLY);
    assert_int_equal (pl_envelope_rid (reply), 22);
    assert_null (pl_envelope_code (reply));
    msgpack_unpacked outcome;
    unpack_body (reply, &outcome);
    assert_int_equal (map_get (&outcome.data, "rc")->via.i64, -1);
    msgpack_unpacked_destroy (&outcome);
    pl_envelope_destroy (&reply);
    broker_expect_silence (broker, 200);

    zactor_destroy (&host);
    broker_destroy (&broker);
}

//  An option key the plugin never asks for stops it from starting, with the
//  keys it knows; an option for another plugin is left for the program
static void
test_unknown_option_key_is_refused_with_the_known_keys (void **state)
{
    broker_t *broker = broker_new ();
    const char *options [] = { "example.greeting=Hi", "example.greetin=Hi", "rooms.msg_rate=0" };
    bool taken [3] = { false, false, false };
    br_host_config_t config = {
        .plugin_path = EXAMPLE_PLUGIN,
        .endpoint = broker->endpoint,
        .options = options,
        .option_count = 3,
        .options_taken = taken
    };
    char error [512];
    zactor_t *host = br_host_start (&config, error, sizeof error);
    assert_null (host);
    assert_non_null (strstr (error, "has no option 'greetin'"));
    assert_non_null (strstr (error, "its options are: greeting"));
    //  It never said hello: the broker heard nothing
    broker_expect_silence (broker, 200);

    //  The right key starts it; the option no plugin took names the missing one
    config.option_count = 1;
    options [1] = NULL;
    host = br_host_start (&config, error, sizeof error);
    assert_non_null (host);
    assert_true (taken [0]);
    assert_false (taken [2]);
    assert_int_equal (br_host_check_options_taken (options, taken, 1, error, sizeof error), 0);
    assert_int_equal (br_host_check_options_taken (options, taken, 3, error, sizeof error), -1);
    assert_non_null (strstr (error, "no plugin named 'rooms' is loaded"));
    zactor_destroy (&host);
    broker_destroy (&broker);
}

int
main (void)
{
    zsys_init ();
    srandom ((unsigned) getpid () ^ (unsigned) zclock_time ());
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_hello_announces_routes_abi_and_unique_instance),
        cmocka_unit_test (test_echo_request_gets_reply_with_same_rid_and_nil_user),
        cmocka_unit_test (test_echo_request_with_stamped_user_echoes_user),
        cmocka_unit_test (test_unknown_example_type_gets_unknown_type_error),
        cmocka_unit_test (test_request_without_type_gets_bad_request_from_host),
        cmocka_unit_test (test_greeting_option_adds_greeting_to_echo),
        cmocka_unit_test (test_who_triggers_new_hello),
        cmocka_unit_test (test_abi_major_2_plugin_refused_naming_both_versions),
        cmocka_unit_test (test_missing_plugin_file_gives_dlerror_text),
        cmocka_unit_test (test_idle_host_sends_heartbeats),
        cmocka_unit_test (test_silent_broker_gets_hello_again),
        cmocka_unit_test (test_host_registers_again_with_restarted_broker_over_tcp),
        cmocka_unit_test (test_refused_host_stops_serving),
        cmocka_unit_test (test_duplicate_instance_refusal_is_transient),
        cmocka_unit_test (test_reply_of_an_older_registration_is_dropped),
        cmocka_unit_test (test_host_moves_between_two_brokers),
        cmocka_unit_test (test_destroyed_host_says_bye_promptly),
        cmocka_unit_test (test_call_sends_request_and_reply_reaches_on_reply),
        cmocka_unit_test (test_call_error_reply_passes_code_to_on_reply),
        cmocka_unit_test (test_call_error_fields_and_outcome_reach_minor_3_only),
        cmocka_unit_test (test_deadline_reaches_the_plugin_and_its_calls),
        cmocka_unit_test (test_request_whose_time_is_gone_never_reaches_the_plugin),
        cmocka_unit_test (test_unanswered_call_gets_unavailable),
        cmocka_unit_test (test_deliver_sends_users_and_sessions),
        cmocka_unit_test (test_plugin_timer_ticks_until_cancelled),
        cmocka_unit_test (test_session_events_and_batch_end_reach_plugin),
        cmocka_unit_test (test_wake_from_plugin_threads_reaches_on_wake_without_a_timer),
        cmocka_unit_test (test_stats_gathers_a_minor_4_plugin_s_metrics),
        cmocka_unit_test (test_requests_held_at_destroy_are_freed_by_host),
        cmocka_unit_test (test_oversized_reply_is_answered_internal_outcome_unknown),
        cmocka_unit_test (test_unknown_option_key_is_refused_with_the_known_keys),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
