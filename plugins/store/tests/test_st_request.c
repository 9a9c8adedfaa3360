/*  =========================================================================
    test_st_request - proto/STORE.md's rules on values, checked once

    Every rule the two stores once each had a copy of, and the decisions
    taken where they disagreed (proto/STORE.md, "Values on the wire").
    =========================================================================
*/

#include "st_request.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

//  A body being packed
typedef struct {
    msgpack_sbuffer buffer;
    msgpack_packer packer;
} s_body_t;

static void
s_begin (s_body_t *body, uint32_t fields)
{
    msgpack_sbuffer_init (&body->buffer);
    msgpack_packer_init (&body->packer, &body->buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&body->packer, fields);
}

static void
s_key (s_body_t *body, const char *key)
{
    msgpack_pack_str_with_body (&body->packer, key, strlen (key));
}

static void
s_str (s_body_t *body, const char *key, const char *value)
{
    s_key (body, key);
    msgpack_pack_str_with_body (&body->packer, value, strlen (value));
}

static void
s_uint (s_body_t *body, const char *key, uint64_t value)
{
    s_key (body, key);
    msgpack_pack_uint64 (&body->packer, value);
}

static void
s_nil (s_body_t *body, const char *key)
{
    s_key (body, key);
    msgpack_pack_nil (&body->packer);
}

static void
s_bool (s_body_t *body, const char *key, bool value)
{
    s_key (body, key);
    if (value)
        msgpack_pack_true (&body->packer);
    else
        msgpack_pack_false (&body->packer);
}

//  A message entry {seq, kind, user, ts, text} as a value
static void
s_entry (s_body_t *body, uint64_t seq, const char *text)
{
    msgpack_pack_map (&body->packer, 5);
    s_uint (body, "seq", seq);
    s_str (body, "kind", "message");
    s_str (body, "user", "Alice");
    s_uint (body, "ts", 1000);
    s_str (body, "text", text);
}

//  Parses the body as type and frees the body
static st_request_t *
s_parse (st_type_t type, s_body_t *body)
{
    st_request_t *request = st_request_new (type, body->buffer.data, body->buffer.size, NULL);
    assert_non_null (request);
    msgpack_sbuffer_destroy (&body->buffer);
    return request;
}

//  Asserts the request was refused with bad_request, its sentence holding
//  words, and destroys it
static void
s_assert_refused (st_request_t *request, const char *words)
{
    assert_false (st_request_live (request));
    assert_string_equal (st_request_code (request), "bad_request");
    if (!strstr (st_request_message (request), words))
        fail_msg ("'%s' does not say '%s'", st_request_message (request), words);
    st_request_destroy (&request);
    assert_null (request);
}

static void
test_types (void **state)
{
    st_type_t type;
    assert_int_equal (st_type_find ("store.pm.read", &type), 0);
    assert_int_equal (type, ST_PM_READ);
    assert_string_equal (st_type_name (ST_USER_GET), "store.user.get");
    assert_int_equal (st_type_find ("store.nothing", &type), -1);
    assert_int_equal (st_type_find (NULL, &type), -1);
    assert_true (st_type_writes (ST_MSG_APPEND));
    assert_false (st_type_writes (ST_MSG_HISTORY));
}

static void
test_not_a_map (void **state)
{
    st_request_t *request = st_request_new (ST_INFO, "\x01", 1, NULL);
    s_assert_refused (request, "not a msgpack map");
    request = st_request_new (ST_INFO, "", 0, NULL);
    s_assert_refused (request, "not a msgpack map");
}

static void
test_user_create (void **state)
{
    s_body_t body;
    s_begin (&body, 4);
    s_str (&body, "name", "Alice");
    s_str (&body, "password_hash", "$argon2id$x");
    s_uint (&body, "created_at", 42);
    s_str (&body, "newer_field", "ignored");
    st_request_t *request = s_parse (ST_USER_CREATE, &body);
    assert_true (st_request_live (request));
    assert_string_equal (request->as.user_create.name.key, "alice");
    assert_int_equal (request->as.user_create.name.text.size, 5);
    assert_memory_equal (request->as.user_create.name.text.data, "Alice", 5);
    assert_int_equal (request->as.user_create.created_at, 42);
    st_request_destroy (&request);

    s_begin (&body, 2);
    s_str (&body, "name", "Alice");
    s_uint (&body, "created_at", 42);
    s_assert_refused (s_parse (ST_USER_CREATE, &body), "'password_hash' is missing");
}

