/*  =========================================================================
    pl_brokers - the broker endpoints a peer knows, and the one it talks to

    A gateway or a plugin process may be given the two brokers of a standby
    pair (proto/ENVELOPE.md, "Standby broker"): "tcp://a:7700,tcp://b:7700",
    or the option repeated. The peer keeps one DEALER connected to one of
    them at a time; when its heartbeats say that broker is dead (or, not yet
    welcomed, that it says nothing: a passive broker ignores peers), it moves
    the DEALER to the next one and says hello there.

        char error [256];
        pl_brokers_t *brokers = pl_brokers_new ("tcp://a:7700,tcp://b:7700",
                                                error, sizeof error);
        pl_curve_apply (keys, dealer, pl_brokers_current (brokers));
        pl_brokers_connect (brokers, dealer);
        ...
        pl_brokers_move (brokers, dealer);      //  now on tcp://b:7700
        pl_brokers_destroy (&brokers);

    With one endpoint, pl_brokers_move changes nothing: ZeroMQ reconnects to
    a broker that restarts on the same endpoint, as always.
    =========================================================================
*/

#ifndef PL_BROKERS_H_INCLUDED
#define PL_BROKERS_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The most endpoints a peer takes (a standby pair needs two)
#define PL_BROKERS_MAX  8

typedef struct _pl_brokers_t pl_brokers_t;

//  Parses list: endpoints separated by commas. Refuses an empty list or
//  item, more than PL_BROKERS_MAX, an endpoint without "://", and tcp://
//  mixed with ipc:// or inproc:// (the CURVE keys are the socket's, for
//  every endpoint alike). Returns NULL with a sentence in error. Caller
//  owns return value.
pl_brokers_t *
    pl_brokers_new (const char *list, char *error, size_t error_size);

//  Destroys the list; nullifies the reference. Safe on NULL.
void
    pl_brokers_destroy (pl_brokers_t **self_p);

//  The number of endpoints
size_t
    pl_brokers_size (pl_brokers_t *self);

//  The endpoint the peer talks to now (owned by self)
const char *
    pl_brokers_current (pl_brokers_t *self);

//  Connects dealer to the current endpoint. Returns 0, or -1 (errno set).
int
    pl_brokers_connect (pl_brokers_t *self, zsock_t *dealer);

//  Moves dealer from the current endpoint to the next (round the list).
//  Returns 1 when it moved, 0 with a single endpoint (nothing to do), -1
//  when the next could not be connected (it stays the current one: the
//  next move tries the one after).
int
    pl_brokers_move (pl_brokers_t *self, zsock_t *dealer);

//  Joins several lists (a repeated --broker) into one, comma-separated.
//  Returns NULL for no lists. Caller owns return value (free).
char *
    pl_brokers_join (const char *const *lists, size_t count);

#ifdef __cplusplus
}
#endif

#endif
