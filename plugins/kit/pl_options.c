/*  =========================================================================
    pl_options - a plugin's options, read with their ranges checked
    =========================================================================
*/

#include "pl_options.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

//  Logs why the value of key is refused and counts it
static void
s_refuse (pl_options_t *self, const char *key, const char *value, const char *wanted)
{
    self->host->log (self->ctx, PARLEY_LOG_ERROR, "option %s.%s=%s refused: want %s",
                     self->plugin, key, value, wanted);
    self->refused++;
}

pl_options_t
pl_options (const parley_host_t *host, parley_ctx_t *ctx, const char *plugin)
{
    pl_options_t self = { .host = host, .ctx = ctx, .plugin = plugin, .refused = 0 };
    return self;
}

uint64_t
pl_options_uint (pl_options_t *self, const char *key, uint64_t fallback,
                 uint64_t low, uint64_t high)
{
    const char *text = self->host->option (self->ctx, key);
    if (!text)
        return fallback;
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull (text, &end, 10);
    if (errno || end == text || *end || *text < '0' || *text > '9'
    ||  value < low || value > high) {
        char wanted [96];
        snprintf (wanted, sizeof wanted, "a whole number from %llu to %llu",
                  (unsigned long long) low, (unsigned long long) high);
        s_refuse (self, key, text, wanted);
        return fallback;
    }
    return value;
}

int64_t
pl_options_int (pl_options_t *self, const char *key, int64_t fallback,
                int64_t low, int64_t high)
{
    const char *text = self->host->option (self->ctx, key);
    if (!text)
        return fallback;
    char *end = NULL;
    errno = 0;
    long long value = strtoll (text, &end, 10);
    if (errno || end == text || *end || value < low || value > high) {
        char wanted [96];
        snprintf (wanted, sizeof wanted, "a whole number from %lld to %lld",
                  (long long) low, (long long) high);
        s_refuse (self, key, text, wanted);
        return fallback;
    }
    return value;
}

double
pl_options_number (pl_options_t *self, const char *key, double fallback,
                   double low, double high)
{
    const char *text = self->host->option (self->ctx, key);
    if (!text)
        return fallback;
    char *end = NULL;
    errno = 0;
    double value = strtod (text, &end);
    if (errno || end == text || *end || !isfinite (value) || value < low || value > high) {
        char wanted [96];
        snprintf (wanted, sizeof wanted, "a number from %g to %g", low, high);
        s_refuse (self, key, text, wanted);
        return fallback;
    }
    return value;
}

bool
pl_options_bool (pl_options_t *self, const char *key, bool fallback)
{
    const char *text = self->host->option (self->ctx, key);
    if (!text)
        return fallback;
    if (!strcasecmp (text, "true") || !strcasecmp (text, "yes") || !strcasecmp (text, "on")
    ||  !strcmp (text, "1"))
        return true;
    if (!strcasecmp (text, "false") || !strcasecmp (text, "no") || !strcasecmp (text, "off")
    ||  !strcmp (text, "0"))
        return false;
    s_refuse (self, key, text, "true or false");
    return fallback;
}

const char *
pl_options_str (pl_options_t *self, const char *key, const char *fallback)
{
    const char *text = self->host->option (self->ctx, key);
    if (!text)
        return fallback;
    if (!*text) {
        s_refuse (self, key, text, "a value that is not empty");
        return fallback;
    }
    return text;
}

size_t
pl_options_refused (const pl_options_t *self)
{
    return self->refused;
}
