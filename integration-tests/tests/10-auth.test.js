// Authentication (PROTOCOL.md): auth.register, auth.login, auth.resume and
// auth.logout, every result and every error code, through the real server:
// the gateway, the broker, the auth plugin, argon2id and the SQLite store.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startParley, Client, sanitizerReports, tempDir, sleep } from '../lib/harness.js';
import {
    startAuthParley, withAuthServer, register, login, resume, logout, whoAmI, assertOk,
    assertError,
} from '../lib/auth.js';

// Every test gets its own server (lib/auth.js says why)
const withServer = withAuthServer;

// A token carries at least 128 bits: 22 or more base64url characters
function assertToken(token) {
    assert.equal(typeof token, 'string');
    assert.match(token, /^[A-Za-z0-9_-]{22,}$/);
}

test('before login only auth.* (and ping) are served; anything else is unauthenticated', async () => {
    await withServer([], async ({ connect }) => {
        const client = await connect();
        assertError(await client.request({ type: 'room.list' }), 'unauthenticated');
        assertError(await client.request({ type: 'presence.list' }), 'unauthenticated');
        assertError(await client.request({ type: 'msg.send', room: 'general', text: 'hi' }),
            'unauthenticated');
        assertOk(await client.request({ type: 'ping' }), 'ping');
        assert.equal(await whoAmI(client), null);
    });
});

test('register answers the user and a token and binds the session', async () => {
    await withServer([], async ({ connect }) => {
        const client = await connect();
        const reply = await register(client, 'Alice');
        assertOk(reply, 'register');
        assert.equal(reply.user, 'Alice');
        assertToken(reply.token);
        assert.equal(await whoAmI(client), 'Alice');
        const other = await connect();
        const second = await register(other, 'bob.smith-2_x', 'xyzzy-42');
        assertOk(second, 'register');
        assert.notEqual(second.token, reply.token, 'every token is new');
        const listed = await client.request({ type: 'room.list' });
        assert.notEqual(listed.code, 'unauthenticated', 'a logged-in session is served');
    });
});

test('register refuses an invalid username with invalid_username and creates nothing', async () => {
    await withServer([], async ({ connect }) => {
        const client = await connect();
        for (const username of ['ab', '', 'a b', 'bad!name', 'ümlaut', 'x'.repeat(33), 'tab\tname']) {
            assertError(await register(client, username), 'invalid_username', JSON.stringify(username));
            assert.equal(await whoAmI(client), null);
        }
        assertOk(await register(client, 'abc'), 'three characters');
        const other = await connect();
        assertOk(await register(other, 'y'.repeat(32)), 'thirty-two characters');
    });
});

test('register refuses a password under 8 or over 1024 bytes with weak_password', async () => {
    await withServer([], async ({ connect }) => {
        const client = await connect();
        assertError(await register(client, 'carol', '1234567'), 'weak_password', '7 bytes');
        assertError(await register(client, 'carol', 'ééé'), 'weak_password', '3 characters, 6 bytes');
        assertError(await register(client, 'carol', 'p'.repeat(1025)), 'weak_password', '1025 bytes');
        assertError(await register(client, 'carol', 'p'.repeat(5000)), 'weak_password', '5000 bytes');
        assertOk(await register(client, 'carol', 'éééé'), '4 characters, 8 bytes');
        const other = await connect();
        assertOk(await register(other, 'dave', 'p'.repeat(1024)), '1024 bytes');
        const third = await connect();
        assertOk(await login(third, 'dave', 'p'.repeat(1024)), 'login with 1024 bytes');
    });
});

test('register refuses a taken username, whatever its case, with username_taken', async () => {
    await withServer([], async ({ connect }) => {
        assertOk(await register(await connect(), 'Alice'), 'first');
        const client = await connect();
        assertError(await register(client, 'Alice'), 'username_taken', 'same case');
        assertError(await register(client, 'alice'), 'username_taken', 'lower case');
        assertError(await register(client, 'ALICE'), 'username_taken', 'upper case');
        assert.equal(await whoAmI(client), null);
        // the account is the first one: its password still works
        assertOk(await login(client, 'alice'), 'login');
    });
});

