// Read markers, unread counts and mentions (PROTOCOL.md 1.1, "Read markers,
// unread counts and mentions"; proto/CLIENT-PROTOCOL.md, "Rooms"), and the
// rooms one is invited to in room.list ("Directory and limits"): room.read
// and each of its errors, the read events on every session of the reader,
// the marker moved by one's own message, last_seq/read_seq/unread/mentions
// in room.list counting what arrived while a user was away, read_seq in
// room.join, the mention rule on real messages, invitations listed for a
// user invited while offline, and all of it after a restart; a fast
// sender's read events held back and summed up (rooms.read_event_ms). Runs on
// store-sqlite, and on store-mongo with PARLEY_TEST_STORE=mongo.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ok, fails, nextEntry, startRoomsParley, withUsers } from '../lib/rooms.js';
import { chatSuite, acrossRestart } from '../lib/chat.js';

const { connect } = chatSuite('rooms');

const readEvent = (client, room, seq) =>
    client.nextEvent((frame) => frame.type === 'read' && frame.room === room
                                && (seq === undefined || frame.seq === seq));

// The room of the user's room.list named name (all pages)
async function listed(client, name) {
    let cursor;
    do {
        const page = await ok(client, { type: 'room.list', ...(cursor ? { cursor } : {}) });
        const room = page.rooms.find((each) => each.name === name);
        if (room)
            return room;
        cursor = page.next;
    } while (cursor);
    return undefined;
}

const counts = (room) => room && { last_seq: room.last_seq, read_seq: room.read_seq,
                                   unread: room.unread, mentions: room.mentions };

test('room.read moves the marker forward only, never past the newest entry, and answers read_seq', async () => {
    const alice = await connect('rr_alice');
    const bob = await connect('rr_bob');
    await ok(alice, { type: 'room.create', room: 'rr-room' });
    const joined = await ok(bob, { type: 'room.join', room: 'rr-room' });
    assert.equal(joined.read_seq, 1, 'a newcomer starts at its own join entry');
    for (let index = 2; index <= 5; index++)
        await ok(alice, { type: 'msg.send', room: 'rr-room', text: `m${index}` });
    assert.deepEqual(counts(await listed(bob, 'rr-room')),
                     { last_seq: 5, read_seq: 1, unread: 4, mentions: 0 });

    assert.deepEqual((await ok(bob, { type: 'room.read', room: 'rr-room', seq: 3 })).read_seq, 3);
    assert.deepEqual(counts(await listed(bob, 'rr-room')),
                     { last_seq: 5, read_seq: 3, unread: 2, mentions: 0 });
    // Never backward
    assert.equal((await ok(bob, { type: 'room.read', room: 'RR-ROOM', seq: 2 })).read_seq, 3);
    // Never past the newest entry
    assert.equal((await ok(bob, { type: 'room.read', room: 'rr-room', seq: 1000 })).read_seq, 5);
    assert.deepEqual(counts(await listed(bob, 'rr-room')),
                     { last_seq: 5, read_seq: 5, unread: 0, mentions: 0 });
    // Joining again changes nothing and answers the marker as it is
    assert.equal((await ok(bob, { type: 'room.join', room: 'rr-room' })).read_seq, 5);
});

test('room.read refuses a bad seq (bad_request), an unknown room (no_such_room) and non-members (not_member)', async () => {
    const alice = await connect('re_alice');
    const eve = await connect('re_eve');
    await ok(alice, { type: 'room.create', room: 're-room' });
    await ok(alice, { type: 'msg.send', room: 're-room', text: 'one' });
    for (const seq of [0, -1, 1.5, '3', null, true])
        await fails(alice, { type: 'room.read', room: 're-room', seq }, 'bad_request');
    await fails(alice, { type: 'room.read', room: 're-room' }, 'bad_request');
    await fails(alice, { type: 'room.read', seq: 1 }, 'bad_request');
    await fails(alice, { type: 'room.read', room: 're-nowhere', seq: 1 }, 'no_such_room');
    await fails(alice, { type: 'room.read', room: 'not a room', seq: 1 }, 'no_such_room');
    await fails(eve, { type: 'room.read', room: 're-room', seq: 1 }, 'not_member');
    // The owner's marker moved with her own message, and nothing else moved it
    assert.equal((await listed(alice, 're-room')).read_seq, 1);
    await ok(alice, { type: 'room.leave', room: 're-room' });
    await fails(alice, { type: 'room.read', room: 're-room', seq: 1 }, 'not_member');
});

