#!/usr/bin/env node
// The summary of one gpu-check.sh run: reads the steps' outputs in WORKDIR (steps.tsv, device.json,
// tests.log, bench.log, graph-step.log, sampling.log, eval/report.json, runs/<preset>/summary.json), writes one
// JSON file and prints its headline numbers as a table. Plain Node (no build), since it runs on
// the GPU host beside the carried dist/; a step that failed or left no output gives nulls, never
// a crash, so the summary always comes back.
//
//   node native/cuda/gpu-summary.js WORKDIR PRESET OUT.json
//
// Ratios are the peer's ms (or tokens/s) over ours, as in `mmgpt bench`: above 1, ours is faster.

'use strict';

const fs = require('fs');
const path = require('path');

function readText(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function readJson(file) {
  const text = readText(file);
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** The last line of a log that parses as a JSON object (`--json` prints the report last). */
function lastJsonLine(file) {
  const text = readText(file);
  if (text === null) return null;
  const lines = text.split('\n').filter((l) => l.startsWith('{'));
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      return JSON.parse(lines[i]);
    } catch {
      // a progress line that happens to start with '{': keep looking
    }
  }
  return null;
}

const ratio = (peer, ours) => (peer != null && ours != null && ours > 0 ? peer / ours : null);
const round = (x, digits) => (x == null ? null : Number(x.toFixed(digits)));

/** {name: {exitStatus, seconds}} in the order the steps ran. */
function stepTable(work) {
  const steps = {};
  for (const line of (readText(path.join(work, 'steps.tsv')) || '').split('\n')) {
    const [name, rc, ms] = line.split('\t');
    if (name) steps[name] = { exitStatus: Number(rc), seconds: round(Number(ms) / 1000, 1) };
  }
  return steps;
}

/** The TAP summary counts of the kernel tests, and the names of those that failed. */
function testCounts(work) {
  const tap = readText(path.join(work, 'tests.log'));
  if (tap === null) return null;
  const count = (key) => {
    const m = tap.match(new RegExp(`^# ${key} (\\d+)$`, 'm'));
    return m ? Number(m[1]) : null;
  };
  const failed = [...tap.matchAll(/^\s*not ok \d+ - (.*)$/gm)].map((m) => m[1]);
  return { tests: count('tests'), pass: count('pass'), fail: count('fail'), skipped: count('skipped'), failed };
}

function device(work) {
  const info = readJson(path.join(work, 'device.json'));
  if (info === null) return null;
  const cuda = info.cuda && !('error' in info.cuda) ? info.cuda : null;
  return {
    gpu: info.nvidiaSmi,
    cuda: cuda ?? { error: info.cuda ? info.cuda.error : 'unknown' },
    cpu: `${info.cpuModel}, ${info.cores} cores`,
    node: info.node,
  };
}

/** ms/step of ours and PyTorch eager / torch.compile at each batch, with the ratios. */
function trainingStep(work) {
  const report = lastJsonLine(path.join(work, 'bench.log'));
  if (report === null) return null;
  const ours = Object.entries(report.backend_ms_per_step || {})[0] || [null, {}];
  const torchDevice = report.torch_info ? report.torch_info.device : null;
  const eager = report.torch_eager || {};
  const compiled = (report.torch_compile && torchDevice && report.torch_compile[torchDevice]) || {};
  const byBatch = {};
  for (const [batch, ms] of Object.entries(ours[1])) {
    const e = eager[batch] ?? null;
    const c = compiled[batch] ?? null;
    byBatch[batch] = {
      oursMs: round(ms, 3),
      torchEagerMs: round(e, 3),
      torchCompileMs: round(c, 3),
      eagerOverOurs: round(ratio(e, ms), 2),
      compileOverOurs: round(ratio(c, ms), 2),
    };
  }
  return {
    backend: ours[0],
    torch: report.torch_info ? `${report.torch_info.version} on ${torchDevice}` : null,
    byBatch,
    forwardB1Ms: report.forward_b1_ms || {},
    skipped: report.skipped || [],
  };
}