test('a missing or mistyped field is bad_request with a sentence, and changes nothing', async () => {
    await withServer([], async ({ connect }) => {
        const client = await connect();
        const cases = [
            { type: 'auth.register', password: 'correct horse' },
            { type: 'auth.register', username: 'erin' },
            { type: 'auth.register', username: 42, password: 'correct horse' },
            { type: 'auth.register', username: 'erin', password: ['correct horse'] },
            { type: 'auth.login', username: 'erin' },
            { type: 'auth.login', username: null, password: 'correct horse' },
            { type: 'auth.resume' },
            { type: 'auth.resume', token: 12345 },
        ];
        for (const frame of cases) {
            const reply = await client.request(frame);
            assertError(reply, 'bad_request', JSON.stringify(frame));
            assert.match(reply.message, /username|password|token/);
        }
        assertError(await client.request({ type: 'auth.whoami' }), 'unknown_type');
        assert.equal(await whoAmI(client), null);
        assertError(await login(client, 'erin'), 'bad_credentials', 'erin was never created');
    });
});

test('login accepts the username in any case and answers it as registered, with a new token', async () => {
    await withServer([], async ({ connect }) => {
        const first = await register(await connect(), 'MixedCase');
        for (const spelling of ['mixedcase', 'MIXEDCASE', 'MixedCase', 'mIxEdCaSe']) {
            const client = await connect();
            const reply = await login(client, spelling);
            assertOk(reply, spelling);
            assert.equal(reply.user, 'MixedCase');
            assertToken(reply.token);
            assert.notEqual(reply.token, first.token);
            assert.equal(await whoAmI(client), 'MixedCase');
        }
    });
});

test('bad_credentials is the same for an unknown user and a wrong password', async () => {
    await withServer([], async ({ connect }) => {
        await register(await connect(), 'frank');
        const client = await connect();
        const unknown = await login(client, 'nobody');
        const wrong = await login(client, 'frank', 'wrong horse');
        const invalid = await login(client, 'no such name!', 'correct horse');
        assertError(unknown, 'bad_credentials', 'unknown user');
        assertError(wrong, 'bad_credentials', 'wrong password');
        assertError(invalid, 'bad_credentials', 'a name that cannot exist');
        assert.equal(unknown.message, wrong.message);
        assert.equal(invalid.message, wrong.message);
        assert.equal(await whoAmI(client), null);
    });
});

test('a failed login is no quicker for an unknown user than for a wrong password', async () => {
    await withServer(['max_failures_user=1000', 'max_failures_address=1000'], async ({ connect }) => {
        await register(await connect(), 'grace');
        const client = await connect();
        const time = async (username) => {
            const started = process.hrtime.bigint();
            assertError(await login(client, username, 'wrong horse'), 'bad_credentials');
            return Number(process.hrtime.bigint() - started) / 1e6;
        };
        const unknown = [], wrong = [];
        for (let round = 0; round < 5; round++) {
            unknown.push(await time(`ghost${round}`));
            wrong.push(await time('grace'));
        }
        const median = (list) => list.sort((a, b) => a - b)[Math.floor(list.length / 2)];
        // Both spend one argon2id verification; a skipped one would be many times quicker
        assert.ok(median(unknown) > median(wrong) / 3,
            `unknown ${median(unknown)} ms, wrong password ${median(wrong)} ms`);
    });
});

test('repeated failed logins for one username are rate_limited until the window passes', async () => {
    const options = ['max_failures_user=3', 'max_failures_address=1000', 'failure_window_ms=1500'];
    await withServer(options, async ({ connect }) => {
        await register(await connect(), 'heidi');
        const client = await connect();
        // a success clears the username's count
        assertError(await login(client, 'heidi', 'wrong 1'), 'bad_credentials');
        assertError(await login(client, 'heidi', 'wrong 2'), 'bad_credentials');
        const fine = await connect();
        assertOk(await login(fine, 'HEIDI'), 'login clears the count');
        for (let attempt = 1; attempt <= 3; attempt++)
            assertError(await login(client, 'Heidi', `wrong ${attempt}`), 'bad_credentials', `attempt ${attempt}`);
        const limited = await login(client, 'heidi');
        assertError(limited, 'rate_limited', 'even the right password is refused now');
        assert.match(limited.message, /try again in \d+ seconds?/);
        assert.equal(await whoAmI(client), null);
        // another username from the same address is not affected
        await register(await connect(), 'ivan');
        assertOk(await login(await connect(), 'ivan'), 'another username');
        await sleep(1600);
        assertOk(await login(client, 'heidi'), 'after the window');
    });
});

