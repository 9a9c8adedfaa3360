/*  test_change - a timeline's changes: what a request names, read and
    refused; the fields packed for store and client, measured as the JSON
    the gateway writes */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pl_body.h"
#include "pl_change.h"
#include "pl_pack.h"
#include "pl_reply.h"

//  Reads a change of kind from a map packed by fill; returns the intake's
//  code ("" when read)
static const char *
s_read (pl_change_t *change, pl_change_kind_t kind, void (*fill) (pl_pack_t *pack))
{
    static pl_lane_intake_t intake;
    memset (&intake, 0, sizeof intake);
    pl_pack_t pack;
    pl_pack_init (&pack);
    fill (&pack);
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    const msgpack_object *map = pl_body_unpack (&unpacked, pack.buffer.data, pack.buffer.size);
    assert_non_null (map);
    bool read = pl_change_read (change, kind, map, &intake);
    msgpack_unpacked_destroy (&unpacked);
    pl_pack_release (&pack);
    assert_true (read == (intake.code == NULL));
    return intake.code? intake.code: "";
}

static void s_empty (pl_pack_t *pack) { pl_pack_map (pack, 0); }
static void s_reply (pl_pack_t *pack) { pl_pack_map (pack, 1); pl_pack_kuint (pack, "reply_to", 7); }
static void s_reply_zero (pl_pack_t *pack) { pl_pack_map (pack, 1); pl_pack_kuint (pack, "reply_to", 0); }
static void s_seq_text (pl_pack_t *pack) { pl_pack_map (pack, 1); pl_pack_kstr (pack, "seq", "3"); }
static void s_react (pl_pack_t *pack)
{
    pl_pack_map (pack, 3);
    pl_pack_kuint (pack, "seq", 42);
    pl_pack_kstr (pack, "emoji", "\xf0\x9f\x91\x8d");
    pl_pack_kbool (pack, "on", false);
}
static void s_react_space (pl_pack_t *pack)
{
    pl_pack_map (pack, 2);
    pl_pack_kuint (pack, "seq", 42);
    pl_pack_kstr (pack, "emoji", "a b");
}
static void s_react_on (pl_pack_t *pack)
{
    pl_pack_map (pack, 3);
    pl_pack_kuint (pack, "seq", 42);
    pl_pack_kstr (pack, "emoji", "+1");
    pl_pack_kint (pack, "on", 1);
}

static void
test_a_request_names_its_change (void **state)
{
    (void) state;
    pl_change_t change;
    assert_string_equal (s_read (&change, PL_CHANGE_MESSAGE, s_empty), "");
    assert_int_equal (change.reply_to, 0);
    assert_int_equal (pl_change_fields (&change), 0);       //  a plain send adds nothing
    assert_string_equal (s_read (&change, PL_CHANGE_MESSAGE, s_reply), "");
    assert_int_equal (change.reply_to, 7);
    assert_string_equal (s_read (&change, PL_CHANGE_MESSAGE, s_reply_zero), "bad_request");
    assert_string_equal (s_read (&change, PL_CHANGE_EDIT, s_empty), "bad_request");
    assert_string_equal (s_read (&change, PL_CHANGE_DELETE, s_seq_text), "bad_request");
    assert_string_equal (s_read (&change, PL_CHANGE_REACTION, s_react), "");
    assert_int_equal (change.target, 42);
    assert_string_equal (change.emoji, "\xf0\x9f\x91\x8d");
    assert_false (change.on);
    assert_string_equal (s_read (&change, PL_CHANGE_REACTION, s_react_space), "bad_request");
    assert_string_equal (s_read (&change, PL_CHANGE_REACTION, s_react_on), "bad_request");
}

//  The JSON size of a map {"seq": 1} with count more fields packed by pack,
//  measured on the bytes, and as 9 ("{"seq":1}") plus what measure says
static void
s_assert_sized (uint32_t count, void (*pack_more) (msgpack_packer *, const void *),
                const void *what, size_t measured)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 1 + count);
    pl_pack_kuint (&pack, "seq", 1);
    pack_more (&pack.packer, what);
    assert_int_equal (pl_reply_json_size_packed (pack.buffer.data, pack.buffer.size),
                      strlen ("{\"seq\":1}") + measured);
    pl_pack_release (&pack);
}

static void
s_pack_change (msgpack_packer *packer, const void *change)
{
    pl_change_pack ((const pl_change_t *) change, packer);
}

static void
s_pack_state (msgpack_packer *packer, const void *entry)
{
    pl_change_pack_state ((const msgpack_object *) entry, packer);
}

static void
test_fields_are_measured_as_packed (void **state)
{
    (void) state;
    pl_change_t change = { .kind = PL_CHANGE_REACTION, .target = 1234, .on = true };
    strcpy (change.emoji, "\"\xf0\x9f\x91\x8d\"");
    s_assert_sized (pl_change_fields (&change), s_pack_change, &change,
                    pl_change_json_size (&change));
    change = (pl_change_t) { .kind = PL_CHANGE_MESSAGE, .reply_to = 99 };
    s_assert_sized (pl_change_fields (&change), s_pack_change, &change,
                    pl_change_json_size (&change));
    //  A message as the store has it now
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 4);
    pl_pack_kuint (&pack, "seq", 5);
    pl_pack_kint (&pack, "edited", 1764900000123);
    pl_pack_kbool (&pack, "deleted", true);
    pl_pack_str (&pack, "reactions");
    msgpack_pack_array (&pack.packer, 1);
    pl_pack_map (&pack, 3);
    pl_pack_kstr (&pack, "emoji", "+1");
    pl_pack_kuint (&pack, "count", 21);
    pl_pack_str (&pack, "users");
    msgpack_pack_array (&pack.packer, 1);
    pl_pack_str (&pack, "bob");
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    const msgpack_object *entry = pl_body_unpack (&unpacked, pack.buffer.data, pack.buffer.size);
    assert_int_equal (pl_change_state_fields (entry), 3);
    s_assert_sized (3, s_pack_state, entry, pl_change_state_json_size (entry));
    change = (pl_change_t) { .kind = PL_CHANGE_MESSAGE };
    assert_true (pl_change_from_entry (&change, entry));    //  no kind: a message
    msgpack_unpacked_destroy (&unpacked);
    pl_pack_release (&pack);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_a_request_names_its_change),
        cmocka_unit_test (test_fields_are_measured_as_packed),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
