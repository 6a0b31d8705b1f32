// The compact binary record (layout in docs/event-format.md):
//   version byte 0x01, then fields: tag byte, LEB128 length, bytes. priority is tag + one byte;
//   an extension is tag, length + name, length + value; data, when present, is the last field.

#include <algorithm>
#include <array>
#include <cassert>
#include <cstdint>
#include <cstring>

#include "event/event_internal.h"
#include "eventloom/event.h"

namespace eventloom {
namespace {

using event_internal::AttributeError;
using event_internal::kDataTag;
using event_internal::kExtensionTag;
using event_internal::kPriorityTag;
using event_internal::kStringAttributes;
using event_internal::StringAttribute;

constexpr uint8_t kEncodingVersion = 0x01;
constexpr size_t kMaxVarintBytes = 10;  // a uint64_t in 7-bit groups

// Written for a priority that does not fit a byte, so that it decodes as invalid rather than
// wrapping around to a valid one.
constexpr uint8_t kInvalidPriority = 0xFF;

// The index in kStringAttributes of each tag below 64, or -1.
constexpr std::array<int8_t, 64> MakeTagIndex() {
    std::array<int8_t, 64> index{};
    for (auto& entry : index) entry = -1;
    for (size_t i = 0; i < kStringAttributes.size(); ++i) {
        index[kStringAttributes[i].tag] = static_cast<int8_t>(i);
    }
    return index;
}

constexpr std::array<int8_t, 64> kTagIndex = MakeTagIndex();

const StringAttribute* FindByTag(uint8_t tag) {
    if (tag >= kTagIndex.size() || kTagIndex[tag] < 0) return nullptr;
    return &kStringAttributes[static_cast<size_t>(kTagIndex[tag])];
}

// specversion "1.0" is left out and restored by the decoder; other empty attributes are absent.
bool IsWritten(const StringAttribute& attribute, const std::string& value) {
    if (attribute.member == &Event::specversion) return value != event_internal::kSpecVersion;
    return !value.empty();
}

// Counts the bytes an event takes, so the writer can reserve once.
class SizeSink {
public:
    void Byte(uint8_t) { ++size_; }
    void Varint(uint64_t value) {
        do {
            ++size_;
            value >>= 7;
        } while (value != 0);
    }
    void Bytes(std::string_view bytes) { size_ += bytes.size(); }
    size_t size() const { return size_; }

private:
    size_t size_ = 0;
};

// Writes into memory the caller has sized from a SizeSink.
class BufferSink {
public:
    explicit BufferSink(char* out) : out_(out) {}
    void Byte(uint8_t byte) { *out_++ = static_cast<char>(byte); }
    void Varint(uint64_t value) {
        while (value >= 0x80) {
            *out_++ = static_cast<char>((value & 0x7F) | 0x80);
            value >>= 7;
        }
        *out_++ = static_cast<char>(value);
    }
    void Bytes(std::string_view bytes) {
        if (bytes.empty()) return;  // memcpy from a null data() is undefined
        std::memcpy(out_, bytes.data(), bytes.size());
        out_ += bytes.size();
    }
    const char* position() const { return out_; }

private:
    char* out_;  // not owned
};

template <typename Sink>
void LengthPrefixed(std::string_view bytes, Sink* sink) {
    sink->Varint(bytes.size());
    sink->Bytes(bytes);
}

template <typename Sink>
void WriteEvent(const Event& event, Sink* sink) {
    sink->Byte(kEncodingVersion);
    for (const StringAttribute& attribute : kStringAttributes) {
        const std::string& value = event.*attribute.member;
        if (!IsWritten(attribute, value)) continue;
        sink->Byte(attribute.tag);
        LengthPrefixed(value, sink);
    }
    if (event.priority.has_value()) {
        const int priority = *event.priority;
        sink->Byte(kPriorityTag);
        sink->Byte(priority >= 0 && priority < kInvalidPriority ? static_cast<uint8_t>(priority)
                                                                : kInvalidPriority);
    }
    for (const auto& [name, value] : event.extensions) {
        sink->Byte(kExtensionTag);
        LengthPrefixed(name, sink);
        LengthPrefixed(value, sink);
    }
    if (event.has_data) {
        sink->Byte(kDataTag);
        LengthPrefixed(event.data, sink);
    }
}

// Reads fields without ever looking past the end of its input. A failed read leaves the reason
// for Failure().
class Reader {
public:
    Reader(std::string_view bytes, size_t position) : bytes_(bytes), position_(position) {}

    bool AtEnd() const { return position_ == bytes_.size(); }
    size_t position() const { return position_; }

    bool ReadByte(uint8_t* out) {
        if (AtEnd()) return Fail(false);
        *out = static_cast<uint8_t>(bytes_[position_++]);
        return true;
    }

    // A LEB128 length, then that many bytes, viewed in place.
    bool ReadLengthPrefixed(std::string_view* out) {
        uint64_t length = 0;
        if (!ReadVarint(&length)) return false;
        if (length > bytes_.size() - position_) return Fail(false);
        *out = bytes_.substr(position_, static_cast<size_t>(length));
        position_ += static_cast<size_t>(length);
        return true;
    }

