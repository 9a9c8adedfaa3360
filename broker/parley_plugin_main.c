/*  =========================================================================
    parley-plugin - hosts plugins in their own process, connected to a broker

    parley-plugin --broker ENDPOINT [--curve-cert FILE --curve-broker FILE]
                  [--option NAME.KEY=VALUE]... [--heartbeat MS] PLUGIN.so [PLUGIN.so...]

    One host actor per plugin, exactly as the broker runs them in-process;
    only the endpoint differs. The process keeps no state of its own, so
    restarting it (or the broker) is always safe: the hosts say hello again.
    =========================================================================
*/

#include "br_host.h"
#include "pl_brokers.h"
#include "pl_config.h"
#include "pl_log.h"
#include "pl_paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
s_usage (FILE *stream)
{
    fprintf (stream,
        "usage: parley-plugin --broker ENDPOINT [--curve-cert FILE --curve-broker FILE]\n"
        "                     [--option NAME.KEY=VALUE]...\n"
        "                     [--heartbeat MS] [--verbose] PLUGIN [PLUGIN...]\n"
        "\n"
        "Runs Parley plugins in this process and connects each to the broker.\n"
        "\n"
        "  --broker ENDPOINT        the broker's endpoint, tcp://HOST:PORT or ipc://PATH;\n"
        "                           for a standby pair both, A,B or the option twice:\n"
        "                           the plugins move to the live one\n"
        "  --option NAME.KEY=VALUE  an option for the plugin named NAME (repeatable);\n"
        "                           e.g. --option example.greeting=Hello\n"
        "  --curve-cert FILE        this process's certificate (parley-keygen FILE:\n"
        "                           FILE and FILE_secret); its public part must be in\n"
        "                           the broker's --curve-allow folder\n"
        "  --curve-broker FILE      the broker's public certificate; with --curve-cert,\n"
        "                           needed to reach a broker on tcp://\n"
        "  --heartbeat MS           heartbeat interval (default 1000); the broker is\n"
        "                           taken for dead after 3 silent intervals\n"
        "  --verbose                also log the plugins' debug lines\n"
        PL_CONFIG_OPTIONS_HELP
        "  --help                   this text\n"
        "\n"
        "PLUGIN is the path of a plugin's .so (with a '/': ./my.so), or a bare name\n"
        "such as 'example', which means <this program's folder>/../plugins/example.so.\n"
        "Runs until SIGINT or SIGTERM. Exits 1 if any plugin fails to load.\n");
}

//  The options the loop in main reads, for the configuration file's keys
static const struct option s_options [] = {
    { "broker",       required_argument, NULL, 0 },
    { "curve-cert",   required_argument, NULL, 0 },
    { "curve-broker", required_argument, NULL, 0 },
    { "option",       required_argument, NULL, 0 },
    { "heartbeat",    required_argument, NULL, 0 },
    { "verbose",      no_argument,       NULL, 0 },
    { "help",         no_argument,       NULL, 0 },
    { NULL, 0, NULL, 0 }
};

//  The configuration file and the argument list built from it and the
//  command line, which the options point into: alive until exit
static pl_config_t *s_config = NULL;
//  The broker endpoints, every --broker joined: alive until exit too
static char *s_broker = NULL;

