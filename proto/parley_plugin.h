/*  =========================================================================
    parley_plugin.h - the plugin ABI: what a plugin exports, what the host offers

    A plugin is a shared object that exports one function, parley_plugin_describe,
    which returns a versioned descriptor. The host (inside parley-broker/parley, or
    in a parley-plugin process) hands the plugin a table of host functions at init.
    The same .so runs in both homes unchanged: the plugin never sees ZeroMQ.

    Compatibility rules (see proto/PLUGIN-ABI.md):
    - A host supports a range of ABI majors; a plugin whose descriptor names a
      major outside that range is refused at load, with a message that names the
      versions the host supports.
    - Within one major, minors only add: new host functions and new descriptor
      callbacks go at the end or into reserved slots, and each struct carries its
      own size, so a plugin built against an older header still loads. What
      each minor added is marked "Minor N" below.
    - A plugin's callbacks never block: blocking work runs on threads the
      plugin owns, which hand results back through host->wake (minor 2).
    - Memory never crosses the boundary to be freed on the other side: the host
      copies what the plugin passes it, and the plugin copies what it wants to
      keep. The one exception is parley_request_t, which the host lends to the
      plugin and takes back through reply / reply_error.
    =========================================================================
*/

#ifndef PARLEY_PLUGIN_H_INCLUDED
#define PARLEY_PLUGIN_H_INCLUDED

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PARLEY_ABI_MAJOR 1
#define PARLEY_ABI_MINOR 4         //  1.1: unbind_sessions, SESSION_RESET,
                                    //  reply_error_body; 1.2: wake, on_wake;
                                    //  1.3: request_time_left, call_within,
                                    //  an error's fields in on_reply;
                                    //  1.4: metric, on_metrics

//  The one symbol a plugin exports
#define PARLEY_PLUGIN_DESCRIBE_SYMBOL "parley_plugin_describe"

#if defined(__GNUC__)
#   define PARLEY_PLUGIN_EXPORT __attribute__ ((visibility ("default")))
#else
#   define PARLEY_PLUGIN_EXPORT
#endif

//  Opaque: the host's handle for one running plugin instance
typedef struct parley_ctx_s parley_ctx_t;
//  Opaque: one request lent to the plugin until it replies
typedef struct parley_request_s parley_request_t;

//  One ABI version, as a host offers it
typedef struct {
    uint32_t major;
    uint32_t minor;
} parley_abi_t;

//  --------------------------------------------------------------------------
//  Routes: which message types a plugin serves

//  The route may be used before the session is authenticated (auth.*).
#define PARLEY_ROUTE_PUBLIC     (1u << 0)
//  Only other plugins may send these (store.*); a client gets unknown_type.
#define PARLEY_ROUTE_INTERNAL   (1u << 1)
//  Operators' requests (admin.*): only an admin peer (parleyctl, hello kind
//  "admin") may send them; a gateway and a plugin get unknown_type. Always
//  set together with PARLEY_ROUTE_INTERNAL, so that a broker older than this
//  flag still keeps clients out. The broker stamps no user on them and the
//  address "admin:" followed by the admin peer's name (pl_admin.h).
#define PARLEY_ROUTE_ADMIN      (1u << 2)

//  How several instances of one plugin split a route's requests
typedef enum {
    PARLEY_SHARD_NONE = 0,          //  stateless: any instance, load-balanced
    PARLEY_SHARD_FIELD = 1,         //  rendezvous hash of the body's string field
                                    //  shard_field (lower-cased), e.g. "room"
    PARLEY_SHARD_USER_PAIR = 2      //  rendezvous hash of the sorted pair
                                    //  (stamped user, body[shard_field]), e.g. pm
} parley_shard_t;

typedef struct {
    const char *prefix;             //  a type matches when it starts with prefix;
                                    //  the longest matching prefix wins
    uint32_t flags;                 //  PARLEY_ROUTE_*
    uint32_t shard;                 //  parley_shard_t
    const char *shard_field;        //  body field for PARLEY_SHARD_FIELD/USER_PAIR
    const void *reserved [4];       //  zero
} parley_route_t;

