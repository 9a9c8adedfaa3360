/*  =========================================================================
    pl_brokers - the broker endpoints a peer knows, and the one it talks to

    See pl_brokers.h. A list of at most PL_BROKERS_MAX strings and a cursor.
    =========================================================================
*/

#include "pl_brokers.h"
#include "pl_curve.h"

#include <errno.h>
#include <string.h>

struct _pl_brokers_t {
    char *endpoints [PL_BROKERS_MAX];   //  owned
    size_t count;
    size_t current;                     //  index of the endpoint in use
};

void
pl_brokers_destroy (pl_brokers_t **self_p)
{
    assert (self_p);
    pl_brokers_t *self = *self_p;
    if (self) {
        for (size_t index = 0; index < self->count; index++)
            free (self->endpoints [index]);
        free (self);
        *self_p = NULL;
    }
}

//  Adds one item of the list, checked. Returns -1 with a sentence in error.
static int
s_add (pl_brokers_t *self, const char *item, size_t length, char *error, size_t error_size)
{
    if (length == 0) {
        snprintf (error, error_size, "a broker endpoint list has an empty item"
                  " (endpoints are separated by single commas)");
        return -1;
    }
    if (self->count == PL_BROKERS_MAX) {
        snprintf (error, error_size, "more than %d broker endpoints", PL_BROKERS_MAX);
        return -1;
    }
    char *endpoint = strndup (item, length);
    assert (endpoint);
    self->endpoints [self->count++] = endpoint;
    if (!strstr (endpoint, "://")) {
        snprintf (error, error_size, "'%s' is not a broker endpoint (tcp://HOST:PORT or"
                  " ipc://PATH)", endpoint);
        return -1;
    }
    if (pl_curve_endpoint_needs_keys (endpoint)
    !=  pl_curve_endpoint_needs_keys (self->endpoints [0])) {
        snprintf (error, error_size, "broker endpoints '%s' and '%s': either all are tcp://"
                  " or none (a peer's CURVE keys hold for all of them)",
                  self->endpoints [0], endpoint);
        return -1;
    }
    return 0;
}

pl_brokers_t *
pl_brokers_new (const char *list, char *error, size_t error_size)
{
    assert (error && error_size);
    pl_brokers_t *self = (pl_brokers_t *) zmalloc (sizeof (pl_brokers_t));
    assert (self);
    const char *item = list ? list : "";
    while (true) {
        size_t length = strcspn (item, ",");
        if (s_add (self, item, length, error, error_size)) {
            pl_brokers_destroy (&self);
            return NULL;
        }
        if (!item [length])
            break;
        item += length + 1;
    }
    return self;
}

size_t
pl_brokers_size (pl_brokers_t *self)
{
    assert (self);
    return self->count;
}

const char *
pl_brokers_current (pl_brokers_t *self)
{
    assert (self);
    return self->endpoints [self->current];
}

int
pl_brokers_connect (pl_brokers_t *self, zsock_t *dealer)
{
    assert (self && dealer);
    return zsock_connect (dealer, "%s", self->endpoints [self->current]);
}

int
pl_brokers_move (pl_brokers_t *self, zsock_t *dealer)
{
    assert (self && dealer);
    if (self->count < 2)
        return 0;
    //  Disconnecting drops what is queued for the old broker: it is either
    //  dead or ignores us, and the new one must start from a hello
    if (zsock_disconnect (dealer, "%s", self->endpoints [self->current]))
        zsys_warning ("could not disconnect from the broker at %s: %s",
                      self->endpoints [self->current], zmq_strerror (errno));
    self->current = (self->current + 1) % self->count;
    if (zsock_connect (dealer, "%s", self->endpoints [self->current])) {
        zsys_error ("cannot connect to the broker at %s: %s",
                    self->endpoints [self->current], zmq_strerror (errno));
        return -1;
    }
    return 1;
}

char *
pl_brokers_join (const char *const *lists, size_t count)
{
    char *joined = NULL;
    for (size_t index = 0; index < count; index++) {
        char *longer = zsys_sprintf ("%s%s%s", joined ? joined : "", joined ? "," : "",
                                     lists [index]);
        assert (longer);
        free (joined);
        joined = longer;
    }
    return joined;
}
