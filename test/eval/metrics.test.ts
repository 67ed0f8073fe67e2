// The metrics on hand-made inputs: a perfect oracle scores 100%, a constant wrong answer 0%,
// partial answers the counts worked out by hand; caption fields, coverage and targets.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PALETTE, legiblePairs } from '../../src/data/palette';
import { captionWords, captionText } from '../../src/data/vocab';
import {
  TARGETS,
  attributeAccuracy,
  attributeCoverage,
  captionAccuracy,
  captionFields,
  checkTargets,
  possibleValues,
  tokensPerSecond,
  unconditionalMetrics,
} from '../../src/eval/metrics';
import { attrs } from './helpers';

const truth = attrs([8, 0, 3, 7], [6, 0, 2, 19], [17, 1, 15, 22]);

test('attributeAccuracy: an oracle scores 1, a constant wrong answer 0, a mix by hand', () => {
  assert.deepEqual(attributeAccuracy(truth, truth), {
    count: 4,
    digit: 1,
    fg: 1,
    bg: 1,
    all: 1,
  });
  const wrong = attrs([9, 9, 9, 9], [39, 39, 39, 39], [38, 38, 38, 38]);
  assert.deepEqual(attributeAccuracy(wrong, truth), { count: 4, digit: 0, fg: 0, bg: 0, all: 0 });
  // item 0 all right; item 1 digit wrong; item 2 fg wrong; item 3 all wrong
  const mixed = attrs([8, 1, 3, 0], [6, 0, 3, 0], [17, 1, 15, 0]);
  assert.deepEqual(attributeAccuracy(mixed, truth), {
    count: 4,
    digit: 0.5,
    fg: 0.5,
    bg: 0.75,
    all: 0.25,
  });
  assert.deepEqual(attributeAccuracy(mixed, truth, 1).all, 1);
  assert.throws(() => attributeAccuracy(attrs([1], [1], [1]), truth, 4), /has 1 values, need 4/);
});

test('captionFields reads each field on its own and flags grammar', () => {
  const words = captionWords(8, 6, 17); // dark green eight on bright cyan
  assert.deepEqual(captionFields(words), { digit: 8, fg: 6, bg: 17, grammatical: true });
  // A shade + colour that is not in the palette: that field is unreadable, the rest still counts.
  const normalGreen = ['normal', 'green', 'eight', 'on', 'bright', 'cyan'];
  assert.deepEqual(captionFields(normalGreen), { digit: 8, fg: -1, bg: 17, grammatical: false });
  assert.deepEqual(captionFields(['dark', 'green']), {
    digit: -1,
    fg: 6,
    bg: -1,
    grammatical: false,
  });
  assert.equal(captionFields([...words.slice(0, 3), 'cyan', ...words.slice(4)]).grammatical, false);
});

test('captionAccuracy: exact match and per field against the true captions', () => {
  const exact = [0, 1, 2, 3].map((i) => captionWords(truth.digit[i]!, truth.fg[i]!, truth.bg[i]!));
  assert.deepEqual(captionAccuracy(exact, truth), {
    count: 4,
    exactMatch: 1,
    digit: 1,
    fg: 1,
    bg: 1,
    grammatical: 1,
  });
  const constant = [0, 1, 2, 3].map(() => captionWords(9, 39, 38));
  const c = captionAccuracy(constant, truth);
  assert.equal(c.exactMatch, 0);
  assert.equal(c.digit + c.fg + c.bg, 0);
  assert.equal(c.grammatical, 1);
  const partial = [
    exact[0]!, // right
    captionWords(1, 0, 1), // digit wrong
    ['dark', 'green', 'three'], // too short: digit right only
    ['plain', 'white', 'six', 'on', 'dark', 'purple'], // bg right, rest wrong
  ];
  assert.deepEqual(captionAccuracy(partial, truth), {
    count: 4,
    exactMatch: 0.25,
    digit: 0.5,
    fg: 0.5,
    bg: 0.75,
    grammatical: 0.75,
  });
  assert.equal(
    captionText(truth.digit[3]!, truth.fg[3]!, truth.bg[3]!),
    'light pink seven on dark purple',
  );
});

