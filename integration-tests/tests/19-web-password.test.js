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

// Waits until the page's storage holds a fresh token (43 base64url
// characters) other than old, and answers it. localStorage is only eventually
// consistent between the browser's processes: a tab logged out by the change
// may, on an old read, remove the fresh token; the page that changed the
// password then stores it again (web/app.js, keepToken). Fails if no fresh
// token is stored within TIMEOUT.
async function freshTokenStored(page, old) {
    await page.waitForFunction((previous) => {
        const token = localStorage.getItem('parley.token');
        return token !== null && /^[A-Za-z0-9_-]{43}$/.test(token) && token !== previous;
    }, old, { timeout: TIMEOUT });
    return storedToken(page);
}

// In page, the next read of the stored token answers old, and the next
// removal of it lands only once another tab's token is stored: as in Chromium
// when a tab's read comes before another process's write has reached it, and
// its removal reaches the storage after that write
async function staleForget(page, old) {
    await page.evaluate((previous) => {
        const key = 'parley.token';
        const { getItem, removeItem } = Storage.prototype;
        Storage.prototype.getItem = function (name) {
            if (name !== key)
                return getItem.call(this, name);
            Storage.prototype.getItem = getItem;
            return previous;
        };
        Storage.prototype.removeItem = function (name) {
            if (name !== key)
                return removeItem.call(this, name);
            Storage.prototype.removeItem = removeItem;
            const current = getItem.call(this, key);
            if (current !== null && current !== previous) {
                removeItem.call(this, key);
                return undefined;
            }
            const land = (event) => {
                if (event.key === key && event.newValue && event.newValue !== previous) {
                    window.removeEventListener('storage', land);
                    removeItem.call(localStorage, key);
                }
            };
            window.addEventListener('storage', land);
            return undefined;
        };
    }, old);
}

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
        // The fresh token is kept where the page keeps its token
        const freshToken = await freshTokenStored(here, firstToken);
        assert.match(freshToken, /^[A-Za-z0-9_-]{43}$/);
        assert.notEqual(freshToken, firstToken);
        assert.equal(await here.locator('#dashboard-view').isVisible(), true, 'this session stays');
        await here.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: TIMEOUT });

        // The other device is logged out and must sign in with the new password
        await laptop.locator('#signin-view').waitFor({ state: 'visible', timeout: TIMEOUT });
        await laptop.locator('#signin-notice', { hasText: /logged out/ }).waitFor({ timeout: TIMEOUT });
        // The other tab of this browser was logged out too, and joins the fresh session
        await tab.locator('#dashboard-view').waitFor({ state: 'visible', timeout: TIMEOUT });
        await tab.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: TIMEOUT });
        assert.equal(await storedToken(tab), freshToken);
        assert.equal(await storedToken(here), freshToken, 'still the fresh token, once every tab settled');

        // A reload resumes with the fresh token
        await here.reload();
        await here.locator('#account-name', { hasText: 'alice' }).waitFor({ timeout: TIMEOUT });
        await here.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: TIMEOUT });
        assert.equal(await here.locator('#signin-view').isVisible(), false);
        assert.equal(await storedToken(here), freshToken);

        await signIn(laptop, 'alice', { password: NEW_PASSWORD });
    });

    it('keeps the fresh token when a tab logged out by the change removes it on an old read', async () => {
        const mine = await newContext(browser);
        const here = await openPage(mine, server, consoleErrors);
        await signIn(here, 'alice', { password: NEW_PASSWORD });
        const firstToken = await storedToken(here);
        const tab = await openPage(mine, server, consoleErrors);
        await tab.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: TIMEOUT });
        // The race, made certain: the tab's logged_out handler reads the old
        // token, takes it for its own, and its removal wipes the fresh one
        await staleForget(tab, firstToken);

        await openDialog(here);
        await fill(here, NEW_PASSWORD, PASSWORD);
        await here.locator('#toasts', { hasText: 'Your password was changed' }).waitFor({ timeout: TIMEOUT });
        const freshToken = await freshTokenStored(here, firstToken);
        // The tab was logged out, forgot the token, and joins the fresh
        // session once this page stored it again
        await tab.locator('#dashboard-view').waitFor({ state: 'visible', timeout: TIMEOUT });
        await tab.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: TIMEOUT });
        assert.deepEqual(await tab.evaluate(() => [Storage.prototype.getItem.name,
                                                   Storage.prototype.removeItem.name]),
                         ['getItem', 'removeItem'], 'the tab read the old token and removed it');
        assert.equal(await storedToken(tab), freshToken);
        assert.equal(await storedToken(here), freshToken);

        // A reload of either resumes with the fresh token
        await here.reload();
        await here.locator('#account-name', { hasText: 'alice' }).waitFor({ timeout: TIMEOUT });
        await here.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: TIMEOUT });
        assert.equal(await storedToken(here), freshToken);
        await mine.close();
    });
});
