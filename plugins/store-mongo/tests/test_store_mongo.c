/*  =========================================================================
    test_store_mongo - what only store-mongo does

    The shared suite (plugins/store-conformance, run by run-conformance.sh)
    checks the contract; these tests check the MongoDB side of it: a URI it
    cannot use refused at start with a sentence that says why, a server that
    is not there answered unavailable within seconds (never a hang, never a
    crash), service that starts once the server comes up or comes back, and
    duplicates inside one batch settled by the store itself.

    The server is the JavaScript stand-in (test-server/serve.mjs), started
    by the tests on a port they pick; its npm packages must be installed.
    =========================================================================
*/

#include "sc_broker.h"

#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <cmocka.h>

#define S_LOG_ENDPOINT "inproc://test-store-mongo-log"

static zsock_t *s_log;              //  SUB to every log line of this process
static unsigned s_database_count;   //  for fresh database names

//  A stand-in server started by a test
typedef struct {
    pid_t pid;                      //  node serve.mjs, or 0
    int port;                       //  where it listens
} s_server_t;


//  --------------------------------------------------------------------------
//  Helpers

static void
s_log_clear (void)
{
    char *line;
    while ((zsock_events (s_log) & ZMQ_POLLIN) && (line = zstr_recv (s_log)))
        zstr_free (&line);
}

//  True if a log line received within a second contains both words
static bool
s_log_says (const char *first, const char *second)
{
    int64_t deadline = zclock_mono () + 1000;
    zpoller_t *poller = zpoller_new (s_log, NULL);
    bool found = false;
    while (!found && zclock_mono () < deadline) {
        if (!zpoller_wait (poller, (int) (deadline - zclock_mono ())))
            break;
        char *line = zstr_recv (s_log);
        if (line && strstr (line, first) && (!second || strstr (line, second)))
            found = true;
        zstr_free (&line);
    }
    zpoller_destroy (&poller);
    return found;
}

//  A port on 127.0.0.1 that nothing listens on (bound, then released)
static int
s_closed_port (void)
{
    int handle = socket (AF_INET, SOCK_STREAM, 0);
    assert_true (handle >= 0);
    struct sockaddr_in address = { .sin_family = AF_INET,
                                   .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    assert_int_equal (bind (handle, (struct sockaddr *) &address, sizeof address), 0);
    socklen_t size = sizeof address;
    assert_int_equal (getsockname (handle, (struct sockaddr *) &address, &size), 0);
    close (handle);
    return ntohs (address.sin_port);
}

//  Starts node serve.mjs on port (0: any) and waits until it listens
static void
s_server_start (s_server_t *server, int port)
{
    char module_folder [600];
    snprintf (module_folder, sizeof module_folder, "%s/node_modules/@push.rocks/smartmongo",
              STORE_MONGO_TEST_SERVER);
    if (!zsys_file_exists (module_folder))
        fail_msg ("the MongoDB test server is not installed: run "
                  "npm ci --prefix %s --no-audit --no-fund   (or: make deps)",
                  STORE_MONGO_TEST_SERVER);
    int output [2];
    assert_int_equal (pipe (output), 0);
    char port_text [16];
    snprintf (port_text, sizeof port_text, "%d", port);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        dup2 (output [1], STDOUT_FILENO);
        close (output [0]);
        close (output [1]);
        execlp ("node", "node", STORE_MONGO_TEST_SERVER "/serve.mjs", port_text, (char *) NULL);
        fprintf (stderr, "cannot run node: %s\n", strerror (errno));
        _exit (127);
    }
    close (output [1]);
    char line [128] = "";
    size_t used = 0;
    int64_t deadline = zclock_mono () + 15000;
    while (!strchr (line, '\n') && used < sizeof line - 1 && zclock_mono () < deadline) {
        struct pollfd item = { .fd = output [0], .events = POLLIN };
        if (poll (&item, 1, (int) (deadline - zclock_mono ())) <= 0)
            break;
        ssize_t got = read (output [0], line + used, sizeof line - 1 - used);
        if (got <= 0)
            break;
        used += (size_t) got;
        line [used] = 0;
    }
    close (output [0]);
    int listening = 0;
    if (sscanf (line, "listening on %d", &listening) != 1) {
        kill (pid, SIGKILL);
        waitpid (pid, NULL, 0);
        fail_msg ("the MongoDB test server did not start (said '%s')", line);
    }
    server->pid = pid;
    server->port = listening;
}

static void
s_server_stop (s_server_t *server)
{
    if (server->pid > 0) {
        kill (server->pid, SIGTERM);
        waitpid (server->pid, NULL, 0);
        server->pid = 0;
    }
}

//  The option for a fresh database on port
static char *
s_uri_option (int port)
{
    return zsys_sprintf ("store-mongo.uri=mongodb://127.0.0.1:%d/parley_test_mongo_%d_%u",
                         port, (int) getpid (), ++s_database_count);
}