/** dist/bench/graph_step.js: eager and graph-replayed ms/step per batch, and their ratio. */
function graphStep(work) {
  const report = lastJsonLine(path.join(work, 'graph-step.log'));
  if (report === null || !report.graphStep) return null;
  const g = report.graphStep;
  const byBatch = {};
  for (const r of g.rows || [])
    byBatch[r.batch] = {
      eagerMs: round(r.eagerMs, 3),
      graphMs: round(r.graphMs, 3),
      eagerOverGraph: round(r.eagerOverGraph, 2),
      graphNodes: r.graphNodes,
    };
  return { backend: g.backend, unavailable: g.unavailable, byBatch };
}

/**
 * dist/bench/sampling.js (its last line): per batch, the unconditional decode's ms uncached,
 * KV-cached step by step and KV-cached as graph replays, with the speed-ups; 9 images from a
 * caption (guidance 1 and 3) step by step and with graphs.
 */
function decode(work) {
  const report = lastJsonLine(path.join(work, 'sampling.log'));
  if (report === null || !report.sampling) return null;
  const s = report.sampling;
  const byBatch = {};
  for (const r of s.decode || [])
    byBatch[r.batch] = {
      uncachedMs: round(r.uncachedMs, 2),
      cachedMs: round(r.cachedMs, 2),
      graphMs: round(r.graphMs, 2),
      cachedOverUncached: round(r.cachedOverUncached, 2),
      graphOverUncached: round(r.graphOverUncached, 2),
      cachedOverGraph: round(ratio(r.cachedMs, r.graphMs), 2),
    };
  const nineImages = {};
  for (const r of s.nineImages || [])
    nineImages[r.guidance] = {
      cachedMs: round(r.cachedMs, 2),
      graphMs: round(r.graphMs, 2),
      cachedOverGraph: round(ratio(r.cachedMs, r.graphMs), 2),
    };
  const g1 = nineImages[1];
  return {
    backend: s.backend,
    graphsUnavailable: s.graphs ? s.graphs.unavailable : null,
    graphNodes: s.graphs ? s.graphs.nodes : null,
    byBatch,
    nineImages,
    // The headline: 9 images, default guidance-free draw, the fastest path this run had.
    nineImagesMs: g1 ? (g1.graphMs ?? g1.cachedMs) : null,
  };
}

function evaluation(work, seconds) {
  const r = readJson(path.join(work, 'eval', 'report.json'));
  if (r === null) return { seconds, report: null };
  const part = (x, key) => (x && x[key] != null ? round(x[key], 4) : null);
  return {
    seconds,
    n: r.settings ? r.settings.n : null,
    backend: r.backend,
    reportSeconds: r.wallMs != null ? round(r.wallMs / 1000, 1) : null,
    textToImage: part(r.textToImage, 'all'),
    imageToTextExact: part(r.imageToText, 'exactMatch'),
    unconditionalAgreement: part(r.unconditional, 'agreement'),
    testNll: part(r.testNll, 'natsPerDim'),
  };
}

function pipeline(work, preset, seconds) {
  const s = readJson(path.join(work, 'runs', preset, 'summary.json'));
  if (s === null) return { preset, seconds, stages: null, totalSeconds: null, finalTestNll: null };
  const p = s.pipeline || {};
  return {
    preset,
    seconds,
    backend: s.backend,
    complete: s.complete,
    stages: (p.stages || []).map((x) => ({ stage: x.stage, seconds: round(x.seconds, 1) })),
    totalSeconds: round(p.totalSeconds, 1),
    finalTestNll: round(s.finalTestNll, 4),
  };
}

