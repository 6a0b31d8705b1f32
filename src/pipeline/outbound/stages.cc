// The http, notify, job-failure and webhook stage handlers (stages.h).
#include "pipeline/outbound/stages.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <optional>
#include <utility>

#include "common/uuid.h"
#include "pipeline/expr/scope.h"
#include "pipeline/expr/templates.h"
#include "pipeline/expr/with_checker.h"
#include "pipeline/outbound/http_client.h"

namespace eventloom::pipeline {

namespace {

using expr_internal::WithChecker;
using nlohmann::json;
using outbound_internal::HttpCall;
using outbound_internal::HttpClient;
using outbound_internal::IsHttpUrl;
using outbound_internal::UrlForMessages;

constexpr std::string_view kJsonContentType = "application/json";
constexpr std::chrono::milliseconds kDefaultHttpTimeout{10'000};
// The largest event is 1 MiB (EventLimits): a bigger answer could not be emitted anyway.
constexpr size_t kMaxHttpResponseBytes = 1 << 20;

std::string StagePrefix(const StageSpec& stage) { return fmt::format("stage '{}': ", stage.name); }

// Hands the diagnostics found to the caller and turns them into the Status.
Status Finish(const std::vector<Diagnostic>& found, std::vector<Diagnostic>* diagnostics) {
    if (diagnostics) diagnostics->insert(diagnostics->end(), found.begin(), found.end());
    return DiagnosticsStatus(found);
}

std::string_view TypeName(const json& v) {
    if (v.is_string()) return "a string";
    if (v.is_number()) return "a number";
    if (v.is_boolean()) return "a boolean";
    if (v.is_array()) return "a list";
    if (v.is_object()) return "a mapping";
    return "null";
}

// `object[key]` when it is a boolean; false when absent; reported when of another type.
bool Flag(WithChecker& check, const json& object, const char* key) {
    auto it = object.find(key);
    if (it == object.end()) return false;
    if (!it->is_boolean()) {
        check.Error(std::string("/") + key,
                    fmt::format("expected true or false, found {}", TypeName(*it)));
        return false;
    }
    return it->get<bool>();
}

// A URL template; literal text before the first hole must already look like http(s)://host.
std::optional<Template> UrlTemplate(WithChecker& check, const json& object, const char* key) {
    const json* text = check.String(object, "", key);
    if (!text) return std::nullopt;
    const std::string pointer = std::string("/") + key;
    const std::string& url = text->get_ref<const std::string&>();
    auto compiled = Template::Compile(url);
    if (!compiled.ok()) {
        check.Error(pointer, compiled.status().message());
        return std::nullopt;
    }
    if (url.rfind("{{", 0) != 0 && !IsHttpUrl(url)) {
        check.Error(pointer, fmt::format("expected an http:// or https:// URL, found '{}'",
                                         UrlForMessages(url)));
        return std::nullopt;
    }
    return std::move(compiled).value();
}

// An id made from `parts` (a UUIDv8 of their SHA-256): the same parts give the same id, so
// the events a redelivered input emits are recognised as duplicates.
std::string DerivedId(std::initializer_list<std::string_view> parts) {
    std::string text;
    for (std::string_view p : parts) text.append(p).push_back('\0');
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr);
    Uuid id;
    std::copy(digest, digest + id.size(), id.begin());
    id[6] = static_cast<uint8_t>((id[6] & 0x0f) | 0x80);  // version 8: custom
    id[8] = static_cast<uint8_t>((id[8] & 0x3f) | 0x80);  // the RFC 9562 variant
    return UuidToString(id);
}

std::string JobIdOf(const Event& e) { return e.correlationid.empty() ? e.id : e.correlationid; }

std::string Extension(const Event& e, std::string_view name) {
    for (const auto& [key, value] : e.extensions) {
        if (key == name) return value;
    }
    return {};
}

void SetJsonData(Event* out, const json& data) {
    out->datacontenttype = std::string(kJsonContentType);
    out->data = DumpJson(data);
    out->has_data = true;
}

Event JsonEvent(const StageContext& ctx, std::string_view type, std::string id, const json& data) {
    Event out = ctx.Derive(std::string(type));
    out.id = std::move(id);
    SetJsonData(&out, data);
    return out;
}

// A "webhook.requested" event (webhook.h) for the webhook stage.
Event WebhookRequest(const StageContext& ctx, std::string id, const std::string& url,
                     const json& body, const std::string& job) {
    json data = {{"url", url}, {"body", body}};
    if (!job.empty()) data["job"] = job;
    return JsonEvent(ctx, kWebhookRequestedType, std::move(id), data);
}

// The body of a job's webhook: its id, status and outcome.
json JobWebhookBody(const JobRecord& job) {
    json body = {{"id", job.id}, {"status", std::string(JobStatusName(job.status))}};
    if (job.status == JobStatus::kSucceeded) {
        json result = json::parse(job.result, nullptr, false);
        body["result"] = result.is_discarded() ? json(job.result) : std::move(result);
        body["type"] = job.result_type;
    }
    if (job.status == JobStatus::kFailed) body["error"] = job.error;
    return body;
}

// Requests the webhook of a finished job whose record has a webhook URL.
void EmitJobWebhook(StageContext& ctx, const PipelineContext& context, const JobRecord& job) {
    if (job.webhook_url.empty() || job.status == JobStatus::kQueued) return;
    ctx.Emit(WebhookTopic(context.pipeline_name),
             WebhookRequest(ctx, DerivedId({"job-webhook", job.id}), job.webhook_url,
                            JobWebhookBody(job), job.id));
}

// ---- http --------------------------------------------------------------------------------

struct HttpHeader {
    std::string name;
    Template value;
};

struct HttpStage {
    std::string name;
    std::vector<std::string> emits;
    Template url;
    std::string method = "POST";
    std::vector<HttpHeader> headers;
    bool has_content_type = false;
    std::optional<JsonTemplate> body;
    std::chrono::milliseconds timeout = kDefaultHttpTimeout;
    std::optional<DataPath> output;
    std::string type = "http.response";
    std::shared_ptr<HttpClient> client = std::make_shared<HttpClient>();
};

bool MethodHasBody(std::string_view method) {
    return method == "POST" || method == "PUT" || method == "PATCH";
}

bool IsHeaderName(std::string_view name) {
    if (name.empty()) return false;
    return std::all_of(name.begin(), name.end(), [](unsigned char c) {
        return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                                      std::string_view::npos;
    });
}

std::string Lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// A header value with control characters (CR and LF above all) replaced by spaces, so data
// rendered into a header can never start another header.
std::string HeaderValue(std::string_view value) {
    std::string out(value);
    for (char& c : out) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) c = ' ';
    }
    return out;
}

