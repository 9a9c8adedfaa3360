// Message actions in headless Chromium with two people, alice and bob, in a
// room and in a private conversation (PROTOCOL.md 1.1 "Replies, edits,
// deletions and reactions"): reply (the quote above the composer and above
// the reply), edit in place (also by the Up arrow; Escape cancels), delete
// after a confirm ("message deleted", no actions left; the owner may delete
// anyone's message), reactions from the picker and typed, toggled by their
// chips; each seen live by the other, after a reload as history gives it,
// and after missed events by the catch-up `after`. Long press on a phone;
// screenshots at desktop and phone width, light and dark.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir } from '../lib/harness.js';
import {
    launchBrowser, screenshot, startChatServer, closeChat, newContext, openPage, signIn, seriousViolations,
    outsideViewport, TIMEOUT, createRoom,
} from '../lib/browser.js';

const PHONE = { width: 390, height: 844 };

// A message by its own text (not the text it quotes)
function message(page, text, entries = '#entries') {
    return page.locator(`${entries} li.entry-message:not(.pending)`)
        .filter({ has: page.locator(':scope > .entry-body > .text', { hasText: text }) });
}

async function say(page, text, { composer = '#composer-text', entries = '#entries' } = {}) {
    await page.locator(composer).fill(text);
    await page.locator(composer).press('Enter');
    await message(page, text, entries).waitFor({ timeout: TIMEOUT });
}

// The action of a message's toolbar, shown on hover
async function act(item, action) {
    await item.hover();
    await item.locator(`.msg-${action}`).click();
}

async function chip(item, emoji) {
    return item.locator(`.reaction-chip[data-emoji="${emoji}"]`);
}

async function chipState(item, emoji) {
    const node = await chip(item, emoji);
    if (await node.count() === 0)
        return null;
    return { count: Number(await node.locator('.reaction-count').textContent()),
        pressed: await node.getAttribute('aria-pressed'), title: await node.getAttribute('title') };
}

async function waitForChip(item, emoji, count) {
    const node = await chip(item, emoji);
    if (count === 0)
        await node.waitFor({ state: 'detached', timeout: TIMEOUT });
    else
        await node.locator('.reaction-count', { hasText: new RegExp(`^${count}$`) }).waitFor({ timeout: TIMEOUT });
}

async function openRoom(page, name, { join = false } = {}) {
    await page.locator(`#rooms li[data-room="${name}"] button`).first().click();
    if (join)
        await page.locator('#room-join').click();
    await page.locator('#room-leave').waitFor({ state: 'visible', timeout: TIMEOUT });
}

// Holds a finger on the locator's first line, as a phone would
async function longPress(page, locator) {
    const box = await locator.boundingBox();
    const point = { x: Math.round(box.x + box.width / 2), y: Math.round(box.y + 12) };
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [point] });
    await locator.locator('.msg-actions').waitFor({ state: 'visible', timeout: TIMEOUT });
    await page.waitForFunction((seq) => document.querySelector(`li[data-seq="${seq}"]`)?.classList.contains('actions-open'),
        await locator.getAttribute('data-seq'), { timeout: TIMEOUT });
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
    await cdp.detach();
}

function phoneContext(browser, colorScheme) {
    return browser.newContext({ viewport: PHONE, reducedMotion: 'reduce', colorScheme, hasTouch: true });
}

async function noSideways(page) {
    return page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
}

