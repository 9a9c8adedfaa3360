/*  =========================================================================
    test_broker - the broker actor against real DEALER sockets

    Each test starts the real broker (inproc, and once tcp://127.0.0.1) and
    plays gateways and plugins with DEALER sockets speaking envelopes. Peers
    that must stay alive announce a long heartbeat so that the broker does not
    bury them while a test waits; the broker itself uses 100 ms, and a peer
    that is meant to die announces 100 ms and then falls silent.
    =========================================================================
*/

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "br_broker.h"
#include "parley_plugin.h"
#include "pl_envelope.h"
#include "pl_stats.h"

#define TEST_HEARTBEAT      100         //  the broker's, ms
#define TEST_LONG_HEARTBEAT 60000       //  peers that must not die while we wait
#define TEST_WAIT           5000        //  generous: these machines are noisy

//  --------------------------------------------------------------------------
//  Harness: the broker and the sockets of a test are stopped by the
//  teardown, so that a failing test does not leave them to the next one

static zactor_t *s_the_broker;
static zlist_t *s_dealers;
static const pl_curve_t *s_dealer_keys;     //  keys the next dealers connect with
static pl_curve_t *s_keys [3];              //  a test's keys, destroyed after its broker

static void
s_stop (void)
{
    zsock_t *dealer;
    while (s_dealers && (dealer = (zsock_t *) zlist_pop (s_dealers)))
        zsock_destroy (&dealer);
    zactor_destroy (&s_the_broker);
    s_dealer_keys = NULL;
    for (size_t index = 0; index < 3; index++)
        pl_curve_destroy (&s_keys [index]);
}

static int
s_teardown (void **state)
{
    s_stop ();
    return 0;
}

static zactor_t *
s_broker (uint32_t request_timeout_ms)
{
    br_broker_config_t config = {
        .heartbeat_ms = TEST_HEARTBEAT,
        .request_timeout_ms = request_timeout_ms
    };
    assert_null (s_the_broker);
    s_the_broker = br_broker_start (&config);
    assert_non_null (s_the_broker);
    return s_the_broker;
}

static zsock_t *
s_dealer (const char *endpoint)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    assert_non_null (dealer);
    zsock_set_linger (dealer, 0);
    zsock_set_rcvtimeo (dealer, TEST_WAIT);
    pl_curve_apply (s_dealer_keys, dealer, endpoint);
    assert_int_equal (zsock_connect (dealer, "%s", endpoint), 0);
    if (!s_dealers)
        s_dealers = zlist_new ();
    zlist_append (s_dealers, dealer);
    return dealer;
}

static void
s_send (zsock_t *dealer, pl_envelope_t *envelope)
{
    assert_int_equal (pl_envelope_send (&envelope, dealer), 0);
}

//  Receives the next envelope that is not a heartbeat; fails the test if
//  none arrives in TEST_WAIT
static pl_envelope_t *
s_recv (zsock_t *dealer)
{
    int64_t deadline = zclock_mono () + TEST_WAIT;
    while (zclock_mono () < deadline) {
        pl_envelope_t *envelope = pl_envelope_recv (dealer);
        if (!envelope)
            continue;
        if (pl_envelope_op (envelope) != PL_OP_HEARTBEAT)
            return envelope;
        pl_envelope_destroy (&envelope);
    }
    fail_msg ("no envelope within %d ms", TEST_WAIT);
    return NULL;
}

static pl_envelope_t *
s_recv_op (zsock_t *dealer, pl_op_t op)
{
    pl_envelope_t *envelope = s_recv (dealer);
    if (pl_envelope_op (envelope) != op)
        fail_msg ("expected %s, got %s", pl_op_name (op),
                  pl_op_name (pl_envelope_op (envelope)));
    return envelope;
}

//  True if nothing but heartbeats arrives within msecs
static bool
s_quiet (zsock_t *dealer, int msecs)
{
    int64_t deadline = zclock_mono () + msecs;
    zpoller_t *poller = zpoller_new (dealer, NULL);
    bool quiet = true;
    while (quiet && zclock_mono () < deadline) {
        if (!zpoller_wait (poller, (int) (deadline - zclock_mono ())))
            continue;
        pl_envelope_t *envelope = pl_envelope_recv (dealer);
        if (envelope && pl_envelope_op (envelope) != PL_OP_HEARTBEAT)
            quiet = false;
        pl_envelope_destroy (&envelope);
    }
    zpoller_destroy (&poller);
    return quiet;
}

//  A plugin peer with one route; returns once welcomed
static zsock_t *
s_plugin_at (const char *endpoint, const char *name, const char *instance,
             const char *prefix, uint32_t route_flags, uint32_t shard, const char *field,
             uint32_t plugin_flags, uint32_t heartbeat_ms)
{
    zsock_t *dealer = s_dealer (endpoint);
    pl_envelope_t *hello = pl_envelope_new (PL_OP_HELLO);
    pl_envelope_set_kind (hello, "plugin");
    pl_envelope_set_name (hello, name);
    pl_envelope_set_instance (hello, instance);
    pl_envelope_set_abi (hello, PARLEY_ABI_MAJOR, PARLEY_ABI_MINOR);
    pl_envelope_set_flags (hello, plugin_flags);
    pl_envelope_set_heartbeat (hello, heartbeat_ms);
    pl_envelope_add_route (hello, prefix, route_flags, shard, field);
    s_send (dealer, hello);
    pl_envelope_t *welcome = s_recv_op (dealer, PL_OP_WELCOME);
    assert_int_equal (pl_envelope_heartbeat (welcome), TEST_HEARTBEAT);
    pl_envelope_destroy (&welcome);
    return dealer;
}

static zsock_t *
s_plugin (const char *name, const char *prefix, uint32_t route_flags)
{
    char instance [64];
    snprintf (instance, sizeof instance, "%s@test:1", name);
    return s_plugin_at (BR_BROKER_INPROC, name, instance, prefix, route_flags,
                        PARLEY_SHARD_NONE, NULL, 0, TEST_LONG_HEARTBEAT);
}

static zsock_t *
s_gateway_at (const char *endpoint, const char *name)
{
    zsock_t *dealer = s_dealer (endpoint);
    pl_envelope_t *hello = pl_envelope_new (PL_OP_HELLO);
    pl_envelope_set_kind (hello, "gateway");
    pl_envelope_set_name (hello, name);
    pl_envelope_set_heartbeat (hello, TEST_LONG_HEARTBEAT);
    s_send (dealer, hello);
    pl_envelope_t *welcome = s_recv_op (dealer, PL_OP_WELCOME);
    pl_envelope_destroy (&welcome);
    return dealer;
}

static zsock_t *
s_gateway (const char *name)
{
    return s_gateway_at (BR_BROKER_INPROC, name);
}

static void
s_session_open (zsock_t *gateway, uint64_t sid, const char *addr)
{
    pl_envelope_t *open = pl_envelope_new (PL_OP_SESSION_OPEN);
    pl_envelope_set_sid (open, sid);
    pl_envelope_set_addr (open, addr);
    s_send (gateway, open);
}

//  A body map of one string field, or an empty map when field is NULL
static void
s_set_body (pl_envelope_t *envelope, const char *field, const char *value)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    //  A leading field of another type exercises the broker's skipping
    msgpack_pack_map (&packer, field ? 3 : 0);
    if (field) {
        msgpack_pack_str_with_body (&packer, "n", 1);
        msgpack_pack_array (&packer, 2);
        msgpack_pack_int (&packer, -70000);
        msgpack_pack_double (&packer, 1.5);
        msgpack_pack_str_with_body (&packer, "flag", 4);
        msgpack_pack_true (&packer);
        msgpack_pack_str_with_body (&packer, field, strlen (field));
        msgpack_pack_str_with_body (&packer, value, strlen (value));
    }
    pl_envelope_set_body_copy (envelope, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
}

//  A cid: the msgpack int 7
static const uint8_t s_cid [] = { 0x07 };

static void
s_request (zsock_t *gateway, uint64_t rid, uint64_t sid, const char *type,
           const char *field, const char *value)
{
    pl_envelope_t *request = pl_envelope_new (PL_OP_REQUEST);
    pl_envelope_set_rid (request, rid);
    if (sid)
        pl_envelope_set_sid (request, sid);
    pl_envelope_set_type (request, type);
    pl_envelope_set_cid (request, s_cid, sizeof s_cid);
    pl_envelope_set_user (request, "mallory");      //  forged: must be overwritten
    s_set_body (request, field, value);
    s_send (gateway, request);
}

