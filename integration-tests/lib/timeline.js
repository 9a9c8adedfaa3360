// What the timeline tests of rooms and conversations share (PROTOCOL.md 1.1,
// "Replies, edits, deletions and reactions"): the change events a session
// receives, and the entries of a history by seq.

import assert from 'node:assert/strict';
import { ISO_MS, withUsers } from './rooms.js';
import { plain } from './pm.js';

export const THUMBS = '\u{1F44D}';
export const PARTY = '\u{1F389}';
// 20 different emoji, the most one message holds
export const TWENTY = Array.from({ length: 20 }, (_, index) => String.fromCodePoint(0x1F600 + index));

// The next event of type (edit, delete, reaction, message, pm) a client
// receives that matches, without the harness's bookkeeping
export async function nextChange(client, type, match = () => true) {
    return plain(await client.nextEvent((frame) => frame.type === type && match(frame)));
}

// The entry of seq in a history
export function entryAt(messages, seq) {
    const entry = messages.find((each) => each.seq === seq);
    assert.ok(entry, `no entry ${seq} in ${JSON.stringify(messages)}`);
    return entry;
}

// An ok of a change that was stored: seq and ts
export function assertStored(reply) {
    assert.ok(Number.isInteger(reply.seq), JSON.stringify(reply));
    assert.match(reply.ts, ISO_MS);
}

// An ok of a reaction that changed nothing: no seq, no ts
export function assertUnchanged(reply) {
    assert.equal(reply.type, 'ok', JSON.stringify(reply));
    assert.equal(reply.seq, undefined, JSON.stringify(reply));
    assert.equal(reply.ts, undefined, JSON.stringify(reply));
}

// Seqs that follow one another from first, with nothing missing
export function assertGapFree(entries, first) {
    assert.deepEqual(entries.map((each) => each.seq),
                     entries.map((_, index) => first + index), JSON.stringify(entries));
}

// Emoji the protocol refuses: empty, white space, a control, 33 bytes, not a string
export const BAD_EMOJI = ['', ' ', 'a b', '\u00a0', 'x\u0001', 'x\u007f', 'x'.repeat(33),
                          '\u{1F44D}'.repeat(9), 7, null, true];

// On a fresh server of plugin (start, its start function) whose message
// rate is 1 a second with a burst of 3: burst(connect) sends, at once, a
// message's changes and then a send, and returns their replies. The first
// of them passes, at least three are refused with retry_after_ms, the send
// at the end among them: the changes spent the allowance that sends use.
export async function assertChangesCountAgainstRate(plugin, start, burst) {
    const server = await start({ args: ['--option', `${plugin}.msg_rate=1`,
                                        '--option', `${plugin}.msg_burst=3`] });
    await withUsers(server, async (connect) => {
        const replies = await burst(connect);
        const limited = replies.filter((reply) => reply.code === 'rate_limited');
        assert.ok(limited.length >= 3, JSON.stringify(replies));
        assert.ok(limited.every((reply) => Number.isInteger(reply.retry_after_ms)
                                         && reply.retry_after_ms >= 1
                                         && reply.retry_after_ms <= 1000), JSON.stringify(limited));
        assert.equal(replies.at(-1).code, 'rate_limited', JSON.stringify(replies));
        assert.equal(replies[0].type, 'ok', JSON.stringify(replies));
    });
}
