#include "runtime/buffered_transaction.h"

namespace eventloom {

Result<std::optional<StateEntry>> BufferedTransaction::Get(std::string_view bucket,
                                                           std::string_view key) {
    auto it = written_.find({std::string(bucket), std::string(key)});
    if (it == written_.end()) return store_->Get(bucket, key);
    if (!it->second) return std::optional<StateEntry>();
    StateEntry entry;
    entry.value = *it->second;
    return std::optional<StateEntry>(std::move(entry));
}

Result<int64_t> BufferedTransaction::Put(std::string_view bucket, std::string_view key,
                                         std::string_view value, std::chrono::milliseconds ttl) {
    ops_.push_back({Kind::kPut, std::string(bucket), std::string(key), std::string(value), 0, ttl});
    written_[{std::string(bucket), std::string(key)}] = std::string(value);
    return 0;
}

Result<int64_t> BufferedTransaction::CompareAndSet(std::string_view bucket, std::string_view key,
                                                   int64_t expected_revision,
                                                   std::string_view value,
                                                   std::chrono::milliseconds ttl) {
    ops_.push_back({Kind::kCompareAndSet, std::string(bucket), std::string(key), std::string(value),
                    expected_revision, ttl});
    written_[{std::string(bucket), std::string(key)}] = std::string(value);
    return 0;
}

Status BufferedTransaction::Delete(std::string_view bucket, std::string_view key) {
    ops_.push_back({Kind::kDelete, std::string(bucket), std::string(key), "", 0, {}});
    written_[{std::string(bucket), std::string(key)}] = std::nullopt;
    return Status::Ok();
}

Result<int64_t> BufferedTransaction::ListAppend(std::string_view list, std::string_view value) {
    ops_.push_back({Kind::kListAppend, std::string(list), "", std::string(value), 0, {}});
    return 0;
}

Result<int64_t> BufferedTransaction::OutboxAdd(std::string_view destination,
                                               std::string_view payload) {
    ops_.push_back({Kind::kOutboxAdd, std::string(destination), "", std::string(payload), 0, {}});
    return 0;
}

Status BufferedTransaction::Replay(StateTransaction& txn) const {
    for (const Op& op : ops_) {
        switch (op.kind) {
            case Kind::kPut:
                EVENTLOOM_RETURN_IF_ERROR(txn.Put(op.a, op.b, op.value, op.ttl).status());
                break;
            case Kind::kCompareAndSet:
                EVENTLOOM_RETURN_IF_ERROR(
                    txn.CompareAndSet(op.a, op.b, op.expected_revision, op.value, op.ttl).status());
                break;
            case Kind::kDelete:
                EVENTLOOM_RETURN_IF_ERROR(txn.Delete(op.a, op.b));
                break;
            case Kind::kListAppend:
                EVENTLOOM_RETURN_IF_ERROR(txn.ListAppend(op.a, op.value).status());
                break;
            case Kind::kOutboxAdd:
                EVENTLOOM_RETURN_IF_ERROR(txn.OutboxAdd(op.a, op.value).status());
                break;
        }
    }
    return Status::Ok();
}

}  // namespace eventloom
