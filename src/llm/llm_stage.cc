#include "llm/llm_stage.h"

#include <condition_variable>
#include <deque>
#include <thread>

#include "common/logging.h"
#include "llm/grammar/json_schema_grammar.h"
#include "llm/request_json.h"
#include "llm/text_output.h"

namespace eventloom::llm {

namespace {

using SteadyClock = std::chrono::steady_clock;

// Publishes chunk events in order on its own thread, so a backend's token callback only
// queues them.
class ChunkPublisher {
public:
    explicit ChunkPublisher(Broker* broker) : broker_(broker), thread_([this] { Run(); }) {}
    ~ChunkPublisher() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }

    void Publish(std::string topic, Event event) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            queue_.emplace_back(std::move(topic), std::move(event));
        }
        cv_.notify_one();
    }

    int64_t published() const { return published_; }
    int64_t failures() const { return failures_; }

private:
    void Run() {
        std::unique_lock<std::mutex> lock(mu_);
        while (true) {
            cv_.wait(lock, [&] { return done_ || !queue_.empty(); });
            if (queue_.empty() && done_) return;
            auto [topic, event] = std::move(queue_.front());
            queue_.pop_front();
            lock.unlock();
            auto published = broker_->Publish(topic, event);
            if (published.ok()) {
                ++published_;
            } else {
                ++failures_;
                logging::Get("llm")->warn("chunk event={} topic={}: {}", event.id, topic,
                                          published.status().ToString());
            }
            lock.lock();
        }
    }

    Broker* broker_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::pair<std::string, Event>> queue_;
    bool done_ = false;
    std::atomic<int64_t> published_{0};
    std::atomic<int64_t> failures_{0};
    std::thread thread_;
};

}  // namespace

class LlmStage::Impl {
public:
    Impl(Broker* broker, StateStore* state, LlmStageOptions options, BackendOpener open,
         std::shared_ptr<LlmBackend> backend)
        : broker_(broker),
          state_(state),
          options_(std::move(options)),
          open_(std::move(open)),
          backend_(std::move(backend)) {}

    Status Start() {
        if (options_.emits.empty()) {
            return InvalidArgumentError("llm stage '" + options_.stage.name +
                                        "': no topic for its completions (emits)");
        }
        if (options_.chunk_tokens < 1) {
            return InvalidArgumentError("llm stage: chunk_tokens must be >= 1");
        }
        std::shared_ptr<LlmBackend> backend = Backend().value_or(nullptr);
        int slots = backend ? backend->Load().slots : 8;
        queued_ = options_.queued_requests >= 0 ? options_.queued_requests : slots / 2 + 1;

        StageOptions so = options_.stage;
        so.workers = slots + queued_;
        so.max_in_flight = static_cast<size_t>(so.workers);
        so.capacity = [this] { return Capacity(); };
        // A generation takes milliseconds to seconds: microseconds of pick-up latency are not
        // worth a polling thread taking CPU from the model's threads.
        so.poll = std::chrono::microseconds(0);
        if (so.rate_limits.tokens_per_minute > 0) {
            so.weight = [this](const Event& e) { return EstimateWeight(e); };
        }
        if (so.timeout < std::chrono::seconds(300)) so.timeout = std::chrono::seconds(300);
        if (!options_.chunks_topic.empty()) chunks_ = std::make_unique<ChunkPublisher>(broker_);
        runner_ = std::make_unique<StageRunner>(broker_, state_, so,
                                                [this](StageContext& ctx) { return Handle(ctx); });
        return runner_->Start();
    }

    void Stop(std::chrono::milliseconds grace) {
        if (runner_) runner_->Stop(grace);
        chunks_.reset();
    }

    LlmStageStats stats() const {
        LlmStageStats s;
        if (runner_) s.stage = runner_->stats();
        s.prompt_tokens = prompt_tokens_;
        s.completion_tokens = completion_tokens_;
        if (chunks_) {
            s.chunks = chunks_->published();
            s.chunk_publish_failures = chunks_->failures();
        }
        return s;
    }

private:
    // The backend, opening it if needed (at most once per reopen_interval after a failure).
    Result<std::shared_ptr<LlmBackend>> Backend() {
        std::lock_guard<std::mutex> lock(mu_);
        if (backend_) return backend_;
        if (!open_) return FailedPreconditionError("llm stage: no backend");
        auto now = SteadyClock::now();
        if (!open_error_.ok() && now < next_open_) return open_error_;
        auto opened = open_();
        if (opened.ok()) {
            backend_ = std::move(*opened);
            open_error_ = Status::Ok();
            return backend_;
        }
        open_error_ = opened.status().WithContext("llm stage '" + options_.stage.name +
                                                  "': opening the model");
        next_open_ = now + options_.reopen_interval;
        logging::Get("llm")->error("{}", open_error_.ToString());
        return open_error_;
    }

    size_t Capacity() {
        std::shared_ptr<LlmBackend> backend;
        {
            std::lock_guard<std::mutex> lock(mu_);
            backend = backend_;
        }
        if (!backend) return 1;  // events go to their fate (dead-letter) one at a time
        LlmLoad load = backend->Load();
        if (load.queued_prompt_tokens >= options_.queued_prompt_token_budget) return 0;
        int room = load.slots + queued_ - load.busy_slots - load.queued;
        return room > 0 ? static_cast<size_t>(room) : 0;
    }

    Result<LlmRequest> MakeRequest(const Event& e) const {
        if (options_.make_request) return options_.make_request(e);
        return ParseLlmRequest(std::string_view(e.data));
    }

