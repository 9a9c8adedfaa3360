// Mentions, typing and desktop notifications in headless Chromium (PROTOCOL.md
// 1.1 "Read markers, unread counts and mentions", "Typing"): alice and bob in
// browsers, carol and dave through the protocol, all in one room. `@` in
// alice's composer offers the room's members (arrows, Enter, Tab, Escape);
// the mention shows highlighted, more strongly for the one it names; bob's
// typing shows under alice's timeline ("bob is typing…", two names, "several
// people") until his message arrives or about 5 s pass, in a room and in a
// conversation; and alice, who turned notifications on with the account
// menu's button (never asked on page load), gets a notification from the
// page for a mention and for a private message while her tab is hidden,
// none for a room she muted from its header.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir } from '../lib/harness.js';
import { ok } from '../lib/rooms.js';
import {
    launchBrowser, screenshot, startChatServer, closeChat, newContext, openPage, signIn, seriousViolations,
    protocolAs, recordRequests, createRoom, setHidden, fourScreenshots, TIMEOUT,
} from '../lib/browser.js';

// Records what the page does with the Notification API, before any page
// script runs: each notification made (title, body) and each permission asked
const RECORD_NOTIFICATIONS = () => {
    window.shown = [];
    window.asked = 0;
    const Real = window.Notification;
    if (typeof Real !== 'function')
        return;
    class Recorded extends Real {
        constructor(title, options = {}) {
            window.shown.push({ title, body: options.body ?? null, tag: options.tag ?? null });
            super(title, options);
        }
    }
    Recorded.requestPermission = (...args) => {
        window.asked += 1;
        return Real.requestPermission(...args);
    };
    window.Notification = Recorded;
};

function message(page, text) {
    return page.locator('#entries li.entry-message', { hasText: text });
}

// The suggestions the composer's `@` list shows, in order
function suggestions(page) {
    return page.locator('#composer-text-mentions li[role="option"]').evaluateAll((nodes) =>
        nodes.map((node) => node.dataset.user));
}

async function waitForTyping(page, text, line = '#typing') {
    try {
        await page.waitForFunction(([selector, want]) => document.querySelector(selector)?.textContent === want,
            [line, text], { timeout: TIMEOUT });
    } catch {
        assert.equal(await page.locator(line).textContent(), text);
    }
}

