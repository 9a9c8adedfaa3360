// Rooms (PROTOCOL.md, "Rooms"; proto/CLIENT-PROTOCOL.md, "Rooms"): every row
// of the Rooms table, its success and each of its error codes, the notices
// word for word, the lifecycle events, history cursors, and rooms that
// survive a restart with seq going on where it stopped. Real WebSockets
// through the gateway, the broker, the rooms plugin, auth and the SQLite store.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, sleep } from '../lib/harness.js';
import {
    startRoomsParley, connectUser, ok, fails, ISO_MS, nextEntry, recordRoomEvents,
} from '../lib/rooms.js';
import { chatSuite, acrossRestart } from '../lib/chat.js';

const suite = chatSuite('rooms');
const { connect, clients } = suite;

// A system entry of the room with the given event, as a member session gets it
const systemEntry = (client, room, event, user) =>
    nextEntry(client, room, (e) => e.type === 'system' && e.event === event
                                    && (!user || e.user === user));

test('room.create answers the room with the defaults, the creator owns it and is its first member', async () => {
    const alice = await connect('cr_alice');
    const { room } = await ok(alice, { type: 'room.create', room: 'cr-general' });
    assert.equal(room.name, 'cr-general');
    assert.equal(room.description, '');
    assert.equal(room.private, false);
    assert.equal(room.max_participants, 50);
    assert.equal(room.owner, 'cr_alice');
    assert.match(room.created_at, ISO_MS);
    assert.equal(room.members, 1);
    const { members } = await ok(alice, { type: 'room.members', room: 'cr-general' });
    assert.deepEqual(members, [{ user: 'cr_alice', online: true }]);

    const full = await ok(alice, { type: 'room.create', room: 'Cr_Every-Field', description: 'All fields é',
                                   private: true, max_participants: 10000 });
    assert.deepEqual({ ...full.room, created_at: 'x' }, {
        name: 'Cr_Every-Field', description: 'All fields é', private: true,
        max_participants: 10000, owner: 'cr_alice', created_at: 'x', members: 1 });
    await ok(alice, { type: 'room.create', room: 'x'.repeat(64), description: 'd'.repeat(500),
                      max_participants: 2 });
});

test('room.create refuses bad names (invalid_room), taken names in any case (room_exists) and bad fields (bad_request)', async () => {
    const alice = await connect('ce_alice');
    for (const room of ['', 'a b', 'x'.repeat(65), 'café', 'semi;colon', 'dot.ted'])
        await fails(alice, { type: 'room.create', room }, 'invalid_room');
    await ok(alice, { type: 'room.create', room: 'ce-Taken' });
    await fails(alice, { type: 'room.create', room: 'ce-taken' }, 'room_exists');
    await fails(alice, { type: 'room.create', room: 'CE-TAKEN', private: true }, 'room_exists');
    const bad = [
        { room: 'ce-bad' , description: 'd'.repeat(501) },
        { room: 'ce-bad', description: 5 },
        { room: 'ce-bad', private: 'yes' },
        { room: 'ce-bad', max_participants: 1 },
        { room: 'ce-bad', max_participants: 10001 },
        { room: 'ce-bad', max_participants: '50' },
        { room: 'ce-bad', max_participants: 2.5 },
        { room: 'ce-bad', max_participants: -3 },
        { room: 42 },
        {},
    ];
    for (const fields of bad)
        await fails(alice, { type: 'room.create', ...fields }, 'bad_request');
    // Nothing of it was created
    await fails(alice, { type: 'room.join', room: 'ce-bad' }, 'no_such_room');
});

