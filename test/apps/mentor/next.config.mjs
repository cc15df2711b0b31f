import path from 'node:path';
import { fileURLToPath } from 'node:url';

// pg-poolguard-cache is a file: dependency (../../../clients/node): Turbopack resolves only files
// under its root, so the root is the repository's (as in any monorepo).
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** @type {import('next').NextConfig} */
export default {
  // Loaded by Node at run time, not bundled: the Prisma client, the driver and the cache.
  serverExternalPackages: ['pg-poolguard-cache', 'pg', '@prisma/client', '@prisma/adapter-pg'],
  turbopack: { root },
  outputFileTracingRoot: root,
};
