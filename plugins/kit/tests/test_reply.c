/*  test_reply - a reply's JSON size, measured as the gateway writes it, and
    the replies the kit packs */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pl_reply.h"
#include "pl_service.h"
#include "pl_transcode.h"

//  The gateway writes an event body (a map) as it is: its JSON size must be
//  exactly what pl_reply_json_size says
static size_t
s_written_size (const msgpack_sbuffer *buffer)
{
    size_t size = 0;
    uint8_t *json = pl_transcode_frame (NULL, NULL, 0, (const uint8_t *) buffer->data,
                                        buffer->size, 0, &size);
    assert_non_null (json);
    free (json);
    return size;
}

static size_t
s_measured_size (const msgpack_sbuffer *buffer)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    assert_int_equal (msgpack_unpack_next (&unpacked, buffer->data, buffer->size, NULL),
                      MSGPACK_UNPACK_SUCCESS);
    size_t size = pl_reply_json_size (&unpacked.data);
    msgpack_unpacked_destroy (&unpacked);
    return size;
}

static void
s_pack_str (msgpack_packer *packer, const char *text, size_t length)
{
    msgpack_pack_str (packer, length);
    msgpack_pack_str_body (packer, text, length);
}

static void
test_json_size_matches_the_gateways_writer (void **state)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    const char awkward [] = "quote \" back \\ nl \n tab \t bell \x07 nul-less \x1f "
                            "\xc3\xa9 \xf0\x9f\x98\x80 bad \xff\xfe end";
    msgpack_pack_map (&packer, 8);
    s_pack_str (&packer, "text", 4);
    s_pack_str (&packer, awkward, sizeof (awkward) - 1);
    s_pack_str (&packer, "seq", 3);
    msgpack_pack_uint64 (&packer, 18446744073709551615ULL);
    s_pack_str (&packer, "neg", 3);
    msgpack_pack_int64 (&packer, -42);
    s_pack_str (&packer, "yes", 3);
    msgpack_pack_true (&packer);
    s_pack_str (&packer, "no", 2);
    msgpack_pack_false (&packer);
    s_pack_str (&packer, "none", 4);
    msgpack_pack_nil (&packer);
    s_pack_str (&packer, "list", 4);
    msgpack_pack_array (&packer, 3);
    msgpack_pack_uint8 (&packer, 1);
    msgpack_pack_map (&packer, 0);
    msgpack_pack_array (&packer, 0);
    msgpack_pack_uint8 (&packer, 7);            //  a key that is not a string
    s_pack_str (&packer, "seven", 5);
    assert_int_equal (s_measured_size (&buffer), s_written_size (&buffer));
    msgpack_sbuffer_destroy (&buffer);
}

//  A map measured member by member, from its fields, is what the writer writes
static void
test_member_sizes_add_up_to_the_writers (void **state)
{
    const uint64_t numbers [] = { 0, 9, 10, 99, 100, 18446744073709551615ULL };
    for (size_t index = 0; index < sizeof numbers / sizeof numbers [0]; index++) {
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        msgpack_packer packer;
        msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
        msgpack_pack_map (&packer, 2);
        s_pack_str (&packer, "seq", 3);
        msgpack_pack_uint64 (&packer, numbers [index]);
        s_pack_str (&packer, "t\"x", 3);
        s_pack_str (&packer, "a\nb", 3);
        size_t measured = 2 + pl_reply_json_member_size ("seq", pl_reply_json_uint_size (numbers [index]))
                        + 1 + pl_reply_json_member_size ("t\"x", pl_reply_json_str_size ("a\nb", 3));
        assert_int_equal (measured, s_written_size (&buffer));
        msgpack_sbuffer_destroy (&buffer);
    }
}

static void
test_budget_stops_at_a_whole_item (void **state)
{
    pl_reply_budget_t budget = pl_reply_budget (10);
    assert_true (pl_reply_budget_take (&budget, 4));        //  4
    assert_true (pl_reply_budget_take (&budget, 4));        //  4 + 1 + 4 = 9
    assert_false (pl_reply_budget_take (&budget, 1));       //  would be 11
    assert_int_equal (budget.used, 9);
    assert_int_equal (budget.items, 2);
    pl_reply_budget_t small = pl_reply_budget (3);
    assert_false (pl_reply_budget_take (&small, 4));
    assert_int_equal (small.items, 0);
}