test('a marker that moves sends a read event to every session of the user, and one that does not sends none', async () => {
    const alice = await connect('rv_alice');
    const tab1 = await connect('rv_bob');
    const tab2 = await connect('rv_bob');
    const other = await connect('rv_carol');
    await ok(alice, { type: 'room.create', room: 'rv-room' });
    await ok(tab1, { type: 'room.join', room: 'rv-room' });
    await ok(other, { type: 'room.join', room: 'rv-room' });
    await ok(alice, { type: 'msg.send', room: 'rv-room', text: 'hello' });   // seq 3

    await ok(tab1, { type: 'room.read', room: 'rv-room', seq: 3 });
    assert.deepEqual(await readEvent(tab1, 'rv-room'), { type: 'read', room: 'rv-room', seq: 3,
                                                         __binary: false });
    assert.equal((await readEvent(tab2, 'rv-room')).seq, 3);
    // Reading again moves nothing: no event. bob's own message moves his
    // marker (every session hears it), so the next read event is that one.
    await ok(tab2, { type: 'room.read', room: 'rv-room', seq: 3 });
    const sent = await ok(tab2, { type: 'msg.send', room: 'rv-room', text: 'from bob' });
    assert.equal(sent.seq, 4);
    assert.equal((await readEvent(tab1, 'rv-room')).seq, 4);
    assert.equal((await readEvent(tab2, 'rv-room')).seq, 4);
    // Nobody else hears of bob's markers; alice hears of her own send
    await ok(alice, { type: 'msg.send', room: 'rv-room', text: 'again' });
    assert.equal((await readEvent(alice, 'rv-room')).seq, 3);     // her first message
    assert.equal((await readEvent(alice, 'rv-room')).seq, 5);
    await nextEntry(other, 'rv-room', (entry) => entry.seq === 5);
    assert.ok(!other.events.some((frame) => frame.type === 'read'), JSON.stringify(other.events));
    assert.ok(!tab1.events.some((frame) => frame.type === 'read'));
    assert.deepEqual(counts(await listed(tab1, 'rv-room')),
                     { last_seq: 5, read_seq: 4, unread: 1, mentions: 0 });
});

// Every frame of a client in arrival order
function recordFrames(client) {
    const frames = [];
    client.ws.on('message', (data) => frames.push(JSON.parse(data.toString())));
    return frames;
}

// The read events of room among frames, checked as a client relies on them:
// each names one of the user's messages (mine), comes after that message's
// own event, and moves forward
function checkedReads(frames, room, mine) {
    const seen = new Set();
    const reads = [];
    for (const frame of frames) {
        if (frame.type === 'message' && frame.room === room)
            seen.add(frame.seq);
        if (frame.type !== 'read' || frame.room !== room)
            continue;
        assert.ok(mine.has(frame.seq), `read ${frame.seq} is one of the sender's messages`);
        assert.ok(seen.has(frame.seq), `read ${frame.seq} comes after its message`);
        assert.ok(reads.length === 0 || frame.seq > reads.at(-1), `read ${frame.seq} after ${reads.at(-1)}`);
        reads.push(frame.seq);
    }
    return reads;
}

async function withServer(args, body) {
    await withUsers(await startRoomsParley({ args: ['--option', 'rooms.msg_rate=1000',
                                                    '--option', 'rooms.msg_burst=1000', ...args] }),
                    body);
}

// alice in two tabs, whose first creates room, and bob in it (seq 1); the
// second tab's frames recorded from then on
async function twoTabsAndBob(connect, prefix, room) {
    const tab1 = await connect(`${prefix}_alice`);
    const tab2 = await connect(`${prefix}_alice`);
    const bob = await connect(`${prefix}_bob`);
    await ok(tab1, { type: 'room.create', room });
    await ok(bob, { type: 'room.join', room });
    return { tab1, tab2, bob, frames: recordFrames(tab2) };
}

