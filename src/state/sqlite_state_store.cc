// The embedded state store on SQLite (include/eventloom/state.h). One connection, serialised by
// a mutex; every write runs in a BEGIN IMMEDIATE transaction, so several processes sharing the
// file also see each operation as atomic.
//
// Schema (version 1, PRAGMA user_version; PRAGMA application_id marks the file as ours):
//   kv           (bucket, key) -> value, revision, expires_at_ms
//   kv_bucket    bucket -> revision_floor: the highest revision a Delete or purge removed from
//                the bucket; a key created later starts above it, so revisions never repeat
//   list_meta    list -> head (first index kept), next (index of the next append)
//   list_item    (list, idx) -> value
//   idempotency  (scope, key) -> recorded_at_ms
//   outbox       id (AUTOINCREMENT: never reused) -> destination, payload, created_at_ms
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "eventloom/state.h"
#include "state/sqlite_db.h"

namespace eventloom {
namespace {

using state::RollbackUnlessCommitted;
using state::SqliteDb;
using state::Statement;

constexpr int64_t kApplicationId = 0x45564c53;  // "EVLS"
constexpr int64_t kPurgeBatch = 10000;          // rows removed per transaction by PurgeExpired
constexpr size_t kMaxDestinationBytes = 4096;   // outbox destinations may be URLs

// kMigrations[v] takes the schema from version v to v + 1.
constexpr const char* kMigrations[] = {
    R"sql(
    CREATE TABLE kv (
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        revision INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        PRIMARY KEY (bucket, key)
    ) WITHOUT ROWID;
    CREATE INDEX kv_expiry ON kv (expires_at_ms) WHERE expires_at_ms > 0;
    CREATE TABLE kv_bucket (
        bucket TEXT PRIMARY KEY,
        revision_floor INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE list_meta (
        list TEXT PRIMARY KEY,
        head INTEGER NOT NULL,
        next INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE list_item (
        list TEXT NOT NULL,
        idx INTEGER NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (list, idx)
    ) WITHOUT ROWID;
    CREATE TABLE idempotency (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        recorded_at_ms INTEGER NOT NULL,
        PRIMARY KEY (scope, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_age ON idempotency (recorded_at_ms);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        destination TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    )sql",
};
constexpr int64_t kSchemaVersion = std::size(kMigrations);

// Statements. They have static storage: the statement cache keys on them.
constexpr std::string_view kBegin = "BEGIN IMMEDIATE";
constexpr std::string_view kCommit = "COMMIT";
constexpr std::string_view kSelectEntry =
    "SELECT value, revision, expires_at_ms FROM kv WHERE bucket = ?1 AND key = ?2";
constexpr std::string_view kSelectRevision =
    "SELECT revision, expires_at_ms FROM kv WHERE bucket = ?1 AND key = ?2";
// A new key starts above the bucket's floor; an existing one (also an expired one, not yet
// purged) goes on from its revision.
constexpr std::string_view kUpsertEntry =
    "INSERT INTO kv (bucket, key, value, revision, expires_at_ms) VALUES (?1, ?2, ?3, "
    "COALESCE((SELECT revision_floor FROM kv_bucket WHERE bucket = ?1), 0) + 1, ?4) "
    "ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value, "
    "revision = kv.revision + 1, expires_at_ms = excluded.expires_at_ms RETURNING revision";
constexpr std::string_view kDeleteEntry =
    "DELETE FROM kv WHERE bucket = ?1 AND key = ?2 RETURNING revision";
constexpr std::string_view kRaiseFloor =
    "INSERT INTO kv_bucket (bucket, revision_floor) VALUES (?1, ?2) ON CONFLICT (bucket) "
    "DO UPDATE SET revision_floor = MAX(revision_floor, excluded.revision_floor)";
constexpr std::string_view kPurgeEntries =
    "DELETE FROM kv WHERE (bucket, key) IN (SELECT bucket, key FROM kv "
    "WHERE expires_at_ms > 0 AND expires_at_ms <= ?1 LIMIT ?2) RETURNING bucket, revision";
constexpr std::string_view kListNext =
    "INSERT INTO list_meta (list, head, next) VALUES (?1, 0, 1) ON CONFLICT (list) "
    "DO UPDATE SET next = next + 1 RETURNING next - 1";
constexpr std::string_view kListInsert =
    "INSERT INTO list_item (list, idx, value) VALUES (?1, ?2, ?3)";
constexpr std::string_view kListRangeFrom =
    "SELECT value FROM list_item WHERE list = ?1 AND idx >= ?2 ORDER BY idx LIMIT ?3";
constexpr std::string_view kListRangeFromEnd =
    "SELECT value FROM list_item WHERE list = ?1 "
    "AND idx >= (SELECT next FROM list_meta WHERE list = ?1) + ?2 ORDER BY idx LIMIT ?3";
constexpr std::string_view kListMeta = "SELECT head, next FROM list_meta WHERE list = ?1";
constexpr std::string_view kListDropBefore = "DELETE FROM list_item WHERE list = ?1 AND idx < ?2";
constexpr std::string_view kListSetHead = "UPDATE list_meta SET head = ?2 WHERE list = ?1";
constexpr std::string_view kSelectKey = "SELECT 1 FROM idempotency WHERE scope = ?1 AND key = ?2";
constexpr std::string_view kInsertKey =
    "INSERT INTO idempotency (scope, key, recorded_at_ms) VALUES (?1, ?2, ?3)";
constexpr std::string_view kPurgeKeys =
    "DELETE FROM idempotency WHERE (scope, key) IN (SELECT scope, key FROM idempotency "
    "WHERE recorded_at_ms <= ?1 LIMIT ?2)";
constexpr std::string_view kOutboxInsert =
    "INSERT INTO outbox (destination, payload, created_at_ms) VALUES (?1, ?2, ?3) RETURNING id";
constexpr std::string_view kOutboxPending =
    "SELECT id, destination, payload FROM outbox ORDER BY id LIMIT ?1";
constexpr std::string_view kOutboxDelete = "DELETE FROM outbox WHERE id = ?1";

Status ValidateName(std::string_view what, std::string_view name,
                    size_t limit = kMaxStateNameBytes) {
    if (name.empty()) return InvalidArgumentError(std::string(what) + " is empty");
    if (name.size() > limit) {
        return InvalidArgumentError(std::string(what) + " is " + std::to_string(name.size()) +
                                    " bytes, the limit is " + std::to_string(limit));
    }
    return Status::Ok();
}

// The expiry time for an entry written at `now` with `ttl`; 0 for none.
Result<int64_t> ExpiresAt(std::chrono::milliseconds ttl, int64_t now) {
    if (ttl.count() < 0) {
        return InvalidArgumentError("ttl is negative: " + std::to_string(ttl.count()) + " ms");
    }
    if (ttl.count() == 0) return 0;
    // A TTL too long to add is as good as none that ends; saturate rather than overflow.
    return ttl.count() > INT64_MAX - now ? INT64_MAX : now + ttl.count();
}

bool IsExpired(int64_t expires_at_ms, int64_t now) {
    return expires_at_ms != 0 && expires_at_ms <= now;
}

int64_t ClampToInt64(size_t n) {
    return n > static_cast<size_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(n);
}

std::string Quoted(std::string_view name) { return "'" + std::string(name) + "'"; }

// Marks the thread running a RunOnce body for as long as it runs.
struct BodyThreadMark {
    explicit BodyThreadMark(std::atomic<std::thread::id>* mark) : mark_(mark) {
        mark_->store(std::this_thread::get_id());
    }
    ~BodyThreadMark() { mark_->store(std::thread::id()); }
    std::atomic<std::thread::id>* mark_;
};

class SqliteStateStore final : public StateStore {
public:
    SqliteStateStore(StateStoreOptions options, std::unique_ptr<SqliteDb> db)
        : options_(std::move(options)), db_(std::move(db)) {}

    // Sets the journal and sync modes and creates or checks the schema.
    Status Init();

    Result<std::optional<StateEntry>> Get(std::string_view bucket, std::string_view key) override;
    Result<int64_t> Put(std::string_view bucket, std::string_view key, std::string_view value,
                        std::chrono::milliseconds ttl) override;
    Result<int64_t> CompareAndSet(std::string_view bucket, std::string_view key,
                                  int64_t expected_revision, std::string_view value,
                                  std::chrono::milliseconds ttl) override;
    Status Delete(std::string_view bucket, std::string_view key) override;
    Result<int64_t> ListAppend(std::string_view list, std::string_view value) override;
    Result<std::vector<std::string>> ListRange(std::string_view list, int64_t from,
                                               size_t max) override;
    Result<int64_t> ListLength(std::string_view list) override;
    Status ListTrim(std::string_view list, size_t keep_last) override;
    Result<RunOnceOutcome> RunOnce(std::string_view scope, std::string_view key,
                                   const std::function<Status(StateTransaction&)>& body) override;
    Result<bool> Seen(std::string_view scope, std::string_view key) override;
    Result<std::vector<OutboxMessage>> OutboxPending(size_t max) override;
    Status OutboxDone(int64_t id) override;
    Result<int64_t> PurgeExpired() override;

    // The operations shared with SqliteTransaction. REQUIRES: mu_ held; for the writes, a
    // write transaction open.
    Result<std::optional<StateEntry>> GetLocked(std::string_view bucket, std::string_view key,
                                                int64_t now);
    Result<int64_t> PutLocked(std::string_view bucket, std::string_view key, std::string_view value,
                              std::chrono::milliseconds ttl, int64_t now);
    Result<int64_t> CompareAndSetLocked(std::string_view bucket, std::string_view key,
                                        int64_t expected_revision, std::string_view value,
                                        std::chrono::milliseconds ttl, int64_t now);
    Status DeleteLocked(std::string_view bucket, std::string_view key);
    Result<int64_t> ListAppendLocked(std::string_view list, std::string_view value);
    Result<int64_t> OutboxAddLocked(std::string_view destination, std::string_view payload,
                                    int64_t now);

private:
    int64_t Now() const;
    Status CheckNotInBody() const;
    Status SetJournalMode();
    Result<int64_t> QueryInt(std::string_view sql);

    Status Begin();
    Status Commit();
    // Runs `fn` (returning Status or Result) in a write transaction: commits when it succeeds,
    // rolls back when it fails. REQUIRES: mu_ held.
    template <typename Fn>
    auto InWriteTransaction(Fn&& fn) -> decltype(fn());

    Result<int64_t> UpsertLocked(std::string_view bucket, std::string_view key,
                                 std::string_view value, int64_t expires_at_ms);
    Status RaiseFloorLocked(std::string_view bucket, int64_t revision);
    Result<bool> SeenLocked(std::string_view scope, std::string_view key);
    Status RunBodyLocked(const std::function<Status(StateTransaction&)>& body, int64_t now);
    Result<int64_t> PurgeEntriesBatchLocked(int64_t now);
    Result<int64_t> PurgeKeysBatchLocked(int64_t cutoff);

    const StateStoreOptions options_;
    std::mutex mu_;
    std::unique_ptr<SqliteDb> db_;  // guarded by mu_
    // The thread running a RunOnce body (which holds mu_), so that a call back into the store
    // from it fails instead of deadlocking.
    std::atomic<std::thread::id> body_thread_{};
};

// The StateTransaction handed to a RunOnce body: the store's locked operations, usable only
// on the body's thread and only while the body runs. All writes share the time the transaction
// began, so TTLs within one transaction are measured from one instant.
class SqliteTransaction final : public StateTransaction {
public:
    SqliteTransaction(SqliteStateStore* store, int64_t now)
        : store_(store), now_(now), thread_(std::this_thread::get_id()) {}

    void End() { open_ = false; }

    Result<std::optional<StateEntry>> Get(std::string_view bucket, std::string_view key) override {
        EVENTLOOM_RETURN_IF_ERROR(CheckUsable());
        return store_->GetLocked(bucket, key, now_);
    }
    Result<int64_t> Put(std::string_view bucket, std::string_view key, std::string_view value,
                        std::chrono::milliseconds ttl) override {
        EVENTLOOM_RETURN_IF_ERROR(CheckUsable());
        return store_->PutLocked(bucket, key, value, ttl, now_);
    }
    Result<int64_t> CompareAndSet(std::string_view bucket, std::string_view key,
                                  int64_t expected_revision, std::string_view value,
                                  std::chrono::milliseconds ttl) override {
        EVENTLOOM_RETURN_IF_ERROR(CheckUsable());
        return store_->CompareAndSetLocked(bucket, key, expected_revision, value, ttl, now_);
    }
    Status Delete(std::string_view bucket, std::string_view key) override {
        EVENTLOOM_RETURN_IF_ERROR(CheckUsable());
        return store_->DeleteLocked(bucket, key);
    }
    Result<int64_t> ListAppend(std::string_view list, std::string_view value) override {
        EVENTLOOM_RETURN_IF_ERROR(CheckUsable());
        return store_->ListAppendLocked(list, value);
    }
    Result<int64_t> OutboxAdd(std::string_view destination, std::string_view payload) override {
        EVENTLOOM_RETURN_IF_ERROR(CheckUsable());
        return store_->OutboxAddLocked(destination, payload, now_);
    }

private:
    Status CheckUsable() const {
        if (!open_) {
            return FailedPreconditionError("state transaction used after its RunOnce body ended");
        }
        if (std::this_thread::get_id() != thread_) {
            return FailedPreconditionError(
                "state transaction used from a thread other than its RunOnce body's");
        }
        return Status::Ok();
    }

    SqliteStateStore* store_;
    const int64_t now_;
    const std::thread::id thread_;
    bool open_ = true;
};

// ---- Opening --------------------------------------------------------------------------------

Status SqliteStateStore::Init() {
    EVENTLOOM_RETURN_IF_ERROR(SetJournalMode());
    EVENTLOOM_RETURN_IF_ERROR(db_->Exec(options_.sync_full ? "PRAGMA synchronous = FULL"
                                                           : "PRAGMA synchronous = NORMAL"));

    // Inside one write transaction, so two processes opening a new file create it once.
    EVENTLOOM_RETURN_IF_ERROR(Begin());
    RollbackUnlessCommitted guard{db_.get()};
    EVENTLOOM_ASSIGN_OR_RETURN(int64_t app, QueryInt("PRAGMA application_id"));
    EVENTLOOM_ASSIGN_OR_RETURN(int64_t version, QueryInt("PRAGMA user_version"));
    EVENTLOOM_ASSIGN_OR_RETURN(int64_t tables, QueryInt("SELECT count(*) FROM sqlite_master"));
    bool empty = app == 0 && version == 0 && tables == 0;
    if (app != kApplicationId && !empty) {
        return FailedPreconditionError("state store " + options_.path +
                                       " is a SQLite database of another program (application_id " +
                                       std::to_string(app) + ", " + std::to_string(tables) +
                                       " schema objects)");
    }
    if (version > kSchemaVersion) {
        return FailedPreconditionError("state store " + options_.path + " has schema version " +
                                       std::to_string(version) + ", newer than this build's " +
                                       std::to_string(kSchemaVersion));
    }
    for (int64_t v = version; v < kSchemaVersion; ++v) {
        EVENTLOOM_RETURN_IF_ERROR(db_->Exec(kMigrations[v]));
    }
    if (version != kSchemaVersion) {
        std::string pragmas = "PRAGMA application_id = " + std::to_string(kApplicationId) +
                              "; PRAGMA user_version = " + std::to_string(kSchemaVersion) + ";";
        EVENTLOOM_RETURN_IF_ERROR(db_->Exec(pragmas.c_str()));
        logging::Get("state")->debug("state store path={} schema version {} -> {}", options_.path,
                                     version, kSchemaVersion);
    }
    EVENTLOOM_RETURN_IF_ERROR(Commit());
    guard.committed = true;
    return Status::Ok();
}

Status SqliteStateStore::SetJournalMode() {
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare("PRAGMA journal_mode = WAL"));
    EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
    std::string mode = row ? st.ColumnBytes(0) : "";
    // An in-memory database has no WAL; it has nothing to lose in a crash either.
    if (mode != "wal" && !db_->in_memory()) {
        return FailedPreconditionError("state store " + options_.path +
                                       ": cannot switch to WAL mode (journal_mode is '" + mode +
                                       "'); the file system may not support shared memory");
    }
    return Status::Ok();
}

Result<int64_t> SqliteStateStore::QueryInt(std::string_view sql) {
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(sql));
    EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
    return row ? st.ColumnInt64(0) : 0;
}

// ---- Plumbing -------------------------------------------------------------------------------

int64_t SqliteStateStore::Now() const {
    if (options_.now_ms) return options_.now_ms();
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Status SqliteStateStore::CheckNotInBody() const {
    if (body_thread_.load() == std::this_thread::get_id()) {
        return FailedPreconditionError(
            "state store called from inside a RunOnce body; use the StateTransaction it was given");
    }
    return Status::Ok();
}

Status SqliteStateStore::Begin() {
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kBegin));
    return st.Run();
}

Status SqliteStateStore::Commit() {
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kCommit));
    return st.Run();
}

