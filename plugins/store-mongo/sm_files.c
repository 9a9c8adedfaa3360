/*  =========================================================================
    sm_files - uploaded files on MongoDB (see sm_files.h)

    Without transactions the order of the writes keeps a failure part way
    safe: a piece's chunks are written (sm_gridfs: what an earlier attempt
    left at or after its offset is replaced, so that a repeat converges)
    before the file's `written` moves past it; the bucket's fs.files
    document is written before the file is marked complete; a file's bytes
    are deleted before its document, and a read that finds bytes missing
    answers not_found, as for a file that is gone; a release first unmarks
    the files as referenced, so that the sweep looks at them again if it
    stops before it has decided.
    =========================================================================
*/

#include "sm_files.h"
#include "sm_common.h"
#include "sm_conn.h"
#include "sm_gridfs.h"
#include "sm_users.h"
#include "pl_body.h"
#include "st_reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Most files one store.file.sweep looks at (the rest wait for the next)
#define S_SWEEP_MAX             1000

//  {field: {$in: ids}} into filter (uninitialized; the caller destroys it)
static void
s_ids_filter (bson_t *filter, const char *field, const sm_file_id_t *ids, uint32_t count)
{
    bson_t condition, array;
    sm_in_begin (filter, field, &condition, &array);
    uint32_t added = 0;
    for (uint32_t index = 0; index < count; index++)
        sm_array_append_text (&array, &added, ids [index], (uint32_t) strlen (ids [index]));
    sm_in_end (filter, &condition, &array);
}

//  The file map of a document of files, borrowing its strings
static st_file_ref_t
s_file_map (const bson_t *file)
{
    int64_t size = sm_bson_int (file, "size", 0);
    return (st_file_ref_t) {
        .id = sm_bson_st_text (file, "id"),
        .name = sm_bson_st_text (file, "name"),
        .size = size > 0 ? (uint64_t) size : 0,
        .type = sm_bson_st_text (file, "type")
    };
}

//  The file whose id is given, into found (empty), with extra conditions
//  (or NULL). Returns 1, 0 or -1.
static int
s_find_file (sm_store_t *self, st_text_t id, const bson_t *extra, bson_t *found,
             bson_error_t *error)
{
    bson_t filter = BSON_INITIALIZER;
    bson_append_utf8 (&filter, "id", 2, id.data, (int) id.size);
    if (extra)
        bson_concat (&filter, extra);
    int rc = sm_find_one (self, self->files, &filter, NULL, found, error);
    bson_destroy (&filter);
    return rc;
}

//  Where the bytes of a file (its document) are in the bucket. Returns
//  false, with error set, for a document without them.
static bool
s_bucket_file (const bson_t *document, sm_gridfs_file_t *bucket, bson_error_t *error)
{
    if (sm_gridfs_file_of (document, bucket))
        return true;
    bson_set_error (error, MONGOC_ERROR_GRIDFS, MONGOC_ERROR_GRIDFS_CORRUPT,
                    "a file's document has no _id or chunk_size (schema 15 not run?)");
    return false;
}


//  --------------------------------------------------------------------------
//  References

void
sm_file_ref_build (const st_file_ref_t *file, bson_t *document)
{
    if (!file->id.data)
        return;
    bson_t map;
    BSON_APPEND_DOCUMENT_BEGIN (document, "file", &map);
    bson_append_utf8 (&map, "id", 2, file->id.data, (int) file->id.size);
    bson_append_utf8 (&map, "name", 4, file->name.data, (int) file->name.size);
    BSON_APPEND_INT64 (&map, "size", (int64_t) file->size);
    bson_append_utf8 (&map, "type", 4, file->type.data, (int) file->type.size);
    bson_append_document_end (document, &map);
}

