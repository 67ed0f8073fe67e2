// A local look at a site folder: a static file server on 127.0.0.1 (Node's http), with the MIME
// types the page needs (application/wasm, so that the browser compiles the .wasm as it streams).
// Only files inside the folder are served; anything else is 404. Not a production server: the
// folder is meant for any static host.

import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';

const MIME_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.safetensors': 'application/octet-stream',
  '.png': 'image/png',
  '.css': 'text/css; charset=utf-8',
};

/** The MIME type a file is served with. */
function mimeType(file: string): string {
  return MIME_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** The file under `dir` a request path names, or null (outside the folder, or no such file). */
function resolveRequest(dir: string, url: string): string | null {
  let pathname: string;
  try {
    pathname = decodeURIComponent(new URL(url, 'http://localhost').pathname);
  } catch {
    return null;
  }
  const file = path.resolve(
    dir,
    '.' + (pathname.endsWith('/') ? `${pathname}index.html` : pathname),
  );
  if (file !== dir && !file.startsWith(dir + path.sep)) return null;
  return fs.existsSync(file) && fs.statSync(file).isFile() ? file : null;
}

/** Serves `dir` on 127.0.0.1:`port` (0: any free port); resolves once listening. */
export function serveSite(
  dir: string,
  port = 0,
): Promise<{ server: http.Server; url: string; close(): Promise<void> }> {
  const root = path.resolve(dir);
  const server = http.createServer((req, res) => {
    const file =
      req.method === 'GET' || req.method === 'HEAD' ? resolveRequest(root, req.url ?? '/') : null;
    if (file === null) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('not found\n');
      return;
    }
    const size = fs.statSync(file).size;
    res.writeHead(200, {
      'content-type': mimeType(file),
      'content-length': size,
      'cache-control': 'no-cache',
    });
    if (req.method === 'HEAD') res.end();
    else fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : port;
      resolve({
        server,
        url: `http://127.0.0.1:${bound}/`,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
  });
}
