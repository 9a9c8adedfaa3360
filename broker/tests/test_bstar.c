/*  =========================================================================
    test_bstar - the standby pair's state machine (Binary Star)

    The machine is driven with the time given by the test (no sockets), then
    two machines talk over real tcp sockets as two brokers would.
    =========================================================================
*/

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "br_bstar.h"

#define HB      1000                                    //  ms
#define EXPIRY  (BR_BSTAR_PEER_LIVENESS * HB)           //  a silent peer is gone after

static br_bstar_t *
s_machine (bool primary, int64_t now)
{
    br_bstar_config_t config = { .primary = primary, .heartbeat_ms = HB };
    br_bstar_t *bstar = br_bstar_new (&config, now);
    assert_non_null (bstar);
    assert_null (br_bstar_socket (bstar));
    return bstar;
}

//  Both start: the primary serves, the backup waits
static void
test_start_primary_active_backup_passive (void **state)
{
    br_bstar_t *primary = s_machine (true, 0);
    br_bstar_t *backup = s_machine (false, 0);
    assert_int_equal (br_bstar_state (primary), BR_BSTAR_PRIMARY);
    assert_int_equal (br_bstar_state (backup), BR_BSTAR_BACKUP);
    //  The backup hears the primary first: it waits for it to be active
    assert_int_equal (br_bstar_peer_said (backup, BR_BSTAR_PRIMARY, 10), BR_BSTAR_STAYED);
    assert_int_equal (br_bstar_state (backup), BR_BSTAR_BACKUP);
    assert_int_equal (br_bstar_peer_said (primary, BR_BSTAR_BACKUP, 20), BR_BSTAR_WENT_ACTIVE);
    assert_true (br_bstar_active (primary));
    assert_int_equal (br_bstar_peer_said (backup, BR_BSTAR_ACTIVE, 30), BR_BSTAR_STAYED);
    assert_int_equal (br_bstar_state (backup), BR_BSTAR_PASSIVE);
    //  The active one takes every hello; the passive none while its peer talks
    assert_true (br_bstar_admit (primary, 40));
    assert_false (br_bstar_admit (backup, 40));
    br_bstar_destroy (&primary);
    br_bstar_destroy (&backup);
    assert_null (backup);
}

//  A passive becomes active only when its peer is silent AND a peer says hello
static void
test_failover_needs_silence_and_a_hello (void **state)
{
    br_bstar_t *backup = s_machine (false, 0);
    br_bstar_peer_said (backup, BR_BSTAR_ACTIVE, 100);
    assert_int_equal (br_bstar_state (backup), BR_BSTAR_PASSIVE);
    //  The primary still talks: a hello is ignored
    br_bstar_peer_said (backup, BR_BSTAR_ACTIVE, 1100);
    assert_false (br_bstar_admit (backup, 1100 + EXPIRY - 1));
    //  The primary is silent, but no peer came: still passive (a broken
    //  link between the brokers alone makes no second active)
    br_bstar_tick (backup, 1100 + 10 * EXPIRY);
    assert_int_equal (br_bstar_state (backup), BR_BSTAR_PASSIVE);
    //  A peer that lost the primary too says hello: failover
    assert_true (br_bstar_admit (backup, 1100 + 10 * EXPIRY));
    assert_true (br_bstar_active (backup));
    br_bstar_destroy (&backup);
}

//  The old active restarts while the other serves: it comes back passive,
//  and refuses peers until it knows (it has not heard anyone yet)
static void
test_restarted_broker_comes_back_passive (void **state)
{
    br_bstar_t *primary = s_machine (true, 50000);
    assert_false (br_bstar_admit (primary, 50000 + EXPIRY - 1));
    assert_int_equal (br_bstar_state (primary), BR_BSTAR_PRIMARY);
    assert_int_equal (br_bstar_peer_said (primary, BR_BSTAR_ACTIVE, 50500), BR_BSTAR_STAYED);
    assert_int_equal (br_bstar_state (primary), BR_BSTAR_PASSIVE);
    assert_false (br_bstar_admit (primary, 51000));
    //  Then the backup dies: the primary takes over at the first hello
    assert_true (br_bstar_admit (primary, 50500 + EXPIRY));
    assert_true (br_bstar_active (primary));
    //  The backup restarts: the primary stays active, the backup goes passive
    br_bstar_t *backup = s_machine (false, 60000);
    assert_int_equal (br_bstar_peer_said (primary, BR_BSTAR_BACKUP, 60010), BR_BSTAR_STAYED);
    assert_true (br_bstar_active (primary));
    br_bstar_peer_said (backup, BR_BSTAR_ACTIVE, 60020);
    assert_int_equal (br_bstar_state (backup), BR_BSTAR_PASSIVE);
    br_bstar_destroy (&primary);
    br_bstar_destroy (&backup);
}

