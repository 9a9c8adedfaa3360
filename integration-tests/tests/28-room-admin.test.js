// Room administration (PROTOCOL.md 1.1, "Room administration";
// proto/CLIENT-PROTOCOL.md, "Room administration (1.1)"): room.update,
// room.kick with and without ban, room.unban, each row and error code, the
// notices word for word, the removed member's sessions hearing the kick and
// then nothing more of the room, a ban through room.join and room.invite
// until room.unban, room.list and room.directory marking a public room
// "banned" for the banned user only (proto/CLIENT-PROTOCOL.md, "Rooms"), a
// room made smaller than its members, the update's
// lifecycle event to non-members when a room turns public or private, and
// bans across a restart. Runs on store-sqlite, and on store-mongo with
// PARLEY_TEST_STORE=mongo.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ok, fails, nextEntry, ISO_MS } from '../lib/rooms.js';
import { chatSuite, acrossRestart } from '../lib/chat.js';

const suite = chatSuite('rooms');
const { connect } = suite;

// The update's lifecycle event for room (no seq, the room's map)
const updateEvent = (client, room, timeoutMs) =>
    client.nextEvent((frame) => frame.type === 'system' && frame.event === 'update'
                                && typeof frame.room === 'object' && frame.room.name === room,
                     timeoutMs);

// Asserts an entry's fields but ts, and that ts is a time
function assertEntry(entry, expected) {
    const { ts, __binary, ...rest } = entry;
    assert.match(ts, ISO_MS);
    assert.deepEqual(rest, expected);
}

// Everything a client has received about room but its creation (entries,
// lifecycle events)
const about = (client, room) => client.events.filter((frame) => frame.event !== 'create'
    && (frame.room === room || (frame.room && frame.room.name === room)));

const newest = async (client, room) => (await suite.history(client, room)).at(-1);

test('room.update changes the settings, notifies the members with its entry and everyone with the event', async () => {
    const alice = await connect('ru_alice');
    const bob = await connect('ru_bob');
    const carol = await connect('ru_carol');
    await ok(alice, { type: 'room.create', room: 'ru-room', description: 'old' });
    await ok(bob, { type: 'room.join', room: 'ru-room' });                  // seq 1

    const reply = await ok(alice, { type: 'room.update', room: 'RU-ROOM', description: 'Our room',
                                    max_participants: 20 });
    assert.deepEqual({ ...reply.room, created_at: undefined },
                     { name: 'ru-room', description: 'Our room', private: false,
                       max_participants: 20, owner: 'ru_alice', created_at: undefined,
                       members: 2 });
    const notice = 'ru_alice has changed the settings of the room ru-room.';
    const entry = { type: 'system', event: 'update', room: 'ru-room', seq: 2, user: 'ru_alice',
                    message: notice };
    for (const member of [alice, bob])
        assertEntry(await nextEntry(member, 'ru-room', (frame) => frame.seq === 2), entry);
    // The lifecycle event: to the members and, the room being public, to everyone
    for (const client of [alice, bob, carol]) {
        const event = await updateEvent(client, 'ru-room');
        assert.deepEqual({ ...event, ts: undefined, __binary: undefined },
                         { type: 'system', event: 'update', room: reply.room, user: 'ru_alice',
                           ts: undefined, __binary: undefined, message: notice });
        assert.match(event.ts, ISO_MS);
    }
    assertEntry(await newest(bob, 'ru-room'), entry);

    // The same values again, or none: the room as it is, no entry, no event
    const same = await ok(alice, { type: 'room.update', room: 'ru-room', description: 'Our room',
                                   private: false });
    assert.deepEqual(same.room, reply.room);
    assert.deepEqual((await ok(alice, { type: 'room.update', room: 'ru-room' })).room, reply.room);
    await ok(alice, { type: 'msg.send', room: 'ru-room', text: 'after' });  // seq 3
    assert.equal((await nextEntry(bob, 'ru-room', (frame) => frame.seq > 2)).seq, 3,
                 'no entry between');
    assert.equal(about(carol, 'ru-room').length, 0, JSON.stringify(carol.events));
});

