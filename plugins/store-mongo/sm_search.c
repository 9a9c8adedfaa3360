/*  =========================================================================
    sm_search - store.search on MongoDB (see sm_search.h)
    =========================================================================
*/

#include "sm_search.h"
#include "sm_common.h"
#include "sm_pm.h"
#include "sm_rooms.h"
#include "sm_users.h"
#include "pl_body.h"
#include "st_list.h"
#include "st_reply.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The greatest code point, U+10FFFF, as UTF-8: a prefix followed by
//  enough of it is above every word that starts with the prefix, and the
//  bound stays valid UTF-8 (a prefix's last byte plus one may not be)
#define S_TOP_CHARACTER         "\xF4\x8F\xBF\xBF"
//  A word's longest, normalized (PL_WORDS_MAX_BYTES): the top character
//  repeated over it
#define S_TOP_REPEAT            16

//  The timelines the search covers, each as its documents name it (a
//  room's name_lower, a conversation's conv), and the rooms' names as
//  created for the answer
typedef struct {
    char **keys;                    //  owned
    char **names;                   //  owned; NULL for conversations
    size_t count;
    size_t capacity;
    bool failed;                    //  out of memory
} s_scope_t;

//  The documents one find gave, newest first
typedef struct {
    bson_t **documents;             //  owned copies
    uint32_t count;
    uint32_t capacity;              //  limit + 1
} s_found_t;

//  What the request asks, as this file reads it
typedef struct {
    st_search_t *search;            //  the front's, borrowed
    char user [ST_NAME_MAX + 1];    //  as registered, "" for no such user
    bool has_cursor;
    int64_t cursor_ts;
    bson_oid_t cursor_id;
} s_query_t;


//  --------------------------------------------------------------------------
//  The scope: rooms and conversations

static void
s_scope_add (s_scope_t *scope, const char *key, const char *name)
{
    if (scope->failed)
        return;
    if (scope->count == scope->capacity) {
        size_t capacity = scope->capacity ? scope->capacity * 2 : 16;
        char **keys = (char **) realloc (scope->keys, capacity * sizeof (char *));
        if (keys)
            scope->keys = keys;
        char **names = keys ? (char **) realloc (scope->names, capacity * sizeof (char *)) : NULL;
        if (names)
            scope->names = names;
        if (!keys || !names) {
            scope->failed = true;
            return;
        }
        scope->capacity = capacity;
    }
    scope->keys [scope->count] = strdup (key);
    scope->names [scope->count] = name ? strdup (name) : NULL;
    if (!scope->keys [scope->count] || (name && !scope->names [scope->count]))
        scope->failed = true;
    scope->count++;
}

static void
s_scope_free (s_scope_t *scope)
{
    for (size_t index = 0; index < scope->count; index++) {
        free (scope->keys [index]);
        free (scope->names [index]);
    }
    free (scope->keys);
    free (scope->names);
}

static void
s_on_room (void *arg, const bson_t *document)
{
    char key [ST_ROOM_MAX + 1], name [ST_ROOM_MAX + 1];
    sm_copy_bson_str (document, "name_lower", key, sizeof key);
    sm_copy_bson_str (document, "name", name, sizeof name);
    s_scope_add ((s_scope_t *) arg, key, name);
}

static void
s_on_conversation (void *arg, const bson_t *document)
{
    char key [2 * ST_NAME_MAX + 2];
    sm_copy_bson_str (document, "conv", key, sizeof key);
    s_scope_add ((s_scope_t *) arg, key, NULL);
}

