// The data stage of mmgpt: MNIST (verified IDX files), the palette and legibility rule,
// Coloured MNIST v2 with its cache and export, the vocabulary and captions, and the two
// sequence orders with their batch builders. Import from here: `import { ... } from './data'`.

export * from './mnist';
export * from './palette';
export * from './coloured';
export * from './vocab';
export * from './sequences';
