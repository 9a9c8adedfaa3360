/*  =========================================================================
    gw_metrics - the gateway's counters and their /metrics page

    The page follows Prometheus' text exposition format 0.0.4: for every
    family a HELP and a TYPE line, then its samples; a histogram's buckets
    are cumulative and its +Inf bucket equals its _count.
    =========================================================================
*/

#include "gw_metrics.h"

#include <arpa/inet.h>
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Sorted (strcmp) for bsearch; "other" is the index past the end
static const char *s_types [] = {
    "auth.login", "auth.logout", "auth.password", "auth.register", "auth.resume",
    "msg.delete", "msg.edit", "msg.react", "msg.send", "ping",
    "pm.conversations", "pm.delete", "pm.edit", "pm.history", "pm.react", "pm.read",
    "pm.send", "presence.list", "room.create", "room.delete", "room.directory",
    "room.history", "room.invite", "room.join", "room.kick", "room.leave", "room.list",
    "room.members", "room.read", "room.unban", "room.update", "search", "typing"
};
_Static_assert (sizeof s_types / sizeof s_types [0] == GW_METRICS_TYPES - 1,
                "GW_METRICS_TYPES is the protocol's types and other");

//  The protocol's result codes, and the gateway's "dropped" (the session
//  closed before the reply came); sorted, "other" past the end
static const char *s_codes [] = {
    "already_authenticated", "bad_credentials", "bad_json", "bad_request", "dropped",
    "forbidden", "internal", "invalid_room", "invalid_text", "invalid_token",
    "invalid_username", "no_such_message", "no_such_room", "no_such_user", "not_member",
    "ok", "quota_exceeded", "rate_limited", "room_exists", "room_full", "too_large",
    "unauthenticated", "unavailable", "unknown_type", "username_taken", "weak_password"
};
_Static_assert (sizeof s_codes / sizeof s_codes [0] == GW_METRICS_CODES - 1,
                "GW_METRICS_CODES is the protocol's codes and other");

//  Bucket bounds: microseconds, and as the le label says them
static const int64_t s_bounds_us [GW_METRICS_BUCKETS] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000
};
static const char *s_bounds [GW_METRICS_BUCKETS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "2.5", "5", "10"
};

static const char *s_refused [GW_REFUSED_REASONS] = {
    "per_address", "unauthenticated", "cap", "stopping"
};
static const char *s_broker_lost [GW_BROKER_WAYS] = { "silent", "restarted" };
static const char *s_file_ways [GW_FILE_WAYS] = { "upload", "download" };
//  What gw_files answers with (CLIENT-PROTOCOL.md, "Files over HTTP")
static const int s_file_statuses [GW_METRICS_FILE_STATUSES - 1] = {
    200, 201, 400, 401, 404, 405, 411, 413, 500, 503
};

gw_metrics_t *
gw_metrics_new (void)
{
    return (gw_metrics_t *) calloc (1, sizeof (gw_metrics_t));
}

void
gw_metrics_destroy (gw_metrics_t **self_p)
{
    assert (self_p);
    free (*self_p);
    *self_p = NULL;
}

static int
s_compare (const void *key, const void *item)
{
    return strcmp ((const char *) key, *(const char *const *) item);
}

//  The index of name in a sorted list of count names, else count ("other")
static int
s_index (const char **names, size_t count, const char *name)
{
    const char **found = name? (const char **) bsearch (name, names, count,
                                                        sizeof (char *), s_compare): NULL;
    return found? (int) (found - names): (int) count;
}

int
gw_metrics_type (const char *type)
{
    return s_index (s_types, GW_METRICS_TYPES - 1, type);
}

void
gw_metrics_request (gw_metrics_t *self, int type, const char *code, int64_t usecs)
{
    assert (type >= 0 && type < GW_METRICS_TYPES);
    self->requests [type][s_index (s_codes, GW_METRICS_CODES - 1, code)]++;
    if (usecs < 0)
        usecs = 0;
    int bucket = 0;
    while (bucket < GW_METRICS_BUCKETS && usecs > s_bounds_us [bucket])
        bucket++;
    self->latency [type][bucket]++;
    self->latency_us [type] += (uint64_t) usecs;
}

void
gw_metrics_file (gw_metrics_t *self, gw_file_way_t way, int status)
{
    assert (way >= 0 && way < GW_FILE_WAYS);
    int index = 0;
    while (index < GW_METRICS_FILE_STATUSES - 1 && s_file_statuses [index] != status)
        index++;
    self->file_answers [way][index]++;
}

