/*  =========================================================================
    parley-bench - a load generator for Parley's client protocol

    Thousands of WebSocket connections from one process: one epoll loop,
    non-blocking sockets, its own minimal RFC 6455 client framing (masked text
    frames out, whole unmasked frames in) and a scanner that reads only the
    top-level fields it needs from each reply. Every reply is checked and every
    error counted: a fast wrong answer is not a result.

    Scenarios (several may be named in one run; see --help):
      baseline  the same fan-out from a built-in server that only writes ready
                frames to N loopback sockets: what this machine's kernel allows
      fanout    one room of N members, S of them sending R messages a second
      connect   a storm of N connections that register, then N that resume
    =========================================================================
*/

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS        19000      //  the process may hold 20,000 descriptors
#define SEND_ID_BASE     1000000    //  msg.send ids: SEND_ID_BASE + message index
#define TOKEN_MAX        64
#define ERROR_KINDS      16
#define WS_KEY           "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="     //  RFC 6455's example pair
#define PASSWORD         "bench-password"
#define streq(a, b)      (strcmp ((a), (b)) == 0)

typedef enum {
    CONN_FREE,                      //  no socket
    CONN_CONNECTING,                //  connect () in progress
    CONN_HANDSHAKE,                 //  upgrade request sent, waiting for 101
    CONN_OPEN                       //  frames flow
} conn_state_t;

//  What a connection does once open, one step per reply
typedef enum {
    ACT_REGISTER,
    ACT_RESUME,
    ACT_CREATE,
    ACT_JOIN,
    ACT_CLOSE,                      //  close the socket: the user is enrolled
    ACT_STAY                        //  stay open and idle: the phase counts it done
} action_t;

typedef struct {
    int fd;                         //  socket, -1 when free
    conn_state_t state;             //  where the connection is
    int user;                       //  the user (and the slot) it serves
    int step;                       //  index into the phase's script
    bool raw;                       //  baseline: no handshake, frames at once
    bool done;                      //  counted done in the current phase
    bool want_out;                  //  EPOLLOUT is armed
    char *rx;                       //  bytes read, not yet consumed
    size_t rx_size;                 //  bytes in rx
    size_t rx_cap;                  //  rx's allocation
    char *tx;                       //  bytes to write
    size_t tx_size;                 //  bytes in tx
    size_t tx_cap;                  //  tx's allocation
    int64_t pending_id;             //  id of the setup request awaiting a reply, 0 none
    int64_t last_seq;               //  last room seq seen in the measured phase
} conn_t;

typedef struct {
    char token [TOKEN_MAX];         //  from register, for resume
} user_t;

typedef struct {
    const char *ptr;                //  value's first byte (inside quotes for strings)
    size_t size;                    //  value's length, 0 if absent
} field_t;

//  The few top-level fields any reply or event we read may carry
typedef struct {
    field_t type;                   //  ok, error, message, ...
    field_t id;                     //  the request's id
    field_t code;                   //  error code
    field_t text;                   //  message text: "pb <index> <ns>"
    field_t seq;                    //  room seq
    field_t room;                   //  room name (a string in message events)
    field_t token;                  //  from auth.register
} reply_t;

typedef struct {
    char name [48];                 //  error code or what went wrong
    uint64_t count;                 //  how often
} error_kind_t;

typedef struct {
    uint32_t *values;               //  microseconds
    size_t size;                    //  samples held
    size_t cap;                     //  allocation
} samples_t;

typedef struct {
    //  Options
    char host [64];                 //  server address (numeric)
    int port;                       //  server port
    char path [128];                //  WebSocket path
    int members;                    //  N
    int senders;                    //  S
    double rate;                    //  R, messages a second in total
    double duration;                //  seconds of sending
    int window;                     //  connections in setup at once
    int sources;                    //  127.0.0.1 .. 127.0.0.<sources> as source addresses
    double timeout;                 //  seconds a setup phase may take
    int server_pid;                 //  for RSS, 0 unknown
    const char *json_path;          //  --json FILE
    bool quiet;                     //  no progress lines
    //  Run state
    int epoll_fd;                   //  the one loop
    conn_t *conns;                  //  one per user
    user_t *users;                  //  one per user
    int user_count;                 //  users made in this scenario
    char prefix [32];               //  username prefix, unique per scenario
    char room [64];                 //  the fanout room
    uint32_t rng;                   //  xorshift state (mask keys)
    //  Current phase
    const action_t *script;         //  what each connection does
    int phase_first;                //  first user of the phase
    int phase_end;                  //  one past the last user
    int phase_next;                 //  next user to start
    int phase_active;               //  connections started, not done
    int phase_done;                 //  connections done
    //  Measured phase
    bool measuring;                 //  message events are deliveries
    uint64_t messages_sent;         //  msg.send written (or frames by baseline server)
    uint64_t messages_acked;        //  msg.send answered ok
    uint64_t deliveries;            //  message events received for our messages
    uint64_t duplicates;            //  a member got a message twice
    uint64_t gaps;                  //  a member saw a seq jump
    uint8_t *acked;                 //  per message: ok received
    uint16_t *delivered;            //  per message: members that got it
    size_t message_cap;             //  size of acked and delivered
    samples_t latency;              //  send to delivery
    uint64_t first_delivery_ns;     //  baseline flood: window of deliveries
    uint64_t last_delivery_ns;      //  same
    //  Errors, all kinds
    error_kind_t errors [ERROR_KINDS];  //  by name
    uint64_t error_total;           //  sum
    char first_error [256];         //  the first one, word for word
    //  JSON output
    FILE *json;                     //  open while scenarios run
    int json_count;                 //  scenarios written
    //  Baseline ceiling, for fractions
    double baseline_ceiling;        //  deliveries/s the raw server reached, 0 if not run
    double baseline_p50;            //  latency at the same rate, us
} bench_t;

static volatile sig_atomic_t s_interrupted = 0;

static void
s_on_signal (int signal)
{
    (void) signal;
    s_interrupted = 1;
}

static uint64_t
s_now_ns (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (uint64_t) now.tv_sec * 1000000000ull + (uint64_t) now.tv_nsec;
}

static double
s_seconds_since (uint64_t start_ns)
{
    return (double) (s_now_ns () - start_ns) / 1e9;
}

static void *
s_alloc (size_t size)
{
    void *memory = calloc (1, size? size: 1);
    if (!memory) {
        fprintf (stderr, "parley-bench: out of memory (%zu bytes)\n", size);
        exit (2);
    }
    return memory;
}

static void
s_grow (char **buffer, size_t *cap, size_t needed)
{
    if (needed <= *cap)
        return;
    size_t new_cap = *cap? *cap: 1024;
    while (new_cap < needed)
        new_cap *= 2;
    char *grown = realloc (*buffer, new_cap);
    if (!grown) {
        fprintf (stderr, "parley-bench: out of memory\n");
        exit (2);
    }
    *buffer = grown;
    *cap = new_cap;
}

static void
s_error (bench_t *self, const char *kind, const char *detail, size_t detail_size)
{
    self->error_total++;
    if (!self->first_error [0])
        snprintf (self->first_error, sizeof self->first_error, "%s: %.*s", kind,
                  (int) (detail_size > 200? 200: detail_size), detail? detail: "");
    for (int index = 0; index < ERROR_KINDS; index++) {
        error_kind_t *slot = &self->errors [index];
        if (slot->count == 0)
            snprintf (slot->name, sizeof slot->name, "%s", kind);
        if (streq (slot->name, kind) || index == ERROR_KINDS - 1) {
            slot->count++;
            return;
        }
    }
}

