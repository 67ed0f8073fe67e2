// The sampling rules and the sampler: cached == uncached logits, the masks keep every sample a
// well-formed sequence in every mode, argmax limits of temperature/top-k/top-p, seeding,
// classifier-free guidance, caption grammar. Tiny GPT with random weights on the js backend.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setBackend, availableBackends } from '../../src/engine/registry';
import * as F from '../../src/engine/ops';
import { noGrad, tidy, memoryStats } from '../../src/engine/tensor';
import { Rng } from '../../src/nn/rng';
import { GPT, KVCache, type GptConfig } from '../../src/gpt/model';
import { Vocab, CAPTION_LENGTH, DIGIT_WORDS, captionText } from '../../src/data/vocab';
import { COLOURS, PALETTE, SHADES, isLegible } from '../../src/data/palette';
import { IMAGE_TOKENS, SEQUENCE_LENGTH } from '../../src/data/sequences';
import { SamplingRules, parseSequence } from '../../src/sampling/rules';
import {
  generate,
  generateUncached,
  guidedLogits,
  logSoftmax,
  sampleToken,
} from '../../src/sampling/sampler';
import { decodeOne, prefill } from '../../src/sampling/streams';
import { imageToText, textToImage, unconditional } from '../../src/sampling/modes';
import type { Sample } from '../../src/sampling/sample';

setBackend('js');

const vocab = new Vocab(16); // 16 image codes + 31 words + 3 specials = 50 tokens
const V = vocab.size;
const tinyConfig: GptConfig = {
  vocabSize: V,
  blockSize: SEQUENCE_LENGTH,
  nLayer: 2,
  nHead: 2,
  nEmbd: 16,
  dropout: 0,
};
const model = new GPT(tinyConfig, new Rng(7));

const CAPTIONS = [
  'dark green eight on bright cyan',
  'plain white zero on plain black',
  'normal red three on light blue',
  'light pink seven on dark purple',
];

function randomImages(n: number, seed: number): Int32Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () =>
    Int32Array.from({ length: IMAGE_TOKENS }, () => rng.int(vocab.imageCodes)),
  );
}

/** Independent of the rules machine: the sequence is exactly one of the two orders. */
function assertWellFormed(tokens: Int32Array): void {
  const shown = vocab.decodeToText(tokens);
  assert.equal(tokens.length, SEQUENCE_LENGTH, `length: ${shown}`);
  assert.equal(tokens[0], vocab.bos);
  const isWord = (t: number): boolean => vocab.isWordToken(t);
  const isImage = (t: number): boolean => vocab.isImageToken(t);
  const all = (from: number, to: number, pred: (t: number) => boolean): boolean =>
    Array.from(tokens.subarray(from, to)).every(pred);
  if (tokens[1] === vocab.endOfImage) {
    assert.ok(all(2, 8, isWord), `order 1 caption: ${shown}`);
    assert.equal(tokens[8], vocab.endOfText, shown);
    assert.ok(all(9, 58, isImage), `order 1 image: ${shown}`);
  } else {
    assert.equal(tokens[1], vocab.endOfText, shown);
    assert.ok(all(2, 51, isImage), `order 2 image: ${shown}`);
    assert.equal(tokens[51], vocab.endOfImage, shown);
    assert.ok(all(52, 58, isWord), `order 2 caption: ${shown}`);
  }
}

function assertSamplesWellFormed(samples: Sample[]): void {
  for (const s of samples) {
    assertWellFormed(s.tokens);
    assert.ok(s.complete);
    assert.equal(s.imageCodes.length, IMAGE_TOKENS);
    assert.equal(s.words.length, CAPTION_LENGTH);
  }
}

function argmax(x: ArrayLike<number>, mask?: Uint8Array): number {
  let best = -1;
  for (let i = 0; i < x.length; i++) {
    if (mask && mask[i] !== 1) continue;
    if (best < 0 || x[i]! > x[best]!) best = i;
  }
  return best;
}

/** Full (uncached) forward: logits [T * V] of one sequence. */
function fullLogits(m: GPT, tokens: Int32Array): Float32Array {
  return noGrad(() =>
    tidy(() => m.forward(F.tensor(tokens, [1, tokens.length], 'int32')).toFloat32Array()),
  );
}

