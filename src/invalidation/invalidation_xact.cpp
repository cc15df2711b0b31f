/*
 * invalidation_xact.cpp — poolguard.invalidate(): the per-transaction pending list.
 *
 * invalidate() only records (scope, key) in a list that lives in TopTransactionContext,
 * deduplicated by a small hash index.  A rolled-back subtransaction removes what it (and its
 * committed children) added; an aborted transaction drops the list; a committed one hands it to
 * invalidation_publish_committed() from XACT_EVENT_COMMIT, which PostgreSQL runs after
 * ProcArrayEndTransaction: the changes are visible to every new snapshot by then, so a reader
 * that sees the new generation also sees the new data.
 *
 * Bound (poolguard.max_invalidations_per_transaction, issue 19): the commit path runs under the
 * lock every database shares, in time proportional to the transaction's items, so no
 * transaction publishes more than the bound.  The item that would exceed it turns the whole
 * transaction into "collapsed" mode: every item it has and every later one becomes the
 * scope-wide item of its scope (a reader reloads more, never less).  Only a transaction with
 * more distinct scopes than the bound gets an error.  All of it is backend-local work, before
 * the commit.
 */
#include "core/invalidation/invalidation_key.h"
#include "core/invalidation/notify_payload.h"

#include "invalidation/invalidation_internal.h"

#include "pg/guard.h"
#include "pg/guc.h"
#include "pg/shmem.h"