test('room.create of a public room tells every authenticated session; of a private room only its members', async () => {
    const alice = await connect('lc_alice');
    const bob = await connect('lc_bob');
    const bobTab = await connect('lc_bob');
    const anonymous = await Client.connect(suite.server.url);
    clients.push(anonymous);
    const anonymousLog = recordRoomEvents(anonymous);
    const bobLog = recordRoomEvents(bob);

    const aliceSees = alice.nextEvent((e) => e.type === 'system' && e.event === 'create'
                                             && e.room?.name === 'lc-public');
    const { room } = await ok(alice, { type: 'room.create', room: 'lc-public', description: 'hello' });
    for (const client of [bob, bobTab]) {
        const event = await client.nextEvent((e) => e.type === 'system' && e.event === 'create'
                                                    && e.room?.name === 'lc-public');
        assert.equal(event.message, 'lc_alice has created the room lc-public.');
        assert.equal(event.user, 'lc_alice');
        assert.match(event.ts, ISO_MS);
        assert.deepEqual(event.room, room);
        assert.equal(event.seq, undefined);
    }
    assert.equal((await aliceSees).message, 'lc_alice has created the room lc-public.');

    const aliceSeesPrivate = alice.nextEvent((e) => e.type === 'system' && e.event === 'create'
                                                    && e.room?.name === 'lc-secret');
    await ok(alice, { type: 'room.create', room: 'lc-secret', private: true });
    assert.equal((await aliceSeesPrivate).message, 'lc_alice has created the room lc-secret.');
    // A public room created after it reaches bob, and the private one never did
    await ok(alice, { type: 'room.create', room: 'lc-after' });
    await bob.nextEvent((e) => e.type === 'system' && e.event === 'create' && e.room?.name === 'lc-after');
    assert.equal(bobLog.filter((e) => e.room?.name === 'lc-secret').length, 0);
    assert.equal(anonymousLog.length, 0, 'an unauthenticated session gets no room events');
});

test('room.list shows every public room and the private rooms one belongs to, with joined', async () => {
    const alice = await connect('ls_alice');
    const bob = await connect('ls_bob');
    await ok(alice, { type: 'room.create', room: 'ls-open', description: 'open room' });
    await ok(alice, { type: 'room.create', room: 'ls-hidden', private: true });
    await ok(bob, { type: 'room.create', room: 'ls-bobs', private: true });

    const byName = (rooms) => Object.fromEntries(rooms.map((room) => [room.name, room]));
    const aliceRooms = byName((await ok(alice, { type: 'room.list' })).rooms);
    assert.equal(aliceRooms['ls-open'].joined, true);
    assert.equal(aliceRooms['ls-open'].description, 'open room');
    assert.equal(aliceRooms['ls-open'].members, 1);
    assert.equal(aliceRooms['ls-open'].owner, 'ls_alice');
    assert.match(aliceRooms['ls-open'].created_at, ISO_MS);
    assert.equal(aliceRooms['ls-hidden'].joined, true);
    assert.equal(aliceRooms['ls-hidden'].private, true);
    assert.equal(aliceRooms['ls-bobs'], undefined);

    // 1.1: the rooms one belongs to first, by name, then the other public
    // rooms (their order is 23-rooms-limits' to check)
    const bobList = (await ok(bob, { type: 'room.list' })).rooms;
    const joined = bobList.filter((room) => room.joined).map((room) => room.name);
    assert.deepEqual(bobList.slice(0, joined.length).map((room) => room.name), joined);
    assert.deepEqual(joined, [...joined].sort((a, b) => a.toLowerCase() < b.toLowerCase() ? -1 : 1));
    const bobRooms = byName(bobList);
    assert.equal(bobRooms['ls-open'].joined, false);
    assert.equal(bobRooms['ls-hidden'], undefined);
    assert.equal(bobRooms['ls-bobs'].joined, true);

    // Member counts are live
    await ok(bob, { type: 'room.join', room: 'ls-open' });
    const after = byName((await ok(alice, { type: 'room.list' })).rooms);
    assert.equal(after['ls-open'].members, 2);
});

test('room.join answers room, members with online flags and history; the join notice goes to every member session', async () => {
    const alice = await connect('jn_alice');
    const aliceTab = await connect('jn_alice');
    const bob = await connect('jn_bob');
    await ok(alice, { type: 'room.create', room: 'jn-room' });
    await ok(alice, { type: 'msg.send', room: 'jn-room', text: 'before bob' });

    const reply = await ok(bob, { type: 'room.join', room: 'JN-ROOM' });
    assert.equal(reply.room.name, 'jn-room');
    assert.equal(reply.room.members, 2);
    assert.deepEqual(reply.members, [{ user: 'jn_alice', online: true }, { user: 'jn_bob', online: true }]);
    assert.equal(reply.history.length, 2);
    assert.deepEqual({ ...reply.history[0], ts: 'x' },
                     { type: 'message', room: 'jn-room', seq: 1, from: 'jn_alice', text: 'before bob', ts: 'x' });
    const notice = reply.history[1];
    assert.deepEqual({ ...notice, ts: 'x' }, {
        type: 'system', event: 'join', room: 'jn-room', seq: 2, user: 'jn_bob', ts: 'x',
        message: 'jn_bob has joined the room jn-room.' });
    assert.match(notice.ts, ISO_MS);
    for (const client of [alice, aliceTab, bob]) {
        const { __binary, ...event } = await systemEntry(client, 'jn-room', 'join', 'jn_bob');
        assert.deepEqual(event, notice);
    }

    // Joining again succeeds and changes nothing: no notice, no seq
    const again = await ok(bob, { type: 'room.join', room: 'jn-room' });
    assert.equal(again.room.members, 2);
    assert.equal(again.history.at(-1).seq, 2);
    const sent = await ok(alice, { type: 'msg.send', room: 'jn-room', text: 'next' });
    assert.equal(sent.seq, 3);
});