//  The one room asked for: not_found, not_member. Returns 0 (pending
//  failed when refused), or -1 with error set.
static int
s_scope_room (sm_store_t *self, sm_pending_t *pending, const s_query_t *query,
              s_scope_t *rooms, bson_error_t *error)
{
    const st_search_t *search = query->search;
    bson_t *filter = BCON_NEW ("name_lower", BCON_UTF8 (search->room.key));
    bson_t *projection = BCON_NEW ("name", BCON_INT32 (1), "name_lower", BCON_INT32 (1),
                                   "users", BCON_INT32 (1));
    bson_t room = BSON_INITIALIZER;
    int rc = sm_find_one (self, self->rooms, filter, projection, &room, error);
    if (rc == 0)
        sm_fail (pending, "not_found", "No room is named '%.*s'.",
                 (int) search->room.text.size, search->room.text.data);
    else
    if (rc == 1 && !(query->user [0] && sm_bson_array_has (&room, "users", query->user,
                                                          (uint32_t) strlen (query->user), NULL)))
        sm_fail (pending, "not_member", "'%.*s' is not a member of '%.*s'.",
                 (int) search->user.text.size, search->user.text.data,
                 (int) search->room.text.size, search->room.text.data);
    else
    if (rc == 1)
        s_on_room (rooms, &room);
    bson_destroy (&room);
    bson_destroy (projection);
    bson_destroy (filter);
    return rc < 0 ? -1 : 0;
}

//  The one conversation asked for: not_found when 'with' is no user
static int
s_scope_with (sm_store_t *self, sm_pending_t *pending, const s_query_t *query,
              s_scope_t *conversations, bson_error_t *error)
{
    const st_search_t *search = query->search;
    char with [ST_NAME_MAX + 1];
    int rc = sm_find_user_name (self, search->with.key, with, error);
    if (rc == 0)
        sm_fail (pending, "not_found", "No user is named '%.*s'.",
                 (int) search->with.text.size, search->with.text.data);
    if (rc == 1 && strcmp (search->user.key, search->with.key) != 0) {
        char conv [2 * ST_NAME_MAX + 2];
        bool user_first = strcmp (search->user.key, search->with.key) < 0;
        snprintf (conv, sizeof conv, "%s\n%s", user_first ? search->user.key : search->with.key,
                  user_first ? search->with.key : search->user.key);
        s_scope_add (conversations, conv, NULL);
    }
    return rc < 0 ? -1 : 0;
}

//  Every room the user is a member of now, and every conversation of it
static int
s_scope_all (sm_store_t *self, const s_query_t *query, s_scope_t *rooms,
             s_scope_t *conversations, bson_error_t *error)
{
    if (!query->user [0])
        return 0;                   //  no such user: nothing to search
    bson_t *filter = BCON_NEW ("users", BCON_UTF8 (query->user));
    bson_t *opts = BCON_NEW ("projection", "{", "name", BCON_INT32 (1),
                                                "name_lower", BCON_INT32 (1), "}");
    int rc = sm_find (self, self->rooms, filter, opts, s_on_room, rooms, error);
    bson_destroy (opts);
    bson_destroy (filter);
    if (rc == 0) {
        filter = BCON_NEW ("users", BCON_UTF8 (query->search->user.key));
        opts = BCON_NEW ("projection", "{", "conv", BCON_INT32 (1), "}");
        rc = sm_find (self, self->conversations, filter, opts, s_on_conversation,
                      conversations, error);
        bson_destroy (opts);
        bson_destroy (filter);
    }
    return rc;
}


//  --------------------------------------------------------------------------
//  The finds

