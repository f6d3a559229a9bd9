import { TRAINING } from '../../../src/app/command/trainingFlags';
import { parseBenchCtrArgs } from '../../../src/app/bench/ctr';

describe('training flags, declared once', () => {
  it('parses --epochs, --batch-size and --lr into the option names', () => {
    expect(TRAINING.flags).toEqual(['epochs', 'batch-size', 'lr']);
    expect(TRAINING.parse({ epochs: '3', 'batch-size': '64', lr: '0.01' })).toEqual({ epochs: 3, batchSize: 64, learningRate: 0.01 });
    expect(TRAINING.parse({ epochs: '3', lr: '0.01' }, ['epochs'])).toEqual({ epochs: 3 });
    expect(parseBenchCtrArgs(['--model', 'sim', '--epochs', '2', '--batch-size', '32', '--lr', '0.5'])).toMatchObject({ maxEpochs: 2, batchSize: 32, learningRate: 0.5 });
  });

  it('refuses bad values with the same message in every command', () => {
    expect(() => TRAINING.parse({ epochs: '1.5' })).toThrow("--epochs must be a positive integer, received '1.5'");
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--batch-size', '0'])).toThrow("--batch-size must be a positive integer, received '0'");
    expect(() => TRAINING.parse({ lr: '-1' })).toThrow("--lr must be a positive number, received '-1'");
  });
});
