/*  =========================================================================
    pl_file - a message's file: msg.send's and pm.send's 'file', looked up
    before the lane takes the send
    =========================================================================
*/

#define _GNU_SOURCE             //  memmem
#include "pl_file.h"
#include "pl_body.h"
#include "pl_pack.h"
#include "pl_reply.h"
#include "pl_text.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

//  retry_after_ms of an unavailable answered here
#define PL_FILE_RETRY_MS        1000

//  One send waiting for store.file.get, in the checker's list
typedef struct _s_wait_t {
    pl_file_check_t *check;
    parley_request_t *request;      //  lent by the host until answered
    struct _s_wait_t *prev, *next;
} s_wait_t;

struct _pl_file_check_t {
    const parley_host_t *host;
    parley_ctx_t *ctx;
    pl_call_t *calls;               //  borrowed
    pl_file_submit_fn *submit;
    void *plugin;
    s_wait_t *waiting;              //  owned: the sends whose answer has not come
};

//  The file of the send submit is running for. Each plugin instance has a
//  thread of its own: one per thread.
static _Thread_local const pl_file_t *s_checked;

pl_file_check_t *
pl_file_check_new (const parley_host_t *host, parley_ctx_t *ctx, pl_call_t *calls,
                   pl_file_submit_fn *submit, void *plugin)
{
    pl_file_check_t *self = (pl_file_check_t *) calloc (1, sizeof (pl_file_check_t));
    if (self)
        *self = (pl_file_check_t) { host, ctx, calls, submit, plugin, NULL };
    return self;
}

static void
s_wait_unlink (s_wait_t *wait)
{
    pl_file_check_t *self = wait->check;
    if (wait->prev)
        wait->prev->next = wait->next;
    else
        self->waiting = wait->next;
    if (wait->next)
        wait->next->prev = wait->prev;
    free (wait);
}

void
pl_file_check_destroy (pl_file_check_t **self_p)
{
    pl_file_check_t *self = *self_p;
    if (!self)
        return;
    while (self->waiting) {
        pl_call_forget (self->calls, self->waiting);
        s_wait_unlink (self->waiting);
    }
    free (self);
    *self_p = NULL;
}

const pl_file_t *
pl_file_checked (void)
{
    return s_checked;
}

bool
pl_file_named (const msgpack_object *map)
{
    return pl_body_field (map, "file") != NULL;
}

//  The store's file of a send, checked: a complete file of the sender's,
//  into file. Returns false when it is not one.
static bool
s_file_of (const msgpack_object *body, const char *user, pl_file_t *file)
{
    char owner [PL_STORE_NAME_MAX + 1];
    uint64_t size;
    pl_body_copy (body, "user", owner, sizeof owner);
    pl_body_copy (body, "id", file->id, sizeof file->id);
    pl_body_copy (body, "name", file->name, sizeof file->name);
    pl_body_copy (body, "type", file->type, sizeof file->type);
    if (!user || strcasecmp (owner, user) != 0 || !pl_body_bool (body, "complete")
    ||  pl_body_uint (body, "size", &size) != 1 || !*file->id || !*file->name || !*file->type)
        return false;
    file->size = size;
    return true;
}

static void
s_on_file (void *state, void *arg, const pl_call_reply_t *reply)
{
    s_wait_t *wait = (s_wait_t *) arg;
    pl_file_check_t *self = wait->check;
    parley_request_t *request = wait->request;
    s_wait_unlink (wait);
    pl_file_t file;
    memset (&file, 0, sizeof file);
    if (reply->code && strcmp (reply->code, "not_found") != 0)
        pl_reply_store_failed (self->host, self->ctx, &request, reply->code,
                               "The file store is not answering; try again in a moment.",
                               reply->retry_ms, PL_FILE_RETRY_MS);
    else
    if (reply->code || !reply->body
    ||  !s_file_of (reply->body, self->host->request_user (request), &file))
        self->host->reply_error (self->ctx, &request, "bad_request",
                                 "The field 'file' is not one of your uploads.");
    else {
        s_checked = &file;
        self->submit (self->plugin, &request);
        s_checked = NULL;
    }
}

//  Sends store.file.get for the request (0), or -1 when it cannot go
static int
s_ask (pl_file_check_t *self, parley_request_t *request, const char *id, size_t size)
{
    s_wait_t *wait = (s_wait_t *) calloc (1, sizeof (s_wait_t));
    if (!wait)
        return -1;
    *wait = (s_wait_t) { self, request, NULL, self->waiting };
    if (self->waiting)
        self->waiting->prev = wait;
    self->waiting = wait;
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 1);
    pl_pack_str (&pack, "id");
    pl_pack_strn (&pack, id, size);
    int rc = pl_call_send (self->calls, "store.file.get", pack.buffer.data, pack.buffer.size,
                           s_on_file, wait);
    pl_pack_release (&pack);
    if (rc)
        s_wait_unlink (wait);
    return rc;
}

int
pl_file_check_request (pl_file_check_t *self, parley_request_t **request_p)
{
    size_t size;
    const uint8_t *body = self->host->request_body (*request_p, &size);
    //  Most sends name no file: a body without the bytes of the key (in
    //  whatever string encoding) is left to the caller unread, which spares
    //  every send a second unpacking (the lane unpacks it too)
    if (!body || !memmem (body, size, "file", 4))
        return -1;
    msgpack_unpacked fields;
    msgpack_unpacked_init (&fields);
    const msgpack_object *map = pl_body_unpack (&fields, body, size);
    const char *id = NULL;
    size_t id_size = 0;
    int rc = 0;
    if (!map || !pl_file_named (map))
        rc = -1;
    else
    if (pl_body_strn (map, "file", &id, &id_size) != 1 || !pl_text_word_valid (id, id_size, 1, PL_FILE_ID_MAX))
        self->host->reply_error (self->ctx, request_p, "bad_request",
                                 "The field 'file' is not one of your uploads.");
    else
    if (s_ask (self, *request_p, id, id_size) == 0)
        *request_p = NULL;
    else
        pl_reply_error_retry (self->host, self->ctx, request_p, "unavailable",
                              "The file store is not answering; try again in a moment.",
                              PL_FILE_RETRY_MS);
    msgpack_unpacked_destroy (&fields);
    return rc;
}

void
pl_file_pack (const pl_file_t *file, msgpack_packer *packer)
{
    msgpack_pack_map (packer, 4);
    pl_body_pack_str (packer, "id");
    pl_body_pack_str (packer, file->id);
    pl_body_pack_str (packer, "name");
    pl_body_pack_str (packer, file->name);
    pl_body_pack_str (packer, "size");
    msgpack_pack_uint64 (packer, file->size);
    pl_body_pack_str (packer, "type");
    pl_body_pack_str (packer, file->type);
}

size_t
pl_file_json_size (const pl_file_t *file)
{
    //  {"id":..,"name":..,"size":..,"type":..}: braces and three commas
    return 2 + 3 + pl_reply_json_member_size ("id", pl_reply_json_str_size (file->id,
                                                                          strlen (file->id)))
         + pl_reply_json_member_size ("name", pl_reply_json_str_size (file->name,
                                                                      strlen (file->name)))
         + pl_reply_json_member_size ("size", pl_reply_json_uint_size (file->size))
         + pl_reply_json_member_size ("type", pl_reply_json_str_size (file->type,
                                                                      strlen (file->type)));
}
