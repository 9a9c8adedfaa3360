// Search in headless Chromium (PROTOCOL.md 1.1 "Search"): alice's page opens
// the search with Ctrl+/ (or the header's search box, also on a phone),
// finds messages of her rooms and conversations grouped by where they are,
// with the words the server matched highlighted (case and accents ignored,
// `word*` as a prefix, nothing anyone wrote parsed as HTML), never those of a
// room she left, only the room on screen when asked, more results on
// request, and says when nothing matches or the query has no word. A result
// opens its room at the message: an old one, far beyond the first page,
// shown in the middle and highlighted; the room is not marked read while the
// newest messages are not on screen, what arrives meanwhile is counted, and
// scrolling down (or Jump to newest) brings the timeline back to the present
// without a hole, where it is read and live again. Keys: ↓ Enter Escape.
// Screenshots at desktop and phone width, light and dark.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir, eventually } from '../lib/harness.js';
import {
    launchBrowser, startChatServer, closeChat, newContext, openPage, signIn, seriousViolations, protocolAs,
    recordRequests, fourScreenshots, outsideViewport, chatPluginArgs, screenshot, TIMEOUT,
} from '../lib/browser.js';

const WINDOW = { width: 1280, height: 800 };
const FILLER = 60;                  // alice's messages after the old one: it is two pages back
const NEWS = 60;                    // bob's after hers: unread for alice
const ZEBRAS = 25;                  // matches of one word: more than a page of results
const PM_NEWS = 60;                 // bob's private messages after the one searched for

// Waits until fn() holds, and fails the test when it never does
async function until(fn, what, timeoutMs = TIMEOUT, stepMs = 50) {
    assert.ok(await eventually(fn, timeoutMs, stepMs), `never: ${what}`);
}

async function ok(client, fields) {
    const reply = await client.request(fields);
    assert.equal(reply.type, 'ok', `${fields.type}: ${JSON.stringify(reply)}`);
    return reply;
}

function badge(page, room) {
    return page.locator(`#rooms li[data-room="${room}"] .unread-badge`);
}

async function unread(page, room) {
    const node = badge(page, room);
    return await node.count() === 0 ? 0 : Number.parseInt(await node.textContent(), 10);
}

// The unread total in the tab's title (the room on screen has no badge)
async function totalUnread(page) {
    return Number((await page.title()).match(/^\((\d+)\)/)?.[1] ?? 0);
}

function results(page) {
    return page.locator('#search-results .search-result');
}

// Types the query and waits for its answer (the results say which query
// they answer, and whether a page is on its way)
async function searchFor(page, query, count) {
    await page.locator('#search-input').fill(query);
    const box = page.locator(`#search-results[data-query="${query}"][aria-busy="false"]`);
    await box.waitFor({ state: 'attached', timeout: TIMEOUT });
    assert.equal(await results(page).count(), count, `results of ${query}`);
}

async function openSearch(page) {
    await page.keyboard.press('Control+/');
    await page.locator('#search-modal.show').waitFor({ timeout: TIMEOUT });
    await until(async () => await page.evaluate(() => document.activeElement?.id) === 'search-input', 'the focus in the box');
}

// The seqs of the timeline on screen, in order
function seqsOnScreen(page, entries = '#entries') {
    return page.$$eval(`${entries} li.entry[data-seq]`, (items) => items.map((item) => Number(item.dataset.seq)));
}

function roomReads(sent, room) {
    return sent.filter((request) => request.type === 'room.read' && request.room === room).map((request) => request.seq);
}

