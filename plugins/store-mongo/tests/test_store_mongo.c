/*  =========================================================================
    test_store_mongo - what only store-mongo does

    The shared suite (plugins/store-conformance, run by run-conformance.sh)
    checks the contract; these tests check the MongoDB side of it: a URI it
    cannot use refused at start with a sentence that says why, a server that
    is not there answered unavailable within seconds (never a hang, never a
    crash), service that starts once the server comes up or comes back,
    duplicates inside one batch settled by the store itself, joins from two
    instances at once that never pass a room's max_participants, and the
    seed's document shapes as MongoDB holds them; for private messages, the
    message and conversation documents, their indexes, and a batch of
    appends that settles its own duplicates.

    The server is the JavaScript stand-in (test-server/serve.mjs), started
    by the tests on a port they pick; its npm packages must be installed.
    =========================================================================
*/

#include "sc_broker.h"
#include "sc_log.h"

#include <mongoc/mongoc.h>
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

static sc_log_t *s_log;             //  every log line of this process
static unsigned s_database_count;   //  for fresh database names

//  A stand-in server started by a test
typedef struct {
    pid_t pid;                      //  node serve.mjs, or 0
    int port;                       //  where it listens
} s_server_t;


//  --------------------------------------------------------------------------
//  Helpers

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
        sc_log_clear (s_log);
        sc_broker_t *broker = s_start (bad [index]);
        if (broker) {
            sc_broker_destroy (&broker);
            fail_msg ("store-mongo started with %s", bad [index]);
        }
        if (!sc_log_says (s_log, "store-mongo", "option uri"))
            fail_msg ("no log line says why %s was refused", bad [index]);
    }
}

//  The GridFS chunk size is 1 to 4 MiB: outside, or not a number, the
//  plugin does not start and says which option
static void
test_chunk_size_out_of_range_refused_at_start (void **state)
{
    const char *bad [] = { "0", "4194305", "255k", "-1" };
    char *uri = s_uri_option (s_closed_port ());
    for (size_t index = 0; index < sizeof bad / sizeof bad [0]; index++) {
        char option [64];
        snprintf (option, sizeof option, "store-mongo.file_chunk_size=%s", bad [index]);
        const char *options [] = { uri, option };
        sc_log_clear (s_log);
        sc_broker_t *broker = sc_broker_new ();
        char error [512];
        if (sc_broker_start (broker, STORE_MONGO_PLUGIN, options, 2, error, sizeof error) == 0)
            fail_msg ("store-mongo started with %s", option);
        sc_broker_destroy (&broker);
        if (!sc_log_says (s_log, "file_chunk_size", "from 1 to 4194304"))
            fail_msg ("no log line says why %s was refused", option);
    }
    //  Its bounds are taken
    const char *good [] = { "1", "4194304" };
    for (size_t index = 0; index < 2; index++) {
        char option [64];
        snprintf (option, sizeof option, "store-mongo.file_chunk_size=%s", good [index]);
        const char *options [] = { uri, option };
        sc_broker_t *broker = sc_broker_new ();
        char error [512];
        if (sc_broker_start (broker, STORE_MONGO_PLUGIN, options, 2, error, sizeof error))
            fail_msg ("store-mongo refused %s: %s", option, error);
        sc_broker_destroy (&broker);
    }
    zstr_free (&uri);
}

static void
test_unreachable_server_starts_and_answers_unavailable_within_seconds (void **state)
{
    char *option = s_uri_option (s_closed_port ());
    sc_log_clear (s_log);
    int64_t started = zclock_mono ();
    sc_broker_t *broker = s_start (option);
    assert_non_null (broker);
    assert_true (sc_log_says (s_log, "unreachable", "starting all the same"));

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
    sc_log_clear (s_log);
    uint64_t first = s_send_user_create (broker, "bob");
    uint64_t second = s_send_token_put (broker, "t", "alice");
    s_expect (broker, first, "unavailable");
    s_expect (broker, second, "unavailable");
    assert_true (sc_log_says (s_log, "unreachable", "answered unavailable"));

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


//  --------------------------------------------------------------------------
//  Rooms

//  Sends a request whose body is a map of string fields (then one int
//  field if int_key is given)
static uint64_t
s_send_fields (sc_broker_t *broker, const char *type, size_t count, const char *const *pairs,
               const char *int_key, int64_t int_value)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, count + (int_key ? 1 : 0));
    for (size_t index = 0; index < count; index++)
        sc_pack_kstr (&packer, pairs [2 * index], pairs [2 * index + 1]);
    if (int_key)
        sc_pack_kint (&packer, int_key, int_value);
    uint64_t rid = sc_broker_send (broker, type, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    assert_true (rid > 0);
    return rid;
}

static uint64_t
s_send_room_create (sc_broker_t *broker, const char *name, bool is_private,
                    int64_t max_participants, const char *owner)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 6);
    sc_pack_kstr (&packer, "name", name);
    sc_pack_kstr (&packer, "description", "A place to talk");
    sc_pack_key (&packer, "private");
    if (is_private)
        msgpack_pack_true (&packer);
    else
        msgpack_pack_false (&packer);
    sc_pack_kint (&packer, "max_participants", max_participants);
    sc_pack_kstr (&packer, "owner", owner);
    sc_pack_kint (&packer, "created_at", 1718454896000);    //  2024-06-15T12:34:56Z
    uint64_t rid = sc_broker_send (broker, "store.room.create", buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    assert_true (rid > 0);
    return rid;
}

//  store.member.add, with a join entry when seq > 0
static uint64_t
s_send_member_add (sc_broker_t *broker, const char *room, const char *user, int64_t seq)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, seq > 0 ? 3 : 2);
    sc_pack_kstr (&packer, "room", room);
    sc_pack_kstr (&packer, "user", user);
    if (seq > 0) {
        sc_pack_key (&packer, "entry");
        msgpack_pack_map (&packer, 5);
        sc_pack_kint (&packer, "seq", seq);
        sc_pack_kstr (&packer, "kind", "system");
        sc_pack_kstr (&packer, "user", user);
        sc_pack_kint (&packer, "ts", 1718454897000);
        sc_pack_kstr (&packer, "event", "join");
    }
    uint64_t rid = sc_broker_send (broker, "store.member.add", buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    assert_true (rid > 0);
    return rid;
}

