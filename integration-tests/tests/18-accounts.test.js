// Accounts (PROTOCOL.md 1.1): auth.password, every row and error, and the
// renewal of a token by auth.resume (valid for its lifetime from its last
// use), through the real server: the gateway, the broker, the auth plugin,
// argon2id and the store (SQLite, or store-mongo with PARLEY_TEST_STORE=mongo).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Proc, sanitizerReports, sleep, tempDir, freePort, binDir } from '../lib/harness.js';
import {
    PASSWORD, withAuthServer, register, login, resume, whoAmI, assertOk, assertError,
} from '../lib/auth.js';

// Every test gets its own server (lib/auth.js says why)
const withServer = withAuthServer;

const change = (client, password, newPassword) =>
    client.request({ type: 'auth.password', password, new_password: newPassword });

test('auth.password: a fresh token here; every other session of the user is logged out and its token revoked', async () => {
    await withServer([], async ({ connect }) => {
        const here = await connect();
        const registered = await register(here, 'alice');
        assertOk(registered, 'register');
        const sameToken = await connect();
        assertOk(await resume(sameToken, registered.token), 'a second session of the same token');
        const otherDevice = await connect();
        const otherLogin = await login(otherDevice, 'alice');
        assertOk(otherLogin, 'a session of its own token');
        const bob = await connect();
        const bobLogin = await register(bob, 'bob');
        assertOk(bobLogin, 'another user');

        const reply = await change(here, PASSWORD, 'a brand new secret');
        assertOk(reply, 'auth.password');
        assert.deepEqual(Object.keys(reply).filter((key) => key !== '__binary').sort(), ['id', 'token', 'type']);
        assert.match(reply.token, /^[A-Za-z0-9_-]{43}$/);
        assert.notEqual(reply.token, registered.token);

        for (const [name, client] of [['same token', sameToken], ['other token', otherDevice]]) {
            const event = await client.nextEvent((frame) => frame.type === 'logged_out');
            assert.deepEqual(Object.keys(event).filter((key) => key !== '__binary'), ['type']);
            assertError(await client.request({ type: 'room.list' }), 'unauthenticated', name);
            assert.equal(await whoAmI(client), null, name);
        }
        assert.equal(here.events.filter((e) => e.type === 'logged_out').length, 0,
            'the session that asked gets ok, not the event');
        assert.equal(await whoAmI(here), 'alice', 'this session continues');
        assertOk(await here.request({ type: 'room.list' }), 'and is served');
        assert.equal(await whoAmI(bob), 'bob', 'another user is untouched');
        assert.equal(bob.events.filter((e) => e.type === 'logged_out').length, 0);

        assertError(await resume(await connect(), registered.token), 'invalid_token', 'the old token');
        assertError(await resume(await connect(), otherLogin.token), 'invalid_token', 'the other token');
        assertOk(await resume(await connect(), bobLogin.token), "bob's token still works");
        const renewed = await connect();
        assertOk(await resume(renewed, reply.token), 'the fresh token resumes');
        assert.equal(await whoAmI(renewed), 'alice');

        assertError(await login(await connect(), 'alice'), 'bad_credentials', 'the old password');
        assertOk(await login(await connect(), 'alice', 'a brand new secret'), 'the new password');

        // This session is bound with the fresh token now: its logout revokes
        // that token on the session that resumed it
        assertOk(await here.request({ type: 'auth.logout' }), 'logout');
        await renewed.nextEvent((frame) => frame.type === 'logged_out');
        assertError(await resume(await connect(), reply.token), 'invalid_token', 'revoked by logout');
    });
});

test('auth.password: a wrong current password is bad_credentials and changes nothing', async () => {
    await withServer([], async ({ connect }) => {
        const here = await connect();
        const { token } = await register(here, 'carol');
        const other = await connect();
        assertOk(await resume(other, token), 'another session');
        assertError(await change(here, 'not the password', 'a brand new secret'), 'bad_credentials');
        assertError(await change(here, 'short', 'a brand new secret'), 'bad_credentials',
            'a current password no account can have');
        assert.equal(await whoAmI(here), 'carol', 'this session stays');
        assert.equal(await whoAmI(other), 'carol', 'and so does the other');
        assert.equal(other.events.filter((e) => e.type === 'logged_out').length, 0);
        assertOk(await resume(await connect(), token), 'the token is valid');
        assertOk(await login(await connect(), 'carol'), 'the password is unchanged');
        assertError(await login(await connect(), 'carol', 'a brand new secret'), 'bad_credentials');
    });
});

test('weak_password: too short, too long, the username in any case, a common password; register and auth.password', async () => {
    await withServer([], async ({ connect }) => {
        const fresh = await connect();
        assertError(await register(fresh, 'victoria9', '12345678'), 'weak_password', 'register: common');
        assertError(await register(fresh, 'victoria9', 'PassWord1'), 'weak_password',
            'register: common in another case');
        assertError(await register(fresh, 'victoria9', 'VICTORIA9'), 'weak_password',
            'register: the username');
        assertError(await login(fresh, 'victoria9', '12345678'), 'bad_credentials', 'nothing was created');

        const here = await connect();
        const { token } = await register(here, 'victoria9');
        const cases = [
            ['short', 'short'],
            ['long', 'x'.repeat(1025)],
            ['username', 'Victoria9'],
            ['common', '12345678'],
            ['common, any case', 'IloveYou'],
        ];
        for (const [what, newPassword] of cases) {
            const reply = await change(here, PASSWORD, newPassword);
            assertError(reply, 'weak_password', what);
            if (what.startsWith('common'))
                assert.match(reply.message, /most common/, what);
        }
        assertError(await change(here, 'wrong, but checked later', '12345678'), 'weak_password',
            'the new password is checked before the current one');
        assert.equal(await whoAmI(here), 'victoria9');
        assertOk(await resume(await connect(), token), 'the token is valid');
        assertOk(await login(await connect(), 'victoria9'), 'the password is unchanged');
    });
});

