/*  =========================================================================
    sm_words - the words of a message's document (see sm_words.h)
    =========================================================================
*/

#include "sm_words.h"
#include "sm_common.h"
#include "pl_words.h"

#include <stdlib.h>
#include <string.h>

//  Documents per bulk of the migration's updates
#define S_FILL_PAGE     1000

//  The words of one text, gathered: each NUL-terminated in bytes, in order
typedef struct {
    char *bytes;
    size_t used;
    size_t capacity;
    size_t count;
    bool failed;                    //  out of memory: the words stop there
} s_gathered_t;

static void
s_gather (const char *word, size_t size, void *arg)
{
    s_gathered_t *gathered = (s_gathered_t *) arg;
    if (gathered->failed || size == 0)
        return;
    if (gathered->used + size + 1 > gathered->capacity) {
        size_t capacity = (gathered->capacity + size + 1) * 2;
        char *bytes = (char *) realloc (gathered->bytes, capacity);
        if (!bytes) {
            gathered->failed = true;
            return;
        }
        gathered->bytes = bytes;
        gathered->capacity = capacity;
    }
    memcpy (gathered->bytes + gathered->used, word, size);
    gathered->bytes [gathered->used + size] = 0;
    gathered->used += size + 1;
    gathered->count++;
}

static int
s_compare_words (const void *left, const void *right)
{
    return strcmp (*(const char *const *) left, *(const char *const *) right);
}

void
sm_words_append (bson_t *document, const char *key, const char *text, size_t size)
{
    s_gathered_t gathered = { .bytes = NULL };
    if (text && size > 0)
        pl_words_each (text, size, s_gather, &gathered);
    const char **words = gathered.count
                       ? (const char **) calloc (gathered.count, sizeof (char *)) : NULL;
    size_t count = 0;
    for (size_t at = 0; words && at < gathered.used; at += strlen (gathered.bytes + at) + 1)
        words [count++] = gathered.bytes + at;
    if (words)
        qsort (words, count, sizeof (char *), s_compare_words);
    bson_t array;
    bson_append_array_begin (document, key, -1, &array);
    uint32_t distinct = 0;
    for (size_t index = 0; index < count; index++)
        if (index == 0 || strcmp (words [index], words [index - 1]) != 0)
            sm_array_append_text (&array, &distinct, words [index],
                                  (uint32_t) strlen (words [index]));
    bson_append_array_end (document, &array);
    free (words);
    free (gathered.bytes);
}

//  Fills the words of one collection's message documents that have none
static int
s_fill (sm_store_t *self, mongoc_collection_t *collection, uint64_t *filled,
        bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("words", "{", "$exists", BCON_BOOL (false), "}",
                               "deleted", "{", "$ne", BCON_BOOL (true), "}",
                               "$or", "[", "{", "kind", BCON_UTF8 ("message"), "}",
                                           "{", "kind", "{", "$exists", BCON_BOOL (false), "}",
                                           "}", "]");
    bson_t *opts = BCON_NEW ("projection", "{", "_id", BCON_INT32 (1), "text", BCON_INT32 (1), "}");
    self->round_trips++;
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (collection, filter, opts, NULL);
    bson_destroy (opts);
    bson_destroy (filter);
    bool ok = true;
    const bson_t *document;
    mongoc_bulk_operation_t *bulk = NULL;
    size_t queued = 0;
    while (ok && mongoc_cursor_next (cursor, &document)) {
        bson_iter_t id;
        if (!bson_iter_init_find (&id, document, "_id") || !BSON_ITER_HOLDS_OID (&id))
            continue;
        if (!bulk) {
            bson_t *bulk_opts = BCON_NEW ("ordered", BCON_BOOL (false));
            bulk = mongoc_collection_create_bulk_operation_with_opts (collection, bulk_opts);
            bson_destroy (bulk_opts);
        }
        bson_t *selector = BCON_NEW ("_id", BCON_OID (bson_iter_oid (&id)));
        uint32_t size;
        const char *text = sm_bson_text (document, "text", &size);
        bson_t update = BSON_INITIALIZER, set;
        BSON_APPEND_DOCUMENT_BEGIN (&update, "$set", &set);
        sm_words_append (&set, "words", text, size);
        bson_append_document_end (&update, &set);
        mongoc_bulk_operation_update_one_with_opts (bulk, selector, &update, NULL, NULL);
        bson_destroy (&update);
        bson_destroy (selector);
        if (++queued == S_FILL_PAGE) {
            self->round_trips++;
            ok = mongoc_bulk_operation_execute (bulk, NULL, error) != 0;
            mongoc_bulk_operation_destroy (bulk);
            bulk = NULL;
            *filled += queued;
            queued = 0;
        }
    }
    if (ok && bulk && queued) {
        self->round_trips++;
        ok = mongoc_bulk_operation_execute (bulk, NULL, error) != 0;
        *filled += queued;
    }
    mongoc_bulk_operation_destroy (bulk);
    if (ok && mongoc_cursor_error (cursor, error))
        ok = false;
    mongoc_cursor_destroy (cursor);
    return ok ? 0 : -1;
}

int
sm_words_fill (sm_store_t *self, bson_error_t *error)
{
    uint64_t filled = 0;
    if (s_fill (self, self->messages, &filled, error)
    ||  s_fill (self, self->pm_messages, &filled, error))
        return -1;
    self->host->log (self->ctx, PARLEY_LOG_INFO,
                     "schema 12: the words of %llu stored messages indexed for search",
                     (unsigned long long) filled);
    return 0;
}
