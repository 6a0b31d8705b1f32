// The embedded durable log: topics split into partitions, each partition a sequence of segment
// files holding length- and CRC32C-framed records (docs/log-format.md).
//
// Publishing: Topic::Publish returns the record's position once it is durable per the topic's
// durability policy:
//   kAlways    after fdatasync; concurrent publishers share one sync (group commit)
//   kInterval  after the write; a background thread syncs every `sync_interval`
//   kNever     after the write; synced only when a segment rolls and every 8 MiB
// Topic::Append returns at once with the position; Topic::WaitDurable waits for it. A window of
// Appends followed by waits is the fast way to publish many records.
//
// Reading: a Reader walks one partition from any offset. Readers only ever see records that
// are visible: durable under kAlways, written under the other policies.
//
// Recovery: opening a log cuts a torn or truncated tail off each partition; corruption in the
// middle of a partition is reported with file and byte offset, and the partition then serves
// records only up to the damage and refuses appends.
//
// Thread-safety: Log, Topic and their methods are thread-safe. A Reader is used by one thread
// at a time. Topic pointers are owned by the Log and stay valid until it is destroyed.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "eventloom/status.h"
#include "eventloom/types.h"

namespace eventloom {

class FileSystem;

enum class Durability { kAlways, kInterval, kNever };

std::string_view DurabilityName(Durability d);  // "always", "interval", "never"
Result<Durability> ParseDurability(std::string_view name);

struct TopicOptions {
    int32_t partitions = 1;
    Durability durability = Durability::kAlways;
    std::chrono::milliseconds sync_interval{100};  // kInterval only
    uint64_t segment_bytes = 64ull << 20;          // roll to a new segment past this size
    uint64_t retention_bytes = 0;                  // per partition; 0 keeps everything
    std::chrono::milliseconds retention_age{0};    // 0 keeps everything
    uint32_t max_record_bytes = 1u << 20;
    uint32_t index_interval_bytes = 4096;  // one sparse index entry per this many bytes

    friend bool operator==(const TopicOptions&, const TopicOptions&) = default;
};

// Checks ranges; InvalidArgument names the field.
Status ValidateTopicOptions(const TopicOptions& options);

// Topic names: 1-200 characters of [A-Za-z0-9._-], not starting with '.' or '_' (reserved
// for eventloom's own directories).
Status ValidateTopicName(std::string_view name);

struct RecordPosition {
    PartitionId partition;
    Offset offset;
    friend bool operator==(const RecordPosition&, const RecordPosition&) = default;
};

// One record as read. The payload points into the Reader's buffer and is valid until the next
// call on that Reader.
struct RecordView {
    Offset offset;
    int64_t timestamp_ms;  // append time, Unix milliseconds
    std::string_view payload;
};

struct PartitionInfo {
    PartitionId partition;
    Offset start_offset;    // first record still retained
    Offset end_offset;      // next offset to be assigned
    Offset visible_offset;  // records below this are readable
    Offset durable_offset;  // records below this are synced to disk
    int segments = 0;
    uint64_t bytes = 0;
    std::string error;  // non-empty when the partition refuses appends (corruption, failed sync)
};

class Reader {
public:
    virtual ~Reader() = default;

    // Up to `max_records` records from next() on, stopping early once `max_bytes` of payload
    // were read (at least one record is returned if any is visible). Empty at the end of what
    // is visible. DataLoss names the file and byte offset of a corrupt record.
    virtual Result<std::span<const RecordView>> Read(size_t max_records, size_t max_bytes) = 0;

    // The offset the next Read starts at.
    virtual Offset next() const = 0;

    // Moves to `offset`. OutOfRange if it is below the partition's start (retention removed
    // it) or beyond its end.
    virtual Status Seek(Offset offset) = 0;
};

class Topic {
public:
    virtual ~Topic() = default;

