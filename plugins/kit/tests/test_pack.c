/*  test_pack - bodies built with pl_pack read back with pl_body */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pl_body.h"
#include "pl_hash.h"
#include "pl_pack.h"

static void
test_a_packed_body_reads_back_field_by_field (void **state)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 7);
    pl_pack_kstr (&pack, "user", "alice");
    pl_pack_kstr (&pack, "after", NULL);
    pl_pack_kint (&pack, "at", -5);
    pl_pack_kuint (&pack, "keep", 100);
    pl_pack_kbool (&pack, "private", true);
    pl_pack_ktime (&pack, "ts", 1764298751123LL);
    pl_body_pack_str (&pack.packer, "raw");
    pl_pack_strn (&pack, "a\0b", 3);

    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    const msgpack_object *map = pl_body_unpack (&unpacked, pack.buffer.data, pack.buffer.size);
    assert_non_null (map);
    const char *text;
    size_t size;
    assert_int_equal (pl_body_strn (map, "user", &text, &size), 1);
    assert_int_equal (size, 5);
    assert_memory_equal (text, "alice", 5);
    assert_int_equal (pl_body_strn (map, "after", &text, &size), 0);     //  nil
    assert_int_equal (pl_body_strn (map, "absent", &text, &size), 0);
    assert_int_equal (pl_body_strn (map, "at", &text, &size), -1);
    assert_int_equal (pl_body_strn (map, "raw", &text, &size), 1);
    assert_int_equal (size, 3);
    int64_t number = 0;
    assert_int_equal (pl_body_int64 (map, "at", &number), 1);
    assert_int_equal (number, -5);
    assert_int_equal (pl_body_int64 (map, "keep", &number), 1);
    assert_int_equal (number, 100);
    assert_int_equal (pl_body_int64 (map, "user", &number), -1);
    assert_int_equal (pl_body_int64 (map, "absent", &number), 0);
    assert_true (pl_body_bool (map, "private"));
    char ts [40];
    pl_body_copy (map, "ts", ts, sizeof ts);
    assert_string_equal (ts, "2025-11-28T02:59:11.123Z");
    msgpack_unpacked_destroy (&unpacked);

    //  Cleared, the pack builds the next body from nothing
    pl_pack_clear (&pack);
    assert_int_equal (pack.buffer.size, 0);
    pl_pack_release (&pack);
}

//  pl_pack_start: a fresh body whose map starts with its key
static void
test_a_started_body_reads_back_its_first_field (void **state)
{
    pl_pack_t pack;
    pl_pack_start (&pack, 2, "room", "lobby");
    pl_pack_kint (&pack, "limit", 5);
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    const msgpack_object *map = pl_body_unpack (&unpacked, pack.buffer.data, pack.buffer.size);
    assert_non_null (map);
    assert_int_equal (map->via.map.size, 2);
    const char *text;
    size_t size;
    assert_int_equal (pl_body_strn (map, "room", &text, &size), 1);
    assert_int_equal (size, 5);
    assert_memory_equal (text, "lobby", 5);
    msgpack_unpacked_destroy (&unpacked);
    pl_pack_release (&pack);
}

static void
test_an_integer_past_int64_is_refused (void **state)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 1);
    pl_pack_kuint (&pack, "big", UINT64_MAX);
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    const msgpack_object *map = pl_body_unpack (&unpacked, pack.buffer.data, pack.buffer.size);
    int64_t number = 7;
    assert_int_equal (pl_body_int64 (map, "big", &number), -1);
    assert_int_equal (number, 7);
    msgpack_unpacked_destroy (&unpacked);
    pl_pack_release (&pack);
}

static void
test_only_a_map_unpacks_as_a_body (void **state)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    const uint8_t array [] = { 0x91, 0x01 };
    assert_null (pl_body_unpack (&unpacked, array, sizeof array));
    const uint8_t cut [] = { 0x81, 0xa1 };          //  a map cut short
    assert_null (pl_body_unpack (&unpacked, cut, sizeof cut));
    assert_null (pl_body_unpack (&unpacked, NULL, 0));
    const uint8_t empty [] = { 0x80 };
    assert_non_null (pl_body_unpack (&unpacked, empty, sizeof empty));
    msgpack_unpacked_destroy (&unpacked);
}

