// The transform, route and emit stage handlers (stages.h).
#include "pipeline/expr/stages.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "eventloom/log.h"
#include "pipeline/expr/conditions.h"
#include "pipeline/expr/scope.h"
#include "pipeline/expr/templates.h"
#include "pipeline/expr/transform.h"
#include "pipeline/expr/with_checker.h"

namespace eventloom::pipeline {

namespace {

using expr_internal::WithChecker;
using nlohmann::json;

constexpr std::string_view kJsonContentType = "application/json";

std::string StagePrefix(const StageSpec& stage) { return fmt::format("stage '{}': ", stage.name); }

// Hands the diagnostics found to the caller and turns them into the Status.
Status Finish(const std::vector<Diagnostic>& found, std::vector<Diagnostic>* diagnostics) {
    if (diagnostics) diagnostics->insert(diagnostics->end(), found.begin(), found.end());
    return DiagnosticsStatus(found);
}

Status NotJson(const std::string& stage, const Event& in) {
    return InvalidArgumentError(
        fmt::format("stage '{}': the data of event '{}' is not JSON (content type '{}')", stage,
                    in.id, in.datacontenttype));
}

void EmitJson(StageContext& ctx, const std::vector<std::string>& topics, Event out,
              const json& data) {
    out.datacontenttype = std::string(kJsonContentType);
    out.data = DumpJson(data);
    out.has_data = true;
    for (size_t i = 0; i + 1 < topics.size(); ++i) ctx.Emit(topics[i], out);
    if (!topics.empty()) ctx.Emit(topics.back(), std::move(out));
}

struct Route {
    Condition when;
    std::string to;
};

}  // namespace

Result<StageHandler> MakeTransformHandler(const StageSpec& stage,
                                          std::vector<Diagnostic>* diagnostics) {
    std::vector<Diagnostic> found;
    auto transform = CompileTransform(stage.with, &found);
    for (Diagnostic& d : found) d.message = StagePrefix(stage) + d.message;
    if (!transform.ok()) return Finish(found, diagnostics);

    return StageHandler([name = stage.name, emits = stage.emits,
                         transform = std::move(transform).value()](StageContext& ctx) {
        const Event& in = ctx.event();
        if (!EventDataJson(in)) return NotJson(name, in);
        const json scope = EventScope(in);
        auto data = transform.Apply(scope);
        if (!data.ok()) return data.status().WithContext(fmt::format("stage '{}'", name));
        const std::string& type = transform.type().empty() ? in.type : transform.type();
        EmitJson(ctx, emits, ctx.Derive(type), *data);
        return Status::Ok();
    });
}

Result<StageHandler> MakeRouteHandler(const StageSpec& stage,
                                      std::vector<Diagnostic>* diagnostics) {
    std::vector<Diagnostic> found;
    WithChecker check(stage.with, StagePrefix(stage), &found);
    const json& v = stage.with.value;
    std::vector<Route> routes;
    std::string fallback;
    bool all = false;
    if (!v.is_object()) {
        check.Error("", "expected a mapping with routes, default, mode");
        return Finish(found, diagnostics);
    }
    check.CheckKeys(v, "", {"routes", "default", "mode"});
    if (const json* d = check.String(v, "", "default")) {
        fallback = d->get<std::string>();
        if (Status s = ValidateTopicName(fallback); !s.ok()) check.Error("/default", s.message());
    }
    if (const json* m = check.String(v, "", "mode")) {
        if (*m == "all") {
            all = true;
        } else if (*m != "first") {
            check.Error("/mode", fmt::format("unknown mode '{}'; expected first or all",
                                             m->get<std::string>()));
        }
    }
    auto list = v.find("routes");
    if (list == v.end() || !list->is_array() || (list->empty() && fallback.empty())) {
        check.Error(list == v.end() ? "" : "/routes",
                    list == v.end() ? "missing 'routes'" : "expected a non-empty list of routes");
    } else {
        for (size_t i = 0; i < list->size(); ++i) {
            const json& r = (*list)[i];
            const std::string at = "/routes/" + std::to_string(i);
            if (!r.is_object()) {
                check.Error(at, "expected a mapping with when and to");
                continue;
            }
            check.CheckKeys(r, at, {"when", "to"});
            const json* when = check.String(r, at, "when");
            const json* to = check.String(r, at, "to");
            if (!r.contains("when")) check.Error(at, "missing 'when'");
            if (!r.contains("to")) check.Error(at, "missing 'to'");
            if (to) {
                if (Status s = ValidateTopicName(to->get_ref<const std::string&>()); !s.ok()) {
                    check.Error(at + "/to", s.message());
                    continue;
                }
            }
            if (!when || !to) continue;
            auto condition = Condition::Compile(when->get<std::string>());
            if (!condition.ok()) {
                check.Error(at + "/when", condition.status().message());
                continue;
            }
            routes.push_back({std::move(condition).value(), to->get<std::string>()});
        }
    }
    if (check.failed()) return Finish(found, diagnostics);

    return StageHandler([name = stage.name, routes = std::move(routes), fallback,
                         all](StageContext& ctx) {
        const Event& in = ctx.event();
        const json scope = EventScope(in);
        std::vector<std::string> targets;
        for (const Route& r : routes) {
            if (!r.when.Evaluate(scope)) continue;
            if (std::find(targets.begin(), targets.end(), r.to) == targets.end()) {
                targets.push_back(r.to);
            }
            if (!all) break;
        }
        if (targets.empty() && !fallback.empty()) targets.push_back(fallback);
        if (targets.empty()) {
            return InvalidArgumentError(fmt::format(
                "stage '{}': no route matched event '{}' and there is no default", name, in.id));
        }

        Event out = ctx.Derive(in.type);
        out.subject = in.subject;
        out.datacontenttype = in.datacontenttype;
        out.dataschema = in.dataschema;
        out.data = in.data;
        out.has_data = in.has_data;
        for (size_t i = 0; i + 1 < targets.size(); ++i) ctx.Emit(targets[i], out);
        ctx.Emit(targets.back(), std::move(out));
        return Status::Ok();
    });
}

Result<StageHandler> MakeEmitHandler(const StageSpec& stage, std::vector<Diagnostic>* diagnostics) {
    std::vector<Diagnostic> found;
    WithChecker check(stage.with, StagePrefix(stage), &found);
    const json& v = stage.with.value;
    if (!v.is_object()) {
        check.Error("", "expected a mapping with type, data, subject");
        return Finish(found, diagnostics);
    }
    check.CheckKeys(v, "", {"type", "data", "subject"});
    std::string type;
    if (const json* t = check.String(v, "", "type")) {
        type = t->get<std::string>();
        if (type.empty()) check.Error("/type", "expected an event type");
    } else if (!v.contains("type")) {
        check.Error("", "missing 'type'");
    }
    std::optional<JsonTemplate> data;
    if (auto it = v.find("data"); it != v.end()) {
        std::string bad_pointer;
        auto t = JsonTemplate::Compile(*it, &bad_pointer);
        if (t.ok()) {
            data = std::move(t).value();
        } else {
            const std::string& m = t.status().message();
            check.Error("/data" + bad_pointer, m.substr(m.find(": ") + 2));
        }
    }
    std::optional<Template> subject;
    if (const json* s = check.String(v, "", "subject")) {
        auto t = Template::Compile(s->get<std::string>());
        if (t.ok()) {
            subject = std::move(t).value();
        } else {
            check.Error("/subject", t.status().message());
        }
    }
    if (check.failed()) return Finish(found, diagnostics);

    return StageHandler([name = stage.name, emits = stage.emits, type, data = std::move(data),
                         subject = std::move(subject)](StageContext& ctx) {
        const Event& in = ctx.event();
        // Without `with.data` the output is the input's data, which must then be JSON.
        if (!data && !EventDataJson(in)) return NotJson(name, in);
        const json scope = EventScope(in);
        Event out = ctx.Derive(type);
        if (subject) out.subject = subject->Render(scope);
        EmitJson(ctx, emits, std::move(out), data ? data->Render(scope) : scope["data"]);
        return Status::Ok();
    });
}

std::vector<std::string> RouteTargets(const StageSpec& stage) {
    std::vector<std::string> targets;
    auto add = [&](const json& topic) {
        if (!topic.is_string() || topic.get_ref<const std::string&>().empty()) return;
        const std::string name = topic.get<std::string>();
        if (std::find(targets.begin(), targets.end(), name) == targets.end()) {
            targets.push_back(name);
        }
    };
    const json& v = stage.with.value;
    if (!v.is_object()) return targets;
    if (auto routes = v.find("routes"); routes != v.end() && routes->is_array()) {
        for (const json& r : *routes) {
            if (r.is_object() && r.contains("to")) add(r["to"]);
        }
    }
    if (auto d = v.find("default"); d != v.end()) add(*d);
    return targets;
}

}  // namespace eventloom::pipeline
