#include "log/partition.h"

#include <algorithm>
#include <thread>

#include "common/logging.h"

namespace eventloom {
namespace lf = log_format;

namespace {

int64_t NowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// A chunk is cut at this size so that each write stays well below the unsynced-bytes bound.
constexpr uint64_t kMaxChunkBytes = lf::kMaxUnsyncedBytes / 2;

class PartitionReader final : public Reader {
public:
    PartitionReader(Partition* partition, Offset from) : partition_(partition), next_(from) {}

    Result<std::span<const RecordView>> Read(size_t max_records, size_t max_bytes) override;
    Offset next() const override { return std::max(next_, skip_until_); }
    Status Seek(Offset offset) override;

private:
    Status Locate();
    Status Corrupt(uint64_t position, std::string_view what) const {
        return DataLossError(segment_->path() + " byte " + std::to_string(position) + ": " +
                             std::string(what));
    }

    Partition* partition_;  // outlives the reader (owned by the Log)
    std::shared_ptr<Segment> segment_;
    uint64_t position_ = 0;
    Offset next_;           // offset of the record at position_
    Offset skip_until_{0};  // records below this are read past but not returned
    std::string buf_;
    std::vector<RecordView> views_;
};

Status PartitionReader::Seek(Offset offset) {
    Offset start = partition_->start_offset();
    Offset end = partition_->visible_end();
    if (offset < start) {
        return OutOfRangeError("offset " + std::to_string(offset.value()) +
                               " is below the partition's start offset " +
                               std::to_string(start.value()));
    }
    if (offset > end) {
        return OutOfRangeError("offset " + std::to_string(offset.value()) +
                               " is beyond the partition's end offset " +
                               std::to_string(end.value()));
    }
    segment_.reset();
    next_ = offset;
    skip_until_ = Offset(0);
    return Status::Ok();
}

Status PartitionReader::Locate() {
    Offset target = next();
    std::shared_ptr<Segment> segment = partition_->FindSegment(target);
    if (!segment || target < partition_->start_offset()) {
        return OutOfRangeError("offset " + std::to_string(target.value()) +
                               " is below the partition's start offset " +
                               std::to_string(partition_->start_offset().value()));
    }
    Offset entry;
    position_ = segment->Lookup(target, &entry);
    segment_ = std::move(segment);
    next_ = entry;
    skip_until_ = target;
    return Status::Ok();
}

Result<std::span<const RecordView>> PartitionReader::Read(size_t max_records, size_t max_bytes) {
    views_.clear();
    Offset end = partition_->visible_end();
    if (next() >= end) {
        partition_->Refresh();
        end = partition_->visible_end();
    }
    if (next() >= end || max_records == 0) {
        if (next() >= end) EVENTLOOM_RETURN_IF_ERROR(partition_->corruption());
        return std::span<const RecordView>();
    }
    if (!segment_) EVENTLOOM_RETURN_IF_ERROR(Locate());

    // A sealed segment read to its end hands over to the next one.
    while (segment_->sealed() && position_ >= segment_->visible_size()) {
        std::shared_ptr<Segment> following = partition_->FindSegment(next_);
        if (!following || following == segment_) {
            return Corrupt(position_, "segment ends at offset " + std::to_string(next_.value()) +
                                          " but no segment continues from there");
        }
        if (following->base() != next_) {
            return Corrupt(position_, "segment ends at offset " + std::to_string(next_.value()) +
                                          " but the next segment starts at " +
                                          std::to_string(following->base().value()));
        }
        segment_ = std::move(following);
        position_ = lf::kSegmentHeaderBytes;
    }

    uint64_t limit = segment_->visible_size();
    uint64_t available = limit > position_ ? limit - position_ : 0;
    size_t want = static_cast<size_t>(std::min<uint64_t>(available, max_bytes + (64 << 10)));
    if (buf_.size() < want) buf_.resize(want);
    EVENTLOOM_ASSIGN_OR_RETURN(size_t got, segment_->file()->ReadAt(position_, buf_.data(), want));

    size_t cursor = 0;
    size_t payload_bytes = 0;
    const uint64_t max_body = partition_->max_body();
    while (views_.size() < max_records && next_ < end) {
        lf::ParsedFrame frame;
        std::string_view rest(buf_.data() + cursor, got - cursor);
        lf::FrameCheck check = lf::ParseFrame(rest, max_body, &frame);
        if (check == lf::FrameCheck::kIncomplete) {
            if (cursor > 0) break;  // the next Read starts at this frame
            // One record larger than the buffer: read exactly it.
            if (got < lf::kFrameHeaderBytes || got >= available) {
                return Corrupt(position_, "record runs past the end of the visible data");
            }
            size_t need = lf::kFrameHeaderBytes + lf::GetU32(buf_.data());
            if (buf_.size() < need) buf_.resize(need);
            EVENTLOOM_ASSIGN_OR_RETURN(got, segment_->file()->ReadAt(position_, buf_.data(), need));
            continue;
        }
        if (check != lf::FrameCheck::kOk) {
            return Corrupt(position_ + cursor, lf::FrameCheckName(check));
        }
        if (frame.offset != next_.value()) {
            return Corrupt(position_ + cursor, "record carries offset " +
                                                   std::to_string(frame.offset) + ", expected " +
                                                   std::to_string(next_.value()));
        }
        cursor += frame.frame_bytes;
        next_ = next_.next();
        if (Offset(frame.offset) < skip_until_) continue;
        views_.push_back({Offset(frame.offset), frame.timestamp_ms, frame.payload});
        payload_bytes += frame.payload.size();
        if (payload_bytes >= max_bytes) break;
    }
    position_ += cursor;
    if (next_ >= skip_until_) skip_until_ = Offset(0);
    return std::span<const RecordView>(views_);
}

}  // namespace

Partition::Partition(Config config)
    : config_(std::move(config)),
      max_body_(lf::kBodyHeaderBytes + config_.options.max_record_bytes),
      last_sync_(std::chrono::steady_clock::now()) {}

Partition::~Partition() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !flushing_; });
}

