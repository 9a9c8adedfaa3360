/*  =========================================================================
    fuzz_plugin - one libFuzzer harness for every plugin: a fake host that
    loads the plugin's instrumented .so and drives it with a sequence of
    requests, answers to its calls, timers, batch ends and session events,
    all read from the fuzzer's input

    Built once per plugin (fuzz_auth, fuzz_rooms, ...) with FUZZ_PLUGIN set
    to the plugin's name; the table below gives each plugin the options it
    runs with. The harness knows no message type: types come from the input
    (and the seeds), and the broker's routing rules come from the plugin's
    own descriptor, so a plugin that gains request types needs no change here.

    What the harness asserts (abort, so libFuzzer reports a crash):
    - every request gets exactly one reply (reply, reply_error, reply_bind),
      never two, never one for a request that is not pending, and none is
      left unanswered once every call is answered and timers have run;
    - reply, call and event bodies are one msgpack map (or none, for a reply);
    - a bind only for a request from a session.
    AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer do the
    rest: each input runs a fresh instance, from init to destroy.

    The input, read front to back until it ends (see README.md):
        op 0 request   flags:u8 type:str8 body:bin16
                       flags bits 0-2: stamped user (0: none), bits 3-5: session
        op 1 answer    pick:u8 code:str8 message:str8 body:bin16
                       answers pending call (pick mod count); empty code: ok
        op 2 timers    rounds:u8   fires every timer, up to (rounds % 8) + 1 times
        op 3 session   event:u8 session:u8 user:u8
        op 4 batch end
        op 5 failures  which:u8    bit 0: the next call fails (returns -1, no
                                   answer comes); bit 1: the next reply returns
                                   -1 (not queued; the request is taken back)
    str8 is a length byte and the bytes; bin16 a little-endian 16-bit length
    and the bytes. A field cut short by the end of the input is what is left.
    =========================================================================
*/

#include "parley_plugin.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#ifndef FUZZ_PLUGIN
#   error "build with -DFUZZ_PLUGIN=\"name\""
#endif
#ifndef FUZZ_PLUGIN_DIR
#   define FUZZ_PLUGIN_DIR "plugins"
#endif

//  --------------------------------------------------------------------------
//  The per-plugin table: the options each plugin runs with under the fuzzer.
//  @TMPDIR@ in a value becomes a folder of this process's own, emptied after
//  every input. A plugin missing here runs with no options.

typedef struct {
    const char *plugin;
    const char *options [8];        //  "key=value", NULL-terminated
} fuzz_setup_t;

static const fuzz_setup_t s_setups [] = {
    //  The cheapest argon2id libsodium allows: the fuzzer wants many inputs
    //  a second, not safe hashes
    { "auth", { "workers=1", "ops_limit=1", "mem_limit=8192", NULL } },
    //  Events without waiting a second between them
    { "presence", { "interval_ms=1", "grace_ms=0", NULL } },
    { "rooms", { NULL } },
    { "pm", { NULL } },
    //  Idle uploads forgotten and sweeps sent at every timer round
    { "files", { "upload_idle_s=1", "sweep_s=1", NULL } },
    { "search", { NULL } },
    { "store-sqlite", { "path=@TMPDIR@/fuzz.db", NULL } },
    //  A Unix socket nobody listens on: the driver's connect fails at once,
    //  without a network, and every request is validated, then answered
    //  unavailable. What happens after a server answers is not fuzzed.
    { "store-mongo", { "uri=mongodb://%2Fnonexistent%2Fparley-fuzz.sock/parley"
                       "?serverSelectionTimeoutMS=1&connectTimeoutMS=1&serverSelectionTryOnce=false", NULL } },
    { "example", { "greeting=hello", NULL } },
};

//  The plugins whose inputs each start from the files a first init left in
//  @TMPDIR@, copied. store-sqlite: migrating a new file was two thirds of
//  an input's time (30 inputs a second); inputs now start from a migrated
//  file and its search index (the migrations are tested in its unit tests).
static const char *s_from_template [] = { "store-sqlite" };

