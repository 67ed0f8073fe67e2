// Plotly figures for the notebooks and the report: figure specs (plain JSON that plotly.js
// draws), HTML that draws them in a notebook output or in a self-contained file, and a live
// figure that redraws in place while training runs.
//
// Follows plotly.py's offline mode (`plotly.io.to_html`, `init_notebook_mode`): a figure is
// `{ data, layout, config }`; the plotly.js bundle (npm `plotly.js-dist`) is inlined, once per
// notebook session (plotlyLoaderHtml) or inside each exported file (standaloneHtml), so nothing
// is fetched from the network.
// Notable choices:
// - The loader hides `define`/`module`/`exports` from plotly's UMD wrapper, so it sets
//   window.Plotly even in the classic Notebook, where RequireJS defines `define` (plotly.py
//   works around the same thing with `require.undef`).
// - Drawing scripts wait for window.Plotly, so they work in whatever order outputs render.
// - Live figures use two notebook outputs: the figure's div, drawn once, and a script output
//   that tslab's display ids overwrite in place (Jupyter's update_display_data). Each update
//   calls Plotly.react on the same div: the plot changes in place, and the last update (all the
//   data) is what a saved notebook redraws when it is opened again.
// - In a notebook, plotly.js reaches the page through loadPlotlyInNotebook: gzip-compressed
//   (a third of its size as base64, which matters through an SSH tunnel to a remote host) in one
//   display that then overwrites itself with one line of text, so a saved or exported notebook
//   carries no copy of plotly.js (it did, one per notebook).
// - A figure's div may hold a static picture (class mmgpt-static, added by
//   scripts/execute-notebooks.sh for readers without JavaScript); drawing removes it.
// - Token axes of attention maps are numeric with tick labels: plotly merges repeated category
//   names, and a sequence repeats tokens.
// This module imports nothing from tslab: anything with an `html(string)` method is a display
// (`tslab.newDisplay()` is one).

import * as fs from 'fs';
import { gzipSync } from 'zlib';
import { movingAverage } from './plot';
import type { CurveLog } from './plot';

/** One plotly trace: `type` plus plotly's attributes (https://plotly.com/javascript/reference/). */
export type PlotlyTrace = { type: string } & Record<string, unknown>;
/** Plotly layout attributes. */
export type PlotlyLayout = Record<string, unknown>;
/** Plotly config attributes (modebar, responsiveness). */
export type PlotlyConfig = Record<string, unknown>;

export interface PlotlyFigure {
  data: PlotlyTrace[];
  layout: PlotlyLayout;
  config?: PlotlyConfig;
}

/** Anything that can show HTML in a notebook output, e.g. `tslab.display` or `tslab.newDisplay()`. */
export interface HtmlDisplay {
  html(s: string): void;
}

/** Default figure size in CSS pixels (PNG export multiplies by its scale). */
export const FIGURE_WIDTH = 900;
export const FIGURE_HEIGHT = 500;

const BASE_LAYOUT: PlotlyLayout = {
  width: FIGURE_WIDTH,
  height: FIGURE_HEIGHT,
  paper_bgcolor: 'white',
  plot_bgcolor: 'white',
  font: { family: 'DejaVu Sans, Arial, sans-serif', size: 13 },
  margin: { l: 70, r: 30, t: 60, b: 60 },
};

const BASE_CONFIG: PlotlyConfig = { displaylogo: false, responsive: false };

const GRID_AXIS = { showgrid: true, gridcolor: '#e5e5e5', zeroline: false, linecolor: '#888' };

function title(text: string): { text: string; x: number } {
  return { text, x: 0.02 };
}

// ---- figures ---------------------------------------------------------------------------------

export interface TrainingCurveOptions {
  title?: string;
  /** Window of the moving average over the minibatch NLL (default: 1% of the steps). */
  smoothing?: number;
}

/**
 * The training curve: train NLL of every minibatch (and its moving average) against the step,
 * and the test NLL after every epoch (epoch 0 = at initialisation) at the step it was measured.
 */
