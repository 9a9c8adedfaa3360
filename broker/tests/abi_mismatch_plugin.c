/*  =========================================================================
    abi_mismatch_plugin - a plugin built for an ABI this host does not speak

    Its descriptor claims plugin ABI 2.0, as a plugin built against a future
    parley_plugin.h would. The host must refuse it at load with a message
    that names both versions, and must never call any of its callbacks.
    =========================================================================
*/

#include "parley_plugin.h"

#include <stdlib.h>

static int
s_init (parley_ctx_t *ctx, const parley_host_t *host, void **state_p)
{
    abort ();                   //  a host that gets this far is wrong
}

static void
s_on_request (void *state, parley_request_t *request)
{
    abort ();
}

static const parley_route_t s_routes [] = {
    { .prefix = "mismatch.", .flags = 0, .shard = PARLEY_SHARD_NONE },
    { .prefix = NULL }
};

static const parley_plugin_t s_descriptor = {
    .abi_major = 2,
    .abi_minor = 0,
    .size = sizeof (parley_plugin_t),
    .name = "abi-mismatch",
    .version = "2.0.0",
    .description = "built for plugin ABI 2.0, for the host's refusal test",
    .routes = s_routes,
    .init = s_init,
    .on_request = s_on_request
};

PARLEY_PLUGIN_DEFINE (s_descriptor)
