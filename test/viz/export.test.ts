// Figure export: plotly figure specs are well formed, HTML files are self-contained, and PNG
// export through headless Chromium gives a valid PNG of the requested size that is not blank.
// The Chromium tests skip (saying why) where no Chromium is installed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PNG } from 'pngjs';
import {
  attentionMapFigure,
  codebookUsageFigure,
  figureHtml,
  figureJson,
  LiveFigure,
  standaloneHtml,
  trainingCurveFigure,
} from '../../src/viz/plotly';
import type { PlotlyFigure } from '../../src/viz/plotly';
import { FigureExporter, findChromium, saveFigures, saveRasterFigure } from '../../src/viz/export';
import { blankImage } from '../../src/viz/png';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-export-test-'));
}

/** A log like trainGpt's: 60 noisy decreasing minibatch NLLs, test NLL at 0 and 3 epochs. */
function fakeLog() {
  const trainNll = Array.from(
    { length: 60 },
    (_, i) => 4 * Math.exp(-i / 25) + 2 + 0.1 * Math.sin(i),
  );
  const testNll = [0, 1, 2, 3].map((epoch) => ({
    epoch,
    step: epoch * 20,
    nll: 4.2 * Math.exp(-epoch / 2) + 2,
  }));
  return { trainNll, testNll };
}

function causalWeights(T: number, seed: number): Float32Array {
  const w = new Float32Array(T * T);
  for (let q = 0; q < T; q++) {
    let sum = 0;
    for (let k = 0; k <= q; k++) sum += w[q * T + k] = 1 + ((q * 31 + k * 17 + seed) % 7);
    for (let k = 0; k <= q; k++) w[q * T + k]! /= sum;
  }
  return w;
}

test('training curve: minibatch, smoothed and per-epoch traces', () => {
  const log = fakeLog();
  const fig = trainingCurveFigure(log, { title: 'test run' });
  assert.equal(fig.data.length, 3);
  assert.deepEqual(
    fig.data[0]!.x,
    Array.from({ length: 60 }, (_, i) => i + 1),
  );
  assert.deepEqual(fig.data[0]!.y, log.trainNll);
  assert.deepEqual(fig.data[2]!.x, [0, 20, 40, 60]);
  assert.match(String((fig.layout.title as { text: string }).text), /test run/);
  // An empty log (before the first step) is still a drawable figure.
  const empty = trainingCurveFigure({ trainNll: [], testNll: [] });
  assert.equal(empty.data.length, 3);
  assert.doesNotThrow(() => JSON.parse(figureJson(empty)));
});

test('attention map: one heatmap per head, future positions blank, repeated tokens kept', () => {
  const tokens = ['<bos>', 'c1', 'c1', 'c7'];
  const fig = attentionMapFigure(
    [
      { title: 'head 0', weights: causalWeights(4, 0) },
      { title: 'head 1', weights: causalWeights(4, 1) },
    ],
    tokens,
  );
  assert.equal(fig.data.length, 2);
  assert.equal(fig.data[1]!.xaxis, 'x2');
  const z = fig.data[0]!.z as (number | null)[][];
  assert.equal(z[0]![1], null);
  assert.ok(Math.abs((z[3] as number[]).reduce((a, b) => a + b, 0) - 1) < 1e-6);
  assert.deepEqual((fig.layout.xaxis as { ticktext: string[] }).ticktext, tokens);
  assert.throws(
    () => attentionMapFigure([{ title: 'h', weights: new Float32Array(3) }], tokens),
    /16/,
  );
});

test('codebook usage: counts per code, sorted by rank, usage in the title', () => {
  const fig = codebookUsageFigure(Int32Array.from([3, 3, 3, 1, 0, 3]), 5);
  assert.deepEqual(fig.data[0]!.y, [4, 1, 1, 0, 0]);
  assert.deepEqual(fig.data[0]!.customdata, [3, 0, 1, 2, 4]);
  assert.match(String((fig.layout.title as { text: string }).text), /3\/5 codes used/);
  assert.throws(() => codebookUsageFigure([5], 5), /not in 0\.\.4/);
});

