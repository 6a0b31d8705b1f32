// The pipeline file, parsed: what `eventloom validate|run|serve FILE` reads (docs/pipelines.md).
//
// LoadPipelineFile reads YAML, substitutes environment variables, and checks structure and
// values; every problem is reported with file, line and column and what was expected, all at
// once (not only the first). Stage-specific options (`with:`) are kept as JSON, with the source
// location of each value, so the component that compiles them (expr, outbound, the LLM stage)
// can report its own errors at the right place.
//
// Environment substitution happens in scalar values before they are interpreted:
//   ${NAME}            the variable's value; an error when it is not set
//   ${NAME:-default}   the default when NAME is unset or empty; defaults may nest: ${A:-${B}}
//   $${                a literal "${"
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "eventloom/log.h"
#include "eventloom/stage.h"
#include "eventloom/status.h"
#include "runtime/rate_limiter.h"
#include "runtime/retry.h"

namespace eventloom::pipeline {

// A place in a pipeline file: "pipeline.yaml:12:7". Line and column count from 1; 0 = unknown.
struct SourceLocation {
    std::string file;
    int line = 0;
    int column = 0;

    std::string ToString() const;  // "file:line:col", "file:line" or "file"
};

// One problem found in a pipeline file.
struct Diagnostic {
    SourceLocation where;
    std::string message;  // what is wrong and what was expected

    std::string ToString() const;  // "pipeline.yaml:12:7: error: stage 'x': ..."
};

// An InvalidArgument Status whose message lists the diagnostics, one per line.
Status DiagnosticsStatus(const std::vector<Diagnostic>& diagnostics);

// Options given as a YAML mapping (a stage's `with:`), as JSON, plus where each value was.
// Pointers are JSON pointers into `value` ("" is the whole mapping, "/steps/0/redact/paths").
struct Options {
    nlohmann::json value = nlohmann::json::object();
    std::map<std::string, SourceLocation> locations;  // JSON pointer -> location

