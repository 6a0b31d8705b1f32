#include "log/topic.h"

#include <nlohmann/json.hpp>

namespace eventloom {

std::string_view DurabilityName(Durability d) {
    switch (d) {
        case Durability::kAlways:
            return "always";
        case Durability::kInterval:
            return "interval";
        case Durability::kNever:
            return "never";
    }
    return "unknown";
}

Result<Durability> ParseDurability(std::string_view name) {
    if (name == "always") return Durability::kAlways;
    if (name == "interval") return Durability::kInterval;
    if (name == "never") return Durability::kNever;
    return InvalidArgumentError("durability must be always, interval or never, got '" +
                                std::string(name) + "'");
}

Status ValidateTopicName(std::string_view name) {
    if (name.empty()) return InvalidArgumentError("topic name is empty");
    if (name.size() > 200) {
        return InvalidArgumentError("topic name is " + std::to_string(name.size()) +
                                    " characters, the limit is 200");
    }
    if (name.front() == '.' || name.front() == '_') {
        return InvalidArgumentError("topic name '" + std::string(name) +
                                    "' must not start with '.' or '_' (reserved)");
    }
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) {
            return InvalidArgumentError("topic name '" + std::string(name) +
                                        "' may contain only letters, digits, '.', '_' and '-'");
        }
    }
    return Status::Ok();
}

Status ValidateTopicOptions(const TopicOptions& o) {
    if (o.partitions < 1 || o.partitions > 1024) {
        return InvalidArgumentError("partitions must be 1..1024, got " +
                                    std::to_string(o.partitions));
    }
    if (o.segment_bytes < (64u << 10) || o.segment_bytes > (1ull << 30)) {
        return InvalidArgumentError("segment_bytes must be 64 KiB..1 GiB, got " +
                                    std::to_string(o.segment_bytes));
    }
    if (o.max_record_bytes < 1 || o.max_record_bytes > (64u << 20) ||
        o.max_record_bytes + log_format::kRecordOverhead + log_format::kSegmentHeaderBytes >
            o.segment_bytes) {
        return InvalidArgumentError(
            "max_record_bytes must be 1..64 MiB and fit in a segment, got " +
            std::to_string(o.max_record_bytes));
    }
    if (o.index_interval_bytes < 64) {
        return InvalidArgumentError("index_interval_bytes must be at least 64, got " +
                                    std::to_string(o.index_interval_bytes));
    }
    if (o.durability == Durability::kInterval && o.sync_interval.count() < 1) {
        return InvalidArgumentError("sync_interval must be at least 1 ms");
    }
    if (o.retention_age.count() < 0) return InvalidArgumentError("retention_age is negative");
    return Status::Ok();
}

std::string TopicOptionsToJson(const TopicOptions& o) {
    nlohmann::json j = {
        {"partitions", o.partitions},
        {"durability", DurabilityName(o.durability)},
        {"sync_interval_ms", o.sync_interval.count()},
        {"segment_bytes", o.segment_bytes},
        {"retention_bytes", o.retention_bytes},
        {"retention_age_ms", o.retention_age.count()},
        {"max_record_bytes", o.max_record_bytes},
        {"index_interval_bytes", o.index_interval_bytes},
    };
    return j.dump(2) + "\n";
}

Result<TopicOptions> TopicOptionsFromJson(std::string_view text, const std::string& where) {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        return DataLossError(where + ": not a JSON object");
    }
    TopicOptions o;
    try {
        o.partitions = j.at("partitions").get<int32_t>();
        EVENTLOOM_ASSIGN_OR_RETURN(o.durability,
                                   ParseDurability(j.at("durability").get<std::string>()));
        o.sync_interval = std::chrono::milliseconds(j.value("sync_interval_ms", int64_t{100}));
        o.segment_bytes = j.at("segment_bytes").get<uint64_t>();
        o.retention_bytes = j.value("retention_bytes", uint64_t{0});
        o.retention_age = std::chrono::milliseconds(j.value("retention_age_ms", int64_t{0}));
        o.max_record_bytes = j.at("max_record_bytes").get<uint32_t>();
        o.index_interval_bytes = j.value("index_interval_bytes", uint32_t{4096});
    } catch (const nlohmann::json::exception& e) {
        return DataLossError(where + ": " + e.what());
    }
    Status valid = ValidateTopicOptions(o);
    if (!valid.ok()) return DataLossError(where + ": " + valid.message());
    return o;
}

uint64_t PartitionKeyHash(std::string_view key) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
    for (unsigned char c : key) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    // Finalizer (from MurmurHash3): spreads keys that differ in a few characters.
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

Result<std::unique_ptr<LogTopic>> LogTopic::Create(FileSystem* fs, const std::string& dir,
                                                   const std::string& name,
                                                   const TopicOptions& options,
                                                   uint64_t max_pending_bytes,
                                                   FlushScheduler* scheduler) {
    EVENTLOOM_RETURN_IF_ERROR(ValidateTopicName(name));
    EVENTLOOM_RETURN_IF_ERROR(ValidateTopicOptions(options));
    EVENTLOOM_RETURN_IF_ERROR(fs->CreateDirs(dir));
    EVENTLOOM_RETURN_IF_ERROR(
        fs->WriteFileAtomic(dir + "/topic.json", TopicOptionsToJson(options)));
    std::unique_ptr<LogTopic> topic(new LogTopic(name, options));
    EVENTLOOM_RETURN_IF_ERROR(topic->OpenPartitions(fs, dir, max_pending_bytes, scheduler, false));
    return topic;
}

