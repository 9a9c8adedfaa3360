/*  =========================================================================
    gw_metrics - the gateway's counters and their /metrics page

    The counters are plain integers that only the gateway's loop thread
    touches: counting costs an add, no lock and no atomic. The struct is
    open so that the hot path adds to a field in place; the page is made
    only when someone asks for /metrics, from these counters and the gauges
    the server reads at that moment (gw_metrics_gauges_t).

    Label values come from fixed lists only (the protocol's request types
    and result codes, anything else "other"), never from what a user chose:
    no names, rooms or addresses ever appear on the page.

        gw_metrics_t *metrics = gw_metrics_new ();
        int type = gw_metrics_type ("msg.send");
        metrics->deliveries += 12;
        gw_metrics_request (metrics, type, "ok", 830);  //  830 us
        size_t size;
        char *page = gw_metrics_render (metrics, &gauges, NULL, 0, LWS_PRE, &size);
        ... page + LWS_PRE holds size bytes of text; free (page) ...
        gw_metrics_destroy (&metrics);
    =========================================================================
*/

#ifndef GW_METRICS_H_INCLUDED
#define GW_METRICS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The protocol's request types and result codes, plus "other" (last)
#define GW_METRICS_TYPES    34
#define GW_METRICS_CODES    27
//  Latency buckets, without +Inf
#define GW_METRICS_BUCKETS  14

//  Why a connection or an upgrade was refused
typedef enum {
    GW_REFUSED_ADDRESS = 0,         //  --max-per-address (429)
    GW_REFUSED_UNAUTHENTICATED,     //  --max-unauthenticated-per-address (429)
    GW_REFUSED_CAP,                 //  --max-connections, or out of descriptors (503)
    GW_REFUSED_STOPPING,            //  the graceful stop has begun (503)
    GW_REFUSED_REASONS
} gw_refused_t;

//  How the gateway saw the broker go away
typedef enum {
    GW_BROKER_SILENT = 0,           //  3 heartbeats without a word
    GW_BROKER_FORGOT,               //  it answered WHO: it restarted
    GW_BROKER_WAYS
} gw_broker_lost_t;

//  A files request over HTTP (gw_files): POST /files or GET/HEAD /files/<id>
typedef enum {
    GW_FILE_UPLOAD = 0,
    GW_FILE_DOWNLOAD,
    GW_FILE_WAYS
} gw_file_way_t;

//  The HTTP statuses files requests are answered with, plus "other" (last)
#define GW_METRICS_FILE_STATUSES 11

typedef struct {
    uint64_t connections;           //  client connections admitted at accept
    uint64_t refused [GW_REFUSED_REASONS];
    uint64_t sessions;              //  WebSocket sessions opened
    uint64_t auth_timeouts;         //  sessions closed for not signing in
    uint64_t requests [GW_METRICS_TYPES][GW_METRICS_CODES];
    uint64_t latency [GW_METRICS_TYPES][GW_METRICS_BUCKETS + 1];    //  per bucket,
                                    //  not cumulative; the last is past the last bound
    uint64_t latency_us [GW_METRICS_TYPES];     //  the sum, in microseconds
    uint64_t events;                //  deliver envelopes from the broker
    uint64_t deliveries;            //  event frames queued on sessions
    uint64_t frames_sent;           //  frames (replies and events) written whole
    uint64_t bytes_sent;            //  WebSocket bytes written (before TLS)
    uint64_t slow_consumers;        //  sessions cut off as too slow (1008)
    uint64_t broker_lost [GW_BROKER_WAYS];
    uint64_t broker_welcomes;       //  WELCOMEs that (re)connected us
    uint64_t file_answers [GW_FILE_WAYS][GW_METRICS_FILE_STATUSES];
    uint64_t file_bytes [GW_FILE_WAYS];     //  uploaded: passed to the server;
                                    //  downloaded: handed to lws (before TLS)
} gw_metrics_t;

//  What the server reads when the page is asked for
typedef struct {
    size_t connections;             //  client connections open
    size_t sessions;                //  WebSocket sessions open
    size_t authenticated;           //  ... signed in
    size_t in_flight;               //  requests waiting for the broker
    size_t queued_frames;           //  frames queued on every session
    size_t queued_bytes;            //  ... their JSON bytes
    size_t queued_frames_max;       //  the longest queue of one session
    bool broker_up;                 //  welcomed by the broker
    bool stopping;                  //  the graceful stop has begun
} gw_metrics_gauges_t;

//  Creates the counters, all zero. Caller owns return value.
gw_metrics_t *
    gw_metrics_new (void);

//  Destroys them; nullifies the reference.
void
    gw_metrics_destroy (gw_metrics_t **self_p);

//  The index of a request type, for gw_metrics_request: a type of the
//  protocol (PROTOCOL.md), else that of "other". type may be NULL.
int
    gw_metrics_type (const char *type);

//  Counts one request of type (gw_metrics_type) answered with code ("ok"
//  or an error code; others count as "other") after usecs microseconds.
void
    gw_metrics_request (gw_metrics_t *self, int type, const char *code, int64_t usecs);

//  Counts one files request of way answered with an HTTP status (a status
//  the files side does not answer with counts as "other").
void
    gw_metrics_file (gw_metrics_t *self, gw_file_way_t way, int status);

//  The page in Prometheus' text format 0.0.4, after headroom free bytes
//  (LWS_PRE, for lws_write), ending with broker_size bytes of broker
//  (the broker's own families, as its STATS answer said them; NULL for
//  none); *size_p is the text's length. Returns NULL when out of memory.
//  Caller owns return value (free).
char *
    gw_metrics_render (gw_metrics_t *self, const gw_metrics_gauges_t *gauges,
                       const char *broker, size_t broker_size,
                       size_t headroom, size_t *size_p);

//  Who may read /metrics: "local" (loopback addresses), "off" (nobody),
//  "any", or a comma-separated list of IPv4/IPv6 addresses. True when
//  policy is one of these; then error is untouched.
bool
    gw_metrics_policy_valid (const char *policy, char *error, size_t error_size);

//  True when a client at address (as the gateway writes it: a.b.c.d or
//  IPv6) may read /metrics under policy (valid; NULL = "local").
bool
    gw_metrics_allowed (const char *policy, const char *address);

#ifdef __cplusplus
}
#endif

#endif