//  What the broker stamps: a few valid usernames, and addresses per session
static const char *s_users [] = { "alice", "bob", "carol", "dave", "Erin", "f.g-h_9", "mallory" };
#define USER_COUNT   (sizeof s_users / sizeof s_users [0])

#define DRAIN_ROUNDS_MAX    2000    //  answering calls and firing timers at the end
#define DRAIN_SECONDS_MAX   5       //  auth's password workers are threads


//  --------------------------------------------------------------------------
//  The fake host's state: one plugin instance and what it did

struct parley_request_s {
    char *type;
    const char *user;               //  from s_users, or NULL
    uint64_t session;               //  0: sent by another plugin
    char address [16];              //  "" when session is 0
    uint8_t *body;
    size_t body_size;
    bool answered;
    int64_t time_left;              //  request_time_left: -1, 0 or 5000 (flags)
};

typedef struct {
    void *cookie;
} fuzz_call_t;

typedef struct {
    int id;
    void (*handler) (void *state);
    bool live;
} fuzz_timer_t;

struct parley_ctx_s {
    const parley_plugin_t *plugin;
    void *state;
    parley_request_t **requests;    //  every request of this input, freed at its end
    size_t request_count, request_max;
    fuzz_call_t *calls;             //  pending calls, oldest first
    size_t call_count, call_max;
    fuzz_timer_t *timers;
    size_t timer_count, timer_max;
    size_t answered;                //  requests replied to
    bool fail_call;                 //  the next call returns -1
    bool fail_reply;                //  the next reply returns -1
    size_t progress;                //  replies, calls and events so far
    atomic_bool woken;              //  host->wake since the last on_wake (any thread)
};

static void *s_library;
static const parley_plugin_t *s_plugin;
static const fuzz_setup_t *s_setup;
static char s_tmpdir [256];
static bool s_verbose;

static void
s_fail (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "fuzz_plugin (%s): ", FUZZ_PLUGIN);
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n");
    va_end (args);
    abort ();
}

static void *
s_grow (void *array, size_t *max, size_t item_size)
{
    size_t next = *max ? *max * 2 : 16;
    void *grown = realloc (array, next * item_size);
    if (!grown)
        s_fail ("out of memory");
    *max = next;
    return grown;
}


//  --------------------------------------------------------------------------
//  A bounded msgpack check: one value, whose containers never declare more
//  elements than bytes remain. msgpack-c sizes its allocations from declared
//  counts; the gateway and the plugins only ever produce honest ones, so a
//  body that lies about its counts is not an input the plugin can meet.
//  Returns the bytes of the value, or 0 if it is not one.

static size_t
s_mp_value_size (const uint8_t *data, size_t size)
{
    size_t at = 0;
    uint64_t items = 1;             //  values still to read
    while (items > 0) {
        if (at >= size || items > size - at)
            return 0;
        uint8_t head = data [at++];
        uint64_t skip = 0, children = 0, length_bytes = 0;
        if (head <= 0x7f || head >= 0xe0 || head == 0xc0 || head == 0xc2 || head == 0xc3)
            ;
        else if (head >= 0x80 && head <= 0x8f) children = 2 * (uint64_t) (head & 0x0f);
        else if (head >= 0x90 && head <= 0x9f) children = head & 0x0f;
        else if (head >= 0xa0 && head <= 0xbf) skip = head & 0x1f;
        else if (head == 0xc4 || head == 0xd9) length_bytes = 1;
        else if (head == 0xc5 || head == 0xda) length_bytes = 2;
        else if (head == 0xc6 || head == 0xdb) length_bytes = 4;
        else if (head == 0xc7) { length_bytes = 1; skip = 1; }
        else if (head == 0xc8) { length_bytes = 2; skip = 1; }
        else if (head == 0xc9) { length_bytes = 4; skip = 1; }
        else if (head == 0xca) skip = 4;
        else if (head == 0xcb) skip = 8;
        else if (head >= 0xcc && head <= 0xcf) skip = 1u << (head - 0xcc);
        else if (head >= 0xd0 && head <= 0xd3) skip = 1u << (head - 0xd0);
        else if (head >= 0xd4 && head <= 0xd8) skip = 1 + (1u << (head - 0xd4));
        else if (head == 0xdc || head == 0xde) length_bytes = 2;
        else if (head == 0xdd || head == 0xdf) length_bytes = 4;
        else
            return 0;               //  0xc1, never used
        if (length_bytes) {
            if (size - at < length_bytes)
                return 0;
            uint64_t length = 0;
            for (uint64_t index = 0; index < length_bytes; index++)
                length = (length << 8) | data [at++];
            if (head >= 0xdc)
                children = head >= 0xde ? 2 * length : length;
            else
                skip += length;
        }
        if (skip > size - at)
            return 0;
        at += skip;
        items = items - 1 + children;
    }
    return at;
}

