// Browse rooms in headless Chromium (PROTOCOL.md 1.1 "Directory and
// limits"): 211 public rooms, more than the 200 room.list gives, so the list
// says "More public rooms: Browse". The dialog (opened from the Rooms
// header, by mouse and by keyboard) pages through room.directory: the first
// 50 in name order, Load more the next ones (the focus on the first of them);
// typing the start of a name narrows the list after a pause, a name the
// server would refuse is said at the field without asking, and a prefix no
// room has says so. A room dana is banned from shows "Banned" without Join;
// Join from the dialog joins and opens the room, and the dialog then offers
// Open for it. The focus goes back to the opener on Escape.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir } from '../lib/harness.js';
import {
    launchBrowser, startChatServer, closeChat, newContext, openPage, signIn, seriousViolations,
    recordRequests, fourScreenshots, protocolAs, TIMEOUT,
} from '../lib/browser.js';

const WINDOW = { width: 1280, height: 800 };
const pad = (n) => String(n).padStart(3, '0');
const HALLS = Array.from({ length: 60 }, (_, i) => `hall-${pad(i)}`);

// Sends the requests twenty at a time; each must be ok
async function okAll(client, requests) {
    for (let start = 0; start < requests.length; start += 20) {
        const replies = await Promise.all(requests.slice(start, start + 20).map((request) => client.request(request)));
        for (const reply of replies)
            assert.equal(reply.type, 'ok', JSON.stringify(reply));
    }
}

function names(page) {
    return page.locator('#directory-list > li').evaluateAll((items) => items.map((item) => item.dataset.room));
}

async function typeQuery(page, text) {
    await page.locator('#directory-input').fill(text);
}

async function waitForNames(page, expected) {
    await page.waitForFunction((want) => {
        const got = [...document.querySelectorAll('#directory-list > li')].map((item) => item.dataset.room);
        return JSON.stringify(got) === JSON.stringify(want);
    }, expected, { timeout: TIMEOUT });
}

