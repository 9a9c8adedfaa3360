/*  =========================================================================
    files - uploads and downloads of files, a piece at a time (PROTOCOL.md
    1.1 "Files"; the gateway's POST /files and GET /files/<id> send these)

    files.upload: the pieces of one upload, sharded by their handle. The
    first checks the token (auth.check: no password hash), the name, the
    size against files.max_upload, and creates the file with the user's
    quota (store.file.create, files.quota); every piece is written
    (store.file.write); the last commits it (store.file.commit) and
    answers the file's map. files.get reads a piece of a complete file
    (store.file.read). files.abort forgets an upload at once. A timer
    forgets uploads idle for files.upload_idle_s, and another asks the
    store to sweep the files no message refers to files.orphan_s after
    their upload (store.file.sweep, every files.sweep_s).

    The plugin holds no file: a piece goes to the store before the next
    is asked for (the gateway sends one at a time), so an upload costs one
    piece of memory while it is stored.
    =========================================================================
*/

#include "fl_uploads.h"
#include "parley_plugin.h"
#include "pl_body.h"
#include "pl_call.h"
#include "pl_limits.h"
#include "pl_options.h"
#include "pl_pack.h"
#include "pl_reply.h"
#include "pl_text.h"
#include "pl_time.h"

#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FL_MAX_UPLOAD_DEFAULT   10485760            //  10 MiB
#define FL_QUOTA_DEFAULT        1073741824          //  1 GiB
#define FL_IDLE_DEFAULT_S       60
#define FL_SWEEP_DEFAULT_S      600
#define FL_ORPHAN_DEFAULT_S     86400
#define FL_RETRY_MS             1000                //  retry_after_ms of our unavailable
#define FL_EXPIRE_TICK_MS       1000                //  how often idle uploads are looked for

#define streq(one, two)         (strcmp ((one), (two)) == 0)

typedef struct {
    parley_ctx_t *ctx;
    const parley_host_t *host;
    pl_call_t *calls;               //  auth.check and store.file.*, owned
    fl_uploads_t *uploads;          //  in progress, owned
    uint64_t max_upload;            //  files.max_upload: bytes of one file
    uint64_t quota;                 //  files.quota: bytes of one user's files
    int64_t orphan_ms;              //  files.orphan_s: a file no message refers to lives this
    int expire_timer;
    int sweep_timer;
} files_t;

//  One piece being stored: the request, its body (data borrows from it)
typedef struct {
    files_t *self;
    parley_request_t *request;      //  lent by the host until answered
    msgpack_unpacked body;
    fl_upload_t *upload;            //  the table's
    const char *data;               //  the piece's bytes, data_size of them
    size_t data_size;
    bool last;
} op_t;


//  --------------------------------------------------------------------------
//  Answers

//  Frees an op (fl_uploads' free_piece for an upload's piece in flight)
static void
s_op_free (void *item)
{
    op_t *op = (op_t *) item;
    if (!op)
        return;
    msgpack_unpacked_destroy (&op->body);
    free (op);
}

static void
s_op_destroy (op_t **op_p)
{
    s_op_free (*op_p);
    *op_p = NULL;
}

//  The piece is answered (or failed): the upload is no longer busy, and
//  forgotten when finished, failed or aborted meanwhile
static void
s_op_end (op_t *op, bool keep_upload)
{
    files_t *self = op->self;
    fl_upload_t *upload = op->upload;
    upload->busy = false;
    upload->piece = NULL;
    s_op_destroy (&op);
    if (!keep_upload || upload->aborted)
        fl_uploads_remove (self->uploads, upload);
}

static void
s_op_fail (op_t *op, const char *code, const char *message)
{
    op->self->host->reply_error (op->self->ctx, &op->request, code, message);
    s_op_end (op, false);
}