//  True if body is exactly one msgpack map
static bool
s_is_map (const void *body, size_t size)
{
    const uint8_t *data = (const uint8_t *) body;
    return body && size > 0
        && ((data [0] & 0xf0) == 0x80 || data [0] == 0xde || data [0] == 0xdf)
        && s_mp_value_size (data, size) == size;
}


//  --------------------------------------------------------------------------
//  The host functions

static const char *
s_request_type (const parley_request_t *request)
{
    return request->type;
}

static const char *
s_request_user (const parley_request_t *request)
{
    return request->user;
}

static uint64_t
s_request_session (const parley_request_t *request)
{
    return request->session;
}

static const char *
s_request_address (const parley_request_t *request)
{
    return request->session ? request->address : NULL;
}

static const uint8_t *
s_request_body (const parley_request_t *request, size_t *size_p)
{
    *size_p = request->body_size;
    return request->body;
}

static int64_t
s_request_time_left (const parley_request_t *request)
{
    return request->time_left;
}

//  The request a reply takes back, after checking the host lent it and it
//  is still pending: the ABI's one rule we check hardest
static parley_request_t *
s_lent (parley_ctx_t *ctx, parley_request_t **request_p, const char *how)
{
    if (!request_p || !*request_p)
        s_fail ("%s with no request (a reference already taken back?)", how);
    parley_request_t *request = *request_p;
    bool ours = false;
    for (size_t index = 0; index < ctx->request_count && !ours; index++)
        ours = ctx->requests [index] == request;
    if (!ours)
        s_fail ("%s for a request the host never lent", how);
    if (request->answered)
        s_fail ("%s: request '%s' answered a second time", how, request->type);
    return request;
}

//  Returns what the reply function returns: -1 once when op 5 asked for it
static int
s_take_back (parley_ctx_t *ctx, parley_request_t **request_p)
{
    if (s_verbose)
        fprintf (stderr, "%s: answered '%s'\n", FUZZ_PLUGIN, (*request_p)->type);
    (*request_p)->answered = true;
    ctx->answered++;
    ctx->progress++;
    *request_p = NULL;
    int rc = ctx->fail_reply ? -1 : 0;
    ctx->fail_reply = false;
    return rc;
}

static int
s_reply (parley_ctx_t *ctx, parley_request_t **request_p, const void *body, size_t size)
{
    parley_request_t *request = s_lent (ctx, request_p, "reply");
    if ((body || size) && !s_is_map (body, size))
        s_fail ("reply to '%s' with a body that is not one msgpack map (%zu bytes)",
                request->type, size);
    return s_take_back (ctx, request_p);
}

static int
s_reply_error (parley_ctx_t *ctx, parley_request_t **request_p, const char *code,
               const char *message)
{
    parley_request_t *request = s_lent (ctx, request_p, "reply_error");
    if (!code || !*code)
        s_fail ("reply_error to '%s' without a code", request->type);
    if (message)
        (void) strlen (message);
    return s_take_back (ctx, request_p);
}

static int
s_reply_error_body (parley_ctx_t *ctx, parley_request_t **request_p, const char *code,
                    const char *message, const void *body, size_t size)
{
    parley_request_t *request = s_lent (ctx, request_p, "reply_error_body");
    if (!s_is_map (body, size))
        s_fail ("reply_error_body to '%s' with fields that are not one msgpack map (%zu bytes)",
                request->type, size);
    return s_reply_error (ctx, request_p, code, message);
}