static void
test_joins_from_two_instances_at_once_never_pass_max_participants (void **state)
{
    //  Two store-mongo instances on one database, as two processes of a
    //  cluster would be: each checks the room, then both update it. The
    //  conditional update is what keeps the fifth place the last.
    s_server_t server = { 0 };
    s_server_start (&server, 0);
    char *option = s_uri_option (server.port);
    sc_broker_t *first = s_start (option);
    sc_broker_t *second = s_start (option);
    assert_non_null (first);
    assert_non_null (second);
    #define S_JOINERS 24
    #define S_ROOMS 8
    #define S_ROOM_SIZE 4
    uint64_t rids [S_ROOMS][S_JOINERS + 1];
    char names [S_JOINERS + 1][16];
    for (int index = 0; index <= S_JOINERS; index++) {
        snprintf (names [index], sizeof names [index], "user%02d", index);
        rids [0][index] = s_send_user_create (first, names [index]);
    }
    for (int index = 0; index <= S_JOINERS; index++)
        s_expect (first, rids [0][index], NULL);
    char rooms [S_ROOMS][16];
    for (int room = 0; room < S_ROOMS; room++) {
        snprintf (rooms [room], sizeof rooms [room], "Crowd%d", room);
        s_expect (first, s_send_room_create (first, rooms [room], false, S_ROOM_SIZE, "user00"),
                  NULL);
    }
    //  Everyone into every room at once, half through each instance, each
    //  pipelined: every room fills while both instances are joining it
    for (int room = 0; room < S_ROOMS; room++)
        for (int index = 1; index <= S_JOINERS; index++)
            rids [room][index] = s_send_member_add (index % 2 ? first : second, rooms [room],
                                                    names [index], 0);
    size_t added [S_ROOMS] = { 0 }, full [S_ROOMS] = { 0 };
    for (int parity = 1; parity >= 0; parity--)
        for (int room = 0; room < S_ROOMS; room++)
            for (int index = 1; index <= S_JOINERS; index++) {
                if (index % 2 != parity)
                    continue;
                sc_reply_t *reply = sc_broker_recv (parity ? first : second, 15000);
                assert_non_null (reply);
                assert_int_equal (reply->rid, rids [room][index]);
                if (reply->code) {
                    assert_string_equal (reply->code, "full");
                    full [room]++;
                }
                else {
                    assert_true (sc_reply_field (reply, "added")->via.boolean);
                    assert_true (sc_reply_field (reply, "members")->via.u64 <= S_ROOM_SIZE);
                    added [room]++;
                }
                sc_reply_destroy (&reply);
            }
    for (int room = 0; room < S_ROOMS; room++) {
        assert_int_equal (added [room], S_ROOM_SIZE - 1);
        assert_int_equal (full [room], S_JOINERS - (S_ROOM_SIZE - 1));
        const char *pairs [] = { "room", rooms [room] };
        s_send_fields (second, "store.member.list", 1, pairs, NULL, 0);
        sc_reply_t *reply = sc_broker_recv (second, 15000);
        assert_non_null (reply);
        assert_null (reply->code);
        assert_int_equal (sc_reply_field (reply, "members")->via.array.size, S_ROOM_SIZE);
        sc_reply_destroy (&reply);
    }

    sc_broker_destroy (&first);
    sc_broker_destroy (&second);
    s_server_stop (&server);
    zstr_free (&option);
}

//  Asserts the type of a field at a dotted path of document
static void
s_assert_bson_type (const bson_t *document, const char *path, bson_type_t type)
{
    bson_iter_t iter, found;
    assert_true (bson_iter_init (&iter, document));
    if (!bson_iter_find_descendant (&iter, path, &found))
        fail_msg ("the document has no '%s'", path);
    if (bson_iter_type (&found) != type)
        fail_msg ("'%s' has BSON type 0x%02x, expected 0x%02x", path, bson_iter_type (&found),
                  type);
}

static void
test_room_and_timeline_documents_have_the_seed_shape_and_indexes (void **state)
{
    s_server_t server = { 0 };
    s_server_start (&server, 0);
    char *option = s_uri_option (server.port);
    sc_broker_t *broker = s_start (option);
    assert_non_null (broker);
    s_expect (broker, s_send_user_create (broker, "Alice"), NULL);
    s_expect (broker, s_send_user_create (broker, "bob"), NULL);
    s_expect (broker, s_send_user_create (broker, "carol"), NULL);
    s_expect (broker, s_send_room_create (broker, "General", true, 7, "alice"), NULL);
    const char *invite_bob [] = { "room", "general", "user", "bob", "from", "Alice" };
    s_expect (broker, s_send_fields (broker, "store.invite.add", 3, invite_bob, NULL, 0), NULL);
    const char *invite_carol [] = { "room", "general", "user", "CAROL", "from", "Alice" };
    s_expect (broker, s_send_fields (broker, "store.invite.add", 3, invite_carol, NULL, 0),
              NULL);
    s_expect (broker, s_send_member_add (broker, "general", "BOB", 1), NULL);

    //  Read back as MongoDB holds it
    const char *uri_text = strchr (option, '=') + 1;
    mongoc_client_t *client = mongoc_client_new (uri_text);
    assert_non_null (client);
    const char *database = strrchr (uri_text, '/') + 1;
    mongoc_collection_t *rooms = mongoc_client_get_collection (client, database, "rooms");
    bson_t *filter = BCON_NEW ("name_lower", BCON_UTF8 ("general"));
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (rooms, filter, NULL, NULL);
    const bson_t *room;
    assert_true (mongoc_cursor_next (cursor, &room));
    s_assert_bson_type (room, "_id", BSON_TYPE_OID);
    s_assert_bson_type (room, "name", BSON_TYPE_UTF8);
    s_assert_bson_type (room, "created_at", BSON_TYPE_DATE_TIME);
    s_assert_bson_type (room, "users", BSON_TYPE_ARRAY);
    s_assert_bson_type (room, "owner", BSON_TYPE_UTF8);
    s_assert_bson_type (room, "metadata.description", BSON_TYPE_UTF8);
    s_assert_bson_type (room, "metadata.settings.is_private", BSON_TYPE_BOOL);
    s_assert_bson_type (room, "invited", BSON_TYPE_ARRAY);
    bson_iter_t iter;
    assert_true (bson_iter_init_find (&iter, room, "created_at"));
    assert_int_equal (bson_iter_date_time (&iter), 1718454896000);
    char *json = bson_as_relaxed_extended_json (room, NULL);
    //  Members and invitations as registered; bob's invitation consumed
    assert_non_null (strstr (json, "\"users\" : [ \"Alice\", \"bob\" ]"));
    assert_non_null (strstr (json, "\"invited\" : [ \"carol\" ]"));
    assert_non_null (strstr (json, "\"max_participants\" : 7"));
    assert_non_null (strstr (json, "\"last_seq\" : 1"));
    bson_free (json);
    mongoc_cursor_destroy (cursor);
    bson_destroy (filter);

    mongoc_collection_t *messages = mongoc_client_get_collection (client, database, "messages");
    filter = BCON_NEW ("room", BCON_UTF8 ("general"), "seq", BCON_INT64 (1));
    cursor = mongoc_collection_find_with_opts (messages, filter, NULL, NULL);
    const bson_t *entry;
    assert_true (mongoc_cursor_next (cursor, &entry));
    s_assert_bson_type (entry, "_id", BSON_TYPE_OID);
    s_assert_bson_type (entry, "ts", BSON_TYPE_DATE_TIME);
    json = bson_as_relaxed_extended_json (entry, NULL);
    assert_non_null (strstr (json, "\"kind\" : \"system\""));
    assert_non_null (strstr (json, "\"event\" : \"join\""));
    bson_free (json);
    mongoc_cursor_destroy (cursor);
    bson_destroy (filter);

    //  The unique indexes: rooms by lower-cased name, timelines by (room, seq)
    struct {
        mongoc_collection_t *collection;
        const char *key;
    } expected [] = {
        { rooms, "{ \"name_lower\" : 1 }" },
        { messages, "{ \"room\" : 1, \"seq\" : 1 }" }
    };
    for (size_t index = 0; index < 2; index++) {
        cursor = mongoc_collection_find_indexes_with_opts (expected [index].collection, NULL);
        const bson_t *description;
        bool found = false;
        while (mongoc_cursor_next (cursor, &description)) {
            bson_iter_t key, unique;
            if (!bson_iter_init_find (&key, description, "key")
            ||  !bson_iter_init_find (&unique, description, "unique") || !bson_iter_bool (&unique))
                continue;
            uint32_t size;
            const uint8_t *data;
            bson_t key_document;
            bson_iter_document (&key, &size, &data);
            bson_init_static (&key_document, data, size);
            char *text = bson_as_relaxed_extended_json (&key_document, NULL);
            found = found || strcmp (text, expected [index].key) == 0;
            bson_free (text);
        }
        mongoc_cursor_destroy (cursor);
        if (!found)
            fail_msg ("no unique index %s", expected [index].key);
    }
    mongoc_collection_destroy (messages);
    mongoc_collection_destroy (rooms);
    mongoc_client_destroy (client);

    sc_broker_destroy (&broker);
    s_server_stop (&server);
    zstr_free (&option);
}