    // Why the last read of the field starting at `field_start` failed.
    std::string Failure(size_t field_start) const {
        return (bad_varint_ ? "invalid length at byte " : "truncated at byte ") +
               std::to_string(field_start);
    }

private:
    bool ReadVarint(uint64_t* out) {
        uint64_t value = 0;
        for (size_t i = 0; i < kMaxVarintBytes; ++i) {
            uint8_t byte = 0;
            if (!ReadByte(&byte)) return false;
            // The tenth byte holds bit 63 only.
            if (i == kMaxVarintBytes - 1 && byte > 1) return Fail(true);
            value |= uint64_t{byte & 0x7Fu} << (7 * i);
            if ((byte & 0x80) == 0) {
                *out = value;
                return true;
            }
        }
        return Fail(true);
    }

    bool Fail(bool bad_varint) {
        bad_varint_ = bad_varint;
        return false;
    }

    std::string_view bytes_;
    size_t position_;
    bool bad_varint_ = false;
};

std::string Hex(uint8_t byte) {
    static constexpr char kHex[] = "0123456789abcdef";
    return {'0', 'x', kHex[byte >> 4], kHex[byte & 0x0F]};
}

Status DecodeExtension(size_t field_start, Reader* reader, Event* event) {
    std::string_view name;
    if (!reader->ReadLengthPrefixed(&name)) {
        return InvalidArgumentError("extension name: " + reader->Failure(field_start));
    }
    std::string_view value;
    if (!reader->ReadLengthPrefixed(&value))
        return AttributeError(name, reader->Failure(field_start));
    event->extensions.emplace_back(name, value);
    return Status::Ok();
}

// One field, its tag already read. `seen` has bit `tag` set for each attribute read so far.
Status DecodeField(uint8_t tag, size_t field_start, Reader* reader, uint64_t* seen, Event* event) {
    if (tag == kExtensionTag) return DecodeExtension(field_start, reader, event);

    const StringAttribute* attribute = FindByTag(tag);
    const std::string_view name = attribute != nullptr  ? attribute->name
                                  : tag == kPriorityTag ? "priority"
                                  : tag == kDataTag     ? "data"
                                                        : "";
    if (name.empty()) {
        return InvalidArgumentError("event encoding: unknown tag " + Hex(tag) + " at byte " +
                                    std::to_string(field_start));
    }
    const uint64_t bit = uint64_t{1} << tag;
    if ((*seen & bit) != 0) {
        return AttributeError(name, "duplicate at byte " + std::to_string(field_start));
    }
    *seen |= bit;

    if (tag == kPriorityTag) {
        uint8_t priority = 0;
        if (!reader->ReadByte(&priority)) return AttributeError(name, reader->Failure(field_start));
        event->priority = priority;
        return Status::Ok();
    }
    std::string_view value;
    if (!reader->ReadLengthPrefixed(&value))
        return AttributeError(name, reader->Failure(field_start));
    if (tag == kDataTag) {
        event->data.assign(value);
        event->has_data = true;
    } else {
        (event->*attribute->member).assign(value);
    }
    return Status::Ok();
}

}  // namespace

void AppendEncodedEvent(const Event& event, std::string* out) {
    SizeSink size;
    WriteEvent(event, &size);

    // Grow geometrically: callers append many events to one buffer.
    const size_t start = out->size();
    const size_t needed = start + size.size();
    if (needed > out->capacity()) out->reserve(std::max(needed, 2 * out->capacity()));
    out->resize(needed);

    BufferSink sink(out->data() + start);
    WriteEvent(event, &sink);
    assert(sink.position() == out->data() + needed);
}

std::string EncodeEvent(const Event& event) {
    std::string out;
    AppendEncodedEvent(event, &out);
    return out;
}

Result<Event> DecodeEvent(std::string_view bytes, const EventLimits& limits) {
    if (bytes.empty()) return InvalidArgumentError("event encoding: empty input");
    const auto version = static_cast<uint8_t>(bytes[0]);
    if (version != kEncodingVersion) {
        return InvalidArgumentError("unsupported event encoding version " +
                                    std::to_string(version));
    }

    Event event;
    Reader reader(bytes, 1);
    uint64_t seen = 0;
    while (!reader.AtEnd()) {
        const size_t field_start = reader.position();
        if (event.has_data) {
            return InvalidArgumentError("event encoding: unexpected field after data at byte " +
                                        std::to_string(field_start));
        }
        uint8_t tag = 0;
        (void)reader.ReadByte(&tag);  // cannot fail: not at the end
        EVENTLOOM_RETURN_IF_ERROR(DecodeField(tag, field_start, &reader, &seen, &event));
    }

    EVENTLOOM_RETURN_IF_ERROR(ValidateEvent(event, limits));
    return event;
}

}  // namespace eventloom