//  words: {$all: [the whole words]}, and one $elemMatch range per prefix
//  word into the $and clauses
static void
s_append_words (bson_t *filter, bson_t *clauses, uint32_t *clause_count,
                const st_search_t *search)
{
    bson_t all;
    uint32_t whole = 0;
    for (uint32_t index = 0; index < search->count; index++)
        whole += !search->words [index].prefix;
    if (whole) {
        BSON_APPEND_DOCUMENT_BEGIN (filter, "words", &all);
        bson_t array;
        BSON_APPEND_ARRAY_BEGIN (&all, "$all", &array);
        uint32_t count = 0;
        for (uint32_t index = 0; index < search->count; index++)
            if (!search->words [index].prefix)
                sm_array_append_text (&array, &count, search->words [index].text.data,
                                      search->words [index].text.size);
        bson_append_array_end (&all, &array);
        bson_append_document_end (filter, &all);
    }
    for (uint32_t index = 0; index < search->count; index++) {
        const st_text_t word = search->words [index].text;
        if (!search->words [index].prefix)
            continue;
        char top [ST_SEARCH_WORD_MAX + sizeof S_TOP_CHARACTER * S_TOP_REPEAT];
        memcpy (top, word.data, word.size);
        size_t size = word.size;
        for (int repeat = 0; repeat < S_TOP_REPEAT; repeat++, size += 4)
            memcpy (top + size, S_TOP_CHARACTER, 4);
        char key [16];
        const char *name;
        size_t key_size = bson_uint32_to_string ((*clause_count)++, &name, key, sizeof key);
        bson_t clause, words, range;
        bson_append_document_begin (clauses, name, (int) key_size, &clause);
        BSON_APPEND_DOCUMENT_BEGIN (&clause, "words", &words);
        BSON_APPEND_DOCUMENT_BEGIN (&words, "$elemMatch", &range);
        bson_append_utf8 (&range, "$gte", 4, word.data, (int) word.size);
        bson_append_utf8 (&range, "$lte", 4, top, (int) size);
        bson_append_document_end (&words, &range);
        bson_append_document_end (&clause, &words);
        bson_append_document_end (clauses, &clause);
    }
}

//  Older than the cursor: ts below it, or the same ts and a lower _id
static void
s_append_cursor (bson_t *clauses, uint32_t *clause_count, const s_query_t *query)
{
    char key [16];
    const char *name;
    size_t key_size = bson_uint32_to_string ((*clause_count)++, &name, key, sizeof key);
    bson_t clause, either, older, same, range;
    bson_append_document_begin (clauses, name, (int) key_size, &clause);
    BSON_APPEND_ARRAY_BEGIN (&clause, "$or", &either);
    BSON_APPEND_DOCUMENT_BEGIN (&either, "0", &older);
    BSON_APPEND_DOCUMENT_BEGIN (&older, "ts", &range);
    BSON_APPEND_DATE_TIME (&range, "$lt", query->cursor_ts);
    bson_append_document_end (&older, &range);
    bson_append_document_end (&either, &older);
    BSON_APPEND_DOCUMENT_BEGIN (&either, "1", &same);
    BSON_APPEND_DATE_TIME (&same, "ts", query->cursor_ts);
    BSON_APPEND_DOCUMENT_BEGIN (&same, "_id", &range);
    BSON_APPEND_OID (&range, "$lt", &query->cursor_id);
    bson_append_document_end (&same, &range);
    bson_append_document_end (&either, &same);
    bson_append_array_end (&clause, &either);
    bson_append_document_end (clauses, &clause);
}

//  {field: {$in: scope}, words..., $and: [prefixes..., cursor]}
static void
s_build_filter (bson_t *filter, const char *field, const s_scope_t *scope,
                const s_query_t *query)
{
    bson_t condition, array, clauses;
    sm_in_begin (filter, field, &condition, &array);
    uint32_t count = 0;
    for (size_t index = 0; index < scope->count; index++)
        sm_array_append_text (&array, &count, scope->keys [index],
                              (uint32_t) strlen (scope->keys [index]));
    sm_in_end (filter, &condition, &array);
    bson_t more = BSON_INITIALIZER;
    uint32_t clause_count = 0;
    BSON_APPEND_ARRAY_BEGIN (&more, "$and", &clauses);
    s_append_words (filter, &clauses, &clause_count, query->search);
    if (query->has_cursor)
        s_append_cursor (&clauses, &clause_count, query);
    bson_append_array_end (&more, &clauses);
    if (clause_count)
        bson_concat (filter, &more);
    bson_destroy (&more);
}

static void
s_on_found (void *arg, const bson_t *document)
{
    s_found_t *found = (s_found_t *) arg;
    if (found->count < found->capacity)
        found->documents [found->count++] = bson_copy (document);
}

