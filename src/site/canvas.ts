// The page's pictures: a level image (28 x 28 x 3, levels 0-3) painted on a canvas, and the
// drawing pad of image -> text, a 28 x 28 canvas painted with pointer events (mouse, pen, touch)
// or the keyboard, in a foreground and a background colour of the palette.

import { IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_VALUES } from '../data/images';
import type { LevelImage } from './api';

/** Level 0..3 as a byte 0..255, as the dataset's PNGs show it. */
const LEVEL_BYTE = 85;

/** A 28 x 28 canvas showing a level image (flat [28 * 28 * 3] or nested [28][28][3]). */
function paintImage(canvas: HTMLCanvasElement, image: LevelImage | Uint8Array): void {
  const ctx = canvas.getContext('2d')!;
  const pixels = ctx.createImageData(IMAGE_SIZE, IMAGE_SIZE);
  for (let y = 0; y < IMAGE_SIZE; y++)
    for (let x = 0; x < IMAGE_SIZE; x++) {
      const at = (y * IMAGE_SIZE + x) * 4;
      for (let c = 0; c < IMAGE_CHANNELS; c++) {
        const level =
          image instanceof Uint8Array
            ? image[(y * IMAGE_SIZE + x) * IMAGE_CHANNELS + c]!
            : image[y]![x]![c]!;
        pixels.data[at + c] = level * LEVEL_BYTE;
      }
      pixels.data[at + 3] = 255;
    }
  ctx.putImageData(pixels, 0, 0);
}

/** A new 28 x 28 canvas showing `image`. */
export function imageCanvas(image: LevelImage | Uint8Array, label: string): HTMLCanvasElement {
  const canvas = document.createElement('canvas');
  canvas.width = IMAGE_SIZE;
  canvas.height = IMAGE_SIZE;
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', label);
  paintImage(canvas, image);
  return canvas;
}

type Rgb = readonly [number, number, number];

/**
 * The drawing pad: its levels, a background fill, pen strokes in the foreground colour (a line
 * between successive pointer positions, so a fast stroke has no gaps) and a keyboard cursor.
 */
export class DrawingPad {
  readonly levels = new Uint8Array(IMAGE_VALUES);
  private cursor = { x: 14, y: 14 };
  private last: { x: number; y: number } | null = null;
  private showCursor = false;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly colours: () => { fg: Rgb; bg: Rgb; pen: number },
    private readonly onChange: () => void,
  ) {
    canvas.addEventListener('pointerdown', (e) => this.pointerDown(e));
    canvas.addEventListener('pointermove', (e) => this.pointerMove(e));
    for (const type of ['pointerup', 'pointercancel', 'pointerleave'] as const)
      canvas.addEventListener(type, () => (this.last = null));
    canvas.addEventListener('keydown', (e) => this.key(e));
    canvas.addEventListener('focus', () => this.setCursorShown(true));
    canvas.addEventListener('blur', () => this.setCursorShown(false));
    this.clear();
  }

  /** Fills the pad with the background colour. */
  clear(): void {
    const { bg } = this.colours();
    for (let p = 0; p < IMAGE_SIZE * IMAGE_SIZE; p++) this.levels.set(bg, p * IMAGE_CHANNELS);
    this.redraw();
    this.onChange();
  }

  /** Shows an image on the pad (a test image), to read or to draw over. */
  load(levels: Uint8Array): void {
    this.levels.set(levels);
    this.redraw();
    this.onChange();
  }

  /** The pixel under a pointer event. */
  private pixelOf(e: PointerEvent): { x: number; y: number } {
    const rect = this.canvas.getBoundingClientRect();
    const clamp = (v: number) => Math.min(IMAGE_SIZE - 1, Math.max(0, Math.floor(v)));
    return {
      x: clamp(((e.clientX - rect.left) / rect.width) * IMAGE_SIZE),
      y: clamp(((e.clientY - rect.top) / rect.height) * IMAGE_SIZE),
    };
  }

  private pointerDown(e: PointerEvent): void {
    e.preventDefault();
    this.canvas.setPointerCapture?.(e.pointerId);
    this.last = this.pixelOf(e);
    this.stroke(this.last, this.last, e.button === 2 || e.shiftKey);
  }

  private pointerMove(e: PointerEvent): void {
    if (this.last === null || e.buttons === 0) return;
    const at = this.pixelOf(e);
    this.stroke(this.last, at, (e.buttons & 2) !== 0 || e.shiftKey);
    this.last = at;
  }

  /** Paints the line from a to b with the pen (or erases it to the background). */
  private stroke(a: { x: number; y: number }, b: { x: number; y: number }, erase: boolean): void {
    const steps = Math.max(Math.abs(b.x - a.x), Math.abs(b.y - a.y), 1);
    for (let s = 0; s <= steps; s++)
      this.dab(
        Math.round(a.x + ((b.x - a.x) * s) / steps),
        Math.round(a.y + ((b.y - a.y) * s) / steps),
        erase,
      );
    this.redraw();
    this.onChange();
  }

  /** One pen-sized square at (x, y): the pen's top-left pixel is (x, y) for a 1 px pen. */
  private dab(x: number, y: number, erase: boolean): void {
    const { fg, bg, pen } = this.colours();
    const start = -Math.floor((pen - 1) / 2);
    for (let dy = start; dy < start + pen; dy++)
      for (let dx = start; dx < start + pen; dx++) {
        const px = x + dx;
        const py = y + dy;
        if (px < 0 || py < 0 || px >= IMAGE_SIZE || py >= IMAGE_SIZE) continue;
        this.levels.set(erase ? bg : fg, (py * IMAGE_SIZE + px) * IMAGE_CHANNELS);
      }
  }

  private key(e: KeyboardEvent): void {
    const moves: Record<string, [number, number]> = {
      ArrowLeft: [-1, 0],
      ArrowRight: [1, 0],
      ArrowUp: [0, -1],
      ArrowDown: [0, 1],
    };
    const move = moves[e.key];
    if (move !== undefined) {
      this.cursor.x = Math.min(IMAGE_SIZE - 1, Math.max(0, this.cursor.x + move[0]));
      this.cursor.y = Math.min(IMAGE_SIZE - 1, Math.max(0, this.cursor.y + move[1]));
      if (e.shiftKey) this.stroke(this.cursor, this.cursor, false);
      else this.redraw();
    } else if (e.key === ' ' || e.key === 'Enter') {
      this.stroke(this.cursor, this.cursor, false);
    } else if (e.key === 'Delete' || e.key === 'Backspace') {
      this.stroke(this.cursor, this.cursor, true);
    } else return;
    e.preventDefault();
  }

  private setCursorShown(shown: boolean): void {
    this.showCursor = shown;
    this.redraw();
  }

  private redraw(): void {
    paintImage(this.canvas, this.levels);
    if (!this.showCursor) return;
    const ctx = this.canvas.getContext('2d')!;
    ctx.strokeStyle = '#ff00ff';
    ctx.lineWidth = 0.3;
    ctx.strokeRect(this.cursor.x + 0.15, this.cursor.y + 0.15, 0.7, 0.7);
  }
}
