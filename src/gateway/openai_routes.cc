// The OpenAI endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models.
//
// A completion call is one CompletionCall: it registers on the ReplyHub under the new event's
// id, publishes the "llm.request" event, and then answers from what the hub brings back:
//   - the completion event on the route's reply topic: the JSON response, or, when streaming,
//     the text not streamed yet, the final chunk (finish_reason), the usage chunk when asked
//     for, and "data: [DONE]";
//   - chunk events on the route's chunk topic (streaming only): put back in index order and
//     sent as deltas; a retried event streams again under a higher attempt, whose text is
//     sent only beyond what the client already has;
//   - "job.failed" on the results topic (the pipeline dead-lettered the request): 500, or an
//     error event in the stream.
// A sync call that gets no completion within spec.request_timeout gets 504; a stream times out
// after request_timeout without any chunk. Hub events that arrive before the publish returns
// are held until it does, so the response always starts first.
#include <fmt/format.h>

#include <ctime>
#include <map>

#include "common/logging.h"
#include "common/uuid.h"
#include "gateway/openai_json.h"
#include "gateway/server.h"
#include "pipeline/outbound/job_store.h"

namespace eventloom::gateway::internal {

namespace {

using nlohmann::json;

constexpr std::string_view kSource = "eventloom/gateway";

int64_t NowUnixMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Prompt tokens are guessed at four bytes each, plus the tokens the call may generate.
double EstimateTokens(const CompletionRequest& request) {
    double tokens = 0;
    if (auto messages = request.body.find("messages"); messages != request.body.end()) {
        tokens += static_cast<double>(DumpJson(*messages).size()) / 4;
    }
    if (auto prompt = request.body.find("prompt"); prompt != request.body.end()) {
        if (prompt->is_string())
            tokens += static_cast<double>(prompt->get_ref<const std::string&>().size()) / 4;
    }
    for (const char* key : {"max_tokens", "max_completion_tokens"}) {
        if (auto it = request.body.find(key); it != request.body.end() && it->is_number()) {
            tokens += it->get<double>();
            break;
        }
    }
    return tokens;
}

// Why the pipeline gave up on an event, from a job.failed event's data.
std::string FailureReason(const Event& event) {
    json data = json::parse(event.data, nullptr, false);
    if (data.is_object()) {
        for (const char* key : {"error", "reason", "message"}) {
            if (auto it = data.find(key); it != data.end() && it->is_string()) {
                return it->get<std::string>();
            }
        }
    }
    return event.data.empty() ? std::string("no reason given") : event.data;
}

class CompletionCall : public std::enable_shared_from_this<CompletionCall> {
public:
    CompletionCall(Server& server, RequestContext ctx, ApiKind kind, CompletionRequest request,
                   const ChatRoute& route, std::shared_ptr<RateLimiter> limiter, double weight)
        : server_(server),
          ctx_(std::move(ctx)),
          kind_(kind),
          request_(std::move(request)),
          route_(route),
          limiter_(std::move(limiter)),
          weight_(weight),
          id_(NewEventId()),
          created_(static_cast<int64_t>(std::time(nullptr))) {}

    // On a worker: registers, publishes, starts the response or the timer.
    void Begin() {
        Result<Event> event = BuildEvent();
        if (!event.ok()) {
            ctx_.exchange->Respond(ErrorResponse(400, event.status().message(),
                                                 "invalid_request_error", "invalid_request"));
            return;
        }

        std::weak_ptr<CompletionCall> weak = weak_from_this();
        token_ = server_.hub().Register(
            id_, [self = shared_from_this()](const std::string& topic,
                                             const std::shared_ptr<const Event>& e) {
                self->OnEvent(topic, e);
            });
        ctx_.exchange->OnFinish([weak](int, bool completed) {
            if (auto self = weak.lock()) self->OnExchangeOver();
        });

        {
            std::lock_guard<std::mutex> lock(mu_);
            if (done_) return;  // the connection is gone already
        }
        auto published = server_.broker()->Publish(route_.topic, *event);
        std::lock_guard<std::mutex> lock(mu_);
        if (done_) return;  // the client went away meanwhile
        if (!published.ok()) {
            ctx_.exchange->Respond(StatusResponse(
                published.status(), fmt::format("publish to topic '{}'", route_.topic)));
            Done();
            return;
        }
        published_ = true;
        if (request_.stream) {
            ctx_.exchange->StartStream(200, {{"Content-Type", "text/event-stream"},
                                             {"Cache-Control", "no-cache"},
                                             {"X-Accel-Buffering", "no"},
                                             {"x-request-id", id_}});
            if (kind_ == ApiKind::kChat)
                WriteJson(StreamChunk(kind_, id_, created_, route_.model, "", true, std::nullopt));
        }
        ArmTimer();
        for (auto& [topic, e] : early_) {
            if (done_) break;
            Process(topic, *e);
        }
        early_.clear();
    }

private:
    Result<Event> BuildEvent() {
        Event e;
        e.id = id_;
        e.source = std::string(kSource);
        e.type = "llm.request";
        e.correlationid = id_;
        // The chunks and the completion derive the key from it: one partition, in order.
        e.partitionkey = id_;
        e.datacontenttype = "application/json";
        e.data = DumpJson(request_.body);
        e.has_data = true;
        if (!request_.stream) {
            // Nobody waits for the answer after this: the LLM stage may drop it then.
            auto timeout = server_.options().spec.request_timeout;
            e.deadline = pipeline::FormatRfc3339Ms(NowUnixMs() + timeout.count());
        }
        TakeTraceContext(ctx_.request(), &e);
        FillDefaults(&e);
        EVENTLOOM_RETURN_IF_ERROR(ValidateEvent(e));
        return e;
    }

