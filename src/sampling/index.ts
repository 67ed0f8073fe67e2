// The sampling stage of mmgpt: the seed's rules as token masks (rules.ts) and the sampler with
// its KV-cached prefill/decode, top-k/top-p, classifier-free guidance and modes (sampler.ts).

export * from './rules';
export * from './sampler';
