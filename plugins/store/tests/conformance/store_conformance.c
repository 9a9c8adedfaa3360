/*  =========================================================================
    store-conformance - one suite for every store plugin (proto/STORE.md)

    Usage: store-conformance PLUGIN.so [NAME.KEY=VALUE...]

    Loads the store plugin through the real plugin host (br_host_start) and
    plays the broker itself (sc_broker), so the plugin sees exactly what it
    sees in production: HELLO/WELCOME, then REQUEST envelopes, answered by
    REPLY envelopes. Every test gets a fresh store: in option values,
    @TMPDIR@ becomes a new temporary folder and @UNIQUE@ a new token (for a
    Mongo database name), so store-sqlite runs with
        store-sqlite.path=@TMPDIR@/parley.db

    Cases marked REAL_DB need a real database's behaviour (unique indexes
    enforced, data that survives a restart). Set STORE_CONFORMANCE_SKIP_REAL_DB=1
    to skip them against a stand-in server that lacks it (NOTES.md: the
    JavaScript Mongo stand-in does not enforce unique indexes). Set
    STORE_CONFORMANCE_FILTER to a cmocka pattern (test_timeline*) to run a
    part of the suite.
    =========================================================================
*/

//  nftw
#define _GNU_SOURCE
#include "sc_broker.h"
#include "parley_plugin.h"

#include <ftw.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static const char *s_plugin_path;           //  argv [1]
static const char *const *s_option_templates;   //  argv [2..]
static size_t s_option_count;
static bool s_skip_real_db;                 //  STORE_CONFORMANCE_SKIP_REAL_DB
static unsigned s_fixture_count;            //  for @UNIQUE@

#define REAL_DB() do { if (s_skip_real_db) skip (); } while (0)

//  One test's store
typedef struct {
    sc_broker_t *broker;            //  the fake broker, plugin started
    char folder [256];              //  @TMPDIR@
    char **options;                 //  expanded options
} fixture_t;

//  --------------------------------------------------------------------------
//  Fixture

//  Replaces every @TMPDIR@ and @UNIQUE@ in text. Caller owns return value.
static char *
s_expand (const char *text, const char *folder, const char *unique)
{
    char *result = strdup (text);
    const char *names [] = { "@TMPDIR@", "@UNIQUE@" };
    const char *values [] = { folder, unique };
    for (int index = 0; index < 2; index++) {
        char *at;
        while ((at = strstr (result, names [index]))) {
            *at = 0;
            char *next = zsys_sprintf ("%s%s%s", result, values [index],
                                       at + strlen (names [index]));
            free (result);
            result = next;
        }
    }
    return result;
}

static int
s_remove_entry (const char *path, const struct stat *status, int flag, struct FTW *ftw)
{
    return remove (path);
}

static void
s_fixture_start (fixture_t *fixture)
{
    char error [512];
    int rc = sc_broker_start (fixture->broker, s_plugin_path,
                              (const char *const *) fixture->options, s_option_count,
                              error, sizeof error);
    if (rc)
        fail_msg ("cannot start %s: %s", s_plugin_path, error);
}

static int
s_setup (void **state)
{
    fixture_t *fixture = (fixture_t *) zmalloc (sizeof (fixture_t));
    const char *tmp = getenv ("TMPDIR") ? getenv ("TMPDIR") : "/tmp";
    snprintf (fixture->folder, sizeof fixture->folder, "%s/store-conformance-XXXXXX", tmp);
    if (!mkdtemp (fixture->folder)) {
        free (fixture);
        return -1;
    }
    char unique [64];
    snprintf (unique, sizeof unique, "parley_conformance_%d_%u", (int) getpid (),
              ++s_fixture_count);
    fixture->options = (char **) calloc (s_option_count + 1, sizeof (char *));
    for (size_t index = 0; index < s_option_count; index++)
        fixture->options [index] = s_expand (s_option_templates [index], fixture->folder, unique);
    fixture->broker = sc_broker_new ();
    *state = fixture;
    s_fixture_start (fixture);
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_broker_destroy (&fixture->broker);
    nftw (fixture->folder, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (size_t index = 0; index < s_option_count; index++)
        free (fixture->options [index]);
    free (fixture->options);
    free (fixture);
    return 0;
}


//  --------------------------------------------------------------------------
//  Requests

//  Sends the body and destroys it; returns the reply (asserted present)
static sc_reply_t *
s_call (fixture_t *fixture, const char *type, pl_pack_t *body)
{
    sc_reply_t *reply = sc_broker_call_body (fixture->broker, type, body);
    assert_non_null (reply);
    return reply;
}

static uint64_t
s_send (fixture_t *fixture, const char *type, pl_pack_t *body)
{
    uint64_t rid = sc_broker_send_body (fixture->broker, type, body);
    assert_true (rid > 0);
    return rid;
}

static void
s_assert_ok (sc_reply_t *reply)
{
    if (reply->code)
        fail_msg ("expected ok, got %s: %s", reply->code, reply->message);
    assert_true (reply->body_valid);
}

static void
s_assert_error (sc_reply_t *reply, const char *code)
{
    if (!reply->code)
        fail_msg ("expected %s, got ok", code);
    assert_string_equal (reply->code, code);
    assert_non_null (reply->message);
    assert_true (strlen (reply->message) > 0);
}

static void
s_assert_str (const msgpack_object *object, const char *value)
{
    assert_non_null (object);
    if (!sc_object_streq (object, value))
        fail_msg ("expected string '%s'", value);
}

static void
s_assert_int (const msgpack_object *object, int64_t value)
{
    assert_non_null (object);
    assert_true (object->type == MSGPACK_OBJECT_POSITIVE_INTEGER
              || object->type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal (object->via.i64, value);
}

static void
s_assert_nil (const msgpack_object *object)
{
    assert_non_null (object);
    assert_int_equal (object->type, MSGPACK_OBJECT_NIL);
}

static void
s_user_create_body (pl_pack_t *body, const char *name, const char *hash, int64_t created_at)
{
    sc_body_init (body, 3);
    pl_pack_kstr (body, "name", name);
    pl_pack_kstr (body, "password_hash", hash);
    pl_pack_kint (body, "created_at", created_at);
}

static sc_reply_t *
s_user_create (fixture_t *fixture, const char *name, const char *hash, int64_t created_at)
{
    pl_pack_t body;
    s_user_create_body (&body, name, hash, created_at);
    return s_call (fixture, "store.user.create", &body);
}

static void
s_user_create_ok (fixture_t *fixture, const char *name)
{
    sc_reply_t *reply = s_user_create (fixture, name, "$argon2id$v=19$m=65536,t=2,p=1$x$y", 1000);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
}

static sc_reply_t *
s_by_name (fixture_t *fixture, const char *type, const char *key, const char *value)
{
    pl_pack_t body;
    sc_body_init (&body, 1);
    pl_pack_kstr (&body, key, value);
    return s_call (fixture, type, &body);
}

static void
s_token_put_body (pl_pack_t *body, const char *hash, const char *user, int64_t created_at,
                  int64_t expires_at)
{
    sc_body_init (body, 4);
    pl_pack_kstr (body, "token_hash", hash);
    pl_pack_kstr (body, "user", user);
    pl_pack_kint (body, "created_at", created_at);
    pl_pack_kint (body, "expires_at", expires_at);
}

static sc_reply_t *
s_token_put (fixture_t *fixture, const char *hash, const char *user, int64_t expires_at)
{
    pl_pack_t body;
    s_token_put_body (&body, hash, user, 2000, expires_at);
    return s_call (fixture, "store.token.put", &body);
}

//  store.user.seen with count (name, last_seen) pairs
static void
s_seen_body (pl_pack_t *body, size_t count, const char *const *names, const int64_t *times)
{
    sc_body_init (body, 1);
    pl_pack_str (body, "users");
    msgpack_pack_array (&body->packer, count);
    for (size_t index = 0; index < count; index++) {
        msgpack_pack_map (&body->packer, 2);
        pl_pack_kstr (body, "name", names [index]);
        pl_pack_kint (body, "last_seen", times [index]);
    }
}

//  store.user.list; after may be NULL, limit 0 for none
static sc_reply_t *
s_user_list (fixture_t *fixture, const char *after, int64_t limit)
{
    pl_pack_t body;
    sc_body_init (&body, (after ? 1 : 0) + (limit ? 1 : 0));
    if (after)
        pl_pack_kstr (&body, "after", after);
    if (limit)
        pl_pack_kint (&body, "limit", limit);
    return s_call (fixture, "store.user.list", &body);
}

static const msgpack_object *
s_users (sc_reply_t *reply)
{
    const msgpack_object *users = sc_reply_field (reply, "users");
    assert_non_null (users);
    assert_int_equal (users->type, MSGPACK_OBJECT_ARRAY);
    return users;
}


//  --------------------------------------------------------------------------
//  The plugin and store.info

static void
test_store_route_is_internal_store_prefix (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    assert_non_null (sc_broker_route_prefix (fixture->broker));
    assert_string_equal (sc_broker_route_prefix (fixture->broker), "store.");
    assert_true (sc_broker_route_flags (fixture->broker) & PARLEY_ROUTE_INTERNAL);
    assert_false (sc_broker_route_flags (fixture->broker) & PARLEY_ROUTE_PUBLIC);
}

static void
test_store_info_names_backend_and_schema (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_reply_t *reply = s_call (fixture, "store.info", NULL);
    s_assert_ok (reply);
    const msgpack_object *backend = sc_reply_field (reply, "backend");
    assert_non_null (backend);
    assert_int_equal (backend->type, MSGPACK_OBJECT_STR);
    const msgpack_object *version = sc_reply_field (reply, "schema_version");
    assert_non_null (version);
    assert_int_equal (version->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_true (version->via.u64 >= 1);
    sc_reply_destroy (&reply);
}

static void
test_unknown_store_type_gets_unknown_type (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_reply_t *reply = s_call (fixture, "store.nothing.here", NULL);
    s_assert_error (reply, "unknown_type");
    sc_reply_destroy (&reply);
}

static void
test_body_not_a_map_gets_bad_request (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    const char *types [] = { "store.user.create", "store.user.get", "store.user.seen",
                             "store.token.put", "store.token.get", "store.token.delete" };
    static const uint8_t array [] = { 0x91, 0x01 };         //  [1]
    static const uint8_t truncated [] = { 0x82, 0xa4, 'n' };
    for (size_t index = 0; index < sizeof types / sizeof types [0]; index++) {
        sc_reply_t *reply = sc_broker_call (fixture->broker, types [index], array, sizeof array);
        assert_non_null (reply);
        s_assert_error (reply, "bad_request");
        sc_reply_destroy (&reply);
        reply = sc_broker_call (fixture->broker, types [index], truncated, sizeof truncated);
        assert_non_null (reply);
        s_assert_error (reply, "bad_request");
        sc_reply_destroy (&reply);
    }
}


//  --------------------------------------------------------------------------
//  Users

static void
test_user_create_then_get_by_any_case (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_reply_t *reply = s_user_create (fixture, "Alice", "hash-of-alice", 1700000000123);
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "name"), "Alice");
    s_assert_int (sc_reply_field (reply, "created_at"), 1700000000123);
    sc_reply_destroy (&reply);

    const char *spellings [] = { "Alice", "alice", "ALICE", "aLiCe" };
    for (size_t index = 0; index < 4; index++) {
        reply = s_by_name (fixture, "store.user.get", "name", spellings [index]);
        s_assert_ok (reply);
        s_assert_str (sc_reply_field (reply, "name"), "Alice");
        s_assert_str (sc_reply_field (reply, "password_hash"), "hash-of-alice");
        s_assert_int (sc_reply_field (reply, "created_at"), 1700000000123);
        s_assert_nil (sc_reply_field (reply, "last_seen"));
        sc_reply_destroy (&reply);
    }
}

static void
test_user_create_taken_name_in_other_case_conflicts (void **state)
{
    REAL_DB ();
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "Alice");
    const char *spellings [] = { "Alice", "ALICE", "alice" };
    for (size_t index = 0; index < 3; index++) {
        sc_reply_t *reply = s_user_create (fixture, spellings [index], "other-hash", 5);
        s_assert_error (reply, "conflict");
        sc_reply_destroy (&reply);
    }
    //  The first registration stands, untouched
    sc_reply_t *reply = s_by_name (fixture, "store.user.get", "name", "alice");
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "name"), "Alice");
    s_assert_str (sc_reply_field (reply, "password_hash"),
                  "$argon2id$v=19$m=65536,t=2,p=1$x$y");
    sc_reply_destroy (&reply);
}

static void
test_user_get_unknown_name_is_not_found (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_reply_t *reply = s_by_name (fixture, "store.user.get", "name", "nobody");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
}

static void
test_user_create_invalid_fields_get_bad_request_and_change_nothing (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    pl_pack_t body;
    sc_reply_t *reply;

    sc_body_init (&body, 2);                         //  no name
    pl_pack_kstr (&body, "password_hash", "h");
    pl_pack_kint (&body, "created_at", 1);
    reply = s_call (fixture, "store.user.create", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 3);                         //  name is a number
    pl_pack_kint (&body, "name", 42);
    pl_pack_kstr (&body, "password_hash", "h");
    pl_pack_kint (&body, "created_at", 1);
    reply = s_call (fixture, "store.user.create", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    reply = s_user_create (fixture, "", "h", 1);    //  empty name
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    char long_name [300];
    memset (long_name, 'a', sizeof long_name - 1);
    long_name [sizeof long_name - 1] = 0;
    reply = s_user_create (fixture, long_name, "h", 1);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    reply = s_user_create (fixture, "bob", "h", -1);    //  negative time
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 3);                         //  time is a string
    pl_pack_kstr (&body, "name", "bob");
    pl_pack_kstr (&body, "password_hash", "h");
    pl_pack_kstr (&body, "created_at", "2026-01-01T00:00:00.000Z");
    reply = s_call (fixture, "store.user.create", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 2);                         //  no password_hash
    pl_pack_kstr (&body, "name", "bob");
    pl_pack_kint (&body, "created_at", 1);
    reply = s_call (fixture, "store.user.create", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    reply = s_user_list (fixture, NULL, 0);
    s_assert_ok (reply);
    assert_int_equal (s_users (reply)->via.array.size, 0);
    sc_reply_destroy (&reply);
}

static void
test_user_list_of_empty_store_is_empty (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_reply_t *reply = s_user_list (fixture, NULL, 0);
    s_assert_ok (reply);
    assert_int_equal (s_users (reply)->via.array.size, 0);
    const msgpack_object *more = sc_reply_field (reply, "more");
    assert_non_null (more);
    assert_int_equal (more->type, MSGPACK_OBJECT_BOOLEAN);
    assert_false (more->via.boolean);
    sc_reply_destroy (&reply);
}

static void
test_user_list_sorted_by_lower_cased_name_with_last_seen (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    const char *created [] = { "carol", "Dave", "bob", "Alice", "_under" };
    for (size_t index = 0; index < 5; index++)
        s_user_create_ok (fixture, created [index]);
    pl_pack_t body;
    const char *names [] = { "BOB" };
    const int64_t times [] = { 1700000000999 };
    s_seen_body (&body, 1, names, times);
    sc_reply_t *reply = s_call (fixture, "store.user.seen", &body);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);

    reply = s_user_list (fixture, NULL, 0);
    s_assert_ok (reply);
    const msgpack_object *users = s_users (reply);
    //  Byte order of the lower-cased names: '_' (0x5f) sorts before 'a'
    const char *expected [] = { "_under", "Alice", "bob", "carol", "Dave" };
    assert_int_equal (users->via.array.size, 5);
    for (size_t index = 0; index < 5; index++) {
        const msgpack_object *user = &users->via.array.ptr [index];
        s_assert_str (sc_map_field (user, "name"), expected [index]);
        s_assert_int (sc_map_field (user, "created_at"), 1000);
        if (strcmp (expected [index], "bob") == 0)
            s_assert_int (sc_map_field (user, "last_seen"), 1700000000999);
        else
            s_assert_nil (sc_map_field (user, "last_seen"));
    }
    sc_reply_destroy (&reply);
}

static void
test_user_list_pages_with_after_and_limit (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    const char *created [] = { "e5", "A1", "c3", "B2", "d4" };
    for (size_t index = 0; index < 5; index++)
        s_user_create_ok (fixture, created [index]);
    const char *expected [] = { "A1", "B2", "c3", "d4", "e5" };
    const char *after = NULL;
    char last [16] = "";
    size_t seen = 0;
    for (int page = 0; page < 3; page++) {
        sc_reply_t *reply = s_user_list (fixture, after, 2);
        s_assert_ok (reply);
        const msgpack_object *users = s_users (reply);
        assert_int_equal (users->via.array.size, page < 2 ? 2 : 1);
        for (uint32_t index = 0; index < users->via.array.size; index++) {
            const msgpack_object *name = sc_map_field (&users->via.array.ptr [index], "name");
            s_assert_str (name, expected [seen++]);
            snprintf (last, sizeof last, "%.*s", (int) name->via.str.size, name->via.str.ptr);
        }
        const msgpack_object *more = sc_reply_field (reply, "more");
        assert_non_null (more);
        assert_int_equal (more->type, MSGPACK_OBJECT_BOOLEAN);
        assert_int_equal (more->via.boolean, page < 2);
        sc_reply_destroy (&reply);
        after = last;
    }
    assert_int_equal (seen, 5);

    //  'after' compares without regard to case too
    sc_reply_t *reply = s_user_list (fixture, "b2", 0);
    s_assert_ok (reply);
    assert_int_equal (s_users (reply)->via.array.size, 3);
    sc_reply_destroy (&reply);

    const int64_t bad_limits [] = { -1, 1001 };
    for (size_t index = 0; index < 2; index++) {
        reply = s_user_list (fixture, NULL, bad_limits [index]);
        s_assert_error (reply, "bad_request");
        sc_reply_destroy (&reply);
    }
    pl_pack_t body;
    sc_body_init (&body, 1);
    pl_pack_kint (&body, "limit", 0);
    reply = s_call (fixture, "store.user.list", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
}

static void
test_user_seen_sets_many_and_skips_unknown_names (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "Bob");
    pl_pack_t body;
    const char *names [] = { "ALICE", "bob", "ghost" };
    const int64_t times [] = { 100, 200, 300 };
    s_seen_body (&body, 3, names, times);
    sc_reply_t *reply = s_call (fixture, "store.user.seen", &body);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "updated"), 2);
    sc_reply_destroy (&reply);

    reply = s_by_name (fixture, "store.user.get", "name", "alice");
    s_assert_int (sc_reply_field (reply, "last_seen"), 100);
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.user.get", "name", "bob");
    s_assert_int (sc_reply_field (reply, "last_seen"), 200);
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.user.get", "name", "ghost");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);

    //  The value given is set, even an earlier one; a name listed twice
    //  takes the later entry
    const char *again [] = { "alice", "bob", "BOB" };
    const int64_t later [] = { 50, 7, 9 };
    s_seen_body (&body, 3, again, later);
    reply = s_call (fixture, "store.user.seen", &body);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.user.get", "name", "alice");
    s_assert_int (sc_reply_field (reply, "last_seen"), 50);
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.user.get", "name", "bob");
    s_assert_int (sc_reply_field (reply, "last_seen"), 9);
    sc_reply_destroy (&reply);
}

static void
test_user_seen_invalid_entries_get_bad_request_and_set_nothing (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    pl_pack_t body;
    sc_reply_t *reply;

    sc_body_init (&body, 0);                         //  no users
    reply = s_call (fixture, "store.user.seen", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    s_seen_body (&body, 0, NULL, NULL);             //  empty array
    reply = s_call (fixture, "store.user.seen", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    //  A valid entry, then one without last_seen: neither is applied
    sc_body_init (&body, 1);
    pl_pack_str (&body, "users");
    msgpack_pack_array (&body.packer, 2);
    msgpack_pack_map (&body.packer, 2);
    pl_pack_kstr (&body, "name", "alice");
    pl_pack_kint (&body, "last_seen", 77);
    msgpack_pack_map (&body.packer, 1);
    pl_pack_kstr (&body, "name", "alice");
    reply = s_call (fixture, "store.user.seen", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 1);                         //  an entry that is not a map
    pl_pack_str (&body, "users");
    msgpack_pack_array (&body.packer, 1);
    msgpack_pack_str_with_body (&body.packer, "alice", 5);
    reply = s_call (fixture, "store.user.seen", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    reply = s_by_name (fixture, "store.user.get", "name", "alice");
    s_assert_ok (reply);
    s_assert_nil (sc_reply_field (reply, "last_seen"));
    sc_reply_destroy (&reply);
}


//  --------------------------------------------------------------------------
//  Tokens

static void
test_token_put_get_delete_round_trip (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "Alice");
    sc_reply_t *reply = s_token_put (fixture, "token-hash-1", "alice", 1700000000000);
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "user"), "Alice");
    sc_reply_destroy (&reply);

    reply = s_by_name (fixture, "store.token.get", "token_hash", "token-hash-1");
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "token_hash"), "token-hash-1");
    s_assert_str (sc_reply_field (reply, "user"), "Alice");
    s_assert_int (sc_reply_field (reply, "created_at"), 2000);
    s_assert_int (sc_reply_field (reply, "expires_at"), 1700000000000);
    sc_reply_destroy (&reply);

    reply = s_by_name (fixture, "store.token.delete", "token_hash", "token-hash-1");
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "user"), "Alice");
    sc_reply_destroy (&reply);

    reply = s_by_name (fixture, "store.token.get", "token_hash", "token-hash-1");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.token.delete", "token_hash", "token-hash-1");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
}

static void
test_token_get_returns_expired_token (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    sc_reply_t *reply = s_token_put (fixture, "old", "alice", 1);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.token.get", "token_hash", "old");
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "expires_at"), 1);
    sc_reply_destroy (&reply);
}

static void
test_token_put_for_unknown_user_is_not_found (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_reply_t *reply = s_token_put (fixture, "token-hash-1", "nobody", 5000);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.token.get", "token_hash", "token-hash-1");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
}

static void
test_token_put_same_hash_twice_conflicts (void **state)
{
    REAL_DB ();
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    sc_reply_t *reply = s_token_put (fixture, "same", "alice", 5000);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_token_put (fixture, "same", "bob", 6000);
    s_assert_error (reply, "conflict");
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.token.get", "token_hash", "same");
    s_assert_str (sc_reply_field (reply, "user"), "alice");
    s_assert_int (sc_reply_field (reply, "expires_at"), 5000);
    sc_reply_destroy (&reply);
}

static void
test_token_invalid_fields_get_bad_request (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    pl_pack_t body;
    sc_reply_t *reply;

    sc_body_init (&body, 3);                         //  no expires_at
    pl_pack_kstr (&body, "token_hash", "t");
    pl_pack_kstr (&body, "user", "alice");
    pl_pack_kint (&body, "created_at", 1);
    reply = s_call (fixture, "store.token.put", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 1);                         //  token_hash is a number
    pl_pack_kint (&body, "token_hash", 7);
    reply = s_call (fixture, "store.token.get", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 0);
    reply = s_call (fixture, "store.token.delete", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 0);
    reply = s_call (fixture, "store.token.delete_user", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 1);
    pl_pack_kstr (&body, "before", "yesterday");
    reply = s_call (fixture, "store.token.purge", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    reply = s_by_name (fixture, "store.token.get", "token_hash", "t");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
}

static void
test_token_delete_user_deletes_only_that_users_tokens (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "Alice");
    s_user_create_ok (fixture, "bob");
    const char *alice_tokens [] = { "a1", "a2", "a3" };
    for (size_t index = 0; index < 3; index++) {
        sc_reply_t *reply = s_token_put (fixture, alice_tokens [index], "alice", 9000);
        s_assert_ok (reply);
        sc_reply_destroy (&reply);
    }
    sc_reply_t *reply = s_token_put (fixture, "b1", "BOB", 9000);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);

    reply = s_by_name (fixture, "store.token.delete_user", "user", "ALICE");
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "deleted"), 3);
    sc_reply_destroy (&reply);
    for (size_t index = 0; index < 3; index++) {
        reply = s_by_name (fixture, "store.token.get", "token_hash", alice_tokens [index]);
        s_assert_error (reply, "not_found");
        sc_reply_destroy (&reply);
    }
    reply = s_by_name (fixture, "store.token.get", "token_hash", "b1");
    s_assert_ok (reply);
    sc_reply_destroy (&reply);

    reply = s_by_name (fixture, "store.token.delete_user", "user", "ghost");
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "deleted"), 0);
    sc_reply_destroy (&reply);
}

static void
test_token_purge_deletes_expired_tokens_only (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    const char *hashes [] = { "t100", "t200", "t300" };
    const int64_t expiries [] = { 100, 200, 300 };
    for (size_t index = 0; index < 3; index++) {
        sc_reply_t *reply = s_token_put (fixture, hashes [index], "alice", expiries [index]);
        s_assert_ok (reply);
        sc_reply_destroy (&reply);
    }
    pl_pack_t body;
    sc_body_init (&body, 1);
    pl_pack_kint (&body, "before", 200);
    sc_reply_t *reply = s_call (fixture, "store.token.purge", &body);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "deleted"), 2);
    sc_reply_destroy (&reply);
    for (size_t index = 0; index < 3; index++) {
        reply = s_by_name (fixture, "store.token.get", "token_hash", hashes [index]);
        if (index < 2)
            s_assert_error (reply, "not_found");
        else
            s_assert_ok (reply);
        sc_reply_destroy (&reply);
    }
}


static const msgpack_object *s_array_field (sc_reply_t *reply, const char *key);

//  store.token.touch {token_hash, at}
static sc_reply_t *
s_token_touch (fixture_t *fixture, const char *hash, int64_t at)
{
    pl_pack_t body;
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "token_hash", hash);
    pl_pack_kint (&body, "at", at);
    return s_call (fixture, "store.token.touch", &body);
}

static void
s_token_touch_ok (fixture_t *fixture, const char *hash, int64_t at)
{
    sc_reply_t *reply = s_token_touch (fixture, hash, at);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
}

//  store.token.trim {user, keep}; asserts ok and that exactly the count
//  hashes given were revoked, in that order (the most recently used first)
static void
s_assert_trim (fixture_t *fixture, const char *user, int64_t keep, size_t count,
               const char *const *hashes)
{
    pl_pack_t body;
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "user", user);
    pl_pack_kint (&body, "keep", keep);
    sc_reply_t *reply = s_call (fixture, "store.token.trim", &body);
    s_assert_ok (reply);
    const msgpack_object *revoked = s_array_field (reply, "revoked");
    if (revoked->via.array.size != count)
        fail_msg ("trim of %s keeping %" PRId64 ": %u revoked, expected %zu", user, keep,
                  revoked->via.array.size, count);
    for (size_t index = 0; index < count; index++)
        s_assert_str (&revoked->via.array.ptr [index], hashes [index]);
    sc_reply_destroy (&reply);
    for (size_t index = 0; index < count; index++) {
        reply = s_by_name (fixture, "store.token.get", "token_hash", hashes [index]);
        s_assert_error (reply, "not_found");
        sc_reply_destroy (&reply);
    }
}

static void
s_token_put_at (fixture_t *fixture, const char *hash, const char *user, int64_t created_at)
{
    pl_pack_t body;
    s_token_put_body (&body, hash, user, created_at, 1700000000000);
    sc_reply_t *reply = s_call (fixture, "store.token.put", &body);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
}

static void
test_token_trim_keeps_the_most_recently_used (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "Alice");
    s_user_create_ok (fixture, "bob");
    //  A new token's last use is its creation
    s_token_put_at (fixture, "t1", "alice", 1000);
    s_token_put_at (fixture, "t2", "ALICE", 2000);
    s_token_put_at (fixture, "t3", "alice", 3000);
    s_token_put_at (fixture, "t4", "alice", 4000);
    s_token_put_at (fixture, "b1", "bob", 500);
    //  A touch makes t1 the most recently used; none moves a use back
    s_token_touch_ok (fixture, "t1", 5000);
    s_token_touch_ok (fixture, "t1", 10);
    const char *first [] = { "t3", "t2" };
    s_assert_trim (fixture, "Alice", 2, 2, first);
    s_assert_trim (fixture, "alice", 2, 0, NULL);
    s_token_touch_ok (fixture, "t4", 6000);
    const char *second [] = { "t1" };
    s_assert_trim (fixture, "ALICE", 1, 1, second);
    sc_reply_t *reply = s_by_name (fixture, "store.token.get", "token_hash", "t4");
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "user"), "Alice");
    sc_reply_destroy (&reply);
    //  Another user's tokens are not touched; an unknown user has none
    reply = s_by_name (fixture, "store.token.get", "token_hash", "b1");
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    s_assert_trim (fixture, "nobody", 1, 0, NULL);
}

//  store.token.touch {token_hash, at, expires_at}
static sc_reply_t *
s_token_renew (fixture_t *fixture, const char *hash, int64_t at, int64_t expires_at)
{
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "token_hash", hash);
    pl_pack_kint (&body, "at", at);
    pl_pack_kint (&body, "expires_at", expires_at);
    return s_call (fixture, "store.token.touch", &body);
}

static void
s_assert_expires (fixture_t *fixture, const char *hash, int64_t expires_at)
{
    sc_reply_t *reply = s_by_name (fixture, "store.token.get", "token_hash", hash);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "expires_at"), expires_at);
    sc_reply_destroy (&reply);
}

//  auth.resume renews a token: a touch with expires_at moves its expiry
//  later, never earlier; one without leaves it
static void
test_token_touch_renews_the_expiry_forward_only (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    sc_reply_t *reply = s_token_put (fixture, "t1", "alice", 5000);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_token_put (fixture, "t2", "alice", 5000);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_token_renew (fixture, "t1", 3000, 8000);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    s_assert_expires (fixture, "t1", 8000);
    s_assert_expires (fixture, "t2", 5000);         //  another token is not renewed
    reply = s_token_renew (fixture, "t1", 3500, 7000);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    s_assert_expires (fixture, "t1", 8000);         //  never moved back
    s_token_touch_ok (fixture, "t1", 4000);
    s_assert_expires (fixture, "t1", 8000);         //  a touch without it leaves it
    //  Purged by the renewed expiry, not the first one
    pl_pack_t body;
    sc_body_init (&body, 1);
    pl_pack_kint (&body, "before", 6000);
    reply = s_call (fixture, "store.token.purge", &body);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "deleted"), 1);
    sc_reply_destroy (&reply);
    s_assert_expires (fixture, "t1", 8000);
    reply = s_token_renew (fixture, "t2", 3000, 9000);
    s_assert_error (reply, "not_found");            //  purged: nothing to renew
    sc_reply_destroy (&reply);
    reply = s_token_renew (fixture, "t1", 3000, -1);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "token_hash", "t1");
    pl_pack_kint (&body, "at", 3000);
    pl_pack_kstr (&body, "expires_at", "later");
    reply = s_call (fixture, "store.token.touch", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    s_assert_expires (fixture, "t1", 8000);         //  refused: unchanged
}

static void
test_token_touch_and_trim_refuse_bad_fields (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_token_put_at (fixture, "t1", "alice", 1000);
    sc_reply_t *reply = s_token_touch (fixture, "unknown", 2000);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.token.touch", "token_hash", "t1");
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    reply = s_token_touch (fixture, "t1", -5);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    const int64_t keeps [] = { 0, -1, 1000001 };
    for (size_t index = 0; index < 3; index++) {
        pl_pack_t body;
        sc_body_init (&body, 2);
        pl_pack_kstr (&body, "user", "alice");
        pl_pack_kint (&body, "keep", keeps [index]);
        reply = s_call (fixture, "store.token.trim", &body);
        s_assert_error (reply, "bad_request");
        sc_reply_destroy (&reply);
    }
    reply = s_by_name (fixture, "store.token.trim", "user", "alice");
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    //  Nothing was changed by the refused requests
    reply = s_by_name (fixture, "store.token.get", "token_hash", "t1");
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
}

//  --------------------------------------------------------------------------
//  Ordering, batches, durability

static void
test_pipelined_requests_applied_and_answered_in_order (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    pl_pack_t body;
    uint64_t rids [7];
    s_user_create_body (&body, "Zed", "h", 1);
    rids [0] = s_send (fixture, "store.user.create", &body);
    s_token_put_body (&body, "zt", "zed", 1, 99);
    rids [1] = s_send (fixture, "store.token.put", &body);
    sc_body_init (&body, 1);
    pl_pack_kstr (&body, "token_hash", "zt");
    rids [2] = s_send (fixture, "store.token.delete", &body);
    sc_body_init (&body, 1);
    pl_pack_kstr (&body, "token_hash", "zt");
    rids [3] = s_send (fixture, "store.token.get", &body);
    const char *names [] = { "ZED" };
    const int64_t times [] = { 5 };
    s_seen_body (&body, 1, names, times);
    rids [4] = s_send (fixture, "store.user.seen", &body);
    sc_body_init (&body, 1);
    pl_pack_kstr (&body, "name", "zed");
    rids [5] = s_send (fixture, "store.user.get", &body);
    s_token_put_body (&body, "zt", "zed", 1, 99);      //  free again after the delete
    rids [6] = s_send (fixture, "store.token.put", &body);

    const char *codes [] = { NULL, NULL, NULL, "not_found", NULL, NULL, NULL };
    for (size_t index = 0; index < 7; index++) {
        sc_reply_t *reply = sc_broker_recv (fixture->broker, 10000);
        assert_non_null (reply);
        assert_int_equal (reply->rid, rids [index]);
        if (codes [index])
            s_assert_error (reply, codes [index]);
        else
            s_assert_ok (reply);
        if (index == 2)
            s_assert_str (sc_reply_field (reply, "user"), "Zed");
        if (index == 4)
            s_assert_int (sc_reply_field (reply, "updated"), 1);
        if (index == 5)
            s_assert_int (sc_reply_field (reply, "last_seen"), 5);
        sc_reply_destroy (&reply);
    }
}

#define S_BURST 2000

static void
test_burst_of_writes_all_acknowledged_and_one_failure_spares_the_rest (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    //  Sent without waiting, so that they arrive together; the duplicate in
    //  the middle fails alone (on a real database)
    uint64_t duplicate_rid = 0;
    for (int index = 0; index < S_BURST; index++) {
        char name [32];
        snprintf (name, sizeof name, "user%04d", index);
        pl_pack_t body;
        s_user_create_body (&body, name, "h", index);
        s_send (fixture, "store.user.create", &body);
        if (index == S_BURST / 2 && !s_skip_real_db) {
            s_user_create_body (&body, "USER0500", "h", 0);
            duplicate_rid = s_send (fixture, "store.user.create", &body);
        }
    }
    int answers = S_BURST + (duplicate_rid ? 1 : 0);
    uint64_t last_rid = 0;
    for (int index = 0; index < answers; index++) {
        sc_reply_t *reply = sc_broker_recv (fixture->broker, 30000);
        assert_non_null (reply);
        assert_true (reply->rid > last_rid);
        last_rid = reply->rid;
        if (reply->rid == duplicate_rid)
            s_assert_error (reply, "conflict");
        else
            s_assert_ok (reply);
        sc_reply_destroy (&reply);
    }
    //  Every one of them is there
    size_t count = 0;
    char after [32] = "";
    bool more = true;
    while (more) {
        sc_reply_t *reply = s_user_list (fixture, count ? after : NULL, 0);
        s_assert_ok (reply);
        const msgpack_object *users = s_users (reply);
        for (uint32_t index = 0; index < users->via.array.size; index++) {
            char expected [32];
            snprintf (expected, sizeof expected, "user%04zu", count++);
            s_assert_str (sc_map_field (&users->via.array.ptr [index], "name"), expected);
            snprintf (after, sizeof after, "%s", expected);
        }
        more = sc_reply_field (reply, "more")->via.boolean;
        sc_reply_destroy (&reply);
    }
    assert_int_equal (count, S_BURST);
}