static int
s_reply_bind (parley_ctx_t *ctx, parley_request_t **request_p, const char *user,
              const void *body, size_t size)
{
    parley_request_t *request = s_lent (ctx, request_p, "reply_bind");
    if (request->session == 0)
        s_fail ("reply_bind to '%s', which came from no session", request->type);
    if (user && !*user)
        s_fail ("reply_bind with an empty user");
    return s_reply (ctx, request_p, body, size);
}

static int
s_call (parley_ctx_t *ctx, const char *type, const void *body, size_t size, void *cookie)
{
    if (!type || !*type)
        s_fail ("call without a type");
    if (!s_is_map (body, size))
        s_fail ("call '%s' with a body that is not one msgpack map (%zu bytes)", type, size);
    if (ctx->fail_call) {
        ctx->fail_call = false;
        return -1;              //  nothing sent, no answer will come
    }
    if (ctx->call_count == ctx->call_max)
        ctx->calls = s_grow (ctx->calls, &ctx->call_max, sizeof (fuzz_call_t));
    ctx->calls [ctx->call_count++].cookie = cookie;
    if (s_verbose)
        fprintf (stderr, "%s: calls '%s'\n", FUZZ_PLUGIN, type);
    ctx->progress++;
    return 0;
}

//  As the host: no time left sends nothing
static int
s_call_within (parley_ctx_t *ctx, const char *type, const void *body, size_t size,
               void *cookie, int64_t time_left_ms)
{
    if (time_left_ms == 0)
        return -1;
    return s_call (ctx, type, body, size, cookie);
}

static int
s_deliver_users (parley_ctx_t *ctx, const char *const *users, size_t count,
                 const void *body, size_t size)
{
    for (size_t index = 0; index < count; index++)
        if (!users [index])
            s_fail ("deliver_users with a NULL user");
    if (!s_is_map (body, size))
        s_fail ("deliver_users with a body that is not one msgpack map (%zu bytes)", size);
    ctx->progress++;
    return 0;
}

static int
s_deliver_sessions (parley_ctx_t *ctx, const uint64_t *sessions, size_t count,
                    const void *body, size_t size)
{
    if (count && !sessions)
        s_fail ("deliver_sessions with no sessions");
    if (!s_is_map (body, size))
        s_fail ("deliver_sessions with a body that is not one msgpack map (%zu bytes)", size);
    ctx->progress++;
    return 0;
}

static const char *
s_option (parley_ctx_t *ctx, const char *name)
{
    static char value [512];
    size_t name_size = strlen (name);
    for (size_t index = 0; s_setup && s_setup->options [index]; index++) {
        const char *option = s_setup->options [index];
        if (strncmp (option, name, name_size) == 0 && option [name_size] == '=') {
            const char *given = option + name_size + 1;
            const char *mark = strstr (given, "@TMPDIR@");
            if (!mark)
                return given;
            snprintf (value, sizeof value, "%.*s%s%s", (int) (mark - given), given,
                      s_tmpdir, mark + 8);
            return value;
        }
    }
    return NULL;
}

static void
s_log (parley_ctx_t *ctx, int level, const char *format, ...)
{
    //  Always formatted, so that a bad argument is found even when quiet
    char line [2048];
    va_list args;
    va_start (args, format);
    vsnprintf (line, sizeof line, format, args);
    va_end (args);
    if (s_verbose)
        fprintf (stderr, "%s: log [%d] %s\n", FUZZ_PLUGIN, level, line);
}

static int
s_timer_add (parley_ctx_t *ctx, uint32_t interval_ms, void (*handler) (void *state))
{
    if (!handler)
        s_fail ("timer_add without a handler");
    if (ctx->timer_count == ctx->timer_max)
        ctx->timers = s_grow (ctx->timers, &ctx->timer_max, sizeof (fuzz_timer_t));
    fuzz_timer_t *timer = &ctx->timers [ctx->timer_count++];
    timer->id = (int) ctx->timer_count;
    timer->handler = handler;
    timer->live = true;
    return timer->id;
}

static int
s_timer_cancel (parley_ctx_t *ctx, int timer_id)
{
    if (timer_id < 1 || (size_t) timer_id > ctx->timer_count || !ctx->timers [timer_id - 1].live)
        return -1;
    ctx->timers [timer_id - 1].live = false;
    return 0;
}