//  Session events, for plugins that set PARLEY_PLUGIN_SESSIONS
typedef enum {
    PARLEY_SESSION_BOUND = 1,       //  a session was bound to a user (login)
    PARLEY_SESSION_CLOSED = 2,      //  a bound session closed or was unbound
    PARLEY_SESSION_RESET = 3        //  minor 1: the broker (re)registered this
                                    //  instance: forget every session; a BOUND
                                    //  event for each session bound now follows
} parley_session_event_t;

//  Plugin wants on_session calls for every bound/closed session
#define PARLEY_PLUGIN_SESSIONS  (1u << 0)

//  Log levels for host->log
typedef enum {
    PARLEY_LOG_ERROR = 0,
    PARLEY_LOG_WARNING = 1,
    PARLEY_LOG_INFO = 2,
    PARLEY_LOG_DEBUG = 3
} parley_log_level_t;

//  --------------------------------------------------------------------------
//  Minor 4. Metrics: what a plugin reports for /metrics from on_metrics

typedef enum {
    PARLEY_METRIC_COUNTER = 1,      //  only goes up; its name ends in _total
    PARLEY_METRIC_GAUGE = 2,        //  a value now
    PARLEY_METRIC_HISTOGRAM = 3     //  observations counted into buckets
} parley_metric_type_t;

//  Most bounds of one histogram (its buckets, without +Inf)
#define PARLEY_METRIC_BOUNDS_MAX    32
//  Most labels of one series
#define PARLEY_METRIC_LABELS_MAX    8

//  One series, as a plugin hands it to host->metric. Borrowed for the call:
//  the host copies what it keeps. Series of one name share type and help;
//  the host adds an "instance" label (the plugin instance's name).
typedef struct {
    uint32_t size;                  //  sizeof (parley_metric_t) as the plugin built it
    uint32_t type;                  //  parley_metric_type_t
    const char *name;               //  "parley_store_commit_seconds": parley_ then
                                    //  [a-z0-9_]; base units (seconds, bytes)
    const char *help;               //  one line
    const char *const *labels;      //  "name", "value", ..., NULL; or NULL. Names
                                    //  [a-z_][a-z0-9_]*, not "le" nor "instance";
                                    //  values are fixed words, never user data
    double value;                   //  a counter's or a gauge's value
    const double *bounds;           //  a histogram's upper bounds, ascending,
                                    //  without +Inf; bound_count of them
    const uint64_t *counts;         //  observations per bucket, not cumulative:
                                    //  bound_count + 1, the last past the last bound
    uint32_t bound_count;           //  1 .. PARLEY_METRIC_BOUNDS_MAX
    double sum;                     //  a histogram's sum of observations
    const void *reserved [4];       //  zero
} parley_metric_t;

//  --------------------------------------------------------------------------
//  The host function table. All functions but wake are called on the plugin
//  instance's own thread (the one that runs its callbacks); none blocks.
//  Bodies are msgpack maps; the host copies every buffer it is given.

