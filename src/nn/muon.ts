// Muon (MomentUm Orthogonalized by Newton-Schulz) for the 2-D weight matrices, AdamW for the
// rest (embeddings, the output head, gains, biases): the optimiser of the modded-nanogpt speedrun
// records (Keller Jordan, 2024).
//
// Each matrix keeps a momentum buffer m <- beta m + g; its update is the Nesterov direction
// g + beta m made (nearly) orthogonal: a quintic Newton-Schulz iteration pushes every singular
// value of X = u / ||u||_F towards 1 (coefficients 3.4445, -4.7750, 2.0315, five steps), which is
// cheap matmuls rather than an SVD. The step is lr * sqrt(max(1, fanOut / fanIn)), so a matrix's
// update has about the same RMS whatever its shape. Matrices of the same (oriented) shape are
// orthogonalised together as one batch of matmuls, wide side last: the [in, out] weights of one
// layer and the transposed ones of another share a batch.
//
// The state keeps the checkpoint's layout (OptimizerState: m and v per parameter): a matrix's m
// is its momentum and its v stays zero. Composed from engine ops, so it runs on every backend.

import type { Tensor } from '../engine/tensor';
import { keep, tidy } from '../engine/tensor';
import * as F from '../engine/ops';
import { AdamW } from './optim';
import type { AdamOptions, Optimizer, OptimizerState } from './optim';

/** The quintic Newton-Schulz coefficients and step count of the speedrun records. */
const NS_COEFFICIENTS = [3.4445, -4.775, 2.0315] as const;
const NS_STEPS = 5;

export interface MuonOptions extends AdamOptions {
  /** The matrices' learning rate at the schedule's peak (`lr` is AdamW's). */
  muonLr: number;
  /** Momentum of the matrices (default 0.95). */
  momentum?: number;
  /** Which parameters Muon updates (default: every 2-D one). */
  isMatrix?: (name: string, p: Tensor) => boolean;
}

/**
 * X ([k, r, c] with r <= c, or [r, c]) pushed towards the nearest semi-orthogonal matrix
 * (U V^T of its SVD): the quintic Newton-Schulz iteration on X / ||X||_F, slice by slice.
 * The caller normalises each slice; here only the iteration.
 */
export function newtonSchulz(x: Tensor, steps: number = NS_STEPS): Tensor {
  const [a, b, c] = NS_COEFFICIENTS;
  let out = x;
  for (let i = 0; i < steps; i++) {
    const gram = F.matmul(out, out, { transB: true }); // [k, r, r]
    const poly = F.add(F.scale(gram, b), F.scale(F.matmul(gram, gram), c)); // [k, r, r]
    out = F.add(F.scale(out, a), F.matmul(poly, out)); // [k, r, c]
  }
  return out;
}

/** The matrices of one oriented shape [rows <= cols], orthogonalised as one batch. */
interface MatrixGroup {
  rows: number;
  cols: number;
  /** Indices into the matrix list; transposed: stored [cols, rows]. */
  members: { index: number; transposed: boolean }[];
}

export class Muon implements Optimizer {
  private readonly adam: AdamW;
  private readonly matrices: [string, Tensor][];
  private readonly momenta: Tensor[];
  private readonly groups: MatrixGroup[];
  private readonly decay: boolean[];
  readonly muonLr: number;
  readonly baseLr: number;
  readonly momentum: number;
  readonly weightDecay: number;

  constructor(
    private readonly params: readonly [string, Tensor][],
    opts: MuonOptions,
  ) {
    const isMatrix = opts.isMatrix ?? ((_n: string, p: Tensor) => p.rank === 2);
    this.matrices = params.filter(([n, p]) => isMatrix(n, p));
    const matrixNames = new Set(this.matrices.map(([n]) => n));
    this.adam = new AdamW(
      params.filter(([n]) => !matrixNames.has(n)),
      opts,
    );
    this.muonLr = opts.muonLr;
    this.baseLr = opts.lr;
    this.momentum = opts.momentum ?? 0.95;
    this.weightDecay = opts.weightDecay ?? 0;
    this.momenta = this.matrices.map(([, p]) => keep(F.zeros(p.shape)));
    this.decay = this.matrices.map(([n]) => !(opts.noDecay?.(n) ?? false));
    this.groups = [];
    this.matrices.forEach(([, p], index) => {
      const [fanIn, fanOut] = p.shape as [number, number];
      const transposed = fanIn > fanOut;
      const rows = Math.min(fanIn, fanOut);
      const cols = Math.max(fanIn, fanOut);
      let group = this.groups.find((g) => g.rows === rows && g.cols === cols);
      if (group === undefined) {
        group = { rows, cols, members: [] };
        this.groups.push(group);
      }
      group.members.push({ index, transposed });
    });
  }

