/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.tsx?$': ['@swc/jest', { jsc: { target: 'es2020' } }] },
  // Examples import the package by name, as users do.
  moduleNameMapper: { '^collectivekv$': '<rootDir>/src/index.ts', '^collectivekv/internal$': '<rootDir>/src/internal.ts', '^collectivekv/webgpu$': '<rootDir>/src/webgpu.ts' },
  testTimeout: 120000,
  // The default output, then what was skipped and why (jest drops the messages of fully skipped files).
  reporters: ['default', '<rootDir>/test/util/skipSummaryReporter.js'],
};
