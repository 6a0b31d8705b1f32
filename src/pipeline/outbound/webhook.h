// Webhooks: results POSTed to a receiver's URL, signed so that the receiver can tell they come
// from this pipeline and were not altered on the way.
//
// The request. POST <url>, the body a JSON document, with the headers
//   Content-Type: application/json
//   X-Eventloom-Event-Id: <id>             the same on every attempt of one delivery: dedupe on it
//   X-Eventloom-Timestamp: <unix seconds>  when this attempt was signed (decimal digits)
//   X-Eventloom-Signature: sha256=<hex>    only when a secret is configured
// where <hex> is the lowercase hexadecimal HMAC-SHA256, keyed with the secret's bytes, of
//   <timestamp> "." <body>
// that is, the X-Eventloom-Timestamp value, one full stop, and the request body exactly as
// received (bytes, before any JSON parsing). With the secret "s3cret", the timestamp
// "1700000000" and the body {"id":"job-1"} the header is
//   X-Eventloom-Signature: sha256=4400f36d572856b276f08292d5643f7c66338b84f09aabb6458be575784e2768
// A receiver recomputes the HMAC, compares it in constant time (VerifyWebhookSignature does
// both) and refuses timestamps far from its own clock (five minutes, say) so that a recorded
// request cannot be replayed later.
//
// Outcome of a POST (WebhookSender::Send): a 2xx answer is OK; 408, 429, 5xx and connection
// errors or timeouts are Unavailable, with the server's Retry-After when it sent one (the
// runtime then retries no sooner); any other answer (3xx, other 4xx) is FailedPrecondition
// naming the URL and the status: the receiver refused, a retry would not help.
//
// Durable delivery. Stages never POST webhooks themselves: they emit a "webhook.requested"
// event to the pipeline's webhook topic, WebhookTopic(pipeline) = "<pipeline>.webhooks", with
// JSON data
//   {"url": "https://...", "body": <the JSON document to POST>, "job": "<job id>"?}
// and the webhook stage (stages.h, MakeWebhookHandler) POSTs it. Its failures are retried by
// the stage runtime with backoff through the log, so a receiver that is down for a while
// still gets its webhook once it is back, across restarts; what is refused goes to the webhook
// stage's dead-letter topic. Secrets never travel in events: the webhook stage signs with the
// secret it was given when it was built.
//
// Thread-safety: the functions are pure; WebhookSender is thread-safe (see http_client.h) and
// not copyable.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "eventloom/status.h"

namespace eventloom::pipeline {

namespace outbound_internal {
class HttpClient;
}

inline constexpr std::string_view kWebhookRequestedType = "webhook.requested";

// "<pipeline_name>.webhooks".
std::string WebhookTopic(std::string_view pipeline_name);

// The X-Eventloom-Signature value: "sha256=" + lowercase hex HMAC-SHA256(secret,
// timestamp + "." + body).
std::string WebhookSignature(std::string_view secret, std::string_view timestamp,
                             std::string_view body);

// True when `signature` (an X-Eventloom-Signature value, "sha256=<hex>", hex in either case)
// is the signature of `timestamp` and `body` under `secret`, compared in constant time. With
// a positive `max_age`, also false when `timestamp` is not a decimal number of Unix seconds
// within `max_age` of `now` (either side).
bool VerifyWebhookSignature(
    std::string_view secret, std::string_view timestamp, std::string_view body,
    std::string_view signature, std::chrono::seconds max_age = std::chrono::seconds(0),
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

struct WebhookSenderOptions {
    std::chrono::milliseconds timeout{10'000};  // one POST, connection included
    std::chrono::milliseconds connect_timeout{5'000};
    std::string user_agent = "eventloom-webhook/1";
};

struct WebhookDelivery {
    std::string url;        // http:// or https://
    std::string body;       // JSON text, sent as is
    std::string event_id;   // X-Eventloom-Event-Id; required
    std::string secret;     // empty: no signature header
    int64_t timestamp = 0;  // Unix seconds to sign with; 0: now
    // Shorter than the sender's timeout when the caller's deadline is nearer; 0: the sender's.
    std::chrono::milliseconds timeout{0};
    std::function<bool()> cancelled;  // polled during the POST; empty: never
};

class WebhookSender {
public:
    explicit WebhookSender(WebhookSenderOptions options = {});
    ~WebhookSender();
    WebhookSender(const WebhookSender&) = delete;
    WebhookSender& operator=(const WebhookSender&) = delete;

    // One POST, its outcome as described above; InvalidArgument for a URL that is not http or
    // https or an empty event id, Cancelled when `cancelled` said so.
    Status Send(const WebhookDelivery& delivery);

private:
    WebhookSenderOptions options_;
    std::unique_ptr<outbound_internal::HttpClient> client_;
};

}  // namespace eventloom::pipeline
