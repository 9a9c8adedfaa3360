/*  =========================================================================
    pl_transcode - client JSON to internal msgpack and back

    The gateway's only parser of outside input. JSON is parsed in one streaming
    pass (yajl) straight into msgpack: no DOM, bounded size and depth, invalid
    UTF-8 refused. The reverse direction writes JSON text straight from msgpack
    with room reserved in front for the WebSocket header (LWS_PRE).
    =========================================================================
*/

#ifndef PL_TRANSCODE_H_INCLUDED
#define PL_TRANSCODE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  PROTOCOL.md: deeper than 16 levels of arrays and objects is bad_request
#define PL_TRANSCODE_MAX_DEPTH  16
//  PROTOCOL.md: an id string is at most 64 bytes
#define PL_TRANSCODE_MAX_ID     64

typedef enum {
    PL_TRANSCODE_OK = 0,
    PL_TRANSCODE_BAD_JSON,      //  not JSON, or invalid UTF-8
    PL_TRANSCODE_BAD_REQUEST,   //  not an object, too deep, bad type or id
    PL_TRANSCODE_TOO_LARGE      //  over max_size
} pl_transcode_status_t;

//  One client frame, parsed
typedef struct {
    pl_transcode_status_t status;
    char *type;                 //  owned: the "type" string, NULL on error
    uint8_t *id;                //  owned: "id" as one msgpack value (int or
                                //  str), NULL when absent or unreadable
    size_t id_size;
    uint8_t *body;              //  owned: every other field, a msgpack map
    size_t body_size;
    char error [160];           //  on error: a sentence for the client
} pl_request_t;

//  Parse one client frame. Always fills request (status and, on error, the
//  error sentence; id when it could be read before the error, so the error
//  reply can carry it). Returns request->status. Never asserts on input.
//  Rules: size > max_size is TOO_LARGE; not valid JSON or not valid UTF-8 is
//  BAD_JSON; valid JSON that is not an object, nests deeper than max_depth,
//  has no string "type", has an "id" that is neither an integer nor a string
//  of at most 64 bytes, or repeats a top-level key is BAD_REQUEST.
//  Integers that fit int64/uint64 become msgpack ints, other numbers float64.
pl_transcode_status_t
    pl_transcode_request (const char *json, size_t size, size_t max_size, int max_depth,
                          pl_request_t *request);

//  The type a client's request goes to the broker as (proto/ENVELOPE.md,
//  "Client types"): its own, but for typing, which goes as "pm.typing" when
//  body has a 'to' and no 'room', else as "msg.typing" (the rooms plugin
//  then answers a typing with both or neither bad_request). NULL for
//  "msg.typing" and "pm.typing" sent by a client: those names are the
//  server's, answered unknown_type; NULL too for any "files." type, which
//  only the gateway's HTTP side sends (POST /files, GET /files/<id>). Returns type or a literal (borrowed).
const char *
    pl_transcode_route_type (const char *type, const uint8_t *body, size_t body_size);

//  Free what a request owns and reset it; safe to call twice
void
    pl_request_reset (pl_request_t *request);

//  Write one JSON frame into a new buffer with headroom bytes free in front:
//  {"type": type, "id": <id>, ...fields of body}. type may be NULL (then body
//  is written as is and must be a map, as for events); id may be NULL (no
//  "id"); body may be NULL (no more fields). Fields of body named "type" or
//  "id" are skipped when type is given. msgpack strings with invalid UTF-8
//  are written with U+FFFD; bin and ext become null; NaN/Inf become null.
//  Returns the buffer (caller frees with free ()) with *json_size_p set to
//  the JSON's length (not counting headroom), or NULL if body is not a
//  msgpack map or is malformed.
uint8_t *
    pl_transcode_frame (const char *type, const uint8_t *id, size_t id_size,
                        const uint8_t *body, size_t body_size, size_t headroom,
                        size_t *json_size_p);

//  A ready {"type":"error","id":<id>,"code":code,"message":message} frame,
//  built as pl_transcode_frame does. Caller frees. id may be NULL.
uint8_t *
    pl_transcode_error (const uint8_t *id, size_t id_size, const char *code,
                        const char *message, size_t headroom, size_t *json_size_p);

//  The same with "outcome": outcome after the message when outcome is not
//  NULL ("unknown": the request may have taken effect). Caller frees.
uint8_t *
    pl_transcode_error_outcome (const uint8_t *id, size_t id_size, const char *code,
                                const char *message, const char *outcome, size_t headroom,
                                size_t *json_size_p);

//  The same error frame (with outcome when not NULL) followed by the fields
//  of the msgpack map body (e.g. "retry_after_ms"), less any named type,
//  id, code, message or outcome. A body that is not one well-formed map is
//  left out: the error is never lost. body may be NULL. Caller frees.
uint8_t *
    pl_transcode_error_body (const uint8_t *id, size_t id_size, const char *code,
                             const char *message, const char *outcome,
                             const uint8_t *body, size_t body_size,
                             size_t headroom, size_t *json_size_p);

//  The same, and "retry_after_ms": retry_ms after it all when retry_ms > 0
//  and body has no retry_after_ms of its own: the gateway's
//  floor under every rate_limited and unavailable (CLIENT-PROTOCOL.md).
//  Caller frees.
uint8_t *
    pl_transcode_error_retry (const uint8_t *id, size_t id_size, const char *code,
                              const char *message, const char *outcome,
                              const uint8_t *body, size_t body_size, int64_t retry_ms,
                              size_t headroom, size_t *json_size_p);

#ifdef __cplusplus
}
#endif

#endif