//  Expects a reply with this code (NULL = ok) echoing rid, sid and cid;
//  returns the message for further checks (caller frees)
static char *
s_expect_reply (zsock_t *gateway, uint64_t rid, uint64_t sid, const char *code)
{
    pl_envelope_t *reply = s_recv_op (gateway, PL_OP_REPLY);
    assert_int_equal (pl_envelope_rid (reply), rid);
    assert_int_equal (pl_envelope_sid (reply), sid);
    size_t cid_size = 0;
    const uint8_t *cid = pl_envelope_cid (reply, &cid_size);
    assert_int_equal (cid_size, sizeof s_cid);
    assert_memory_equal (cid, s_cid, sizeof s_cid);
    if (code) {
        assert_non_null (pl_envelope_code (reply));
        assert_string_equal (pl_envelope_code (reply), code);
        assert_non_null (pl_envelope_message (reply));
    }
    else
        assert_null (pl_envelope_code (reply));
    char *message = pl_envelope_message (reply) ? strdup (pl_envelope_message (reply)) : NULL;
    pl_envelope_destroy (&reply);
    return message;
}

//  Expects the broker's own unavailable: retry_after_ms always, and
//  "outcome": "unknown" only when the plugin had the request (unknown)
static void
s_expect_unavailable (zsock_t *gateway, uint64_t rid, uint64_t sid, bool unknown)
{
    pl_envelope_t *reply = s_recv_op (gateway, PL_OP_REPLY);
    assert_int_equal (pl_envelope_rid (reply), rid);
    assert_int_equal (pl_envelope_sid (reply), sid);
    assert_string_equal (pl_envelope_code (reply), "unavailable");
    if (unknown)
        assert_string_equal (pl_envelope_outcome (reply), "unknown");
    else
        assert_null (pl_envelope_outcome (reply));
    zframe_t *body = pl_envelope_body (reply);
    assert_non_null (body);
    msgpack_unpacked result;
    msgpack_unpacked_init (&result);
    assert_int_equal (msgpack_unpack_next (&result, (const char *) zframe_data (body),
                                           zframe_size (body), NULL), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal (result.data.type, MSGPACK_OBJECT_MAP);
    assert_int_equal (result.data.via.map.size, 1);
    assert_int_equal (result.data.via.map.ptr [0].val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_true (result.data.via.map.ptr [0].val.via.u64 > 0);
    msgpack_unpacked_destroy (&result);
    pl_envelope_destroy (&reply);
}

static void
s_expect_error (zsock_t *gateway, uint64_t rid, uint64_t sid, const char *code)
{
    char *message = s_expect_reply (gateway, rid, sid, code);
    free (message);
}

//  The plugin answers the request it receives, binding the session to user
//  when user is given
static void
s_plugin_answer (zsock_t *plugin, const char *bind_user, bool unbind)
{
    pl_envelope_t *request = s_recv_op (plugin, PL_OP_REQUEST);
    pl_envelope_t *reply = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (reply, pl_envelope_rid (request));
    if (bind_user)
        pl_envelope_set_bind (reply, bind_user);
    if (unbind)
        pl_envelope_set_unbind (reply, true);
    s_send (plugin, reply);
    pl_envelope_destroy (&request);
}

//  Logs sid in as user through the auth plugin
static void
s_login (zsock_t *gateway, zsock_t *auth, uint64_t sid, const char *user)
{
    static uint64_t rid = 1000;
    rid++;
    s_request (gateway, rid, sid, "auth.login", "user", user);
    s_plugin_answer (auth, user, false);
    s_expect_error (gateway, rid, sid, NULL);
}

//  --------------------------------------------------------------------------
//  Tests

static void
test_hello_gets_welcome_with_heartbeat (void **state)
{
    s_broker (0);
    s_plugin ("example", "example.", 0);
    s_gateway ("gw-1");
}

static void
test_plugin_with_other_abi_major_is_refused (void **state)
{
    s_broker (0);
    zsock_t *dealer = s_dealer (BR_BROKER_INPROC);
    pl_envelope_t *hello = pl_envelope_new (PL_OP_HELLO);
    pl_envelope_set_kind (hello, "plugin");
    pl_envelope_set_name (hello, "future");
    pl_envelope_set_instance (hello, "future@test:1");
    pl_envelope_set_abi (hello, 2, 0);
    pl_envelope_add_route (hello, "future.", 0, PARLEY_SHARD_NONE, NULL);
    s_send (dealer, hello);
    pl_envelope_t *refuse = s_recv_op (dealer, PL_OP_REFUSE);
    assert_non_null (pl_envelope_code (refuse));
    char expected [128];
    snprintf (expected, sizeof expected,
              "plugin 'future' speaks plugin ABI 2.0; this broker supports ABI 1 (1.%d)",
              PARLEY_ABI_MINOR);
    assert_string_equal (pl_envelope_message (refuse), expected);
    pl_envelope_destroy (&refuse);

    //  It was not registered: anything else gets WHO
    s_send (dealer, pl_envelope_new (PL_OP_HEARTBEAT));
    pl_envelope_destroy (&refuse);
    pl_envelope_t *who = s_recv_op (dealer, PL_OP_WHO);
    pl_envelope_destroy (&who);
}

static void
test_duplicate_live_instance_is_refused (void **state)
{
    s_broker (0);
    s_plugin ("example", "example.", 0);
    zsock_t *second = s_dealer (BR_BROKER_INPROC);
    pl_envelope_t *hello = pl_envelope_new (PL_OP_HELLO);
    pl_envelope_set_kind (hello, "plugin");
    pl_envelope_set_name (hello, "example");
    pl_envelope_set_instance (hello, "example@test:1");
    pl_envelope_set_abi (hello, 1, 0);
    s_send (second, hello);
    pl_envelope_t *refuse = s_recv_op (second, PL_OP_REFUSE);
    assert_non_null (strstr (pl_envelope_message (refuse), "example@test:1"));
    pl_envelope_destroy (&refuse);

    //  A second gateway with a live gateway's nonce is refused too
    s_gateway ("nonce-1");
    zsock_t *impostor = s_dealer (BR_BROKER_INPROC);
    hello = pl_envelope_new (PL_OP_HELLO);
    pl_envelope_set_kind (hello, "gateway");
    pl_envelope_set_name (hello, "nonce-1");
    s_send (impostor, hello);
    refuse = s_recv_op (impostor, PL_OP_REFUSE);
    pl_envelope_destroy (&refuse);
}

static void
test_unknown_peer_gets_who (void **state)
{
    s_broker (0);
    zsock_t *stranger = s_dealer (BR_BROKER_INPROC);
    s_request (stranger, 1, 0, "example.echo", NULL, NULL);
    pl_envelope_t *who = s_recv_op (stranger, PL_OP_WHO);
    pl_envelope_destroy (&who);
}

static void
test_request_reaches_plugin_with_stamped_user (void **state)
{
    s_broker (0);
    zsock_t *auth = s_plugin ("auth", "auth.", PARLEY_ROUTE_PUBLIC);
    zsock_t *example = s_plugin ("example", "example.", 0);
    zsock_t *gateway = s_gateway ("gw-1");
    s_session_open (gateway, 42, "192.0.2.7");

    //  Unbound: the forged user is cleared, the address stamped
    s_request (gateway, 5, 42, "auth.login", "user", "alice");
    pl_envelope_t *request = s_recv_op (auth, PL_OP_REQUEST);
    assert_null (pl_envelope_user (request));
    assert_string_equal (pl_envelope_addr (request), "192.0.2.7");
    assert_string_equal (pl_envelope_type (request), "auth.login");
    assert_int_equal (pl_envelope_sid (request), 42);
    assert_non_null (pl_envelope_body (request));
    pl_envelope_t *reply = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (reply, pl_envelope_rid (request));
    pl_envelope_set_bind (reply, "alice");
    s_send (auth, reply);
    pl_envelope_destroy (&request);
    s_expect_error (gateway, 5, 42, NULL);

    //  Bound by that reply: the next request carries alice, not mallory
    s_request (gateway, 6, 42, "example.echo", "text", "hi");
    request = s_recv_op (example, PL_OP_REQUEST);
    assert_string_equal (pl_envelope_user (request), "alice");
    assert_string_equal (pl_envelope_addr (request), "192.0.2.7");
    uint64_t broker_rid = pl_envelope_rid (request);
    reply = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (reply, broker_rid);
    s_set_body (reply, "text", "hi");
    s_send (example, reply);
    pl_envelope_destroy (&request);
    reply = s_recv_op (gateway, PL_OP_REPLY);
    assert_int_equal (pl_envelope_rid (reply), 6);
    assert_non_null (pl_envelope_body (reply));
    pl_envelope_destroy (&reply);

    //  A reply that comes again (late, duplicated) goes nowhere
    reply = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (reply, broker_rid);
    s_send (example, reply);
    assert_true (s_quiet (gateway, 200));
}

//  Asks the broker for its figures as a gateway does, until the answer
//  does (wants) or does not (!wants) hold text; fails past TEST_WAIT
static void
s_stats_until (zsock_t *gateway, const char *text, bool wants)
{
    int64_t deadline = zclock_mono () + TEST_WAIT;
    while (true) {
        s_send (gateway, pl_envelope_new (PL_OP_STATS));
        pl_envelope_t *answer = s_recv_op (gateway, PL_OP_STATS);
        zframe_t *body = pl_envelope_body (answer);
        assert_non_null (body);
        char *page = zframe_strdup (body);
        bool holds = strstr (page, text) != NULL;
        free (page);
        pl_envelope_destroy (&answer);
        if (holds == wants)
            return;
        if (zclock_mono () > deadline)
            fail_msg ("the broker's figures %s '%s'", wants ? "never had" : "kept", text);
        zclock_sleep (20);
    }
}

//  A gateway's stats asks the plugins too; a plugin's answer reaches the
//  next answers, labelled with its instance, until the plugin leaves
static void
test_plugins_figures_reach_the_gateway_and_leave_with_the_plugin (void **state)
{
    s_broker (0);
    zsock_t *store = s_plugin ("store", "store.", PARLEY_ROUTE_INTERNAL);
    zsock_t *gateway = s_gateway ("gw-1");
    const char *sample = "parley_test_commits_total{instance=\"store@test:1\"} 7\n";
    s_stats_until (gateway, "parley_broker_sessions 0\n", true);
    pl_envelope_t *ask = s_recv_op (store, PL_OP_STATS);
    pl_envelope_destroy (&ask);

    pl_stats_t *stats = pl_stats_new ();
    char error [256];
    parley_metric_t metric = { .size = sizeof (parley_metric_t), .type = PARLEY_METRIC_COUNTER,
                               .name = "parley_test_commits_total", .help = "Commits.",
                               .value = 7 };
    assert_int_equal (pl_stats_add (stats, &metric, error, sizeof error), 0);
    size_t size;
    uint8_t *data = pl_stats_body (stats, &size);
    pl_envelope_t *answer = pl_envelope_new (PL_OP_STATS);
    pl_envelope_set_body_copy (answer, data, size);
    free (data);
    pl_stats_destroy (&stats);
    s_send (store, answer);
    s_stats_until (gateway, sample, true);
    s_stats_until (gateway, "# TYPE parley_test_commits_total counter\n", true);

    s_send (store, pl_envelope_new (PL_OP_BYE));
    s_stats_until (gateway, "parley_test_commits_total", false);
}

static void
test_unknown_type_for_unserved_prefix_and_internal_route (void **state)
{
    s_broker (0);
    zsock_t *store = s_plugin ("store", "store.", PARLEY_ROUTE_INTERNAL | PARLEY_ROUTE_PUBLIC);
    zsock_t *gateway = s_gateway ("gw-1");
    s_session_open (gateway, 42, "192.0.2.7");

    s_request (gateway, 1, 42, "nothing.here", NULL, NULL);
    char *message = s_expect_reply (gateway, 1, 42, "unknown_type");
    assert_non_null (strstr (message, "nothing.here"));
    free (message);

    //  store.* is for plugins only
    s_request (gateway, 2, 42, "store.user.get", NULL, NULL);
    s_expect_error (gateway, 2, 42, "unknown_type");

    //  A type too long to route is unknown, even under a protocol prefix
    char long_type [301];
    memset (long_type, 'x', sizeof long_type - 1);
    memcpy (long_type, "room.", 5);
    long_type [sizeof long_type - 1] = 0;
    s_request (gateway, 3, 42, long_type, NULL, NULL);
    s_expect_error (gateway, 3, 42, "unknown_type");

    //  ... and a plugin may call it
    zsock_t *rooms = s_plugin ("rooms", "room.", 0);
    pl_envelope_t *call = pl_envelope_new (PL_OP_REQUEST);
    pl_envelope_set_rid (call, 77);
    pl_envelope_set_type (call, "store.user.get");
    s_set_body (call, NULL, NULL);
    s_send (rooms, call);
    pl_envelope_t *request = s_recv_op (store, PL_OP_REQUEST);
    assert_null (pl_envelope_user (request));
    assert_int_equal (pl_envelope_sid (request), 0);
    pl_envelope_t *reply = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (reply, pl_envelope_rid (request));
    s_send (store, reply);
    pl_envelope_destroy (&request);
    reply = s_recv_op (rooms, PL_OP_REPLY);
    assert_int_equal (pl_envelope_rid (reply), 77);
    assert_null (pl_envelope_code (reply));
    pl_envelope_destroy (&reply);
}

static void
test_unauthenticated_on_unbound_session_unless_public (void **state)
{
    s_broker (0);
    s_plugin ("example", "example.", 0);
    zsock_t *open = s_plugin ("public", "public.", PARLEY_ROUTE_PUBLIC);
    zsock_t *gateway = s_gateway ("gw-1");
    s_session_open (gateway, 42, "192.0.2.7");

    s_request (gateway, 1, 42, "example.echo", NULL, NULL);
    s_expect_error (gateway, 1, 42, "unauthenticated");
    //  A session the broker never heard of is no better
    s_request (gateway, 2, 99, "example.echo", NULL, NULL);
    s_expect_error (gateway, 2, 99, "unauthenticated");

    s_request (gateway, 3, 42, "public.ping", NULL, NULL);
    s_plugin_answer (open, NULL, false);
    s_expect_error (gateway, 3, 42, NULL);
}

static void
test_unavailable_when_no_instance_serves (void **state)
{
    s_broker (0);
    zsock_t *gateway = s_gateway ("gw-1");
    s_session_open (gateway, 42, "192.0.2.7");
    //  auth.* is a protocol prefix: unavailable, not unknown
    s_request (gateway, 1, 42, "auth.login", NULL, NULL);
    char *message = s_expect_reply (gateway, 1, 42, "unavailable");
    assert_string_equal (message, "The auth service is unavailable; try again later.");
    free (message);

    //  A route whose last instance left stays known: unavailable
    zsock_t *open = s_plugin ("public", "public.", PARLEY_ROUTE_PUBLIC);
    s_send (open, pl_envelope_new (PL_OP_BYE));
    //  Once it answers WHO, the broker has handled the BYE
    s_send (open, pl_envelope_new (PL_OP_HEARTBEAT));
    pl_envelope_t *who = s_recv_op (open, PL_OP_WHO);
    pl_envelope_destroy (&who);
    s_request (gateway, 2, 42, "public.ping", NULL, NULL);
    message = s_expect_reply (gateway, 2, 42, "unavailable");
    assert_string_equal (message, "The public service is unavailable; try again later.");
    free (message);
}

static void
test_request_to_dead_plugin_gets_unavailable (void **state)
{
    //  A long request timeout: the answer must come from the death
    s_broker (60000);
    zsock_t *example = s_plugin_at (BR_BROKER_INPROC, "example", "example@test:1",
                                    "example.", PARLEY_ROUTE_PUBLIC, PARLEY_SHARD_NONE,
                                    NULL, 0, TEST_HEARTBEAT);
    zsock_t *gateway = s_gateway ("gw-1");
    s_session_open (gateway, 42, "192.0.2.7");
    s_request (gateway, 1, 42, "example.echo", NULL, NULL);
    pl_envelope_t *request = s_recv_op (example, PL_OP_REQUEST);
    pl_envelope_destroy (&request);
    //  The plugin falls silent (it never heartbeats): dead after 3 x 100 ms.
    //  It had the request: the outcome is unknown
    int64_t start = zclock_mono ();
    s_expect_unavailable (gateway, 1, 42, true);
    assert_true (zclock_mono () - start < TEST_WAIT);

    //  Its route is gone with it; the broker forgot it (WHO). Nobody had
    //  this one: nothing happened
    s_request (gateway, 2, 42, "example.echo", NULL, NULL);
    s_expect_unavailable (gateway, 2, 42, false);
    s_send (example, pl_envelope_new (PL_OP_HEARTBEAT));
    pl_envelope_t *who = s_recv_op (example, PL_OP_WHO);
    pl_envelope_destroy (&who);
}

static void
test_request_to_silent_live_plugin_times_out_unavailable (void **state)
{
    s_broker (300);
    zsock_t *example = s_plugin ("example", "example.", PARLEY_ROUTE_PUBLIC);
    zsock_t *gateway = s_gateway ("gw-1");
    s_session_open (gateway, 42, "192.0.2.7");
    s_request (gateway, 1, 42, "example.echo", NULL, NULL);
    pl_envelope_t *request = s_recv_op (example, PL_OP_REQUEST);
    uint64_t broker_rid = pl_envelope_rid (request);
    pl_envelope_destroy (&request);
    s_expect_unavailable (gateway, 1, 42, true);

    //  The late answer is dropped
    pl_envelope_t *reply = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (reply, broker_rid);
    s_send (example, reply);
    assert_true (s_quiet (gateway, 300));
}

//  A request with its own deadline: it goes on with what is left less the
//  broker's margin, and the backstop answers at its deadline, not at the
//  broker's timeout; one with no time left goes nowhere
static void
test_request_deadline_travels_and_sets_the_backstop (void **state)
{
    s_broker (60000);
    zsock_t *example = s_plugin ("example", "example.", PARLEY_ROUTE_PUBLIC);
    zsock_t *gateway = s_gateway ("gw-1");
    s_session_open (gateway, 42, "192.0.2.7");

    pl_envelope_t *request = pl_envelope_new (PL_OP_REQUEST);
    pl_envelope_set_rid (request, 1);
    pl_envelope_set_sid (request, 42);
    pl_envelope_set_type (request, "example.echo");
    pl_envelope_set_cid (request, s_cid, sizeof s_cid);
    pl_envelope_set_deadline (request, 400);
    int64_t start = zclock_mono ();
    s_send (gateway, request);
    pl_envelope_t *forwarded = s_recv_op (example, PL_OP_REQUEST);
    //  400 less 1/20 of it, stamped with the broker's clock
    assert_int_equal (pl_envelope_deadline (forwarded), 380);
    assert_true (pl_envelope_sent_at (forwarded) > 0);
    pl_envelope_destroy (&forwarded);
    s_expect_unavailable (gateway, 1, 42, true);
    int64_t waited = zclock_mono () - start;
    assert_true (waited >= 390 && waited < TEST_WAIT);

    //  Without a deadline of its own it has the broker's timeout
    s_request (gateway, 2, 42, "example.echo", NULL, NULL);
    forwarded = s_recv_op (example, PL_OP_REQUEST);
    assert_int_equal (pl_envelope_deadline (forwarded), 60000 - 60000 / 20);
    pl_envelope_destroy (&forwarded);

    //  No time left: answered at once, and nothing happened
    request = pl_envelope_new (PL_OP_REQUEST);
    pl_envelope_set_rid (request, 3);
    pl_envelope_set_sid (request, 42);
    pl_envelope_set_type (request, "example.echo");
    pl_envelope_set_cid (request, s_cid, sizeof s_cid);
    pl_envelope_set_deadline (request, 0);
    s_send (gateway, request);
    s_expect_unavailable (gateway, 3, 42, false);
    assert_true (s_quiet (example, 200));
}

static void
test_shard_field_splits_keys_and_keeps_each_key_on_one_instance (void **state)
{
    s_broker (0);
    zsock_t *rooms [2];
    rooms [0] = s_plugin_at (BR_BROKER_INPROC, "rooms", "rooms@test:1", "room.",
                             PARLEY_ROUTE_PUBLIC, PARLEY_SHARD_FIELD, "room", 0,
                             TEST_LONG_HEARTBEAT);
    rooms [1] = s_plugin_at (BR_BROKER_INPROC, "rooms", "rooms@test:2", "room.",
                             PARLEY_ROUTE_PUBLIC, PARLEY_SHARD_FIELD, "room", 0,
                             TEST_LONG_HEARTBEAT);
    zsock_t *gateway = s_gateway ("gw-1");
    s_session_open (gateway, 42, "192.0.2.7");
    zpoller_t *poller = zpoller_new (rooms [0], rooms [1], NULL);

    int owner [20];
    int served [2] = { 0, 0 };
    uint64_t rid = 1;
    for (int round = 0; round < 3; round++) {
        for (int key = 0; key < 20; key++) {
            char room [32];
            //  Keys are case-insensitive: round 1 asks in upper case
            snprintf (room, sizeof room, round == 1 ? "ROOM-%d" : "room-%d", key);
            s_request (gateway, rid, 42, "room.join", "room", room);
            void *which = zpoller_wait (poller, TEST_WAIT);
            assert_non_null (which);
            int instance = which == rooms [0] ? 0 : 1;
            if (round == 0) {
                owner [key] = instance;
                served [instance]++;
            }
            else
                assert_int_equal (owner [key], instance);
            s_plugin_answer ((zsock_t *) which, NULL, false);
            s_expect_error (gateway, rid, 42, NULL);
            rid++;
        }
    }
    //  Both instances own part of the key space (all 20 on one: p = 2^-19)
    assert_true (served [0] > 0 && served [1] > 0);

    //  No shard field: any instance; the plugin will say bad_request
    s_request (gateway, rid, 42, "room.join", NULL, NULL);
    void *which = zpoller_wait (poller, TEST_WAIT);
    assert_non_null (which);
    s_plugin_answer ((zsock_t *) which, NULL, false);
    s_expect_error (gateway, rid, 42, NULL);

    zpoller_destroy (&poller);
}

static void
test_user_pair_shard_is_symmetric (void **state)
{
    s_broker (0);
    zsock_t *auth = s_plugin ("auth", "auth.", PARLEY_ROUTE_PUBLIC);
    zsock_t *pm [2];
    pm [0] = s_plugin_at (BR_BROKER_INPROC, "pm", "pm@test:1", "pm.", 0,
                          PARLEY_SHARD_USER_PAIR, "to", 0, TEST_LONG_HEARTBEAT);
    pm [1] = s_plugin_at (BR_BROKER_INPROC, "pm", "pm@test:2", "pm.", 0,
                          PARLEY_SHARD_USER_PAIR, "to", 0, TEST_LONG_HEARTBEAT);
    zsock_t *gateway = s_gateway ("gw-1");
    zpoller_t *poller = zpoller_new (pm [0], pm [1], NULL);
    uint64_t rid = 1;
    for (int pair = 0; pair < 10; pair++) {
        char left [32], right [32];
        snprintf (left, sizeof left, "user-a%d", pair);
        snprintf (right, sizeof right, "user-b%d", pair);
        uint64_t left_sid = 100 + 2 * pair, right_sid = 101 + 2 * pair;
        s_session_open (gateway, left_sid, "192.0.2.1");
        s_session_open (gateway, right_sid, "192.0.2.2");
        s_login (gateway, auth, left_sid, left);
        s_login (gateway, auth, right_sid, right);
        //  left -> right and right -> left land on the same instance
        s_request (gateway, rid, left_sid, "pm.send", "to", right);
        void *first = zpoller_wait (poller, TEST_WAIT);
        assert_non_null (first);
        s_plugin_answer ((zsock_t *) first, NULL, false);
        s_expect_error (gateway, rid++, left_sid, NULL);
        s_request (gateway, rid, right_sid, "pm.send", "to", left);
        void *second = zpoller_wait (poller, TEST_WAIT);
        assert_ptr_equal (first, second);
        s_plugin_answer ((zsock_t *) second, NULL, false);
        s_expect_error (gateway, rid++, right_sid, NULL);
    }
    zpoller_destroy (&poller);
}

//  Receives one deliver and checks its sids (any order) and body
static void
s_expect_deliver (zsock_t *gateway, const uint64_t *expected, size_t count,
                  const uint8_t *body, size_t body_size)
{
    pl_envelope_t *deliver = s_recv_op (gateway, PL_OP_DELIVER);
    size_t sid_count = 0;
    const uint64_t *sids = pl_envelope_sids (deliver, &sid_count);
    assert_int_equal (sid_count, count);
    for (size_t index = 0; index < count; index++) {
        bool found = false;
        for (size_t other = 0; other < sid_count; other++)
            if (sids [other] == expected [index])
                found = true;
        assert_true (found);
    }
    zframe_t *frame = pl_envelope_body (deliver);
    assert_non_null (frame);
    assert_int_equal (zframe_size (frame), body_size);
    assert_memory_equal (zframe_data (frame), body, body_size);
    pl_envelope_destroy (&deliver);
}

static void
test_deliver_to_users_sends_one_frame_per_gateway (void **state)
{
    s_broker (0);
    zsock_t *auth = s_plugin ("auth", "auth.", PARLEY_ROUTE_PUBLIC);
    zsock_t *rooms = s_plugin ("rooms", "room.", 0);
    zsock_t *gateway1 = s_gateway ("gw-1");
    zsock_t *gateway2 = s_gateway ("gw-2");
    s_session_open (gateway1, 11, "192.0.2.1");
    s_session_open (gateway1, 12, "192.0.2.1");
    s_session_open (gateway1, 13, "192.0.2.1");
    s_session_open (gateway2, 21, "192.0.2.2");
    s_session_open (gateway2, 22, "192.0.2.2");
    s_login (gateway1, auth, 11, "alice");
    s_login (gateway1, auth, 12, "alice");
    s_login (gateway1, auth, 13, "bob");
    s_login (gateway2, auth, 21, "alice");
    s_login (gateway2, auth, 22, "carol");

    pl_envelope_t *deliver = pl_envelope_new (PL_OP_DELIVER);
    const char *users [] = { "alice", "bob", "nobody", "alice" };
    pl_envelope_set_users (deliver, users, 4);
    s_set_body (deliver, "type", "message");
    zframe_t *body = zframe_dup (pl_envelope_body (deliver));
    s_send (rooms, deliver);

    uint64_t expected1 [] = { 11, 12, 13 };
    uint64_t expected2 [] = { 21 };
    s_expect_deliver (gateway1, expected1, 3, zframe_data (body), zframe_size (body));
    s_expect_deliver (gateway2, expected2, 1, zframe_data (body), zframe_size (body));
    assert_true (s_quiet (gateway1, 100));
    assert_true (s_quiet (gateway2, 100));

    //  Explicit sessions, mixed with a user, each listed once
    deliver = pl_envelope_new (PL_OP_DELIVER);
    uint64_t sids [] = { 22, 13, 99 };
    pl_envelope_set_sids (deliver, sids, 3);
    const char *bob [] = { "bob" };
    pl_envelope_set_users (deliver, bob, 1);
    s_set_body (deliver, "type", "message");
    s_send (rooms, deliver);
    uint64_t expected3 [] = { 13 };
    uint64_t expected4 [] = { 22 };
    s_expect_deliver (gateway1, expected3, 1, zframe_data (body), zframe_size (body));
    s_expect_deliver (gateway2, expected4, 1, zframe_data (body), zframe_size (body));

    //  A closed session gets nothing
    pl_envelope_t *close = pl_envelope_new (PL_OP_SESSION_CLOSE);
    pl_envelope_set_sid (close, 21);
    s_send (gateway2, close);
    //  A round trip on the same socket: the close has been handled after it
    s_request (gateway2, 1, 22, "nothing.here", NULL, NULL);
    s_expect_error (gateway2, 1, 22, "unknown_type");
    deliver = pl_envelope_new (PL_OP_DELIVER);
    const char *alice [] = { "alice" };
    pl_envelope_set_users (deliver, alice, 1);
    s_set_body (deliver, "type", "message");
    s_send (rooms, deliver);
    uint64_t expected5 [] = { 11, 12 };
    s_expect_deliver (gateway1, expected5, 2, zframe_data (body), zframe_size (body));
    assert_true (s_quiet (gateway2, 100));

    zframe_destroy (&body);
}

static void
test_sessions_plugin_welcomed_late_gets_reset_then_bound_sessions (void **state)
{
    s_broker (0);
    zsock_t *auth = s_plugin ("auth", "auth.", PARLEY_ROUTE_PUBLIC);
    zsock_t *gateway = s_gateway ("gw-1");
    s_session_open (gateway, 51, "192.0.2.7");
    s_session_open (gateway, 52, "192.0.2.7");
    s_login (gateway, auth, 51, "alice");

    zsock_t *presence = s_plugin_at (BR_BROKER_INPROC, "presence", "presence@test:2",
                                     "presence.", 0, PARLEY_SHARD_NONE, NULL,
                                     PARLEY_PLUGIN_SESSIONS, TEST_LONG_HEARTBEAT);
    pl_envelope_t *event = s_recv_op (presence, PL_OP_SESSION_EVENT);
    assert_int_equal (pl_envelope_event (event), PARLEY_SESSION_RESET);
    pl_envelope_destroy (&event);
    event = s_recv_op (presence, PL_OP_SESSION_EVENT);
    assert_int_equal (pl_envelope_event (event), PARLEY_SESSION_BOUND);
    assert_int_equal (pl_envelope_sid (event), 51);
    assert_string_equal (pl_envelope_user (event), "alice");
    pl_envelope_destroy (&event);
    assert_true (s_quiet (presence, 100));
}

static void
test_plugin_unbinds_sessions_and_gateway_is_told (void **state)
{
    s_broker (0);
    zsock_t *auth = s_plugin ("auth", "auth.", PARLEY_ROUTE_PUBLIC);
    s_plugin ("rooms", "room.", 0);
    zsock_t *gateway = s_gateway ("gw-1");
    s_session_open (gateway, 61, "192.0.2.7");
    s_session_open (gateway, 62, "192.0.2.7");
    s_login (gateway, auth, 61, "alice");
    s_login (gateway, auth, 62, "alice");

    pl_envelope_t *unbind = pl_envelope_new (PL_OP_SESSION_CLOSE);
    uint64_t sids [] = { 62, 999 };
    pl_envelope_set_sids (unbind, sids, 2);
    s_send (auth, unbind);
    pl_envelope_t *close = s_recv_op (gateway, PL_OP_SESSION_CLOSE);
    assert_int_equal (pl_envelope_sid (close), 62);
    pl_envelope_destroy (&close);
    s_request (gateway, 7, 62, "room.list", NULL, NULL);
    s_expect_error (gateway, 7, 62, "unauthenticated");
}

static void
test_session_reannounced_with_user_is_bound_again (void **state)
{
    s_broker (0);
    zsock_t *rooms = s_plugin ("rooms", "room.", 0);
    zsock_t *gateway = s_gateway ("gw-1");
    pl_envelope_t *open = pl_envelope_new (PL_OP_SESSION_OPEN);
    pl_envelope_set_sid (open, 71);
    pl_envelope_set_addr (open, "192.0.2.7");
    pl_envelope_set_user (open, "alice");
    s_send (gateway, open);
    s_session_open (gateway, 72, "192.0.2.7");
    s_request (gateway, 8, 72, "room.list", NULL, NULL);
    s_expect_error (gateway, 8, 72, "unauthenticated");
    //  The bound session's request reaches the plugin stamped with its user
    s_request (gateway, 9, 71, "room.list", NULL, NULL);
    pl_envelope_t *forwarded = s_recv_op (rooms, PL_OP_REQUEST);
    assert_string_equal (pl_envelope_user (forwarded), "alice");
    pl_envelope_destroy (&forwarded);
}

static void
test_session_events_reach_sessions_plugin (void **state)
{
    s_broker (0);
    zsock_t *auth = s_plugin ("auth", "auth.", PARLEY_ROUTE_PUBLIC);
    zsock_t *presence = s_plugin_at (BR_BROKER_INPROC, "presence", "presence@test:1",
                                     "presence.", 0, PARLEY_SHARD_NONE, NULL,
                                     PARLEY_PLUGIN_SESSIONS, TEST_LONG_HEARTBEAT);
    //  Welcomed with an empty registry: a RESET and nothing else
    pl_envelope_t *event = s_recv_op (presence, PL_OP_SESSION_EVENT);
    assert_int_equal (pl_envelope_event (event), PARLEY_SESSION_RESET);
    pl_envelope_destroy (&event);
    zsock_t *gateway = s_gateway ("gw-1");
    s_session_open (gateway, 42, "192.0.2.7");
    s_session_open (gateway, 43, "192.0.2.7");
    s_login (gateway, auth, 42, "alice");

    event = s_recv_op (presence, PL_OP_SESSION_EVENT);
    assert_int_equal (pl_envelope_event (event), PARLEY_SESSION_BOUND);
    assert_int_equal (pl_envelope_sid (event), 42);
    assert_string_equal (pl_envelope_user (event), "alice");
    pl_envelope_destroy (&event);

    //  Closing an unbound session says nothing; a bound one says CLOSED
    pl_envelope_t *close = pl_envelope_new (PL_OP_SESSION_CLOSE);
    pl_envelope_set_sid (close, 43);
    s_send (gateway, close);
    close = pl_envelope_new (PL_OP_SESSION_CLOSE);
    pl_envelope_set_sid (close, 42);
    s_send (gateway, close);
    event = s_recv_op (presence, PL_OP_SESSION_EVENT);
    assert_int_equal (pl_envelope_event (event), PARLEY_SESSION_CLOSED);
    assert_int_equal (pl_envelope_sid (event), 42);
    assert_string_equal (pl_envelope_user (event), "alice");
    pl_envelope_destroy (&event);

    //  A gateway's death closes its bound sessions
    s_session_open (gateway, 44, "192.0.2.7");
    s_login (gateway, auth, 44, "bob");
    event = s_recv_op (presence, PL_OP_SESSION_EVENT);
    assert_int_equal (pl_envelope_event (event), PARLEY_SESSION_BOUND);
    pl_envelope_destroy (&event);
    s_send (gateway, pl_envelope_new (PL_OP_BYE));
    event = s_recv_op (presence, PL_OP_SESSION_EVENT);
    assert_int_equal (pl_envelope_event (event), PARLEY_SESSION_CLOSED);
    assert_int_equal (pl_envelope_sid (event), 44);
    assert_string_equal (pl_envelope_user (event), "bob");
    pl_envelope_destroy (&event);
}

static void
test_unbind_reply_unbinds_and_tells_gateway (void **state)
{
    s_broker (0);
    zsock_t *auth = s_plugin ("auth", "auth.", PARLEY_ROUTE_PUBLIC);
    s_plugin ("example", "example.", 0);
    zsock_t *gateway = s_gateway ("gw-1");
    s_session_open (gateway, 42, "192.0.2.7");
    s_login (gateway, auth, 42, "alice");

    s_request (gateway, 9, 42, "auth.logout", NULL, NULL);
    s_plugin_answer (auth, NULL, true);
    //  The session-close for the gateway goes before the reply
    pl_envelope_t *close = s_recv_op (gateway, PL_OP_SESSION_CLOSE);
    assert_int_equal (pl_envelope_sid (close), 42);
    pl_envelope_destroy (&close);
    s_expect_error (gateway, 9, 42, NULL);

    s_request (gateway, 10, 42, "example.echo", NULL, NULL);
    s_expect_error (gateway, 10, 42, "unauthenticated");
}

//  A free TCP port on 127.0.0.1: a plain socket gives it back at once,
//  where a ZeroMQ socket's close finishes later in another thread
static int
s_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert_true (fd >= 0);
    struct sockaddr_in address = { .sin_family = AF_INET };
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (bind (fd, (struct sockaddr *) &address, sizeof address), 0);
    socklen_t size = sizeof address;
    assert_int_equal (getsockname (fd, (struct sockaddr *) &address, &size), 0);
    close (fd);
    return ntohs (address.sin_port);
}

static void
test_broker_on_tcp_routes_like_inproc (void **state)
{
    int port = s_free_port ();
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    const char *endpoints [] = { endpoint };
    //  Without keys, as the operator may ask (the keys have their own test)
    br_broker_config_t config = {
        .endpoints = endpoints, .endpoint_count = 1, .heartbeat_ms = TEST_HEARTBEAT,
        .insecure_peers = true
    };
    s_the_broker = br_broker_start (&config);
    assert_non_null (s_the_broker);

    zsock_t *example = s_plugin_at (endpoint, "example", "example@test:1", "example.",
                                    PARLEY_ROUTE_PUBLIC, PARLEY_SHARD_NONE, NULL, 0,
                                    TEST_LONG_HEARTBEAT);
    zsock_t *gateway = s_gateway_at (endpoint, "gw-tcp");
    s_session_open (gateway, 42, "192.0.2.7");
    s_request (gateway, 3, 42, "example.echo", "text", "hi");
    s_plugin_answer (example, NULL, false);
    s_expect_error (gateway, 3, 42, NULL);
    s_stop ();

    //  An endpoint someone else holds: the broker does not start
    zsock_t *squatter = zsock_new (ZMQ_ROUTER);
    port = zsock_bind (squatter, "tcp://127.0.0.1:*");
    assert_true (port > 0);
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    assert_null (br_broker_start (&config));
    zsock_destroy (&squatter);
}

static void
test_bind_failure_returns_null (void **state)
{
    const char *endpoints [] = { "tcp://256.1.1.1:1" };
    br_broker_config_t config = { .endpoints = endpoints, .endpoint_count = 1,
                                  .insecure_peers = true };
    assert_null (br_broker_start (&config));
    //  And the inproc endpoint is free again for the next broker
    s_broker (0);
}


//  A tcp:// endpoint without keys: refused, unless insecure_peers
static void
test_tcp_without_keys_is_refused (void **state)
{
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", s_free_port ());
    const char *endpoints [] = { endpoint };
    br_broker_config_t config = { .endpoints = endpoints, .endpoint_count = 1 };
    assert_null (br_broker_start (&config));
    //  Nothing listens there: it was refused before binding
    zsock_t *probe = zsock_new (ZMQ_ROUTER);
    assert_int_equal (zsock_bind (probe, "%s", endpoint), (int) strtol (strrchr (endpoint, ':') + 1, NULL, 10));
    zsock_destroy (&probe);
    //  And the inproc endpoint is free again for the next broker
    s_broker (0);
}

//  Writes a new key pair under folder as NAME (public) and NAME_secret
static char *
s_make_cert (const char *folder, const char *name)
{
    char *path = zsys_sprintf ("%s/%s", folder, name);
    zcert_t *cert = zcert_new ();
    assert_int_equal (zcert_save (cert, path), 0);
    zcert_destroy (&cert);
    return path;
}

static void
s_remove_tree (const char *folder)
{
    zdir_t *dir = zdir_new (folder, NULL);
    if (dir) {
        zdir_remove (dir, true);
        zdir_destroy (&dir);
    }
}

//  Says hello as parleyctl does; returns the broker's answer (owned)
static pl_envelope_t *
s_admin_hello (zsock_t *dealer, const char *instance)
{
    pl_envelope_t *hello = pl_envelope_new (PL_OP_HELLO);
    pl_envelope_set_kind (hello, "admin");
    pl_envelope_set_name (hello, "parleyctl");
    pl_envelope_set_instance (hello, instance);
    pl_envelope_set_heartbeat (hello, TEST_LONG_HEARTBEAT);
    s_send (dealer, hello);
    return s_recv (dealer);
}

static void
s_expect_admin_refused (zsock_t *dealer, const char *instance, const char *says)
{
    pl_envelope_t *answer = s_admin_hello (dealer, instance);
    assert_int_equal (pl_envelope_op (answer), PL_OP_REFUSE);
    assert_string_equal (pl_envelope_code (answer), "forbidden");
    assert_non_null (strstr (pl_envelope_message (answer), says));
    pl_envelope_destroy (&answer);
}

static void
s_expect_admin_welcomed (zsock_t *dealer, const char *instance)
{
    pl_envelope_t *answer = s_admin_hello (dealer, instance);
    assert_int_equal (pl_envelope_op (answer), PL_OP_WELCOME);
    pl_envelope_destroy (&answer);
}

//  Over tcp:// only an operator's key (curve_admin) may say hello as admin;
//  an allowed peer key may not; inproc (and ipc) are not asked; tcp://
//  without keys takes no admin at all
static void
test_admin_hello_needs_an_operator_key (void **state)
{
    char folder [] = "/tmp/parley-test-admin-XXXXXX";
    assert_non_null (mkdtemp (folder));
    char *allow = zsys_sprintf ("%s/allowed", folder);
    char *admin = zsys_sprintf ("%s/admin", folder);
    assert_int_equal (mkdir (allow, 0700), 0);
    assert_int_equal (mkdir (admin, 0700), 0);
    char *broker_cert = s_make_cert (folder, "broker");
    char *operator_cert = s_make_cert (allow, "operator");
    char *peer_cert = s_make_cert (allow, "peer");
    zcert_t *cert = zcert_load (operator_cert);
    char *operator_public = zsys_sprintf ("%s/operator", admin);
    assert_int_equal (zcert_save_public (cert, operator_public), 0);
    zcert_destroy (&cert);
    char error [256];
    s_keys [0] = pl_curve_broker_new (broker_cert, allow, error, sizeof error);
    s_keys [1] = pl_curve_peer_new (operator_cert, broker_cert, error, sizeof error);
    s_keys [2] = pl_curve_peer_new (peer_cert, broker_cert, error, sizeof error);
    assert_non_null (s_keys [0]);
    assert_non_null (s_keys [1]);
    assert_non_null (s_keys [2]);

    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", s_free_port ());
    const char *endpoints [] = { endpoint };
    br_broker_config_t config = {
        .endpoints = endpoints, .endpoint_count = 1, .heartbeat_ms = TEST_HEARTBEAT,
        .curve = s_keys [0], .curve_admin = "/nonexistent/parley-admin"
    };
    assert_null (br_broker_start (&config));        //  a folder that is not there
    config.curve_admin = admin;
    s_the_broker = br_broker_start (&config);
    assert_non_null (s_the_broker);

    s_dealer_keys = s_keys [2];                     //  allowed in, but no operator
    s_expect_admin_refused (s_dealer (endpoint), "parleyctl@peer:1", "--curve-admin");
    zsock_t *gateway = s_gateway_at (endpoint, "gw-peer");     //  still a fine gateway
    assert_non_null (gateway);
    s_dealer_keys = s_keys [1];
    s_expect_admin_welcomed (s_dealer (endpoint), "parleyctl@operator:1");
    s_dealer_keys = NULL;
    s_expect_admin_welcomed (s_dealer (BR_BROKER_INPROC), "parleyctl@inproc:1");
    s_stop ();

    //  tcp:// without keys: no admin over it, inproc still. A new port: the
    //  old one may not be free yet when ZeroMQ closes sockets in the background
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", s_free_port ());
    br_broker_config_t insecure = {
        .endpoints = endpoints, .endpoint_count = 1, .heartbeat_ms = TEST_HEARTBEAT,
        .insecure_peers = true
    };
    s_the_broker = br_broker_start (&insecure);
    assert_non_null (s_the_broker);
    s_expect_admin_refused (s_dealer (endpoint), "parleyctl@plain:1", "without CURVE keys");
    s_expect_admin_welcomed (s_dealer (BR_BROKER_INPROC), "parleyctl@inproc:2");
    s_remove_tree (folder);
    zstr_free (&operator_public);
    zstr_free (&peer_cert);
    zstr_free (&operator_cert);
    zstr_free (&broker_cert);
    zstr_free (&admin);
    zstr_free (&allow);
}

static void
test_curve_peers_need_an_allowed_key (void **state)
{
    char folder [] = "/tmp/parley-test-curve-XXXXXX";
    assert_non_null (mkdtemp (folder));
    char *allow = zsys_sprintf ("%s/allowed", folder);
    assert_int_equal (mkdir (allow, 0700), 0);
    char *broker_cert = s_make_cert (folder, "broker");
    char *good_cert = s_make_cert (allow, "good");      //  its public part is allowed
    char *bad_cert = s_make_cert (folder, "bad");
    char error [256];
    pl_curve_t *broker_keys = s_keys [0]
                            = pl_curve_broker_new (broker_cert, allow, error, sizeof error);
    assert_non_null (broker_keys);
    pl_curve_t *good = s_keys [1] = pl_curve_peer_new (good_cert, broker_cert, error, sizeof error);
    pl_curve_t *bad = s_keys [2] = pl_curve_peer_new (bad_cert, broker_cert, error, sizeof error);
    assert_non_null (good);
    assert_non_null (bad);
    //  A public certificate alone is not a peer's key
    char *public_only = zsys_sprintf ("%s/public", folder);
    zcert_t *cert = zcert_new ();
    zcert_save_public (cert, public_only);
    zcert_destroy (&cert);
    assert_null (pl_curve_peer_new (public_only, broker_cert, error, sizeof error));
    assert_non_null (strstr (error, "no secret key"));

    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", s_free_port ());
    const char *endpoints [] = { endpoint };
    br_broker_config_t config = {
        .endpoints = endpoints, .endpoint_count = 1, .heartbeat_ms = TEST_HEARTBEAT,
        .curve = broker_keys
    };
    s_the_broker = br_broker_start (&config);
    assert_non_null (s_the_broker);

    //  The right key: registered, routed, answered
    s_dealer_keys = good;
    zsock_t *gateway = s_gateway_at (endpoint, "gw-good");
    zsock_t *example = s_plugin_at (endpoint, "example", "example@good:1", "example.",
                                    PARLEY_ROUTE_PUBLIC, PARLEY_SHARD_NONE, NULL, 0,
                                    TEST_LONG_HEARTBEAT);
    zsock_t *auth = s_plugin_at (endpoint, "auth", "auth@good:1", "auth.",
                                 PARLEY_ROUTE_PUBLIC, PARLEY_SHARD_NONE, NULL, 0,
                                 TEST_LONG_HEARTBEAT);
    s_session_open (gateway, 42, "192.0.2.7");
    s_login (gateway, auth, 42, "alice");
    s_request (gateway, 3, 42, "example.echo", "text", "hi");
    s_plugin_answer (example, NULL, false);
    s_expect_error (gateway, 3, 42, NULL);

    //  A key the broker does not allow, and no key at all: their HELLOs
    //  never reach the broker, their route is never served
    const pl_curve_t *intruders [] = { bad, NULL };
    for (size_t index = 0; index < 2; index++) {
        s_dealer_keys = intruders [index];
        zsock_t *intruder = s_dealer (endpoint);
        pl_envelope_t *hello = pl_envelope_new (PL_OP_HELLO);
        pl_envelope_set_kind (hello, "plugin");
        pl_envelope_set_name (hello, "rooms");
        pl_envelope_set_instance (hello, index ? "rooms@nokey:1" : "rooms@badkey:1");
        pl_envelope_set_abi (hello, PARLEY_ABI_MAJOR, PARLEY_ABI_MINOR);
        pl_envelope_set_heartbeat (hello, TEST_LONG_HEARTBEAT);
        pl_envelope_add_route (hello, "room.", PARLEY_ROUTE_PUBLIC, PARLEY_SHARD_NONE, NULL);
        pl_envelope_send (&hello, intruder);     //  may find no connection to queue on
        assert_true (s_quiet (intruder, 500));
        s_request (gateway, 4 + index, 42, "room.list", NULL, NULL);
        s_expect_error (gateway, 4 + index, 42, "unavailable");
        //  Nor can it act as a gateway: its session never exists
        pl_envelope_t *open = pl_envelope_new (PL_OP_SESSION_OPEN);
        pl_envelope_set_sid (open, 77);
        pl_envelope_set_user (open, "alice");
        pl_envelope_send (&open, intruder);
        pl_envelope_t *request = pl_envelope_new (PL_OP_REQUEST);
        pl_envelope_set_rid (request, 9);
        pl_envelope_set_sid (request, 77);
        pl_envelope_set_type (request, "example.echo");
        pl_envelope_send (&request, intruder);
        assert_true (s_quiet (intruder, 300));
        assert_true (s_quiet (example, 1));
    }
    s_stop ();
    s_remove_tree (folder);
    zstr_free (&public_only);
    zstr_free (&allow);
    zstr_free (&broker_cert);
    zstr_free (&good_cert);
    zstr_free (&bad_cert);
}

//  An ipc:// socket file is owner-only, in a folder made owner-only
static void
test_ipc_endpoint_is_owner_only (void **state)
{
    char folder [] = "/tmp/parley-test-ipc-XXXXXX";
    assert_non_null (mkdtemp (folder));
    char *endpoint = zsys_sprintf ("ipc://%s/run/broker.sock", folder);
    const char *endpoints [] = { endpoint };
    br_broker_config_t config = {
        .endpoints = endpoints, .endpoint_count = 1, .heartbeat_ms = TEST_HEARTBEAT
    };
    mode_t old_mask = umask (0);        //  the most careless umask there is
    s_the_broker = br_broker_start (&config);
    umask (old_mask);
    assert_non_null (s_the_broker);
    struct stat status;
    assert_int_equal (stat (endpoint + 6, &status), 0);
    assert_int_equal (status.st_mode & 0777, 0600);
    char *run = zsys_sprintf ("%s/run", folder);
    assert_int_equal (stat (run, &status), 0);
    assert_int_equal (status.st_mode & 0777, 0700);
    //  The owner still connects
    zsock_t *gateway = s_gateway_at (endpoint, "gw-ipc");
    assert_non_null (gateway);
    s_stop ();
    s_remove_tree (folder);
    zstr_free (&run);
    zstr_free (&endpoint);
}

//  An admin peer (parleyctl) reaches the admin routes and nothing else;
//  nobody else reaches them; its requests are stamped with no user and the
//  address admin:INSTANCE; the broker answers admin.online itself
static void
test_admin_routes_only_for_admin_peers (void **state)
{
    s_broker (0);
    zsock_t *auth = s_plugin ("auth", "auth.", PARLEY_ROUTE_PUBLIC);
    zsock_t *users = s_plugin ("users", "admin.users.",
                               PARLEY_ROUTE_INTERNAL | PARLEY_ROUTE_ADMIN);
    zsock_t *gateway = s_gateway ("gw-1");
    s_session_open (gateway, 42, "192.0.2.7");
    s_login (gateway, auth, 42, "alice");
    s_request (gateway, 1, 42, "admin.users.delete", "user", "alice");
    s_expect_error (gateway, 1, 42, "unknown_type");
    s_request (gateway, 2, 42, "admin.online", NULL, NULL);
    s_expect_error (gateway, 2, 42, "unknown_type");
    s_request (auth, 3, 0, "admin.users.list", NULL, NULL);     //  a plugin neither
    s_expect_error (auth, 3, 0, "unknown_type");

    zsock_t *admin = s_dealer (BR_BROKER_INPROC);
    pl_envelope_t *hello = pl_envelope_new (PL_OP_HELLO);
    pl_envelope_set_kind (hello, "admin");
    pl_envelope_set_name (hello, "parleyctl");
    pl_envelope_set_instance (hello, "parleyctl@test:9");
    pl_envelope_set_heartbeat (hello, TEST_LONG_HEARTBEAT);
    s_send (admin, hello);
    pl_envelope_t *welcome = s_recv_op (admin, PL_OP_WELCOME);
    pl_envelope_destroy (&welcome);
    s_request (admin, 4, 0, "auth.login", "user", "alice");     //  not an admin route
    s_expect_error (admin, 4, 0, "unknown_type");
    s_request (admin, 5, 0, "admin.users.delete", "user", "alice");
    pl_envelope_t *request = s_recv_op (users, PL_OP_REQUEST);
    assert_null (pl_envelope_user (request));
    assert_string_equal (pl_envelope_addr (request), "admin:parleyctl@test:9");
    pl_envelope_destroy (&request);

    s_request (admin, 6, 0, "admin.online", NULL, NULL);
    pl_envelope_t *reply = s_recv_op (admin, PL_OP_REPLY);
    assert_int_equal (pl_envelope_rid (reply), 6);
    assert_null (pl_envelope_code (reply));
    zframe_t *body = pl_envelope_body (reply);
    assert_non_null (body);
    //  {users: [{name: "alice", sessions: 1}], more: false}
    bool found = false;
    for (size_t at = 0; at + 5 <= zframe_size (body) && !found; at++)
        found = memcmp (zframe_data (body) + at, "alice", 5) == 0;
    assert_true (found);
    pl_envelope_destroy (&reply);
}

//  The peer broker of a standby pair, played by the test: publishes state
static void
s_peer_says (zsock_t *peer, br_bstar_state_t state)
{
    byte message [2] = { 1, (byte) state };
    zframe_t *frame = zframe_new (message, sizeof message);
    assert_int_equal (zframe_send (&frame, peer, 0), 0);
}

//  True once the broker publishes state on its state socket
static bool
s_broker_says (zsock_t *watch, br_bstar_state_t state)
{
    int64_t deadline = zclock_mono () + TEST_WAIT;
    while (zclock_mono () < deadline) {
        zframe_t *frame = zframe_recv (watch);
        bool said = frame && zframe_size (frame) == 2 && zframe_data (frame) [1] == state;
        zframe_destroy (&frame);
        if (said)
            return true;
    }
    return false;
}

static void
s_plugin_hello (zsock_t *dealer)
{
    pl_envelope_t *hello = pl_envelope_new (PL_OP_HELLO);
    pl_envelope_set_kind (hello, "plugin");
    pl_envelope_set_name (hello, "example");
    pl_envelope_set_instance (hello, "example@test:1");
    pl_envelope_set_abi (hello, PARLEY_ABI_MAJOR, PARLEY_ABI_MINOR);
    pl_envelope_set_heartbeat (hello, TEST_LONG_HEARTBEAT);
    pl_envelope_add_route (hello, "example.", 0, PARLEY_SHARD_NONE, NULL);
    s_send (dealer, hello);
}

//  The backup of a standby pair: passive (no answer, not even WHO) while
//  its peer is active, active at a hello once the peer is silent, and
//  passive again, forgetting its peers, when it finds the primary active too
static void
test_standby_broker_serves_only_while_active (void **state)
{
    zsock_t *peer = zsock_new (ZMQ_PUB);
    assert_int_equal (zsock_bind (peer, "inproc://test-bstar-peer"), 0);
    br_bstar_config_t bstar = { .primary = false, .bind = "inproc://test-bstar-broker",
                                .peer = "inproc://test-bstar-peer" };
    br_broker_config_t config = { .heartbeat_ms = TEST_HEARTBEAT, .bstar = &bstar };
    s_the_broker = br_broker_start (&config);
    assert_non_null (s_the_broker);
    zsock_t *watch = zsock_new_sub (">inproc://test-bstar-broker", "");
    zsock_set_rcvtimeo (watch, 100);

    //  The primary is active: our hellos go unanswered
    zsock_t *dealer = s_dealer (BR_BROKER_INPROC);
    for (int round = 0; round < 10; round++) {
        s_peer_says (peer, BR_BSTAR_ACTIVE);
        s_plugin_hello (dealer);
        assert_true (s_quiet (dealer, 50));
    }
    assert_true (s_broker_says (watch, BR_BSTAR_PASSIVE));

    //  The primary falls silent: the next hello is welcomed
    zclock_sleep (BR_BSTAR_PEER_LIVENESS * TEST_HEARTBEAT + 100);
    s_plugin_hello (dealer);
    pl_envelope_t *welcome = s_recv_op (dealer, PL_OP_WELCOME);
    pl_envelope_destroy (&welcome);
    assert_true (s_broker_says (watch, BR_BSTAR_ACTIVE));

    //  The primary is back and active: the backup yields, forgets us, and
    //  answers nothing
    s_peer_says (peer, BR_BSTAR_ACTIVE);
    assert_true (s_broker_says (watch, BR_BSTAR_PASSIVE));
    pl_envelope_t *request = pl_envelope_new (PL_OP_REQUEST);
    pl_envelope_set_rid (request, 1);
    pl_envelope_set_type (request, "example.echo");
    s_send (dealer, request);
    for (int round = 0; round < 4; round++) {
        s_peer_says (peer, BR_BSTAR_ACTIVE);
        assert_true (s_quiet (dealer, 50));
    }
    zsock_destroy (&watch);
    zsock_destroy (&peer);
}

int
main (void)
{
    zsys_init ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_teardown (test_hello_gets_welcome_with_heartbeat, s_teardown),
        cmocka_unit_test_teardown (test_admin_routes_only_for_admin_peers, s_teardown),
        cmocka_unit_test_teardown (test_plugin_with_other_abi_major_is_refused, s_teardown),
        cmocka_unit_test_teardown (test_duplicate_live_instance_is_refused, s_teardown),
        cmocka_unit_test_teardown (test_unknown_peer_gets_who, s_teardown),
        cmocka_unit_test_teardown (test_request_reaches_plugin_with_stamped_user, s_teardown),
        cmocka_unit_test_teardown (test_unknown_type_for_unserved_prefix_and_internal_route, s_teardown),
        cmocka_unit_test_teardown (test_unauthenticated_on_unbound_session_unless_public, s_teardown),
        cmocka_unit_test_teardown (test_unavailable_when_no_instance_serves, s_teardown),
        cmocka_unit_test_teardown (test_request_to_dead_plugin_gets_unavailable, s_teardown),
        cmocka_unit_test_teardown (test_request_to_silent_live_plugin_times_out_unavailable, s_teardown),
        cmocka_unit_test_teardown (test_request_deadline_travels_and_sets_the_backstop, s_teardown),
        cmocka_unit_test_teardown (test_shard_field_splits_keys_and_keeps_each_key_on_one_instance, s_teardown),
        cmocka_unit_test_teardown (test_user_pair_shard_is_symmetric, s_teardown),
        cmocka_unit_test_teardown (test_plugins_figures_reach_the_gateway_and_leave_with_the_plugin,
                                   s_teardown),
        cmocka_unit_test_teardown (test_deliver_to_users_sends_one_frame_per_gateway, s_teardown),
        cmocka_unit_test_teardown (test_session_events_reach_sessions_plugin, s_teardown),
        cmocka_unit_test_teardown (test_unbind_reply_unbinds_and_tells_gateway, s_teardown),
        cmocka_unit_test_teardown (test_sessions_plugin_welcomed_late_gets_reset_then_bound_sessions,
                                   s_teardown),
        cmocka_unit_test_teardown (test_plugin_unbinds_sessions_and_gateway_is_told, s_teardown),
        cmocka_unit_test_teardown (test_session_reannounced_with_user_is_bound_again, s_teardown),
        cmocka_unit_test_teardown (test_broker_on_tcp_routes_like_inproc, s_teardown),
        cmocka_unit_test_teardown (test_bind_failure_returns_null, s_teardown),
        cmocka_unit_test_teardown (test_tcp_without_keys_is_refused, s_teardown),
        cmocka_unit_test_teardown (test_curve_peers_need_an_allowed_key, s_teardown),
        cmocka_unit_test_teardown (test_admin_hello_needs_an_operator_key, s_teardown),
        cmocka_unit_test_teardown (test_ipc_endpoint_is_owner_only, s_teardown),
        cmocka_unit_test_teardown (test_standby_broker_serves_only_while_active, s_teardown),
    };
    int failed = cmocka_run_group_tests (tests, NULL, NULL);
    zlist_destroy (&s_dealers);
    return failed;
}