describe('browsing the public rooms in the browser', () => {
    const data = tempDir();
    let server;
    let browser;
    let dana;
    let sent;
    const consoleErrors = [];

    before(async () => {
        server = await startChatServer({ dataDir: data });
        browser = await launchBrowser();
    });

    after(() => closeChat({ browser, server, dataDir: data, consoleErrors }));

    it('211 public rooms: the list says there are more, Browse opens the dialog with the first 50 by name', async () => {
        const owners = [];
        try {
            for (const name of ['owner1', 'owner2', 'owner3'])
                owners.push(await protocolAs(server, name, { registering: true }));
            const reader = await protocolAs(server, 'dana', { registering: true });
            owners.push(reader);
            await okAll(owners[0], HALLS.map((room, i) => ({
                type: 'room.create', room, description: `Hall number ${i}`, max_participants: 20 + i })));
            await okAll(owners[0], [{ type: 'room.create', room: 'hall-banned', description: 'Closed to dana' }]);
            await okAll(owners[0], [{ type: 'room.kick', room: 'hall-banned', user: 'dana', ban: true }]);
            for (const [index, owner] of [owners[1], owners[2]].entries())
                await okAll(owner, Array.from({ length: 75 }, (_, i) => ({
                    type: 'room.create', room: `zeta-${index}${pad(i)}` })));
        } finally {
            for (const client of owners)
                await client.close();
        }

        dana = await openPage(await newContext(browser, WINDOW), server, consoleErrors);
        sent = recordRequests(dana);
        await signIn(dana, 'dana');
        await dana.locator('#rooms-more').waitFor({ state: 'visible', timeout: TIMEOUT });
        assert.equal(await dana.locator('#rooms > li').count(), 200, 'room.list gives 200 public rooms');

        await dana.locator('#rooms-browse').click();
        await dana.locator('#directory-modal.show').waitFor({ timeout: TIMEOUT });
        await waitForNames(dana, HALLS.slice(0, 50));
        assert.equal(await dana.evaluate(() => document.activeElement?.id), 'directory-input', 'the focus is in the search field');
        const first = dana.locator('#directory-list li[data-room="hall-003"]');
        assert.match(await first.innerText(), /hall-003[\s\S]*Hall number 3[\s\S]*1 \/ 23/);
        await first.getByRole('button', { name: 'Join hall-003' }).waitFor({ timeout: TIMEOUT });
        assert.equal(await dana.locator('#directory-more').isVisible(), true, 'Load more');
        assert.equal(await dana.locator('#directory-list .lock-icon').count(), 0, 'no padlock: every room is public');
        assert.deepEqual(await seriousViolations(dana), [], 'the Browse rooms dialog');
        await fourScreenshots(dana, '65-web-directory');
    });

    it('Load more appends the next page, the focus on its first room; the banned room shows Banned and no Join', async () => {
        await dana.locator('#directory-more').click();
        const expected = [...HALLS, 'hall-banned', ...Array.from({ length: 39 }, (_, i) => `zeta-0${pad(i)}`)];
        await waitForNames(dana, expected);
        assert.equal(await dana.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Join hall-050');
        const banned = dana.locator('#directory-list li[data-room="hall-banned"]');
        await banned.locator('.banned-badge').waitFor({ timeout: TIMEOUT });
        assert.equal(await banned.locator('button').count(), 0, 'no Join for a room dana is banned from');
        assert.equal(await banned.getAttribute('data-banned'), 'true');
        const pages = sent.filter((request) => request.type === 'room.directory');
        assert.equal(pages.length, 2);
        assert.ok(pages[1].cursor, 'the second page asks with the cursor');
    });

    it('typing the start of a name narrows the list; a bad name is said without asking; no match says so', async () => {
        await typeQuery(dana, 'HALL-05');
        await waitForNames(dana, HALLS.slice(50));
        assert.equal(await dana.locator('#directory-more').isVisible(), false, 'no more to load');
        assert.equal(sent.filter((request) => request.type === 'room.directory').at(-1).query, 'HALL-05');

        const asked = sent.length;
        await typeQuery(dana, 'hall 0!');
        await dana.locator('#directory-input-error', { hasText: 'only letters, digits' }).waitFor({ timeout: TIMEOUT });
        assert.equal(await dana.locator('#directory-input').getAttribute('aria-invalid'), 'true');
        assert.equal(await dana.locator('#directory-list > li').count(), 0);
        await dana.waitForTimeout(500);
        assert.equal(sent.slice(asked).filter((request) => request.type === 'room.directory').length, 0, 'nothing asked');

        await typeQuery(dana, 'nowhere');
        await dana.locator('#directory-status', { hasText: 'No public room starts with “nowhere”.' }).waitFor({ timeout: TIMEOUT });
        assert.equal(await dana.locator('#directory-input').getAttribute('aria-invalid'), 'false');

        // rate_limited says when to try again (from retry_after_ms)
        const said = await dana.evaluate(async () => {
            const { directoryProblem } = await import('/room-directory.js');
            return [directoryProblem({ code: 'rate_limited', message: 'Slow down.', frame: { retry_after_ms: 2500 } }),
                directoryProblem({ code: 'rate_limited', message: 'Slow down.', frame: {} })];
        });
        assert.deepEqual(said, ['Too many requests: try again in 3 seconds.', 'Too many requests: try again in a moment.']);

        await typeQuery(dana, 'hall-b');
        await waitForNames(dana, ['hall-banned']);
        assert.deepEqual(await seriousViolations(dana), [], 'a banned room in the dialog');
        await fourScreenshots(dana, '65-web-directory-banned');
    });

    it('Join joins and opens the room, the dialog closes; opened again by keyboard it offers Open, Escape gives the focus back', async () => {
        await typeQuery(dana, 'hall-00');
        await waitForNames(dana, HALLS.slice(0, 10));
        await dana.getByRole('button', { name: 'Join hall-007' }).click();
        await dana.locator('#directory-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });
        await dana.locator('#chat-title', { hasText: 'hall-007' }).waitFor({ timeout: TIMEOUT });
        await dana.locator('#room-leave').waitFor({ state: 'visible', timeout: TIMEOUT });
        await dana.locator('#rooms li[data-room="hall-007"][data-joined="true"]').waitFor({ timeout: TIMEOUT });
        await dana.waitForFunction(() => document.activeElement?.id === 'composer-text', null, { timeout: TIMEOUT });
        assert.equal(sent.filter((request) => request.type === 'room.join').at(-1).room, 'hall-007');

        // By keyboard: Tab reaches Browse, Enter opens the dialog
        await dana.locator('#rooms-browse').focus();
        await dana.keyboard.press('Enter');
        await dana.locator('#directory-modal.show').waitFor({ timeout: TIMEOUT });
        await dana.waitForFunction(() => document.activeElement?.id === 'directory-input', null, { timeout: TIMEOUT });
        await dana.keyboard.type('hall-007');
        await waitForNames(dana, ['hall-007']);
        const joined = dana.locator('#directory-list li[data-room="hall-007"]');
        await joined.locator('.directory-joined').waitFor({ timeout: TIMEOUT });
        assert.equal(await joined.getByRole('button', { name: 'Open hall-007' }).count(), 1);
        assert.equal(await joined.locator('.directory-join').count(), 0);
        await dana.keyboard.press('Escape');
        await dana.locator('#directory-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });
        await dana.waitForFunction(() => document.activeElement?.id === 'rooms-browse', null, { timeout: TIMEOUT });
        await dana.locator('#rooms-more').scrollIntoViewIfNeeded();
        await fourScreenshots(dana, '65-web-directory-list');

        // The note under the list opens it too; Open goes to the room
        await dana.locator('#rooms-more-browse').click();
        await dana.locator('#directory-modal.show').waitFor({ timeout: TIMEOUT });
        await typeQuery(dana, 'hall-007');
        await waitForNames(dana, ['hall-007']);
        await dana.getByRole('button', { name: 'Open hall-007' }).click();
        await dana.locator('#directory-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });
        await dana.locator('#chat-title', { hasText: 'hall-007' }).waitFor({ timeout: TIMEOUT });
    });
});
