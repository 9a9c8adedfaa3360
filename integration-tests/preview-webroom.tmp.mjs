// ad-hoc preview (not committed)
import { tempDir } from './lib/harness.js';
import { launchBrowser, startChatServer, closeChat, newContext, openPage, signIn, TIMEOUT } from './lib/browser.js';
const data = tempDir();
const server = await startChatServer({ dataDir: data });
const browser = await launchBrowser();
const errors = [];
try {
  for (const scheme of ['light', 'dark']) {
    const page = await openPage(await newContext(browser, { width: 390, height: 844, colorScheme: scheme }), server, errors);
    await signIn(page, `owner${scheme}`, { registering: true });
    await page.locator('#room-new').click();
    await page.locator('#create-room-modal.show').waitFor({ timeout: TIMEOUT });
    await page.locator('#room-name').fill(`a-longer-room-name-${scheme}`);
    await page.locator('#create-room-submit').click();
    await page.locator('#create-room-modal').waitFor({ state: 'hidden', timeout: TIMEOUT });
    await page.waitForTimeout(500);
    await page.screenshot({ path: `/tmp/shots-webroom/preview-owner-phone-${scheme}.png` });
    await page.setViewportSize({ width: 800, height: 700 });
    await page.screenshot({ path: `/tmp/shots-webroom/preview-owner-tablet-${scheme}.png` });
  }
} finally {
  await browser.close();
  await server.stop?.();
  console.log('errors', errors);
  process.exit(0);
}