void CheckHttpHeaders(WithChecker& check, const json& v, HttpStage* s) {
    auto it = v.find("headers");
    if (it == v.end()) return;
    if (!it->is_object()) {
        check.Error(
            "/headers",
            fmt::format("expected a mapping of header names to values, found {}", TypeName(*it)));
        return;
    }
    for (const auto& [name, value] : it->items()) {
        const std::string at = "/headers/" + name;
        const std::string lower = Lower(name);
        if (!IsHeaderName(name)) {
            check.Error(at, fmt::format("'{}' is not a valid header name", name));
            continue;
        }
        if (lower == "content-length" || lower == "transfer-encoding" || lower == "connection" ||
            lower == "expect" || lower == "host") {
            check.Error(at,
                        fmt::format("header '{}' is set by the transport, not by the stage", name));
            continue;
        }
        if (!value.is_string()) {
            check.Error(at, fmt::format("expected a string, found {}", TypeName(value)));
            continue;
        }
        auto compiled = Template::Compile(value.get<std::string>());
        if (!compiled.ok()) {
            check.Error(at, compiled.status().message());
            continue;
        }
        s->has_content_type |= lower == "content-type";
        s->headers.push_back({name, std::move(compiled).value()});
    }
}

void CheckHttpTimeout(WithChecker& check, const json& v, HttpStage* s) {
    auto it = v.find("timeout");
    if (it == v.end()) return;
    if (it->is_number_integer() && it->get<int64_t>() > 0) {
        s->timeout = std::chrono::milliseconds(it->get<int64_t>());
        return;
    }
    if (it->is_string()) {
        auto parsed = ParseDuration(it->get<std::string>());
        if (parsed.ok() && parsed->count() > 0) {
            s->timeout = *parsed;
            return;
        }
        if (!parsed.ok()) {
            check.Error("/timeout", parsed.status().message());
            return;
        }
    }
    check.Error("/timeout",
                fmt::format("expected a positive duration such as 5s or 500ms, found {}",
                            it->is_string()   ? "'" + it->get<std::string>() + "'"
                            : it->is_number() ? it->dump()
                                              : std::string(TypeName(*it))));
}

