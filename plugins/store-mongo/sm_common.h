/*  =========================================================================
    sm_common - what every part of store-mongo shares

    A queued request's failure and reset; finds, $in filters and arrays;
    readers and packers of BSON fields; the unordered insert of a run of
    user.create or token.put requests, and the look-up before it that
    settles taken names and hashes (see store_mongo.c, Uniqueness); a page
    of a timeline, for msg.history and pm.history.
    =========================================================================
*/

#ifndef SM_COMMON_H_INCLUDED
#define SM_COMMON_H_INCLUDED

#include "sm_store.h"

//  Called by sm_find once per document found
typedef void (sm_each_fn) (void *arg, const bson_t *document);

//  Builds the document a request of a run inserts (sm_insert_run)
typedef void (sm_build_fn) (const sm_pending_t *pending, bson_t *document);

//  The key a request of a run is known by (its name, its token hash)
typedef const char *(sm_key_of_fn) (const sm_pending_t *pending, uint32_t *size_p);

//  Packs one entry of a timeline page (sm_run_page)
typedef void (sm_pack_fn) (msgpack_packer *packer, const bson_t *document);

//  The documents a run inserts, in order, and the request each comes from
typedef struct {
    bson_t **documents;             //  owned
    sm_pending_t **owners;          //  the run's requests, borrowed
    size_t count;                   //  documents added
} sm_docs_t;

//  What a lookup by $in finds: the range of the run and how to fail a match
typedef struct {
    sm_pending_t *first;            //  the run
    sm_pending_t *end;
    sm_key_of_fn *key_of;           //  the request's key
    const char *field;              //  the document's field that holds the key
    const char *code;               //  failure for a match, or NULL for token.put owners
} sm_match_t;

//  Fails pending's request with code and a sentence (st_request_fail)
void
    sm_fail (sm_pending_t *pending, const char *code, const char *format, ...)
        __attribute__ ((format (printf, 3, 4)));

//  True for requests that are still to be applied: valid, not answered
bool
    sm_is_live (const sm_pending_t *pending);

//  The packer of pending's ok answer (st_request_packer)
msgpack_packer *
    sm_packer (sm_pending_t *pending);

//  Packs a string field of a document, "" if absent
void
    sm_pack_bson_str (msgpack_packer *packer, const bson_t *document, const char *key);

//  Packs a time field of a document: an integer, or nil if null or absent
void
    sm_pack_bson_time (msgpack_packer *packer, const bson_t *document, const char *key);

//  Copies a string field of a document (key may be a dotted path) into
//  buffer (size bytes); "" if absent
void
    sm_copy_bson_str (const bson_t *document, const char *key, char *buffer, size_t size);

int
    sm_find (sm_store_t *self, mongoc_collection_t *collection, const bson_t *filter,
             const bson_t *opts, sm_each_fn *each, void *arg, bson_error_t *error);

//  Runs a find for at most one document, copied into found (initialized by
//  the caller). Returns 1 if found, 0 if not, -1 with error set.
void
    sm_keep_first (void *arg, const bson_t *document);

int
    sm_find_one (sm_store_t *self, mongoc_collection_t *collection, const bson_t *filter,
                 const bson_t *projection, bson_t *found, bson_error_t *error);

//  The filter {field: {$in: [...]}}, started: append values to *array_p,
//  then call sm_in_end
void
    sm_in_begin (bson_t *filter, const char *field, bson_t *condition, bson_t *array);

void
    sm_in_end (bson_t *filter, bson_t *condition, bson_t *array);

//  Appends the next value of an array being built
void
    sm_array_append_text (bson_t *array, uint32_t *count, const char *data, uint32_t size);

//  A seq of pending's run is taken in its timeline (msg.append,
//  member.add/remove: the room's; pm.append: the conversation's): conflict,
//  or unavailable when a first part of the run was stored before the seq
//  was found taken (the outcome is unknown, as any lost answer's)
void
    sm_fail_seq_taken (sm_pending_t *pending, uint64_t seq, bool part_stored);

//  A unique key of pending's is taken: says which
void
    sm_fail_conflict (sm_pending_t *pending);