static void
test_acknowledged_writes_survive_plugin_restart (void **state)
{
    REAL_DB ();
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "Durable");
    sc_reply_t *reply = s_token_put (fixture, "kept", "durable", 123456);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_token_put (fixture, "revoked", "durable", 123456);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.token.delete", "token_hash", "revoked");
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    pl_pack_t body;
    const char *names [] = { "durable" };
    const int64_t times [] = { 424242 };
    s_seen_body (&body, 1, names, times);
    reply = s_call (fixture, "store.user.seen", &body);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);

    sc_broker_stop (fixture->broker);
    s_fixture_start (fixture);

    reply = s_by_name (fixture, "store.user.get", "name", "DURABLE");
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "name"), "Durable");
    s_assert_int (sc_reply_field (reply, "last_seen"), 424242);
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.token.get", "token_hash", "kept");
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "user"), "Durable");
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.token.get", "token_hash", "revoked");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_user_create (fixture, "durable", "h", 1);
    if (!s_skip_real_db)
        s_assert_error (reply, "conflict");
    sc_reply_destroy (&reply);
}


//  --------------------------------------------------------------------------
//  Rooms, members, invitations and timelines

#define S_NO_CURSOR (-1)

static sc_reply_t *
s_room_create (fixture_t *fixture, const char *name, const char *description,
               bool is_private, int64_t max_participants, const char *owner, int64_t created_at)
{
    pl_pack_t body;
    sc_body_init (&body, 6);
    pl_pack_kstr (&body, "name", name);
    pl_pack_kstr (&body, "description", description);
    pl_pack_str (&body, "private");
    if (is_private)
        msgpack_pack_true (&body.packer);
    else
        msgpack_pack_false (&body.packer);
    pl_pack_kint (&body, "max_participants", max_participants);
    pl_pack_kstr (&body, "owner", owner);
    pl_pack_kint (&body, "created_at", created_at);
    return s_call (fixture, "store.room.create", &body);
}

static void
s_room_create_ok (fixture_t *fixture, const char *name, bool is_private,
                  int64_t max_participants, const char *owner)
{
    sc_reply_t *reply = s_room_create (fixture, name, "", is_private, max_participants,
                                       owner, 5000);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
}

//  Packs an entry: a message when text is given, else a system entry with event
static void
s_pack_entry (msgpack_packer *packer, int64_t seq, const char *user, const char *text,
              const char *event)
{
    msgpack_pack_map (packer, 5);
    sc_pack_kint (packer, "seq", seq);
    sc_pack_kstr (packer, "kind", text ? "message" : "system");
    sc_pack_kstr (packer, "user", user);
    sc_pack_kint (packer, "ts", 1700000000000 + seq);
    if (text)
        sc_pack_kstr (packer, "text", text);
    else
        sc_pack_kstr (packer, "event", event);
}

//  store.member.add or .remove; seq 0 for no entry
static void
s_member_body (pl_pack_t *body, const char *room, const char *user, int64_t seq,
               const char *event)
{
    sc_body_init (body, seq ? 3 : 2);
    pl_pack_kstr (body, "room", room);
    pl_pack_kstr (body, "user", user);
    if (seq) {
        pl_pack_str (body, "entry");
        s_pack_entry (&body->packer, seq, user, NULL, event);
    }
}

static sc_reply_t *
s_member_add (fixture_t *fixture, const char *room, const char *user, int64_t seq)
{
    pl_pack_t body;
    s_member_body (&body, room, user, seq, "join");
    return s_call (fixture, "store.member.add", &body);
}

static sc_reply_t *
s_member_remove (fixture_t *fixture, const char *room, const char *user, int64_t seq)
{
    pl_pack_t body;
    s_member_body (&body, room, user, seq, "leave");
    return s_call (fixture, "store.member.remove", &body);
}

static void
s_member_add_ok (fixture_t *fixture, const char *room, const char *user, int64_t seq)
{
    sc_reply_t *reply = s_member_add (fixture, room, user, seq);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
}

static sc_reply_t *
s_invite (fixture_t *fixture, const char *room, const char *user, const char *from)
{
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "room", room);
    pl_pack_kstr (&body, "user", user);
    pl_pack_kstr (&body, "from", from);
    return s_call (fixture, "store.invite.add", &body);
}

static void
s_append_body (pl_pack_t *body, const char *room, int64_t seq, const char *user, const char *text)
{
    sc_body_init (body, 2);
    pl_pack_kstr (body, "room", room);
    pl_pack_str (body, "entry");
    s_pack_entry (&body->packer, seq, user, text, NULL);
}

static sc_reply_t *
s_append (fixture_t *fixture, const char *room, int64_t seq, const char *user, const char *text)
{
    pl_pack_t body;
    s_append_body (&body, room, seq, user, text);
    return s_call (fixture, "store.msg.append", &body);
}

static void
s_append_ok (fixture_t *fixture, const char *room, int64_t seq, const char *user,
             const char *text)
{
    sc_reply_t *reply = s_append (fixture, room, seq, user, text);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "seq"), seq);
    sc_reply_destroy (&reply);
}

//  store.msg.append with 'entries': count messages from alice, the one at
//  index i with seq seqs [i] and text "entry <seq>"
static void
s_append_entries_body (pl_pack_t *body, const char *room, uint32_t count, const int64_t *seqs)
{
    sc_body_init (body, 2);
    pl_pack_kstr (body, "room", room);
    pl_pack_str (body, "entries");
    msgpack_pack_array (&body->packer, count);
    for (uint32_t index = 0; index < count; index++) {
        char text [32];
        snprintf (text, sizeof text, "entry %" PRId64, seqs [index]);
        s_pack_entry (&body->packer, seqs [index], "alice", text, NULL);
    }
}

//  The most entries one store.msg.append may carry (proto/STORE.md)
#define S_RUN_MAX 256

//  store.msg.append with 'entries': the run of seqs first .. first + count - 1
static void
s_append_run_body (pl_pack_t *body, const char *room, int64_t first, uint32_t count)
{
    int64_t seqs [S_RUN_MAX + 1] = { 0 };
    assert_true (count <= S_RUN_MAX + 1);
    for (uint32_t index = 0; index < count; index++)
        seqs [index] = first + index;
    s_append_entries_body (body, room, count, seqs);
}

static sc_reply_t *
s_append_run (fixture_t *fixture, const char *room, int64_t first, uint32_t count)
{
    pl_pack_t body;
    s_append_run_body (&body, room, first, count);
    return s_call (fixture, "store.msg.append", &body);
}

//  Appends the run and asserts ok with seq, the run's last
static void
s_append_run_ok (fixture_t *fixture, const char *room, int64_t first, uint32_t count)
{
    sc_reply_t *reply = s_append_run (fixture, room, first, count);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "seq"), first + count - 1);
    sc_reply_destroy (&reply);
}

//  store.msg.history; before/after S_NO_CURSOR for none, limit 0 for none
static sc_reply_t *
s_history (fixture_t *fixture, const char *room, int64_t before, int64_t after, int64_t limit)
{
    pl_pack_t body;
    sc_body_init (&body, 1 + (before != S_NO_CURSOR) + (after != S_NO_CURSOR) + (limit != 0));
    pl_pack_kstr (&body, "room", room);
    if (before != S_NO_CURSOR)
        pl_pack_kint (&body, "before", before);
    if (after != S_NO_CURSOR)
        pl_pack_kint (&body, "after", after);
    if (limit)
        pl_pack_kint (&body, "limit", limit);
    return s_call (fixture, "store.msg.history", &body);
}

static const msgpack_object *
s_array_field (sc_reply_t *reply, const char *key)
{
    const msgpack_object *array = sc_reply_field (reply, key);
    assert_non_null (array);
    assert_int_equal (array->type, MSGPACK_OBJECT_ARRAY);
    return array;
}

static bool
s_more (sc_reply_t *reply)
{
    const msgpack_object *more = sc_reply_field (reply, "more");
    assert_non_null (more);
    assert_int_equal (more->type, MSGPACK_OBJECT_BOOLEAN);
    return more->via.boolean;
}

static bool
s_bool (const msgpack_object *object)
{
    assert_non_null (object);
    assert_int_equal (object->type, MSGPACK_OBJECT_BOOLEAN);
    return object->via.boolean;
}

//  Asserts a history answer holds exactly seqs first..last (none if last < first) and more
static void
s_assert_history (fixture_t *fixture, const char *room, int64_t before, int64_t after,
                  int64_t limit, int64_t first, int64_t last, bool more)
{
    sc_reply_t *reply = s_history (fixture, room, before, after, limit);
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    int64_t expected = last >= first ? last - first + 1 : 0;
    if ((int64_t) messages->via.array.size != expected)
        fail_msg ("history of %s (before %" PRId64 ", after %" PRId64 ", limit %" PRId64
                  "): %u entries, expected %" PRId64, room, before, after, limit,
                  messages->via.array.size, expected);
    for (uint32_t index = 0; index < messages->via.array.size; index++)
        s_assert_int (sc_map_field (&messages->via.array.ptr [index], "seq"),
                      first + index);
    if (s_more (reply) != more)
        fail_msg ("history of %s (before %" PRId64 ", after %" PRId64 ", limit %" PRId64
                  "): more is %s", room, before, after, limit, more ? "false" : "true");
    sc_reply_destroy (&reply);
}

//  Asserts the history after 'after' holds the texts "entry <seq>" for
//  seqs first .. last, in order
static void
s_assert_run_texts (fixture_t *fixture, const char *room, int64_t after, int64_t first,
                    int64_t last)
{
    sc_reply_t *reply = s_history (fixture, room, S_NO_CURSOR, after, 1000);
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    assert_int_equal (messages->via.array.size, last - first + 1);
    for (uint32_t index = 0; index < messages->via.array.size; index++) {
        const msgpack_object *entry = &messages->via.array.ptr [index];
        char text [32];
        snprintf (text, sizeof text, "entry %" PRId64, first + index);
        s_assert_int (sc_map_field (entry, "seq"), first + index);
        s_assert_str (sc_map_field (entry, "kind"), "message");
        s_assert_str (sc_map_field (entry, "text"), text);
    }
    sc_reply_destroy (&reply);
}

//  Asserts the member list of room is exactly names, in that order
static void
s_assert_members (fixture_t *fixture, const char *room, size_t count, const char *const *names)
{
    sc_reply_t *reply = s_by_name (fixture, "store.member.list", "room", room);
    s_assert_ok (reply);
    const msgpack_object *members = s_array_field (reply, "members");
    assert_int_equal (members->via.array.size, count);
    for (size_t index = 0; index < count; index++)
        s_assert_str (&members->via.array.ptr [index], names [index]);
    sc_reply_destroy (&reply);
}

//  Asserts a room map's fields; description NULL to skip it
static void
s_assert_room (const msgpack_object *room, const char *name, const char *description,
               bool is_private, int64_t max_participants, const char *owner,
               int64_t created_at, int64_t members, int64_t last_seq)
{
    assert_non_null (room);
    assert_int_equal (room->type, MSGPACK_OBJECT_MAP);
    s_assert_str (sc_map_field (room, "name"), name);
    if (description)
        s_assert_str (sc_map_field (room, "description"), description);
    assert_int_equal (s_bool (sc_map_field (room, "private")), is_private);
    s_assert_int (sc_map_field (room, "max_participants"), max_participants);
    s_assert_str (sc_map_field (room, "owner"), owner);
    s_assert_int (sc_map_field (room, "created_at"), created_at);
    s_assert_int (sc_map_field (room, "members"), members);
    s_assert_int (sc_map_field (room, "last_seq"), last_seq);
}

static void
s_assert_room_counts (fixture_t *fixture, const char *name, int64_t members, int64_t last_seq)
{
    sc_reply_t *reply = s_by_name (fixture, "store.room.get", "name", name);
    s_assert_ok (reply);
    const msgpack_object *room = sc_reply_field (reply, "room");
    assert_non_null (room);
    s_assert_int (sc_map_field (room, "members"), members);
    s_assert_int (sc_map_field (room, "last_seq"), last_seq);
    sc_reply_destroy (&reply);
}

static void
test_room_types_with_body_not_a_map_get_bad_request (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    const char *types [] = { "store.room.create", "store.room.get", "store.room.list",
                             "store.room.joined", "store.room.public", "store.room.directory",
                             "store.room.delete", "store.member.add", "store.member.remove",
                             "store.member.list", "store.invite.add", "store.msg.append",
                             "store.msg.history" };
    static const uint8_t array [] = { 0x91, 0x01 };         //  [1]
    for (size_t index = 0; index < sizeof types / sizeof types [0]; index++) {
        sc_reply_t *reply = sc_broker_call (fixture->broker, types [index], array, sizeof array);
        assert_non_null (reply);
        s_assert_error (reply, "bad_request");
        sc_reply_destroy (&reply);
    }
}

static void
test_store_info_schema_version_is_at_least_two (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_reply_t *reply = s_call (fixture, "store.info", NULL);
    s_assert_ok (reply);
    assert_true (sc_reply_field (reply, "schema_version")->via.u64 >= 2);
    sc_reply_destroy (&reply);
}

static void
test_room_create_then_get_by_any_case (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "Alice");
    sc_reply_t *reply = s_room_create (fixture, "General", "Talk about anything", false, 50,
                                       "alice", 1700000000456);
    s_assert_ok (reply);
    s_assert_room (sc_reply_field (reply, "room"), "General", "Talk about anything", false, 50,
                   "Alice", 1700000000456, 1, 0);
    sc_reply_destroy (&reply);

    const char *spellings [] = { "General", "general", "GENERAL" };
    for (size_t index = 0; index < 3; index++) {
        reply = s_by_name (fixture, "store.room.get", "name", spellings [index]);
        s_assert_ok (reply);
        s_assert_room (sc_reply_field (reply, "room"), "General", "Talk about anything", false,
                       50, "Alice", 1700000000456, 1, 0);
        sc_reply_destroy (&reply);
    }
    //  The owner is the first member; an empty description and a private room
    const char *owner [] = { "Alice" };
    s_assert_members (fixture, "general", 1, owner);
    reply = s_room_create (fixture, "hideout", "", true, 2, "ALICE", 7);
    s_assert_ok (reply);
    s_assert_room (sc_reply_field (reply, "room"), "hideout", "", true, 2, "Alice", 7, 1, 0);
    sc_reply_destroy (&reply);
    //  No timeline entry for creating
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 0, false);
}

static void
test_room_create_taken_name_in_other_case_conflicts (void **state)
{
    REAL_DB ();
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    sc_reply_t *reply = s_room_create (fixture, "General", "first", false, 50, "alice", 1);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    const char *spellings [] = { "General", "general", "GENERAL" };
    for (size_t index = 0; index < 3; index++) {
        reply = s_room_create (fixture, spellings [index], "second", true, 3, "bob", 2);
        s_assert_error (reply, "conflict");
        sc_reply_destroy (&reply);
    }
    reply = s_by_name (fixture, "store.room.get", "name", "general");
    s_assert_ok (reply);
    s_assert_room (sc_reply_field (reply, "room"), "General", "first", false, 50, "alice", 1,
                   1, 0);
    sc_reply_destroy (&reply);
}

static void
test_room_create_with_unknown_owner_is_not_found_and_creates_nothing (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_reply_t *reply = s_room_create (fixture, "general", "", false, 50, "ghost", 1);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.room.get", "name", "general");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
}

static void
test_room_get_unknown_name_is_not_found (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_reply_t *reply = s_by_name (fixture, "store.room.get", "name", "nowhere");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
}

static void
test_room_create_invalid_fields_get_bad_request_and_change_nothing (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    sc_reply_t *reply;
    char long_name [66];
    memset (long_name, 'r', 65);
    long_name [65] = 0;
    reply = s_room_create (fixture, long_name, "", false, 5, "alice", 1);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    long_name [64] = 0;                     //  64 bytes is the most
    reply = s_room_create (fixture, long_name, "", false, 5, "alice", 1);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);

    reply = s_room_create (fixture, "", "", false, 5, "alice", 1);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    char *long_description = (char *) malloc (2002);
    memset (long_description, 'd', 2001);
    long_description [2001] = 0;
    reply = s_room_create (fixture, "room", long_description, false, 5, "alice", 1);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    free (long_description);

    reply = s_room_create (fixture, "room", "", false, 5, "alice", -1);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    reply = s_room_create (fixture, "room", "", false, -5, "alice", 1);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    pl_pack_t body;
    sc_body_init (&body, 6);                 //  private is a string
    pl_pack_kstr (&body, "name", "room");
    pl_pack_kstr (&body, "description", "");
    pl_pack_kstr (&body, "private", "yes");
    pl_pack_kint (&body, "max_participants", 5);
    pl_pack_kstr (&body, "owner", "alice");
    pl_pack_kint (&body, "created_at", 1);
    reply = s_call (fixture, "store.room.create", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 5);                 //  no owner
    pl_pack_kstr (&body, "name", "room");
    pl_pack_kstr (&body, "description", "");
    pl_pack_str (&body, "private");
    msgpack_pack_false (&body.packer);
    pl_pack_kint (&body, "max_participants", 5);
    pl_pack_kint (&body, "created_at", 1);
    reply = s_call (fixture, "store.room.create", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    reply = s_by_name (fixture, "store.room.get", "name", "room");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.room.get", "name", "");
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
}

static void
test_room_list_shows_public_rooms_and_own_private_ones_with_joined (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "Bob");
    s_user_create_ok (fixture, "carol");
    s_room_create_ok (fixture, "Alpha", false, 10, "alice");
    s_room_create_ok (fixture, "secret", true, 10, "alice");
    s_room_create_ok (fixture, "beta", true, 10, "bob");
    s_room_create_ok (fixture, "Gamma", false, 10, "bob");
    s_member_add_ok (fixture, "gamma", "alice", 1);

    struct {
        const char *user;
        size_t count;
        const char *names [4];
        bool joined [4];
        int64_t members [4];
    } cases [] = {
        { "ALICE", 3, { "Alpha", "Gamma", "secret" }, { true, true, true }, { 1, 2, 1 } },
        { "bob",   3, { "Alpha", "beta", "Gamma" },   { false, true, true }, { 1, 1, 2 } },
        { "carol", 2, { "Alpha", "Gamma" },           { false, false }, { 1, 2 } },
        { "ghost", 2, { "Alpha", "Gamma" },           { false, false }, { 1, 2 } }
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases [0]; index++) {
        sc_reply_t *reply = s_by_name (fixture, "store.room.list", "user", cases [index].user);
        s_assert_ok (reply);
        const msgpack_object *rooms = s_array_field (reply, "rooms");
        if (rooms->via.array.size != cases [index].count)
            fail_msg ("%s sees %u rooms, expected %zu", cases [index].user,
                      rooms->via.array.size, cases [index].count);
        for (size_t room = 0; room < cases [index].count; room++) {
            const msgpack_object *map = &rooms->via.array.ptr [room];
            s_assert_str (sc_map_field (map, "name"), cases [index].names [room]);
            assert_int_equal (s_bool (sc_map_field (map, "joined")), cases [index].joined [room]);
            s_assert_int (sc_map_field (map, "members"), cases [index].members [room]);
            assert_non_null (sc_map_field (map, "owner"));
            assert_non_null (sc_map_field (map, "private"));
            assert_non_null (sc_map_field (map, "max_participants"));
            assert_non_null (sc_map_field (map, "last_seq"));
        }
        assert_false (s_more (reply));
        sc_reply_destroy (&reply);
    }
    sc_reply_t *reply = s_by_name (fixture, "store.room.list", "user", "");
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
}

static void
test_room_list_of_store_without_rooms_is_empty (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    sc_reply_t *reply = s_by_name (fixture, "store.room.list", "user", "alice");
    s_assert_ok (reply);
    assert_int_equal (s_array_field (reply, "rooms")->via.array.size, 0);
    sc_reply_destroy (&reply);
}

static void
test_room_delete_removes_members_and_timeline_and_frees_the_name (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "Alice");
    s_user_create_ok (fixture, "Bob");
    s_room_create_ok (fixture, "General", true, 10, "alice");
    sc_reply_t *reply = s_invite (fixture, "general", "bob", "alice");
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    s_member_add_ok (fixture, "general", "bob", 1);
    s_append_ok (fixture, "general", 2, "bob", "hello");
    s_user_create_ok (fixture, "carol");
    reply = s_invite (fixture, "general", "carol", "alice");    //  a pending invitation
    s_assert_ok (reply);
    sc_reply_destroy (&reply);

    reply = s_by_name (fixture, "store.room.delete", "name", "GENERAL");
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "name"), "General");
    const msgpack_object *members = s_array_field (reply, "members");
    assert_int_equal (members->via.array.size, 2);
    bool alice = false, bob = false;
    for (uint32_t index = 0; index < 2; index++) {
        alice = alice || sc_object_streq (&members->via.array.ptr [index], "Alice");
        bob = bob || sc_object_streq (&members->via.array.ptr [index], "Bob");
    }
    assert_true (alice && bob);
    sc_reply_destroy (&reply);

    reply = s_by_name (fixture, "store.room.get", "name", "general");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.member.list", "room", "general");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.room.list", "user", "alice");
    s_assert_ok (reply);
    assert_int_equal (s_array_field (reply, "rooms")->via.array.size, 0);
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.room.delete", "name", "general");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);

    //  The name is free: a new room of that name starts empty, and the old
    //  room's members and invitations do not carry over
    reply = s_room_create (fixture, "GENERAL", "again", true, 10, "carol", 9);
    s_assert_ok (reply);
    s_assert_room (sc_reply_field (reply, "room"), "GENERAL", "again", true, 10, "carol", 9,
                   1, 0);
    sc_reply_destroy (&reply);
    const char *owner [] = { "carol" };
    s_assert_members (fixture, "general", 1, owner);
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 0, false);
    reply = s_member_add (fixture, "general", "bob", 1);
    s_assert_error (reply, "forbidden");
    sc_reply_destroy (&reply);
    s_append_ok (fixture, "general", 1, "carol", "a fresh start");
}

static void
test_member_add_joins_once_and_appends_its_entry (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "Bob");
    s_room_create_ok (fixture, "general", false, 10, "alice");

    sc_reply_t *reply = s_member_add (fixture, "GENERAL", "bob", 1);
    s_assert_ok (reply);
    assert_true (s_bool (sc_reply_field (reply, "added")));
    s_assert_int (sc_reply_field (reply, "members"), 2);
    s_assert_room (sc_reply_field (reply, "room"), "general", "", false, 10, "alice", 5000, 2, 1);
    sc_reply_destroy (&reply);

    //  Again, in any case: ok, not added, and no second entry
    reply = s_member_add (fixture, "general", "BOB", 2);
    s_assert_ok (reply);
    assert_false (s_bool (sc_reply_field (reply, "added")));
    s_assert_int (sc_reply_field (reply, "members"), 2);
    s_assert_room (sc_reply_field (reply, "room"), "general", "", false, 10, "alice", 5000, 2, 1);
    sc_reply_destroy (&reply);
    reply = s_member_add (fixture, "general", "alice", 0);      //  the owner, without entry
    s_assert_ok (reply);
    assert_false (s_bool (sc_reply_field (reply, "added")));
    sc_reply_destroy (&reply);

    reply = s_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0);
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    assert_int_equal (messages->via.array.size, 1);
    const msgpack_object *entry = &messages->via.array.ptr [0];
    s_assert_int (sc_map_field (entry, "seq"), 1);
    s_assert_str (sc_map_field (entry, "kind"), "system");
    s_assert_str (sc_map_field (entry, "user"), "bob");
    s_assert_int (sc_map_field (entry, "ts"), 1700000000001);
    s_assert_str (sc_map_field (entry, "event"), "join");
    assert_null (sc_map_field (entry, "text"));
    assert_false (s_more (reply));
    sc_reply_destroy (&reply);

    //  A join without entry appends nothing
    s_user_create_ok (fixture, "carol");
    reply = s_member_add (fixture, "general", "carol", 0);
    s_assert_ok (reply);
    assert_true (s_bool (sc_reply_field (reply, "added")));
    s_assert_int (sc_reply_field (reply, "members"), 3);
    sc_reply_destroy (&reply);
    s_assert_room_counts (fixture, "general", 3, 1);
}

static void
test_member_add_unknown_room_or_user_is_not_found (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_room_create_ok (fixture, "general", false, 10, "alice");
    sc_reply_t *reply = s_member_add (fixture, "nowhere", "alice", 1);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_member_add (fixture, "general", "ghost", 1);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    s_assert_room_counts (fixture, "general", 1, 0);
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 0, false);
}

static void
test_member_add_to_full_room_is_refused_and_changes_nothing (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_user_create_ok (fixture, "carol");
    s_room_create_ok (fixture, "tiny", false, 2, "alice");
    s_member_add_ok (fixture, "tiny", "bob", 1);

    sc_reply_t *reply = s_member_add (fixture, "tiny", "carol", 2);
    s_assert_error (reply, "full");
    sc_reply_destroy (&reply);
    const char *two [] = { "alice", "bob" };
    s_assert_members (fixture, "tiny", 2, two);
    s_assert_room_counts (fixture, "tiny", 2, 1);

    //  A member of a full room joining again is ok, not full
    reply = s_member_add (fixture, "tiny", "bob", 0);
    s_assert_ok (reply);
    assert_false (s_bool (sc_reply_field (reply, "added")));
    sc_reply_destroy (&reply);

    //  A place freed is a place taken
    reply = s_member_remove (fixture, "tiny", "bob", 2);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    s_member_add_ok (fixture, "tiny", "carol", 3);
    const char *now [] = { "alice", "carol" };
    s_assert_members (fixture, "tiny", 2, now);
}

static void
test_member_add_to_private_room_needs_an_invitation (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "Bob");
    s_room_create_ok (fixture, "hideout", true, 10, "alice");

    sc_reply_t *reply = s_member_add (fixture, "hideout", "bob", 1);
    s_assert_error (reply, "forbidden");
    sc_reply_destroy (&reply);
    s_assert_room_counts (fixture, "hideout", 1, 0);

    reply = s_invite (fixture, "HIDEOUT", "bob", "alice");
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "user"), "Bob");
    assert_false (s_bool (sc_reply_field (reply, "already_member")));
    sc_reply_destroy (&reply);
    reply = s_invite (fixture, "hideout", "BOB", "alice");      //  twice is ok
    s_assert_ok (reply);
    assert_false (s_bool (sc_reply_field (reply, "already_member")));
    sc_reply_destroy (&reply);

    //  The room lists it for the invitee only once joined
    reply = s_by_name (fixture, "store.room.list", "user", "bob");
    s_assert_ok (reply);
    assert_int_equal (s_array_field (reply, "rooms")->via.array.size, 0);
    sc_reply_destroy (&reply);

    reply = s_member_add (fixture, "hideout", "bob", 1);
    s_assert_ok (reply);
    assert_true (s_bool (sc_reply_field (reply, "added")));
    s_assert_int (sc_reply_field (reply, "members"), 2);
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.room.list", "user", "bob");
    s_assert_ok (reply);
    assert_int_equal (s_array_field (reply, "rooms")->via.array.size, 1);
    sc_reply_destroy (&reply);

    //  Joining consumed the invitation: after leaving, bob needs another
    reply = s_member_remove (fixture, "hideout", "bob", 2);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_member_add (fixture, "hideout", "bob", 3);
    s_assert_error (reply, "forbidden");
    sc_reply_destroy (&reply);

    //  The owner is always allowed back
    reply = s_member_remove (fixture, "hideout", "alice", 3);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "members"), 0);
    sc_reply_destroy (&reply);
    s_member_add_ok (fixture, "hideout", "alice", 4);
    s_assert_room_counts (fixture, "hideout", 1, 4);
}

static void
test_member_add_checks_forbidden_before_full (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_room_create_ok (fixture, "solo", true, 1, "alice");
    sc_reply_t *reply = s_member_add (fixture, "solo", "bob", 1);
    s_assert_error (reply, "forbidden");
    sc_reply_destroy (&reply);
    reply = s_invite (fixture, "solo", "bob", "alice");
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_member_add (fixture, "solo", "bob", 1);
    s_assert_error (reply, "full");
    sc_reply_destroy (&reply);
    s_assert_room_counts (fixture, "solo", 1, 0);
}

static void
test_member_add_with_taken_seq_conflicts_and_adds_nobody (void **state)
{
    REAL_DB ();
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_room_create_ok (fixture, "hideout", true, 10, "alice");
    s_append_ok (fixture, "hideout", 1, "alice", "first");
    sc_reply_t *reply = s_invite (fixture, "hideout", "bob", "alice");
    s_assert_ok (reply);
    sc_reply_destroy (&reply);

    reply = s_member_add (fixture, "hideout", "bob", 1);
    s_assert_error (reply, "conflict");
    sc_reply_destroy (&reply);
    const char *alone [] = { "alice" };
    s_assert_members (fixture, "hideout", 1, alone);
    s_assert_room_counts (fixture, "hideout", 1, 1);
    reply = s_history (fixture, "hideout", S_NO_CURSOR, S_NO_CURSOR, 0);
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    assert_int_equal (messages->via.array.size, 1);
    s_assert_str (sc_map_field (&messages->via.array.ptr [0], "text"), "first");
    sc_reply_destroy (&reply);

    //  The invitation was not consumed by the failed join
    s_member_add_ok (fixture, "hideout", "bob", 2);
    const char *both [] = { "alice", "bob" };
    s_assert_members (fixture, "hideout", 2, both);

    //  Leaving with a taken seq leaves the member in
    reply = s_member_remove (fixture, "hideout", "bob", 2);
    s_assert_error (reply, "conflict");
    sc_reply_destroy (&reply);
    s_assert_members (fixture, "hideout", 2, both);
}

static void
test_member_remove_appends_entry_and_refuses_non_members (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "Bob");
    s_room_create_ok (fixture, "general", false, 10, "alice");
    s_member_add_ok (fixture, "general", "bob", 1);

    sc_reply_t *reply = s_member_remove (fixture, "GENERAL", "BOB", 2);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "members"), 1);
    sc_reply_destroy (&reply);
    reply = s_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0);
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    assert_int_equal (messages->via.array.size, 2);
    const msgpack_object *entry = &messages->via.array.ptr [1];
    s_assert_int (sc_map_field (entry, "seq"), 2);
    s_assert_str (sc_map_field (entry, "kind"), "system");
    s_assert_str (sc_map_field (entry, "event"), "leave");
    s_assert_str (sc_map_field (entry, "user"), "BOB");
    sc_reply_destroy (&reply);

    reply = s_member_remove (fixture, "general", "bob", 3);
    s_assert_error (reply, "not_member");
    sc_reply_destroy (&reply);
    reply = s_member_remove (fixture, "general", "ghost", 3);
    s_assert_error (reply, "not_member");
    sc_reply_destroy (&reply);
    reply = s_member_remove (fixture, "nowhere", "bob", 3);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    s_assert_room_counts (fixture, "general", 1, 2);

    //  Without an entry
    s_member_add_ok (fixture, "general", "bob", 0);
    reply = s_member_remove (fixture, "general", "bob", 0);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "members"), 1);
    sc_reply_destroy (&reply);
    s_assert_room_counts (fixture, "general", 1, 2);
}

static void
test_member_list_sorted_by_lower_cased_name (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    const char *users [] = { "carol", "Bob", "alice", "Dave", "_eve" };
    for (size_t index = 0; index < 5; index++)
        s_user_create_ok (fixture, users [index]);
    s_room_create_ok (fixture, "general", false, 10, "carol");
    for (size_t index = 1; index < 5; index++)
        s_member_add_ok (fixture, "general", users [index], 0);
    //  '_' (0x5f) sorts after 'D' but before 'a': lower-cased byte order
    const char *sorted [] = { "_eve", "alice", "Bob", "carol", "Dave" };
    s_assert_members (fixture, "GENERAL", 5, sorted);
    sc_reply_t *reply = s_by_name (fixture, "store.member.list", "room", "nowhere");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
}

static void
test_invite_add_member_is_already_member_and_unknowns_are_not_found (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "Alice");
    s_user_create_ok (fixture, "bob");
    s_room_create_ok (fixture, "hideout", true, 10, "alice");
    sc_reply_t *reply = s_invite (fixture, "hideout", "ALICE", "bob");
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "user"), "Alice");
    assert_true (s_bool (sc_reply_field (reply, "already_member")));
    sc_reply_destroy (&reply);
    reply = s_invite (fixture, "hideout", "ghost", "alice");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_invite (fixture, "nowhere", "bob", "alice");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    pl_pack_t body;
    sc_body_init (&body, 2);                 //  no from
    pl_pack_kstr (&body, "room", "hideout");
    pl_pack_kstr (&body, "user", "bob");
    reply = s_call (fixture, "store.invite.add", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    //  None of these let bob in
    reply = s_member_add (fixture, "hideout", "bob", 1);
    s_assert_error (reply, "forbidden");
    sc_reply_destroy (&reply);
}

static void
test_msg_append_then_history_returns_the_entry (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_room_create_ok (fixture, "general", false, 10, "alice");
    s_append_ok (fixture, "GENERAL", 1, "alice", "hello, world");
    s_assert_room_counts (fixture, "general", 1, 1);
    sc_reply_t *reply = s_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0);
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    assert_int_equal (messages->via.array.size, 1);
    const msgpack_object *entry = &messages->via.array.ptr [0];
    s_assert_int (sc_map_field (entry, "seq"), 1);
    s_assert_str (sc_map_field (entry, "kind"), "message");
    s_assert_str (sc_map_field (entry, "user"), "alice");
    s_assert_int (sc_map_field (entry, "ts"), 1700000000001);
    s_assert_str (sc_map_field (entry, "text"), "hello, world");
    assert_null (sc_map_field (entry, "event"));
    sc_reply_destroy (&reply);

    //  The longest text there may be
    char *longest = (char *) malloc (16001);
    memset (longest, 'x', 16000);
    longest [16000] = 0;
    s_append_ok (fixture, "general", 2, "alice", longest);
    reply = s_history (fixture, "general", S_NO_CURSOR, 1, 0);
    s_assert_ok (reply);
    messages = s_array_field (reply, "messages");
    assert_int_equal (messages->via.array.size, 1);
    s_assert_str (sc_map_field (&messages->via.array.ptr [0], "text"), longest);
    sc_reply_destroy (&reply);
    free (longest);

    reply = s_append (fixture, "nowhere", 1, "alice", "hello");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
}

static void
test_msg_append_with_taken_seq_conflicts_and_keeps_the_first (void **state)
{
    REAL_DB ();
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_room_create_ok (fixture, "general", false, 10, "alice");
    s_room_create_ok (fixture, "other", false, 10, "alice");
    s_append_ok (fixture, "general", 1, "alice", "first");
    sc_reply_t *reply = s_append (fixture, "general", 1, "alice", "second");
    s_assert_error (reply, "conflict");
    sc_reply_destroy (&reply);
    //  Seqs are per room
    s_append_ok (fixture, "other", 1, "alice", "elsewhere");
    reply = s_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0);
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    assert_int_equal (messages->via.array.size, 1);
    s_assert_str (sc_map_field (&messages->via.array.ptr [0], "text"), "first");
    sc_reply_destroy (&reply);
}

