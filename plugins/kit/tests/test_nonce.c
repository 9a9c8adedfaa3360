/*  test_nonce - the lane's map of recent nonces, and the nonce's rules */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pl_limits.h"
#include "pl_nonce.h"

static void
test_a_nonce_put_is_found_with_its_seq_and_ts (void **state)
{
    pl_nonce_t *nonces = pl_nonce_new (8);
    assert_non_null (nonces);
    uint64_t seq = 0;
    int64_t ts = 0;
    assert_false (pl_nonce_get (nonces, "alice", "n-1", &seq, &ts));
    assert_int_equal (pl_nonce_put (nonces, "alice", "n-1", 42, 1700), 0);
    assert_true (pl_nonce_get (nonces, "alice", "n-1", &seq, &ts));
    assert_int_equal (seq, 42);
    assert_int_equal (ts, 1700);
    assert_int_equal (pl_nonce_size (nonces), 1);
    pl_nonce_destroy (&nonces);
    assert_null (nonces);
}

static void
test_senders_compare_without_case_and_nonces_with_it (void **state)
{
    pl_nonce_t *nonces = pl_nonce_new (8);
    pl_nonce_put (nonces, "Alice", "abc", 1, 10);
    uint64_t seq;
    int64_t ts;
    assert_true (pl_nonce_get (nonces, "ALICE", "abc", &seq, &ts));
    //  A nonce is the client's own string: case matters
    assert_false (pl_nonce_get (nonces, "alice", "ABC", &seq, &ts));
    //  Another sender's same nonce is another message
    assert_false (pl_nonce_get (nonces, "bob", "abc", &seq, &ts));
    //  "a b" + "c" must not be "a" + "b c": names hold no space, nonces neither
    pl_nonce_put (nonces, "al", "x", 2, 20);
    assert_false (pl_nonce_get (nonces, "a", "lx", &seq, &ts));
    pl_nonce_destroy (&nonces);
}

static void
test_a_full_map_forgets_its_oldest_first (void **state)
{
    pl_nonce_t *nonces = pl_nonce_new (3);
    char nonce [16];
    for (int index = 1; index <= 10; index++) {
        snprintf (nonce, sizeof nonce, "n%d", index);
        assert_int_equal (pl_nonce_put (nonces, "u", nonce, (uint64_t) index, index), 0);
        assert_true (pl_nonce_size (nonces) <= 3);
    }
    uint64_t seq;
    int64_t ts;
    //  Only the newest three remain, each with its own seq
    for (int index = 1; index <= 10; index++) {
        snprintf (nonce, sizeof nonce, "n%d", index);
        bool found = pl_nonce_get (nonces, "u", nonce, &seq, &ts);
        assert_int_equal (found, index > 7);
        if (found)
            assert_int_equal (seq, (uint64_t) index);
    }
    pl_nonce_destroy (&nonces);
}

static void
test_many_nonces_in_a_big_map_are_all_found (void **state)
{
    pl_nonce_t *nonces = pl_nonce_new (PL_NONCE_CACHE_DEFAULT);
    char nonce [32];
    for (int index = 0; index < 5000; index++) {
        snprintf (nonce, sizeof nonce, "k-%d", index);
        pl_nonce_put (nonces, index % 2? "odd": "even", nonce, (uint64_t) index + 1, index);
    }
    assert_int_equal (pl_nonce_size (nonces), PL_NONCE_CACHE_DEFAULT);
    uint64_t seq;
    int64_t ts;
    for (int index = 5000 - PL_NONCE_CACHE_DEFAULT; index < 5000; index++) {
        snprintf (nonce, sizeof nonce, "k-%d", index);
        assert_true (pl_nonce_get (nonces, index % 2? "odd": "even", nonce, &seq, &ts));
        assert_int_equal (seq, (uint64_t) index + 1);
    }
    snprintf (nonce, sizeof nonce, "k-%d", 5000 - PL_NONCE_CACHE_DEFAULT - 1);
    assert_false (pl_nonce_get (nonces, "odd", nonce, &seq, &ts));
    pl_nonce_destroy (&nonces);
}

static void
test_a_put_again_updates_and_purge_forgets_all (void **state)
{
    pl_nonce_t *nonces = pl_nonce_new (4);
    pl_nonce_put (nonces, "u", "a", 1, 1);
    pl_nonce_put (nonces, "u", "a", 7, 70);
    assert_int_equal (pl_nonce_size (nonces), 1);
    uint64_t seq;
    int64_t ts;
    assert_true (pl_nonce_get (nonces, "u", "a", &seq, &ts));
    assert_int_equal (seq, 7);
    pl_nonce_purge (nonces);
    assert_int_equal (pl_nonce_size (nonces), 0);
    assert_false (pl_nonce_get (nonces, "u", "a", &seq, &ts));
    pl_nonce_put (nonces, "u", "b", 8, 80);
    assert_true (pl_nonce_get (nonces, "u", "b", &seq, &ts));
    pl_nonce_destroy (&nonces);
}

