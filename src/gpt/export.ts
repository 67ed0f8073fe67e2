// Export in the GPT-2 layout, so that Python tools (HF transformers' GPT2LMHeadModel, or a
// dozen lines of numpy) can load the transformer.
//
// Files: config.json (GPT-2 keys), model.safetensors (wte, wpe, h.N.{ln_1, attn.c_attn,
// attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj}, ln_f, lm_head), vqvae.safetensors (the tokenizer as
// trained), vocab.json, test_tokens.safetensors (`order1`, `order2`: int32 [N, 58], the test set
// in both orders) and metrics.json with the test NLL that mmgpt computes on exactly those tokens.
// Our Linear weights are already [in, out], GPT-2's Conv1D layout, so they are copied as they
// are; lm_head is an nn.Linear in GPT-2 ([out, in]) and is transposed.

import * as fs from 'fs';
import * as path from 'path';
import { saveSafetensors, atomicWriteFile, makeDirectory } from '../nn/safetensors';
import type { NamedArray } from '../nn/safetensors';
import type { Vocab } from '../data/vocab';
import type { SequenceSource } from '../data/sequences';
import { SEQUENCE_LENGTH, TEXT_TO_IMAGE, IMAGE_TO_TEXT, writeSequence } from '../data/sequences';
import type { GPT } from './model';
import { evaluateNll } from './evaluate';

export interface Gpt2Config {
  model_type: 'gpt2';
  architectures: string[];
  n_layer: number;
  n_embd: number;
  n_head: number;
  n_inner: number;
  vocab_size: number;
  n_positions: number;
  n_ctx: number;
  layer_norm_epsilon: number;
  activation_function: 'gelu_new';
  tie_word_embeddings: boolean;
  scale_attn_weights: boolean;
  bos_token_id: number;
  eos_token_id: number;
}

export function gpt2Config(model: GPT, vocab: Vocab): Gpt2Config {
  const c = model.config;
  return {
    model_type: 'gpt2',
    architectures: ['GPT2LMHeadModel'],
    n_layer: c.nLayer,
    n_embd: c.nEmbd,
    n_head: c.nHead,
    n_inner: 4 * c.nEmbd,
    vocab_size: c.vocabSize,
    n_positions: c.blockSize,
    n_ctx: c.blockSize,
    layer_norm_epsilon: 1e-5,
    activation_function: 'gelu_new',
    tie_word_embeddings: false,
    scale_attn_weights: true,
    bos_token_id: vocab.bos,
    eos_token_id: vocab.bos,
  };
}

/** The model's weights under GPT-2 names and layouts. */
export function gpt2StateDict(model: GPT): Record<string, NamedArray> {
  const out: Record<string, NamedArray> = {};
  for (const [name, t] of Object.entries(model.stateDict())) {
    if (name === 'lm_head.weight') {
      const [d, v] = t.shape;
      const transposed = new Float32Array(d * v); // [v, d]
      for (let i = 0; i < d; i++)
        for (let j = 0; j < v; j++) transposed[j * d + i] = t.data[i * v + j];
      out[name] = { dtype: 'F32', shape: [v, d], data: transposed };
    } else {
      out[name] = { dtype: 'F32', shape: t.shape, data: t.data };
    }
  }
  return out;
}

/** Both orders of every test item: order1 and order2, int32 [N, 58]. */
export function testTokens(
  source: SequenceSource,
  vocab: Vocab,
): { order1: Int32Array; order2: Int32Array } {
  const order1 = new Int32Array(source.count * SEQUENCE_LENGTH);
  const order2 = new Int32Array(source.count * SEQUENCE_LENGTH);
  for (let i = 0; i < source.count; i++) {
    writeSequence(order1, i * SEQUENCE_LENGTH, TEXT_TO_IMAGE, source, i, vocab);
    writeSequence(order2, i * SEQUENCE_LENGTH, IMAGE_TO_TEXT, source, i, vocab);
  }
  return { order1, order2 };
}

export interface ExportOptions {
  model: GPT;
  vocab: Vocab;
  test: SequenceSource;
  outDir: string;
  /** The trained tokenizer's safetensors file, copied as vqvae.safetensors (optional). */
  vqvaePath?: string;
  /** Provenance written into metrics.json (checkpoint path and hash, etc.). */
  provenance?: Record<string, unknown>;
}

export function exportGpt2(opts: ExportOptions): { testNll: number; files: string[] } {
  const { model, vocab, test, outDir } = opts;
  makeDirectory(outDir);
  const files: string[] = [];
  const write = (name: string, data: string) => {
    atomicWriteFile(path.join(outDir, name), data);
    files.push(name);
  };
  write('config.json', JSON.stringify(gpt2Config(model, vocab), null, 2) + '\n');
  saveSafetensors(path.join(outDir, 'model.safetensors'), gpt2StateDict(model), {
    format: 'pt',
    source: 'mmgpt',
  });
  files.push('model.safetensors');
  if (opts.vqvaePath) {
    atomicWriteFile(path.join(outDir, 'vqvae.safetensors'), fs.readFileSync(opts.vqvaePath));
    files.push('vqvae.safetensors');
  }
  write('vocab.json', JSON.stringify(vocab.toJSON(), null, 2) + '\n');
  const { order1, order2 } = testTokens(test, vocab);
  saveSafetensors(path.join(outDir, 'test_tokens.safetensors'), {
    order1: { dtype: 'I32', shape: [test.count, SEQUENCE_LENGTH], data: order1 },
    order2: { dtype: 'I32', shape: [test.count, SEQUENCE_LENGTH], data: order2 },
  });
  files.push('test_tokens.safetensors');
  const testNll = evaluateNll(model, test, vocab);
  write(
    'metrics.json',
    JSON.stringify(
      {
        test_nll: testNll,
        test_nll_definition:
          'mean over both orders and all N items of -log p(token t | tokens < t) for t = 1..57 (57 targets per 58-token sequence), natural log',
        n_items: test.count,
        ...opts.provenance,
      },
      null,
      2,
    ) + '\n',
  );
  return { testNll, files };
}
