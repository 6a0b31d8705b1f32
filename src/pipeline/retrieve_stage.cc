#include "pipeline/retrieve_stage.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "pipeline/expr/scope.h"
#include "pipeline/expr/templates.h"
#include "pipeline/expr/with_checker.h"

namespace eventloom::pipeline {
namespace {

using expr_internal::WithChecker;
using nlohmann::json;

struct Filter {
    std::string field;
    Template value;
};

struct RetrieveOptions {
    std::string stage;
    std::string index;
    std::vector<std::string> emits;
    Template query;
    size_t k = 4;
    size_t candidates = 50;
    rag::SearchMode mode = rag::SearchMode::kHybrid;
    std::vector<Filter> filters;
    DataPath into;
};

json HitsJson(const rag::SearchResult& result, std::string* text) {
    json hits = json::array();
    for (const rag::SearchHit& hit : result.hits) {
        json metadata = json::object();
        for (const auto& [key, value] : hit.metadata) metadata[key] = value;
        hits.push_back({{"doc", hit.doc_id},
                        {"chunk", hit.chunk_index},
                        {"text", hit.text},
                        {"score", hit.score},
                        {"metadata", std::move(metadata)}});
        if (!text->empty()) *text += "\n\n";
        *text += hit.text;
    }
    return hits;
}

}  // namespace

Result<StageHandler> MakeRetrieveHandler(const StageSpec& stage, const IndexSpec& index,
                                         std::function<RetrieveTarget()> target,
                                         std::vector<Diagnostic>* diagnostics) {
    std::vector<Diagnostic> found;
    WithChecker check(stage.with, fmt::format("stage '{}': ", stage.name), &found);
    const json& v = stage.with.value;
    auto finish = [&]() -> Status {
        if (diagnostics) diagnostics->insert(diagnostics->end(), found.begin(), found.end());
        return DiagnosticsStatus(found);
    };
    if (!v.is_object()) {
        check.Error("", "expected a mapping with index, query, k, mode, filters, into");
        return finish();
    }
    check.CheckKeys(v, "", {"index", "query", "k", "mode", "candidates", "filters", "into"});
    RetrieveOptions o;
    o.stage = stage.name;
    o.index = index.name;
    o.emits = stage.emits;
    if (const json* q = check.String(v, "", "query")) {
        auto t = Template::Compile(q->get<std::string>());
        if (t.ok()) {
            o.query = std::move(t).value();
        } else {
            check.Error("/query", t.status().message());
        }
    } else if (!v.contains("query")) {
        check.Error("",
                    "missing 'query' (a template over the event, e.g. \"{{ data.question }}\")");
    }
    if (const json* k = check.Count(v, "", "k", 100)) {
        o.k = k->get<size_t>();
        if (o.k == 0) check.Error("/k", "expected 1 to 100");
    }
    if (const json* c = check.Count(v, "", "candidates", 10'000)) {
        o.candidates = c->get<size_t>();
    }
    if (o.candidates < o.k) {
        check.Error(v.contains("candidates") ? "/candidates" : "/k",
                    fmt::format("candidates ({}) must be at least k ({})", o.candidates, o.k));
    }
    if (const json* m = check.String(v, "", "mode")) {
        if (*m == "hybrid") {
            o.mode = rag::SearchMode::kHybrid;
        } else if (*m == "vector") {
            o.mode = rag::SearchMode::kVector;
        } else if (*m == "keyword") {
            o.mode = rag::SearchMode::kKeyword;
        } else {
            check.Error("/mode", fmt::format("unknown mode '{}'; expected hybrid, vector or "
                                             "keyword",
                                             m->get<std::string>()));
        }
    }
    if (auto f = v.find("filters"); f != v.end()) {
        if (!f->is_object()) {
            check.Error("/filters", "expected a mapping of metadata fields to templates");
        } else {
            for (const auto& [field, value] : f->items()) {
                const std::string at = "/filters/" + field;
                if (std::find(index.filter_fields.begin(), index.filter_fields.end(), field) ==
                    index.filter_fields.end()) {
                    std::string have;
                    for (const std::string& ff : index.filter_fields) {
                        have += (have.empty() ? "" : ", ") + ff;
                    }
                    check.Error(at, fmt::format("index '{}' cannot filter on '{}' (its "
                                                "filter_fields: {})",
                                                index.name, field, have.empty() ? "none" : have));
                    continue;
                }
                if (!value.is_string()) {
                    check.Error(at, "expected a template (a string)");
                    continue;
                }
                auto t = Template::Compile(value.get<std::string>());
                if (!t.ok()) {
                    check.Error(at, t.status().message());
                    continue;
                }
                o.filters.push_back({field, std::move(t).value()});
            }
        }
    }
    std::string into = "context";
    if (const json* i = check.String(v, "", "into")) into = i->get<std::string>();
    if (auto path = ParseDataPath(into); path.ok() && !path->segments.empty()) {
        o.into = std::move(path).value();
    } else {
        check.Error("/into", path.ok() ? "expected a path in the data" : path.status().message());
    }
    if (stage.emits.empty()) check.Error("", "a retrieve stage needs 'emits'");
    if (check.failed()) return finish();

    return StageHandler([o = std::move(o), target = std::move(target)](StageContext& ctx) {
        const Event& in = ctx.event();
        std::optional<json> data = EventDataJson(in);
        if (!data || !data->is_object()) {
            return InvalidArgumentError(fmt::format(
                "stage '{}': the data of event '{}' is not a JSON object (the retrieve stage "
                "adds its result to it)",
                o.stage, in.id));
        }
        const RetrieveTarget t = target ? target() : RetrieveTarget{};
        if (t.index == nullptr || t.embedder == nullptr) {
            return UnavailableError(
                fmt::format("stage '{}': index '{}' is not open", o.stage, o.index));
        }
        const json scope = EventScope(in);
        rag::SearchQuery query;
        query.text = o.query.Render(scope);
        query.mode = o.mode;
        query.k = o.k;
        query.candidates = o.candidates;
        for (const Filter& f : o.filters) {
            std::string value = f.value.Render(scope);
            if (!value.empty()) query.filters.emplace_back(f.field, std::move(value));
        }
        rag::SearchResult result;
        if (query.text.find_first_not_of(" \t\r\n") != std::string::npos) {
            if (query.mode != rag::SearchMode::kKeyword) {
                const std::string texts[] = {query.text};
                auto vectors = t.embedder->Embed(texts);
                if (!vectors.ok()) {
                    return vectors.status().WithContext(
                        fmt::format("stage '{}': embedding the query", o.stage));
                }
                query.vector = std::move((*vectors)[0]);
            }
            auto found = t.index->Search(query);
            if (!found.ok()) {
                return found.status().WithContext(
                    fmt::format("stage '{}': searching index '{}'", o.stage, o.index));
            }
            result = std::move(found).value();
        } else {
            result.offsets = t.index->applied();
        }
        json offsets = json::object();
        for (const auto& [partition, offset] : result.offsets) {
            offsets[std::to_string(partition)] = offset;
        }
        std::string text;
        json hits = HitsJson(result, &text);
        json out_value = {{"index", o.index},
                          {"query", query.text},
                          {"offsets", std::move(offsets)},
                          {"hits", std::move(hits)},
                          {"text", std::move(text)}};
        if (!SetAt(&*data, o.into, std::move(out_value))) {
            return InvalidArgumentError(fmt::format(
                "stage '{}': cannot set '{}' in the data of event '{}' (a step is not an object)",
                o.stage, o.into.ToString(), in.id));
        }
        Event out = ctx.Derive(in.type);
        out.subject = in.subject;
        out.datacontenttype = "application/json";
        out.data = DumpJson(*data);
        out.has_data = true;
        for (size_t i = 0; i + 1 < o.emits.size(); ++i) ctx.Emit(o.emits[i], out);
        ctx.Emit(o.emits.back(), std::move(out));
        return Status::Ok();
    });
}

}  // namespace eventloom::pipeline
