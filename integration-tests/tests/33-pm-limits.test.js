// Private-message replies bounded by bytes (PROTOCOL.md 1.1 "Outcomes";
// proto/CLIENT-PROTOCOL.md, "Private messages"; issue 11): pm.history over
// 200 messages of 4,000 emoji answers every limit under 1 MiB with `more`,
// a cut page keeping the entries next to its cursor; pm.conversations stays
// under 1 MiB with `more` when conversations are left out; a NUL in a
// message is invalid_text.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connectUser, ok, fails } from '../lib/rooms.js';
import { startPmParley } from '../lib/pm.js';

const MiB = 1024 * 1024;
const BIG = '😀'.repeat(4000);      // 4,000 characters, 16,000 bytes
let server;
const clients = [];

// The store's thread blocks on each database call; on store-mongo's test
// server (JavaScript, in memory) a page of 16 KB documents on a loaded
// machine can take longer than three 200 ms heartbeats, and the broker would
// count the store dead. A 1 s heartbeat here: this file is about replies.
before(async () => {
    server = await startPmParley({ args: ['--heartbeat', '1000',
                                          '--option', 'pm.msg_rate=1000',
                                          '--option', 'pm.msg_burst=1000'] });
});

after(async () => {
    for (const client of clients)
        client.close();
    await server?.stop();
});

// The reply as the client received it: its size in bytes and the frame
async function sized(client, fields) {
    const before = client.replies.length;
    const reply = await ok(client, fields);
    assert.equal(client.replies.length, before + 1);
    return { reply, bytes: Buffer.byteLength(JSON.stringify(reply)) };
}

test('pm.history over 200 messages of 4,000 emoji: every limit answers under 1 MiB, cut pages say more and keep the entries next to the cursor', async () => {
    const alice = await connectUser(server.url, 'hist_alice', clients);
    await connectUser(server.url, 'hist_bob', clients);
    // In waves of 10, so that no send waits behind 3 MB of others on a
    // loaded machine (this test is about the replies, not the writes)
    for (let wave = 0; wave < 20; wave++) {
        const sends = [];
        for (let index = 0; index < 10; index++)
            sends.push(alice.request({ type: 'pm.send', to: 'hist_bob', text: BIG }, 60000));
        for (const reply of await Promise.all(sends))
            assert.equal(reply.type, 'ok', JSON.stringify(reply).slice(0, 200));
    }

    for (const limit of [undefined, 1, 50, 69, 70, 100, 150, 200]) {
        const fields = { type: 'pm.history', with: 'hist_bob' };
        if (limit !== undefined)
            fields.limit = limit;
        const { reply, bytes } = await sized(alice, fields);
        const seqs = reply.messages.map((message) => message.seq);
        const asked = limit ?? 50;
        assert.ok(bytes < MiB, `limit ${limit}: ${bytes} bytes`);
        assert.ok(seqs.length >= 1 && seqs.length <= asked, `limit ${limit}: ${seqs.length}`);
        // The newest ones, oldest first, without a gap
        assert.equal(seqs.at(-1), 200, `limit ${limit}`);
        seqs.forEach((seq, index) => assert.equal(seq, seqs[0] + index));
        assert.equal(reply.more, true, `limit ${limit}: older messages remain`);
        assert.ok(reply.messages.every((message) => message.text === BIG));
    }
    // A cut page before a cursor keeps the newest before it
    const page = (await sized(alice, { type: 'pm.history', with: 'hist_bob', before: 150, limit: 200 })).reply;
    assert.equal(page.messages.at(-1).seq, 149);
    assert.ok(page.messages.length < 149 && page.more);
    // ... and one after a cursor the oldest after it
    const { reply: forward, bytes } = await sized(alice, { type: 'pm.history', with: 'hist_bob', after: 10, limit: 200 });
    assert.ok(bytes < MiB);
    assert.equal(forward.messages[0].seq, 11);
    assert.ok(forward.messages.length < 190 && forward.more, `${forward.messages.length}`);
    // Paging backwards by `before` reaches every message exactly once
    const seen = [];
    let cursor;
    for (let round = 0; round < 50; round++) {
        const fields = { type: 'pm.history', with: 'hist_bob', limit: 200 };
        if (cursor !== undefined)
            fields.before = cursor;
        const { reply } = await sized(alice, fields);
        seen.unshift(...reply.messages.map((message) => message.seq));
        if (!reply.more)
            break;
        cursor = reply.messages[0].seq;
    }
    assert.deepEqual(seen, Array.from({ length: 200 }, (_, index) => index + 1));
});

test('pm.conversations stays under 1 MiB with more when every conversation ends with a big message', async () => {
    const carol = await connectUser(server.url, 'conv_carol', clients);
    const senders = 70;
    for (let index = 0; index < senders; index++) {
        const sender = await connectUser(server.url, `conv_s${String(index).padStart(2, '0')}`, clients);
        await ok(sender, { type: 'pm.send', to: 'conv_carol', text: BIG });
        sender.close();
    }
    const { reply, bytes } = await sized(carol, { type: 'pm.conversations' });
    assert.ok(bytes < MiB, `${bytes} bytes`);
    assert.equal(reply.more, true);
    const count = reply.conversations.length;
    assert.ok(count >= 1 && count < senders, `${count} conversations`);
    // The newest first: the last senders wrote last
    assert.equal(reply.conversations[0].with, `conv_s${senders - 1}`);
    assert.equal(reply.conversations[0].last.text, BIG);
    assert.equal(reply.conversations[0].unread, 1);

    // A short list says more: false
    const dave = await connectUser(server.url, 'conv_dave', clients);
    await ok(dave, { type: 'pm.send', to: 'conv_carol', text: 'hi' });
    const short = (await sized(dave, { type: 'pm.conversations' })).reply;
    assert.equal(short.more, false);
    assert.equal(short.conversations.length, 1);
});

test('pm.send with a NUL in its text is invalid_text and stores nothing', async () => {
    const erin = await connectUser(server.url, 'nul_erin', clients);
    await connectUser(server.url, 'nul_frank', clients);
    await fails(erin, { type: 'pm.send', to: 'nul_frank', text: 'a\u0000b' }, 'invalid_text');
    await fails(erin, { type: 'pm.send', to: 'nul_frank', text: 42 }, 'bad_request');
    const history = await ok(erin, { type: 'pm.history', with: 'nul_frank' });
    assert.deepEqual(history.messages, []);
});
