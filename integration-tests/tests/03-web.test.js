// The first page, in headless Chromium: the sign-in card with no socket open;
// signed in, it says it is connected, then disconnected when the server stops,
// then connected again when it is back.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startParley, sanitizerReports, tempDir, sleep } from '../lib/harness.js';
import { launchBrowser, screenshot, signIn, harmless } from '../lib/browser.js';

test('the page connects when signing in, shows a lost connection, and connects again', async () => {
    const data = tempDir();
    let server = await startParley({ dataDir: data });
    const port = server.port;
    const browser = await launchBrowser();
    try {
        const page = await browser.newPage();
        const consoleErrors = [];
        const sockets = [];
        page.on('console', (message) => {
            if (message.type() === 'error')
                consoleErrors.push(message.text());
        });
        page.on('websocket', (socket) => sockets.push(socket.url()));
        await page.goto(server.http + '/');
        await page.locator('#signin-view').waitFor({ state: 'visible', timeout: 15000 });
        await sleep(1000);
        assert.deepEqual(sockets, [], 'no socket before signing in');
        await screenshot(page, '03-web-signin');

        await signIn(page, 'alice', { registering: true });
        assert.equal(sockets.length, 1);
        assert.match(await page.locator('#status').getAttribute('title'), /Connected/);
        await screenshot(page, '03-web-connected');
        await page.setViewportSize({ width: 375, height: 700 });
        await screenshot(page, '03-web-connected-phone');

        await server.stop();
        await page.locator('#status', { hasText: /Disconnected/ }).waitFor({ timeout: 15000 });
        await screenshot(page, '03-web-disconnected');

        server = await startParley({ dataDir: data, port });
        await page.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: 30000 });
        assert.deepEqual(consoleErrors.filter((text) => !harmless.test(text)), []);
    } finally {
        await browser.close();
        const status = await server.stop();
        assert.deepEqual(sanitizerReports(server.proc.output), []);
        assert.equal(status.code, 0);
    }
});