//  The newest limit + 1 matches of one collection. Returns 0 or -1.
static int
s_find_matches (sm_store_t *self, mongoc_collection_t *collection, const char *field,
                const s_scope_t *scope, const s_query_t *query, s_found_t *found,
                bson_error_t *error)
{
    found->capacity = query->search->limit + 1;
    found->documents = (bson_t **) calloc (found->capacity, sizeof (bson_t *));
    if (!found->documents || scope->count == 0)
        return 0;
    bson_t filter = BSON_INITIALIZER;
    s_build_filter (&filter, field, scope, query);
    bson_t *opts = BCON_NEW ("sort", "{", "ts", BCON_INT32 (-1), "_id", BCON_INT32 (-1), "}",
                             "limit", BCON_INT64 ((int64_t) found->capacity),
                             "projection", "{", "words", BCON_INT32 (0), "}");
    int rc = sm_find (self, collection, &filter, opts, s_on_found, found, error);
    bson_destroy (opts);
    bson_destroy (&filter);
    return rc;
}

static void
s_found_free (s_found_t *found)
{
    for (uint32_t index = 0; index < found->count; index++)
        bson_destroy (found->documents [index]);
    free (found->documents);
}


//  --------------------------------------------------------------------------
//  The answer

//  True when document a comes before b, newest first: by ts, then _id
static bool
s_newer (const bson_t *a, const bson_t *b)
{
    int64_t a_ts = sm_bson_int (a, "ts", 0), b_ts = sm_bson_int (b, "ts", 0);
    if (a_ts != b_ts)
        return a_ts > b_ts;
    bson_iter_t a_id, b_id;
    if (!bson_iter_init_find (&a_id, a, "_id") || !BSON_ITER_HOLDS_OID (&a_id)
    ||  !bson_iter_init_find (&b_id, b, "_id") || !BSON_ITER_HOLDS_OID (&b_id))
        return false;
    return bson_oid_compare (bson_iter_oid (&a_id), bson_iter_oid (&b_id)) > 0;
}

//  The room's name as created, from the scope
static const char *
s_room_name (const s_scope_t *rooms, const bson_t *document)
{
    uint32_t size;
    const char *key = sm_bson_text (document, "room", &size);
    for (size_t index = 0; index < rooms->count; index++)
        if (strlen (rooms->keys [index]) == size && memcmp (rooms->keys [index], key, size) == 0)
            return rooms->names [index];
    return key;
}

//  One result: {room, entry} or {from, to, entry}
static void
s_pack_result (msgpack_packer *packer, const bson_t *document, const s_scope_t *rooms,
               bool pm)
{
    if (pm) {
        msgpack_pack_map (packer, 3);
        pl_body_pack_str (packer, "from");
        sm_pack_bson_text (packer, document, "from");
        pl_body_pack_str (packer, "to");
        sm_pack_bson_text (packer, document, "to");
        pl_body_pack_str (packer, "entry");
        sm_pack_pm_entry (packer, document);
    }
    else {
        msgpack_pack_map (packer, 2);
        pl_body_pack_str (packer, "room");
        pl_body_pack_str (packer, s_room_name (rooms, document));
        pl_body_pack_str (packer, "entry");
        sm_pack_entry (packer, document);
    }
}

//  The cursor after document: "<ts>.<_id in hex>"
static void
s_pack_next (msgpack_packer *packer, const bson_t *document)
{
    char next [64], hex [25] = "";
    bson_iter_t id;
    if (bson_iter_init_find (&id, document, "_id") && BSON_ITER_HOLDS_OID (&id))
        bson_oid_to_string (bson_iter_oid (&id), hex);
    snprintf (next, sizeof next, "%" PRId64 ".%s", sm_bson_int (document, "ts", 0), hex);
    pl_body_pack_str (packer, "next");
    pl_body_pack_str (packer, next);
}

