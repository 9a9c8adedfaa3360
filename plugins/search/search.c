/*  =========================================================================
    search - the client's search (PROTOCOL.md 1.1, "Search"): a stateless
    plugin on the route `search`

    It checks the request's shape, splits the query into words with the
    kit's pl_words (the words the stores index: case-folded, accents
    removed; a word followed by '*' is a prefix), asks the store
    (store.search, proto/STORE.md "Search"), which restricts the search to
    the user's rooms and conversations inside its own query, and answers
    each result as room.history or pm.history gives that entry (pl_entry).
    Any instance serves any request: nothing is kept between requests but
    the searches waiting for the store.

    Ownership: each search waiting for the store is a search_t of the
    plugin's list, freed when it is answered (or at destroy: its request is
    the host's then).
    =========================================================================
*/

#include "parley_plugin.h"
#include "pl_body.h"
#include "pl_call.h"
#include "pl_entry.h"
#include "pl_pack.h"
#include "pl_reply.h"
#include "pl_service.h"
#include "pl_text.h"
#include "pl_time.h"
#include "pl_words.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  PROTOCOL.md 1.1, "Search", and proto/CLIENT-PROTOCOL.md
#define SEARCH_QUERY_MAX        200     //  characters of a query
#define SEARCH_WORDS_MAX        16      //  words of a query
#define SEARCH_LIMIT_DEFAULT    20
#define SEARCH_LIMIT_MAX        100
#define SEARCH_CURSOR_MAX       256     //  bytes of a cursor (the store's next)
#define SEARCH_NAME_MAX         64      //  bytes of a room or user name sent on

typedef struct _search_t search_t;

//  Per-instance state
typedef struct {
    parley_ctx_t *ctx;              //  the host's handle
    const parley_host_t *host;      //  the host's function table
    pl_call_t *calls;               //  the store calls
    pl_service_t store_time;        //  a store.search's measured time
    search_t *waiting;              //  searches waiting for the store
    uint64_t searches;              //  answered, for the log
} plugin_t;

//  One search: the client's request and what the store is asked
struct _search_t {
    search_t *prev, *next;          //  the plugin's waiting list
    parley_request_t *request;      //  the client's, until answered
    char words [SEARCH_WORDS_MAX][PL_WORDS_MAX_BYTES + 2];  //  each with its '*'
    size_t count;                   //  words found (may pass the most: refused)
    char room [SEARCH_NAME_MAX + 1];    //  "" for none
    char with [SEARCH_NAME_MAX + 1];    //  "" for none
    char cursor [SEARCH_CURSOR_MAX + 1];    //  "" for none
    uint64_t limit;
    int64_t called;                 //  when the store was asked (monotonic ms)
    bool retried;                   //  asked again for fewer results (the reply's bytes)
};


//  --------------------------------------------------------------------------
//  The query's words

static void
s_word_found (const char *word, size_t size, void *arg)
{
    search_t *search = (search_t *) arg;
    if (search->count < SEARCH_WORDS_MAX) {
        memcpy (search->words [search->count], word, size);
        //  A word cut at the longest is searched as a prefix, so that it
        //  still finds the longer word it was cut from
        search->words [search->count][size] = size == PL_WORDS_MAX_BYTES? '*': 0;
        search->words [search->count][size + 1] = 0;
    }
    search->count++;
}

//  Splits the query (size bytes) into search's words: the text between
//  '*'s word by word, and a word that ends right before a '*' is a prefix
static void
s_split (search_t *search, const char *query, size_t size)
{
    size_t start = 0;
    while (start <= size) {
        const char *star = (const char *) memchr (query + start, '*', size - start);
        size_t end = star? (size_t) (star - query): size;
        size_t before = search->count;
        pl_words_each (query + start, end - start, s_word_found, search);
        if (star && search->count > before && search->count <= SEARCH_WORDS_MAX
        &&  pl_words_ends_in_word (query + start, end - start)) {
            char *word = search->words [search->count - 1];
            size_t length = strlen (word);
            if (length && word [length - 1] != '*') {
                word [length] = '*';
                word [length + 1] = 0;
            }
        }
        start = end + 1;
    }
}


//  --------------------------------------------------------------------------
//  The request