Result<HttpStage> CompileHttp(const StageSpec& stage, std::vector<Diagnostic>* found) {
    WithChecker check(stage.with, StagePrefix(stage), found);
    const json& v = stage.with.value;
    HttpStage s;
    s.name = stage.name;
    s.emits = stage.emits;
    if (!v.is_object()) {
        check.Error("",
                    "expected a mapping with url, method, headers, body, timeout, output, "
                    "type");
        return DiagnosticsStatus(*found);
    }
    check.CheckKeys(v, "", {"url", "method", "headers", "body", "timeout", "output", "type"});

    if (!v.contains("url")) check.Error("", "missing 'url'");
    if (auto url = UrlTemplate(check, v, "url")) s.url = std::move(*url);
    if (const json* m = check.String(v, "", "method")) {
        s.method = m->get<std::string>();
        for (char& c : s.method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        const std::vector<std::string> known = {"GET", "POST", "PUT", "PATCH", "DELETE"};
        if (std::find(known.begin(), known.end(), s.method) == known.end()) {
            check.Error("/method", fmt::format("unknown method '{}'; expected one of GET, POST, "
                                               "PUT, PATCH, DELETE",
                                               m->get<std::string>()));
        }
    }
    CheckHttpHeaders(check, v, &s);
    if (auto it = v.find("body"); it != v.end()) {
        if (!MethodHasBody(s.method)) {
            check.Error("/body",
                        fmt::format("a {} request has no body; use POST, PUT or PATCH", s.method));
        } else {
            std::string bad_pointer;
            auto t = JsonTemplate::Compile(*it, &bad_pointer);
            if (t.ok()) {
                s.body = std::move(t).value();
            } else {
                const std::string& m = t.status().message();
                const size_t colon = m.find(": ");
                check.Error("/body" + bad_pointer,
                            colon == std::string::npos ? m : m.substr(colon + 2));
            }
        }
    }
    CheckHttpTimeout(check, v, &s);
    if (const json* o = check.String(v, "", "output")) {
        auto path = ParseDataPath(o->get<std::string>());
        if (path.ok()) {
            s.output = std::move(path).value();
        } else {
            check.Error("/output", path.status().message());
        }
    }
    if (const json* t = check.String(v, "", "type")) {
        s.type = t->get<std::string>();
        if (s.type.empty()) check.Error("/type", "expected an event type");
    }
    if (check.failed()) return DiagnosticsStatus(*found);
    return s;
}

// The request for one event: URL, headers and body rendered against its scope.
Result<HttpCall> HttpRequestFor(const HttpStage& s, StageContext& ctx, const json& scope) {
    const Event& in = ctx.event();
    HttpCall call;
    call.method = s.method;
    call.url = s.url.Render(scope);
    if (!IsHttpUrl(call.url)) {
        return InvalidArgumentError(fmt::format(
            "stage '{}': the url rendered for event '{}' is not an http:// or https:// URL: '{}'",
            s.name, in.id, UrlForMessages(call.url)));
    }
    for (const HttpHeader& h : s.headers) {
        call.headers.push_back(h.name + ": " + HeaderValue(h.value.Render(scope)));
    }
    call.headers.push_back("X-Eventloom-Event-Id: " + HeaderValue(in.id));
    if (!in.traceparent.empty())
        call.headers.push_back("traceparent: " + HeaderValue(in.traceparent));
    if (!in.tracestate.empty()) call.headers.push_back("tracestate: " + HeaderValue(in.tracestate));
    if (MethodHasBody(s.method)) {
        std::string content_type(kJsonContentType);
        if (s.body) {
            call.body = DumpJson(s.body->Render(scope));
        } else {
            call.body = in.data;
            if (!in.datacontenttype.empty()) content_type = in.datacontenttype;
        }
        if (!s.has_content_type) call.headers.push_back("Content-Type: " + content_type);
    }

    // Never past the stage's deadline for the event.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        ctx.deadline() - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
        return DeadlineExceededError(
            fmt::format("stage '{}': no time left for the request of event '{}'", s.name, in.id));
    }
    call.timeout = std::min(s.timeout, left);
    call.max_response_bytes = kMaxHttpResponseBytes;
    call.cancelled = [&ctx] { return ctx.stopping(); };
    return call;
}

