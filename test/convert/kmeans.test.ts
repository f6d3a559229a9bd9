import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { kmeans } from '../../src/convert/kmeans';
import { seededRandom } from '../../src/data/random';
import { normals } from '../analysis/planted';

tf.env().set('IS_TEST', true); // no tfjs-node banner

/** n points around `centers` well-separated centers in `dim` dimensions. */
function blobs(centers: number, perCenter: number, dim: number, seed: number): Float64Array {
  const z = normals(seed);
  const means = Array.from({ length: centers }, () => Array.from({ length: dim }, () => 10 * z()));
  const out: number[] = [];
  for (let c = 0; c < centers; c++) for (let i = 0; i < perCenter; i++) out.push(...means[c].map((m) => m + 0.1 * z()));
  return Float64Array.from(out);
}

describe('kmeans', () => {
  const points = blobs(8, 30, 5, 1);

  test('deterministic under a seed; another seed may differ but is equally valid', () => {
    const a = kmeans(points, 240, 5, 8, { seed: 7 });
    const b = kmeans(points, 240, 5, 8, { seed: 7 });
    expect(Array.from(b.centroids)).toEqual(Array.from(a.centroids));
    expect(Array.from(b.assignment)).toEqual(Array.from(a.assignment));
    const c = kmeans(points, 240, 5, 24, { seed: 8 });
    const d = kmeans(points, 240, 5, 24, { seed: 9 });
    expect(Array.from(c.centroids)).not.toEqual(Array.from(d.centroids));
  });

  test('recovers separated blobs: each blob is one cluster, inertia is the noise', () => {
    const r = kmeans(points, 240, 5, 8, { seed: 3 });
    for (let blob = 0; blob < 8; blob++) {
      const labels = new Set(Array.from(r.assignment.subarray(blob * 30, blob * 30 + 30)));
      expect(labels.size).toBe(1);
    }
    expect(Array.from(r.sizes)).toEqual(new Array(8).fill(30));
    // 240 points x 5 dims x 0.1^2 noise variance, minus the fitted means.
    expect(r.inertia).toBeLessThan(240 * 5 * 0.01 * 1.3);
  });

  test('no empty clusters even when k exceeds the natural clusters and points are duplicated', () => {
    // 3 tight blobs of 40 identical-ish points plus 20 distinct outliers, k = 20.
    const z = normals(4);
    const data: number[] = [];
    for (let i = 0; i < 120; i++) data.push(Math.floor(i / 40) * 50, 0);
    for (let i = 0; i < 20; i++) data.push(z(), 200 + 10 * z());
    const r = kmeans(Float64Array.from(data), 140, 2, 20, { seed: 5 });
    expect(Math.min(...r.sizes)).toBeGreaterThan(0);
    expect(r.sizes.reduce((s, x) => s + x, 0)).toBe(140);
    // Assignment is nearest-centroid under the returned centroids.
    for (let i = 0; i < 140; i++) {
      const d = (j: number) => (data[2 * i] - r.centroids[2 * j]) ** 2 + (data[2 * i + 1] - r.centroids[2 * j + 1]) ** 2;
      for (let j = 0; j < 20; j++) expect(d(r.assignment[i])).toBeLessThanOrEqual(d(j) + 1e-9);
    }
  });

  test('the k-means++ draw skips points by the triangle inequality yet picks exactly the centers of the full update', () => {
    // Many small clusters, more centers than clusters: late draws are near most points' centers, so most are skipped.
    const [dim, k] = [6, 60];
    const x = blobs(40, 12, dim, 4);
    const n = x.length / dim;
    const rand = seededRandom(5);
    const want = new Float64Array(k * dim);
    const copy = (j: number, i: number) => want.set(x.subarray(i * dim, (i + 1) * dim), j * dim);
    const dist = (i: number, j: number) => {
      let s = 0;
      for (let t = 0; t < dim; t++) s += (x[i * dim + t] - want[j * dim + t]) ** 2;
      return s;
    };
    copy(0, Math.floor(rand() * n));
    const d = Float64Array.from({ length: n }, (_, i) => dist(i, 0));
    for (let j = 1; j < k; j++) {
      const total = d.reduce((s, v) => s + v, 0);
      let pick = 0;
      let target = rand() * total;
      while (pick < n - 1 && (target -= d[pick]) > 0) pick++;
      copy(j, pick);
      for (let i = 0; i < n; i++) d[i] = Math.min(d[i], dist(i, j));
    }
    // maxIterations 0: the centroids are the k-means++ draw itself.
    expect(Array.from(kmeans(x, n, dim, k, { seed: 5, maxIterations: 0 }).centroids)).toEqual(Array.from(want));
  });

  test('argument errors name the argument and the value', () => {
    expect(() => kmeans(points, 240, 5, 0)).toThrow(/k must be a positive integer, received 0/);
    expect(() => kmeans(points, 240, 5, 300)).toThrow(/at least k = 300 points, received 240/);
    expect(() => kmeans(points, 100, 5, 3)).toThrow(/n\*dim = 500 values, received 1200/);
  });
});

describe('kmeans on problems big enough for the matmul assignment', () => {
  // 4000 points x 200 centroids x 32 dims is above the plain-loop threshold. Duplicated points and
  // duplicated blob centres make exact ties, which the float64 settling must break like the loops.
  const n = 4000;
  const dim = 32;
  const z = normals(11);
  const centres = Array.from({ length: 150 }, () => Array.from({ length: dim }, () => 3 * z()));
  const data = new Float64Array(n * dim);
  for (let i = 0; i < n; i++) {
    const centre = centres[i % 150];
    for (let t = 0; t < dim; t++) data[i * dim + t] = i % 7 === 0 ? centre[t] : centre[t] + 0.3 * z();
  }

  const runs = new Map<string, ReturnType<typeof kmeans>>();
  for (const backend of ['cpu', 'wasm']) {
    test(`${backend}: every point is assigned its float64 nearest centroid, no cluster empty`, async () => {
      await tf.setBackend(backend);
      const before = tf.memory().numTensors;
      const r = kmeans(data, n, dim, 200, { seed: 2, maxIterations: 6 });
      expect(tf.memory().numTensors).toBe(before);
      expect(Math.min(...r.sizes)).toBeGreaterThan(0);
      let inertia = 0;
      for (let i = 0; i < n; i++) {
        let best = 0;
        let bestD = Infinity;
        for (let j = 0; j < 200; j++) {
          let d = 0;
          for (let t = 0; t < dim; t++) d += (data[i * dim + t] - r.centroids[j * dim + t]) ** 2;
          if (d < bestD) { bestD = d; best = j; }
        }
        expect(r.assignment[i]).toBe(best);
        inertia += bestD;
      }
      expect(r.inertia).toBeCloseTo(inertia, 6);
      runs.set(backend, r);
    });
  }

  test('the same centroids and assignment on cpu and wasm', () => {
    const [cpu, wasm] = [runs.get('cpu'), runs.get('wasm')];
    expect(cpu).toBeDefined();
    expect(Array.from(wasm?.assignment ?? [])).toEqual(Array.from(cpu?.assignment ?? []));
    expect(Array.from(wasm?.centroids ?? [])).toEqual(Array.from(cpu?.centroids ?? []));
  });
});