//  An optional string field of 1 to max bytes into text ("" when absent).
//  Returns 0, or -1 after answering bad_request.
static int
s_read_name (plugin_t *self, search_t *search, const msgpack_object *map, const char *key,
             size_t max, char *text)
{
    const char *value;
    size_t size;
    int rc = pl_body_strn (map, key, &value, &size);
    if (rc == 0)
        return 0;
    if (rc < 0 || size == 0 || size > max || memchr (value, 0, size)) {
        char message [120];
        snprintf (message, sizeof message, "'%s' must be a string of 1 to %zu bytes.", key, max);
        self->host->reply_error (self->ctx, &search->request, "bad_request", message);
        return -1;
    }
    memcpy (text, value, size);
    text [size] = 0;
    return 0;
}

//  The query: 1 to SEARCH_QUERY_MAX characters that hold 1 to
//  SEARCH_WORDS_MAX words. Returns 0, or -1 after answering bad_request.
static int
s_read_query (plugin_t *self, search_t *search, const msgpack_object *map)
{
    char *query = NULL;
    const char *refusal = NULL;
    if (pl_body_str (map, "query", &query) != 1)
        refusal = "'query' must be a string of 1 to 200 characters.";
    else {
        size_t length = pl_text_utf8_length (query);
        if (length == 0 || length > SEARCH_QUERY_MAX)
            refusal = "'query' must be a string of 1 to 200 characters.";
        else {
            s_split (search, query, strlen (query));
            if (search->count == 0)
                refusal = "'query' has no word to search for (letters or digits).";
            else
            if (search->count > SEARCH_WORDS_MAX)
                refusal = "'query' has more than 16 words.";
        }
    }
    free (query);
    if (refusal)
        self->host->reply_error (self->ctx, &search->request, "bad_request", refusal);
    return refusal? -1: 0;
}

//  Reads the request's fields into search. Returns 0, or -1 after
//  answering bad_request.
static int
s_read (plugin_t *self, search_t *search, const msgpack_object *map)
{
    if (!map) {
        self->host->reply_error (self->ctx, &search->request, "bad_request",
                                 "The request's fields must be a map.");
        return -1;
    }
    if (s_read_query (self, search, map)
    ||  s_read_name (self, search, map, "room", SEARCH_NAME_MAX, search->room)
    ||  s_read_name (self, search, map, "with", SEARCH_NAME_MAX, search->with)
    ||  s_read_name (self, search, map, "cursor", SEARCH_CURSOR_MAX, search->cursor))
        return -1;
    const char *refusal = NULL;
    int given = pl_body_uint (map, "limit", &search->limit);
    if (given == 0)
        search->limit = SEARCH_LIMIT_DEFAULT;
    if (given < 0 || search->limit < 1 || search->limit > SEARCH_LIMIT_MAX)
        refusal = "'limit' must be an integer from 1 to 100.";
    else
    if (*search->room && *search->with)
        refusal = "Give 'room' or 'with', not both.";
    if (refusal)
        self->host->reply_error (self->ctx, &search->request, "bad_request", refusal);
    return refusal? -1: 0;
}


//  --------------------------------------------------------------------------
//  The store

static void s_answered (void *state, void *arg, const pl_call_reply_t *reply);

static void
s_unlink (plugin_t *self, search_t *search)
{
    if (search->prev)
        search->prev->next = search->next;
    else
        self->waiting = search->next;
    if (search->next)
        search->next->prev = search->prev;
    search->prev = search->next = NULL;
}

//  Asks the store for limit results. Returns 0, or -1 when the call could
//  not be sent (nothing will answer it).
static int
s_ask (plugin_t *self, search_t *search, uint64_t limit, int64_t time_left_ms)
{
    pl_pack_t pack;
    pl_pack_start (&pack, 3 + (*search->room != 0) + (*search->with != 0)
                          + (*search->cursor != 0), "user",
                   self->host->request_user (search->request));
    pl_pack_str (&pack, "words");
    msgpack_pack_array (&pack.packer, (uint32_t) search->count);
    for (size_t index = 0; index < search->count; index++)
        pl_pack_str (&pack, search->words [index]);
    if (*search->room)
        pl_pack_kstr (&pack, "room", search->room);
    if (*search->with)
        pl_pack_kstr (&pack, "with", search->with);
    pl_pack_kuint (&pack, "limit", limit);
    if (*search->cursor)
        pl_pack_kstr (&pack, "cursor", search->cursor);
    search->called = pl_time_mono ();
    int rc = pl_call_send_within (self->calls, "store.search", pack.buffer.data,
                                  pack.buffer.size, time_left_ms, s_answered, search);
    pl_pack_release (&pack);
    return rc;
}