test('room.update refuses bad fields (bad_request), unknown rooms (no_such_room) and everyone but the owner (forbidden)', async () => {
    const alice = await connect('rx_alice');
    const bob = await connect('rx_bob');
    await ok(alice, { type: 'room.create', room: 'rx-room' });
    await ok(bob, { type: 'room.join', room: 'rx-room' });
    for (const bad of [{ max_participants: 1 }, { max_participants: 10001 },
                       { max_participants: 'ten' }, { max_participants: 2.5 },
                       { private: 'yes' }, { description: 42 },
                       { description: 'd'.repeat(501) }])
        await fails(alice, { type: 'room.update', room: 'rx-room', ...bad }, 'bad_request');
    await fails(alice, { type: 'room.update', description: 'x' }, 'bad_request');
    // Shape before state: a non-owner's bad field is bad_request
    await fails(bob, { type: 'room.update', room: 'rx-room', private: 'yes' }, 'bad_request');
    await fails(alice, { type: 'room.update', room: 'rx-nowhere', description: 'x' },
                'no_such_room');
    await fails(alice, { type: 'room.update', room: 'not a room', description: 'x' },
                'no_such_room');
    const refused = await fails(bob, { type: 'room.update', room: 'rx-room', private: true },
                                'forbidden');
    assert.match(refused.message, /owner/);
    // Nothing changed
    const room = (await ok(bob, { type: 'room.join', room: 'rx-room' })).room;
    assert.deepEqual([room.private, room.description, room.max_participants], [false, '', 50]);
    assert.equal((await newest(bob, 'rx-room')).seq, 1);
});

test('a room turning private or public: the event reaches the non-members that could see it before or can see it after', async () => {
    const alice = await connect('rp_alice');
    const bob = await connect('rp_bob');
    const carol = await connect('rp_carol');
    await ok(alice, { type: 'room.create', room: 'rp-room' });
    await ok(bob, { type: 'room.join', room: 'rp-room' });
    // Public to private: carol could see it before
    const made = await ok(alice, { type: 'room.update', room: 'rp-room', private: true });
    assert.equal(made.room.private, true);
    assert.equal((await updateEvent(carol, 'rp-room')).room.private, true);
    assert.equal((await updateEvent(bob, 'rp-room')).room.private, true);
    // Private and still private: the members only
    await ok(alice, { type: 'room.update', room: 'rp-room', description: 'secret' });
    assert.equal((await updateEvent(bob, 'rp-room')).room.description, 'secret');
    // Private to public: carol can see it after; the first event she gets is this one
    await ok(alice, { type: 'room.update', room: 'rp-room', private: false });
    const event = await updateEvent(carol, 'rp-room');
    assert.deepEqual([event.room.private, event.room.description], [false, 'secret']);
    assert.equal(about(carol, 'rp-room').length, 0, JSON.stringify(carol.events));
    // The members stayed, and carol may join again now
    await ok(carol, { type: 'room.join', room: 'rp-room' });
    assert.equal((await ok(carol, { type: 'room.members', room: 'rp-room' })).members.length, 3);
    // While it was private, carol could not join without an invitation
    await ok(alice, { type: 'room.update', room: 'rp-room', private: true });
    const dave = await connect('rp_dave');
    await fails(dave, { type: 'room.join', room: 'rp-room' }, 'forbidden');
});

