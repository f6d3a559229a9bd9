// Whether Linux can load the Vulkan loader (libvulkan.so.1). Without it Dawn (the npm package webgpu)
// finds no adapter and prints "Couldn't load Vulkan" from native code, on stderr, once per test file;
// checking first lets the webgpu tests skip quietly with that reason instead.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const LIB = 'libvulkan.so.1';
const SYSTEM_DIRS = ['/lib', '/lib64', '/usr/lib', '/usr/lib64', '/usr/local/lib', `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`,
  `/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`];

/**
 * 'missing' when we are sure the loader is absent (Linux, ldconfig's cache lists no libvulkan.so.1 and
 * no LD_LIBRARY_PATH or system folder holds it), else 'present' or 'unknown' (let Dawn try).
 * The probes are arguments so the decision can be tested.
 */
function vulkanLoader({ platform = process.platform, ldconfig = readLdconfig, libraryPath = process.env.LD_LIBRARY_PATH ?? '', exists = fs.existsSync } = {}) {
  if (platform !== 'linux') return 'unknown';
  const dirs = [...libraryPath.split(':').filter(Boolean), ...SYSTEM_DIRS];
  if (dirs.some((d) => exists(path.join(d, LIB)))) return 'present';
  const cache = ldconfig();
  if (cache == null) return 'unknown';
  return cache.includes(LIB) ? 'present' : 'missing';
}

/** `ldconfig -p` output, or null when ldconfig cannot run here. */
function readLdconfig() {
  for (const cmd of ['/sbin/ldconfig', '/usr/sbin/ldconfig', 'ldconfig']) {
    const r = spawnSync(cmd, ['-p'], { encoding: 'utf8', timeout: 5000 });
    if (r.status === 0) return r.stdout;
  }
  return null;
}

module.exports = { vulkanLoader };
