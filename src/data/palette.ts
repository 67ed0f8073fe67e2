// The colour palette of Coloured MNIST v2: named colours "<shade> <colour>", each one RGB triple
// with every channel in levels {0, 1, 2, 3} (0, 85, 170, 255 when shown), and the legibility
// rule that decides which foreground/background pairs may be drawn together.
//
// The 26 colours seen in the original dataset (the original write-up's palette) keep their exact levels; 14 more of
// our own complete every colour word (gold had none) and give each hue a few shades. Names are
// unique and triples are unique, so a caption names exactly one pair of triples.
//
// | #  | name              | r g b | | #  | name              | r g b |
// |----|-------------------|-------| |----|-------------------|-------|
// |  0 | plain white       | 3 3 3 | | 20 | plain purple      | 2 0 2 |
// |  1 | plain black       | 0 0 0 | | 21 | light purple      | 2 1 3 |
// |  2 | normal red        | 3 0 0 | | 22 | dark purple       | 1 1 2 |
// |  3 | dark red          | 2 0 1 | | 23 | plain magenta     | 3 1 2 |
// |  4 | plain green       | 0 3 0 | | 24 | dark magenta      | 1 0 2 |
// |  5 | light green       | 1 3 1 | | 25 | dark gray         | 1 1 1 |
// |  6 | dark green        | 1 2 1 | | 26 | plain blue *      | 0 0 3 |
// |  7 | plain turquoise   | 0 2 2 | | 27 | bright blue *     | 0 1 3 |
// |  8 | light turquoise   | 1 3 2 | | 28 | plain gray *      | 2 2 2 |
// |  9 | bright yellow     | 3 3 0 | | 29 | bright magenta *  | 3 0 3 |
// | 10 | plain yellow      | 3 3 1 | | 30 | light magenta *   | 3 1 3 |
// | 11 | dark yellow       | 1 2 0 | | 31 | plain pink *      | 3 0 2 |
// | 12 | plain orange      | 3 1 0 | | 32 | light red *       | 3 1 1 |
// | 13 | light orange      | 3 2 1 | | 33 | light yellow *    | 3 3 2 |
// | 14 | plain brown       | 2 1 0 | | 34 | bright green *    | 1 3 0 |
// | 15 | light blue        | 2 3 3 | | 35 | bright purple *   | 2 0 3 |
// | 16 | dark blue         | 0 0 2 | | 36 | plain gold *      | 3 2 0 |
// | 17 | bright cyan       | 0 3 3 | | 37 | dark gold *       | 2 2 0 |
// | 18 | light cyan        | 1 3 3 | | 38 | dark brown *      | 1 0 0 |
// | 19 | light pink        | 3 2 3 | | 39 | dark cyan *       | 0 1 1 |
// (* = ours, not seen in the original.) The index is the value stored in the dataset's fg/bg.
//
// Legibility rule: fg and bg are legible together iff some channel differs by at least 2 levels
// (Chebyshev distance >= 2). Then a stroke pixel of intensity >= 3/4 differs from the background
// by >= 2 levels and one of intensity >= 1/4 by >= 1 level, so the digit survives quantisation;
// pairs such as plain black on dark gray (111) or normal red on plain orange (310) are excluded.

import { sha256Hex } from './sha256';

export const SHADES = ['plain', 'light', 'dark', 'bright', 'normal'] as const;
export const COLOURS = [
  'black',
  'blue',
  'brown',
  'cyan',
  'gold',
  'gray',
  'green',
  'magenta',
  'orange',
  'pink',
  'purple',
  'red',
  'turquoise',
  'white',
  'yellow',
] as const;

export type Shade = (typeof SHADES)[number];
export type ColourWord = (typeof COLOURS)[number];
export type Rgb = readonly [r: number, g: number, b: number];

export interface PaletteColour {
  /** Position in PALETTE: the value stored in the dataset's fg/bg arrays. */
  index: number;
  /** "<shade> <colour>", e.g. "dark green". */
  name: string;
  shade: Shade;
  colour: ColourWord;
  /** Levels 0..3 per channel. */
  rgb: Rgb;
  /** True for the 26 colours of the original write-up's palette. */
  fromOriginal: boolean;
}

/**
 * The palette in index order: shade, colour word, levels (r, g, b as digits 0..3), and whether
 * the original dataset has the colour ('original') or it is one of ours.
 */