test('HTML: self-contained document, script-safe JSON, live updates reuse one div', () => {
  const fig: PlotlyFigure = {
    data: [{ type: 'scatter', x: Float32Array.from([1, 2]), y: [3, 4], name: '</script><b>' }],
    layout: { title: { text: 'x' } },
  };
  const json = figureJson(fig);
  assert.ok(!json.includes('</script>'));
  assert.deepEqual(JSON.parse(json).data[0].x, [1, 2]);
  const page = standaloneHtml(fig);
  assert.ok(page.includes('plotly.js v2'), 'plotly.js is inlined');
  assert.ok(!/<script[^>]+src=/.test(page), 'nothing is fetched');
  assert.match(figureHtml(fig, 'abc'), /<div id="abc"/);

  const shown: string[] = [];
  const updates: string[] = [];
  const live = new LiveFigure(
    { html: (s) => shown.push(s) },
    { html: (s) => updates.push(s) },
    {
      minIntervalMs: 60_000,
    },
  );
  assert.equal(live.update(fig), true);
  assert.equal(live.update(fig), false, 'throttled');
  assert.equal(live.update(fig, true), true, 'forced');
  assert.equal(shown.length, 1);
  assert.equal(updates.length, 1);
  assert.ok(updates[0]!.includes(JSON.stringify(live.divId)));
});

test('raster figures: PNG plus an HTML page that embeds it', () => {
  const dir = tempDir();
  try {
    const saved = saveRasterFigure(blankImage(10, 6, [200, 10, 10]), 'grid', { dir });
    const png = PNG.sync.read(fs.readFileSync(saved.png!));
    assert.equal(png.width, 10);
    assert.equal(png.height, 6);
    assert.match(fs.readFileSync(saved.html!, 'utf8'), /src="data:image\/png;base64,/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const chromium = findChromium();
const noChromium =
  chromium === null
    ? 'no Chromium found (/usr/bin/chromium or MMGPT_CHROMIUM): apt-get install chromium'
    : false;

/** Pixels (of an RGBA PNG) that differ from the top-left pixel, and distinct colours. */
function variety(png: PNG): { differing: number; colours: number } {
  const colours = new Set<number>();
  let differing = 0;
  const d = png.data;
  for (let i = 0; i < d.length; i += 4) {
    const c = (d[i]! << 16) | (d[i + 1]! << 8) | d[i + 2]!;
    colours.add(c);
    if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2]) differing++;
  }
  return { differing, colours: colours.size };
}

test(
  'PNG export through headless Chromium: valid PNG, expected size, not blank',
  { skip: noChromium, timeout: 120_000 },
  async () => {
    const dir = tempDir();
    try {
      const figures = {
        curve: trainingCurveFigure(fakeLog()),
        attention: attentionMapFigure(
          [
            { title: 'head 0', weights: causalWeights(8, 0) },
            { title: 'head 1', weights: causalWeights(8, 3) },
          ],
          Array.from({ length: 8 }, (_, i) => `t${i}`),
        ),
        usage: codebookUsageFigure(
          Int32Array.from({ length: 200 }, (_, i) => (i * i) % 17),
          32,
        ),
      };
      const saved = await saveFigures(figures, { dir, width: 640, height: 400, scale: 1 });
      for (const [name, files] of Object.entries(saved)) {
        const bytes = fs.readFileSync(files.png!);
        assert.deepEqual(
          [...bytes.subarray(0, 8)],
          [137, 80, 78, 71, 13, 10, 26, 10],
          `${name}: PNG signature`,
        );
        const png = PNG.sync.read(bytes);
        assert.equal(png.width, 640, `${name}: width`);
        assert.equal(png.height, 400, `${name}: height`);
        const v = variety(png);
        assert.ok(
          v.differing > 640 * 400 * 0.01,
          `${name}: only ${v.differing} non-background pixels`,
        );
        assert.ok(v.colours > 8, `${name}: only ${v.colours} colours`);
        assert.ok(fs.statSync(files.html!).size > 1_000_000, `${name}: HTML inlines plotly.js`);
      }
      // The default scale doubles the figure's own size.
      const exporter = await FigureExporter.open();
      try {
        const png = PNG.sync.read(await exporter.png(figures.curve));
        assert.equal(png.width, 1800);
        assert.equal(png.height, 1000);
      } finally {
        await exporter.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);
