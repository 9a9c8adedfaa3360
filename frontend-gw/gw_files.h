/*  =========================================================================
    gw_files - the gateway's HTTP side of files: POST /files and
    GET /files/<id> (PROTOCOL.md 1.1 "Files")

    The gateway holds no file. An upload's body is read in pieces of at most
    chunk bytes, each sent to the files plugin as one files.upload request,
    one in flight per upload; while one waits and a whole chunk is already
    read, the connection stops reading (lws rx flow control), so an upload
    costs about one chunk of memory here. The first files.upload carries the
    token, name, type and size and no data: the plugin answers 401, 400 or
    413 (past files.max_upload, its option: the one source of the limit)
    before the body is read. A download asks files.get for one chunk at a
    time, the next when the socket has taken the last. A client that goes
    away mid-upload makes the gateway send files.abort.

    gw_server owns one gw_files and hands it the HTTP callbacks of the
    connections whose path gw_filehdr_files_path accepts, and the broker's
    replies (gw_files_reply takes those to its own request ids). Each HTTP
    request's state is a gw_files_conn_t owned by gw_files, reached through
    a pointer in the connection's per-session data.
    =========================================================================
*/

#ifndef GW_FILES_H_INCLUDED
#define GW_FILES_H_INCLUDED

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "gw_metrics.h"
#include "pl_envelope.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Bytes of one files.upload or files.get piece (--file-chunk): the
//  contract's bounds for a piece's data
#define GW_FILE_CHUNK_DEFAULT   (256 * 1024)
#define GW_FILE_CHUNK_MIN       4096
#define GW_FILE_CHUNK_MAX       (1024 * 1024 - 64 * 1024)

typedef struct _gw_files_t gw_files_t;
typedef struct _gw_files_conn_t gw_files_conn_t;

//  Sends a request envelope to the broker (takes it). Returns 0, or -1
//  when it could not be sent.
typedef int (gw_files_send_fn) (void *arg, pl_envelope_t **envelope_p);

//  Creates the files side: pieces of chunk bytes (0 = the default),
//  requests answered unavailable after request_timeout_ms without a reply,
//  sent with send_fn (send_arg its argument), counted in metrics (borrowed:
//  it outlives this). Caller owns return value.
gw_files_t *
    gw_files_new (size_t chunk, uint32_t request_timeout_ms, gw_files_send_fn *send_fn,
                  void *send_arg, gw_metrics_t *metrics);

//  Destroys it and every request state left; nullifies the reference.
void
    gw_files_destroy (gw_files_t **self_p);

//  LWS_CALLBACK_HTTP for a files path: starts an upload or a download, or
//  answers an error. refusal NULL serves; a sentence answers 503 with it
//  (the broker is away, the gateway is stopping). *conn_p is the
//  connection's request state (NULL before; set while one runs). Returns
//  what the lws callback returns.
int
    gw_files_request (gw_files_t *self, struct lws *wsi, gw_files_conn_t **conn_p,
                      const char *refusal);

//  The other HTTP callbacks of a connection with a request state:
//  HTTP_BODY, HTTP_BODY_COMPLETION, HTTP_WRITEABLE, CLOSED_HTTP and
//  HTTP_DROP_PROTOCOL. Returns what the lws callback returns.
int
    gw_files_callback (gw_files_t *self, struct lws *wsi, gw_files_conn_t **conn_p,
                       enum lws_callback_reasons reason, void *in, size_t len);

//  A reply from the broker: true when it answers one of gw_files' own
//  requests (then it is handled, or dropped when its connection is gone).
bool
    gw_files_reply (gw_files_t *self, pl_envelope_t *envelope);

//  Answers the requests without a reply past their time (now: zclock_mono)
void
    gw_files_tick (gw_files_t *self, int64_t now);

//  Uploads and downloads running now
size_t
    gw_files_running (gw_files_t *self);

#ifdef __cplusplus
}
#endif

#endif
