// A minimal Next.js app for the offline-build test (clients/node/test/next.test.js).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

export default {
  // The client package (clients/node) is this app's workspace root: its node_modules and itself.
  turbopack: { root: path.join(here, '..', '..', '..') },
  outputFileTracingRoot: path.join(here, '..', '..', '..'),
};
