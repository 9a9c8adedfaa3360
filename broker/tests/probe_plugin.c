/*  =========================================================================
    probe_plugin - exercises the host functions the example plugin does not

    probe.call     calls "store.probe" with the request's body; answers the
                   request with the call's outcome: {"code": str|nil,
                   "result": <the call's result map>|nil} (an error's
                   fields, minor 3)
    probe.left     answers {"left": host->request_time_left} (minor 3)
    probe.unknown  answers unavailable with {"retry_after_ms": 5, "outcome":
                   "unknown"} through reply_error_body (minor 3)
    probe.within   calls "store.probe" with call_within and a time left
                   of 1234 ms; answered as probe.call is (minor 3)

    Built twice: probe.so for this header's minor, probe-minor2.so for
    minor 2 (PROBE_ABI_MINOR), as a plugin built before minor 3 was.
    probe.hold     keeps the request and never answers (the host frees it)
    probe.deliver  delivers {"type": "probe.event"} to users ["alice","bob"]
                   and to session 77, then answers ok
    probe.timer    starts a 20 ms timer; answers {"ticks": 3} after the third
                   tick and cancels the timer
    probe.batches  answers {"batches": n, "sessions": n}: on_batch_end and
                   on_session calls so far
    probe.huge     answers with a 2 MiB body, past the envelope's limit (a bug
                   the host must answer internal, outcome unknown)
    probe.huge_event  delivers a 2 MiB {"type": "probe.huge"} event to
                   "alice", then answers {"rc": what deliver_users returned}
    probe.slow     answers {"slow": n} a second after the first of the slow
                   requests waiting (at most 64), n their count: requests
                   in flight for a while, as a graceful stop must answer
    on_metrics     (minor 4) reports parley_probe_batches_total (on_batch_end
                   calls), a histogram parley_probe_wait_seconds{kind="a"}
                   of one observation, and a series the ABI refuses
                   (no parley_ prefix), which must not spoil the others
    probe.wake     starts PROBE_WAKERS threads that each call host->wake
                   PROBE_WAKES times, then say they are done and wake once
                   more; on_wake answers {"wakers": n, "on_wake": calls}
                   once every thread is done. No timer: the answer can only
                   come through host->wake.
    =========================================================================
*/

#include "parley_plugin.h"

#ifndef PROBE_ABI_MINOR
#   define PROBE_ABI_MINOR PARLEY_ABI_MINOR
#endif

#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_SLOW_MAX  64
#define PROBE_WAKERS    4
#define PROBE_WAKES     500

typedef struct {
    parley_ctx_t *ctx;              //  the host's handle
    const parley_host_t *host;      //  the host's table
    parley_request_t *held;         //  probe.hold's request, never answered
    parley_request_t *ticking;      //  probe.timer's request, until 3 ticks
    int timer;                      //  probe.timer's timer id
    int ticks;                      //  ticks so far
    int batches;                    //  on_batch_end calls
    int sessions;                   //  on_session calls
    parley_request_t *slow [PROBE_SLOW_MAX];    //  probe.slow's requests, waiting
    int slow_count;                 //  how many wait
    int slow_timer;                 //  their timer's id
    parley_request_t *waking;       //  probe.wake's request, until every waker is done
    pthread_t wakers [PROBE_WAKERS];
    bool wakers_running;            //  wakers started and not joined yet
    atomic_int wakers_done;         //  written by the wakers
    int on_wakes;                   //  on_wake calls
} probe_t;

//  A thread of the plugin's own: what a password hash or a database
//  driver's thread does when it has a result
static void *
s_waker (void *args)
{
    probe_t *self = (probe_t *) args;
    for (int index = 0; index < PROBE_WAKES; index++)
        self->host->wake (self->ctx);
    atomic_fetch_add (&self->wakers_done, 1);
    self->host->wake (self->ctx);
    return NULL;
}

static void
s_wakers_join (probe_t *self)
{
    if (!self->wakers_running)
        return;
    for (int index = 0; index < PROBE_WAKERS; index++)
        pthread_join (self->wakers [index], NULL);
    self->wakers_running = false;
}

//  Answers request with a one-field map {key: value}
static void
s_reply_int (probe_t *self, parley_request_t **request_p, const char *key, int64_t value)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 1);
    msgpack_pack_str_with_body (&packer, key, strlen (key));
    msgpack_pack_int64 (&packer, value);
    self->host->reply (self->ctx, request_p, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
}

static void
s_on_tick (void *state)
{
    probe_t *self = (probe_t *) state;
    if (++self->ticks == 3) {
        self->host->timer_cancel (self->ctx, self->timer);
        s_reply_int (self, &self->ticking, "ticks", self->ticks);
    }
}

