#include "pipeline/pipeline.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>

#include "common/logging.h"
#include "eventloom/llm.h"
#include "llm/echo/echo_backend.h"
#include "llm/llama/llama_embedder.h"
#include "llm/llm_stage.h"
#include "llm/openai/openai_embedder.h"
#include "pipeline/expr/llm_hooks.h"
#include "pipeline/expr/stages.h"
#include "pipeline/outbound/stages.h"
#include "pipeline/outbound/webhook.h"
#include "pipeline/retrieve_stage.h"
#include "rag/embedder.h"
#include "rag/indexer.h"
#include "rag/live_index.h"
#include "rag/model_embedders.h"

namespace eventloom::pipeline {
namespace {

namespace fs = std::filesystem;

std::string DeadLetterTopic(const StageSpec& stage) {
    return stage.dead_letter.empty() ? stage.name + ".dead-letter" : stage.dead_letter;
}

std::string ChunksTopic(const StageSpec& stage) {
    if (stage.kind != StageKind::kLlm) return {};
    auto it = stage.with.value.find("chunks");
    if (it == stage.with.value.end() || !it->is_string()) return {};
    return it->get<std::string>();
}

StageOptions RunnerOptions(const StageSpec& stage) {
    StageOptions o;
    o.name = stage.name;
    o.consumes = stage.consumes;
    o.delivery = stage.delivery;
    o.workers = stage.concurrency;
    o.max_in_flight = static_cast<size_t>(std::max(stage.concurrency * 4, 16));
    o.retry = stage.retry;
    o.timeout = stage.timeout;
    o.dead_letter_topic = DeadLetterTopic(stage);
    o.rate_limits = stage.rate_limits;
    return o;
}

// The job-failure stage's name for a dead-letter topic.
std::string JobFailureStageName(const std::string& dead_letter_topic) {
    return "job-failure." + dead_letter_topic;
}

constexpr std::string_view kJobFailureDeadLetter = "job-failure.dead-letter";

// Opens a model once, for every stage that uses it.
class SharedModel {
public:
    SharedModel(ModelSpec spec, std::string pipeline_dir)
        : spec_(std::move(spec)), dir_(std::move(pipeline_dir)) {}

    Result<std::shared_ptr<LlmBackend>> Get() {
        std::lock_guard<std::mutex> lock(mu_);
        if (backend_) return backend_;
        EVENTLOOM_ASSIGN_OR_RETURN(backend_, OpenBackend());
        return backend_;
    }
    const ModelSpec& spec() const { return spec_; }

private:
    Result<std::shared_ptr<LlmBackend>> OpenBackend() {
        const std::string where = spec_.where.ToString();
        switch (spec_.backend) {
            case ModelBackend::kLlama: {
                if (!fs::exists(spec_.path)) {
                    return Status(StatusCode::kFailedPrecondition,
                                  fmt::format("{}: model '{}': no such file '{}' (write the test "
                                              "model with `eventloom model make-test --out "
                                              "FILE`, or set the path to a GGUF file)",
                                              where, spec_.name, spec_.path));
                }
                LlamaOptions o;
                o.model_path = spec_.path;
                o.slots = spec_.slots;
                o.context_per_slot = spec_.context;
                o.threads = spec_.threads;
                auto backend = OpenLlamaBackend(o);
                if (!backend.ok()) {
                    return backend.status().WithContext(
                        fmt::format("{}: model '{}'", where, spec_.name));
                }
                return std::shared_ptr<LlmBackend>(std::move(*backend));
            }
            case ModelBackend::kOpenAi: {
                OpenAiOptions o;
                o.base_url = spec_.url;
                o.model = spec_.remote_model;
                if (!spec_.api_key_env.empty()) o.api_key_env = spec_.api_key_env;
                o.max_concurrent = spec_.slots;
                auto backend = OpenOpenAiBackend(o);
                if (!backend.ok()) {
                    return backend.status().WithContext(
                        fmt::format("{}: model '{}'", where, spec_.name));
                }
                return std::shared_ptr<LlmBackend>(std::move(*backend));
            }
            case ModelBackend::kEcho: {
                llm::EchoOptions o;
                o.model = spec_.name;
                o.slots = spec_.slots;
                if (!spec_.reply.empty()) o.reply = spec_.reply;
                o.token_delay = spec_.token_delay;
                return llm::MakeEchoBackend(std::move(o));
            }
        }
        return InvalidArgumentError("unknown model backend");
    }

