// The page's model in a Web Worker: sampling takes seconds (a minute on the js backend), and the
// page stays responsive while the worker samples. One bundle runs on both sides: the page starts
// `new Worker(<the bundle's URL>)`, and in the worker (no document) page.ts calls `serveModel`.
// Calls run one at a time in the order they came; each reply carries the time the call took in
// the worker (`ms`: the sampling alone, not the messages).

/// <reference lib="dom" />

import { getBackend } from '../engine/registry';
import {
  siteImageToText,
  siteTextToImage,
  siteUnconditional,
  type CaptionCandidate,
  type LevelImage,
  type SiteSampleOptions,
} from './api';
import { loadSite, type LoadedSite } from './load';
import type { SiteManifest } from './manifest';

/** What the page asks of the worker. */
type Call =
  | { call: 'load'; backend: string | null }
  | { call: 'textToImage'; caption: string; options: SiteSampleOptions & { n?: number } }
  | { call: 'imageToText'; levels: LevelImage; options: SiteSampleOptions }
  | { call: 'unconditional'; n: number; options: SiteSampleOptions };

/** What each call resolves to. */
export interface Answers {
  load: { manifest: SiteManifest; notes: string[]; backend: string };
  textToImage: { caption: string; images: LevelImage[]; ms: number };
  imageToText: { caption: string; candidates: CaptionCandidate[]; ms: number };
  unconditional: { images: LevelImage[]; captions: string[]; ms: number };
}

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; message: string };

/** The part of a worker's global scope used here. */
interface WorkerScope {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
}

function timed<T extends object>(run: () => T): T & { ms: number } {
  const t0 = performance.now();
  const result = run();
  return { ...result, ms: performance.now() - t0 };
}

/** The worker's side: answers the page's calls (see the file header). */
export function serveModel(scope: WorkerScope): void {
  let loading: Promise<LoadedSite> | null = null;
  const answer = async (request: Call): Promise<unknown> => {
    if (request.call === 'load') {
      loading = loadSite(request.backend);
      const { manifest, notes } = await loading;
      return { manifest, notes, backend: getBackend().name };
    }
    if (loading === null) throw new Error('the model is not loaded');
    const { model } = await loading;
    switch (request.call) {
      case 'textToImage': {
        const { options } = request;
        const r = timed(() => siteTextToImage(model, request.caption, options.n ?? 9, options));
        return { caption: r.caption, images: r.images, ms: r.ms };
      }
      case 'imageToText': {
        const r = timed(() => siteImageToText(model, request.levels, request.options));
        return { caption: r.caption, candidates: r.candidates, ms: r.ms };
      }
      case 'unconditional': {
        const r = timed(() => siteUnconditional(model, request.n, request.options));
        return { images: r.images, captions: r.captions, ms: r.ms };
      }
    }
  };
  let queue: Promise<void> = Promise.resolve();
  scope.onmessage = (e) => {
    const { id, ...request } = e.data as Call & { id: number };
    queue = queue.then(async () => {
      let reply: Reply;
      try {
        reply = { id, ok: true, value: await answer(request as Call) };
      } catch (err) {
        reply = { id, ok: false, message: (err as Error).message };
      }
      scope.postMessage(reply);
    });
  };
}

/** The page's side: each call to the worker a promise of its answer. */
export class ModelWorker {
  private nextId = 0;
  private readonly pending = new Map<
    number,
    { resolve(v: unknown): void; reject(e: Error): void }
  >();

  constructor(private readonly worker: Worker) {
    worker.onmessage = (e: MessageEvent) => {
      const reply = e.data as Reply;
      const waiting = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (reply.ok) waiting?.resolve(reply.value);
      else waiting?.reject(new Error(reply.message));
    };
    worker.onerror = (e: ErrorEvent) => {
      const error = new Error(`the page's worker failed: ${e.message || 'it did not start'}`);
      for (const waiting of this.pending.values()) waiting.reject(error);
      this.pending.clear();
    };
  }

  call<K extends Call['call']>(request: Extract<Call, { call: K }>): Promise<Answers[K]> {
    const id = this.nextId++;
    return new Promise<Answers[K]>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...request, id });
    });
  }
}
