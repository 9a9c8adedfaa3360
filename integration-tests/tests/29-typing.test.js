// Typing (PROTOCOL.md 1.1, "Typing"; proto/CLIENT-PROTOCOL.md, "Typing"):
// `typing` with a room goes to the other members' sessions (never the
// sender's own), with `to` to the recipient's sessions; every error; the
// throttle (one relayed per user and room or recipient every interval, the
// others answered ok and not relayed; a later one relayed again); the
// message rate it shares with sends. Nothing is stored.
//
// Whether a typing was relayed is read from what a session holds once an
// event sent after it has arrived (a message or pm of the same room or
// pair: each session gets its events in the order the plugin sent them).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client, sleep } from '../lib/harness.js';
import { connectUser, ok, fails } from '../lib/rooms.js';
import { startPmParley, nextPm, plain } from '../lib/pm.js';
import { chatSuite } from '../lib/chat.js';

// The file's server: rooms and pm, sends unlimited, a throttle window no
// test can outlast, so that a second typing is always within it
const suite = chatSuite('pm', { args: ['--option', 'rooms.msg_rate=1000',
                                       '--option', 'rooms.msg_burst=1000',
                                       '--option', 'rooms.typing_interval_ms=600000',
                                       '--option', 'pm.typing_interval_ms=600000'] });
const { connect } = suite;

// Every typing event a client receives, in arrival order
function recordTyping(client) {
    const log = [];
    client.ws.on('message', (data) => {
        const frame = JSON.parse(data.toString());
        if (frame.type === 'typing')
            log.push(frame);
    });
    return log;
}

// Sends a message into room from sender and waits until each of clients has
// it: everything the room's plugin sent them before has arrived too
async function roomMarker(sender, room, clients) {
    const text = `marker ${Math.random()}`;
    await ok(sender, { type: 'msg.send', room, text });
    for (const client of clients)
        await client.nextEvent((frame) => frame.type === 'message' && frame.text === text);
}

// The same for a conversation: a pm from sender, waited for by clients
async function pmMarker(sender, to, clients) {
    const text = `marker ${Math.random()}`;
    await ok(sender, { type: 'pm.send', to, text });
    for (const client of clients)
        await nextPm(client, (frame) => frame.text === text);
}

test('typing in a room reaches the other members on every session, never the sender\'s sessions nor non-members', async () => {
    const alice = await connect('Alice_T');
    const aliceTab = await connect('alice_t');
    const bob = await connect('Bob_T');
    const bobTab = await connect('bob_t');
    const carol = await connect('carol_t');
    const outsider = await connect('eve_t');
    await ok(alice, { type: 'room.create', room: 'Typing-Room' });
    await ok(bob, { type: 'room.join', room: 'typing-room' });
    await ok(carol, { type: 'room.join', room: 'typing-room' });
    await ok(outsider, { type: 'room.create', room: 'elsewhere-t' });
    const logs = [alice, aliceTab, bob, bobTab, carol, outsider].map(recordTyping);

    const reply = await ok(alice, { type: 'typing', room: 'TYPING-ROOM' });
    assert.deepEqual(Object.keys(plain(reply)).sort(), ['id', 'type'], 'an empty ok');
    const expected = { type: 'typing', user: 'Alice_T', room: 'Typing-Room' };
    for (const client of [bob, bobTab, carol])
        assert.deepEqual(plain(await client.nextEvent((frame) => frame.type === 'typing')),
                         expected);
    await roomMarker(bob, 'typing-room', [alice, aliceTab, bob, bobTab, carol]);
    await sleep(200);
    assert.deepEqual(logs.map((log) => log.length), [0, 0, 1, 1, 1, 0],
                     'the members but the sender, once each; nobody else');

    // Another member's typing reaches alice's sessions, not its sender's
    await ok(bobTab, { type: 'typing', room: 'typing-room' });
    for (const client of [alice, aliceTab, carol])
        assert.deepEqual(plain(await client.nextEvent((frame) => frame.type === 'typing')),
                         { type: 'typing', user: 'Bob_T', room: 'Typing-Room' });
    await roomMarker(carol, 'typing-room', [alice, aliceTab, bob, bobTab, carol]);
    assert.deepEqual(logs.map((log) => log.length), [1, 1, 1, 1, 2, 0]);

    // Nothing is stored: the history holds the markers and joins only
    const { messages: history } = await ok(alice, { type: 'room.history', room: 'typing-room' });
    assert.ok(history.every((entry) => entry.type === 'message' || entry.type === 'system'),
              JSON.stringify(history));
    assert.equal(history.filter((entry) => entry.type === 'message').length, 2);
});

