/*  =========================================================================
    sm_files - uploaded files on MongoDB (schema versions 13 and 15)

    files        {_id: ObjectId, id, user (as registered), user_key
                  (lower-cased), name, type, size, ts (BSON date), written,
                  complete, referenced, chunk_size (schema 15)}
                      unique index id_unique {id: 1}; user_key {user_key: 1}
                      (the quota); ts {ts: 1} (the sweep)

    Parley's own record of a file, from its creation: its owner, its state
    (written, complete, referenced) and its chunk size. Its bytes are in
    the GridFS bucket `fs` under the same _id (sm_gridfs.h), the bucket's
    fs.files document written by the commit. A message refers to a file
    by its own `file` map ({id, name, size, type}), found through the
    partial index
    SM_FILE_REF_INDEX on `file.id` of messages and pm_messages: the
    reference is written with the message and dropped by the update that
    deletes it. When the last goes, sm_files_release deletes the file.
    =========================================================================
*/

#ifndef SM_FILES_H_INCLUDED
#define SM_FILES_H_INCLUDED

#include "sm_store.h"

//  A file id, NUL-terminated
typedef char sm_file_id_t [ST_FILE_ID_MAX + 1];

//  What a run's check needs to know of a file a message names
typedef struct {
    sm_file_id_t id;
    char user_key [ST_NAME_MAX + 1];    //  the owner, lower-cased
    bool complete;
} sm_file_state_t;

//  Reads the state of the files named by ids (count of them) into states
//  (count slots); *found_p says how many were found. Returns 0 or -1.
int
    sm_files_states (sm_store_t *self, const sm_file_id_t *ids, uint32_t count,
                     sm_file_state_t *states, uint32_t *found_p, bson_error_t *error);

//  Marks the files as referred to (the sweep passes them by). Returns 0
//  or -1; a failure leaves them to the sweep, which looks again.
int
    sm_files_mark_referenced (sm_store_t *self, const sm_file_id_t *ids, uint32_t count,
                              bson_error_t *error);

//  The references to the files named by ids went (a deletion, a deleted
//  room): deletes each that no message refers to any longer, with its
//  bytes. Returns 0, or -1 with error set (the sweep takes what is left).
int
    sm_files_release (sm_store_t *self, const sm_file_id_t *ids, uint32_t count,
                      bson_error_t *error);

//  The files the messages of a room refer to (for store.room.delete, before
//  it deletes them), into a new array (*ids_p, the caller frees it; NULL
//  for none). Returns 0 or -1.
int
    sm_files_of_room (sm_store_t *self, const char *room_key, sm_file_id_t **ids_p,
                      uint32_t *count_p, bson_error_t *error);

//  store.file.create, .write, .commit, .get, .read, .sweep: each returns 0,
//  or -1 with error set
int
    sm_run_file_create (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                        bson_error_t *error);
int
    sm_run_file_write (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                       bson_error_t *error);
int
    sm_run_file_commit (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                        bson_error_t *error);
int
    sm_run_file_get (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                     bson_error_t *error);
int
    sm_run_file_read (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                      bson_error_t *error);
int
    sm_run_file_sweep (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                       bson_error_t *error);

//  Adds the file map to a message's document; reads it back into file
//  (borrowing the document's strings; id.data NULL when it has none)
void
    sm_file_ref_build (const st_file_ref_t *file, bson_t *document);
void
    sm_file_ref_read (const bson_t *document, st_file_ref_t *file);

#endif
