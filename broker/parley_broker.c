/*  =========================================================================
    parley-broker - the Parley broker as a program

    Binds the broker on its endpoints, starts the in-process plugins given
    with --plugin (each connected over BR_BROKER_INPROC), and runs until
    SIGINT or SIGTERM. Then it stops the plugins first, the broker last.

    The signals are blocked in every thread before the first one starts and
    taken with sigwait by the main thread, so neither czmq's handler nor a
    plugin's thread ever sees them.
    =========================================================================
*/

#include "br_broker.h"
#include "br_host.h"
#include "pl_config.h"
#include "pl_log.h"

#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 256            //  of each repeatable option

//  The configuration file and the argument list built from it and the
//  command line, which the options point into: alive until exit
static pl_config_t *s_config = NULL;

static void
s_usage (FILE *stream)
{
    fprintf (stream,
        "Usage: parley-broker [OPTION]...\n"
        "Runs the Parley broker and, in its process, the plugins given.\n"
        "\n"
        "  --bind ENDPOINT           listen on ENDPOINT (tcp://HOST:PORT or ipc://PATH);\n"
        "                            repeatable; default tcp://127.0.0.1:7700\n"
        "  --plugin PATH             run the plugin PATH (a .so) in this process;\n"
        "                            repeatable\n"
        "  --option NAME.KEY=VALUE   give plugin NAME the option KEY=VALUE; repeatable\n"
        "  --curve-cert FILE         the broker's certificate (parley-keygen FILE: FILE\n"
        "                            and FILE_secret); with --curve-allow, every tcp://\n"
        "                            endpoint takes only peers with an allowed key\n"
        "  --curve-allow DIR         the folder of the public certificates of the peers\n"
        "                            allowed in (parley-keygen --allow DIR)\n"
        "  --curve-admin DIR         the public certificates of the operators: over\n"
        "                            tcp:// only these keys may use parleyctl (each also\n"
        "                            in --curve-allow); ipc:// is guarded by its mode 0600\n"
        "  --insecure-peers          bind tcp:// without keys: any peer that reaches it\n"
        "                            can act as any user (logs a warning); without it, a\n"
        "                            tcp:// endpoint without keys is refused\n"
        "  --heartbeat MS            heartbeat interval; a peer silent 3 x MS is dead\n"
        "                            (default %d)\n"
        "  --request-timeout MS      a request unanswered this long is answered\n"
        "                            unavailable (default %d)\n"
        "  --bstar-primary           one of a standby pair (Binary Star), the primary;\n"
        "  --bstar-backup            ... or the backup. Only the active one serves\n"
        "                            peers; the passive one takes over when the active\n"
        "                            is silent and a peer says hello to it. Both need:\n"
        "  --bstar-bind ENDPOINT     where this broker publishes its state to the other\n"
        "                            (tcp://HOST:PORT, CURVE with the broker's keys)\n"
        "  --bstar-peer ENDPOINT     the other broker's --bstar-bind\n"
        PL_CONFIG_OPTIONS_HELP
        "  --help                    show this help and exit\n",
        BR_BROKER_HEARTBEAT_DEFAULT, BR_BROKER_REQUEST_TIMEOUT_DEFAULT);
}

//  Parses a positive number of milliseconds; returns 0 on error
static uint32_t
s_parse_ms (const char *text)
{
    char *end = NULL;
    unsigned long value = strtoul (text, &end, 10);
    if (!end || *end || value == 0 || value > INT_MAX / 4 || text [0] == '-')
        return 0;
    return (uint32_t) value;
}

//  The state link carries the brokers' own key: each must allow it
static int
s_bstar_key_allowed (const char *cert_path, const char *allow_dir)
{
    zcert_t *cert = zcert_load (cert_path);
    zcertstore_t *store = cert ? zcertstore_new (allow_dir) : NULL;
    bool allowed = store && zcertstore_lookup (store, zcert_public_txt (cert));
    zcertstore_destroy (&store);
    zcert_destroy (&cert);
    if (!allowed && cert_path)
        fprintf (stderr, "parley-broker: the standby pair's link is CURVE with the broker's"
                 " own key pair, shared by both brokers: allow it in the folder too"
                 " (parley-keygen --allow %s --add %s)\n", allow_dir, cert_path);
    return allowed ? 0 : -1;
}

