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

/** Starts redis-server on 127.0.0.1 (a few tries for a free port); rejects with its log otherwise. */
export async function startLocalRedis(): Promise<LocalRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'ckv-bench-redis-'));
  let log = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const proc: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no',
      '--dir', dir, '--daemonize', 'no', '--maxmemory', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout?.on('data', (d) => (log += d));
    proc.stderr?.on('data', (d) => (log += d));
    const kill = () => proc.kill('SIGKILL');
    process.once('exit', kill);
    // Ctrl-C / kill: take the server down too, then die of the same signal.
    const onSignal = (sig: NodeJS.Signals) => {
      kill();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.kill(process.pid, sig);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    for (let i = 0; i < 100 && proc.exitCode === null; i++) {
      if (await ping(port)) {
        return {
          url: `redis://${HOST}:${port}`,
          async stop() {
            process.off('exit', kill);
            process.off('SIGINT', onSignal);
            process.off('SIGTERM', onSignal);
            if (proc.exitCode === null) {
              const exited = new Promise((r) => proc.once('exit', r));
              proc.kill('SIGTERM');
              await exited;
            }
            rmSync(dir, { recursive: true, force: true });
          },
        };
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    kill();
    process.off('exit', kill);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(`redis-server did not start on loopback:\n${log.slice(-2000)}`);
}
