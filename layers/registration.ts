// Claims the layer classes for this copy of the package, after their modules registered them with
// tfjs (see claimClasses in ops/util/registry.ts): with two copies in one process (the ES module and
// the CommonJS build), the first copy's classes stay registered and the second warns once.
import { claimClasses } from '../ops/util/registry';
import { CollectiveKVAttention } from './CollectiveKVAttention';
import { PACKAGE } from './common';
import { GlobalKVPool } from './GlobalKVPool';
import { MultiHeadAttention } from './MultiHeadAttention';
import { StreamDropout } from './StreamDropout';
import { UserKVProjector } from './UserKVProjector';

/** Every layer class this floor registers with tfjs's serialization map (under 'collectivekv'). */
export const LAYER_CLASSES = [MultiHeadAttention, CollectiveKVAttention, GlobalKVPool, UserKVProjector, StreamDropout] as const;

claimClasses(LAYER_CLASSES, PACKAGE);
