// The kernel registry: importing ops registers nothing; ops/register/{cpu,wasm,webgpu,gradients}
// register every kernel and gradient, once, and registering again (a second import, or a second
// copy of the package as when the ESM and CommonJS builds load in one process) changes nothing
// and prints no tfjs warning. This file imports no test helper that registers kernels.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  BATCHED_MAT_MUL, COLLECTIVE_ATTENTION, GATHER_ROWS, GATHER_ROWS_GATE_GRAD, GATHER_ROWS_TABLE_GRAD, GATHER_ROWS_TAIL_GRAD, KERNEL_NAMES, LINEAR,
  ROUTE_TOP1, ROUTE_TOP1_GRAD, ROUTER_STEP, ROUTING_LOSS, ROUTING_LOSS_GRAD, SCATTER_ADD_ROWS, TRANSPOSE_MATRIX,
} from '../../../ops/kernelNames';

const OPS = path.join(__dirname, '..', '..', '..', 'ops');
const BACKENDS = ['cpu', 'wasm', 'webgpu'] as const;

/** Which custom kernels each backend has. */
const EXPECTED: Record<(typeof BACKENDS)[number], string[]> = {
  cpu: [...KERNEL_NAMES],
  wasm: [...KERNEL_NAMES],
  webgpu: [COLLECTIVE_ATTENTION, GATHER_ROWS, ROUTE_TOP1, ROUTING_LOSS, ROUTING_LOSS_GRAD, SCATTER_ADD_ROWS],
};
/** Kernels with a gradient: every forward kernel an op runs under a tape (collectiveAttention is inference only). */
const WITH_GRADIENT = [BATCHED_MAT_MUL, GATHER_ROWS, LINEAR, ROUTE_TOP1, ROUTER_STEP, ROUTING_LOSS, SCATTER_ADD_ROWS, TRANSPOSE_MATRIX];
const WITHOUT_GRADIENT = [COLLECTIVE_ATTENTION, GATHER_ROWS_TABLE_GRAD, GATHER_ROWS_GATE_GRAD, GATHER_ROWS_TAIL_GRAD, ROUTE_TOP1_GRAD, ROUTING_LOSS_GRAD];

function registered(): { kernels: string[]; gradients: string[] } {
  const kernels = BACKENDS.flatMap((b) => KERNEL_NAMES.filter((name) => tf.getKernel(name, b) != null).map((name) => `${name}@${b}`));
  const gradients = KERNEL_NAMES.filter((name) => tf.getGradient(name) != null);
  return { kernels, gradients };
}

function opsModules(dir = OPS): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return p === path.join(OPS, 'register') ? [] : opsModules(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

describe('kernel registry', () => {
  let warn: jest.SpyInstance;
  beforeEach(() => {
    warn = jest.spyOn(console, 'warn');
  });
  afterEach(() => warn.mockRestore());

  it('the kernel names are distinct', () => {
    expect(new Set(KERNEL_NAMES).size).toBe(KERNEL_NAMES.length);
    expect([...WITH_GRADIENT, ...WITHOUT_GRADIENT].sort()).toEqual([...KERNEL_NAMES].sort());
  });

  it('importing every ops/ module but ops/register registers nothing', () => {
    const modules = opsModules();
    expect(modules.length).toBeGreaterThan(40);
    for (const m of modules) require(m);
    expect(registered()).toEqual({ kernels: [], gradients: [] });
  });

  it('ops/register/* registers every kernel on its backends and every gradient', () => {
    require('../../../ops/register/cpu');
    require('../../../ops/register/wasm');
    require('../../../ops/register/webgpu');
    require('../../../ops/register/gradients');
    const { kernels, gradients } = registered();
    expect(kernels.sort()).toEqual(BACKENDS.flatMap((b) => EXPECTED[b].map((name) => `${name}@${b}`)).sort());
    expect(gradients.sort()).toEqual([...WITH_GRADIENT].sort());
    expect(warn).not.toHaveBeenCalled();
  });

  it('registering again, or from a second copy of the modules, keeps the first registration and warns nothing', () => {
    const before = BACKENDS.flatMap((b) => EXPECTED[b].map((name) => tf.getKernel(name, b)?.kernelFunc));
    const gradientsBefore = WITH_GRADIENT.map((name) => tf.getGradient(name)?.gradFunc);
    const { registerCpuKernels } = require('../../../ops/register/cpu');
    const { registerWasmKernels } = require('../../../ops/register/wasm');
    const { registerWebGPUKernels } = require('../../../ops/register/webgpu');
    const { registerKernelGradients } = require('../../../ops/register/gradients');
    registerCpuKernels();
    registerWasmKernels();
    registerWebGPUKernels();
    registerKernelGradients();
    // A second copy of every ops module (new functions, new configs) against the same tfjs.
    jest.isolateModules(() => {
      jest.doMock('@tensorflow/tfjs-core', () => tf);
      for (const file of ['cpu', 'wasm', 'webgpu', 'gradients']) require(`../../../ops/register/${file}`);
    });
    expect(BACKENDS.flatMap((b) => EXPECTED[b].map((name) => tf.getKernel(name, b)?.kernelFunc))).toEqual(before);
    expect(WITH_GRADIENT.map((name) => tf.getGradient(name)?.gradFunc)).toEqual(gradientsBefore);
    expect(warn).not.toHaveBeenCalled();
  });

  it('a kernel registered twice without the guard would warn (the check above can fail)', () => {
    warn.mockImplementation(() => undefined);
    const config = tf.getKernel(GATHER_ROWS, 'cpu') as tf.KernelConfig;
    tf.registerKernel(config);
    expect(warn).toHaveBeenCalled();
  });
});
