/*  =========================================================================
    pl_stats - plugins' figures on their way to /metrics

    Both ends of the path a plugin's metrics take (plugin ABI 1.4,
    proto/ENVELOPE.md "Stats"). The plugin host collects the series the
    plugin reports from on_metrics (pl_stats_add checks each one) into the
    msgpack body of the STATS it answers the broker with. The broker keeps
    the last body of every plugin instance and, when a gateway asks for its
    figures, writes them all as Prometheus text (pl_stats_render): one
    HELP and TYPE per name across every instance, each series labelled with
    the instance that reported it.

        pl_stats_t *stats = pl_stats_new ();
        pl_stats_add (stats, &metric, error, sizeof error);     //  each series
        size_t size;
        uint8_t *body = pl_stats_body (stats, &size);           //  to the broker
        ...
        pl_stats_part_t part = { "store-sqlite@host:1:1", body, size };
        pl_stats_render (out, &part, 1);                        //  at the broker

    Ownership: the caller owns what pl_stats_new and pl_stats_body return;
    render borrows its parts for the call.
    =========================================================================
*/

#ifndef PL_STATS_H_INCLUDED
#define PL_STATS_H_INCLUDED

#include "parley_plugin.h"

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _pl_stats_t pl_stats_t;

//  What one plugin instance reported: its name and its STATS body
typedef struct {
    const char *instance;
    const uint8_t *data;
    size_t size;
} pl_stats_part_t;

//  An empty collection. Caller owns return value.
pl_stats_t *
    pl_stats_new (void);

//  Destroys it; nullifies the reference.
void
    pl_stats_destroy (pl_stats_t **self_p);

//  Checks metric against the ABI's rules (parley_plugin.h) and adds it.
//  Returns 0, or -1 with a sentence in error and nothing added.
int
    pl_stats_add (pl_stats_t *self, const parley_metric_t *metric,
                  char *error, size_t error_size);

//  Series added since the last body
size_t
    pl_stats_count (pl_stats_t *self);

//  The series added so far as a STATS body (a msgpack array, one array per
//  series), and empties the collection. NULL when out of memory. Caller
//  owns return value (free).
uint8_t *
    pl_stats_body (pl_stats_t *self, size_t *size_p);

//  Writes the series of every part as Prometheus text 0.0.4, grouped by
//  name, each with an "instance" label. A series that does not decode, or
//  whose type differs from the first of its name, is left out. Returns
//  the series written.
size_t
    pl_stats_render (FILE *out, const pl_stats_part_t *parts, size_t count);

#ifdef __cplusplus
}
#endif

#endif