Result<std::unique_ptr<LogTopic>> LogTopic::Open(FileSystem* fs, const std::string& dir,
                                                 const std::string& name,
                                                 uint64_t max_pending_bytes,
                                                 FlushScheduler* scheduler, bool read_only) {
    std::string meta_path = dir + "/topic.json";
    EVENTLOOM_ASSIGN_OR_RETURN(std::string meta, fs->ReadFile(meta_path));
    EVENTLOOM_ASSIGN_OR_RETURN(TopicOptions options, TopicOptionsFromJson(meta, meta_path));
    std::unique_ptr<LogTopic> topic(new LogTopic(name, options));
    EVENTLOOM_RETURN_IF_ERROR(
        topic->OpenPartitions(fs, dir, max_pending_bytes, scheduler, read_only));
    return topic;
}

Status LogTopic::OpenPartitions(FileSystem* fs, const std::string& dir, uint64_t max_pending_bytes,
                                FlushScheduler* scheduler, bool read_only) {
    for (int32_t i = 0; i < options_.partitions; ++i) {
        Partition::Config config;
        config.topic = name_;
        config.id = PartitionId(i);
        config.dir = dir + "/" + std::to_string(i);
        config.options = options_;
        config.fs = fs;
        config.max_pending_bytes = max_pending_bytes;
        config.scheduler = scheduler;
        config.read_only = read_only;
        config.notifier = &notifier_;
        EVENTLOOM_ASSIGN_OR_RETURN(auto partition, Partition::Open(std::move(config)));
        partitions_.push_back(std::move(partition));
    }
    return Status::Ok();
}

PartitionId LogTopic::PartitionFor(std::string_view key) {
    auto n = static_cast<uint64_t>(options_.partitions);
    if (key.empty()) {
        return PartitionId(static_cast<int32_t>(round_robin_.fetch_add(1) % n));
    }
    return PartitionId(static_cast<int32_t>(PartitionKeyHash(key) % n));
}

Result<Partition*> LogTopic::Get(PartitionId partition) {
    if (partition.value() < 0 || partition.value() >= options_.partitions) {
        return InvalidArgumentError("topic " + name_ + " has no partition " +
                                    std::to_string(partition.value()) + " (it has " +
                                    std::to_string(options_.partitions) + ")");
    }
    return partitions_[static_cast<size_t>(partition.value())].get();
}

Result<RecordPosition> LogTopic::Publish(std::string_view key, std::string_view payload) {
    return PublishTo(PartitionFor(key), payload);
}

Result<RecordPosition> LogTopic::PublishTo(PartitionId partition, std::string_view payload) {
    EVENTLOOM_ASSIGN_OR_RETURN(Partition * p, Get(partition));
    EVENTLOOM_ASSIGN_OR_RETURN(Offset offset, p->Append(payload, AppendMode::kWait));
    return RecordPosition{partition, offset};
}

Result<RecordPosition> LogTopic::Append(std::string_view key, std::string_view payload,
                                        bool caller_waits) {
    return AppendTo(PartitionFor(key), payload, caller_waits);
}

Result<RecordPosition> LogTopic::AppendTo(PartitionId partition, std::string_view payload,
                                          bool caller_waits) {
    EVENTLOOM_ASSIGN_OR_RETURN(Partition * p, Get(partition));
    EVENTLOOM_ASSIGN_OR_RETURN(
        Offset offset,
        p->Append(payload, caller_waits ? AppendMode::kCallerWaits : AppendMode::kBackground));
    return RecordPosition{partition, offset};
}

Status LogTopic::WaitDurable(RecordPosition position) {
    EVENTLOOM_ASSIGN_OR_RETURN(Partition * p, Get(position.partition));
    return p->WaitVisible(position.offset);
}

bool LogTopic::WaitForData(PartitionId partition, Offset offset,
                           std::chrono::milliseconds timeout) {
    auto p = Get(partition);
    return p.ok() && (*p)->WaitForData(offset, timeout);
}

Result<std::unique_ptr<Reader>> LogTopic::OpenReader(PartitionId partition, Offset from) {
    EVENTLOOM_ASSIGN_OR_RETURN(Partition * p, Get(partition));
    return p->OpenReader(from);
}

Result<PartitionInfo> LogTopic::Describe(PartitionId partition) {
    EVENTLOOM_ASSIGN_OR_RETURN(Partition * p, Get(partition));
    return p->Describe();
}

Status LogTopic::EnforceRetention() {
    for (auto& p : partitions_) EVENTLOOM_RETURN_IF_ERROR(p->EnforceRetention());
    return Status::Ok();
}

std::vector<Partition*> LogTopic::partition_list() {
    std::vector<Partition*> out;
    for (auto& p : partitions_) out.push_back(p.get());
    return out;
}

}  // namespace eventloom