export function trainingCurveFigure(log: CurveLog, opts: TrainingCurveOptions = {}): PlotlyFigure {
  const n = log.trainNll.length;
  const steps = Array.from({ length: n }, (_, i) => i + 1);
  const window = opts.smoothing ?? Math.max(1, Math.round(n / 100));
  const last = log.testNll[log.testNll.length - 1];
  // Hide the first steps' large losses (as the PNG chart does) once there is a curve to see.
  const tail = [
    ...log.trainNll.slice(Math.floor(n / 20)),
    ...log.testNll.slice(1).map((e) => e.nll),
  ];
  const yMax = n > 20 && tail.length > 0 ? Math.max(...tail) * 1.15 : null;
  const yMin = Math.min(...log.trainNll, ...log.testNll.map((e) => e.nll));
  return {
    data: [
      {
        type: 'scatter',
        mode: 'lines',
        name: 'train NLL (minibatch)',
        x: steps,
        y: [...log.trainNll],
        line: { color: 'rgb(170, 200, 235)', width: 1 },
        hovertemplate: 'step %{x}<br>train NLL %{y:.4f}<extra></extra>',
      },
      {
        type: 'scatter',
        mode: 'lines',
        name: `train NLL (mean of ${window})`,
        x: steps,
        y: movingAverage(log.trainNll, window),
        line: { color: 'rgb(30, 90, 200)', width: 2 },
        hovertemplate: 'step %{x}<br>mean %{y:.4f}<extra></extra>',
      },
      {
        type: 'scatter',
        mode: 'lines+markers',
        name: `test NLL per epoch${last ? ` (last ${last.nll.toFixed(4)})` : ''}`,
        x: log.testNll.map((e) => e.step),
        y: log.testNll.map((e) => e.nll),
        text: log.testNll.map((e) => `epoch ${e.epoch}`),
        line: { color: 'rgb(220, 60, 30)', width: 2 },
        marker: { size: 8 },
        hovertemplate: '%{text} (step %{x})<br>test NLL %{y:.4f}<extra></extra>',
      },
    ],
    layout: {
      ...BASE_LAYOUT,
      title: title(opts.title ?? 'Training curve'),
      xaxis: { ...GRID_AXIS, title: { text: 'step (minibatch)' }, rangemode: 'tozero' },
      yaxis: {
        ...GRID_AXIS,
        title: { text: 'NLL (nats/dim)' },
        ...(yMax !== null && Number.isFinite(yMax) && yMax > yMin
          ? { range: [Math.max(0, yMin * 0.95), yMax] }
          : {}),
      },
      legend: { x: 0.99, xanchor: 'right', y: 0.99, bgcolor: 'rgba(255,255,255,0.8)' },
    },
    config: BASE_CONFIG,
  };
}

export interface AttentionHead {
  title: string;
  /** Attention probabilities [T, T], row-major: row = query position, column = key position. */
  weights: ArrayLike<number>;
}

export interface AttentionMapOptions {
  title?: string;
  /** Subplots per row (default: all heads in one row, at most 4). */
  columns?: number;
  /** Size of each subplot in CSS pixels (default 420). */
  panelSize?: number;
}

/**
 * Heatmaps of attention probabilities, one subplot per head, with the tokens on both axes
 * (queries down, keys across). Positions a causal query cannot see are left blank.
 */