void
sm_file_ref_read (const bson_t *document, st_file_ref_t *file)
{
    memset (file, 0, sizeof *file);
    bson_iter_t iter;
    uint32_t size;
    const uint8_t *data;
    bson_t map;
    if (!bson_iter_init_find (&iter, document, "file") || !BSON_ITER_HOLDS_DOCUMENT (&iter))
        return;
    bson_iter_document (&iter, &size, &data);
    //  The map lives inside the document: its strings outlive this call
    if (bson_init_static (&map, data, size))
        *file = s_file_map (&map);
}

//  The states found so far, into the caller's slots
typedef struct {
    sm_file_state_t *states;
    uint32_t count;                 //  slots
    uint32_t found;
} s_states_t;

static void
s_on_state (void *arg, const bson_t *document)
{
    s_states_t *states = (s_states_t *) arg;
    if (states->found == states->count)
        return;
    sm_file_state_t *state = &states->states [states->found++];
    sm_copy_bson_str (document, "id", state->id, sizeof state->id);
    sm_copy_bson_str (document, "user_key", state->user_key, sizeof state->user_key);
    state->complete = sm_bson_bool (document, "complete");
}

int
sm_files_states (sm_store_t *self, const sm_file_id_t *ids, uint32_t count,
                 sm_file_state_t *states, uint32_t *found_p, bson_error_t *error)
{
    memset (states, 0, count * sizeof (sm_file_state_t));
    *found_p = 0;
    if (count == 0)
        return 0;
    s_states_t found = { states, count, 0 };
    bson_t filter;
    s_ids_filter (&filter, "id", ids, count);
    bson_t *opts = BCON_NEW ("projection", "{", "id", BCON_INT32 (1), "user_key", BCON_INT32 (1),
                                                "complete", BCON_INT32 (1), "}");
    int rc = sm_find (self, self->files, &filter, opts, s_on_state, &found, error);
    bson_destroy (opts);
    bson_destroy (&filter);
    *found_p = found.found;
    return rc;
}

int
sm_files_mark_referenced (sm_store_t *self, const sm_file_id_t *ids, uint32_t count,
                          bson_error_t *error)
{
    if (count == 0)
        return 0;
    bson_t filter;
    s_ids_filter (&filter, "id", ids, count);
    bson_t *update = BCON_NEW ("$set", "{", "referenced", BCON_BOOL (true), "}");
    self->round_trips++;
    bool ok = mongoc_collection_update_many (self->files, &filter, update, NULL, NULL, error);
    bson_destroy (update);
    bson_destroy (&filter);
    return ok ? 0 : -1;
}

//  Which of ids a message (of a room or a conversation) still refers to
typedef struct {
    const sm_file_id_t *ids;
    uint32_t count;
    bool *referred;                 //  count flags
} s_refs_t;

static void
s_on_reference (void *arg, const bson_t *document)
{
    s_refs_t *refs = (s_refs_t *) arg;
    uint32_t size;
    const char *id = sm_bson_text (document, "file.id", &size);
    for (uint32_t index = 0; index < refs->count; index++)
        if (strlen (refs->ids [index]) == size && memcmp (refs->ids [index], id, size) == 0)
            refs->referred [index] = true;
}

//  Sets refs->referred for the files a message refers to: one find on
//  SM_FILE_REF_INDEX of each collection
static int
s_find_references (sm_store_t *self, s_refs_t *refs, bson_error_t *error)
{
    bson_t filter;
    s_ids_filter (&filter, "file.id", refs->ids, refs->count);
    bson_t *opts = BCON_NEW ("projection", "{", "_id", BCON_INT32 (0),
                                                "file.id", BCON_INT32 (1), "}");
    int rc = sm_find (self, self->messages, &filter, opts, s_on_reference, refs, error);
    if (rc == 0)
        rc = sm_find (self, self->pm_messages, &filter, opts, s_on_reference, refs, error);
    bson_destroy (opts);
    bson_destroy (&filter);
    return rc;
}

//  The _ids of files found, gathered
typedef struct {
    bson_oid_t *ids;                //  count slots
    uint32_t count;
    uint32_t found;
} s_oids_t;

