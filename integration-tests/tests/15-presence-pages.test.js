// presence.list pages when long (PROTOCOL.md 1.1 "Directory and limits";
// issue 11): a list that would pass the reply's budget stops at a whole user
// with `next`, sent back as `cursor`; the pages together are every user once,
// sorted by name, with who is online. A small presence.list_budget stands in
// for the 1 MiB of the default.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startParley, Client, sanitizerReports } from '../lib/harness.js';

const ARGS = ['--option', 'auth.ops_limit=1', '--option', 'auth.mem_limit=8192',
              '--option', 'presence.list_budget=400'];

test('presence.list pages with next and cursor when the list passes the budget', async () => {
    const server = await startParley({ args: ARGS });
    const clients = [];
    try {
        const names = [];
        for (let index = 0; index < 23; index++) {
            const client = await Client.connect(server.url);
            clients.push(client);
            const name = `Pager${String(index).padStart(2, '0')}`;
            const reply = await client.request({ type: 'auth.register', username: name, password: 'correct horse' });
            assert.equal(reply.type, 'ok', JSON.stringify(reply));
            names.push(name);
        }
        const me = clients[0];
        const listed = [];
        let cursor;
        let pages = 0;
        for (; pages < 50; pages++) {
            const fields = { type: 'presence.list' };
            if (cursor !== undefined)
                fields.cursor = cursor;
            const reply = await me.request(fields);
            assert.equal(reply.type, 'ok', JSON.stringify(reply));
            assert.ok(reply.users.length >= 1);
            assert.ok(JSON.stringify(reply.users).length <= 400 + 2, JSON.stringify(reply));
            listed.push(...reply.users);
            if (reply.next === undefined)
                break;
            assert.equal(typeof reply.next, 'string');
            cursor = reply.next;
        }
        assert.ok(pages >= 3, `${pages + 1} pages`);
        assert.deepEqual(listed.map((entry) => entry.user), names, 'every user once, by name');
        assert.ok(listed.every((entry) => entry.online === true));

        // A cursor that cannot be a name is refused; a short list has no next
        const bad = await me.request({ type: 'presence.list', cursor: 42 });
        assert.equal(bad.code, 'bad_request', JSON.stringify(bad));
        const last = await me.request({ type: 'presence.list', cursor: 'Pager21' });
        assert.deepEqual(last.users.map((entry) => entry.user), ['Pager22']);
        assert.equal(last.next, undefined);
    } finally {
        for (const client of clients)
            client.ws.terminate();
        const status = await server.stop();
        assert.deepEqual(sanitizerReports(server.proc.output), [], server.proc.output);
        assert.equal(status.code, 0, server.proc.output);
    }
});
