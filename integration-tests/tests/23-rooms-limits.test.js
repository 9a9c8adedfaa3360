// Rooms within their limits (PROTOCOL.md 1.1, "Outcomes": no reply is lost
// for its size; "Directory and limits"; proto/CLIENT-PROTOCOL.md, "Rooms"):
// history of big messages cut next to its cursor with more, room.directory
// paging through 3,000 rooms, room.list in pages under 1 MiB with next and
// more_public, room.join's members bounded with more_members, room.members
// in pages, the owned and joined quotas (the defaults, and lower ones),
// invitations counted in the message rate, a NUL in a text. Real parley,
// real WebSockets; run on store-sqlite and again on store-mongo.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { eventually } from '../lib/harness.js';
import { startRoomsParley, connectUser, ok, fails } from '../lib/rooms.js';

const MIB = 1024 * 1024;
const BIG_TEXT = '😀'.repeat(4000);             // 4,000 characters, 16,000 bytes
const LONG_DESCRIPTION = '📚'.repeat(500);      // 500 characters, 2,000 bytes

let big;            // defaults, but no message rate
let small;          // every limit of this file made small
const clients = [];

before(async () => {
    // The big server moves hundreds of megabytes of history through one
    // process: on a loaded machine one step of a peer can outlast the
    // harness's quick heartbeat, so it keeps parley's default (1 s)
    big = await startRoomsParley({ args: ['--option', 'rooms.msg_rate=0', '--heartbeat', '1000'] });
    small = await startRoomsParley({ args: [
        '--option', 'rooms.join_members=3', '--option', 'rooms.members_page=4',
        '--option', 'rooms.max_owned=2', '--option', 'rooms.max_joined=3',
        '--option', 'rooms.msg_rate=1', '--option', 'rooms.msg_burst=4',
        '--option', 'rooms.list_public=2'] });
});

after(async () => {
    for (const client of clients)
        client.ws.terminate();
    await big?.stop();
    await small?.stop();
});

const connectBig = (name) => connectUser(big.url, name, clients);
const connectSmall = (name) => connectUser(small.url, name, clients);

// The reply's size as JSON on the wire (the gateway copies UTF-8 as it is)
const size = (reply) => Buffer.byteLength(JSON.stringify(reply));

// Sends the requests in windows of `window` at a time; all must be ok
async function okAll(client, requests, window = 20) {
    const replies = [];
    for (let start = 0; start < requests.length; start += window)
        replies.push(...await Promise.all(requests.slice(start, start + window)
            .map((request) => ok(client, request))));
    return replies;
}

const seqs = (reply) => reply.messages.map((entry) => entry.seq);
const range = (first, last) => Array.from({ length: last - first + 1 }, (_, i) => first + i);