//  A broker alone (its peer never started) serves after the wait
static void
test_broker_alone_serves_after_the_wait (void **state)
{
    br_bstar_t *backup = s_machine (false, 0);
    assert_false (br_bstar_admit (backup, EXPIRY - 1));
    assert_true (br_bstar_admit (backup, EXPIRY));
    assert_int_equal (br_bstar_state (backup), BR_BSTAR_ACTIVE);
    br_bstar_destroy (&backup);
}

//  A passive whose peer restarts (says PRIMARY or BACKUP again) takes over
static void
test_passive_takes_over_from_a_restarting_peer (void **state)
{
    br_bstar_t *backup = s_machine (false, 0);
    br_bstar_peer_said (backup, BR_BSTAR_ACTIVE, 10);
    assert_int_equal (br_bstar_peer_said (backup, BR_BSTAR_PRIMARY, 20), BR_BSTAR_WENT_ACTIVE);
    br_bstar_t *primary = s_machine (true, 0);
    br_bstar_peer_said (primary, BR_BSTAR_ACTIVE, 10);
    assert_int_equal (br_bstar_state (primary), BR_BSTAR_PASSIVE);
    assert_int_equal (br_bstar_peer_said (primary, BR_BSTAR_BACKUP, 20), BR_BSTAR_WENT_ACTIVE);
    br_bstar_destroy (&backup);
    br_bstar_destroy (&primary);
}

//  Two actives (a split healed): the backup yields, the primary stays.
//  Two passives: the primary serves.
static void
test_two_actives_and_two_passives (void **state)
{
    br_bstar_t *primary = s_machine (true, 0);
    br_bstar_t *backup = s_machine (false, 0);
    assert_true (br_bstar_admit (primary, EXPIRY));
    assert_true (br_bstar_admit (backup, EXPIRY));
    assert_int_equal (br_bstar_peer_said (primary, BR_BSTAR_ACTIVE, EXPIRY + 1), BR_BSTAR_STAYED);
    assert_true (br_bstar_active (primary));
    assert_int_equal (br_bstar_peer_said (backup, BR_BSTAR_ACTIVE, EXPIRY + 1),
                      BR_BSTAR_WENT_PASSIVE);
    assert_int_equal (br_bstar_state (backup), BR_BSTAR_PASSIVE);
    br_bstar_destroy (&primary);

    primary = s_machine (true, 0);
    br_bstar_peer_said (primary, BR_BSTAR_ACTIVE, 10);
    assert_int_equal (br_bstar_state (primary), BR_BSTAR_PASSIVE);
    assert_int_equal (br_bstar_peer_said (backup, BR_BSTAR_PASSIVE, 20), BR_BSTAR_STAYED);
    assert_int_equal (br_bstar_peer_said (primary, BR_BSTAR_PASSIVE, 20), BR_BSTAR_WENT_ACTIVE);
    br_bstar_destroy (&primary);
    br_bstar_destroy (&backup);
}

//  A state that is none of the four changes nothing, not even the peer's
//  liveness
static void
test_unknown_state_is_ignored (void **state)
{
    br_bstar_t *backup = s_machine (false, 0);
    br_bstar_peer_said (backup, BR_BSTAR_ACTIVE, 10);
    assert_int_equal (br_bstar_peer_said (backup, (br_bstar_state_t) 0, 500), BR_BSTAR_STAYED);
    assert_int_equal (br_bstar_peer_said (backup, (br_bstar_state_t) 9, 900), BR_BSTAR_STAYED);
    assert_int_equal (br_bstar_state (backup), BR_BSTAR_PASSIVE);
    assert_true (br_bstar_admit (backup, 10 + EXPIRY));
    assert_string_equal (br_bstar_state_name (BR_BSTAR_PASSIVE), "passive");
    assert_string_equal (br_bstar_state_name ((br_bstar_state_t) 9), "unknown");
    br_bstar_destroy (&backup);
}