static void
test_a_map_of_nothing_keeps_nothing (void **state)
{
    pl_nonce_t *nonces = pl_nonce_new (0);
    assert_int_equal (pl_nonce_put (nonces, "u", "a", 1, 1), 0);
    uint64_t seq;
    int64_t ts;
    assert_false (pl_nonce_get (nonces, "u", "a", &seq, &ts));
    pl_nonce_destroy (&nonces);
}

static void
test_the_longest_names_are_remembered_and_longer_ones_missed (void **state)
{
    pl_nonce_t *nonces = pl_nonce_new (4);
    char user [PL_USERNAME_MAX + 2];
    char nonce [PL_NONCE_MAX + 1];
    memset (user, 'u', PL_USERNAME_MAX);
    user [PL_USERNAME_MAX] = 0;
    memset (nonce, 'n', PL_NONCE_MAX);
    nonce [PL_NONCE_MAX] = 0;
    uint64_t seq = 0;
    int64_t ts = 0;
    assert_int_equal (pl_nonce_put (nonces, user, nonce, 5, 50), 0);
    assert_true (pl_nonce_get (nonces, user, nonce, &seq, &ts));
    assert_int_equal (seq, 5);
    //  One character more than any valid user's: the map does not know it,
    //  and says so rather than failing (the store is the truth)
    user [PL_USERNAME_MAX] = 'u';
    user [PL_USERNAME_MAX + 1] = 0;
    assert_int_equal (pl_nonce_put (nonces, user, nonce, 6, 60), 0);
    assert_false (pl_nonce_get (nonces, user, nonce, &seq, &ts));
    assert_int_equal (pl_nonce_size (nonces), 1);
    pl_nonce_destroy (&nonces);
}

static void
test_the_protocols_nonces_are_valid_and_no_others (void **state)
{
    char longest [PL_NONCE_MAX + 2];
    memset (longest, 'a', PL_NONCE_MAX);
    longest [PL_NONCE_MAX] = 0;
    assert_true (pl_nonce_valid ("a"));
    assert_true (pl_nonce_valid ("0b3c-_Z9"));
    assert_true (pl_nonce_valid ("6f1c3a4e-8a0b-4c43-9d5e-2b1f0e7c9a11"));
    assert_true (pl_nonce_valid (longest));
    longest [PL_NONCE_MAX] = 'a';
    longest [PL_NONCE_MAX + 1] = 0;
    assert_false (pl_nonce_valid (longest));
    assert_false (pl_nonce_valid (""));
    assert_false (pl_nonce_valid ("a b"));
    assert_false (pl_nonce_valid ("a.b"));
    assert_false (pl_nonce_valid ("caf\xc3\xa9"));
}

//  A map {"nonce": value} or {} packed and unpacked
static void
s_read (const char *value, bool as_int, int expected, const char *read)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, value || as_int? 1: 0);
    if (value || as_int) {
        msgpack_pack_str_with_body (&packer, "nonce", 5);
        if (as_int)
            msgpack_pack_int (&packer, 7);
        else
            msgpack_pack_str_with_body (&packer, value, strlen (value));
    }
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    size_t offset = 0;
    assert_int_equal (msgpack_unpack_next (&unpacked, buffer.data, buffer.size, &offset),
                      MSGPACK_UNPACK_SUCCESS);
    char *nonce = (char *) "untouched";
    assert_int_equal (pl_nonce_read (&unpacked.data, &nonce), expected);
    if (read)
        assert_string_equal (nonce, read);
    else
        assert_null (nonce);
    free (nonce);
    msgpack_unpacked_destroy (&unpacked);
    msgpack_sbuffer_destroy (&buffer);
}

static void
test_a_requests_nonce_is_read_or_refused (void **state)
{
    s_read (NULL, false, 0, NULL);
    s_read ("n-1", false, 1, "n-1");
    s_read ("", false, -1, NULL);
    s_read ("no spaces", false, -1, NULL);
    s_read (NULL, true, -1, NULL);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_a_nonce_put_is_found_with_its_seq_and_ts),
        cmocka_unit_test (test_senders_compare_without_case_and_nonces_with_it),
        cmocka_unit_test (test_a_full_map_forgets_its_oldest_first),
        cmocka_unit_test (test_many_nonces_in_a_big_map_are_all_found),
        cmocka_unit_test (test_a_put_again_updates_and_purge_forgets_all),
        cmocka_unit_test (test_a_map_of_nothing_keeps_nothing),
        cmocka_unit_test (test_the_longest_names_are_remembered_and_longer_ones_missed),
        cmocka_unit_test (test_the_protocols_nonces_are_valid_and_no_others),
        cmocka_unit_test (test_a_requests_nonce_is_read_or_refused),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
