// The first page, in headless Chromium: it connects to /ws and says so, and
// says so again after the server comes back.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startParley, sanitizerReports, tempDir } from '../lib/harness.js';
import { launchBrowser, screenshot } from '../lib/browser.js';

test('the page shows it is connected, then disconnected when the server stops, then connected again', async () => {
    const data = tempDir();
    let server = await startParley({ dataDir: data });
    const port = server.port;
    const browser = await launchBrowser();
    try {
        const page = await browser.newPage();
        const consoleErrors = [];
        page.on('console', (message) => {
            if (message.type() === 'error')
                consoleErrors.push(message.text());
        });
        await page.goto(server.http + '/');
        await page.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: 15000 });
        const latency = await page.locator('#latency').textContent();
        assert.match(latency, /\d+(\.\d+)?\s*ms/);
        await screenshot(page, '03-web-connected');
        await page.setViewportSize({ width: 375, height: 700 });
        await screenshot(page, '03-web-connected-phone');

        await server.stop();
        await page.locator('#status', { hasText: /Disconnected/ }).waitFor({ timeout: 15000 });
        await screenshot(page, '03-web-disconnected');

        server = await startParley({ dataDir: data, port });
        await page.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: 30000 });
        assert.deepEqual(consoleErrors.filter((text) => !/WebSocket|ERR_CONNECTION_REFUSED/.test(text)), []);
    } finally {
        await browser.close();
        const status = await server.stop();
        assert.deepEqual(sanitizerReports(server.proc.output), []);
        assert.equal(status.code, 0);
    }
});
