// Unread counts, mentions, read markers and invitations in headless Chromium
// (PROTOCOL.md 1.1 "Read markers, unread counts and mentions", "Directory and
// limits"): alice has two tabs behind a connection that the test cuts (a real
// outage between browser and server, while the server keeps serving bob);
// what bob posts into a room alice does not have on screen, and privately,
// during the outage shows as unread (and as a mention) in both tabs after
// they reconnect, with the total in the title; reading in one tab clears the
// badges in the other; carol, invited while offline, finds the invitation in
// her room list when she signs in, and joins from there.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { tempDir } from '../lib/harness.js';
import { ok } from '../lib/rooms.js';
import {
    launchBrowser, screenshot, startChatServer, closeChat, newContext, openPage, signIn, protocolAs, seriousViolations,
    TIMEOUT, createRoom,
} from '../lib/browser.js';

const WINDOW = { width: 1100, height: 760 };

// The requests a page sends over its WebSockets, from now on
function recordRequests(page) {
    const sent = [];
    page.on('websocket', (socket) => socket.on('framesent', (frame) => {
        try {
            sent.push(JSON.parse(frame.payload));
        } catch {
            // not JSON: not a request of the page's
        }
    }));
    return sent;
}

// A TCP relay between the browser and the server that the test can cut (every
// connection reset, new ones refused) and mend
class Cable {
    constructor(port) {
        this.target = port;
        this.up = true;
        this.sockets = new Set();
        this.server = net.createServer((socket) => this.relay(socket));
    }

    async listen() {
        await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
        this.port = this.server.address().port;
        this.http = `http://127.0.0.1:${this.port}`;
        return this;
    }

    relay(socket) {
        if (!this.up) {
            socket.destroy();
            return;
        }
        const upstream = net.connect(this.target, '127.0.0.1');
        for (const [one, other] of [[socket, upstream], [upstream, socket]]) {
            this.sockets.add(one);
            one.on('error', () => other.destroy());
            one.on('close', () => { this.sockets.delete(one); other.destroy(); });
            one.pipe(other);
        }
    }

    cut() {
        this.up = false;
        for (const socket of this.sockets)
            socket.destroy();
    }

    mend() {
        this.up = true;
    }

    close() {
        this.cut();
        return new Promise((resolve) => this.server.close(resolve));
    }
}

function roomItem(page, name) {
    return page.locator(`#rooms li[data-room="${name}"]`);
}

async function badges(page, name) {
    const item = roomItem(page, name);
    const read = async (selector) => ((await item.locator(selector).count())
        ? (await item.locator(selector).innerText()).replace(/\s.*$/s, '') : null);
    return { unread: await read('.unread-badge'), mentions: await read('.mention-badge') };
}

async function waitForBadges(page, name, expected) {
    let last;
    for (const deadline = Date.now() + TIMEOUT; Date.now() < deadline;) {
        last = await badges(page, name);
        if (last.unread === expected.unread && last.mentions === expected.mentions)
            return;
        await page.waitForTimeout(100);
    }
    assert.deepEqual(last, expected, `the badges of ${name}`);
}

