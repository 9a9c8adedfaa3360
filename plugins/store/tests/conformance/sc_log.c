/*  =========================================================================
    sc_log - the log lines of this process, for tests that check what a
    store plugin says
    =========================================================================
*/

#include "sc_log.h"

#include <czmq.h>

struct _sc_log_t {
    zsock_t *sub;                   //  SUB to every log line of this process
};

sc_log_t *
sc_log_new (const char *endpoint)
{
    sc_log_t *self = (sc_log_t *) zmalloc (sizeof (sc_log_t));
    zsys_set_logsender (endpoint);
    self->sub = zsock_new_sub (endpoint, "");
    if (!self->sub) {
        zsys_set_logsender (NULL);
        free (self);
        return NULL;
    }
    zclock_sleep (50);              //  let the subscription reach the publisher
    return self;
}

void
sc_log_destroy (sc_log_t **self_p)
{
    sc_log_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy (&self->sub);
    zsys_set_logsender (NULL);
    free (self);
    *self_p = NULL;
}

void
sc_log_clear (sc_log_t *self)
{
    char *line;
    while ((zsock_events (self->sub) & ZMQ_POLLIN) && (line = zstr_recv (self->sub)))
        zstr_free (&line);
}

char *
sc_log_line (sc_log_t *self, const char *word)
{
    int64_t deadline = zclock_mono () + 1000;
    zpoller_t *poller = zpoller_new (self->sub, NULL);
    char *found = NULL;
    while (!found && zclock_mono () < deadline) {
        if (!zpoller_wait (poller, (int) (deadline - zclock_mono ())))
            break;
        char *line = zstr_recv (self->sub);
        if (line && strstr (line, word))
            found = line;
        else
            zstr_free (&line);
    }
    zpoller_destroy (&poller);
    return found;
}

bool
sc_log_says (sc_log_t *self, const char *first, const char *second)
{
    int64_t deadline = zclock_mono () + 1000;
    bool found = false;
    while (!found && zclock_mono () < deadline) {
        char *line = sc_log_line (self, first);
        found = line && (!second || strstr (line, second));
        zstr_free (&line);
        if (!line)
            break;
    }
    return found;
}