test('room.kick removes a member: every member session gets the notice, the removed one then nothing more', async () => {
    const alice = await connect('rk_alice');
    const bob = await connect('rk_bob');
    const bobTab = await connect('rk_bob');
    const carol = await connect('rk_carol');
    await ok(alice, { type: 'room.create', room: 'rk-room' });
    await ok(bob, { type: 'room.join', room: 'rk-room' });                  // seq 1
    await ok(carol, { type: 'room.join', room: 'rk-room' });                // seq 2

    const kicked = await ok(alice, { type: 'room.kick', room: 'rk-room', user: 'RK_BOB' });
    assert.deepEqual(Object.keys(kicked).filter((key) => !['type', 'id', '__binary'].includes(key)),
                     [], 'an ok without fields');
    const kick = { type: 'system', event: 'kick', room: 'rk-room', seq: 3, user: 'rk_bob',
                   by: 'rk_alice', message: 'rk_bob has been removed from the room rk-room by rk_alice.' };
    for (const client of [alice, bob, bobTab, carol])
        assertEntry(await nextEntry(client, 'rk-room', (frame) => frame.seq === 3), kick);
    assertEntry(await newest(alice, 'rk-room'), kick);

    // Nothing more of the room for bob's sessions
    await ok(alice, { type: 'msg.send', room: 'rk-room', text: 'without bob' });   // seq 4
    await ok(alice, { type: 'room.update', room: 'rk-room', private: true });      // seq 5
    await nextEntry(carol, 'rk-room', (frame) => frame.seq === 5);
    for (const client of [bob, bobTab])
        assert.deepEqual(about(client, 'rk-room').filter((frame) => frame.seq > 3), [],
                         JSON.stringify(client.events));
    await fails(bob, { type: 'room.history', room: 'rk-room' }, 'not_member');
    await fails(bob, { type: 'msg.send', room: 'rk-room', text: 'hello?' }, 'not_member');
    assert.deepEqual((await ok(carol, { type: 'room.members', room: 'rk-room' })).members
                         .map((member) => member.user), ['rk_alice', 'rk_carol']);
    // Without a ban, bob may come back (invited, the room being private now)
    await fails(bob, { type: 'room.join', room: 'rk-room' }, 'forbidden');
    await ok(carol, { type: 'room.invite', room: 'rk-room', user: 'rk_bob' });
    const back = await ok(bob, { type: 'room.join', room: 'rk-room' });
    assert.equal(back.history.at(-1).event, 'join');
});

test('room.kick refuses bad fields, unknown rooms and users, non-members, everyone but the owner, and the owner as target', async () => {
    const alice = await connect('rj_alice');
    const bob = await connect('rj_bob');
    const carol = await connect('rj_carol');
    await connect('rj_dave');
    await ok(alice, { type: 'room.create', room: 'rj-room' });
    await ok(bob, { type: 'room.join', room: 'rj-room' });
    await ok(carol, { type: 'room.join', room: 'rj-room' });
    await fails(alice, { type: 'room.kick', room: 'rj-room' }, 'bad_request');
    await fails(alice, { type: 'room.kick', room: 'rj-room', user: 42 }, 'bad_request');
    await fails(alice, { type: 'room.kick', room: 'rj-room', user: 'rj_bob', ban: 'yes' },
                'bad_request');
    await fails(alice, { type: 'room.kick', user: 'rj_bob' }, 'bad_request');
    await fails(alice, { type: 'room.kick', room: 'rj-nowhere', user: 'rj_bob' }, 'no_such_room');
    await fails(alice, { type: 'room.kick', room: 'rj-room', user: 'no such name' },
                'no_such_user');
    await fails(alice, { type: 'room.kick', room: 'rj-room', user: 'rj_ghost' }, 'no_such_user');
    await fails(alice, { type: 'room.kick', room: 'rj-room', user: 'rj_ghost', ban: true },
                'no_such_user');
    await fails(alice, { type: 'room.kick', room: 'rj-room', user: 'rj_dave' }, 'not_member');
    await fails(alice, { type: 'room.kick', room: 'rj-room', user: 'RJ_DAVE', ban: false },
                'not_member');
    // Only the owner; never the owner, not even by themself
    await fails(carol, { type: 'room.kick', room: 'rj-room', user: 'rj_bob' }, 'forbidden');
    await fails(carol, { type: 'room.kick', room: 'rj-room', user: 'rj_ghost' }, 'forbidden');
    await fails(bob, { type: 'room.kick', room: 'rj-room', user: 'rj_alice' }, 'forbidden');
    await fails(alice, { type: 'room.kick', room: 'rj-room', user: 'rj_alice' }, 'forbidden');
    await fails(alice, { type: 'room.kick', room: 'rj-room', user: 'RJ_ALICE', ban: true },
                'forbidden');
    // Nothing changed: no entry, every member still in
    assert.equal((await newest(alice, 'rj-room')).seq, 2);
    assert.equal((await ok(alice, { type: 'room.members', room: 'rj-room' })).members.length, 3);
});

