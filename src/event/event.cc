// Validation of the event envelope, and the defaults a producer may leave out.

#include "eventloom/event.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "common/uuid.h"
#include "event/event_internal.h"

namespace eventloom {
namespace event_internal {

bool IsValidUtf8(std::string_view text, size_t* bad_offset) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const size_t n = text.size();
    size_t i = 0;
    while (i < n) {
        const unsigned char c = p[i];
        if (c < 0x80) {
            ++i;
            continue;
        }

        // The lead byte fixes the length and the range of the first continuation byte, which
        // is what rules out overlong forms, surrogates and code points above U+10FFFF.
        size_t length = 0;
        unsigned char low = 0x80;
        unsigned char high = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            length = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            length = 3;
            if (c == 0xE0) low = 0xA0;
            if (c == 0xED) high = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            length = 4;
            if (c == 0xF0) low = 0x90;
            if (c == 0xF4) high = 0x8F;
        }
        bool ok = length != 0 && n - i >= length && p[i + 1] >= low && p[i + 1] <= high;
        for (size_t k = 2; ok && k < length; ++k) ok = p[i + k] >= 0x80 && p[i + k] <= 0xBF;
        if (!ok) {
            if (bad_offset != nullptr) *bad_offset = i;
            return false;
        }
        i += length;
    }
    return true;
}

std::string Printable(std::string_view text, size_t max_bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(std::min(text.size(), max_bytes) + 8);
    for (size_t i = 0; i < text.size() && i < max_bytes; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(static_cast<char>(c));
        } else if (c < 0x20 || c >= 0x7F) {
            out += "\\x";
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 0x0F]);
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
    if (text.size() > max_bytes) out += "...";
    return out;
}

std::string Quote(std::string_view text) { return "\"" + Printable(text) + "\""; }

Status AttributeError(std::string_view name, std::string_view detail) {
    std::string message = "attribute '";
    message += Printable(name);
    message += "': ";
    message += detail;
    return InvalidArgumentError(std::move(message));
}

}  // namespace event_internal

