/*  =========================================================================
    pl_options - a plugin's options, read with their ranges checked

    Options reach a plugin as `--option NAME.KEY=VALUE` and host->option
    (ctx, "KEY"). The host already refuses a key the plugin never asked for
    during init (a misspelling stops the start); pl_options refuses a value
    that is not what the key wants: not a number, out of its range. Each
    refusal is logged as one line that names the option, the value and
    what was wanted; the plugin reads every option, then asks once whether
    any was refused and, if so, refuses to start (init returns -1). An
    absent key gives the fallback.

    A value on the caller's stack, used during init only; it owns nothing.

        pl_options_t options = pl_options (host, ctx, "auth");
        uint64_t workers = pl_options_uint (&options, "workers", 2, 1, 64);
        int64_t grace_ms = pl_options_int (&options, "grace_ms", 3000, 0, DAY_MS);
        if (pl_options_refused (&options))
            return -1;
    =========================================================================
*/

#ifndef PL_OPTIONS_H_INCLUDED
#define PL_OPTIONS_H_INCLUDED

#include "parley_plugin.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const parley_host_t *host;      //  not owned
    parley_ctx_t *ctx;              //  not owned
    const char *plugin;             //  the plugin's name, for the messages; not owned
    size_t refused;                 //  values refused so far
} pl_options_t;

//  Options of the plugin named plugin ("auth"), none refused yet
pl_options_t
    pl_options (const parley_host_t *host, parley_ctx_t *ctx, const char *plugin);

//  A whole number from low to high (decimal digits only)
uint64_t
    pl_options_uint (pl_options_t *self, const char *key, uint64_t fallback,
                     uint64_t low, uint64_t high);

//  A whole number from low to high, maybe negative
int64_t
    pl_options_int (pl_options_t *self, const char *key, int64_t fallback,
                    int64_t low, int64_t high);

//  A number (decimals allowed: a rate) from low to high
double
    pl_options_number (pl_options_t *self, const char *key, double fallback,
                       double low, double high);

//  true/false, yes/no, on/off or 1/0
bool
    pl_options_bool (pl_options_t *self, const char *key, bool fallback);

//  The text as given (borrowed from the host for the instance's life), or
//  fallback; an empty value is refused
const char *
    pl_options_str (pl_options_t *self, const char *key, const char *fallback);

//  How many values were refused (each was logged)
size_t
    pl_options_refused (const pl_options_t *self);

#ifdef __cplusplus
}
#endif

#endif
