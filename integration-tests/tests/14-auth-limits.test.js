// The auth plugin's limits per address (PROTOCOL.md 1.1 "Outcomes" and
// "Authentication"; issue 11): registrations per address, failed logins per
// (username, address) pair and per address, a per-username limit only at a
// much higher threshold, and retry_after_ms on every rate_limited. Clients
// connect from several loopback addresses (127.0.0.x) to be told apart.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startParley, withClients, stoppedCleanly, LOAD_HEARTBEAT } from '../lib/harness.js';

const CHEAP = ['--option', 'auth.ops_limit=1', '--option', 'auth.mem_limit=8192'];
const PASSWORD = 'correct horse';

// These tests are about auth's limits, not dead peers: parley's own
// heartbeat, so that a loaded machine does not make one of them
async function withServer({ options = [], authDefaults = false }, body) {
    const args = [...CHEAP, ...LOAD_HEARTBEAT];
    for (const option of options)
        args.push('--option', `auth.${option}`);
    await withClients(stoppedCleanly(await startParley({ args, authDefaults })), body);
}

const register = (client, username, password = PASSWORD) =>
    client.request({ type: 'auth.register', username, password });
const login = (client, username, password = PASSWORD) =>
    client.request({ type: 'auth.login', username, password });

function assertRateLimited(reply, what, maxMs) {
    assert.equal(reply.type, 'error', `${what}: ${JSON.stringify(reply)}`);
    assert.equal(reply.code, 'rate_limited', `${what}: ${JSON.stringify(reply)}`);
    assert.ok(Number.isInteger(reply.retry_after_ms), `${what}: retry_after_ms ${JSON.stringify(reply)}`);
    assert.ok(reply.retry_after_ms > 0 && reply.retry_after_ms <= maxMs,
              `${what}: retry_after_ms ${reply.retry_after_ms}`);
    assert.match(reply.message, /try again in \d+ seconds?/);
}

test('registrations from one address past the default rate are rate_limited with retry_after_ms; another address still registers', async () => {
    await withServer({ authDefaults: true }, async ({ connect }) => {
        const client = await connect('127.0.0.1');
        // The default, 30 a minute, is what a small office behind one NAT may use
        for (let index = 0; index < 30; index++) {
            const reply = await register(await connect('127.0.0.1'), `spam${index}`);
            assert.equal(reply.type, 'ok', `registration ${index}: ${JSON.stringify(reply)}`);
        }
        const refused = await register(client, 'spam30');
        assertRateLimited(refused, 'the 31st registration', 60000);
        assert.match(refused.message, /address/);
        // Nothing was created by the refused registration
        const probe = await login(await connect('127.0.0.3'), 'spam30');
        assert.equal(probe.code, 'bad_credentials', JSON.stringify(probe));
        // Another address is not affected
        const other = await register(await connect('127.0.0.2'), 'colleague');
        assert.equal(other.type, 'ok', JSON.stringify(other));
        // Logins from the limited address still work
        const back = await login(await connect('127.0.0.1'), 'spam3');
        assert.equal(back.type, 'ok', JSON.stringify(back));
    });
});

test('auth.register_rate sets the rate; 0 turns the limit off', async () => {
    await withServer({ options: ['register_rate=2'] }, async ({ connect }) => {
        assert.equal((await register(await connect(), 'rate1')).type, 'ok');
        assert.equal((await register(await connect(), 'rate2')).type, 'ok');
        assertRateLimited(await register(await connect(), 'rate3'), 'the third', 60000);
    });
    await withServer({ options: ['register_rate=0'] }, async ({ connect }) => {
        for (let index = 0; index < 40; index++)
            assert.equal((await register(await connect(), `free${index}`)).type, 'ok', `${index}`);
    });
});

test('failed logins from five other addresses do not lock the owner out', async () => {
    await withServer({}, async ({ connect }) => {
        assert.equal((await register(await connect('127.0.0.1'), 'olivia')).type, 'ok');
        for (let host = 2; host <= 6; host++) {
            const attacker = await connect(`127.0.0.${host}`);
            for (let attempt = 1; attempt <= 5; attempt++) {
                const reply = await login(attacker, 'olivia', `guess ${attempt}`);
                assert.equal(reply.code, 'bad_credentials', `127.0.0.${host} attempt ${attempt}`);
            }
            // That pair is limited now, with retry_after_ms, even with the right password
            const limited = await login(attacker, 'olivia');
            assertRateLimited(limited, `127.0.0.${host} after 5 failures`, 60000);
            assert.equal(await attacker.request({ type: 'example.echo' })
                .then((reply) => reply.user ?? null), null);
        }
        // 25 failures from five addresses: the owner still logs in from hers
        const owner = await login(await connect('127.0.0.1'), 'Olivia');
        assert.equal(owner.type, 'ok', JSON.stringify(owner));
        assert.equal(owner.user, 'olivia');
    });
});

