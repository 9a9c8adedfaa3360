/*  =========================================================================
    pl_body - reading and writing the msgpack maps of request and reply bodies
    =========================================================================
*/

#include "pl_body.h"
#include "pl_time.h"

#include <stdlib.h>
#include <string.h>

void
pl_body_pack_str (msgpack_packer *packer, const char *text)
{
    size_t size = strlen (text);
    msgpack_pack_str (packer, size);
    msgpack_pack_str_body (packer, text, size);
}

void
pl_body_pack_time (msgpack_packer *packer, int64_t ms)
{
    char text [PL_TIME_ISO8601_SIZE];
    pl_time_iso8601 (ms, text, sizeof text);
    pl_body_pack_str (packer, text);
}

//  Finds a field of a msgpack map. Returns it, or NULL if absent.
const msgpack_object *
pl_body_field (const msgpack_object *map, const char *name)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t size = strlen (name);
    for (uint32_t index = 0; index < map->via.map.size; index++) {
        const msgpack_object *key = &map->via.map.ptr [index].key;
        if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == size
        &&  memcmp (key->via.str.ptr, name, size) == 0)
            return &map->via.map.ptr [index].val;
    }
    return NULL;
}

//  A string field as a new C string. Returns 1 and sets *text_p (caller
//  owns it), 0 when absent or nil, -1 when mistyped, holding a NUL, or out
//  of memory.
int
pl_body_str (const msgpack_object *map, const char *name, char **text_p)
{
    *text_p = NULL;
    const msgpack_object *value = pl_body_field (map, name);
    if (!value || value->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (value->type != MSGPACK_OBJECT_STR
    ||  memchr (value->via.str.ptr, 0, value->via.str.size))
        return -1;
    char *text = (char *) malloc (value->via.str.size + 1);
    if (!text)
        return -1;
    memcpy (text, value->via.str.ptr, value->via.str.size);
    text [value->via.str.size] = 0;
    *text_p = text;
    return 1;
}

int
pl_body_text (const msgpack_object *map, const char *name, char **text_p)
{
    *text_p = NULL;
    const msgpack_object *value = pl_body_field (map, name);
    if (value && value->type == MSGPACK_OBJECT_STR
    &&  memchr (value->via.str.ptr, 0, value->via.str.size))
        return -2;
    return pl_body_str (map, name, text_p);
}

//  An unsigned integer field. Returns 1 and sets *value_p, 0 when absent or
//  nil, -1 when mistyped or negative.
int
pl_body_uint (const msgpack_object *map, const char *name, uint64_t *value_p)
{
    const msgpack_object *value = pl_body_field (map, name);
    if (!value || value->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (value->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -1;
    *value_p = value->via.u64;
    return 1;
}

int64_t
pl_body_int (const msgpack_object *map, const char *name)
{
    const msgpack_object *value = pl_body_field (map, name);
    if (value && value->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (int64_t) value->via.u64;
    if (value && value->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return value->via.i64;
    return 0;
}

bool
pl_body_bool (const msgpack_object *map, const char *name)
{
    const msgpack_object *value = pl_body_field (map, name);
    return value && value->type == MSGPACK_OBJECT_BOOLEAN && value->via.boolean;
}

//  Copies a string field into text (at most size - 1 bytes); "" when absent
void
pl_body_copy (const msgpack_object *map, const char *name, char *text, size_t size)
{
    const msgpack_object *value = pl_body_field (map, name);
    text [0] = 0;
    if (value && value->type == MSGPACK_OBJECT_STR) {
        size_t length = value->via.str.size < size - 1? value->via.str.size: size - 1;
        memcpy (text, value->via.str.ptr, length);
        text [length] = 0;
    }
}

int
pl_body_strn (const msgpack_object *map, const char *name, const char **text_p,
              size_t *size_p)
{
    const msgpack_object *value = pl_body_field (map, name);
    if (!value || value->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (value->type != MSGPACK_OBJECT_STR)
        return -1;
    *text_p = value->via.str.ptr;
    *size_p = value->via.str.size;
    return 1;
}

int
pl_body_int64 (const msgpack_object *map, const char *name, int64_t *value_p)
{
    const msgpack_object *value = pl_body_field (map, name);
    if (!value || value->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (value->type == MSGPACK_OBJECT_POSITIVE_INTEGER && value->via.u64 <= INT64_MAX)
        *value_p = (int64_t) value->via.u64;
    else
    if (value->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *value_p = value->via.i64;
    else
        return -1;
    return 1;
}

//  The first chunk of an unpacked body's zone. msgpack_unpack_next takes
//  8 KiB for every body (MSGPACK_ZONE_CHUNK_SIZE): past glibc's per-thread
//  cache, so each request paid malloc's slow path and, freed, a
//  consolidation of the thread's small chunks. A body's objects (its
//  strings stay in the body) take a few hundred bytes; a larger one grows
//  the zone by chunks of its own.
#define PL_BODY_ZONE_CHUNK  960

const msgpack_object *
pl_body_unpack_any (msgpack_unpacked *unpacked, const void *data, size_t size)
{
    if (unpacked->zone)
        msgpack_zone_free (unpacked->zone);
    unpacked->zone = NULL;
    if (!data || !size || !(unpacked->zone = msgpack_zone_new (PL_BODY_ZONE_CHUNK)))
        return NULL;
    //  msgpack_unpack ("obsolete" in msgpack-c 4, still exported) is
    //  msgpack_unpack_next with the caller's zone; EXTRA_BYTES: the first
    //  object, as msgpack_unpack_next answers it
    size_t offset = 0;
    msgpack_unpack_return rc = msgpack_unpack ((const char *) data, size, &offset,
                                               unpacked->zone, &unpacked->data);
    return rc == MSGPACK_UNPACK_SUCCESS || rc == MSGPACK_UNPACK_EXTRA_BYTES
         ? &unpacked->data : NULL;
}

const msgpack_object *
pl_body_unpack (msgpack_unpacked *unpacked, const void *data, size_t size)
{
    const msgpack_object *object = pl_body_unpack_any (unpacked, data, size);
    return object && object->type == MSGPACK_OBJECT_MAP ? object : NULL;
}
