// A running pipeline: the stages of a pipeline file (config/pipeline_spec.h), wired by topics
// on one broker, with their models, state store and job store.
//
// Open() builds everything a run needs and reports every problem in the stages' options at
// once (with file, line and column), without starting anything: `eventloom validate` is
// Check(), `eventloom run` is Open() + Start() until a signal, then Stop().
//
// What Start() sets up besides the declared stages:
//   - every topic the stages name (consumes, emits, routes, chunk topics, dead-letter topics,
//     "<pipeline>.results") is created up front, declared options first, defaults otherwise
//     (one partition, durability always; chunk topics durability never: they are progress,
//     not records);
//   - a job-failure stage on every dead-letter topic ("<stage>.dead-letter" ->
//     "job-failure.<stage>"): it fails the job of the dead-lettered event and publishes
//     "job.failed" to the results topic, so a waiting client hears of it;
//   - one backend per model, opened once and shared by the stages that use it;
//   - one indexer per index (rag/indexer.h), started before the stages, feeding the live index
//     that retrieve stages search; its malformed document events go to
//     "index.<name>.dead-letter".
//
// Thread-safety: Start and Stop from one thread; the accessors from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "eventloom/broker.h"
#include "eventloom/state.h"
#include "eventloom/status.h"
#include "pipeline/config/pipeline_spec.h"
#include "pipeline/outbound/job_store.h"
#include "rag/indexer.h"
#include "rag/live_index.h"

namespace eventloom::pipeline {

struct PipelineOptions {
    // Overrides the file's broker directory (the CLI's --data-dir).
    std::string data_dir;
    // Open models when the pipeline starts (true), or when a stage first needs one.
    bool open_models_at_start = true;
};

// The topics an LLM stage answers a request topic on: what the gateway waits for.
struct ReplyTopics {
    std::string reply_topic;   // the completion events
    std::string chunks_topic;  // token chunks; empty when the stage has none
};

struct StageStatus {
    std::string name;
    std::string kind;
    StageStats stats;
};

struct IndexStatus {
    std::string name;
    rag::IndexerStats indexer;
    rag::LiveIndexStats index;
    rag::AppliedOffsets applied;
};

class Pipeline {
public:
    ~Pipeline();
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;

    // Everything `eventloom validate` checks beyond the file's structure: each stage's options
    // compile (templates, conditions, prompt and schema files, URLs). Appends diagnostics.
    static Status Check(const PipelineSpec& spec, std::vector<Diagnostic>* diagnostics);

    // Opens the broker and state store and builds the stages. Nothing runs yet.
    static Result<std::unique_ptr<Pipeline>> Open(PipelineSpec spec, PipelineOptions options);

    // Creates the topics and starts every stage (and the job-failure stages).
    Status Start();
    // Stops taking events, lets running handlers finish for up to `grace`, and releases what
    // is left to the log: nothing acknowledged is lost.
    void Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

    const PipelineSpec& spec() const;
    Broker* broker() const;
    JobStore* jobs() const;
    std::string data_dir() const;

    // The LLM stage consuming `topic`, if any: where its answers go.
    Result<ReplyTopics> RepliesFor(const std::string& topic) const;
    // Every chunk topic of the pipeline's LLM stages (job progress).
    std::vector<std::string> ChunkTopics() const;
    // Events published to `topic` that its consuming stages have not finished: the backlog
    // the gateway bounds. 0 when no stage consumes it.
    int64_t Backlog(const std::string& topic) const;
    // True once every stage has started (and its model opened).
    bool Ready() const;
    std::vector<StageStatus> Stages() const;
    std::vector<IndexStatus> Indexes() const;

    // Searches index `name` (`eventloom index search`): embeds query.text when the mode needs a
    // vector. NotFound for an unknown index.
    Result<rag::SearchResult> SearchIndex(const std::string& name, rag::SearchQuery query) const;

    // `eventloom index rebuild NAME`: empties the index and applies its source topic from the
    // start, reporting (events applied, events in all). Only on a pipeline not started.
    Status RebuildIndex(const std::string& name,
                        const std::function<void(int64_t, int64_t)>& progress,
                        std::stop_token stop = {});

private:
    class Impl;
    explicit Pipeline(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace eventloom::pipeline