static void
test_msg_append_invalid_entries_get_bad_request (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_room_create_ok (fixture, "general", false, 10, "alice");
    sc_reply_t *reply = s_append (fixture, "general", 0, "alice", "seq 0");
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    char *too_long = (char *) malloc (16002);
    memset (too_long, 'x', 16001);
    too_long [16001] = 0;
    reply = s_append (fixture, "general", 1, "alice", too_long);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    free (too_long);

    pl_pack_t body;
    sc_body_init (&body, 1);                 //  no entry
    pl_pack_kstr (&body, "room", "general");
    reply = s_call (fixture, "store.msg.append", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 2);                 //  a kind that does not exist
    pl_pack_kstr (&body, "room", "general");
    pl_pack_str (&body, "entry");
    msgpack_pack_map (&body.packer, 5);
    pl_pack_kint (&body, "seq", 1);
    pl_pack_kstr (&body, "kind", "shout");
    pl_pack_kstr (&body, "user", "alice");
    pl_pack_kint (&body, "ts", 1);
    pl_pack_kstr (&body, "text", "hey");
    reply = s_call (fixture, "store.msg.append", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 2);                 //  seq is a string
    pl_pack_kstr (&body, "room", "general");
    pl_pack_str (&body, "entry");
    msgpack_pack_map (&body.packer, 5);
    pl_pack_kstr (&body, "seq", "1");
    pl_pack_kstr (&body, "kind", "message");
    pl_pack_kstr (&body, "user", "alice");
    pl_pack_kint (&body, "ts", 1);
    pl_pack_kstr (&body, "text", "hey");
    reply = s_call (fixture, "store.msg.append", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    s_assert_room_counts (fixture, "general", 1, 0);
}

static void
test_msg_append_entries_appends_the_whole_run_in_order (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_room_create_ok (fixture, "general", false, 10, "alice");
    s_append_run_ok (fixture, "GENERAL", 1, 5);
    s_assert_run_texts (fixture, "general", 0, 1, 5);
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 5, false);
    s_assert_room_counts (fixture, "general", 1, 5);

    //  A run mixes messages and system entries
    pl_pack_t body;
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "room", "general");
    pl_pack_str (&body, "entries");
    msgpack_pack_array (&body.packer, 3);
    s_pack_entry (&body.packer, 6, "alice", "before bob", NULL);
    s_pack_entry (&body.packer, 7, "bob", NULL, "join");
    s_pack_entry (&body.packer, 8, "alice", "after bob", NULL);
    sc_reply_t *reply = s_call (fixture, "store.msg.append", &body);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "seq"), 8);
    sc_reply_destroy (&reply);
    reply = s_history (fixture, "general", S_NO_CURSOR, 5, 0);
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    assert_int_equal (messages->via.array.size, 3);
    const msgpack_object *join = &messages->via.array.ptr [1];
    s_assert_int (sc_map_field (join, "seq"), 7);
    s_assert_str (sc_map_field (join, "kind"), "system");
    s_assert_str (sc_map_field (join, "user"), "bob");
    s_assert_int (sc_map_field (join, "ts"), 1700000000007);
    s_assert_str (sc_map_field (join, "event"), "join");
    assert_null (sc_map_field (join, "text"));
    s_assert_str (sc_map_field (&messages->via.array.ptr [2], "text"), "after bob");
    sc_reply_destroy (&reply);

    //  The longest run there may be
    s_append_run_ok (fixture, "general", 9, S_RUN_MAX);
    s_assert_run_texts (fixture, "general", 8, 9, 8 + S_RUN_MAX);
    s_assert_room_counts (fixture, "general", 1, 8 + S_RUN_MAX);

    reply = s_append_run (fixture, "nowhere", 1, 5);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
}

static void
test_msg_append_entries_with_a_taken_seq_conflicts_and_appends_none (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_room_create_ok (fixture, "general", false, 10, "alice");
    s_append_ok (fixture, "general", 3, "alice", "taken");
    //  The middle seq of the run is taken: none of the run is stored
    sc_reply_t *reply = s_append_run (fixture, "general", 1, 5);
    s_assert_error (reply, "conflict");
    sc_reply_destroy (&reply);
    //  And so are its first and its last
    reply = s_append_run (fixture, "general", 3, 4);
    s_assert_error (reply, "conflict");
    sc_reply_destroy (&reply);
    reply = s_append_run (fixture, "general", 1, 3);
    s_assert_error (reply, "conflict");
    sc_reply_destroy (&reply);
    reply = s_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0);
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    assert_int_equal (messages->via.array.size, 1);
    s_assert_int (sc_map_field (&messages->via.array.ptr [0], "seq"), 3);
    s_assert_str (sc_map_field (&messages->via.array.ptr [0], "text"), "taken");
    sc_reply_destroy (&reply);
    s_assert_room_counts (fixture, "general", 1, 3);
    //  The seqs around it are still free
    s_append_run_ok (fixture, "general", 1, 2);
    s_append_run_ok (fixture, "general", 4, 2);
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 5, false);
}

static void
test_msg_append_invalid_runs_get_bad_request_and_store_nothing (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_room_create_ok (fixture, "general", false, 10, "alice");
    //  Seqs that do not follow one another: a gap, a repeat, backwards
    const int64_t gap [] = { 1, 2, 4 };
    const int64_t repeat [] = { 1, 2, 2 };
    const int64_t backwards [] = { 3, 2, 1 };
    const int64_t *runs [] = { gap, repeat, backwards };
    for (size_t index = 0; index < 3; index++) {
        pl_pack_t body;
        s_append_entries_body (&body, "general", 3, runs [index]);
        sc_reply_t *reply = s_call (fixture, "store.msg.append", &body);
        s_assert_error (reply, "bad_request");
        sc_reply_destroy (&reply);
    }
    //  Empty, and one longer than the longest
    sc_reply_t *reply = s_append_run (fixture, "general", 1, 0);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    reply = s_append_run (fixture, "general", 1, S_RUN_MAX + 1);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    pl_pack_t body;
    sc_body_init (&body, 3);                 //  both 'entry' and 'entries'
    pl_pack_kstr (&body, "room", "general");
    pl_pack_str (&body, "entry");
    s_pack_entry (&body.packer, 1, "alice", "one", NULL);
    pl_pack_str (&body, "entries");
    msgpack_pack_array (&body.packer, 1);
    s_pack_entry (&body.packer, 2, "alice", "two", NULL);
    reply = s_call (fixture, "store.msg.append", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 1);                 //  neither
    pl_pack_kstr (&body, "room", "general");
    reply = s_call (fixture, "store.msg.append", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 2);                 //  'entries' that is not an array
    pl_pack_kstr (&body, "room", "general");
    pl_pack_str (&body, "entries");
    s_pack_entry (&body.packer, 1, "alice", "one", NULL);
    reply = s_call (fixture, "store.msg.append", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    //  One bad element refuses the whole run, and the answer says which
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "room", "general");
    pl_pack_str (&body, "entries");
    msgpack_pack_array (&body.packer, 4);
    s_pack_entry (&body.packer, 1, "alice", "one", NULL);
    s_pack_entry (&body.packer, 2, "alice", "two", NULL);
    msgpack_pack_map (&body.packer, 5);     //  a kind that does not exist
    pl_pack_kint (&body, "seq", 3);
    pl_pack_kstr (&body, "kind", "shout");
    pl_pack_kstr (&body, "user", "alice");
    pl_pack_kint (&body, "ts", 1);
    pl_pack_kstr (&body, "text", "three");
    s_pack_entry (&body.packer, 4, "alice", "four", NULL);
    reply = s_call (fixture, "store.msg.append", &body);
    s_assert_error (reply, "bad_request");
    if (!strstr (reply->message, "[2]"))
        fail_msg ("the answer does not name the element [2]: %s", reply->message);
    sc_reply_destroy (&reply);

    sc_body_init (&body, 2);                 //  an element that is not a map
    pl_pack_kstr (&body, "room", "general");
    pl_pack_str (&body, "entries");
    msgpack_pack_array (&body.packer, 2);
    s_pack_entry (&body.packer, 1, "alice", "one", NULL);
    msgpack_pack_int64 (&body.packer, 2);
    reply = s_call (fixture, "store.msg.append", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    s_assert_room_counts (fixture, "general", 1, 0);
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 0, false);
}

static void
test_msg_append_entries_continue_the_timeline_after_single_appends (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_room_create_ok (fixture, "general", false, 10, "alice");
    s_append_ok (fixture, "general", 1, "alice", "entry 1");
    s_append_ok (fixture, "general", 2, "alice", "entry 2");
    s_append_run_ok (fixture, "general", 3, 5);
    s_assert_room_counts (fixture, "general", 1, 7);
    s_append_ok (fixture, "general", 8, "alice", "entry 8");
    s_assert_run_texts (fixture, "general", 0, 1, 8);
    s_assert_history (fixture, "general", 6, S_NO_CURSOR, 3, 3, 5, true);
    s_assert_room_counts (fixture, "general", 1, 8);
}

static void
test_pipelined_runs_one_conflict_spares_the_rest (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_room_create_ok (fixture, "general", false, 10, "alice");
    s_room_create_ok (fixture, "other", false, 10, "alice");
    s_append_ok (fixture, "general", 4, "alice", "entry 4");
    //  Sent without waiting, so that they arrive together. The second run
    //  takes seq 3, which the first took, and fails alone: the third, whose
    //  seq 5 the failed run had asked for too, stands
    pl_pack_t body;
    uint64_t rids [4];
    s_append_run_body (&body, "general", 1, 3);
    rids [0] = s_send (fixture, "store.msg.append", &body);
    s_append_run_body (&body, "general", 3, 3);
    rids [1] = s_send (fixture, "store.msg.append", &body);
    s_append_run_body (&body, "other", 1, 4);
    rids [2] = s_send (fixture, "store.msg.append", &body);
    s_append_run_body (&body, "general", 5, 2);
    rids [3] = s_send (fixture, "store.msg.append", &body);
    const int64_t last_seqs [] = { 3, 0, 4, 6 };
    for (size_t index = 0; index < 4; index++) {
        sc_reply_t *reply = sc_broker_recv (fixture->broker, 10000);
        assert_non_null (reply);
        assert_int_equal (reply->rid, rids [index]);
        if (index == 1)
            s_assert_error (reply, "conflict");
        else {
            s_assert_ok (reply);
            s_assert_int (sc_reply_field (reply, "seq"), last_seqs [index]);
        }
        sc_reply_destroy (&reply);
    }
    s_assert_run_texts (fixture, "general", 0, 1, 6);
    s_assert_run_texts (fixture, "other", 0, 1, 4);
    s_assert_room_counts (fixture, "general", 1, 6);
    s_assert_room_counts (fixture, "other", 1, 4);
}

static void
test_msg_history_pages_with_exact_more_flags (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_room_create_ok (fixture, "general", false, 10, "alice");
    s_room_create_ok (fixture, "empty", false, 10, "alice");
    for (int64_t seq = 1; seq <= 10; seq++)
        s_append_ok (fixture, "general", seq, "alice", "hi");

    //  Without a cursor: the newest
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 10, false);
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 3, 8, 10, true);
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 9, 2, 10, true);
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 10, 1, 10, false);
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 11, 1, 10, false);
    //  before: older than the cursor, more when older still remain
    s_assert_history (fixture, "general", 5, S_NO_CURSOR, 3, 2, 4, true);
    s_assert_history (fixture, "general", 4, S_NO_CURSOR, 3, 1, 3, false);
    s_assert_history (fixture, "general", 3, S_NO_CURSOR, 3, 1, 2, false);
    s_assert_history (fixture, "general", 1, S_NO_CURSOR, 3, 1, 0, false);
    s_assert_history (fixture, "general", 100, S_NO_CURSOR, 2, 9, 10, true);
    s_assert_history (fixture, "general", 11, S_NO_CURSOR, 10, 1, 10, false);
    //  after: newer than the cursor, oldest first, more when newer remain
    s_assert_history (fixture, "general", S_NO_CURSOR, 0, 2, 1, 2, true);
    s_assert_history (fixture, "general", S_NO_CURSOR, 6, 3, 7, 9, true);
    s_assert_history (fixture, "general", S_NO_CURSOR, 7, 3, 8, 10, false);
    s_assert_history (fixture, "general", S_NO_CURSOR, 8, 3, 9, 10, false);
    s_assert_history (fixture, "general", S_NO_CURSOR, 10, 3, 1, 0, false);
    s_assert_history (fixture, "general", S_NO_CURSOR, 0, 0, 1, 10, false);
    //  Limit bounds
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 1, 10, 10, true);
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 1000, 1, 10, false);
    s_assert_history (fixture, "empty", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 0, false);
    s_assert_history (fixture, "empty", 5, S_NO_CURSOR, 0, 1, 0, false);
    s_assert_history (fixture, "empty", S_NO_CURSOR, 0, 0, 1, 0, false);

    sc_reply_t *reply;
    pl_pack_t body;
    sc_body_init (&body, 2);                 //  limit 0
    pl_pack_kstr (&body, "room", "general");
    pl_pack_kint (&body, "limit", 0);
    reply = s_call (fixture, "store.msg.history", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    reply = s_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 1001);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    reply = s_history (fixture, "general", 5, 2, 0);        //  both cursors
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    sc_body_init (&body, 2);                 //  a cursor that is not a seq
    pl_pack_kstr (&body, "room", "general");
    pl_pack_kstr (&body, "before", "5");
    reply = s_call (fixture, "store.msg.history", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    reply = s_history (fixture, "nowhere", S_NO_CURSOR, S_NO_CURSOR, 0);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
}

static void
test_pipelined_room_writes_one_conflict_spares_the_rest (void **state)
{
    REAL_DB ();
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_user_create_ok (fixture, "carol");
    s_room_create_ok (fixture, "general", false, 10, "alice");
    //  Sent without waiting, so that they arrive together: bob's join takes
    //  a seq that the message before it took, and fails alone
    pl_pack_t body;
    uint64_t rids [5];
    s_append_body (&body, "general", 1, "alice", "one");
    rids [0] = s_send (fixture, "store.msg.append", &body);
    s_member_body (&body, "general", "bob", 1, "join");
    rids [1] = s_send (fixture, "store.member.add", &body);
    s_member_body (&body, "general", "carol", 2, "join");
    rids [2] = s_send (fixture, "store.member.add", &body);
    s_append_body (&body, "general", 3, "carol", "three");
    rids [3] = s_send (fixture, "store.msg.append", &body);
    s_member_body (&body, "general", "bob", 4, "join");
    rids [4] = s_send (fixture, "store.member.add", &body);
    for (size_t index = 0; index < 5; index++) {
        sc_reply_t *reply = sc_broker_recv (fixture->broker, 10000);
        assert_non_null (reply);
        assert_int_equal (reply->rid, rids [index]);
        if (index == 1)
            s_assert_error (reply, "conflict");
        else
            s_assert_ok (reply);
        sc_reply_destroy (&reply);
    }
    const char *members [] = { "alice", "bob", "carol" };
    s_assert_members (fixture, "general", 3, members);
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 4, false);
}

#define S_BIG_TIMELINE 5000
#define S_WINDOW 250

static void
test_msg_history_pages_a_big_timeline_correctly (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_room_create_ok (fixture, "big", false, 10, "alice");
    s_room_create_ok (fixture, "small", false, 10, "alice");
    //  Pipelined in windows, the small room's entries interleaved
    int64_t small_seq = 0;
    for (int64_t first = 1; first <= S_BIG_TIMELINE; first += S_WINDOW) {
        size_t sent = 0;
        for (int64_t seq = first; seq < first + S_WINDOW && seq <= S_BIG_TIMELINE; seq++) {
            char text [32];
            snprintf (text, sizeof text, "message %" PRId64, seq);
            pl_pack_t body;
            s_append_body (&body, "big", seq, "alice", text);
            s_send (fixture, "store.msg.append", &body);
            sent++;
            if (seq % 50 == 0) {
                s_append_body (&body, "small", ++small_seq, "alice", "aside");
                s_send (fixture, "store.msg.append", &body);
                sent++;
            }
        }
        for (size_t index = 0; index < sent; index++) {
            sc_reply_t *reply = sc_broker_recv (fixture->broker, 30000);
            assert_non_null (reply);
            s_assert_ok (reply);
            sc_reply_destroy (&reply);
        }
    }
    s_assert_room_counts (fixture, "big", 1, S_BIG_TIMELINE);
    s_assert_room_counts (fixture, "small", 1, small_seq);

    //  Backward from the newest, 50 at a time, to the very first
    int64_t before = S_NO_CURSOR;
    int64_t expected_last = S_BIG_TIMELINE;
    size_t pages = 0;
    while (true) {
        sc_reply_t *reply = s_history (fixture, "big", before, S_NO_CURSOR, 50);
        s_assert_ok (reply);
        const msgpack_object *messages = s_array_field (reply, "messages");
        assert_int_equal (messages->via.array.size, 50);
        for (uint32_t index = 0; index < 50; index++) {
            const msgpack_object *entry = &messages->via.array.ptr [index];
            int64_t seq = expected_last - 49 + index;
            s_assert_int (sc_map_field (entry, "seq"), seq);
            char text [32];
            snprintf (text, sizeof text, "message %" PRId64, seq);
            s_assert_str (sc_map_field (entry, "text"), text);
        }
        bool more = s_more (reply);
        sc_reply_destroy (&reply);
        pages++;
        before = expected_last - 49;
        expected_last -= 50;
        assert_int_equal (more, expected_last > 0);
        if (!more)
            break;
    }
    assert_int_equal (pages, S_BIG_TIMELINE / 50);

    //  Forward from the start, 1000 at a time
    s_assert_history (fixture, "big", S_NO_CURSOR, 0, 1000, 1, 1000, true);
    s_assert_history (fixture, "big", S_NO_CURSOR, 3000, 1000, 3001, 4000, true);
    s_assert_history (fixture, "big", S_NO_CURSOR, 4000, 1000, 4001, 5000, false);
    s_assert_history (fixture, "big", 2501, S_NO_CURSOR, 7, 2494, 2500, true);
    s_assert_history (fixture, "big", S_NO_CURSOR, S_NO_CURSOR, 1000, 4001, 5000, true);
    s_assert_history (fixture, "small", S_NO_CURSOR, S_NO_CURSOR, 1000, 1, small_seq, false);
}

static void
test_rooms_members_invitations_and_timelines_survive_plugin_restart (void **state)
{
    REAL_DB ();
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "Alice");
    s_user_create_ok (fixture, "bob");
    s_user_create_ok (fixture, "carol");
    sc_reply_t *reply = s_room_create (fixture, "Hideout", "our place", true, 7, "alice", 42);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    s_room_create_ok (fixture, "gone", false, 7, "alice");
    reply = s_invite (fixture, "hideout", "bob", "alice");
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_invite (fixture, "hideout", "carol", "alice");
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    s_member_add_ok (fixture, "hideout", "bob", 1);
    s_append_ok (fixture, "hideout", 2, "bob", "remember me");
    reply = s_by_name (fixture, "store.room.delete", "name", "gone");
    s_assert_ok (reply);
    sc_reply_destroy (&reply);

    sc_broker_stop (fixture->broker);
    s_fixture_start (fixture);

    reply = s_by_name (fixture, "store.room.get", "name", "HIDEOUT");
    s_assert_ok (reply);
    s_assert_room (sc_reply_field (reply, "room"), "Hideout", "our place", true, 7, "Alice", 42,
                   2, 2);
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.room.get", "name", "gone");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    const char *members [] = { "Alice", "bob" };
    s_assert_members (fixture, "hideout", 2, members);
    reply = s_history (fixture, "hideout", S_NO_CURSOR, S_NO_CURSOR, 0);
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    assert_int_equal (messages->via.array.size, 2);
    s_assert_str (sc_map_field (&messages->via.array.ptr [0], "event"), "join");
    s_assert_str (sc_map_field (&messages->via.array.ptr [1], "text"), "remember me");
    sc_reply_destroy (&reply);
    //  carol's invitation is still there; the timeline goes on where it stopped
    s_member_add_ok (fixture, "hideout", "carol", 3);
    reply = s_append (fixture, "hideout", 2, "carol", "taken");
    s_assert_error (reply, "conflict");
    sc_reply_destroy (&reply);
    s_append_ok (fixture, "hideout", 4, "carol", "next");
    s_assert_history (fixture, "hideout", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 4, false);
}


//  --------------------------------------------------------------------------
//  Private messages: conversations, read markers

//  The ts of every pm these cases append, unless a case says otherwise: the
//  order of conversations follows it
#define S_PM_TS(seq) (1710000000000 + (seq) * 1000)

static void
s_pm_append_body (pl_pack_t *body, const char *from, const char *to, int64_t seq,
                  const char *text, int64_t ts)
{
    sc_body_init (body, 5);
    pl_pack_kstr (body, "from", from);
    pl_pack_kstr (body, "to", to);
    pl_pack_kint (body, "seq", seq);
    pl_pack_kstr (body, "text", text);
    pl_pack_kint (body, "ts", ts);
}

static sc_reply_t *
s_pm_append (fixture_t *fixture, const char *from, const char *to, int64_t seq,
             const char *text, int64_t ts)
{
    pl_pack_t body;
    s_pm_append_body (&body, from, to, seq, text, ts);
    return s_call (fixture, "store.pm.append", &body);
}

static void
s_pm_append_ok (fixture_t *fixture, const char *from, const char *to, int64_t seq,
                const char *text, int64_t ts)
{
    sc_reply_t *reply = s_pm_append (fixture, from, to, seq, text, ts);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "seq"), seq);
    sc_reply_destroy (&reply);
}

//  A request of fields {user, with}
static sc_reply_t *
s_pm_pair (fixture_t *fixture, const char *type, const char *user, const char *with)
{
    pl_pack_t body;
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "user", user);
    pl_pack_kstr (&body, "with", with);
    return s_call (fixture, type, &body);
}

static void
s_assert_pm_last_seq (fixture_t *fixture, const char *user, const char *with, int64_t last_seq)
{
    sc_reply_t *reply = s_pm_pair (fixture, "store.pm.last_seq", user, with);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "last_seq"), last_seq);
    sc_reply_destroy (&reply);
}

//  store.pm.history; before/after S_NO_CURSOR for none, limit 0 for none
static sc_reply_t *
s_pm_history (fixture_t *fixture, const char *user, const char *with, int64_t before,
              int64_t after, int64_t limit)
{
    pl_pack_t body;
    sc_body_init (&body, 2 + (before != S_NO_CURSOR) + (after != S_NO_CURSOR) + (limit != 0));
    pl_pack_kstr (&body, "user", user);
    pl_pack_kstr (&body, "with", with);
    if (before != S_NO_CURSOR)
        pl_pack_kint (&body, "before", before);
    if (after != S_NO_CURSOR)
        pl_pack_kint (&body, "after", after);
    if (limit)
        pl_pack_kint (&body, "limit", limit);
    return s_call (fixture, "store.pm.history", &body);
}

//  Asserts a pm history answer holds exactly seqs first..last (none if
//  last < first) and more
static void
s_assert_pm_history (fixture_t *fixture, const char *user, const char *with, int64_t before,
                     int64_t after, int64_t limit, int64_t first, int64_t last, bool more)
{
    sc_reply_t *reply = s_pm_history (fixture, user, with, before, after, limit);
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    int64_t expected = last >= first ? last - first + 1 : 0;
    if ((int64_t) messages->via.array.size != expected)
        fail_msg ("pm history of %s with %s (before %" PRId64 ", after %" PRId64 ", limit %"
                  PRId64 "): %u entries, expected %" PRId64, user, with, before, after, limit,
                  messages->via.array.size, expected);
    for (uint32_t index = 0; index < messages->via.array.size; index++)
        s_assert_int (sc_map_field (&messages->via.array.ptr [index], "seq"), first + index);
    if (s_more (reply) != more)
        fail_msg ("pm history of %s with %s (before %" PRId64 ", after %" PRId64 ", limit %"
                  PRId64 "): more is %s", user, with, before, after, limit,
                  more ? "false" : "true");
    sc_reply_destroy (&reply);
}

//  Asserts a pm entry's fields; text NULL to skip it
static void
s_assert_pm_entry (const msgpack_object *entry, int64_t seq, const char *from, const char *to,
                   const char *text, int64_t ts)
{
    assert_non_null (entry);
    assert_int_equal (entry->type, MSGPACK_OBJECT_MAP);
    s_assert_int (sc_map_field (entry, "seq"), seq);
    s_assert_str (sc_map_field (entry, "from"), from);
    s_assert_str (sc_map_field (entry, "to"), to);
    if (text)
        s_assert_str (sc_map_field (entry, "text"), text);
    s_assert_int (sc_map_field (entry, "ts"), ts);
}

//  store.pm.conversations; limit 0 for none
static sc_reply_t *
s_pm_conversations (fixture_t *fixture, const char *user, int64_t limit)
{
    pl_pack_t body;
    sc_body_init (&body, limit ? 2 : 1);
    pl_pack_kstr (&body, "user", user);
    if (limit)
        pl_pack_kint (&body, "limit", limit);
    return s_call (fixture, "store.pm.conversations", &body);
}

//  One expected row of store.pm.conversations
typedef struct {
    const char *with;               //  the other user, as registered
    int64_t last_seq;               //  seq of the newest entry
    const char *last_from;          //  its sender, as registered
    int64_t unread;                 //  the expected count
} s_conversation_t;

//  Asserts user's conversations are exactly rows, in that order
static void
s_assert_conversations (fixture_t *fixture, const char *user, int64_t limit, size_t count,
                        const s_conversation_t *rows)
{
    sc_reply_t *reply = s_pm_conversations (fixture, user, limit);
    s_assert_ok (reply);
    const msgpack_object *conversations = s_array_field (reply, "conversations");
    if (conversations->via.array.size != count)
        fail_msg ("conversations of %s: %u, expected %zu", user,
                  conversations->via.array.size, count);
    for (size_t index = 0; index < count; index++) {
        const msgpack_object *row = &conversations->via.array.ptr [index];
        assert_int_equal (row->type, MSGPACK_OBJECT_MAP);
        const msgpack_object *with = sc_map_field (row, "with");
        if (!with || !sc_object_streq (with, rows [index].with))
            fail_msg ("conversation %zu of %s: expected with '%s'", index, user,
                      rows [index].with);
        const msgpack_object *last = sc_map_field (row, "last");
        assert_non_null (last);
        assert_int_equal (last->type, MSGPACK_OBJECT_MAP);
        s_assert_int (sc_map_field (last, "seq"), rows [index].last_seq);
        s_assert_str (sc_map_field (last, "from"), rows [index].last_from);
        const msgpack_object *to = sc_map_field (last, "to");
        assert_non_null (to);
        assert_int_equal (to->type, MSGPACK_OBJECT_STR);
        assert_non_null (sc_map_field (last, "text"));
        assert_non_null (sc_map_field (last, "ts"));
        const msgpack_object *unread = sc_map_field (row, "unread");
        assert_non_null (unread);
        assert_int_equal (unread->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        if ((int64_t) unread->via.u64 != rows [index].unread)
            fail_msg ("conversation of %s with %s: unread %" PRIu64 ", expected %" PRId64,
                      user, rows [index].with, unread->via.u64, rows [index].unread);
        //  Schema 7: the newest entry's seq, and the user's marker
        s_assert_int (sc_map_field (row, "last_seq"), rows [index].last_seq);
        const msgpack_object *read_seq = sc_map_field (row, "read_seq");
        assert_non_null (read_seq);
        assert_int_equal (read_seq->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    }
    sc_reply_destroy (&reply);
}

static sc_reply_t *
s_pm_read (fixture_t *fixture, const char *user, const char *with, int64_t seq)
{
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "user", user);
    pl_pack_kstr (&body, "with", with);
    pl_pack_kint (&body, "seq", seq);
    return s_call (fixture, "store.pm.read", &body);
}

//  store.pm.read, asserting ok and the unread count it answers
static void
s_pm_read_ok (fixture_t *fixture, const char *user, const char *with, int64_t seq,
              int64_t unread)
{
    sc_reply_t *reply = s_pm_read (fixture, user, with, seq);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "unread"), unread);
    sc_reply_destroy (&reply);
}

//  store.pm.append from 'from' to 'to' with 'messages': count messages with
//  seqs seqs [i], text "pm <seq>" and ts S_PM_TS (seq), the one at index i
//  sent by senders [i] (any case)
static void
s_pm_messages_body (pl_pack_t *body, const char *from, const char *to, uint32_t count,
                    const int64_t *seqs, const char *const *senders)
{
    sc_body_init (body, 3);
    pl_pack_kstr (body, "from", from);
    pl_pack_kstr (body, "to", to);
    pl_pack_str (body, "messages");
    msgpack_pack_array (&body->packer, count);
    for (uint32_t index = 0; index < count; index++) {
        char text [32];
        snprintf (text, sizeof text, "pm %" PRId64, seqs [index]);
        msgpack_pack_map (&body->packer, 4);
        pl_pack_kstr (body, "from", senders [index]);
        pl_pack_kint (body, "seq", seqs [index]);
        pl_pack_kstr (body, "text", text);
        pl_pack_kint (body, "ts", S_PM_TS (seqs [index]));
    }
}

//  The sender of seq in the runs these cases append: 'to' sends the seqs
//  that are multiples of three, 'from' the others, so a run goes both ways
static const char *
s_pm_run_sender (const char *from, const char *to, int64_t seq)
{
    return seq % 3 == 0 ? to : from;
}

//  store.pm.append with 'messages': the run of seqs first .. first + count - 1
static void
s_pm_run_body (pl_pack_t *body, const char *from, const char *to, int64_t first, uint32_t count)
{
    int64_t seqs [S_RUN_MAX + 1] = { 0 };
    const char *senders [S_RUN_MAX + 1] = { NULL };
    assert_true (count <= S_RUN_MAX + 1);
    for (uint32_t index = 0; index < count; index++) {
        seqs [index] = first + index;
        senders [index] = s_pm_run_sender (from, to, first + index);
    }
    s_pm_messages_body (body, from, to, count, seqs, senders);
}

static sc_reply_t *
s_pm_run (fixture_t *fixture, const char *from, const char *to, int64_t first, uint32_t count)
{
    pl_pack_t body;
    s_pm_run_body (&body, from, to, first, count);
    return s_call (fixture, "store.pm.append", &body);
}

//  Appends the run and asserts ok with seq, the run's last
static void
s_pm_run_ok (fixture_t *fixture, const char *from, const char *to, int64_t first,
             uint32_t count)
{
    sc_reply_t *reply = s_pm_run (fixture, from, to, first, count);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "seq"), first + count - 1);
    sc_reply_destroy (&reply);
}

//  Appends the messages of s_pm_run_ok one single append each
static void
s_pm_singles_ok (fixture_t *fixture, const char *from, const char *to, int64_t first,
                 uint32_t count)
{
    for (int64_t seq = first; seq < first + count; seq++) {
        char text [32];
        snprintf (text, sizeof text, "pm %" PRId64, seq);
        const char *sender = s_pm_run_sender (from, to, seq);
        s_pm_append_ok (fixture, sender, sender == from ? to : from, seq, text, S_PM_TS (seq));
    }
}

//  True if both are present and hold the same value
static bool
s_objects_equal (const msgpack_object *one, const msgpack_object *other)
{
    return one && other && msgpack_object_equal (*one, *other);
}

//  True if the string object names the user name, without regard to case
static bool
s_names (const msgpack_object *object, const char *name)
{
    return object && object->type == MSGPACK_OBJECT_STR && object->via.str.size == strlen (name)
        && strncasecmp (object->via.str.ptr, name, object->via.str.size) == 0;
}

//  Asserts that two pm entries are the same message: seq, text, ts, and sent
//  by the first of its pair (one, three) in both or in neither
static void
s_assert_pm_entries_match (const msgpack_object *entry, const char *one,
                           const msgpack_object *other, const char *three)
{
    assert_true (s_objects_equal (sc_map_field (entry, "seq"), sc_map_field (other, "seq")));
    assert_true (s_objects_equal (sc_map_field (entry, "text"), sc_map_field (other, "text")));
    assert_true (s_objects_equal (sc_map_field (entry, "ts"), sc_map_field (other, "ts")));
    if (s_names (sc_map_field (entry, "from"), one) != s_names (sc_map_field (other, "from"), three))
        fail_msg ("seq %" PRIu64 ": not sent the same way", sc_map_field (entry, "seq")->via.u64);
}

//  The row of user's conversations with with, asserted present; in reply
static const msgpack_object *
s_conversation_row (sc_reply_t *reply, const char *user, const char *with)
{
    s_assert_ok (reply);
    const msgpack_object *rows = s_array_field (reply, "conversations");
    for (uint32_t index = 0; index < rows->via.array.size; index++)
        if (s_names (sc_map_field (&rows->via.array.ptr [index], "with"), with))
            return &rows->via.array.ptr [index];
    fail_msg ("%s has no conversation with %s", user, with);
    return NULL;
}

//  Asserts that the conversation of one and two and that of three and four
//  are alike, with one in the place of three and two in that of four: the
//  same messages, last seq, conversation rows (last message, unread) from
//  either side
static void
s_assert_pm_conversations_match (fixture_t *fixture, const char *one, const char *two,
                                 const char *three, const char *four)
{
    sc_reply_t *reply = s_pm_history (fixture, one, two, S_NO_CURSOR, S_NO_CURSOR, 1000);
    sc_reply_t *other = s_pm_history (fixture, three, four, S_NO_CURSOR, S_NO_CURSOR, 1000);
    s_assert_ok (reply);
    s_assert_ok (other);
    const msgpack_object *messages = s_array_field (reply, "messages");
    const msgpack_object *others = s_array_field (other, "messages");
    assert_int_equal (messages->via.array.size, others->via.array.size);
    for (uint32_t index = 0; index < messages->via.array.size; index++)
        s_assert_pm_entries_match (&messages->via.array.ptr [index], one,
                                   &others->via.array.ptr [index], three);
    int64_t last_seq = (int64_t) sc_map_field (&messages->via.array.ptr
                                               [messages->via.array.size - 1], "seq")->via.u64;
    sc_reply_destroy (&reply);
    sc_reply_destroy (&other);
    s_assert_pm_last_seq (fixture, one, two, last_seq);
    s_assert_pm_last_seq (fixture, three, four, last_seq);

    const char *sides [2][2] = { { one, two }, { two, one } };
    const char *like [2][2] = { { three, four }, { four, three } };
    for (size_t side = 0; side < 2; side++) {
        reply = s_pm_conversations (fixture, sides [side][0], 0);
        other = s_pm_conversations (fixture, like [side][0], 0);
        const msgpack_object *row = s_conversation_row (reply, sides [side][0], sides [side][1]);
        const msgpack_object *like_row = s_conversation_row (other, like [side][0],
                                                             like [side][1]);
        assert_true (s_objects_equal (sc_map_field (row, "unread"),
                                      sc_map_field (like_row, "unread")));
        s_assert_pm_entries_match (sc_map_field (row, "last"), one,
                                   sc_map_field (like_row, "last"), three);
        s_assert_int (sc_map_field (sc_map_field (row, "last"), "seq"), last_seq);
        sc_reply_destroy (&reply);
        sc_reply_destroy (&other);
    }
}

static void
test_pm_types_with_body_not_a_map_get_bad_request (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    const char *types [] = { "store.pm.append", "store.pm.last_seq", "store.pm.history",
                             "store.pm.conversations", "store.pm.read" };
    static const uint8_t array [] = { 0x91, 0x01 };         //  [1]
    static const uint8_t truncated [] = { 0x82, 0xa4, 'u' };
    for (size_t index = 0; index < sizeof types / sizeof types [0]; index++) {
        sc_reply_t *reply = sc_broker_call (fixture->broker, types [index], array, sizeof array);
        assert_non_null (reply);
        s_assert_error (reply, "bad_request");
        sc_reply_destroy (&reply);
        reply = sc_broker_call (fixture->broker, types [index], truncated, sizeof truncated);
        assert_non_null (reply);
        s_assert_error (reply, "bad_request");
        sc_reply_destroy (&reply);
    }
}

static void
test_store_info_schema_version_is_at_least_three (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    sc_reply_t *reply = s_call (fixture, "store.info", NULL);
    s_assert_ok (reply);
    assert_true (sc_reply_field (reply, "schema_version")->via.u64 >= 3);
    sc_reply_destroy (&reply);
}

static void
test_pm_append_then_history_returns_entries_with_names_as_registered (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "Alice");
    s_user_create_ok (fixture, "bob");
    sc_reply_t *reply = s_pm_append (fixture, "ALICE", "BOB", 1, "hello bob", S_PM_TS (1));
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "seq"), 1);
    s_assert_str (sc_reply_field (reply, "from"), "Alice");
    s_assert_str (sc_reply_field (reply, "to"), "bob");
    sc_reply_destroy (&reply);
    reply = s_pm_append (fixture, "bob", "alice", 2, "hi Alice", S_PM_TS (2));
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "seq"), 2);
    s_assert_str (sc_reply_field (reply, "from"), "bob");
    s_assert_str (sc_reply_field (reply, "to"), "Alice");
    sc_reply_destroy (&reply);

    //  The same conversation from either side, in any case
    const char *users [] = { "alice", "Bob", "ALICE", "bob" };
    const char *withs [] = { "BOB", "alice", "bob", "Alice" };
    for (size_t index = 0; index < 4; index++) {
        reply = s_pm_history (fixture, users [index], withs [index], S_NO_CURSOR, S_NO_CURSOR, 0);
        s_assert_ok (reply);
        const msgpack_object *messages = s_array_field (reply, "messages");
        assert_int_equal (messages->via.array.size, 2);
        s_assert_pm_entry (&messages->via.array.ptr [0], 1, "Alice", "bob", "hello bob",
                           S_PM_TS (1));
        s_assert_pm_entry (&messages->via.array.ptr [1], 2, "bob", "Alice", "hi Alice",
                           S_PM_TS (2));
        assert_false (s_more (reply));
        sc_reply_destroy (&reply);
        s_assert_pm_last_seq (fixture, users [index], withs [index], 2);
    }
    //  Text is kept as sent: UTF-8, and the longest allowed
    s_pm_append_ok (fixture, "alice", "bob", 3, "gr\xc3\xbc\xc3\x9f" "e \xe2\x9c\x93", S_PM_TS (3));
    char *longest = (char *) malloc (16001);
    memset (longest, 'x', 16000);
    longest [16000] = 0;
    s_pm_append_ok (fixture, "bob", "alice", 4, longest, S_PM_TS (4));
    reply = s_pm_history (fixture, "alice", "bob", S_NO_CURSOR, 2, 0);
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    assert_int_equal (messages->via.array.size, 2);
    s_assert_pm_entry (&messages->via.array.ptr [0], 3, "Alice", "bob",
                       "gr\xc3\xbc\xc3\x9f" "e \xe2\x9c\x93", S_PM_TS (3));
    s_assert_pm_entry (&messages->via.array.ptr [1], 4, "bob", "Alice", longest, S_PM_TS (4));
    sc_reply_destroy (&reply);
    free (longest);
}