std::string Partition::Name() const {
    return "topic=" + config_.topic + " partition=" + std::to_string(config_.id.value());
}

uint64_t Partition::max_body() const { return max_body_; }

Result<std::unique_ptr<Partition>> Partition::Open(Config config) {
    std::unique_ptr<Partition> partition(new Partition(std::move(config)));
    EVENTLOOM_RETURN_IF_ERROR(partition->Recover());
    return partition;
}

Status Partition::Recover() {
    FileSystem* fs = config_.fs;
    EVENTLOOM_RETURN_IF_ERROR(fs->CreateDirs(config_.dir));
    EVENTLOOM_ASSIGN_OR_RETURN(auto names, fs->ListDir(config_.dir));
    std::vector<int64_t> bases;
    for (const std::string& name : names) {
        int64_t base;
        if (lf::ParseSegmentFileName(name, &base)) bases.push_back(base);
    }
    std::sort(bases.begin(), bases.end());

    if (!config_.read_only) {
        // A half-made spare segment is dropped; a finished one is used at the next roll.
        fs->Remove(PreparedPath() + ".tmp").IgnoreError();
        next_ready_.store(fs->Exists(PreparedPath()));
    }
    if (bases.empty() && config_.read_only) {
        return NotFoundError(Name() + " has no segment yet");
    }
    if (bases.empty()) {
        EVENTLOOM_ASSIGN_OR_RETURN(
            active_, Segment::Create(fs, config_.dir, Offset(0), config_.options.segment_bytes));
        segments_.push_back(active_);
    } else {
        EVENTLOOM_RETURN_IF_ERROR(RecoverSealed(bases));
        EVENTLOOM_RETURN_IF_ERROR(RecoverActive(bases.back()));
    }

    next_offset_ = written_end_local_;
    written_end_ = durable_end_ = visible_end_ = written_end_local_;
    tail_position_ = active_->written_size();
    tail_base_ = active_->base().value();
    last_index_position_ = 0;
    return Status::Ok();
}

