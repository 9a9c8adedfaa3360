/*  test_st_front - the store front against a host and a backend of the
    test's own: a request whose time is gone when its batch starts is
    answered unavailable (with retry_after_ms) and never reaches the
    backend; the others run and are answered in order. A request the
    backend sets aside is kept unanswered while the others are answered,
    runs again with the next batch, a wake or the front's timer, and is
    answered unavailable when its time is gone or the store stops */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pl_body.h"
#include "pl_pack.h"
#include "st_front.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  A request as the test's host lends it
typedef struct {
    int index;
    char body [128];
    size_t size;
    int64_t left;                   //  its time left, -1 for none
} request_t;

//  An answer the front gave
typedef struct {
    int index;
    char code [32];                 //  "" for ok
    int64_t retry_ms;               //  an error's retry_after_ms, 0 if none
} answer_t;

static request_t s_requests [8];
static answer_t s_answers [8];
static size_t s_answer_count;
static size_t s_ran;                //  live requests the backend was given
static bool s_hold [8];             //  the backend sets these requests aside
static int s_timers;                //  timers the front has armed now

static const char *
s_request_type (const parley_request_t *request)
{
    (void) request;
    return "store.user.create";
}

static const uint8_t *
s_request_body (const parley_request_t *request, size_t *size_p)
{
    const request_t *held = (const request_t *) request;
    *size_p = held->size;
    return (const uint8_t *) held->body;
}

static int64_t
s_request_time_left (const parley_request_t *request)
{
    return ((const request_t *) request)->left;
}

static answer_t *
s_answer (parley_request_t **request_p, const char *code)
{
    answer_t *answer = &s_answers [s_answer_count++];
    answer->index = ((request_t *) *request_p)->index;
    snprintf (answer->code, sizeof answer->code, "%s", code);
    *request_p = NULL;
    return answer;
}

static int
s_reply (parley_ctx_t *ctx, parley_request_t **request_p, const void *body, size_t size)
{
    (void) ctx, (void) body, (void) size;
    s_answer (request_p, "");
    return 0;
}

static int
s_reply_error (parley_ctx_t *ctx, parley_request_t **request_p, const char *code,
               const char *message)
{
    (void) ctx, (void) message;
    s_answer (request_p, code);
    return 0;
}

static int
s_reply_error_body (parley_ctx_t *ctx, parley_request_t **request_p, const char *code,
                    const char *message, const void *body, size_t size)
{
    (void) ctx, (void) message;
    answer_t *answer = s_answer (request_p, code);
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    answer->retry_ms = pl_body_int (pl_body_unpack (&unpacked, body, size), "retry_after_ms");
    msgpack_unpacked_destroy (&unpacked);
    return 0;
}

static void
s_log (parley_ctx_t *ctx, int level, const char *format, ...)
{
    (void) ctx, (void) level, (void) format;
}

static int
s_timer_add (parley_ctx_t *ctx, uint32_t interval_ms, void (*handler) (void *state))
{
    (void) ctx, (void) interval_ms, (void) handler;
    return ++s_timers;
}

static int
s_timer_cancel (parley_ctx_t *ctx, int timer_id)
{
    (void) ctx, (void) timer_id;
    s_timers--;
    return 0;
}

static const parley_host_t s_host = {
    .abi_major = 1, .abi_minor = 3, .size = sizeof (parley_host_t),
    .request_type = s_request_type,
    .request_body = s_request_body,
    .reply = s_reply,
    .reply_error = s_reply_error,
    .reply_error_body = s_reply_error_body,
    .log = s_log,
    .request_time_left = s_request_time_left,
    .timer_add = s_timer_add,
    .timer_cancel = s_timer_cancel,
};

//  The backend: counts what it is given to run, answers each ok
static int
s_open (parley_ctx_t *ctx, const parley_host_t *host, void **state_p)
{
    (void) ctx, (void) host;
    *state_p = &s_ran;
    return 0;
}

static void
s_close (void **state_p)
{
    *state_p = NULL;
}

static void
s_run (void *state, st_request_t **requests, size_t count)
{
    (void) state;
    for (size_t index = 0; index < count; index++) {
        st_request_t *request = requests [index];
        if (!st_request_live (request))
            continue;
        s_ran++;
        //  "userN": the test's request N
        int number = atoi (request->as.user_create.name.key + 4);
        if (s_hold [number])
            st_request_set_aside (request, (uint64_t) number + 100);
    }
}

