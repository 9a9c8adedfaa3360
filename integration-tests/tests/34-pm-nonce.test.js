// pm.send's nonce (PROTOCOL.md 1.1, "Outcomes, retries and idempotency";
// proto/CLIENT-PROTOCOL.md, "Nonces"): a nonce's rules (bad_request), the
// message carrying it in the pm event and pm.history, a repeat answered with
// the first message's seq and ts and duplicate: true while nothing new is
// stored or delivered, from another connection, before the rate limit, after
// a restart, past the pm plugin's own memory of nonces (the store finds the
// repeat inside a run, which goes on gap-free), and two sends of one nonce at
// once. Real parley, real WebSockets; run on store-sqlite and again on
// store-mongo (PARLEY_TEST_STORE=mongo).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sleep } from '../lib/harness.js';
import { ok, fails, ISO_MS, BAD_NONCES, assertRepeatOf } from '../lib/rooms.js';
import { startPmParley, recordPm, nextPm, plain } from '../lib/pm.js';
import { chatSuite, acrossRestart } from '../lib/chat.js';

const { connect, history } = chatSuite('pm');

test('a nonce must be 1 to 64 letters, digits, _ or -: anything else is bad_request and stores nothing', async () => {
    const alice = await connect('pb_alice');
    await connect('pb_bob');
    for (const nonce of BAD_NONCES)
        await fails(alice, { type: 'pm.send', to: 'pb_bob', text: 'hi', nonce }, 'bad_request');
    assert.deepEqual(await history(alice, 'pb_bob'), []);
    await ok(alice, { type: 'pm.send', to: 'pb_bob', text: 'a', nonce: 'x'.repeat(64) });
    await ok(alice, { type: 'pm.send', to: 'pb_bob', text: 'b', nonce: 'AZaz09_-' });
    assert.equal((await history(alice, 'pb_bob')).length, 2);
});

test('the pm event and pm.history carry the nonce; a message without one has none', async () => {
    const alice = await connect('pe_alice');
    const bob = await connect('pe_bob');
    const event = nextPm(bob, (e) => e.text === 'with');
    const sent = await ok(alice, { type: 'pm.send', to: 'pe_bob', text: 'with', nonce: 'p-1' });
    assert.match(sent.ts, ISO_MS);
    assert.deepEqual(plain(await event), { type: 'pm', from: 'pe_alice', to: 'pe_bob', seq: sent.seq,
                                           text: 'with', ts: sent.ts, nonce: 'p-1' });
    const without = nextPm(bob, (e) => e.text === 'without');
    await ok(alice, { type: 'pm.send', to: 'pe_bob', text: 'without' });
    assert.equal('nonce' in await without, false);
    assert.deepEqual((await history(bob, 'pe_alice')).map((m) => [m.text, m.nonce]),
                     [['with', 'p-1'], ['without', undefined]]);
    // The conversation list's last message does not carry it
    const { conversations } = await ok(bob, { type: 'pm.conversations' });
    assert.equal('nonce' in conversations[0].last, false);
});

test('a repeated nonce answers the first seq and ts with duplicate: true; nothing new is stored or delivered', async () => {
    const alice = await connect('pr_alice');
    const bob = await connect('pr_bob');
    const bobLog = recordPm(bob);
    const first = await ok(alice, { type: 'pm.send', to: 'pr_bob', text: 'once', nonce: 'abc' });
    await sleep(20);
    for (let again = 0; again < 3; again++) {
        const repeat = await ok(alice, { type: 'pm.send', to: 'PR_BOB', text: 'other text', nonce: 'abc' });
        assertRepeatOf(repeat, first);
    }
    const elsewhere = await connect('pr_alice');
    const other = await ok(elsewhere, { type: 'pm.send', to: 'pr_bob', text: 'once', nonce: 'abc' });
    assertRepeatOf(other, first);
    await sleep(200);
    assert.equal(bobLog.filter((e) => e.type === 'pm').length, 1);
    assert.deepEqual((await history(bob, 'pr_alice')).map((m) => m.text), ['once']);
    // The other side's same nonce is its own message; so is one to another user
    const back = await ok(bob, { type: 'pm.send', to: 'pr_alice', text: 'back', nonce: 'abc' });
    assert.equal(back.duplicate, undefined);
    assert.equal(back.seq, first.seq + 1);
    await connect('pr_carol');
    const toCarol = await ok(alice, { type: 'pm.send', to: 'pr_carol', text: 'c', nonce: 'abc' });
    assert.equal(toCarol.duplicate, undefined);
});