//  {results, next?}: the two finds merged newest first, cut at the limit
//  or the bytes (st_list)
static void
s_answer (sm_pending_t *pending, const s_found_t *room_found, const s_found_t *pm_found,
          const s_scope_t *rooms)
{
    st_list_t *list = st_list_new (pending->request->as.search.limit, false);
    if (!list) {
        sm_fail (pending, "internal", "The store ran out of memory.");
        return;
    }
    uint32_t in_rooms = 0, in_pm = 0;
    const bson_t *last = NULL;
    while (in_rooms < room_found->count || in_pm < pm_found->count) {
        bool pm = in_rooms == room_found->count
               || (in_pm < pm_found->count
                   && s_newer (pm_found->documents [in_pm], room_found->documents [in_rooms]));
        const bson_t *document = pm ? pm_found->documents [in_pm++]
                                    : room_found->documents [in_rooms++];
        s_pack_result (st_list_packer (list), document, rooms, pm);
        if (!st_list_push (list))
            break;
        last = document;
    }
    msgpack_packer *packer = sm_packer (pending);
    bool more = st_list_more (list) && last;
    msgpack_pack_map (packer, more ? 2 : 1);
    st_list_finish (list, packer, "results");
    if (more)
        s_pack_next (packer, last);
    st_list_destroy (&list);
}


//  --------------------------------------------------------------------------
//  The request

//  Reads a cursor this store gave ("<ts>.<24 hex digits>"). False if it is
//  not one.
static bool
s_read_cursor (s_query_t *query, st_text_t cursor)
{
    char text [64];
    if (cursor.size == 0 || cursor.size >= sizeof text)
        return false;
    memcpy (text, cursor.data, cursor.size);
    text [cursor.size] = 0;
    char *dot = strchr (text, '.');
    if (!dot || dot == text || strspn (text, "0123456789") != (size_t) (dot - text)
    ||  strlen (dot + 1) != 24 || !bson_oid_is_valid (dot + 1, 24) || dot - text > 18)
        return false;
    *dot = 0;
    query->cursor_ts = strtoll (text, NULL, 10);
    bson_oid_init_from_string (&query->cursor_id, dot + 1);
    query->has_cursor = true;
    return true;
}

//  The rooms and conversations to search, as the request narrows them.
//  Returns 0 (pending failed when refused), or -1 with error set.
static int
s_scope (sm_store_t *self, sm_pending_t *pending, s_query_t *query, s_scope_t *rooms,
         s_scope_t *conversations, bson_error_t *error)
{
    const st_search_t *search = query->search;
    if (sm_find_user_name (self, search->user.key, query->user, error) < 0)
        return -1;
    if (search->room.text.data)
        return s_scope_room (self, pending, query, rooms, error);
    if (search->with.text.data)
        return s_scope_with (self, pending, query, conversations, error);
    return s_scope_all (self, query, rooms, conversations, error);
}

int
sm_run_search (sm_store_t *self, sm_pending_t *pending, msgpack_packer *packer,
               bson_error_t *error)
{
    (void) packer;                  //  s_answer packs through the list
    s_query_t query = { .search = &pending->request->as.search };
    if (query.search->cursor.data && !s_read_cursor (&query, query.search->cursor)) {
        sm_fail (pending, "bad_request", "cursor is not one this store gave");
        return 0;
    }
    s_scope_t rooms = { .count = 0 }, conversations = { .count = 0 };
    s_found_t room_found = { .count = 0 }, pm_found = { .count = 0 };
    int rc = s_scope (self, pending, &query, &rooms, &conversations, error);
    if (rc == 0 && sm_is_live (pending) && (rooms.failed || conversations.failed))
        sm_fail (pending, "internal", "The store ran out of memory.");
    if (rc == 0 && sm_is_live (pending))
        rc = s_find_matches (self, self->messages, "room", &rooms, &query, &room_found, error);
    if (rc == 0 && sm_is_live (pending))
        rc = s_find_matches (self, self->pm_messages, "conv", &conversations, &query, &pm_found,
                             error);
    if (rc == 0 && sm_is_live (pending)) {
        if (!room_found.documents || !pm_found.documents)
            sm_fail (pending, "internal", "The store ran out of memory.");
        else
            s_answer (pending, &room_found, &pm_found, &rooms);
    }
    s_found_free (&room_found);
    s_found_free (&pm_found);
    s_scope_free (&rooms);
    s_scope_free (&conversations);
    return rc;
}