    virtual const std::string& name() const = 0;
    virtual const TopicOptions& options() const = 0;
    int32_t partitions() const { return options().partitions; }

    // The partition for `key`: a stable hash of the key; round-robin when the key is empty.
    virtual PartitionId PartitionFor(std::string_view key) = 0;

    // Appends one record and returns once it is durable per the topic's policy.
    virtual Result<RecordPosition> Publish(std::string_view key, std::string_view payload) = 0;
    virtual Result<RecordPosition> PublishTo(PartitionId partition, std::string_view payload) = 0;

    // Appends one record and returns its position at once, before it is durable.
    // ResourceExhausted when too much is waiting to be written (backpressure).
    // `caller_waits`: the caller promises to call WaitDurable for it (and flushes then), so no
    // background flush is scheduled: that saves waking the flusher thread on every publish.
    virtual Result<RecordPosition> Append(std::string_view key, std::string_view payload,
                                          bool caller_waits = false) = 0;
    virtual Result<RecordPosition> AppendTo(PartitionId partition, std::string_view payload,
                                            bool caller_waits = false) = 0;

    // Waits until the record at `position` is durable per the topic's policy.
    virtual Status WaitDurable(RecordPosition position) = 0;

    // Waits until `partition` has a visible record at or beyond `offset`, or `timeout` passes.
    // Returns true when there is one.
    virtual bool WaitForData(PartitionId partition, Offset offset,
                             std::chrono::milliseconds timeout) = 0;

    virtual Result<std::unique_ptr<Reader>> OpenReader(PartitionId partition, Offset from) = 0;

    // A counter that moves whenever any partition's visible end advances, or NotifyChange is
    // called. A consumer of several partitions reads it, looks for work, and if there is none
    // sleeps in WaitForChange until the counter moves past what it read (no lost wake-ups).
    virtual uint64_t ChangeVersion() const = 0;
    // Returns true when the version moved past `seen` before `deadline`. Polls for up to `spin`
    // before it sleeps: waking a sleeping thread costs tens of microseconds, so a consumer that
    // expects the next event soon trades some CPU for latency.
    virtual bool WaitForChange(uint64_t seen, std::chrono::steady_clock::time_point deadline,
                               std::chrono::microseconds spin = std::chrono::microseconds(50)) = 0;
    virtual void NotifyChange() = 0;

    virtual Result<PartitionInfo> Describe(PartitionId partition) = 0;

    // Applies retention now (it also runs on its own after rolls and every few seconds).
    virtual Status EnforceRetention() = 0;
};

struct LogOptions {
    std::string dir;
    FileSystem* fs = nullptr;  // nullptr: the real file system. Must outlive the Log.
    // Upper bound on bytes waiting to be written per partition before Append pushes back.
    uint64_t max_pending_bytes = 64ull << 20;
    // How long a background flush of appended records waits before it starts. A caller that
    // waits for durability within it flushes at once, with everything appended so far: so a
    // window of appends is synced in one batch rather than a small first batch and the rest.
    std::chrono::microseconds flush_linger{200};
    // Opens a log that another process may be writing, to read it: takes no lock, repairs
    // nothing, refuses appends and topic creation, and finds new records by re-reading the
    // files. Such a reader may see records the writer has not synced yet.
    bool read_only = false;
};

class Log {
public:
    virtual ~Log() = default;

    // Opens (creating when missing) the log in `options.dir` and recovers every topic in it.
    static Result<std::unique_ptr<Log>> Open(const LogOptions& options);

    // AlreadyExists if a topic of that name exists with other options.
    virtual Result<Topic*> CreateTopic(const std::string& name, const TopicOptions& options) = 0;
    // NotFound if there is no such topic.
    virtual Result<Topic*> GetTopic(const std::string& name) = 0;
    virtual std::vector<std::string> ListTopics() = 0;

    // Writes and syncs everything pending. Done also on destruction.
    virtual Status Flush() = 0;
};

}  // namespace eventloom
