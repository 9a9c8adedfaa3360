/*  =========================================================================
    gw_files - the gateway's HTTP side of files

    One state per HTTP request (gw_files_conn_t), on the loop's thread only.
    A request to the files plugin carries a request id with the top bit set,
    so that the server's replies for sessions and ours never meet; the
    pending table maps it to the state that waits. An answer (a status and
    a JSON body) is made when it is known and written at the next
    HTTP_WRITEABLE, as lws wants every write.
    =========================================================================
*/

#include "gw_files.h"

#include <czmq.h>
#include <inttypes.h>
#include <msgpack.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "gw_filehdr.h"
#include "gw_metrics.h"
#include "pl_body.h"
#include "pl_transcode.h"

//  Our request ids: the server's count up from 1 and never reach the top bit
#define GW_FILES_RID_BIT        (UINT64_C (1) << 63)
//  Bytes of a download handed to lws in one HTTP_WRITEABLE
#define GW_FILES_WRITE_MAX      (64 * 1024)
//  An upload handle: 16 random bytes in base64url
#define GW_FILES_HANDLE_SIZE    22
//  How long a file's bytes may be cached: an id never changes content
#define GW_FILES_CACHE_CONTROL  "private, max-age=31536000, immutable"

struct _gw_files_t {
    size_t chunk;                   //  bytes per piece
    uint32_t request_timeout_ms;    //  a request unanswered this long: unavailable
    gw_files_send_fn *send_fn;      //  to the broker
    void *send_arg;
    gw_metrics_t *metrics;          //  the gateway's counters, borrowed
    uint64_t rid_counter;           //  our request ids (with GW_FILES_RID_BIT)
    zhashx_t *pending;              //  "rid" -> gw_files_conn_t * (not owned)
    zlistx_t *conns;                //  every gw_files_conn_t (owned)
    uint8_t write_buffer [LWS_PRE + GW_FILES_WRITE_MAX];    //  a download's slice
};

struct _gw_files_conn_t {
    gw_files_t *owner;
    struct lws *wsi;                //  its connection
    void *handle;                   //  in owner->conns
    bool download;                  //  GET or HEAD; else an upload
    uint64_t rid;                   //  the request in flight, 0 = none
    int64_t deadline;               //  zclock_mono () when it is given up
    //  The answer, written at the next HTTP_WRITEABLE
    int status;                     //  0 = none yet
    uint8_t *answer;                //  LWS_PRE, then the JSON body
    size_t answer_size;             //  the JSON's length
    //  An upload
    char upload [GW_FILES_HANDLE_SIZE + 1];
    uint64_t size;                  //  Content-Length
    uint64_t sent;                  //  bytes passed to the plugin
    uint8_t *buffer;                //  bytes read and not yet passed on
    size_t buffered, capacity;
    bool started;                   //  the first piece was accepted
    bool body_done;                 //  the whole body is read
    bool last_sent;                 //  the last piece is on its way
    bool paused;                    //  lws reads no more for now
    bool aborted;                   //  files.abort sent (or not needed)
    bool continue_due;              //  Expect: 100-continue, and no 100 written yet
    //  A download
    char id [GW_FILEHDR_ID_SIZE + 1];
    bool head;                      //  HEAD: the headers only
    bool headers_done;              //  written
    char *name, *type;              //  of the file
    uint64_t file_size;             //  its size
    uint64_t written;               //  bytes handed to lws
    uint8_t *data;                  //  the current chunk, owned
    size_t data_size, data_offset;  //  its size, and how much is written
};

static int s_upload_pump (gw_files_t *self, gw_files_conn_t *conn);


//  ---------------------------------------------------------------------
//  Request states

static gw_files_conn_t *
s_conn_new (gw_files_t *self, struct lws *wsi, bool download)
{
    gw_files_conn_t *conn = (gw_files_conn_t *) zmalloc (sizeof (gw_files_conn_t));
    conn->owner = self;
    conn->wsi = wsi;
    conn->download = download;
    conn->aborted = true;           //  until the plugin has heard of it
    conn->handle = zlistx_add_end (self->conns, conn);
    return conn;
}

static void
s_forget_rid (gw_files_t *self, gw_files_conn_t *conn)
{
    if (conn->rid) {
        char key [24];
        snprintf (key, sizeof key, "%" PRIx64, conn->rid);
        zhashx_delete (self->pending, key);
        conn->rid = 0;
    }
}

