/*  =========================================================================
    test_st_list - a list stops at its limit and at its bytes, whole items
    =========================================================================
*/

#include "st_list.h"
#include "st_request.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

//  Unpacks the answer map of a list {key: [..], more}
static void
s_unpack (st_list_t *list, msgpack_unpacked *answer)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 1);
    st_list_finish (list, &packer, "items");
    msgpack_unpacked_init (answer);
    size_t offset = 0;
    assert_int_equal (msgpack_unpack_next (answer, buffer.data, buffer.size, &offset),
                      MSGPACK_UNPACK_SUCCESS);
    msgpack_sbuffer_destroy (&buffer);
}

static void
test_limit_says_more (void **state)
{
    st_list_t *list = st_list_new (3, false);
    assert_non_null (list);
    uint64_t pushed = 0;
    for (uint64_t row = 1; row <= 4; row++) {
        msgpack_pack_uint64 (st_list_packer (list), row);
        if (!st_list_push (list))
            break;
        pushed++;
    }
    assert_int_equal (pushed, 3);
    assert_true (st_list_more (list));
    msgpack_unpacked answer;
    s_unpack (list, &answer);
    const msgpack_object *items = &answer.data.via.map.ptr [0].val;
    assert_int_equal (items->via.array.size, 3);
    assert_int_equal (items->via.array.ptr [2].via.u64, 3);
    msgpack_unpacked_destroy (&answer);
    st_list_destroy (&list);
    assert_null (list);
}

static void
test_short_list_no_more (void **state)
{
    st_list_t *list = st_list_new (3, false);
    msgpack_pack_uint64 (st_list_packer (list), 1);
    assert_true (st_list_push (list));
    assert_false (st_list_more (list));
    assert_int_equal (st_list_count (list), 1);
    st_list_destroy (&list);
}

static void
test_reversed_writes_oldest_first (void **state)
{
    st_list_t *list = st_list_new (10, true);
    for (uint64_t row = 5; row >= 1; row--) {
        msgpack_pack_uint64 (st_list_packer (list), row);
        assert_true (st_list_push (list));
    }
    msgpack_unpacked answer;
    s_unpack (list, &answer);
    const msgpack_object *items = &answer.data.via.map.ptr [0].val;
    assert_int_equal (items->via.array.size, 5);
    for (uint32_t index = 0; index < 5; index++)
        assert_int_equal (items->via.array.ptr [index].via.u64, index + 1);
    msgpack_unpacked_destroy (&answer);
    st_list_destroy (&list);
}

//  Items of 100 KiB: the eleventh would pass the budget and is dropped whole
static void
test_budget_stops_at_whole_item (void **state)
{
    st_list_t *list = st_list_new (UINT32_MAX, false);
    char *text = (char *) calloc (1, 100 * 1024);
    assert_non_null (text);
    memset (text, 'x', 100 * 1024 - 1);
    uint32_t taken = 0;
    while (taken < 100) {
        msgpack_pack_str_with_body (st_list_packer (list), text, strlen (text));
        if (!st_list_push (list))
            break;
        taken++;
    }
    assert_int_equal (taken, ST_LIST_BUDGET / (100 * 1024 + 3));
    assert_true (st_list_more (list));
    msgpack_unpacked answer;
    s_unpack (list, &answer);
    assert_int_equal (answer.data.via.map.ptr [0].val.via.array.size, taken);
    msgpack_unpacked_destroy (&answer);
    free (text);
    st_list_destroy (&list);
}

//  One item larger than the budget is taken all the same: an answer holds
//  at least one (a history page of one long entry)
static void
test_first_item_always_taken (void **state)
{
    st_list_t *list = st_list_new (10, true);
    size_t size = ST_LIST_BUDGET + 10;
    char *text = (char *) calloc (1, size);
    assert_non_null (text);
    msgpack_pack_str_with_body (st_list_packer (list), text, size);
    assert_true (st_list_push (list));
    msgpack_pack_str_with_body (st_list_packer (list), "x", 1);
    assert_false (st_list_push (list));
    assert_int_equal (st_list_count (list), 1);
    assert_true (st_list_more (list));
    free (text);
    st_list_destroy (&list);
}

static void
test_answer_has_more (void **state)
{
    st_request_t *request = st_request_new (ST_INFO, "\x80", 1, NULL);
    st_list_t *list = st_list_new (1, false);
    msgpack_pack_uint64 (st_list_packer (list), 7);
    st_list_push (list);
    st_list_set_more (list);
    st_list_answer (list, request, "rows");
    size_t size;
    const char *result = st_request_result (request, &size);
    msgpack_unpacked answer;
    msgpack_unpacked_init (&answer);
    size_t offset = 0;
    assert_int_equal (msgpack_unpack_next (&answer, result, size, &offset),
                      MSGPACK_UNPACK_SUCCESS);
    assert_int_equal (answer.data.via.map.size, 2);
    assert_true (answer.data.via.map.ptr [1].val.via.boolean);
    msgpack_unpacked_destroy (&answer);
    st_list_destroy (&list);
    st_request_destroy (&request);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_limit_says_more),
        cmocka_unit_test (test_short_list_no_more),
        cmocka_unit_test (test_reversed_writes_oldest_first),
        cmocka_unit_test (test_budget_stops_at_whole_item),
        cmocka_unit_test (test_first_item_always_taken),
        cmocka_unit_test (test_answer_has_more)
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
