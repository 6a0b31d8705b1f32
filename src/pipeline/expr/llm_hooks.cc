// MakeLlmHooks (llm_hooks.h).
#include "pipeline/expr/llm_hooks.h"

#include <fmt/format.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

#include "common/file.h"
#include "llm/request_json.h"
#include "pipeline/expr/expr_lexer.h"
#include "pipeline/expr/scope.h"
#include "pipeline/expr/templates.h"
#include "pipeline/expr/with_checker.h"

namespace eventloom::pipeline {

namespace {

using expr_internal::WithChecker;
using nlohmann::json;

// What the stage's options set in every request; unset members keep the request's value.
struct Overrides {
    std::optional<int> max_tokens;
    std::optional<float> temperature;
    std::optional<float> top_p;
    std::optional<int> top_k;
    std::optional<uint32_t> seed;
    std::optional<std::vector<std::string>> stop;
    std::optional<std::string> json_schema;

    void ApplyTo(LlmRequest* r) const {
        if (max_tokens) r->max_tokens = *max_tokens;
        if (temperature) r->sampling.temperature = *temperature;
        if (top_p) r->sampling.top_p = *top_p;
        if (top_k) r->sampling.top_k = *top_k;
        if (seed) r->sampling.seed = *seed;
        if (stop) r->stop = *stop;
        if (json_schema) r->json_schema = *json_schema;
    }
};

struct Compiled {
    std::string stage;
    std::optional<Template> system;
    std::optional<Template> prompt;
    Overrides overrides;
    std::string output;
    bool has_schema = false;
};

std::string Resolve(const std::string& dir, const std::string& path) {
    if (path.empty() || path[0] == '/' || dir.empty()) return path;
    return dir + "/" + path;
}

// The 1-based line and column of byte `offset` in `text`.
SourceLocation LocationIn(const std::string& file, std::string_view text, size_t offset) {
    SourceLocation where{file, 1, 1};
    for (size_t i = 0; i < offset && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++where.line;
            where.column = 1;
        } else {
            ++where.column;
        }
    }
    return where;
}

std::string WithoutColumn(const std::string& message) {
    if (message.rfind("at column ", 0) != 0) return message;
    const size_t colon = message.find(": ");
    return colon == std::string::npos ? message : message.substr(colon + 2);
}

class HookCompiler {
public:
    HookCompiler(const StageSpec& stage, const std::string& dir, std::vector<Diagnostic>* found)
        : stage_(stage), dir_(dir), found_(found), check_(stage.with, Prefix(), found) {}

    bool failed() const { return check_.failed() || file_errors_; }

    // An inline template option.
    std::optional<Template> Inline(const json& v, const char* key) {
        const json* text = check_.String(v, "", key);
        if (!text) return std::nullopt;
        auto t = Template::Compile(text->get<std::string>());
        if (!t.ok()) {
            check_.Error(std::string("/") + key, t.status().message());
            return std::nullopt;
        }
        return std::move(t).value();
    }

    // A template file option: errors inside the file name the file, line and column.
    std::optional<Template> File(const json& v, const char* key) {
        std::optional<std::string> text = ReadOption(v, key);
        if (!text) return std::nullopt;
        size_t offset = 0;
        auto t = Template::CompileWithOffset(*text, &offset);
        if (!t.ok()) {
            FileError(LocationIn(path_, *text, offset), key, WithoutColumn(t.status().message()));
            return std::nullopt;
        }
        return std::move(t).value();
    }

    // The schema file's JSON text.
    std::optional<std::string> Schema(const json& v) {
        std::optional<std::string> text = ReadOption(v, "schema");
        if (!text) return std::nullopt;
        try {
            return DumpJson(json::parse(*text));
        } catch (const json::parse_error& e) {
            const size_t offset = e.byte > 0 ? e.byte - 1 : 0;
            FileError(LocationIn(path_, *text, offset), "schema",
                      fmt::format("not valid JSON: {}", e.what()));
            return std::nullopt;
        }
    }

    WithChecker& check() { return check_; }

private:
    std::string Prefix() const { return fmt::format("stage '{}': ", stage_.name); }

    std::optional<std::string> ReadOption(const json& v, const char* key) {
        const json* name = check_.String(v, "", key);
        if (!name) return std::nullopt;
        path_ = Resolve(dir_, name->get<std::string>());
        auto text = FileSystem::Default()->ReadFile(path_);
        if (!text.ok()) {
            check_.Error(std::string("/") + key,
                         fmt::format("cannot read '{}': {}", path_, text.status().message()));
            return std::nullopt;
        }
        return std::move(text).value();
    }

    void FileError(SourceLocation where, const char* key, const std::string& message) {
        file_errors_ = true;
        found_->push_back({std::move(where), fmt::format("{}{}: {}", Prefix(), key, message)});
    }

