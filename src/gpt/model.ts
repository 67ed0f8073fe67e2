// The multimodal GPT: a GPT-2-style decoder built from the engine's primitives.
//
// Follows nanoGPT's model.py: token + learned positional embeddings, pre-LayerNorm blocks,
// causal self-attention composed of matmul and softmax, a 4x GeLU MLP, a final LayerNorm and an
// output head. Parameter names are GPT-2's (`h.0.attn.c_attn.weight`, ...); Linear weights are
// stored [in, out] like GPT-2's Conv1D, so the export copies them as they are (lm_head is the one
// nn.Linear in GPT-2 and is transposed on export).
// The optional KV cache (gpt-fast's KVCache) is preallocated per layer; `forward` with a cache
// writes the new keys/values at `cache.pos` and attends over everything cached so far.
// `decodeAt` is the same one-token step with its position read from device memory
// (DevicePosition), so that the step captured once as a CUDA graph replays at every position
// (../sampling/decodeGraph.ts).

import type { Tensor } from '../engine/tensor';
import * as F from '../engine/ops';
import { writeIntoAt } from '../engine/graph';
import { Module, ModuleList, Linear, Embedding, LayerNorm, Dropout } from '../nn/module';
import { Rng } from '../nn/rng';

export interface GptConfig {
  vocabSize: number;
  /** Maximum sequence length (n_positions). */
  blockSize: number;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  /** Dropout on embeddings, attention weights and residual branches (0 = off). */
  dropout: number;
}

/** The original recipe's model: 4 layers, d_model 128, 4 heads (vocab and block size come from the data). */
export const GPT_DEFAULTS: Omit<GptConfig, 'vocabSize' | 'blockSize'> = {
  nLayer: 4,
  nHead: 4,
  nEmbd: 128,
  dropout: 0,
};

export function validateGptConfig(c: GptConfig): GptConfig {
  for (const key of ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd'] as const) {
    if (!Number.isInteger(c[key]) || c[key] <= 0)
      throw new Error(`GptConfig.${key} must be a positive integer, got ${c[key]}`);
  }
  if (c.nEmbd % c.nHead !== 0)
    throw new Error(`GptConfig: nEmbd (${c.nEmbd}) must be divisible by nHead (${c.nHead})`);
  if (!(c.dropout >= 0 && c.dropout < 1))
    throw new Error(`GptConfig.dropout must be in [0, 1), got ${c.dropout}`);
  return c;
}

/** One layer's view of a KVCache: its keys, values and decoding buffer, and the position. */
export interface LayerCache {
  keys: Tensor;
  values: Tensor;
  pos: number;
  /** A decode step's position on the device (`GPT.decodeAt`): then `pos` is not read. */
  at?: DevicePosition;
}

/**
 * Where a one-token decode step (`GPT.decodeAt`) reads its position: device tensors, rewritten
 * before each replay of the captured step (cuda only: the cache write is `writeIntoAt`).
 */
export interface DevicePosition {
  /** int32 [B, 1]: each row's position id (the plain cache position, or less a row's padding). */
  positions: Tensor;
  /** int32 [1]: the cache slot the step writes (the cache position). */
  slot: Tensor;
  /**
   * [B, 1, 1, blockSize]: added to the scores of every slot: 0 where the row attends, -1e9 on
   * its padding (RowLayout) and beyond `slot` (so their probabilities are exactly 0).
   */
  keyBias: Tensor;
}

/**
 * Preallocated keys and values for every layer: [B, nHead, blockSize, headSize] each; the first
 * `pos` slots of each row are filled.
 */
export class KVCache {
  readonly keys: Tensor[];
  readonly values: Tensor[];
  /** Number of positions filled so far. */
  pos = 0;
  constructor(
    readonly config: GptConfig,
    readonly batch: number,
    filled?: { keys: Tensor[]; values: Tensor[]; pos: number },
  ) {
    const hs = config.nEmbd / config.nHead;
    const shape = [batch, config.nHead, config.blockSize, hs];
    this.keys = filled?.keys ?? Array.from({ length: config.nLayer }, () => F.zeros(shape));
    this.values = filled?.values ?? Array.from({ length: config.nLayer }, () => F.zeros(shape));
    this.pos = filled?.pos ?? 0;
  }

