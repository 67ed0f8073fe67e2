// The sampling stage of mmgpt: the original rules as token masks (rules.ts), the sampler with its
// top-k/top-p and classifier-free guidance (sampler.ts) over the KV-cached model steps
// (streams.ts), the three modes (modes.ts), self-reranking (rerank.ts, score.ts) and the dataset's
// searches as rerank stages (searches.ts, views.ts), and the sampling settings with their
// presets (settings.ts, presets.ts).

export * from './rules';
export * from './sample';
export * from './streams';
export * from './sampler';
export * from './modes';
export * from './score';
export * from './rerank';
export * from './searches';
export * from './views';
export * from './settings';
export * from './presets';