Status Partition::RecoverSealed(const std::vector<int64_t>& bases) {
    FileSystem* fs = config_.fs;
    for (size_t i = 0; i + 1 < bases.size(); ++i) {
        Offset base(bases[i]);
        if (!config_.read_only && !fs->Exists(config_.dir + "/" + lf::IndexFileName(bases[i]))) {
            // A roll that crashed before sealing: the segment was synced before the next one
            // was created, so it must scan clean to its end; seal it now.
            EVENTLOOM_ASSIGN_OR_RETURN(
                auto file,
                fs->Open(config_.dir + "/" + lf::SegmentFileName(bases[i]), OpenMode::kReadWrite));
            EVENTLOOM_ASSIGN_OR_RETURN(
                ScanResult scan, ScanFrames(*file, lf::kSegmentHeaderBytes, bases[i], bases[i],
                                            max_body_, config_.options.index_interval_bytes));
            if (scan.stop != lf::FrameCheck::kEnd || scan.next_offset != bases[i + 1]) {
                return DataLossError(file->path() + " byte " + std::to_string(scan.end_position) +
                                     ": " + std::string(lf::FrameCheckName(scan.stop)) +
                                     " in a sealed segment");
            }
            Segment segment(std::move(file), base);
            segment.ResetWritten(scan.end_position, std::move(scan.index));
            EVENTLOOM_RETURN_IF_ERROR(segment.Seal(fs, config_.dir));
        }
        EVENTLOOM_ASSIGN_OR_RETURN(auto segment,
                                   Segment::OpenSealed(fs, config_.dir, base, max_body_,
                                                       config_.options.index_interval_bytes));
        segments_.push_back(std::move(segment));
    }
    return Status::Ok();
}

Status Partition::RecoverActive(int64_t base) {
    FileSystem* fs = config_.fs;
    std::string path = config_.dir + "/" + lf::SegmentFileName(base);
    if (config_.read_only) return FollowActive(base);
    EVENTLOOM_ASSIGN_OR_RETURN(auto file, fs->Open(path, OpenMode::kReadWrite));
    EVENTLOOM_ASSIGN_OR_RETURN(uint64_t file_size, file->Size());

    char header[lf::kSegmentHeaderBytes] = {};
    EVENTLOOM_ASSIGN_OR_RETURN(size_t n, file->ReadAt(0, header, sizeof(header)));
    bool header_ok = n == sizeof(header) && std::memcmp(header, lf::kSegmentMagic, 8) == 0 &&
                     static_cast<int64_t>(lf::GetU64(header + 8)) == base;
    if (!header_ok) {
        // Creating a segment writes and syncs its header before any record; a file without a
        // header holds no acknowledged record. Anything intact in it means real damage.
        EVENTLOOM_ASSIGN_OR_RETURN(int64_t intact,
                                   FindIntactFrame(*file, 0, file_size, base, max_body_));
        if (intact >= 0) return DataLossError(path + " byte 0: segment header is damaged");
        config_.fs->Remove(path).IgnoreError();
        logging::Get("log")->warn("{} recreating segment {} whose creation did not finish", Name(),
                                  path);
        EVENTLOOM_ASSIGN_OR_RETURN(
            active_, Segment::Create(fs, config_.dir, Offset(base), config_.options.segment_bytes));
        segments_.push_back(active_);
        written_end_local_ = base;
        return Status::Ok();
    }

    EVENTLOOM_ASSIGN_OR_RETURN(ScanResult scan,
                               ScanFrames(*file, lf::kSegmentHeaderBytes, base, base, max_body_,
                                          config_.options.index_interval_bytes));
    if (scan.stop != lf::FrameCheck::kEnd) {
        uint64_t bad = scan.end_position;
        // A crash tears at most kMaxUnsyncedBytes; an intact record beyond that was synced.
        EVENTLOOM_ASSIGN_OR_RETURN(
            int64_t intact, FindIntactFrame(*file, bad + lf::kMaxUnsyncedBytes + 1, file_size,
                                            scan.next_offset, max_body_));
        std::string what = scan.stop_detail.empty() ? std::string(lf::FrameCheckName(scan.stop))
                                                    : scan.stop_detail;
        if (intact >= 0) {
            // Records that were synced lie beyond the damage: not a torn tail.
            corruption_ =
                DataLossError(path + " byte " + std::to_string(bad) + ": " + what +
                              "; intact records follow at byte " + std::to_string(intact) +
                              "; the partition serves records only up to offset " +
                              std::to_string(scan.next_offset));
            error_ = corruption_;
            logging::Get("log")->error("{} {}", Name(), corruption_.message());
        } else {
            // A torn tail: never acknowledged. Zero it so that no later scan sees stale frames.
            uint64_t zero_to = std::min<uint64_t>(
                file_size, bad + lf::kMaxUnsyncedBytes + max_body_ + lf::kFrameHeaderBytes);
            if (zero_to > bad) {
                EVENTLOOM_RETURN_IF_ERROR(file->WriteAt(bad, std::string(zero_to - bad, '\0')));
                EVENTLOOM_RETURN_IF_ERROR(file->Sync());
            }
            logging::Get("log")->warn("{} cut torn tail of {} at byte {} ({}): next offset {}",
                                      Name(), path, bad, what, scan.next_offset);
        }
    }
    if (file_size < config_.options.segment_bytes && error_.ok()) {
        EVENTLOOM_RETURN_IF_ERROR(file->Preallocate(file_size, config_.options.segment_bytes));
    }
    active_ = std::make_shared<Segment>(std::move(file), Offset(base));
    active_->ResetWritten(scan.end_position, std::move(scan.index));
    segments_.push_back(active_);
    written_end_local_ = scan.next_offset;

    // Sealed segments must end where the active one begins.
    return Status::Ok();
}

