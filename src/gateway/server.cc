// The gateway's core: see server.h.
#include "gateway/server.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <set>

#include "common/logging.h"
#include "gateway/cloudevents_http.h"
#include "gateway/openai_json.h"

namespace eventloom::gateway::internal {

using namespace std::chrono_literals;

namespace {

// Beyond this many client addresses, the per-address limiters start over.
constexpr size_t kMaxAddressLimiters = 10'000;

constexpr std::array<std::string_view, kRouteCount> kRouteNames = {
    "chat_completions", "completions", "models", "events", "jobs", "job",
    "job_events",       "healthz",     "readyz", "other"};

bool Contains(const std::vector<std::string>& list, std::string_view item) {
    return std::find(list.begin(), list.end(), item) != list.end();
}

bool AnyLimit(const RateLimits& limits) {
    return limits.requests_per_second > 0 || limits.requests_per_minute > 0 ||
           limits.tokens_per_minute > 0;
}

// Equal contents, in time that depends only on the lengths.
bool SameSecret(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    }
    return diff == 0;
}

std::string RetryAfterSeconds(Clock::Duration wait) {
    auto seconds = std::chrono::ceil<std::chrono::seconds>(wait).count();
    return std::to_string(std::max<int64_t>(1, seconds));
}

struct RouteMatch {
    RouteId route = RouteId::kOther;
    std::string_view allow;  // the method the route takes
    std::string param;
};

// "a/b" -> {"a", "b"}; empty segments are kept ("a//b" has three).
std::vector<std::string_view> Segments(std::string_view rest) {
    std::vector<std::string_view> out;
    size_t start = 0;
    while (start <= rest.size()) {
        size_t slash = rest.find('/', start);
        if (slash == std::string_view::npos) slash = rest.size();
        out.push_back(rest.substr(start, slash - start));
        start = slash + 1;
    }
    return out;
}

RouteMatch MatchRoute(std::string_view path) {
    if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
    if (path == "/healthz") return {RouteId::kHealthz, "GET", {}};
    if (path == "/readyz") return {RouteId::kReadyz, "GET", {}};
    if (path == "/v1/chat/completions") return {RouteId::kChatCompletions, "POST", {}};
    if (path == "/v1/completions") return {RouteId::kCompletions, "POST", {}};
    if (path == "/v1/models") return {RouteId::kModels, "GET", {}};
    if (path == "/v1/events") return {RouteId::kEvents, "POST", {}};
    if (path == "/v1/jobs") return {RouteId::kJobs, "POST", {}};

    auto under = [&](std::string_view prefix) -> std::optional<std::vector<std::string_view>> {
        if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
        auto parts = Segments(path.substr(prefix.size()));
        for (auto part : parts) {
            if (part.empty()) return std::nullopt;
        }
        return parts;
    };
    if (auto parts = under("/v1/models/"); parts && parts->size() == 1) {
        return {RouteId::kModels, "GET", PercentDecode((*parts)[0])};
    }
    if (auto parts = under("/v1/events/"); parts && parts->size() == 1) {
        return {RouteId::kEvents, "POST", PercentDecode((*parts)[0])};
    }
    if (auto parts = under("/v1/jobs/")) {
        if (parts->size() == 1) return {RouteId::kJob, "GET", PercentDecode((*parts)[0])};
        if (parts->size() == 2 && (*parts)[1] == "events") {
            return {RouteId::kJobEvents, "GET", PercentDecode((*parts)[0])};
        }
    }
    return {};
}

}  // namespace

std::string_view RouteName(RouteId route) { return kRouteNames[static_cast<size_t>(route)]; }

bool ApiKey::MayPublish(std::string_view topic) const {
    return topics.empty() || Contains(topics, topic);
}

bool ApiKey::MayCall(std::string_view model) const {
    return models.empty() || Contains(models, model);
}

HttpResponse JsonResponse(int status, const nlohmann::json& body, Headers headers) {
    HttpResponse r;
    r.status = status;
    r.headers = std::move(headers);
    r.body = DumpJson(body);
    return r;
}

HttpResponse ErrorResponse(int status, std::string_view message, std::string_view type,
                           std::string_view code, std::string_view param, Headers headers) {
    return JsonResponse(status, ErrorJson(message, type, param, code), std::move(headers));
}

