// The page of `mmgpt site` in headless Chromium (test/site/browser.ts), built from the shipped
// weights and served from 127.0.0.1, driven through window.mmgpt and its own controls:
// - it loads to ready, says which backend runs and why, and fits a phone-sized screen;
// - on the js backend (and the wasm one, where the page has it), one seed gives the samples the
//   Node library gives on the same backend;
// - text -> image with the default sampling: the attribute classifier reads most images right;
// - a test image drawn through the canvas's pointer events is read back as its caption;
// - a bad caption shows the message that names the accepted words and draws nothing;
// - a damaged weights file shows an error, not a blank page;
// - no page error anywhere; a screenshot is kept (screenshotsDir(), never committed).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Page } from 'playwright-core';
import { setBackend } from '../../src/engine/registry';
import { parseCaption } from '../../src/data/vocab';
import { PALETTE } from '../../src/data/palette';
import { IMAGE_VALUES } from '../../src/data/images';
import { weightsDir } from '../../src/paths';
import { loadClassifier } from '../../src/eval/classifier';
import { loadRun } from '../../src/eval/run';
import { drawSamples, type SampleRequest } from '../../src/pipeline/figures';
import { serveSite } from '../../src/site/serve';
import type { SiteManifest, TestImage } from '../../src/site/manifest';
import { missingBrowser, screenshotsDir, startSite, type SiteSession } from './browser';

const missing = missingBrowser();
const required = process.env.MMGPT_REQUIRE_NOTEBOOKS === '1';

const levelsOf = (image: TestImage) => Uint8Array.from(image.levels, (ch) => ch.charCodeAt(0) - 48);
const nested = (flat: Uint8Array) =>
  Array.from({ length: 28 }, (_, y) =>
    Array.from({ length: 28 }, (_, x) =>
      Array.from(flat.subarray((y * 28 + x) * 3, (y * 28 + x) * 3 + 3)),
    ),
  );
const flat = (images: number[][][][]) => Uint8Array.from(images.flat(3));

async function ready(page: Page): Promise<void> {
  await page.evaluate(() => window.mmgpt.ready);
}

