// Replies, edits, deletions and reactions in rooms (PROTOCOL.md 1.1,
// "Replies, edits, deletions and reactions"; proto/CLIENT-PROTOCOL.md,
// "Rooms"): every row and every error of msg.send's reply_to, msg.edit,
// msg.delete and msg.react; their entries on every member's sessions in seq
// order; room.history and room.join showing messages as they are now;
// changes made while a member was away found by room.history after its
// last seq; the reactions' order, counts and 20-user cap; a repeated send;
// and the message rate counting changes. Runs on store-sqlite, and on
// store-mongo with PARLEY_TEST_STORE=mongo.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ok, fails, startRoomsParley } from '../lib/rooms.js';
import { chatSuite } from '../lib/chat.js';
import { THUMBS, PARTY, TWENTY, BAD_EMOJI, nextChange, entryAt, assertStored,
         assertUnchanged, assertGapFree, assertChangesCountAgainstRate } from '../lib/timeline.js';

const suite = chatSuite('rooms');
const { connect } = suite;

// A room of owner's that the others joined, in order
async function roomOf(room, owner, ...others) {
    await ok(owner, { type: 'room.create', room });
    for (const other of others)
        await ok(other, { type: 'room.join', room });
}

const send = (client, room, text, more = {}) =>
    ok(client, { type: 'msg.send', room, text, ...more });

test('msg.send with reply_to: the entry carries it live and in history; a reply to what is no message is no_such_message', async () => {
    const alice = await connect('tr_alice');
    const bob = await connect('tr_bob');
    await roomOf('tr-room', alice, bob);                         //  bob's join: 1
    const asked = await send(alice, 'tr-room', 'question?');     //  2
    const answer = await send(bob, 'tr-room', 'answer', { reply_to: asked.seq });
    const live = await nextChange(alice, 'message', (frame) => frame.seq === answer.seq);
    assert.equal(live.reply_to, asked.seq);
    assert.equal(live.from, 'tr_bob');
    const history = await suite.history(bob, 'tr-room');
    assert.equal(entryAt(history, answer.seq).reply_to, asked.seq);
    assert.equal(entryAt(history, asked.seq).reply_to, undefined);
    // A system entry, a seq past the newest, a deleted message
    for (const reply_to of [1, 99])
        await fails(bob, { type: 'msg.send', room: 'tr-room', text: 'x', reply_to }, 'no_such_message');
    await ok(alice, { type: 'msg.delete', room: 'tr-room', seq: asked.seq });
    const refused = await fails(bob, { type: 'msg.send', room: 'tr-room', text: 'x',
                                       reply_to: asked.seq }, 'no_such_message');
    assert.match(refused.message, /\b2\b/);
    assert.match(refused.message, /tr-room/);
    for (const reply_to of [0, -1, 1.5, '2', true])
        await fails(bob, { type: 'msg.send', room: 'tr-room', text: 'x', reply_to }, 'bad_request');
    // Nothing refused took a seq
    const after = await send(bob, 'tr-room', 'next');
    assert.equal(after.seq, answer.seq + 2);      //  the deletion took one
});

test('msg.edit: the author edits, every member session gets the edit entry, history shows the text as it is now', async () => {
    const alice = await connect('te_alice');
    const alice2 = await connect('te_alice');
    const bob = await connect('te_bob');
    await roomOf('te-room', alice, bob);
    const sent = await send(alice, 'te-room', 'helo @te_bob');
    const edit = await ok(alice, { type: 'msg.edit', room: 'te-room', seq: sent.seq,
                                   text: 'hello @te_alice' });
    assertStored(edit);
    assert.equal(edit.seq, sent.seq + 1);
    const expected = { type: 'edit', room: 'te-room', seq: edit.seq, target: sent.seq,
                       from: 'te_alice', text: 'hello @te_alice', ts: edit.ts };
    for (const client of [alice, alice2, bob])
        assert.deepEqual(await nextChange(client, 'edit'), expected);
    const history = await suite.history(bob, 'TE-ROOM');
    const message = entryAt(history, sent.seq);
    assert.equal(message.text, 'hello @te_alice');
    assert.equal(message.edited, edit.ts);
    // Mentions are the send's: an edit changes none
    assert.deepEqual(message.mentions, ['te_bob']);
    assert.deepEqual(entryAt(history, edit.seq), expected);
    // Edited twice: the last edit's text and time
    const again = await ok(alice, { type: 'msg.edit', room: 'te-room', seq: sent.seq, text: 'bye' });
    const now = entryAt(await suite.history(alice, 'te-room'), sent.seq);
    assert.equal(now.text, 'bye');
    assert.equal(now.edited, again.ts);
    // room.join's history shows it so too
    const joined = await ok(bob, { type: 'room.join', room: 'te-room' });
    assert.equal(entryAt(joined.history, sent.seq).text, 'bye');
});

