// The LLM stage: a stage (eventloom/stage.h) whose handler runs each event's request on an LLM
// backend and emits the completion.
//
// Pulled by capacity: the stage takes an event from the log only when the backend has room: a
// free slot, or a place among `queued_requests` waiting ones, and fewer than
// `queued_prompt_token_budget` prompt tokens still to compute. The backlog stays in the log,
// not in memory. Among waiting requests the backend serves higher `priority` first. Leases of
// events being generated are extended by the runner for as long as they run.
//
// Input: an event whose data is a request in the JSON form of llm/request_json.h. Its
// `priority` extension orders it; its `deadline` extension (or the stage's timeout) bounds it.
// Output, for each event:
//   - chunk events ("llm.chunk", to `chunks_topic` if set): the text as it is generated,
//     coalesced: the first token at once, then every `chunk_tokens` tokens or `chunk_interval`,
//     whichever comes first. Data: {"index", "attempt", "text", "tokens"}; id
//     "<event id>/<attempt>/chunk/<index>". Chunks are progress for streaming clients,
//     published while the event runs, and a retried event streams again under its new attempt
//     number: clients restart the text when `attempt` changes;
//   - one completion event ("llm.completion", to `emits`), with the stage's delivery guarantee:
//     data {"text", "finish_reason", "model", "usage"} (llm/request_json.h).
// Failures follow the runtime's rules: a bad request, a prompt longer than the context or a
// model that cannot be loaded go to the dead-letter topic with the reason; an unreachable or
// rate-limited backend is retried with backoff (and trips `breaker`, when set).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "eventloom/broker.h"
#include "eventloom/llm.h"
#include "eventloom/stage.h"

namespace eventloom::llm {

struct LlmStageOptions {
    // The stage's name, topic, delivery mode, retries, rate limits (tokens_per_minute counts
    // prompt + max_tokens, corrected to the real count after the call), timeout, breaker and
    // dead-letter topic. `workers`, `max_in_flight` and `capacity` are set by the LLM stage.
    StageOptions stage;
    std::string emits;         // the completion events' topic
    std::string chunks_topic;  // empty: no chunk events
    int chunk_tokens = 16;
    std::chrono::milliseconds chunk_interval{100};
    int queued_requests = -1;  // waiting in the backend beyond its slots; -1: slots / 2 + 1
    int64_t queued_prompt_token_budget = 16384;
    // How often to try again to open a backend that failed to open.
    std::chrono::milliseconds reopen_interval{30'000};
    // Builds the request from the event (a pipeline's prompt templates). Empty: the event's
    // data is the request (llm/request_json.h). An error dead-letters or retries the event by
    // its code, as a handler's would.
    std::function<Result<LlmRequest>(const Event&)> make_request;
    // Builds the completion event's data from the input event and the result. Empty: the
    // completion JSON of llm/request_json.h.
    std::function<Result<std::string>(const Event& in, const LlmResult& result,
                                      std::string_view model)>
        make_output;
    std::string output_type = "llm.completion";  // the completion event's type
};

struct LlmStageStats {
    StageStats stage;
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;
    int64_t chunks = 0;
    int64_t chunk_publish_failures = 0;
};

using BackendOpener = std::function<Result<std::shared_ptr<LlmBackend>>()>;

class LlmStage {
public:
    // Opens the backend through `open` when the stage starts; if that fails, every event is
    // dead-lettered with the reason until a later attempt succeeds. `broker` must outlive the
    // stage, and `state` too when the delivery mode is effectively-once.
    LlmStage(Broker* broker, StateStore* state, LlmStageOptions options, BackendOpener open);
    // For a backend that is already open (and may be shared with other stages).
    LlmStage(Broker* broker, StateStore* state, LlmStageOptions options,
             std::shared_ptr<LlmBackend> backend);
    ~LlmStage();

    Status Start();
    void Stop(std::chrono::milliseconds grace = std::chrono::seconds(30));
    LlmStageStats stats() const;

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace eventloom::llm
