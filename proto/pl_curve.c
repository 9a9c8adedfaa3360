/*  =========================================================================
    pl_curve - the CURVE keys that authenticate peers to the broker

    One small class for every program, so that the broker, parley-plugin,
    parley-gw and parley load and apply keys the same way. See pl_curve.h.
    =========================================================================
*/

#include "pl_curve.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

struct _pl_curve_t {
    zcert_t *cert;              //  our own certificate, with its secret key
    char *server_public;        //  a peer's: the broker's public key (Z85)
    zactor_t *auth;             //  the broker's: zauth, checking peers
};

//  Loads a certificate; with need_secret, refuses one without its secret
//  key. Returns NULL with a sentence in error.
static zcert_t *
s_cert_load (const char *path, const char *what, bool need_secret,
             char *error, size_t error_size)
{
    if (!path || !*path) {
        snprintf (error, error_size, "no %s given", what);
        return NULL;
    }
    //  zcert_load says nothing of why it failed: we look first
    char *secret_path = zsys_sprintf ("%s_secret", path);
    bool readable = zsys_file_exists (path) || (secret_path && zsys_file_exists (secret_path));
    zstr_free (&secret_path);
    if (!readable) {
        snprintf (error, error_size, "%s '%s' does not exist (make one with parley-keygen)",
                  what, path);
        return NULL;
    }
    zcert_t *cert = zcert_load (path);
    if (!cert) {
        snprintf (error, error_size, "%s '%s' is not a certificate parley-keygen wrote",
                  what, path);
        return NULL;
    }
    static const byte zero [32] = { 0 };
    if (need_secret && memcmp (zcert_secret_key (cert), zero, sizeof zero) == 0) {
        snprintf (error, error_size, "%s '%s' has no secret key (give the file parley-keygen"
                  " wrote with its '_secret' beside it)", what, path);
        zcert_destroy (&cert);
        return NULL;
    }
    return cert;
}

pl_curve_t *
pl_curve_peer_new (const char *cert_path, const char *broker_cert_path,
                   char *error, size_t error_size)
{
    assert (error && error_size);
    zcert_t *cert = s_cert_load (cert_path, "certificate", true, error, error_size);
    if (!cert)
        return NULL;
    zcert_t *broker = s_cert_load (broker_cert_path, "broker certificate", false,
                                   error, error_size);
    if (!broker) {
        zcert_destroy (&cert);
        return NULL;
    }
    pl_curve_t *self = (pl_curve_t *) zmalloc (sizeof (pl_curve_t));
    assert (self);
    self->cert = cert;
    self->server_public = strdup (zcert_public_txt (broker));
    assert (self->server_public);
    zcert_destroy (&broker);
    return self;
}

pl_curve_t *
pl_curve_broker_new (const char *cert_path, const char *allow_dir,
                     char *error, size_t error_size)
{
    assert (error && error_size);
    struct stat status;
    if (!allow_dir || !*allow_dir) {
        snprintf (error, error_size, "no folder of allowed peer certificates given");
        return NULL;
    }
    if (stat (allow_dir, &status) || !S_ISDIR (status.st_mode)) {
        snprintf (error, error_size, "the folder of allowed peer certificates '%s' is not"
                  " a folder", allow_dir);
        return NULL;
    }
    zcert_t *cert = s_cert_load (cert_path, "certificate", true, error, error_size);
    if (!cert)
        return NULL;
    //  Until zauth is told about the folder it denies every CURVE peer; it
    //  must run before the first tcp bind, or ZeroMQ lets CURVE clients in
    //  with whatever key they hold (no ZAP handler means no check)
    zactor_t *auth = zactor_new (zauth, NULL);
    if (!auth || zstr_sendx (auth, "CURVE", allow_dir, NULL) || zsock_wait (auth)) {
        snprintf (error, error_size, "could not start the peer authenticator (zauth)");
        zactor_destroy (&auth);
        zcert_destroy (&cert);
        return NULL;
    }
    pl_curve_t *self = (pl_curve_t *) zmalloc (sizeof (pl_curve_t));
    assert (self);
    self->cert = cert;
    self->auth = auth;
    return self;
}

void
pl_curve_destroy (pl_curve_t **self_p)
{
    assert (self_p);
    pl_curve_t *self = *self_p;
    if (self) {
        zactor_destroy (&self->auth);
        zcert_destroy (&self->cert);
        free (self->server_public);
        free (self);
        *self_p = NULL;
    }
}

bool
pl_curve_endpoint_needs_keys (const char *endpoint)
{
    return endpoint && strncmp (endpoint, "tcp://", 6) == 0;
}

void
pl_curve_apply (const pl_curve_t *self, zsock_t *socket, const char *endpoint)
{
    assert (socket);
    if (!self || !pl_curve_endpoint_needs_keys (endpoint))
        return;
    zcert_apply (self->cert, socket);
    if (self->auth)
        zsock_set_curve_server (socket, 1);
    else
        zsock_set_curve_serverkey (socket, self->server_public);
}

void
pl_curve_apply_twin (const pl_curve_t *self, zsock_t *socket, const char *endpoint)
{
    assert (socket);
    if (!self || !pl_curve_endpoint_needs_keys (endpoint))
        return;
    zcert_apply (self->cert, socket);
    zsock_set_curve_serverkey (socket, zcert_public_txt (self->cert));
}

const char *
pl_curve_public_txt (const pl_curve_t *self)
{
    assert (self);
    return zcert_public_txt (self->cert);
}
