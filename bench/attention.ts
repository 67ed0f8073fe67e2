// The fused causal self-attention (F.causalAttention: one kernel each way) against the same
// attention composed of permute, split, scale, matmul, softmax, matmul and permute, forward and
// backward at the original recipe's size (batch 32, T 57, 4 heads of 32) on one backend, in one
// process with alternating rounds, so both see the same machine load. Numbers, never pass/fail.
//
// Usage: node dist/bench/attention.js [--backend cpu] [--batch 32] [--min-ms 2000]

import { setBackend } from '../src/engine/registry';
import * as F from '../src/engine/ops';
import { tidy } from '../src/engine/tensor';
import type { Tensor } from '../src/engine/tensor';

function flag(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}

function composed(qkv: Tensor, B: number, T: number, nh: number, hs: number): Tensor {
  const heads = F.permute(F.reshape(qkv, [B, T, 3, nh, hs]), [2, 0, 3, 1, 4]);
  const [q, k, v] = F.split(heads, [1, 1, 1], 0).map((t) => F.reshape(t, [B, nh, T, hs]));
  const scores = F.matmul(F.scale(q, 1 / Math.sqrt(hs)), k, { transB: true });
  const y = F.matmul(F.softmax(scores, { causal: true }), v);
  return F.reshape(F.permute(y, [0, 2, 1, 3]), [B, T, nh * hs]);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function main(): void {
  const args = process.argv.slice(2);
  const backend = flag(args, '--backend', 'cpu');
  const B = Number(flag(args, '--batch', '32'));
  const minMs = Number(flag(args, '--min-ms', '2000'));
  const [T, nh, hs] = [57, 4, 32];
  setBackend(backend);
  const data = Float32Array.from({ length: B * T * 3 * nh * hs }, (_, i) => Math.sin(i) * 0.5);
  const gData = Float32Array.from({ length: B * T * nh * hs }, (_, i) => Math.cos(i) * 0.1);
  const step = (fused: boolean): number =>
    tidy(() => {
      const qkv = F.tensor(data, [B, T, 3 * nh * hs]);
      qkv.requiresGrad = true;
      const g = F.tensor(gData, [B, T, nh * hs]);
      const t0 = process.hrtime.bigint();
      const y = fused ? F.causalAttention(qkv, nh) : composed(qkv, B, T, nh, hs);
      y.backward(g);
      qkv.grad!.toArray();
      return Number(process.hrtime.bigint() - t0) / 1e6;
    });
  const times: Record<'fused' | 'composed', number[]> = { fused: [], composed: [] };
  for (let i = 0; i < 3; i++) {
    step(true);
    step(false);
  }
  const start = Date.now();
  while (Date.now() - start < minMs || times.fused.length < 5) {
    times.fused.push(step(true));
    times.composed.push(step(false));
  }
  const f = median(times.fused);
  const c = median(times.composed);
  console.log(
    `attention fwd+bwd, ${backend}, batch ${B}, T ${T}, ${nh} heads of ${hs}, ${times.fused.length} rounds: ` +
      `fused ${f.toFixed(3)} ms (best ${Math.min(...times.fused).toFixed(3)}), ` +
      `composed ${c.toFixed(3)} ms (best ${Math.min(...times.composed).toFixed(3)}), ratio ${(c / f).toFixed(2)}x`,
  );
}

main();
