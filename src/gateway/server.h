// The gateway's core (internal to src/gateway): routing, authentication, limits, statistics,
// and the parts the route handlers share. gateway.h is its public face.
//
// A request arrives on an I/O thread (http_server.h), which answers at once what needs no
// blocking call (routing errors, 405, /healthz, /readyz, 401, 503 while draining) and posts
// everything else to the worker pool, where the handlers of openai_routes.cc, event_routes.cc
// and job_routes.cc validate, publish and register their waiters on the ReplyHub.
//
// Thread-safety: every method may be called from any thread. The handlers hold the Server by
// pointer: it outlives every exchange, hub callback, timer and task (Stop ends them first).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "eventloom/broker.h"
#include "gateway/gateway.h"
#include "gateway/http_server.h"
#include "gateway/reply_hub.h"
#include "gateway/worker_pool.h"
#include "runtime/rate_limiter.h"

namespace eventloom::gateway::internal {

enum class RouteId {
    kChatCompletions,
    kCompletions,
    kModels,
    kEvents,
    kJobs,
    kJob,
    kJobEvents,
    kHealthz,
    kReadyz,
    kOther,
};
inline constexpr size_t kRouteCount = 10;
std::string_view RouteName(RouteId route);

// An API key of the gateway, with its scope.
struct ApiKey {
    std::string name;                      // the variable it was read from, for messages
    std::string value;                     // the bearer token
    std::vector<std::string> topics;       // empty: all
    std::vector<std::string> models;       // empty: all
    std::shared_ptr<RateLimiter> limiter;  // null when the gateway sets no rate limits

    bool MayPublish(std::string_view topic) const;
    bool MayCall(std::string_view model) const;
};

// What a route handler gets: the exchange, the path parameter and who is calling.
struct RequestContext {
    std::shared_ptr<Exchange> exchange;
    RouteId route = RouteId::kOther;
    std::string param;            // {topic} or {id}, percent-decoded; empty when none
    const ApiKey* key = nullptr;  // null without authentication

    const HttpRequest& request() const { return exchange->request(); }
};

// Responses in the OpenAI error shape (ErrorJson), which every endpoint uses.
HttpResponse JsonResponse(int status, const nlohmann::json& body, Headers headers = {});
HttpResponse ErrorResponse(int status, std::string_view message, std::string_view type,
                           std::string_view code = {}, std::string_view param = {},
                           Headers headers = {});
// The HTTP answer to a failed broker or store call: 429 / 503 with Retry-After for
// backpressure and unavailability, 400 for a rejected event, 504, else 500.
HttpResponse StatusResponse(const Status& status, std::string_view what);
// Copies the request's W3C trace context (traceparent, tracestate) into `event`; a malformed
// one is dropped rather than failing the request.
void TakeTraceContext(const HttpRequest& request, Event* event);
// One server-sent event: "event: NAME\n" (when given), "id: ID\n" (when given), "data: ...\n\n".
std::string SseEvent(std::string_view data, std::string_view name = {}, std::string_view id = {});

// Something streaming that Stop must end first (a job's event stream).
class Stream {
public:
    virtual ~Stream() = default;
    virtual void Shutdown() = 0;  // end the response now; idempotent
};

class Server {
public:
    static Result<std::unique_ptr<Server>> Start(Broker* broker, pipeline::JobStore* jobs,
                                                 GatewayOptions options);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    uint16_t port() const { return http_->port(); }
    void BeginDrain();
    void Stop(std::chrono::milliseconds grace);
    GatewayStats stats() const;

    // ---- For the route handlers --------------------------------------------------------

    Broker* broker() const { return broker_; }
    pipeline::JobStore* jobs() const { return jobs_; }
    const GatewayOptions& options() const { return options_; }
    ReplyHub& hub() { return *hub_; }
    WorkerPool& workers() { return *workers_; }
    HttpServer& http() { return *http_; }
    int64_t started_unix() const { return started_unix_; }

    // The route serving `model`, or nullptr.
    const ChatRoute* FindChatRoute(std::string_view model) const;

    // Checks the backlog of `topic` (when not empty) against spec.max_backlog, then the
    // caller's rate limit (weighing `weight` against tokens_per_minute). On refusal answers 429
    // with Retry-After itself and returns false. The limiter charged is returned through
    // `charged`, for a later correction of the weight.
    bool Admit(const RequestContext& ctx, const std::string& topic, double weight,
               std::shared_ptr<RateLimiter>* charged = nullptr);

    // 403 naming the key and the topic when the caller's key may not publish to `topic`.
    bool MayPublish(const RequestContext& ctx, const std::string& topic);

    void AddStream(const std::shared_ptr<Stream>& stream);
    void RemoveStream(Stream* stream);

private:
    struct RouteCounters {
        std::atomic<int64_t> requests{0};
        std::atomic<int64_t> responses_2xx{0};
        std::atomic<int64_t> responses_4xx{0};
        std::atomic<int64_t> responses_5xx{0};
        std::atomic<int64_t> aborted{0};
    };

    Server(Broker* broker, pipeline::JobStore* jobs, GatewayOptions options);
    Status Init();

    // On an I/O thread.
    void Dispatch(std::shared_ptr<Exchange> exchange);
    void Count(RouteId route, int status, bool completed);
    // Resolves the bearer key; answers 401 itself and returns false when it must.
    bool Authenticate(RequestContext* ctx);
    void RunHandler(RequestContext ctx);
    HttpResponse Readyz() const;
    std::shared_ptr<RateLimiter> AddressLimiter(const std::string& address);

    Broker* broker_;
    pipeline::JobStore* jobs_;
    const GatewayOptions options_;
    int64_t started_unix_ = 0;
    std::vector<ApiKey> keys_;

    std::atomic<bool> draining_{false};
    bool inline_completions_ = false;  // set by Init: see there
    std::atomic<bool> stopped_{false};

    std::array<RouteCounters, kRouteCount> counters_;
    std::atomic<int64_t> in_flight_{0};
    mutable std::mutex idle_mu_;
    std::condition_variable idle_cv_;  // in_flight_ dropped

    std::mutex limiters_mu_;
    std::unordered_map<std::string, std::shared_ptr<RateLimiter>> address_limiters_;

    std::mutex streams_mu_;
    std::map<Stream*, std::weak_ptr<Stream>> streams_;

    // Destroyed in reverse: the HTTP server first (its handlers reference the rest).
    std::unique_ptr<ReplyHub> hub_;
    std::unique_ptr<WorkerPool> workers_;
    std::unique_ptr<HttpServer> http_;
};

// The route handlers, on a worker thread.
void HandleCompletion(Server& server, RequestContext ctx);  // chat and text completions
void HandleModels(Server& server, RequestContext ctx);
void HandleEvents(Server& server, RequestContext ctx);
void HandleJobCreate(Server& server, RequestContext ctx);
void HandleJobGet(Server& server, RequestContext ctx);
void HandleJobEvents(Server& server, RequestContext ctx);

}  // namespace eventloom::gateway::internal