//  A call failed for a reason the client cannot help: unavailable, with
//  the callee's words in the log
static void
s_op_failed_call (op_t *op, const pl_call_reply_t *reply)
{
    files_t *self = op->self;
    self->host->log (self->ctx, PARLEY_LOG_WARNING, "%s answered %s (%s)", reply->type,
                     reply->code ? reply->code : "no body", reply->message ? reply->message : "");
    pl_reply_store_failed (self->host, self->ctx, &op->request,
                           reply->code ? reply->code : "internal",
                           "The file store is not answering; try again in a moment.",
                           reply->retry_ms, FL_RETRY_MS);
    s_op_end (op, false);
}

//  Sends a call for op with the time its request has left
static void
s_op_call (op_t *op, const char *type, pl_pack_t *pack, pl_call_fn *handler)
{
    files_t *self = op->self;
    int64_t left = self->host->request_time_left (op->request);
    int rc = pl_call_send_within (self->calls, type, pack->buffer.data, pack->buffer.size,
                                  left < 0 ? -1 : left, handler, op);
    pl_pack_release (pack);
    if (rc) {
        pl_reply_error_retry (self->host, self->ctx, &op->request, "unavailable",
                              "The file store is not answering; try again in a moment.",
                              FL_RETRY_MS);
        s_op_end (op, false);
    }
}


//  --------------------------------------------------------------------------
//  files.upload: writing and committing

static void s_on_written (void *state, void *arg, const pl_call_reply_t *reply);
static void s_on_committed (void *state, void *arg, const pl_call_reply_t *reply);

static void
s_commit (op_t *op)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 1);
    pl_pack_kstr (&pack, "id", op->upload->id);
    s_op_call (op, "store.file.commit", &pack, s_on_committed);
}

//  After a piece is stored: the next is asked for, or the file committed
static void
s_piece_stored (op_t *op)
{
    if (op->last) {
        s_commit (op);
        return;
    }
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 1);
    pl_pack_kuint (&pack, "received", op->upload->written);
    op->self->host->reply (op->self->ctx, &op->request, pack.buffer.data, pack.buffer.size);
    pl_pack_release (&pack);
    op->upload->active = pl_time_mono ();
    s_op_end (op, true);
}

//  Stores the piece's bytes (none: nothing to store)
static void
s_write (op_t *op)
{
    if (op->data_size == 0) {
        s_piece_stored (op);
        return;
    }
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 3);
    pl_pack_kstr (&pack, "id", op->upload->id);
    pl_pack_kuint (&pack, "offset", op->upload->written);
    pl_pack_str (&pack, "data");
    msgpack_pack_bin (&pack.packer, op->data_size);
    msgpack_pack_bin_body (&pack.packer, op->data, op->data_size);
    s_op_call (op, "store.file.write", &pack, s_on_written);
}

static void
s_on_written (void *state, void *arg, const pl_call_reply_t *reply)
{
    op_t *op = (op_t *) arg;
    uint64_t written;
    if (reply->code && (streq (reply->code, "conflict") || streq (reply->code, "bad_request")
                        || streq (reply->code, "not_found")))
        s_op_fail (op, "bad_request", "This piece does not follow the upload's bytes.");
    else
    if (reply->code || pl_body_uint (reply->body, "written", &written) != 1)
        s_op_failed_call (op, reply);
    else {
        op->upload->written = written;
        s_piece_stored (op);
    }
}

static void
s_on_committed (void *state, void *arg, const pl_call_reply_t *reply)
{
    op_t *op = (op_t *) arg;
    const msgpack_object *file = reply->body ? pl_body_field (reply->body, "file") : NULL;
    if (reply->code && streq (reply->code, "bad_request"))
        s_op_fail (op, "bad_request", "The upload has fewer bytes than its size.");
    else
    if (reply->code || !file)
        s_op_failed_call (op, reply);
    else {
        //  {file: {id, name, size, type}}, as the store said it
        pl_reply_object (op->self->host, op->self->ctx, &op->request, reply->body);
        op->self->host->log (op->self->ctx, PARLEY_LOG_DEBUG, "'%s' uploaded %s (%llu bytes)",
                             op->upload->user, op->upload->id,
                             (unsigned long long) op->upload->size);
        s_op_end (op, false);
    }
}


