/*  =========================================================================
    test_gw_server - the gateway against a real ROUTER playing the broker

    Each test starts gw_server on a free port in a thread of its own, binds a
    ROUTER on inproc that plays the broker, and talks to the gateway over
    real TCP: plain HTTP/1.1 for /healthz, and a small hand-written
    WebSocket client (RFC 6455) for the client protocol.
    =========================================================================
*/

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <czmq.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw_server.h"
#include "pl_body.h"
#include "pl_envelope.h"

typedef struct {
    zsock_t *broker;                //  the ROUTER playing the broker
    char endpoint [64];             //  where it is bound
    gw_server_t *server;            //  the gateway under test
    pthread_t thread;               //  runs gw_server_run
    int port;                       //  the gateway's real port
    zframe_t *gateway_id;           //  the gateway's routing id, once it said hello
    zsock_t *second;                //  the other broker of a standby pair, or NULL
    char endpoints [160];           //  what the gateway is given: one or both
} fixture_t;

static void *
s_run (void *args)
{
    gw_server_run ((gw_server_t *) args);
    return NULL;
}

//  A gateway given one broker, or (pair) the two of a standby pair
static fixture_t *
s_fixture_new_with (size_t max_frame, uint32_t request_timeout_ms, bool pair)
{
    static int counter = 0;
    fixture_t *fixture = (fixture_t *) zmalloc (sizeof (fixture_t));
    snprintf (fixture->endpoint, sizeof (fixture->endpoint), "inproc://gw-test-%d", ++counter);
    fixture->broker = zsock_new (ZMQ_ROUTER);
    assert_non_null (fixture->broker);
    zsock_set_rcvtimeo (fixture->broker, 3000);
    assert_int_equal (zsock_bind (fixture->broker, "%s", fixture->endpoint), 0);
    snprintf (fixture->endpoints, sizeof (fixture->endpoints), "%s", fixture->endpoint);
    if (pair) {
        fixture->second = zsock_new (ZMQ_ROUTER);
        zsock_set_rcvtimeo (fixture->second, 3000);
        assert_int_equal (zsock_bind (fixture->second, "%s-b", fixture->endpoint), 0);
        snprintf (fixture->endpoints, sizeof (fixture->endpoints), "%s,%s-b",
                  fixture->endpoint, fixture->endpoint);
    }
    gw_config_t config = {
        .listen_host = "127.0.0.1",
        .port = 0,
        .broker_endpoint = fixture->endpoints,
        .web_root = "/nonexistent-web-root",
        .max_frame = max_frame,
        .heartbeat_ms = 100,
        .request_timeout_ms = request_timeout_ms,
    };
    fixture->server = gw_server_new (&config);
    assert_non_null (fixture->server);
    fixture->port = gw_server_port (fixture->server);
    assert_true (fixture->port > 0);
    assert_int_equal (pthread_create (&fixture->thread, NULL, s_run, fixture->server), 0);
    return fixture;
}

static fixture_t *
s_fixture_new (size_t max_frame, uint32_t request_timeout_ms)
{
    return s_fixture_new_with (max_frame, request_timeout_ms, false);
}

static void
s_fixture_destroy (fixture_t **fixture_p)
{
    fixture_t *fixture = *fixture_p;
    gw_server_stop (fixture->server);
    pthread_join (fixture->thread, NULL);
    gw_server_destroy (&fixture->server);
    assert_null (fixture->server);
    zframe_destroy (&fixture->gateway_id);
    zsock_destroy (&fixture->broker);
    zsock_destroy (&fixture->second);
    free (fixture);
    *fixture_p = NULL;
}

//  Receives the next envelope the gateway sends, skipping heartbeats
//  (and HELLOs unless asked for). Fails the test on timeout: a bound for a
//  gateway that never sends it, generous because a sanitized gateway on a
//  loaded machine took more than 3 s to write 40 MB to a slow client.
static pl_envelope_t *
s_broker_recv (fixture_t *fixture, pl_op_t wanted)
{
    int64_t deadline = zclock_mono () + 15000;
    while (zclock_mono () < deadline) {
        pl_envelope_t *envelope = pl_envelope_recv (zsock_resolve (fixture->broker));
        if (!envelope)
            continue;
        pl_op_t op = pl_envelope_op (envelope);
        if (op == wanted) {
            zframe_destroy (&fixture->gateway_id);
            fixture->gateway_id = zframe_dup (pl_envelope_routing_id (envelope));
            return envelope;
        }
        pl_envelope_destroy (&envelope);
    }
    fail_msg ("the gateway sent no '%s' in time", pl_op_name (wanted));
    return NULL;
}

static void
s_broker_send (fixture_t *fixture, pl_envelope_t **envelope_p)
{
    zframe_t *routing_id = zframe_dup (fixture->gateway_id);
    pl_envelope_set_routing_id (*envelope_p, routing_id);
    assert_int_equal (pl_envelope_send (envelope_p, zsock_resolve (fixture->broker)), 0);
}

//  Answers the gateway's HELLO with a WELCOME that announces heartbeat_ms
static void
s_broker_welcome_with (fixture_t *fixture, uint32_t heartbeat_ms)
{
    pl_envelope_t *hello = s_broker_recv (fixture, PL_OP_HELLO);
    assert_string_equal (pl_envelope_kind (hello), "gateway");
    assert_non_null (pl_envelope_name (hello));
    assert_int_equal (strlen (pl_envelope_name (hello)), 8);
    pl_envelope_destroy (&hello);
    pl_envelope_t *welcome = pl_envelope_new (PL_OP_WELCOME);
    pl_envelope_set_heartbeat (welcome, heartbeat_ms);
    s_broker_send (fixture, &welcome);
}