test('a repeat is answered duplicate while the sender is rate limited; a new send is rate_limited with retry_after_ms', async () => {
    const limited = await startPmParley({ args: ['--option', 'pm.msg_rate=0.2',
                                                 '--option', 'pm.msg_burst=2'] });
    try {
        const alice = await connect('pt_alice', limited);
        await connect('pt_bob', limited);
        const one = await ok(alice, { type: 'pm.send', to: 'pt_bob', text: '1', nonce: 'r1' });
        await ok(alice, { type: 'pm.send', to: 'pt_bob', text: '2', nonce: 'r2' });
        const refused = await fails(alice, { type: 'pm.send', to: 'pt_bob', text: '3', nonce: 'r3' },
                                    'rate_limited');
        assert.ok(Number.isInteger(refused.retry_after_ms) && refused.retry_after_ms > 0,
                  JSON.stringify(refused));
        const repeat = await ok(alice, { type: 'pm.send', to: 'pt_bob', text: '1', nonce: 'r1' });
        assertRepeatOf(repeat, one);
        await fails(alice, { type: 'pm.send', to: 'pt_bob', text: '3' }, 'rate_limited');
        assert.deepEqual((await history(alice, 'pt_bob')).map((m) => m.text), ['1', '2']);
    } finally {
        await limited.stop();
    }
});

test('with no memory of nonces in the pm plugin, the store finds repeats in a run: they answer duplicate, the rest stored gap-free', async () => {
    const cold = await startPmParley({ args: ['--option', 'pm.nonce_cache=0',
                                              '--option', 'pm.msg_rate=0'] });
    try {
        const alice = await connect('pc_alice', cold);
        const bob = await connect('pc_bob', cold);
        const firsts = [];
        for (let index = 0; index < 5; index++)
            firsts.push(await ok(alice, { type: 'pm.send', to: 'pc_bob', text: `m${index}`,
                                          nonce: `c${index}` }));
        // Both sides at once, new and repeated nonces: runs going both ways
        const sends = [];
        for (let index = 0; index < 10; index++)
            sends.push(ok(alice, { type: 'pm.send', to: 'pc_bob', text: `m${index}`, nonce: `c${index}` }));
        for (let index = 0; index < 3; index++)
            sends.push(ok(bob, { type: 'pm.send', to: 'pc_alice', text: `b${index}`, nonce: `c${index}` }));
        const replies = await Promise.all(sends);
        for (let index = 0; index < 5; index++)
            assertRepeatOf(replies[index], firsts[index]);
        const fresh = replies.slice(5);
        for (const reply of fresh)
            assert.equal(reply.duplicate, undefined);
        assert.deepEqual(fresh.map((reply) => reply.seq).sort((a, b) => a - b),
                         Array.from({ length: 8 }, (_, i) => 6 + i));
        const stored = await history(bob, 'pc_alice');
        assert.deepEqual(stored.map((m) => m.seq), Array.from({ length: 13 }, (_, i) => i + 1));
        assert.equal(new Set(stored.map((m) => `${m.from} ${m.nonce}`)).size, 13);
    } finally {
        await cold.stop();
    }
});

test('two sends of one nonce at once store one message; all answer its seq', async () => {
    const alice = await connect('p2_alice');
    const second = await connect('p2_alice');
    await connect('p2_bob');
    for (let round = 0; round < 5; round++) {
        const nonce = `twice-${round}`;
        const replies = await Promise.all([
            ok(alice, { type: 'pm.send', to: 'p2_bob', text: nonce, nonce }),
            ok(second, { type: 'pm.send', to: 'p2_bob', text: nonce, nonce }),
            ok(alice, { type: 'pm.send', to: 'p2_bob', text: nonce, nonce })]);
        assert.equal(new Set(replies.map((reply) => reply.seq)).size, 1);
        assert.equal(replies.filter((reply) => reply.duplicate).length, 2);
    }
    assert.deepEqual((await history(alice, 'p2_bob')).map((m) => m.text),
                     ['twice-0', 'twice-1', 'twice-2', 'twice-3', 'twice-4']);
});

test('a repeat after a restart is still found: the store keeps the nonce with the message', async () => {
    let sent;
    await acrossRestart('pm', {
        setup: async (connect) => {
            const alice = await connect('ps_alice');
            await connect('ps_bob');
            sent = await ok(alice, { type: 'pm.send', to: 'ps_bob', text: 'kept', nonce: 'keep-1' });
        },
        check: async (connect) => {
            const alice = await connect('ps_alice');
            const repeat = await ok(alice, { type: 'pm.send', to: 'ps_bob', text: 'kept', nonce: 'keep-1' });
            assertRepeatOf(repeat, sent);
            const next = await ok(alice, { type: 'pm.send', to: 'ps_bob', text: 'new', nonce: 'keep-2' });
            assert.equal(next.seq, sent.seq + 1);
        },
    });
});