test('typing with a room: no_such_room, not_member, bad_request, unauthenticated, and the server\'s own names are unknown', async () => {
    const dan = await connect('dan_t');
    const erin = await connect('erin_t');
    await ok(dan, { type: 'room.create', room: 'dans-room' });
    const logs = [dan].map(recordTyping);

    await fails(erin, { type: 'typing', room: 'no-such-room-t' }, 'no_such_room');
    await fails(erin, { type: 'typing', room: 'not a room name!' }, 'no_such_room');
    await fails(erin, { type: 'typing', room: 'dans-room' }, 'not_member');
    // Neither field, both, mistyped
    await fails(erin, { type: 'typing' }, 'bad_request');
    await fails(erin, { type: 'typing', room: 'dans-room', to: 'dan_t' }, 'bad_request');
    await fails(erin, { type: 'typing', room: 42 }, 'bad_request');
    await fails(erin, { type: 'typing', room: null }, 'bad_request');
    await fails(erin, { type: 'typing', room: ['dans-room'] }, 'bad_request');
    // The names a typing travels under inside the server are not a client's
    await fails(erin, { type: 'msg.typing', room: 'dans-room' }, 'unknown_type');
    await fails(erin, { type: 'pm.typing', to: 'dan_t' }, 'unknown_type');

    const anonymous = await Client.connect(suite.server.url);
    suite.clients.push(anonymous);
    await fails(anonymous, { type: 'typing', room: 'dans-room' }, 'unauthenticated');
    await fails(anonymous, { type: 'typing', to: 'dan_t' }, 'unauthenticated');

    // A member who left is no member; a deleted room is no room
    await ok(erin, { type: 'room.join', room: 'dans-room' });
    await ok(erin, { type: 'typing', room: 'dans-room' });
    await ok(erin, { type: 'room.leave', room: 'dans-room' });
    await fails(erin, { type: 'typing', room: 'dans-room' }, 'not_member');
    await ok(dan, { type: 'room.delete', room: 'dans-room' });
    await fails(dan, { type: 'typing', room: 'dans-room' }, 'no_such_room');
    await sleep(200);
    assert.equal(logs[0].length, 1, 'dan heard the one typing of a member, no refused one');
});

test('typing to a user reaches the recipient\'s sessions, names as registered; errors no_such_user and bad_request', async () => {
    const frank = await connect('Frank_T');
    const frankTab = await connect('frank_t');
    const gina = await connect('Gina_T');
    const ginaTab = await connect('gina_t');
    const other = await connect('hank_t');
    const logs = [frank, frankTab, gina, ginaTab, other].map(recordTyping);

    // The first typing to a user not known yet waits for the store's word
    await ok(frank, { type: 'typing', to: 'GINA_T' });
    const expected = { type: 'typing', user: 'Frank_T', to: 'Gina_T' };
    for (const client of [gina, ginaTab])
        assert.deepEqual(plain(await client.nextEvent((frame) => frame.type === 'typing')),
                         expected);
    await pmMarker(frank, 'gina_t', [frank, frankTab, gina, ginaTab]);
    await sleep(200);
    assert.deepEqual(logs.map((log) => log.length), [0, 0, 1, 1, 0],
                     'the recipient\'s sessions only');

    // The other way, to a user known by now
    await ok(ginaTab, { type: 'typing', to: 'frank_t' });
    for (const client of [frank, frankTab])
        assert.deepEqual(plain(await client.nextEvent((frame) => frame.type === 'typing')),
                         { type: 'typing', user: 'Gina_T', to: 'Frank_T' });
    await pmMarker(gina, 'frank_t', [frank, frankTab, gina, ginaTab]);
    assert.deepEqual(logs.map((log) => log.length), [1, 1, 1, 1, 0]);

    await fails(frank, { type: 'typing', to: 'nobody_here_t' }, 'no_such_user');
    await fails(frank, { type: 'typing', to: 'no such name!' }, 'no_such_user');
    await fails(frank, { type: 'typing', to: 'x' }, 'no_such_user');
    await fails(frank, { type: 'typing', to: 'FRANK_T' }, 'bad_request');
    await fails(frank, { type: 'typing', to: 42 }, 'bad_request');
    await fails(frank, { type: 'typing', to: null }, 'bad_request');
    await sleep(200);
    assert.deepEqual(logs.map((log) => log.length), [1, 1, 1, 1, 0], 'a refused typing goes nowhere');

    // Nothing is stored: the conversation holds the two markers
    assert.equal((await suite.history(frank, 'gina_t')).length, 2);
});

