/*  =========================================================================
    test_br_admin - the broker's own answers to parleyctl: who is online
    (sorted, paged, bounded) and the peers that serve
    =========================================================================
*/

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <string.h>

#include "br_admin.h"

//  The answer unpacked: the array under key and more
typedef struct {
    msgpack_unpacked unpacked;
    const msgpack_object *items;
    bool more;
} answer_t;

static const msgpack_object *
s_field (const msgpack_object *map, const char *key)
{
    for (uint32_t index = 0; index < map->via.map.size; index++) {
        const msgpack_object *name = &map->via.map.ptr [index].key;
        if (name->via.str.size == strlen (key) && memcmp (name->via.str.ptr, key, strlen (key)) == 0)
            return &map->via.map.ptr [index].val;
    }
    return NULL;
}

static void
s_answer (zframe_t *frame, const char *key, answer_t *answer)
{
    msgpack_unpacked_init (&answer->unpacked);
    assert_int_equal (msgpack_unpack_next (&answer->unpacked, (const char *) zframe_data (frame),
                                           zframe_size (frame), NULL), MSGPACK_UNPACK_SUCCESS);
    answer->items = s_field (&answer->unpacked.data, key);
    assert_non_null (answer->items);
    assert_int_equal (answer->items->type, MSGPACK_OBJECT_ARRAY);
    answer->more = s_field (&answer->unpacked.data, "more")->via.boolean;
}

static void
s_assert_name (const msgpack_object *item, const char *name)
{
    const msgpack_object *value = s_field (item, "name");
    assert_non_null (value);
    assert_int_equal (value->via.str.size, strlen (name));
    assert_memory_equal (value->via.str.ptr, name, strlen (name));
}

//  A request body {after?, limit?}
static void
s_request (msgpack_sbuffer *buffer, const char *after, int64_t limit)
{
    msgpack_sbuffer_init (buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, (after ? 1 : 0) + (limit ? 1 : 0));
    if (after) {
        msgpack_pack_str_with_body (&packer, "after", 5);
        msgpack_pack_str_with_body (&packer, after, strlen (after));
    }
    if (limit) {
        msgpack_pack_str_with_body (&packer, "limit", 5);
        msgpack_pack_int64 (&packer, limit);
    }
}

static void
test_online_sorted_case_insensitively_and_paged (void **state)
{
    (void) state;
    br_admin_user_t users [] = { { "carol", 1 }, { "Bob", 3 }, { "alice", 2 }, { "dave", 1 } };
    const char *order [] = { "alice", "Bob", "carol", "dave" };
    const char *after = NULL;
    size_t seen = 0;
    for (int page = 0; page < 2; page++) {
        msgpack_sbuffer body;
        s_request (&body, after, 2);
        zframe_t *frame = NULL;
        char message [160];
        assert_int_equal (br_admin_online (users, 4, body.data, body.size, &frame, message,
                                           sizeof message), 0);
        answer_t answer;
        s_answer (frame, "users", &answer);
        assert_int_equal (answer.items->via.array.size, 2);
        for (uint32_t index = 0; index < 2; index++)
            s_assert_name (&answer.items->via.array.ptr [index], order [seen++]);
        assert_int_equal (answer.more, seen < 4);
        assert_int_equal (s_field (&answer.items->via.array.ptr [0], "sessions")->via.u64,
                          page == 0 ? 2 : 1);
        after = order [seen - 1];
        msgpack_unpacked_destroy (&answer.unpacked);
        zframe_destroy (&frame);
        msgpack_sbuffer_destroy (&body);
    }
}

static void
test_online_refuses_a_bad_limit_or_after (void **state)
{
    (void) state;
    br_admin_user_t users [] = { { "alice", 1 } };
    int64_t limits [] = { -1, BR_ADMIN_ONLINE_MAX + 1 };
    for (int index = 0; index < 2; index++) {
        msgpack_sbuffer body;
        s_request (&body, NULL, limits [index]);
        zframe_t *frame = NULL;
        char message [160] = "";
        assert_int_equal (br_admin_online (users, 1, body.data, body.size, &frame, message,
                                           sizeof message), -1);
        assert_null (frame);
        assert_non_null (strstr (message, "limit"));
        msgpack_sbuffer_destroy (&body);
    }
    static const uint8_t not_a_map [] = { 0x91, 0x01 };
    zframe_t *frame = NULL;
    char message [160] = "";
    assert_int_equal (br_admin_online (users, 1, not_a_map, sizeof not_a_map, &frame, message,
                                       sizeof message), -1);
    //  No body at all: the first page
    assert_int_equal (br_admin_online (users, 1, NULL, 0, &frame, message, sizeof message), 0);
    zframe_destroy (&frame);
}

static void
test_peers_sorted_by_kind_name_instance_with_routes (void **state)
{
    (void) state;
    char *rooms_routes [] = { "room.", "msg." };
    br_admin_peer_t peers [] = {
        { "plugin", "rooms", "rooms@b", rooms_routes, 2, 0 },
        { "gateway", "f00d", NULL, NULL, 0, 7 },
        { "plugin", "auth", "auth@a", NULL, 0, 0 },
        { "plugin", "rooms", "rooms@a", rooms_routes, 2, 0 },
    };
    zframe_t *frame = NULL;
    assert_int_equal (br_admin_peers (peers, 4, &frame), 0);
    answer_t answer;
    s_answer (frame, "peers", &answer);
    assert_int_equal (answer.items->via.array.size, 4);
    assert_false (answer.more);
    const char *names [] = { "f00d", "auth", "rooms", "rooms" };
    for (uint32_t index = 0; index < 4; index++)
        s_assert_name (&answer.items->via.array.ptr [index], names [index]);
    const msgpack_object *third = &answer.items->via.array.ptr [2];
    const msgpack_object *instance = s_field (third, "instance");
    assert_memory_equal (instance->via.str.ptr, "rooms@a", 7);
    assert_int_equal (s_field (third, "routes")->via.array.size, 2);
    assert_int_equal (s_field (&answer.items->via.array.ptr [0], "sessions")->via.u64, 7);
    msgpack_unpacked_destroy (&answer.unpacked);
    zframe_destroy (&frame);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_online_sorted_case_insensitively_and_paged),
        cmocka_unit_test (test_online_refuses_a_bad_limit_or_after),
        cmocka_unit_test (test_peers_sorted_by_kind_name_instance_with_routes),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
