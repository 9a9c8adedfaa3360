// Replies, edits, deletions and reactions in conversations (PROTOCOL.md 1.1,
// "Private messages" and "Replies, edits, deletions and reactions";
// proto/CLIENT-PROTOCOL.md, "Private messages"): pm.send's reply_to,
// pm.edit, pm.delete (only the author) and pm.react with every error; their
// entries, with "from" (who made the change) and "to" (the other party), on
// every session of both users; pm.history and pm.conversations' last as
// the message is now; changes made while a user was away found by
// pm.history after its last seq; reactions' order and cap; a repeated
// send; and the message rate counting changes. Runs on store-sqlite, and on
// store-mongo with PARLEY_TEST_STORE=mongo.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ok, fails } from '../lib/rooms.js';
import { startPmParley } from '../lib/pm.js';
import { chatSuite } from '../lib/chat.js';
import { THUMBS, PARTY, TWENTY, BAD_EMOJI, nextChange, entryAt, assertStored,
         assertUnchanged, assertGapFree, assertChangesCountAgainstRate } from '../lib/timeline.js';

const suite = chatSuite('pm');
const { connect } = suite;

const send = (client, to, text, more = {}) => ok(client, { type: 'pm.send', to, text, ...more });

const conversationWith = async (client, name) =>
    (await ok(client, { type: 'pm.conversations' })).conversations
        .find((each) => each.with === name);

test('pm.send with reply_to: the pm event and pm.history carry it; a reply to no message is no_such_message', async () => {
    const alice = await connect('pr_Alice');
    const bob = await connect('pr_bob');
    const asked = await send(alice, 'pr_bob', 'question?');
    const answer = await send(bob, 'PR_ALICE', 'answer', { reply_to: asked.seq });
    const live = await nextChange(alice, 'pm', (frame) => frame.seq === answer.seq);
    assert.deepEqual(live, { type: 'pm', from: 'pr_bob', to: 'pr_Alice', seq: answer.seq,
                             text: 'answer', ts: answer.ts, reply_to: asked.seq });
    const history = await suite.history(alice, 'pr_bob');
    assert.equal(entryAt(history, answer.seq).reply_to, asked.seq);
    assert.equal(entryAt(history, asked.seq).reply_to, undefined);
    const refused = await fails(bob, { type: 'pm.send', to: 'pr_alice', text: 'x', reply_to: 9 },
                                'no_such_message');
    assert.match(refused.message, /\b9\b/);
    assert.match(refused.message, /pr_alice/i);
    for (const reply_to of [0, -3, '1', 2.5, false])
        await fails(bob, { type: 'pm.send', to: 'pr_alice', text: 'x', reply_to }, 'bad_request');
    await ok(alice, { type: 'pm.delete', with: 'pr_bob', seq: asked.seq });
    await fails(bob, { type: 'pm.send', to: 'pr_alice', text: 'x', reply_to: asked.seq },
                'no_such_message');
    assert.equal((await send(bob, 'pr_alice', 'next')).seq, answer.seq + 2);
});

test('pm.edit: the author edits, both users get the edit entry on every session, history and last show the text as it is now', async () => {
    const alice = await connect('pe_alice');
    const alice2 = await connect('pe_alice');
    const bob = await connect('pe_bob');
    const sent = await send(alice, 'pe_bob', 'helo');
    const edit = await ok(alice, { type: 'pm.edit', with: 'PE_BOB', seq: sent.seq, text: 'hello' });
    assertStored(edit);
    const expected = { type: 'edit', from: 'pe_alice', to: 'pe_bob', seq: edit.seq,
                       target: sent.seq, text: 'hello', ts: edit.ts };
    for (const client of [alice, alice2, bob])
        assert.deepEqual(await nextChange(client, 'edit'), expected);
    const history = await suite.history(bob, 'pe_alice');
    assert.equal(entryAt(history, sent.seq).text, 'hello');
    assert.equal(entryAt(history, sent.seq).edited, edit.ts);
    assert.deepEqual(entryAt(history, edit.seq), expected);
    // last: the newest message as it is now, not the edit; last_seq the edit
    const conversation = await conversationWith(bob, 'pe_alice');
    assert.equal(conversation.last.seq, sent.seq);
    assert.equal(conversation.last.text, 'hello');
    assert.equal(conversation.last.edited, edit.ts);
    assert.equal(conversation.last_seq, edit.seq);
    assert.equal(conversation.unread, 1, 'an edit is no unread message');
});

