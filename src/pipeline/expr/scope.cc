// EventScope and DataPath (scope.h).
#include "pipeline/expr/scope.h"

#include <fmt/format.h>

namespace eventloom::pipeline {

namespace {

using nlohmann::json;

bool IsJsonContentType(std::string_view type) {
    return type.empty() || type.find("json") != std::string_view::npos;
}

// The length of the UTF-8 sequence starting with `lead`, 1 for a byte that cannot start one.
size_t SequenceLength(unsigned char lead) {
    if (lead < 0x80) return 1;
    if ((lead & 0xE0) == 0xC0) return 2;
    if ((lead & 0xF0) == 0xE0) return 3;
    if ((lead & 0xF8) == 0xF0) return 4;
    return 1;
}

// The length of the code point at text[i]: its sequence when complete, else 1 byte.
size_t CodePointAt(std::string_view text, size_t i) {
    const size_t n = SequenceLength(static_cast<unsigned char>(text[i]));
    if (i + n > text.size()) return 1;
    for (size_t k = 1; k < n; ++k) {
        if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return 1;
    }
    return n;
}

}  // namespace

std::optional<json> EventDataJson(const Event& event) {
    if (!event.has_data) return json(nullptr);
    if (!IsJsonContentType(event.datacontenttype)) return std::nullopt;
    json value = json::parse(event.data, nullptr, false);
    if (value.is_discarded()) return std::nullopt;
    return value;
}

json EventScope(const Event& event) {
    json data;
    if (auto parsed = EventDataJson(event)) {
        data = std::move(*parsed);
    } else {
        data = ToValidUtf8(event.data);
    }
    json e = {{"id", event.id},
              {"source", event.source},
              {"type", event.type},
              {"specversion", event.specversion},
              {"subject", event.subject},
              {"time", event.time},
              {"datacontenttype", event.datacontenttype},
              {"dataschema", event.dataschema},
              {"correlationid", event.correlationid},
              {"causationid", event.causationid},
              {"partitionkey", event.partitionkey},
              {"traceparent", event.traceparent},
              {"tracestate", event.tracestate},
              {"deadline", event.deadline}};
    e["priority"] = event.priority ? json(*event.priority) : json(nullptr);
    for (const auto& [name, value] : event.extensions) e[name] = ToValidUtf8(value);
    return json{{"data", std::move(data)}, {"event", std::move(e)}};
}

bool DataPath::HasIndex() const {
    for (const PathSegment& s : segments) {
        if (s.is_index) return true;
    }
    return false;
}

std::string DataPath::ToString() const {
    std::string out;
    for (const PathSegment& s : segments) {
        if (s.is_index) {
            out += fmt::format("[{}]", s.index);
        } else {
            if (!out.empty()) out += '.';
            out += s.key;
        }
    }
    return out;
}

Result<DataPath> ParseDataPath(std::string_view text) {
    DataPath path;
    size_t i = 0;
    auto bad = [&](std::string_view what) {
        return InvalidArgumentError(
            fmt::format("path '{}': {} at character {}", text, what, i + 1));
    };
    if (text.empty()) return InvalidArgumentError("path is empty");
    bool need_key = true;
    while (i < text.size()) {
        if (text[i] == '[') {
            size_t close = text.find(']', i);
            if (close == std::string_view::npos) return bad("expected ']'");
            std::string_view digits = text.substr(i + 1, close - i - 1);
            if (digits.empty() || digits.size() > 9 ||
                digits.find_first_not_of("0123456789") != std::string_view::npos) {
                return bad("expected an array index");
            }
            PathSegment s;
            s.is_index = true;
            s.index = std::stoul(std::string(digits));
            path.segments.push_back(std::move(s));
            i = close + 1;
            need_key = false;
            continue;
        }
        if (text[i] == '.') {
            if (need_key) return bad("expected a key");
            ++i;
            need_key = true;
            continue;
        }
        if (!need_key) return bad("expected '.' or '['");
        size_t end = text.find_first_of(".[]", i);
        if (end == std::string_view::npos) end = text.size();
        if (end < text.size() && text[end] == ']') {
            i = end;
            return bad("unexpected ']'");
        }
        PathSegment s;
        s.key = std::string(text.substr(i, end - i));
        path.segments.push_back(std::move(s));
        i = end;
        need_key = false;
    }
    if (need_key) return bad("expected a key");
    return path;
}

const json* Lookup(const json& root, const DataPath& path) {
    const json* at = &root;
    for (const PathSegment& s : path.segments) {
        if (s.is_index) {
            if (!at->is_array() || s.index >= at->size()) return nullptr;
            at = &(*at)[s.index];
        } else {
            if (!at->is_object()) return nullptr;
            auto it = at->find(s.key);
            if (it == at->end()) return nullptr;
            at = &*it;
        }
    }
    return at;
}

bool SetAt(json* root, const DataPath& path, json value) {
    json* at = root;
    for (const PathSegment& s : path.segments) {
        if (s.is_index) {
            if (!at->is_array() || s.index > at->size()) return false;
            if (s.index == at->size()) at->push_back(nullptr);
            at = &(*at)[s.index];
        } else {
            if (at->is_null()) *at = json::object();
            if (!at->is_object()) return false;
            at = &(*at)[s.key];
        }
    }
    *at = std::move(value);
    return true;
}

bool EraseAt(json* root, const DataPath& path) {
    if (path.segments.empty()) return false;
    DataPath parent_path{{path.segments.begin(), path.segments.end() - 1}};
    json* parent = const_cast<json*>(Lookup(*root, parent_path));
    if (!parent) return false;
    const PathSegment& last = path.segments.back();
    if (last.is_index) {
        if (!parent->is_array() || last.index >= parent->size()) return false;
        parent->erase(last.index);
        return true;
    }
    if (!parent->is_object()) return false;
    return parent->erase(last.key) > 0;
}

std::string DumpJson(const json& value) {
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ValueText(const json& value) {
    if (value.is_string()) return value.get<std::string>();
    if (value.is_null()) return std::string();
    return DumpJson(value);
}

size_t Utf8Length(std::string_view text) {
    size_t n = 0;
    for (size_t i = 0; i < text.size(); i += CodePointAt(text, i)) ++n;
    return n;
}

std::string_view Utf8Prefix(std::string_view text, size_t max_chars) {
    size_t i = 0;
    for (size_t n = 0; n < max_chars && i < text.size(); ++n) i += CodePointAt(text, i);
    return text.substr(0, i);
}

}  // namespace eventloom::pipeline