//  Packs one of the store's results as the client's entry: a room's entry
//  as room.history gives it (with its room), a conversation's as pm.history
static void
s_pack_result (msgpack_packer *packer, const msgpack_object *result)
{
    const msgpack_object *entry = pl_body_field (result, "entry");
    char room [SEARCH_NAME_MAX + 1];
    pl_body_copy (result, "room", room, sizeof room);
    if (*room)
        pl_entry_pack_room (packer, room, entry);
    else
        pl_entry_pack_pm (packer, entry);
}

//  How many results fit the client's reply, from the first (newest)
static uint32_t
s_fit (const msgpack_object *results)
{
    pl_reply_budget_t budget = pl_reply_budget (PL_REPLY_LIST_BUDGET);
    msgpack_sbuffer scratch;
    msgpack_sbuffer_init (&scratch);
    uint32_t fit = 0;
    while (fit < results->via.array.size) {
        scratch.size = 0;
        msgpack_packer packer;
        msgpack_packer_init (&packer, &scratch, msgpack_sbuffer_write);
        s_pack_result (&packer, &results->via.array.ptr [fit]);
        if (!pl_reply_budget_take (&budget, pl_reply_json_size_packed (scratch.data,
                                                                        scratch.size)))
            break;
        fit++;
    }
    msgpack_sbuffer_destroy (&scratch);
    return fit;
}

//  Answers {results, next?} with the first count results
static void
s_reply_results (plugin_t *self, search_t *search, const msgpack_object *results,
                 uint32_t count, const msgpack_object *next)
{
    bool has_next = next && next->type == MSGPACK_OBJECT_STR;
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, has_next? 2: 1);
    pl_body_pack_str (&packer, "results");
    msgpack_pack_array (&packer, count);
    for (uint32_t index = 0; index < count; index++)
        s_pack_result (&packer, &results->via.array.ptr [index]);
    if (has_next) {
        pl_body_pack_str (&packer, "next");
        msgpack_pack_object (&packer, *next);
    }
    self->host->reply (self->ctx, &search->request, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
}

//  The store's refusal as the client's: not_found names what was not found
static void
s_reply_refused (plugin_t *self, search_t *search, const pl_call_reply_t *reply)
{
    const char *code = reply->code;
    if (strcmp (code, "not_found") == 0)
        self->host->reply_error (self->ctx, &search->request,
                                 *search->room? "no_such_room": "no_such_user",
                                 reply->message? reply->message: "Not found.");
    else
    if (strcmp (code, "not_member") == 0 || strcmp (code, "bad_request") == 0)
        self->host->reply_error (self->ctx, &search->request, code,
                                 reply->message? reply->message: "Refused.");
    else
        pl_reply_store_failed (self->host, self->ctx, &search->request, code,
                               "The search cannot reach its storage now; try again later.",
                               reply->retry_ms, pl_service_ms (&self->store_time));
}

//  The store answered (pl_call's handler; arg is the search)
static void
s_answered (void *state, void *arg, const pl_call_reply_t *reply)
{
    plugin_t *self = (plugin_t *) state;
    search_t *search = (search_t *) arg;
    pl_service_add (&self->store_time, pl_time_mono () - search->called);
    const msgpack_object *results = pl_body_field (reply->body, "results");
    if (reply->code)
        s_reply_refused (self, search, reply);
    else
    if (!results || results->type != MSGPACK_OBJECT_ARRAY)
        pl_reply_store_failed (self->host, self->ctx, &search->request, NULL,
                               "The search's storage answered something else.", 0, 0);
    else {
        uint32_t fit = s_fit (results);
        //  Cut for the client's bytes: asked again for as many as fit, so
        //  that the store's next starts right after the last one answered
        int64_t left = self->host->abi_minor >= 3 && self->host->request_time_left
                     ? self->host->request_time_left (search->request): -1;
        if (fit < results->via.array.size && !search->retried && fit > 0 && left != 0) {
            search->retried = true;
            if (s_ask (self, search, fit, left) == 0)
                return;
        }
        s_reply_results (self, search, results, fit? fit: results->via.array.size,
                         pl_body_field (reply->body, "next"));
    }
    self->searches++;
    s_unlink (self, search);
    free (search);
}


