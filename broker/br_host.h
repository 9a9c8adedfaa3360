/*  =========================================================================
    br_host - runs one plugin instance: loads the .so, connects to a broker

    The same host runs a plugin inside the broker's process (endpoint
    BR_BROKER_INPROC) and inside a parley-plugin process (tcp:// or ipc://).
    It dlopens the plugin with RTLD_NOW | RTLD_LOCAL, asks its descriptor for
    an ABI version this host supports, refuses a plugin whose ABI major it does
    not support with a message that names the versions it does, gives the
    plugin the host function table, says HELLO to the broker with the plugin's
    routes, heartbeats, and calls the plugin's callbacks on its own thread.

        br_host_config_t config = { .plugin_path = "build/plugins/example.so",
                                    .endpoint = BR_BROKER_INPROC };
        char error [256];
        zactor_t *host = br_host_start (&config, error, sizeof error);
        if (!host)
            fprintf (stderr, "%s\n", error);
        ...
        zactor_destroy (&host);
    =========================================================================
*/

#ifndef BR_HOST_H_INCLUDED
#define BR_HOST_H_INCLUDED

#include <czmq.h>
#include "parley_plugin.h"
#include "pl_curve.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *plugin_path;        //  path of the .so
    const char *endpoint;           //  broker endpoint to connect to
    const char *const *options;     //  "NAME.KEY=VALUE" strings; the plugin sees
    size_t option_count;            //  KEY for those whose NAME is its own name
    uint32_t heartbeat_ms;          //  0 = BR_BROKER_HEARTBEAT_DEFAULT
    bool verbose;                   //  log the plugin's PARLEY_LOG_DEBUG lines too
    uint32_t call_timeout_ms;       //  0 = 2 x BR_BROKER_REQUEST_TIMEOUT_DEFAULT:
                                    //  a host->call unanswered this long gets
                                    //  unavailable even if the broker is gone
    bool *options_taken;            //  optional, option_count flags: the host sets
                                    //  those whose NAME is its plugin's (for
                                    //  br_host_check_options_taken)
    const pl_curve_t *curve;        //  this peer's keys (pl_curve_peer_new), borrowed
                                    //  until br_host_start returns; used for a tcp://
                                    //  endpoint, NULL = no keys
} br_host_config_t;

//  Starts one plugin instance as an actor. Returns the actor once the plugin
//  is loaded and initialized (before the broker has welcomed it), or NULL
//  with a sentence in error (ABI refused, missing symbol, init failed, or an
//  option for this plugin whose KEY the plugin did not ask for during its
//  init: the sentence names the key and lists the keys it asked for).
//  Caller owns return value; destroy with zactor_destroy, which calls the
//  plugin's destroy and unloads it.
zactor_t *
    br_host_start (const br_host_config_t *config, char *error, size_t error_size);

//  After a program has started all its plugins with options_taken: an option
//  no plugin took names a plugin that is not loaded. Returns 0, or -1 with a
//  sentence in error naming the first such option.
int
    br_host_check_options_taken (const char *const *options, const bool *taken,
                                 size_t count, char *error, size_t error_size);

//  The ABI versions this host supports, newest first, for messages and tests
extern const parley_abi_t br_host_supported_abi [];
extern const size_t br_host_supported_abi_count;

#ifdef __cplusplus
}
#endif

#endif