test('a banned user gets forbidden from room.join and room.invite until room.unban', async () => {
    const alice = await connect('rb_alice');
    const bob = await connect('rb_bob');
    const carol = await connect('rb_carol');
    await ok(alice, { type: 'room.create', room: 'rb-room' });
    await ok(bob, { type: 'room.join', room: 'rb-room' });                  // seq 1
    await ok(carol, { type: 'room.join', room: 'rb-room' });                // seq 2
    await ok(alice, { type: 'room.kick', room: 'rb-room', user: 'rb_bob', ban: true });
    assertEntry(await nextEntry(bob, 'rb-room', (frame) => frame.seq === 3),
                { type: 'system', event: 'kick', room: 'rb-room', seq: 3, user: 'rb_bob',
                  by: 'rb_alice', message: 'rb_bob has been removed from the room rb-room by rb_alice.' });
    await fails(bob, { type: 'room.join', room: 'rb-room' }, 'forbidden');
    await fails(carol, { type: 'room.invite', room: 'rb-room', user: 'rb_bob' }, 'forbidden');
    await fails(alice, { type: 'room.invite', room: 'rb-room', user: 'RB_BOB' }, 'forbidden');
    assert.equal(about(bob, 'rb-room').filter((frame) => frame.type === 'invite').length, 0);
    // Banned again: ok, nothing stored
    await ok(alice, { type: 'room.kick', room: 'rb-room', user: 'rb_bob', ban: true });
    assert.equal((await newest(carol, 'rb-room')).seq, 3);

    // room.unban: the owner's only, of a user that exists
    await fails(alice, { type: 'room.unban', room: 'rb-room' }, 'bad_request');
    await fails(alice, { type: 'room.unban', room: 'rb-nowhere', user: 'rb_bob' }, 'no_such_room');
    await fails(alice, { type: 'room.unban', room: 'rb-room', user: 'rb_ghost' }, 'no_such_user');
    await fails(alice, { type: 'room.unban', room: 'rb-room', user: 'not a name' }, 'no_such_user');
    await fails(carol, { type: 'room.unban', room: 'rb-room', user: 'rb_bob' }, 'forbidden');
    await fails(bob, { type: 'room.join', room: 'rb-room' }, 'forbidden');
    await ok(alice, { type: 'room.unban', room: 'RB-ROOM', user: 'RB_BOB' });
    await ok(alice, { type: 'room.unban', room: 'rb-room', user: 'rb_carol' });   // not banned: ok
    // No entry for an unban; bob may join and be invited again
    assert.equal((await newest(carol, 'rb-room')).seq, 3);
    await ok(carol, { type: 'room.invite', room: 'rb-room', user: 'rb_bob' });
    assert.equal((await ok(bob, { type: 'room.join', room: 'rb-room' })).history.at(-1).seq, 4);
});

test('a ban of a non-member stores no entry, tells nobody, and shuts a private room to them', async () => {
    const alice = await connect('rn_alice');
    const carol = await connect('rn_carol');
    const dave = await connect('rn_dave');
    await ok(alice, { type: 'room.create', room: 'rn-room', private: true });
    await ok(alice, { type: 'room.invite', room: 'rn-room', user: 'rn_carol' });
    await ok(carol, { type: 'room.join', room: 'rn-room' });                // seq 1
    await ok(alice, { type: 'room.invite', room: 'rn-room', user: 'rn_dave' });
    await ok(alice, { type: 'room.kick', room: 'rn-room', user: 'rn_dave', ban: true });
    // The invitation went with the ban
    await fails(dave, { type: 'room.join', room: 'rn-room' }, 'forbidden');
    await fails(carol, { type: 'room.invite', room: 'rn-room', user: 'rn_dave' }, 'forbidden');
    await ok(alice, { type: 'msg.send', room: 'rn-room', text: 'next' });  // seq 2
    assert.equal((await nextEntry(carol, 'rn-room', (frame) => frame.type === 'message')).seq, 2);
    assert.equal(about(dave, 'rn-room').filter((frame) => frame.type !== 'invite').length, 0);
    // Unbanned, dave needs a new invitation
    await ok(alice, { type: 'room.unban', room: 'rn-room', user: 'rn_dave' });
    await fails(dave, { type: 'room.join', room: 'rn-room' }, 'forbidden');
    await ok(carol, { type: 'room.invite', room: 'rn-room', user: 'rn_dave' });
    await ok(dave, { type: 'room.join', room: 'rn-room' });
});

