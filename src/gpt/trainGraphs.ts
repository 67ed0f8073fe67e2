// The GPT's training step as CUDA graphs (../engine/graph.ts): forward, backward, the clipped
// Adam update and the loss's copy, captured once per batch shape and replayed.
//
// Per batch size: the first step runs eagerly with its uploads drawn from the pool (so the
// capture finds every buffer), the second is captured and launched, every later one is a replay.
// The batch goes into a fixed token buffer before each launch; the Adam update's rate and step,
// and the dropout seeds, are the replay's inputs. The seeds are the model RNG's next draws, as
// the eager step's dropout layers draw them (checked at the capture: the captured seeds must be
// exactly those draws), so a replayed run equals an eager one bit for bit, RNG state included.
// A capture that fails (a buffer not in the pool, a host read inside the step, ...) undoes its
// host side effects, says so in one line, and that batch size trains eagerly from then on.
// The step's JavaScript (the forward, any hook patched into it) runs only at the eager run and
// the capture: a replay runs the recorded kernels alone.

import * as F from '../engine/ops';
import { keep, tidy } from '../engine/tensor';
import type { Tensor } from '../engine/tensor';
import { StepGraph, runPooled, writeBuffer } from '../engine/graph';
import type { Adam } from '../nn/optim';
import { Rng } from '../nn/rng';
import { SEQUENCE_LENGTH } from '../data/sequences';
import type { GPT } from './model';

/** One batch size's graph and the fixed buffers it reads and writes. */
interface ShapeGraph {
  /** int32 [size, SEQUENCE_LENGTH]: the batch of the step about to run. */
  readonly tokens: Tensor;
  /** [1]: the step's loss. */
  readonly loss: Tensor;
  steps: number;
  graph: StepGraph | null;
  /** The capture failed: this size trains eagerly. */
  eager: boolean;
}

export class GraphedTrainSteps {
  private readonly shapes = new Map<number, ShapeGraph>();

  constructor(
    private readonly model: GPT,
    private readonly optimizer: Adam,
    /** The RNG the model's dropout layers draw their mask seeds from. */
    private readonly dropoutRng: Rng,
    private readonly log: (line: string) => void,
  ) {}

  /** One optimiser step on a batch of `size` sequences; returns its loss [1] (on the device). */
  step(batchTokens: Int32Array, size: number, lr: number): Tensor {
    const s = this.shapeGraph(size);
    writeBuffer(s.tokens.buf, batchTokens);
    s.steps++;
    if (s.graph !== null) this.replay(s.graph, lr, this.drawSeeds(s.graph.seeds));
    else if (s.eager || s.steps === 1) runPooled(() => this.body(s, lr));
    else this.capture(s, size, lr);
    return s.loss;
  }

  /** The graphs captured so far (one per batch size), for tests and benchmarks. */
  get graphs(): StepGraph[] {
    return [...this.shapes.values()].flatMap((s) => (s.graph ? [s.graph] : []));
  }

  dispose(): void {
    for (const s of this.shapes.values()) {
      s.graph?.dispose();
      s.tokens.dispose();
      s.loss.dispose();
    }
    this.shapes.clear();
  }

  private shapeGraph(size: number): ShapeGraph {
    let s = this.shapes.get(size);
    if (s === undefined) {
      const tokens = keep(F.zeros([size, SEQUENCE_LENGTH], 'int32'));
      s = { tokens, loss: keep(F.zeros([1])), steps: 0, graph: null, eager: false };
      this.shapes.set(size, s);
    }
    return s;
  }

  /** The step itself: what the eager runs execute and the capture records. */
  private body(s: ShapeGraph, lr: number): void {
    const { model, optimizer } = this;
    tidy(() => {
      const l = model.loss(s.tokens);
      l.backward();
      optimizer.update(lr);
      optimizer.zeroGrad();
      F.writeInto(s.loss, F.reshape(l, [1]), 0, 0);
    });
  }

  private replay(graph: StepGraph, lr: number, seeds: number[]): void {
    // What optimizer.update does on the host; the device part is in the graph.
    this.optimizer.step++;
    this.optimizer.lr = lr;
    graph.replay({ lr, step: this.optimizer.step, seeds });
  }

  private drawSeeds(count: number): number[] {
    return Array.from({ length: count }, () => this.dropoutRng.next() >>> 0);
  }

  /** Captures the step and launches it; on failure undoes the capture and runs it eagerly. */
  private capture(s: ShapeGraph, size: number, lr: number): void {
    const { optimizer } = this;
    const before = { step: optimizer.step, lr: optimizer.lr, rng: this.dropoutRng.getState() };
    let graph: StepGraph | null = null;
    let reason = '';
    try {
      graph = StepGraph.capture(() => this.body(s, lr));
      const probe = new Rng(0);
      probe.setState(before.rng);
      const expected = Array.from({ length: graph.seeds }, () => probe.next() >>> 0);
      if (expected.some((seed, i) => seed !== graph!.capturedSeeds[i]))
        reason = 'its dropout seeds are not the model RNG draws a replay would make';
    } catch (e) {
      reason = (e as Error).message;
    }
    // The capture ran the step's host side only: the update's count, the RNG's draws.
    optimizer.step = before.step;
    optimizer.lr = before.lr;
    this.dropoutRng.setState(before.rng);
    if (graph !== null && reason === '') {
      s.graph = graph;
      this.replay(graph, lr, this.drawSeeds(graph.seeds));
      return;
    }
    graph?.dispose();
    optimizer.zeroGrad();
    s.eager = true;
    this.log(
      `cuda graphs: capturing the training step (batch ${size}) failed: ${reason}; it runs eagerly`,
    );
    runPooled(() => this.body(s, lr));
  }
}
