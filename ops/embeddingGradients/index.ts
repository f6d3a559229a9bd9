// Stub: useFastEmbeddingGradients() is filled in by the kernel work.
export function useFastEmbeddingGradients(): void {
  throw new Error('not implemented yet');
}
