/*  =========================================================================
    pl_pack - builds one msgpack body: a request to another plugin, a reply,
    an event

    A value on the caller's stack that owns its buffer until
    pl_pack_release. Keys and string values are C strings; a NULL string
    value is packed as nil. For anything else (arrays, nested maps) use
    self->packer with msgpack-c directly, between the helpers.

        pl_pack_t pack;
        pl_pack_init (&pack);
        pl_pack_map (&pack, 2);
        pl_pack_kstr (&pack, "user", name);
        pl_pack_kint (&pack, "at", pl_time_now ());
        pl_call_send (calls, "store.token.touch", pack.buffer.data, pack.buffer.size, ...);
        pl_pack_release (&pack);

    An event for one user's sessions (a read marker, an invitation) goes out
    with pl_pack_deliver_user; an event for many users goes out through the
    host's deliver_users with the pack's buffer.
    =========================================================================
*/

#ifndef PL_PACK_H_INCLUDED
#define PL_PACK_H_INCLUDED

#include "parley_plugin.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    msgpack_sbuffer buffer;         //  owned: the bytes packed so far
    msgpack_packer packer;          //  writes into buffer
} pl_pack_t;

//  An empty body. Release it with pl_pack_release.
void
    pl_pack_init (pl_pack_t *self);

//  Frees the buffer; the pack may be initialized again
void
    pl_pack_release (pl_pack_t *self);

//  Empties the buffer, keeping its memory, to pack the next body
void
    pl_pack_clear (pl_pack_t *self);

//  A map of fields key-value pairs follows
void
    pl_pack_map (pl_pack_t *self, uint32_t fields);

//  A string (text NULL: nil)
void
    pl_pack_str (pl_pack_t *self, const char *text);

//  A string of size bytes, not NUL-terminated (a msgpack string's bytes)
void
    pl_pack_strn (pl_pack_t *self, const char *text, size_t size);

//  A fresh body that starts as a map of fields key-value pairs, the first
//  of them key: value (a store call keyed by its room, its user)
void
    pl_pack_start (pl_pack_t *self, uint32_t fields, const char *key, const char *value);

//  Key-value pairs: the key, then the value
void
    pl_pack_kstr (pl_pack_t *self, const char *key, const char *value);
void
    pl_pack_kint (pl_pack_t *self, const char *key, int64_t value);
void
    pl_pack_kuint (pl_pack_t *self, const char *key, uint64_t value);
void
    pl_pack_kbool (pl_pack_t *self, const char *key, bool value);
//  The time ms as the protocol writes it, "2026-11-25T02:45:51.123Z"
void
    pl_pack_ktime (pl_pack_t *self, const char *key, int64_t ms);

//  Delivers the packed event (a map with a "type") to every session of
//  user; the pack stays the caller's. Returns the host's answer, or -1 when
//  the host has no deliver_users (a test host).
int
    pl_pack_deliver_user (const pl_pack_t *self, const parley_host_t *host,
                          parley_ctx_t *ctx, const char *user);

#ifdef __cplusplus
}
#endif

#endif