// The emitted event's data: the response body itself, or the input's data with the response
// set at the output path.
Status FillHttpOutput(const HttpStage& s, const Event& in, json scope,
                      const outbound_internal::HttpReply& reply, Event* out) {
    json response = reply.body.empty() ? json(nullptr) : json::parse(reply.body, nullptr, false);
    if (!s.output) {
        out->data = reply.body;
        out->has_data = !reply.body.empty();
        out->datacontenttype = reply.content_type;
        if (out->has_data && out->datacontenttype.empty()) {
            out->datacontenttype = response.is_discarded() ? "application/octet-stream"
                                                           : std::string(kJsonContentType);
        }
        return Status::Ok();
    }
    if (response.is_discarded()) response = ToValidUtf8(reply.body);
    json data = std::move(scope["data"]);
    if (!EventDataJson(in) || !(data.is_object() || data.is_null())) {
        return InvalidArgumentError(fmt::format(
            "stage '{}': output '{}' needs event data that is a JSON object; event '{}' has {}",
            s.name, s.output->ToString(), in.id,
            EventDataJson(in) ? std::string(TypeName(data)) : "data that is not JSON"));
    }
    if (!SetAt(&data, *s.output, std::move(response))) {
        return InvalidArgumentError(
            fmt::format("stage '{}': cannot set output '{}' in the data of event '{}'", s.name,
                        s.output->ToString(), in.id));
    }
    SetJsonData(out, data);
    return Status::Ok();
}

Status RunHttp(const HttpStage& s, StageContext& ctx) {
    const Event& in = ctx.event();
    json scope = EventScope(in);
    EVENTLOOM_ASSIGN_OR_RETURN(HttpCall call, HttpRequestFor(s, ctx, scope));

    auto reply = s.client->Perform(call);
    const std::string context = fmt::format("stage '{}'", s.name);
    if (!reply.ok()) return reply.status().WithContext(context);
    Status answered = outbound_internal::ReplyStatus(call.method, call.url, *reply);
    if (!answered.ok()) return answered.WithContext(context);

    Event out = ctx.Derive(s.type);
    out.subject = in.subject;
    EVENTLOOM_RETURN_IF_ERROR(FillHttpOutput(s, in, std::move(scope), *reply, &out));
    for (size_t i = 0; i + 1 < s.emits.size(); ++i) ctx.Emit(s.emits[i], out);
    if (!s.emits.empty()) ctx.Emit(s.emits.back(), std::move(out));
    return Status::Ok();
}

// ---- notify ------------------------------------------------------------------------------

struct NotifyStage {
    std::string name;
    bool store = false;
    bool sse = false;
    std::optional<Template> webhook;
    PipelineContext context;
};

