#include "log/segment.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace eventloom {
namespace lf = log_format;

namespace log_format {

std::string SegmentFileName(int64_t base_offset) {
    char name[32];
    std::snprintf(name, sizeof(name), "%020" PRId64 ".log", base_offset);
    return name;
}

std::string IndexFileName(int64_t base_offset) {
    char name[32];
    std::snprintf(name, sizeof(name), "%020" PRId64 ".index", base_offset);
    return name;
}

bool ParseSegmentFileName(std::string_view name, int64_t* base_offset) {
    if (name.size() != 24 || name.substr(20) != ".log") return false;
    int64_t v = 0;
    for (size_t i = 0; i < 20; ++i) {
        char c = name[i];
        if (c < '0' || c > '9') return false;
        if (v > (INT64_MAX - (c - '0')) / 10) return false;
        v = v * 10 + (c - '0');
    }
    *base_offset = v;
    return true;
}

}  // namespace log_format

namespace {

constexpr size_t kScanChunk = 1 << 20;

std::string IndexPath(const std::string& dir, Offset base) {
    return dir + "/" + lf::IndexFileName(base.value());
}

std::string EncodeIndex(const std::vector<IndexEntry>& index) {
    std::string out(lf::kIndexHeaderBytes + index.size() * lf::kIndexEntryBytes, '\0');
    std::memcpy(out.data(), lf::kIndexMagic, 8);
    lf::PutU32(out.data() + 8, static_cast<uint32_t>(index.size()));
    char* p = out.data() + lf::kIndexHeaderBytes;
    for (const IndexEntry& e : index) {
        lf::PutU32(p, e.relative_offset);
        lf::PutU32(p + 4, e.position);
        p += lf::kIndexEntryBytes;
    }
    lf::PutU32(out.data() + 12, crc32c::Value(out.data() + lf::kIndexHeaderBytes,
                                              out.size() - lf::kIndexHeaderBytes));
    return out;
}

// Decodes an index file; false if it is damaged or does not fit the segment.
bool DecodeIndex(std::string_view data, uint64_t segment_size, std::vector<IndexEntry>* index) {
    if (data.size() < lf::kIndexHeaderBytes || std::memcmp(data.data(), lf::kIndexMagic, 8) != 0) {
        return false;
    }
    uint32_t count = lf::GetU32(data.data() + 8);
    if (data.size() != lf::kIndexHeaderBytes + uint64_t{count} * lf::kIndexEntryBytes) {
        return false;
    }
    std::string_view entries = data.substr(lf::kIndexHeaderBytes);
    if (crc32c::Value(entries.data(), entries.size()) != lf::GetU32(data.data() + 12)) {
        return false;
    }
    index->clear();
    index->reserve(count);
    for (uint32_t i = 0; i < count; ++i) {
        IndexEntry e{lf::GetU32(entries.data() + i * 8), lf::GetU32(entries.data() + i * 8 + 4)};
        bool ordered = index->empty() || (e.relative_offset > index->back().relative_offset &&
                                          e.position > index->back().position);
        if (!ordered || e.position >= segment_size) return false;
        index->push_back(e);
    }
    return true;
}

Status CheckHeader(const File& file, Offset base) {
    char header[lf::kSegmentHeaderBytes];
    EVENTLOOM_ASSIGN_OR_RETURN(size_t n, file.ReadAt(0, header, sizeof(header)));
    if (n < sizeof(header) || std::memcmp(header, lf::kSegmentMagic, 8) != 0) {
        return DataLossError(file.path() + " byte 0: not a segment file (bad header)");
    }
    if (static_cast<int64_t>(lf::GetU64(header + 8)) != base.value()) {
        return DataLossError(file.path() + " byte 8: header names base offset " +
                             std::to_string(lf::GetU64(header + 8)) + ", file name says " +
                             std::to_string(base.value()));
    }
    return Status::Ok();
}

}  // namespace

