// `collectivekv serve`: where the token comes from, the history log flag, and start-up failures
// (one line, no stack, exit 1; usage errors exit 2).
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useBackend } from '../../util/backends';
import { buildSasrec } from '../../../src/zoo/sequential/sasrec';
import { runServeCommand, SERVE_USAGE } from '../../../src/app/serve/command';
import { saveSasrecModel } from '../../../src/app/serve/modelFiles';
import type { RunningServer } from '../../../src/app/serve/server';

let dir: string;
let modelDir: string;

beforeAll(async () => {
  await useBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'ckv-serve-cmd-'));
  modelDir = join(dir, 'model');
  const sasrec = buildSasrec({ numItems: 40, maxLength: 16, hiddenDim: 16, numBlocks: 1, numHeads: 2, dropout: 0, seed: 3,
    attention: 'collectivekv', collective: { poolSize: 16, userDim: 1 } });
  await saveSasrecModel(sasrec, modelDir);
  sasrec.model.dispose();
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: Promise<number>;
  server: RunningServer;
  lines: string[];
  errors: string[];
  stop(): Promise<number>;
}

/** Starts the command and waits until it listens. */
async function start(argv: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const abort = new AbortController();
  const lines: string[] = [];
  const errors: string[] = [];
  let server: RunningServer | undefined;
  const code = runServeCommand([...argv, '--port', '0', '--backend', 'cpu'], {
    signal: abort.signal, env, log: (l) => lines.push(l), error: (l) => errors.push(l), onListening: (s) => (server = s),
  });
  let exited = false;
  void code.then(() => (exited = true));
  for (let i = 0; i < 200 && server === undefined && !exited; i++) await new Promise((r) => setTimeout(r, 25));
  if (server === undefined) throw new Error(`serve did not start: ${errors.join(' | ')}`);
  return { code, server, lines, errors, stop: () => (abort.abort(), code) };
}

/** Runs a command that must fail at start-up; returns its exit code and what it printed. */
async function fail(argv: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number; errors: string[] }> {
  const errors: string[] = [];
  const code = await runServeCommand(argv, { env, log: () => undefined, error: (l) => errors.push(l), onListening: () => { throw new Error('should not listen'); } });
  return { code, errors };
}

function post(url: string, path: string, body: unknown, token?: string): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  return fetch(url + path, { method: 'POST', headers, body: JSON.stringify(body) });
}

describe('serve command: the token', () => {
  it('reads the token from --token-file (first line), without a warning', async () => {
    const file = join(dir, 'token');
    writeFileSync(file, 'from-a-file\nsecond line ignored\n', { mode: 0o600 });
    const run = await start(['--model', modelDir, '--token-file', file]);
    expect((await fetch(`${run.server.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${run.server.url}/metrics`, { headers: { authorization: 'Bearer from-a-file' } })).status).toBe(200);
    expect(run.errors).toEqual([]);
    expect(run.lines.join('\n')).toMatch(/token required/);
    expect(await run.stop()).toBe(0);
  });

  it('reads the token from COLLECTIVEKV_TOKEN', async () => {
    const run = await start(['--model', modelDir], { COLLECTIVEKV_TOKEN: 'from-env' });
    expect((await post(run.server.url, '/users/u/events', { events: [1], history: [] })).status).toBe(401);
    expect((await post(run.server.url, '/users/u/events', { events: [1], history: [] }, 'from-env')).status).toBe(200);
    expect(run.errors).toEqual([]);
    expect(await run.stop()).toBe(0);
  });

  it('--token still works, with a warning on stderr', async () => {
    const run = await start(['--model', modelDir, '--token', 'on-the-command-line']);
    expect((await fetch(`${run.server.url}/metrics`, { headers: { authorization: 'Bearer on-the-command-line' } })).status).toBe(200);
    expect(run.errors).toEqual([expect.stringMatching(/^collectivekv serve: warning: --token shows the token in the process list and the shell history; use COLLECTIVEKV_TOKEN or --token-file PATH instead$/)]);
    expect(await run.stop()).toBe(0);
  });

  it('without a token it says so, and serves loopback only', async () => {
    const run = await start(['--model', modelDir]);
    expect(run.lines.join('\n')).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+ .*no token: loopback only/);
    expect(await run.stop()).toBe(0);
  });

  it('the usage text says not to pass the token on the command line', async () => {
    expect(SERVE_USAGE).toMatch(/--token-file PATH/);
    expect(SERVE_USAGE).toMatch(/COLLECTIVEKV_TOKEN/);
    expect(SERVE_USAGE).toMatch(/Do not pass the token on the command line/);
    const lines: string[] = [];
    expect(await runServeCommand(['--help'], { log: (l) => lines.push(l) })).toBe(0);
    expect(lines.join('\n')).toBe(SERVE_USAGE);
  });
});

describe('serve command: --cache-format', () => {
  it.each([[[], 'fp16'], [['--cache-format', 'int8'], 'int8'], [['--cache-format', 'fp32'], 'fp32']] as const)('%j writes entries in %s and says so', async (flag, format) => {
    const run = await start(['--model', modelDir, ...flag]);
    expect(run.lines.join('\n')).toMatch(new RegExp(`cache format ${format}`));
    expect(run.server.engine.dtype).toBe(format);
    expect((await post(run.server.url, '/users/kim/events', { events: [3, 4], history: [] })).status).toBe(200);
    const scored = await post(run.server.url, '/score', { userIds: ['kim'], candidates: [1, 2] });
    expect((await scored.json()).sources).toEqual(['cache']);
    expect(await run.stop()).toBe(0);
  });
});