Status RunNotify(const NotifyStage& s, StageContext& ctx) {
    const Event& in = ctx.event();
    const std::string job = JobIdOf(in);
    const json scope = EventScope(in);
    const json& data = scope["data"];

    // The job's record first: a failure to write it retries the event before anything else
    // went out.
    if (s.store && s.context.jobs != nullptr) {
        auto record = s.context.jobs->Succeed(job, DumpJson(data), in.type);
        if (record.ok()) {
            EmitJobWebhook(ctx, s.context, *record);
        } else if (record.status().code() != StatusCode::kNotFound &&
                   record.status().code() != StatusCode::kInvalidArgument) {
            return record.status().WithContext(fmt::format("stage '{}'", s.name));
        }
    }
    if (s.sse) {
        const json event = {{"job", job}, {"type", in.type}, {"result", data}};
        ctx.Emit(
            s.context.results_topic,
            JsonEvent(ctx, kJobSucceededType, DerivedId({"job.succeeded", s.name, in.id}), event));
    }
    if (s.webhook) {
        const std::string url = s.webhook->Render(scope);
        if (!IsHttpUrl(url)) {
            return InvalidArgumentError(fmt::format(
                "stage '{}': the webhook url rendered for event '{}' is not an http:// or "
                "https:// URL: '{}'",
                s.name, in.id, UrlForMessages(url)));
        }
        const json body = {
            {"id", job}, {"status", "succeeded"}, {"result", data}, {"type", in.type}};
        ctx.Emit(WebhookTopic(s.context.pipeline_name),
                 WebhookRequest(ctx, DerivedId({"webhook", s.name, in.id, url}), url, body, job));
    }
    return Status::Ok();
}

// ---- job failure -------------------------------------------------------------------------

Status RunJobFailure(const PipelineContext& context, const std::string& name, StageContext& ctx) {
    const Event& in = ctx.event();
    const std::string job = JobIdOf(in);
    std::string error = Extension(in, kDeadLetterReason);
    if (error.empty()) error = "dead-lettered";
    const std::string stage = Extension(in, kDeadLetterStage);

    std::optional<JobRecord> record;
    if (context.jobs != nullptr) {
        auto failed = context.jobs->Fail(job, error);
        if (failed.ok()) {
            record = std::move(failed).value();
        } else if (failed.status().code() != StatusCode::kNotFound &&
                   failed.status().code() != StatusCode::kInvalidArgument) {
            return failed.status().WithContext(fmt::format("stage '{}'", name));
        }
    }
    if (record && record->status == JobStatus::kSucceeded) return Status::Ok();

    // The first failure's reason is the job's: report that one.
    if (record) error = record->error;
    const json data = {{"job", job}, {"error", error}, {"stage", stage}};
    if (!context.results_topic.empty()) {
        ctx.Emit(
            context.results_topic,
            JsonEvent(ctx, kJobFailedType,
                      DerivedId({"job.failed", stage, in.id, Extension(in, kDeadLetterSource)}),
                      data));
    }
    if (record) EmitJobWebhook(ctx, context, *record);
    return Status::Ok();
}

// ---- webhook -----------------------------------------------------------------------------

Status RunWebhook(WebhookSender& sender, const std::string& secret, StageContext& ctx) {
    const Event& in = ctx.event();
    auto bad = [&](std::string_view why) {
        return InvalidArgumentError(
            fmt::format("stage '{}': event '{}' (type '{}') {}", ctx.stage(), in.id, in.type, why));
    };
    if (in.type != kWebhookRequestedType) {
        return bad(fmt::format("is not a '{}' event", kWebhookRequestedType));
    }
    const std::optional<json> data = EventDataJson(in);
    if (!data || !data->is_object()) return bad("has data that is not a JSON object");
    auto url = data->find("url");
    if (url == data->end() || !url->is_string()) return bad("has no 'url' string in its data");
    auto body = data->find("body");
    if (body == data->end()) return bad("has no 'body' in its data");

    WebhookDelivery delivery;
    delivery.url = url->get<std::string>();
    delivery.body = DumpJson(*body);
    delivery.event_id = in.id;
    delivery.secret = secret;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        ctx.deadline() - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
        return DeadlineExceededError(fmt::format(
            "stage '{}': no time left for the webhook of event '{}'", ctx.stage(), in.id));
    }
    delivery.timeout = left;
    delivery.cancelled = [&ctx] { return ctx.stopping(); };

    Status sent = sender.Send(delivery);
    if (sent.ok()) return sent;
    auto job = data->find("job");
    return sent.WithContext(job != data->end() && job->is_string()
                                ? fmt::format("webhook for job '{}'", job->get<std::string>())
                                : std::string("webhook"));
}

}  // namespace