//  --------------------------------------------------------------------------
//  files.upload: the first piece

static void s_on_checked (void *state, void *arg, const pl_call_reply_t *reply);
static void s_on_created (void *state, void *arg, const pl_call_reply_t *reply);

//  A file's name (PROTOCOL.md): 1 to 255 bytes of UTF-8, no control
//  character, no '/'
static bool
s_name_valid (const char *name, size_t size)
{
    if (size < 1 || size > PL_FILE_NAME_MAX)
        return false;
    for (size_t index = 0; index < size; ) {
        uint8_t c = (uint8_t) name [index];
        size_t length = pl_text_utf8_sequence ((const uint8_t *) name + index, size - index);
        if (length == 0 || c < 0x20 || c == 0x7f || c == '/')
            return false;
        //  The C1 controls, U+0080 to U+009F, are C2 80 to C2 9F
        if (c == 0xc2 && (uint8_t) name [index + 1] < 0xa0)
            return false;
        index += length;
    }
    return true;
}

//  A type: 1 to 255 printable ASCII characters
static bool
s_type_valid (const char *type, size_t size)
{
    if (size < 1 || size > PL_FILE_TYPE_MAX)
        return false;
    for (size_t index = 0; index < size; index++)
        if (type [index] < 0x20 || type [index] > 0x7e)
            return false;
    return true;
}

//  The first piece's own fields: NULL when valid, else a bad_request
//  sentence, or "too_large" past files.max_upload
static const char *
s_first_refusal (files_t *self, const msgpack_object *map, uint64_t offset)
{
    const char *name, *type;
    size_t name_size, type_size;
    uint64_t size;
    if (offset != 0)
        return "The first piece of an upload is at offset 0.";
    if (pl_body_strn (map, "name", &name, &name_size) != 1 || !s_name_valid (name, name_size))
        return "The file's name must be 1 to 255 bytes of UTF-8, without control characters"
               " nor '/'.";
    if (pl_body_strn (map, "type", &type, &type_size) != 1 || !s_type_valid (type, type_size))
        return "The file's type must be 1 to 255 printable ASCII characters.";
    if (pl_body_uint (map, "size", &size) != 1)
        return "The field 'size' must be the file's length in bytes.";
    return size > self->max_upload ? "too_large" : NULL;
}

//  The first piece: checks it, then asks whose token it carries
static void
s_upload_first (op_t *op, const msgpack_object *map, uint64_t offset)
{
    files_t *self = op->self;
    const char *token;
    size_t token_size;
    const char *refusal = s_first_refusal (self, map, offset);
    if (refusal && streq (refusal, "too_large")) {
        s_op_fail (op, "too_large", "The file is larger than the server takes.");
        return;
    }
    if (refusal || pl_body_strn (map, "token", &token, &token_size) != 1) {
        s_op_fail (op, "bad_request", refusal ? refusal : "The field 'token' must be a string.");
        return;
    }
    pl_body_uint (map, "size", &op->upload->size);
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 1);
    pl_pack_str (&pack, "token");
    pl_pack_strn (&pack, token, token_size);
    s_op_call (op, "auth.check", &pack, s_on_checked);
}