//  --------------------------------------------------------------------------
//  Private messages

static uint64_t
s_send_pm_append (sc_broker_t *broker, const char *from, const char *to, int64_t seq,
                  const char *text)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 5);
    sc_pack_kstr (&packer, "from", from);
    sc_pack_kstr (&packer, "to", to);
    sc_pack_kint (&packer, "seq", seq);
    sc_pack_kstr (&packer, "text", text);
    sc_pack_kint (&packer, "ts", 1718454900000 + seq * 1000);
    uint64_t rid = sc_broker_send (broker, "store.pm.append", buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    assert_true (rid > 0);
    return rid;
}

//  The one document of collection that filter selects, as relaxed JSON
//  (bson_free it); fails unless there is exactly one
static char *
s_only_document (mongoc_collection_t *collection, const bson_t *filter, bson_t *copy)
{
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (collection, filter, NULL, NULL);
    const bson_t *document;
    assert_true (mongoc_cursor_next (cursor, &document));
    char *json = bson_as_relaxed_extended_json (document, NULL);
    if (copy)
        bson_copy_to (document, copy);
    if (mongoc_cursor_next (cursor, &document))
        fail_msg ("more than one document: %s", json);
    mongoc_cursor_destroy (cursor);
    return json;
}

//  Whether collection has an index on key (relaxed JSON), unique if asked
static bool
s_has_index (mongoc_collection_t *collection, const char *key, bool unique)
{
    mongoc_cursor_t *cursor = mongoc_collection_find_indexes_with_opts (collection, NULL);
    const bson_t *description;
    bool found = false;
    while (mongoc_cursor_next (cursor, &description)) {
        bson_iter_t key_iter, unique_iter;
        if (!bson_iter_init_find (&key_iter, description, "key"))
            continue;
        bool is_unique = bson_iter_init_find (&unique_iter, description, "unique")
                      && bson_iter_bool (&unique_iter);
        uint32_t size;
        const uint8_t *data;
        bson_t key_document;
        bson_iter_document (&key_iter, &size, &data);
        bson_init_static (&key_document, data, size);
        char *text = bson_as_relaxed_extended_json (&key_document, NULL);
        found = found || (strcmp (text, key) == 0 && (is_unique || !unique));
        bson_free (text);
    }
    mongoc_cursor_destroy (cursor);
    return found;
}

static void
test_pm_batch_settles_duplicates_and_documents_have_their_shape_and_indexes (void **state)
{
    s_server_t server = { 0 };
    s_server_start (&server, 0);
    char *option = s_uri_option (server.port);
    sc_broker_t *broker = s_start (option);
    assert_non_null (broker);
    s_expect (broker, s_send_user_create (broker, "Alice"), NULL);
    s_expect (broker, s_send_user_create (broker, "bob"), NULL);
    s_expect (broker, s_send_user_create (broker, "carol"), NULL);

    //  Sent without waiting: one run of appends. The third takes the seq
    //  of the first in the same conversation, spelled the other way round.
    uint64_t rids [6];
    rids [0] = s_send_pm_append (broker, "alice", "bob", 1, "one");
    rids [1] = s_send_pm_append (broker, "BOB", "Alice", 2, "two");
    rids [2] = s_send_pm_append (broker, "bob", "alice", 1, "taken");
    rids [3] = s_send_pm_append (broker, "carol", "alice", 1, "aside");
    rids [4] = s_send_pm_append (broker, "alice", "ghost", 1, "anyone?");
    rids [5] = s_send_pm_append (broker, "Alice", "ALICE", 1, "me");
    const char *codes [] = { NULL, NULL, "conflict", NULL, "not_found", "bad_request" };
    for (size_t index = 0; index < 6; index++)
        s_expect (broker, rids [index], codes [index]);
    const char *read [] = { "user", "alice", "with", "BOB" };
    s_expect (broker, s_send_fields (broker, "store.pm.read", 2, read, "seq", 2), NULL);

    const char *uri_text = strchr (option, '=') + 1;
    mongoc_client_t *client = mongoc_client_new (uri_text);
    assert_non_null (client);
    const char *database = strrchr (uri_text, '/') + 1;
    mongoc_collection_t *pm_messages
        = mongoc_client_get_collection (client, database, "pm_messages");
    mongoc_collection_t *conversations
        = mongoc_client_get_collection (client, database, "conversations");

    //  A message: names as registered, a BSON date, the first of a seq kept
    bson_t *filter = BCON_NEW ("conv", BCON_UTF8 ("alice\nbob"), "seq", BCON_INT64 (1));
    bson_t message = BSON_INITIALIZER;
    char *json = s_only_document (pm_messages, filter, &message);
    s_assert_bson_type (&message, "_id", BSON_TYPE_OID);
    s_assert_bson_type (&message, "ts", BSON_TYPE_DATE_TIME);
    assert_non_null (strstr (json, "\"from\" : \"Alice\""));
    assert_non_null (strstr (json, "\"to\" : \"bob\""));
    assert_non_null (strstr (json, "\"text\" : \"one\""));
    bson_free (json);
    bson_destroy (&message);
    bson_destroy (filter);

    //  One conversation document per pair, on its newest entry, with the
    //  markers of both sides
    filter = BCON_NEW ("conv", BCON_UTF8 ("alice\nbob"));
    bson_t conversation = BSON_INITIALIZER;
    json = s_only_document (conversations, filter, &conversation);
    s_assert_bson_type (&conversation, "_id", BSON_TYPE_OID);
    s_assert_bson_type (&conversation, "last_ts", BSON_TYPE_DATE_TIME);
    s_assert_bson_type (&conversation, "last.ts", BSON_TYPE_DATE_TIME);
    assert_non_null (strstr (json, "\"users\" : [ \"alice\", \"bob\" ]"));
    assert_non_null (strstr (json, "\"names\" : [ \"Alice\", \"bob\" ]"));
    assert_non_null (strstr (json, "\"last_seq\" : 2"));
    assert_non_null (strstr (json, "\"from\" : \"bob\""));
    assert_non_null (strstr (json, "\"read_a\" : 2"));
    assert_non_null (strstr (json, "\"read_b\" : 0"));
    bson_free (json);
    bson_destroy (&conversation);
    bson_destroy (filter);
    filter = bson_new ();
    bson_error_t error;
    assert_int_equal (mongoc_collection_count_documents (conversations, filter, NULL, NULL,
                                                         NULL, &error), 2);
    assert_int_equal (mongoc_collection_count_documents (pm_messages, filter, NULL, NULL,
                                                         NULL, &error), 3);
    bson_destroy (filter);

    //  The indexes: history and unread counts by (conv, seq), one document
    //  per conversation, a user's conversations newest first
    assert_true (s_has_index (pm_messages, "{ \"conv\" : 1, \"seq\" : 1 }", true));
    assert_true (s_has_index (conversations, "{ \"conv\" : 1 }", true));
    assert_true (s_has_index (conversations,
                              "{ \"users\" : 1, \"last_ts\" : -1, \"_id\" : -1 }", false));
    mongoc_collection_destroy (conversations);
    mongoc_collection_destroy (pm_messages);
    mongoc_client_destroy (client);

    sc_broker_destroy (&broker);
    s_server_stop (&server);
    zstr_free (&option);
}


