// The sampling stage of mmgpt: the seed's rules as token masks (rules.ts) and the sampler with
// its KV-cached prefill/decode, top-k/top-p, classifier-free guidance and modes (sampler.ts), and
// the shifted views of an image that image -> text reads digits with (views.ts).

export * from './rules';
export * from './sampler';
export * from './views';
