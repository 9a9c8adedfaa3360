/*  =========================================================================
    pl_config - one configuration file (ZPL) for a program's command line

    Every program (parley, parley-broker, parley-gw, parley-plugin) reads
    its options the same way: the keys of the file are its long options
    without "--" (listen = 127.0.0.1:8080, verbose = true), and a key under
    a plugin's name is that plugin's option, as --option NAME.KEY=VALUE:

        rooms/msg_rate = 20         (or, the same)      rooms
                                                            msg_rate = 20

    A top-level section named after a program (parley, parley-broker,
    parley-gw, parley-plugin) is read by that program only, and one named
    PROGRAM@ARG by that program when ARG is one of its command line's
    arguments (parley-plugin@rooms: the process that hosts rooms, as systemd
    names the instance), so one file can serve every process of a split
    deployment. Keys at the top are read by every program.

    This class turns the file into arguments in front of the command line's,
    so the program's own parser sees one argument list and takes every
    option, present or added later, from the file too. The command line
    wins: a key given there drops the file's value (for --option, the same
    NAME.KEY; for a repeatable option, all of the file's). It handles three
    options of its own, taken out of the list: --config FILE,
    --print-config and --log-format text|json (see pl_log).

    An unknown key, a flag that is not true or false, a missing value, or a
    file that is not ZPL is an error naming the file and the line.
    =========================================================================
*/

#ifndef PL_CONFIG_H_INCLUDED
#define PL_CONFIG_H_INCLUDED

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _pl_config_t pl_config_t;

//  The lines every program's --help adds for the options of this class
#define PL_CONFIG_OPTIONS_HELP \
    "  --config FILE           read options from FILE (ZPL: KEY = VALUE, one a line;\n" \
    "                          PLUGIN/KEY for a plugin's option); the command line wins\n" \
    "  --print-config          print the resulting configuration as ZPL and exit\n" \
    "  --log-format text|json  log lines as text (default) or one JSON object a line\n"

//  Creates the configuration of the program named, whose options are
//  options (getopt_long's table, ended by a zeroed entry; borrowed for the
//  life of this object). A program with an "option" option takes plugin
//  keys. Caller owns return value; destroy with pl_config_destroy.
pl_config_t *
    pl_config_new (const char *program, const struct option *options);

//  Destroys the configuration and the argument list it built
void
    pl_config_destroy (pl_config_t **self_p);

//  Takes this class's options out of argv, reads the --config file if one
//  is given, sets the log format, and builds the program's argument list:
//  argv [0], the file's options, then the command line's. Returns 0, or -1
//  after printing why on stderr.
int
    pl_config_load (pl_config_t *self, int argc, char **argv);

//  The argument list to parse (after pl_config_load): its count and its
//  strings, owned by self, as getopt_long wants them
int
    pl_config_argc (pl_config_t *self);
char **
    pl_config_argv (pl_config_t *self);

//  True when --print-config was given: the program parses and checks the
//  arguments as always, then calls pl_config_print and exits
bool
    pl_config_printing (pl_config_t *self);

//  Prints the resulting configuration as ZPL that --config reads back: the
//  options given in the file and on the command line, the command line's
//  where both gave one; what is absent takes its default
void
    pl_config_print (pl_config_t *self, FILE *out);

//  Prints "PROGRAM: error" on stderr, naming the file and line first when
//  the error names a plugin option that came from the file (the plugin
//  host's sentences name one as "--option NAME.KEY=")
void
    pl_config_error (pl_config_t *self, const char *error);

#ifdef __cplusplus
}
#endif

#endif
