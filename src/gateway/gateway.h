// The HTTP gateway: eventloom's front door over HTTP/1.1 (Boost.Beast; the only code that
// includes Beast). It serves
//   - the OpenAI API (POST /v1/chat/completions, POST /v1/completions, GET /v1/models): a call
//     becomes an "llm.request" event on its model's topic, and the answer is the completion
//     event the pipeline derives from it (matched by correlationid), returned as JSON or
//     streamed as server-sent events from the chunk events;
//   - CloudEvents ingest (POST /v1/events[/{topic}]): the HTTP binding's binary, structured and
//     batch modes;
//   - jobs (POST /v1/jobs, GET /v1/jobs/{id}, GET /v1/jobs/{id}/events): asynchronous requests
//     whose progress and result can be followed as server-sent events;
//   - /healthz and /readyz.
// docs/gateway.md describes the endpoints, errors, limits and authentication.
//
// Replies reach waiting requests through consumer groups (GatewayOptions::reply_group) on the
// reply, chunk, progress and results topics, started at the latest offset and acked at once:
// an event with no waiter is dropped. A request registers its waiter before it publishes.
//
// Publishing blocks (the log may fsync), so it runs on a worker pool, never on the I/O threads.
//
// Ownership and thread-safety: `broker` and `jobs` must outlive the Gateway. Port(), BeginDrain()
// and Stop() may be called from any thread; Stop() once (the destructor calls it if needed).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "eventloom/broker.h"
#include "eventloom/status.h"
#include "pipeline/config/pipeline_spec.h"
#include "pipeline/outbound/job_store.h"

namespace eventloom::gateway {

namespace internal {
class Server;
}  // namespace internal

// One OpenAI model name served by the gateway, with the topics the pipeline resolved for it.
struct ChatRoute {
    std::string model;         // the OpenAI model name clients use
    std::string topic;         // requests are published here (data = the OpenAI body as JSON)
    std::string reply_topic;   // the completion event (type llm.completion) arrives here
    std::string chunks_topic;  // chunk events for stream:true (empty: stream sends one chunk)
};

struct GatewayOptions {
    // listen, api_keys (the values are read from each key_env at Start; an unset variable is
    // an error), limits, event and job topics.
    pipeline::GatewaySpec spec;
    std::string pipeline_name;
    std::vector<ChatRoute> chat_routes;
    std::string results_topic;                 // job results and failures ("<pipeline>.results")
    std::vector<std::string> progress_topics;  // chunk topics: job progress for SSE
    int threads = 2;                           // I/O threads
    int workers = 4;                           // threads that publish and read the job store
    std::string reply_group = "gateway";       // consumer group on reply/result/progress topics
    // Events waiting on `topic` (published, not yet processed); empty: 0.
    std::function<int64_t(const std::string& topic)> backlog;
    // /readyz; empty: ready once started (and not draining).
    std::function<bool()> ready;
};

// Request counts, for metrics: per route ("chat_completions", "completions", "models",
// "events", "jobs", "job", "job_events", "healthz", "readyz", "other") and in total. A request
// counts once its headers and body are read; its response counts by status class once the
// response is over (`aborted` when the connection closed first, streams included).
struct GatewayRouteStats {
    std::string route;
    int64_t requests = 0;
    int64_t responses_2xx = 0;
    int64_t responses_4xx = 0;
    int64_t responses_5xx = 0;
    int64_t aborted = 0;
};

struct GatewayStats {
    int64_t requests = 0;
    int64_t in_flight = 0;  // requests whose response is not over yet (open streams included)
    int64_t responses_2xx = 0;
    int64_t responses_4xx = 0;
    int64_t responses_5xx = 0;
    int64_t aborted = 0;
    std::vector<GatewayRouteStats> routes;  // every route, in a fixed order
};

class Gateway {
public:
    // Reads the API keys, subscribes to the reply topics (creating missing ones with default
    // options), binds spec.listen and starts serving. `jobs` may be null: the job endpoints
    // then answer 404. InvalidArgument for a bad listen address or an unset key variable,
    // Unavailable when the address cannot be bound.
    static Result<std::unique_ptr<Gateway>> Start(Broker* broker, pipeline::JobStore* jobs,
                                                  GatewayOptions options);
    ~Gateway();
    Gateway(const Gateway&) = delete;
    Gateway& operator=(const Gateway&) = delete;

    uint16_t port() const;  // the bound port (listen "127.0.0.1:0" picks one)
    // From now on new requests get 503 with Retry-After and /readyz answers 503; requests
    // already accepted go on.
    void BeginDrain();
    // Drains, stops accepting, ends the job event streams, lets in-flight requests finish for
    // up to `grace`, then closes every connection and stops the threads. Idempotent.
    void Stop(std::chrono::milliseconds grace);

    GatewayStats stats() const;

private:
    explicit Gateway(std::unique_ptr<internal::Server> server);
    std::unique_ptr<internal::Server> server_;
};

}  // namespace eventloom::gateway