  /** Layer i's keys, values and buffer at the current position. */
  layer(i: number): LayerCache {
    return { keys: this.keys[i]!, values: this.values[i]!, pos: this.pos };
  }

  /**
   * A new cache of rows.length rows at the same position, row b a copy of row rows[b] of this one:
   * one prefix run once, continued by many rows (the scorer's captions of one image).
   */
  gatherRows(rows: Int32Array): KVCache {
    const index = F.tensor(rows, [rows.length], 'int32');
    const gather = (t: Tensor) => {
      const [B, ...rest] = t.shape;
      const perRow = rest.reduce((a, b) => a * b, 1);
      return F.reshape(F.embedding(F.reshape(t, [B!, perRow]), index), [rows.length, ...rest]);
    };
    return new KVCache(this.config, rows.length, {
      keys: this.keys.map(gather),
      values: this.values.map(gather),
      pos: this.pos,
    });
  }
  dispose(): void {
    [...this.keys, ...this.values].forEach((t) => t.dispose());
  }
}

/**
 * Per-row layout of a left-padded batch (rows whose prefixes have different lengths, e.g. the
 * two branches of classifier-free guidance): row b's first `padding[b]` cache slots are padding
 * that no query attends to, and its tokens get position ids `positions` [B, T].
 */
export interface RowLayout {
  /** [B * T] position id of every token (slot - padding[b] for real tokens). */
  positions: Int32Array;
  /** [B] leading padding slots per row. */
  padding: Int32Array;
}

export class CausalSelfAttention extends Module {
  readonly c_attn: Linear;
  readonly c_proj: Linear;
  private readonly attnDropout: Dropout;
  private readonly residDropout: Dropout;
  private readonly headSize: number;

  constructor(
    private readonly config: GptConfig,
    rng: Rng,
  ) {
    super();
    const d = config.nEmbd;
    this.c_attn = this.child('c_attn', new Linear(d, 3 * d, rng));
    // GPT-2 scales the init of residual projections by 1/sqrt(2 * nLayer).
    this.c_proj = this.child(
      'c_proj',
      new Linear(d, d, rng, { std: 0.02 / Math.sqrt(2 * config.nLayer) }),
    );
    this.attnDropout = this.child('attn_dropout', new Dropout(config.dropout, rng));
    this.residDropout = this.child('resid_dropout', new Dropout(config.dropout, rng));
    this.headSize = d / config.nHead;
  }

  /** x [B, T, C] -> [B, T, C]; with a cache, also stores this call's keys/values at cache.pos. */
  forward(x: Tensor, cache?: LayerCache, keyMask?: Tensor): Tensor {
    const [B, T] = x.shape;
    if (cache && T === 1) return this.decodeStep(x, cache, keyMask);
    const nh = this.config.nHead;
    const hs = this.headSize;
    if (!cache && !keyMask && !this.attnDropout.active && T <= F.ATTENTION_MAX_T) {
      // Training and full-sequence scoring: every head in one kernel from c_attn's layout.
      const merged = F.causalAttention(this.c_attn.forward(x), nh, 1 / Math.sqrt(hs)); // [B, T, C]
      return this.residDropout.forward(this.c_proj.forward(merged));
    }
    const qkv = F.reshape(this.c_attn.forward(x), [B, T, 3, nh, hs]); // [B, T, 3, nh, hs]
    const qkvHeads = F.permute(qkv, [2, 0, 3, 1, 4]); // [3, B, nh, T, hs]
    const [qAll, kAll, vAll] = F.split(qkvHeads, [1, 1, 1], 0);
    const q = F.scale(F.reshape(qAll, [B, nh, T, hs]), 1 / Math.sqrt(hs)); // [B, nh, T, hs]
    const k = F.reshape(kAll, [B, nh, T, hs]); // [B, nh, T, hs]
    const v = F.reshape(vAll, [B, nh, T, hs]); // [B, nh, T, hs]
    if (cache) {
      F.writeInto(cache.keys, k, 2, cache.pos);
      F.writeInto(cache.values, v, 2, cache.pos);
    }
    // With a cache, the products read its first pos+T slots in place (the same products as on
    // a copy of them).
    const Tk = cache ? cache.pos + T : T;
    let scores = cache
      ? F.matmulLeadingRows(q, cache.keys, Tk, { transB: true })
      : F.matmul(q, k, { transB: true }); // [B, nh, T, Tk]
    if (keyMask) scores = F.add(scores, keyMask); // + [B, 1, 1, Tk]: -1e9 on padding slots
    const att = this.attnDropout.forward(F.softmax(scores, { causal: true })); // [B, nh, T, Tk]
    const y = cache ? F.matmulLeadingRows(att, cache.values, Tk) : F.matmul(att, v); // [B, nh, T, hs]
    const merged = F.reshape(F.permute(y, [0, 2, 1, 3]), [B, T, nh * hs]); // [B, T, C]
    return this.residDropout.forward(this.c_proj.forward(merged));
  }