template <typename Fn>
auto SqliteStateStore::InWriteTransaction(Fn&& fn) -> decltype(fn()) {
    EVENTLOOM_RETURN_IF_ERROR(Begin());
    RollbackUnlessCommitted guard{db_.get()};
    auto result = fn();
    if (!result.ok()) return result;
    EVENTLOOM_RETURN_IF_ERROR(Commit());
    guard.committed = true;
    return result;
}

// ---- Key/value ------------------------------------------------------------------------------

Result<std::optional<StateEntry>> SqliteStateStore::GetLocked(std::string_view bucket,
                                                              std::string_view key, int64_t now) {
    EVENTLOOM_RETURN_IF_ERROR(ValidateName("bucket name", bucket));
    EVENTLOOM_RETURN_IF_ERROR(ValidateName("key", key));
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kSelectEntry));
    st.BindText(1, bucket).BindText(2, key);
    EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row || IsExpired(st.ColumnInt64(2), now)) return std::optional<StateEntry>();
    return std::optional<StateEntry>(
        StateEntry{st.ColumnBytes(0), st.ColumnInt64(1), st.ColumnInt64(2)});
}

Result<int64_t> SqliteStateStore::UpsertLocked(std::string_view bucket, std::string_view key,
                                               std::string_view value, int64_t expires_at_ms) {
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kUpsertEntry));
    st.BindText(1, bucket).BindText(2, key).BindBlob(3, value).BindInt64(4, expires_at_ms);
    EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return InternalError("state store " + options_.path + ": upsert returned no row");
    return st.ColumnInt64(0);
}

