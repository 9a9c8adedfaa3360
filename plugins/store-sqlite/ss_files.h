/*  =========================================================================
    ss_files - store-sqlite's files (proto/STORE.md, "Files", schema
    version 13): store.file.*, and the references message entries hold

    A file's row (the table files: owner, name, type, size, bytes written,
    complete) is in the main database; its bytes are rows of blobs.chunks,
    one per store.file.write, in the chunk file attached as 'blobs'
    (ss_db). A message refers to a file by its file_id column (entries,
    pm_entries, each with a partial index on it), so that a file's
    references are an index look-up: the timelines ask ss_files_check
    before they insert a message with a file, and ss_files_release when
    they drop a reference (a deletion, a room deleted), which deletes the
    file and its bytes in the same write once no reference is left.

    Ownership: ss_files_new returns an object the caller owns, destroyed
    with ss_files_destroy before the database and the users it was made
    with (both lent for its life).
    =========================================================================
*/

#ifndef SS_FILES_H_INCLUDED
#define SS_FILES_H_INCLUDED

#include "ss_db.h"
#include "ss_users.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_files_s ss_files_t;

//  Prepares the statements. NULL after logging why not.
ss_files_t *
    ss_files_new (ss_db_t *db, ss_users_t *users);

void
    ss_files_destroy (ss_files_t **self_p);

//  True for the request types ss_files_run serves (store.file.*)
bool
    ss_files_serves (st_type_t type);

//  Runs one store.file.* request inside the open transaction (the front
//  answers it). SQLITE_OK, or the failure's code.
int
    ss_files_run (ss_files_t *self, st_request_t *request);

//  Checks that a message of the sender whose lower-cased name is
//  sender_key may refer to file: it exists, is complete and is the
//  sender's. *code_p is NULL when it may, else ST_NO_SUCH_FILE. SQLITE_OK
//  or the failure's code.
int
    ss_files_check (ss_files_t *self, const st_file_ref_t *file, const char *sender_key,
                    const char **code_p);

//  A reference to the file id (NUL-terminated) was dropped: deletes the
//  file and its bytes when no entry refers to it any more. SQLITE_OK or
//  the failure's code.
int
    ss_files_release (ss_files_t *self, const char *id);

#ifdef __cplusplus
}
#endif

#endif