static void
s_on_slow (void *state)
{
    probe_t *self = (probe_t *) state;
    self->host->timer_cancel (self->ctx, self->slow_timer);
    int count = self->slow_count;
    for (int index = 0; index < count; index++)
        s_reply_int (self, &self->slow [index], "slow", count);
    self->slow_count = 0;
}

static int
s_init (parley_ctx_t *ctx, const parley_host_t *host, void **state_p)
{
    probe_t *self = (probe_t *) calloc (1, sizeof (probe_t));
    if (!self)
        return -1;
    self->ctx = ctx;
    self->host = host;
    *state_p = self;
    return 0;
}

static void
s_destroy (void **state_p)
{
    //  Threads stop before destroy returns: wake is not called after
    s_wakers_join ((probe_t *) *state_p);
    //  The held request is the host's to free, not ours
    free (*state_p);
    *state_p = NULL;
}

static void
s_on_request (void *state, parley_request_t *request)
{
    probe_t *self = (probe_t *) state;
    const parley_host_t *host = self->host;
    const char *type = host->request_type (request);

#if PROBE_ABI_MINOR >= 3
    if (strcmp (type, "probe.left") == 0) {
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        msgpack_packer packer;
        msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
        msgpack_pack_map (&packer, 1);
        msgpack_pack_str_with_body (&packer, "left", 4);
        msgpack_pack_int64 (&packer, host->request_time_left (request));
        host->reply (self->ctx, &request, buffer.data, buffer.size);
        msgpack_sbuffer_destroy (&buffer);
        return;
    }
    if (strcmp (type, "probe.unknown") == 0) {
        static const char fields [] = "\x82\xaeretry_after_ms\x05\xa7outcome\xa7unknown";
        host->reply_error_body (self->ctx, &request, "unavailable", "Lost.", fields,
                                sizeof fields - 1);
        return;
    }
    if (strcmp (type, "probe.within") == 0) {
        size_t size;
        const uint8_t *body = host->request_body (request, &size);
        if (host->call_within (self->ctx, "store.probe", body, size, request, 1234))
            host->reply_error (self->ctx, &request, "internal", "call failed");
        return;
    }
#endif
    if (strcmp (type, "probe.call") == 0) {
        size_t size;
        const uint8_t *body = host->request_body (request, &size);
        if (host->call (self->ctx, "store.probe", body, size, request))
            host->reply_error (self->ctx, &request, "internal", "call failed");
    }
    else
    if (strcmp (type, "probe.hold") == 0)
        self->held = request;
    else
    if (strcmp (type, "probe.slow") == 0) {
        if (self->slow_count == PROBE_SLOW_MAX)
            host->reply_error (self->ctx, &request, "rate_limited", "too many slow probes");
        else {
            if (self->slow_count == 0)
                self->slow_timer = host->timer_add (self->ctx, 1000, s_on_slow);
            self->slow [self->slow_count++] = request;
        }
    }
    else
    if (strcmp (type, "probe.wake") == 0 && !self->wakers_running) {
        self->waking = request;
        atomic_store (&self->wakers_done, 0);
        self->on_wakes = 0;
        self->wakers_running = true;
        for (int index = 0; index < PROBE_WAKERS; index++)
            if (pthread_create (&self->wakers [index], NULL, s_waker, self))
                abort ();       //  a test plugin: fail loudly
    }
    else
    if (strcmp (type, "probe.deliver") == 0) {
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        msgpack_packer packer;
        msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
        msgpack_pack_map (&packer, 1);
        msgpack_pack_str_with_body (&packer, "type", 4);
        msgpack_pack_str_with_body (&packer, "probe.event", 11);
        const char *users [] = { "alice", "bob" };
        uint64_t sessions [] = { 77 };
        int rc = host->deliver_users (self->ctx, users, 2, buffer.data, buffer.size);
        rc |= host->deliver_sessions (self->ctx, sessions, 1, buffer.data, buffer.size);
        msgpack_sbuffer_destroy (&buffer);
        s_reply_int (self, &request, "rc", rc);
    }
    else
    if (strcmp (type, "probe.timer") == 0) {
        self->ticking = request;
        self->ticks = 0;
        self->timer = host->timer_add (self->ctx, 20, s_on_tick);
    }
    else
    if (strcmp (type, "probe.huge") == 0 || strcmp (type, "probe.huge_event") == 0) {
        //  {"type": "probe.huge", "blob": <2 MiB of bin>}
        size_t blob = 2 * 1024 * 1024;
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        msgpack_packer packer;
        msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
        msgpack_pack_map (&packer, 2);
        msgpack_pack_str_with_body (&packer, "type", 4);
        msgpack_pack_str_with_body (&packer, "probe.huge", 10);
        msgpack_pack_str_with_body (&packer, "blob", 4);
        char *bytes = (char *) calloc (1, blob);
        if (bytes)
            msgpack_pack_bin_with_body (&packer, bytes, blob);
        free (bytes);
        if (strcmp (type, "probe.huge") == 0)
            host->reply (self->ctx, &request, buffer.data, buffer.size);
        else {
            const char *users [] = { "alice" };
            int rc = host->deliver_users (self->ctx, users, 1, buffer.data, buffer.size);
            s_reply_int (self, &request, "rc", rc);
        }
        msgpack_sbuffer_destroy (&buffer);
    }
    else
    if (strcmp (type, "probe.batches") == 0) {
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        msgpack_packer packer;
        msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
        msgpack_pack_map (&packer, 2);
        msgpack_pack_str_with_body (&packer, "batches", 7);
        msgpack_pack_int (&packer, self->batches);
        msgpack_pack_str_with_body (&packer, "sessions", 8);
        msgpack_pack_int (&packer, self->sessions);
        host->reply (self->ctx, &request, buffer.data, buffer.size);
        msgpack_sbuffer_destroy (&buffer);
    }
    else
        host->reply_error (self->ctx, &request, "unknown_type", "not a probe");
}