Result<int64_t> SqliteStateStore::PutLocked(std::string_view bucket, std::string_view key,
                                            std::string_view value, std::chrono::milliseconds ttl,
                                            int64_t now) {
    EVENTLOOM_RETURN_IF_ERROR(ValidateName("bucket name", bucket));
    EVENTLOOM_RETURN_IF_ERROR(ValidateName("key", key));
    EVENTLOOM_ASSIGN_OR_RETURN(int64_t expires_at_ms, ExpiresAt(ttl, now));
    return UpsertLocked(bucket, key, value, expires_at_ms);
}

Result<int64_t> SqliteStateStore::CompareAndSetLocked(std::string_view bucket, std::string_view key,
                                                      int64_t expected_revision,
                                                      std::string_view value,
                                                      std::chrono::milliseconds ttl, int64_t now) {
    EVENTLOOM_RETURN_IF_ERROR(ValidateName("bucket name", bucket));
    EVENTLOOM_RETURN_IF_ERROR(ValidateName("key", key));
    if (expected_revision < 0) {
        return InvalidArgumentError("expected revision is negative: " +
                                    std::to_string(expected_revision));
    }
    EVENTLOOM_ASSIGN_OR_RETURN(int64_t expires_at_ms, ExpiresAt(ttl, now));

    // The current revision; 0 when the key is missing or expired.
    int64_t current = 0;
    {
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kSelectRevision));
        st.BindText(1, bucket).BindText(2, key);
        EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (row && !IsExpired(st.ColumnInt64(1), now)) current = st.ColumnInt64(0);
    }
    if (current != expected_revision) {
        return AbortedError("compare-and-set conflict on bucket " + Quoted(bucket) + " key " +
                            Quoted(key) + ": expected revision " +
                            std::to_string(expected_revision) + ", current revision " +
                            std::to_string(current) + (current == 0 ? " (missing)" : ""));
    }
    return UpsertLocked(bucket, key, value, expires_at_ms);
}

