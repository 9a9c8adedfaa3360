/*  =========================================================================
    sm_common - what every part of store-mongo shares (see sm_common.h)
    =========================================================================
*/

#include "sm_store.h"
#include "pl_body.h"
#include "st_list.h"
#include "sm_append.h"
#include "sm_common.h"
#include "st_reply.h"
#include "sm_conn.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  --------------------------------------------------------------------------
//  Helpers

void
sm_fail (sm_pending_t *pending, const char *code, const char *format, ...)
{
    char message [ST_MESSAGE_MAX];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    st_request_fail (pending->request, code, "%s", message);
}

bool
sm_is_live (const sm_pending_t *pending)
{
    return st_request_live (pending->request) && !pending->repeated;
}

msgpack_packer *
sm_packer (sm_pending_t *pending)
{
    return st_request_packer (pending->request);
}

//  Packs a string field of a document, "" if absent
void
sm_pack_bson_str (msgpack_packer *packer, const bson_t *document, const char *key)
{
    bson_iter_t iter;
    uint32_t size = 0;
    const char *string = NULL;
    if (bson_iter_init_find (&iter, document, key) && BSON_ITER_HOLDS_UTF8 (&iter))
        string = bson_iter_utf8 (&iter, &size);
    msgpack_pack_str_with_body (packer, string ? string : "", string ? size : 0);
}

//  Packs a time field of a document: an integer, or nil if null or absent
void
sm_pack_bson_time (msgpack_packer *packer, const bson_t *document, const char *key)
{
    bson_iter_t iter;
    if (bson_iter_init_find (&iter, document, key)
    &&  (BSON_ITER_HOLDS_INT64 (&iter) || BSON_ITER_HOLDS_INT32 (&iter)
    ||   BSON_ITER_HOLDS_DOUBLE (&iter)))
        msgpack_pack_int64 (packer, bson_iter_as_int64 (&iter));
    else
        msgpack_pack_nil (packer);
}

//  Copies a string field of a document (key may be a dotted path) into
//  buffer (size bytes); "" if absent
void
sm_copy_bson_str (const bson_t *document, const char *key, char *buffer, size_t size)
{
    bson_iter_t iter;
    uint32_t length = 0;
    const char *string = NULL;
    if (sm_bson_at (document, key, &iter) && BSON_ITER_HOLDS_UTF8 (&iter))
        string = bson_iter_utf8 (&iter, &length);
    snprintf (buffer, size, "%.*s", string ? (int) length : 0, string ? string : "");
}


//  --------------------------------------------------------------------------
//  Talking to the server

//  Runs a find; calls each (arg, document) per document. Returns 0, or -1
//  with error set.

int
sm_find (sm_store_t *self, mongoc_collection_t *collection, const bson_t *filter,
         const bson_t *opts, sm_each_fn *each, void *arg, bson_error_t *error)
{
    self->round_trips++;
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (collection, filter, opts, NULL);
    const bson_t *document;
    while (mongoc_cursor_next (cursor, &document))
        each (arg, document);
    bool failed = mongoc_cursor_error (cursor, error);
    mongoc_cursor_destroy (cursor);
    return failed ? -1 : 0;
}

//  Runs a find for at most one document, copied into found (initialized by
//  the caller). Returns 1 if found, 0 if not, -1 with error set.
void
sm_keep_first (void *arg, const bson_t *document)
{
    bson_t *found = (bson_t *) arg;
    if (bson_empty (found))
        bson_concat (found, document);
}

int
sm_find_one (sm_store_t *self, mongoc_collection_t *collection, const bson_t *filter,
             const bson_t *projection, bson_t *found, bson_error_t *error)
{
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_INT64 (&opts, "limit", 1);
    BSON_APPEND_BOOL (&opts, "singleBatch", true);
    if (projection)
        BSON_APPEND_DOCUMENT (&opts, "projection", projection);
    int rc = sm_find (self, collection, filter, &opts, sm_keep_first, found, error);
    bson_destroy (&opts);
    if (rc)
        return -1;
    return bson_empty (found) ? 0 : 1;
}

//  The filter {field: {$in: [...]}}, started: append values to *array_p,
//  then call sm_in_end
void
sm_in_begin (bson_t *filter, const char *field, bson_t *condition, bson_t *array)
{
    bson_init (filter);
    BSON_APPEND_DOCUMENT_BEGIN (filter, field, condition);
    BSON_APPEND_ARRAY_BEGIN (condition, "$in", array);
}

