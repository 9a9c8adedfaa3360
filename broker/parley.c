/*  =========================================================================
    parley - the whole system in one process

    The embedded default that `make run` starts: the broker as an actor, the
    default plugins in-process (one actor each, over inproc), and the gateway
    on the main thread. Every part is the same code that parley-broker,
    parley-plugin and parley-gw run as separate processes.
    =========================================================================
*/

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "br_broker.h"
#include "br_host.h"
#include "gw_server.h"
#include "pl_config.h"
#include "pl_log.h"
#include "pl_paths.h"

//  What `parley` loads when no --no-default-plugins is given, by name, after
//  the store that --store chooses
static const char *default_plugins [] = { "auth", "presence", "rooms", "pm", "search", "files", NULL };

#define MAX_LIST 64

//  The configuration file and the argument list built from it and the
//  command line, which the options point into: alive until exit
static pl_config_t *s_config = NULL;

typedef struct {
    char listen_host [256];                 //  gateway's address
    int listen_port;                        //  gateway's port
    const char *data_dir;                   //  where the store keeps its files
    const char *web_root;                   //  NULL: beside the build
    const char *store;                      //  "sqlite" or a mongodb:// URI
    const char *plugins [MAX_LIST];         //  names or paths, in load order
    size_t plugin_count;
    const char *options [MAX_LIST];         //  NAME.KEY=VALUE for plugins
    size_t option_count;
    const char *endpoints [MAX_LIST];       //  extra broker endpoints
    size_t endpoint_count;
    const char *curve_cert;                 //  the broker's certificate, for tcp://
    const char *curve_allow;                //  allowed peer certificates
    const char *curve_admin;                //  operators' certificates (parleyctl)
    bool insecure_peers;                    //  tcp:// without keys, knowingly
    bool default_plugins;                   //  load default_plugins first
    uint32_t heartbeat_ms;
    uint32_t request_timeout_ms;
    size_t max_frame;
    size_t send_buffer;
    gw_config_t gateway_limits;             //  the gateway's limit options only
    gw_config_t gateway_ops;                //  its TLS and stop options only
    bool verbose;
} parley_options_t;

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: parley [OPTIONS]\n"
        "Runs all of Parley in one process: the broker, the default plugins and the\n"
        "gateway that serves the web UI and the client protocol on one port.\n"
        "\n"
        "  --listen HOST:PORT      where the gateway listens (default 127.0.0.1:8080)\n"
        "  --data DIR              where data is kept (default ./data; created if missing)\n"
        "  --web DIR               the web UI to serve (default: web/ of the source tree)\n"
        "  --store sqlite|URI      where accounts and messages live: sqlite (default: the\n"
        "                          file parley.db in --data) or a mongodb:// URI\n"
        "  --plugin NAME|PATH      load another plugin in-process (repeatable); a bare\n"
        "                          name is looked up in the plugins folder of the build\n"
        "  --no-default-plugins    load only the plugins given with --plugin\n"
        "  --option NAME.KEY=VALUE an option for the plugin NAME (repeatable)\n"
        "  --bind ENDPOINT         also accept peers (parley-plugin, parley-gw) on this\n"
        "                          tcp:// or ipc:// endpoint (repeatable); tcp:// needs\n"
        "                          --curve-cert and --curve-allow, or --insecure-peers\n"
        "  --curve-cert FILE       the broker's certificate (parley-keygen FILE)\n"
        "  --curve-allow DIR       the public certificates of the peers allowed in\n"
        "  --curve-admin DIR       the public certificates of the operators: over tcp://\n"
        "                          only these keys may use parleyctl (each also in\n"
        "                          --curve-allow); ipc:// is guarded by its mode 0600\n"
        "  --insecure-peers        let tcp:// take any peer without a key (a warning)\n"
        "  --heartbeat MS          heartbeat between broker and peers (default %d)\n"
        "  --request-timeout MS    a request unanswered this long gets 'unavailable'\n"
        "                          (default %d)\n"
        "  --max-frame BYTES       largest client frame (default %d)\n"
        "  --send-buffer BYTES     the kernel's send buffer per client connection\n"
        "                          (default: the kernel's own, which grows as needed)\n"
        GW_LIMIT_OPTIONS_HELP
        GW_OPS_OPTIONS_HELP
        "  --verbose               also log the plugins' debug lines (each login, join...)\n"
        PL_CONFIG_OPTIONS_HELP
        "  --help                  this text\n"
        "\n"
        "Default plugins: the store (store-sqlite or store-mongo),",
        BR_BROKER_HEARTBEAT_DEFAULT, BR_BROKER_REQUEST_TIMEOUT_DEFAULT, GW_MAX_FRAME_DEFAULT);
    for (const char **name = default_plugins; *name; name++)
        fprintf (out, " %s", *name);
    fprintf (out, "\n");
}