static void
s_conn_destroy (gw_files_t *self, gw_files_conn_t **conn_p)
{
    gw_files_conn_t *conn = *conn_p;
    if (!conn)
        return;
    s_forget_rid (self, conn);
    zlistx_delete (self->conns, conn->handle);
    free (conn->answer);
    free (conn->buffer);
    free (conn->name);
    free (conn->type);
    free (conn->data);
    free (conn);
    *conn_p = NULL;
}

//  Sends a request of type with the msgpack body in buffer for conn, which
//  then waits for its reply; conn NULL: the reply is not waited for.
//  Returns 0, or -1 when it could not be sent.
static int
s_send (gw_files_t *self, gw_files_conn_t *conn, const char *type, msgpack_sbuffer *buffer)
{
    uint64_t rid = GW_FILES_RID_BIT | ++self->rid_counter;
    pl_envelope_t *envelope = pl_envelope_new (PL_OP_REQUEST);
    pl_envelope_set_rid (envelope, rid);
    pl_envelope_set_type (envelope, type);
    //  As the sessions' requests: half our timeout, the broker's backstop
    pl_envelope_set_deadline (envelope, self->request_timeout_ms / 2);
    pl_envelope_set_body_copy (envelope, buffer->data, buffer->size);
    if (conn) {
        //  In the table before the send: sending drains, and the reply may
        //  be there already
        char key [24];
        snprintf (key, sizeof key, "%" PRIx64, rid);
        conn->rid = rid;
        conn->deadline = zclock_mono () + self->request_timeout_ms;
        zhashx_insert (self->pending, key, conn);
    }
    int rc = self->send_fn (self->send_arg, &envelope);
    pl_envelope_destroy (&envelope);
    if (rc && conn)
        s_forget_rid (self, conn);
    return rc;
}

//  files.abort for an upload the plugin may still hold; once
static void
s_upload_abort (gw_files_t *self, gw_files_conn_t *conn)
{
    if (conn->aborted)
        return;
    conn->aborted = true;
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 1);
    pl_body_pack_str (&packer, "upload");
    pl_body_pack_str (&packer, conn->upload);
    s_send (self, NULL, "files.abort", &buffer);
    msgpack_sbuffer_destroy (&buffer);
}


//  ---------------------------------------------------------------------
//  Answers: a status and a JSON body

//  Sets conn's answer: status with the JSON of the msgpack map body (taken
//  as is), written at the next HTTP_WRITEABLE
static void
s_answer_body (gw_files_conn_t *conn, int status, const void *body, size_t size)
{
    free (conn->answer);
    conn->answer = pl_transcode_frame (NULL, NULL, 0, (const uint8_t *) body, size, LWS_PRE,
                                       &conn->answer_size);
    conn->status = conn->answer? status: 500;
    if (conn->paused) {
        //  What follows an answer is read and thrown away
        conn->paused = false;
        lws_rx_flow_control (conn->wsi, 1);
    }
    lws_callback_on_writable (conn->wsi);
}

//  {"error": code, "message": message} with status
static void
s_answer_error (gw_files_conn_t *conn, int status, const char *code, const char *message)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 2);
    pl_body_pack_str (&packer, "error");
    pl_body_pack_str (&packer, code);
    pl_body_pack_str (&packer, "message");
    pl_body_pack_str (&packer, message);
    s_answer_body (conn, status, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
}

//  The HTTP status for an error code of the files plugin or the broker
static int
s_status_of (const char *code)
{
    static const struct { const char *code; int status; } map [] = {
        { "unauthenticated", 401 }, { "invalid_token", 401 }, { "bad_request", 400 },
        { "too_large", 413 }, { "quota_exceeded", 413 }, { "not_found", 404 },
        { "unavailable", 503 }, { "unknown_type", 503 }, { "rate_limited", 503 },
        { NULL, 0 }
    };
    for (int index = 0; map [index].code; index++)
        if (streq (code, map [index].code))
            return map [index].status;
    return 500;
}

//  Answers an error reply of the plugin (or the broker's) as HTTP
static void
s_answer_reply_error (gw_files_conn_t *conn, const char *code, const char *message)
{
    int status = s_status_of (code);
    //  The file service not running at all is, to a client, unavailable
    const char *public_code = status == 503? "unavailable": status == 500? "internal": code;
    if (status == 503 && !streq (code, "unavailable"))
        message = "The file service is not available; try again later.";
    s_answer_error (conn, status, public_code, message? message: public_code);
}

