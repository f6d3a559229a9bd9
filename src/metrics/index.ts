export * from './ranking';
export * from './ctr';
export * from './anchors';