//  A body whose objects pass the zone's first chunk (PL_BODY_ZONE_CHUNK)
//  unpacks whole; and bytes after the map are left, as before
static void
test_a_large_body_unpacks_whole_and_trailing_bytes_are_left (void **state)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 300);
    char key [16];
    for (int index = 0; index < 300; index++) {
        snprintf (key, sizeof key, "k%d", index);
        pl_pack_kuint (&pack, key, (uint64_t) index * 3);
    }
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    const msgpack_object *map = pl_body_unpack (&unpacked, pack.buffer.data, pack.buffer.size);
    assert_non_null (map);
    assert_int_equal (map->via.map.size, 300);
    int64_t number = 0;
    assert_int_equal (pl_body_int64 (map, "k299", &number), 1);
    assert_int_equal (number, 897);
    //  The same map again into the same unpacked, with a byte after it
    msgpack_sbuffer_write (&pack.buffer, "\xc0", 1);
    map = pl_body_unpack (&unpacked, pack.buffer.data, pack.buffer.size);
    assert_non_null (map);
    assert_int_equal (pl_body_int64 (map, "k0", &number), 1);
    assert_int_equal (number, 0);
    msgpack_unpacked_destroy (&unpacked);
    pl_pack_release (&pack);
}

//  What the test host's deliver_users was given
static struct {
    int calls;
    size_t count;
    char user [16];
    char type [16];
} s_delivered;

static int
s_deliver_users (parley_ctx_t *ctx, const char *const *users, size_t count,
                 const void *body, size_t size)
{
    s_delivered.calls++;
    s_delivered.count = count;
    snprintf (s_delivered.user, sizeof s_delivered.user, "%s", users [0]);
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    const msgpack_object *map = pl_body_unpack (&unpacked, body, size);
    if (map)
        pl_body_copy (map, "type", s_delivered.type, sizeof s_delivered.type);
    msgpack_unpacked_destroy (&unpacked);
    return 0;
}

//  pl_pack_deliver_user: the packed event, once, to the one user; a host
//  without deliver_users gets nothing and the caller hears -1
static void
test_an_event_goes_to_one_user (void **state)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 3);
    pl_pack_kstr (&pack, "type", "read");
    pl_pack_kstr (&pack, "room", "lobby");
    pl_pack_kuint (&pack, "seq", 4);
    parley_host_t host = { .deliver_users = s_deliver_users };
    memset (&s_delivered, 0, sizeof s_delivered);
    assert_int_equal (pl_pack_deliver_user (&pack, &host, NULL, "alice"), 0);
    assert_int_equal (s_delivered.calls, 1);
    assert_int_equal (s_delivered.count, 1);
    assert_string_equal (s_delivered.user, "alice");
    assert_string_equal (s_delivered.type, "read");
    //  The pack is still the caller's, whole
    assert_non_null (pack.buffer.data);

    parley_host_t bare = { .deliver_users = NULL };
    assert_int_equal (pl_pack_deliver_user (&pack, &bare, NULL, "alice"), -1);
    assert_int_equal (s_delivered.calls, 1);
    pl_pack_release (&pack);
}

static void
test_u64_keys_hash_apart_and_compare_in_order (void **state)
{
    uint64_t one = 1, two = 2, also_one = 1;
    assert_int_not_equal (pl_hash_u64 (&one), pl_hash_u64 (&two));
    assert_int_equal (pl_hash_u64 (&one), pl_hash_u64 (&also_one));
    assert_int_equal (pl_hash_u64_compare (&one, &two), -1);
    assert_int_equal (pl_hash_u64_compare (&two, &one), 1);
    assert_int_equal (pl_hash_u64_compare (&one, &also_one), 0);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_a_packed_body_reads_back_field_by_field),
        cmocka_unit_test (test_a_started_body_reads_back_its_first_field),
        cmocka_unit_test (test_an_integer_past_int64_is_refused),
        cmocka_unit_test (test_only_a_map_unpacks_as_a_body),
        cmocka_unit_test (test_a_large_body_unpacks_whole_and_trailing_bytes_are_left),
        cmocka_unit_test (test_an_event_goes_to_one_user),
        cmocka_unit_test (test_u64_keys_hash_apart_and_compare_in_order),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
