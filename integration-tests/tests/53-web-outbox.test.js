// The outbox in headless Chromium against a real parley that is stopped,
// frozen and restarted: a message written while the server is down shows at
// once as pending, outlives the page (left and loaded again), and is stored once when the
// server returns, in a room and in a conversation; a message sent while the
// server is frozen (its reply never comes, the socket is dropped) is repeated
// with the same nonce and stored once; a definite refusal shows the message
// failed with Retry and Discard, and Retry sends it once it can go; in a
// split deployment whose store stalls, the `unavailable` replies are waited
// out and the message is stored once when the store answers again. The
// server's own record (room.history, pm.history over a protocol client) is
// what says "once".

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
    tempDir, eventually, sleep, startBroker, startGateway, startPluginProcess, pluginPath, sanitizerReports,
} from '../lib/harness.js';
import { stopCleanly } from '../lib/clean-stop.js';
import {
    launchBrowser, screenshot, startChatServer, closeChat, newContext, openPage, signIn, protocolAs, seriousViolations,
    TIMEOUT, FAST_AUTH,
} from '../lib/browser.js';

const WINDOW = { width: 1100, height: 760 };

function roomMessage(page, text) {
    return page.locator('#entries li.entry-message', { hasText: text });
}

function pmMessage(page, text) {
    return page.locator('#pm-entries li.entry-message', { hasText: text });
}

// A message the server has stored: an entry with its seq, no longer pending
function storedIn(page, list, text) {
    return page.locator(`${list} li.entry-message[data-seq]`, { hasText: text });
}

// Screenshots at desktop and phone width, light and dark
async function fourScreenshots(page, name) {
    for (const scheme of ['light', 'dark']) {
        await page.emulateMedia({ colorScheme: scheme });
        await page.setViewportSize({ width: 1280, height: 800 });
        await screenshot(page, `${name}-desktop-${scheme}`);
        await page.setViewportSize({ width: 390, height: 844 });
        await screenshot(page, `${name}-phone-${scheme}`);
    }
    await page.setViewportSize(WINDOW);
    await page.emulateMedia({ colorScheme: 'light' });
}

async function type(page, input, text) {
    await page.locator(input).fill(text);
    await page.locator(input).press('Enter');
}

// Every message entry of a room or conversation, as the server keeps it
async function stored(client, request) {
    const all = [];
    let after = 0;
    for (;;) {
        const reply = await client.request({ ...request, after, limit: 200 });
        assert.equal(reply.type, 'ok', JSON.stringify(reply));
        all.push(...reply.messages);
        if (!reply.more || reply.messages.length === 0)
            return all.filter((entry) => typeof entry.text === 'string');
        after = reply.messages.at(-1).seq;
    }
}

async function countStored(client, request, text) {
    return (await stored(client, request)).filter((entry) => entry.text === text).length;
}