test('room.join history is the newest 50 entries, oldest first', async () => {
    const alice = await connect('jh_alice');
    const bob = await connect('jh_bob');
    await ok(alice, { type: 'room.create', room: 'jh-room' });
    for (let index = 1; index <= 60; index++)
        await ok(alice, { type: 'msg.send', room: 'jh-room', text: `message ${index}` });
    const { history } = await ok(bob, { type: 'room.join', room: 'jh-room' });
    assert.equal(history.length, 50);
    assert.deepEqual(history.map((entry) => entry.seq), Array.from({ length: 50 }, (_, i) => 12 + i));
    assert.equal(history.at(-1).type, 'system');
    assert.equal(history[0].text, 'message 12');
});

test('room.join refuses unknown rooms, full rooms and private rooms without an invitation', async () => {
    const alice = await connect('jr_alice');
    const bob = await connect('jr_bob');
    const carol = await connect('jr_carol');
    await fails(bob, { type: 'room.join', room: 'jr-nowhere' }, 'no_such_room');
    await fails(bob, { type: 'room.join', room: 'not a room name' }, 'no_such_room');
    await fails(bob, { type: 'room.join' }, 'bad_request');
    await fails(bob, { type: 'room.join', room: ['jr-x'] }, 'bad_request');

    await ok(alice, { type: 'room.create', room: 'jr-pair', max_participants: 2 });
    await ok(bob, { type: 'room.join', room: 'jr-pair' });
    const full = await fails(carol, { type: 'room.join', room: 'jr-pair' }, 'room_full');
    assert.equal(full.message, "Room 'jr-pair' is full (2 of 2).");
    // A member joining again is not refused for the room being full
    await ok(bob, { type: 'room.join', room: 'jr-pair' });

    await ok(alice, { type: 'room.create', room: 'jr-private', private: true });
    await fails(bob, { type: 'room.join', room: 'jr-private' }, 'forbidden');
});

test('room.invite lets a user into a private room and tells all their sessions; an invitation is used once', async () => {
    const alice = await connect('iv_alice');
    const bob = await connect('iv_bob');
    const bobTab = await connect('iv_bob');
    const carol = await connect('iv_carol');
    await ok(alice, { type: 'room.create', room: 'iv-secret', private: true });
    await fails(bob, { type: 'room.join', room: 'iv-secret' }, 'forbidden');

    await ok(alice, { type: 'room.invite', room: 'iv-secret', user: 'IV_BOB' });
    for (const client of [bob, bobTab]) {
        const invite = await client.nextEvent((e) => e.type === 'invite');
        assert.deepEqual(invite, { type: 'invite', room: 'iv-secret', from: 'iv_alice', __binary: false });
    }
    // An invited user sees the private room in the list? Only members do.
    const { room, members } = await ok(bob, { type: 'room.join', room: 'iv-secret' });
    assert.equal(room.private, true);
    assert.deepEqual(members.map((m) => m.user), ['iv_alice', 'iv_bob']);
    // bob, now a member, may invite too
    await ok(bob, { type: 'room.invite', room: 'iv-secret', user: 'iv_carol' });
    assert.equal((await carol.nextEvent((e) => e.type === 'invite')).from, 'iv_bob');

    // Leaving uses up the invitation: coming back needs a new one
    await ok(bob, { type: 'room.leave', room: 'iv-secret' });
    await fails(bob, { type: 'room.join', room: 'iv-secret' }, 'forbidden');
    await ok(alice, { type: 'room.invite', room: 'iv-secret', user: 'iv_bob' });
    await ok(bob, { type: 'room.join', room: 'iv-secret' });
    // Inviting a member is ok and sends nothing
    await ok(alice, { type: 'room.invite', room: 'iv-secret', user: 'iv_bob' });
});

