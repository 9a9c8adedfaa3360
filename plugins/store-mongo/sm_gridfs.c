/*  =========================================================================
    sm_gridfs - the bytes of uploaded files, in a GridFS bucket (see sm_gridfs.h)

    Without transactions the order of the writes keeps a failure part way
    safe. A write first drops the chunks after the one its offset falls in
    (an earlier attempt's), then rewrites that chunk whole (the bytes the
    file had before the offset are read back from it, so a repeat reads
    them again), then inserts the chunks after it; only then does the
    caller move the file's `written`. A file's fs.files document goes
    before its chunks, so a GridFS reader sees a whole file or none.
    =========================================================================
*/

#include "sm_gridfs.h"
#include "sm_common.h"

#include <stdlib.h>
#include <string.h>

//  Most chunks a writer holds before it sends them (the migration's
//  memory: this many chunks of the file's size)
#define S_QUEUE_MAX             16
//  Files the migration reads per page
#define S_MIGRATE_PAGE          100
//  The server's "ns not found", for a dropped collection that was not there
#define S_NAMESPACE_NOT_FOUND   26

//  A file's bytes on their way into chunks, from chunk n on
typedef struct {
    sm_store_t *self;
    const sm_gridfs_file_t *file;
    uint8_t *buffer;                //  chunk_size bytes, owned
    uint32_t used;                  //  in buffer
    int32_t n;                      //  the buffer's chunk
    bool replace;                   //  the buffer's chunk exists: replace it
    bson_t *queued [S_QUEUE_MAX];   //  whole chunks to insert, owned
    size_t queued_count;
    uint64_t chunks;                //  written so far
    bson_error_t *error;
    int rc;                         //  0, or -1 with error set
} s_writer_t;


bson_t *
sm_gridfs_files_indexes (void)
{
    return BCON_NEW (
        "createIndexes", BCON_UTF8 (SM_GRIDFS_FILES),
        "indexes", "[",
            "{", "key", "{", "filename", BCON_INT32 (1), "uploadDate", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 ("filename_1_uploadDate_1"), "}",
        "]");
}

bson_t *
sm_gridfs_chunks_indexes (void)
{
    return BCON_NEW (
        "createIndexes", BCON_UTF8 (SM_GRIDFS_CHUNKS),
        "indexes", "[",
            "{", "key", "{", "files_id", BCON_INT32 (1), "n", BCON_INT32 (1), "}",
                 "name", BCON_UTF8 (SM_GRIDFS_CHUNK_INDEX), "unique", BCON_BOOL (true), "}",
        "]");
}

bool
sm_gridfs_file_of (const bson_t *document, sm_gridfs_file_t *file)
{
    bson_iter_t iter;
    if (!bson_iter_init_find (&iter, document, "_id") || !BSON_ITER_HOLDS_OID (&iter))
        return false;
    bson_oid_copy (bson_iter_oid (&iter), &file->id);
    int64_t chunk_size = sm_bson_int (document, "chunk_size", 0);
    file->chunk_size = (int32_t) chunk_size;
    return chunk_size > 0 && chunk_size <= INT32_MAX;
}


//  --------------------------------------------------------------------------
//  Writing chunks

//  {files_id, n} of a chunk (with "n": op for a condition, or NULL)
static bson_t *
s_chunk_filter (const sm_gridfs_file_t *file, const char *op, int32_t n)
{
    if (op)
        return BCON_NEW ("files_id", BCON_OID (&file->id), "n", "{", op, BCON_INT32 (n), "}");
    return BCON_NEW ("files_id", BCON_OID (&file->id), "n", BCON_INT32 (n));
}

//  A chunk document; with an _id unless it replaces one
static bson_t *
s_chunk_new (const sm_gridfs_file_t *file, int32_t n, const uint8_t *data, uint32_t size,
             bool with_id)
{
    bson_t *chunk = bson_new ();
    if (with_id) {
        bson_oid_t oid;
        bson_oid_init (&oid, NULL);
        BSON_APPEND_OID (chunk, "_id", &oid);
    }
    BSON_APPEND_OID (chunk, "files_id", &file->id);
    BSON_APPEND_INT32 (chunk, "n", n);
    bson_append_binary (chunk, "data", 4, BSON_SUBTYPE_BINARY, data, size);
    return chunk;
}

