// The state store: small shared state that lives outside the workers. It holds
//   - key/value entries in named buckets, with revisions (compare-and-set) and an optional TTL;
//   - append-only lists (conversation memory), trimmed from the oldest end;
//   - idempotency keys, so a redelivered event never repeats its output or side effect;
//   - an outbox of messages a stage wants published once its transaction has committed.
//
// Effectively-once delivery is at-least-once delivery plus RunOnce: the output of an event and
// its idempotency key are written in one transaction, so a redelivery finds the key and writes
// nothing. Side effects that leave the store (publishing, webhooks) go through the outbox in
// that same transaction; the runtime relays pending outbox messages and marks them done. A relay
// that crashes between sending and OutboxDone sends again, so an outbox message is delivered at
// least once: receivers dedupe by its id.
//
// The interface is engine-neutral. The embedded engine is SQLite (OpenSqliteStateStore); a NATS
// KV engine implements the same contract.
//
// Revisions: every write to a key (Put, a successful CompareAndSet) gives it a new revision,
// greater than any revision that key had before, including before a Delete or expiry. Callers
// treat revisions as opaque numbers to hand back to CompareAndSet; 0 is never a revision.
// The SQLite engine numbers a key's revisions 1, 2, 3, ... and, after a key of the bucket was
// deleted or purged, continues above the highest revision the bucket ever removed, so a stale
// revision from before a Delete can never match a re-created key.
//
// TTL: an entry written with a TTL is absent once the store's clock passes its expiry (Get does
// not return it, CompareAndSet treats it as missing); PurgeExpired reclaims its space.
//
// Names: buckets, keys, lists and scopes are 1 to 512 bytes; anything else is InvalidArgument
// naming which. Values are arbitrary bytes.
//
// Errors: kAborted is a compare-and-set conflict (re-read and retry); kUnavailable is a busy or
// temporarily failing store (retry with backoff); kInvalidArgument is a bad call (do not
// retry); kDataLoss is a corrupt store file.
//
// Ownership and thread-safety: StateStore is thread-safe; the caller owns it through the
// unique_ptr returned by the Open function. A StateTransaction is owned by the store and valid
// only while the RunOnce body that received it runs, on that body's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "eventloom/status.h"

namespace eventloom {

// Longest bucket, key, list or scope name, in bytes.
inline constexpr size_t kMaxStateNameBytes = 512;

struct StateEntry {
    std::string value;
    int64_t revision = 0;
    int64_t expires_at_ms = 0;  // Unix milliseconds; 0 = never
};

struct OutboxMessage {
    int64_t id = 0;  // unique in the store, increasing in the order messages were added
    std::string destination;
    std::string payload;
};

enum class RunOnceOutcome {
    kApplied,    // the body ran and everything it wrote was committed with the key
    kDuplicate,  // the key was already recorded; the body did not run
};

// The operations a store and a transaction share: key/value with revisions, and appending to
// lists. On a StateStore each call is its own transaction; on a StateTransaction it joins the
// transaction and the body sees its own writes.
class StateOperations {
public:
    virtual ~StateOperations() = default;

    // ---- Key/value -------------------------------------------------------------------------

    // The entry, or nullopt when the key is missing or expired.
    virtual Result<std::optional<StateEntry>> Get(std::string_view bucket,
                                                  std::string_view key) = 0;

    // Writes `value` unconditionally and returns the new revision. `ttl` 0 keeps the entry until
    // it is deleted; a positive ttl expires it that long after this write. Negative ttl is
    // InvalidArgument.
    virtual Result<int64_t> Put(std::string_view bucket, std::string_view key,
                                std::string_view value,
                                std::chrono::milliseconds ttl = std::chrono::milliseconds(0)) = 0;

    // Writes `value` only if the key's current revision is `expected_revision` (0: only if the
    // key is missing or expired). Returns the new revision, or Aborted, naming bucket, key and
    // both revisions, when the key has another revision.
    virtual Result<int64_t> CompareAndSet(
        std::string_view bucket, std::string_view key, int64_t expected_revision,
        std::string_view value, std::chrono::milliseconds ttl = std::chrono::milliseconds(0)) = 0;

    // Removes the key. OK when it does not exist.
    virtual Status Delete(std::string_view bucket, std::string_view key) = 0;

    // ---- Lists -----------------------------------------------------------------------------
    // A list is created by its first append. Every item keeps the index it was appended at
    // (0, 1, 2, ... over the list's whole life), also after older items were trimmed.