static void
s_on_oid (void *arg, const bson_t *document)
{
    s_oids_t *oids = (s_oids_t *) arg;
    bson_iter_t iter;
    if (oids->found < oids->count && bson_iter_init_find (&iter, document, "_id")
    &&  BSON_ITER_HOLDS_OID (&iter))
        bson_oid_copy (bson_iter_oid (&iter), &oids->ids [oids->found++]);
}

//  Deletes the files, their bytes first (the bucket's fs.files document,
//  then its chunks), found by their _ids. Returns 0 or -1.
static int
s_delete_files (sm_store_t *self, const sm_file_id_t *ids, uint32_t count,
                bson_error_t *error)
{
    if (count == 0)
        return 0;
    s_oids_t oids = { (bson_oid_t *) calloc (count, sizeof (bson_oid_t)), count, 0 };
    if (!oids.ids) {
        bson_set_error (error, MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_NO_ACCEPTABLE_PEER,
                        "out of memory");
        return -1;
    }
    bson_t files;
    s_ids_filter (&files, "id", ids, count);
    bson_t *opts = BCON_NEW ("projection", "{", "_id", BCON_INT32 (1), "}");
    int rc = sm_find (self, self->files, &files, opts, s_on_oid, &oids, error);
    if (rc == 0)
        rc = sm_gridfs_delete (self, oids.ids, oids.found, error);
    self->round_trips += rc == 0;
    if (rc == 0 && !mongoc_collection_delete_many (self->files, &files, NULL, NULL, error))
        rc = -1;
    bson_destroy (opts);
    bson_destroy (&files);
    free (oids.ids);
    return rc;
}

//  Of ids, deletes those no message refers to and marks the others
//  referenced; *deleted_p counts the deleted. Returns 0 or -1.
static int
s_settle (sm_store_t *self, sm_file_id_t *ids, uint32_t count, uint32_t *deleted_p,
          bson_error_t *error)
{
    *deleted_p = 0;
    bool *referred = (bool *) calloc (count ? count : 1, sizeof (bool));
    if (!referred) {
        bson_set_error (error, MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_NO_ACCEPTABLE_PEER,
                        "out of memory");
        return -1;
    }
    s_refs_t refs = { ids, count, referred };
    int rc = s_find_references (self, &refs, error);
    //  Sorted in place: the kept ones first, then the deleted
    uint32_t kept = 0;
    for (uint32_t index = 0; rc == 0 && index < count; index++)
        if (referred [index]) {
            sm_file_id_t swap;
            memcpy (swap, ids [kept], sizeof swap);
            memcpy (ids [kept], ids [index], sizeof swap);
            memcpy (ids [index], swap, sizeof swap);
            kept++;
        }
    if (rc == 0)
        rc = sm_files_mark_referenced (self, ids, kept, error);
    if (rc == 0)
        rc = s_delete_files (self, ids + kept, count - kept, error);
    if (rc == 0)
        *deleted_p = count - kept;
    free (referred);
    return rc;
}

int
sm_files_release (sm_store_t *self, const sm_file_id_t *ids, uint32_t count,
                  bson_error_t *error)
{
    if (count == 0)
        return 0;
    sm_file_id_t *own = (sm_file_id_t *) calloc (count, sizeof (sm_file_id_t));
    if (!own) {
        bson_set_error (error, MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_NO_ACCEPTABLE_PEER,
                        "out of memory");
        return -1;
    }
    memcpy (own, ids, count * sizeof (sm_file_id_t));
    //  Unmarked first: if this stops before it decides, the sweep decides
    bson_t filter;
    s_ids_filter (&filter, "id", own, count);
    bson_t *update = BCON_NEW ("$unset", "{", "referenced", BCON_UTF8 (""), "}");
    self->round_trips++;
    bool ok = mongoc_collection_update_many (self->files, &filter, update, NULL, NULL, error);
    bson_destroy (update);
    bson_destroy (&filter);
    uint32_t deleted;
    int rc = ok ? s_settle (self, own, count, &deleted, error) : -1;
    free (own);
    return rc;
}