//  The standby pair's options: all or none, and no in-process plugins (each
//  broker would run its own copy). Returns -1 after saying why.
static int
s_bstar_check (const br_bstar_config_t *bstar, int roles, size_t plugin_count,
               const char *curve_cert, const char *curve_allow, bool insecure)
{
    if (!roles && !bstar->bind && !bstar->peer)
        return 0;
    const char *problem = roles == 3 ? "--bstar-primary and --bstar-backup exclude each other"
                        : !roles ? "--bstar-bind and --bstar-peer need --bstar-primary or"
                                   " --bstar-backup"
                        : !bstar->bind || !bstar->peer ? "a standby broker needs --bstar-bind"
                                   " and --bstar-peer (the other broker's --bstar-bind)"
                        : plugin_count ? "a standby broker runs no --plugin: run the plugins"
                                   " in parley-plugin processes that know both brokers"
                        : NULL;
    if (!problem && !curve_cert && !insecure
    &&  (pl_curve_endpoint_needs_keys (bstar->bind) || pl_curve_endpoint_needs_keys (bstar->peer)))
        problem = "a tcp:// standby link needs the broker's keys (--curve-cert,"
                  " --curve-allow), or --insecure-peers";
    if (problem) {
        fprintf (stderr, "parley-broker: %s\n", problem);
        return -1;
    }
    if (curve_cert && pl_curve_endpoint_needs_keys (bstar->bind))
        return s_bstar_key_allowed (curve_cert, curve_allow);
    return 0;
}

