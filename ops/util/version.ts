// The package's version, named by the registration guard's warning (ops/util/registry.ts) when two
// copies load in one process. test/ops/util/version.test.ts keeps it equal to package.json's.
export const VERSION = '0.1.0';
