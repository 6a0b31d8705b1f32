// One segment file of a partition, with its sparse offset index.
//
// A segment is written by one thread at a time (the partition's current flusher) and read by
// any number of readers. The writer appends frames at written_size() and then publishes
// visible_size(); readers never look past visible_size().
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/file.h"
#include "eventloom/status.h"
#include "eventloom/types.h"
#include "log/format.h"

namespace eventloom {

struct IndexEntry {
    uint32_t relative_offset;
    uint32_t position;
};

// What a scan of a segment's records found.
struct ScanResult {
    uint64_t end_position = 0;  // byte just past the last good record
    int64_t next_offset = 0;    // offset the next record would have
    std::vector<IndexEntry> index;
    log_format::FrameCheck stop = log_format::FrameCheck::kEnd;  // why the scan stopped
    std::string stop_detail;                                     // e.g. "offset 17, expected 12"
};

// Scans frames from `position` (where offset `offset` is expected) to the first bad or missing
// frame. Builds a sparse index entry every `index_interval` bytes.
Result<ScanResult> ScanFrames(const File& file, uint64_t position, int64_t offset,
                              int64_t base_offset, uint64_t max_body, uint32_t index_interval);

// Looks for any intact frame with an offset >= `min_offset` starting in [from, to). Returns the
// byte position of the first one, or -1.
Result<int64_t> FindIntactFrame(const File& file, uint64_t from, uint64_t to, int64_t min_offset,
                                uint64_t max_body);

// Writes a zero-filled, synced file of `size` bytes at `path`: a segment-to-be.
Status PrepareSegmentFile(FileSystem* fs, const std::string& path, uint64_t size);

class Segment {
public:
    Segment(std::unique_ptr<File> file, Offset base);
    Segment(const Segment&) = delete;
    Segment& operator=(const Segment&) = delete;

    // A new, empty active segment: header written, `preallocate` bytes reserved and zeroed.
    // When `prepared` names an existing file made by PrepareSegmentFile, it is renamed into
    // place instead, so the roll does not pay for zero-filling.
    static Result<std::shared_ptr<Segment>> Create(FileSystem* fs, const std::string& dir,
                                                   Offset base, uint64_t preallocate,
                                                   const std::string& prepared = "");

    // A sealed segment: its size is the file's size; its index comes from the index file, or
    // from a scan when that file is missing or damaged.
    static Result<std::shared_ptr<Segment>> OpenSealed(FileSystem* fs, const std::string& dir,
                                                       Offset base, uint64_t max_body,
                                                       uint32_t index_interval);

    Offset base() const { return base_; }
    const std::string& path() const { return file_->path(); }
    File* file() const { return file_.get(); }

    // Writer side.
    Status Write(std::string_view frames);
    void AddIndexEntries(const std::vector<IndexEntry>& entries);
    Status Sync() { return file_->Sync(); }
    // Cuts the file to its written size and writes its index file. Syncs both.
    Status Seal(FileSystem* fs, const std::string& dir);
    // Used by recovery: the segment continues after `size` bytes.
    void ResetWritten(uint64_t size, std::vector<IndexEntry> index);
    // Read-only followers: records found past the end, and the writer's roll.
    void Extend(uint64_t size, const std::vector<IndexEntry>& index);
    void MarkSealed() { sealed_.store(true, std::memory_order_release); }
    uint64_t written_size() const { return written_size_; }

    uint64_t visible_size() const { return visible_size_.load(std::memory_order_acquire); }
    void set_visible_size(uint64_t size) { visible_size_.store(size, std::memory_order_release); }
    bool sealed() const { return sealed_.load(std::memory_order_acquire); }

    // The byte position of the last index entry at or below `target`, and its offset.
    uint64_t Lookup(Offset target, Offset* entry_offset) const;

private:
    std::unique_ptr<File> file_;
    Offset base_;
    uint64_t written_size_ = log_format::kSegmentHeaderBytes;  // writer thread only
    std::atomic<uint64_t> visible_size_{log_format::kSegmentHeaderBytes};
    std::atomic<bool> sealed_{false};

    mutable std::mutex index_mu_;
    std::vector<IndexEntry> index_;  // guarded by index_mu_
};

}  // namespace eventloom