//  Answers bounded by bytes (STORE.md): 16,000-byte texts, more of them
//  than fit 1 MiB; a cut page keeps the entries next to its cursor

#define S_BIG_TEXT  16000
#define S_BIG_COUNT 120

static char *
s_big_text (void)
{
    char *text = (char *) malloc (S_BIG_TEXT + 1);
    assert_non_null (text);
    memset (text, 'x', S_BIG_TEXT);
    text [S_BIG_TEXT] = 0;
    return text;
}

//  Asserts a history answer under 1 MiB whose seqs run without a gap from
//  first (or to last), with more; returns how many it holds
static uint32_t
s_assert_pm_cut (fixture_t *fixture, int64_t before, int64_t after, int64_t first,
                 int64_t last)
{
    sc_reply_t *reply = s_pm_history (fixture, "alice", "bob", before, after, 1000);
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    uint32_t count = messages->via.array.size;
    if (count == 0 || count >= S_BIG_COUNT || count * S_BIG_TEXT >= 1024 * 1024)
        fail_msg ("pm history cut to %u entries", count);
    int64_t start = first ? first : last - (int64_t) count + 1;
    for (uint32_t index = 0; index < count; index++)
        s_assert_int (sc_map_field (&messages->via.array.ptr [index], "seq"), start + index);
    assert_true (s_more (reply));
    sc_reply_destroy (&reply);
    return count;
}

static void
test_pm_history_is_cut_by_bytes_next_to_its_cursor (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    char *text = s_big_text ();
    for (int64_t seq = 1; seq <= S_BIG_COUNT; seq++)
        s_pm_append_ok (fixture, seq % 2 ? "alice" : "bob", seq % 2 ? "bob" : "alice", seq,
                        text, S_PM_TS (seq));
    free (text);
    //  The newest without a cursor and before one, the oldest after one
    s_assert_pm_cut (fixture, S_NO_CURSOR, S_NO_CURSOR, 0, S_BIG_COUNT);
    s_assert_pm_cut (fixture, 100, S_NO_CURSOR, 0, 99);
    s_assert_pm_cut (fixture, S_NO_CURSOR, 0, 1, 0);
    s_assert_pm_cut (fixture, S_NO_CURSOR, 10, 11, 0);
    //  A page that fits is not cut
    s_assert_pm_history (fixture, "alice", "bob", S_NO_CURSOR, S_NO_CURSOR, 10,
                         S_BIG_COUNT - 9, S_BIG_COUNT, true);
    s_assert_pm_history (fixture, "alice", "bob", 11, S_NO_CURSOR, 1000, 1, 10, false);
}

static void
test_pm_conversations_are_cut_by_bytes_newest_first (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "hub");
    char *text = s_big_text ();
    char name [16];
    for (int index = 0; index < 70; index++) {
        snprintf (name, sizeof name, "peer%02d", index);
        s_user_create_ok (fixture, name);
        s_pm_append_ok (fixture, name, "hub", 1, text, S_PM_TS (index));
    }
    free (text);
    sc_reply_t *reply = s_pm_conversations (fixture, "hub", 0);
    s_assert_ok (reply);
    const msgpack_object *conversations = s_array_field (reply, "conversations");
    uint32_t count = conversations->via.array.size;
    if (count == 0 || count >= 70 || count * S_BIG_TEXT >= 1024 * 1024)
        fail_msg ("pm conversations cut to %u", count);
    for (uint32_t index = 0; index < count; index++) {
        snprintf (name, sizeof name, "peer%02u", 69 - index);
        s_assert_str (sc_map_field (&conversations->via.array.ptr [index], "with"), name);
    }
    assert_true (s_more (reply));
    sc_reply_destroy (&reply);
    //  A list that fits says more: false
    reply = s_pm_conversations (fixture, "peer00", 0);
    s_assert_ok (reply);
    assert_int_equal (s_array_field (reply, "conversations")->via.array.size, 1);
    assert_false (s_more (reply));
    sc_reply_destroy (&reply);
}

static void
test_pm_conversation_is_the_unordered_pair_without_regard_to_case (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "Alice");
    s_user_create_ok (fixture, "Bob");
    s_user_create_ok (fixture, "carol");
    //  One seq space, whoever sends and however the names are spelled
    s_pm_append_ok (fixture, "alice", "bob", 1, "a1", S_PM_TS (1));
    s_pm_append_ok (fixture, "BOB", "ALICE", 2, "b2", S_PM_TS (2));
    s_pm_append_ok (fixture, "aLiCe", "bOb", 3, "a3", S_PM_TS (3));
    //  Other pairs have seqs of their own
    s_pm_append_ok (fixture, "carol", "alice", 1, "c1", S_PM_TS (4));
    s_pm_append_ok (fixture, "bob", "carol", 1, "b1", S_PM_TS (5));
    s_assert_pm_last_seq (fixture, "bob", "alice", 3);
    s_assert_pm_last_seq (fixture, "ALICE", "BOB", 3);
    s_assert_pm_last_seq (fixture, "alice", "carol", 1);
    s_assert_pm_last_seq (fixture, "Carol", "Bob", 1);
    s_assert_pm_history (fixture, "Bob", "alice", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 3, false);
    s_assert_pm_history (fixture, "alice", "carol", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 1, false);

    const s_conversation_t of_alice [] = {
        { "carol", 1, "carol", 1 },
        { "Bob", 3, "Alice", 1 },
    };
    s_assert_conversations (fixture, "ALICE", 0, 2, of_alice);
    const s_conversation_t of_bob [] = {
        { "carol", 1, "Bob", 0 },
        { "Alice", 3, "Alice", 2 },
    };
    s_assert_conversations (fixture, "bob", 0, 2, of_bob);
}

static void
test_pm_append_with_unknown_user_is_not_found_and_stores_nothing (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    sc_reply_t *reply = s_pm_append (fixture, "alice", "ghost", 1, "anyone?", S_PM_TS (1));
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_pm_append (fixture, "ghost", "alice", 1, "boo", S_PM_TS (1));
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_pm_append (fixture, "ghost", "phantom", 1, "boo", S_PM_TS (1));
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    s_assert_pm_last_seq (fixture, "alice", "ghost", 0);
    s_assert_pm_history (fixture, "alice", "ghost", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 0, false);
    s_assert_conversations (fixture, "alice", 0, 0, NULL);
    //  The user named later exists: the conversation starts empty
    s_user_create_ok (fixture, "ghost");
    s_assert_pm_last_seq (fixture, "alice", "ghost", 0);
    s_pm_append_ok (fixture, "alice", "ghost", 1, "welcome", S_PM_TS (2));
    s_assert_pm_history (fixture, "ghost", "alice", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 1, false);
}

static void
test_pm_append_to_oneself_is_bad_request_in_any_case (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "Alice");
    const char *spellings [] = { "Alice", "alice", "ALICE" };
    for (size_t index = 0; index < 3; index++) {
        sc_reply_t *reply = s_pm_append (fixture, "Alice", spellings [index], 1, "me",
                                         S_PM_TS (1));
        s_assert_error (reply, "bad_request");
        sc_reply_destroy (&reply);
    }
    s_assert_conversations (fixture, "alice", 0, 0, NULL);
}

