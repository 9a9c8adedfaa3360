/*  =========================================================================
    sc_log - the log lines of this process, for tests that check what a
    store plugin says

    The plugin host logs through czmq's zsys; sc_log makes zsys send every
    line to an inproc endpoint and subscribes to it, so that a test asks
    whether a line was said. Shared by store-sqlite's and store-mongo's own
    tests (a plugin refused at start must say why).

        sc_log_t *log = sc_log_new ("inproc://test-store-sqlite-log");
        sc_log_clear (log);
        ... start a plugin that refuses ...
        assert_true (sc_log_says (log, "cannot open", "read-only"));
        sc_log_destroy (&log);

    Ownership: the caller owns the object; one per process at a time (zsys
    has one log sender). Destroying it stops the log sender.
    =========================================================================
*/

#ifndef SC_LOG_H_INCLUDED
#define SC_LOG_H_INCLUDED

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _sc_log_t sc_log_t;

//  Sends this process's log lines to endpoint and subscribes to them.
//  Returns NULL if the endpoint cannot be bound.
sc_log_t *
    sc_log_new (const char *endpoint);

void
    sc_log_destroy (sc_log_t **self_p);

//  Drops the lines logged so far
void
    sc_log_clear (sc_log_t *self);

//  True if a line received within a second holds first and, unless NULL,
//  second
bool
    sc_log_says (sc_log_t *self, const char *first, const char *second);

//  The first line received within a second that holds word, or NULL.
//  Caller owns return value (free it with zstr_free or free).
char *
    sc_log_line (sc_log_t *self, const char *word);

#ifdef __cplusplus
}
#endif

#endif
