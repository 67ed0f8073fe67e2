// The GPT's training loop: epochs of shuffled minibatches, the test NLL after each, one log line
// per interval, a checkpoint at every epoch's end and on Ctrl-C.
//
// Like minGPT's Trainer, the loop knows nothing of the model's insides: it feeds batches of
// 58-token sequences in both orders, records the train NLL (nats per predicted token) of every
// minibatch and the test NLL over the whole test set in both orders at initialisation and after
// every epoch, and logs `epoch | step | loss | lr | ms/step | tok/s | ETA`. A resumed run is
// bit-identical to an uninterrupted one: each epoch's shuffle comes from a seed derived from
// (seed, epoch), and the run (trainRun.ts) saves the dropout RNG and the optimiser moments.
// Step losses stay on the backend until they are read back (every step on cpu and js, where a
// non-finite loss or gradient norm is caught before the update; in bursts on cuda, where a
// non-finite loss is caught at the next read, before anything is saved). Where losses are read
// in bursts and the backend has graphs (cuda), the step is captured once per batch size and
// replayed (trainGraphs.ts; MMGPT_CUDA_GRAPHS=0 or `graphs: false` keeps it eager), bit for bit
// the eager step.

import * as F from '../engine/ops';
import { tidy, keep } from '../engine/tensor';
import type { Tensor } from '../engine/tensor';
import { getBackend } from '../engine/registry';
import { Rng, deriveSeed } from '../nn/rng';
import { Adam } from '../nn/optim';
import { SEQUENCE_LENGTH, TARGETS_PER_SEQUENCE, epochBatches } from '../data/sequences';
import { graphsUnavailable } from '../engine/graph';
import type { GPT } from './model';
import { evaluateNll } from './evaluate';
import { GraphedTrainSteps } from './trainGraphs';
import { divergedError, openRun, saveRun } from './trainRun';
import type { GptRun, RunInputs, TrainLog } from './trainRun';

/** What the loop is given besides the run: where it logs, when it stops, what it reports. */
export interface TrainLoopOptions extends RunInputs {
  log?: (line: string) => void;
  /** Stop (saving a checkpoint) after this many steps in this call; simulates an interruption. */
  stopAfterSteps?: number;
  /**
   * Called after every optimiser step with its loss, and after every test evaluation
   * (initialisation and each epoch's end): what a live plot needs, without parsing log lines.
   */
  onProgress?: (event: TrainProgressEvent) => void;
  /**
   * Read the step losses back every this many steps (one download for all of them) instead of
   * after every step; their log entries, checks and onProgress events then come in bursts.
   * Default: logEvery on the cuda backend (no host synchronisation inside a step), else 1.
   */
  lossReadEvery?: number;
  /**
   * Replay the step as a CUDA graph per batch size where losses are read in bursts and the
   * backend has graphs (default true; MMGPT_CUDA_GRAPHS=0 turns them off too).
   */
  graphs?: boolean;
}

export type TrainProgressEvent =
  | { kind: 'step'; step: number; epoch: number; loss: number; lr: number }
  | { kind: 'test'; step: number; epoch: number; testNll: number };

export interface TrainGptResult {
  model: GPT;
  log: TrainLog;
  finalTestNll: number;
  checkpointPath: string;
  /** False when stopped early (Ctrl-C or stopAfterSteps). */
  complete: boolean;
}

/** Opens the run (fresh or resumed), tests it at initialisation if new, and trains it. */
export async function runTraining(
  opts: TrainLoopOptions,
  log: (line: string) => void,
): Promise<TrainGptResult> {
  const run = openRun(opts, log);
  log(
    `gpt: ${run.model.numParameters().toLocaleString('en-US')} parameters, backend ${getBackend().name}, ${run.train.count} train / ${run.test.count} test items, ${run.stepsPerEpoch} steps/epoch x ${run.trainCfg.epochs} epochs${run.trainCfg.maxSteps === undefined ? '' : `, stopping at step ${run.totalSteps}`}`,
  );
  if (run.trainLog.testNll.length === 0) {
    const nll = evaluateNll(run.model, run.test, run.vocab, run.trainCfg.evalBatchSize);
    run.trainLog.testNll.push({ epoch: 0, step: 0, nll });
    opts.onProgress?.({ kind: 'test', step: 0, epoch: 0, testNll: nll });
    log(`epoch 0 | test NLL ${nll.toFixed(4)} nats/dim (initialisation)`);
  }
  return new GptTrainer(run, opts, log).train();
}

/** "1h02m", "3m05s", "12s". */
function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** A step whose loss waits on the backend to be read back. */
interface PendingStep {
  step: number;
  epoch: number;
  batch: number;
  lr: number;
}