namespace poolguard
{

namespace
{

bool callbacks_registered = false;

/* The current transaction's list (NULL when it has none); memory in TopTransactionContext. */
PendingInvalidation *pending_items = nullptr;
int pending_count = 0;
int pending_capacity = 0;
int *pending_index = nullptr; /* open addressing: index into pending_items, or -1 */
int bucket_count = 0;
bool pending_collapsed = false; /* past the bound: every item is scope-wide */

void forget_pending(void)
{
    pending_items = nullptr;
    pending_count = 0;
    pending_capacity = 0;
    pending_index = nullptr;
    bucket_count = 0;
    pending_collapsed = false;
}

uint64 item_hash(const char *scope, int scope_len, const char *key, int key_len)
{
    return invalidation_key_hash(MyDatabaseId, scope, scope_len, key, key_len);
}

bool same_item(const PendingInvalidation *a, uint64 hash, const char *scope, int scope_len, const char *key,
               int key_len)
{
    if (a->hash != hash || a->scope_len != scope_len || a->key_len != key_len)
        return false;
    if (memcmp(a->scope, scope, scope_len) != 0)
        return false;
    return key == nullptr || memcmp(a->key, key, key_len) == 0;
}

void index_item(int i)
{
    int mask = bucket_count - 1;
    for (int b = (int)(pending_items[i].hash & mask);; b = (b + 1) & mask)
        if (pending_index[b] < 0)
        {
            pending_index[b] = i;
            return;
        }
}

/* (Re)builds the hash index with room for twice the items (load factor <= 1/2). */
void rebuild_index(int new_bucket_count)
{
    pending_index =
        static_cast<int *>(MemoryContextAlloc(TopTransactionContext, sizeof(int) * new_bucket_count));
    bucket_count = new_bucket_count;
    for (int b = 0; b < bucket_count; b++)
        pending_index[b] = -1;
    for (int i = 0; i < pending_count; i++)
        index_item(i);
}

/*
 * Past the bound: replaces the list by one scope-wide item per scope, each kept by the earliest
 * (sub)transaction that asked for any of its scope's items (a later one rolling back leaves it,
 * the earliest rolling back removes every item it covers too: they are all its or its children's).
 */
void collapse_to_scopes(void)
{
    int kept = 0;
    int mask = bucket_count - 1;
    for (int b = 0; b < bucket_count; b++)
        pending_index[b] = -1;
    for (int i = 0; i < pending_count; i++)
    {
        PendingInvalidation it = pending_items[i];
        it.hash = item_hash(it.scope, it.scope_len, nullptr, 0);
        it.key = nullptr;
        it.key_len = -1;
        int b = (int)(it.hash & mask);
        for (; pending_index[b] >= 0; b = (b + 1) & mask)
        {
            PendingInvalidation *seen = &pending_items[pending_index[b]];
            if (same_item(seen, it.hash, it.scope, it.scope_len, nullptr, -1))
                break;
        }
        if (pending_index[b] >= 0)
        {
            PendingInvalidation *seen = &pending_items[pending_index[b]];
            seen->subxact = Min(seen->subxact, it.subxact);
            continue;
        }
        pending_items[kept] = it; /* kept <= i: never overwrites an item not yet read */
        pending_index[b] = kept++;
    }
    pending_count = kept;
    pending_collapsed = true;
}

/* Drops the items the aborted subtransaction `subxact` or its children added. */
void drop_subtransaction(SubTransactionId subxact)
{
    int kept = 0;
    for (int i = 0; i < pending_count; i++)
        if (pending_items[i].subxact < subxact)
            pending_items[kept++] = pending_items[i];
    if (kept == pending_count)
        return;
    pending_count = kept;
    rebuild_index(bucket_count);
}

void xact_callback(XactEvent event, void *arg)
{
    switch (event)
    {
    case XACT_EVENT_PRE_PREPARE:
        if (pending_count > 0)
            ereport(ERROR,
                    (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                     errmsg("cannot PREPARE a transaction that has scheduled cache invalidations"),
                     errdetail("poolguard.invalidate() publishes at commit, which a prepared transaction "
                               "defers to COMMIT PREPARED."),
                     errhint("Call poolguard.invalidate() in a transaction that is committed directly.")));
        break;
    case XACT_EVENT_PRE_COMMIT:
        /* Errors are still allowed here: the WAL record's buffer is built now, filled in at commit. */
        if (pending_count > 0)
            invalidation_wal_prepare(pending_items, pending_count);
        break;
    case XACT_EVENT_COMMIT:
        /*
         * The transaction is committed: nothing here may raise an error (it would turn into a
         * PANIC).  The publication path uses only atomics, an LWLock, memcpy and LOG messages,
         * and no C++ that can throw, so there is no pg_guard here on purpose.
         */
        if (pending_count > 0)
            invalidation_publish_committed(pending_items, pending_count);
        forget_pending();
        invalidation_wal_forget();
        break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PREPARE:
    case XACT_EVENT_PARALLEL_COMMIT:
    case XACT_EVENT_PARALLEL_ABORT:
        forget_pending();
        invalidation_wal_forget();
        break;
    default:
        break;
    }
}

void subxact_callback(SubXactEvent event, SubTransactionId subxact, SubTransactionId parent, void *arg)
{
    if (event == SUBXACT_EVENT_ABORT_SUB && pending_count > 0)
        drop_subtransaction(subxact);
}

} // namespace

void invalidation_init(void)
{
    invalidation_register_shmem();
    invalidation_feed_register_shmem(); /* after the generations: its horizon starts at their seed */
    invalidation_wal_register();
}

void invalidation_validate(const char *scope, int scope_len, const char *key, int key_len,
                           bool for_publication)
{
    if (scope == nullptr)
        ereport(ERROR,
                (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("invalidation scope must not be NULL"),
                 errdetail("Every invalidation belongs to a scope, such as 'mentor'."),
                 errhint("Pass a scope name; pass key => NULL to invalidate the whole scope.")));
    if (scope_len == 0)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("invalidation scope must not be empty"),
                 errdetail("Every invalidation belongs to a scope, such as 'mentor'."),
                 errhint("Pass a non-empty scope name.")));
    if (scope_len > (int)core::max_scope_bytes)
        ereport(ERROR, (errcode(ERRCODE_NAME_TOO_LONG), errmsg("invalidation scope is too long"),
                        errdetail("The scope is %d bytes long; at most %d bytes are allowed.", scope_len,
                                  (int)core::max_scope_bytes),
                        errhint("Use a short scope name and put the identifying part in the key.")));
    if (key != nullptr && key_len > (int)core::max_key_bytes)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("invalidation key is too long"),
                        errdetail("The key is %d bytes long; at most %d bytes are allowed.", key_len,
                                  (int)core::max_key_bytes),
                        errhint("Invalidate by an identifier (such as a primary key or a hash) rather than "
                                "by the cached value.")));
    /* Cannot happen within the limits above; checked so that a future limit change cannot break NOTIFY. */
    if (for_publication && core::item_json_length(scope, scope_len, key, key_len, PG_UINT64_MAX, true) + 2 >
                               core::max_payload_bytes)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("invalidation does not fit in one notification"),
                        errdetail("Its JSON item would exceed the %d-byte NOTIFY payload limit.",
                                  (int)core::max_payload_bytes),
                        errhint("Use a shorter key.")));
}