void
sm_in_end (bson_t *filter, bson_t *condition, bson_t *array)
{
    bson_append_array_end (condition, array);
    bson_append_document_end (filter, condition);
}

//  Appends the next value of an array being built
void
sm_array_append_text (bson_t *array, uint32_t *count, const char *data, uint32_t size)
{
    char index_key [16];
    const char *key;
    size_t key_size = bson_uint32_to_string (*count, &key, index_key, sizeof index_key);
    bson_append_utf8 (array, key, (int) key_size, data, (int) size);
    (*count)++;
}


//  --------------------------------------------------------------------------
//  Runs of writes that go to the server together

//  A seq of pending's run is taken in its timeline (msg.append,
//  member.add/remove: the room's; pm.append: the conversation's): conflict,
//  or unavailable when a first part of the run was stored before the seq
//  was found taken (the outcome is unknown, as any lost answer's)
void
sm_fail_seq_taken (sm_pending_t *pending, uint64_t seq, bool part_stored)
{
    bool pm = pending->op == ST_PM_APPEND;
    char timeline [2 * ST_NAME_MAX + 32];
    if (pm)
        snprintf (timeline, sizeof timeline, "The conversation of '%s' and '%s'",
                  pending->from_name, pending->to_name);
    else
        snprintf (timeline, sizeof timeline, "The room '%.*s'", (int) pending->room.size,
                  pending->room.data);
    if (part_stored)
        sm_fail (pending, "unavailable", "%s: seq %" PRIu64 " was taken meanwhile; the run's"
                 " %s before it are appended, the rest not.", timeline, seq,
                 pm ? "messages" : "entries");
    else
        sm_fail (pending, "conflict", "%s has %s with seq %" PRIu64 " already.", timeline,
                 pm ? "a message" : "an entry", seq);
}

//  A unique key of pending's is taken: says which
void
sm_fail_conflict (sm_pending_t *pending)
{
    switch (pending->op) {
        case ST_USER_CREATE:
            sm_fail (pending, "conflict", "The name '%.*s' is taken (names ignore case).",
                     (int) pending->name.size, pending->name.data);
            break;
        case ST_ROOM_CREATE:
            sm_fail (pending, "conflict", "A room named '%.*s' exists (room names ignore case).",
                     (int) pending->room.size, pending->room.data);
            break;
        case ST_MSG_APPEND:
        case ST_MEMBER_ADD:
        case ST_MEMBER_REMOVE:
        case ST_PM_APPEND:
            sm_fail_seq_taken (pending, sm_first_seq (pending), false);
            break;
        default:
            sm_fail (pending, "conflict", "This token hash is stored already.");
            break;
    }
}


const char *
sm_name_key_of (const sm_pending_t *pending, uint32_t *size_p)
{
    *size_p = (uint32_t) strlen (pending->key);
    return pending->key;
}

const char *
sm_hash_key_of (const sm_pending_t *pending, uint32_t *size_p)
{
    *size_p = pending->hash.size;
    return pending->hash.data;
}


static void
s_on_match (void *arg, const bson_t *document)
{
    sm_match_t *match = (sm_match_t *) arg;
    bson_iter_t iter;
    if (!bson_iter_init_find (&iter, document, match->field) || !BSON_ITER_HOLDS_UTF8 (&iter))
        return;
    uint32_t size;
    const char *value = bson_iter_utf8 (&iter, &size);
    for (sm_pending_t *pending = match->first; pending < match->end; pending++) {
        if (!sm_is_live (pending))
            continue;
        uint32_t key_size;
        const char *key = match->key_of (pending, &key_size);
        if (key_size != size || memcmp (key, value, size) != 0)
            continue;
        if (match->code && strcmp (match->code, "conflict") == 0)
            sm_fail_conflict (pending);
        else
            //  token.put: the owner, as registered
            sm_copy_bson_str (document, "name", pending->owner, sizeof pending->owner);
    }
}

