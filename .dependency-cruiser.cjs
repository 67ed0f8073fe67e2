// dependency-cruiser: the layers of src/ and no import cycles (npm run lint).
// Data flows one way through the pipeline's stages; a module imports only from its own layer or
// those to its left:
//   paths <- engine <- nn <- data <- vqvae | gpt <- sampling <- eval <- viz <- pipeline | perf
//   <- site <- commands <- cli.ts, index.ts
// vqvae and gpt share a layer and do not import each other; nor do pipeline and perf.
// bench/, test/ and the notebooks are clients: they may import src/, never the other way.

const LAYERS = [
  ['paths\\.ts'],
  ['engine/'],
  ['nn/'],
  ['data/'],
  ['vqvae/', 'gpt/'],
  ['sampling/'],
  ['eval/'],
  ['viz/'],
  ['pipeline/', 'perf/'],
  ['site/'],
  ['commands/'],
  ['cli\\.ts', 'index\\.ts'],
];

const src = (parts) => `^src/(${parts.join('|')})`;

const layerRules = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `layer-${layer.join('-').replace(/[\\/.]/g, '')}`,
  comment: `src/{${layer.join(',')}} imports only from its layer or those to its left`,
  severity: 'error',
  from: { path: src(layer) },
  to: { path: src(LAYERS.slice(i + 1).flat()) },
}));

const siblingRules = LAYERS.filter((layer) => layer.length === 2 && !layer[0].endsWith('.ts')).map(
  ([a, b]) => ({
    name: `siblings-${a}${b}`.replace(/\//g, ''),
    comment: `src/${a} and src/${b} share a layer and do not import each other`,
    severity: 'error',
    from: { path: `^src/(${a}|${b})` },
    to: { path: `^src/(${a}|${b})`, pathNot: `^src/$1` },
  }),
);

module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      comment: 'no import cycle anywhere',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'src-not-clients',
      comment: 'src/ never imports bench/, test/ or the notebooks',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(bench|test|notebooks)/' },
    },
    ...layerRules,
    ...siblingRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules|native)/' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
