// Jobs: POST /v1/jobs, GET /v1/jobs/{id}, GET /v1/jobs/{id}/events.
//
// POST creates the job record (queued) before it publishes the job's event, so the pipeline
// can never finish a job the store does not know yet.
//
// The events stream (server-sent events) registers its waiter before it reads the job store,
// so nothing is missed between the two: progress (chunk events of the job on the progress
// topics) goes out as `event: progress`, the final event on the results topic as
// `event: failed` (type job.failed) or `event: result` (any other type), and then the stream
// ends. A job finished before the client came gets its final event at once, rebuilt from the
// record. Each SSE event's data is the event in the CloudEvents JSON format. A comment line
// every 15 s keeps proxies from closing an idle stream and notices a client that left; each
// beat also reads the job store again, in case the final event went by unseen.
#include <fmt/format.h>

#include <algorithm>

#include "common/logging.h"
#include "common/uuid.h"
#include "gateway/openai_json.h"
#include "gateway/server.h"
#include "pipeline/outbound/job_store.h"

namespace eventloom::gateway::internal {

namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr std::string_view kSource = "eventloom/gateway";
constexpr std::chrono::milliseconds kHeartbeat = 15s;

std::string JoinTopics(const std::vector<std::string>& topics) {
    std::string out;
    for (const std::string& topic : topics) {
        if (!out.empty()) out += ", ";
        out += topic;
    }
    return out;
}

HttpResponse BadBody(std::string message, std::string_view param = {}) {
    return ErrorResponse(400, message, "invalid_request_error", "invalid_request", param);
}

// The final event of a job that finished before its stream began, from its record, in the
// shape the pipeline's notify and job-failure stages publish live: job.succeeded with
// {"job", "type", "result"}, job.failed with {"job", "error", "stage"} (the record keeps no
// stage: null).
Event FinalEventOf(const pipeline::JobRecord& job) {
    Event e;
    e.id = job.id + "/final";
    e.source = std::string(kSource);
    e.correlationid = job.id;
    e.datacontenttype = "application/json";
    e.has_data = true;
    if (job.status == pipeline::JobStatus::kFailed) {
        e.type = "job.failed";
        e.data = DumpJson(json{{"job", job.id}, {"error", job.error}, {"stage", nullptr}});
    } else {
        e.type = "job.succeeded";
        json result = job.result.empty() ? json(nullptr) : json::parse(job.result, nullptr, false);
        if (result.is_discarded()) result = job.result;
        e.data = DumpJson(
            json{{"job", job.id}, {"type", job.result_type}, {"result", std::move(result)}});
    }
    return e;
}

class JobStream : public Stream, public std::enable_shared_from_this<JobStream> {
public:
    JobStream(Server& server, RequestContext ctx) : server_(server), ctx_(std::move(ctx)) {}

    // On a worker.
    void Begin() {
        const std::string& id = ctx_.param;
        token_ = server_.hub().Register(
            id, [self = shared_from_this()](const std::string& topic,
                                            const std::shared_ptr<const Event>& event) {
                self->OnEvent(topic, event);
            });

        auto job = server_.jobs()->Get(id);
        if (!job.ok() || (ctx_.key != nullptr && !ctx_.key->MayPublish(job->topic))) {
            {
                std::lock_guard<std::mutex> lock(mu_);
                done_ = true;
                early_.clear();
            }
            server_.hub().Unregister(id, token_);
            token_ = 0;
            if (!job.ok()) {
                ctx_.exchange->Respond(JobLookupError(job.status(), id));
            } else {
                ctx_.exchange->Respond(ErrorResponse(
                    403, fmt::format("this API key may not follow jobs of topic '{}'", job->topic),
                    "permission_error", "topic_not_allowed"));
            }
            return;
        }

        std::weak_ptr<JobStream> weak = weak_from_this();
        ctx_.exchange->OnFinish([weak](int, bool) {
            if (auto self = weak.lock()) self->OnExchangeOver();
        });
        server_.AddStream(shared_from_this());

        std::lock_guard<std::mutex> lock(mu_);
        if (done_) {
            // Stop came first.
            ctx_.exchange->Respond(ErrorResponse(503, "the gateway is shutting down",
                                                 "server_error", "draining", {},
                                                 {{"Retry-After", "2"}}));
            return;
        }
        started_ = true;
        ctx_.exchange->StartStream(200, {{"Content-Type", "text/event-stream"},
                                         {"Cache-Control", "no-cache"},
                                         {"X-Accel-Buffering", "no"}});
        if (job->status != pipeline::JobStatus::kQueued) {
            SendFinal(FinalEventOf(*job));
            return;
        }
        for (auto& [topic, event] : early_) {
            if (done_) break;
            Forward(topic, *event);
        }
        early_.clear();
        if (!done_) ArmHeartbeat();
    }

