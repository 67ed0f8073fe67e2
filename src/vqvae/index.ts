// The image tokenizer: the VQ-VAE model, its training, evaluation and checkpoints.

export * from './model';
export * from './train';
