// The shape of report.json: every number in report.md and in the README table is read from here.
// Result objects are the benchmarks' own JSON (typed structurally where a bench is still moving).
import type { BenchOpsResult } from '../bench/ops';
import type { BenchServeResult } from '../bench/serve';
import type { BenchConvertResult } from '../bench/convert';
import type { QualityRow } from '../bench/quality';

export const REPORT_FORMAT = 'collectivekv-report/1';

export interface ReportMeta {
  format: typeof REPORT_FORMAT;
  date: string;
  machine: { os: string; cpu: string; cores: number; memoryGiB: number };
  node: string;
  backend: string;
  versions: Record<string, string>;
  gitCommit: string | null;
  command: string;
  quick: boolean;
  maxMinutes: number;
  totalSeconds: number;
  /** True while the run is in progress (partial results written after each part). */
  partial: boolean;
}

export interface DatasetInfo {
  name: string;
  path: string | null;
  format: string;
  found: boolean;
  used: boolean;
  users?: number;
  items?: number;
  note?: string;
}

export interface PartRecord {
  name: string;
  dataset: string | null;
  status: 'ok' | 'failed' | 'skipped';
  seconds: number;
  budgetSeconds: number;
  error?: string;
  note?: string;
}

/** One arm of `bench quality`: the fields of its QualityRow that the report reads. */
export type QualityArm = Pick<QualityRow, 'hr10' | 'ndcg10' | 'mrr10' | 'bytesPerToken' | 'compressionRatio' | 'epochs' | 'trainSeconds'>
  & { stoppedBy?: string };

export interface QualityResult {
  model: string;
  options?: Record<string, unknown>;
  mha: QualityArm;
  collectivekv: QualityArm;
  ndcg10Ratio?: number;
  truncatedByTime?: boolean;
}

export interface SweepPoint {
  userDim: number;
  poolSize: number;
  bytesPerToken: number;
  /** Full-KV bytes per token of the same model / these bytes. */
  compressionRatio: number;
  hr10: number;
  ndcg10: number;
  epochs: number;
  trainSeconds: number;
  stoppedBy?: string;
}

export interface SweepResult {
  model: string;
  settings: Record<string, number | string>;
  baseline: SweepPoint;
  points: SweepPoint[];
  /**
   * Among the userDim sweep (default pool size): the smallest userDim whose NDCG@10 is >= 97% of the
   * top one's or within 2 standard errors of it (paired per-user difference on the same test users).
   */
  bestUserDim: number | null;
  /** The same by the 97% rule alone (absent in reports written before it existed). */
  bestUserDimByTolerance?: number | null;
  /** Per userDim (key): top userDim's NDCG@10 minus this one's, per test user: mean and standard error. */
  gapsToTop?: Record<string, { mean: number; stdErr: number }>;
}

export interface EnergyLayer {
  layer: string;
  keys: { cumulativeEnergy: number[]; rank90: number; rank95: number; rank99: number };
  values: { cumulativeEnergy: number[]; rank90: number; rank95: number; rank99: number };
  suggestedUserDim: number;
  reasoning: string;
}

export interface AnalysisResult {
  model: string;
  users: number;
  tokens: number;
  layers: EnergyLayer[];
}

/** src/app/bench/ctr.ts BenchCtrResult, the fields the report reads. */
export interface CtrResult {
  model: string;
  data: string;
  settings: Record<string, unknown>;
  mha: { auc: number; gauc: number; logloss: number; bytesPerToken: number; trainSeconds: number };
  collectivekv: { auc: number; gauc: number; logloss: number; bytesPerToken: number; trainSeconds: number };
  popularity?: { auc: number; gauc: number };
}

export interface ReportResults {
  ops?: BenchOpsResult;
  serve?: BenchServeResult;
  quality?: Record<string, QualityResult>;
  sweep?: Record<string, SweepResult>;
  analysis?: Record<string, AnalysisResult>;
  convert?: Record<string, BenchConvertResult>;
  ctr?: Record<string, CtrResult>;
}

export interface ReportData {
  meta: ReportMeta;
  datasets: DatasetInfo[];
  parts: PartRecord[];
  /** Settings per part, so every number says where it comes from. */
  settings: Record<string, Record<string, unknown>>;
  results: ReportResults;
}
