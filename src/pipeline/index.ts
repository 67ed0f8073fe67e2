// The pipeline stage of mmgpt: named runs (presets), tokenizer recipes and the token cache,
// training a run, its sample grids and evaluation report, exporting it, and the main job
// (runPipeline). The commands and the notebooks call these.

export * from './recipes';
export * from './presets';
export * from './experiments';
export * from './tokenizers';
export * from './tokens';
export * from './runs';
export * from './train';
export * from './figures';
export * from './evaluate';
export * from './export';
export * from './demo';
export * from './pipeline';
