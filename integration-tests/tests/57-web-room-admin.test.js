// Room administration in headless Chromium (PROTOCOL.md 1.1 "Room
// administration"): alice owns a room that bob has joined and carol only
// sees. alice's settings dialog (checked on the page first) changes the
// description, the size and makes the room private: bob's header and list
// follow, the timeline says so, and the room leaves carol's list. Then alice
// removes and bans bob from the members panel, after a confirmation: the room
// leaves bob's list with a notice that says who removed him, and he cannot
// join it again. Banned from a public room, bob sees it listed "Banned" (its
// reason in the title and in words) in place of "join", and opened without
// Join; a ban he was not told of makes his Join fail with the server's
// sentence, then the room is marked; unbanned, it is a room to join again.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir } from '../lib/harness.js';
import {
    launchBrowser, screenshot, startChatServer, closeChat, newContext, openPage, signIn, seriousViolations,
    recordRequests, createRoom, fourScreenshots, protocolAs, TIMEOUT,
} from '../lib/browser.js';

const WINDOW = { width: 1280, height: 800 };

function roomItem(page, name) {
    return page.locator(`#rooms li[data-room="${name}"]`);
}

function notice(page, text) {
    return page.locator('#entries li.entry-system', { hasText: text });
}

describe('room administration in the browser', () => {
    const data = tempDir();
    let server;
    let browser;
    let alice;
    let bob;
    let carol;
    let aliceSent;              // the requests of alice's page
    const consoleErrors = [];

    before(async () => {
        server = await startChatServer({ dataDir: data });
        browser = await launchBrowser();
    });

    after(() => closeChat({ browser, server, dataDir: data, consoleErrors }));

    it('alice owns a room that bob joins and carol sees', async () => {
        alice = await openPage(await newContext(browser, WINDOW), server, consoleErrors);
        aliceSent = recordRequests(alice);
        await signIn(alice, 'alice', { registering: true });
        bob = await openPage(await newContext(browser, WINDOW), server, consoleErrors);
        await signIn(bob, 'bob', { registering: true });
        carol = await openPage(await newContext(browser, { width: 390, height: 844 }), server, consoleErrors);
        await signIn(carol, 'carol', { registering: true });
        await createRoom(alice, 'club', { description: 'Old rules.' });
        await roomItem(bob, 'club').locator('button.room-item').click();
        await bob.locator('#room-join').click();
        await bob.locator('#room-leave').waitFor({ state: 'visible', timeout: TIMEOUT });
        await roomItem(carol, 'club').waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.locator('#room-settings').isVisible(), true, 'the owner has the settings');
        assert.equal(await bob.locator('#room-settings').isVisible(), false, 'a member has not');
        assert.equal(await bob.locator('#members .member-remove').count(), 0, 'nor Remove');
        await alice.locator('#members li[data-user="bob"] .member-remove').waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.locator('#members li[data-user="alice"] .member-remove').count(), 0, 'never the owner');
    });

    it('the settings dialog checks what it can, then changes the room for everyone', async () => {
        const updates = () => aliceSent.filter((request) => request.type === 'room.update')
            .map(({ id, sentAt, ...rest }) => rest);
        await alice.locator('#room-settings').click();
        await alice.locator('#room-settings-modal.show').waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.locator('#settings-description').inputValue(), 'Old rules.');
        assert.equal(await alice.locator('#settings-private').isChecked(), false);
        assert.equal(await alice.locator('#settings-max').inputValue(), '50');
        assert.equal(await alice.evaluate(() => document.activeElement?.id), 'settings-description');
        assert.deepEqual(await seriousViolations(alice), [], 'the settings dialog');

        // Too long a description, too small a room: said at the field, nothing sent
        await alice.locator('#settings-description').fill('x'.repeat(501));
        await alice.locator('#settings-max').fill('1');
        await alice.locator('#room-settings-submit').click();
        assert.match(await alice.locator('#settings-description-error').textContent(), /at most 500/);
        assert.match(await alice.locator('#settings-max-error').textContent(), /from 2 to 10000/);
        assert.deepEqual(updates(), []);

        await alice.locator('#settings-description').fill('New rules: be kind.');
        await alice.locator('#settings-max').fill('20');
        await alice.locator('#settings-private').check();
        await fourScreenshots(alice, '57-web-room-settings');
        await alice.locator('#room-settings-submit').click();
        await alice.locator('#room-settings-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });
        assert.deepEqual(updates(), [
            { type: 'room.update', room: 'club', description: 'New rules: be kind.', private: true, max_participants: 20 },
        ]);

        // bob, a member, sees the new header and list entry, and the notice
        await bob.locator('#chat-description', { hasText: 'New rules: be kind.' }).waitFor({ timeout: TIMEOUT });
        await bob.locator('#chat-facts', { hasText: 'Private room · 2 of at most 20 members' }).waitFor({ timeout: TIMEOUT });
        await roomItem(bob, 'club').locator('.room-item-description', { hasText: 'New rules' }).waitFor({ timeout: TIMEOUT });
        await roomItem(bob, 'club').locator('.lock-icon').waitFor({ timeout: TIMEOUT });
        for (const page of [alice, bob])
            await notice(page, 'alice has changed the settings of the room club.').waitFor({ timeout: TIMEOUT });
        await alice.locator('#chat-description', { hasText: 'New rules: be kind.' }).waitFor({ timeout: TIMEOUT });
        // carol is no member: the room, private now, leaves her list
        await roomItem(carol, 'club').waitFor({ state: 'detached', timeout: TIMEOUT });
    });

    it('alice removes and bans bob after a confirmation: his list loses the room, a notice says who did it', async () => {
        await alice.locator('#members li[data-user="bob"] .member-remove').click();
        await alice.locator('#confirm-modal.show').waitFor({ timeout: TIMEOUT });
        assert.match(await alice.locator('#confirm-title').textContent(), /Remove bob from club\?/);
        assert.equal(await alice.locator('#confirm-ok').textContent(), 'Remove');
        await alice.locator('#confirm-option-check').check();
        assert.equal(await alice.locator('#confirm-ok').textContent(), 'Remove and ban');
        assert.deepEqual(await seriousViolations(alice), [], 'the remove dialog');
        await screenshot(alice, '57-web-kick-confirm');
        await alice.locator('#confirm-ok').click();
        await alice.locator('#confirm-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });

        const removed = 'bob has been removed from the room club by alice.';
        await notice(alice, removed).waitFor({ timeout: TIMEOUT });
        await alice.locator('#members li[data-user="bob"]').waitFor({ state: 'detached', timeout: TIMEOUT });

        // bob had it open: the entry, then the notice in his own words, and no composer
        await notice(bob, removed).waitFor({ timeout: TIMEOUT });
        await bob.locator('#entries li.entry-deleted', { hasText: 'You have been removed from the room club by alice.' })
            .waitFor({ timeout: TIMEOUT });
        await roomItem(bob, 'club').waitFor({ state: 'detached', timeout: TIMEOUT });
        assert.equal(await bob.locator('#composer-text').isDisabled(), true);
        assert.equal(await bob.locator('#composer-text').getAttribute('placeholder'), 'You are no longer a member.');
        await bob.locator('#room-gone-back').waitFor({ state: 'visible', timeout: TIMEOUT });
        assert.deepEqual(await seriousViolations(bob), [], 'removed from the room');
        await fourScreenshots(bob, '57-web-kicked');

        // Banned: joining by name is refused, and the room stays out of his list
        await bob.locator('#room-gone-back').click();
        await bob.locator('#join-name').fill('club');
        await bob.locator('#join-name-submit').click();
        await bob.locator('#join-name-error').filter({ hasText: /\S/ }).waitFor({ timeout: TIMEOUT });
        assert.equal(await roomItem(bob, 'club').count(), 0);
    });

    it('alice unbans bob from the settings dialog and invites him again: he joins', async () => {
        await alice.locator('#room-settings').click();
        await alice.locator('#room-settings-modal.show').waitFor({ timeout: TIMEOUT });
        await alice.locator('#settings-unban-submit').click();
        assert.match(await alice.locator('#settings-unban-feedback').textContent(), /Enter the name/);
        await alice.locator('#settings-unban').fill('bob');
        await alice.locator('#settings-unban').press('Enter');
        await alice.locator('#settings-unban-feedback', { hasText: 'bob is not banned from club: they may join again once invited.' })
            .waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.locator('#room-settings-modal').isVisible(), true, 'Enter unbans; the dialog stays');
        assert.deepEqual(aliceSent.filter((request) => request.type === 'room.unban').map(({ room, user }) => ({ room, user })),
            [{ room: 'club', user: 'bob' }]);
        await alice.keyboard.press('Escape');
        await alice.locator('#room-settings-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });

        await alice.locator('#invite-user').fill('bob');
        await alice.locator('#invite-submit').click();
        await alice.locator('#invite-feedback', { hasText: 'bob is invited' }).waitFor({ timeout: TIMEOUT });
        const invited = bob.locator('#rooms li[data-room="club"][data-invited="true"]');
        await invited.waitFor({ timeout: TIMEOUT });
        const toast = bob.locator('#toasts .toast', { hasText: 'alice invited you to the room club.' });
        await toast.waitFor({ state: 'visible', timeout: TIMEOUT });
        await invited.locator('.invite-join').click();
        await bob.locator('#room-leave').waitFor({ state: 'visible', timeout: TIMEOUT });
        await alice.locator('#members li[data-user="bob"]').waitFor({ timeout: TIMEOUT });
        // Joined from the list: the invitation's toast and the refusal of his
        // join by name (above) are moot, and go
        await toast.waitFor({ state: 'detached', timeout: TIMEOUT });
        assert.equal(await bob.locator('#join-name-error').textContent(), '');
        assert.equal(await bob.locator('#join-name').inputValue(), '');
    });
    it('bob, banned from a public room, sees it marked Banned instead of join, and no Join button in it', async () => {
        const BANNED = 'You were banned from this room';
        await createRoom(alice, 'plaza');
        await roomItem(bob, 'plaza').locator('button.room-item').click();
        await bob.locator('#room-join').click();
        await bob.locator('#room-leave').waitFor({ state: 'visible', timeout: TIMEOUT });
        await alice.locator('#members li[data-user="bob"] .member-remove').click();
        await alice.locator('#confirm-modal.show').waitFor({ timeout: TIMEOUT });
        await alice.locator('#confirm-option-check').check();
        await alice.locator('#confirm-ok').click();
        await alice.locator('#confirm-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });

        // The room comes back to bob's list, public: Banned where "join" was, with its reason
        await bob.locator('#entries li.entry-deleted', { hasText: 'You have been removed from the room plaza by alice.' })
            .waitFor({ timeout: TIMEOUT });
        const item = roomItem(bob, 'plaza');
        await item.locator('.banned-badge').waitFor({ timeout: TIMEOUT });
        assert.equal(await item.getAttribute('data-banned'), 'true');
        assert.equal(await item.locator('.banned-badge').getAttribute('title'), BANNED);
        assert.equal(await item.locator('.not-joined').count(), 0, 'no "join"');
        assert.equal(await item.locator('.invite-join').count(), 0, 'no Join button');
        // A screen reader hears why, not only "Banned"
        assert.match(await item.locator('button.room-item').textContent(), /Banned: you were banned from this room/);

        // Opened from the keyboard: the badge stands where Join would, and the room says why
        await bob.locator('#room-gone-back').click();
        await item.locator('button.room-item').focus();
        await bob.keyboard.press('Enter');
        await bob.locator('#room-banned').waitFor({ state: 'visible', timeout: TIMEOUT });
        assert.equal(await bob.locator('#room-join').isVisible(), false, 'no Join');
        assert.equal(await bob.locator('#room-banned').getAttribute('title'), BANNED);
        assert.match(await bob.locator('#timeline-notice').textContent(), /You were banned from this room/);
        assert.match(await bob.locator('#chat-facts').textContent(), /you were banned from it/);
        assert.equal(await bob.locator('#composer-text').isDisabled(), true);
        assert.equal(await bob.locator('#composer-text').getAttribute('placeholder'), 'You were banned from this room.');
        assert.equal(await bob.locator('#members-note').textContent(), 'Only members see who is here.', 'no "Join the room"');
        assert.deepEqual(await seriousViolations(bob), [], 'a room one is banned from');
        await fourScreenshots(bob, '57-web-banned');

        // Nobody else sees bob's ban: carol may join
        const other = roomItem(carol, 'plaza');
        await other.locator('.not-joined').waitFor({ timeout: TIMEOUT });
        assert.equal(await other.locator('.banned-badge').count(), 0);
        assert.equal(await other.getAttribute('data-banned'), 'false');

        // Joining by name: the server's sentence, as before
        await bob.locator('#join-name').fill('plaza');
        await bob.locator('#join-name-submit').click();
        await bob.locator('#join-name-error', { hasText: "You are banned from the room 'plaza'." }).waitFor({ timeout: TIMEOUT });
    });

    it('a ban bob was not told of: his Join is refused with the reason, then the room is marked; unbanned, he may join', async () => {
        const admin = await protocolAs(server, 'alice');
        try {
            assert.equal((await admin.request({ type: 'room.create', room: 'yard' })).type, 'ok');
            const item = roomItem(bob, 'yard');
            await item.locator('.not-joined').waitFor({ timeout: TIMEOUT });
            // A ban of a non-member tells nobody: bob's list still offers the room
            assert.equal((await admin.request({ type: 'room.kick', room: 'yard', user: 'bob', ban: true })).type, 'ok');
            await item.locator('button.room-item').click();
            await bob.locator('#room-join').click();
            const refused = bob.locator('#chat-error', { hasText: "You are banned from the room 'yard'." });
            await refused.waitFor({ timeout: TIMEOUT });
            // The list asked again marks it; the sentence stays until bob moves on
            await item.locator('.banned-badge').waitFor({ timeout: TIMEOUT });
            await bob.locator('#room-banned').waitFor({ state: 'visible', timeout: TIMEOUT });
            await bob.locator('#timeline-notice', { hasText: 'You were banned from this room' }).waitFor({ timeout: TIMEOUT });
            assert.equal(await bob.locator('#members-note').textContent(), 'Only members see who is here.');
            assert.equal(await bob.locator('#room-join').isVisible(), false);
            assert.equal(await refused.isVisible(), true);
            await screenshot(bob, '57-web-banned-join-refused');

            // Unbanned: nobody is told either; the next list shows a room to join
            assert.equal((await admin.request({ type: 'room.unban', room: 'yard', user: 'bob' })).type, 'ok');
            await bob.reload();
            await bob.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: TIMEOUT });
            await item.locator('.not-joined').waitFor({ timeout: TIMEOUT });
            assert.equal(await item.locator('.banned-badge').count(), 0);
            assert.equal(await item.getAttribute('data-banned'), 'false');
            assert.equal(await roomItem(bob, 'plaza').locator('.banned-badge').count(), 1, 'still banned from plaza');
            await item.locator('button.room-item').click();
            await bob.locator('#room-join').click();
            await bob.locator('#room-leave').waitFor({ state: 'visible', timeout: TIMEOUT });
        } finally {
            await admin.close();
        }
    });
});