//  ---------------------------------------------------------------------------
//  Scanning replies: top-level fields only, values left raw

static const char *
s_skip_space (const char *cursor, const char *end)
{
    while (cursor < end && (*cursor == ' ' || *cursor == '\t' || *cursor == '\n' || *cursor == '\r'))
        cursor++;
    return cursor;
}

//  Returns the byte after the string that starts at cursor (at its opening quote)
static const char *
s_skip_string (const char *cursor, const char *end)
{
    for (cursor++; cursor < end; cursor++) {
        if (*cursor == '\\')
            cursor++;
        else
        if (*cursor == '"')
            return cursor + 1;
    }
    return NULL;
}

static const char *
s_skip_value (const char *cursor, const char *end)
{
    if (cursor >= end)
        return NULL;
    if (*cursor == '"')
        return s_skip_string (cursor, end);
    if (*cursor == '{' || *cursor == '[') {
        int depth = 0;
        while (cursor < end) {
            if (*cursor == '"') {
                cursor = s_skip_string (cursor, end);
                if (!cursor)
                    return NULL;
                continue;
            }
            if (*cursor == '{' || *cursor == '[')
                depth++;
            else
            if (*cursor == '}' || *cursor == ']') {
                if (--depth == 0)
                    return cursor + 1;
            }
            cursor++;
        }
        return NULL;
    }
    while (cursor < end && *cursor != ',' && *cursor != '}' && *cursor != ' ')
        cursor++;
    return cursor;
}

//  Returns 0 if json is an object whose top level could be read, -1 if not
static int
s_scan (const char *json, size_t size, reply_t *reply)
{
    memset (reply, 0, sizeof *reply);
    const char *end = json + size;
    const char *cursor = s_skip_space (json, end);
    if (cursor >= end || *cursor != '{')
        return -1;
    cursor = s_skip_space (cursor + 1, end);
    if (cursor < end && *cursor == '}')
        return 0;
    while (cursor < end) {
        if (*cursor != '"')
            return -1;
        const char *key = cursor + 1;
        const char *after_key = s_skip_string (cursor, end);
        if (!after_key)
            return -1;
        size_t key_size = (size_t) (after_key - 1 - key);
        cursor = s_skip_space (after_key, end);
        if (cursor >= end || *cursor != ':')
            return -1;
        cursor = s_skip_space (cursor + 1, end);
        const char *value_end = s_skip_value (cursor, end);
        if (!value_end)
            return -1;
        field_t value = { cursor, (size_t) (value_end - cursor) };
        if (*cursor == '"') {
            value.ptr++;
            value.size -= 2;
        }
        field_t *slot = NULL;
        if (key_size == 4 && memcmp (key, "type", 4) == 0)
            slot = &reply->type;
        else
        if (key_size == 2 && memcmp (key, "id", 2) == 0)
            slot = &reply->id;
        else
        if (key_size == 4 && memcmp (key, "code", 4) == 0)
            slot = &reply->code;
        else
        if (key_size == 4 && memcmp (key, "text", 4) == 0)
            slot = &reply->text;
        else
        if (key_size == 3 && memcmp (key, "seq", 3) == 0)
            slot = &reply->seq;
        else
        if (key_size == 4 && memcmp (key, "room", 4) == 0)
            slot = &reply->room;
        else
        if (key_size == 5 && memcmp (key, "token", 5) == 0)
            slot = &reply->token;
        if (slot)
            *slot = value;
        cursor = s_skip_space (value_end, end);
        if (cursor < end && *cursor == ',')
            cursor = s_skip_space (cursor + 1, end);
        else
        if (cursor < end && *cursor == '}')
            return 0;
        else
            return -1;
    }
    return -1;
}

static bool
s_is (field_t field, const char *text)
{
    size_t size = strlen (text);
    return field.size == size && memcmp (field.ptr, text, size) == 0;
}

static int64_t
s_integer (field_t field)
{
    int64_t value = 0;
    for (size_t index = 0; index < field.size; index++) {
        if (field.ptr [index] < '0' || field.ptr [index] > '9')
            return -1;
        value = value * 10 + (field.ptr [index] - '0');
    }
    return field.size? value: -1;
}

//  ---------------------------------------------------------------------------
//  Connections: sockets, handshake, frames

static void
s_arm (bench_t *self, conn_t *conn, bool want_out)
{
    if (conn->want_out == want_out)
        return;
    conn->want_out = want_out;
    struct epoll_event event = {
        .events = EPOLLIN | (want_out? EPOLLOUT: 0), .data.u32 = (uint32_t) conn->user
    };
    epoll_ctl (self->epoll_fd, EPOLL_CTL_MOD, conn->fd, &event);
}

static void
s_close (bench_t *self, conn_t *conn)
{
    if (conn->fd >= 0)
        close (conn->fd);     //  epoll forgets a closed descriptor by itself
    conn->fd = -1;
    conn->state = CONN_FREE;
    free (conn->rx);
    free (conn->tx);
    conn->rx = conn->tx = NULL;
    conn->rx_size = conn->rx_cap = conn->tx_size = conn->tx_cap = 0;
    conn->want_out = false;
    conn->pending_id = 0;
}

static void
s_flush (bench_t *self, conn_t *conn)
{
    size_t written = 0;
    while (written < conn->tx_size) {
        ssize_t rc = write (conn->fd, conn->tx + written, conn->tx_size - written);
        if (rc > 0)
            written += (size_t) rc;
        else
        if (rc < 0 && errno == EINTR)
            continue;
        else
            break;
    }
    if (written) {
        memmove (conn->tx, conn->tx + written, conn->tx_size - written);
        conn->tx_size -= written;
    }
    s_arm (self, conn, conn->tx_size > 0);
}

static uint32_t
s_random (bench_t *self)
{
    uint32_t state = self->rng;
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return self->rng = state;
}

//  One masked text frame, FIN set
static void
s_send_text (bench_t *self, conn_t *conn, const char *text, size_t size)
{
    s_grow (&conn->tx, &conn->tx_cap, conn->tx_size + size + 14);
    uint8_t *out = (uint8_t *) conn->tx + conn->tx_size;
    size_t header = 2;
    out [0] = 0x81;
    if (size < 126)
        out [1] = 0x80 | (uint8_t) size;
    else
    if (size < 65536) {
        out [1] = 0x80 | 126;
        out [2] = (uint8_t) (size >> 8);
        out [3] = (uint8_t) size;
        header = 4;
    }
    else {
        out [1] = 0x80 | 127;
        for (int index = 0; index < 8; index++)
            out [2 + index] = (uint8_t) ((uint64_t) size >> (56 - 8 * index));
        header = 10;
    }
    uint32_t key = s_random (self);
    uint8_t *mask = out + header;
    memcpy (mask, &key, 4);
    uint8_t *payload = mask + 4;
    for (size_t index = 0; index < size; index++)
        payload [index] = (uint8_t) text [index] ^ mask [index & 3];
    conn->tx_size += header + 4 + size;
    s_flush (self, conn);
}