static void
s_family (FILE *out, const char *name, const char *type, const char *help)
{
    fprintf (out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

//  A family of one sample without labels
static void
s_single (FILE *out, const char *name, const char *type, const char *help, uint64_t value)
{
    s_family (out, name, type, help);
    fprintf (out, "%s %" PRIu64 "\n", name, value);
}

static void
s_render_connections (gw_metrics_t *self, const gw_metrics_gauges_t *gauges, FILE *out)
{
    s_single (out, "parley_gateway_connections_total", "counter",
              "Client connections admitted at accept.", self->connections);
    s_single (out, "parley_gateway_connections_open", "gauge",
              "Client connections open (HTTP and WebSocket).", gauges->connections);
    s_family (out, "parley_gateway_connections_refused_total", "counter",
              "Connections or WebSocket upgrades refused, by the limit that refused them.");
    for (int reason = 0; reason < GW_REFUSED_REASONS; reason++)
        fprintf (out, "parley_gateway_connections_refused_total{reason=\"%s\"} %" PRIu64 "\n",
                 s_refused [reason], self->refused [reason]);
    s_single (out, "parley_gateway_sessions_total", "counter",
              "WebSocket sessions opened.", self->sessions);
    s_single (out, "parley_gateway_sessions_open", "gauge",
              "WebSocket sessions open.", gauges->sessions);
    s_single (out, "parley_gateway_sessions_authenticated", "gauge",
              "WebSocket sessions open and signed in.", gauges->authenticated);
    s_single (out, "parley_gateway_auth_timeouts_total", "counter",
              "Sessions closed for not signing in within --auth-timeout.", self->auth_timeouts);
}

static void
s_render_requests (gw_metrics_t *self, const gw_metrics_gauges_t *gauges, FILE *out)
{
    s_family (out, "parley_gateway_requests_total", "counter",
              "Client requests answered, by type and result code (ok or the error's).");
    for (int type = 0; type < GW_METRICS_TYPES; type++)
        for (int code = 0; code < GW_METRICS_CODES; code++)
            if (self->requests [type][code])
                fprintf (out, "parley_gateway_requests_total{type=\"%s\",code=\"%s\"} %"
                         PRIu64 "\n", type < GW_METRICS_TYPES - 1? s_types [type]: "other",
                         code < GW_METRICS_CODES - 1? s_codes [code]: "other",
                         self->requests [type][code]);
    s_family (out, "parley_gateway_request_duration_seconds", "histogram",
              "Time from a request's last byte in to its reply queued, by type.");
    for (int type = 0; type < GW_METRICS_TYPES; type++) {
        const char *name = type < GW_METRICS_TYPES - 1? s_types [type]: "other";
        uint64_t count = 0;
        for (int bucket = 0; bucket <= GW_METRICS_BUCKETS; bucket++)
            count += self->latency [type][bucket];
        if (count == 0)
            continue;
        uint64_t cumulative = 0;
        for (int bucket = 0; bucket < GW_METRICS_BUCKETS; bucket++) {
            cumulative += self->latency [type][bucket];
            fprintf (out, "parley_gateway_request_duration_seconds_bucket{type=\"%s\",le=\"%s\"} %"
                     PRIu64 "\n", name, s_bounds [bucket], cumulative);
        }
        fprintf (out, "parley_gateway_request_duration_seconds_bucket{type=\"%s\",le=\"+Inf\"} %"
                 PRIu64 "\n", name, count);
        fprintf (out, "parley_gateway_request_duration_seconds_sum{type=\"%s\"} %" PRIu64 ".%06"
                 PRIu64 "\n", name, self->latency_us [type] / 1000000,
                 self->latency_us [type] % 1000000);
        fprintf (out, "parley_gateway_request_duration_seconds_count{type=\"%s\"} %" PRIu64 "\n",
                 name, count);
    }
    s_single (out, "parley_gateway_requests_in_flight", "gauge",
              "Requests passed to the broker and not answered yet.", gauges->in_flight);
}

static void
s_render_files (gw_metrics_t *self, FILE *out)
{
    s_family (out, "parley_gateway_file_requests_total", "counter",
              "Files requests over HTTP (POST /files, GET and HEAD /files/<id>), by HTTP status.");
    for (int way = 0; way < GW_FILE_WAYS; way++)
        for (int index = 0; index < GW_METRICS_FILE_STATUSES; index++) {
            char status [16];
            if (index < GW_METRICS_FILE_STATUSES - 1)
                snprintf (status, sizeof status, "%d", s_file_statuses [index]);
            else
                snprintf (status, sizeof status, "other");
            fprintf (out, "parley_gateway_file_requests_total{way=\"%s\",status=\"%s\"} %"
                     PRIu64 "\n", s_file_ways [way], status, self->file_answers [way][index]);
        }
    s_family (out, "parley_gateway_file_bytes_total", "counter",
              "File bytes uploaded (passed to the server) and downloaded (written, before TLS).");
    for (int way = 0; way < GW_FILE_WAYS; way++)
        fprintf (out, "parley_gateway_file_bytes_total{way=\"%s\"} %" PRIu64 "\n",
                 s_file_ways [way], self->file_bytes [way]);
}

static void
s_render_output (gw_metrics_t *self, const gw_metrics_gauges_t *gauges, FILE *out)
{
    s_single (out, "parley_gateway_events_total", "counter",
              "Events the broker delivered to this gateway (each for one or more sessions).",
              self->events);
    s_single (out, "parley_gateway_deliveries_total", "counter",
              "Event frames queued on sessions (one per session an event is for).",
              self->deliveries);
    s_single (out, "parley_gateway_frames_sent_total", "counter",
              "Frames (replies and events) written whole to clients.", self->frames_sent);
    s_single (out, "parley_gateway_sent_bytes_total", "counter",
              "WebSocket bytes written to clients (before TLS).", self->bytes_sent);
    s_single (out, "parley_gateway_slow_consumers_total", "counter",
              "Sessions closed as too slow (1008): their queue passed its bound.",
              self->slow_consumers);
    s_single (out, "parley_gateway_queued_frames", "gauge",
              "Frames queued on all sessions, not written yet.", gauges->queued_frames);
    s_single (out, "parley_gateway_queued_bytes", "gauge",
              "JSON bytes of the frames queued on all sessions.", gauges->queued_bytes);
    s_single (out, "parley_gateway_queued_frames_max", "gauge",
              "Frames queued on the session with the longest queue.",
              gauges->queued_frames_max);
}

static void
s_render_broker (gw_metrics_t *self, const gw_metrics_gauges_t *gauges, FILE *out)
{
    s_single (out, "parley_gateway_broker_up", "gauge",
              "1 while the broker has welcomed this gateway.", gauges->broker_up);
    s_family (out, "parley_gateway_broker_lost_total", "counter",
              "Times the broker went away: silent (3 heartbeats) or restarted (it asked who we are).");
    for (int how = 0; how < GW_BROKER_WAYS; how++)
        fprintf (out, "parley_gateway_broker_lost_total{how=\"%s\"} %" PRIu64 "\n",
                 s_broker_lost [how], self->broker_lost [how]);
    s_single (out, "parley_gateway_broker_welcomes_total", "counter",
              "Welcomes from the broker (the first, and one after each loss).",
              self->broker_welcomes);
    s_single (out, "parley_gateway_stopping", "gauge",
              "1 once the graceful stop has begun.", gauges->stopping);
}

char *
gw_metrics_render (gw_metrics_t *self, const gw_metrics_gauges_t *gauges,
                   const char *broker, size_t broker_size, size_t headroom, size_t *size_p)
{
    assert (self && gauges && size_p);
    char *page = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&page, &size);
    if (!out)
        return NULL;
    for (size_t index = 0; index < headroom; index++)
        fputc (0, out);
    s_render_connections (self, gauges, out);
    s_render_requests (self, gauges, out);
    s_render_output (self, gauges, out);
    s_render_broker (self, gauges, out);
    s_render_files (self, out);
    //  Whole lines only: a page that ended inside a sample would not parse
    if (broker && broker_size && broker [broker_size - 1] == '\n')
        fwrite (broker, 1, broker_size, out);
    if (fclose (out) || size < headroom) {
        free (page);
        return NULL;
    }
    *size_p = size - headroom;
    return page;
}

//  The address in binary; family 0 when it is not one
typedef struct {
    int family;
    uint8_t bytes [16];
} s_ip_t;

static s_ip_t
s_ip (const char *text, size_t length)
{
    s_ip_t ip = { 0 };
    char copy [64];
    if (length == 0 || length >= sizeof copy)
        return ip;
    memcpy (copy, text, length);
    copy [length] = 0;
    if (inet_pton (AF_INET, copy, ip.bytes) == 1)
        ip.family = AF_INET;
    else
    if (inet_pton (AF_INET6, copy, ip.bytes) == 1)
        ip.family = AF_INET6;
    return ip;
}

bool
gw_metrics_policy_valid (const char *policy, char *error, size_t error_size)
{
    if (!policy || !strcmp (policy, "local") || !strcmp (policy, "off")
    ||  !strcmp (policy, "any"))
        return true;
    const char *cursor = policy;
    while (true) {
        size_t length = strcspn (cursor, ",");
        if (s_ip (cursor, length).family == 0) {
            snprintf (error, error_size, "--metrics wants local, off, any or IP addresses "
                      "separated by commas, not '%s'", policy);
            return false;
        }
        if (cursor [length] == 0)
            return true;
        cursor += length + 1;
    }
}

bool
gw_metrics_allowed (const char *policy, const char *address)
{
    s_ip_t peer = s_ip (address, strlen (address));
    if (!policy || !strcmp (policy, "local")) {
        static const uint8_t loopback6 [16] = { [15] = 1 };
        return (peer.family == AF_INET && peer.bytes [0] == 127)
            || (peer.family == AF_INET6 && !memcmp (peer.bytes, loopback6, 16));
    }
    if (!strcmp (policy, "any"))
        return true;
    if (!strcmp (policy, "off") || peer.family == 0)
        return false;
    const char *cursor = policy;
    while (true) {
        size_t length = strcspn (cursor, ",");
        s_ip_t allowed = s_ip (cursor, length);
        if (allowed.family == peer.family
        &&  !memcmp (allowed.bytes, peer.bytes, peer.family == AF_INET? 4: 16))
            return true;
        if (cursor [length] == 0)
            return false;
        cursor += length + 1;
    }
}
