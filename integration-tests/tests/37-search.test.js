// Search (PROTOCOL.md 1.1, "Search"; proto/CLIENT-PROTOCOL.md, "Search"):
// over real processes, every rule: the scope (the rooms the user is a
// member of now, never a room it left or was kicked from, never another
// pair's conversation), case, accents, prefixes, every word, deletions,
// edits (old words stop matching, new ones match), paging with next and
// cursor (no result twice, none skipped), the room and with filters and
// their errors, and bad queries (empty, only punctuation, too long, too
// many words, a bad limit or cursor) answered bad_request with the
// connection still usable. Results are entries exactly as room.history and
// pm.history give them. Runs on store-sqlite, and on store-mongo with
// PARLEY_TEST_STORE=mongo. The search plugin also runs as a separate
// process (parley-plugin search.so), the same .so.
//
// store-sqlite keeps its index in a file of its own (parley.search.db),
// written by a thread after the commits (proto/STORE.md, "Search"): a
// search right after its sends sees them (several clients at once), every
// acknowledged message is found after parley is killed with SIGKILL while
// it indexes, an index file removed while parley is stopped is built
// again, and a search waiting for an index held by another writer never
// holds a room message back (those three on store-sqlite only).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ok, fails, FAST_AUTH, connectUser, startRoomsParley, nextEntry } from '../lib/rooms.js';
import { chatSuite } from '../lib/chat.js';
import { rmSync, existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { startBroker, startGateway, startPluginProcess, untilRegistered, pluginPath, tempDir,
         sanitizerReports, LOAD_HEARTBEAT, sleep } from '../lib/harness.js';

const suite = chatSuite('rooms');
const { connect } = suite;

const search = (client, query, more = {}) => ok(client, { type: 'search', query, ...more });
const say = (client, room, text) => ok(client, { type: 'msg.send', room, text });

// A room of its owner and the members, every one joined
async function roomOf(owner, room, ...members) {
    await ok(owner, { type: 'room.create', room });
    for (const member of members)
        await ok(member, { type: 'room.join', room });
}

// The texts of a search's results, newest first
const texts = (reply) => reply.results.map((entry) => entry.text);

// The entry of seq in a room's or conversation's history
async function historyEntry(client, fields, seq) {
    const reply = await ok(client, { limit: 200, ...fields });
    return reply.messages.find((entry) => entry.seq === seq);
}

test('every word must match, without regard to case or accents, whole words unless a prefix*; results newest first as history gives them', async () => {
    const alice = await connect('sw_alice');
    const bob = await connect('sw_bob');
    await roomOf(alice, 'sw-room', bob);
    const sent = [];
    for (const text of ['Café au lait', 'ÉCOLE normale', 'Die Straße', 'Привет, мир!',
                        '東京タワー に行く', 'the cafe is open', 'swrare Zebra'])
        sent.push(await say(alice, 'sw-room', text));
    assert.deepEqual(texts(await search(bob, 'CAFE')), ['the cafe is open', 'Café au lait']);
    assert.deepEqual(texts(await search(bob, 'café')), ['the cafe is open', 'Café au lait']);
    assert.deepEqual(texts(await search(bob, 'ecole')), ['ÉCOLE normale']);
    assert.deepEqual(texts(await search(bob, 'STRASSE')), [], 'ß is its own letter');
    assert.deepEqual(texts(await search(bob, 'straße')), ['Die Straße']);
    assert.deepEqual(texts(await search(bob, 'ПРИВЕТ')), ['Привет, мир!']);
    assert.deepEqual(texts(await search(bob, '東京タワー')), ['東京タワー に行く']);
    assert.deepEqual(texts(await search(bob, 'cafe open')), ['the cafe is open']);
    assert.deepEqual(texts(await search(bob, 'cafe, normale!')), [], 'every word must match');
    assert.deepEqual(texts(await search(bob, 'caf')), [], 'whole words');
    assert.deepEqual(texts(await search(bob, 'caf* LAI*')), ['Café au lait']);
    assert.deepEqual(texts(await search(bob, 'zeb*')), ['swrare Zebra']);
    // A result is the entry as room.history gives it
    const found = (await search(bob, 'swrare')).results[0];
    assert.deepEqual(found, await historyEntry(bob, { type: 'room.history', room: 'sw-room' },
                                               sent[6].seq));
    assert.equal(found.room, 'sw-room');
    assert.equal(found.type, 'message');
});

test('scope: only the rooms the user is a member of now, never after leaving or a kick; room narrows it; no_such_room and not_member', async () => {
    const alice = await connect('ss_alice');
    const bob = await connect('ss_bob');
    const carol = await connect('ss_carol');
    await roomOf(alice, 'ss-room', bob, carol);
    await roomOf(carol, 'ss-other');
    await say(alice, 'ss-room', 'ssplan for the room');
    await say(carol, 'ss-other', 'ssplan of carol');
    assert.deepEqual(texts(await search(bob, 'ssplan')), ['ssplan for the room']);
    assert.deepEqual(texts(await search(carol, 'ssplan')),
                     ['ssplan of carol', 'ssplan for the room']);
    assert.deepEqual(texts(await search(carol, 'ssplan', { room: 'SS-OTHER' })), ['ssplan of carol']);
    await fails(bob, { type: 'search', query: 'ssplan', room: 'ss-other' }, 'not_member');
    await fails(bob, { type: 'search', query: 'ssplan', room: 'ss-nowhere' }, 'no_such_room');
    // Leaving: nothing of the room any more
    await ok(bob, { type: 'room.leave', room: 'ss-room' });
    assert.deepEqual(texts(await search(bob, 'ssplan')), []);
    await fails(bob, { type: 'search', query: 'ssplan', room: 'ss-room' }, 'not_member');
    // Kicked: the same
    await ok(alice, { type: 'room.kick', room: 'ss-room', user: 'ss_carol' });
    assert.deepEqual(texts(await search(carol, 'ssplan')), ['ssplan of carol']);
    // Back in: found again
    await ok(bob, { type: 'room.join', room: 'ss-room' });
    assert.deepEqual(texts(await search(bob, 'ssplan')), ['ssplan for the room']);
});

test('scope: the user\'s own conversations, never another pair\'s; with narrows it; no_such_user; pm results as pm.history gives them', async () => {
    const alice = await connect('sp_alice');
    const bob = await connect('sp_bob');
    const carol = await connect('sp_carol');
    const dave = await connect('sp_dave');
    const first = await ok(alice, { type: 'pm.send', to: 'sp_bob', text: 'splunch tomorrow?' });
    await ok(bob, { type: 'pm.send', to: 'sp_alice', text: 'Splunch, yes' });
    await ok(carol, { type: 'pm.send', to: 'sp_dave', text: 'splunch alone' });
    await ok(alice, { type: 'pm.send', to: 'sp_carol', text: 'splunch with carol' });
    assert.deepEqual(texts(await search(alice, 'splunch')),
                     ['splunch with carol', 'Splunch, yes', 'splunch tomorrow?']);
    assert.deepEqual(texts(await search(bob, 'splunch')), ['Splunch, yes', 'splunch tomorrow?']);
    assert.deepEqual(texts(await search(dave, 'splunch')), ['splunch alone']);
    assert.deepEqual(texts(await search(alice, 'splunch', { with: 'SP_BOB' })),
                     ['Splunch, yes', 'splunch tomorrow?']);
    assert.deepEqual(texts(await search(bob, 'splunch', { with: 'sp_carol' })), []);
    await fails(alice, { type: 'search', query: 'splunch', with: 'sp_nobody' }, 'no_such_user');
    const found = (await search(bob, 'tomorrow')).results[0];
    assert.deepEqual(found, await historyEntry(bob, { type: 'pm.history', with: 'sp_alice' },
                                               first.seq));
    assert.equal(found.from, 'sp_alice');
    assert.equal(found.to, 'sp_bob');
    assert.equal(found.room, undefined);
});

test('edits and deletions: the old words stop matching, the new ones match, a deleted message never does', async () => {
    const alice = await connect('se_alice');
    const bob = await connect('se_bob');
    await roomOf(alice, 'se-room', bob);
    const sent = await say(alice, 'se-room', 'meet at senoon');
    const other = await say(alice, 'se-room', 'bring the senoon papers');
    await ok(alice, { type: 'msg.edit', room: 'se-room', seq: sent.seq, text: 'meet at sedusk' });
    assert.deepEqual(texts(await search(bob, 'senoon')), ['bring the senoon papers']);
    const edited = (await search(bob, 'sedusk')).results;
    assert.deepEqual(texts({ results: edited }), ['meet at sedusk']);
    assert.equal(edited[0].seq, sent.seq);
    assert.ok(edited[0].edited, 'the result is the message as it is now');
    await ok(alice, { type: 'msg.delete', room: 'se-room', seq: other.seq });
    assert.deepEqual(texts(await search(bob, 'senoon')), []);
    assert.deepEqual(texts(await search(bob, 'papers')), []);
    // The same in a conversation
    const pm = await ok(alice, { type: 'pm.send', to: 'se_bob', text: 'seold words' });
    await ok(alice, { type: 'pm.edit', with: 'se_bob', seq: pm.seq, text: 'senew words' });
    assert.deepEqual(texts(await search(bob, 'seold')), []);
    assert.deepEqual(texts(await search(bob, 'senew words')), ['senew words']);
    await ok(alice, { type: 'pm.delete', with: 'se_bob', seq: pm.seq });
    assert.deepEqual(texts(await search(bob, 'senew')), []);
});

test('paging: next and cursor walk every result once, newest first, with no gap', async () => {
    const alice = await connect('sg_alice');
    const bob = await connect('sg_bob');
    await roomOf(alice, 'sg-room', bob);
    const seqs = [];
    for (let index = 0; index < 45; index++)
        seqs.push((await say(alice, 'sg-room', `sgpage number ${index}`)).seq);
    for (let index = 0; index < 5; index++)
        await say(alice, 'sg-room', `other number ${index}`);
    const seen = [];
    let reply = await search(bob, 'sgpage');
    assert.equal(reply.results.length, 20, 'the default limit is 20');
    seen.push(...reply.results.map((entry) => entry.seq));
    while (reply.next !== undefined) {
        assert.equal(typeof reply.next, 'string');
        reply = await search(bob, 'sgpage', { cursor: reply.next, limit: 20 });
        seen.push(...reply.results.map((entry) => entry.seq));
    }
    assert.deepEqual(seen, [...seqs].reverse());
    // A page of exactly what is left has no next
    const last = await search(bob, 'other', { limit: 5 });
    assert.equal(last.results.length, 5);
    assert.equal(last.next, undefined);
    assert.equal((await search(bob, 'sgpage', { limit: 100 })).results.length, 45);
});

test('bad queries and fields are bad_request, and the connection stays usable', async () => {
    const alice = await connect('sb_alice');
    await roomOf(alice, 'sb-room');
    await say(alice, 'sb-room', 'sbfine words');
    const bad = [
        { query: '' }, { query: '   ' }, { query: ' ,.;!? *** ' }, { query: 'x'.repeat(201) },
        { query: Array.from({ length: 17 }, (_, index) => `w${index}`).join(' ') },
        { query: 42 }, {}, { query: 'sbfine', limit: 0 }, { query: 'sbfine', limit: 101 },
        { query: 'sbfine', limit: 'ten' }, { query: 'sbfine', limit: 2.5 },
        { query: 'sbfine', room: 'sb-room', with: 'sb_alice' }, { query: 'sbfine', cursor: 7 },
        { query: 'sbfine', cursor: 'not a cursor' }, { query: 'sbfine', cursor: 'x'.repeat(257) },
        { query: 'sbfine', room: 42 },
    ];
    for (const fields of bad) {
        await fails(alice, { type: 'search', ...fields }, 'bad_request');
        assert.deepEqual(texts(await search(alice, 'sbfine')), ['sbfine words']);
    }
    // At the bounds: 200 characters, 16 words, limit 1 and 100
    assert.deepEqual(texts(await search(alice, `sbfine ${'é'.repeat(193)}`)), []);
    const sixteen = ['sbfine', ...Array.from({ length: 15 }, () => 'words')].join(' ');
    assert.deepEqual(texts(await search(alice, sixteen)), ['sbfine words']);
    assert.deepEqual(texts(await search(alice, 'SBFINE', { limit: 1 })), ['sbfine words']);
    assert.deepEqual(texts(await search(alice, 'sbfine', { limit: 100 })), ['sbfine words']);
});

test('the search plugin as a separate process (parley-plugin search.so) answers as in-process', async () => {
    const data = tempDir('parley-search-split-');
    const broker = await startBroker({ args: [
        '--plugin', pluginPath('store-sqlite'), '--plugin', pluginPath('auth'),
        '--plugin', pluginPath('rooms'), '--option', `store-sqlite.path=${data}/parley.db`,
        ...FAST_AUTH, ...LOAD_HEARTBEAT,
    ] });
    const plugin = startPluginProcess(broker.endpoint, [pluginPath('search')],
                                      { args: LOAD_HEARTBEAT });
    let gateway;
    const clients = [];
    try {
        await untilRegistered([plugin]);
        gateway = await startGateway(broker.endpoint, { args: LOAD_HEARTBEAT });
        // The in-broker plugins may still be starting on a loaded machine:
        // a register answered unavailable is tried again
        let alice;
        for (let attempt = 0; !alice; attempt++) {
            try {
                alice = await connectUser(gateway.url, 'sx_alice', clients);
            } catch (error) {
                if (attempt >= 20 || !/unavailable/.test(error.message))
                    throw error;
                await new Promise((resolve) => setTimeout(resolve, 1000));
            }
        }
        await ok(alice, { type: 'room.create', room: 'sx-room' });
        await say(alice, 'sx-room', 'Séparé process');
        assert.deepEqual(texts(await search(alice, 'SEPARE')), ['Séparé process']);
        await fails(alice, { type: 'search', query: '!!' }, 'bad_request');
    } finally {
        for (const client of clients)
            client.ws.terminate();
        await gateway?.stop();
        await plugin.stop();
        await broker.stop();
        assert.deepEqual(sanitizerReports(plugin.output), [], plugin.output);
        rmSync(data, { recursive: true, force: true });
    }
});

test('a search right after a send finds it: three clients each sending then searching at once, thirty times', async () => {
    const owner = await connect('sn_owner');
    const users = [owner, await connect('sn_bob'), await connect('sn_carol')];
    await roomOf(owner, 'sn-room', users[1], users[2]);
    await Promise.all(users.map(async (client, who) => {
        for (let round = 0; round < 30; round++) {
            const word = `snword${who}x${round}`;
            await say(client, 'sn-room', `fresh ${word}`);
            assert.deepEqual(texts(await search(client, word)), [`fresh ${word}`],
                             `${word} searched right after its ok`);
        }
    }));
    // and privately: the message searched by its receiver at once
    await ok(users[1], { type: 'pm.send', to: 'sn_carol', text: 'snprivate at once' });
    assert.deepEqual(texts(await search(users[2], 'snprivate')), ['snprivate at once']);
});

// store-sqlite's index file and its thread: the store-mongo run leaves them out
const sqliteOnly = process.env.PARLEY_TEST_STORE === 'mongo'
    ? 'the index file and its thread are store-sqlite\'s' : false;

// A search answered, asked again while the index is being built (a start:
// unavailable with retry_after_ms)
async function searchWhenBuilt(client, query, more = {}) {
    for (let attempt = 0; ; attempt++) {
        const reply = await client.request({ type: 'search', query, ...more });
        if (reply.type === 'ok')
            return reply;
        assert.equal(reply.code, 'unavailable', JSON.stringify(reply));
        assert.ok(reply.retry_after_ms > 0, JSON.stringify(reply));
        assert.ok(attempt < 300, 'the index is still being built after 300 tries');
        await sleep(Math.min(reply.retry_after_ms, 200));
    }
}

// Every text a search finds, page after page
async function allTexts(client, query) {
    const found = [];
    let cursor;
    for (;;) {
        const reply = await searchWhenBuilt(client, query, { limit: 50, ...(cursor ? { cursor } : {}) });
        found.push(...texts(reply));
        if (!reply.next)
            return found;
        cursor = reply.next;
    }
}

test('parley killed with SIGKILL while it indexes: after the restart every acknowledged message is found (store-sqlite)', { skip: sqliteOnly }, async () => {
    const data = tempDir('parley-search-kill-');
    let server = await startRoomsParley({ dataDir: data, args: ['--option', 'rooms.msg_rate=0'] });
    const clients = [];
    try {
        const alice = await connectUser(server.url, 'sk_alice', clients);
        await ok(alice, { type: 'room.create', room: 'sk-room' });
        // Sends in flight eight at a time; parley is killed after 150 oks,
        // while the indexer's thread follows the commits
        const acked = [];
        let next = 0;
        const sender = async () => {
            while (next < 400) {
                const text = `skword number ${next++}`;
                const reply = await alice.request({ type: 'msg.send', room: 'sk-room', text }, 20000)
                    .catch(() => null);
                if (!reply)
                    return;
                if (reply.type === 'ok')
                    acked.push(text);
            }
        };
        const sending = Promise.all(Array.from({ length: 8 }, sender));
        while (acked.length < 150)
            await sleep(5);
        server.proc.signal('SIGKILL');
        await server.proc.exited;
        await sending;
        server = await startRoomsParley({ dataDir: data, port: server.port });
        const reader = await connectUser(server.url, 'sk_alice', clients);
        const found = new Set(await allTexts(reader, 'skword'));
        const missing = acked.filter((text) => !found.has(text));
        assert.deepEqual(missing, [], `${missing.length} of ${acked.length} acknowledged messages not found`);
        // and the index follows what comes after
        await say(reader, 'sk-room', 'skword after the restart');
        assert.deepEqual(texts(await search(reader, 'skword after restart')), ['skword after the restart']);
    } finally {
        for (const client of clients)
            client.ws.terminate();
        await server.stop();
        rmSync(data, { recursive: true, force: true });
    }
});

test('the index file removed while parley is stopped is built again at the start: rooms and conversations found (store-sqlite)', { skip: sqliteOnly }, async () => {
    const data = tempDir('parley-search-rebuild-');
    let server = await startRoomsParley({ dataDir: data });
    const clients = [];
    try {
        const alice = await connectUser(server.url, 'sr_alice', clients);
        await connectUser(server.url, 'sr_bob', clients);
        await ok(alice, { type: 'room.create', room: 'sr-room' });
        await say(alice, 'sr-room', 'srword in the room');
        const gone = await say(alice, 'sr-room', 'srword deleted');
        await ok(alice, { type: 'msg.delete', room: 'sr-room', seq: gone.seq });
        await ok(alice, { type: 'pm.send', to: 'sr_bob', text: 'srword in private' });
        assert.equal(texts(await search(alice, 'srword')).length, 2);
        for (const client of clients.splice(0))
            client.ws.terminate();
        await server.stop();
        const index = `${data}/parley.search.db`;
        assert.ok(existsSync(index), 'the index is a file of its own beside parley.db');
        for (const suffix of ['', '-wal', '-shm'])
            rmSync(`${index}${suffix}`, { force: true });
        server = await startRoomsParley({ dataDir: data, port: server.port });
        const again = await connectUser(server.url, 'sr_alice', clients);
        assert.deepEqual((await allTexts(again, 'srword')).sort(),
                         ['srword in private', 'srword in the room']);
        assert.ok(existsSync(index), 'built again');
    } finally {
        for (const client of clients)
            client.ws.terminate();
        await server.stop();
        rmSync(data, { recursive: true, force: true });
    }
});

// Holds a SQLite file as another writer would: the sqlite3 shell in an
// open write transaction. Resolves with the function that lets it go.
async function holdFile(path) {
    const shell = spawn('sqlite3', [path], { stdio: ['pipe', 'pipe', 'inherit'] });
    let said = '';
    await new Promise((resolve, reject) => {
        shell.stdout.on('data', (chunk) => {
            said += chunk;
            if (said.includes('held'))
                resolve();
        });
        shell.once('exit', (code) => reject(new Error(`sqlite3 ended (${code}) before holding ${path}`)));
        shell.stdin.write(".timeout 20000\nBEGIN IMMEDIATE;\nSELECT 'held';\n");
    });
    return async () => {
        const ended = new Promise((resolve) => shell.once('exit', resolve));
        shell.stdin.end('ROLLBACK;\n.quit\n');
        await ended;
    };
}

test('a room message sent while a search waits for a held index gets its ok and is delivered; the search answers after, with what was acknowledged before it (store-sqlite)', { skip: sqliteOnly }, async () => {
    const data = tempDir('parley-search-held-');
    const server = await startRoomsParley({ dataDir: data,
                                            args: ['--option', 'store-sqlite.search_wait_ms=60000'] });
    const clients = [];
    let release = null;
    try {
        const alice = await connectUser(server.url, 'sh_alice', clients);
        const bob = await connectUser(server.url, 'sh_bob', clients);
        await roomOf(alice, 'sh-room', bob);
        await say(alice, 'sh-room', 'shword before');
        assert.deepEqual(texts(await searchWhenBuilt(alice, 'shword')), ['shword before']);
        // The index file held: the indexer cannot pass the commits from now on
        release = await holdFile(`${data}/parley.search.db`);
        await say(alice, 'sh-room', 'shword while held');
        let searchAnswered = false;
        const searching = alice.request({ type: 'search', query: 'shword' }, 60000)
            .then((reply) => { searchAnswered = true; return reply; });
        // Time for the search to reach the store before the message does
        await sleep(300);
        const delivered = nextEntry(bob, 'sh-room', (entry) => entry.text === 'a message meanwhile',
                                    30000);
        await say(alice, 'sh-room', 'a message meanwhile');
        await delivered;
        assert.equal(searchAnswered, false, 'the search cannot answer while its index is held');
        // The index let go: the search answers with every message acknowledged before it
        await release();
        release = null;
        const reply = await searching;
        assert.equal(reply.type, 'ok', JSON.stringify(reply));
        assert.deepEqual(texts(reply), ['shword while held', 'shword before']);
    } finally {
        if (release)
            await release();
        for (const client of clients)
            client.ws.terminate();
        await server.stop();
        rmSync(data, { recursive: true, force: true });
    }
});
