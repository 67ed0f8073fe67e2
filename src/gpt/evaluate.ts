// The GPT's test NLL: the mean negative log-likelihood per predicted token (nats) over every
// item of a set in both orders, with no gradients and dropout off.

import * as F from '../engine/ops';
import { tidy, noGrad } from '../engine/tensor';
import type { Vocab } from '../data/vocab';
import type { SequenceSource } from '../data/sequences';
import { SEQUENCE_LENGTH, TARGETS_PER_SEQUENCE, evaluationBatches } from '../data/sequences';
import type { GPT } from './model';

/** Mean NLL per predicted token over every test item in both orders. */
export function evaluateNll(
  model: GPT,
  source: SequenceSource,
  vocab: Vocab,
  batchSize = 500,
): number {
  const wasTraining = model.training;
  model.eval();
  let total = 0;
  let count = 0;
  noGrad(() => {
    for (const batch of evaluationBatches(source, vocab, batchSize)) {
      total += tidy(() => {
        const tokens = F.tensor(batch.tokens, [batch.size, SEQUENCE_LENGTH], 'int32');
        return model.loss(tokens).item() * batch.size * TARGETS_PER_SEQUENCE;
      });
      count += batch.size * TARGETS_PER_SEQUENCE;
    }
  });
  model.train(wasTraining);
  return total / count;
}