test('room.invite refuses unknown rooms and users, non-members of private rooms, and full rooms', async () => {
    const alice = await connect('ie_alice');
    const bob = await connect('ie_bob');
    await connect('ie_carol');
    await fails(alice, { type: 'room.invite', room: 'ie-nowhere', user: 'ie_bob' }, 'no_such_room');
    await ok(alice, { type: 'room.create', room: 'ie-secret', private: true, max_participants: 2 });
    await fails(alice, { type: 'room.invite', room: 'ie-secret', user: 'ie_nobody' }, 'no_such_user');
    await fails(alice, { type: 'room.invite', room: 'ie-secret', user: 'no' }, 'no_such_user');
    await fails(alice, { type: 'room.invite', room: 'ie-secret' }, 'bad_request');
    await fails(alice, { type: 'room.invite', room: 'ie-secret', user: 7 }, 'bad_request');
    await fails(bob, { type: 'room.invite', room: 'ie-secret', user: 'ie_carol' }, 'forbidden');
    await ok(alice, { type: 'room.invite', room: 'ie-secret', user: 'ie_bob' });
    await ok(bob, { type: 'room.join', room: 'ie-secret' });
    await fails(alice, { type: 'room.invite', room: 'ie-secret', user: 'ie_carol' }, 'room_full');
    // A public room: anyone may invite, members or not
    await ok(alice, { type: 'room.create', room: 'ie-open' });
    await ok(bob, { type: 'room.invite', room: 'ie-open', user: 'ie_carol' });
});

test('room.leave posts the leave notice to the members and the leaver; then the leaver is no member', async () => {
    const alice = await connect('lv_alice');
    const bob = await connect('lv_bob');
    const bobTab = await connect('lv_bob');
    await ok(alice, { type: 'room.create', room: 'lv-room' });
    await ok(bob, { type: 'room.join', room: 'lv-room' });
    await ok(bob, { type: 'room.leave', room: 'lv-room' });
    for (const client of [alice, bob, bobTab]) {
        const notice = await systemEntry(client, 'lv-room', 'leave', 'lv_bob');
        assert.equal(notice.message, 'lv_bob has left the room lv-room.');
        assert.equal(notice.seq, 2);
        assert.match(notice.ts, ISO_MS);
    }
    const { members } = await ok(alice, { type: 'room.members', room: 'lv-room' });
    assert.deepEqual(members.map((m) => m.user), ['lv_alice']);
    await fails(bob, { type: 'room.leave', room: 'lv-room' }, 'not_member');
    await fails(bob, { type: 'msg.send', room: 'lv-room', text: 'still here?' }, 'not_member');
    await fails(bob, { type: 'room.leave', room: 'lv-nowhere' }, 'no_such_room');
    await fails(bob, { type: 'room.leave' }, 'bad_request');
    // bob's sessions no longer receive the room's entries
    const bobLog = recordRoomEvents(bob);
    await ok(alice, { type: 'msg.send', room: 'lv-room', text: 'after bob' });
    await ok(bob, { type: 'room.join', room: 'lv-room' });
    assert.equal(bobLog.filter((e) => e.type === 'message').length, 0);
});

test('room.delete by the owner tells everyone, deletes the history and frees the name; others are refused', async () => {
    const alice = await connect('dl_alice');
    const bob = await connect('dl_bob');
    const eve = await connect('dl_eve');
    await ok(alice, { type: 'room.create', room: 'dl-room' });
    await ok(bob, { type: 'room.join', room: 'dl-room' });
    await ok(alice, { type: 'msg.send', room: 'dl-room', text: 'soon gone' });
    await fails(bob, { type: 'room.delete', room: 'dl-room' }, 'forbidden');
    await fails(bob, { type: 'room.delete', room: 'dl-nowhere' }, 'no_such_room');
    await fails(bob, { type: 'room.delete' }, 'bad_request');

    await ok(alice, { type: 'room.delete', room: 'DL-ROOM' });
    for (const client of [alice, bob, eve]) {
        const event = await client.nextEvent((e) => e.type === 'system' && e.event === 'delete'
                                                    && e.room === 'dl-room');
        assert.equal(event.message, 'The room dl-room has been deleted.');
        assert.equal(event.user, 'dl_alice');
        assert.match(event.ts, ISO_MS);
        assert.equal(event.seq, undefined);
    }
    await fails(alice, { type: 'room.delete', room: 'dl-room' }, 'no_such_room');
    await fails(bob, { type: 'room.history', room: 'dl-room' }, 'no_such_room');
    await fails(bob, { type: 'msg.send', room: 'dl-room', text: 'hello?' }, 'no_such_room');
    const listed = (await ok(eve, { type: 'room.list' })).rooms.map((room) => room.name);
    assert.ok(!listed.includes('dl-room'));

    // The name is free again and the new room's timeline starts at 1
    const { room } = await ok(eve, { type: 'room.create', room: 'Dl-Room' });
    assert.equal(room.owner, 'dl_eve');
    assert.equal((await ok(eve, { type: 'room.history', room: 'dl-room' })).messages.length, 0);
    assert.equal((await ok(eve, { type: 'msg.send', room: 'dl-room', text: 'fresh' })).seq, 1);
});