Result<ScanResult> ScanFrames(const File& file, uint64_t position, int64_t offset,
                              int64_t base_offset, uint64_t max_body, uint32_t index_interval) {
    ScanResult result;
    result.end_position = position;
    result.next_offset = offset;
    uint64_t last_index_position = 0;
    std::string buf;
    uint64_t buf_start = position;  // file position of buf[0]
    size_t cursor = 0;

    for (;;) {
        lf::ParsedFrame frame;
        std::string_view view(buf.data() + cursor, buf.size() - cursor);
        lf::FrameCheck check = lf::ParseFrame(view, max_body, &frame);
        if (check == lf::FrameCheck::kIncomplete) {
            // Refill: keep the unparsed tail, read the next chunk behind it.
            buf.erase(0, cursor);
            buf_start += cursor;
            cursor = 0;
            size_t have = buf.size();
            size_t want = std::max<size_t>(kScanChunk, max_body + lf::kFrameHeaderBytes);
            buf.resize(have + want);
            EVENTLOOM_ASSIGN_OR_RETURN(size_t n,
                                       file.ReadAt(buf_start + have, buf.data() + have, want));
            buf.resize(have + n);
            if (n == 0) {
                result.stop = have == 0 ? lf::FrameCheck::kEnd : lf::FrameCheck::kIncomplete;
                return result;
            }
            continue;
        }
        if (check != lf::FrameCheck::kOk) {
            result.stop = check;
            return result;
        }
        if (frame.offset != result.next_offset) {
            result.stop = lf::FrameCheck::kBadChecksum;
            result.stop_detail = "record carries offset " + std::to_string(frame.offset) +
                                 ", expected " + std::to_string(result.next_offset);
            return result;
        }
        uint64_t frame_position = buf_start + cursor;
        if (result.index.empty() || frame_position - last_index_position >= index_interval) {
            result.index.push_back({static_cast<uint32_t>(frame.offset - base_offset),
                                    static_cast<uint32_t>(frame_position)});
            last_index_position = frame_position;
        }
        cursor += frame.frame_bytes;
        result.end_position = buf_start + cursor;
        ++result.next_offset;
    }
}

Result<int64_t> FindIntactFrame(const File& file, uint64_t from, uint64_t to, int64_t min_offset,
                                uint64_t max_body) {
    std::string buf;
    uint64_t pos = from;
    while (pos < to) {
        size_t want = kScanChunk + max_body + lf::kFrameHeaderBytes;
        buf.resize(want);
        EVENTLOOM_ASSIGN_OR_RETURN(size_t n, file.ReadAt(pos, buf.data(), want));
        if (n < lf::kRecordOverhead) return -1;
        size_t scan_to = std::min<uint64_t>(n - lf::kRecordOverhead + 1, to - pos);
        scan_to = std::min<size_t>(scan_to, kScanChunk);
        for (size_t i = 0; i < scan_to; ++i) {
            const char* p = buf.data() + i;
            uint32_t body = lf::GetU32(p);
            if (body < lf::kBodyHeaderBytes || body > max_body) continue;
            if (static_cast<int64_t>(lf::GetU64(p + 8)) < min_offset) continue;
            lf::ParsedFrame frame;
            if (lf::ParseFrame(std::string_view(p, n - i), max_body, &frame) ==
                lf::FrameCheck::kOk) {
                return static_cast<int64_t>(pos + i);
            }
        }
        pos += scan_to;
    }
    return -1;
}

Segment::Segment(std::unique_ptr<File> file, Offset base) : file_(std::move(file)), base_(base) {}

Status PrepareSegmentFile(FileSystem* fs, const std::string& path, uint64_t size) {
    EVENTLOOM_ASSIGN_OR_RETURN(auto file, fs->Open(path, OpenMode::kReadWrite));
    EVENTLOOM_RETURN_IF_ERROR(file->Truncate(0));
    EVENTLOOM_RETURN_IF_ERROR(file->Preallocate(0, size));
    return file->Sync();
}