Status SqliteStateStore::RaiseFloorLocked(std::string_view bucket, int64_t revision) {
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kRaiseFloor));
    st.BindText(1, bucket).BindInt64(2, revision);
    return st.Run();
}

Status SqliteStateStore::DeleteLocked(std::string_view bucket, std::string_view key) {
    EVENTLOOM_RETURN_IF_ERROR(ValidateName("bucket name", bucket));
    EVENTLOOM_RETURN_IF_ERROR(ValidateName("key", key));
    std::optional<int64_t> removed;
    {
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kDeleteEntry));
        st.BindText(1, bucket).BindText(2, key);
        EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (row) removed = st.ColumnInt64(0);
    }
    if (!removed) return Status::Ok();
    return RaiseFloorLocked(bucket, *removed);
}

Result<std::optional<StateEntry>> SqliteStateStore::Get(std::string_view bucket,
                                                        std::string_view key) {
    EVENTLOOM_RETURN_IF_ERROR(CheckNotInBody());
    std::lock_guard lock(mu_);
    return GetLocked(bucket, key, Now());
}

Result<int64_t> SqliteStateStore::Put(std::string_view bucket, std::string_view key,
                                      std::string_view value, std::chrono::milliseconds ttl) {
    EVENTLOOM_RETURN_IF_ERROR(CheckNotInBody());
    std::lock_guard lock(mu_);
    return InWriteTransaction([&] { return PutLocked(bucket, key, value, ttl, Now()); });
}

