// The transform stage's steps: a list of edits applied in order to an event's data.
//
//   select: [path, ...]          keep only these fields (key paths: "customer.name")
//   drop: [path, ...]            remove these ("items[0]" allowed)
//   rename: { from: to }         move a value (to: a key path); a missing `from` is skipped
//   set: { path: VALUE }         VALUE is a JSON value whose strings are templates
//                                (templates.h), rendered against the event's scope with the
//                                data as edited so far
//   redact: { paths: [..], patterns: [..], replacement: "[redacted]" }
//                                (redact.h) in the strings at `paths` (and every string below
//                                them); default paths: every string in the data; default
//                                patterns: every built-in one
//   truncate: { path, max_chars: N | max_tokens: N }
//                                shortens the string at `path` (text.h); other values are kept
// Paths are relative to the data. The data must be a JSON object for select, drop, rename,
// set and truncate (set also accepts null: it starts an object).
//
// A compiled Transform is immutable: safe to apply from many threads.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eventloom/status.h"
#include "pipeline/config/pipeline_spec.h"
#include "pipeline/expr/text.h"

namespace eventloom::pipeline {

namespace expr_internal {
struct TransformStep;
}

class Transform {
public:
    // Applies the steps to scope["data"] (scope.h) and returns the new data. InvalidArgument
    // names the step ("steps[1].select: data is not a JSON object").
    Result<nlohmann::json> Apply(const nlohmann::json& scope) const;

    // The output event's type (`with.type`); empty: the input event's.
    const std::string& type() const { return type_; }

private:
    friend Result<Transform> CompileTransform(const Options&, std::vector<Diagnostic>*);

    std::string type_;
    std::shared_ptr<const std::vector<expr_internal::TransformStep>> steps_;
};

// Compiles a transform stage's `with:` (`type`, `steps`). Every problem is appended to
// `diagnostics` (when given) at its option's location, and the result is then InvalidArgument
// (DiagnosticsStatus).
Result<Transform> CompileTransform(const Options& with, std::vector<Diagnostic>* diagnostics);

}  // namespace eventloom::pipeline