//  Starts the plugin with one option; returns the broker, or NULL if the
//  plugin refused to start
static sc_broker_t *
s_start (const char *option)
{
    const char *options [] = { option };
    sc_broker_t *broker = sc_broker_new ();
    char error [512];
    if (sc_broker_start (broker, STORE_MONGO_PLUGIN, options, option ? 1 : 0,
                         error, sizeof error)) {
        sc_broker_destroy (&broker);
        return NULL;
    }
    return broker;
}

static sc_reply_t *
s_info (sc_broker_t *broker)
{
    return sc_broker_call (broker, "store.info", NULL, 0);
}

static uint64_t
s_send_user_create (sc_broker_t *broker, const char *name)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 3);
    sc_pack_kstr (&packer, "name", name);
    sc_pack_kstr (&packer, "password_hash", "h");
    sc_pack_kint (&packer, "created_at", 1);
    uint64_t rid = sc_broker_send (broker, "store.user.create", buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    assert_true (rid > 0);
    return rid;
}

static uint64_t
s_send_token_put (sc_broker_t *broker, const char *hash, const char *user)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 4);
    sc_pack_kstr (&packer, "token_hash", hash);
    sc_pack_kstr (&packer, "user", user);
    sc_pack_kint (&packer, "created_at", 1);
    sc_pack_kint (&packer, "expires_at", 2);
    uint64_t rid = sc_broker_send (broker, "store.token.put", buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    assert_true (rid > 0);
    return rid;
}

//  Receives the answer to rid, asserting its code (NULL for ok)
static void
s_expect (sc_broker_t *broker, uint64_t rid, const char *code)
{
    sc_reply_t *reply = sc_broker_recv (broker, 15000);
    assert_non_null (reply);
    assert_int_equal (reply->rid, rid);
    if (code) {
        if (!reply->code)
            fail_msg ("expected %s, got ok", code);
        assert_string_equal (reply->code, code);
        assert_true (reply->message && strlen (reply->message) > 0);
    }
    else
    if (reply->code)
        fail_msg ("expected ok, got %s: %s", reply->code, reply->message);
    sc_reply_destroy (&reply);
}

//  Asks store.info every half second until it answers ok; false after
//  timeout_ms
static bool
s_await_service (sc_broker_t *broker, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (zclock_mono () < deadline) {
        sc_reply_t *reply = s_info (broker);
        assert_non_null (reply);
        bool ok = reply->code == NULL;
        if (!ok)
            assert_string_equal (reply->code, "unavailable");
        sc_reply_destroy (&reply);
        if (ok)
            return true;
        zclock_sleep (500);
    }
    return false;
}


//  --------------------------------------------------------------------------
//  Starting

static void
test_malformed_uri_refused_at_start_with_the_reason (void **state)
{
    const char *bad [] = {
        "store-mongo.uri=mongo://127.0.0.1/parley",         //  not the scheme
        "store-mongo.uri=mongodb://",                       //  no host
        "store-mongo.uri=mongodb://127.0.0.1:99999/parley", //  no such port
        "store-mongo.uri=mongodb://127.0.0.1/parley?w=0"    //  unacknowledged
    };
    for (size_t index = 0; index < sizeof bad / sizeof bad [0]; index++) {
        s_log_clear ();
        sc_broker_t *broker = s_start (bad [index]);
        if (broker) {
            sc_broker_destroy (&broker);
            fail_msg ("store-mongo started with %s", bad [index]);
        }
        if (!s_log_says ("store-mongo", "option uri"))
            fail_msg ("no log line says why %s was refused", bad [index]);
    }
}

static void
test_unreachable_server_starts_and_answers_unavailable_within_seconds (void **state)
{
    char *option = s_uri_option (s_closed_port ());
    s_log_clear ();
    int64_t started = zclock_mono ();
    sc_broker_t *broker = s_start (option);
    assert_non_null (broker);
    assert_true (s_log_says ("unreachable", "starting all the same"));

    //  A batch of several requests: every one answered, in order
    uint64_t rids [4];
    rids [0] = sc_broker_send (broker, "store.info", NULL, 0);
    rids [1] = s_send_user_create (broker, "alice");
    rids [2] = s_send_token_put (broker, "t", "alice");
    rids [3] = s_send_user_create (broker, "bob");
    for (size_t index = 0; index < 4; index++)
        s_expect (broker, rids [index], "unavailable");
    //  And again: the plugin is alive, still answering
    for (int attempt = 0; attempt < 3; attempt++) {
        sc_reply_t *reply = s_info (broker);
        assert_non_null (reply);
        assert_string_equal (reply->code, "unavailable");
        sc_reply_destroy (&reply);
    }
    //  Generous: each answer is bounded by the 2 s server selection timeout
    assert_true (zclock_mono () - started < 30000);
    sc_broker_destroy (&broker);
    zstr_free (&option);
}


