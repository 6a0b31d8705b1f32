// What templates and conditions see of an event, and paths into JSON values.
//
// The scope of an event is a JSON object:
//   {"data": <the data parsed as JSON when it is JSON, else its text; null without data>,
//    "event": {"id", "source", "type", "specversion", "subject", "time", "datacontenttype",
//              "dataschema", "correlationid", "causationid", "partitionkey",
//              "priority" (number or null), "traceparent", "tracestate", "deadline",
//              plus every other extension by name}}
// Absent string attributes are empty strings.
//
// A DataPath names a place inside a JSON value: keys and array indexes, written
// "customer.name" or "items[0].sku" (keys may hold any character but '.', '[' and ']').
//
// Everything here is a pure function over values: thread-safe, never throws.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "eventloom/event.h"
#include "eventloom/status.h"

namespace eventloom::pipeline {

nlohmann::json EventScope(const Event& event);

// The event's data as JSON: null without data, the parsed value when the data is JSON text
// (and the content type is empty or names JSON), else nullopt.
std::optional<nlohmann::json> EventDataJson(const Event& event);

struct PathSegment {
    std::string key;  // when !is_index
    size_t index = 0;
    bool is_index = false;
};

struct DataPath {
    std::vector<PathSegment> segments;

    bool HasIndex() const;
    std::string ToString() const;  // "items[0].sku"
};

// Parses "customer.name" / "items[0]". InvalidArgument names what is wrong.
Result<DataPath> ParseDataPath(std::string_view text);

// The value at `path` in `root`, or null when any step is missing or of the wrong type.
const nlohmann::json* Lookup(const nlohmann::json& root, const DataPath& path);
// Sets the value at `path`, creating objects for missing keys (a null root or step becomes an
// object). An index step needs an existing array and an index at most its size (its size
// appends). False when a step is of the wrong type.
bool SetAt(nlohmann::json* root, const DataPath& path, nlohmann::json value);
// Removes the value at `path`; true when there was one.
bool EraseAt(nlohmann::json* root, const DataPath& path);

// Compact JSON text; invalid UTF-8 in strings is replaced, never thrown about.
std::string DumpJson(const nlohmann::json& value);

// How a value reads in text: a string as itself, null as empty text, anything else as JSON.
std::string ValueText(const nlohmann::json& value);

// The code points of UTF-8 text (invalid bytes count one each).
size_t Utf8Length(std::string_view text);

// The longest prefix of `text` with at most `max_chars` code points; never splits one.
std::string_view Utf8Prefix(std::string_view text, size_t max_chars);

}  // namespace eventloom::pipeline
