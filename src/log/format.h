// The on-disk layout of segments and their index files (docs/log-format.md). Little-endian.
//
// Segment file "<base offset, 20 digits>.log":
//   header   16 bytes: magic "ELOGSEG1" (8), base offset (u64)
//   records  frame*, then zeros up to the preallocated size (the active segment only)
// Frame:
//   u32 body_length   bytes after the CRC: 16 + payload length
//   u32 crc32c        of the body
//   body:  u64 offset, i64 timestamp_ms, payload
// Index file "<base>.index", written when a segment is sealed:
//   magic "ELOGIDX1" (8), u32 entry count, u32 crc32c of the entries,
//   entries: u32 offset relative to base, u32 byte position in the segment
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "common/crc32c.h"

namespace eventloom::log_format {

inline constexpr char kSegmentMagic[8] = {'E', 'L', 'O', 'G', 'S', 'E', 'G', '1'};
inline constexpr char kIndexMagic[8] = {'E', 'L', 'O', 'G', 'I', 'D', 'X', '1'};
inline constexpr uint64_t kSegmentHeaderBytes = 16;
inline constexpr uint64_t kFrameHeaderBytes = 8;  // length + crc
inline constexpr uint64_t kBodyHeaderBytes = 16;  // offset + timestamp
inline constexpr uint64_t kRecordOverhead = kFrameHeaderBytes + kBodyHeaderBytes;
inline constexpr uint64_t kIndexHeaderBytes = 16;
inline constexpr uint64_t kIndexEntryBytes = 8;

// Every partition syncs at least once per this many written bytes, whatever its policy, so a
// crash can tear at most this much of a partition's tail. Recovery relies on it: a valid record
// found further than this past a damaged one proves the damage is not a torn tail.
inline constexpr uint64_t kMaxUnsyncedBytes = 8ull << 20;

inline void PutU32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void PutU64(char* p, uint64_t v) { std::memcpy(p, &v, 8); }
inline uint32_t GetU32(const char* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
inline uint64_t GetU64(const char* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

// Appends one framed record to `out`.
inline void AppendFrame(std::string* out, int64_t offset, int64_t timestamp_ms,
                        std::string_view payload) {
    size_t at = out->size();
    out->resize(at + kRecordOverhead + payload.size());
    char* p = out->data() + at;
    PutU32(p, static_cast<uint32_t>(kBodyHeaderBytes + payload.size()));
    PutU64(p + 8, static_cast<uint64_t>(offset));
    PutU64(p + 16, static_cast<uint64_t>(timestamp_ms));
    std::memcpy(p + kRecordOverhead, payload.data(), payload.size());
    PutU32(p + 4, crc32c::Value(p + 8, kBodyHeaderBytes + payload.size()));
}

enum class FrameCheck {
    kOk,
    kIncomplete,  // the buffer ends inside the frame
    kEnd,         // a zero length: the preallocated, never written tail
    kBadLength,
    kBadChecksum,
};

struct ParsedFrame {
    int64_t offset;
    int64_t timestamp_ms;
    std::string_view payload;
    uint64_t frame_bytes;
};

// Parses the frame at the start of `buf`. `max_body` bounds a plausible body length.
inline FrameCheck ParseFrame(std::string_view buf, uint64_t max_body, ParsedFrame* frame) {
    if (buf.size() < kFrameHeaderBytes) return FrameCheck::kIncomplete;
    uint32_t body = GetU32(buf.data());
    if (body == 0) return FrameCheck::kEnd;
    if (body < kBodyHeaderBytes || body > max_body) return FrameCheck::kBadLength;
    if (buf.size() < kFrameHeaderBytes + body) return FrameCheck::kIncomplete;
    const char* b = buf.data() + kFrameHeaderBytes;
    if (crc32c::Value(b, body) != GetU32(buf.data() + 4)) return FrameCheck::kBadChecksum;
    frame->offset = static_cast<int64_t>(GetU64(b));
    frame->timestamp_ms = static_cast<int64_t>(GetU64(b + 8));
    frame->payload = std::string_view(b + kBodyHeaderBytes, body - kBodyHeaderBytes);
    frame->frame_bytes = kFrameHeaderBytes + body;
    return FrameCheck::kOk;
}

inline std::string_view FrameCheckName(FrameCheck c) {
    switch (c) {
        case FrameCheck::kOk:
            return "ok";
        case FrameCheck::kIncomplete:
            return "truncated record";
        case FrameCheck::kEnd:
            return "end of data";
        case FrameCheck::kBadLength:
            return "implausible record length";
        case FrameCheck::kBadChecksum:
            return "checksum mismatch";
    }
    return "unknown";
}

// "00000000000000001042.log"
std::string SegmentFileName(int64_t base_offset);
std::string IndexFileName(int64_t base_offset);
// Parses a segment file name; false if `name` is not one.
bool ParseSegmentFileName(std::string_view name, int64_t* base_offset);

}  // namespace eventloom::log_format