test('repeated failed logins from one address are rate_limited, whatever the usernames', async () => {
    const options = ['max_failures_user=1000', 'max_failures_address=4', 'failure_window_ms=1500'];
    await withServer(options, async ({ connect }) => {
        await register(await connect(), 'judy');
        const client = await connect();
        for (let index = 0; index < 4; index++)
            assertError(await login(client, `spray${index}`), 'bad_credentials', `name ${index}`);
        const limited = await login(await connect(), 'judy');
        assertError(limited, 'rate_limited', 'the right password from the same address');
        assert.match(limited.message, /address/);
        await sleep(1600);
        assertOk(await login(client, 'judy'), 'after the window');
    });
});

test('register, login and resume on a logged-in session answer already_authenticated', async () => {
    await withServer([], async ({ connect }) => {
        const client = await connect();
        const { token } = await register(client, 'mallory');
        assertError(await register(client, 'mallory2'), 'already_authenticated', 'register');
        assertError(await login(client, 'mallory'), 'already_authenticated', 'login');
        assertError(await resume(client, token), 'already_authenticated', 'resume');
        assert.equal(await whoAmI(client), 'mallory');
        // nothing was created by the refused register
        assertError(await login(await connect(), 'mallory2'), 'bad_credentials');
    });
});

test('resume in a new connection answers the same user and token and binds it', async () => {
    await withServer([], async ({ connect }) => {
        const { token } = await register(await connect(), 'Niaj');
        const client = await connect();
        const reply = await resume(client, token);
        assertOk(reply, 'resume');
        assert.equal(reply.user, 'Niaj');
        assert.equal(reply.token, token);
        assert.equal(await whoAmI(client), 'Niaj');
    });
});

test('resume of a garbage or unknown token is invalid_token', async () => {
    await withServer([], async ({ connect }) => {
        const { token } = await register(await connect(), 'olivia');
        const client = await connect();
        const madeUp = token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA');
        for (const garbage of ['garbage', '', 'x'.repeat(5000), madeUp, `${token}x`, `${token}=`]) {
            assertError(await resume(client, garbage), 'invalid_token', JSON.stringify(garbage.slice(0, 50)));
            assert.equal(await whoAmI(client), null);
        }
    });
});

test('an expired token is invalid_token', async () => {
    await withServer(['token_ttl_ms=1000'], async ({ connect }) => {
        const { token } = await register(await connect(), 'peggy');
        assertOk(await resume(await connect(), token), 'while valid');
        await sleep(1200);
        assertError(await resume(await connect(), token), 'invalid_token', 'expired');
    });
});

test('logout revokes the token on every session using it; a session with another token stays', async () => {
    await withServer([], async ({ connect }) => {
        const first = await connect();
        const { token } = await register(first, 'rupert');
        const second = await connect();
        const third = await connect();
        assertOk(await resume(second, token), 'second resumes');
        assertOk(await resume(third, token), 'third resumes');
        const other = await connect();
        const otherLogin = await login(other, 'rupert');
        assertOk(otherLogin, 'a login of its own');

        const reply = await logout(first);
        assertOk(reply, 'logout');
        assert.equal(await whoAmI(first), null, 'the session that logged out');
        for (const [name, client] of [['second', second], ['third', third]]) {
            const event = await client.nextEvent((frame) => frame.type === 'logged_out');
            assert.deepEqual(Object.keys(event).filter((key) => key !== '__binary'), ['type']);
            assertError(await client.request({ type: 'room.list' }), 'unauthenticated', name);
            assertError(await client.request({ type: 'presence.list' }), 'unauthenticated', name);
            assert.equal(await whoAmI(client), null, name);
        }
        assert.equal(first.events.filter((e) => e.type === 'logged_out').length, 0,
            'the session that asked gets ok, not the event');
        assert.equal(await whoAmI(other), 'rupert', 'a session of another token stays logged in');
        assert.equal(other.events.filter((e) => e.type === 'logged_out').length, 0);

        assertError(await resume(await connect(), token), 'invalid_token', 'the token is revoked');
        assertError(await resume(second, token), 'invalid_token', 'not even on its old session');
        assertOk(await resume(await connect(), otherLogin.token), 'the other token still works');
        // and the account too
        assertOk(await login(first, 'rupert'), 'log in again');
    });
});

