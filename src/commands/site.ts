// `mmgpt site [--checkpoint P] --out DIR [--serve [--port N]]`: the static folder of the page
// that runs the model in a browser (src/site/build.ts), and with --serve a local server for a look
// at it (src/site/serve.ts). Thin: parses flags, calls src/site/, prints.

import * as path from 'path';
import { writeSite } from '../site/build';
import { serveSite } from '../site/serve';
import { HELP_FLAG, commandFlags } from './args';
import type { CommandSpec } from './args';

export const SITE_COMMAND: CommandSpec = {
  name: 'site',
  help: `mmgpt site [--checkpoint PATH] --out DIR [--serve [--port N]]
  Writes a static web page that runs the model in the browser: DIR/index.html, mmgpt.js (one
  bundle of src/, built with esbuild), checkpoint.safetensors and vqvae.safetensors (the model
  and its tokenizer), mmgpt_kernels.wasm when native/build-wasm/ has it, test-images.json and
  manifest.json (the run's provenance). Any static web server can serve DIR.
  --checkpoint PATH   a run directory or checkpoint file (default weights/best)
  --serve             then serve DIR on 127.0.0.1 and print the address (Ctrl-C stops)
  --port N            the port for --serve (default 8080; 0 = any free port)`,
  flags: {
    checkpoint: { type: 'string' },
    out: { type: 'string' },
    serve: { type: 'boolean' },
    port: { type: 'string' },
    ...HELP_FLAG,
  },
};

export async function siteCommand(argv: string[]): Promise<void> {
  const flags = commandFlags(SITE_COMMAND, argv);
  if (flags === null) return;
  const out = flags.required('out', 'the directory to write the page to');
  const serve = flags.boolean('serve');
  flags.refuseUnless(serve, ['port'], () => 'is only for --serve');
  const port = flags.int('port', { min: 0, max: 65535 }, 8080);
  const { dir, files, manifest } = await writeSite({
    checkpoint: flags.string('checkpoint'),
    out,
    log: (line) => console.error(line),
  });
  const total = files.reduce((n, f) => n + f.bytes, 0);
  for (const f of files)
    console.log(`  ${f.file.padEnd(24)} ${(f.bytes / 1024).toFixed(0).padStart(6)} KiB`);
  console.log(
    `site: wrote ${files.length} files (${(total / 2 ** 20).toFixed(1)} MiB) to ` +
      `${path.relative(process.cwd(), dir) || dir} from ${manifest.checkpoint.source}` +
      (manifest.wasm === null ? ' (no .wasm: the page runs the js backend)' : ''),
  );
  if (!serve) return;
  const { url } = await serveSite(dir, port);
  console.log(`site: serving ${dir} at ${url} (Ctrl-C stops)`);
  await new Promise<never>(() => undefined);
}
