// The evaluation and the figures as library functions, on a tiny random run (js backend): the
// options become validated settings (a value not given keeps its default), and an evaluation's
// grids are the report's settings, then without reranking and under the original rules.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { setBackend } from '../../src/engine/registry';
import { loadRun } from '../../src/eval/run';
import { EVAL_DEFAULTS } from '../../src/eval/settings';
import { evaluationSettings, writeEvaluationFigures } from '../../src/pipeline/evaluate';
import { FIGURE_FILES } from '../../src/pipeline/figures';
import { syntheticSet, writeTinyRun } from '../eval/helpers';

setBackend('js');

test('evaluation options become settings; what is not given keeps its default', () => {
  assert.deepEqual(evaluationSettings({}), EVAL_DEFAULTS);
  const s = evaluationSettings({
    n: 20,
    compare: false,
    sampling: { seed: 3, overrides: { rerank: 2 } },
  });
  assert.deepEqual(s, {
    ...EVAL_DEFAULTS,
    n: 20,
    compare: false,
    seed: 3,
    overrides: { rerank: 2 },
  });
  assert.deepEqual(Object.keys(s), Object.keys(EVAL_DEFAULTS)); // report.json's order
  assert.throws(() => evaluationSettings({ n: 0 }), /n must be a positive integer/);
  assert.throws(
    () => evaluationSettings({ sampling: { overrides: { topP: 2 } } }),
    /topP must be in \(0, 1\]/,
  );
});

test("an evaluation's grids: its settings, without reranking, under the original rules", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-evaluate-'));
  const run = loadRun(writeTinyRun(path.join(dir, 'run')));
  const images = syntheticSet(9, 5);
  const settings = { ...EVAL_DEFAULTS, n: 9, overrides: { rerank: 2 } };
  const out = path.join(dir, 'figures');
  const written = writeEvaluationFigures(run, images, settings, out).map((f) => path.basename(f));
  const names = Object.values(FIGURE_FILES);
  assert.deepEqual(written, [
    ...names,
    ...names.map((f) => f.replace('.png', '_no-rerank.png')),
    ...names.map((f) => f.replace('.png', '_original-rules.png')),
  ]);
  for (const f of written) assert.ok(fs.statSync(path.join(out, f)).size > 1000, f);
  const alone = writeEvaluationFigures(run, images, { ...settings, compare: false }, out);
  assert.deepEqual(
    alone.map((f) => path.basename(f)),
    names,
  );
});