/** One call's training of a run: the epochs from where the run stands to its last. */
class GptTrainer {
  private interrupted = false;
  private stepsThisCall = 0;
  private readonly lossReadEvery: number;
  /** Step losses waiting on the backend ([lossReadEvery] floats) until the next read-back. */
  private readonly pendingLosses: Tensor;
  private readonly pendingSteps: PendingStep[] = [];
  /** Reading every step's loss anyway, the cpu and js backends check it before each update. */
  private readonly checkEveryStep: boolean;
  /** The step as graphs, or null: eager. */
  private readonly graphed: GraphedTrainSteps | null;
  private readonly callStart = Date.now();
  private readonly trainMsAtStart: number;
  /** When the current logging interval started, and its steps so far. */
  private interval = { start: 0, steps: 0 };

  constructor(
    private readonly run: GptRun,
    private readonly opts: TrainLoopOptions,
    private readonly log: (line: string) => void,
  ) {
    const logEvery = run.trainCfg.logEvery;
    this.lossReadEvery = Math.max(
      1,
      Math.floor(opts.lossReadEvery ?? (getBackend().name === 'cuda' ? logEvery : 1)),
    );
    this.pendingLosses = keep(F.zeros([this.lossReadEvery]));
    this.checkEveryStep = this.lossReadEvery === 1;
    this.trainMsAtStart = run.trainLog.trainMs;
    const graphs = !this.checkEveryStep && opts.graphs !== false && graphsUnavailable() === null;
    // The captured update is Adam's (its rate and bias corrections read from the device); other
    // optimisers (Muon) step eagerly.
    const adam = run.optimizer instanceof Adam ? run.optimizer : null;
    this.graphed =
      graphs && adam ? new GraphedTrainSteps(run.model, adam, run.modelRng, log) : null;
    if (this.graphed)
      log('cuda graphs: each batch size is captured at its second step, then replayed');
    else if (graphs)
      log('cuda graphs: off (only the Adam update is captured); the step runs eagerly');
  }

  async train(): Promise<TrainGptResult> {
    const { run } = this;
    const onSigint = () => {
      if (this.interrupted) process.exit(130);
      this.interrupted = true;
      this.log(
        'interrupt: saving a checkpoint after this step (Ctrl-C again to quit without saving)',
      );
    };
    process.on('SIGINT', onSigint);
    try {
      run.model.train();
      while (run.epoch < run.trainCfg.epochs && run.optimizer.step < run.totalSteps) {
        if (await this.trainEpoch()) return this.result(false);
        this.endEpoch();
      }
    } finally {
      process.off('SIGINT', onSigint);
      this.graphed?.dispose();
      this.pendingLosses.dispose();
    }
    return this.result(true);
  }

  private result(complete: boolean): TrainGptResult {
    const { trainLog } = this.run;
    return {
      model: this.run.model,
      log: trainLog,
      finalTestNll: trainLog.testNll[trainLog.testNll.length - 1].nll,
      checkpointPath: this.run.ckptPath,
      complete,
    };
  }

  /** The rest of the current epoch's batches; true when stopped early (a checkpoint saved). */
  private async trainEpoch(): Promise<boolean> {
    const { run, opts } = this;
    const cfg = run.trainCfg;
    const epochRng = new Rng(deriveSeed(cfg.seed, `epoch-${run.epoch}`));
    this.interval = { start: Date.now(), steps: 0 };
    for (const batch of epochBatches(run.train, run.vocab, epochRng, cfg.batchSize, {
      startBatch: run.batchInEpoch,
      textFirstShare: cfg.textFirstShare,
    })) {
      const t0 = Date.now();
      const lr = run.lrAt(run.optimizer.step);
      this.step(batch.tokens, batch.size, lr);
      this.pendingSteps.push({
        step: run.optimizer.step,
        epoch: run.epoch + 1,
        batch: run.batchInEpoch + 1,
        lr,
      });
      if (this.pendingSteps.length === this.lossReadEvery) this.readLosses();
      run.trainLog.trainMs += Date.now() - t0;
      run.batchInEpoch++;
      this.stepsThisCall++;
      this.interval.steps++;
      if (run.optimizer.step % cfg.logEvery === 0) this.logInterval(lr);
      // maxSteps: the run ends part-way through this epoch (endEpoch saves it complete).
      if (run.optimizer.step >= run.totalSteps) break;
      // Let signal handlers run (a synchronous loop would never see Ctrl-C).
      await new Promise((r) => setImmediate(r));
      if (
        this.interrupted ||
        (opts.stopAfterSteps !== undefined && this.stepsThisCall >= opts.stopAfterSteps)
      ) {
        this.readLosses();
        saveRun(run, false);
        this.log(
          `stopped at epoch ${run.epoch + 1}, batch ${run.batchInEpoch}, step ${run.optimizer.step}; checkpoint ${run.ckptPath} (continue with --resume)`,
        );
        return true;
      }
    }
    return false;
  }