test('room.history over 200 messages of 4,000 emoji answers every limit under 1 MiB, cut next to its cursor with more', async () => {
    const alice = await connectBig('hb_alice');
    await ok(alice, { type: 'room.create', room: 'hb-big' });
    await okAll(alice, range(1, 200).map(() => ({ type: 'msg.send', room: 'hb-big', text: BIG_TEXT })));

    let fits = 0;
    for (let limit = 1; limit <= 200; limit++) {
        const reply = await ok(alice, { type: 'room.history', room: 'hb-big', limit });
        assert.ok(size(reply) < MIB, `limit ${limit}: ${size(reply)} bytes`);
        const count = reply.messages.length;
        assert.ok(count >= 1 && count <= limit, `limit ${limit}: ${count} entries`);
        // The newest ones, whole, and more because older ones exist
        assert.deepEqual(seqs(reply), range(201 - count, 200), `limit ${limit}`);
        assert.equal(reply.messages.at(-1).text, BIG_TEXT);
        assert.equal(reply.more, true, `limit ${limit}`);
        if (count === limit)
            fits = limit;
        else
            assert.ok(count >= fits, `limit ${limit}: ${count} after ${fits} fitted`);
    }
    assert.ok(fits > 10 && fits < 200, `${fits} entries fit one reply`);

    // before: the newest before it; after: the oldest after it
    const before = await ok(alice, { type: 'room.history', room: 'hb-big', before: 150, limit: 200 });
    assert.deepEqual(seqs(before), range(150 - before.messages.length, 149));
    assert.equal(before.more, true);
    assert.ok(size(before) < MIB);
    for (const from of [0, 100]) {
        const reply = await ok(alice, { type: 'room.history', room: 'hb-big', after: from, limit: 200 });
        assert.deepEqual(seqs(reply), range(from + 1, from + reply.messages.length));
        assert.ok(reply.messages.length >= fits - 1 && reply.messages.length < 100);
        assert.equal(reply.more, true);
        assert.ok(size(reply) < MIB);
    }
    const tail = await ok(alice, { type: 'room.history', room: 'hb-big', after: 190, limit: 200 });
    assert.deepEqual(seqs(tail), range(191, 200));
    assert.equal(tail.more, false);
    // Paging back with before from a cut page reaches seq 1, every page whole
    let cursor;
    const seen = [];
    for (;;) {
        const reply = await ok(alice, { type: 'room.history', room: 'hb-big', limit: 200,
                                        ...(cursor ? { before: cursor } : {}) });
        seen.unshift(...seqs(reply));
        if (!reply.more)
            break;
        cursor = reply.messages[0].seq;
    }
    assert.deepEqual(seen, range(1, 200));

    // room.join by a newcomer keeps as many of the newest entries as fit
    const bob = await connectBig('hb_bob');
    const joined = await ok(bob, { type: 'room.join', room: 'hb-big' });
    assert.ok(size(joined) < MIB);
    assert.ok(joined.history.length >= 1 && joined.history.length <= 50);
    assert.deepEqual(joined.history.map((entry) => entry.seq),
                     range(202 - joined.history.length, 201));
    assert.equal(joined.history.at(-1).event, 'join');
});

test('a burst of 300 messages of 4,000 emoji into one room from three tabs: every one stored, in runs under the frame limit', async () => {
    // Sent at once, they wait in the room's queue while the first is stored;
    // one run of all of them would pass the envelope's 1 MiB body and cut
    // the store's link
    const carol = await connectBig('hb_carol');
    await ok(carol, { type: 'room.create', room: 'hb-burst' });
    const tabs = [carol, await connectBig('hb_carol'), await connectBig('hb_carol')];
    const send = { type: 'msg.send', room: 'hb-burst', text: BIG_TEXT };
    const acks = (await Promise.all(tabs.map((tab) => okAll(tab, range(1, 100).map(() => send), 100)))).flat();
    const acked = acks.map((ack) => ack.seq).sort((a, b) => a - b);
    assert.deepEqual(acked, range(acked[0], acked[0] + 299));
    const stored = [];
    let after = 0;
    for (;;) {
        const reply = await ok(carol, { type: 'room.history', room: 'hb-burst', after, limit: 200 });
        stored.push(...reply.messages.filter((entry) => entry.type === 'message'));
        if (!reply.more)
            break;
        after = reply.messages.at(-1).seq;
    }
    assert.deepEqual(stored.map((entry) => entry.seq), acked);
    assert.ok(stored.every((entry) => entry.text === BIG_TEXT));
});

// 30 owners create 100 public rooms each (the default quota), then each
// owner's 101st is refused
const OWNERS = 30;
const ROOMS_EACH = 100;
const roomName = (owner, index) => `d${String(owner).padStart(2, '0')}-${String(index).padStart(3, '0')}`;