//  The files a room's timeline refers to, gathered
typedef struct {
    sm_file_id_t *ids;              //  owned
    uint32_t count;
    uint32_t capacity;
} s_gathered_t;

static void
s_on_room_file (void *arg, const bson_t *document)
{
    s_gathered_t *gathered = (s_gathered_t *) arg;
    if (gathered->count == gathered->capacity) {
        uint32_t capacity = gathered->capacity ? gathered->capacity * 2 : 16;
        sm_file_id_t *ids = (sm_file_id_t *) realloc (gathered->ids,
                                                      capacity * sizeof (sm_file_id_t));
        if (!ids)
            return;                 //  left to the sweep
        gathered->ids = ids;
        gathered->capacity = capacity;
    }
    sm_copy_bson_str (document, "file.id", gathered->ids [gathered->count++],
                      sizeof (sm_file_id_t));
}

int
sm_files_of_room (sm_store_t *self, const char *room_key, sm_file_id_t **ids_p,
                  uint32_t *count_p, bson_error_t *error)
{
    s_gathered_t gathered = { .ids = NULL };
    bson_t *filter = BCON_NEW ("room", BCON_UTF8 (room_key),
                               "file.id", "{", "$exists", BCON_BOOL (true), "}");
    bson_t *opts = BCON_NEW ("projection", "{", "_id", BCON_INT32 (0),
                                                "file.id", BCON_INT32 (1), "}");
    int rc = sm_find (self, self->messages, filter, opts, s_on_room_file, &gathered, error);
    bson_destroy (opts);
    bson_destroy (filter);
    *ids_p = gathered.ids;
    *count_p = gathered.count;
    return rc;
}


//  --------------------------------------------------------------------------
//  store.file.create

//  The sizes of the user's files, complete or not: one aggregation on
//  the user_key index. Returns 0 or -1.
static int
s_used_bytes (sm_store_t *self, const char *user_key, int64_t *used_p, bson_error_t *error)
{
    bson_t *pipeline = BCON_NEW ("pipeline", "[",
        "{", "$match", "{", "user_key", BCON_UTF8 (user_key), "}", "}",
        "{", "$group", "{", "_id", BCON_NULL, "total", "{", "$sum", BCON_UTF8 ("$size"), "}",
        "}", "}", "]");
    self->round_trips++;
    mongoc_cursor_t *cursor = mongoc_collection_aggregate (self->files, MONGOC_QUERY_NONE,
                                                           pipeline, NULL, NULL);
    const bson_t *document;
    *used_p = 0;
    if (mongoc_cursor_next (cursor, &document))
        *used_p = sm_bson_int (document, "total", 0);
    bool failed = mongoc_cursor_error (cursor, error);
    mongoc_cursor_destroy (cursor);
    bson_destroy (pipeline);
    return failed ? -1 : 0;
}

//  The new file's document
static void
s_build_file (const st_file_create_t *create, const char *user, int32_t chunk_size,
              bson_t *document)
{
    bson_oid_t oid;
    bson_oid_init (&oid, NULL);
    BSON_APPEND_OID (document, "_id", &oid);
    bson_append_utf8 (document, "id", 2, create->id.data, (int) create->id.size);
    BSON_APPEND_UTF8 (document, "user", user);
    BSON_APPEND_UTF8 (document, "user_key", create->user.key);
    bson_append_utf8 (document, "name", 4, create->name.data, (int) create->name.size);
    bson_append_utf8 (document, "type", 4, create->type.data, (int) create->type.size);
    BSON_APPEND_INT64 (document, "size", (int64_t) create->size);
    BSON_APPEND_DATE_TIME (document, "ts", create->ts);
    BSON_APPEND_INT64 (document, "written", 0);
    BSON_APPEND_BOOL (document, "complete", false);
    //  Its chunks' size, for its life (the option may change meanwhile)
    BSON_APPEND_INT32 (document, "chunk_size", chunk_size);
}

