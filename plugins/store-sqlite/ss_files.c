/*  =========================================================================
    ss_files - store-sqlite's files: store.file.*, and the references
    message entries hold (schema version 13)
    =========================================================================
*/

#include "ss_files.h"
#include "st_reply.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

//  Files a sweep deletes per pass: their ids are read before they are
//  deleted (a statement does not delete from the table it walks)
#define S_SWEEP_PASS            1000

typedef enum {
    S_SQL_USED,
    S_SQL_EXISTS,
    S_SQL_INSERT,
    S_SQL_GET,
    S_SQL_CHUNK_PUT,
    S_SQL_WRITTEN,
    S_SQL_COMPLETE,
    S_SQL_CHUNKS_READ,
    S_SQL_REFERRED,
    S_SQL_DELETE,
    S_SQL_CHUNKS_DELETE,
    S_SQL_SWEEP_LIST,
    S_SQL_SWEEP_CHUNKS,
    S_SQL_COUNT
} s_sql_t;

//  Every statement is a search or a range of a primary key or an index
//  (files_by_user, entries_by_file, pm_entries_by_file, the chunks' key);
//  the sweep's are ranges of files_by_ts and the chunks' key
static const char *s_sql_text [S_SQL_COUNT] = {
    [S_SQL_USED]        = "SELECT COALESCE (SUM (size), 0) FROM files WHERE user_id = ?1",
    [S_SQL_EXISTS]      = "SELECT 1 FROM files WHERE id = ?1",
    [S_SQL_INSERT]      = "INSERT INTO files (id, user_id, name, type, size, ts)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_SQL_GET]         = "SELECT u.name, u.name_key, f.name, f.type, f.size, f.ts, f.written,"
                          " f.complete FROM files AS f JOIN users AS u ON u.id = f.user_id"
                          " WHERE f.id = ?1",
    [S_SQL_CHUNK_PUT]   = "INSERT INTO blobs.chunks (file_id, offset, data) VALUES (?1, ?2, ?3)",
    [S_SQL_WRITTEN]     = "UPDATE files SET written = ?2 WHERE id = ?1",
    [S_SQL_COMPLETE]    = "UPDATE files SET complete = 1 WHERE id = ?1",
    //  The chunk that holds ?2, and those after it up to ?3
    [S_SQL_CHUNKS_READ] = "SELECT offset, data FROM blobs.chunks WHERE file_id = ?1"
                          " AND offset >= (SELECT COALESCE (MAX (offset), 0) FROM blobs.chunks"
                          " WHERE file_id = ?1 AND offset <= ?2) AND offset < ?3"
                          " ORDER BY offset",
    [S_SQL_REFERRED]    = "SELECT EXISTS (SELECT 1 FROM entries WHERE file_id = ?1)"
                          " OR EXISTS (SELECT 1 FROM pm_entries WHERE file_id = ?1)",
    [S_SQL_DELETE]      = "DELETE FROM files WHERE id = ?1",
    [S_SQL_CHUNKS_DELETE]
                        = "DELETE FROM blobs.chunks WHERE file_id = ?1",
    [S_SQL_SWEEP_LIST]  = "SELECT id FROM files WHERE ts < ?1"
                          " AND NOT EXISTS (SELECT 1 FROM entries WHERE file_id = files.id)"
                          " AND NOT EXISTS (SELECT 1 FROM pm_entries WHERE file_id = files.id)"
                          " LIMIT ?2",
    //  Chunks whose file is gone (a crash between the two files' commits)
    [S_SQL_SWEEP_CHUNKS]
                        = "DELETE FROM blobs.chunks WHERE file_id NOT IN (SELECT id FROM files)"
};

struct ss_files_s {
    ss_db_t *db;                    //  lent
    ss_users_t *users;              //  lent: looks owners up
    sqlite3_stmt *sql [S_SQL_COUNT];
};

//  A file's row as S_SQL_GET reads it (texts borrowed until the next step)
typedef struct {
    st_file_ref_t file;
    st_text_t user;                 //  the owner, as registered
    const char *user_key;           //  lower-cased
    int64_t ts;
    uint64_t written;
    bool complete;
} s_row_t;

ss_files_t *
ss_files_new (ss_db_t *db, ss_users_t *users)
{
    ss_files_t *self = (ss_files_t *) calloc (1, sizeof (ss_files_t));
    if (!self)
        return NULL;
    self->db = db;
    self->users = users;
    if (ss_db_prepare (db, s_sql_text, S_SQL_COUNT, self->sql))
        ss_files_destroy (&self);
    return self;
}

