// What a test file of the rooms or the pm plugin shares: one server for the
// whole file with the plugin's send rate out of the way (the rate limit has
// tests of its own, with their own servers), its users, their connections
// closed and the server's clean stop checked at the end, and the plugin's
// history.
//
//     const suite = chatSuite('pm');
//     const alice = await suite.connect('alice');
//     const messages = await suite.history(alice, 'bob');
//
// and what a restart on the same data must keep:
//
//     await acrossRestart('pm', {
//         setup: async (connect) => { ... (await connect('alice')) ... },
//         check: async (connect) => { ... },
//     });

import assert from 'node:assert/strict';
import { before, after } from 'node:test';
import { tempDir } from './harness.js';
import { startRoomsParley, connectUser, ok } from './rooms.js';
import { startPmParley } from './pm.js';

// Each plugin's server, and its history request: the room's, or the
// conversation's with another user
const PLUGINS = {
    rooms: { start: startRoomsParley, history: 'room.history', field: 'room' },
    pm: { start: startPmParley, history: 'pm.history', field: 'with' },
};

// plugin: 'rooms' or 'pm'; args: more options for the server
export function chatSuite(plugin, { args = [] } = {}) {
    const kind = PLUGINS[plugin];
    assert.ok(kind, `no chat plugin named ${plugin}`);
    const suite = {
        server: undefined,          // set once the file's first test may run
        clients: [],                // every connection a test made, closed at the end
        // A logged-in client of name, on the file's server unless told
        connect: (name, on = suite.server) => connectUser(on.url, name, suite.clients),
        // The entries of a room (rooms) or of the conversation with a user (pm)
        history: async (client, of, limit = 200) =>
            (await ok(client, { type: kind.history, [kind.field]: of, limit })).messages,
    };
    before(async () => {
        suite.server = await kind.start({ args: ['--option', `${plugin}.msg_rate=1000`,
                                                 '--option', `${plugin}.msg_burst=1000`, ...args] });
    });
    after(async () => {
        for (const client of suite.clients)
            client.ws.terminate();
        await suite.server?.stop();
    });
    return suite;
}

// setup against a server of the plugin on fresh data, then check against a
// new server on the same data once the first has stopped. Each gets
// connect(name), a logged-in client on the server of the moment; every
// client is closed before its server stops, and both stops are checked.
export async function acrossRestart(plugin, { setup, check, args = [] }) {
    const kind = PLUGINS[plugin];
    assert.ok(kind, `no chat plugin named ${plugin}`);
    const dataDir = tempDir(`parley-${plugin}-restart-`);
    const own = [];
    const closeAll = () => {
        for (const client of own.splice(0))
            client.ws.terminate();
    };
    let server = await kind.start({ dataDir, args });
    const connect = (name) => connectUser(server.url, name, own);
    try {
        await setup(connect);
        closeAll();
        const first = server;
        server = null;
        await first.stop();
        server = await kind.start({ dataDir, args });
        await check(connect);
    } finally {
        closeAll();
        await server?.stop();
    }
}
