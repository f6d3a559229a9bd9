import { modelFingerprint } from '../../src/cache/fingerprint';

export function fingerprintOf(name: string): string {
  return modelFingerprint({ trace: name }, []);
}