void
ss_files_destroy (ss_files_t **self_p)
{
    ss_files_t *self = *self_p;
    if (!self)
        return;
    ss_db_finalize (self->sql, S_SQL_COUNT);
    free (self);
    *self_p = NULL;
}

bool
ss_files_serves (st_type_t type)
{
    return type >= ST_FILE_CREATE && type <= ST_FILE_SWEEP;
}

//  The statement sql with the file's id bound as ?1
static sqlite3_stmt *
s_bound (ss_files_t *self, s_sql_t sql, st_text_t id)
{
    sqlite3_stmt *stmt = self->sql [sql];
    ss_db_bind_text (stmt, 1, id);
    return stmt;
}

//  Steps S_SQL_GET for id: SQLITE_ROW with *row read (the statement left
//  open for the caller to finish), SQLITE_DONE for none, or a failure
static int
s_row (ss_files_t *self, st_text_t id, s_row_t *row)
{
    sqlite3_stmt *stmt = s_bound (self, S_SQL_GET, id);
    int rc = sqlite3_step (stmt);
    if (rc != SQLITE_ROW)
        return rc;
    row->user = ss_db_column_text (stmt, 0);
    row->user_key = (const char *) sqlite3_column_text (stmt, 1);
    row->file.id = id;
    row->file.name = ss_db_column_text (stmt, 2);
    row->file.type = ss_db_column_text (stmt, 3);
    row->file.size = (uint64_t) sqlite3_column_int64 (stmt, 4);
    row->ts = sqlite3_column_int64 (stmt, 5);
    row->written = (uint64_t) sqlite3_column_int64 (stmt, 6);
    row->complete = sqlite3_column_int (stmt, 7) != 0;
    return SQLITE_ROW;
}

//  Ends a s_row: a step's failure code, else SQLITE_OK
static int
s_row_end (ss_files_t *self, int rc)
{
    ss_db_finish (self->sql [S_SQL_GET]);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}


//  --------------------------------------------------------------------------
//  store.file.create, .write, .commit

//  The user's files' sizes now, complete or not, into *used_p
static int
s_used (ss_files_t *self, int64_t user_id, int64_t *used_p)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_USED];
    sqlite3_bind_int64 (stmt, 1, user_id);
    return ss_db_count (stmt, used_p);
}

static int
s_file_create (ss_files_t *self, st_request_t *request)
{
    const st_file_create_t *create = &request->as.file_create;
    int rc;
    int64_t user_id = ss_users_find (self->users, &create->user, NULL, &rc);
    if (rc != SQLITE_OK)
        return rc;
    if (!user_id) {
        st_reply_no_user (request, create->user.text);
        return SQLITE_OK;
    }
    int64_t used = 0;
    if ((rc = s_used (self, user_id, &used)) != SQLITE_OK)
        return rc;
    if (create->quota && (uint64_t) used + create->size > create->quota) {
        st_request_fail (request, "quota_exceeded", "The user's files take %" PRId64 " of %"
                         PRIu64 " bytes: %" PRIu64 " more do not fit.", used, create->quota,
                         create->size);
        return SQLITE_OK;
    }
    sqlite3_stmt *stmt = s_bound (self, S_SQL_INSERT, create->id);
    sqlite3_bind_int64 (stmt, 2, user_id);
    ss_db_bind_text (stmt, 3, create->name);
    ss_db_bind_text (stmt, 4, create->type);
    sqlite3_bind_int64 (stmt, 5, (int64_t) create->size);
    sqlite3_bind_int64 (stmt, 6, create->ts);
    rc = ss_db_step_done (stmt);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        st_request_fail (request, "conflict", "A file with this id exists.");
        return SQLITE_OK;
    }
    if (rc == SQLITE_OK) {
        st_file_ref_t file = { create->id, create->name, create->size, create->type };
        st_reply_file (request, &file);
    }
    return rc;
}

//  Checks a write against the file's row: its answer is set when refused
static void
s_write_check (st_request_t *request, const s_row_t *row, int rc)
{
    const st_file_write_t *write = &request->as.file_write;
    if (rc == SQLITE_DONE || (rc == SQLITE_ROW && row->complete))
        st_request_fail (request, "not_found", "No such incomplete file.");
    else
    if (rc == SQLITE_ROW && write->offset != row->written)
        st_request_fail (request, "conflict", "The file has %" PRIu64 " bytes written, not %"
                         PRIu64 ".", row->written, write->offset);
    else
    if (rc == SQLITE_ROW && write->offset + write->data.size > row->file.size)
        st_request_fail (request, "bad_request", "The data would pass the file's size, %"
                         PRIu64 " bytes.", row->file.size);
}

