// Executed notebooks as committed: readable on a code host without running them, and checkably
// made by the committed code.
//
// `finalizeNotebook` prepares a notebook that nbconvert executed (scripts/execute-notebooks.sh):
// - every code cell records the SHA-256 of its source in `metadata.mmgpt.sourceSha256`, so a
//   test can tell that the outputs below a cell come from that cell as committed;
// - every plotly figure (a div `mmgpt-fig-*` drawn by a script, see plotly.ts) gets its final
//   state as a PNG: as an `image/png` entry beside `text/html` in the same output (what a code
//   host can show: it runs no scripts), and inside the div as a static <img class="mmgpt-static">
//   that the drawing script removes (so an untrusted or script-less page shows it too). A live
//   figure's final state is the last redraw that names its div.
// `notebookProblems` is the check: cells whose source changed since execution, error outputs,
// figures without a PNG, a file over the size budget.

import { createHash } from 'crypto';
import * as fs from 'fs';
import { FigureExporter } from './export';
import type { PlotlyFigure } from './plotly';

/** The parts of nbformat 4 this module reads and writes. */
interface NotebookOutput {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, string | string[]>;
  metadata?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
  traceback?: string[];
}

interface NotebookCell {
  cell_type: string;
  source: string | string[];
  metadata: Record<string, unknown>;
  outputs?: NotebookOutput[];
  execution_count?: number | null;
}

export interface Notebook {
  cells: NotebookCell[];
  metadata: Record<string, unknown>;
  nbformat: number;
  nbformat_minor: number;
}

/** Size budget of a committed notebook with outputs (bytes). */
const NOTEBOOK_SIZE_BUDGET = 2_000_000;

const text = (v: string | string[] | undefined): string =>
  v === undefined ? '' : Array.isArray(v) ? v.join('') : v;

/** SHA-256 (hex) of a cell's source, as nbformat stores it (a string or a list of lines). */
export function cellSourceSha256(source: string | string[]): string {
  return createHash('sha256').update(text(source), 'utf8').digest('hex');
}

const DIV_ID = /<div id="(mmgpt-fig-[^"]+)"/;
const FIGURE_IN_SCRIPT = /var fig = (\{.*?\}); var tries = 0;\n/;
const TARGET_IN_SCRIPT = /document\.getElementById\("(mmgpt-fig-[^"]+)"\)/;

/** The figure a drawing script draws, and into which div (null if the HTML has none). */
function figureOfHtml(html: string): { divId: string; figure: unknown } | null {
  const json = FIGURE_IN_SCRIPT.exec(html);
  const target = TARGET_IN_SCRIPT.exec(html);
  if (json === null || target === null) return null;
  return { divId: target[1]!, figure: JSON.parse(json[1]!) };
}

export interface FinalizeOptions {
  /** Renders a figure to PNG bytes (FigureExporter.png). */
  png: (figure: unknown) => Promise<Buffer>;
  /** Recorded in the notebook's metadata.mmgpt (how and when it was executed). */
  execution: Record<string, unknown>;
}

/** Adds source hashes and figure PNGs to an executed notebook (in place); returns the figure count. */
export async function finalizeNotebook(nb: Notebook, opts: FinalizeOptions): Promise<number> {
  // The final state of every figure: the last script in the notebook that draws into its div.
  const finalFigure = new Map<string, unknown>();
  for (const cell of nb.cells)
    for (const output of cell.outputs ?? []) {
      const found = figureOfHtml(text(output.data?.['text/html']));
      if (found !== null) finalFigure.set(found.divId, found.figure);
    }
  let figures = 0;
  for (const cell of nb.cells) {
    if (cell.cell_type !== 'code') continue;
    cell.metadata.mmgpt = { sourceSha256: cellSourceSha256(cell.source) };
    for (const output of cell.outputs ?? []) {
      const html = text(output.data?.['text/html']);
      const div = DIV_ID.exec(html);
      if (div === null || output.data === undefined) continue;
      const figure = finalFigure.get(div[1]!);
      if (figure === undefined) continue;
      const png = (await opts.png(figure)).toString('base64');
      output.data['image/png'] = png;
      output.data['text/html'] = html
        .replace(/<img class="mmgpt-static"[^>]*>/, '')
        .replace(
          DIV_ID,
          (tag) =>
            `${tag.replace(/>$/, '')}><img class="mmgpt-static" alt="figure" style="max-width: 100%" src="data:image/png;base64,${png}">`,
        );
      figures++;
    }
  }
  nb.metadata.mmgpt = { ...opts.execution, figures };
  return figures;
}

/** What is wrong with a committed notebook's outputs (an empty list when nothing is). */
export function notebookProblems(nb: Notebook, fileBytes: number): string[] {
  const problems: string[] = [];
  const executed = nb.metadata.mmgpt !== undefined;
  nb.cells.forEach((cell, index) => {
    if (cell.cell_type !== 'code') return;
    const outputs = cell.outputs ?? [];
    if (!executed) {
      if (outputs.length > 0)
        problems.push(`cell ${index} has outputs, but the notebook has no execution record`);
      return;
    }
    const recorded = (cell.metadata.mmgpt as { sourceSha256?: string } | undefined)?.sourceSha256;
    if (recorded !== cellSourceSha256(cell.source))
      problems.push(
        `cell ${index}: its source changed since its outputs were made (re-run scripts/execute-notebooks.sh)`,
      );
    for (const output of outputs) {
      if (
        output.output_type === 'stream' &&
        output.name === 'stderr' &&
        /\bError\b|error TS\d+/.test(text(output.text))
      )
        problems.push(
          `cell ${index}: an error on stderr: ${text(output.text).trim().split('\n')[0]}`,
        );
      if (output.output_type === 'error')
        problems.push(`cell ${index}: error output ${output.ename}: ${output.evalue}`);
      const html = text(output.data?.['text/html']);
      if (DIV_ID.test(html) && output.data?.['image/png'] === undefined)
        problems.push(`cell ${index}: a figure without its PNG`);
    }
  });
  if (executed && fileBytes > NOTEBOOK_SIZE_BUDGET)
    problems.push(
      `${(fileBytes / 1e6).toFixed(2)} MB, over the ${NOTEBOOK_SIZE_BUDGET / 1e6} MB budget`,
    );
  return problems;
}

/**
 * Reads an executed notebook, finalizes it (PNG of every figure through headless Chromium, at
 * 1 CSS pixel per pixel to keep the file small) and writes it as JSON to `output`.
 * Called by scripts/execute-notebooks.sh through dist/.
 * @public
 */
export async function finalizeNotebookFile(
  input: string,
  output: string,
  execution: Record<string, unknown>,
): Promise<number> {
  const nb = JSON.parse(fs.readFileSync(input, 'utf8')) as Notebook;
  const exporter = await FigureExporter.open();
  try {
    const figures = await finalizeNotebook(nb, {
      png: (figure) => exporter.png(figure as PlotlyFigure, { scale: 1 }),
      execution,
    });
    fs.writeFileSync(output, JSON.stringify(nb, null, 1) + '\n');
    return figures;
  } finally {
    await exporter.close();
  }
}