describe(
  'the site page in Chromium',
  { skip: missing !== null && !required ? missing! : false },
  () => {
    let s: SiteSession;
    let testImages: TestImage[];

    before(async () => {
      if (missing !== null) throw new Error(`MMGPT_REQUIRE_NOTEBOOKS=1 but ${missing}`);
      setBackend('js'); // the Node side compares on the page's backend
      s = await startSite();
      testImages = JSON.parse(fs.readFileSync(path.join(s.site.dir, 'test-images.json'), 'utf8'));
    });
    after(async () => {
      await s?.close();
    });

    test('loads to ready, says its backend, fits a phone screen', async () => {
      const page = await s.open('', { width: 390, height: 844 });
      await ready(page);
      const backend = await page.evaluate(() => window.mmgpt.backend);
      assert.ok(['js', 'wasm'].includes(backend), backend);
      assert.match((await page.locator('#status').textContent())!, new RegExp(`Ready.*${backend}`));
      if (backend === 'js')
        assert.match((await page.locator('#notice').textContent())!, /js reference backend/);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow} px wider than a 390 px screen`);
      await page.close();
    });

    for (const backend of ['js', 'wasm'] as const)
      test(`one seed gives the samples of the Node library on the ${backend} backend`, async (t) => {
        if (
          backend === 'wasm' &&
          !(s.site.manifest.wasm !== null && s.site.manifest.bundle.wasmBackend)
        ) {
          t.skip('this build of the page has no wasm backend');
          return;
        }
        const page = await s.open(`?backend=${backend}`);
        await ready(page);
        assert.equal(await page.evaluate(() => window.mmgpt.backend), backend);
        setBackend(backend); // the Node side on the page's backend
        const caption = testImages[0]!.caption;
        const image = levelsOf(testImages[1]!);
        const options = { n: 2, rerank: 1, seed: 5 };
        const fromPage = await page.evaluate(
          async ({ caption, image, options }) => ({
            t2i: await window.mmgpt.textToImage(caption, options),
            i2t: await window.mmgpt.imageToText(image, options),
            uncond: await window.mmgpt.unconditional(2, options),
          }),
          { caption, image: nested(image), options },
        );
        const run = loadRun(path.join(weightsDir(), 'best', 'checkpoint.safetensors'));
        const request = (
          mode: SampleRequest['mode'],
          extra: Partial<SampleRequest>,
        ): SampleRequest => ({
          mode,
          n: 2,
          prompt: null,
          imagePath: null,
          image: null,
          samplingPreset: 'default',
          overrides: { rerank: 1 },
          seed: 5,
          batchSize: 64,
          ...extra,
        });
        const t2i = drawSamples(run, request('text2image', { prompt: caption }));
        const codes = Int32Array.from(t2i.flatMap((x) => Array.from(x.imageCodes)));
        assert.deepEqual(
          Array.from(flat(fromPage.t2i.images)),
          Array.from(run.tokenizer.decode(codes, 2)),
        );
        const i2t = drawSamples(run, request('image2text', { n: 1, image }));
        assert.equal(fromPage.i2t.caption, i2t[0]!.caption);
        const uncond = drawSamples(run, request('unconditional', {}));
        assert.deepEqual(
          fromPage.uncond.captions,
          uncond.map((x) => x.caption),
        );
        setBackend('js');
        await page.close();
      });

    test('text -> image, default sampling: the classifier reads most images right', async (t) => {
      const page = await s.open();
      await ready(page);
      const captions = testImages.slice(0, 3).map((t) => t.caption);
      const results = await page.evaluate(async (captions) => {
        const out = [];
        for (const caption of captions) out.push(await window.mmgpt.textToImage(caption, { n: 1 }));
        return out;
      }, captions);
      t.diagnostic(
        `text -> image, 1 image each: ${results.map((r) => `${r.ms.toFixed(0)} ms`).join(', ')}`,
      );
      const classifier = loadClassifier(
        path.join(weightsDir(), 'classifier', 'classifier.safetensors'),
      ).model;
      let right = 0;
      let total = 0;
      const wrong: string[] = [];
      results.forEach((r, i) => {
        const truth = parseCaption(captions[i]!);
        const reads = classifier.classify(flat(r.images), r.images.length);
        for (let k = 0; k < r.images.length; k++, total++) {
          const ok =
            reads.digit[k] === truth.digit && reads.fg[k] === truth.fg && reads.bg[k] === truth.bg;
          if (ok) right++;
          else wrong.push(`${captions[i]} #${k}`);
        }
      });
      assert.ok(
        right >= Math.ceil((2 * total) / 3),
        `read right ${right} of ${total}; wrong: ${wrong.join(', ')}`,
      );
      // The page's own button draws the 9 images of its caption box (quickly: no reranking), and the
      // screenshot shows them.
      await page.locator('#rerank').fill('1');
      await page.locator('#t2i-run').click();
      await page.waitForFunction(
        () => document.querySelectorAll('#t2i-grid canvas').length === 9,
        undefined,
        {
          timeout: 120_000,
        },
      );
      assert.match((await page.locator('#t2i-time').textContent())!, /9 images in [\d.]+ s/);
      const shot = path.join(screenshotsDir(), 'site.png');
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(fs.statSync(shot).size > 10_000, `screenshot ${shot}`);
      await page.close();
    });

    test('a test image drawn through the canvas pointer events gives its caption', async (t) => {
      const page = await s.open();
      await ready(page);
      const target = testImages[0]!;
      const truth = parseCaption(target.caption);
      const fg = PALETTE[truth.fg]!;
      const bg = PALETTE[truth.bg]!;
      // The image as a pen in two colours draws it: each pixel the colour it is nearer.
      const levels = levelsOf(target);
      const drawn = new Uint8Array(IMAGE_VALUES);
      const strokes: [number, number][] = [];
      for (let p = 0; p < 28 * 28; p++) {
        const rgb = levels.subarray(p * 3, p * 3 + 3);
        const distance = (c: readonly number[]) =>
          c.reduce((d, v, i) => d + Math.abs(v - rgb[i]!), 0);
        const isFg = distance(fg.rgb) < distance(bg.rgb);
        drawn.set(isFg ? fg.rgb : bg.rgb, p * 3);
        if (isFg) strokes.push([p % 28, Math.floor(p / 28)]);
      }
      await page.selectOption('#bg', bg.name);
      await page.selectOption('#fg', fg.name);
      await page.selectOption('#pen', '1');
      // Quickly, on the js backend: the greedy caption, no reranking (the controls' fields).
      await page.locator('#temperature').fill('0');
      await page.locator('#rerank').fill('1');
      await page.locator('#draw').scrollIntoViewIfNeeded();
      const box = (await page.locator('#draw').boundingBox())!;
      for (const [x, y] of strokes) {
        await page.mouse.move(
          box.x + ((x + 0.5) * box.width) / 28,
          box.y + ((y + 0.5) * box.height) / 28,
        );
        await page.mouse.down();
        await page.mouse.up();
      }
      await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
      const onCanvas = await page.evaluate(() => {
        const canvas = document.getElementById('draw') as HTMLCanvasElement;
        const data = canvas.getContext('2d')!.getImageData(0, 0, 28, 28).data;
        return Array.from(
          { length: 28 * 28 * 3 },
          (_, i) => data[Math.floor(i / 3) * 4 + (i % 3)]! / 85,
        );
      });
      assert.deepEqual(
        onCanvas,
        Array.from(drawn),
        'the canvas holds the image its pointer events drew',
      );
      await page.locator('#i2t-run').click();
      await page.waitForFunction(
        () => /read in/.test(document.getElementById('i2t-time')!.textContent ?? ''),
        undefined,
        {
          timeout: 120_000,
        },
      );
      t.diagnostic(
        `image -> text from the canvas: ${await page.locator('#i2t-time').textContent()}`,
      );
      assert.equal(await page.locator('#i2t-caption').textContent(), target.caption);
      assert.equal(await page.locator('#i2t-candidates li').count(), 3);
      await page.close();
    });

    test('the canvas draws with the keyboard, and a test image button puts its image on it', async () => {
      const page = await s.open();
      await ready(page);
      const canvasLevels = () =>
        page.evaluate(() => {
          (document.activeElement as HTMLElement | null)?.blur(); // no keyboard cursor drawn
          const canvas = document.getElementById('draw') as HTMLCanvasElement;
          const data = canvas.getContext('2d')!.getImageData(0, 0, 28, 28).data;
          return Array.from(
            { length: 28 * 28 * 3 },
            (_, i) => data[Math.floor(i / 3) * 4 + (i % 3)]! / 85,
          );
        });
      await page.selectOption('#pen', '1');
      await page.locator('#draw').focus();
      // The cursor starts at (14, 14): two steps right, paint; one down, paint.
      for (const key of ['ArrowRight', 'ArrowRight', 'Space', 'ArrowDown', 'Enter'])
        await page.keyboard.press(key);
      const levels = await canvasLevels();
      const white = [3, 3, 3];
      const at = (x: number, y: number) => levels.slice((y * 28 + x) * 3, (y * 28 + x) * 3 + 3);
      assert.deepEqual(at(16, 14), white);
      assert.deepEqual(at(16, 15), white);
      assert.equal(
        levels.filter((v) => v === 3).length,
        6,
        'two white pixels on black, nothing else',
      );
      await page.locator('#test-images button').nth(2).click();
      assert.deepEqual(await canvasLevels(), Array.from(levelsOf(testImages[2]!)));
      await page.close();
    });

    test('a bad caption shows the message naming the accepted words and draws nothing', async () => {
      const page = await s.open();
      await ready(page);
      const input = page.locator('#caption');
      await input.fill('');
      await input.pressSequentially('dark grean ');
      assert.match(
        (await page.locator('#caption-check').textContent())!,
        /"grean" is not a colour.*green/,
      );
      await input.fill('');
      await input.pressSequentially('dark green eigth on bright cyan');
      await input.press('Enter');
      await page.locator('#t2i-run').click();
      const message = (await page.locator('#caption-check').textContent())!;
      assert.match(message, /word 3 "eigth" is not a digit \(did you mean "eight"\?\)/);
      assert.match(message, /Accepted words/);
      assert.equal(await page.locator('#t2i-grid canvas').count(), 0);
      const rejected = await page.evaluate(() =>
        window.mmgpt.textToImage('dark green eigth on bright cyan').then(
          () => 'resolved',
          (e: Error) => e.message,
        ),
      );
      assert.match(rejected, /did you mean "eight"/);
      await page.close();
    });

    test('without WebAssembly SIMD the page runs the js backend and says why', async () => {
      const page = await s.browser.newPage();
      page.on('pageerror', (e) => s.pageErrors.push(e.message));
      // The page's worker probes SIMD with WebAssembly.validate: this browser says no.
      await page.route('**/mmgpt.js', async (route) => {
        const response = await route.fetch();
        const patch = 'WebAssembly.validate = () => false;\n';
        await route.fulfill({ response, body: patch + (await response.text()) });
      });
      await page.goto(s.url);
      await ready(page);
      assert.equal(await page.evaluate(() => window.mmgpt.backend), 'js');
      const hasWasm = s.site.manifest.wasm !== null && s.site.manifest.bundle.wasmBackend;
      const notice = (await page.locator('#notice').textContent())!;
      assert.match(notice, hasWasm ? /lacks WebAssembly SIMD/ : /no wasm backend/);
      assert.match(notice, /js reference backend/);
      await page.close();
    });

    test('a damaged weights file shows an error, not a blank page', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-site-damaged-'));
      try {
        for (const f of fs.readdirSync(s.site.dir))
          fs.copyFileSync(path.join(s.site.dir, f), path.join(dir, f));
        const file = path.join(dir, 'checkpoint.safetensors');
        const bytes = fs.readFileSync(file);
        const server = await serveSite(dir, 0);
        try {
          const expectError = async (pattern: RegExp) => {
            const page = await s.browser.newPage();
            page.on('pageerror', (e) => s.pageErrors.push(e.message));
            await page.goto(server.url);
            await page.locator('#error').waitFor({ state: 'visible', timeout: 60_000 });
            const text = (await page.locator('#error').textContent())!;
            assert.match(text, pattern);
            assert.match((await page.locator('#status').textContent())!, /did not load/);
            const rejected = await page.evaluate(() =>
              window.mmgpt.ready.then(
                () => 'ready',
                (e: Error) => e.message,
              ),
            );
            assert.match(rejected, pattern);
            await page.close();
          };
          // Damaged weights: the manifest's SHA-256 no longer matches.
          const damaged = Buffer.from(bytes);
          damaged.fill(0, damaged.length >> 1, (damaged.length >> 1) + 4096);
          fs.writeFileSync(file, damaged);
          await expectError(/checkpoint\.safetensors has SHA-256 .* damaged/);
          // A garbled header with a manifest to match: the safetensors reader's own message.
          const garbled = Buffer.from(bytes);
          garbled.fill(0x7b, 8, 64);
          fs.writeFileSync(file, garbled);
          const manifestFile = path.join(dir, 'manifest.json');
          const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as SiteManifest;
          manifest.checkpoint.sha256 = createHash('sha256').update(garbled).digest('hex');
          fs.writeFileSync(manifestFile, JSON.stringify(manifest));
          await expectError(/safetensors file 'checkpoint\.safetensors': header is not valid JSON/);
        } finally {
          await server.close();
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    test('no page errors in any page', () => {
      assert.deepEqual(s.pageErrors, []);
    });
  },
);