HttpResponse StatusResponse(const Status& status, std::string_view what) {
    std::string message = fmt::format("{}: {}", what, status.message());
    switch (status.code()) {
        case StatusCode::kResourceExhausted:
            return ErrorResponse(429, message, "rate_limit_error", "backpressure", {},
                                 {{"Retry-After", "1"}});
        case StatusCode::kUnavailable:
        case StatusCode::kAborted:
            return ErrorResponse(503, message, "server_error", "unavailable", {},
                                 {{"Retry-After", "1"}});
        case StatusCode::kDeadlineExceeded:
            return ErrorResponse(504, message, "timeout_error", "timeout");
        case StatusCode::kInvalidArgument:
            return ErrorResponse(400, message, "invalid_request_error", "invalid_request");
        case StatusCode::kNotFound:
            return ErrorResponse(404, message, "invalid_request_error", "not_found");
        default:
            return ErrorResponse(500, message, "server_error", StatusCodeName(status.code()));
    }
}

void TakeTraceContext(const HttpRequest& request, Event* event) {
    const std::string* parent = request.Header("traceparent");
    if (parent == nullptr) return;
    Event probe;
    probe.id = "probe";
    probe.source = "probe";
    probe.type = "probe";
    probe.traceparent = *parent;
    if (const std::string* state = request.Header("tracestate")) probe.tracestate = *state;
    FillDefaults(&probe);
    if (!ValidateEvent(probe).ok()) return;
    event->traceparent = std::move(probe.traceparent);
    event->tracestate = std::move(probe.tracestate);
}

std::string SseEvent(std::string_view data, std::string_view name, std::string_view id) {
    std::string out;
    out.reserve(data.size() + name.size() + id.size() + 24);
    if (!name.empty()) {
        out.append("event: ").append(name).append("\n");
    }
    if (!id.empty()) out.append("id: ").append(id).append("\n");
    // A data line ends at a line break: text with breaks goes out as several data lines.
    size_t start = 0;
    for (;;) {
        size_t end = data.find('\n', start);
        out.append("data: ").append(data.substr(start, end - start)).append("\n");
        if (end == std::string_view::npos) break;
        start = end + 1;
    }
    out.append("\n");
    return out;
}

// ---- Starting and stopping ------------------------------------------------------------------

Server::Server(Broker* broker, pipeline::JobStore* jobs, GatewayOptions options)
    : broker_(broker), jobs_(jobs), options_(std::move(options)) {}

Server::~Server() { Stop(0ms); }

Result<std::unique_ptr<Server>> Server::Start(Broker* broker, pipeline::JobStore* jobs,
                                              GatewayOptions options) {
    if (broker == nullptr) return InvalidArgumentError("gateway: a broker is required");
    std::unique_ptr<Server> server(new Server(broker, jobs, std::move(options)));
    EVENTLOOM_RETURN_IF_ERROR(server->Init());
    return server;
}

