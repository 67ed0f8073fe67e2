// GPT-2 export: an independent float64 GPT-2 forward pass written here from the exported files
// alone (config.json, model.safetensors, test_tokens.safetensors) must reproduce metrics.json's
// test NLL within 0.001 nats/dim.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { setBackend } from '../../src/engine/registry';
import { Rng } from '../../src/nn/rng';
import { Vocab } from '../../src/data/vocab';
import { makeSequenceSource } from '../../src/data/sequences';
import { GPT } from '../../src/gpt/model';
import { exportGpt2 } from '../../src/gpt/export';
import { loadSafetensors } from '../../src/nn/safetensors';

setBackend(process.env.MMGPT_TEST_BACKEND ?? 'js');

type W = Record<string, { shape: number[]; data: ArrayLike<number> }>;

/** GPT-2 forward for one sequence in float64: returns the summed NLL of tokens[1..] and the count. */
function gpt2Nll(cfg: Record<string, number>, w: W, tokens: ArrayLike<number>): number {
  const T = tokens.length - 1;
  const C = cfg.n_embd;
  const nh = cfg.n_head;
  const hs = C / nh;
  const eps = cfg.layer_norm_epsilon;
  const get = (n: string) => w[n].data;
  const linear = (x: number[][], name: string, inF: number, outF: number) => {
    const W2 = get(`${name}.weight`); // Conv1D: [in, out]
    const b = get(`${name}.bias`);
    return x.map((row) => {
      const out = new Array<number>(outF).fill(0);
      for (let j = 0; j < outF; j++) {
        let s = b[j];
        for (let i = 0; i < inF; i++) s += row[i] * W2[i * outF + j];
        out[j] = s;
      }
      return out;
    });
  };
  const ln = (x: number[][], name: string) =>
    x.map((row) => {
      const mean = row.reduce((a, b) => a + b, 0) / row.length;
      const v = row.reduce((a, b) => a + (b - mean) ** 2, 0) / row.length;
      const g = get(`${name}.weight`);
      const b = get(`${name}.bias`);
      return row.map((xv, i) => ((xv - mean) / Math.sqrt(v + eps)) * g[i] + b[i]);
    });
  const gelu = (x: number) =>
    0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  const wte = get('wte.weight');
  const wpe = get('wpe.weight');
  let x: number[][] = [];
  for (let t = 0; t < T; t++) {
    x.push(Array.from({ length: C }, (_, i) => wte[tokens[t] * C + i] + wpe[t * C + i]));
  }
  for (let l = 0; l < cfg.n_layer; l++) {
    const qkv = linear(ln(x, `h.${l}.ln_1`), `h.${l}.attn.c_attn`, C, 3 * C);
    const y = x.map(() => new Array<number>(C).fill(0));
    for (let h = 0; h < nh; h++) {
      for (let t = 0; t < T; t++) {
        const scores: number[] = [];
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let i = 0; i < hs; i++) dot += qkv[t][h * hs + i] * qkv[s][C + h * hs + i];
          scores.push(dot / Math.sqrt(hs));
        }
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++)
          for (let i = 0; i < hs; i++) y[t][h * hs + i] += (e[s] / z) * qkv[s][2 * C + h * hs + i];
      }
    }
    const attnOut = linear(y, `h.${l}.attn.c_proj`, C, C);
    x = x.map((row, t) => row.map((v, i) => v + attnOut[t][i]));
    const hidden = linear(ln(x, `h.${l}.ln_2`), `h.${l}.mlp.c_fc`, C, 4 * C).map((r) =>
      r.map(gelu),
    );
    const mlpOut = linear(hidden, `h.${l}.mlp.c_proj`, 4 * C, C);
    x = x.map((row, t) => row.map((v, i) => v + mlpOut[t][i]));
  }
  const xf = ln(x, 'ln_f');
  const head = get('lm_head.weight'); // [V, C]
  const V = cfg.vocab_size;
  let nll = 0;
  for (let t = 0; t < T; t++) {
    const logits = Array.from({ length: V }, (_, v) => {
      let s = 0;
      for (let i = 0; i < C; i++) s += xf[t][i] * head[v * C + i];
      return s;
    });
    const m = Math.max(...logits);
    const lse = m + Math.log(logits.reduce((a, b) => a + Math.exp(b - m), 0));
    nll += lse - logits[tokens[t + 1]];
  }
  return nll;
}

test('GPT-2 export reproduces the test NLL in an independent implementation', () => {
  const vocab = new Vocab(16);
  const rng = new Rng(5);
  const n = 6;
  const digit = Int32Array.from({ length: n }, () => rng.int(10));
  const fg = Int32Array.from({ length: n }, () => rng.int(3));
  const bg = Int32Array.from({ length: n }, () => 3 + rng.int(3));
  const image = Int32Array.from({ length: n * 49 }, () => rng.int(16));
  const source = makeSequenceSource(vocab.captionTokensBatch(digit, fg, bg), image, vocab);
  const model = new GPT(
    { vocabSize: vocab.size, blockSize: 57, nLayer: 2, nHead: 2, nEmbd: 16, dropout: 0 },
    new Rng(6),
  );
  // Make the weights less trivial than the init.
  for (const [, p] of model.namedParameters()) {
    const data = p.toFloat32Array().map(() => rng.normal() * 0.3);
    p.backend.copyBlock(p.backend.upload(data), p.buf, 1, 1, 0, 1, 0, 1, p.size, false);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-export-'));
  const { testNll } = exportGpt2({ model, vocab, test: source, outDir: dir });
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  assert.equal(cfg.activation_function, 'gelu_new');
  assert.equal(cfg.vocab_size, vocab.size);
  const weights = loadSafetensors(path.join(dir, 'model.safetensors')).tensors as unknown as W;
  assert.deepEqual(weights['lm_head.weight'].shape, [vocab.size, 16]);
  assert.deepEqual(weights['h.1.mlp.c_fc.weight'].shape, [16, 64]);
  const toks = loadSafetensors(path.join(dir, 'test_tokens.safetensors')).tensors;
  let total = 0;
  for (const key of ['order1', 'order2']) {
    const t = toks[key];
    assert.deepEqual(t.shape, [n, 58]);
    for (let i = 0; i < n; i++)
      total += gpt2Nll(cfg, weights, Array.from(t.data as Int32Array).slice(i * 58, (i + 1) * 58));
  }
  const independent = total / (2 * n * 57);
  const metrics = JSON.parse(fs.readFileSync(path.join(dir, 'metrics.json'), 'utf8'));
  assert.ok(Math.abs(metrics.test_nll - testNll) < 1e-12);
  assert.ok(
    Math.abs(independent - testNll) < 1e-3,
    `independent ${independent} vs mmgpt ${testNll}`,
  );
  assert.ok(testNll > 1, 'non-trivial NLL');
});