    // On a hub thread.
    void OnEvent(const std::string& topic, const std::shared_ptr<const Event>& event) {
        std::lock_guard<std::mutex> lock(mu_);
        if (done_) return;
        if (!published_) {
            early_.emplace_back(topic, event);
            return;
        }
        Process(topic, *event);
    }

    // The rest runs with mu_ held.
    void Process(const std::string& topic, const Event& event) {
        if (!route_.chunks_topic.empty() && topic == route_.chunks_topic &&
            event.type == "llm.chunk") {
            if (request_.stream) OnChunk(event);
            return;
        }
        if (topic == route_.reply_topic) {
            OnCompletion(event);
            return;
        }
        if (topic == server_.options().results_topic && event.type == "job.failed") {
            OnFailure(FailureReason(event));
        }
    }

    void OnChunk(const Event& event) {
        json data = json::parse(event.data, nullptr, false);
        if (!data.is_object() || !data.contains("text") || !data["text"].is_string()) return;
        int attempt = data.value("attempt", 0);
        int index = data.value("index", 0);
        if (attempt < attempt_) return;  // a late chunk of an attempt that was retried
        if (attempt > attempt_) {
            attempt_ = attempt;
            next_index_ = 0;
            pending_.clear();
            attempt_text_.clear();
        }
        if (index < next_index_) return;  // seen already
        pending_[index] = data["text"].get<std::string>();
        for (auto it = pending_.find(next_index_); it != pending_.end();
             it = pending_.find(next_index_)) {
            attempt_text_ += it->second;
            pending_.erase(it);
            ++next_index_;
        }
        SendBeyond(attempt_text_, attempt_);
        ArmTimer();
    }

    // Sends the part of `text` the client does not have yet, if what it has is a prefix of it.
    void SendBeyond(const std::string& text, int attempt) {
        if (attempt == sent_attempt_) {
            if (text.size() > sent_.size()) {
                WriteDelta(std::string_view(text).substr(sent_.size()));
                sent_ = text;
            }
            return;
        }
        // Another attempt: it restarts the text, which continues the stream only while it
        // repeats what was sent.
        if (text.size() < sent_.size() || text.compare(0, sent_.size(), sent_) != 0) {
            // TODO(#5): a retry that generates different text cannot be shown to an OpenAI
            // client, which has no way to take back the text it got; the rest is dropped.
            return;
        }
        sent_attempt_ = attempt;
        if (text.size() > sent_.size()) {
            WriteDelta(std::string_view(text).substr(sent_.size()));
            sent_ = text;
        }
    }

    void OnCompletion(const Event& event) {
        Completion completion = ParseCompletion(event.data);
        if (limiter_ && completion.total_tokens > 0) {
            limiter_->AdjustTokens(weight_ - static_cast<double>(completion.total_tokens));
        }
        if (!request_.stream) {
            ctx_.exchange->Respond(JsonResponse(
                200, CompletionResponse(kind_, id_, created_, route_.model, completion),
                {{"x-request-id", id_}}));
            Done();
            return;
        }
        // The completion's text is the whole text of the attempt that succeeded.
        SendBeyond(completion.text, kCompletionAttempt);
        WriteJson(
            StreamChunk(kind_, id_, created_, route_.model, "", false, completion.finish_reason));
        if (request_.include_usage) {
            WriteJson(UsageChunk(kind_, id_, created_, route_.model, completion));
        }
        ctx_.exchange->Write("data: [DONE]\n\n");
        ctx_.exchange->End();
        Done();
    }

    void OnFailure(const std::string& reason) {
        std::string message = fmt::format("the pipeline gave up on the request: {}", reason);
        if (!request_.stream) {
            ctx_.exchange->Respond(ErrorResponse(500, message, "server_error", "request_failed"));
        } else {
            WriteJson(ErrorJson(message, "server_error", {}, "request_failed"));
            ctx_.exchange->End();
        }
        Done();
    }

    void OnTimeout() {
        std::lock_guard<std::mutex> lock(mu_);
        if (done_) return;
        auto timeout = server_.options().spec.request_timeout.count();
        std::string message =
            request_.stream
                ? fmt::format("no chunk from the pipeline for {} ms (gateway.request_timeout)",
                              timeout)
                : fmt::format("no reply from the pipeline within {} ms (gateway.request_timeout)",
                              timeout);
        if (!request_.stream) {
            ctx_.exchange->Respond(ErrorResponse(504, message, "timeout_error", "request_timeout"));
        } else {
            WriteJson(ErrorJson(message, "timeout_error", {}, "request_timeout"));
            ctx_.exchange->End();
        }
        Done();
    }