static void
test_pm_append_invalid_fields_get_bad_request_and_store_nothing (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    pl_pack_t body;
    sc_reply_t *reply;
    //  Each body lacks or spoils one field of a valid append
    const char *fields [] = { "from", "to", "seq", "text", "ts" };
    for (size_t missing = 0; missing < 5; missing++) {
        sc_body_init (&body, 4);
        for (size_t index = 0; index < 5; index++) {
            if (index == missing)
                continue;
            if (index == 0)
                pl_pack_kstr (&body, "from", "alice");
            else
            if (index == 1)
                pl_pack_kstr (&body, "to", "bob");
            else
            if (index == 2)
                pl_pack_kint (&body, "seq", 1);
            else
            if (index == 3)
                pl_pack_kstr (&body, "text", "hi");
            else
                pl_pack_kint (&body, "ts", S_PM_TS (1));
        }
        reply = s_call (fixture, "store.pm.append", &body);
        if (!reply->code)
            fail_msg ("an append without '%s' was accepted", fields [missing]);
        s_assert_error (reply, "bad_request");
        sc_reply_destroy (&reply);
    }
    reply = s_pm_append (fixture, "alice", "bob", 0, "seq 0", S_PM_TS (1));
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    reply = s_pm_append (fixture, "alice", "bob", -3, "negative", S_PM_TS (1));
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    reply = s_pm_append (fixture, "alice", "bob", 1, "negative ts", -1);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    reply = s_pm_append (fixture, "", "bob", 1, "empty name", S_PM_TS (1));
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    char *too_long = (char *) malloc (16002);
    memset (too_long, 'x', 16001);
    too_long [16001] = 0;
    reply = s_pm_append (fixture, "alice", "bob", 1, too_long, S_PM_TS (1));
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    free (too_long);

    sc_body_init (&body, 5);                 //  seq is a string
    pl_pack_kstr (&body, "from", "alice");
    pl_pack_kstr (&body, "to", "bob");
    pl_pack_kstr (&body, "seq", "1");
    pl_pack_kstr (&body, "text", "hi");
    pl_pack_kint (&body, "ts", S_PM_TS (1));
    reply = s_call (fixture, "store.pm.append", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 5);                 //  text is a number, to an array
    pl_pack_kstr (&body, "from", "alice");
    pl_pack_str (&body, "to");
    msgpack_pack_array (&body.packer, 1);
    msgpack_pack_str_with_body (&body.packer, "bob", 3);
    pl_pack_kint (&body, "seq", 1);
    pl_pack_kint (&body, "text", 42);
    pl_pack_kint (&body, "ts", S_PM_TS (1));
    reply = s_call (fixture, "store.pm.append", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    s_assert_pm_last_seq (fixture, "alice", "bob", 0);
    s_assert_conversations (fixture, "alice", 0, 0, NULL);
    s_assert_conversations (fixture, "bob", 0, 0, NULL);
}

static void
test_pm_append_with_taken_seq_conflicts_and_keeps_the_first (void **state)
{
    REAL_DB ();
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_user_create_ok (fixture, "carol");
    s_pm_append_ok (fixture, "alice", "bob", 1, "first", S_PM_TS (1));
    //  Taken from the other side too: the pair is one conversation
    sc_reply_t *reply = s_pm_append (fixture, "bob", "alice", 1, "second", S_PM_TS (2));
    s_assert_error (reply, "conflict");
    sc_reply_destroy (&reply);
    reply = s_pm_append (fixture, "ALICE", "BOB", 1, "third", S_PM_TS (3));
    s_assert_error (reply, "conflict");
    sc_reply_destroy (&reply);
    //  Seqs are per conversation
    s_pm_append_ok (fixture, "alice", "carol", 1, "elsewhere", S_PM_TS (4));

    reply = s_pm_history (fixture, "bob", "alice", S_NO_CURSOR, S_NO_CURSOR, 0);
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    assert_int_equal (messages->via.array.size, 1);
    s_assert_pm_entry (&messages->via.array.ptr [0], 1, "alice", "bob", "first", S_PM_TS (1));
    sc_reply_destroy (&reply);
    //  The refused appends neither moved the conversation nor counted as unread
    const s_conversation_t of_bob [] = { { "alice", 1, "alice", 1 } };
    s_assert_conversations (fixture, "bob", 0, 1, of_bob);
    const s_conversation_t of_alice [] = {
        { "carol", 1, "alice", 0 },
        { "bob", 1, "alice", 0 },
    };
    s_assert_conversations (fixture, "alice", 0, 2, of_alice);
}

static void
test_pm_last_seq_follows_appends_and_is_zero_without_messages (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_user_create_ok (fixture, "carol");
    s_assert_pm_last_seq (fixture, "alice", "bob", 0);
    s_assert_pm_last_seq (fixture, "alice", "nobody", 0);
    s_assert_pm_last_seq (fixture, "nobody", "noone", 0);
    for (int64_t seq = 1; seq <= 5; seq++) {
        s_pm_append_ok (fixture, seq % 2 ? "alice" : "bob", seq % 2 ? "bob" : "alice", seq,
                        "tick", S_PM_TS (seq));
        s_assert_pm_last_seq (fixture, "bob", "alice", seq);
    }
    s_assert_pm_last_seq (fixture, "alice", "carol", 0);

    sc_reply_t *reply;
    pl_pack_t body;
    sc_body_init (&body, 1);                 //  no 'with'
    pl_pack_kstr (&body, "user", "alice");
    reply = s_call (fixture, "store.pm.last_seq", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    sc_body_init (&body, 1);                 //  no 'user'
    pl_pack_kstr (&body, "with", "bob");
    reply = s_call (fixture, "store.pm.last_seq", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    sc_body_init (&body, 2);                 //  'with' is a number
    pl_pack_kstr (&body, "user", "alice");
    pl_pack_kint (&body, "with", 7);
    reply = s_call (fixture, "store.pm.last_seq", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
}

static void
test_pm_history_pages_with_exact_more_flags (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_user_create_ok (fixture, "carol");
    for (int64_t seq = 1; seq <= 10; seq++)
        s_pm_append_ok (fixture, seq % 3 ? "alice" : "bob", seq % 3 ? "bob" : "alice", seq,
                        "hi", S_PM_TS (seq));
    s_pm_append_ok (fixture, "carol", "alice", 1, "aside", S_PM_TS (11));

    //  Without a cursor: the newest
    s_assert_pm_history (fixture, "alice", "bob", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 10, false);
    s_assert_pm_history (fixture, "alice", "bob", S_NO_CURSOR, S_NO_CURSOR, 3, 8, 10, true);
    s_assert_pm_history (fixture, "bob", "alice", S_NO_CURSOR, S_NO_CURSOR, 9, 2, 10, true);
    s_assert_pm_history (fixture, "alice", "bob", S_NO_CURSOR, S_NO_CURSOR, 10, 1, 10, false);
    s_assert_pm_history (fixture, "alice", "bob", S_NO_CURSOR, S_NO_CURSOR, 11, 1, 10, false);
    //  before: older than the cursor, more when older still remain
    s_assert_pm_history (fixture, "alice", "bob", 5, S_NO_CURSOR, 3, 2, 4, true);
    s_assert_pm_history (fixture, "alice", "bob", 4, S_NO_CURSOR, 3, 1, 3, false);
    s_assert_pm_history (fixture, "alice", "bob", 3, S_NO_CURSOR, 3, 1, 2, false);
    s_assert_pm_history (fixture, "alice", "bob", 1, S_NO_CURSOR, 3, 1, 0, false);
    s_assert_pm_history (fixture, "alice", "bob", 100, S_NO_CURSOR, 2, 9, 10, true);
    s_assert_pm_history (fixture, "alice", "bob", 11, S_NO_CURSOR, 10, 1, 10, false);
    //  after: newer than the cursor, oldest first, more when newer remain
    s_assert_pm_history (fixture, "alice", "bob", S_NO_CURSOR, 0, 2, 1, 2, true);
    s_assert_pm_history (fixture, "alice", "bob", S_NO_CURSOR, 6, 3, 7, 9, true);
    s_assert_pm_history (fixture, "alice", "bob", S_NO_CURSOR, 7, 3, 8, 10, false);
    s_assert_pm_history (fixture, "alice", "bob", S_NO_CURSOR, 8, 3, 9, 10, false);
    s_assert_pm_history (fixture, "alice", "bob", S_NO_CURSOR, 10, 3, 1, 0, false);
    s_assert_pm_history (fixture, "alice", "bob", S_NO_CURSOR, 0, 0, 1, 10, false);
    //  Limit bounds
    s_assert_pm_history (fixture, "alice", "bob", S_NO_CURSOR, S_NO_CURSOR, 1, 10, 10, true);
    s_assert_pm_history (fixture, "alice", "bob", S_NO_CURSOR, S_NO_CURSOR, 1000, 1, 10, false);
    //  The other conversation of alice is apart
    s_assert_pm_history (fixture, "alice", "carol", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 1, false);
    //  Empty and unknown conversations are empty, not errors
    s_assert_pm_history (fixture, "bob", "carol", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 0, false);
    s_assert_pm_history (fixture, "bob", "carol", 5, S_NO_CURSOR, 0, 1, 0, false);
    s_assert_pm_history (fixture, "bob", "carol", S_NO_CURSOR, 0, 0, 1, 0, false);
    s_assert_pm_history (fixture, "bob", "nobody", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 0, false);
    s_assert_pm_history (fixture, "nobody", "noone", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 0, false);

    sc_reply_t *reply;
    pl_pack_t body;
    sc_body_init (&body, 3);                 //  limit 0
    pl_pack_kstr (&body, "user", "alice");
    pl_pack_kstr (&body, "with", "bob");
    pl_pack_kint (&body, "limit", 0);
    reply = s_call (fixture, "store.pm.history", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    reply = s_pm_history (fixture, "alice", "bob", S_NO_CURSOR, S_NO_CURSOR, 1001);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    reply = s_pm_history (fixture, "alice", "bob", 5, 2, 0);      //  both cursors
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    sc_body_init (&body, 3);                 //  a cursor that is not a seq
    pl_pack_kstr (&body, "user", "alice");
    pl_pack_kstr (&body, "with", "bob");
    pl_pack_kstr (&body, "after", "5");
    reply = s_call (fixture, "store.pm.history", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    sc_body_init (&body, 1);                 //  no 'with'
    pl_pack_kstr (&body, "user", "alice");
    reply = s_call (fixture, "store.pm.history", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
}

static void
test_pm_conversations_newest_first_with_last_entry_and_unread (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    const char *names [] = { "Alice", "bob", "Carol", "dave", "erin" };
    for (size_t index = 0; index < 5; index++)
        s_user_create_ok (fixture, names [index]);
    //  A user without conversations, and one who does not exist
    s_assert_conversations (fixture, "alice", 0, 0, NULL);
    s_assert_conversations (fixture, "nobody", 0, 0, NULL);

    //  ts rises with every append, whatever the conversation
    int64_t clock = 0;
    s_pm_append_ok (fixture, "bob", "alice", 1, "b1", S_PM_TS (++clock));
    s_pm_append_ok (fixture, "bob", "alice", 2, "b2", S_PM_TS (++clock));
    s_pm_append_ok (fixture, "carol", "alice", 1, "c1", S_PM_TS (++clock));
    s_pm_append_ok (fixture, "alice", "dave", 1, "a1", S_PM_TS (++clock));
    s_pm_append_ok (fixture, "dave", "alice", 2, "d2", S_PM_TS (++clock));
    s_pm_append_ok (fixture, "alice", "dave", 3, "a3", S_PM_TS (++clock));
    s_pm_append_ok (fixture, "bob", "carol", 1, "not alice's", S_PM_TS (++clock));

    const s_conversation_t first [] = {
        { "dave", 3, "Alice", 1 },
        { "Carol", 1, "Carol", 1 },
        { "bob", 2, "bob", 2 },
    };
    s_assert_conversations (fixture, "ALICE", 0, 3, first);
    //  The last entry is whole
    sc_reply_t *reply = s_pm_conversations (fixture, "alice", 1);
    s_assert_ok (reply);
    const msgpack_object *conversations = s_array_field (reply, "conversations");
    assert_int_equal (conversations->via.array.size, 1);
    s_assert_pm_entry (sc_map_field (&conversations->via.array.ptr [0], "last"), 3, "Alice",
                       "dave", "a3", S_PM_TS (6));
    sc_reply_destroy (&reply);

    //  A new message moves its conversation to the front
    s_pm_append_ok (fixture, "BOB", "alice", 3, "b3", S_PM_TS (++clock));
    const s_conversation_t second [] = {
        { "bob", 3, "bob", 3 },
        { "dave", 3, "Alice", 1 },
        { "Carol", 1, "Carol", 1 },
    };
    s_assert_conversations (fixture, "alice", 0, 3, second);
    //  limit keeps the newest
    s_assert_conversations (fixture, "alice", 2, 2, second);
    s_assert_conversations (fixture, "alice", 1000, 3, second);
    //  The other sides see the same conversations with their own counts
    const s_conversation_t of_bob [] = {
        { "Alice", 3, "bob", 0 },
        { "Carol", 1, "bob", 0 },
    };
    s_assert_conversations (fixture, "bob", 0, 2, of_bob);
    const s_conversation_t of_dave [] = { { "Alice", 3, "Alice", 2 } };
    s_assert_conversations (fixture, "Dave", 0, 1, of_dave);
    const s_conversation_t of_carol [] = {
        { "bob", 1, "bob", 1 },
        { "Alice", 1, "Carol", 0 },
    };
    s_assert_conversations (fixture, "carol", 0, 2, of_carol);
    s_assert_conversations (fixture, "erin", 0, 0, NULL);

    pl_pack_t body;
    sc_body_init (&body, 2);                 //  limit 0
    pl_pack_kstr (&body, "user", "alice");
    pl_pack_kint (&body, "limit", 0);
    reply = s_call (fixture, "store.pm.conversations", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    reply = s_pm_conversations (fixture, "alice", 1001);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    sc_body_init (&body, 0);                 //  no user
    reply = s_call (fixture, "store.pm.conversations", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
}

static void
test_pm_conversations_default_limit_is_two_hundred (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "hub");
    //  201 correspondents, each with one message to hub, pipelined
    char name [32];
    for (int index = 0; index < 201; index++) {
        snprintf (name, sizeof name, "user%03d", index);
        pl_pack_t body;
        s_user_create_body (&body, name, "h", 1000);
        s_send (fixture, "store.user.create", &body);
        s_pm_append_body (&body, name, "hub", 1, "hello hub", S_PM_TS (index));
        s_send (fixture, "store.pm.append", &body);
    }
    for (int index = 0; index < 402; index++) {
        sc_reply_t *reply = sc_broker_recv (fixture->broker, 30000);
        assert_non_null (reply);
        s_assert_ok (reply);
        sc_reply_destroy (&reply);
    }
    sc_reply_t *reply = s_pm_conversations (fixture, "hub", 0);
    s_assert_ok (reply);
    const msgpack_object *conversations = s_array_field (reply, "conversations");
    assert_int_equal (conversations->via.array.size, 200);
    //  Newest first: user200 down to user001; user000's is the oldest, left out
    for (int index = 0; index < 200; index++) {
        snprintf (name, sizeof name, "user%03d", 200 - index);
        s_assert_str (sc_map_field (&conversations->via.array.ptr [index], "with"), name);
        s_assert_int (sc_map_field (&conversations->via.array.ptr [index], "unread"), 1);
    }
    sc_reply_destroy (&reply);
    reply = s_pm_conversations (fixture, "hub", 1000);
    s_assert_ok (reply);
    assert_int_equal (s_array_field (reply, "conversations")->via.array.size, 201);
    sc_reply_destroy (&reply);
}

static void
test_pm_read_marker_counts_unread_and_never_goes_back (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "Alice");
    s_user_create_ok (fixture, "bob");
    //  bob sends 1-5, alice 6, bob 7-8
    for (int64_t seq = 1; seq <= 8; seq++)
        s_pm_append_ok (fixture, seq == 6 ? "alice" : "bob", seq == 6 ? "bob" : "alice", seq,
                        "m", S_PM_TS (seq));
    const s_conversation_t none_read [] = { { "bob", 8, "bob", 7 } };
    s_assert_conversations (fixture, "alice", 0, 1, none_read);

    s_pm_read_ok (fixture, "alice", "bob", 3, 4);
    s_pm_read_ok (fixture, "ALICE", "BOB", 3, 4);       //  the same again: no change
    s_pm_read_ok (fixture, "alice", "bob", 1, 4);       //  never goes back
    s_pm_read_ok (fixture, "alice", "bob", 0, 4);
    //  alice's own message 6 is never unread to her
    s_pm_read_ok (fixture, "alice", "Bob", 5, 2);
    s_pm_read_ok (fixture, "alice", "bob", 7, 1);
    const s_conversation_t some_read [] = { { "bob", 8, "bob", 1 } };
    s_assert_conversations (fixture, "alice", 0, 1, some_read);
    s_pm_read_ok (fixture, "alice", "bob", 2, 1);       //  still never goes back
    s_pm_read_ok (fixture, "alice", "bob", 8, 0);

    //  Each side has its own marker: bob has not read alice's 6
    const s_conversation_t of_bob [] = { { "Alice", 8, "bob", 1 } };
    s_assert_conversations (fixture, "bob", 0, 1, of_bob);
    s_pm_read_ok (fixture, "bob", "alice", 5, 1);
    s_pm_read_ok (fixture, "bob", "alice", 6, 0);

    //  New messages above the marker are unread again
    s_pm_append_ok (fixture, "bob", "alice", 9, "again", S_PM_TS (9));
    s_pm_append_ok (fixture, "alice", "bob", 10, "reply", S_PM_TS (10));
    const s_conversation_t alice_after [] = { { "bob", 10, "Alice", 1 } };
    s_assert_conversations (fixture, "alice", 0, 1, alice_after);
    const s_conversation_t bob_after [] = { { "Alice", 10, "Alice", 1 } };
    s_assert_conversations (fixture, "bob", 0, 1, bob_after);
    s_pm_read_ok (fixture, "alice", "bob", 10, 0);
    s_pm_read_ok (fixture, "bob", "alice", 10, 0);
}

static void
test_pm_read_on_conversation_without_messages_creates_no_conversation (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_pm_read_ok (fixture, "alice", "bob", 0, 0);
    s_assert_conversations (fixture, "alice", 0, 0, NULL);
    s_assert_conversations (fixture, "bob", 0, 0, NULL);
    s_assert_pm_last_seq (fixture, "alice", "bob", 0);
    //  The first message starts it, unread
    s_pm_append_ok (fixture, "bob", "alice", 1, "hi", S_PM_TS (1));
    const s_conversation_t of_alice [] = { { "bob", 1, "bob", 1 } };
    s_assert_conversations (fixture, "alice", 0, 1, of_alice);
}

static void
test_pm_read_unknown_user_is_not_found_and_bad_fields_are_bad_request (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_pm_append_ok (fixture, "bob", "alice", 1, "hi", S_PM_TS (1));
    sc_reply_t *reply = s_pm_read (fixture, "alice", "ghost", 1);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_pm_read (fixture, "ghost", "alice", 1);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);

    pl_pack_t body;
    sc_body_init (&body, 2);                 //  no seq
    pl_pack_kstr (&body, "user", "alice");
    pl_pack_kstr (&body, "with", "bob");
    reply = s_call (fixture, "store.pm.read", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    sc_body_init (&body, 3);                 //  seq is a string
    pl_pack_kstr (&body, "user", "alice");
    pl_pack_kstr (&body, "with", "bob");
    pl_pack_kstr (&body, "seq", "1");
    reply = s_call (fixture, "store.pm.read", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    reply = s_pm_read (fixture, "alice", "bob", -1);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    sc_body_init (&body, 2);                 //  no with
    pl_pack_kstr (&body, "user", "alice");
    pl_pack_kint (&body, "seq", 1);
    reply = s_call (fixture, "store.pm.read", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    //  None of them moved the marker
    const s_conversation_t of_alice [] = { { "bob", 1, "bob", 1 } };
    s_assert_conversations (fixture, "alice", 0, 1, of_alice);
}

static void
test_pipelined_pm_writes_one_conflict_spares_the_rest (void **state)
{
    REAL_DB ();
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    //  Sent without waiting, so that they arrive together: the third takes
    //  a seq the first took, and fails alone
    pl_pack_t body;
    uint64_t rids [5];
    s_pm_append_body (&body, "alice", "bob", 1, "one", S_PM_TS (1));
    rids [0] = s_send (fixture, "store.pm.append", &body);
    s_pm_append_body (&body, "bob", "alice", 2, "two", S_PM_TS (2));
    rids [1] = s_send (fixture, "store.pm.append", &body);
    s_pm_append_body (&body, "bob", "alice", 1, "taken", S_PM_TS (3));
    rids [2] = s_send (fixture, "store.pm.append", &body);
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "user", "alice");
    pl_pack_kstr (&body, "with", "bob");
    pl_pack_kint (&body, "seq", 2);
    rids [3] = s_send (fixture, "store.pm.read", &body);
    s_pm_append_body (&body, "bob", "alice", 3, "three", S_PM_TS (4));
    rids [4] = s_send (fixture, "store.pm.append", &body);
    for (size_t index = 0; index < 5; index++) {
        sc_reply_t *reply = sc_broker_recv (fixture->broker, 10000);
        assert_non_null (reply);
        assert_int_equal (reply->rid, rids [index]);
        if (index == 2)
            s_assert_error (reply, "conflict");
        else
            s_assert_ok (reply);
        if (index == 3)
            s_assert_int (sc_reply_field (reply, "unread"), 0);
        sc_reply_destroy (&reply);
    }
    s_assert_pm_history (fixture, "alice", "bob", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 3, false);
    const s_conversation_t of_alice [] = { { "bob", 3, "bob", 1 } };
    s_assert_conversations (fixture, "alice", 0, 1, of_alice);
}

static void
test_pm_append_messages_appends_the_run_both_ways_as_single_appends_would (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    const char *names [] = { "Alice", "bob", "carol", "Dave", "erin" };
    for (size_t index = 0; index < 5; index++)
        s_user_create_ok (fixture, names [index]);
    //  The answer names the top-level pair as registered, whoever sent last
    sc_reply_t *reply = s_pm_run (fixture, "ALICE", "BOB", 1, 6);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "seq"), 6);
    s_assert_str (sc_reply_field (reply, "from"), "Alice");
    s_assert_str (sc_reply_field (reply, "to"), "bob");
    sc_reply_destroy (&reply);
    reply = s_pm_history (fixture, "bob", "alice", S_NO_CURSOR, S_NO_CURSOR, 0);
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    assert_int_equal (messages->via.array.size, 6);
    s_assert_pm_entry (&messages->via.array.ptr [0], 1, "Alice", "bob", "pm 1", S_PM_TS (1));
    s_assert_pm_entry (&messages->via.array.ptr [2], 3, "bob", "Alice", "pm 3", S_PM_TS (3));
    s_assert_pm_entry (&messages->via.array.ptr [5], 6, "bob", "Alice", "pm 6", S_PM_TS (6));
    sc_reply_destroy (&reply);

    //  The same messages one append each, between Dave and erin: history,
    //  last seq, conversation rows and unread counts are alike
    s_pm_singles_ok (fixture, "dave", "erin", 1, 6);
    s_assert_pm_conversations_match (fixture, "alice", "bob", "dave", "erin");
    const s_conversation_t of_alice [] = { { "bob", 6, "bob", 2 } };
    s_assert_conversations (fixture, "alice", 0, 1, of_alice);
    const s_conversation_t of_bob [] = { { "Alice", 6, "bob", 4 } };
    s_assert_conversations (fixture, "bob", 0, 1, of_bob);
    //  And after markers, and the longest run there may be
    s_pm_read_ok (fixture, "bob", "alice", 4, 1);
    s_pm_read_ok (fixture, "erin", "dave", 4, 1);
    s_pm_run_ok (fixture, "bob", "alice", 7, S_RUN_MAX);
    s_pm_singles_ok (fixture, "erin", "dave", 7, S_RUN_MAX);
    s_assert_pm_conversations_match (fixture, "bob", "alice", "erin", "dave");
    //  Above 100, up to 262: 162 messages, 54 of them (the multiples of
    //  three) sent by alice and dave
    s_pm_read_ok (fixture, "alice", "bob", 100, 108);
    s_pm_read_ok (fixture, "dave", "erin", 100, 108);
    s_assert_pm_conversations_match (fixture, "alice", "bob", "dave", "erin");

    //  A conversation's first run starts it; unknown users store nothing
    s_pm_run_ok (fixture, "carol", "alice", 1, 3);
    const s_conversation_t of_carol [] = { { "Alice", 3, "Alice", 1 } };
    s_assert_conversations (fixture, "carol", 0, 1, of_carol);
    reply = s_pm_run (fixture, "alice", "ghost", 1, 3);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_pm_run (fixture, "ghost", "alice", 1, 3);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    s_assert_pm_last_seq (fixture, "alice", "ghost", 0);
}

static void
test_pm_append_messages_with_a_taken_seq_conflicts_and_appends_none (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_pm_append_ok (fixture, "bob", "alice", 3, "taken", S_PM_TS (3));
    //  The middle seq of the run is taken: none of the run is stored
    sc_reply_t *reply = s_pm_run (fixture, "alice", "bob", 1, 5);
    s_assert_error (reply, "conflict");
    sc_reply_destroy (&reply);
    //  And so are its first and its last, from either side
    reply = s_pm_run (fixture, "bob", "alice", 3, 4);
    s_assert_error (reply, "conflict");
    sc_reply_destroy (&reply);
    reply = s_pm_run (fixture, "alice", "bob", 1, 3);
    s_assert_error (reply, "conflict");
    sc_reply_destroy (&reply);
    reply = s_pm_history (fixture, "alice", "bob", S_NO_CURSOR, S_NO_CURSOR, 0);
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    assert_int_equal (messages->via.array.size, 1);
    s_assert_pm_entry (&messages->via.array.ptr [0], 3, "bob", "alice", "taken", S_PM_TS (3));
    sc_reply_destroy (&reply);
    //  The refused runs neither moved the conversation nor counted as unread
    const s_conversation_t of_alice [] = { { "bob", 3, "bob", 1 } };
    s_assert_conversations (fixture, "alice", 0, 1, of_alice);
    const s_conversation_t of_bob [] = { { "alice", 3, "bob", 0 } };
    s_assert_conversations (fixture, "bob", 0, 1, of_bob);
    s_assert_pm_last_seq (fixture, "alice", "bob", 3);
    //  The seqs around it are still free
    s_pm_run_ok (fixture, "alice", "bob", 1, 2);
    s_pm_run_ok (fixture, "alice", "bob", 4, 2);
    s_assert_pm_history (fixture, "alice", "bob", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 5, false);
    s_assert_pm_last_seq (fixture, "bob", "alice", 5);
}

static void
test_pm_append_invalid_runs_get_bad_request_and_store_nothing (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_user_create_ok (fixture, "carol");
    //  Seqs that do not follow one another: a gap, a repeat, backwards
    const int64_t gap [] = { 1, 2, 4 };
    const int64_t repeat [] = { 1, 2, 2 };
    const int64_t backwards [] = { 3, 2, 1 };
    const int64_t *runs [] = { gap, repeat, backwards };
    const char *senders [] = { "alice", "bob", "alice" };
    for (size_t index = 0; index < 3; index++) {
        pl_pack_t body;
        s_pm_messages_body (&body, "alice", "bob", 3, runs [index], senders);
        sc_reply_t *reply = s_call (fixture, "store.pm.append", &body);
        s_assert_error (reply, "bad_request");
        sc_reply_destroy (&reply);
    }
    //  A sender who is neither of the pair, though a user, and the answer
    //  says which message
    const int64_t seqs [] = { 1, 2, 3 };
    const char *intruder [] = { "alice", "Carol", "bob" };
    pl_pack_t body;
    s_pm_messages_body (&body, "alice", "bob", 3, seqs, intruder);
    sc_reply_t *reply = s_call (fixture, "store.pm.append", &body);
    s_assert_error (reply, "bad_request");
    if (!strstr (reply->message, "[1]"))
        fail_msg ("the answer does not name the element [1]: %s", reply->message);
    sc_reply_destroy (&reply);
    //  Empty, and one longer than the longest
    reply = s_pm_run (fixture, "alice", "bob", 1, 0);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    reply = s_pm_run (fixture, "alice", "bob", 1, S_RUN_MAX + 1);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 6);                 //  both forms
    pl_pack_kstr (&body, "from", "alice");
    pl_pack_kstr (&body, "to", "bob");
    pl_pack_kint (&body, "seq", 1);
    pl_pack_kstr (&body, "text", "one");
    pl_pack_kint (&body, "ts", S_PM_TS (1));
    pl_pack_str (&body, "messages");
    msgpack_pack_array (&body.packer, 1);
    msgpack_pack_map (&body.packer, 4);
    pl_pack_kstr (&body, "from", "alice");
    pl_pack_kint (&body, "seq", 2);
    pl_pack_kstr (&body, "text", "two");
    pl_pack_kint (&body, "ts", S_PM_TS (2));
    reply = s_call (fixture, "store.pm.append", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 2);                 //  neither
    pl_pack_kstr (&body, "from", "alice");
    pl_pack_kstr (&body, "to", "bob");
    reply = s_call (fixture, "store.pm.append", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 3);                 //  'messages' that is not an array
    pl_pack_kstr (&body, "from", "alice");
    pl_pack_kstr (&body, "to", "bob");
    pl_pack_kstr (&body, "messages", "hi");
    reply = s_call (fixture, "store.pm.append", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 3);                 //  an element that is not a map,
    pl_pack_kstr (&body, "from", "alice");   //  one without ts
    pl_pack_kstr (&body, "to", "bob");
    pl_pack_str (&body, "messages");
    msgpack_pack_array (&body.packer, 2);
    msgpack_pack_int64 (&body.packer, 1);
    msgpack_pack_map (&body.packer, 3);
    pl_pack_kstr (&body, "from", "alice");
    pl_pack_kint (&body, "seq", 2);
    pl_pack_kstr (&body, "text", "two");
    reply = s_call (fixture, "store.pm.append", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "from", "alice");
    pl_pack_kstr (&body, "to", "bob");
    pl_pack_str (&body, "messages");
    msgpack_pack_array (&body.packer, 1);
    msgpack_pack_map (&body.packer, 3);
    pl_pack_kstr (&body, "from", "bob");
    pl_pack_kint (&body, "seq", 1);
    pl_pack_kstr (&body, "text", "one");
    reply = s_call (fixture, "store.pm.append", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    //  A run to oneself, in another case
    reply = s_pm_run (fixture, "alice", "ALICE", 1, 3);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);

    s_assert_pm_last_seq (fixture, "alice", "bob", 0);
    s_assert_pm_history (fixture, "alice", "bob", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 0, false);
    s_assert_conversations (fixture, "alice", 0, 0, NULL);
    s_assert_conversations (fixture, "bob", 0, 0, NULL);
}

static void
test_pm_append_messages_continue_the_conversation_after_single_appends (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    const char *names [] = { "alice", "bob", "dave", "erin" };
    for (size_t index = 0; index < 4; index++)
        s_user_create_ok (fixture, names [index]);
    s_pm_singles_ok (fixture, "alice", "bob", 1, 2);
    s_pm_run_ok (fixture, "alice", "bob", 3, 5);
    s_pm_singles_ok (fixture, "alice", "bob", 8, 1);
    s_pm_run_ok (fixture, "bob", "alice", 9, 4);
    s_assert_pm_history (fixture, "alice", "bob", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 12, false);
    s_assert_pm_history (fixture, "alice", "bob", 7, S_NO_CURSOR, 3, 4, 6, true);
    //  As if each had come alone
    s_pm_singles_ok (fixture, "dave", "erin", 1, 8);
    s_pm_singles_ok (fixture, "erin", "dave", 9, 4);
    s_assert_pm_conversations_match (fixture, "alice", "bob", "dave", "erin");
}

static void
test_pipelined_pm_runs_one_conflict_spares_the_rest (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_user_create_ok (fixture, "carol");
    s_pm_append_ok (fixture, "alice", "bob", 4, "pm 4", S_PM_TS (4));
    //  Sent without waiting, so that they arrive together. The second run
    //  takes seq 3, which the first took, and fails alone: the third, of
    //  another conversation, and the fourth, whose seq 5 the failed run had
    //  asked for too, stand
    pl_pack_t body;
    uint64_t rids [4];
    s_pm_run_body (&body, "alice", "bob", 1, 3);
    rids [0] = s_send (fixture, "store.pm.append", &body);
    s_pm_run_body (&body, "bob", "alice", 3, 3);
    rids [1] = s_send (fixture, "store.pm.append", &body);
    s_pm_run_body (&body, "alice", "carol", 1, 4);
    rids [2] = s_send (fixture, "store.pm.append", &body);
    s_pm_run_body (&body, "alice", "bob", 5, 2);
    rids [3] = s_send (fixture, "store.pm.append", &body);
    const int64_t last_seqs [] = { 3, 0, 4, 6 };
    for (size_t index = 0; index < 4; index++) {
        sc_reply_t *reply = sc_broker_recv (fixture->broker, 10000);
        assert_non_null (reply);
        assert_int_equal (reply->rid, rids [index]);
        if (index == 1)
            s_assert_error (reply, "conflict");
        else {
            s_assert_ok (reply);
            s_assert_int (sc_reply_field (reply, "seq"), last_seqs [index]);
        }
        sc_reply_destroy (&reply);
    }
    s_assert_pm_history (fixture, "alice", "bob", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 6, false);
    s_assert_pm_history (fixture, "carol", "alice", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 4, false);
    //  Seqs 3 and 6 came from bob, 3 from carol (s_pm_run_sender)
    const s_conversation_t of_alice [] = {
        { "bob", 6, "bob", 2 },
        { "carol", 4, "alice", 1 },
    };
    s_assert_conversations (fixture, "alice", 0, 2, of_alice);
}

static void
test_pm_conversations_and_read_markers_survive_plugin_restart (void **state)
{
    REAL_DB ();
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "Alice");
    s_user_create_ok (fixture, "bob");
    s_user_create_ok (fixture, "carol");
    for (int64_t seq = 1; seq <= 4; seq++)
        s_pm_append_ok (fixture, "bob", "alice", seq, "from bob", S_PM_TS (seq));
    s_pm_append_ok (fixture, "alice", "carol", 1, "to carol", S_PM_TS (5));
    s_pm_read_ok (fixture, "alice", "bob", 2, 2);

    sc_broker_stop (fixture->broker);
    s_fixture_start (fixture);

    const s_conversation_t of_alice [] = {
        { "carol", 1, "Alice", 0 },
        { "bob", 4, "bob", 2 },
    };
    s_assert_conversations (fixture, "alice", 0, 2, of_alice);
    const s_conversation_t of_carol [] = { { "Alice", 1, "Alice", 1 } };
    s_assert_conversations (fixture, "carol", 0, 1, of_carol);
    s_assert_pm_last_seq (fixture, "alice", "bob", 4);
    s_assert_pm_history (fixture, "bob", "alice", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 4, false);
    //  The marker still never goes back; the conversation goes on where it stopped
    s_pm_read_ok (fixture, "alice", "bob", 1, 2);
    sc_reply_t *reply = s_pm_append (fixture, "alice", "bob", 4, "taken", S_PM_TS (6));
    s_assert_error (reply, "conflict");
    sc_reply_destroy (&reply);
    s_pm_append_ok (fixture, "bob", "alice", 5, "next", S_PM_TS (7));
    s_pm_read_ok (fixture, "alice", "bob", 3, 2);
}

//  The larger case: S_PM_MESSAGES messages over S_PM_PAIRS conversations of
//  S_PM_USERS users, pipelined in windows, with interleaved ts
#define S_PM_USERS 8
#define S_PM_PAIRS 20
#define S_PM_MESSAGES 3000
#define S_PM_WINDOW 250

typedef struct {
    int first;                      //  index of one user
    int second;                     //  index of the other
    int64_t last_seq;               //  messages so far
    int64_t last_ts;                //  ts of the newest
    int64_t to_first;               //  messages to first above its marker
    int64_t to_second;
} s_pm_pair_t;

static void
test_pm_many_messages_across_twenty_conversations (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    char names [S_PM_USERS][16];
    for (int index = 0; index < S_PM_USERS; index++) {
        snprintf (names [index], sizeof names [index], "User%d", index);
        s_user_create_ok (fixture, names [index]);
    }
    //  The first 20 pairs (i < j) in order
    s_pm_pair_t pairs [S_PM_PAIRS];
    int count = 0;
    for (int first = 0; first < S_PM_USERS && count < S_PM_PAIRS; first++)
        for (int second = first + 1; second < S_PM_USERS && count < S_PM_PAIRS; second++)
            pairs [count++] = (s_pm_pair_t) { first, second, 0, 0, 0, 0 };

    //  Message n goes to pair (n * 7) % 20, alternately each way; every
    //  send is acknowledged before the window moves on
    for (int64_t first = 0; first < S_PM_MESSAGES; first += S_PM_WINDOW) {
        size_t sent = 0;
        for (int64_t n = first; n < first + S_PM_WINDOW && n < S_PM_MESSAGES; n++) {
            s_pm_pair_t *pair = &pairs [(n * 7 + n / 20) % S_PM_PAIRS];
            bool forward = (n / 3) % 2 == 0;
            int64_t seq = ++pair->last_seq;
            pair->last_ts = S_PM_TS (n);
            if (forward)
                pair->to_second++;
            else
                pair->to_first++;
            char text [48];
            snprintf (text, sizeof text, "%s says %" PRId64,
                      names [forward ? pair->first : pair->second], seq);
            pl_pack_t body;
            s_pm_append_body (&body, names [forward ? pair->first : pair->second],
                              names [forward ? pair->second : pair->first], seq, text,
                              S_PM_TS (n));
            s_send (fixture, "store.pm.append", &body);
            sent++;
        }
        for (size_t index = 0; index < sent; index++) {
            sc_reply_t *reply = sc_broker_recv (fixture->broker, 30000);
            assert_non_null (reply);
            s_assert_ok (reply);
            sc_reply_destroy (&reply);
        }
    }
    int64_t total = 0;
    for (int index = 0; index < S_PM_PAIRS; index++) {
        s_pm_pair_t *pair = &pairs [index];
        total += pair->last_seq;
        s_assert_pm_last_seq (fixture, names [pair->second], names [pair->first], pair->last_seq);
    }
    assert_int_equal (total, S_PM_MESSAGES);

    //  Every conversation pages back whole, gap-free, texts as sent
    for (int index = 0; index < S_PM_PAIRS; index++) {
        s_pm_pair_t *pair = &pairs [index];
        int64_t before = S_NO_CURSOR;
        int64_t expected_last = pair->last_seq;
        while (expected_last > 0) {
            sc_reply_t *reply = s_pm_history (fixture, names [pair->first],
                                              names [pair->second], before, S_NO_CURSOR, 40);
            s_assert_ok (reply);
            const msgpack_object *messages = s_array_field (reply, "messages");
            int64_t expected_count = expected_last < 40 ? expected_last : 40;
            assert_int_equal (messages->via.array.size, expected_count);
            for (uint32_t at = 0; at < messages->via.array.size; at++) {
                const msgpack_object *entry = &messages->via.array.ptr [at];
                int64_t seq = expected_last - expected_count + 1 + at;
                s_assert_int (sc_map_field (entry, "seq"), seq);
                const msgpack_object *from = sc_map_field (entry, "from");
                assert_non_null (from);
                char text [48];
                snprintf (text, sizeof text, "%.*s says %" PRId64,
                          (int) from->via.str.size, from->via.str.ptr, seq);
                s_assert_str (sc_map_field (entry, "text"), text);
            }
            assert_int_equal (s_more (reply), expected_last > expected_count);
            sc_reply_destroy (&reply);
            before = expected_last - expected_count + 1;
            expected_last -= expected_count;
        }
    }

    //  Each user's conversations: newest first, with exact unread counts;
    //  then half of them read, and the counts follow
    for (int round = 0; round < 2; round++) {
        for (int user = 0; user < S_PM_USERS; user++) {
            s_conversation_t rows [S_PM_PAIRS];
            int64_t stamps [S_PM_PAIRS];
            size_t mine = 0;
            for (int index = 0; index < S_PM_PAIRS; index++) {
                s_pm_pair_t *pair = &pairs [index];
                if (pair->first != user && pair->second != user)
                    continue;
                //  Insertion sort by last_ts, newest first
                size_t at = mine++;
                while (at > 0 && stamps [at - 1] < pair->last_ts) {
                    rows [at] = rows [at - 1];
                    stamps [at] = stamps [at - 1];
                    at--;
                }
                int other = pair->first == user ? pair->second : pair->first;
                //  The sender of the newest: the last message's direction
                int64_t n = (pair->last_ts - S_PM_TS (0)) / 1000;
                bool forward = (n / 3) % 2 == 0;
                rows [at] = (s_conversation_t) {
                    names [other], pair->last_seq,
                    names [forward ? pair->first : pair->second],
                    pair->first == user ? pair->to_first : pair->to_second
                };
                stamps [at] = pair->last_ts;
            }
            s_assert_conversations (fixture, names [user], 0, mine, rows);
        }
        if (round == 0)
            for (int index = 0; index < S_PM_PAIRS; index += 2) {
                //  The first user of every other pair reads it all
                s_pm_pair_t *pair = &pairs [index];
                s_pm_read_ok (fixture, names [pair->first], names [pair->second],
                              pair->last_seq, 0);
                pair->to_first = 0;
            }
    }
}



//  --------------------------------------------------------------------------
//  Rooms in pages, quotas, answers bounded by bytes (proto/STORE.md)

//  The most bytes of packed list one answer may carry, as the stores cut
//  (proto/STORE.md, "Answers bounded by bytes"): under the envelope's body
#define S_ANSWER_MAX    (1024 * 1024)

//  A room list request: user, after (NULL for none), limit (0 for none)
static sc_reply_t *
s_room_page (fixture_t *fixture, const char *type, const char *user, const char *after,
             int64_t limit, const char *extra_key, const char *extra_str,
             int64_t after_active)
{
    pl_pack_t body;
    sc_body_init (&body, 1 + (after != NULL) + (limit != 0) + (extra_key != NULL)
                      + (after_active >= 0));
    pl_pack_kstr (&body, "user", user);
    if (after)
        pl_pack_kstr (&body, "after", after);
    if (limit)
        pl_pack_kint (&body, "limit", limit);
    if (extra_key)
        pl_pack_kstr (&body, extra_key, extra_str);
    if (after_active >= 0)
        pl_pack_kint (&body, "after_active", after_active);
    return s_call (fixture, type, &body);
}

//  Asserts a page of rooms holds exactly names, in order, each with joined
//  as given ('y' or 'n'), and more
static void
s_assert_room_page (sc_reply_t *reply, const char *const *names, const char *joined,
                    bool more)
{
    s_assert_ok (reply);
    const msgpack_object *rooms = s_array_field (reply, "rooms");
    size_t count = 0;
    while (names [count])
        count++;
    if (rooms->via.array.size != count)
        fail_msg ("%u rooms, expected %zu", rooms->via.array.size, count);
    for (size_t index = 0; index < count; index++) {
        const msgpack_object *room = &rooms->via.array.ptr [index];
        s_assert_str (sc_map_field (room, "name"), names [index]);
        assert_int_equal (s_bool (sc_map_field (room, "joined")), joined [index] == 'y');
        assert_non_null (sc_map_field (room, "active_at"));
    }
    assert_int_equal (s_more (reply), more);
    sc_reply_destroy (&reply);
}

static sc_reply_t *
s_room_create_quota (fixture_t *fixture, const char *name, const char *owner,
                     int64_t max_owned, int64_t max_joined)
{
    pl_pack_t body;
    sc_body_init (&body, 8);
    pl_pack_kstr (&body, "name", name);
    pl_pack_kstr (&body, "description", "");
    pl_pack_str (&body, "private");
    msgpack_pack_false (&body.packer);
    pl_pack_kint (&body, "max_participants", 10);
    pl_pack_kstr (&body, "owner", owner);
    pl_pack_kint (&body, "created_at", 5000);
    pl_pack_kint (&body, "max_owned", max_owned);
    pl_pack_kint (&body, "max_joined", max_joined);
    return s_call (fixture, "store.room.create", &body);
}

static sc_reply_t *
s_member_add_quota (fixture_t *fixture, const char *room, const char *user, int64_t seq,
                    int64_t max_joined)
{
    pl_pack_t body;
    sc_body_init (&body, 4);
    pl_pack_kstr (&body, "room", room);
    pl_pack_kstr (&body, "user", user);
    pl_pack_str (&body, "entry");
    s_pack_entry (&body.packer, seq, user, NULL, "join");
    pl_pack_kint (&body, "max_joined", max_joined);
    return s_call (fixture, "store.member.add", &body);
}

static void
test_room_joined_lists_the_users_rooms_by_name_in_pages (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_room_create_ok (fixture, "Delta", false, 10, "alice");
    s_room_create_ok (fixture, "beta", true, 10, "alice");
    s_room_create_ok (fixture, "Charlie", false, 10, "bob");
    s_room_create_ok (fixture, "alpha", false, 10, "bob");
    s_member_add_ok (fixture, "charlie", "Alice", 1);

    s_assert_room_page (s_room_page (fixture, "store.room.joined", "ALICE", NULL, 0, NULL, NULL,
                                     -1),
                        (const char *[]) { "beta", "Charlie", "Delta", NULL }, "yyy", false);
    s_assert_room_page (s_room_page (fixture, "store.room.joined", "alice", NULL, 2, NULL, NULL,
                                     -1),
                        (const char *[]) { "beta", "Charlie", NULL }, "yy", true);
    s_assert_room_page (s_room_page (fixture, "store.room.joined", "alice", "CHARLIE", 2, NULL,
                                     NULL, -1),
                        (const char *[]) { "Delta", NULL }, "y", false);
    s_assert_room_page (s_room_page (fixture, "store.room.joined", "bob", NULL, 0, NULL, NULL,
                                     -1),
                        (const char *[]) { "alpha", "Charlie", NULL }, "yy", false);
    s_assert_room_page (s_room_page (fixture, "store.room.joined", "ghost", NULL, 0, NULL, NULL,
                                     -1),
                        (const char *[]) { NULL }, "", false);
    sc_reply_t *reply = s_room_page (fixture, "store.room.joined", "alice", NULL, 1001, NULL,
                                     NULL, -1);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
}

static void
test_room_public_lists_other_public_rooms_most_recently_active_first (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    //  Created at 1000 .. 5000; then messages make 'old' and 'Mid' the newest
    const char *names [] = { "old", "Mid", "new", "Mine", "hidden" };
    for (int index = 0; index < 5; index++) {
        sc_reply_t *reply = s_room_create (fixture, names [index], "", index == 4, 10,
                                           index == 3 ? "alice" : "bob", 1000 * (index + 1));
        s_assert_ok (reply);
        sc_reply_destroy (&reply);
    }
    pl_pack_t body;
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "room", "mid");
    pl_pack_str (&body, "entry");
    s_pack_entry (&body.packer, 1, "bob", "hello", NULL);      //  ts 1700000000001
    sc_reply_t *reply = s_call (fixture, "store.msg.append", &body);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    s_append_ok (fixture, "old", 1, "bob", "first");
    s_append_ok (fixture, "old", 2, "bob", "second");           //  ts 1700000000002

    //  alice: not her own room, not the private one
    s_assert_room_page (s_room_page (fixture, "store.room.public", "alice", NULL, 0, NULL, NULL,
                                     -1),
                        (const char *[]) { "old", "Mid", "new", NULL }, "nnn", false);
    reply = s_room_page (fixture, "store.room.public", "alice", NULL, 1, NULL, NULL, -1);
    s_assert_ok (reply);
    const msgpack_object *first = &s_array_field (reply, "rooms")->via.array.ptr [0];
    s_assert_int (sc_map_field (first, "active_at"), 1700000000002);
    sc_reply_destroy (&reply);
    //  The cursor is (active_at, name) of the last room seen
    s_assert_room_page (s_room_page (fixture, "store.room.public", "alice", "old", 1, NULL, NULL,
                                     1700000000002),
                        (const char *[]) { "Mid", NULL }, "n", true);
    s_assert_room_page (s_room_page (fixture, "store.room.public", "alice", "mid", 5, NULL, NULL,
                                     1700000000001),
                        (const char *[]) { "new", NULL }, "n", false);
    //  bob belongs to all of them but alice's
    s_assert_room_page (s_room_page (fixture, "store.room.public", "bob", NULL, 0, NULL, NULL,
                                     -1),
                        (const char *[]) { "Mine", NULL }, "n", false);
    reply = s_room_page (fixture, "store.room.public", "alice", "old", 1, NULL, NULL, -1);
    s_assert_error (reply, "bad_request");          //  after without after_active
    sc_reply_destroy (&reply);
}

static void
test_room_directory_pages_public_rooms_by_name_from_a_prefix (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_room_create_ok (fixture, "Alpha", false, 10, "bob");
    s_room_create_ok (fixture, "al", false, 10, "alice");
    s_room_create_ok (fixture, "alps", false, 10, "bob");
    s_room_create_ok (fixture, "Alsecret", true, 10, "alice");
    s_room_create_ok (fixture, "beta", false, 10, "bob");
    s_room_create_ok (fixture, "ak", false, 10, "bob");

    s_assert_room_page (s_room_page (fixture, "store.room.directory", "alice", NULL, 0, NULL,
                                     NULL, -1),
                        (const char *[]) { "ak", "al", "Alpha", "alps", "beta", NULL }, "nynnn",
                        false);
    s_assert_room_page (s_room_page (fixture, "store.room.directory", "alice", NULL, 0, "prefix",
                                     "AL", -1),
                        (const char *[]) { "al", "Alpha", "alps", NULL }, "ynn", false);
    s_assert_room_page (s_room_page (fixture, "store.room.directory", "alice", NULL, 2, "prefix",
                                     "al", -1),
                        (const char *[]) { "al", "Alpha", NULL }, "yn", true);
    s_assert_room_page (s_room_page (fixture, "store.room.directory", "alice", "alpha", 2,
                                     "prefix", "al", -1),
                        (const char *[]) { "alps", NULL }, "n", false);
    s_assert_room_page (s_room_page (fixture, "store.room.directory", "bob", "AL", 0, "prefix",
                                     "al", -1),
                        (const char *[]) { "Alpha", "alps", NULL }, "yy", false);
    s_assert_room_page (s_room_page (fixture, "store.room.directory", "bob", "a", 0, NULL, NULL,
                                     -1),
                        (const char *[]) { "ak", "al", "Alpha", "alps", "beta", NULL }, "ynyyy",
                        false);
    s_assert_room_page (s_room_page (fixture, "store.room.directory", "bob", NULL, 0, "prefix",
                                     "zz", -1),
                        (const char *[]) { NULL }, "", false);
    sc_reply_t *reply = s_room_page (fixture, "store.room.directory", "bob", NULL, 0, "prefix",
                                     "a%", -1);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
}

static void
test_room_create_quotas_come_after_a_taken_name (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    for (int index = 0; index < 3; index++) {
        char name [16];
        snprintf (name, sizeof name, "room%d", index);
        sc_reply_t *reply = s_room_create_quota (fixture, name, "alice", 3, 0);
        s_assert_ok (reply);
        sc_reply_destroy (&reply);
    }
    sc_reply_t *reply = s_room_create_quota (fixture, "room3", "ALICE", 3, 0);
    s_assert_error (reply, "quota_owned");
    sc_reply_destroy (&reply);
    reply = s_room_create_quota (fixture, "ROOM1", "alice", 3, 0);
    s_assert_error (reply, "conflict");             //  a repeat, not a quota
    sc_reply_destroy (&reply);
    reply = s_room_create_quota (fixture, "room3", "alice", 4, 0);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    //  The owner joins what she creates: the joined quota counts it
    s_member_add_ok (fixture, "room0", "bob", 1);
    reply = s_room_create_quota (fixture, "bobs", "bob", 0, 1);
    s_assert_error (reply, "quota_joined");
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.room.get", "name", "bobs");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_room_create_quota (fixture, "bobs", "bob", 0, 2);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
}

static void
test_member_add_joined_quota_comes_after_membership (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_room_create_ok (fixture, "one", false, 10, "alice");
    s_room_create_ok (fixture, "two", false, 10, "alice");
    s_room_create_ok (fixture, "three", false, 10, "alice");
    sc_reply_t *reply = s_member_add_quota (fixture, "one", "bob", 1, 2);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_member_add_quota (fixture, "two", "bob", 1, 2);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_member_add_quota (fixture, "three", "Bob", 1, 2);
    s_assert_error (reply, "quota_joined");
    sc_reply_destroy (&reply);
    s_assert_room_counts (fixture, "three", 1, 0);      //  nobody added, nothing appended
    //  A member already: ok, whatever the quota
    reply = s_member_add_quota (fixture, "one", "bob", 2, 1);
    s_assert_ok (reply);
    assert_false (s_bool (sc_reply_field (reply, "added")));
    sc_reply_destroy (&reply);
    reply = s_member_add_quota (fixture, "three", "bob", 1, 0);     //  0: no quota
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
}

//  Texts of 16,000 bytes (4,000 four-byte characters): 200 of them are
//  three times what one answer may carry
static void
s_append_big (fixture_t *fixture, const char *room, int64_t count)
{
    static char text [16001];
    for (int index = 0; index < 16000; index += 4)
        memcpy (text + index, "\xf0\x9f\x98\x80", 4);      //  U+1F600
    text [16000] = 0;
    for (int64_t first = 1; first <= count; first += 20) {
        pl_pack_t body;
        sc_body_init (&body, 2);
        pl_pack_kstr (&body, "room", room);
        pl_pack_str (&body, "entries");
        int64_t run = count - first + 1 < 20 ? count - first + 1 : 20;
        msgpack_pack_array (&body.packer, (uint32_t) run);
        for (int64_t seq = first; seq < first + run; seq++)
            s_pack_entry (&body.packer, seq, "alice", text, NULL);
        sc_reply_t *reply = s_call (fixture, "store.msg.append", &body);
        s_assert_ok (reply);
        sc_reply_destroy (&reply);
    }
}

//  Asserts a history page is a run of seqs ending at last (or starting at
//  first when last is 0), cut short of limit, with more; returns its size
static uint32_t
s_assert_cut_page (fixture_t *fixture, int64_t before, int64_t after, int64_t first,
                   int64_t last)
{
    sc_reply_t *reply = s_history (fixture, "big", before, after, 200);
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    uint32_t count = messages->via.array.size;
    assert_true (count > 10 && count < 200);
    int64_t start = last ? last - count + 1 : first;
    for (uint32_t index = 0; index < count; index++)
        s_assert_int (sc_map_field (&messages->via.array.ptr [index], "seq"), start + index);
    assert_true (s_more (reply));
    sc_reply_destroy (&reply);
    return count;
}

static void
test_msg_history_cut_for_its_bytes_keeps_the_entries_next_to_the_cursor (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_room_create_ok (fixture, "big", false, 10, "alice");
    s_append_big (fixture, "big", 200);
    //  The newest, the newest before 150, the oldest after 0 and after 100
    uint32_t count = s_assert_cut_page (fixture, S_NO_CURSOR, S_NO_CURSOR, 0, 200);
    assert_true (count * 16000 < S_ANSWER_MAX);
    s_assert_cut_page (fixture, 150, S_NO_CURSOR, 0, 149);
    s_assert_cut_page (fixture, S_NO_CURSOR, 0, 1, 0);
    s_assert_cut_page (fixture, S_NO_CURSOR, 100, 101, 0);
    //  A page that fits is not cut
    s_assert_history (fixture, "big", S_NO_CURSOR, 190, 200, 191, 200, false);
    s_assert_history (fixture, "big", 11, S_NO_CURSOR, 200, 1, 10, false);
}

//  --------------------------------------------------------------------------
//  Nonces (schema version 6): kept with the entry, unique per timeline and
//  sender, a repeat appending nothing and answered with where it is

//  A message entry {seq, kind, user, ts, text, nonce}; nonce NULL for none
static void
s_pack_nonce_entry (msgpack_packer *packer, int64_t seq, const char *user, const char *nonce)
{
    msgpack_pack_map (packer, nonce ? 6 : 5);
    sc_pack_kint (packer, "seq", seq);
    sc_pack_kstr (packer, "kind", "message");
    sc_pack_kstr (packer, "user", user);
    sc_pack_kint (packer, "ts", 1700000000000 + seq);
    sc_pack_kstr (packer, "text", "hello");
    if (nonce)
        sc_pack_kstr (packer, "nonce", nonce);
}

//  store.msg.append of the run from seq first: users [i] with nonces [i]
static sc_reply_t *
s_append_nonces (fixture_t *fixture, const char *room, int64_t first, uint32_t count,
                 const char *const *users, const char *const *nonces)
{
    pl_pack_t body;
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "room", room);
    pl_pack_str (&body, "entries");
    msgpack_pack_array (&body.packer, count);
    for (uint32_t index = 0; index < count; index++)
        s_pack_nonce_entry (&body.packer, first + index, users [index], nonces [index]);
    return s_call (fixture, "store.msg.append", &body);
}

//  Asserts that reply's duplicates are exactly the (index, seq) pairs given
static void
s_assert_duplicates (sc_reply_t *reply, uint32_t count, const int64_t *indexes,
                     const int64_t *seqs)
{
    s_assert_ok (reply);
    assert_null (sc_reply_field (reply, "seq"));
    const msgpack_object *duplicates = s_array_field (reply, "duplicates");
    assert_int_equal (duplicates->via.array.size, count);
    for (uint32_t item = 0; item < count; item++) {
        const msgpack_object *duplicate = &duplicates->via.array.ptr [item];
        bool found = false;
        for (uint32_t other = 0; other < count; other++)
            if (sc_map_field (duplicate, "index")->via.i64 == indexes [other]) {
                s_assert_int (sc_map_field (duplicate, "seq"), seqs [other]);
                s_assert_int (sc_map_field (duplicate, "ts"), 1700000000000 + seqs [other]);
                found = true;
            }
        assert_true (found);
    }
}

//  store.msg.nonce or store.pm.nonce, and asserts what it finds (seq 0: none)
static void
s_assert_nonce (fixture_t *fixture, const char *type, const char *where, const char *user,
                const char *nonce, int64_t seq)
{
    bool pm = strcmp (type, "store.pm.nonce") == 0;
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, pm ? "to" : "room", where);
    pl_pack_kstr (&body, pm ? "from" : "user", user);
    pl_pack_kstr (&body, "nonce", nonce);
    sc_reply_t *reply = s_call (fixture, type, &body);
    s_assert_ok (reply);
    assert_int_equal (s_bool (sc_reply_field (reply, "duplicate")), seq > 0);
    if (seq > 0) {
        s_assert_int (sc_reply_field (reply, "seq"), seq);
        s_assert_int (sc_reply_field (reply, "ts"), 1700000000000 + seq);
    }
    else
        assert_null (sc_reply_field (reply, "seq"));
    sc_reply_destroy (&reply);
}

//  The nonce of each entry of a history answer, in order ("" for none)
static void
s_assert_history_nonces (sc_reply_t *reply, uint32_t count, const char *const *nonces)
{
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    assert_int_equal (messages->via.array.size, count);
    for (uint32_t index = 0; index < count; index++) {
        const msgpack_object *nonce = sc_map_field (&messages->via.array.ptr [index], "nonce");
        if (*nonces [index])
            s_assert_str (nonce, nonces [index]);
        else
            assert_null (nonce);
    }
    sc_reply_destroy (&reply);
}

static void
test_msg_append_keeps_nonces_and_a_repeat_appends_nothing (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_room_create_ok (fixture, "general", false, 50, "alice");
    //  One sender's nonce, another sender's same nonce, and no nonce
    const char *users [] = { "alice", "bob", "alice" };
    const char *nonces [] = { "n-1", "n-1", NULL };
    sc_reply_t *reply = s_append_nonces (fixture, "general", 1, 3, users, nonces);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "seq"), 3);
    sc_reply_destroy (&reply);
    const char *stored [] = { "n-1", "n-1", "" };
    s_assert_history_nonces (s_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0),
                             3, stored);
    //  A run with a repeat (its sender in another case) appends nothing and
    //  says which element repeats which entry
    const char *again_users [] = { "alice", "ALICE", "bob", "bob" };
    const char *again_nonces [] = { "n-2", "n-1", "n-3", "n-1" };
    reply = s_append_nonces (fixture, "general", 4, 4, again_users, again_nonces);
    s_assert_duplicates (reply, 2, (int64_t []) { 1, 3 }, (int64_t []) { 1, 2 });
    sc_reply_destroy (&reply);
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 3, false);
    //  The single form, too
    pl_pack_t body;
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "room", "GENERAL");
    pl_pack_str (&body, "entry");
    s_pack_nonce_entry (&body.packer, 4, "bob", "n-1");
    reply = s_call (fixture, "store.msg.append", &body);
    s_assert_duplicates (reply, 1, (int64_t []) { 0 }, (int64_t []) { 2 });
    sc_reply_destroy (&reply);
    //  The rest of the run, numbered anew, goes in
    const char *rest_users [] = { "alice", "bob" };
    const char *rest_nonces [] = { "n-2", "n-3" };
    reply = s_append_nonces (fixture, "general", 4, 2, rest_users, rest_nonces);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "seq"), 5);
    sc_reply_destroy (&reply);
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 5, false);
    //  A room made again under the name has none of the old nonces
    pl_pack_t name;
    sc_body_init (&name, 1);
    pl_pack_kstr (&name, "name", "general");
    reply = s_call (fixture, "store.room.delete", &name);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    s_room_create_ok (fixture, "general", false, 50, "alice");
    reply = s_append_nonces (fixture, "general", 1, 1, users, nonces);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
}

static void
test_msg_nonce_finds_a_senders_nonce_in_a_room (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_room_create_ok (fixture, "general", false, 50, "alice");
    s_room_create_ok (fixture, "other", false, 50, "alice");
    const char *users [] = { "alice", "alice" };
    const char *nonces [] = { NULL, "abc" };
    sc_reply_t *reply = s_append_nonces (fixture, "general", 1, 2, users, nonces);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    s_assert_nonce (fixture, "store.msg.nonce", "general", "alice", "abc", 2);
    s_assert_nonce (fixture, "store.msg.nonce", "General", "Alice", "abc", 2);
    s_assert_nonce (fixture, "store.msg.nonce", "general", "alice", "ABC", 0);
    s_assert_nonce (fixture, "store.msg.nonce", "general", "bob", "abc", 0);
    s_assert_nonce (fixture, "store.msg.nonce", "other", "alice", "abc", 0);
    s_assert_nonce (fixture, "store.msg.nonce", "nowhere", "alice", "abc", 0);
}

static void
test_bad_nonces_and_a_nonce_twice_in_a_run_get_bad_request (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_room_create_ok (fixture, "general", false, 50, "alice");
    char longest [66];
    memset (longest, 'x', 65);
    longest [65] = 0;
    const char *bad [] = { "", longest, "a b", "a.b", "caf\xc3\xa9" };
    for (size_t index = 0; index < sizeof bad / sizeof bad [0]; index++) {
        const char *users [] = { "alice" };
        const char *nonces [] = { bad [index] };
        sc_reply_t *reply = s_append_nonces (fixture, "general", 1, 1, users, nonces);
        s_assert_error (reply, "bad_request");
        sc_reply_destroy (&reply);
        pl_pack_t body;
        sc_body_init (&body, 3);
        pl_pack_kstr (&body, "room", "general");
        pl_pack_kstr (&body, "user", "alice");
        pl_pack_kstr (&body, "nonce", bad [index]);
        reply = s_call (fixture, "store.msg.nonce", &body);
        s_assert_error (reply, "bad_request");
        sc_reply_destroy (&reply);
    }
    //  One sender's nonce twice in a run; two senders' is fine
    const char *users [] = { "alice", "Alice" };
    const char *nonces [] = { "twice", "twice" };
    sc_reply_t *reply = s_append_nonces (fixture, "general", 1, 2, users, nonces);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 0, false);
    const char *two_users [] = { "alice", "bob" };
    reply = s_append_nonces (fixture, "general", 1, 2, two_users, nonces);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    //  A nonce that is not a string, and store.msg.nonce without one
    pl_pack_t body;
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "room", "general");
    pl_pack_str (&body, "entry");
    msgpack_pack_map (&body.packer, 6);
    sc_pack_kint (&body.packer, "seq", 3);
    sc_pack_kstr (&body.packer, "kind", "message");
    sc_pack_kstr (&body.packer, "user", "alice");
    sc_pack_kint (&body.packer, "ts", 1);
    sc_pack_kstr (&body.packer, "text", "x");
    sc_pack_kint (&body.packer, "nonce", 7);
    reply = s_call (fixture, "store.msg.append", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "room", "general");
    pl_pack_kstr (&body, "user", "alice");
    reply = s_call (fixture, "store.msg.nonce", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
}

