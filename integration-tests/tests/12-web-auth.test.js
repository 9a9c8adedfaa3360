// The first screen of the chat, in headless Chromium: register, log in, resume
// after a reload, log out, and the users panel following presence live.
// Two browser contexts are two people (each its own localStorage).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startParley, tempDir, Client, sleep } from '../lib/harness.js';
import { stopCleanly } from '../lib/clean-stop.js';
import {
    launchBrowser, screenshot, closeChat, newContext, openPage, PASSWORD, TIMEOUT,
} from '../lib/browser.js';

// Submits the sign-in form as it is, without waiting for the outcome
async function signIn(page, mode, username, password) {
    await page.locator(`label[for="mode-${mode}"]`).click();
    await page.locator('#username').fill(username);
    await page.locator('#password').fill(password);
    await page.locator('#signin-submit').click();
}

async function waitForDashboard(page, username) {
    await page.locator('#dashboard-view').waitFor({ state: 'visible', timeout: TIMEOUT });
    await page.locator('#account-name', { hasText: username }).waitFor({ timeout: TIMEOUT });
}

function userRow(page, name, online) {
    return page.locator(`#users li[data-user="${name}"][data-online="${online}"]`);
}

describe('the web sign-in and users panel', () => {
    const data = tempDir();
    let server;
    let browser;
    let alice;          // alice's first page, in her own context
    let aliceContext;
    const consoleErrors = [];

    before(async () => {
        server = await startParley({ dataDir: data });
        browser = await launchBrowser();
        aliceContext = await newContext(browser, { width: 1100, height: 700 });
    });

    after(() => closeChat({ browser, server, dataDir: data, consoleErrors }));

    it('shows the sign-in card first, and checks the form before asking the server', async () => {
        alice = await openPage(aliceContext, server, consoleErrors);
        await alice.locator('#signin-view').waitFor({ state: 'visible' });
        assert.equal(await alice.locator('#dashboard-view').isVisible(), false);
        assert.equal(await alice.locator('#logout').isVisible(), false);
        await screenshot(alice, '12-web-auth-signin');

        await signIn(alice, 'register', 'al', 'short');
        await alice.locator('#username.is-invalid').waitFor({ timeout: TIMEOUT });
        assert.match(await alice.locator('#username-error').textContent(), /3 to 32/);
        assert.match(await alice.locator('#password-error').textContent(), /at least 8/);
        assert.equal(await alice.locator('#signin-error').isVisible(), false);
        await screenshot(alice, '12-web-auth-signin-invalid');
    });

    it('registers alice and bob, and alice sees bob come online without a reload', async () => {
        await signIn(alice, 'register', 'alice', PASSWORD);
        await waitForDashboard(alice, 'alice');
        await userRow(alice, 'alice', true).waitFor({ timeout: TIMEOUT });
        assert.match(await alice.locator('#main').textContent(), /Pick a room from the list, or create a new one/);
        assert.ok(await alice.evaluate(() => localStorage.getItem('parley.token')));

        const bobContext = await newContext(browser, { width: 1100, height: 700 });
        const bob = await openPage(bobContext, server, consoleErrors);
        await signIn(bob, 'register', 'bob', PASSWORD);
        await waitForDashboard(bob, 'bob');
        await userRow(bob, 'alice', true).waitFor({ timeout: TIMEOUT });

        await userRow(alice, 'bob', true).waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.locator('#users-count').textContent(), '2 of 2 online');
        await screenshot(alice, '12-web-auth-dashboard-two-online');

        // bob's only session ends: alice sees him offline, with when he was last seen
        await bob.close();
        await userRow(alice, 'bob', false).waitFor({ timeout: TIMEOUT });
        const row = await alice.locator('#users li[data-user="bob"]').textContent();
        assert.match(row, /offline/);
        assert.match(row, /last seen/);
        assert.equal(await alice.locator('#users-count').textContent(), '1 of 2 online');
        await screenshot(alice, '12-web-auth-dashboard-bob-offline');
        await bobContext.close();
    });

    it('resumes alice\'s session after a reload, without the sign-in card', async () => {
        await alice.reload();
        await waitForDashboard(alice, 'alice');
        assert.equal(await alice.locator('#signin-view').isVisible(), false);
        await userRow(alice, 'bob', false).waitFor({ timeout: TIMEOUT });
        await userRow(alice, 'alice', true).waitFor({ timeout: TIMEOUT });

        await alice.setViewportSize({ width: 375, height: 700 });
        await screenshot(alice, '12-web-auth-dashboard-phone');
        const overflow = await alice.evaluate(() =>
            document.documentElement.scrollWidth - document.documentElement.clientWidth);
        assert.equal(overflow, 0, 'the dashboard fits a 375 px screen');
        assert.ok(await alice.locator('#logout').isVisible());
        await alice.setViewportSize({ width: 1100, height: 700 });
    });

    it('shows the server\'s message for a wrong password and for a name already taken', async () => {
        // The server's own sentences, asked for over the protocol
        const probe = await Client.connect(server.url);
        const wrong = await probe.request({ type: 'auth.login', username: 'bob', password: 'not the password' });
        assert.equal(wrong.code, 'bad_credentials');
        const taken = await probe.request({ type: 'auth.register', username: 'alice', password: PASSWORD });
        assert.equal(taken.code, 'username_taken');
        await probe.close();

        const context = await newContext(browser, { width: 375, height: 700 });
        const page = await openPage(context, server, consoleErrors);
        await signIn(page, 'login', 'bob', 'not the password');
        const alert = page.locator('#signin-error[role="alert"]');
        await alert.waitFor({ state: 'visible', timeout: TIMEOUT });
        assert.equal((await alert.textContent()).trim(), wrong.message);
        assert.equal(await page.locator('#dashboard-view').isVisible(), false);
        await screenshot(page, '12-web-auth-bad-credentials-phone');

        await signIn(page, 'register', 'alice', PASSWORD);
        await page.locator('#signin-error', { hasText: taken.message }).waitFor({ timeout: TIMEOUT });
        assert.equal(await page.evaluate(() => localStorage.getItem('parley.token')), null);

        // The right password: bob is back, and alice sees it live
        await signIn(page, 'login', 'bob', PASSWORD);
        await waitForDashboard(page, 'bob');
        await userRow(alice, 'bob', true).waitFor({ timeout: TIMEOUT });
        await context.close();
        await userRow(alice, 'bob', false).waitFor({ timeout: TIMEOUT });
    });

    it('signs in again by itself and lists the users anew when the server comes back', async () => {
        const port = server.port;
        await stopCleanly(server);
        server = null;
        await alice.locator('#status', { hasText: /Disconnected/ }).waitFor({ timeout: TIMEOUT });
        await alice.locator('#users-panel.stale').waitFor({ timeout: TIMEOUT });
        await screenshot(alice, '12-web-auth-dashboard-disconnected');

        server = await startParley({ dataDir: data, port });
        await alice.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: 30000 });
        await alice.locator('#users-panel:not(.stale)').waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.locator('#signin-view').isVisible(), false);
        await userRow(alice, 'alice', true).waitFor({ timeout: TIMEOUT });
        await userRow(alice, 'bob', false).waitFor({ timeout: TIMEOUT });
    });

    it('logs out: every tab with that session returns to the sign-in card, and a reload stays there', async () => {
        // A second tab of alice's shares her token and resumes with it
        const second = await openPage(aliceContext, server, consoleErrors);
        await waitForDashboard(second, 'alice');
        const token = await alice.evaluate(() => localStorage.getItem('parley.token'));

        await alice.locator('#logout').click();
        await alice.locator('#signin-view').waitFor({ state: 'visible', timeout: TIMEOUT });
        assert.equal(await alice.locator('#account').isVisible(), false);
        assert.equal(await alice.evaluate(() => localStorage.getItem('parley.token')), null);

        // The other tab was told with logged_out
        await second.locator('#signin-view').waitFor({ state: 'visible', timeout: TIMEOUT });
        assert.match(await second.locator('#signin-notice').textContent(), /another tab/);
        await screenshot(second, '12-web-auth-logged-out-elsewhere');
        await second.close();

        // Signed out, a reload opens no socket and says nothing of a connection
        const sockets = [];
        alice.on('websocket', (socket) => sockets.push(socket.url()));
        await alice.reload();
        await alice.locator('#signin-view').waitFor({ state: 'visible', timeout: TIMEOUT });
        await sleep(1000);
        assert.deepEqual(sockets, []);
        assert.equal(await alice.locator('#status').isVisible(), false);
        assert.equal(await alice.locator('#dashboard-view').isVisible(), false);

        // The token is revoked: a page that still holds it is sent to the sign-in card
        await alice.evaluate((old) => localStorage.setItem('parley.token', old), token);
        await alice.reload();
        await alice.locator('#signin-notice', { hasText: /session has ended/ }).waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.evaluate(() => localStorage.getItem('parley.token')), null);

        await signIn(alice, 'login', 'alice', PASSWORD);
        await waitForDashboard(alice, 'alice');
    });
});