    const StageSpec& stage_;
    const std::string& dir_;
    std::vector<Diagnostic>* found_;
    WithChecker check_;
    std::string path_;
    bool file_errors_ = false;
};

void CompileSampling(WithChecker& check, const json& v, Overrides* o) {
    if (const json* n = check.Count(v, "", "max_tokens")) {
        if (n->get<int64_t>() < 1) {
            check.Error("/max_tokens", "expected at least 1");
        } else {
            o->max_tokens = n->get<int>();
        }
    }
    if (const json* n = check.Number(v, "", "temperature")) {
        if (n->get<double>() < 0) {
            check.Error("/temperature", "expected a number >= 0");
        } else {
            o->temperature = n->get<float>();
        }
    }
    if (const json* n = check.Number(v, "", "top_p")) {
        if (!(n->get<double>() > 0 && n->get<double>() <= 1)) {
            check.Error("/top_p", "expected a number in (0, 1]");
        } else {
            o->top_p = n->get<float>();
        }
    }
    if (const json* n = check.Count(v, "", "top_k")) o->top_k = n->get<int>();
    if (const json* n = check.Count(v, "", "seed", UINT32_MAX)) o->seed = n->get<uint32_t>();
    if (auto it = v.find("stop"); it != v.end()) {
        std::vector<std::string> stop;
        if (check.Strings(*it, "/stop", &stop)) o->stop = std::move(stop);
    }
}

Result<LlmRequest> MakeRequest(const Compiled& c, const Event& event) {
    LlmRequest r;
    if (c.prompt) {
        const json scope = EventScope(event);
        if (c.system) r.messages.push_back({"system", c.system->Render(scope)});
        r.messages.push_back({"user", c.prompt->Render(scope)});
    } else {
        auto parsed = llm::ParseLlmRequest(std::string_view(event.data));
        if (!parsed.ok()) return parsed.status().WithContext(fmt::format("stage '{}'", c.stage));
        r = std::move(parsed).value();
        const bool has_system = !r.messages.empty() && r.messages.front().role == "system";
        if (c.system && !r.messages.empty() && !has_system) {
            r.messages.insert(r.messages.begin(), {"system", c.system->Render(EventScope(event))});
        }
    }
    c.overrides.ApplyTo(&r);
    r.id = event.id;
    return r;
}

Result<std::string> MakeOutput(const Compiled& c, const Event& in, const LlmResult& result) {
    std::optional<json> data = EventDataJson(in);
    if (!data) {
        return InvalidArgumentError(
            fmt::format("stage '{}': the data of event '{}' is not JSON; cannot add '{}'", c.stage,
                        in.id, c.output));
    }
    if (data->is_null()) *data = json::object();
    if (!data->is_object()) {
        return InvalidArgumentError(
            fmt::format("stage '{}': the data of event '{}' is not a JSON object; cannot add '{}'",
                        c.stage, in.id, c.output));
    }
    if (c.has_schema) {
        json value = json::parse(result.text, nullptr, false);
        if (value.is_discarded()) {
            return InvalidArgumentError(fmt::format(
                "stage '{}': the completion is not valid JSON under the schema (finish reason "
                "'{}'): {}",
                c.stage, result.finish_reason,
                ToValidUtf8(std::string_view(result.text).substr(0, 200))));
        }
        (*data)[c.output] = std::move(value);
    } else {
        (*data)[c.output] = ToValidUtf8(result.text);
    }
    return DumpJson(*data);
}

}  // namespace

Result<LlmHooks> MakeLlmHooks(const StageSpec& stage, const std::string& pipeline_dir,
                              std::vector<Diagnostic>* diagnostics) {
    std::vector<Diagnostic> found;
    HookCompiler compiler(stage, pipeline_dir, &found);
    WithChecker& check = compiler.check();
    const json& v = stage.with.value;
    auto c = std::make_shared<Compiled>();
    c->stage = stage.name;
    std::string output_type;
    if (!v.is_object()) {
        check.Error("", "expected a mapping with model, prompt, ...");
    } else {
        check.CheckKeys(
            v, "",
            {"model", "system", "system_file", "prompt", "prompt_text", "schema", "max_tokens",
             "temperature", "top_p", "top_k", "seed", "stop", "output", "chunks", "type"});
        check.String(v, "", "model");
        check.String(v, "", "chunks");
        if (v.contains("system") && v.contains("system_file")) {
            check.Error("/system_file", "give 'system' or 'system_file', not both");
        }
        if (v.contains("prompt") && v.contains("prompt_text")) {
            check.Error("/prompt_text", "give 'prompt' or 'prompt_text', not both");
        }
        c->system = v.contains("system_file") ? compiler.File(v, "system_file")
                                              : compiler.Inline(v, "system");
        c->prompt =
            v.contains("prompt") ? compiler.File(v, "prompt") : compiler.Inline(v, "prompt_text");
        if (v.contains("schema")) {
            c->overrides.json_schema = compiler.Schema(v);
            c->has_schema = true;
        }
        CompileSampling(check, v, &c->overrides);
        if (const json* o = check.String(v, "", "output")) {
            c->output = o->get<std::string>();
            if (c->output.empty()) check.Error("/output", "expected a field name");
        }
        if (const json* t = check.String(v, "", "type")) output_type = t->get<std::string>();
    }
    if (diagnostics) diagnostics->insert(diagnostics->end(), found.begin(), found.end());
    if (compiler.failed()) return DiagnosticsStatus(found);

    LlmHooks hooks;
    hooks.output_type = std::move(output_type);
    hooks.make_request = [c](const Event& event) { return MakeRequest(*c, event); };
    if (!c->output.empty()) {
        hooks.make_output = [c](const Event& in, const LlmResult& result, std::string_view) {
            return MakeOutput(*c, in, result);
        };
    }
    return hooks;
}

}  // namespace eventloom::pipeline
