// The chat as people see it, in headless Chromium with three users: the
// full-height layout (composer pinned, members beside), grouped messages and
// day separators, the "New messages" line and "Jump to newest", the composer
// growing, the keyboard (Enter, Shift+Enter, Escape, Ctrl+K), safe formatting
// and links, the phone layout, dark mode, screenshots at desktop and phone
// width in light and dark, and axe-core's accessibility check.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir, Client, sleep } from '../lib/harness.js';
import {
    launchBrowser, screenshot, startChatServer, closeChat, newContext, openPage, signIn, seriousViolations,
    outsideViewport, PASSWORD, TIMEOUT, createRoom,
} from '../lib/browser.js';

// Every path the UI may load: the gateway's allow-list has to match it
const UI_PATHS = new Set(['/', '/index.html', '/app.css', '/theme.js', '/favicon.svg', '/app.js', '/protocol.js',
    '/mentions.js', '/typing.js', '/notifications.js', '/room-settings.js',
    '/connection.js', '/nav.js', '/chatview.js', '/format.js', '/rooms.js', '/room-dialogs.js', '/members.js',
    '/room-list.js', '/pm.js', '/presence.js', '/toast.js', '/outbox.js', '/account-dialog.js', '/chat-controller.js',
    '/message-actions.js', '/message-changes.js', '/reactions.js', '/message-actions.css',
    '/search.js', '/search.css', '/attachments.js', '/attachments.css', '/room-directory.js',
    '/vendor/bootstrap/css/bootstrap.min.css',
    '/vendor/bootstrap/js/bootstrap.bundle.min.js']);

function message(page, text) {
    return page.locator('#entries li.entry-message', { hasText: text });
}

async function say(page, text, { waitFor = text } = {}) {
    await page.locator('#composer-text').fill(text);
    await page.locator('#composer-text').press('Enter');
    await message(page, waitFor).waitFor({ timeout: TIMEOUT });
}

async function joinRoom(page, name) {
    await page.locator(`#rooms li[data-room="${name}"] button`).click();
    await page.locator('#room-join').click();
    await page.locator('#room-leave').waitFor({ state: 'visible', timeout: TIMEOUT });
}

