// The web page's change-password dialog (auth.password, PROTOCOL.md
// "Accounts (1.1)"), in headless Chromium: opened from the user menu, its
// errors (checked on the page, then the server's, each at its field), and on
// success the session kept with the fresh token (also across a reload), the
// other device logged out, and another tab of the same browser joining the
// fresh session.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir } from '../lib/harness.js';
import {
    launchBrowser, startChatServer, closeChat, newContext, openPage, signIn, screenshot,
    seriousViolations, PASSWORD, TIMEOUT,
} from '../lib/browser.js';

const NEW_PASSWORD = 'a fresh secret 42';

const storedToken = (page) => page.evaluate(() => localStorage.getItem('parley.token'));

async function openDialog(page) {
    await page.locator('#account-menu').click();
    await page.locator('#password-open').click();
    await page.locator('#password-modal').waitFor({ state: 'visible', timeout: TIMEOUT });
    await page.locator('#password-current:focus').waitFor({ timeout: TIMEOUT });
}

async function fill(page, current, next, repeat = next) {
    await page.locator('#password-current').fill(current);
    await page.locator('#password-new').fill(next);
    await page.locator('#password-repeat').fill(repeat);
    await page.locator('#password-submit').click();
}

// The field shows its error: marked invalid, with the sentence under it
async function fieldError(page, id, pattern) {
    await page.locator(`#${id}.is-invalid`).waitFor({ timeout: TIMEOUT });
    assert.equal(await page.locator(`#${id}`).getAttribute('aria-invalid'), 'true');
    assert.match(await page.locator(`#${id}-error`).textContent(), pattern);
}

describe('the web change-password dialog', () => {
    const data = tempDir();
    let server;
    let browser;
    const consoleErrors = [];

    before(async () => {
        server = await startChatServer({ dataDir: data });
        browser = await launchBrowser();
    });

    after(async () => {
        await closeChat({ browser, server, dataDir: data, consoleErrors });
    });

    it('changes the password from the user menu, keeps this session and logs the others out', async () => {
        const mine = await newContext(browser);
        const here = await openPage(mine, server, consoleErrors);
        await signIn(here, 'alice', { registering: true });
        const firstToken = await storedToken(here);
        // Another tab of the same browser (same storage): it resumes alice
        const tab = await openPage(mine, server, consoleErrors);
        await tab.locator('#account-name', { hasText: 'alice' }).waitFor({ timeout: TIMEOUT });
        // Another device
        const laptop = await openPage(await newContext(browser), server, consoleErrors);
        await signIn(laptop, 'alice');

        await openDialog(here);
        assert.deepEqual(await seriousViolations(here), [], 'the open dialog passes axe');

        // Checked on the page first: nothing is sent
        await here.locator('#password-submit').click();
        await fieldError(here, 'password-current', /Enter your current password/);
        await fieldError(here, 'password-new', /Enter a password/);
        await fill(here, PASSWORD, 'short');
        await fieldError(here, 'password-new', /at least 8/);
        await fill(here, PASSWORD, NEW_PASSWORD, 'a fresh secret 43');
        await fieldError(here, 'password-repeat', /differ/);

        // The server's errors, each at its field
        await fill(here, 'not my password', NEW_PASSWORD);
        await fieldError(here, 'password-current', /current password is wrong/);
        assert.equal(await here.locator('#password-current:focus').count(), 1, 'the focus goes there');
        await fill(here, PASSWORD, '12345678');
        await fieldError(here, 'password-new', /most common/);
        assert.equal(await storedToken(here), firstToken, 'nothing changed');
        await screenshot(here, '19-password-dialog-error');

        await fill(here, PASSWORD, NEW_PASSWORD);
        await here.locator('#password-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });
        await here.locator('#toasts', { hasText: 'Your password was changed' }).waitFor({ timeout: TIMEOUT });
        const freshToken = await storedToken(here);
        assert.match(freshToken, /^[A-Za-z0-9_-]{43}$/);
        assert.notEqual(freshToken, firstToken, 'the fresh token is kept where the page keeps its token');
        assert.equal(await here.locator('#dashboard-view').isVisible(), true, 'this session stays');
        await here.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: TIMEOUT });

        // The other device is logged out and must sign in with the new password
        await laptop.locator('#signin-view').waitFor({ state: 'visible', timeout: TIMEOUT });
        await laptop.locator('#signin-notice', { hasText: /logged out/ }).waitFor({ timeout: TIMEOUT });
        // The other tab of this browser was logged out too, and joins the fresh session
        await tab.locator('#dashboard-view').waitFor({ state: 'visible', timeout: TIMEOUT });
        await tab.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: TIMEOUT });
        assert.equal(await storedToken(tab), freshToken);

        // A reload resumes with the fresh token
        await here.reload();
        await here.locator('#account-name', { hasText: 'alice' }).waitFor({ timeout: TIMEOUT });
        await here.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: TIMEOUT });
        assert.equal(await here.locator('#signin-view').isVisible(), false);

        await signIn(laptop, 'alice', { password: NEW_PASSWORD });
    });
});
