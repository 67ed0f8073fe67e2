// The token cache: a dataset's codes under a tokenizer, encoded once and kept in
// data/tokens/<fingerprint>-<tag>-<count>.safetensors with the tokenizer's fingerprint in its
// metadata, so the GPT trains and evaluates on exactly the codes its tokenizer gives.
// A searching tokenizer (a code search in its config) is slow to encode a whole split: it also
// writes a partial file every 10% of the split, from which a killed run continues in the same
// batches as an uninterrupted one, so with the same codes.

import * as fs from 'fs';
import * as path from 'path';
import { IMAGE_VALUES } from '../data/coloured';
import type { ColouredSplit } from '../data/coloured';
import { loadSafetensors, saveSafetensors, requireTensor } from '../nn/safetensors';
import type { VqVae } from '../vqvae/model';
import { vqVaeFingerprint } from '../vqvae/train';
import { dataDir } from '../paths';

/** Codes per image (a 7x7 grid). */
const CODES_PER_IMAGE = 49;

/**
 * The dataset's codes under a tokenizer, cached in data/tokens/<fingerprint>-<tag>.safetensors.
 * `tag` names the items (default: the split's name); a subset must pass its own tag.
 */
export function tokenise(
  model: VqVae,
  split: ColouredSplit,
  limit: number,
  log: (l: string) => void,
  tag: string = split.split,
  batchSize = 256,
): Int32Array {
  const fingerprint = vqVaeFingerprint(model);
  const count = limit > 0 ? Math.min(limit, split.count) : split.count;
  const file = path.join(dataDir(), 'tokens', `${fingerprint}-${tag}-${count}.safetensors`);
  const hit = cachedCodes(file, count, fingerprint, log);
  if (hit !== undefined) return hit;
  if (count < split.count) {
    // The first `count` items of a cached whole split (a searching tokenizer is slow to encode).
    const whole = cachedCodes(
      file.replace(/-\d+\.safetensors$/, `-${split.count}.safetensors`),
      split.count,
      fingerprint,
      log,
    );
    if (whole !== undefined) return whole.slice(0, count * CODES_PER_IMAGE);
  }
  const partialFile = `${file}.partial`;
  const codes = new Int32Array(count * CODES_PER_IMAGE);
  const partial = { file: partialFile, fingerprint, count, batchSize, tag };
  const done = model.config.codeSearch ? resumePartial(partial, codes, log) : 0;
  const t0 = Date.now();
  const progress = model.config.codeSearch
    ? partialWriter(partial, codes, done, t0, log)
    : undefined;
  const rest = model.encode(
    split.images.subarray(done * IMAGE_VALUES),
    count - done,
    batchSize,
    progress,
  );
  codes.set(rest, done * CODES_PER_IMAGE);
  saveSafetensors(
    file,
    { codes: { dtype: 'I32', shape: [count, CODES_PER_IMAGE], data: codes } },
    { tokenizer: fingerprint },
  );
  fs.rmSync(partialFile, { force: true });
  log(
    `tokens: encoded ${count - done} ${tag} images in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
  return codes;
}

/** The codes cached in `at` for `n` images, when that file exists and this tokenizer made it. */
function cachedCodes(
  at: string,
  n: number,
  fingerprint: string,
  log: (l: string) => void,
): Int32Array | undefined {
  if (!fs.existsSync(at)) return undefined;
  try {
    const contents = loadSafetensors(at);
    if (contents.metadata.tokenizer === fingerprint)
      return requireTensor(contents, 'codes', 'I32', [n, CODES_PER_IMAGE]).data;
    log(`tokens: ${at} was made by another tokenizer; re-encoding`);
  } catch (e) {
    log(`tokens: cache ${at} is unreadable (${(e as Error).message}); re-encoding`);
  }
  return undefined;
}

/** A searching encode's partial file: where it is and what it must match to be continued. */
interface PartialEncode {
  file: string;
  fingerprint: string;
  count: number;
  batchSize: number;
  tag: string;
}

/**
 * Copies the codes of a partial file left by a killed encode of the same items, tokenizer and
 * batch size into `codes`; returns how many images it held (0: none to continue from).
 */
function resumePartial(
  partial: PartialEncode,
  codes: Int32Array,
  log: (l: string) => void,
): number {
  const { file, fingerprint, count, batchSize, tag } = partial;
  if (!fs.existsSync(file)) return 0;
  try {
    const contents = loadSafetensors(file);
    const so = Number(contents.metadata.done);
    if (
      contents.metadata.tokenizer === fingerprint &&
      Number(contents.metadata.count) === count &&
      Number(contents.metadata.batch) === batchSize &&
      Number.isInteger(so) &&
      so > 0 &&
      so < count &&
      so % batchSize === 0
    ) {
      codes.set(requireTensor(contents, 'codes', 'I32', [so, CODES_PER_IMAGE]).data);
      log(`tokens: ${tag}: continuing from ${so}/${count} images encoded before (${file})`);
      return so;
    }
  } catch (e) {
    log(`tokens: ${file} is unreadable (${(e as Error).message}); starting anew`);
  }
  return 0;
}

/**
 * The progress callback of a searching encode that started at image `from`: every 10% of the
 * split, a line and the partial file (the codes so far).
 */
function partialWriter(
  partial: PartialEncode,
  codes: Int32Array,
  from: number,
  t0: number,
  log: (l: string) => void,
): (encoded: number, total: number, part: Int32Array) => void {
  const { file, fingerprint, count, batchSize, tag } = partial;
  let reported = from;
  return (encoded, total, part) => {
    const now = from + encoded;
    if (encoded < total && now < reported + count / 10) return;
    reported = now;
    codes.set(part.subarray(0, encoded * CODES_PER_IMAGE), from * CODES_PER_IMAGE);
    if (encoded < total)
      saveSafetensors(
        file,
        {
          codes: {
            dtype: 'I32',
            shape: [now, CODES_PER_IMAGE],
            data: codes.subarray(0, now * CODES_PER_IMAGE),
          },
        },
        {
          tokenizer: fingerprint,
          count: String(count),
          batch: String(batchSize),
          done: String(now),
        },
      );
    const seconds = (Date.now() - t0) / 1000;
    const rate = seconds / (now - from);
    log(
      `tokens: ${tag} ${now}/${count} images encoded with the code search (${seconds.toFixed(0)} s, ETA ${(rate * (count - now)).toFixed(0)} s)`,
    );
  };
}
