/*
 * app_stats.cpp — what pg_poolguard did to each app identity (database, role, application_name):
 * sessions ended by reason, queries cancelled, logins refused, invalidations its commits
 * published.  Behind poolguard.app_summary and the poolguard_app_* metrics.
 *
 * Note about locking:
 *   - The table ("pg_poolguard app stats", app_stats_capacity entries) is guarded by the LWLock
 *     of tranche "pg_poolguard app stats": LW_EXCLUSIVE to count or reset, LW_SHARED to copy
 *     out.  Under it only plain data is compared and copied (no palloc, nothing that can error,
 *     nothing whose cost a tenant controls beyond the fixed-size scan).  It is a leaf: nothing is
 *     acquired under it, and callers hold no other pg_poolguard lock when they take it.
 *   - Bounded per database: a database holds at most app_stats_per_database identities; the
 *     rest of its identities (any client may choose an application_name) count together in its
 *     overflow entry, so one database's clients cannot push out another's beyond that bound.
 *     When the whole table is full, the entry with the fewest events gives way.
 */
#include "stats/stats.h"

#include "pg/guard.h"
#include "pg/shmem.h"

namespace poolguard
{

namespace
{

constexpr const char *app_stats_tranche = "pg_poolguard app stats";

struct AppStatsTable
{
    LWLock *lock;
    AppCounters entries[app_stats_capacity];
};

AppStatsTable *app_stats = nullptr;

Size app_stats_size(void)
{
    return MAXALIGN(sizeof(AppStatsTable));
}

void app_stats_init(void)
{
    bool found;

    app_stats =
        static_cast<AppStatsTable *>(ShmemInitStruct("pg_poolguard app stats", app_stats_size(), &found));
    if (!found)
    {
        app_stats->lock = &(GetNamedLWLockTranche(app_stats_tranche))->lock;
        memset(app_stats->entries, 0, sizeof(app_stats->entries));
    }
}

int64 events_of(const AppCounters *c)
{
    return c->terminated + c->cancelled + c->rejected + c->invalidations;
}

bool same(const char *a, const char *b)
{
    return strncmp(a, b, NAMEDATALEN) == 0;
}

AppCounters *claim(AppCounters *c, const char *database, const char *role, const char *app, bool other)
{
    memset(c, 0, sizeof(AppCounters));
    strlcpy(c->database, database, NAMEDATALEN);
    strlcpy(c->role, other ? "" : role, NAMEDATALEN);
    strlcpy(c->application_name, other ? "" : app, NAMEDATALEN);
    c->other = other;
    return c;
}

/*
 * The entry of an identity, created when missing.  Caller holds the lock exclusively.  Plain
 * data only.  Never NULL.
 */
AppCounters *app_entry(const char *database, const char *role, const char *app)
{
    AppCounters *free_entry = nullptr, *fewest = nullptr, *overflow = nullptr;
    int in_database = 0;
    for (int i = 0; i < app_stats_capacity; i++)
    {
        AppCounters *c = &app_stats->entries[i];
        if (c->database[0] == '\0')
        {
            if (free_entry == nullptr)
                free_entry = c;
            continue;
        }
        if (same(c->database, database))
        {
            if (c->other)
                overflow = c;
            else if (same(c->role, role) && same(c->application_name, app))
                return c;
            else
                in_database++;
        }
        if (!c->other && (fewest == nullptr || events_of(c) < events_of(fewest)))
            fewest = c;
    }
    if (in_database >= app_stats_per_database)
    {
        if (overflow != nullptr)
            return overflow;
        return claim(free_entry != nullptr ? free_entry : fewest, database, role, app, true);
    }
    return claim(free_entry != nullptr ? free_entry : fewest, database, role, app, false);
}

} // namespace

void app_stats_register(void)
{
    shmem_register(app_stats_size, app_stats_init);
    shmem_register_lwlocks(app_stats_tranche, 1);
}

void stats_count_app_event(const char *database, const char *role, const char *application_name,
                           AppEvent event, core::Reason reason, int64 n)
{
    if (app_stats == nullptr || n <= 0)
        return;
    /* Truncated to NAMEDATALEN - 1 bytes like the names they are compared with (plain copies). */
    char db[NAMEDATALEN], rl[NAMEDATALEN], app[NAMEDATALEN];
    strlcpy(db, database ? database : "", NAMEDATALEN);
    strlcpy(rl, role ? role : "", NAMEDATALEN);
    strlcpy(app, application_name ? application_name : "", NAMEDATALEN);
    if (db[0] == '\0')
        return; /* not a database session */
    TimestampTz now = GetCurrentTimestamp();

    LWLockAcquire(app_stats->lock, LW_EXCLUSIVE);
    AppCounters *c = app_entry(db, rl, app);
    switch (event)
    {
    case AppEvent::session_terminated:
        c->terminated += n;
        break;
    case AppEvent::query_cancelled:
        c->cancelled += n;
        break;
    case AppEvent::login_rejected:
        c->rejected += n;
        break;
    case AppEvent::invalidations:
        c->invalidations += n;
        break;
    }
    if (reason != core::Reason::none)
        c->by_reason[(int)reason] += n;
    c->last_event = now;
    LWLockRelease(app_stats->lock);
}

int stats_copy_app_counters(AppCounters **counters)
{
    require_shared_memory();
    AppCounters *copy = static_cast<AppCounters *>(palloc(sizeof(AppCounters) * app_stats_capacity));
    LWLockAcquire(app_stats->lock, LW_SHARED);
    memcpy(copy, app_stats->entries, sizeof(AppCounters) * app_stats_capacity);
    LWLockRelease(app_stats->lock);
    *counters = copy;
    return app_stats_capacity;
}

void stats_reset_app_counters(void)
{
    if (app_stats == nullptr)
        return;
    LWLockAcquire(app_stats->lock, LW_EXCLUSIVE);
    memset(app_stats->entries, 0, sizeof(app_stats->entries));
    LWLockRelease(app_stats->lock);
}

} // namespace poolguard