test('pm.edit refuses: bad_request, oneself, no_such_user, no_such_message, forbidden, invalid_text', async () => {
    const alice = await connect('pf_alice');
    const bob = await connect('pf_bob');
    const sent = await send(alice, 'pf_bob', 'mine');
    const edit = (client, fields) => client.request({ type: 'pm.edit', with: 'pf_bob',
                                                      seq: sent.seq, text: 'new', ...fields });
    for (const fields of [{ seq: undefined }, { seq: 0 }, { seq: 'x' }, { text: undefined },
                          { text: [] }, { with: undefined }, { with: 3 }, { with: 'pf_alice' }])
        assert.equal((await edit(alice, fields)).code, 'bad_request', JSON.stringify(fields));
    assert.equal((await edit(alice, { with: 'pf_nobody' })).code, 'no_such_user');
    assert.equal((await edit(alice, { with: 'not a name' })).code, 'no_such_user');
    assert.equal((await edit(alice, { seq: sent.seq + 1 })).code, 'no_such_message');
    const forbidden = await edit(bob, { with: 'pf_alice' });
    assert.equal(forbidden.code, 'forbidden');
    assert.match(forbidden.message, /author/);
    for (const text of ['', ' \t ', 'x'.repeat(4001), 'a\u0000b'])
        assert.equal((await edit(alice, { text })).code, 'invalid_text');
    const history = await suite.history(alice, 'pf_bob');
    assert.deepEqual(history.map((entry) => [entry.seq, entry.text, entry.edited]),
                     [[sent.seq, 'mine', undefined]]);
});

test('pm.delete: only the author deletes; history and last keep no text', async () => {
    const alice = await connect('pd_alice');
    const bob = await connect('pd_bob');
    const first = await send(alice, 'pd_bob', 'keep');
    const sent = await send(alice, 'pd_bob', 'regret');
    const edit = await ok(alice, { type: 'pm.edit', with: 'pd_bob', seq: sent.seq, text: 'secret' });
    await ok(bob, { type: 'pm.react', with: 'pd_alice', seq: sent.seq, emoji: THUMBS });
    const forbidden = await fails(bob, { type: 'pm.delete', with: 'pd_alice', seq: sent.seq },
                                  'forbidden');
    assert.match(forbidden.message, /author/);
    const deleted = await ok(alice, { type: 'pm.delete', with: 'pd_bob', seq: sent.seq });
    assertStored(deleted);
    const expected = { type: 'delete', from: 'pd_alice', to: 'pd_bob', seq: deleted.seq,
                       target: sent.seq, ts: deleted.ts };
    for (const client of [alice, bob])
        assert.deepEqual(await nextChange(client, 'delete'), expected);
    const history = await suite.history(bob, 'pd_alice');
    const message = entryAt(history, sent.seq);
    assert.deepEqual([message.deleted, message.text, message.reactions], [true, '', undefined]);
    assert.equal(entryAt(history, edit.seq).text, '');
    assert.ok(!JSON.stringify(history).includes('secret'));
    assert.ok(!JSON.stringify(history).includes('regret'));
    // last is the newest message, deleted: blank
    const conversation = await conversationWith(bob, 'pd_alice');
    assert.deepEqual([conversation.last.seq, conversation.last.deleted, conversation.last.text],
                     [sent.seq, true, '']);
    assert.equal(conversation.unread, 1, 'the deleted message is not unread');
    assert.equal(conversation.last_seq, deleted.seq);
    for (const fields of [{ type: 'pm.delete' }, { type: 'pm.edit', text: 'x' },
                          { type: 'pm.react', emoji: THUMBS }])
        await fails(alice, { with: 'pd_bob', seq: sent.seq, ...fields }, 'no_such_message');
    await fails(alice, { type: 'pm.delete', with: 'pd_bob' }, 'bad_request');
    await fails(alice, { type: 'pm.delete', with: 'pd_alice', seq: first.seq }, 'bad_request');
    await fails(alice, { type: 'pm.delete', with: 'pd_nobody', seq: first.seq }, 'no_such_user');
});

