// PNG pictures of coloured-MNIST images: level <-> byte mapping, nearest-neighbour upscaling,
// captioned grids with a tiny built-in bitmap font, and reading a user's 28x28 image.
//
// Encoding/decoding uses pngjs (https://github.com/pngjs/pngjs, PNG.sync). Notable choices:
// - Levels 0..3 map to bytes 0, 85, 170, 255 (k * 85), and back by rounding to the nearest level;
//   a byte more than LEVEL_TOLERANCE from every level is an error, never silently snapped.
// - The font is our own 5x7 monospace bitmap (letters drawn as capitals, any case accepted),
//   so grids need no system fonts and render identically everywhere.
// - Grids: white page, each image framed by a 1-pixel grey line (so white images stay visible),
//   its caption word-wrapped underneath in black.
// - Reading checks the signature and the IHDR chunk first (pngPixelSize): a PNG that declares
//   more than MAX_PNG_PIXELS pixels, or a user's image of a size that cannot be a 28x28 level
//   image, is refused before pngjs allocates or inflates anything.

import * as fs from 'fs';
import { PNG } from 'pngjs';
import { atomicWriteFile } from '../nn/safetensors';

/** Bytes shown for levels 0..3. */
export const LEVEL_TO_BYTE: readonly number[] = [0, 85, 170, 255];
/** How far (in bytes) a read pixel may be from a level and still quantise to it. */
export const LEVEL_TOLERANCE = 8;

/** An 8-bit RGB picture, [height, width, 3] row-major. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export type RgbColour = readonly [r: number, g: number, b: number];

/** Level image [height, width, 3] (values 0..3) -> displayable bytes. */
export function levelsToRgb(levels: Uint8Array, width = 28, height = 28): RgbImage {
  if (levels.length !== width * height * 3) {
    throw new Error(
      `levelsToRgb: expected [${height}, ${width}, 3] = ${width * height * 3} levels, ` +
        `got ${levels.length}`,
    );
  }
  const data = new Uint8Array(levels.length);
  for (let i = 0; i < levels.length; i++) {
    const byte = LEVEL_TO_BYTE[levels[i]!];
    if (byte === undefined) throw new Error(`levelsToRgb: level ${levels[i]} at ${i} is not 0..3`);
    data[i] = byte;
  }
  return { width, height, data };
}

/** Nearest-neighbour upscaling by an integer factor. */
export function upscaleNearest(image: RgbImage, factor: number): RgbImage {
  if (!Number.isInteger(factor) || factor < 1) {
    throw new Error(`upscaleNearest: factor must be a positive integer, got ${factor}`);
  }
  const width = image.width * factor;
  const height = image.height * factor;
  const data = new Uint8Array(width * height * 3); // [H*f, W*f, 3]
  for (let y = 0; y < height; y++) {
    const srcRow = Math.floor(y / factor) * image.width;
    for (let x = 0; x < width; x++) {
      const src = (srcRow + Math.floor(x / factor)) * 3;
      const dst = (y * width + x) * 3;
      data[dst] = image.data[src]!;
      data[dst + 1] = image.data[src + 1]!;
      data[dst + 2] = image.data[src + 2]!;
    }
  }
  return { width, height, data };
}

/** A blank picture filled with one colour. */
export function blankImage(width: number, height: number, colour: RgbColour): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(colour, i * 3);
  return { width, height, data };
}

/** Copies `src` into `dst` with its top-left corner at (x, y); clips at the edges. */
export function blit(dst: RgbImage, src: RgbImage, x: number, y: number): void {
  for (let row = 0; row < src.height; row++) {
    const dy = y + row;
    if (dy < 0 || dy >= dst.height) continue;
    for (let col = 0; col < src.width; col++) {
      const dx = x + col;
      if (dx < 0 || dx >= dst.width) continue;
      const s = (row * src.width + col) * 3;
      const d = (dy * dst.width + dx) * 3;
      dst.data[d] = src.data[s]!;
      dst.data[d + 1] = src.data[s + 1]!;
      dst.data[d + 2] = src.data[s + 2]!;
    }
  }
}

function fillRect(
  img: RgbImage,
  x: number,
  y: number,
  w: number,
  h: number,
  colour: RgbColour,
): void {
  for (let row = Math.max(0, y); row < Math.min(img.height, y + h); row++) {
    for (let col = Math.max(0, x); col < Math.min(img.width, x + w); col++) {
      img.data.set(colour, (row * img.width + col) * 3);
    }
  }
}

// ---- 5x7 bitmap font -------------------------------------------------------------------------

