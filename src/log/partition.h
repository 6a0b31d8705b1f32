// One partition of a topic: its segments, the append buffer and the group-commit flush.
//
// Appending frames a record into an in-memory buffer under mu_ and assigns its offset. The
// buffer is written by one flusher at a time (flushing_), outside mu_: either a publisher
// waiting for its record (leader/follower group commit: whoever finds no flush running does
// the next one for everybody) or the log's background flusher for Append without wait.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "common/file.h"
#include "eventloom/log.h"
#include "log/segment.h"

namespace eventloom {

class Partition;

enum class AppendMode { kWait, kBackground, kCallerWaits };

// Wakes consumers of a topic when any of its partitions has new visible records.
class ChangeNotifier {
public:
    uint64_t version() const { return version_.load(); }
    void Notify();
    bool WaitForChange(uint64_t seen, std::chrono::steady_clock::time_point deadline,
                       std::chrono::microseconds spin);

private:
    std::atomic<uint64_t> version_{0};
    std::atomic<int> sleepers_{0};
    std::mutex mu_;
    std::condition_variable cv_;
};

// Runs background flushes for partitions; implemented by the Log.
class FlushScheduler {
public:
    virtual ~FlushScheduler() = default;
    virtual void RequestFlush(Partition* partition) = 0;
};

class Partition {
public:
    struct Config {
        std::string topic;
        PartitionId id;
        std::string dir;
        TopicOptions options;
        FileSystem* fs = nullptr;
        uint64_t max_pending_bytes = 64ull << 20;
        FlushScheduler* scheduler = nullptr;  // must outlive the partition
        ChangeNotifier* notifier = nullptr;   // must outlive the partition
        // Follows a partition another process writes: no repairs, no appends; new records
        // are found by re-scanning the active segment (Refresh).
        bool read_only = false;
    };

    // Opens the partition directory (creating it when missing) and recovers it.
    static Result<std::unique_ptr<Partition>> Open(Config config);
    ~Partition();

    Partition(const Partition&) = delete;
    Partition& operator=(const Partition&) = delete;

    // Frames `payload` into the buffer. kWait returns once the record is visible per policy
    // (durable under kAlways); the others return at once: kBackground schedules a background
    // flush, kCallerWaits leaves the flush to the caller's WaitVisible.
    Result<Offset> Append(std::string_view payload, AppendMode mode);

    // Waits until `offset` is durable per the topic's policy (visible for kInterval/kNever).
    Status WaitVisible(Offset offset);
    bool WaitForData(Offset offset, std::chrono::milliseconds timeout);

    Result<std::unique_ptr<Reader>> OpenReader(Offset from);
    PartitionInfo Describe();

    // Read-only mode: picks up records and segments the writing process added since.
    void Refresh();

    // Background work, called by the log's flusher thread.
    void BackgroundFlush();
    void Tick(std::chrono::steady_clock::time_point now);
    Status EnforceRetention();
    // Writes and syncs everything pending.
    Status Flush();

    // For readers.
    Offset visible_end() const { return Offset(visible_end_.load(std::memory_order_acquire)); }
    Offset start_offset();
    // The segment holding `offset`: the last one whose base is at or below it; null if none.
    std::shared_ptr<Segment> FindSegment(Offset offset);
    // The error that stops reads at visible_end(), if the partition is damaged there.
    Status corruption() const;
    uint64_t max_body() const;

private:
    explicit Partition(Config config);

    struct PendingChunk {
        bool roll_before = false;  // seal the active segment and start one at `first_offset`
        int64_t first_offset = 0;
        int64_t end_offset = 0;
        std::string bytes;
        std::vector<IndexEntry> index;
    };

    Status Recover();
    Status RecoverSealed(const std::vector<int64_t>& bases);
    Status RecoverActive(int64_t base);
    Status FollowActive(int64_t base);
    void AppendLocked(std::string_view payload, int64_t timestamp_ms);
    // Writes what is pending; mu_ is held on entry and exit, released during I/O.
    void FlushLocked(std::unique_lock<std::mutex>& lock);
    Status WriteChunks(std::vector<PendingChunk>& chunks);
    Status Roll(int64_t new_base);
    Status SyncActive();
    void PublishWritten(int64_t end_offset);
    void PublishDurable(int64_t end_offset);
    std::string Name() const;
    std::string PreparedPath() const;
    // Zero-fills the next segment ahead of the roll, once the active one is half full.
    void PrepareNextSegment();

    Config config_;
    const uint64_t max_body_;

    std::mutex mu_;
    std::condition_variable cv_;
    // Guarded by mu_.
    int64_t next_offset_ = 0;
    std::vector<PendingChunk> pending_;
    std::string spare_bytes_;  // a written chunk's buffer, kept for its capacity
    uint64_t pending_bytes_ = 0;
    uint64_t tail_position_ = 0;        // size of the active segment once pending is written
    uint64_t last_index_position_ = 0;  // position of the last index entry in that segment
    int64_t tail_base_ = 0;             // base offset of the segment pending bytes go to
    bool flushing_ = false;
    bool flush_requested_ = false;
    Status error_;  // sticky: a failed write or sync, or corruption found at open
    std::chrono::steady_clock::time_point last_sync_;

    // Written only by the current flusher.
    std::shared_ptr<Segment> active_;
    uint64_t unsynced_bytes_ = 0;
    int64_t written_end_local_ = 0;

    std::atomic<int64_t> visible_end_{0};
    std::atomic<int64_t> durable_end_{0};
    std::atomic<int64_t> written_end_{0};
    std::atomic<bool> retention_due_{false};
    std::atomic<bool> next_ready_{false};  // a zero-filled spare segment waits at PreparedPath()

    mutable std::shared_mutex segments_mu_;
    std::vector<std::shared_ptr<Segment>> segments_;  // guarded by segments_mu_; by base
    Status corruption_;                               // set once at open; then read-only
};

}  // namespace eventloom
