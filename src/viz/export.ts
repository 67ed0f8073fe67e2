// Figure export for the report: every figure as PNG (for documents) and as HTML (to explore).
//
// Plotly figures become PNG through headless Chromium (Debian's `chromium`, driven by
// playwright-core): the page loads the inlined plotly.js bundle and plotly's own
// `Plotly.toImage` renders the figure at an exact size, as plotly.py's Kaleido does. HTML files
// are self-contained (plotly.js inlined; nothing fetched). Raster figures (image grids, the PNG
// line charts) are written as PNG plus an HTML page that embeds them.
// Notable choices:
// - Chromium is launched with --headless --no-sandbox --disable-gpu, no background networking,
//   component updates or sync, and a fresh user-data dir in the temp directory, removed on
//   close. `MMGPT_CHROMIUM` overrides the executable.
// - One browser serves many figures (FigureExporter); `saveFigures` opens and closes one.
// - Files are written atomically (temp file + rename), into MMGPT_FIGURES_DIR or figures/.
// - playwright-core is required lazily, so importing this module never needs it.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { BrowserContext, Page } from 'playwright-core';
import { figuresDir } from '../paths';

/** The notebooks' name for figuresDir (until they import the package entry). */
export { figuresDir as defaultFiguresDir } from '../paths';
import { atomicWriteFile } from '../nn/safetensors';
import { encodePng } from './png';
import type { RgbImage } from './png';
import { FIGURE_HEIGHT, FIGURE_WIDTH, plotlyJsSource, standaloneHtml } from './plotly';
import type { PlotlyFigure } from './plotly';

const CHROMIUM_CANDIDATES = [
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/usr/bin/google-chrome',
  '/usr/bin/google-chrome-stable',
];

/** The Chromium executable to use ($MMGPT_CHROMIUM or a standard path), or null if none. */
export function findChromium(): string | null {
  const explicit = process.env.MMGPT_CHROMIUM;
  if (explicit) return fs.existsSync(explicit) ? explicit : null;
  return CHROMIUM_CANDIDATES.find((p) => fs.existsSync(p)) ?? null;
}

/** Chromium's flags (the user-data dir is added per launch). */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export interface PngOptions {
  /** CSS pixels (default: the figure's layout width/height, else 900 x 500). */
  width?: number;
  height?: number;
  /** Device pixels per CSS pixel (default 2: a 900 x 500 figure gives a 1800 x 1000 PNG). */
  scale?: number;
}

type Playwright = typeof import('playwright-core');

function loadPlaywright(): Playwright {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('playwright-core') as Playwright;
  } catch {
    throw new Error(
      'PNG export needs playwright-core (a devDependency of mmgpt): run npm ci in the repository',
    );
  }
}

/** A headless Chromium with plotly.js loaded, turning figures into PNG bytes. */
export class FigureExporter {
  private constructor(
    private readonly context: BrowserContext,
    private readonly page: Page,
    private readonly userDataDir: string,
  ) {}

  /** Launches Chromium; throws saying what to install when it is missing. */
  static async open(
    opts: { executablePath?: string; timeoutMs?: number } = {},
  ): Promise<FigureExporter> {
    const executablePath = opts.executablePath ?? findChromium();
    if (executablePath === null) {
      throw new Error(
        'PNG export of plotly figures needs Chromium: apt-get install chromium (Debian/Ubuntu), ' +
          'or set MMGPT_CHROMIUM to a Chromium/Chrome executable; HTML export works without it',
      );
    }
    const { chromium } = loadPlaywright();
    const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-chromium-'));
    let context: BrowserContext;
    try {
      context = await chromium.launchPersistentContext(userDataDir, {
        executablePath,
        headless: true,
        args: [...CHROMIUM_ARGS],
        timeout: opts.timeoutMs ?? 60_000,
      });
    } catch (e) {
      fs.rmSync(userDataDir, { recursive: true, force: true });
      throw new Error(`could not start Chromium (${executablePath}): ${(e as Error).message}`);
    }
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      await page.setContent(
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body></body></html>',
      );
      await page.addScriptTag({ content: plotlyJsSource() });
      return new FigureExporter(context, page, userDataDir);
    } catch (e) {
      await context.close().catch(() => undefined);
      fs.rmSync(userDataDir, { recursive: true, force: true });
      throw e;
    }
  }

  /** PNG bytes of a plotly figure, (width x scale) by (height x scale) pixels. */
  async png(fig: PlotlyFigure, opts: PngOptions = {}): Promise<Buffer> {
    const width = opts.width ?? numberOr(fig.layout.width, FIGURE_WIDTH);
    const height = opts.height ?? numberOr(fig.layout.height, FIGURE_HEIGHT);
    const scale = opts.scale ?? 2;
    for (const [name, v] of [
      ['width', width],
      ['height', height],
      ['scale', scale],
    ] as const) {
      if (!(Number.isFinite(v) && v > 0))
        throw new Error(`PNG export: ${name} must be > 0, got ${v}`);
    }
    // Runs in the page: `globalThis` there is the window with plotly loaded.
    const dataUrl = await this.page.evaluate(
      async (arg: { json: string; width: number; height: number; scale: number }) => {
        const plotly = (
          globalThis as unknown as {
            Plotly: { toImage(fig: unknown, o: Record<string, unknown>): Promise<string> };
          }
        ).Plotly;
        const figure = JSON.parse(arg.json) as Record<string, unknown>;
        return plotly.toImage(figure, {
          format: 'png',
          width: arg.width,
          height: arg.height,
          scale: arg.scale,
        });
      },
      { json: JSON.stringify(fig, typedArrays), width, height, scale },
    );
    const prefix = 'data:image/png;base64,';
    if (!dataUrl.startsWith(prefix)) throw new Error('PNG export: plotly did not return a PNG');
    return Buffer.from(dataUrl.slice(prefix.length), 'base64');
  }

  async close(): Promise<void> {
    try {
      await this.context.close();
    } finally {
      fs.rmSync(this.userDataDir, { recursive: true, force: true });
    }
  }
}