static int
s_unbind_sessions (parley_ctx_t *ctx, const uint64_t *sessions, size_t count)
{
    if (count && !sessions)
        s_fail ("unbind_sessions with no sessions");
    ctx->progress++;
    return 0;
}

//  Any thread: the plugin's workers (auth's password hashing)
static int
s_wake (parley_ctx_t *ctx)
{
    if (!s_plugin->on_wake || s_plugin->abi_minor < 2)
        return -1;
    atomic_store (&ctx->woken, true);
    return 0;
}

static const parley_host_t s_host = {
    .abi_major = PARLEY_ABI_MAJOR,
    .abi_minor = PARLEY_ABI_MINOR,
    .size = sizeof (parley_host_t),
    .request_type = s_request_type,
    .request_user = s_request_user,
    .request_session = s_request_session,
    .request_address = s_request_address,
    .request_body = s_request_body,
    .reply = s_reply,
    .reply_error = s_reply_error,
    .reply_error_body = s_reply_error_body,
    .reply_bind = s_reply_bind,
    .call = s_call,
    .deliver_users = s_deliver_users,
    .deliver_sessions = s_deliver_sessions,
    .option = s_option,
    .log = s_log,
    .timer_add = s_timer_add,
    .timer_cancel = s_timer_cancel,
    .unbind_sessions = s_unbind_sessions,
    .wake = s_wake,
    .request_time_left = s_request_time_left,
    .call_within = s_call_within
};


//  --------------------------------------------------------------------------
//  Reading the input

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t at;
} fuzz_input_t;

static uint8_t
s_u8 (fuzz_input_t *input)
{
    return input->at < input->size ? input->data [input->at++] : 0;
}

//  Up to length bytes, as many as are left
static const uint8_t *
s_bytes (fuzz_input_t *input, size_t length, size_t *size_p)
{
    size_t left = input->size - input->at;
    *size_p = length < left ? length : left;
    const uint8_t *bytes = input->data + input->at;
    input->at += *size_p;
    return bytes;
}

//  A str8 as a NUL-terminated copy, cut at its first NUL. Caller frees.
static char *
s_str8 (fuzz_input_t *input)
{
    size_t size;
    const uint8_t *bytes = s_bytes (input, s_u8 (input), &size);
    char *text = (char *) malloc (size + 1);
    if (!text)
        s_fail ("out of memory");
    memcpy (text, bytes, size);
    text [size] = 0;
    return text;
}

static const uint8_t *
s_bin16 (fuzz_input_t *input, size_t *size_p)
{
    size_t length = s_u8 (input);
    length |= (size_t) s_u8 (input) << 8;
    return s_bytes (input, length, size_p);
}


//  --------------------------------------------------------------------------
//  Driving the plugin as the broker and the host would

//  The route a type reaches: the longest matching prefix, or NULL
static const parley_route_t *
s_route (const char *type)
{
    const parley_route_t *best = NULL;
    for (const parley_route_t *route = s_plugin->routes; route->prefix; route++)
        if (strncmp (type, route->prefix, strlen (route->prefix)) == 0
        &&  (!best || strlen (route->prefix) > strlen (best->prefix)))
            best = route;
    return best;
}