// Every room of room.list (all its pages) or of room.directory (query, all
// its pages), by name
async function listed(client, type, fields = {}) {
    const rooms = new Map();
    let cursor;
    do {
        const reply = await ok(client, { type, ...fields, ...(cursor ? { cursor } : {}) });
        for (const room of reply.rooms)
            rooms.set(room.name, room);
        cursor = reply.next;
    } while (cursor);
    return rooms;
}

// Asserts that rooms (a listed() map) hold each room of banned with
// "banned": true and "joined": false, each of others without banned, and
// none of absent
function assertBans(rooms, { banned = [], others = [], absent = [] }, what) {
    for (const name of banned) {
        const room = rooms.get(name);
        assert.ok(room, `${what}: ${name} is listed`);
        assert.deepEqual([room.joined, room.banned, 'invited' in room], [false, true, false],
                         `${what}: ${name} ${JSON.stringify(room)}`);
    }
    for (const name of others) {
        assert.ok(rooms.get(name), `${what}: ${name} is listed`);
        assert.equal('banned' in rooms.get(name), false, `${what}: ${name} ${JSON.stringify(rooms.get(name))}`);
    }
    for (const name of absent)
        assert.equal(rooms.has(name), false, `${what}: ${name} is not listed`);
}

test('room.list and room.directory mark a public room "banned" for the banned user only, until room.unban; a private one stays unlisted', async () => {
    const alice = await connect('rl_alice');
    const bob = await connect('rl_bob');
    const carol = await connect('rl_carol');
    await ok(alice, { type: 'room.create', room: 'rl-room', description: 'kicked and banned' });
    await ok(alice, { type: 'room.create', room: 'rl-far' });
    await ok(alice, { type: 'room.create', room: 'rl-open' });
    await ok(alice, { type: 'room.create', room: 'rl-hidden', private: true });
    await ok(bob, { type: 'room.join', room: 'rl-room' });
    await ok(alice, { type: 'room.invite', room: 'rl-hidden', user: 'rl_bob' });
    // A member kicked with a ban, a non-member banned, an invitee banned
    await ok(alice, { type: 'room.kick', room: 'rl-room', user: 'rl_bob', ban: true });
    await ok(alice, { type: 'room.kick', room: 'rl-far', user: 'RL_BOB', ban: true });
    await ok(alice, { type: 'room.kick', room: 'rl-hidden', user: 'rl_bob', ban: true });

    const all = ['rl-room', 'rl-far', 'rl-open'];
    const bans = { banned: ['rl-room', 'rl-far'], others: ['rl-open'], absent: ['rl-hidden'] };
    assertBans(await listed(bob, 'room.list'), bans, 'bob\'s room.list');
    assertBans(await listed(bob, 'room.directory', { query: 'RL-' }), bans, 'bob\'s room.directory');
    assertBans(await listed(bob, 'room.directory', { query: 'rl-f' }), { banned: ['rl-far'], absent: ['rl-room'] },
               'bob\'s room.directory of a prefix');
    // The whole map of a banned room: the room's, joined false, banned true
    const room = (await listed(bob, 'room.directory', { query: 'rl-room' })).get('rl-room');
    assert.deepEqual({ ...room, created_at: undefined },
                     { name: 'rl-room', description: 'kicked and banned', private: false,
                       max_participants: 50, owner: 'rl_alice', created_at: undefined, members: 1,
                       joined: false, banned: true });
    // Nobody else sees bob's bans, the owner neither
    for (const [client, name] of [[carol, 'carol'], [alice, 'alice']]) {
        assertBans(await listed(client, 'room.list'), { others: all }, `${name}'s room.list`);
        assertBans(await listed(client, 'room.directory', { query: 'rl-' }), { others: all },
                   `${name}'s room.directory`);
    }
    // The mark says what room.join answers
    const refused = await fails(bob, { type: 'room.join', room: 'rl-room' }, 'forbidden');
    assert.match(refused.message, /banned/);

    // Unbanned from rl-room: listed as any other; still banned from rl-far
    await ok(alice, { type: 'room.unban', room: 'rl-room', user: 'rl_bob' });
    const after = { banned: ['rl-far'], others: ['rl-room', 'rl-open'], absent: ['rl-hidden'] };
    assertBans(await listed(bob, 'room.list'), after, 'bob\'s room.list after room.unban');
    assertBans(await listed(bob, 'room.directory', { query: 'rl-' }), after,
               'bob\'s room.directory after room.unban');
    await ok(bob, { type: 'room.join', room: 'rl-room' });
    const joined = (await listed(bob, 'room.list')).get('rl-room');
    assert.deepEqual([joined.joined, 'banned' in joined], [true, false]);
    // Unbanned from the private room: still not listed without a new invitation
    await ok(alice, { type: 'room.unban', room: 'rl-hidden', user: 'rl_bob' });
    assertBans(await listed(bob, 'room.list'), { others: ['rl-open'], banned: ['rl-far'], absent: ['rl-hidden'] },
               'bob\'s room.list after the private room\'s unban');
});