Result<int64_t> SqliteStateStore::CompareAndSet(std::string_view bucket, std::string_view key,
                                                int64_t expected_revision, std::string_view value,
                                                std::chrono::milliseconds ttl) {
    EVENTLOOM_RETURN_IF_ERROR(CheckNotInBody());
    std::lock_guard lock(mu_);
    return InWriteTransaction(
        [&] { return CompareAndSetLocked(bucket, key, expected_revision, value, ttl, Now()); });
}

Status SqliteStateStore::Delete(std::string_view bucket, std::string_view key) {
    EVENTLOOM_RETURN_IF_ERROR(CheckNotInBody());
    std::lock_guard lock(mu_);
    return InWriteTransaction([&] { return DeleteLocked(bucket, key); });
}

// ---- Lists ----------------------------------------------------------------------------------

Result<int64_t> SqliteStateStore::ListAppendLocked(std::string_view list, std::string_view value) {
    EVENTLOOM_RETURN_IF_ERROR(ValidateName("list name", list));
    int64_t index = 0;
    {
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kListNext));
        st.BindText(1, list);
        EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) return InternalError("state store " + options_.path + ": no list index");
        index = st.ColumnInt64(0);
    }
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kListInsert));
    st.BindText(1, list).BindInt64(2, index).BindBlob(3, value);
    EVENTLOOM_RETURN_IF_ERROR(st.Run());
    return index;
}

