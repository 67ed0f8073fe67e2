// The engine end to end in seconds: a tiny GPT learns a toy sequence task (continue an
// arithmetic progression mod 16, stride 1 to 3) and then completes prompts greedily. No data,
// no tokenizer: a smoke test of the tensors, autograd, the optimiser and the model together.

import * as F from '../engine/ops';
import { tidy, noGrad } from '../engine/tensor';
import { getBackend } from '../engine/registry';
import { Rng } from '../nn/rng';
import { Adam } from '../nn/optim';
import { GPT } from '../gpt/model';

/** Vocabulary (the residues mod 16) and sequence length of the toy task. */
const V = 16;
const T = 10;

/** Trains the toy GPT for `steps` steps of batch 32, then prints three greedy completions. */
export function runDemo(steps: number, log: (line: string) => void): void {
  const rng = new Rng(0);
  const model = new GPT(
    { vocabSize: V, blockSize: T, nLayer: 2, nHead: 2, nEmbd: 32, dropout: 0 },
    rng,
  );
  const opt = new Adam(model.namedParameters(), { lr: 3e-3 });
  const makeBatch = (B: number) => {
    const data = new Int32Array(B * T); // [B, T]
    for (let b = 0; b < B; b++) {
      const start = rng.int(V);
      const stride = 1 + rng.int(3);
      for (let t = 0; t < T; t++) data[b * T + t] = (start + stride * t) % V;
    }
    return data;
  };
  log(`backend ${getBackend().name}; ${model.numParameters()} parameters`);
  const t0 = Date.now();
  for (let step = 1; step <= steps; step++) {
    const loss = tidy(() => {
      const l = model.loss(F.tensor(makeBatch(32), [32, T], 'int32'));
      l.backward();
      opt.update();
      opt.zeroGrad();
      return l.item();
    });
    if (step % 50 === 0 || step === 1)
      log(
        `step ${step} | loss ${loss.toFixed(4)} | ${((Date.now() - t0) / step).toFixed(1)} ms/step`,
      );
  }
  model.eval();
  for (const prompt of [
    [3, 5, 7],
    [0, 3, 6],
    [14, 15, 0],
  ])
    log(`${prompt.join(' ')} -> ${complete(model, prompt).join(' ')}`);
}

/** The prompt continued greedily (argmax of the last position's logits) to T tokens. */
function complete(model: GPT, prompt: number[]): number[] {
  const seq = [...prompt];
  noGrad(() => {
    while (seq.length < T) {
      const next = tidy(() => {
        const logits = model.forward(F.tensor(Int32Array.from(seq), [1, seq.length], 'int32')); // [1, t, V]
        const last = F.slice(logits, 1, seq.length - 1, seq.length).toArray(); // [1, 1, V]
        let best = 0;
        for (let i = 1; i < V; i++) if (last[i] > last[best]) best = i;
        return best;
      });
      seq.push(next);
    }
  });
  return seq;
}