int
main (int argc, char *argv [])
{
    s_config = pl_config_new ("parley-plugin", s_options);
    if (pl_config_load (s_config, argc, argv))
        return 1;
    argc = pl_config_argc (s_config);
    argv = pl_config_argv (s_config);
    const char *endpoint = NULL;
    const char *brokers [PL_BROKERS_MAX];       //  --broker, each maybe a list
    size_t broker_count = 0;
    const char *curve_cert = NULL;
    const char *curve_broker = NULL;
    uint32_t heartbeat = 0;
    bool verbose = false;
    const char **options = (const char **) calloc ((size_t) argc, sizeof (char *));
    bool *options_taken = (bool *) calloc ((size_t) argc, sizeof (bool));
    char **plugins = (char **) calloc ((size_t) argc, sizeof (char *));
    assert (options && options_taken && plugins);
    size_t option_count = 0;
    size_t plugin_count = 0;
    int rc = 0;

    for (int index = 1; index < argc && rc == 0; index++) {
        const char *argument = argv [index];
        const char *value = index + 1 < argc ? argv [index + 1] : NULL;
        if (streq (argument, "--help") || streq (argument, "-h")) {
            s_usage (stdout);
            rc = -1;
        }
        else
        if (streq (argument, "--verbose"))
            verbose = true;
        else
        if (streq (argument, "--broker") && value) {
            if (broker_count == PL_BROKERS_MAX) {
                fprintf (stderr, "parley-plugin: more than %d --broker options\n",
                         PL_BROKERS_MAX);
                rc = 1;
            }
            else
                brokers [broker_count++] = value;
            index++;
        }
        else
        if ((streq (argument, "--curve-cert") || streq (argument, "--curve-broker")) && value) {
            *(streq (argument, "--curve-cert") ? &curve_cert : &curve_broker) = value;
            index++;
        }
        else
        if (streq (argument, "--option") && value) {
            const char *dot = strchr (value, '.');
            const char *equals = strchr (value, '=');
            if (!dot || !equals || dot > equals || dot == value || equals == dot + 1) {
                fprintf (stderr, "parley-plugin: option '%s' is not NAME.KEY=VALUE\n", value);
                rc = 1;
            }
            options [option_count++] = value;
            index++;
        }
        else
        if (streq (argument, "--heartbeat") && value) {
            char *end;
            errno = 0;
            unsigned long msecs = strtoul (value, &end, 10);
            if (errno || *end || msecs == 0 || msecs > 3600 * 1000) {
                fprintf (stderr, "parley-plugin: --heartbeat needs milliseconds, not '%s'\n", value);
                rc = 1;
            }
            heartbeat = (uint32_t) msecs;
            index++;
        }
        else
        if (argument [0] == '-') {
            fprintf (stderr, "parley-plugin: unknown or incomplete option '%s' (see --help)\n",
                     argument);
            rc = 1;
        }
        else {
            //  The same lookup as parley and parley-broker: a bare name is
            //  <this program's folder>/../plugins/NAME.so
            plugins [plugin_count] = pl_paths_plugin (argument);
            if (!plugins [plugin_count++]) {
                fprintf (stderr, "parley-plugin: out of memory\n");
                rc = 1;
            }
        }
    }
    if (rc == 0 && broker_count) {
        char error [256];
        s_broker = pl_brokers_join (brokers, broker_count);
        pl_brokers_t *checked = pl_brokers_new (s_broker, error, sizeof error);
        if (!checked) {
            fprintf (stderr, "parley-plugin: --broker: %s\n", error);
            rc = 1;
        }
        pl_brokers_destroy (&checked);
        endpoint = s_broker;
    }
    if (rc == 0 && (!endpoint || plugin_count == 0)) {
        fprintf (stderr, "parley-plugin: needs --broker ENDPOINT and at least one plugin"
                         " (see --help)\n");
        rc = 1;
    }

    if (rc == 0 && !curve_cert != !curve_broker) {
        fprintf (stderr, "parley-plugin: --curve-cert and --curve-broker go together\n");
        rc = 1;
    }
    if (rc == 0 && pl_config_printing (s_config)) {
        pl_config_print (s_config, stdout);
        rc = -1;
    }
    pl_curve_t *curve = NULL;
    if (rc == 0 && curve_cert) {
        char error [512];
        curve = pl_curve_peer_new (curve_cert, curve_broker, error, sizeof error);
        if (!curve) {
            fprintf (stderr, "parley-plugin: %s\n", error);
            rc = 1;
        }
    }
    zactor_t **hosts = (zactor_t **) calloc (plugin_count + 1, sizeof (zactor_t *));
    assert (hosts);
    if (rc == 0) {
        char *names = NULL;
        for (size_t index = 0; index < plugin_count && rc == 0; index++) {
            br_host_config_t config = {
                .plugin_path = plugins [index],
                .endpoint = endpoint,
                .options = options,
                .verbose = verbose,
                .option_count = option_count,
                .options_taken = options_taken,
                .heartbeat_ms = heartbeat,
                .curve = curve
            };
            char error [512];
            hosts [index] = br_host_start (&config, error, sizeof error);
            if (!hosts [index]) {
                pl_config_error (s_config, error);
                rc = 1;
            }
            char *joined = zsys_sprintf ("%s%s%s", names ? names : "", names ? ", " : "",
                                         plugins [index]);
            free (names);
            names = joined;
        }
        char error [512];
        if (rc == 0 && br_host_check_options_taken (options, options_taken, option_count,
                                                    error, sizeof error)) {
            pl_config_error (s_config, error);
            rc = 1;
        }
        if (rc == 0) {
            zsys_info ("parley-plugin: hosting %s for the broker at %s", names, endpoint);
            //  czmq's own handler sets zsys_interrupted on SIGINT and SIGTERM.
            //  The signal may land on any thread (the hosts' included), so we
            //  watch the flag instead of waiting for an interrupted call.
            while (!zsys_interrupted)
                zclock_sleep (100);
            zsys_info ("parley-plugin: stopping");
        }
        free (names);
    }

    for (size_t index = 0; index < plugin_count; index++) {
        zactor_destroy (&hosts [index]);
        free (plugins [index]);
    }
    free (hosts);
    pl_curve_destroy (&curve);
    free (plugins);
    free (options);
    free (options_taken);
    pl_config_destroy (&s_config);
    zstr_free (&s_broker);
    return rc == -1 ? 0 : rc;
}