  /** Optimiser steps taken. */
  get step(): number {
    return this.adam.step;
  }

  /** The names of the parameters Muon updates (the rest go to AdamW). */
  matrixNames(): string[] {
    return this.matrices.map(([n]) => n);
  }

  /** Global L2 norm of all gradients. */
  gradNorm(): number {
    let s = 0;
    for (const [, p] of this.params) if (p.grad) s += F.sumOfSquares(p.grad);
    return Math.sqrt(s);
  }

  /**
   * One update: AdamW at `lr` for the non-matrix parameters, Muon for the matrices at muonLr
   * scaled as the schedule scales `lr` (lr / the peak lr).
   */
  update(lr = this.baseLr): void {
    this.adam.update(lr);
    const matrixLr = (this.muonLr * lr) / this.baseLr;
    for (const group of this.groups) this.updateGroup(group, matrixLr);
  }

  private updateGroup(group: MatrixGroup, lr: number): void {
    const live = group.members.filter(({ index }) => this.matrices[index]![1].grad !== null);
    if (live.length === 0) return;
    tidy(() => {
      const directions = live.map(({ index, transposed }) => {
        const grad = this.matrices[index]![1].grad!;
        const m = this.momenta[index]!;
        m.backend.affine(m.buf, m.buf, m.size, this.momentum, 0); // m <- beta m
        m.backend.axpy(grad.buf, m.buf, m.size, 1); // m <- beta m + g
        const nesterov = F.add(grad, F.scale(m, this.momentum)); // [in, out]
        const oriented = transposed ? F.transpose(nesterov, 0, 1) : nesterov; // [rows, cols]
        const norm = Math.sqrt(F.sumOfSquares(oriented)) + 1e-7;
        return F.reshape(F.scale(oriented, 1 / norm), [1, group.rows, group.cols]);
      });
      const orthogonal = newtonSchulz(F.concat(directions, 0)); // [k, rows, cols]
      live.forEach(({ index, transposed }, k) => {
        const p = this.matrices[index]![1];
        const [fanIn, fanOut] = p.shape as [number, number];
        const slice = F.reshape(F.slice(orthogonal, 0, k, k + 1), [group.rows, group.cols]);
        const update = transposed ? F.transpose(slice, 0, 1) : slice; // [in, out]
        if (this.decay[index] && this.weightDecay > 0)
          p.backend.affine(p.buf, p.buf, p.size, 1 - lr * this.weightDecay, 0);
        p.backend.axpy(update.buf, p.buf, p.size, -lr * Math.sqrt(Math.max(1, fanOut / fanIn)));
      });
    });
  }

  zeroGrad(): void {
    for (const [, p] of this.params) {
      if (p.grad) {
        p.grad.dispose();
        p.grad = null;
      }
    }
  }

  /** AdamW's moments, and each matrix's momentum as its m (its v zero). */
  state(): OptimizerState {
    const s = this.adam.state();
    this.matrices.forEach(([n, p], i) => {
      s.m[n] = this.momenta[i]!.toFloat32Array();
      s.v[n] = new Float32Array(p.size);
    });
    return s;
  }

  loadState(state: OptimizerState, source = 'optimiser state'): void {
    this.adam.loadState(state, source);
    this.matrices.forEach(([n, p], i) => {
      const src = state.m[n];
      if (!src || src.length !== p.size)
        throw new Error(`${source}: momentum for '${n}' is missing or has the wrong size`);
      const dst = this.momenta[i]!;
      const tmp = dst.backend.upload(src);
      dst.backend.copyBlock(tmp, dst.buf, 1, 1, 0, 1, 0, 1, p.size, false);
      dst.backend.free(tmp);
    });
  }

  dispose(): void {
    this.adam.dispose();
    this.momenta.forEach((t) => t.dispose());
  }
}
