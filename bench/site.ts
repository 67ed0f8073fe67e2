// The page of `mmgpt site` in headless Chromium, timed per backend in one browser: the wasm
// backend (when the folder has the .wasm and the bundle the backend) against the js reference
// backend, each in its own page of the same site (`?backend=wasm`, `?backend=js`):
// - page load to ready (navigation start to window.mmgpt.ready: fetch, hash checks, model build);
// - 9 images from a caption, default sampling (reranking included);
// - a caption for one image (a test image), default sampling;
// - 9 unconditional pairs, default sampling;
// and the page's total size, gzipped (every file the page fetches). Numbers and ratios, never a
// pass or a fail. Each timing is the median of --reps runs after one small warm-up call.
//
// Usage: node dist/bench/site.js [--checkpoint PATH] [--reps N] [--backends js,wasm] [--json]

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import type { Browser } from 'playwright-core';
import { weightsDir } from '../src/paths';
import { CHROMIUM_ARGS, findChromium } from '../src/viz/export';
import { writeSite } from '../src/site/build';
import { serveSite } from '../src/site/serve';
import { SITE_FILES, type TestImage } from '../src/site/manifest';

interface BackendTimes {
  backend: string;
  loadToReadyMs: number;
  textToImage9Ms: number;
  imageToText1Ms: number;
  unconditional9Ms: number;
}

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The gzipped size of every file the page fetches. */
function gzippedSizes(
  dir: string,
  fetched: string[],
): { file: string; bytes: number; gzip: number }[] {
  return fetched.map((file) => {
    const bytes = fs.readFileSync(path.join(dir, file));
    return { file, bytes: bytes.length, gzip: zlib.gzipSync(bytes, { level: 9 }).length };
  });
}

async function timeBackend(
  browser: Browser,
  url: string,
  backend: string,
  testImage: TestImage,
  reps: number,
): Promise<BackendTimes> {
  const loads: number[] = [];
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error(`site bench: page error: ${e.message}`));
  for (let r = 0; r < reps; r++) {
    await page.goto(`${url}?backend=${backend}`);
    loads.push(await page.evaluate(() => window.mmgpt.ready.then(() => performance.now())));
  }
  const running = await page.evaluate(() => window.mmgpt.backend);
  if (running !== backend)
    throw new Error(`asked for the ${backend} backend, the page runs ${running}`);
  const caption = testImage.caption;
  const levels = Array.from({ length: 28 }, (_, y) =>
    Array.from({ length: 28 }, (_, x) =>
      Array.from(testImage.levels.slice((y * 28 + x) * 3, (y * 28 + x) * 3 + 3), Number),
    ),
  );
  const times = await page.evaluate(
    async ({ caption, levels, reps }) => {
      const api = window.mmgpt;
      await api.textToImage(caption, { n: 1, rerank: 1 }); // warm-up
      const t2i: number[] = [];
      const i2t: number[] = [];
      const unc: number[] = [];
      for (let r = 0; r < reps; r++) {
        t2i.push((await api.textToImage(caption, { n: 9 })).ms);
        i2t.push((await api.imageToText(levels)).ms);
        unc.push((await api.unconditional(9)).ms);
      }
      return { t2i, i2t, unc };
    },
    { caption, levels, reps },
  );
  await page.close();
  return {
    backend,
    loadToReadyMs: median(loads),
    textToImage9Ms: median(times.t2i),
    imageToText1Ms: median(times.i2t),
    unconditional9Ms: median(times.unc),
  };
}

async function main(): Promise<void> {
  const reps = Number(option('reps') ?? '1');
  if (!Number.isInteger(reps) || reps < 1) throw new Error('--reps must be a positive integer');
  const executablePath = findChromium();
  if (executablePath === null)
    throw new Error('site bench: no Chromium (apt-get install chromium)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-site-bench-'));
  const site = await writeSite({
    checkpoint: option('checkpoint') ?? path.join(weightsDir(), 'best'),
    out: dir,
    log: (line) => console.error(line),
  });
  const hasWasm = site.manifest.wasm !== null && site.manifest.bundle.wasmBackend;
  const asked = (option('backends') ?? 'wasm,js').split(',');
  const backends = asked.filter((b) => b !== 'wasm' || hasWasm);
  if (backends.length < asked.length)
    console.log('site bench: no wasm backend in this build of the page: js only');
  const server = await serveSite(dir, 0);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { chromium } = require('playwright-core') as typeof import('playwright-core');
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [...CHROMIUM_ARGS],
  });
  const testImages = JSON.parse(
    fs.readFileSync(path.join(dir, SITE_FILES.testImages), 'utf8'),
  ) as TestImage[];
  const results: BackendTimes[] = [];
  try {
    for (const backend of backends)
      results.push(await timeBackend(browser, server.url, backend, testImages[0]!, reps));
  } finally {
    await browser.close();
    await server.close();
  }
  const fetched = [
    SITE_FILES.page,
    SITE_FILES.bundle,
    SITE_FILES.manifest,
    SITE_FILES.checkpoint,
    SITE_FILES.tokenizer,
    SITE_FILES.testImages,
    ...(site.manifest.wasm !== null ? [SITE_FILES.wasm] : []),
  ];
  const sizes = gzippedSizes(dir, fetched);
  fs.rmSync(dir, { recursive: true, force: true });
  report(results, sizes, os.loadavg()[0]!, reps);
}

function report(
  results: BackendTimes[],
  sizes: { file: string; bytes: number; gzip: number }[],
  load: number,
  reps: number,
): void {
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`.padStart(9);
  console.log(
    `Chromium, ${os.cpus().length} cores (load ${load.toFixed(1)}), median of ${reps}; default sampling`,
  );
  console.log('backend  load to ready  9 images (t2i)  1 caption (i2t)  9 pairs (uncond)');
  for (const r of results)
    console.log(
      `${r.backend.padEnd(8)} ${s(r.loadToReadyMs).padStart(13)}  ${s(r.textToImage9Ms).padStart(14)}  ` +
        `${s(r.imageToText1Ms).padStart(15)}  ${s(r.unconditional9Ms).padStart(16)}`,
    );
  const js = results.find((r) => r.backend === 'js');
  const wasm = results.find((r) => r.backend === 'wasm');
  if (js !== undefined && wasm !== undefined) {
    const x = (a: number, b: number) => `${(a / b).toFixed(1)}x`.padStart(9);
    console.log(
      `js/wasm  ${x(js.loadToReadyMs, wasm.loadToReadyMs).padStart(13)}  ${x(js.textToImage9Ms, wasm.textToImage9Ms).padStart(14)}  ` +
        `${x(js.imageToText1Ms, wasm.imageToText1Ms).padStart(15)}  ${x(js.unconditional9Ms, wasm.unconditional9Ms).padStart(16)}`,
    );
  }
  const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`.padStart(10);
  console.log('\nfile                        bytes     gzipped');
  for (const f of sizes) console.log(`${f.file.padEnd(24)} ${kib(f.bytes)}  ${kib(f.gzip)}`);
  const total = sizes.reduce((t, f) => ({ bytes: t.bytes + f.bytes, gzip: t.gzip + f.gzip }), {
    bytes: 0,
    gzip: 0,
  });
  console.log(`${'total'.padEnd(24)} ${kib(total.bytes)}  ${kib(total.gzip)}`);
  if (process.argv.includes('--json')) console.log(JSON.stringify({ results, sizes, load, reps }));
}

main().catch((e) => {
  console.error(`site bench: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