//  store.pm.append from 'from' to 'to' with 'messages' from [i] with nonces [i]
static sc_reply_t *
s_pm_append_nonces (fixture_t *fixture, const char *from, const char *to, int64_t first,
                    uint32_t count, const char *const *senders, const char *const *nonces)
{
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "from", from);
    pl_pack_kstr (&body, "to", to);
    pl_pack_str (&body, "messages");
    msgpack_pack_array (&body.packer, count);
    for (uint32_t index = 0; index < count; index++) {
        msgpack_pack_map (&body.packer, nonces [index] ? 5 : 4);
        sc_pack_kstr (&body.packer, "from", senders [index]);
        sc_pack_kint (&body.packer, "seq", first + index);
        sc_pack_kstr (&body.packer, "text", "hi");
        sc_pack_kint (&body.packer, "ts", 1700000000000 + first + index);
        if (nonces [index])
            sc_pack_kstr (&body.packer, "nonce", nonces [index]);
    }
    return s_call (fixture, "store.pm.append", &body);
}

static void
test_pm_append_keeps_nonces_and_a_repeat_appends_nothing (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_user_create_ok (fixture, "carol");
    const char *senders [] = { "alice", "bob", "alice" };
    const char *nonces [] = { "p-1", "p-1", NULL };
    sc_reply_t *reply = s_pm_append_nonces (fixture, "alice", "bob", 1, 3, senders, nonces);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "seq"), 3);
    sc_reply_destroy (&reply);
    const char *stored [] = { "p-1", "p-1", "" };
    s_assert_history_nonces (s_pm_history (fixture, "bob", "alice", S_NO_CURSOR, S_NO_CURSOR, 0),
                             3, stored);
    //  Sent the other way round, by either side's name in any case
    const char *again [] = { "ALICE", "bob" };
    const char *again_nonces [] = { "p-2", "p-1" };
    reply = s_pm_append_nonces (fixture, "bob", "alice", 4, 2, again, again_nonces);
    s_assert_duplicates (reply, 1, (int64_t []) { 1 }, (int64_t []) { 2 });
    sc_reply_destroy (&reply);
    s_assert_nonce (fixture, "store.pm.nonce", "bob", "alice", "p-1", 1);
    s_assert_nonce (fixture, "store.pm.nonce", "ALICE", "Bob", "p-1", 2);
    s_assert_nonce (fixture, "store.pm.nonce", "bob", "alice", "p-2", 0);
    s_assert_nonce (fixture, "store.pm.nonce", "carol", "alice", "p-1", 0);
    s_assert_nonce (fixture, "store.pm.nonce", "nobody", "alice", "p-1", 0);
    //  The single form, and the same nonce in another conversation
    pl_pack_t body;
    sc_body_init (&body, 6);
    pl_pack_kstr (&body, "from", "alice");
    pl_pack_kstr (&body, "to", "bob");
    pl_pack_kint (&body, "seq", 4);
    pl_pack_kstr (&body, "text", "x");
    pl_pack_kint (&body, "ts", 1);
    pl_pack_kstr (&body, "nonce", "p-1");
    reply = s_call (fixture, "store.pm.append", &body);
    s_assert_duplicates (reply, 1, (int64_t []) { 0 }, (int64_t []) { 1 });
    sc_reply_destroy (&reply);
    const char *to_carol [] = { "alice" };
    const char *same [] = { "p-1" };
    reply = s_pm_append_nonces (fixture, "alice", "carol", 1, 1, to_carol, same);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    //  A sender's nonce twice in a run
    const char *twice [] = { "bob", "BOB" };
    const char *twice_nonces [] = { "t", "t" };
    reply = s_pm_append_nonces (fixture, "alice", "bob", 4, 2, twice, twice_nonces);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
}

//  --------------------------------------------------------------------------
//  Read markers and mentions (schema version 8)

//  store.member.read
static sc_reply_t *
s_member_read (fixture_t *fixture, const char *room, const char *user, int64_t seq)
{
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "room", room);
    pl_pack_kstr (&body, "user", user);
    pl_pack_kint (&body, "seq", seq);
    return s_call (fixture, "store.member.read", &body);
}

static void
s_member_read_ok (fixture_t *fixture, const char *room, const char *user, int64_t seq,
                  int64_t read_seq, bool moved)
{
    sc_reply_t *reply = s_member_read (fixture, room, user, seq);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "read_seq"), read_seq);
    assert_int_equal (s_bool (sc_reply_field (reply, "moved")), moved);
    sc_reply_destroy (&reply);
}

//  A message from user with the members it mentions (count names)
static sc_reply_t *
s_append_mentioning (fixture_t *fixture, const char *room, int64_t seq, const char *user,
                     uint32_t count, const char *const *names)
{
    pl_pack_t body;
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "room", room);
    pl_pack_str (&body, "entry");
    msgpack_pack_map (&body.packer, 6);
    sc_pack_kint (&body.packer, "seq", seq);
    sc_pack_kstr (&body.packer, "kind", "message");
    sc_pack_kstr (&body.packer, "user", user);
    sc_pack_kint (&body.packer, "ts", 1700000000000 + seq);
    sc_pack_kstr (&body.packer, "text", "hello @someone");
    pl_pack_str (&body, "mentions");
    msgpack_pack_array (&body.packer, count);
    for (uint32_t index = 0; index < count; index++)
        pl_pack_str (&body, names [index]);
    return s_call (fixture, "store.msg.append", &body);
}

//  The room of store.room.joined's first page named name
static const msgpack_object *
s_joined_room (sc_reply_t *reply, const char *name)
{
    s_assert_ok (reply);
    const msgpack_object *rooms = s_array_field (reply, "rooms");
    for (uint32_t index = 0; index < rooms->via.array.size; index++)
        if (sc_object_streq (sc_map_field (&rooms->via.array.ptr [index], "name"), name))
            return &rooms->via.array.ptr [index];
    fail_msg ("no room '%s' in the page", name);
    return NULL;
}

//  Asserts user's marker and counts of room, as store.room.joined gives them
static void
s_assert_marker (fixture_t *fixture, const char *user, const char *room, int64_t last_seq,
                 int64_t read_seq, int64_t unread, int64_t mentions)
{
    sc_reply_t *reply = s_room_page (fixture, "store.room.joined", user, NULL, 0, NULL, NULL, -1);
    const msgpack_object *map = s_joined_room (reply, room);
    s_assert_int (sc_map_field (map, "last_seq"), last_seq);
    s_assert_int (sc_map_field (map, "read_seq"), read_seq);
    s_assert_int (sc_map_field (map, "unread"), unread);
    s_assert_int (sc_map_field (map, "mentions"), mentions);
    sc_reply_destroy (&reply);
}

static void
test_member_marker_starts_at_the_join_and_moves_forward_only (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "Bob");
    s_room_create_ok (fixture, "General", false, 50, "alice");
    //  The owner starts at 0 (nothing to read), a joiner at its own entry
    s_assert_marker (fixture, "alice", "General", 0, 0, 0, 0);
    s_append_ok (fixture, "general", 1, "alice", "one");
    s_append_ok (fixture, "general", 2, "alice", "two");
    s_member_add_ok (fixture, "general", "bob", 3);
    s_assert_marker (fixture, "BOB", "General", 3, 3, 0, 0);
    //  alice's own messages moved hers; bob's moves his, not alice's
    s_assert_marker (fixture, "alice", "General", 3, 2, 0, 0);
    s_append_ok (fixture, "general", 4, "Bob", "four");
    s_assert_marker (fixture, "bob", "General", 4, 4, 0, 0);
    s_assert_marker (fixture, "alice", "General", 4, 2, 1, 0);
    //  Forward only, never past the newest entry
    s_member_read_ok (fixture, "GENERAL", "alice", 3, 3, true);
    s_member_read_ok (fixture, "general", "alice", 3, 3, false);
    s_member_read_ok (fixture, "general", "alice", 1, 3, false);
    s_member_read_ok (fixture, "general", "alice", 99, 4, true);
    s_member_read_ok (fixture, "general", "alice", 99, 4, false);
    s_assert_marker (fixture, "alice", "General", 4, 4, 0, 0);
    //  A run moves its sender's marker to its last message
    s_append_run_ok (fixture, "general", 5, 3);
    s_assert_marker (fixture, "alice", "General", 7, 7, 0, 0);
    s_assert_marker (fixture, "bob", "General", 7, 4, 3, 0);
    //  Leaving drops the marker; joining again starts at the new join
    sc_reply_t *reply = s_member_remove (fixture, "general", "bob", 8);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    s_append_ok (fixture, "general", 9, "alice", "while away");
    s_member_add_ok (fixture, "general", "bob", 10);
    s_assert_marker (fixture, "bob", "General", 10, 10, 0, 0);
}

//  A run whose senders take turns, the same sender in different cases:
//  each sender's marker ends at its own last message of the run, whether
//  or not that is the run's last (seqs from first, users [i] the sender
//  of the i-th)
static void
test_member_markers_of_a_run_of_several_senders (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "Bob");
    s_user_create_ok (fixture, "carol");
    s_room_create_ok (fixture, "general", false, 50, "alice");
    s_member_add_ok (fixture, "general", "bob", 1);
    s_member_add_ok (fixture, "general", "carol", 2);
    const char *users [] = { "alice", "Bob", "ALICE", "carol", "bob", "alice", "carol" };
    pl_pack_t body;
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "room", "general");
    pl_pack_str (&body, "entries");
    msgpack_pack_array (&body.packer, 7);
    for (int64_t index = 0; index < 7; index++)
        s_pack_entry (&body.packer, 3 + index, users [index], "turn", NULL);
    sc_reply_t *reply = s_call (fixture, "store.msg.append", &body);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "seq"), 9);
    sc_reply_destroy (&reply);
    //  alice's last is 8, bob's 7, carol's 9: the others' after are unread
    s_assert_marker (fixture, "alice", "general", 9, 8, 1, 0);
    s_assert_marker (fixture, "bob", "general", 9, 7, 2, 0);
    s_assert_marker (fixture, "carol", "general", 9, 9, 0, 0);
}

static void
test_member_read_refuses_unknown_rooms_non_members_and_bad_fields (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_room_create_ok (fixture, "general", false, 50, "alice");
    s_append_ok (fixture, "general", 1, "alice", "one");
    sc_reply_t *reply = s_member_read (fixture, "nowhere", "alice", 1);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_member_read (fixture, "general", "bob", 1);
    s_assert_error (reply, "not_member");
    sc_reply_destroy (&reply);
    reply = s_member_read (fixture, "general", "ghost", 1);
    s_assert_error (reply, "not_member");
    sc_reply_destroy (&reply);
    reply = s_member_read (fixture, "general", "alice", 0);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    pl_pack_t body;
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "room", "general");
    pl_pack_kstr (&body, "user", "alice");
    reply = s_call (fixture, "store.member.read", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    //  Nothing moved
    s_assert_marker (fixture, "alice", "general", 1, 1, 0, 0);
}

static void
test_mentions_are_kept_with_the_entry_and_counted_after_the_marker (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "Bob");
    s_user_create_ok (fixture, "carol");
    s_room_create_ok (fixture, "general", false, 50, "alice");
    s_member_add_ok (fixture, "general", "bob", 1);
    s_member_add_ok (fixture, "general", "carol", 2);
    const char *bob_and_carol [] = { "Bob", "carol" };
    const char *alice_self [] = { "alice", "Bob" };
    const char *ghost [] = { "ghost" };
    sc_reply_t *reply = s_append_mentioning (fixture, "general", 3, "alice", 2, bob_and_carol);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_append_mentioning (fixture, "general", 4, "alice", 2, alice_self);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_append_mentioning (fixture, "general", 5, "carol", 1, ghost);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    s_append_ok (fixture, "general", 6, "carol", "plain");
    //  bob: 4 unread, 2 of them mention him; alice mentioned herself only in
    //  her own message, which is never unread for her
    s_assert_marker (fixture, "bob", "general", 6, 1, 4, 2);
    s_assert_marker (fixture, "alice", "general", 6, 4, 2, 0);
    s_assert_marker (fixture, "carol", "general", 6, 6, 0, 0);
    s_member_read_ok (fixture, "general", "bob", 3, 3, true);
    s_assert_marker (fixture, "bob", "general", 6, 3, 3, 1);
    //  History gives each entry's mentions as sent; none without
    reply = s_history (fixture, "general", S_NO_CURSOR, 2, 0);
    s_assert_ok (reply);
    const msgpack_object *messages = s_array_field (reply, "messages");
    assert_int_equal (messages->via.array.size, 4);
    const msgpack_object *mentions = sc_map_field (&messages->via.array.ptr [0], "mentions");
    assert_non_null (mentions);
    assert_int_equal (mentions->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal (mentions->via.array.size, 2);
    s_assert_str (&mentions->via.array.ptr [0], "Bob");
    s_assert_str (&mentions->via.array.ptr [1], "carol");
    mentions = sc_map_field (&messages->via.array.ptr [1], "mentions");
    assert_non_null (mentions);
    s_assert_str (&mentions->via.array.ptr [0], "alice");
    assert_null (sc_map_field (&messages->via.array.ptr [3], "mentions"));
    sc_reply_destroy (&reply);
}

static void
test_mentions_that_are_not_arrays_of_names_are_bad_request (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_room_create_ok (fixture, "general", false, 50, "alice");
    const char *empty_name [] = { "" };
    sc_reply_t *reply = s_append_mentioning (fixture, "general", 1, "alice", 0, NULL);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    reply = s_append_mentioning (fixture, "general", 1, "alice", 1, empty_name);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    //  At most 10,000 names (the most members a room has)
    static char names [10001][8];
    static const char *many [10001];
    for (int index = 0; index < 10001; index++) {
        snprintf (names [index], sizeof names [index], "m%05d", index);
        many [index] = names [index];
    }
    reply = s_append_mentioning (fixture, "general", 1, "alice", 10001, many);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    //  Nothing appended
    s_assert_marker (fixture, "alice", "general", 0, 0, 0, 0);
    reply = s_append_mentioning (fixture, "general", 1, "alice", 10000, many);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    s_assert_marker (fixture, "alice", "general", 1, 1, 0, 0);
}

static void
test_msg_history_naming_a_user_answers_its_read_seq (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_room_create_ok (fixture, "general", false, 50, "alice");
    s_append_ok (fixture, "general", 1, "alice", "one");
    s_member_add_ok (fixture, "general", "bob", 2);
    s_append_ok (fixture, "general", 3, "alice", "three");
    const char *users [] = { "alice", "BOB", "carol", "ghost" };
    const int64_t read_seqs [] = { 3, 2, 0, 0 };
    s_user_create_ok (fixture, "carol");
    for (size_t index = 0; index < 4; index++) {
        pl_pack_t body;
        sc_body_init (&body, 2);
        pl_pack_kstr (&body, "room", "general");
        pl_pack_kstr (&body, "user", users [index]);
        sc_reply_t *reply = s_call (fixture, "store.msg.history", &body);
        s_assert_ok (reply);
        assert_int_equal (s_array_field (reply, "messages")->via.array.size, 3);
        s_assert_int (sc_reply_field (reply, "read_seq"), read_seqs [index]);
        sc_reply_destroy (&reply);
    }
    //  Without a user, no read_seq
    sc_reply_t *reply = s_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0);
    s_assert_ok (reply);
    assert_null (sc_reply_field (reply, "read_seq"));
    sc_reply_destroy (&reply);
}

static void
test_room_invited_lists_private_invitations_until_joined (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_room_create_ok (fixture, "secret", true, 50, "alice");
    s_room_create_ok (fixture, "Attic", true, 50, "alice");
    s_room_create_ok (fixture, "quiet", true, 50, "alice");
    s_room_create_ok (fixture, "lobby", false, 50, "alice");
    const char *none [] = { NULL };
    s_assert_room_page (s_room_page (fixture, "store.room.invited", "bob", NULL, 0, NULL, NULL,
                                     -1), none, "", false);
    sc_reply_t *reply;
    const char *invited [] = { "secret", "Attic", "lobby" };
    for (size_t index = 0; index < 3; index++) {
        reply = s_invite (fixture, invited [index], "BOB", "alice");
        s_assert_ok (reply);
        sc_reply_destroy (&reply);
    }
    //  Private rooms only, by lower-cased name, each invited and not joined
    reply = s_room_page (fixture, "store.room.invited", "Bob", NULL, 0, NULL, NULL, -1);
    const msgpack_object *rooms = s_array_field (reply, "rooms");
    assert_int_equal (rooms->via.array.size, 2);
    assert_true (s_bool (sc_map_field (&rooms->via.array.ptr [0], "invited")));
    assert_null (sc_map_field (&rooms->via.array.ptr [0], "read_seq"));
    sc_reply_destroy (&reply);
    const char *both [] = { "Attic", "secret", NULL };
    s_assert_room_page (s_room_page (fixture, "store.room.invited", "bob", NULL, 0, NULL, NULL,
                                     -1), both, "nn", false);
    const char *first [] = { "Attic", NULL };
    s_assert_room_page (s_room_page (fixture, "store.room.invited", "bob", NULL, 1, NULL, NULL,
                                     -1), first, "n", true);
    const char *second [] = { "secret", NULL };
    s_assert_room_page (s_room_page (fixture, "store.room.invited", "bob", "attic", 1, NULL,
                                     NULL, -1), second, "n", false);
    //  Joining uses the invitation up; others see none
    s_member_add_ok (fixture, "attic", "bob", 1);
    s_assert_room_page (s_room_page (fixture, "store.room.invited", "bob", NULL, 0, NULL, NULL,
                                     -1), second, "n", false);
    s_assert_room_page (s_room_page (fixture, "store.room.invited", "ghost", NULL, 0, NULL,
                                     NULL, -1), none, "", false);
    s_assert_room_page (s_room_page (fixture, "store.room.invited", "alice", NULL, 0, NULL,
                                     NULL, -1), none, "", false);
}

static void
test_read_markers_and_mentions_survive_plugin_restart (void **state)
{
    REAL_DB ();
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_room_create_ok (fixture, "general", false, 50, "alice");
    s_member_add_ok (fixture, "general", "bob", 1);
    const char *bob [] = { "bob" };
    sc_reply_t *reply = s_append_mentioning (fixture, "general", 2, "alice", 1, bob);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    s_append_ok (fixture, "general", 3, "alice", "three");
    s_member_read_ok (fixture, "general", "bob", 2, 2, true);
    s_append_ok (fixture, "general", 4, "alice", "four");
    reply = s_append_mentioning (fixture, "general", 5, "alice", 1, bob);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);

    sc_broker_stop (fixture->broker);
    s_fixture_start (fixture);

    s_assert_marker (fixture, "bob", "general", 5, 2, 3, 1);
    s_assert_marker (fixture, "alice", "general", 5, 5, 0, 0);
    s_member_read_ok (fixture, "general", "bob", 1, 2, false);
}

static void
test_pm_read_and_conversations_carry_the_read_marker (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "Bob");
    for (int64_t seq = 1; seq <= 4; seq++)
        s_pm_append_ok (fixture, "bob", "alice", seq, "hi", S_PM_TS (seq));
    const int64_t reads [][3] = {   //  seq asked, read_seq answered, unread
        { 2, 2, 2 }, { 1, 2, 2 }, { 4, 4, 0 }, { 3, 4, 0 }
    };
    for (size_t index = 0; index < 4; index++) {
        sc_reply_t *reply = s_pm_read (fixture, "ALICE", "bob", reads [index][0]);
        s_assert_ok (reply);
        s_assert_int (sc_reply_field (reply, "read_seq"), reads [index][1]);
        s_assert_int (sc_reply_field (reply, "unread"), reads [index][2]);
        sc_reply_destroy (&reply);
    }
    sc_reply_t *reply = s_pm_conversations (fixture, "alice", 0);
    s_assert_ok (reply);
    const msgpack_object *row = &s_array_field (reply, "conversations")->via.array.ptr [0];
    s_assert_int (sc_map_field (row, "read_seq"), 4);
    s_assert_int (sc_map_field (row, "last_seq"), 4);
    sc_reply_destroy (&reply);
    //  bob never read: his marker is 0
    reply = s_pm_conversations (fixture, "bob", 0);
    s_assert_ok (reply);
    row = &s_array_field (reply, "conversations")->via.array.ptr [0];
    s_assert_int (sc_map_field (row, "read_seq"), 0);
    s_assert_int (sc_map_field (row, "last_seq"), 4);
    sc_reply_destroy (&reply);
    //  Without a conversation: nothing marked, read_seq 0
    s_user_create_ok (fixture, "carol");
    reply = s_pm_read (fixture, "carol", "alice", 3);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "read_seq"), 0);
    sc_reply_destroy (&reply);
}

//  --------------------------------------------------------------------------
//  The operator's: store.user.set_state, store.user.set_password,
//  store.room.all (parleyctl, through auth and rooms)

static sc_reply_t *
s_set_state (fixture_t *fixture, const char *name, const char *state)
{
    pl_pack_t body;
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "name", name);
    pl_pack_kstr (&body, "state", state);
    return s_call (fixture, "store.user.set_state", &body);
}

static void
s_assert_state (fixture_t *fixture, const char *name, const char *state)
{
    sc_reply_t *reply = s_by_name (fixture, "store.user.get", "name", name);
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "state"), state);
    sc_reply_destroy (&reply);
}

static void
test_user_state_disabled_revokes_tokens_and_refuses_new_ones (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "Alice");
    s_assert_state (fixture, "alice", "active");
    sc_reply_t *reply = s_token_put (fixture, "alice-token-1", "alice", 9000);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);

    reply = s_set_state (fixture, "ALICE", "disabled");
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "name"), "Alice");
    s_assert_str (sc_reply_field (reply, "state"), "disabled");
    s_assert_int (sc_reply_field (reply, "tokens"), 1);
    sc_reply_destroy (&reply);
    s_assert_state (fixture, "alice", "disabled");
    reply = s_by_name (fixture, "store.token.get", "token_hash", "alice-token-1");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_token_put (fixture, "alice-token-2", "alice", 9000);
    s_assert_error (reply, "forbidden");
    sc_reply_destroy (&reply);
    reply = s_user_list (fixture, NULL, 0);
    s_assert_ok (reply);
    s_assert_str (sc_map_field (&s_users (reply)->via.array.ptr [0], "state"), "disabled");
    sc_reply_destroy (&reply);

    reply = s_set_state (fixture, "alice", "active");
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "tokens"), 0);
    sc_reply_destroy (&reply);
    reply = s_token_put (fixture, "alice-token-2", "alice", 9000);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
}

static void
test_user_deleted_stays_deleted_and_keeps_its_name (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "Bob");
    sc_reply_t *reply = s_set_state (fixture, "bob", "deleted");
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "state"), "deleted");
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.user.get", "name", "bob");
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "state"), "deleted");
    s_assert_str (sc_reply_field (reply, "password_hash"), "");
    sc_reply_destroy (&reply);
    const char *states [] = { "active", "disabled" };
    for (size_t index = 0; index < 2; index++) {
        reply = s_set_state (fixture, "bob", states [index]);
        s_assert_error (reply, "conflict");
        sc_reply_destroy (&reply);
    }
    reply = s_token_put (fixture, "bob-token", "bob", 9000);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    pl_pack_t body;
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "name", "bob");
    pl_pack_kstr (&body, "password_hash", "new-hash");
    reply = s_call (fixture, "store.user.set_password", &body);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_user_create (fixture, "BOB", "other-hash", 5);
    s_assert_error (reply, "conflict");
    sc_reply_destroy (&reply);
}

static void
test_user_set_password_replaces_the_hash_and_revokes_tokens (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "carol");
    for (int index = 0; index < 2; index++) {
        char hash [32];
        snprintf (hash, sizeof hash, "carol-token-%d", index);
        sc_reply_t *reply = s_token_put (fixture, hash, "carol", 9000);
        s_assert_ok (reply);
        sc_reply_destroy (&reply);
    }
    pl_pack_t body;
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "name", "CAROL");
    pl_pack_kstr (&body, "password_hash", "carol-new-hash");
    sc_reply_t *reply = s_call (fixture, "store.user.set_password", &body);
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "name"), "carol");
    s_assert_int (sc_reply_field (reply, "tokens"), 2);
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.user.get", "name", "carol");
    s_assert_str (sc_reply_field (reply, "password_hash"), "carol-new-hash");
    s_assert_str (sc_reply_field (reply, "state"), "active");
    sc_reply_destroy (&reply);

    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "name", "nobody");
    pl_pack_kstr (&body, "password_hash", "h");
    reply = s_call (fixture, "store.user.set_password", &body);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_set_state (fixture, "nobody", "disabled");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    const char *bad [] = { "", "gone", "Active" };
    for (size_t index = 0; index < 3; index++) {
        reply = s_set_state (fixture, "carol", bad [index]);
        s_assert_error (reply, "bad_request");
        sc_reply_destroy (&reply);
    }
    sc_body_init (&body, 1);
    pl_pack_kstr (&body, "name", "carol");
    reply = s_call (fixture, "store.user.set_password", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    s_assert_state (fixture, "carol", "active");
}

//  store.user.set_password {name, password_hash, keep_token}
static sc_reply_t *
s_set_password_keeping (fixture_t *fixture, const char *name, const char *hash,
                        const char *keep)
{
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "name", name);
    pl_pack_kstr (&body, "password_hash", hash);
    pl_pack_kstr (&body, "keep_token", keep);
    return s_call (fixture, "store.user.set_password", &body);
}

//  auth.password: the new password's token stays, every other one goes
static void
test_user_set_password_keeps_the_token_named (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "dora");
    s_user_create_ok (fixture, "eric");
    const char *hashes [] = { "dora-1", "dora-2", "dora-3", "eric-1" };
    for (size_t index = 0; index < 4; index++) {
        sc_reply_t *reply = s_token_put (fixture, hashes [index], index < 3 ? "dora" : "eric",
                                         9000);
        s_assert_ok (reply);
        sc_reply_destroy (&reply);
    }
    sc_reply_t *reply = s_set_password_keeping (fixture, "DORA", "dora-new-hash", "dora-2");
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "name"), "dora");
    s_assert_int (sc_reply_field (reply, "tokens"), 2);
    sc_reply_destroy (&reply);
    for (size_t index = 0; index < 4; index++) {
        reply = s_by_name (fixture, "store.token.get", "token_hash", hashes [index]);
        if (index == 1 || index == 3)
            s_assert_ok (reply);
        else
            s_assert_error (reply, "not_found");
        sc_reply_destroy (&reply);
    }
    reply = s_by_name (fixture, "store.user.get", "name", "dora");
    s_assert_str (sc_reply_field (reply, "password_hash"), "dora-new-hash");
    sc_reply_destroy (&reply);
    //  Another user's token named: not the user's, so every one of the
    //  user's goes, and the other user's stays
    reply = s_set_password_keeping (fixture, "dora", "dora-newer-hash", "eric-1");
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "tokens"), 1);
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.token.get", "token_hash", "eric-1");
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_set_password_keeping (fixture, "dora", "dora-newest-hash", "");
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.user.get", "name", "dora");
    s_assert_str (sc_reply_field (reply, "password_hash"), "dora-newer-hash");
    sc_reply_destroy (&reply);
}

static void
test_room_all_lists_every_room_by_name_in_pages (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "owner");
    const char *names [] = { "delta", "Alpha", "charlie", "Bravo", "echo" };
    for (size_t index = 0; index < 5; index++)
        s_room_create_ok (fixture, names [index], index % 2 == 1, 10, "owner");
    const char *sorted [] = { "Alpha", "Bravo", "charlie", "delta", "echo" };
    const char *after = NULL;
    size_t seen = 0;
    for (int page = 0; page < 3; page++) {
        pl_pack_t body;
        sc_body_init (&body, after ? 2 : 1);
        pl_pack_kint (&body, "limit", 2);
        if (after)
            pl_pack_kstr (&body, "after", after);
        sc_reply_t *reply = s_call (fixture, "store.room.all", &body);
        s_assert_ok (reply);
        const msgpack_object *rooms = s_array_field (reply, "rooms");
        for (uint32_t index = 0; index < rooms->via.array.size; index++) {
            const msgpack_object *room = &rooms->via.array.ptr [index];
            assert_true (seen < 5);
            s_assert_str (sc_map_field (room, "name"), sorted [seen]);
            assert_null (sc_map_field (room, "joined"));
            seen++;
        }
        assert_int_equal (s_more (reply), seen < 5);
        after = sorted [seen - 1];
        sc_reply_destroy (&reply);
    }
    assert_int_equal (seen, 5);
    pl_pack_t body;
    sc_body_init (&body, 1);
    pl_pack_kint (&body, "limit", 0);
    sc_reply_t *reply = s_call (fixture, "store.room.all", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
}


//  --------------------------------------------------------------------------
//  Timeline changes: edits, deletions, reactions, replies (schema version 9)

//  One element of a run: a room entry, or a conversation's message ('user'
//  is then its 'from'). Fields left 0 or NULL are not sent; on: -1 not sent.
typedef struct {
    int64_t seq;
    const char *kind;               //  NULL: "message"
    const char *user;
    const char *text;
    int64_t target;
    int64_t reply_to;
    const char *emoji;
    int on;
    const char *event;              //  a system entry's
    const char *by;
    const char *nonce;
    const char *file;               //  a message's file id (schema version 13): the map
                                    //  {id, name "notes.txt", size 10, type "text/plain"}
} s_spec_t;

#define S_TL_TS(seq) (1720000000000 + (seq) * 1000)

//  Packs spec as a room entry (pm false) or a pm.append message (pm true)
static void
s_pack_spec (msgpack_packer *packer, const s_spec_t *spec, bool pm)
{
    const char *kind = spec->kind ? spec->kind : "message";
    uint32_t fields = 3 + (!pm || spec->kind) + (spec->text != NULL) + (spec->target != 0)
                    + (spec->reply_to != 0) + (spec->emoji != NULL) + (spec->on >= 0)
                    + (spec->event != NULL) + (spec->by != NULL) + (spec->nonce != NULL)
                    + (spec->file != NULL);
    msgpack_pack_map (packer, fields);
    sc_pack_kint (packer, "seq", spec->seq);
    if (!pm || spec->kind)
        sc_pack_kstr (packer, "kind", kind);
    sc_pack_kstr (packer, pm ? "from" : "user", spec->user);
    sc_pack_kint (packer, "ts", S_TL_TS (spec->seq));
    if (spec->text)
        sc_pack_kstr (packer, "text", spec->text);
    if (spec->target)
        sc_pack_kint (packer, "target", spec->target);
    if (spec->reply_to)
        sc_pack_kint (packer, "reply_to", spec->reply_to);
    if (spec->emoji)
        sc_pack_kstr (packer, "emoji", spec->emoji);
    if (spec->on >= 0) {
        sc_pack_key (packer, "on");
        if (spec->on)
            msgpack_pack_true (packer);
        else
            msgpack_pack_false (packer);
    }
    if (spec->event)
        sc_pack_kstr (packer, "event", spec->event);
    if (spec->by)
        sc_pack_kstr (packer, "by", spec->by);
    if (spec->nonce)
        sc_pack_kstr (packer, "nonce", spec->nonce);
    if (spec->file) {
        sc_pack_key (packer, "file");
        msgpack_pack_map (packer, 4);
        sc_pack_kstr (packer, "id", spec->file);
        sc_pack_kstr (packer, "name", "notes.txt");
        sc_pack_kint (packer, "size", 10);
        sc_pack_kstr (packer, "type", "text/plain");
    }
}

//  store.msg.append of the specs as 'entries'
static sc_reply_t *
s_append_specs (fixture_t *fixture, const char *room, const s_spec_t *specs, uint32_t count)
{
    pl_pack_t body;
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "room", room);
    pl_pack_str (&body, "entries");
    msgpack_pack_array (&body.packer, count);
    for (uint32_t index = 0; index < count; index++)
        s_pack_spec (&body.packer, &specs [index], false);
    return s_call (fixture, "store.msg.append", &body);
}

//  store.pm.append of the specs as 'messages'
static sc_reply_t *
s_pm_specs (fixture_t *fixture, const char *from, const char *to, const s_spec_t *specs,
            uint32_t count)
{
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "from", from);
    pl_pack_kstr (&body, "to", to);
    pl_pack_str (&body, "messages");
    msgpack_pack_array (&body.packer, count);
    for (uint32_t index = 0; index < count; index++)
        s_pack_spec (&body.packer, &specs [index], true);
    return s_call (fixture, "store.pm.append", &body);
}

//  Asserts an ok answer that stored everything: seq is the last one's
static void
s_assert_stored (sc_reply_t *reply, int64_t seq)
{
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "seq"), seq);
    assert_null (sc_reply_field (reply, "refused"));
    sc_reply_destroy (&reply);
}

//  Asserts an ok answer that stored nothing and refused exactly the
//  elements indexes with codes (count of them)
static void
s_assert_refused (sc_reply_t *reply, uint32_t count, const uint32_t *indexes,
                  const char *const *codes)
{
    s_assert_ok (reply);
    assert_null (sc_reply_field (reply, "seq"));
    const msgpack_object *refused = s_array_field (reply, "refused");
    assert_int_equal (refused->via.array.size, count);
    for (uint32_t item = 0; item < count; item++) {
        s_assert_int (sc_map_field (&refused->via.array.ptr [item], "index"), indexes [item]);
        s_assert_str (sc_map_field (&refused->via.array.ptr [item], "code"), codes [item]);
    }
    sc_reply_destroy (&reply);
}

static void
s_assert_refused_one (sc_reply_t *reply, uint32_t index, const char *code)
{
    s_assert_refused (reply, 1, &index, &code);
}

static void
s_append_one_ok (fixture_t *fixture, const char *room, s_spec_t spec)
{
    s_assert_stored (s_append_specs (fixture, room, &spec, 1), spec.seq);
}

static void
s_pm_one_ok (fixture_t *fixture, const char *from, const char *to, s_spec_t spec)
{
    s_assert_stored (s_pm_specs (fixture, from, to, &spec, 1), spec.seq);
}

//  The entry of a history answer with seq, asserted present
static const msgpack_object *
s_entry_of (sc_reply_t *reply, int64_t seq)
{
    const msgpack_object *messages = s_array_field (reply, "messages");
    for (uint32_t index = 0; index < messages->via.array.size; index++) {
        const msgpack_object *seq_field = sc_map_field (&messages->via.array.ptr [index], "seq");
        if (seq_field && seq_field->via.i64 == seq)
            return &messages->via.array.ptr [index];
    }
    fail_msg ("no entry with seq %" PRId64 " in the page", seq);
    return NULL;
}

//  The room's whole history (at most 1000 entries), asserted ok
static sc_reply_t *
s_whole_history (fixture_t *fixture, const char *room)
{
    sc_reply_t *reply = s_history (fixture, room, S_NO_CURSOR, S_NO_CURSOR, 1000);
    s_assert_ok (reply);
    return reply;
}

