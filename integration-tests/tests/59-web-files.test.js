// Files in headless Chromium with two people, alice and bob (PROTOCOL.md 1.1
// "Files"): an image pasted into alice's composer is uploaded, sent with her
// words and shown inline to bob in a box reserved before the image arrived
// (nothing below it moves when it does), a click opens it full size; a file
// chosen with the paper clip is a download link for bob whose bytes are the
// file's, whatever its name holds; a file dropped on a conversation; the
// upload's progress (on a throttled network) with Cancel, and the errors of a
// file too large for the server, of a full quota and of a server out of
// reach; an edited message keeps its file, a deleted one loses it (and the
// server the file).
// Screenshots at desktop and phone width, light and dark.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { tempDir, eventually } from '../lib/harness.js';
import {
    launchBrowser, screenshot, startChatServer, closeChat, newContext, openPage, signIn, seriousViolations,
    recordRequests, createRoom, fourScreenshots, chatPluginArgs, TIMEOUT,
} from '../lib/browser.js';

const WINDOW = { width: 1280, height: 800 };
const MAX_UPLOAD = 1048576;         // files.max_upload for this server: 1 MiB
const QUOTA = 2621440;              // files.quota: 2.5 MiB a user (alice's uploads here come to about 2 MiB)

// A message by its own text (not the text it quotes)
function message(page, text, entries = '#entries') {
    return page.locator(`${entries} li.entry-message:not(.pending)`)
        .filter({ has: page.locator(':scope > .entry-body > .text', { hasText: text }) });
}

// A message by the file it carries
function withFile(page, name, entries = '#entries') {
    return page.locator(`${entries} li.entry-message:not(.pending)`)
        .filter({ has: page.locator('.attachment .attachment-name', { hasText: name }) });
}

async function openRoom(page, name, { join = false } = {}) {
    await page.locator(`#rooms li[data-room="${name}"] button`).first().click();
    if (join)
        await page.locator('#room-join').click();
    await page.locator('#room-leave').waitFor({ state: 'visible', timeout: TIMEOUT });
}

// A PNG drawn by the page itself (width x height), pasted into the composer
// as a screenshot tool's clipboard would hold it: a file, no text
async function pasteImage(page, { width, height, input = '#composer-text' }) {
    await page.evaluate(async ({ width, height, input }) => {
        const canvas = new OffscreenCanvas(width, height);
        const draw = canvas.getContext('2d');
        const gradient = draw.createLinearGradient(0, 0, width, height);
        gradient.addColorStop(0, '#1d5fbf');
        gradient.addColorStop(1, '#f0b429');
        draw.fillStyle = gradient;
        draw.fillRect(0, 0, width, height);
        draw.fillStyle = '#ffffff';
        draw.font = `${Math.round(height / 5)}px sans-serif`;
        draw.fillText('Parley', width / 10, height / 2);
        const blob = await canvas.convertToBlob({ type: 'image/png' });
        const data = new DataTransfer();
        data.items.add(new File([blob], 'image.png', { type: 'image/png' }));
        document.querySelector(input).dispatchEvent(new ClipboardEvent('paste', {
            clipboardData: data, bubbles: true, cancelable: true,
        }));
    }, { width, height, input });
}

// Drops a file (its bytes as base64) on an element, as a file manager would
async function dropFile(page, selector, { name, type, bytes }) {
    await page.evaluate(({ selector, name, type, base64 }) => {
        const raw = Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([raw], name, { type }));
        const target = document.querySelector(selector);
        for (const kind of ['dragenter', 'dragover', 'drop'])
            target.dispatchEvent(new DragEvent(kind, { dataTransfer: data, bubbles: true, cancelable: true }));
    }, { selector, name, type, base64: bytes.toString('base64') });
}

// The paper clip, then the file chooser it opens
async function chooseFile(page, { name, type, bytes, button = '#composer-attach' }) {
    const [chooser] = await Promise.all([page.waitForEvent('filechooser', { timeout: TIMEOUT }),
        page.locator(button).click()]);
    await chooser.setFiles({ name, mimeType: type, buffer: bytes });
}

