/*  =========================================================================
    gw_server - parley-gw: the WebSocket and HTTP front end

    One libwebsockets context, one service thread, no locks, on a libev loop
    of its own: lws' own loop is poll (), which walks every connection on
    every wake-up, so that with 9,000 idle sessions one message took 8 ms
    instead of 0.4; libev uses epoll. The DEALER to
    the broker lives in the same loop: a dup () of its ZMQ_FD is adopted as a
    raw file descriptor, and the bridge drains the socket whenever that
    descriptor fires and after every send (ZMQ_FD is edge-like: it can fire
    for internal commands, and a send can swallow the edge of a message that
    arrived meanwhile).

    Sessions are the per-session data of the chat protocol. A frame for the
    client is encoded once, WebSocket header included, into a refcounted
    buffer and queued by reference on each session it is for. Output never
    copies per session: in the WRITEABLE callback a session hands the kernel
    its queued frames straight from the shared buffers (one sendmsg for many
    frames) and keeps an offset into the first one when the socket takes
    only part. lws_write would copy the rest of a partial write into a
    buffer of that session's own, and a login storm of 10,000 sessions each
    left holding most of a 50 KB presence event costs half a gigabyte.
    Every queue is bounded. With TLS the frames go through the connection's
    SSL object instead (SSL_write, partial writes on): a large frame straight
    from its shared buffer, small ones gathered into one record in a buffer
    of the server's; what OpenSSL holds per session is the one record it is
    sending, never the queue.

    Stopping is graceful (SIGTERM): new connections and requests are
    refused, the requests in flight are answered, then sessions are closed
    with 1001; the tick moves it along and ends the loop within the bound.
    =========================================================================
*/

#include "gw_server.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "gw_filehdr.h"
#include "gw_files.h"
#include "gw_limits.h"
#include "gw_metrics.h"
#include "gw_web.h"
#include "pl_brokers.h"
#include "pl_envelope.h"
#include "pl_transcode.h"

//  A session with this many requests in flight gets rate_limited for more
#define GW_SESSION_MAX_INFLIGHT     256
//  retry_after_ms of the gateway's own rate_limited and unavailable, and of
//  those a plugin sent without one (CLIENT-PROTOCOL.md, "Outcomes")
#define GW_RETRY_AFTER_MS           1000
//  A session whose outgoing queue would pass either bound is cut off (1008)
#define GW_SESSION_MAX_QUEUED       4096
#define GW_SESSION_MAX_QUEUED_BYTES (16 * 1024 * 1024)
//  Frames and bytes handed to one sendmsg, so one busy session cannot starve others
#define GW_WRITE_FRAMES_MAX         64
#define GW_WRITE_BYTES_MAX          (256 * 1024)
//  With TLS, small frames are gathered into one SSL_write up to a record's size
#define GW_TLS_BATCH                (16 * 1024)
//  Sockets' high-water marks toward and from the broker (never 0)
#define GW_BROKER_HWM               10000

#define GW_PROTOCOL_CHAT    "parley.v1"
#define GW_PROTOCOL_HTTP    "parley-http"
#define GW_PROTOCOL_BRIDGE  "parley-zmq-bridge"

//  The longest message type the broker routes (its BR_MAX_TYPE less one):
//  a longer one can never be served, whatever its prefix
#define GW_MAX_TYPE         255


//  ---------------------------------------------------------------------
//  A frame for clients: one unmasked RFC 6455 text frame, header and JSON,
//  the same bytes for every session it is queued on.

typedef struct {
    size_t refs;                    //  one per queue holding it, plus the maker's
    size_t size;                    //  JSON length
    uint8_t *buffer;                //  LWS_PRE headroom + JSON; from pl_transcode
    uint8_t *wire;                  //  the frame as sent: header, then the JSON
    size_t wire_size;               //  header and JSON
} gw_frame_t;

//  Takes ownership of buffer, which has LWS_PRE bytes free in front of size
//  bytes of JSON; the frame's header goes there. Returns a frame with one
//  reference.
static gw_frame_t *
s_frame_new (uint8_t *buffer, size_t size)
{
    gw_frame_t *self = (gw_frame_t *) zmalloc (sizeof (gw_frame_t));
    self->refs = 1;
    self->size = size;
    self->buffer = buffer;
    //  FIN and opcode 1 (text); server frames carry no mask
    size_t header = size < 126? 2: size <= 0xFFFF? 4: 10;
    static_assert (LWS_PRE >= 10, "the longest frame header fits LWS_PRE");
    uint8_t *wire = buffer + LWS_PRE - header;
    wire [0] = 0x81;
    if (header == 2)
        wire [1] = (uint8_t) size;
    else
    if (header == 4) {
        wire [1] = 126;
        wire [2] = (uint8_t) (size >> 8);
        wire [3] = (uint8_t) size;
    }
    else {
        wire [1] = 127;
        for (int index = 0; index < 8; index++)
            wire [2 + index] = (uint8_t) ((uint64_t) size >> (56 - 8 * index));
    }
    self->wire = wire;
    self->wire_size = header + size;
    return self;
}

static gw_frame_t *
s_frame_ref (gw_frame_t *self)
{
    self->refs++;
    return self;
}

static void
s_frame_unref (gw_frame_t **self_p)
{
    gw_frame_t *self = *self_p;
    if (self && --self->refs == 0) {
        free (self->buffer);
        free (self);
    }
    *self_p = NULL;
}


//  ---------------------------------------------------------------------
//  A log line that may come in floods (refusals, accept errors): at most
//  one a second, saying how many were left out since the last

typedef struct {
    int64_t last;                   //  zclock_mono () of the last line logged
    size_t skipped;                 //  lines not logged since
} gw_throttle_t;

//  True when a line may be logged now; then *skipped_p is how many were not
static bool
s_throttle (gw_throttle_t *self, size_t *skipped_p)
{
    int64_t now = zclock_mono ();
    if (self->last && now - self->last < 1000) {
        self->skipped++;
        return false;
    }
    *skipped_p = self->skipped;
    self->skipped = 0;
    self->last = now;
    return true;
}


//  ---------------------------------------------------------------------
//  A WebSocket session: the chat protocol's per-session data, zeroed by lws

typedef struct _gw_session_t gw_session_t;

//  One request sent to the broker and not yet answered
typedef struct {
    uint64_t rid;                   //  our request id; the pending table's key
    gw_session_t *session;          //  who asked
    uint8_t *cid;                   //  the client's id as msgpack, or NULL
    size_t cid_size;                //  its size in bytes
    int64_t deadline;               //  zclock_mono () after which we answer unavailable
    int64_t started;                //  zclock_usecs () when the request was read
    int type;                       //  its type's gw_metrics_type
    void *fifo_handle;              //  in server->pending_fifo
    void *session_handle;           //  in session->pending
} gw_pending_t;

struct _gw_session_t {
    gw_server_t *server;            //  the server this session belongs to
    struct lws *wsi;                //  its connection
    uint64_t sid;                   //  session id; the sessions table's key
    char addr [64];                 //  the client's IP address
    bool live;                      //  registered in server->sessions
    char *user;                     //  the user the broker bound it to, or NULL;
                                    //  said again when re-announcing the session
    gw_limits_conn_t *conn;         //  its connection in server->limits (not owned)
    void *unauth_handle;            //  in server->unauthenticated while not signed in
    int64_t auth_deadline;          //  zclock_mono () past which it is closed (1008)
    //  Inbound message being assembled from fragments
    uint8_t *rx;                    //  bytes so far (text messages only)
    size_t rx_size;                 //  bytes so far, text or binary
    size_t rx_capacity;             //  allocated size of rx
    bool rx_active;                 //  inside a message
    bool rx_binary;                 //  the message is binary: counted, not kept
    //  Outbound queue, a ring of frame references
    gw_frame_t **queue;             //  ring of queue_capacity slots
    size_t queue_capacity;          //  slots allocated
    size_t queue_head;              //  index of the oldest frame
    size_t queue_count;             //  frames queued
    size_t queue_bytes;             //  JSON bytes queued
    size_t queue_offset;            //  bytes of the oldest frame already written
    SSL *tls;                       //  its TLS (lws'), or NULL: plain
    bool tls_retry;                 //  SSL_write wants the same bytes again (from
                                    //  queue_offset) before anything else
    size_t tls_retry_size;          //  ... this many
    bool rx_paused;                 //  input held while a frame is half written
    //  Requests in flight
    zlistx_t *pending;              //  gw_pending_t *, not owned (server owns them)
    //  Closing
    bool closing;                   //  no more input; close after the queue drains
    bool close_now;                 //  the queue has drained: close at next WRITEABLE
    enum lws_close_status close_status;     //  status of the close frame
    const char *close_reason;       //  static string
};

//  Per-session data of the HTTP protocol (/healthz, /metrics, /files)
typedef struct {
    gw_files_conn_t *files;         //  an upload or download running (gw_files')
    bool healthy;                   //  what the headers said, for the body
    char *page;                     //  /metrics: LWS_PRE, then the text; owned
    size_t page_size;               //  the text's length
} gw_http_t;


//  ---------------------------------------------------------------------
//  The server

typedef enum {
    GW_SERVING,                     //  as usual
    GW_DRAINING,                    //  refusing new work, answering what is in flight
    GW_CLOSING                      //  sessions closing with 1001
} gw_phase_t;

struct _gw_server_t {
    char *listen_host;              //  NULL = all interfaces
    int port;                       //  the real listening port
    pl_brokers_t *brokers;          //  the brokers we know (a standby pair: two)
    const char *broker_endpoint;    //  the one the DEALER is connected to (in brokers)
    int64_t broker_arrived;         //  zclock_mono () when we moved to it
    char *web_root;                 //  folder the UI's files are served from (gw_web)
    size_t max_frame;               //  largest client message
    size_t send_buffer;             //  SO_SNDBUF of client sockets, 0 = kernel's choice
    uint32_t heartbeat_ms;          //  our heartbeat interval
    uint32_t request_timeout_ms;    //  backstop for unanswered requests
    uint32_t auth_timeout_ms;       //  a session not signed in this long is closed
    //  Connection limits
    gw_limits_t *limits;            //  connections in all and per address
    gw_limits_conn_t *admitted;     //  admitted at accept, not yet on its wsi
    int admitted_fd;                //  its descriptor
    zlistx_t *unauthenticated;      //  gw_session_t * not signed in, by deadline (not owned)
    int listen_fd;                  //  the listening socket, -1 if not found
    int spare_fd;                   //  kept open to accept and refuse at EMFILE
    gw_throttle_t refused_full;     //  log lines about refusals, at most 1/s
    gw_throttle_t refused_address;
    //  Counters, for /metrics
    gw_metrics_t *metrics;          //  touched by the loop's thread only
    gw_files_t *files;              //  POST /files, GET /files/<id>
    char *metrics_policy;           //  who may read /metrics (gw_metrics_allowed)
    zframe_t *broker_stats;         //  the broker's last STATS answer (text), or NULL
    int64_t stats_until;            //  zclock_mono () until which STATS is asked for
    int64_t stats_asked;            //  ... when it was last asked for
    //  libwebsockets
    struct lws_context *context;    //  the one context
    struct ev_loop *loop;           //  the loop it runs on, ours
    struct lws_vhost *vhost;        //  its one vhost
    struct lws *bridge;             //  the adopted dup of the DEALER's ZMQ_FD
    struct lws_protocols protocols [4];     //  chat (first), http, bridge, end
    struct lws_http_mount mount;    //  every HTTP request to s_http_callback
    lws_sorted_usec_list_t tick;    //  heartbeats, liveness, request timeouts
    int64_t tick_ms;                //  interval of tick
    //  The broker
    zsock_t *dealer;                //  to the broker
    uint32_t nonce;                 //  random, the high half of every sid
    char name [16];                 //  the nonce in hex: our HELLO name
    char instance [128];            //  gateway-NAME@host:pid
    bool welcomed;                  //  the broker accepted our HELLO
    bool resync;                    //  on WELCOME, announce every live session
    uint32_t broker_heartbeat_ms;   //  the broker's interval, from WELCOME
    int64_t last_heard;             //  zclock_mono () of the last message from the broker
    int64_t last_sent;              //  ... of the last message we sent it
    int64_t last_hello;             //  ... of the last HELLO we sent
    bool draining;                  //  inside s_bridge_drain
    //  Sessions and requests
    uint32_t session_counter;       //  low half of sids
    uint64_t rid_counter;           //  our request ids
    zhashx_t *sessions;             //  sid -> gw_session_t * (not owned)
    zhashx_t *pending;              //  rid -> gw_pending_t * (owned)
    zlistx_t *pending_fifo;         //  gw_pending_t * by deadline (not owned)
    //  TLS
    char *tls_cert;                 //  certificate chain file, NULL = plain
    char *tls_key;                  //  its private key file
    SSL_CTX *tls_ctx;               //  the vhost's (lws owns it): new connections
                                    //  take their certificate from it
    atomic_bool reload;             //  SIGHUP: load tls_cert and tls_key again
    uint8_t tls_batch [GW_TLS_BATCH];   //  small frames gathered for one SSL_write
    //  Stopping
    uint32_t stop_timeout_ms;       //  the whole graceful stop's bound
    atomic_int stop_requests;       //  gw_server_stop calls: 1 graceful, 2 at once
    gw_phase_t phase;               //  where the graceful stop is
    int64_t drain_deadline;         //  zclock_mono () when in-flight requests give up
    int64_t stop_deadline;          //  ... when the loop ends, sessions closed or not
    bool finished;                  //  the loop is to end
};