//  HTTP_WRITEABLE with an answer: its headers and body; then the request
//  is over. The rest of an upload's body, if any, is read and discarded by
//  lws; on a plain connection our side is closed first, so that a client
//  still sending a body it was refused stops.
static int
s_answer_write (gw_files_t *self, struct lws *wsi, gw_files_conn_t **conn_p)
{
    gw_files_conn_t *conn = *conn_p;
    uint8_t headers [LWS_PRE + 1024];
    uint8_t *start = headers + LWS_PRE, *cursor = start, *end = headers + sizeof headers - 1;
    bool unread = !conn->download && !conn->body_done;
    const char *close = "close";
    if (lws_add_http_common_headers (wsi, (unsigned) conn->status, "application/json",
                                     conn->answer? conn->answer_size: 0, &cursor, end)
    ||  lws_add_http_header_by_token (wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                      (const unsigned char *) "no-store", 8, &cursor, end)
    ||  (conn->status == 503
         && lws_add_http_header_by_name (wsi, (const unsigned char *) "retry-after:",
                                         (const unsigned char *) "1", 1, &cursor, end))
    ||  (unread && lws_add_http_header_by_token (wsi, WSI_TOKEN_CONNECTION,
                                                 (const unsigned char *) close, 5,
                                                 &cursor, end))
    ||  lws_finalize_write_http_header (wsi, start, &cursor, end))
        return -1;
    gw_metrics_file (self->metrics, conn->download? GW_FILE_DOWNLOAD: GW_FILE_UPLOAD,
                     conn->status);
    //  HEAD: the headers say how long the answer is, and no body follows
    if (conn->answer && !conn->head
    &&  lws_write (wsi, conn->answer + LWS_PRE, conn->answer_size, LWS_WRITE_HTTP_FINAL)
        < (int) conn->answer_size)
        return -1;
    if (!conn->download)
        s_upload_abort (self, conn);
    s_conn_destroy (self, conn_p);
    if (unread && !lws_get_ssl (wsi))
        shutdown (lws_get_socket_fd (wsi), SHUT_WR);
    return lws_http_transaction_completed (wsi)? -1: 0;
}


//  ---------------------------------------------------------------------
//  Uploads

//  A new upload handle: 16 random bytes in base64url
static void
s_upload_handle (char *handle)
{
    static const char alphabet [] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t bytes [16];
    if (getrandom (bytes, sizeof bytes, 0) != sizeof bytes)
        for (size_t index = 0; index < sizeof bytes; index++)
            bytes [index] = (uint8_t) randof (256);
    uint32_t bits = 0;
    int count = 0;
    size_t size = 0;
    for (size_t index = 0; index < sizeof bytes; index++) {
        bits = (bits << 8) | bytes [index];
        count += 8;
        while (count >= 6) {
            handle [size++] = alphabet [(bits >> (count - 6)) & 63];
            count -= 6;
        }
    }
    if (count > 0)
        handle [size++] = alphabet [(bits << (6 - count)) & 63];
    handle [size] = 0;
}

//  A header's value into value (size bytes); its length, or -1 when absent
//  or too long. name: a WSI_TOKEN, or NULL with custom ("x-filename:")
static int
s_header (struct lws *wsi, enum lws_token_indexes token, const char *custom,
          char *value, size_t size)
{
    int length = custom? lws_hdr_custom_length (wsi, custom, (int) strlen (custom)):
                         lws_hdr_total_length (wsi, token);
    if (length < 0 || (size_t) length >= size)
        return length > 0? -2: -1;
    if (length == 0) {
        value [0] = 0;
        return custom || lws_hdr_total_length (wsi, token)? 0: -1;
    }
    int copied = custom? lws_hdr_custom_copy (wsi, value, (int) size, custom,
                                              (int) strlen (custom)):
                         lws_hdr_copy (wsi, value, (int) size, token);
    return copied < 0? -2: copied;
}

