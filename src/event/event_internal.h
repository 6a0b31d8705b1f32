// Internal to the event component: the table of known attributes shared by validation, the JSON
// format and the binary encoding, and small text helpers. Not part of the public API.
//
// The binary tags below are part of the on-disk format (docs/event-format.md): never renumber
// them; a new attribute takes a new tag.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "eventloom/event.h"

namespace eventloom::event_internal {

// An attribute whose value is a string, with its binary tag.
struct StringAttribute {
    std::string_view name;
    uint8_t tag;
    std::string Event::*member;
};

// Tags of the attributes that are not plain strings. All tags are below 64, so a uint64_t can
// track which ones a decoder has seen.
inline constexpr uint8_t kPriorityTag = 0x15;
inline constexpr uint8_t kExtensionTag = 0x3E;
inline constexpr uint8_t kDataTag = 0x3F;

// In tag order, which is also the order the encoders write them in.
inline constexpr std::array<StringAttribute, 14> kStringAttributes = {{
    {"id", 0x01, &Event::id},
    {"source", 0x02, &Event::source},
    {"type", 0x03, &Event::type},
    {"specversion", 0x04, &Event::specversion},
    {"time", 0x05, &Event::time},
    {"subject", 0x06, &Event::subject},
    {"datacontenttype", 0x07, &Event::datacontenttype},
    {"dataschema", 0x08, &Event::dataschema},
    {"traceparent", 0x10, &Event::traceparent},
    {"tracestate", 0x11, &Event::tracestate},
    {"correlationid", 0x12, &Event::correlationid},
    {"causationid", 0x13, &Event::causationid},
    {"partitionkey", 0x14, &Event::partitionkey},
    {"deadline", 0x16, &Event::deadline},
}};

inline constexpr std::string_view kSpecVersion = "1.0";

// The known string attribute called `name`, or nullptr.
inline const StringAttribute* FindStringAttribute(std::string_view name) {
    for (const StringAttribute& attribute : kStringAttributes) {
        if (attribute.name == name) return &attribute;
    }
    return nullptr;
}

// True for names an extension may not take: every known attribute, `data` and `data_base64`.
inline bool IsReservedAttributeName(std::string_view name) {
    return FindStringAttribute(name) != nullptr || name == "priority" || name == "data" ||
           name == "data_base64";
}

// True when `text` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF). Otherwise false, with the offset of the first bad byte in `*bad_offset`.
bool IsValidUtf8(std::string_view text, size_t* bad_offset = nullptr);

// `text` made safe to put in an error message: control, quote, backslash and non-ASCII bytes are
// escaped, and anything past `max_bytes` is cut and marked with "...".
std::string Printable(std::string_view text, size_t max_bytes = 64);

// Printable(text) in double quotes.
std::string Quote(std::string_view text);

// InvalidArgument "attribute 'name': detail".
Status AttributeError(std::string_view name, std::string_view detail);

}  // namespace eventloom::event_internal