//  Asserts the reactions of a message entry: count emoji, each with its
//  count and its first user (NULL: no reactions field)
static void
s_assert_reactions (const msgpack_object *entry, uint32_t count, const char *const *emoji,
                    const int64_t *counts, const char *const *first_users)
{
    const msgpack_object *reactions = sc_map_field (entry, "reactions");
    if (count == 0) {
        assert_null (reactions);
        return;
    }
    assert_non_null (reactions);
    assert_int_equal (reactions->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal (reactions->via.array.size, count);
    for (uint32_t index = 0; index < count; index++) {
        const msgpack_object *one = &reactions->via.array.ptr [index];
        s_assert_str (sc_map_field (one, "emoji"), emoji [index]);
        s_assert_int (sc_map_field (one, "count"), counts [index]);
        const msgpack_object *users = sc_map_field (one, "users");
        assert_non_null (users);
        assert_int_equal (users->type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal (users->via.array.size, counts [index] < 20 ? counts [index] : 20);
        s_assert_str (&users->via.array.ptr [0], first_users [index]);
    }
}

//  A room "general" owned by alice with bob and carol members (seqs 1, 2)
static void
s_timeline_room (fixture_t *fixture)
{
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "Bob");
    s_user_create_ok (fixture, "carol");
    s_room_create_ok (fixture, "general", false, 50, "alice");
    s_member_add_ok (fixture, "general", "bob", 1);
    s_member_add_ok (fixture, "general", "carol", 2);
}

static void
test_timeline_changes_are_answered_as_the_message_is_now (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_timeline_room (fixture);
    s_spec_t run [] = {
        { .seq = 3, .user = "alice", .text = "first words", .on = -1 },
        { .seq = 4, .user = "Bob", .text = "an answer", .reply_to = 3, .on = -1 },
        { .seq = 5, .kind = "edit", .user = "ALICE", .target = 3, .text = "better words",
          .on = -1 },
        { .seq = 6, .kind = "reaction", .user = "Bob", .target = 3, .emoji = "\xf0\x9f\x91\x8d",
          .on = 1 },
        { .seq = 7, .kind = "system", .user = "alice", .event = "update", .on = -1 },
        { .seq = 8, .kind = "system", .user = "carol", .event = "kick", .by = "alice",
          .on = -1 },
        { .seq = 9, .kind = "edit", .user = "alice", .target = 3, .text = "best words",
          .on = -1 },
    };
    s_assert_stored (s_append_specs (fixture, "general", run, 7), 9);
    sc_reply_t *reply = s_whole_history (fixture, "general");
    const msgpack_object *message = s_entry_of (reply, 3);
    s_assert_str (sc_map_field (message, "kind"), "message");
    s_assert_str (sc_map_field (message, "text"), "best words");
    s_assert_int (sc_map_field (message, "edited"), S_TL_TS (9));
    assert_null (sc_map_field (message, "deleted"));
    assert_null (sc_map_field (message, "reply_to"));
    const char *emoji [] = { "\xf0\x9f\x91\x8d" };
    const int64_t counts [] = { 1 };
    const char *users [] = { "Bob" };
    s_assert_reactions (message, 1, emoji, counts, users);
    const msgpack_object *reply_entry = s_entry_of (reply, 4);
    s_assert_int (sc_map_field (reply_entry, "reply_to"), 3);
    assert_null (sc_map_field (reply_entry, "edited"));
    s_assert_reactions (reply_entry, 0, NULL, NULL, NULL);
    const msgpack_object *edit = s_entry_of (reply, 5);
    s_assert_str (sc_map_field (edit, "kind"), "edit");
    s_assert_int (sc_map_field (edit, "target"), 3);
    s_assert_str (sc_map_field (edit, "text"), "better words");
    s_assert_str (sc_map_field (edit, "user"), "ALICE");
    const msgpack_object *reaction = s_entry_of (reply, 6);
    s_assert_str (sc_map_field (reaction, "kind"), "reaction");
    s_assert_int (sc_map_field (reaction, "target"), 3);
    s_assert_str (sc_map_field (reaction, "emoji"), "\xf0\x9f\x91\x8d");
    assert_true (s_bool (sc_map_field (reaction, "on")));
    s_assert_str (sc_map_field (s_entry_of (reply, 7), "event"), "update");
    assert_null (sc_map_field (s_entry_of (reply, 7), "by"));
    s_assert_str (sc_map_field (s_entry_of (reply, 8), "event"), "kick");
    s_assert_str (sc_map_field (s_entry_of (reply, 8), "by"), "alice");
    sc_reply_destroy (&reply);
    //  A page that starts after the message still reads its own entries
    reply = s_history (fixture, "general", S_NO_CURSOR, 4, 2);
    s_assert_ok (reply);
    s_assert_str (sc_map_field (s_entry_of (reply, 5), "text"), "better words");
    sc_reply_destroy (&reply);
}

static void
test_timeline_changes_refused_by_the_checks_store_nothing (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_timeline_room (fixture);
    s_append_one_ok (fixture, "general", (s_spec_t) { .seq = 3, .user = "alice",
                                                      .text = "hello", .on = -1 });
    //  Not a message of the room (a seq without entry, a system entry);
    //  not the author of an edit; neither the author nor the owner of a
    //  deletion; a reaction taken back that was never given
    const struct {
        s_spec_t spec;
        const char *code;
    } alone [] = {
        { { .seq = 4, .kind = "edit", .user = "alice", .target = 99, .text = "x", .on = -1 },
          "no_such_message" },
        { { .seq = 4, .user = "bob", .text = "re", .reply_to = 1, .on = -1 }, "no_such_message" },
        { { .seq = 4, .kind = "reaction", .user = "bob", .target = 2, .emoji = "x", .on = 1 },
          "no_such_message" },
        { { .seq = 4, .kind = "edit", .user = "bob", .target = 3, .text = "mine", .on = -1 },
          "forbidden" },
        { { .seq = 4, .kind = "delete", .user = "carol", .target = 3, .on = -1 }, "forbidden" },
        { { .seq = 4, .kind = "reaction", .user = "bob", .target = 3, .emoji = "x", .on = 0 },
          "unchanged" },
    };
    for (size_t index = 0; index < sizeof alone / sizeof alone [0]; index++)
        s_assert_refused_one (s_append_specs (fixture, "general", &alone [index].spec, 1), 0,
                              alone [index].code);
    //  One refusal in a run stores none of it; the others are named too
    s_spec_t run [] = {
        { .seq = 4, .user = "bob", .text = "fine", .on = -1 },
        { .seq = 5, .kind = "edit", .user = "bob", .target = 3, .text = "no", .on = -1 },
        { .seq = 6, .user = "carol", .text = "ok", .reply_to = 4, .on = -1 },
        { .seq = 7, .kind = "delete", .user = "carol", .target = 4, .on = -1 },
        { .seq = 8, .kind = "delete", .user = "carol", .target = 6, .on = -1 },
        { .seq = 9, .kind = "reaction", .user = "bob", .target = 6, .emoji = "x", .on = 1 },
    };
    const uint32_t indexes [] = { 1, 3, 5 };
    const char *codes [] = { "forbidden", "forbidden", "no_such_message" };
    s_assert_refused (s_append_specs (fixture, "general", run, 6), 3, indexes, codes);
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 3, false);
    s_assert_marker (fixture, "bob", "general", 3, 1, 1, 0);
    //  The rest again, numbered anew: stored
    s_spec_t rest [] = { run [0], run [2] };
    rest [1].seq = 5;
    s_assert_stored (s_append_specs (fixture, "general", rest, 2), 5);
    //  The owner deletes another's message
    s_append_one_ok (fixture, "general", (s_spec_t) { .seq = 6, .kind = "delete",
                                                      .user = "Alice", .target = 4, .on = -1 });
}

static void
test_timeline_elements_of_a_run_see_the_ones_before_them (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_timeline_room (fixture);
    s_spec_t run [] = {
        { .seq = 3, .user = "alice", .text = "draft", .on = -1 },
        { .seq = 4, .kind = "edit", .user = "alice", .target = 3, .text = "final", .on = -1 },
        { .seq = 5, .kind = "reaction", .user = "bob", .target = 3, .emoji = "a", .on = 1 },
        { .seq = 6, .kind = "reaction", .user = "bob", .target = 3, .emoji = "a", .on = 1 },
        { .seq = 7, .kind = "delete", .user = "alice", .target = 3, .on = -1 },
        { .seq = 8, .kind = "reaction", .user = "carol", .target = 3, .emoji = "b", .on = 1 },
    };
    const uint32_t indexes [] = { 3, 5 };
    const char *codes [] = { "unchanged", "no_such_message" };
    s_assert_refused (s_append_specs (fixture, "general", run, 6), 2, indexes, codes);
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 2, false);
    //  Without the refused ones, numbered anew
    s_spec_t rest [] = { run [0], run [1], run [2], run [4] };
    rest [3].seq = 6;
    s_assert_stored (s_append_specs (fixture, "general", rest, 4), 6);
}

static void
test_timeline_delete_leaves_no_text_no_reactions_and_no_counts (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_timeline_room (fixture);
    const char *bob [] = { "Bob" };
    sc_reply_t *reply = s_append_mentioning (fixture, "general", 3, "alice", 1, bob);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    s_append_ok (fixture, "general", 4, "carol", "still here");
    s_append_one_ok (fixture, "general", (s_spec_t) { .seq = 5, .kind = "edit",
        .user = "alice", .target = 3, .text = "edited secret", .on = -1 });
    s_append_one_ok (fixture, "general", (s_spec_t) { .seq = 6, .kind = "reaction",
        .user = "carol", .target = 3, .emoji = "ok", .on = 1 });
    //  The edit keeps the mention: bob has 2 unread, 1 mentions him
    s_assert_marker (fixture, "bob", "general", 6, 1, 2, 1);
    s_append_one_ok (fixture, "general", (s_spec_t) { .seq = 7, .kind = "delete",
        .user = "alice", .target = 3, .on = -1 });
    s_assert_marker (fixture, "bob", "general", 7, 1, 1, 0);
    reply = s_whole_history (fixture, "general");
    const msgpack_object *message = s_entry_of (reply, 3);
    s_assert_str (sc_map_field (message, "text"), "");
    assert_true (s_bool (sc_map_field (message, "deleted")));
    s_assert_reactions (message, 0, NULL, NULL, NULL);
    s_assert_str (sc_map_field (s_entry_of (reply, 5), "text"), "");
    s_assert_int (sc_map_field (s_entry_of (reply, 7), "target"), 3);
    s_assert_str (sc_map_field (s_entry_of (reply, 4), "text"), "still here");
    sc_reply_destroy (&reply);
    //  A deleted message is no message any more: no edit, reply, reaction
    //  or second deletion
    s_assert_refused_one (s_append_specs (fixture, "general", &(s_spec_t) {
        .seq = 8, .kind = "edit", .user = "alice", .target = 3, .text = "back", .on = -1 }, 1),
        0, "no_such_message");
    s_assert_refused_one (s_append_specs (fixture, "general", &(s_spec_t) {
        .seq = 8, .kind = "delete", .user = "alice", .target = 3, .on = -1 }, 1),
        0, "no_such_message");
    s_assert_refused_one (s_append_specs (fixture, "general", &(s_spec_t) {
        .seq = 8, .user = "bob", .text = "re", .reply_to = 3, .on = -1 }, 1),
        0, "no_such_message");
}

//  n users user00.. as members of general from seq 3 on
static void
s_many_members (fixture_t *fixture, int count)
{
    for (int index = 0; index < count; index++) {
        char name [16];
        snprintf (name, sizeof name, "user%02d", index);
        s_user_create_ok (fixture, name);
        s_member_add_ok (fixture, "general", name, 3 + index);
    }
}

static void
test_timeline_reactions_are_ordered_counted_and_bounded (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_timeline_room (fixture);
    s_many_members (fixture, 25);       //  seqs 3 .. 27
    s_append_ok (fixture, "general", 28, "alice", "react to me");
    s_spec_t run [25];
    char names [25][16];
    for (int index = 0; index < 25; index++) {
        snprintf (names [index], sizeof names [index], "user%02d", index);
        run [index] = (s_spec_t) { .seq = 29 + index, .kind = "reaction", .user = names [index],
                                   .target = 28, .emoji = "+1", .on = 1 };
    }
    s_assert_stored (s_append_specs (fixture, "general", run, 25), 53);
    //  A second emoji, then the first taken back by all and given again
    //  by one: it now comes after the second
    s_append_one_ok (fixture, "general", (s_spec_t) { .seq = 54, .kind = "reaction",
        .user = "bob", .target = 28, .emoji = "heart", .on = 1 });
    for (int index = 0; index < 25; index++) {
        run [index].seq = 55 + index;
        run [index].on = 0;
    }
    s_assert_stored (s_append_specs (fixture, "general", run, 25), 79);
    s_append_one_ok (fixture, "general", (s_spec_t) { .seq = 80, .kind = "reaction",
        .user = "carol", .target = 28, .emoji = "+1", .on = 1 });
    sc_reply_t *reply = s_whole_history (fixture, "general");
    const char *emoji [] = { "heart", "+1" };
    const int64_t ones [] = { 1, 1 };
    const char *firsts [] = { "bob", "carol" };
    s_assert_reactions (s_entry_of (reply, 28), 2, emoji, ones, firsts);
    sc_reply_destroy (&reply);
    //  25 users on one emoji: counted all, the first 20 by their seq named
    for (int index = 0; index < 25; index++) {
        run [index].seq = 81 + index;
        run [index].on = 1;
        run [index].emoji = "star";
    }
    s_assert_stored (s_append_specs (fixture, "general", run, 25), 105);
    reply = s_history (fixture, "general", 106, S_NO_CURSOR, 80);
    s_assert_ok (reply);
    const char *three [] = { "heart", "+1", "star" };
    const int64_t counts [] = { 1, 1, 25 };
    const char *first_three [] = { "bob", "carol", "user00" };
    const msgpack_object *message = s_entry_of (reply, 28);
    s_assert_reactions (message, 3, three, counts, first_three);
    const msgpack_object *stars = &sc_map_field (message, "reactions")->via.array.ptr [2];
    s_assert_str (&sc_map_field (stars, "users")->via.array.ptr [19], "user19");
    sc_reply_destroy (&reply);
    //  20 different emoji at most on one message
    s_spec_t more [17];
    char marks [17][8];
    for (int index = 0; index < 17; index++) {
        snprintf (marks [index], sizeof marks [index], "e%02d", index);
        more [index] = (s_spec_t) { .seq = 106 + index, .kind = "reaction", .user = "alice",
                                    .target = 28, .emoji = marks [index], .on = 1 };
    }
    s_assert_stored (s_append_specs (fixture, "general", more, 17), 122);
    s_assert_refused_one (s_append_specs (fixture, "general", &(s_spec_t) {
        .seq = 123, .kind = "reaction", .user = "bob", .target = 28, .emoji = "one-more",
        .on = 1 }, 1), 0, "too_many_reactions");
    //  ... but one more user on an emoji that is there is fine
    s_append_one_ok (fixture, "general", (s_spec_t) { .seq = 123, .kind = "reaction",
        .user = "bob", .target = 28, .emoji = "e00", .on = 1 });
}

static void
test_timeline_refusals_come_beside_repeated_nonces (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_timeline_room (fixture);
    s_append_one_ok (fixture, "general", (s_spec_t) { .seq = 3, .user = "alice",
        .text = "once", .nonce = "n-1", .on = -1 });
    s_spec_t run [] = {
        { .seq = 4, .user = "alice", .text = "once", .nonce = "n-1", .on = -1 },
        { .seq = 5, .kind = "edit", .user = "bob", .target = 3, .text = "x", .on = -1 },
        { .seq = 6, .user = "bob", .text = "new", .on = -1 },
    };
    sc_reply_t *reply = s_append_specs (fixture, "general", run, 3);
    s_assert_ok (reply);
    assert_null (sc_reply_field (reply, "seq"));
    const msgpack_object *duplicates = s_array_field (reply, "duplicates");
    assert_int_equal (duplicates->via.array.size, 1);
    s_assert_int (sc_map_field (&duplicates->via.array.ptr [0], "index"), 0);
    s_assert_int (sc_map_field (&duplicates->via.array.ptr [0], "seq"), 3);
    const msgpack_object *refused = s_array_field (reply, "refused");
    assert_int_equal (refused->via.array.size, 1);
    s_assert_int (sc_map_field (&refused->via.array.ptr [0], "index"), 1);
    s_assert_str (sc_map_field (&refused->via.array.ptr [0], "code"), "forbidden");
    sc_reply_destroy (&reply);
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 3, false);
}

//  Sends spec alone (to general, or from alice to bob) and asserts
//  bad_request with a sentence naming field
static void
s_assert_bad_spec (fixture_t *fixture, s_spec_t spec, const char *field, bool pm)
{
    sc_reply_t *reply = pm ? s_pm_specs (fixture, "alice", "bob", &spec, 1)
                           : s_append_specs (fixture, "general", &spec, 1);
    s_assert_error (reply, "bad_request");
    if (!strstr (reply->message, field))
        fail_msg ("'%s' does not name '%s'", reply->message, field);
    sc_reply_destroy (&reply);
}

static void
test_timeline_change_fields_out_of_range_are_bad_request (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_timeline_room (fixture);
    s_append_ok (fixture, "general", 3, "alice", "hello");
    char long_emoji [34];
    memset (long_emoji, 'e', 33);
    long_emoji [33] = 0;
    for (int pm = 0; pm <= 1; pm++) {
        s_assert_bad_spec (fixture, (s_spec_t) { .seq = 4, .kind = "poke", .user = "alice",
                                                 .on = -1 }, "kind", pm);
        s_assert_bad_spec (fixture, (s_spec_t) { .seq = 4, .kind = "edit", .user = "alice",
                                                 .text = "x", .on = -1 }, "target", pm);
        s_assert_bad_spec (fixture, (s_spec_t) { .seq = 4, .kind = "delete", .user = "alice",
                                                 .on = -1 }, "target", pm);
        s_assert_bad_spec (fixture, (s_spec_t) { .seq = 4, .kind = "edit", .user = "alice",
                                                 .target = 3, .text = "", .on = -1 }, "text", pm);
        s_assert_bad_spec (fixture, (s_spec_t) { .seq = 4, .kind = "reaction", .user = "alice",
                                                 .target = 3, .emoji = long_emoji, .on = 1 },
                           "emoji", pm);
        s_assert_bad_spec (fixture, (s_spec_t) { .seq = 4, .kind = "reaction", .user = "alice",
                                                 .target = 3, .emoji = "", .on = 1 }, "emoji", pm);
        s_assert_bad_spec (fixture, (s_spec_t) { .seq = 4, .kind = "reaction", .user = "alice",
                                                 .target = 3, .emoji = "x", .on = -1 }, "on", pm);
    }
    //  A conversation has no system entries; a room's events are four
    s_assert_bad_spec (fixture, (s_spec_t) { .seq = 4, .kind = "system", .user = "alice",
                                             .event = "join", .on = -1 }, "kind", true);
    s_assert_bad_spec (fixture, (s_spec_t) { .seq = 4, .kind = "system", .user = "alice",
                                             .event = "dance", .on = -1 }, "event", false);
    //  A join or leave notice is a message or a system entry
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "room", "general");
    pl_pack_kstr (&body, "user", "carol");
    pl_pack_str (&body, "entry");
    s_pack_spec (&body.packer, &(s_spec_t) { .seq = 4, .kind = "delete", .user = "carol",
                                             .target = 3, .on = -1 }, false);
    sc_reply_t *reply = s_call (fixture, "store.member.remove", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    s_assert_history (fixture, "general", S_NO_CURSOR, S_NO_CURSOR, 0, 1, 3, false);
}

//  After test_timeline_changes_in_a_conversation's changes
static void
s_assert_conversations_after_changes (fixture_t *fixture)
{
    //  The conversation's last is the newest message as it is now (bob's
    //  reply), last_seq the newest entry; alice's unread: bob's reply
    sc_reply_t *reply = s_pm_conversations (fixture, "alice", 0);
    s_assert_ok (reply);
    const msgpack_object *conversations = s_array_field (reply, "conversations");
    assert_int_equal (conversations->via.array.size, 1);
    const msgpack_object *conversation = &conversations->via.array.ptr [0];
    const msgpack_object *last = sc_map_field (conversation, "last");
    s_assert_int (sc_map_field (last, "seq"), 5);
    s_assert_int (sc_map_field (last, "reply_to"), 1);
    s_assert_str (sc_map_field (last, "kind"), "message");
    s_assert_int (sc_map_field (conversation, "last_seq"), 6);
    s_assert_int (sc_map_field (conversation, "unread"), 1);
    sc_reply_destroy (&reply);
    //  bob's unread: alice's two messages, one of them deleted
    reply = s_pm_conversations (fixture, "bob", 0);
    s_assert_ok (reply);
    conversation = &s_array_field (reply, "conversations")->via.array.ptr [0];
    s_assert_int (sc_map_field (conversation, "unread"), 1);
    sc_reply_destroy (&reply);
}

static void
test_timeline_changes_in_a_conversation (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "Alice");
    s_user_create_ok (fixture, "bob");
    s_pm_one_ok (fixture, "alice", "bob", (s_spec_t) { .seq = 1, .user = "alice",
                                                       .text = "one", .on = -1 });
    s_pm_one_ok (fixture, "alice", "bob", (s_spec_t) { .seq = 2, .user = "alice",
                                                       .text = "two", .on = -1 });
    //  Only the author edits and deletes
    s_assert_refused_one (s_pm_specs (fixture, "alice", "bob", &(s_spec_t) {
        .seq = 3, .kind = "edit", .user = "bob", .target = 1, .text = "x", .on = -1 }, 1),
        0, "forbidden");
    s_assert_refused_one (s_pm_specs (fixture, "bob", "alice", &(s_spec_t) {
        .seq = 3, .kind = "delete", .user = "bob", .target = 1, .on = -1 }, 1),
        0, "forbidden");
    s_spec_t run [] = {
        { .seq = 3, .kind = "edit", .user = "ALICE", .target = 1, .text = "uno", .on = -1 },
        { .seq = 4, .kind = "reaction", .user = "bob", .target = 1, .emoji = "hi", .on = 1 },
        { .seq = 5, .user = "bob", .text = "answer", .reply_to = 1, .on = -1 },
        { .seq = 6, .kind = "delete", .user = "alice", .target = 2, .on = -1 },
        { .seq = 7, .kind = "reaction", .user = "bob", .target = 2, .emoji = "hi", .on = 1 },
    };
    sc_reply_t *reply = s_pm_specs (fixture, "alice", "bob", run, 5);
    s_assert_ok (reply);
    assert_null (sc_reply_field (reply, "from"));
    sc_reply_destroy (&reply);
    s_assert_refused_one (s_pm_specs (fixture, "alice", "bob", run, 5), 4, "no_such_message");
    s_assert_stored (s_pm_specs (fixture, "alice", "bob", run, 4), 6);
    reply = s_pm_history (fixture, "bob", "alice", S_NO_CURSOR, S_NO_CURSOR, 0);
    s_assert_ok (reply);
    const msgpack_object *one = s_entry_of (reply, 1);
    s_assert_str (sc_map_field (one, "kind"), "message");
    s_assert_str (sc_map_field (one, "text"), "uno");
    s_assert_int (sc_map_field (one, "edited"), S_TL_TS (3));
    const char *emoji [] = { "hi" };
    const int64_t counts [] = { 1 };
    const char *users [] = { "bob" };
    s_assert_reactions (one, 1, emoji, counts, users);
    s_assert_str (sc_map_field (s_entry_of (reply, 2), "text"), "");
    assert_true (s_bool (sc_map_field (s_entry_of (reply, 2), "deleted")));
    const msgpack_object *edit = s_entry_of (reply, 3);
    s_assert_str (sc_map_field (edit, "kind"), "edit");
    s_assert_int (sc_map_field (edit, "target"), 1);
    s_assert_str (sc_map_field (edit, "from"), "Alice");
    s_assert_str (sc_map_field (edit, "to"), "bob");
    const msgpack_object *reaction = s_entry_of (reply, 4);
    s_assert_str (sc_map_field (reaction, "emoji"), "hi");
    assert_true (s_bool (sc_map_field (reaction, "on")));
    s_assert_str (sc_map_field (reaction, "from"), "bob");
    s_assert_int (sc_map_field (s_entry_of (reply, 5), "reply_to"), 1);
    s_assert_str (sc_map_field (s_entry_of (reply, 6), "kind"), "delete");
    sc_reply_destroy (&reply);
    s_assert_conversations_after_changes (fixture);
}



//  --------------------------------------------------------------------------
//  Files (schema version 13)

//  A store before schema version 13 has no files: its cases are skipped
//  there (a store gains them with its schema 13), not failed
static void
s_require_files (fixture_t *fixture)
{
    sc_reply_t *reply = s_call (fixture, "store.info", NULL);
    s_assert_ok (reply);
    const msgpack_object *version = sc_reply_field (reply, "schema_version");
    bool has_files = version && version->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                  && version->via.u64 >= 13;
    sc_reply_destroy (&reply);
    if (!has_files)
        skip ();
}

static sc_reply_t *
s_file_create (fixture_t *fixture, const char *id, const char *user, int64_t size, int64_t ts,
               int64_t quota)
{
    pl_pack_t body;
    sc_body_init (&body, 7);
    pl_pack_kstr (&body, "id", id);
    pl_pack_kstr (&body, "user", user);
    pl_pack_kstr (&body, "name", "notes.txt");
    pl_pack_kstr (&body, "type", "text/plain");
    pl_pack_kint (&body, "size", size);
    pl_pack_kint (&body, "ts", ts);
    pl_pack_kint (&body, "quota", quota);
    return s_call (fixture, "store.file.create", &body);
}

static sc_reply_t *
s_file_write (fixture_t *fixture, const char *id, int64_t offset, const char *data)
{
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "id", id);
    pl_pack_kint (&body, "offset", offset);
    pl_pack_str (&body, "data");
    msgpack_pack_bin_with_body (&body.packer, data, strlen (data));
    return s_call (fixture, "store.file.write", &body);
}

static sc_reply_t *
s_file_read (fixture_t *fixture, const char *id, int64_t offset, int64_t length)
{
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "id", id);
    pl_pack_kint (&body, "offset", offset);
    pl_pack_kint (&body, "length", length);
    return s_call (fixture, "store.file.read", &body);
}

//  Asserts a store.file.read answer: the file's fields and data
static void
s_assert_read (fixture_t *fixture, const char *id, int64_t offset, int64_t length,
               const char *data)
{
    sc_reply_t *reply = s_file_read (fixture, id, offset, length);
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "name"), "notes.txt");
    s_assert_str (sc_reply_field (reply, "type"), "text/plain");
    s_assert_int (sc_reply_field (reply, "size"), 10);
    const msgpack_object *bytes = sc_reply_field (reply, "data");
    assert_non_null (bytes);
    assert_int_equal (bytes->type, MSGPACK_OBJECT_BIN);
    assert_int_equal (bytes->via.bin.size, strlen (data));
    assert_memory_equal (bytes->via.bin.ptr, data, strlen (data));
    sc_reply_destroy (&reply);
}

//  Asserts a file map {id, name, size, type} of s_file_create's file
static void
s_assert_file_map (const msgpack_object *file, const char *id)
{
    assert_non_null (file);
    assert_int_equal (file->type, MSGPACK_OBJECT_MAP);
    s_assert_str (sc_map_field (file, "id"), id);
    s_assert_str (sc_map_field (file, "name"), "notes.txt");
    s_assert_int (sc_map_field (file, "size"), 10);
    s_assert_str (sc_map_field (file, "type"), "text/plain");
}

//  A request on one file id ({id}: commit, get) answering code (NULL: ok)
static sc_reply_t *
s_file_id (fixture_t *fixture, const char *type, const char *id)
{
    return s_by_name (fixture, type, "id", id);
}

static void
s_assert_file_code (sc_reply_t *reply, const char *code)
{
    if (code)
        s_assert_error (reply, code);
    else
        s_assert_ok (reply);
    sc_reply_destroy (&reply);
}

//  A complete file of 10 bytes, "0123456789", of user, created at ts
static void
s_file_upload (fixture_t *fixture, const char *id, const char *user, int64_t ts)
{
    s_assert_file_code (s_file_create (fixture, id, user, 10, ts, 0), NULL);
    s_assert_file_code (s_file_write (fixture, id, 0, "0123456789"), NULL);
    s_assert_file_code (s_file_id (fixture, "store.file.commit", id), NULL);
}

//  Whether store.file.get finds the file
static bool
s_file_exists (fixture_t *fixture, const char *id)
{
    sc_reply_t *reply = s_file_id (fixture, "store.file.get", id);
    bool found = reply->code == NULL;
    if (!found)
        assert_string_equal (reply->code, "not_found");
    sc_reply_destroy (&reply);
    return found;
}

static void
test_file_written_in_pieces_committed_then_read (void **state)
{
    s_require_files ((fixture_t *) *state);
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "Alice");
    sc_reply_t *reply = s_file_create (fixture, "f-1_A", "alice", 10, 1000, 0);
    s_assert_ok (reply);
    s_assert_file_map (sc_reply_field (reply, "file"), "f-1_A");
    sc_reply_destroy (&reply);
    //  Incomplete: found, not readable
    reply = s_file_id (fixture, "store.file.get", "f-1_A");
    s_assert_ok (reply);
    s_assert_str (sc_reply_field (reply, "user"), "Alice");
    s_assert_int (sc_reply_field (reply, "ts"), 1000);
    assert_false (s_bool (sc_reply_field (reply, "complete")));
    sc_reply_destroy (&reply);
    s_assert_file_code (s_file_read (fixture, "f-1_A", 0, 10), "not_found");
    reply = s_file_write (fixture, "f-1_A", 0, "01234");
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "written"), 5);
    sc_reply_destroy (&reply);
    //  Not at the bytes written; past the size; committed too early
    s_assert_file_code (s_file_write (fixture, "f-1_A", 3, "34"), "conflict");
    s_assert_file_code (s_file_write (fixture, "f-1_A", 5, "567890"), "bad_request");
    s_assert_file_code (s_file_id (fixture, "store.file.commit", "f-1_A"), "bad_request");
    s_assert_file_code (s_file_write (fixture, "f-1_A", 5, ""), NULL);
    s_assert_file_code (s_file_write (fixture, "f-1_A", 5, "56789"), NULL);
    reply = s_file_id (fixture, "store.file.commit", "f-1_A");
    s_assert_ok (reply);
    s_assert_file_map (sc_reply_field (reply, "file"), "f-1_A");
    sc_reply_destroy (&reply);
    reply = s_file_id (fixture, "store.file.get", "f-1_A");
    assert_true (s_bool (sc_reply_field (reply, "complete")));
    s_assert_int (sc_reply_field (reply, "size"), 10);
    sc_reply_destroy (&reply);
    s_assert_read (fixture, "f-1_A", 0, 10, "0123456789");
    s_assert_read (fixture, "f-1_A", 3, 4, "3456");
    s_assert_read (fixture, "f-1_A", 8, 100, "89");
    s_assert_read (fixture, "f-1_A", 10, 5, "");
    s_assert_file_code (s_file_read (fixture, "f-1_A", 11, 5), "bad_request");
    //  Complete: no more writes nor commits; ids are unique and case matters
    s_assert_file_code (s_file_write (fixture, "f-1_A", 10, ""), "not_found");
    s_assert_file_code (s_file_id (fixture, "store.file.commit", "f-1_A"), "not_found");
    s_assert_file_code (s_file_create (fixture, "f-1_A", "alice", 3, 1000, 0), "conflict");
    assert_false (s_file_exists (fixture, "f-1_a"));
    s_assert_file_code (s_file_create (fixture, "f2", "nobody", 3, 1000, 0), "not_found");
    s_assert_file_code (s_file_write (fixture, "f2", 0, "abc"), "not_found");
    s_assert_file_code (s_file_read (fixture, "f2", 0, 3), "not_found");
}

static void
test_file_create_within_the_users_quota (void **state)
{
    s_require_files ((fixture_t *) *state);
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_assert_file_code (s_file_create (fixture, "a", "alice", 10, 1000, 15), NULL);
    //  Incomplete files count; another user's do not
    s_assert_file_code (s_file_create (fixture, "b", "ALICE", 6, 1000, 15), "quota_exceeded");
    assert_false (s_file_exists (fixture, "b"));
    s_assert_file_code (s_file_create (fixture, "b", "bob", 15, 1000, 15), NULL);
    s_assert_file_code (s_file_create (fixture, "c", "alice", 5, 1000, 15), NULL);
    s_assert_file_code (s_file_create (fixture, "d", "alice", 1, 1000, 15), "quota_exceeded");
    s_assert_file_code (s_file_create (fixture, "d", "alice", 1, 1000, 0), NULL);
}

static void
test_file_bad_fields_get_bad_request (void **state)
{
    s_require_files ((fixture_t *) *state);
    fixture_t *fixture = (fixture_t *) *state;
    s_timeline_room (fixture);
    s_assert_file_code (s_file_create (fixture, "a/b", "alice", 10, 1000, 0), "bad_request");
    s_assert_file_code (s_file_create (fixture, "", "alice", 10, 1000, 0), "bad_request");
    s_assert_file_code (s_file_read (fixture, "a", 0, 0), "bad_request");
    s_assert_file_code (s_file_read (fixture, "a", 0, 983041), "bad_request");
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "id", "a");
    pl_pack_kint (&body, "offset", 0);
    pl_pack_kstr (&body, "data", "not a bin");
    s_assert_file_code (s_call (fixture, "store.file.write", &body), "bad_request");
    sc_body_init (&body, 0);
    s_assert_file_code (s_call (fixture, "store.file.sweep", &body), "bad_request");
    //  A message's file map without its name
    s_file_upload (fixture, "f", "alice", 1000);
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "room", "general");
    pl_pack_str (&body, "entry");
    msgpack_pack_map (&body.packer, 6);
    sc_pack_kint (&body.packer, "seq", 3);
    sc_pack_kstr (&body.packer, "kind", "message");
    sc_pack_kstr (&body.packer, "user", "alice");
    sc_pack_kint (&body.packer, "ts", 1000);
    sc_pack_kstr (&body.packer, "text", "");
    sc_pack_key (&body.packer, "file");
    msgpack_pack_map (&body.packer, 3);
    sc_pack_kstr (&body.packer, "id", "f");
    sc_pack_kint (&body.packer, "size", 10);
    sc_pack_kstr (&body.packer, "type", "text/plain");
    s_assert_file_code (s_call (fixture, "store.msg.append", &body), "bad_request");
    sc_reply_t *reply = s_whole_history (fixture, "general");
    assert_int_equal (s_array_field (reply, "messages")->via.array.size, 2);
    sc_reply_destroy (&reply);
}

static void
test_file_references_are_checked_in_run_order (void **state)
{
    s_require_files ((fixture_t *) *state);
    fixture_t *fixture = (fixture_t *) *state;
    s_timeline_room (fixture);
    s_file_upload (fixture, "mine", "alice", 1000);
    s_file_upload (fixture, "bobs", "Bob", 1000);
    s_assert_file_code (s_file_create (fixture, "half", "alice", 10, 1000, 0), NULL);
    //  Another's file, an incomplete one, an unknown one: nothing stored
    s_spec_t run [] = {
        { .seq = 3, .user = "alice", .text = "", .on = -1, .file = "mine" },
        { .seq = 4, .user = "alice", .text = "x", .on = -1, .file = "bobs" },
        { .seq = 5, .user = "alice", .text = "x", .on = -1, .file = "half" },
        { .seq = 6, .user = "alice", .text = "x", .on = -1, .file = "none" },
    };
    const uint32_t indexes [] = { 1, 2, 3 };
    const char *codes [] = { "no_such_file", "no_such_file", "no_such_file" };
    s_assert_refused (s_append_specs (fixture, "general", run, 4), 3, indexes, codes);
    //  The sender's own complete file, in any case of the name
    run [0].user = "ALICE";
    s_append_one_ok (fixture, "general", run [0]);
    s_append_one_ok (fixture, "general", (s_spec_t) { .seq = 4, .user = "Bob", .text = "y",
                                                      .on = -1, .file = "bobs" });
    sc_reply_t *reply = s_whole_history (fixture, "general");
    s_assert_file_map (sc_map_field (s_entry_of (reply, 3), "file"), "mine");
    s_assert_str (sc_map_field (s_entry_of (reply, 3), "text"), "");
    s_assert_file_map (sc_map_field (s_entry_of (reply, 4), "file"), "bobs");
    assert_null (sc_map_field (s_entry_of (reply, 1), "file"));
    sc_reply_destroy (&reply);
    //  In a conversation the same
    s_assert_refused_one (s_pm_specs (fixture, "alice", "bob", (s_spec_t []) {
        { .seq = 1, .user = "alice", .text = "x", .on = -1, .file = "bobs" } }, 1),
        0, "no_such_file");
    s_pm_one_ok (fixture, "alice", "bob", (s_spec_t) { .seq = 1, .user = "alice", .text = "",
                                                       .on = -1, .file = "mine" });
    reply = s_pm_history (fixture, "bob", "alice", S_NO_CURSOR, S_NO_CURSOR, 10);
    s_assert_ok (reply);
    s_assert_file_map (sc_map_field (s_entry_of (reply, 1), "file"), "mine");
    sc_reply_destroy (&reply);
    reply = s_pm_conversations (fixture, "bob", 10);
    s_assert_ok (reply);
    const msgpack_object *conversations = s_array_field (reply, "conversations");
    s_assert_file_map (sc_map_field (sc_map_field (&conversations->via.array.ptr [0], "last"),
                                     "file"), "mine");
    sc_reply_destroy (&reply);
}