//  --------------------------------------------------------------------------
//  Timeline changes (schema version 9): a deleted text leaves the documents

//  A timeline change from alice (sc_pack_change), asserted ok
static void
s_change_ok (sc_broker_t *broker, const char *room, int64_t seq, int64_t target,
             const char *text)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    const char *type = sc_pack_change (&buffer, room, seq, target, text, 1718454900000 + seq);
    uint64_t rid = sc_broker_send (broker, type, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    assert_true (rid > 0);
    s_expect (broker, rid, NULL);
}

//  How many documents of the database's timelines and conversations hold
//  word, read back as MongoDB keeps them
static int
s_documents_holding (mongoc_client_t *client, const char *database, const char *word)
{
    const char *names [] = { "messages", "pm_messages", "conversations" };
    int holding = 0;
    for (size_t index = 0; index < 3; index++) {
        mongoc_collection_t *collection
            = mongoc_client_get_collection (client, database, names [index]);
        bson_t *filter = bson_new ();
        mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (collection, filter, NULL,
                                                                    NULL);
        const bson_t *document;
        while (mongoc_cursor_next (cursor, &document)) {
            char *json = bson_as_relaxed_extended_json (document, NULL);
            holding += strstr (json, word) != NULL;
            bson_free (json);
        }
        mongoc_cursor_destroy (cursor);
        bson_destroy (filter);
        mongoc_collection_destroy (collection);
    }
    return holding;
}

static void
test_deleted_texts_leave_the_documents (void **state)
{
    s_server_t server = { 0 };
    s_server_start (&server, 0);
    char *option = s_uri_option (server.port);
    sc_broker_t *broker = s_start (option);
    assert_non_null (broker);
    s_expect (broker, s_send_user_create (broker, "alice"), NULL);
    s_expect (broker, s_send_user_create (broker, "bob"), NULL);
    s_expect (broker, s_send_room_create (broker, "general", false, 10, "alice"), NULL);
    //  A message deleted as sent, and one edited first, in a room and in a
    //  conversation (whose document copies its last message)
    const char *words [] = { "zebracornmessage", "quokkaplumeedit", "marmosetpmtext",
                             "narwhalpmedit" };
    s_change_ok (broker, "general", 1, 0, words [0]);
    s_change_ok (broker, "general", 2, 0, "a draft");
    s_change_ok (broker, "general", 3, 2, words [1]);
    s_change_ok (broker, NULL, 1, 0, words [2]);
    s_change_ok (broker, NULL, 2, 0, "a draft");
    s_change_ok (broker, NULL, 3, 2, words [3]);
    const char *uri_text = strchr (option, '=') + 1;
    mongoc_client_t *client = mongoc_client_new (uri_text);
    assert_non_null (client);
    const char *database = strrchr (uri_text, '/') + 1;
    //  Held before (so that the search below can fail): the edits' texts
    //  by the message and by the edit
    assert_int_equal (s_documents_holding (client, database, words [0]), 1);
    assert_int_equal (s_documents_holding (client, database, words [1]), 2);
    assert_true (s_documents_holding (client, database, words [2]) >= 1);
    assert_true (s_documents_holding (client, database, words [3]) >= 2);
    s_change_ok (broker, "general", 4, 1, NULL);
    s_change_ok (broker, "general", 5, 2, NULL);
    s_change_ok (broker, NULL, 4, 2, NULL);
    s_change_ok (broker, NULL, 5, 1, NULL);
    for (size_t index = 0; index < 4; index++)
        if (s_documents_holding (client, database, words [index]))
            fail_msg ("the deleted text '%s' is still in a document", words [index]);
    mongoc_client_destroy (client);
    sc_broker_destroy (&broker);
    s_server_stop (&server);
    zstr_free (&option);
}


//  --------------------------------------------------------------------------
//  Search (schema version 12): the words of the documents

//  The words array of the one document of collection at (field: key,
//  seq), joined with commas; "(none)" when it has none
static void
s_words_of (mongoc_collection_t *collection, const char *field, const char *key, int64_t seq,
            char *joined, size_t size)
{
    bson_t *filter = BCON_NEW (field, BCON_UTF8 (key), "seq", BCON_INT64 (seq));
    bson_t document = BSON_INITIALIZER;
    char *json = s_only_document (collection, filter, &document);
    bson_free (json);
    bson_iter_t iter, words;
    snprintf (joined, size, "(none)");
    if (bson_iter_init_find (&iter, &document, "words") && BSON_ITER_HOLDS_ARRAY (&iter)
    &&  bson_iter_recurse (&iter, &words)) {
        size_t used = 0;
        joined [0] = 0;
        while (bson_iter_next (&words) && BSON_ITER_HOLDS_UTF8 (&words))
            used += (size_t) snprintf (joined + used, size - used, "%s%s", used ? "," : "",
                                       bson_iter_utf8 (&words, NULL));
    }
    bson_destroy (&document);
    bson_destroy (filter);
}

//  Makes the database look as schema version 11 left it: no words on any
//  message, no kind on an old private message, the meta document at 11
static void
s_make_schema_11 (mongoc_database_t *database)
{
    const char *names [] = { "messages", "pm_messages" };
    bson_t *all = bson_new ();
    bson_t *unset = BCON_NEW ("$unset", "{", "words", BCON_UTF8 (""), "}");
    for (size_t index = 0; index < 2; index++) {
        mongoc_collection_t *collection = mongoc_database_get_collection (database, names [index]);
        assert_true (mongoc_collection_update_many (collection, all, unset, NULL, NULL, NULL));
        mongoc_collection_destroy (collection);
    }
    mongoc_collection_t *pm = mongoc_database_get_collection (database, "pm_messages");
    bson_t *unkind = BCON_NEW ("$unset", "{", "kind", BCON_UTF8 (""), "}");
    assert_true (mongoc_collection_update_many (pm, all, unkind, NULL, NULL, NULL));
    mongoc_collection_destroy (pm);
    mongoc_collection_t *meta = mongoc_database_get_collection (database, "meta");
    bson_t *key = BCON_NEW ("key", BCON_UTF8 ("schema"));
    bson_t *eleven = BCON_NEW ("$set", "{", "version", BCON_INT64 (11), "}");
    assert_true (mongoc_collection_update_one (meta, key, eleven, NULL, NULL, NULL));
    mongoc_collection_destroy (meta);
    bson_destroy (eleven);
    bson_destroy (key);
    bson_destroy (unkind);
    bson_destroy (unset);
    bson_destroy (all);
}

