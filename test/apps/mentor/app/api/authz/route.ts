// May this mentor access this school?  Through the cached list of the mentor's schools (no bypass).
import { db } from '../../../lib/db';

export const dynamic = 'force-dynamic';

export async function GET(request: Request): Promise<Response> {
  const startedAt = Date.now();
  const url = new URL(request.url);
  const mentorId = Number(url.searchParams.get('mentor'));
  const schoolId = Number(url.searchParams.get('school'));
  const cached = url.searchParams.get('cache') !== '0';
  const rows = await db.prisma.mentorAssignment.findMany({
    where: { mentorId },
    select: { schoolId: true },
    ...(cached ? { cacheStrategy: { ttl: 300 } } : {}),
  });
  const allowed = rows.some((r) => r.schoolId === schoolId);
  return Response.json({ allowed, startedAt, finishedAt: Date.now() });
}