typedef struct {
    uint32_t abi_major;             //  the ABI the host runs this plugin with
    uint32_t abi_minor;
    uint32_t size;                  //  sizeof (parley_host_t) as the host built it

    //  Reading a request. Returned pointers are borrowed and valid until the
    //  request is replied to.
    const char *(*request_type) (const parley_request_t *request);
    //  The user the broker stamped, or NULL for an unauthenticated session or
    //  a request sent by another plugin. Never taken from the client.
    const char *(*request_user) (const parley_request_t *request);
    //  The session the request came from, or 0 when another plugin sent it.
    uint64_t (*request_session) (const parley_request_t *request);
    //  The client's address ("127.0.0.1"), or NULL when another plugin sent it.
    const char *(*request_address) (const parley_request_t *request);
    //  The request's fields as a msgpack map (never NULL; may be an empty map).
    const uint8_t *(*request_body) (const parley_request_t *request, size_t *size_p);

    //  Replies. Each takes the request back and nullifies the caller's
    //  reference; every request gets exactly one reply. body is a msgpack map
    //  of result fields (NULL/0 for none). Return 0, or -1 if the reply could
    //  not be queued (the request is taken back all the same).
    int (*reply) (parley_ctx_t *ctx, parley_request_t **request_p,
                  const void *body, size_t size);
    int (*reply_error) (parley_ctx_t *ctx, parley_request_t **request_p,
                        const char *code, const char *message);
    //  An ok reply that also binds the request's session to user (auth), or
    //  unbinds it when user is NULL (logout). Only sessions can be bound.
    int (*reply_bind) (parley_ctx_t *ctx, parley_request_t **request_p,
                       const char *user, const void *body, size_t size);

    //  Sends a request to another plugin (e.g. "store.user.get"). The answer
    //  arrives later through the descriptor's on_reply with the same cookie;
    //  every call gets exactly one answer (unavailable if nobody serves it).
    //  A call made inside on_request carries that request's deadline (the
    //  time it has left); other calls carry none (minor 3: call_within).
    int (*call) (parley_ctx_t *ctx, const char *type,
                 const void *body, size_t size, void *cookie);

    //  Events: body is a msgpack map with a "type" field, encoded once and
    //  delivered to every session of every listed user, or to listed sessions.
    int (*deliver_users) (parley_ctx_t *ctx, const char *const *users, size_t count,
                          const void *body, size_t size);
    int (*deliver_sessions) (parley_ctx_t *ctx, const uint64_t *sessions, size_t count,
                             const void *body, size_t size);

    //  An option given to this instance ("name=value" on the command line),
    //  or NULL. Borrowed, valid for the instance's lifetime. Ask for every
    //  key the plugin has during init: a key given but never asked for by
    //  then stops the instance from starting (a misspelling, not ignored).
    const char *(*option) (parley_ctx_t *ctx, const char *name);
    //  Logs one line, prefixed with the instance's name.
    void (*log) (parley_ctx_t *ctx, int level, const char *format, ...)
#if defined(__GNUC__)
        __attribute__ ((format (printf, 3, 4)))
#endif
        ;
    //  Calls handler (state) every interval_ms on the instance's thread.
    //  Returns a timer id > 0, or -1. timer_cancel takes that id.
    int (*timer_add) (parley_ctx_t *ctx, uint32_t interval_ms, void (*handler) (void *state));
    int (*timer_cancel) (parley_ctx_t *ctx, int timer_id);

    //  Minor 1. Unbinds these sessions (auth's logout on every session of a
    //  token): they become unauthenticated; their gateways are told.
    //  Sessions that are gone or unbound already are skipped.
    int (*unbind_sessions) (parley_ctx_t *ctx, const uint64_t *sessions, size_t count);

    //  Minor 1. An error reply that carries more fields than code and
    //  message: body is a msgpack map (e.g. {"retry_after_ms": 1500}) whose
    //  fields the client receives beside them; its "type", "id", "code" and
    //  "message" are ignored. A plugin checks host->abi_minor >= 1 before
    //  calling it (an older host has NULL here). Takes the request back as
    //  reply_error does.
    int (*reply_error_body) (parley_ctx_t *ctx, parley_request_t **request_p,
                             const char *code, const char *message,
                             const void *body, size_t size);

    //  Minor 2. The one host function that any thread may call, at any time
    //  from init until the plugin's destroy returns: it asks the host to
    //  call the descriptor's on_wake soon, on the instance's thread. Wakes
    //  that come before on_wake runs are one on_wake; a wake that comes
    //  while on_wake runs gives another. This is how a plugin's own threads
    //  (a password hash, a database driver) hand results back without a
    //  polling timer. Never blocks. Returns 0, or -1 when the descriptor
    //  has no on_wake.
    int (*wake) (parley_ctx_t *ctx);

    //  Minor 3. The msecs left to answer the request before its caller is
    //  told it failed (the deadline the request came with, less the time
    //  it has waited since); 0 once that time is gone; -1 when it came
    //  without a deadline. A plugin starts no work for a request whose
    //  time is gone, and refuses work that cannot be done in the time left
    //  (unavailable with retry_after_ms). Requests whose time was gone when
    //  they came never reach on_request: the host answers them unavailable.
    int64_t (*request_time_left) (const parley_request_t *request);

    //  Minor 3. host->call with a deadline: the callee has time_left_ms to
    //  answer (the time left of the request the call serves, less what the
    //  caller still has to do after the answer); a negative time_left_ms is
    //  host->call's rule (the deadline of the request being handled, if
    //  any). A call whose time is gone (0) is not sent: it is answered
    //  unavailable at once (returns -1, and on_reply does not run).
    int (*call_within) (parley_ctx_t *ctx, const char *type, const void *body, size_t size,
                        void *cookie, int64_t time_left_ms);

    //  Minor 4. Reports one series for /metrics; only from inside the
    //  descriptor's on_metrics. Returns 0, or -1 (logged) for a series
    //  the host refuses: a name without parley_, a bad label, bounds not
    //  ascending, called outside on_metrics.
    int (*metric) (parley_ctx_t *ctx, const parley_metric_t *metric);

    void *reserved [10];            //  NULL; later minors fill these in order
} parley_host_t;

