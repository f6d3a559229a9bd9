// The end-of-run summary of skipped tests and the Vulkan-loader probe behind the webgpu tests' quiet skip.
const { summarize } = require('./skipSummaryReporter') as { summarize: (results: unknown, entries: unknown[], rootDir: string) => string[] };
const { vulkanLoader } = require('./vulkanLoader') as { vulkanLoader: (probes: Record<string, unknown>) => string };

const file = (path: string, statuses: string[]) => ({ testFilePath: `/r/${path}`, testResults: statuses.map((status) => ({ status })) });

describe('summarize', () => {
  test('each file with skipped tests, with its recorded reasons (one line per reason), and skips recorded inside passing tests', () => {
    const results = { numPendingTests: 5, testResults: [
      file('test/a.test.ts', ['pending', 'pending', 'pending']), file('test/b.test.ts', ['passed']),
      file('test/c.test.ts', ['passed', 'pending', 'pending']), file('test/d.test.ts', ['passed'])] };
    const entries = [
      { testPath: '/r/test/a.test.ts', what: '"redis suite"', reason: 'redis-server not on PATH' },
      { testPath: '/r/test/a.test.ts', what: '"redis suite"', reason: 'redis-server not on PATH' },
      { testPath: '/r/test/a.test.ts', what: '"redis cluster"', reason: 'redis-server not on PATH' },
      { testPath: '/r/test/d.test.ts', what: 'browser demo on webgpu', reason: 'Chromium could not start that backend here' },
    ];
    expect(summarize(results, entries, '/r')).toEqual([
      'Skipped: 5 tests in 3 files, and why:',
      '  test/a.test.ts (3 tests): "redis suite", "redis cluster": redis-server not on PATH',
      '  test/c.test.ts (2 tests): no reason recorded (a .skip in the file)',
      '  test/d.test.ts (inside passing tests): browser demo on webgpu: Chromium could not start that backend here',
      '  (REQUIRE_WEBGPU=1, REQUIRE_BROWSER_WEBGPU=1, REQUIRE_REDIS=1 turn a missing driver or service into a failure, as in CI.)',
    ]);
  });

  test('nothing skipped: no summary; Dawn loaded: one line explaining its stderr warnings', () => {
    const results = { numPendingTests: 0, testResults: [file('test/webgpu/x.test.ts', ['passed'])] };
    expect(summarize(results, [], '/r')).toEqual([]);
    const lines = summarize(results, [{ testPath: '/r/test/webgpu/x.test.ts', note: 'dawn' }], '/r');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^Note: the 'Warning: \.\.\.' lines on stderr come from Dawn/);
  });
});

describe('vulkanLoader', () => {
  const none = { platform: 'linux', libraryPath: '', exists: () => false };
  test('missing only on Linux when neither ldconfig\'s cache nor a library folder has libvulkan.so.1', () => {
    expect(vulkanLoader({ ...none, ldconfig: () => '\tlibc.so.6 (libc6,x86-64) => /lib/libc.so.6\n' })).toBe('missing');
    expect(vulkanLoader({ ...none, ldconfig: () => '\tlibvulkan.so.1 (libc6,x86-64) => /lib/libvulkan.so.1\n' })).toBe('present');
    expect(vulkanLoader({ ...none, libraryPath: '/opt/vk', exists: (p: string) => p === '/opt/vk/libvulkan.so.1', ldconfig: () => '' })).toBe('present');
    expect(vulkanLoader({ ...none, ldconfig: () => null })).toBe('unknown');
    expect(vulkanLoader({ ...none, platform: 'darwin', ldconfig: () => '' })).toBe('unknown');
  });
});