Status Partition::FollowActive(int64_t base) {
    std::string path = config_.dir + "/" + lf::SegmentFileName(base);
    EVENTLOOM_ASSIGN_OR_RETURN(auto file, config_.fs->Open(path, OpenMode::kRead));
    // The writer may be in the middle of a record: whatever stops the scan is the end for now.
    EVENTLOOM_ASSIGN_OR_RETURN(ScanResult scan,
                               ScanFrames(*file, lf::kSegmentHeaderBytes, base, base, max_body_,
                                          config_.options.index_interval_bytes));
    auto segment = std::make_shared<Segment>(std::move(file), Offset(base));
    segment->ResetWritten(scan.end_position, std::move(scan.index));
    {
        std::unique_lock<std::shared_mutex> lock(segments_mu_);
        segments_.push_back(segment);
    }
    active_ = std::move(segment);
    written_end_local_ = scan.next_offset;
    return Status::Ok();
}

void Partition::Refresh() {
    if (!config_.read_only) return;
    std::lock_guard<std::mutex> lock(mu_);
    for (;;) {
        auto scan =
            ScanFrames(*active_->file(), active_->written_size(), written_end_local_,
                       active_->base().value(), max_body_, config_.options.index_interval_bytes);
        if (!scan.ok()) return;
        bool grew = scan->next_offset > written_end_local_;
        if (grew) {
            active_->Extend(scan->end_position, scan->index);
            written_end_local_ = scan->next_offset;
            written_end_ = durable_end_ = visible_end_ = written_end_local_;
            if (config_.notifier) config_.notifier->Notify();
        }
        // The writer rolled: a segment now starts where this one ends.
        std::string next_path = config_.dir + "/" + lf::SegmentFileName(written_end_local_);
        if (grew || !config_.fs->Exists(next_path)) break;
        active_->MarkSealed();
        if (!FollowActive(written_end_local_).ok()) break;
        written_end_ = durable_end_ = visible_end_ = written_end_local_;
    }
    cv_.notify_all();
}

void Partition::AppendLocked(std::string_view payload, int64_t timestamp_ms) {
    uint64_t frame_bytes = lf::kRecordOverhead + payload.size();
    bool segment_full = tail_position_ + frame_bytes > config_.options.segment_bytes &&
                        tail_position_ > lf::kSegmentHeaderBytes;
    if (segment_full) {
        tail_position_ = lf::kSegmentHeaderBytes;
        last_index_position_ = 0;
        tail_base_ = next_offset_;
    }
    if (pending_.empty() || segment_full || pending_.back().bytes.size() >= kMaxChunkBytes) {
        pending_.emplace_back();
        pending_.back().bytes = std::move(spare_bytes_);
        spare_bytes_ = std::string();
        pending_.back().roll_before = segment_full;
        pending_.back().first_offset = next_offset_;
    }
    PendingChunk& chunk = pending_.back();
    bool first_in_segment = tail_position_ == lf::kSegmentHeaderBytes;
    if (first_in_segment ||
        tail_position_ - last_index_position_ >= config_.options.index_interval_bytes) {
        chunk.index.push_back({static_cast<uint32_t>(next_offset_ - tail_base_),
                               static_cast<uint32_t>(tail_position_)});
        last_index_position_ = tail_position_;
    }
    lf::AppendFrame(&chunk.bytes, next_offset_, timestamp_ms, payload);
    chunk.end_offset = ++next_offset_;
    tail_position_ += frame_bytes;
    pending_bytes_ += frame_bytes;
}

