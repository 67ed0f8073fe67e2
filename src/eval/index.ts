// The evaluation stage of mmgpt: the attribute classifier (classifier.ts), the metrics and
// targets (metrics.ts, confusions.ts), one mode scored on labelled items (modes.ts), the whole
// evaluation (evaluation.ts, settings.ts), its report (report.ts) and a trained run on disk
// (run.ts).

export * from './classifier';
export * from './metrics';
export * from './confusions';
export * from './modes';
export * from './settings';
export * from './evaluation';
export * from './report';
export * from './run';