describe('serve command: --history-log', () => {
  it('keeps events across restarts on a fresh store, and reports a torn last line', async () => {
    const log = join(dir, 'history.jsonl');
    const first = await start(['--model', modelDir, '--history-log', log]);
    expect(first.lines.join('\n')).toMatch(/history log .*history\.jsonl/);
    expect(await (await post(first.server.url, '/users/kim/events', { events: [3, 4] })).json()).toEqual({ kind: 'created', length: 2 });
    expect(await first.stop()).toBe(0);

    appendFileSync(log, '{"u":"kim","e":[5');
    const second = await start(['--model', modelDir, '--history-log', log]);
    expect(second.errors).toEqual([expect.stringMatching(/^collectivekv serve: warning: --history-log: .*history\.jsonl: truncated a torn last line \(17 bytes at offset \d+/)]);
    const scored = await post(second.server.url, '/score', { userIds: ['kim'], candidates: [1, 2] });
    expect(scored.status).toBe(200);
    expect((await scored.json()).sources).toEqual(['recompute']);
    expect(await (await post(second.server.url, '/users/kim/events', { events: [6] })).json()).toMatchObject({ length: 3 });
    expect(await second.stop()).toBe(0);
  });
});

describe('serve command: start-up failures print one line, no stack', () => {
  function expectOneLine(errors: string[], message: RegExp): void {
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^collectivekv serve: /);
    expect(errors[0]).not.toMatch(/\n|\s+at .*:\d+:\d+/);
    expect(errors[0]).toMatch(message);
  }

  it.each([
    [['--bogus'], /Unknown option '--bogus'.*\(collectivekv serve --help for usage\)$/],
    [['--model', 'm', '--demo-model'], /give exactly one of --model DIR or --demo-model/],
    [['--demo-model', '--port', 'eighty'], /--port must be an integer in \[0, 65535\], received "eighty"/],
    [['--demo-model', '--store', 'http://cache:6379'], /--store must be 'memory', redis:\/\/\.\.\. or rediss:\/\/\.\.\., received "http:\/\/cache:6379"/],
    [['--demo-model', '--token', 'a', '--token-file', 'f'], /give at most one of --token-file PATH and --token/],
    [['--demo-model', '--token-file', '/nonexistent/token'], /--token-file: cannot read \/nonexistent\/token: ENOENT/],
    [['--demo-model', '--host', '0.0.0.0'], /--host "0\.0\.0\.0" is not a loopback address: listening on other interfaces needs a token/],
    [['--demo-model', '--history-log', ''], /--history-log must be a file path, received an empty string/],
    [['--demo-model', '--cache-format', 'bf16'], /--cache-format must be one of fp16, fp32, int8, received "bf16"/],
  ])('usage error %j: exit 2', async (argv, message) => {
    const { code, errors } = await fail(argv);
    expect(code).toBe(2);
    expectOneLine(errors, message);
  });

  it('an empty token file is a usage error', async () => {
    const file = join(dir, 'empty-token');
    writeFileSync(file, '\n');
    const { code, errors } = await fail(['--demo-model', '--token-file', file]);
    expect(code).toBe(2);
    expectOneLine(errors, /--token-file: .*empty-token is empty \(expected the token on its first line\)/);
  });

  it('an unreadable model directory: exit 1', async () => {
    const { code, errors } = await fail(['--model', join(dir, 'no-such-model'), '--backend', 'cpu']);
    expect(code).toBe(1);
    expectOneLine(errors, /--model: cannot read .*no-such-model\/model\.json: ENOENT/);
  });

  it('an unreachable Redis: exit 1, password redacted', async () => {
    const { code, errors } = await fail(['--model', modelDir, '--store', 'redis://:hunter2@127.0.0.1:1', '--backend', 'cpu']);
    expect(code).toBe(1);
    expectOneLine(errors, /--store redis:\/\/\*\*\*@127\.0\.0\.1:1: /);
    expect(errors[0]).not.toMatch(/hunter2/);
  });

  it('a port in use: exit 1', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as net.AddressInfo;
    try {
      const { code, errors } = await fail(['--model', modelDir, '--port', String(port), '--backend', 'cpu']);
      expect(code).toBe(1);
      expectOneLine(errors, new RegExp(`--port ${port}: the port is already in use on 127\\.0\\.0\\.1$`));
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('a corrupt history log, or one that cannot be created: exit 1', async () => {
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, 'garbage\n{"u":"a","e":[1]}\n');
    const corrupt = await fail(['--model', modelDir, '--history-log', bad, '--backend', 'cpu']);
    expect(corrupt.code).toBe(1);
    expectOneLine(corrupt.errors, /--history-log: FileHistoryLog\.open: .*bad\.jsonl line 1 is not JSON/);
    const missing = await fail(['--model', modelDir, '--history-log', join(dir, 'no-dir', 'h.jsonl'), '--backend', 'cpu']);
    expect(missing.code).toBe(1);
    expectOneLine(missing.errors, /--history-log: FileHistoryLog\.open: cannot create .*no-dir/);
  });
});
