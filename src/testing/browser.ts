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
  /**
   * Runs `steps`; when they fail, the error says what the page showed: its address, its visible
   * text, its console and the requests that failed (ERR_NETWORK_CHANGED ones too), and a
   * screenshot is kept. A wait that timed out in CI then tells why.
   */
  explain<T>(name: string, steps: () => Promise<T>): Promise<T>;
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
      /** Everything the page said and every request that failed, for explain(). */
      const journal: string[] = [];
      const note = (line: string) => {
        journal.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
        if (journal.length > 200) journal.shift();
      };
      page.on('console', (message) => note(`console.${message.type()}: ${message.text()}`));
      page.on('framenavigated', (frame) => {
        if (frame === page.mainFrame()) note(`navigated to ${frame.url()}`);
      });
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
        const reason = request.failure()?.errorText ?? 'failed';
        note(`request failed: ${request.method()} ${request.url()}: ${reason}`);
        if (reason.includes('ERR_NETWORK_CHANGED')) networkChanged = true;
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
        async explain(name, steps) {
          try {
            return await steps();
          } catch (error) {
            const shot = join(screenshotDir, `${name}-failed.png`);
            const text = await page
              .evaluate(
                () =>
                  (globalThis as unknown as { document: { body: { innerText: string } } }).document
                    .body.innerText,
              )
              .catch((failure: unknown) => `(unreadable: ${String(failure)})`);
            await page.screenshot({ path: shot, fullPage: true }).catch(() => undefined);
            const told = [
              error instanceof Error ? error.message : String(error),
              `page ${page.url()} (screenshot ${shot})`,
              'its visible text:',
              text.replace(/\n{2,}/g, '\n').slice(0, 3000),
              'its console and failed requests:',
              ...(journal.length > 0 ? journal : ['(none)']),
            ].join('\n');
            if (error instanceof Error) {
              error.message = told;
              throw error;
            }
            throw new Error(told, { cause: error });
          }
        },
      };
    },
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
