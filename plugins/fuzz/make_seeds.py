#!/usr/bin/env python3
"""Writes the seed corpus of the plugin fuzz targets: corpus/fuzz_<plugin>/.

Each seed is a script in the harness's input format (fuzz_plugin.c, README.md):
valid requests of every type a plugin serves, and for the plugins that call
the store, plausible store answers (proto/STORE.md) so that the reply
handlers start from shapes they accept. Run it again after changing the
seeds below; the fuzzer finds the rest. Needs only Python 3.
"""

import os
import struct
import sys

# ---------------------------------------------------------------------------
# A small msgpack encoder: maps, arrays, str, int, bool, nil

def mp(value):
    if value is None:
        return b"\xc0"
    if value is True:
        return b"\xc3"
    if value is False:
        return b"\xc2"
    if isinstance(value, int):
        if 0 <= value < 128:
            return bytes([value])
        if -32 <= value < 0:
            return struct.pack("b", value)
        if value >= 0:
            return b"\xcf" + struct.pack(">Q", value)
        return b"\xd3" + struct.pack(">q", value)
    if isinstance(value, bytes):
        if len(value) < 256:
            return b"\xc4" + bytes([len(value)]) + value
        return b"\xc6" + struct.pack(">I", len(value)) + value
    if isinstance(value, str):
        data = value.encode()
        if len(data) < 32:
            return bytes([0xa0 | len(data)]) + data
        if len(data) < 256:
            return b"\xd9" + bytes([len(data)]) + data
        return b"\xda" + struct.pack(">H", len(data)) + data
    if isinstance(value, (list, tuple)):
        head = bytes([0x90 | len(value)]) if len(value) < 16 else b"\xdc" + struct.pack(">H", len(value))
        return head + b"".join(mp(item) for item in value)
    if isinstance(value, dict):
        head = bytes([0x80 | len(value)]) if len(value) < 16 else b"\xde" + struct.pack(">H", len(value))
        return head + b"".join(mp(key) + mp(item) for key, item in value.items())
    raise TypeError(value)

# ---------------------------------------------------------------------------
# The harness's operations

USERS = ["alice", "bob", "carol", "dave", "Erin", "f.g-h_9", "mallory"]
EVENTS = {"bound": 0, "closed": 1, "reset": 2}      # + 1 = parley_session_event_t

def str8(text):
    data = text.encode()
    return bytes([len(data)]) + data

def bin16(data):
    return struct.pack("<H", len(data)) + data

def request(type_, body=None, user=None, session=1):
    """user: a name of USERS or None; session 0-7 (internal routes ignore both)"""
    flags = (USERS.index(user) + 1 if user else 0) | (session << 3)
    return b"\x00" + bytes([flags]) + str8(type_) + bin16(mp(body if body is not None else {}))

def answer(body=None, code="", message="", pick=0):
    return b"\x01" + bytes([pick]) + str8(code) + str8(message) + bin16(mp(body if body is not None else {}))

def timers(rounds=8):
    return b"\x02" + bytes([rounds - 1])

def session(event, sid=1, user="alice"):
    return b"\x03" + bytes([EVENTS[event], sid, USERS.index(user) + 1])

def batch_end():
    return b"\x04"

# ---------------------------------------------------------------------------
# Values

NOW = 1764000000000
HASH = "$argon2id$v=19$m=8,t=1,p=1$FJbgZZdsWm5sunCcWce3lw$1NwohQihWeivu32Fu/Yi5oSS2mEkPENzoYTklUW7VjU"
TOKEN = "NeXRORhV5AkrZyPMeeZR8WG7EfWn7z0vLmpTwA6Cr0k"
TOKEN_HASH = "ab" * 32
UPLOAD = "u" * 22
FILE_ID = "AAAAAAAAAAAAAAAAAAAAAA"

def room_map(name="general", private=False, members=1, last_seq=0, owner="alice"):
    return {"name": name, "description": "talk", "private": private, "max_participants": 50,
            "owner": owner, "created_at": NOW, "members": members, "last_seq": last_seq}

def entry(seq, kind="message", user="alice", text="hi"):
    value = {"seq": seq, "kind": kind, "user": user, "ts": NOW}
    if kind == "message":
        value["text"] = text
    else:
        value["event"] = "join"
    return value

def pm_entry(seq, sender="alice", to="bob", text="hi"):
    return {"seq": seq, "from": sender, "to": to, "text": text, "ts": NOW}