test('sends in flight together: each read event follows its message, they only go forward, and the last names the last message', async () => {
    const alice = await connect('rb_alice');
    const tab2 = await connect('rb_alice');
    const bob = await connect('rb_bob');
    await ok(alice, { type: 'room.create', room: 'rb-room' });
    await ok(bob, { type: 'room.join', room: 'rb-room' });                     // seq 1
    // Every frame of the second tab in arrival order, to check the order
    const frames = recordFrames(tab2);
    // Sent at once, so that the room stores them as runs of several, with
    // bob's among them
    const sends = [];
    for (let index = 0; index < 12; index++) {
        sends.push(ok(alice, { type: 'msg.send', room: 'rb-room', text: `burst ${index}` }));
        if (index % 4 === 0)
            sends.push(ok(bob, { type: 'msg.send', room: 'rb-room', text: `between ${index}` }));
    }
    const replies = await Promise.all(sends);
    const mine = new Set();
    for (let index = 0, at = 0; index < 12; index++, at++) {
        mine.add(replies[at].seq);
        if (index % 4 === 0)
            at++;
    }
    const last = Math.max(...mine);
    await readEvent(tab2, 'rb-room', last);
    assert.ok(frames.every((frame) => frame.type !== 'read' || frame.room === 'rb-room'));
    assert.equal(checkedReads(frames, 'rb-room', mine).at(-1), last);
    assert.equal((await listed(alice, 'rb-room')).read_seq, last);
    assert.ok(!bob.events.some((frame) => frame.type === 'read' && frame.seq > 1
                                         && mine.has(frame.seq)), JSON.stringify(bob.events));
});

test('a fast sender: the first read event at once, the newest held back and sent once the interval is over (read_event_ms=1000)', async () => {
    await withServer(['--option', 'rooms.read_event_ms=1000'], async (connect) => {
        const { tab1, tab2, bob, frames } = await twoTabsAndBob(connect, 'rh', 'rh-room');
        // One after the other, each answered before the next: runs of one
        const mine = [];
        for (let index = 0; index < 6; index++)
            mine.push((await ok(tab1, { type: 'msg.send', room: 'rh-room', text: `quick ${index}` })).seq);
        // The marker itself moved with the last send, held event or not
        assert.equal((await listed(tab1, 'rh-room')).read_seq, mine.at(-1));
        await readEvent(tab2, 'rh-room', mine.at(-1));
        const reads = checkedReads(frames, 'rh-room', new Set(mine));
        assert.equal(reads[0], mine[0], 'the first send is told of at once');
        assert.equal(reads.at(-1), mine.at(-1), 'the newest is told of last');
        assert.ok(reads.length < mine.length, `summed up: ${reads} for ${mine}`);
        // bob's own event stream has none of alice's markers
        assert.ok(!bob.events.some((frame) => frame.type === 'read' && mine.includes(frame.seq)));
    });
});

test('a room.read that tells more than the held read event settles it: no event goes backward (read_event_ms=1000)', async () => {
    await withServer(['--option', 'rooms.read_event_ms=1000'], async (connect) => {
        const { tab1, tab2, bob, frames } = await twoTabsAndBob(connect, 'rs', 'rs-room');
        const first = (await ok(tab1, { type: 'msg.send', room: 'rs-room', text: 'one' })).seq;
        const second = (await ok(tab1, { type: 'msg.send', room: 'rs-room', text: 'two' })).seq;
        const bobs = (await ok(bob, { type: 'msg.send', room: 'rs-room', text: 'three' })).seq;
        await nextEntry(tab1, 'rs-room', (entry) => entry.seq === bobs);
        assert.equal((await ok(tab1, { type: 'room.read', room: 'rs-room', seq: bobs })).read_seq, bobs);
        await readEvent(tab2, 'rs-room', bobs);
        // Past the interval and a half, when a held event would have gone
        // (waiting longer can only let a late one pass unseen, never fail)
        await new Promise((resolve) => setTimeout(resolve, 2000));
        const reads = frames.filter((frame) => frame.type === 'read' && frame.room === 'rs-room')
                            .map((frame) => frame.seq);
        assert.equal(reads[0], first);
        assert.equal(reads.at(-1), bobs, `nothing after ${bobs}: ${reads}`);
        assert.ok(reads.every((seq, index) => index === 0 || seq > reads[index - 1]), `${reads}`);
        assert.ok(second > first && bobs > second);
    });
});

test('read_event_ms=0: one read event for each run of sends, as before', async () => {
    await withServer(['--option', 'rooms.read_event_ms=0'], async (connect) => {
        const tab1 = await connect('r0_alice');
        const tab2 = await connect('r0_alice');
        await ok(tab1, { type: 'room.create', room: 'r0-room' });
        const frames = recordFrames(tab2);
        const mine = [];
        for (let index = 0; index < 4; index++)
            mine.push((await ok(tab1, { type: 'msg.send', room: 'r0-room', text: `each ${index}` })).seq);
        await readEvent(tab2, 'r0-room', mine.at(-1));
        assert.deepEqual(checkedReads(frames, 'r0-room', new Set(mine)), mine);
    });
});

