/*  test_brokers - the broker endpoints a peer knows, and moving between them */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include "pl_brokers.h"

//  The sentence pl_brokers_new refuses list with ("" when it takes it)
static char *
s_refusal (const char *list)
{
    char error [256] = "";
    pl_brokers_t *brokers = pl_brokers_new (list, error, sizeof error);
    if (brokers)
        assert_string_equal (error, "");
    pl_brokers_destroy (&brokers);
    return strdup (error);
}

static void
test_lists_are_checked (void **state)
{
    const char *refused [][2] = {
        { "", "empty item" },
        { "tcp://a:1,", "empty item" },
        { ",tcp://a:1", "empty item" },
        { "tcp://a:1,,tcp://b:1", "empty item" },
        { "localhost:7700", "is not a broker endpoint" },
        { "tcp://a:1,ipc:///run/b", "either all are tcp:// or none" },
        { "ipc:///run/a,tcp://b:1", "either all are tcp:// or none" },
        { "ipc://1,ipc://2,ipc://3,ipc://4,ipc://5,ipc://6,ipc://7,ipc://8,ipc://9",
          "more than 8" },
    };
    for (size_t index = 0; index < sizeof refused / sizeof refused [0]; index++) {
        char *error = s_refusal (refused [index][0]);
        assert_non_null (strstr (error, refused [index][1]));
        free (error);
    }
    char *error = s_refusal ("ipc:///run/a,inproc://b");
    assert_string_equal (error, "");
    free (error);
    assert_null (pl_brokers_new (NULL, (char [64]) { 0 }, 64));
}

static void
test_move_goes_round_the_list (void **state)
{
    char error [256];
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    pl_brokers_t *one = pl_brokers_new ("tcp://127.0.0.1:9", error, sizeof error);
    assert_non_null (one);
    assert_int_equal (pl_brokers_size (one), 1);
    assert_int_equal (pl_brokers_connect (one, dealer), 0);
    //  One broker: nothing to move to; ZeroMQ reconnects to it
    assert_int_equal (pl_brokers_move (one, dealer), 0);
    assert_string_equal (pl_brokers_current (one), "tcp://127.0.0.1:9");
    pl_brokers_destroy (&one);
    assert_null (one);
    zsock_destroy (&dealer);

    dealer = zsock_new (ZMQ_DEALER);
    pl_brokers_t *pair = pl_brokers_new ("tcp://127.0.0.1:9,tcp://127.0.0.1:10", error,
                                         sizeof error);
    assert_int_equal (pl_brokers_size (pair), 2);
    assert_int_equal (pl_brokers_connect (pair, dealer), 0);
    assert_int_equal (pl_brokers_move (pair, dealer), 1);
    assert_string_equal (pl_brokers_current (pair), "tcp://127.0.0.1:10");
    assert_int_equal (pl_brokers_move (pair, dealer), 1);
    assert_string_equal (pl_brokers_current (pair), "tcp://127.0.0.1:9");
    pl_brokers_destroy (&pair);
    zsock_destroy (&dealer);
}

//  A peer on one broker of two hears the other once it moves there
static void
test_move_reaches_the_other_broker (void **state)
{
    char error [256];
    zsock_t *first = zsock_new_router ("tcp://127.0.0.1:*");
    zsock_t *second = zsock_new_router ("tcp://127.0.0.1:*");
    char *endpoints [2] = { zsock_last_endpoint (first), zsock_last_endpoint (second) };
    char *list = pl_brokers_join ((const char **) endpoints, 2);
    pl_brokers_t *pair = pl_brokers_new (list, error, sizeof error);
    assert_non_null (pair);
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    assert_int_equal (pl_brokers_connect (pair, dealer), 0);
    assert_int_equal (pl_brokers_move (pair, dealer), 1);
    zstr_send (dealer, "hello");
    zsock_set_rcvtimeo (second, 5000);
    zmsg_t *message = zmsg_recv (second);
    assert_non_null (message);
    zmsg_destroy (&message);
    assert_false (zsock_events (first) & ZMQ_POLLIN);
    pl_brokers_destroy (&pair);
    zsock_destroy (&dealer);
    zsock_destroy (&first);
    zsock_destroy (&second);
    free (list);
    zstr_free (&endpoints [0]);
    zstr_free (&endpoints [1]);
}

static void
test_join (void **state)
{
    const char *lists [] = { "tcp://a:1", "tcp://b:1,tcp://c:1" };
    char *joined = pl_brokers_join (lists, 2);
    assert_string_equal (joined, "tcp://a:1,tcp://b:1,tcp://c:1");
    free (joined);
    assert_null (pl_brokers_join (lists, 0));
}

int
main (void)
{
    zsys_init ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_lists_are_checked),
        cmocka_unit_test (test_move_goes_round_the_list),
        cmocka_unit_test (test_move_reaches_the_other_broker),
        cmocka_unit_test (test_join),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