int
main (int argc, char *argv [])
{
    const char *endpoints [MAX_ARGS];
    size_t endpoint_count = 0;
    const char *plugins [MAX_ARGS];
    size_t plugin_count = 0;
    const char *options [MAX_ARGS];
    size_t option_count = 0;
    uint32_t heartbeat_ms = 0;
    uint32_t request_timeout_ms = 0;
    const char *curve_cert = NULL;
    const char *curve_allow = NULL;
    const char *curve_admin = NULL;
    bool insecure_peers = false;
    int bstar_roles = 0;                //  --bstar-primary and --bstar-backup seen
    br_bstar_config_t bstar = { 0 };

    static const struct option long_options [] = {
        { "bind",            required_argument, NULL, 'b' },
        { "plugin",          required_argument, NULL, 'p' },
        { "option",          required_argument, NULL, 'o' },
        { "heartbeat",       required_argument, NULL, 'H' },
        { "request-timeout", required_argument, NULL, 'T' },
        { "curve-cert",      required_argument, NULL, 'C' },
        { "curve-allow",     required_argument, NULL, 'A' },
        { "curve-admin",     required_argument, NULL, 'M' },
        { "insecure-peers",  no_argument,       NULL, 'I' },
        { "bstar-primary",   no_argument,       NULL, 'P' },
        { "bstar-backup",    no_argument,       NULL, 'B' },
        { "bstar-bind",      required_argument, NULL, 'S' },
        { "bstar-peer",      required_argument, NULL, 'R' },
        { "help",            no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    s_config = pl_config_new ("parley-broker", long_options);
    if (pl_config_load (s_config, argc, argv))
        return 2;
    argc = pl_config_argc (s_config);
    argv = pl_config_argv (s_config);
    int option;
    while ((option = getopt_long (argc, argv, "", long_options, NULL)) != -1) {
        switch (option) {
            case 'b':
            case 'p':
            case 'o': {
                const char **list = option == 'b' ? endpoints
                                  : option == 'p' ? plugins : options;
                size_t *count = option == 'b' ? &endpoint_count
                              : option == 'p' ? &plugin_count : &option_count;
                if (*count == MAX_ARGS) {
                    fprintf (stderr, "parley-broker: too many --%s options (at most %d)\n",
                             option == 'b' ? "bind" : option == 'p' ? "plugin" : "option",
                             MAX_ARGS);
                    return 2;
                }
                if (option == 'o' && (!strchr (optarg, '.') || !strchr (optarg, '='))) {
                    fprintf (stderr, "parley-broker: --option '%s' is not NAME.KEY=VALUE\n",
                             optarg);
                    return 2;
                }
                list [(*count)++] = optarg;
                break;
            }
            case 'H':
                heartbeat_ms = s_parse_ms (optarg);
                if (!heartbeat_ms) {
                    fprintf (stderr, "parley-broker: --heartbeat '%s' is not a positive"
                             " number of milliseconds\n", optarg);
                    return 2;
                }
                break;
            case 'T':
                request_timeout_ms = s_parse_ms (optarg);
                if (!request_timeout_ms) {
                    fprintf (stderr, "parley-broker: --request-timeout '%s' is not a"
                             " positive number of milliseconds\n", optarg);
                    return 2;
                }
                break;
            case 'C':
                curve_cert = optarg;
                break;
            case 'A':
                curve_allow = optarg;
                break;
            case 'M':
                curve_admin = optarg;
                break;
            case 'I':
                insecure_peers = true;
                break;
            case 'P':
            case 'B':
                bstar.primary = option == 'P';
                bstar_roles |= option == 'P' ? 1 : 2;
                break;
            case 'S':
                bstar.bind = optarg;
                break;
            case 'R':
                bstar.peer = optarg;
                break;
            case 'h':
                s_usage (stdout);
                return 0;
            default:
                s_usage (stderr);
                return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "parley-broker: unexpected argument '%s'\n", argv [optind]);
        s_usage (stderr);
        return 2;
    }
    if (endpoint_count == 0)
        endpoints [endpoint_count++] = "tcp://127.0.0.1:7700";
    if (!curve_cert != !curve_allow) {
        fprintf (stderr, "parley-broker: --curve-cert and --curve-allow go together\n");
        return 2;
    }
    if (s_bstar_check (&bstar, bstar_roles, plugin_count, curve_cert, curve_allow,
                       insecure_peers))
        return 2;
    if (pl_config_printing (s_config)) {
        pl_config_print (s_config, stdout);
        return 0;
    }

    //  A shell starts background jobs with SIGINT ignored, and an ignored
    //  signal never reaches sigwait: take both back first
    signal (SIGINT, SIG_DFL);
    signal (SIGTERM, SIG_DFL);
    //  Before any thread exists: every thread inherits the blocked signals
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGTERM);
    pthread_sigmask (SIG_BLOCK, &signals, NULL);
    zsys_handler_set (NULL);
    if (!pl_log_json ())
        zsys_set_logstream (stderr);

    pl_curve_t *curve = NULL;
    if (curve_cert) {
        char error [512];
        curve = pl_curve_broker_new (curve_cert, curve_allow, error, sizeof error);
        if (!curve) {
            fprintf (stderr, "parley-broker: %s\n", error);
            return 1;
        }
    }
    br_broker_config_t broker_config = {
        .endpoints = endpoints,
        .endpoint_count = endpoint_count,
        .heartbeat_ms = heartbeat_ms,
        .request_timeout_ms = request_timeout_ms,
        .curve = curve,
        .insecure_peers = insecure_peers,
        .curve_admin = curve_admin,
        .bstar = bstar_roles ? &bstar : NULL
    };
    zactor_t *broker = br_broker_start (&broker_config);
    if (!broker) {
        fprintf (stderr, "parley-broker: could not start the broker: an endpoint"
                 " could not be bound or has no keys (see above)\n");
        pl_curve_destroy (&curve);
        return 1;
    }
    zactor_t *hosts [MAX_ARGS] = { NULL };
    bool options_taken [MAX_ARGS] = { false };
    int status = 0;
    for (size_t index = 0; index < plugin_count; index++) {
        br_host_config_t host_config = {
            .plugin_path = plugins [index],
            .endpoint = BR_BROKER_INPROC,
            .options = options,
            .option_count = option_count,
            .options_taken = options_taken,
            .heartbeat_ms = heartbeat_ms,
            .call_timeout_ms = request_timeout_ms ? 2 * request_timeout_ms : 0
        };
        char error [512] = "";
        hosts [index] = br_host_start (&host_config, error, sizeof error);
        if (!hosts [index]) {
            char *failure = zsys_sprintf ("could not load plugin %s: %s", plugins [index],
                                          *error ? error : "unknown error");
            pl_config_error (s_config, failure);
            zstr_free (&failure);
            status = 1;
            break;
        }
    }
    char error [512];
    if (status == 0
    &&  br_host_check_options_taken (options, options_taken, option_count, error, sizeof error)) {
        pl_config_error (s_config, error);
        status = 1;
    }
    if (status == 0) {
        zsys_info ("parley-broker: running with %zu plugin(s); SIGINT or SIGTERM stops it",
                   plugin_count);
        int caught = 0;
        while (sigwait (&signals, &caught) != 0)
            ;
        zsys_info ("parley-broker: %s received; stopping", strsignal (caught));
    }
    //  Plugins first, so that they can still say bye to a live broker
    for (size_t index = plugin_count; index-- > 0;)
        zactor_destroy (&hosts [index]);
    zactor_destroy (&broker);
    pl_curve_destroy (&curve);
    pl_config_destroy (&s_config);
    return status;
}
