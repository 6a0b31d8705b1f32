// The pipeline file loader: YAML -> PipelineSpec, checking structure, values and the references
// between sections (stages' models, the gateway's topics), with every problem reported at its
// line and column (pipeline_spec.h, docs/pipelines.md).
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "common/file.h"
#include "pipeline/config/pipeline_spec.h"
#include "pipeline/config/yaml_reader.h"

namespace eventloom::pipeline {

namespace {

using internal::MapReader;
using internal::YamlReader;

const std::vector<std::string> kTopKeys = {"version", "name",    "broker",  "topics",
                                           "models",  "indexes", "gateway", "stages"};
const std::vector<std::string> kStageKeys = {"name",        "consumes",   "uses",        "with",
                                             "emits",       "delivery",   "concurrency", "retry",
                                             "dead_letter", "rate_limit", "timeout"};
const std::vector<std::string> kKindNames = {"transform", "route",  "llm",     "http",
                                             "emit",      "notify", "retrieve"};
constexpr StageKind kKinds[] = {StageKind::kTransform, StageKind::kRoute, StageKind::kLlm,
                                StageKind::kHttp,      StageKind::kEmit,  StageKind::kNotify,
                                StageKind::kRetrieve};

std::string Join(const std::vector<std::string>& words) {
    std::string out;
    for (const std::string& w : words) out += (out.empty() ? "" : ", ") + w;
    return out;
}

// Pipeline and stage names follow the topic-name rules: they name topics
// ("<pipeline>.results", "<stage>.dead-letter").
Status ValidateName(std::string_view name) {
    Status status = ValidateTopicName(name);
    if (status.ok()) return status;
    std::string message = status.message();
    if (message.rfind("topic name", 0) == 0) message = "name" + message.substr(10);
    return InvalidArgumentError(message);
}

class PipelineLoader {
public:
    PipelineLoader(const std::string& file, std::string dir, std::vector<Diagnostic>* out)
        : reader_(file, out), dir_(std::move(dir)) {}

    void Load(const YAML::Node& root, PipelineSpec& spec);

private:
    void Broker(const YAML::Node& node, PipelineSpec& spec);
    void Topics(const YAML::Node& node, PipelineSpec& spec);
    void Models(const YAML::Node& node, PipelineSpec& spec);
    void Indexes(const YAML::Node& node, PipelineSpec& spec);
    void RetrieveIndex(const StageSpec& stage, const PipelineSpec& spec);
    void Stages(const YAML::Node& node, PipelineSpec& spec);
    void Stage(const YAML::Node& node, size_t index, PipelineSpec& spec);
    void StageKindRules(MapReader& m, StageSpec& stage, const PipelineSpec& spec);
    void LlmModel(const StageSpec& stage, const PipelineSpec& spec);
    void Retry(MapReader& parent, RetryPolicy& retry);
    void Limits(MapReader& parent, RateLimits& limits, bool tokens);
    void Gateway(const YAML::Node& node, PipelineSpec& spec);
    void GatewayRoutes(MapReader& m, GatewaySpec& gateway);
    void ApiKeys(MapReader& m, GatewaySpec& gateway);
    std::vector<std::string> Topics(MapReader& m, std::string_view key, bool consumed);
    // The entries of a mapping of named things (topics:, models:), each name checked once.
    struct NamedEntry {
        std::string name;
        YAML::Node key;
        YAML::Node value;
    };
    std::vector<NamedEntry> Named(const YAML::Node& node, std::string_view section);

