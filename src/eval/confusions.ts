// Where the remaining errors are: for pairs of (intended, observed) attributes, a 10 x 10 digit
// confusion count and the most frequent colour confusions. What "intended" and "observed" are
// depends on the mode:
// - text -> image: the prompt's attributes vs the classifier's reading of the generated image;
// - image -> text: the true attributes vs the generated caption's (unparseable captions: -1);
// - unconditional: the sample's own caption vs the classifier's reading of its image.

import { PALETTE } from '../data/palette';
import { DIGIT_WORDS } from '../data/vocab';
import type { Attributes } from './metrics';

export interface ColourConfusion {
  /** 'fg' or 'bg'. */
  field: 'fg' | 'bg';
  intended: string;
  observed: string;
  count: number;
}

export interface ErrorSummary {
  count: number;
  /** Items with any attribute wrong (or unreadable). */
  wrong: number;
  /** digits[intended][observed], errors only (the diagonal is 0); observed -1 is not counted. */
  digits: number[][];
  /** Items with an unreadable side (-1), e.g. a caption that does not parse. */
  unreadable: number;
  /** The most frequent colour confusions, most frequent first. */
  colours: ColourConfusion[];
}

/** Tabulates the errors of `observed` against `intended` over the first `count` items. */
export function errorSummary(
  intended: Attributes,
  observed: Attributes,
  count: number,
  topColours = 8,
): ErrorSummary {
  const digits = Array.from({ length: 10 }, () => new Array<number>(10).fill(0));
  const colourCounts = new Map<string, ColourConfusion>();
  let wrong = 0;
  let unreadable = 0;
  for (let i = 0; i < count; i++) {
    const d = intended.digit[i]!;
    const od = observed.digit[i]!;
    const missing = (a: Attributes) => a.digit[i]! < 0 || a.fg[i]! < 0 || a.bg[i]! < 0;
    if (missing(intended) || missing(observed)) {
      unreadable++;
      wrong++;
      continue;
    }
    let bad = false;
    if (od !== d) {
      digits[d]![od]!++;
      bad = true;
    }
    for (const field of ['fg', 'bg'] as const) {
      const a = intended[field][i]!;
      const b = observed[field][i]!;
      if (a === b) continue;
      bad = true;
      const key = `${field}/${a}/${b}`;
      const entry = colourCounts.get(key) ?? {
        field,
        intended: PALETTE[a]?.name ?? String(a),
        observed: PALETTE[b]?.name ?? String(b),
        count: 0,
      };
      entry.count++;
      colourCounts.set(key, entry);
    }
    if (bad) wrong++;
  }
  const colours = [...colourCounts.values()]
    .sort((x, y) => y.count - x.count || x.intended.localeCompare(y.intended))
    .slice(0, topColours);
  return { count, wrong, digits, unreadable, colours };
}

/** The summary as Markdown: digit confusions (non-zero rows only) and the top colour confusions. */
export function renderErrorSummary(title: string, s: ErrorSummary): string[] {
  const lines = [
    `**${title}**: ${s.wrong} of ${s.count} wrong` +
      (s.unreadable > 0 ? ` (${s.unreadable} unreadable)` : ''),
    '',
  ];
  const rows = s.digits
    .map((row, d) => ({ d, row, total: row.reduce((a, b) => a + b, 0) }))
    .filter((r) => r.total > 0);
  if (rows.length > 0) {
    lines.push(
      `| intended \\ observed digit | ${DIGIT_WORDS.join(' | ')} |`,
      `|---|${DIGIT_WORDS.map(() => '---').join('|')}|`,
    );
    for (const r of rows)
      lines.push(
        `| ${DIGIT_WORDS[r.d]} | ${r.row.map((c) => (c === 0 ? '' : String(c))).join(' | ')} |`,
      );
    lines.push('');
  } else lines.push('No digit errors.', '');
  if (s.colours.length > 0) {
    lines.push('| colour | intended | observed | count |', '|---|---|---|---|');
    for (const c of s.colours)
      lines.push(
        `| ${c.field === 'fg' ? 'foreground' : 'background'} | ${c.intended} | ${c.observed} | ${c.count} |`,
      );
    lines.push('');
  } else lines.push('No colour errors.', '');
  return lines;
}
