/*  =========================================================================
    example - the plugin every Parley plugin starts from

    Serves one request, example.echo, which answers with the fields it was
    sent and the user the broker stamped on it. Small as it is, it shows all
    a plugin needs: a descriptor that names its routes, state created in init
    and freed in destroy, reading a request's msgpack body, answering with
    reply or reply_error, and reading an option from the command line.

    Copy this folder, rename it, and keep the shape. See plugins/README.md and
    proto/PLUGIN-ABI.md.
    =========================================================================
*/

#include "parley_plugin.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Per-instance state. Each instance gets its own (a process may run several
//  instances of one plugin), so nothing lives in globals.
typedef struct {
    parley_ctx_t *ctx;              //  the host's handle, for every host call
    const parley_host_t *host;      //  the host's function table
    char *greeting;                 //  option example.greeting, or NULL
    uint64_t echoes;                //  requests answered, for the log at exit
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
    size_t offset = 0;
    msgpack_unpack_return unpacked
        = msgpack_unpack_next (&fields, (const char *) body, body_size, &offset);
    if (unpacked != MSGPACK_UNPACK_SUCCESS || fields.data.type != MSGPACK_OBJECT_MAP) {
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
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, self->greeting ? 3 : 2);

    msgpack_pack_str_with_body (&packer, "echo", 4);
    msgpack_pack_object (&packer, fields.data);

    msgpack_pack_str_with_body (&packer, "user", 4);
    if (user)
        msgpack_pack_str_with_body (&packer, user, strlen (user));
    else
        msgpack_pack_nil (&packer);

    if (self->greeting) {
        msgpack_pack_str_with_body (&packer, "greeting", 8);
        msgpack_pack_str_with_body (&packer, self->greeting, strlen (self->greeting));
    }

    //  The host copies the reply, so our buffer is ours to free right after;
    //  reply takes the request back and sets our pointer to NULL.
    host->reply (self->ctx, &request, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    msgpack_unpacked_destroy (&fields);
    self->echoes++;
}


//  --------------------------------------------------------------------------
//  The callbacks the host calls, all on this instance's own thread

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

    //  Options come from the command line as example.greeting=Hello; the
    //  host strips our name and hands us "greeting". The returned string is
    //  borrowed, but copying what we keep is the habit that never goes wrong.
    const char *greeting = host->option (ctx, "greeting");
    if (greeting) {
        self->greeting = strdup (greeting);
        if (!self->greeting) {
            free (self);
            host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
            return -1;
        }
    }
    host->log (ctx, PARLEY_LOG_INFO, "ready%s%s", greeting ? ", greeting: " : "",
               greeting ? greeting : "");
    *state_p = self;
    return 0;
}

static void
s_destroy (void **state_p)
{
    example_t *self = (example_t *) *state_p;
    if (self) {
        self->host->log (self->ctx, PARLEY_LOG_INFO, "stopping after %llu echoes",
                         (unsigned long long) self->echoes);
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
    else {
        char message [160];
        snprintf (message, sizeof message,
                  "The example plugin serves example.echo only, not '%.64s'.",
                  type ? type : "");
        self->host->reply_error (self->ctx, &request, "unknown_type", message);
    }
}


//  --------------------------------------------------------------------------
//  The descriptor: who we are and what we serve

static const parley_route_t s_routes [] = {
    //  PARLEY_ROUTE_PUBLIC lets a session use example.* before it logs in,
    //  so that a plugin author can try this plugin without an account. A
    //  real plugin keeps its routes private (flags 0): the broker then
    //  answers unauthenticated for it, and request_user is never NULL.
    //  PARLEY_SHARD_NONE: echo keeps no state, so any instance may answer
    //  any request and the broker load-balances them.
    { .prefix = "example.", .flags = PARLEY_ROUTE_PUBLIC, .shard = PARLEY_SHARD_NONE },
    { .prefix = NULL }
};

static const parley_plugin_t s_descriptor = {
    .abi_major = PARLEY_ABI_MAJOR,
    .abi_minor = PARLEY_ABI_MINOR,
    .size = sizeof (parley_plugin_t),
    .flags = 0,
    .name = "example",
    .version = "1.0.0",
    .description = "echoes example.echo requests: a model for plugin authors",
    .routes = s_routes,
    .init = s_init,
    .destroy = s_destroy,
    .on_request = s_on_request,
    //  We never call other plugins, so no on_reply; we keep no batch to
    //  commit, so no on_batch_end; we want no session events.
    .on_reply = NULL,
    .on_batch_end = NULL,
    .on_session = NULL
};

//  Exports parley_plugin_describe, the only symbol the host looks up
PARLEY_PLUGIN_DEFINE (s_descriptor)
