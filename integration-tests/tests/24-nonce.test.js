// msg.send's nonce (PROTOCOL.md 1.1, "Outcomes, retries and idempotency";
// proto/CLIENT-PROTOCOL.md, "Nonces"): a nonce's rules (bad_request), the
// entry carrying it live and in history, a repeat answered with the first
// message's seq and ts and duplicate: true while nothing new is stored or
// delivered, from another connection, before the rate limit and after the
// sender left the room, after a restart, past the rooms plugin's own memory
// of nonces (the store finds the repeat inside a run, which goes on gap-free),
// and two sends of one nonce at once. Real parley, real WebSockets; run on
// store-sqlite and again on store-mongo (PARLEY_TEST_STORE=mongo).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sleep } from '../lib/harness.js';
import {
    startRoomsParley, ok, fails, ISO_MS, nextEntry, BAD_NONCES, assertRepeatOf,
} from '../lib/rooms.js';
import { chatSuite, acrossRestart } from '../lib/chat.js';

const { connect, history } = chatSuite('rooms');
const messages = (entries) => entries.filter((entry) => entry.type === 'message');
const seqs = (entries) => entries.map((entry) => entry.seq);

// The events of type message a client got for the room so far (and waits a
// moment first, so that one that should not come has had its chance)
async function messageEvents(client, room) {
    await ok(client, { type: 'ping' });
    await sleep(200);
    return client.events.filter((frame) => frame.type === 'message' && frame.room === room);
}

test('a nonce must be 1 to 64 letters, digits, _ or -: anything else is bad_request and stores nothing', async () => {
    const alice = await connect('nb_alice');
    await ok(alice, { type: 'room.create', room: 'nb-room' });
    for (const nonce of BAD_NONCES)
        await fails(alice, { type: 'msg.send', room: 'nb-room', text: 'hi', nonce }, 'bad_request');
    assert.deepEqual(messages(await history(alice, 'nb-room')), []);
    // The longest, and every kind of character, are fine
    await ok(alice, { type: 'msg.send', room: 'nb-room', text: 'a', nonce: 'x'.repeat(64) });
    await ok(alice, { type: 'msg.send', room: 'nb-room', text: 'b', nonce: 'AZaz09_-' });
    await ok(alice, { type: 'msg.send', room: 'nb-room', text: 'c', nonce: 'z' });
    assert.equal(messages(await history(alice, 'nb-room')).length, 3);
});

test('the entry of a message sent with a nonce carries it, live and in history; one without has none', async () => {
    const alice = await connect('ne_alice');
    const bob = await connect('ne_bob');
    await ok(alice, { type: 'room.create', room: 'ne-room' });
    await ok(bob, { type: 'room.join', room: 'ne-room' });
    const live = nextEntry(bob, 'ne-room', (e) => e.type === 'message' && e.text === 'with');
    const sent = await ok(alice, { type: 'msg.send', room: 'ne-room', text: 'with', nonce: 'n-1' });
    assert.deepEqual(Object.keys(sent).filter((key) => key !== '__binary').sort(),
                     ['id', 'seq', 'ts', 'type']);
    const entry = await live;
    assert.equal(entry.nonce, 'n-1');
    assert.equal(entry.seq, sent.seq);
    assert.equal(entry.ts, sent.ts);
    const plain = nextEntry(bob, 'ne-room', (e) => e.type === 'message' && e.text === 'without');
    await ok(alice, { type: 'msg.send', room: 'ne-room', text: 'without' });
    assert.equal('nonce' in await plain, false);
    const stored = messages(await history(bob, 'ne-room'));
    assert.deepEqual(stored.map((e) => [e.text, e.nonce]), [['with', 'n-1'], ['without', undefined]]);
    const { __binary, ...liveEntry } = entry;
    assert.deepEqual(stored[0], liveEntry);
});

test('a repeated nonce answers the first seq and ts with duplicate: true, and nothing new is stored or delivered', async () => {
    const alice = await connect('nr_alice');
    const bob = await connect('nr_bob');
    await ok(alice, { type: 'room.create', room: 'nr-room' });
    await ok(bob, { type: 'room.join', room: 'nr-room' });
    const first = await ok(alice, { type: 'msg.send', room: 'nr-room', text: 'once', nonce: 'abc' });
    assert.equal(first.duplicate, undefined);
    assert.match(first.ts, ISO_MS);
    await sleep(20);
    for (let again = 0; again < 3; again++) {
        // The text does not matter: the nonce says it is the same message
        const repeat = await ok(alice, { type: 'msg.send', room: 'nr-room', text: 'once more',
                                         nonce: 'abc' });
        assertRepeatOf(repeat, first);
    }
    // From another connection of the same user, too
    const again = await connect('nr_alice');
    const other = await ok(again, { type: 'msg.send', room: 'nr-room', text: 'once', nonce: 'abc' });
    assertRepeatOf(other, first);
    assert.deepEqual(messages(await history(bob, 'nr-room')).map((e) => e.text), ['once']);
    assert.equal((await messageEvents(bob, 'nr-room')).length, 1);
    // The next message takes the next seq: no gap, no double
    const next = await ok(alice, { type: 'msg.send', room: 'nr-room', text: 'next', nonce: 'abd' });
    assert.equal(next.seq, first.seq + 1);
});