Result<StageHandler> MakeHttpHandler(const StageSpec& stage, std::vector<Diagnostic>* diagnostics) {
    std::vector<Diagnostic> found;
    auto compiled = CompileHttp(stage, &found);
    if (!compiled.ok()) return Finish(found, diagnostics);
    auto s = std::make_shared<const HttpStage>(std::move(compiled).value());
    return StageHandler([s](StageContext& ctx) { return RunHttp(*s, ctx); });
}

Result<StageHandler> MakeNotifyHandler(const StageSpec& stage, const PipelineContext& context,
                                       std::vector<Diagnostic>* diagnostics) {
    std::vector<Diagnostic> found;
    WithChecker check(stage.with, StagePrefix(stage), &found);
    const json& v = stage.with.value;
    if (!v.is_object()) {
        check.Error("", "expected a mapping with store, sse, webhook");
        return Finish(found, diagnostics);
    }
    check.CheckKeys(v, "", {"store", "sse", "webhook"});
    auto s = std::make_shared<NotifyStage>();
    s->name = stage.name;
    s->context = context;
    s->store = Flag(check, v, "store");
    s->sse = Flag(check, v, "sse");
    s->webhook = UrlTemplate(check, v, "webhook");
    if (!v.contains("store") && !v.contains("sse") && !v.contains("webhook")) {
        check.Error("", "a notify stage needs at least one of store, sse, webhook");
    }
    if (s->sse && context.results_topic.empty()) {
        check.Error("/sse", "the pipeline has no results topic to send to");
    }
    if (s->webhook && context.pipeline_name.empty()) {
        check.Error("/webhook", "webhooks need a pipeline name (their topic is <name>.webhooks)");
    }
    if (check.failed()) return Finish(found, diagnostics);
    return StageHandler([s = std::shared_ptr<const NotifyStage>(std::move(s))](StageContext& ctx) {
        return RunNotify(*s, ctx);
    });
}

StageHandler MakeJobFailureHandler(const PipelineContext& context) {
    return [context](StageContext& ctx) { return RunJobFailure(context, ctx.stage(), ctx); };
}

StageHandler MakeWebhookHandler(const PipelineContext& context) {
    std::shared_ptr<WebhookSender> own;
    WebhookSender* sender = context.webhooks;
    if (sender == nullptr) {
        own = std::make_shared<WebhookSender>();
        sender = own.get();
    }
    return [own, sender, secret = context.job_webhook_secret](StageContext& ctx) {
        return RunWebhook(*sender, secret, ctx);
    };
}

StageOptions WebhookStageOptions(std::string_view pipeline_name) {
    StageOptions o;
    o.name = std::string(kWebhookStageName);
    o.consumes = WebhookTopic(pipeline_name);
    o.delivery = DeliveryMode::kAtLeastOnce;
    o.workers = 4;
    o.max_in_flight = 16;
    o.timeout = std::chrono::seconds(30);
    o.retry.max_attempts = 12;
    o.retry.initial_delay = std::chrono::seconds(1);
    o.retry.max_delay = std::chrono::minutes(15);
    o.retry.multiplier = 2.0;
    o.retry.jitter = 0.5;
    o.dead_letter_topic = WebhookTopic(pipeline_name) + ".dead-letter";
    return o;
}

}  // namespace eventloom::pipeline