test('a room made smaller than its members keeps them and takes no new ones', async () => {
    const alice = await connect('rs_alice');
    const bob = await connect('rs_bob');
    const carol = await connect('rs_carol');
    const dave = await connect('rs_dave');
    await ok(alice, { type: 'room.create', room: 'rs-room', max_participants: 5 });
    await ok(bob, { type: 'room.join', room: 'rs-room' });
    await ok(carol, { type: 'room.join', room: 'rs-room' });
    const { room } = await ok(alice, { type: 'room.update', room: 'rs-room', max_participants: 2 });
    assert.deepEqual([room.max_participants, room.members], [2, 3]);
    await fails(dave, { type: 'room.join', room: 'rs-room' }, 'room_full');
    await fails(bob, { type: 'room.invite', room: 'rs-room', user: 'rs_dave' }, 'room_full');
    await ok(bob, { type: 'msg.send', room: 'rs-room', text: 'still here' });
    assert.equal((await ok(carol, { type: 'room.members', room: 'rs-room' })).members.length, 3);
    // Two leave: one place below the limit is still full; then room again
    await ok(carol, { type: 'room.leave', room: 'rs-room' });
    await fails(dave, { type: 'room.join', room: 'rs-room' }, 'room_full');
    await ok(bob, { type: 'room.leave', room: 'rs-room' });
    await ok(dave, { type: 'room.join', room: 'rs-room' });
});

test('bans and settings survive a restart', async () => {
    await acrossRestart('rooms', {
        setup: async (connect) => {
            const alice = await connect('rr_alice');
            const bob = await connect('rr_bob');
            await ok(alice, { type: 'room.create', room: 'rr-room' });
            await ok(bob, { type: 'room.join', room: 'rr-room' });
            await ok(alice, { type: 'room.kick', room: 'rr-room', user: 'rr_bob', ban: true });
            await ok(alice, { type: 'room.update', room: 'rr-room', description: 'kept' });
        },
        check: async (connect) => {
            const bob = await connect('rr_bob');
            await fails(bob, { type: 'room.join', room: 'rr-room' }, 'forbidden');
            const [listed] = (await ok(bob, { type: 'room.directory', query: 'rr-room' })).rooms;
            assert.deepEqual([listed.name, listed.joined, listed.banned], ['rr-room', false, true]);
            const alice = await connect('rr_alice');
            const history = (await ok(alice, { type: 'room.history', room: 'rr-room' })).messages;
            assert.deepEqual(history.map((entry) => [entry.event, entry.user, entry.by]),
                             [['join', 'rr_bob', undefined], ['kick', 'rr_bob', 'rr_alice'],
                              ['update', 'rr_alice', undefined]]);
            assert.equal(history[1].message, 'rr_bob has been removed from the room rr-room by rr_alice.');
            await ok(alice, { type: 'room.unban', room: 'rr-room', user: 'rr_bob' });
            const joined = await ok(bob, { type: 'room.join', room: 'rr-room' });
            assert.equal(joined.room.description, 'kept');
        },
    });
});