//  Parses a positive number no larger than max; -1 when it is not one
static long long
s_number (const char *text, long long max)
{
    char *end = NULL;
    errno = 0;
    long long value = strtoll (text, &end, 10);
    if (errno || end == text || *end || value <= 0 || value > max)
        return -1;
    return value;
}

static int
s_parse_listen (const char *text, parley_options_t *options)
{
    const char *colon = strrchr (text, ':');
    if (!colon || colon == text || (size_t) (colon - text) >= sizeof options->listen_host)
        return -1;
    long long port = s_number (colon + 1, 65535);
    if (port < 0)
        return -1;
    memcpy (options->listen_host, text, colon - text);
    options->listen_host [colon - text] = 0;
    options->listen_port = (int) port;
    return 0;
}

static int
s_append (const char **list, size_t *count, const char *value, const char *what)
{
    if (*count >= MAX_LIST) {
        fprintf (stderr, "parley: too many %s (at most %d)\n", what, MAX_LIST);
        return -1;
    }
    list [(*count)++] = value;
    return 0;
}

//  Returns 0 to run, 1 to exit with success (--help), -1 on a usage error
static int
s_parse (int argc, char **argv, parley_options_t *options)
{
    enum { OPT_LISTEN = 1, OPT_DATA, OPT_WEB, OPT_STORE, OPT_PLUGIN, OPT_NO_DEFAULTS, OPT_OPTION,
           OPT_BIND, OPT_HEARTBEAT, OPT_TIMEOUT, OPT_MAX_FRAME, OPT_SEND_BUFFER, OPT_LIMIT,
           OPT_VERBOSE, OPT_CURVE_CERT, OPT_CURVE_ALLOW, OPT_CURVE_ADMIN, OPT_INSECURE_PEERS, OPT_GW_OPS,
           OPT_HELP };
    static const struct option long_options [] = {
        { "listen", required_argument, NULL, OPT_LISTEN },
        { "data", required_argument, NULL, OPT_DATA },
        { "web", required_argument, NULL, OPT_WEB },
        { "store", required_argument, NULL, OPT_STORE },
        { "plugin", required_argument, NULL, OPT_PLUGIN },
        { "no-default-plugins", no_argument, NULL, OPT_NO_DEFAULTS },
        { "option", required_argument, NULL, OPT_OPTION },
        { "bind", required_argument, NULL, OPT_BIND },
        { "heartbeat", required_argument, NULL, OPT_HEARTBEAT },
        { "request-timeout", required_argument, NULL, OPT_TIMEOUT },
        { "max-frame", required_argument, NULL, OPT_MAX_FRAME },
        { "send-buffer", required_argument, NULL, OPT_SEND_BUFFER },
        { "max-connections", required_argument, NULL, OPT_LIMIT },
        { "max-per-address", required_argument, NULL, OPT_LIMIT },
        { "max-unauthenticated-per-address", required_argument, NULL, OPT_LIMIT },
        { "auth-timeout", required_argument, NULL, OPT_LIMIT },
        { "tls-cert", required_argument, NULL, OPT_GW_OPS },
        { "tls-key", required_argument, NULL, OPT_GW_OPS },
        { "stop-timeout", required_argument, NULL, OPT_GW_OPS },
        { "metrics", required_argument, NULL, OPT_GW_OPS },
        { "file-chunk", required_argument, NULL, OPT_GW_OPS },
        { "verbose", no_argument, NULL, OPT_VERBOSE },
        { "curve-cert", required_argument, NULL, OPT_CURVE_CERT },
        { "curve-allow", required_argument, NULL, OPT_CURVE_ALLOW },
        { "curve-admin", required_argument, NULL, OPT_CURVE_ADMIN },
        { "insecure-peers", no_argument, NULL, OPT_INSECURE_PEERS },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 }
    };
    s_config = pl_config_new ("parley", long_options);
    if (pl_config_load (s_config, argc, argv))
        return -1;
    argc = pl_config_argc (s_config);
    argv = pl_config_argv (s_config);
    int option;
    int index = 0;
    long long number;
    char error [160];
    while ((option = getopt_long (argc, argv, "", long_options, &index)) != -1) {
        switch (option) {
            case OPT_LISTEN:
                if (s_parse_listen (optarg, options)) {
                    fprintf (stderr, "parley: --listen wants HOST:PORT, not '%s'\n", optarg);
                    return -1;
                }
                break;
            case OPT_DATA:
                options->data_dir = optarg;
                break;
            case OPT_WEB:
                options->web_root = optarg;
                break;
            case OPT_STORE:
                if (!streq (optarg, "sqlite") && strncmp (optarg, "mongodb://", 10)
                &&  strncmp (optarg, "mongodb+srv://", 14)) {
                    fprintf (stderr, "parley: --store wants sqlite or a mongodb:// URI, "
                             "not '%s'\n", optarg);
                    return -1;
                }
                options->store = optarg;
                break;
            case OPT_PLUGIN:
                if (s_append (options->plugins, &options->plugin_count, optarg, "plugins"))
                    return -1;
                break;
            case OPT_NO_DEFAULTS:
                options->default_plugins = false;
                break;
            case OPT_OPTION:
                if (!strchr (optarg, '.') || !strchr (optarg, '=')) {
                    fprintf (stderr, "parley: --option wants NAME.KEY=VALUE, not '%s'\n", optarg);
                    return -1;
                }
                if (s_append (options->options, &options->option_count, optarg, "options"))
                    return -1;
                break;
            case OPT_BIND:
                if (s_append (options->endpoints, &options->endpoint_count, optarg, "endpoints"))
                    return -1;
                break;
            case OPT_HEARTBEAT:
            case OPT_TIMEOUT:
                number = s_number (optarg, 3600 * 1000);
                if (number < 0) {
                    fprintf (stderr, "parley: %s wants milliseconds, not '%s'\n",
                             option == OPT_HEARTBEAT? "--heartbeat": "--request-timeout", optarg);
                    return -1;
                }
                if (option == OPT_HEARTBEAT)
                    options->heartbeat_ms = (uint32_t) number;
                else
                    options->request_timeout_ms = (uint32_t) number;
                break;
            case OPT_MAX_FRAME:
                number = s_number (optarg, 16 * 1024 * 1024);
                if (number < 0) {
                    fprintf (stderr, "parley: --max-frame wants bytes (at most 16 MiB), not '%s'\n",
                             optarg);
                    return -1;
                }
                options->max_frame = (size_t) number;
                break;
            case OPT_SEND_BUFFER:
                number = s_number (optarg, 64 * 1024 * 1024);
                if (number < 4096) {
                    fprintf (stderr, "parley: --send-buffer wants 4096 to 67108864 bytes, not '%s'\n",
                             optarg);
                    return -1;
                }
                options->send_buffer = (size_t) number;
                break;
            case OPT_LIMIT:
                if (gw_config_set_limit (&options->gateway_limits, long_options [index].name,
                                         optarg, error, sizeof error)) {
                    fprintf (stderr, "parley: %s\n", error);
                    return -1;
                }
                break;
            case OPT_GW_OPS:
                if (gw_config_set_ops (&options->gateway_ops, long_options [index].name,
                                       optarg, error, sizeof error)) {
                    fprintf (stderr, "parley: %s\n", error);
                    return -1;
                }
                break;
            case OPT_VERBOSE:
                options->verbose = true;
                break;
            case OPT_CURVE_CERT:
                options->curve_cert = optarg;
                break;
            case OPT_CURVE_ALLOW:
                options->curve_allow = optarg;
                break;
            case OPT_CURVE_ADMIN:
                options->curve_admin = optarg;
                break;
            case OPT_INSECURE_PEERS:
                options->insecure_peers = true;
                break;
            case OPT_HELP:
                s_usage (stdout);
                return 1;
            default:
                s_usage (stderr);
                return -1;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "parley: unexpected argument '%s'\n", argv [optind]);
        return -1;
    }
    if (!options->curve_cert != !options->curve_allow) {
        fprintf (stderr, "parley: --curve-cert and --curve-allow go together\n");
        return -1;
    }
    char tls_error [512];
    if (gw_config_check (&options->gateway_ops, tls_error, sizeof tls_error)) {
        fprintf (stderr, "parley: %s\n", tls_error);
        return -1;
    }
    if (pl_config_printing (s_config)) {
        pl_config_print (s_config, stdout);
        return 1;
    }
    return 0;
}