    YamlReader reader_;
    std::string dir_;
    std::set<std::string> consumed_;  // topics some stage consumes
};

void PipelineLoader::Load(const YAML::Node& root, PipelineSpec& spec) {
    MapReader m(reader_, root, "", "", kTopKeys);
    if (!m.ok()) return;

    if (std::optional<YAML::Node> v = m.Require("version")) {
        std::optional<int64_t> version = reader_.Int(*v, "version", INT32_MIN, INT32_MAX);
        if (version && *version != 1) {
            reader_.Error(*v, fmt::format("version: unsupported version {}; expected 1", *version));
        }
    }
    if (std::optional<YAML::Node> v = m.Require("name")) {
        if (auto name = reader_.Checked(*v, "name", ValidateName)) spec.name = *name;
    }
    if (std::optional<YAML::Node> v = m.Value("broker")) Broker(*v, spec);
    if (std::optional<YAML::Node> v = m.Get("topics"); v && !v->IsNull()) Topics(*v, spec);
    if (std::optional<YAML::Node> v = m.Get("models"); v && !v->IsNull()) Models(*v, spec);
    if (std::optional<YAML::Node> v = m.Get("indexes"); v && !v->IsNull()) Indexes(*v, spec);
    if (std::optional<YAML::Node> v = m.Require("stages")) Stages(*v, spec);
    // The gateway last: its topics must be consumed by stages.
    if (std::optional<YAML::Node> v = m.Get("gateway")) {
        spec.gateway.enabled = true;
        spec.gateway.where = m.ValueLoc("gateway");
        if (!v->IsNull()) Gateway(*v, spec);
    }
}

void PipelineLoader::Broker(const YAML::Node& node, PipelineSpec& spec) {
    MapReader m(reader_, node, "", "broker.", {"dir", "url"});
    if (!m.ok()) return;
    if (m.Get("dir") && m.Get("url")) {
        reader_.Error(m.where(), "broker: give either 'dir' (the embedded log) or 'url', not both");
    }
    m.ReadString("dir", spec.broker_dir);
    if (std::optional<YAML::Node> v = m.Value("url")) {
        std::optional<std::string> url = reader_.String(*v, "broker.url");
        if (url && url->rfind("nats://", 0) != 0) {
            reader_.Error(*v, fmt::format("broker.url: expected nats://HOST:PORT, got '{}'", *url));
        } else if (url) {
            spec.broker_url = *url;
        }
    }
    if (spec.broker_dir.empty()) reader_.Error(m.ValueLoc("dir"), "broker.dir: is empty");
}

std::vector<PipelineLoader::NamedEntry> PipelineLoader::Named(const YAML::Node& node,
                                                              std::string_view section) {
    std::vector<NamedEntry> out;
    if (!node.IsMap()) {
        reader_.Error(node, fmt::format("{}: expected a mapping of names to settings", section));
        return out;
    }
    std::map<std::string, int> lines;
    for (const auto& kv : node) {
        const std::string name = kv.first.IsScalar() ? kv.first.Scalar() : "";
        const SourceLocation where = reader_.Loc(kv.first);
        if (auto [it, fresh] = lines.emplace(name, where.line); !fresh) {
            reader_.Error(where, fmt::format("{}: duplicate name '{}' (first defined at line {})",
                                             section, name, it->second));
            continue;
        }
        out.push_back({name, kv.first, kv.second});
    }
    return out;
}

void PipelineLoader::Topics(const YAML::Node& node, PipelineSpec& spec) {
    for (const auto& [name, key, value] : Named(node, "topics")) {
        TopicSpec topic;
        topic.name = name;
        topic.where = reader_.Loc(key);
        const std::string context = fmt::format("topic '{}'", name);
        if (Status s = ValidateTopicName(name); !s.ok()) {
            reader_.Error(key, fmt::format("topics: {}", s.message()));
        }
        if (!value.IsNull()) {
            MapReader m(reader_, value, context, "",
                        {"partitions", "durability", "retention", "retention_bytes"});
            m.ReadInt("partitions", topic.options.partitions, 1, 1024);
            if (std::optional<YAML::Node> v = m.Value("durability")) {
                if (auto text = reader_.String(*v, m.What("durability"))) {
                    Result<Durability> d = ParseDurability(*text);
                    if (d.ok()) {
                        topic.options.durability = *d;
                    } else {
                        reader_.Error(*v, m.What("durability") + ": " + d.status().message());
                    }
                }
            }
            m.ReadDuration("retention", topic.options.retention_age);
            m.ReadByteSize("retention_bytes", topic.options.retention_bytes);
            if (Status s = ValidateTopicOptions(topic.options); !s.ok()) {
                reader_.Error(m.where(), context + ": " + s.message());
            }
        }
        spec.topics.push_back(std::move(topic));
    }
}

void PipelineLoader::Models(const YAML::Node& node, PipelineSpec& spec) {
    for (const auto& [name, key, value] : Named(node, "models")) {
        ModelSpec model;
        model.name = name;
        model.where = reader_.Loc(key);
        const std::string context = fmt::format("model '{}'", name);
        if (name.empty()) reader_.Error(key, "models: a model name is empty");
        // Every backend's keys are accepted whatever the backend, so that switching it (say
        // with backend: ${BACKEND:-llama}) needs no other edit; the others' keys are unused.
        MapReader m(reader_, value, context, "",
                    {"backend", "path", "slots", "context", "threads", "url", "model",
                     "api_key_env", "reply", "token_delay"});
        if (!m.ok()) continue;

        std::string backend = "llama";
        m.ReadString("backend", backend);
        if (backend == "llama") {
            model.backend = ModelBackend::kLlama;
        } else if (backend == "openai") {
            model.backend = ModelBackend::kOpenAi;
        } else if (backend == "echo") {
            model.backend = ModelBackend::kEcho;
        } else {
            reader_.Error(m.ValueLoc("backend"),
                          fmt::format("{}: backend: unknown backend '{}'; expected one of: llama, "
                                      "openai, echo",
                                      context, backend));
        }

        m.ReadInt("slots", model.slots, 1, 256);
        m.ReadInt("context", model.context, 1, 1 << 20);
        m.ReadInt("threads", model.threads, 0, 1024);
        m.ReadString("path", model.path);
        m.ReadString("url", model.url);
        m.ReadString("model", model.remote_model);
        m.ReadEnvName("api_key_env", model.api_key_env);
        m.ReadString("reply", model.reply);
        m.ReadDuration("token_delay", model.token_delay);

        if (backend == "llama" && m.Require("path") && !model.path.empty() &&
            std::filesystem::path(model.path).is_relative()) {
            model.path = (std::filesystem::path(dir_) / model.path).lexically_normal().string();
        }
        if (backend == "openai" && m.Require("url") && !model.url.empty() &&
            model.url.rfind("http://", 0) != 0 && model.url.rfind("https://", 0) != 0) {
            reader_.Error(m.ValueLoc("url"),
                          fmt::format("{}: url: expected http://HOST:PORT/v1 or https://..., got "
                                      "'{}'",
                                      context, model.url));
        }
        spec.models.push_back(std::move(model));
    }
}

void PipelineLoader::Indexes(const YAML::Node& node, PipelineSpec& spec) {
    for (const auto& [name, key, value] : Named(node, "indexes")) {
        IndexSpec index;
        index.name = name;
        index.where = reader_.Loc(key);
        const std::string context = fmt::format("index '{}'", name);
        if (Status s = ValidateName(name); !s.ok()) {
            reader_.Error(key, fmt::format("indexes: {}", s.message()));
        }
        MapReader m(reader_, value, context, "",
                    {"source", "dir", "chunking", "embedder", "dimension", "filter_fields"});
        if (!m.ok()) continue;
        if (std::optional<YAML::Node> v = m.Require("source")) {
            if (auto topic = reader_.Checked(*v, m.What("source"), ValidateTopicName)) {
                index.source = *topic;
                consumed_.insert(*topic);  // by the index's indexer
            }
        }
        m.ReadString("dir", index.dir);
        if (!index.dir.empty() && std::filesystem::path(index.dir).is_relative()) {
            index.dir = (std::filesystem::path(dir_) / index.dir).lexically_normal().string();
        }
        if (std::optional<YAML::Node> v = m.Value("chunking")) {
            MapReader c(reader_, *v, context, "chunking.", {"unit", "size", "overlap"});
            if (c.ok()) {
                if (std::optional<YAML::Node> u = c.Value("unit")) {
                    if (auto unit = reader_.String(*u, c.What("unit"))) {
                        if (*unit == "tokens" || *unit == "characters") {
                            index.chunk_by_tokens = *unit == "tokens";
                        } else {
                            reader_.Error(*u, fmt::format("{}: unknown unit '{}'; expected tokens "
                                                          "or characters",
                                                          c.What("unit"), *unit));
                        }
                    }
                }
                c.ReadInt("size", index.chunk_size, 1, 1 << 20);
                c.ReadInt("overlap", index.chunk_overlap, 0, 1 << 20);
                if (index.chunk_overlap >= index.chunk_size) {
                    reader_.Error(c.where(),
                                  fmt::format("{}: chunking.overlap ({}) must be "
                                              "smaller than chunking.size ({})",
                                              context, index.chunk_overlap, index.chunk_size));
                }
            }
        }
        m.ReadString("embedder", index.embedder);
        if (index.embedder != "hashing") {
            const ModelSpec* model = spec.FindModel(index.embedder);
            std::vector<std::string> names = {"hashing"};
            for (const ModelSpec& mo : spec.models) names.push_back(mo.name);
            if (model == nullptr) {
                std::string message = fmt::format(
                    "{}: unknown embedder '{}'; expected 'hashing' or the name of a llama or "
                    "openai model (have: {})",
                    m.What("embedder"), index.embedder, Join(names));
                if (auto guess = internal::DidYouMean(index.embedder, names)) {
                    message += fmt::format("; did you mean '{}'?", *guess);
                }
                reader_.Error(m.ValueLoc("embedder"), message);
            } else if (model->backend == ModelBackend::kEcho) {
                reader_.Error(m.ValueLoc("embedder"),
                              fmt::format("{}: model '{}' uses the echo backend, which has no "
                                          "embeddings; use 'hashing' or a llama or openai model",
                                          m.What("embedder"), index.embedder));
            }
        }
        m.ReadInt("dimension", index.dimension, 8, 8192);
        if (m.Get("dimension") && index.embedder != "hashing") {
            reader_.Error(m.ValueLoc("dimension"),
                          fmt::format("{}: only the hashing embedder takes a dimension; a "
                                      "model's vectors have the model's",
                                      m.What("dimension")));
        }
        if (std::optional<YAML::Node> v = m.Value("filter_fields")) {
            for (auto& [field, item] : reader_.StringList(*v, m.What("filter_fields"))) {
                if (field.empty()) {
                    reader_.Error(item, m.What("filter_fields") + ": a field name is empty");
                } else {
                    index.filter_fields.push_back(field);
                }
            }
        }
        for (const IndexSpec& other : spec.indexes) {
            if (!index.source.empty() && other.source == index.source) {
                reader_.Error(m.ValueLoc("source"),
                              fmt::format("{}: topic '{}' already feeds index '{}'; declare one "
                                          "index per source topic",
                                          m.What("source"), index.source, other.name));
            }
        }
        spec.indexes.push_back(std::move(index));
    }
}

void PipelineLoader::Stages(const YAML::Node& node, PipelineSpec& spec) {
    if (!node.IsSequence()) {
        reader_.Error(node, "stages: expected a list of stages");
        return;
    }
    if (node.size() == 0) reader_.Error(node, "stages: a pipeline needs at least one stage");

    // Consumed topics first: a stage may name a topic that a later stage consumes.
    for (const YAML::Node& stage : node) {
        if (!stage.IsMap() || !stage["consumes"] || !stage["consumes"].IsScalar()) continue;
        Result<std::string> topic = SubstituteEnv(stage["consumes"].Scalar());
        if (topic.ok()) consumed_.insert(*topic);
    }
    for (size_t i = 0; i < node.size(); ++i) Stage(node[i], i, spec);
}

void PipelineLoader::Stage(const YAML::Node& node, size_t index, PipelineSpec& spec) {
    StageSpec stage;
    stage.where = reader_.Loc(node);
    std::string context = fmt::format("stage #{}", index + 1);
    if (node.IsMap() && node["name"] && node["name"].IsScalar()) {
        context = fmt::format("stage '{}'", node["name"].Scalar());
    }
    MapReader m(reader_, node, context, "", kStageKeys);
    if (!m.ok()) return;

    if (std::optional<YAML::Node> v = m.Require("name")) {
        if (auto name = reader_.Checked(*v, m.What("name"), ValidateName)) {
            stage.name = *name;
            if (const StageSpec* first = spec.FindStage(*name)) {
                reader_.Error(
                    *v, fmt::format("duplicate stage name '{}' (first defined at line {})", *name,
                                    first->where.line));
            }
        }
    }
    if (std::optional<YAML::Node> v = m.Require("consumes")) {
        if (auto topic = reader_.Checked(*v, m.What("consumes"), ValidateTopicName)) {
            stage.consumes = *topic;
        }
    }
    bool kind_known = false;
    if (std::optional<YAML::Node> v = m.Require("uses")) {
        if (auto uses = reader_.String(*v, m.What("uses"))) {
            for (size_t k = 0; k < kKindNames.size(); ++k) {
                if (*uses == kKindNames[k]) {
                    stage.kind = kKinds[k];
                    kind_known = true;
                }
            }
            if (!kind_known) {
                std::string message =
                    fmt::format("{}: unknown stage kind '{}'", m.What("uses"), *uses);
                message += " (expected one of: " + Join(kKindNames) + ")";
                if (auto guess = internal::DidYouMean(*uses, kKindNames)) {
                    message += fmt::format("; did you mean '{}'?", *guess);
                }
                reader_.Error(*v, message);
            }
        }
    }

    if (std::optional<YAML::Node> v = m.Get("with")) {
        stage.with.locations[""] = m.ValueLoc("with");
        if (v->IsMap()) {
            stage.with.value = reader_.ToJson(*v, "", m.What("with"), stage.with);
        } else if (!v->IsNull()) {
            reader_.Error(*v, fmt::format("{}: expected a mapping of the {} stage's options",
                                          m.What("with"), StageKindName(stage.kind)));
        }
    }
    if (std::optional<YAML::Node> v = m.Value("emits")) {
        for (auto& [topic, item] : reader_.StringList(*v, m.What("emits"))) {
            if (Status s = ValidateTopicName(topic); !s.ok()) {
                reader_.Error(item, m.What("emits") + ": " + s.message());
            } else {
                stage.emits.push_back(topic);
            }
        }
    }
    if (std::optional<YAML::Node> v = m.Value("delivery")) {
        if (auto text = reader_.String(*v, m.What("delivery"))) {
            Result<DeliveryMode> mode = ParseDeliveryMode(*text);
            if (mode.ok()) {
                stage.delivery = *mode;
            } else {
                reader_.Error(*v, m.What("delivery") + ": " + mode.status().message());
            }
        }
    }
    m.ReadInt("concurrency", stage.concurrency, 1, 256);
    Retry(m, stage.retry);
    if (std::optional<YAML::Node> v = m.Value("dead_letter")) {
        if (auto topic = reader_.Checked(*v, m.What("dead_letter"), ValidateTopicName)) {
            stage.dead_letter = *topic;
        }
    }
    Limits(m, stage.rate_limits, true);
    m.ReadDuration("timeout", stage.timeout);
    if (kind_known) StageKindRules(m, stage, spec);
    spec.stages.push_back(std::move(stage));
}

void PipelineLoader::StageKindRules(MapReader& m, StageSpec& stage, const PipelineSpec& spec) {
    const std::string_view kind = StageKindName(stage.kind);
    switch (stage.kind) {
        case StageKind::kTransform:
        case StageKind::kLlm:
        case StageKind::kHttp:
        case StageKind::kEmit:
        case StageKind::kRetrieve:
            if (!m.Get("emits")) {
                reader_.Error(m.where(),
                              fmt::format("{}: missing required key 'emits' (the topic a {} "
                                          "stage publishes to)",
                                          m.context(), kind));
            }
            break;
        case StageKind::kRoute: {
            if (m.Get("emits")) {
                reader_.Error(m.ValueLoc("emits"),
                              fmt::format("{}: a route stage publishes to the topics of "
                                          "with.routes and with.default; remove 'emits'",
                                          m.What("emits")));
            }
            // The topics it publishes to, for the pipeline's graph; `with` itself is checked
            // by the route stage's compiler.
            const nlohmann::json& with = stage.with.value;
            if (with.contains("routes") && with["routes"].is_array()) {
                for (const nlohmann::json& route : with["routes"]) {
                    if (route.is_object() && route.contains("to") && route["to"].is_string()) {
                        stage.emits.push_back(route["to"].get<std::string>());
                    }
                }
            }
            if (with.contains("default") && with["default"].is_string()) {
                stage.emits.push_back(with["default"].get<std::string>());
            }
            break;
        }
        case StageKind::kNotify:
            if (m.Get("emits")) {
                reader_.Error(m.ValueLoc("emits"),
                              fmt::format("{}: a notify stage emits nothing (results go to the "
                                          "job store, '{}' and webhooks); remove 'emits'",
                                          m.What("emits"), spec.ResultsTopic()));
            }
            break;
    }
    if (stage.kind == StageKind::kLlm) LlmModel(stage, spec);
    if (stage.kind == StageKind::kRetrieve) RetrieveIndex(stage, spec);
}

void PipelineLoader::RetrieveIndex(const StageSpec& stage, const PipelineSpec& spec) {
    std::vector<std::string> names;
    for (const IndexSpec& index : spec.indexes) names.push_back(index.name);
    const std::string declared =
        names.empty() ? "no indexes are declared under 'indexes:'" : "indexes: " + Join(names);
    const std::string context = fmt::format("stage '{}'", stage.name);
    const nlohmann::json& with = stage.with.value;
    if (!with.contains("index")) {
        reader_.Error(
            stage.with.locations.empty() ? stage.where : stage.with.LocationOf(""),
            fmt::format("{}: with.index is required for a retrieve stage ({})", context, declared));
        return;
    }
    const SourceLocation where = stage.with.LocationOf("/index");
    if (!with["index"].is_string()) {
        reader_.Error(
            where, fmt::format("{}: with.index: expected an index name ({})", context, declared));
        return;
    }
    const std::string index = with["index"].get<std::string>();
    if (spec.FindIndex(index) != nullptr) return;
    std::string message = fmt::format("{}: with.index: unknown index '{}'", context, index);
    if (auto guess = internal::DidYouMean(index, names)) {
        message += fmt::format("; did you mean '{}'?", *guess);
    }
    reader_.Error(where, fmt::format("{} ({})", message, declared));
}

void PipelineLoader::LlmModel(const StageSpec& stage, const PipelineSpec& spec) {
    std::vector<std::string> names;
    for (const ModelSpec& model : spec.models) names.push_back(model.name);
    const std::string declared =
        names.empty() ? "no models are declared under 'models:'" : "models: " + Join(names);
    const std::string context = fmt::format("stage '{}'", stage.name);

    const nlohmann::json& with = stage.with.value;
    if (!with.contains("model")) {
        // Without `with:` at all, the stage itself is the place to fix.
        reader_.Error(
            stage.with.locations.empty() ? stage.where : stage.with.LocationOf(""),
            fmt::format("{}: with.model is required for an llm stage ({})", context, declared));
        return;
    }
    const SourceLocation where = stage.with.LocationOf("/model");
    if (!with["model"].is_string()) {
        reader_.Error(where,
                      fmt::format("{}: with.model: expected a model name ({})", context, declared));
        return;
    }
    const std::string model = with["model"].get<std::string>();
    if (spec.FindModel(model) != nullptr) return;
    std::string message = fmt::format("{}: with.model: unknown model '{}'", context, model);
    if (auto guess = internal::DidYouMean(model, names)) {
        message += fmt::format("; did you mean '{}'?", *guess);
    }
    reader_.Error(where, fmt::format("{} ({})", message, declared));
}

void PipelineLoader::Retry(MapReader& parent, RetryPolicy& retry) {
    std::optional<YAML::Node> v = parent.Value("retry");
    if (!v) return;
    const std::string context = parent.What("retry");
    MapReader m(reader_, *v, parent.context(), parent.prefix() + "retry.",
                {"max_attempts", "initial_delay", "max_delay", "multiplier", "jitter"});
    if (!m.ok()) return;
    const size_t errors = reader_.error_count();
    m.ReadInt("max_attempts", retry.max_attempts, 1, 1000);
    m.ReadDuration("initial_delay", retry.initial_delay);
    m.ReadDuration("max_delay", retry.max_delay);
    m.ReadNumber("multiplier", retry.multiplier, 1.0);
    m.ReadNumber("jitter", retry.jitter, 0.0);
    if (reader_.error_count() != errors) return;
    if (Status s = retry.Validate(); !s.ok()) {
        reader_.Error(m.where(), context + ": " + s.message());
    }
}

void PipelineLoader::Limits(MapReader& parent, RateLimits& limits, bool tokens) {
    std::optional<YAML::Node> v = parent.Value("rate_limit");
    if (!v) return;
    std::vector<std::string> keys = {"requests_per_second", "requests_per_minute"};
    if (tokens) keys.push_back("tokens_per_minute");
    MapReader m(reader_, *v, parent.context(), parent.prefix() + "rate_limit.", keys);
    m.ReadNumber("requests_per_second", limits.requests_per_second, 0);
    m.ReadNumber("requests_per_minute", limits.requests_per_minute, 0);
    if (tokens) m.ReadNumber("tokens_per_minute", limits.tokens_per_minute, 0);
}

std::vector<std::string> PipelineLoader::Topics(MapReader& m, std::string_view key, bool consumed) {
    std::vector<std::string> out;
    std::optional<YAML::Node> v = m.Value(key);
    if (!v) return out;
    for (auto& [topic, item] : reader_.StringList(*v, m.What(key))) {
        if (Status s = ValidateTopicName(topic); !s.ok()) {
            reader_.Error(item, m.What(key) + ": " + s.message());
            continue;
        }
        if (consumed && !consumed_.contains(topic)) {
            reader_.Error(item, fmt::format("{}: topic '{}' is not consumed by any stage",
                                            m.What(key), topic));
        }
        out.push_back(topic);
    }
    return out;
}

void PipelineLoader::Gateway(const YAML::Node& node, PipelineSpec& spec) {
    GatewaySpec& gateway = spec.gateway;
    MapReader m(reader_, node, "", "gateway.",
                {"listen", "api_keys", "max_body", "request_timeout", "max_backlog", "rate_limit",
                 "openai", "events", "jobs"});
    if (!m.ok()) return;

    if (std::optional<YAML::Node> v = m.Value("listen")) {
        if (auto listen = reader_.Checked(*v, m.What("listen"), ValidateListenAddress)) {
            gateway.listen = *listen;
        }
    }
    uint64_t max_body = gateway.max_body_bytes;
    m.ReadByteSize("max_body", max_body);
    gateway.max_body_bytes = static_cast<size_t>(max_body);
    m.ReadDuration("request_timeout", gateway.request_timeout);
    m.ReadInt64("max_backlog", gateway.max_backlog, 0, INT64_MAX);
    // tokens_per_minute weighs OpenAI calls by their estimated tokens (corrected by usage).
    Limits(m, gateway.rate_limits, true);
    GatewayRoutes(m, gateway);
    gateway.event_topics = Topics(m, "events", true);

    if (std::optional<YAML::Node> v = m.Value("jobs")) {
        MapReader jobs(reader_, *v, "", m.prefix() + "jobs.", {"topics", "webhook_secret_env"});
        gateway.job_topics = Topics(jobs, "topics", true);
        jobs.ReadEnvName("webhook_secret_env", gateway.webhook_secret_env);
    }
    ApiKeys(m, gateway);
}

void PipelineLoader::GatewayRoutes(MapReader& m, GatewaySpec& gateway) {
    std::optional<YAML::Node> v = m.Value("openai");
    if (!v) return;
    if (!v->IsSequence()) {
        reader_.Error(*v, "gateway.openai: expected a list of { model: NAME, topic: TOPIC }");
        return;
    }
    for (size_t i = 0; i < v->size(); ++i) {
        const YAML::Node item = (*v)[i];
        MapReader route(reader_, item, "", fmt::format("gateway.openai[{}].", i),
                        {"model", "topic"});
        if (!route.ok()) continue;
        OpenAiRouteSpec spec;
        spec.where = route.where();
        if (std::optional<YAML::Node> model = route.Require("model")) {
            if (auto name = reader_.String(*model, route.What("model"))) spec.model = *name;
            for (const OpenAiRouteSpec& other : gateway.openai) {
                if (other.model == spec.model) {
                    reader_.Error(*model,
                                  fmt::format("{}: model '{}' is already routed (line {})",
                                              route.What("model"), spec.model, other.where.line));
                }
            }
        }
        if (route.Require("topic")) {
            std::vector<std::string> topic = Topics(route, "topic", true);
            if (!topic.empty()) spec.topic = topic.front();
        }
        gateway.openai.push_back(std::move(spec));
    }
}

void PipelineLoader::ApiKeys(MapReader& m, GatewaySpec& gateway) {
    std::optional<YAML::Node> v = m.Value("api_keys");
    if (!v) return;
    if (!v->IsSequence()) {
        reader_.Error(*v,
                      "gateway.api_keys: expected a list of { key_env: VAR, topics: [..], "
                      "models: [..] }");
        return;
    }
    for (size_t i = 0; i < v->size(); ++i) {
        MapReader key(reader_, (*v)[i], "", fmt::format("gateway.api_keys[{}].", i),
                      {"key_env", "topics", "models"});
        if (!key.ok()) continue;
        ApiKeySpec spec;
        spec.where = key.where();
        if (key.Require("key_env")) key.ReadEnvName("key_env", spec.key_env);
        spec.topics = Topics(key, "topics", false);
        if (std::optional<YAML::Node> models = key.Value("models")) {
            for (auto& [name, item] : reader_.StringList(*models, key.What("models"))) {
                bool served = false;
                for (const OpenAiRouteSpec& route : gateway.openai) served |= route.model == name;
                if (!served) {
                    reader_.Error(item, fmt::format("{}: model '{}' is not served by the gateway "
                                                    "(see gateway.openai)",
                                                    key.What("models"), name));
                }
                spec.models.push_back(name);
            }
        }
        gateway.api_keys.push_back(std::move(spec));
    }
}

}  // namespace

// "HOST:PORT", the host a name, an IPv4 address or a bracketed IPv6 address.
Status ValidateListenAddress(std::string_view listen) {
    const size_t colon = listen.rfind(':');
    auto bad = [&](std::string_view why) {
        return InvalidArgumentError(
            fmt::format("expected HOST:PORT (e.g. 127.0.0.1:8080), got '{}': {}", listen, why));
    };
    if (colon == std::string_view::npos) return bad("no ':PORT'");
    const std::string_view host = listen.substr(0, colon);
    const std::string_view port = listen.substr(colon + 1);
    if (host.empty()) return bad("no host (use 0.0.0.0 for every interface)");
    if (host.front() != '[' && host.find(':') != std::string_view::npos) {
        return bad("write an IPv6 address in brackets, e.g. [::1]:8080");
    }
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string_view::npos ||
        std::stoi(std::string(port)) > 65535) {
        return bad("the port must be a number from 0 to 65535");
    }
    return Status::Ok();
}