static void
test_words_follow_the_text_and_the_migration_fills_them (void **state)
{
    s_server_t server = { 0 };
    s_server_start (&server, 0);
    char *option = s_uri_option (server.port);
    sc_broker_t *broker = s_start (option);
    assert_non_null (broker);
    s_expect (broker, s_send_user_create (broker, "alice"), NULL);
    s_expect (broker, s_send_user_create (broker, "bob"), NULL);
    s_expect (broker, s_send_room_create (broker, "general", false, 10, "alice"), NULL);
    s_change_ok (broker, "general", 1, 0, "Hello Café, hello!");
    s_change_ok (broker, "general", 2, 0, "a draft");
    s_change_ok (broker, "general", 3, 2, "ÉCOLE straße 42");
    s_change_ok (broker, "general", 4, 0, "gone soon");
    s_change_ok (broker, "general", 5, 4, NULL);
    s_change_ok (broker, NULL, 1, 0, "Привет, мир");
    const char *uri_text = strchr (option, '=') + 1;
    mongoc_client_t *client = mongoc_client_new (uri_text);
    assert_non_null (client);
    mongoc_database_t *database = mongoc_client_get_database (client,
                                                              strrchr (uri_text, '/') + 1);
    mongoc_collection_t *messages = mongoc_database_get_collection (database, "messages");
    mongoc_collection_t *pm = mongoc_database_get_collection (database, "pm_messages");
    //  Distinct, normalized, sorted; an edit recomputes them, a deletion
    //  removes them, the changes' own entries have none
    char words [256];
    const char *expected [][3] = {
        { "general", "1", "cafe,hello" }, { "general", "2", "42,ecole,straße" },
        { "general", "3", "(none)" }, { "general", "4", "(none)" }
    };
    for (int round = 0; round < 2; round++) {
        for (size_t index = 0; index < 4; index++) {
            s_words_of (messages, "room", expected [index][0], atoll (expected [index][1]),
                        words, sizeof words);
            assert_string_equal (words, expected [index][2]);
        }
        s_words_of (pm, "conv", "alice\nbob", 1, words, sizeof words);
        assert_string_equal (words, "мир,привет");
        if (round == 1)
            break;
        //  As schema 11 left the database: the next start fills the words
        sc_broker_destroy (&broker);
        s_make_schema_11 (database);
        s_words_of (messages, "room", "general", 1, words, sizeof words);
        assert_string_equal (words, "(none)");
        broker = s_start (option);
        assert_non_null (broker);
        assert_true (s_await_service (broker, 15000));
    }
    //  And store.search finds the filled words, a prefix's too
    const char *searches [][2] = { { "ecole", "1" }, { "caf*", "1" }, { "привет", "1" },
                                   { "gone", "0" } };
    for (size_t index = 0; index < 4; index++) {
        pl_pack_t body;
        sc_body_init (&body, 3);
        pl_pack_kstr (&body, "user", "ALICE");
        pl_pack_str (&body, "words");
        msgpack_pack_array (&body.packer, 1);
        pl_pack_str (&body, searches [index][0]);
        pl_pack_kuint (&body, "limit", 10);
        sc_reply_t *reply = sc_broker_call_body (broker, "store.search", &body);
        assert_non_null (reply);
        assert_null (reply->code);
        const msgpack_object *results = sc_reply_field (reply, "results");
        assert_non_null (results);
        assert_int_equal (results->via.array.size, atoi (searches [index][1]));
        sc_reply_destroy (&reply);
    }
    assert_true (s_has_index (messages, "{ \"words\" : 1, \"room\" : 1, \"ts\" : -1 }", false));
    assert_true (s_has_index (pm, "{ \"words\" : 1, \"conv\" : 1, \"ts\" : -1 }", false));
    sc_reply_t *info = s_info (broker);
    assert_non_null (info);
    assert_null (info->code);
    assert_int_equal (sc_reply_field (info, "schema_version")->via.u64, 15);
    sc_reply_destroy (&info);
    mongoc_collection_destroy (pm);
    mongoc_collection_destroy (messages);
    mongoc_database_destroy (database);
    mongoc_client_destroy (client);
    sc_broker_destroy (&broker);
    s_server_stop (&server);
    zstr_free (&option);
}


//  --------------------------------------------------------------------------
//  Files (schema version 13): chunks, references

#define S_FILE_ID "QUJDREVGR0hJSktMTU5PUA"

//  store.file.write of text at offset, asserted ok
static void
s_file_write (sc_broker_t *broker, uint64_t offset, const char *text)
{
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "id", S_FILE_ID);
    pl_pack_kuint (&body, "offset", offset);
    pl_pack_str (&body, "data");
    msgpack_pack_bin (&body.packer, strlen (text));
    msgpack_pack_bin_body (&body.packer, text, strlen (text));
    s_expect (broker, sc_broker_send_body (broker, "store.file.write", &body), NULL);
}

//  A message from alice in general that refers to the file
static void
s_file_message (sc_broker_t *broker, int64_t seq)
{
    pl_pack_t body;
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "room", "general");
    pl_pack_str (&body, "entry");
    pl_pack_map (&body, 6);
    pl_pack_kint (&body, "seq", seq);
    pl_pack_kstr (&body, "kind", "message");
    pl_pack_kstr (&body, "user", "Alice");
    pl_pack_kint (&body, "ts", 1718454900000 + seq);
    pl_pack_kstr (&body, "text", "");
    pl_pack_str (&body, "file");
    pl_pack_map (&body, 4);
    pl_pack_kstr (&body, "id", S_FILE_ID);
    pl_pack_kstr (&body, "name", "notes.txt");
    pl_pack_kuint (&body, "size", 6);
    pl_pack_kstr (&body, "type", "text/plain");
    sc_reply_t *reply = sc_broker_call_body (broker, "store.msg.append", &body);
    assert_non_null (reply);
    assert_null (reply->code);
    assert_null (sc_reply_field (reply, "refused"));
    sc_reply_destroy (&reply);
}

static int64_t
s_count (mongoc_database_t *database, const char *name, const bson_t *filter)
{
    mongoc_collection_t *collection = mongoc_database_get_collection (database, name);
    bson_t all = BSON_INITIALIZER;
    int64_t count = mongoc_collection_count_documents (collection, filter ? filter : &all,
                                                       NULL, NULL, NULL, NULL);
    mongoc_collection_destroy (collection);
    return count;
}

