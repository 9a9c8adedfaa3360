// Private messages in headless Chromium: alice writes to bob from the users
// panel while bob is offline; bob logs in to an unread badge and a count in the
// tab title, reads, and they chat both ways live (alice with two tabs); a
// hidden tab or another conversation keeps counting; scroll-back through older
// messages; read markers that survive a reload; a phone-width screen.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir, sleep, eventually } from '../lib/harness.js';
import {
    launchBrowser, screenshot, startChatServer, closeChat, newContext, openPage, signIn, protocolAs, TIMEOUT,
} from '../lib/browser.js';

// The window every page opens in (the phone test resizes bob's)
const WINDOW = { width: 1100, height: 760 };

function conversation(page, user) {
    return page.locator(`#conversations li[data-with="${user}"]`);
}

async function openConversation(page, user) {
    await conversation(page, user).locator('button').click();
    await page.locator('#pm-title', { hasText: user }).waitFor({ timeout: TIMEOUT });
}

function message(page, text) {
    return page.locator('#pm-entries li.entry-message', { hasText: text });
}

async function say(page, text) {
    await page.locator('#pm-text').fill(text);
    await page.locator('#pm-text').press('Enter');
    await message(page, text).waitFor({ timeout: TIMEOUT });
}

async function seqs(page) {
    return page.locator('#pm-entries li[data-seq]').evaluateAll((nodes) =>
        nodes.map((node) => Number(node.dataset.seq)));
}

async function unreadOf(page, user) {
    return Number(await conversation(page, user).getAttribute('data-unread'));
}

async function waitForUnread(page, user, count) {
    await page.locator(`#conversations li[data-with="${user}"][data-unread="${count}"]`)
        .waitFor({ timeout: TIMEOUT });
}

async function waitForTitle(page, pattern) {
    await page.waitForFunction((source) => new RegExp(source).test(document.title), pattern.source,
        { timeout: TIMEOUT });
}

// Makes the page believe that its tab is hidden (or visible again)
async function setHidden(page, hidden) {
    await page.evaluate((isHidden) => {
        if (isHidden)
            Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
        else
            delete document.visibilityState;
        document.dispatchEvent(new Event('visibilitychange'));
    }, hidden);
}

async function serverUnread(server, username) {
    const probe = await protocolAs(server, username);
    try {
        const reply = await probe.request({ type: 'pm.conversations' });
        assert.equal(reply.type, 'ok', JSON.stringify(reply));
        return Object.fromEntries(reply.conversations.map((each) => [each.with, each.unread]));
    } finally {
        await probe.close();
    }
}