//  Finds the documents of collection whose field equals the key of a live
//  request of the run, and applies match to each. Returns 0 or -1.
int
sm_match_run (sm_store_t *self, mongoc_collection_t *collection, sm_match_t *match,
              const char *projected, bson_error_t *error)
{
    bson_t filter, condition, array;
    sm_in_begin (&filter, match->field, &condition, &array);
    uint32_t count = 0;
    for (sm_pending_t *pending = match->first; pending < match->end; pending++)
        if (sm_is_live (pending)) {
            uint32_t size;
            const char *key = match->key_of (pending, &size);
            sm_array_append_text (&array, &count, key, size);
        }
    sm_in_end (&filter, &condition, &array);
    int rc = 0;
    if (count > 0) {
        bson_t opts = BSON_INITIALIZER, projection;
        BSON_APPEND_DOCUMENT_BEGIN (&opts, "projection", &projection);
        BSON_APPEND_INT32 (&projection, match->field, 1);
        if (projected)
            BSON_APPEND_INT32 (&projection, projected, 1);
        bson_append_document_end (&opts, &projection);
        rc = sm_find (self, collection, &filter, &opts, s_on_match, match, error);
        bson_destroy (&opts);
    }
    bson_destroy (&filter);
    return rc;
}

//  Two live requests of the run with one key: the later one conflicts, as
//  it would have had they come in separate batches
void
sm_settle_duplicates (sm_pending_t *first, sm_pending_t *end, sm_key_of_fn *key_of)
{
    for (sm_pending_t *pending = first + 1; pending < end; pending++) {
        if (!sm_is_live (pending))
            continue;
        uint32_t size;
        const char *key = key_of (pending, &size);
        for (sm_pending_t *earlier = first; earlier < pending; earlier++) {
            uint32_t earlier_size;
            const char *earlier_key = sm_is_live (earlier) ? key_of (earlier, &earlier_size) : NULL;
            if (earlier_key && earlier_size == size && memcmp (earlier_key, key, size) == 0) {
                sm_fail_conflict (pending);
                break;
            }
        }
    }
}

//  The writeErrors of an insert's reply, to step through with
//  bson_iter_next. False if it has none.
bool
sm_write_errors (const bson_t *reply, bson_iter_t *errors)
{
    bson_iter_t iter;
    return bson_iter_init_find (&iter, reply, "writeErrors")
        && BSON_ITER_HOLDS_ARRAY (&iter) && bson_iter_recurse (&iter, errors);
}

//  The write error at errors: the index of its document, below count, and
//  the server's error. False if it is not one we can read.
bool
sm_write_error (const bson_iter_t *errors, size_t count, size_t *index_p, bson_error_t *own)
{
    bson_t entry;
    uint32_t size;
    const uint8_t *data;
    if (!BSON_ITER_HOLDS_DOCUMENT (errors))
        return false;
    bson_iter_document (errors, &size, &data);
    if (!bson_init_static (&entry, data, size))
        return false;
    bson_iter_t field;
    int64_t index = -1, code = 0;
    if (bson_iter_init_find (&field, &entry, "index"))
        index = bson_iter_as_int64 (&field);
    if (bson_iter_init_find (&field, &entry, "code"))
        code = bson_iter_as_int64 (&field);
    if (index < 0 || (uint64_t) index >= count)
        return false;
    *index_p = (size_t) index;
    *own = (bson_error_t) { .domain = MONGOC_ERROR_SERVER, .code = (uint32_t) code };
    sm_copy_bson_str (&entry, "errmsg", own->message, sizeof own->message);
    return true;
}

int
sm_docs_init (sm_docs_t *docs, size_t capacity, sm_pending_t *first, sm_pending_t *end)
{
    docs->documents = (bson_t **) calloc (capacity ? capacity : 1, sizeof (bson_t *));
    docs->owners = (sm_pending_t **) calloc (capacity ? capacity : 1, sizeof (sm_pending_t *));
    docs->count = 0;
    if (docs->documents && docs->owners)
        return 0;
    sm_docs_destroy (docs);
    for (sm_pending_t *pending = first; pending < end; pending++)
        if (sm_is_live (pending))
            sm_fail (pending, "internal", "The store ran out of memory.");
    return -1;
}

bson_t *
sm_docs_add (sm_docs_t *docs, sm_pending_t *owner)
{
    docs->owners [docs->count] = owner;
    docs->documents [docs->count] = bson_new ();
    return docs->documents [docs->count++];
}