    double EstimateWeight(const Event& e) {
        auto request = MakeRequest(e);
        if (!request.ok()) return 0;
        std::shared_ptr<LlmBackend> backend;
        {
            std::lock_guard<std::mutex> lock(mu_);
            backend = backend_;
        }
        int prompt = 0;
        if (backend) prompt = backend->CountPromptTokens(*request).value_or(0);
        return prompt + request->max_tokens;
    }

    // A constrained backend can still stop early (max_tokens) or not constrain at all (a
    // server without grammar support): what goes out as structured output must match. A
    // mismatch is the request's problem (InvalidArgument), not worth retrying unchanged.
    Status CheckAgainstSchema(const std::string& schema_text, const LlmResult& result) const {
        const nlohmann::json schema = nlohmann::json::parse(schema_text, nullptr, false);
        if (schema.is_discarded()) {
            return InvalidArgumentError(
                fmt::format("stage '{}': the JSON schema is not valid JSON", options_.stage.name));
        }
        const nlohmann::json value = nlohmann::json::parse(result.text, nullptr, false);
        Status valid = value.is_discarded() ? InvalidArgumentError("the completion is not JSON")
                                            : ValidateJsonAgainstSchema(schema, value);
        if (valid.ok()) return valid;
        return InvalidArgumentError(fmt::format(
            "stage '{}': the completion does not match the schema (finish reason '{}'): {}: {}",
            options_.stage.name, result.finish_reason, valid.message(),
            ToValidUtf8(std::string_view(result.text).substr(0, 200))));
    }

    Status Handle(StageContext& ctx) {
        const Event& in = ctx.event();
        EVENTLOOM_ASSIGN_OR_RETURN(LlmRequest request, MakeRequest(in));
        request.id = in.id;
        request.deadline = ctx.deadline();
        request.priority = in.priority.value_or(0);
        EVENTLOOM_ASSIGN_OR_RETURN(std::shared_ptr<LlmBackend> backend, Backend());

        // Coalesced chunk events. on_token runs on a backend thread while this one waits.
        int attempt = ctx.delivery().attempt();
        int index = 0;
        int pending_tokens = 0;
        std::string pending;
        auto last_flush = SteadyClock::now();
        auto flush = [&] {
            if (!chunks_ || (pending.empty() && pending_tokens == 0)) return;
            Event chunk = ctx.Derive("llm.chunk");
            chunk.id = in.id + "/" + std::to_string(attempt) + "/chunk/" + std::to_string(index);
            chunk.datacontenttype = "application/json";
            std::string data = nlohmann::json{
                {"index", index},
                {"attempt", attempt},
                {"text", pending},
                {"tokens",
                 pending_tokens}}.dump();
            chunk.data = std::move(data);
            chunk.has_data = true;
            chunks_->Publish(options_.chunks_topic, std::move(chunk));
            ++index;
            pending.clear();
            pending_tokens = 0;
            last_flush = SteadyClock::now();
        };
        TokenCallback on_token;
        if (chunks_) {
            on_token = [&](std::string_view piece) {
                pending.append(piece);
                ++pending_tokens;
                if (index == 0 || pending_tokens >= options_.chunk_tokens ||
                    SteadyClock::now() - last_flush >= options_.chunk_interval) {
                    flush();
                }
            };
        }
        auto result = backend->Generate(request, on_token, std::stop_token());
        if (!result.ok()) return result.status();
        flush();
        if (!request.json_schema.empty()) {
            EVENTLOOM_RETURN_IF_ERROR(CheckAgainstSchema(request.json_schema, *result));
        }

        prompt_tokens_ += result->usage.prompt_tokens;
        completion_tokens_ += result->usage.completion_tokens;
        ctx.ReportWeight(result->usage.prompt_tokens + result->usage.completion_tokens);
        Event out = ctx.Derive(options_.output_type);
        out.datacontenttype = "application/json";
        if (options_.make_output) {
            EVENTLOOM_ASSIGN_OR_RETURN(out.data,
                                       options_.make_output(in, *result, backend->model()));
        } else {
            out.data = LlmResultToJson(*result, backend->model()).dump();
        }
        out.has_data = true;
        ctx.Emit(options_.emits, std::move(out));
        return Status::Ok();
    }

    Broker* broker_;
    StateStore* state_;
    const LlmStageOptions options_;
    BackendOpener open_;
    int queued_ = 0;

    mutable std::mutex mu_;
    std::shared_ptr<LlmBackend> backend_;
    Status open_error_;
    SteadyClock::time_point next_open_;

    std::unique_ptr<ChunkPublisher> chunks_;
    std::unique_ptr<StageRunner> runner_;
    std::atomic<int64_t> prompt_tokens_{0};
    std::atomic<int64_t> completion_tokens_{0};
};

LlmStage::LlmStage(Broker* broker, StateStore* state, LlmStageOptions options, BackendOpener open)
    : impl_(std::make_unique<Impl>(broker, state, std::move(options), std::move(open), nullptr)) {}

LlmStage::LlmStage(Broker* broker, StateStore* state, LlmStageOptions options,
                   std::shared_ptr<LlmBackend> backend)
    : impl_(
          std::make_unique<Impl>(broker, state, std::move(options), nullptr, std::move(backend))) {}

LlmStage::~LlmStage() { Stop(); }

Status LlmStage::Start() { return impl_->Start(); }
void LlmStage::Stop(std::chrono::milliseconds grace) { impl_->Stop(grace); }
LlmStageStats LlmStage::stats() const { return impl_->stats(); }

}  // namespace eventloom::llm