test('a nonce is the same message only from the same user in the same room', async () => {
    const alice = await connect('nu_alice');
    const bob = await connect('nu_bob');
    await ok(alice, { type: 'room.create', room: 'nu-one' });
    await ok(alice, { type: 'room.create', room: 'nu-two' });
    await ok(bob, { type: 'room.join', room: 'nu-one' });
    const mine = await ok(alice, { type: 'msg.send', room: 'nu-one', text: 'a', nonce: 'same' });
    const theirs = await ok(bob, { type: 'msg.send', room: 'nu-one', text: 'b', nonce: 'same' });
    const elsewhere = await ok(alice, { type: 'msg.send', room: 'nu-two', text: 'c', nonce: 'same' });
    assert.equal(theirs.duplicate, undefined);
    assert.equal(elsewhere.duplicate, undefined);
    assert.equal(theirs.seq, mine.seq + 1);
    // A nonce is the client's string: its case counts
    const upper = await ok(alice, { type: 'msg.send', room: 'nu-one', text: 'd', nonce: 'SAME' });
    assert.equal(upper.duplicate, undefined);
    assert.deepEqual(messages(await history(alice, 'nu-one')).map((e) => [e.from, e.text, e.nonce]),
                     [['nu_alice', 'a', 'same'], ['nu_bob', 'b', 'same'], ['nu_alice', 'd', 'SAME']]);
});

test('a repeat is answered duplicate after the sender left the room; a new send is not_member', async () => {
    const alice = await connect('nl_alice');
    const bob = await connect('nl_bob');
    await ok(alice, { type: 'room.create', room: 'nl-room' });
    await ok(bob, { type: 'room.join', room: 'nl-room' });
    const first = await ok(bob, { type: 'msg.send', room: 'nl-room', text: 'bye', nonce: 'left-1' });
    await ok(bob, { type: 'room.leave', room: 'nl-room' });
    const repeat = await ok(bob, { type: 'msg.send', room: 'nl-room', text: 'bye', nonce: 'left-1' });
    assertRepeatOf(repeat, first);
    await fails(bob, { type: 'msg.send', room: 'nl-room', text: 'new', nonce: 'left-2' }, 'not_member');
    await fails(bob, { type: 'msg.send', room: 'nl-room', text: 'new' }, 'not_member');
    // One who never was a member has no repeat to make
    const carol = await connect('nl_carol');
    await fails(carol, { type: 'msg.send', room: 'nl-room', text: 'x', nonce: 'left-1' }, 'not_member');
    assert.deepEqual(messages(await history(alice, 'nl-room')).map((e) => e.text), ['bye']);
});

test('a repeat is answered duplicate while the sender is rate limited; a new send is rate_limited with retry_after_ms', async () => {
    const limited = await startRoomsParley({ args: ['--option', 'rooms.msg_rate=0.2',
                                                    '--option', 'rooms.msg_burst=2'] });
    try {
        const alice = await connect('nt_alice', limited);
        await ok(alice, { type: 'room.create', room: 'nt-room' });
        const one = await ok(alice, { type: 'msg.send', room: 'nt-room', text: '1', nonce: 'r1' });
        await ok(alice, { type: 'msg.send', room: 'nt-room', text: '2', nonce: 'r2' });
        const refused = await fails(alice, { type: 'msg.send', room: 'nt-room', text: '3', nonce: 'r3' },
                                    'rate_limited');
        assert.ok(Number.isInteger(refused.retry_after_ms) && refused.retry_after_ms > 0,
                  JSON.stringify(refused));
        const repeat = await ok(alice, { type: 'msg.send', room: 'nt-room', text: '1', nonce: 'r1' });
        assertRepeatOf(repeat, one);
        await fails(alice, { type: 'msg.send', room: 'nt-room', text: '3' }, 'rate_limited');
        await fails(alice, { type: 'msg.send', room: 'nt-room', text: '3', nonce: 'r3' }, 'rate_limited');
        assert.deepEqual(messages(await history(alice, 'nt-room')).map((e) => e.text), ['1', '2']);
    } finally {
        await limited.stop();
    }
});