void
sm_docs_fail (sm_store_t *self, sm_docs_t *docs, size_t start, const bson_error_t *error)
{
    for (size_t index = start; index < docs->count; index++)
        if (sm_is_live (docs->owners [index]))
            sm_fail_unavailable (self, docs->owners [index], error);
}

void
sm_docs_destroy (sm_docs_t *docs)
{
    for (size_t index = 0; index < docs->count; index++)
        bson_destroy (docs->documents [index]);
    free (docs->documents);
    free (docs->owners);
    docs->documents = NULL;
    docs->owners = NULL;
    docs->count = 0;
}

//  An unordered insert failed without losing the server: each failed
//  document names its index, the others are in. Answers the owners.
static void
s_answer_write_errors (sm_store_t *self, sm_docs_t *docs, const bson_t *reply,
                       const bson_error_t *error, const char *what)
{
    bson_iter_t errors;
    if (!sm_write_errors (reply, &errors)) {
        sm_note_failure (self, what, error);
        sm_docs_fail (self, docs, 0, error);
        return;
    }
    while (bson_iter_next (&errors)) {
        size_t index;
        bson_error_t own;
        if (!sm_write_error (&errors, docs->count, &index, &own))
            continue;
        sm_pending_t *pending = docs->owners [index];
        if (sm_is_duplicate_key (&own))
            sm_fail_conflict (pending);
        else {
            sm_note_failure (self, what, &own);
            sm_fail_unavailable (self, pending, &own);
        }
    }
    //  A write concern not met leaves the rest unacknowledged
    if (bson_has_field (reply, "writeConcernErrors")) {
        sm_note_failure (self, what, error);
        sm_docs_fail (self, docs, 0, error);
    }
}

//  Inserts one document per live request of [first, end), built by
//  build (pending, document), unordered, and answers each from the server's
//  verdict on it. Returns 0, or -1 if the server could not be reached.
int
sm_insert_run (sm_store_t *self, mongoc_collection_t *collection, sm_pending_t *first,
               sm_pending_t *end, sm_build_fn *build, const char *what)
{
    sm_docs_t docs;
    if (sm_docs_init (&docs, (size_t) (end - first), first, end))
        return 0;
    for (sm_pending_t *pending = first; pending < end; pending++)
        if (sm_is_live (pending))
            build (pending, sm_docs_add (&docs, pending));
    int rc = 0;
    if (docs.count > 0) {
        bson_t *opts = BCON_NEW ("ordered", BCON_BOOL (false));
        bson_t reply;
        bson_error_t error;
        self->round_trips++;
        bool ok = mongoc_collection_insert_many (collection, (const bson_t **) docs.documents,
                                                 docs.count, opts, &reply, &error);
        bson_destroy (opts);
        if (ok)
            sm_mark_reachable (self);
        else
        if (!sm_is_unreachable (&error))
            s_answer_write_errors (self, &docs, &reply, &error, what);
        else {
            sm_note_failure (self, what, &error);
            sm_docs_fail (self, &docs, 0, &error);
            rc = -1;
        }
        bson_destroy (&reply);
    }
    sm_docs_destroy (&docs);
    return rc;
}

//  Fails every live request of the run as unavailable
void
sm_fail_run (sm_store_t *self, sm_pending_t *first, sm_pending_t *end, const bson_error_t *error)
{
    for (sm_pending_t *pending = first; pending < end; pending++)
        if (sm_is_live (pending))
            sm_fail_unavailable (self, pending, error);
}

