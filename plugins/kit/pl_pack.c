/*  =========================================================================
    pl_pack - builds one msgpack body
    =========================================================================
*/

#include "pl_pack.h"
#include "pl_body.h"

#include <string.h>

void
pl_pack_init (pl_pack_t *self)
{
    msgpack_sbuffer_init (&self->buffer);
    msgpack_packer_init (&self->packer, &self->buffer, msgpack_sbuffer_write);
}

void
pl_pack_release (pl_pack_t *self)
{
    msgpack_sbuffer_destroy (&self->buffer);
    msgpack_sbuffer_init (&self->buffer);
}

void
pl_pack_clear (pl_pack_t *self)
{
    msgpack_sbuffer_clear (&self->buffer);
}

void
pl_pack_map (pl_pack_t *self, uint32_t fields)
{
    msgpack_pack_map (&self->packer, fields);
}

void
pl_pack_str (pl_pack_t *self, const char *text)
{
    if (text)
        pl_body_pack_str (&self->packer, text);
    else
        msgpack_pack_nil (&self->packer);
}

void
pl_pack_strn (pl_pack_t *self, const char *text, size_t size)
{
    msgpack_pack_str (&self->packer, size);
    msgpack_pack_str_body (&self->packer, text, size);
}

void
pl_pack_start (pl_pack_t *self, uint32_t fields, const char *key, const char *value)
{
    pl_pack_init (self);
    pl_pack_map (self, fields);
    pl_pack_kstr (self, key, value);
}

void
pl_pack_kstr (pl_pack_t *self, const char *key, const char *value)
{
    pl_body_pack_str (&self->packer, key);
    pl_pack_str (self, value);
}

void
pl_pack_kint (pl_pack_t *self, const char *key, int64_t value)
{
    pl_body_pack_str (&self->packer, key);
    msgpack_pack_int64 (&self->packer, value);
}

void
pl_pack_kuint (pl_pack_t *self, const char *key, uint64_t value)
{
    pl_body_pack_str (&self->packer, key);
    msgpack_pack_uint64 (&self->packer, value);
}

void
pl_pack_kbool (pl_pack_t *self, const char *key, bool value)
{
    pl_body_pack_str (&self->packer, key);
    if (value)
        msgpack_pack_true (&self->packer);
    else
        msgpack_pack_false (&self->packer);
}

void
pl_pack_ktime (pl_pack_t *self, const char *key, int64_t ms)
{
    pl_body_pack_str (&self->packer, key);
    pl_body_pack_time (&self->packer, ms);
}

int
pl_pack_deliver_user (const pl_pack_t *self, const parley_host_t *host,
                      parley_ctx_t *ctx, const char *user)
{
    if (!host->deliver_users)
        return -1;
    const char *users [1] = { user };
    return host->deliver_users (ctx, users, 1, self->buffer.data, self->buffer.size);
}
