// A tfjs LayersModel as a directory (model.json + weights.bin, tfjs's own layout) through the
// zoo's file:// handler, so `analyze` and the tests read what `train` and `model.save` write.
import * as tfl from '@tensorflow/tfjs-layers';
import { registerFileIO } from '../../zoo/fileIO';

/** Writes DIR/model.json and DIR/weights.bin. */
export async function saveModelToDir(model: tfl.LayersModel, dir: string): Promise<void> {
  registerFileIO();
  await model.save(`file://${dir}`);
}

/**
 * Loads DIR/model.json and the weight files its manifest names. Custom layers must be registered
 * first (import the module that defines them, e.g. the zoo's sasrec).
 */
export async function loadModelFromDir(dir: string): Promise<tfl.LayersModel> {
  registerFileIO();
  try {
    return await tfl.loadLayersModel(`file://${dir}/model.json`);
  } catch (e) {
    throw new Error(`--model: expected a directory with a tfjs model.json, ${(e as Error).message}`);
  }
}