namespace {

using event_internal::AttributeError;
using event_internal::kStringAttributes;
using event_internal::Quote;
using event_internal::StringAttribute;

constexpr size_t kTraceparentSize = 55;
constexpr size_t kMaxTracestateSize = 512;
constexpr size_t kMaxExtensionNameSize = 20;
constexpr int kMinPriority = 0;
constexpr int kMaxPriority = 9;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLowerHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f'); }

// The value of the `count` decimal digits at `text[pos]`, or -1.
int Digits(std::string_view text, size_t pos, size_t count) {
    if (pos + count > text.size()) return -1;
    int value = 0;
    for (size_t i = pos; i < pos + count; ++i) {
        if (!IsDigit(text[i])) return -1;
        value = value * 10 + (text[i] - '0');
    }
    return value;
}

int DaysInMonth(int year, int month) {
    static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : kDays[month - 1];
}

// Why `text` is not an RFC 3339 date-time (section 5.6), or nullptr when it is one:
// YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm). As RFC 3339 allows, 't' and 'z' may be
// lowercase. Seconds may be 60 (a leap second).
const char* Rfc3339Problem(std::string_view text) {
    static constexpr const char* kSyntax =
        "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm)";
    if (text.size() < 20 || text[4] != '-' || text[7] != '-' ||
        (text[10] != 'T' && text[10] != 't') || text[13] != ':' || text[16] != ':') {
        return kSyntax;
    }
    const int year = Digits(text, 0, 4);
    const int month = Digits(text, 5, 2);
    const int day = Digits(text, 8, 2);
    const int hour = Digits(text, 11, 2);
    const int minute = Digits(text, 14, 2);
    const int second = Digits(text, 17, 2);
    if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return kSyntax;

    // An optional fraction, then the offset.
    size_t pos = 19;
    if (text[pos] == '.') {
        const size_t start = ++pos;
        while (pos < text.size() && IsDigit(text[pos])) ++pos;
        if (pos == start) return kSyntax;
    }
    const std::string_view offset = text.substr(pos);
    int offset_hour = 0;
    int offset_minute = 0;
    if (offset != "Z" && offset != "z") {
        if (offset.size() != 6 || (offset[0] != '+' && offset[0] != '-') || offset[3] != ':') {
            return kSyntax;
        }
        offset_hour = Digits(offset, 1, 2);
        offset_minute = Digits(offset, 4, 2);
        if (offset_hour < 0 || offset_minute < 0) return kSyntax;
    }

    if (month < 1 || month > 12) return "month out of range";
    if (day < 1 || day > DaysInMonth(year, month)) return "day out of range";
    if (hour > 23) return "hour out of range";
    if (minute > 59) return "minute out of range";
    if (second > 60) return "second out of range";
    if (offset_hour > 23 || offset_minute > 59) return "offset out of range";
    return nullptr;
}

Status CheckTimestamp(std::string_view name, std::string_view value) {
    if (value.empty()) return Status::Ok();
    const char* problem = Rfc3339Problem(value);
    if (problem == nullptr) return Status::Ok();
    return AttributeError(
        name, std::string("must be an RFC 3339 timestamp (") + problem + "), got " + Quote(value));
}

// W3C trace context, version 00: 00-<trace-id>-<parent-id>-<flags>, all lowercase hex.
Status CheckTraceparent(std::string_view value) {
    if (value.empty()) return Status::Ok();
    auto error = [&](std::string_view detail) {
        return AttributeError("traceparent", std::string(detail) + ", got " + Quote(value));
    };
    auto all_hex = [&](size_t pos, size_t count) {
        return std::all_of(value.begin() + pos, value.begin() + pos + count, IsLowerHex);
    };
    auto all_zero = [&](size_t pos, size_t count) {
        return value.substr(pos, count).find_first_not_of('0') == std::string_view::npos;
    };

    if (value.size() != kTraceparentSize || value[2] != '-' || value[35] != '-' ||
        value[52] != '-') {
        return error("must be 00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>");
    }
    if (value.substr(0, 2) != "00") return error("version must be \"00\"");
    if (!all_hex(3, 32)) return error("trace-id must be 32 lowercase hex digits");
    if (all_zero(3, 32)) return error("trace-id must not be all zeros");
    if (!all_hex(36, 16)) return error("parent-id must be 16 lowercase hex digits");
    if (all_zero(36, 16)) return error("parent-id must not be all zeros");
    if (!all_hex(53, 2)) return error("flags must be 2 lowercase hex digits");
    return Status::Ok();
}

// The checks every attribute value gets: its size, and that it is text.
Status CheckValue(std::string_view name, std::string_view value, const EventLimits& limits) {
    if (value.size() > limits.max_attribute_bytes) {
        return AttributeError(name, "value is " + std::to_string(value.size()) +
                                        " bytes, limit is " +
                                        std::to_string(limits.max_attribute_bytes));
    }
    size_t bad_offset = 0;
    if (!event_internal::IsValidUtf8(value, &bad_offset)) {
        return AttributeError(
            name, "must be valid UTF-8 (bad byte at offset " + std::to_string(bad_offset) + ")");
    }
    return Status::Ok();
}

Status CheckExtensionName(std::string_view name) {
    const bool well_formed = !name.empty() && name.size() <= kMaxExtensionNameSize &&
                             std::all_of(name.begin(), name.end(), [](char c) {
                                 return IsDigit(c) || (c >= 'a' && c <= 'z');
                             });
    if (!well_formed)
        return AttributeError(name, "extension name must be 1-20 characters of [a-z0-9]");
    if (event_internal::IsReservedAttributeName(name)) {
        return AttributeError(name, "extension name collides with a known attribute");
    }
    return Status::Ok();
}

Status CheckExtensionsAreUnique(const Event& event) {
    const auto& extensions = event.extensions;

    // Few extensions is the common case: compare pairwise rather than allocate.
    if (extensions.size() <= 8) {
        for (size_t i = 0; i < extensions.size(); ++i) {
            for (size_t j = 0; j < i; ++j) {
                if (extensions[i].first == extensions[j].first) {
                    return AttributeError(extensions[i].first, "duplicate extension");
                }
            }
        }
        return Status::Ok();
    }
    std::vector<std::string_view> names;
    names.reserve(extensions.size());
    for (const auto& [name, value] : extensions) names.push_back(name);
    std::sort(names.begin(), names.end());
    const auto duplicate = std::adjacent_find(names.begin(), names.end());
    if (duplicate != names.end()) return AttributeError(*duplicate, "duplicate extension");
    return Status::Ok();
}

// What counts against max_event_bytes: every attribute value, extension names, one byte for a
// priority, and the data.
size_t EventSize(const Event& event) {
    size_t size = event.data.size() + (event.priority.has_value() ? 1 : 0);
    for (const StringAttribute& attribute : kStringAttributes) {
        size += (event.*attribute.member).size();
    }
    for (const auto& [name, value] : event.extensions) size += name.size() + value.size();
    return size;
}

Status CheckRequired(const Event& event) {
    for (std::string_view name : {"id", "source", "type", "specversion"}) {
        const StringAttribute* attribute = event_internal::FindStringAttribute(name);
        if ((event.*attribute->member).empty()) {
            return AttributeError(name, "is required and must not be empty");
        }
    }
    if (event.specversion != event_internal::kSpecVersion) {
        return AttributeError("specversion", "must be \"1.0\", got " + Quote(event.specversion));
    }
    return Status::Ok();
}

Status CheckKnownFormats(const Event& event) {
    EVENTLOOM_RETURN_IF_ERROR(CheckTimestamp("time", event.time));
    EVENTLOOM_RETURN_IF_ERROR(CheckTimestamp("deadline", event.deadline));
    EVENTLOOM_RETURN_IF_ERROR(CheckTraceparent(event.traceparent));
    if (event.tracestate.size() > kMaxTracestateSize) {
        return AttributeError("tracestate", "must be at most 512 characters, got " +
                                                std::to_string(event.tracestate.size()));
    }
    if (event.priority.has_value() &&
        (*event.priority < kMinPriority || *event.priority > kMaxPriority)) {
        return AttributeError("priority", "must be 0..9, got " + std::to_string(*event.priority));
    }
    return Status::Ok();
}

std::string NowRfc3339() {
    using namespace std::chrono;
    const auto now = time_point_cast<microseconds>(system_clock::now());
    const auto day = floor<days>(now);
    const year_month_day date{day};
    const hh_mm_ss clock{now - day};

    char buffer[48];
    std::snprintf(buffer, sizeof(buffer), "%04d-%02u-%02uT%02d:%02d:%02d.%06dZ",
                  static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                  static_cast<unsigned>(date.day()), static_cast<int>(clock.hours().count()),
                  static_cast<int>(clock.minutes().count()),
                  static_cast<int>(clock.seconds().count()),
                  static_cast<int>(clock.subseconds().count()));
    return buffer;
}

}  // namespace