test('room.list counts what arrived while the user was away, and mentions among it', async () => {
    const alice = await connect('ru_alice');
    let bob = await connect('ru_bob');
    await ok(alice, { type: 'room.create', room: 'ru-room' });
    await ok(alice, { type: 'room.create', room: 'ru-quiet' });
    await ok(bob, { type: 'room.join', room: 'ru-room' });         // seq 1
    await ok(bob, { type: 'room.join', room: 'ru-quiet' });
    bob.ws.terminate();
    await ok(alice, { type: 'msg.send', room: 'ru-room', text: 'hi @ru_bob' });
    await ok(alice, { type: 'msg.send', room: 'ru-room', text: 'no mention here' });
    await ok(alice, { type: 'msg.send', room: 'ru-room', text: '@RU_BOB, and @ru_alice' });
    await ok(alice, { type: 'msg.send', room: 'ru-room', text: 'mail ru_bob@example.com' });

    bob = await connect('ru_bob');
    const rooms = (await ok(bob, { type: 'room.list' })).rooms;
    const room = rooms.find((each) => each.name === 'ru-room');
    assert.deepEqual(counts(room), { last_seq: 5, read_seq: 1, unread: 4, mentions: 2 });
    assert.equal(room.joined, true);
    assert.deepEqual(counts(rooms.find((each) => each.name === 'ru-quiet')),
                     { last_seq: 1, read_seq: 1, unread: 0, mentions: 0 });
    // The sender's own messages are never unread for her, even mentioning herself
    assert.deepEqual(counts(await listed(alice, 'ru-room')),
                     { last_seq: 5, read_seq: 5, unread: 0, mentions: 0 });
    await ok(bob, { type: 'room.read', room: 'ru-room', seq: 3 });
    assert.deepEqual(counts(await listed(bob, 'ru-room')),
                     { last_seq: 5, read_seq: 3, unread: 2, mentions: 1 });
    // Public rooms one has not joined carry none of the four
    await ok(alice, { type: 'room.create', room: 'ru-other' });
    const otherRoom = await listed(bob, 'ru-other');
    assert.equal(otherRoom.joined, false);
    assert.deepEqual(counts(otherRoom), { last_seq: undefined, read_seq: undefined,
                                          unread: undefined, mentions: undefined });
});

test('mentions: found at send time among the members, longest name, registered spelling, first-mention order, each once', async () => {
    const alice = await connect('Mn_Alice');
    const bob = await connect('mn_bob');
    const bobSmith = await connect('mn_bob.smith');
    const outsider = await connect('mn_out');
    await ok(alice, { type: 'room.create', room: 'mn-room' });
    await ok(bob, { type: 'room.join', room: 'mn-room' });
    await ok(bobSmith, { type: 'room.join', room: 'mn-room' });
    const cases = [
        ['hello @mn_bob.', ['mn_bob']],
        ['@mn_bob.smith, @mn_alice and @mn_bob again @MN_BOB', ['mn_bob.smith', 'Mn_Alice', 'mn_bob']],
        ['write to someone@mn_bob.com or x.@mn_bob', undefined],
        ['@mn_bob_ @mn_bob- @mn_bobby @mn_out', undefined],     // mn_out is no member
        ['(@mn_bob.smithy)', ['mn_bob']],
        ['no at sign', undefined],
    ];
    for (const [text, mentions] of cases) {
        const sent = await ok(alice, { type: 'msg.send', room: 'mn-room', text });
        const entry = await nextEntry(bob, 'mn-room', (each) => each.seq === sent.seq);
        assert.deepEqual(entry.mentions, mentions, text);
        assert.equal('mentions' in entry, mentions !== undefined, text);
    }
    // As stored: history gives the same
    const history = (await ok(bob, { type: 'room.history', room: 'mn-room', after: 2 })).messages;
    assert.deepEqual(history.map((entry) => entry.mentions), cases.map(([, mentions]) => mentions));
    // Only members are found: the outsider joins, and only later messages name them
    await ok(outsider, { type: 'room.join', room: 'mn-room' });
    const sent = await ok(alice, { type: 'msg.send', room: 'mn-room', text: 'welcome @mn_out' });
    assert.deepEqual((await nextEntry(outsider, 'mn-room', (e) => e.seq === sent.seq)).mentions,
                     ['mn_out']);
    assert.deepEqual(counts(await listed(bob, 'mn-room')),
                     { last_seq: 10, read_seq: 1, unread: 7, mentions: 3 });
    assert.deepEqual(counts(await listed(outsider, 'mn-room')),
                     { last_seq: 10, read_seq: 9, unread: 1, mentions: 1 });
});

