// Read markers of conversations (PROTOCOL.md 1.1, "Private messages"): the
// "read" event {with, seq} to every session of the reader (which replaces
// the project's own pm_read), read_seq in pm.read's ok, read_seq and
// last_seq in pm.conversations, counts of what arrived while the reader was
// away, and the markers after a restart. Runs on store-sqlite, and on
// store-mongo with PARLEY_TEST_STORE=mongo.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ok, fails } from '../lib/rooms.js';
import { recordPm, plain } from '../lib/pm.js';
import { chatSuite, acrossRestart } from '../lib/chat.js';

const { connect } = chatSuite('pm');

const conversationWith = async (client, name) =>
    (await ok(client, { type: 'pm.conversations' })).conversations
        .find((each) => each.with === name);

const markers = (conversation) => conversation && {
    unread: conversation.unread, read_seq: conversation.read_seq, last_seq: conversation.last_seq };

test('pm.read sends {type: read, with, seq} to every session of the reader, and only the reader', async () => {
    const tab1 = await connect('Pr_Reader');
    const tab2 = await connect('pr_reader');
    const writer = await connect('Pr_Writer');
    const writerLog = recordPm(writer);
    for (let index = 1; index <= 3; index++)
        await ok(writer, { type: 'pm.send', to: 'pr_reader', text: `w${index}` });
    const reply = await ok(tab1, { type: 'pm.read', with: 'PR_WRITER', seq: 2 });
    assert.deepEqual({ unread: reply.unread, read_seq: reply.read_seq }, { unread: 1, read_seq: 2 });
    for (const tab of [tab1, tab2])
        assert.deepEqual(plain(await tab.nextEvent((frame) => frame.type === 'read')),
                         { type: 'read', with: 'Pr_Writer', seq: 2 });
    // Never backward: the event says where the marker is
    const back = await ok(tab2, { type: 'pm.read', with: 'pr_writer', seq: 1 });
    assert.equal(back.read_seq, 2);
    assert.equal((await tab1.nextEvent((frame) => frame.type === 'read')).seq, 2);
    // Past the newest message: the newest
    assert.equal((await ok(tab2, { type: 'pm.read', with: 'pr_writer', seq: 99 })).read_seq, 3);
    assert.equal((await tab1.nextEvent((frame) => frame.type === 'read')).seq, 3);
    // The writer is not told (no read receipts), and nobody gets pm_read
    await ok(writer, { type: 'pm.send', to: 'pr_reader', text: 'sync' });
    await tab1.nextEvent((frame) => frame.type === 'pm' && frame.text === 'sync');
    assert.deepEqual(writerLog.filter((frame) => frame.type !== 'pm'), []);
    assert.ok(![...tab1.events, ...tab2.events].some((frame) => frame.type === 'pm_read'));
});

test('pm.conversations carries read_seq and last_seq, counting what arrived while the reader was away', async () => {
    let reader = await connect('pc_reader');
    const writer = await connect('pc_writer');
    await ok(writer, { type: 'pm.send', to: 'pc_reader', text: 'one' });
    await ok(reader, { type: 'pm.read', with: 'pc_writer', seq: 1 });
    reader.ws.terminate();
    for (let index = 2; index <= 4; index++)
        await ok(writer, { type: 'pm.send', to: 'pc_reader', text: `while away ${index}` });
    await ok(writer, { type: 'pm.read', with: 'pc_reader', seq: 4 });
    reader = await connect('pc_reader');
    assert.deepEqual(markers(await conversationWith(reader, 'pc_writer')),
                     { unread: 3, read_seq: 1, last_seq: 4 });
    // The writer's own messages are never unread for him; his marker is his
    assert.deepEqual(markers(await conversationWith(writer, 'pc_reader')),
                     { unread: 0, read_seq: 4, last_seq: 4 });
    await ok(reader, { type: 'pm.send', to: 'pc_writer', text: 'back' });     // seq 5
    assert.deepEqual(markers(await conversationWith(reader, 'pc_writer')),
                     { unread: 3, read_seq: 1, last_seq: 5 });
    assert.deepEqual(markers(await conversationWith(writer, 'pc_reader')),
                     { unread: 1, read_seq: 4, last_seq: 5 });
});

test('pm.read with nobody written to marks nothing and sends no event; bad requests change nothing', async () => {
    const reader = await connect('pn_reader');
    await connect('pn_other');
    const reply = await ok(reader, { type: 'pm.read', with: 'pn_other', seq: 3 });
    assert.deepEqual({ unread: reply.unread, read_seq: reply.read_seq }, { unread: 0, read_seq: 0 });
    assert.equal(await conversationWith(reader, 'pn_other'), undefined);
    await fails(reader, { type: 'pm.read', with: 'pn_nobody', seq: 1 }, 'no_such_user');
    await fails(reader, { type: 'pm.read', with: 'pn_other', seq: 0 }, 'bad_request');
    await fails(reader, { type: 'pm.read', with: 'pn_reader', seq: 1 }, 'bad_request');
    await ok(reader, { type: 'pm.send', to: 'pn_other', text: 'now one' });
    assert.ok(!reader.events.some((frame) => frame.type === 'read'), JSON.stringify(reader.events));
});

test('conversation markers survive a restart', async () => {
    await acrossRestart('pm', {
        setup: async (connect) => {
            const reader = await connect('ps_reader');
            const writer = await connect('ps_writer');
            for (let index = 1; index <= 3; index++)
                await ok(writer, { type: 'pm.send', to: 'ps_reader', text: `s${index}` });
            await ok(reader, { type: 'pm.read', with: 'ps_writer', seq: 2 });
        },
        check: async (connect) => {
            const reader2 = await connect('ps_reader');
            assert.deepEqual(markers(await conversationWith(reader2, 'ps_writer')),
                             { unread: 1, read_seq: 2, last_seq: 3 });
            assert.equal((await ok(reader2, { type: 'pm.read', with: 'ps_writer', seq: 1 })).read_seq, 2);
        },
    });
});