static const st_backend_t s_backend = {
    .name = "store-test", .version = "0", .description = "the test's",
    .open = s_open, .close = s_close, .run = s_run
};

static parley_request_t *
s_request (int index, int64_t left)
{
    request_t *request = &s_requests [index];
    request->index = index;
    request->left = left;
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 3);
    char name [16];
    snprintf (name, sizeof name, "user%d", index);
    pl_pack_kstr (&pack, "name", name);
    pl_pack_kstr (&pack, "password_hash", "h");
    pl_pack_kint (&pack, "created_at", 1);
    assert_true (pack.buffer.size <= sizeof request->body);
    memcpy (request->body, pack.buffer.data, pack.buffer.size);
    request->size = pack.buffer.size;
    pl_pack_release (&pack);
    return (parley_request_t *) request;
}

static void
test_a_write_whose_time_is_gone_is_not_started (void **state)
{
    (void) state;
    void *front = NULL;
    assert_int_equal (st_front_init (&s_backend, NULL, &s_host, &front), 0);
    st_front_on_request (front, s_request (0, 3000));
    st_front_on_request (front, s_request (1, 0));          //  its caller gave up
    st_front_on_request (front, s_request (2, -1));         //  no deadline
    st_front_on_batch_end (front);
    assert_int_equal (s_ran, 2);
    assert_int_equal (s_answer_count, 3);
    //  In the order received; the late one unavailable, when to retry
    assert_int_equal (s_answers [0].index, 0);
    assert_string_equal (s_answers [0].code, "");
    assert_int_equal (s_answers [1].index, 1);
    assert_string_equal (s_answers [1].code, "unavailable");
    assert_true (s_answers [1].retry_ms >= 100);
    assert_int_equal (s_answers [2].index, 2);
    assert_string_equal (s_answers [2].code, "");
    st_front_destroy (&front);
}

static void
test_a_request_set_aside_waits_while_the_others_are_answered (void **state)
{
    (void) state;
    s_answer_count = s_ran = 0;
    void *front = NULL;
    assert_int_equal (st_front_init (&s_backend, NULL, &s_host, &front), 0);
    s_hold [1] = s_hold [4] = s_hold [5] = true;
    st_front_on_request (front, s_request (0, -1));
    st_front_on_request (front, s_request (1, -1));
    st_front_on_request (front, s_request (2, -1));
    st_front_on_batch_end (front);
    //  0 and 2 answered in order, 1 kept, a timer to bring it back
    assert_int_equal (s_answer_count, 2);
    assert_int_equal (s_answers [0].index, 0);
    assert_int_equal (s_answers [1].index, 2);
    assert_int_equal (s_timers, 1);
    //  It runs again, first, with the next batch: still held, still kept
    st_front_on_request (front, s_request (3, -1));
    st_front_on_batch_end (front);
    assert_int_equal (s_ran, 5);
    assert_int_equal (s_answer_count, 3);
    assert_int_equal (s_answers [2].index, 3);
    //  The backend let go (a wake): answered ok, the timer gone
    s_hold [1] = false;
    st_front_on_wake (front);
    assert_int_equal (s_answer_count, 4);
    assert_int_equal (s_answers [3].index, 1);
    assert_string_equal (s_answers [3].code, "");
    assert_int_equal (s_timers, 0);
    //  One whose time runs out while set aside: unavailable, not run again
    st_front_on_request (front, s_request (4, 3000));
    st_front_on_batch_end (front);
    s_requests [4].left = 0;
    size_t ran = s_ran;
    st_front_on_batch_end (front);
    assert_int_equal (s_ran, ran);
    assert_int_equal (s_answer_count, 5);
    assert_int_equal (s_answers [4].index, 4);
    assert_string_equal (s_answers [4].code, "unavailable");
    //  One still set aside when the store stops: unavailable
    st_front_on_request (front, s_request (5, -1));
    st_front_on_batch_end (front);
    assert_int_equal (s_answer_count, 5);
    st_front_destroy (&front);
    assert_int_equal (s_answer_count, 6);
    assert_int_equal (s_answers [5].index, 5);
    assert_string_equal (s_answers [5].code, "unavailable");
    assert_int_equal (s_timers, 0);
    s_hold [4] = s_hold [5] = false;
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_a_write_whose_time_is_gone_is_not_started),
        cmocka_unit_test (test_a_request_set_aside_waits_while_the_others_are_answered),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