static void
test_a_files_bytes_go_with_its_last_reference (void **state)
{
    s_server_t server = { 0 };
    s_server_start (&server, 0);
    char *option = s_uri_option (server.port);
    sc_broker_t *broker = s_start (option);
    assert_non_null (broker);
    s_expect (broker, s_send_user_create (broker, "alice"), NULL);
    s_expect (broker, s_send_room_create (broker, "general", false, 10, "alice"), NULL);
    pl_pack_t body;
    sc_body_init (&body, 7);
    pl_pack_kstr (&body, "id", S_FILE_ID);
    pl_pack_kstr (&body, "user", "ALICE");
    pl_pack_kstr (&body, "name", "notes.txt");
    pl_pack_kstr (&body, "type", "text/plain");
    pl_pack_kuint (&body, "size", 6);
    pl_pack_kint (&body, "ts", 1718454900000);
    pl_pack_kuint (&body, "quota", 0);
    s_expect (broker, sc_broker_send_body (broker, "store.file.create", &body), NULL);
    s_file_write (broker, 0, "abc");
    s_file_write (broker, 3, "def");
    sc_body_init (&body, 1);
    pl_pack_kstr (&body, "id", S_FILE_ID);
    s_expect (broker, sc_broker_send_body (broker, "store.file.commit", &body), NULL);
    //  Two messages refer to it
    s_file_message (broker, 1);
    s_file_message (broker, 2);

    const char *uri_text = strchr (option, '=') + 1;
    mongoc_client_t *client = mongoc_client_new (uri_text);
    mongoc_database_t *database = mongoc_client_get_database (client,
                                                              strrchr (uri_text, '/') + 1);
    bson_t *the_file = BCON_NEW ("id", BCON_UTF8 (S_FILE_ID));
    bson_t *referring = BCON_NEW ("file.id", BCON_UTF8 (S_FILE_ID));
    //  The metadata as registered, complete; its bytes in the bucket under
    //  the same _id: one chunk of the default size holds both pieces
    mongoc_collection_t *files = mongoc_database_get_collection (database, "files");
    bson_t file = BSON_INITIALIZER;
    char *json = s_only_document (files, the_file, &file);
    bson_free (json);
    bson_iter_t field;
    assert_true (bson_iter_init_find (&field, &file, "_id") && BSON_ITER_HOLDS_OID (&field));
    bson_t *of_file = BCON_NEW ("files_id", BCON_OID (bson_iter_oid (&field)));
    bson_t *bucket_file = BCON_NEW ("_id", BCON_OID (bson_iter_oid (&field)));
    assert_int_equal (s_count (database, "fs.chunks", of_file), 1);
    assert_int_equal (s_count (database, "fs.files", bucket_file), 1);
    assert_int_equal (s_count (database, "file_chunks", NULL), 0);
    assert_true (bson_iter_init_find (&field, &file, "user"));
    assert_string_equal (bson_iter_utf8 (&field, NULL), "alice");
    assert_true (bson_iter_init_find (&field, &file, "complete") && bson_iter_as_bool (&field));
    assert_true (bson_iter_init_find (&field, &file, "referenced") && bson_iter_as_bool (&field));
    s_assert_bson_type (&file, "ts", BSON_TYPE_DATE_TIME);
    bson_destroy (&file);
    assert_int_equal (s_count (database, "messages", referring), 2);
    assert_true (s_has_index (files, "{ \"id\" : 1 }", true));
    mongoc_collection_destroy (files);

    //  The first deletion leaves the file to the other message; the second
    //  takes it, its metadata and its chunks
    s_change_ok (broker, "general", 3, 1, NULL);
    assert_int_equal (s_count (database, "messages", referring), 1);
    assert_int_equal (s_count (database, "fs.chunks", of_file), 1);
    s_change_ok (broker, "general", 4, 2, NULL);
    assert_int_equal (s_count (database, "messages", referring), 0);
    assert_int_equal (s_count (database, "files", the_file), 0);
    assert_int_equal (s_count (database, "fs.files", bucket_file), 0);
    assert_int_equal (s_count (database, "fs.chunks", of_file), 0);
    bson_destroy (bucket_file);
    bson_destroy (referring);
    bson_destroy (the_file);
    bson_destroy (of_file);
    mongoc_database_destroy (database);
    mongoc_client_destroy (client);
    sc_broker_destroy (&broker);
    s_server_stop (&server);
    zstr_free (&option);
}


//  --------------------------------------------------------------------------
//  Files in a GridFS bucket (schema version 15)

#define S_BLOB_SIZE 10000

//  size bytes that repeat at no chunk size used here
static uint8_t *
s_pattern (size_t size, uint32_t seed)
{
    uint8_t *bytes = (uint8_t *) malloc (size);
    assert_non_null (bytes);
    for (size_t index = 0; index < size; index++) {
        seed = seed * 1103515245u + 12345u;
        bytes [index] = (uint8_t) (seed >> 16);
    }
    return bytes;
}

//  Starts the plugin on a database with GridFS chunks of chunk_size bytes
//  (0: the default)
static sc_broker_t *
s_start_chunked (const char *uri_option, int chunk_size)
{
    char chunk_option [64];
    snprintf (chunk_option, sizeof chunk_option, "store-mongo.file_chunk_size=%d", chunk_size);
    const char *options [] = { uri_option, chunk_option };
    sc_broker_t *broker = sc_broker_new ();
    char error [512];
    if (sc_broker_start (broker, STORE_MONGO_PLUGIN, options, chunk_size ? 2 : 1,
                         error, sizeof error))
        fail_msg ("the plugin did not start: %s", error);
    return broker;
}

//  alice's file id of size bytes, "blob.bin"
static void
s_blob_create (sc_broker_t *broker, const char *id, uint64_t size)
{
    pl_pack_t body;
    sc_body_init (&body, 7);
    pl_pack_kstr (&body, "id", id);
    pl_pack_kstr (&body, "user", "Alice");
    pl_pack_kstr (&body, "name", "blob.bin");
    pl_pack_kstr (&body, "type", "application/octet-stream");
    pl_pack_kuint (&body, "size", size);
    pl_pack_kint (&body, "ts", 1718454900000);
    pl_pack_kuint (&body, "quota", 0);
    s_expect (broker, sc_broker_send_body (broker, "store.file.create", &body), NULL);
}

static void
s_blob_write (sc_broker_t *broker, const char *id, uint64_t offset, const uint8_t *data,
              size_t size)
{
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "id", id);
    pl_pack_kuint (&body, "offset", offset);
    pl_pack_str (&body, "data");
    msgpack_pack_bin_with_body (&body.packer, data, size);
    s_expect (broker, sc_broker_send_body (broker, "store.file.write", &body), NULL);
}

static void
s_blob_commit (sc_broker_t *broker, const char *id)
{
    pl_pack_t body;
    sc_body_init (&body, 1);
    pl_pack_kstr (&body, "id", id);
    s_expect (broker, sc_broker_send_body (broker, "store.file.commit", &body), NULL);
}

//  Asserts that store.file.read of [offset, offset + length) gives expected
static void
s_blob_read_equals (sc_broker_t *broker, const char *id, uint64_t offset, uint64_t length,
                    const uint8_t *expected)
{
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "id", id);
    pl_pack_kuint (&body, "offset", offset);
    pl_pack_kuint (&body, "length", length);
    sc_reply_t *reply = sc_broker_call_body (broker, "store.file.read", &body);
    assert_non_null (reply);
    if (reply->code)
        fail_msg ("store.file.read answered %s: %s", reply->code, reply->message);
    const msgpack_object *data = sc_reply_field (reply, "data");
    assert_non_null (data);
    assert_int_equal (data->type, MSGPACK_OBJECT_BIN);
    assert_int_equal (data->via.bin.size, length);
    assert_memory_equal (data->via.bin.ptr, expected, length);
    sc_reply_destroy (&reply);
}

//  The _id of parley's files document of id, which the bucket shares
static void
s_file_oid (mongoc_database_t *database, const char *id, bson_oid_t *oid)
{
    mongoc_collection_t *files = mongoc_database_get_collection (database, "files");
    bson_t *filter = BCON_NEW ("id", BCON_UTF8 (id));
    bson_t file = BSON_INITIALIZER;
    bson_free (s_only_document (files, filter, &file));
    bson_iter_t iter;
    assert_true (bson_iter_init_find (&iter, &file, "_id") && BSON_ITER_HOLDS_OID (&iter));
    bson_oid_copy (bson_iter_oid (&iter), oid);
    bson_destroy (&file);
    bson_destroy (filter);
    mongoc_collection_destroy (files);
}

//  The file's bytes as libmongoc's GridFS bucket reads them, through its
//  download stream (it checks every chunk's n and size against the
//  fs.files document); NULL when the driver cannot open the file
static uint8_t *
s_gridfs_download (mongoc_database_t *database, const char *id, size_t *size_p)
{
    bson_value_t file_id = { .value_type = BSON_TYPE_OID };
    s_file_oid (database, id, &file_id.value.v_oid);
    bson_error_t error;
    mongoc_gridfs_bucket_t *bucket = mongoc_gridfs_bucket_new (database, NULL, NULL, &error);
    assert_non_null (bucket);
    mongoc_stream_t *stream = mongoc_gridfs_bucket_open_download_stream (bucket, &file_id,
                                                                          &error);
    *size_p = 0;
    uint8_t *bytes = NULL;
    if (stream) {
        bytes = (uint8_t *) malloc (S_BLOB_SIZE + 1);
        assert_non_null (bytes);
        ssize_t got;
        while ((got = mongoc_stream_read (stream, bytes + *size_p, S_BLOB_SIZE + 1 - *size_p,
                                          0, 0)) > 0)
            *size_p += (size_t) got;
        if (got < 0) {
            assert_true (mongoc_gridfs_bucket_stream_error (stream, &error));
            fail_msg ("the GridFS download stream failed: %s", error.message);
        }
        mongoc_stream_destroy (stream);
    }
    mongoc_gridfs_bucket_destroy (bucket);
    return bytes;
}

