/*
 * invalidation_wal.cpp — generations replicated in commit order: pg_poolguard's custom WAL
 * resource manager, and the logical decoding messages for change-data-capture.
 *
 * Two records (resource manager "pg_poolguard", see rmgr_id below):
 *   INVALIDATIONS  {database, count, first generation} + the items (core/invalidation/wal_items.h); item i
 *                  has generation first + i.  Redo raises the same slots to the same generations
 *                  and appends the items to the feed (invalidation_feed.cpp).
 *   FLOOR          {floor}: this server raised its floor (it started, or a standby was promoted):
 *                  every key reads as changed after it, on the standbys too.  Written once per
 *                  start or promotion, by the first process that notices it (a commit that
 *                  invalidates, a cache_generation() call, or the pg_poolguard worker).
 *
 * Where the INVALIDATIONS record is written, and why there: in the committing backend's
 * XACT_EVENT_COMMIT callback, by invalidation_publish_committed(), under invalidation_shared->lock, right
 * after the commit's generations are handed out.  So
 *   - it follows the transaction's commit record in WAL (RecordTransactionCommit inserted that
 *     one earlier in the same backend, and the commit is visible by then): a standby replays the
 *     data first and raises the generation only after, so "generation visible => data visible"
 *     holds there as on the primary (a reader reads the generation before its snapshot);
 *   - records of different commits are in WAL in generation order (generations are taken and
 *     the record inserted under the same lock): replay appends the items to the standby's feed in
 *     the primary's order, and readers of invalidations_since() never miss an older item;
 *   - it does not wait for its own flush: the WAL writer, woken at once, flushes it (or the next
 *     commit's flush does).  Until then a standby's generation lags behind its data, which only
 *     costs a reader an extra reload (never a stale value); if
 *     the primary crashes first, its restart writes a FLOOR record that covers the lost items.
 * The publisher would be the other candidate; it is not used because it runs later (batching),
 * not at all when no worker slot is free, and turns items into resyncs when its queue overflows
 * — a standby must get every generation.
 *
 * A standby must load the library (shared_preload_libraries) to replay these records: without
 * it, PostgreSQL stops recovery with "resource manager with ID 128 not registered" and the hint
 * to load the module that implements it.
 *
 * No error may escape: the commit path is after the commit (an ERROR there becomes a PANIC).
 * XLogInsert can only fail for a programming error (too much data, or inserting during
 * recovery, both excluded below); should one happen anyway, it is caught, the insertion reset,
 * and a WARNING logged after the locks are released — the primary's own generations are correct,
 * only standbys miss the items (until the next restart's FLOOR).  The record's buffer is built
 * before the commit (XACT_EVENT_PRE_COMMIT, where errors are still allowed); the commit path only
 * fills in the header.
 *
 * Logical decoding: each commit's items are also written (when wal_level = logical and
 * poolguard.logical_messages is on) as non-transactional logical messages with the prefix
 * "pg_poolguard", in the same place, so they follow the commit record and come in generation
 * order; the payload format (version 1) is documented in docs/cache-invalidation.md, "Change-data-capture".
 *
 * Locking: this file takes no lock of its own; invalidation_wal_log_committed runs under
 * invalidation_shared->lock (held by the caller), and XLogInsert takes PostgreSQL's WAL insertion locks,
 * which are always taken after any other lock — as heap_insert does with a buffer lock held.
 */
#include "core/invalidation/notify_payload.h"
#include "core/invalidation/wal_items.h"

#include "invalidation/invalidation_internal.h"

#include "pg/guard.h"
#include "pg/guc.h"