test('3,000 rooms: the owned quota is 100 by default, room.directory pages through them all by name', async () => {
    for (let owner = 0; owner < OWNERS; owner++) {
        const client = await connectBig(`dir_owner${owner}`);
        await okAll(client, range(0, ROOMS_EACH - 1).map((index) => ({
            type: 'room.create', room: roomName(owner, index), description: LONG_DESCRIPTION })));
        // The 101st is past the quota; a repeat of an owned one is recognised first
        await fails(client, { type: 'room.create', room: `extra-${owner}` }, 'quota_exceeded');
        await fails(client, { type: 'room.create', room: roomName(owner, 7).toUpperCase() },
                    'room_exists');
        client.ws.terminate();
    }

    const reader = await connectBig('dir_reader');
    const names = [];
    let cursor;
    let pages = 0;
    do {
        const reply = await ok(reader, { type: 'room.directory', limit: 200,
                                         ...(cursor ? { cursor } : {}) });
        assert.ok(size(reply) < MIB);
        assert.ok(reply.rooms.length <= 200);
        for (const room of reply.rooms) {
            assert.equal(room.joined, false);
            assert.equal(room.private, false);
        }
        names.push(...reply.rooms.map((room) => room.name));
        cursor = reply.next;
        pages++;
    } while (cursor);
    const expected = [];
    for (let owner = 0; owner < OWNERS; owner++)
        for (let index = 0; index < ROOMS_EACH; index++)
            expected.push(roomName(owner, index));
    // Other tests' public rooms are listed too, in their places
    assert.deepEqual(names.filter((name) => /^d\d\d-\d\d\d$/.test(name)), expected);
    assert.deepEqual(names, [...names].sort((a, b) => a.toLowerCase() < b.toLowerCase() ? -1 : 1));
    assert.ok(pages >= 15, `${pages} pages`);

    // The default page is 50; a query is a prefix without regard to case
    const first = await ok(reader, { type: 'room.directory' });
    assert.equal(first.rooms.length, 50);
    assert.ok(first.next);
    const prefixed = await ok(reader, { type: 'room.directory', query: 'D07-0', limit: 200 });
    assert.deepEqual(prefixed.rooms.map((room) => room.name), range(0, 99).map((i) => roomName(7, i)));
    assert.equal(prefixed.next, undefined);
    const second = await ok(reader, { type: 'room.directory', query: 'd07', limit: 60 });
    const rest = await ok(reader, { type: 'room.directory', query: 'd07', limit: 60, cursor: second.next });
    assert.deepEqual([...second.rooms, ...rest.rooms].map((room) => room.name),
                     range(0, 99).map((i) => roomName(7, i)));
    assert.equal(rest.next, undefined);
});

test('room.list of long-description rooms: under 1 MiB a page, the user\'s rooms first, then 200 public ones, with next and more_public', async () => {
    // A fresh user: 200 public rooms, most recently active first
    const fresh = await connectBig('ls_fresh');
    const poster = await connectBig('ls_poster');
    await ok(poster, { type: 'room.join', room: roomName(3, 3) });
    await ok(poster, { type: 'msg.send', room: roomName(3, 3), text: 'awake' });
    const plain = await ok(fresh, { type: 'room.list' });
    assert.ok(size(plain) < MIB);
    assert.equal(plain.rooms.length, 200);
    assert.equal(plain.more_public, true);
    assert.equal(plain.next, undefined);
    assert.equal(plain.rooms[0].name, roomName(3, 3), 'the room just active comes first');
    assert.ok(plain.rooms.every((room) => room.joined === false));

    // A member of 1,000 rooms (the default joined quota): the 1,001st is refused
    const joiner = await connectBig('ls_joiner');
    const mine = [];
    for (let owner = 10; mine.length < 1000; owner++)
        for (let index = 0; index < ROOMS_EACH && mine.length < 1000; index++)
            mine.push(roomName(owner, index));
    await okAll(joiner, mine.map((room) => ({ type: 'room.join', room })));
    await fails(joiner, { type: 'room.join', room: roomName(0, 0) }, 'quota_exceeded');
    await ok(joiner, { type: 'room.join', room: mine[5] });        // a member already: ok

    const listed = [];
    let cursor;
    let pages = 0;
    let last;
    do {
        last = await ok(joiner, { type: 'room.list', ...(cursor ? { cursor } : {}) });
        assert.ok(size(last) < MIB, `page ${pages}: ${size(last)} bytes`);
        listed.push(...last.rooms);
        cursor = last.next;
        pages++;
        assert.ok(pages < 20);
    } while (cursor);
    assert.ok(pages >= 3, `1,000 rooms of 2 KB come in ${pages} pages`);
    assert.equal(last.more_public, true);
    const joined = listed.filter((room) => room.joined).map((room) => room.name);
    assert.deepEqual(joined, [...mine].sort());
    assert.deepEqual(listed.slice(0, 1000).map((room) => room.name), joined);
    const others = listed.slice(1000);
    assert.equal(others.length, 200);
    assert.ok(others.every((room) => !room.joined && !mine.includes(room.name)));
    assert.equal(new Set(listed.map((room) => room.name)).size, listed.length, 'no room twice');

    for (const cursor of ['x', 'j.', 'j.UPPER', 'p.1', 'p.201.5.abc', 'd.abc', 'p.a.b.c', 42])
        await fails(joiner, { type: 'room.list', cursor }, 'bad_request');
});

