/*  =========================================================================
    sm_conn - store-mongo's instance: the client, its collections, the
    indexes, and what the server's errors mean (unreachable, duplicate key)

    sm_store_new parses option uri, creates the one client and creates the
    indexes (or, if the server is down, leaves that to the first batch that
    reaches it). Every call blocks the instance's own thread.
    =========================================================================
*/

#ifndef SM_CONN_H_INCLUDED
#define SM_CONN_H_INCLUDED

#include "sm_store.h"

//  A new instance on option uri (default SM_DEFAULT_URI). Returns NULL after
//  logging why when the URI is unusable or the server refuses us; a server
//  that cannot be reached is not a failure. Caller owns the instance.
sm_store_t *
    sm_store_new (parley_ctx_t *ctx, const parley_host_t *host);

//  Destroys the instance and nullifies the reference. Safe to call twice.
void
    sm_store_destroy (sm_store_t **self_p);

//  Pings the server and creates the indexes, once. Returns 0, or -1 with
//  error set.
int
    sm_prepare (sm_store_t *self, bson_error_t *error);

//  store.info: the backend and the schema version. Returns 0.
int
    sm_run_info (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                 bson_error_t *error);

//  True if error says the server is out of reach: no server to select, a
//  broken or timed-out connection, a failed handshake or login
bool
    sm_is_unreachable (const bson_error_t *error);

//  True if error is a unique index's refusal (a duplicate key)
bool
    sm_is_duplicate_key (const bson_error_t *error);

//  The server answered: says so once, if it had been unreachable
void
    sm_mark_reachable (sm_store_t *self);

//  An operation failed. If the server is out of reach the rest of the batch
//  is not tried; the change is logged once. Other failures are logged each.
void
    sm_note_failure (sm_store_t *self, const char *what, const bson_error_t *error);

//  Fails pending as unavailable, with error's reason
void
    sm_fail_unavailable (sm_store_t *self, sm_pending_t *pending, const bson_error_t *error);

#endif