//  Inserts the queued chunks, in one insert_many
static void
s_writer_flush (s_writer_t *self)
{
    if (self->rc == 0 && self->queued_count) {
        self->self->round_trips++;
        if (!mongoc_collection_insert_many (self->self->fs_chunks, (const bson_t **) self->queued,
                                            self->queued_count, NULL, NULL, self->error))
            self->rc = -1;
    }
    for (size_t index = 0; index < self->queued_count; index++)
        bson_destroy (self->queued [index]);
    self->queued_count = 0;
}

//  Replaces the chunk the buffer holds, which exists
static void
s_writer_replace (s_writer_t *self)
{
    bson_t *filter = s_chunk_filter (self->file, NULL, self->n);
    bson_t *chunk = s_chunk_new (self->file, self->n, self->buffer, self->used, false);
    bson_t reply;
    self->self->round_trips++;
    if (!mongoc_collection_replace_one (self->self->fs_chunks, filter, chunk, NULL, &reply,
                                        self->error))
        self->rc = -1;
    else
    if (sm_bson_int (&reply, "matchedCount", 0) != 1) {
        bson_set_error (self->error, MONGOC_ERROR_GRIDFS, MONGOC_ERROR_GRIDFS_CHUNK_MISSING,
                        "chunk %d of a file being written is missing", (int) self->n);
        self->rc = -1;
    }
    bson_destroy (&reply);
    bson_destroy (chunk);
    bson_destroy (filter);
}

//  The buffer's chunk goes (replaced, or queued for an insert)
static void
s_writer_emit (s_writer_t *self)
{
    if (self->rc || self->used == 0)
        return;
    if (self->replace)
        s_writer_replace (self);
    else {
        self->queued [self->queued_count++] = s_chunk_new (self->file, self->n, self->buffer,
                                                           self->used, true);
        if (self->queued_count == S_QUEUE_MAX)
            s_writer_flush (self);
    }
    self->chunks++;
    self->replace = false;
    self->used = 0;
    self->n++;
}

//  A writer from chunk n, whose first prefix_size bytes are prefix
static int
s_writer_init (s_writer_t *self, sm_store_t *store, const sm_gridfs_file_t *file, int32_t n,
               const uint8_t *prefix, uint32_t prefix_size, bson_error_t *error)
{
    memset (self, 0, sizeof *self);
    self->self = store;
    self->file = file;
    self->n = n;
    self->error = error;
    self->buffer = (uint8_t *) malloc ((size_t) file->chunk_size);
    if (!self->buffer) {
        bson_set_error (error, MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_NO_ACCEPTABLE_PEER,
                        "out of memory");
        return self->rc = -1;
    }
    if (prefix_size)
        memcpy (self->buffer, prefix, prefix_size);
    self->used = prefix_size;
    self->replace = prefix_size > 0;
    return 0;
}

static void
s_writer_add (s_writer_t *self, const uint8_t *data, uint64_t size)
{
    while (self->rc == 0 && size > 0) {
        uint64_t room = (uint64_t) self->file->chunk_size - self->used;
        uint64_t take = size < room ? size : room;
        memcpy (self->buffer + self->used, data, take);
        self->used += (uint32_t) take;
        data += take;
        size -= take;
        if (self->used == (uint32_t) self->file->chunk_size)
            s_writer_emit (self);
    }
}

//  The last chunk and the queue go; the writer is freed. Returns its rc.
static int
s_writer_finish (s_writer_t *self)
{
    s_writer_emit (self);
    s_writer_flush (self);
    free (self->buffer);
    self->buffer = NULL;
    return self->rc;
}

//  Deletes the file's chunks from n on
static int
s_delete_from (sm_store_t *self, const sm_gridfs_file_t *file, int32_t n, bson_error_t *error)
{
    bson_t *filter = s_chunk_filter (file, "$gte", n);
    self->round_trips++;
    bool ok = mongoc_collection_delete_many (self->fs_chunks, filter, NULL, NULL, error);
    bson_destroy (filter);
    return ok ? 0 : -1;
}

//  A chunk's data (binary), into *data_p and *size_p; false if it has none
static bool
s_chunk_data (const bson_t *document, const uint8_t **data_p, uint32_t *size_p)
{
    bson_iter_t iter;
    if (!bson_iter_init_find (&iter, document, "data") || !BSON_ITER_HOLDS_BINARY (&iter))
        return false;
    bson_iter_binary (&iter, NULL, size_p, data_p);
    return true;
}

