#!/usr/bin/env node
// Finds the CUDA toolkit for binding.gyp: `node cuda/find-nvcc.js root|nvcc|libdir` prints the
// toolkit root, the nvcc path or the directory holding libcudart_static.a, or an empty line when
// the CUDA part should not be built (gyp then builds the CPU-only addon, exactly as before).
//
// Order: MMGPT_CUDA=0 skips CUDA even where nvcc exists; otherwise $CUDA_HOME, $CUDA_PATH, nvcc
// on PATH, /usr/local/cuda. nvcc may be a wrapper script (as /usr/local/bin/nvcc here), so the
// root is taken from nvcc's own `--dryrun` report (_HERE_ = its real bin directory) before
// falling back to the parent of the resolved binary. A toolkit counts only with
// include/cuda_runtime.h and a static cudart (the addon links cudart statically so that it loads
// on machines without a CUDA driver). MMGPT_CUDA=1 makes a missing toolkit an error instead of a
// silent CPU-only build.

'use strict';

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const LIB_DIRS = [
  'lib64',
  'lib',
  path.join('targets', 'x86_64-linux', 'lib'),
  path.join('targets', 'sbsa-linux', 'lib'),
];

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function onPath(name) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (dir && isFile(path.join(dir, name))) return path.join(dir, name);
  }
  return null;
}

/** The toolkit root nvcc belongs to, from its --dryrun variables (handles wrapper scripts). */
function rootOfNvcc(nvcc) {
  try {
    const out = execFileSync(nvcc, ['--dryrun', '-E', '-x', 'cu', '/dev/null'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30000,
    });
    const m = /^#\$ _HERE_=(.*)$/m.exec(out);
    if (m) return path.dirname(m[1].trim());
  } catch (e) {
    // nvcc --dryrun prints to stderr on some versions; execFileSync puts it on the error.
    const text = `${e.stdout || ''}${e.stderr || ''}`;
    const m = /^#\$ _HERE_=(.*)$/m.exec(text);
    if (m) return path.dirname(m[1].trim());
  }
  return path.dirname(path.dirname(fs.realpathSync(nvcc)));
}

function libDirOf(root) {
  for (const d of LIB_DIRS) {
    if (isFile(path.join(root, d, 'libcudart_static.a'))) return path.join(root, d);
  }
  return null;
}

function findToolkit() {
  const tried = [];
  const candidates = [];
  for (const env of ['CUDA_HOME', 'CUDA_PATH']) {
    const v = process.env[env];
    if (v) candidates.push(path.join(v, 'bin', 'nvcc'));
  }
  const fromPath = onPath('nvcc');
  if (fromPath) candidates.push(fromPath);
  candidates.push('/usr/local/cuda/bin/nvcc');
  for (const nvcc of candidates) {
    if (!isFile(nvcc)) {
      tried.push(`${nvcc} (missing)`);
      continue;
    }
    const root = rootOfNvcc(nvcc);
    const libdir = libDirOf(root);
    if (!isFile(path.join(root, 'include', 'cuda_runtime.h')) || libdir === null) {
      tried.push(`${nvcc} (root ${root} lacks include/cuda_runtime.h or libcudart_static.a)`);
      continue;
    }
    const realNvcc = isFile(path.join(root, 'bin', 'nvcc')) ? path.join(root, 'bin', 'nvcc') : nvcc;
    return { root, nvcc: realNvcc, libdir };
  }
  return { error: `no usable CUDA toolkit: tried ${tried.join(', ')}` };
}

function main() {
  const what = process.argv[2] || 'root';
  if (!['root', 'nvcc', 'libdir'].includes(what)) {
    process.stderr.write(`find-nvcc.js: unknown query '${what}' (accepted: root, nvcc, libdir)\n`);
    process.exit(2);
  }
  const mode = process.env.MMGPT_CUDA;
  if (mode === '0') {
    process.stdout.write('\n');
    return;
  }
  const found = findToolkit();
  if ('error' in found) {
    if (mode === '1') {
      process.stderr.write(`find-nvcc.js: MMGPT_CUDA=1 but ${found.error}\n`);
      process.exit(1);
    }
    process.stdout.write('\n');
    return;
  }
  process.stdout.write(`${found[what]}\n`);
}

main();
