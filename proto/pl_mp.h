/*  =========================================================================
    pl_mp - private helpers of parley_proto: a growable byte buffer that
    msgpack-c's packer writes into, and a bounded msgpack reader

    The reader never allocates: it walks the bytes in place and refuses any
    container that declares more elements than there are bytes left, so a
    hostile 12-byte frame cannot ask for gigabytes the way msgpack_unpack's
    up-front allocation lets it (NOTES.md). It is also several times faster
    than unpacking into a zone for the small headers of the hot path.

    Not part of the API: include only from the .c files of proto/.
    =========================================================================
*/

#ifndef PL_MP_H_INCLUDED
#define PL_MP_H_INCLUDED

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

//  --------------------------------------------------------------------------
//  Growable buffer

typedef struct {
    uint8_t *data;              //  owned, malloc'ed; NULL until first write
    size_t size;                //  bytes written
    size_t capacity;            //  bytes allocated
    bool failed;                //  an allocation failed; contents are void
} pl_buf_t;

static inline int
pl_buf_reserve (pl_buf_t *self, size_t more)
{
    if (self->failed)
        return -1;
    if (more > SIZE_MAX / 2 - self->size) {
        self->failed = true;
        return -1;
    }
    size_t needed = self->size + more;
    if (needed <= self->capacity)
        return 0;
    size_t capacity = self->capacity ? self->capacity : 256;
    while (capacity < needed)
        capacity *= 2;
    uint8_t *data = (uint8_t *) realloc (self->data, capacity);
    if (!data) {
        self->failed = true;
        return -1;
    }
    self->data = data;
    self->capacity = capacity;
    return 0;
}

static inline int
pl_buf_append (pl_buf_t *self, const void *bytes, size_t size)
{
    if (size == 0)
        return self->failed ? -1 : 0;
    if (pl_buf_reserve (self, size))
        return -1;
    memcpy (self->data + self->size, bytes, size);
    self->size += size;
    return 0;
}

static inline int
pl_buf_append_byte (pl_buf_t *self, uint8_t byte)
{
    if (self->size < self->capacity && !self->failed) {
        self->data [self->size++] = byte;
        return 0;
    }
    return pl_buf_append (self, &byte, 1);
}

static inline void
pl_buf_free (pl_buf_t *self)
{
    free (self->data);
    memset (self, 0, sizeof (*self));
}

//  msgpack_packer write callback
static inline int
pl_buf_packer_write (void *data, const char *bytes, size_t size)
{
    return pl_buf_append ((pl_buf_t *) data, bytes, size);
}

static inline void
pl_put_be32 (uint8_t *where, uint32_t value)
{
    where [0] = (uint8_t) (value >> 24);
    where [1] = (uint8_t) (value >> 16);
    where [2] = (uint8_t) (value >> 8);
    where [3] = (uint8_t) value;
}

//  --------------------------------------------------------------------------
//  Bounded reader

typedef enum {
    PL_MP_NIL,
    PL_MP_BOOL,
    PL_MP_UINT,                 //  any non-negative integer
    PL_MP_INT,                  //  a negative integer
    PL_MP_FLOAT,
    PL_MP_STR,
    PL_MP_BIN,
    PL_MP_EXT,
    PL_MP_ARRAY,
    PL_MP_MAP
} pl_mp_kind_t;

typedef struct {
    pl_mp_kind_t kind;          //  what was read
    bool boolean;               //  PL_MP_BOOL
    uint64_t uint;              //  PL_MP_UINT
    int64_t sint;               //  PL_MP_INT
    double real;                //  PL_MP_FLOAT
    const uint8_t *bytes;       //  STR, BIN, EXT: payload, borrowed from input
    uint32_t length;            //  STR, BIN, EXT: payload size; ARRAY, MAP: count
    int8_t ext_type;            //  PL_MP_EXT
} pl_mp_item_t;

typedef struct {
    const uint8_t *data;        //  borrowed input
    size_t size;                //  its size
    size_t pos;                 //  next byte to read
} pl_mp_reader_t;

static inline void
pl_mp_reader_init (pl_mp_reader_t *self, const uint8_t *data, size_t size)
{
    self->data = data;
    self->size = data ? size : 0;
    self->pos = 0;
}

static inline size_t
pl_mp_remaining (const pl_mp_reader_t *self)
{
    return self->size - self->pos;
}

static inline uint64_t
pl_mp_be (const uint8_t *bytes, int width)
{
    uint64_t value = 0;
    for (int index = 0; index < width; index++)
        value = (value << 8) | bytes [index];
    return value;
}

//  Take width bytes of big-endian length or value; -1 when short
static inline int
pl_mp_take (pl_mp_reader_t *self, int width, uint64_t *value_p)
{
    if (pl_mp_remaining (self) < (size_t) width)
        return -1;
    *value_p = pl_mp_be (self->data + self->pos, width);
    self->pos += width;
    return 0;
}

static inline int
pl_mp_payload (pl_mp_reader_t *self, pl_mp_item_t *item, pl_mp_kind_t kind, uint64_t length)
{
    if (length > pl_mp_remaining (self))
        return -1;
    item->kind = kind;
    item->bytes = self->data + self->pos;
    item->length = (uint32_t) length;
    self->pos += length;
    return 0;
}