Status ValidateEvent(const Event& event, const EventLimits& limits) {
    EVENTLOOM_RETURN_IF_ERROR(CheckRequired(event));

    for (const StringAttribute& attribute : kStringAttributes) {
        EVENTLOOM_RETURN_IF_ERROR(CheckValue(attribute.name, event.*attribute.member, limits));
    }
    EVENTLOOM_RETURN_IF_ERROR(CheckKnownFormats(event));

    for (const auto& [name, value] : event.extensions) {
        EVENTLOOM_RETURN_IF_ERROR(CheckExtensionName(name));
        EVENTLOOM_RETURN_IF_ERROR(CheckValue(name, value, limits));
    }
    EVENTLOOM_RETURN_IF_ERROR(CheckExtensionsAreUnique(event));

    const size_t size = EventSize(event);
    if (size > limits.max_event_bytes) {
        return InvalidArgumentError("event size: event is " + std::to_string(size) +
                                    " bytes, limit is " + std::to_string(limits.max_event_bytes) +
                                    " (attributes plus data)");
    }
    return Status::Ok();
}

void FillDefaults(Event* event) {
    if (event->id.empty()) event->id = NewEventId();
    if (event->time.empty()) event->time = NowRfc3339();
}

std::string ToValidUtf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    size_t bad = 0;
    while (!event_internal::IsValidUtf8(text, &bad)) {
        out.append(text.substr(0, bad));
        out.push_back('?');
        text.remove_prefix(bad + 1);
    }
    out.append(text);
    return out;
}

}  // namespace eventloom