//  The length of the body, or a refusal: 411 without Content-Length or
//  with Transfer-Encoding (lws does not decode a chunked request body),
//  400 for a malformed one. Returns 0 or the status.
static int
s_upload_length (struct lws *wsi, uint64_t *size_p, const char **why_p)
{
    char value [64];
    if (lws_hdr_total_length (wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        *why_p = "A chunked body is not accepted: send Content-Length and the file.";
        return 411;
    }
    int length = s_header (wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, NULL, value, sizeof value);
    if (length == -1) {
        *why_p = "Content-Length is required.";
        return 411;
    }
    if (length < 0 || gw_filehdr_content_length (value, (size_t) length, size_p)) {
        *why_p = "Content-Length is not a number of bytes.";
        return 400;
    }
    return 0;
}

//  The first piece, with what the plugin checks before the body: the
//  token, name, type and size. No data yet: a refusal comes before the
//  body is read.
static int
s_upload_first (gw_files_t *self, gw_files_conn_t *conn, const char *token, size_t token_size,
                const char *name, const char *type)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 8);
    pl_body_pack_str (&packer, "upload");
    pl_body_pack_str (&packer, conn->upload);
    pl_body_pack_str (&packer, "offset");
    msgpack_pack_uint64 (&packer, 0);
    pl_body_pack_str (&packer, "data");
    msgpack_pack_bin (&packer, 0);
    pl_body_pack_str (&packer, "last");
    if (conn->size == 0)
        msgpack_pack_true (&packer);
    else
        msgpack_pack_false (&packer);
    pl_body_pack_str (&packer, "token");
    msgpack_pack_str (&packer, token_size);
    msgpack_pack_str_body (&packer, token, token_size);
    pl_body_pack_str (&packer, "name");
    pl_body_pack_str (&packer, name);
    pl_body_pack_str (&packer, "type");
    pl_body_pack_str (&packer, type);
    pl_body_pack_str (&packer, "size");
    msgpack_pack_uint64 (&packer, conn->size);
    conn->last_sent = conn->size == 0;
    int rc = s_send (self, conn, "files.upload", &buffer);
    msgpack_sbuffer_destroy (&buffer);
    return rc;
}

//  Checks the headers of POST /files; on a refusal answers it and returns
//  -1. Else fills name and type and returns the token's length (*token_p
//  into token_value).
static int
s_upload_headers (gw_files_conn_t *conn, struct lws *wsi, char *token_value, const char **token_p,
                  char *name, char *type)
{
    const char *why = NULL;
    int status = s_upload_length (wsi, &conn->size, &why);
    if (status) {
        s_answer_error (conn, status, "bad_request", why);
        return -1;
    }
    int length = s_header (wsi, WSI_TOKEN_HTTP_AUTHORIZATION, NULL, token_value,
                           GW_FILEHDR_TOKEN_MAX + 64);
    int token_size = length > 0? gw_filehdr_bearer (token_value, (size_t) length, token_p): -1;
    if (token_size < 0) {
        s_answer_error (conn, 401, "unauthenticated",
                        "Authorization: Bearer <token> is required.");
        return -1;
    }
    char value [3 * GW_FILEHDR_NAME_MAX + 8];
    char error [128];
    length = s_header (wsi, 0, "x-filename:", value, sizeof value);
    if (length == -2)
        snprintf (error, sizeof error, "X-Filename is longer than %d bytes once decoded.",
                  GW_FILEHDR_NAME_MAX);
    if (length == -2 || gw_filehdr_filename (value, length < 0? 0: (size_t) length,
                                             name, error) < 0) {
        s_answer_error (conn, 400, "bad_request", error);
        return -1;
    }
    length = s_header (wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, NULL, type, GW_FILEHDR_TYPE_MAX + 1);
    if (length <= 0)
        snprintf (type, GW_FILEHDR_TYPE_MAX + 1, "application/octet-stream");
    else
    if (!gw_filehdr_type_valid (type, (size_t) length)) {
        s_answer_error (conn, 400, "bad_request", "Content-Type is not a media type.");
        return -1;
    }
    return token_size;
}

//  True when the client waits for "100 Continue" before its body (curl
//  does for a body over 1 MiB): it is written once the plugin accepted
//  the first piece, so that a refusal (401, 413) comes before any byte of
//  the body is sent, and an accepted upload does not wait for the
//  client's own timeout (RFC 9110, 10.1.1)
static bool
s_expects_continue (struct lws *wsi)
{
    char value [32];
    int length = s_header (wsi, WSI_TOKEN_HTTP_EXPECT, NULL, value, sizeof value);
    return length > 0 && strcasecmp (value, "100-continue") == 0;
}

//  HTTP_WRITEABLE with the first piece accepted: the interim answer, on
//  its own before the final one (HTTP/1.1 only: the gateway offers no h2)
static int
s_continue_write (struct lws *wsi, gw_files_conn_t *conn)
{
    static const char interim [] = "HTTP/1.1 100 Continue\r\n\r\n";
    uint8_t buffer [LWS_PRE + sizeof interim];
    memcpy (buffer + LWS_PRE, interim, sizeof interim - 1);
    conn->continue_due = false;
    return lws_write (wsi, buffer + LWS_PRE, sizeof interim - 1, LWS_WRITE_HTTP)
           < (int) (sizeof interim - 1)? -1: 0;
}