describe('search in the browser', () => {
    const data = tempDir();
    let server;
    let browser;
    let page;
    let sent;
    let alicePc;
    let bobPc;
    let oldSeq;             // alice's old message in history
    let lastSeq;            // the newest entry of history
    const changeSeqs = [];  // the edit and reaction entries of history (not drawn as such)
    const consoleErrors = [];

    before(async () => {
        server = await startChatServer({ dataDir: data, args: [...chatPluginArgs(['search']), '--option', 'rooms.msg_rate=0',
            '--option', 'pm.msg_rate=0'] });
        browser = await launchBrowser();
    });

    after(async () => {
        alicePc?.close();
        bobPc?.close();
        await closeChat({ browser, server, dataDir: data, consoleErrors });
    });

    it('alice has an old message two pages back, unread news, a conversation and a room she left', async () => {
        alicePc = await protocolAs(server, 'alice', { registering: true });
        bobPc = await protocolAs(server, 'bob', { registering: true });
        await ok(alicePc, { type: 'room.create', room: 'history' });
        await ok(bobPc, { type: 'room.join', room: 'history' });
        oldSeq = (await ok(alicePc, { type: 'msg.send', room: 'history',
            text: 'Kickoff: the Zürich meeting notes are in the wiki' })).seq;
        for (let index = 1; index <= FILLER; index++)
            await ok(alicePc, { type: 'msg.send', room: 'history', text: `filler ${index}` });
        await ok(bobPc, { type: 'msg.send', room: 'history',
            text: '<img src=x onerror="window.pwned = 1"> zurich <b>not bold</b>' });
        for (let index = 1; index <= NEWS; index++)
            lastSeq = (await ok(bobPc, { type: 'msg.send', room: 'history', text: `news ${index}` })).seq;

        await ok(bobPc, { type: 'room.create', room: 'gone' });
        await ok(alicePc, { type: 'room.join', room: 'gone' });
        await ok(alicePc, { type: 'msg.send', room: 'gone', text: 'zurich in a room alice leaves' });
        await ok(alicePc, { type: 'room.leave', room: 'gone' });

        await ok(alicePc, { type: 'room.create', room: 'zoo' });
        for (let index = 1; index <= ZEBRAS; index++)
            await ok(alicePc, { type: 'msg.send', room: 'zoo', text: `zebra number ${index}` });
        await ok(alicePc, { type: 'msg.send', room: 'zoo', text: 'Привет! École, ÉCOLE, ecoles and 東京タワー' });
        await ok(bobPc, { type: 'pm.send', to: 'alice', text: 'See you in ZURICH tomorrow' });
        for (let index = 1; index <= PM_NEWS; index++)
            await ok(bobPc, { type: 'pm.send', to: 'alice', text: `pm news ${index}` });
    });

    it('Ctrl+/ opens the search: results grouped, the matched words highlighted, nothing of a room left', async () => {
        page = await openPage(await newContext(browser, WINDOW), server, consoleErrors);
        sent = recordRequests(page);
        await signIn(page, 'alice');
        await until(async () => await unread(page, 'history') === NEWS + 1, 'the unread news counted');

        await openSearch(page);
        await searchFor(page, 'zurich', 3);
        const titles = await page.locator('.search-group-title').allTextContents();
        assert.deepEqual(titles.sort(), ['#history', 'Conversation with bob']);
        const marks = await page.locator('#search-results mark.search-hit').allTextContents();
        assert.deepEqual(marks.sort(), ['ZURICH', 'Zürich', 'zurich'], 'case and accents ignored');
        assert.equal(await page.locator('#search-results img, #search-results b').count(), 0, 'no HTML from a message');
        assert.equal(await page.locator('#search-results .search-result', { hasText: '<img src=x' }).count(), 1);
        assert.equal(await page.evaluate(() => window.pwned), undefined);
        assert.equal(await page.locator('#search-results', { hasText: 'leaves' }).count(), 0, 'a room left');
        const requests = sent.filter((request) => request.type === 'search');
        assert.deepEqual(requests.map(({ query, room, with: other }) => ({ query, room, with: other })),
            [{ query: 'zurich', room: undefined, with: undefined }]);
        const own = page.locator('.search-result', { hasText: 'Kickoff' });
        assert.equal(await own.locator('.search-from').textContent(), 'You');
        assert.match(await own.locator('time').getAttribute('datetime'), /^\d{4}-\d\d-\d\dT/);
        assert.deepEqual(await seriousViolations(page), [], 'the search dialog');

        // A trailing * is a prefix; without it a word matches whole words only
        await searchFor(page, 'MEET*', 1);
        assert.deepEqual(await page.locator('#search-results mark').allTextContents(), ['meeting']);
        await searchFor(page, 'meet', 0);
        assert.match(await page.locator('#search-status').textContent(), /No messages match “meet”/);
        // Other scripts, and the same words the server matched: not "ecoles"
        await searchFor(page, 'привет ecole 東京タワー', 1);
        assert.deepEqual(await page.locator('#search-results mark').allTextContents(),
            ['Привет', 'École', 'ÉCOLE', '東京タワー']);

        // A query with no word is said here, not sent
        const before = sent.filter((request) => request.type === 'search').length;
        await page.locator('#search-input').fill('*** ?');
        await page.locator('#search-status', { hasText: 'Type a word' }).waitFor({ timeout: TIMEOUT });
        assert.equal(sent.filter((request) => request.type === 'search').length, before);
        assert.equal(await results(page).count(), 0);

        // The server's refusal is said (more than 16 words)
        await searchFor(page, 'one two three four five six seven eight nine ten eleven twelve 13 14 15 16 17', 0);
        assert.equal(await page.locator('#search-status.text-danger').count(), 1);
        assert.equal(await page.locator('#search-retry').count(), 0, 'nothing to try again');
    });

    it('more results by next and cursor', async () => {
        await searchFor(page, 'zebra', 20);
        await page.locator('#search-more').click();
        await until(async () => await results(page).count() === ZEBRAS, 'every zebra');
        assert.equal(await page.locator('#search-more').isVisible(), false);
        const requests = sent.filter((request) => request.type === 'search' && request.query === 'zebra');
        assert.equal(requests.length, 2);
        assert.equal(typeof requests[1].cursor, 'string');
        const numbers = (await page.locator('.search-result .search-text').allTextContents())
            .map((text) => Number(text.split(' ').at(-1)));
        assert.deepEqual(numbers, Array.from({ length: ZEBRAS }, (_, index) => ZEBRAS - index), 'newest first, none twice');
    });

    it('↓ and Enter open the room at the old message: shown, highlighted, and the room not read', async () => {
        await searchFor(page, 'kickoff zurich', 1);
        await page.locator('#search-input').press('ArrowDown');
        assert.equal(await page.evaluate(() => document.activeElement?.classList.contains('search-result')), true);
        await page.keyboard.press('Enter');
        await page.locator('#search-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });
        await page.locator('#chat-title', { hasText: 'history' }).waitFor({ timeout: TIMEOUT });
        const target = page.locator(`#entries li.entry-message[data-seq="${oldSeq}"]`);
        await target.waitFor({ timeout: TIMEOUT });
        assert.equal(await outsideViewport(target), 0, 'the message is in view');
        assert.equal(await page.locator(`#entries li.entry-message.flash[data-seq="${oldSeq}"]`).count(), 1, 'highlighted');
        await screenshot(page, '58-web-search-opened-at');

        const seqs = await seqsOnScreen(page);
        assert.ok(seqs.at(-1) < lastSeq, 'the newest entries are not loaded');
        assert.equal(await page.locator('#entries li.timeline-newer').count(), 1);
        assert.equal(await page.locator('#timeline-jump').isVisible(), true);
        await page.waitForTimeout(500);
        assert.deepEqual(roomReads(sent, 'history'), [], 'nothing marked read from the past');
        assert.equal(await totalUnread(page), NEWS + 1 + 1 + PM_NEWS, 'the news and the private messages still unread');

        // A message arriving now is counted, not put after the window
        lastSeq = (await ok(bobPc, { type: 'msg.send', room: 'history', text: 'news while away' })).seq;
        await until(async () => await totalUnread(page) === NEWS + 2 + 1 + PM_NEWS, 'the message that came counted');
        assert.equal(await page.locator('#entries li', { hasText: 'news while away' }).count(), 0);

        // Changes of a message the window shows apply at once
        const edit = await ok(alicePc, { type: 'msg.edit', room: 'history', seq: oldSeq,
            text: 'Kickoff: the Zürich meeting notes are in the new wiki' });
        const react = await ok(bobPc, { type: 'msg.react', room: 'history', seq: oldSeq, emoji: '👍' });
        changeSeqs.push(edit.seq, react.seq);
        lastSeq = react.seq;
        await target.locator('.text', { hasText: 'new wiki' }).waitFor({ timeout: TIMEOUT });
        await target.locator('.reaction-chip[data-emoji="👍"] .reaction-count', { hasText: /^1$/ })
            .waitFor({ timeout: TIMEOUT });
        assert.deepEqual(roomReads(sent, 'history'), []);
        assert.equal(await totalUnread(page), NEWS + 2 + 1 + PM_NEWS);

        // Up in the composer edits one's newest message, which a window does not
        // show: the old message of one's own on screen is not taken for it
        await page.locator('#composer-text').focus();
        await page.keyboard.press('ArrowUp');
        await page.waitForTimeout(300);
        assert.equal(await page.locator('#entries .message-editor').count(), 0, 'no editor opened in the past');
    });

    it('scrolling down loads the newer pages up to the present, without a hole, then the room is read and live', async () => {
        await until(async () => {
            await page.locator('#timeline').evaluate((box) => { box.scrollTop = box.scrollHeight; });
            return await page.locator('#entries li.timeline-newer').count() === 0;
        }, 'the present reached by scrolling down', TIMEOUT * 2, 300);
        await page.locator('#entries li.entry-message', { hasText: 'news while away' }).waitFor({ timeout: TIMEOUT });
        const seqs = [...await seqsOnScreen(page), ...changeSeqs].sort((a, b) => a - b);
        assert.equal(seqs.at(-1), lastSeq);
        assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, index) => seqs[0] + index), 'no hole');
        // The changes that came with the pages were not applied a second time
        const old = page.locator(`#entries li.entry-message[data-seq="${oldSeq}"]`);
        assert.equal(await old.locator('.reaction-chip[data-emoji="👍"] .reaction-count').textContent(), '1');
        assert.match(await old.locator('.text').textContent(), /new wiki/);
        await until(async () => roomReads(sent, 'history').includes(lastSeq), 'room.read of the newest');
        await until(async () => await totalUnread(page) === 1 + PM_NEWS, 'the room read (the private messages are not)');

        lastSeq = (await ok(bobPc, { type: 'msg.send', room: 'history', text: 'live again' })).seq;
        await page.locator('#entries li.entry-message', { hasText: 'live again' }).waitFor({ timeout: TIMEOUT });
        await until(async () => roomReads(sent, 'history').includes(lastSeq), 'room.read of a live message');
        assert.equal(await page.locator('#timeline-jump').isVisible(), false);
    });

    it('the toggle restricts to the room on screen; Escape closes; Jump to newest leaves the past', async () => {
        await page.locator('#search-open').click();
        await page.locator('#search-modal.show').waitFor({ timeout: TIMEOUT });
        assert.equal(await page.locator('#search-scope-label').textContent(), 'Only in #history');
        await page.locator('#search-scope').check();
        await searchFor(page, 'zurich', 2);
        assert.deepEqual(await page.locator('.search-group-title').allTextContents(), ['#history']);
        const scoped = sent.filter((request) => request.type === 'search').at(-1);
        assert.equal(scoped.room, 'history');
        assert.equal(scoped.with, undefined);

        await page.keyboard.press('Escape');
        await page.locator('#search-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });
        assert.equal(await page.evaluate(() => document.activeElement?.id), 'search-open', 'the focus goes back');

        // The timeline holds the old message now (scrolled down to the present): no window is needed
        await openSearch(page);
        await searchFor(page, 'kickoff', 1);
        await results(page).first().click();
        await page.locator(`#entries li.entry-message.flash[data-seq="${oldSeq}"]`).waitFor({ timeout: TIMEOUT });
        assert.equal(await page.locator('#entries li.timeline-newer').count(), 0);
        assert.equal(await outsideViewport(page.locator(`#entries li[data-seq="${oldSeq}"]`)), 0);

        // After a reload the room reopens at its newest page; the old message opens as a window again
        await page.reload();
        await page.locator('#chat-title', { hasText: 'history' }).waitFor({ timeout: TIMEOUT });
        await page.locator('#entries li.entry-message', { hasText: 'live again' }).waitFor({ timeout: TIMEOUT });
        await openSearch(page);
        assert.equal(await page.locator('#search-scope').isChecked(), false, 'everywhere, after a reload');
        await searchFor(page, 'kickoff', 1);
        await results(page).first().click();
        await page.locator(`#entries li.entry-message[data-seq="${oldSeq}"]`).waitFor({ timeout: TIMEOUT });
        await page.locator('#entries li.timeline-newer').waitFor({ timeout: TIMEOUT });
        await page.locator('#timeline-jump').click();
        await page.locator('#entries li.entry-message', { hasText: 'live again' }).waitFor({ timeout: TIMEOUT });
        assert.equal(await page.locator('#entries li.timeline-newer').count(), 0);
        assert.equal(await page.locator(`#entries li[data-seq="${oldSeq}"]`).count(), 0, 'the newest page only');
        assert.equal(await page.locator('#timeline-jump').isVisible(), false);
    });

    it('a result of a conversation opens it at the message, not read until its newest messages are shown', async () => {
        await openSearch(page);
        await searchFor(page, 'zurich tomorrow', 1);
        const seq = Number(await results(page).first().getAttribute('data-seq'));
        await results(page).first().click();
        await page.locator('#pm-view').waitFor({ state: 'visible', timeout: TIMEOUT });
        await page.locator('#pm-title', { hasText: 'bob' }).waitFor({ timeout: TIMEOUT });
        await page.locator(`#pm-entries li.entry-message.flash[data-seq="${seq}"]`).waitFor({ timeout: TIMEOUT });
        await page.locator('#pm-entries li.timeline-newer').waitFor({ timeout: TIMEOUT });
        await page.waitForTimeout(500);
        const pmReads = () => sent.filter((request) => request.type === 'pm.read');
        assert.deepEqual(pmReads(), [], 'nothing marked read from the past');
        assert.equal(await totalUnread(page), 1 + PM_NEWS);

        await page.locator('#pm-jump').click();
        await page.locator('#pm-entries li.entry-message', { hasText: `pm news ${PM_NEWS}` }).waitFor({ timeout: TIMEOUT });
        await until(async () => pmReads().length === 1, 'pm.read of the newest');
        assert.equal(pmReads()[0].seq, seq + PM_NEWS);
        await until(async () => await totalUnread(page) === 0, 'the conversation read');
    });

    it('on a phone the search box is an icon in the header; screenshots light and dark', async () => {
        const phone = await openPage(await newContext(browser, { width: 390, height: 844 }), server, consoleErrors);
        await signIn(phone, 'alice');
        const button = phone.locator('#search-open');
        assert.equal(await button.isVisible(), true);
        assert.equal(await outsideViewport(button), 0, 'the search button fits the phone header');
        assert.equal(await outsideViewport(phone.locator('#logout')), 0, 'and so does Log out');
        const heights = await phone.$$eval('#search-open, #logout', (nodes) => nodes.map((node) => node.getBoundingClientRect().height));
        assert.ok(Math.abs(heights[0] - heights[1]) < 4, `one line each: ${heights}`);
        await button.click();
        await phone.locator('#search-modal.show').waitFor({ timeout: TIMEOUT });
        await searchFor(phone, 'zurich', 3);
        await fourScreenshots(phone, '58-web-search-results', { back: { width: 390, height: 844 } });
        await results(phone).filter({ hasText: 'Kickoff' }).click();
        await phone.locator(`#entries li.entry-message[data-seq="${oldSeq}"]`).waitFor({ timeout: TIMEOUT });
        assert.equal(await phone.locator('#chat-view').isVisible(), true, 'the chat takes the phone screen');
        await fourScreenshots(phone, '58-web-search-window', { back: { width: 390, height: 844 } });
        assert.deepEqual(await seriousViolations(phone), [], 'a timeline opened at a message');
        await phone.context().close();
    });
});