Result<PipelineSpec> ParsePipeline(std::string_view yaml, const std::string& file,
                                   const std::string& dir, std::vector<Diagnostic>* diagnostics) {
    std::vector<Diagnostic> found;
    PipelineSpec spec;
    spec.file = file;
    spec.dir = dir;
    try {
        const YAML::Node root = YAML::Load(std::string(yaml));
        PipelineLoader(file, dir, &found).Load(root, spec);
    } catch (const YAML::ParserException& e) {
        found.push_back({{file, e.mark.line + 1, e.mark.column + 1}, "YAML syntax: " + e.msg});
    } catch (const YAML::Exception& e) {
        found.push_back({{file, e.mark.line + 1, e.mark.column + 1}, "YAML: " + e.msg});
    } catch (const std::exception& e) {
        found.push_back({{file, 0, 0}, std::string("cannot load: ") + e.what()});
    }
    // In the order of the file, as a reader fixes them; checks run section by section.
    std::stable_sort(found.begin(), found.end(), [](const Diagnostic& a, const Diagnostic& b) {
        return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
    });
    if (diagnostics != nullptr) *diagnostics = found;
    if (!found.empty()) return DiagnosticsStatus(found);
    return spec;
}

Result<PipelineSpec> LoadPipelineFile(const std::string& path,
                                      std::vector<Diagnostic>* diagnostics) {
    Result<std::string> text = FileSystem::Default()->ReadFile(path);
    if (!text.ok()) {
        if (diagnostics != nullptr) {
            *diagnostics = {{{path, 0, 0}, "cannot read the file: " + text.status().message()}};
        }
        return text.status().WithContext("pipeline file " + path);
    }
    std::string dir = std::filesystem::path(path).parent_path().string();
    if (dir.empty()) dir = ".";
    return ParsePipeline(*text, path, dir, diagnostics);
}

}  // namespace eventloom::pipeline
