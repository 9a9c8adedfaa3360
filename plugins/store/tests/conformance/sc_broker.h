/*  =========================================================================
    sc_broker - a fake broker that drives one store plugin through the host

    Binds a ROUTER on an inproc endpoint of its own, starts the plugin with
    br_host_start against it, plays the broker's side of proto/ENVELOPE.md
    (HELLO -> WELCOME, REQUEST out, REPLY back), and nothing more: no routing,
    no sessions. Used by the store conformance suite, the stores' own tests
    and store-sqlite's benchmark, so that each speaks to a plugin exactly as
    plugins do through host->call.

        sc_broker_t *broker = sc_broker_new ();
        sc_broker_start (broker, "build/plugins/store-sqlite.so", options, 1, error, sizeof error);
        sc_reply_t *reply = sc_broker_call (broker, "store.info", NULL, 0);
        ...
        sc_reply_destroy (&reply);
        sc_broker_destroy (&broker);
    =========================================================================
*/

#ifndef SC_BROKER_H_INCLUDED
#define SC_BROKER_H_INCLUDED

#include "pl_pack.h"

#include <czmq.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  One REPLY from the plugin
typedef struct {
    uint64_t rid;                   //  the rid of the request it answers
    char *code;                     //  owned; NULL for ok
    char *message;                  //  owned; NULL for ok
    char *data;                     //  owned: the body's bytes, which body points into
    msgpack_unpacked body;          //  the result map (an empty map if none)
    bool body_valid;                //  body unpacked into a map
} sc_reply_t;

typedef struct _sc_broker_t sc_broker_t;

//  Creates the fake broker, its ROUTER bound. Caller owns return value.
sc_broker_t *
    sc_broker_new (void);

//  Stops the plugin if running and destroys the broker; nullifies the reference.
void
    sc_broker_destroy (sc_broker_t **self_p);

//  Starts the plugin with options ("NAME.KEY=VALUE", copied by the host),
//  waits for its HELLO and welcomes it. Returns 0, or -1 with a sentence in
//  error (the host's refusal, or no HELLO within 5 s).
int
    sc_broker_start (sc_broker_t *self, const char *plugin_path,
                     const char *const *options, size_t option_count,
                     char *error, size_t error_size);

//  A new broker with the plugin started (sc_broker_new, sc_broker_start),
//  or NULL when the plugin refused to start. Caller owns return value.
sc_broker_t *
    sc_broker_new_started (const char *plugin_path, const char *const *options,
                           size_t option_count);

//  Stops the plugin (its destroy runs, the host says BYE). Safe if stopped.
void
    sc_broker_stop (sc_broker_t *self);

//  The route prefix and flags the plugin announced in HELLO (its first route)
const char *
    sc_broker_route_prefix (sc_broker_t *self);
uint32_t
    sc_broker_route_flags (sc_broker_t *self);

//  Sends one REQUEST; body is a msgpack map or NULL. Returns the rid used,
//  or 0 if it could not be queued.
uint64_t
    sc_broker_send (sc_broker_t *self, const char *type, const void *body, size_t size);

//  The address stamped on the requests sent from now on (NULL: none, as
//  for a plugin's call); "admin:NAME" plays parleyctl (pl_admin.h)
void
    sc_broker_set_address (sc_broker_t *self, const char *address);

//  Receives the next REPLY, skipping heartbeats and the like. Returns NULL
//  after timeout_ms. Caller owns return value.
sc_reply_t *
    sc_broker_recv (sc_broker_t *self, int timeout_ms);

//  Sends one request and waits up to 10 s for its reply. Caller owns
//  return value; NULL on timeout or a reply to another rid.
sc_reply_t *
    sc_broker_call (sc_broker_t *self, const char *type, const void *body, size_t size);

//  Starts a request body (the kit's pl_pack_t): a map of fields, packed
//  next with pl_pack_k* (or msgpack-c on body->packer)
void
    sc_body_init (pl_pack_t *body, uint32_t fields);

//  Sends the body (NULL for none) as sc_broker_send/sc_broker_call do, and
//  destroys it
uint64_t
    sc_broker_send_body (sc_broker_t *self, const char *type, pl_pack_t *body);
sc_reply_t *
    sc_broker_call_body (sc_broker_t *self, const char *type, pl_pack_t *body);

//  Destroys a reply and nullifies the reference
void
    sc_reply_destroy (sc_reply_t **self_p);

//  A field of the reply's body map, or NULL. Borrowed from the reply.
const msgpack_object *
    sc_reply_field (sc_reply_t *self, const char *key);

//  A field of a msgpack map object, or NULL. Borrowed from the map.
const msgpack_object *
    sc_map_field (const msgpack_object *map, const char *key);

//  True if object is a string equal to value
bool
    sc_object_streq (const msgpack_object *object, const char *value);

//  Packing helpers for request bodies: a key and its value
void
    sc_pack_kstr (msgpack_packer *packer, const char *key, const char *value);
void
    sc_pack_kint (msgpack_packer *packer, const char *key, int64_t value);
void
    sc_pack_key (msgpack_packer *packer, const char *key);

//  The body of a timeline change from alice (schema version 9), for the
//  stores' own tests: store.msg.append of one entry to room, or with room
//  NULL store.pm.append of one message to bob; a message when target is 0,
//  else an edit with text, or a deletion when text is NULL. Returns the
//  request type; the body goes into buffer (initialized by the caller).
const char *
    sc_pack_change (msgpack_sbuffer *buffer, const char *room, int64_t seq, int64_t target,
                    const char *text, int64_t ts);

#ifdef __cplusplus
}
#endif

#endif