static void
s_on_reply (void *state, void *cookie, const char *code, const char *message,
            const uint8_t *body, size_t size)
{
    probe_t *self = (probe_t *) state;
    parley_request_t *request = (parley_request_t *) cookie;
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 2);
    msgpack_pack_str_with_body (&packer, "code", 4);
    if (code)
        msgpack_pack_str_with_body (&packer, code, strlen (code));
    else
        msgpack_pack_nil (&packer);
    msgpack_pack_str_with_body (&packer, "result", 6);
    if (body && size)
        msgpack_sbuffer_write (&buffer, (const char *) body, size);
    else
        msgpack_pack_nil (&packer);
    self->host->reply (self->ctx, &request, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
}

static void
s_on_wake (void *state)
{
    probe_t *self = (probe_t *) state;
    self->on_wakes++;
    if (!self->waking || atomic_load (&self->wakers_done) < PROBE_WAKERS)
        return;
    s_wakers_join (self);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 2);
    msgpack_pack_str_with_body (&packer, "wakers", 6);
    msgpack_pack_int (&packer, PROBE_WAKERS);
    msgpack_pack_str_with_body (&packer, "on_wake", 7);
    msgpack_pack_int (&packer, self->on_wakes);
    self->host->reply (self->ctx, &self->waking, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
}

static void
s_on_batch_end (void *state)
{
    ((probe_t *) state)->batches++;
}

static void
s_on_session (void *state, int event, uint64_t session, const char *user)
{
    ((probe_t *) state)->sessions++;
}

#if PROBE_ABI_MINOR >= 4
static void
s_on_metrics (void *state)
{
    probe_t *self = (probe_t *) state;
    static const double bounds [] = { 0.1, 1 };
    static const uint64_t counts [] = { 0, 1, 0 };
    static const char *labels [] = { "kind", "a", NULL };
    parley_metric_t metric = {
        .size = sizeof (parley_metric_t), .type = PARLEY_METRIC_COUNTER,
        .name = "parley_probe_batches_total", .help = "on_batch_end calls.",
        .value = self->batches
    };
    self->host->metric (self->ctx, &metric);
    metric.name = "probe_unprefixed_total";
    self->host->metric (self->ctx, &metric);
    metric = (parley_metric_t) {
        .size = sizeof (parley_metric_t), .type = PARLEY_METRIC_HISTOGRAM,
        .name = "parley_probe_wait_seconds", .help = "A wait.", .labels = labels,
        .bounds = bounds, .counts = counts, .bound_count = 2, .sum = 0.5
    };
    self->host->metric (self->ctx, &metric);
}
#endif

static const parley_route_t s_routes [] = {
    { .prefix = "probe.", .flags = 0, .shard = PARLEY_SHARD_FIELD, .shard_field = "room" },
    { .prefix = NULL }
};

static const parley_plugin_t s_descriptor = {
    .abi_major = PARLEY_ABI_MAJOR,
    .abi_minor = PROBE_ABI_MINOR,
    .size = sizeof (parley_plugin_t),
    .flags = PARLEY_PLUGIN_SESSIONS,
    .name = "probe",
    .version = "0.0.1",
    .description = "exercises host functions for test_host",
    .routes = s_routes,
    .init = s_init,
    .destroy = s_destroy,
    .on_request = s_on_request,
    .on_reply = s_on_reply,
    .on_batch_end = s_on_batch_end,
    .on_session = s_on_session,
    .on_wake = s_on_wake,
#if PROBE_ABI_MINOR >= 4
    .on_metrics = s_on_metrics
#endif
};

PARLEY_PLUGIN_DEFINE (s_descriptor)
