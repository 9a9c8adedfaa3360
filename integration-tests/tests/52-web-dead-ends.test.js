// No dead ends, in headless Chromium: a double-click on Join leaves the user
// joined, a room name that does not exist offers "Create it?", leaving a private
// room asks first and ends at the room list, the last room reopens after a
// reload, and the composer counts characters as the server does and says how
// many are over instead of cutting the text.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir, Client, sleep } from '../lib/harness.js';
import {
    launchBrowser, screenshot, startChatServer, closeChat, newContext, openPage, signIn, PASSWORD, TIMEOUT,
} from '../lib/browser.js';

async function createRoom(page, name, { isPrivate = false } = {}) {
    await page.locator('#room-new').click();
    await page.locator('#create-room-modal.show').waitFor({ timeout: TIMEOUT });
    await page.locator('#room-name').fill(name);
    if (isPrivate)
        await page.locator('#room-private').check();
    await page.locator('#create-room-submit').click();
    await page.locator('#create-room-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });
    await page.locator('#chat-title', { hasText: name }).waitFor({ timeout: TIMEOUT });
}

async function isMember(server, room, user) {
    const probe = await Client.connect(server.url);
    try {
        assert.equal((await probe.request({ type: 'auth.login', username: user, password: PASSWORD })).type, 'ok');
        const reply = await probe.request({ type: 'room.list' });
        return Boolean(reply.rooms.find((each) => each.name === room)?.joined);
    } finally {
        await probe.close();
    }
}

describe('no dead ends', () => {
    const data = tempDir();
    let server;
    let browser;
    const pages = {};
    const consoleErrors = [];

    before(async () => {
        server = await startChatServer({ dataDir: data });
        browser = await launchBrowser();
        for (const name of ['alice', 'bob']) {
            pages[name] = await openPage(await newContext(browser), server, consoleErrors);
            await signIn(pages[name], name, { registering: true });
        }
    });

    after(() => closeChat({ browser, server, dataDir: data, consoleErrors }));

    it('a double-click on Join leaves the user joined', async () => {
        const { alice, bob } = pages;
        await createRoom(alice, 'kitchen');
        await bob.locator('#rooms li[data-room="kitchen"] button').click();
        await bob.locator('#room-join').dblclick();
        await bob.locator('#room-leave').waitFor({ state: 'visible', timeout: TIMEOUT });
        await sleep(1500);
        assert.equal(await bob.locator('#room-leave').isVisible(), true, 'still joined');
        assert.equal(await bob.locator('#rooms li[data-room="kitchen"]').getAttribute('data-joined'), 'true');
        assert.equal(await isMember(server, 'kitchen', 'bob'), true, 'the server agrees');
        // One join notice, no leave
        await bob.locator('#entries li.entry-system', { hasText: 'bob has joined' }).waitFor({ timeout: TIMEOUT });
        assert.equal(await bob.locator('#entries li.entry-system', { hasText: 'bob has left' }).count(), 0);
    });

    it('Join is disabled while joining', async () => {
        const { alice, bob } = pages;
        await createRoom(alice, 'slow');
        await bob.locator('#rooms li[data-room="slow"] button').click();
        // Hold the join's reply back to see the button while it is on its way
        await bob.evaluate(() => {
            const send = WebSocket.prototype.send;
            WebSocket.prototype.send = function (text) {
                if (String(text).includes('"room.join"')) {
                    setTimeout(() => send.call(this, text), 1500);
                    return undefined;
                }
                return send.call(this, text);
            };
        });
        await bob.locator('#room-join').click();
        await bob.locator('#room-join[disabled]', { hasText: 'Joining' }).waitFor({ timeout: TIMEOUT });
        await bob.locator('#room-leave').waitFor({ state: 'visible', timeout: TIMEOUT });
    });

    it('offers "Create it?" for a room that does not exist, without opening an empty room', async () => {
        const { bob } = pages;
        await bob.locator('#join-name').fill('no-such-place');
        await bob.locator('#join-name-submit').click();
        await bob.locator('#join-name-error', { hasText: 'There is no room named no-such-place.' }).waitFor({ timeout: TIMEOUT });
        assert.notEqual(await bob.locator('#chat-title').textContent(), 'no-such-place');
        await screenshot(bob, '52-web-create-it');
        await bob.locator('#join-name-create').click();
        await bob.locator('#create-room-modal.show').waitFor({ timeout: TIMEOUT });
        assert.equal(await bob.locator('#room-name').inputValue(), 'no-such-place');
        await bob.locator('#create-room-submit').click();
        await bob.locator('#chat-title', { hasText: 'no-such-place' }).waitFor({ timeout: TIMEOUT });
        await bob.locator('#room-leave').waitFor({ state: 'visible', timeout: TIMEOUT });
    });

    it('asks before leaving a private room, then shows the room list', async () => {
        const { alice, bob } = pages;
        await createRoom(alice, 'cellar', { isPrivate: true });
        await alice.locator('#invite-user').fill('bob');
        await alice.locator('#invite-submit').click();
        await bob.locator('#toasts .toast-action').click();
        await bob.locator('#chat-title', { hasText: 'cellar' }).waitFor({ timeout: TIMEOUT });
        await bob.locator('#room-leave').waitFor({ state: 'visible', timeout: TIMEOUT });
        // Leave ignores clicks in the first half second after a join (a double-click's second half)
        await sleep(600);

        // Cancelled: still a member
        await bob.locator('#room-leave').click();
        await bob.locator('#confirm-modal.show').waitFor({ timeout: TIMEOUT });
        assert.match(await bob.locator('#confirm-title').textContent(), /Leave the private room cellar/);
        assert.match(await bob.locator('#confirm-text').textContent(), /invitation/);
        await screenshot(bob, '52-web-leave-private');
        await bob.locator('#confirm-cancel').click();
        await bob.locator('#confirm-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });
        assert.equal(await isMember(server, 'cellar', 'bob'), true);

        // Confirmed: gone from the list, back at it, nothing offered that would fail
        await bob.locator('#room-leave').click();
        await bob.locator('#confirm-modal.show').waitFor({ timeout: TIMEOUT });
        await bob.locator('#confirm-ok').click();
        await bob.locator('#chat-placeholder').waitFor({ state: 'visible', timeout: TIMEOUT });
        await bob.locator('#rooms li[data-room="cellar"]').waitFor({ state: 'detached', timeout: TIMEOUT });
        assert.equal(await bob.locator('#room-join').isVisible(), false);
        assert.equal(await isMember(server, 'cellar', 'bob'), false);
        await bob.waitForFunction(() => document.activeElement?.id === 'rooms-title', null, { timeout: TIMEOUT });
    });

    it('reopens the last room after a reload', async () => {
        const { alice } = pages;
        await alice.locator('#rooms li[data-room="kitchen"] button').click();
        await alice.locator('#chat-title', { hasText: 'kitchen' }).waitFor({ timeout: TIMEOUT });
        await alice.reload();
        await alice.locator('#chat-title', { hasText: 'kitchen' }).waitFor({ timeout: TIMEOUT });
        await alice.locator('#entries li.entry-system', { hasText: 'bob has joined' }).waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.locator('#rooms li[data-room="kitchen"] button').getAttribute('aria-current'), 'true');
    });

    it('counts characters as the server does and says how many are over, without cutting', async () => {
        const { alice } = pages;
        const input = alice.locator('#composer-text');
        // 3999 letters and an emoji: 4000 characters (4001 UTF-16 units): allowed
        await input.fill(`${'a'.repeat(3999)}😀`);
        await alice.locator('#composer-hint', { hasText: '4000 / 4000' }).waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.locator('#composer-send').isDisabled(), false);

        // A 4001-character paste: kept whole, "1 character over", not sent
        await input.fill('b'.repeat(4001));
        assert.equal((await input.inputValue()).length, 4001, 'nothing is cut');
        await alice.locator('#composer-hint', { hasText: '1 character over the limit of 4000' }).waitFor({ timeout: TIMEOUT });
        assert.equal(await input.getAttribute('aria-invalid'), 'true');
        assert.equal(await alice.locator('#composer-send').isDisabled(), true);
        await input.press('Enter');
        await alice.locator('#composer-error', { hasText: '1 character too long' }).waitFor({ timeout: TIMEOUT });
        assert.equal((await input.inputValue()).length, 4001);
        await screenshot(alice, '52-web-too-long');

        // The emoji one goes through, and the server takes it
        await input.fill(`${'a'.repeat(3999)}😀`);
        await input.press('Enter');
        await alice.locator('#entries li.entry-message', { hasText: '😀' }).waitFor({ timeout: TIMEOUT });
        assert.equal(await input.inputValue(), '');
    });
});