export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 7;
/** Horizontal advance per character (glyph + 1 column of space). */
export const CHAR_ADVANCE = GLYPH_WIDTH + 1;
/** Vertical advance per text line (glyph + 2 rows of space). */
export const LINE_ADVANCE = GLYPH_HEIGHT + 2;

// Each glyph: 7 rows of 5 columns, '#' = ink, rows separated by '|'.
const GLYPHS: Record<string, string> = {
  a: '.###.|#...#|#...#|#####|#...#|#...#|#...#',
  b: '####.|#...#|#...#|####.|#...#|#...#|####.',
  c: '.###.|#...#|#....|#....|#....|#...#|.###.',
  d: '###..|#..#.|#...#|#...#|#...#|#..#.|###..',
  e: '#####|#....|#....|####.|#....|#....|#####',
  f: '#####|#....|#....|####.|#....|#....|#....',
  g: '.###.|#...#|#....|#.###|#...#|#...#|.####',
  h: '#...#|#...#|#...#|#####|#...#|#...#|#...#',
  i: '.###.|..#..|..#..|..#..|..#..|..#..|.###.',
  j: '..###|...#.|...#.|...#.|...#.|#..#.|.##..',
  k: '#...#|#..#.|#.#..|##...|#.#..|#..#.|#...#',
  l: '#....|#....|#....|#....|#....|#....|#####',
  m: '#...#|##.##|#.#.#|#.#.#|#...#|#...#|#...#',
  n: '#...#|#...#|##..#|#.#.#|#..##|#...#|#...#',
  o: '.###.|#...#|#...#|#...#|#...#|#...#|.###.',
  p: '####.|#...#|#...#|####.|#....|#....|#....',
  q: '.###.|#...#|#...#|#...#|#.#.#|#..#.|.##.#',
  r: '####.|#...#|#...#|####.|#.#..|#..#.|#...#',
  s: '.####|#....|#....|.###.|....#|....#|####.',
  t: '#####|..#..|..#..|..#..|..#..|..#..|..#..',
  u: '#...#|#...#|#...#|#...#|#...#|#...#|.###.',
  v: '#...#|#...#|#...#|#...#|#...#|.#.#.|..#..',
  w: '#...#|#...#|#...#|#.#.#|#.#.#|#.#.#|.#.#.',
  x: '#...#|#...#|.#.#.|..#..|.#.#.|#...#|#...#',
  y: '#...#|#...#|.#.#.|..#..|..#..|..#..|..#..',
  z: '#####|....#|...#.|..#..|.#...|#....|#####',
  '0': '.###.|#...#|#..##|#.#.#|##..#|#...#|.###.',
  '1': '..#..|.##..|..#..|..#..|..#..|..#..|.###.',
  '2': '.###.|#...#|....#|...#.|..#..|.#...|#####',
  '3': '#####|...#.|..#..|...#.|....#|#...#|.###.',
  '4': '...#.|..##.|.#.#.|#..#.|#####|...#.|...#.',
  '5': '#####|#....|####.|....#|....#|#...#|.###.',
  '6': '..##.|.#...|#....|####.|#...#|#...#|.###.',
  '7': '#####|....#|...#.|..#..|.#...|.#...|.#...',
  '8': '.###.|#...#|#...#|.###.|#...#|#...#|.###.',
  '9': '.###.|#...#|#...#|.####|....#|...#.|.##..',
  ' ': '.....|.....|.....|.....|.....|.....|.....',
  '<': '...#.|..#..|.#...|#....|.#...|..#..|...#.',
  '>': '.#...|..#..|...#.|....#|...#.|..#..|.#...',
  '.': '.....|.....|.....|.....|.....|.##..|.##..',
  ',': '.....|.....|.....|.....|.##..|..#..|.#...',
  ':': '.....|.##..|.##..|.....|.##..|.##..|.....',
  ';': '.....|.##..|.##..|.....|.##..|..#..|.#...',
  '-': '.....|.....|.....|#####|.....|.....|.....',
  _: '.....|.....|.....|.....|.....|.....|#####',
  '/': '.....|....#|...#.|..#..|.#...|#....|.....',
  '(': '...#.|..#..|.#...|.#...|.#...|..#..|...#.',
  ')': '.#...|..#..|...#.|...#.|...#.|..#..|.#...',
  '[': '.###.|.#...|.#...|.#...|.#...|.#...|.###.',
  ']': '.###.|...#.|...#.|...#.|...#.|...#.|.###.',
  "'": '..#..|..#..|.#...|.....|.....|.....|.....',
  '"': '.#.#.|.#.#.|.#.#.|.....|.....|.....|.....',
  '!': '..#..|..#..|..#..|..#..|..#..|.....|..#..',
  '?': '.###.|#...#|....#|...#.|..#..|.....|..#..',
  '=': '.....|.....|#####|.....|#####|.....|.....',
  '+': '.....|..#..|..#..|#####|..#..|..#..|.....',
  '%': '##...|##..#|...#.|..#..|.#...|#..##|...##',
  '*': '.....|..#..|#.#.#|.###.|#.#.#|..#..|.....',
  '#': '.#.#.|.#.#.|#####|.#.#.|#####|.#.#.|.#.#.',
  '|': '..#..|..#..|..#..|..#..|..#..|..#..|..#..',
};
// Characters outside the font draw as this box.
const MISSING_GLYPH = '#####|#...#|#...#|#...#|#...#|#...#|#####';