async function waitForTitle(page, title) {
    try {
        await page.waitForFunction((want) => document.title === want, title, { timeout: TIMEOUT });
    } catch {
        assert.equal(await page.title(), title);
    }
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

describe('unread counts, read markers and invitations in the browser', () => {
    const data = tempDir();
    let server;
    let cable;
    let browser;
    let tab1;
    let tab2;
    let bob;
    const consoleErrors = [];

    before(async () => {
        server = await startChatServer({ dataDir: data });
        cable = await new Cable(server.port).listen();
        browser = await launchBrowser();
    });

    after(async () => {
        await bob?.close();
        await cable?.close();
        await closeChat({ browser, server, dataDir: data, consoleErrors });
    });

    it('alice has two tabs on the room front, and a conversation with bob; bob is in front and back', async () => {
        bob = await protocolAs(server, 'bob', { registering: true });
        await (await protocolAs(server, 'carol', { registering: true })).close();
        const context = await newContext(browser, WINDOW);
        tab1 = await openPage(context, cable, consoleErrors);
        await signIn(tab1, 'alice', { registering: true });
        await createRoom(tab1, 'back');
        await createRoom(tab1, 'front');
        await ok(bob, { type: 'room.join', room: 'back' });
        await ok(bob, { type: 'room.join', room: 'front' });
        await ok(bob, { type: 'pm.send', to: 'alice', text: 'hi alice' });
        await tab1.locator('#conversations li[data-with="bob"] button').click();
        await tab1.locator('#pm-entries li.entry-message', { hasText: 'hi alice' }).waitFor({ timeout: TIMEOUT });
        await roomItem(tab1, 'front').locator('button.room-item').click();
        await tab1.locator('#chat-title', { hasText: 'front' }).waitFor({ timeout: TIMEOUT });
        tab2 = await openPage(context, cable, consoleErrors);
        await tab2.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: TIMEOUT });
        await tab2.locator('#chat-title', { hasText: 'front' }).waitFor({ timeout: TIMEOUT });
        for (const tab of [tab1, tab2])
            await waitForTitle(tab, 'alice · Parley');
    });

    it('what bob posts during an outage into a room not on screen shows as unread after the reconnect', async () => {
        const sent = recordRequests(tab1);
        cable.cut();
        for (const tab of [tab1, tab2])
            await tab.locator('#status', { hasText: /Disconnected|Reconnecting/ }).waitFor({ timeout: TIMEOUT });
        await ok(bob, { type: 'msg.send', room: 'back', text: 'while you were away, @alice: look' });
        await ok(bob, { type: 'msg.send', room: 'back', text: 'and a second one' });
        await ok(bob, { type: 'msg.send', room: 'front', text: 'front, on screen' });
        await ok(bob, { type: 'pm.send', to: 'alice', text: 'psst' });
        cable.mend();

        for (const tab of [tab1, tab2]) {
            await tab.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: 30000 });
            await waitForBadges(tab, 'back', { unread: '2', mentions: '@1' });
            // front is on screen: caught up and read, no badge
            await tab.locator('#entries li.entry-message', { hasText: 'front, on screen' }).waitFor({ timeout: TIMEOUT });
            await waitForBadges(tab, 'front', { unread: null, mentions: null });
            await tab.locator('#conversations li[data-with="bob"][data-unread="1"]').waitFor({ timeout: TIMEOUT });
            await waitForTitle(tab, '(3) alice · Parley');
        }
        // Every room and conversation tab1 holds was caught up after its last
        // seen seq, not only the one on screen
        const caughtUp = (type, field, name) => sent.some((request) => request.type === type
            && request[field] === name && Number.isInteger(request.after) && request.after > 0);
        assert.ok(caughtUp('room.history', 'room', 'back'), JSON.stringify(sent));
        assert.ok(caughtUp('room.history', 'room', 'front'), JSON.stringify(sent));
        assert.ok(caughtUp('pm.history', 'with', 'bob'), JSON.stringify(sent));
        await fourScreenshots(tab2, '54-web-unread');
    });

    it('reading in one tab clears the badges in the other, and opens at the read marker', async () => {
        await roomItem(tab1, 'back').locator('button.room-item').click();
        await tab1.locator('#chat-title', { hasText: 'back' }).waitFor({ timeout: TIMEOUT });
        // The "New messages" line sits right above the first message not read
        const line = tab1.locator('#entries li.new-line + li.entry-message', { hasText: 'while you were away' });
        await line.waitFor({ timeout: TIMEOUT });
        // The message that names alice stands out
        await tab1.locator('#entries li.entry-message.mentions-me', { hasText: 'while you were away' })
            .waitFor({ timeout: TIMEOUT });
        assert.equal(await tab1.locator('#entries li.entry-message.mentions-me').count(), 1);
        assert.deepEqual(await seriousViolations(tab1), []);
        await screenshot(tab1, '54-web-unread-new-line');

        await waitForBadges(tab2, 'back', { unread: null, mentions: null });
        await waitForTitle(tab2, '(1) alice · Parley');
        const probe = await protocolAs(server, 'alice');
        const listed = (await ok(probe, { type: 'room.list' })).rooms.find((room) => room.name === 'back');
        assert.equal(listed.unread, 0);
        assert.equal(listed.mentions, 0);
        assert.equal(listed.read_seq, listed.last_seq);

        await tab1.locator('#conversations li[data-with="bob"] button').click();
        await tab1.locator('#pm-entries li.entry-message', { hasText: 'psst' }).waitFor({ timeout: TIMEOUT });
        await tab2.locator('#conversations li[data-with="bob"][data-unread="0"]').waitFor({ timeout: TIMEOUT });
        for (const tab of [tab1, tab2])
            await waitForTitle(tab, 'alice · Parley');
        await probe.close();
    });

    it('an invitation sent while carol was offline is listed when she signs in, and she joins from the list', async () => {
        await ok(bob, { type: 'room.create', room: 'secret', private: true });
        await ok(bob, { type: 'room.invite', room: 'secret', user: 'carol' });
        const carol = await openPage(await newContext(browser, WINDOW), cable, consoleErrors);
        await signIn(carol, 'carol');
        const invited = carol.locator('#rooms li[data-room="secret"][data-invited="true"]');
        await invited.waitFor({ timeout: TIMEOUT });
        assert.match(await invited.innerText(), /invited/);
        assert.deepEqual(await seriousViolations(carol), []);
        await fourScreenshots(carol, '54-web-invited');

        await invited.locator('.invite-join').click();
        await carol.locator('#chat-title', { hasText: 'secret' }).waitFor({ timeout: TIMEOUT });
        await carol.locator('#room-leave').waitFor({ state: 'visible', timeout: TIMEOUT });
        await carol.locator('#rooms li[data-room="secret"][data-joined="true"][data-invited="false"]')
            .waitFor({ timeout: TIMEOUT });
        await carol.locator('#composer-text').fill('thanks for the invitation');
        await carol.locator('#composer-text').press('Enter');
        const entry = await bob.nextEvent((frame) => frame.type === 'message' && frame.room === 'secret', TIMEOUT);
        assert.equal(entry.text, 'thanks for the invitation');
        await carol.context().close();
    });
});
