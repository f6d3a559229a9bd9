// Serves a built browser demo (examples/browser/dist, or --dir DIR) on 127.0.0.1 and prints the URL.
//   npm run demo:browser [-- --port 8080]
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.bin': 'application/octet-stream', '.wasm': 'application/wasm', '.map': 'application/json',
};

/** A static file server for `dir` (no directory listing, nothing outside `dir`). Resolves once listening. */
export function serveDir(dir: string, port = 0): Promise<http.Server> {
  const root = path.resolve(dir);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const file = path.resolve(root, `.${decodeURIComponent(url.pathname === '/' ? '/index.html' : url.pathname)}`);
    if (!file.startsWith(root + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (require.main === module) {
  const dir = path.resolve(argValue('--dir') ?? path.join(__dirname, '../examples/browser/dist'));
  if (!fs.existsSync(path.join(dir, 'index.html'))) {
    console.error(`${dir} has no index.html: run npm run demo:browser:build first`);
    process.exit(1);
  }
  serveDir(dir, Number(argValue('--port') ?? 8080)).then((server) => {
    const { port } = server.address() as AddressInfo;
    console.log(`CollectiveKV browser demo: http://127.0.0.1:${port}/  (add ?backend=wasm or ?backend=cpu to force a backend; Ctrl+C stops)`);
  }, (e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