static void
test_name_bounds (void **state)
{
    char long_name [ST_NAME_MAX + 2];
    memset (long_name, 'a', sizeof long_name - 1);
    long_name [sizeof long_name - 1] = 0;
    s_body_t body;
    s_begin (&body, 1);
    s_str (&body, "name", long_name);
    s_assert_refused (s_parse (ST_USER_GET, &body), "'name' must have 1 to 256 bytes");
    s_begin (&body, 1);
    s_str (&body, "name", "");
    s_assert_refused (s_parse (ST_USER_GET, &body), "'name'");
    s_begin (&body, 1);
    s_uint (&body, "name", 3);
    s_assert_refused (s_parse (ST_USER_GET, &body), "'name' must be a string");
    //  A NUL inside a name
    s_begin (&body, 1);
    s_key (&body, "name");
    msgpack_pack_str_with_body (&body.packer, "a\0b", 3);
    s_assert_refused (s_parse (ST_USER_GET, &body), "no NUL");
}

//  Decided (STORE.md, "Values on the wire"): nil is a mistyped field,
//  never an absent one (store-mongo once read it as absent)
static void
test_nil_is_mistyped (void **state)
{
    s_body_t body;
    s_begin (&body, 2);
    s_str (&body, "room", "lobby");
    s_nil (&body, "before");
    s_assert_refused (s_parse (ST_MSG_HISTORY, &body), "'before' must be an integer");
    s_begin (&body, 3);
    s_str (&body, "room", "lobby");
    s_str (&body, "user", "alice");
    s_nil (&body, "entry");
    s_assert_refused (s_parse (ST_MEMBER_ADD, &body), "'entry' must be a map");
}

//  Decided: a message's text holds no NUL (store-sqlite once stored it)
static void
test_text_without_nul (void **state)
{
    s_body_t body;
    s_begin (&body, 2);
    s_str (&body, "room", "lobby");
    s_key (&body, "entry");
    msgpack_pack_map (&body.packer, 5);
    s_uint (&body, "seq", 1);
    s_str (&body, "kind", "message");
    s_str (&body, "user", "alice");
    s_uint (&body, "ts", 1);
    s_key (&body, "text");
    msgpack_pack_str_with_body (&body.packer, "a\0b", 3);
    s_assert_refused (s_parse (ST_MSG_APPEND, &body), "In 'entry': The field 'text'");
}

//  Decided: description and private are required; max_participants is at
//  most 2^32 - 1 (store-mongo once took the first two as optional,
//  store-sqlite the third up to 2^63 - 1)
static void
s_room_create (s_body_t *body, bool description, bool is_private, uint64_t participants)
{
    s_begin (body, 4 + (description ? 1 : 0) + (is_private ? 1 : 0));
    s_str (body, "name", "Lobby");
    if (description)
        s_str (body, "description", "");
    if (is_private)
        s_bool (body, "private", false);
    s_uint (body, "max_participants", participants);
    s_str (body, "owner", "alice");
    s_uint (body, "created_at", 1);
}

static void
test_room_create (void **state)
{
    s_body_t body;
    s_room_create (&body, true, true, 10);
    st_request_t *request = s_parse (ST_ROOM_CREATE, &body);
    assert_true (st_request_live (request));
    assert_string_equal (request->as.room_create.name.key, "lobby");
    assert_non_null (request->as.room_create.description.data);
    assert_int_equal (request->as.room_create.description.size, 0);
    assert_int_equal (request->as.room_create.max_participants, 10);
    assert_int_equal (request->as.room_create.max_owned, 0);
    st_request_destroy (&request);

    s_room_create (&body, false, true, 10);
    s_assert_refused (s_parse (ST_ROOM_CREATE, &body), "'description' is missing");
    s_room_create (&body, true, false, 10);
    s_assert_refused (s_parse (ST_ROOM_CREATE, &body), "'private' must be true or false");
    s_room_create (&body, true, true, (uint64_t) UINT32_MAX + 1);
    s_assert_refused (s_parse (ST_ROOM_CREATE, &body), "'max_participants'");
    s_room_create (&body, true, true, 0);
    s_assert_refused (s_parse (ST_ROOM_CREATE, &body), "'max_participants'");
    s_room_create (&body, true, true, UINT32_MAX);
    request = s_parse (ST_ROOM_CREATE, &body);
    assert_true (st_request_live (request));
    st_request_destroy (&request);
}

