#!/usr/bin/env bash
# Consumer check: the package as a user gets it. Builds (unless --no-build), packs, installs the
# tarball with tfjs-core, tfjs-layers and tfjs-backend-wasm in a scratch project (no ioredis, no
# @types/node), then
#   - type-checks a consumer file that uses the types of collectivekv, collectivekv/zoo and
#     collectivekv/webgpu under --strict without skipLibCheck (no types: [] beyond the package's);
#   - compiles the README's layer swap (examples/layer-swap.ts, which imports 'collectivekv') to
#     CommonJS and to an ES module and runs each: train, save, load (the loaded layer is the
#     package's class, same outputs), and a zoo model;
#   - loads the ES module and the CommonJS build in one process: one clear warning, no other.
#   bash .ci/consumer-check.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TSC="$ROOT/node_modules/.bin/tsc"
start=$SECONDS
step() { echo "-- consumer check: $1 ($((SECONDS - start)) s)"; }

if [[ "${1:-}" != "--no-build" ]]; then
  step "build"
  npm run build --silent
fi

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/collectivekv-consumer.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT

step "pack"
TARBALL=$(npm pack --silent --pack-destination "$SCRATCH" | tail -n 1)
TFJS=$(node -p "require('@tensorflow/tfjs-core/package.json').version")

step "install $TARBALL with tfjs $TFJS in $SCRATCH"
cd "$SCRATCH"
echo '{ "name": "collectivekv-consumer", "private": true }' > package.json
npm install --prefer-offline --no-audit --no-fund --loglevel=error \
  "./$TARBALL" "@tensorflow/tfjs-core@$TFJS" "@tensorflow/tfjs-layers@$TFJS" "@tensorflow/tfjs-backend-wasm@$TFJS"
for absent in ioredis @types/node; do
  if [[ -e "node_modules/$absent" ]]; then echo "consumer check: $absent is installed; the check needs a project without it" >&2; exit 1; fi
done

# tsc with the given arguments; fails on an error in any file but tfjs's own declarations, which do
# not compile under --strict without skipLibCheck (tfjs 4.22: TS2411 in tfjs-layers' keras_format,
# TS2420 in LayersModel); those are counted, not failed on.
tsc_clean() {
  local out errors
  out=$("$TSC" --pretty false "$@" 2>&1) || true
  errors=$(grep -E '^[^ ].*: error TS' <<<"$out" | grep -vE '^node_modules/@tensorflow/' || true)
  if [[ -n "$errors" ]]; then echo "$errors" >&2; echo "consumer check: tsc $* reported the errors above" >&2; exit 1; fi
  echo "   tsc $*: no error outside tfjs's declarations ($(grep -cE '^node_modules/@tensorflow/.*: error TS' <<<"$out" || true) in tfjs's)"
}

step "tsc --strict (no skipLibCheck) on the package's types"
cat > consumer.ts <<'EOF'
import * as tfl from '@tensorflow/tfjs-layers';
import { CollectiveKVAttention, MemoryStore, RedisStore, type CollectiveKVAttentionArgs, type RedisStoreOptions } from 'collectivekv';
import { buildSasrec, buildSim, fitCtr, type CtrModel, type ZooModel, type ZooModelOptions } from 'collectivekv/zoo';
import { registerWebGPUKernels } from 'collectivekv/webgpu';

const args: CollectiveKVAttentionArgs = { numHeads: 2, keyDim: 4, poolSize: 16, userDim: 1 };
export const layer: tfl.layers.Layer = new CollectiveKVAttention(args);
export const store = new MemoryStore();
export const redis: RedisStoreOptions = { url: 'redis://localhost:6379', keyPrefix: 'ckv:' };
export const connect: typeof RedisStore.connect = RedisStore.connect;
export const options: ZooModelOptions = { numItems: 10, maxLength: 4, attention: 'collectivekv', collective: { poolSize: 16, userDim: 1 } };
export const builders = [buildSasrec, buildSim, fitCtr, registerWebGPUKernels] as const;
export type Models = ZooModel | CtrModel;
EOF
# Without ioredis and @types/node installed (checked above): the package's types need neither.
for resolution in node16 bundler; do
  module=$([[ $resolution == node16 ]] && echo node16 || echo esnext)
  tsc_clean --noEmit --strict --target es2020 --lib es2020,dom --module "$module" --moduleResolution "$resolution" consumer.ts
done

step "the README's layer swap, compiled to CommonJS and to an ES module"
for format in cjs esm; do
  mkdir -p "$format"
  # The example minus its command-line runner (`require.main`, which an ES module has not).
  sed '/^if (require\.main === module)/,$d' "$ROOT/examples/layer-swap.ts" > "$format/swap.ts"
done
echo '{ "type": "commonjs" }' > cjs/package.json
echo '{ "type": "module" }' > esm/package.json
# Node's own resolution (node16): each folder's package.json type makes the output CommonJS or ESM.
for format in cjs esm; do
  tsc_clean --strict --target es2020 --lib es2020,dom --typeRoots "$ROOT/node_modules/@types" --types node \
    --module node16 --moduleResolution node16 --outDir "$format" "$format/swap.ts"