//  A new file id: 16 random bytes, base64url
static void
s_new_id (char *id)
{
    unsigned char bytes [16];
    randombytes_buf (bytes, sizeof bytes);
    sodium_bin2base64 (id, FL_ID_TEXT + 1, bytes, sizeof bytes,
                       sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void
s_on_checked (void *state, void *arg, const pl_call_reply_t *reply)
{
    op_t *op = (op_t *) arg;
    files_t *self = op->self;
    const msgpack_object *map = &op->body.data;
    if (reply->code && streq (reply->code, "invalid_token")) {
        s_op_fail (op, "unauthenticated", "This token is not valid; log in again.");
        return;
    }
    if (!reply->code && reply->body)
        pl_body_copy (reply->body, "user", op->upload->user, sizeof op->upload->user);
    if (!*op->upload->user) {
        s_op_failed_call (op, reply);
        return;
    }
    s_new_id (op->upload->id);
    const char *name, *type;
    size_t name_size, type_size;
    pl_body_strn (map, "name", &name, &name_size);
    pl_body_strn (map, "type", &type, &type_size);
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 7);
    pl_pack_kstr (&pack, "id", op->upload->id);
    pl_pack_kstr (&pack, "user", op->upload->user);
    pl_pack_str (&pack, "name");
    pl_pack_strn (&pack, name, name_size);
    pl_pack_str (&pack, "type");
    pl_pack_strn (&pack, type, type_size);
    pl_pack_kuint (&pack, "size", op->upload->size);
    pl_pack_kint (&pack, "ts", pl_time_now ());
    pl_pack_kuint (&pack, "quota", self->quota);
    s_op_call (op, "store.file.create", &pack, s_on_created);
}

static void
s_on_created (void *state, void *arg, const pl_call_reply_t *reply)
{
    op_t *op = (op_t *) arg;
    if (reply->code && streq (reply->code, "quota_exceeded"))
        s_op_fail (op, "quota_exceeded", "Your files would pass your storage quota.");
    else
    if (reply->code)
        s_op_failed_call (op, reply);
    else
        s_write (op);
}


//  --------------------------------------------------------------------------
//  files.upload {upload, offset, data, last, and first: token, name, type, size}

//  A later piece: it follows the bytes stored, within the size
static void
s_upload_next (op_t *op, uint64_t offset)
{
    fl_upload_t *upload = op->upload;
    if (offset != upload->written)
        s_op_fail (op, "bad_request", "This piece does not follow the upload's bytes.");
    else
    if (upload->size - upload->written < op->data_size
    ||  (op->last && upload->written + op->data_size != upload->size))
        s_op_fail (op, "bad_request", "The pieces do not add up to the file's size.");
    else
        s_write (op);
}

//  Reads the fields every piece has into op; NULL, or a bad_request sentence
static const char *
s_piece_fields (op_t *op, uint64_t *offset_p, const char **handle_p, size_t *handle_size_p)
{
    const msgpack_object *map = &op->body.data;
    if (pl_body_strn (map, "upload", handle_p, handle_size_p) != 1
    ||  !fl_uploads_handle_valid (*handle_p, *handle_size_p))
        return "The field 'upload' must be 22 to 64 letters, digits, '_' or '-'.";
    if (pl_body_uint (map, "offset", offset_p) != 1)
        return "The field 'offset' must be a number of bytes.";
    const msgpack_object *data = pl_body_field (map, "data");
    if (data && (data->type != MSGPACK_OBJECT_BIN || data->via.bin.size > PL_FILE_CHUNK_MAX))
        return "The field 'data' must be binary, at most 983040 bytes.";
    const msgpack_object *last = pl_body_field (map, "last");
    if (last && last->type != MSGPACK_OBJECT_BOOLEAN)
        return "The field 'last' must be true or false.";
    op->data = data ? data->via.bin.ptr : NULL;
    op->data_size = data ? data->via.bin.size : 0;
    op->last = last && last->via.boolean;
    return NULL;
}

//  The upload a piece belongs to: a new one for a first piece (it has a
//  token), else the one in progress; NULL after answering the piece
static fl_upload_t *
s_piece_upload (op_t *op, const char *handle, size_t handle_size)
{
    files_t *self = op->self;
    char key [FL_HANDLE_MAX + 1];
    memcpy (key, handle, handle_size);
    key [handle_size] = 0;
    bool first = pl_body_field (&op->body.data, "token") != NULL;
    fl_upload_t *upload = first ? fl_uploads_add (self->uploads, key, pl_time_mono ())
                                : fl_uploads_find (self->uploads, key);
    const char *refusal = !upload && first ? "This upload has started already."
                        : !upload ? "No upload in progress has this handle (it may have been"
                                    " idle too long)."
                        : upload->busy ? "A piece of this upload is being stored already."
                        : NULL;
    if (refusal) {
        self->host->reply_error (self->ctx, &op->request, "bad_request", refusal);
        s_op_destroy (&op);
        return NULL;
    }
    upload->busy = true;
    upload->piece = op;
    upload->active = pl_time_mono ();
    return upload;
}

static void
s_upload (files_t *self, parley_request_t *request)
{
    op_t *op = (op_t *) calloc (1, sizeof (op_t));
    if (!op) {
        self->host->reply_error (self->ctx, &request, "internal", "The server ran out of memory.");
        return;
    }
    op->self = self;
    op->request = request;
    msgpack_unpacked_init (&op->body);
    size_t size;
    const uint8_t *body = self->host->request_body (request, &size);
    uint64_t offset = 0;
    const char *handle = NULL;
    size_t handle_size = 0;
    const char *refusal = pl_body_unpack (&op->body, body, size)
                        ? s_piece_fields (op, &offset, &handle, &handle_size)
                        : "The request's fields are not a map.";
    if (refusal) {
        self->host->reply_error (self->ctx, &op->request, "bad_request", refusal);
        s_op_destroy (&op);
        return;
    }
    //  A refused piece is answered there, its op freed
    fl_upload_t *upload = s_piece_upload (op, handle, handle_size);
    if (!upload)
        return;
    op->upload = upload;
    if (op->upload->id [0])
        s_upload_next (op, offset);
    else
        s_upload_first (op, &op->body.data, offset);
}

//  files.abort {upload}: the gateway's client went away
static void
s_abort (files_t *self, parley_request_t *request)
{
    size_t size;
    const uint8_t *body = self->host->request_body (request, &size);
    msgpack_unpacked fields;
    msgpack_unpacked_init (&fields);
    const msgpack_object *map = pl_body_unpack (&fields, body, size);
    char handle [FL_HANDLE_MAX + 1] = "";
    if (map)
        pl_body_copy (map, "upload", handle, sizeof handle);
    fl_upload_t *upload = *handle ? fl_uploads_find (self->uploads, handle) : NULL;
    if (upload && upload->busy)
        upload->aborted = true;     //  forgotten when its piece is answered
    else
    if (upload)
        fl_uploads_remove (self->uploads, upload);
    msgpack_unpacked_destroy (&fields);
    self->host->reply (self->ctx, &request, NULL, 0);
}


//  --------------------------------------------------------------------------
//  files.get {file, offset, length} -> {name, type, size, data}

static void
s_on_read (void *state, void *arg, const pl_call_reply_t *reply)
{
    files_t *self = (files_t *) state;
    parley_request_t *request = (parley_request_t *) arg;
    if (reply->code && (streq (reply->code, "not_found") || streq (reply->code, "bad_request")))
        self->host->reply_error (self->ctx, &request, reply->code,
                                 streq (reply->code, "not_found") ? "No such file."
                                 : "The offset passes the file's size.");
    else
    if (reply->code || !reply->body)
        pl_reply_store_failed (self->host, self->ctx, &request,
                               reply->code ? reply->code : "internal",
                               "The file store is not answering; try again in a moment.",
                               reply->retry_ms, FL_RETRY_MS);
    else
        pl_reply_object (self->host, self->ctx, &request, reply->body);
}

static void
s_get (files_t *self, parley_request_t *request)
{
    size_t size;
    const uint8_t *body = self->host->request_body (request, &size);
    msgpack_unpacked fields;
    msgpack_unpacked_init (&fields);
    const msgpack_object *map = pl_body_unpack (&fields, body, size);
    const char *id = NULL;
    size_t id_size = 0;
    uint64_t offset = 0, length = 0;
    if (!map || pl_body_strn (map, "file", &id, &id_size) != 1 || !pl_text_word_valid (id, id_size, 1, PL_FILE_ID_MAX))
        self->host->reply_error (self->ctx, &request, "not_found", "No such file.");
    else
    if (pl_body_uint (map, "offset", &offset) != 1 || pl_body_uint (map, "length", &length) != 1
    ||  length < 1 || length > PL_FILE_CHUNK_MAX || offset > INT64_MAX)
        self->host->reply_error (self->ctx, &request, "bad_request",
                                 "files.get needs 'offset' and a 'length' of 1 to 983040 bytes.");
    else {
        pl_pack_t pack;
        pl_pack_init (&pack);
        pl_pack_map (&pack, 3);
        pl_pack_str (&pack, "id");
        pl_pack_strn (&pack, id, id_size);
        pl_pack_kuint (&pack, "offset", offset);
        pl_pack_kuint (&pack, "length", length);
        if (pl_call_send (self->calls, "store.file.read", pack.buffer.data, pack.buffer.size,
                          s_on_read, request))
            pl_reply_error_retry (self->host, self->ctx, &request, "unavailable",
                                  "The file store is not answering; try again in a moment.",
                                  FL_RETRY_MS);
        pl_pack_release (&pack);
    }
    msgpack_unpacked_destroy (&fields);
}


//  --------------------------------------------------------------------------
//  Timers: idle uploads, the sweep

static void
s_expire (void *state)
{
    files_t *self = (files_t *) state;
    size_t count = fl_uploads_expire (self->uploads, pl_time_mono ());
    if (count)
        self->host->log (self->ctx, PARLEY_LOG_INFO, "%zu idle upload%s forgotten", count,
                         count == 1 ? "" : "s");
}

static void
s_on_swept (void *state, void *arg, const pl_call_reply_t *reply)
{
    files_t *self = (files_t *) state;
    uint64_t deleted = 0;
    if (reply->code)
        self->host->log (self->ctx, PARLEY_LOG_WARNING, "store.file.sweep answered %s (%s);"
                         " the next sweep tries again", reply->code,
                         reply->message ? reply->message : "");
    else
    if (pl_body_uint (reply->body, "deleted", &deleted) == 1 && deleted)
        self->host->log (self->ctx, PARLEY_LOG_INFO, "%llu file%s no message refers to deleted",
                         (unsigned long long) deleted, deleted == 1 ? "" : "s");
}

static void
s_sweep (void *state)
{
    files_t *self = (files_t *) state;
    int64_t before = pl_time_now () - self->orphan_ms;
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 1);
    pl_pack_kint (&pack, "before", before > 0 ? before : 0);
    pl_call_send (self->calls, "store.file.sweep", pack.buffer.data, pack.buffer.size,
                  s_on_swept, NULL);
    pl_pack_release (&pack);
}


