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
// steps (newton_schulz.ts), so it runs on every backend: a group's momenta are one buffer (one
// pass decays them all), its directions are written straight into the iteration's input, and the
// iteration's last product carries -lr, so that the update is added straight into the weights.

import type { Backend, Buf } from '../engine/backend';
import type { Tensor } from '../engine/tensor';
import { empty, keep } from '../engine/tensor';
import * as F from '../engine/ops';
import { AdamW } from './optim';
import type { AdamOptions, Optimizer, OptimizerState } from './optim';
import { NewtonSchulz, prefersGramSpace } from './newton_schulz';

export { newtonSchulz } from './newton_schulz';

export interface MuonOptions extends AdamOptions {
  /** The matrices' learning rate at the schedule's peak (`lr` is AdamW's). */
  muonLr: number;
  /** Momentum of the matrices (default 0.95). */
  momentum?: number;
  /** Which parameters Muon updates (default: every 2-D one). */
  isMatrix?: (name: string, p: Tensor) => boolean;
}

/** The matrices of one shape [fanIn, fanOut]. */
interface MatrixGroup {
  fanIn: number;
  fanOut: number;
  /** Indices into the matrix list; member k is slice k of the group's buffers. */
  members: number[];
  /** The members' momenta, [members, fanIn, fanOut]: one buffer, so that decaying them is one pass. */
  momentum: Tensor;
}

/**
 * Groups orthogonalised as one Newton-Schulz batch: one group, or (in G's space) every group
 * whose short side is the same n, so that their [n, n] work is one product at a time.
 */
interface Batch {
  groups: MatrixGroup[];
  /** Its shapes are the groups', in order. */
  ns: NewtonSchulz;
}

export class Muon implements Optimizer {
  private readonly adam: AdamW;
  private readonly matrices: [string, Tensor][];
  private readonly batches: Batch[];
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
    this.decay = this.matrices.map(([n]) => !(opts.noDecay?.(n) ?? false));
    const shapes = new Map<string, { fanIn: number; fanOut: number; members: number[] }>();
    this.matrices.forEach(([, p], index) => {
      const [fanIn, fanOut] = p.shape as [number, number];
      const key = `${fanIn}x${fanOut}`;
      if (!shapes.has(key)) shapes.set(key, { fanIn, fanOut, members: [] });
      shapes.get(key)!.members.push(index);
    });
    const groups = [...shapes.values()].map((g) => ({
      ...g,
      momentum: keep(empty([g.members.length, g.fanIn, g.fanOut], 'float32', this.backendOf(g))),
    }));
    const joint = new Map<number, MatrixGroup[]>(); // short side -> the groups in G's space
    const alone: MatrixGroup[][] = [];
    for (const g of groups) {
      const n = Math.min(g.fanIn, g.fanOut);
      if (!prefersGramSpace(g.fanIn, g.fanOut)) alone.push([g]);
      else joint.set(n, [...(joint.get(n) ?? []), g]);
    }
    this.batches = [...joint.values(), ...alone].map((members) => ({
      groups: members,
      ns: new NewtonSchulz(
        members.map((g) => ({ slices: g.members.length, rows: g.fanIn, cols: g.fanOut })),
        this.backendOf(members[0]!),
      ),
    }));
  }

  private backendOf(group: { members: number[] }): Backend {
    return this.matrices[group.members[0]!]![1].backend;
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
    for (const batch of this.batches) this.updateBatch(batch, matrixLr);
  }

  private updateBatch(batch: Batch, lr: number): void {
    const grads = batch.groups.map((group) =>
      group.members.map((index) => this.matrices[index]![1].grad),
    );
    if (grads.flat().every((g) => g === null)) return;
    batch.groups.forEach((group, j) => this.writeDirections(group, grads[j]!, batch.ns.inputs[j]!));
    // The orthogonalised directions times -lr sqrt(max(1, fanOut / fanIn)): [slices, fanIn, fanOut]
    const steps = batch.groups.map((g) => -lr * Math.sqrt(Math.max(1, g.fanOut / g.fanIn)));
    const updates = batch.ns.run(steps, true);
    batch.groups.forEach((group, j) => {
      const be = group.momentum.backend;
      const size = group.fanIn * group.fanOut;
      group.members.forEach((index, k) => {
        if (grads[j]![k] === null) return;
        const p = this.matrices[index]![1];
        if (this.decay[index] && this.weightDecay > 0)
          be.affine(p.buf, p.buf, size, 1 - lr * this.weightDecay, 0);
        const slices = group.members.length;
        be.copyBlock(updates[j]!.buf, p.buf, 1, slices, k, 1, 0, 1, size, true); // p += slice k
      });
    });
  }

  /**
   * m <- beta m + g for a group's members, then their Nesterov directions g + beta m into
   * `directions` ([members, fanIn, fanOut]). A matrix without a gradient keeps its momentum
   * (parked meanwhile in `directions`, which is written next); its direction is beta m.
   */
  private writeDirections(group: MatrixGroup, grads: (Tensor | null)[], directions: Tensor): void {
    const be = group.momentum.backend;
    const slices = group.members.length;
    const size = group.fanIn * group.fanOut;
    const momenta = group.momentum.buf;
    const idle = grads.flatMap((g, k) => (g === null ? [k] : []));
    const park = (from: Buf, to: Buf) =>
      idle.forEach((k) => be.copyBlock(from, to, 1, slices, k, slices, k, 1, size, false));
    park(momenta, directions.buf);
    be.affine(momenta, momenta, slices * size, this.momentum, 0);
    park(directions.buf, momenta);
    const addGrads = (dst: Buf) =>
      grads.forEach((g, k) => {
        if (g !== null) be.copyBlock(g.buf, dst, 1, 1, 0, slices, k, 1, size, true);
      });
    addGrads(momenta);
    be.affine(momenta, directions.buf, slices * size, this.momentum, 0);
    addGrads(directions.buf);
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
    for (const group of this.batches.flatMap((b) => b.groups)) {
      const all = group.momentum.toFloat32Array();
      const size = group.fanIn * group.fanOut;
      group.members.forEach((index, k) => {
        const name = this.matrices[index]![0];
        s.m[name] = all.slice(k * size, (k + 1) * size);
        s.v[name] = new Float32Array(size);
      });
    }
    return s;
  }

  loadState(state: OptimizerState, source = 'optimiser state'): void {
    this.adam.loadState(state, source);
    for (const group of this.batches.flatMap((b) => b.groups)) {
      const size = group.fanIn * group.fanOut;
      const { backend: be, buf } = group.momentum;
      group.members.forEach((index, k) => {
        const name = this.matrices[index]![0];
        const src = state.m[name];
        if (!src || src.length !== size)
          throw new Error(`${source}: momentum for '${name}' is missing or has the wrong size`);
        const tmp = be.upload(src);
        be.copyBlock(tmp, buf, 1, 1, 0, group.members.length, k, 1, size, false);
        be.free(tmp);
      });
    }
  }

  dispose(): void {
    this.adam.dispose();
    for (const batch of this.batches) {
      batch.groups.forEach((g) => g.momentum.dispose());
      batch.ns.dispose();
    }
  }
}