//  The first size bytes of chunk n, which exists, into bytes
static int
s_read_prefix (sm_store_t *self, const sm_gridfs_file_t *file, int32_t n, uint8_t *bytes,
               uint32_t size, bson_error_t *error)
{
    bson_t *filter = s_chunk_filter (file, NULL, n);
    bson_t found = BSON_INITIALIZER;
    int rc = sm_find_one (self, self->fs_chunks, filter, NULL, &found, error);
    uint32_t length = 0;
    const uint8_t *data = NULL;
    if (rc == 1 && s_chunk_data (&found, &data, &length) && length >= size)
        memcpy (bytes, data, size);
    else
    if (rc >= 0) {
        bson_set_error (error, MONGOC_ERROR_GRIDFS, MONGOC_ERROR_GRIDFS_CHUNK_MISSING,
                        "chunk %d of a file being written is missing or short", (int) n);
        rc = -1;
    }
    bson_destroy (&found);
    bson_destroy (filter);
    return rc < 0 ? -1 : 0;
}

int
sm_gridfs_write (sm_store_t *self, const sm_gridfs_file_t *file, uint64_t offset,
                 const uint8_t *data, uint32_t size, bson_error_t *error)
{
    uint64_t chunk_size = (uint64_t) file->chunk_size;
    int32_t first = (int32_t) (offset / chunk_size);
    uint32_t head = (uint32_t) (offset % chunk_size);
    uint8_t *prefix = head ? (uint8_t *) malloc (head) : NULL;
    int rc = head && !prefix ? -1 : 0;
    if (rc)
        bson_set_error (error, MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_NO_ACCEPTABLE_PEER,
                        "out of memory");
    if (rc == 0 && head)
        rc = s_read_prefix (self, file, first, prefix, head, error);
    //  An earlier attempt's chunks after the one the offset is in
    if (rc == 0)
        rc = s_delete_from (self, file, head ? first + 1 : first, error);
    s_writer_t writer;
    if (rc == 0)
        rc = s_writer_init (&writer, self, file, first, prefix, head, error);
    if (rc == 0) {
        s_writer_add (&writer, data, size);
        rc = s_writer_finish (&writer);
    }
    free (prefix);
    return rc;
}


//  --------------------------------------------------------------------------
//  Reading, publishing, deleting

//  The bytes [from, to) of a file, gathered from its chunks
typedef struct {
    uint8_t *bytes;
    uint64_t from;
    uint64_t to;
    uint64_t chunk_size;
    uint64_t covered;               //  bytes filled, in order from 'from'
    bool gap;                       //  a chunk missing: the cover ends
} s_range_t;

//  Of a chunk holding the file's bytes [start, start + size), the part that
//  goes on from byte at, up to limit: its length (0 for none), its first
//  byte into *part_p. A chunk that starts after at leaves a gap: *gap_p.
static uint64_t
s_continuation (const uint8_t *data, uint32_t size, uint64_t start, uint64_t at,
                uint64_t limit, const uint8_t **part_p, bool *gap_p)
{
    uint64_t end = start + size < limit ? start + size : limit;
    if (start > at)
        *gap_p = true;
    if (start > at || end <= at)
        return 0;
    *part_p = data + (at - start);
    return end - at;
}

static void
s_on_chunk (void *arg, const bson_t *document)
{
    s_range_t *range = (s_range_t *) arg;
    int64_t n = sm_bson_int (document, "n", -1);
    const uint8_t *data, *part = NULL;
    uint32_t size;
    bool gap = false;
    //  Chunks come in order; one that leaves a gap ends the cover
    if (n < 0 || range->gap || !s_chunk_data (document, &data, &size))
        return;
    uint64_t length = s_continuation (data, size, (uint64_t) n * range->chunk_size,
                                      range->from + range->covered, range->to, &part, &gap);
    range->gap = gap;
    if (length)
        memcpy (range->bytes + range->covered, part, length);
    range->covered += length;
}

int
sm_gridfs_read (sm_store_t *self, const sm_gridfs_file_t *file, uint64_t from, uint64_t to,
                uint8_t *bytes, uint64_t *covered_p, bson_error_t *error)
{
    *covered_p = 0;
    if (to <= from)
        return 0;
    s_range_t range = { bytes, from, to, (uint64_t) file->chunk_size, 0, false };
    bson_t *filter = BCON_NEW ("files_id", BCON_OID (&file->id),
                               "n", "{", "$gte", BCON_INT32 ((int32_t) (from / range.chunk_size)),
                                         "$lte", BCON_INT32 ((int32_t) ((to - 1) / range.chunk_size)),
                               "}");
    bson_t *opts = BCON_NEW ("sort", "{", "n", BCON_INT32 (1), "}",
                             "hint", BCON_UTF8 (SM_GRIDFS_CHUNK_INDEX));
    int rc = sm_find (self, self->fs_chunks, filter, opts, s_on_chunk, &range, error);
    bson_destroy (opts);
    bson_destroy (filter);
    *covered_p = range.covered;
    return rc;
}

