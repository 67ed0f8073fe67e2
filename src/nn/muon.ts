// Muon (MomentUm Orthogonalized by Newton-Schulz) for the 2-D weight matrices, AdamW for the
// rest (embeddings, the output head, gains, biases): the optimiser of the modded-nanogpt speedrun
// records (Keller Jordan, 2024).
//
// Each matrix keeps a momentum buffer m <- beta m + g; its update is the Nesterov direction
// g + beta m made (nearly) orthogonal: a quintic Newton-Schulz iteration pushes every singular
// value of X = u / ||u||_F towards 1 (coefficients 3.4445, -4.7750, 2.0315, five steps), which is
// cheap matmuls rather than an SVD. The step is lr * sqrt(max(1, fanOut / fanIn)), so a matrix's
// update has about the same RMS whatever its shape. Matrices of the same shape are orthogonalised
// together as one batch of matmuls, in their own layout: a tall matrix's Gram matrix is X^T X.
//
// The state keeps the checkpoint's layout (OptimizerState: m and v per parameter): a matrix's m
// is its momentum and its v stays zero. Composed from backend kernels on buffers kept across
// steps, so it runs on every backend and allocates nothing per step: the polynomial's scalars
// ride on the matmuls' alpha and on axpy, the Gram matrices (symmetric) are products of one
// operand with itself, and the last product carries -lr, so that the update is added straight
// into the weights.

import type { Tensor } from '../engine/tensor';
import { keep } from '../engine/tensor';
import * as F from '../engine/ops';
import { AdamW } from './optim';
import type { AdamOptions, Optimizer, OptimizerState } from './optim';
import { NewtonSchulz } from './newton_schulz';

export { newtonSchulz } from './newton_schulz';

export interface MuonOptions extends AdamOptions {
  /** The matrices' learning rate at the schedule's peak (`lr` is AdamW's). */
  muonLr: number;
  /** Momentum of the matrices (default 0.95). */
  momentum?: number;
  /** Which parameters Muon updates (default: every 2-D one). */
  isMatrix?: (name: string, p: Tensor) => boolean;
}

/** The matrices of one shape [fanIn, fanOut], orthogonalised as one batch. */
interface MatrixGroup {
  fanIn: number;
  fanOut: number;
  /** Indices into the matrix list. */
  members: number[];
  ns: NewtonSchulz;
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
    const shapes = new Map<string, { fanIn: number; fanOut: number; members: number[] }>();
    this.matrices.forEach(([, p], index) => {
      const [fanIn, fanOut] = p.shape as [number, number];
      const key = `${fanIn}x${fanOut}`;
      if (!shapes.has(key)) shapes.set(key, { fanIn, fanOut, members: [] });
      shapes.get(key)!.members.push(index);
    });
    this.groups = [...shapes.values()].map((g) => ({
      ...g,
      ns: new NewtonSchulz(
        g.members.length,
        g.fanIn,
        g.fanOut,
        this.matrices[g.members[0]!]![1].backend,
      ),
    }));
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
    const live = group.members.filter((index) => this.matrices[index]![1].grad !== null);
    if (live.length === 0) return;
    const { ns } = group;
    const be = ns.backend;
    const size = group.fanIn * group.fanOut;
    const directions = ns.input.buf; // [slices, fanIn, fanOut]
    live.forEach((index, k) => {
      const m = this.momenta[index]!.buf;
      be.affine(m, m, size, this.momentum, 0); // m <- beta m
      be.axpy(this.matrices[index]![1].grad!.buf, m, size, 1); // m <- beta m + g
      be.copyBlock(m, directions, 1, 1, 0, ns.slices, k, 1, size, false);
    });
    be.affine(directions, directions, live.length * size, this.momentum, 0);
    live.forEach((index, k) => {
      const grad = this.matrices[index]![1].grad!.buf;
      be.copyBlock(grad, directions, 1, 1, 0, ns.slices, k, 1, size, true); // g + beta m
    });
    // The orthogonalised directions times -lr sqrt(max(1, fanOut / fanIn)): [k, fanIn, fanOut]
    const step = -lr * Math.sqrt(Math.max(1, group.fanOut / group.fanIn));
    const update = ns.run(live.length, step, true).buf;
    live.forEach((index, k) => {
      const p = this.matrices[index]![1];
      if (this.decay[index] && this.weightDecay > 0)
        be.affine(p.buf, p.buf, size, 1 - lr * this.weightDecay, 0);
      be.copyBlock(update, p.buf, 1, ns.slices, k, 1, 0, 1, size, true); // p += slice k
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
    this.groups.forEach((g) => g.ns.dispose());
  }
}