done

# One driver for both formats: $IMPORTS differ, the body is the same.
body() {
  cat <<'EOF'
  // Small sizes, whichever of them the example's main takes; each result must be finite numbers.
  const results = await main({ seqLen: 8, width: 8, items: 20, users: 64, batch: 4, steps: 2, maxEpochs: 2 });
  const attentions = results.map((r) => r.attention).join(',');
  if (attentions !== 'mha,collectivekv') throw new Error(`${FORMAT}: swap results for ${attentions}`);
  for (const r of results) {
    const bad = Object.entries(r).filter(([, v]) => (typeof v === 'number' && !Number.isFinite(v)) || (Array.isArray(v) && !v.every(Number.isFinite)));
    if (bad.length > 0) throw new Error(`${FORMAT}: ${r.attention}: ${JSON.stringify(bad)}`);
  }
  // Save and load: the loaded layer is the package's class and gives the same outputs.
  const items = tfl.input({ shape: [8, 8] });
  const mask = tfl.input({ shape: [8] });
  const layer = new CollectiveKVAttention({ numHeads: 2, keyDim: 4, causal: true, poolSize: 16, userDim: 1, poolSeed: 1 });
  const model = tfl.model({ inputs: [items, mask], outputs: layer.apply([items, mask]) });
  const x = [tf.randomNormal([2, 8, 8], 0, 1, 'float32', 3), tf.ones([2, 8])];
  let saved;
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    saved = artifacts;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
  if (!loaded.layers.some((l) => l instanceof CollectiveKVAttention)) throw new Error(`${FORMAT}: the loaded model has no CollectiveKVAttention`);
  const gap = tf.max(tf.abs(tf.sub(model.predict(x), loaded.predict(x)))).dataSync()[0];
  if (!(gap < 1e-5)) throw new Error(`${FORMAT}: loaded model differs by ${gap}`);
  // The zoo: a small SASRec with CollectiveKV scores the next item.
  const sasrec = zoo.buildZooModel('sasrec', { numItems: 20, maxLength: 6, hiddenDim: 8, numBlocks: 1, numHeads: 2, attention: 'collectivekv', collective: { poolSize: 16, userDim: 1 } });
  const scores = sasrec.scoreNext(tf.tensor2d([[0, 0, 1, 2, 3, 4]], undefined, 'int32'));
  if (scores.shape[1] < 20) throw new Error(`${FORMAT}: zoo scores of shape ${scores.shape}`);
  sasrec.dispose();
  console.log(`${FORMAT}: swap ${JSON.stringify(results)}; saved and loaded; zoo sasrec scored`);
EOF
}
{
  echo "const FORMAT = 'CommonJS';"
  echo "const tf = require('@tensorflow/tfjs-core'); const tfl = require('@tensorflow/tfjs-layers');"
  echo "const { CollectiveKVAttention } = require('collectivekv'); const zoo = require('collectivekv/zoo'); const { main } = require('./cjs/swap.js');"
  echo "(async () => {"; body; echo "})().catch((e) => { console.error(e); process.exitCode = 1; });"
} > check.cjs
{
  echo "const FORMAT = 'ES module';"
  echo "import * as tf from '@tensorflow/tfjs-core'; import * as tfl from '@tensorflow/tfjs-layers';"
  echo "import { CollectiveKVAttention } from 'collectivekv'; import * as zoo from 'collectivekv/zoo'; import { main } from './esm/swap.js';"
  body
} > check.mjs

# Prints the run's output; fails on a non-zero exit or on any warning line (tfjs's or ours).
run_clean() {
  local out
  out=$(node "$1" 2>&1) || { echo "$out"; echo "consumer check: node $1 failed" >&2; exit 1; }
  echo "$out"
  if grep -qiE 'warn|already registered|two copies' <<<"$out"; then echo "consumer check: node $1 printed a warning" >&2; exit 1; fi
}
step "run as CommonJS"
run_clean check.cjs
step "run as an ES module"
run_clean check.mjs

step "the ES module and the CommonJS build in one process"
cat > mixed.mjs <<'EOF'
import { createRequire } from 'node:module';
import * as esm from 'collectivekv';
import * as tf from '@tensorflow/tfjs-core';
const cjs = createRequire(import.meta.url)('collectivekv');
const registered = tf.serialization.SerializationMap.getMap().classNameMap.CollectiveKVAttention[0];
if (esm.CollectiveKVAttention === cjs.CollectiveKVAttention || registered !== esm.CollectiveKVAttention) {
  throw new Error('the first copy (the ES module) should keep its class registered');
}
EOF
out=$(node mixed.mjs 2>&1) || { echo "$out"; exit 1; }
echo "$out"
if [[ $(grep -c 'two copies of the package are loaded' <<<"$out") != 1 || $(grep -ciE 'already registered' <<<"$out") != 0 ]]; then
  echo "consumer check: expected one 'two copies' warning and no tfjs warning" >&2
  exit 1
fi

step "passed"