int
sm_gridfs_publish (sm_store_t *self, const sm_gridfs_file_t *file, const bson_t *document,
                   bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("_id", BCON_OID (&file->id));
    bson_t files = BSON_INITIALIZER, metadata;
    BSON_APPEND_OID (&files, "_id", &file->id);
    BSON_APPEND_INT64 (&files, "length", sm_bson_int (document, "size", 0));
    BSON_APPEND_INT32 (&files, "chunkSize", file->chunk_size);
    BSON_APPEND_DATE_TIME (&files, "uploadDate", sm_bson_int (document, "ts", 0));
    st_text_t name = sm_bson_st_text (document, "name");
    bson_append_utf8 (&files, "filename", 8, name.data, (int) name.size);
    BSON_APPEND_DOCUMENT_BEGIN (&files, "metadata", &metadata);
    const char *fields [] = { "id", "user", "type" };
    for (size_t index = 0; index < 3; index++) {
        st_text_t text = sm_bson_st_text (document, fields [index]);
        bson_append_utf8 (&metadata, fields [index], -1, text.data, (int) text.size);
    }
    bson_append_document_end (&files, &metadata);
    //  An upsert: a commit repeated after a failure writes the same again
    bson_t *opts = BCON_NEW ("upsert", BCON_BOOL (true));
    self->round_trips++;
    bool ok = mongoc_collection_replace_one (self->fs_files, filter, &files, opts, NULL, error);
    bson_destroy (opts);
    bson_destroy (&files);
    bson_destroy (filter);
    return ok ? 0 : -1;
}

int
sm_gridfs_delete (sm_store_t *self, const bson_oid_t *ids, uint32_t count, bson_error_t *error)
{
    if (count == 0)
        return 0;
    bson_t array;
    bson_t *files = bson_new (), *chunks = bson_new ();
    bson_t *filters [2] = { files, chunks };
    const char *fields [2] = { "_id", "files_id" };
    for (size_t which = 0; which < 2; which++) {
        bson_t condition;
        BSON_APPEND_DOCUMENT_BEGIN (filters [which], fields [which], &condition);
        BSON_APPEND_ARRAY_BEGIN (&condition, "$in", &array);
        for (uint32_t index = 0; index < count; index++) {
            char key [16];
            const char *key_text;
            size_t key_size = bson_uint32_to_string (index, &key_text, key, sizeof key);
            bson_append_oid (&array, key_text, (int) key_size, &ids [index]);
        }
        bson_append_array_end (&condition, &array);
        bson_append_document_end (filters [which], &condition);
    }
    self->round_trips++;
    bool ok = mongoc_collection_delete_many (self->fs_files, files, NULL, NULL, error);
    if (ok) {
        self->round_trips++;
        ok = mongoc_collection_delete_many (self->fs_chunks, chunks, NULL, NULL, error);
    }
    bson_destroy (chunks);
    bson_destroy (files);
    return ok ? 0 : -1;
}


//  --------------------------------------------------------------------------
//  Schema 15: file_chunks into the bucket

//  A file's old chunks {offset, data} in order of offset, into a writer
typedef struct {
    s_writer_t writer;
    uint64_t at;                    //  bytes moved
    uint64_t until;                 //  the file's written bytes
    bool gap;                       //  a chunk missing: the rest is lost
} s_move_t;

static void
s_on_old_chunk (void *arg, const bson_t *document)
{
    s_move_t *move = (s_move_t *) arg;
    int64_t offset = sm_bson_int (document, "offset", -1);
    const uint8_t *data, *part = NULL;
    uint32_t size;
    if (move->gap || offset < 0 || !s_chunk_data (document, &data, &size))
        return;
    uint64_t length = s_continuation (data, size, (uint64_t) offset, move->at, move->until,
                                      &part, &move->gap);
    s_writer_add (&move->writer, part, length);
    move->at += length;
}