async function uploadReady(page, tray = '#composer-upload') {
    await page.locator(`${tray}[data-status="ready"]`).waitFor({ timeout: TIMEOUT });
}

describe('files in the browser', () => {
    const data = tempDir();
    let server;
    let browser;
    let alice;
    let bob;
    let aliceSent;
    let imageUrl;
    const consoleErrors = [];
    const report = randomBytes(150 * 1024);
    // Markup in a name stays text
    const reportName = 'Q3 <img src=x onerror=alert(1)> & "plan".bin';

    before(async () => {
        server = await startChatServer({
            dataDir: data, args: [...chatPluginArgs(['files']), '--option', `files.max_upload=${MAX_UPLOAD}`,
                '--option', `files.quota=${QUOTA}`],
        });
        browser = await launchBrowser();
    });

    after(() => closeChat({ browser, server, dataDir: data, consoleErrors }));

    it('alice and bob share a room', async () => {
        alice = await openPage(await newContext(browser, WINDOW), server, consoleErrors);
        aliceSent = recordRequests(alice);
        await signIn(alice, 'alice', { registering: true });
        bob = await openPage(await newContext(browser, WINDOW), server, consoleErrors);
        await signIn(bob, 'bob', { registering: true });
        await createRoom(alice, 'files');
        await openRoom(bob, 'files', { join: true });
        // Enough messages that the timeline scrolls: a jump would show
        for (let index = 1; index <= 12; index++) {
            await alice.locator('#composer-text').fill(`warm-up ${index}`);
            await alice.locator('#composer-text').press('Enter');
        }
        await message(bob, 'warm-up 12').waitFor({ timeout: TIMEOUT });
    });

    it('a pasted image goes with the words typed, through the outbox, and shows inline for bob without a jump', async () => {
        // bob's browser holds the image back, so that its box is measured before it comes
        let release;
        const held = new Promise((resolve) => { release = resolve; });
        await bob.route('**/files/*', async (route) => {
            await held;
            await route.continue();
        });
        await alice.locator('#composer-text').fill('look at this');
        await pasteImage(alice, { width: 640, height: 360 });
        await uploadReady(alice);
        assert.match(await alice.locator('#composer-upload .upload-name').textContent(), /^image\.png$/);
        assert.ok(await alice.locator('#composer-upload .upload-thumb img').count() === 1, 'a thumbnail of the image');
        await alice.locator('#composer-text').press('Enter');
        await alice.locator('#composer-upload').waitFor({ state: 'hidden', timeout: TIMEOUT });

        const item = message(bob, 'look at this');
        await item.waitFor({ timeout: TIMEOUT });
        const sends = aliceSent.filter((request) => request.type === 'msg.send' && request.file);
        assert.equal(sends.length, 1, 'one msg.send with a file');
        assert.equal(sends[0].text, 'look at this');
        assert.equal(sends[0].room, 'files');
        assert.match(sends[0].nonce, /^[A-Za-z0-9_-]{1,64}$/, 'a nonce protects the send');
        assert.match(sends[0].file, /^[A-Za-z0-9_-]{22,}$/);
        const image = item.locator('img.attachment-img');
        await image.waitFor({ state: 'attached', timeout: TIMEOUT });
        imageUrl = new URL(await image.getAttribute('src'), server.http).href;
        assert.equal(new URL(imageUrl).pathname, `/files/${sends[0].file}`);
        assert.equal(await image.getAttribute('alt'), 'image.png');
        assert.equal(await image.evaluate((node) => node.naturalWidth), 0, 'not loaded yet');
        const measure = () => bob.evaluate(() => {
            const box = document.querySelector('#entries img.attachment-img').closest('li').getBoundingClientRect();
            return { height: Math.round(box.height), width: Math.round(box.width) };
        });
        const before = await measure();
        assert.ok(before.height > 150, `the box is reserved before the image (${before.height} px)`);
        release();
        await bob.waitForFunction(() => document.querySelector('#entries img.attachment-img')?.naturalWidth === 640,
            null, { timeout: TIMEOUT });
        assert.deepEqual(await measure(), before, 'the message keeps its size when the image arrives');
        await bob.unroute('**/files/*');

        // The sender sees the same, from the ok of its send
        await message(alice, 'look at this').locator('img.attachment-img').waitFor({ timeout: TIMEOUT });

        // A click opens it full size; Escape closes it
        await image.click();
        await bob.locator('#image-viewer.show').waitFor({ timeout: TIMEOUT });
        await bob.waitForFunction(() => document.querySelector('#image-viewer .image-viewer-img')?.naturalWidth === 640,
            null, { timeout: TIMEOUT });
        assert.equal(await bob.locator('#image-viewer-title').textContent(), 'image.png');
        assert.deepEqual(await seriousViolations(bob), [], 'the image viewer');
        await screenshot(bob, '59-web-files-viewer');
        await bob.keyboard.press('Escape');
        await bob.locator('#image-viewer').waitFor({ state: 'hidden', timeout: TIMEOUT });
    });

    it('an image that did not load says so, and comes with Try again', async () => {
        // bob's browser cannot reach the file at first
        await bob.route('**/files/*', (route) => route.abort());
        await alice.locator('#composer-text').fill('second look');
        await pasteImage(alice, { width: 320, height: 240 });
        await uploadReady(alice);
        await alice.locator('#composer-text').press('Enter');
        const item = message(bob, 'second look');
        await item.locator('.attachment-image.broken .attachment-missing', { hasText: 'Image unavailable' })
            .waitFor({ timeout: TIMEOUT });
        await item.scrollIntoViewIfNeeded();
        await screenshot(bob, '59-web-files-image-unavailable');
        await bob.unroute('**/files/*');
        // The browser's own line for the load that failed, and that one only
        const failed = consoleErrors.findIndex((text) => /ERR_FAILED/.test(text));
        assert.ok(failed >= 0, consoleErrors.join('\n'));
        consoleErrors.splice(failed, 1);
        await item.locator('.attachment-retry').click();
        await item.locator('.attachment-image.broken').waitFor({ state: 'detached', timeout: TIMEOUT });
        await bob.waitForFunction(() => [...document.querySelectorAll('#entries img.attachment-img')]
            .some((image) => image.naturalWidth === 320), null, { timeout: TIMEOUT });
        assert.equal(await item.locator('.attachment-retry').count(), 0);

        // Gone again, so that the one image of the room is the first one
        const mine = message(alice, 'second look');
        await mine.hover();
        await mine.locator('.msg-delete').click();
        await alice.locator('#confirm-modal.show').waitFor({ timeout: TIMEOUT });
        await alice.locator('#confirm-ok').click();
        await bob.locator('#entries li.entry-message.deleted').first().waitFor({ timeout: TIMEOUT });
        await eventually(async () => await item.locator('img.attachment-img').count() === 0, TIMEOUT);
    });

    it('a file chosen with the paper clip is a download link whose bytes are the file', async () => {
        await chooseFile(alice, { name: reportName, type: 'application/octet-stream', bytes: report });
        await uploadReady(alice);
        // No words: the file alone is the message
        await alice.locator('#composer-send').click();
        const item = withFile(bob, 'Q3 <img');
        await item.waitFor({ timeout: TIMEOUT });
        const link = item.locator('a.attachment-file');
        assert.equal(await link.locator('.attachment-name').textContent(), reportName, 'the name as text');
        assert.equal(await bob.locator('#entries img[src="x"]').count(), 0, 'no markup from the name');
        assert.equal(await link.locator('.attachment-size').textContent(), '150 KB');
        assert.equal(await item.locator('img').count(), 0, 'not an image');
        const [download] = await Promise.all([bob.waitForEvent('download', { timeout: TIMEOUT }), link.click()]);
        // The browser makes a name a file system takes of it (<, >, " become _)
        assert.match(download.suggestedFilename(), /^Q3 .*plan.*\.bin$/, 'its name');
        const saved = readFileSync(await download.path());
        assert.equal(saved.length, report.length);
        assert.ok(saved.equals(report), 'the bytes downloaded are the bytes uploaded');
    });

    it('the upload shows its progress and can be cancelled; a file too large and a server out of reach say so', async () => {
        // A slow upload: the network of alice's page throttled to 200 KB/s
        const cdp = await alice.context().newCDPSession(alice);
        await cdp.send('Network.enable');
        await cdp.send('Network.emulateNetworkConditions',
            { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 200 * 1024 });
        const big = randomBytes(900 * 1024);
        await chooseFile(alice, { name: 'slow.bin', type: 'application/octet-stream', bytes: big });
        await alice.waitForFunction(() => {
            const value = Number(document.querySelector('#composer-upload .upload-progress')?.getAttribute('aria-valuenow'));
            return value > 0 && value < 100;
        }, null, { timeout: TIMEOUT });
        assert.match(await alice.locator('#composer-upload .upload-detail').textContent(), /Uploading… \d+ %/);
        assert.equal(await alice.locator('#composer-send').isDisabled(), true, 'Send waits for the upload');
        await alice.locator('#composer-text').fill('not yet');
        await alice.locator('#composer-text').press('Enter');
        assert.match(await alice.locator('#composer-error').textContent(), /Wait for the upload to finish/);
        await alice.mouse.move(0, 0);
        await screenshot(alice, '59-web-files-progress');
        await alice.locator('#composer-upload .upload-cancel').click();
        await alice.locator('#composer-upload').waitFor({ state: 'hidden', timeout: TIMEOUT });
        assert.equal(await alice.locator('#composer-send').isDisabled(), false);

        // The same file through to the end: the bar fills, then the message goes
        await chooseFile(alice, { name: 'slow.bin', type: 'application/octet-stream', bytes: big });
        await uploadReady(alice);
        await cdp.send('Network.emulateNetworkConditions',
            { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
        await alice.locator('#composer-text').fill('the slow one');
        await alice.locator('#composer-text').press('Enter');
        await withFile(bob, 'slow.bin').waitFor({ timeout: TIMEOUT });
        await cdp.detach();
        assert.equal(aliceSent.filter((request) => request.type === 'msg.send' && request.text === 'not yet').length, 0,
            'nothing was sent while the upload ran');

        // Past the server's limit: 413, said over the composer; nothing sent
        const sendsBefore = aliceSent.filter((request) => request.type === 'msg.send').length;
        await chooseFile(alice, { name: 'huge.bin', type: 'application/octet-stream', bytes: randomBytes(MAX_UPLOAD + 200 * 1024) });
        await alice.locator('#composer-upload[data-status="failed"]').waitFor({ timeout: TIMEOUT });
        assert.match(await alice.locator('#composer-upload .upload-detail').textContent(), /larger than the server accepts/);
        assert.ok(await alice.evaluate(() => {
            const box = document.getElementById('timeline');
            return box.scrollHeight - box.scrollTop - box.clientHeight < 2;
        }), 'the timeline stays at its end while the upload shows over the composer');
        assert.equal(await alice.locator('#composer-upload .upload-retry').count(), 0, 'trying again would not help');
        await alice.locator('#composer-text').fill('with the huge one');
        await alice.locator('#composer-text').press('Enter');
        assert.match(await alice.locator('#composer-error').textContent(), /not uploaded/);
        assert.equal(aliceSent.filter((request) => request.type === 'msg.send').length, sendsBefore);
        // Chromium logs the refused request itself: expected here, and only here
        const refused = consoleErrors.findIndex((text) => /status of 413/.test(text));
        assert.ok(refused >= 0, 'the 413 was the server\'s answer');
        consoleErrors.splice(refused, 1);
        await alice.mouse.move(0, 0);      // no button drawn hovered
        await fourScreenshots(alice, '59-web-files');
        await alice.locator('#composer-upload .upload-cancel').click();
        await alice.locator('#composer-upload').waitFor({ state: 'hidden', timeout: TIMEOUT });

        // A server out of reach: said, with Try again
        await alice.route('**/files', (route) => route.abort('connectionrefused'));
        await chooseFile(alice, { name: 'away.txt', type: 'text/plain', bytes: Buffer.from('hello') });
        await alice.locator('#composer-upload[data-status="failed"]').waitFor({ timeout: TIMEOUT });
        assert.match(await alice.locator('#composer-upload .upload-detail').textContent(), /could not be reached/);
        await alice.unroute('**/files');
        await alice.locator('#composer-upload .upload-retry').click();
        await uploadReady(alice);
        await alice.locator('#composer-upload .upload-cancel').click();
        await alice.locator('#composer-text').fill('');
    });

    it('past the storage quota the upload says so', async () => {
        // Two uploads of 1 MiB fit in bob's 2.5 MiB; the third does not
        for (const index of [1, 2]) {
            await chooseFile(bob, { name: `part${index}.bin`, type: 'application/octet-stream', bytes: randomBytes(MAX_UPLOAD) });
            await uploadReady(bob);
            await bob.locator('#composer-upload .upload-cancel').click();
        }
        await chooseFile(bob, { name: 'part3.bin', type: 'application/octet-stream', bytes: randomBytes(MAX_UPLOAD) });
        await bob.locator('#composer-upload[data-status="failed"]').waitFor({ timeout: TIMEOUT });
        assert.match(await bob.locator('#composer-upload .upload-detail').textContent(), /storage on the server is full/);
        const refused = consoleErrors.findIndex((text) => /status of 413/.test(text));
        assert.ok(refused >= 0, 'the 413 was the server\'s answer');
        consoleErrors.splice(refused, 1);
        await bob.locator('#composer-upload .upload-cancel').click();
        await bob.locator('#composer-upload').waitFor({ state: 'hidden', timeout: TIMEOUT });
    });

    it('a file dropped on a conversation reaches the other person', async () => {
        await alice.locator('#users li[data-user="bob"] .pm-start').click();
        await alice.locator('#pm-title', { hasText: 'bob' }).waitFor({ timeout: TIMEOUT });
        await dropFile(alice, '#pm-timeline', { name: 'notes.txt', type: 'text/plain', bytes: Buffer.from('private notes\n') });
        await uploadReady(alice, '#pm-composer-upload');
        await alice.locator('#pm-text').fill('for you only');
        await alice.locator('#pm-text').press('Enter');
        await bob.locator('#conversations li[data-with="alice"] button').first().click();
        const item = message(bob, 'for you only', '#pm-entries');
        await item.waitFor({ timeout: TIMEOUT });
        const sends = aliceSent.filter((request) => request.type === 'pm.send' && request.file);
        assert.equal(sends.length, 1);
        assert.equal(sends[0].to, 'bob');
        assert.equal(await item.locator('a.attachment-file .attachment-name').textContent(), 'notes.txt');
        await openRoom(alice, 'files');
        await openRoom(bob, 'files');
    });

    it('an edited message keeps its file; a deleted one loses it, and the server the file', async () => {
        const mine = message(alice, 'look at this');
        await mine.hover();
        await mine.locator('.msg-edit').click();
        await alice.locator('.message-editor textarea').fill('look at this picture');
        await alice.locator('.message-editor textarea').press('Enter');
        const edited = message(bob, 'look at this picture');
        await edited.locator('.edited-mark').waitFor({ timeout: TIMEOUT });
        assert.equal(await edited.locator('img.attachment-img').count(), 1, 'the image stays');

        const again = message(alice, 'look at this picture');
        await again.hover();
        await again.locator('.msg-delete').click();
        await alice.locator('#confirm-modal.show').waitFor({ timeout: TIMEOUT });
        await alice.locator('#confirm-ok').click();
        const gone = bob.locator(`#entries li.entry-message.deleted[data-seq="${await again.getAttribute('data-seq')}"]`);
        await gone.waitFor({ timeout: TIMEOUT });
        assert.equal(await gone.locator('.attachment').count(), 0, 'no file left in the deleted message');
        assert.equal(await bob.locator('#entries img.attachment-img').count(), 0);
        assert.equal(await eventually(async () => (await fetch(imageUrl)).status === 404, TIMEOUT), true,
            'the server deletes the file of the deleted message');

        // After a reload, history shows the same
        await bob.reload();
        await bob.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: TIMEOUT });
        await withFile(bob, 'slow.bin').waitFor({ timeout: TIMEOUT });
        await withFile(bob, 'Q3 <img').waitFor({ timeout: TIMEOUT });
        assert.equal(await bob.locator('#entries img.attachment-img').count(), 0);
        assert.deepEqual(await seriousViolations(bob), [], 'a timeline with files');
    });
});
