// The mmgpt library, one namespace per stage of the pipeline (data -> vqvae -> gpt -> sampling
// -> eval -> viz), then the pipeline itself; the CLI (src/cli.ts) and the notebooks are clients
// of these. The notebooks import only this file:
//
//   import { data, engine, pipeline } from '../dist/src';
//   const { trainPipeline } = pipeline;

export * as paths from './paths';
export * as engine from './engine';
export * as nn from './nn';
export * as data from './data';
export * as vqvae from './vqvae';
export * as gpt from './gpt/model';
export * as training from './gpt/train';
export * as checkpoint from './gpt/checkpoint';
export * as gpt2Export from './gpt/export';
export * as sampling from './sampling';
/** The named sampling settings per mode: `default` and `original` (the original rules). */
export * as samplingPresets from './sampling/presets';
export * as classifier from './eval/classifier';
export * as metrics from './eval/metrics';
export * as report from './eval/report';
/** Evaluating a run: the judge's scores of every mode, the speed measurements. */
export * as evaluation from './eval';
/** A trained run on disk: finding its checkpoint, loading it with its tokenizer. */
export * as runs from './eval/run';
/** PNG pictures: image grids with captions, encoding and decoding. */
export * as png from './viz/png';
/** Line charts drawn without a browser (the training curve of `mmgpt train`). */
export * as plot from './viz/plot';
/** Interactive plotly figures, in a notebook or as standalone HTML; the live training plot. */
export * as plotly from './viz/plotly';
/** Saving figures to the figures folder as PNG (headless Chromium) and HTML. */
export * as figures from './viz/export';

/** Named runs, tokenizer recipes, training a run, its grids and report, the main job. */
export * as pipeline from './pipeline';