//  Moves one file's old chunks into the bucket, publishes it if complete,
//  and sets its chunk_size (and, if bytes were lost, its written) last
static int
s_migrate_file (sm_store_t *self, const bson_t *document, uint64_t *bytes_p, bson_error_t *error)
{
    sm_gridfs_file_t file = { .chunk_size = self->chunk_size };
    bson_iter_t iter;
    if (!bson_iter_init_find (&iter, document, "_id") || !BSON_ITER_HOLDS_OID (&iter)) {
        bson_set_error (error, MONGOC_ERROR_BSON, MONGOC_ERROR_BSON_INVALID,
                        "a document of files has no ObjectId _id");
        return -1;
    }
    bson_oid_copy (bson_iter_oid (&iter), &file.id);
    s_move_t move = { .until = (uint64_t) sm_bson_int (document, "written", 0) };
    //  What an interrupted migration left of it
    if (s_delete_from (self, &file, 0, error)
    ||  s_writer_init (&move.writer, self, &file, 0, NULL, 0, error))
        return -1;
    st_text_t id = sm_bson_st_text (document, "id");
    bson_t *by_id = bson_new ();
    bson_append_utf8 (by_id, "file", 4, id.data, (int) id.size);
    bson_t *opts = BCON_NEW ("sort", "{", "offset", BCON_INT32 (1), "}");
    int rc = sm_find (self, self->file_chunks, by_id, opts, s_on_old_chunk, &move, error);
    bson_destroy (opts);
    bson_destroy (by_id);
    int finished = s_writer_finish (&move.writer);
    rc = rc ? rc : finished;
    bool complete = sm_bson_bool (document, "complete");
    if (rc == 0 && complete && move.at == (uint64_t) sm_bson_int (document, "size", 0))
        rc = sm_gridfs_publish (self, &file, document, error);
    if (rc)
        return -1;
    bson_t *selector = BCON_NEW ("_id", BCON_OID (&file.id));
    bson_t *update = complete
        ? BCON_NEW ("$set", "{", "chunk_size", BCON_INT32 (file.chunk_size), "}")
        : BCON_NEW ("$set", "{", "chunk_size", BCON_INT32 (file.chunk_size),
                                 "written", BCON_INT64 ((int64_t) move.at), "}");
    self->round_trips++;
    bool ok = mongoc_collection_update_one (self->files, selector, update, NULL, NULL, error);
    bson_destroy (update);
    bson_destroy (selector);
    *bytes_p += move.at;
    return ok ? 0 : -1;
}

//  A page of the files not moved yet, copied
typedef struct {
    bson_t *documents [S_MIGRATE_PAGE];
    size_t count;
} s_page_t;

static void
s_on_unmoved (void *arg, const bson_t *document)
{
    s_page_t *page = (s_page_t *) arg;
    if (page->count < S_MIGRATE_PAGE)
        page->documents [page->count++] = bson_copy (document);
}

//  Moves the next page of files; *moved_p counts them (0: none left)
static int
s_migrate_page (sm_store_t *self, uint64_t *moved_p, uint64_t *bytes_p, bson_error_t *error)
{
    s_page_t page = { .count = 0 };
    bson_t *filter = BCON_NEW ("chunk_size", "{", "$exists", BCON_BOOL (false), "}");
    bson_t *opts = BCON_NEW ("limit", BCON_INT64 (S_MIGRATE_PAGE));
    int rc = sm_find (self, self->files, filter, opts, s_on_unmoved, &page, error);
    bson_destroy (opts);
    bson_destroy (filter);
    for (size_t index = 0; index < page.count; index++) {
        if (rc == 0)
            rc = s_migrate_file (self, page.documents [index], bytes_p, error);
        bson_destroy (page.documents [index]);
    }
    *moved_p = rc == 0 ? page.count : 0;
    return rc;
}

int
sm_gridfs_migrate (sm_store_t *self, bson_error_t *error)
{
    uint64_t files = 0, bytes = 0, moved = 0;
    do {
        if (s_migrate_page (self, &moved, &bytes, error))
            return -1;
        files += moved;
    } while (moved);
    self->round_trips++;
    bson_error_t dropped;
    if (!mongoc_collection_drop_with_opts (self->file_chunks, NULL, &dropped)
    &&  dropped.code != S_NAMESPACE_NOT_FOUND) {
        *error = dropped;
        return -1;
    }
    self->host->log (self->ctx, PARLEY_LOG_INFO,
                     "schema 15: %llu files (%llu bytes) moved from file_chunks into the GridFS "
                     "bucket fs", (unsigned long long) files, (unsigned long long) bytes);
    return 0;
}