//  A container must not declare more elements than bytes remain: every
//  element takes at least one byte.
static inline int
pl_mp_container (pl_mp_reader_t *self, pl_mp_item_t *item, pl_mp_kind_t kind, uint64_t count)
{
    uint64_t elements = kind == PL_MP_MAP ? count * 2 : count;
    if (elements > pl_mp_remaining (self))
        return -1;
    item->kind = kind;
    item->length = (uint32_t) count;
    return 0;
}

//  Read one item (for containers, only the header with its count).
//  Returns 0, or -1 when the bytes are truncated, invalid or too large.
static inline int
pl_mp_next (pl_mp_reader_t *self, pl_mp_item_t *item)
{
    if (self->pos >= self->size)
        return -1;
    uint8_t lead = self->data [self->pos++];
    uint64_t value = 0;

    if (lead <= 0x7f) {
        item->kind = PL_MP_UINT;
        item->uint = lead;
        return 0;
    }
    if (lead >= 0xe0) {
        item->kind = PL_MP_INT;
        item->sint = (int8_t) lead;
        return 0;
    }
    if ((lead & 0xf0) == 0x80)
        return pl_mp_container (self, item, PL_MP_MAP, lead & 0x0f);
    if ((lead & 0xf0) == 0x90)
        return pl_mp_container (self, item, PL_MP_ARRAY, lead & 0x0f);
    if ((lead & 0xe0) == 0xa0)
        return pl_mp_payload (self, item, PL_MP_STR, lead & 0x1f);

    switch (lead) {
        case 0xc0:
            item->kind = PL_MP_NIL;
            return 0;
        case 0xc2:
        case 0xc3:
            item->kind = PL_MP_BOOL;
            item->boolean = lead == 0xc3;
            return 0;
        case 0xc4: case 0xc5: case 0xc6: {
            int width = 1 << (lead - 0xc4);
            if (pl_mp_take (self, width, &value))
                return -1;
            return pl_mp_payload (self, item, PL_MP_BIN, value);
        }
        case 0xc7: case 0xc8: case 0xc9: {
            int width = 1 << (lead - 0xc7);
            if (pl_mp_take (self, width, &value) || pl_mp_remaining (self) < 1)
                return -1;
            item->ext_type = (int8_t) self->data [self->pos++];
            return pl_mp_payload (self, item, PL_MP_EXT, value);
        }
        case 0xca: {
            if (pl_mp_take (self, 4, &value))
                return -1;
            uint32_t bits = (uint32_t) value;
            float real;
            memcpy (&real, &bits, sizeof (real));
            item->kind = PL_MP_FLOAT;
            item->real = real;
            return 0;
        }
        case 0xcb: {
            if (pl_mp_take (self, 8, &value))
                return -1;
            double real;
            memcpy (&real, &value, sizeof (real));
            item->kind = PL_MP_FLOAT;
            item->real = real;
            return 0;
        }
        case 0xcc: case 0xcd: case 0xce: case 0xcf:
            if (pl_mp_take (self, 1 << (lead - 0xcc), &value))
                return -1;
            item->kind = PL_MP_UINT;
            item->uint = value;
            return 0;
        case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
            int width = 1 << (lead - 0xd0);
            if (pl_mp_take (self, width, &value))
                return -1;
            //  Sign-extend from width bytes
            int64_t signed_value;
            if (width == 8)
                memcpy (&signed_value, &value, sizeof (signed_value));
            else {
                uint64_t sign = (uint64_t) 1 << (width * 8 - 1);
                signed_value = (int64_t) ((value ^ sign) - sign);
            }
            if (signed_value >= 0) {
                item->kind = PL_MP_UINT;
                item->uint = (uint64_t) signed_value;
            }
            else {
                item->kind = PL_MP_INT;
                item->sint = signed_value;
            }
            return 0;
        }
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: {
            if (pl_mp_remaining (self) < 1)
                return -1;
            item->ext_type = (int8_t) self->data [self->pos++];
            return pl_mp_payload (self, item, PL_MP_EXT, (uint64_t) 1 << (lead - 0xd4));
        }
        case 0xd9: case 0xda: case 0xdb:
            if (pl_mp_take (self, 1 << (lead - 0xd9), &value))
                return -1;
            return pl_mp_payload (self, item, PL_MP_STR, value);
        case 0xdc: case 0xdd:
            if (pl_mp_take (self, 2 << (lead - 0xdc), &value))
                return -1;
            return pl_mp_container (self, item, PL_MP_ARRAY, value);
        case 0xde: case 0xdf:
            if (pl_mp_take (self, 2 << (lead - 0xde), &value))
                return -1;
            return pl_mp_container (self, item, PL_MP_MAP, value);
        default:
            return -1;          //  0xc1 is never used
    }
}

//  Skip one whole value, however nested, without recursion.
//  Returns 0, or -1 when the bytes are not one complete value.
static inline int
pl_mp_skip (pl_mp_reader_t *self)
{
    uint64_t pending = 1;
    while (pending) {
        pl_mp_item_t item;
        if (pl_mp_next (self, &item))
            return -1;
        pending--;
        if (item.kind == PL_MP_ARRAY)
            pending += item.length;
        else
        if (item.kind == PL_MP_MAP)
            pending += (uint64_t) item.length * 2;
    }
    return 0;
}

#endif
