/*  =========================================================================
    pl_config - one configuration file (ZPL) for a program's command line

    czmq's zconfig reads the file but keeps no line numbers: its nodes come
    in the order of the file's lines, so the n-th node (depth first) is the
    n-th line that is neither blank nor a comment, and s_content_lines
    finds those lines once.
    =========================================================================
*/

#include "pl_config.h"
#include "pl_log.h"

#include <czmq.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

//  The options of this class, handled here and never seen by the program
static const struct option s_own_options [] = {
    { "config",       required_argument, NULL, 0 },
    { "print-config", no_argument,       NULL, 0 },
    { "log-format",   required_argument, NULL, 0 },
    { NULL, 0, NULL, 0 }
};

//  The programs whose sections a file may hold
static const char *s_programs [] = { "parley", "parley-broker", "parley-gw", "parley-plugin", NULL };

//  One option the file gives
typedef struct {
    const struct option *option;    //  in the program's table or s_own_options
    char *value;                    //  NULL for a flag; NAME.KEY=VALUE for "option"
    size_t line;
} s_entry_t;

struct _pl_config_t {
    const char *program;            //  borrowed
    const struct option *options;   //  borrowed, the program's table
    char *path;                     //  --config FILE, or NULL
    bool printing;                  //  --print-config
    char *log_format;               //  --log-format from the command line, or NULL
    const char *format;             //  the format chosen, text by default
    zlistx_t *entries;              //  s_entry_t *, the file's options in order
    zhashx_t *given;                //  keys the command line gave (option:NAME.KEY)
    zhashx_t *operands;             //  the command line's arguments that are no option
    zlistx_t *arguments;            //  char *, the argument list being built
    char **argv;                    //  the list as getopt wants it, NULL-ended
    int argc;
    size_t *lines;                  //  the file's content lines, in order
    size_t line_count;
    char where [512];               //  "FILE:LINE" for pl_config_error
};

static void
s_entry_destroy (void **item_p)
{
    s_entry_t *entry = (s_entry_t *) *item_p;
    if (entry) {
        free (entry->value);
        free (entry);
        *item_p = NULL;
    }
}

pl_config_t *
pl_config_new (const char *program, const struct option *options)
{
    assert (program && options);
    pl_config_t *self = (pl_config_t *) zmalloc (sizeof (pl_config_t));
    assert (self);
    self->program = program;
    self->options = options;
    self->entries = zlistx_new ();
    zlistx_set_destructor (self->entries, s_entry_destroy);
    self->given = zhashx_new ();
    self->operands = zhashx_new ();
    self->arguments = zlistx_new ();
    zlistx_set_destructor (self->arguments, (zlistx_destructor_fn *) zstr_free);
    assert (self->entries && self->given && self->operands && self->arguments);
    return self;
}