  /**
   * One optimiser step on a batch of `size` sequences. Where losses are read every step (cpu,
   * js) the loss and the gradient norm are checked before the update, so a non-finite value
   * never reaches the weights or the optimiser moments; where they are read in bursts (cuda: no
   * host synchronisation inside a step) a non-finite loss is caught at the next read, before
   * anything is saved.
   */
  private step(batchTokens: Int32Array, size: number, lr: number): void {
    const { model, optimizer } = this.run;
    if (this.graphed !== null) {
      const loss = this.graphed.step(batchTokens, size, lr);
      F.writeInto(this.pendingLosses, loss, 0, this.pendingSteps.length);
      return;
    }
    const fault = tidy(() => {
      const tokens = F.tensor(batchTokens, [size, SEQUENCE_LENGTH], 'int32');
      const l = model.loss(tokens);
      if (this.checkEveryStep) {
        const lossValue = l.item();
        if (!Number.isFinite(lossValue)) return { loss: lossValue, gradNorm: NaN };
        l.backward();
        const norm = optimizer.gradNorm();
        if (!Number.isFinite(norm)) {
          optimizer.zeroGrad();
          return { loss: lossValue, gradNorm: norm };
        }
      } else l.backward();
      optimizer.update(lr);
      optimizer.zeroGrad();
      F.writeInto(this.pendingLosses, F.reshape(l, [1]), 0, this.pendingSteps.length);
      return null;
    });
    if (fault === null) return;
    if (!Number.isFinite(fault.loss))
      throw divergedError(
        this.run,
        `the loss is ${fault.loss}; the weights were not updated with it`,
      );
    throw divergedError(
      this.run,
      `the gradient norm is ${fault.gradNorm} (loss ${fault.loss.toFixed(4)}); the weights were not updated with it`,
    );
  }

  /** Reads the pending losses back, records them and reports them; returns the last one. */
  private readLosses(): number {
    const { trainLog } = this.run;
    const pending = this.pendingSteps;
    if (pending.length === 0) return trainLog.trainNll[trainLog.trainNll.length - 1] ?? NaN;
    const values = this.pendingLosses.toFloat32Array();
    let last = NaN;
    pending.forEach((s, i) => {
      last = values[i];
      if (!Number.isFinite(last))
        throw divergedError(
          this.run,
          `the loss is ${last} (read back ${pending.length - i - 1} steps later)`,
          s.step,
          s.batch,
        );
      trainLog.trainNll.push(last);
      this.opts.onProgress?.({ kind: 'step', step: s.step, epoch: s.epoch, loss: last, lr: s.lr });
    });
    pending.length = 0;
    return last;
  }

  /** The progress line of the interval that ends at this step. */
  private logInterval(lr: number): void {
    const { run } = this;
    const cfg = run.trainCfg;
    const loss = this.readLosses();
    const msPerStep = (Date.now() - this.interval.start) / this.interval.steps;
    const done = run.optimizer.step;
    const avgMs = (run.trainLog.trainMs - this.trainMsAtStart) / Math.max(1, this.stepsThisCall);
    const tokensPerStep = cfg.batchSize * TARGETS_PER_SEQUENCE;
    this.log(
      `epoch ${run.epoch + 1}/${cfg.epochs} | step ${run.batchInEpoch}/${run.stepsPerEpoch} (${done}) | loss ${loss.toFixed(4)} | lr ${lr.toExponential(2)} | ` +
        `${msPerStep.toFixed(1)} ms/step | ${Math.round((tokensPerStep * 1000) / msPerStep).toLocaleString('en-US')} tok/s | ETA ${formatDuration(avgMs * (run.totalSteps - done) * 1.08)}`,
    );
    this.interval = { start: Date.now(), steps: 0 };
  }

  /** The epoch's test NLL, recorded, reported and logged; then the checkpoint. */
  private endEpoch(): void {
    const { run } = this;
    this.readLosses();
    const nll = evaluateNll(run.model, run.test, run.vocab, run.trainCfg.evalBatchSize);
    if (!Number.isFinite(nll))
      throw divergedError(
        run,
        `the test NLL after it is ${nll}, so the epoch's weights are not saved`,
        run.optimizer.step,
        run.batchInEpoch,
      );
    run.epoch++;
    run.batchInEpoch = 0;
    // The process's resident memory at every epoch end: it must stay flat over a long run.
    const rssBytes = process.memoryUsage().rss;
    run.trainLog.testNll.push({ epoch: run.epoch, step: run.optimizer.step, nll, rssBytes });
    this.opts.onProgress?.({
      kind: 'test',
      step: run.optimizer.step,
      epoch: run.epoch,
      testNll: nll,
    });
    const recent = run.trainLog.trainNll.slice(-run.stepsPerEpoch);
    const trainMean = recent.reduce((a, b) => a + b, 0) / recent.length;
    this.log(
      `epoch ${run.epoch} | train NLL ${trainMean.toFixed(4)} | test NLL ${nll.toFixed(4)} nats/dim | RSS ${(rssBytes / 2 ** 20).toFixed(0)} MiB | ${formatDuration(Date.now() - this.callStart)} elapsed`,
    );
    saveRun(run, run.epoch >= run.trainCfg.epochs || run.optimizer.step >= run.totalSteps);
  }
}