//  Two names equal without regard to ASCII case
bool
sm_same_name (const char *left, uint32_t left_size, const char *right, uint32_t right_size)
{
    if (left_size != right_size)
        return false;
    for (uint32_t index = 0; index < left_size; index++) {
        char a = left [index], b = right [index];
        if (a >= 'A' && a <= 'Z')
            a = (char) (a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (char) (b - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

//  The field at a dotted path of a document
bool
sm_bson_at (const bson_t *document, const char *path, bson_iter_t *found)
{
    bson_iter_t iter;
    return bson_iter_init (&iter, document) && bson_iter_find_descendant (&iter, path, found);
}

//  An integer or date at path, or fallback
int64_t
sm_bson_int (const bson_t *document, const char *path, int64_t fallback)
{
    bson_iter_t iter;
    if (!sm_bson_at (document, path, &iter))
        return fallback;
    if (BSON_ITER_HOLDS_DATE_TIME (&iter))
        return bson_iter_date_time (&iter);
    if (BSON_ITER_HOLDS_INT64 (&iter) || BSON_ITER_HOLDS_INT32 (&iter)
    ||  BSON_ITER_HOLDS_DOUBLE (&iter))
        return bson_iter_as_int64 (&iter);
    return fallback;
}

bool
sm_bson_bool (const bson_t *document, const char *path)
{
    bson_iter_t iter;
    return sm_bson_at (document, path, &iter) && BSON_ITER_HOLDS_BOOL (&iter)
        && bson_iter_bool (&iter);
}

//  The string at path, "" if absent; size into *size_p
const char *
sm_bson_text (const bson_t *document, const char *path, uint32_t *size_p)
{
    bson_iter_t iter;
    if (sm_bson_at (document, path, &iter) && BSON_ITER_HOLDS_UTF8 (&iter))
        return bson_iter_utf8 (&iter, size_p);
    *size_p = 0;
    return "";
}

st_text_t
sm_bson_st_text (const bson_t *document, const char *path)
{
    st_text_t text;
    text.data = sm_bson_text (document, path, &text.size);
    return text;
}

void
sm_pack_bson_text (msgpack_packer *packer, const bson_t *document, const char *path)
{
    uint32_t size;
    const char *text = sm_bson_text (document, path, &size);
    msgpack_pack_str_with_body (packer, text, size);
}

//  The elements of an array field that are strings, counted
uint32_t
sm_bson_array_count (const bson_t *document, const char *key)
{
    bson_iter_t iter, element;
    uint32_t count = 0;
    if (bson_iter_init_find (&iter, document, key) && BSON_ITER_HOLDS_ARRAY (&iter)
    &&  bson_iter_recurse (&iter, &element))
        while (bson_iter_next (&element))
            if (BSON_ITER_HOLDS_UTF8 (&element))
                count++;
    return count;
}

//  Whether the array field holds name without regard to case; the element
//  as stored goes into found (ST_NAME_MAX + 1 bytes) if given
bool
sm_bson_array_has (const bson_t *document, const char *key, const char *name, uint32_t size,
                   char *found)
{
    bson_iter_t iter, element;
    if (!bson_iter_init_find (&iter, document, key) || !BSON_ITER_HOLDS_ARRAY (&iter)
    ||  !bson_iter_recurse (&iter, &element))
        return false;
    while (bson_iter_next (&element)) {
        if (!BSON_ITER_HOLDS_UTF8 (&element))
            continue;
        uint32_t length;
        const char *value = bson_iter_utf8 (&element, &length);
        if (sm_same_name (value, length, name, size)) {
            if (found)
                snprintf (found, ST_NAME_MAX + 1, "%.*s", (int) length, value);
            return true;
        }
    }
    return false;
}

static int
s_compare_lower (const void *left, const void *right)
{
    const char *a = *(char *const *) left, *b = *(char *const *) right;
    for (;; a++, b++) {
        unsigned char x = (unsigned char) *a, y = (unsigned char) *b;
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char) (x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char) (y - 'A' + 'a');
        if (x != y || x == 0)
            return (int) x - (int) y;
    }
}

//  Packs the strings of an array field, sorted by lower-cased name
void
sm_pack_sorted_names (msgpack_packer *packer, const bson_t *document, const char *key)
{
    uint32_t count = sm_bson_array_count (document, key);
    const char **names = count ? (const char **) calloc (count, sizeof (char *)) : NULL;
    uint32_t used = 0;
    bson_iter_t iter, element;
    if (names && bson_iter_init_find (&iter, document, key) && BSON_ITER_HOLDS_ARRAY (&iter)
    &&  bson_iter_recurse (&iter, &element))
        while (bson_iter_next (&element) && used < count)
            if (BSON_ITER_HOLDS_UTF8 (&element))
                names [used++] = bson_iter_utf8 (&element, NULL);
    //  Names hold no NUL (validated), so the BSON strings end where they should
    qsort (names, used, sizeof (char *), s_compare_lower);
    msgpack_pack_array (packer, used);
    for (uint32_t index = 0; index < used; index++)
        pl_body_pack_str (packer, names [index]);
    free (names);
}


//  Entries read for msg.history, in the order found
typedef struct {
    bson_t **documents;             //  owned copies
    uint32_t count;
    uint32_t capacity;              //  limit + 1
} s_entries_t;

static void
s_on_entry (void *arg, const bson_t *document)
{
    s_entries_t *entries = (s_entries_t *) arg;
    if (entries->count < entries->capacity)
        entries->documents [entries->count++] = bson_copy (document);
}


//  The answer {messages, more} from the entries found, read from the
//  cursor's side: the list keeps the entries next to the cursor when it
//  cuts for the bytes, and answers them oldest first
static void
s_answer_page (sm_pending_t *pending, const s_entries_t *entries, bool oldest_first,
               sm_pack_fn *pack)
{
    st_list_t *list = st_list_new (pending->limit, !oldest_first);
    if (!list) {
        sm_fail (pending, "internal", "The store ran out of memory.");
        return;
    }
    for (uint32_t index = 0; index < entries->count; index++) {
        pack (st_list_packer (list), entries->documents [index]);
        if (!st_list_push (list))
            break;
    }
    if (pending->with_read_seq) {
        //  msg.history naming a user: its read marker too
        msgpack_packer *packer = st_request_packer (pending->request);
        msgpack_pack_map (packer, 3);
        st_list_finish (list, packer, "messages");
        pl_body_pack_str (packer, "more");
        st_reply_bool (packer, st_list_more (list));
        pl_body_pack_str (packer, "read_seq");
        msgpack_pack_uint64 (packer, pending->read_seq);
    }
    else
        st_list_answer (list, pending->request, "messages");
    st_list_destroy (&list);
}

int
sm_run_page (sm_store_t *self, sm_pending_t *pending, mongoc_collection_t *collection,
             const char *field, const char *key, const char *hint, sm_pack_fn *pack,
             msgpack_packer *packer, bson_error_t *error)
{
    (void) packer;                  //  the list packs the answer
    bson_t filter = BSON_INITIALIZER, range;
    BSON_APPEND_UTF8 (&filter, field, key);
    if (pending->cursor != ST_CURSOR_NONE) {
        BSON_APPEND_DOCUMENT_BEGIN (&filter, "seq", &range);
        BSON_APPEND_INT64 (&range, pending->cursor == ST_CURSOR_AFTER ? "$gt" : "$lt",
                           (int64_t) pending->cursor_seq);
        bson_append_document_end (&filter, &range);
    }
    bool oldest_first = pending->cursor == ST_CURSOR_AFTER;
    bson_t *opts = BCON_NEW ("sort", "{", "seq", BCON_INT32 (oldest_first ? 1 : -1), "}",
                             "limit", BCON_INT64 ((int64_t) pending->limit + 1),
                             "hint", BCON_UTF8 (hint),
                             "projection", "{", "_id", BCON_INT32 (0),
                                                "words", BCON_INT32 (0), "}");
    s_entries_t entries = { .capacity = pending->limit + 1 };
    entries.documents = (bson_t **) calloc (entries.capacity, sizeof (bson_t *));
    int rc = 0;
    if (!entries.documents)
        sm_fail (pending, "internal", "The store ran out of memory.");
    else {
        rc = sm_find (self, collection, &filter, opts, s_on_entry, &entries, error);
        if (rc == 0)
            s_answer_page (pending, &entries, oldest_first, pack);
        for (uint32_t index = 0; index < entries.count; index++)
            bson_destroy (entries.documents [index]);
        free (entries.documents);
    }
    bson_destroy (opts);
    bson_destroy (&filter);
    return rc;
}

st_text_t
sm_bson_nonce (const bson_t *document)
{
    bson_iter_t iter;
    if (!bson_iter_init_find (&iter, document, "nonce") || !BSON_ITER_HOLDS_UTF8 (&iter))
        return (st_text_t) { NULL, 0 };
    uint32_t size;
    const char *data = bson_iter_utf8 (&iter, &size);
    return (st_text_t) { data, size };
}

void
sm_append_nonce (bson_t *document, const char *sender, st_text_t nonce)
{
    BSON_APPEND_UTF8 (document, "sender", sender);
    bson_append_utf8 (document, "nonce", 5, nonce.data, (int) nonce.size);
}
