/*  =========================================================================
    pl_curve - the CURVE keys that authenticate peers to the broker

    Every process that talks to the broker over tcp:// proves who it is with
    a CURVE key pair (ZeroMQ's CurveZMQ, through czmq's zcert and zauth):

    - the broker has its own certificate and a folder of the public
      certificates of the peers it accepts; it runs the zauth actor that
      answers ZeroMQ's ZAP requests from that folder, so a peer whose key is
      not there never completes its handshake and never reaches the broker's
      loop (no HELLO, nothing routed);
    - a peer (parley-plugin, parley-gw) has its own certificate and the
      broker's public certificate.

    Certificates are in zcert's text format, as parley-keygen writes them:
    FILE holds the public key, FILE_secret both keys. Given FILE, the secret
    is read from FILE_secret when it exists.

    Only tcp:// endpoints use the keys: ipc:// is guarded by the socket
    file's permissions and inproc:// never leaves the process.

        char error [256];
        pl_curve_t *keys = pl_curve_peer_new ("gw.cert", "broker.cert",
                                              error, sizeof error);
        ...
        pl_curve_apply (keys, dealer, "tcp://broker:7700");   //  before connect
        zsock_connect (dealer, "tcp://broker:7700");
        ...
        pl_curve_destroy (&keys);

    Ownership: the caller owns a pl_curve_t; sockets it was applied to do not
    hold on to it (ZeroMQ copies the keys). The broker's keys own the zauth
    actor: destroy them only after the sockets they guard.
    =========================================================================
*/

#ifndef PL_CURVE_H_INCLUDED
#define PL_CURVE_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _pl_curve_t pl_curve_t;

//  A peer's keys: its own certificate (with its secret key) and the broker's
//  public certificate. Returns NULL with a sentence in error when a file is
//  missing, unreadable, or lacks the key it must hold. Caller owns return value.
pl_curve_t *
    pl_curve_peer_new (const char *cert_path, const char *broker_cert_path,
                       char *error, size_t error_size);

//  The broker's keys: its certificate (with its secret key) and the folder
//  of the public certificates of allowed peers. Starts the zauth actor
//  (one per process: ZeroMQ has one ZAP endpoint) that checks every CURVE
//  handshake against the folder; a certificate added to the folder later is
//  seen without a restart. Returns NULL with a sentence in error. Caller
//  owns return value.
pl_curve_t *
    pl_curve_broker_new (const char *cert_path, const char *allow_dir,
                         char *error, size_t error_size);

//  Destroys the keys (and stops zauth for the broker's); nullifies the
//  reference. Safe on NULL.
void
    pl_curve_destroy (pl_curve_t **self_p);

//  Sets the socket's CURVE options for endpoint when endpoint is tcp://,
//  before zsock_connect or zsock_bind; does nothing for other endpoints or
//  when self is NULL. The broker's keys make the socket a CURVE server, a
//  peer's keys a CURVE client of the broker.
void
    pl_curve_apply (const pl_curve_t *self, zsock_t *socket, const char *endpoint);

//  The broker's keys as a CURVE client of a broker with the same key pair:
//  the SUB of a standby pair's state link (broker/br_bstar.h), for endpoint
//  when it is tcp://. The other broker's zauth must allow this public key.
void
    pl_curve_apply_twin (const pl_curve_t *self, zsock_t *socket, const char *endpoint);

//  True if endpoint is a tcp:// endpoint, the kind that needs keys
bool
    pl_curve_endpoint_needs_keys (const char *endpoint);

//  The public key of these keys' own certificate, 40 characters of Z85
const char *
    pl_curve_public_txt (const pl_curve_t *self);

#ifdef __cplusplus
}
#endif

#endif
