// Private messages (PROTOCOL.md, "Private messages"; proto/CLIENT-PROTOCOL.md,
// "Private messages"): every request of the table, each error code, live
// delivery to every session of both users, storage for an offline recipient,
// history cursors, the conversation list, read markers, and unread counts
// and markers that survive a restart.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, tempDir, sleep } from '../lib/harness.js';
import { connectUser, ok, fails, ISO_MS, PASSWORD } from '../lib/rooms.js';
import { startPmParley, recordPm, nextPm, plain } from '../lib/pm.js';
import { chatSuite } from '../lib/chat.js';
import { rmSync } from 'node:fs';

const suite = chatSuite('pm');
const { connect, clients } = suite;

test('pm.send: ok with seq and ts; the message reaches every session of both users, names as registered', async () => {
    const alice = await connect('Alice_S');
    const aliceTab = await connect('alice_s');
    const bob = await connect('Bob_S');
    const bobTab = await connect('bob_s');
    const outsider = await connect('eve_s');
    const logs = [alice, aliceTab, bob, bobTab, outsider].map(recordPm);

    const reply = await ok(alice, { type: 'pm.send', to: 'BOB_S', text: 'hi bob' });
    assert.equal(reply.seq, 1);
    assert.match(reply.ts, ISO_MS);
    const expected = { type: 'pm', from: 'Alice_S', to: 'Bob_S', seq: 1, text: 'hi bob', ts: reply.ts };
    for (const client of [alice, aliceTab, bob, bobTab])
        assert.deepEqual(plain(await nextPm(client)), expected);

    const second = await ok(bobTab, { type: 'pm.send', to: 'alice_s', text: 'hello 👋 alice' });
    assert.equal(second.seq, 2, 'one seq for the conversation, whoever writes');
    for (const client of [alice, aliceTab, bob, bobTab]) {
        const event = await nextPm(client);
        assert.equal(event.from, 'Bob_S');
        assert.equal(event.to, 'Alice_S');
        assert.equal(event.seq, 2);
        assert.equal(event.text, 'hello 👋 alice');
    }
    await sleep(200);
    assert.equal(logs[4].length, 0, 'nobody else hears of it');
    for (const log of logs.slice(0, 4))
        assert.deepEqual(log.map((event) => event.seq), [1, 2], 'each event exactly once');

    // Another pair has its own seq
    const third = await ok(alice, { type: 'pm.send', to: 'eve_s', text: 'hi eve' });
    assert.equal(third.seq, 1);
    assert.equal((await nextPm(outsider)).from, 'Alice_S');
});

test('pm.send refuses bad shapes, oneself, bad text and unknown users, and stores nothing', async () => {
    const carol = await connect('carol_e');
    const dan = await connect('dan_e');
    await fails(carol, { type: 'pm.send', text: 'hi' }, 'bad_request');
    await fails(carol, { type: 'pm.send', to: 42, text: 'hi' }, 'bad_request');
    await fails(carol, { type: 'pm.send', to: 'dan_e' }, 'bad_request');
    await fails(carol, { type: 'pm.send', to: 'dan_e', text: 7 }, 'bad_request');
    await fails(carol, { type: 'pm.send', to: 'CAROL_E', text: 'hi me' }, 'bad_request');
    await fails(carol, { type: 'pm.send', to: 'dan_e', text: '' }, 'invalid_text');
    await fails(carol, { type: 'pm.send', to: 'dan_e', text: '  \n\t \u00a0\u3000' }, 'invalid_text');
    await fails(carol, { type: 'pm.send', to: 'dan_e', text: 'x'.repeat(4001) }, 'invalid_text');
    await fails(carol, { type: 'pm.send', to: 'nobody_here', text: 'hi' }, 'no_such_user');
    await fails(carol, { type: 'pm.send', to: 'no such name!', text: 'hi' }, 'no_such_user');
    await fails(carol, { type: 'pm.send', to: 'x', text: 'hi' }, 'no_such_user');
    await fails(carol, { type: 'pm.nonsense' }, 'unknown_type');

    // 4000 characters are fine, emoji counted as one character each
    const long = await ok(carol, { type: 'pm.send', to: 'dan_e', text: '😀'.repeat(4000) });
    assert.equal(long.seq, 1, 'the refused requests took no seq');
    assert.equal((await nextPm(dan)).text.length, 8000);
    const history = await ok(dan, { type: 'pm.history', with: 'carol_e' });
    assert.equal(history.messages.length, 1);

    const anonymous = await Client.connect(suite.server.url);
    clients.push(anonymous);
    for (const type of ['pm.send', 'pm.history', 'pm.conversations', 'pm.read'])
        await fails(anonymous, { type, to: 'dan_e', with: 'dan_e', text: 'hi', seq: 1 },
                    'unauthenticated');
});