    void Shutdown() override {
        std::lock_guard<std::mutex> lock(mu_);
        if (done_) return;
        if (started_) ctx_.exchange->End();
        Done();
    }

    static HttpResponse JobLookupError(const Status& status, const std::string& id) {
        if (status.code() == StatusCode::kNotFound ||
            status.code() == StatusCode::kInvalidArgument) {
            return ErrorResponse(404, fmt::format("no job '{}' (or it expired)", id),
                                 "invalid_request_error", "job_not_found");
        }
        return StatusResponse(status, fmt::format("read job '{}'", id));
    }

private:
    // On a hub thread.
    void OnEvent(const std::string& topic, const std::shared_ptr<const Event>& event) {
        std::lock_guard<std::mutex> lock(mu_);
        if (done_) return;
        if (!started_) {
            early_.emplace_back(topic, event);
            return;
        }
        Forward(topic, *event);
    }

    // The rest runs with mu_ held.
    void Forward(const std::string& topic, const Event& event) {
        const GatewayOptions& o = server_.options();
        if (topic == o.results_topic) {
            SendFinal(event);
            return;
        }
        if (std::find(o.progress_topics.begin(), o.progress_topics.end(), topic) !=
            o.progress_topics.end()) {
            ctx_.exchange->Write(SseEvent(EventToJson(event), "progress", event.id));
        }
    }

    void SendFinal(const Event& event) {
        std::string_view name = event.type == "job.failed" ? "failed" : "result";
        ctx_.exchange->Write(SseEvent(EventToJson(event), name, event.id));
        ctx_.exchange->End();
        Done();
    }

    void ArmHeartbeat() {
        std::weak_ptr<JobStream> weak = weak_from_this();
        heartbeat_ = server_.http().After(kHeartbeat, [weak] {
            if (auto self = weak.lock()) self->Beat();
        });
    }

    // On an I/O thread: the comment line now, the store read on a worker.
    void Beat() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (done_) return;
            ctx_.exchange->Write(": keep-alive\n\n");
            ArmHeartbeat();
        }
        std::weak_ptr<JobStream> weak = weak_from_this();
        server_.workers().Post([weak] {
            if (auto self = weak.lock()) self->Recheck();
        });
    }

    void Recheck() {
        auto job = server_.jobs()->Get(ctx_.param);
        if (!job.ok() || job->status == pipeline::JobStatus::kQueued) return;
        std::lock_guard<std::mutex> lock(mu_);
        if (!done_) SendFinal(FinalEventOf(*job));
    }

    void OnExchangeOver() {
        std::lock_guard<std::mutex> lock(mu_);
        if (!done_) Done();
    }

    void Done() {
        done_ = true;
        early_.clear();
        if (heartbeat_) heartbeat_->Cancel();
        heartbeat_.reset();
        if (token_ != 0) {
            server_.workers().Post([hub = &server_.hub(), id = ctx_.param, token = token_] {
                hub->Unregister(id, token);
            });
            token_ = 0;
        }
        server_.RemoveStream(this);
    }

    Server& server_;
    RequestContext ctx_;
    std::mutex mu_;
    uint64_t token_ = 0;
    bool started_ = false;
    bool done_ = false;
    std::vector<std::pair<std::string, std::shared_ptr<const Event>>> early_;
    std::shared_ptr<Timer> heartbeat_;
};

}  // namespace

