import { cache, pool } from '../../../lib/db.js';

export const dynamic = 'force-dynamic';

export async function GET(request) {
  const mentor = new URL(request.url).searchParams.get('mentor') ?? '1';
  const fresh = new URL(request.url).searchParams.get('fresh') === '1';
  const schools = await cache.get(
    'mentor',
    mentor,
    async () => {
      const res = await pool.query('SELECT count(*)::int AS n FROM pg_catalog.pg_database');
      return res.rows[0].n;
    },
    { fresh },
  );
  return Response.json({
    schools,
    listening: cache.listening,
    listenerSource: cache.listenerSource,
    stats: cache.stats,
  });
}