//  POST /files: checks the headers, then asks the plugin with the first piece
static int
s_upload_start (gw_files_t *self, struct lws *wsi, gw_files_conn_t *conn)
{
    char token_value [GW_FILEHDR_TOKEN_MAX + 64];
    const char *token = NULL;
    char name [GW_FILEHDR_NAME_MAX + 1];
    char type [GW_FILEHDR_TYPE_MAX + 1];
    s_upload_handle (conn->upload);
    int token_size = s_upload_headers (conn, wsi, token_value, &token, name, type);
    if (token_size < 0)
        return 0;               //  answered: the body is discarded
    conn->continue_due = conn->size > 0 && s_expects_continue (wsi);
    conn->aborted = false;
    if (s_upload_first (self, conn, token, (size_t) token_size, name, type)) {
        conn->aborted = true;
        s_answer_error (conn, 503, "unavailable",
                        "The server is busy or reconnecting; try again later.");
    }
    return 0;
}

//  HTTP_BODY: keeps what came; passes a piece on when it can
static int
s_upload_body (gw_files_t *self, gw_files_conn_t *conn, const uint8_t *data, size_t size)
{
    if (conn->status)
        return 0;               //  answered already: thrown away
    if (size == 0)
        return s_upload_pump (self, conn);
    if (conn->buffered + size > conn->capacity) {
        //  A whole chunk and what one read brings past it (rx flow control
        //  stops the reads that would follow)
        size_t capacity = conn->capacity? conn->capacity: self->chunk + 16 * 1024;
        while (capacity < conn->buffered + size)
            capacity *= 2;
        uint8_t *buffer = (uint8_t *) realloc (conn->buffer, capacity);
        if (!buffer)
            return -1;
        conn->buffer = buffer;
        conn->capacity = capacity;
    }
    memcpy (conn->buffer + conn->buffered, data, size);
    conn->buffered += size;
    return s_upload_pump (self, conn);
}

//  Sends the next piece when the last was answered and a chunk (or the
//  end of the body) is there; stops or resumes reading to match
static int
s_upload_pump (gw_files_t *self, gw_files_conn_t *conn)
{
    if (conn->status)
        return 0;
    bool whole = conn->buffered >= self->chunk
              || (conn->body_done && conn->sent + conn->buffered == conn->size);
    if (conn->started && !conn->rid && !conn->last_sent && whole) {
        size_t piece = conn->buffered < self->chunk? conn->buffered: self->chunk;
        bool last = conn->sent + piece == conn->size;
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        msgpack_packer packer;
        msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
        msgpack_pack_map (&packer, 4);
        pl_body_pack_str (&packer, "upload");
        pl_body_pack_str (&packer, conn->upload);
        pl_body_pack_str (&packer, "offset");
        msgpack_pack_uint64 (&packer, conn->sent);
        pl_body_pack_str (&packer, "data");
        msgpack_pack_bin (&packer, piece);
        msgpack_pack_bin_body (&packer, conn->buffer, piece);
        pl_body_pack_str (&packer, "last");
        if (last)
            msgpack_pack_true (&packer);
        else
            msgpack_pack_false (&packer);
        //  The piece is in the request: taken off before the send, which
        //  drains the broker's socket, where its answer may already be and
        //  pump the next one
        conn->sent += piece;
        self->metrics->file_bytes [GW_FILE_UPLOAD] += piece;
        conn->last_sent = last;
        conn->buffered -= piece;
        memmove (conn->buffer, conn->buffer + piece, conn->buffered);
        int rc = s_send (self, conn, "files.upload", &buffer);
        msgpack_sbuffer_destroy (&buffer);
        if (rc)
            s_answer_error (conn, 503, "unavailable",
                            "The server is busy or reconnecting; try again later.");
        if (conn->status)
            return 0;
    }
    bool pause = conn->buffered >= self->chunk;
    if (pause != conn->paused) {
        conn->paused = pause;
        lws_rx_flow_control (conn->wsi, pause? 0: 1);
    }
    return 0;
}