test('room.delete of a private room tells only its members', async () => {
    const alice = await connect('dp_alice');
    const bob = await connect('dp_bob');
    const eve = await connect('dp_eve');
    const eveLog = recordRoomEvents(eve);
    await ok(alice, { type: 'room.create', room: 'dp-secret', private: true });
    await ok(alice, { type: 'room.invite', room: 'dp-secret', user: 'dp_bob' });
    await ok(bob, { type: 'room.join', room: 'dp-secret' });
    await ok(alice, { type: 'room.delete', room: 'dp-secret' });
    for (const client of [alice, bob]) {
        const event = await client.nextEvent((e) => e.event === 'delete' && e.room === 'dp-secret');
        assert.equal(event.message, 'The room dp-secret has been deleted.');
    }
    await ok(alice, { type: 'room.create', room: 'dp-marker' });
    await eve.nextEvent((e) => e.event === 'create' && e.room?.name === 'dp-marker');
    assert.equal(eveLog.filter((e) => e.room === 'dp-secret' || e.room?.name === 'dp-secret').length, 0);
});

test('room.members lists the members with live online flags, to members only', async () => {
    const alice = await connect('mb_alice');
    const bob = await connect('mb_bob');
    const eve = await connect('mb_eve');
    await ok(alice, { type: 'room.create', room: 'mb-room' });
    await ok(bob, { type: 'room.join', room: 'mb-room' });
    assert.deepEqual((await ok(alice, { type: 'room.members', room: 'mb-room' })).members,
                     [{ user: 'mb_alice', online: true }, { user: 'mb_bob', online: true }]);
    await bob.close();
    let members;
    for (let tries = 0; tries < 100; tries++) {
        ({ members } = await ok(alice, { type: 'room.members', room: 'mb-room' }));
        if (!members[1].online)
            break;
        await sleep(50);
    }
    assert.deepEqual(members, [{ user: 'mb_alice', online: true }, { user: 'mb_bob', online: false }]);
    await fails(eve, { type: 'room.members', room: 'mb-room' }, 'not_member');
    await fails(eve, { type: 'room.members', room: 'mb-nowhere' }, 'no_such_room');
    await fails(eve, { type: 'room.members' }, 'bad_request');
});

