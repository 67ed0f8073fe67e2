// The page of `mmgpt site`: plain DOM controls for the three modes over the model, which runs in
// a Web Worker started from this same bundle (worker.ts; the worker loads manifest.json, the
// backend and the weights: load.ts). `window.mmgpt` is the same model for scripts: ready,
// textToImage, imageToText, unconditional, backend (README, "The model on a web page").
// `?backend=js` or `?backend=wasm` in the address asks for one backend (the benchmark compares
// them in one browser).

/// <reference lib="dom" />
// The DOM's types for this file: the rest of src/ is Node code and has no DOM of its own.

import { IMAGE_VALUES } from '../data/images';
import type { CaptionCandidate, LevelImage, SiteSampleOptions } from './api';
import { checkCaptionDraft } from './caption';
import { DrawingPad, imageCanvas } from './canvas';
import { fetchBytes } from './load';
import { SITE_FILES, type SiteManifest, type TestImage } from './manifest';
import { ModelWorker, serveModel, type Answers } from './worker';

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

/** window.mmgpt over the worker's model (each call waits for it to load). */
function pageApi(worker: ModelWorker, loading: Promise<Answers['load']>): PageApi {
  const api: PageApi = {
    ready: loading.then(() => undefined),
    backend: 'loading',
    manifest: null,
    async textToImage(caption, options = {}) {
      await loading;
      return worker.call({ call: 'textToImage', caption, options });
    },
    async imageToText(levels, options = {}) {
      await loading;
      return worker.call({ call: 'imageToText', levels, options });
    },
    async unconditional(n = 9, options = {}) {
      await loading;
      return worker.call({ call: 'unconditional', n, options });
    },
  };
  api.ready.catch(() => undefined); // the page shows the error; a script awaiting ready gets it
  loading.then(
    ({ manifest, backend }) => {
      api.backend = backend;
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
    `Model: ${c.source} (${c.preset !== null ? `preset ${c.preset}, ` : ''}step ${c.step}, ${c.gptConfig.nLayer} layers, d=${c.gptConfig.nEmbd}, ` +
    `sha256 ${c.sha256.slice(0, 12)}), tokenizer sha256 ${manifest.tokenizer.sha256.slice(0, 12)}; ` +
    `built ${manifest.date} from commit ${manifest.commit ?? 'unknown'}.`;
}

async function main(bundleUrl: string): Promise<void> {
  const worker = new ModelWorker(new Worker(bundleUrl));
  const backend = new URLSearchParams(location.search).get('backend');
  const loading = worker.call({ call: 'load', backend });
  const api = pageApi(worker, loading);
  window.mmgpt = api;
  const status = $('status');
  let loaded: Answers['load'];
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

// The page, or (without a document) the page's worker.
if (typeof document === 'undefined') {
  serveModel(self as unknown as Parameters<typeof serveModel>[0]);
} else {
  // The bundle's own address, for the worker: only known while this script first runs.
  const bundleUrl = (document.currentScript as HTMLScriptElement | null)?.src ?? SITE_FILES.bundle;
  window.addEventListener('unhandledrejection', (e) => {
    const error = $('error');
    error.textContent = `Unexpected error: ${(e.reason as Error)?.message ?? String(e.reason)}`;
    error.hidden = false;
  });
  if (document.readyState === 'loading')
    document.addEventListener('DOMContentLoaded', () => void main(bundleUrl));
  else void main(bundleUrl);
}