const char *
    sm_name_key_of (const sm_pending_t *pending, uint32_t *size_p);

const char *
    sm_hash_key_of (const sm_pending_t *pending, uint32_t *size_p);

//  Finds the documents of collection whose field equals the key of a live
//  request of the run, and applies match to each. Returns 0 or -1.
int
    sm_match_run (sm_store_t *self, mongoc_collection_t *collection, sm_match_t *match,
                  const char *projected, bson_error_t *error);

//  Two live requests of the run with one key: the later one conflicts, as
//  it would have had they come in separate batches
void
    sm_settle_duplicates (sm_pending_t *first, sm_pending_t *end, sm_key_of_fn *key_of);

//  The writeErrors of an insert's reply, to step through with
//  bson_iter_next. False if it has none.
bool
    sm_write_errors (const bson_t *reply, bson_iter_t *errors);

//  The write error at errors: the index of its document, below count, and
//  the server's error. False if it is not one we can read.
bool
    sm_write_error (const bson_iter_t *errors, size_t count, size_t *index_p, bson_error_t *own);

//  Room for capacity documents. Returns 0, or -1 after failing every live
//  request of [first, end) when out of memory.
int
    sm_docs_init (sm_docs_t *docs, size_t capacity, sm_pending_t *first, sm_pending_t *end);

//  A new empty document, the next one, inserted for owner
bson_t *
    sm_docs_add (sm_docs_t *docs, sm_pending_t *owner);

//  Fails as unavailable the live owners of the documents from start on
void
    sm_docs_fail (sm_store_t *self, sm_docs_t *docs, size_t start, const bson_error_t *error);

//  Destroys the documents
void
    sm_docs_destroy (sm_docs_t *docs);

int
    sm_insert_run (sm_store_t *self, mongoc_collection_t *collection, sm_pending_t *first,
                   sm_pending_t *end, sm_build_fn *build, const char *what);

//  Fails every live request of the run as unavailable
void
    sm_fail_run (sm_store_t *self, sm_pending_t *first, sm_pending_t *end,
                 const bson_error_t *error);

//  Two names equal without regard to ASCII case
bool
    sm_same_name (const char *left, uint32_t left_size, const char *right, uint32_t right_size);

//  The field at a dotted path of a document
bool
    sm_bson_at (const bson_t *document, const char *path, bson_iter_t *found);

//  An integer or date at path, or fallback
int64_t
    sm_bson_int (const bson_t *document, const char *path, int64_t fallback);

bool
    sm_bson_bool (const bson_t *document, const char *path);

//  The string at path, "" if absent; size into *size_p
const char *
    sm_bson_text (const bson_t *document, const char *path, uint32_t *size_p);

//  The string at path as a borrowed text, "" if absent
st_text_t
    sm_bson_st_text (const bson_t *document, const char *path);

//  An entry's nonce as a borrowed text; data NULL when it has none
st_text_t
    sm_bson_nonce (const bson_t *document);

//  Adds a nonce and its sender (lower-cased) to an entry's document: the
//  fields of the partial unique indexes SM_NONCE_INDEX, SM_PM_NONCE_INDEX
void
    sm_append_nonce (bson_t *document, const char *sender, st_text_t nonce);

void
    sm_pack_bson_text (msgpack_packer *packer, const bson_t *document, const char *path);

//  The elements of an array field that are strings, counted
uint32_t
    sm_bson_array_count (const bson_t *document, const char *key);

//  Whether the array field holds name without regard to case; the element
//  as stored goes into found (ST_NAME_MAX + 1 bytes) if given
bool
    sm_bson_array_has (const bson_t *document, const char *key, const char *name, uint32_t size,
                       char *found);

//  Packs the strings of an array field, sorted by lower-cased name
void
    sm_pack_sorted_names (msgpack_packer *packer, const bson_t *document, const char *key);

int
    sm_run_page (sm_store_t *self, sm_pending_t *pending, mongoc_collection_t *collection,
                 const char *field, const char *key, const char *hint, sm_pack_fn *pack,
                 msgpack_packer *packer, bson_error_t *error);

#endif