static int
s_file_write (ss_files_t *self, st_request_t *request)
{
    const st_file_write_t *write = &request->as.file_write;
    s_row_t row;
    int rc = s_row (self, write->id, &row);
    s_write_check (request, &row, rc);
    if ((rc = s_row_end (self, rc)) != SQLITE_OK || !st_request_live (request))
        return rc;
    if (write->data.size) {
        sqlite3_stmt *stmt = s_bound (self, S_SQL_CHUNK_PUT, write->id);
        sqlite3_bind_int64 (stmt, 2, (int64_t) write->offset);
        sqlite3_bind_blob (stmt, 3, write->data.data, (int) write->data.size, SQLITE_STATIC);
        if ((rc = ss_db_step_done (stmt)) != SQLITE_OK)
            return rc;
    }
    uint64_t written = write->offset + write->data.size;
    sqlite3_stmt *stmt = s_bound (self, S_SQL_WRITTEN, write->id);
    sqlite3_bind_int64 (stmt, 2, (int64_t) written);
    if ((rc = ss_db_step_done (stmt)) == SQLITE_OK)
        st_reply_uint (request, "written", written);
    return rc;
}

static int
s_file_commit (ss_files_t *self, st_request_t *request)
{
    st_text_t id = request->as.file_commit.id;
    s_row_t row;
    int rc = s_row (self, id, &row);
    if (rc == SQLITE_DONE || (rc == SQLITE_ROW && row.complete))
        st_request_fail (request, "not_found", "No such incomplete file.");
    else
    if (rc == SQLITE_ROW && row.written != row.file.size)
        st_request_fail (request, "bad_request", "The file has %" PRIu64 " of its %" PRIu64
                         " bytes.", row.written, row.file.size);
    else
    if (rc == SQLITE_ROW)
        st_reply_file (request, &row.file);
    if ((rc = s_row_end (self, rc)) != SQLITE_OK || !st_request_live (request))
        return rc;
    return ss_db_step_done (s_bound (self, S_SQL_COMPLETE, id));
}


//  --------------------------------------------------------------------------
//  store.file.get, .read

static int
s_file_get (ss_files_t *self, st_request_t *request)
{
    s_row_t row;
    int rc = s_row (self, request->as.file_get.id, &row);
    if (rc == SQLITE_DONE)
        st_reply_no_file (request);
    else
    if (rc == SQLITE_ROW)
        st_reply_file_get (request, &row.file, row.user, row.ts, row.complete);
    return s_row_end (self, rc);
}

