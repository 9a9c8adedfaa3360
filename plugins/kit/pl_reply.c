/*  =========================================================================
    pl_reply - the reply size limit, and what a reply will weigh as JSON
    =========================================================================
*/

#include "pl_reply.h"
#include "pl_body.h"
#include "pl_service.h"
#include "pl_text.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

pl_reply_budget_t
pl_reply_budget (size_t limit)
{
    pl_reply_budget_t budget = { .limit = limit, .used = 0, .items = 0 };
    return budget;
}

bool
pl_reply_budget_take (pl_reply_budget_t *self, size_t size)
{
    size_t cost = size + (self->items? 1: 0);      //  the comma before it
    if (cost > self->limit - self->used)
        return false;
    self->used += cost;
    self->items++;
    return true;
}

//  The gateway's writer copies valid UTF-8 as it is, writes U+FFFD (three
//  bytes) for a byte that starts no valid sequence, and escapes the ASCII
//  control characters, '"' and '\\'
size_t
pl_reply_json_str_size (const char *bytes, size_t length)
{
    const uint8_t *cursor = (const uint8_t *) bytes;
    size_t size = 2;
    size_t pos = 0;
    while (pos < length) {
        uint8_t byte = cursor [pos];
        if (byte >= 0x80) {
            size_t sequence = pl_text_utf8_sequence (cursor + pos, length - pos);
            size += sequence? sequence: 3;
            pos += sequence? sequence: 1;
            continue;
        }
        if (byte == '"' || byte == '\\' || byte == '\b' || byte == '\f'
        ||  byte == '\n' || byte == '\r' || byte == '\t')
            size += 2;
        else
        if (byte < 0x20)
            size += 6;
        else
            size += 1;
        pos++;
    }
    return size;
}

size_t
pl_reply_json_uint_size (uint64_t value)
{
    size_t digits = 1;
    while (value >= 10) {
        value /= 10;
        digits++;
    }
    return digits;
}

size_t
pl_reply_json_member_size (const char *key, size_t value_size)
{
    return pl_reply_json_str_size (key, strlen (key)) + 1 + value_size;
}

static size_t
s_printed (int length)
{
    return length > 0? (size_t) length: 0;
}

//  A key that is not a string is written as the string of its JSON: a
//  number, true, false or null needs no escape; a map or an array as a key
//  is counted as if every character were escaped (an upper bound)
static size_t
s_key_size (const msgpack_object *key)
{
    if (key->type == MSGPACK_OBJECT_STR)
        return pl_reply_json_str_size (key->via.str.ptr, key->via.str.size);
    if (key->type == MSGPACK_OBJECT_ARRAY || key->type == MSGPACK_OBJECT_MAP)
        return 2 * pl_reply_json_size (key) + 2;
    return pl_reply_json_size (key) + 2;
}

size_t
pl_reply_json_size (const msgpack_object *object)
{
    if (!object)
        return 4;
    char text [40];
    switch (object->type) {
        case MSGPACK_OBJECT_BOOLEAN:
            return object->via.boolean? 4: 5;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            return s_printed (snprintf (text, sizeof (text), "%" PRIu64, object->via.u64));
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            return s_printed (snprintf (text, sizeof (text), "%" PRId64, object->via.i64));
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            //  At most 17 significant digits, a sign, a point and an
            //  exponent: an upper bound is enough for a float
            return isfinite (object->via.f64)? 26: 4;
        case MSGPACK_OBJECT_STR:
            return pl_reply_json_str_size (object->via.str.ptr, object->via.str.size);
        case MSGPACK_OBJECT_ARRAY: {
            size_t size = 2;
            for (uint32_t index = 0; index < object->via.array.size; index++)
                size += (index? 1: 0) + pl_reply_json_size (&object->via.array.ptr [index]);
            return size;
        }
        case MSGPACK_OBJECT_MAP: {
            size_t size = 2;
            for (uint32_t index = 0; index < object->via.map.size; index++) {
                const msgpack_object_kv *pair = &object->via.map.ptr [index];
                size_t key = s_key_size (&pair->key);
                size += (index? 1: 0) + key + 1 + pl_reply_json_size (&pair->val);
            }
            return size;
        }
        default:
            return 4;               //  nil, bin and ext are written as null
    }
}

size_t
pl_reply_json_size_packed (const void *data, size_t size)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    const msgpack_object *object = pl_body_unpack_any (&unpacked, data, size);
    size_t json = object ? pl_reply_json_size (object) : SIZE_MAX;
    msgpack_unpacked_destroy (&unpacked);
    return json;
}

//  {"retry_after_ms": N} and, when unknown, "outcome": "unknown"
static int
s_reply_error_fields (const parley_host_t *host, parley_ctx_t *ctx,
                      parley_request_t **request_p, const char *code, const char *message,
                      int64_t retry_after_ms, bool unknown)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, unknown ? 2 : 1);
    msgpack_pack_str (&packer, 14);
    msgpack_pack_str_body (&packer, "retry_after_ms", 14);
    msgpack_pack_int64 (&packer, retry_after_ms > 0 ? retry_after_ms : 1);
    if (unknown) {
        msgpack_pack_str (&packer, 7);
        msgpack_pack_str_body (&packer, "outcome", 7);
        msgpack_pack_str (&packer, 7);
        msgpack_pack_str_body (&packer, "unknown", 7);
    }
    int rc = host->reply_error_body (ctx, request_p, code, message, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    return rc;
}

int
pl_reply_error_retry (const parley_host_t *host, parley_ctx_t *ctx,
                      parley_request_t **request_p, const char *code, const char *message,
                      int64_t retry_after_ms)
{
    if (host->abi_minor < 1 || !host->reply_error_body)
        return host->reply_error (ctx, request_p, code, message);
    return s_reply_error_fields (host, ctx, request_p, code, message, retry_after_ms, false);
}

int
pl_reply_error_unknown (const parley_host_t *host, parley_ctx_t *ctx,
                        parley_request_t **request_p, const char *code, const char *message,
                        int64_t retry_after_ms)
{
    //  Before minor 3 the host did not pass an outcome on; a host that has
    //  no reply_error_body (a test host) gets the plain error
    if (host->abi_minor < 3 || !host->reply_error_body)
        return pl_reply_error_retry (host, ctx, request_p, code, message, retry_after_ms);
    return s_reply_error_fields (host, ctx, request_p, code, message, retry_after_ms, true);
}

int64_t
pl_reply_retry_ms (int64_t told_ms, int64_t measured_ms)
{
    int64_t retry_ms = told_ms > measured_ms? told_ms: measured_ms;
    return retry_ms > PL_SERVICE_RETRY_MIN_MS? retry_ms: PL_SERVICE_RETRY_MIN_MS;
}

int
pl_reply_store_failed (const parley_host_t *host, parley_ctx_t *ctx,
                       parley_request_t **request_p, const char *code, const char *message,
                       int64_t told_ms, int64_t measured_ms)
{
    if (code && strcmp (code, "unavailable") == 0)
        return pl_reply_error_retry (host, ctx, request_p, "unavailable", message,
                                     pl_reply_retry_ms (told_ms, measured_ms));
    return host->reply_error (ctx, request_p, "internal", message);
}

int
pl_reply_object (const parley_host_t *host, parley_ctx_t *ctx,
                 parley_request_t **request_p, const msgpack_object *body)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_object (&packer, *body);
    int rc = host->reply (ctx, request_p, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    return rc;
}
