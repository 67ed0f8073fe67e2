// One sampling mode scored on labelled items, with the sampling settings given: the unit that the
// evaluation report (default vs without reranking vs the original rules) and the validation
// sweep are made of.
//
// - text -> image: an image from each item's caption; the attribute classifier reads it.
// - image -> text: a caption for each item's image (its VQ-VAE codes); exact match and per field.
// - unconditional: N samples from <bos>; grammatical share and image/caption agreement.
// Each result carries the samples' attribute readings, so the report can tabulate the errors
// (confusions.ts), and the wall time of the sampling (reranking included).

import type { Attributes, AttributeAccuracy, CaptionAccuracy } from './metrics';
import { attributeAccuracy, captionAccuracy, unconditionalMetrics } from './metrics';
import type { UnconditionalMetrics } from './metrics';
import type { AttributeClassifier } from './classifier';
import { IMAGE_TOKENS } from '../data/sequences';
import { captionText, type Vocab } from '../data/vocab';
import type { GPT } from '../gpt/model';
import type { VqVae } from '../vqvae/model';
import { imageToText, textToImage, unconditional, type ModeOptions } from '../sampling/modes';
import type { Sample } from '../sampling/sample';
import { SAMPLING_MODES, type SamplingMode } from '../sampling/settings';
import { withImageViews } from '../sampling/views';

/** The three sampling modes (src/sampling/settings.ts). */
export type ModeName = SamplingMode;
export const MODE_NAMES: readonly ModeName[] = SAMPLING_MODES;
export const MODE_LABELS: Record<ModeName, string> = {
  textToImage: 'text -> image',
  imageToText: 'image -> text',
  unconditional: 'unconditional',
};

/** What a mode is scored with: the model, its tokenizer, the classifier and labelled items. */
export interface ModeContext {
  model: GPT;
  vocab: Vocab;
  tokenizer: VqVae;
  classifier: AttributeClassifier;
  /** The items' true attributes (the first n are used). */
  truth: Attributes;
  /** The items' VQ-VAE codes [n, 49] (image -> text prompts). */
  codes: Int32Array;
  /** The items' images [n, 28, 28, 3]: image -> text with shiftViews encodes their shifts. */
  images?: Uint8Array;
  n: number;
}

export type ModeResult =
  | {
      mode: 'textToImage';
      accuracy: AttributeAccuracy;
      reads: Attributes;
      samples: Sample[];
      ms: number;
    }
  | { mode: 'imageToText'; accuracy: CaptionAccuracy; samples: Sample[]; ms: number }
  | {
      mode: 'unconditional';
      metrics: UnconditionalMetrics;
      reads: Attributes;
      samples: Sample[];
      ms: number;
    };

/** Codes of each sample's image, [count, 49]; a missing code (never under the rules) is 0. */
export function sampleImageCodes(samples: readonly Sample[]): Int32Array {
  const codes = new Int32Array(samples.length * IMAGE_TOKENS); // [count, 49]
  samples.forEach((s, i) => codes.set(s.imageCodes.subarray(0, IMAGE_TOKENS), i * IMAGE_TOKENS));
  return codes;
}

/** The first n items' captions, e.g. "dark green eight on bright cyan". */
export function truthCaptions(truth: Attributes, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(captionText(truth.digit[i]!, truth.fg[i]!, truth.bg[i]!));
  return out;
}

/** Samples `mode` on the context's items with `options` and scores them. */
export function scoreMode(ctx: ModeContext, mode: ModeName, options: ModeOptions): ModeResult {
  const { model, vocab, tokenizer, classifier, truth, n } = ctx;
  const t0 = performance.now();
  if (mode === 'textToImage') {
    const samples = textToImage(model, vocab, truthCaptions(truth, n), options);
    const ms = performance.now() - t0;
    const reads = classifier.classify(tokenizer.decode(sampleImageCodes(samples), n), n);
    return { mode, accuracy: attributeAccuracy(reads, truth, n), reads, samples, ms };
  }
  if (mode === 'imageToText') {
    const rows: Int32Array[] = [];
    for (let i = 0; i < n; i++)
      rows.push(ctx.codes.subarray(i * IMAGE_TOKENS, (i + 1) * IMAGE_TOKENS));
    const samples = imageToText(
      model,
      vocab,
      rows,
      withImageViews(options, tokenizer, ctx.images, n),
    );
    const ms = performance.now() - t0;
    const accuracy = captionAccuracy(
      samples.map((s) => s.words),
      truth,
    );
    return { mode, accuracy, samples, ms };
  }
  const samples = unconditional(model, vocab, n, options);
  const ms = performance.now() - t0;
  const reads = classifier.classify(tokenizer.decode(sampleImageCodes(samples), n), n);
  return { mode, metrics: unconditionalMetrics(samples, reads), reads, samples, ms };
}

/** The headline number of a result: all three right, exact match, or agreement. */
export function headline(result: ModeResult): number {
  if (result.mode === 'textToImage') return result.accuracy.all;
  if (result.mode === 'imageToText') return result.accuracy.exactMatch;
  return result.metrics.agreement;
}
