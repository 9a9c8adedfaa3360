// The web UI in headless Chromium over https and wss, with the test's CA
// trusted the way a user trusts one (in the profile's NSS database, not by
// ignoring certificate errors): the page loads, signs up, chats live, and
// after the server reloads its certificate (SIGHUP) a new page still connects.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir } from '../lib/harness.js';
import {
    launchBrowser, startChatServer, closeChat, newContext, openPage, signIn, screenshot, TIMEOUT,
} from '../lib/browser.js';
import { TestCa } from '../lib/tls.js';

test('Chromium trusting the CA uses the chat over https and wss, also after a certificate reload', async () => {
    const ca = new TestCa();
    const data = tempDir();
    const live = ca.liveFiles();
    live.install(ca.issue('web', '6001'));
    const consoleErrors = [];
    let browser;
    let server;
    try {
        server = await startChatServer({ dataDir: data, tls: live });
        assert.match(server.http, /^https:/);
        browser = await launchBrowser({ home: ca.browserHome() });
        const alice = await openPage(await newContext(browser), server, consoleErrors);
        assert.equal(new URL(alice.url()).protocol, 'https:');
        await signIn(alice, 'tls-alice', { registering: true });

        // A second person, on a certificate loaded after alice's connection opened
        live.install(ca.issue('web-renewed', '6002'));
        server.proc.signal('SIGHUP');
        assert.ok(await server.proc.waitForOutput(/SIGHUP: new connections get .*\(serial 6002\)/, TIMEOUT),
                  server.proc.output);
        const bob = await openPage(await newContext(browser), server, consoleErrors);
        await signIn(bob, 'tls-bob', { registering: true });

        // Both sessions live over wss: each sees the other online
        for (const [page, other] of [[alice, 'tls-bob'], [bob, 'tls-alice']])
            await page.locator(`#users li[data-user="${other}"][data-online="true"]`)
                .waitFor({ timeout: TIMEOUT });
        await screenshot(bob, '72-web-tls-connected');
    } finally {
        await closeChat({ browser, server, dataDir: data, consoleErrors });
        ca.remove();
    }
});