test('room.history pages with before, after and limit, and says when there is more', async () => {
    const alice = await connect('hs_alice');
    const eve = await connect('hs_eve');
    await ok(alice, { type: 'room.create', room: 'hs-room' });
    for (let index = 1; index <= 120; index++)
        await ok(alice, { type: 'msg.send', room: 'hs-room', text: `m${index}` });
    const seqs = (reply) => reply.messages.map((entry) => entry.seq);
    const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

    let reply = await ok(alice, { type: 'room.history', room: 'hs-room' });
    assert.deepEqual(seqs(reply), range(71, 120));
    assert.equal(reply.more, true);
    assert.deepEqual({ ...reply.messages[0], ts: 'x' },
                     { type: 'message', room: 'hs-room', seq: 71, from: 'hs_alice', text: 'm71', ts: 'x' });
    assert.match(reply.messages[0].ts, ISO_MS);

    reply = await ok(alice, { type: 'room.history', room: 'hs-room', before: 71, limit: 60 });
    assert.deepEqual(seqs(reply), range(11, 70));
    assert.equal(reply.more, true);
    reply = await ok(alice, { type: 'room.history', room: 'hs-room', before: 11, limit: 200 });
    assert.deepEqual(seqs(reply), range(1, 10));
    assert.equal(reply.more, false);

    reply = await ok(alice, { type: 'room.history', room: 'hs-room', after: 0, limit: 5 });
    assert.deepEqual(seqs(reply), range(1, 5));
    assert.equal(reply.more, true);
    reply = await ok(alice, { type: 'room.history', room: 'hs-room', after: 100 });
    assert.deepEqual(seqs(reply), range(101, 120));
    assert.equal(reply.more, false);
    reply = await ok(alice, { type: 'room.history', room: 'hs-room', after: 120 });
    assert.deepEqual(seqs(reply), []);
    assert.equal(reply.more, false);
    reply = await ok(alice, { type: 'room.history', room: 'hs-room', limit: 200 });
    assert.deepEqual(seqs(reply), range(1, 120));
    assert.equal(reply.more, false);

    for (const fields of [{ before: 5, after: 1 }, { limit: 0 }, { limit: 201 }, { limit: 'ten' },
                          { before: -1 }, { after: 'x' }, { before: 1.5 }, { room: 5 }])
        await fails(alice, { type: 'room.history', room: 'hs-room', ...fields }, 'bad_request');
    await fails(eve, { type: 'room.history', room: 'hs-room' }, 'not_member');
    await fails(eve, { type: 'room.history', room: 'hs-nowhere' }, 'no_such_room');
});

test('msg.send answers seq and ts after storing, and every member session gets the entry, the sender\'s included', async () => {
    const alice = await connect('ms_alice');
    const aliceTab = await connect('ms_alice');
    const bob = await connect('ms_bob');
    const eve = await connect('ms_eve');
    const eveLog = recordRoomEvents(eve);
    await ok(alice, { type: 'room.create', room: 'ms-room' });
    await ok(bob, { type: 'room.join', room: 'ms-room' });
    const text = 'hello "world" ✓ 😀';
    const sent = await ok(alice, { type: 'msg.send', room: 'ms-room', text });
    assert.equal(sent.seq, 2);
    assert.match(sent.ts, ISO_MS);
    for (const client of [alice, aliceTab, bob]) {
        const entry = await nextEntry(client, 'ms-room', (e) => e.type === 'message');
        assert.deepEqual(entry, { type: 'message', room: 'ms-room', seq: 2, from: 'ms_alice',
                                  text, ts: sent.ts, __binary: false });
    }
    // Exactly 4000 characters is fine, counted as characters (not bytes or UTF-16 units)
    const emoji = '😀'.repeat(4000);
    assert.equal((await ok(bob, { type: 'msg.send', room: 'ms-room', text: emoji })).seq, 3);
    assert.equal((await nextEntry(alice, 'ms-room', (e) => e.seq === 3)).text, emoji);

    for (const bad of ['', ' ', ' \n\t ', '\u00a0\u3000', 'x'.repeat(4001), '😀'.repeat(4001)])
        await fails(alice, { type: 'msg.send', room: 'ms-room', text: bad }, 'invalid_text');
    await fails(alice, { type: 'msg.send', room: 'ms-room' }, 'bad_request');
    await fails(alice, { type: 'msg.send', room: 'ms-room', text: 12 }, 'bad_request');
    await fails(alice, { type: 'msg.send', text: 'hi' }, 'bad_request');
    await fails(eve, { type: 'msg.send', room: 'ms-room', text: 'let me in' }, 'not_member');
    await fails(eve, { type: 'msg.send', room: 'ms-nowhere', text: 'anyone?' }, 'no_such_room');
    // Refusals took no seq
    assert.equal((await ok(alice, { type: 'msg.send', room: 'ms-room', text: 'next' })).seq, 4);
    assert.equal(eveLog.filter((e) => e.room === 'ms-room').length, 0);
});

test('a room request before login is unauthenticated', async () => {
    const anonymous = await Client.connect(suite.server.url);
    clients.push(anonymous);
    for (const type of ['room.create', 'room.list', 'room.join', 'msg.send', 'room.history'])
        await fails(anonymous, { type, room: 'x', text: 'y' }, 'unauthenticated');
});

