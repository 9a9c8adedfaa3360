/*  =========================================================================
    example - the plugin every Parley plugin starts from

    Serves three requests, each showing one thing every real plugin does:
    - example.echo answers at once: read a request's msgpack body, answer
      with reply or reply_error, the user the broker stamped on it;
    - example.whois asks the store and answers from the reply handler: a
      call to another plugin with the kit's pl_call, its own handler and
      context, and what to do when that call fails;
    - example.stats answers from state kept by a session event (sessions
      bound now) and by a timer (echoes in the last interval).
    Plus the descriptor that names the routes, per-instance state made in
    init and freed in destroy, and options read with the kit's pl_options.

    Copy this folder, rename it, and keep the shape. README.md walks
    through it; proto/PLUGIN-ABI.md is the contract; plugins/kit/README.md
    lists the helpers.
    =========================================================================
*/

#include "parley_plugin.h"
#include "pl_body.h"
#include "pl_call.h"
#include "pl_limits.h"
#include "pl_options.h"
#include "pl_pack.h"
#include "pl_reply.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXAMPLE_TICK_MS     60000       //  the stats interval, by default
#define EXAMPLE_RETRY_MS    1000        //  retry_after_ms of its unavailable

//  Per-instance state. Each instance gets its own (a process may run several
//  instances of one plugin), so nothing lives in globals.
typedef struct {
    parley_ctx_t *ctx;              //  the host's handle, for every host call
    const parley_host_t *host;      //  the host's function table
    pl_call_t *calls;               //  our calls to the store, owned
    char *greeting;                 //  option example.greeting, or NULL; owned
    int tick_timer;                 //  the stats timer's id
    uint64_t echoes;                //  requests echoed since start
    uint64_t echoes_at_tick;        //  echoes when the timer last ran
    uint64_t echoes_last_interval;  //  echoes between the last two ticks
    uint64_t sessions;              //  sessions bound to a user now
} example_t;


//  --------------------------------------------------------------------------
//  example.echo: answers {"echo": <the request's fields>, "user": <user|nil>}
//  and, when the greeting option is set, "greeting": <it>

static void
s_echo (example_t *self, parley_request_t *request)
{
    const parley_host_t *host = self->host;

    //  The body is the request's fields as a msgpack map. The gateway built
    //  it from the client's JSON, so treat it as input: unpack it with a
    //  checked result and never assume its shape.
    size_t body_size;
    const uint8_t *body = host->request_body (request, &body_size);
    msgpack_unpacked fields;
    msgpack_unpacked_init (&fields);
    if (!pl_body_unpack (&fields, body, body_size)) {
        msgpack_unpacked_destroy (&fields);
        host->reply_error (self->ctx, &request, "bad_request",
                           "The request's fields are not a map.");
        return;
    }
    //  The user comes from the broker's session registry, never from the
    //  client: this is the only identity a plugin may trust. NULL means the
    //  session has not logged in (the route is public, see below).
    const char *user = host->request_user (request);

    //  Result fields are a msgpack map too; the gateway adds "type": "ok"
    //  and the client's "id" around them.
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, self->greeting ? 3 : 2);
    pl_pack_str (&pack, "echo");
    msgpack_pack_object (&pack.packer, fields.data);
    pl_pack_kstr (&pack, "user", user);             //  NULL packs as nil
    if (self->greeting)
        pl_pack_kstr (&pack, "greeting", self->greeting);

    //  The host copies the reply, so our buffer is ours to free right after;
    //  reply takes the request back and sets our pointer to NULL.
    host->reply (self->ctx, &request, pack.buffer.data, pack.buffer.size);
    pl_pack_release (&pack);
    msgpack_unpacked_destroy (&fields);
    self->echoes++;
}


//  --------------------------------------------------------------------------
//  example.whois {user}: asks the store for the user and answers
//  {"user", "created_at", "last_seen"} from the store's reply