test('msg.edit refuses: bad_request, no_such_room, not_member, no_such_message, forbidden, invalid_text', async () => {
    const alice = await connect('tf_alice');
    const bob = await connect('tf_bob');
    const eve = await connect('tf_eve');
    await roomOf('tf-room', alice, bob);
    const sent = await send(alice, 'tf-room', 'mine');
    const edit = (client, fields) => client.request({ type: 'msg.edit', room: 'tf-room',
                                                      seq: sent.seq, text: 'new', ...fields });
    for (const fields of [{ seq: undefined }, { seq: 0 }, { seq: -2 }, { seq: '3' }, { seq: 1.5 },
                          { text: undefined }, { text: 5 }, { room: undefined }, { room: 7 }])
        assert.equal((await edit(alice, fields)).code, 'bad_request', JSON.stringify(fields));
    assert.equal((await edit(alice, { room: 'tf-nowhere' })).code, 'no_such_room');
    assert.equal((await edit(eve, {})).code, 'not_member');
    for (const seq of [1, 99])                           //  a join entry; nothing
        assert.equal((await edit(alice, { seq })).code, 'no_such_message');
    const forbidden = await edit(bob, {});
    assert.equal(forbidden.code, 'forbidden');
    assert.match(forbidden.message, /author/);
    for (const text of ['', '   ', '\u00a0\n', 'x'.repeat(4001), 'a\u0000b'])
        assert.equal((await edit(alice, { text })).code, 'invalid_text');
    // Nothing changed, nothing took a seq
    const history = await suite.history(alice, 'tf-room');
    assert.equal(entryAt(history, sent.seq).text, 'mine');
    assert.equal(entryAt(history, sent.seq).edited, undefined);
    assert.equal(history.at(-1).seq, sent.seq);
    // Editing an edit, a deletion or a reaction: no message there
    const edited = await ok(alice, { type: 'msg.edit', room: 'tf-room', seq: sent.seq, text: 'n' });
    assert.equal((await edit(alice, { seq: edited.seq })).code, 'no_such_message');
});

test('msg.delete: the author or the owner deletes; history keeps no text, no reactions, and the edits lose theirs', async () => {
    const owner = await connect('td_owner');
    const bob = await connect('td_bob');
    const carol = await connect('td_carol');
    await roomOf('td-room', owner, bob, carol);
    const bobs = await send(bob, 'td-room', 'first draft');
    const edit = await ok(bob, { type: 'msg.edit', room: 'td-room', seq: bobs.seq, text: 'secret' });
    await ok(carol, { type: 'msg.react', room: 'td-room', seq: bobs.seq, emoji: THUMBS });
    const forbidden = await fails(carol, { type: 'msg.delete', room: 'td-room', seq: bobs.seq },
                                  'forbidden');
    assert.match(forbidden.message, /owner/);
    const deleted = await ok(bob, { type: 'msg.delete', room: 'td-room', seq: bobs.seq });
    assertStored(deleted);
    const expected = { type: 'delete', room: 'td-room', seq: deleted.seq, target: bobs.seq,
                       from: 'td_bob', ts: deleted.ts };
    for (const client of [owner, bob, carol])
        assert.deepEqual(await nextChange(client, 'delete'), expected);
    const history = await suite.history(carol, 'td-room');
    const message = entryAt(history, bobs.seq);
    assert.equal(message.deleted, true);
    assert.equal(message.text, '');
    assert.equal(message.reactions, undefined);
    assert.equal(entryAt(history, edit.seq).text, '', 'an edit of a deleted message keeps no text');
    assert.ok(!JSON.stringify(history).includes('secret'));
    assert.ok(!JSON.stringify(history).includes('first draft'));
    assert.deepEqual(entryAt(history, deleted.seq), expected);
    // The owner deletes anyone's message
    const carols = await send(carol, 'td-room', 'oops');
    await ok(owner, { type: 'msg.delete', room: 'td-room', seq: carols.seq });
    // A deleted message is no message: not deleted, edited, reacted to again
    for (const fields of [{ type: 'msg.delete' }, { type: 'msg.edit', text: 'x' },
                          { type: 'msg.react', emoji: THUMBS }])
        await fails(bob, { room: 'td-room', seq: bobs.seq, ...fields }, 'no_such_message');
    await fails(bob, { type: 'msg.delete', room: 'td-room', seq: 1 }, 'no_such_message');
    await fails(bob, { type: 'msg.delete', room: 'td-room', seq: 1000 }, 'no_such_message');
    await fails(bob, { type: 'msg.delete', room: 'td-room' }, 'bad_request');
    await fails(bob, { type: 'msg.delete', room: 'td-nowhere', seq: 2 }, 'no_such_room');
    const eve = await connect('td_eve');
    await fails(eve, { type: 'msg.delete', room: 'td-room', seq: carols.seq + 1 }, 'not_member');
});