//  The plugin's answer to a piece
static void
s_upload_reply (gw_files_t *self, gw_files_conn_t *conn, pl_envelope_t *envelope)
{
    const char *code = pl_envelope_code (envelope);
    zframe_t *body = pl_envelope_body (envelope);
    if (code) {
        s_answer_reply_error (conn, code, pl_envelope_message (envelope));
        return;
    }
    if (conn->last_sent) {
        //  {"file": {id, name, size, type}}, as the plugin said it
        conn->aborted = true;
        s_answer_body (conn, 201, body? zframe_data (body): NULL, body? zframe_size (body): 0);
        return;
    }
    conn->started = true;
    //  A client that already began its body needs no "100 Continue"
    if (conn->continue_due && conn->buffered == 0 && !conn->body_done)
        lws_callback_on_writable (conn->wsi);
    else
        conn->continue_due = false;
    s_upload_pump (self, conn);
}


//  ---------------------------------------------------------------------
//  Downloads

//  Asks for the chunk at offset written
static int
s_download_ask (gw_files_t *self, gw_files_conn_t *conn)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 3);
    pl_body_pack_str (&packer, "file");
    pl_body_pack_str (&packer, conn->id);
    pl_body_pack_str (&packer, "offset");
    msgpack_pack_uint64 (&packer, conn->written);
    pl_body_pack_str (&packer, "length");
    //  HEAD needs the name, type and size only
    uint64_t rest = conn->head? 1: conn->headers_done? conn->file_size - conn->written:
                    self->chunk;
    msgpack_pack_uint64 (&packer, rest < self->chunk? rest: self->chunk);
    int rc = s_send (self, conn, "files.get", &buffer);
    msgpack_sbuffer_destroy (&buffer);
    return rc;
}