Result<std::shared_ptr<Segment>> Segment::Create(FileSystem* fs, const std::string& dir,
                                                 Offset base, uint64_t preallocate,
                                                 const std::string& prepared) {
    std::string path = dir + "/" + lf::SegmentFileName(base.value());
    if (!prepared.empty() && fs->Exists(prepared)) {
        EVENTLOOM_RETURN_IF_ERROR(fs->Rename(prepared, path));
    } else {
        EVENTLOOM_RETURN_IF_ERROR(PrepareSegmentFile(fs, path, preallocate));
    }
    EVENTLOOM_ASSIGN_OR_RETURN(auto file, fs->Open(path, OpenMode::kReadWrite));
    char header[lf::kSegmentHeaderBytes];
    std::memcpy(header, lf::kSegmentMagic, 8);
    lf::PutU64(header + 8, static_cast<uint64_t>(base.value()));
    EVENTLOOM_RETURN_IF_ERROR(file->WriteAt(0, std::string_view(header, sizeof(header))));
    EVENTLOOM_RETURN_IF_ERROR(file->Sync());
    EVENTLOOM_RETURN_IF_ERROR(fs->SyncDir(dir));
    return std::make_shared<Segment>(std::move(file), base);
}

Result<std::shared_ptr<Segment>> Segment::OpenSealed(FileSystem* fs, const std::string& dir,
                                                     Offset base, uint64_t max_body,
                                                     uint32_t index_interval) {
    std::string path = dir + "/" + lf::SegmentFileName(base.value());
    EVENTLOOM_ASSIGN_OR_RETURN(auto file, fs->Open(path, OpenMode::kRead));
    EVENTLOOM_RETURN_IF_ERROR(CheckHeader(*file, base));
    EVENTLOOM_ASSIGN_OR_RETURN(uint64_t size, file->Size());

    std::vector<IndexEntry> index;
    auto index_data = fs->ReadFile(IndexPath(dir, base));
    if (!index_data.ok() || !DecodeIndex(*index_data, size, &index)) {
        EVENTLOOM_ASSIGN_OR_RETURN(
            ScanResult scan, ScanFrames(*file, lf::kSegmentHeaderBytes, base.value(), base.value(),
                                        max_body, index_interval));
        index = std::move(scan.index);
    }
    auto segment = std::make_shared<Segment>(std::move(file), base);
    segment->ResetWritten(size, std::move(index));
    segment->sealed_.store(true, std::memory_order_release);
    return segment;
}

Status Segment::Write(std::string_view frames) {
    EVENTLOOM_RETURN_IF_ERROR(file_->WriteAt(written_size_, frames));
    written_size_ += frames.size();
    return Status::Ok();
}

void Segment::AddIndexEntries(const std::vector<IndexEntry>& entries) {
    if (entries.empty()) return;
    std::lock_guard<std::mutex> lock(index_mu_);
    index_.insert(index_.end(), entries.begin(), entries.end());
}

Status Segment::Seal(FileSystem* fs, const std::string& dir) {
    EVENTLOOM_RETURN_IF_ERROR(file_->Truncate(written_size_));
    EVENTLOOM_RETURN_IF_ERROR(file_->Sync());
    std::string encoded;
    {
        std::lock_guard<std::mutex> lock(index_mu_);
        encoded = EncodeIndex(index_);
    }
    EVENTLOOM_RETURN_IF_ERROR(fs->WriteFileAtomic(IndexPath(dir, base_), encoded));
    sealed_.store(true, std::memory_order_release);
    return Status::Ok();
}

void Segment::ResetWritten(uint64_t size, std::vector<IndexEntry> index) {
    written_size_ = size;
    set_visible_size(size);
    std::lock_guard<std::mutex> lock(index_mu_);
    index_ = std::move(index);
}

void Segment::Extend(uint64_t size, const std::vector<IndexEntry>& index) {
    written_size_ = size;
    AddIndexEntries(index);
    set_visible_size(size);
}

uint64_t Segment::Lookup(Offset target, Offset* entry_offset) const {
    std::lock_guard<std::mutex> lock(index_mu_);
    auto relative = static_cast<uint32_t>(target - base_);
    auto it =
        std::upper_bound(index_.begin(), index_.end(), relative,
                         [](uint32_t r, const IndexEntry& e) { return r < e.relative_offset; });
    if (it == index_.begin()) {
        *entry_offset = base_;
        return lf::kSegmentHeaderBytes;
    }
    --it;
    *entry_offset = base_ + it->relative_offset;
    return it->position;
}

}  // namespace eventloom