//  --------------------------------------------------------------------------
//  The descriptor a plugin returns

typedef struct {
    uint32_t abi_major;             //  PARLEY_ABI_MAJOR the plugin was built for
    uint32_t abi_minor;             //  PARLEY_ABI_MINOR the plugin was built for
    uint32_t size;                  //  sizeof (parley_plugin_t) as the plugin built it
    uint32_t flags;                 //  PARLEY_PLUGIN_*
    const char *name;               //  "example": short, [a-z0-9-]
    const char *version;            //  the plugin's own version, "1.0.0"
    const char *description;        //  one line for logs and --help
    const parley_route_t *routes;   //  ends with an entry whose prefix is NULL

    //  Creates the instance's state. Return 0, or -1 to refuse to start
    //  (after logging why through host->log).
    int (*init) (parley_ctx_t *ctx, const parley_host_t *host, void **state_p);
    //  Destroys the state and nullifies the reference.
    void (*destroy) (void **state_p);
    //  A request for one of the routes. Takes the request; the plugin must
    //  answer it exactly once, now or later, with host->reply*.
    void (*on_request) (void *state, parley_request_t *request);
    //  The answer to host->call. code is NULL for ok, else an error code with
    //  message; body is the ok result map. All borrowed for the call only.
    //  Minor 3: an error has a body too (NULL before): a map of the error's
    //  further fields, such as "retry_after_ms", and "outcome": "unknown"
    //  when the call may have taken effect although it failed (the callee
    //  went silent or died while it had it); an empty map when none.
    void (*on_reply) (void *state, void *cookie, const char *code, const char *message,
                      const uint8_t *body, size_t size);
    //  Called when no more input is waiting, after one or more on_request/
    //  on_reply calls: the place to commit a batch (group commit). May be NULL.
    void (*on_batch_end) (void *state);
    //  A session event, for plugins with PARLEY_PLUGIN_SESSIONS. May be NULL.
    void (*on_session) (void *state, int event, uint64_t session, const char *user);
    //  Minor 2. After one or more host->wake calls: collect what the
    //  plugin's threads finished. on_batch_end follows. May be NULL.
    void (*on_wake) (void *state);
    //  Minor 4. The host gathers the plugin's figures for /metrics (when
    //  the page is read, at most about once a heartbeat): report each
    //  series with host->metric. Only reads what the hot path counted
    //  (pl_histogram.h): no I/O, nothing slow. May be NULL.
    void (*on_metrics) (void *state);

    const void *reserved [6];       //  NULL
} parley_plugin_t;

//  Every plugin exports this function. The host passes the ABI versions it
//  supports, newest first; the plugin returns its descriptor for one of them,
//  or the descriptor it has (the host then refuses it with a clear message).
typedef const parley_plugin_t *(parley_plugin_describe_fn) (const parley_abi_t *supported,
                                                             size_t count);

//  The common case: a plugin with one descriptor.
#define PARLEY_PLUGIN_DEFINE(descriptor) \
    PARLEY_PLUGIN_EXPORT const parley_plugin_t * \
    parley_plugin_describe (const parley_abi_t *supported, size_t count) \
    { \
        (void) supported; (void) count; \
        return &(descriptor); \
    }

#ifdef __cplusplus
}
#endif

#endif