  /**
   * One new token per row, x [B, 1, C] -> [B, 1, C], against the cache read in place: the
   * scores of the filled slots [B, nh, 1, filled] and the product of their probabilities with
   * the filled values, each a product over the leading rows of the cache's preallocated
   * [blockSize, headSize] matrices (no copy of them; copying the filled part out of the cache
   * every step, as the general path does, cost more than the whole product). With one position,
   * [B, 1, nh, hs] and [B, nh, 1, hs] are the same layout, so the heads need no permute. The same
   * numbers as the general path: each score is the same dot product and each output the same sum
   * over the same slots in the same order.
   */
  private decodeStep(x: Tensor, cache: LayerCache, keyMask?: Tensor): Tensor {
    const [B] = x.shape;
    const nh = this.config.nHead;
    const hs = this.headSize;
    const qkv = F.reshape(this.c_attn.forward(x), [B, 3, nh * hs]); // [B, 3, C]
    const head = (i: number) => F.reshape(F.slice(qkv, 1, i, i + 1), [B, nh, 1, hs]);
    const q = F.scale(head(0), 1 / Math.sqrt(hs)); // [B, nh, 1, hs]
    const y = cache.at
      ? F.matmul(this.probsAt(q, head(1), head(2), cache, cache.at), cache.values)
      : this.attendFilled(q, head(1), head(2), cache, keyMask); // [B, nh, 1, hs]
    const merged = F.reshape(y, [B, 1, nh * hs]); // [B, 1, C]
    return this.residDropout.forward(this.c_proj.forward(merged));
  }

  /** Writes k, v at cache.pos; the attention output over the filled slots [B, nh, 1, hs]. */
  private attendFilled(q: Tensor, k: Tensor, v: Tensor, cache: LayerCache, keyMask?: Tensor) {
    F.writeInto(cache.keys, k, 2, cache.pos);
    F.writeInto(cache.values, v, 2, cache.pos);
    const filled = cache.pos + 1;
    let scores = F.matmulLeadingRows(q, cache.keys, filled, { transB: true }); // [B, nh, 1, filled]
    if (keyMask) scores = F.add(scores, keyMask); // + [B, 1, 1, filled]: -1e9 on padding slots
    const att = this.attnDropout.forward(F.softmax(scores, { causal: true })); // [B, nh, 1, filled]
    return F.matmulLeadingRows(att, cache.values, filled); // [B, nh, 1, hs]
  }

  /**
   * The same with the position on the device: k, v written at at.slot, and the softmax over every
   * slot with at.keyBias added, which puts exactly 0 on the slots the other form leaves out. The
   * same numbers: the cuda softmax's lanes add exact zeros to their partial sums and never take
   * the biased slots' max, and the product with the values adds exact zeros beyond the filled
   * slots to the sums of the other form.
   */
  private probsAt(q: Tensor, k: Tensor, v: Tensor, cache: LayerCache, at: DevicePosition) {
    writeIntoAt(cache.keys, k, 2, at.slot);
    writeIntoAt(cache.values, v, 2, at.slot);
    const all = F.matmul(q, cache.keys, { transB: true }); // [B, nh, 1, slots]
    const scores = F.add(all, at.keyBias); // + [B, 1, 1, slots]
    return this.attnDropout.forward(F.softmax(scores, { causal: true })); // [B, nh, 1, slots]
  }