    const ModelSpec spec_;
    const std::string dir_;
    std::mutex mu_;
    std::shared_ptr<LlmBackend> backend_;
};

struct RunningStage {
    StageSpec spec;
    std::unique_ptr<StageRunner> runner;  // every kind but llm
    std::unique_ptr<llm::LlmStage> llm;   // llm

    StageStats stats() const {
        if (llm) return llm->stats().stage;
        return runner ? runner->stats() : StageStats{};
    }
};

// A live index: its embedder, the index, and the indexer feeding it from its source topic.
struct RunningIndex {
    IndexSpec spec;
    std::string dir;
    std::unique_ptr<rag::Embedder> embedder;
    std::unique_ptr<rag::LiveIndex> index;
    std::unique_ptr<rag::Indexer> indexer;
};

std::string IndexDeadLetterTopic(const IndexSpec& index) {
    return fmt::format("index.{}.dead-letter", index.name);
}

// The index's embedder: the built-in hashing one, or a model's own (a llama model opened for
// embeddings, apart from any generating context of the same file; an openai model's
// /v1/embeddings).
Result<std::unique_ptr<rag::Embedder>> OpenEmbedder(const IndexSpec& index,
                                                    const PipelineSpec& spec) {
    if (index.embedder == "hashing") {
        rag::HashingEmbedderOptions o;
        o.dimension = index.dimension;
        return rag::MakeHashingEmbedder(o);
    }
    const ModelSpec* model = spec.FindModel(index.embedder);
    if (model == nullptr) {
        return InvalidArgumentError(fmt::format("embedder: unknown model '{}'", index.embedder));
    }
    const std::string context = fmt::format("embedder: model '{}'", model->name);
    Result<std::unique_ptr<llm::TextEmbedder>> embedder =
        InvalidArgumentError(fmt::format("{}: the echo backend has no embeddings", context));
    if (model->backend == ModelBackend::kLlama) {
        llm::LlamaEmbedderOptions o;
        o.model_path = model->path;
        o.threads = model->threads;
        embedder = llm::OpenLlamaEmbedder(o);
    } else if (model->backend == ModelBackend::kOpenAi) {
        llm::OpenAiEmbedderOptions o;
        o.base_url = model->url;
        o.model = model->remote_model;
        if (!model->api_key_env.empty()) o.api_key_env = model->api_key_env;
        embedder = llm::OpenOpenAiEmbedder(o);
    }
    if (!embedder.ok()) return embedder.status().WithContext(context);
    return rag::AdaptEmbedder(std::move(embedder).value());
}

// Compiles one stage's handler (not llm), appending diagnostics.
Result<StageHandler> CompileHandler(const StageSpec& stage, const PipelineContext& context) {
    switch (stage.kind) {
        case StageKind::kTransform:
            return MakeTransformHandler(stage);
        case StageKind::kRoute:
            return MakeRouteHandler(stage);
        case StageKind::kEmit:
            return MakeEmitHandler(stage);
        case StageKind::kHttp:
            return MakeHttpHandler(stage);
        case StageKind::kNotify:
            return MakeNotifyHandler(stage, context);
        case StageKind::kLlm:
        case StageKind::kRetrieve:
            break;
    }
    return InvalidArgumentError("the llm and retrieve stages are built by the pipeline");
}

// Splits an InvalidArgument listing diagnostics back into them (the compile functions report
// through DiagnosticsStatus; each line is one diagnostic, already located).
void AppendStatus(const Status& status, const StageSpec& stage,
                  std::vector<Diagnostic>* diagnostics) {
    if (status.ok()) return;
    size_t start = 0;
    const std::string& text = status.message();
    while (start <= text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        std::string line = text.substr(start, end - start);
        if (!line.empty()) {
            Diagnostic d;
            // Located lines already start with "file:line:col: error: ".
            const size_t mark = line.find(": error: ");
            if (mark != std::string::npos) {
                d.message = line.substr(mark + 9);
                SourceLocation where;
                const std::string place = line.substr(0, mark);
                // file:line:col -> split from the right.
                const size_t c2 = place.rfind(':');
                const size_t c1 = c2 == std::string::npos ? c2 : place.rfind(':', c2 - 1);
                if (c1 != std::string::npos) {
                    where.file = place.substr(0, c1);
                    where.line = std::atoi(place.substr(c1 + 1, c2 - c1 - 1).c_str());
                    where.column = std::atoi(place.substr(c2 + 1).c_str());
                } else {
                    where.file = place;
                }
                d.where = where;
            } else {
                d.where = stage.where;
                d.message = fmt::format("stage '{}': {}", stage.name, line);
            }
            diagnostics->push_back(std::move(d));
        }
        start = end + 1;
    }
}

}  // namespace

class Pipeline::Impl {
public:
    Impl(PipelineSpec spec, PipelineOptions options)
        : spec_(std::move(spec)), options_(std::move(options)) {}