static void
s_send_json (bench_t *self, conn_t *conn, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_send_json (bench_t *self, conn_t *conn, const char *format, ...)
{
    char text [512];
    va_list args;
    va_start (args, format);
    int size = vsnprintf (text, sizeof text, format, args);
    va_end (args);
    assert (size > 0 && (size_t) size < sizeof text);
    s_send_text (self, conn, text, (size_t) size);
}

//  Returns 0 if the connection was started, -1 (counted) if not
static int
s_connect (bench_t *self, conn_t *conn, const char *host, int port, bool raw)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        s_error (self, "socket", strerror (errno), strlen (strerror (errno)));
        return -1;
    }
    int one = 1;
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (self->sources > 1) {
        //  One source address reaches about 14k connections to one port; the
        //  port is picked at connect () so each address has its own range
        setsockopt (fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in source = { .sin_family = AF_INET };
        source.sin_addr.s_addr = htonl (0x7f000001u + (uint32_t) (conn->user % self->sources));
        if (bind (fd, (struct sockaddr *) &source, sizeof source)) {
            s_error (self, "bind", strerror (errno), strlen (strerror (errno)));
            close (fd);
            return -1;
        }
    }
    struct sockaddr_in target = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
    inet_pton (AF_INET, host, &target.sin_addr);
    if (connect (fd, (struct sockaddr *) &target, sizeof target) && errno != EINPROGRESS) {
        s_error (self, "connect", strerror (errno), strlen (strerror (errno)));
        close (fd);
        return -1;
    }
    conn->fd = fd;
    conn->state = CONN_CONNECTING;
    conn->raw = raw;
    conn->want_out = true;
    conn->step = 0;
    conn->done = false;
    conn->last_seq = 0;
    struct epoll_event event = { .events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t) conn->user };
    epoll_ctl (self->epoll_fd, EPOLL_CTL_ADD, fd, &event);
    return 0;
}

static void s_on_open (bench_t *self, conn_t *conn);
static void s_on_text (bench_t *self, conn_t *conn, const char *text, size_t size);
static void s_lost (bench_t *self, conn_t *conn, const char *why);

static void
s_on_writable (bench_t *self, conn_t *conn)
{
    if (conn->state == CONN_CONNECTING) {
        int error = 0;
        socklen_t size = sizeof error;
        getsockopt (conn->fd, SOL_SOCKET, SO_ERROR, &error, &size);
        if (error) {
            s_lost (self, conn, strerror (error));
            return;
        }
        if (conn->raw) {
            conn->state = CONN_OPEN;
            s_arm (self, conn, false);
            s_on_open (self, conn);
            return;
        }
        char request [512];
        int length = snprintf (request, sizeof request,
            "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
            self->path, self->host, self->port);
        conn->state = CONN_HANDSHAKE;
        s_grow (&conn->tx, &conn->tx_cap, (size_t) length);
        memcpy (conn->tx, request, (size_t) length);
        conn->tx_size = (size_t) length;
    }
    s_flush (self, conn);
}

//  Consumes whole frames from rx; returns -1 if the connection was closed
static int
s_read_frames (bench_t *self, conn_t *conn)
{
    size_t offset = 0;
    if (conn->state == CONN_HANDSHAKE) {
        char *end = memmem (conn->rx, conn->rx_size, "\r\n\r\n", 4);
        if (!end)
            return 0;
        size_t header_size = (size_t) (end + 4 - conn->rx);
        if (conn->rx_size < 12 || memcmp (conn->rx, "HTTP/1.1 101", 12) != 0
        ||  !memmem (conn->rx, header_size, WS_ACCEPT, strlen (WS_ACCEPT))) {
            s_lost (self, conn, "the server refused the WebSocket upgrade");
            return -1;
        }
        offset = header_size;
        conn->state = CONN_OPEN;
        s_on_open (self, conn);
        if (conn->state != CONN_OPEN)
            return -1;
    }
    while (conn->rx_size - offset >= 2) {
        const uint8_t *frame = (const uint8_t *) conn->rx + offset;
        size_t available = conn->rx_size - offset;
        uint8_t opcode = frame [0] & 0x0f;
        bool fin = (frame [0] & 0x80) != 0;
        bool masked = (frame [1] & 0x80) != 0;
        uint64_t size = frame [1] & 0x7f;
        size_t header = 2;
        if (size == 126) {
            if (available < 4)
                break;
            size = ((uint64_t) frame [2] << 8) | frame [3];
            header = 4;
        }
        else
        if (size == 127) {
            if (available < 10)
                break;
            size = 0;
            for (int index = 0; index < 8; index++)
                size = (size << 8) | frame [2 + index];
            header = 10;
        }
        if (masked) {
            s_lost (self, conn, "the server sent a masked frame");
            return -1;
        }
        if (available - header < size)
            break;
        const char *payload = (const char *) frame + header;
        offset += header + (size_t) size;
        if (opcode == 0x1 && fin)
            s_on_text (self, conn, payload, (size_t) size);
        else
        if (opcode == 0x8) {
            s_lost (self, conn, "the server closed the WebSocket");
            return -1;
        }
        else
        if (opcode == 0x9) {
            //  Pong with the same payload
            s_grow (&conn->tx, &conn->tx_cap, conn->tx_size + size + 14);
            uint8_t *out = (uint8_t *) conn->tx + conn->tx_size;
            out [0] = 0x8a;
            out [1] = 0x80 | (uint8_t) size;
            memset (out + 2, 0, 4);
            memcpy (out + 6, payload, (size_t) size);
            conn->tx_size += 6 + (size_t) size;
            s_flush (self, conn);
        }
        else
        if (opcode != 0xa)
            s_error (self, "unexpected_frame", "a fragmented or binary frame", 28);
        if (conn->state != CONN_OPEN)
            return -1;
    }
    if (offset) {
        memmove (conn->rx, conn->rx + offset, conn->rx_size - offset);
        conn->rx_size -= offset;
    }
    return 0;
}

static void
s_on_readable (bench_t *self, conn_t *conn)
{
    while (conn->fd >= 0) {
        if (conn->rx_cap - conn->rx_size < 4096)
            s_grow (&conn->rx, &conn->rx_cap, conn->rx_size + 16384);
        ssize_t rc = read (conn->fd, conn->rx + conn->rx_size, conn->rx_cap - conn->rx_size);
        if (rc > 0) {
            conn->rx_size += (size_t) rc;
            if (s_read_frames (self, conn))
                return;
            if ((size_t) rc < 4096)
                return;     //  drained, most likely: level-triggered epoll calls again
        }
        else
        if (rc == 0) {
            s_lost (self, conn, "the server closed the connection");
            return;
        }
        else {
            if (errno == EAGAIN || errno == EINTR)
                return;
            s_lost (self, conn, strerror (errno));
            return;
        }
    }
}

