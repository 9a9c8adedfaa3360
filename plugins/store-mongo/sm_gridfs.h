/*  =========================================================================
    sm_gridfs - the bytes of uploaded files, in a GridFS bucket (schema 15)

    The GridFS layout (the GridFS spec), bucket "fs", written directly with
    inserts, replaces and finds, one request at a time: no upload stream is
    kept between requests (see README.md, "Files").

    fs.files   {_id: ObjectId (the _id of parley's files document), length
                (int64), chunkSize (int32), uploadDate (BSON date: the
                file's ts), filename, metadata: {id, user, type}}
                   index filename_1_uploadDate_1 {filename: 1, uploadDate: 1}
    fs.chunks  {_id: ObjectId, files_id, n (int32), data (binary)}
                   unique index files_id_1_n_1 {files_id: 1, n: 1}

    Every chunk of a file but its last holds chunkSize bytes. A write at an
    offset inside a chunk rewrites that chunk (the bytes it had, then the
    new ones) and inserts the chunks after it; a read takes the chunks that
    cover its range, one range of files_id_1_n_1. The fs.files document is
    written when the upload is committed, so a GridFS reader never sees
    half a file. A file's chunk size is its own (parley's files document
    keeps it from its creation), so changing the option affects new files.

    The functions borrow everything they are given; each returns 0, or -1
    with error set.
    =========================================================================
*/

#ifndef SM_GRIDFS_H_INCLUDED
#define SM_GRIDFS_H_INCLUDED

#include "sm_store.h"

//  The bucket's collections, and its chunk index as libmongoc names it
#define SM_GRIDFS_FILES          "fs.files"
#define SM_GRIDFS_CHUNKS         "fs.chunks"
#define SM_GRIDFS_CHUNK_INDEX    "files_id_1_n_1"

//  Where a file's bytes are: its id in the bucket and its chunk size
typedef struct {
    bson_oid_t id;                  //  files_id, the _id of parley's files document
    int32_t chunk_size;             //  bytes of every chunk but the last
} sm_gridfs_file_t;

//  The createIndexes commands of the bucket's two collections (the caller
//  destroys them)
bson_t *
    sm_gridfs_files_indexes (void);
bson_t *
    sm_gridfs_chunks_indexes (void);

//  The bucket's file of parley's files document: its _id and chunk_size.
//  Returns false if the document has neither.
bool
    sm_gridfs_file_of (const bson_t *document, sm_gridfs_file_t *file);

//  Writes size bytes of data at offset; the bytes before offset are
//  written. Anything at or after offset (an earlier attempt's) is replaced.
int
    sm_gridfs_write (sm_store_t *self, const sm_gridfs_file_t *file, uint64_t offset,
                     const uint8_t *data, uint32_t size, bson_error_t *error);

//  Reads the bytes [from, to) into bytes (to - from of them); *covered_p
//  says how many were found in order from 'from' (fewer: chunks missing)
int
    sm_gridfs_read (sm_store_t *self, const sm_gridfs_file_t *file, uint64_t from,
                    uint64_t to, uint8_t *bytes, uint64_t *covered_p, bson_error_t *error);

//  Writes the fs.files document of a complete file, from parley's files
//  document (size, ts, name, id, user, type); a repeat writes it again
int
    sm_gridfs_publish (sm_store_t *self, const sm_gridfs_file_t *file, const bson_t *document,
                       bson_error_t *error);

//  Deletes the files (count ids): their fs.files documents, then chunks
int
    sm_gridfs_delete (sm_store_t *self, const bson_oid_t *ids, uint32_t count,
                      bson_error_t *error);

//  Schema 15: moves the bytes of schema 13's file_chunks into the bucket,
//  file by file (each file's chunk_size set last), then drops file_chunks.
//  Idempotent: a start after a failure part way finishes it.
int
    sm_gridfs_migrate (sm_store_t *self, bson_error_t *error);

#endif