    // The response is over before the call was: the client went away (or the server stops).
    void OnExchangeOver() {
        std::lock_guard<std::mutex> lock(mu_);
        if (!done_) Done();
    }

    void WriteJson(const json& value) { ctx_.exchange->Write("data: " + DumpJson(value) + "\n\n"); }

    void WriteDelta(std::string_view text) {
        WriteJson(StreamChunk(kind_, id_, created_, route_.model, text, false, std::nullopt));
    }

    void ArmTimer() {
        if (timer_) timer_->Cancel();
        std::weak_ptr<CompletionCall> weak = weak_from_this();
        timer_ = server_.http().After(server_.options().spec.request_timeout, [weak] {
            if (auto self = weak.lock()) self->OnTimeout();
        });
    }

    // Marks the call over; the hub forgets it from a worker (callbacks may not unregister).
    void Done() {
        done_ = true;
        if (timer_) timer_->Cancel();
        timer_.reset();
        early_.clear();
        if (token_ != 0) {
            server_.workers().Post(
                [hub = &server_.hub(), id = id_, token = token_] { hub->Unregister(id, token); });
            token_ = 0;
        }
    }

    static constexpr int kCompletionAttempt = 1 << 30;  // after every chunk's attempt

    Server& server_;
    RequestContext ctx_;
    const ApiKind kind_;
    const CompletionRequest request_;
    const ChatRoute& route_;  // in the server's options
    std::shared_ptr<RateLimiter> limiter_;
    const double weight_;
    const std::string id_;
    const int64_t created_;

    std::mutex mu_;
    uint64_t token_ = 0;
    bool published_ = false;
    bool done_ = false;
    std::vector<std::pair<std::string, std::shared_ptr<const Event>>> early_;
    std::shared_ptr<Timer> timer_;
    // Streaming: the attempt being followed, its chunks put back in order, and what was sent.
    int attempt_ = 0;
    int next_index_ = 0;
    std::map<int, std::string> pending_;
    std::string attempt_text_;
    std::string sent_;
    int sent_attempt_ = -1;
};

json ModelObject(const ChatRoute& route, int64_t created) {
    return json{
        {"id", route.model}, {"object", "model"}, {"created", created}, {"owned_by", "eventloom"}};
}

}  // namespace

void HandleCompletion(Server& server, RequestContext ctx) {
    ApiKind kind = ctx.route == RouteId::kChatCompletions ? ApiKind::kChat : ApiKind::kCompletion;
    std::string param;
    auto request = ParseCompletionRequest(ctx.request().body, kind, &param);
    if (!request.ok()) {
        ctx.exchange->Respond(ErrorResponse(400, request.status().message(),
                                            "invalid_request_error", "invalid_request", param));
        return;
    }
    const ChatRoute* route = server.FindChatRoute(request->model);
    if (route == nullptr) {
        ctx.exchange->Respond(ErrorResponse(
            404,
            fmt::format("The model '{}' does not exist or is not served by this gateway",
                        request->model),
            "invalid_request_error", "model_not_found", "model"));
        return;
    }
    if (ctx.key != nullptr && !ctx.key->MayCall(route->model)) {
        ctx.exchange->Respond(
            ErrorResponse(403, fmt::format("this API key may not call model '{}'", route->model),
                          "permission_error", "model_not_allowed", "model"));
        return;
    }

    double weight = EstimateTokens(*request);
    std::shared_ptr<RateLimiter> limiter;
    if (!server.Admit(ctx, route->topic, weight, &limiter)) return;
    auto call =
        std::make_shared<CompletionCall>(server, std::move(ctx), kind, std::move(request).value(),
                                         *route, std::move(limiter), weight);
    call->Begin();
}

void HandleModels(Server& server, RequestContext ctx) {
    if (!server.Admit(ctx, {}, 0)) return;
    if (!ctx.param.empty()) {
        const ChatRoute* route = server.FindChatRoute(ctx.param);
        if (route == nullptr || (ctx.key != nullptr && !ctx.key->MayCall(route->model))) {
            ctx.exchange->Respond(ErrorResponse(
                404,
                fmt::format("The model '{}' does not exist or is not served by this gateway",
                            ctx.param),
                "invalid_request_error", "model_not_found", "model"));
            return;
        }
        ctx.exchange->Respond(JsonResponse(200, ModelObject(*route, server.started_unix())));
        return;
    }
    json data = json::array();
    for (const ChatRoute& route : server.options().chat_routes) {
        if (ctx.key != nullptr && !ctx.key->MayCall(route.model)) continue;
        data.push_back(ModelObject(route, server.started_unix()));
    }
    ctx.exchange->Respond(JsonResponse(200, {{"object", "list"}, {"data", std::move(data)}}));
}

}  // namespace eventloom::gateway::internal
