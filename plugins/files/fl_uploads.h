/*  =========================================================================
    fl_uploads - the uploads a files plugin instance has in progress

    An upload is one HTTP request's file, sent by the gateway as pieces of
    files.upload that share a handle (the field 'upload', the route's shard
    key, so every piece reaches this instance). It is here from its first
    piece until its last is answered, it is aborted, or it has been idle
    (no piece) for the idle time: then it is forgotten, and the sweep
    deletes its incomplete file later. The table is bounded by the time
    uploads may stay idle, not by a count: each holds no bytes of the file.

    Ownership: fl_uploads_new returns a table the caller owns, destroyed
    with fl_uploads_destroy. fl_uploads_add returns an upload the table
    owns until fl_uploads_remove (or an expiry) frees it.
    =========================================================================
*/

#ifndef FL_UPLOADS_H_INCLUDED
#define FL_UPLOADS_H_INCLUDED

#include "pl_limits.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FL_HANDLE_MIN           22      //  characters of [A-Za-z0-9_-] of a handle
#define FL_HANDLE_MAX           64
#define FL_ID_TEXT              22      //  base64url of 16 random bytes, no padding

typedef struct {
    char handle [FL_HANDLE_MAX + 1];
    char id [FL_ID_TEXT + 1];           //  the file's id, "" before it is created
    char user [PL_STORE_NAME_MAX + 1];  //  whose file, as registered
    uint64_t size;                      //  the whole length, as the first piece said
    uint64_t written;                   //  bytes stored so far
    int64_t active;                     //  monotonic ms of the last piece
    bool busy;                          //  a piece is being stored
    bool aborted;                       //  files.abort came while busy
    void *piece;                        //  the caller's record of the piece in flight,
                                        //  or NULL: freed with the upload
} fl_upload_t;

typedef struct _fl_uploads_t fl_uploads_t;

//  Frees an upload's piece
typedef void (fl_piece_free_fn) (void *piece);

//  A table whose uploads are forgotten after idle_ms without a piece;
//  free_piece frees the piece of an upload forgotten with one (the table
//  destroyed). NULL when out of memory.
fl_uploads_t *
    fl_uploads_new (int64_t idle_ms, fl_piece_free_fn *free_piece);

void
    fl_uploads_destroy (fl_uploads_t **self_p);

//  A new upload for handle (NUL-terminated, valid), active at now; NULL
//  when the handle is taken or out of memory
fl_upload_t *
    fl_uploads_add (fl_uploads_t *self, const char *handle, int64_t now);

//  The upload of handle, or NULL
fl_upload_t *
    fl_uploads_find (fl_uploads_t *self, const char *handle);

//  Forgets the upload and frees it
void
    fl_uploads_remove (fl_uploads_t *self, fl_upload_t *upload);

//  Forgets the uploads idle for idle_ms at now that are not busy; returns
//  how many
size_t
    fl_uploads_expire (fl_uploads_t *self, int64_t now);

//  Uploads in progress
size_t
    fl_uploads_size (fl_uploads_t *self);

//  True when text (size bytes) is a handle: FL_HANDLE_MIN to FL_HANDLE_MAX
//  characters of [A-Za-z0-9_-]
bool
    fl_uploads_handle_valid (const char *text, size_t size);

#ifdef __cplusplus
}
#endif

#endif
