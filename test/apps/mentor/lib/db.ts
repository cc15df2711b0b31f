// One Prisma client per process, extended with pg-poolguard-cache: the only lines an app adds.
import { PrismaClient } from '@prisma/client';
import { PrismaPg } from '@prisma/adapter-pg';
import { withPoolguardCache, prismaPoolConfig } from 'pg-poolguard-cache/prisma';

function create() {
  // connection_limit & co. in DATABASE_URL are mapped to the pg.Pool (adapter-pg ignores them).
  const { config } = prismaPoolConfig(process.env.DATABASE_URL);
  const base = new PrismaClient({ adapter: new PrismaPg(config) });
  const prisma = base.$extends(withPoolguardCache({ max: 5000 }));
  // The test's instrumentation: when this instance dropped its cached assignment lists, and for
  // which rows (the row keys of the same notification; a resync drops everything).
  const drops: { at: number; keys: string[]; resync: boolean }[] = [];
  prisma.$poolguard.cache.on('invalidation', (items) => {
    const resync = items.some((i) => i.resync === true);
    if (resync || items.some((i) => i.scope === 'table:mentor_assignments')) {
      const keys = items.filter((i) => i.scope === 'mentor_assignments' && i.key !== null).map((i) => i.key as string);
      drops.push({ at: Date.now(), keys, resync });
    }
  });
  return { prisma, drops };
}

type Db = ReturnType<typeof create>;
const g = globalThis as unknown as { mentorDb?: Db };
export const db: Db = g.mentorDb ?? (g.mentorDb = create());