    ~Impl() { Stop(std::chrono::seconds(5)); }

    Status Open() {
        data_dir_ = options_.data_dir.empty() ? spec_.broker_dir : options_.data_dir;
        if (!spec_.broker_url.empty()) {
            // TODO(#8): the NATS JetStream engine.
            return Status(StatusCode::kUnimplemented,
                          fmt::format("broker url '{}': only the embedded broker is available "
                                      "so far; use `broker: {{ dir: PATH }}`",
                                      spec_.broker_url));
        }
        std::error_code ec;
        fs::create_directories(data_dir_, ec);
        if (ec) {
            return Status(
                StatusCode::kUnavailable,
                fmt::format("cannot create the data directory '{}': {}", data_dir_, ec.message()));
        }
        EmbeddedBrokerOptions b;
        b.dir = data_dir_;
        EVENTLOOM_ASSIGN_OR_RETURN(broker_, OpenEmbeddedBroker(b));
        StateStoreOptions s;
        s.path = (fs::path(data_dir_) / "state.db").string();
        s.sync_full = true;  // job records and idempotency keys are acknowledged state
        EVENTLOOM_ASSIGN_OR_RETURN(state_, OpenSqliteStateStore(s));
        jobs_ = std::make_unique<JobStore>(state_.get());
        webhooks_ = std::make_unique<WebhookSender>();

        context_.pipeline_name = spec_.name;
        context_.results_topic = spec_.ResultsTopic();
        context_.jobs = jobs_.get();
        context_.webhooks = webhooks_.get();
        if (!spec_.gateway.webhook_secret_env.empty()) {
            const char* secret = std::getenv(spec_.gateway.webhook_secret_env.c_str());
            if (secret != nullptr && *secret != '\0') {
                context_.job_webhook_secret = secret;
            } else {
                logging::Get("pipeline")
                    ->warn(
                        "{}: gateway.jobs.webhook_secret_env: the variable '{}' is not set: job "
                        "webhooks go out unsigned",
                        spec_.gateway.where.ToString(), spec_.gateway.webhook_secret_env);
            }
        }

        for (const ModelSpec& m : spec_.models) {
            models_[m.name] = std::make_shared<SharedModel>(m, spec_.dir);
        }
        for (const IndexSpec& index : spec_.indexes) EVENTLOOM_RETURN_IF_ERROR(OpenIndex(index));
        std::vector<Diagnostic> diagnostics;
        for (const StageSpec& stage : spec_.stages) {
            EVENTLOOM_RETURN_IF_ERROR(BuildStage(stage, &diagnostics));
        }
        EVENTLOOM_RETURN_IF_ERROR(DiagnosticsStatus(diagnostics));
        // Dead-letter topics feed the job-failure stages.
        std::set<std::string> dead_letters;
        for (const StageSpec& stage : spec_.stages) dead_letters.insert(DeadLetterTopic(stage));
        for (const std::string& topic : dead_letters) {
            StageOptions o;
            o.name = JobFailureStageName(topic);
            o.consumes = topic;
            o.dead_letter_topic = std::string(kJobFailureDeadLetter);
            o.retry.max_attempts = 5;
            auto stage = std::make_unique<RunningStage>();
            stage->spec.name = o.name;
            stage->spec.consumes = topic;
            stage->runner = std::make_unique<StageRunner>(broker_.get(), state_.get(), o,
                                                          MakeJobFailureHandler(context_));
            system_stages_.push_back(std::move(stage));
        }
        // Webhooks go out through a stage of their own, so their retries are durable. Its
        // dead letters do not fail jobs: the job itself is done.
        {
            StageOptions o = WebhookStageOptions(spec_.name);
            auto stage = std::make_unique<RunningStage>();
            stage->spec.name = o.name;
            stage->spec.consumes = o.consumes;
            stage->runner = std::make_unique<StageRunner>(broker_.get(), state_.get(), o,
                                                          MakeWebhookHandler(context_));
            system_stages_.push_back(std::move(stage));
        }
        return Status::Ok();
    }

