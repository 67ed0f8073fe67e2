// The page of `mmgpt site`: loads manifest.json, the weights and the tokenizer beside it, picks a
// backend (the engine's wasm one where the browser has WebAssembly SIMD and the folder has the
// .wasm, else the js reference backend, saying why), and wires the three modes to plain DOM
// controls. `window.mmgpt` is the same model for scripts: ready, textToImage, imageToText,
// unconditional, backend (README, "The model on a web page").
// `?backend=js` or `?backend=wasm` in the address asks for one backend (the benchmark compares
// them in one browser). Sampling runs on the page's thread: each button yields a frame first, so
// the page says what it is doing before it is busy.

/// <reference lib="dom" />
// The DOM's types for this file: the rest of src/ is Node code and has no DOM of its own.

import { getBackend, useBackend } from '../engine/registry';
import { jsBackend } from '../engine/backends/js';
import { IMAGE_VALUES } from '../data/images';
import {
  siteImageToText,
  siteModelFromBytes,
  siteTextToImage,
  siteUnconditional,
  type CaptionCandidate,
  type LevelImage,
  type SiteModel,
  type SiteSampleOptions,
} from './api';
import { checkCaptionDraft } from './caption';
import { DrawingPad, imageCanvas } from './canvas';
import { SITE_FILES, type SiteFile, type SiteManifest, type TestImage } from './manifest';
import { createWasmBackend } from './wasm';

/** What `window.mmgpt` offers (README). */
interface PageApi {
  ready: Promise<void>;
  backend: string;
  manifest: SiteManifest | null;
  textToImage(
    caption: string,
    options?: SiteSampleOptions & { n?: number },
  ): Promise<{ caption: string; images: LevelImage[]; ms: number }>;
  imageToText(
    levels: LevelImage,
    options?: SiteSampleOptions,
  ): Promise<{ caption: string; candidates: CaptionCandidate[]; ms: number }>;
  unconditional(
    n?: number,
    options?: SiteSampleOptions,
  ): Promise<{ images: LevelImage[]; captions: string[]; ms: number }>;
}

