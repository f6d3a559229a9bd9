// A throwaway redis-server on a free loopback port for the serving benchmark (like the tests'
// launcher in test/util/redis.ts; examples do not import test code). No persistence.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const HOST = '127.0.0.1';

export interface LocalRedis {
  url: string;
  /** Kills the server (no persistence: every key is gone) and starts a new one on the same port. */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export function haveRedisServer(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: HOST, port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.on('error', () => done(false));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

interface Running {
  proc: ChildProcess;
  kill(): void;
}

/** Spawns redis-server on `port` and waits for PONG; undefined when it did not come up. */
async function spawnOn(port: number, dir: string, onLog: (text: string) => void): Promise<Running | undefined> {
  const proc: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no',
    '--dir', dir, '--daemonize', 'no', '--maxmemory', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout?.on('data', (d) => onLog(String(d)));
  proc.stderr?.on('data', (d) => onLog(String(d)));
  const kill = () => proc.kill('SIGKILL');
  process.once('exit', kill);
  for (let i = 0; i < 100 && proc.exitCode === null; i++) {
    if (await ping(port)) return { proc, kill };
    await new Promise((r) => setTimeout(r, 50));
  }
  kill();
  process.off('exit', kill);
  return undefined;
}

async function terminate(running: Running, signal: NodeJS.Signals): Promise<void> {
  process.off('exit', running.kill);
  if (running.proc.exitCode !== null || running.proc.signalCode !== null) return;
  const exited = new Promise((r) => running.proc.once('exit', r));
  running.proc.kill(signal);
  await exited;
}

/** Starts redis-server on 127.0.0.1 (a few tries for a free port); rejects with its log otherwise. */
export async function startLocalRedis(): Promise<LocalRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'ckv-bench-redis-'));
  let log = '';
  const onLog = (text: string) => (log = (log + text).slice(-4000));
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    let running = await spawnOn(port, dir, onLog);
    if (running === undefined) continue;
    // Ctrl-C / kill: take the server down too, then die of the same signal.
    const onSignal = (sig: NodeJS.Signals) => {
      running?.kill();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.kill(process.pid, sig);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    return {
      url: `redis://${HOST}:${port}`,
      async restart(downMs = 0) {
        if (running) await terminate(running, 'SIGKILL');
        running = undefined;
        await new Promise((r) => setTimeout(r, downMs));
        running = await spawnOn(port, dir, onLog);
        if (running === undefined) throw new Error(`redis-server did not restart on port ${port}:\n${log.slice(-2000)}`);
      },
      async stop() {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        if (running) await terminate(running, 'SIGTERM');
        running = undefined;
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(`redis-server did not start on loopback:\n${log.slice(-2000)}`);
}