test('pm.react: an entry per change to both users; a reaction already there, or gone, answers ok without seq; order and cap', async () => {
    const alice = await connect('px_alice');
    const bob = await connect('px_bob');
    const sent = await send(alice, 'px_bob', 'react to me');
    const on = await ok(bob, { type: 'pm.react', with: 'px_alice', seq: sent.seq, emoji: THUMBS });
    assertStored(on);
    const expected = { type: 'reaction', from: 'px_bob', to: 'px_alice', seq: on.seq,
                       target: sent.seq, emoji: THUMBS, on: true, ts: on.ts };
    for (const client of [alice, bob])
        assert.deepEqual(await nextChange(client, 'reaction'), expected);
    assertUnchanged(await bob.request({ type: 'pm.react', with: 'px_alice', seq: sent.seq,
                                        emoji: THUMBS }));
    assertUnchanged(await bob.request({ type: 'pm.react', with: 'px_alice', seq: sent.seq,
                                        emoji: PARTY, on: false }));
    const party = await ok(alice, { type: 'pm.react', with: 'px_bob', seq: sent.seq, emoji: PARTY });
    assert.equal(party.seq, on.seq + 1, 'what changed nothing took no seq');
    const reactions = async () => entryAt(await suite.history(alice, 'px_bob'), sent.seq).reactions;
    assert.deepEqual(await reactions(), [{ emoji: THUMBS, count: 1, users: ['px_bob'] },
                                         { emoji: PARTY, count: 1, users: ['px_alice'] }]);
    await ok(bob, { type: 'pm.react', with: 'px_alice', seq: sent.seq, emoji: THUMBS, on: false });
    await ok(bob, { type: 'pm.react', with: 'px_alice', seq: sent.seq, emoji: THUMBS });
    assert.deepEqual(await reactions(), [{ emoji: PARTY, count: 1, users: ['px_alice'] },
                                         { emoji: THUMBS, count: 1, users: ['px_bob'] }]);
    // The last message keeps them too
    assert.equal((await conversationWith(alice, 'px_bob')).last.reactions.length, 2);
    for (const emoji of TWENTY.slice(0, 18))
        assertStored(await ok(alice, { type: 'pm.react', with: 'px_bob', seq: sent.seq, emoji }));
    await fails(bob, { type: 'pm.react', with: 'px_alice', seq: sent.seq, emoji: '\u{2764}' },
                'bad_request');
    assertStored(await ok(bob, { type: 'pm.react', with: 'px_alice', seq: sent.seq, emoji: PARTY }));
    for (const emoji of BAD_EMOJI)
        await fails(bob, { type: 'pm.react', with: 'px_alice', seq: sent.seq, emoji }, 'bad_request');
    await fails(bob, { type: 'pm.react', with: 'px_alice', seq: sent.seq, emoji: THUMBS, on: 0 },
                'bad_request');
    await fails(bob, { type: 'pm.react', with: 'px_alice', seq: 99, emoji: THUMBS }, 'no_such_message');
    await fails(bob, { type: 'pm.react', with: 'px_bob', seq: 1, emoji: THUMBS }, 'bad_request');
});

test('changes made while a user was away are found by pm.history after its last seq, in order', async () => {
    const alice = await connect('pa_alice');
    let bob = await connect('pa_bob');
    const first = await send(alice, 'pa_bob', 'one');
    const second = await send(bob, 'pa_alice', 'two');
    bob.ws.terminate();
    const edit = await ok(alice, { type: 'pm.edit', with: 'pa_bob', seq: first.seq, text: 'uno' });
    const reaction = await ok(alice, { type: 'pm.react', with: 'pa_bob', seq: second.seq,
                                       emoji: PARTY });
    const deletion = await ok(alice, { type: 'pm.delete', with: 'pa_bob', seq: first.seq });
    bob = await connect('pa_bob');
    const { messages, more } = await ok(bob, { type: 'pm.history', with: 'pa_alice',
                                               after: second.seq });
    assert.equal(more, false);
    assertGapFree(messages, second.seq + 1);
    assert.deepEqual(messages.map(({ type, from, to, target }) => ({ type, from, to, target })), [
        { type: 'edit', from: 'pa_alice', to: 'pa_bob', target: first.seq },
        { type: 'reaction', from: 'pa_alice', to: 'pa_bob', target: second.seq },
        { type: 'delete', from: 'pa_alice', to: 'pa_bob', target: first.seq }]);
    assert.deepEqual(messages.map((entry) => entry.seq), [edit.seq, reaction.seq, deletion.seq]);
    assert.equal(messages[0].text, '', 'the edit of a deleted message keeps no text');
    const all = await suite.history(bob, 'pa_alice');
    assert.equal(entryAt(all, first.seq).deleted, true);
    assert.deepEqual(entryAt(all, second.seq).reactions,
                     [{ emoji: PARTY, count: 1, users: ['pa_alice'] }]);
    // A message of history carries no type; its changes do
    assert.equal(entryAt(all, second.seq).type, undefined);
});

test('a repeated pm.send with a nonce and a reply_to is stored once', async () => {
    const alice = await connect('pn_alice');
    await connect('pn_bob');
    const sent = await send(alice, 'pn_bob', 'original');
    const fields = { type: 'pm.send', to: 'pn_bob', text: 'reply', reply_to: sent.seq,
                     nonce: 'pn-reply-1' };
    const first = await ok(alice, fields);
    const again = await ok(alice, fields);
    assert.deepEqual({ seq: again.seq, duplicate: again.duplicate },
                     { seq: first.seq, duplicate: true });
    const history = await suite.history(alice, 'pn_bob');
    assert.equal(history.filter((entry) => entry.text === 'reply').length, 1);
    assert.equal(entryAt(history, first.seq).reply_to, sent.seq);
});

test('pm edits, deletions and reactions count against the message rate', async () => {
    await assertChangesCountAgainstRate('pm', startPmParley, async (connectTo) => {
        const alice = await connectTo('pl_alice');
        await connectTo('pl_bob');
        const sent = await ok(alice, { type: 'pm.send', to: 'pl_bob', text: 'one' });
        const change = (fields) => alice.request({ with: 'pl_bob', seq: sent.seq, ...fields });
        return Promise.all([
            ...[1, 2, 3].map((index) => change({ type: 'pm.edit', text: `e${index}` })),
            change({ type: 'pm.react', emoji: THUMBS }),
            change({ type: 'pm.delete' }),
            alice.request({ type: 'pm.send', to: 'pl_bob', text: 'two' })]);
    });
});