    Status Start() {
        EVENTLOOM_RETURN_IF_ERROR(CreateTopics());
        if (options_.open_models_at_start) {
            for (auto& [name, model] : models_) {
                if (!UsedModel(name)) continue;
                auto backend = model->Get();
                if (!backend.ok()) return backend.status();
            }
        }
        for (auto& index : indexes_) {
            Status st = index->indexer->Start();
            if (!st.ok()) {
                Stop(std::chrono::seconds(1));
                return st.WithContext(fmt::format("index '{}'", index->spec.name));
            }
            logging::Get("pipeline")
                ->info("index={} started source={} dir={} epoch={}", index->spec.name,
                       index->spec.source, index->dir, index->indexer->epoch());
        }
        for (auto* list : {&stages_, &system_stages_}) {
            for (auto& stage : *list) {
                Status st = stage->llm ? stage->llm->Start() : stage->runner->Start();
                if (!st.ok()) {
                    Stop(std::chrono::seconds(1));
                    return st.WithContext(fmt::format("stage '{}'", stage->spec.name));
                }
                logging::Get("pipeline")
                    ->info("stage={} started topic={}", stage->spec.name, stage->spec.consumes);
            }
        }
        started_ = true;
        return Status::Ok();
    }

    void Stop(std::chrono::milliseconds grace) {
        if (stopped_.exchange(true)) return;
        started_ = false;
        // Entry stages first would be ideal; all stop in parallel-ish order, each releasing
        // what it has not finished back to the log.
        for (auto* list : {&stages_, &system_stages_}) {
            for (auto& stage : *list) {
                if (stage->llm) stage->llm->Stop(grace);
                if (stage->runner) stage->runner->Stop(grace);
            }
        }
        for (auto& index : indexes_) {
            index->indexer->Stop();
            if (Status st = index->index->Close(); !st.ok()) {
                logging::Get("pipeline")
                    ->error("index={} close: {}", index->spec.name, st.ToString());
            }
        }
    }

    Status RebuildIndex(const std::string& name,
                        const std::function<void(int64_t, int64_t)>& progress,
                        std::stop_token stop) {
        if (started_) return FailedPreconditionError("the pipeline is running");
        for (auto& index : indexes_) {
            if (index->spec.name != name) continue;
            EVENTLOOM_RETURN_IF_ERROR(CreateTopic(index->spec.source));
            EVENTLOOM_RETURN_IF_ERROR(CreateTopic(IndexDeadLetterTopic(index->spec)));
            EVENTLOOM_RETURN_IF_ERROR(index->indexer->Reset());
            EVENTLOOM_RETURN_IF_ERROR(index->indexer->CatchUp(progress, stop));
            return index->index->Snapshot();
        }
        return NotFoundError(fmt::format("no index '{}' in {}", name, spec_.file));
    }

    Result<rag::SearchResult> SearchIndex(const std::string& name, rag::SearchQuery query) const {
        const RetrieveTarget t = TargetOf(name);
        if (t.index == nullptr) {
            return NotFoundError(fmt::format("no index '{}' in {}", name, spec_.file));
        }
        if (query.mode != rag::SearchMode::kKeyword && query.vector.empty()) {
            const std::string texts[] = {query.text};
            EVENTLOOM_ASSIGN_OR_RETURN(std::vector<rag::Vector> vectors, t.embedder->Embed(texts));
            query.vector = std::move(vectors[0]);
        }
        return t.index->Search(query);
    }

    std::vector<IndexStatus> Indexes() const {
        std::vector<IndexStatus> out;
        for (const auto& index : indexes_) {
            out.push_back({index->spec.name, index->indexer->stats(), index->index->stats(),
                           index->index->applied()});
        }
        return out;
    }

    Result<ReplyTopics> RepliesFor(const std::string& topic) const {
        for (const auto& stage : stages_) {
            if (stage->spec.consumes != topic || stage->spec.kind != StageKind::kLlm) continue;
            ReplyTopics r;
            r.reply_topic = stage->spec.emits.empty() ? "" : stage->spec.emits.front();
            r.chunks_topic = ChunksTopic(stage->spec);
            return r;
        }
        return Status(StatusCode::kNotFound,
                      fmt::format("no llm stage consumes topic '{}'", topic));
    }