//  The server gw_server_run serves, for the signal handler
static gw_server_t *volatile s_running = NULL;

static void s_bridge_drain (gw_server_t *self);
static int s_bridge_send (gw_server_t *self, pl_envelope_t **envelope_p);

//  Counts a request of type answered with code, read at started (zclock_usecs)
static void
s_count (gw_server_t *self, int type, const char *code, int64_t started)
{
    gw_metrics_request (self->metrics, type, code, zclock_usecs () - started);
}


//  ---------------------------------------------------------------------
//  Hash tables keyed by a uint64_t that lives inside the item

static size_t
s_u64_hash (const void *key)
{
    uint64_t value = *(const uint64_t *) key;
    value ^= value >> 33;
    value *= 0xff51afd7ed558ccdULL;
    value ^= value >> 33;
    return (size_t) value;
}

static int
s_u64_compare (const void *item1, const void *item2)
{
    uint64_t a = *(const uint64_t *) item1;
    uint64_t b = *(const uint64_t *) item2;
    return a < b? -1: a > b? 1: 0;
}

static zhashx_t *
s_u64_table_new (void)
{
    zhashx_t *table = zhashx_new ();
    assert (table);
    zhashx_set_key_hasher (table, s_u64_hash);
    zhashx_set_key_comparator (table, s_u64_compare);
    zhashx_set_key_duplicator (table, NULL);
    zhashx_set_key_destructor (table, NULL);
    return table;
}


//  ---------------------------------------------------------------------
//  Refusing a connection before lws has read anything from it

//  Whole HTTP responses, written straight to the socket at accept
static const char s_response_full [] =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 37\r\n"
    "Cache-Control: no-store\r\n"
    "Retry-After: 5\r\n"
    "Connection: close\r\n"
    "\r\n"
    "The server is full; try again later.\n";
static const char s_response_address [] =
    "HTTP/1.1 429 Too Many Requests\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 59\r\n"
    "Cache-Control: no-store\r\n"
    "Retry-After: 5\r\n"
    "Connection: close\r\n"
    "\r\n"
    "Too many connections from your address; close some first.\n";
static const char s_response_stopping [] =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 47\r\n"
    "Cache-Control: no-store\r\n"
    "Retry-After: 5\r\n"
    "Connection: close\r\n"
    "\r\n"
    "The server is stopping; try again in a moment.\n";