Result<Offset> Partition::Append(std::string_view payload, AppendMode mode) {
    const bool wait = mode == AppendMode::kWait;
    if (payload.size() > config_.options.max_record_bytes) {
        return InvalidArgumentError("record is " + std::to_string(payload.size()) +
                                    " bytes, the topic's limit is " +
                                    std::to_string(config_.options.max_record_bytes));
    }
    if (config_.read_only) {
        return FailedPreconditionError(Name() + " is open read-only");
    }
    int64_t timestamp_ms = NowMs();
    Offset offset;
    {
        std::unique_lock<std::mutex> lock(mu_);
        if (!error_.ok()) return error_;
        if (pending_bytes_ >= config_.max_pending_bytes) {
            if (!wait) {
                return ResourceExhaustedError(Name() + ": " + std::to_string(pending_bytes_) +
                                              " bytes are waiting to be written");
            }
            // Write what is waiting (or wait for whoever is writing it) to make room.
            while (pending_bytes_ >= config_.max_pending_bytes && error_.ok()) {
                if (flushing_) {
                    cv_.wait(lock);
                } else {
                    FlushLocked(lock);
                }
            }
            if (!error_.ok()) return error_;
        }
        offset = Offset(next_offset_);
        AppendLocked(payload, timestamp_ms);
        if (!wait) {
            if (mode == AppendMode::kBackground && !flushing_ && !flush_requested_) {
                flush_requested_ = true;
                lock.unlock();
                config_.scheduler->RequestFlush(this);
            }
            return offset;
        }
    }
    EVENTLOOM_RETURN_IF_ERROR(WaitVisible(offset));
    return offset;
}

Status Partition::WaitVisible(Offset offset) {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
        int64_t reached = config_.options.durability == Durability::kAlways
                              ? durable_end_.load(std::memory_order_acquire)
                              : written_end_.load(std::memory_order_acquire);
        if (reached > offset.value()) return Status::Ok();
        if (!error_.ok()) return error_;
        if (offset.value() >= next_offset_) {
            return InvalidArgumentError("offset " + std::to_string(offset.value()) +
                                        " was never appended to " + Name());
        }
        if (!flushing_) {
            FlushLocked(lock);
            continue;
        }
        cv_.wait(lock);
    }
}

bool Partition::WaitForData(Offset offset, std::chrono::milliseconds timeout) {
    if (visible_end() > offset) return true;
    if (config_.read_only) {
        // Another process writes: poll the file.
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            Refresh();
            if (visible_end() > offset) return true;
            auto now = std::chrono::steady_clock::now();
            if (now >= deadline) return false;
            std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
                deadline - now, std::chrono::milliseconds(20)));
        }
    }
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return visible_end() > offset || !error_.ok(); }) &&
           visible_end() > offset;
}

void Partition::FlushLocked(std::unique_lock<std::mutex>& lock) {
    if (pending_.empty()) return;
    flushing_ = true;
    std::vector<PendingChunk> chunks;
    chunks.swap(pending_);
    pending_bytes_ = 0;
    lock.unlock();

    Status status = WriteChunks(chunks);

    lock.lock();
    if (!status.ok() && error_.ok()) {
        error_ = UnavailableError(Name() + " stopped accepting records: " + status.ToString() +
                                  "; reopen the log to recover");
        logging::Get("log")->error("{}", error_.message());
    }
    flushing_ = false;
    // Keep the first chunk's buffer to avoid reallocating it on the next append.
    if (!chunks.empty() && chunks.front().bytes.capacity() > spare_bytes_.capacity()) {
        spare_bytes_ = std::move(chunks.front().bytes);
        spare_bytes_.clear();
    }
    cv_.notify_all();
    if (!pending_.empty() && !flush_requested_ && error_.ok()) {
        flush_requested_ = true;
        lock.unlock();
        config_.scheduler->RequestFlush(this);
        lock.lock();
    }
}

