export * from './ranking';
export * from './ctr';