// ---- rules ---------------------------------------------------------------------------------------

test('rules: masks per state for both orders, closing tokens forced, completion', () => {
  const rules = new SamplingRules(vocab);
  const ids = (prefix: number[]): number[] => rules.allowedTokens(rules.nextAllowed(prefix));
  const words = Array.from({ length: 31 }, (_, i) => vocab.wordOffset + i);
  const images = Array.from({ length: vocab.imageCodes }, (_, i) => i);
  const { bos, endOfText: eot, endOfImage: eoi } = vocab;
  assert.deepEqual(ids([]), [bos]);
  assert.deepEqual(
    ids([bos]),
    [eot, eoi].sort((a, b) => a - b),
  );
  const caption = Array.from(vocab.encodeCaption(CAPTIONS[0]!));
  const image = Array.from(randomImages(1, 1)[0]!);
  // Order 1.
  assert.deepEqual(ids([bos, eoi]), words);
  assert.deepEqual(ids([bos, eoi, ...caption.slice(0, 5)]), words);
  assert.deepEqual(ids([bos, eoi, ...caption]), [eot]);
  assert.deepEqual(ids([bos, eoi, ...caption, eot]), images);
  assert.deepEqual(ids([bos, eoi, ...caption, eot, ...image.slice(0, 48)]), images);
  const order1 = [bos, eoi, ...caption, eot, ...image];
  assert.deepEqual(ids(order1), []);
  assert.ok(rules.isComplete(order1));
  assert.ok(!rules.isComplete(order1.slice(0, 57)));
  // Order 2.
  assert.deepEqual(ids([bos, eot]), images);
  assert.deepEqual(ids([bos, eot, ...image]), [eoi]);
  assert.deepEqual(ids([bos, eot, ...image, eoi]), words);
  const order2 = [bos, eot, ...image, eoi, ...caption];
  assert.ok(rules.isComplete(order2));
  assert.equal(rules.stateAfter(order2).order, 2);
  const parsed = parseSequence(Int32Array.from(order2), vocab);
  assert.deepEqual(Array.from(parsed.imageCodes), image);
  assert.equal(parsed.words.join(' '), CAPTIONS[0]);
  // Crossing a modality is refused with a message naming what was allowed.
  assert.throws(() => rules.stateAfter([bos, eoi, 3]), /token 3 \(<image 3>\).*caption word 1/);
  assert.throws(() => rules.stateAfter([bos, eot, ...image, eoi, ...caption, 0]), /complete/);
  assert.throws(() => rules.stateAfter([eoi]), /starts with <bos>/);
});

test('rules: caption grammar by word class, and palette colours after each shade', () => {
  const words = new SamplingRules(vocab, { grammar: 'words' });
  const names = (mask: Uint8Array): string[] =>
    words.allowedTokens(mask).map((id) => vocab.tokenName(id));
  const start = [vocab.bos, vocab.endOfImage];
  assert.deepEqual(names(words.nextAllowed(start)), [...SHADES]);
  const dark = vocab.wordToken('dark');
  assert.deepEqual(names(words.nextAllowed([...start, dark])), [...COLOURS]);
  const green = vocab.wordToken('green');
  assert.deepEqual(names(words.nextAllowed([...start, dark, green])), [...DIGIT_WORDS]);
  const palette = new SamplingRules(vocab, { grammar: 'palette' });
  assert.deepEqual(names(palette.nextAllowed([...start, vocab.wordToken('normal')])), ['red']);
  assert.ok(names(palette.nextAllowed([...start, dark])).includes('gold'));
  assert.ok(!names(palette.nextAllowed([...start, dark])).includes('white'));
  assert.throws(() => new SamplingRules(vocab, { grammar: 'strict' as 'words' }), /none, words/);
});