declare global {
  interface Window {
    mmgpt: PageApi;
  }
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

/** A tiny module returning a v128 constant: valid only where WebAssembly SIMD is. */
const SIMD_PROBE = new Uint8Array([
  0,
  0x61,
  0x73,
  0x6d,
  1,
  0,
  0,
  0,
  1,
  5,
  1,
  0x60,
  0,
  1,
  0x7b,
  3,
  2,
  1,
  0,
  0x0a,
  0x16,
  1,
  0x14,
  0,
  0xfd,
  0x0c,
  ...new Array<number>(16).fill(0),
  0x0b,
]);

function hasWasmSimd(): boolean {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}

async function fetchBytes(file: string): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(file);
  } catch (e) {
    throw new Error(`${file} could not be fetched (${(e as Error).message})`);
  }
  if (!response.ok) throw new Error(`${file}: the server answered ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** Checks fetched bytes against the manifest (size, and SHA-256 where the browser can hash). */
async function checkFile(bytes: Uint8Array, expected: SiteFile): Promise<void> {
  const stale = `: the file is damaged, or is not the one manifest.json was written with`;
  if (bytes.length !== expected.bytes)
    throw new Error(`${expected.file} has ${bytes.length} bytes, not ${expected.bytes}${stale}`);
  if (globalThis.crypto?.subtle === undefined) return; // not a secure context: sizes only
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
  if (hex !== expected.sha256)
    throw new Error(
      `${expected.file} has SHA-256 ${hex.slice(0, 12)}..., not ${expected.sha256.slice(0, 12)}...${stale}`,
    );
}

/** The backend the page runs: wasm when asked for (or by default) and possible, else js. */
async function chooseBackend(manifest: SiteManifest, asked: string | null): Promise<string[]> {
  const notes: string[] = [];
  if (asked === 'js') {
    useBackend(jsBackend);
    return notes;
  }
  const why =
    createWasmBackend === null || manifest.wasm === null
      ? 'this build of the page has no wasm backend'
      : !hasWasmSimd()
        ? 'this browser lacks WebAssembly SIMD'
        : null;
  if (why === null) {
    try {
      const bytes = await fetchBytes(manifest.wasm!.file);
      await checkFile(bytes, manifest.wasm!);
      useBackend(await createWasmBackend!(bytes));
      return notes;
    } catch (e) {
      notes.push(`the wasm backend did not start (${(e as Error).message})`);
    }
  } else notes.push(why);
  useBackend(jsBackend);
  notes.push('running on the slower js reference backend');
  return notes;
}

/** Loads the manifest, the backend and the model; resolves to them or rejects saying why. */
async function loadModel(): Promise<{ manifest: SiteManifest; model: SiteModel; notes: string[] }> {
  const manifest = JSON.parse(
    new TextDecoder().decode(await fetchBytes(SITE_FILES.manifest)),
  ) as SiteManifest;
  const asked = new URLSearchParams(location.search).get('backend');
  const notes = await chooseBackend(manifest, asked);
  const [checkpoint, tokenizer] = await Promise.all([
    fetchBytes(manifest.checkpoint.file),
    fetchBytes(manifest.tokenizer.file),
  ]);
  await checkFile(checkpoint, manifest.checkpoint);
  await checkFile(tokenizer, manifest.tokenizer);
  const model = siteModelFromBytes(
    { name: manifest.checkpoint.file, bytes: checkpoint },
    { name: manifest.tokenizer.file, bytes: tokenizer },
  );
  return { manifest, model, notes };
}

const timed = <T>(run: () => T): T & { ms: number } => {
  const t0 = performance.now();
  const result = run();
  return { ...result, ms: performance.now() - t0 };
};

/** window.mmgpt over a model that is loading (each call waits for it). */
function pageApi(loading: Promise<{ manifest: SiteManifest; model: SiteModel }>): PageApi {
  const api: PageApi = {
    ready: loading.then(() => undefined),
    backend: 'loading',
    manifest: null,
    async textToImage(caption, options = {}) {
      const { model } = await loading;
      const r = timed(() => siteTextToImage(model, caption, options.n ?? 9, options));
      return { caption: r.caption, images: r.images, ms: r.ms };
    },
    async imageToText(levels, options = {}) {
      const { model } = await loading;
      const r = timed(() => siteImageToText(model, levels, options));
      return { caption: r.caption, candidates: r.candidates, ms: r.ms };
    },
    async unconditional(n = 9, options = {}) {
      const { model } = await loading;
      const r = timed(() => siteUnconditional(model, n, options));
      return { images: r.images, captions: r.captions, ms: r.ms };
    },
  };
  api.ready.catch(() => undefined); // the page shows the error; a script awaiting ready gets it
  loading.then(
    ({ manifest }) => {
      api.backend = getBackend().name;
      api.manifest = manifest;
    },
    () => (api.backend = 'none'),
  );
  return api;
}

// ---- the controls ----------------------------------------------------------------------------

/** The sampling controls' values; an empty field is the preset's value. */
function controlOptions(): SiteSampleOptions {
  const read = (id: string): number | undefined => {
    const text = $<HTMLInputElement>(id).value.trim();
    if (text === '') return undefined;
    const value = Number(text);
    if (!Number.isFinite(value)) throw new Error(`${id} must be a number, got "${text}"`);
    return value;
  };
  return {
    temperature: read('temperature'),
    guidance: read('guidance'),
    rerank: read('rerank'),
    seed: read('seed') ?? 0,
  };
}

/** Runs a button's work after the page has shown that it started; errors go to its message. */
async function busy(
  button: HTMLButtonElement,
  out: HTMLElement,
  work: () => Promise<string>,
): Promise<void> {
  button.disabled = true;
  out.textContent = 'working…';
  out.classList.remove('bad');
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  try {
    out.textContent = await work();
  } catch (e) {
    out.textContent = (e as Error).message;
    out.classList.add('bad');
  } finally {
    button.disabled = false;
  }
}

function figure(image: LevelImage, caption: string): HTMLElement {
  const fig = document.createElement('figure');
  fig.append(imageCanvas(image, caption));
  const cap = document.createElement('figcaption');
  cap.textContent = caption;
  fig.append(cap);
  return fig;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

function wireTextToImage(api: PageApi, manifest: SiteManifest): void {
  const input = $<HTMLInputElement>('caption');
  const check = $('caption-check');
  const button = $<HTMLButtonElement>('t2i-run');
  const examples = $('caption-examples');
  for (const caption of manifest.exampleCaptions) {
    const option = document.createElement('option');
    option.value = caption;
    examples.append(option);
  }
  input.value = manifest.exampleCaptions[0] ?? 'dark green eight on bright cyan';
  const recheck = () => {
    const verdict = checkCaptionDraft(input.value);
    check.textContent = verdict.message;
    check.className = `message ${verdict.ok ? 'good' : verdict.complete ? 'bad' : ''}`;
    input.setAttribute('aria-invalid', String(!verdict.ok && verdict.complete));
    return verdict.ok;
  };
  input.addEventListener('input', recheck);
  recheck();
  const grid = $('t2i-grid');
  const run = () => {
    if (!recheck()) {
      grid.replaceChildren();
      return;
    }
    void busy(button, $('t2i-time'), async () => {
      const r = await api.textToImage(input.value, controlOptions());
      grid.replaceChildren(...r.images.map((image, i) => figure(image, `${r.caption} (${i + 1})`)));
      return `${r.images.length} images in ${seconds(r.ms)} (${api.backend} backend)`;
    });
  };
  button.addEventListener('click', run);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') run();
  });
  button.disabled = false;
}

function colourSelect(id: string, manifest: SiteManifest, chosen: string): HTMLSelectElement {
  const select = $<HTMLSelectElement>(id);
  for (const c of manifest.palette) {
    const option = document.createElement('option');
    option.value = c.name;
    option.textContent = c.name;
    option.style.background = `rgb(${c.rgb.map((l) => l * 85).join(',')})`;
    option.style.color = c.rgb.reduce((s, l) => s + l, 0) >= 5 ? '#000' : '#fff';
    select.append(option);
  }
  select.value = chosen;
  return select;
}

async function wireImageToText(api: PageApi, manifest: SiteManifest): Promise<void> {
  const fg = colourSelect('fg', manifest, 'plain white');
  const bg = colourSelect('bg', manifest, 'plain black');
  const rgbOf = (name: string) => manifest.palette.find((c) => c.name === name)!.rgb;
  const pen = $<HTMLSelectElement>('pen');
  const pad = new DrawingPad(
    $<HTMLCanvasElement>('draw'),
    () => ({ fg: rgbOf(fg.value), bg: rgbOf(bg.value), pen: Number(pen.value) }),
    () => undefined,
  );
  bg.addEventListener('change', () => pad.clear());
  $('clear').addEventListener('click', () => pad.clear());
  const button = $<HTMLButtonElement>('i2t-run');
  const candidates = $('i2t-candidates');
  button.addEventListener('click', () => {
    void busy(button, $('i2t-time'), async () => {
      const levels = Array.from(pad.levels);
      const nested: LevelImage = Array.from({ length: 28 }, (_, y) =>
        Array.from({ length: 28 }, (_, x) => levels.slice((y * 28 + x) * 3, (y * 28 + x) * 3 + 3)),
      );
      const r = await api.imageToText(nested, controlOptions());
      $('i2t-caption').textContent = r.caption;
      candidates.replaceChildren(
        ...r.candidates.map((c) => {
          const li = document.createElement('li');
          li.textContent = `${c.caption}: score ${c.score.toFixed(2)}, ${(100 * c.probability).toFixed(1)}%`;
          return li;
        }),
      );
      return `read in ${seconds(r.ms)} (${api.backend} backend)`;
    });
  });
  button.disabled = false;
  if (manifest.testImages !== null) await addTestImages(manifest.testImages.file, pad);
}

async function addTestImages(file: string, pad: DrawingPad): Promise<void> {
  const images = JSON.parse(new TextDecoder().decode(await fetchBytes(file))) as TestImage[];
  const box = $('test-images');
  images.forEach((image, i) => {
    const levels = Uint8Array.from(image.levels, (ch) => ch.charCodeAt(0) - 48);
    if (levels.length !== IMAGE_VALUES) throw new Error(`${file}: image ${i} is not 28x28x3`);
    const button = document.createElement('button');
    button.type = 'button';
    button.title = `test image ${i + 1}: ${image.caption}`;
    button.setAttribute('aria-label', `test image ${i + 1}: ${image.caption}`);
    button.dataset.caption = image.caption;
    button.append(imageCanvas(levels, image.caption));
    button.addEventListener('click', () => pad.load(levels));
    box.append(button);
  });
}

function wireUnconditional(api: PageApi): void {
  const button = $<HTMLButtonElement>('uncond-run');
  const grid = $('uncond-grid');
  button.addEventListener('click', () => {
    void busy(button, $('uncond-time'), async () => {
      const { seed, temperature, rerank } = controlOptions();
      const r = await api.unconditional(9, { seed, temperature, rerank });
      grid.replaceChildren(...r.images.map((image, i) => figure(image, r.captions[i]!)));
      return `${r.images.length} pairs in ${seconds(r.ms)} (${api.backend} backend)`;
    });
  });
  button.disabled = false;
}

function showProvenance(manifest: SiteManifest): void {
  const c = manifest.checkpoint;
  $('provenance').textContent =
    `Model: ${c.source} (step ${c.step}, ${c.gptConfig.nLayer} layers, d=${c.gptConfig.nEmbd}, ` +
    `sha256 ${c.sha256.slice(0, 12)}), tokenizer sha256 ${manifest.tokenizer.sha256.slice(0, 12)}; ` +
    `built ${manifest.date} from commit ${manifest.commit ?? 'unknown'}.`;
}

async function main(): Promise<void> {
  const loading = loadModel();
  const api = pageApi(loading);
  window.mmgpt = api;
  const status = $('status');
  let loaded: Awaited<ReturnType<typeof loadModel>>;
  try {
    loaded = await loading;
  } catch (e) {
    status.textContent = 'The model did not load.';
    const error = $('error');
    error.textContent =
      `The model could not be loaded: ${(e as Error).message}\n` +
      `The page needs ${SITE_FILES.manifest}, ${SITE_FILES.checkpoint} and ${SITE_FILES.tokenizer} ` +
      `beside index.html, as mmgpt site writes them; write the folder again.`;
    error.hidden = false;
    return;
  }
  const { manifest, notes } = loaded;
  if (notes.length > 0) {
    const notice = $('notice');
    notice.textContent = `Note: ${notes.join('; ')}.`;
    notice.hidden = false;
  }
  status.textContent = `Ready: the model runs in this page on the ${api.backend} backend.`;
  showProvenance(manifest);
  wireTextToImage(api, manifest);
  wireUnconditional(api);
  await wireImageToText(api, manifest);
}

window.addEventListener('unhandledrejection', (e) => {
  const error = $('error');
  error.textContent = `Unexpected error: ${(e.reason as Error)?.message ?? String(e.reason)}`;
  error.hidden = false;
});

if (document.readyState === 'loading')
  document.addEventListener('DOMContentLoaded', () => void main());
else void main();
