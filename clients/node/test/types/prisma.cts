// Type-level use of pg-poolguard-cache/prisma against the test schema's generated client
// (test/prisma/generated/cache, written by `prisma generate` in test/prisma.test.js).
import { PrismaClient } from '../prisma/generated/cache';
import { PrismaPg } from '@prisma/adapter-pg';
import { withPoolguardCache, prismaPoolConfig } from 'pg-poolguard-cache/prisma';

const { config } = prismaPoolConfig(process.env.DATABASE_URL);
const prisma = new PrismaClient({ adapter: new PrismaPg(config) }).$extends(withPoolguardCache({ max: 100 }));

async function use(): Promise<void> {
  const rows = await prisma.mentorAssignment.findMany({
    where: { mentorId: 1 },
    cacheStrategy: { ttl: 60, swr: 30, tags: ['m1'] },
  });
  const first: number = rows[0].schoolId;
  const mentor = await prisma.mentor.findUnique({
    where: { id: 1 },
    include: { assignments: true },
    cacheStrategy: { ttl: 5, fresh: true },
  });
  const n: number | undefined = mentor?.assignments.length;
  const c: number = await prisma.mentor.count({ cacheStrategy: { ttl: 5 } });
  const plain = await prisma.school.findMany();
  await prisma.$poolguard.invalidate({ tags: ['m1'] });
  await prisma.$transaction(async (tx) => {
    await tx.mentor.update({ where: { id: 1 }, data: { name: 'x' } });
    await prisma.$poolguard.invalidate({ tags: ['m1'] }, tx);
  });
  const hits: number = prisma.$poolguard.stats.hits;
  // @ts-expect-error ttl is a number of seconds
  await prisma.mentor.findMany({ cacheStrategy: { ttl: '60' } });
  // @ts-expect-error no such option
  await prisma.mentor.findMany({ cacheStrategy: { tll: 60 } });
  void first;
  void n;
  void c;
  void plain;
  void hits;
}
void use;