describe('the outbox in the browser', () => {
    const data = tempDir();
    let server;
    let port;
    let browser;
    let alice;
    let bob;            // a protocol client: what the server stored
    const consoleErrors = [];

    before(async () => {
        server = await startChatServer({ dataDir: data });
        port = server.port;
        browser = await launchBrowser();
    });

    after(async () => {
        await bob?.close();
        await closeChat({ browser, server, dataDir: data, consoleErrors });
    });

    async function restart() {
        server = await startChatServer({ dataDir: data, port });
        await bob?.close().catch(() => {});
        bob = await protocolAs(server, 'bob');
        await alice.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: 30000 });
    }

    it('alice has a room and a conversation with bob', async () => {
        bob = await protocolAs(server, 'bob', { registering: true });
        alice = await openPage(await newContext(browser, WINDOW), server, consoleErrors);
        await signIn(alice, 'alice', { registering: true });
        await alice.locator('#room-new').click();
        await alice.locator('#create-room-modal.show').waitFor({ timeout: TIMEOUT });
        await alice.locator('#room-name').fill('ops');
        await alice.locator('#create-room-submit').click();
        await alice.locator('#chat-title', { hasText: 'ops' }).waitFor({ timeout: TIMEOUT });
        assert.equal((await bob.request({ type: 'room.join', room: 'ops' })).type, 'ok');

        await type(alice, '#composer-text', 'first, online');
        await storedIn(alice, '#entries', 'first, online').waitFor({ timeout: TIMEOUT });
        assert.equal((await bob.request({ type: 'pm.send', to: 'alice', text: 'hello alice' })).type, 'ok');
        await alice.locator('#conversations li[data-with="bob"] button').click();
        await pmMessage(alice, 'hello alice').waitFor({ timeout: TIMEOUT });
        await alice.locator('#rooms li[data-room="ops"] button.room-item').click();
        await roomMessage(alice, 'first, online').waitFor({ timeout: TIMEOUT });
    });

    it('a message written while the server is down shows pending, outlives the page, and is stored once', async () => {
        await bob.close();
        bob = null;
        await stopCleanly(server);
        server = null;
        await alice.locator('#status', { hasText: 'Disconnected' }).waitFor({ timeout: TIMEOUT });

        await type(alice, '#composer-text', 'written while the server was down');
        const pending = alice.locator('#entries li.pending', { hasText: 'written while the server was down' });
        await pending.waitFor({ timeout: TIMEOUT });
        assert.match(await pending.locator('.pending-status').textContent(), /Waiting for the connection/);
        assert.equal(await alice.locator('#composer-text').inputValue(), '');

        await alice.locator('#conversations li[data-with="bob"] button').click();
        await alice.locator('#pm-title', { hasText: 'bob' }).waitFor({ timeout: TIMEOUT });
        await type(alice, '#pm-text', 'a private one, also while down');
        await alice.locator('#pm-entries li.pending', { hasText: 'a private one, also while down' })
            .waitFor({ timeout: TIMEOUT });

        // The page is left while the server is down (it cannot be reloaded
        // then: the server serves it) and loaded again once it is back: the
        // tab's outbox lost nothing
        const url = alice.url();
        await alice.goto('about:blank');
        server = await startChatServer({ dataDir: data, port });
        bob = await protocolAs(server, 'bob');
        assert.equal(await countStored(bob, { type: 'room.history', room: 'ops' }, 'written while the server was down'), 0);
        await alice.goto(url);
        await alice.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: TIMEOUT });
        await storedIn(alice, '#pm-entries', 'a private one, also while down').waitFor({ timeout: TIMEOUT });
        await eventually(async () => await countStored(bob, { type: 'room.history', room: 'ops' },
            'written while the server was down') === 1, TIMEOUT);
        assert.equal(await countStored(bob, { type: 'room.history', room: 'ops' }, 'written while the server was down'), 1);
        assert.equal(await countStored(bob, { type: 'pm.history', with: 'alice' }, 'a private one, also while down'), 1);
        assert.equal(await alice.locator('#pm-entries li.pending').count(), 0);
        assert.equal(await pmMessage(alice, 'a private one, also while down').count(), 1, 'shown once');

        await alice.locator('#rooms li[data-room="ops"] button.room-item').click();
        await storedIn(alice, '#entries', 'written while the server was down').waitFor({ timeout: TIMEOUT });
        assert.equal(await roomMessage(alice, 'written while the server was down').count(), 1, 'shown once');
        assert.equal(await alice.locator('#entries li.pending').count(), 0);
        const order = await alice.locator('#entries li.entry-message .text').allTextContents();
        assert.deepEqual(order.slice(-2), ['first, online', 'written while the server was down']);
    });

    it('a message whose reply never came (the server frozen, the socket dropped) is repeated and stored once', async () => {
        const text = 'sent into a frozen server';
        assert.ok(await server.proc.pause(), 'the process stopped');
        try {
            await type(alice, '#composer-text', text);
            await alice.locator('#entries li.pending', { hasText: text }).waitFor({ timeout: TIMEOUT });
            // The ping goes unanswered: the socket is dropped with the send on its way
            await alice.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
            await alice.locator('#status', { hasText: /Disconnected|Reconnecting/ }).waitFor({ timeout: TIMEOUT });
            assert.equal(await alice.locator('#entries li.pending', { hasText: text }).count(), 1,
                'still pending: its outcome is unknown');
        } finally {
            server.proc.signal('SIGCONT');
        }
        await alice.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: 30000 });
        await storedIn(alice, '#entries', text).waitFor({ timeout: TIMEOUT });
        await alice.locator('#entries li.pending').waitFor({ state: 'detached', timeout: TIMEOUT });
        assert.equal(await countStored(bob, { type: 'room.history', room: 'ops' }, text), 1, 'stored once');
        assert.equal(await roomMessage(alice, text).count(), 1, 'shown once');
    });

    it('a definite refusal shows the message failed with Retry and Discard; Retry sends it once it can go', async () => {
        const text = 'written before alice left';
        await bob.close();
        bob = null;
        await stopCleanly(server);
        server = null;
        await alice.locator('#status', { hasText: 'Disconnected' }).waitFor({ timeout: TIMEOUT });
        await type(alice, '#composer-text', text);
        await type(alice, '#composer-text', 'a second one, discarded');
        await alice.locator('#entries li.pending', { hasText: 'a second one' }).waitFor({ timeout: TIMEOUT });

        // The tab goes elsewhere (its outbox stays in the tab's session) while
        // alice, on another device, leaves the room
        const url = alice.url();
        await alice.goto('about:blank');
        server = await startChatServer({ dataDir: data, port });
        const other = await protocolAs(server, 'alice');
        assert.equal((await other.request({ type: 'room.leave', room: 'ops' })).type, 'ok');
        bob = await protocolAs(server, 'bob');
        await alice.goto(url);
        await alice.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: TIMEOUT });
        await alice.locator('#rooms li[data-room="ops"] button.room-item').click();

        const failed = alice.locator('#entries li.pending.failed', { hasText: text });
        await failed.waitFor({ timeout: TIMEOUT });
        assert.match(await failed.locator('.pending-status').textContent(), /Not sent/);
        await alice.locator('#entries li.pending.failed', { hasText: 'a second one' }).waitFor({ timeout: TIMEOUT });
        assert.deepEqual(await seriousViolations(alice), []);
        await fourScreenshots(alice, '53-web-outbox-failed');
        assert.equal(await countStored(bob, { type: 'room.history', room: 'ops' }, text), 0);

        // Discard drops one; Retry, once alice is a member again, sends the other
        await alice.locator('#entries li.pending.failed', { hasText: 'a second one' }).locator('.pending-discard').click();
        await alice.locator('#entries li.pending', { hasText: 'a second one' }).waitFor({ state: 'detached', timeout: TIMEOUT });
        await alice.locator('#room-join').click();
        await alice.locator('#room-leave').waitFor({ state: 'visible', timeout: TIMEOUT });
        await failed.locator('.pending-retry').click();
        await storedIn(alice, '#entries', text).waitFor({ timeout: TIMEOUT });
        await alice.locator('#entries li.pending').waitFor({ state: 'detached', timeout: TIMEOUT });
        assert.equal(await countStored(bob, { type: 'room.history', room: 'ops' }, text), 1);
        assert.equal(await countStored(bob, { type: 'room.history', room: 'ops' }, 'a second one, discarded'), 0);
        await other.close();
    });

    it('looks right at desktop and phone width, light and dark', async () => {
        // A message waiting for the server, beside the others, for the eye
        const page = alice;
        await bob.close();
        bob = null;
        await stopCleanly(server);
        server = null;
        await page.locator('#status', { hasText: 'Disconnected' }).waitFor({ timeout: TIMEOUT });
        await type(page, '#composer-text', 'waiting for the server to return');
        await page.locator('#entries li.pending').waitFor({ timeout: TIMEOUT });
        await fourScreenshots(page, '53-web-outbox-pending');
        await restart();
        await storedIn(page, '#entries', 'waiting for the server to return').waitFor({ timeout: TIMEOUT });
    });
});

