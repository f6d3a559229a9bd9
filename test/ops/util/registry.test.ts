// The registration guard: a second copy of the package in one process (as when the ES module and
// the CommonJS build both load) registers none of its classes, leaves the first copy's in tfjs's
// serialization map, and warns once, naming both copies. The second copy here is a second module
// registry (jest.isolateModules) against the same tfjs, as two builds of the package would be.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as cpu from '@tensorflow/tfjs-backend-cpu';
import * as wasm from '@tensorflow/tfjs-backend-wasm';
import * as first from '../../../src/internal';
import * as firstZoo from '../../../src/zoo/sequential/nextItem';
// Loaded for its classes too (a type-only use would drop the import).
import '../../../src/zoo/sequential/nextItem';
import { VERSION } from '../../../ops/util/version';

const ROOT = path.join(__dirname, '..', '..', '..');
const registeredClass = (className: string) => tf.serialization.SerializationMap.getMap().classNameMap[className]?.[0];

function loadSecondCopy(): { lib: typeof first; zoo: typeof firstZoo } {
  let copy: { lib: typeof first; zoo: typeof firstZoo } | undefined;
  jest.isolateModules(() => {
    jest.doMock('@tensorflow/tfjs-core', () => tf);
    jest.doMock('@tensorflow/tfjs-layers', () => tfl);
    jest.doMock('@tensorflow/tfjs-backend-cpu', () => cpu);
    jest.doMock('@tensorflow/tfjs-backend-wasm', () => wasm);
    copy = { lib: require('../../../src/internal'), zoo: require('../../../src/zoo/sequential/nextItem') };
  });
  return copy as { lib: typeof first; zoo: typeof firstZoo };
}

/** Source files under the package's floors. */
function sources(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.posix.join(dir, e.name);
    if (e.isDirectory()) return rel === 'src/app' ? [] : sources(rel);
    return rel.endsWith('.ts') ? [rel] : [];
  });
}

describe('registration guard', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  let warn: jest.SpyInstance;
  beforeEach(() => {
    warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  });
  afterEach(() => warn.mockRestore());

  it('records the first copy, its version and its classes on globalThis', () => {
    const record = first.registrationRecord();
    expect((globalThis as unknown as Record<symbol, unknown>)[Symbol.for('collectivekv.registration')]).toBe(record);
    expect(record.first.version).toBe(VERSION);
    expect(record.first.location).toMatch(/registry\.ts$/);
    expect(record.classes.get('collectivekv>CollectiveKVAttention')?.cls).toBe(first.CollectiveKVAttention);
    expect(record.classes.get('Custom>HstuSiluGate')?.cls).toBeDefined();
  });

  it('a second copy registers none of its classes and warns once, naming both copies and what to do', () => {
    first.registrationRecord().warned = false;
    const second = loadSecondCopy();
    expect(second.lib.CollectiveKVAttention).not.toBe(first.CollectiveKVAttention);
    for (const cls of first.LAYER_CLASSES) expect(registeredClass(cls.className)).toBe(cls);
    expect(registeredClass('PointwiseDense')).toBe(first.registrationRecord().classes.get('Custom>PointwiseDense')?.cls);
    expect(warn).toHaveBeenCalledTimes(1);
    const message = String(warn.mock.calls[0][0]);
    expect(message).toMatch(/two copies of the package are loaded/);
    expect(message).toMatch(new RegExp(`loaded first: collectivekv ${VERSION} from .*registry\\.ts`));
    expect(message).toMatch(new RegExp(`this copy: +collectivekv ${VERSION} from .*registry\\.ts`));
    expect(message).toMatch(/CollectiveKVAttention/);
    expect(message).toMatch(/load it one way/);
    // Its kernels were all registered by the first copy: no tfjs warning either.
    expect(warn.mock.calls.filter(([m]) => /already registered/.test(String(m)))).toEqual([]);
  });

  it('a model built with the first copy loads as the first copy classes after a second copy loaded', async () => {
    loadSecondCopy();
    const input = tfl.input({ shape: [4, 8] });
    const layer = new first.CollectiveKVAttention({ numHeads: 2, keyDim: 4, poolSize: 8, userDim: 1, poolSeed: 1 });
    const model = tfl.model({ inputs: input, outputs: layer.apply(input) as tfl.SymbolicTensor });
    let artifacts: tf.io.ModelArtifacts | undefined;
    await model.save(tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts as tf.io.ModelArtifacts));
    expect(loaded.layers[1]).toBeInstanceOf(first.CollectiveKVAttention);
    model.dispose();
    loaded.dispose();
  });

  it('without the guard the second copy would win (the checks above can fail)', () => {
    const second = loadSecondCopy();
    tf.serialization.registerClass(second.lib.CollectiveKVAttention, 'collectivekv');
    expect(registeredClass('CollectiveKVAttention')).toBe(second.lib.CollectiveKVAttention);
    tf.serialization.registerClass(first.CollectiveKVAttention, 'collectivekv');
  });

  it('every class the package registers with tfjs is claimed', () => {
    const registered = new Set<string>();
    const claimed = new Set<string>();
    for (const file of [...sources('ops'), ...sources('layers'), ...sources('src')]) {
      const code = fs.readFileSync(path.join(ROOT, file), 'utf8');
      for (const m of code.matchAll(/registerClass\((\w+)/g)) if (m[1] !== 'first') registered.add(m[1]);
      for (const m of code.matchAll(/(?:claimClasses\(\[|LAYER_CLASSES = \[)([^\]]*)\]/g)) {
        for (const name of m[1].split(',').map((s) => s.trim()).filter(Boolean)) claimed.add(name);
      }
    }
    expect(registered.size).toBeGreaterThanOrEqual(9);
    expect([...registered].sort()).toEqual([...claimed].sort());
  });

  it('VERSION is package.json version', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(VERSION).toBe(pkg.version);
  });
});
