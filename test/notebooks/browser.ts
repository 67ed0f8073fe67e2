// The notebooks as a user meets them: drives a running Jupyter Notebook (classic, 6.x: what
// Debian's jupyter-notebook package serves) in headless Chromium through playwright-core, the
// way src/viz/export.ts launches it. scripts/test-notebooks-browser.sh starts the server and
// runs this file; it is not a test file of its own (without arguments it does nothing).
//
// For each notebook: open it, clear its outputs, select the first cell and press Shift+Enter
// once per cell (waiting for each cell's execute reply), then check
// - no cell's reply is an error, and no cell shows an error output (or a JavaScript error from
//   rendering an output);
// - no uncaught script error in the page (pageerror);
// - every figure div of mmgpt (id mmgpt-fig-*) became a plotly plot with traces, non-zero size;
// - cells that make a LiveFigure (03): the plot's data grows while the cell still runs (sampled);
// - 05: the evaluation cell run a second time gives the same results table, reusing its cache.
// A screenshot of the notebook's last figure goes to the screenshots folder. Failures name the
// notebook and the cell (index, execution count, first line of its source).
//
//   node dist/test/notebooks/browser.js --url http://127.0.0.1:PORT --token T \
//     --screenshots DIR notebooks/01_data_and_tokenizers.ipynb ...
// Exit status 0: all passed; 1: a check failed.

import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { CHROMIUM_ARGS, findChromium } from '../../src/viz/export';

interface Options {
  url: string;
  token: string;
  screenshots: string;
  notebooks: string[];
  cellTimeoutMs: number;
}

/** What the page tells about one cell after it ran. */
interface CellState {
  index: number;
  type: string;
  source: string;
  running: boolean;
  status: string | null;
  prompt: string;
  errorOutputs: string[];
  stderr: string;
  stdout: string;
  kernelDead: boolean;
}

interface FigureState {
  id: string;
  cell: number;
  plotted: boolean;
  traces: number;
  points: number;
  width: number;
  height: number;
}

class NotebookFailure extends Error {}