void
pl_config_destroy (pl_config_t **self_p)
{
    assert (self_p);
    pl_config_t *self = *self_p;
    if (self) {
        zlistx_destroy (&self->entries);
        zhashx_destroy (&self->given);
        zhashx_destroy (&self->operands);
        zlistx_destroy (&self->arguments);
        free (self->argv);
        free (self->lines);
        free (self->path);
        free (self->log_format);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  The command line

//  The option named in table, exactly or by a unique prefix as getopt_long
//  takes it; NULL when none or several
static const struct option *
s_find_in (const struct option *table, const char *name, size_t length, int *matches)
{
    const struct option *found = NULL;
    for (const struct option *option = table; option->name; option++) {
        if (strncmp (option->name, name, length))
            continue;
        if (strlen (option->name) == length) {
            *matches = 1;
            return option;
        }
        found = option;
        (*matches)++;
    }
    return found;
}

static const struct option *
s_resolve (pl_config_t *self, const char *name, size_t length)
{
    int own_matches = 0, matches = 0;
    const struct option *own = s_find_in (s_own_options, name, length, &own_matches);
    const struct option *option = s_find_in (self->options, name, length, &matches);
    if (own && strlen (own->name) == length)
        return own;
    if (option && strlen (option->name) == length)
        return option;
    return own_matches + matches == 1 ? (own ? own : option) : NULL;
}

//  The key that "the command line wins" compares: the option's name, or
//  option:NAME.KEY for a plugin's option
static char *
s_precedence_key (const struct option *option, const char *value)
{
    if (streq (option->name, "option") && value) {
        const char *equals = strchr (value, '=');
        int length = equals ? (int) (equals - value) : (int) strlen (value);
        return zsys_sprintf ("option:%.*s", length, value);
    }
    return strdup (option->name);
}

static void
s_add_option (zlistx_t *list, const struct option *option, const char *value)
{
    zlistx_add_end (list, zsys_sprintf ("--%s", option->name));
    if (option->has_arg != no_argument && value)
        zlistx_add_end (list, strdup (value));
}

//  Takes one "--name[=value] [value]" at argv [*index]: this class's own,
//  or the program's, written again as "--name" "value"
static void
s_take_argument (pl_config_t *self, zlistx_t *command_line, int argc, char **argv, int *index)
{
    const char *argument = argv [*index];
    const char *equals = strchr (argument, '=');
    size_t length = equals ? (size_t) (equals - argument - 2) : strlen (argument + 2);
    const struct option *option = s_resolve (self, argument + 2, length);
    const char *value = equals ? equals + 1 : NULL;
    if (option && option->has_arg != no_argument && !value && *index + 1 < argc)
        value = argv [++*index];
    bool missing = option && option->has_arg != no_argument && !value;
    bool extra = option && option->has_arg == no_argument && value;
    if (!option || missing || extra) {
        //  The program's parser says what is wrong with it
        zlistx_add_end (command_line, strdup (argument));
        return;
    }
    if (option >= s_own_options && option < s_own_options + 3) {
        char **string = streq (option->name, "config") ? &self->path
                      : streq (option->name, "log-format") ? &self->log_format : NULL;
        if (string) {
            zstr_free (string);
            *string = strdup (value);
        }
        else
            self->printing = true;
        return;
    }
    char *key = s_precedence_key (option, value);
    zhashx_update (self->given, key, (void *) "given");
    free (key);
    s_add_option (command_line, option, value);
}


//  --------------------------------------------------------------------------
//  The file

//  The numbers of the lines that are neither blank nor a comment
static void
s_content_lines (pl_config_t *self, const char *text)
{
    size_t line = 1, allocated = 64;
    self->lines = (size_t *) malloc (allocated * sizeof (size_t));
    assert (self->lines);
    for (const char *start = text; *start; line++) {
        const char *first = start + strspn (start, " ");
        if (*first && *first != '\n' && *first != '\r' && *first != '#') {
            if (self->line_count == allocated) {
                allocated *= 2;
                self->lines = (size_t *) realloc (self->lines, allocated * sizeof (size_t));
                assert (self->lines);
            }
            self->lines [self->line_count++] = line;
        }
        const char *newline = strchr (start, '\n');
        start = newline ? newline + 1 : start + strlen (start);
    }
}

//  zconfig writes its syntax errors on stdout ("... E (zconfig): (LINE)
//  what"): we catch them (at start, one thread) to say them with the file's
//  name, on stderr with our other errors
static zconfig_t *
s_parse (pl_config_t *self, const char *text)
{
    fflush (stdout);
    FILE *caught = tmpfile ();
    int saved = caught ? dup (STDOUT_FILENO) : -1;
    if (saved >= 0)
        dup2 (fileno (caught), STDOUT_FILENO);
    zconfig_t *root = zconfig_str_load (text);
    fflush (stdout);
    if (saved >= 0) {
        dup2 (saved, STDOUT_FILENO);
        close (saved);
    }
    if (!root) {
        char said [512] = "";
        if (caught) {
            rewind (caught);
            size_t size = fread (said, 1, sizeof said - 1, caught);
            said [size] = 0;
        }
        unsigned line = 0;
        char *open = strstr (said, "): (");
        open = open ? open + 3 : NULL;
        char what [256] = "not valid ZPL";
        if (open && sscanf (open, "(%u) %255[^\n]", &line, what) >= 1 && line)
            fprintf (stderr, "%s: %s:%u: %s\n", self->program, self->path, line, what);
        else
            fprintf (stderr, "%s: %s: not valid ZPL\n", self->program, self->path);
    }
    if (caught)
        fclose (caught);
    return root;
}

static int
s_file_error (pl_config_t *self, size_t line, const char *what, const char *key)
{
    fprintf (stderr, "%s: %s:%zu: %s '%s'\n", self->program, self->path, line, what, key);
    return -1;
}

//  A flag's value: 1 true, 0 false, -1 neither
static int
s_truth (const char *value)
{
    const char *yes [] = { "", "true", "yes", "on", "1", NULL };
    const char *no [] = { "false", "no", "off", "0", NULL };
    for (const char **word = yes; *word; word++)
        if (streq (value, *word))
            return 1;
    for (const char **word = no; *word; word++)
        if (streq (value, *word))
            return 0;
    return -1;
}

static void
s_entry_add (pl_config_t *self, const struct option *option, char *value, size_t line)
{
    s_entry_t *entry = (s_entry_t *) zmalloc (sizeof (s_entry_t));
    assert (entry);
    entry->option = option;
    entry->value = value;
    entry->line = line;
    zlistx_add_end (self->entries, entry);
}

//  PLUGIN/KEY = VALUE: the program's --option PLUGIN.KEY=VALUE
static int
s_plugin_key (pl_config_t *self, const char *path, const char *value, size_t line)
{
    int matches = 0;
    const struct option *option = s_find_in (self->options, "option", 6, &matches);
    const char *slash = strchr (path, '/');
    if (!option || strlen (option->name) != 6)
        return s_file_error (self, line, "unknown key (this program takes no plugin options)",
                             path);
    if (slash == path || !slash [1] || strchr (slash + 1, '/'))
        return s_file_error (self, line, "a plugin's option is PLUGIN/KEY, not", path);
    s_entry_add (self, option, zsys_sprintf ("%.*s.%s=%s", (int) (slash - path), path,
                                             slash + 1, value), line);
    return 0;
}

static int
s_key (pl_config_t *self, const char *path, const char *value, size_t line)
{
    if (strchr (path, '/'))
        return s_plugin_key (self, path, value, line);
    int matches = 0;
    const struct option *option = s_find_in (self->options, path, strlen (path), &matches);
    if (!option || strlen (option->name) != strlen (path)) {
        option = s_find_in (s_own_options, path, strlen (path), &matches);
        if (!option || !streq (option->name, "log-format"))
            return s_file_error (self, line, option ? "a file cannot give the key"
                                                    : "unknown key", path);
    }
    if (option->has_arg == no_argument) {
        int truth = s_truth (value);
        if (truth < 0)
            return s_file_error (self, line, "wants true or false:", path);
        if (truth)
            s_entry_add (self, option, NULL, line);
        return 0;
    }
    if (!*value)
        return s_file_error (self, line, "wants a value:", path);
    s_entry_add (self, option, strdup (value), line);
    return 0;
}

//  1 when name is a section this program reads: its own name, or its name
//  @ARG when ARG is an argument of its command line (parley-plugin@rooms for
//  "parley-plugin rooms", as systemd names an instance); -1 for another
//  program's section; 0 when name is no section
static int
s_section (pl_config_t *self, const char *name)
{
    for (const char **program = s_programs; *program; program++) {
        size_t length = strlen (*program);
        if (strncmp (name, *program, length) || (name [length] && name [length] != '@'))
            continue;
        bool ours = streq (*program, self->program)
                 && (!name [length] || zhashx_lookup (self->operands, name + length + 1));
        return ours ? 1 : -1;
    }
    return 0;
}

static size_t
s_node_count (zconfig_t *node)
{
    size_t count = 0;
    for (zconfig_t *child = zconfig_child (node); child; child = zconfig_next (child))
        count += 1 + s_node_count (child);
    return count;
}

//  Walks the nodes under parent in the file's order; *next counts them
static int
s_walk (pl_config_t *self, zconfig_t *parent, const char *prefix, size_t *next)
{
    for (zconfig_t *node = zconfig_child (parent); node; node = zconfig_next (node)) {
        size_t line = *next < self->line_count ? self->lines [*next] : 0;
        ++*next;
        const char *name = zconfig_name (node);
        const char *value = zconfig_value (node) ? zconfig_value (node) : "";
        int section = prefix ? 0 : s_section (self, name);
        if (section < 0) {
            *next += s_node_count (node);       //  another program's
            continue;
        }
        char *path = section ? NULL : prefix ? zsys_sprintf ("%s/%s", prefix, name)
                                             : strdup (name);
        int rc = 0;
        if (zconfig_child (node) && *value)
            rc = s_file_error (self, line, "a key with a value cannot hold keys:", name);
        else
        if (zconfig_child (node) || section)
            rc = s_walk (self, node, path, next);
        else
            rc = s_key (self, path, value, line);
        free (path);
        if (rc)
            return -1;
    }
    return 0;
}

static int
s_load_file (pl_config_t *self)
{
    struct stat status;
    errno = 0;
    zfile_t *file = stat (self->path, &status) == 0 && S_ISREG (status.st_mode)
                  ? zfile_new (NULL, self->path) : NULL;
    zchunk_t *chunk = file && zfile_input (file) == 0
                    ? zfile_read (file, (size_t) status.st_size, 0) : NULL;
    if (!chunk) {
        fprintf (stderr, "%s: --config %s: cannot read it: %s\n", self->program, self->path,
                 errno ? strerror (errno) : "not a file");
        zfile_destroy (&file);
        return -1;
    }
    char *text = zchunk_strdup (chunk);
    zchunk_destroy (&chunk);
    zfile_destroy (&file);
    s_content_lines (self, text);
    zconfig_t *root = s_parse (self, text);
    free (text);
    if (!root)
        return -1;
    size_t next = 0;
    int rc = s_walk (self, root, NULL, &next);
    zconfig_destroy (&root);
    return rc;
}


//  --------------------------------------------------------------------------
//  The argument list

//  The log format: the command line's, else the file's, else text
static int
s_setup_log (pl_config_t *self)
{
    const char *format = self->log_format;
    size_t line = 0;
    for (s_entry_t *entry = (s_entry_t *) zlistx_first (self->entries); entry && !format;
         entry = (s_entry_t *) zlistx_next (self->entries))
        if (streq (entry->option->name, "log-format")) {
            format = entry->value;
            line = entry->line;
        }
    self->format = format ? format : "text";
    if (!format || pl_log_setup (self->program, format) == 0)
        return 0;
    if (line)
        return s_file_error (self, line, "log-format wants text or json, not", format);
    fprintf (stderr, "%s: --log-format wants text or json, not '%s'\n", self->program, format);
    return -1;
}

int
pl_config_load (pl_config_t *self, int argc, char **argv)
{
    assert (self && argc > 0 && argv);
    zlistx_t *command_line = zlistx_new ();
    assert (command_line);
    zlistx_set_destructor (command_line, (zlistx_destructor_fn *) zstr_free);
    bool operands = false;
    for (int index = 1; index < argc; index++) {
        operands |= streq (argv [index], "--");
        if (operands || strncmp (argv [index], "--", 2) || !argv [index][2]) {
            zlistx_add_end (command_line, strdup (argv [index]));
            zhashx_update (self->operands, argv [index], (void *) "operand");
        }
        else
            s_take_argument (self, command_line, argc, argv, &index);
    }
    int rc = self->path ? s_load_file (self) : 0;
    if (rc == 0)
        rc = s_setup_log (self);
    zlistx_add_end (self->arguments, strdup (argv [0]));
    for (s_entry_t *entry = (s_entry_t *) zlistx_first (self->entries); entry && rc == 0;
         entry = (s_entry_t *) zlistx_next (self->entries)) {
        char *key = s_precedence_key (entry->option, entry->value);
        if (!zhashx_lookup (self->given, key) && !streq (entry->option->name, "log-format"))
            s_add_option (self->arguments, entry->option, entry->value);
        free (key);
    }
    for (char *argument = (char *) zlistx_first (command_line); argument;
         argument = (char *) zlistx_next (command_line))
        zlistx_add_end (self->arguments, strdup (argument));
    zlistx_destroy (&command_line);

    self->argc = (int) zlistx_size (self->arguments);
    self->argv = (char **) calloc ((size_t) self->argc + 1, sizeof (char *));
    assert (self->argv);
    int index = 0;
    for (char *argument = (char *) zlistx_first (self->arguments); argument;
         argument = (char *) zlistx_next (self->arguments))
        self->argv [index++] = argument;
    return rc;
}

int
pl_config_argc (pl_config_t *self)
{
    assert (self);
    return self->argc;
}

char **
pl_config_argv (pl_config_t *self)
{
    assert (self);
    return self->argv;
}

bool
pl_config_printing (pl_config_t *self)
{
    assert (self);
    return self->printing;
}


//  --------------------------------------------------------------------------
//  Printing and errors

//  KEY = "VALUE", quoted as ZPL reads it back
static void
s_print_pair (FILE *out, const char *indent, const char *key, const char *value)
{
    char quote = strchr (value, '"') ? '\'' : '"';
    fprintf (out, "%s%s = %c%s%c\n", indent, key, quote, value, quote);
}

//  The plugins' options, PLUGIN then its KEY = VALUE lines, plugin by plugin
static void
s_print_plugin_options (pl_config_t *self, FILE *out)
{
    zlistx_t *printed = zlistx_new ();
    assert (printed);
    zlistx_set_destructor (printed, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_comparator (printed, (zlistx_comparator_fn *) strcmp);
    for (int index = 1; index + 1 < self->argc; index++) {
        if (!streq (self->argv [index], "--option"))
            continue;
        const char *value = self->argv [++index];
        const char *dot = strchr (value, '.');
        char *plugin = dot ? zsys_sprintf ("%.*s", (int) (dot - value), value) : NULL;
        if (!plugin || zlistx_find (printed, plugin)) {
            free (plugin);
            continue;
        }
        fprintf (out, "%s\n", plugin);
        for (int other = index; other < self->argc; other++) {
            const char *option = self->argv [other];
            if (streq (self->argv [other - 1], "--option")
            &&  strncmp (option, plugin, strlen (plugin)) == 0 && option [strlen (plugin)] == '.') {
                char *key = strdup (option + strlen (plugin) + 1);
                char *equals = strchr (key, '=');
                if (equals)
                    *equals = 0;
                s_print_pair (out, "    ", key, equals ? equals + 1 : "");
                free (key);
            }
        }
        zlistx_add_end (printed, plugin);
    }
    zlistx_destroy (&printed);
}

void
pl_config_print (pl_config_t *self, FILE *out)
{
    assert (self);
    fprintf (out, "#   %s: from %s%s; a key not here takes its default (%s --help)\n",
             self->program, self->path ? self->path : "the command line",
             self->path ? " and the command line, which wins" : "", self->program);
    s_print_pair (out, "", "log-format", self->format ? self->format : "text");
    for (int index = 1; index < self->argc; index++) {
        const char *argument = self->argv [index];
        const struct option *option = strncmp (argument, "--", 2) || !argument [2] ? NULL
                                    : s_resolve (self, argument + 2, strlen (argument + 2));
        if (!option)
            fprintf (out, "#   an argument that is not an option: %s\n", argument);
        else
        if (option->has_arg == no_argument)
            fprintf (out, "%s = true\n", option->name);
        else
        if (index + 1 < self->argc && !streq (option->name, "option"))
            s_print_pair (out, "", option->name, self->argv [++index]);
        else
            index++;
    }
    s_print_plugin_options (self, out);
}

void
pl_config_error (pl_config_t *self, const char *error)
{
    assert (self && error);
    const char *where = "";
    for (s_entry_t *entry = (s_entry_t *) zlistx_first (self->entries); entry;
         entry = (s_entry_t *) zlistx_next (self->entries)) {
        char *key = s_precedence_key (entry->option, entry->value);
        bool overridden = zhashx_lookup (self->given, key) != NULL;
        free (key);
        if (!streq (entry->option->name, "option") || overridden)
            continue;
        const char *equals = strchr (entry->value, '=');
        char *named = zsys_sprintf ("--option %.*s=", (int) (equals - entry->value),
                                    entry->value);
        if (strstr (error, named)) {
            snprintf (self->where, sizeof self->where, "%s:%zu: ", self->path, entry->line);
            where = self->where;
        }
        free (named);
        if (*where)
            break;
    }
    fprintf (stderr, "%s: %s%s\n", self->program, where, error);
}