void invalidation_schedule(const char *scope, int scope_len, const char *key, int key_len)
{
    if (RecoveryInProgress())
        ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                        errmsg("cannot invalidate caches during recovery"),
                        errdetail("Invalidations are published by the primary server."),
                        errhint("Run the change and its invalidation on the primary.")));
    if (IsInParallelMode())
        ereport(ERROR, (errcode(ERRCODE_INVALID_TRANSACTION_STATE),
                        errmsg("cannot invalidate caches during a parallel operation")));

    if (!callbacks_registered)
    {
        RegisterXactCallback(xact_callback, nullptr);
        RegisterSubXactCallback(subxact_callback, nullptr);
        callbacks_registered = true;
    }

    if (pending_items == nullptr)
    {
        pending_capacity = 16;
        pending_items = static_cast<PendingInvalidation *>(
            MemoryContextAlloc(TopTransactionContext, sizeof(PendingInvalidation) * pending_capacity));
        pending_count = 0;
        rebuild_index(64);
    }

    if (pending_collapsed)
        key = nullptr;
    uint64 hash = item_hash(scope, scope_len, key, key_len);
    int effective_key_len = key == nullptr ? -1 : key_len;
    SubTransactionId subxact = GetCurrentSubTransactionId();
    int mask = bucket_count - 1;
    for (int b = (int)(hash & mask); pending_index[b] >= 0; b = (b + 1) & mask)
    {
        PendingInvalidation *it = &pending_items[pending_index[b]];
        if (same_item(it, hash, scope, scope_len, key, effective_key_len))
        {
            /* Already scheduled: it stays unless the earliest (sub)transaction that asked rolls back. */
            it->subxact = Min(it->subxact, subxact);
            return;
        }
    }

    if (pending_count >= guc_max_invalidations_per_transaction)
    {
        if (!pending_collapsed)
        {
            /* A new item past the bound: the transaction goes scope-wide, this item too. */
            collapse_to_scopes();
            invalidation_schedule(scope, scope_len, nullptr, 0);
            return;
        }
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("too many invalidation scopes in one transaction"),
                        errdetail("The transaction invalidates more than %d scopes, the bound of "
                                  "poolguard.max_invalidations_per_transaction.",
                                  guc_max_invalidations_per_transaction),
                        errhint("Invalidate fewer scopes per transaction, or have a superuser raise "
                                "poolguard.max_invalidations_per_transaction.")));
    }

    if (pending_count == pending_capacity)
    {
        pending_capacity *= 2;
        pending_items = static_cast<PendingInvalidation *>(
            repalloc(pending_items, sizeof(PendingInvalidation) * pending_capacity));
    }
    PendingInvalidation *it = &pending_items[pending_count];
    it->subxact = subxact;
    it->hash = hash;
    it->scope_len = scope_len;
    memcpy(it->scope, scope, scope_len);
    it->scope[scope_len] = '\0';
    it->key_len = effective_key_len;
    it->key = nullptr;
    if (key != nullptr)
    {
        it->key = static_cast<char *>(MemoryContextAlloc(TopTransactionContext, key_len + 1));
        memcpy(it->key, key, key_len);
        it->key[key_len] = '\0';
    }
    pending_count++;

    if (pending_count * 2 > bucket_count)
        rebuild_index(bucket_count * 2);
    else
        index_item(pending_count - 1);
}

} // namespace poolguard

/* poolguard.invalidate(scope text, key text default null): publish at commit. */
POOLGUARD_FUNCTION(poolguard_invalidate)
{
    poolguard::require_shared_memory();

    text *scope = PG_ARGISNULL(0) ? nullptr : PG_GETARG_TEXT_PP(0);
    text *key = PG_ARGISNULL(1) ? nullptr : PG_GETARG_TEXT_PP(1);
    const char *scope_data = scope ? VARDATA_ANY(scope) : nullptr;
    int scope_len = scope ? (int)VARSIZE_ANY_EXHDR(scope) : 0;
    const char *key_data = key ? VARDATA_ANY(key) : nullptr;
    int key_len = key ? (int)VARSIZE_ANY_EXHDR(key) : 0;

    poolguard::invalidation_validate(scope_data, scope_len, key_data, key_len);
    if (RecoveryInProgress())
        ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                        errmsg("cannot invalidate cache entries during recovery"),
                        errdetail("Generations move and notifications are sent only on the primary server."),
                        errhint("Call poolguard.invalidate() on the primary; the change it describes is "
                                "written there too.")));
    poolguard::invalidation_schedule(scope_data, scope_len, key_data, key_len);
    PG_RETURN_VOID();
}