    // The location of `pointer`, or of its nearest parent that has one.
    SourceLocation LocationOf(const std::string& pointer) const;
};

struct TopicSpec {
    std::string name;
    TopicOptions options;  // partitions, durability, retention...
    SourceLocation where;
};

enum class ModelBackend { kLlama, kOpenAi, kEcho };

struct ModelSpec {
    std::string name;  // the name stages and gateway routes use
    ModelBackend backend = ModelBackend::kLlama;
    // llama: the GGUF file (relative paths are relative to the pipeline file's folder).
    std::string path;
    int slots = 4;
    int context = 4096;  // tokens per slot
    int threads = 0;     // 0: the backend's default
    // openai: the server's base URL (".../v1"), the model name it knows, the variable that
    // holds the API key (never the key itself).
    std::string url;
    std::string remote_model;
    std::string api_key_env;
    // echo (a test backend that answers at once): the reply; empty echoes the prompt. And a
    // time per generated word, to stand in for a slow model (0: none).
    std::string reply;
    std::chrono::milliseconds token_delay{0};
    SourceLocation where;
};

struct ApiKeySpec {
    std::string key_env;              // the variable holding the bearer key
    std::vector<std::string> topics;  // topics this key may publish to; empty: all
    std::vector<std::string> models;  // OpenAI model names it may call; empty: all
    SourceLocation where;
};

// An OpenAI model name served by the gateway: a call becomes an event on `topic`, the reply is
// the completion event the pipeline derives from it (correlated by id).
struct OpenAiRouteSpec {
    std::string model;
    std::string topic;
    SourceLocation where;
};

struct GatewaySpec {
    bool enabled = false;  // a `gateway:` section is present
    std::string listen = "127.0.0.1:8080";
    std::vector<ApiKeySpec> api_keys;  // empty: no authentication
    size_t max_body_bytes = 1 << 20;   // 413 beyond this
    std::chrono::milliseconds request_timeout{60'000};
    // 429 with Retry-After when a target topic's backlog (published, not yet processed by its
    // consumers) passes this; 0: no bound.
    int64_t max_backlog = 10'000;
    RateLimits rate_limits;  // per API key (or per client address without keys)
    std::vector<OpenAiRouteSpec> openai;
    std::vector<std::string> event_topics;  // POST /v1/events may publish to these
    std::vector<std::string> job_topics;    // POST /v1/jobs may start jobs on these
    std::string webhook_secret_env;         // signs job webhooks
    SourceLocation where;
};

// A live RAG index (docs/rag.md): the document events of `source` chunked, embedded and
// indexed as they arrive; retrieve stages search it.
struct IndexSpec {
    std::string name;
    std::string source;  // the topic of document events
    std::string dir;     // empty: "<broker dir>/indexes/<name>"
    // Chunking: by tokens (the embedding model's tokenizer when it has one, an estimate
    // otherwise) or by characters.
    bool chunk_by_tokens = true;
    int chunk_size = 200;
    int chunk_overlap = 40;
    // "hashing" (built in, needs no model) or the name of a llama or openai model.
    std::string embedder = "hashing";
    int dimension = 384;                     // hashing only; a model's vectors have its own
    std::vector<std::string> filter_fields;  // metadata fields retrieve stages may filter on
    SourceLocation where;
};

enum class StageKind { kTransform, kRoute, kLlm, kHttp, kEmit, kNotify, kRetrieve };
std::string_view StageKindName(StageKind kind);

struct StageSpec {
    std::string name;
    std::string consumes;
    StageKind kind = StageKind::kTransform;
    Options with;
    std::vector<std::string> emits;  // topics the stage publishes to (route: from `with`)
    DeliveryMode delivery = DeliveryMode::kAtLeastOnce;
    int concurrency = 1;  // workers (the llm stage: requests in flight come from its model)
    RetryPolicy retry;
    std::string dead_letter;  // empty: "<name>.dead-letter"
    RateLimits rate_limits;
    std::chrono::milliseconds timeout{30'000};
    SourceLocation where;  // the stage's `- name:` line
};

struct PipelineSpec {
    std::string file;  // as given
    std::string dir;   // the folder of the file: relative paths in it resolve from here
    int version = 1;
    std::string name;
    // The broker: the embedded log in `broker_dir` (relative paths from the current directory,
    // as users expect of a command-line tool), or later a URL (nats://...).
    std::string broker_dir = ".eventloom";
    std::string broker_url;
    std::vector<TopicSpec> topics;  // declared ones; stages' topics not listed get defaults
    std::vector<ModelSpec> models;
    std::vector<IndexSpec> indexes;
    GatewaySpec gateway;
    std::vector<StageSpec> stages;

    const ModelSpec* FindModel(std::string_view name) const;
    const IndexSpec* FindIndex(std::string_view name) const;
    const StageSpec* FindStage(std::string_view name) const;
    // The topic every notify stage with `sse: true` publishes results to: "<name>.results".
    std::string ResultsTopic() const { return name + ".results"; }
};

// Reads and checks `path`. On failure, the Status is InvalidArgument listing every diagnostic
// (DiagnosticsStatus); `diagnostics`, when given, receives them too.
Result<PipelineSpec> LoadPipelineFile(const std::string& path,
                                      std::vector<Diagnostic>* diagnostics = nullptr);
// "HOST:PORT" with the host a name, an IPv4 address or a bracketed IPv6 address, and the port
// 0 to 65535 (gateway.listen and `serve --listen`). InvalidArgument naming the problem.
Status ValidateListenAddress(std::string_view listen);

// The same, from text (`file` names it in diagnostics; relative paths resolve from `dir`).
Result<PipelineSpec> ParsePipeline(std::string_view yaml, const std::string& file,
                                   const std::string& dir,
                                   std::vector<Diagnostic>* diagnostics = nullptr);

// Substitutes ${NAME} / ${NAME:-default} in `text` (see above). InvalidArgument names an unset
// variable or an unclosed "${".
Result<std::string> SubstituteEnv(std::string_view text);

// "500ms", "2s", "1.5s", "1m", "1h"; a bare integer is milliseconds.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);
// "1048576", "512KiB", "1MiB", "1GiB", "1MB" (= 10^6).
Result<uint64_t> ParseByteSize(std::string_view text);

}  // namespace eventloom::pipeline