Status Partition::WriteChunks(std::vector<PendingChunk>& chunks) {
    const bool always = config_.options.durability == Durability::kAlways;
    for (PendingChunk& chunk : chunks) {
        if (chunk.roll_before) EVENTLOOM_RETURN_IF_ERROR(Roll(chunk.first_offset));
        if (unsynced_bytes_ > 0 && unsynced_bytes_ + chunk.bytes.size() > lf::kMaxUnsyncedBytes) {
            EVENTLOOM_RETURN_IF_ERROR(SyncActive());
        }
        EVENTLOOM_RETURN_IF_ERROR(active_->Write(chunk.bytes));
        active_->AddIndexEntries(chunk.index);
        unsynced_bytes_ += chunk.bytes.size();
        written_end_local_ = chunk.end_offset;
        if (!always) PublishWritten(chunk.end_offset);
    }
    if (always) {
        EVENTLOOM_RETURN_IF_ERROR(SyncActive());
    }
    return Status::Ok();
}

Status Partition::SyncActive() {
    EVENTLOOM_RETURN_IF_ERROR(active_->Sync());
    unsynced_bytes_ = 0;
    if (config_.options.durability == Durability::kAlways) PublishWritten(written_end_local_);
    PublishDurable(written_end_local_);
    return Status::Ok();
}

void Partition::PublishWritten(int64_t end_offset) {
    active_->set_visible_size(active_->written_size());
    written_end_.store(end_offset, std::memory_order_release);
    visible_end_.store(end_offset, std::memory_order_release);
    if (config_.notifier) config_.notifier->Notify();
}

void ChangeNotifier::Notify() {
    // Sequentially consistent on both sides (here and the sleeper count in WaitForChange), so
    // that either the sleeper sees the new version or this sees the sleeper.
    version_.fetch_add(1);
    if (sleepers_.load() > 0) {
        std::lock_guard<std::mutex> lock(mu_);
        cv_.notify_all();
    }
}

bool ChangeNotifier::WaitForChange(uint64_t seen, std::chrono::steady_clock::time_point deadline,
                                   std::chrono::microseconds spin) {
    auto spin_until = std::min(deadline, std::chrono::steady_clock::now() + spin);
    while (version() == seen) {
        if (std::chrono::steady_clock::now() >= spin_until) break;
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
    }
    if (version() != seen) return true;
    std::unique_lock<std::mutex> lock(mu_);
    sleepers_.fetch_add(1);
    bool changed = cv_.wait_until(lock, deadline, [&] { return version() != seen; });
    sleepers_.fetch_sub(1);
    return changed;
}

void Partition::PublishDurable(int64_t end_offset) {
    durable_end_.store(end_offset, std::memory_order_release);
}

Status Partition::Roll(int64_t new_base) {
    EVENTLOOM_RETURN_IF_ERROR(SyncActive());
    EVENTLOOM_RETURN_IF_ERROR(active_->Seal(config_.fs, config_.dir));
    EVENTLOOM_ASSIGN_OR_RETURN(
        auto segment,
        Segment::Create(config_.fs, config_.dir, Offset(new_base), config_.options.segment_bytes,
                        next_ready_.exchange(false) ? PreparedPath() : std::string()));
    {
        std::unique_lock<std::shared_mutex> lock(segments_mu_);
        segments_.push_back(segment);
    }
    active_ = std::move(segment);
    retention_due_.store(true, std::memory_order_release);
    config_.scheduler->RequestFlush(this);  // the flusher applies retention
    return Status::Ok();
}

void Partition::BackgroundFlush() {
    {
        std::unique_lock<std::mutex> lock(mu_);
        flush_requested_ = false;
        if (!flushing_) FlushLocked(lock);
    }
    if (retention_due_.exchange(false)) {
        Status status = EnforceRetention();
        if (!status.ok()) logging::Get("log")->warn("{} retention: {}", Name(), status.ToString());
    }
}

std::string Partition::PreparedPath() const { return config_.dir + "/next.segment"; }

void Partition::PrepareNextSegment() {
    if (config_.read_only || next_ready_.load()) return;
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (tail_position_ < config_.options.segment_bytes / 2 || !error_.ok()) return;
    }
    std::string tmp = PreparedPath() + ".tmp";
    Status status = PrepareSegmentFile(config_.fs, tmp, config_.options.segment_bytes);
    if (status.ok()) status = config_.fs->Rename(tmp, PreparedPath());
    if (!status.ok()) {
        logging::Get("log")->warn("{} preparing the next segment: {}", Name(), status.ToString());
        return;
    }
    next_ready_.store(true);
}