/** Characters the built-in font draws (letters in either case). */
export const FONT_CHARACTERS: string = Object.keys(GLYPHS).join('');

const GLYPH_BITS = new Map<string, Uint8Array>();
function glyphBits(ch: string): Uint8Array {
  const key = ch.toLowerCase();
  let bits = GLYPH_BITS.get(key);
  if (bits === undefined) {
    const rows = (GLYPHS[key] ?? MISSING_GLYPH).split('|');
    bits = new Uint8Array(GLYPH_WIDTH * GLYPH_HEIGHT); // [7, 5]
    rows.forEach((row, r) => {
      for (let c = 0; c < GLYPH_WIDTH; c++) bits![r * GLYPH_WIDTH + c] = row[c] === '#' ? 1 : 0;
    });
    GLYPH_BITS.set(key, bits);
  }
  return bits;
}

/** Width in pixels of one line of text (no trailing space). */
export function textWidth(text: string, textScale = 1): number {
  return text.length === 0 ? 0 : (text.length * CHAR_ADVANCE - 1) * textScale;
}

/** Draws one line of text with its top-left corner at (x, y). */
export function drawText(
  img: RgbImage,
  text: string,
  x: number,
  y: number,
  colour: RgbColour,
  textScale = 1,
): void {
  for (let i = 0; i < text.length; i++) {
    const bits = glyphBits(text[i]!);
    const left = x + i * CHAR_ADVANCE * textScale;
    for (let r = 0; r < GLYPH_HEIGHT; r++) {
      for (let c = 0; c < GLYPH_WIDTH; c++) {
        if (bits[r * GLYPH_WIDTH + c]) {
          fillRect(img, left + c * textScale, y + r * textScale, textScale, textScale, colour);
        }
      }
    }
  }
}

/** Greedy word wrap to lines of at most maxChars characters (long words are split). */
export function wrapText(text: string, maxChars: number): string[] {
  const limit = Math.max(1, Math.floor(maxChars));
  const lines: string[] = [];
  let line = '';
  for (let word of text.split(/\s+/).filter((w) => w.length > 0)) {
    while (word.length > limit) {
      if (line.length > 0) lines.push(line);
      lines.push(word.slice(0, limit));
      word = word.slice(limit);
      line = '';
    }
    if (line.length === 0) line = word;
    else if (line.length + 1 + word.length <= limit) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line.length > 0) lines.push(line);
  return lines;
}

// ---- grids -----------------------------------------------------------------------------------

export interface GridItem {
  /** Levels 0..3, [28, 28, 3] (or [imageHeight, imageWidth, 3] with the grid options). */
  image: Uint8Array;
  caption?: string;
}

export interface GridOptions {
  /** Images per row (default: ceil(sqrt(n))). */
  columns?: number;
  /** Upscaling factor of each image (default 4: 28 -> 112 px). */
  scale?: number;
  /** Font pixel size (default 1: 5x7 px glyphs). */
  textScale?: number;
  /** Space around and between cells in px (default 6). */
  padding?: number;
  /** Source image size (default 28x28). */
  imageWidth?: number;
  imageHeight?: number;
  /** An optional title line above the grid. */
  title?: string;
  background?: RgbColour;
  textColour?: RgbColour;
  frameColour?: RgbColour;
}

