// Line charts rasterised to PNG with no browser: the training curve for the report and the CLI.
//
// A deliberately small renderer: axes with "nice" ticks, polylines (Bresenham), point markers,
// a legend and a title, drawn with the 5x7 bitmap font of png.ts. Notebooks use plotly for
// interactive figures (plotly.ts); this keeps `mmgpt train` free of a Chromium dependency.

import { blankImage, drawText, textWidth, writePng, GLYPH_HEIGHT } from './png';
import type { RgbColour, RgbImage } from './png';

export interface Series {
  label: string;
  x: readonly number[];
  y: readonly number[];
  colour: RgbColour;
  /** Draw markers at the points (for sparse series such as per-epoch test NLL). */
  markers?: boolean;
}

export interface ChartOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  /** Fix the y range (e.g. to hide the first steps' large losses). */
  yMin?: number;
  yMax?: number;
}

/** Round tick steps: 1, 2 or 5 times a power of ten. */
export function niceTicks(lo: number, hi: number, maxTicks = 8): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / maxTicks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step)
    ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function setPixel(img: RgbImage, x: number, y: number, c: RgbColour): void {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  img.data.set(c, (Math.round(y) * img.width + Math.round(x)) * 3);
}

function line(img: RgbImage, x0: number, y0: number, x1: number, y1: number, c: RgbColour): void {
  x0 = Math.round(x0);
  y0 = Math.round(y0);
  x1 = Math.round(x1);
  y1 = Math.round(y1);
  const dx = Math.abs(x1 - x0);
  const dy = -Math.abs(y1 - y0);
  const sx = x0 < x1 ? 1 : -1;
  const sy = y0 < y1 ? 1 : -1;
  let err = dx + dy;
  for (;;) {
    setPixel(img, x0, y0, c);
    if (x0 === x1 && y0 === y1) break;
    const e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x0 += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y0 += sy;
    }
  }
}

const fmtTick = (v: number): string =>
  Math.abs(v) >= 1000 ? `${+(v / 1000).toPrecision(3)}k` : `${+v.toPrecision(4)}`;

/** Renders the series as a line chart. */
export function lineChart(series: readonly Series[], opts: ChartOptions = {}): RgbImage {
  const width = opts.width ?? 800;
  const height = opts.height ?? 500;
  const img = blankImage(width, height, [255, 255, 255]);
  const black: RgbColour = [0, 0, 0];
  const grey: RgbColour = [225, 225, 225];
  const all = series
    .flatMap((s) => s.x.map((x, i) => [x, s.y[i]] as const))
    .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (all.length === 0) throw new Error('lineChart: no finite points to plot');
  let xMin = Math.min(...all.map(([x]) => x));
  let xMax = Math.max(...all.map(([x]) => x));
  let yMin = opts.yMin ?? Math.min(...all.map(([, y]) => y));
  let yMax = opts.yMax ?? Math.max(...all.map(([, y]) => y));
  if (xMax === xMin) xMax = xMin + 1;
  if (yMax === yMin) yMax = yMin + 1;
  const yPad = (yMax - yMin) * 0.04;
  if (opts.yMin === undefined) yMin -= yPad;
  if (opts.yMax === undefined) yMax += yPad;
  const left = 70;
  const right = width - 20;
  const top = opts.title ? 40 : 20;
  const bottom = height - 50;
  const px = (x: number) => left + ((x - xMin) / (xMax - xMin)) * (right - left);
  const py = (y: number) =>
    bottom - ((Math.min(Math.max(y, yMin), yMax) - yMin) / (yMax - yMin)) * (bottom - top);

  for (const t of niceTicks(yMin, yMax)) {
    line(img, left, py(t), right, py(t), grey);
    const label = fmtTick(t);
    drawText(img, label, left - 8 - textWidth(label), Math.round(py(t)) - 3, black);
  }
  for (const t of niceTicks(xMin, xMax)) {
    line(img, px(t), bottom, px(t), bottom + 4, black);
    const label = fmtTick(t);
    drawText(img, label, Math.round(px(t) - textWidth(label) / 2), bottom + 8, black);
  }
  line(img, left, top, left, bottom, black);
  line(img, left, bottom, right, bottom, black);
  if (opts.title)
    drawText(img, opts.title, Math.round((width - textWidth(opts.title, 2)) / 2), 10, black, 2);
  if (opts.xLabel)
    drawText(
      img,
      opts.xLabel,
      Math.round((left + right - textWidth(opts.xLabel)) / 2),
      height - 20,
      black,
    );
  if (opts.yLabel) drawText(img, opts.yLabel, 4, top - 14 < 0 ? 2 : top - 14, black);

  for (const s of series) {
    let prev: [number, number] | null = null;
    s.x.forEach((x, i) => {
      const y = s.y[i];
      if (!Number.isFinite(x) || !Number.isFinite(y)) {
        prev = null;
        return;
      }
      const p: [number, number] = [px(x), py(y)];
      if (prev) line(img, prev[0], prev[1], p[0], p[1], s.colour);
      if (s.markers)
        for (let d = -2; d <= 2; d++)
          for (let e = -2; e <= 2; e++) setPixel(img, p[0] + d, p[1] + e, s.colour);
      prev = p;
    });
  }
  // Legend, top right.
  series.forEach((s, i) => {
    const y = top + 8 + i * (GLYPH_HEIGHT + 6);
    const x = right - 12 - textWidth(s.label) - 22;
    for (let d = 0; d < 16; d++)
      for (let e = -1; e <= 1; e++) setPixel(img, x + d, y + 3 + e, s.colour);
    drawText(img, s.label, x + 22, y, black);
  });
  return img;
}

/** Moving average over a trailing window (for noisy per-minibatch curves). */
export function movingAverage(values: readonly number[], window: number): number[] {
  const out: number[] = [];
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    if (i >= window) sum -= values[i - window];
    out.push(sum / Math.min(i + 1, window));
  }
  return out;
}

export interface CurveLog {
  trainNll: readonly number[];
  testNll: readonly { epoch: number; step: number; nll: number }[];
}

/** The training curve: train NLL per minibatch (and its moving average), test NLL per epoch. */
export function trainingCurve(log: CurveLog, title = 'mmgpt training'): RgbImage {
  const steps = log.trainNll.map((_, i) => i + 1);
  const window = Math.max(1, Math.round(log.trainNll.length / 100));
  const finalTest = log.testNll[log.testNll.length - 1];
  const testTail = log.testNll.slice(1).map((e) => e.nll);
  const yMax =
    Math.max(...testTail, ...log.trainNll.slice(Math.floor(log.trainNll.length / 20))) * 1.15;
  return lineChart(
    [
      { label: 'train NLL (minibatch)', x: steps, y: log.trainNll, colour: [170, 200, 235] },
      {
        label: `train NLL (mean of ${window})`,
        x: steps,
        y: movingAverage(log.trainNll, window),
        colour: [30, 90, 200],
      },
      {
        label: `test NLL (final ${finalTest ? finalTest.nll.toFixed(4) : '-'})`,
        x: log.testNll.map((e) => e.step),
        y: log.testNll.map((e) => e.nll),
        colour: [220, 60, 30],
        markers: true,
      },
    ],
    {
      title,
      xLabel: 'step',
      yLabel: 'nats/dim',
      yMax: Number.isFinite(yMax) && log.trainNll.length > 20 ? yMax : undefined,
    },
  );
}

export function writeTrainingCurve(filePath: string, log: CurveLog, title?: string): void {
  writePng(filePath, trainingCurve(log, title));
}
