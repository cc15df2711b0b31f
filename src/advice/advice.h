/*
 * advice.h — the advice feature's public interface: the worker samples every app identity
 * (database, role, application_name, client address) each scan into a fixed shared table; the
 * poolguard.pool_advice view and the poolguard_pool_advice_* metrics read it
 * (core/advice/pool_advice.h: the rules).
 */
#ifndef POOLGUARD_ADVICE_H
#define POOLGUARD_ADVICE_H

#include "pg/postgres_headers.h"

#include "core/advice/pool_advice.h"
#include "core/policy/cidr.h"

namespace poolguard
{

struct SessionScan;
struct MemoryCache;

/* One app identity's samples, copied out as plain data. */
struct AdviceEntry
{
    char database[NAMEDATALEN]; /* "" = free entry */
    char role[NAMEDATALEN];
    char application_name[NAMEDATALEN];
    core::IpAddress client; /* family 0: Unix socket */
    bool other;             /* a database's overflow: its identities past advice_per_database */
    int32 held_now;
    int32 idle_now;
    int64 idle_memory;          /* private memory of its idle sessions, bytes; -1 = none measured */
    TimestampTz idle_memory_at; /* when it was read (every advice_memory_interval_ms) */
    TimestampTz sampled_at;
    TimestampTz last_held; /* the last scan that saw a connection of it */
    core::AdviceRing ring;
    /* Scratch of the scan being recorded (under the lock). */
    int32 scan_held, scan_active, scan_idle;
    int64 scan_memory;
};

constexpr int advice_capacity = 128;
constexpr int advice_per_database = 16;

/* The worker re-reads the idle sessions' memory for the advice at most this often. */
constexpr int advice_memory_interval_ms = 10000;

void advice_register(void);

/*
 * The worker, each scan (in its transaction, no pg_poolguard lock held): counts each identity's
 * connections and active sessions and records them; every advice_memory_interval_ms also the
 * private memory of its idle sessions (through the worker's memory cache).
 */
void advice_sample(const SessionScan *scan, MemoryCache *cache);

/* Copies the table (palloc'd); returns how many entries (free ones have database ""). */
int advice_copy(AdviceEntry **entries);

/* The advice of an entry now (poolguard.advice_window). */
core::Advice advice_of(const AdviceEntry *entry, TimestampTz now);

} // namespace poolguard

#endif
