/**
 * Debian's Chromium driven by playwright-core, for the web console's tests. Never a downloaded
 * browser: the executable is /usr/bin/chromium (package chromium, scripts/test-debs.txt).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';

export const chromiumPath = '/usr/bin/chromium';
export const screenshotDir = join(import.meta.dirname, '..', '..', '.cache', 'screenshots');

/** Without the networking flags Chromium calls home at start, and this network refuses it. */
const chromiumFlags = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface TestBrowser {
  /** A new tab (its own sessionStorage) that records the page's errors. */
  newPage(): Promise<WatchedPage>;
  close(): Promise<void>;
}

export interface WatchedPage {
  page: Page;
  /** Console errors and uncaught exceptions, except the HTTP refusals the test provoked. */
  errors(): string[];
  /** A refusal the test provokes on purpose: the browser logs its status as a console error. */
  allowHttpStatus(status: number): void;
  screenshot(name: string): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'zenith-chromium-'));
  // A fresh profile each run, as the machine's notes ask (a persistent context on a new directory).
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: chromiumFlags,
  });
  mkdirSync(screenshotDir, { recursive: true });
  return {
    async newPage() {
      const page = await context.newPage();
      const errors: string[] = [];
      const allowed = new Set<number>();
      page.on('console', (message) => {
        if (message.type() !== 'error') return;
        const status = /responded with a status of (\d+)/.exec(message.text());
        if (status && allowed.has(Number(status[1]))) return;
        // The machine's addresses changed under the browser (another test file, run beside this
        // one, made a veth or a tap device): Chromium fails the requests in flight. Not the page's
        // doing; a test that needs those answers fails on what it then does not see.
        if (message.text().includes('net::ERR_NETWORK_CHANGED')) return;
        // The browser's text names no address; the location says which request it was.
        const { url } = message.location();
        errors.push(url ? `${message.text()} (${url})` : message.text());
      });
      page.on('pageerror', (error) => errors.push(`uncaught: ${error.message}`));
      // A page whose load met ERR_NETWORK_CHANGED (above) is loaded again, up to three times: a
      // first page that lost its bundle that way showed no login form, and its test waited 30 s.
      let networkChanged = false;
      page.on('requestfailed', (request) => {
        if (request.failure()?.errorText.includes('ERR_NETWORK_CHANGED')) networkChanged = true;
      });
      const goto = page.goto.bind(page);
      page.goto = async (url, options) => {
        for (let attempt = 1; ; attempt += 1) {
          networkChanged = false;
          try {
            const response = await goto(url, options);
            if (!networkChanged || attempt === 3) return response;
          } catch (error) {
            if (!String(error).includes('ERR_NETWORK_CHANGED') || attempt === 3) throw error;
          }
        }
      };
      return {
        page,
        errors: () => [...errors],
        allowHttpStatus: (status) => allowed.add(status),
        async screenshot(name) {
          await page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: true });
        },
      };
    },
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