test('a deleted message no longer counts as unread', async () => {
    const alice = await connect('tu_alice');
    const bob = await connect('tu_bob');
    await roomOf('tu-room', alice, bob);
    const one = await send(alice, 'tu-room', 'one @tu_bob');
    await send(alice, 'tu-room', 'two');
    const unread = async () => (await ok(bob, { type: 'room.list' })).rooms
        .find((room) => room.name === 'tu-room');
    assert.deepEqual((({ unread, mentions }) => ({ unread, mentions }))(await unread()),
                     { unread: 2, mentions: 1 });
    await ok(alice, { type: 'msg.delete', room: 'tu-room', seq: one.seq });
    const room = await unread();
    assert.deepEqual({ unread: room.unread, mentions: room.mentions }, { unread: 1, mentions: 0 });
    // Nor do edits and reactions, which are no messages
    await ok(alice, { type: 'msg.edit', room: 'tu-room', seq: one.seq + 1, text: 'zwei' });
    await ok(alice, { type: 'msg.react', room: 'tu-room', seq: one.seq + 1, emoji: THUMBS });
    assert.equal((await unread()).unread, 1);
});

test('msg.react: entries for changes only; a reaction already there, or already gone, answers ok without seq', async () => {
    const alice = await connect('tx_alice');
    const bob = await connect('tx_bob');
    await roomOf('tx-room', alice, bob);
    const sent = await send(alice, 'tx-room', 'react to me');
    const on = await ok(bob, { type: 'msg.react', room: 'tx-room', seq: sent.seq, emoji: THUMBS });
    assertStored(on);
    const expected = { type: 'reaction', room: 'tx-room', seq: on.seq, target: sent.seq,
                       from: 'tx_bob', emoji: THUMBS, on: true, ts: on.ts };
    for (const client of [alice, bob])
        assert.deepEqual(await nextChange(client, 'reaction'), expected);
    assertUnchanged(await bob.request({ type: 'msg.react', room: 'tx-room', seq: sent.seq,
                                        emoji: THUMBS, on: true }));
    const off = await ok(bob, { type: 'msg.react', room: 'tx-room', seq: sent.seq, emoji: THUMBS,
                                on: false });
    assert.equal(off.seq, on.seq + 1, 'the unchanged reaction took no seq');
    for (const client of [alice, bob])
        assert.deepEqual(await nextChange(client, 'reaction'),
                         { ...expected, seq: off.seq, on: false, ts: off.ts });
    assertUnchanged(await bob.request({ type: 'msg.react', room: 'tx-room', seq: sent.seq,
                                        emoji: THUMBS, on: false }));
    assertUnchanged(await bob.request({ type: 'msg.react', room: 'tx-room', seq: sent.seq,
                                        emoji: PARTY, on: false }));
    // No entry for what changed nothing: the next is the next seq
    const next = await send(alice, 'tx-room', 'sync');
    assert.equal(next.seq, off.seq + 1);
    await nextChange(bob, 'message', (frame) => frame.seq === next.seq);
    assert.ok(!bob.events.some((frame) => frame.type === 'reaction'), JSON.stringify(bob.events));
    const history = await suite.history(alice, 'tx-room');
    assert.equal(entryAt(history, sent.seq).reactions, undefined, 'none left');
    assertGapFree(history, 1);
});

test('msg.react refuses: a bad emoji or on, a missing seq, what is no message, a non-member', async () => {
    const alice = await connect('ty_alice');
    const eve = await connect('ty_eve');
    await roomOf('ty-room', alice);
    const sent = await send(alice, 'ty-room', 'hi');
    const react = (client, fields) => client.request({ type: 'msg.react', room: 'ty-room',
                                                       seq: sent.seq, emoji: THUMBS, ...fields });
    for (const emoji of BAD_EMOJI)
        assert.equal((await react(alice, { emoji })).code, 'bad_request', JSON.stringify(emoji));
    for (const fields of [{ on: 'yes' }, { on: 1 }, { seq: undefined }, { seq: 0 }])
        assert.equal((await react(alice, fields)).code, 'bad_request', JSON.stringify(fields));
    assert.equal((await react(alice, { seq: sent.seq + 1 })).code, 'no_such_message');
    assert.equal((await react(alice, { room: 'ty-nowhere' })).code, 'no_such_room');
    assert.equal((await react(eve, {})).code, 'not_member');
    // 32 bytes is the most: eight four-byte emoji
    assertStored(await ok(alice, { type: 'msg.react', room: 'ty-room', seq: sent.seq,
                                   emoji: THUMBS.repeat(8) }));
});