namespace poolguard
{

namespace
{

/*
 * The id is RM_EXPERIMENTAL_ID (128), the one PostgreSQL sets aside for extensions under
 * development; releases 1.0 and 1.1 shipped with it and no id of pg_poolguard's own is reserved
 * yet (so META.json says release_status "testing").  A production id is requested on
 * https://wiki.postgresql.org/wiki/CustomWALResourceManagers (edit the page: the extension's name
 * and URL next to the next free id in 129..255).  The id is part of the WAL format: changing it
 * makes old WAL unreplayable, so it changes only with a major version, every standby updated
 * first.  docs/cache-invalidation.md says the same to users; test/t/085_wal_rmgr.pl checks what
 * pg_get_wal_resource_managers() and pg_walinspect show.
 */
constexpr RmgrId rmgr_id = 128;
constexpr const char *rmgr_name = "pg_poolguard";

constexpr uint8 xlog_invalidations = 0x00;
constexpr uint8 xlog_floor = 0x10;

/* Records are cut at this many bytes of items (a huge transaction writes several). */
constexpr Size max_record_items_bytes = 256 * 1024;

struct XlInvalidations
{
    Oid database;
    uint32 count;
    uint64 first_generation;
};

struct XlFloor
{
    uint64 floor;
};

/* The committing transaction's items, serialized before commit (TopTransactionContext). */
char *prepared = nullptr;
Size prepared_len = 0;
int prepared_count = 0;

/* Logical message buffers: static, so that the commit path never allocates. */
constexpr const char *message_prefix = "pg_poolguard";
constexpr const char *message_head = "{\"format\":1,\"items\":";
core::Payload message_payload;
char message[sizeof(core::Payload::data) + 64];

XLogRecPtr write_message(void)
{
    Size head = strlen(message_head);
    const char *items = core::payload_finish(message_payload);
    Size len = strlen(items);
    memcpy(message, message_head, head);
    memcpy(message + head, items, len);
    message[head + len] = '}';
    return poolguard_log_logical_message(message_prefix, message, head + len + 1);
}

/* The logical messages of items (under invalidation_shared->lock; may ERROR only by a programming error). */
XLogRecPtr log_messages(uint64 first, const PendingInvalidation *items, int count)
{
    XLogRecPtr lsn = InvalidXLogRecPtr;
    core::payload_reset(message_payload);
    for (int i = 0; i < count; i++)
    {
        const PendingInvalidation *it = &items[i];
        Size key_len = it->key == nullptr ? 0 : (Size)it->key_len;
        if (core::payload_append(message_payload, it->scope, it->scope_len, it->key, key_len, first + i))
            continue;
        lsn = write_message();
        core::payload_reset(message_payload);
        core::payload_append(message_payload, it->scope, it->scope_len, it->key, key_len, first + i);
    }
    if (message_payload.items > 0)
        lsn = write_message();
    return lsn;
}

/* The INVALIDATIONS records of the prepared items (under invalidation_shared->lock). */
XLogRecPtr log_items(uint64 first, int count)
{
    XLogRecPtr lsn = InvalidXLogRecPtr;
    Size pos = 0;
    int done = 0;
    while (done < count)
    {
        Size start = pos;
        int n = 0;
        core::WalItem item;
        while (done + n < count && (n == 0 || pos - start < max_record_items_bytes) &&
               core::wal_item_read(prepared, prepared_len, &pos, &item))
            n++;
        if (n == 0)
            break; /* cannot happen: prepared holds count items */
        XlInvalidations header;
        header.database = MyDatabaseId;
        header.count = (uint32)n;
        header.first_generation = first + (uint64)done;
        XLogBeginInsert();
        XLogRegisterData((char *)&header, sizeof(header));
        XLogRegisterData(prepared + start, (int)(pos - start));
        lsn = XLogInsert(rmgr_id, xlog_invalidations);
        done += n;
    }
    return lsn;
}

XLogRecPtr log_floor_record(uint64 floor)
{
    XlFloor xl;
    xl.floor = floor;
    XLogBeginInsert();
    XLogRegisterData((char *)&xl, sizeof(xl));
    return XLogInsert(rmgr_id, xlog_floor);
}

/*
 * Runs f (which inserts WAL) with any error caught: the insertion is reset and *failed set.
 * Locks the caller holds stay held (the caller releases them).
 */
template <typename F> XLogRecPtr insert_safely(F f, bool *failed)
{
    XLogRecPtr lsn = InvalidXLogRecPtr;
    if (!run_keeping_state([&lsn, &f]() { lsn = f(); }))
    {
        XLogResetInsertion();
        *failed = true;
        lsn = InvalidXLogRecPtr;
    }
    return lsn;
}

void rmgr_redo(XLogReaderState *record)
{
    uint8 info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
    const char *data = XLogRecGetData(record);
    Size len = XLogRecGetDataLen(record);

    if (info == xlog_invalidations && len >= sizeof(XlInvalidations))
    {
        XlInvalidations header;
        memcpy(&header, data, sizeof(header));
        invalidation_apply_replayed(header.database, header.first_generation, data + sizeof(header),
                                    len - sizeof(header), header.count);
    }
    else if (info == xlog_floor && len >= sizeof(XlFloor))
    {
        XlFloor xl;
        memcpy(&xl, data, sizeof(xl));
        invalidation_apply_replayed_floor(xl.floor);
    }
    else
        elog(PANIC, "pg_poolguard redo: unknown record type %u", info);
}

void rmgr_desc(StringInfo buf, XLogReaderState *record)
{
    uint8 info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
    const char *data = XLogRecGetData(record);
    Size len = XLogRecGetDataLen(record);

    if (info == xlog_invalidations && len >= sizeof(XlInvalidations))
    {
        XlInvalidations header;
        memcpy(&header, data, sizeof(header));
        appendStringInfo(buf, "database %u; %u items from generation " UINT64_FORMAT, header.database,
                         header.count, header.first_generation);
    }
    else if (info == xlog_floor && len >= sizeof(XlFloor))
    {
        XlFloor xl;
        memcpy(&xl, data, sizeof(xl));
        appendStringInfo(buf, "floor " UINT64_FORMAT, xl.floor);
    }
}

const char *rmgr_identify(uint8 info)
{
    switch (info & ~XLR_INFO_MASK)
    {
    case xlog_invalidations:
        return "INVALIDATIONS";
    case xlog_floor:
        return "FLOOR";
    default:
        return nullptr;
    }
}

RmgrData rmgr;

bool wal_enabled(void)
{
    return guc_wal_invalidations;
}

} // namespace

void invalidation_wal_register(void)
{
    memset(&rmgr, 0, sizeof(rmgr));
    rmgr.rm_name = rmgr_name;
    rmgr.rm_redo = rmgr_redo;
    rmgr.rm_desc = rmgr_desc;
    rmgr.rm_identify = rmgr_identify;
    RegisterCustomRmgr(rmgr_id, &rmgr);
}

void invalidation_wal_prepare(const PendingInvalidation *items, int count)
{
    prepared = nullptr;
    prepared_len = 0;
    prepared_count = 0;
    if (!wal_enabled() || count <= 0)
        return;
    Size len = 0;
    for (int i = 0; i < count; i++)
        len += core::wal_item_size(items[i].scope_len, items[i].key,
                                   items[i].key == nullptr ? 0 : items[i].key_len);
    char *buf = static_cast<char *>(MemoryContextAllocHuge(TopTransactionContext, Max(len, (Size)1)));
    Size pos = 0;
    for (int i = 0; i < count; i++)
        pos += core::wal_item_write(buf + pos, items[i].scope, items[i].scope_len, items[i].key,
                                    items[i].key == nullptr ? 0 : items[i].key_len);
    prepared = buf;
    prepared_len = len;
    prepared_count = count;
}

void invalidation_wal_forget(void)
{
    prepared = nullptr;
    prepared_len = 0;
    prepared_count = 0;
}

XLogRecPtr invalidation_wal_log_committed(uint64 first, const PendingInvalidation *items, int count,
                                          bool *failed)
{
    XLogRecPtr lsn = InvalidXLogRecPtr;
    if (count <= 0 || RecoveryInProgress())
        return lsn;
    if (wal_enabled())
    {
        if (prepared != nullptr && prepared_count == count)
            lsn = insert_safely([first, count]() { return log_items(first, count); }, failed);
        else
        {
            /* Items were added after the pre-commit callback ran (another extension's): the
             * standbys then read every key as changed up to the last of them instead. */
            lsn = insert_safely([first, count]() { return log_floor_record(first + (uint64)count - 1); },
                                failed);
        }
    }
    if (guc_logical_messages && XLogLogicalInfoActive())
    {
        XLogRecPtr m =
            insert_safely([first, items, count]() { return log_messages(first, items, count); }, failed);
        if (m != InvalidXLogRecPtr)
            lsn = m;
    }
    invalidation_wal_forget();
    return lsn;
}

XLogRecPtr invalidation_wal_log_floor(uint64 floor, bool *failed)
{
    if (!wal_enabled() || RecoveryInProgress())
        return InvalidXLogRecPtr;
    return insert_safely([floor]() { return log_floor_record(floor); }, failed);
}

void invalidation_wal_finish(XLogRecPtr lsn, bool failed)
{
    /*
     * The commit waited for its own flush, not for this record's: ask the WAL writer to flush it
     * now (XLogSetAsyncXactLSN alone wakes it only when it hibernates or a whole page is waiting,
     * so an idle server would leave the standbys' generations up to wal_writer_delay behind their
     * data).  Nobody waits for that flush.
     */
    if (lsn != InvalidXLogRecPtr)
    {
        XLogSetAsyncXactLSN(lsn);
        poolguard_wake_walwriter();
        /* poolguard.wal_flush: the commit returns once standbys can have the record (one more flush). */
        if (guc_wal_flush && synchronous_commit > SYNCHRONOUS_COMMIT_OFF)
            (void)insert_safely(
                [lsn]()
                {
                    XLogFlush(lsn);
                    return lsn;
                },
                &failed);
    }
    if (failed)
        ereport(
            WARNING,
            (errcode(ERRCODE_INTERNAL_ERROR), errmsg("pg_poolguard could not write invalidations to WAL"),
             errdetail("This server's generations are correct; standbys and logical decoding consumers miss "
                       "these items."),
             errhint("This is a bug in pg_poolguard; please report it with the server log.")));
}

} // namespace poolguard