Status Server::Init() {
    const pipeline::GatewaySpec& spec = options_.spec;
    EVENTLOOM_ASSIGN_OR_RETURN(auto listen, ParseListenAddress(spec.listen));
    EVENTLOOM_RETURN_IF_ERROR(spec.rate_limits.Validate());

    for (const pipeline::ApiKeySpec& k : spec.api_keys) {
        const char* value = std::getenv(k.key_env.c_str());
        std::string where = k.where.ToString();
        if (value == nullptr || *value == '\0') {
            return InvalidArgumentError(
                fmt::format("{}{}gateway api key: the variable '{}' is not set", where,
                            where.empty() ? "" : ": ", k.key_env));
        }
        ApiKey key;
        key.name = k.key_env;
        key.value = value;
        key.topics = k.topics;
        key.models = k.models;
        if (AnyLimit(spec.rate_limits)) {
            key.limiter = std::make_shared<RateLimiter>(spec.rate_limits);
        }
        keys_.push_back(std::move(key));
    }

    std::set<std::string> models;
    std::vector<std::string> topics;
    for (const ChatRoute& route : options_.chat_routes) {
        if (route.model.empty() || route.topic.empty() || route.reply_topic.empty()) {
            return InvalidArgumentError(fmt::format(
                "gateway model '{}': a route needs a model name, a topic and a reply topic",
                route.model));
        }
        if (!models.insert(route.model).second) {
            return InvalidArgumentError(
                fmt::format("gateway model '{}' is routed twice", route.model));
        }
        topics.push_back(route.reply_topic);
        topics.push_back(route.chunks_topic);
    }
    topics.push_back(options_.results_topic);
    for (const std::string& topic : options_.progress_topics) topics.push_back(topic);
    // A model call that publishes to a topic not synced on every write never blocks: it runs
    // on the I/O thread that read it, saving a hand-off to a worker. One that waits for an fsync
    // goes to the workers, so that I/O threads never wait for the disk.
    inline_completions_ = !options_.chat_routes.empty();
    for (const ChatRoute& route : options_.chat_routes) {
        Result<TopicOptions> topic = broker_->DescribeTopic(route.topic);
        if (!topic.ok() || topic->durability == Durability::kAlways) inline_completions_ = false;
    }

    hub_ = std::make_unique<ReplyHub>(broker_, options_.reply_group);
    EVENTLOOM_RETURN_IF_ERROR(hub_->Start(topics));
    workers_ = std::make_unique<WorkerPool>(options_.workers);

    HttpServerOptions h;
    h.host = listen.first;
    h.port = listen.second;
    h.threads = options_.threads;
    h.max_body_bytes = spec.max_body_bytes;
    h.error_response = [this](int status, std::string message) {
        RouteCounters& c = counters_[static_cast<size_t>(RouteId::kOther)];
        ++c.requests;
        ++(status >= 500 ? c.responses_5xx : c.responses_4xx);
        return ErrorResponse(status, message, "invalid_request_error",
                             status == 413 ? "body_too_large" : "bad_request");
    };
    auto http = HttpServer::Listen(std::move(h), [this](std::shared_ptr<Exchange> exchange) {
        Dispatch(std::move(exchange));
    });
    if (!http.ok()) {
        hub_->Stop();
        workers_->Stop();
        return http.status().WithContext("gateway");
    }
    // Everything handlers read is set before the first request can come in.
    http_ = std::move(http).value();
    started_unix_ = static_cast<int64_t>(std::time(nullptr));
    http_->Run();
    return Status::Ok();
}

void Server::BeginDrain() {
    draining_ = true;
    if (http_) http_->CloseWhenIdle();
}

void Server::Stop(std::chrono::milliseconds grace) {
    if (stopped_.exchange(true) || !http_) return;
    BeginDrain();
    http_->StopAccepting();

    // A job's event stream lasts as long as its job: end those now, let the rest finish.
    std::vector<std::shared_ptr<Stream>> streams;
    {
        std::lock_guard<std::mutex> lock(streams_mu_);
        for (auto& [raw, weak] : streams_) {
            if (auto stream = weak.lock()) streams.push_back(std::move(stream));
        }
    }
    for (auto& stream : streams) stream->Shutdown();
    streams.clear();
    {
        std::unique_lock<std::mutex> lock(idle_mu_);
        idle_cv_.wait_for(lock, grace, [this] { return in_flight_ == 0; });
    }

    // No more answers, no more tasks, then no more I/O: each step's callbacks reach only
    // what the later steps still keep alive.
    hub_->Stop();
    workers_->Stop();
    http_->Stop();
}

GatewayStats Server::stats() const {
    GatewayStats s;
    s.in_flight = in_flight_;
    for (size_t i = 0; i < kRouteCount; ++i) {
        const RouteCounters& c = counters_[i];
        GatewayRouteStats r;
        r.route = std::string(kRouteNames[i]);
        r.requests = c.requests;
        r.responses_2xx = c.responses_2xx;
        r.responses_4xx = c.responses_4xx;
        r.responses_5xx = c.responses_5xx;
        r.aborted = c.aborted;
        s.requests += r.requests;
        s.responses_2xx += r.responses_2xx;
        s.responses_4xx += r.responses_4xx;
        s.responses_5xx += r.responses_5xx;
        s.aborted += r.aborted;
        s.routes.push_back(std::move(r));
    }
    return s;
}

// ---- Requests -------------------------------------------------------------------------------