function numberOr(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}

function typedArrays(_key: string, value: unknown): unknown {
  return ArrayBuffer.isView(value) && !(value instanceof DataView)
    ? Array.from(value as unknown as ArrayLike<number>)
    : value;
}

/** PNG bytes of one figure (launches and closes a browser; use FigureExporter for many). */
export async function figureToPng(fig: PlotlyFigure, opts: PngOptions = {}): Promise<Buffer> {
  const exporter = await FigureExporter.open();
  try {
    return await exporter.png(fig, opts);
  } finally {
    await exporter.close();
  }
}

export type FigureFormat = 'png' | 'html';

export interface SaveOptions extends PngOptions {
  /** Output directory (default: figuresDir()). */
  dir?: string;
  /** Default both. */
  formats?: readonly FigureFormat[];
  /** Reuse an open browser for the PNG. */
  exporter?: FigureExporter;
}

export interface SavedFigure {
  png?: string;
  html?: string;
}

function checkName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
    throw new Error(
      `figure name '${name}' must be a file name without extension (letters, digits, . _ -)`,
    );
}

/** Writes a plotly figure as DIR/name.html (self-contained) and DIR/name.png (via Chromium). */
export async function saveFigure(
  fig: PlotlyFigure,
  name: string,
  opts: SaveOptions = {},
): Promise<SavedFigure> {
  checkName(name);
  const dir = opts.dir ?? figuresDir();
  const formats = opts.formats ?? ['png', 'html'];
  const saved: SavedFigure = {};
  if (formats.includes('html')) {
    saved.html = path.join(dir, `${name}.html`);
    atomicWriteFile(saved.html, standaloneHtml(fig, name));
  }
  if (formats.includes('png')) {
    const png = opts.exporter ? await opts.exporter.png(fig, opts) : await figureToPng(fig, opts);
    saved.png = path.join(dir, `${name}.png`);
    atomicWriteFile(saved.png, png);
  }
  return saved;
}

/** Saves several plotly figures (name -> figure) with one browser. */
export async function saveFigures(
  figures: Record<string, PlotlyFigure>,
  opts: Omit<SaveOptions, 'exporter'> = {},
): Promise<Record<string, SavedFigure>> {
  const formats = opts.formats ?? ['png', 'html'];
  const exporter = formats.includes('png') ? await FigureExporter.open() : undefined;
  try {
    const out: Record<string, SavedFigure> = {};
    for (const [name, fig] of Object.entries(figures))
      out[name] = await saveFigure(fig, name, { ...opts, exporter });
    return out;
  } finally {
    await exporter?.close();
  }
}

/**
 * Writes a raster figure (an image grid, a PNG line chart) as DIR/name.png and DIR/name.html,
 * a page that shows the same picture (for a report that links HTML figures).
 */
export function saveRasterFigure(
  image: RgbImage,
  name: string,
  opts: { dir?: string; formats?: readonly FigureFormat[]; title?: string } = {},
): SavedFigure {
  checkName(name);
  const dir = opts.dir ?? figuresDir();
  const formats = opts.formats ?? ['png', 'html'];
  const png = encodePng(image);
  const saved: SavedFigure = {};
  if (formats.includes('png')) {
    saved.png = path.join(dir, `${name}.png`);
    atomicWriteFile(saved.png, png);
  }
  if (formats.includes('html')) {
    saved.html = path.join(dir, `${name}.html`);
    const pageTitle = (opts.title ?? name).replace(/&/g, '&amp;').replace(/</g, '&lt;');
    atomicWriteFile(
      saved.html,
      '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n' +
        `<title>${pageTitle}</title>\n</head>\n<body style="margin: 0; background: white">\n` +
        `<img alt="${pageTitle.replace(/"/g, '&quot;')}" width="${image.width}" height="${image.height}" ` +
        `style="image-rendering: pixelated" src="data:image/png;base64,${png.toString('base64')}">\n` +
        '</body>\n</html>\n',
    );
  }
  return saved;
}
