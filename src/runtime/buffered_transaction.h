// A StateTransaction that records writes instead of making them, for effectively-once stages:
// the handler runs outside the store's transaction (it may take seconds: a model call), and
// its writes are replayed inside RunOnce, together with the idempotency record, in one short
// transaction.
//
// What the handler sees: Get reads its own earlier writes, then the store as committed (no
// isolation from other writers until commit). Compare-and-set is checked when the writes are
// replayed: a conflict then fails the whole commit with Aborted, which retries the event.
// Revisions, list indexes and outbox ids are not known until commit: Put, CompareAndSet,
// ListAppend and OutboxAdd return 0 here.
//
// Not thread-safe: one handler call uses it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "eventloom/state.h"

namespace eventloom {

class BufferedTransaction final : public StateTransaction {
public:
    explicit BufferedTransaction(StateStore* store) : store_(store) {}

    Result<std::optional<StateEntry>> Get(std::string_view bucket, std::string_view key) override;
    Result<int64_t> Put(std::string_view bucket, std::string_view key, std::string_view value,
                        std::chrono::milliseconds ttl) override;
    Result<int64_t> CompareAndSet(std::string_view bucket, std::string_view key,
                                  int64_t expected_revision, std::string_view value,
                                  std::chrono::milliseconds ttl) override;
    Status Delete(std::string_view bucket, std::string_view key) override;
    Result<int64_t> ListAppend(std::string_view list, std::string_view value) override;
    Result<int64_t> OutboxAdd(std::string_view destination, std::string_view payload) override;

    // Makes the recorded writes, in order, through `txn`; the first failure stops and is
    // returned (RunOnce then rolls everything back).
    Status Replay(StateTransaction& txn) const;
    bool empty() const { return ops_.empty(); }

private:
    enum class Kind { kPut, kCompareAndSet, kDelete, kListAppend, kOutboxAdd };
    struct Op {
        Kind kind;
        std::string a;  // bucket, list or destination
        std::string b;  // key
        std::string value;
        int64_t expected_revision = 0;
        std::chrono::milliseconds ttl{0};
    };

    StateStore* store_;  // must outlive the transaction
    std::vector<Op> ops_;
    // The latest write of each (bucket, key): the value, or nullopt when deleted.
    std::map<std::pair<std::string, std::string>, std::optional<std::string>> written_;
};

}  // namespace eventloom