const PALETTE_TABLE: ReadonlyArray<readonly [Shade, ColourWord, string, 'original' | 'ours']> = [
  ['plain', 'white', '333', 'original'],
  ['plain', 'black', '000', 'original'],
  ['normal', 'red', '300', 'original'],
  ['dark', 'red', '201', 'original'],
  ['plain', 'green', '030', 'original'],
  ['light', 'green', '131', 'original'],
  ['dark', 'green', '121', 'original'],
  ['plain', 'turquoise', '022', 'original'],
  ['light', 'turquoise', '132', 'original'],
  ['bright', 'yellow', '330', 'original'],
  ['plain', 'yellow', '331', 'original'],
  ['dark', 'yellow', '120', 'original'],
  ['plain', 'orange', '310', 'original'],
  ['light', 'orange', '321', 'original'],
  ['plain', 'brown', '210', 'original'],
  ['light', 'blue', '233', 'original'],
  ['dark', 'blue', '002', 'original'],
  ['bright', 'cyan', '033', 'original'],
  ['light', 'cyan', '133', 'original'],
  ['light', 'pink', '323', 'original'],
  ['plain', 'purple', '202', 'original'],
  ['light', 'purple', '213', 'original'],
  ['dark', 'purple', '112', 'original'],
  ['plain', 'magenta', '312', 'original'],
  ['dark', 'magenta', '102', 'original'],
  ['dark', 'gray', '111', 'original'],
  ['plain', 'blue', '003', 'ours'],
  ['bright', 'blue', '013', 'ours'],
  ['plain', 'gray', '222', 'ours'],
  ['bright', 'magenta', '303', 'ours'],
  ['light', 'magenta', '313', 'ours'],
  ['plain', 'pink', '302', 'ours'],
  ['light', 'red', '311', 'ours'],
  ['light', 'yellow', '332', 'ours'],
  ['bright', 'green', '130', 'ours'],
  ['bright', 'purple', '203', 'ours'],
  ['plain', 'gold', '320', 'ours'],
  ['dark', 'gold', '220', 'ours'],
  ['dark', 'brown', '100', 'ours'],
  ['dark', 'cyan', '011', 'ours'],
];

function makePalette(): PaletteColour[] {
  const palette = PALETTE_TABLE.map(([shade, colour, levels, source], index) => {
    const rgb = [...levels].map(Number) as unknown as Rgb;
    const fromOriginal = source === 'original';
    return { index, name: `${shade} ${colour}`, shade, colour, rgb, fromOriginal };
  });
  const names = new Set(palette.map((c) => c.name));
  const triples = new Set(palette.map((c) => c.rgb.join('')));
  if (names.size !== palette.length || triples.size !== palette.length) {
    throw new Error('palette: names and triples must be unique'); // a programming error
  }
  return palette;
}

/** All named colours; PALETTE[i].index === i. */
export const PALETTE: readonly PaletteColour[] = makePalette();

const BY_NAME = new Map(PALETTE.map((c) => [c.name, c]));

/** The palette colour called `name` ("dark green"), or undefined. */
export function colourByName(name: string): PaletteColour | undefined {
  return BY_NAME.get(name);
}

/** The palette index of a shade + colour pair, or -1 if the pair is not in the palette. */
export function paletteIndex(shade: string, colour: string): number {
  return BY_NAME.get(`${shade} ${colour}`)?.index ?? -1;
}

/** The legibility rule for foreground/background pairs (see the file header). */
export const LEGIBILITY_RULE = {
  id: 'chebyshev>=2',
  minChannelDifference: 2,
  description: 'fg and bg differ by at least 2 levels (of 0..3) in at least one channel',
} as const;

/** Whether two RGB level triples may be foreground and background of one image. */
export function isLegibleRgb(fg: Rgb, bg: Rgb): boolean {
  const maxDiff = Math.max(
    Math.abs(fg[0] - bg[0]),
    Math.abs(fg[1] - bg[1]),
    Math.abs(fg[2] - bg[2]),
  );
  return maxDiff >= LEGIBILITY_RULE.minChannelDifference;
}

/** Whether palette colours `fg` and `bg` (indices) may be drawn together; false if fg === bg. */
export function isLegible(fg: number, bg: number): boolean {
  return fg !== bg && isLegibleRgb(PALETTE[fg]!.rgb, PALETTE[bg]!.rgb);
}

/** Every legible ordered (fg, bg) pair, in (fg, bg) order: [P, 2] flattened. */
export function legiblePairs(): Int32Array {
  const pairs: number[] = [];
  for (let fg = 0; fg < PALETTE.length; fg++) {
    for (let bg = 0; bg < PALETTE.length; bg++) {
      if (isLegible(fg, bg)) pairs.push(fg, bg);
    }
  }
  return Int32Array.from(pairs);
}

/** name -> [r, g, b] levels, in palette order (the export's palette.json). */
export function paletteJson(): Record<string, [number, number, number]> {
  const out: Record<string, [number, number, number]> = {};
  for (const c of PALETTE) out[c.name] = [c.rgb[0], c.rgb[1], c.rgb[2]];
  return out;
}

/** SHA-256 of the palette (order, names, triples) and the legibility rule: the cache key. */
export function paletteHash(): string {
  return sha256Hex(JSON.stringify({ palette: paletteJson(), rule: LEGIBILITY_RULE.id }));
}

/** The palette as a Markdown table, for documentation and `mmgpt data --palette`. */
export function paletteMarkdown(): string {
  const lines = ['| # | name | r g b | 0..255 | source |', '|---|---|---|---|---|'];
  for (const c of PALETTE) {
    const bytes = c.rgb.map((l) => l * 85).join(', ');
    const source = c.fromOriginal ? 'original' : 'ours';
    lines.push(`| ${c.index} | ${c.name} | ${c.rgb.join(' ')} | (${bytes}) | ${source} |`);
  }
  return lines.join('\n');
}