static void
test_string_size_counts_escapes (void **state)
{
    assert_int_equal (pl_reply_json_str_size ("", 0), 2);
    assert_int_equal (pl_reply_json_str_size ("ab", 2), 4);
    assert_int_equal (pl_reply_json_str_size ("\x01", 1), 8);
    assert_int_equal (pl_reply_json_str_size ("\"", 1), 4);
    assert_int_equal (pl_reply_json_str_size ("\xf0\x9f\x98\x80", 4), 6);
    assert_int_equal (pl_reply_json_str_size ("\xff", 1), 5);
}

static void
test_packed_size_is_the_objects_and_garbage_never_fits (void **state)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 1);
    s_pack_str (&packer, "room", 4);
    s_pack_str (&packer, "general \"x\"", 11);
    assert_int_equal (pl_reply_json_size_packed (buffer.data, buffer.size),
                      s_written_size (&buffer));
    assert_int_equal (pl_reply_json_size_packed (buffer.data, 3), SIZE_MAX);
    msgpack_sbuffer_destroy (&buffer);
}

//  A refusal after a failed store call waits the longer of what the store
//  said and what the plugin measured, never less than the least
static void
test_retry_is_the_longer_of_the_stores_and_the_measure (void **state)
{
    (void) state;
    assert_int_equal (pl_reply_retry_ms (1000, 4300), 4300);
    assert_int_equal (pl_reply_retry_ms (1000, 20), 1000);
    assert_int_equal (pl_reply_retry_ms (0, 250), 250);
    assert_int_equal (pl_reply_retry_ms (0, 0), PL_SERVICE_RETRY_MIN_MS);
    assert_int_equal (pl_reply_retry_ms (-5, 3), PL_SERVICE_RETRY_MIN_MS);
}

//  A fake host's reply: keeps the bytes answered and takes the request
static msgpack_sbuffer s_answered;

static int
s_reply (parley_ctx_t *ctx, parley_request_t **request_p, const void *body, size_t size)
{
    (void) ctx;
    msgpack_sbuffer_write (&s_answered, (const char *) body, size);
    *request_p = NULL;
    return 0;
}

//  Another service's answer is passed on byte for byte as it was packed
static void
test_object_is_answered_as_packed (void **state)
{
    (void) state;
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 2);
    s_pack_str (&packer, "rooms", 5);
    msgpack_pack_array (&packer, 1);
    s_pack_str (&packer, "general", 7);
    s_pack_str (&packer, "more", 4);
    msgpack_pack_true (&packer);
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    assert_int_equal (msgpack_unpack_next (&unpacked, buffer.data, buffer.size, NULL),
                      MSGPACK_UNPACK_SUCCESS);
    msgpack_sbuffer_init (&s_answered);
    parley_host_t host = { .reply = s_reply };
    parley_request_t *request = (parley_request_t *) &host;     //  opaque: never read
    assert_int_equal (pl_reply_object (&host, NULL, &request, &unpacked.data), 0);
    assert_null (request);
    assert_int_equal (s_answered.size, buffer.size);
    assert_memory_equal (s_answered.data, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&s_answered);
    msgpack_unpacked_destroy (&unpacked);
    msgpack_sbuffer_destroy (&buffer);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_json_size_matches_the_gateways_writer),
        cmocka_unit_test (test_member_sizes_add_up_to_the_writers),
        cmocka_unit_test (test_budget_stops_at_a_whole_item),
        cmocka_unit_test (test_string_size_counts_escapes),
        cmocka_unit_test (test_packed_size_is_the_objects_and_garbage_never_fits),
        cmocka_unit_test (test_retry_is_the_longer_of_the_stores_and_the_measure),
        cmocka_unit_test (test_object_is_answered_as_packed),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