test('room.list lists the private rooms a user was invited to while offline, with invited, until joined', async () => {
    const owner = await connect('iv_owner');
    let guest = await connect('iv_guest');
    guest.ws.terminate();
    await ok(owner, { type: 'room.create', room: 'iv-secret', private: true });
    await ok(owner, { type: 'room.create', room: 'iv-attic', private: true });
    await ok(owner, { type: 'room.create', room: 'iv-open' });
    await ok(owner, { type: 'room.create', room: 'iv-hidden', private: true });
    await ok(owner, { type: 'room.invite', room: 'iv-secret', user: 'iv_guest' });
    await ok(owner, { type: 'room.invite', room: 'IV-ATTIC', user: 'IV_GUEST' });
    await ok(owner, { type: 'room.invite', room: 'iv-open', user: 'iv_guest' });

    guest = await connect('iv_guest');
    const { rooms } = await ok(guest, { type: 'room.list' });
    const invited = rooms.filter((room) => room.invited);
    assert.deepEqual(invited.map((room) => room.name), ['iv-attic', 'iv-secret']);
    for (const room of invited) {
        assert.equal(room.joined, false);
        assert.equal(room.private, true);
        assert.equal(room.read_seq, undefined);
    }
    // Invited rooms come after the joined ones and before the public ones
    const names = rooms.map((room) => room.name);
    assert.ok(names.indexOf('iv-secret') < names.indexOf('iv-open'));
    assert.equal(rooms.find((room) => room.name === 'iv-open').invited, undefined);
    assert.equal(names.includes('iv-hidden'), false);
    // Joining uses the invitation up: the room is listed as joined
    assert.equal((await ok(guest, { type: 'room.join', room: 'iv-attic' })).read_seq, 1);
    const after = await listed(guest, 'iv-attic');
    assert.equal(after.joined, true);
    assert.equal(after.invited, undefined);
    assert.deepEqual(counts(after), { last_seq: 1, read_seq: 1, unread: 0, mentions: 0 });
    // The owner sees no invitation of her own
    assert.ok(!(await ok(owner, { type: 'room.list' })).rooms.some((room) => room.invited));
});

test('markers, counts, mentions and invitations survive a restart', async () => {
    await acrossRestart('rooms', {
        setup: async (connect) => {
            const alice = await connect('rs_alice');
            const bob = await connect('rs_bob');
            await connect('rs_carol');
            await ok(alice, { type: 'room.create', room: 'rs-room' });
            await ok(alice, { type: 'room.create', room: 'rs-secret', private: true });
            await ok(alice, { type: 'room.invite', room: 'rs-secret', user: 'rs_carol' });
            await ok(bob, { type: 'room.join', room: 'rs-room' });                     // 1
            await ok(alice, { type: 'msg.send', room: 'rs-room', text: 'one @rs_bob' }); // 2
            await ok(alice, { type: 'msg.send', room: 'rs-room', text: 'two' });         // 3
            await ok(bob, { type: 'room.read', room: 'rs-room', seq: 2 });
            await ok(alice, { type: 'msg.send', room: 'rs-room', text: 'three @rs_bob' }); // 4
        },
        check: async (connect) => {
            const bob2 = await connect('rs_bob');
            const carol2 = await connect('rs_carol');
            const alice2 = await connect('rs_alice');
            assert.deepEqual(counts(await listed(bob2, 'rs-room')),
                             { last_seq: 4, read_seq: 2, unread: 2, mentions: 1 });
            assert.deepEqual(counts(await listed(alice2, 'rs-room')),
                             { last_seq: 4, read_seq: 4, unread: 0, mentions: 0 });
            assert.equal((await listed(carol2, 'rs-secret'))?.invited, true);
            const history = (await ok(bob2, { type: 'room.history', room: 'rs-room' })).messages;
            assert.deepEqual(history.map((entry) => entry.mentions),
                             [undefined, ['rs_bob'], undefined, ['rs_bob']]);
            // The marker still never goes back
            assert.equal((await ok(bob2, { type: 'room.read', room: 'rs-room', seq: 1 })).read_seq, 2);
            assert.equal((await ok(bob2, { type: 'room.join', room: 'rs-room' })).read_seq, 2);
        },
    });
});
