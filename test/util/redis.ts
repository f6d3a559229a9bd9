// Starts throwaway Redis servers (and a 3-node cluster) on free loopback ports for the tests,
// from the redis-server on PATH (.ci/install-redis.sh installs it). When it is missing, Redis
// suites skip with a visible message, unless REQUIRE_REDIS=1 (CI), where they fail.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeUnless } from './skip';

export const REDIS_REQUIRED = process.env.REQUIRE_REDIS === '1';
const HOST = '127.0.0.1';

function onPath(cmd: string): boolean {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
}

export const HAVE_REDIS = onPath('redis-server') && onPath('redis-cli');

/**
 * describe() for suites that need redis-server: runs them when it is installed; otherwise skips
 * them with a message, or, with REQUIRE_REDIS=1, replaces them by one failing test.
 */
export function describeRedis(title: string, body: () => void): void {
  if (HAVE_REDIS) {
    describe(title, body);
  } else if (REDIS_REQUIRED) {
    describe(title, () => {
      it('needs redis-server and redis-cli on PATH', () => {
        throw new Error('REQUIRE_REDIS=1 but redis-server/redis-cli are not on PATH: run .ci/install-redis.sh');
      });
    });
  } else {
    describeUnless('redis-server/redis-cli not on PATH (install: .ci/install-redis.sh; REQUIRE_REDIS=1 makes this a failure)', title, body);
  }
}

/** A port nothing listens on right now (the server may still lose a race for it: callers retry). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Sends PING over a raw socket; true when a server answers (+PONG, or -NOAUTH with requirepass). */
export function ping(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: HOST, port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.on('error', () => done(false));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => done(/^(\+PONG|-NOAUTH)/.test(d.toString())));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface RedisServer {
  host: string;
  port: number;
  url: string;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** Stops it if running and starts it again on the same port, empty (no persistence). */
  restart(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => running.forEach((p) => p.kill('SIGKILL')));

/** Spawns redis-server on `port` and waits until it answers PING; rejects with its log otherwise. */
async function spawnServer(port: number, dir: string, extraArgs: readonly string[]): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', ...extraArgs];
  const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout?.on('data', (d) => (log += d));
  proc.stderr?.on('data', (d) => (log += d));
  running.add(proc);
  proc.on('exit', () => running.delete(proc));
  for (let i = 0; i < 100; i++) {
    if (proc.exitCode !== null) throw new Error(`redis-server on port ${port} exited (${proc.exitCode}):\n${log.slice(-2000)}`);
    if (await ping(port)) return proc;
    await sleep(50);
  }
  proc.kill('SIGKILL');
  throw new Error(`redis-server on port ${port} did not answer PING within 5 s:\n${log.slice(-2000)}`);
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** Starts redis-server on a free port, retrying when another process takes the port first. */
async function startOnFreePort(dir: string, extraArgs: (port: number) => string[]): Promise<[ChildProcess, number]> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    try {
      return [await spawnServer(port, dir, extraArgs(port)), port];
    } catch (e) {
      lastError = e;
    }
  }
  throw lastError;
}

/** One standalone server on a free loopback port, no persistence. */
export async function startRedis(extraArgs: readonly string[] = []): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'ckv-redis-'));
  const started = await startOnFreePort(dir, () => [...extraArgs]);
  let proc = started[0];
  const port = started[1];
  return {
    host: HOST,
    port,
    url: `redis://${HOST}:${port}`,
    async stop() {
      await stopProcess(proc);
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await stopProcess(proc);
      mkdirSync(dir, { recursive: true });
      proc = await spawnServer(port, dir, extraArgs);
    },
  };
}

export interface RedisCluster {
  nodes: Array<{ host: string; port: number }>;
  stop(): Promise<void>;
}

/** `count` masters (no replicas) with all 16384 slots assigned, on free loopback ports. */
export async function startRedisCluster(count = 3): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'ckv-cluster-'));
  const procs: ChildProcess[] = [];
  const ports: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      // The cluster bus gets its own free port (Redis 7 --cluster-port) instead of port + 10000.
      const busPort = await freePort();
      const [proc, port] = await startOnFreePort(dir, (p) => [
        '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${p}.conf`),
        '--cluster-node-timeout', '2000', '--cluster-port', String(busPort),
      ]);
      procs.push(proc);
      ports.push(port);
    }
    createCluster(ports);
    await waitClusterOk(ports);
  } catch (e) {
    await Promise.all(procs.map(stopProcess));
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    nodes: ports.map((port) => ({ host: HOST, port })),
    async stop() {
      await Promise.all(procs.map(stopProcess));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function createCluster(ports: readonly number[]): void {
  const args = ['--cluster', 'create', ...ports.map((p) => `${HOST}:${p}`), '--cluster-replicas', '0', '--cluster-yes'];
  const r = spawnSync('redis-cli', args, { encoding: 'utf8', timeout: 30000 });
  if (r.status !== 0) throw new Error(`redis-cli --cluster create failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
}

/** Every node must report cluster_state:ok (slots are gossiped after create). */
async function waitClusterOk(ports: readonly number[]): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = ports.every((p) => {
      const r = spawnSync('redis-cli', ['-h', HOST, '-p', String(p), 'cluster', 'info'], { encoding: 'utf8', timeout: 5000 });
      return r.stdout.includes('cluster_state:ok');
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`cluster on ports ${ports.join(', ')} did not reach cluster_state:ok within 20 s`);
}

/** Number of keys on one node (DBSIZE), to check that users spread over the cluster. */
export function dbSize(port: number): number {
  const r = spawnSync('redis-cli', ['-h', HOST, '-p', String(port), 'dbsize'], { encoding: 'utf8', timeout: 5000 });
  return Number(r.stdout.trim());
}
