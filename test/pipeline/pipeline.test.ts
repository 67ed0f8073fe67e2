// The main job's first line (src/pipeline/pipeline.ts): which backend, and for the cpu backend
// which kernel build, runs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setBackend, getBackend, availableBackends } from '../../src/engine/registry';
import { cpuBackendInfo } from '../../src/engine/backends/cpu';
import { backendDescription } from '../../src/pipeline/pipeline';

test('the backend description names the backend, and for cpu its kernels', () => {
  const before = getBackend().name;
  try {
    setBackend('js');
    assert.match(backendDescription(), /^backend js \(the reference kernels/);
    if (availableBackends().includes('cpu')) {
      setBackend('cpu');
      const info = cpuBackendInfo();
      assert.ok(!('error' in info));
      assert.equal(
        backendDescription(),
        `backend cpu: ${info.simd} kernels (this processor runs ${info.availableSimd.join(', ')}), ${info.threads} threads`,
      );
    }
  } finally {
    setBackend(before);
  }
});