export function attentionMapFigure(
  heads: readonly AttentionHead[],
  tokens: readonly string[],
  opts: AttentionMapOptions = {},
): PlotlyFigure {
  const T = tokens.length;
  if (heads.length === 0) throw new Error('attentionMapFigure: no heads to draw');
  heads.forEach((h, i) => {
    if (h.weights.length !== T * T)
      throw new Error(
        `attentionMapFigure: head ${i} has ${h.weights.length} weights; ${T} tokens need ${T * T}`,
      );
  });
  const columns = Math.max(1, Math.min(opts.columns ?? Math.min(heads.length, 4), heads.length));
  const rows = Math.ceil(heads.length / columns);
  const panel = opts.panelSize ?? 420;
  let zMax = 0;
  for (const h of heads)
    for (let i = 0; i < h.weights.length; i++) zMax = Math.max(zMax, h.weights[i]!);
  const labelled = tokens.map((t, i) => `${i}: ${t}`);
  const hover: string[][] = Array.from({ length: T }, (_, q) =>
    Array.from({ length: T }, (_, k) => `query ${labelled[q]}<br>key ${labelled[k]}`),
  );
  // Label every position when it fits, otherwise every few.
  const every = Math.max(1, Math.ceil(T / 30));
  const tickvals = Array.from({ length: Math.ceil(T / every) }, (_, i) => i * every);
  const ticktext = tickvals.map((i) => tokens[i]!);
  const layout: PlotlyLayout = {
    ...BASE_LAYOUT,
    width: Math.max(500, columns * panel + 140),
    height: rows * panel + 110,
    title: title(opts.title ?? 'Attention'),
    grid: { rows, columns, pattern: 'independent', xgap: 0.12, ygap: 0.16 },
    coloraxis: { colorscale: 'Viridis', cmin: 0, cmax: zMax > 0 ? zMax : 1 },
    margin: { l: 110, r: 30, t: 80, b: 100 },
    annotations: heads.map((h, i) => ({
      text: h.title,
      showarrow: false,
      xref: `${axisName('x', i)} domain`,
      yref: `${axisName('y', i)} domain`,
      x: 0.5,
      y: 1.0,
      yanchor: 'bottom',
      font: { size: 13 },
    })),
  };
  const data: PlotlyTrace[] = heads.map((h, i) => {
    const z: (number | null)[][] = Array.from({ length: T }, (_, q) =>
      Array.from({ length: T }, (_, k) => (k > q ? null : h.weights[q * T + k]!)),
    );
    const tickfont = { size: T > 30 ? 8 : 10 };
    layout[axisKey('xaxis', i)] = {
      tickvals,
      ticktext,
      tickangle: -90,
      tickfont,
      showgrid: false,
      zeroline: false,
      title: { text: 'key' },
    };
    layout[axisKey('yaxis', i)] = {
      tickvals,
      ticktext,
      tickfont,
      showgrid: false,
      zeroline: false,
      autorange: 'reversed',
      title: { text: 'query' },
    };
    return {
      type: 'heatmap',
      z,
      coloraxis: 'coloraxis',
      xaxis: axisName('x', i),
      yaxis: axisName('y', i),
      text: hover,
      hovertemplate: '%{text}<br>weight %{z:.3f}<extra></extra>',
    };
  });
  return { data, layout, config: BASE_CONFIG };
}

/** 'x', 'x2', 'x3', ... for subplot i. */
function axisName(letter: 'x' | 'y', i: number): string {
  return i === 0 ? letter : `${letter}${i + 1}`;
}

/** 'xaxis', 'xaxis2', ... for subplot i. */
function axisKey(prefix: 'xaxis' | 'yaxis', i: number): string {
  return i === 0 ? prefix : `${prefix}${i + 1}`;
}

export interface CodebookUsageOptions {
  title?: string;
  /** Sort the bars by count (a rank plot; hover shows the code). Default true. */
  sorted?: boolean;
}

/** How often each of the `codebookSize` codes occurs in `codes`, as a bar chart. */
export function codebookUsageFigure(
  codes: ArrayLike<number>,
  codebookSize: number,
  opts: CodebookUsageOptions = {},
): PlotlyFigure {
  if (!Number.isInteger(codebookSize) || codebookSize <= 0)
    throw new Error(
      `codebookUsageFigure: codebookSize must be a positive integer, got ${codebookSize}`,
    );
  const counts = new Array<number>(codebookSize).fill(0);
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i]!;
    if (!Number.isInteger(c) || c < 0 || c >= codebookSize)
      throw new Error(
        `codebookUsageFigure: code ${c} at index ${i} is not in 0..${codebookSize - 1}`,
      );
    counts[c]!++;
  }
  let used = 0;
  let entropy = 0;
  for (const c of counts) {
    if (c === 0) continue;
    used++;
    const p = c / codes.length;
    entropy -= p * Math.log(p);
  }
  const sorted = opts.sorted ?? true;
  const order = Array.from({ length: codebookSize }, (_, k) => k);
  if (sorted) order.sort((a, b) => counts[b]! - counts[a]! || a - b);
  const summary = `${used}/${codebookSize} codes used, perplexity ${Math.exp(entropy).toFixed(1)}, ${codes.length} codes`;
  return {
    data: [
      {
        type: 'bar',
        name: 'uses',
        x: order.map((_, i) => (sorted ? i : order[i]!)),
        y: order.map((k) => counts[k]!),
        customdata: order,
        marker: { color: 'rgb(30, 90, 200)' },
        hovertemplate: 'code %{customdata}<br>%{y} uses<extra></extra>',
      },
    ],
    layout: {
      ...BASE_LAYOUT,
      title: title(`${opts.title ?? 'Codebook usage'}: ${summary}`),
      bargap: 0,
      xaxis: { ...GRID_AXIS, title: { text: sorted ? 'code (by rank)' : 'code' } },
      yaxis: { ...GRID_AXIS, title: { text: 'uses' } },
    },
    config: BASE_CONFIG,
  };
}