Result<int64_t> SqliteStateStore::ListAppend(std::string_view list, std::string_view value) {
    EVENTLOOM_RETURN_IF_ERROR(CheckNotInBody());
    std::lock_guard lock(mu_);
    return InWriteTransaction([&] { return ListAppendLocked(list, value); });
}

Result<std::vector<std::string>> SqliteStateStore::ListRange(std::string_view list, int64_t from,
                                                             size_t max) {
    EVENTLOOM_RETURN_IF_ERROR(CheckNotInBody());
    EVENTLOOM_RETURN_IF_ERROR(ValidateName("list name", list));
    std::vector<std::string> items;
    if (max == 0) return items;
    // Far enough below any index that `next + from` cannot overflow.
    from = std::max<int64_t>(from, -(int64_t{1} << 62));

    std::lock_guard lock(mu_);
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st,
                               db_->Prepare(from >= 0 ? kListRangeFrom : kListRangeFromEnd));
    st.BindText(1, list).BindInt64(2, from).BindInt64(3, ClampToInt64(max));
    for (;;) {
        EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) break;
        items.push_back(st.ColumnBytes(0));
    }
    return items;
}

Result<int64_t> SqliteStateStore::ListLength(std::string_view list) {
    EVENTLOOM_RETURN_IF_ERROR(CheckNotInBody());
    EVENTLOOM_RETURN_IF_ERROR(ValidateName("list name", list));
    std::lock_guard lock(mu_);
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kListMeta));
    st.BindText(1, list);
    EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
    return row ? st.ColumnInt64(1) - st.ColumnInt64(0) : 0;
}

