/*  =========================================================================
    pl_body - reading and writing the msgpack maps of request and reply bodies

    For plugins: a body arrives as a msgpack map (host->request_body, the
    body of on_reply) and answers are packed with msgpack-c. These read one
    field with its type checked, never asserting on what came from outside.
    =========================================================================
*/

#ifndef PL_BODY_H_INCLUDED
#define PL_BODY_H_INCLUDED

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void
pl_body_pack_str (msgpack_packer *packer, const char *text);

void
pl_body_pack_time (msgpack_packer *packer, int64_t ms);

//  Finds a field of a msgpack map. Returns it, or NULL if absent.
const msgpack_object *
pl_body_field (const msgpack_object *map, const char *name);

//  A string field as a new C string. Returns 1 and sets *text_p (caller
//  owns it), 0 when absent or nil, -1 when mistyped, holding a NUL, or out
//  of memory.
int
pl_body_str (const msgpack_object *map, const char *name, char **text_p);

//  A client's text field (a message, an edit): as pl_body_str, but a string
//  holding a NUL returns -2 rather than -1, so that the caller answers it
//  as a text it refuses (invalid_text), not as a mistyped field
//  (bad_request). Returns 1 and sets *text_p (caller owns it), 0 when
//  absent or nil, -1 when not a string or out of memory, -2 with a NUL.
int
pl_body_text (const msgpack_object *map, const char *name, char **text_p);

//  An unsigned integer field. Returns 1 and sets *value_p, 0 when absent or
//  nil, -1 when mistyped or negative.
int
pl_body_uint (const msgpack_object *map, const char *name, uint64_t *value_p);

int64_t
pl_body_int (const msgpack_object *map, const char *name);

bool
pl_body_bool (const msgpack_object *map, const char *name);

//  Copies a string field into text (at most size - 1 bytes); "" when absent
void
pl_body_copy (const msgpack_object *map, const char *name, char *text, size_t size);

//  A string field, borrowed from the map: its bytes (not NUL-terminated)
//  and size. Returns 1 and sets *text_p and *size_p, 0 when absent or nil,
//  -1 when not a string.
int
pl_body_strn (const msgpack_object *map, const char *name, const char **text_p,
              size_t *size_p);

//  An integer field that fits int64. Returns 1 and sets *value_p, 0 when
//  absent or nil, -1 when mistyped or out of range.
int
pl_body_int64 (const msgpack_object *map, const char *name, int64_t *value_p);

//  Unpacks a body (a request's, an answer's) into unpacked, which the
//  caller initialized with msgpack_unpacked_init and destroys. Returns the
//  map, or NULL when data is not one msgpack map. Bytes after the map are
//  left. Every unpacking of a body goes through here (or _any): its zone
//  starts small, where msgpack_unpack_next's takes 8 KiB a time.
const msgpack_object *
pl_body_unpack (msgpack_unpacked *unpacked, const void *data, size_t size);

//  The same for one msgpack object of any type
const msgpack_object *
pl_body_unpack_any (msgpack_unpacked *unpacked, const void *data, size_t size);

#ifdef __cplusplus
}
#endif

#endif
