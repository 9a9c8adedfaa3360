// The auth tests' shared pieces: a parley with auth.* options whose stop
// checks a clean exit, one server per test (failed logins from 127.0.0.1
// count against one address, so tests must not share the counters), the
// auth requests, and the checks of a reply's shape.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startParley, sanitizerReports, tempDir, withClients } from './harness.js';

export const PASSWORD = 'correct horse';

// parley with its default plugins and auth.* options; stop() removes a data
// folder it made (unless keepData) and asserts a clean, sanitizer-quiet exit
export async function startAuthParley({ dataDir, options = [] } = {}) {
    const data = dataDir ?? tempDir('parley-auth-');
    const args = [];
    for (const option of options)
        args.push('--option', `auth.${option}`);
    const server = await startParley({ dataDir: data, args });
    return {
        ...server,
        async stop({ keepData = false } = {}) {
            const status = await server.stop();
            if (!dataDir && !keepData)
                rmSync(data, { recursive: true, force: true });
            assert.deepEqual(sanitizerReports(server.proc.output), [], server.proc.output);
            assert.equal(status.code, 0, `parley exited with ${JSON.stringify(status)}\n${server.proc.output}`);
            return status;
        },
    };
}

// Runs body ({ server, connect }) against a server of its own
export async function withAuthServer(options, body) {
    await withClients(await startAuthParley({ options }), body);
}

export const register = (client, username, password = PASSWORD) =>
    client.request({ type: 'auth.register', username, password });
export const login = (client, username, password = PASSWORD) =>
    client.request({ type: 'auth.login', username, password });
export const resume = (client, token) => client.request({ type: 'auth.resume', token });
export const logout = (client) => client.request({ type: 'auth.logout' });
// The example plugin answers with the user the broker stamped: who this session is now
export const whoAmI = async (client) => (await client.request({ type: 'example.echo' })).user;

export function assertOk(reply, what) {
    assert.equal(reply.type, 'ok', `${what}: ${JSON.stringify(reply)}`);
}

export function assertError(reply, code, what = code) {
    assert.equal(reply.type, 'error', `${what}: ${JSON.stringify(reply)}`);
    assert.equal(reply.code, code, `${what}: ${JSON.stringify(reply)}`);
    assert.ok(typeof reply.message === 'string' && reply.message.length > 10,
        `${what}: an error says what happened in a sentence`);
}
