// A topic of the embedded log: its partitions and its persisted options (topic.json).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "eventloom/log.h"
#include "log/partition.h"

namespace eventloom {

class LogTopic final : public Topic {
public:
    // Creates the topic directory and its topic.json, then opens its partitions.
    static Result<std::unique_ptr<LogTopic>> Create(FileSystem* fs, const std::string& dir,
                                                    const std::string& name,
                                                    const TopicOptions& options,
                                                    uint64_t max_pending_bytes,
                                                    FlushScheduler* scheduler);
    // Opens an existing topic directory and recovers its partitions.
    static Result<std::unique_ptr<LogTopic>> Open(FileSystem* fs, const std::string& dir,
                                                  const std::string& name,
                                                  uint64_t max_pending_bytes,
                                                  FlushScheduler* scheduler, bool read_only);

    const std::string& name() const override { return name_; }
    const TopicOptions& options() const override { return options_; }
    PartitionId PartitionFor(std::string_view key) override;
    Result<RecordPosition> Publish(std::string_view key, std::string_view payload) override;
    Result<RecordPosition> PublishTo(PartitionId partition, std::string_view payload) override;
    Result<RecordPosition> Append(std::string_view key, std::string_view payload,
                                  bool caller_waits = false) override;
    Result<RecordPosition> AppendTo(PartitionId partition, std::string_view payload,
                                    bool caller_waits = false) override;
    Status WaitDurable(RecordPosition position) override;
    bool WaitForData(PartitionId partition, Offset offset,
                     std::chrono::milliseconds timeout) override;
    Result<std::unique_ptr<Reader>> OpenReader(PartitionId partition, Offset from) override;
    Result<PartitionInfo> Describe(PartitionId partition) override;
    Status EnforceRetention() override;

    uint64_t ChangeVersion() const override { return notifier_.version(); }
    bool WaitForChange(uint64_t seen, std::chrono::steady_clock::time_point deadline,
                       std::chrono::microseconds spin) override {
        return notifier_.WaitForChange(seen, deadline, spin);
    }
    void NotifyChange() override { notifier_.Notify(); }

    std::vector<Partition*> partition_list();

private:
    LogTopic(std::string name, TopicOptions options) : name_(std::move(name)), options_(options) {}
    Status OpenPartitions(FileSystem* fs, const std::string& dir, uint64_t max_pending_bytes,
                          FlushScheduler* scheduler, bool read_only);
    Result<Partition*> Get(PartitionId partition);

    std::string name_;
    TopicOptions options_;
    ChangeNotifier notifier_;  // declared before the partitions, which point to it
    std::vector<std::unique_ptr<Partition>> partitions_;
    std::atomic<uint32_t> round_robin_{0};
};

// topic.json <-> TopicOptions.
std::string TopicOptionsToJson(const TopicOptions& options);
Result<TopicOptions> TopicOptionsFromJson(std::string_view json, const std::string& where);

// The stable hash that maps partition keys to partitions: FNV-1a, 64 bits, with the
// MurmurHash3 finalizer. Part of the on-disk contract: changing it moves keys.
uint64_t PartitionKeyHash(std::string_view key);

}  // namespace eventloom