//  Asserts that the driver reads the file as expected (size bytes)
static void
s_gridfs_equals (mongoc_database_t *database, const char *id, const uint8_t *expected,
                 size_t size)
{
    size_t got = 0;
    uint8_t *bytes = s_gridfs_download (database, id, &got);
    if (!bytes)
        fail_msg ("libmongoc's GridFS bucket cannot open the file %s", id);
    assert_int_equal (got, size);
    assert_memory_equal (bytes, expected, size);
    free (bytes);
}

//  The client and database of the plugin's uri option
static mongoc_database_t *
s_database_of (const char *option, mongoc_client_t **client_p)
{
    const char *uri_text = strchr (option, '=') + 1;
    *client_p = mongoc_client_new (uri_text);
    assert_non_null (*client_p);
    return mongoc_client_get_database (*client_p, strrchr (uri_text, '/') + 1);
}

//  The fs.files document of id: the GridFS spec's fields, as libmongoc's
//  own upload writes them
static void
s_assert_bucket_document (mongoc_database_t *database, const char *id, int64_t length,
                          int32_t chunk_size)
{
    bson_oid_t oid;
    s_file_oid (database, id, &oid);
    mongoc_collection_t *fs_files = mongoc_database_get_collection (database, "fs.files");
    bson_t *filter = BCON_NEW ("_id", BCON_OID (&oid));
    bson_t document = BSON_INITIALIZER;
    bson_free (s_only_document (fs_files, filter, &document));
    bson_iter_t field;
    //  length is written as an int64; the stand-in gives numbers back in
    //  the smallest type that holds them (libmongoc reads any)
    assert_true (bson_iter_init_find (&field, &document, "length")
                 && BSON_ITER_HOLDS_NUMBER (&field));
    assert_int_equal (bson_iter_as_int64 (&field), length);
    assert_true (bson_iter_init_find (&field, &document, "chunkSize")
                 && BSON_ITER_HOLDS_INT32 (&field));
    assert_int_equal (bson_iter_int32 (&field), chunk_size);
    s_assert_bson_type (&document, "uploadDate", BSON_TYPE_DATE_TIME);
    assert_true (bson_iter_init_find (&field, &document, "filename"));
    assert_string_equal (bson_iter_utf8 (&field, NULL), "blob.bin");
    bson_iter_t user;
    assert_true (bson_iter_init (&field, &document)
                 && bson_iter_find_descendant (&field, "metadata.user", &user));
    assert_string_equal (bson_iter_utf8 (&user, NULL), "alice");
    bson_destroy (&document);
    bson_destroy (filter);
    mongoc_collection_destroy (fs_files);
}

static void
test_files_are_a_gridfs_bucket_that_libmongoc_reads (void **state)
{
    s_server_t server = { 0 };
    s_server_start (&server, 0);
    char *option = s_uri_option (server.port);
    sc_broker_t *broker = s_start_chunked (option, 1000);
    s_expect (broker, s_send_user_create (broker, "alice"), NULL);
    uint8_t *blob = s_pattern (S_BLOB_SIZE, 7);
    s_blob_create (broker, "blob", S_BLOB_SIZE);
    //  Pieces that start and end inside chunks, and one of three bytes
    const size_t pieces [] = { 777, 1500, 3, 2720, 4000, 1000 };
    size_t offset = 0;
    mongoc_client_t *client;
    mongoc_database_t *database = s_database_of (option, &client);
    for (size_t index = 0; index < sizeof pieces / sizeof pieces [0]; index++) {
        s_blob_write (broker, "blob", offset, blob + offset, pieces [index]);
        offset += pieces [index];
        //  Not committed: GridFS readers see no file
        size_t got;
        assert_null (s_gridfs_download (database, "blob", &got));
    }
    assert_int_equal (offset, S_BLOB_SIZE);
    s_blob_commit (broker, "blob");
    s_gridfs_equals (database, "blob", blob, S_BLOB_SIZE);
    s_assert_bucket_document (database, "blob", S_BLOB_SIZE, 1000);
    bson_oid_t oid;
    s_file_oid (database, "blob", &oid);
    bson_t *of_blob = BCON_NEW ("files_id", BCON_OID (&oid));
    assert_int_equal (s_count (database, "fs.chunks", of_blob), 10);
    bson_destroy (of_blob);
    mongoc_collection_t *chunks = mongoc_database_get_collection (database, "fs.chunks");
    assert_true (s_has_index (chunks, "{ \"files_id\" : 1, \"n\" : 1 }", true));
    mongoc_collection_destroy (chunks);
    mongoc_collection_t *fs_files = mongoc_database_get_collection (database, "fs.files");
    assert_true (s_has_index (fs_files, "{ \"filename\" : 1, \"uploadDate\" : 1 }", false));
    mongoc_collection_destroy (fs_files);
    //  Parley reads ranges across chunk boundaries; after a restart with
    //  the default chunk size the file keeps its own, and a new file of
    //  the default size (one chunk) is read by the driver too
    s_blob_read_equals (broker, "blob", 999, 1002, blob + 999);
    sc_broker_destroy (&broker);
    broker = s_start_chunked (option, 0);
    s_blob_read_equals (broker, "blob", 0, S_BLOB_SIZE, blob);
    s_blob_read_equals (broker, "blob", 9999, 1, blob + 9999);
    s_blob_create (broker, "small", 5000);
    s_blob_write (broker, "small", 0, blob, 2500);
    s_blob_write (broker, "small", 2500, blob + 2500, 2500);
    s_blob_commit (broker, "small");
    s_gridfs_equals (database, "small", blob, 5000);
    s_assert_bucket_document (database, "small", 5000, 255 * 1024);
    free (blob);
    mongoc_database_destroy (database);
    mongoc_client_destroy (client);
    sc_broker_destroy (&broker);
    s_server_stop (&server);
    zstr_free (&option);
}

//  Inserts a document of schema 13's files: alice's blob.bin, id, of size
//  bytes, written of them
static void
s_insert_v13_file (mongoc_database_t *database, const char *id, int64_t size, int64_t written)
{
    mongoc_collection_t *files = mongoc_database_get_collection (database, "files");
    bson_oid_t oid;
    bson_oid_init (&oid, NULL);
    bson_t *document = BCON_NEW ("_id", BCON_OID (&oid), "id", BCON_UTF8 (id),
                                 "user", BCON_UTF8 ("alice"), "user_key", BCON_UTF8 ("alice"),
                                 "name", BCON_UTF8 ("blob.bin"),
                                 "type", BCON_UTF8 ("application/octet-stream"),
                                 "size", BCON_INT64 (size), "ts", BCON_DATE_TIME (1718454900000),
                                 "written", BCON_INT64 (written),
                                 "complete", BCON_BOOL (written == size));
    assert_true (mongoc_collection_insert_one (files, document, NULL, NULL, NULL));
    bson_destroy (document);
    mongoc_collection_destroy (files);
}

