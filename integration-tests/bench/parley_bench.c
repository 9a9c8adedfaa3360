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
      fanout    one room of N members, S of them sending R messages a second;
                with --max, R raised step by step until p99 passes a bound
      rooms     M rooms of K members, all talking at once, at R or closed-loop
      pm        P pairs of users exchanging private messages
      history   a room of H entries paged backwards by C clients, every page checked
      latency   one message at a time through the whole path of an idle server
      connect   a storm of N connections that register, then N that resume
      files     POST /files and GET /files/<id>: upload and download throughput
                of one file, and U uploads at once with the gateway's RSS
                (bench_files.c)

    With --idle N, N more users register before the scenarios and stay online
    and quiet through all of them: the other users of a real server.
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
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench_files.h"

#define MAX_CONNS        19000      //  the process may hold 20,000 descriptors
#define SEND_ID_BASE     1000000000 //  msg.send/pm.send ids: SEND_ID_BASE + message index
#define HISTORY_PAGE     200        //  room.history's largest limit (PROTOCOL.md)
#define DECORATE_EMOJI   3          //  history --decorate: emoji among the reactions
#define MAX_INFLIGHT     256        //  a session may have 256 requests in flight
#define TOKEN_MAX        64
#define ERROR_KINDS      16
#define WS_KEY           "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="     //  RFC 6455's example pair
#define PASSWORD         "bench-password"
#define streq(a, b)      (strcmp ((a), (b)) == 0)

//  --nonce's shapes (s_nonce)
enum { S_NONCE_NONE, S_NONCE_TIME, S_NONCE_RANDOM, S_NONCE_COUNTER };

typedef enum {
    CONN_FREE,                      //  no socket
    CONN_CONNECTING,                //  connect () in progress
    CONN_TLS,                       //  wss: TLS handshake in progress
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
    SSL *ssl;                       //  wss: its TLS, NULL for ws
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
    int64_t last_seq;               //  last seq seen in the measured phase (room or pair)
    int group;                      //  the room (or the pm pair) this user belongs to
    int inflight;                   //  messages sent, not yet settled (closed loop)
    bool page_pending;              //  history: a room.history is outstanding
    int64_t page_id;                //  its id
    int64_t page_before;            //  its cursor, 0 for the newest page
    uint64_t page_sent_ns;          //  when it was written
    int64_t pass_entries;           //  entries read since the newest page
    int64_t pass_messages;          //  of which message entries
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
    field_t messages;               //  room.history's entries (an array, raw)
    field_t more;                   //  room.history: true or false
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
    SSL_CTX *tls;                   //  wss:// (the certificate is not checked), or NULL
    int members;                    //  N
    int senders;                    //  S (rooms: per room)
    double rate;                    //  R, messages a second in total; 0 closed loop
    double duration;                //  seconds of sending
    int inflight;                   //  W: closed loop, sends outstanding per sender
    uint64_t count;                 //  messages to send in all, 0 by duration
    int rooms;                      //  M, rooms scenario
    int room_members;               //  K, members of each room
    int pairs;                      //  P, pm scenario
    int entries;                    //  H, history entries
    int readers;                    //  C, history readers
    bool max;                       //  fanout: search the highest rate that holds
    double p99_bound_ms;            //  --max: a step passes while p99 stays under this
    double step_seconds;            //  --max: sending time per step
    double max_rate;                //  --max: never above this rate
    int max_steps;                  //  --max: at most this many steps
    int window;                     //  connections in setup at once
    int sources;                    //  127.0.0.1 .. 127.0.0.<sources> as source addresses
    double timeout;                 //  seconds a setup phase may take
    int server_pid;                 //  for RSS, 0 unknown
    int idle;                       //  --idle N: connections held open through every scenario
    const char *json_path;          //  --json FILE
    bool quiet;                     //  no progress lines
    int nonce;                      //  --nonce: each msg.send/pm.send carries a nonce,
                                    //  shaped as S_NONCE_TIME, _RANDOM or _COUNTER
    int page;                       //  history: entries a page (--page, default 200)
    int decorate;                   //  history: D oldest messages edited and reacted to
    int member_of;                  //  search: rooms of the M the searcher is in (--member-of)
    const char *prepared;           //  search: a store filled by search-store.py, its prefix
    size_t file_size;               //  files: bytes of each file (--file-size)
    int file_repeat;                //  files: uploads and downloads one by one (--repeat)
    int file_uploads;               //  files: uploads at once (--uploads)
    //  Run state
    int epoll_fd;                   //  the one loop
    conn_t *conns;                  //  one per user, then one per idle connection
    user_t *users;                  //  the same
    int capacity;                   //  users a scenario may have
    int idle_first;                 //  first idle connection: capacity
    uint64_t idle_frames;           //  frames the idle connections got in this scenario
    int user_count;                 //  users made in this scenario
    char prefix [32];               //  username prefix, unique per scenario
    char room [64];                 //  room name prefix: room G is room + G
    int group_size;                 //  members of each room (2 per pm pair)
    int recipients;                 //  sessions that must get each message
    bool private_messages;          //  pm.send to the partner, not msg.send
    int *sender_list;               //  users that send, round-robin at a rate
    int sender_count;               //  entries in sender_list
    uint32_t rng;                   //  xorshift state (mask keys)
    uint32_t nonce_salt;            //  --nonce: this run's, so that its nonces are its own
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
    uint64_t messages_failed;       //  msg.send answered error, or never written
    uint64_t deliveries;            //  message events received for our messages
    uint64_t duplicates;            //  a member got a message (a seq) twice
    uint64_t gaps;                  //  a member saw a seq jump
    uint8_t *acked;                 //  per message: 1 ok received, 2 error received
    uint16_t *delivered;            //  per message: members that got it
    uint32_t *message_sender;       //  per message: sending user + 1, 0 none (baseline)
    uint64_t *message_sent_ns;      //  per message: when msg.send was written
    int64_t *message_seq;           //  per message: the seq its ok carried, 0 none
    size_t message_cap;             //  size of the per-message arrays
    samples_t latency;              //  send to each other member's delivery
    samples_t reply_latency;        //  send to ok (a page's request to its reply)
    uint64_t send_started_ns;       //  first send of the measured phase
    uint64_t last_ack_ns;           //  last ok of the measured phase
    int64_t max_acked_seq;          //  highest seq an ok carried
    uint64_t first_delivery_ns;     //  baseline flood: window of deliveries
    uint64_t last_delivery_ns;      //  same
    //  Closed loop: each sender keeps `inflight` messages outstanding
    bool closed_loop;               //  send the next as each one settles
    bool wait_delivery;             //  settled = acked and delivered to all (latency)
    bool sending;                   //  the sending window is open
    uint64_t send_until_ns;         //  the window closes then
    uint64_t send_limit;            //  or after this many messages, 0 no limit
    //  History paging
    bool paging;                    //  oks are room.history pages
    bool paging_open;               //  readers ask for the next page
    int64_t page_ids;               //  last page id used
    uint64_t pages;                 //  pages received and checked
    uint64_t page_entries;          //  entries in good pages
    uint64_t bad_pages;             //  pages with a wrong count, order or cursor
    uint64_t passes;                //  full walks from the newest entry to seq 1
    uint64_t fill_acked;            //  messages stored by the fill
    int64_t decorated_first;        //  --decorate: the seq of the first decorated message
    //  Search: messages carry words; the searcher's one request at a time
    bool search_words;              //  message texts carry the common and the rare word
    bool searching;                 //  replies are the searcher's
    int64_t search_id;              //  the request waited for, 0 none
    bool search_ok;                 //  its reply was ok
    int search_results;             //  results in it
    bool search_next;               //  it gave next
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
        else
        if (key_size == 8 && memcmp (key, "messages", 8) == 0)
            slot = &reply->messages;
        else
        if (key_size == 4 && memcmp (key, "more", 4) == 0)
            slot = &reply->more;
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

//  Counts an error reply under its code, after `prefix`
static void
s_count_refusal (bench_t *self, const char *prefix, const reply_t *reply, const char *text, size_t size)
{
    char kind [48];
    snprintf (kind, sizeof kind, "%s%.*s", prefix, (int) (reply->code.size > 40? 40: reply->code.size),
              reply->code.ptr);
    s_error (self, kind, text, size);
}

//  ---------------------------------------------------------------------------
//  Connections: sockets, handshake, frames

//  The idle connections (--idle) follow the scenarios' users in conns
static bool
s_is_idle (bench_t *self, const conn_t *conn)
{
    return conn->user >= self->idle_first;
}

static int
s_idle_open (bench_t *self)
{
    int open = 0;
    for (int index = self->idle_first; index < self->idle_first + self->idle; index++)
        open += self->conns [index].state == CONN_OPEN;
    return open;
}

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
    SSL_free (conn->ssl);
    conn->ssl = NULL;
    conn->state = CONN_FREE;
    free (conn->rx);
    free (conn->tx);
    conn->rx = conn->tx = NULL;
    conn->rx_size = conn->rx_cap = conn->tx_size = conn->tx_cap = 0;
    conn->want_out = false;
    conn->pending_id = 0;
}

//  write (), or SSL_write for wss: bytes taken, 0 when the socket is full,
//  -1 on an error. A TLS write the socket could not take is offered again
//  from the same bytes, which tx keeps (partial writes, moving buffer).
static ssize_t
s_write (conn_t *conn, const char *data, size_t size)
{
    if (!conn->ssl)
        return write (conn->fd, data, size);
    ERR_clear_error ();
    int rc = SSL_write (conn->ssl, data, (int) size);
    if (rc > 0)
        return rc;
    int error = SSL_get_error (conn->ssl, rc);
    errno = error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ? EAGAIN: EPROTO;
    return -1;
}

//  read (), or SSL_read for wss, the same way
static ssize_t
s_read (conn_t *conn, char *data, size_t size)
{
    if (!conn->ssl)
        return read (conn->fd, data, size);
    ERR_clear_error ();
    int rc = SSL_read (conn->ssl, data, (int) size);
    if (rc > 0)
        return rc;
    int error = SSL_get_error (conn->ssl, rc);
    if (error == SSL_ERROR_ZERO_RETURN)
        return 0;
    errno = error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE? EAGAIN: EPROTO;
    return -1;
}

static void
s_flush (bench_t *self, conn_t *conn)
{
    size_t written = 0;
    while (written < conn->tx_size) {
        ssize_t rc = s_write (conn, conn->tx + written, conn->tx_size - written);
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
    conn->inflight = 0;
    conn->page_pending = false;
    struct epoll_event event = { .events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t) conn->user };
    epoll_ctl (self->epoll_fd, EPOLL_CTL_ADD, fd, &event);
    return 0;
}

static void s_on_open (bench_t *self, conn_t *conn);
static void s_on_text (bench_t *self, conn_t *conn, const char *text, size_t size);
static void s_lost (bench_t *self, conn_t *conn, const char *why);

//  wss: moves the TLS handshake on; once done, the upgrade request follows.
//  Returns true when it is done.
static bool
s_tls_handshake (bench_t *self, conn_t *conn)
{
    if (!conn->ssl) {
        conn->ssl = SSL_new (self->tls);
        SSL_set_fd (conn->ssl, conn->fd);
        SSL_set_connect_state (conn->ssl);
        SSL_set_mode (conn->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE
                               | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        conn->state = CONN_TLS;
    }
    ERR_clear_error ();
    int rc = SSL_do_handshake (conn->ssl);
    if (rc == 1)
        return true;
    int error = SSL_get_error (conn->ssl, rc);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE)
        s_arm (self, conn, error == SSL_ERROR_WANT_WRITE);
    else {
        char reason [160];
        ERR_error_string_n (ERR_get_error (), reason, sizeof reason);
        s_lost (self, conn, reason);
    }
    return false;
}