test('a message to an offline user is stored and found at login in pm.conversations and pm.history', async () => {
    const frank = await connect('frank_o');
    const gina = await connect('Gina_O');
    await gina.close();
    const sent = [];
    for (const text of ['are you there?', 'call me', 'bye'])
        sent.push(await ok(frank, { type: 'pm.send', to: 'gina_o', text }));
    assert.deepEqual(sent.map((reply) => reply.seq), [1, 2, 3]);

    const back = await connect('gina_o');
    const list = await ok(back, { type: 'pm.conversations' });
    assert.equal(list.conversations.length, 1);
    const [conversation] = list.conversations;
    assert.equal(conversation.with, 'frank_o');
    assert.equal(conversation.unread, 3);
    assert.deepEqual(conversation.last, { from: 'frank_o', to: 'Gina_O', seq: 3, text: 'bye',
                                          ts: sent[2].ts });
    const history = await ok(back, { type: 'pm.history', with: 'FRANK_O' });
    assert.equal(history.more, false);
    assert.deepEqual(history.messages.map((each) => [each.seq, each.from, each.to, each.text]), [
        [1, 'frank_o', 'Gina_O', 'are you there?'],
        [2, 'frank_o', 'Gina_O', 'call me'],
        [3, 'frank_o', 'Gina_O', 'bye'],
    ]);
    for (const message of history.messages)
        assert.match(message.ts, ISO_MS);

    // The sender's own messages are not unread for the sender
    const senderList = await ok(frank, { type: 'pm.conversations' });
    assert.equal(senderList.conversations[0].with, 'Gina_O');
    assert.equal(senderList.conversations[0].unread, 0);
});

test('pm.history pages with before, after and limit, oldest first, and says when more exist', async () => {
    const hal = await connect('hal_h');
    const ida = await connect('ida_h');
    for (let index = 1; index <= 7; index++)
        await ok(index % 2 ? hal : ida, { type: 'pm.send', to: index % 2 ? 'ida_h' : 'hal_h',
                                          text: `m${index}` });
    const seqs = (reply) => reply.messages.map((each) => each.seq);

    let page = await ok(hal, { type: 'pm.history', with: 'ida_h' });
    assert.deepEqual(seqs(page), [1, 2, 3, 4, 5, 6, 7]);
    assert.equal(page.more, false);
    page = await ok(hal, { type: 'pm.history', with: 'ida_h', limit: 3 });
    assert.deepEqual(seqs(page), [5, 6, 7]);
    assert.equal(page.more, true);
    page = await ok(hal, { type: 'pm.history', with: 'ida_h', before: 5, limit: 3 });
    assert.deepEqual(seqs(page), [2, 3, 4]);
    assert.equal(page.more, true);
    page = await ok(ida, { type: 'pm.history', with: 'hal_h', before: 2, limit: 3 });
    assert.deepEqual(seqs(page), [1]);
    assert.equal(page.more, false);
    page = await ok(ida, { type: 'pm.history', with: 'hal_h', after: 5 });
    assert.deepEqual(seqs(page), [6, 7]);
    assert.equal(page.more, false);
    page = await ok(ida, { type: 'pm.history', with: 'hal_h', after: 2, limit: 2 });
    assert.deepEqual(seqs(page), [3, 4]);
    assert.equal(page.more, true);
    assert.deepEqual(page.messages.map((each) => [each.from, each.text]),
                     [['hal_h', 'm3'], ['ida_h', 'm4']]);
    page = await ok(ida, { type: 'pm.history', with: 'hal_h', after: 7 });
    assert.deepEqual(seqs(page), []);
    assert.equal(page.more, false);
    page = await ok(ida, { type: 'pm.history', with: 'hal_h', limit: 200 });
    assert.equal(page.messages.length, 7);

    // An existing user with whom nothing was said: an empty conversation
    page = await ok(ida, { type: 'pm.history', with: 'carol_e' });
    assert.deepEqual(plain(page), { type: 'ok', id: page.id, messages: [], more: false });

    for (const fields of [{}, { with: 5 }, { with: 'hal_h', limit: 0 }, { with: 'hal_h', limit: 201 },
                          { with: 'hal_h', limit: 'ten' }, { with: 'hal_h', before: -1 },
                          { with: 'hal_h', after: 'x' }, { with: 'hal_h', before: 5, after: 2 },
                          { with: 'IDA_H' }])
        await fails(ida, { type: 'pm.history', ...fields }, 'bad_request');
    await fails(ida, { type: 'pm.history', with: 'nobody_here' }, 'no_such_user');
    await fails(ida, { type: 'pm.history', with: 'no such name!' }, 'no_such_user');
});