# Protocol 1.1 timeline changes (STORE.md schema 9): a message as it is now,
# and the edit, delete and reaction entries, as the stores answer them
NOW_STATE = {"edited": NOW, "reply_to": 1,
             "reactions": [{"emoji": "+1", "count": 21, "users": ["bob", "carol"]}]}

def changes(seq, target=1, **more):
    return [dict(more, seq=seq, kind="edit", target=target, text="new", ts=NOW),
            dict(more, seq=seq + 1, kind="reaction", target=target, emoji="+1", on=True, ts=NOW),
            dict(more, seq=seq + 2, kind="delete", target=target, ts=NOW)]

# ---------------------------------------------------------------------------
# The seeds, per plugin

SEEDS = {
    "example": {
        "echo": request("example.echo", {"text": "hi", "n": [1, 2]}, user="alice"),
        "echo-anonymous": request("example.echo", {"text": "hi"}),
        "unknown": request("example.nope", {}, user="bob"),
    },
    "auth": {
        "register": request("auth.register", {"username": "Alice", "password": "correct horse"})
            + answer(code="not_found", message="No such user.") + timers()
            + answer({"name": "Alice", "created_at": NOW}, pick=1)
            + answer({"user": "Alice"}, pick=1) + session("bound", 1, "alice"),
        "login": request("auth.login", {"username": "alice", "password": "correct horse"}, session=2)
            + answer({"name": "Alice", "password_hash": HASH, "created_at": NOW, "last_seen": None})
            + timers() + answer({"user": "Alice"}, pick=1),
        "login-wrong": request("auth.login", {"username": "alice", "password": "wrong horse"})
            + answer({"name": "Alice", "password_hash": HASH, "created_at": NOW, "last_seen": None})
            + timers(),
        "resume": request("auth.resume", {"token": TOKEN}, session=3)
            + answer({"token_hash": TOKEN_HASH, "user": "Alice", "created_at": NOW,
                      "expires_at": NOW + 10 ** 12}),
        "logout": request("auth.resume", {"token": TOKEN}, session=3)
            + answer({"token_hash": TOKEN_HASH, "user": "Alice", "created_at": NOW,
                      "expires_at": NOW + 10 ** 12})
            + session("bound", 3, "alice") + request("auth.logout", {}, user="alice", session=3)
            + answer({"user": "Alice"}),
        "sessions": session("bound", 1, "alice") + session("closed", 1, "alice")
            + session("reset") + timers(),
        "unknown": request("auth.nope", {}),
        "password": session("bound", 1, "alice")
            + request("auth.password", {"password": "correct horse",
                                        "new_password": "a brand new secret"}, user="alice")
            + answer({"name": "Alice", "password_hash": HASH, "created_at": NOW, "last_seen": None})
            + timers() + timers() + answer({"user": "Alice"}, pick=1)
            + answer({"name": "Alice", "tokens": 2}, pick=1),
        "password-weak": request("auth.password", {"password": "correct horse",
                                                   "new_password": "12345678"}, user="alice"),
        "check": request("auth.check", {"token": TOKEN}, session=0)
            + answer({"token_hash": TOKEN_HASH, "user": "Alice", "created_at": NOW,
                      "expires_at": NOW + 10 ** 12}),
    },
    # Schema version 13: an upload in pieces (auth.check, store.file.create,
    # .write, .commit answered), a download, an abort
    "files": {
        "upload": request("files.upload", {"upload": UPLOAD, "offset": 0, "data": b"", "last": False,
                                           "token": TOKEN, "name": "cat.png", "type": "image/png",
                                           "size": 6}, session=0)
            + answer({"user": "Alice"})
            + answer({"file": {"id": FILE_ID, "name": "cat.png", "size": 6, "type": "image/png"}})
            + request("files.upload", {"upload": UPLOAD, "offset": 0, "data": b"abc",
                                       "last": False}, session=0)
            + answer({"written": 3})
            + request("files.upload", {"upload": UPLOAD, "offset": 3, "data": b"def",
                                       "last": True}, session=0)
            + answer({"written": 6})
            + answer({"file": {"id": FILE_ID, "name": "cat.png", "size": 6, "type": "image/png"}}),
        "refused": request("files.upload", {"upload": UPLOAD, "offset": 0, "data": b"", "last": True,
                                            "token": TOKEN, "name": "a/b", "type": "x",
                                            "size": 0}, session=0)
            + request("files.upload", {"upload": UPLOAD, "offset": 0, "data": b"", "last": False,
                                       "token": TOKEN, "name": "big", "type": "x",
                                       "size": 10 ** 12}, session=0)
            + request("files.upload", {"upload": UPLOAD, "offset": 0, "data": b"", "last": False,
                                       "token": TOKEN, "name": "q", "type": "x", "size": 5},
                      session=0)
            + answer(code="invalid_token", message="no"),
        "get": request("files.get", {"file": FILE_ID, "offset": 0, "length": 65536}, session=0)
            + answer({"name": "cat.png", "type": "image/png", "size": 6, "data": b"abcdef"}),
        "abort": request("files.upload", {"upload": UPLOAD, "offset": 0, "data": b"", "last": False,
                                          "token": TOKEN, "name": "n", "type": "t", "size": 4},
                         session=0)
            + request("files.abort", {"upload": UPLOAD}, session=0) + answer({"user": "bob"})
            + timers(),
        "unknown": request("files.nope", {}, session=0),
    },
    "presence": {
        "list": session("bound", 1, "alice") + session("bound", 2, "bob") + timers()
            + request("presence.list", {}, user="alice")
            + answer({"users": [{"name": "alice", "created_at": NOW, "last_seen": None},
                                {"name": "bob", "created_at": NOW, "last_seen": NOW}],
                      "more": False}),
        "seen": session("bound", 1, "alice") + session("closed", 1, "alice") + timers()
            + answer({"updated": 1}),
        "reset": session("bound", 1, "alice") + session("reset") + session("bound", 1, "alice")
            + timers(),
        "unknown": request("presence.nope", {}, user="alice"),
        "page": session("bound", 1, "alice") + request("presence.list", {"cursor": "alice"},
                                                       user="alice")
            + answer({"users": [{"name": "bob", "created_at": NOW, "last_seen": NOW}],
                      "more": True}),
    },
    "rooms": {
        "create": request("room.create", {"room": "general", "description": "talk"}, user="alice")
            + answer({"room": room_map()}),
        "create-taken": request("room.create", {"room": "General"}, user="bob")
            + answer(code="conflict", message="A room with this name exists."),
        "join": request("room.join", {"room": "general"}, user="bob")
            + answer({"room": room_map(last_seq=2)}) + answer({"members": ["alice"]})
            + answer({"added": True, "members": 2, "room": room_map(members=2, last_seq=3)})
            + answer({"messages": [entry(1), entry(2, "system"), entry(3, "system", "bob")],
                      "more": False}),
        "send": request("msg.send", {"room": "general", "text": "hi @bob"}, user="alice")
            + answer({"room": room_map(members=2, last_seq=3)})
            + answer({"members": ["alice", "bob"]}) + answer({"seq": 4}),
        "history": request("room.history", {"room": "general", "limit": 10}, user="alice")
            + answer({"room": room_map(members=2, last_seq=3)})
            + answer({"members": ["alice", "bob"]})
            + answer({"messages": [entry(1), entry(2, "system"), entry(3)], "more": False}),
        "list": request("room.list", {}, user="alice")
            + answer({"rooms": [dict(room_map(), joined=True)], "more": False})
            + answer({"rooms": [dict(room_map("random", owner="bob"), joined=False)],
                      "more": False}),
        "leave": request("room.leave", {"room": "general"}, user="bob")
            + answer({"room": room_map(members=2, last_seq=3)})
            + answer({"members": ["alice", "bob"]}) + answer({"members": 1}),
        "invite": request("room.invite", {"room": "secret", "user": "carol"}, user="alice")
            + answer({"room": room_map("secret", private=True)}) + answer({"members": ["alice"]})
            + answer({"user": "carol", "already_member": False}),
        "members": request("room.members", {"room": "general"}, user="alice")
            + answer({"room": room_map(members=2)}) + answer({"members": ["alice", "bob"]}),
        "delete": request("room.delete", {"room": "general"}, user="alice")
            + answer({"room": room_map(members=2)}) + answer({"members": ["alice", "bob"]})
            + answer({"name": "general", "members": ["alice", "bob"]}),
        "sessions": session("bound", 1, "alice") + session("bound", 2, "bob")
            + session("closed", 2, "bob") + session("reset") + timers(),
        "unknown": request("room.nope", {"room": "general"}, user="alice"),
        # Protocol 1.1 (PROTOCOL.md): served once the rooms plugin has them
        "directory": request("room.directory", {"query": "gen", "limit": 10}, user="alice")
            + answer({"rooms": [dict(room_map(), joined=True)], "more": True}),
        "read": request("room.read", {"room": "general", "seq": 3}, user="alice")
            + answer({"room": room_map(members=2, last_seq=3)})
            + answer({"members": ["alice", "bob"]}) + answer({"read_seq": 3, "moved": True}),
        "edit": request("msg.edit", {"room": "general", "seq": 1, "text": "new"}, user="alice")
            + answer({"room": room_map(members=2, last_seq=3)})
            + answer({"members": ["alice", "bob"]}) + answer({"seq": 4}),
        "delete-message": request("msg.delete", {"room": "general", "seq": 1}, user="alice")
            + answer({"room": room_map(members=2, last_seq=3)})
            + answer({"members": ["alice", "bob"]})
            + request("msg.delete", {"room": "general", "seq": 2}, user="bob")
            + answer({"refused": [{"index": 1, "code": "forbidden"}]}) + answer({"seq": 4}),
        "react": request("msg.react", {"room": "general", "seq": 1, "emoji": "+1", "on": True},
                         user="bob")
            + answer({"room": room_map(members=2, last_seq=3)})
            + answer({"members": ["alice", "bob"]})
            + answer({"refused": [{"index": 0, "code": "unchanged"}]})
            + request("msg.react", {"room": "general", "seq": 1, "emoji": "\u2764", "on": False},
                      user="alice")
            + answer({"refused": [{"index": 0, "code": "too_many_reactions"}]}),
        "send-reply": request("msg.send", {"room": "general", "text": "yes", "reply_to": 1,
                                           "nonce": "n-1"}, user="bob")
            + answer({"room": room_map(members=2, last_seq=3)})
            + answer({"members": ["alice", "bob"]})
            + request("msg.edit", {"room": "general", "seq": 9, "text": "x"}, user="alice")
            + answer({"refused": [{"index": 1, "code": "no_such_message"}],
                      "duplicates": [{"index": 0, "seq": 2, "ts": NOW}]}),
        "history-now": request("room.history", {"room": "general", "after": 0}, user="alice")
            + answer({"room": room_map(members=2, last_seq=6)})
            + answer({"members": ["alice", "bob"]})
            + answer({"messages": [dict(entry(1), **NOW_STATE), dict(entry(2), deleted=True, text=""),
                                   *[dict(change, user="bob") for change in changes(3)]],
                      "more": False}),
        "page": request("room.members", {"room": "general", "cursor": "bob"}, user="alice")
            + request("room.list", {"cursor": "general"}, user="alice"),
        # Room administration (PROTOCOL.md 1.1): the owner's update, kick (a
        # member; a non-member banned after its look-up) and unban
        "update": request("room.update", {"room": "general", "description": "new",
                                          "private": True, "max_participants": 2}, user="alice")
            + answer({"room": room_map(members=2, last_seq=3)})
            + answer({"members": ["alice", "bob"]})
            + answer({"room": dict(room_map(private=True, members=2, last_seq=4),
                                   max_participants=2)}),
        "kick": request("room.kick", {"room": "general", "user": "bob", "ban": True}, user="alice")
            + answer({"room": room_map(members=2, last_seq=3)})
            + answer({"members": ["alice", "bob"]}) + answer({"members": 1, "removed": True})
            + request("room.kick", {"room": "general", "user": "carol", "ban": True}, user="alice")
            + answer({"name": "carol", "password_hash": HASH, "created_at": NOW,
                      "last_seen": None})
            + answer({"members": 1, "removed": False})
            + request("room.kick", {"room": "general", "user": "alice"}, user="bob"),
        "unban": request("room.unban", {"room": "general", "user": "bob"}, user="alice")
            + answer({"room": room_map(members=2, last_seq=3)})
            + answer({"members": ["alice", "bob"]}) + answer({"unbanned": True}),
        # A client's typing with a room, as the gateway names it: the first
        # waits for the load, the next are answered at once (one throttled)
        "typing": request("msg.typing", {"room": "general"}, user="alice")
            + answer({"room": room_map(members=2, last_seq=3)})
            + answer({"members": ["alice", "bob"]})
            + request("msg.typing", {"room": "General"}, user="alice")
            + request("msg.typing", {"room": "general"}, user="bob")
            + request("msg.typing", {"room": "general"}, user="carol")
            + request("msg.send", {"room": "general", "text": "hi"}, user="alice")
            + request("msg.typing", {"room": "general"}, user="bob") + answer({"seq": 4}),
        "typing-both": request("msg.typing", {"room": "general", "to": "bob"}, user="alice")
            + request("msg.typing", {}, user="alice"),
    },
    "pm": {
        "send": request("pm.send", {"to": "bob", "text": "hi"}, user="alice")
            + answer({"last_seq": 4}) + answer({"seq": 5, "from": "alice", "to": "bob"}),
        "history": request("pm.history", {"with": "bob", "limit": 10}, user="alice")
            + answer({"name": "bob", "password_hash": HASH, "created_at": NOW, "last_seen": None})
            + answer({"messages": [pm_entry(1), pm_entry(2, "bob", "alice")], "more": False}),
        "read": request("pm.read", {"with": "bob", "seq": 2}, user="alice")
            + answer({"name": "bob", "password_hash": HASH, "created_at": NOW, "last_seen": None})
            + answer({"last_seq": 2}) + answer({"unread": 0}),
        "conversations": request("pm.conversations", {}, user="alice")
            + answer({"conversations": [{"with": "bob", "last": pm_entry(2, "bob", "alice"),
                                         "unread": 1}]}),
        "unknown": request("pm.nope", {}, user="alice"),
        # Protocol 1.1: a nonce, repeated (the store finds it), and looked up
        # before a rate refusal
        "send-nonce": request("pm.send", {"to": "bob", "text": "hi", "nonce": "n-1"}, user="alice")
            + answer({"last_seq": 4}) + answer({"duplicates": [{"index": 0, "seq": 2, "ts": NOW}]})
            + request("pm.send", {"to": "bob", "text": "hi", "nonce": "n-1"}, user="alice")
            + request("pm.send", {"to": "bob", "text": "hi", "nonce": "n-2"}, user="alice")
            + answer({"seq": 5, "from": "alice", "to": "bob"})
            + answer({"duplicate": True, "seq": 3, "ts": NOW}),
        # A client's typing with 'to', as the gateway names it: the first asks
        # the store for the user, the next are answered at once (one throttled)
        "typing": request("pm.typing", {"to": "Bob"}, user="alice")
            + answer({"name": "bob", "password_hash": HASH, "created_at": NOW, "last_seen": None})
            + request("pm.typing", {"to": "bob"}, user="alice")
            + request("pm.typing", {"to": "carol"}, user="alice")
            + answer(code="not_found", message="No such user."),
        "typing-bad": request("pm.typing", {"to": "alice"}, user="alice")
            + request("pm.typing", {"to": "bob", "room": "general"}, user="alice")
            + request("pm.typing", {}, user="alice"),
        # Protocol 1.1: replies, edits, deletions and reactions, and what the
        # store refuses of a run
        "edit": request("pm.edit", {"with": "bob", "seq": 1, "text": "new"}, user="alice")
            + answer({"last_seq": 4}) + answer({"seq": 5, "from": "alice", "to": "bob"}),
        "delete": request("pm.delete", {"with": "alice", "seq": 1}, user="bob")
            + answer({"last_seq": 4})
            + request("pm.delete", {"with": "bob", "seq": 2}, user="alice")
            + answer({"refused": [{"index": 0, "code": "forbidden"}]})
            + answer({"seq": 5, "from": "alice", "to": "bob"}),
        "react": request("pm.react", {"with": "bob", "seq": 1, "emoji": "+1"}, user="alice")
            + answer({"last_seq": 4}) + answer({"refused": [{"index": 0, "code": "unchanged"}]})
            + request("pm.react", {"with": "bob", "seq": 1, "emoji": "x", "on": False},
                      user="alice")
            + answer({"refused": [{"index": 0, "code": "too_many_reactions"}]}),
        "send-reply": request("pm.send", {"to": "bob", "text": "yes", "reply_to": 3}, user="alice")
            + answer({"last_seq": 4})
            + request("pm.edit", {"with": "alice", "seq": 3, "text": "x"}, user="bob")
            + answer({"refused": [{"index": 0, "code": "no_such_message"},
                                  {"index": 1, "code": "forbidden"}]}),
        "history-now": request("pm.history", {"with": "bob", "after": 0}, user="alice")
            + answer({"name": "bob", "password_hash": HASH, "created_at": NOW, "last_seen": None})
            + answer({"messages": [dict(pm_entry(1), kind="message", **NOW_STATE),
                                   dict(pm_entry(2), kind="message", deleted=True, text=""),
                                   *[dict(change, **{"from": "bob", "to": "alice"})
                                     for change in changes(3)]], "more": False}),
        "conversations-now": request("pm.conversations", {}, user="alice")
            + answer({"conversations": [{"with": "bob", "unread": 0, "read_seq": 2, "last_seq": 7,
                                         "last": dict(pm_entry(2), kind="message", **NOW_STATE)}],
                      "more": False}),
    },
    # Protocol 1.1 search: the query split into words, the store's results
    # (a room's entry and a conversation's) as history gives them, next,
    # and each refusal the store may answer
    "search": {
        "rooms-and-pm": request("search", {"query": "Café* ÉCOLE", "limit": 5}, user="alice")
            + answer({"results": [{"room": "general", "entry": dict(entry(3), **NOW_STATE)},
                                  {"from": "bob", "to": "alice", "entry": pm_entry(2, "bob", "alice")}],
                      "next": "123456"}),
        "filters": request("search", {"query": "hi", "room": "general", "cursor": "99"}, user="alice")
            + answer(code="not_member", message="Not a member.")
            + request("search", {"query": "hi", "with": "bob"}, user="alice")
            + answer(code="not_found", message="No user.")
            + request("search", {"query": "hi", "room": "nowhere"}, user="alice")
            + answer(code="not_found", message="No room.")
            + request("search", {"query": "hi"}, user="alice")
            + answer(code="unavailable", message="Down."),
        "bad": request("search", {"query": ""}, user="alice")
            + request("search", {"query": "!!! ***"}, user="alice")
            + request("search", {"query": " ".join(["w"] * 17)}, user="alice")
            + request("search", {"query": "hi", "limit": 0}, user="alice")
            + request("search", {"query": "hi", "room": "a", "with": "b"}, user="alice")
            + request("search", {"query": "hi"})
            + request("searches", {"query": "hi"}, user="alice"),
        "long-words": request("search", {"query": "x" * 70 + "* 東京タワー*"}, user="alice")
            + answer({"results": []}),
    },
}