void Partition::Tick(std::chrono::steady_clock::time_point now) {
    PrepareNextSegment();
    if (config_.options.durability != Durability::kInterval) return;
    std::unique_lock<std::mutex> lock(mu_);
    if (flushing_ || !error_.ok() || now - last_sync_ < config_.options.sync_interval) return;
    last_sync_ = now;
    if (durable_end_.load() >= written_end_.load()) return;
    flushing_ = true;
    lock.unlock();
    Status status = SyncActive();
    lock.lock();
    if (!status.ok() && error_.ok()) {
        error_ = UnavailableError(Name() + " stopped accepting records: " + status.ToString());
    }
    flushing_ = false;
    cv_.notify_all();
}

Status Partition::Flush() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !flushing_; });
    FlushLocked(lock);
    cv_.wait(lock, [&] { return !flushing_; });
    if (!error_.ok()) return error_;
    if (durable_end_.load() < written_end_.load()) {
        flushing_ = true;
        lock.unlock();
        Status status = SyncActive();
        lock.lock();
        flushing_ = false;
        cv_.notify_all();
        return status;
    }
    return Status::Ok();
}

Status Partition::EnforceRetention() {
    const TopicOptions& o = config_.options;
    if (config_.read_only) return Status::Ok();
    if (o.retention_bytes == 0 && o.retention_age.count() == 0) return Status::Ok();
    std::vector<std::shared_ptr<Segment>> doomed;
    {
        std::unique_lock<std::shared_mutex> lock(segments_mu_);
        uint64_t total = 0;
        for (const auto& s : segments_) total += s->visible_size();
        int64_t now_ms = NowMs();
        while (segments_.size() > 1 && segments_.front()->sealed()) {
            const auto& oldest = segments_.front();
            bool over_size =
                o.retention_bytes > 0 && total - oldest->visible_size() >= o.retention_bytes;
            bool too_old = false;
            if (o.retention_age.count() > 0) {
                auto mtime = config_.fs->ModifiedTimeMs(oldest->path());
                too_old = mtime.ok() && now_ms - *mtime > o.retention_age.count();
            }
            if (!over_size && !too_old) break;
            total -= oldest->visible_size();
            doomed.push_back(oldest);
            segments_.erase(segments_.begin());
        }
    }
    for (const auto& segment : doomed) {
        // Readers holding the segment keep reading it: the open file outlives the unlink.
        EVENTLOOM_RETURN_IF_ERROR(config_.fs->Remove(segment->path()));
        EVENTLOOM_RETURN_IF_ERROR(
            config_.fs->Remove(config_.dir + "/" + lf::IndexFileName(segment->base().value())));
        logging::Get("log")->info("{} retention removed segment base={}", Name(),
                                  segment->base().value());
    }
    return Status::Ok();
}

Offset Partition::start_offset() {
    std::shared_lock<std::shared_mutex> lock(segments_mu_);
    return segments_.front()->base();
}

std::shared_ptr<Segment> Partition::FindSegment(Offset offset) {
    std::shared_lock<std::shared_mutex> lock(segments_mu_);
    auto it = std::upper_bound(segments_.begin(), segments_.end(), offset,
                               [](Offset o, const auto& s) { return o < s->base(); });
    if (it == segments_.begin()) return nullptr;
    return *(it - 1);
}

Status Partition::corruption() const { return corruption_; }

Result<std::unique_ptr<Reader>> Partition::OpenReader(Offset from) {
    auto reader = std::make_unique<PartitionReader>(this, from);
    EVENTLOOM_RETURN_IF_ERROR(reader->Seek(from));
    return std::unique_ptr<Reader>(std::move(reader));
}

PartitionInfo Partition::Describe() {
    PartitionInfo info;
    info.partition = config_.id;
    {
        std::shared_lock<std::shared_mutex> lock(segments_mu_);
        info.start_offset = segments_.front()->base();
        info.segments = static_cast<int>(segments_.size());
        for (const auto& s : segments_) info.bytes += s->visible_size();
    }
    std::lock_guard<std::mutex> lock(mu_);
    info.end_offset = Offset(next_offset_);
    info.visible_offset = visible_end();
    info.durable_offset = Offset(durable_end_.load());
    if (!error_.ok()) info.error = error_.message();
    return info;
}

}  // namespace eventloom
