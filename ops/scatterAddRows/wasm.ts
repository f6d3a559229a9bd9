// Stub: filled in by the kernel work.
export {};