static void
s_op_request (parley_ctx_t *ctx, fuzz_input_t *input)
{
    uint8_t flags = s_u8 (input);
    char *type = s_str8 (input);
    size_t size;
    const uint8_t *body = s_bin16 (input, &size);
    static const uint8_t empty_map [] = { 0x80 };
    if (size == 0) {
        body = empty_map;       //  never NULL: an empty map at least
        size = 1;
    }
    //  What the broker would not deliver: a type no route serves, a client's
    //  request on an internal route, an unauthenticated one on a private
    //  route. The body is its first msgpack value (bytes after it are
    //  dropped, so that more of the fuzzer's mutations stay bodies); one
    //  that lies about its counts is not delivered (see above).
    const parley_route_t *route = s_route (type);
    size_t user = flags & 7;
    size = s_mp_value_size (body, size);
    if (!route || size == 0
    ||  (!(route->flags & PARLEY_ROUTE_INTERNAL) && user == 0
         && !(route->flags & PARLEY_ROUTE_PUBLIC))) {
        free (type);
        return;
    }
    parley_request_t *request = (parley_request_t *) calloc (1, sizeof (parley_request_t));
    if (!request || !(request->body = (uint8_t *) malloc (size)))
        s_fail ("out of memory");
    request->type = type;
    memcpy (request->body, body, size);
    request->body_size = size;
    //  Bit 6: its time is gone; bit 7 (alone): it has 5 s
    request->time_left = (flags & 0x40) ? 0 : (flags & 0x80) ? 5000 : -1;
    if (!(route->flags & PARLEY_ROUTE_INTERNAL)) {
        //  From a client's session; internal routes only hear other plugins
        request->user = user ? s_users [user - 1] : NULL;
        request->session = 0x1000 + ((flags >> 3) & 7);
        snprintf (request->address, sizeof request->address, "10.0.0.%d", (flags >> 3) & 7);
    }
    if (ctx->request_count == ctx->request_max)
        ctx->requests = s_grow (ctx->requests, &ctx->request_max, sizeof (parley_request_t *));
    ctx->requests [ctx->request_count++] = request;
    s_plugin->on_request (ctx->state, request);
}

//  Answers the pending call at index; the call is gone before on_reply runs
static void
s_answer (parley_ctx_t *ctx, size_t index, const char *code, const char *message,
          const uint8_t *body, size_t size)
{
    void *cookie = ctx->calls [index].cookie;
    memmove (ctx->calls + index, ctx->calls + index + 1,
             (ctx->call_count - index - 1) * sizeof (fuzz_call_t));
    ctx->call_count--;
    ctx->progress++;
    if (!s_plugin->on_reply)
        return;
    //  From minor 3 an error comes with its fields: the input's body
    if (code)
        s_plugin->on_reply (ctx->state, cookie, code, message,
                            s_plugin->abi_minor >= 3 ? body : NULL,
                            s_plugin->abi_minor >= 3 ? size : 0);
    else
        s_plugin->on_reply (ctx->state, cookie, NULL, NULL, body, size);
}

static void
s_op_answer (parley_ctx_t *ctx, fuzz_input_t *input)
{
    uint8_t pick = s_u8 (input);
    char *code = s_str8 (input);
    char *message = s_str8 (input);
    size_t size;
    const uint8_t *body = s_bin16 (input, &size);
    static const uint8_t empty_map [] = { 0x80 };
    if (size == 0) {
        body = empty_map;       //  what the host passes for an ok with no body
        size = 1;
    }
    size = s_mp_value_size (body, size);        //  as for a request
    if (ctx->call_count > 0 && size > 0)
        s_answer (ctx, pick % ctx->call_count, *code ? code : NULL,
                  *message ? message : NULL, body, size);
    free (code);
    free (message);
}

static void
s_batch_end (parley_ctx_t *ctx)
{
    if (s_plugin->on_batch_end)
        s_plugin->on_batch_end (ctx->state);
}

//  Fires every live timer once; a handler may add or cancel timers. A wake
//  since the last pass runs on_wake first, as the host does when its wake
//  pipe is readable.
static void
s_fire_timers (parley_ctx_t *ctx)
{
    if (atomic_exchange (&ctx->woken, false)) {
        s_plugin->on_wake (ctx->state);
        s_batch_end (ctx);
    }
    size_t count = ctx->timer_count;
    for (size_t index = 0; index < count; index++)
        if (ctx->timers [index].live)
            ctx->timers [index].handler (ctx->state);
}

//  Up to rounds passes over the timers and wakes, waiting a little while
//  nothing happens: auth's password workers finish on threads of their own
static void
s_op_timers (parley_ctx_t *ctx, fuzz_input_t *input)
{
    int rounds = (s_u8 (input) % 8) + 1;
    for (int round = 0; round < rounds; round++) {
        size_t before = ctx->progress;
        s_fire_timers (ctx);
        if (ctx->progress != before)
            break;
        usleep (100);
    }
}