static int
s_make_data_dir (const char *path)
{
    if (mkdir (path, 0750) == 0 || errno == EEXIST) {
        struct stat info;
        if (stat (path, &info) == 0 && S_ISDIR (info.st_mode))
            return 0;
        fprintf (stderr, "parley: --data %s is not a folder\n", path);
        return -1;
    }
    fprintf (stderr, "parley: cannot create the data folder %s: %s\n", path, strerror (errno));
    return -1;
}

int
main (int argc, char **argv)
{
    parley_options_t options = {
        .listen_host = "127.0.0.1",
        .listen_port = 8080,
        .data_dir = "./data",
        .store = "sqlite",
        .default_plugins = true
    };
    int parsed = s_parse (argc, argv, &options);
    if (parsed)
        return parsed > 0? EXIT_SUCCESS: EXIT_FAILURE;
    if (s_make_data_dir (options.data_dir))
        return EXIT_FAILURE;

    //  The gateway's loop owns SIGINT/SIGTERM, not czmq
    zsys_handler_set (NULL);

    int rc = EXIT_FAILURE;
    zactor_t *hosts [MAX_LIST * 2] = { NULL };
    bool options_taken [MAX_LIST] = { false };
    size_t host_count = 0;
    char *web_root = NULL;
    char *store_option = NULL;
    gw_server_t *gateway = NULL;
    zactor_t *broker = NULL;
    pl_curve_t *curve = NULL;
    if (options.curve_cert) {
        char error [512];
        curve = pl_curve_broker_new (options.curve_cert, options.curve_allow, error, sizeof error);
        if (!curve) {
            fprintf (stderr, "parley: %s\n", error);
            goto cleanup;
        }
    }
    br_broker_config_t broker_config = {
        .endpoints = options.endpoints,
        .endpoint_count = options.endpoint_count,
        .heartbeat_ms = options.heartbeat_ms,
        .request_timeout_ms = options.request_timeout_ms,
        .curve = curve,
        .insecure_peers = options.insecure_peers,
        .curve_admin = options.curve_admin
    };
    broker = br_broker_start (&broker_config);
    if (!broker) {
        fprintf (stderr, "parley: the broker could not start (see above)\n");
        goto cleanup;
    }

    //  The store first (the others call it), then the default plugins, then
    //  the ones asked for. The store's location is an option of its own,
    //  unless the command line already gave one.
    const char *to_load [MAX_LIST * 2];
    size_t load_count = 0;
    if (options.default_plugins) {
        bool sqlite = streq (options.store, "sqlite");
        to_load [load_count++] = sqlite? "store-sqlite": "store-mongo";
        const char *key = sqlite? "store-sqlite.path=": "store-mongo.uri=";
        bool given = false;
        for (size_t index = 0; index < options.option_count; index++)
            if (strncmp (options.options [index], key, strlen (key)) == 0)
                given = true;
        if (!given) {
            store_option = sqlite? zsys_sprintf ("%s%s/parley.db", key, options.data_dir)
                                 : zsys_sprintf ("%s%s", key, options.store);
            if (!store_option
            ||  s_append (options.options, &options.option_count, store_option, "options"))
                goto cleanup;
        }
        for (const char **name = default_plugins; *name; name++)
            to_load [load_count++] = *name;
    }
    for (size_t index = 0; index < options.plugin_count; index++)
        to_load [load_count++] = options.plugins [index];

    for (size_t index = 0; index < load_count; index++) {
        char *path = pl_paths_plugin (to_load [index]);
        br_host_config_t host_config = {
            .plugin_path = path,
            .endpoint = BR_BROKER_INPROC,
            .options = options.options,
            .verbose = options.verbose,
            .option_count = options.option_count,
            .options_taken = options_taken,
            .heartbeat_ms = options.heartbeat_ms
        };
        char error [512];
        hosts [host_count] = br_host_start (&host_config, error, sizeof error);
        free (path);
        if (!hosts [host_count]) {
            pl_config_error (s_config, error);
            goto cleanup;
        }
        host_count++;
    }

    char error [512];
    if (br_host_check_options_taken (options.options, options_taken, options.option_count,
                                     error, sizeof error)) {
        pl_config_error (s_config, error);
        goto cleanup;
    }
    web_root = options.web_root? strdup (options.web_root): pl_paths_web ();
    gw_config_t gateway_config = {
        .listen_host = options.listen_host,
        .port = options.listen_port,
        .broker_endpoint = BR_BROKER_INPROC,
        .web_root = web_root,
        .max_frame = options.max_frame,
        .send_buffer = options.send_buffer,
        .heartbeat_ms = options.heartbeat_ms,
        .request_timeout_ms = options.request_timeout_ms? options.request_timeout_ms * 2: 0,
        .max_connections = options.gateway_limits.max_connections,
        .max_per_address = options.gateway_limits.max_per_address,
        .max_unauthenticated = options.gateway_limits.max_unauthenticated,
        .auth_timeout_ms = options.gateway_limits.auth_timeout_ms,
        .tls_cert = options.gateway_ops.tls_cert,
        .tls_key = options.gateway_ops.tls_key,
        .stop_timeout_ms = options.gateway_ops.stop_timeout_ms,
        .metrics = options.gateway_ops.metrics,
        .file_chunk = options.gateway_ops.file_chunk,
    };
    gateway = gw_server_new (&gateway_config);
    if (!gateway) {
        fprintf (stderr, "parley: the gateway could not listen on %s:%d (see above)\n",
                 options.listen_host, options.listen_port);
        goto cleanup;
    }
    pl_log_announce ("parley: listening on %s://%s:%d (data in %s, web from %s)",
                     gw_server_tls (gateway)? "https": "http",
                     options.listen_host, gw_server_port (gateway), options.data_dir, web_root);
    gw_server_run (gateway);
    rc = EXIT_SUCCESS;

cleanup:
    //  Sessions first, then the plugins, then the post office they talk through
    gw_server_destroy (&gateway);
    while (host_count)
        zactor_destroy (&hosts [--host_count]);
    zactor_destroy (&broker);
    pl_curve_destroy (&curve);
    free (web_root);
    zstr_free (&store_option);
    pl_config_destroy (&s_config);
    return rc;
}