static void
test_msg_append_runs (void **state)
{
    s_body_t body;
    s_begin (&body, 2);
    s_str (&body, "room", "lobby");
    s_key (&body, "entries");
    msgpack_pack_array (&body.packer, 3);
    s_entry (&body, 7, "one");
    s_entry (&body, 8, "two");
    s_entry (&body, 9, "");
    st_request_t *request = s_parse (ST_MSG_APPEND, &body);
    assert_true (st_request_live (request));
    assert_int_equal (request->as.msg_append.count, 3);
    assert_int_equal (request->as.msg_append.entries [2].seq, 9);
    assert_int_equal (request->as.msg_append.entries [2].text.size, 0);
    assert_int_equal (request->as.msg_append.entries [0].change.kind, ST_KIND_MESSAGE);
    st_request_destroy (&request);

    s_begin (&body, 2);
    s_str (&body, "room", "lobby");
    s_key (&body, "entries");
    msgpack_pack_array (&body.packer, 2);
    s_entry (&body, 7, "one");
    s_entry (&body, 9, "two");
    s_assert_refused (s_parse (ST_MSG_APPEND, &body), "In 'entries' [1]: The seq must be 8");

    s_begin (&body, 1);
    s_str (&body, "room", "lobby");
    s_assert_refused (s_parse (ST_MSG_APPEND, &body), "'entry' or 'entries' is missing");

    s_begin (&body, 2);
    s_str (&body, "room", "lobby");
    s_key (&body, "entries");
    msgpack_pack_array (&body.packer, 0);
    s_assert_refused (s_parse (ST_MSG_APPEND, &body), "array of 1 to 256");
}

//  A message entry with a nonce (NULL: none) from user as a value
static void
s_nonce_entry (s_body_t *body, uint64_t seq, const char *user, const char *nonce)
{
    msgpack_pack_map (&body->packer, nonce ? 6 : 5);
    s_uint (body, "seq", seq);
    s_str (body, "kind", "message");
    s_str (body, "user", user);
    s_uint (body, "ts", 1000);
    s_str (body, "text", "hi");
    if (nonce)
        s_str (body, "nonce", nonce);
}

//  store.msg.append of two entries from users with nonces
static st_request_t *
s_nonce_run (const char *user1, const char *nonce1, const char *user2, const char *nonce2)
{
    s_body_t body;
    s_begin (&body, 2);
    s_str (&body, "room", "lobby");
    s_key (&body, "entries");
    msgpack_pack_array (&body.packer, 2);
    s_nonce_entry (&body, 1, user1, nonce1);
    s_nonce_entry (&body, 2, user2, nonce2);
    return s_parse (ST_MSG_APPEND, &body);
}

static void
test_nonces (void **state)
{
    st_request_t *request = s_nonce_run ("alice", "n-1", "bob", "n-1");
    assert_true (st_request_live (request));
    assert_int_equal (request->as.msg_append.entries [0].nonce.size, 3);
    assert_memory_equal (request->as.msg_append.entries [0].nonce.data, "n-1", 3);
    st_request_destroy (&request);
    request = s_nonce_run ("alice", "n-1", "alice", NULL);
    assert_true (st_request_live (request));
    assert_null (request->as.msg_append.entries [1].nonce.data);
    st_request_destroy (&request);
    s_assert_refused (s_nonce_run ("alice", "n-1", "ALICE", "n-1"),
                      "In 'entries' [1]: the sender gave this 'nonce'");
    s_assert_refused (s_nonce_run ("alice", "a b", "bob", NULL), "'nonce' must be 1 to 64");
    s_assert_refused (s_nonce_run ("alice", "", "bob", NULL), "'nonce' must have 1 to 64");
    char longest [66];
    memset (longest, 'x', 65);
    longest [65] = 0;
    s_assert_refused (s_nonce_run ("alice", longest, "bob", NULL), "'nonce'");

    //  store.msg.nonce and store.pm.nonce: every field required
    s_body_t body;
    s_begin (&body, 3);
    s_str (&body, "room", "Lobby");
    s_str (&body, "user", "Alice");
    s_str (&body, "nonce", "n-1");
    request = s_parse (ST_MSG_NONCE, &body);
    assert_true (st_request_live (request));
    assert_string_equal (request->as.msg_nonce.room.key, "lobby");
    assert_string_equal (request->as.msg_nonce.user.key, "alice");
    st_request_destroy (&request);
    s_begin (&body, 2);
    s_str (&body, "room", "lobby");
    s_str (&body, "user", "alice");
    s_assert_refused (s_parse (ST_MSG_NONCE, &body), "'nonce' is missing");
    s_begin (&body, 3);
    s_str (&body, "from", "alice");
    s_str (&body, "to", "bob");
    s_uint (&body, "nonce", 7);
    s_assert_refused (s_parse (ST_PM_NONCE, &body), "'nonce' must be a string");
    assert_false (st_type_writes (ST_MSG_NONCE));
    assert_false (st_type_writes (ST_PM_NONCE));
}