Status SqliteStateStore::ListTrim(std::string_view list, size_t keep_last) {
    EVENTLOOM_RETURN_IF_ERROR(CheckNotInBody());
    EVENTLOOM_RETURN_IF_ERROR(ValidateName("list name", list));
    std::lock_guard lock(mu_);
    return InWriteTransaction([&]() -> Status {
        int64_t head = 0;
        int64_t next = 0;
        {
            EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kListMeta));
            st.BindText(1, list);
            EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
            if (!row) return Status::Ok();
            head = st.ColumnInt64(0);
            next = st.ColumnInt64(1);
        }
        int64_t keep = std::min(ClampToInt64(keep_last), next - head);
        int64_t new_head = next - keep;
        if (new_head == head) return Status::Ok();
        {
            EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kListDropBefore));
            st.BindText(1, list).BindInt64(2, new_head);
            EVENTLOOM_RETURN_IF_ERROR(st.Run());
        }
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kListSetHead));
        st.BindText(1, list).BindInt64(2, new_head);
        return st.Run();
    });
}

// ---- Idempotency ----------------------------------------------------------------------------

Result<bool> SqliteStateStore::SeenLocked(std::string_view scope, std::string_view key) {
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kSelectKey));
    st.BindText(1, scope).BindText(2, key);
    return st.Step();
}

Result<bool> SqliteStateStore::Seen(std::string_view scope, std::string_view key) {
    EVENTLOOM_RETURN_IF_ERROR(CheckNotInBody());
    EVENTLOOM_RETURN_IF_ERROR(ValidateName("scope", scope));
    EVENTLOOM_RETURN_IF_ERROR(ValidateName("idempotency key", key));
    std::lock_guard lock(mu_);
    return SeenLocked(scope, key);
}

Status SqliteStateStore::RunBodyLocked(const std::function<Status(StateTransaction&)>& body,
                                       int64_t now) {
    uint64_t errors_before = db_->error_count();
    SqliteTransaction tx(this, now);
    Status status;
    {
        BodyThreadMark mark(&body_thread_);
        status = body(tx);
    }
    tx.End();
    if (!status.ok()) return status;

    // A body may swallow the error of an operation; a storage error still dooms the
    // transaction, because SQLite may have rolled part or all of it back.
    if (db_->error_count() != errors_before) {
        return db_->last_error().WithContext("in RunOnce body");
    }
    if (!db_->InTransaction()) {
        return InternalError("state store " + options_.path +
                             ": the transaction ended during the RunOnce body");
    }
    return Status::Ok();
}

Result<RunOnceOutcome> SqliteStateStore::RunOnce(
    std::string_view scope, std::string_view key,
    const std::function<Status(StateTransaction&)>& body) {
    EVENTLOOM_RETURN_IF_ERROR(CheckNotInBody());
    EVENTLOOM_RETURN_IF_ERROR(ValidateName("scope", scope));
    EVENTLOOM_RETURN_IF_ERROR(ValidateName("idempotency key", key));
    std::lock_guard lock(mu_);
    int64_t now = Now();

    EVENTLOOM_RETURN_IF_ERROR(Begin());
    RollbackUnlessCommitted guard{db_.get()};
    EVENTLOOM_ASSIGN_OR_RETURN(bool seen, SeenLocked(scope, key));
    if (seen) return RunOnceOutcome::kDuplicate;

    EVENTLOOM_RETURN_IF_ERROR(RunBodyLocked(body, now));

    // The key is recorded in the same transaction as everything the body wrote.
    {
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kInsertKey));
        st.BindText(1, scope).BindText(2, key).BindInt64(3, now);
        EVENTLOOM_RETURN_IF_ERROR(st.Run());
    }
    EVENTLOOM_RETURN_IF_ERROR(Commit());
    guard.committed = true;
    return RunOnceOutcome::kApplied;
}