//  The checks before the insert: the user, the id, the quota. Returns 1
//  to go on, 0 with pending failed, -1 with error set.
static int
s_create_judge (sm_store_t *self, sm_pending_t *pending, char *user, bson_error_t *error)
{
    const st_file_create_t *create = &pending->request->as.file_create;
    int rc = sm_find_user_name (self, create->user.key, user, error);
    if (rc == 0)
        st_reply_no_user (pending->request, create->user.text);
    if (rc != 1)
        return rc;
    bson_t found = BSON_INITIALIZER;
    rc = s_find_file (self, create->id, NULL, &found, error);
    bson_destroy (&found);
    if (rc == 1)
        sm_fail (pending, "conflict", "A file with this id exists.");
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    //  A chunk's n is an int32 (GridFS): a file of more chunks cannot be kept
    if (create->size > (uint64_t) INT32_MAX * (uint64_t) self->chunk_size) {
        sm_fail (pending, "bad_request", "size needs more than 2^31 - 1 GridFS chunks of %d "
                 "bytes (store-mongo.file_chunk_size)", (int) self->chunk_size);
        return 0;
    }
    int64_t used = 0;
    if (create->quota && s_used_bytes (self, create->user.key, &used, error))
        return -1;
    if (create->quota && (uint64_t) used + create->size > create->quota) {
        sm_fail (pending, "quota_exceeded", "The user's files would pass the quota of %llu "
                 "bytes.", (unsigned long long) create->quota);
        return 0;
    }
    return 1;
}

int
sm_run_file_create (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                    bson_error_t *error)
{
    (void) packer;
    const st_file_create_t *create = &pending->request->as.file_create;
    char user [ST_NAME_MAX + 1];
    int rc = s_create_judge (self, pending, user, error);
    if (rc != 1)
        return rc;
    bson_t document = BSON_INITIALIZER;
    s_build_file (create, user, self->chunk_size, &document);
    self->round_trips++;
    bool ok = mongoc_collection_insert_one (self->files, &document, NULL, NULL, error);
    bson_destroy (&document);
    if (!ok && sm_is_duplicate_key (error)) {
        sm_fail (pending, "conflict", "A file with this id exists.");
        return 0;
    }
    if (ok) {
        st_file_ref_t file = { create->id, create->name, create->size, create->type };
        st_reply_file (pending->request, &file);
    }
    return ok ? 0 : -1;
}


//  --------------------------------------------------------------------------
//  store.file.write, .commit

//  Moves `written` from the piece's offset past it, if no one else did.
//  Returns 1 when it moved, 0 when not, -1 with error set.
static int
s_advance_written (sm_store_t *self, const st_file_write_t *write, bson_error_t *error)
{
    bson_t selector = BSON_INITIALIZER;
    bson_append_utf8 (&selector, "id", 2, write->id.data, (int) write->id.size);
    BSON_APPEND_INT64 (&selector, "written", (int64_t) write->offset);
    BSON_APPEND_BOOL (&selector, "complete", false);
    bson_t *update = BCON_NEW ("$set", "{", "written",
                               BCON_INT64 ((int64_t) (write->offset + write->data.size)), "}");
    bson_t reply;
    self->round_trips++;
    bool ok = mongoc_collection_update_one (self->files, &selector, update, NULL, &reply, error);
    int64_t matched = ok ? sm_bson_int (&reply, "matchedCount", 0) : 0;
    bson_destroy (&reply);
    bson_destroy (update);
    bson_destroy (&selector);
    return ok ? matched > 0 : -1;
}