describe('the outbox when the store stalls (a split deployment)', () => {
    const data = tempDir('parley-web-stall-');
    let broker;
    let store;
    let gateway;
    let browser;
    let alice;
    let bob;
    const consoleErrors = [];

    before(async () => {
        broker = await startBroker({ args: [
            '--request-timeout', '800', '--plugin', pluginPath('auth'), '--plugin', pluginPath('presence'),
            '--plugin', pluginPath('rooms'), '--plugin', pluginPath('pm'), ...FAST_AUTH,
        ] });
        store = startPluginProcess(broker.endpoint, [pluginPath('store-sqlite')],
            { args: ['--option', `store-sqlite.path=${data}/parley.db`] });
        gateway = await startGateway(broker.endpoint);
        browser = await launchBrowser();
    });

    after(async () => {
        store?.signal('SIGCONT');
        await bob?.close();
        await browser?.close();
        await gateway?.stop();
        await store?.stop();
        await broker?.stop();
        assert.deepEqual(sanitizerReports(broker.proc.output), [], broker.proc.output);
        assert.deepEqual(sanitizerReports(store.output), [], store.output);
        assert.deepEqual(consoleErrors, []);
    });

    it('a message sent while the store stalls waits out the unavailable replies and is stored once', async () => {
        bob = await eventually(async () => {
            try {
                return await protocolAs(gateway, 'bob', { registering: true });
            } catch {
                return null;
            }
        }, TIMEOUT);
        assert.ok(bob, 'the split deployment serves');
        alice = await openPage(await newContext(browser, WINDOW), gateway, consoleErrors);
        await signIn(alice, 'alice', { registering: true });
        await alice.locator('#room-new').click();
        await alice.locator('#create-room-modal.show').waitFor({ timeout: TIMEOUT });
        await alice.locator('#room-name').fill('stall');
        await alice.locator('#create-room-submit').click();
        await alice.locator('#chat-title', { hasText: 'stall' }).waitFor({ timeout: TIMEOUT });
        assert.equal((await bob.request({ type: 'room.join', room: 'stall' })).type, 'ok');

        const text = 'sent while the store stalls';
        assert.ok(await store.pause(), 'the process stopped');
        try {
            await type(alice, '#composer-text', text);
            await alice.locator('#entries li.pending', { hasText: text }).waitFor({ timeout: TIMEOUT });
            // Several request timeouts go by: still pending, never failed
            await sleep(3000);
            assert.equal(await alice.locator('#entries li.pending:not(.failed)', { hasText: text }).count(), 1);
            assert.match(await alice.locator('#entries li.pending .pending-status').textContent(), /Sending/);
        } finally {
            store.signal('SIGCONT');
        }
        await storedIn(alice, '#entries', text).waitFor({ timeout: 45000 });
        await alice.locator('#entries li.pending').waitFor({ state: 'detached', timeout: TIMEOUT });
        // Whatever the store did with the requests that timed out, the message is there once
        await sleep(1000);
        assert.equal(await countStored(bob, { type: 'room.history', room: 'stall' }, text), 1, 'stored once');
        assert.equal(await roomMessage(alice, text).count(), 1, 'shown once');
    });
});