//  Runs the loop once, waiting at most timeout_ms
static void
s_poll (bench_t *self, int timeout_ms)
{
    struct epoll_event events [512];
    int count = epoll_wait (self->epoll_fd, events, 512, timeout_ms);
    for (int index = 0; index < count; index++) {
        conn_t *conn = &self->conns [events [index].data.u32];
        if (conn->fd < 0)
            continue;
        if (events [index].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            if (conn->want_out || conn->state == CONN_CONNECTING)
                s_on_writable (self, conn);
        if (conn->fd >= 0 && (events [index].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            s_on_readable (self, conn);
    }
}

//  ---------------------------------------------------------------------------
//  Phases: each connection runs a script of requests, one at a time

static void
s_start_next (bench_t *self)
{
    while (self->phase_next < self->phase_end && self->phase_active < self->window) {
        conn_t *conn = &self->conns [self->phase_next++];
        if (s_connect (self, conn, self->host, self->port, false) == 0)
            self->phase_active++;
        else
            self->phase_done++;     //  counted as an error already
    }
}

static void
s_step_done (bench_t *self, conn_t *conn)
{
    conn->done = true;
    self->phase_active--;
    self->phase_done++;
    s_start_next (self);
}

static void
s_lost (bench_t *self, conn_t *conn, const char *why)
{
    s_error (self, "connection_lost", why, strlen (why));
    bool counted = conn->done;
    s_close (self, conn);
    if (self->script && !counted && conn->user >= self->phase_first && conn->user < self->phase_end)
        s_step_done (self, conn);
}

static void
s_run_step (bench_t *self, conn_t *conn)
{
    action_t action = self->script [conn->step];
    int64_t id = conn->step + 1;
    conn->pending_id = id;
    const char *name_format = "%s%d";
    char username [64];
    snprintf (username, sizeof username, name_format, self->prefix, conn->user);
    switch (action) {
        case ACT_REGISTER:
            s_send_json (self, conn,
                "{\"type\":\"auth.register\",\"id\":%" PRId64 ",\"username\":\"%s\",\"password\":\"" PASSWORD "\"}",
                id, username);
            break;
        case ACT_RESUME:
            s_send_json (self, conn, "{\"type\":\"auth.resume\",\"id\":%" PRId64 ",\"token\":\"%s\"}",
                         id, self->users [conn->user].token);
            break;
        case ACT_CREATE:
            s_send_json (self, conn,
                "{\"type\":\"room.create\",\"id\":%" PRId64 ",\"room\":\"%s\",\"max_participants\":%d}",
                id, self->room, self->members < 2? 2: self->members);
            break;
        case ACT_JOIN:
            s_send_json (self, conn, "{\"type\":\"room.join\",\"id\":%" PRId64 ",\"room\":\"%s\"}",
                         id, self->room);
            break;
        case ACT_CLOSE:
            conn->pending_id = 0;
            conn->done = true;      //  so that s_close does not count it twice
            s_close (self, conn);
            conn->done = false;
            s_step_done (self, conn);
            break;
        case ACT_STAY:
            conn->pending_id = 0;
            s_step_done (self, conn);
            break;
    }
}

static void
s_on_open (bench_t *self, conn_t *conn)
{
    if (self->script)
        s_run_step (self, conn);
}

static void
s_on_setup_reply (bench_t *self, conn_t *conn, const reply_t *reply, const char *text, size_t size)
{
    if (!s_is (reply->type, "ok")) {
        if (s_is (reply->type, "error") && s_integer (reply->id) == conn->pending_id) {
            char code [48];
            snprintf (code, sizeof code, "%.*s", (int) (reply->code.size > 40? 40: reply->code.size),
                      reply->code.ptr);
            s_error (self, code, text, size);
            conn->done = true;
            s_close (self, conn);
            conn->done = false;
            s_step_done (self, conn);
        }
        return;     //  an event while setting up: presence, joins of others
    }
    if (s_integer (reply->id) != conn->pending_id) {
        s_error (self, "wrong_id", text, size);
        return;
    }
    action_t action = self->script [conn->step];
    if (action == ACT_REGISTER || action == ACT_RESUME) {
        if (reply->token.size == 0 || reply->token.size >= TOKEN_MAX) {
            s_error (self, "no_token", text, size);
            return;
        }
        memcpy (self->users [conn->user].token, reply->token.ptr, reply->token.size);
        self->users [conn->user].token [reply->token.size] = 0;
    }
    conn->step++;
    s_run_step (self, conn);
}

static void s_on_delivery (bench_t *self, conn_t *conn, const reply_t *reply, const char *text, size_t size);

static void
s_on_text (bench_t *self, conn_t *conn, const char *text, size_t size)
{
    reply_t reply;
    if (s_scan (text, size, &reply)) {
        s_error (self, "unreadable_reply", text, size);
        return;
    }
    if (conn->pending_id) {
        s_on_setup_reply (self, conn, &reply, text, size);
        return;
    }
    if (!self->measuring)
        return;
    if (s_is (reply.type, "message"))
        s_on_delivery (self, conn, &reply, text, size);
    else
    if (s_is (reply.type, "ok")) {
        int64_t id = s_integer (reply.id) - SEND_ID_BASE;
        if (id < 0 || (uint64_t) id >= self->messages_sent || self->acked [id])
            s_error (self, "wrong_id", text, size);
        else {
            self->acked [id] = 1;
            self->messages_acked++;
        }
    }
    else
    if (s_is (reply.type, "error")) {
        char code [48];
        snprintf (code, sizeof code, "%.*s", (int) (reply.code.size > 40? 40: reply.code.size),
                  reply.code.ptr);
        s_error (self, code, text, size);
    }
}

static void
s_on_delivery (bench_t *self, conn_t *conn, const reply_t *reply, const char *text, size_t size)
{
    uint64_t now = s_now_ns ();
    if (!s_is (reply->room, self->room))
        return;
    //  text: "pb <index> <ns>"
    unsigned long long index, sent_ns;
    char body [96];
    snprintf (body, sizeof body, "%.*s", (int) (reply->text.size > 90? 90: reply->text.size),
              reply->text.ptr);
    if (sscanf (body, "pb %llu %llu", &index, &sent_ns) != 2 || index >= self->message_cap) {
        s_error (self, "unexpected_message", text, size);
        return;
    }
    int64_t seq = s_integer (reply->seq);
    if (conn->last_seq && seq != conn->last_seq + 1)
        self->gaps++;
    conn->last_seq = seq;
    if (self->delivered [index] == UINT16_MAX || (int) self->delivered [index] >= self->members) {
        self->duplicates++;
        return;
    }
    self->delivered [index]++;
    self->deliveries++;
    if (!self->first_delivery_ns)
        self->first_delivery_ns = now;
    self->last_delivery_ns = now;
    samples_t *samples = &self->latency;
    if (samples->size == samples->cap) {
        samples->cap = samples->cap? samples->cap * 2: 1 << 16;
        samples->values = realloc (samples->values, samples->cap * sizeof (uint32_t));
        assert (samples->values);
    }
    uint64_t micros = now > sent_ns? (now - sent_ns) / 1000: 0;
    samples->values [samples->size++] = micros > UINT32_MAX? UINT32_MAX: (uint32_t) micros;
}

//  Runs one phase over users [first, end); returns seconds it took, or -1 on timeout
static double
s_run_phase (bench_t *self, const action_t *script, int first, int end, const char *what)
{
    self->script = script;
    self->phase_first = self->phase_next = first;
    self->phase_end = end;
    self->phase_active = self->phase_done = 0;
    uint64_t started = s_now_ns (), reported = started;
    s_start_next (self);
    while (self->phase_done < end - first && !s_interrupted) {
        s_poll (self, 20);
        if (s_seconds_since (started) > self->timeout) {
            fprintf (stderr, "parley-bench: %s: timed out after %.0f s (%d of %d done)\n", what,
                     self->timeout, self->phase_done, end - first);
            self->script = NULL;
            return -1;
        }
        if (!self->quiet && s_now_ns () - reported > 2000000000ull) {
            fprintf (stderr, "  %s: %d of %d\n", what, self->phase_done, end - first);
            reported = s_now_ns ();
        }
    }
    self->script = NULL;
    return s_seconds_since (started);
}

//  ---------------------------------------------------------------------------
//  Results

static int
s_compare_u32 (const void *left, const void *right)
{
    uint32_t a = *(const uint32_t *) left, b = *(const uint32_t *) right;
    return a < b? -1: a > b;
}

typedef struct {
    double p50, p99, p999, max;     //  microseconds
} percentiles_t;

static percentiles_t
s_percentiles (samples_t *samples)
{
    percentiles_t result = { 0, 0, 0, 0 };
    if (samples->size == 0)
        return result;
    qsort (samples->values, samples->size, sizeof (uint32_t), s_compare_u32);
    size_t last = samples->size - 1;
    result.p50 = samples->values [(size_t) (last * 0.50)];
    result.p99 = samples->values [(size_t) (last * 0.99)];
    result.p999 = samples->values [(size_t) (last * 0.999)];
    result.max = samples->values [last];
    return result;
}

static void
s_reset_measure (bench_t *self, size_t message_cap)
{
    free (self->acked);
    free (self->delivered);
    self->message_cap = message_cap;
    self->acked = s_alloc (message_cap);
    self->delivered = s_alloc (message_cap * sizeof (uint16_t));
    self->messages_sent = self->messages_acked = self->deliveries = 0;
    self->duplicates = self->gaps = 0;
    self->latency.size = 0;
    self->first_delivery_ns = self->last_delivery_ns = 0;
}

static void
s_reset_errors (bench_t *self)
{
    memset (self->errors, 0, sizeof self->errors);
    self->error_total = 0;
    self->first_error [0] = 0;
}

static void
s_json_begin (bench_t *self, const char *scenario)
{
    if (!self->json)
        return;
    fprintf (self->json, "%s\n    {\"scenario\": \"%s\"", self->json_count++? ",": "", scenario);
}

static void
s_json_number (bench_t *self, const char *key, double value)
{
    if (self->json)
        fprintf (self->json, ", \"%s\": %.6g", key, value);
}

static void
s_json_end (bench_t *self)
{
    if (!self->json)
        return;
    fprintf (self->json, ", \"errors\": %" PRIu64 ", \"error_kinds\": {", self->error_total);
    for (int index = 0; index < ERROR_KINDS && self->errors [index].count; index++)
        fprintf (self->json, "%s\"%s\": %" PRIu64, index? ", ": "", self->errors [index].name,
                 self->errors [index].count);
    fprintf (self->json, "}, \"first_error\": \"");
    for (const char *cursor = self->first_error; *cursor; cursor++)
        if (*cursor == '"' || *cursor == '\\')
            fprintf (self->json, "\\%c", *cursor);
        else
        if ((unsigned char) *cursor >= 0x20)
            fputc (*cursor, self->json);
    fprintf (self->json, "\"}");
}

static void
s_print_errors (bench_t *self)
{
    if (!self->error_total)
        return;
    printf ("  errors:");
    for (int index = 0; index < ERROR_KINDS && self->errors [index].count; index++)
        printf (" %s=%" PRIu64, self->errors [index].name, self->errors [index].count);
    printf ("\n  first: %s\n", self->first_error);
}

static long
s_server_rss_kb (bench_t *self)
{
    if (!self->server_pid)
        return -1;
    char path [64], line [256];
    snprintf (path, sizeof path, "/proc/%d/status", self->server_pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    long kb = -1;
    while (fgets (line, sizeof line, file))
        if (strncmp (line, "VmRSS:", 6) == 0)
            kb = strtol (line + 6, NULL, 10);
    fclose (file);
    return kb;
}

static void
s_close_all (bench_t *self)
{
    for (int index = 0; index < self->user_count; index++)
        if (self->conns [index].fd >= 0)
            s_close (self, &self->conns [index]);
}

static void
s_new_users (bench_t *self, int count, const char *scenario)
{
    s_close_all (self);
    self->user_count = count;
    memset (self->users, 0, sizeof (user_t) * (size_t) count);
    //  Unique per run and scenario, so a data directory can be reused
    snprintf (self->prefix, sizeof self->prefix, "pb%05x%c_", s_random (self) & 0xfffff, scenario [0]);
    snprintf (self->room, sizeof self->room, "%sroom", self->prefix);
    for (char *cursor = self->room; *cursor; cursor++)
        if (*cursor == '_')
            *cursor = '-';
    s_reset_errors (self);
}

//  ---------------------------------------------------------------------------
//  fanout: one room, N members, S senders, R messages a second

//  Sends and drains; returns the seconds the sending took
static double
s_send_at_rate (bench_t *self, size_t total)
{
    uint64_t started = s_now_ns ();
    while (self->messages_sent < total && !s_interrupted) {
        double elapsed = s_seconds_since (started);
        uint64_t due = (uint64_t) (elapsed * self->rate) + 1;
        if (due > total)
            due = total;
        while (self->messages_sent < due) {
            uint64_t index = self->messages_sent++;
            conn_t *sender = &self->conns [index % (uint64_t) self->senders];
            if (sender->fd < 0)
                continue;
            s_send_json (self, sender,
                "{\"type\":\"msg.send\",\"id\":%" PRIu64 ",\"room\":\"%s\",\"text\":\"pb %" PRIu64 " %" PRIu64 "\"}",
                SEND_ID_BASE + index, self->room, index, s_now_ns ());
        }
        s_poll (self, 1);
    }
    return s_seconds_since (started);
}

static void
s_drain (bench_t *self, uint64_t expected_acks, uint64_t members, double seconds)
{
    uint64_t started = s_now_ns ();
    while (s_seconds_since (started) < seconds && !s_interrupted) {
        uint64_t errors_now = self->error_total;
        if (self->messages_acked + errors_now >= expected_acks
        &&  self->deliveries >= self->messages_acked * members)
            break;
        s_poll (self, 10);
    }
}

static int
s_fanout (bench_t *self)
{
    int members = self->members;
    if (self->senders > members)
        self->senders = members;
    s_new_users (self, members, "fanout");
    static const action_t creator [] = { ACT_REGISTER, ACT_CREATE, ACT_CLOSE };
    static const action_t joiner [] = { ACT_REGISTER, ACT_JOIN, ACT_CLOSE };
    static const action_t attach [] = { ACT_RESUME, ACT_STAY };
    if (!self->quiet)
        fprintf (stderr, "fanout: enrolling %d members in %s\n", members, self->room);
    if (s_run_phase (self, creator, 0, 1, "create") < 0
    ||  s_run_phase (self, joiner, 1, members, "enroll") < 0)
        return -1;
    uint64_t setup_errors = self->error_total;
    double attach_seconds = s_run_phase (self, attach, 0, members, "attach");
    if (attach_seconds < 0)
        return -1;
    if (setup_errors || self->error_total) {
        printf ("fanout: setup failed\n");
        s_print_errors (self);
        return -1;
    }
    //  Let presence events and join notices settle before measuring
    uint64_t settle = s_now_ns ();
    while (s_seconds_since (settle) < 1.5)
        s_poll (self, 20);
    size_t total = (size_t) (self->rate * self->duration);
    if (total < 1)
        total = 1;
    s_reset_measure (self, total);
    self->measuring = true;
    double send_seconds = s_send_at_rate (self, total);
    s_drain (self, total, (uint64_t) members, 15);
    self->measuring = false;
    double span = (double) (self->last_delivery_ns - self->first_delivery_ns) / 1e9;
    double per_second = span > 0? (double) self->deliveries / span: 0;
    uint64_t expected = self->messages_acked * (uint64_t) members;
    uint64_t loss = expected > self->deliveries? expected - self->deliveries: 0;
    uint64_t failed_sends = self->messages_sent - self->messages_acked;
    percentiles_t latency = s_percentiles (&self->latency);
    printf ("fanout N=%d S=%d R=%.0f/s %.1fs: sent %" PRIu64 " acked %" PRIu64 ", deliveries %" PRIu64
            " (%.0f/s), loss %" PRIu64 ", dup %" PRIu64 ", gaps %" PRIu64 ", latency us p50 %.0f"
            " p99 %.0f p99.9 %.0f max %.0f, errors %" PRIu64,
            members, self->senders, self->rate, send_seconds, self->messages_sent, self->messages_acked,
            self->deliveries, per_second, loss, self->duplicates, self->gaps, latency.p50, latency.p99,
            latency.p999, latency.max, self->error_total);
    if (self->baseline_p50 > 0)
        printf (", p50 %.1fx baseline", latency.p50 / self->baseline_p50);
    printf ("\n");
    s_print_errors (self);
    s_json_begin (self, "fanout");
    s_json_number (self, "members", members);
    s_json_number (self, "senders", self->senders);
    s_json_number (self, "rate", self->rate);
    s_json_number (self, "duration", self->duration);
    s_json_number (self, "messages", (double) self->messages_sent);
    s_json_number (self, "acked", (double) self->messages_acked);
    s_json_number (self, "failed_sends", (double) failed_sends);
    s_json_number (self, "deliveries", (double) self->deliveries);
    s_json_number (self, "expected_deliveries", (double) expected);
    s_json_number (self, "loss", (double) loss);
    s_json_number (self, "duplicates", (double) self->duplicates);
    s_json_number (self, "gaps", (double) self->gaps);
    s_json_number (self, "deliveries_per_second", per_second);
    s_json_number (self, "latency_p50_us", latency.p50);
    s_json_number (self, "latency_p99_us", latency.p99);
    s_json_number (self, "latency_p999_us", latency.p999);
    s_json_number (self, "latency_max_us", latency.max);
    s_json_number (self, "attach_seconds", attach_seconds);
    if (self->baseline_p50 > 0)
        s_json_number (self, "p50_vs_baseline", latency.p50 / self->baseline_p50);
    s_json_end (self);
    s_close_all (self);
    return loss || failed_sends || self->error_total || self->gaps || self->duplicates? -1: 0;
}

//  ---------------------------------------------------------------------------
//  connect: N connections that register and stay, then N that resume

static int
s_connect_storm (bench_t *self)
{
    int count = self->members;
    s_new_users (self, count, "connect");
    long rss_before = s_server_rss_kb (self);
    static const action_t registering [] = { ACT_REGISTER, ACT_STAY };
    static const action_t resuming [] = { ACT_RESUME, ACT_STAY };
    if (!self->quiet)
        fprintf (stderr, "connect: %d connections that register\n", count);
    double register_seconds = s_run_phase (self, registering, 0, count, "register");
    if (register_seconds < 0)
        return -1;
    int open = 0;
    for (int index = 0; index < count; index++)
        open += self->conns [index].fd >= 0;
    //  Idle sessions: let the server settle its buffers before reading its RSS
    uint64_t settle = s_now_ns ();
    while (s_seconds_since (settle) < 2)
        s_poll (self, 20);
    long rss_after = s_server_rss_kb (self);
    uint64_t register_errors = self->error_total;
    s_close_all (self);
    settle = s_now_ns ();
    while (s_seconds_since (settle) < 1)
        s_poll (self, 20);
    if (!self->quiet)
        fprintf (stderr, "connect: %d connections that resume\n", count);
    double resume_seconds = s_run_phase (self, resuming, 0, count, "resume");
    if (resume_seconds < 0)
        return -1;
    int resumed = 0;
    for (int index = 0; index < count; index++)
        resumed += self->conns [index].fd >= 0;
    double per_session = rss_before >= 0 && rss_after >= 0 && open? (double) (rss_after - rss_before) * 1024 / open: -1;
    printf ("connect N=%d: register %.0f conn/s (%d open), resume %.0f conn/s (%d open)",
            count, count / register_seconds, open, count / resume_seconds, resumed);
    if (per_session >= 0)
        printf (", server RSS %.1f -> %.1f MiB, %.1f KiB per idle session", rss_before / 1024.0,
                rss_after / 1024.0, per_session / 1024);
    printf (", errors %" PRIu64 "\n", self->error_total);
    s_print_errors (self);
    s_json_begin (self, "connect");
    s_json_number (self, "connections", count);
    s_json_number (self, "registered_open", open);
    s_json_number (self, "resumed_open", resumed);
    s_json_number (self, "register_per_second", count / register_seconds);
    s_json_number (self, "resume_per_second", count / resume_seconds);
    s_json_number (self, "register_errors", (double) register_errors);
    if (per_session >= 0) {
        s_json_number (self, "server_rss_before_kib", (double) rss_before);
        s_json_number (self, "server_rss_after_kib", (double) rss_after);
        s_json_number (self, "bytes_per_idle_session", per_session);
    }
    s_json_end (self);
    s_close_all (self);
    return self->error_total || open != count || resumed != count? -1: 0;
}

//  ---------------------------------------------------------------------------
//  baseline: a built-in server writes ready frames to N sockets

typedef struct {
    double rate;                    //  0: as fast as the sockets take them
    double duration;                //  seconds
} baseline_command_t;

//  The raw server: blocking writes of one prepared frame to every socket
static void
s_raw_server (int listener, int members, int command_fd, int result_fd, const char *room)
{
    int *sockets = calloc ((size_t) members, sizeof (int));
    for (int index = 0; index < members; index++) {
        sockets [index] = accept (listener, NULL, NULL);
        if (sockets [index] < 0)
            _exit (3);
        int one = 1;
        setsockopt (sockets [index], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    baseline_command_t command;
    while (read (command_fd, &command, sizeof command) == sizeof command) {
        uint64_t started = s_now_ns (), sent = 0;
        uint64_t stop_ns = started + (uint64_t) (command.duration * 1e9);
        while (true) {
            uint64_t now = s_now_ns ();
            if (now >= stop_ns)
                break;
            if (command.rate > 0) {
                uint64_t due = (uint64_t) ((double) (now - started) / 1e9 * command.rate) + 1;
                if (sent >= due) {
                    struct timespec nap = { 0, 200000 };
                    nanosleep (&nap, NULL);
                    continue;
                }
            }
            //  Shaped like parley's message event, so the client does the same work
            char text [320];
            int size = snprintf (text, sizeof text,
                "{\"type\":\"message\",\"room\":\"%s\",\"seq\":%" PRIu64 ",\"from\":\"pb-baseline\","
                "\"text\":\"pb %" PRIu64 " %" PRIu64 "\",\"ts\":\"2026-11-25T02:45:51.123Z\"}",
                room, sent + 1, sent, s_now_ns ());
            uint8_t frame [330];
            frame [0] = 0x81;
            frame [1] = 126;
            frame [2] = (uint8_t) (size >> 8);
            frame [3] = (uint8_t) size;
            size_t header = 4;
            if (size < 126) {
                frame [1] = (uint8_t) size;
                header = 2;
            }
            memcpy (frame + header, text, (size_t) size);
            for (int index = 0; index < members; index++) {
                size_t written = 0, total = header + (size_t) size;
                while (written < total) {
                    ssize_t rc = write (sockets [index], frame + written, total - written);
                    if (rc <= 0)
                        _exit (4);
                    written += (size_t) rc;
                }
            }
            sent++;
        }
        if (write (result_fd, &sent, sizeof sent) != sizeof sent)
            _exit (5);
    }
    _exit (0);
}

static int
s_baseline (bench_t *self)
{
    int members = self->members;
    s_new_users (self, members, "baseline");
    int listener = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt (listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = { .sin_family = AF_INET };
    address.sin_addr.s_addr = htonl (0x7f000001u);
    socklen_t size = sizeof address;
    if (bind (listener, (struct sockaddr *) &address, sizeof address) || listen (listener, 4096)
    ||  getsockname (listener, (struct sockaddr *) &address, &size)) {
        perror ("parley-bench: baseline listener");
        return -1;
    }
    int commands [2], results [2];
    if (pipe (commands) || pipe (results))
        return -1;
    fflush (NULL);
    pid_t child = fork ();
    if (child == 0) {
        close (commands [1]);
        close (results [0]);
        close (self->epoll_fd);
        s_raw_server (listener, members, commands [0], results [1], self->room);
    }
    close (listener);
    close (commands [0]);
    close (results [1]);
    for (int index = 0; index < members; index++)
        if (s_connect (self, &self->conns [index], "127.0.0.1", ntohs (address.sin_port), true))
            break;
    int open = 0;
    uint64_t started = s_now_ns ();
    while (open < members && s_seconds_since (started) < self->timeout && self->error_total == 0) {
        s_poll (self, 20);
        open = 0;
        for (int index = 0; index < members; index++)
            open += self->conns [index].state == CONN_OPEN;
    }
    int status = 0;
    double latency_rate_deliveries = 0, ceiling = 0;
    percentiles_t latency = { 0, 0, 0, 0 };
    uint64_t rate_loss = 0, flood_loss = 0, rate_sent = 0, flood_sent = 0;
    if (open == members) {
        //  1. At the fanout's rate: latency from the kernel alone
        size_t cap = (size_t) (self->rate * self->duration) + 16;
        s_reset_measure (self, cap);
        self->measuring = true;
        baseline_command_t command = { self->rate, self->duration };
        if (write (commands [1], &command, sizeof command) != sizeof command)
            return -1;
        //  Keep reading while the server writes, as fanout does
        uint64_t rate_started = s_now_ns ();
        while (s_seconds_since (rate_started) < self->duration)
            s_poll (self, 1);
        if (read (results [0], &rate_sent, sizeof rate_sent) != sizeof rate_sent)
            return -1;
        self->messages_sent = self->messages_acked = rate_sent;
        s_drain (self, rate_sent, (uint64_t) members, 15);
        latency = s_percentiles (&self->latency);
        double span = (double) (self->last_delivery_ns - self->first_delivery_ns) / 1e9;
        latency_rate_deliveries = span > 0? (double) self->deliveries / span: 0;
        rate_loss = rate_sent * (uint64_t) members - self->deliveries;
        //  2. Flood: as fast as the sockets take frames, for the ceiling
        for (int index = 0; index < members; index++)
            self->conns [index].last_seq = 0;
        double flood_seconds = self->duration < 3? self->duration: 3;
        s_reset_measure (self, 4000000);
        baseline_command_t flood = { 0, flood_seconds };
        if (write (commands [1], &flood, sizeof flood) != sizeof flood)
            return -1;
        uint64_t flood_started = s_now_ns ();
        while (s_seconds_since (flood_started) < flood_seconds)
            s_poll (self, 10);
        if (read (results [0], &flood_sent, sizeof flood_sent) != sizeof flood_sent)
            return -1;
        self->messages_sent = self->messages_acked = flood_sent;
        s_drain (self, flood_sent, (uint64_t) members, 15);
        double flood_span = (double) (self->last_delivery_ns - flood_started) / 1e9;
        ceiling = flood_span > 0? (double) self->deliveries / flood_span: 0;
        flood_loss = flood_sent * (uint64_t) members - self->deliveries;
        self->measuring = false;
        self->baseline_ceiling = ceiling;
        self->baseline_p50 = latency.p50;
    }
    else
        status = -1;
    close (commands [1]);
    s_close_all (self);
    close (results [0]);
    waitpid (child, NULL, 0);
    printf ("baseline N=%d R=%.0f/s %.1fs: deliveries %.0f/s, loss %" PRIu64 ", latency us p50 %.0f p99 %.0f"
            " p99.9 %.0f max %.0f; flood ceiling %.0f deliveries/s (%" PRIu64 " messages), loss %" PRIu64
            ", gaps %" PRIu64 ", errors %" PRIu64 "\n",
            members, self->rate, self->duration, latency_rate_deliveries, rate_loss, latency.p50,
            latency.p99, latency.p999, latency.max, ceiling, flood_sent, flood_loss, self->gaps,
            self->error_total);
    s_print_errors (self);
    s_json_begin (self, "baseline");
    s_json_number (self, "members", members);
    s_json_number (self, "rate", self->rate);
    s_json_number (self, "duration", self->duration);
    s_json_number (self, "messages", (double) rate_sent);
    s_json_number (self, "loss", (double) rate_loss);
    s_json_number (self, "deliveries_per_second", latency_rate_deliveries);
    s_json_number (self, "latency_p50_us", latency.p50);
    s_json_number (self, "latency_p99_us", latency.p99);
    s_json_number (self, "latency_p999_us", latency.p999);
    s_json_number (self, "latency_max_us", latency.max);
    s_json_number (self, "flood_messages", (double) flood_sent);
    s_json_number (self, "flood_loss", (double) flood_loss);
    s_json_number (self, "ceiling_deliveries_per_second", ceiling);
    s_json_end (self);
    return status || rate_loss || flood_loss || self->error_total? -1: 0;
}

//  ---------------------------------------------------------------------------

static void
s_usage (FILE *stream)
{
    fprintf (stream,
"usage: parley-bench [options] SCENARIO...\n"
"\n"
"Load for Parley's client protocol over real WebSockets, from one epoll loop.\n"
"Scenarios run in the order given; each prints one summary line. Every reply is\n"
"checked and every error counted; the exit status is 1 if any scenario lost a\n"
"message, got an error or timed out.\n"
"\n"
"Scenarios:\n"
"  baseline  A built-in server (a child process) writes ready-made WebSocket frames,\n"
"            shaped like Parley's message events, to N loopback sockets: no JSON, no\n"
"            broker. First at --rate for --duration (latency from the kernel alone),\n"
"            then as fast as the sockets take them for up to 3 s (the ceiling in\n"
"            deliveries/s). Needs no server. Run it before fanout in the same\n"
"            invocation and fanout reports its p50 as a multiple of baseline's.\n"
"  fanout    Registers N users (a few at a time, each joins one new room and\n"
"            disconnects, so joins cost O(N)), then N connections resume and stay.\n"
"            S of them send --rate messages a second in total for --duration\n"
"            seconds. Each message text carries the sender's clock; every member\n"
"            must receive every acknowledged message once, in seq order: loss,\n"
"            duplicates and seq gaps are counted. Reports deliveries/s and the\n"
"            latency from send to each delivery (p50, p99, p99.9, max).\n"
"  connect   N connections register and stay (register storm, connections/s),\n"
"            then the server's RSS (--server-pid) gives memory per idle\n"
"            authenticated session; all close, and N connections resume the same\n"
"            tokens (resume storm, connections/s).\n"
"\n"
"Options:\n"
"  --url URL          ws://HOST:PORT/PATH of parley (numeric host), default ws://127.0.0.1:8080/ws\n"
"  --members N        N connections / room members (default 100; at most %d;\n"
"                     a room holds at most 10000)\n"
"  --senders S        fanout: members that send (default 10)\n"
"  --rate R           messages a second, all senders together (default 100)\n"
"  --duration SEC     seconds of sending (default 10)\n"
"  --window W         connections in setup at once (default 200; auth.queue is 256)\n"
"  --sources K        spread source addresses over 127.0.0.1..K (default: 1 per 10000)\n"
"  --server-pid PID   parley's process, for its RSS (connect)\n"
"  --timeout SEC      a setup phase may take this long (default 300)\n"
"  --json FILE        write every scenario's figures to FILE\n"
"  --quiet            no progress lines on stderr\n"
"  --help\n"
"\n"
"Start parley with cheap hashes and no message rate limit, e.g.:\n"
"  parley --listen 127.0.0.1:8080 --data DIR --option auth.ops_limit=1 \\\n"
"         --option auth.mem_limit=8192 --option rooms.msg_rate=0\n",
        MAX_CONNS);
}

static int
s_parse_url (bench_t *self, const char *url)
{
    if (strncmp (url, "ws://", 5) != 0)
        return -1;
    const char *host = url + 5;
    const char *colon = strchr (host, ':');
    const char *slash = strchr (host, '/');
    if (!colon || (slash && slash < colon) || (size_t) (colon - host) >= sizeof self->host)
        return -1;
    memcpy (self->host, host, (size_t) (colon - host));
    self->host [colon - host] = 0;
    self->port = atoi (colon + 1);
    snprintf (self->path, sizeof self->path, "%s", slash? slash: "/ws");
    struct in_addr probe;
    return self->port > 0 && self->port < 65536 && inet_pton (AF_INET, self->host, &probe) == 1? 0: -1;
}

int
main (int argc, char **argv)
{
    bench_t bench = {
        .members = 100, .senders = 10, .rate = 100, .duration = 10, .window = 200,
        .timeout = 300, .epoll_fd = -1
    };
    bench_t *self = &bench;
    s_parse_url (self, "ws://127.0.0.1:8080/ws");
    static const struct option options [] = {
        { "url", required_argument, NULL, 'u' },
        { "members", required_argument, NULL, 'n' },
        { "senders", required_argument, NULL, 's' },
        { "rate", required_argument, NULL, 'r' },
        { "duration", required_argument, NULL, 'd' },
        { "window", required_argument, NULL, 'w' },
        { "sources", required_argument, NULL, 'a' },
        { "server-pid", required_argument, NULL, 'p' },
        { "timeout", required_argument, NULL, 't' },
        { "json", required_argument, NULL, 'j' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int option;
    while ((option = getopt_long (argc, argv, "h", options, NULL)) != -1) {
        switch (option) {
            case 'u':
                if (s_parse_url (self, optarg)) {
                    fprintf (stderr, "parley-bench: --url %s: expected ws://A.B.C.D:PORT/PATH\n", optarg);
                    return 2;
                }
                break;
            case 'n': self->members = atoi (optarg); break;
            case 's': self->senders = atoi (optarg); break;
            case 'r': self->rate = atof (optarg); break;
            case 'd': self->duration = atof (optarg); break;
            case 'w': self->window = atoi (optarg); break;
            case 'a': self->sources = atoi (optarg); break;
            case 'p': self->server_pid = atoi (optarg); break;
            case 't': self->timeout = atof (optarg); break;
            case 'j': self->json_path = optarg; break;
            case 'q': self->quiet = true; break;
            case 'h': s_usage (stdout); return 0;
            default: s_usage (stderr); return 2;
        }
    }
    if (optind >= argc) {
        s_usage (stderr);
        return 2;
    }
    if (self->members < 1 || self->members > MAX_CONNS || self->senders < 1 || self->rate <= 0
    ||  self->duration <= 0 || self->window < 1 || self->sources < 0 || self->sources > 250) {
        fprintf (stderr, "parley-bench: --members 1..%d, --senders >= 1, --rate > 0, --duration > 0,"
                         " --window >= 1, --sources 0..250\n", MAX_CONNS);
        return 2;
    }
    for (int index = optind; index < argc; index++)
        if (!streq (argv [index], "fanout") && !streq (argv [index], "baseline")
        &&  !streq (argv [index], "connect")) {
            fprintf (stderr, "parley-bench: unknown scenario '%s' (fanout, baseline, connect)\n",
                     argv [index]);
            return 2;
        }
    if (self->sources == 0)
        self->sources = self->members / 10000 + 1;
    struct rlimit limit;
    getrlimit (RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit (RLIMIT_NOFILE, &limit);
    if ((rlim_t) self->members + 64 > limit.rlim_cur) {
        fprintf (stderr, "parley-bench: %d connections need more descriptors than the limit (%lu)\n",
                 self->members, (unsigned long) limit.rlim_cur);
        return 2;
    }
    signal (SIGPIPE, SIG_IGN);
    signal (SIGINT, s_on_signal);
    self->rng = (uint32_t) (s_now_ns () ^ (uint64_t) getpid () << 16) | 1;
    self->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
    self->conns = s_alloc (sizeof (conn_t) * (size_t) self->members);
    self->users = s_alloc (sizeof (user_t) * (size_t) self->members);
    for (int index = 0; index < self->members; index++) {
        self->conns [index].fd = -1;
        self->conns [index].user = index;
    }
    if (self->json_path) {
        self->json = fopen (self->json_path, "w");
        if (!self->json) {
            perror (self->json_path);
            return 2;
        }
        fprintf (self->json, "{\"scenarios\": [");
    }
    int failures = 0;
    for (int index = optind; index < argc && !s_interrupted; index++) {
        int rc = streq (argv [index], "fanout")? s_fanout (self):
                 streq (argv [index], "baseline")? s_baseline (self): s_connect_storm (self);
        if (rc)
            failures++;
        fflush (stdout);
    }
    if (self->json) {
        fprintf (self->json, "\n], \"failures\": %d}\n", failures);
        fclose (self->json);
    }
    s_close_all (self);
    free (self->conns);
    free (self->users);
    free (self->acked);
    free (self->delivered);
    free (self->latency.values);
    close (self->epoll_fd);
    return failures? 1: 0;
}
