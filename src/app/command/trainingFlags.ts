// The training flags every training command takes (`demo`, `train`, `bench quality`, `bench convert`,
// `bench ctr`), declared once. The budget flags (--max-minutes, --seed) are not here yet: their checks
// still differ between commands (0 allowed or not).
import { FlagGroup } from './flagGroup';
import { positiveInt, positiveNumber } from './flags';

export interface TrainingFlagValues {
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
}

export type TrainingFlag = 'epochs' | 'batch-size' | 'lr';

export const TRAINING = new FlagGroup<TrainingFlag, TrainingFlagValues>({
  epochs: { key: 'epochs', parse: positiveInt },
  'batch-size': { key: 'batchSize', parse: positiveInt },
  lr: { key: 'learningRate', parse: positiveNumber },
});