// ---- Outbox ---------------------------------------------------------------------------------

Result<int64_t> SqliteStateStore::OutboxAddLocked(std::string_view destination,
                                                  std::string_view payload, int64_t now) {
    EVENTLOOM_RETURN_IF_ERROR(
        ValidateName("outbox destination", destination, kMaxDestinationBytes));
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kOutboxInsert));
    st.BindText(1, destination).BindBlob(2, payload).BindInt64(3, now);
    EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row)
        return InternalError("state store " + options_.path + ": outbox insert returned no id");
    return st.ColumnInt64(0);
}

Result<std::vector<OutboxMessage>> SqliteStateStore::OutboxPending(size_t max) {
    EVENTLOOM_RETURN_IF_ERROR(CheckNotInBody());
    std::vector<OutboxMessage> messages;
    if (max == 0) return messages;
    std::lock_guard lock(mu_);
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kOutboxPending));
    st.BindInt64(1, ClampToInt64(max));
    for (;;) {
        EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) break;
        messages.push_back(OutboxMessage{st.ColumnInt64(0), st.ColumnBytes(1), st.ColumnBytes(2)});
    }
    return messages;
}

Status SqliteStateStore::OutboxDone(int64_t id) {
    EVENTLOOM_RETURN_IF_ERROR(CheckNotInBody());
    std::lock_guard lock(mu_);
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kOutboxDelete));
    st.BindInt64(1, id);
    return st.Run();
}

// ---- Housekeeping ---------------------------------------------------------------------------

Result<int64_t> SqliteStateStore::PurgeEntriesBatchLocked(int64_t now) {
    // Removing a key raises its bucket's floor, as Delete does.
    std::map<std::string, int64_t> floors;
    int64_t removed = 0;
    {
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kPurgeEntries));
        st.BindInt64(1, now).BindInt64(2, kPurgeBatch);
        for (;;) {
            EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
            if (!row) break;
            int64_t& floor = floors[st.ColumnBytes(0)];
            floor = std::max(floor, st.ColumnInt64(1));
            ++removed;
        }
    }
    for (const auto& [bucket, floor] : floors) {
        EVENTLOOM_RETURN_IF_ERROR(RaiseFloorLocked(bucket, floor));
    }
    return removed;
}

Result<int64_t> SqliteStateStore::PurgeKeysBatchLocked(int64_t cutoff) {
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kPurgeKeys));
    st.BindInt64(1, cutoff).BindInt64(2, kPurgeBatch);
    EVENTLOOM_RETURN_IF_ERROR(st.Run());
    return db_->changes();
}

Result<int64_t> SqliteStateStore::PurgeExpired() {
    EVENTLOOM_RETURN_IF_ERROR(CheckNotInBody());
    const int64_t retention_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(options_.idempotency_retention)
            .count();

    // One batch per transaction, releasing the lock in between so other callers get a turn.
    int64_t total = 0;
    for (bool entries = true;;) {
        int64_t removed = 0;
        {
            std::lock_guard lock(mu_);
            int64_t now = Now();
            EVENTLOOM_ASSIGN_OR_RETURN(removed, InWriteTransaction([&] {
                                           return entries
                                                      ? PurgeEntriesBatchLocked(now)
                                                      : PurgeKeysBatchLocked(now - retention_ms);
                                       }));
        }
        total += removed;
        if (removed < kPurgeBatch) {
            if (!entries) break;
            entries = false;
        }
    }
    return total;
}

}  // namespace

Result<std::unique_ptr<StateStore>> OpenSqliteStateStore(const StateStoreOptions& options) {
    if (options.busy_timeout.count() < 0) {
        return InvalidArgumentError("state store busy_timeout is negative");
    }
    if (options.idempotency_retention.count() < 0) {
        return InvalidArgumentError("state store idempotency_retention is negative");
    }
    EVENTLOOM_ASSIGN_OR_RETURN(auto db, state::SqliteDb::Open(options.path, options.busy_timeout));
    auto store = std::make_unique<SqliteStateStore>(options, std::move(db));
    EVENTLOOM_RETURN_IF_ERROR(store->Init());
    return std::unique_ptr<StateStore>(std::move(store));
}

}  // namespace eventloom
