// Transform (transform.h).
#include "pipeline/expr/transform.h"

#include <fmt/format.h>

#include <optional>
#include <utility>

#include "pipeline/expr/redact.h"
#include "pipeline/expr/scope.h"
#include "pipeline/expr/templates.h"
#include "pipeline/expr/with_checker.h"

namespace eventloom::pipeline {

namespace expr_internal {

enum class StepKind { kSelect, kDrop, kRename, kSet, kRedact, kTruncate };

struct TransformStep {
    StepKind kind = StepKind::kSelect;
    std::string name;                                     // "steps[0].select", for errors
    std::vector<DataPath> paths;                          // select, drop, redact (empty: all)
    std::vector<std::pair<DataPath, DataPath>> renames;   // rename
    std::vector<std::pair<DataPath, JsonTemplate>> sets;  // set
    std::optional<Redactor> redactor;                     // redact
    DataPath path;                                        // truncate
    size_t max_chars = 0;                                 // truncate: one of these two
    size_t max_tokens = 0;
    bool by_tokens = false;
};

}  // namespace expr_internal

namespace {

using expr_internal::StepKind;
using expr_internal::TransformStep;
using expr_internal::WithChecker;
using nlohmann::json;

constexpr std::string_view kStepNames[] = {"select", "drop", "rename", "set", "redact", "truncate"};

// Parses a path option; `keys_only` refuses array indexes (for paths that are created).
std::optional<DataPath> PathOption(WithChecker* check, const std::string& text,
                                   const std::string& pointer, bool keys_only) {
    auto path = ParseDataPath(text);
    if (!path.ok()) {
        check->Error(pointer, path.status().message());
        return std::nullopt;
    }
    if (keys_only && path->HasIndex()) {
        check->Error(pointer, fmt::format("path '{}': an array index cannot be used here", text));
        return std::nullopt;
    }
    return std::move(path).value();
}

void CompilePaths(WithChecker* check, const json& value, const std::string& pointer, bool keys_only,
                  std::vector<DataPath>* out) {
    std::vector<std::string> texts;
    if (!check->Strings(value, pointer, &texts)) return;
    for (size_t i = 0; i < texts.size(); ++i) {
        const std::string at = value.is_array() ? pointer + "/" + std::to_string(i) : pointer;
        if (auto p = PathOption(check, texts[i], at, keys_only)) out->push_back(std::move(*p));
    }
}

void CompileMapping(WithChecker* check, const json& value, const std::string& pointer,
                    TransformStep* step) {
    if (!value.is_object() || value.empty()) {
        check->Error(pointer, "expected a mapping of paths");
        return;
    }
    for (const auto& [key, member] : value.items()) {
        const std::string at = pointer + "/" + key;
        const bool rename = step->kind == StepKind::kRename;
        auto path = PathOption(check, key, at, /*keys_only=*/!rename);
        if (rename) {
            if (!member.is_string()) {
                check->Error(at, "expected the new path as a string");
                continue;
            }
            auto to = PathOption(check, member.get<std::string>(), at, /*keys_only=*/true);
            if (path && to) step->renames.emplace_back(std::move(*path), std::move(*to));
            continue;
        }
        std::string bad_pointer;
        auto t = JsonTemplate::Compile(member, &bad_pointer);
        if (!t.ok()) {
            check->Error(at + bad_pointer,
                         t.status().message().substr(t.status().message().find(": ") + 2));
            continue;
        }
        if (path) step->sets.emplace_back(std::move(*path), std::move(t).value());
    }
}

void CompileRedact(WithChecker* check, const json& value, const std::string& pointer,
                   TransformStep* step) {
    if (!value.is_object()) {
        check->Error(pointer, "expected a mapping with paths, patterns, replacement");
        return;
    }
    check->CheckKeys(value, pointer, {"paths", "patterns", "replacement"});
    if (auto it = value.find("paths"); it != value.end()) {
        CompilePaths(check, *it, pointer + "/paths", false, &step->paths);
    }
    std::vector<std::string> patterns;
    if (auto it = value.find("patterns"); it != value.end()) {
        if (!check->Strings(*it, pointer + "/patterns", &patterns)) return;
    } else {
        patterns = Redactor::BuiltinPatterns();
    }
    std::string replacement = "[redacted]";
    if (const json* r = check->String(value, pointer, "replacement")) {
        replacement = r->get<std::string>();
    }
    // Compile each pattern alone first, to report every bad one at its own place.
    bool ok = true;
    for (size_t i = 0; i < patterns.size(); ++i) {
        auto one = Redactor::Compile({patterns[i]}, replacement);
        if (!one.ok()) {
            const std::string at = value["patterns"].is_array()
                                       ? pointer + "/patterns/" + std::to_string(i)
                                       : pointer + "/patterns";
            check->Error(at, one.status().message());
            ok = false;
        }
    }
    if (!ok) return;
    auto redactor = Redactor::Compile(patterns, replacement);
    if (redactor.ok()) step->redactor = std::move(redactor).value();
}

void CompileTruncate(WithChecker* check, const json& value, const std::string& pointer,
                     TransformStep* step) {
    if (!value.is_object()) {
        check->Error(pointer, "expected a mapping with path and max_chars or max_tokens");
        return;
    }
    check->CheckKeys(value, pointer, {"path", "max_chars", "max_tokens"});
    if (const json* p = check->String(value, pointer, "path")) {
        if (auto path = PathOption(check, p->get<std::string>(), pointer + "/path", false)) {
            step->path = std::move(*path);
        }
    } else if (!value.contains("path")) {
        check->Error(pointer, "missing 'path'");
    }
    const json* chars = check->Count(value, pointer, "max_chars");
    const json* tokens = check->Count(value, pointer, "max_tokens");
    if (value.contains("max_chars") == value.contains("max_tokens")) {
        check->Error(pointer, "expected exactly one of max_chars and max_tokens");
    }
    if (chars) step->max_chars = chars->get<size_t>();
    if (tokens) step->max_tokens = tokens->get<size_t>();
    step->by_tokens = value.contains("max_tokens");
}

std::optional<TransformStep> CompileStep(WithChecker* check, const json& value,
                                         const std::string& pointer, size_t index) {
    std::string kinds;
    for (std::string_view k : kStepNames) kinds += (kinds.empty() ? "" : ", ") + std::string(k);
    if (!value.is_object() || value.size() != 1) {
        check->Error(pointer, "expected a mapping with one of " + kinds);
        return std::nullopt;
    }
    const std::string& key = value.begin().key();
    const json& body = value.begin().value();
    const std::string at = pointer + "/" + key;
    TransformStep step;
    step.name = fmt::format("steps[{}].{}", index, key);
    if (key == "select" || key == "drop") {
        step.kind = key == "select" ? StepKind::kSelect : StepKind::kDrop;
        CompilePaths(check, body, at, key == "select", &step.paths);
    } else if (key == "rename" || key == "set") {
        step.kind = key == "rename" ? StepKind::kRename : StepKind::kSet;
        CompileMapping(check, body, at, &step);
    } else if (key == "redact") {
        step.kind = StepKind::kRedact;
        CompileRedact(check, body, at, &step);
    } else if (key == "truncate") {
        step.kind = StepKind::kTruncate;
        CompileTruncate(check, body, at, &step);
    } else {
        check->Error(at, fmt::format("unknown step '{}'; expected one of {}", key, kinds));
        return std::nullopt;
    }
    return step;
}

void RedactStrings(const Redactor& redactor, json* value) {
    if (value->is_string()) {
        *value = redactor.Redact(value->get_ref<const std::string&>());
    } else if (value->is_array() || value->is_object()) {
        for (json& child : *value) RedactStrings(redactor, &child);
    }
}

Status ApplyStep(const TransformStep& step, json* scope) {
    json& data = (*scope)["data"];
    auto fail = [&](std::string_view what) {
        return InvalidArgumentError(fmt::format("{}: {}", step.name, what));
    };
    const bool needs_object = step.kind != StepKind::kRedact;
    if (needs_object && !data.is_object() && !(step.kind == StepKind::kSet && data.is_null())) {
        return fail("data is not a JSON object");
    }
    switch (step.kind) {
        case StepKind::kSelect: {
            json kept = json::object();
            for (const DataPath& p : step.paths) {
                if (const json* v = Lookup(data, p)) SetAt(&kept, p, *v);
            }
            data = std::move(kept);
            break;
        }
        case StepKind::kDrop:
            for (const DataPath& p : step.paths) EraseAt(&data, p);
            break;
        case StepKind::kRename:
            for (const auto& [from, to] : step.renames) {
                const json* v = Lookup(data, from);
                if (!v) continue;
                json moved = *v;
                EraseAt(&data, from);
                if (!SetAt(&data, to, std::move(moved))) {
                    return fail(
                        fmt::format("cannot set '{}': a value on the way is not an "
                                    "object",
                                    to.ToString()));
                }
            }
            break;
        case StepKind::kSet:
            for (const auto& [path, value] : step.sets) {
                json rendered = value.Render(*scope);
                if (!SetAt(&(*scope)["data"], path, std::move(rendered))) {
                    return fail(
                        fmt::format("cannot set '{}': a value on the way is not an "
                                    "object",
                                    path.ToString()));
                }
            }
            break;
        case StepKind::kRedact:
            if (step.paths.empty()) {
                RedactStrings(*step.redactor, &data);
            }
            for (const DataPath& p : step.paths) {
                if (json* v = const_cast<json*>(Lookup(data, p))) RedactStrings(*step.redactor, v);
            }
            break;
        case StepKind::kTruncate: {
            json* v = const_cast<json*>(Lookup(data, step.path));
            if (!v || !v->is_string()) break;
            const std::string& text = v->get_ref<const std::string&>();
            *v = step.by_tokens ? TruncateToTokens(text, step.max_tokens)
                                : TruncateToChars(text, step.max_chars);
            break;
        }
    }
    return Status::Ok();
}

}  // namespace

Result<Transform> CompileTransform(const Options& with, std::vector<Diagnostic>* diagnostics) {
    std::vector<Diagnostic> found;
    WithChecker check(with, "", &found);
    Transform t;
    auto steps = std::make_shared<std::vector<TransformStep>>();
    const json& v = with.value;
    if (!v.is_object()) {
        check.Error("", "expected a mapping with type and steps");
    } else {
        check.CheckKeys(v, "", {"type", "steps"});
        if (const json* type = check.String(v, "", "type")) t.type_ = type->get<std::string>();
        auto it = v.find("steps");
        if (it == v.end() || it->is_null()) {
            check.Error("", "missing 'steps'");
        } else if (!it->is_array()) {
            check.Error("/steps", "expected a list of steps");
        } else {
            for (size_t i = 0; i < it->size(); ++i) {
                auto step = CompileStep(&check, (*it)[i], "/steps/" + std::to_string(i), i);
                if (step) steps->push_back(std::move(*step));
            }
        }
    }
    if (diagnostics) diagnostics->insert(diagnostics->end(), found.begin(), found.end());
    if (check.failed()) return DiagnosticsStatus(found);
    t.steps_ = std::move(steps);
    return t;
}

Result<json> Transform::Apply(const json& scope) const {
    json work = scope;
    if (!steps_) return std::move(work["data"]);  // a default-constructed transform: no steps
    for (const TransformStep& step : *steps_) EVENTLOOM_RETURN_IF_ERROR(ApplyStep(step, &work));
    return std::move(work["data"]);
}

}  // namespace eventloom::pipeline
