// Module: named parameters, child modules, train/eval mode, state dicts; and the basic layers.
//
// Follows PyTorch's nn.Module naming so that state-dict keys read like GPT-2's
// (`h.0.attn.c_attn.weight`). Linear stores its weight [in, out] (GPT-2's Conv1D layout), so
// `x @ W` needs no transpose and the GPT-2 export copies weights as they are.
// Parameters are kept tensors (outside every tidy scope) that require grad.

import type { Tensor } from '../engine/tensor';
import { keep, noGrad } from '../engine/tensor';
import * as F from '../engine/ops';
import { Rng } from './rng';

export abstract class Module {
  training = true;
  private readonly ownParams = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();

  /** Registers a parameter: kept alive, requires grad. */
  protected param(name: string, t: Tensor): Tensor {
    keep(t);
    t.requiresGrad = true;
    t.name = name;
    this.ownParams.set(name, t);
    return t;
  }

  /** Registers a child module under a name (its parameters get the `name.` prefix). */
  protected child<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    return m;
  }

  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this.ownParams) out.push([prefix + n, t]);
    for (const [n, c] of this.children) out.push(...c.namedParameters(`${prefix}${n}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  numParameters(): number {
    return this.parameters().reduce((s, t) => s + t.size, 0);
  }

  train(mode = true): this {
    this.training = mode;
    for (const c of this.children.values()) c.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) {
      if (p.grad) {
        p.grad.dispose();
        p.grad = null;
      }
    }
  }

  /** Host copies of every parameter, by name. */
  stateDict(): Record<string, { shape: number[]; data: Float32Array }> {
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [n, t] of this.namedParameters())
      out[n] = { shape: [...t.shape], data: t.toFloat32Array() };
    return out;
  }

  /**
   * Copies values into the parameters. Every parameter must be present with its exact shape,
   * and no unknown names are allowed; `source` names the file for error messages.
   */
  loadStateDict(
    dict: Record<string, { shape: readonly number[]; data: Float32Array }>,
    source = 'state dict',
  ): void {
    const params = new Map(this.namedParameters());
    const missing = [...params.keys()].filter((n) => !(n in dict));
    const unexpected = Object.keys(dict).filter((n) => !params.has(n));
    if (missing.length || unexpected.length) {
      throw new Error(
        `${source}: does not match the model` +
          (missing.length ? `; missing: ${missing.join(', ')}` : '') +
          (unexpected.length ? `; unexpected: ${unexpected.join(', ')}` : ''),
      );
    }
    for (const [n, t] of params) {
      const src = dict[n];
      if (
        src.shape.length !== t.rank ||
        src.shape.some((s, i) => s !== t.shape[i]) ||
        src.data.length !== t.size
      ) {
        throw new Error(
          `${source}: '${n}' has shape [${src.shape.join(', ')}], the model needs [${t.shape.join(', ')}]`,
        );
      }
      const be = t.backend;
      noGrad(() => {
        const tmp = be.upload(src.data);
        be.copyBlock(tmp, t.buf, 1, 1, 0, 1, 0, 1, t.size, false);
        be.free(tmp);
      });
    }
  }
}

/** An ordered list of modules named 0, 1, 2, ... */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items;
    items.forEach((m, i) => this.child(String(i), m));
  }
}

// ---- initialisation ----------------------------------------------------------------------------

export function randn(shape: readonly number[], rng: Rng, std: number): Tensor {
  const n = shape.reduce((p, s) => p * s, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
  return F.tensor(data, shape);
}

export function randUniform(shape: readonly number[], rng: Rng, bound: number): Tensor {
  const n = shape.reduce((p, s) => p * s, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (rng.uniform() * 2 - 1) * bound;
  return F.tensor(data, shape);
}

// ---- layers ------------------------------------------------------------------------------------

export interface LinearOptions {
  bias?: boolean;
  /** Standard deviation of the normal init (GPT-2 uses 0.02). */
  std?: number;
}

/** y = x @ W + b with W [in, out]. */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    rng: Rng,
    opts: LinearOptions = {},
  ) {
    super();
    this.weight = this.param('weight', randn([inFeatures, outFeatures], rng, opts.std ?? 0.02));
    this.bias = opts.bias === false ? null : this.param('bias', F.zeros([outFeatures]));
  }
  forward(x: Tensor): Tensor {
    if (x.shape[x.rank - 1] !== this.inFeatures) {
      throw new Error(
        `Linear(${this.inFeatures}, ${this.outFeatures}): input [${x.shape.join(', ')}] has the wrong last dimension`,
      );
    }
    // [..., out]; the bias added in the product's store (the bits of matmul then add).
    return this.bias ? F.matmul(x, this.weight, { bias: this.bias }) : F.matmul(x, this.weight);
  }
}

export class Embedding extends Module {
  readonly weight: Tensor;
  constructor(
    readonly numEmbeddings: number,
    readonly dim: number,
    rng: Rng,
    std = 0.02,
  ) {
    super();
    this.weight = this.param('weight', randn([numEmbeddings, dim], rng, std));
  }
  forward(indices: Tensor): Tensor {
    return F.embedding(this.weight, indices); // [..., dim]
  }
}

export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.weight = this.param('weight', F.ones([dim]));
    this.bias = this.param('bias', F.zeros([dim]));
  }
  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.weight, this.bias, this.eps);
  }
}

export class GELU extends Module {
  forward(x: Tensor): Tensor {
    return F.gelu(x);
  }
}

/** Inverted dropout; each call in training mode draws a fresh mask seed from the RNG. */
export class Dropout extends Module {
  constructor(
    readonly p: number,
    private readonly rng: Rng,
  ) {
    super();
    if (!(p >= 0 && p < 1)) throw new Error(`Dropout: p must be in [0, 1), got ${p}`);
  }
  /** True when forward draws a mask (training with p > 0); else it returns x unchanged. */
  get active(): boolean {
    return this.training && this.p > 0;
  }
  forward(x: Tensor): Tensor {
    if (!this.active) return x;
    return F.dropout(x, this.p, this.rng.next());
  }
}

/**
 * What the two convolutions share: a square kernel, stride and padding, and PyTorch's default
 * init, weight and bias uniform in +-1/sqrt(fan) with fan = weight dim 1 x k x k (the inputs a
 * kernel window sums per output: cIn for a convolution, cOut for a transposed one).
 */
abstract class ConvolutionBase extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernel: number,
    rng: Rng,
    readonly stride = 1,
    readonly pad = 0,
  ) {
    super();
    const shape = this.weightShape();
    const bound = 1 / Math.sqrt(shape[1]! * kernel * kernel);
    this.weight = this.param('weight', randUniform(shape, rng, bound));
    this.bias = this.param('bias', randUniform([outChannels], rng, bound));
  }
  /** The weight's layout (called by the constructor, once the channel counts are set). */
  protected abstract weightShape(): number[];
}

/** 2-D convolution, weight [cOut, cIn, k, k], PyTorch's default uniform init. */
export class Conv2d extends ConvolutionBase {
  protected weightShape(): number[] {
    return [this.outChannels, this.inChannels, this.kernel, this.kernel];
  }
  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, this.stride, this.pad);
  }
}

/** Transposed 2-D convolution, weight [cIn, cOut, k, k] (PyTorch's layout). */
export class ConvTranspose2d extends ConvolutionBase {
  protected weightShape(): number[] {
    return [this.inChannels, this.outChannels, this.kernel, this.kernel];
  }
  forward(x: Tensor): Tensor {
    return F.convTranspose2d(x, this.weight, this.bias, this.stride, this.pad);
  }
}