void Server::Count(RouteId route, int status, bool completed) {
    RouteCounters& c = counters_[static_cast<size_t>(route)];
    if (!completed) {
        ++c.aborted;
    } else if (status >= 500) {
        ++c.responses_5xx;
    } else if (status >= 400) {
        ++c.responses_4xx;
    } else if (status >= 200 && status < 300) {
        ++c.responses_2xx;
    }
    {
        std::lock_guard<std::mutex> lock(idle_mu_);
        --in_flight_;
    }
    idle_cv_.notify_all();
}

void Server::Dispatch(std::shared_ptr<Exchange> exchange) {
    const HttpRequest& request = exchange->request();
    RouteMatch match = MatchRoute(request.path);
    ++counters_[static_cast<size_t>(match.route)].requests;
    ++in_flight_;
    exchange->OnFinish([this, route = match.route](int status, bool completed) {
        Count(route, status, completed);
    });

    if (match.route == RouteId::kOther) {
        exchange->Respond(ErrorResponse(404, fmt::format("no such endpoint: '{}'", request.path),
                                        "invalid_request_error", "not_found"));
        return;
    }
    if (request.method != match.allow) {
        exchange->Respond(ErrorResponse(405,
                                        fmt::format("method {} is not allowed on '{}': use {}",
                                                    request.method, request.path, match.allow),
                                        "invalid_request_error", "method_not_allowed", {},
                                        {{"Allow", std::string(match.allow)}}));
        return;
    }
    if (match.route == RouteId::kHealthz) {
        exchange->Respond(JsonResponse(200, {{"status", "ok"}}));
        return;
    }
    if (match.route == RouteId::kReadyz) {
        exchange->Respond(Readyz());
        return;
    }
    if (draining_) {
        exchange->Respond(ErrorResponse(503, "the gateway is shutting down: retry elsewhere",
                                        "server_error", "draining", {}, {{"Retry-After", "2"}}));
        return;
    }

    RequestContext ctx;
    ctx.exchange = std::move(exchange);
    ctx.route = match.route;
    ctx.param = std::move(match.param);
    if (!Authenticate(&ctx)) return;
    if (inline_completions_ &&
        (ctx.route == RouteId::kChatCompletions || ctx.route == RouteId::kCompletions)) {
        RunHandler(std::move(ctx));
        return;
    }
    auto respond_busy = ctx.exchange;
    if (!workers_->Post([this, ctx = std::move(ctx)]() mutable { RunHandler(std::move(ctx)); })) {
        respond_busy->Respond(ErrorResponse(503, "the gateway is shutting down", "server_error",
                                            "draining", {}, {{"Retry-After", "2"}}));
    }
}

HttpResponse Server::Readyz() const {
    if (draining_) {
        return JsonResponse(503, {{"status", "draining"}}, {{"Retry-After", "2"}});
    }
    if (options_.ready && !options_.ready()) {
        return JsonResponse(503, {{"status", "starting"}}, {{"Retry-After", "1"}});
    }
    return JsonResponse(200, {{"status", "ready"}});
}

bool Server::Authenticate(RequestContext* ctx) {
    if (keys_.empty()) return true;
    const Headers challenge = {{"WWW-Authenticate", "Bearer realm=\"eventloom\""}};
    const std::string* header = ctx->request().Header("authorization");
    std::string_view token;
    if (header != nullptr) {
        std::string_view value = *header;
        constexpr std::string_view kScheme = "bearer ";
        if (value.size() > kScheme.size() &&
            std::equal(kScheme.begin(), kScheme.end(), value.begin(), [](char a, char b) {
                return a == std::tolower(static_cast<unsigned char>(b));
            })) {
            token = value.substr(kScheme.size());
            while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
            while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
        }
    }
    if (token.empty()) {
        ctx->exchange->Respond(
            ErrorResponse(401, "missing API key: send the header 'Authorization: Bearer <key>'",
                          "invalid_request_error", "missing_api_key", {}, challenge));
        return false;
    }
    const ApiKey* found = nullptr;
    for (const ApiKey& key : keys_) {
        if (SameSecret(key.value, token) && found == nullptr) found = &key;
    }
    if (found == nullptr) {
        ctx->exchange->Respond(ErrorResponse(
            401, "the API key is not valid", "invalid_request_error", "invalid_api_key", {},
            {{"WWW-Authenticate", "Bearer realm=\"eventloom\", error=\"invalid_token\""}}));
        return false;
    }
    ctx->key = found;
    return true;
}