describe('the chat layout', () => {
    const data = tempDir();
    let server;
    let browser;
    const pages = {};
    const consoleErrors = [];

    before(async () => {
        server = await startChatServer({ dataDir: data });
        browser = await launchBrowser();
    });

    after(() => closeChat({ browser, server, dataDir: data, consoleErrors }));

    it('passes axe-core on the sign-in page, and three people sign up', async () => {
        pages.alice = await openPage(await newContext(browser), server, consoleErrors);
        await pages.alice.locator('#signin-view').waitFor({ state: 'visible', timeout: TIMEOUT });
        assert.deepEqual(await seriousViolations(pages.alice), []);
        await screenshot(pages.alice, '50-web-signin-light');
        await signIn(pages.alice, 'alice', { registering: true });
        pages.bob = await openPage(await newContext(browser, { colorScheme: 'dark' }), server, consoleErrors);
        await signIn(pages.bob, 'bob', { registering: true });
        pages.carol = await openPage(await newContext(browser, { width: 390, height: 844 }), server, consoleErrors);
        await signIn(pages.carol, 'carol', { registering: true });
        assert.deepEqual(await seriousViolations(pages.alice), [], 'the dashboard');
    });

    it('fills the window: the composer pinned to the bottom, members on the right', async () => {
        const { alice, bob } = pages;
        await createRoom(alice, 'lobby', { description: 'Where everyone meets.' });
        await joinRoom(bob, 'lobby');
        const layout = await alice.evaluate(() => {
            const box = (id) => document.getElementById(id).getBoundingClientRect();
            return {
                composerBottom: box('composer').bottom, height: window.innerHeight,
                timelineTop: box('timeline').top, timelineBottom: box('timeline').bottom,
                membersLeft: box('members-panel').left, chatRight: box('timeline').right,
                roomsRight: box('rooms').right, timelineLeft: box('timeline').left,
                scrolls: document.documentElement.scrollHeight > window.innerHeight,
            };
        });
        assert.ok(layout.height - layout.composerBottom < 2, `composer at the bottom: ${JSON.stringify(layout)}`);
        assert.ok(layout.timelineBottom - layout.timelineTop > 500, 'the timeline takes the height');
        assert.ok(layout.membersLeft >= layout.chatRight - 1, 'members right of the chat');
        assert.ok(layout.roomsRight <= layout.timelineLeft + 1, 'rooms left of the chat');
        assert.equal(layout.scrolls, false, 'the page itself does not scroll');

        // The members panel folds away and comes back
        await alice.locator('#members-toggle').click();
        await alice.locator('#members-panel').waitFor({ state: 'hidden', timeout: TIMEOUT });
        assert.equal(await alice.locator('#members-toggle').getAttribute('aria-expanded'), 'false');
        await alice.locator('#members-toggle').click();
        await alice.locator('#members-panel').waitFor({ state: 'visible', timeout: TIMEOUT });
    });

    it('groups messages by author, separates days, and renders formatting without HTML', async () => {
        const { alice, bob } = pages;
        await say(alice, 'Good morning everyone!');
        await say(alice, 'The notes are at https://example.org/notes?a=1&b=2.', { waitFor: 'The notes are at' });
        await say(bob, 'Morning! `make test` passes now.', { waitFor: 'passes now' });
        await say(bob, '**Heads up**: the build restarts at *noon*.', { waitFor: 'the build restarts' });
        await say(bob, '<script>window.pwned = 1</script><img src=x onerror="window.pwned=2">', { waitFor: '<script>' });
        await say(alice, 'config:\n```\nlisten = 127.0.0.1:8080\n```\nand javascript:alert(1) is no link', { waitFor: 'is no link' });

        // Grouped: the second message of alice's run has no name of its own
        assert.equal(await message(alice, 'The notes are at').evaluate((node) => node.classList.contains('grouped')), true);
        assert.equal(await message(alice, 'Good morning').evaluate((node) => node.classList.contains('grouped')), false);
        assert.equal(await message(alice, 'Good morning').locator('.meta .from').textContent(), 'You');
        assert.equal(await message(alice, 'passes now').locator('.meta .from').textContent(), 'bob');
        assert.equal(await message(alice, 'the build restarts').locator('.meta').count(), 0);
        // One day separator above today's first entry
        assert.deepEqual(await alice.locator('#entries li.day-separator').allTextContents(), ['Today']);

        const link = message(alice, 'The notes are at').locator('a');
        assert.equal(await link.getAttribute('href'), 'https://example.org/notes?a=1&b=2');
        assert.equal(await link.textContent(), 'https://example.org/notes?a=1&b=2');
        assert.equal(await link.getAttribute('rel'), 'noopener noreferrer');
        assert.equal(await link.getAttribute('target'), '_blank');
        assert.equal(await message(alice, 'passes now').locator('code').textContent(), 'make test');
        assert.equal(await message(alice, 'the build restarts').locator('strong').textContent(), 'Heads up');
        assert.equal(await message(alice, 'the build restarts').locator('em').textContent(), 'noon');
        assert.equal(await message(alice, 'is no link').locator('pre code').textContent(), 'listen = 127.0.0.1:8080');
        assert.equal(await message(alice, 'is no link').locator('a').count(), 0);
        // The markup someone typed is text: no element, nothing ran
        const script = message(alice, '<script>');
        assert.equal(await script.locator('script, img').count(), 0);
        assert.match(await script.locator('.text').textContent(), /^<script>window.pwned = 1<\/script><img src=x/);
        assert.equal(await alice.evaluate(() => window.pwned), undefined);
        await screenshot(alice, '50-web-desktop-light');
        assert.deepEqual(await seriousViolations(alice), [], 'a room');
    });

    it('Enter sends, Shift+Enter breaks the line and the composer grows, Escape leaves it', async () => {
        const { alice } = pages;
        const input = alice.locator('#composer-text');
        await input.focus();
        const oneLine = (await input.boundingBox()).height;
        await input.type('first line');
        for (let n = 2; n <= 4; n++) {
            await input.press('Shift+Enter');
            await input.type(`line ${n}`);
        }
        assert.equal(await input.inputValue(), 'first line\nline 2\nline 3\nline 4');
        const grown = (await input.boundingBox()).height;
        assert.ok(grown > oneLine * 2, `the composer grows: ${oneLine} -> ${grown}`);
        await screenshot(alice, '50-web-composer-grown');
        await input.press('Enter');
        await message(alice, 'line 4').waitFor({ timeout: TIMEOUT });
        assert.equal(await message(alice, 'line 4').locator('.text').textContent(), 'first line\nline 2\nline 3\nline 4');
        assert.equal(await input.inputValue(), '');
        assert.ok((await input.boundingBox()).height < oneLine + 2, 'and shrinks back once sent');
        await input.press('Escape');
        assert.equal(await alice.evaluate(() => document.activeElement?.id), 'timeline');
    });

    it('shows "New messages" and "Jump to newest" while scrolled up', async () => {
        const { alice, bob } = pages;
        const writer = await Client.connect(server.url);
        assert.equal((await writer.request({ type: 'auth.login', username: 'bob', password: PASSWORD })).type, 'ok');
        const send = async (text) => {
            let reply = await writer.request({ type: 'msg.send', room: 'lobby', text });
            for (let retry = 0; reply.code === 'rate_limited' && retry < 50; retry++) {
                await sleep(100);
                reply = await writer.request({ type: 'msg.send', room: 'lobby', text });
            }
            assert.equal(reply.type, 'ok', JSON.stringify(reply));
        };
        for (let n = 1; n <= 30; n++)
            await send(`filler ${n}`);
        await message(alice, 'filler 30').waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.locator('#timeline-jump').isVisible(), false, 'at the bottom: no button');

        await alice.locator('#timeline').evaluate((box) => { box.scrollTop = 0; });
        await alice.locator('#timeline-jump', { hasText: 'Jump to newest' }).waitFor({ timeout: TIMEOUT });
        await send('news while you read');
        await send('more news');
        await alice.locator('#timeline-jump', { hasText: '2 new messages below' }).waitFor({ timeout: TIMEOUT });
        // The line sits right above the first message that arrived unseen
        const next = await alice.locator('#entries li.new-line + li').getAttribute('data-seq');
        assert.equal(next, await message(alice, 'news while you read').getAttribute('data-seq'));
        await screenshot(alice, '50-web-new-messages');
        await alice.locator('#timeline-jump').click();
        await alice.locator('#timeline-jump').waitFor({ state: 'hidden', timeout: TIMEOUT });
        assert.ok(await alice.locator('#timeline').evaluate((box) =>
            box.scrollHeight - box.scrollTop - box.clientHeight < 80), 'at the bottom again');
        await writer.close();
        await message(bob, 'more news').waitFor({ timeout: TIMEOUT });
    });

    it('Ctrl+K opens the quick switcher to go to a room or a person', async () => {
        const { alice } = pages;
        await createRoom(alice, 'design');
        await alice.locator('#dashboard-title').focus();
        await alice.keyboard.press('Control+k');
        await alice.locator('#switcher-modal.show').waitFor({ timeout: TIMEOUT });
        assert.equal(await alice.evaluate(() => document.activeElement?.id), 'switcher-input');
        await alice.locator('#switcher-input').fill('lob');
        assert.deepEqual(await alice.locator('#switcher-list .switcher-item').evaluateAll((nodes) =>
            nodes.map((node) => node.dataset.name)), ['lobby']);
        await alice.keyboard.press('Enter');
        await alice.locator('#chat-title', { hasText: 'lobby' }).waitFor({ timeout: TIMEOUT });

        await alice.keyboard.press('Control+k');
        await alice.locator('#switcher-modal.show').waitFor({ timeout: TIMEOUT });
        await alice.locator('#switcher-input').fill('car');
        await alice.keyboard.press('Enter');
        await alice.locator('#pm-title', { hasText: 'carol' }).waitFor({ timeout: TIMEOUT });
        await alice.locator('#rooms li[data-room="lobby"] button').click();
        await alice.locator('#chat-title', { hasText: 'lobby' }).waitFor({ timeout: TIMEOUT });
    });

    it('on a phone: the list, then the room with its composer on screen, and back', async () => {
        const { carol } = pages;
        assert.equal(await carol.locator('#rooms-area').isVisible(), false, 'the list first');
        await joinRoom(carol, 'lobby');
        assert.equal(await carol.locator('#rooms').isVisible(), false, 'the chat replaces the list');
        const composer = carol.locator('#composer');
        assert.equal(await outsideViewport(composer), 0, 'the composer is inside the viewport');
        await message(carol, 'more news').waitFor({ timeout: TIMEOUT });
        await say(carol, 'hello from my phone');
        assert.equal(await outsideViewport(composer), 0, 'still, after sending');
        assert.equal(await carol.evaluate(() =>
            document.documentElement.scrollWidth - document.documentElement.clientWidth), 0, 'no sideways scroll');
        await screenshot(carol, '50-web-phone-light');
        // Members open over the chat, and close again
        await carol.locator('#members-toggle').click();
        await carol.locator('#members li[data-user="alice"]').waitFor({ timeout: TIMEOUT });
        await screenshot(carol, '50-web-phone-members');
        await carol.locator('#members-toggle').click();
        await carol.locator('#members-panel').waitFor({ state: 'hidden', timeout: TIMEOUT });

        await carol.locator('#chat-back').click();
        await carol.locator('#rooms').waitFor({ state: 'visible', timeout: TIMEOUT });
        assert.equal(await carol.locator('#chat-view').isVisible(), false);
        await screenshot(carol, '50-web-phone-list-light');
    });

    it('follows prefers-color-scheme, with a toggle kept across reloads', async () => {
        const { bob, alice } = pages;
        const theme = (page) => page.evaluate(() => ({
            attribute: document.documentElement.dataset.bsTheme,
            background: getComputedStyle(document.body).backgroundColor,
        }));
        const dark = await theme(bob);
        assert.equal(dark.attribute, 'dark');
        assert.equal(dark.background, 'rgb(33, 37, 41)');
        assert.equal((await theme(alice)).attribute, 'light');
        assert.equal(await bob.locator('#theme-toggle').getAttribute('aria-pressed'), 'true');
        await bob.locator('#rooms li[data-room="lobby"] button').click();
        await message(bob, 'hello from my phone').waitFor({ timeout: TIMEOUT });
        await screenshot(bob, '50-web-desktop-dark');
        assert.deepEqual(await seriousViolations(bob), [], 'a room in dark mode');

        // The toggle overrides the system, and the choice stays after a reload
        await bob.locator('#theme-toggle').click();
        assert.equal((await theme(bob)).attribute, 'light');
        await bob.reload();
        await bob.locator('#dashboard-view').waitFor({ state: 'visible', timeout: TIMEOUT });
        assert.equal((await theme(bob)).attribute, 'light');
        assert.equal(await bob.locator('#theme-toggle').getAttribute('aria-pressed'), 'false');
        await bob.locator('#theme-toggle').click();
        assert.equal((await theme(bob)).attribute, 'dark');

        // A phone in dark mode, in a room and at the list
        const context = await newContext(browser, { width: 390, height: 844, colorScheme: 'dark' });
        const phone = await openPage(context, server, consoleErrors);
        await signIn(phone, 'carol');
        await phone.locator('#rooms li[data-room="lobby"] button').click();
        await phone.locator('#chat-title', { hasText: 'lobby' }).waitFor({ timeout: TIMEOUT });
        await message(phone, 'hello from my phone').waitFor({ timeout: TIMEOUT });
        assert.equal(await outsideViewport(phone.locator('#composer')), 0);
        await screenshot(phone, '50-web-phone-dark');
        await phone.locator('#chat-back').click();
        await screenshot(phone, '50-web-phone-list-dark');
        await context.close();
    });

    it('loads only the UI\'s own files', async () => {
        const requested = new Set([...pages.alice.requested, ...pages.bob.requested, ...pages.carol.requested]);
        requested.delete('/ws');
        const unexpected = [...requested].filter((each) => !UI_PATHS.has(each));
        assert.deepEqual(unexpected, []);
        console.log(`UI paths requested: ${[...requested].sort().join(' ')}`);
    });
});
