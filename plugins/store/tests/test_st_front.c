/*  test_st_front - the store front against a host and a backend of the
    test's own: a request whose time is gone when its batch starts is
    answered unavailable (with retry_after_ms) and never reaches the
    backend; the others run and are answered in order */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pl_body.h"
#include "pl_pack.h"
#include "st_front.h"

#include <stdio.h>
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

static const parley_host_t s_host = {
    .abi_major = 1, .abi_minor = 3, .size = sizeof (parley_host_t),
    .request_type = s_request_type,
    .request_body = s_request_body,
    .reply = s_reply,
    .reply_error = s_reply_error,
    .reply_error_body = s_reply_error_body,
    .log = s_log,
    .request_time_left = s_request_time_left,
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
    for (size_t index = 0; index < count; index++)
        if (st_request_live (requests [index]))
            s_ran++;
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

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_a_write_whose_time_is_gone_is_not_started),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