STORE = {
    "info": request("store.info"),
    "user": request("store.user.create", {"name": "Alice", "password_hash": HASH, "created_at": NOW})
        + request("store.user.get", {"name": "alice"})
        + request("store.user.list", {"after": "a", "limit": 10})
        + request("store.user.seen", {"users": [{"name": "alice", "last_seen": NOW}]}) + batch_end(),
    "token": request("store.user.create", {"name": "Alice", "password_hash": HASH, "created_at": NOW})
        + request("store.token.put", {"token_hash": TOKEN_HASH, "user": "alice", "created_at": NOW,
                                      "expires_at": NOW + 1000})
        + request("store.token.get", {"token_hash": TOKEN_HASH})
        + request("store.token.delete", {"token_hash": TOKEN_HASH})
        + request("store.token.delete_user", {"user": "alice"})
        + request("store.token.purge", {"before": NOW}) + batch_end(),
    "rooms": request("store.user.create", {"name": "alice", "password_hash": HASH, "created_at": NOW})
        + request("store.user.create", {"name": "bob", "password_hash": HASH, "created_at": NOW})
        + request("store.room.create", {"name": "general", "description": "talk", "private": False,
                                        "max_participants": 50, "owner": "alice", "created_at": NOW})
        + batch_end()
        + request("store.member.add", {"room": "general", "user": "bob",
                                       "entry": {"seq": 1, "kind": "system", "user": "bob",
                                                 "ts": NOW, "event": "join"}})
        + request("store.invite.add", {"room": "general", "user": "bob", "from": "alice"})
        + request("store.msg.append", {"room": "general", "entry": entry(2, user="bob")})
        + request("store.msg.append", {"room": "general", "entries": [entry(3), entry(4)]})
        + request("store.msg.history", {"room": "general", "before": 4, "limit": 2})
        + request("store.room.get", {"name": "GENERAL"})
        + request("store.room.list", {"user": "bob"})
        + request("store.room.joined", {"user": "bob", "after": "a", "limit": 10})
        + request("store.room.public", {"user": "carol", "limit": 10})
        + request("store.room.public", {"user": "carol", "after_active": NOW, "after": "general"})
        + request("store.room.directory", {"user": "carol", "prefix": "gen", "limit": 10})
        + request("store.member.list", {"room": "general"})
        + request("store.msg.append", {"room": "general", "entry": dict(
            entry(5), mentions=["bob", "ghost"])})
        + request("store.member.read", {"room": "general", "user": "bob", "seq": 3})
        + request("store.msg.history", {"room": "general", "user": "bob"})
        + request("store.room.invited", {"user": "carol", "limit": 10})
        + request("store.member.remove", {"room": "general", "user": "bob"})
        + request("store.room.delete", {"name": "general"}) + batch_end(),
    "pm": request("store.user.create", {"name": "alice", "password_hash": HASH, "created_at": NOW})
        + request("store.user.create", {"name": "bob", "password_hash": HASH, "created_at": NOW})
        + batch_end()
        + request("store.pm.append", {"from": "alice", "to": "bob", "seq": 1, "text": "hi", "ts": NOW})
        + request("store.pm.append", {"from": "bob", "to": "alice", "messages": [
            {"from": "bob", "seq": 2, "text": "yo", "ts": NOW},
            {"from": "alice", "seq": 3, "text": "ok", "ts": NOW}]})
        + request("store.pm.last_seq", {"user": "alice", "with": "bob"})
        + request("store.pm.history", {"user": "alice", "with": "bob", "after": 1, "limit": 5})
        + request("store.pm.conversations", {"user": "bob", "limit": 10})
        + request("store.pm.read", {"user": "bob", "with": "alice", "seq": 3}) + batch_end(),
    # Schema version 6: nonces kept with the entries, repeats found, looked up
    "nonce": request("store.user.create", {"name": "alice", "password_hash": HASH, "created_at": NOW})
        + request("store.user.create", {"name": "bob", "password_hash": HASH, "created_at": NOW})
        + request("store.room.create", {"name": "general", "description": "", "private": False,
                                        "max_participants": 50, "owner": "alice", "created_at": NOW})
        + batch_end()
        + request("store.msg.append", {"room": "general", "entries": [
            dict(entry(1), nonce="n-1"), dict(entry(2), nonce="n-2")]})
        + request("store.msg.append", {"room": "general", "entry": dict(entry(3), nonce="n-1")})
        + request("store.msg.nonce", {"room": "general", "user": "alice", "nonce": "n-2"})
        + request("store.msg.history", {"room": "general", "limit": 5})
        + request("store.pm.append", {"from": "alice", "to": "bob", "seq": 1, "text": "hi",
                                      "ts": NOW, "nonce": "p-1"})
        + request("store.pm.append", {"from": "bob", "to": "alice", "messages": [
            {"from": "alice", "seq": 2, "text": "again", "ts": NOW, "nonce": "p-1"}]})
        + request("store.pm.nonce", {"from": "alice", "to": "bob", "nonce": "p-1"})
        + request("store.pm.history", {"user": "alice", "with": "bob", "limit": 5}) + batch_end(),
    # Schema version 9: timeline changes checked and applied inside the
    # append, refused runs, history as it is now, the pm side
    "timeline": request("store.user.create", {"name": "alice", "password_hash": HASH, "created_at": NOW})
        + request("store.user.create", {"name": "bob", "password_hash": HASH, "created_at": NOW})
        + request("store.room.create", {"name": "general", "description": "", "private": False,
                                        "max_participants": 50, "owner": "alice", "created_at": NOW})
        + batch_end()
        + request("store.msg.append", {"room": "general", "entries": [
            entry(1), dict(entry(2, user="bob"), reply_to=1),
            {"seq": 3, "kind": "edit", "user": "alice", "ts": NOW, "target": 1, "text": "new"},
            {"seq": 4, "kind": "reaction", "user": "bob", "ts": NOW, "target": 1, "emoji": "+1",
             "on": True},
            {"seq": 5, "kind": "system", "user": "bob", "ts": NOW, "event": "kick", "by": "alice"},
            {"seq": 6, "kind": "system", "user": "alice", "ts": NOW, "event": "update"}]})
        + request("store.msg.append", {"room": "general", "entries": [
            {"seq": 7, "kind": "edit", "user": "bob", "ts": NOW, "target": 1, "text": "mine"},
            {"seq": 8, "kind": "reaction", "user": "bob", "ts": NOW, "target": 1, "emoji": "+1",
             "on": True},
            {"seq": 9, "kind": "delete", "user": "bob", "ts": NOW, "target": 99}]})
        + request("store.msg.append", {"room": "general", "entry":
            {"seq": 7, "kind": "delete", "user": "alice", "ts": NOW, "target": 2}})
        + request("store.msg.history", {"room": "general", "before": 8, "limit": 5})
        + request("store.msg.history", {"room": "general", "after": 0, "limit": 3})
        + request("store.room.joined", {"user": "bob"})
        + request("store.pm.append", {"from": "alice", "to": "bob", "seq": 1, "text": "hi", "ts": NOW})
        + request("store.pm.append", {"from": "bob", "to": "alice", "messages": [
            {"from": "bob", "seq": 2, "text": "yo", "ts": NOW, "reply_to": 1},
            {"from": "alice", "seq": 3, "kind": "edit", "target": 1, "text": "hey", "ts": NOW},
            {"from": "bob", "seq": 4, "kind": "reaction", "target": 1, "emoji": "ok", "on": True,
             "ts": NOW},
            {"from": "bob", "seq": 5, "kind": "delete", "target": 2, "ts": NOW}]})
        + request("store.pm.append", {"from": "bob", "to": "alice", "seq": 6, "kind": "delete",
                                      "target": 1, "ts": NOW})
        + request("store.pm.history", {"user": "alice", "with": "bob", "limit": 10})
        + request("store.pm.conversations", {"user": "alice"}) + batch_end(),
    # Schema version 10: room administration
    "admin": request("store.user.create", {"name": "alice", "password_hash": HASH, "created_at": NOW})
        + request("store.user.create", {"name": "bob", "password_hash": HASH, "created_at": NOW})
        + request("store.room.create", {"name": "general", "description": "", "private": False,
                                        "max_participants": 50, "owner": "alice", "created_at": NOW})
        + batch_end()
        + request("store.member.add", {"room": "general", "user": "bob", "entry": entry(1, "system", "bob")})
        + request("store.room.update", {"name": "general", "description": "new", "private": True,
                                        "max_participants": 2, "entry": dict(
            entry(2, "system"), event="update")})
        + request("store.member.remove", {"room": "general", "user": "bob", "ban": True,
                                          "entry": dict(entry(3, "system", "bob"), event="kick",
                                                        by="alice")})
        + request("store.member.add", {"room": "general", "user": "bob"})
        + request("store.invite.add", {"room": "general", "user": "bob", "from": "alice"})
        + request("store.msg.history", {"room": "general", "limit": 5})
        + request("store.room.unban", {"room": "general", "user": "bob"}) + batch_end(),
    # Schema version 13: files, references from messages, the sweep
    "files": request("store.user.create", {"name": "alice", "password_hash": HASH, "created_at": NOW})
        + request("store.room.create", {"name": "general", "description": "", "private": False,
                                        "max_participants": 50, "owner": "alice", "created_at": NOW})
        + request("store.file.create", {"id": FILE_ID, "user": "alice", "name": "a.txt",
                                        "type": "text/plain", "size": 6, "ts": NOW, "quota": 100})
        + batch_end()
        + request("store.file.write", {"id": FILE_ID, "offset": 0, "data": b"abc"})
        + request("store.file.write", {"id": FILE_ID, "offset": 3, "data": b"def"})
        + request("store.file.commit", {"id": FILE_ID})
        + request("store.file.get", {"id": FILE_ID})
        + request("store.file.read", {"id": FILE_ID, "offset": 2, "length": 3})
        + request("store.msg.append", {"room": "general", "entries": [
            dict(entry(1), file={"id": FILE_ID, "name": "a.txt", "size": 6, "type": "text/plain"}),
            {"seq": 2, "kind": "delete", "user": "alice", "ts": NOW, "target": 1}]})
        + request("store.file.sweep", {"before": NOW + 1})
        + request("store.room.delete", {"name": "general"}) + batch_end(),
    "unknown": request("store.nope"),
    "not-a-map": b"\x00\x00" + str8("store.user.get") + bin16(mp(["name"])),
}
# store.search (schema 12): both stores serve it
SEEDS["store-sqlite"] = dict(STORE, search=request("store.user.create", {
        "name": "alice", "password_hash": HASH, "created_at": NOW})
    + request("store.room.create", {"name": "general", "description": "", "private": False,
                                    "max_participants": 50, "owner": "alice", "created_at": NOW})
    + request("store.msg.append", {"room": "general", "entry": dict(entry(1), text="Café au lait")})
    + request("store.search", {"user": "alice", "words": ["cafe", "au*"], "limit": 5})
    + request("store.search", {"user": "alice", "words": ["lait"], "room": "general", "limit": 1,
                               "cursor": "999999999999"})
    + request("store.search", {"user": "alice", "words": ["x"], "with": "bob", "limit": 100})
    + request("store.search", {"user": "alice", "words": ["Bad"], "limit": 5}) + batch_end())
SEEDS["store-mongo"] = SEEDS["store-sqlite"]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    for plugin, seeds in SEEDS.items():
        folder = os.path.join(here, "corpus", "fuzz_" + plugin.replace("-", "_"))
        os.makedirs(folder, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(folder, name + ".bin"), "wb") as seed:
                seed.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
