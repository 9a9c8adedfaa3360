// Debian's Chromium, headless, driven by playwright-core (no browser download),
// and what the browser tests share: a server with rooms and private messages,
// pages that keep their console errors and the paths they requested, signing
// up, and axe-core's accessibility check.

import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { repoRoot, binDir, startParley, Client } from './harness.js';
import { stopCleanly } from './clean-stop.js';

export const screenshotDir = path.join(repoRoot, 'integration-tests', 'screenshots');
export const PASSWORD = 'correct horse battery';
export const TIMEOUT = 15000;
// Quick argon2id: the browser tests are about the page, not password hashing
export const FAST_AUTH = ['--option', 'auth.ops_limit=1', '--option', 'auth.mem_limit=65536'];
// Errors the page logs that are not the page's fault (a server that is down)
export const harmless = /WebSocket|ERR_CONNECTION_REFUSED/;

// home: a HOME folder of its own (where Chromium finds the certificates the
// user trusts: TestCa.browserHome in tls.js)
export async function launchBrowser({ home } = {}) {
    return chromium.launch({
        executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
        headless: true,
        env: home ? { ...process.env, HOME: home } : undefined,
        args: [
            '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync',
        ],
    });
}

// fullPage: the whole document; the app is one screen high, so the viewport is the default
export async function screenshot(page, name, { fullPage = false } = {}) {
    mkdirSync(screenshotDir, { recursive: true });
    const file = path.join(screenshotDir, `${name}.png`);
    await page.screenshot({ path: file, fullPage });
    return file;
}

// rooms and pm (or the plugins named) are loaded by name until parley loads
// them by default
export function chatPluginArgs(names = ['rooms', 'pm']) {
    let help = '';
    try {
        help = execFileSync(path.join(binDir, 'parley'), ['--help'], { encoding: 'utf8' });
    } catch (error) {
        help = `${error.stdout ?? ''}`;
    }
    const defaults = help.split('\n').find((line) => /Default plugins/i.test(line)) ?? '';
    const args = [];
    for (const name of names)
        if (!new RegExp(`\\b${name}\\b`).test(defaults))
            args.push('--plugin', name);
    return args;
}

export function startChatServer({ dataDir, port, args = [], tls = null }) {
    return startParley({ dataDir, port, args: [...chatPluginArgs(), ...FAST_AUTH, ...args], withExample: false, tls });
}

// The end of every browser test: the browser closed, the server stopped
// cleanly (exit 0, no sanitizer report), its data removed, and no console
// error seen on any page
export async function closeChat({ browser, server, dataDir, consoleErrors }) {
    await browser?.close();
    if (server)
        await stopCleanly(server);
    rmSync(dataDir, { recursive: true, force: true });
    assert.deepEqual(consoleErrors, []);
}

// A context is one person (its own localStorage); reduced motion, so that a
// screenshot shows the page as it settled
export function newContext(browser, { width = 1280, height = 800, colorScheme = 'light' } = {}) {
    return browser.newContext({ viewport: { width, height }, reducedMotion: 'reduce', colorScheme });
}

// A page of the app, its console errors kept in consoleErrors and the paths
// it requested from the server in page.requested
export async function openPage(context, server, consoleErrors) {
    const page = await context.newPage();
    page.requested = new Set();
    page.on('request', (request) => {
        const url = new URL(request.url());
        if (url.host === new URL(server.http).host)
            page.requested.add(url.pathname);
    });
    page.on('console', (message) => {
        if (message.type() === 'error' && !harmless.test(message.text()))
            consoleErrors.push(message.text());
    });
    page.on('pageerror', (error) => consoleErrors.push(error.message));
    await page.goto(server.http + '/');
    await page.locator('#signin-view:visible, #dashboard-view:visible, #resuming-view:visible')
        .first().waitFor({ timeout: TIMEOUT });
    return page;
}

// A protocol client beside the browser, signed in as a user (registered
// first when asked): the other side of a browser test
export async function protocolAs(server, username, { registering = false } = {}) {
    const client = await Client.connect(server.url);
    const reply = await client.request({
        type: registering ? 'auth.register' : 'auth.login', username, password: PASSWORD,
    });
    assert.equal(reply.type, 'ok', JSON.stringify(reply));
    return client;
}

export async function signIn(page, username, { registering = false, password = PASSWORD } = {}) {
    await page.locator(`label[for="mode-${registering ? 'register' : 'login'}"]`).click();
    await page.locator('#username').fill(username);
    await page.locator('#password').fill(password);
    await page.locator('#signin-submit').click();
    await page.locator('#dashboard-view').waitFor({ state: 'visible', timeout: TIMEOUT });
    await page.locator('#account-name', { hasText: username }).waitFor({ timeout: TIMEOUT });
    await page.locator('#status', { hasText: /^Connected/ }).waitFor({ timeout: TIMEOUT });
}

// Creates a room from the dialog (the page then shows it)
export async function createRoom(page, name, { description = '' } = {}) {
    await page.locator('#room-new').click();
    await page.locator('#create-room-modal.show').waitFor({ timeout: TIMEOUT });
    await page.locator('#room-name').fill(name);
    if (description)
        await page.locator('#room-description').fill(description);
    await page.locator('#create-room-submit').click();
    await page.locator('#create-room-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });
    await page.locator('#chat-title', { hasText: name }).waitFor({ timeout: TIMEOUT });
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

// axe-core's WCAG checks on the page as it is; returns the serious and critical
// violations as "rule: target" lines. Evaluated through the DevTools protocol,
// which the page's CSP does not cover.
export async function seriousViolations(page) {
    await page.evaluate(axeSource);
    const violations = await page.evaluate(async () => {
        const result = await window.axe.run(document, {
            runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
        });
        return result.violations.map((each) => ({
            id: each.id, impact: each.impact,
            targets: each.nodes.map((node) => node.target.join(' ')).slice(0, 5),
        }));
    });
    return violations.filter((each) => each.impact === 'serious' || each.impact === 'critical')
        .map((each) => `${each.id} (${each.impact}): ${each.targets.join(', ')}`);
}

// How far an element's box lies outside the viewport (0 when fully inside)
export async function outsideViewport(locator) {
    return locator.evaluate((node) => {
        const box = node.getBoundingClientRect();
        return Math.max(0, -box.top, -box.left, box.bottom - window.innerHeight, box.right - window.innerWidth);
    });
}