//  Inserts a chunk of schema 13's file_chunks: bytes [from, to) of data
static void
s_insert_v13_chunk (mongoc_database_t *database, const char *id, const uint8_t *data,
                    int64_t from, int64_t to)
{
    mongoc_collection_t *chunks = mongoc_database_get_collection (database, "file_chunks");
    bson_t *chunk = BCON_NEW ("file", BCON_UTF8 (id), "offset", BCON_INT64 (from),
                              "end", BCON_INT64 (to),
                              "data", BCON_BIN (BSON_SUBTYPE_BINARY, data + from,
                                                (uint32_t) (to - from)));
    assert_true (mongoc_collection_insert_one (chunks, chunk, NULL, NULL, NULL));
    bson_destroy (chunk);
    mongoc_collection_destroy (chunks);
}

static void
s_set_schema (mongoc_database_t *database, int64_t version)
{
    mongoc_collection_t *meta = mongoc_database_get_collection (database, "meta");
    bson_t *key = BCON_NEW ("key", BCON_UTF8 ("schema"));
    bson_t *update = BCON_NEW ("$set", "{", "version", BCON_INT64 (version), "}");
    assert_true (mongoc_collection_update_one (meta, key, update, NULL, NULL, NULL));
    bson_destroy (update);
    bson_destroy (key);
    mongoc_collection_destroy (meta);
}

static void
test_schema_15_moves_file_chunks_into_the_bucket (void **state)
{
    s_server_t server = { 0 };
    s_server_start (&server, 0);
    char *option = s_uri_option (server.port);
    sc_broker_t *broker = s_start_chunked (option, 0);
    s_expect (broker, s_send_user_create (broker, "alice"), NULL);
    sc_broker_destroy (&broker);
    //  As schema 13 left it: a complete file in two pieces; an upload
    //  stopped at 1200 of 3000 bytes, with a piece after it that an attempt
    //  left before its `written` moved
    mongoc_client_t *client;
    mongoc_database_t *database = s_database_of (option, &client);
    uint8_t *blob = s_pattern (S_BLOB_SIZE, 13);
    s_insert_v13_file (database, "done", 2500, 2500);
    s_insert_v13_chunk (database, "done", blob, 0, 1100);
    s_insert_v13_chunk (database, "done", blob, 1100, 2500);
    s_insert_v13_file (database, "half", 3000, 1200);
    s_insert_v13_chunk (database, "half", blob, 0, 700);
    s_insert_v13_chunk (database, "half", blob, 700, 1200);
    s_insert_v13_chunk (database, "half", blob, 1200, 1500);
    s_set_schema (database, 13);
    assert_int_equal (s_count (database, "file_chunks", NULL), 5);

    sc_log_clear (s_log);
    broker = s_start_chunked (option, 1000);
    assert_true (s_await_service (broker, 15000));
    assert_true (sc_log_says (s_log, "schema 15: 2 files", "(3700 bytes)"));
    sc_reply_t *info = s_info (broker);
    assert_non_null (info);
    assert_int_equal (sc_reply_field (info, "schema_version")->via.u64, 15);
    sc_reply_destroy (&info);
    assert_int_equal (s_count (database, "file_chunks", NULL), 0);
    //  The complete file: in the bucket, read by the driver and by parley
    s_gridfs_equals (database, "done", blob, 2500);
    s_assert_bucket_document (database, "done", 2500, 1000);
    s_blob_read_equals (broker, "done", 0, 2500, blob);
    //  The stopped upload: not in GridFS until committed; it goes on from
    //  its 1200 bytes
    size_t got;
    assert_null (s_gridfs_download (database, "half", &got));
    s_blob_write (broker, "half", 1200, blob + 1200, 1800);
    s_blob_commit (broker, "half");
    s_gridfs_equals (database, "half", blob, 3000);
    s_blob_read_equals (broker, "half", 0, 3000, blob);
    //  Once done, a restart moves nothing
    sc_broker_destroy (&broker);
    sc_log_clear (s_log);
    broker = s_start_chunked (option, 1000);
    assert_false (sc_log_says (s_log, "schema 15", "moved"));
    s_gridfs_equals (database, "done", blob, 2500);
    free (blob);
    mongoc_database_destroy (database);
    mongoc_client_destroy (client);
    sc_broker_destroy (&broker);
    s_server_stop (&server);
    zstr_free (&option);
}

//  A chunk's n is an int32: with chunks of 1 byte, a file of 2^31 - 1
//  bytes can be created, one more byte is bad_request
static void
test_a_file_of_more_chunks_than_gridfs_numbers_is_refused (void **state)
{
    s_server_t server = { 0 };
    s_server_start (&server, 0);
    char *option = s_uri_option (server.port);
    sc_broker_t *broker = s_start_chunked (option, 1);
    s_expect (broker, s_send_user_create (broker, "alice"), NULL);
    const uint64_t sizes [] = { 2147483648u, 2147483647u };
    const char *ids [] = { "too-big", "just-fits" };
    const char *codes [] = { "bad_request", NULL };
    for (size_t index = 0; index < 2; index++) {
        pl_pack_t body;
        sc_body_init (&body, 7);
        pl_pack_kstr (&body, "id", ids [index]);
        pl_pack_kstr (&body, "user", "alice");
        pl_pack_kstr (&body, "name", "big.bin");
        pl_pack_kstr (&body, "type", "application/octet-stream");
        pl_pack_kuint (&body, "size", sizes [index]);
        pl_pack_kint (&body, "ts", 1718454900000);
        pl_pack_kuint (&body, "quota", 0);
        s_expect (broker, sc_broker_send_body (broker, "store.file.create", &body), codes [index]);
    }
    mongoc_client_t *client;
    mongoc_database_t *database = s_database_of (option, &client);
    bson_t *refused = BCON_NEW ("id", BCON_UTF8 ("too-big"));
    assert_int_equal (s_count (database, "files", refused), 0);
    bson_destroy (refused);
    mongoc_database_destroy (database);
    mongoc_client_destroy (client);
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
    s_log = sc_log_new (S_LOG_ENDPOINT);
    assert (s_log);
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_malformed_uri_refused_at_start_with_the_reason),
        cmocka_unit_test (test_chunk_size_out_of_range_refused_at_start),
        cmocka_unit_test (test_unreachable_server_starts_and_answers_unavailable_within_seconds),
        cmocka_unit_test (test_server_that_comes_up_later_is_served),
        cmocka_unit_test (test_server_that_stops_is_answered_unavailable_then_served_again),
        cmocka_unit_test (test_duplicates_inside_one_batch_conflict_and_spare_the_rest),
        cmocka_unit_test (test_joins_from_two_instances_at_once_never_pass_max_participants),
        cmocka_unit_test (test_room_and_timeline_documents_have_the_seed_shape_and_indexes),
        cmocka_unit_test (test_pm_batch_settles_duplicates_and_documents_have_their_shape_and_indexes),
        cmocka_unit_test (test_deleted_texts_leave_the_documents),
        cmocka_unit_test (test_words_follow_the_text_and_the_migration_fills_them),
        cmocka_unit_test (test_a_files_bytes_go_with_its_last_reference),
        cmocka_unit_test (test_files_are_a_gridfs_bucket_that_libmongoc_reads),
        cmocka_unit_test (test_schema_15_moves_file_chunks_into_the_bucket),
        cmocka_unit_test (test_a_file_of_more_chunks_than_gridfs_numbers_is_refused),
    };
    int failed = cmocka_run_group_tests (tests, NULL, NULL);
    sc_log_destroy (&s_log);
    return failed;
}
