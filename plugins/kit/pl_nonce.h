/*  =========================================================================
    pl_nonce - the recent nonces of one key (a room, a conversation): which
    (sender, nonce) was stored at which seq and time

    PROTOCOL.md 1.1, "Outcomes, retries and idempotency": a msg.send or
    pm.send that repeats a nonce its user already sent to the same room or
    conversation is answered with the first message's seq and ts, and
    stores nothing. The store keeps every nonce under a unique index (the
    truth, across restarts); this map is the lane's memory of the nonces it
    stored or learnt lately, so that a repeat to a running server costs no
    store trip. It is bounded: past max entries the oldest one goes (the
    store still knows it). Senders compare without regard to ASCII case.

    Memory is taken on the first put, all of it (128 bytes a slot, the name
    in the slot): a key that never sees a nonce costs a pointer, and a put
    or a lookup allocates nothing. A max of 0 keeps nothing (every lookup
    misses). A user's name longer than PL_USERNAME_MAX (no valid user's)
    is not remembered: its lookups miss, and the store answers them.

    Ownership: the map owns its entries; names and nonces are copied.

        pl_nonce_t *nonces = pl_nonce_new (PL_NONCE_CACHE_DEFAULT);
        if (pl_nonce_get (nonces, "alice", "n-1", &seq, &ts)) ...a repeat
        pl_nonce_put (nonces, "alice", "n-1", 42, now);
        pl_nonce_destroy (&nonces);
    =========================================================================
*/

#ifndef PL_NONCE_H_INCLUDED
#define PL_NONCE_H_INCLUDED

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The nonces one key remembers, by default
#define PL_NONCE_CACHE_DEFAULT  1024

typedef struct _pl_nonce_t pl_nonce_t;

//  Creates an empty map of at most max entries. Caller owns return value;
//  NULL if out of memory.
pl_nonce_t *
    pl_nonce_new (size_t max);

//  Destroys the map and nullifies the reference
void
    pl_nonce_destroy (pl_nonce_t **self_p);

//  Remembers that user's nonce was stored at seq and ts (the oldest entry
//  goes when the map is full; a nonce it has already is updated). Returns
//  0, or -1 if out of memory (the map then simply does not know it).
int
    pl_nonce_put (pl_nonce_t *self, const char *user, const char *nonce, uint64_t seq,
                  int64_t ts);

//  True, with the stored seq and ts, when the map knows user's nonce
bool
    pl_nonce_get (pl_nonce_t *self, const char *user, const char *nonce, uint64_t *seq_p,
                  int64_t *ts_p);

//  Forgets every entry (a room deleted: its nonces with it)
void
    pl_nonce_purge (pl_nonce_t *self);

//  The entries it holds
size_t
    pl_nonce_size (pl_nonce_t *self);

//  True when nonce is one the protocol allows: 1 to PL_NONCE_MAX
//  characters of [A-Za-z0-9_-]
bool
    pl_nonce_valid (const char *nonce);

//  Reads the optional field 'nonce' of a request's map into *nonce_p
//  (caller owns it). Returns 0 when absent (*nonce_p NULL), 1 when read
//  and valid, -1 when it is not a valid nonce (*nonce_p NULL).
int
    pl_nonce_read (const msgpack_object *map, char **nonce_p);

#ifdef __cplusplus
}
#endif

#endif
