/*  =========================================================================
    parley-gw - the gateway as a program of its own

    Serves the web UI and the client protocol on one port and connects to a
    broker (parley-broker, or parley with --bind). Run several behind a TCP
    load balancer; each registers with the broker under a random name.
    =========================================================================
*/

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw_server.h"
#include "pl_brokers.h"
#include "pl_config.h"
#include "pl_log.h"
#include "pl_paths.h"

//  The configuration file and the argument list built from it and the
//  command line, which the options point into: alive until exit
static pl_config_t *s_config = NULL;
//  The broker endpoints, every --broker joined: alive until exit too
static char *s_broker = NULL;

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: parley-gw [OPTIONS]\n"
        "Serves the Parley web UI and the client protocol (WebSocket on /ws) on one\n"
        "port, and passes requests to a Parley broker.\n"
        "\n"
        "  --listen HOST:PORT      where to listen (default 127.0.0.1:8080; port 0 = any)\n"
        "  --broker ENDPOINT       the broker's endpoint (default tcp://127.0.0.1:7700);\n"
        "                          for a standby pair both, A,B or the option twice:\n"
        "                          the gateway moves to the live one\n"
        "  --curve-cert FILE       this gateway's certificate (parley-keygen FILE: FILE\n"
        "                          and FILE_secret), allowed by the broker\n"
        "  --curve-broker FILE     the broker's public certificate (both needed for a\n"
        "                          broker on tcp:// that checks keys)\n"
        "  --web DIR               the web UI to serve (default: web/ of the source tree\n"
        "                          beside the build, else ./web)\n"
        "  --max-frame BYTES       largest client frame (default %d)\n"
        "  --send-buffer BYTES     the kernel's send buffer per client connection\n"
        "                          (default: the kernel's own, which grows as needed)\n"
        "  --heartbeat MS          heartbeat toward the broker (default %d)\n"
        "  --request-timeout MS    a request unanswered this long gets 'unavailable'\n"
        "                          (default %d; the broker's own timeout comes first)\n"
        GW_LIMIT_OPTIONS_HELP
        GW_OPS_OPTIONS_HELP
        PL_CONFIG_OPTIONS_HELP
        "  --help                  this text\n",
        GW_MAX_FRAME_DEFAULT, GW_HEARTBEAT_DEFAULT, GW_REQUEST_TIMEOUT_DEFAULT);
}

//  Parses a number from min to max; -1 when it is not one
static long long
s_number (const char *text, long long min, long long max)
{
    char *end = NULL;
    errno = 0;
    long long value = strtoll (text, &end, 10);
    if (errno || end == text || *end || value < min || value > max)
        return -1;
    return value;
}

static bool
s_is_folder (const char *path)
{
    struct stat status;
    return stat (path, &status) == 0 && S_ISDIR (status.st_mode);
}