//  Answers the connection on fd with response and ends our side of it. The
//  caller closes it. What the client sent already is read away first: a
//  close with unread input would reset the connection, and the client could
//  lose the answer. A TLS client could not read plain HTTP: response NULL
//  just ends the connection.
static void
s_refuse_raw (int fd, const char *response, size_t size)
{
    char sink [4096];
    while (recv (fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
        ;
    if (!response || send (fd, response, size, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        return;                 //  it could not be answered: just closed
    shutdown (fd, SHUT_WR);
}

//  The address of the peer on fd, as a person writes it
static void
s_fd_address (int fd, char *address, size_t size)
{
    struct sockaddr_storage peer;
    socklen_t length = sizeof peer;
    snprintf (address, size, "?");
    if (getpeername (fd, (struct sockaddr *) &peer, &length))
        return;
    if (peer.ss_family == AF_INET)
        inet_ntop (AF_INET, &((struct sockaddr_in *) &peer)->sin_addr, address, (socklen_t) size);
    else
    if (peer.ss_family == AF_INET6) {
        struct in6_addr *ip = &((struct sockaddr_in6 *) &peer)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED (ip))
            inet_ntop (AF_INET, ip->s6_addr + 12, address, (socklen_t) size);
        else
            inet_ntop (AF_INET6, ip, address, (socklen_t) size);
    }
}


//  ---------------------------------------------------------------------
//  libwebsockets' own log lines, in our log's style

//  The server whose lws logs we see (lws' log hook has no user pointer;
//  one gateway per process)
static gw_server_t *s_log_server = NULL;

//  lws could not accept: out of descriptors, past our cap and its reserve
//  (something else took them). The listening socket stays readable and lws
//  would try again at once, forever: take the spare descriptor to accept
//  one waiting connection, refuse it, and keep the spare again.
static void
s_accept_failed (gw_server_t *self, const char *line)
{
    //  lws 4.1.6 says "accept: errno 24" (EMFILE); others "Too many open files"
    bool out_of_descriptors = strstr (line, "errno 24") || strstr (line, "errno 23")
                           || strstr (line, "open files");
    if (!self || self->listen_fd < 0 || !out_of_descriptors)
        return;
    if (self->spare_fd >= 0) {
        close (self->spare_fd);
        self->spare_fd = -1;
    }
    int fd = accept (self->listen_fd, NULL, NULL);
    if (fd >= 0) {
        fcntl (fd, F_SETFL, O_NONBLOCK);
        s_refuse_raw (fd, s_response_full, sizeof s_response_full - 1);
        close (fd);
        self->metrics->refused [GW_REFUSED_CAP]++;
    }
    self->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void
s_lws_emit (int level, const char *line)
{
    size_t length = strlen (line);
    while (length > 0 && (line [length - 1] == '\n' || line [length - 1] == '\r'))
        length--;
    if (strncmp (line, "accept:", 7) == 0) {
        static gw_throttle_t throttle;
        size_t skipped = 0;
        s_accept_failed (s_log_server, line);
        if (s_throttle (&throttle, &skipped))
            zsys_error ("gateway: libwebsockets: %.*s (and %zu more since the last report)",
                        (int) length, line, skipped);
        return;
    }
    if (level & LLL_ERR)
        zsys_error ("gateway: libwebsockets: %.*s", (int) length, line);
    else
        zsys_warning ("gateway: libwebsockets: %.*s", (int) length, line);
}


//  The client's IP address, as a person writes it
static void
s_peer_address (struct lws *wsi, char *address, size_t size)
{
    address [0] = 0;
    lws_get_peer_simple (wsi, address, size);
    //  An IPv4 client of a dual-stack socket reads as ::ffff:a.b.c.d
    if (strncmp (address, "::ffff:", 7) == 0 && strchr (address + 7, '.'))
        memmove (address, address + 7, strlen (address + 7) + 1);
}


//  ---------------------------------------------------------------------
//  Session output

static gw_frame_t *
s_session_queue_pop (gw_session_t *session)
{
    if (session->queue_count == 0)
        return NULL;
    gw_frame_t *frame = session->queue [session->queue_head];
    session->queue [session->queue_head] = NULL;
    session->queue_head = (session->queue_head + 1) % session->queue_capacity;
    session->queue_count--;
    session->queue_bytes -= frame->size;
    session->queue_offset = 0;
    return frame;
}

static void
s_session_queue_clear (gw_session_t *session)
{
    gw_frame_t *frame;
    while ((frame = s_session_queue_pop (session)))
        s_frame_unref (&frame);
}

//  Ends the session with status and reason (a static string) once what is
//  queued has been written, or at once when discard is true.
static void
s_session_close_with (gw_session_t *session, enum lws_close_status status,
                      const char *reason, bool discard)
{
    if (session->closing)
        return;
    session->closing = true;
    session->close_status = status;
    session->close_reason = reason;
    if (discard) {
        //  A client that does not read never gives us WRITEABLE again: set
        //  the close frame's status and kill the connection from the loop.
        //  Half a frame written already: a close frame would land inside
        //  it, so the connection just ends.
        bool half_written = session->queue_offset > 0 || session->tls_retry;
        s_session_queue_clear (session);
        if (!half_written)
            lws_close_reason (session->wsi, status, (unsigned char *) reason, strlen (reason));
        lws_set_timeout (session->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    if (session->queue_count == 0)
        session->close_now = true;
    lws_callback_on_writable (session->wsi);
    //  Backstop, should the client stop reading before the last frame left
    lws_set_timeout (session->wsi, PENDING_TIMEOUT_USER_OK, 5);
}

//  Queues a reference to frame. A bounded push over the session's bound
//  closes the session as too slow instead. Returns true when queued.
static bool
s_session_push (gw_session_t *session, gw_frame_t *frame, bool bounded)
{
    if (session->closing && bounded)
        return false;
    if (bounded
    && (session->queue_count >= GW_SESSION_MAX_QUEUED
        || session->queue_bytes + frame->size > GW_SESSION_MAX_QUEUED_BYTES)) {
        zsys_warning ("gateway: session %016" PRIx64 " (%s) has %zu frames (%zu bytes) "
                      "unsent; closing it as too slow (1008)",
                      session->sid, session->addr, session->queue_count, session->queue_bytes);
        session->server->metrics->slow_consumers++;
        s_session_close_with (session, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow", true);
        return false;
    }
    if (session->queue_count == session->queue_capacity) {
        size_t capacity = session->queue_capacity? session->queue_capacity * 2: 16;
        gw_frame_t **queue = (gw_frame_t **) zmalloc (capacity * sizeof (gw_frame_t *));
        for (size_t index = 0; index < session->queue_count; index++)
            queue [index] = session->queue [(session->queue_head + index) % session->queue_capacity];
        free (session->queue);
        session->queue = queue;
        session->queue_capacity = capacity;
        session->queue_head = 0;
    }
    size_t tail = (session->queue_head + session->queue_count) % session->queue_capacity;
    session->queue [tail] = s_frame_ref (frame);
    session->queue_count++;
    session->queue_bytes += frame->size;
    lws_callback_on_writable (session->wsi);
    return true;
}

//  Queues a frame made from buffer (taking ownership); NULL buffer is a no-op
static void
s_session_push_buffer (gw_session_t *session, uint8_t *buffer, size_t size, bool bounded)
{
    if (!buffer)
        return;
    gw_frame_t *frame = s_frame_new (buffer, size);
    s_session_push (session, frame, bounded);
    s_frame_unref (&frame);
}

//  True for the codes that always carry retry_after_ms
static bool
s_code_retries (const char *code)
{
    return code && (streq (code, "rate_limited") || streq (code, "unavailable"));
}

//  An error with outcome (NULL, or "unknown"); rate_limited and unavailable
//  carry retry_after_ms
static void
s_session_send_outcome (gw_session_t *session, const uint8_t *id, size_t id_size,
                        const char *code, const char *message, const char *outcome)
{
    size_t size = 0;
    uint8_t *buffer = pl_transcode_error_retry (id, id_size, code, message, outcome, NULL, 0,
                                                s_code_retries (code)? GW_RETRY_AFTER_MS: 0,
                                                LWS_PRE, &size);
    if (!buffer)
        zsys_error ("gateway: could not encode a '%s' error for session %016" PRIx64,
                    code, session->sid);
    s_session_push_buffer (session, buffer, size, true);
}

static void
s_session_send_error (gw_session_t *session, const uint8_t *id, size_t id_size,
                      const char *code, const char *message)
{
    if (s_code_retries (code)) {
        s_session_send_outcome (session, id, id_size, code, message, NULL);
        return;
    }
    size_t size = 0;
    uint8_t *buffer = pl_transcode_error (id, id_size, code, message, LWS_PRE, &size);
    if (!buffer)
        zsys_error ("gateway: could not encode a '%s' error for session %016" PRIx64,
                    code, session->sid);
    s_session_push_buffer (session, buffer, size, true);
}

//  Hands the kernel what it takes of the queued frames, straight from their
//  shared buffers, in one sendmsg. Returns the bytes taken, or -1 when the
//  connection failed.
static ssize_t
s_session_send_plain (gw_session_t *session)
{
    struct iovec parts [GW_WRITE_FRAMES_MAX];
    size_t part_count = 0;
    size_t part_bytes = 0;
    for (size_t index = 0; index < session->queue_count && part_count < GW_WRITE_FRAMES_MAX
                           && part_bytes < GW_WRITE_BYTES_MAX; index++) {
        gw_frame_t *frame = session->queue [(session->queue_head + index) % session->queue_capacity];
        size_t skip = index == 0? session->queue_offset: 0;
        parts [part_count].iov_base = frame->wire + skip;
        parts [part_count].iov_len = frame->wire_size - skip;
        part_bytes += frame->wire_size - skip;
        part_count++;
    }
    if (part_count == 0)
        return 0;
    struct msghdr message = { .msg_iov = parts, .msg_iovlen = part_count };
    ssize_t sent = sendmsg (lws_get_socket_fd (session->wsi), &message,
                            MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            zsys_info ("gateway: session %016" PRIx64 " (%s): write failed (%s); closing it",
                       session->sid, session->addr, strerror (errno));
            return -1;
        }
        sent = 0;
    }
    return sent;
}

//  Copies size bytes of the queue, from queue_offset on, into batch
static void
s_session_gather (gw_session_t *session, uint8_t *batch, size_t size)
{
    size_t taken = 0;
    for (size_t index = 0; index < session->queue_count && taken < size; index++) {
        gw_frame_t *frame = session->queue [(session->queue_head + index) % session->queue_capacity];
        size_t skip = index == 0? session->queue_offset: 0;
        size_t part = frame->wire_size - skip;
        if (part > size - taken)
            part = size - taken;
        memcpy (batch + taken, frame->wire + skip, part);
        taken += part;
    }
}

//  The same through the connection's TLS, one SSL_write (partial writes on;
//  s_session_send calls it again while the socket takes more):
//  a frame of a record's size or more straight from its shared buffer, and
//  smaller ones gathered into one record (a copy, but one write and one
//  record instead of one per frame). When OpenSSL wants the socket, the
//  same bytes must be offered again: tls_retry holds the rest of the queue
//  (and lws' own writes, see s_session_write) until they are.
static ssize_t
s_session_send_tls (gw_session_t *session)
{
    if (session->queue_count == 0)
        return 0;
    gw_frame_t *first = session->queue [session->queue_head];
    const uint8_t *data = first->wire + session->queue_offset;
    size_t rest = first->wire_size - session->queue_offset;
    size_t size = rest;
    if (session->tls_retry)
        size = session->tls_retry_size;
    else
    if (rest < GW_TLS_BATCH && session->queue_count > 1) {
        size = 0;
        for (size_t index = 0; index < session->queue_count && size < GW_TLS_BATCH; index++) {
            gw_frame_t *frame = session->queue [(session->queue_head + index) % session->queue_capacity];
            size += frame->wire_size - (index == 0? session->queue_offset: 0);
        }
        if (size > GW_TLS_BATCH)
            size = GW_TLS_BATCH;
    }
    if (size > rest) {
        s_session_gather (session, session->server->tls_batch, size);
        data = session->server->tls_batch;
    }
    ERR_clear_error ();
    int rc = SSL_write (session->tls, data, (int) size);
    if (rc > 0) {
        session->tls_retry = false;
        return rc;
    }
    int error = SSL_get_error (session->tls, rc);
    if (error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ) {
        session->tls_retry = true;
        session->tls_retry_size = size;
        return 0;
    }
    char text [160];
    ERR_error_string_n (ERR_get_error (), text, sizeof text);
    zsys_info ("gateway: session %016" PRIx64 " (%s): TLS write failed (%d, %s); closing it",
               session->sid, session->addr, error, text);
    return -1;
}

//  Takes sent bytes off the front of the queue: the frames written whole
//  go, and the offset into the next is kept
static void
s_session_advance (gw_session_t *session, size_t sent)
{
    gw_metrics_t *metrics = session->server->metrics;
    metrics->bytes_sent += sent;
    while (sent > 0) {
        gw_frame_t *frame = session->queue [session->queue_head];
        size_t rest = frame->wire_size - session->queue_offset;
        if (sent < rest) {
            session->queue_offset += sent;
            break;
        }
        sent -= rest;
        frame = s_session_queue_pop (session);
        s_frame_unref (&frame);
        metrics->frames_sent++;
    }
}

//  Writes what the connection takes of the queue in this WRITEABLE: plain,
//  one sendmsg of up to GW_WRITE_BYTES_MAX; with TLS, SSL_writes of a record
//  each until as much has gone, the queue is empty or OpenSSL wants the
//  socket. One record per WRITEABLE made a session with more than 16 KiB
//  queued wait a round of the loop (every other session's writes) for each
//  further 16 KiB. Returns -1 when the connection failed.
static int
s_session_send (gw_session_t *session)
{
    size_t total = 0;
    while (true) {
        ssize_t sent = session->tls? s_session_send_tls (session): s_session_send_plain (session);
        if (sent < 0)
            return -1;
        s_session_advance (session, (size_t) sent);
        total += (size_t) sent;
        if (!session->tls || sent == 0 || session->tls_retry
        ||  session->queue_count == 0 || total >= GW_WRITE_BYTES_MAX)
            return 0;
    }
}

//  WRITEABLE: writes queued frames, then closes if asked to. Returns -1 to
//  have lws close the connection.
//
//  The frames go out straight from their shared buffers, so lws never sees
//  them; what lws writes on its own (a pong, a close frame) must then never
//  fall inside one of ours (nor, with TLS, between an SSL_write and its
//  retry). lws sends a pending pong before it calls us, so none is pending
//  here; while our oldest frame is half written we stop reading, so no ping
//  can arrive to make one. We close (which sends a close frame) only with
//  nothing half written.
static int
s_session_write (gw_session_t *session)
{
    if (session->close_now) {
        lws_close_reason (session->wsi, session->close_status,
                          (unsigned char *) session->close_reason,
                          strlen (session->close_reason));
        return -1;
    }
    if (lws_partial_buffered (session->wsi)) {
        //  lws has bytes of its own to finish first
        lws_callback_on_writable (session->wsi);
        return 0;
    }
    if (s_session_send (session) < 0)
        return -1;
    bool half_written = session->queue_offset > 0 || session->tls_retry;
    if (half_written != session->rx_paused) {
        session->rx_paused = half_written;
        lws_rx_flow_control (session->wsi, half_written? 0: 1);
    }
    if (session->queue_count == 0 && session->closing)
        //  Close at the next WRITEABLE, which lws gives only once what we
        //  wrote has left: the last frame (an error) reaches the client.
        session->close_now = true;
    if (session->queue_count > 0 || session->close_now)
        lws_callback_on_writable (session->wsi);
    return 0;
}


//  ---------------------------------------------------------------------
//  Pending requests

static void
s_pending_destroy (gw_server_t *self, gw_pending_t **pending_p)
{
    gw_pending_t *pending = *pending_p;
    if (!pending)
        return;
    zhashx_delete (self->pending, &pending->rid);
    zlistx_delete (self->pending_fifo, pending->fifo_handle);
    zlistx_delete (pending->session->pending, pending->session_handle);
    free (pending->cid);
    free (pending);
    *pending_p = NULL;
}

//  Answers requests whose deadline has passed with unavailable; all of
//  them when the graceful stop runs out of time (stopping)
static void
s_pending_expire (gw_server_t *self, int64_t now, bool stopping)
{
    gw_pending_t *pending;
    while ((pending = (gw_pending_t *) zlistx_first (self->pending_fifo))
    &&     (stopping || pending->deadline <= now)) {
        gw_session_t *session = pending->session;
        zsys_warning ("gateway: request %" PRIu64 " of session %016" PRIx64 " (%s) had no "
                      "reply in %u ms; answering unavailable",
                      pending->rid, session->sid, session->addr,
                      stopping? self->stop_timeout_ms * 3 / 4: self->request_timeout_ms);
        //  The request went to the broker and no answer came: it may have
        //  taken effect (PROTOCOL.md 1.1 "Outcomes")
        s_session_send_outcome (session, pending->cid, pending->cid_size, "unavailable",
                                stopping? "The server is stopping; the request may or may not"
                                " have taken effect.": "The service did not answer in time; the"
                                " request may or may not have taken effect.", "unknown");
        s_count (self, pending->type, "unavailable", pending->started);
        s_pending_destroy (self, &pending);
    }
}


//  ---------------------------------------------------------------------
//  Session lifecycle

static void
s_session_announce (gw_server_t *self, gw_session_t *session)
{
    pl_envelope_t *envelope = pl_envelope_new (PL_OP_SESSION_OPEN);
    pl_envelope_set_sid (envelope, session->sid);
    pl_envelope_set_addr (envelope, session->addr);
    pl_envelope_set_user (envelope, session->user);
    if (s_bridge_send (self, &envelope))
        zsys_warning ("gateway: could not announce session %016" PRIx64 " (%s) to the broker",
                      session->sid, session->addr);
}

//  Binds the session to user, or unbinds it (NULL). A session not signed
//  in is counted against its address and closed auth_timeout_ms from now
//  unless it signs in first.
static void
s_session_set_user (gw_server_t *self, gw_session_t *session, const char *user)
{
    zstr_free (&session->user);
    if (user) {
        session->user = strdup (user);
        assert (session->user);
    }
    bool unauthenticated = session->user == NULL;
    gw_limits_set_unauthenticated (self->limits, session->conn, unauthenticated);
    if (!unauthenticated && session->unauth_handle) {
        zlistx_delete (self->unauthenticated, session->unauth_handle);
        session->unauth_handle = NULL;
    }
    else
    if (unauthenticated && !session->unauth_handle && session->live && !session->closing) {
        session->auth_deadline = zclock_mono () + self->auth_timeout_ms;
        session->unauth_handle = zlistx_add_end (self->unauthenticated, session);
    }
}

//  Closes the sessions that did not sign in in time (PROTOCOL.md 1.1)
static void
s_sessions_expire (gw_server_t *self, int64_t now)
{
    gw_session_t *session;
    while ((session = (gw_session_t *) zlistx_first (self->unauthenticated))
    &&     session->auth_deadline <= now) {
        zlistx_delete (self->unauthenticated, session->unauth_handle);
        session->unauth_handle = NULL;
        self->metrics->auth_timeouts++;
        zsys_info ("gateway: session %016" PRIx64 " (%s) did not sign in within %u ms; "
                   "closing it (1008)", session->sid, session->addr, self->auth_timeout_ms);
        s_session_close_with (session, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                              "authenticate first", false);
    }
}

static void
s_session_open (gw_server_t *self, gw_session_t *session, struct lws *wsi)
{
    session->server = self;
    session->wsi = wsi;
    if (++self->session_counter == 0)
        ++self->session_counter;
    session->sid = ((uint64_t) self->nonce << 32) | self->session_counter;
    s_peer_address (wsi, session->addr, sizeof (session->addr));
    if (self->send_buffer) {
        //  Fixing it turns off the kernel's autotuning, which on loopback
        //  grows a socket's buffer to megabytes: ops trade that for memory
        int size = (int) self->send_buffer;
        if (setsockopt (lws_get_socket_fd (wsi), SOL_SOCKET, SO_SNDBUF, &size, sizeof size))
            zsys_warning ("gateway: session %016" PRIx64 ": SO_SNDBUF %d: %s",
                          session->sid, size, strerror (errno));
    }
    if (self->tls_ctx) {
        //  Partial writes: a large frame may leave in pieces, as over plain TCP
        session->tls = (SSL *) lws_get_ssl (wsi);
        if (session->tls)
            SSL_set_mode (session->tls, SSL_MODE_ENABLE_PARTIAL_WRITE);
    }
    session->pending = zlistx_new ();
    assert (session->pending);
    zhashx_insert (self->sessions, &session->sid, session);
    session->live = true;
    session->conn = (gw_limits_conn_t *) lws_get_opaque_user_data (wsi);
    s_session_set_user (self, session, NULL);
    self->metrics->sessions++;
    zsys_info ("gateway: session %016" PRIx64 " opened from %s", session->sid, session->addr);
    if (self->welcomed)
        s_session_announce (self, session);
    else
        self->resync = true;
}

static void
s_session_close (gw_server_t *self, gw_session_t *session)
{
    if (!session->live)
        return;
    session->live = false;
    zhashx_delete (self->sessions, &session->sid);
    if (session->unauth_handle) {
        zlistx_delete (self->unauthenticated, session->unauth_handle);
        session->unauth_handle = NULL;
    }
    gw_pending_t *pending;
    size_t dropped = zlistx_size (session->pending);
    while ((pending = (gw_pending_t *) zlistx_first (session->pending))) {
        s_count (self, pending->type, "dropped", pending->started);
        s_pending_destroy (self, &pending);
    }
    zlistx_destroy (&session->pending);
    s_session_queue_clear (session);
    free (session->queue);
    session->queue = NULL;
    free (session->rx);
    session->rx = NULL;
    zstr_free (&session->user);
    zsys_info ("gateway: session %016" PRIx64 " (%s) closed%s",
               session->sid, session->addr,
               dropped? "; dropped its requests in flight": "");
    pl_envelope_t *envelope = pl_envelope_new (PL_OP_SESSION_CLOSE);
    pl_envelope_set_sid (envelope, session->sid);
    s_bridge_send (self, &envelope);
}


//  ---------------------------------------------------------------------
//  Session input: one whole client message

//  Answers a request with an error at once, and counts it
static void
s_request_refuse (gw_server_t *self, gw_session_t *session, pl_request_t *request,
                  int type, int64_t started, const char *code, const char *message)
{
    s_session_send_error (session, request->id, request->id_size, code, message);
    s_count (self, type, code, started);
}

static void
s_session_request (gw_server_t *self, gw_session_t *session, pl_request_t *request,
                   int64_t started)
{
    int type = gw_metrics_type (request->type);
    if (strlen (request->type) > GW_MAX_TYPE) {
        //  The broker routes no type this long: it is unknown whatever its
        //  prefix, not a service that is down
        char message [128];
        snprintf (message, sizeof message, "Unknown message type '%.40s...' (longer than "
                  "%d bytes).", request->type, GW_MAX_TYPE);
        s_request_refuse (self, session, request, type, started, "unknown_type", message);
        return;
    }
    //  The name the broker routes it by: a typing goes to the plugin of the
    //  field it has (ENVELOPE.md, "Client types")
    const char *route_type = pl_transcode_route_type (request->type, request->body,
                                                      request->body_size);
    if (!route_type) {
        char message [128];
        snprintf (message, sizeof message, "Unknown message type '%s'.", request->type);
        s_request_refuse (self, session, request, type, started, "unknown_type", message);
        return;
    }
    if (streq (request->type, "ping")) {
        //  {"protocol": "1.1"} in msgpack: the version this server speaks
        static const char version [] = "\x81\xa8" "protocol" "\xa3" "1.1";
        size_t size = 0;
        uint8_t *buffer = pl_transcode_frame ("ok", request->id, request->id_size,
                                              (const uint8_t *) version, sizeof version - 1,
                                              LWS_PRE, &size);
        s_session_push_buffer (session, buffer, size, true);
        s_count (self, type, "ok", started);
        return;
    }
    if (!self->welcomed) {
        s_request_refuse (self, session, request, type, started, "unavailable",
                              "The server is not ready yet; try again in a moment.");
        return;
    }
    if (self->phase != GW_SERVING) {
        s_request_refuse (self, session, request, type, started, "unavailable",
                              "The server is stopping; reconnect in a moment.");
        return;
    }
    if (zlistx_size (session->pending) >= GW_SESSION_MAX_INFLIGHT) {
        s_request_refuse (self, session, request, type, started, "rate_limited",
                              "Too many requests in flight; wait for replies first.");
        return;
    }
    //  The pending entry goes in before the send: sending drains the
    //  socket, and the reply may already be there.
    gw_pending_t *pending = (gw_pending_t *) zmalloc (sizeof (gw_pending_t));
    pending->rid = ++self->rid_counter;
    pending->session = session;
    if (request->id) {
        pending->cid = (uint8_t *) malloc (request->id_size);
        assert (pending->cid);
        memcpy (pending->cid, request->id, request->id_size);
        pending->cid_size = request->id_size;
    }
    pending->deadline = zclock_mono () + self->request_timeout_ms;
    pending->started = started;
    pending->type = type;
    pending->fifo_handle = zlistx_add_end (self->pending_fifo, pending);
    pending->session_handle = zlistx_add_end (session->pending, pending);
    zhashx_insert (self->pending, &pending->rid, pending);

    pl_envelope_t *envelope = pl_envelope_new (PL_OP_REQUEST);
    pl_envelope_set_rid (envelope, pending->rid);
    pl_envelope_set_sid (envelope, session->sid);
    pl_envelope_set_type (envelope, route_type);
    //  Our timeout is the backstop behind the broker's, twice it: the
    //  request has half of it, which the broker and each hop after count
    //  down (ENVELOPE.md, "dl")
    pl_envelope_set_deadline (envelope, self->request_timeout_ms / 2);
    if (request->id)
        pl_envelope_set_cid (envelope, request->id, request->id_size);
    if (request->body)
        pl_envelope_set_body_copy (envelope, request->body, request->body_size);
    uint64_t rid = pending->rid;
    if (s_bridge_send (self, &envelope)) {
        zsys_warning ("gateway: could not pass a '%s' request of session %016" PRIx64
                      " (%s) to the broker; answering unavailable",
                      request->type, session->sid, session->addr);
        pending = (gw_pending_t *) zhashx_lookup (self->pending, &rid);
        if (pending)
            s_pending_destroy (self, &pending);
        s_request_refuse (self, session, request, type, started, "unavailable",
                          "The server is busy or reconnecting; try again later.");
    }
}

static void
s_session_message (gw_server_t *self, gw_session_t *session)
{
    int64_t started = zclock_usecs ();
    if (session->rx_binary) {
        s_session_send_error (session, NULL, 0, "bad_request",
                              "Binary frames are not accepted; send JSON text.");
        s_count (self, gw_metrics_type (NULL), "bad_request", started);
        return;
    }
    pl_request_t request;
    memset (&request, 0, sizeof (request));
    pl_transcode_request ((const char *) session->rx, session->rx_size, self->max_frame,
                          PL_TRANSCODE_MAX_DEPTH, &request);
    switch (request.status) {
        case PL_TRANSCODE_OK:
            s_session_request (self, session, &request, started);
            break;
        case PL_TRANSCODE_BAD_JSON:
            s_session_send_error (session, request.id, request.id_size, "bad_json", request.error);
            break;
        case PL_TRANSCODE_BAD_REQUEST:
            s_session_send_error (session, request.id, request.id_size, "bad_request",
                                  request.error);
            break;
        case PL_TRANSCODE_TOO_LARGE:
            s_session_send_error (session, request.id, request.id_size, "too_large",
                                  request.error);
            s_session_close_with (session, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                                  "frame too large", false);
            break;
    }
    if (request.status != PL_TRANSCODE_OK)
        s_count (self, gw_metrics_type (NULL),
                 request.status == PL_TRANSCODE_BAD_JSON? "bad_json":
                 request.status == PL_TRANSCODE_TOO_LARGE? "too_large": "bad_request", started);
    pl_request_reset (&request);
}

//  RECEIVE: one piece of a message (a fragment, or part of one)
static void
s_session_receive (gw_server_t *self, gw_session_t *session, const uint8_t *data, size_t size)
{
    struct lws *wsi = session->wsi;
    if (session->closing)
        return;                 //  what follows a fatal error is not read
    if (!session->rx_active) {
        session->rx_active = true;
        session->rx_binary = lws_frame_is_binary (wsi) != 0;
        session->rx_size = 0;
    }
    if (session->rx_size + size > self->max_frame) {
        zsys_info ("gateway: session %016" PRIx64 " (%s) sent a message over %zu bytes; "
                   "answering too_large and closing it (1009)",
                   session->sid, session->addr, self->max_frame);
        session->rx_active = false;
        session->rx_size = 0;
        char message [128];
        snprintf (message, sizeof (message),
                  "The frame is larger than %zu bytes; the connection is closed.",
                  self->max_frame);
        s_session_send_error (session, NULL, 0, "too_large", message);
        s_count (self, gw_metrics_type (NULL), "too_large", zclock_usecs ());
        s_session_close_with (session, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                              "frame too large", false);
        return;
    }
    if (!session->rx_binary && size > 0) {
        if (session->rx_size + size > session->rx_capacity) {
            size_t capacity = session->rx_capacity? session->rx_capacity: 1024;
            while (capacity < session->rx_size + size)
                capacity *= 2;
            if (capacity > self->max_frame)
                capacity = self->max_frame;
            uint8_t *rx = (uint8_t *) realloc (session->rx, capacity);
            assert (rx);
            session->rx = rx;
            session->rx_capacity = capacity;
        }
        memcpy (session->rx + session->rx_size, data, size);
    }
    session->rx_size += size;
    if (lws_is_final_fragment (wsi) && lws_remaining_packet_payload (wsi) == 0) {
        session->rx_active = false;
        s_session_message (self, session);
        session->rx_size = 0;
        //  Don't keep a large buffer around for an idle session
        if (session->rx_capacity > 16 * 1024) {
            free (session->rx);
            session->rx = NULL;
            session->rx_capacity = 0;
        }
    }
}


//  ---------------------------------------------------------------------
//  The broker side

//  Asks the broker for its figures (STATS) while someone reads /metrics:
//  at once on a scrape, then every heartbeat for a minute after the last,
//  so that the page carries answers at most a heartbeat old
static void
s_stats_ask (gw_server_t *self, int64_t now, bool scraped)
{
    if (scraped)
        self->stats_until = now + 60000;
    if (!self->welcomed || now >= self->stats_until
    || (!scraped && now - self->stats_asked < self->heartbeat_ms))
        return;
    self->stats_asked = now;
    pl_envelope_t *envelope = pl_envelope_new (PL_OP_STATS);
    s_bridge_send (self, &envelope);
}

//  The broker is gone: what it said is no longer true
static void
s_broker_lost (gw_server_t *self, gw_broker_lost_t how)
{
    if (self->welcomed)
        self->metrics->broker_lost [how]++;
    self->welcomed = false;
    self->resync = true;
    zframe_destroy (&self->broker_stats);
}

static int
s_bridge_send (gw_server_t *self, pl_envelope_t **envelope_p)
{
    int rc = pl_envelope_send (envelope_p, zsock_resolve (self->dealer));
    if (rc == 0)
        self->last_sent = zclock_mono ();
    s_bridge_drain (self);
    return rc;
}

//  To the next broker of a standby pair (nothing to do with one broker:
//  ZeroMQ reconnects to a broker that restarts on its endpoint). The
//  requests in flight went to the old one and will not be answered: they
//  get unavailable now, not at their deadline.
static void
s_bridge_move (gw_server_t *self, int64_t now)
{
    self->broker_arrived = now;
    if (pl_brokers_move (self->brokers, self->dealer) != 1)
        return;
    self->broker_endpoint = pl_brokers_current (self->brokers);
    zsys_warning ("gateway %s: moving to the broker at %s", self->name, self->broker_endpoint);
    s_pending_expire (self, INT64_MAX, false);
    self->last_hello = 0;
}

static void
s_bridge_hello (gw_server_t *self)
{
    pl_envelope_t *envelope = pl_envelope_new (PL_OP_HELLO);
    pl_envelope_set_kind (envelope, "gateway");
    pl_envelope_set_name (envelope, self->name);
    pl_envelope_set_instance (envelope, self->instance);
    pl_envelope_set_heartbeat (envelope, self->heartbeat_ms);
    if (s_bridge_send (self, &envelope) == 0)
        self->last_hello = zclock_mono ();
}

static void
s_bridge_reply (gw_server_t *self, pl_envelope_t *envelope)
{
    if (gw_files_reply (self->files, envelope))
        return;                 //  an upload's or a download's
    uint64_t rid = pl_envelope_rid (envelope);
    gw_pending_t *pending = (gw_pending_t *) zhashx_lookup (self->pending, &rid);
    if (!pending) {
        zsys_debug ("gateway: reply to request %" PRIu64 " came after it was answered or "
                    "its session closed; dropped", rid);
        return;
    }
    gw_session_t *session = pending->session;
    const char *code = pl_envelope_code (envelope);
    const char *bind = pl_envelope_bind (envelope);
    if (!code && bind && *bind)
        s_session_set_user (self, session, bind);
    else
    if (!code && pl_envelope_unbind (envelope))
        s_session_set_user (self, session, NULL);
    uint8_t *buffer = NULL;
    size_t size = 0;
    if (code) {
        //  An error may carry more fields (retry_after_ms) in its body
        const char *message = pl_envelope_message (envelope);
        zframe_t *body = pl_envelope_body (envelope);
        //  rate_limited and unavailable say when to try again, whoever sent them
        buffer = pl_transcode_error_retry (pending->cid, pending->cid_size, code,
                                           message? message: code,
                                           pl_envelope_outcome (envelope),
                                           body? zframe_data (body): NULL,
                                           body? zframe_size (body): 0,
                                           s_code_retries (code)? GW_RETRY_AFTER_MS: 0,
                                           LWS_PRE, &size);
    }
    else {
        zframe_t *body = pl_envelope_body (envelope);
        buffer = pl_transcode_frame ("ok", pending->cid, pending->cid_size,
                                     body? zframe_data (body): NULL,
                                     body? zframe_size (body): 0, LWS_PRE, &size);
    }
    s_count (self, pending->type, buffer? (code? code: "ok"): "internal", pending->started);
    if (buffer)
        s_session_push_buffer (session, buffer, size, true);
    else {
        zsys_error ("gateway: reply to request %" PRIu64 " of session %016" PRIx64
                    " has a body that is not a msgpack map; answering internal", rid, session->sid);
        s_session_send_error (session, pending->cid, pending->cid_size, "internal",
                              "The server sent a reply the gateway could not read.");
    }
    s_pending_destroy (self, &pending);
}

static void
s_bridge_deliver (gw_server_t *self, pl_envelope_t *envelope)
{
    zframe_t *body = pl_envelope_body (envelope);
    size_t count = 0;
    const uint64_t *sids = pl_envelope_sids (envelope, &count);
    if (!body) {
        zsys_warning ("gateway: broker delivered an event without a body to %zu sessions; "
                      "dropped", count);
        return;
    }
    size_t size = 0;
    uint8_t *buffer = pl_transcode_frame (NULL, NULL, 0, zframe_data (body), zframe_size (body),
                                          LWS_PRE, &size);
    if (!buffer) {
        zsys_warning ("gateway: broker delivered an event that is not a msgpack map to %zu "
                      "sessions; dropped", count);
        return;
    }
    gw_frame_t *frame = s_frame_new (buffer, size);
    size_t queued = 0;
    for (size_t index = 0; index < count; index++) {
        gw_session_t *session = (gw_session_t *) zhashx_lookup (self->sessions, &sids [index]);
        if (session && s_session_push (session, frame, true))
            queued++;
    }
    self->metrics->events++;
    self->metrics->deliveries += queued;
    s_frame_unref (&frame);
}

static void
s_bridge_welcome (gw_server_t *self, pl_envelope_t *envelope)
{
    uint32_t heartbeat = pl_envelope_heartbeat (envelope);
    self->broker_heartbeat_ms = heartbeat? heartbeat: self->heartbeat_ms;
    if (self->welcomed)
        return;                 //  a second WELCOME to a repeated HELLO
    self->welcomed = true;
    self->metrics->broker_welcomes++;
    zsys_info ("gateway %s: welcomed by the broker at %s (heartbeat %u ms)",
               self->name, self->broker_endpoint, self->broker_heartbeat_ms);
    if (self->resync) {
        self->resync = false;
        size_t count = zhashx_size (self->sessions);
        if (count)
            zsys_info ("gateway %s: announcing %zu live sessions to the broker",
                       self->name, count);
        //  Collect first: announcing sends, and sending drains, which may
        //  close sessions and change the table under an iteration.
        zlistx_t *sessions = zhashx_values (self->sessions);
        gw_session_t *session = (gw_session_t *) zlistx_first (sessions);
        while (session) {
            if (session->live)
                s_session_announce (self, session);
            session = (gw_session_t *) zlistx_next (sessions);
        }
        zlistx_destroy (&sessions);
    }
}

static void
s_bridge_handle (gw_server_t *self, pl_envelope_t *envelope)
{
    switch (pl_envelope_op (envelope)) {
        case PL_OP_WELCOME:
            s_bridge_welcome (self, envelope);
            break;
        case PL_OP_REFUSE:
            zsys_error ("gateway %s: the broker refused our hello: %s (%s); trying again",
                        self->name,
                        pl_envelope_message (envelope)? pl_envelope_message (envelope): "",
                        pl_envelope_code (envelope)? pl_envelope_code (envelope): "no code");
            self->welcomed = false;
            break;
        case PL_OP_WHO:
            zsys_warning ("gateway %s: the broker does not know us (did it restart?); "
                          "saying hello again", self->name);
            s_broker_lost (self, GW_BROKER_FORGOT);
            s_bridge_hello (self);
            break;
        case PL_OP_HEARTBEAT:
            break;
        case PL_OP_STATS:
            zframe_destroy (&self->broker_stats);
            if (pl_envelope_body (envelope))
                self->broker_stats = zframe_dup (pl_envelope_body (envelope));
            break;
        case PL_OP_REPLY:
            s_bridge_reply (self, envelope);
            break;
        case PL_OP_DELIVER:
            s_bridge_deliver (self, envelope);
            break;
        case PL_OP_SESSION_CLOSE: {
            //  Unbound (logout, here or elsewhere): forget the user, so a
            //  re-announce after a broker restart does not bind it again
            uint64_t sid = pl_envelope_sid (envelope);
            gw_session_t *session = (gw_session_t *) zhashx_lookup (self->sessions, &sid);
            if (session)
                s_session_set_user (self, session, NULL);
            zsys_debug ("gateway %s: the broker unbound session %016" PRIx64, self->name, sid);
            break;
        }
        default:
            zsys_debug ("gateway %s: ignored a '%s' from the broker",
                        self->name, pl_op_name (pl_envelope_op (envelope)));
            break;
    }
}

//  Reads every message the DEALER has. Nested calls (a handler that sends
//  drains too) return at once: the outer loop checks ZMQ_EVENTS again.
static void
s_bridge_drain (gw_server_t *self)
{
    if (self->draining || !self->dealer)
        return;
    self->draining = true;
    while (zsock_events (self->dealer) & ZMQ_POLLIN) {
        pl_envelope_t *envelope = pl_envelope_recv (zsock_resolve (self->dealer));
        if (!envelope)
            continue;           //  malformed, consumed and dropped
        self->last_heard = zclock_mono ();
        s_bridge_handle (self, envelope);
        pl_envelope_destroy (&envelope);
    }
    self->draining = false;
}

//  ---------------------------------------------------------------------
//  The graceful stop and SIGHUP

//  Moves the graceful stop along: once nothing is in flight (or its time
//  is up, when what is left is answered unavailable) every session is
//  closed with 1001; once they are gone (or the bound has come) the loop
//  ends.
static void
s_stop_step (gw_server_t *self, int64_t now)
{
    //  Uploads and downloads running are requests in flight too
    if (self->phase == GW_DRAINING
    && ((zhashx_size (self->pending) == 0 && gw_files_running (self->files) == 0)
        || now >= self->drain_deadline)) {
        s_pending_expire (self, now, true);
        self->phase = GW_CLOSING;
        zsys_info ("gateway %s: stopping: closing %zu sessions (1001)", self->name,
                   zhashx_size (self->sessions));
        //  Collected first: closing may end a session under an iteration
        zlistx_t *sessions = zhashx_values (self->sessions);
        gw_session_t *session = (gw_session_t *) zlistx_first (sessions);
        while (session) {
            s_session_close_with (session, LWS_CLOSE_STATUS_GOINGAWAY, "server stopping", false);
            session = (gw_session_t *) zlistx_next (sessions);
        }
        zlistx_destroy (&sessions);
    }
    if (self->phase == GW_CLOSING
    && (zhashx_size (self->sessions) == 0 || now >= self->stop_deadline)) {
        self->finished = true;
        ev_break (self->loop, EVBREAK_ALL);
    }
}

static void
s_stop_begin (gw_server_t *self)
{
    int64_t now = zclock_mono ();
    self->phase = GW_DRAINING;
    //  Three quarters of the bound for replies, the rest for closing
    self->drain_deadline = now + self->stop_timeout_ms * 3 / 4;
    self->stop_deadline = now + self->stop_timeout_ms;
    zsys_info ("gateway %s: stopping within %u ms: refusing new connections and requests, "
               "answering %zu in flight", self->name, self->stop_timeout_ms,
               zhashx_size (self->pending));
    s_stop_step (self, now);
}

//  Loads cert and key into ctx; 0, or -1 with the reason in error
static int
s_tls_load (SSL_CTX *ctx, const char *cert, const char *key, char *error, size_t size)
{
    const char *unreadable = access (cert, R_OK)? cert: access (key, R_OK)? key: NULL;
    if (unreadable) {
        snprintf (error, size, "cannot read %s: %s", unreadable, strerror (errno));
        return -1;
    }
    ERR_clear_error ();
    const char *failed =
        SSL_CTX_use_certificate_chain_file (ctx, cert) != 1? cert:
        SSL_CTX_use_PrivateKey_file (ctx, key, SSL_FILETYPE_PEM) != 1? key:
        SSL_CTX_check_private_key (ctx) != 1? key: NULL;
    if (!failed)
        return 0;
    char reason [256];
    ERR_error_string_n (ERR_peek_last_error (), reason, sizeof reason);
    snprintf (error, size, "cannot use %s%s: %s", failed,
              failed == key? " (with the certificate)": "", reason);
    return -1;
}

//  The serial number of ctx's certificate in hex, for the log
static void
s_tls_serial (SSL_CTX *ctx, char *serial, size_t size)
{
    X509 *certificate = SSL_CTX_get0_certificate (ctx);
    BIGNUM *number = certificate?
        ASN1_INTEGER_to_BN (X509_get0_serialNumber (certificate), NULL): NULL;
    char *hex = number? BN_bn2hex (number): NULL;
    snprintf (serial, size, "%s", hex? hex: "?");
    OPENSSL_free (hex);
    BN_free (number);
}

//  SIGHUP: new connections get the certificate and key the files hold now.
//  They are read into a context of their own first, then put in the
//  vhost's at once (SSL_CTX_use_cert_and_key), so a bad pair or a file
//  half written changes nothing. Open connections keep what they began with.
static void
s_tls_reload (gw_server_t *self)
{
    if (!self->tls_ctx) {
        zsys_info ("gateway: SIGHUP: no certificate to reload (plain HTTP)");
        return;
    }
    char error [512] = "out of memory";
    SSL_CTX *probe = SSL_CTX_new (TLS_server_method ());
    STACK_OF (X509) *chain = NULL;
    if (!probe || s_tls_load (probe, self->tls_cert, self->tls_key, error, sizeof error)
    ||  !SSL_CTX_get0_chain_certs (probe, &chain)
    ||  SSL_CTX_use_cert_and_key (self->tls_ctx, SSL_CTX_get0_certificate (probe),
                                  SSL_CTX_get0_privatekey (probe), chain, 1) != 1) {
        zsys_error ("gateway: SIGHUP: %s; new connections keep the certificate they had",
                    error);
        SSL_CTX_free (probe);
        return;
    }
    SSL_CTX_free (probe);
    char serial [128];
    s_tls_serial (self->tls_ctx, serial, sizeof serial);
    zsys_info ("gateway: SIGHUP: new connections get %s (serial %s)", self->tls_cert, serial);
}

//  lws_cancel_service woke us: a signal, or gw_server_stop from elsewhere
static void
s_signalled (gw_server_t *self)
{
    if (atomic_exchange (&self->reload, false))
        s_tls_reload (self);
    int requests = atomic_load (&self->stop_requests);
    if (requests > 1) {
        self->finished = true;
        ev_break (self->loop, EVBREAK_ALL);
    }
    else
    if (requests == 1 && self->phase == GW_SERVING)
        s_stop_begin (self);
}

static void
s_tick (lws_sorted_usec_list_t *sul)
{
    gw_server_t *self = lws_container_of (sul, gw_server_t, tick);
    int64_t now = zclock_mono ();
    if (self->welcomed && now - self->last_heard > 3 * (int64_t) self->broker_heartbeat_ms) {
        zsys_warning ("gateway %s: the broker has been silent for %" PRId64 " ms; taking it "
                      "for dead and saying hello again", self->name, now - self->last_heard);
        s_broker_lost (self, GW_BROKER_SILENT);
        self->last_hello = 0;
        s_bridge_move (self, now);
    }
    if (!self->welcomed) {
        //  Not welcomed here in as long: a passive broker ignores us
        if (now - self->broker_arrived > 3 * (int64_t) self->broker_heartbeat_ms
        &&  now - self->last_heard > 3 * (int64_t) self->broker_heartbeat_ms)
            s_bridge_move (self, now);
        if (now - self->last_hello >= self->heartbeat_ms)
            s_bridge_hello (self);
    }
    else
    if (now - self->last_sent >= self->heartbeat_ms) {
        pl_envelope_t *envelope = pl_envelope_new (PL_OP_HEARTBEAT);
        s_bridge_send (self, &envelope);
    }
    s_pending_expire (self, now, false);
    gw_files_tick (self->files, now);
    s_sessions_expire (self, now);
    s_stats_ask (self, now, false);
    s_bridge_drain (self);
    if (self->phase != GW_SERVING)
        s_stop_step (self, now);
    lws_sul_schedule (self->context, 0, &self->tick, s_tick, self->tick_ms * LWS_US_PER_MS);
}


//  ---------------------------------------------------------------------
//  Admission: every client connection is counted from accept to close

//  FILTER_NETWORK_CONNECTION, on the listening socket: lws has accepted fd
//  and has no wsi for it yet. Returns 0 to serve it, 1 (after answering
//  503 or 429 straight on the socket) to have lws close it.
static int
s_accept_filter (gw_server_t *self, int fd)
{
    //  One admitted but never adopted: lws failed and closed it
    gw_limits_release (self->limits, &self->admitted);
    bool tls = self->tls_ctx != NULL;
    if (self->phase != GW_SERVING) {
        s_refuse_raw (fd, tls? NULL: s_response_stopping, sizeof s_response_stopping - 1);
        self->metrics->refused [GW_REFUSED_STOPPING]++;
        return 1;
    }
    char address [INET6_ADDRSTRLEN + 8];
    s_fd_address (fd, address, sizeof address);
    gw_admit_t verdict;
    gw_limits_conn_t *conn = gw_limits_admit (self->limits, address, &verdict);
    if (conn) {
        self->admitted = conn;
        self->admitted_fd = fd;
        self->metrics->connections++;
        return 0;
    }
    self->metrics->refused [verdict == GW_ADMIT_FULL? GW_REFUSED_CAP: GW_REFUSED_ADDRESS]++;
    size_t skipped = 0;
    if (verdict == GW_ADMIT_FULL) {
        s_refuse_raw (fd, tls? NULL: s_response_full, sizeof s_response_full - 1);
        if (s_throttle (&self->refused_full, &skipped))
            zsys_warning ("gateway: %zu connections open, the most allowed "
                          "(--max-connections); refused one from %s with 503 "
                          "(and %zu more since the last report)",
                          gw_limits_connections (self->limits), address, skipped);
    }
    else {
        s_refuse_raw (fd, tls? NULL: s_response_address, sizeof s_response_address - 1);
        if (s_throttle (&self->refused_address, &skipped))
            zsys_warning ("gateway: %s has %zu connections open, the most allowed "
                          "(--max-per-address); refused one more with 429 "
                          "(and %zu more since the last report)", address,
                          gw_limits_address_connections (self->limits, address), skipped);
    }
    return 1;
}

//  SERVER_NEW_CLIENT_INSTANTIATED: the wsi of the connection just admitted
static void
s_accept_adopted (gw_server_t *self, struct lws *wsi)
{
    if (self->admitted && lws_get_socket_fd (wsi) == self->admitted_fd) {
        lws_set_opaque_user_data (wsi, self->admitted);
        self->admitted = NULL;
    }
}

//  WSI_DESTROY, for every wsi: uncounts a client connection
static void
s_accept_released (gw_server_t *self, struct lws *wsi)
{
    gw_limits_conn_t *conn = (gw_limits_conn_t *) lws_get_opaque_user_data (wsi);
    if (conn) {
        lws_set_opaque_user_data (wsi, NULL);
        gw_limits_release (self->limits, &conn);
    }
}

//  FILTER_PROTOCOL_CONNECTION: may this upgrade become a session? Returns 0
//  if so, -1 after answering with an HTTP error.
static int
s_upgrade_filter (gw_server_t *self, struct lws *wsi)
{
    char uri [128];
    int length = lws_hdr_copy (wsi, uri, sizeof (uri), WSI_TOKEN_GET_URI);
    char file [GW_WEB_FILE_MAX];
    const char *content_type;
    char peer [64];
    s_peer_address (wsi, peer, sizeof (peer));
    if (length <= 0 || gw_web_route (uri, (size_t) length, file, &content_type) != GW_WEB_SOCKET) {
        zsys_info ("gateway: refused a WebSocket upgrade on '%s' from %s "
                   "(only /ws serves the protocol)", length > 0? uri: "?", peer);
        lws_return_http_status (wsi, HTTP_STATUS_NOT_FOUND,
                                "WebSocket connections are served on /ws only.");
        return -1;
    }
    gw_limits_conn_t *conn = (gw_limits_conn_t *) lws_get_opaque_user_data (wsi);
    if (gw_limits_health_only (conn) || self->phase != GW_SERVING) {
        self->metrics->refused [self->phase != GW_SERVING? GW_REFUSED_STOPPING:
                                GW_REFUSED_CAP]++;
        lws_return_http_status (wsi, HTTP_STATUS_SERVICE_UNAVAILABLE,
                                self->phase != GW_SERVING?
                                "The server is stopping; try again in a moment.":
                                "The server is full; try again later.");
        return -1;
    }
    if (!gw_limits_session_allowed (self->limits, conn)) {
        self->metrics->refused [GW_REFUSED_UNAUTHENTICATED]++;
        size_t skipped = 0;
        if (s_throttle (&self->refused_address, &skipped))
            zsys_warning ("gateway: %s has too many sessions not signed in "
                          "(--max-unauthenticated-per-address); refused one more with 429 "
                          "(and %zu more since the last report)", peer, skipped);
        lws_return_http_status (wsi, 429, "Too many connections from your address are "
                                "not signed in; sign in on one of them first.");
        return -1;
    }
    return 0;
}


//  ---------------------------------------------------------------------
//  HTTP: /healthz and the web UI's files (gw_web says which)

static int
s_http_healthz (gw_server_t *self, struct lws *wsi, gw_http_t *http)
{
    uint8_t buffer [LWS_PRE + 512];
    uint8_t *start = buffer + LWS_PRE, *cursor = start;
    uint8_t *end = buffer + sizeof (buffer) - 1;
    http->healthy = self->welcomed && self->phase == GW_SERVING;
    const char *body = http->healthy? "ok": "unavailable";
    if (lws_add_http_common_headers (wsi, http->healthy? HTTP_STATUS_OK:
                                     HTTP_STATUS_SERVICE_UNAVAILABLE,
                                     "text/plain", strlen (body), &cursor, end)
    ||  lws_add_http_header_by_token (wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                      (const unsigned char *) "no-store", 8,
                                      &cursor, end)
    ||  lws_finalize_write_http_header (wsi, start, &cursor, end))
        return 1;
    lws_callback_on_writable (wsi);
    return 0;
}

//  The figures only the loop knows at this moment: a walk over the
//  sessions, which costs nothing until someone asks
static void
s_metrics_gauges (gw_server_t *self, gw_metrics_gauges_t *gauges)
{
    memset (gauges, 0, sizeof *gauges);
    gauges->connections = gw_limits_connections (self->limits);
    gauges->sessions = zhashx_size (self->sessions);
    gauges->in_flight = zhashx_size (self->pending);
    gauges->broker_up = self->welcomed;
    gauges->stopping = self->phase != GW_SERVING;
    for (gw_session_t *session = (gw_session_t *) zhashx_first (self->sessions);
         session; session = (gw_session_t *) zhashx_next (self->sessions)) {
        gauges->authenticated += session->user != NULL;
        gauges->queued_frames += session->queue_count;
        gauges->queued_bytes += session->queue_bytes;
        if (session->queue_count > gauges->queued_frames_max)
            gauges->queued_frames_max = session->queue_count;
    }
}

//  /metrics, to the addresses --metrics allows: the page is made now and
//  written at the next HTTP_WRITEABLE
static int
s_http_metrics (gw_server_t *self, struct lws *wsi, gw_http_t *http)
{
    char peer [64];
    s_peer_address (wsi, peer, sizeof peer);
    if (!gw_metrics_allowed (self->metrics_policy, peer)) {
        lws_return_http_status (wsi, HTTP_STATUS_FORBIDDEN,
                                "The metrics are not served to your address (--metrics).");
        return -1;
    }
    gw_metrics_gauges_t gauges;
    s_metrics_gauges (self, &gauges);
    free (http->page);
    zframe_t *broker = self->broker_stats;
    http->page = gw_metrics_render (self->metrics, &gauges,
                                    broker? (const char *) zframe_data (broker): NULL,
                                    broker? zframe_size (broker): 0,
                                    LWS_PRE, &http->page_size);
    s_stats_ask (self, zclock_mono (), true);
    if (!http->page)
        return -1;
    uint8_t buffer [LWS_PRE + 512];
    uint8_t *start = buffer + LWS_PRE, *cursor = start;
    uint8_t *end = buffer + sizeof (buffer) - 1;
    if (lws_add_http_common_headers (wsi, HTTP_STATUS_OK,
                                     "text/plain; version=0.0.4; charset=utf-8",
                                     http->page_size, &cursor, end)
    ||  lws_add_http_header_by_token (wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                      (const unsigned char *) "no-store", 8,
                                      &cursor, end)
    ||  lws_finalize_write_http_header (wsi, start, &cursor, end))
        return 1;
    lws_callback_on_writable (wsi);
    return 0;
}

//  HTTP_WRITEABLE: the body of /healthz or /metrics, whole (lws keeps
//  what the socket does not take and sends it before anything else)
static int
s_http_body (struct lws *wsi, gw_http_t *http)
{
    uint8_t small [LWS_PRE + 32];
    uint8_t *body = small + LWS_PRE;
    size_t size = 0;
    if (http->page) {
        body = (uint8_t *) http->page + LWS_PRE;
        size = http->page_size;
    }
    else {
        const char *text = http->healthy? "ok": "unavailable";
        size = strlen (text);
        memcpy (body, text, size);
    }
    int written = lws_write (wsi, body, size, LWS_WRITE_HTTP_FINAL);
    free (http->page);
    http->page = NULL;
    if (written < (int) size)
        return 1;
    if (lws_http_transaction_completed (wsi))
        return -1;
    return 0;
}

//  POST /files, GET /files/<id>: gw_files serves them while the broker is
//  there and the gateway is not stopping
static int
s_http_files (gw_server_t *self, struct lws *wsi, gw_http_t *http)
{
    const char *refusal =
        gw_limits_health_only ((gw_limits_conn_t *) lws_get_opaque_user_data (wsi))?
            "The server is full; try again later.":
        self->phase != GW_SERVING? "The server is stopping; try again in a moment.":
        !self->welcomed? "The server is not ready yet; try again in a moment.": NULL;
    return gw_files_request (self->files, wsi, &http->files, refusal);
}

//  Sends a request of gw_files to the broker
static int
s_files_send (void *arg, pl_envelope_t **envelope_p)
{
    return s_bridge_send ((gw_server_t *) arg, envelope_p);
}

//  The path of an HTTP request of any method, for the files' dispatch
static bool
s_http_is_files (struct lws *wsi)
{
    static const enum lws_token_indexes methods [] = {
        WSI_TOKEN_GET_URI, WSI_TOKEN_POST_URI, WSI_TOKEN_HEAD_URI, WSI_TOKEN_PUT_URI,
        WSI_TOKEN_DELETE_URI, WSI_TOKEN_PATCH_URI, WSI_TOKEN_OPTIONS_URI
    };
    char path [256];
    for (size_t index = 0; index < sizeof methods / sizeof methods [0]; index++) {
        int length = lws_hdr_copy (wsi, path, sizeof path, methods [index]);
        if (length > 0)
            return gw_filehdr_files_path (path, (size_t) length);
    }
    return false;
}

//  Serves a file of the UI, or answers an error and closes
static int
s_http_request (gw_server_t *self, struct lws *wsi, gw_http_t *http)
{
    char uri [256];
    int length = lws_hdr_copy (wsi, uri, sizeof (uri), WSI_TOKEN_GET_URI);
    if (length <= 0)
        length = lws_hdr_copy (wsi, uri, sizeof (uri), WSI_TOKEN_HEAD_URI);
    if (length <= 0) {
        lws_return_http_status (wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, "Only GET is served.");
        return -1;
    }
    char file [GW_WEB_FILE_MAX];
    const char *content_type = NULL;
    gw_web_route_t route = gw_web_route (uri, (size_t) length, file, &content_type);
    if (route == GW_WEB_HEALTHZ)
        return s_http_healthz (self, wsi, http);
    if (gw_limits_health_only ((gw_limits_conn_t *) lws_get_opaque_user_data (wsi))) {
        lws_return_http_status (wsi, HTTP_STATUS_SERVICE_UNAVAILABLE,
                                "The server is full; try again later.");
        return -1;
    }
    if (route == GW_WEB_METRICS)
        return s_http_metrics (self, wsi, http);
    if (route == GW_WEB_FILE) {
        char *path = zsys_sprintf ("%s/%s", self->web_root, file);
        struct stat status;
        if (path && stat (path, &status) == 0 && S_ISREG (status.st_mode)) {
            int rc = lws_serve_http_file (wsi, path, content_type, NULL, 0);
            zstr_free (&path);
            if (rc < 0)
                return -1;
            if (rc == 0)
                return 0;       //  lws sends the rest of the file
            return lws_http_transaction_completed (wsi)? -1: 0;
        }
        zstr_free (&path);
    }
    lws_return_http_status (wsi, HTTP_STATUS_NOT_FOUND, NULL);
    return -1;
}


//  ---------------------------------------------------------------------
//  Protocol callbacks

static int
s_chat_callback (struct lws *wsi, enum lws_callback_reasons reason,
                 void *user, void *in, size_t len)
{
    gw_server_t *self = (gw_server_t *) lws_context_user (lws_get_context (wsi));
    gw_session_t *session = (gw_session_t *) user;
    switch (reason) {
        //  protocols [0] sees every connection's birth and death
        case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
            return self? s_accept_filter (self, (int) (intptr_t) in): 0;
        case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
            if (self)
                s_accept_adopted (self, wsi);
            return 0;
        case LWS_CALLBACK_WSI_DESTROY:
            if (self)
                s_accept_released (self, wsi);
            return 0;
        case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
            return s_upgrade_filter (self, wsi);
        case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS:
            //  The vhost's TLS context, where SIGHUP puts a new certificate
            if (self)
                self->tls_ctx = (SSL_CTX *) user;
            return 0;
        case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
            //  lws answers a close with its own status, and passes as valid
            //  every status from 3000 up; RFC 6455 7.4 ends at 4999. The
            //  payload is echoed from this buffer: say 1002 instead.
            if (len >= 2 && ((((uint8_t *) in) [0] << 8) | ((uint8_t *) in) [1]) >= 5000) {
                ((uint8_t *) in) [0] = (uint8_t) (LWS_CLOSE_STATUS_PROTOCOL_ERR >> 8);
                ((uint8_t *) in) [1] = (uint8_t) LWS_CLOSE_STATUS_PROTOCOL_ERR;
            }
            return 0;
        case LWS_CALLBACK_ESTABLISHED:
            s_session_open (self, session, wsi);
            return 0;
        case LWS_CALLBACK_RECEIVE:
            s_session_receive (self, session, (const uint8_t *) in, len);
            return 0;
        case LWS_CALLBACK_SERVER_WRITEABLE:
            return s_session_write (session);
        case LWS_CALLBACK_CLOSED:
            s_session_close (self, session);
            return 0;
        default:
            return lws_callback_http_dummy (wsi, reason, user, in, len);
    }
}

static int
s_http_callback (struct lws *wsi, enum lws_callback_reasons reason,
                 void *user, void *in, size_t len)
{
    gw_server_t *self = (gw_server_t *) lws_context_user (lws_get_context (wsi));
    gw_http_t *http = (gw_http_t *) user;
    switch (reason) {
        case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
            return -1;          //  not a WebSocket protocol
        case LWS_CALLBACK_HTTP:
            if (s_http_is_files (wsi))
                return s_http_files (self, wsi, http);
            return s_http_request (self, wsi, http);
        case LWS_CALLBACK_HTTP_BODY:
        case LWS_CALLBACK_HTTP_BODY_COMPLETION:
            return http && http->files?
                gw_files_callback (self->files, wsi, &http->files, reason, in, len): 0;
        case LWS_CALLBACK_HTTP_WRITEABLE:
            if (http && http->files)
                return gw_files_callback (self->files, wsi, &http->files, reason, in, len);
            return s_http_body (wsi, http);
        case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        case LWS_CALLBACK_CLOSED_HTTP:
            if (http && http->files)
                gw_files_callback (self->files, wsi, &http->files, reason, in, len);
            if (http) {
                free (http->page);
                http->page = NULL;
            }
            return lws_callback_http_dummy (wsi, reason, user, in, len);
        default:
            return lws_callback_http_dummy (wsi, reason, user, in, len);
    }
}

static int
s_bridge_callback (struct lws *wsi, enum lws_callback_reasons reason,
                   void *user, void *in, size_t len)
{
    gw_server_t *self = (gw_server_t *) lws_context_user (lws_get_context (wsi));
    switch (reason) {
        case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
            return -1;          //  not a WebSocket protocol
        case LWS_CALLBACK_RAW_RX_FILE:
            s_bridge_drain (self);
            return 0;
        case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
            //  lws_cancel_service, from any thread or a signal handler:
            //  only this thread may act on it
            if (self)
                s_signalled (self);
            return 0;
        case LWS_CALLBACK_RAW_CLOSE_FILE:
            if (wsi == self->bridge)
                self->bridge = NULL;
            return 0;
        default:
            return 0;
    }
}


//  ---------------------------------------------------------------------
//  Signals

static void
s_signal_handler (int signum)
{
    gw_server_t *server = s_running;
    if (!server)
        return;
    if (signum == SIGHUP) {
        atomic_store (&server->reload, true);
        lws_cancel_service (server->context);
    }
    else
        gw_server_stop (server);
}


//  ---------------------------------------------------------------------
//  The descriptors

//  Descriptors the process has open now (0 if it cannot tell)
static size_t
s_open_descriptors (void)
{
    DIR *folder = opendir ("/proc/self/fd");
    if (!folder)
        return 0;
    size_t count = 0;
    struct dirent *entry;
    while ((entry = readdir (folder)))
        if (entry->d_name [0] != '.')
            count++;
    closedir (folder);
    return count > 0? count - 1: 0;     //  less the folder's own
}

//  The global cap: the descriptor limit less what the process holds now
//  (the broker link, in parley the plugins' and stores' files) and a
//  reserve for what it opens later (files served, reconnects, /healthz past
//  the cap). A configured cap above that is lowered to it: past it lws
//  would spin on accept errors instead of answering 503.
static void
s_limits_new (gw_server_t *self, const gw_config_t *config)
{
    struct rlimit limit;
    size_t descriptors = 1024 * 1024;
    if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
    &&  limit.rlim_cur < descriptors)
        descriptors = (size_t) limit.rlim_cur;
    size_t held = s_open_descriptors () + GW_FD_RESERVE + GW_LIMITS_HEALTH_SLOTS;
    size_t most = descriptors > held + 16? descriptors - held: 16;
    size_t max_connections = config->max_connections? config->max_connections: most;
    if (max_connections > most) {
        zsys_warning ("gateway: --max-connections %zu is more than the descriptor limit "
                      "(%zu) allows; using %zu", max_connections, descriptors, most);
        max_connections = most;
    }
    size_t per_address = config->max_per_address? config->max_per_address:
                         GW_MAX_PER_ADDRESS_DEFAULT;
    size_t unauthenticated = config->max_unauthenticated? config->max_unauthenticated:
                             GW_MAX_UNAUTH_DEFAULT;
    self->limits = gw_limits_new (max_connections, per_address, unauthenticated);
    zsys_info ("gateway: at most %zu connections (descriptor limit %zu), %zu per address, "
               "%zu of them not signed in, each for at most %u ms", max_connections,
               descriptors, per_address, unauthenticated, self->auth_timeout_ms);
}

//  The listening socket lws made on port, found among our descriptors
static int
s_listen_fd (int port)
{
    for (int fd = 0; fd < 4096; fd++) {
        int listening = 0;
        socklen_t size = sizeof listening;
        struct sockaddr_storage address;
        socklen_t length = sizeof address;
        if (getsockopt (fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) || !listening
        ||  getsockname (fd, (struct sockaddr *) &address, &length))
            continue;
        int bound = address.ss_family == AF_INET?
                    ntohs (((struct sockaddr_in *) &address)->sin_port):
                    address.ss_family == AF_INET6?
                    ntohs (((struct sockaddr_in6 *) &address)->sin6_port): -1;
        if (bound == port)
            return fd;
    }
    return -1;
}


//  ---------------------------------------------------------------------
//  The class

int
gw_config_set_limit (gw_config_t *config, const char *name, const char *value,
                     char *error, size_t error_size)
{
    assert (config);
    char *end = NULL;
    errno = 0;
    long long number = value? strtoll (value, &end, 10): -1;
    bool valid = value && errno == 0 && end != value && *end == 0;
    if (streq (name, "auth-timeout")) {
        if (!valid || number < 100 || number > 3600000) {
            snprintf (error, error_size, "--auth-timeout wants 100 to 3600000 ms, not '%s'",
                      value? value: "");
            return -1;
        }
        config->auth_timeout_ms = (uint32_t) number;
        return 0;
    }
    size_t *target = streq (name, "max-connections")? &config->max_connections:
                     streq (name, "max-per-address")? &config->max_per_address:
                     streq (name, "max-unauthenticated-per-address")?
                         &config->max_unauthenticated: NULL;
    if (!target) {
        snprintf (error, error_size, "--%s is not a gateway limit", name);
        return -1;
    }
    if (!valid || number < 1 || number > 10000000) {
        snprintf (error, error_size, "--%s wants 1 to 10000000, not '%s'", name,
                  value? value: "");
        return -1;
    }
    *target = (size_t) number;
    return 0;
}

int
gw_config_set_ops (gw_config_t *config, const char *name, const char *value,
                   char *error, size_t error_size)
{
    assert (config);
    if (!value || !*value) {
        snprintf (error, error_size, "--%s wants a value", name);
        return -1;
    }
    if (streq (name, "tls-cert"))
        config->tls_cert = value;
    else
    if (streq (name, "tls-key"))
        config->tls_key = value;
    else
    if (streq (name, "metrics")) {
        if (!gw_metrics_policy_valid (value, error, error_size))
            return -1;
        config->metrics = value;
    }
    else
    if (streq (name, "file-chunk")) {
        char *end = NULL;
        errno = 0;
        long long number = strtoll (value, &end, 10);
        if (errno || end == value || *end || number < GW_FILE_CHUNK_MIN
        ||  number > GW_FILE_CHUNK_MAX) {
            snprintf (error, error_size, "--file-chunk wants %d to %d bytes, not '%s'",
                      GW_FILE_CHUNK_MIN, GW_FILE_CHUNK_MAX, value);
            return -1;
        }
        config->file_chunk = (size_t) number;
    }
    else
    if (streq (name, "stop-timeout")) {
        char *end = NULL;
        errno = 0;
        long long number = strtoll (value, &end, 10);
        if (errno || end == value || *end || number < 100 || number > 600000) {
            snprintf (error, error_size, "--stop-timeout wants 100 to 600000 ms, not '%s'",
                      value);
            return -1;
        }
        config->stop_timeout_ms = (uint32_t) number;
    }
    else {
        snprintf (error, error_size, "--%s is not a gateway option", name);
        return -1;
    }
    return 0;
}

int
gw_config_check (const gw_config_t *config, char *error, size_t error_size)
{
    assert (config);
    if (!gw_metrics_policy_valid (config->metrics, error, error_size))
        return -1;
    if (!config->tls_cert != !config->tls_key) {
        snprintf (error, error_size, "--tls-cert and --tls-key go together");
        return -1;
    }
    if (!config->tls_cert)
        return 0;
    snprintf (error, error_size, "out of memory");
    SSL_CTX *probe = SSL_CTX_new (TLS_server_method ());
    int rc = probe? s_tls_load (probe, config->tls_cert, config->tls_key,
                                error, error_size): -1;
    SSL_CTX_free (probe);
    return rc;
}

gw_server_t *
gw_server_new (const gw_config_t *config)
{
    assert (config);
    //  Our loop owns SIGINT and SIGTERM; czmq must not install its handler
    zsys_handler_set (NULL);

    gw_server_t *self = (gw_server_t *) zmalloc (sizeof (gw_server_t));
    if (config->listen_host && *config->listen_host)
        self->listen_host = strdup (streq (config->listen_host, "localhost")?
                                    "127.0.0.1": config->listen_host);
    self->port = config->port;
    char brokers_error [256];
    self->brokers = pl_brokers_new (config->broker_endpoint? config->broker_endpoint:
                                    "tcp://127.0.0.1:7700", brokers_error,
                                    sizeof (brokers_error));
    if (!self->brokers) {
        zsys_error ("gateway: %s", brokers_error);
        gw_server_destroy (&self);
        return NULL;
    }
    self->broker_endpoint = pl_brokers_current (self->brokers);
    self->web_root = strdup (config->web_root? config->web_root: "web");
    self->max_frame = config->max_frame? config->max_frame: GW_MAX_FRAME_DEFAULT;
    self->send_buffer = config->send_buffer;
    self->heartbeat_ms = config->heartbeat_ms? config->heartbeat_ms: GW_HEARTBEAT_DEFAULT;
    self->broker_heartbeat_ms = self->heartbeat_ms;
    self->request_timeout_ms = config->request_timeout_ms? config->request_timeout_ms:
                               GW_REQUEST_TIMEOUT_DEFAULT;
    self->auth_timeout_ms = config->auth_timeout_ms? config->auth_timeout_ms:
                            GW_AUTH_TIMEOUT_DEFAULT;
    s_limits_new (self, config);
    self->unauthenticated = zlistx_new ();
    self->listen_fd = -1;
    self->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    self->tick_ms = self->heartbeat_ms / 4;
    if (self->tick_ms < 10)
        self->tick_ms = 10;
    if (self->tick_ms > 250)
        self->tick_ms = 250;
    self->stop_timeout_ms = config->stop_timeout_ms? config->stop_timeout_ms:
                            GW_STOP_TIMEOUT_DEFAULT;
    atomic_init (&self->stop_requests, 0);
    atomic_init (&self->reload, false);
    self->metrics = gw_metrics_new ();
    assert (self->metrics);
    self->files = gw_files_new (config->file_chunk, self->request_timeout_ms,
                                s_files_send, self, self->metrics);
    char error [512];
    if (gw_config_check (config, error, sizeof error)) {
        zsys_error ("gateway: %s", error);
        gw_server_destroy (&self);
        return NULL;
    }
    if (config->tls_cert) {
        self->tls_cert = strdup (config->tls_cert);
        self->tls_key = strdup (config->tls_key);
    }
    self->metrics_policy = strdup (config->metrics? config->metrics: "local");
    assert (self->metrics_policy);

    while (self->nonce == 0)
        if (getrandom (&self->nonce, sizeof (self->nonce), 0) != sizeof (self->nonce))
            self->nonce = (uint32_t) randof (UINT32_MAX) + 1;
    snprintf (self->name, sizeof (self->name), "%08x", self->nonce);
    char *hostname = zsys_hostname ();
    snprintf (self->instance, sizeof (self->instance), "gateway-%s@%s:%d",
              self->name, hostname? hostname: "localhost", (int) getpid ());
    zstr_free (&hostname);

    self->sessions = s_u64_table_new ();
    self->pending = s_u64_table_new ();
    self->pending_fifo = zlistx_new ();

    //  The DEALER to the broker. IMMEDIATE: while there is no connection a
    //  send fails and we retry, rather than queueing stale HELLOs.
    self->dealer = zsock_new (ZMQ_DEALER);
    assert (self->dealer);
    zsock_set_sndhwm (self->dealer, GW_BROKER_HWM);
    zsock_set_rcvhwm (self->dealer, GW_BROKER_HWM);
    zsock_set_maxmsgsize (self->dealer, PL_ENVELOPE_MAX_HEADER + PL_ENVELOPE_MAX_BODY);
    zsock_set_immediate (self->dealer, 1);
    zsock_set_reconnect_ivl (self->dealer, 100);
    zsock_set_reconnect_ivl_max (self->dealer, 1000);
    zsock_set_linger (self->dealer, 0);
    pl_curve_apply (config->curve, self->dealer, self->broker_endpoint);
    if (pl_brokers_connect (self->brokers, self->dealer)) {
        zsys_error ("gateway: cannot connect to the broker at '%s': %s",
                    self->broker_endpoint, zmq_strerror (zmq_errno ()));
        gw_server_destroy (&self);
        return NULL;
    }
    self->broker_arrived = zclock_mono ();

    //  libwebsockets: errors and warnings only, in our log's style
    lws_set_log_level (LLL_ERR | LLL_WARN, s_lws_emit);

    self->protocols [0] = (struct lws_protocols) {
        .name = GW_PROTOCOL_CHAT,       //  first: a browser offering none binds here
        .callback = s_chat_callback,
        .per_session_data_size = sizeof (gw_session_t),
    };
    self->protocols [1] = (struct lws_protocols) {
        .name = GW_PROTOCOL_HTTP,
        .callback = s_http_callback,
        .per_session_data_size = sizeof (gw_http_t),
    };
    self->protocols [2] = (struct lws_protocols) {
        .name = GW_PROTOCOL_BRIDGE,
        .callback = s_bridge_callback,
    };
    //  protocols [3] stays zeroed: the terminator

    //  Every HTTP request, /healthz and the UI's files, goes to one
    //  callback, where gw_web's allow-list decides what is served
    self->mount = (struct lws_http_mount) {
        .mountpoint = "/",
        .origin = GW_PROTOCOL_HTTP,
        .origin_protocol = LWSMPRO_CALLBACK,
        .mountpoint_len = 1,
    };

    self->loop = ev_loop_new (EVFLAG_AUTO);
    if (!self->loop) {
        zsys_error ("gateway: cannot create an event loop");
        gw_server_destroy (&self);
        return NULL;
    }
    void *loops [1] = { self->loop };
    struct lws_context_creation_info info;
    memset (&info, 0, sizeof (info));
    info.foreign_loops = loops;
    info.port = self->port;
    info.iface = self->listen_host;
    info.protocols = self->protocols;
    info.mounts = &self->mount;
    info.vhost_name = "parley";
    info.server_string = "parley-gw";
    info.user = self;
    info.options = LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE
                 | LWS_SERVER_OPTION_LIBEV;
    //  lws 4.1 on a dual-stack socket ignores an IPv4 address in iface and
    //  listens on every interface: an IPv4 host gets an IPv4 socket.
    struct in_addr ipv4;
    if (self->listen_host && inet_pton (AF_INET, self->listen_host, &ipv4) == 1)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    if (self->tls_cert) {
        //  https and wss only; HTTP/1.1 only, as HTTP/2 would carry a
        //  WebSocket inside a stream, where our frames cannot go raw
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = self->tls_cert;
        info.ssl_private_key_filepath = self->tls_key;
        info.alpn = "http/1.1";
    }
    self->context = lws_create_context (&info);
    if (!self->context) {
        zsys_error ("gateway: cannot listen on %s:%d (see the libwebsockets error above)",
                    self->listen_host? self->listen_host: "*", self->port);
        gw_server_destroy (&self);
        return NULL;
    }
    self->vhost = lws_get_vhost_by_name (self->context, "parley");
    int port = self->vhost? lws_get_vhost_listen_port (self->vhost): -1;
    if (port <= 0) {
        zsys_error ("gateway: cannot listen on %s:%d",
                    self->listen_host? self->listen_host: "*", self->port);
        gw_server_destroy (&self);
        return NULL;
    }
    self->port = port;
    self->listen_fd = s_listen_fd (port);
    if (self->tls_cert && !self->tls_ctx) {
        zsys_error ("gateway: libwebsockets made no TLS context for %s", self->tls_cert);
        gw_server_destroy (&self);
        return NULL;
    }
    if (self->tls_ctx) {
        char serial [128];
        s_tls_serial (self->tls_ctx, serial, sizeof serial);
        zsys_info ("gateway: serving https and wss with %s (serial %s)", self->tls_cert, serial);
    }
    s_log_server = self;

    //  The broker's messages wake the lws loop through a dup of ZMQ_FD:
    //  lws closes what it adopted, and ZeroMQ must keep its own descriptor.
    lws_sock_file_fd_type descriptor;
    descriptor.filefd = dup (zsock_fd (self->dealer));
    if (descriptor.filefd >= 0)
        self->bridge = lws_adopt_descriptor_vhost (self->vhost, LWS_ADOPT_RAW_FILE_DESC,
                                                   descriptor, GW_PROTOCOL_BRIDGE, NULL);
    if (!self->bridge) {
        zsys_error ("gateway: cannot watch the broker socket in the event loop");
        if (descriptor.filefd >= 0)
            close (descriptor.filefd);
        gw_server_destroy (&self);
        return NULL;
    }
    lws_sul_schedule (self->context, 0, &self->tick, s_tick, 1);
    return self;
}

void
gw_server_destroy (gw_server_t **self_p)
{
    assert (self_p);
    gw_server_t *self = *self_p;
    if (!self)
        return;
    if (self->context) {
        lws_sul_cancel (&self->tick);
        //  Closes every session (each tells the broker) and the bridge
        lws_context_destroy (self->context);
        self->context = NULL;
    }
    if (s_log_server == self)
        s_log_server = NULL;
    //  After the context: closing its connections aborted their uploads
    gw_files_destroy (&self->files);
    if (self->loop)
        ev_loop_destroy (self->loop);
    if (self->limits)
        gw_limits_release (self->limits, &self->admitted);
    gw_limits_destroy (&self->limits);
    zlistx_destroy (&self->unauthenticated);
    if (self->spare_fd >= 0)
        close (self->spare_fd);
    zsock_destroy (&self->dealer);
    //  Sessions removed their pending requests as they closed
    gw_pending_t *pending;
    while (self->pending_fifo && (pending = (gw_pending_t *) zlistx_first (self->pending_fifo))) {
        zlistx_delete (self->pending_fifo, pending->fifo_handle);
        free (pending->cid);
        free (pending);
    }
    zlistx_destroy (&self->pending_fifo);
    zhashx_destroy (&self->pending);
    zhashx_destroy (&self->sessions);
    free (self->listen_host);
    pl_brokers_destroy (&self->brokers);
    free (self->web_root);
    free (self->tls_cert);
    free (self->tls_key);
    free (self->metrics_policy);
    zframe_destroy (&self->broker_stats);
    gw_metrics_destroy (&self->metrics);
    free (self);
    *self_p = NULL;
}

int
gw_server_port (gw_server_t *self)
{
    assert (self);
    return self->port;
}

bool
gw_server_tls (gw_server_t *self)
{
    assert (self);
    return self->tls_ctx != NULL;
}

int
gw_server_run (gw_server_t *self)
{
    assert (self);
    struct sigaction action, old_int, old_term, old_hup;
    memset (&action, 0, sizeof (action));
    action.sa_handler = s_signal_handler;
    sigemptyset (&action.sa_mask);
    s_running = self;
    sigaction (SIGINT, &action, &old_int);
    sigaction (SIGTERM, &action, &old_term);
    sigaction (SIGHUP, &action, &old_hup);

    while (!self->finished)
        ev_run (self->loop, 0);

    sigaction (SIGINT, &old_int, NULL);
    sigaction (SIGTERM, &old_term, NULL);
    sigaction (SIGHUP, &old_hup, NULL);
    s_running = NULL;
    zsys_info ("gateway %s: stopped (%zu sessions open, %zu requests in flight)", self->name,
               zhashx_size (self->sessions), zhashx_size (self->pending));
    return 0;
}

void
gw_server_stop (gw_server_t *self)
{
    assert (self);
    atomic_fetch_add (&self->stop_requests, 1);
    if (self->context)
        lws_cancel_service (self->context);
}