static void
test_system_entry (void **state)
{
    s_body_t body;
    s_begin (&body, 3);
    s_str (&body, "room", "lobby");
    s_str (&body, "user", "bob");
    s_key (&body, "entry");
    msgpack_pack_map (&body.packer, 5);
    s_uint (&body, "seq", 4);
    s_str (&body, "kind", "system");
    s_str (&body, "user", "bob");
    s_uint (&body, "ts", 1);
    s_str (&body, "event", "dance");
    s_assert_refused (s_parse (ST_MEMBER_REMOVE, &body), "\"update\" or \"kick\"");
}

//  Schema version 9: the changes' typed fields, and a field of another
//  kind ignored
static void
test_timeline_changes (void **state)
{
    s_body_t body;
    s_begin (&body, 2);
    s_str (&body, "room", "lobby");
    s_key (&body, "entries");
    msgpack_pack_array (&body.packer, 3);
    msgpack_pack_map (&body.packer, 6);
    s_uint (&body, "seq", 5);
    s_str (&body, "kind", "reaction");
    s_str (&body, "user", "bob");
    s_uint (&body, "ts", 1);
    s_uint (&body, "target", 2);
    s_str (&body, "emoji", "+1");
    msgpack_pack_map (&body.packer, 7);
    s_uint (&body, "seq", 6);
    s_str (&body, "kind", "message");
    s_str (&body, "user", "bob");
    s_uint (&body, "ts", 1);
    s_str (&body, "text", "re");
    s_uint (&body, "reply_to", 2);
    s_uint (&body, "target", 3);
    msgpack_pack_map (&body.packer, 6);
    s_uint (&body, "seq", 7);
    s_str (&body, "kind", "system");
    s_str (&body, "user", "bob");
    s_uint (&body, "ts", 1);
    s_str (&body, "event", "kick");
    s_str (&body, "by", "alice");
    //  The reaction has no 'on'
    s_assert_refused (s_parse (ST_MSG_APPEND, &body), "'on'");

    //  A reply (its target ignored: not a message's field) and a kick by
    s_begin (&body, 2);
    s_str (&body, "room", "lobby");
    s_key (&body, "entries");
    msgpack_pack_array (&body.packer, 2);
    msgpack_pack_map (&body.packer, 7);
    s_uint (&body, "seq", 6);
    s_str (&body, "kind", "message");
    s_str (&body, "user", "bob");
    s_uint (&body, "ts", 1);
    s_str (&body, "text", "re");
    s_uint (&body, "reply_to", 2);
    s_uint (&body, "target", 3);
    msgpack_pack_map (&body.packer, 6);
    s_uint (&body, "seq", 7);
    s_str (&body, "kind", "system");
    s_str (&body, "user", "bob");
    s_uint (&body, "ts", 1);
    s_str (&body, "event", "kick");
    s_str (&body, "by", "alice");
    st_request_t *request = s_parse (ST_MSG_APPEND, &body);
    assert_true (st_request_live (request));
    assert_int_equal (request->as.msg_append.entries [0].change.reply_to, 2);
    assert_int_equal (request->as.msg_append.entries [0].change.target, 0);
    assert_int_equal (request->as.msg_append.entries [1].change.kind, ST_KIND_SYSTEM);
    assert_int_equal (request->as.msg_append.entries [1].by.size, 5);
    st_request_destroy (&request);

    s_begin (&body, 5);
    s_str (&body, "from", "alice");
    s_str (&body, "to", "bob");
    s_uint (&body, "seq", 3);
    s_uint (&body, "ts", 1);
    s_str (&body, "kind", "delete");
    s_assert_refused (s_parse (ST_PM_APPEND, &body), "'target'");

    s_begin (&body, 7);
    s_str (&body, "from", "alice");
    s_str (&body, "to", "bob");
    s_uint (&body, "seq", 3);
    s_uint (&body, "ts", 1);
    s_str (&body, "kind", "reaction");
    s_uint (&body, "target", 2);
    s_str (&body, "emoji", "ok");
    s_assert_refused (s_parse (ST_PM_APPEND, &body), "'on'");

    s_begin (&body, 8);
    s_str (&body, "from", "alice");
    s_str (&body, "to", "bob");
    s_uint (&body, "seq", 3);
    s_uint (&body, "ts", 1);
    s_str (&body, "kind", "reaction");
    s_uint (&body, "target", 2);
    s_str (&body, "emoji", "ok");
    s_bool (&body, "on", false);
    request = s_parse (ST_PM_APPEND, &body);
    assert_true (st_request_live (request));
    const st_pm_message_t *message = &request->as.pm_append.messages [0];
    assert_int_equal (message->change.kind, ST_KIND_REACTION);
    assert_int_equal (message->change.target, 2);
    assert_int_equal (message->change.emoji.size, 2);
    assert_false (message->change.on);
    assert_int_equal (message->text.size, 0);
    st_request_destroy (&request);
}

