// Every use of a tfjs internal in this package goes through this module: engine state, the cpu
// backend's data storage, the wasm backend's data id counter and module exports, the webgpu
// backend's tensor map. None of these is part of tfjs's documented API, so a tfjs release may move
// one. Each accessor checks that what it reads is still there and otherwise throws a
// TfjsInternalMovedError naming the internal and the tfjs version found, instead of failing later
// with an obscure TypeError or, worse, computing garbage. test/ops/util/tfjsInternals.test.ts
// exercises each accessor on every backend it applies to, so an upgrade that moves one fails there.
//
// Checked against tfjs 4.22.0 (tfjs-core, tfjs-backend-cpu, tfjs-backend-wasm, tfjs-backend-webgpu).
// The backends are optional peers: only their types are imported here.
import * as tf from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';

/** The tfjs release every accessor here was checked against. */
export const CHECKED_TFJS_VERSION = '4.22.0';

/** A tfjs internal this package relies on is missing or has another shape than in the checked release. */
export class TfjsInternalMovedError extends Error {
  constructor(readonly internal: string) {
    super(`tfjs internal ${internal} moved: collectivekv was checked against tfjs ${CHECKED_TFJS_VERSION}, found ${tf.version_core}`);
    this.name = 'TfjsInternalMovedError';
  }
}

function moved(internal: string): never {
  throw new TfjsInternalMovedError(internal);
}

// ---------------------------------------------------------------- engine state

/** The fields of tfjs-core's EngineState read here (engine.ts, tfjs 4.22.0). */
interface EngineStateInternals {
  gradientDepth: number;
  scopeStack: unknown[];
  activeTape?: unknown[] | null;
  activeScope?: unknown;
}

function engineState(): EngineStateInternals {
  const state = (tf.engine() as unknown as { state?: Partial<EngineStateInternals> }).state;
  // activeTape and activeScope are unset until the first tape / scope, so check fields always set.
  if (state == null || typeof state.gradientDepth !== 'number' || !Array.isArray(state.scopeStack)) moved('engine().state');
  return state as EngineStateInternals;
}

/**
 * Whether a gradient tape records the ops run now (Engine.isTapeOn(), tfjs 4.22.0: inside a
 * tf.grad / variableGrads and not inside a kernel). tfjs keeps no public flag for it.
 */
export function isTapeOn(): boolean {
  const engine = tf.engine() as unknown as { isTapeOn?: () => unknown };
  if (typeof engine.isTapeOn !== 'function') moved('Engine.isTapeOn()');
  const on = engine.isTapeOn();
  if (typeof on !== 'boolean') moved('Engine.isTapeOn()');
  return on;
}

/**
 * The tape of the outermost gradient computation now running, or of the last one (tfjs 4.22.0:
 * engine().state.activeTape, a new array per outermost tf.grad; stale after it ends), or null
 * before the first. Only its identity is meaningful: it tells one gradient computation from the next.
 */
export function activeTape(): unknown {
  const state = engineState();
  if (state.gradientDepth > 0 && !Array.isArray(state.activeTape)) moved('engine().state.activeTape');
  return state.activeTape ?? null;
}

/**
 * The innermost tidy / scope now open (tfjs 4.22.0: engine().state.activeScope), or null outside
 * every scope. Only its identity is meaningful: it tells one forward pass's scope from the next.
 */
export function activeScope(): unknown {
  const state = engineState();
  if (state.scopeStack.length > 0 && (state.activeScope == null || typeof state.activeScope !== 'object')) {
    moved('engine().state.activeScope');
  }
  return state.activeScope ?? null;
}

// ---------------------------------------------------------------- cpu backend

/**
 * The values of a tensor held by the cpu backend (tfjs 4.22.0: MathBackendCPU.data, a DataStorage
 * of { values, ... } by data id). Kernels read and never write them.
 */