//  --------------------------------------------------------------------------
//  The callbacks the host calls

static void s_destroy (void **state_p);

//  Reads the options; -1 when one was refused (logged)
static int
s_options (files_t *self, uint64_t *idle_s_p, uint64_t *sweep_s_p)
{
    pl_options_t options = pl_options (self->host, self->ctx, "files");
    self->max_upload = pl_options_uint (&options, "max_upload", FL_MAX_UPLOAD_DEFAULT, 0,
                                        (uint64_t) 1 << 40);
    self->quota = pl_options_uint (&options, "quota", FL_QUOTA_DEFAULT, 0, (uint64_t) 1 << 50);
    *idle_s_p = pl_options_uint (&options, "upload_idle_s", FL_IDLE_DEFAULT_S, 1, 86400);
    *sweep_s_p = pl_options_uint (&options, "sweep_s", FL_SWEEP_DEFAULT_S, 1, 86400);
    self->orphan_ms = 1000 * (int64_t) pl_options_uint (&options, "orphan_s",
                                                        FL_ORPHAN_DEFAULT_S, 1, 31536000);
    return pl_options_refused (&options) ? -1 : 0;
}

static int
s_init (parley_ctx_t *ctx, const parley_host_t *host, void **state_p)
{
    files_t *self = (files_t *) calloc (1, sizeof (files_t));
    if (!self || sodium_init () < 0) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory, or libsodium cannot start");
        free (self);
        return -1;
    }
    self->ctx = ctx;
    self->host = host;
    *state_p = self;
    uint64_t idle_s, sweep_s;
    if (s_options (self, &idle_s, &sweep_s)) {
        s_destroy (state_p);
        return -1;
    }
    self->calls = pl_call_new (host, ctx, self);
    self->uploads = fl_uploads_new (1000 * (int64_t) idle_s, s_op_free);
    self->expire_timer = host->timer_add (ctx, FL_EXPIRE_TICK_MS, s_expire);
    self->sweep_timer = host->timer_add (ctx, (uint32_t) (1000 * sweep_s), s_sweep);
    if (!self->calls || !self->uploads || self->expire_timer <= 0 || self->sweep_timer <= 0) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        s_destroy (state_p);
        return -1;
    }
    host->log (ctx, PARLEY_LOG_INFO, "ready: uploads up to %llu bytes, %llu per user,"
               " files no message refers to swept after %llu s",
               (unsigned long long) self->max_upload, (unsigned long long) self->quota,
               (unsigned long long) (self->orphan_ms / 1000));
    return 0;
}