int
sm_run_file_write (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                   bson_error_t *error)
{
    const st_file_write_t *write = &pending->request->as.file_write;
    bson_t *incomplete = BCON_NEW ("complete", BCON_BOOL (false));
    bson_t file = BSON_INITIALIZER;
    int rc = s_find_file (self, write->id, incomplete, &file, error);
    int64_t written = sm_bson_int (&file, "written", 0);
    int64_t size = sm_bson_int (&file, "size", 0);
    sm_gridfs_file_t bucket;
    if (rc == 1 && !s_bucket_file (&file, &bucket, error))
        rc = -1;
    bson_destroy (&file);
    bson_destroy (incomplete);
    if (rc == 0)
        st_reply_no_file (pending->request);
    if (rc != 1)
        return rc < 0 ? -1 : 0;
    if ((uint64_t) written != write->offset) {
        sm_fail (pending, "conflict", "offset is %llu, the file has %lld bytes written",
                 (unsigned long long) write->offset, (long long) written);
        return 0;
    }
    if (write->offset + write->data.size > (uint64_t) size) {
        sm_fail (pending, "bad_request", "data passes the file's size of %lld bytes",
                 (long long) size);
        return 0;
    }
    if (write->data.size > 0
    &&  sm_gridfs_write (self, &bucket, write->offset, (const uint8_t *) write->data.data,
                         write->data.size, error))
        return -1;
    rc = write->data.size > 0 ? s_advance_written (self, write, error) : 1;
    if (rc == 0)
        sm_fail (pending, "conflict", "the file was written meanwhile");
    if (rc == 1) {
        msgpack_pack_map (packer, 1);
        pl_body_pack_str (packer, "written");
        msgpack_pack_uint64 (packer, write->offset + write->data.size);
    }
    return rc < 0 ? -1 : 0;
}

//  The bucket's fs.files document of the complete file, then the file
//  marked complete (a failure between them leaves it incomplete: the
//  commit's repeat writes the same document again). Returns 1 or -1.
static int
s_commit (sm_store_t *self, st_text_t id, const bson_t *file, bson_error_t *error)
{
    sm_gridfs_file_t bucket;
    if (!s_bucket_file (file, &bucket, error) || sm_gridfs_publish (self, &bucket, file, error))
        return -1;
    bson_t selector = BSON_INITIALIZER;
    bson_append_utf8 (&selector, "id", 2, id.data, (int) id.size);
    bson_t *update = BCON_NEW ("$set", "{", "complete", BCON_BOOL (true), "}");
    self->round_trips++;
    bool ok = mongoc_collection_update_one (self->files, &selector, update, NULL, NULL, error);
    bson_destroy (update);
    bson_destroy (&selector);
    return ok ? 1 : -1;
}

int
sm_run_file_commit (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                    bson_error_t *error)
{
    (void) packer;
    st_text_t id = pending->request->as.file_commit.id;
    bson_t *incomplete = BCON_NEW ("complete", BCON_BOOL (false));
    bson_t file = BSON_INITIALIZER;
    int rc = s_find_file (self, id, incomplete, &file, error);
    bson_destroy (incomplete);
    if (rc == 0)
        st_reply_no_file (pending->request);
    else
    if (rc == 1 && sm_bson_int (&file, "written", 0) != sm_bson_int (&file, "size", 0))
        sm_fail (pending, "bad_request", "%lld of the file's %lld bytes are written",
                 (long long) sm_bson_int (&file, "written", 0),
                 (long long) sm_bson_int (&file, "size", 0));
    else
    if (rc == 1)
        rc = s_commit (self, id, &file, error);
    if (rc == 1) {
        st_file_ref_t map = s_file_map (&file);
        st_reply_file (pending->request, &map);
    }
    bson_destroy (&file);
    return rc < 0 ? -1 : 0;
}


//  --------------------------------------------------------------------------
//  store.file.get, .read

int
sm_run_file_get (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                 bson_error_t *error)
{
    (void) packer;
    bson_t file = BSON_INITIALIZER;
    int rc = s_find_file (self, pending->request->as.file_get.id, NULL, &file, error);
    if (rc == 0)
        st_reply_no_file (pending->request);
    if (rc == 1) {
        st_file_ref_t map = s_file_map (&file);
        st_reply_file_get (pending->request, &map, sm_bson_st_text (&file, "user"),
                           sm_bson_int (&file, "ts", 0), sm_bson_bool (&file, "complete"));
    }
    bson_destroy (&file);
    return rc < 0 ? -1 : 0;
}