test('rules: the legible grammar allows only backgrounds legible on the foreground', () => {
  const legible = new SamplingRules(vocab, { grammar: 'legible' });
  const names = (mask: Uint8Array): string[] =>
    legible.allowedTokens(mask).map((id) => vocab.tokenName(id));
  const start = [vocab.bos, vocab.endOfImage];
  let narrowed = 0;
  for (const fg of PALETTE) {
    const prefix = [
      ...start,
      ...[fg.shade, fg.colour, 'seven', 'on'].map((w) => vocab.wordToken(w)),
    ];
    const onFg = PALETTE.filter((bg) => isLegible(fg.index, bg.index));
    const shades = SHADES.filter((sh) => onFg.some((bg) => bg.shade === sh));
    assert.deepEqual(names(legible.nextAllowed(prefix)), shades, fg.name);
    for (const shade of shades) {
      const colours = names(legible.nextAllowed([...prefix, vocab.wordToken(shade)]));
      const want = onFg.filter((bg) => bg.shade === shade).map((bg) => bg.colour);
      assert.deepEqual([...colours].sort(), [...want].sort(), `${fg.name} on ${shade}`);
    }
    if (onFg.length < PALETTE.length - 1) narrowed++;
  }
  assert.ok(narrowed > 0, 'some foreground rules out more than itself (the test has power)');
  // The foreground follows the palette rule; an image-first caption gets the same rule.
  assert.deepEqual(names(legible.nextAllowed([...start, vocab.wordToken('normal')])), ['red']);
  const samples = unconditional(model, vocab, 24, { seed: 4, grammar: 'legible' });
  assertSamplesWellFormed(samples);
  for (const s of samples) {
    assert.ok(s.meaning !== null, `not a palette caption: ${s.caption}`);
    assert.ok(isLegible(s.meaning.fg, s.meaning.bg), `illegible: ${s.caption}`);
  }
});

// ---- KV cache ------------------------------------------------------------------------------------

function checkCacheMatchesFullForward(m: GPT, exact: boolean): void {
  const rng = new Rng(3);
  const B = 3;
  const T = SEQUENCE_LENGTH;
  const rows = Array.from({ length: B }, () => Int32Array.from({ length: T }, () => rng.int(V)));
  const full = rows.map((r) => fullLogits(m, r)); // B x [T * V]
  const same = (got: Float32Array, want: Float32Array, what: string): void => {
    if (exact) {
      assert.deepEqual(got, want, what);
    } else {
      for (let i = 0; i < want.length; i++) {
        assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-5, `${what}: ${got[i]} vs ${want[i]}`);
      }
    }
  };
  for (const promptLength of [1, 9, 52]) {
    const cache = new KVCache(m.config, B);
    const prompt = new Int32Array(B * promptLength); // [B, P]
    rows.forEach((r, b) => prompt.set(r.subarray(0, promptLength), b * promptLength));
    let logits = prefill(m, prompt, B, cache); // [B * V]
    for (let t = promptLength - 1; t < T; t++) {
      rows.forEach((_, b) =>
        same(
          logits.subarray(b * V, (b + 1) * V),
          full[b]!.subarray(t * V, (t + 1) * V),
          `prompt ${promptLength}, row ${b}, position ${t}`,
        ),
      );
      if (t + 1 < T)
        logits = decodeOne(
          m,
          Int32Array.from(rows, (r) => r[t + 1]!),
          cache,
        );
    }
    assert.equal(cache.pos, T);
    cache.dispose();
  }
}

test('KV cache: prefill + decodeOne give exactly the full forward logits at every position', () => {
  checkCacheMatchesFullForward(model, true);
});

test('KV cache on the cpu backend agrees with the full forward within 1e-5', (t) => {
  if (!availableBackends().includes('cpu')) {
    t.skip('cpu backend unavailable');
    return;
  }
  setBackend('cpu');
  try {
    checkCacheMatchesFullForward(new GPT(tinyConfig, new Rng(7)), false);
  } finally {
    setBackend('js');
  }
});

test('cached and uncached generation give identical samples; no tensors leak', () => {
  const prompts = [0, 1, 2].map(() => Int32Array.from([vocab.bos]));
  const before = memoryStats().liveTensors;
  const cached = generate(model, vocab, prompts, { seed: 5, topK: 20, topP: 0.95 });
  assert.equal(memoryStats().liveTensors, before);
  const uncached = generateUncached(model, vocab, prompts, { seed: 5, topK: 20, topP: 0.95 });
  assert.deepEqual(cached, uncached);
});