test('pm.conversations lists every conversation newest first with its last message and unread count', async () => {
    const jim = await connect('jim_c');
    const kim = await connect('kim_c');
    const lee = await connect('lee_c');
    const mia = await connect('mia_c');
    assert.deepEqual((await ok(jim, { type: 'pm.conversations' })).conversations, []);

    await ok(kim, { type: 'pm.send', to: 'jim_c', text: 'from kim 1' });
    await ok(lee, { type: 'pm.send', to: 'jim_c', text: 'from lee 1' });
    await ok(kim, { type: 'pm.send', to: 'jim_c', text: 'from kim 2' });
    await ok(jim, { type: 'pm.send', to: 'mia_c', text: 'to mia' });
    await ok(jim, { type: 'pm.send', to: 'lee_c', text: 'to lee' });

    const list = (await ok(jim, { type: 'pm.conversations' })).conversations;
    assert.deepEqual(list.map((each) => [each.with, each.last.seq, each.last.text, each.unread]), [
        ['lee_c', 2, 'to lee', 1],
        ['mia_c', 1, 'to mia', 0],
        ['kim_c', 2, 'from kim 2', 2],
    ]);
    assert.equal(list[0].last.from, 'jim_c');
    assert.equal(list[0].last.to, 'lee_c');
    assert.match(list[0].last.ts, ISO_MS);
    assert.deepEqual((await ok(mia, { type: 'pm.conversations' })).conversations
        .map((each) => [each.with, each.unread]), [['jim_c', 1]]);
});

test('pm.read moves the read marker forward, tells the reader\'s other sessions, and never goes back or beyond the last message', async () => {
    const ned = await connect('ned_r');
    const nedTab = await connect('ned_r');
    const oda = await connect('oda_r');
    for (let index = 1; index <= 4; index++)
        await ok(oda, { type: 'pm.send', to: 'ned_r', text: `r${index}` });
    const unread = async () => (await ok(ned, { type: 'pm.conversations' }))
        .conversations.find((each) => each.with === 'oda_r').unread;
    assert.equal(await unread(), 4);

    const tabEvents = recordPm(nedTab);
    const reply = await ok(ned, { type: 'pm.read', with: 'ODA_R', seq: 2 });
    assert.equal(reply.unread, 2);
    assert.equal(reply.read_seq, 2);
    assert.equal(await unread(), 2);
    // 1.1: the "read" event of PROTOCOL.md replaces the project's own pm_read
    const event = await nedTab.nextEvent((frame) => frame.type === 'read');
    assert.deepEqual(plain(event), { type: 'read', with: 'oda_r', seq: 2 });
    assert.ok(tabEvents.some((each) => each.type === 'read'));

    // Markers never go back
    await ok(ned, { type: 'pm.read', with: 'oda_r', seq: 1 });
    assert.equal(await unread(), 2);
    // Beyond the last message: the marker stops at the last one, so a new
    // message is unread again
    await ok(ned, { type: 'pm.read', with: 'oda_r', seq: 1000 });
    assert.equal(await unread(), 0);
    await ok(oda, { type: 'pm.send', to: 'ned_r', text: 'r5' });
    assert.equal(await unread(), 1);
    // Reading one's own unread count is the recipient's business only
    assert.equal((await ok(oda, { type: 'pm.conversations' })).conversations
        .find((each) => each.with === 'ned_r').unread, 0);

    // An existing user without a conversation: ok, nothing to mark
    await ok(ned, { type: 'pm.read', with: 'carol_e', seq: 3 });
    await fails(ned, { type: 'pm.read', with: 'nobody_here', seq: 1 }, 'no_such_user');
    await fails(ned, { type: 'pm.read', with: 'no such name!', seq: 1 }, 'no_such_user');
    for (const fields of [{ seq: 1 }, { with: 'oda_r' }, { with: 'oda_r', seq: -1 }, { with: 'oda_r', seq: 0 },
                          { with: 'oda_r', seq: '2' }, { with: 7, seq: 1 }, { with: 'NED_R', seq: 1 }])
        await fails(ned, { type: 'pm.read', ...fields }, 'bad_request');
    assert.equal(await unread(), 1, 'refused reads changed nothing');
});

