// The mmgpt library, one namespace per stage of the pipeline (data -> vqvae -> gpt -> sampling
// -> eval); the CLI (src/cli.ts) and the notebooks are clients of these.

export * as engine from './engine';
export * as nn from './nn';
export * as data from './data';
export * as vqvae from './vqvae';
export * as gpt from './gpt/model';
export * as training from './gpt/train';
export * as checkpoint from './gpt/checkpoint';
export * as gpt2Export from './gpt/export';
export * as sampling from './sampling';
export * as classifier from './eval/classifier';
export * as metrics from './eval/metrics';
export * as report from './eval/report';
