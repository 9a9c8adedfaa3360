/*  =========================================================================
    fl_uploads - the uploads a files plugin instance has in progress
    =========================================================================
*/

#include "fl_uploads.h"
#include "pl_text.h"

#include <czmq.h>

struct _fl_uploads_t {
    zhashx_t *uploads;              //  handle -> fl_upload_t *, owned
    int64_t idle_ms;
};

//  zhashx has no argument for its destructor: the one free_piece of every
//  table (one function for every files instance)
static fl_piece_free_fn *s_free_piece;

static void
s_upload_free (void **item_p)
{
    fl_upload_t *upload = (fl_upload_t *) *item_p;
    if (upload && upload->piece && s_free_piece)
        s_free_piece (upload->piece);
    free (upload);
    *item_p = NULL;
}

fl_uploads_t *
fl_uploads_new (int64_t idle_ms, fl_piece_free_fn *free_piece)
{
    s_free_piece = free_piece;
    fl_uploads_t *self = (fl_uploads_t *) calloc (1, sizeof (fl_uploads_t));
    if (self && !(self->uploads = zhashx_new ()))
        fl_uploads_destroy (&self);
    if (self) {
        zhashx_set_destructor (self->uploads, s_upload_free);
        self->idle_ms = idle_ms;
    }
    return self;
}

void
fl_uploads_destroy (fl_uploads_t **self_p)
{
    fl_uploads_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->uploads);
    free (self);
    *self_p = NULL;
}

fl_upload_t *
fl_uploads_add (fl_uploads_t *self, const char *handle, int64_t now)
{
    if (zhashx_lookup (self->uploads, handle))
        return NULL;
    fl_upload_t *upload = (fl_upload_t *) calloc (1, sizeof (fl_upload_t));
    if (!upload)
        return NULL;
    snprintf (upload->handle, sizeof upload->handle, "%s", handle);
    upload->active = now;
    if (zhashx_insert (self->uploads, upload->handle, upload)) {
        free (upload);
        return NULL;
    }
    return upload;
}

fl_upload_t *
fl_uploads_find (fl_uploads_t *self, const char *handle)
{
    return (fl_upload_t *) zhashx_lookup (self->uploads, handle);
}

void
fl_uploads_remove (fl_uploads_t *self, fl_upload_t *upload)
{
    //  The key is the upload's own handle: copied before the item goes
    char handle [FL_HANDLE_MAX + 1];
    memcpy (handle, upload->handle, sizeof handle);
    zhashx_delete (self->uploads, handle);
}

size_t
fl_uploads_expire (fl_uploads_t *self, int64_t now)
{
    zlistx_t *idle = zlistx_new ();
    if (!idle)
        return 0;
    fl_upload_t *upload = (fl_upload_t *) zhashx_first (self->uploads);
    while (upload) {
        if (!upload->busy && now - upload->active >= self->idle_ms)
            zlistx_add_end (idle, upload);
        upload = (fl_upload_t *) zhashx_next (self->uploads);
    }
    size_t count = zlistx_size (idle);
    for (upload = (fl_upload_t *) zlistx_first (idle); upload;
         upload = (fl_upload_t *) zlistx_next (idle))
        fl_uploads_remove (self, upload);
    zlistx_destroy (&idle);
    return count;
}

size_t
fl_uploads_size (fl_uploads_t *self)
{
    return zhashx_size (self->uploads);
}

bool
fl_uploads_handle_valid (const char *text, size_t size)
{
    return pl_text_word_valid (text, size, FL_HANDLE_MIN, FL_HANDLE_MAX);
}