test('with no memory of nonces in the rooms plugin, the store finds repeats in a run: they answer duplicate, the rest stored gap-free', async () => {
    const cold = await startRoomsParley({ args: ['--option', 'rooms.nonce_cache=0',
                                                 '--option', 'rooms.msg_rate=0'] });
    try {
        const alice = await connect('nc_alice', cold);
        const bob = await connect('nc_bob', cold);
        await ok(alice, { type: 'room.create', room: 'nc-room' });
        await ok(bob, { type: 'room.join', room: 'nc-room' });
        const firsts = [];
        for (let index = 0; index < 5; index++)
            firsts.push(await ok(alice, { type: 'msg.send', room: 'nc-room', text: `m${index}`,
                                          nonce: `c${index}` }));
        // New and repeated nonces sent at once: they go to the store in runs
        const sends = [];
        for (let index = 0; index < 10; index++)
            sends.push(ok(alice, { type: 'msg.send', room: 'nc-room', text: `m${index}`,
                                   nonce: `c${index}` }));
        const replies = await Promise.all(sends);
        for (let index = 0; index < 5; index++)
            assertRepeatOf(replies[index], firsts[index]);
        const fresh = replies.slice(5);
        for (const reply of fresh)
            assert.equal(reply.duplicate, undefined);
        const base = firsts[4].seq;
        assert.deepEqual(fresh.map((reply) => reply.seq).sort((a, b) => a - b),
                         [base + 1, base + 2, base + 3, base + 4, base + 5]);
        const stored = await history(bob, 'nc-room');
        const all = seqs(stored);
        assert.deepEqual(all, Array.from({ length: all.length }, (_, i) => i + 1));
        assert.deepEqual(messages(stored).map((e) => e.nonce),
                         ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9']);
        assert.equal((await messageEvents(bob, 'nc-room')).length, 10);
    } finally {
        await cold.stop();
    }
});

test('two sends of one nonce at once store one message; both answer its seq', async () => {
    const alice = await connect('nt2_alice');
    const second = await connect('nt2_alice');
    await ok(alice, { type: 'room.create', room: 'nt2-room' });
    for (let round = 0; round < 5; round++) {
        const nonce = `twice-${round}`;
        const [one, two, three] = await Promise.all([
            ok(alice, { type: 'msg.send', room: 'nt2-room', text: nonce, nonce }),
            ok(second, { type: 'msg.send', room: 'nt2-room', text: nonce, nonce }),
            ok(alice, { type: 'msg.send', room: 'nt2-room', text: nonce, nonce })]);
        assert.equal(new Set([one.seq, two.seq, three.seq]).size, 1);
        assert.equal([one, two, three].filter((reply) => reply.duplicate).length, 2);
    }
    assert.deepEqual(messages(await history(alice, 'nt2-room')).map((e) => e.text),
                     ['twice-0', 'twice-1', 'twice-2', 'twice-3', 'twice-4']);
});

test('a repeat after a restart is still found: the store keeps the nonce with the entry', async () => {
    let sent;
    await acrossRestart('rooms', {
        setup: async (connect) => {
            const alice = await connect('ns_alice');
            await ok(alice, { type: 'room.create', room: 'ns-room' });
            sent = await ok(alice, { type: 'msg.send', room: 'ns-room', text: 'kept', nonce: 'keep-1' });
        },
        check: async (connect) => {
            const alice = await connect('ns_alice');
            const repeat = await ok(alice, { type: 'msg.send', room: 'ns-room', text: 'kept',
                                             nonce: 'keep-1' });
            assertRepeatOf(repeat, sent);
            const next = await ok(alice, { type: 'msg.send', room: 'ns-room', text: 'new', nonce: 'keep-2' });
            assert.equal(next.seq, sent.seq + 1);
            assert.deepEqual(messages(await history(alice, 'ns-room')).map((e) => [e.text, e.nonce]),
                             [['kept', 'keep-1'], ['new', 'keep-2']]);
        },
    });
});

test('a room deleted and made again under its name forgets the old nonces', async () => {
    const alice = await connect('nd_alice');
    await ok(alice, { type: 'room.create', room: 'nd-room' });
    const old = await ok(alice, { type: 'msg.send', room: 'nd-room', text: 'old', nonce: 'd-1' });
    await ok(alice, { type: 'room.delete', room: 'nd-room' });
    await ok(alice, { type: 'room.create', room: 'nd-room' });
    const fresh = await ok(alice, { type: 'msg.send', room: 'nd-room', text: 'new', nonce: 'd-1' });
    assert.equal(fresh.duplicate, undefined);
    assert.equal(fresh.seq, old.seq);
    assert.deepEqual(messages(await history(alice, 'nd-room')).map((e) => e.text), ['new']);
});