describe('message actions in the web UI', () => {
    const data = tempDir();
    let server;
    let browser;
    let alice;
    let bob;
    let dropChanges = false;        // bob's socket loses edit, delete and reaction events while true
    const consoleErrors = [];

    before(async () => {
        server = await startChatServer({ dataDir: data });
        browser = await launchBrowser();
        alice = await openPage(await newContext(browser), server, consoleErrors);
        await signIn(alice, 'alice', { registering: true });
        const bobContext = await newContext(browser, { colorScheme: 'dark' });
        // Between bob's page and the server: passes everything on, unless told to lose changes
        await bobContext.routeWebSocket(/\/ws$/, (socket) => {
            const upstream = socket.connectToServer();
            socket.onMessage((frame) => upstream.send(frame));
            upstream.onMessage((frame) => {
                if (dropChanges && /"type":"(edit|delete|reaction)"/.test(String(frame)))
                    return;
                socket.send(frame);
            });
        });
        bob = await openPage(bobContext, server, consoleErrors);
        await signIn(bob, 'bob', { registering: true });
    });

    after(() => closeChat({ browser, server, dataDir: data, consoleErrors }));

    it('replies: the quote above the composer, then above the reply on both pages', async () => {
        await createRoom(alice, 'plans');
        await openRoom(bob, 'plans', { join: true });
        await say(alice, 'Lunch at noon?');
        await message(bob, 'Lunch at noon?').waitFor({ timeout: TIMEOUT });

        // Escape in the composer cancels a reply before anything else
        await act(message(bob, 'Lunch at noon?'), 'reply');
        await bob.locator('#composer .reply-bar', { hasText: 'Replying to alice: Lunch at noon?' }).waitFor({ timeout: TIMEOUT });
        assert.equal(await bob.evaluate(() => document.activeElement.id), 'composer-text');
        await bob.locator('#composer-text').press('Escape');
        await bob.locator('#composer .reply-bar').waitFor({ state: 'hidden', timeout: TIMEOUT });
        assert.equal(await bob.evaluate(() => document.activeElement.id), 'composer-text', 'the first Escape only cancels');

        // By keyboard: Tab reaches the message, then its actions
        await message(bob, 'Lunch at noon?').focus();
        await bob.keyboard.press('Tab');
        assert.equal(await bob.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Reply');
        await bob.keyboard.press('Enter');
        await bob.locator('#composer .reply-bar', { hasText: 'Replying to alice' }).waitFor({ timeout: TIMEOUT });
        await say(bob, 'Yes, at the usual place');
        await bob.locator('#composer .reply-bar').waitFor({ state: 'hidden', timeout: TIMEOUT });
        for (const page of [alice, bob]) {
            const quote = message(page, 'Yes, at the usual place').locator('.reply-quote');
            await quote.waitFor({ timeout: TIMEOUT });
            assert.equal(await quote.locator('.reply-from').textContent(), 'alice');
            assert.equal(await quote.locator('.reply-excerpt').textContent(), 'Lunch at noon?');
        }
        // The quote leads to the message it answers
        const target = await message(alice, 'Lunch at noon?').getAttribute('data-seq');
        assert.equal(await message(alice, 'Yes, at the usual place').locator('.reply-quote').getAttribute('data-reply-to'), target);
        await message(alice, 'Yes, at the usual place').locator('.reply-quote').click();
        await alice.locator(`#entries li.flash[data-seq="${target}"]`).waitFor({ timeout: TIMEOUT });
    });

    it('edits in place: Enter saves, Escape cancels, Up edits the last one; "(edited)" on both pages', async () => {
        const lunch = message(alice, 'Lunch at noon?');
        await act(lunch, 'edit');
        const editor = alice.locator('#entries .message-editor textarea');
        await editor.waitFor({ timeout: TIMEOUT });
        assert.equal(await editor.inputValue(), 'Lunch at noon?');
        assert.equal(await alice.evaluate(() => document.activeElement.closest('.message-editor') !== null), true);
        await editor.fill('Lunch at 12:30?');
        await editor.press('Enter');
        for (const page of [alice, bob]) {
            const edited = message(page, 'Lunch at 12:30?');
            await edited.locator('.edited-mark').waitFor({ timeout: TIMEOUT });
            assert.equal(await edited.locator('.edited-mark').textContent(), '(edited)');
            assert.match(await edited.locator('.edited-mark').getAttribute('title'), /^Edited /);
            // The reply's quote follows the edit
            await message(page, 'Yes, at the usual place').locator('.reply-excerpt', { hasText: 'Lunch at 12:30?' })
                .waitFor({ timeout: TIMEOUT });
        }
        assert.equal(await alice.locator('#entries .message-editor').count(), 0);
        assert.equal(await alice.evaluate(() => document.activeElement.id), 'composer-text');

        // Only one's own messages have Edit
        await message(bob, 'Lunch at 12:30?').hover();
        assert.equal(await message(bob, 'Lunch at 12:30?').locator('.msg-edit').count(), 0);
        assert.equal(await message(bob, 'Lunch at 12:30?').locator('.msg-reply').count(), 1);

        // The Up arrow in the empty composer edits one's last message; Escape cancels
        await say(alice, 'See you tehre');
        await alice.locator('#composer-text').press('ArrowUp');
        await editor.waitFor({ timeout: TIMEOUT });
        assert.equal(await editor.inputValue(), 'See you tehre');
        await editor.fill('something else');
        await editor.press('Escape');
        await editor.waitFor({ state: 'detached', timeout: TIMEOUT });
        assert.equal(await message(alice, 'See you tehre').locator('.text').textContent(), 'See you tehre');
        await alice.locator('#composer-text').press('ArrowUp');
        await editor.fill('See you there');
        await editor.press('Enter');
        for (const page of [alice, bob])
            await message(page, 'See you there').locator('.edited-mark').waitFor({ timeout: TIMEOUT });
        // Not when the composer holds a draft
        await alice.locator('#composer-text').fill('a draft');
        await alice.locator('#composer-text').press('ArrowUp');
        assert.equal(await alice.locator('#entries .message-editor').count(), 0);
        await alice.locator('#composer-text').fill('');
    });

    it('reacts from the picker and by typing; a chip toggles the reader\'s own, titled with who', async () => {
        await act(message(bob, 'Lunch at 12:30?'), 'react');
        const picker = bob.locator('#entries .reaction-picker');
        await picker.waitFor({ timeout: TIMEOUT });
        assert.equal(await picker.locator('.reaction-choice').count(), 8);
        await picker.locator('.reaction-choice[aria-label="React with 👍"]').click();
        await picker.waitFor({ state: 'detached', timeout: TIMEOUT });
        for (const page of [alice, bob])
            await waitForChip(message(page, 'Lunch at 12:30?'), '👍', 1);
        assert.deepEqual(await chipState(message(bob, 'Lunch at 12:30?'), '👍'),
            { count: 1, pressed: 'true', title: 'you reacted with 👍' });
        assert.deepEqual(await chipState(message(alice, 'Lunch at 12:30?'), '👍'),
            { count: 1, pressed: 'false', title: 'bob reacted with 👍' });

        // alice adds hers by the chip, then takes it back
        await (await chip(message(alice, 'Lunch at 12:30?'), '👍')).click();
        for (const page of [alice, bob])
            await waitForChip(message(page, 'Lunch at 12:30?'), '👍', 2);
        assert.deepEqual(await chipState(message(alice, 'Lunch at 12:30?'), '👍'),
            { count: 2, pressed: 'true', title: 'bob and you reacted with 👍' });
        assert.equal((await chipState(message(bob, 'Lunch at 12:30?'), '👍')).title, 'you and alice reacted with 👍');
        await (await chip(message(alice, 'Lunch at 12:30?'), '👍')).click();
        for (const page of [alice, bob])
            await waitForChip(message(page, 'Lunch at 12:30?'), '👍', 1);
        assert.equal((await chipState(message(alice, 'Lunch at 12:30?'), '👍')).pressed, 'false');

        // Any emoji, typed; what is not one is refused on the page
        await act(message(alice, 'Yes, at the usual place'), 'react');
        const other = alice.locator('#entries .reaction-picker input');
        await other.fill('a b');
        await other.press('Enter');
        await alice.locator('#entries .reaction-error', { hasText: 'An emoji has no spaces.' }).waitFor({ timeout: TIMEOUT });
        await other.fill('🦀');
        await other.press('Enter');
        for (const page of [alice, bob])
            await waitForChip(message(page, 'Yes, at the usual place'), '🦀', 1);
        // Escape closes the picker without reacting
        await act(message(alice, 'Yes, at the usual place'), 'react');
        await alice.locator('#entries .reaction-picker .reaction-choice').first().press('Escape');
        await alice.locator('#entries .reaction-picker').waitFor({ state: 'detached', timeout: TIMEOUT });

        await screenshot(alice, '55-web-actions-desktop-light');
        await message(bob, 'Lunch at 12:30?').hover();
        await screenshot(bob, '55-web-actions-desktop-dark');
        assert.deepEqual(await seriousViolations(alice), [], 'reactions, quotes and the toolbar');
    });

    it('deletes after a confirm: "message deleted" in place, no actions; the owner may delete anyone\'s', async () => {
        // bob is not the room's owner: no Delete on alice's message
        await message(bob, 'See you there').hover();
        assert.equal(await message(bob, 'See you there').locator('.msg-delete').count(), 0);

        await act(message(alice, 'See you there'), 'delete');
        const dialog = alice.locator('#confirm-modal.show');
        await dialog.waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.locator('#confirm-title').textContent(), 'Delete this message?');
        assert.match(await alice.locator('#confirm-text').textContent(), /“See you there” will show as “message deleted” for everyone/);
        await alice.locator('#confirm-cancel').click();
        await dialog.waitFor({ state: 'detached', timeout: TIMEOUT });
        assert.equal(await message(alice, 'See you there').count(), 1, 'cancelled: still there');

        const seq = await message(alice, 'See you there').getAttribute('data-seq');
        await act(message(alice, 'See you there'), 'delete');
        await dialog.waitFor({ timeout: TIMEOUT });
        await alice.locator('#confirm-ok').click();
        for (const page of [alice, bob]) {
            const gone = page.locator(`#entries li.entry-message.deleted[data-seq="${seq}"]`);
            await gone.waitFor({ timeout: TIMEOUT });
            assert.equal(await gone.locator('.text').textContent(), 'message deleted');
            assert.equal(await gone.locator('.msg-actions, .edited-mark, .reactions').count(), 0);
            assert.equal(await page.locator('#entries', { hasText: 'See you there' }).count(), 0);
        }

        // The owner deletes bob's reply; bob's quote of a deleted message says so
        await say(bob, 'Or at one?');
        await act(message(bob, 'Or at one?'), 'reply');
        await say(bob, 'Either is fine');
        await act(message(alice, 'Or at one?'), 'delete');
        await dialog.waitFor({ timeout: TIMEOUT });
        assert.match(await alice.locator('#confirm-text').textContent(), /The message of bob “Or at one\?”/);
        await alice.locator('#confirm-ok').click();
        for (const page of [alice, bob])
            await message(page, 'Either is fine').locator('.reply-excerpt', { hasText: 'message deleted' })
                .waitFor({ timeout: TIMEOUT });
    });

    it('learns of changes it missed by catching up `after`, and shows history as it is now after a reload', async () => {
        dropChanges = true;
        await act(message(alice, 'Either is fine'), 'react');
        await alice.locator('#entries .reaction-picker .reaction-choice[aria-label="React with 🎉"]').click();
        await waitForChip(message(alice, 'Either is fine'), '🎉', 1);
        await act(message(alice, 'Yes, at the usual place'), 'delete');
        await alice.locator('#confirm-modal.show').waitFor({ timeout: TIMEOUT });
        await alice.locator('#confirm-ok').click();
        await alice.locator('#confirm-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });
        assert.equal(await (await chip(message(bob, 'Either is fine'), '🎉')).count(), 0, 'bob missed the reaction');
        assert.equal(await message(bob, 'Yes, at the usual place').count(), 1, 'and the deletion');
        dropChanges = false;

        // The next entry is two seqs ahead of bob's newest: the gap is fetched with `after`
        await say(alice, 'Booked.');
        await message(bob, 'Booked.').waitFor({ timeout: TIMEOUT });
        await waitForChip(message(bob, 'Either is fine'), '🎉', 1);
        await message(bob, 'Yes, at the usual place').waitFor({ state: 'detached', timeout: TIMEOUT });

        await bob.reload();
        await bob.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: TIMEOUT });
        await openRoom(bob, 'plans');
        await message(bob, 'Booked.').waitFor({ timeout: TIMEOUT });
        assert.equal((await chipState(message(bob, 'Lunch at 12:30?'), '👍')).pressed, 'true');
        assert.equal(await message(bob, 'Lunch at 12:30?').locator('.edited-mark').count(), 1);
        assert.equal(await bob.locator('#entries li.entry-message.deleted').count(), 3);
        assert.equal(await message(bob, 'Either is fine').locator('.reply-excerpt').textContent(), 'message deleted');
        await waitForChip(message(bob, 'Either is fine'), '🎉', 1);
    });

    it('does the same in a private conversation (only the author deletes there)', async () => {
        await alice.locator('#users li[data-user="bob"] .pm-start').click();
        await alice.locator('#pm-title', { hasText: 'bob' }).waitFor({ timeout: TIMEOUT });
        const pmOpts = { composer: '#pm-text', entries: '#pm-entries' };
        await say(alice, 'Are you coming on Friday?', pmOpts);
        await bob.locator('#conversations li[data-with="alice"] button').click();
        const question = () => message(bob, 'Are you coming on Friday?', '#pm-entries');
        await question().waitFor({ timeout: TIMEOUT });

        // bob reacts and replies; he may not delete alice's message
        await question().hover();
        assert.equal(await question().locator('.msg-delete').count(), 0);
        assert.equal(await question().locator('.msg-edit').count(), 0);
        await act(question(), 'react');
        await bob.locator('#pm-entries .reaction-choice[aria-label="React with 👀"]').click();
        await waitForChip(message(alice, 'Are you coming on Friday?', '#pm-entries'), '👀', 1);
        await act(question(), 'reply');
        await bob.locator('#pm-composer .reply-bar', { hasText: 'Replying to alice' }).waitFor({ timeout: TIMEOUT });
        await say(bob, 'I think so', pmOpts);
        await message(alice, 'I think so', '#pm-entries').locator('.reply-excerpt', { hasText: 'Are you coming on Friday?' })
            .waitFor({ timeout: TIMEOUT });

        // alice edits hers with the Up arrow; bob sees it
        await say(alice, 'Bring the slides', pmOpts);
        await alice.locator('#pm-text').press('ArrowUp');
        const editor = alice.locator('#pm-entries .message-editor textarea');
        await editor.fill('Bring the slides, please');
        await editor.press('Enter');
        await message(bob, 'Bring the slides, please', '#pm-entries').locator('.edited-mark').waitFor({ timeout: TIMEOUT });

        // and deletes it; the conversations list says so too
        await act(message(alice, 'Bring the slides, please', '#pm-entries'), 'delete');
        await alice.locator('#confirm-modal.show').waitFor({ timeout: TIMEOUT });
        await alice.locator('#confirm-ok').click();
        for (const page of [alice, bob])
            await page.locator('#pm-entries li.entry-message.deleted').waitFor({ timeout: TIMEOUT });
        await bob.locator('#conversations li[data-with="alice"] .conversation-preview', { hasText: 'message deleted' })
            .waitFor({ timeout: TIMEOUT });
        await screenshot(bob, '55-web-actions-pm-dark');
    });

    it('on a phone: a long press shows the actions, in light and dark, without sideways scrolling', async () => {
        for (const [user, colorScheme] of [['alice', 'light'], ['bob', 'dark']]) {
            const page = await openPage(await phoneContext(browser, colorScheme), server, consoleErrors);
            await signIn(page, user);
            await page.locator('#rooms li[data-room="plans"] button').first().click();
            await page.locator('#room-leave').waitFor({ state: 'visible', timeout: TIMEOUT });
            const lunch = message(page, 'Lunch at 12:30?');
            await lunch.waitFor({ timeout: TIMEOUT });
            await longPress(page, lunch);
            assert.equal(await lunch.locator('.msg-action-label', { hasText: 'Reply' }).isVisible(), true, 'worded on a phone');
            assert.equal(await outsideViewport(lunch.locator('.msg-actions')), 0);
            assert.equal(await noSideways(page), true);
            await screenshot(page, `55-web-actions-phone-${colorScheme}`);
            // A tap elsewhere closes them
            await page.locator('#chat-title').click();
            await page.waitForFunction(() => !document.querySelector('#entries li.actions-open'), null, { timeout: TIMEOUT });
            // Reply, then React: the quote over the composer, the picker in view
            const fine = message(page, 'Either is fine');
            await longPress(page, fine);
            await fine.locator('.msg-reply').click();
            await page.locator('#composer .reply-bar').waitFor({ timeout: TIMEOUT });
            await longPress(page, lunch);
            await lunch.locator('.msg-react').click();
            await page.locator('#entries .reaction-picker').waitFor({ timeout: TIMEOUT });
            assert.equal(await outsideViewport(page.locator('#entries .reaction-picker')), 0);
            assert.equal(await outsideViewport(page.locator('#composer .reply-bar')), 0);
            assert.equal(await noSideways(page), true);
            await screenshot(page, `55-web-actions-phone-picker-${colorScheme}`);
            await page.context().close();
        }
    });
});