static void
s_op_session (parley_ctx_t *ctx, fuzz_input_t *input)
{
    int event = (s_u8 (input) % 3) + 1;
    uint64_t session = 0x1000 + (s_u8 (input) & 7);
    size_t user = s_u8 (input) % (USER_COUNT + 1);
    if (!(s_plugin->flags & PARLEY_PLUGIN_SESSIONS) || !s_plugin->on_session)
        return;
    if (event == PARLEY_SESSION_RESET)
        s_plugin->on_session (ctx->state, event, 0, NULL);
    else
        s_plugin->on_session (ctx->state, event, session,
                              user ? s_users [user - 1] : s_users [0]);
}


//  At the end of the input: every call answered unavailable (as the host
//  does when nothing answers in time), timers run, batches ended, until no
//  request waits or nothing more happens
static void
s_drain (parley_ctx_t *ctx)
{
    time_t deadline = time (NULL) + DRAIN_SECONDS_MAX;
    for (int round = 0; round < DRAIN_ROUNDS_MAX && time (NULL) <= deadline; round++) {
        size_t before = ctx->progress;
        s_batch_end (ctx);
        while (ctx->call_count > 0)
            s_answer (ctx, 0, "unavailable", "The service did not answer in time.", NULL, 0);
        s_batch_end (ctx);
        if (ctx->answered == ctx->request_count && ctx->call_count == 0)
            return;
        s_fire_timers (ctx);
        if (ctx->progress == before)
            usleep (round < 100 ? 100 : 1000);
    }
    for (size_t index = 0; index < ctx->request_count; index++)
        if (!ctx->requests [index]->answered)
            s_fail ("request '%s' never answered (%zu of %zu requests answered, %zu calls "
                    "pending)", ctx->requests [index]->type, ctx->answered,
                    ctx->request_count, ctx->call_count);
}

//  Removes every file of folder
static void
s_folder_empty (const char *folder)
{
    DIR *dir = opendir (folder);
    if (!dir)
        return;
    struct dirent *entry;
    char path [512];
    while ((entry = readdir (dir)))
        if (strcmp (entry->d_name, ".") && strcmp (entry->d_name, "..")) {
            snprintf (path, sizeof path, "%s/%s", folder, entry->d_name);
            unlink (path);
        }
    closedir (dir);
}

//  Empties the instance's folder between inputs (store-sqlite's database)
static void
s_tmpdir_empty (void)
{
    s_folder_empty (s_tmpdir);
}

static void
s_tmpdir_remove (void)
{
    s_tmpdir_empty ();
    rmdir (s_tmpdir);
}

//  The files of @TMPDIR@ after the first init and destroy (s_from_template),
//  in a folder beside it; "" when the plugin starts from none
static char s_template [sizeof s_tmpdir + 16];

//  Copies every file of folder from into folder to
static void
s_copy_files (const char *from, const char *to)
{
    DIR *dir = opendir (from);
    if (!dir)
        s_fail ("cannot read %s", from);
    struct dirent *entry;
    char source [512], target [512];
    static char buffer [65536];
    while ((entry = readdir (dir))) {
        if (!strcmp (entry->d_name, ".") || !strcmp (entry->d_name, ".."))
            continue;
        snprintf (source, sizeof source, "%s/%s", from, entry->d_name);
        snprintf (target, sizeof target, "%s/%s", to, entry->d_name);
        FILE *in = fopen (source, "rb"), *out = fopen (target, "wb");
        if (!in || !out)
            s_fail ("cannot copy %s to %s", source, target);
        size_t size;
        while ((size = fread (buffer, 1, sizeof buffer, in)) > 0)
            if (fwrite (buffer, 1, size, out) != size)
                s_fail ("cannot write %s", target);
        fclose (in);
        if (fclose (out) != 0)
            s_fail ("cannot write %s", target);
    }
    closedir (dir);
}

static void
s_template_remove (void)
{
    s_folder_empty (s_template);
    rmdir (s_template);
}


//  --------------------------------------------------------------------------
//  libFuzzer's entry points

//  msgpack-c sizes allocations from declared counts: let a huge one fail
//  rather than abort (proto/README.md, NOTES.md). A smaller quarantine
//  than the 256 MiB default: each input starts an instance afresh, and
//  fresh pages for every allocation made store-sqlite three times slower.
const char *
__asan_default_options (void)
{
    return "allocator_may_return_null=1:quarantine_size_mb=16";
}

