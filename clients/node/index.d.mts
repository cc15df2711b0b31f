// Types of the ESM entry (index.mjs): the named exports of index.d.ts, and the same as default.
export * from './index.js';
import * as cache from './index.js';
export default cache;
