// Registration helpers for ops/register/*: each file there lists its kernel (or gradient) configs
// and registers them in one call. Registering is idempotent: a kernel or gradient already in tfjs's
// registry (a second import, or the ESM and CommonJS builds both loaded in one process; tfjs keeps
// one registry per process) is left alone, so tfjs prints no "already registered" warnings.
import * as tf from '@tensorflow/tfjs-core';
import { VERSION } from './version';

/** Registers each kernel not registered yet for its backend. */
export function registerKernels(configs: readonly tf.KernelConfig[]): void {
  for (const config of configs) {
    if (tf.getKernel(config.kernelName, config.backendName) == null) tf.registerKernel(config);
  }
}

/** Registers each gradient not registered yet for its kernel. */
export function registerGradients(configs: readonly tf.GradConfig[]): void {
  for (const config of configs) {
    if (tf.getGradient(config.kernelName) == null) tf.registerGradient(config);
  }
}

// ---------------------------------------------------------------- one copy per process
// A process can load two copies of the package: the ES module and the CommonJS build (an `import`
// here, a `require` there), or two installed versions. tfjs keeps one kernel registry and one
// serialization map per process, so the first copy's kernels and layer classes must stay in them:
// a second copy's classes would otherwise replace them by name, and a loaded model would no longer
// be an instance of the classes the first copy's code checks for. The record lives on globalThis
// under a Symbol.for key, which every copy (and every module system) reads alike.

const REGISTRATION_KEY = Symbol.for('collectivekv.registration');

/** A class for tfjs's serialization map (a layer, initializer, ...). */
export type SerializableClass = tf.serialization.SerializableConstructor<tf.serialization.Serializable>;

/** A copy of the package: its version and where its code was loaded from. */
export interface PackageCopy {
  readonly version: string;
  readonly location: string;
}

/** What globalThis[Symbol.for('collectivekv.registration')] holds. */
export interface RegistrationRecord {
  /** The copy that registered classes first. */
  readonly first: PackageCopy;
  /** Each claimed class under its serialization name ('package>ClassName'), with the copy that claimed it. */
  readonly classes: Map<string, { readonly cls: SerializableClass; readonly copy: PackageCopy }>;
  /** Whether a copy has warned of another (once per process). */
  warned: boolean;
}

/** This copy's registry module's file or URL: the first location in a stack trace taken here. */
function locateThisCopy(): string {
  const stack = new Error().stack ?? '';
  const frame = /((?:file|https?):\/\/[^\s)]+|\/[^\s():]+|[A-Za-z]:\\[^\s():]+):\d+:\d+/.exec(stack.split('\n').slice(1).join('\n'));
  return frame === null ? 'an unknown location' : frame[1];
}

const THIS_COPY: PackageCopy = { version: VERSION, location: locateThisCopy() };

/** The process-wide record, made by the first copy that claims classes. */
export function registrationRecord(): RegistrationRecord {
  const holder = globalThis as unknown as Record<symbol, RegistrationRecord | undefined>;
  let record = holder[REGISTRATION_KEY];
  if (record === undefined) {
    record = { first: THIS_COPY, classes: new Map(), warned: false };
    Object.defineProperty(globalThis, REGISTRATION_KEY, { value: record, enumerable: false, configurable: true, writable: false });
  }
  return record;
}

/**
 * Claims `classes` (registered with tfjs under `pkg`, tfjs's 'Custom' when absent) for this copy,
 * right after their modules registered them: a name no copy claimed is recorded as this copy's; a
 * name another copy claimed first gets that copy's class back in tfjs's serialization map, so a
 * second copy ends up registering none of its classes. The first such case warns, naming both copies.
 */
export function claimClasses(classes: readonly SerializableClass[], pkg?: string): void {
  const record = registrationRecord();
  const taken: string[] = [];
  let owner: PackageCopy | undefined;
  for (const cls of classes) {
    const name = `${pkg ?? 'Custom'}>${cls.className}`;
    const first = record.classes.get(name);
    if (first === undefined) {
      record.classes.set(name, { cls, copy: THIS_COPY });
    } else if (first.cls !== cls) {
      tf.serialization.registerClass(first.cls, pkg);
      taken.push(cls.className);
      owner = first.copy;
    }
  }
  if (owner !== undefined && !record.warned) {
    record.warned = true;
    console.warn(secondCopyMessage(owner, taken));
  }
}

function secondCopyMessage(first: PackageCopy, taken: readonly string[]): string {
  const versions = first.version === VERSION ? '' : ' Two versions are installed: keep one (npm ls collectivekv; npm dedupe).';
  return [
    'collectivekv: two copies of the package are loaded in this process.',
    `  loaded first: collectivekv ${first.version} from ${first.location}`,
    `  this copy:    collectivekv ${VERSION} from ${THIS_COPY.location}`,
    `This copy registers none of its layer classes (${taken.join(', ')}) nor kernels: the first copy's stay registered, ` +
      "so models load as its classes, and `instanceof` a class of this copy is false.",
    'Usually both `import` and `require` of collectivekv ran (its ES module and CommonJS builds): load it one way ' +
      `(all import or all require; a bundler should resolve one build).${versions}`,
  ].join('\n');
}