  /** The attention probabilities [B, nh, T, T] for x (for visualisation). */
  attentionMap(x: Tensor): Tensor {
    const [B, T] = x.shape;
    const nh = this.config.nHead;
    const hs = this.headSize;
    const qkvHeads = F.permute(
      F.reshape(this.c_attn.forward(x), [B, T, 3, nh, hs]),
      [2, 0, 3, 1, 4],
    );
    const [q, k] = F.split(qkvHeads, [1, 1, 1], 0).map((t) => F.reshape(t, [B, nh, T, hs]));
    return F.softmax(F.scale(F.matmul(q, k, { transB: true }), 1 / Math.sqrt(hs)), {
      causal: true,
    });
  }
}

export class MLP extends Module {
  readonly c_fc: Linear;
  readonly c_proj: Linear;
  private readonly dropout: Dropout;
  constructor(config: GptConfig, rng: Rng) {
    super();
    this.c_fc = this.child('c_fc', new Linear(config.nEmbd, 4 * config.nEmbd, rng));
    this.c_proj = this.child(
      'c_proj',
      new Linear(4 * config.nEmbd, config.nEmbd, rng, { std: 0.02 / Math.sqrt(2 * config.nLayer) }),
    );
    this.dropout = this.child('dropout', new Dropout(config.dropout, rng));
  }
  forward(x: Tensor): Tensor {
    // c_fc's bias and the GeLU in one kernel: gelu(x @ W + b).
    const bias = this.c_fc.bias;
    if (bias === null) throw new Error('MLP: c_fc has no bias');
    const hidden = F.biasGelu(F.matmul(x, this.c_fc.weight), bias); // [B, T, 4C]
    return this.dropout.forward(this.c_proj.forward(hidden)); // [B, T, C]
  }
}

export class Block extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: CausalSelfAttention;
  readonly ln_2: LayerNorm;
  readonly mlp: MLP;
  constructor(config: GptConfig, rng: Rng) {
    super();
    this.ln_1 = this.child('ln_1', new LayerNorm(config.nEmbd));
    this.attn = this.child('attn', new CausalSelfAttention(config, rng));
    this.ln_2 = this.child('ln_2', new LayerNorm(config.nEmbd));
    this.mlp = this.child('mlp', new MLP(config, rng));
  }
  forward(x: Tensor, cache?: LayerCache, keyMask?: Tensor): Tensor {
    // The attention's residual add and ln_2 in one kernel: h = x + attn(...), normed = ln_2(h).
    const { sum: h, normed } = F.addLayerNorm(
      x,
      this.attn.forward(this.ln_1.forward(x), cache, keyMask),
      this.ln_2.weight,
      this.ln_2.bias,
      this.ln_2.eps,
    ); // [B, T, C] each
    return F.add(h, this.mlp.forward(normed));
  }
}

export class GPT extends Module {
  readonly config: GptConfig;
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly h: ModuleList<Block>;
  readonly ln_f: LayerNorm;
  readonly lm_head: Linear;
  private readonly drop: Dropout;

  constructor(config: GptConfig, rng: Rng) {
    super();
    this.config = validateGptConfig({ ...config });
    this.wte = this.child('wte', new Embedding(config.vocabSize, config.nEmbd, rng));
    this.wpe = this.child('wpe', new Embedding(config.blockSize, config.nEmbd, rng));
    this.drop = this.child('drop', new Dropout(config.dropout, rng));
    this.h = this.child(
      'h',
      new ModuleList(Array.from({ length: config.nLayer }, () => new Block(config, rng))),
    );
    this.ln_f = this.child('ln_f', new LayerNorm(config.nEmbd));
    this.lm_head = this.child(
      'lm_head',
      new Linear(config.nEmbd, config.vocabSize, rng, { bias: false }),
    );
  }