//  A broker that claims 1 s heartbeats, so that a test's silence is not death
static void
s_broker_welcome (fixture_t *fixture)
{
    s_broker_welcome_with (fixture, 1000);
}


//  ---------------------------------------------------------------------
//  Plain TCP: HTTP and a minimal WebSocket client

static int
s_tcp_connect (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert_true (fd >= 0);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (connect (fd, (struct sockaddr *) &address, sizeof (address)), 0);
    struct timeval timeout = { .tv_sec = 3 };
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof (timeout));
    return fd;
}

static void
s_write_all (int fd, const void *data, size_t size)
{
    const uint8_t *cursor = (const uint8_t *) data;
    while (size > 0) {
        ssize_t rc = send (fd, cursor, size, MSG_NOSIGNAL);
        assert_true (rc > 0);
        cursor += rc;
        size -= (size_t) rc;
    }
}

//  GET path with Connection: close; returns the status, body copied into body
static int
s_http_get (int port, const char *path, char *body, size_t body_size)
{
    int fd = s_tcp_connect (port);
    char request [256];
    snprintf (request, sizeof (request),
              "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    s_write_all (fd, request, strlen (request));
    char response [16384];          //  /metrics' page too
    size_t size = 0;
    ssize_t rc;
    while (size < sizeof (response) - 1
    &&     (rc = recv (fd, response + size, sizeof (response) - 1 - size, 0)) > 0)
        size += (size_t) rc;
    response [size] = 0;
    close (fd);
    int status = 0;
    sscanf (response, "HTTP/1.1 %d", &status);
    const char *start = strstr (response, "\r\n\r\n");
    snprintf (body, body_size, "%s", start? start + 4: "");
    return status;
}

//  Opens a WebSocket on path; returns the descriptor, or -1 with the HTTP
//  status in *status_p when the upgrade was refused.
static int
s_ws_connect (int port, const char *path, const char *subprotocol, int *status_p)
{
    int fd = s_tcp_connect (port);
    char request [512];
    snprintf (request, sizeof (request),
              "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n", path,
              subprotocol? "Sec-WebSocket-Protocol: ": "", subprotocol? subprotocol: "",
              subprotocol? "\r\n": "");
    s_write_all (fd, request, strlen (request));
    //  Byte by byte up to the blank line, so no frame is swallowed
    char response [2048];
    size_t size = 0;
    while (size < sizeof (response) - 1) {
        if (recv (fd, response + size, 1, 0) != 1)
            break;
        size++;
        if (size >= 4 && memcmp (response + size - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    response [size] = 0;
    int status = 0;
    sscanf (response, "HTTP/1.1 %d", &status);
    if (status_p)
        *status_p = status;
    if (status != 101) {
        close (fd);
        return -1;
    }
    if (subprotocol)
        assert_non_null (strstr (response, subprotocol));
    return fd;
}

//  Sends one client frame (masked, as RFC 6455 wants from clients)
static void
s_ws_send_frame (int fd, int opcode, bool final, const void *data, size_t size)
{
    uint8_t header [14];
    size_t header_size = 0;
    header [header_size++] = (uint8_t) ((final? 0x80: 0) | opcode);
    if (size < 126)
        header [header_size++] = (uint8_t) (0x80 | size);
    else
    if (size < 65536) {
        header [header_size++] = 0x80 | 126;
        header [header_size++] = (uint8_t) (size >> 8);
        header [header_size++] = (uint8_t) size;
    }
    else {
        header [header_size++] = 0x80 | 127;
        for (int shift = 56; shift >= 0; shift -= 8)
            header [header_size++] = (uint8_t) ((uint64_t) size >> shift);
    }
    const uint8_t mask [4] = { 0x12, 0x34, 0x56, 0x78 };
    memcpy (header + header_size, mask, 4);
    header_size += 4;
    uint8_t *masked = (uint8_t *) malloc (size + 1);
    for (size_t index = 0; index < size; index++)
        masked [index] = ((const uint8_t *) data) [index] ^ mask [index % 4];
    s_write_all (fd, header, header_size);
    if (size)
        s_write_all (fd, masked, size);
    free (masked);
}

static void
s_ws_send_text (int fd, const char *text)
{
    s_ws_send_frame (fd, 1, true, text, strlen (text));
}

static bool
s_read_all (int fd, void *data, size_t size)
{
    uint8_t *cursor = (uint8_t *) data;
    while (size > 0) {
        ssize_t rc = recv (fd, cursor, size, 0);
        if (rc <= 0)
            return false;
        cursor += rc;
        size -= (size_t) rc;
    }
    return true;
}

//  Receives one server frame; returns its opcode (-1 on timeout or EOF) and
//  a NUL-terminated copy of its payload that the caller frees.
static int
s_ws_recv (int fd, char **payload_p, size_t *size_p)
{
    uint8_t header [2];
    *payload_p = NULL;
    if (!s_read_all (fd, header, 2))
        return -1;
    uint64_t size = header [1] & 0x7f;
    if (size == 126) {
        uint8_t extended [2];
        assert_true (s_read_all (fd, extended, 2));
        size = ((uint64_t) extended [0] << 8) | extended [1];
    }
    else
    if (size == 127) {
        uint8_t extended [8];
        assert_true (s_read_all (fd, extended, 8));
        size = 0;
        for (int index = 0; index < 8; index++)
            size = (size << 8) | extended [index];
    }
    assert_false (header [1] & 0x80);       //  servers don't mask
    char *payload = (char *) malloc (size + 1);
    assert_true (s_read_all (fd, payload, size));
    payload [size] = 0;
    *payload_p = payload;
    if (size_p)
        *size_p = size;
    return header [0] & 0x0f;
}

//  Receives one text frame and checks it equals expected
static void
s_ws_expect (int fd, const char *expected)
{
    char *payload = NULL;
    int opcode = s_ws_recv (fd, &payload, NULL);
    assert_int_equal (opcode, 1);
    assert_string_equal (payload, expected);
    free (payload);
}

//  Receives one text frame and checks it contains each of the fragments
static void
s_ws_expect_has (int fd, const char *first, const char *second)
{
    char *payload = NULL;
    int opcode = s_ws_recv (fd, &payload, NULL);
    assert_int_equal (opcode, 1);
    if (!strstr (payload, first) || (second && !strstr (payload, second)))
        fail_msg ("'%s' lacks '%s' or '%s'", payload, first, second? second: "");
    free (payload);
}

//  Waits until the gateway says session-open; returns the sid
static uint64_t
s_broker_expect_session (fixture_t *fixture)
{
    pl_envelope_t *open = s_broker_recv (fixture, PL_OP_SESSION_OPEN);
    uint64_t sid = pl_envelope_sid (open);
    assert_true (sid != 0);
    assert_string_equal (pl_envelope_addr (open), "127.0.0.1");
    pl_envelope_destroy (&open);
    return sid;
}

//  A msgpack map {"text": text}
static zframe_t *
s_text_body (const char *text)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 1);
    msgpack_pack_str_with_body (&packer, "text", 4);
    msgpack_pack_str_with_body (&packer, text, strlen (text));
    zframe_t *frame = zframe_new (buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    return frame;
}


//  ---------------------------------------------------------------------
//  Tests

static void
test_healthz_is_503_until_broker_welcomes_then_200 (void **state)
{
    fixture_t *fixture = s_fixture_new (0, 0);
    char body [256];
    assert_int_equal (s_http_get (fixture->port, "/healthz", body, sizeof (body)), 503);

    s_broker_welcome (fixture);
    int status = 0;
    int64_t deadline = zclock_mono () + 2000;
    while (zclock_mono () < deadline
    &&     (status = s_http_get (fixture->port, "/healthz", body, sizeof (body))) != 200)
        zclock_sleep (10);
    assert_int_equal (status, 200);
    assert_string_equal (body, "ok");
    s_fixture_destroy (&fixture);
}

static void
test_broker_silence_makes_healthz_503_and_gateway_says_hello_again (void **state)
{
    fixture_t *fixture = s_fixture_new (0, 0);
    s_broker_welcome_with (fixture, 100);
    char body [256];
    int64_t deadline = zclock_mono () + 2000;
    while (zclock_mono () < deadline
    &&     s_http_get (fixture->port, "/healthz", body, sizeof (body)) != 200)
        zclock_sleep (10);
    //  The broker stays silent for more than 3 x 100 ms: the gateway says hello again
    pl_envelope_t *hello = s_broker_recv (fixture, PL_OP_HELLO);
    pl_envelope_destroy (&hello);
    assert_int_equal (s_http_get (fixture->port, "/healthz", body, sizeof (body)), 503);
    s_fixture_destroy (&fixture);
}

static void
test_upgrade_on_other_path_is_refused (void **state)
{
    fixture_t *fixture = s_fixture_new (0, 0);
    int status = 0;
    assert_int_equal (s_ws_connect (fixture->port, "/chat", NULL, &status), -1);
    assert_true (status != 101);
    int fd = s_ws_connect (fixture->port, "/ws", "parley.v1", &status);
    assert_true (fd >= 0);
    close (fd);
    s_fixture_destroy (&fixture);
}

static void
test_ping_is_answered_by_gateway_even_before_welcome (void **state)
{
    fixture_t *fixture = s_fixture_new (0, 0);
    int fd = s_ws_connect (fixture->port, "/ws", NULL, NULL);
    assert_true (fd >= 0);
    s_ws_send_text (fd, "{\"type\":\"ping\",\"id\":1}");
    s_ws_expect (fd, "{\"type\":\"ok\",\"id\":1,\"protocol\":\"1.1\"}");
    //  Not ready: unavailable, when to try again, and nothing happened
    s_ws_send_text (fd, "{\"type\":\"example.echo\",\"id\":\"a\",\"text\":\"hi\"}");
    s_ws_expect (fd, "{\"type\":\"error\",\"id\":\"a\",\"code\":\"unavailable\",\"message\":"
                     "\"The server is not ready yet; try again in a moment.\","
                     "\"retry_after_ms\":1000}");
    close (fd);
    s_fixture_destroy (&fixture);
}

static void
test_request_goes_to_broker_and_reply_comes_back (void **state)
{
    fixture_t *fixture = s_fixture_new (0, 0);
    s_broker_welcome (fixture);
    int fd = s_ws_connect (fixture->port, "/ws", "parley.v1", NULL);
    assert_true (fd >= 0);
    uint64_t sid = s_broker_expect_session (fixture);

    s_ws_send_text (fd, "{\"type\":\"example.echo\",\"id\":2,\"text\":\"hi\"}");
    pl_envelope_t *request = s_broker_recv (fixture, PL_OP_REQUEST);
    assert_string_equal (pl_envelope_type (request), "example.echo");
    assert_int_equal (pl_envelope_sid (request), sid);
    size_t cid_size = 0;
    const uint8_t *cid = pl_envelope_cid (request, &cid_size);
    assert_int_equal (cid_size, 1);
    assert_int_equal (cid [0], 2);          //  msgpack positive fixint 2
    assert_non_null (pl_envelope_body (request));

    //  ok with result fields
    pl_envelope_t *reply = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (reply, pl_envelope_rid (request));
    pl_envelope_set_sid (reply, sid);
    zframe_t *body = s_text_body ("hi");
    pl_envelope_set_body (reply, &body);
    s_broker_send (fixture, &reply);
    s_ws_expect (fd, "{\"type\":\"ok\",\"id\":2,\"text\":\"hi\"}");

    //  A second reply to the same rid is dropped; an error reply carries code
    s_ws_send_text (fd, "{\"type\":\"example.fail\",\"id\":3}");
    pl_envelope_t *second = s_broker_recv (fixture, PL_OP_REQUEST);
    reply = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (reply, pl_envelope_rid (request));
    s_broker_send (fixture, &reply);
    reply = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (reply, pl_envelope_rid (second));
    pl_envelope_set_error (reply, "no_such_room", "No room 'x'.");
    s_broker_send (fixture, &reply);
    s_ws_expect (fd, "{\"type\":\"error\",\"id\":3,\"code\":\"no_such_room\","
                     "\"message\":\"No room 'x'.\"}");
    pl_envelope_destroy (&request);
    pl_envelope_destroy (&second);

    //  The request has half the gateway's timeout (10 s by default) to be
    //  answered in; a plugin's rate_limited keeps its own retry_after_ms,
    //  an unavailable without one gets the gateway's, outcome passes on
    s_ws_send_text (fd, "{\"type\":\"example.fail\",\"id\":4}");
    request = s_broker_recv (fixture, PL_OP_REQUEST);
    assert_int_equal (pl_envelope_deadline (request), 5000);
    reply = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (reply, pl_envelope_rid (request));
    pl_envelope_set_error_retry (reply, "rate_limited", "Slow down.", 250);
    s_broker_send (fixture, &reply);
    s_ws_expect (fd, "{\"type\":\"error\",\"id\":4,\"code\":\"rate_limited\","
                     "\"message\":\"Slow down.\",\"retry_after_ms\":250}");
    pl_envelope_destroy (&request);
    s_ws_send_text (fd, "{\"type\":\"example.fail\",\"id\":5}");
    request = s_broker_recv (fixture, PL_OP_REQUEST);
    reply = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (reply, pl_envelope_rid (request));
    pl_envelope_set_error (reply, "unavailable", "Down.");
    pl_envelope_set_outcome (reply, "unknown");
    s_broker_send (fixture, &reply);
    s_ws_expect (fd, "{\"type\":\"error\",\"id\":5,\"code\":\"unavailable\","
                     "\"message\":\"Down.\",\"outcome\":\"unknown\",\"retry_after_ms\":1000}");
    pl_envelope_destroy (&request);

    //  A delivery to this session and to an unknown one
    pl_envelope_t *deliver = pl_envelope_new (PL_OP_DELIVER);
    uint64_t sids [2] = { sid + 1000, sid };
    pl_envelope_set_sids (deliver, sids, 2);
    body = s_text_body ("event");
    pl_envelope_set_body (deliver, &body);
    s_broker_send (fixture, &deliver);
    s_ws_expect (fd, "{\"text\":\"event\"}");

    close (fd);
    pl_envelope_t *closed = s_broker_recv (fixture, PL_OP_SESSION_CLOSE);
    assert_int_equal (pl_envelope_sid (closed), sid);
    pl_envelope_destroy (&closed);
    s_fixture_destroy (&fixture);
}

static void
test_unanswered_request_gets_unavailable_after_timeout (void **state)
{
    fixture_t *fixture = s_fixture_new (0, 200);
    s_broker_welcome (fixture);
    int fd = s_ws_connect (fixture->port, "/ws", NULL, NULL);
    assert_true (fd >= 0);
    s_broker_expect_session (fixture);
    s_ws_send_text (fd, "{\"type\":\"example.echo\",\"id\":\"slow\"}");
    pl_envelope_t *request = s_broker_recv (fixture, PL_OP_REQUEST);
    //  keep the gateway believing in the broker while it waits
    pl_envelope_t *heartbeat = pl_envelope_new (PL_OP_HEARTBEAT);
    s_broker_send (fixture, &heartbeat);
    //  The broker had it and said nothing: the outcome is unknown
    s_ws_expect (fd, "{\"type\":\"error\",\"id\":\"slow\",\"code\":\"unavailable\",\"message\":"
                     "\"The service did not answer in time; the request may or may not have"
                     " taken effect.\",\"outcome\":\"unknown\",\"retry_after_ms\":1000}");
    //  the late reply is dropped: the next frame is the ping's answer
    pl_envelope_t *reply = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (reply, pl_envelope_rid (request));
    s_broker_send (fixture, &reply);
    pl_envelope_destroy (&request);
    zclock_sleep (50);
    s_ws_send_text (fd, "{\"type\":\"ping\"}");
    s_ws_expect (fd, "{\"type\":\"ok\",\"protocol\":\"1.1\"}");
    close (fd);
    s_fixture_destroy (&fixture);
}

static void
test_bad_input_gets_one_error_and_connection_stays_open (void **state)
{
    fixture_t *fixture = s_fixture_new (0, 0);
    int fd = s_ws_connect (fixture->port, "/ws", NULL, NULL);
    assert_true (fd >= 0);

    s_ws_send_frame (fd, 2, true, "\x01\x02", 2);
    s_ws_expect (fd, "{\"type\":\"error\",\"code\":\"bad_request\","
                     "\"message\":\"Binary frames are not accepted; send JSON text.\"}");
    s_ws_send_text (fd, "{\"type\":");
    s_ws_expect_has (fd, "\"code\":\"bad_json\"", NULL);
    s_ws_send_text (fd, "[1,2]");
    s_ws_expect_has (fd, "\"code\":\"bad_request\"", NULL);
    char deep [128] = "{\"type\":\"x\",\"id\":9,\"a\":";
    for (int level = 0; level < 16; level++)
        strcat (deep, "[");
    for (int level = 0; level < 16; level++)
        strcat (deep, "]");
    strcat (deep, "}");
    s_ws_send_text (fd, deep);
    s_ws_expect_has (fd, "\"code\":\"bad_request\"", "\"id\":9");

    //  A message in two fragments is one request
    s_ws_send_frame (fd, 1, false, "{\"type\":\"pi", 11);
    s_ws_send_frame (fd, 0, true, "ng\",\"id\":5}", 11);
    s_ws_expect (fd, "{\"type\":\"ok\",\"id\":5,\"protocol\":\"1.1\"}");
    close (fd);
    s_fixture_destroy (&fixture);
}

static void
test_too_large_frame_gets_error_then_close_1009 (void **state)
{
    fixture_t *fixture = s_fixture_new (1024, 0);
    int fd = s_ws_connect (fixture->port, "/ws", NULL, NULL);
    assert_true (fd >= 0);
    char large [2048];
    memset (large, ' ', sizeof (large));
    memcpy (large, "{\"type\":\"ping\",\"pad\":\"", 22);
    large [sizeof (large) - 2] = '"';
    large [sizeof (large) - 1] = '}';
    s_ws_send_frame (fd, 1, true, large, sizeof (large));
    s_ws_expect_has (fd, "\"code\":\"too_large\"", NULL);
    char *payload = NULL;
    size_t size = 0;
    assert_int_equal (s_ws_recv (fd, &payload, &size), 8);
    assert_true (size >= 2);
    assert_int_equal (((uint8_t) payload [0] << 8) | (uint8_t) payload [1], 1009);
    free (payload);
    close (fd);
    s_fixture_destroy (&fixture);
}

static void
test_sessions_are_announced_again_after_who (void **state)
{
    fixture_t *fixture = s_fixture_new (0, 0);
    s_broker_welcome (fixture);
    int fd = s_ws_connect (fixture->port, "/ws", NULL, NULL);
    assert_true (fd >= 0);
    uint64_t sid = s_broker_expect_session (fixture);

    pl_envelope_t *who = pl_envelope_new (PL_OP_WHO);
    s_broker_send (fixture, &who);
    s_broker_welcome (fixture);
    pl_envelope_t *open = s_broker_recv (fixture, PL_OP_SESSION_OPEN);
    assert_int_equal (pl_envelope_sid (open), sid);
    pl_envelope_destroy (&open);
    close (fd);
    s_fixture_destroy (&fixture);
}

//  Given a standby pair, the gateway moves to the second broker when the
//  first falls silent: its request in flight is answered unavailable at
//  once (not at its 10 s timeout), and its session is announced there with
//  the user it was bound to
static void
test_gateway_moves_to_the_other_broker_of_a_pair (void **state)
{
    fixture_t *fixture = s_fixture_new_with (0, 0, true);
    s_broker_welcome_with (fixture, 100);
    int fd = s_ws_connect (fixture->port, "/ws", NULL, NULL);
    assert_true (fd >= 0);
    uint64_t sid = s_broker_expect_session (fixture);
    s_ws_send_text (fd, "{\"type\":\"auth.login\",\"id\":1}");
    pl_envelope_t *request = s_broker_recv (fixture, PL_OP_REQUEST);
    pl_envelope_t *reply = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (reply, pl_envelope_rid (request));
    pl_envelope_set_bind (reply, "alice");
    s_broker_send (fixture, &reply);
    pl_envelope_destroy (&request);
    s_ws_expect_has (fd, "\"type\":\"ok\"", "\"id\":1");

    //  A request the first broker takes, then it says nothing more
    s_ws_send_text (fd, "{\"type\":\"example.echo\",\"id\":2}");
    request = s_broker_recv (fixture, PL_OP_REQUEST);
    pl_envelope_destroy (&request);
    s_ws_expect_has (fd, "\"code\":\"unavailable\"", "\"id\":2");

    //  The second broker hears the hello and the session with its user
    zsock_t *first = fixture->broker;
    fixture->broker = fixture->second;
    fixture->second = first;
    s_broker_welcome (fixture);
    pl_envelope_t *open = s_broker_recv (fixture, PL_OP_SESSION_OPEN);
    assert_int_equal (pl_envelope_sid (open), sid);
    assert_string_equal (pl_envelope_user (open), "alice");
    pl_envelope_destroy (&open);
    s_ws_send_text (fd, "{\"type\":\"example.echo\",\"id\":3}");
    request = s_broker_recv (fixture, PL_OP_REQUEST);
    assert_int_equal (pl_envelope_sid (request), sid);
    pl_envelope_destroy (&request);
    close (fd);
    s_fixture_destroy (&fixture);
}

static void
test_client_that_does_not_read_is_closed_as_too_slow (void **state)
{
    fixture_t *fixture = s_fixture_new (0, 0);
    s_broker_welcome (fixture);
    int fd = s_ws_connect (fixture->port, "/ws", NULL, NULL);
    assert_true (fd >= 0);
    int small = 4096;
    setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof (small));
    uint64_t sid = s_broker_expect_session (fixture);

    //  200 deliveries of 200 KB: 40 MB, far over what the gateway queues
    char *text = (char *) malloc (200 * 1024 + 1);
    memset (text, 'x', 200 * 1024);
    text [200 * 1024] = 0;
    zframe_t *body = s_text_body (text);
    free (text);
    for (int count = 0; count < 200; count++) {
        pl_envelope_t *deliver = pl_envelope_new (PL_OP_DELIVER);
        pl_envelope_set_sids (deliver, &sid, 1);
        pl_envelope_set_body_copy (deliver, zframe_data (body), zframe_size (body));
        s_broker_send (fixture, &deliver);
    }
    zframe_destroy (&body);
    //  The gateway cuts the session off and tells the broker, without the
    //  client reading anything
    pl_envelope_t *closed = s_broker_recv (fixture, PL_OP_SESSION_CLOSE);
    assert_int_equal (pl_envelope_sid (closed), sid);
    pl_envelope_destroy (&closed);
    close (fd);
    //  ... and counts it
    char *page = (char *) malloc (16384);
    assert_int_equal (s_http_get (fixture->port, "/metrics", page, 16384), 200);
    assert_non_null (strstr (page, "\nparley_gateway_slow_consumers_total 1\n"));
    //  What was cut off was not delivered
    const char *deliveries = strstr (page, "\nparley_gateway_deliveries_total ");
    assert_non_null (deliveries);
    long delivered = atol (deliveries + strlen ("\nparley_gateway_deliveries_total "));
    assert_true (delivered > 0 && delivered < 200);
    free (page);
    s_fixture_destroy (&fixture);
}

static void
test_out_of_descriptors_a_waiting_connection_gets_503_not_a_spin (void **state)
{
    //  Something else in the process takes every descriptor, the gateway's
    //  reserve too: lws cannot accept, and the gateway answers the waiting
    //  connection from its spare descriptor instead of spinning on it
    struct rlimit saved, limit;
    assert_int_equal (getrlimit (RLIMIT_NOFILE, &saved), 0);
    limit = saved;
    if (limit.rlim_cur > 512)
        limit.rlim_cur = 512;
    assert_int_equal (setrlimit (RLIMIT_NOFILE, &limit), 0);
    fixture_t *fixture = s_fixture_new (0, 0);
    int fillers [1024];
    size_t filled = 0;
    int fd;
    while (filled < 1024 && (fd = open ("/dev/null", O_RDONLY)) >= 0)
        fillers [filled++] = fd;
    assert_int_equal (errno, EMFILE);
    close (fillers [--filled]);         //  one for our client's socket
    char body [256];
    assert_int_equal (s_http_get (fixture->port, "/healthz", body, sizeof (body)), 503);
    assert_string_equal (body, "The server is full; try again later.\n");
    while (filled > 0)
        close (fillers [--filled]);
    //  Descriptors back: served again (not welcomed, so 503 'unavailable')
    assert_int_equal (s_http_get (fixture->port, "/healthz", body, sizeof (body)), 503);
    assert_string_equal (body, "unavailable");
    s_fixture_destroy (&fixture);
    assert_int_equal (setrlimit (RLIMIT_NOFILE, &saved), 0);
}


//  ---------------------------------------------------------------------
//  Files over HTTP (gw_files): what goes to the files plugin and back

#define FILE_CHUNK  (256 * 1024)

//  The next files.* request the gateway sends, its body unpacked into
//  unpacked (the caller destroys both); fails on another type
static pl_envelope_t *
s_files_request (fixture_t *fixture, const char *type, msgpack_unpacked *unpacked,
                 const msgpack_object **map_p)
{
    pl_envelope_t *request = s_broker_recv (fixture, PL_OP_REQUEST);
    assert_string_equal (pl_envelope_type (request), type);
    assert_int_equal (pl_envelope_sid (request), 0);        //  no session
    zframe_t *body = pl_envelope_body (request);
    assert_non_null (body);
    msgpack_unpacked_init (unpacked);
    *map_p = pl_body_unpack (unpacked, zframe_data (body), zframe_size (body));
    assert_non_null (*map_p);
    return request;
}

//  Answers request with the msgpack body in buffer (NULL: an empty map)
static void
s_files_answer (fixture_t *fixture, pl_envelope_t **request_p, msgpack_sbuffer *buffer)
{
    pl_envelope_t *reply = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (reply, pl_envelope_rid (*request_p));
    pl_envelope_set_body_copy (reply, buffer? buffer->data: "\x80", buffer? buffer->size: 1);
    s_broker_send (fixture, &reply);
    pl_envelope_destroy (request_p);
}

//  Checks a piece: offset, data size and last; returns the data
static const msgpack_object *
s_files_piece (const msgpack_object *map, const char *upload, uint64_t offset, size_t size,
               bool last)
{
    uint64_t value = 99;
    assert_int_equal (pl_body_uint (map, "offset", &value), 1);
    assert_int_equal (value, offset);
    const msgpack_object *data = pl_body_field (map, "data");
    assert_non_null (data);
    assert_int_equal (data->type, MSGPACK_OBJECT_BIN);
    assert_int_equal (data->via.bin.size, size);
    assert_int_equal (pl_body_bool (map, "last"), last);
    char handle [80];
    pl_body_copy (map, "upload", handle, sizeof handle);
    assert_string_equal (handle, upload);
    return data;
}

//  True when the gateway sends the broker nothing but heartbeats for ms
static bool
s_broker_quiet (fixture_t *fixture, int ms)
{
    int64_t until = zclock_mono () + ms;
    zsock_set_rcvtimeo (fixture->broker, 50);
    bool quiet = true;
    while (quiet && zclock_mono () < until) {
        pl_envelope_t *envelope = pl_envelope_recv (zsock_resolve (fixture->broker));
        quiet = !envelope || pl_envelope_op (envelope) != PL_OP_REQUEST;
        pl_envelope_destroy (&envelope);
    }
    zsock_set_rcvtimeo (fixture->broker, 3000);
    return quiet;
}

//  Reads an HTTP answer whole (Connection: close); returns the status
static int
s_http_answer (int fd, char *answer, size_t size)
{
    size_t got = 0;
    ssize_t rc;
    while (got < size - 1 && (rc = recv (fd, answer + got, size - 1 - got, 0)) > 0)
        got += (size_t) rc;
    answer [got] = 0;
    int status = 0;
    sscanf (answer, "HTTP/1.1 %d", &status);
    return status;
}

static void
test_upload_goes_to_the_plugin_a_piece_at_a_time (void **state)
{
    fixture_t *fixture = s_fixture_new (0, 0);
    s_broker_welcome (fixture);
    size_t size = 2 * FILE_CHUNK + 1000;
    uint8_t *file = (uint8_t *) malloc (size);
    for (size_t index = 0; index < size; index++)
        file [index] = (uint8_t) (index * 7);
    int fd = s_tcp_connect (fixture->port);
    char head [512];
    snprintf (head, sizeof head, "POST /files HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              "Authorization: Bearer tok3n\r\nX-Filename: caf%%C3%%A9.png\r\n"
              "Content-Type: image/png\r\nContent-Length: %zu\r\n\r\n", size);
    s_write_all (fd, head, strlen (head));
    //  The first piece: what the plugin checks, and no data
    msgpack_unpacked unpacked;
    const msgpack_object *map;
    pl_envelope_t *request = s_files_request (fixture, "files.upload", &unpacked, &map);
    char upload [80], text [80];
    pl_body_copy (map, "upload", upload, sizeof upload);
    assert_int_equal (strlen (upload), 22);
    s_files_piece (map, upload, 0, 0, false);
    pl_body_copy (map, "token", text, sizeof text);
    assert_string_equal (text, "tok3n");
    pl_body_copy (map, "name", text, sizeof text);
    assert_string_equal (text, "caf\xc3\xa9.png");
    pl_body_copy (map, "type", text, sizeof text);
    assert_string_equal (text, "image/png");
    uint64_t declared = 0;
    assert_int_equal (pl_body_uint (map, "size", &declared), 1);
    assert_int_equal (declared, size);
    msgpack_unpacked_destroy (&unpacked);
    s_write_all (fd, file, size);
    //  Nothing more until the first is answered: one in flight
    assert_true (s_broker_quiet (fixture, 300));
    s_files_answer (fixture, &request, NULL);
    size_t offset = 0;
    while (offset < size) {
        size_t piece = size - offset < FILE_CHUNK? size - offset: FILE_CHUNK;
        request = s_files_request (fixture, "files.upload", &unpacked, &map);
        const msgpack_object *data = s_files_piece (map, upload, offset, piece,
                                                    offset + piece == size);
        assert_memory_equal (data->via.bin.ptr, file + offset, piece);
        msgpack_unpacked_destroy (&unpacked);
        offset += piece;
        if (offset < size) {
            assert_true (s_broker_quiet (fixture, 200));
            s_files_answer (fixture, &request, NULL);
        }
    }
    //  The last answer is the client's 201, as the plugin said it
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 1);
    msgpack_pack_str_with_body (&packer, "file", 4);
    msgpack_pack_map (&packer, 1);
    msgpack_pack_str_with_body (&packer, "id", 2);
    msgpack_pack_str_with_body (&packer, "AAAAAAAAAAAAAAAAAAAAAA", 22);
    s_files_answer (fixture, &request, &buffer);
    msgpack_sbuffer_destroy (&buffer);
    char answer [4096];
    assert_int_equal (s_http_answer (fd, answer, sizeof answer), 201);
    assert_non_null (strstr (answer, "\r\n\r\n{\"file\":{\"id\":\"AAAAAAAAAAAAAAAAAAAAAA\"}}"));
    close (fd);
    free (file);
    s_fixture_destroy (&fixture);
}

static void
test_upload_refused_or_left_is_aborted (void **state)
{
    fixture_t *fixture = s_fixture_new (0, 0);
    s_broker_welcome (fixture);
    //  Past the plugin's limit: 413 before the body, and the upload aborted
    int fd = s_tcp_connect (fixture->port);
    const char *head = "POST /files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
                       "X-Filename: big\r\nContent-Length: 99999999\r\n\r\n";
    s_write_all (fd, head, strlen (head));
    msgpack_unpacked unpacked;
    const msgpack_object *map;
    pl_envelope_t *request = s_files_request (fixture, "files.upload", &unpacked, &map);
    char upload [80];
    pl_body_copy (map, "upload", upload, sizeof upload);
    msgpack_unpacked_destroy (&unpacked);
    pl_envelope_t *reply = pl_envelope_new (PL_OP_REPLY);
    pl_envelope_set_rid (reply, pl_envelope_rid (request));
    pl_envelope_set_error (reply, "too_large", "At most 10485760 bytes.");
    s_broker_send (fixture, &reply);
    pl_envelope_destroy (&request);
    char answer [4096];
    assert_int_equal (s_http_answer (fd, answer, sizeof answer), 413);
    assert_non_null (strstr (answer, "{\"error\":\"too_large\",\"message\":\"At most 10485760 bytes.\"}"));
    assert_non_null (strstr (answer, "connection: close"));
    close (fd);
    request = s_files_request (fixture, "files.abort", &unpacked, &map);
    char aborted [80];
    pl_body_copy (map, "upload", aborted, sizeof aborted);
    assert_string_equal (aborted, upload);
    msgpack_unpacked_destroy (&unpacked);
    pl_envelope_destroy (&request);

    //  A client that goes away mid-upload: files.abort
    fd = s_tcp_connect (fixture->port);
    head = "POST /files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
           "X-Filename: gone\r\nContent-Length: 1000\r\n\r\nhalf";
    s_write_all (fd, head, strlen (head));
    request = s_files_request (fixture, "files.upload", &unpacked, &map);
    pl_body_copy (map, "upload", upload, sizeof upload);
    msgpack_unpacked_destroy (&unpacked);
    s_files_answer (fixture, &request, NULL);
    close (fd);
    request = s_files_request (fixture, "files.abort", &unpacked, &map);
    pl_body_copy (map, "upload", aborted, sizeof aborted);
    assert_string_equal (aborted, upload);
    msgpack_unpacked_destroy (&unpacked);
    pl_envelope_destroy (&request);
    s_fixture_destroy (&fixture);
}

static void
test_download_asks_a_chunk_at_a_time (void **state)
{
    fixture_t *fixture = s_fixture_new (0, 0);
    s_broker_welcome (fixture);
    //  A malformed id is 404 without asking
    char body [512];
    assert_int_equal (s_http_get (fixture->port, "/files/not-an-id", body, sizeof body), 404);
    assert_string_equal (body, "{\"error\":\"not_found\",\"message\":\"No such file.\"}");
    assert_true (s_broker_quiet (fixture, 200));
    size_t size = FILE_CHUNK + 5000;
    uint8_t *file = (uint8_t *) malloc (size);
    for (size_t index = 0; index < size; index++)
        file [index] = (uint8_t) (index * 13);
    int fd = s_tcp_connect (fixture->port);
    const char *get = "GET /files/AbCdEfGhIjKlMnOpQrStU_ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    s_write_all (fd, get, strlen (get));
    size_t offset = 0;
    while (offset < size) {
        msgpack_unpacked unpacked;
        const msgpack_object *map;
        pl_envelope_t *request = s_files_request (fixture, "files.get", &unpacked, &map);
        char id [64];
        pl_body_copy (map, "file", id, sizeof id);
        assert_string_equal (id, "AbCdEfGhIjKlMnOpQrStU_");
        uint64_t asked = 0, length = 0;
        assert_int_equal (pl_body_uint (map, "offset", &asked), 1);
        assert_int_equal (asked, offset);
        assert_int_equal (pl_body_uint (map, "length", &length), 1);
        size_t piece = size - offset < FILE_CHUNK? size - offset: FILE_CHUNK;
        assert_int_equal (length, piece);
        msgpack_unpacked_destroy (&unpacked);
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        msgpack_packer packer;
        msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
        msgpack_pack_map (&packer, 4);
        msgpack_pack_str_with_body (&packer, "name", 4);
        msgpack_pack_str_with_body (&packer, "a b.txt", 7);
        msgpack_pack_str_with_body (&packer, "type", 4);
        msgpack_pack_str_with_body (&packer, "text/plain", 10);
        msgpack_pack_str_with_body (&packer, "size", 4);
        msgpack_pack_uint64 (&packer, size);
        msgpack_pack_str_with_body (&packer, "data", 4);
        msgpack_pack_bin_with_body (&packer, file + offset, piece);
        s_files_answer (fixture, &request, &buffer);
        msgpack_sbuffer_destroy (&buffer);
        offset += piece;
    }
    char *answer = (char *) malloc (size + 4096);
    assert_int_equal (s_http_answer (fd, answer, size + 4096), 200);
    close (fd);
    assert_non_null (strstr (answer, "content-type: text/plain\r\n"));
    assert_non_null (strstr (answer, "x-content-type-options: nosniff\r\n"));
    assert_non_null (strstr (answer, "content-disposition: attachment; filename*=UTF-8''a%20b.txt\r\n"));
    assert_non_null (strstr (answer, "content-security-policy: sandbox\r\n"));
    char length [64];
    snprintf (length, sizeof length, "content-length: %zu\r\n", size);
    assert_non_null (strstr (answer, length));
    const char *start = strstr (answer, "\r\n\r\n") + 4;
    assert_memory_equal (start, file, size);
    free (answer);
    free (file);
    s_fixture_destroy (&fixture);
}

int
main (void)
{
    zsys_init ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_healthz_is_503_until_broker_welcomes_then_200),
        cmocka_unit_test (test_broker_silence_makes_healthz_503_and_gateway_says_hello_again),
        cmocka_unit_test (test_upgrade_on_other_path_is_refused),
        cmocka_unit_test (test_ping_is_answered_by_gateway_even_before_welcome),
        cmocka_unit_test (test_request_goes_to_broker_and_reply_comes_back),
        cmocka_unit_test (test_unanswered_request_gets_unavailable_after_timeout),
        cmocka_unit_test (test_bad_input_gets_one_error_and_connection_stays_open),
        cmocka_unit_test (test_too_large_frame_gets_error_then_close_1009),
        cmocka_unit_test (test_sessions_are_announced_again_after_who),
        cmocka_unit_test (test_gateway_moves_to_the_other_broker_of_a_pair),
        cmocka_unit_test (test_client_that_does_not_read_is_closed_as_too_slow),
        cmocka_unit_test (test_out_of_descriptors_a_waiting_connection_gets_503_not_a_spin),
        cmocka_unit_test (test_upload_goes_to_the_plugin_a_piece_at_a_time),
        cmocka_unit_test (test_upload_refused_or_left_is_aborted),
        cmocka_unit_test (test_download_asks_a_chunk_at_a_time),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
