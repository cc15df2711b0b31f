import { db } from '../../../lib/db';

export const dynamic = 'force-dynamic';

export async function GET(): Promise<Response> {
  // The first request starts the listener (nothing connects at import or during next build).
  await db.prisma.mentor.count({ cacheStrategy: { ttl: 1 } });
  return Response.json({ listening: db.prisma.$poolguard.cache.listening, stats: db.prisma.$poolguard.stats,
                         drops: db.drops });
}
