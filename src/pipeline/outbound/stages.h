// The outbound stages of a pipeline file: http and notify, and the system stages a running
// pipeline adds on its own (job-failure on every dead-letter topic, webhook delivery). Their
// `with:` options are compiled into StageHandlers (eventloom/stage.h).
//
//   http     calls an external service and emits its answer:
//              url      template (templates.h), required; http:// or https://.
//                       TODO(#5): values rendered into the URL are not percent-encoded;
//                       a value with spaces or '&' breaks or changes the URL.
//              method   GET, POST (default), PUT, PATCH or DELETE
//              headers  mapping of header name -> template
//              body     JSON template (POST/PUT/PATCH); default: the event's data as it is
//              timeout  "5s", "500ms" or milliseconds; default 10s (never past the stage's
//                       own timeout)
//              output   a data path: the emitted data is the input's data (a JSON object)
//                       with the response's JSON (or its text) set at that path; without it
//                       the response body itself is the emitted data, under the response's
//                       content type
//              type     the emitted event's type; default "http.response"
//            Every request also carries X-Eventloom-Event-Id (the input event's id, the same
//            on every retry, for the service to dedupe on) and the event's traceparent and
//            tracestate. The answer settles the event as for webhooks (webhook.h): 2xx emits
//            a derived event to every topic in `emits`; 408/429/5xx and transport errors are
//            Unavailable (retried with backoff, after the server's Retry-After); other 4xx
//            are FailedPrecondition (dead-letter).
//   notify   tells the outside world about a result (the input event's data):
//              store    true: completes the job whose id is the event's correlationid (its
//                       id when it has none) with the data as result (JobStore::Succeed); an
//                       event that is not a job's is skipped. When the job's record has a
//                       webhook_url, its webhook is requested too.
//              sse      true: emits "job.succeeded" {"job", "type", "result"} to the
//                       results topic, where waiting HTTP clients hear of it
//              webhook  URL template: the result is POSTed there (through the webhook topic)
//            At least one of them is required. Webhook bodies are
//              {"id": job, "status": "succeeded", "result": data, "type": event type}
//            (a failed job's: {"id", "status": "failed", "error"}).
//   job-failure (system)  consumes a dead-letter topic: fails the job whose id is the event's
//            correlationid (or its id) with the dead-letter reason, emits "job.failed"
//            {"job", "error", "stage"} to the results topic and requests the job's webhook.
//            A job that already succeeded is left alone and nothing is emitted.
//   webhook (system)  consumes WebhookTopic(pipeline): POSTs each "webhook.requested" event
//            (webhook.h), signed with the context's job_webhook_secret.
//
// Events these stages emit are derived from their input (StageContext::Derive: correlation,
// causation, trace context) but have deterministic ids, made from the input event's id, the
// stage and the purpose: a redelivered input emits events with the same ids, which the broker
// drops as duplicates (within its dedupe window) and webhook receivers see under the same
// X-Eventloom-Event-Id. A job's webhook id depends on the job only, so a job's webhook is
// requested under one id whatever stage finishes it.
//
// Compiling reports every problem in `with:` as a Diagnostic at its option's location and
// then returns InvalidArgument listing them (DiagnosticsStatus); `diagnostics` receives them
// too when given. At run time, data that is not JSON where JSON is needed, or a rendered URL
// that is not http(s), fails with InvalidArgument naming the stage (dead-letter).
//
// Ownership and thread-safety: the handlers keep their own copy of what they need (not the
// StageSpec); the JobStore and WebhookSender the context points to must outlive them. The
// handlers are safe to call from many worker threads at once.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "eventloom/stage.h"
#include "pipeline/config/pipeline_spec.h"
#include "pipeline/outbound/job_store.h"
#include "pipeline/outbound/webhook.h"

namespace eventloom::pipeline {

inline constexpr std::string_view kJobSucceededType = "job.succeeded";
inline constexpr std::string_view kJobFailedType = "job.failed";

// What the outbound stages of one running pipeline share.
struct PipelineContext {
    std::string pipeline_name;
    std::string results_topic;  // "job.succeeded" / "job.failed" go here
    JobStore* jobs = nullptr;   // null: `store` and job failures are skipped
    // Null: the webhook stage uses a sender of its own.
    WebhookSender* webhooks = nullptr;
    std::string job_webhook_secret;  // signs every webhook; empty: unsigned
};

Result<StageHandler> MakeHttpHandler(const StageSpec& stage,
                                     std::vector<Diagnostic>* diagnostics = nullptr);
Result<StageHandler> MakeNotifyHandler(const StageSpec& stage, const PipelineContext& context,
                                       std::vector<Diagnostic>* diagnostics = nullptr);
StageHandler MakeJobFailureHandler(const PipelineContext& context);
StageHandler MakeWebhookHandler(const PipelineContext& context);

// The webhook stage's name (and consumer group).
inline constexpr std::string_view kWebhookStageName = "webhook-delivery";

// The recommended runner options of the webhook stage of `pipeline_name`: it consumes
// WebhookTopic(pipeline_name); at-least-once (receivers dedupe on X-Eventloom-Event-Id);
// 4 workers, 16 in flight (the work is waiting on receivers); 30 s per attempt; 12 attempts,
// backoff from 1 s doubling up to 15 min with half jitter, so the last attempt comes 16 to 32
// minutes after the first (later when receivers send Retry-After); dead letters to
// "<pipeline_name>.webhooks.dead-letter".
// TODO(#5): retries waiting for their delay count against the consumer group's window of
// unsettled events (64 with these options), so one receiver that stays down with many
// requests can hold up webhooks to the others; a per-receiver circuit breaker or parking
// topic would isolate it.
StageOptions WebhookStageOptions(std::string_view pipeline_name);

}  // namespace eventloom::pipeline