test('failed logins from one address are limited whatever the usernames, with retry_after_ms', async () => {
    await withServer({ options: ['max_failures_address=4'] }, async ({ connect }) => {
        assert.equal((await register(await connect('127.0.0.1'), 'pat')).type, 'ok');
        const sprayer = await connect('127.0.0.2');
        for (let index = 0; index < 4; index++)
            assert.equal((await login(sprayer, `nobody${index}`)).code, 'bad_credentials');
        const limited = await login(await connect('127.0.0.2'), 'pat');
        assertRateLimited(limited, 'the address past its limit', 60000);
        assert.match(limited.message, /address/);
        assert.equal((await login(await connect('127.0.0.1'), 'pat')).type, 'ok', 'another address');
    });
});

test('the per-username limit counts every address, at its own (higher) threshold', async () => {
    await withServer({ options: ['max_failures_user=7'] }, async ({ connect }) => {
        assert.equal((await register(await connect('127.0.0.1'), 'quinn')).type, 'ok');
        for (const host of [2, 3]) {
            const attacker = await connect(`127.0.0.${host}`);
            for (let attempt = 0; attempt < (host === 2 ? 5 : 2); attempt++)
                assert.equal((await login(attacker, 'quinn', 'wrong one')).code, 'bad_credentials');
        }
        const limited = await login(await connect('127.0.0.1'), 'quinn');
        assertRateLimited(limited, 'the username past its own limit', 60000);
        assert.match(limited.message, /username/);
    });
});

test('past auth.max_tokens live tokens the least recently used is revoked: its sessions get logged_out', async () => {
    // Every resume recorded, so that a resume a few ms after the login counts
    await withServer({ options: ['max_tokens=3', 'touch_interval_ms=0'] }, async ({ connect }) => {
        const pause = () => new Promise((resolve) => setTimeout(resolve, 30));
        const whoAmI = async (client) => (await client.request({ type: 'example.echo' })).user ?? null;
        const first = await connect();
        const { token: token0 } = await register(first, 'rita');
        await pause();
        const second = await connect();
        const { token: token1 } = await login(second, 'rita');
        await pause();
        const third = await connect();
        const { token: token2 } = await login(third, 'rita');
        await pause();
        // A resume is a use: token0 is now the most recently used
        const resumed = await connect();
        const again = await resumed.request({ type: 'auth.resume', token: token0 });
        assert.equal(again.type, 'ok', JSON.stringify(again));
        await pause();
        // A fourth token: token1, the least recently used, goes
        const fourth = await connect();
        const { token: token3 } = await login(fourth, 'rita');
        const event = await second.nextEvent((frame) => frame.type === 'logged_out', 10000);
        assert.equal(event.type, 'logged_out');
        assert.equal(await whoAmI(second), null, 'the session of the revoked token is unbound');
        const refused = await (await connect()).request({ type: 'auth.resume', token: token1 });
        assert.equal(refused.code, 'invalid_token', JSON.stringify(refused));
        // The others stay
        for (const client of [first, third, resumed, fourth])
            assert.equal(await whoAmI(client), 'rita');
        for (const token of [token0, token2, token3]) {
            const reply = await (await connect()).request({ type: 'auth.resume', token });
            assert.equal(reply.type, 'ok', JSON.stringify(reply));
        }
    });
});

test('a token resumed within auth.touch_interval_ms of its issue keeps its issue as its last use', async () => {
    await withServer({ options: ['max_tokens=2'] }, async ({ connect }) => {
        const { token: token0 } = await register(await connect(), 'sven');
        await new Promise((resolve) => setTimeout(resolve, 30));
        const { token: token1 } = await login(await connect(), 'sven');
        // Within the default minute: the resume is not written as a use
        const resumed = await connect();
        assert.equal((await resumed.request({ type: 'auth.resume', token: token0 })).type, 'ok');
        await new Promise((resolve) => setTimeout(resolve, 30));
        await login(await connect(), 'sven');
        const event = await resumed.nextEvent((frame) => frame.type === 'logged_out', 10000);
        assert.equal(event.type, 'logged_out', 'token0, issued first, is the least recently used');
        const kept = await (await connect()).request({ type: 'auth.resume', token: token1 });
        assert.equal(kept.type, 'ok', JSON.stringify(kept));
    });
});
