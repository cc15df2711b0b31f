'use strict';
// The pool-settings guide of the README, as code: what test/apps/app.js does with each client.
//   - every app sets an application_name (policies match it);
//   - the pool closes idle connections before the policy's idle_timeout and poolguard.idle_grace
//     (IDLE_CLOSE_MS below both), so the server never has to end them;
//   - pg: pool.on('error') always, and client.on('error') while a client is checked out;
//   - an idempotent request is retried when the connection was ended under it (57P01 & co.) or
//     the login was refused at the cap (53300), with a short backoff.

const IDLE_CLOSE_MS = 500; // tests: idle_timeout 2 s, idle_grace 1 s

// SQLSTATEs and driver codes that mean "the connection went away or was not admitted; nothing
// of the request ran, or it was idempotent": pg, postgres.js and Prisma (through adapter-pg)
// put them in different places.
const RETRY_CODES = new Set([
  '57P01',
  '53300',
  '08006',
  '08003',
  '08000',
  'ECONNRESET',
  'EPIPE',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
]);
const RETRY_MESSAGES =
  /Connection terminated|terminating connection|too many connections for poolguard policy|Client has encountered a connection error|server closed the connection/i;

function* errorChain(err, depth = 0) {
  if (err === null || err === undefined || depth > 5) return;
  yield err;
  if (typeof err !== 'object') return;
  yield* errorChain(err.cause, depth + 1);
  if (err.meta) yield* errorChain(err.meta.driverAdapterError, depth + 1);
}

function isRetryable(err) {
  for (const e of errorChain(err)) {
    if (typeof e !== 'object') continue;
    if (
      RETRY_CODES.has(e.code) ||
      RETRY_CODES.has(e.originalCode) ||
      (e.kind && RETRY_CODES.has(e.cause?.originalCode))
    )
      return true;
    if (RETRY_MESSAGES.test(String(e.message ?? '')) || RETRY_MESSAGES.test(String(e.originalMessage ?? '')))
      return true;
  }
  return false;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Runs an idempotent request; retries connection losses and cap refusals for up to budgetMs.
async function withRetry(request, { budgetMs = 8000, onRetry = () => {} } = {}) {
  const deadline = Date.now() + budgetMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await request();
    } catch (err) {
      if (!isRetryable(err) || Date.now() > deadline) throw err;
      onRetry(err);
      await sleep(Math.min(50 * 2 ** (attempt - 1), 500) * (0.5 + Math.random()));
    }
  }
}

module.exports = { IDLE_CLOSE_MS, isRetryable, withRetry, sleep };