void HandleJobCreate(Server& server, RequestContext ctx) {
    const pipeline::GatewaySpec& spec = server.options().spec;
    json body;
    try {
        body = json::parse(ctx.request().body);
    } catch (const json::exception& e) {
        ctx.exchange->Respond(BadBody(std::string("the body is not valid JSON: ") + e.what()));
        return;
    }
    if (!body.is_object()) {
        ctx.exchange->Respond(BadBody("the body must be a JSON object"));
        return;
    }

    std::string topic;
    if (auto it = body.find("topic"); it != body.end() && !it->is_null()) {
        if (!it->is_string()) {
            ctx.exchange->Respond(BadBody("'topic' must be a string", "topic"));
            return;
        }
        topic = it->get<std::string>();
    } else if (!spec.job_topics.empty()) {
        topic = spec.job_topics.front();
    } else {
        ctx.exchange->Respond(ErrorResponse(404,
                                            "this gateway takes no jobs: its job_topics list "
                                            "is empty",
                                            "invalid_request_error", "topic_not_found"));
        return;
    }
    if (std::find(spec.job_topics.begin(), spec.job_topics.end(), topic) == spec.job_topics.end()) {
        ctx.exchange->Respond(ErrorResponse(
            404,
            fmt::format("topic '{}' takes no jobs (the gateway's job_topics: {})", topic,
                        spec.job_topics.empty() ? "none" : JoinTopics(spec.job_topics)),
            "invalid_request_error", "topic_not_found", "topic"));
        return;
    }
    if (!server.MayPublish(ctx, topic)) return;

    std::string type = "job.requested";
    if (auto it = body.find("type"); it != body.end() && !it->is_null()) {
        if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
            ctx.exchange->Respond(BadBody("'type' must be a non-empty string", "type"));
            return;
        }
        type = it->get<std::string>();
    }
    auto data = body.find("data");
    if (data == body.end()) {
        ctx.exchange->Respond(BadBody("'data' is required (any JSON value)", "data"));
        return;
    }
    std::string webhook;
    if (auto it = body.find("webhook"); it != body.end() && !it->is_null()) {
        if (!it->is_string()) {
            ctx.exchange->Respond(BadBody("'webhook' must be a string URL", "webhook"));
            return;
        }
        webhook = it->get<std::string>();
        if (webhook.rfind("http://", 0) != 0 && webhook.rfind("https://", 0) != 0) {
            ctx.exchange->Respond(BadBody(
                fmt::format("'webhook' must be an http:// or https:// URL, got '{}'", webhook),
                "webhook"));
            return;
        }
    }
    if (!server.Admit(ctx, topic, 0)) return;

    Event event;
    event.id = NewEventId();
    event.source = std::string(kSource);
    event.type = type;
    event.correlationid = event.id;
    event.partitionkey = event.id;
    event.datacontenttype = "application/json";
    event.data = DumpJson(*data);
    event.has_data = true;
    TakeTraceContext(ctx.request(), &event);
    FillDefaults(&event);
    if (Status valid = ValidateEvent(event); !valid.ok()) {
        ctx.exchange->Respond(BadBody(valid.message()));
        return;
    }

    pipeline::JobRecord record;
    record.id = event.id;
    record.pipeline = server.options().pipeline_name;
    record.topic = topic;
    // Where the event lands is known only after the publish, which must come after the record.
    record.partition = -1;
    record.offset = -1;
    record.webhook_url = webhook;
    if (Status created = server.jobs()->Create(record); !created.ok()) {
        ctx.exchange->Respond(StatusResponse(created, "create the job record"));
        return;
    }
    auto published = server.broker()->Publish(topic, event);
    if (!published.ok()) {
        server.jobs()
            ->Fail(event.id,
                   "the gateway could not publish the job: " + published.status().ToString())
            .status()
            .IgnoreError();
        ctx.exchange->Respond(
            StatusResponse(published.status(), fmt::format("publish to topic '{}'", topic)));
        return;
    }
    // The job is accepted now, whatever happens to this note of its position.
    if (Status noted = server.jobs()->SetPosition(event.id, published->partition.value(),
                                                  published->offset.value());
        !noted.ok()) {
        logging::Get("gateway")->warn("job {}: recording its position: {}", event.id,
                                      noted.ToString());
    }

    std::string status_url = "/v1/jobs/" + event.id;
    ctx.exchange->Respond(JsonResponse(202,
                                       {{"id", event.id},
                                        {"status", "queued"},
                                        {"status_url", status_url},
                                        {"events_url", status_url + "/events"},
                                        {"topic", topic},
                                        {"partition", published->partition.value()},
                                        {"offset", published->offset.value()}},
                                       {{"Location", status_url}}));
}

void HandleJobGet(Server& server, RequestContext ctx) {
    if (!server.Admit(ctx, {}, 0)) return;
    auto job = server.jobs()->Get(ctx.param);
    if (!job.ok()) {
        ctx.exchange->Respond(JobStream::JobLookupError(job.status(), ctx.param));
        return;
    }
    if (ctx.key != nullptr && !ctx.key->MayPublish(job->topic)) {
        ctx.exchange->Respond(ErrorResponse(
            403, fmt::format("this API key may not read jobs of topic '{}'", job->topic),
            "permission_error", "topic_not_allowed"));
        return;
    }
    HttpResponse response;
    response.body = pipeline::JobRecordToJson(*job);
    ctx.exchange->Respond(std::move(response));
}

void HandleJobEvents(Server& server, RequestContext ctx) {
    if (!server.Admit(ctx, {}, 0)) return;
    std::make_shared<JobStream>(server, std::move(ctx))->Begin();
}

}  // namespace eventloom::gateway::internal
