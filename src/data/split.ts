import { Sequences } from './synthetic';

/** One next-item evaluation case: rank `target` after seeing `history` (oldest first). */
export interface NextItemCase {
  /** Index of the user in the source `Sequences`. */
  user: number;
  history: readonly number[];
  target: number;
}

export interface LeaveOneOutSplit {
  numItems: number;
  /** Per user (same order as the source): the items used for training. */
  train: number[][];
  /** Second to last item of each user with at least 3 items; history = the training items. */
  validation: NextItemCase[];
  /** Last item of each user with at least 3 items; history = training items plus the validation item. */
  test: NextItemCase[];
}

/**
 * The standard next-item protocol (SASRec, BERT4Rec): the last item of each user is the test
 * target, the second to last the validation target, the rest is training. Users with fewer than
 * 3 items keep everything for training and have no evaluation case (as in SASRec's reference code).
 */
export function leaveOneOut(data: Sequences): LeaveOneOutSplit {
  const train: number[][] = [];
  const validation: NextItemCase[] = [];
  const test: NextItemCase[] = [];
  data.sequences.forEach((seq, user) => {
    if (seq.length < 3) {
      train.push(seq.slice());
      return;
    }
    const trainItems = seq.slice(0, -2);
    train.push(trainItems);
    validation.push({ user, history: trainItems, target: seq[seq.length - 2] });
    test.push({ user, history: seq.slice(0, -1), target: seq[seq.length - 1] });
  });
  return { numItems: data.numItems, train, validation, test };
}