test('auth.password: bad_request for missing or mistyped fields, unauthenticated before login', async () => {
    await withServer([], async ({ connect }) => {
        const anonymous = await connect();
        assertError(await change(anonymous, PASSWORD, 'a brand new secret'), 'unauthenticated');
        assertError(await anonymous.request({ type: 'auth.password', password: PASSWORD }),
            'bad_request', 'no new_password');
        const here = await connect();
        await register(here, 'dmitri');
        assertError(await here.request({ type: 'auth.password', new_password: 'a brand new secret' }),
            'bad_request', 'no password');
        assertError(await here.request({ type: 'auth.password', password: PASSWORD, new_password: 12345678 }),
            'bad_request', 'a number');
        assertOk(await login(await connect(), 'dmitri'), 'unchanged');
    });
});

test('auth.password: wrong current passwords count as failed logins: rate_limited with retry_after_ms', async () => {
    await withServer(['max_failures_pair=3'], async ({ connect }) => {
        const here = await connect();
        await register(here, 'eve-limited');
        for (let attempt = 1; attempt <= 3; attempt++)
            assertError(await change(here, `wrong ${attempt} guess`, 'a brand new secret'),
                'bad_credentials', `attempt ${attempt}`);
        const limited = await change(here, PASSWORD, 'a brand new secret');
        assertError(limited, 'rate_limited', 'even the right password, once limited');
        assert.ok(Number.isInteger(limited.retry_after_ms) && limited.retry_after_ms > 0,
            JSON.stringify(limited));
        assertError(await login(await connect(), 'eve-limited'), 'rate_limited',
            'logins of the name from this address too');
        assert.equal(await whoAmI(here), 'eve-limited', 'the session stays');
    });
});

test('auth.resume renews a token: valid while used within its lifetime, expired when not', async () => {
    // A 6 s lifetime; the use is recorded at most every 3 s (half of it), so
    // a resume within 3 s of the last one always finds the token valid
    await withServer(['token_ttl_ms=6000'], async ({ connect }) => {
        const { token } = await register(await connect(), 'frank');
        const started = Date.now();
        // Used every ~0.5 s for over twice its lifetime: never expires
        while (Date.now() - started < 14000) {
            const client = await connect();
            assertOk(await resume(client, token), `resume ${Date.now() - started} ms after issue`);
            client.ws.terminate();
            await sleep(500);
        }
        // Not used for more than its lifetime: expired
        await sleep(6500);
        assertError(await resume(await connect(), token), 'invalid_token', 'unused past its lifetime');
    });
});

test('auth.resume renewal is recorded to touch_interval_ms: with 0 every resume renews', async () => {
    await withServer(['token_ttl_ms=4000', 'touch_interval_ms=0'], async ({ connect }) => {
        const { token } = await register(await connect(), 'grace');
        for (let round = 0; round < 4; round++) {
            await sleep(1500);
            const client = await connect();
            assertOk(await resume(client, token), `round ${round}`);
            client.ws.terminate();
        }
        await sleep(4500);
        assertError(await resume(await connect(), token), 'invalid_token', 'unused past its lifetime');
    });
});

test('auth.common_passwords names a list of one\'s own instead of the built-in one; one that cannot serve stops the start', async () => {
    const dir = tempDir('parley-common-');
    const list = path.join(dir, 'ours.txt');
    writeFileSync(list, '# our own list\r\nHunter2Hunter2\r\nsummer-in-paris\n');
    try {
        await withServer([`common_passwords=${list}`], async ({ connect }) => {
            const client = await connect();
            assertError(await register(client, 'henry', 'hunter2HUNTER2'), 'weak_password', 'in our list');
            assertError(await register(client, 'henry', 'SUMMER-in-paris'), 'weak_password', 'its last line');
            assertOk(await register(client, 'henry', '12345678'), 'not in our list: accepted');
        });
        for (const [file, reason] of [[path.join(dir, 'missing.txt'), /No such file/],
                                      [path.join(dir, 'empty.txt'), /holds no password/]]) {
            writeFileSync(path.join(dir, 'empty.txt'), '# nothing here\n\n');
            const proc = new Proc('parley', path.join(binDir, 'parley'), [
                '--listen', `127.0.0.1:${await freePort()}`, '--data', dir,
                '--option', `auth.common_passwords=${file}`]);
            const status = await proc.exited;
            assert.equal(status.code, 1, proc.output);
            assert.match(proc.output, /auth\.common_passwords: cannot use/);
            assert.match(proc.output, reason);
            assert.deepEqual(sanitizerReports(proc.output), [], proc.output);
        }
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});