test('msg.send is rate limited per user', async () => {
    const limited = await startRoomsParley({ args: ['--option', 'rooms.msg_rate=1',
                                                    '--option', 'rooms.msg_burst=5'] });
    const own = [];
    try {
        const alice = await connectUser(limited.url, 'rl_alice', own);
        const aliceTab = await connectUser(limited.url, 'rl_alice', own);
        const bob = await connectUser(limited.url, 'rl_bob', own);
        await ok(alice, { type: 'room.create', room: 'rl-room' });
        await ok(bob, { type: 'room.join', room: 'rl-room' });
        const replies = await Promise.all(Array.from({ length: 10 }, (_, i) =>
            (i % 2 ? aliceTab : alice).request({ type: 'msg.send', room: 'rl-room', text: `m${i}` })));
        const accepted = replies.filter((reply) => reply.type === 'ok');
        const limitedReplies = replies.filter((reply) => reply.code === 'rate_limited');
        assert.ok(accepted.length >= 5 && accepted.length <= 6, JSON.stringify(replies));
        assert.equal(accepted.length + limitedReplies.length, 10);
        // Each refusal says when to try again: at 1 msg/s, within a second
        for (const reply of limitedReplies)
            assert.ok(Number.isInteger(reply.retry_after_ms) && reply.retry_after_ms >= 1
                      && reply.retry_after_ms <= 1000, JSON.stringify(reply));
        // Refused messages take no seq; another user has an allowance of their own
        const seqs = accepted.map((reply) => reply.seq).sort((a, b) => a - b);
        assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => 2 + i));
        assert.equal((await ok(bob, { type: 'msg.send', room: 'rl-room', text: 'mine' })).seq, seqs.length + 2);
    } finally {
        for (const client of own)
            client.ws.terminate();
        await limited.stop();
    }
});

test('rooms, members, invitations and timelines survive a restart, and seq goes on', async () => {
    await acrossRestart('rooms', {
        setup: async (connect) => {
            const alice = await connect('rs_alice');
            const bob = await connect('rs_bob');
            await connect('rs_carol');
            await ok(alice, { type: 'room.create', room: 'rs-open', description: 'kept', max_participants: 7 });
            await ok(alice, { type: 'room.create', room: 'rs-secret', private: true });
            await ok(bob, { type: 'room.join', room: 'rs-open' });
            await ok(alice, { type: 'room.invite', room: 'rs-secret', user: 'rs_carol' });
            for (let index = 1; index <= 5; index++)
                await ok(bob, { type: 'msg.send', room: 'rs-open', text: `before ${index}` });
        },
        check: async (connect) => {
            const alice2 = await connect('rs_alice');
            const bob2 = await connect('rs_bob');
            const carol2 = await connect('rs_carol');
            const rooms = (await ok(bob2, { type: 'room.list' })).rooms;
            const open = rooms.find((room) => room.name === 'rs-open');
            assert.deepEqual({ ...open, created_at: 'x' }, {
                name: 'rs-open', description: 'kept', private: false, max_participants: 7,
                owner: 'rs_alice', created_at: 'x', members: 2, joined: true,
                // 1.1: bob's read marker, moved by his own messages 2 to 6
                last_seq: 6, read_seq: 6, unread: 0, mentions: 0 });
            assert.equal(rooms.find((room) => room.name === 'rs-secret'), undefined);
            // 1.1: carol's invitation is listed after the restart
            const carolRooms = (await ok(carol2, { type: 'room.list' })).rooms;
            assert.equal(carolRooms.find((room) => room.name === 'rs-secret')?.invited, true);
            const history = (await ok(bob2, { type: 'room.history', room: 'rs-open' })).messages;
            assert.deepEqual(history.map((entry) => entry.seq), [1, 2, 3, 4, 5, 6]);
            assert.equal(history[0].message, 'rs_bob has joined the room rs-open.');
            assert.equal(history[5].text, 'before 5');
            // seq goes on where it stopped
            const sent = await ok(alice2, { type: 'msg.send', room: 'rs-open', text: 'after' });
            assert.equal(sent.seq, 7);
            assert.equal((await nextEntry(bob2, 'rs-open', (e) => e.seq === 7)).text, 'after');
            // The invitation was kept
            const joined = await ok(carol2, { type: 'room.join', room: 'rs-secret' });
            assert.equal(joined.history[0].seq, 1);
            assert.equal(joined.history[0].message, 'rs_carol has joined the room rs-secret.');
            assert.deepEqual((await ok(alice2, { type: 'room.members', room: 'rs-open' })).members,
                             [{ user: 'rs_alice', online: true }, { user: 'rs_bob', online: true }]);
        },
    });
});