static void
test_file_goes_with_the_deletion_of_its_last_message (void **state)
{
    s_require_files ((fixture_t *) *state);
    fixture_t *fixture = (fixture_t *) *state;
    s_timeline_room (fixture);
    s_file_upload (fixture, "shared", "alice", 1000);
    s_file_upload (fixture, "alone", "alice", 1000);
    s_spec_t run [] = {
        { .seq = 3, .user = "alice", .text = "one", .on = -1, .file = "shared" },
        { .seq = 4, .user = "alice", .text = "two", .on = -1, .file = "alone" },
        { .seq = 5, .kind = "edit", .user = "alice", .target = 3, .text = "one, edited",
          .on = -1 },
    };
    s_assert_stored (s_append_specs (fixture, "general", run, 3), 5);
    s_pm_one_ok (fixture, "alice", "carol", (s_spec_t) { .seq = 1, .user = "alice",
                                                         .text = "", .on = -1,
                                                         .file = "shared" });
    //  An edit keeps the file
    sc_reply_t *reply = s_whole_history (fixture, "general");
    s_assert_file_map (sc_map_field (s_entry_of (reply, 3), "file"), "shared");
    sc_reply_destroy (&reply);
    //  The owner deletes both room messages: 'alone' goes, 'shared' stays
    //  for the conversation's message
    s_spec_t deletions [] = {
        { .seq = 6, .kind = "delete", .user = "alice", .target = 3, .on = -1 },
        { .seq = 7, .kind = "delete", .user = "alice", .target = 4, .on = -1 },
    };
    s_assert_stored (s_append_specs (fixture, "general", deletions, 2), 7);
    reply = s_whole_history (fixture, "general");
    assert_null (sc_map_field (s_entry_of (reply, 3), "file"));
    assert_null (sc_map_field (s_entry_of (reply, 4), "file"));
    sc_reply_destroy (&reply);
    assert_false (s_file_exists (fixture, "alone"));
    s_assert_file_code (s_file_read (fixture, "alone", 0, 10), "not_found");
    assert_true (s_file_exists (fixture, "shared"));
    s_assert_read (fixture, "shared", 0, 10, "0123456789");
    //  A deleted file cannot be referred to again
    s_assert_refused_one (s_append_specs (fixture, "general", (s_spec_t []) {
        { .seq = 8, .user = "alice", .text = "x", .on = -1, .file = "alone" } }, 1),
        0, "no_such_file");
    s_pm_one_ok (fixture, "alice", "carol", (s_spec_t) { .seq = 2, .kind = "delete",
                                                         .user = "alice", .target = 1,
                                                         .on = -1 });
    assert_false (s_file_exists (fixture, "shared"));
}

static void
test_file_goes_with_its_room_unless_referred_elsewhere (void **state)
{
    s_require_files ((fixture_t *) *state);
    fixture_t *fixture = (fixture_t *) *state;
    s_timeline_room (fixture);
    s_room_create_ok (fixture, "other", false, 50, "alice");
    s_file_upload (fixture, "here", "alice", 1000);
    s_file_upload (fixture, "both", "alice", 1000);
    s_file_upload (fixture, "unsent", "alice", 1000);
    s_spec_t run [] = {
        { .seq = 3, .user = "alice", .text = "", .on = -1, .file = "here" },
        { .seq = 4, .user = "alice", .text = "", .on = -1, .file = "here" },
        { .seq = 5, .user = "alice", .text = "", .on = -1, .file = "both" },
    };
    s_assert_stored (s_append_specs (fixture, "general", run, 3), 5);
    s_append_one_ok (fixture, "other", (s_spec_t) { .seq = 1, .user = "alice", .text = "",
                                                    .on = -1, .file = "both" });
    sc_reply_t *reply = s_by_name (fixture, "store.room.delete", "name", "GENERAL");
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    assert_false (s_file_exists (fixture, "here"));
    assert_true (s_file_exists (fixture, "both"));
    assert_true (s_file_exists (fixture, "unsent"));
    reply = s_by_name (fixture, "store.room.delete", "name", "other");
    sc_reply_destroy (&reply);
    assert_false (s_file_exists (fixture, "both"));
}

static void
test_file_sweep_deletes_old_files_no_message_refers_to (void **state)
{
    s_require_files ((fixture_t *) *state);
    fixture_t *fixture = (fixture_t *) *state;
    s_timeline_room (fixture);
    s_file_upload (fixture, "old", "alice", 1000);
    s_assert_file_code (s_file_create (fixture, "old-half", "alice", 10, 1000, 0), NULL);
    s_assert_file_code (s_file_write (fixture, "old-half", 0, "01"), NULL);
    s_file_upload (fixture, "old-sent", "alice", 1000);
    s_file_upload (fixture, "new", "alice", 5000);
    s_append_one_ok (fixture, "general", (s_spec_t) { .seq = 3, .user = "alice", .text = "",
                                                      .on = -1, .file = "old-sent" });
    pl_pack_t body;
    sc_body_init (&body, 1);
    pl_pack_kint (&body, "before", 2000);
    sc_reply_t *reply = s_call (fixture, "store.file.sweep", &body);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "deleted"), 2);
    sc_reply_destroy (&reply);
    assert_false (s_file_exists (fixture, "old"));
    assert_false (s_file_exists (fixture, "old-half"));
    assert_true (s_file_exists (fixture, "old-sent"));
    assert_true (s_file_exists (fixture, "new"));
    s_assert_read (fixture, "old-sent", 0, 10, "0123456789");
    sc_body_init (&body, 1);
    pl_pack_kint (&body, "before", 2000);
    reply = s_call (fixture, "store.file.sweep", &body);
    s_assert_int (sc_reply_field (reply, "deleted"), 0);
    sc_reply_destroy (&reply);
}

static void
test_files_and_references_survive_plugin_restart (void **state)
{
    REAL_DB ();
    s_require_files ((fixture_t *) *state);
    fixture_t *fixture = (fixture_t *) *state;
    s_timeline_room (fixture);
    s_file_upload (fixture, "kept", "alice", 1000);
    s_append_one_ok (fixture, "general", (s_spec_t) { .seq = 3, .user = "alice", .text = "",
                                                      .on = -1, .file = "kept" });
    sc_broker_stop (fixture->broker);
    s_fixture_start (fixture);
    s_assert_read (fixture, "kept", 2, 3, "234");
    sc_reply_t *reply = s_whole_history (fixture, "general");
    s_assert_file_map (sc_map_field (s_entry_of (reply, 3), "file"), "kept");
    sc_reply_destroy (&reply);
}


//  --------------------------------------------------------------------------
//  Room administration (schema version 10): store.room.update, bans

//  Packs a system entry with its event and, when by is given, its author
static void
s_pack_admin_entry (msgpack_packer *packer, int64_t seq, const char *user, const char *event,
                    const char *by)
{
    msgpack_pack_map (packer, by ? 6 : 5);
    sc_pack_kint (packer, "seq", seq);
    sc_pack_kstr (packer, "kind", "system");
    sc_pack_kstr (packer, "user", user);
    sc_pack_kint (packer, "ts", 1700000000000 + seq);
    sc_pack_kstr (packer, "event", event);
    if (by)
        sc_pack_kstr (packer, "by", by);
}

//  store.room.update of room: description (NULL: not given), private (-1:
//  not given), max_participants (0: not given), the notice at seq (0: none)
static sc_reply_t *
s_room_update (fixture_t *fixture, const char *room, const char *description, int is_private,
               int64_t max_participants, int64_t seq)
{
    pl_pack_t body;
    sc_body_init (&body, 1 + (description != NULL) + (is_private >= 0)
                         + (max_participants > 0) + (seq > 0));
    pl_pack_kstr (&body, "name", room);
    if (description)
        pl_pack_kstr (&body, "description", description);
    if (is_private >= 0)
        pl_pack_kbool (&body, "private", is_private == 1);
    if (max_participants > 0)
        pl_pack_kint (&body, "max_participants", max_participants);
    if (seq > 0) {
        pl_pack_str (&body, "entry");
        s_pack_admin_entry (&body.packer, seq, "alice", "update", NULL);
    }
    return s_call (fixture, "store.room.update", &body);
}

//  store.member.remove with ban: the kick's notice at seq (0: none)
static sc_reply_t *
s_member_ban (fixture_t *fixture, const char *room, const char *user, int64_t seq)
{
    pl_pack_t body;
    sc_body_init (&body, seq ? 4 : 3);
    pl_pack_kstr (&body, "room", room);
    pl_pack_kstr (&body, "user", user);
    pl_pack_kbool (&body, "ban", true);
    if (seq) {
        pl_pack_str (&body, "entry");
        s_pack_admin_entry (&body.packer, seq, user, "kick", "alice");
    }
    return s_call (fixture, "store.member.remove", &body);
}

static sc_reply_t *
s_room_unban (fixture_t *fixture, const char *room, const char *user)
{
    pl_pack_t body;
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "room", room);
    pl_pack_kstr (&body, "user", user);
    return s_call (fixture, "store.room.unban", &body);
}

//  The newest entry of the room's timeline (the reply stays the caller's)
static const msgpack_object *
s_newest_entry (fixture_t *fixture, const char *room, sc_reply_t **reply_p)
{
    *reply_p = s_history (fixture, room, S_NO_CURSOR, S_NO_CURSOR, 1);
    s_assert_ok (*reply_p);
    const msgpack_object *messages = s_array_field (*reply_p, "messages");
    assert_int_equal (messages->via.array.size, 1);
    return &messages->via.array.ptr [0];
}

static void
test_room_update_changes_the_settings_given_and_appends_its_notice (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_room_create_ok (fixture, "General", false, 10, "alice");
    sc_reply_t *reply = s_room_update (fixture, "general", "Our room", -1, 0, 1);
    s_assert_ok (reply);
    s_assert_room (sc_reply_field (reply, "room"), "General", "Our room", false, 10, "alice",
                   5000, 1, 1);
    sc_reply_destroy (&reply);
    const msgpack_object *entry = s_newest_entry (fixture, "general", &reply);
    s_assert_int (sc_map_field (entry, "seq"), 1);
    s_assert_str (sc_map_field (entry, "kind"), "system");
    s_assert_str (sc_map_field (entry, "event"), "update");
    s_assert_str (sc_map_field (entry, "user"), "alice");
    assert_null (sc_map_field (entry, "by"));
    sc_reply_destroy (&reply);
    //  The others, without a notice; the description stays
    reply = s_room_update (fixture, "GENERAL", NULL, 1, 3, 0);
    s_assert_ok (reply);
    s_assert_room (sc_reply_field (reply, "room"), "General", "Our room", true, 3, "alice",
                   5000, 1, 1);
    sc_reply_destroy (&reply);
    reply = s_room_update (fixture, "general", "", 0, 0, 0);
    s_assert_ok (reply);
    s_assert_room (sc_reply_field (reply, "room"), "General", "", false, 3, "alice", 5000, 1, 1);
    sc_reply_destroy (&reply);
    //  A taken seq changes nothing
    reply = s_room_update (fixture, "general", "taken", 1, 5, 1);
    s_assert_error (reply, "conflict");
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.room.get", "name", "general");
    s_assert_room (sc_reply_field (reply, "room"), "General", "", false, 3, "alice", 5000, 1, 1);
    sc_reply_destroy (&reply);
    reply = s_room_update (fixture, "nowhere", "x", -1, 0, 0);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
}

static void
test_room_update_refuses_bad_fields_and_changes_nothing (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_room_create_ok (fixture, "general", false, 10, "alice");
    //  Nothing to change
    sc_reply_t *reply = s_room_update (fixture, "general", NULL, -1, 0, 1);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    pl_pack_t body;
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "name", "general");
    pl_pack_kint (&body, "max_participants", 0);
    reply = s_call (fixture, "store.room.update", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    sc_body_init (&body, 2);
    pl_pack_kstr (&body, "name", "general");
    pl_pack_kstr (&body, "private", "yes");
    reply = s_call (fixture, "store.room.update", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    char description [2002];
    memset (description, 'd', sizeof description - 1);
    description [sizeof description - 1] = 0;
    reply = s_room_update (fixture, "general", description, -1, 0, 0);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    //  A notice of another event, or whose 'by' is not a name
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "name", "general");
    pl_pack_kstr (&body, "description", "x");
    pl_pack_str (&body, "entry");
    s_pack_admin_entry (&body.packer, 1, "alice", "renamed", NULL);
    reply = s_call (fixture, "store.room.update", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "name", "general");
    pl_pack_kstr (&body, "description", "x");
    pl_pack_str (&body, "entry");
    s_pack_admin_entry (&body.packer, 1, "alice", "update", "");
    reply = s_call (fixture, "store.room.update", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.room.get", "name", "general");
    s_assert_room (sc_reply_field (reply, "room"), "general", "", false, 10, "alice", 5000, 1, 0);
    sc_reply_destroy (&reply);
}

static void
test_room_made_smaller_than_its_members_keeps_them_and_takes_no_new_ones (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    const char *users [] = { "alice", "bob", "carol", "dave" };
    for (size_t index = 0; index < 4; index++)
        s_user_create_ok (fixture, users [index]);
    s_room_create_ok (fixture, "general", false, 10, "alice");
    s_member_add_ok (fixture, "general", "bob", 0);
    s_member_add_ok (fixture, "general", "carol", 0);
    sc_reply_t *reply = s_room_update (fixture, "general", NULL, -1, 2, 0);
    s_assert_ok (reply);
    s_assert_room (sc_reply_field (reply, "room"), "general", "", false, 2, "alice", 5000, 3, 0);
    sc_reply_destroy (&reply);
    reply = s_member_add (fixture, "general", "dave", 1);
    s_assert_error (reply, "full");
    sc_reply_destroy (&reply);
    const char *three [] = { "alice", "bob", "carol" };
    s_assert_members (fixture, "general", 3, three);
}

static void
test_member_remove_with_ban_removes_and_bans_with_its_notice (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "Bob");
    s_room_create_ok (fixture, "general", false, 10, "alice");
    s_member_add_ok (fixture, "general", "bob", 1);
    sc_reply_t *reply = s_member_ban (fixture, "GENERAL", "BOB", 2);
    s_assert_ok (reply);
    s_assert_int (sc_reply_field (reply, "members"), 1);
    assert_true (s_bool (sc_reply_field (reply, "removed")));
    sc_reply_destroy (&reply);
    const msgpack_object *entry = s_newest_entry (fixture, "general", &reply);
    s_assert_int (sc_map_field (entry, "seq"), 2);
    s_assert_str (sc_map_field (entry, "event"), "kick");
    s_assert_str (sc_map_field (entry, "user"), "BOB");
    s_assert_str (sc_map_field (entry, "by"), "alice");
    sc_reply_destroy (&reply);
    //  Neither a join nor an invitation lets a banned user in
    reply = s_member_add (fixture, "general", "bob", 3);
    s_assert_error (reply, "banned");
    sc_reply_destroy (&reply);
    reply = s_invite (fixture, "general", "bob", "alice");
    s_assert_error (reply, "banned");
    sc_reply_destroy (&reply);
    s_assert_room_counts (fixture, "general", 1, 2);
    //  Banned again: nothing to remove, no notice appended
    reply = s_member_ban (fixture, "general", "bob", 3);
    s_assert_ok (reply);
    assert_false (s_bool (sc_reply_field (reply, "removed")));
    sc_reply_destroy (&reply);
    s_assert_room_counts (fixture, "general", 1, 2);
    //  A kick without a ban is a leave with another notice
    s_user_create_ok (fixture, "carol");
    s_member_add_ok (fixture, "general", "carol", 3);
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "room", "general");
    pl_pack_kstr (&body, "user", "carol");
    pl_pack_str (&body, "entry");
    s_pack_admin_entry (&body.packer, 4, "carol", "kick", "alice");
    reply = s_call (fixture, "store.member.remove", &body);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    s_member_add_ok (fixture, "general", "carol", 5);
    s_assert_room_counts (fixture, "general", 2, 5);
}

static void
test_member_remove_with_ban_of_a_non_member_records_it_without_a_notice (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_room_create_ok (fixture, "hideout", true, 10, "alice");
    sc_reply_t *reply = s_invite (fixture, "hideout", "bob", "alice");
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_member_ban (fixture, "hideout", "bob", 1);
    s_assert_ok (reply);
    assert_false (s_bool (sc_reply_field (reply, "removed")));
    s_assert_int (sc_reply_field (reply, "members"), 1);
    sc_reply_destroy (&reply);
    s_assert_room_counts (fixture, "hideout", 1, 0);
    reply = s_member_add (fixture, "hideout", "bob", 1);
    s_assert_error (reply, "banned");
    sc_reply_destroy (&reply);
    //  The ban took the invitation: unbanned, bob needs a new one
    reply = s_room_unban (fixture, "hideout", "BOB");
    s_assert_ok (reply);
    assert_true (s_bool (sc_reply_field (reply, "unbanned")));
    sc_reply_destroy (&reply);
    reply = s_member_add (fixture, "hideout", "bob", 1);
    s_assert_error (reply, "forbidden");
    sc_reply_destroy (&reply);
    reply = s_member_ban (fixture, "hideout", "ghost", 0);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_member_ban (fixture, "nowhere", "bob", 0);
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    pl_pack_t body;
    sc_body_init (&body, 3);
    pl_pack_kstr (&body, "room", "hideout");
    pl_pack_kstr (&body, "user", "bob");
    pl_pack_kstr (&body, "ban", "yes");
    reply = s_call (fixture, "store.member.remove", &body);
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
}

static void
test_room_unban_lifts_a_ban_and_bans_go_with_the_room (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "bob");
    s_room_create_ok (fixture, "general", false, 10, "alice");
    sc_reply_t *reply = s_member_ban (fixture, "general", "bob", 0);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_room_unban (fixture, "GENERAL", "bob");
    s_assert_ok (reply);
    assert_true (s_bool (sc_reply_field (reply, "unbanned")));
    sc_reply_destroy (&reply);
    reply = s_room_unban (fixture, "general", "bob");
    s_assert_ok (reply);
    assert_false (s_bool (sc_reply_field (reply, "unbanned")));
    sc_reply_destroy (&reply);
    s_member_add_ok (fixture, "general", "bob", 1);
    reply = s_room_unban (fixture, "general", "ghost");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_room_unban (fixture, "nowhere", "bob");
    s_assert_error (reply, "not_found");
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.room.unban", "room", "general");
    s_assert_error (reply, "bad_request");
    sc_reply_destroy (&reply);
    //  Banned, then the room deleted and made again: the ban is gone
    reply = s_member_ban (fixture, "general", "bob", 2);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_by_name (fixture, "store.room.delete", "name", "general");
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    s_room_create_ok (fixture, "general", false, 10, "alice");
    s_member_add_ok (fixture, "general", "bob", 1);
}

//  The room of a list answer named name (as created), or NULL
static const msgpack_object *
s_listed_room (sc_reply_t *reply, const char *name)
{
    const msgpack_object *rooms = s_array_field (reply, "rooms");
    for (uint32_t index = 0; index < rooms->via.array.size; index++) {
        const msgpack_object *room = &rooms->via.array.ptr [index];
        const msgpack_object *field = sc_map_field (room, "name");
        if (field && field->type == MSGPACK_OBJECT_STR
        &&  field->via.str.size == strlen (name)
        &&  memcmp (field->via.str.ptr, name, field->via.str.size) == 0)
            return room;
    }
    return NULL;
}

//  Asserts a list answer: the rooms of banned listed with banned: true (and
//  joined: false), those of others listed without banned, those of absent
//  not listed; each array ends with NULL. Destroys the reply.
static void
s_assert_bans_listed (sc_reply_t *reply, const char *const *banned, const char *const *others,
                      const char *const *absent)
{
    s_assert_ok (reply);
    for (; *banned; banned++) {
        const msgpack_object *room = s_listed_room (reply, *banned);
        if (!room)
            fail_msg ("'%s' is not listed", *banned);
        assert_true (s_bool (sc_map_field (room, "banned")));
        assert_false (s_bool (sc_map_field (room, "joined")));
    }
    for (; *others; others++) {
        const msgpack_object *room = s_listed_room (reply, *others);
        if (!room)
            fail_msg ("'%s' is not listed", *others);
        if (sc_map_field (room, "banned"))
            fail_msg ("'%s' says banned", *others);
    }
    for (; *absent; absent++)
        if (s_listed_room (reply, *absent))
            fail_msg ("'%s' is listed", *absent);
    sc_reply_destroy (&reply);
}

static void
test_room_lists_mark_the_public_rooms_the_user_is_banned_from (void **state)
{
    fixture_t *fixture = (fixture_t *) *state;
    s_user_create_ok (fixture, "alice");
    s_user_create_ok (fixture, "Bob");
    s_user_create_ok (fixture, "carol");
    s_room_create_ok (fixture, "general", false, 10, "alice");
    s_room_create_ok (fixture, "Lounge", false, 10, "alice");
    s_room_create_ok (fixture, "open", false, 10, "alice");
    s_room_create_ok (fixture, "hideout", true, 10, "alice");
    //  bob: kicked and banned from general, banned from Lounge without
    //  having been in it, invited to hideout and banned from it
    s_member_add_ok (fixture, "general", "bob", 1);
    sc_reply_t *reply = s_member_ban (fixture, "general", "BOB", 2);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_member_ban (fixture, "LOUNGE", "bob", 0);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_invite (fixture, "hideout", "bob", "alice");
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    reply = s_member_ban (fixture, "hideout", "bob", 0);
    s_assert_ok (reply);
    sc_reply_destroy (&reply);

    const char *const none [] = { NULL };
    const char *const bans [] = { "general", "Lounge", NULL };
    const char *const open [] = { "open", NULL };
    const char *const hideout [] = { "hideout", NULL };
    const char *const all_public [] = { "general", "Lounge", "open", NULL };
    s_assert_bans_listed (s_room_page (fixture, "store.room.public", "BOB", NULL, 0, NULL, NULL,
                                       -1), bans, open, hideout);
    s_assert_bans_listed (s_room_page (fixture, "store.room.directory", "bob", NULL, 0, NULL,
                                       NULL, -1), bans, open, hideout);
    s_assert_bans_listed (s_room_page (fixture, "store.room.directory", "bob", NULL, 0, "prefix",
                                       "LO", -1), (const char *[]) { "Lounge", NULL }, none,
                          (const char *[]) { "general", "open", NULL });
    s_assert_bans_listed (s_by_name (fixture, "store.room.list", "user", "bob"), bans, open,
                          hideout);
    s_assert_bans_listed (s_room_page (fixture, "store.room.invited", "bob", NULL, 0, NULL, NULL,
                                       -1), none, none, hideout);
    //  Nobody else's ban shows: not to carol, not to the owner
    s_assert_bans_listed (s_room_page (fixture, "store.room.public", "carol", NULL, 0, NULL, NULL,
                                       -1), none, all_public, hideout);
    s_assert_bans_listed (s_room_page (fixture, "store.room.directory", "carol", NULL, 0, NULL,
                                       NULL, -1), none, all_public, hideout);
    s_assert_bans_listed (s_room_page (fixture, "store.room.directory", "alice", NULL, 0, NULL,
                                       NULL, -1), none, all_public, hideout);
    s_assert_bans_listed (s_by_name (fixture, "store.room.list", "user", "carol"), none,
                          all_public, hideout);

    //  Unbanned from general: listed as any other room, and joined once joined
    reply = s_room_unban (fixture, "general", "bob");
    s_assert_ok (reply);
    sc_reply_destroy (&reply);
    const char *const lounge [] = { "Lounge", NULL };
    const char *const general_open [] = { "general", "open", NULL };
    s_assert_bans_listed (s_room_page (fixture, "store.room.public", "bob", NULL, 0, NULL, NULL,
                                       -1), lounge, general_open, hideout);
    s_assert_bans_listed (s_room_page (fixture, "store.room.directory", "bob", NULL, 0, NULL,
                                       NULL, -1), lounge, general_open, hideout);
    s_member_add_ok (fixture, "general", "bob", 3);
    reply = s_room_page (fixture, "store.room.directory", "bob", NULL, 0, NULL, NULL, -1);
    s_assert_ok (reply);
    assert_true (s_bool (sc_map_field (s_listed_room (reply, "general"), "joined")));
    sc_reply_destroy (&reply);
    s_assert_bans_listed (s_room_page (fixture, "store.room.public", "bob", NULL, 0, NULL, NULL,
                                       -1), lounge, open, (const char *[]) { "general", "hideout",
                                                                            NULL });
}

//  Search (schema version 12)
#include "sc_search.inc"

int
main (int argc, char *argv [])
{
    if (argc < 2) {
        fprintf (stderr, "usage: %s PLUGIN.so [NAME.KEY=VALUE...]\n"
                 "  option values may use @TMPDIR@ (a fresh folder per test) and @UNIQUE@\n"
                 "  STORE_CONFORMANCE_SKIP_REAL_DB=1 skips the cases that need a real database\n",
                 argv [0]);
        return 2;
    }
    s_plugin_path = argv [1];
    s_option_templates = (const char *const *) (argv + 2);
    s_option_count = (size_t) (argc - 2);
    const char *skip_real = getenv ("STORE_CONFORMANCE_SKIP_REAL_DB");
    s_skip_real_db = skip_real && *skip_real && strcmp (skip_real, "0") != 0;
    //  The suite's own signal handling is cmocka's
    zsys_handler_set (NULL);
    //  A part of the suite while working on it: STORE_CONFORMANCE_FILTER=test_timeline*
    const char *filter = getenv ("STORE_CONFORMANCE_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter (filter);

#define S_TEST(name) cmocka_unit_test_setup_teardown (name, s_setup, s_teardown)
    const struct CMUnitTest tests [] = {
        S_TEST (test_store_route_is_internal_store_prefix),
        S_TEST (test_user_state_disabled_revokes_tokens_and_refuses_new_ones),
        S_TEST (test_user_deleted_stays_deleted_and_keeps_its_name),
        S_TEST (test_user_set_password_replaces_the_hash_and_revokes_tokens),
        S_TEST (test_user_set_password_keeps_the_token_named),
        S_TEST (test_room_all_lists_every_room_by_name_in_pages),
        S_TEST (test_store_info_names_backend_and_schema),
        S_TEST (test_unknown_store_type_gets_unknown_type),
        S_TEST (test_body_not_a_map_gets_bad_request),
        S_TEST (test_user_create_then_get_by_any_case),
        S_TEST (test_user_create_taken_name_in_other_case_conflicts),
        S_TEST (test_user_get_unknown_name_is_not_found),
        S_TEST (test_user_create_invalid_fields_get_bad_request_and_change_nothing),
        S_TEST (test_user_list_of_empty_store_is_empty),
        S_TEST (test_user_list_sorted_by_lower_cased_name_with_last_seen),
        S_TEST (test_user_list_pages_with_after_and_limit),
        S_TEST (test_user_seen_sets_many_and_skips_unknown_names),
        S_TEST (test_user_seen_invalid_entries_get_bad_request_and_set_nothing),
        S_TEST (test_token_put_get_delete_round_trip),
        S_TEST (test_token_get_returns_expired_token),
        S_TEST (test_token_put_for_unknown_user_is_not_found),
        S_TEST (test_token_put_same_hash_twice_conflicts),
        S_TEST (test_token_invalid_fields_get_bad_request),
        S_TEST (test_token_delete_user_deletes_only_that_users_tokens),
        S_TEST (test_token_purge_deletes_expired_tokens_only),
        S_TEST (test_token_trim_keeps_the_most_recently_used),
        S_TEST (test_token_touch_and_trim_refuse_bad_fields),
        S_TEST (test_token_touch_renews_the_expiry_forward_only),
        S_TEST (test_pipelined_requests_applied_and_answered_in_order),
        S_TEST (test_burst_of_writes_all_acknowledged_and_one_failure_spares_the_rest),
        S_TEST (test_acknowledged_writes_survive_plugin_restart),
        S_TEST (test_room_types_with_body_not_a_map_get_bad_request),
        S_TEST (test_store_info_schema_version_is_at_least_two),
        S_TEST (test_room_create_then_get_by_any_case),
        S_TEST (test_room_create_taken_name_in_other_case_conflicts),
        S_TEST (test_room_create_with_unknown_owner_is_not_found_and_creates_nothing),
        S_TEST (test_room_get_unknown_name_is_not_found),
        S_TEST (test_room_create_invalid_fields_get_bad_request_and_change_nothing),
        S_TEST (test_room_list_shows_public_rooms_and_own_private_ones_with_joined),
        S_TEST (test_room_list_of_store_without_rooms_is_empty),
        S_TEST (test_room_delete_removes_members_and_timeline_and_frees_the_name),
        S_TEST (test_member_add_joins_once_and_appends_its_entry),
        S_TEST (test_member_add_unknown_room_or_user_is_not_found),
        S_TEST (test_member_add_to_full_room_is_refused_and_changes_nothing),
        S_TEST (test_member_add_to_private_room_needs_an_invitation),
        S_TEST (test_member_add_checks_forbidden_before_full),
        S_TEST (test_member_add_with_taken_seq_conflicts_and_adds_nobody),
        S_TEST (test_member_remove_appends_entry_and_refuses_non_members),
        S_TEST (test_member_list_sorted_by_lower_cased_name),
        S_TEST (test_invite_add_member_is_already_member_and_unknowns_are_not_found),
        S_TEST (test_msg_append_then_history_returns_the_entry),
        S_TEST (test_msg_append_with_taken_seq_conflicts_and_keeps_the_first),
        S_TEST (test_msg_append_invalid_entries_get_bad_request),
        S_TEST (test_msg_append_entries_appends_the_whole_run_in_order),
        S_TEST (test_msg_append_entries_with_a_taken_seq_conflicts_and_appends_none),
        S_TEST (test_msg_append_invalid_runs_get_bad_request_and_store_nothing),
        S_TEST (test_msg_append_entries_continue_the_timeline_after_single_appends),
        S_TEST (test_pipelined_runs_one_conflict_spares_the_rest),
        S_TEST (test_msg_history_pages_with_exact_more_flags),
        S_TEST (test_pipelined_room_writes_one_conflict_spares_the_rest),
        S_TEST (test_msg_history_pages_a_big_timeline_correctly),
        S_TEST (test_rooms_members_invitations_and_timelines_survive_plugin_restart),
        S_TEST (test_pm_types_with_body_not_a_map_get_bad_request),
        S_TEST (test_store_info_schema_version_is_at_least_three),
        S_TEST (test_pm_append_then_history_returns_entries_with_names_as_registered),
        S_TEST (test_pm_history_is_cut_by_bytes_next_to_its_cursor),
        S_TEST (test_pm_conversations_are_cut_by_bytes_newest_first),
        S_TEST (test_pm_conversation_is_the_unordered_pair_without_regard_to_case),
        S_TEST (test_pm_append_with_unknown_user_is_not_found_and_stores_nothing),
        S_TEST (test_pm_append_to_oneself_is_bad_request_in_any_case),
        S_TEST (test_pm_append_invalid_fields_get_bad_request_and_store_nothing),
        S_TEST (test_pm_append_with_taken_seq_conflicts_and_keeps_the_first),
        S_TEST (test_pm_last_seq_follows_appends_and_is_zero_without_messages),
        S_TEST (test_pm_history_pages_with_exact_more_flags),
        S_TEST (test_pm_conversations_newest_first_with_last_entry_and_unread),
        S_TEST (test_pm_conversations_default_limit_is_two_hundred),
        S_TEST (test_pm_read_marker_counts_unread_and_never_goes_back),
        S_TEST (test_pm_read_on_conversation_without_messages_creates_no_conversation),
        S_TEST (test_pm_read_unknown_user_is_not_found_and_bad_fields_are_bad_request),
        S_TEST (test_pipelined_pm_writes_one_conflict_spares_the_rest),
        S_TEST (test_pm_append_messages_appends_the_run_both_ways_as_single_appends_would),
        S_TEST (test_pm_append_messages_with_a_taken_seq_conflicts_and_appends_none),
        S_TEST (test_pm_append_invalid_runs_get_bad_request_and_store_nothing),
        S_TEST (test_pm_append_messages_continue_the_conversation_after_single_appends),
        S_TEST (test_pipelined_pm_runs_one_conflict_spares_the_rest),
        S_TEST (test_pm_conversations_and_read_markers_survive_plugin_restart),
        S_TEST (test_pm_many_messages_across_twenty_conversations),
        S_TEST (test_room_joined_lists_the_users_rooms_by_name_in_pages),
        S_TEST (test_room_public_lists_other_public_rooms_most_recently_active_first),
        S_TEST (test_room_directory_pages_public_rooms_by_name_from_a_prefix),
        S_TEST (test_room_create_quotas_come_after_a_taken_name),
        S_TEST (test_member_add_joined_quota_comes_after_membership),
        S_TEST (test_msg_history_cut_for_its_bytes_keeps_the_entries_next_to_the_cursor),
        S_TEST (test_msg_append_keeps_nonces_and_a_repeat_appends_nothing),
        S_TEST (test_msg_nonce_finds_a_senders_nonce_in_a_room),
        S_TEST (test_bad_nonces_and_a_nonce_twice_in_a_run_get_bad_request),
        S_TEST (test_pm_append_keeps_nonces_and_a_repeat_appends_nothing),
        S_TEST (test_member_marker_starts_at_the_join_and_moves_forward_only),
        S_TEST (test_member_markers_of_a_run_of_several_senders),
        S_TEST (test_member_read_refuses_unknown_rooms_non_members_and_bad_fields),
        S_TEST (test_mentions_are_kept_with_the_entry_and_counted_after_the_marker),
        S_TEST (test_mentions_that_are_not_arrays_of_names_are_bad_request),
        S_TEST (test_msg_history_naming_a_user_answers_its_read_seq),
        S_TEST (test_room_invited_lists_private_invitations_until_joined),
        S_TEST (test_read_markers_and_mentions_survive_plugin_restart),
        S_TEST (test_pm_read_and_conversations_carry_the_read_marker),
        //  Timeline changes (schema version 9)
        S_TEST (test_timeline_changes_are_answered_as_the_message_is_now),
        S_TEST (test_timeline_changes_refused_by_the_checks_store_nothing),
        S_TEST (test_timeline_elements_of_a_run_see_the_ones_before_them),
        S_TEST (test_timeline_delete_leaves_no_text_no_reactions_and_no_counts),
        S_TEST (test_timeline_reactions_are_ordered_counted_and_bounded),
        S_TEST (test_timeline_refusals_come_beside_repeated_nonces),
        S_TEST (test_timeline_change_fields_out_of_range_are_bad_request),
        S_TEST (test_timeline_changes_in_a_conversation),
        S_TEST (test_room_update_changes_the_settings_given_and_appends_its_notice),
        S_TEST (test_room_update_refuses_bad_fields_and_changes_nothing),
        S_TEST (test_room_made_smaller_than_its_members_keeps_them_and_takes_no_new_ones),
        S_TEST (test_member_remove_with_ban_removes_and_bans_with_its_notice),
        S_TEST (test_member_remove_with_ban_of_a_non_member_records_it_without_a_notice),
        S_TEST (test_room_unban_lifts_a_ban_and_bans_go_with_the_room),
        S_TEST (test_room_lists_mark_the_public_rooms_the_user_is_banned_from),
        //  Search (schema version 12)
        SC_SEARCH_TESTS,
        //  Files (schema version 13)
        S_TEST (test_file_written_in_pieces_committed_then_read),
        S_TEST (test_file_create_within_the_users_quota),
        S_TEST (test_file_bad_fields_get_bad_request),
        S_TEST (test_file_references_are_checked_in_run_order),
        S_TEST (test_file_goes_with_the_deletion_of_its_last_message),
        S_TEST (test_file_goes_with_its_room_unless_referred_elsewhere),
        S_TEST (test_file_sweep_deletes_old_files_no_message_refers_to),
        S_TEST (test_files_and_references_survive_plugin_restart),
    };
    return cmocka_run_group_tests_name (s_plugin_path, tests, NULL, NULL);
}
