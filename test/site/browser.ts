// The page in a real browser, for the site tests and bench/site.ts: writes the site folder from
// the shipped weights into a temp directory, serves it on 127.0.0.1 and launches headless
// Chromium through playwright-core with the flags src/viz/export.ts uses. Without Chromium the
// tests skip saying so, unless MMGPT_REQUIRE_NOTEBOOKS=1 (CI), where that is a failure.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { CHROMIUM_ARGS, findChromium } from '../../src/viz/export';
import { weightsDir } from '../../src/paths';
import { writeSite, type SiteResult } from '../../src/site/build';
import { serveSite } from '../../src/site/serve';

export interface SiteSession {
  site: SiteResult;
  url: string;
  browser: Browser;
  /** Every page error (uncaught exception) of the pages opened through `open`. */
  pageErrors: string[];
  /** A new page at `url` + `query`, its errors recorded. */
  open(query?: string, viewport?: { width: number; height: number }): Promise<Page>;
  close(): Promise<void>;
}

/** Why the browser tests cannot run here, or null when they can. */
export function missingBrowser(): string | null {
  return findChromium() === null
    ? 'no Chromium (apt-get install chromium, or set MMGPT_CHROMIUM)'
    : null;
}

/** Writes the site folder into a temp directory, serves it and starts Chromium. */
export async function startSite(): Promise<SiteSession> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-site-'));
  const site = await writeSite({ checkpoint: path.join(weightsDir(), 'best'), out: dir });
  const server = await serveSite(dir, 0);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { chromium } = require('playwright-core') as typeof import('playwright-core');
  const browser = await chromium.launch({
    executablePath: findChromium()!,
    headless: true,
    args: [...CHROMIUM_ARGS],
  });
  const pageErrors: string[] = [];
  return {
    site,
    url: server.url,
    browser,
    pageErrors,
    async open(query = '', viewport = { width: 1100, height: 1400 }) {
      const page = await browser.newPage({ viewport });
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(server.url + query);
      return page;
    },
    async close() {
      await browser.close();
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Where the tests keep their screenshots: $MMGPT_SITE_SCREENSHOTS, else a temp folder. */
export function screenshotsDir(): string {
  const dir =
    process.env.MMGPT_SITE_SCREENSHOTS ?? path.join(os.tmpdir(), 'mmgpt-site-screenshots');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}