    std::vector<std::string> ChunkTopics() const {
        std::vector<std::string> out;
        for (const auto& stage : stages_) {
            std::string t = ChunksTopic(stage->spec);
            if (!t.empty() && std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
        }
        return out;
    }

    int64_t Backlog(const std::string& topic) const {
        int64_t backlog = 0;
        for (const auto& stage : stages_) {
            if (stage->spec.consumes != topic) continue;
            const StageStats s = stage->stats();
            backlog = std::max(backlog, s.lag + s.in_flight);
        }
        return backlog;
    }

    std::vector<StageStatus> Stages() const {
        std::vector<StageStatus> out;
        for (const auto& stage : stages_) {
            out.push_back(
                {stage->spec.name, std::string(StageKindName(stage->spec.kind)), stage->stats()});
        }
        return out;
    }

    PipelineSpec spec_;
    PipelineOptions options_;
    std::string data_dir_;
    std::unique_ptr<Broker> broker_;
    std::unique_ptr<StateStore> state_;
    std::unique_ptr<JobStore> jobs_;
    std::unique_ptr<WebhookSender> webhooks_;
    PipelineContext context_;
    std::map<std::string, std::shared_ptr<SharedModel>> models_;
    std::vector<std::unique_ptr<RunningStage>> stages_;
    std::vector<std::unique_ptr<RunningStage>> system_stages_;
    std::vector<std::unique_ptr<RunningIndex>> indexes_;
    std::atomic<bool> started_{false};
    std::atomic<bool> stopped_{false};

private:
    bool UsedModel(const std::string& name) const {
        for (const auto& stage : stages_) {
            if (stage->spec.kind != StageKind::kLlm) continue;
            auto it = stage->spec.with.value.find("model");
            if (it != stage->spec.with.value.end() && it->is_string() && *it == name) return true;
        }
        return false;
    }

    Status OpenIndex(const IndexSpec& spec) {
        auto index = std::make_unique<RunningIndex>();
        index->spec = spec;
        index->dir =
            spec.dir.empty() ? (fs::path(data_dir_) / "indexes" / spec.name).string() : spec.dir;
        const std::string context = fmt::format("{}: index '{}'", spec.where.ToString(), spec.name);
        auto embedder = OpenEmbedder(spec, spec_);
        if (!embedder.ok()) return embedder.status().WithContext(context);
        index->embedder = std::move(embedder).value();
        rag::LiveIndexOptions o;
        o.dir = index->dir;
        o.dimension = index->embedder->dimension();
        o.embedder = index->embedder->fingerprint();
        o.filter_fields = spec.filter_fields;
        auto live = rag::LiveIndex::Open(o);
        if (!live.ok()) return live.status().WithContext(context);
        index->index = std::move(live).value();
        rag::IndexerOptions io;
        io.name = spec.name;
        io.source = spec.source;
        io.dead_letter_topic = IndexDeadLetterTopic(spec);
        io.chunking.unit =
            spec.chunk_by_tokens ? rag::ChunkUnit::kTokens : rag::ChunkUnit::kCharacters;
        io.chunking.size = spec.chunk_size;
        io.chunking.overlap = spec.chunk_overlap;
        auto indexer = rag::Indexer::Make(broker_.get(), index->index.get(), index->embedder.get(),
                                          index->dir, io);
        if (!indexer.ok()) return indexer.status().WithContext(context);
        index->indexer = std::move(indexer).value();
        indexes_.push_back(std::move(index));
        return Status::Ok();
    }

    RetrieveTarget TargetOf(const std::string& name) const {
        for (const auto& index : indexes_) {
            if (index->spec.name == name) return {index->index.get(), index->embedder.get()};
        }
        return {};
    }

    Status BuildStage(const StageSpec& spec, std::vector<Diagnostic>* diagnostics) {
        auto stage = std::make_unique<RunningStage>();
        stage->spec = spec;
        if (spec.kind == StageKind::kRetrieve) {
            const std::string name = spec.with.value.value("index", std::string());
            const IndexSpec* index = spec_.FindIndex(name);
            if (index == nullptr) {
                diagnostics->push_back(
                    {spec.with.LocationOf("/index"),
                     fmt::format("stage '{}': unknown index '{}'", spec.name, name)});
                return Status::Ok();
            }
            const RetrieveTarget target = TargetOf(name);
            auto handler = MakeRetrieveHandler(spec, *index, [target] { return target; });
            if (!handler.ok()) {
                AppendStatus(handler.status(), spec, diagnostics);
                return Status::Ok();
            }
            stage->runner = std::make_unique<StageRunner>(broker_.get(), state_.get(),
                                                          RunnerOptions(spec), *handler);
        } else if (spec.kind == StageKind::kLlm) {
            auto hooks = MakeLlmHooks(spec, spec_.dir);
            if (!hooks.ok()) {
                AppendStatus(hooks.status(), spec, diagnostics);
                return Status::Ok();
            }
            const std::string model_name = spec.with.value.value("model", std::string());
            auto model = models_.find(model_name);
            if (model == models_.end()) {
                diagnostics->push_back(
                    {spec.with.LocationOf("/model"),
                     fmt::format("stage '{}': unknown model '{}'", spec.name, model_name)});
                return Status::Ok();
            }
            if (spec.emits.size() != 1) {
                diagnostics->push_back(
                    {spec.where, fmt::format("stage '{}': an llm stage emits to exactly one topic",
                                             spec.name)});
                return Status::Ok();
            }
            llm::LlmStageOptions o;
            o.stage = RunnerOptions(spec);
            o.emits = spec.emits.front();
            o.chunks_topic = ChunksTopic(spec);
            o.make_request = std::move(hooks->make_request);
            o.make_output = std::move(hooks->make_output);
            if (!hooks->output_type.empty()) o.output_type = hooks->output_type;
            std::shared_ptr<SharedModel> shared = model->second;
            stage->llm = std::make_unique<llm::LlmStage>(broker_.get(), state_.get(), std::move(o),
                                                         [shared]() { return shared->Get(); });
        } else {
            auto handler = CompileHandler(spec, context_);
            if (!handler.ok()) {
                AppendStatus(handler.status(), spec, diagnostics);
                return Status::Ok();
            }
            stage->runner = std::make_unique<StageRunner>(broker_.get(), state_.get(),
                                                          RunnerOptions(spec), *handler);
        }
        stages_.push_back(std::move(stage));
        return Status::Ok();
    }

    Status CreateTopic(const std::string& name, std::optional<Durability> durability = {}) {
        if (name.empty() || created_.count(name)) return Status::Ok();
        TopicOptions options;
        bool declared = false;
        for (const TopicSpec& t : spec_.topics) {
            if (t.name == name) {
                options = t.options;
                declared = true;
            }
        }
        if (!declared && durability) options.durability = *durability;
        Status st = broker_->CreateTopic(name, options);
        if (!st.ok() && st.code() != StatusCode::kAlreadyExists) {
            return st.WithContext(fmt::format("topic '{}'", name));
        }
        created_.insert(name);
        return Status::Ok();
    }

    Status CreateTopics() {
        for (const TopicSpec& t : spec_.topics) EVENTLOOM_RETURN_IF_ERROR(CreateTopic(t.name));
        for (const IndexSpec& index : spec_.indexes) {
            EVENTLOOM_RETURN_IF_ERROR(CreateTopic(index.source));
            EVENTLOOM_RETURN_IF_ERROR(CreateTopic(IndexDeadLetterTopic(index)));
        }
        for (const StageSpec& stage : spec_.stages) {
            EVENTLOOM_RETURN_IF_ERROR(CreateTopic(stage.consumes));
            for (const std::string& t : stage.emits) EVENTLOOM_RETURN_IF_ERROR(CreateTopic(t));
            if (stage.kind == StageKind::kRoute) {
                for (const std::string& t : RouteTargets(stage)) {
                    EVENTLOOM_RETURN_IF_ERROR(CreateTopic(t));
                }
            }
            EVENTLOOM_RETURN_IF_ERROR(CreateTopic(ChunksTopic(stage), Durability::kNever));
            EVENTLOOM_RETURN_IF_ERROR(CreateTopic(DeadLetterTopic(stage)));
        }
        EVENTLOOM_RETURN_IF_ERROR(CreateTopic(WebhookTopic(spec_.name)));
        EVENTLOOM_RETURN_IF_ERROR(CreateTopic(WebhookStageOptions(spec_.name).dead_letter_topic));
        EVENTLOOM_RETURN_IF_ERROR(CreateTopic(spec_.ResultsTopic()));
        EVENTLOOM_RETURN_IF_ERROR(CreateTopic(std::string(kJobFailureDeadLetter)));
        return Status::Ok();
    }

    std::set<std::string> created_;
};

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pipeline::~Pipeline() = default;

Status Pipeline::Check(const PipelineSpec& spec, std::vector<Diagnostic>* diagnostics) {
    const size_t before = diagnostics->size();
    PipelineContext context;  // compile only: nothing is called
    context.pipeline_name = spec.name;
    context.results_topic = spec.ResultsTopic();
    // An OpenAI route's answer is the completion of the llm stage consuming its topic.
    for (const OpenAiRouteSpec& route : spec.gateway.openai) {
        if (route.topic.empty()) continue;  // reported by the loader
        bool served = false;
        for (const StageSpec& stage : spec.stages) {
            served = served || (stage.kind == StageKind::kLlm && stage.consumes == route.topic);
        }
        if (!served) {
            diagnostics->push_back(
                {route.where, fmt::format("gateway model '{}': no llm stage consumes topic '{}' "
                                          "(an OpenAI route's topic must be an llm stage's input)",
                                          route.model, route.topic)});
        }
    }
    for (const StageSpec& stage : spec.stages) {
        if (stage.kind == StageKind::kLlm) {
            auto hooks = MakeLlmHooks(stage, spec.dir);
            if (!hooks.ok()) AppendStatus(hooks.status(), stage, diagnostics);
            const std::string model = stage.with.value.value("model", std::string());
            if (!spec.FindModel(model)) {
                diagnostics->push_back(
                    {stage.with.LocationOf("/model"),
                     fmt::format("stage '{}': unknown model '{}'", stage.name, model)});
            }
            if (stage.emits.size() != 1) {
                diagnostics->push_back(
                    {stage.where, fmt::format("stage '{}': an llm stage emits to exactly one "
                                              "topic",
                                              stage.name)});
            }
            continue;
        }
        if (stage.kind == StageKind::kRetrieve) {
            const IndexSpec* index = spec.FindIndex(stage.with.value.value("index", std::string()));
            if (index == nullptr) continue;  // reported by the loader
            auto handler = MakeRetrieveHandler(stage, *index, {});
            if (!handler.ok()) AppendStatus(handler.status(), stage, diagnostics);
            continue;
        }
        auto handler = CompileHandler(stage, context);
        if (!handler.ok()) AppendStatus(handler.status(), stage, diagnostics);
    }
    std::vector<Diagnostic> found(diagnostics->begin() + static_cast<ptrdiff_t>(before),
                                  diagnostics->end());
    return DiagnosticsStatus(found);
}

Result<std::unique_ptr<Pipeline>> Pipeline::Open(PipelineSpec spec, PipelineOptions options) {
    auto impl = std::make_unique<Impl>(std::move(spec), std::move(options));
    EVENTLOOM_RETURN_IF_ERROR(impl->Open());
    return std::unique_ptr<Pipeline>(new Pipeline(std::move(impl)));
}

Status Pipeline::Start() { return impl_->Start(); }
void Pipeline::Stop(std::chrono::milliseconds grace) { impl_->Stop(grace); }
const PipelineSpec& Pipeline::spec() const { return impl_->spec_; }
Broker* Pipeline::broker() const { return impl_->broker_.get(); }
JobStore* Pipeline::jobs() const { return impl_->jobs_.get(); }
std::string Pipeline::data_dir() const { return impl_->data_dir_; }
Result<ReplyTopics> Pipeline::RepliesFor(const std::string& topic) const {
    return impl_->RepliesFor(topic);
}
std::vector<std::string> Pipeline::ChunkTopics() const { return impl_->ChunkTopics(); }
int64_t Pipeline::Backlog(const std::string& topic) const { return impl_->Backlog(topic); }
bool Pipeline::Ready() const { return impl_->started_; }
std::vector<StageStatus> Pipeline::Stages() const { return impl_->Stages(); }
std::vector<IndexStatus> Pipeline::Indexes() const { return impl_->Indexes(); }
Result<rag::SearchResult> Pipeline::SearchIndex(const std::string& name,
                                                rag::SearchQuery query) const {
    return impl_->SearchIndex(name, std::move(query));
}
Status Pipeline::RebuildIndex(const std::string& name,
                              const std::function<void(int64_t, int64_t)>& progress,
                              std::stop_token stop) {
    return impl_->RebuildIndex(name, progress, stop);
}

}  // namespace eventloom::pipeline
