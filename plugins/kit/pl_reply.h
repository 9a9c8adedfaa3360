/*  =========================================================================
    pl_reply - the reply size limit, and what a reply will weigh as JSON

    PROTOCOL.md 1.1 ("Outcomes"): no reply is lost for its size; every reply
    a client receives stays under 1 MiB, and a list that could pass that
    stops early at a whole item and says so (`more`, `next`). The gateway
    writes a plugin's msgpack reply as JSON, which can be larger than the
    msgpack (quotes, key names, escapes: a control character takes six
    bytes), so a plugin measures a list by the JSON it will become, with
    the same rules as the gateway's writer (proto/pl_transcode.c).

    A budget is a plain value on the caller's stack: no allocation.

        pl_reply_budget_t budget = pl_reply_budget (PL_REPLY_LIST_BUDGET);
        for (each item)
            if (!pl_reply_budget_take (&budget, pl_reply_json_size (item)))
                break;          //  and answer more/next
    =========================================================================
*/

#ifndef PL_REPLY_H_INCLUDED
#define PL_REPLY_H_INCLUDED

#include "parley_plugin.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  A reply a client receives stays under this, as JSON (PROTOCOL.md 1.1)
#define PL_REPLY_MAX            (1024 * 1024)

//  What the list of one reply may take, in JSON bytes: the limit less room
//  for the rest of the reply (type, id, the other fields, the envelope)
#define PL_REPLY_LIST_BUDGET    (PL_REPLY_MAX - 64 * 1024)

typedef struct {
    size_t limit;                   //  bytes the items may take in all
    size_t used;                    //  bytes taken so far
    size_t items;                   //  items taken so far
} pl_reply_budget_t;

//  A budget of limit bytes, nothing taken
pl_reply_budget_t
pl_reply_budget (size_t limit);

//  Takes an item of size bytes (and its separator) if it fits. Returns
//  true when taken, false when it would pass the limit (nothing taken).
bool
pl_reply_budget_take (pl_reply_budget_t *self, size_t size);

//  Bytes of a string written as a JSON string, quotes included
size_t
pl_reply_json_str_size (const char *bytes, size_t length);

//  Bytes of a msgpack object written as JSON by the gateway; NULL is 4
//  ("null"). Nesting is bounded by the unpacked object itself.
size_t
pl_reply_json_size (const msgpack_object *object);

//  Bytes of an unsigned integer written as JSON
size_t
pl_reply_json_uint_size (uint64_t value);

//  Bytes of one member of a JSON object, "key":value, given the value's own
//  size (no comma: the caller counts one between members). With these two
//  and pl_reply_json_str_size a plugin measures a reply it builds from
//  known fields without packing it first.
size_t
pl_reply_json_member_size (const char *key, size_t value_size);

//  Bytes of one packed msgpack object (the first of data) written as JSON
//  by the gateway; SIZE_MAX when data does not unpack, so that a budget
//  never takes it. For an item a plugin has just packed into its reply.
size_t
pl_reply_json_size_packed (const void *data, size_t size);

//  Answers an error that tells the client when to try again (PROTOCOL.md
//  1.1 "Outcomes": rate_limited and unavailable carry retry_after_ms, an
//  integer). Sends {"retry_after_ms": N} through host->reply_error_body
//  (ABI minor 1); on an older host, a plain reply_error. Takes the request
//  back as reply_error does; returns what the host returned.
int
pl_reply_error_retry (const parley_host_t *host, parley_ctx_t *ctx,
                      parley_request_t **request_p, const char *code, const char *message,
                      int64_t retry_after_ms);

//  The same with "outcome": "unknown" (PROTOCOL.md 1.1 "Outcomes"): the
//  request failed while a part of the server had it, and may or may not
//  have taken effect (a store write whose answer was lost). Only on a host
//  of minor 3 or later, which passes the outcome on; before, as
//  pl_reply_error_retry.
int
pl_reply_error_unknown (const parley_host_t *host, parley_ctx_t *ctx,
                        parley_request_t **request_p, const char *code, const char *message,
                        int64_t retry_after_ms);

//  retry_after_ms for a request refused because a store call failed: the
//  larger of what the store's answer said (told_ms; 0 when it said
//  nothing) and measured_ms (the plugin's own measure of such calls,
//  pl_service), at least PL_SERVICE_RETRY_MIN_MS
int64_t
pl_reply_retry_ms (int64_t told_ms, int64_t measured_ms);

//  Answers a request whose store call failed with code (NULL: a malformed
//  answer): unavailable with message and pl_reply_retry_ms (told_ms,
//  measured_ms) when code is unavailable, else internal with message
int
pl_reply_store_failed (const parley_host_t *host, parley_ctx_t *ctx,
                       parley_request_t **request_p, const char *code, const char *message,
                       int64_t told_ms, int64_t measured_ms);

//  Answers ok with body, a msgpack map passed on as it is (an answer of
//  another service, such as a store's page for the operator). Takes the
//  request back as reply does; returns what the host returned.
int
pl_reply_object (const parley_host_t *host, parley_ctx_t *ctx,
                 parley_request_t **request_p, const msgpack_object *body);

#ifdef __cplusplus
}
#endif

#endif