  /**
   * tokens int32 [B, T] -> logits [B, T, vocab]. With a cache, the tokens sit at positions
   * cache.pos .. cache.pos+T-1 and the cache advances by T.
   */
  forward(tokens: Tensor, cache?: KVCache, rows?: RowLayout): Tensor {
    return this.head(this.hidden(tokens, cache, rows)); // [B, T, vocab]
  }

  /** The output head: the final layer norm and lm_head, hidden [..., C] -> logits [..., vocab]. */
  head(hidden: Tensor): Tensor {
    return this.lm_head.forward(this.ln_f.forward(hidden));
  }

  /**
   * The last block's output [B, T, C] before the head (`forward` = `head(hidden(...))`): a caller
   * that needs the logits at a few positions only (the scorer) slices first and saves the head's
   * matmul at every other position. Cache and rows as in `forward`.
   */
  hidden(tokens: Tensor, cache?: KVCache, rows?: RowLayout): Tensor {
    const [B, T] = tokens.shape;
    const start = cache ? cache.pos : 0;
    if (tokens.rank !== 2)
      throw new Error(`GPT.forward: tokens must be [B, T], got [${tokens.shape.join(', ')}]`);
    if (start + T > this.config.blockSize) {
      throw new Error(
        `GPT.forward: positions ${start}..${start + T - 1} exceed the block size ${this.config.blockSize}`,
      );
    }
    if (cache && cache.batch !== B)
      throw new Error(`GPT.forward: cache batch ${cache.batch} != tokens batch ${B}`);
    if (rows && (rows.positions.length !== B * T || rows.padding.length !== B)) {
      throw new Error(`GPT.forward: rows need ${B * T} positions and ${B} paddings`);
    }
    const positions = rows
      ? F.tensor(rows.positions, [B, T], 'int32')
      : F.tensor(
          Int32Array.from({ length: T }, (_, i) => start + i),
          [T],
          'int32',
        );
    let keyMask: Tensor | undefined;
    if (rows) {
      const Tk = start + T;
      const mask = new Float32Array(B * Tk); // [B, 1, 1, Tk]
      for (let b = 0; b < B; b++) mask.fill(-1e9, b * Tk, b * Tk + Math.min(rows.padding[b]!, Tk));
      keyMask = F.tensor(mask, [B, 1, 1, Tk]);
    }
    let x = F.add(this.wte.forward(tokens), this.wpe.forward(positions)); // [B, T, C]
    x = this.drop.forward(x);
    this.h.items.forEach((block, i) => {
      x = block.forward(x, cache?.layer(i), keyMask);
    });
    if (cache) cache.pos += T;
    return x;
  }

  /**
   * One decode step, tokens int32 [B, 1] -> logits [B, 1, vocab], with its position on the device
   * (DevicePosition): the keys and values go into the cache at `at.slot`. Neither reads nor
   * advances cache.pos (a replay of the captured step runs no JavaScript): the caller keeps it.
   * The same logits as `forward(tokens, cache, rows)` at that position on the cuda backend.
   */
  decodeAt(tokens: Tensor, cache: KVCache, at: DevicePosition): Tensor {
    const [B, T] = tokens.shape;
    if (tokens.rank !== 2 || T !== 1)
      throw new Error(`GPT.decodeAt: tokens must be [B, 1], got [${tokens.shape.join(', ')}]`);
    if (cache.batch !== B)
      throw new Error(`GPT.decodeAt: cache batch ${cache.batch} != tokens batch ${B}`);
    let x = F.add(this.wte.forward(tokens), this.wpe.forward(at.positions)); // [B, 1, C]
    x = this.drop.forward(x);
    this.h.items.forEach((block, i) => {
      x = block.forward(x, { ...cache.layer(i), at });
    });
    return this.head(x); // [B, 1, vocab]
  }

  /** Mean next-token NLL (nats per predicted token) of tokens [B, T]: predicts tokens[:, 1:]. */
  loss(tokens: Tensor): Tensor {
    const [B, T] = tokens.shape;
    const inputs = F.slice(tokens, 1, 0, T - 1); // [B, T-1]
    const targets = F.slice(tokens, 1, 1, T); // [B, T-1]
    const logits = this.forward(inputs); // [B, T-1, V]
    void B;
    return F.crossEntropy(logits, targets);
  }
}
