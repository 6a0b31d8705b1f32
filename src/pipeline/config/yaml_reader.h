// Reading checked values out of a parsed YAML document, for the pipeline loader: every read
// substitutes environment variables in scalars first, and every problem becomes a Diagnostic
// with the file, line and column of the offending node (all of them are collected; reading
// goes on after an error). Internal to eventloom_pipeline_config.
//
// A YamlReader appends to a diagnostics vector it does not own; both are used by one thread.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/config/pipeline_spec.h"

namespace eventloom::pipeline::internal {

// The edit distance between two words (insertions, deletions, substitutions, swaps).
int EditDistance(std::string_view a, std::string_view b);
// The closest of `candidates` to `word` when it is close enough to be a likely typo.
std::optional<std::string> DidYouMean(std::string_view word,
                                      const std::vector<std::string>& candidates);

// The JSON value of a plain (unquoted) YAML scalar: integers, floats, true/false and null take
// their JSON types (YAML 1.2 core schema); anything else stays a string.
nlohmann::json PlainScalarToJson(const std::string& text);

class YamlReader {
public:
    YamlReader(std::string file, std::vector<Diagnostic>* diagnostics)
        : file_(std::move(file)), diagnostics_(diagnostics) {}

    const std::string& file() const { return file_; }
    SourceLocation Loc(const YAML::Node& node) const;
    void Error(const SourceLocation& where, std::string message);
    void Error(const YAML::Node& node, std::string message) {
        Error(Loc(node), std::move(message));
    }
    size_t error_count() const { return diagnostics_->size(); }

    // Scalar reads. `what` names the value in messages ("stage 'clean': concurrency"). Each
    // returns nullopt after reporting a diagnostic at `node`.
    std::optional<std::string> String(const YAML::Node& node, std::string_view what);
    std::optional<int64_t> Int(const YAML::Node& node, std::string_view what, int64_t min,
                               int64_t max);
    std::optional<double> Number(const YAML::Node& node, std::string_view what, double min);
    std::optional<bool> Bool(const YAML::Node& node, std::string_view what);
    std::optional<std::chrono::milliseconds> Duration(const YAML::Node& node,
                                                      std::string_view what);
    std::optional<uint64_t> ByteSize(const YAML::Node& node, std::string_view what);
    // A string that must pass `check` (e.g. ValidateTopicName).
    std::optional<std::string> Checked(const YAML::Node& node, std::string_view what,
                                       Status (*check)(std::string_view));
    // A scalar or a list of scalars, with the node of each.
    std::vector<std::pair<std::string, YAML::Node>> StringList(const YAML::Node& node,
                                                               std::string_view what);

    // `node` (a mapping) as JSON, with the location of every value under `pointer`.
    nlohmann::json ToJson(const YAML::Node& node, const std::string& pointer,
                          const std::string& path, Options& options);

private:
    std::string file_;
    std::vector<Diagnostic>* diagnostics_;  // not owned
};

// One YAML mapping being read: checks at construction that `node` is a mapping whose keys are
// all among `keys` (unknown keys get a did-you-mean and the list of expected keys; duplicate
// keys are errors). `context` names the mapping in messages ("stage 'clean'", "" for the top
// level); `prefix` is put before key names ("retry.").
class MapReader {
public:
    MapReader(YamlReader& reader, const YAML::Node& node, std::string context, std::string prefix,
              std::vector<std::string> keys);

    bool ok() const { return ok_; }
    const std::string& context() const { return context_; }
    const std::string& prefix() const { return prefix_; }
    const YAML::Node& node() const { return node_; }
    SourceLocation where() const { return reader_.Loc(node_); }

    // The value of `key`, or nullopt when absent; it may be empty (a null node).
    std::optional<YAML::Node> Get(std::string_view key) const;
    // The value of `key`, or nullopt when absent or empty (an empty value is reported).
    std::optional<YAML::Node> Value(std::string_view key);
    // The same; a missing key is reported at the mapping.
    std::optional<YAML::Node> Require(std::string_view key);
    // The location of the value of `key` (the key's own when the value is empty).
    SourceLocation ValueLoc(std::string_view key) const;
    // "stage 'clean': retry.max_attempts": how messages name the value of `key`.
    std::string What(std::string_view key) const;

    // Shorthands: set `out` when `key` is present and valid.
    void ReadString(std::string_view key, std::string& out);
    void ReadInt(std::string_view key, int& out, int64_t min, int64_t max);
    void ReadInt64(std::string_view key, int64_t& out, int64_t min, int64_t max);
    void ReadNumber(std::string_view key, double& out, double min);
    void ReadDuration(std::string_view key, std::chrono::milliseconds& out);
    void ReadByteSize(std::string_view key, uint64_t& out);
    // A variable name (not its value): letters, digits and '_'.
    void ReadEnvName(std::string_view key, std::string& out);

private:
    YamlReader& reader_;
    YAML::Node node_;
    std::string context_;
    std::string prefix_;
    bool ok_ = false;
};

}  // namespace eventloom::pipeline::internal