// ---- modes and the masks -------------------------------------------------------------------------

test('every mode emits exactly 49 image codes and 6 words and never crosses a modality', () => {
  const opts = { seed: 11, temperature: 1.5 };
  const uncond = unconditional(model, vocab, 32, opts);
  assertSamplesWellFormed(uncond);
  const orders = new Set(uncond.map((s) => s.order));
  assert.deepEqual([...orders].sort(), [1, 2], 'the model chooses both orders');
  const t2i = textToImage(model, vocab, [...CAPTIONS, ...CAPTIONS], { ...opts, topK: 5 });
  assertSamplesWellFormed(t2i);
  t2i.forEach((s, i) => assert.equal(s.caption, CAPTIONS[i % 4]));
  assert.ok(t2i.every((s) => s.order === 1));
  const images = randomImages(8, 2);
  const i2t = imageToText(model, vocab, images, { ...opts, topP: 0.9, guidance: 2 });
  assertSamplesWellFormed(i2t);
  i2t.forEach((s, i) => assert.deepEqual(s.imageCodes, images[i]));
  assert.ok(i2t.every((s) => s.order === 2));
});

test('the masks hold even against a model that wants the wrong tokens', () => {
  // ln_f.bias = 10 and lm_head columns of 1 for the special tokens (0.5 for words): unmasked,
  // the model would put almost all its probability on <bos>, <end of text>, <end of image>.
  const biased = new GPT(tinyConfig, new Rng(8));
  const dict = biased.stateDict();
  dict['ln_f.bias']!.data.fill(10);
  const head = dict['lm_head.weight']!; // [C, V]
  for (let c = 0; c < tinyConfig.nEmbd; c++) {
    for (let v = vocab.wordOffset; v < V; v++) head.data[c * V + v] = v >= vocab.bos ? 1 : 0.5;
  }
  biased.loadStateDict(dict);
  const unmasked = fullLogits(biased, Int32Array.from([vocab.bos, vocab.endOfText]));
  assert.ok(argmax(unmasked.subarray(V)) >= vocab.bos, 'the model prefers a special token');
  assertSamplesWellFormed(unconditional(biased, vocab, 8, { seed: 1 }));
  assertSamplesWellFormed(textToImage(biased, vocab, CAPTIONS, { seed: 1, guidance: 3 }));
  assertSamplesWellFormed(imageToText(biased, vocab, randomImages(4, 3), { seed: 1 }));
});

test('grammar: word-class and palette masks give only grammatical captions', () => {
  const free = unconditional(model, vocab, 24, { seed: 4 });
  assert.ok(
    free.some((s) => s.meaning === null),
    'without grammar, random weights make ungrammatical captions (the test has power)',
  );
  const byClass = unconditional(model, vocab, 24, { seed: 4, grammar: 'words' });
  assertSamplesWellFormed(byClass);
  for (const s of byClass) {
    const [s1, c1, d, on, s2, c2] = s.words as [string, string, string, string, string, string];
    assert.ok(
      (SHADES as readonly string[]).includes(s1) && (SHADES as readonly string[]).includes(s2),
    );
    assert.ok(
      (COLOURS as readonly string[]).includes(c1) && (COLOURS as readonly string[]).includes(c2),
    );
    assert.ok((DIGIT_WORDS as readonly string[]).includes(d));
    assert.equal(on, 'on');
  }
  const palette = [
    ...unconditional(model, vocab, 24, { seed: 4, grammar: 'palette' }),
    ...imageToText(model, vocab, randomImages(8, 5), { seed: 4, grammar: 'palette' }),
  ];
  assertSamplesWellFormed(palette);
  for (const s of palette) {
    assert.ok(s.meaning !== null, `not a palette caption: ${s.caption}`);
    assert.equal(captionText(s.meaning.digit, s.meaning.fg, s.meaning.bg), s.caption);
  }
});

// ---- the token sampler ---------------------------------------------------------------------------