// ---- HTML --------------------------------------------------------------------------------------

let bundleCache: string | null = null;

/** The plotly.js bundle (npm plotly.js-dist), read once. */
export function plotlyJsSource(): string {
  if (bundleCache === null) {
    let file: string;
    try {
      file = require.resolve('plotly.js-dist/plotly.js');
    } catch {
      throw new Error(
        'plotly.js-dist is not installed: run npm ci (it is a devDependency of mmgpt)',
      );
    }
    bundleCache = fs.readFileSync(file, 'utf8');
  }
  return bundleCache;
}

/** JSON that is safe inside a <script> element (typed arrays become arrays). */
export function figureJson(fig: PlotlyFigure): string {
  return JSON.stringify(fig, (_key, value: unknown) =>
    ArrayBuffer.isView(value) && !(value instanceof DataView)
      ? Array.from(value as unknown as ArrayLike<number>)
      : value,
  )
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** A <script> that defines window.Plotly (RequireJS or not); show it once per notebook session. */
export function plotlyLoaderHtml(): string {
  return (
    '<script type="text/javascript">\n' +
    'if (!window.Plotly) { (function (define, module, exports) {\n' +
    plotlyJsSource() +
    '\n}).call(window); }\n</script>\n' +
    '<div style="font-size: 11px; color: #888">plotly.js loaded</div>'
  );
}

/**
 * Loads plotly.js into the notebook page (once per notebook session) through `display`, a
 * display that overwrites itself (tslab.newDisplay()): the bundle gzipped and base64-encoded in
 * one script that inflates it (DecompressionStream) and defines window.Plotly, then one line of
 * text in its place. Figures drawn meanwhile wait for window.Plotly.
 */
export async function loadPlotlyInNotebook(display: HtmlDisplay): Promise<void> {
  const source = plotlyJsSource();
  const packed = gzipSync(Buffer.from(source, 'utf8'), { level: 9 }).toString('base64');
  display.html(
    '<script type="text/javascript">\n' +
      '(function () {\n' +
      '  if (window.Plotly || window.__mmgptPlotlyLoading) return;\n' +
      '  window.__mmgptPlotlyLoading = true;\n' +
      `  var text = atob(${JSON.stringify(packed)});\n` +
      '  var bytes = new Uint8Array(text.length);\n' +
      '  for (var j = 0; j < text.length; j++) bytes[j] = text.charCodeAt(j);\n' +
      "  var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));\n" +
      '  new Response(stream).text().then(function (js) {\n' +
      '    // define/module/exports hidden: plotly sets window.Plotly even under RequireJS.\n' +
      "    new Function('define', 'module', 'exports', js).call(window);\n" +
      '    window.__mmgptPlotlyLoading = false;\n' +
      '  });\n' +
      '})();\n</script>\n' +
      '<div style="font-size: 11px; color: #888">loading plotly.js</div>',
  );
  display.html(
    `<div style="font-size: 11px; color: #888">plotly.js ${plotlyVersion()} loaded (${(source.length / 1e6).toFixed(1)} MB; not kept in the saved notebook)</div>`,
  );
}

/** The version of the plotly.js bundle (from its package.json). */
export function plotlyVersion(): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('plotly.js-dist/package.json') as { version: string }).version;
  } catch {
    return '';
  }
}