int
main (int argc, char *argv [])
{
    enum { OPT_LISTEN = 1, OPT_BROKER, OPT_WEB, OPT_MAX_FRAME, OPT_SEND_BUFFER, OPT_HEARTBEAT,
           OPT_REQUEST_TIMEOUT, OPT_CURVE_CERT, OPT_CURVE_BROKER, OPT_LIMIT, OPT_OPS, OPT_HELP };
    static const struct option options [] = {
        { "listen",          required_argument, NULL, OPT_LISTEN },
        { "broker",          required_argument, NULL, OPT_BROKER },
        { "web",             required_argument, NULL, OPT_WEB },
        { "max-frame",       required_argument, NULL, OPT_MAX_FRAME },
        { "send-buffer",     required_argument, NULL, OPT_SEND_BUFFER },
        { "heartbeat",       required_argument, NULL, OPT_HEARTBEAT },
        { "request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT },
        { "curve-cert",      required_argument, NULL, OPT_CURVE_CERT },
        { "curve-broker",    required_argument, NULL, OPT_CURVE_BROKER },
        { "max-connections", required_argument, NULL, OPT_LIMIT },
        { "max-per-address", required_argument, NULL, OPT_LIMIT },
        { "max-unauthenticated-per-address", required_argument, NULL, OPT_LIMIT },
        { "auth-timeout",    required_argument, NULL, OPT_LIMIT },
        { "tls-cert",        required_argument, NULL, OPT_OPS },
        { "tls-key",         required_argument, NULL, OPT_OPS },
        { "stop-timeout",    required_argument, NULL, OPT_OPS },
        { "metrics",         required_argument, NULL, OPT_OPS },
        { "file-chunk",      required_argument, NULL, OPT_OPS },
        { "help",            no_argument,       NULL, OPT_HELP },
        { NULL, 0, NULL, 0 }
    };
    char listen_host [256] = "127.0.0.1";
    int listen_port = 8080;
    const char *brokers [PL_BROKERS_MAX];         //  --broker, each maybe a list
    size_t broker_count = 0;
    const char *web = NULL;
    const char *curve_paths [2] = { NULL, NULL };   //  --curve-cert, --curve-broker
    long long max_frame = 0, send_buffer = 0, heartbeat = 0, request_timeout = 0;
    gw_config_t limits = { 0 };     //  the limit options, set by gw_config_set_limit
    gw_config_t ops = { 0 };        //  TLS and stopping, set by gw_config_set_ops
    char error [160];
    int index = 0;

    s_config = pl_config_new ("parley-gw", options);
    if (pl_config_load (s_config, argc, argv))
        return 2;
    argc = pl_config_argc (s_config);
    argv = pl_config_argv (s_config);
    int option;
    while ((option = getopt_long (argc, argv, "", options, &index)) != -1) {
        switch (option) {
            case OPT_LISTEN: {
                const char *colon = strrchr (optarg, ':');
                long long port = colon? s_number (colon + 1, 0, 65535): -1;
                size_t host_size = colon? (size_t) (colon - optarg): 0;
                if (port < 0 || host_size == 0 || host_size >= sizeof (listen_host)) {
                    fprintf (stderr, "parley-gw: --listen wants HOST:PORT, "
                                     "as 127.0.0.1:8080, not '%s'\n", optarg);
                    return 2;
                }
                memcpy (listen_host, optarg, host_size);
                listen_host [host_size] = 0;
                listen_port = (int) port;
                break;
            }
            case OPT_BROKER:
                if (broker_count == PL_BROKERS_MAX) {
                    fprintf (stderr, "parley-gw: more than %d --broker options\n",
                             PL_BROKERS_MAX);
                    return 2;
                }
                brokers [broker_count++] = optarg;
                break;
            case OPT_WEB:
                web = optarg;
                break;
            case OPT_MAX_FRAME:
                if ((max_frame = s_number (optarg, 16, 1024 * 1024)) < 0) {
                    fprintf (stderr, "parley-gw: --max-frame wants 16 to 1048576 bytes, "
                                     "not '%s'\n", optarg);
                    return 2;
                }
                break;
            case OPT_SEND_BUFFER:
                if ((send_buffer = s_number (optarg, 4096, 64 * 1024 * 1024)) < 0) {
                    fprintf (stderr, "parley-gw: --send-buffer wants 4096 to 67108864 bytes, "
                                     "not '%s'\n", optarg);
                    return 2;
                }
                break;
            case OPT_HEARTBEAT:
                if ((heartbeat = s_number (optarg, 10, 60000)) < 0) {
                    fprintf (stderr, "parley-gw: --heartbeat wants 10 to 60000 ms, "
                                     "not '%s'\n", optarg);
                    return 2;
                }
                break;
            case OPT_REQUEST_TIMEOUT:
                if ((request_timeout = s_number (optarg, 10, 600000)) < 0) {
                    fprintf (stderr, "parley-gw: --request-timeout wants 10 to 600000 ms, "
                                     "not '%s'\n", optarg);
                    return 2;
                }
                break;
            case OPT_CURVE_CERT:
            case OPT_CURVE_BROKER:
                curve_paths [option == OPT_CURVE_BROKER] = optarg;
                break;
            case OPT_LIMIT:
                if (gw_config_set_limit (&limits, options [index].name, optarg,
                                         error, sizeof error)) {
                    fprintf (stderr, "parley-gw: %s\n", error);
                    return 2;
                }
                break;
            case OPT_OPS:
                if (gw_config_set_ops (&ops, options [index].name, optarg,
                                       error, sizeof error)) {
                    fprintf (stderr, "parley-gw: %s\n", error);
                    return 2;
                }
                break;
            case OPT_HELP:
                s_usage (stdout);
                return 0;
            default:
                s_usage (stderr);
                return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "parley-gw: unexpected argument '%s'\n", argv [optind]);
        s_usage (stderr);
        return 2;
    }
    char ops_error [512];
    if (gw_config_check (&ops, ops_error, sizeof ops_error)) {
        fprintf (stderr, "parley-gw: %s\n", ops_error);
        return 2;
    }
    s_broker = broker_count? pl_brokers_join (brokers, broker_count)
                           : strdup ("tcp://127.0.0.1:7700");
    pl_brokers_t *checked = pl_brokers_new (s_broker, ops_error, sizeof ops_error);
    if (!checked) {
        fprintf (stderr, "parley-gw: --broker: %s\n", ops_error);
        return 2;
    }
    pl_brokers_destroy (&checked);
    if (pl_config_printing (s_config)) {
        pl_config_print (s_config, stdout);
        return 0;
    }

    pl_curve_t *curve = NULL;
    if (curve_paths [0] || curve_paths [1]) {
        char error [512] = "--curve-cert and --curve-broker go together";
        if (curve_paths [0] && curve_paths [1])
            curve = pl_curve_peer_new (curve_paths [0], curve_paths [1], error, sizeof error);
        if (!curve) {
            fprintf (stderr, "parley-gw: %s\n", error);
            return 2;
        }
    }
    char *web_root = web? strdup (web): pl_paths_web ();
    if (!s_is_folder (web_root))
        zsys_warning ("parley-gw: the web UI folder '%s' does not exist; "
                      "only /healthz and /ws will work", web_root);
    gw_config_t config = {
        .listen_host = listen_host,
        .port = listen_port,
        .broker_endpoint = s_broker,
        .web_root = web_root,
        .max_frame = (size_t) max_frame,
        .send_buffer = (size_t) send_buffer,
        .heartbeat_ms = (uint32_t) heartbeat,
        .request_timeout_ms = (uint32_t) request_timeout,
        .curve = curve,
        .max_connections = limits.max_connections,
        .max_per_address = limits.max_per_address,
        .max_unauthenticated = limits.max_unauthenticated,
        .auth_timeout_ms = limits.auth_timeout_ms,
        .tls_cert = ops.tls_cert,
        .tls_key = ops.tls_key,
        .stop_timeout_ms = ops.stop_timeout_ms,
        .metrics = ops.metrics,
        .file_chunk = ops.file_chunk,
    };
    gw_server_t *server = gw_server_new (&config);
    pl_curve_destroy (&curve);
    if (!server) {
        free (web_root);
        return 1;
    }
    pl_log_announce ("parley-gw: listening on %s://%s:%d", gw_server_tls (server)? "https": "http",
                     listen_host, gw_server_port (server));
    gw_server_run (server);
    gw_server_destroy (&server);
    free (web_root);
    zstr_free (&s_broker);
    pl_config_destroy (&s_config);
    return 0;
}