//  Ends a download whose headers are out: the client sees a short body
static void
s_download_kill (gw_files_conn_t *conn, const char *why)
{
    zsys_warning ("gateway: download of file %s ended after %" PRIu64 " of %" PRIu64
                  " bytes: %s", conn->id, conn->written, conn->file_size, why);
    conn->status = -1;
    lws_set_timeout (conn->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

//  Takes a files.get answer's fields; false when it is not what was asked
static bool
s_download_take (gw_files_conn_t *conn, const msgpack_object *map)
{
    const msgpack_object *data = pl_body_field (map, "data");
    uint64_t size = 0;
    if (!data || data->type != MSGPACK_OBJECT_BIN || pl_body_uint (map, "size", &size) != 1)
        return false;
    size_t length = data->via.bin.size;
    if (!conn->headers_done) {
        char *name = NULL, *type = NULL;
        if (pl_body_str (map, "name", &name) != 1 || pl_body_str (map, "type", &type) != 1
        ||  !gw_filehdr_type_valid (type, strlen (type))) {
            free (name);
            free (type);
            return false;
        }
        conn->name = name;
        conn->type = type;
        conn->file_size = size;
    }
    if (size != conn->file_size || length > size - conn->written
    || (length == 0 && conn->written < size))
        return false;
    free (conn->data);
    conn->data = (uint8_t *) malloc (length? length: 1);
    if (!conn->data)
        return false;
    memcpy (conn->data, data->via.bin.ptr, length);
    conn->data_size = length;
    conn->data_offset = 0;
    return true;
}

static void
s_download_reply (gw_files_t *self, gw_files_conn_t *conn, pl_envelope_t *envelope)
{
    const char *code = pl_envelope_code (envelope);
    zframe_t *body = pl_envelope_body (envelope);
    if (code) {
        if (conn->headers_done)
            s_download_kill (conn, code);
        else
            s_answer_reply_error (conn, code, streq (code, "not_found") || streq (code, "bad_request")?
                                  "No such file.": pl_envelope_message (envelope));
        return;
    }
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    const msgpack_object *map = body? pl_body_unpack (&unpacked, zframe_data (body),
                                                      zframe_size (body)): NULL;
    bool taken = map && s_download_take (conn, map);
    msgpack_unpacked_destroy (&unpacked);
    if (!taken) {
        if (conn->headers_done)
            s_download_kill (conn, "the file service answered something else");
        else
            s_answer_error (conn, 500, "internal", "The file service answered something else.");
        return;
    }
    lws_callback_on_writable (conn->wsi);
}

//  The 200's headers: type, length, nosniff (lws' security headers carry
//  it, and a CSP), caching, disposition, and a sandbox so that nothing
//  served here can act as a page of the site
static int
s_download_headers (struct lws *wsi, gw_files_conn_t *conn)
{
    uint8_t headers [LWS_PRE + 2048];
    uint8_t *start = headers + LWS_PRE, *cursor = start, *end = headers + sizeof headers - 1;
    char disposition [GW_FILEHDR_DISPOSITION_MAX];
    size_t size = gw_filehdr_disposition (conn->type, conn->name, strlen (conn->name),
                                          disposition);
    if (lws_add_http_common_headers (wsi, HTTP_STATUS_OK, conn->type, conn->file_size,
                                     &cursor, end)
    ||  lws_add_http_header_by_token (wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                      (const unsigned char *) GW_FILES_CACHE_CONTROL,
                                      (int) strlen (GW_FILES_CACHE_CONTROL), &cursor, end)
    ||  lws_add_http_header_by_name (wsi, (const unsigned char *) "content-disposition:",
                                     (const unsigned char *) disposition, (int) size,
                                     &cursor, end)
    ||  lws_add_http_header_by_name (wsi, (const unsigned char *) "content-security-policy:",
                                     (const unsigned char *) "sandbox", 7, &cursor, end)
    ||  lws_finalize_write_http_header (wsi, start, &cursor, end))
        return -1;
    conn->headers_done = true;
    return 0;
}

//  HTTP_WRITEABLE of a download: the headers, then a slice of the chunk at
//  a time; the next chunk is asked for when this one is all written
static int
s_download_write (gw_files_t *self, struct lws *wsi, gw_files_conn_t **conn_p)
{
    gw_files_conn_t *conn = *conn_p;
    if (!conn->headers_done) {
        if (!conn->name)
            return 0;           //  not answered yet
        if (s_download_headers (wsi, conn))
            return -1;
        gw_metrics_file (self->metrics, GW_FILE_DOWNLOAD, 200);
        if (conn->head || conn->file_size == 0) {
            s_conn_destroy (self, conn_p);
            return lws_http_transaction_completed (wsi)? -1: 0;
        }
        lws_callback_on_writable (wsi);
        return 0;
    }
    size_t slice = conn->data_size - conn->data_offset;
    if (slice == 0)
        return 0;               //  waiting for the next chunk
    if (slice > GW_FILES_WRITE_MAX)
        slice = GW_FILES_WRITE_MAX;
    bool last = conn->written + slice == conn->file_size;
    memcpy (self->write_buffer + LWS_PRE, conn->data + conn->data_offset, slice);
    if (lws_write (wsi, self->write_buffer + LWS_PRE, slice,
                   last? LWS_WRITE_HTTP_FINAL: LWS_WRITE_HTTP) < (int) slice)
        return -1;
    conn->data_offset += slice;
    conn->written += slice;
    self->metrics->file_bytes [GW_FILE_DOWNLOAD] += slice;
    if (last) {
        s_conn_destroy (self, conn_p);
        return lws_http_transaction_completed (wsi)? -1: 0;
    }
    if (conn->data_offset < conn->data_size)
        lws_callback_on_writable (wsi);
    else
    if (s_download_ask (self, conn))
        s_download_kill (conn, "the broker could not be reached");
    return 0;
}

//  GET or HEAD /files/<id>: 404 at once for an id of the wrong shape
static int
s_download_start (gw_files_t *self, struct lws *wsi, gw_files_conn_t *conn,
                  const char *path, size_t length)
{
    if (!gw_filehdr_file_path (path, length, conn->id)) {
        s_answer_error (conn, 404, "not_found", "No such file.");
        return 0;
    }
    if (s_download_ask (self, conn))
        s_answer_error (conn, 503, "unavailable",
                        "The server is busy or reconnecting; try again later.");
    return 0;
}


//  ---------------------------------------------------------------------
//  The class

gw_files_t *
gw_files_new (size_t chunk, uint32_t request_timeout_ms, gw_files_send_fn *send_fn,
              void *send_arg, gw_metrics_t *metrics)
{
    assert (send_fn);
    assert (metrics);
    gw_files_t *self = (gw_files_t *) zmalloc (sizeof (gw_files_t));
    self->chunk = chunk? chunk: GW_FILE_CHUNK_DEFAULT;
    self->request_timeout_ms = request_timeout_ms? request_timeout_ms: 10000;
    self->send_fn = send_fn;
    self->send_arg = send_arg;
    self->metrics = metrics;
    self->pending = zhashx_new ();
    self->conns = zlistx_new ();
    assert (self->pending && self->conns);
    return self;
}

void
gw_files_destroy (gw_files_t **self_p)
{
    assert (self_p);
    gw_files_t *self = *self_p;
    if (!self)
        return;
    gw_files_conn_t *conn;
    while ((conn = (gw_files_conn_t *) zlistx_first (self->conns)))
        s_conn_destroy (self, &conn);
    zlistx_destroy (&self->conns);
    zhashx_destroy (&self->pending);
    free (self);
    *self_p = NULL;
}

int
gw_files_request (gw_files_t *self, struct lws *wsi, gw_files_conn_t **conn_p,
                  const char *refusal)
{
    assert (self);
    s_conn_destroy (self, conn_p);      //  a request before on this connection
    char path [256];
    bool post = lws_hdr_total_length (wsi, WSI_TOKEN_POST_URI) > 0;
    bool head = !post && lws_hdr_total_length (wsi, WSI_TOKEN_HEAD_URI) > 0;
    bool get = !post && !head && lws_hdr_total_length (wsi, WSI_TOKEN_GET_URI) > 0;
    int length = lws_hdr_copy (wsi, path, sizeof path, post? WSI_TOKEN_POST_URI:
                               head? WSI_TOKEN_HEAD_URI: WSI_TOKEN_GET_URI);
    bool upload = post && length == 6;
    if (!upload && !get && !head) {
        gw_metrics_file (self->metrics, post? GW_FILE_UPLOAD: GW_FILE_DOWNLOAD, 405);
        lws_return_http_status (wsi, HTTP_STATUS_METHOD_NOT_ALLOWED,
                                "POST /files uploads, GET /files/ID downloads.");
        return -1;
    }
    gw_files_conn_t *conn = *conn_p = s_conn_new (self, wsi, !upload);
    conn->head = head;
    if (refusal) {
        s_answer_error (conn, 503, "unavailable", refusal);
        return 0;
    }
    return upload? s_upload_start (self, wsi, conn):
                   s_download_start (self, wsi, conn, path, length < 0? 0: (size_t) length);
}

int
gw_files_callback (gw_files_t *self, struct lws *wsi, gw_files_conn_t **conn_p,
                   enum lws_callback_reasons reason, void *in, size_t len)
{
    assert (self);
    gw_files_conn_t *conn = *conn_p;
    if (!conn)
        return 0;
    switch (reason) {
        case LWS_CALLBACK_HTTP_BODY:
            return conn->download? 0: s_upload_body (self, conn, (const uint8_t *) in, len);
        case LWS_CALLBACK_HTTP_BODY_COMPLETION:
            conn->body_done = true;
            return conn->download? 0: s_upload_pump (self, conn);
        case LWS_CALLBACK_HTTP_WRITEABLE:
            if (conn->status > 0)
                return s_answer_write (self, wsi, conn_p);
            if (conn->status < 0)
                return -1;
            if (conn->continue_due)
                return s_continue_write (wsi, conn);
            return conn->download? s_download_write (self, wsi, conn_p): 0;
        case LWS_CALLBACK_CLOSED_HTTP:
        case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
            if (!conn->download && !conn->aborted)
                zsys_info ("gateway: upload %s went away after %" PRIu64 " of %" PRIu64
                           " bytes; aborting it", conn->upload, conn->sent + conn->buffered,
                           conn->size);
            s_upload_abort (self, conn);
            s_conn_destroy (self, conn_p);
            return 0;
        default:
            return 0;
    }
}

bool
gw_files_reply (gw_files_t *self, pl_envelope_t *envelope)
{
    assert (self);
    uint64_t rid = pl_envelope_rid (envelope);
    if (!(rid & GW_FILES_RID_BIT))
        return false;
    char key [24];
    snprintf (key, sizeof key, "%" PRIx64, rid);
    gw_files_conn_t *conn = (gw_files_conn_t *) zhashx_lookup (self->pending, key);
    if (!conn)
        return true;            //  files.abort's, or its connection is gone
    s_forget_rid (self, conn);
    if (conn->download)
        s_download_reply (self, conn, envelope);
    else
        s_upload_reply (self, conn, envelope);
    return true;
}

void
gw_files_tick (gw_files_t *self, int64_t now)
{
    assert (self);
    gw_files_conn_t *conn = (gw_files_conn_t *) zlistx_first (self->conns);
    while (conn) {
        if (conn->rid && conn->deadline <= now) {
            zsys_warning ("gateway: the file service did not answer in %u ms; answering "
                          "unavailable", self->request_timeout_ms);
            s_forget_rid (self, conn);
            if (conn->download && conn->headers_done)
                s_download_kill (conn, "no answer in time");
            else
                s_answer_error (conn, 503, "unavailable",
                                "The file service did not answer in time; try again later.");
        }
        conn = (gw_files_conn_t *) zlistx_next (self->conns);
    }
}

size_t
gw_files_running (gw_files_t *self)
{
    assert (self);
    return zlistx_size (self->conns);
}
