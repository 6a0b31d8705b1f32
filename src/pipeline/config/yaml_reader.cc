// Checked reads of YAML values with located diagnostics (yaml_reader.h).
#include "pipeline/config/yaml_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <regex>
#include <set>

namespace eventloom::pipeline::internal {

namespace {

// How a node is described in "expected X, got Y".
std::string Describe(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Map:
            return "a mapping";
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Scalar:
            return "'" + node.Scalar() + "'";
        default:
            return "nothing";
    }
}

std::string Join(const std::vector<std::string>& words) {
    std::string out;
    for (const std::string& w : words) {
        if (!out.empty()) out += ", ";
        out += w;
    }
    return out;
}

bool IsEnvName(std::string_view name) {
    if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_';
    });
}

std::string EscapePointerToken(const std::string& key) {
    std::string out;
    for (char c : key) {
        if (c == '~') {
            out += "~0";
        } else if (c == '/') {
            out += "~1";
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace

int EditDistance(std::string_view a, std::string_view b) {
    // Optimal string alignment: a transposition of neighbours counts as one edit.
    const size_t n = a.size();
    const size_t m = b.size();
    std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1, 0));
    for (size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
    for (size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
    for (size_t i = 1; i <= n; ++i) {
        for (size_t j = 1; j <= m; ++j) {
            const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
            }
        }
    }
    return d[n][m];
}

std::optional<std::string> DidYouMean(std::string_view word,
                                      const std::vector<std::string>& candidates) {
    // Short words tolerate one edit, longer ones two (or a third of their length).
    const int limit = std::max<int>(1, std::min<int>(3, static_cast<int>(word.size()) / 3));
    std::optional<std::string> best;
    int best_distance = limit + 1;
    for (const std::string& c : candidates) {
        const int d = EditDistance(word, c);
        if (d < best_distance) {
            best_distance = d;
            best = c;
        }
    }
    return best;
}

nlohmann::json PlainScalarToJson(const std::string& text) {
    static const std::regex kInt("[-+]?[0-9]+");
    static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
    if (text == "null" || text == "Null" || text == "NULL" || text == "~") return nullptr;
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
    if (std::regex_match(text, kInt)) {
        const char* begin = text.data() + (text[0] == '+' ? 1 : 0);
        int64_t value = 0;
        auto [end, ec] = std::from_chars(begin, text.data() + text.size(), value);
        if (ec == std::errc() && end == text.data() + text.size()) return value;
        return std::strtod(text.c_str(), nullptr);  // beyond int64: a JSON number still
    }
    if (std::regex_match(text, kFloat)) {
        const double value = std::strtod(text.c_str(), nullptr);
        if (std::isfinite(value)) return value;
    }
    return text;
}

SourceLocation YamlReader::Loc(const YAML::Node& node) const {
    const YAML::Mark mark = node.Mark();
    if (mark.is_null()) return {file_, 0, 0};
    return {file_, mark.line + 1, mark.column + 1};
}

void YamlReader::Error(const SourceLocation& where, std::string message) {
    diagnostics_->push_back({where, std::move(message)});
}

std::optional<std::string> YamlReader::String(const YAML::Node& node, std::string_view what) {
    if (!node.IsScalar()) {
        Error(node, fmt::format("{}: expected a string, got {}", what, Describe(node)));
        return std::nullopt;
    }
    Result<std::string> value = SubstituteEnv(node.Scalar());
    if (!value.ok()) {
        Error(node, fmt::format("{}: {}", what, value.status().message()));
        return std::nullopt;
    }
    return std::move(value).value();
}

std::optional<int64_t> YamlReader::Int(const YAML::Node& node, std::string_view what, int64_t min,
                                       int64_t max) {
    if (!node.IsScalar()) {
        Error(node, fmt::format("{}: expected an integer, got {}", what, Describe(node)));
        return std::nullopt;
    }
    std::optional<std::string> text = String(node, what);
    if (!text) return std::nullopt;
    int64_t value = 0;
    const char* begin = text->data();
    const char* end = begin + text->size();
    auto [stop, ec] = std::from_chars(begin, end, value);
    if (text->empty() || ec != std::errc() || stop != end) {
        Error(node, fmt::format("{}: expected an integer, got '{}'", what, *text));
        return std::nullopt;
    }
    if (value < min || value > max) {
        Error(node, fmt::format("{}: must be between {} and {}, got {}", what, min, max, value));
        return std::nullopt;
    }
    return value;
}

std::optional<double> YamlReader::Number(const YAML::Node& node, std::string_view what,
                                         double min) {
    if (!node.IsScalar()) {
        Error(node, fmt::format("{}: expected a number, got {}", what, Describe(node)));
        return std::nullopt;
    }
    std::optional<std::string> text = String(node, what);
    if (!text) return std::nullopt;
    const nlohmann::json value = PlainScalarToJson(*text);
    if (!value.is_number()) {
        Error(node, fmt::format("{}: expected a number, got '{}'", what, *text));
        return std::nullopt;
    }
    const double number = value.get<double>();
    if (number < min) {
        Error(node, fmt::format("{}: must be at least {}, got {}", what, min, *text));
        return std::nullopt;
    }
    return number;
}

std::optional<bool> YamlReader::Bool(const YAML::Node& node, std::string_view what) {
    if (!node.IsScalar()) {
        Error(node, fmt::format("{}: expected true or false, got {}", what, Describe(node)));
        return std::nullopt;
    }
    std::optional<std::string> text = String(node, what);
    if (!text) return std::nullopt;
    const nlohmann::json value = PlainScalarToJson(*text);
    if (!value.is_boolean()) {
        Error(node, fmt::format("{}: expected true or false, got '{}'", what, *text));
        return std::nullopt;
    }
    return value.get<bool>();
}

std::optional<std::chrono::milliseconds> YamlReader::Duration(const YAML::Node& node,
                                                              std::string_view what) {
    std::optional<std::string> text = String(node, what);
    if (!text) return std::nullopt;
    Result<std::chrono::milliseconds> value = ParseDuration(*text);
    if (!value.ok()) {
        Error(node, fmt::format("{}: {}", what, value.status().message()));
        return std::nullopt;
    }
    return *value;
}

std::optional<uint64_t> YamlReader::ByteSize(const YAML::Node& node, std::string_view what) {
    std::optional<std::string> text = String(node, what);
    if (!text) return std::nullopt;
    Result<uint64_t> value = ParseByteSize(*text);
    if (!value.ok()) {
        Error(node, fmt::format("{}: {}", what, value.status().message()));
        return std::nullopt;
    }
    return *value;
}

std::optional<std::string> YamlReader::Checked(const YAML::Node& node, std::string_view what,
                                               Status (*check)(std::string_view)) {
    std::optional<std::string> text = String(node, what);
    if (!text) return std::nullopt;
    Status status = check(*text);
    if (!status.ok()) {
        Error(node, fmt::format("{}: {}", what, status.message()));
        return std::nullopt;
    }
    return text;
}

std::vector<std::pair<std::string, YAML::Node>> YamlReader::StringList(const YAML::Node& node,
                                                                       std::string_view what) {
    std::vector<std::pair<std::string, YAML::Node>> out;
    if (node.IsScalar()) {
        if (std::optional<std::string> s = String(node, what)) out.emplace_back(*s, node);
        return out;
    }
    if (!node.IsSequence()) {
        Error(node, fmt::format("{}: expected a string or a list of strings, got {}", what,
                                Describe(node)));
        return out;
    }
    for (size_t i = 0; i < node.size(); ++i) {
        const YAML::Node item = node[i];
        if (std::optional<std::string> s = String(item, fmt::format("{}[{}]", what, i))) {
            out.emplace_back(*s, item);
        }
    }
    return out;
}

nlohmann::json YamlReader::ToJson(const YAML::Node& node, const std::string& pointer,
                                  const std::string& path, Options& options) {
    options.locations[pointer] = Loc(node);
    switch (node.Type()) {
        case YAML::NodeType::Scalar: {
            std::optional<std::string> text = String(node, path);
            if (!text) return node.Scalar();
            // Quoted and block scalars carry the tag "!", plain ones "?"; an explicit tag
            // (!!str) keeps the text as it is.
            if (node.Tag() == "?" && !text->empty()) return PlainScalarToJson(*text);
            return *text;
        }
        case YAML::NodeType::Sequence: {
            nlohmann::json array = nlohmann::json::array();
            for (size_t i = 0; i < node.size(); ++i) {
                array.push_back(ToJson(node[i], fmt::format("{}/{}", pointer, i),
                                       fmt::format("{}[{}]", path, i), options));
            }
            return array;
        }
        case YAML::NodeType::Map: {
            nlohmann::json object = nlohmann::json::object();
            for (const auto& kv : node) {
                if (!kv.first.IsScalar()) {
                    Error(kv.first, fmt::format("{}: keys must be strings", path));
                    continue;
                }
                const std::string& key = kv.first.Scalar();
                if (object.contains(key)) {
                    Error(kv.first, fmt::format("{}: duplicate key '{}'", path, key));
                    continue;
                }
                const std::string child = pointer + "/" + EscapePointerToken(key);
                object[key] = ToJson(kv.second, child, path + "." + key, options);
                // An empty value's mark is the next token's: place it at its key instead.
                if (kv.second.IsNull() && kv.second.Mark().line != kv.first.Mark().line) {
                    options.locations[child] = Loc(kv.first);
                }
            }
            return object;
        }
        default:
            return nullptr;
    }
}

MapReader::MapReader(YamlReader& reader, const YAML::Node& node, std::string context,
                     std::string prefix, std::vector<std::string> keys)
    : reader_(reader), node_(node), context_(std::move(context)), prefix_(std::move(prefix)) {
    std::string where = context_;
    if (!prefix_.empty()) {
        const std::string name = prefix_.substr(0, prefix_.size() - 1);
        where = context_.empty() ? name : context_ + " " + name;
    }
    if (!node.IsMap()) {
        reader_.Error(node, fmt::format("{}: expected a mapping, got {}",
                                        where.empty() ? "pipeline" : where, Describe(node)));
        return;
    }
    ok_ = true;

    std::set<std::string> seen;
    for (const auto& kv : node) {
        const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
        if (!seen.insert(key).second) {
            reader_.Error(kv.first, fmt::format("duplicate key '{}' in {}", key,
                                                where.empty() ? "the top level" : where));
            continue;
        }
        if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;

        std::string message = fmt::format("unknown key '{}' {}", key,
                                          where.empty() ? "at the top level" : "in " + where);
        message += fmt::format(" (expected one of: {})", Join(keys));
        if (std::optional<std::string> guess = DidYouMean(key, keys)) {
            message += fmt::format("; did you mean '{}'?", *guess);
        }
        reader_.Error(kv.first, std::move(message));
    }
}

std::optional<YAML::Node> MapReader::Get(std::string_view key) const {
    if (!ok_) return std::nullopt;
    for (const auto& kv : node_) {
        if (kv.first.IsScalar() && kv.first.Scalar() == key) return kv.second;
    }
    return std::nullopt;
}

std::optional<YAML::Node> MapReader::Value(std::string_view key) {
    std::optional<YAML::Node> value = Get(key);
    if (value && value->IsNull()) {
        reader_.Error(ValueLoc(key), fmt::format("{}: no value given", What(key)));
        return std::nullopt;
    }
    return value;
}

std::optional<YAML::Node> MapReader::Require(std::string_view key) {
    if (ok_ && !Get(key)) {
        const std::string where = context_.empty() ? "" : context_ + ": ";
        reader_.Error(node_, fmt::format("{}missing required key '{}{}'", where, prefix_, key));
        return std::nullopt;
    }
    return Value(key);
}

SourceLocation MapReader::ValueLoc(std::string_view key) const {
    if (!ok_) return reader_.Loc(node_);
    for (const auto& kv : node_) {
        if (!kv.first.IsScalar() || kv.first.Scalar() != key) continue;
        if (kv.second.IsNull() && kv.second.Mark().line != kv.first.Mark().line) {
            return reader_.Loc(kv.first);
        }
        return reader_.Loc(kv.second);
    }
    return reader_.Loc(node_);
}

std::string MapReader::What(std::string_view key) const {
    if (context_.empty()) return prefix_ + std::string(key);
    return fmt::format("{}: {}{}", context_, prefix_, key);
}

void MapReader::ReadString(std::string_view key, std::string& out) {
    if (std::optional<YAML::Node> v = Value(key)) {
        if (std::optional<std::string> s = reader_.String(*v, What(key))) out = *s;
    }
}

void MapReader::ReadInt(std::string_view key, int& out, int64_t min, int64_t max) {
    if (std::optional<YAML::Node> v = Value(key)) {
        if (std::optional<int64_t> i = reader_.Int(*v, What(key), min, max)) {
            out = static_cast<int>(*i);
        }
    }
}

void MapReader::ReadInt64(std::string_view key, int64_t& out, int64_t min, int64_t max) {
    if (std::optional<YAML::Node> v = Value(key)) {
        if (std::optional<int64_t> i = reader_.Int(*v, What(key), min, max)) out = *i;
    }
}

void MapReader::ReadNumber(std::string_view key, double& out, double min) {
    if (std::optional<YAML::Node> v = Value(key)) {
        if (std::optional<double> d = reader_.Number(*v, What(key), min)) out = *d;
    }
}

void MapReader::ReadDuration(std::string_view key, std::chrono::milliseconds& out) {
    if (std::optional<YAML::Node> v = Value(key)) {
        if (auto d = reader_.Duration(*v, What(key))) out = *d;
    }
}

void MapReader::ReadByteSize(std::string_view key, uint64_t& out) {
    if (std::optional<YAML::Node> v = Value(key)) {
        if (auto b = reader_.ByteSize(*v, What(key))) out = *b;
    }
}

void MapReader::ReadEnvName(std::string_view key, std::string& out) {
    std::optional<YAML::Node> v = Value(key);
    if (!v) return;
    std::optional<std::string> name = reader_.String(*v, What(key));
    if (!name) return;
    if (!IsEnvName(*name)) {
        reader_.Error(*v, fmt::format("{}: expected the name of an environment variable "
                                      "(letters, digits, '_'), got '{}'",
                                      What(key), *name));
        return;
    }
    out = *name;
}

}  // namespace eventloom::pipeline::internal