function table(summary) {
  const f = (x, digits = 2) => (x == null ? '-' : Number(x).toFixed(digits));
  const lines = [];
  const d = summary.device;
  lines.push(`device: ${d ? (d.gpu ?? 'no GPU') + '; ' + d.cpu : '-'}`);
  lines.push('', 'step       exit   seconds');
  for (const [name, s] of Object.entries(summary.steps))
    lines.push(`${name.padEnd(10)} ${String(s.exitStatus).padStart(4)}  ${f(s.seconds, 1).padStart(8)}`);
  const t = summary.tests;
  if (t) lines.push('', `kernel tests: ${t.pass ?? '-'} pass, ${t.fail ?? '-'} fail, ${t.skipped ?? '-'} skipped`);
  const ts = summary.trainingStep;
  lines.push('', `training step (${ts ? ts.backend : '-'} vs PyTorch ${ts && ts.torch ? ts.torch : '-'}), ms/step:`);
  lines.push('batch   ours   eager  compile   eager/ours  compile/ours');
  for (const [b, r] of Object.entries(ts ? ts.byBatch : {}))
    lines.push(
      `${b.padStart(5)} ${f(r.oursMs).padStart(6)} ${f(r.torchEagerMs).padStart(7)} ` +
        `${f(r.torchCompileMs).padStart(8)}   ${f(r.eagerOverOurs).padStart(10)}  ${f(r.compileOverOurs).padStart(12)}`,
    );
  const gs = summary.graphStep;
  lines.push('', `training step as a CUDA graph (${gs ? gs.backend : '-'}${gs && gs.unavailable ? ', ' + gs.unavailable : ''}), ms/step:`);
  lines.push('batch  eager  graph  eager/graph  nodes');
  for (const [b, r] of Object.entries(gs ? gs.byBatch : {}))
    lines.push(
      `${b.padStart(5)} ${f(r.eagerMs).padStart(6)} ${f(r.graphMs).padStart(6)}  ${f(r.eagerOverGraph).padStart(11)}  ${String(r.graphNodes ?? '-').padStart(5)}`,
    );
  const dc = summary.decode;
  lines.push(
    '',
    `decode, unconditional 57 tokens (${dc ? dc.backend : '-'}` +
      `${dc && dc.graphsUnavailable ? ', graphs unavailable: ' + dc.graphsUnavailable : ''}), ms:`,
  );
  lines.push('batch  uncached  cached  graphs  cached/uncached  graphs/uncached  cached/graphs');
  for (const [b, r] of Object.entries(dc ? dc.byBatch : {}))
    lines.push(
      `${b.padStart(5)} ${f(r.uncachedMs).padStart(9)} ${f(r.cachedMs).padStart(7)} ${f(r.graphMs).padStart(7)}` +
        `  ${f(r.cachedOverUncached).padStart(15)}  ${f(r.graphOverUncached).padStart(15)}  ${f(r.cachedOverGraph).padStart(13)}`,
    );
  for (const [g, r] of Object.entries(dc ? dc.nineImages : {}))
    lines.push(
      `9 images from a caption, guidance ${g}: ${f(r.cachedMs, 1)} ms cached, ${f(r.graphMs, 1)} ms with graphs`,
    );
  const e = summary.eval;
  lines.push(
    '',
    `eval --n ${e.n ?? '-'}: ${f(e.seconds, 1)} s; text->image ${f(e.textToImage, 3)}, ` +
      `image->text ${f(e.imageToTextExact, 3)}, unconditional ${f(e.unconditionalAgreement, 3)}, NLL ${f(e.testNll, 4)}`,
  );
  const p = summary.pipeline;
  lines.push(`pipeline ${p.preset}: ${f(p.seconds, 1)} s wall; final test NLL ${f(p.finalTestNll, 4)}`);
  for (const s of p.stages || []) lines.push(`  ${s.stage.padEnd(36)} ${f(s.seconds, 1).padStart(7)} s`);
  if (p.totalSeconds != null) lines.push(`  ${'total'.padEnd(36)} ${f(p.totalSeconds, 1).padStart(7)} s`);
  return lines.join('\n');
}

function main() {
  const [work, preset, outFile] = process.argv.slice(2);
  if (!work || !preset || !outFile) {
    console.error('usage: node native/cuda/gpu-summary.js WORKDIR PRESET OUT.json');
    process.exit(2);
  }
  const steps = stepTable(work);
  const seconds = (name) => (steps[name] ? steps[name].seconds : null);
  const summary = {
    format: 'mmgpt-gpu-check',
    dryRun: process.env.MMGPT_GPU_CHECK_DRY === '1',
    device: device(work),
    steps,
    tests: testCounts(work),
    trainingStep: trainingStep(work),
    graphStep: graphStep(work),
    decode: decode(work),
    eval: evaluation(work, seconds('eval')),
    pipeline: pipeline(work, preset, seconds('pipeline')),
  };
  fs.writeFileSync(outFile, JSON.stringify(summary, null, 1) + '\n');
  console.log(table(summary));
}

main();