describe('mentions, typing and notifications in the browser', () => {
    const data = tempDir();
    let server;
    let browser;
    let alice;
    let bob;
    let carol;
    let dave;
    let bobSent;                // the requests of bob's page
    let aliceSent;
    const consoleErrors = [];

    before(async () => {
        server = await startChatServer({ dataDir: data });
        browser = await launchBrowser();
    });

    after(async () => {
        await carol?.close();
        await dave?.close();
        await closeChat({ browser, server, dataDir: data, consoleErrors });
    });

    it('alice, bob, carol and dave share a room; alice is asked for nothing on page load', async () => {
        const aliceContext = await newContext(browser);
        await aliceContext.grantPermissions(['notifications'], { origin: server.http });
        await aliceContext.addInitScript(RECORD_NOTIFICATIONS);
        alice = await openPage(aliceContext, server, consoleErrors);
        aliceSent = recordRequests(alice);
        await signIn(alice, 'alice', { registering: true });
        await createRoom(alice, 'team');
        const bobContext = await newContext(browser, { colorScheme: 'dark' });
        bob = await openPage(bobContext, server, consoleErrors);
        bobSent = recordRequests(bob);
        await signIn(bob, 'bob', { registering: true });
        carol = await protocolAs(server, 'carol', { registering: true });
        dave = await protocolAs(server, 'Dave', { registering: true });
        for (const client of [carol, dave])
            await ok(client, { type: 'room.join', room: 'team' });
        await bob.locator('#rooms li[data-room="team"] button').click();
        await bob.locator('#room-join').click();
        await bob.locator('#room-leave').waitFor({ state: 'visible', timeout: TIMEOUT });
        await alice.locator('#members li[data-user="Dave"]').waitFor({ timeout: TIMEOUT });
        await alice.locator('#members li[data-user="bob"]').waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.evaluate(() => window.asked), 0, 'no permission asked on page load');
        assert.deepEqual(await alice.evaluate(() => window.shown), []);
    });

    it('`@` offers the room\'s members: arrows and Enter pick one, Tab too, Escape closes the list', async () => {
        const input = alice.locator('#composer-text');
        await input.focus();
        await input.type('@');
        // Everyone but alice, online first (carol and Dave are online through the protocol too)
        await alice.locator('#composer-text-mentions').waitFor({ timeout: TIMEOUT });
        assert.deepEqual(await suggestions(alice), ['bob', 'carol', 'Dave']);
        assert.equal(await input.getAttribute('aria-activedescendant'), 'composer-text-mentions-0');
        await input.type('d');
        assert.deepEqual(await suggestions(alice), ['Dave'], 'filtered without regard to case');
        await input.press('Backspace');
        await input.press('ArrowDown');
        assert.equal(await alice.locator('#composer-text-mentions li[aria-selected="true"]').getAttribute('data-user'),
            'carol');
        await input.press('Enter');
        assert.equal(await input.inputValue(), '@carol ', 'Enter picks, and does not send');
        assert.equal(await alice.locator('#composer-text-mentions').isVisible(), false);

        await input.type('and @B');
        assert.deepEqual(await suggestions(alice), ['bob']);
        await fourScreenshots(alice, '56-web-mention-list');
        assert.deepEqual(await suggestions(alice), ['bob'], 'still open after the screenshots');
        assert.deepEqual(await seriousViolations(alice), [], 'the composer with its list open');
        await input.press('Tab');
        assert.equal(await input.inputValue(), '@carol and @bob ');
        assert.equal(await alice.evaluate(() => document.activeElement?.id), 'composer-text', 'Tab stays');

        await input.type('and @');
        await alice.locator('#composer-text-mentions').waitFor({ timeout: TIMEOUT });
        await input.press('Escape');
        assert.equal(await alice.locator('#composer-text-mentions').isVisible(), false);
        assert.equal(await alice.evaluate(() => document.activeElement?.id), 'composer-text',
            'Escape closes the list first, the composer keeps the focus');
        // An e-mail address offers nobody
        await input.type('x mail me at a@b');
        assert.equal(await alice.locator('#composer-text-mentions').isVisible(), false);
        await input.fill('');
    });

    it('a mention is highlighted, more strongly for the one it names', async () => {
        const input = alice.locator('#composer-text');
        await input.fill('@bob and @CAROL, please look at the build; mail ops@bob.example');
        await input.press('Enter');
        const atBob = message(bob, 'please look at the build');
        await atBob.waitFor({ timeout: TIMEOUT });
        // bob reads a mention of himself: the row and the name stand out
        assert.equal(await atBob.evaluate((node) => node.classList.contains('mentions-me')), true);
        assert.deepEqual(await atBob.locator('.mention').evaluateAll((nodes) =>
            nodes.map((node) => [node.textContent, node.classList.contains('mention-me')])),
        [['@bob', true], ['@CAROL', false]]);
        // alice wrote it: both names are marked, neither as hers
        const own = message(alice, 'please look at the build');
        await own.locator('.mention').first().waitFor({ timeout: TIMEOUT });
        assert.deepEqual(await own.locator('.mention').allTextContents(), ['@bob', '@CAROL']);
        assert.equal(await own.locator('.mention-me').count(), 0);
        assert.equal(await own.evaluate((node) => node.classList.contains('mentions-me')), false);
        // The server's mentions field is what the page marks: the address names nobody
        const event = await carol.nextEvent((frame) => frame.type === 'message' && /please look/.test(frame.text), TIMEOUT);
        assert.deepEqual(event.mentions, ['bob', 'carol']);
        assert.deepEqual(await seriousViolations(bob), [], 'a highlighted mention in dark mode');
        await fourScreenshots(bob, '56-web-mention');
        await bob.emulateMedia({ colorScheme: 'dark' });      // bob's own choice again
    });

    it('bob\'s typing shows under alice\'s timeline until his message arrives', async () => {
        const started = Date.now();
        const before = bobSent.length;
        const input = bob.locator('#composer-text');
        await input.focus();
        await input.type('on it, ');
        await waitForTyping(alice, 'bob is typing…');
        assert.equal(await bob.locator('#typing').textContent(), '', 'not one\'s own');
        await ok(carol, { type: 'typing', room: 'team' });
        await waitForTyping(alice, 'bob and carol are typing…');
        await ok(dave, { type: 'typing', room: 'team' });
        await waitForTyping(alice, 'several people are typing…');
        await screenshot(alice, '56-web-typing-light');
        // Typing on and on sends `typing` at most every 3 s
        for (let n = 0; n < 8; n++)
            await input.type('and more ', { delay: 40 });
        const sent = bobSent.slice(before).filter((request) => request.type === 'typing');
        const elapsed = Date.now() - started;
        assert.ok(sent.length >= 1 && sent.length <= Math.floor(elapsed / 3000) + 1,
            `${sent.length} typing requests in ${elapsed} ms`);
        assert.ok(sent.every((request) => request.room === 'team'), JSON.stringify(sent));
        for (let n = 1; n < sent.length; n++)
            assert.ok(sent[n].sentAt - sent[n - 1].sentAt >= 2900, JSON.stringify(sent));

        await input.press('Enter');
        await message(alice, 'on it, and more').waitFor({ timeout: TIMEOUT });
        // His message ends his "typing"; the others' last about 5 s
        const line = await alice.locator('#typing').textContent();
        assert.ok(line === 'carol and Dave are typing…' || line === '', line);
        await waitForTyping(alice, '');
    });

    it('typing in a conversation shows to the other party', async () => {
        await alice.locator('#switcher-open').click();
        await alice.locator('#switcher-input').fill('bob');
        await alice.keyboard.press('Enter');
        await alice.locator('#pm-title', { hasText: 'bob' }).waitFor({ timeout: TIMEOUT });
        await bob.locator('#switcher-open').click();
        await bob.locator('#switcher-input').fill('alice');
        await bob.keyboard.press('Enter');
        await bob.locator('#pm-title', { hasText: 'alice' }).waitFor({ timeout: TIMEOUT });
        const before = aliceSent.length;
        await alice.locator('#pm-text').type('a private word');
        await waitForTyping(bob, 'alice is typing…', '#pm-typing');
        assert.deepEqual(aliceSent.slice(before).filter((request) => request.type === 'typing')
            .map((request) => request.to), ['bob']);
        assert.equal(await bob.locator('#typing').isVisible(), false, 'the room view is not on screen');
        await screenshot(bob, '56-web-typing-pm-dark');
        await alice.locator('#pm-text').press('Enter');
        await bob.locator('#pm-entries li.entry-message', { hasText: 'a private word' }).waitFor({ timeout: TIMEOUT });
        await waitForTyping(bob, '', '#pm-typing');
        await alice.locator('#rooms li[data-room="team"] button').click();
        await alice.locator('#chat-title', { hasText: 'team' }).waitFor({ timeout: TIMEOUT });
    });

    it('notifications, once turned on with the button, show mentions and private messages while the tab is hidden', async () => {
        // Hidden, but not turned on yet: nothing
        await setHidden(alice, true);
        await ok(carol, { type: 'msg.send', room: 'team', text: '@alice before you turned them on' });
        await message(alice, 'before you turned them on').waitFor({ timeout: TIMEOUT });
        assert.deepEqual(await alice.evaluate(() => window.shown), []);
        await setHidden(alice, false);

        await alice.locator('#account-menu').click();
        const toggle = alice.locator('#notify-toggle');
        await toggle.waitFor({ state: 'visible', timeout: TIMEOUT });
        assert.equal(await toggle.textContent(), 'Turn on desktop notifications');
        await toggle.click();
        await alice.locator('#toasts .toast', { hasText: 'Desktop notifications are on' }).waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.evaluate(() => window.asked), 1, 'asked once, on the button');
        await alice.locator('#account-menu').click();
        await alice.locator('#notify-toggle', { hasText: 'Turn off desktop notifications' }).waitFor({ timeout: TIMEOUT });
        await alice.keyboard.press('Escape');

        // Visible: no notification, the page shows it
        await ok(carol, { type: 'msg.send', room: 'team', text: '@alice while you look' });
        await message(alice, 'while you look').waitFor({ timeout: TIMEOUT });
        await setHidden(alice, true);
        await ok(carol, { type: 'msg.send', room: 'team', text: 'nothing for alice here' });
        await ok(carol, { type: 'msg.send', room: 'team', text: 'hey @Alice, the release is out' });
        await ok(dave, { type: 'pm.send', to: 'alice', text: 'lunch?' });
        await alice.waitForFunction(() => window.shown.length >= 2, null, { timeout: TIMEOUT });
        await message(alice, 'the release is out').waitFor({ timeout: TIMEOUT });
        const shown = await alice.evaluate(() => window.shown);
        assert.deepEqual(shown.map(({ title, body }) => ({ title, body })), [
            { title: 'carol mentioned you in #team', body: 'hey @Alice, the release is out' },
            { title: 'Dave sent you a private message', body: 'lunch?' },
        ]);
        await setHidden(alice, false);
    });

    it('a room muted from its header gives no notification, and stays muted after a reload', async () => {
        const mute = alice.locator('#room-mute');
        assert.equal(await mute.getAttribute('aria-pressed'), 'false');
        await mute.click();
        assert.equal(await mute.getAttribute('aria-pressed'), 'true');
        await screenshot(alice, '56-web-muted');
        const before = (await alice.evaluate(() => window.shown)).length;
        await setHidden(alice, true);
        await ok(carol, { type: 'msg.send', room: 'team', text: '@alice muted, so quiet' });
        await ok(dave, { type: 'pm.send', to: 'alice', text: 'still there?' });
        await alice.waitForFunction((count) => window.shown.length > count, before, { timeout: TIMEOUT });
        await message(alice, 'muted, so quiet').waitFor({ timeout: TIMEOUT });
        const shown = (await alice.evaluate(() => window.shown)).slice(before);
        assert.deepEqual(shown.map(({ title }) => title), ['Dave sent you a private message'],
            'the conversation is not muted, the room is');
        await setHidden(alice, false);

        await alice.reload();
        await alice.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: TIMEOUT });
        await alice.locator('#chat-title', { hasText: 'team' }).waitFor({ timeout: TIMEOUT });
        await alice.locator('#room-mute[aria-pressed="true"]').waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.evaluate(() => window.asked), 0, 'nothing asked after the reload either');
        await alice.locator('#room-mute').click();
        assert.equal(await alice.locator('#room-mute').getAttribute('aria-pressed'), 'false');
    });
});