//  --------------------------------------------------------------------------
//  The plugin

static void
s_on_request (void *state, parley_request_t *request)
{
    plugin_t *self = (plugin_t *) state;
    const parley_host_t *host = self->host;
    const char *type = host->request_type (request);
    if (!type || strcmp (type, "search") != 0) {
        char message [160];
        snprintf (message, sizeof message, "There is no request '%.64s'.", type? type: "");
        host->reply_error (self->ctx, &request, "unknown_type", message);
        return;
    }
    if (!host->request_user (request)) {
        host->reply_error (self->ctx, &request, "unauthenticated", "Log in first.");
        return;
    }
    search_t *search = (search_t *) calloc (1, sizeof (search_t));
    if (!search) {
        host->reply_error (self->ctx, &request, "internal", "Out of memory; try again.");
        return;
    }
    search->request = request;
    size_t size;
    const uint8_t *body = host->request_body (request, &size);
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    int rc = s_read (self, search, pl_body_unpack (&unpacked, body, size));
    msgpack_unpacked_destroy (&unpacked);
    if (rc == 0 && s_ask (self, search, search->limit, -1) != 0) {
        pl_reply_store_failed (host, self->ctx, &search->request, "unavailable",
                               "The search cannot reach its storage now; try again later.",
                               0, pl_service_ms (&self->store_time));
        rc = -1;
    }
    if (rc != 0) {
        free (search);
        return;
    }
    search->next = self->waiting;
    if (self->waiting)
        self->waiting->prev = search;
    self->waiting = search;
}

static void
s_on_reply (void *state, void *cookie, const char *code, const char *message,
            const uint8_t *body, size_t size)
{
    plugin_t *self = (plugin_t *) state;
    pl_call_reply (self->calls, cookie, code, message, body, size);
}

static void s_destroy (void **state_p);

static int
s_init (parley_ctx_t *ctx, const parley_host_t *host, void **state_p)
{
    plugin_t *self = (plugin_t *) calloc (1, sizeof (plugin_t));
    if (!self || !(self->calls = pl_call_new (host, ctx, self))) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        free (self);
        return -1;
    }
    self->ctx = ctx;
    self->host = host;
    host->log (ctx, PARLEY_LOG_INFO, "ready: search of at most %d words, %d results a page",
               SEARCH_WORDS_MAX, SEARCH_LIMIT_MAX);
    *state_p = self;
    return 0;
}

static void
s_destroy (void **state_p)
{
    plugin_t *self = (plugin_t *) *state_p;
    if (!self)
        return;
    self->host->log (self->ctx, PARLEY_LOG_INFO, "stopping after %" PRIu64 " searches",
                     self->searches);
    pl_call_destroy (&self->calls);
    //  The requests still waiting belong to the host after destroy
    while (self->waiting) {
        search_t *next = self->waiting->next;
        free (self->waiting);
        self->waiting = next;
    }
    free (self);
    *state_p = NULL;
}

//  One route, not sharded: any instance serves any search
static const parley_route_t s_routes [] = {
    { .prefix = "search", .flags = 0, .shard = PARLEY_SHARD_NONE, .shard_field = NULL },
    { .prefix = NULL }
};

static const parley_plugin_t s_descriptor = {
    .abi_major = PARLEY_ABI_MAJOR,
    .abi_minor = PARLEY_ABI_MINOR,
    .size = sizeof (parley_plugin_t),
    .flags = 0,
    .name = "search",
    .version = "1.0.0",
    .description = "search: the client's search of its rooms and conversations, run by the store",
    .routes = s_routes,
    .init = s_init,
    .destroy = s_destroy,
    .on_request = s_on_request,
    .on_reply = s_on_reply
};

PARLEY_PLUGIN_DEFINE (s_descriptor)