test('temperature 0, top-k 1 and a tiny top-p all give the (masked) argmax', () => {
  const rng = new Rng(9);
  const rules = new SamplingRules(vocab);
  const masks = [null, rules.wordMask, rules.imageMask, rules.startMask];
  for (let trial = 0; trial < 200; trial++) {
    const logits = Float32Array.from({ length: V }, () => 3 * rng.normal());
    const mask = masks[trial % masks.length]!;
    const want = argmax(logits, mask ?? undefined);
    assert.equal(sampleToken(logits, mask, { temperature: 0 }, rng), want);
    assert.equal(sampleToken(logits, mask, { topK: 1 }, rng), want);
    assert.equal(sampleToken(logits, mask, { topP: 1e-9 }, rng), want);
    assert.equal(sampleToken(logits, mask, { temperature: 1e-6 }, rng), want);
  }
  // A disallowed token is never chosen, however large its logit.
  const logits = new Float32Array(V);
  logits[0] = 1000;
  for (let i = 0; i < 50; i++) {
    assert.ok(vocab.isWordToken(sampleToken(logits, rules.wordMask, { temperature: 5 }, rng)));
  }
  assert.throws(() => sampleToken(logits, rules.noneMask, {}, rng), /allows no token/);
  assert.throws(() => sampleToken(logits, null, { temperature: -1 }, rng), /temperature/);
  assert.throws(() => sampleToken(logits, null, { topP: 0 }, rng), /topP/);
});

test('top-k and top-p restrict sampling to the most likely tokens; frequencies follow softmax', () => {
  const logits = Float32Array.from([2, 1, 0, 3, -1]); // probabilities ~ .24 .09 .03 .64 .01
  const rng = new Rng(10);
  const counts = new Array<number>(5).fill(0);
  const N = 4000;
  for (let i = 0; i < N; i++) counts[sampleToken(logits, null, {}, rng)]!++;
  const p = logSoftmax(logits).map(Math.exp);
  counts.forEach((c, i) => assert.ok(Math.abs(c / N - p[i]!) < 0.03, `token ${i}: ${c / N}`));
  for (let i = 0; i < 300; i++) {
    assert.ok([3, 0].includes(sampleToken(logits, null, { topK: 2 }, rng)));
    assert.ok([3, 0].includes(sampleToken(logits, null, { topP: 0.8 }, rng))); // .64 + .24
  }
});

test('greedy generation equals a step-by-step argmax of the full forward under the masks', () => {
  const rules = new SamplingRules(vocab);
  const [got] = generate(model, vocab, [Int32Array.from([vocab.bos])], { temperature: 0 });
  const seq = [vocab.bos];
  while (!rules.isComplete(seq)) {
    const logits = fullLogits(model, Int32Array.from(seq));
    const last = logits.subarray((seq.length - 1) * V);
    seq.push(argmax(last, rules.nextAllowed(seq)));
  }
  assert.deepEqual(Array.from(got!), seq);
});

test('same seed, same samples (independent of batch size); another seed differs', () => {
  const a = textToImage(model, vocab, CAPTIONS, { seed: 3, batchSize: 4 });
  const b = textToImage(model, vocab, CAPTIONS, { seed: 3, batchSize: 1 });
  const c = textToImage(model, vocab, CAPTIONS, { seed: 4 });
  assert.deepEqual(
    a.map((s) => s.tokens),
    b.map((s) => s.tokens),
  );
  assert.notDeepEqual(
    a.map((s) => s.tokens),
    c.map((s) => s.tokens),
  );
});

test('maxTokens stops early with incomplete samples', () => {
  const [s] = unconditional(model, vocab, 1, { seed: 2, maxTokens: 10 });
  assert.equal(s!.tokens.length, 11);
  assert.equal(s!.complete, false);
});

// ---- classifier-free guidance --------------------------------------------------------------------

