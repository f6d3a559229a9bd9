import { fork, ChildProcess } from 'node:child_process';
import * as os from 'node:os';
const rounds = Number(process.env.ROUNDS ?? 9);
const start = (mode: string) => new Promise<ChildProcess>((res, rej) => {
  const p = fork(require.resolve('./dp.ts'), [mode], { execArgv: ['--import', 'tsx'], env: process.env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  p.once('message', () => res(p)); p.once('exit', (c) => rej(new Error('exit ' + c)));
});
const ask = (p: ChildProcess) => new Promise<{ ms: number; loss: number }>((r) => { p.once('message', r as any); p.send({}); });
const med = (x: number[]) => { const s = [...x].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
(async () => {
  const l0 = os.loadavg()[0];
  const modes = ['single', 'threads2', 'dp'];
  const procs = [];
  for (const m of modes) procs.push(await start(m));
  const t: number[][] = modes.map(() => []); const losses: number[][] = modes.map(() => []);
  const orders = [[0, 1, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0], [0, 2, 1], [1, 0, 2]];
  for (let r = 0; r < rounds + 1; r++) for (const k of orders[r % orders.length]) { const x = await ask(procs[k]); if (r > 0) t[k].push(x.ms); losses[k].push(x.loss); }
  console.log(`B=${process.env.B ?? 128} L=${process.env.L ?? 200} dropout 0, ${rounds} rounds; load ${l0.toFixed(2)} -> ${os.loadavg()[0].toFixed(2)}`);
  modes.forEach((m, k) => console.log(`  ${m.padEnd(9)} median ${med(t[k]).toFixed(0).padStart(6)} ms  best ${Math.min(...t[k]).toFixed(0).padStart(6)} ms  speedup median ${(med(t[0]) / med(t[k])).toFixed(2)}x best ${(Math.min(...t[0]) / Math.min(...t[k])).toFixed(2)}x  runs ${t[k].map((x) => x.toFixed(0)).join(' ')}`));
  modes.forEach((m, k) => console.log(`  losses ${m}: ${losses[k].slice(0, 3).join(', ')}`));
  procs.forEach((p) => p.kill());
})();