//  One instance from init to destroy, driven by data (none: started and
//  stopped), its files left in @TMPDIR@
static void
s_instance_run (const uint8_t *data, size_t size)
{
    parley_ctx_t ctx = { .plugin = s_plugin };
    if (s_plugin->init (&ctx, &s_host, &ctx.state) != 0)
        s_fail ("init refused to start (FUZZ_VERBOSE=1 shows its log)");
    fuzz_input_t input = { data, size, 0 };
    while (input.at < input.size) {
        switch (s_u8 (&input) % 6) {
            case 0: s_op_request (&ctx, &input); break;
            case 1: s_op_answer (&ctx, &input);  break;
            case 2: s_op_timers (&ctx, &input);  break;
            case 3: s_op_session (&ctx, &input); break;
            case 4: s_batch_end (&ctx);          break;
            case 5: {
                uint8_t which = s_u8 (&input);
                ctx.fail_call = which & 1;
                ctx.fail_reply = (which & 2) != 0;
                break;
            }
        }
    }
    s_drain (&ctx);
    if (s_plugin->destroy)
        s_plugin->destroy (&ctx.state);
    if (ctx.state)
        s_fail ("destroy did not nullify the state");

    for (size_t index = 0; index < ctx.request_count; index++) {
        free (ctx.requests [index]->type);
        free (ctx.requests [index]->body);
        free (ctx.requests [index]);
    }
    free (ctx.requests);
    free (ctx.calls);
    free (ctx.timers);
}

//  One instance without input, whose files every input then starts from
//  (a plugin whose first start is slow: a store migrating its schema)
static void
s_template_make (void)
{
    s_instance_run (NULL, 0);
    snprintf (s_template, sizeof s_template, "%s-template", s_tmpdir);
    if (mkdir (s_template, 0700) != 0)
        s_fail ("cannot make %s", s_template);
    atexit (s_template_remove);
    s_copy_files (s_tmpdir, s_template);
    s_tmpdir_empty ();
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    s_verbose = getenv ("FUZZ_VERBOSE") != NULL;
    const char *dir = getenv ("PARLEY_FUZZ_PLUGIN_DIR");
    char path [1024];
    snprintf (path, sizeof path, "%s/%s.so", dir ? dir : FUZZ_PLUGIN_DIR, FUZZ_PLUGIN);
    //  As the host loads it; never closed, so that leaks and crashes are
    //  reported with the plugin's symbols
    s_library = dlopen (path, RTLD_NOW | RTLD_LOCAL);
    if (!s_library)
        s_fail ("cannot load %s: %s", path, dlerror ());
    parley_plugin_describe_fn *describe
        = (parley_plugin_describe_fn *) dlsym (s_library, PARLEY_PLUGIN_DESCRIBE_SYMBOL);
    parley_abi_t supported = { PARLEY_ABI_MAJOR, PARLEY_ABI_MINOR };
    s_plugin = describe ? describe (&supported, 1) : NULL;
    if (!s_plugin || s_plugin->abi_major != PARLEY_ABI_MAJOR || !s_plugin->init
    ||  !s_plugin->on_request || !s_plugin->routes)
        s_fail ("%s is not a plugin this harness can run", path);
    for (size_t index = 0; index < sizeof s_setups / sizeof s_setups [0]; index++)
        if (strcmp (s_setups [index].plugin, FUZZ_PLUGIN) == 0)
            s_setup = &s_setups [index];

    const char *base = access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv ("TMPDIR");
    snprintf (s_tmpdir, sizeof s_tmpdir, "%s/parley-fuzz-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp (s_tmpdir))
        s_fail ("cannot make a folder in %s", base ? base : "/tmp");
    atexit (s_tmpdir_remove);
    for (size_t index = 0; index < sizeof s_from_template / sizeof s_from_template [0]; index++)
        if (strcmp (s_from_template [index], FUZZ_PLUGIN) == 0)
            s_template_make ();
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (*s_template)
        s_copy_files (s_template, s_tmpdir);
    s_instance_run (data, size);
    s_tmpdir_empty ();
    return 0;
}