test('room.join lists at most join_members members, online first then by name, with more_members', async () => {
    const owner = await connectSmall('jm_owner');
    await ok(owner, { type: 'room.create', room: 'jm-room' });
    const gone = [];
    for (const name of ['jm_a', 'jm_b']) {
        const client = await connectSmall(name);
        await ok(client, { type: 'room.join', room: 'jm-room' });
        gone.push(client);
    }
    for (const name of ['jm_c', 'jm_d', 'jm_e']) {
        const client = await connectSmall(name);
        await ok(client, { type: 'room.join', room: 'jm-room' });
    }
    for (const client of gone)
        await client.close();
    // Until the room service has heard of the two closes
    assert.ok(await eventually(async () => {
        const { members } = await ok(owner, { type: 'room.members', room: 'jm-room' });
        return members[0].user === 'jm_a' && !members[0].online && !members[1].online;
    }));
    const late = await connectSmall('jm_z');
    const reply = await ok(late, { type: 'room.join', room: 'jm-room' });
    assert.deepEqual(reply.members, [{ user: 'jm_c', online: true }, { user: 'jm_d', online: true },
                                     { user: 'jm_e', online: true }]);
    assert.equal(reply.more_members, true);
    assert.equal(reply.room.members, 7);

    // A room that fits says nothing more
    await ok(owner, { type: 'room.create', room: 'jm-small' });
    const few = await ok(late, { type: 'room.join', room: 'jm-small' });
    assert.equal(few.members.length, 2);
    assert.equal(few.more_members, undefined);
});

test('room.members pages by name with next; a cursor it did not give is bad_request', async () => {
    const owner = await connectSmall('mp_owner');
    await ok(owner, { type: 'room.create', room: 'mp-room', max_participants: 20 });
    const names = ['mp_owner'];
    for (let index = 0; index < 8; index++) {
        const name = `mp_user${index}`;
        const client = await connectSmall(name);
        await ok(client, { type: 'room.join', room: 'mp-room' });
        names.push(name);
    }
    const pages = [];
    let cursor;
    do {
        const reply = await ok(owner, { type: 'room.members', room: 'mp-room', ...(cursor ? { cursor } : {}) });
        pages.push(reply.members.map((member) => member.user));
        cursor = reply.next;
    } while (cursor);
    assert.deepEqual(pages.map((page) => page.length), [4, 4, 1]);
    assert.deepEqual(pages.flat(), [...names].sort());
    for (const cursor of ['mp_user3', 'm.', 'm.MP_USER3', 'm.a b', 'j.mp-room', 7, true])
        await fails(owner, { type: 'room.members', room: 'mp-room', cursor }, 'bad_request');
});

test('quota_exceeded past the owned and joined quotas; a repeated create is room_exists first', async () => {
    const alice = await connectSmall('qt_alice');
    await ok(alice, { type: 'room.create', room: 'qt-one' });
    await ok(alice, { type: 'room.create', room: 'qt-two' });
    const over = await fails(alice, { type: 'room.create', room: 'qt-three' }, 'quota_exceeded');
    assert.match(over.message, /2 rooms/);
    await fails(alice, { type: 'room.create', room: 'QT-ONE' }, 'room_exists');
    const bob = await connectSmall('qt_bob');
    await fails(bob, { type: 'room.join', room: 'qt-three' }, 'no_such_room');   // nothing made

    // alice belongs to her two; one more makes three, the most
    await ok(bob, { type: 'room.create', room: 'qt-bobs' });
    await ok(bob, { type: 'room.create', room: 'qt-bobs2' });
    await ok(alice, { type: 'room.join', room: 'qt-bobs' });
    await fails(alice, { type: 'room.join', room: 'qt-bobs2' }, 'quota_exceeded');
    await ok(alice, { type: 'room.join', room: 'qt-bobs' });          // a member already
    const { members } = await ok(bob, { type: 'room.members', room: 'qt-bobs2' });
    assert.deepEqual(members.map((member) => member.user), ['qt_bob']);
    // Leaving makes room for another
    await ok(alice, { type: 'room.leave', room: 'qt-bobs' });
    await ok(alice, { type: 'room.join', room: 'qt-bobs2' });
});

