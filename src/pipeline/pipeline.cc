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
#include "llm/llm_stage.h"
#include "pipeline/expr/llm_hooks.h"
#include "pipeline/expr/stages.h"
#include "pipeline/outbound/stages.h"
#include "pipeline/outbound/webhook.h"

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
            break;
    }
    return InvalidArgumentError("the llm stage has no plain handler");
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
            if (secret) context_.job_webhook_secret = secret;
        }

        for (const ModelSpec& m : spec_.models) {
            models_[m.name] = std::make_shared<SharedModel>(m, spec_.dir);
        }
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

    Status BuildStage(const StageSpec& spec, std::vector<Diagnostic>* diagnostics) {
        auto stage = std::make_unique<RunningStage>();
        stage->spec = spec;
        if (spec.kind == StageKind::kLlm) {
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

}  // namespace eventloom::pipeline