test('pm.send is rate limited per user', async () => {
    const limited = await startPmParley({ args: ['--option', 'pm.msg_rate=1',
                                                 '--option', 'pm.msg_burst=5'] });
    const mine = [];
    try {
        const pat = await connectUser(limited.url, 'pat_l', mine);
        await connectUser(limited.url, 'quinn_l', mine);
        const replies = await Promise.all(Array.from({ length: 8 }, (_, index) =>
            pat.request({ type: 'pm.send', to: 'quinn_l', text: `burst ${index}` })));
        const oks = replies.filter((reply) => reply.type === 'ok');
        const limitedReplies = replies.filter((reply) => reply.code === 'rate_limited');
        assert.equal(oks.length, 5, JSON.stringify(replies));
        assert.equal(limitedReplies.length, 3);
        for (const reply of limitedReplies)
            assert.ok(Number.isInteger(reply.retry_after_ms) && reply.retry_after_ms >= 1,
                      JSON.stringify(reply));
        assert.deepEqual(oks.map((reply) => reply.seq).sort((a, b) => a - b), [1, 2, 3, 4, 5]);
        const history = await ok(pat, { type: 'pm.history', with: 'quinn_l' });
        assert.equal(history.messages.length, 5, 'a refused message is not stored');
    } finally {
        for (const client of mine)
            client.close();
        await limited.stop();
    }
});

test('unread counts, read markers and seqs survive a restart of parley on the same data', async () => {
    const data = tempDir('parley-pm-restart-');
    try {
        let first = await startPmParley({ dataDir: data });
        let mine = [];
        try {
            const rae = await connectUser(first.url, 'rae_p', mine);
            const sam = await connectUser(first.url, 'sam_p', mine);
            await sam.close();
            for (let index = 1; index <= 5; index++)
                await ok(rae, { type: 'pm.send', to: 'sam_p', text: `before restart ${index}` });
            const tom = await connectUser(first.url, 'tom_p', mine);
            await ok(tom, { type: 'pm.send', to: 'sam_p', text: 'from tom' });
            const samAgain = await connectUser(first.url, 'sam_p', mine);
            await ok(samAgain, { type: 'pm.read', with: 'rae_p', seq: 2 });
        } finally {
            for (const client of mine)
                client.close();
            await first.stop();
        }

        const second = await startPmParley({ dataDir: data });
        mine = [];
        try {
            const sam = await Client.connect(second.url);
            mine.push(sam);
            assert.equal((await sam.request({ type: 'auth.login', username: 'sam_p',
                                              password: PASSWORD })).type, 'ok');
            const list = (await ok(sam, { type: 'pm.conversations' })).conversations;
            assert.deepEqual(list.map((each) => [each.with, each.unread, each.last.seq]),
                             [['tom_p', 1, 1], ['rae_p', 3, 5]]);
            const rae = await connectUser(second.url, 'rae_p', mine);
            const next = await ok(rae, { type: 'pm.send', to: 'sam_p', text: 'after restart' });
            assert.equal(next.seq, 6, 'the seq goes on from the stored one');
            assert.equal((await nextPm(sam)).seq, 6);
            const after = (await ok(sam, { type: 'pm.conversations' })).conversations;
            assert.deepEqual(after.map((each) => [each.with, each.unread]),
                             [['rae_p', 4], ['tom_p', 1]]);
            const history = await ok(sam, { type: 'pm.history', with: 'rae_p', after: 2 });
            assert.deepEqual(history.messages.map((each) => each.seq), [3, 4, 5, 6]);
        } finally {
            for (const client of mine)
                client.close();
            await second.stop();
        }
    } finally {
        rmSync(data, { recursive: true, force: true });
    }
});
