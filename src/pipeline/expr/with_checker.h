// Checks of a stage's `with:` options (pipeline_spec.h Options) that report each problem as a
// Diagnostic at the option's source location. Internal to the expr library.
//
// A WithChecker appends to the caller's vector, which must outlive it; not thread-safe.
#pragma once

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/config/pipeline_spec.h"

namespace eventloom::pipeline::expr_internal {

// "/steps/0/redact" -> "steps[0].redact"; "" -> "with".
std::string PointerName(const std::string& pointer);

class WithChecker {
public:
    // Messages read "<prefix><option name>: <message>"; prefix is e.g. "stage 'clean': ".
    WithChecker(const Options& with, std::string prefix, std::vector<Diagnostic>* diagnostics)
        : with_(with), prefix_(std::move(prefix)), diagnostics_(diagnostics) {}

    void Error(const std::string& pointer, std::string_view message);
    bool failed() const { return failed_; }

    // Reports keys of `object` (at `pointer`) not among `allowed`.
    void CheckKeys(const nlohmann::json& object, const std::string& pointer,
                   std::initializer_list<std::string_view> allowed);

    // The member `key` of `object` (at `pointer`) when it has the expected type; nullptr when
    // absent or (reported) of another type.
    const nlohmann::json* String(const nlohmann::json& object, const std::string& pointer,
                                 const char* key);
    // A non-negative whole number, at most `max`.
    const nlohmann::json* Count(const nlohmann::json& object, const std::string& pointer,
                                const char* key, int64_t max = INT32_MAX);
    const nlohmann::json* Number(const nlohmann::json& object, const std::string& pointer,
                                 const char* key);
    // A list of strings (a single string is taken as a list of one) into *out.
    bool Strings(const nlohmann::json& value, const std::string& pointer,
                 std::vector<std::string>* out);

    const Options& with() const { return with_; }

private:
    const Options& with_;
    std::string prefix_;
    std::vector<Diagnostic>* diagnostics_;
    bool failed_ = false;
};

}  // namespace eventloom::pipeline::expr_internal