static void
s_pm_append (s_body_t *body, const char *from, const char *to, const char *sender)
{
    s_begin (body, 3);
    s_str (body, "from", from);
    s_str (body, "to", to);
    s_key (body, "messages");
    msgpack_pack_array (&body->packer, 2);
    for (uint64_t seq = 1; seq <= 2; seq++) {
        msgpack_pack_map (&body->packer, 4);
        s_str (body, "from", seq == 1 ? from : sender);
        s_uint (body, "seq", seq);
        s_str (body, "text", "hi");
        s_uint (body, "ts", 5);
    }
}

static void
test_pm_append (void **state)
{
    s_body_t body;
    s_pm_append (&body, "Alice", "bob", "BOB");
    st_request_t *request = s_parse (ST_PM_APPEND, &body);
    assert_true (st_request_live (request));
    assert_int_equal (request->as.pm_append.count, 2);
    assert_false (request->as.pm_append.messages [0].from_peer);
    assert_true (request->as.pm_append.messages [1].from_peer);
    st_request_destroy (&request);

    s_pm_append (&body, "Alice", "ALICE", "alice");
    s_assert_refused (s_parse (ST_PM_APPEND, &body), "the same user");
    s_pm_append (&body, "alice", "bob", "carol");
    s_assert_refused (s_parse (ST_PM_APPEND, &body), "In 'messages' [1]: The message's 'from'");

    //  The single form
    s_begin (&body, 5);
    s_str (&body, "from", "alice");
    s_str (&body, "to", "bob");
    s_uint (&body, "seq", 3);
    s_str (&body, "text", "one");
    s_uint (&body, "ts", 9);
    request = s_parse (ST_PM_APPEND, &body);
    assert_true (st_request_live (request));
    assert_int_equal (request->as.pm_append.count, 1);
    assert_int_equal (request->as.pm_append.messages [0].seq, 3);
    st_request_destroy (&request);
}

static void
test_pages (void **state)
{
    s_body_t body;
    s_begin (&body, 3);
    s_str (&body, "room", "lobby");
    s_uint (&body, "before", 3);
    s_uint (&body, "after", 1);
    s_assert_refused (s_parse (ST_MSG_HISTORY, &body), "not both");

    s_begin (&body, 3);
    s_str (&body, "user", "a");
    s_str (&body, "with", "b");
    s_uint (&body, "after", 5);
    st_request_t *request = s_parse (ST_PM_HISTORY, &body);
    assert_true (st_request_live (request));
    assert_int_equal (request->as.pm_history.page.cursor, ST_CURSOR_AFTER);
    assert_int_equal (request->as.pm_history.page.seq, 5);
    assert_int_equal (request->as.pm_history.page.limit, ST_HISTORY_DEFAULT);
    st_request_destroy (&request);

    s_begin (&body, 2);
    s_str (&body, "user", "a");
    s_uint (&body, "limit", ST_LIST_LIMIT_MAX + 1);
    s_assert_refused (s_parse (ST_PM_CONVERSATIONS, &body), "'limit' must be an integer from 1");

    s_begin (&body, 0);
    request = s_parse (ST_USER_LIST, &body);
    assert_true (st_request_live (request));
    assert_null (request->as.user_list.after.text.data);
    assert_string_equal (request->as.user_list.after.key, "");
    assert_int_equal (request->as.user_list.limit, ST_USER_LIST_DEFAULT);
    st_request_destroy (&request);
}

