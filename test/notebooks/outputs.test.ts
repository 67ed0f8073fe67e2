// The committed notebooks: their outputs come from their committed cells (each code cell's
// source hash, recorded when scripts/execute-notebooks.sh ran it), hold no errors, store every
// figure as a PNG as well as HTML, and stay under the size budget. Every notebook is committed
// executed. Also the finalizing step on a small notebook.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { projectRoot } from '../../src/paths';
import { figureHtml, drawScript } from '../../src/viz/plotly';
import type { PlotlyFigure } from '../../src/viz/plotly';
import { cellSourceSha256, finalizeNotebook, notebookProblems } from '../../src/viz/notebook';
import type { Notebook } from '../../src/viz/notebook';

const notebooksDir = path.join(projectRoot(), 'notebooks');
const files = fs
  .readdirSync(notebooksDir)
  .filter((f) => /^\d\d_.*\.ipynb$/.test(f))
  .sort();

test('the committed notebooks: outputs from the committed cells, no errors, PNG figures, size', () => {
  assert.ok(files.length >= 5, `notebooks found: ${files.join(', ')}`);
  const report: string[] = [];
  for (const file of files) {
    const full = path.join(notebooksDir, file);
    const nb = JSON.parse(fs.readFileSync(full, 'utf8')) as Notebook;
    for (const problem of notebookProblems(nb, fs.statSync(full).size))
      report.push(`${file}: ${problem}`);
    // Every notebook is committed executed (scripts/execute-notebooks.sh), so a code host shows it.
    if (nb.metadata.mmgpt === undefined)
      report.push(`${file}: committed without outputs (run bash scripts/execute-notebooks.sh)`);
    // An executed notebook shows its pictures on a code host: PNG outputs.
    const pngs = nb.cells.flatMap((c) => c.outputs ?? []).filter((o) => o.data?.['image/png']);
    if (nb.metadata.mmgpt !== undefined && pngs.length === 0)
      report.push(`${file}: executed, but without a single PNG output`);
    // ... and numbers its cells in the order they ran, as the notebook server does.
    const counts = nb.cells.filter((c) => c.cell_type === 'code').map((c) => c.execution_count);
    if (nb.metadata.mmgpt !== undefined && !counts.every((n, i) => n === i + 1))
      report.push(`${file}: execution counts ${counts.join(', ')} (expected 1, 2, 3, ...)`);
  }
  assert.deepEqual(report, [], report.join('\n'));
});

/** The modules a cell's import declarations name (`import ... from 'x'`). */
function importedModules(source: string): string[] {
  return [...source.matchAll(/^\s*import\b[^;]*?\bfrom\s+'([^']+)'/gms)].map((m) => m[1]!);
}

test('the notebooks import the library only through its entry, ../dist/src', () => {
  assert.deepEqual(
    importedModules("import * as fs from 'fs';\nimport {\n  a,\n} from '../dist/src';"),
    ['fs', '../dist/src'],
  );
  const allowed = new Set(['../dist/src', 'tslab', 'fs', 'path']);
  const report: string[] = [];
  for (const file of files) {
    const nb = JSON.parse(fs.readFileSync(path.join(notebooksDir, file), 'utf8')) as Notebook;
    nb.cells.forEach((cell, index) => {
      if (cell.cell_type !== 'code') return;
      const source = Array.isArray(cell.source) ? cell.source.join('') : cell.source;
      for (const name of importedModules(source))
        if (!allowed.has(name)) report.push(`${file}, cell ${index}: imports '${name}'`);
    });
  }
  assert.deepEqual(report, [], report.join('\n'));
});

const figure: PlotlyFigure = {
  data: [{ type: 'scatter', x: [1, 2], y: [3, 4] }],
  layout: { width: 300, height: 200 },
};

function smallNotebook(): Notebook {
  const live = { ...figure, data: [{ type: 'scatter', x: [1, 2, 3], y: [3, 4, 5] }] };
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {},
    cells: [
      { cell_type: 'markdown', source: '# title', metadata: {} },
      {
        cell_type: 'code',
        source: ['show(fig);\n', 'update(fig);'],
        metadata: {},
        outputs: [
          {
            output_type: 'display_data',
            data: { 'text/html': figureHtml(figure, 'mmgpt-fig-a') },
            metadata: {},
          },
          {
            output_type: 'display_data',
            data: {
              'text/html': `<script type="text/javascript">\n${drawScript(live, 'mmgpt-fig-a')}\n</script>`,
            },
            metadata: {},
          },
        ],
      },
    ],
  };
}

test('finalizing records source hashes and stores each figure, in its final state, as a PNG', async () => {
  const nb = smallNotebook();
  assert.deepEqual(notebookProblems(nb, 1000), [
    'cell 1 has outputs, but the notebook has no execution record',
  ]);
  const drawn: unknown[] = [];
  const count = await finalizeNotebook(nb, {
    png: async (fig) => {
      drawn.push(fig);
      return Buffer.from('png bytes');
    },
    execution: { executedBy: 'test' },
  });
  assert.equal(count, 1);
  // The live figure's last redraw (3 points), not its first state.
  assert.deepEqual((drawn[0] as PlotlyFigure).data[0]!.x, [1, 2, 3]);
  const cell = nb.cells[1]!;
  assert.deepEqual(cell.metadata.mmgpt, {
    sourceSha256: cellSourceSha256('show(fig);\nupdate(fig);'),
  });
  const out = cell.outputs![0]!;
  assert.equal(out.data!['image/png'], Buffer.from('png bytes').toString('base64'));
  assert.match(
    out.data!['text/html'] as string,
    /<div id="mmgpt-fig-a"[^>]*><img class="mmgpt-static"/,
  );
  assert.deepEqual(notebookProblems(nb, 1000), []);

  // An edited cell, an error output, a missing PNG and an oversized file are all reported.
  cell.source = 'show(otherFig);';
  delete out.data!['image/png'];
  cell.outputs!.push({
    output_type: 'error',
    ename: 'TypeError',
    evalue: 'x is undefined',
    traceback: [],
  });
  const problems = notebookProblems(nb, 3_000_000);
  assert.equal(problems.length, 4, problems.join('\n'));
  assert.match(problems[0]!, /cell 1: its source changed/);
  assert.match(problems.join('\n'), /error output TypeError/);
  assert.match(problems.join('\n'), /figure without its PNG/);
  assert.match(problems.join('\n'), /over the 2 MB budget/);
});
