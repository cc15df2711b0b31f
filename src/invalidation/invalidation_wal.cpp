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
 *   - it does not wait for its own flush: the next commit's flush carries it, or the WAL writer
 *     does (woken at once when it was idle, else in its next round: within wal_writer_delay; see
 *     invalidation_wal_finish).  Until then a standby's generation lags behind its data, which only
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
 * order; the payload format (version 1) is documented in docs/cache-invalidation.md,
 * "Change-data-capture".
 *
 * Authentication (issue 19): any role may call pg_logical_emit_message() with our prefix, so
 * the prefix proves nothing.  Each message ends with "mac": HMAC-SHA256, keyed by the database's
 * CDC key, of every byte before ',"mac":"'.  The database's key is HMAC-SHA256(cluster secret,
 * "pg_poolguard cdc key v1 database <oid>"); the cluster secret is 32 random bytes in the file
 * pg_poolguard_cdc.key of the data directory (created at the first start, copied to standbys by
 * pg_basebackup), loaded into shared memory at start and never shown.  poolguard.cdc_key()
 * returns the current database's key to whom a superuser granted it (the CDC consumer's role):
 * a consumer verifies every message and drops those that do not verify; a key of one database
 * forges nothing in another.
 *
 * Locking: this file takes no lock of its own; invalidation_wal_log_committed runs under
 * invalidation_shared->lock (held by the caller), and XLogInsert takes PostgreSQL's WAL insertion locks,
 * which are always taken after any other lock — as heap_insert does with a buffer lock held.
 */
#include "core/invalidation/generation.h"
#include "core/invalidation/hmac_sha256.h"
#include "core/invalidation/notify_payload.h"
#include "core/invalidation/wal_items.h"

#include "invalidation/invalidation_internal.h"

#include "pg/guard.h"
#include "pg/guc.h"
#include "pg/shmem.h"

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

/* The INVALIDATIONS header is core::WalRecordHeader (its decoder, shared by redo and rm_desc). */
using XlInvalidations = core::WalRecordHeader;
static_assert(sizeof(Oid) == sizeof(uint32), "the WAL header stores the database as a uint32");

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
constexpr const char *mac_head = ",\"mac\":\"";
core::Payload message_payload;
char message[sizeof(core::Payload::data) + 128];

constexpr const char *secret_file = "pg_poolguard_cdc.key";
constexpr Size secret_bytes = 32;

/* This backend's database's CDC key (computed once: MyDatabaseId does not change). */
unsigned char database_key[core::sha256_bytes];
Oid database_key_of = InvalidOid;

const unsigned char *cdc_database_key(void)
{
    if (database_key_of != MyDatabaseId)
    {
        char label[64];
        int n = snprintf(label, sizeof(label), "pg_poolguard cdc key v1 database %u", MyDatabaseId);
        core::hmac_sha256(invalidation_shared->cdc_secret, secret_bytes, label, (Size)n, database_key);
        database_key_of = MyDatabaseId;
    }
    return database_key;
}

XLogRecPtr write_message(void)
{
    Size head = strlen(message_head);
    const char *items = core::payload_finish(message_payload);
    Size len = strlen(items);
    Size pos = 0;
    memcpy(message, message_head, head);
    pos += head;
    memcpy(message + pos, items, len);
    pos += len;
    /* The tag covers every byte before ,"mac":" (a consumer cuts the fixed-size tail). */
    unsigned char mac[core::sha256_bytes];
    core::hmac_sha256(cdc_database_key(), core::sha256_bytes, message, pos, mac);
    memcpy(message + pos, mac_head, strlen(mac_head));
    pos += strlen(mac_head);
    core::to_hex(mac, sizeof(mac), message + pos);
    pos += 2 * sizeof(mac);
    message[pos++] = '"';
    message[pos++] = '}';
    return poolguard_log_logical_message(message_prefix, message, pos);
}

