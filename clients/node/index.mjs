// ESM entry of pg-poolguard-cache: the same classes as the CommonJS entry (index.js).
import cjs from './index.js';

export const {
  PoolguardCache,
  LruTtl,
  parsePayload,
  Rejection,
  PoolguardSetupError,
  poolSizing,
  toQueryable,
  listenerTargets,
  connectFirst,
} = cjs;
export default cjs;