static void
s_on_writable (bench_t *self, conn_t *conn)
{
    if (conn->state == CONN_CONNECTING || conn->state == CONN_TLS) {
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
        if (self->tls && !s_tls_handshake (self, conn))
            return;
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
    if (conn->state == CONN_TLS) {
        s_on_writable (self, conn);
        return;
    }
    while (conn->fd >= 0) {
        if (conn->rx_cap - conn->rx_size < 4096)
            s_grow (&conn->rx, &conn->rx_cap, conn->rx_size + 16384);
        ssize_t rc = s_read (conn, conn->rx + conn->rx_size, conn->rx_cap - conn->rx_size);
        if (rc > 0) {
            conn->rx_size += (size_t) rc;
            if (s_read_frames (self, conn))
                return;
            //  Drained, most likely: level-triggered epoll calls again. Not
            //  with TLS, where SSL_read gives one record at a time: read on
            //  until it wants the socket, or pay a wake-up per record.
            if ((size_t) rc < 4096 && !conn->ssl)
                return;
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
            if (conn->want_out || conn->state == CONN_CONNECTING || conn->state == CONN_TLS)
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
    s_error (self, s_is_idle (self, conn)? "idle_connection_lost": "connection_lost", why, strlen (why));
    bool counted = conn->done;
    s_close (self, conn);
    if (self->script && !counted && conn->user >= self->phase_first && conn->user < self->phase_end)
        s_step_done (self, conn);
}

//  Room G of this scenario is the room prefix followed by G
static void
s_room_name (bench_t *self, int group, char *name, size_t size)
{
    snprintf (name, size, "%s%d", self->room, group);
}

//  A connection that registers a new user and stays: connect, pm, --idle
static const action_t s_register_and_stay [] = { ACT_REGISTER, ACT_STAY };

static void
s_run_step (bench_t *self, conn_t *conn)
{
    action_t action = self->script [conn->step];
    int64_t id = conn->step + 1;
    conn->pending_id = id;
    const char *name_format = "%s%d";
    char username [64];
    snprintf (username, sizeof username, name_format, self->prefix, conn->user);
    char room [96];
    s_room_name (self, conn->group, room, sizeof room);
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
                id, room, self->group_size < 2? 2: self->group_size);
            break;
        case ACT_JOIN:
            s_send_json (self, conn, "{\"type\":\"room.join\",\"id\":%" PRId64 ",\"room\":\"%s\"}",
                         id, room);
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
            s_count_refusal (self, "", reply, text, size);
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

//  ---------------------------------------------------------------------------
//  The measured phase: messages out, acks and deliveries in, pages checked

//  Grows the per-message arrays to hold at least `needed` messages
static void
s_reserve_messages (bench_t *self, size_t needed)
{
    if (needed <= self->message_cap)
        return;
    size_t old_cap = self->message_cap;
    size_t new_cap = old_cap? old_cap: 4096;
    while (new_cap < needed)
        new_cap *= 2;
    self->acked = realloc (self->acked, new_cap);
    self->delivered = realloc (self->delivered, new_cap * sizeof (uint16_t));
    self->message_sender = realloc (self->message_sender, new_cap * sizeof (uint32_t));
    self->message_sent_ns = realloc (self->message_sent_ns, new_cap * sizeof (uint64_t));
    self->message_seq = realloc (self->message_seq, new_cap * sizeof (int64_t));
    if (!self->acked || !self->delivered || !self->message_sender || !self->message_sent_ns
    ||  !self->message_seq) {
        fprintf (stderr, "parley-bench: out of memory (%zu messages)\n", new_cap);
        exit (2);
    }
    size_t added = new_cap - old_cap;
    memset (self->acked + old_cap, 0, added);
    memset (self->delivered + old_cap, 0, added * sizeof (uint16_t));
    memset (self->message_sender + old_cap, 0, added * sizeof (uint32_t));
    memset (self->message_sent_ns + old_cap, 0, added * sizeof (uint64_t));
    memset (self->message_seq + old_cap, 0, added * sizeof (int64_t));
    self->message_cap = new_cap;
}

static void
s_add_sample (samples_t *samples, uint64_t from_ns, uint64_t to_ns)
{
    if (samples->size == samples->cap) {
        samples->cap = samples->cap? samples->cap * 2: 1 << 16;
        samples->values = realloc (samples->values, samples->cap * sizeof (uint32_t));
        if (!samples->values) {
            fprintf (stderr, "parley-bench: out of memory (%zu samples)\n", samples->cap);
            exit (2);
        }
    }
    uint64_t micros = to_ns > from_ns? (to_ns - from_ns) / 1000: 0;
    samples->values [samples->size++] = micros > UINT32_MAX? UINT32_MAX: (uint32_t) micros;
}

static bool
s_may_send (bench_t *self)
{
    return self->sending && !s_interrupted && s_now_ns () < self->send_until_ns
        && (!self->send_limit || self->messages_sent < self->send_limit);
}

//  search: every second message holds the common word, one in H/100 (about
//  100 messages in all, at least one in 10) the rare one
#define SEARCH_COMMON           "pbcommon"
#define SEARCH_RARE             "pbrare"

static uint64_t
s_search_rare_every (const bench_t *self)
{
    uint64_t every = (uint64_t) self->entries / 100;
    return every < 10? 10: every;
}

static bool
s_search_is_common (uint64_t index)
{
    return index % 2 == 0;
}

//  Spread by a multiplicative hash, so that the rare messages fall in every
//  room and not in the one that index % M would give them all
static bool
s_search_is_rare (const bench_t *self, uint64_t index)
{
    return ((index * 0x9E3779B97F4A7C15ull) >> 32) % s_search_rare_every (self) == 7;
}

//  The words a message's text ends with in the search scenario ("" else)
static const char *
s_search_text (const bench_t *self, uint64_t index)
{
    if (!self->search_words)
        return "";
    bool common = s_search_is_common (index), rare = s_search_is_rare (self, index);
    return common && rare? " words " SEARCH_COMMON " and " SEARCH_RARE:
           common? " words " SEARCH_COMMON " and more": rare? " words " SEARCH_RARE: " words";
}

//  --nonce's shape as the command line names it, or NULL without --nonce
static const char *
s_nonce_name (const bench_t *self)
{
    return self->nonce == S_NONCE_TIME? "time": self->nonce == S_NONCE_RANDOM? "random"
         : self->nonce == S_NONCE_COUNTER? "counter": NULL;
}

//  --nonce's field for message index, unique per run and message, or ""
//  without --nonce. time: as the web client makes them (outbox.js: the
//  wall clock's ms in base 36, 9 digits, '-', 24 hex digits), so that they
//  grow with time; random: 32 hex digits, as a UUID would land in an index;
//  counter: the run's prefix and the index in decimal (before 2026-12-06).
static void
s_nonce (bench_t *self, uint64_t index, char *field, size_t size)
{
    if (self->nonce == S_NONCE_COUNTER)
        snprintf (field, size, ",\"nonce\":\"%s-%" PRIu64 "\"", self->prefix, index);
    else
    if (self->nonce == S_NONCE_RANDOM)
        snprintf (field, size, ",\"nonce\":\"%08x%08x%016" PRIx64 "\"", s_random (self),
                  self->nonce_salt, index);
    else
    if (self->nonce == S_NONCE_TIME) {
        struct timespec now;
        clock_gettime (CLOCK_REALTIME, &now);
        uint64_t ms = (uint64_t) now.tv_sec * 1000 + (uint64_t) now.tv_nsec / 1000000;
        char digits [10];
        for (int place = 8; place >= 0; place--, ms /= 36)
            digits [place] = "0123456789abcdefghijklmnopqrstuvwxyz" [ms % 36];
        digits [9] = 0;
        snprintf (field, size, ",\"nonce\":\"%s-%08x%016" PRIx64 "\"", digits,
                  self->nonce_salt, index);
    }
}

//  One msg.send into the sender's room, or one pm.send to its partner. The
//  text carries the message's index and the send time, so that each delivery
//  names its message and its latency.
static void
s_send_message (bench_t *self, conn_t *conn)
{
    uint64_t index = self->messages_sent++;
    s_reserve_messages (self, index + 1);
    uint64_t now = s_now_ns ();
    self->message_sender [index] = (uint32_t) conn->user + 1;
    self->message_sent_ns [index] = now;
    if (!self->send_started_ns)
        self->send_started_ns = now;
    if (conn->fd < 0) {
        //  Its connection was lost (counted then): the message fails unsent
        self->acked [index] = 2;
        self->messages_failed++;
        return;
    }
    conn->inflight++;
    char nonce [128] = "";
    s_nonce (self, index, nonce, sizeof nonce);
    if (self->private_messages)
        s_send_json (self, conn,
            "{\"type\":\"pm.send\",\"id\":%" PRIu64 ",\"to\":\"%s%d\",\"text\":\"pb %" PRIu64 " %" PRIu64 "\"%s}",
            SEND_ID_BASE + index, self->prefix, conn->user ^ 1, index, now, nonce);
    else {
        char room [96];
        s_room_name (self, conn->group, room, sizeof room);
        s_send_json (self, conn,
            "{\"type\":\"msg.send\",\"id\":%" PRIu64 ",\"room\":\"%s\",\"text\":\"pb %" PRIu64 " %" PRIu64 "%s\"%s}",
            SEND_ID_BASE + index, room, index, now, s_search_text (self, index), nonce);
    }
}

//  Closed loop: tops the sender up to `inflight` outstanding messages
static void
s_refill (bench_t *self, conn_t *conn)
{
    while (conn->fd >= 0 && conn->inflight < self->inflight && s_may_send (self))
        s_send_message (self, conn);
}

//  A message is settled when its ok (or error) came and, in the latency
//  scenario, every member has it too; the sender may then send the next
static void
s_settle_if_done (bench_t *self, uint64_t index)
{
    if (self->acked [index] == 0)
        return;
    if (self->acked [index] == 1 && self->wait_delivery && self->delivered [index] < self->recipients)
        return;
    uint32_t sender = self->message_sender [index];
    if (!sender)
        return;
    conn_t *conn = &self->conns [sender - 1];
    conn->inflight--;
    if (self->closed_loop)
        s_refill (self, conn);
}

static void
s_on_ack (bench_t *self, conn_t *conn, const reply_t *reply, const char *text, size_t size)
{
    uint64_t now = s_now_ns ();
    int64_t id = s_integer (reply->id) - SEND_ID_BASE;
    if (id < 0 || (uint64_t) id >= self->messages_sent || self->acked [id]
    ||  self->message_sender [id] != (uint32_t) conn->user + 1) {
        s_error (self, "wrong_id", text, size);
        return;
    }
    self->acked [id] = 1;
    self->messages_acked++;
    self->last_ack_ns = now;
    s_add_sample (&self->reply_latency, self->message_sent_ns [id], now);
    int64_t seq = s_integer (reply->seq);
    self->message_seq [id] = seq;
    if (seq > self->max_acked_seq)
        self->max_acked_seq = seq;
    s_settle_if_done (self, (uint64_t) id);
}

static void s_request_page (bench_t *self, conn_t *conn);

//  An error reply: counted by code; a refused send settles its message, a
//  refused page is followed by the next one
static void
s_on_refused (bench_t *self, conn_t *conn, const reply_t *reply, const char *text, size_t size)
{
    s_count_refusal (self, "", reply, text, size);
    int64_t id = s_integer (reply->id);
    if (id >= SEND_ID_BASE && (uint64_t) (id - SEND_ID_BASE) < self->messages_sent
    &&  self->acked [id - SEND_ID_BASE] == 0) {
        self->acked [id - SEND_ID_BASE] = 2;
        self->messages_failed++;
        s_settle_if_done (self, (uint64_t) (id - SEND_ID_BASE));
    }
    else
    if (self->paging && conn->page_pending && id == conn->page_id) {
        //  Start the walk again from the newest entry
        conn->page_pending = false;
        conn->page_before = conn->pass_entries = conn->pass_messages = 0;
        if (self->paging_open)
            s_request_page (self, conn);
    }
}

static void
s_on_delivery (bench_t *self, conn_t *conn, const reply_t *reply, const char *text, size_t size)
{
    uint64_t now = s_now_ns ();
    //  text: "pb <index> <ns>"
    unsigned long long index, sent_ns;
    char body [96];
    snprintf (body, sizeof body, "%.*s", (int) (reply->text.size > 90? 90: reply->text.size),
              reply->text.ptr);
    if (sscanf (body, "pb %llu %llu", &index, &sent_ns) != 2 || index >= self->message_cap) {
        s_error (self, "unexpected_message", text, size);
        return;
    }
    //  The message must come from this member's room (or pair): the sender's
    uint32_t sender = self->message_sender [index];
    int group = sender? self->conns [sender - 1].group: 0;
    char room [96];
    s_room_name (self, group, room, sizeof room);
    if (group != conn->group || (!self->private_messages && !s_is (reply->room, room))) {
        s_error (self, "wrong_recipient", text, size);
        return;
    }
    //  Each member sees its room's (its conversation's) seqs once, in order
    int64_t seq = s_integer (reply->seq);
    if (seq <= conn->last_seq) {
        self->duplicates++;
        return;
    }
    if (conn->last_seq && seq != conn->last_seq + 1)
        self->gaps++;
    conn->last_seq = seq;
    if (self->delivered [index] >= self->recipients) {
        self->duplicates++;
        return;
    }
    self->delivered [index]++;
    self->deliveries++;
    if (!self->first_delivery_ns)
        self->first_delivery_ns = now;
    self->last_delivery_ns = now;
    //  The sender's own copy is counted for loss, not timed: its ok says that
    if (sender != (uint32_t) conn->user + 1)
        s_add_sample (&self->latency, sent_ns, now);
    if (self->wait_delivery)
        s_settle_if_done (self, index);
}

//  History: asks for the page below the reader's cursor (the newest without)
static void
s_request_page (bench_t *self, conn_t *conn)
{
    if (conn->fd < 0)
        return;
    char room [96];
    s_room_name (self, conn->group, room, sizeof room);
    conn->page_id = ++self->page_ids;
    conn->page_pending = true;
    conn->page_sent_ns = s_now_ns ();
    if (self->decorate)
        s_send_json (self, conn,
            "{\"type\":\"room.history\",\"id\":%" PRId64 ",\"room\":\"%s\",\"limit\":%d,\"after\":%" PRId64 "}",
            conn->page_id, room, self->decorate, self->decorated_first - 1);
    else
    if (conn->page_before)
        s_send_json (self, conn,
            "{\"type\":\"room.history\",\"id\":%" PRId64 ",\"room\":\"%s\",\"limit\":%d,\"before\":%" PRId64 "}",
            conn->page_id, room, self->page, conn->page_before);
    else
        s_send_json (self, conn,
            "{\"type\":\"room.history\",\"id\":%" PRId64 ",\"room\":\"%s\",\"limit\":%d}",
            conn->page_id, room, self->page);
}

//  Times text occurs in field
static int64_t
s_occurrences (field_t field, const char *text)
{
    int64_t count = 0;
    size_t length = strlen (text);
    for (const char *at = field.ptr; at && at + length <= field.ptr + field.size; at++) {
        at = memmem (at, (size_t) (field.ptr + field.size - at), text, length);
        if (!at)
            break;
        count++;
    }
    return count;
}

//  --decorate: a page is the D decorated messages, from the first, each
//  shown as it is now (edited, with reactions), newer entries after them
static const char *
s_check_decorated_page (bench_t *self, const reply_t *reply, int64_t *first_seq, int64_t *entries)
{
    if (reply->messages.size < 2 || reply->messages.ptr [0] != '[')
        return "no messages array";
    const char *cursor = s_skip_space (reply->messages.ptr + 1, reply->messages.ptr + reply->messages.size);
    const char *end = reply->messages.ptr + reply->messages.size;
    int64_t count = 0;
    *first_seq = *entries = 0;
    while (cursor < end && *cursor != ']') {
        const char *entry_end = s_skip_value (cursor, end);
        reply_t entry;
        if (!entry_end || s_scan (cursor, (size_t) (entry_end - cursor), &entry))
            return "an unreadable entry";
        if (s_integer (entry.seq) != self->decorated_first + count || !s_is (entry.type, "message"))
            return "not the decorated messages";
        count++;
        cursor = s_skip_space (entry_end, end);
        if (cursor < end && *cursor == ',')
            cursor = s_skip_space (cursor + 1, end);
    }
    if (count != self->decorate || !s_is (reply->more, "true"))
        return "wrong number of entries, or 'more'";
    if (s_occurrences (reply->messages, "\"edited\"") != count
    ||  s_occurrences (reply->messages, "\"reactions\"") != count)
        return "a message without its edit or its reactions";
    *first_seq = self->decorated_first;
    *entries = count;
    return NULL;
}

//  Checks one page: the right count, seqs consecutive and ending just below
//  the cursor (at the room's last seq for the newest page), `more` exactly
//  when older entries remain. A full walk down to seq 1 must have read every
//  entry and every message the fill stored. Returns NULL or what was wrong;
//  sets first_seq and entries.
static const char *
s_check_page (bench_t *self, conn_t *conn, const reply_t *reply, int64_t *first_seq, int64_t *entries)
{
    if (self->decorate)
        return s_check_decorated_page (self, reply, first_seq, entries);
    int64_t expected_last = conn->page_before? conn->page_before - 1: self->max_acked_seq;
    int64_t expected_count = expected_last < self->page? expected_last: self->page;
    if (reply->messages.size < 2 || reply->messages.ptr [0] != '[')
        return "no messages array";
    const char *cursor = reply->messages.ptr + 1;
    const char *end = reply->messages.ptr + reply->messages.size;
    int64_t count = 0, previous = 0, messages = 0;
    *first_seq = *entries = 0;
    for (cursor = s_skip_space (cursor, end); cursor < end && *cursor != ']'; ) {
        const char *entry_end = s_skip_value (cursor, end);
        reply_t entry;
        if (!entry_end || s_scan (cursor, (size_t) (entry_end - cursor), &entry))
            return "an unreadable entry";
        int64_t seq = s_integer (entry.seq);
        if (count == 0)
            *first_seq = seq;
        else
        if (seq != previous + 1)
            return "seqs not consecutive";
        previous = seq;
        count++;
        messages += s_is (entry.type, "message");
        cursor = s_skip_space (entry_end, end);
        if (cursor < end && *cursor == ',')
            cursor = s_skip_space (cursor + 1, end);
    }
    if (count != expected_count)
        return "wrong number of entries";
    if (count && previous != expected_last)
        return "not contiguous with the cursor";
    if (s_is (reply->more, "true") != (*first_seq > 1))
        return "wrong 'more'";
    *entries = count;
    conn->pass_entries += count;
    conn->pass_messages += messages;
    if (*first_seq <= 1) {
        bool complete = conn->pass_entries == self->max_acked_seq
                     && (uint64_t) conn->pass_messages == self->fill_acked;
        conn->pass_entries = conn->pass_messages = 0;
        if (!complete)
            return "a walk to seq 1 missed entries";
        self->passes++;
    }
    return NULL;
}

static void
s_on_page (bench_t *self, conn_t *conn, const reply_t *reply, const char *text, size_t size)
{
    uint64_t now = s_now_ns ();
    if (!conn->page_pending || s_integer (reply->id) != conn->page_id) {
        s_error (self, "wrong_id", text, size);
        return;
    }
    conn->page_pending = false;
    s_add_sample (&self->reply_latency, conn->page_sent_ns, now);
    self->pages++;
    int64_t first_seq = 0, entries = 0;
    const char *wrong = s_check_page (self, conn, reply, &first_seq, &entries);
    if (wrong) {
        self->bad_pages++;
        char detail [320];
        int length = snprintf (detail, sizeof detail, "before %" PRId64 ": %s: %.*s", conn->page_before,
                               wrong, (int) (size > 200? 200: size), text);
        s_error (self, "bad_page", detail, length > 0? (size_t) length: 0);
        conn->pass_entries = conn->pass_messages = 0;
        conn->page_before = 0;
    }
    else {
        self->page_entries += (uint64_t) entries;
        conn->page_before = first_seq > 1? first_seq: 0;
    }
    if (self->paging_open)
        s_request_page (self, conn);
}

//  search: the searcher's reply (a join's or a search's); events between
//  are not counted
static void
s_on_search_reply (bench_t *self, const reply_t *reply, const char *text, size_t size)
{
    if (!s_is (reply->type, "ok") && !s_is (reply->type, "error"))
        return;
    if (s_integer (reply->id) != self->search_id) {
        s_error (self, "wrong_id", text, size);
        return;
    }
    self->search_id = 0;
    self->search_ok = s_is (reply->type, "ok");
    if (!self->search_ok)
        s_count_refusal (self, "search_", reply, text, size);
    //  Every result is an entry with one seq (a reply's is reply_to)
    self->search_results = 0;
    for (const char *at = text; (at = memmem (at, size - (size_t) (at - text), "\"seq\":", 6));
         at += 6)
        self->search_results++;
    self->search_next = memmem (text, size, "\"next\":", 7) != NULL;
}

//  An idle connection only listens: the presence events it gets as the
//  scenarios' users come and go are counted, not checked; an error is one
static void
s_on_idle_event (bench_t *self, const reply_t *reply, const char *text, size_t size)
{
    self->idle_frames++;
    if (s_is (reply->type, "error"))
        s_count_refusal (self, "idle_", reply, text, size);
}

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
    if (s_is_idle (self, conn)) {
        s_on_idle_event (self, &reply, text, size);
        return;
    }
    if (self->searching) {
        s_on_search_reply (self, &reply, text, size);
        return;
    }
    if (!self->measuring)
        return;
    if (s_is (reply.type, "message") || s_is (reply.type, "pm"))
        s_on_delivery (self, conn, &reply, text, size);
    else
    if (s_is (reply.type, "ok")) {
        if (self->paging)
            s_on_page (self, conn, &reply, text, size);
        else
            s_on_ack (self, conn, &reply, text, size);
    }
    else
    if (s_is (reply.type, "error"))
        s_on_refused (self, conn, &reply, text, size);
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

//  Forgets the previous measured phase; room for `message_cap` messages
static void
s_reset_measure (bench_t *self, size_t message_cap)
{
    free (self->acked);
    free (self->delivered);
    free (self->message_sender);
    free (self->message_sent_ns);
    free (self->message_seq);
    self->acked = NULL;
    self->delivered = NULL;
    self->message_sender = NULL;
    self->message_sent_ns = NULL;
    self->message_seq = NULL;
    self->message_cap = 0;
    s_reserve_messages (self, message_cap);
    self->messages_sent = self->messages_acked = self->messages_failed = self->deliveries = 0;
    self->duplicates = self->gaps = 0;
    self->latency.size = self->reply_latency.size = 0;
    self->first_delivery_ns = self->last_delivery_ns = 0;
    self->send_started_ns = self->last_ack_ns = 0;
    self->max_acked_seq = 0;
}

static void
s_reset_errors (bench_t *self)
{
    memset (self->errors, 0, sizeof self->errors);
    self->error_total = 0;
    self->first_error [0] = 0;
}

static void
s_json_number (bench_t *self, const char *key, double value)
{
    if (self->json)
        fprintf (self->json, ", \"%s\": %.6g", key, value);
}

static void
s_json_begin (bench_t *self, const char *scenario)
{
    if (!self->json)
        return;
    fprintf (self->json, "%s\n    {\"scenario\": \"%s\"", self->json_count++? ",": "", scenario);
    s_json_number (self, "idle", self->idle);
}

static void
s_json_end (bench_t *self)
{
    if (!self->json)
        return;
    //  How the idle connections came through the scenario
    s_json_number (self, "idle_open", s_idle_open (self));
    s_json_number (self, "idle_frames", (double) self->idle_frames);
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

//  Ends a summary line: ", idle N (O open, F frames)" when --idle holds connections
static void
s_print_line_end (bench_t *self)
{
    if (self->idle)
        printf (", idle %d (%d open, %" PRIu64 " frames)", self->idle, s_idle_open (self),
                self->idle_frames);
    printf ("\n");
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
s_close_range (bench_t *self, int first, int end)
{
    for (int index = first; index < end; index++)
        if (self->conns [index].fd >= 0)
            s_close (self, &self->conns [index]);
}

//  Closes the scenario's users; the idle connections stay
static void
s_close_all (bench_t *self)
{
    s_close_range (self, 0, self->user_count);
}

//  Usernames and rooms unique per run and scenario, so a data directory can
//  be reused
static void
s_new_prefix (bench_t *self, const char *scenario)
{
    snprintf (self->prefix, sizeof self->prefix, "pb%05x%c_", s_random (self) & 0xfffff, scenario [0]);
    snprintf (self->room, sizeof self->room, "%sroom", self->prefix);
    for (char *cursor = self->room; *cursor; cursor++)
        if (*cursor == '_')
            *cursor = '-';
}

static void
s_new_users (bench_t *self, int count, const char *scenario)
{
    s_close_all (self);
    assert (count <= self->capacity);
    self->user_count = count;
    memset (self->users, 0, sizeof (user_t) * (size_t) count);
    for (int index = 0; index < count; index++) {
        conn_t *conn = &self->conns [index];
        conn->group = conn->inflight = 0;
        conn->last_seq = conn->page_before = conn->pass_entries = conn->pass_messages = 0;
        conn->page_pending = false;
    }
    self->group_size = self->recipients = count;
    self->private_messages = false;
    self->sender_count = 0;
    self->idle_frames = 0;
    s_new_prefix (self, scenario);
    s_reset_errors (self);
}

//  ---------------------------------------------------------------------------
//  CPU time over a measured phase: setup (registrations, joins, TLS
//  handshakes) left out, so that the cost of a delivery is the cost of a
//  delivery. Ours, the server's (--server-pid) and its main thread's (in
//  `parley` and `parley-gw`, the gateway's loop); a figure not known is -1.

typedef struct {
    double client;                  //  this process, user + system
    double server;                  //  the server's whole process
    double server_main;             //  the server's main thread
} cpu_t;

//  User + system seconds of /proc/<pid>/stat or /proc/<pid>/task/<pid>/stat
static double
s_proc_cpu (int pid, bool main_thread)
{
    if (!pid)
        return -1;
    char path [64], line [1024];
    if (main_thread)
        snprintf (path, sizeof path, "/proc/%d/task/%d/stat", pid, pid);
    else
        snprintf (path, sizeof path, "/proc/%d/stat", pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    size_t size = fread (line, 1, sizeof line - 1, file);
    fclose (file);
    line [size] = 0;
    //  Fields after the command's closing parenthesis: state is field 3,
    //  utime 14 and stime 15
    const char *rest = strrchr (line, ')');
    unsigned long long utime, stime;
    if (!rest || sscanf (rest + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                         &utime, &stime) != 2)
        return -1;
    return (double) (utime + stime) / (double) sysconf (_SC_CLK_TCK);
}

static cpu_t
s_cpu_now (bench_t *self)
{
    struct rusage usage;
    getrusage (RUSAGE_SELF, &usage);
    cpu_t now = {
        .client = (double) usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6
                + (double) usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6,
        .server = s_proc_cpu (self->server_pid, false),
        .server_main = s_proc_cpu (self->server_pid, true)
    };
    return now;
}

//  What was spent since `before`
static cpu_t
s_cpu_since (bench_t *self, cpu_t before)
{
    cpu_t now = s_cpu_now (self);
    cpu_t spent = {
        .client = now.client - before.client,
        .server = now.server < 0 || before.server < 0? -1: now.server - before.server,
        .server_main = now.server_main < 0 || before.server_main < 0
                     ? -1: now.server_main - before.server_main
    };
    return spent;
}


//  ---------------------------------------------------------------------------
//  fanout, rooms, pm, latency, history: messages into rooms or pairs, counted

//  The figures of one measured phase, for the summary line and the JSON
typedef struct {
    uint64_t sent;                  //  messages written
    uint64_t acked;                 //  answered ok
    uint64_t failed;                //  answered error, or never written
    uint64_t deliveries;            //  events received for them
    uint64_t expected;              //  acked x recipients
    uint64_t loss;                  //  expected - deliveries
    uint64_t duplicates;            //  a seq or a message twice to one member
    uint64_t gaps;                  //  seq jumps seen by members
    double send_seconds;            //  the sending window
    double acked_per_second;        //  oks from the first send to the last ok
    double deliveries_per_second;   //  from the first delivery to the last
    percentiles_t ack;              //  send to ok
    percentiles_t delivery;         //  send to each other member's event
    cpu_t cpu;                      //  CPU seconds spent over the phase
    double server_cpu_us;           //  the server's CPU time per acked message, µs
                                    //  (--server-pid), -1 unknown
} tally_t;

static tally_t
s_tally (bench_t *self, double send_seconds)
{
    tally_t tally;
    memset (&tally, 0, sizeof tally);
    tally.sent = self->messages_sent;
    tally.acked = self->messages_acked;
    tally.failed = self->messages_sent - self->messages_acked;
    tally.deliveries = self->deliveries;
    tally.expected = self->messages_acked * (uint64_t) self->recipients;
    tally.loss = tally.expected > tally.deliveries? tally.expected - tally.deliveries: 0;
    tally.duplicates = self->duplicates;
    tally.gaps = self->gaps;
    tally.send_seconds = send_seconds;
    double ack_span = self->last_ack_ns > self->send_started_ns
                    ? (double) (self->last_ack_ns - self->send_started_ns) / 1e9: 0;
    tally.acked_per_second = ack_span > 0? (double) tally.acked / ack_span: 0;
    double span = (double) (self->last_delivery_ns - self->first_delivery_ns) / 1e9;
    tally.deliveries_per_second = span > 0? (double) tally.deliveries / span: 0;
    tally.ack = s_percentiles (&self->reply_latency);
    tally.delivery = s_percentiles (&self->latency);
    tally.cpu.client = tally.cpu.server = tally.cpu.server_main = -1;    //  s_measure's to say
    tally.server_cpu_us = -1;
    return tally;
}

static bool
s_tally_clean (const tally_t *tally)
{
    return !tally->loss && !tally->failed && !tally->duplicates && !tally->gaps;
}

static void
s_tally_add (tally_t *total, const tally_t *step)
{
    total->sent += step->sent;
    total->acked += step->acked;
    total->failed += step->failed;
    total->deliveries += step->deliveries;
    total->expected += step->expected;
    total->loss += step->loss;
    total->duplicates += step->duplicates;
    total->gaps += step->gaps;
    total->send_seconds += step->send_seconds;
}

//  Rates only for one phase: a sum over steps has none
static void
s_print_counts (const tally_t *tally, bool with_rates)
{
    printf ("sent %" PRIu64 " acked %" PRIu64, tally->sent, tally->acked);
    if (with_rates)
        printf (" (%.0f/s)", tally->acked_per_second);
    printf (", deliveries %" PRIu64, tally->deliveries);
    if (with_rates)
        printf (" (%.0f/s)", tally->deliveries_per_second);
    printf (", loss %" PRIu64 ", dup %" PRIu64 ", gaps %" PRIu64, tally->loss, tally->duplicates,
            tally->gaps);
}

static void
s_print_latency (const char *what, percentiles_t latency)
{
    printf (", %s us p50 %.0f p99 %.0f p99.9 %.0f max %.0f", what, latency.p50, latency.p99,
            latency.p999, latency.max);
}

//  Four keys: PREFIX_p50_us, PREFIX_p99_us, PREFIX_p999_us, PREFIX_max_us
static void
s_json_latency (bench_t *self, const char *prefix, percentiles_t latency)
{
    char key [64];
    snprintf (key, sizeof key, "%s_p50_us", prefix);
    s_json_number (self, key, latency.p50);
    snprintf (key, sizeof key, "%s_p99_us", prefix);
    s_json_number (self, key, latency.p99);
    snprintf (key, sizeof key, "%s_p999_us", prefix);
    s_json_number (self, key, latency.p999);
    snprintf (key, sizeof key, "%s_max_us", prefix);
    s_json_number (self, key, latency.max);
}

static void
s_json_counts (bench_t *self, const tally_t *tally)
{
    s_json_number (self, "messages", (double) tally->sent);
    s_json_number (self, "acked", (double) tally->acked);
    s_json_number (self, "failed_sends", (double) tally->failed);
    s_json_number (self, "deliveries", (double) tally->deliveries);
    s_json_number (self, "expected_deliveries", (double) tally->expected);
    s_json_number (self, "loss", (double) tally->loss);
    s_json_number (self, "duplicates", (double) tally->duplicates);
    s_json_number (self, "gaps", (double) tally->gaps);
}

//  The shared summary: "LABEL: counts, latencies, errors" and the same
//  figures as JSON. The caller may print and write more, then calls
//  s_report_end, which ends the line and says whether the run failed.
//  CPU per delivery over the measured phase, for the figures known
static void
s_print_cpu (const tally_t *tally)
{
    if (!tally->deliveries || tally->cpu.client < 0)
        return;
    double per = 1e6 / (double) tally->deliveries;
    printf (", CPU us/delivery client %.2f", tally->cpu.client * per);
    if (tally->cpu.server >= 0)
        printf (" server %.2f", tally->cpu.server * per);
    if (tally->cpu.server_main >= 0)
        printf (" (main thread %.2f)", tally->cpu.server_main * per);
}

static void
s_json_cpu (bench_t *self, const tally_t *tally)
{
    if (tally->cpu.client < 0)
        return;
    s_json_number (self, "cpu_client_seconds", tally->cpu.client);
    if (tally->cpu.server >= 0)
        s_json_number (self, "cpu_server_seconds", tally->cpu.server);
    if (tally->cpu.server_main >= 0)
        s_json_number (self, "cpu_server_main_seconds", tally->cpu.server_main);
}

static void
s_report_begin (bench_t *self, const char *scenario, const char *label, const tally_t *tally)
{
    printf ("%s: ", label);
    s_print_counts (tally, true);
    s_print_latency ("ack", tally->ack);
    s_print_latency ("delivery", tally->delivery);
    printf (", errors %" PRIu64, self->error_total);
    if (tally->server_cpu_us >= 0)
        printf (", server CPU %.1f us/msg", tally->server_cpu_us);
    s_print_cpu (tally);
    s_json_begin (self, scenario);
    s_json_number (self, "rate", self->rate);
    s_json_number (self, "inflight", self->rate > 0? 0: self->inflight);
    if (s_nonce_name (self) && self->json)
        fprintf (self->json, ", \"nonce\": \"%s\"", s_nonce_name (self));
    s_json_number (self, "send_seconds", tally->send_seconds);
    s_json_counts (self, tally);
    s_json_number (self, "acked_per_second", tally->acked_per_second);
    s_json_number (self, "deliveries_per_second", tally->deliveries_per_second);
    s_json_latency (self, "latency", tally->delivery);
    s_json_latency (self, "ack_latency", tally->ack);
    if (tally->server_cpu_us >= 0)
        s_json_number (self, "server_cpu_us_per_msg", tally->server_cpu_us);
    s_json_cpu (self, tally);
}

static int
s_report_end (bench_t *self, const tally_t *tally)
{
    s_print_line_end (self);
    s_print_errors (self);
    s_json_end (self);
    s_close_all (self);
    return s_tally_clean (tally) && !self->error_total? 0: -1;
}

//  A scenario whose setup failed still says so, in words and in its JSON
static int
s_setup_failed (bench_t *self, const char *scenario)
{
    printf ("%s: setup failed, errors %" PRIu64, scenario, self->error_total);
    s_print_line_end (self);
    s_print_errors (self);
    s_json_begin (self, scenario);
    s_json_number (self, "setup_failed", 1);
    s_json_end (self);
    s_close_all (self);
    return -1;
}

static void
s_settle (bench_t *self, double seconds)
{
    uint64_t started = s_now_ns ();
    while (s_seconds_since (started) < seconds && !s_interrupted)
        s_poll (self, 20);
}

//  "R=100/s" or "closed loop W=4", and " nonce=time" with --nonce: the
//  sends with a nonce are another path through the server (its index)
static void
s_mode_label (bench_t *self, char *label, size_t size)
{
    int used = self->rate > 0? snprintf (label, size, "R=%.0f/s", self->rate)
                             : snprintf (label, size, "closed loop W=%d", self->inflight);
    const char *nonce = s_nonce_name (self);
    if (nonce && used >= 0 && (size_t) used < size)
        snprintf (label + used, size - used, " nonce=%s", nonce);
}

//  Users 0..rooms-1 each create room G = user; the others join room
//  (user - rooms) / (per_room - 1), then every connection closes, so that N
//  joins cost O(N) notices rather than O(N^2). Returns 0 or -1 (timed out).
static int
s_enroll_rooms (bench_t *self, int rooms, int per_room)
{
    int users = rooms * per_room;
    self->group_size = self->recipients = per_room;
    self->private_messages = false;
    for (int user = 0; user < users; user++)
        self->conns [user].group = user < rooms? user: (user - rooms) / (per_room - 1);
    static const action_t creator [] = { ACT_REGISTER, ACT_CREATE, ACT_CLOSE };
    static const action_t joiner [] = { ACT_REGISTER, ACT_JOIN, ACT_CLOSE };
    if (s_run_phase (self, creator, 0, rooms, "create") < 0
    ||  s_run_phase (self, joiner, rooms, users, "enroll") < 0)
        return -1;
    return 0;
}

//  The first `per_room` members of each room send: its creator, then its
//  joiners in order
static void
s_pick_room_senders (bench_t *self, int rooms, int per_room, int senders_per_room)
{
    self->sender_count = 0;
    for (int user = 0; user < rooms * per_room; user++) {
        int rank = user < rooms? 0: 1 + (user - rooms) % (per_room - 1);
        if (rank < senders_per_room)
            self->sender_list [self->sender_count++] = user;
    }
}

//  Sends `total` messages at `rate` a second, round-robin over the senders;
//  returns the seconds the sending took
static double
s_send_at_rate (bench_t *self, double rate, uint64_t total)
{
    uint64_t started = s_now_ns ();
    self->sending = true;
    self->send_until_ns = UINT64_MAX;
    self->send_limit = 0;
    while (self->messages_sent < total && !s_interrupted) {
        double elapsed = s_seconds_since (started);
        uint64_t due = (uint64_t) (elapsed * rate) + 1;
        if (due > total)
            due = total;
        while (self->messages_sent < due) {
            int sender = self->sender_list [self->messages_sent % (uint64_t) self->sender_count];
            s_send_message (self, &self->conns [sender]);
        }
        s_poll (self, 1);
    }
    self->sending = false;
    return s_seconds_since (started);
}

//  Each sender keeps `inflight` messages outstanding and sends the next as one
//  settles, until `seconds` pass or `limit` messages (0 none) were sent
static double
s_send_closed_loop (bench_t *self, double seconds, uint64_t limit)
{
    uint64_t started = s_now_ns ();
    self->closed_loop = true;
    self->sending = true;
    self->send_until_ns = started + (uint64_t) (seconds * 1e9);
    self->send_limit = limit;
    for (int index = 0; index < self->sender_count; index++)
        s_refill (self, &self->conns [self->sender_list [index]]);
    while (s_may_send (self))
        s_poll (self, 5);
    self->sending = false;
    self->closed_loop = false;
    return s_seconds_since (started);
}

//  Waits (up to `seconds`) for every reply, delivery and page still due
static void
s_drain (bench_t *self, double seconds)
{
    uint64_t started = s_now_ns ();
    while (s_seconds_since (started) < seconds && !s_interrupted) {
        bool pages_due = false;
        for (int index = 0; index < self->user_count && self->paging; index++)
            pages_due |= self->conns [index].page_pending && self->conns [index].fd >= 0;
        if (self->messages_acked + self->messages_failed >= self->messages_sent
        &&  self->deliveries >= self->messages_acked * (uint64_t) self->recipients && !pages_due)
            break;
        s_poll (self, 10);
    }
}

//  One measured phase over the chosen senders: at --rate, or closed loop
//  when --rate is 0 (and always for latency, one message at a time)
static tally_t
s_measure (bench_t *self)
{
    uint64_t total = self->count? self->count: (uint64_t) (self->rate * self->duration);
    s_reset_measure (self, total? total: 1);
    self->measuring = true;
    cpu_t before = s_cpu_now (self);
    if (!self->quiet)       //  where a profiler attached to the server may start
        fprintf (stderr, "  measuring: sending\n");
    double seconds;
    if (self->rate > 0)
        seconds = s_send_at_rate (self, self->rate, total? total: 1);
    else
        //  With --count, the count ends the run; the timeout is only a backstop
        seconds = s_send_closed_loop (self, self->count? self->timeout: self->duration, self->count);
    s_drain (self, 15);
    cpu_t spent = s_cpu_since (self, before);
    if (!self->quiet)
        fprintf (stderr, "  measuring: done\n");
    self->measuring = false;
    self->wait_delivery = false;
    tally_t tally = s_tally (self, seconds);
    tally.cpu = spent;
    if (spent.server >= 0 && tally.acked)
        tally.server_cpu_us = spent.server * 1e6 / (double) tally.acked;
    return tally;
}

//  --max: raise the rate step by step (doubling, then bisecting) while p99
//  stays under the bound with nothing lost; the highest such rate is
//  fanout's sustained ceiling
static int
s_fanout_max (bench_t *self, double attach_seconds)
{
    double bound_us = self->p99_bound_ms * 1000;
    double rate = self->rate > 0? self->rate: 100;
    if (rate > self->max_rate)
        rate = self->max_rate;
    double best_rate = 0, failing_rate = 0, best_per_second = 0;
    percentiles_t best_delivery = { 0, 0, 0, 0 }, best_ack = { 0, 0, 0, 0 };
    tally_t total;
    memset (&total, 0, sizeof total);
    int steps = 0;
    bool broken = false;    //  loss, duplicates, gaps or errors: stop, the run fails
    while (steps < self->max_steps && !s_interrupted) {
        uint64_t errors_before = self->error_total;
        uint64_t count = (uint64_t) (rate * self->step_seconds);
        s_reset_measure (self, count? count: 1);
        self->measuring = true;
        double seconds = s_send_at_rate (self, rate, count? count: 1);
        s_drain (self, 15);
        self->measuring = false;
        tally_t step = s_tally (self, seconds);
        s_tally_add (&total, &step);
        steps++;
        broken = !s_tally_clean (&step) || self->error_total > errors_before;
        bool held = !broken && step.delivery.p99 <= bound_us;
        if (!self->quiet)
            fprintf (stderr, "  fanout --max step %d: R=%.0f/s, %.0f deliveries/s, p99 %.1f ms: %s\n",
                     steps, rate, step.deliveries_per_second, step.delivery.p99 / 1000,
                     broken? "loss or errors": held? "held": "over the bound");
        if (broken)
            break;
        if (held) {
            best_rate = rate;
            best_per_second = step.deliveries_per_second;
            best_delivery = step.delivery;
            best_ack = step.ack;
        }
        else
            failing_rate = rate;
        //  Next rate: double until one fails, halve until one holds, then bisect
        if (!failing_rate) {
            if (rate >= self->max_rate)
                break;
            rate = rate * 2 < self->max_rate? rate * 2: self->max_rate;
        }
        else
        if (!best_rate) {
            rate /= 2;
            if (rate < 1)
                break;
        }
        else {
            if (failing_rate <= best_rate * 1.1)
                break;
            rate = (best_rate + failing_rate) / 2;
        }
    }
    double fraction = self->baseline_ceiling > 0? best_per_second / self->baseline_ceiling: 0;
    printf ("fanout --max N=%d S=%d p99 bound %.0f ms: highest sustained R=%.0f messages/s,"
            " %.0f deliveries/s", self->members, self->senders, self->p99_bound_ms, best_rate,
            best_per_second);
    if (fraction > 0)
        printf (" (%.2f of baseline's ceiling)", fraction);
    s_print_latency ("delivery", best_delivery);
    printf (", first over the bound R=%.0f/s, %d steps, ", failing_rate, steps);
    s_print_counts (&total, false);
    printf (", errors %" PRIu64, self->error_total);
    s_json_begin (self, "fanout_max");
    s_json_number (self, "members", self->members);
    s_json_number (self, "senders", self->senders);
    s_json_number (self, "p99_bound_ms", self->p99_bound_ms);
    s_json_number (self, "step_seconds", self->step_seconds);
    s_json_number (self, "steps", steps);
    s_json_number (self, "max_rate", best_rate);
    s_json_number (self, "max_deliveries_per_second", best_per_second);
    s_json_number (self, "failing_rate", failing_rate);
    if (fraction > 0)
        s_json_number (self, "baseline_fraction", fraction);
    s_json_counts (self, &total);
    s_json_latency (self, "latency", best_delivery);
    s_json_latency (self, "ack_latency", best_ack);
    s_json_number (self, "attach_seconds", attach_seconds);
    int status = s_report_end (self, &total);
    return status || broken || best_rate == 0? -1: 0;
}

//  ---------------------------------------------------------------------------
//  fanout: one room, N members, S senders, R messages a second (or --max)

static int
s_fanout (bench_t *self)
{
    int members = self->members;
    if (self->senders > members)
        self->senders = members;
    s_new_users (self, members, "fanout");
    if (!self->quiet)
        fprintf (stderr, "fanout: enrolling %d members in %s0\n", members, self->room);
    if (s_enroll_rooms (self, 1, members))
        return s_setup_failed (self, "fanout");
    static const action_t attach [] = { ACT_RESUME, ACT_STAY };
    double attach_seconds = s_run_phase (self, attach, 0, members, "attach");
    if (attach_seconds < 0 || self->error_total)
        return s_setup_failed (self, "fanout");
    s_pick_room_senders (self, 1, members, self->senders);
    //  Let presence events and join notices settle before measuring
    s_settle (self, 1.5);
    if (self->max)
        return s_fanout_max (self, attach_seconds);
    tally_t tally = s_measure (self);
    char mode [48], label [128];
    s_mode_label (self, mode, sizeof mode);
    snprintf (label, sizeof label, "fanout N=%d S=%d %s %.1fs", members, self->senders, mode,
              tally.send_seconds);
    s_report_begin (self, "fanout", label, &tally);
    if (self->baseline_p50 > 0)
        printf (", p50 %.1fx baseline", tally.delivery.p50 / self->baseline_p50);
    s_json_number (self, "members", members);
    s_json_number (self, "senders", self->senders);
    s_json_number (self, "duration", self->duration);
    s_json_number (self, "attach_seconds", attach_seconds);
    if (self->baseline_p50 > 0)
        s_json_number (self, "p50_vs_baseline", tally.delivery.p50 / self->baseline_p50);
    return s_report_end (self, &tally);
}

//  ---------------------------------------------------------------------------
//  rooms: M rooms of K members, all talking at once

static int
s_rooms (bench_t *self)
{
    int rooms = self->rooms, per_room = self->room_members;
    int senders = self->senders < per_room? self->senders: per_room;
    s_new_users (self, rooms * per_room, "rooms");
    if (!self->quiet)
        fprintf (stderr, "rooms: enrolling %d rooms of %d members\n", rooms, per_room);
    if (s_enroll_rooms (self, rooms, per_room))
        return s_setup_failed (self, "rooms");
    static const action_t attach [] = { ACT_RESUME, ACT_STAY };
    double attach_seconds = s_run_phase (self, attach, 0, rooms * per_room, "attach");
    if (attach_seconds < 0 || self->error_total)
        return s_setup_failed (self, "rooms");
    s_pick_room_senders (self, rooms, per_room, senders);
    s_settle (self, 1.5);
    tally_t tally = s_measure (self);
    char mode [48], label [128];
    s_mode_label (self, mode, sizeof mode);
    snprintf (label, sizeof label, "rooms M=%d K=%d S=%d %s %.1fs", rooms, per_room, senders, mode,
              tally.send_seconds);
    s_report_begin (self, "rooms", label, &tally);
    s_json_number (self, "rooms", rooms);
    s_json_number (self, "room_members", per_room);
    s_json_number (self, "senders_per_room", senders);
    s_json_number (self, "attach_seconds", attach_seconds);
    return s_report_end (self, &tally);
}

//  ---------------------------------------------------------------------------
//  pm: P pairs; both users of each pair send to the other

static int
s_pm (bench_t *self)
{
    int users = self->pairs * 2;
    s_new_users (self, users, "pm");
    self->group_size = self->recipients = 2;
    self->private_messages = true;
    self->sender_count = 0;
    for (int user = 0; user < users; user++) {
        self->conns [user].group = user / 2;
        self->sender_list [self->sender_count++] = user;
    }
    if (!self->quiet)
        fprintf (stderr, "pm: registering %d users\n", users);
    double register_seconds = s_run_phase (self, s_register_and_stay, 0, users, "register");
    if (register_seconds < 0 || self->error_total)
        return s_setup_failed (self, "pm");
    s_settle (self, 1.5);
    tally_t tally = s_measure (self);
    char mode [48], label [128];
    s_mode_label (self, mode, sizeof mode);
    snprintf (label, sizeof label, "pm P=%d %s %.1fs", self->pairs, mode, tally.send_seconds);
    s_report_begin (self, "pm", label, &tally);
    s_json_number (self, "pairs", self->pairs);
    return s_report_end (self, &tally);
}

//  ---------------------------------------------------------------------------
//  latency: two members of a room, one message at a time, on an idle server

static int
s_latency (bench_t *self)
{
    s_new_users (self, 2, "latency");
    if (s_enroll_rooms (self, 1, 2))
        return s_setup_failed (self, "latency");
    static const action_t attach [] = { ACT_RESUME, ACT_STAY };
    if (s_run_phase (self, attach, 0, 2, "attach") < 0 || self->error_total)
        return s_setup_failed (self, "latency");
    s_pick_room_senders (self, 1, 2, 1);
    s_settle (self, 1.5);
    //  Closed loop, one at a time: the next goes when the other member has
    //  the message and the sender its ok
    double rate = self->rate;
    int inflight = self->inflight;
    self->rate = 0;
    self->inflight = 1;
    self->wait_delivery = true;
    tally_t tally = s_measure (self);
    char label [96];
    snprintf (label, sizeof label, "latency %" PRIu64 " messages in %.1fs", tally.sent, tally.send_seconds);
    s_report_begin (self, "latency", label, &tally);
    self->rate = rate;
    self->inflight = inflight;
    return s_report_end (self, &tally);
}

//  ---------------------------------------------------------------------------
//  history: a room of H entries, filled fast, then paged backwards by C readers

//  One request of the measured phase other than a send (body: its fields
//  after the id, as JSON), answered and counted as a send is
static void
s_send_tracked (bench_t *self, conn_t *conn, const char *body)
{
    uint64_t index = self->messages_sent++;
    s_reserve_messages (self, index + 1);
    self->message_sender [index] = (uint32_t) conn->user + 1;
    self->message_sent_ns [index] = s_now_ns ();
    conn->inflight++;
    s_send_json (self, conn, "{\"id\":%" PRIu64 ",%s}", SEND_ID_BASE + index, body);
}

//  The authors (users) of the D oldest messages the fill stored; false
//  unless the fill stored D messages with consecutive seqs
static bool
s_decorated_authors (bench_t *self, int *authors)
{
    int64_t first = 0;
    for (uint64_t index = 0; index < self->messages_sent; index++)
        if (self->acked [index] == 1 && (!first || self->message_seq [index] < first))
            first = self->message_seq [index];
    int found = 0;
    for (uint64_t index = 0; index < self->messages_sent; index++) {
        int64_t offset = self->message_seq [index] - first;
        if (self->acked [index] == 1 && offset < self->decorate) {
            authors [offset] = (int) self->message_sender [index] - 1;
            found++;
        }
    }
    self->decorated_first = first;
    return first > 0 && found == self->decorate;
}

//  --decorate D: the D oldest messages each get an edit by their author and
//  a reaction from every filler (DECORATE_EMOJI emoji among them), so that a
//  page of D messages carries both. Returns -1 when one was refused.
static int
s_decorate (bench_t *self, int fillers)
{
    static const char *emoji [DECORATE_EMOJI] = {
        "\xf0\x9f\x91\x8d", "\xe2\x9d\xa4\xef\xb8\x8f", "\xf0\x9f\x8e\x89"
    };
    int *authors = s_alloc (sizeof (int) * (size_t) self->decorate);
    if (!s_decorated_authors (self, authors)) {
        free (authors);
        return -1;
    }
    char room [96], body [512];
    s_room_name (self, 0, room, sizeof room);
    s_reset_measure (self, (size_t) self->decorate * (size_t) (fillers + 1));
    self->recipients = 0;
    self->measuring = true;
    for (int offset = 0; offset < self->decorate; offset++) {
        int64_t target = self->decorated_first + offset;
        snprintf (body, sizeof body, "\"type\":\"msg.edit\",\"room\":\"%s\",\"seq\":%" PRId64
                  ",\"text\":\"pb edited %" PRId64 "\"", room, target, target);
        s_send_tracked (self, &self->conns [authors [offset]], body);
        for (int user = 0; user < fillers; user++) {
            snprintf (body, sizeof body, "\"type\":\"msg.react\",\"room\":\"%s\",\"seq\":%" PRId64
                      ",\"emoji\":\"%s\"", room, target, emoji [user % DECORATE_EMOJI]);
            s_send_tracked (self, &self->conns [user], body);
        }
    }
    free (authors);
    s_drain (self, 30);
    self->measuring = false;
    if (!self->quiet)
        fprintf (stderr, "history: decorated %d messages from seq %" PRId64 ": %" PRIu64
                 " changes acked, %" PRIu64 " refused\n", self->decorate, self->decorated_first,
                 self->messages_acked, self->messages_failed);
    return self->messages_acked == self->messages_sent? 0: -1;
}

static int
s_history (bench_t *self)
{
    int fillers = self->senders, readers = self->readers, users = fillers + readers;
    s_new_users (self, users, "history");
    if (!self->quiet)
        fprintf (stderr, "history: %d fillers, %d readers\n", fillers, readers);
    if (s_enroll_rooms (self, 1, users))
        return s_setup_failed (self, "history");
    static const action_t attach [] = { ACT_RESUME, ACT_STAY };
    if (s_run_phase (self, attach, 0, fillers, "attach fillers") < 0 || self->error_total)
        return s_setup_failed (self, "history");
    s_pick_room_senders (self, 1, users, fillers);
    s_settle (self, 0.5);
    //  1. Fill: every filler pipelines `inflight` msg.send; only they are
    //  online, so each entry goes to them alone
    self->recipients = fillers;
    s_reset_measure (self, (size_t) self->entries);
    self->measuring = true;
    double fill_window = s_send_closed_loop (self, self->timeout, (uint64_t) self->entries);
    s_drain (self, 15);
    self->measuring = false;
    tally_t fill = s_tally (self, fill_window);
    self->fill_acked = fill.acked;
    if (!self->quiet)
        fprintf (stderr, "history: filled %" PRIu64 " entries at %.0f/s, last seq %" PRId64 "\n",
                 fill.acked, fill.acked_per_second, self->max_acked_seq);
    if (self->decorate && s_decorate (self, fillers))
        return s_setup_failed (self, "history --decorate");
    //  2. Page: each reader walks from the newest entry to seq 1, again and
    //  again, for the duration; every page is checked
    if (s_run_phase (self, attach, fillers, users, "attach readers") < 0)
        return s_setup_failed (self, "history");
    s_settle (self, 0.5);
    self->reply_latency.size = 0;
    self->pages = self->page_entries = self->bad_pages = self->passes = 0;
    self->measuring = self->paging = self->paging_open = true;
    uint64_t started = s_now_ns ();
    for (int user = fillers; user < users; user++) {
        self->conns [user].page_before = 0;
        self->conns [user].pass_entries = self->conns [user].pass_messages = 0;
        s_request_page (self, &self->conns [user]);
    }
    while (s_seconds_since (started) < self->duration && !s_interrupted)
        s_poll (self, 5);
    self->paging_open = false;
    double seconds = s_seconds_since (started);
    s_drain (self, 15);
    self->measuring = self->paging = false;
    percentiles_t page = s_percentiles (&self->reply_latency);
    printf ("history H=%d F=%d C=%d page %d", self->entries, fillers, readers,
            self->decorate? self->decorate: self->page);
    if (self->decorate)
        printf (" (the %d oldest messages, each edited and reacted to by %d)", self->decorate,
                fillers);
    printf (" %.1fs: fill %" PRIu64 " of %d acked (%.0f/s), ", seconds, fill.acked, self->entries,
            fill.acked_per_second);
    s_print_counts (&fill, true);
    s_print_latency ("fill ack", fill.ack);
    printf ("; pages %" PRIu64 " (%.0f/s), entries %" PRIu64 " (%.0f/s), page us p50 %.0f p99 %.0f"
            " max %.0f, walks %" PRIu64 ", bad pages %" PRIu64 ", errors %" PRIu64,
            self->pages, self->pages / seconds, self->page_entries, self->page_entries / seconds,
            page.p50, page.p99, page.max, self->passes, self->bad_pages, self->error_total);
    s_json_begin (self, "history");
    s_json_number (self, "entries", self->entries);
    s_json_number (self, "fillers", fillers);
    s_json_number (self, "readers", readers);
    s_json_number (self, "page", self->decorate? self->decorate: self->page);
    s_json_number (self, "decorated", self->decorate);
    s_json_number (self, "inflight", self->inflight);
    s_json_counts (self, &fill);
    s_json_number (self, "fill_per_second", fill.acked_per_second);
    s_json_latency (self, "latency", fill.delivery);
    s_json_latency (self, "ack_latency", fill.ack);
    s_json_number (self, "last_seq", (double) self->max_acked_seq);
    s_json_number (self, "duration", seconds);
    s_json_number (self, "pages", (double) self->pages);
    s_json_number (self, "pages_per_second", self->pages / seconds);
    s_json_number (self, "page_entries", (double) self->page_entries);
    s_json_number (self, "entries_per_second", self->page_entries / seconds);
    s_json_number (self, "page_latency_p50_us", page.p50);
    s_json_number (self, "page_latency_p99_us", page.p99);
    s_json_number (self, "page_latency_max_us", page.max);
    s_json_number (self, "walks", (double) self->passes);
    s_json_number (self, "bad_pages", (double) self->bad_pages);
    int status = s_report_end (self, &fill);
    return status || fill.acked != (uint64_t) self->entries || self->pages == 0 || self->bad_pages? -1: 0;
}

//  ---------------------------------------------------------------------------
//  search: M rooms (one creator each) filled with H messages through the
//  server's own msg.send at full speed, a searcher in K of them; then the
//  searcher's searches for a common word and a rare one, one at a time

//  Sends the searcher's request (a JSON object after its id) and waits for
//  its reply; returns 0 when it came, -1 when it did not in time
static int
s_search_call (bench_t *self, conn_t *conn, const char *fields)
{
    self->search_id = ++self->page_ids;
    s_send_json (self, conn, "{\"id\":%" PRId64 ",%s}", self->search_id, fields);
    uint64_t started = s_now_ns ();
    while (self->search_id && conn->fd >= 0 && !s_interrupted
    &&     s_seconds_since (started) < self->timeout)
        s_poll (self, 5);
    return self->search_id? -1: 0;
}

//  The rooms the searcher is in: K spread over the M
static int
s_search_room (bench_t *self, int index)
{
    return (int) ((int64_t) index * self->rooms / self->member_of);
}

//  The messages of the fill in the searcher's rooms that hold a word
static void
s_search_expected (bench_t *self, uint64_t *common_p, uint64_t *rare_p)
{
    bool *joined = (bool *) calloc ((size_t) self->rooms, sizeof (bool));
    for (int index = 0; joined && index < self->member_of; index++)
        joined [s_search_room (self, index)] = true;
    *common_p = *rare_p = 0;
    //  A prepared store: message i is in room i % M (search-store.py)
    for (uint64_t index = 0; joined && self->prepared && index < (uint64_t) self->entries;
         index++)
        if (joined [index % (uint64_t) self->rooms]) {
            *common_p += s_search_is_common (index);
            *rare_p += s_search_is_rare (self, index);
        }
    for (uint64_t index = 0; joined && !self->prepared && index < self->messages_sent; index++) {
        uint32_t sender = self->message_sender [index];
        if (self->acked [index] != 1 || !sender || !joined [self->conns [sender - 1].group])
            continue;
        *common_p += s_search_is_common (index);
        *rare_p += s_search_is_rare (self, index);
    }
    free (joined);
}

//  The searcher (user searcher) registers and joins its K rooms
static int
s_search_join (bench_t *self, int searcher)
{
    static const action_t stay [] = { ACT_REGISTER, ACT_STAY };
    if (s_run_phase (self, stay, searcher, searcher + 1, "searcher") < 0 || self->error_total)
        return -1;
    self->searching = true;
    for (int index = 0; index < self->member_of; index++) {
        char room [96], fields [160];
        s_room_name (self, s_search_room (self, index), room, sizeof room);
        snprintf (fields, sizeof fields, "\"type\":\"room.join\",\"room\":\"%s\"", room);
        if (s_search_call (self, &self->conns [searcher], fields) || !self->search_ok)
            return -1;
    }
    self->searching = false;
    return 0;
}

//  Sets up the rooms, the searcher's joins and the fill; the fill's tally
static int
s_search_fill (bench_t *self, tally_t *fill)
{
    int rooms = self->rooms, searcher = rooms;
    if (s_enroll_rooms (self, rooms, 1))
        return -1;
    if (s_search_join (self, searcher))
        return -1;
    //  Offline during the fill: each message goes to its creator alone
    s_close (self, &self->conns [searcher]);
    static const action_t attach [] = { ACT_RESUME, ACT_STAY };
    if (s_run_phase (self, attach, 0, rooms, "attach creators") < 0 || self->error_total)
        return -1;
    s_pick_room_senders (self, rooms, 1, 1);
    s_settle (self, 0.5);
    self->recipients = 1;
    self->search_words = true;
    s_reset_measure (self, (size_t) self->entries);
    self->measuring = true;
    double window = s_send_closed_loop (self, self->timeout, (uint64_t) self->entries);
    s_drain (self, 15);
    self->measuring = self->search_words = false;
    *fill = s_tally (self, window);
    s_close_range (self, 0, rooms);
    if (s_run_phase (self, attach, searcher, searcher + 1, "attach searcher") < 0)
        return -1;
    return 0;
}

//  The searcher's searches, common and rare by turns, for the duration:
//  each one's latency, and its results checked against what the fill stored
static int
s_search (bench_t *self)
{
    int rooms = self->rooms, searcher = self->prepared? 0: rooms;
    s_new_users (self, searcher + 1, "search");
    tally_t fill = { 0 };
    if (self->prepared) {
        //  The rooms and messages are in the store already (search-store.py)
        snprintf (self->room, sizeof self->room, "%sroom", self->prepared);
        if (s_search_join (self, searcher))
            return s_setup_failed (self, "search");
        fill.acked = (uint64_t) self->entries;
    }
    else
    if (s_search_fill (self, &fill))
        return s_setup_failed (self, "search");
    uint64_t common, rare;
    s_search_expected (self, &common, &rare);
    samples_t latency [2] = { { 0 } };
    uint64_t searches [2] = { 0, 0 }, wrong = 0;
    const char *word [2] = { SEARCH_COMMON, SEARCH_RARE };
    uint64_t expected [2] = { common, rare };
    self->searching = true;
    uint64_t started = s_now_ns ();
    for (int turn = 0; s_seconds_since (started) < self->duration && !s_interrupted; turn ^= 1) {
        char fields [160];
        snprintf (fields, sizeof fields, "\"type\":\"search\",\"query\":\"%s\",\"limit\":20",
                  word [turn]);
        uint64_t sent = s_now_ns ();
        if (s_search_call (self, &self->conns [searcher], fields))
            break;
        s_add_sample (&latency [turn], sent, s_now_ns ());
        searches [turn]++;
        //  The first page: every match up to 20, and next when more exist
        uint64_t want = expected [turn] < 20? expected [turn]: 20;
        if (!self->search_ok || (uint64_t) self->search_results != want
        ||  self->search_next != (expected [turn] > 20))
            wrong++;
    }
    self->searching = false;
    double seconds = s_seconds_since (started);
    percentiles_t common_us = s_percentiles (&latency [0]), rare_us = s_percentiles (&latency [1]);
    free (latency [0].values);
    free (latency [1].values);
    printf ("search M=%d H=%d K=%d%s %.1fs: fill %" PRIu64 " of %d acked (%.0f/s); searcher's matches"
            " common %" PRIu64 ", rare %" PRIu64 "; search us common p50 %.0f p99 %.0f (%" PRIu64
            "), rare p50 %.0f p99 %.0f (%" PRIu64 "), wrong %" PRIu64 ", errors %" PRIu64,
            rooms, self->entries, self->member_of, self->prepared? " prepared": "", seconds,
            fill.acked, self->entries,
            fill.acked_per_second, common, rare, common_us.p50, common_us.p99, searches [0],
            rare_us.p50, rare_us.p99, searches [1], wrong, self->error_total);
    s_print_line_end (self);
    s_print_errors (self);
    s_json_begin (self, "search");
    s_json_number (self, "rooms", rooms);
    s_json_number (self, "entries", self->entries);
    s_json_number (self, "member_of", self->member_of);
    s_json_counts (self, &fill);
    s_json_number (self, "fill_per_second", fill.acked_per_second);
    s_json_number (self, "common_matches", (double) common);
    s_json_number (self, "rare_matches", (double) rare);
    s_json_number (self, "common_searches", (double) searches [0]);
    s_json_number (self, "rare_searches", (double) searches [1]);
    s_json_latency (self, "common", common_us);
    s_json_latency (self, "rare", rare_us);
    s_json_number (self, "wrong", (double) wrong);
    s_json_end (self);
    s_close_all (self);
    return fill.acked != (uint64_t) self->entries || wrong || !searches [0] || !searches [1]
        || self->error_total? -1: 0;
}

//  ---------------------------------------------------------------------------
//  connect: N connections that register and stay, then N that resume

static int
s_connect_storm (bench_t *self)
{
    int count = self->members;
    s_new_users (self, count, "connect");
    long rss_before = s_server_rss_kb (self);
    static const action_t resuming [] = { ACT_RESUME, ACT_STAY };
    if (!self->quiet)
        fprintf (stderr, "connect: %d connections that register\n", count);
    double register_seconds = s_run_phase (self, s_register_and_stay, 0, count, "register");
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
    printf (", errors %" PRIu64, self->error_total);
    s_print_line_end (self);
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
//  --idle: N users online and quiet through every scenario, as on a real
//  server; they register like connect's storm, before the first scenario

//  Returns 0, or -1 (said, and written as the scenario "idle") if any of them
//  did not register and stay
static int
s_idle_start (bench_t *self)
{
    s_new_prefix (self, "idle");
    s_reset_errors (self);
    self->idle_frames = 0;
    if (!self->quiet)
        fprintf (stderr, "idle: %d connections that register and stay\n", self->idle);
    int first = self->idle_first, end = self->idle_first + self->idle;
    double seconds = s_run_phase (self, s_register_and_stay, first, end, "idle register");
    //  The storm's presence events pass before the scenarios measure
    s_settle (self, 2);
    if (seconds < 0 || s_idle_open (self) < self->idle || self->error_total)
        return s_setup_failed (self, "idle");
    if (!self->quiet)
        fprintf (stderr, "idle: %d open, registered at %.0f conn/s, %" PRIu64 " frames since\n",
                 s_idle_open (self), self->idle / seconds, self->idle_frames);
    return 0;
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
    double rate = self->rate > 0? self->rate: 100;     //  a rate even when fanout runs closed loop
    s_new_users (self, members, "baseline");
    char room [96];
    s_room_name (self, 0, room, sizeof room);
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
        s_raw_server (listener, members, commands [0], results [1], room);
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
        size_t cap = (size_t) (rate * self->duration) + 16;
        s_reset_measure (self, cap);
        self->measuring = true;
        baseline_command_t command = { rate, self->duration };
        if (write (commands [1], &command, sizeof command) != sizeof command)
            return -1;
        //  Keep reading while the server writes, as fanout does
        uint64_t rate_started = s_now_ns ();
        while (s_seconds_since (rate_started) < self->duration)
            s_poll (self, 1);
        if (read (results [0], &rate_sent, sizeof rate_sent) != sizeof rate_sent)
            return -1;
        self->messages_sent = self->messages_acked = rate_sent;
        s_drain (self, 15);
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
        s_drain (self, 15);
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
            ", gaps %" PRIu64 ", errors %" PRIu64,
            members, rate, self->duration, latency_rate_deliveries, rate_loss, latency.p50,
            latency.p99, latency.p999, latency.max, ceiling, flood_sent, flood_loss, self->gaps,
            self->error_total);
    s_print_line_end (self);
    s_print_errors (self);
    s_json_begin (self, "baseline");
    s_json_number (self, "members", members);
    s_json_number (self, "rate", rate);
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
"            seconds (or closed loop, --rate 0). Each message text carries the\n"
"            sender's clock; every member must receive every acknowledged message\n"
"            once, in seq order: loss, duplicates and seq gaps are counted.\n"
"            Reports deliveries/s and the latency from send to each other\n"
"            member's delivery and to the ok (p50, p99, p99.9, max).\n"
"            With --max, R is raised step by step instead (--step seconds each,\n"
"            doubling from --rate, then bisecting) while the delivery p99 stays\n"
"            under --p99-bound with nothing lost; reports the highest rate that\n"
"            held, in messages/s and deliveries/s, and as a fraction of baseline's\n"
"            ceiling when baseline ran first.\n"
"  rooms     M rooms (--rooms) of K members (--room-members), set up like fanout;\n"
"            the first S members of each room (--senders, all K by default) send\n"
"            at once: --rate R in total, or with --rate 0 closed loop, each sender\n"
"            keeping --inflight W msg.send outstanding and sending the next as\n"
"            each ok arrives. Reports acked msg.send/s (durable: ok comes after\n"
"            the store's commit), deliveries/s, ack latency (send to ok) and\n"
"            delivery latency (send to each other member's event), loss (every\n"
"            member of a room must get every acked message of its room),\n"
"            duplicates, seq gaps per member, errors by code.\n"
"  pm        P pairs of users (--pairs) send each other pm.send, both ways, at\n"
"            --rate or closed loop; both users get every message once, in the\n"
"            conversation's seq order. Same figures as rooms.\n"
"  history   One room of H entries (--entries): S members (--senders) fill it,\n"
"            closed loop with --inflight W each (the fill rate is its own\n"
"            figure); then C readers (--readers) page room.history backwards,\n"
"            200 entries a page (the protocol's limit), from the newest to seq 1\n"
"            and again, for --duration. Every page is checked: its count, seqs\n"
"            consecutive and contiguous with the previous page, 'more', and each\n"
"            walk to seq 1 must have read every entry. Reports pages/s,\n"
"            entries/s, page latency, walks, bad pages.\n"
"  search    M rooms (--rooms) of one creator each, a searcher in K of them\n"
"            (--member-of); the creators fill them with H messages (--entries)\n"
"            by msg.send, closed loop (or --prepared: the store holds them\n"
"            already); then the searcher searches a common and a rare word by\n"
"            turns for --duration, each first page checked against the\n"
"            matches. Reports the fill rate and each word's p50/p99.\n"
"  latency   Two members of a room on an idle server; one sends a msg.send, waits\n"
"            for the other's delivery and its own ok, then sends the next, for\n"
"            --duration (or --count messages). Reports send-to-delivery and\n"
"            send-to-ok p50, p99, p99.9, max.\n"
"  connect   N connections register and stay (register storm, connections/s),\n"
"            then the server's RSS (--server-pid) gives memory per idle\n"
"            authenticated session; all close, and N connections resume the same\n"
"            tokens (resume storm, connections/s).\n"
"\n"
"Options:\n"
"  --url URL          ws://HOST:PORT/PATH of parley (numeric host), default ws://127.0.0.1:8080/ws;\n"
"                     wss:// for TLS (the server's certificate is not checked)\n"
"  --members N        fanout, baseline, connect: connections / room members (default 100;\n"
"                     at most %d; a room holds at most 10000)\n"
"  --senders S        fanout: members that send (default 10); rooms: senders per room\n"
"                     (at most K); history: members that fill the room\n"
"  --rate R           messages a second, all senders together (default 100); 0: closed\n"
"                     loop (fanout, rooms, pm), as fast as the oks allow\n"
"  --inflight W       closed loop: sends outstanding per sender, 1..%d (default 4)\n"
"  --duration SEC     seconds of sending, or of paging for history (default 10)\n"
"  --count N          send N messages in all and stop (instead of --duration)\n"
"  --rooms M          rooms: how many rooms (default 100)\n"
"  --room-members K   rooms: members of each room, 2..10000 (default 5)\n"
"  --pairs P          pm: pairs of users (default 100)\n"
"  --entries H        history: entries to fill the room with (default 100000)\n"
"  --readers C        history: clients that page (default 10)\n"
"  --page N           history: entries a page, 1..200 (default 200)\n"
"  --decorate D       history: after the fill, the D oldest messages are each edited\n"
"                     by their author and reacted to by every filler (3 emoji); the\n"
"                     readers then ask for the page of those D messages again and\n"
"                     again, checking that each comes as it is now (edited, with\n"
"                     its reactions): room.history of messages with their changes\n"
"  --member-of K      search: the searcher joins K of the M rooms (default 50, or M when fewer)\n"
"  --prepared PREFIX  search: the M rooms and H messages are in the store already\n"
"                     (integration-tests/bench/search-store.py --prefix PREFIX): no\n"
"                     fill, the searcher joins PREFIXroom<g> and searches\n"
"  --max              fanout: search the highest rate that holds (see fanout)\n"
"  --p99-bound MS     --max: a step holds while delivery p99 <= MS (default 50)\n"
"  --step SEC         --max: seconds of sending per step (default 3)\n"
"  --max-rate R       --max: never try more than R messages a second (default 1000000)\n"
"  --max-steps N      --max: at most N steps (default 12)\n"
"  --window W         connections in setup at once (default 200; auth.queue is 256)\n"
"  --sources K        spread source addresses over 127.0.0.1..K (default: enough for\n"
"                     the gateway's limits per address: at most 900 connections and\n"
"                     40 of the setup window on each)\n"
"  --idle N           before the first scenario, N more connections register (like\n"
"                     connect's, --window at a time) and stay open, authenticated and\n"
"                     quiet, through every scenario: the other users online. The tool\n"
"                     reads and counts what they get (presence events); an error reply\n"
"                     or a close fails the scenario it happens in. Summary lines say\n"
"                     'idle N (O open, F frames)'; the JSON has idle, idle_open and\n"
"                     idle_frames. A scenario's connections plus N: at most %d\n"
"  --server-pid PID   parley's process: its RSS (connect), and its CPU time per acked\n"
"                     message over the sending phase and its drain (fanout, rooms, pm,\n"
"                     latency), and per delivery its own, this tool's and its main\n"
"                     thread's (the gateway's loop)\n"
"  --timeout SEC      a setup phase (or a --count run) may take this long (default 300)\n"
"  --file-size BYTES  files: bytes of each file (default 10485760, the upload limit)\n"
"  --repeat N         files: uploads, then downloads, one at a time (default 5; the\n"
"                     median is reported)\n"
"  --uploads U        files: uploads at once, one thread each (default 20); with\n"
"                     --server-pid the gateway's process, its RSS is read every 10 ms\n"
"                     (run parley-gw apart from parley to see the gateway's own)\n"
"  --json FILE        write every scenario's figures to FILE\n"
"  --nonce[=SHAPE]    each msg.send and pm.send carries a nonce of its own (PROTOCOL.md\n"
"                     1.1): the send path with the store's nonce index. SHAPE: time\n"
"                     (default: the web client's, the time in base 36 first), random\n"
"                     (32 hex digits, as a UUID), counter (the run's prefix and the\n"
"                     message's number in decimal)\n"
"  --quiet            no progress lines on stderr\n"
"  --help\n"
"\n"
"Start parley with cheap hashes and no message rate limit, e.g.:\n"
"  parley --listen 127.0.0.1:8080 --data DIR --option auth.ops_limit=1 \\\n"
"         --option auth.mem_limit=8192 --option rooms.msg_rate=0 --option pm.msg_rate=0\n",
        MAX_CONNS, MAX_INFLIGHT, MAX_CONNS);
}

static int
s_parse_url (bench_t *self, const char *url)
{
    bool wss = strncmp (url, "wss://", 6) == 0;
    if (strncmp (url, "ws://", 5) != 0 && !wss)
        return -1;
    if (wss && !self->tls) {
        //  A load generator, not a client to trust: any certificate will do
        self->tls = SSL_CTX_new (TLS_client_method ());
        SSL_CTX_set_verify (self->tls, SSL_VERIFY_NONE, NULL);
    }
    const char *host = url + (wss? 6: 5);
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

//  files: POST /files and GET /files/<id> (bench_files.c), plain HTTP only
static int
s_files (bench_t *self)
{
    if (self->tls) {
        fprintf (stderr, "parley-bench: files: plain ws:// only\n");
        return -1;
    }
    bench_files_t files = {
        .host = self->host, .port = self->port, .ws_path = self->path,
        .size = self->file_size, .repeat = self->file_repeat, .uploads = self->file_uploads,
        .gateway_pid = self->server_pid, .json = self->json, .json_count = &self->json_count
    };
    return bench_files_run (&files);
}

int
main (int argc, char **argv)
{
    bench_t bench = {
        .members = 100, .senders = 10, .rate = 100, .duration = 10, .window = 200,
        .timeout = 300, .epoll_fd = -1, .inflight = 4, .rooms = 100, .room_members = 5,
        .pairs = 100, .entries = 100000, .readers = 10, .page = HISTORY_PAGE, .p99_bound_ms = 50, .step_seconds = 3,
        .max_rate = 1e6, .max_steps = 12, .file_size = 10 * 1024 * 1024, .file_repeat = 5,
        .file_uploads = 20, .member_of = 0
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
        { "idle", required_argument, NULL, 'I' },
        { "server-pid", required_argument, NULL, 'p' },
        { "timeout", required_argument, NULL, 't' },
        { "json", required_argument, NULL, 'j' },
        { "inflight", required_argument, NULL, 'W' },
        { "count", required_argument, NULL, 'c' },
        { "rooms", required_argument, NULL, 'M' },
        { "room-members", required_argument, NULL, 'K' },
        { "pairs", required_argument, NULL, 'P' },
        { "entries", required_argument, NULL, 'H' },
        { "readers", required_argument, NULL, 'C' },
        { "max", no_argument, NULL, 'x' },
        { "p99-bound", required_argument, NULL, 'b' },
        { "step", required_argument, NULL, 'e' },
        { "max-rate", required_argument, NULL, 'X' },
        { "max-steps", required_argument, NULL, 'S' },
        { "quiet", no_argument, NULL, 'q' },
        { "nonce", optional_argument, NULL, 'N' },
        { "page", required_argument, NULL, 'G' },
        { "decorate", required_argument, NULL, 'D' },
        { "member-of", required_argument, NULL, 'O' },
        { "prepared", required_argument, NULL, 'Q' },
        { "file-size", required_argument, NULL, 'F' },
        { "repeat", required_argument, NULL, 'R' },
        { "uploads", required_argument, NULL, 'U' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int option;
    while ((option = getopt_long (argc, argv, "h", options, NULL)) != -1) {
        switch (option) {
            case 'u':
                if (s_parse_url (self, optarg)) {
                    fprintf (stderr, "parley-bench: --url %s: expected ws://A.B.C.D:PORT/PATH "
                             "(or wss://)\n", optarg);
                    return 2;
                }
                break;
            case 'n': self->members = atoi (optarg); break;
            case 's': self->senders = atoi (optarg); break;
            case 'r': self->rate = atof (optarg); break;
            case 'd': self->duration = atof (optarg); break;
            case 'w': self->window = atoi (optarg); break;
            case 'a': self->sources = atoi (optarg); break;
            case 'I': self->idle = atoi (optarg); break;
            case 'p': self->server_pid = atoi (optarg); break;
            case 't': self->timeout = atof (optarg); break;
            case 'j': self->json_path = optarg; break;
            case 'W': self->inflight = atoi (optarg); break;
            case 'c': self->count = strtoull (optarg, NULL, 10); break;
            case 'M': self->rooms = atoi (optarg); break;
            case 'K': self->room_members = atoi (optarg); break;
            case 'P': self->pairs = atoi (optarg); break;
            case 'H': self->entries = atoi (optarg); break;
            case 'C': self->readers = atoi (optarg); break;
            case 'x': self->max = true; break;
            case 'b': self->p99_bound_ms = atof (optarg); break;
            case 'e': self->step_seconds = atof (optarg); break;
            case 'X': self->max_rate = atof (optarg); break;
            case 'S': self->max_steps = atoi (optarg); break;
            case 'q': self->quiet = true; break;
            case 'N':
                self->nonce = !optarg || streq (optarg, "time")? S_NONCE_TIME
                            : streq (optarg, "random")? S_NONCE_RANDOM
                            : streq (optarg, "counter")? S_NONCE_COUNTER: -1;
                if (self->nonce < 0) {
                    fprintf (stderr, "parley-bench: --nonce is time, random or counter\n");
                    return 2;
                }
                break;
            case 'G': self->page = atoi (optarg); break;
            case 'D': self->decorate = atoi (optarg); break;
            case 'O': self->member_of = atoi (optarg); break;
            case 'Q': self->prepared = optarg; break;
            case 'F': self->file_size = strtoull (optarg, NULL, 10); break;
            case 'R': self->file_repeat = atoi (optarg); break;
            case 'U': self->file_uploads = atoi (optarg); break;
            case 'h': s_usage (stdout); return 0;
            default: s_usage (stderr); return 2;
        }
    }
    if (optind >= argc) {
        s_usage (stderr);
        return 2;
    }
    if (self->members < 1 || self->members > MAX_CONNS || self->senders < 1 || self->rate < 0
    ||  self->duration <= 0 || self->window < 1 || self->sources < 0 || self->sources > 250
    ||  self->inflight < 1 || self->inflight > MAX_INFLIGHT || self->rooms < 1
    ||  self->room_members < 2 || self->room_members > 10000 || self->pairs < 1
    ||  self->entries < 1 || self->readers < 1 || self->p99_bound_ms <= 0
    ||  self->member_of < 0 || self->member_of > self->rooms
    ||  self->step_seconds <= 0 || self->max_rate < 1 || self->max_steps < 1
    ||  self->idle < 0 || self->idle > MAX_CONNS || self->page < 1 || self->page > HISTORY_PAGE
    ||  self->decorate < 0 || self->decorate > HISTORY_PAGE || self->decorate > self->entries) {
        fprintf (stderr, "parley-bench: --members 1..%d, --senders >= 1, --rate >= 0, --duration > 0,"
                         " --window >= 1, --sources 0..250, --inflight 1..%d, --rooms >= 1,"
                         " --room-members 2..10000, --pairs >= 1, --entries >= 1, --readers >= 1,"
                         " --p99-bound > 0, --step > 0, --max-rate >= 1, --max-steps >= 1,"
                         " --idle 0..%d, --page 1..200, --decorate 0..200 and at most --entries,"
                         " --member-of at most --rooms\n",
                 MAX_CONNS, MAX_INFLIGHT, MAX_CONNS);
        return 2;
    }
    //  --member-of defaults to 50, or every room when there are fewer, so that
    //  a scenario other than search never trips on it
    if (self->member_of == 0)
        self->member_of = self->rooms < 50? self->rooms: 50;
    //  Connections each scenario needs: the largest sizes the arrays. The
    //  idle connections are held through every scenario, so each one's
    //  connections and the idle ones must fit together.
    int capacity = 0;
    for (int index = optind; index < argc; index++) {
        const char *name = argv [index];
        long needed = streq (name, "fanout") || streq (name, "baseline") || streq (name, "connect")
                    ? self->members:
                      streq (name, "rooms")? (long) self->rooms * self->room_members:
                      streq (name, "pm")? (long) self->pairs * 2:
                      streq (name, "history")? (long) self->senders + self->readers:
                      streq (name, "search")? (self->prepared? 1: (long) self->rooms + 1):
                      streq (name, "latency")? 2:
                      streq (name, "files")? 0: -1;
        if (needed < 0) {
            fprintf (stderr, "parley-bench: unknown scenario '%s' (baseline, fanout, rooms, pm,"
                             " history, search, latency, connect, files)\n", name);
            return 2;
        }
        if (needed + self->idle > MAX_CONNS) {
            fprintf (stderr, "parley-bench: %s needs %ld connections", name, needed);
            if (self->idle)
                fprintf (stderr, " and --idle %d more, %ld at once", self->idle, needed + self->idle);
            fprintf (stderr, "; at most %d (the process may hold 20,000 descriptors)\n", MAX_CONNS);
            return 2;
        }
        if (needed > capacity)
            capacity = (int) needed;
    }
    int connections = capacity + self->idle;
    if (self->sources == 0) {
        //  The gateway takes at most 1,000 connections from one address, 64
        //  of them not signed in (--max-per-address, ...-unauthenticated-...):
        //  stay well below both, since a setup window is not signed in yet
        int for_total = connections / 900 + 1;
        int for_window = self->window / 40 + 1;
        self->sources = for_total > for_window? for_total: for_window;
        if (self->sources > 250)
            self->sources = 250;
    }
    struct rlimit limit;
    getrlimit (RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit (RLIMIT_NOFILE, &limit);
    if ((rlim_t) connections + 64 > limit.rlim_cur) {
        fprintf (stderr, "parley-bench: %d connections (%d of them idle) need more descriptors"
                         " than the limit (%lu)\n",
                 connections, self->idle, (unsigned long) limit.rlim_cur);
        return 2;
    }
    signal (SIGPIPE, SIG_IGN);
    signal (SIGINT, s_on_signal);
    self->rng = (uint32_t) (s_now_ns () ^ (uint64_t) getpid () << 16) | 1;
    self->nonce_salt = s_random (self);
    self->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
    self->capacity = self->idle_first = capacity;
    self->conns = s_alloc (sizeof (conn_t) * (size_t) connections);
    self->users = s_alloc (sizeof (user_t) * (size_t) connections);
    self->sender_list = s_alloc (sizeof (int) * (size_t) capacity);
    for (int index = 0; index < connections; index++) {
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
    //  Without all the idle users online, no scenario would measure what was asked
    bool idle_failed = self->idle && s_idle_start (self) != 0;
    int failures = idle_failed;
    for (int index = optind; index < argc && !idle_failed && !s_interrupted; index++) {
        const char *name = argv [index];
        int rc = streq (name, "fanout")? s_fanout (self):
                 streq (name, "baseline")? s_baseline (self):
                 streq (name, "rooms")? s_rooms (self):
                 streq (name, "pm")? s_pm (self):
                 streq (name, "history")? s_history (self):
                 streq (name, "search")? s_search (self):
                 streq (name, "latency")? s_latency (self):
                 streq (name, "files")? s_files (self): s_connect_storm (self);
        if (rc)
            failures++;
        fflush (stdout);
    }
    if (self->json) {
        fprintf (self->json, "\n], \"failures\": %d}\n", failures);
        fclose (self->json);
    }
    s_close_range (self, 0, connections);
    free (self->conns);
    free (self->users);
    free (self->sender_list);
    free (self->acked);
    free (self->delivered);
    free (self->message_sender);
    free (self->message_sent_ns);
    free (self->message_seq);
    free (self->latency.values);
    free (self->reply_latency.values);
    SSL_CTX_free (self->tls);
    close (self->epoll_fd);
    return failures? 1: 0;
}