/* The logical messages of items (under invalidation_shared->lock; may ERROR only by a programming error). */
XLogRecPtr log_messages(uint64 first, const PendingInvalidation *items, int count)
{
    XLogRecPtr lsn = InvalidXLogRecPtr;
    /* Logical messages are UTF-8 JSON: outside a UTF8 database, bytes >= 0x80 are escaped. */
    bool escape = GetDatabaseEncoding() != PG_UTF8;
    core::payload_reset(message_payload, escape);
    for (int i = 0; i < count; i++)
    {
        const PendingInvalidation *it = &items[i];
        Size key_len = it->key == nullptr ? 0 : (Size)it->key_len;
        if (core::payload_append(message_payload, it->scope, it->scope_len, it->key, key_len, first + i))
            continue;
        lsn = write_message();
        core::payload_reset(message_payload, escape);
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

/*
 * Redo trusts no length: the record may come from another extension using the experimental id
 * 128, or be corrupt.  What core::wal_record_check refuses is skipped with a WARNING (never
 * applied, never PANIC: the standby keeps replaying; its generations for the skipped items are
 * covered by the next FLOOR, at the latest at promotion).
 */
void rmgr_redo(XLogReaderState *record)
{
    uint8 info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
    const char *data = XLogRecGetData(record);
    Size len = XLogRecGetDataLen(record);

    if (info == xlog_invalidations)
    {
        core::WalRecordHeader header;
        const char *items = nullptr;
        std::size_t items_len = 0;
        core::WalRecordProblem problem = core::wal_record_check(data, len, &header, &items, &items_len);
        if (problem == core::WalRecordProblem::none)
            invalidation_apply_replayed(header.database, header.first_generation, items, items_len,
                                        header.count);
        else
            ereport(WARNING,
                    (errcode(ERRCODE_DATA_CORRUPTED),
                     errmsg("pg_poolguard redo skipped a malformed invalidation record"),
                     errdetail("The record at %X/%X (%zu bytes) is malformed: %s.",
                               (uint32)(record->ReadRecPtr >> 32), (uint32)record->ReadRecPtr, (size_t)len,
                               core::wal_record_problem_text(problem)),
                     errhint("Another extension may be using the experimental resource manager id %d.",
                             (int)rmgr_id)));
    }
    else if (info == xlog_floor && len == sizeof(XlFloor))
    {
        XlFloor xl;
        memcpy(&xl, data, sizeof(xl));
        invalidation_apply_replayed_floor(xl.floor);
    }
    else
        ereport(WARNING,
                (errcode(ERRCODE_DATA_CORRUPTED),
                 errmsg("pg_poolguard redo skipped a record of unknown type or size"),
                 errdetail("The record at %X/%X has type %u and %zu bytes.",
                           (uint32)(record->ReadRecPtr >> 32), (uint32)record->ReadRecPtr, info, (size_t)len),
                 errhint("Another extension may be using the experimental resource manager id %d.",
                         (int)rmgr_id)));
}

void rmgr_desc(StringInfo buf, XLogReaderState *record)
{
    uint8 info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
    const char *data = XLogRecGetData(record);
    Size len = XLogRecGetDataLen(record);

    if (info == xlog_invalidations)
    {
        core::WalRecordHeader header;
        const char *items = nullptr;
        std::size_t items_len = 0;
        core::WalRecordProblem problem = core::wal_record_check(data, len, &header, &items, &items_len);
        if (problem == core::WalRecordProblem::none)
            appendStringInfo(buf, "database %u; %u items from generation " UINT64_FORMAT, header.database,
                             header.count, header.first_generation);
        else
            appendStringInfo(buf, "malformed: %s", core::wal_record_problem_text(problem));
    }
    else if (info == xlog_floor && len == sizeof(XlFloor))
    {
        XlFloor xl;
        memcpy(&xl, data, sizeof(xl));
        appendStringInfo(buf, "floor " UINT64_FORMAT, xl.floor);
    }
    else
        appendStringInfo(buf, "malformed");
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

const unsigned char *invalidation_cdc_database_key(void)
{
    return cdc_database_key();
}

void invalidation_cdc_load_secret(unsigned char out[32])
{
    char path[MAXPGPATH];
    snprintf(path, sizeof(path), "%s/%s", DataDir, secret_file);
    int fd = BasicOpenFile(path, O_RDONLY | PG_BINARY);
    if (fd < 0 && errno == ENOENT)
    {
        /* First start: 32 random bytes, written durably before anything is signed with them. */
        unsigned char fresh[secret_bytes];
        if (!pg_strong_random(fresh, sizeof(fresh)))
            ereport(FATAL, (errcode(ERRCODE_INTERNAL_ERROR),
                            errmsg("pg_poolguard could not generate the logical-message secret"),
                            errdetail("pg_strong_random() failed.")));
        fd = BasicOpenFilePerm(path, O_WRONLY | O_CREAT | O_EXCL | PG_BINARY, S_IRUSR | S_IWUSR);
        if (fd < 0 || write(fd, fresh, sizeof(fresh)) != (ssize_t)sizeof(fresh) || pg_fsync(fd) != 0 ||
            close(fd) != 0)
            ereport(FATAL, (errcode_for_file_access(), errmsg("could not write file \"%s\": %m", path)));
        fsync_fname(DataDir, true);
        fd = BasicOpenFile(path, O_RDONLY | PG_BINARY);
    }
    if (fd < 0)
        ereport(FATAL, (errcode_for_file_access(), errmsg("could not open file \"%s\": %m", path)));
    ssize_t got = read(fd, out, secret_bytes);
    unsigned char extra;
    bool longer = got == (ssize_t)secret_bytes && read(fd, &extra, 1) > 0;
    close(fd);
    if (got != (ssize_t)secret_bytes || longer)
        ereport(FATAL,
                (errcode(ERRCODE_DATA_CORRUPTED), errmsg("file \"%s\" is not a pg_poolguard secret", path),
                 errdetail("It must hold exactly %d bytes.", (int)secret_bytes),
                 errhint("Copy the file from the primary server; or remove it to have a new secret generated "
                         "(logical decoding consumers must then fetch poolguard.cdc_key() again).")));
}

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

void invalidation_wal_finish(XLogRecPtr lsn, bool failed, TimestampTz now)
{
    /*
     * The commit waited for its own flush, not for this record's: have the WAL writer flush it
     * (nobody waits for that flush).  XLogSetAsyncXactLSN marks the record for the WAL writer's
     * next round and wakes it when it hibernates (or a whole page is waiting); a server that
     * was idle but not yet hibernating would leave the standbys' generations up to
     * wal_writer_delay behind their data, so the WAL writer is also woken here, but at most
     * once per wal_writer_delay (core::walwriter_wake_due): a woken WAL writer flushes no more
     * often than that, so a wake per commit only cost every commit one more context switch and
     * write() of the WAL page (profiled: 1.9 WAL writes per invalidating commit instead of 1.0,
     * the main cost of the 1-writer gap to pg_notify).  Under load the next commit's flush
     * carries the record anyway.
     */
    if (lsn != InvalidXLogRecPtr)
    {
        XLogSetAsyncXactLSN(lsn);
        uint64 last = pg_atomic_read_u64(&invalidation_shared->walwriter_woken_at);
        if (core::walwriter_wake_due((int64)now, (int64)last, (int64)WalWriterDelay * 1000) &&
            pg_atomic_compare_exchange_u64(&invalidation_shared->walwriter_woken_at, &last, (uint64)now))
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

using namespace poolguard;

/*
 * poolguard.cdc_key() RETURNS bytea: the current database's key of the logical messages' "mac"
 * (see the top of this file).  EXECUTE is revoked from PUBLIC: a superuser grants it to the role
 * of the change-data-capture consumer.
 */
POOLGUARD_FUNCTION(poolguard_cdc_key)
{
    require_shared_memory();
    const unsigned char *key = invalidation_cdc_database_key();
    bytea *out = static_cast<bytea *>(palloc(VARHDRSZ + core::sha256_bytes));
    SET_VARSIZE(out, VARHDRSZ + core::sha256_bytes);
    memcpy(VARDATA(out), key, core::sha256_bytes);
    PG_RETURN_BYTEA_P(out);
}
