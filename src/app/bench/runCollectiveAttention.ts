// npx tsx src/app/bench/runCollectiveAttention.ts [cpu|wasm ...]: prints fused vs composite timings.
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { setCollectiveAttentionAlgorithm } from '../../internal';
import { benchCollectiveAttention } from './collectiveAttention';

async function main(): Promise<void> {
  const backends = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['wasm', 'cpu'];
  for (const backend of backends) {
    for (const algorithm of ['auto', 'direct', 'pool'] as const) {
      setCollectiveAttentionAlgorithm(algorithm);
      const r = await benchCollectiveAttention({ backend, iterations: backend === 'cpu' ? 5 : 10 });
      console.log(`${backend} ${algorithm}: fused ${r.fusedMs.toFixed(1)} ms, composite ${r.compositeMs.toFixed(1)} ms, ` +
        `speedup ${r.speedup.toFixed(2)}x, max abs error ${r.maxAbsError.toExponential(2)}`);
    }
  }
  setCollectiveAttentionAlgorithm('auto');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