//  Sends our state now and reads the other's, until want holds or time is up
static bool
s_exchange_until (br_bstar_t *first, br_bstar_t *second, br_bstar_state_t first_want,
                  br_bstar_state_t second_want)
{
    int64_t deadline = zclock_mono () + 10000;
    while (zclock_mono () < deadline) {
        br_bstar_tick (first, zclock_mono ());
        br_bstar_tick (second, zclock_mono ());
        zpoller_t *poller = zpoller_new (br_bstar_socket (first), br_bstar_socket (second), NULL);
        void *which = zpoller_wait (poller, 50);
        zpoller_destroy (&poller);
        if (which == br_bstar_socket (first))
            br_bstar_recv (first, zclock_mono ());
        else
        if (which == br_bstar_socket (second))
            br_bstar_recv (second, zclock_mono ());
        if (br_bstar_state (first) == first_want && br_bstar_state (second) == second_want)
            return true;
    }
    return false;
}

//  Two machines over tcp, as two brokers: the pair settles, and a garbled
//  message on the state socket is dropped
static void
test_pair_over_tcp (void **state)
{
    //  Ports below the kernel's ephemeral range: a SUB connecting to a port
    //  of that range before its PUB binds may be handed that very port as
    //  its own, connect to itself, and keep the port from the PUB
    br_bstar_t *primary = NULL, *backup = NULL;
    char *endpoint_a = NULL, *endpoint_b = NULL;
    br_bstar_config_t config = { .heartbeat_ms = 50 };
    for (int attempt = 0; attempt < 50 && !backup; attempt++) {
        br_bstar_destroy (&primary);
        zstr_free (&endpoint_a);
        zstr_free (&endpoint_b);
        int port = 20000 + randof (10000);
        endpoint_a = zsys_sprintf ("tcp://127.0.0.1:%d", port);
        endpoint_b = zsys_sprintf ("tcp://127.0.0.1:%d", port + 1);
        config = (br_bstar_config_t) { .primary = true, .bind = endpoint_a,
                                       .peer = endpoint_b, .heartbeat_ms = 50 };
        primary = br_bstar_new (&config, zclock_mono ());
        config = (br_bstar_config_t) { .primary = false, .bind = endpoint_b,
                                       .peer = endpoint_a, .heartbeat_ms = 50 };
        backup = primary ? br_bstar_new (&config, zclock_mono ()) : NULL;
    }
    assert_non_null (primary);
    assert_non_null (backup);
    assert_true (s_exchange_until (primary, backup, BR_BSTAR_ACTIVE, BR_BSTAR_PASSIVE));

    //  Garbage from a stranger on the backup's SUB: dropped
    zsock_t *stranger = zsock_new_pub (NULL);
    assert_int_equal (zsock_bind (stranger, "%s", "inproc://bstar-stranger"), 0);
    zsock_connect (br_bstar_socket (backup), "inproc://bstar-stranger");
    zclock_sleep (100);
    zstr_send (stranger, "active, trust me");
    zclock_sleep (100);
    for (int count = 0; count < 10 && (zsock_events (br_bstar_socket (backup)) & ZMQ_POLLIN);
         count++)
        assert_int_equal (br_bstar_recv (backup, zclock_mono ()), BR_BSTAR_STAYED);
    assert_int_equal (br_bstar_state (backup), BR_BSTAR_PASSIVE);
    zsock_destroy (&stranger);

    //  Binding the same state endpoint twice fails cleanly
    config.bind = endpoint_a;
    assert_null (br_bstar_new (&config, zclock_mono ()));

    br_bstar_destroy (&primary);
    br_bstar_destroy (&backup);
    zstr_free (&endpoint_a);
    zstr_free (&endpoint_b);
}

int
main (void)
{
    zsys_init ();
    zsys_set_logstream (stderr);
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_start_primary_active_backup_passive),
        cmocka_unit_test (test_failover_needs_silence_and_a_hello),
        cmocka_unit_test (test_restarted_broker_comes_back_passive),
        cmocka_unit_test (test_broker_alone_serves_after_the_wait),
        cmocka_unit_test (test_passive_takes_over_from_a_restarting_peer),
        cmocka_unit_test (test_two_actives_and_two_passives),
        cmocka_unit_test (test_unknown_state_is_ignored),
        cmocka_unit_test (test_pair_over_tcp),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
