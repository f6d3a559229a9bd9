// Jest test environment for the webgpu tests (select it with a `@jest-environment` docblock).
// The npm package `webgpu` (Dawn for Node) is ESM only, so it cannot be require()d from a CJS
// test file; an environment's async setup() can import() it. We put `navigator.gpu` and the
// WebGPU constants (GPUBufferUsage, ...) on the test's global BEFORE the test file runs, because
// @tensorflow/tfjs-backend-webgpu only registers its backend if navigator.gpu exists at import.
//
// We also ask for an adapter here, so tests know synchronously whether to run or skip:
//   globalThis.__WEBGPU__ = { available: boolean, reason: string }
// With REQUIRE_WEBGPU=1 (CI) a missing adapter fails the test file instead of skipping it.
const { appendFileSync } = require('node:fs');
const { TestEnvironment } = require('jest-environment-node');
const { vulkanLoader } = require('./vulkanLoader');

class WebGPUEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    this.testPath = context.testPath;
  }

  async setup() {
    await super.setup();
    // Mesa's lavapipe wants a runtime dir; harmless elsewhere.
    if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = '/tmp';
    this.global.__WEBGPU__ = await this.loadWebGPU();
    if (!this.global.__WEBGPU__.available && process.env.REQUIRE_WEBGPU === '1') {
      throw new Error(`REQUIRE_WEBGPU=1 but no WebGPU adapter: ${this.global.__WEBGPU__.reason}. ` +
        'Run .ci/install-webgpu.sh (Mesa lavapipe from bookworm-backports).');
    }
  }

  async loadWebGPU() {
    if (process.platform === 'linux' && vulkanLoader() === 'missing') {
      // Dawn would only print "Couldn't load Vulkan" (native stderr) and find no adapter.
      return { available: false, reason: 'no Vulkan loader (libvulkan.so.1) on this machine; .ci/install-webgpu.sh installs it with Mesa lavapipe' };
    }
    this.noteDawn();
    let mod;
    try {
      mod = await import('webgpu');
    } catch (e) {
      return { available: false, reason: `npm package 'webgpu' failed to load (${e && e.message})` };
    }
    Object.assign(this.global, mod.globals);
    this.gpu = mod.create([]);
    this.global.navigator = { gpu: this.gpu };
    try {
      const adapter = await this.gpu.requestAdapter();
      if (adapter == null) return { available: false, reason: 'navigator.gpu.requestAdapter() returned null' };
      return { available: true, reason: '' };
    } catch (e) {
      return { available: false, reason: `requestAdapter() threw (${e && e.message})` };
    }
  }

  /** Tells the summary reporter that Dawn ran here, so it explains Dawn's native stderr lines. */
  noteDawn() {
    const log = process.env.COLLECTIVEKV_SKIP_LOG;
    if (log) appendFileSync(log, `${JSON.stringify({ testPath: this.testPath, note: 'dawn' })}\n`);
  }

  async teardown() {
    this.gpu = null;
    await super.teardown();
  }
}

module.exports = WebGPUEnvironment;