describe('private messages in the browser', () => {
    const data = tempDir();
    let server;
    let browser;
    let aliceContext;
    const pages = {};
    const consoleErrors = [];

    before(async () => {
        server = await startChatServer({ dataDir: data });
        browser = await launchBrowser();
        // bob and carol exist but have never opened a page
        for (const name of ['bob', 'carol'])
            await (await protocolAs(server, name, { registering: true })).close();
        aliceContext = await newContext(browser, WINDOW);
        pages.alice = await openPage(aliceContext, server, consoleErrors);
        await signIn(pages.alice, 'alice', { registering: true });
    });

    after(() => closeChat({ browser, server, dataDir: data, consoleErrors }));

    it('alice writes to bob, who is offline, from the users panel', async () => {
        const { alice } = pages;
        await alice.locator('#conversations-empty').waitFor({ state: 'visible', timeout: TIMEOUT });
        const bobRow = alice.locator('#users li[data-user="bob"]');
        await bobRow.locator('.presence-state', { hasText: 'offline' }).waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.locator('#users li[data-user="alice"] .pm-start').count(), 0,
                     'no Message button beside oneself');
        assert.equal(await bobRow.locator('.pm-start').getAttribute('aria-label'), 'Message bob');
        await bobRow.locator('.pm-start').click();

        await alice.locator('#pm-view').waitFor({ state: 'visible', timeout: TIMEOUT });
        await alice.locator('#pm-title', { hasText: 'bob' }).waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.locator('#chat-placeholder').isVisible(), false);
        await alice.locator('#pm-notice', { hasText: 'No messages yet' }).waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.evaluate(() => document.activeElement?.id), 'pm-text');
        // No maxlength: a longer draft is not cut, the composer says how much is over
        assert.equal(await alice.locator('#pm-text').getAttribute('maxlength'), null);

        // Nothing to send: said here, nothing sent
        await alice.locator('#pm-text').press('Enter');
        await alice.locator('#pm-composer-error', { hasText: 'Write something first.' }).waitFor({ timeout: TIMEOUT });

        await say(alice, 'hello bob');
        await say(alice, 'are you there?');
        assert.deepEqual(await seqs(alice), [1, 2]);
        assert.equal(await message(alice, 'hello bob').evaluate((node) => node.classList.contains('own')), true);
        assert.equal(await alice.locator('#pm-text').inputValue(), '');

        // The conversation joins alice's list, with her own last message and nothing unread
        await conversation(alice, 'bob').waitFor({ timeout: TIMEOUT });
        assert.equal(await unreadOf(alice, 'bob'), 0);
        assert.match(await conversation(alice, 'bob').locator('.conversation-preview').textContent(),
                     /You: are you there\?/);
        assert.doesNotMatch(await alice.title(), /^\(/);
        await screenshot(alice, '32-web-pm-alice-writes');
    });

    it('bob logs in to an unread badge and a count in the title; reading clears both', async () => {
        pages.bob = await openPage(await newContext(browser, WINDOW), server, consoleErrors);
        const { bob } = pages;
        await signIn(bob, 'bob');
        await waitForUnread(bob, 'alice', 2);
        assert.equal((await conversation(bob, 'alice').locator('.unread-badge').textContent()).trim(), '2 unread');
        assert.match(await conversation(bob, 'alice').locator('.conversation-preview').textContent(),
                     /are you there\?/);
        await waitForTitle(bob, /^\(2\) /);
        await screenshot(bob, '32-web-pm-bob-unread');

        await openConversation(bob, 'alice');
        await message(bob, 'are you there?').waitFor({ timeout: TIMEOUT });
        assert.deepEqual(await seqs(bob), [1, 2]);
        const texts = await bob.locator('#pm-entries li .text').allTextContents();
        assert.deepEqual(texts, ['hello bob', 'are you there?']);
        assert.equal(await message(bob, 'hello bob').evaluate((node) => node.classList.contains('own')), false);
        await waitForUnread(bob, 'alice', 0);
        assert.equal(await conversation(bob, 'alice').locator('.unread-badge').count(), 0);
        await waitForTitle(bob, /^bob · Parley$/);
        // The read marker is on the server
        assert.ok(await eventually(async () => (await serverUnread(server, 'bob')).alice === 0, 10000, 200), 'bob has read alice on the server');
        await screenshot(bob, '32-web-pm-bob-reads');
    });

    it('they chat both ways live, and alice\'s second tab sees every message', async () => {
        const { alice, bob } = pages;
        pages.alice2 = await openPage(aliceContext, server, consoleErrors);
        const alice2 = pages.alice2;
        await alice2.locator('#dashboard-view').waitFor({ state: 'visible', timeout: TIMEOUT });
        await openConversation(alice2, 'bob');
        await message(alice2, 'are you there?').waitFor({ timeout: TIMEOUT });

        await say(bob, 'hi alice, I am here now');
        await message(alice, 'I am here now').waitFor({ timeout: TIMEOUT });
        await message(alice2, 'I am here now').waitFor({ timeout: TIMEOUT });
        assert.match(await alice.locator('#pm-announcer').textContent(), /bob: hi alice/);

        await say(alice2, 'writing from my second tab');
        await message(bob, 'writing from my second tab').waitFor({ timeout: TIMEOUT });
        await message(alice, 'writing from my second tab').waitFor({ timeout: TIMEOUT });
        assert.equal(await message(alice, 'second tab').evaluate((node) => node.classList.contains('own')), true);

        await say(alice, 'and from the first');
        await message(bob, 'and from the first').waitFor({ timeout: TIMEOUT });
        await message(alice2, 'and from the first').waitFor({ timeout: TIMEOUT });
        // The sender's page shows its message at once from the outbox and
        // gives it its seq when the entry comes: wait for that, then compare
        for (const page of [alice, alice2, bob]) {
            await eventually(async () => (await seqs(page)).length === 5, TIMEOUT, 100);
            assert.deepEqual(await seqs(page), [1, 2, 3, 4, 5]);
        }

        // Read as they arrive: nothing unread anywhere
        await waitForUnread(alice, 'bob', 0);
        await waitForUnread(alice2, 'bob', 0);
        await waitForUnread(bob, 'alice', 0);
        assert.ok(await eventually(async () => (await serverUnread(server, 'alice')).bob === 0, 10000, 200), 'alice has read bob on the server');
        await screenshot(alice, '32-web-pm-chat-alice');
        await screenshot(bob, '32-web-pm-chat-bob');
    });

    it('counts what arrives in a hidden tab or in another conversation, until it is read', async () => {
        const { alice, bob } = pages;
        // The tab is hidden: the message shows, but stays unread
        await setHidden(bob, true);
        await say(alice, 'are you still there?');
        await message(bob, 'are you still there?').waitFor({ timeout: TIMEOUT });
        await waitForUnread(bob, 'alice', 1);
        await waitForTitle(bob, /^\(1\) /);
        await setHidden(bob, false);
        await waitForUnread(bob, 'alice', 0);
        await waitForTitle(bob, /^bob · Parley$/);

        // carol writes while bob reads alice: her conversation comes first, unread
        const carol = await protocolAs(server, 'carol');
        const sent = await carol.request({ type: 'pm.send', to: 'bob', text: 'hello from carol' });
        assert.equal(sent.type, 'ok', JSON.stringify(sent));
        await carol.close();
        await waitForUnread(bob, 'carol', 1);
        await waitForTitle(bob, /^\(1\) /);
        const order = await bob.locator('#conversations li').evaluateAll((nodes) => nodes.map((node) => node.dataset.with));
        assert.deepEqual(order, ['carol', 'alice'], 'newest first');
        assert.match(await bob.locator('#pm-announcer').textContent(), /New message from carol/);
        await screenshot(bob, '32-web-pm-elsewhere');

        await openConversation(bob, 'carol');
        await message(bob, 'hello from carol').waitFor({ timeout: TIMEOUT });
        await waitForUnread(bob, 'carol', 0);
        await waitForTitle(bob, /^bob · Parley$/);
        await openConversation(bob, 'alice');
    });

    it('rooms and conversations share the main area', async () => {
        const { bob } = pages;
        await bob.locator('#room-new').click();
        await bob.locator('#create-room-modal.show').waitFor({ timeout: TIMEOUT });
        await bob.locator('#room-name').fill('corner');
        await bob.locator('#create-room-submit').click();
        await bob.locator('#chat-title', { hasText: 'corner' }).waitFor({ timeout: TIMEOUT });
        assert.equal(await bob.locator('#pm-view').isVisible(), false);
        assert.equal(await conversation(bob, 'alice').locator('button.active').count(), 0);
        await openConversation(bob, 'alice');
        assert.equal(await bob.locator('#chat-view').isVisible(), false);
        assert.equal(await bob.locator('#rooms li[data-room="corner"] button.active').count(), 0);
        await bob.locator('#pm-close').click();
        await bob.locator('#chat-placeholder').waitFor({ state: 'visible', timeout: TIMEOUT });
        await openConversation(bob, 'alice');
    });

    it('loads older messages when scrolled to the top, and read markers survive a reload', async () => {
        const { bob } = pages;
        // 80 more from a protocol session of alice's, faster than typing
        const writer = await protocolAs(server, 'alice');
        for (let n = 1; n <= 80; n++) {
            let reply = await writer.request({ type: 'pm.send', to: 'bob', text: `note ${n}` });
            for (let retry = 0; reply.code === 'rate_limited' && retry < 50; retry++) {
                await sleep(100);
                reply = await writer.request({ type: 'pm.send', to: 'bob', text: `note ${n}` });
            }
            assert.equal(reply.type, 'ok', JSON.stringify(reply));
        }
        await writer.close();
        await message(bob, 'note 80').waitFor({ timeout: TIMEOUT });
        await waitForUnread(bob, 'alice', 0);
        assert.ok(await eventually(async () => (await serverUnread(server, 'bob')).alice === 0, 10000, 200), 'bob has read alice on the server');

        // A fresh page: nothing unread, and only the newest page when opened
        await bob.reload();
        await bob.locator('#dashboard-view').waitFor({ state: 'visible', timeout: TIMEOUT });
        await conversation(bob, 'alice').waitFor({ timeout: TIMEOUT });
        assert.equal(await unreadOf(bob, 'alice'), 0);
        assert.equal(await unreadOf(bob, 'carol'), 0);
        await waitForTitle(bob, /^bob · Parley$/);
        await openConversation(bob, 'alice');
        await message(bob, 'note 80').waitFor({ timeout: TIMEOUT });
        assert.equal(await bob.locator('#pm-entries li[data-seq]').count(), 50);
        assert.equal(await bob.locator('#pm-entries li[data-seq="1"]').count(), 0);

        for (let round = 0; round < 10; round++) {
            if (await bob.locator('#pm-entries li[data-seq="1"]').count() > 0)
                break;
            const before = await bob.locator('#pm-entries li[data-seq]').count();
            await bob.locator('#pm-timeline').evaluate((box) => { box.scrollTop = 0; });
            await bob.waitForFunction((count) => document.querySelectorAll('#pm-entries li[data-seq]').length > count,
                before, { timeout: TIMEOUT });
        }
        await bob.locator('#pm-entries li[data-seq="1"]').waitFor({ timeout: TIMEOUT });
        const all = await seqs(bob);
        const total = 6 + 80;
        assert.equal(all.length, total);
        assert.deepEqual(all, all.map((_, index) => index + 1), 'every message once, in order, no gap');
        await bob.locator('#pm-top', { hasText: 'The beginning of the conversation.' }).waitFor({ timeout: TIMEOUT });
        await bob.locator('#pm-timeline').evaluate((box) => { box.scrollTop = 0; });
        await screenshot(bob, '32-web-pm-scrollback');

        await bob.reload();
        await bob.locator('#dashboard-view').waitFor({ state: 'visible', timeout: TIMEOUT });
        await conversation(bob, 'alice').waitFor({ timeout: TIMEOUT });
        assert.equal(await unreadOf(bob, 'alice'), 0);
        assert.doesNotMatch(await bob.title(), /^\(/);
    });

    it('fits a phone screen', async () => {
        const { bob } = pages;
        await bob.setViewportSize({ width: 390, height: 844 });
        await bob.locator('#pm-back').click();
        await openConversation(bob, 'alice');
        await message(bob, 'note 80').waitFor({ timeout: TIMEOUT });
        const overflow = await bob.evaluate(() =>
            document.documentElement.scrollWidth - document.documentElement.clientWidth);
        assert.equal(overflow, 0, 'the conversation fits a 375 px screen');
        await bob.locator('#pm-title').scrollIntoViewIfNeeded();
        await screenshot(bob, '32-web-pm-phone');
    });
});