//  The store answered: the request waited in the call's arg until now
static void
s_whois_answered (void *state, void *arg, const pl_call_reply_t *reply)
{
    example_t *self = (example_t *) state;
    parley_request_t *request = (parley_request_t *) arg;
    if (reply->code && strcmp (reply->code, "not_found") == 0) {
        self->host->reply_error (self->ctx, &request, "no_such_user", "No user has that name.");
        return;
    }
    if (reply->code || !reply->body) {
        //  Another plugin's failure is ours to explain, not to pass on: the
        //  store's words are for the log
        self->host->log (self->ctx, PARLEY_LOG_WARNING, "store.user.get answered %s (%s)",
                         reply->code ? reply->code : "no body", reply->message ? reply->message : "");
        pl_reply_error_retry (self->host, self->ctx, &request, "unavailable",
                              "The user directory is not answering; try again in a moment.",
                              EXAMPLE_RETRY_MS);
        return;
    }
    //  Pick the fields the client may see (the store's answer also holds
    //  the password hash, which must never leave the server), and write
    //  them as the protocol does: the store keeps times as milliseconds,
    //  clients read ISO 8601
    const char *name;
    size_t name_size;
    int64_t created_at, last_seen;
    if (pl_body_strn (reply->body, "name", &name, &name_size) != 1
        || pl_body_int64 (reply->body, "created_at", &created_at) != 1
        || pl_body_int64 (reply->body, "last_seen", &last_seen) < 0) {
        self->host->reply_error (self->ctx, &request, "internal",
                                 "The user directory answered something unexpected.");
        return;
    }
    bool seen = pl_body_int64 (reply->body, "last_seen", &last_seen) == 1;
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 3);
    pl_pack_str (&pack, "user");
    pl_pack_strn (&pack, name, name_size);
    pl_pack_ktime (&pack, "created_at", created_at);
    if (seen)
        pl_pack_ktime (&pack, "last_seen", last_seen);
    else
        pl_pack_kstr (&pack, "last_seen", NULL);       //  never seen: null
    self->host->reply (self->ctx, &request, pack.buffer.data, pack.buffer.size);
    pl_pack_release (&pack);
}

static void
s_whois (example_t *self, parley_request_t *request)
{
    //  Our route is public (for echo); who is who is for members only
    if (!self->host->request_user (request)) {
        self->host->reply_error (self->ctx, &request, "unauthenticated",
                                 "Log in first to look people up.");
        return;
    }
    size_t body_size;
    const uint8_t *body = self->host->request_body (request, &body_size);
    msgpack_unpacked fields;
    msgpack_unpacked_init (&fields);
    const msgpack_object *map = pl_body_unpack (&fields, body, body_size);
    const char *text;
    size_t size;
    char name [PL_USERNAME_MAX + 1];
    bool valid = map && pl_body_strn (map, "user", &text, &size) == 1
              && size >= PL_USERNAME_MIN && size <= PL_USERNAME_MAX;
    if (valid) {
        memcpy (name, text, size);
        name [size] = 0;
    }
    msgpack_unpacked_destroy (&fields);
    if (!valid) {
        self->host->reply_error (self->ctx, &request, "bad_request",
                                 "example.whois wants a \"user\": a username.");
        return;
    }
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 1);
    pl_pack_kstr (&pack, "name", name);
    //  The request goes with the call as its arg: the handler answers it.
    //  If the call cannot even be sent, no handler will run: answer now.
    if (pl_call_send (self->calls, "store.user.get", pack.buffer.data, pack.buffer.size,
                      s_whois_answered, request))
        pl_reply_error_retry (self->host, self->ctx, &request, "unavailable",
                              "The user directory is not answering; try again in a moment.",
                              EXAMPLE_RETRY_MS);
    pl_pack_release (&pack);
}


//  --------------------------------------------------------------------------
//  example.stats: {"sessions", "echoes", "echoes_last_interval"}, from what
//  the session events and the timer keep

static void
s_stats (example_t *self, parley_request_t *request)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 3);
    pl_pack_kuint (&pack, "sessions", self->sessions);
    pl_pack_kuint (&pack, "echoes", self->echoes);
    pl_pack_kuint (&pack, "echoes_last_interval", self->echoes_last_interval);
    self->host->reply (self->ctx, &request, pack.buffer.data, pack.buffer.size);
    pl_pack_release (&pack);
}

//  The timer: every tick_ms, the echoes of the interval that ended
static void
s_tick (void *state)
{
    example_t *self = (example_t *) state;
    self->echoes_last_interval = self->echoes - self->echoes_at_tick;
    self->echoes_at_tick = self->echoes;
}


//  --------------------------------------------------------------------------
//  The callbacks the host calls, all on this instance's own thread

static void s_destroy (void **state_p);