/** A grid of level images, each with its caption word-wrapped underneath. */
export function captionedGrid(items: readonly GridItem[], options: GridOptions = {}): RgbImage {
  if (items.length === 0) throw new Error('captionedGrid: no images');
  const columns = options.columns ?? Math.ceil(Math.sqrt(items.length));
  const rows = Math.ceil(items.length / columns);
  const scale = options.scale ?? 4;
  const textScale = options.textScale ?? 1;
  const padding = options.padding ?? 6;
  const srcW = options.imageWidth ?? 28;
  const srcH = options.imageHeight ?? 28;
  const background = options.background ?? [255, 255, 255];
  const textColour = options.textColour ?? [0, 0, 0];
  const frameColour = options.frameColour ?? [160, 160, 160];

  const imageW = srcW * scale;
  const imageH = srcH * scale;
  const cellW = imageW + 2; // + frame
  const maxChars = Math.max(1, Math.floor((cellW + textScale) / (CHAR_ADVANCE * textScale)));
  const captions = items.map((it) => (it.caption ? wrapText(it.caption, maxChars) : []));
  const captionLines = Math.max(0, ...captions.map((c) => c.length));
  const captionH = captionLines > 0 ? 3 * textScale + captionLines * LINE_ADVANCE * textScale : 0;
  const cellH = imageH + 2 + captionH;
  const width = padding + columns * (cellW + padding);
  // The title wraps at the grid's width (a sampling line with all its settings is long).
  const titleChars = Math.max(
    1,
    Math.floor((width - 2 * padding + textScale) / (CHAR_ADVANCE * textScale)),
  );
  const titleLines = options.title ? wrapText(options.title, titleChars) : [];
  const titleH = titleLines.length > 0 ? (titleLines.length * LINE_ADVANCE + 2) * textScale : 0;
  const height = padding + titleH + rows * (cellH + padding);

  const page = blankImage(width, height, background);
  titleLines.forEach((line, l) =>
    drawText(page, line, padding, padding + l * LINE_ADVANCE * textScale, textColour, textScale),
  );
  items.forEach((item, i) => {
    const x = padding + (i % columns) * (cellW + padding);
    const y = padding + titleH + Math.floor(i / columns) * (cellH + padding);
    fillRect(page, x, y, cellW, imageH + 2, frameColour);
    blit(page, upscaleNearest(levelsToRgb(item.image, srcW, srcH), scale), x + 1, y + 1);
    captions[i]!.forEach((line, l) => {
      const lineY = y + imageH + 2 + 3 * textScale + l * LINE_ADVANCE * textScale;
      const lineX = x + Math.floor((cellW - textWidth(line, textScale)) / 2);
      drawText(page, line, lineX, lineY, textColour, textScale);
    });
  });
  return page;
}

// ---- PNG encoding and decoding ---------------------------------------------------------------

/** PNG bytes of an RGB picture (8-bit truecolour). */
export function encodePng(img: RgbImage): Buffer {
  if (img.data.length !== img.width * img.height * 3) {
    throw new Error(
      `encodePng: ${img.width}x${img.height} RGB needs ${img.width * img.height * 3} bytes, ` +
        `got ${img.data.length}`,
    );
  }
  const png = new PNG({ width: img.width, height: img.height });
  for (let i = 0; i < img.width * img.height; i++) {
    png.data[4 * i] = img.data[3 * i]!;
    png.data[4 * i + 1] = img.data[3 * i + 1]!;
    png.data[4 * i + 2] = img.data[3 * i + 2]!;
    png.data[4 * i + 3] = 255;
  }
  return PNG.sync.write(png, { colorType: 2 });
}

/** Writes an RGB picture as a PNG file (atomically; creates the directory). */
export function writePng(filePath: string, img: RgbImage): void {
  atomicWriteFile(filePath, encodePng(img));
}

/** Writes a captioned grid of level images to a PNG file. */
export function writeCaptionedGrid(
  filePath: string,
  items: readonly GridItem[],
  options: GridOptions = {},
): RgbImage {
  const grid = captionedGrid(items, options);
  writePng(filePath, grid);
  return grid;
}

/** The most pixels a PNG may declare to be decoded (4096 x 4096: 64 MiB of RGBA). */
export const MAX_PNG_PIXELS = 4096 * 4096;
/** The largest upscale of a 28x28 image accepted as a user's picture (1792 x 1792). */
export const MAX_LEVEL_UPSCALE = 64;

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * The width and height a PNG declares in its IHDR chunk (which must come first), read without
 * decoding anything; throws naming the file if the signature or the IHDR chunk is wrong.
 */