function parseArgs(argv: string[]): Options {
  const opts: Options = {
    url: '',
    token: '',
    screenshots: '',
    notebooks: [],
    cellTimeoutMs: 600_000,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--url') opts.url = argv[++i]!;
    else if (a === '--token') opts.token = argv[++i]!;
    else if (a === '--screenshots') opts.screenshots = argv[++i]!;
    else if (a === '--cell-timeout') opts.cellTimeoutMs = 1000 * Number(argv[++i]);
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else opts.notebooks.push(a);
  }
  if (!opts.url || !opts.token || opts.notebooks.length === 0)
    throw new Error('usage: browser.js --url URL --token TOKEN [--screenshots DIR] NOTEBOOK...');
  return opts;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function describeCell(notebook: string, cell: CellState): string {
  const firstLine = cell.source.split('\n').find((l) => l.trim() !== '') ?? '';
  return `${notebook}, cell ${cell.index} (${cell.prompt || cell.type}: "${firstLine.slice(0, 70)}")`;
}

// ---- in the page ---------------------------------------------------------------------------------
// These run in Chromium (page.evaluate): `Jupyter` is the classic Notebook's global.

// The page's globals, typed loosely: this project compiles without the DOM library.
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const window: any;
declare const document: any;
type HTMLElement = any;
type JupyterWindow = { Jupyter: any };

/** Instruments every code cell to record its execute reply's status. */
function instrumentCells(): number {
  const J = (window as unknown as JupyterWindow).Jupyter;
  const cells = J.notebook.get_cells();
  cells.forEach((cell: any) => {
    if (cell.cell_type !== 'code' || cell.__mmgptInstrumented) return;
    const original = cell._handle_execute_reply;
    cell.__mmgptInstrumented = true;
    cell._handle_execute_reply = function (msg: { content: { status: string } }) {
      cell.__mmgptStatus = msg.content.status;
      return original.call(this, msg);
    };
  });
  return cells.length;
}

function cellState(index: number): CellState {
  const J = (window as unknown as JupyterWindow).Jupyter;
  const cell = J.notebook.get_cell(index);
  const el: HTMLElement = cell.element[0];
  const texts = (selector: string) =>
    Array.from(el.querySelectorAll(selector)).map((e) => (e as HTMLElement).innerText);
  return {
    index,
    type: cell.cell_type,
    source: cell.get_text(),
    running: el.classList.contains('running'),
    status: cell.__mmgptStatus ?? null,
    prompt:
      cell.cell_type === 'code'
        ? (el.querySelector('.input_prompt') as HTMLElement).innerText.replace(/\s+/g, ' ').trim()
        : '',
    errorOutputs: [...texts('.output_error'), ...texts('.js-error')],
    stderr: texts('.output_stderr').join(''),
    stdout: texts('.output_stdout').join(''),
    kernelDead: document.querySelector('#kernel_indicator_icon.kernel_dead_icon') !== null,
  };
}

/** Points drawn so far by the plotly plots in a cell's outputs (sum over traces of x/z length). */
function plottedPoints(index: number): number {
  const J = (window as unknown as JupyterWindow).Jupyter;
  const el: HTMLElement = J.notebook.get_cell(index).element[0];
  let points = 0;
  el.querySelectorAll('.js-plotly-plot').forEach((plot: unknown) => {
    const data = (plot as unknown as { data?: { x?: unknown[]; z?: unknown[] }[] }).data ?? [];
    for (const trace of data) points += (trace.x ?? trace.z ?? []).length;
  });
  return points;
}

function figureStates(): FigureState[] {
  const J = (window as unknown as JupyterWindow).Jupyter;
  const cells: HTMLElement[] = J.notebook
    .get_cells()
    .map((c: { element: HTMLElement[] }) => c.element[0]);
  return Array.from(document.querySelectorAll('div[id^="mmgpt-fig-"]')).map((div: unknown) => {
    const el: HTMLElement = div;
    const cellEl = el.closest('.cell');
    const rect = el.getBoundingClientRect();
    const data: { x?: unknown[]; z?: unknown[] }[] = el.data ?? [];
    return {
      id: el.id,
      cell: cells.findIndex((c) => c === cellEl),
      plotted: el.classList.contains('js-plotly-plot'),
      traces: data.length,
      points: data.reduce((n, t) => n + (t.x ?? t.z ?? []).length, 0),
      width: rect.width,
      height: rect.height,
    };
  });
}

// ---- driving a notebook ------------------------------------------------------------------------

class NotebookRun {
  private pageErrors: { cell: number; message: string }[] = [];
  private currentCell = -1;
  readonly failures: string[] = [];
  readonly notes: string[] = [];

  constructor(
    private readonly page: Page,
    private readonly notebook: string,
    private readonly opts: Options,
  ) {
    page.on('pageerror', (e) =>
      this.pageErrors.push({ cell: this.currentCell, message: e.message }),
    );
  }

  fail(message: string): never {
    this.failures.push(message);
    throw new NotebookFailure(message);
  }

  async open(): Promise<number> {
    const url = `${this.opts.url}/notebooks/${this.notebook.split(path.sep).map(encodeURIComponent).join('/')}?token=${this.opts.token}`;
    await this.page.goto(url, { waitUntil: 'load', timeout: 120_000 });
    await this.page
      .waitForFunction(
        () => {
          const J = (window as unknown as JupyterWindow).Jupyter;
          return !!(
            J &&
            J.notebook &&
            J.notebook._fully_loaded &&
            J.notebook.kernel &&
            J.notebook.kernel.is_connected() &&
            J.notebook.kernel.info_reply &&
            J.notebook.kernel.info_reply.implementation
          );
        },
        undefined,
        { timeout: 120_000, polling: 250 },
      )
      .catch(() =>
        this.fail(
          `${this.notebook}: the notebook did not open with a connected kernel within 120 s`,
        ),
      );
    const kernel = await this.page.evaluate(() => {
      const J = (window as unknown as JupyterWindow).Jupyter;
      J.notebook.set_autosave_interval(0); // never write the notebook back
      J.notebook.clear_all_output();
      return `${J.notebook.kernel.name} (${J.notebook.kernel.info_reply.implementation})`;
    });
    this.notes.push(`kernel ${kernel}`);
    return this.page.evaluate(instrumentCells);
  }

  /** Selects cell `index` (a click on its prompt) and presses Shift+Enter; waits for the reply. */
  async runCell(index: number, sample?: (state: CellState) => Promise<void>): Promise<CellState> {
    this.currentCell = index;
    const cell = this.page.locator('#notebook-container > .cell').nth(index);
    await cell.locator('.prompt').first().click();
    await this.page.keyboard.press('Escape'); // command mode
    const selected = await this.page.evaluate(() =>
      (window as unknown as JupyterWindow).Jupyter.notebook.get_selected_index(),
    );
    if (selected !== index)
      this.fail(`${this.notebook}: clicking cell ${index} selected cell ${selected}`);
    await this.page.evaluate((k) => {
      // A re-run must not see the reply of the run before it.
      (window as unknown as JupyterWindow).Jupyter.notebook.get_cell(k).__mmgptStatus = null;
    }, index);
    await this.page.keyboard.press('Shift+Enter');
    const started = Date.now();
    let state = await this.page.evaluate(cellState, index);
    if (state.type !== 'code') return state;
    for (;;) {
      state = await this.page.evaluate(cellState, index);
      if (state.status !== null && !state.running) break;
      if (state.kernelDead)
        this.fail(`${describeCell(this.notebook, state)}: the kernel died while the cell ran`);
      if (Date.now() - started > this.opts.cellTimeoutMs)
        this.fail(
          `${describeCell(this.notebook, state)}: still running after ${this.opts.cellTimeoutMs / 1000} s`,
        );
      if (sample) await sample(state);
      await sleep(100);
    }
    await sleep(300); // let the last outputs render
    state = await this.page.evaluate(cellState, index);
    const seconds = (Date.now() - started) / 1000;
    if (seconds >= 5) this.notes.push(`cell ${index}: ${seconds.toFixed(1)} s`);
    this.checkCell(state);
    return state;
  }

  checkCell(state: CellState): void {
    const where = describeCell(this.notebook, state);
    if (state.status === 'error' || state.errorOutputs.length > 0) {
      const shown = [...state.errorOutputs, state.stderr].filter((s) => s.trim() !== '').join('\n');
      this.fail(
        `${where}: the cell failed (reply ${state.status}):\n${indent(shown.trim().slice(-3000))}`,
      );
    }
    const errors = this.pageErrors.filter((e) => e.cell === state.index);
    if (errors.length > 0)
      this.fail(
        `${where}: script error in the page:\n${indent(errors.map((e) => e.message).join('\n'))}`,
      );
  }

  async runAll(
    count: number,
    special: (index: number, source: string) => ((s: CellState) => Promise<void>) | undefined,
  ): Promise<CellState[]> {
    const states: CellState[] = [];
    for (let i = 0; i < count; i++) {
      const source = await this.page.evaluate(
        (k) =>
          (window as unknown as JupyterWindow).Jupyter.notebook.get_cell(k).get_text() as string,
        i,
      );
      states.push(await this.runCell(i, special(i, source)));
    }
    return states;
  }

  /** Inserts a code cell below cell `index` (as the toolbar's + does) and returns its index. */
  async insertCellBelow(index: number, source: string): Promise<number> {
    return this.page.evaluate(
      ({ k, text }) => {
        const J = (window as unknown as JupyterWindow).Jupyter;
        const cell = J.notebook.insert_cell_below('code', k);
        cell.set_text(text);
        return J.notebook.find_cell_index(cell) as number;
      },
      { k: index, text: source },
    );
  }

  async instrument(): Promise<void> {
    await this.page.evaluate(instrumentCells);
  }

  async checkFigures(): Promise<FigureState[]> {
    // Figures draw once plotly.js has arrived; give them a moment.
    let figures: FigureState[] = [];
    for (let tries = 0; tries < 100; tries++) {
      figures = await this.page.evaluate(figureStates);
      if (figures.every((f) => f.plotted)) break;
      await sleep(200);
    }
    for (const f of figures) {
      const where = `${this.notebook}, cell ${f.cell}: figure ${f.id}`;
      if (!f.plotted) this.fail(`${where} was never drawn by plotly`);
      if (f.traces === 0 || f.points === 0)
        this.fail(`${where} has ${f.traces} traces and ${f.points} points`);
      if (!(f.width > 0 && f.height > 0)) this.fail(`${where} has size ${f.width} x ${f.height}`);
    }
    const late = this.pageErrors.filter((e) => e.cell === -1 || e.cell >= 0);
    if (late.length > 0)
      this.fail(
        `${this.notebook}, cell ${late[0]!.cell}: script error in the page: ${late.map((e) => e.message).join('; ')}`,
      );
    return figures;
  }

  /** Screenshot of the last figure (a plotly plot, else the last PNG output). */
  async screenshot(file: string): Promise<string | null> {
    const plots = this.page.locator('#notebook-container .js-plotly-plot');
    const images = this.page.locator('#notebook-container .output_png img');
    const target =
      (await plots.count()) > 0 ? plots.last() : (await images.count()) > 0 ? images.last() : null;
    if (target === null) return null;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // Long outputs scroll inside a box (output_scroll) that would crop the figure: expand them, as
    // a click on the output's left edge does; then centre the figure in a tall page.
    await this.page.evaluate(() => {
      document
        .querySelectorAll('.output_scroll')
        .forEach((el: HTMLElement) => el.classList.remove('output_scroll'));
    });
    await target.evaluate((el: HTMLElement) => el.scrollIntoView({ block: 'center' }));
    await sleep(200);
    await target.screenshot({ path: file });
    return file;
  }
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

/** The figure of a LiveFigure cell must grow while the cell runs: samples of its point count. */
function liveSampler(samples: { ms: number; points: number }[], page: Page, index: number) {
  let last = 0;
  return async (state: CellState) => {
    if (!state.running || Date.now() - last < 150) return;
    last = Date.now();
    samples.push({ ms: Date.now(), points: await page.evaluate(plottedPoints, index) });
  };
}

/** The tables of a cell's markdown outputs, without the lines and cells that measure time. */
async function resultTables(page: Page, index: number): Promise<string> {
  return page.evaluate((k) => {
    const J = (window as unknown as JupyterWindow).Jupyter;
    const el: HTMLElement = J.notebook.get_cell(k).element[0];
    return (
      Array.from(el.querySelectorAll('.rendered_html table tr'))
        .map((tr) => (tr as HTMLElement).innerText.replace(/\s+/g, ' ').trim())
        // Wall times (the comparison table's cost column, "12.3 s") vary from run to run.
        .map((row) => row.replace(/\b\d+(\.\d+)? s\b/g, '<time>'))
        .filter(
          (row) => !/\b(ms|tok\/s|tokens\/s|seconds|took|speed|sha-256|checkpoint)\b/i.test(row),
        )
        .join('\n')
    );
  }, index);
}

function fileSha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/**
 * 03: change HP in place (a cell below the hyperparameters: lr doubled, one more layer), re-run
 * the cells below it: the model trains into a run directory of its own, the first run's
 * checkpoint is untouched, and resuming the first run with the new HP is refused, naming the
 * fields that differ.
 */
async function hyperparametersInPlace(
  run: NotebookRun,
  notebook: string,
  states: CellState[],
): Promise<void> {
  const hpCell = states.findIndex((s) => /^const HP\b/m.test(s.source));
  const dataCell = states.findIndex((s) => /gptRunDir\(/.test(s.source));
  if (hpCell < 0 || dataCell < 0)
    run.fail(`${notebook}: no hyperparameter cell (const HP) or run-directory cell (gptRunDir)`);
  const runDirOf = (state: CellState) => /run directory (\S+)/.exec(state.stdout)?.[1] ?? null;
  const firstDir = runDirOf(states[dataCell]!);
  if (firstDir === null)
    run.fail(`${describeCell(notebook, states[dataCell]!)}: printed no run directory`);
  const firstCheckpoint = path.join(firstDir, 'checkpoint.safetensors');
  const firstSha = fileSha256(firstCheckpoint);

  const edit = await run.insertCellBelow(
    hpCell,
    'HP.train.lr = 2 * HP.train.lr;\nHP.model.nLayer = HP.model.nLayer + 1;',
  );
  await run.instrument();
  const count = states.length + 1;
  const rerun: CellState[] = [];
  for (let i = edit; i < count; i++) rerun.push(await run.runCell(i));
  const secondDir = runDirOf(rerun[dataCell + 1 - edit]!);
  if (secondDir === null || secondDir === firstDir)
    run.fail(
      `${notebook}: after changing HP the run directory is ${secondDir ?? 'not printed'}, the same as before (${firstDir})`,
    );
  if (fileSha256(firstCheckpoint) !== firstSha)
    run.fail(`${notebook}: training the changed HP rewrote the first run's ${firstCheckpoint}`);
  if (!fs.existsSync(path.join(secondDir, 'checkpoint.safetensors')))
    run.fail(`${notebook}: the changed HP left no checkpoint in ${secondDir}`);

  const resumeCell = await run.insertCellBelow(
    count - 1,
    'try {\n' +
      `  await trainGpt({ ...trainOptions, runDir: ${JSON.stringify(firstDir)}, resume: true, log: () => undefined });\n` +
      "  console.log('resumed the first run with the changed HP');\n" +
      '} catch (e) {\n' +
      '  console.log(`refused: ${(e as Error).message}`);\n' +
      '}',
  );
  await run.instrument();
  const refused = await run.runCell(resumeCell);
  const expected = [
    /^refused: /m,
    /train\.lr: 0\.003 in the checkpoint, 0\.006 requested/,
    /model\.nLayer: 2 in the checkpoint, 3 requested/,
  ];
  if (!expected.every((re) => re.test(refused.stdout)))
    run.fail(
      `${describeCell(notebook, refused)}: resuming the first run with the changed HP was not refused naming train.lr and model.nLayer:\n${indent(refused.stdout)}`,
    );
  run.notes.push(
    `HP changed in place (lr x2, one more layer): trained into ${path.basename(secondDir)}, ` +
      `${path.basename(firstDir)} untouched; resuming it was refused: ${refused.stdout
        .split('\n')
        .filter((l) => /in the checkpoint/.test(l))
        .map((l) => l.trim())
        .join('; ')}`,
  );
  await run.checkFigures();
}

async function shutDownKernels(opts: Options): Promise<void> {
  const headers = { Authorization: `token ${opts.token}` };
  try {
    const sessions = (await (await fetch(`${opts.url}/api/sessions`, { headers })).json()) as {
      id: string;
    }[];
    for (const s of sessions)
      await fetch(`${opts.url}/api/sessions/${s.id}`, { method: 'DELETE', headers });
  } catch {
    // the server is gone: nothing to shut down
  }
}

async function testNotebook(browser: Browser, notebook: string, opts: Options): Promise<string[]> {
  const started = Date.now();
  const page = await browser.newPage({ viewport: { width: 1280, height: 1600 } });
  const run = new NotebookRun(page, notebook, opts);
  const name = path.basename(notebook, '.ipynb');
  try {
    const count = await run.open();
    const live = new Map<number, { ms: number; points: number }[]>();
    const states = await run.runAll(count, (index, source) => {
      if (!/new LiveFigure\(/.test(source)) return undefined;
      const samples: { ms: number; points: number }[] = [];
      live.set(index, samples);
      return liveSampler(samples, page, index);
    });
    for (const [index, samples] of live) {
      const where = describeCell(notebook, states[index]!);
      const growing = samples.filter((s, i) => i === 0 || s.points > samples[i - 1]!.points);
      run.notes.push(
        `cell ${index}: live plot sampled ${samples.length} times while running, points ${samples.map((s) => s.points).join(' ')}`,
      );
      const distinct = new Set(samples.map((s) => s.points)).size;
      if (samples.length < 3 || distinct < 3 || growing.length < 3)
        run.fail(
          `${where}: the live plot did not grow while the cell ran (${samples.length} samples, points ${samples.map((s) => s.points).join(', ') || 'none'}); it needs at least 3 samples with growing data`,
        );
      if (samples.some((s, i) => i > 0 && s.points < samples[i - 1]!.points))
        run.fail(
          `${where}: the live plot lost data while the cell ran (points ${samples.map((s) => s.points).join(', ')})`,
        );
    }
    const figures = await run.checkFigures();
    run.notes.push(`${figures.length} plotly figures, each with traces and a size`);
    if (name.startsWith('05')) {
      // Re-run the evaluation cell: the same table, from its cache.
      const index = states.findIndex((s) => /async function evaluate\(/.test(s.source));
      if (index < 0) run.fail(`${notebook}: no evaluation cell (async function evaluate) found`);
      const first = await resultTables(page, index);
      if (first === '') run.fail(`${describeCell(notebook, states[index]!)}: no results table`);
      const again = await run.runCell(index);
      const second = await resultTables(page, index);
      // The classifier's row says where it came from: trained the first time, reused after.
      const provenance = /\((trained|reused)\);/;
      if (!/attribute classifier .*\(reused\);/.test(second))
        run.fail(
          `${describeCell(notebook, again)}: the second table does not report the classifier as reused`,
        );
      const rows = (t: string) =>
        t.split('\n').map((row) => row.replace(provenance, '(trained or reused);'));
      const [a, b] = [rows(first), rows(second)];
      const changed = a
        .map((row, i) => [row, b[i] ?? '(none)'] as const)
        .filter(([x, y]) => x !== y)
        .concat(b.slice(a.length).map((y) => ['(none)', y] as const));
      if (changed.length > 0)
        run.fail(
          `${describeCell(notebook, again)}: a second run gave another table; rows that differ:\n` +
            changed.map(([x, y]) => `    first:  ${x}\n    second: ${y}`).join('\n'),
        );
      if (!/classifier: reusing/.test(again.stdout))
        run.fail(
          `${describeCell(notebook, again)}: the second run did not reuse the cached classifier:\n${indent(again.stdout.slice(-1500))}`,
        );
      if (/training preset/.test(again.stdout))
        run.fail(`${describeCell(notebook, again)}: the second run trained the GPT again`);
      run.notes.push(
        `cell ${index}: re-run gave the same table (${first.split('\n').length} rows), classifier from its cache`,
      );
      await run.checkFigures();
    }
    if (opts.screenshots) {
      const shot = await run.screenshot(path.join(opts.screenshots, `${name}.png`));
      run.notes.push(shot ? `screenshot ${shot}` : 'no figure to screenshot');
    }
    if (name.startsWith('03')) await hyperparametersInPlace(run, notebook, states);
  } catch (e) {
    if (!(e instanceof NotebookFailure)) run.failures.push(`${notebook}: ${(e as Error).message}`);
  } finally {
    await page.close().catch(() => undefined);
    await shutDownKernels(opts);
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  for (const note of run.notes) console.log(`  ${note}`);
  if (run.failures.length === 0)
    console.log(`test-notebooks-browser: ok ${notebook} (${seconds} s)`);
  else console.log(`test-notebooks-browser: FAILED ${notebook} (${seconds} s)`);
  return run.failures;
}

async function main(argv: string[]): Promise<number> {
  const opts = parseArgs(argv);
  const executablePath = findChromium();
  if (executablePath === null) {
    console.error(
      'test-notebooks-browser: no Chromium (apt-get install chromium, or MMGPT_CHROMIUM)',
    );
    return 3;
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { chromium } = require('playwright-core') as typeof import('playwright-core');
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [...CHROMIUM_ARGS],
  });
  const failures: string[] = [];
  try {
    for (const notebook of opts.notebooks) {
      console.log(`test-notebooks-browser: ${notebook}`);
      failures.push(...(await testNotebook(browser, notebook, opts)));
    }
  } finally {
    await browser.close();
  }
  for (const f of failures) console.error(`\nFAILED: ${f}`);
  return failures.length === 0 ? 0 : 1;
}

if (require.main === module && process.argv.length > 2) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      console.error(`test-notebooks-browser: ${(e as Error).stack ?? e}`);
      process.exit(1);
    },
  );
}