static void
s_destroy (void **state_p)
{
    files_t *self = (files_t *) *state_p;
    if (!self)
        return;
    //  The calls still waiting hold ops: their requests go back to the
    //  host with the plugin, the ops with the table
    pl_call_destroy (&self->calls);
    fl_uploads_destroy (&self->uploads);
    free (self);
    *state_p = NULL;
}

static void
s_on_request (void *state, parley_request_t *request)
{
    files_t *self = (files_t *) state;
    const char *type = self->host->request_type (request);
    if (type && streq (type, "files.upload"))
        s_upload (self, request);
    else
    if (type && streq (type, "files.get"))
        s_get (self, request);
    else
    if (type && streq (type, "files.abort"))
        s_abort (self, request);
    else
        self->host->reply_error (self->ctx, &request, "unknown_type",
                                 "files serves files.upload, files.get and files.abort.");
}

static void
s_on_reply (void *state, void *cookie, const char *code, const char *message,
            const uint8_t *body, size_t size)
{
    files_t *self = (files_t *) state;
    pl_call_reply (self->calls, cookie, code, message, body, size);
}

//  Public: the gateway sends these without a session (POST /files carries
//  its token; GET /files/<id> needs none); it refuses 'files.' on
//  WebSockets. The pieces of one upload go to one instance (its handle).
static const parley_route_t s_routes [] = {
    { .prefix = "files.upload", .flags = PARLEY_ROUTE_PUBLIC, .shard = PARLEY_SHARD_FIELD,
      .shard_field = "upload" },
    { .prefix = "files.abort", .flags = PARLEY_ROUTE_PUBLIC, .shard = PARLEY_SHARD_FIELD,
      .shard_field = "upload" },
    { .prefix = "files.get", .flags = PARLEY_ROUTE_PUBLIC, .shard = PARLEY_SHARD_NONE },
    { .prefix = NULL }
};

static const parley_plugin_t s_descriptor = {
    .abi_major = PARLEY_ABI_MAJOR,
    .abi_minor = PARLEY_ABI_MINOR,
    .size = sizeof (parley_plugin_t),
    .flags = 0,
    .name = "files",
    .version = "1.0.0",
    .description = "files: uploads and downloads a piece at a time, kept by the store",
    .routes = s_routes,
    .init = s_init,
    .destroy = s_destroy,
    .on_request = s_on_request,
    .on_reply = s_on_reply,
    .on_batch_end = NULL,
    .on_session = NULL
};

PARLEY_PLUGIN_DEFINE (s_descriptor)