void Server::RunHandler(RequestContext ctx) {
    const bool job_route = ctx.route == RouteId::kJobs || ctx.route == RouteId::kJob ||
                           ctx.route == RouteId::kJobEvents;
    if (job_route && jobs_ == nullptr) {
        ctx.exchange->Respond(ErrorResponse(404, "this gateway runs no jobs (it has no job store)",
                                            "invalid_request_error", "not_found"));
        return;
    }
    switch (ctx.route) {
        case RouteId::kChatCompletions:
        case RouteId::kCompletions:
            HandleCompletion(*this, std::move(ctx));
            break;
        case RouteId::kModels:
            HandleModels(*this, std::move(ctx));
            break;
        case RouteId::kEvents:
            HandleEvents(*this, std::move(ctx));
            break;
        case RouteId::kJobs:
            HandleJobCreate(*this, std::move(ctx));
            break;
        case RouteId::kJob:
            HandleJobGet(*this, std::move(ctx));
            break;
        case RouteId::kJobEvents:
            HandleJobEvents(*this, std::move(ctx));
            break;
        default:
            ctx.exchange->Respond(
                ErrorResponse(404, "no such endpoint", "invalid_request_error", "not_found"));
    }
}

const ChatRoute* Server::FindChatRoute(std::string_view model) const {
    for (const ChatRoute& route : options_.chat_routes) {
        if (route.model == model) return &route;
    }
    return nullptr;
}

std::shared_ptr<RateLimiter> Server::AddressLimiter(const std::string& address) {
    std::lock_guard<std::mutex> lock(limiters_mu_);
    auto it = address_limiters_.find(address);
    if (it != address_limiters_.end()) return it->second;
    // TODO(#5): forget idle addresses one by one instead of starting over at the cap (which
    // gives every address a fresh burst).
    if (address_limiters_.size() >= kMaxAddressLimiters) address_limiters_.clear();
    auto limiter = std::make_shared<RateLimiter>(options_.spec.rate_limits);
    address_limiters_.emplace(address, limiter);
    return limiter;
}

bool Server::Admit(const RequestContext& ctx, const std::string& topic, double weight,
                   std::shared_ptr<RateLimiter>* charged) {
    const pipeline::GatewaySpec& spec = options_.spec;
    if (!topic.empty() && spec.max_backlog > 0 && options_.backlog) {
        int64_t backlog = options_.backlog(topic);
        if (backlog > spec.max_backlog) {
            ctx.exchange->Respond(ErrorResponse(
                429,
                fmt::format("topic '{}' has a backlog of {} events, more than the gateway's "
                            "max_backlog of {}: retry later",
                            topic, backlog, spec.max_backlog),
                "rate_limit_error", "backlog_full", {}, {{"Retry-After", "1"}}));
            return false;
        }
    }

    if (!AnyLimit(spec.rate_limits)) return true;
    std::shared_ptr<RateLimiter> limiter =
        ctx.key != nullptr ? ctx.key->limiter : AddressLimiter(ctx.request().remote);
    if (limiter == nullptr) return true;
    if (auto wait = limiter->TryAcquire(weight)) {
        ctx.exchange->Respond(
            ErrorResponse(429,
                          fmt::format("rate limit reached for {}: retry in {} s",
                                      ctx.key != nullptr ? "this API key" : "this client address",
                                      RetryAfterSeconds(*wait)),
                          "rate_limit_error", "rate_limit_exceeded", {},
                          {{"Retry-After", RetryAfterSeconds(*wait)}}));
        return false;
    }
    if (charged != nullptr) *charged = limiter;
    return true;
}

bool Server::MayPublish(const RequestContext& ctx, const std::string& topic) {
    if (ctx.key == nullptr || ctx.key->MayPublish(topic)) return true;
    ctx.exchange->Respond(
        ErrorResponse(403, fmt::format("this API key may not publish to topic '{}'", topic),
                      "permission_error", "topic_not_allowed"));
    return false;
}

void Server::AddStream(const std::shared_ptr<Stream>& stream) {
    std::lock_guard<std::mutex> lock(streams_mu_);
    streams_[stream.get()] = stream;
}

void Server::RemoveStream(Stream* stream) {
    std::lock_guard<std::mutex> lock(streams_mu_);
    streams_.erase(stream);
}

}  // namespace eventloom::gateway::internal