test('unconditionalMetrics: grammar, agreement with the image, coverage', () => {
  const samples = [
    { words: captionWords(8, 6, 17), order: 1 }, // agrees
    { words: captionWords(0, 0, 1), order: 2 }, // image reads digit 1: disagrees on digit
    { words: ['normal', 'green', 'three', 'on', 'light', 'blue'], order: 2 }, // ungrammatical
    { words: captionWords(7, 19, 22), order: 1 }, // agrees
  ];
  const images = attrs([8, 1, 3, 7], [6, 0, 2, 19], [17, 1, 15, 22]);
  const m = unconditionalMetrics(samples, images);
  assert.equal(m.count, 4);
  assert.equal(m.grammatical, 0.75);
  assert.equal(m.agreement, 0.5);
  assert.equal(m.agreementDigit, 0.75); // items 0, 2 (read on its own), 3
  assert.equal(m.agreementFg, 0.75); // item 2's fg "normal green" is unreadable
  assert.equal(m.agreementBg, 1);
  assert.equal(m.textFirst, 0.5);
  // Captions: digits {8, 0, 7} of 10 (the ungrammatical one does not count).
  assert.deepEqual(m.captionCoverage.digits, { seen: 3, possible: 10, share: 0.3 });
  assert.equal(m.imageCoverage.digits.seen, 4);
  // An oracle that always agrees scores 1; nothing grammatical scores 0.
  const oracle = unconditionalMetrics([samples[0]!, samples[3]!], attrs([8, 7], [6, 19], [17, 22]));
  assert.equal(oracle.agreement, 1);
  assert.equal(oracle.grammatical, 1);
  const junk = unconditionalMetrics([{ words: ['on', 'on'], order: null }], attrs([0], [0], [1]));
  assert.equal(junk.agreement, 0);
  assert.equal(junk.grammatical, 0);
  assert.equal(junk.captionCoverage.colours.seen, 0);
});

test('coverage counts distinct values over those the dataset can produce', () => {
  const possible = possibleValues();
  assert.equal(possible.digits.size, 10);
  const pairs = legiblePairs();
  assert.ok(possible.fg.size > 1 && possible.fg.size <= PALETTE.length);
  assert.ok(possible.fg.has(pairs[0]!) && possible.bg.has(pairs[1]!));
  const all = attributeCoverage({
    digit: Int32Array.from({ length: 10 }, (_, i) => i),
    fg: Int32Array.from(possible.fg),
    bg: Int32Array.from(possible.bg),
  });
  assert.equal(all.digits.share, 1);
  assert.equal(all.fgColours.share, 1);
  assert.equal(all.bgColours.share, 1);
  const none = attributeCoverage(attrs([-1], [-1], [-1]));
  assert.equal(none.digits.seen + none.colours.seen, 0);
});

test('targets are looked up in the report and compared in the right direction', () => {
  const report = {
    textToImage: { all: 0.98 },
    imageToText: { exactMatch: 0.5 },
    unconditional: { grammatical: 0.995, agreement: 0.95 },
    classifier: { reconstructed: { all: 0.967 } },
    speed: { speedup: 6, nineImagesMs: 1500 },
  };
  const checks = checkTargets(report);
  assert.equal(checks.length, TARGETS.length);
  const byKey = Object.fromEntries(checks.map((c) => [c.key, c]));
  assert.equal(byKey['textToImage.all']!.met, true);
  assert.equal(byKey['imageToText.exactMatch']!.met, false);
  assert.equal(byKey['unconditional.grammatical']!.met, true); // >= is met at the threshold
  assert.equal(byKey['classifier.reconstructed.all']!.met, false);
  assert.equal(byKey['speed.speedup']!.met, true);
  assert.equal(byKey['speed.nineImagesMs']!.met, false); // 'max' target
  assert.equal(byKey['speed.nineImagesMs']!.target, '<= 1000 ms');
  assert.equal(checkTargets({})[0]!.met, null);
  assert.equal(tokensPerSecond(570, 1000), 570);
});