    // Appends `value` and returns its index.
    virtual Result<int64_t> ListAppend(std::string_view list, std::string_view value) = 0;
};

// The writes of one RunOnce body. Nothing is visible to other callers until the body returns
// OK and the transaction commits; if the body fails, none of it happened.
class StateTransaction : public StateOperations {
public:
    // Queues `payload` for `destination` (a topic, a URL: the relay decides). The message
    // becomes pending when the transaction commits. Returns its id.
    virtual Result<int64_t> OutboxAdd(std::string_view destination, std::string_view payload) = 0;
};

class StateStore : public StateOperations {
public:
    // ---- Lists, beyond appending (StateOperations) ------------------------------------

    // Up to `max` items, oldest first, starting at index `from`; items trimmed away are skipped,
    // so from = 0 starts at the oldest item kept. A negative `from` counts from the end: -20
    // starts at the 20th newest item. Empty for a missing list.
    virtual Result<std::vector<std::string>> ListRange(std::string_view list, int64_t from,
                                                       size_t max) = 0;

    // Items currently kept (appended minus trimmed). 0 for a missing list.
    virtual Result<int64_t> ListLength(std::string_view list) = 0;

    // Drops all but the newest `keep_last` items. Indices of kept and later items don't change.
    virtual Status ListTrim(std::string_view list, size_t keep_last) = 0;

    // ---- Idempotency -----------------------------------------------------------------------

    // Runs `body` at most once per (scope, key), in one transaction:
    //   - (scope, key) already recorded: returns kDuplicate without running body;
    //   - body returns OK: records (scope, key), commits everything body wrote, returns kApplied;
    //   - body fails: rolls everything back, records nothing, returns body's Status.
    // If a storage error occurs inside the body, the transaction is rolled back and that error
    // is returned even if the body ignored it.
    //
    // The body runs while the store is locked for writing: keep it short and local. Do slow
    // work (a model call, a network request) before RunOnce, optionally skipping it when
    // Seen() already says kDuplicate, and send effects out through OutboxAdd. The body must use
    // only the transaction it is given: calling this StateStore from inside it is
    // FailedPrecondition.
    //
    // A recorded key is remembered for at least StateStoreOptions::idempotency_retention.
    virtual Result<RunOnceOutcome> RunOnce(
        std::string_view scope, std::string_view key,
        const std::function<Status(StateTransaction&)>& body) = 0;

    // True when (scope, key) is recorded.
    virtual Result<bool> Seen(std::string_view scope, std::string_view key) = 0;

    // ---- Outbox ----------------------------------------------------------------------------

    // Up to `max` committed messages not yet marked done, oldest first. The relay is expected
    // to be one per store; two relays would each see the same messages.
    virtual Result<std::vector<OutboxMessage>> OutboxPending(size_t max) = 0;

    // Marks the message sent; it is removed. OK when `id` is not pending (already done).
    virtual Status OutboxDone(int64_t id) = 0;

    // ---- Housekeeping ----------------------------------------------------------------------

    // Removes expired key/value entries and idempotency keys recorded longer ago than the
    // retention. Returns how many were removed. Works in batches, so other callers are not
    // held up for long.
    virtual Result<int64_t> PurgeExpired() = 0;
};

struct StateStoreOptions {
    // A file path, or ":memory:" for a private store that disappears when closed. The
    // directory must exist; the file is created when missing. SQLite also keeps "<path>-wal" and
    // "<path>-shm" next to it.
    std::string path;

    // The store runs in WAL mode. With sync_full = false (synchronous=NORMAL) a committed
    // transaction survives a crash of the process (SIGKILL) but possibly not a power loss or OS
    // crash, which can lose the last commits (never corrupt the store). With true
    // (synchronous=FULL) each commit is synced to disk and survives both, at the cost of an
    // fsync per commit.
    bool sync_full = false;

    // How long a write waits for another process holding the file's write lock before it
    // fails with Unavailable.
    std::chrono::milliseconds busy_timeout{5000};

    // How long RunOnce keys are remembered before PurgeExpired may remove them.
    std::chrono::hours idempotency_retention{24 * 7};

    // The clock for TTLs and retention, in Unix milliseconds. Empty: the system clock. Tests
    // inject their own. Called with the store's lock held; it must not call the store.
    std::function<int64_t()> now_ms;
};

// Opens (creating when missing) the SQLite store at `options.path`.
// Errors: NotFound when the directory does not exist; FailedPrecondition when it is not
// writable, or when the file is a SQLite database of another program or of a newer schema;
// DataLoss naming the path when the file is not a SQLite database or is corrupt.
//
// The store has one SQLite connection, serialised by a mutex: operations from many threads are
// safe and run one at a time. Several processes may open one file; they contend on its write
// lock (see busy_timeout).
Result<std::unique_ptr<StateStore>> OpenSqliteStateStore(const StateStoreOptions& options);

}  // namespace eventloom