test('reactions: in the order each emoji was last added after having none, users in reaction order, at most 20 different', async () => {
    const alice = await connect('tz_alice');
    const bob = await connect('tz_bob');
    const carol = await connect('tz_carol');
    await roomOf('tz-room', alice, bob, carol);
    const sent = await send(alice, 'tz-room', 'vote');
    const react = (client, emoji, on = true) =>
        client.request({ type: 'msg.react', room: 'tz-room', seq: sent.seq, emoji, on });
    await react(carol, PARTY);
    await react(bob, THUMBS);
    await react(carol, THUMBS);
    const reactions = async () => entryAt(await suite.history(alice, 'tz-room'), sent.seq).reactions;
    assert.deepEqual(await reactions(), [
        { emoji: PARTY, count: 1, users: ['tz_carol'] },
        { emoji: THUMBS, count: 2, users: ['tz_bob', 'tz_carol'] }]);
    // Gone and back: last added after having none, so last
    await react(carol, PARTY, false);
    await react(alice, PARTY);
    assert.deepEqual(await reactions(), [
        { emoji: THUMBS, count: 2, users: ['tz_bob', 'tz_carol'] },
        { emoji: PARTY, count: 1, users: ['tz_alice'] }]);
    // Taken back by one of two: the other stays, and the emoji keeps its place
    await react(bob, THUMBS, false);
    await react(bob, THUMBS);
    assert.deepEqual(await reactions(), [
        { emoji: THUMBS, count: 2, users: ['tz_carol', 'tz_bob'] },
        { emoji: PARTY, count: 1, users: ['tz_alice'] }]);
    // 20 different: a 21st is bad_request, one already there is still welcome
    for (const emoji of TWENTY.slice(0, 18))
        assertStored(await react(alice, emoji));
    assert.equal((await reactions()).length, 20);
    const refused = await react(bob, '\u{2764}');
    assert.equal(refused.code, 'bad_request', JSON.stringify(refused));
    assert.match(refused.message, /20/);
    assertStored(await react(bob, PARTY));
    // Room again once one is gone
    await react(alice, TWENTY[0], false);
    assertStored(await react(bob, '\u{2764}'));
});

test('a reaction lists its first 20 users and counts them all', async () => {
    const alice = await connect('tc_alice');
    await roomOf('tc-room', alice);
    const sent = await send(alice, 'tc-room', 'popular');
    const names = [];
    for (let index = 0; index < 23; index++) {
        const client = await connect(`tc_user${String(index).padStart(2, '0')}`);
        await ok(client, { type: 'room.join', room: 'tc-room' });
        await ok(client, { type: 'msg.react', room: 'tc-room', seq: sent.seq, emoji: THUMBS });
        names.push(client.user);
        client.ws.terminate();
    }
    const [reaction] = entryAt(await suite.history(alice, 'tc-room'), sent.seq).reactions;
    assert.deepEqual(reaction, { emoji: THUMBS, count: 23, users: names.slice(0, 20) });
});

test('edits, deletions and reactions made while a member was away are found by room.history after its last seq, in order', async () => {
    const alice = await connect('ta_alice');
    let bob = await connect('ta_bob');
    await roomOf('ta-room', alice, bob);
    const first = await send(alice, 'ta-room', 'one');
    const second = await send(alice, 'ta-room', 'two');
    const seen = (await nextChange(bob, 'message', (frame) => frame.seq === second.seq)).seq;
    bob.ws.terminate();
    const edit = await ok(alice, { type: 'msg.edit', room: 'ta-room', seq: first.seq, text: 'uno' });
    const reaction = await ok(alice, { type: 'msg.react', room: 'ta-room', seq: first.seq,
                                       emoji: PARTY });
    const deletion = await ok(alice, { type: 'msg.delete', room: 'ta-room', seq: second.seq });
    bob = await connect('ta_bob');
    const { messages, more } = await ok(bob, { type: 'room.history', room: 'ta-room', after: seen });
    assert.equal(more, false);
    assertGapFree(messages, seen + 1);
    assert.deepEqual(messages.map(({ type, target }) => ({ type, target })), [
        { type: 'edit', target: first.seq },
        { type: 'reaction', target: first.seq },
        { type: 'delete', target: second.seq }]);
    assert.deepEqual(messages.map((entry) => entry.seq), [edit.seq, reaction.seq, deletion.seq]);
    assert.equal(messages[0].text, 'uno');
    assert.deepEqual([messages[1].emoji, messages[1].on], [PARTY, true]);
    // And the messages themselves as they are now
    const page = await ok(bob, { type: 'room.history', room: 'ta-room', before: edit.seq });
    assert.equal(entryAt(page.messages, first.seq).text, 'uno');
    assert.equal(entryAt(page.messages, first.seq).edited, edit.ts);
    assert.deepEqual(entryAt(page.messages, first.seq).reactions,
                     [{ emoji: PARTY, count: 1, users: ['ta_alice'] }]);
    assert.equal(entryAt(page.messages, second.seq).deleted, true);
});

