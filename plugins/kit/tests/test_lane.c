/*  test_lane - the per-key serial lane: one request at a time, runs of
    writes, reloads after conflicts and unknown outcomes, bounds, eviction,
    repeated nonces.
    A host of its own records the calls and replies; a small plugin of
    writes (a run each) and reads (answered from the loaded seq) runs on it. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pl_body.h"
#include "pl_lane.h"
#include "pl_nonce.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  --------------------------------------------------------------------------
//  A host that records

#define CALLS_MAX   32
#define REPLIES_MAX 64

typedef struct {
    char type [64];                 //  the call's type
    void *cookie;
    size_t size;                    //  its body's size
    int64_t time_left;              //  its deadline (call_within), -1 for none
} call_t;

typedef struct {
    int request;                    //  which request (its index)
    char code [32];                 //  "" for ok
    uint64_t seq;                   //  the ok's seq, when it has one
    bool duplicate;                 //  the ok says duplicate: true
    bool unknown;                   //  an error with "outcome": "unknown"
    int64_t retry_ms;               //  an error's retry_after_ms, 0 if none
} reply_t;

static call_t s_calls [CALLS_MAX];
static size_t s_call_count;
static reply_t s_replies [REPLIES_MAX];
static size_t s_reply_count;
static bool s_call_refused;         //  host->call fails

//  A request, as the host lends it
typedef struct {
    int index;                      //  which request
    const char *type;
    const char *user;
    char body [96];                 //  msgpack
    size_t size;
    int64_t left;                   //  its time left, -1 for none
} request_t;

static request_t s_requests [REPLIES_MAX];

static parley_request_t *
s_request (int index)
{
    s_requests [index].index = index;
    s_requests [index].left = -1;
    return (parley_request_t *) &s_requests [index];
}

//  A request of type from user whose body is a map with key: text (or, with
//  key NULL, the body text itself)
static parley_request_t *
s_request_of (int index, const char *type, const char *user, const char *key,
              const char *text)
{
    request_t *request = &s_requests [index];
    request->index = index;
    request->left = -1;
    request->type = type;
    request->user = user;
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    if (key) {
        msgpack_pack_map (&packer, 1);
        msgpack_pack_str_with_body (&packer, key, strlen (key));
    }
    msgpack_pack_str_with_body (&packer, text, strlen (text));
    assert_true (buffer.size <= sizeof request->body);
    memcpy (request->body, buffer.data, buffer.size);
    request->size = buffer.size;
    msgpack_sbuffer_destroy (&buffer);
    return (parley_request_t *) request;
}

//  A request of type from user whose body is {"key": key, "nonce": nonce}
static parley_request_t *
s_request_nonce (int index, const char *type, const char *user, const char *key,
                 const char *nonce)
{
    request_t *request = &s_requests [index];
    request->index = index;
    request->type = type;
    request->user = user;
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 2);
    pl_pack_kstr (&pack, "key", key);
    pl_pack_kstr (&pack, "nonce", nonce);
    assert_true (pack.buffer.size <= sizeof request->body);
    memcpy (request->body, pack.buffer.data, pack.buffer.size);
    request->size = pack.buffer.size;
    pl_pack_release (&pack);
    return (parley_request_t *) request;
}

static const char *
s_host_request_type (const parley_request_t *request)
{
    return ((const request_t *) request)->type;
}

static const char *
s_host_request_user (const parley_request_t *request)
{
    return ((const request_t *) request)->user;
}

static const uint8_t *
s_host_request_body (const parley_request_t *request, size_t *size_p)
{
    *size_p = ((const request_t *) request)->size;
    return (const uint8_t *) ((const request_t *) request)->body;
}

static int64_t
s_host_request_time_left (const parley_request_t *request)
{
    return ((const request_t *) request)->left;
}

static int
s_host_call_within (parley_ctx_t *ctx, const char *type, const void *body, size_t size,
                    void *cookie, int64_t time_left)
{
    (void) ctx, (void) body;
    if (s_call_refused || time_left == 0)
        return -1;
    assert_true (s_call_count < CALLS_MAX);
    snprintf (s_calls [s_call_count].type, sizeof s_calls [0].type, "%s", type);
    s_calls [s_call_count].cookie = cookie;
    s_calls [s_call_count].size = size;
    s_calls [s_call_count].time_left = time_left;
    s_call_count++;
    return 0;
}

static int
s_host_call (parley_ctx_t *ctx, const char *type, const void *body, size_t size, void *cookie)
{
    return s_host_call_within (ctx, type, body, size, cookie, -1);
}

static void
s_record (parley_request_t **request_p, const char *code, uint64_t seq)
{
    assert_non_null (*request_p);
    assert_true (s_reply_count < REPLIES_MAX);
    s_replies [s_reply_count].request = ((request_t *) *request_p)->index;
    snprintf (s_replies [s_reply_count].code, sizeof s_replies [0].code, "%s", code);
    s_replies [s_reply_count].seq = seq;
    s_reply_count++;
    *request_p = NULL;
}

static int
s_host_reply_error (parley_ctx_t *ctx, parley_request_t **request_p, const char *code,
                    const char *message)
{
    (void) ctx, (void) message;
    s_record (request_p, code, 0);
    return 0;
}

//  An error with fields: records its outcome and retry_after_ms
static int
s_host_reply_error_body (parley_ctx_t *ctx, parley_request_t **request_p, const char *code,
                         const char *message, const void *body, size_t size)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    const msgpack_object *fields = pl_body_unpack (&unpacked, body, size);
    assert_non_null (fields);
    reply_t *reply = &s_replies [s_reply_count];
    s_host_reply_error (ctx, request_p, code, message);
    char outcome [16] = "";
    pl_body_copy (fields, "outcome", outcome, sizeof outcome);
    reply->unknown = strcmp (outcome, "unknown") == 0;
    reply->retry_ms = pl_body_int (fields, "retry_after_ms");
    msgpack_unpacked_destroy (&unpacked);
    return 0;
}

static void
s_host_log (parley_ctx_t *ctx, int level, const char *format, ...)
{
    (void) ctx, (void) level, (void) format;
}

//  An ok: its seq and duplicate, when its body has them
static int
s_host_reply (parley_ctx_t *ctx, parley_request_t **request_p, const void *body, size_t size)
{
    (void) ctx;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    const msgpack_object *map = body? pl_body_unpack (&unpacked, body, size): NULL;
    s_record (request_p, "", map? (uint64_t) pl_body_int (map, "seq"): 0);
    s_replies [s_reply_count - 1].duplicate = map && pl_body_bool (map, "duplicate");
    msgpack_unpacked_destroy (&unpacked);
    return 0;
}

static parley_host_t s_host = {
    .abi_minor = 3,
    .request_type = s_host_request_type,
    .request_user = s_host_request_user,
    .request_body = s_host_request_body,
    .reply = s_host_reply,
    .call = s_host_call,
    .reply_error = s_host_reply_error,
    .log = s_host_log,
    .reply_error_body = s_host_reply_error_body,
    .request_time_left = s_host_request_time_left,
    .call_within = s_host_call_within,
};


//  --------------------------------------------------------------------------
//  A small plugin on the lane

typedef struct {
    int loads;                      //  loads started
    int states;                     //  states alive
    int forgets;                    //  forget calls
} plugin_t;

static plugin_t s_plugin;
static pl_call_t *s_calls_made;     //  the plugin's caller
static pl_lane_t *s_lane;

static void *
s_state_new (void *plugin, const char *key, const void *args)
{
    (void) key, (void) args;
    ((plugin_t *) plugin)->states++;
    return malloc (1);
}

static void
s_state_destroy (void **state_p)
{
    s_plugin.states--;
    free (*state_p);
    *state_p = NULL;
}

static void
s_args_destroy (void **args_p)
{
    free (*args_p);
    *args_p = NULL;
}

static void
s_loaded (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
          const char *message, const msgpack_object *body)
{
    (void) plugin, (void) op, (void) message;
    if (code)
        pl_lane_fail_all (s_lane, key, code);
    else
        pl_lane_loaded (s_lane, key, (uint64_t) pl_body_int (body, "seq"));
}

static void
s_load (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    (void) op;
    ((plugin_t *) plugin)->loads++;
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 0);
    pl_lane_call (s_lane, key, "store.load", &pack, s_loaded);
}

static void
s_forget (void *plugin, pl_lane_key_t *key)
{
    (void) key;
    ((plugin_t *) plugin)->forgets++;
}

static void s_write_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op);
static void s_read_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op);
static void s_peek_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op);
static void s_peek_at_once (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op);

//  The test's requests: write and read, whose body names the key
static const pl_lane_type_t s_types [] = {
    { "test.write", s_write_start, "Too fast.", NULL },
    { "test.read", s_read_start, NULL, NULL },
    { "test.peek", s_peek_start, "Too fast.", NULL },    //  a read that may go at once
    { NULL }
};

//  A request's body is {"key": name}; "bad" is refused
static bool
s_read (void *plugin, const pl_lane_type_t *type, const char *user,
        const msgpack_object *map, pl_lane_intake_t *intake)
{
    (void) plugin, (void) type, (void) user;
    if (pl_body_str (map, "key", &intake->key) != 1 || strcmp (intake->key, "bad") == 0)
        return pl_lane_refuse (intake, "bad_request", "The key must be a good string.");
    if (pl_nonce_read (map, &intake->nonce) < 0)
        return pl_lane_refuse (intake, "bad_request", "The nonce must be a good one.");
    intake->args = malloc (4);
    intake->bytes = 1;
    intake->at_once = type->start == s_peek_start;
    return intake->args != NULL;
}

static void
s_busy (void *plugin, pl_lane_key_t *key, const void *args, pl_lane_intake_t *intake)
{
    (void) plugin, (void) args;
    pl_lane_refuse (intake, "unavailable", "'%s' is busy.", pl_lane_name (key));
}

//  Looks a nonce up in the store: the answer goes to the lane
static void
s_look_up (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    (void) plugin;
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 1);
    pl_pack_kstr (&pack, "nonce", op->nonce);
    pl_lane_call (s_lane, key, "store.nonce", &pack, pl_lane_looked_up);
}

//  The class's refused: answers the element with the store's code
static void
s_refused (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code)
{
    (void) key;
    (void) plugin;
    pl_lane_error (s_lane, op, code, "refused");
}

static const pl_lane_class_t s_class = {
    .types = s_types,
    .read = s_read,
    .busy = s_busy,
    .state_new = s_state_new,
    .state_destroy = s_state_destroy,
    .args_destroy = s_args_destroy,
    .load = s_load,
    .forget = s_forget,
    .service = "test",
    .look_up = s_look_up,
    .at_once = s_peek_at_once,
    .refused = s_refused
};

static void
s_write_answer (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                const char *message, const msgpack_object *body)
{
    (void) plugin, (void) body;
    if (code)
        pl_lane_failure (s_lane, key, op, code, message);
    else {
        pl_lane_stored (key, op);
        s_record (&op->request, "", op->seq);
    }
}

//  A write: a run of at most 3, of at most 10 bytes
static void
s_write_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    (void) plugin, (void) op;
    if (!pl_lane_ready (s_lane, key))
        return;
    size_t count = pl_lane_run (s_lane, key, 3, 10, NULL);
    pl_pack_t pack;             //  the call's size is the run's: count fields
    pl_pack_init (&pack);
    pl_pack_map (&pack, 0);
    for (size_t index = 1; index < count; index++)
        pl_pack_str (&pack, "");
    pl_lane_write (s_lane, key, "store.write", &pack, count, s_write_answer);
}

//  A read: answered at once with the loaded seq
static void
s_read_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    (void) plugin;
    if (pl_lane_ready (s_lane, key))
        s_record (&op->request, "", pl_lane_last_seq (key));
}

//  A peek: a read, answered as it comes in when the key is loaded
static void
s_peek_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    s_read_start (plugin, key, op);
}

static void
s_peek_at_once (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    if (pl_lane_is_loaded (key))
        s_peek_start (plugin, key, op);
}

//  Submits request with this time left (-1: none)
static void
s_submit_within (const char *name, int request, pl_lane_action_fn *start, size_t bytes,
                 int64_t left)
{
    pl_lane_key_t *key = pl_lane_key (s_lane, name, NULL);
    assert_non_null (key);
    parley_request_t *held = s_request (request);
    s_requests [request].left = left;
    assert_int_equal (pl_lane_submit (s_lane, key, &held, "alice", start, malloc (4), bytes),
                      0);
    assert_null (held);
}

static void
s_submit (const char *name, int request, pl_lane_action_fn *start, size_t bytes)
{
    s_submit_within (name, request, start, bytes, -1);
}

//  The store answers call; an ok says seq
static void
s_store_answers (size_t call, const char *code, uint64_t seq)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 1);
    pl_pack_kuint (&pack, "seq", seq);
    assert_int_equal (pl_call_reply (s_calls_made, s_calls [call].cookie, code,
                                     code? "refused": NULL, (const uint8_t *) pack.buffer.data,
                                     pack.buffer.size), 0);
    pl_pack_release (&pack);
}

//  The store answers call with an error whose fields say its outcome is
//  unknown (the broker's backstop for a store that went silent)
static void
s_store_loses (size_t call)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 2);
    pl_pack_kint (&pack, "retry_after_ms", 1000);
    pl_pack_kstr (&pack, "outcome", "unknown");
    assert_int_equal (pl_call_reply (s_calls_made, s_calls [call].cookie, "unavailable",
                                     "Lost.", (const uint8_t *) pack.buffer.data,
                                     pack.buffer.size), 0);
    pl_pack_release (&pack);
}

static int
s_setup (void **state)
{
    (void) state;
    memset (&s_plugin, 0, sizeof s_plugin);
    s_call_count = s_reply_count = 0;
    s_call_refused = false;
    s_calls_made = pl_call_new (&s_host, NULL, &s_plugin);
    s_lane = s_calls_made? pl_lane_new (NULL, &s_host, s_calls_made, &s_class, &s_plugin, 5)
                         : NULL;
    return s_lane? 0: -1;
}

static int
s_teardown (void **state)
{
    (void) state;
    pl_lane_destroy (&s_lane);
    pl_call_destroy (&s_calls_made);
    assert_int_equal (s_plugin.states, 0);
    return 0;
}


//  --------------------------------------------------------------------------
//  Tests

static void
test_lane_loads_a_key_once_then_serves_its_requests (void **state)
{
    s_submit ("general", 1, s_read_start, 0);
    s_submit ("general", 2, s_read_start, 0);
    assert_int_equal (s_call_count, 1);
    assert_string_equal (s_calls [0].type, "store.load");
    assert_int_equal (s_reply_count, 0);
    s_store_answers (0, NULL, 41);
    assert_int_equal (s_reply_count, 2);
    assert_int_equal (s_replies [0].request, 1);
    assert_int_equal (s_replies [0].seq, 41);
    assert_int_equal (s_replies [1].request, 2);
    assert_int_equal (s_plugin.loads, 1);
    s_submit ("general", 3, s_read_start, 0);
    assert_int_equal (s_call_count, 1);        //  loaded: no store call
    assert_int_equal (s_reply_count, 3);
}

static void
test_lane_batches_the_writes_at_the_head_into_one_run (void **state)
{
    s_submit ("general", 1, s_write_start, 1);     //  waits for the load
    s_submit ("general", 2, s_write_start, 1);
    s_submit ("general", 3, s_write_start, 1);
    s_submit ("general", 4, s_write_start, 1);     //  past the run's 3
    s_store_answers (0, NULL, 10);
    assert_int_equal (s_call_count, 2);
    assert_string_equal (s_calls [1].type, "store.write");
    assert_int_equal (s_calls [1].size, 3);        //  a run of three
    s_store_answers (1, NULL, 0);
    //  Seqs 11, 12, 13 in order; then the fourth alone, seq 14
    assert_int_equal (s_reply_count, 3);
    for (int index = 0; index < 3; index++) {
        assert_int_equal (s_replies [index].request, index + 1);
        assert_int_equal (s_replies [index].seq, 11 + index);
    }
    assert_int_equal (s_call_count, 3);
    assert_int_equal (s_calls [2].size, 1);
    s_store_answers (2, NULL, 0);
    assert_int_equal (s_replies [3].seq, 14);
}

static void
test_lane_run_stops_at_its_bytes_and_at_another_kind (void **state)
{
    s_submit ("general", 1, s_read_start, 0);      //  holds the queue: the load
    s_submit ("general", 2, s_write_start, 6);
    s_submit ("general", 3, s_write_start, 6);     //  12 bytes: a run of its own
    s_submit ("general", 4, s_read_start, 0);
    s_submit ("general", 5, s_write_start, 1);
    s_store_answers (0, NULL, 0);
    assert_int_equal (s_calls [1].size, 1);
    s_store_answers (1, NULL, 0);
    assert_int_equal (s_calls [2].size, 1);
    s_store_answers (2, NULL, 0);
    //  The read between writes is answered in its place, then the last write
    assert_int_equal (s_reply_count, 4);
    assert_int_equal (s_replies [3].request, 4);
    assert_int_equal (s_replies [3].seq, 2);
    assert_int_equal (s_calls [3].size, 1);
}

static void
test_lane_conflict_reloads_and_sends_the_run_once_more (void **state)
{
    s_submit ("general", 1, s_write_start, 1);
    s_submit ("general", 2, s_write_start, 1);
    s_store_answers (0, NULL, 5);
    s_store_answers (1, "conflict", 0);            //  seqs 6, 7 taken
    assert_int_equal (s_reply_count, 0);
    assert_int_equal (s_plugin.forgets, 1);
    assert_string_equal (s_calls [2].type, "store.load");
    s_store_answers (2, NULL, 7);
    assert_int_equal (s_calls [3].size, 2);
    s_store_answers (3, "conflict", 0);            //  again: both fail now
    assert_int_equal (s_reply_count, 2);
    assert_string_equal (s_replies [0].code, "internal");
    assert_string_equal (s_replies [1].code, "internal");
    assert_int_equal (pl_lane_size (s_lane), 1);
}

static void
test_lane_unknown_outcome_reloads_before_the_next_write (void **state)
{
    s_submit ("general", 1, s_write_start, 1);
    s_store_answers (0, NULL, 5);
    s_store_answers (1, "unavailable", 0);
    assert_int_equal (s_reply_count, 1);
    assert_string_equal (s_replies [0].code, "unavailable");
    s_submit ("general", 2, s_write_start, 1);
    assert_string_equal (s_calls [2].type, "store.load");
    s_store_answers (2, NULL, 6);                  //  the write had happened
    s_store_answers (3, NULL, 0);
    assert_int_equal (s_replies [1].seq, 7);
}

static void
test_lane_queue_has_a_bound (void **state)
{
    for (int index = 0; index < 5; index++)
        s_submit ("general", index, s_read_start, 0);
    pl_lane_key_t *key = pl_lane_key (s_lane, "general", NULL);
    assert_true (pl_lane_full (s_lane, key));
    assert_false (pl_lane_full (s_lane, pl_lane_key (s_lane, "other", NULL)));
    s_store_answers (0, NULL, 0);
    assert_false (pl_lane_full (s_lane, key));
}

static void
test_lane_call_that_cannot_go_answers_unavailable (void **state)
{
    s_submit ("general", 1, s_write_start, 1);
    s_store_answers (0, NULL, 0);
    s_store_answers (1, NULL, 0);
    assert_int_equal (s_reply_count, 1);           //  the write's ok
    s_call_refused = true;
    s_submit ("general", 2, s_write_start, 1);
    s_submit ("other", 3, s_read_start, 0);
    assert_int_equal (s_reply_count, 3);
    assert_string_equal (s_replies [1].code, "unavailable");
    assert_string_equal (s_replies [2].code, "unavailable");
}

static void
test_lane_failed_load_answers_every_queued_request (void **state)
{
    s_submit ("general", 1, s_read_start, 0);
    s_submit ("general", 2, s_write_start, 1);
    s_store_answers (0, "internal", 0);
    assert_int_equal (s_reply_count, 2);
    assert_string_equal (s_replies [0].code, "internal");
    assert_string_equal (s_replies [1].code, "internal");
    s_submit ("general", 3, s_read_start, 0);      //  loads again
    assert_int_equal (s_call_count, 2);
}

static void
test_lane_evicts_idle_keys_only (void **state)
{
    s_submit ("general", 1, s_read_start, 0);      //  waits for its load
    s_submit ("other", 2, s_read_start, 0);
    s_store_answers (1, NULL, 0);                  //  "other" is idle now
    pl_lane_set_idle (s_lane, 3600 * 1000);
    pl_lane_evict (s_lane);
    assert_int_equal (pl_lane_size (s_lane), 2);
    pl_lane_set_idle (s_lane, 0);
    pl_lane_evict (s_lane);
    assert_int_equal (pl_lane_size (s_lane), 1);
    assert_int_equal (s_plugin.states, 1);
    s_store_answers (0, NULL, 0);
    pl_lane_evict (s_lane);
    assert_int_equal (pl_lane_size (s_lane), 0);
}

static void
test_lane_idle_key_is_loaded_afresh (void **state)
{
    s_submit ("general", 1, s_read_start, 0);
    s_store_answers (0, NULL, 3);
    s_submit ("general", 2, s_read_start, 0);      //  not idle yet: no load
    assert_int_equal (s_call_count, 1);
    assert_int_equal (s_replies [1].seq, 3);
    pl_lane_set_idle (s_lane, 0);                  //  idle now
    s_submit ("general", 3, s_read_start, 0);
    assert_int_equal (s_call_count, 2);
    assert_string_equal (s_calls [1].type, "store.load");
    s_store_answers (1, NULL, 5);
    assert_int_equal (s_replies [2].seq, 5);
    assert_int_equal (s_plugin.states, 1);
    assert_int_equal (pl_lane_size (s_lane), 1);
}

static void
test_lane_keys_grow_the_table (void **state)
{
    char name [16];
    for (int index = 0; index < 1000; index++) {
        snprintf (name, sizeof name, "key%d", index);
        assert_non_null (pl_lane_key (s_lane, name, NULL));
    }
    assert_int_equal (pl_lane_size (s_lane), 1000);
    assert_string_equal (pl_lane_name (pl_lane_key (s_lane, "key500", NULL)), "key500");
    assert_int_equal (pl_lane_size (s_lane), 1000);
}

static void
test_lane_request_refuses_before_the_queue (void **state)
{
    parley_request_t *request = s_request_of (1, "test.other", "alice", "key", "general");
    assert_int_equal (pl_lane_request (s_lane, &request), -1);
    assert_non_null (request);                     //  not the lane's: left to the caller
    request = s_request_of (2, "test.read", NULL, "key", "general");
    assert_int_equal (pl_lane_request (s_lane, &request), 0);
    request = s_request_of (3, "test.read", "alice", NULL, "not a map");
    assert_int_equal (pl_lane_request (s_lane, &request), 0);
    request = s_request_of (4, "test.read", "alice", "key", "bad");
    assert_int_equal (pl_lane_request (s_lane, &request), 0);
    assert_null (request);
    assert_int_equal (s_reply_count, 3);
    assert_string_equal (s_replies [0].code, "unauthenticated");
    assert_string_equal (s_replies [1].code, "bad_request");
    assert_string_equal (s_replies [2].code, "bad_request");
    assert_int_equal (pl_lane_size (s_lane), 0);   //  nothing queued, no key made
    assert_int_equal (s_call_count, 0);
}

static void
test_lane_request_is_queued_under_its_key (void **state)
{
    parley_request_t *request = s_request_of (1, "test.read", "alice", "key", "general");
    assert_int_equal (pl_lane_request (s_lane, &request), 0);
    assert_null (request);
    assert_int_equal (s_call_count, 1);            //  the key loads
    assert_string_equal (s_calls [0].type, "store.load");
    s_store_answers (0, NULL, 3);
    assert_int_equal (s_reply_count, 1);
    assert_int_equal (s_replies [0].seq, 3);
}

static void
test_lane_at_once_answers_ahead_of_the_queue_once_loaded (void **state)
{
    //  Not loaded: it waits its turn, the load
    parley_request_t *request = s_request_of (1, "test.peek", "alice", "key", "general");
    assert_int_equal (pl_lane_request (s_lane, &request), 0);
    assert_int_equal (s_reply_count, 0);
    s_store_answers (0, NULL, 5);
    assert_int_equal (s_reply_count, 1);
    assert_int_equal (s_replies [0].seq, 5);
    //  A write out and the queue full (5): a peek goes past them at once
    for (int index = 2; index < 7; index++) {
        request = s_request_of (index, "test.write", "alice", "key", "general");
        assert_int_equal (pl_lane_request (s_lane, &request), 0);
    }
    assert_int_equal (s_call_count, 2);
    assert_string_equal (s_calls [1].type, "store.write");
    request = s_request_of (7, "test.peek", "alice", "key", "general");
    assert_int_equal (pl_lane_request (s_lane, &request), 0);
    assert_null (request);
    assert_int_equal (s_reply_count, 2);
    assert_int_equal (s_replies [1].request, 7);
    assert_int_equal (s_replies [1].seq, 5);       //  the write is not stored yet
    //  A read is no peek: the full queue refuses it
    request = s_request_of (8, "test.read", "alice", "key", "general");
    assert_int_equal (pl_lane_request (s_lane, &request), 0);
    assert_string_equal (s_replies [2].code, "unavailable");
    s_store_answers (1, NULL, 0);                  //  the first write alone: 6
    s_store_answers (2, NULL, 0);                  //  a run of three: 7, 8, 9
    s_store_answers (3, NULL, 0);                  //  the last: 10
    assert_int_equal (s_reply_count, 8);
    assert_int_equal (s_replies [7].seq, 10);
    //  Forgotten (as after an unknown outcome): the next peek waits for the reload
    pl_lane_forget (s_lane, pl_lane_key (s_lane, "general", NULL));
    request = s_request_of (9, "test.peek", "alice", "key", "general");
    assert_int_equal (pl_lane_request (s_lane, &request), 0);
    size_t replies = s_reply_count;
    assert_string_equal (s_calls [s_call_count - 1].type, "store.load");
    s_store_answers (s_call_count - 1, NULL, 12);
    assert_int_equal (s_reply_count, replies + 1);
    assert_int_equal (s_replies [replies].seq, 12);
}

static void
test_lane_at_once_counts_against_the_rate (void **state)
{
    pl_lane_set_rate (s_lane, 0.001, 1);
    parley_request_t *request = s_request_of (1, "test.peek", "alice", "key", "general");
    assert_int_equal (pl_lane_request (s_lane, &request), 0);
    s_store_answers (0, NULL, 5);
    request = s_request_of (2, "test.peek", "alice", "key", "general");
    assert_int_equal (pl_lane_request (s_lane, &request), 0);
    assert_int_equal (s_reply_count, 2);
    assert_string_equal (s_replies [0].code, "");
    assert_string_equal (s_replies [1].code, "rate_limited");
    assert_true (s_replies [1].retry_ms > 0);
}

static void
test_lane_request_full_queue_is_refused_busy (void **state)
{
    for (int index = 0; index < 6; index++) {
        parley_request_t *request = s_request_of (index, "test.read", "alice", "key", "general");
        assert_int_equal (pl_lane_request (s_lane, &request), 0);
    }
    assert_int_equal (s_reply_count, 1);           //  the sixth: past the 5 queued
    assert_int_equal (s_replies [0].request, 5);
    assert_string_equal (s_replies [0].code, "unavailable");
}

static void
test_lane_rate_limits_the_rated_types_per_user (void **state)
{
    pl_lane_set_rate (s_lane, 0.001, 2);           //  two at once, then one in 1000 s
    int index = 0;
    for (; index < 3; index++) {
        parley_request_t *request = s_request_of (index, "test.write", "Alice", "key", "a");
        pl_lane_request (s_lane, &request);
    }
    parley_request_t *request = s_request_of (index++, "test.write", "alice", "key", "b");
    pl_lane_request (s_lane, &request);            //  the same user, in any case
    request = s_request_of (index++, "test.write", "bob", "key", "b");
    pl_lane_request (s_lane, &request);
    request = s_request_of (index++, "test.read", "alice", "key", "b");
    pl_lane_request (s_lane, &request);            //  reads have no rate
    assert_int_equal (s_reply_count, 2);
    assert_int_equal (s_replies [0].request, 2);
    assert_string_equal (s_replies [0].code, "rate_limited");
    assert_int_equal (s_replies [1].request, 3);
    assert_string_equal (s_replies [1].code, "rate_limited");
    pl_lane_evict (s_lane);                        //  buckets still empty stay
    request = s_request_of (index++, "test.write", "alice", "key", "c");
    pl_lane_request (s_lane, &request);
    assert_int_equal (s_reply_count, 3);
    assert_string_equal (s_replies [2].code, "rate_limited");
}


//  --------------------------------------------------------------------------
//  Nonces: repeats answered by the lane, kept out of runs, found by the store

//  Takes request index, a write to "general" from user with nonce
static void
s_write_nonce (int index, const char *user, const char *nonce)
{
    parley_request_t *request = s_request_nonce (index, "test.write", user, "general", nonce);
    pl_lane_request (s_lane, &request);
    assert_null (request);
}

//  The store answers a write ok with duplicates: count {index, seq, ts}
static void
s_store_answers_repeats (size_t call, uint32_t count, const int64_t *indexes,
                         const int64_t *seqs)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 1);
    pl_pack_str (&pack, "duplicates");
    msgpack_pack_array (&pack.packer, count);
    for (uint32_t item = 0; item < count; item++) {
        pl_pack_map (&pack, 3);
        pl_pack_kint (&pack, "index", indexes [item]);
        pl_pack_kint (&pack, "seq", seqs [item]);
        pl_pack_kint (&pack, "ts", 1000 + seqs [item]);
    }
    assert_int_equal (pl_call_reply (s_calls_made, s_calls [call].cookie, NULL, NULL,
                                     (const uint8_t *) pack.buffer.data, pack.buffer.size), 0);
    pl_pack_release (&pack);
}

//  The store answers a nonce look-up: found at seq, or not (seq 0)
static void
s_store_answers_look_up (size_t call, int64_t seq)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, seq? 3: 1);
    pl_pack_kbool (&pack, "duplicate", seq > 0);
    if (seq) {
        pl_pack_kint (&pack, "seq", seq);
        pl_pack_kint (&pack, "ts", 1000 + seq);
    }
    assert_int_equal (pl_call_reply (s_calls_made, s_calls [call].cookie, NULL, NULL,
                                     (const uint8_t *) pack.buffer.data, pack.buffer.size), 0);
    pl_pack_release (&pack);
}

static void
test_lane_answers_a_known_nonce_itself (void **state)
{
    s_write_nonce (1, "alice", "n1");
    s_store_answers (0, NULL, 10);                 //  the load
    s_store_answers (1, NULL, 0);                  //  the write: seq 11
    assert_int_equal (s_replies [0].seq, 11);
    //  The same sender in any case: answered at once, no store call
    s_write_nonce (2, "ALICE", "n1");
    assert_int_equal (s_call_count, 2);
    assert_int_equal (s_reply_count, 2);
    assert_string_equal (s_replies [1].code, "");
    assert_int_equal (s_replies [1].seq, 11);
    assert_true (s_replies [1].duplicate);
    //  Another sender's same nonce is a write of its own
    s_write_nonce (3, "bob", "n1");
    assert_int_equal (s_call_count, 3);
    s_store_answers (2, NULL, 0);
    assert_int_equal (s_replies [2].seq, 12);
    assert_false (s_replies [2].duplicate);
}

//  A repeat the key remembers is answered duplicate even when its queue is
//  full: recognised before any limit
static void
test_lane_answers_a_known_nonce_past_a_full_queue (void **state)
{
    s_write_nonce (1, "alice", "n1");
    s_store_answers (0, NULL, 10);                 //  the load
    s_store_answers (1, NULL, 0);                  //  the write: seq 11
    s_write_nonce (2, "alice", "n2");              //  its store call stays out
    for (int index = 3; index < 9; index++) {
        parley_request_t *request = s_request_of (index, "test.read", "bob", "key", "general");
        pl_lane_request (s_lane, &request);
    }
    int refused = s_reply_count;
    assert_string_equal (s_replies [refused - 1].code, "unavailable");
    s_write_nonce (9, "alice", "n1");
    assert_int_equal (s_reply_count, refused + 1);
    assert_string_equal (s_replies [refused].code, "");
    assert_int_equal (s_replies [refused].seq, 11);
    assert_true (s_replies [refused].duplicate);
}

static void
test_lane_run_leaves_out_a_nonce_it_carries_already (void **state)
{
    s_write_nonce (1, "alice", "n1");              //  wait for the load
    s_write_nonce (2, "alice", "n2");
    s_write_nonce (3, "alice", "n1");              //  a repeat of the first
    s_write_nonce (4, "alice", "n3");
    s_store_answers (0, NULL, 0);
    assert_int_equal (s_calls [1].size, 2);        //  the run stops before it
    s_store_answers (1, NULL, 0);
    //  1 and 2 stored; 3 answered as 1's repeat; 4 goes alone
    assert_int_equal (s_reply_count, 3);
    assert_int_equal (s_replies [2].request, 3);
    assert_int_equal (s_replies [2].seq, 1);
    assert_true (s_replies [2].duplicate);
    assert_int_equal (s_call_count, 3);
    s_store_answers (2, NULL, 0);
    assert_int_equal (s_replies [3].request, 4);
    assert_int_equal (s_replies [3].seq, 3);
}

static void
test_lane_store_duplicates_answer_them_and_send_the_rest_anew (void **state)
{
    pl_lane_set_nonces (s_lane, 0);                //  as after a restart: cold
    s_write_nonce (1, "alice", "n1");
    s_write_nonce (2, "alice", "n2");
    s_write_nonce (3, "alice", "n3");
    s_store_answers (0, NULL, 5);
    assert_int_equal (s_calls [1].size, 3);        //  seqs 6, 7, 8
    s_store_answers_repeats (1, 1, (int64_t []) { 1 }, (int64_t []) { 2 });
    //  n2 was stored at seq 2: answered so; the others go again as 6, 7
    assert_int_equal (s_reply_count, 1);
    assert_int_equal (s_replies [0].request, 2);
    assert_int_equal (s_replies [0].seq, 2);
    assert_true (s_replies [0].duplicate);
    assert_int_equal (s_call_count, 3);
    assert_int_equal (s_calls [2].size, 2);
    s_store_answers (2, NULL, 0);
    assert_int_equal (s_reply_count, 3);
    assert_int_equal (s_replies [1].request, 1);
    assert_int_equal (s_replies [1].seq, 6);
    assert_int_equal (s_replies [2].request, 3);
    assert_int_equal (s_replies [2].seq, 7);
    //  A run whose every request repeats leaves nothing to send
    s_write_nonce (4, "alice", "n1");
    s_store_answers_repeats (3, 1, (int64_t []) { 0 }, (int64_t []) { 6 });
    assert_int_equal (s_reply_count, 4);
    assert_int_equal (s_replies [3].seq, 6);
    assert_int_equal (s_call_count, 4);
    //  A list that names no request of the run fails it, rather than loop
    s_write_nonce (5, "alice", "n5");
    s_store_answers_repeats (4, 1, (int64_t []) { 7 }, (int64_t []) { 1 });
    assert_int_equal (s_reply_count, 5);
    assert_string_equal (s_replies [4].code, "internal");
    assert_int_equal (s_call_count, 5);
}

//  The store answers a write ok with refused: {index, code} for each of
//  count indexes, and duplicates: {index: duplicate, seq 2} when duplicate
//  is 0 or more
static void
s_store_answers_refused (size_t call, uint32_t count, const int64_t *indexes,
                         const char *code, int64_t duplicate)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, duplicate >= 0? 2: 1);
    pl_pack_str (&pack, "refused");
    msgpack_pack_array (&pack.packer, count);
    for (uint32_t item = 0; item < count; item++) {
        pl_pack_map (&pack, 2);
        pl_pack_kint (&pack, "index", indexes [item]);
        pl_pack_kstr (&pack, "code", code);
    }
    if (duplicate >= 0) {
        pl_pack_str (&pack, "duplicates");
        msgpack_pack_array (&pack.packer, 1);
        pl_pack_map (&pack, 3);
        pl_pack_kint (&pack, "index", duplicate);
        pl_pack_kint (&pack, "seq", 2);
        pl_pack_kint (&pack, "ts", 1002);
    }
    assert_int_equal (pl_call_reply (s_calls_made, s_calls [call].cookie, NULL, NULL,
                                     (const uint8_t *) pack.buffer.data, pack.buffer.size), 0);
    pl_pack_release (&pack);
}

//  Elements the store refuses inside a run (an edit of a message that is
//  not there) are answered by the class; the rest go again, numbered anew
static void
test_lane_store_refusals_answer_them_and_send_the_rest_anew (void **state)
{
    pl_lane_set_nonces (s_lane, 0);
    s_write_nonce (1, "alice", "n1");
    s_write_nonce (2, "alice", "n2");
    s_write_nonce (3, "alice", "n3");
    s_store_answers (0, NULL, 5);
    assert_int_equal (s_calls [1].size, 3);        //  seqs 6 to 8
    //  2 refused, 3 a repeat stored at 2, in one answer
    s_store_answers_refused (1, 1, (int64_t []) { 1 }, "no_such_message", 2);
    assert_int_equal (s_reply_count, 2);
    assert_int_equal (s_replies [0].request, 3);
    assert_true (s_replies [0].duplicate);
    assert_int_equal (s_replies [1].request, 2);
    assert_string_equal (s_replies [1].code, "no_such_message");
    assert_int_equal (s_call_count, 3);
    assert_int_equal (s_calls [2].size, 1);        //  1 again, as 6
    s_store_answers (2, NULL, 0);
    assert_int_equal (s_reply_count, 3);
    assert_int_equal (s_replies [2].request, 1);
    assert_int_equal (s_replies [2].seq, 6);
    //  A run refused whole leaves nothing to send; an index outside the run
    //  fails it rather than loop
    s_write_nonce (5, "alice", "n5");
    s_store_answers_refused (3, 1, (int64_t []) { 0 }, "forbidden", -1);
    assert_string_equal (s_replies [3].code, "forbidden");
    assert_int_equal (s_call_count, 4);
    s_write_nonce (6, "alice", "n6");
    s_store_answers_refused (4, 1, (int64_t []) { 3 }, "forbidden", -1);
    assert_string_equal (s_replies [4].code, "internal");
    assert_int_equal (s_call_count, 5);
}

static void
test_lane_looks_a_nonce_up_before_refusing_its_rate (void **state)
{
    pl_lane_set_rate (s_lane, 0.001, 1);           //  one, then one in 1000 s
    s_write_nonce (1, "alice", "n1");
    s_store_answers (0, NULL, 0);
    s_store_answers (1, NULL, 0);
    assert_int_equal (s_replies [0].seq, 1);
    //  Known to the key: a repeat, though the bucket is empty
    s_write_nonce (2, "alice", "n1");
    assert_int_equal (s_call_count, 2);
    assert_true (s_replies [1].duplicate);
    assert_int_equal (s_replies [1].seq, 1);
    //  Unknown: the store is asked; not stored, it is refused for its rate
    s_write_nonce (3, "alice", "n9");
    assert_string_equal (s_calls [2].type, "store.nonce");
    s_store_answers_look_up (2, 0);
    assert_string_equal (s_replies [2].code, "rate_limited");
    //  Stored before (the key forgot it): answered as a repeat
    s_write_nonce (4, "alice", "n8");
    s_store_answers_look_up (3, 42);
    assert_string_equal (s_replies [3].code, "");
    assert_int_equal (s_replies [3].seq, 42);
    assert_true (s_replies [3].duplicate);
    //  Without a nonce: refused at once, no store call
    parley_request_t *request = s_request_of (5, "test.write", "alice", "key", "general");
    pl_lane_request (s_lane, &request);
    assert_int_equal (s_call_count, 4);
    assert_string_equal (s_replies [4].code, "rate_limited");
    //  A bad nonce is refused as the reader says
    request = s_request_nonce (6, "test.write", "alice", "general", "not one");
    pl_lane_request (s_lane, &request);
    assert_string_equal (s_replies [5].code, "bad_request");
}

//  A map of one field, unpacked into unpacked
static const msgpack_object *
s_map (msgpack_unpacked *unpacked, msgpack_sbuffer *buffer, const char *key, int64_t value)
{
    msgpack_sbuffer_init (buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 1);
    msgpack_pack_str_with_body (&packer, key, strlen (key));
    msgpack_pack_int64 (&packer, value);
    msgpack_unpacked_init (unpacked);
    size_t offset = 0;
    msgpack_unpack_next (unpacked, buffer->data, buffer->size, &offset);
    return &unpacked->data;
}

//  A request whose time ran out while it waited is answered unavailable
//  without being run, and takes no seq in a run; the run goes on without it
static void
test_lane_drops_requests_whose_time_is_gone_before_they_run (void **state)
{
    s_submit ("general", 1, s_read_start, 0);              //  holds the queue: the load
    s_submit_within ("general", 2, s_write_start, 1, 5000);
    s_submit_within ("general", 3, s_write_start, 1, 5000);
    s_submit ("general", 4, s_write_start, 1);
    s_requests [3].left = 0;                                //  its time ran out
    s_store_answers (0, NULL, 10);
    assert_int_equal (s_reply_count, 2);
    assert_int_equal (s_replies [0].request, 1);
    assert_int_equal (s_replies [1].request, 3);
    assert_string_equal (s_replies [1].code, "unavailable");
    assert_true (s_replies [1].retry_ms > 0);
    assert_false (s_replies [1].unknown);
    assert_int_equal (s_calls [1].size, 2);                //  a run of 2 and 4
    s_store_answers (1, NULL, 0);
    assert_int_equal (s_replies [2].request, 2);
    assert_int_equal (s_replies [2].seq, 11);
    assert_int_equal (s_replies [3].request, 4);
    assert_int_equal (s_replies [3].seq, 12);

    //  At the head, loaded: answered at once, no store call
    s_submit_within ("general", 5, s_write_start, 1, 0);
    assert_int_equal (s_reply_count, 5);
    assert_int_equal (s_replies [4].request, 5);
    assert_string_equal (s_replies [4].code, "unavailable");
    assert_int_equal (s_call_count, 2);
}

//  A store call has the earliest deadline of its requests less a tenth;
//  requests without one give it none
static void
test_lane_store_call_has_the_earliest_deadline_less_a_margin (void **state)
{
    s_submit_within ("general", 1, s_write_start, 1, 3000);
    assert_int_equal (s_calls [0].time_left, 2700);        //  the load, for request 1
    s_submit_within ("general", 2, s_write_start, 1, 2000);
    s_submit ("general", 3, s_write_start, 1);
    s_store_answers (0, NULL, 0);
    assert_int_equal (s_calls [1].size, 3);
    assert_int_equal (s_calls [1].time_left, 1800);
    s_store_answers (1, NULL, 0);
    s_submit ("general", 4, s_write_start, 1);
    assert_int_equal (s_calls [2].time_left, -1);
}

//  The store had the run and its answer was lost: every request of the run
//  is told unavailable with "outcome": "unknown"; a store's own unavailable
//  (it wrote nothing) has no outcome
static void
test_lane_lost_store_answer_is_an_unknown_outcome (void **state)
{
    s_submit ("general", 1, s_write_start, 1);
    s_submit ("general", 2, s_write_start, 1);
    s_store_answers (0, NULL, 5);
    s_store_loses (1);
    assert_int_equal (s_reply_count, 2);
    for (int index = 0; index < 2; index++) {
        assert_string_equal (s_replies [index].code, "unavailable");
        assert_true (s_replies [index].unknown);
        assert_int_equal (s_replies [index].retry_ms, 1000);
    }
    s_submit ("general", 3, s_write_start, 1);
    s_store_answers (2, NULL, 7);                          //  reloaded: it had happened
    s_store_answers (3, "unavailable", 0);
    assert_string_equal (s_replies [2].code, "unavailable");
    assert_false (s_replies [2].unknown);
    assert_true (s_replies [2].retry_ms > 0);
}

//  With one op's time measured, a request is admitted only when the work
//  queued for its key fits its time left; else refused at once
static void
test_lane_admits_only_what_can_be_served_in_time (void **state)
{
    //  Reads whose load takes 40 ms or more, until enough are measured
    pl_lane_key_t *key = pl_lane_key (s_lane, "general", NULL);
    for (int index = 0; index < PL_LANE_ADMIT_SAMPLES; index++) {
        s_submit ("general", 10, s_read_start, 0);
        usleep (40 * 1000);
        s_store_answers (s_call_count - 1, NULL, 0);
        assert_int_equal (s_reply_count, (size_t) index + 1);
        assert_string_equal (s_replies [index].code, "");
        pl_lane_forget (s_lane, key);
    }
    //  Three waiting behind a load that has not come back
    size_t replies = s_reply_count;
    for (int index = 2; index < 5; index++) {
        parley_request_t *request = s_request_of (index, "test.read", "alice", "key", "general");
        assert_int_equal (pl_lane_request (s_lane, &request), 0);
    }
    assert_int_equal (s_reply_count, replies);
    //  (3 + 1) x 40 ms and more is past 60 ms: refused with when to retry
    parley_request_t *request = s_request_of (5, "test.read", "alice", "key", "general");
    s_requests [5].left = 60;
    assert_int_equal (pl_lane_request (s_lane, &request), 0);
    assert_int_equal (s_reply_count, replies + 1);
    assert_int_equal (s_replies [replies].request, 5);
    assert_string_equal (s_replies [replies].code, "unavailable");
    assert_true (s_replies [replies].retry_ms >= 100);
    //  One with time enough is queued
    request = s_request_of (6, "test.read", "alice", "key", "general");
    s_requests [6].left = 1000000;
    assert_int_equal (pl_lane_request (s_lane, &request), 0);
    assert_int_equal (s_reply_count, replies + 1);
    s_store_answers (s_call_count - 1, NULL, 0);
    assert_int_equal (s_reply_count, replies + 5);

    //  Loaded again: one whose time left is shorter than two store calls of
    //  its kind is not begun (a load of 40 ms: not in 60 ms)
    pl_lane_forget (s_lane, key);
    size_t calls = s_call_count;
    s_submit_within ("general", 7, s_read_start, 0, 60);
    assert_int_equal (s_call_count, calls);
    assert_int_equal (s_reply_count, replies + 6);
    assert_int_equal (s_replies [replies + 5].request, 7);
    assert_string_equal (s_replies [replies + 5].code, "unavailable");
}

static void
test_lane_page_reads_limit_and_one_cursor (void **state)
{
    pl_lane_page_t page;
    pl_lane_intake_t intake = { NULL };
    msgpack_unpacked unpacked;
    msgpack_sbuffer buffer;
    assert_true (pl_lane_page_read (s_map (&unpacked, &buffer, "before", 7), 50, 200,
                                    &page, &intake));
    assert_int_equal (page.limit, 50);
    assert_int_equal (page.before, 7);
    assert_int_equal (page.after, -1);
    assert_int_equal (pl_lane_page_fields (&page), 2);
    msgpack_unpacked_destroy (&unpacked);
    msgpack_sbuffer_destroy (&buffer);
    assert_false (pl_lane_page_read (s_map (&unpacked, &buffer, "limit", 201), 50, 200,
                                     &page, &intake));
    assert_string_equal (intake.code, "bad_request");
    assert_string_equal (intake.message, "The field 'limit' must be a whole number from 1 to 200.");
    msgpack_unpacked_destroy (&unpacked);
    msgpack_sbuffer_destroy (&buffer);
    assert_false (pl_lane_page_read (s_map (&unpacked, &buffer, "after", -1), 50, 200,
                                     &page, &intake));
    assert_string_equal (intake.message, "The field 'after' must be a seq (a whole number).");
    msgpack_unpacked_destroy (&unpacked);
    msgpack_sbuffer_destroy (&buffer);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_lane_loads_a_key_once_then_serves_its_requests,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_at_once_answers_ahead_of_the_queue_once_loaded,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_at_once_counts_against_the_rate,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_batches_the_writes_at_the_head_into_one_run,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_run_stops_at_its_bytes_and_at_another_kind,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_conflict_reloads_and_sends_the_run_once_more,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_unknown_outcome_reloads_before_the_next_write,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_queue_has_a_bound, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_call_that_cannot_go_answers_unavailable,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_failed_load_answers_every_queued_request,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_evicts_idle_keys_only, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_idle_key_is_loaded_afresh,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_keys_grow_the_table, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_request_refuses_before_the_queue,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_request_is_queued_under_its_key,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_request_full_queue_is_refused_busy,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_rate_limits_the_rated_types_per_user,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_drops_requests_whose_time_is_gone_before_they_run,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_store_call_has_the_earliest_deadline_less_a_margin,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_lost_store_answer_is_an_unknown_outcome,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_admits_only_what_can_be_served_in_time,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_page_reads_limit_and_one_cursor,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_answers_a_known_nonce_itself,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_answers_a_known_nonce_past_a_full_queue,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_run_leaves_out_a_nonce_it_carries_already,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_store_refusals_answer_them_and_send_the_rest_anew,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_store_duplicates_answer_them_and_send_the_rest_anew,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lane_looks_a_nonce_up_before_refusing_its_rate,
                                         s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