static void
test_room_pages (void **state)
{
    s_body_t body;
    s_begin (&body, 2);
    s_str (&body, "user", "a");
    s_str (&body, "after", "Lobby");
    s_assert_refused (s_parse (ST_ROOM_PUBLIC, &body), "together, or neither");

    s_begin (&body, 3);
    s_str (&body, "user", "a");
    s_str (&body, "after", "Lobby");
    s_uint (&body, "after_active", 77);
    st_request_t *request = s_parse (ST_ROOM_PUBLIC, &body);
    assert_true (st_request_live (request));
    assert_string_equal (request->as.room_public.after.key, "lobby");
    assert_int_equal (request->as.room_public.after_active, 77);
    assert_int_equal (request->as.room_public.limit, ST_PUBLIC_DEFAULT);
    st_request_destroy (&request);

    s_begin (&body, 2);
    s_str (&body, "user", "a");
    s_str (&body, "prefix", "ab%");
    s_assert_refused (s_parse (ST_ROOM_DIRECTORY, &body), "'prefix' must hold only");
    s_begin (&body, 2);
    s_str (&body, "user", "a");
    s_str (&body, "prefix", "Ab_-9");
    request = s_parse (ST_ROOM_DIRECTORY, &body);
    assert_true (st_request_live (request));
    assert_string_equal (request->as.room_directory.prefix.key, "ab_-9");
    assert_int_equal (request->as.room_directory.limit, ST_DIRECTORY_DEFAULT);
    st_request_destroy (&request);
}

static void
test_user_seen (void **state)
{
    s_body_t body;
    s_begin (&body, 1);
    s_key (&body, "users");
    msgpack_pack_array (&body.packer, 2);
    msgpack_pack_map (&body.packer, 2);
    s_str (&body, "name", "Alice");
    s_uint (&body, "last_seen", 5);
    msgpack_pack_map (&body.packer, 1);
    s_str (&body, "name", "bob");
    s_assert_refused (s_parse (ST_USER_SEEN, &body), "Entry 1 of 'users': The field 'last_seen'");

    s_begin (&body, 1);
    s_key (&body, "users");
    msgpack_pack_array (&body.packer, 1);
    msgpack_pack_map (&body.packer, 2);
    s_str (&body, "name", "Alice");
    s_uint (&body, "last_seen", 5);
    st_request_t *request = s_parse (ST_USER_SEEN, &body);
    assert_true (st_request_live (request));
    assert_int_equal (request->as.user_seen.count, 1);
    assert_string_equal (request->as.user_seen.users [0].name.key, "alice");
    st_request_destroy (&request);
}

static void
test_answer (void **state)
{
    s_body_t body;
    s_begin (&body, 0);
    st_request_t *request = s_parse (ST_INFO, &body);
    msgpack_pack_map (st_request_packer (request), 0);
    size_t size;
    st_request_result (request, &size);
    assert_int_equal (size, 1);
    st_request_fail (request, "unavailable", "The store is down (%d).", 3);
    assert_false (st_request_live (request));
    assert_string_equal (st_request_message (request), "The store is down (3).");
    st_request_result (request, &size);
    assert_int_equal (size, 0);
    st_request_destroy (&request);
}

static void
test_names (void **state)
{
    st_text_t one = { "Alice", 5 };
    assert_true (st_text_is (one, "Alice"));
    assert_false (st_text_is (one, "Alic"));
    char key [6];
    st_text_lower (one, key);
    assert_string_equal (key, "alice");
}

//  store.file.* (schema version 13): ids, names, the data's bin and
//  bounds, a message's file map
static void
s_file_create (s_body_t *body, const char *id, const char *name, uint64_t size)
{
    s_begin (body, 7);
    s_str (body, "id", id);
    s_str (body, "user", "Alice");
    s_str (body, "name", name);
    s_str (body, "type", "image/png");
    s_uint (body, "size", size);
    s_uint (body, "ts", 1000);
    s_uint (body, "quota", 0);
}