test('every member session gets sends and changes in seq order', async () => {
    const alice = await connect('to_alice');
    const bob = await connect('to_bob');
    await roomOf('to-room', alice, bob);
    const base = await send(alice, 'to-room', 'base');
    const log = [];
    bob.ws.on('message', (data) => {
        const frame = JSON.parse(data.toString());
        if (['message', 'edit', 'delete', 'reaction'].includes(frame.type))
            log.push(frame);
    });
    // Sends and changes in flight at once share runs
    const replies = await Promise.all([
        alice.request({ type: 'msg.send', room: 'to-room', text: 'a' }),
        alice.request({ type: 'msg.edit', room: 'to-room', seq: base.seq, text: 'base2' }),
        bob.request({ type: 'msg.react', room: 'to-room', seq: base.seq, emoji: THUMBS }),
        bob.request({ type: 'msg.react', room: 'to-room', seq: base.seq, emoji: THUMBS }),
        alice.request({ type: 'msg.edit', room: 'to-room', seq: base.seq, text: 'base3' }),
        bob.request({ type: 'msg.edit', room: 'to-room', seq: base.seq, text: 'not mine' }),
        alice.request({ type: 'msg.send', room: 'to-room', text: 'b' })]);
    assert.deepEqual(replies.map((reply) => reply.code ?? reply.type),
                     ['ok', 'ok', 'ok', 'ok', 'ok', 'forbidden', 'ok']);
    const stored = replies.filter((reply) => reply.seq !== undefined).map((reply) => reply.seq);
    assert.equal(stored.length, 5, 'one of the two same reactions changed nothing');
    await nextChange(bob, 'message', (frame) => frame.text === 'b');
    assertGapFree(log, base.seq + 1);
    assert.equal(entryAt(await suite.history(bob, 'to-room'), base.seq).text, 'base3');
});

test('a repeated send with a nonce and a reply_to is stored once', async () => {
    const alice = await connect('tn_alice');
    await roomOf('tn-room', alice);
    const sent = await send(alice, 'tn-room', 'original');
    const fields = { type: 'msg.send', room: 'tn-room', text: 'reply', reply_to: sent.seq,
                     nonce: 'tn-reply-1' };
    const first = await ok(alice, fields);
    const again = await ok(alice, fields);
    assert.deepEqual({ seq: again.seq, ts: again.ts, duplicate: again.duplicate },
                     { seq: first.seq, ts: first.ts, duplicate: true });
    // A repeat is recognised before the check of its target: deleted since
    await ok(alice, { type: 'msg.delete', room: 'tn-room', seq: sent.seq });
    assert.equal((await ok(alice, fields)).duplicate, true);
    const history = await suite.history(alice, 'tn-room');
    assert.equal(history.filter((entry) => entry.text === 'reply').length, 1);
    assert.equal(entryAt(history, first.seq).nonce, 'tn-reply-1');
    assert.equal(entryAt(history, first.seq).reply_to, sent.seq);
});

test('edits, deletions and reactions count against the message rate', async () => {
    await assertChangesCountAgainstRate('rooms', startRoomsParley, async (connectTo) => {
        const alice = await connectTo('tl_alice');
        await ok(alice, { type: 'room.create', room: 'tl-room' });
        const sent = await ok(alice, { type: 'msg.send', room: 'tl-room', text: 'one' });
        const change = (fields) => alice.request({ room: 'tl-room', seq: sent.seq, ...fields });
        return Promise.all([
            ...[1, 2, 3].map((index) => change({ type: 'msg.edit', text: `e${index}` })),
            change({ type: 'msg.react', emoji: THUMBS }),
            change({ type: 'msg.delete' }),
            alice.request({ type: 'msg.send', room: 'tl-room', text: 'two' })]);
    });
});