test('the throttle: a second typing within the window is answered ok and not relayed; others users, rooms and recipients have their own', async () => {
    const ivy = await connect('ivy_t');
    const jack = await connect('jack_t');
    const kim = await connect('kim_t');
    await ok(ivy, { type: 'room.create', room: 'throttle-a' });
    await ok(ivy, { type: 'room.create', room: 'throttle-b' });
    for (const room of ['throttle-a', 'throttle-b'])
        await ok(jack, { type: 'room.join', room });
    const [jackLog, ivyLog, kimLog] = [jack, ivy, kim].map(recordTyping);

    await ok(ivy, { type: 'typing', room: 'throttle-a' });
    await ok(ivy, { type: 'typing', room: 'throttle-a' });
    await ok(ivy, { type: 'typing', room: 'throttle-a' });
    await ok(ivy, { type: 'typing', room: 'throttle-b' });      // another room
    await ok(jack, { type: 'typing', room: 'throttle-a' });     // another user
    await ok(jack, { type: 'typing', room: 'throttle-a' });
    await roomMarker(ivy, 'throttle-a', [ivy, jack]);
    await roomMarker(ivy, 'throttle-b', [ivy, jack]);
    assert.deepEqual(jackLog.map((frame) => frame.room), ['throttle-a', 'throttle-b']);
    assert.deepEqual(ivyLog.map((frame) => [frame.user, frame.room]), [['jack_t', 'throttle-a']]);

    await ok(ivy, { type: 'typing', to: 'jack_t' });
    await ok(ivy, { type: 'typing', to: 'JACK_T' });
    await ok(ivy, { type: 'typing', to: 'kim_t' });             // another recipient
    await pmMarker(ivy, 'jack_t', [jack]);
    await pmMarker(ivy, 'kim_t', [kim]);
    assert.deepEqual(jackLog.filter((frame) => frame.to).map(plain),
                     [{ type: 'typing', user: 'ivy_t', to: 'jack_t' }]);
    assert.deepEqual(kimLog.map(plain), [{ type: 'typing', user: 'ivy_t', to: 'kim_t' }]);
});

// A server with a short throttle window and a small message rate
const small = { server: null, clients: [] };
after(async () => {
    for (const client of small.clients)
        client.ws.terminate();
    await small.server?.stop();
});
async function connectSmall(name) {
    small.server ??= await startPmParley({ args: [
        '--option', 'rooms.typing_interval_ms=200', '--option', 'pm.typing_interval_ms=200',
        '--option', 'rooms.msg_rate=1', '--option', 'rooms.msg_burst=4',
        '--option', 'pm.msg_rate=1', '--option', 'pm.msg_burst=4'] });
    return connectUser(small.server.url, name, small.clients);
}

test('the throttle: a typing after the window is relayed again (typing_interval_ms=200)', async () => {
    const lea = await connectSmall('lea_t');
    const max = await connectSmall('max_t');
    await ok(lea, { type: 'room.create', room: 'window-t' });
    await ok(max, { type: 'room.join', room: 'window-t' });
    const maxLog = recordTyping(max);

    await ok(lea, { type: 'typing', room: 'window-t' });
    await max.nextEvent((frame) => frame.type === 'typing');
    // Longer than the window, however slow the machine: the next one passes
    await sleep(600);
    await ok(lea, { type: 'typing', room: 'window-t' });
    await max.nextEvent((frame) => frame.type === 'typing');

    await ok(lea, { type: 'typing', to: 'max_t' });
    await max.nextEvent((frame) => frame.type === 'typing' && frame.to === 'max_t');
    await sleep(600);
    await ok(lea, { type: 'typing', to: 'max_t' });
    await max.nextEvent((frame) => frame.type === 'typing' && frame.to === 'max_t');
    assert.deepEqual(maxLog.map((frame) => frame.room ?? frame.to),
                     ['window-t', 'window-t', 'max_t', 'max_t']);
});

test('typing counts against the message rate like sends: a burst gets rate_limited with retry_after_ms', async () => {
    const ned = await connectSmall('ned_t');
    const oli = await connectSmall('oli_t');
    await ok(ned, { type: 'room.create', room: 'rate-t' });
    // room.create takes no token: ned's burst of 4 is whole
    const replies = await Promise.all([
        ...Array.from({ length: 6 }, () => ned.request({ type: 'typing', room: 'rate-t' })),
        ned.request({ type: 'msg.send', room: 'rate-t', text: 'after the typings' })]);
    const limited = replies.filter((reply) => reply.code === 'rate_limited');
    assert.ok(limited.length >= 2, JSON.stringify(replies));
    // rooms.msg_rate=1: the next token is at most a second away
    for (const reply of limited)
        assert.ok(Number.isInteger(reply.retry_after_ms) && reply.retry_after_ms >= 1
                  && reply.retry_after_ms <= 1000, JSON.stringify(reply));
    assert.ok(replies.slice(0, 4).every((reply) => reply.type === 'ok'), JSON.stringify(replies));
    assert.equal(replies.at(-1).code, 'rate_limited', 'a message counts against the same allowance');

    // The same in conversations, against pm's allowance
    const pmReplies = await Promise.all([
        ...Array.from({ length: 6 }, () => oli.request({ type: 'typing', to: 'ned_t' })),
        oli.request({ type: 'pm.send', to: 'ned_t', text: 'after the typings' })]);
    const pmLimited = pmReplies.filter((reply) => reply.code === 'rate_limited');
    assert.ok(pmLimited.length >= 2, JSON.stringify(pmReplies));
    for (const reply of pmLimited)
        assert.ok(Number.isInteger(reply.retry_after_ms) && reply.retry_after_ms >= 1,
                  JSON.stringify(reply));
    assert.equal(pmReplies.at(-1).code, 'rate_limited');
});