//  Copies the chunks' bytes of [from, to) into buffer (to - from bytes):
//  *copied_p gets how many were found
static int
s_read_chunks (ss_files_t *self, st_text_t id, uint64_t from, uint64_t to, char *buffer,
               uint64_t *copied_p)
{
    sqlite3_stmt *stmt = s_bound (self, S_SQL_CHUNKS_READ, id);
    sqlite3_bind_int64 (stmt, 2, (int64_t) from);
    sqlite3_bind_int64 (stmt, 3, (int64_t) to);
    int rc;
    *copied_p = 0;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        uint64_t offset = (uint64_t) sqlite3_column_int64 (stmt, 0);
        const char *data = (const char *) sqlite3_column_blob (stmt, 1);
        uint64_t size = (uint64_t) sqlite3_column_bytes (stmt, 1);
        uint64_t start = offset < from ? from : offset;
        uint64_t end = offset + size < to ? offset + size : to;
        if (end > start && start == from + *copied_p) {
            memcpy (buffer + (start - from), data + (start - offset), end - start);
            *copied_p += end - start;
        }
    }
    ss_db_finish (stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

//  Answers the bytes [offset, offset + length) of a complete file, fewer
//  at its end; a file whose bytes are missing is not found
static int
s_answer_read (ss_files_t *self, st_request_t *request, const st_file_ref_t *file)
{
    const st_file_read_t *read = &request->as.file_read;
    uint64_t to = read->offset + read->length < file->size ? read->offset + read->length
                                                            : file->size;
    char *buffer = (char *) malloc (to > read->offset ? to - read->offset : 1);
    if (!buffer) {
        st_request_fail (request, "internal", "The store is out of memory.");
        return SQLITE_OK;
    }
    uint64_t copied = 0;
    int rc = s_read_chunks (self, read->id, read->offset, to, buffer, &copied);
    if (rc == SQLITE_OK && copied != to - read->offset)
        st_request_fail (request, "not_found", "The file's bytes are missing.");
    else
    if (rc == SQLITE_OK)
        st_reply_file_data (request, file, buffer, copied);
    free (buffer);
    return rc;
}

static int
s_file_read (ss_files_t *self, st_request_t *request)
{
    const st_file_read_t *read = &request->as.file_read;
    s_row_t row;
    int rc = s_row (self, read->id, &row);
    if (rc == SQLITE_DONE || (rc == SQLITE_ROW && !row.complete))
        st_reply_no_file (request);
    else
    if (rc == SQLITE_ROW && read->offset > row.file.size)
        st_request_fail (request, "bad_request", "The offset passes the file's size, %" PRIu64
                         " bytes.", row.file.size);
    else
    if (rc == SQLITE_ROW) {
        //  The row's texts are the statement's: copied before it is reset
        char name [ST_FILE_NAME_MAX + 1], type [ST_FILE_TYPE_MAX + 1];
        memcpy (name, row.file.name.data, row.file.name.size);
        memcpy (type, row.file.type.data, row.file.type.size);
        st_file_ref_t file = { read->id, { name, row.file.name.size }, row.file.size,
                               { type, row.file.type.size } };
        s_row_end (self, rc);
        return s_answer_read (self, request, &file);
    }
    return s_row_end (self, rc);
}


//  --------------------------------------------------------------------------
//  References and the sweep

int
ss_files_check (ss_files_t *self, const st_file_ref_t *file, const char *sender_key,
                const char **code_p)
{
    s_row_t row;
    int rc = s_row (self, file->id, &row);
    *code_p = rc == SQLITE_ROW && row.complete && row.user_key
              && strcmp (row.user_key, sender_key) == 0 ? NULL : ST_NO_SUCH_FILE;
    return s_row_end (self, rc);
}

//  Deletes the file id and its bytes
static int
s_delete (ss_files_t *self, st_text_t id)
{
    int rc = ss_db_step_done (s_bound (self, S_SQL_DELETE, id));
    return rc == SQLITE_OK ? ss_db_step_done (s_bound (self, S_SQL_CHUNKS_DELETE, id)) : rc;
}

int
ss_files_release (ss_files_t *self, const char *id)
{
    st_text_t text = { id, (uint32_t) strlen (id) };
    int64_t referred = 0;
    int rc = ss_db_count (s_bound (self, S_SQL_REFERRED, text), &referred);
    if (rc != SQLITE_OK || referred)
        return rc;
    return s_delete (self, text);
}

//  Reads up to S_SWEEP_PASS ids of files to sweep into ids (the caller
//  frees each), *count_p of them
static int
s_sweep_list (ss_files_t *self, int64_t before, char **ids, size_t *count_p)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_SWEEP_LIST];
    sqlite3_bind_int64 (stmt, 1, before);
    sqlite3_bind_int (stmt, 2, S_SWEEP_PASS);
    int rc;
    *count_p = 0;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW && *count_p < S_SWEEP_PASS) {
        const char *id = (const char *) sqlite3_column_text (stmt, 0);
        if (id && (ids [*count_p] = strdup (id)))
            (*count_p)++;
    }
    ss_db_finish (stmt);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int
s_file_sweep (ss_files_t *self, st_request_t *request)
{
    char **ids = (char **) calloc (S_SWEEP_PASS, sizeof (char *));
    if (!ids) {
        st_request_fail (request, "internal", "The store is out of memory.");
        return SQLITE_OK;
    }
    uint64_t deleted = 0;
    size_t count = S_SWEEP_PASS;
    int rc = SQLITE_OK;
    while (rc == SQLITE_OK && count == S_SWEEP_PASS) {
        rc = s_sweep_list (self, request->as.file_sweep.before, ids, &count);
        for (size_t index = 0; index < count; index++) {
            if (rc == SQLITE_OK)
                rc = s_delete (self, (st_text_t) { ids [index], (uint32_t) strlen (ids [index]) });
            deleted += rc == SQLITE_OK;
            free (ids [index]);
        }
    }
    free (ids);
    if (rc == SQLITE_OK)
        rc = ss_db_step_done (self->sql [S_SQL_SWEEP_CHUNKS]);
    if (rc == SQLITE_OK)
        st_reply_uint (request, "deleted", deleted);
    return rc;
}

int
ss_files_run (ss_files_t *self, st_request_t *request)
{
    switch (request->type) {
        case ST_FILE_CREATE: return s_file_create (self, request);
        case ST_FILE_WRITE:  return s_file_write (self, request);
        case ST_FILE_COMMIT: return s_file_commit (self, request);
        case ST_FILE_GET:    return s_file_get (self, request);
        case ST_FILE_READ:   return s_file_read (self, request);
        default:             return s_file_sweep (self, request);
    }
}
