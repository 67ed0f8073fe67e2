// The notebooks run top to bottom, as a user meets them: scripts/test-notebooks-browser.sh opens
// each in a Jupyter Notebook server in headless Chromium and runs every cell through the page
// (MMGPT_TINY=1; test/notebooks/browser.ts has the checks). Without Chromium it falls back to
// scripts/test-notebooks.sh (jupyter nbconvert --execute: cell errors only). This wrapper lets
// the test runner count it. Where Jupyter or the tslab kernel is missing it skips, saying what to
// install — unless MMGPT_REQUIRE_NOTEBOOKS=1 (CI), where that is a failure.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'child_process';
import * as path from 'path';
import { projectRoot } from '../../src/paths';

/** Exit status of the script when Jupyter or the tslab kernel is missing. */
const MISSING = 3;

function runScript(script: string): Promise<{ code: number | null; stderr: string }> {
  const root = projectRoot();
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [path.join(root, 'scripts', script)], {
      cwd: root,
      stdio: ['ignore', 'inherit', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      process.stderr.write(chunk);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

test(
  'every notebook runs top to bottom in the browser on the tiny configuration',
  { timeout: 30 * 60_000 },
  async (t) => {
    let { code, stderr } = await runScript('test-notebooks-browser.sh');
    if (code === MISSING && process.env.MMGPT_REQUIRE_NOTEBOOKS !== '1') {
      // No Chromium (or no notebook server): at least execute them headless.
      ({ code, stderr } = await runScript('test-notebooks.sh'));
    }
    if (code === MISSING) {
      const reason = stderr.trim().split('\n')[0] ?? 'Jupyter or the tslab kernel is missing';
      if (process.env.MMGPT_REQUIRE_NOTEBOOKS === '1') {
        assert.fail(
          `MMGPT_REQUIRE_NOTEBOOKS=1 but ${reason.replace(/^test-notebooks(-browser)?: /, '')}`,
        );
      }
      t.skip(
        `${reason.replace(/^test-notebooks(-browser)?: /, '')} (bash scripts/setup-notebooks.sh)`,
      );
      return;
    }
    assert.equal(code, 0, 'a notebook failed: see the notebook and cell named above');
  },
);