//  --------------------------------------------------------------------------
//  A server that comes and goes

static void
test_server_that_comes_up_later_is_served (void **state)
{
    int port = s_closed_port ();
    char *option = s_uri_option (port);
    sc_broker_t *broker = s_start (option);
    assert_non_null (broker);
    sc_reply_t *reply = s_info (broker);
    assert_non_null (reply);
    assert_string_equal (reply->code, "unavailable");
    sc_reply_destroy (&reply);

    s_server_t server = { 0 };
    s_server_start (&server, port);
    //  libmongoc waits a few seconds before it tries a failed server again
    assert_true (s_await_service (broker, 30000));
    s_expect (broker, s_send_user_create (broker, "Alice"), NULL);
    s_expect (broker, s_send_token_put (broker, "t1", "ALICE"), NULL);
    sc_broker_destroy (&broker);
    s_server_stop (&server);
    zstr_free (&option);
}

static void
test_server_that_stops_is_answered_unavailable_then_served_again (void **state)
{
    s_server_t server = { 0 };
    s_server_start (&server, 0);
    char *option = s_uri_option (server.port);
    sc_broker_t *broker = s_start (option);
    assert_non_null (broker);
    s_expect (broker, s_send_user_create (broker, "alice"), NULL);

    int port = server.port;
    s_server_stop (&server);
    s_log_clear ();
    uint64_t first = s_send_user_create (broker, "bob");
    uint64_t second = s_send_token_put (broker, "t", "alice");
    s_expect (broker, first, "unavailable");
    s_expect (broker, second, "unavailable");
    assert_true (s_log_says ("unreachable", "answered unavailable"));

    //  Back on the same port (empty: the stand-in keeps its data in memory)
    s_server_start (&server, port);
    assert_true (s_await_service (broker, 30000));
    s_expect (broker, s_send_user_create (broker, "carol"), NULL);
    sc_broker_destroy (&broker);
    s_server_stop (&server);
    zstr_free (&option);
}


//  --------------------------------------------------------------------------
//  Batches

static void
test_duplicates_inside_one_batch_conflict_and_spare_the_rest (void **state)
{
    s_server_t server = { 0 };
    s_server_start (&server, 0);
    char *option = s_uri_option (server.port);
    sc_broker_t *broker = s_start (option);
    assert_non_null (broker);
    //  Sent without waiting: they arrive in one batch, one run of creates
    //  and one run of token puts
    uint64_t rids [8];
    rids [0] = s_send_user_create (broker, "Alice");
    rids [1] = s_send_user_create (broker, "bob");
    rids [2] = s_send_user_create (broker, "ALICE");
    rids [3] = s_send_user_create (broker, "carol");
    rids [4] = s_send_token_put (broker, "same", "alice");
    rids [5] = s_send_token_put (broker, "same", "bob");
    rids [6] = s_send_token_put (broker, "other", "nobody");
    rids [7] = s_send_token_put (broker, "third", "CAROL");
    const char *codes [] = { NULL, NULL, "conflict", NULL, NULL, "conflict", "not_found", NULL };
    for (size_t index = 0; index < 8; index++)
        s_expect (broker, rids [index], codes [index]);

    //  The earlier of each pair stands
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 1);
    sc_pack_kstr (&packer, "token_hash", "same");
    sc_reply_t *reply = sc_broker_call (broker, "store.token.get", buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    assert_non_null (reply);
    assert_null (reply->code);
    assert_true (sc_object_streq (sc_reply_field (reply, "user"), "Alice"));
    sc_reply_destroy (&reply);
    msgpack_sbuffer_init (&buffer);
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 0);
    reply = sc_broker_call (broker, "store.user.list", buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    assert_non_null (reply);
    assert_null (reply->code);
    assert_int_equal (sc_reply_field (reply, "users")->via.array.size, 3);
    sc_reply_destroy (&reply);

    sc_broker_destroy (&broker);
    s_server_stop (&server);
    zstr_free (&option);
}


int
main (void)
{
    zsys_handler_set (NULL);
    //  A server killed under a test must not kill us with SIGPIPE
    signal (SIGPIPE, SIG_IGN);
    zsys_set_logsender (S_LOG_ENDPOINT);
    s_log = zsock_new_sub (S_LOG_ENDPOINT, "");
    assert (s_log);
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_malformed_uri_refused_at_start_with_the_reason),
        cmocka_unit_test (test_unreachable_server_starts_and_answers_unavailable_within_seconds),
        cmocka_unit_test (test_server_that_comes_up_later_is_served),
        cmocka_unit_test (test_server_that_stops_is_answered_unavailable_then_served_again),
        cmocka_unit_test (test_duplicates_inside_one_batch_conflict_and_spare_the_rest),
    };
    int failed = cmocka_run_group_tests (tests, NULL, NULL);
    zsock_destroy (&s_log);
    zsys_set_logsender (NULL);
    return failed;
}