test('guidance 1 gives exactly the conditional log-probabilities and the unguided samples', () => {
  const rng = new Rng(12);
  const cond = Float32Array.from({ length: V }, () => rng.normal());
  const uncond = Float32Array.from({ length: V }, () => rng.normal());
  assert.deepEqual(guidedLogits(cond, uncond, 1), Float32Array.from(logSoftmax(cond)));
  const zero = guidedLogits(cond, uncond, 0);
  logSoftmax(uncond).forEach((x, i) => assert.ok(Math.abs(zero[i]! - x) < 1e-6));
  const plain = textToImage(model, vocab, CAPTIONS, { seed: 6 });
  const one = textToImage(model, vocab, CAPTIONS, { seed: 6, guidance: 1 });
  assert.deepEqual(
    plain.map((s) => s.tokens),
    one.map((s) => s.tokens),
  );
});

/** Greedy CFG by hand: full forwards of the conditional and unconditional contexts each step. */
function greedyGuidedByHand(cond: number[], uncond: number[], scale: number): number[] {
  const rules = new SamplingRules(vocab);
  const c = cond.slice();
  const u = uncond.slice();
  while (!rules.isComplete(c)) {
    const lc = fullLogits(model, Int32Array.from(c)).subarray((c.length - 1) * V);
    const lu = fullLogits(model, Int32Array.from(u)).subarray((u.length - 1) * V);
    const token = argmax(guidedLogits(lc, lu, scale), rules.nextAllowed(c));
    c.push(token);
    u.push(token);
  }
  return c;
}

test('guided text -> image and image -> text follow the documented contexts', () => {
  const { bos, endOfText: eot, endOfImage: eoi } = vocab;
  const caption = Array.from(vocab.encodeCaption(CAPTIONS[1]!));
  const [t2i] = textToImage(model, vocab, [CAPTIONS[1]!], { temperature: 0, guidance: 3 });
  assert.deepEqual(
    Array.from(t2i!.tokens),
    greedyGuidedByHand([bos, eoi, ...caption, eot], [bos, eot], 3),
  );
  const image = Array.from(randomImages(1, 6)[0]!);
  const [i2t] = imageToText(model, vocab, [image], { temperature: 0, guidance: 3 });
  assert.deepEqual(
    Array.from(i2t!.tokens),
    greedyGuidedByHand([bos, eot, ...image, eoi], [bos, eoi], 3),
  );
  // Guidance changes something (the test has power), and cached == uncached with guidance too.
  const guidedRuns = [1, 2, 3, 4].map(
    (seed) => imageToText(model, vocab, [image], { seed, guidance: 5 })[0]!.tokens,
  );
  const unguidedRuns = [1, 2, 3, 4].map(
    (seed) => imageToText(model, vocab, [image], { seed })[0]!.tokens,
  );
  assert.notDeepEqual(guidedRuns, unguidedRuns);
  const cachedGuided = textToImage(model, vocab, CAPTIONS, { seed: 8, guidance: 2.5, topK: 8 });
  const uncachedGuided = textToImage(model, vocab, CAPTIONS, {
    seed: 8,
    guidance: 2.5,
    topK: 8,
    cached: false,
  });
  assert.deepEqual(
    cachedGuided.map((s) => s.tokens),
    uncachedGuided.map((s) => s.tokens),
  );
});

// ---- prompt errors -------------------------------------------------------------------------------

test('bad prompts get errors that say what is accepted', () => {
  assert.throws(() => textToImage(model, vocab, ['dark green eigth on bright cyan']), /eight/);
  assert.throws(() => textToImage(model, vocab, ['dark green eight on cyan']), /6/);
  assert.throws(() => imageToText(model, vocab, [new Int32Array(48)]), /49 image codes/);
  assert.throws(() => imageToText(model, vocab, [new Int32Array(49).fill(16)]), /including 16/);
  assert.throws(() => unconditional(model, vocab, 2, { guidance: 2 }), /needs a condition/);
  assert.throws(
    () =>
      generate(model, vocab, [
        Int32Array.from([vocab.bos]),
        Int32Array.from([vocab.bos, vocab.endOfText]),
      ]),
    /same length/,
  );
  assert.throws(
    () => generate(model, vocab, [Int32Array.from([vocab.bos, 3])]),
    /prompt 0: token 2 \(<image 3>\) breaks the sampling rules/,
  );
  assert.throws(
    () => generate(model, vocab, [Int32Array.from([vocab.bos])], { guidance: 2 }),
    /unconditional prompt/,
  );
});