export function pngPixelSize(buf: Uint8Array, fileName: string): { width: number; height: number } {
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (bytes.length < 8 || !bytes.subarray(0, 8).equals(PNG_SIGNATURE))
    throw new Error(
      `'${fileName}' is not a readable PNG file (its first 8 bytes are not the PNG signature)`,
    );
  if (bytes.length < 8 + 8 + 13 || bytes.toString('latin1', 12, 16) !== 'IHDR')
    throw new Error(`'${fileName}' is not a readable PNG file (no IHDR chunk after the signature)`);
  if (bytes.readUInt32BE(8) !== 13)
    throw new Error(
      `'${fileName}' is not a readable PNG file (IHDR length ${bytes.readUInt32BE(8)}, not 13)`,
    );
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

/**
 * Decodes a PNG to RGBA bytes; throws naming the file if it is not a readable PNG, or if it
 * declares more than `maxPixels` pixels (checked before decoding).
 */
export function decodePng(buf: Buffer, fileName: string, maxPixels = MAX_PNG_PIXELS): PNG {
  const { width, height } = pngPixelSize(buf, fileName);
  if (width === 0 || height === 0 || width * height > maxPixels)
    throw new Error(
      `'${fileName}' declares ${width}x${height} pixels; at most ${maxPixels} pixels are decoded`,
    );
  try {
    return PNG.sync.read(buf);
  } catch (err) {
    throw new Error(`'${fileName}' is not a readable PNG file (${(err as Error).message})`);
  }
}

/**
 * A user's picture as a level image [28, 28, 3] with values 0..3. Accepts a 28x28 PNG, or an
 * exact integer upscale of one (e.g. 112x112 with uniform 4x4 blocks, as our grids draw them),
 * in any PNG colour type; every channel byte must be within LEVEL_TOLERANCE of 0, 85, 170 or 255
 * and every pixel opaque.
 */
export function decodeLevelsPng(buf: Buffer, fileName: string, size = 28): Uint8Array {
  // The size is checked on the declared header, before decoding.
  const declared = pngPixelSize(buf, fileName);
  const { width, height } = declared;
  const factor = width / size;
  if (width !== height || !Number.isInteger(factor) || factor < 1 || factor > MAX_LEVEL_UPSCALE) {
    throw new Error(
      `image '${fileName}' is ${width}x${height} pixels; expected ${size}x${size} ` +
        `(or an exact upscale such as ${size * 4}x${size * 4}, at most ` +
        `${size * MAX_LEVEL_UPSCALE}x${size * MAX_LEVEL_UPSCALE})`,
    );
  }
  const png = decodePng(buf, fileName);
  if (png.width !== width || png.height !== height)
    throw new Error(`'${fileName}' is not a readable PNG file (its size changed while decoding)`);
  const rgba = png.data;
  let transparent = 0;
  for (let i = 3; i < rgba.length; i += 4) if (rgba[i] !== 255) transparent++;
  if (transparent > 0) {
    throw new Error(
      `image '${fileName}' has ${transparent} transparent pixels; save it without transparency`,
    );
  }
  if (factor > 1) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const corner = ((y - (y % factor)) * width + (x - (x % factor))) * 4;
        const p = (y * width + x) * 4;
        if (
          rgba[p] !== rgba[corner] ||
          rgba[p + 1] !== rgba[corner + 1] ||
          rgba[p + 2] !== rgba[corner + 2]
        ) {
          throw new Error(
            `image '${fileName}' is ${width}x${height} but not an exact ${factor}x upscale of a ` +
              `${size}x${size} image (pixel (${x}, ${y}) differs from its ${factor}x${factor} ` +
              `block); save it at ${size}x${size}`,
          );
        }
      }
    }
  }
  const levels = new Uint8Array(size * size * 3); // [28, 28, 3]
  let bad = 0;
  let firstBad = '';
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const p = (y * factor * width + x * factor) * 4;
      for (let c = 0; c < 3; c++) {
        const byte = rgba[p + c]!;
        const level = Math.round(byte / 85);
        if (Math.abs(byte - level * 85) > LEVEL_TOLERANCE) {
          if (bad === 0) firstBad = `pixel (${x}, ${y}) channel ${'rgb'[c]} = ${byte}`;
          bad++;
        }
        levels[(y * size + x) * 3 + c] = level;
      }
    }
  }
  if (bad > 0) {
    throw new Error(
      `image '${fileName}' has ${bad} channel values that do not quantise cleanly to the 4 ` +
        `levels 0, 85, 170, 255 (tolerance +-${LEVEL_TOLERANCE}; first: ${firstBad}). ` +
        `Coloured MNIST images use only these 4 values per channel.`,
    );
  }
  return levels;
}

/** Reads a user's PNG file as a level image [28, 28, 3] (see decodeLevelsPng). */
export function readLevelsPng(filePath: string, size = 28): Uint8Array {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(filePath);
  } catch (err) {
    throw new Error(`cannot read image '${filePath}': ${(err as Error).message}`);
  }
  return decodeLevelsPng(buf, filePath, size);
}