export function cpuValues(backend: MathBackendCPU, t: tf.TensorInfo): tf.backend_util.BackendValues {
  const data = (backend as unknown as { data?: { get?: unknown } }).data;
  if (data == null || typeof data.get !== 'function') moved('MathBackendCPU.data');
  const entry = backend.data.get(t.dataId);
  if (entry == null) throw new Error(`cpuValues: the cpu backend holds no data for this tensor (shape [${t.shape.join(', ')}])`);
  if (!('values' in entry)) moved('MathBackendCPU.data entry .values');
  return entry.values as tf.backend_util.BackendValues;
}

// ---------------------------------------------------------------- wasm backend

/** What this package calls on the wasm backend's emscripten module (tfjs 4.22.0: BackendWasm.wasm). */
export interface WasmModuleInternals {
  /** emscripten's cwrap: a JS function (of the caller's type F) calling the module's exported C function `name`. */
  cwrap<F>(name: string, returnType: string | null, argTypes: string[]): F;
  /** Makes the module see `size` elements at `memoryOffset` as tensor `id` (no copy). */
  registerTensor(id: number, size: number, memoryOffset: number): void;
  /** Forgets tensor `id` (and any XNNPACK operator cached for it); frees nothing it did not allocate. */
  disposeData(id: number): void;
}

const wasmModules = new WeakMap<object, WasmModuleInternals>();

/**
 * The wasm backend's emscripten module functions used here (tfjs 4.22.0: BackendWasm.wasm.cwrap,
 * BackendWasm.wasm.tfjs.registerTensor / disposeData), checked once per backend.
 */
export function wasmModule(backend: BackendWasm): WasmModuleInternals {
  let m = wasmModules.get(backend);
  if (m != null) return m;
  const wasm = (backend as unknown as { wasm?: { cwrap?: unknown; tfjs?: { registerTensor?: unknown; disposeData?: unknown } } }).wasm;
  if (wasm == null || typeof wasm.cwrap !== 'function') moved('BackendWasm.wasm.cwrap');
  const tfjs = wasm.tfjs;
  if (tfjs == null || typeof tfjs.registerTensor !== 'function' || typeof tfjs.disposeData !== 'function') {
    moved('BackendWasm.wasm.tfjs.registerTensor / disposeData');
  }
  const emscripten = backend.wasm as unknown as { cwrap(name: string, returnType: string | null, argTypes: string[]): unknown };
  m = {
    cwrap: <F>(name: string, returnType: string | null, argTypes: string[]) => emscripten.cwrap(name, returnType, argTypes) as F,
    registerTensor: (id, size, offset) => backend.wasm.tfjs.registerTensor(id, size, offset),
    disposeData: (id) => backend.wasm.tfjs.disposeData(id),
  };
  wasmModules.set(backend, m);
  return m;
}

/**
 * `count` fresh tensor ids from the wasm backend's own counter (tfjs 4.22.0: the private
 * BackendWasm.dataIdNextNumber), so ids registered with the module never collide with a live
 * tensor's.
 */
export function takeWasmDataIds(backend: BackendWasm, count: number): number[] {
  const internals = backend as unknown as { dataIdNextNumber?: unknown };
  if (typeof internals.dataIdNextNumber !== 'number') moved('BackendWasm.dataIdNextNumber');
  const first = internals.dataIdNextNumber;
  internals.dataIdNextNumber = first + count;
  return Array.from({ length: count }, (_, i) => first + i);
}

// ---------------------------------------------------------------- webgpu backend

/**
 * A tensor's values when the webgpu backend still holds them on the CPU (not yet uploaded to a GPU
 * buffer), else null (tfjs 4.22.0: WebGPUBackend.tensorMap, a DataStorage of { values, resource, ... }).
 */
export function webgpuCpuValues(backend: WebGPUBackend, t: tf.TensorInfo): tf.backend_util.BackendValues | null {
  const tensorMap = (backend as unknown as { tensorMap?: { get?: unknown } }).tensorMap;
  if (tensorMap == null || typeof tensorMap.get !== 'function') moved('WebGPUBackend.tensorMap');
  const entry = backend.tensorMap.get(t.dataId);
  return entry?.values ?? null;
}