int
sm_run_file_read (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                  bson_error_t *error)
{
    (void) packer;
    const st_file_read_t *read = &pending->request->as.file_read;
    bson_t *complete = BCON_NEW ("complete", BCON_BOOL (true));
    bson_t file = BSON_INITIALIZER;
    int rc = s_find_file (self, read->id, complete, &file, error);
    bson_destroy (complete);
    uint64_t size = (uint64_t) sm_bson_int (&file, "size", 0);
    uint64_t from = read->offset, to = 0, covered = 0;
    uint8_t *bytes = NULL;
    sm_gridfs_file_t bucket;
    if (rc == 1 && !s_bucket_file (&file, &bucket, error))
        rc = -1;
    if (rc == 0)
        st_reply_no_file (pending->request);
    else
    if (rc == 1 && read->offset > size)
        sm_fail (pending, "bad_request", "offset passes the file's size of %llu bytes",
                 (unsigned long long) size);
    else
    if (rc == 1) {
        to = size - from < read->length ? size : from + read->length;
        bytes = (uint8_t *) malloc (to > from ? to - from : 1);
        if (!bytes)
            sm_fail (pending, "internal", "The store ran out of memory.");
        else
        if (sm_gridfs_read (self, &bucket, from, to, bytes, &covered, error))
            rc = -1;
        else
        if (covered != to - from)
            //  Its bytes are gone: the file is being deleted
            st_reply_no_file (pending->request);
        else {
            st_file_ref_t map = s_file_map (&file);
            st_reply_file_data (pending->request, &map, bytes, covered);
        }
    }
    free (bytes);
    bson_destroy (&file);
    return rc < 0 ? -1 : 0;
}


//  --------------------------------------------------------------------------
//  store.file.sweep

typedef struct {
    sm_file_id_t *ids;
    uint32_t count;
} s_candidates_t;

static void
s_on_candidate (void *arg, const bson_t *document)
{
    s_candidates_t *candidates = (s_candidates_t *) arg;
    if (candidates->count < S_SWEEP_MAX)
        sm_copy_bson_str (document, "id", candidates->ids [candidates->count++],
                          sizeof (sm_file_id_t));
}

int
sm_run_file_sweep (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
                   bson_error_t *error)
{
    //  The files created before 'before' not marked as referred to: those
    //  never referred to, and those whose release did not finish
    s_candidates_t candidates = { .ids = (sm_file_id_t *) calloc (S_SWEEP_MAX,
                                                                 sizeof (sm_file_id_t)) };
    if (!candidates.ids) {
        sm_fail (pending, "internal", "The store ran out of memory.");
        return 0;
    }
    bson_t *filter = BCON_NEW ("ts", "{", "$lt",
                               BCON_DATE_TIME (pending->request->as.file_sweep.before), "}",
                               "referenced", "{", "$ne", BCON_BOOL (true), "}");
    bson_t *opts = BCON_NEW ("projection", "{", "id", BCON_INT32 (1), "}",
                             "sort", "{", "ts", BCON_INT32 (1), "}",
                             "limit", BCON_INT64 (S_SWEEP_MAX));
    int rc = sm_find (self, self->files, filter, opts, s_on_candidate, &candidates, error);
    bson_destroy (opts);
    bson_destroy (filter);
    uint32_t deleted = 0;
    if (rc == 0 && candidates.count)
        rc = s_settle (self, candidates.ids, candidates.count, &deleted, error);
    if (rc == 0) {
        msgpack_pack_map (packer, 1);
        pl_body_pack_str (packer, "deleted");
        msgpack_pack_uint64 (packer, deleted);
    }
    free (candidates.ids);
    return rc;
}
