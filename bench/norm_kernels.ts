// Time per call of the cpu backend's row kernels at the training step's shapes (batch 32 x 57
// positions = 1824 rows; d_model 128, MLP 512): layerNorm, addLayerNorm, layerNormBackward,
// biasGelu, biasGeluBackward and a bias gradient's sumAxis, warm (operands in the caches, as in
// decoding) or --cold (a 384 MiB buffer written before every call, outside its time: the
// operands come from memory, as the step's activations do in its backward). --peer times
// another addon build beside it, alternating rounds (gemm_timing.ts). Numbers, never pass/fail.
//
// Usage: node dist/bench/norm_kernels.js [--cold] [--rows 1824] [--min-ms 300] [--only Norm]
//        [--peer path/to/other/mmgpt_native.node]

import { nativeKernelMethods } from '../src/engine/backends/cpu';
import {
  cacheEvictor,
  loadPeerAddon,
  median,
  nativeAddonOrExit,
  randomArray,
  timeAlternating,
} from './gemm_timing';
import { flagValue, numberFlag } from './run_backend';

type Kernels = ReturnType<typeof nativeKernelMethods>;

/** The calls, each on fresh outputs of the step's sizes (rows x d = 128, rows x h = 512). */
function cases(rows: number): { name: string; call: (k: Kernels) => void }[] {
  const d = 128;
  const h = 512;
  const x = randomArray(rows * d, 1);
  const r = randomArray(rows * d, 2);
  const gy = randomArray(rows * d, 3);
  const w = randomArray(d, 4);
  const b = randomArray(d, 5);
  const out = new Float32Array(rows * d);
  const sum = new Float32Array(rows * d);
  const gx = new Float32Array(rows * d);
  const mean = new Float32Array(rows);
  const rstd = new Float32Array(rows);
  const gw = new Float32Array(d);
  const gb = new Float32Array(d);
  const t = randomArray(rows * h, 6);
  const gt = randomArray(rows * h, 7);
  const bh = randomArray(h, 8);
  const outH = new Float32Array(rows * h);
  const gbH = new Float32Array(h);
  return [
    {
      name: `layerNorm [${rows}x${d}]`,
      call: (k) => k.layerNorm(x, w, b, out, mean, rstd, rows, d, 1e-5),
    },
    {
      name: `addLayerNorm [${rows}x${d}]`,
      call: (k) => k.addLayerNorm(x, r, w, b, sum, out, mean, rstd, rows, d, 1e-5),
    },
    {
      name: `layerNormBackward [${rows}x${d}]`,
      call: (k) => k.layerNormBackward(x, w, mean, rstd, gy, gx, gw, gb, rows, d),
    },
    { name: `biasGelu [${rows}x${h}]`, call: (k) => k.biasGelu(t, bh, outH, rows, h) },
    {
      name: `biasGeluBackward [${rows}x${h}]`,
      call: (k) => k.biasGeluBackward(t, bh, gt, outH, gbH, rows, h),
    },
    { name: `sumAxis [${rows}x${d}] -> [${d}]`, call: (k) => k.sumAxis(gy, gb, 1, rows, d, false) },
  ];
}

function main(): void {
  const args = process.argv.slice(2);
  const addon = nativeAddonOrExit('norm_kernels');
  const ours = nativeKernelMethods(addon);
  const peerFile = flagValue(args, '--peer');
  const peer = peerFile ? nativeKernelMethods(loadPeerAddon(peerFile)) : null;
  const rows = numberFlag(args, '--rows') ?? 1824;
  const minMs = numberFlag(args, '--min-ms') ?? 300;
  const only = flagValue(args, '--only');
  const evict = cacheEvictor(args.includes('--cold'));
  console.log(
    `norm_kernels: ${addon.simdPath()}, ${addon.getNumThreads()} thread(s), ` +
      `${evict ? 'cold operands (caches evicted before each call)' : 'warm operands'}` +
      (peerFile ? `; peer ${peerFile}` : ''),
  );
  console.log(`  ${'kernel'.padEnd(36)} us/call` + (peer ? '     peer  ours/peer (time)' : ''));
  for (const { name, call } of cases(rows)) {
    if (only && !name.includes(only)) continue;
    const runs = peer ? [() => call(ours), () => call(peer)] : [() => call(ours)];
    const [mine, theirs] = timeAlternating(runs, minMs, evict);
    const us = median(mine.times) * 1e6;
    const peerUs = theirs ? median(theirs.times) * 1e6 : 0;
    console.log(
      `  ${name.padEnd(36)} ${us.toFixed(1).padStart(7)}` +
        (theirs
          ? ` ${peerUs.toFixed(1).padStart(8)} ${(us / peerUs).toFixed(2).padStart(10)}`
          : ''),
    );
  }
}

main();