test('logout of an unauthenticated session is ok and changes nothing', async () => {
    await withServer([], async ({ connect }) => {
        const client = await connect();
        assertOk(await logout(client), 'logout before login');
        assertError(await client.request({ type: 'room.list' }), 'unauthenticated');
        assertOk(await register(client, 'sybil'), 'register afterwards');
        assertOk(await logout(client), 'logout');
        assertOk(await logout(client), 'logout twice');
        assert.equal(await whoAmI(client), null);
    });
});

test('users and tokens survive a restart on the same data folder', async () => {
    const data = tempDir('parley-auth-restart-');
    try {
        let server = await startAuthParley({ dataDir: data });
        let client = await Client.connect(server.url);
        const { token } = await register(client, 'Trent', 'restart me please');
        client.ws.terminate();
        await server.stop();

        server = await startAuthParley({ dataDir: data });
        try {
            client = await Client.connect(server.url);
            const resumed = await resume(client, token);
            assertOk(resumed, 'resume after restart');
            assert.equal(resumed.user, 'Trent');
            assert.equal(await whoAmI(client), 'Trent');
            const again = await Client.connect(server.url);
            const logged = await login(again, 'trent', 'restart me please');
            assertOk(logged, 'login after restart');
            assert.equal(logged.user, 'Trent');
            assertError(await register(await Client.connect(server.url), 'TRENT'), 'username_taken');
            client.ws.terminate();
            again.ws.terminate();
        } finally {
            await server.stop();
        }
    } finally {
        rmSync(data, { recursive: true, force: true });
    }
});

test('the log says who registered, logged in and out, and never a password or a token', async () => {
    const server = await startAuthParley();
    let token;
    try {
        const client = await Client.connect(server.url);
        ({ token } = await register(client, 'victor', 'secret-password-123'));
        await logout(client);
        await login(client, 'victor', 'wrong-password-456');
        await login(client, 'victor', 'secret-password-123');
        client.ws.terminate();
    } finally {
        await server.stop();
    }
    const output = server.proc.output;
    assert.match(output, /'victor' registered from 127\.0\.0\.1/);
    assert.match(output, /'victor' logged out from 127\.0\.0\.1/);
    assert.match(output, /failed login as 'victor' from 127\.0\.0\.1 \(wrong password\)/);
    assert.match(output, /'victor' logged in from 127\.0\.0\.1/);
    assert.ok(!output.includes('secret-password-123'));
    assert.ok(!output.includes('wrong-password-456'));
    assert.ok(!output.includes(token));
});

test('without a store, register, login, resume and logout answer unavailable and nothing breaks', async () => {
    const server = await startParley({ args: ['--no-default-plugins', '--plugin', 'auth'] });
    try {
        const client = await Client.connect(server.url);
        assertError(await register(client, 'walter'), 'unavailable', 'register');
        assertError(await login(client, 'walter'), 'unavailable', 'login');
        assertError(await resume(client, 'A'.repeat(43)), 'unavailable', 'resume');
        assertOk(await logout(client), 'logout of an unauthenticated session');
        assert.equal(await whoAmI(client), null);
        // shape errors and refusals that need no store still answer as usual
        assertError(await register(client, 'x'), 'invalid_username');
        assertError(await resume(client, 'garbage'), 'invalid_token');
        client.ws.terminate();
    } finally {
        const status = await server.stop();
        assert.deepEqual(sanitizerReports(server.proc.output), [], server.proc.output);
        assert.equal(status.code, 0);
    }
});