static void
test_files (void **state)
{
    s_body_t body;
    s_file_create (&body, "AbC_-0123456789abcdefgh", "cat.png", 10);
    st_request_t *request = s_parse (ST_FILE_CREATE, &body);
    assert_true (st_request_live (request));
    assert_int_equal (request->as.file_create.size, 10);
    assert_string_equal (request->as.file_create.user.key, "alice");
    st_request_destroy (&request);
    s_file_create (&body, "a/b", "cat.png", 10);
    s_assert_refused (s_parse (ST_FILE_CREATE, &body), "'id'");
    s_file_create (&body, "abc", "", 10);
    s_assert_refused (s_parse (ST_FILE_CREATE, &body), "'name'");
    //  data is a bin, not a string, and at most ST_FILE_CHUNK_MAX bytes
    s_begin (&body, 3);
    s_str (&body, "id", "abc");
    s_uint (&body, "offset", 0);
    s_str (&body, "data", "text");
    s_assert_refused (s_parse (ST_FILE_WRITE, &body), "'data'");
    char *big = (char *) calloc (1, ST_FILE_CHUNK_MAX + 1);
    for (size_t size = ST_FILE_CHUNK_MAX; size <= ST_FILE_CHUNK_MAX + 1; size++) {
        s_begin (&body, 3);
        s_str (&body, "id", "abc");
        s_uint (&body, "offset", 0);
        s_key (&body, "data");
        msgpack_pack_bin_with_body (&body.packer, big, size);
        request = s_parse (ST_FILE_WRITE, &body);
        if (size > ST_FILE_CHUNK_MAX)
            s_assert_refused (request, "'data'");
        else {
            assert_true (st_request_live (request));
            assert_int_equal (request->as.file_write.data.size, size);
            st_request_destroy (&request);
        }
    }
    free (big);
    s_begin (&body, 3);
    s_str (&body, "id", "abc");
    s_uint (&body, "offset", 0);
    s_uint (&body, "length", 0);
    s_assert_refused (s_parse (ST_FILE_READ, &body), "'length'");
}

static void
test_file_ref (void **state)
{
    s_body_t body;
    s_begin (&body, 2);
    s_str (&body, "room", "lobby");
    s_key (&body, "entry");
    msgpack_pack_map (&body.packer, 6);
    s_uint (&body, "seq", 1);
    s_str (&body, "kind", "message");
    s_str (&body, "user", "Alice");
    s_uint (&body, "ts", 1000);
    s_str (&body, "text", "");
    s_key (&body, "file");
    msgpack_pack_map (&body.packer, 4);
    s_str (&body, "id", "abc");
    s_str (&body, "name", "cat.png");
    s_uint (&body, "size", 3);
    s_str (&body, "type", "image/png");
    st_request_t *request = s_parse (ST_MSG_APPEND, &body);
    assert_true (st_request_live (request));
    const st_file_ref_t *file = &request->as.msg_append.entries [0].change.file;
    assert_int_equal (file->id.size, 3);
    assert_int_equal (file->size, 3);
    st_request_destroy (&request);
    s_begin (&body, 2);
    s_str (&body, "room", "lobby");
    s_key (&body, "entry");
    msgpack_pack_map (&body.packer, 6);
    s_uint (&body, "seq", 1);
    s_str (&body, "kind", "message");
    s_str (&body, "user", "Alice");
    s_uint (&body, "ts", 1000);
    s_str (&body, "text", "");
    s_str (&body, "file", "abc");
    s_assert_refused (s_parse (ST_MSG_APPEND, &body), "'file'");
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_types),
        cmocka_unit_test (test_not_a_map),
        cmocka_unit_test (test_user_create),
        cmocka_unit_test (test_name_bounds),
        cmocka_unit_test (test_nil_is_mistyped),
        cmocka_unit_test (test_text_without_nul),
        cmocka_unit_test (test_room_create),
        cmocka_unit_test (test_msg_append_runs),
        cmocka_unit_test (test_nonces),
        cmocka_unit_test (test_system_entry),
        cmocka_unit_test (test_timeline_changes),
        cmocka_unit_test (test_pm_append),
        cmocka_unit_test (test_pages),
        cmocka_unit_test (test_room_pages),
        cmocka_unit_test (test_user_seen),
        cmocka_unit_test (test_answer),
        cmocka_unit_test (test_names),
        cmocka_unit_test (test_files),
        cmocka_unit_test (test_file_ref)
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