let divCounter = 0;

/** A fresh element id for a figure. */
export function newFigureId(): string {
  divCounter++;
  return `mmgpt-fig-${Date.now().toString(36)}-${divCounter}`;
}

/** JavaScript that draws (or redraws in place) `fig` in the element `divId`, once Plotly is loaded. */
export function drawScript(fig: PlotlyFigure, divId: string): string {
  return (
    `(function () { var fig = ${figureJson(fig)}; var tries = 0;\n` +
    `  (function draw() {\n` +
    `    var el = document.getElementById(${JSON.stringify(divId)});\n` +
    `    if (window.Plotly && el) {\n` +
    `      var still = el.querySelector('.mmgpt-static'); if (still) { still.remove(); }\n` +
    `      window.Plotly.react(el, fig.data, fig.layout, fig.config || {});\n` +
    `    }\n` +
    `    else if (tries++ < 1200) { setTimeout(draw, 50); }\n` +
    `  })();\n})();`
  );
}

/** A div plus the script that draws `fig` into it (needs plotlyLoaderHtml, or plotly, on the page). */
export function figureHtml(fig: PlotlyFigure, divId: string = newFigureId()): string {
  const w = typeof fig.layout.width === 'number' ? `${fig.layout.width}px` : '100%';
  const h = typeof fig.layout.height === 'number' ? `${fig.layout.height}px` : `${FIGURE_HEIGHT}px`;
  return (
    `<div id="${divId}" style="width: ${w}; height: ${h};"></div>\n` +
    `<script type="text/javascript">\n${drawScript(fig, divId)}\n</script>`
  );
}

function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/** A self-contained HTML document: plotly.js inlined, the figure drawn, nothing fetched. */
export function standaloneHtml(fig: PlotlyFigure, pageTitle = 'mmgpt figure'): string {
  return (
    '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n' +
    `<title>${escapeHtml(pageTitle)}</title>\n` +
    '<script type="text/javascript">\n' +
    plotlyJsSource() +
    '\n</script>\n</head>\n<body style="margin: 0; background: white">\n' +
    figureHtml(fig, 'figure') +
    '\n</body>\n</html>\n'
  );
}

// ---- live figures ------------------------------------------------------------------------------

export interface LiveFigureOptions {
  /** Redraw at most this often (ms); `update(fig, true)` always redraws. Default 1000. */
  minIntervalMs?: number;
}

/**
 * A figure that redraws in place in a notebook while a long cell runs:
 *
 *   const live = new LiveFigure(tslab.newDisplay(), tslab.newDisplay());
 *   live.update(trainingCurveFigure(log));        // as often as you like; throttled
 *   live.update(trainingCurveFigure(log), true);  // the final state
 *
 * `figureDisplay` shows the figure's div (once); `updateDisplay` must be a display that
 * overwrites itself (tslab.newDisplay()): each redraw replaces its script, which calls
 * Plotly.react on the same div.
 */
export class LiveFigure {
  readonly divId = newFigureId();
  private shown = false;
  private lastDrawMs = -Infinity;
  private readonly minIntervalMs: number;
  /** Number of redraws sent so far. */
  redraws = 0;

  constructor(
    private readonly figureDisplay: HtmlDisplay,
    private readonly updateDisplay: HtmlDisplay,
    opts: LiveFigureOptions = {},
  ) {
    this.minIntervalMs = opts.minIntervalMs ?? 1000;
  }

  /** Draws `fig` unless the last redraw was under minIntervalMs ago; returns whether it drew. */
  update(fig: PlotlyFigure, force = false): boolean {
    const now = Date.now();
    if (!this.shown) {
      this.figureDisplay.html(figureHtml(fig, this.divId));
      this.shown = true;
      this.lastDrawMs = now;
      this.redraws++;
      return true;
    }
    if (!force && now - this.lastDrawMs < this.minIntervalMs) return false;
    this.updateDisplay.html(
      `<script type="text/javascript">\n${drawScript(fig, this.divId)}\n</script>`,
    );
    this.lastDrawMs = now;
    this.redraws++;
    return true;
  }
}