static int
s_init (parley_ctx_t *ctx, const parley_host_t *host, void **state_p)
{
    example_t *self = (example_t *) calloc (1, sizeof (example_t));
    if (!self) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        return -1;
    }
    self->ctx = ctx;
    self->host = host;
    *state_p = self;

    //  Options come from the command line as example.greeting=Hello; the
    //  host strips our name and hands us "greeting". Ask for every option
    //  here: the host refuses a key nobody asked for during init, and
    //  pl_options refuses a value outside its range.
    pl_options_t options = pl_options (host, ctx, "example");
    const char *greeting = pl_options_str (&options, "greeting", NULL);
    uint64_t tick_ms = pl_options_uint (&options, "tick_ms", EXAMPLE_TICK_MS, 10, 86400000);
    if (pl_options_refused (&options)) {
        s_destroy (state_p);
        return -1;
    }
    self->greeting = greeting ? strdup (greeting) : NULL;
    self->calls = pl_call_new (host, ctx, self);
    self->tick_timer = host->timer_add (ctx, (uint32_t) tick_ms, s_tick);
    if ((greeting && !self->greeting) || !self->calls || self->tick_timer <= 0) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        s_destroy (state_p);
        return -1;
    }
    host->log (ctx, PARLEY_LOG_INFO, "ready, stats every %llu ms%s%s",
               (unsigned long long) tick_ms, greeting ? ", greeting: " : "",
               greeting ? greeting : "");
    return 0;
}

static void
s_destroy (void **state_p)
{
    example_t *self = (example_t *) *state_p;
    if (self) {
        self->host->log (self->ctx, PARLEY_LOG_INFO, "stopping after %llu echoes",
                         (unsigned long long) self->echoes);
        //  The calls still waiting hold requests: the host takes those back
        //  itself when a plugin goes, so dropping the records is enough
        pl_call_destroy (&self->calls);
        free (self->greeting);
        free (self);
        *state_p = NULL;
    }
}

static void
s_on_request (void *state, parley_request_t *request)
{
    example_t *self = (example_t *) state;
    const char *type = self->host->request_type (request);

    //  The broker sends us only types that start with one of our prefixes,
    //  but which of them exist is ours to say: answer the rest with
    //  unknown_type, as every request gets exactly one reply.
    if (type && strcmp (type, "example.echo") == 0)
        s_echo (self, request);
    else
    if (type && strcmp (type, "example.whois") == 0)
        s_whois (self, request);
    else
    if (type && strcmp (type, "example.stats") == 0)
        s_stats (self, request);
    else {
        char message [200];
        snprintf (message, sizeof message, "The example plugin serves example.echo, "
                  "example.whois and example.stats, not '%.64s'.", type ? type : "");
        self->host->reply_error (self->ctx, &request, "unknown_type", message);
    }
}

//  Every answer to a call we made comes here; pl_call runs its handler
static void
s_on_reply (void *state, void *cookie, const char *code, const char *message,
            const uint8_t *body, size_t size)
{
    example_t *self = (example_t *) state;
    pl_call_reply (self->calls, cookie, code, message, body, size);
}

//  PARLEY_PLUGIN_SESSIONS: the broker tells us of every session bound to a
//  user and every one closed; after a RESET (we registered again) a BOUND
//  follows for each session bound now, so we start counting afresh
static void
s_on_session (void *state, int event, uint64_t session, const char *user)
{
    example_t *self = (example_t *) state;
    (void) session;
    (void) user;
    if (event == PARLEY_SESSION_BOUND)
        self->sessions++;
    else
    if (event == PARLEY_SESSION_CLOSED && self->sessions > 0)
        self->sessions--;
    else
    if (event == PARLEY_SESSION_RESET)
        self->sessions = 0;
}


//  --------------------------------------------------------------------------
//  The descriptor: who we are and what we serve

static const parley_route_t s_routes [] = {
    //  PARLEY_ROUTE_PUBLIC lets a session use example.* before it logs in,
    //  so that a plugin author can try this plugin without an account. A
    //  real plugin keeps its routes private (flags 0): the broker then
    //  answers unauthenticated for it, and request_user is never NULL.
    //  PARLEY_SHARD_NONE: any instance may answer any request and the
    //  broker load-balances them (each instance counts its own stats).
    { .prefix = "example.", .flags = PARLEY_ROUTE_PUBLIC, .shard = PARLEY_SHARD_NONE },
    { .prefix = NULL }
};

static const parley_plugin_t s_descriptor = {
    .abi_major = PARLEY_ABI_MAJOR,
    .abi_minor = PARLEY_ABI_MINOR,
    .size = sizeof (parley_plugin_t),
    .flags = PARLEY_PLUGIN_SESSIONS,
    .name = "example",
    .version = "1.1.0",
    .description = "echo, whois and stats: a model for plugin authors",
    .routes = s_routes,
    .init = s_init,
    .destroy = s_destroy,
    .on_request = s_on_request,
    .on_reply = s_on_reply,
    //  We keep no batch to commit, so no on_batch_end; no threads, no on_wake
    .on_batch_end = NULL,
    .on_session = s_on_session
};

//  Exports parley_plugin_describe, the only symbol the host looks up
PARLEY_PLUGIN_DEFINE (s_descriptor)
