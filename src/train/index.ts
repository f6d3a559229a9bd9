export { trainLoop } from './loop';
export type { EpochRecord, PhaseSwitch, SecondPhase, StepOutcome, StopReason, TrainLoopOptions, TrainLoopResult, TrainLoopSpec } from './loop';
export { ProgressReporter, formatDuration } from './progress';
export type { ProgressMode, ProgressSink } from './progress';
export { readCheckpoint, writeCheckpoint } from './checkpoint';
export type { CheckpointInfo, CheckpointManifest } from './checkpoint';
export { MAX_WASM_THREADS, useWasmThreads } from './threads';
export { CollectiveKVRecipe, RECIPE_DEFAULTS, collectiveKVRecipe, collectiveLayers, recipePhase, summarizeSwitch } from './recipe';
export type { CollectiveKVRecipeOptions, RecipeOptions, RecipePhaseOptions, RecipeSwitchRecord, SwitchSummary } from './recipe';
