// The rooms dashboard in headless Chromium, with two or three people in their
// own browser contexts: creating a room, seeing it appear live, joining,
// chatting both ways, leaving, deleting, the full-room and private-room
// refusals, invitations, and scroll-back through older history.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startParley, tempDir, Client, sleep, eventually } from '../lib/harness.js';
import {
    launchBrowser, screenshot, chatPluginArgs, closeChat, newContext, openPage, signIn, protocolAs, PASSWORD, TIMEOUT,
} from '../lib/browser.js';

// rooms alone (loaded by name on a build from before it was a default plugin)
async function startServer(dataDir) {
    return startParley({ dataDir, args: chatPluginArgs(['rooms']), withExample: false });
}

function roomItem(page, name) {
    return page.locator(`#rooms li[data-room="${name}"]`);
}

async function createRoom(page, { name, description = '', isPrivate = false, max = null }) {
    await page.locator('#room-new').click();
    await page.locator('#create-room-modal.show').waitFor({ timeout: TIMEOUT });
    await page.locator('#room-name').fill(name);
    await page.locator('#room-description').fill(description);
    if (isPrivate)
        await page.locator('#room-private').check();
    if (max !== null)
        await page.locator('#room-max').fill(String(max));
    await page.locator('#create-room-submit').click();
    await page.locator('#create-room-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });
    await page.locator('#chat-title', { hasText: name }).waitFor({ timeout: TIMEOUT });
}

async function openRoom(page, name) {
    await roomItem(page, name).locator('button').click();
    await page.locator('#chat-title', { hasText: name }).waitFor({ timeout: TIMEOUT });
}

async function joinOpenRoom(page) {
    await page.locator('#room-join').click();
    await page.locator('#room-leave').waitFor({ state: 'visible', timeout: TIMEOUT });
}

function notice(page, text) {
    return page.locator('#entries li.entry-system', { hasText: text });
}

function message(page, text) {
    return page.locator('#entries li.entry-message', { hasText: text });
}

async function say(page, text) {
    await page.locator('#composer-text').fill(text);
    await page.locator('#composer-text').press('Enter');
    await message(page, text).waitFor({ timeout: TIMEOUT });
}

// A protocol client signed in as an existing user, for setting up what the UI
describe('the rooms dashboard', () => {
    const data = tempDir();
    let server;
    let browser;
    const pages = {};
    const consoleErrors = [];

    before(async () => {
        server = await startServer(data);
        browser = await launchBrowser();
        for (const name of ['alice', 'bob', 'carol']) {
            const page = await openPage(await newContext(browser, { height: 760 }), server, consoleErrors);
            await signIn(page, name, { registering: true });
            pages[name] = page;
        }
        // dave never opens a browser: he asks the server for its refusals
        const dave = await Client.connect(server.url);
        const reply = await dave.request({ type: 'auth.register', username: 'dave', password: PASSWORD });
        assert.equal(reply.type, 'ok');
        await dave.close();
    });

    after(() => closeChat({ browser, server, dataDir: data, consoleErrors }));

    it('checks the create-room form, then alice creates a room and bob sees it appear live', async () => {
        const { alice, bob } = pages;
        await alice.locator('#chat-placeholder').waitFor({ state: 'visible', timeout: TIMEOUT });
        await screenshot(alice, '22-web-rooms-empty');

        await alice.locator('#room-new').click();
        await alice.locator('#create-room-modal.show').waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.evaluate(() => document.activeElement?.id), 'room-name');
        assert.equal(await alice.locator('#room-max').inputValue(), '50');
        await alice.locator('#room-name').fill('no spaces allowed');
        await alice.locator('#room-description').fill('x'.repeat(501));
        await alice.locator('#room-max').fill('1');
        await alice.locator('#create-room-submit').click();
        await alice.locator('#room-name.is-invalid').waitFor({ timeout: TIMEOUT });
        assert.match(await alice.locator('#room-name-error').textContent(), /1 to 64/);
        assert.match(await alice.locator('#room-description-error').textContent(), /at most 500/);
        assert.match(await alice.locator('#room-max-error').textContent(), /2 to 10000/);
        assert.equal(await alice.locator('#room-description-count').textContent(), '501 / 500');
        await screenshot(alice, '22-web-rooms-create-invalid');
        await alice.locator('#create-room-modal .btn-close').click();
        await alice.locator('#create-room-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });

        await createRoom(alice, { name: 'lobby', description: 'Where everyone meets.' });
        await roomItem(alice, 'lobby').locator('.joined-badge').waitFor({ timeout: TIMEOUT });
        assert.ok(await alice.locator('#room-delete').isVisible(), 'the owner may delete');

        // bob did nothing: the room arrives by the create event
        await roomItem(bob, 'lobby').waitFor({ timeout: TIMEOUT });
        assert.equal(await roomItem(bob, 'lobby').getAttribute('data-joined'), 'false');
        assert.match(await roomItem(bob, 'lobby').textContent(), /1 \/ 50/);

        // The server's own sentence for a name that is taken, shown under the field
        await alice.locator('#room-new').click();
        await alice.locator('#create-room-modal.show').waitFor({ timeout: TIMEOUT });
        await alice.locator('#room-name').fill('LOBBY');
        await alice.locator('#create-room-submit').click();
        await alice.locator('#room-name.is-invalid').waitFor({ timeout: TIMEOUT });
        const probe = await protocolAs(server, 'dave');
        const taken = await probe.request({ type: 'room.create', room: 'LOBBY' });
        await probe.close();
        assert.equal(taken.code, 'room_exists');
        assert.equal((await alice.locator('#room-name-error').textContent()).trim(), taken.message);
        await screenshot(alice, '22-web-rooms-create-taken');
        await alice.keyboard.press('Escape');
        await alice.locator('#create-room-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });
    });

    it('bob joins, both see the notice styled apart, and they chat both ways', async () => {
        const { alice, bob } = pages;
        await openRoom(bob, 'lobby');
        assert.equal(await bob.locator('#composer-text').isDisabled(), true, 'not a member: no composer');
        assert.equal(await bob.locator('#room-delete').isVisible(), false, 'only the owner deletes');
        await joinOpenRoom(bob);

        const joined = 'bob has joined the room lobby.';
        await notice(bob, joined).waitFor({ timeout: TIMEOUT });
        await notice(alice, joined).waitFor({ timeout: TIMEOUT });
        const style = await notice(alice, joined).evaluate((node) => {
            const css = getComputedStyle(node);
            return { align: css.textAlign, self: css.alignSelf };
        });
        assert.deepEqual(style, { align: 'center', self: 'center' });
        await alice.locator('#members li[data-user="bob"][data-online="true"]').waitFor({ timeout: TIMEOUT });
        await roomItem(alice, 'lobby').filter({ hasText: '2 / 50' }).waitFor({ timeout: TIMEOUT });

        await say(alice, 'hello bob');
        await message(bob, 'hello bob').waitFor({ timeout: TIMEOUT });
        await say(bob, 'hi alice, nice room');
        await message(alice, 'hi alice, nice room').waitFor({ timeout: TIMEOUT });
        assert.equal(await message(alice, 'hello bob').evaluate((node) => node.classList.contains('own')), true);
        assert.equal(await message(alice, 'hi alice').evaluate((node) => node.classList.contains('own')), false);
        assert.match(await message(alice, 'hi alice').textContent(), /bob/);
        assert.equal(await alice.locator('#composer-text').inputValue(), '');
        assert.match(await alice.locator('#chat-announcer').textContent(), /bob: hi alice/);
        await screenshot(alice, '22-web-rooms-chat-alice');
        await screenshot(bob, '22-web-rooms-chat-bob');
    });

    it('bob leaves and alice sees it; alice deletes the room and bob sees it go', async () => {
        const { alice, bob } = pages;
        await bob.locator('#room-leave').click();
        // Back to the room list, the focus on the room just left
        await bob.locator('#chat-placeholder').waitFor({ state: 'visible', timeout: TIMEOUT });
        await roomItem(bob, 'lobby').and(bob.locator('[data-joined="false"]')).waitFor({ timeout: TIMEOUT });
        assert.equal(await bob.evaluate(() => document.activeElement?.closest('li')?.dataset.room), 'lobby');
        await notice(alice, 'bob has left the room lobby.').waitFor({ timeout: TIMEOUT });
        await alice.locator('#members li[data-user="bob"]').waitFor({ state: 'detached', timeout: TIMEOUT });

        // bob looks at the room again, without joining, when alice deletes it
        await openRoom(bob, 'lobby');
        await alice.locator('#room-delete').click();
        await alice.locator('#confirm-modal.show').waitFor({ timeout: TIMEOUT });
        assert.match(await alice.locator('#confirm-text').textContent(), /lobby/);
        await screenshot(alice, '22-web-rooms-delete-confirm');
        await alice.locator('#confirm-ok').click();
        await alice.locator('#confirm-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });
        // The owner is back at the room list, not at a dead end
        await alice.locator('#chat-placeholder').waitFor({ state: 'visible', timeout: TIMEOUT });
        await roomItem(alice, 'lobby').waitFor({ state: 'detached', timeout: TIMEOUT });
        await alice.waitForFunction(() => document.activeElement?.id === 'rooms-title', null, { timeout: TIMEOUT });

        await roomItem(bob, 'lobby').waitFor({ state: 'detached', timeout: TIMEOUT });
        await notice(bob, 'The room lobby has been deleted.').waitFor({ timeout: TIMEOUT });
        assert.equal(await bob.locator('#room-join').isVisible(), false);
        await screenshot(bob, '22-web-rooms-deleted-bob');
        // and a way back
        await bob.locator('#room-gone-back').click();
        await bob.locator('#chat-placeholder').waitFor({ state: 'visible', timeout: TIMEOUT });
    });

    it('refuses a third user in a room for two, with the server\'s message', async () => {
        const { alice, bob, carol } = pages;
        await createRoom(alice, { name: 'duo', max: 2 });
        await roomItem(bob, 'duo').waitFor({ timeout: TIMEOUT });
        await openRoom(bob, 'duo');
        await joinOpenRoom(bob);

        const probe = await protocolAs(server, 'dave');
        const full = await probe.request({ type: 'room.join', room: 'duo' });
        await probe.close();
        assert.equal(full.code, 'room_full');

        await openRoom(carol, 'duo');
        await carol.locator('#room-join').click();
        await carol.locator('#chat-error', { hasText: full.message }).waitFor({ timeout: TIMEOUT });
        assert.equal(await carol.locator('#composer-text').isDisabled(), true);
        assert.equal(await roomItem(carol, 'duo').getAttribute('data-joined'), 'false');
        await screenshot(carol, '22-web-rooms-full');
    });

    it('refuses a private room without an invitation, and lets carol in once alice invites her', async () => {
        const { alice, carol } = pages;
        await createRoom(alice, { name: 'secret', description: 'Invitation only.', isPrivate: true });
        await alice.locator('#invite-form').waitFor({ state: 'visible', timeout: TIMEOUT });
        assert.equal(await roomItem(carol, 'secret').count(), 0, 'a private room is not listed to others');

        const probe = await protocolAs(server, 'dave');
        const refused = await probe.request({ type: 'room.join', room: 'secret' });
        await probe.close();
        assert.equal(refused.code, 'forbidden');

        await carol.locator('#join-name').fill('secret');
        await carol.locator('#join-name-submit').click();
        await carol.locator('#join-name-error', { hasText: refused.message }).waitFor({ timeout: TIMEOUT });
        // A refused join by name opens no room page
        assert.equal(await carol.locator('#chat-title', { hasText: 'secret' }).count(), 0);
        await screenshot(carol, '22-web-rooms-private-refused');

        await alice.locator('#invite-user').fill('carol');
        await alice.locator('#invite-submit').click();
        await alice.locator('#invite-feedback', { hasText: /carol is invited/ }).waitFor({ timeout: TIMEOUT });

        const toast = carol.locator('#toasts .toast', { hasText: 'alice invited you to the room secret.' });
        await toast.waitFor({ state: 'visible', timeout: TIMEOUT });
        await screenshot(carol, '22-web-rooms-invited');
        await toast.locator('.toast-action').click();
        await carol.locator('#room-leave').waitFor({ state: 'visible', timeout: TIMEOUT });
        // The refusal of her join by name (above) went with the join
        assert.equal(await carol.locator('#join-name-error').textContent(), '');
        assert.equal(await carol.locator('#join-name').inputValue(), '');
        await notice(carol, 'carol has joined the room secret.').waitFor({ timeout: TIMEOUT });
        await notice(alice, 'carol has joined the room secret.').waitFor({ timeout: TIMEOUT });
        await roomItem(carol, 'secret').locator('.joined-badge').waitFor({ timeout: TIMEOUT });
        await say(carol, 'thanks for the invitation');
        await message(alice, 'thanks for the invitation').waitFor({ timeout: TIMEOUT });
        await alice.locator('#members li[data-user="carol"]').waitFor({ timeout: TIMEOUT });
        await screenshot(alice, '22-web-rooms-private-alice');
    });

    it('loads older history when scrolled to the top', async () => {
        const { alice } = pages;
        await createRoom(alice, { name: 'archive' });
        // 120 messages from a second session of alice's, faster than typing
        const writer = await protocolAs(server, 'alice');
        for (let n = 1; n <= 120; n++) {
            let reply = await writer.request({ type: 'msg.send', room: 'archive', text: `note ${n}` });
            // Past the per-user rate, wait a little and send again
            for (let retry = 0; reply.code === 'rate_limited' && retry < 50; retry++) {
                await sleep(100);
                reply = await writer.request({ type: 'msg.send', room: 'archive', text: `note ${n}` });
            }
            assert.equal(reply.type, 'ok', JSON.stringify(reply));
        }
        await writer.close();
        await message(alice, 'note 120').waitFor({ timeout: TIMEOUT });

        // A fresh view of the room: only the newest page
        await alice.reload();
        await alice.locator('#dashboard-view').waitFor({ state: 'visible', timeout: TIMEOUT });
        await openRoom(alice, 'archive');
        await message(alice, 'note 120').waitFor({ timeout: TIMEOUT });
        const firstPage = await alice.locator('#entries li[data-seq]').count();
        assert.equal(firstPage, 50);
        assert.equal(await alice.locator('#entries li[data-seq="1"]').count(), 0);

        // Scrolling to the top fetches the page before the oldest, until the first entry
        for (let round = 0; round < 10; round++) {
            if (await alice.locator('#entries li[data-seq="1"]').count() > 0)
                break;
            const before = await alice.locator('#entries li[data-seq]').count();
            await alice.locator('#timeline').evaluate((box) => { box.scrollTop = 0; });
            await alice.waitForFunction((count) => document.querySelectorAll('#entries li[data-seq]').length > count,
                before, { timeout: TIMEOUT });
        }
        await alice.locator('#entries li[data-seq="1"]').waitFor({ timeout: TIMEOUT });
        const seqs = await alice.locator('#entries li[data-seq]').evaluateAll((nodes) =>
            nodes.map((node) => Number(node.dataset.seq)));
        // Every entry once, in seq order, with no gap
        assert.ok(seqs.length >= 120);
        assert.deepEqual(seqs, seqs.map((_, index) => index + 1));
        await alice.locator('#timeline-top', { hasText: 'The beginning of the room.' }).waitFor({ timeout: TIMEOUT });
        await screenshot(alice, '22-web-rooms-scrollback');
    });

    it('fits a phone screen: the list, then the chat with a back button', async () => {
        const { bob } = pages;
        await bob.setViewportSize({ width: 390, height: 844 });
        await bob.locator('#chat-back').click();
        await bob.locator('#rooms').waitFor({ state: 'visible', timeout: TIMEOUT });
        assert.equal(await bob.locator('#chat-view').isVisible(), false, 'the list or the chat, one at a time');
        await openRoom(bob, 'duo');
        await bob.locator('#rooms').waitFor({ state: 'hidden', timeout: TIMEOUT });
        const overflow = await bob.evaluate(() =>
            document.documentElement.scrollWidth - document.documentElement.clientWidth);
        assert.equal(overflow, 0, 'the dashboard fits a 390 px screen');
        await screenshot(bob, '22-web-rooms-phone-chat');
        await bob.locator('#chat-back').click();
        await bob.locator('#rooms').waitFor({ state: 'visible', timeout: TIMEOUT });
        await screenshot(bob, '22-web-rooms-phone-list');
    });
    it('a room list the server made before a deletion does not bring the room back', async () => {
        // erin's page holds back the answers to room.list while asked, as a
        // slow network would: a list from before the deletion arrives after it
        const context = await newContext(browser);
        const held = [];
        let holding = false;
        await context.routeWebSocket(/\/ws$/, (route) => {
            const server = route.connectToServer();
            const lists = new Set();
            route.onMessage((text) => {
                const frame = JSON.parse(text);
                if (frame.type === 'room.list')
                    lists.add(frame.id);
                server.send(text);
            });
            server.onMessage((text) => {
                const frame = JSON.parse(text);
                if (holding && lists.has(frame.id))
                    held.push(() => route.send(text));
                else
                    route.send(text);
            });
        });
        const erin = await openPage(context, server, consoleErrors);
        await signIn(erin, 'erin', { registering: true });
        await createRoom(erin, { name: 'fleeting' });

        // dave joins: erin's page asks for the list again, and the answer waits
        holding = true;
        const dave = await protocolAs(server, 'dave');
        assert.equal((await dave.request({ type: 'room.join', room: 'fleeting' })).type, 'ok');
        assert.ok(await eventually(async () => held.length > 0, TIMEOUT), 'no room.list was asked');
        await erin.locator('#room-delete').click();
        await erin.locator('#confirm-ok').click();
        await roomItem(erin, 'fleeting').waitFor({ state: 'detached', timeout: TIMEOUT });
        holding = false;
        for (const release of held.splice(0))
            release();
        // The old list is answered, then a newer one: the room stays gone
        await dave.request({ type: 'room.create', room: 'afterwards' });
        await roomItem(erin, 'afterwards').waitFor({ timeout: TIMEOUT });
        await sleep(1000);
        assert.equal(await roomItem(erin, 'fleeting').count(), 0);
        await dave.close();
        await context.close();
    });
});
