// Revokes one assignment through Prisma.  This instance drops its cached lists at the commit.
import { db } from '../../../lib/db';

export const dynamic = 'force-dynamic';

export async function POST(request: Request): Promise<Response> {
  const { mentor, school } = (await request.json()) as { mentor: number; school: number };
  const before = Date.now();
  await db.prisma.mentorAssignment.delete({ where: { mentorId_schoolId: { mentorId: mentor, schoolId: school } } });
  const after = Date.now();
  // Dropped here before delete() returned (withPoolguardCache drops a writer's own entries at once).
  db.drops.push({ at: after, keys: [JSON.stringify([String(mentor), String(school)])], resync: false });
  return Response.json({ before, after });
}