test('invitations count against the message rate: a burst of them gets rate_limited', async () => {
    const alice = await connectSmall('iv_alice');
    await ok(alice, { type: 'room.create', room: 'iv-room', private: true });
    const names = [];
    for (let index = 0; index < 8; index++) {
        const client = await connectSmall(`iv_user${index}`);
        names.push(client.user);
    }
    // The invitations and one message right behind them, in one burst:
    // the burst of 4 is spent before the message comes
    const replies = await Promise.all([
        ...names.map((user) => alice.request({ type: 'room.invite', room: 'iv-room', user })),
        alice.request({ type: 'msg.send', room: 'iv-room', text: 'hi' })]);
    const limited = replies.filter((reply) => reply.type === 'error' && reply.code === 'rate_limited');
    assert.ok(limited.length >= 4, JSON.stringify(replies));
    // rooms.msg_rate=1: the next token is at most a second away
    assert.ok(limited.every((reply) => Number.isInteger(reply.retry_after_ms)
                                     && reply.retry_after_ms >= 1 && reply.retry_after_ms <= 1000));
    assert.ok(replies.filter((reply) => reply.type === 'ok').length >= 1);
    assert.equal(replies.at(-1).code, 'rate_limited', 'a message counts against the same allowance');
});

test('room.list with list_public=2: own rooms first, two other public rooms most recently active first, more_public', async () => {
    const owner = await connectSmall('rl_owner');
    await ok(owner, { type: 'room.create', room: 'rl-older' });
    await ok(owner, { type: 'room.create', room: 'rl-newer' });
    const viewer = await connectSmall('rl_viewer');
    await ok(viewer, { type: 'room.create', room: 'rl-mine', private: true });
    await ok(owner, { type: 'msg.send', room: 'rl-older', text: 'wake up' });
    const reply = await ok(viewer, { type: 'room.list' });
    assert.equal(reply.rooms[0].name, 'rl-mine');
    assert.equal(reply.rooms[0].joined, true);
    assert.deepEqual(reply.rooms.slice(1).map((room) => room.name), ['rl-older', 'rl-newer']);
    assert.equal(reply.rooms.length, 3);
    assert.equal(reply.more_public, true);
    assert.equal(reply.next, undefined);
});

test('room.directory refuses a bad query, limit or cursor with bad_request', async () => {
    const alice = await connectSmall('dv_alice');
    for (const fields of [{ query: 'a b' }, { query: 'x'.repeat(65) }, { query: 5 }, { limit: 0 },
                          { limit: 201 }, { limit: 'ten' }, { cursor: 'd.' }, { cursor: 'j.abc' },
                          { cursor: 'd.ABC' }, { cursor: {} }])
        await fails(alice, { type: 'room.directory', ...fields }, 'bad_request');
    const reply = await ok(alice, { type: 'room.directory', query: '', limit: 1 });
    assert.equal(reply.rooms.length, 1);
});

test('a NUL in the text of msg.send is invalid_text', async () => {
    const alice = await connectSmall('nul_alice');
    await ok(alice, { type: 'room.create', room: 'nul-room' });
    await fails(alice, { type: 'msg.send', room: 'nul-room', text: 'a\u0000b' }, 'invalid_text');
    const { messages } = await ok(alice, { type: 'room.history', room: 'nul-room' });
    assert.deepEqual(messages, []);
});
