#include "llm/openai/openai_backend.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string_view>
#include <utility>

#include "common/logging.h"
#include "llm/openai/sse.h"

namespace eventloom {
namespace openai {
namespace {

// Bodies kept for error messages and non-streamed answers; the rest is dropped.
constexpr size_t kMaxBodyBytes = 16 << 20;

double MillisecondsBetween(Clock::TimePoint from, Clock::TimePoint to) {
    return std::chrono::duration<double, std::milli>(to - from).count();
}

bool IsEventStream(std::string_view content_type) {
    return content_type.starts_with("text/event-stream");
}

// A body that is an event stream although its Content-Type did not say so.
bool LooksLikeEventStream(std::string_view body) {
    const size_t first = body.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) return false;
    body.remove_prefix(first);
    return body.starts_with("data:") || body.starts_with(':');
}

std::string Milliseconds(std::chrono::milliseconds ms) { return std::to_string(ms.count()) + "ms"; }

}  // namespace

// One Generate call: what its steps share.
struct OpenAiBackend::Call {
    const LlmRequest& request;
    const TokenCallback& on_token;
    std::stop_token stop;
    Endpoint endpoint;
    Clock::TimePoint deadline;
    int prompt_estimate = 0;
    double weight = 0;   // charged to the token limit: prompt estimate + max_tokens
    std::string what{};  // "request r1 POST <url>": the context of every error
    HttpRequest http{};
    SlotQueue::Slot slot{};
    double queued_ms = 0;
    Clock::TimePoint attempts_start{};
};

// How one POST went.
struct OpenAiBackend::Attempt {
    Status status;
    bool retry = false;  // the failure is one that may pass on another attempt
    bool streamed = false;
    std::optional<Clock::TimePoint> first_token;
    Clock::TimePoint last_token;
    std::optional<ResponseDecoder> decoder;
};

OpenAiBackend::OpenAiBackend(const OpenAiOptions& options, std::string base_url,
                             std::string api_key)
    : options_(options),
      base_url_(std::move(base_url)),
      api_key_(std::move(api_key)),
      retry_policy_{.max_attempts = options.max_retries + 1,
                    .initial_delay = options.retry_initial,
                    .max_delay = options.retry_max,
                    .multiplier = 2.0,
                    .jitter = 0.5},
      slots_(options.max_concurrent),
      rng_(std::random_device{}()) {
    if (options.requests_per_minute > 0 || options.tokens_per_minute > 0) {
        limiter_.emplace(RateLimits{.requests_per_minute = options.requests_per_minute,
                                    .tokens_per_minute = options.tokens_per_minute});
    }
}

std::string OpenAiBackend::model() const {
    return options_.model.empty() ? "default" : options_.model;
}

Result<int> OpenAiBackend::CountPromptTokens(const LlmRequest& request) {
    return EstimatePromptTokens(request, EndpointFor(request, options_.chat));
}

LlmLoad OpenAiBackend::Load() const { return slots_.Load(); }

Result<LlmResult> OpenAiBackend::Generate(const LlmRequest& request, const TokenCallback& on_token,
                                          std::stop_token stop) {
    const Clock::TimePoint start = Clock::Real()->Now();
    const Endpoint endpoint = EndpointFor(request, options_.chat);
    Call call{
        .request = request,
        .on_token = on_token,
        .stop = stop,
        .endpoint = endpoint,
        .deadline = std::min(request.deadline, SaturatingAdd(start, options_.request_timeout)),
        .prompt_estimate = EstimatePromptTokens(request, endpoint)};
    call.weight = static_cast<double>(call.prompt_estimate) + request.max_tokens;
    call.http = HttpRequest{
        .url = base_url_ + std::string(EndpointPath(endpoint)),
        .headers = {"Content-Type: application/json", "Accept: text/event-stream", "Expect:"},
        .connect_timeout = options_.connect_timeout,
        .deadline = call.deadline};
    if (!api_key_.empty()) call.http.headers.push_back("Authorization: Bearer " + api_key_);
    call.what = (request.id.empty() ? "" : "request " + request.id + " ") + "POST " + call.http.url;

    // Nothing to do for a call already over; a request no server could accept fails before
    // waiting for anything.
    if (stop.stop_requested()) return CancelledError(call.what + ": cancelled before it began");
    if (start >= call.deadline) {
        return DeadlineExceededError(call.what + ": deadline passed before the request began");
    }
    Result<std::string> body = BuildRequestBody(request, options_, endpoint);
    if (!body.ok()) return body.status().WithContext(call.what);
    call.http.body = std::move(body).value();

    // Wait for a slot, then for the rate limits.
    EVENTLOOM_ASSIGN_OR_RETURN(call.slot, slots_.Acquire(request.priority, call.prompt_estimate,
                                                         stop, call.deadline, call.what));
    call.queued_ms = MillisecondsBetween(start, Clock::Real()->Now());
    Status status = AwaitRateLimits(call.weight, call);
    if (!status.ok()) return status.WithContext(call.what);

    // The attempts, on a pooled connection.
    Result<std::unique_ptr<CurlConnection>> connection = TakeConnection();
    if (!connection.ok()) return connection.status().WithContext(call.what);
    call.attempts_start = Clock::Real()->Now();
    Attempt attempt;
    status = RunAttempts(call, **connection, attempt);
    ReturnConnection(std::move(connection).value());
    if (!status.ok()) return status.WithContext(call.what);
    return MakeResult(call, attempt);
}

Status OpenAiBackend::RunAttempts(Call& call, CurlConnection& connection, Attempt& attempt) {
    for (int number = 1;; ++number) {
        attempt = Attempt();
        RunAttempt(call, connection, attempt);
        if (attempt.status.ok()) return Status::Ok();
        if (!attempt.retry || attempt.streamed) return attempt.status;
        const std::string attempts = std::to_string(number) + " attempts";
        if (number > options_.max_retries) {
            return number == 1 ? attempt.status : attempt.status.WithContext(attempts);
        }

        // Wait before the next attempt. When the deadline would come first, the last error
        // says more than DeadlineExceeded would: its code and the server's Retry-After.
        const std::chrono::milliseconds delay = NextDelay(attempt.status, number);
        const Clock::TimePoint retry_at = SaturatingAdd(Clock::Real()->Now(), delay);
        if (retry_at >= call.deadline) {
            return attempt.status.WithContext(attempts + ", the deadline comes before the next");
        }
        switch (SleepUntil(retry_at, call.stop, call.deadline)) {
            case WaitOutcome::kReady:
                break;
            case WaitOutcome::kStopped:
                return CancelledError("cancelled waiting to retry after: " +
                                      attempt.status.message());
            case WaitOutcome::kDeadline:
                return DeadlineExceededError("deadline passed waiting to retry after: " +
                                             attempt.status.message());
        }
        EVENTLOOM_RETURN_IF_ERROR(AwaitRateLimits(0, call));
        logging::Get("llm")->debug("openai {} attempt={} failed ({}); retried after {}", call.what,
                                   number, attempt.status.ToString(), Milliseconds(delay));
    }
}

void OpenAiBackend::RunAttempt(Call& call, CurlConnection& connection, Attempt& attempt) {
    ResponseDecoder& decoder = attempt.decoder.emplace(call.endpoint);
    const ResponseDecoder::ContentHandler on_content = [&](std::string_view piece) {
        const Clock::TimePoint now = Clock::Real()->Now();
        if (!attempt.first_token) {
            attempt.first_token = now;
            call.slot.PromptDone();
        }
        attempt.last_token = now;
        attempt.streamed = true;
        if (call.on_token) call.on_token(piece);
    };
    const SseParser::EventHandler on_event = [&](std::string_view data) {
        return decoder.OnEvent(data, on_content);
    };

    // A 2xx event stream is decoded as it arrives; any other body is kept whole.
    SseParser sse;
    std::string kept;
    const BodySink sink = [&](const HttpResponse& head, std::string_view bytes) {
        if (head.status / 100 == 2 && IsEventStream(head.content_type)) {
            return sse.Feed(bytes, on_event);
        }
        kept.append(bytes.substr(0, kMaxBodyBytes - std::min(kept.size(), kMaxBodyBytes)));
        return Status::Ok();
    };
    const HttpResponse response = Perform(connection, call.http, sink, call.stop);

    // How the transfer ended, in order of precedence.
    if (response.cancelled) {
        attempt.status = CancelledError("cancelled");
    } else if (response.deadline_exceeded) {
        attempt.status = DeadlineExceededError(
            std::string("deadline passed ") +
            (attempt.streamed ? "while streaming" : "waiting for the response"));
    } else if (!response.sink_status.ok()) {
        attempt.status = response.sink_status;
    } else if (response.curl_code != CURLE_OK) {
        attempt.status = UnavailableError("connection failed: " + response.curl_error);
        attempt.retry = IsConnectionFailure(response.curl_code);
    } else if (response.status / 100 != 2) {
        attempt.status = HttpError(response, kept);
        attempt.retry = IsRetriedHttpStatus(response.status);
    } else {
        // The end of the stream, or a whole body: from a server that did not stream, or that
        // streamed without saying so in its Content-Type.
        if (IsEventStream(response.content_type)) {
            attempt.status = sse.Finish(on_event);
        } else if (LooksLikeEventStream(kept)) {
            attempt.status = sse.Feed(kept, on_event);
            if (attempt.status.ok()) attempt.status = sse.Finish(on_event);
        } else {
            attempt.status = decoder.OnBody(kept, on_content);
        }
        if (attempt.status.ok() && !decoder.complete()) {
            // Cut off, as when the server goes away mid-answer.
            attempt.status = UnavailableError(
                "malformed response: the stream ended without a finish_reason or [DONE]");
            attempt.retry = true;
        }
    }
}

Status OpenAiBackend::HttpError(const HttpResponse& response, std::string_view body) const {
    return HttpErrorStatus(response, body, options_.api_key_env, !api_key_.empty());
}

LlmResult OpenAiBackend::MakeResult(const Call& call, const Attempt& attempt) {
    // The server's counts where it sent them.
    const ResponseDecoder& decoder = *attempt.decoder;
    const ServerUsage& server = decoder.usage();
    LlmResult result;
    result.text = decoder.text();
    result.finish_reason = decoder.finish_reason();
    result.usage.prompt_tokens = server.prompt_tokens.value_or(call.prompt_estimate);
    result.usage.completion_tokens = server.completion_tokens.value_or(decoder.content_deltas());
    result.usage.cached_prompt_tokens = server.cache_n.value_or(server.cached_tokens.value_or(0));
    result.usage.queued_ms = call.queued_ms;
    if (attempt.first_token) {
        result.usage.ttft_ms = MillisecondsBetween(call.attempts_start, *attempt.first_token);
        result.usage.decode_ms = MillisecondsBetween(*attempt.first_token, attempt.last_token);
    }

    // The token limit was charged the estimate; settle it with the real count.
    if (limiter_) {
        limiter_->AdjustTokens(call.weight - result.usage.prompt_tokens -
                               result.usage.completion_tokens);
    }
    return result;
}

Status OpenAiBackend::AwaitRateLimits(double weight, Call& call) {
    if (!limiter_) return Status::Ok();
    const Clock::TimePoint start = Clock::Real()->Now();
    while (true) {
        const std::optional<Clock::Duration> wait = limiter_->TryAcquire(weight);
        const Clock::TimePoint now = Clock::Real()->Now();
        if (!wait) {
            call.queued_ms += MillisecondsBetween(start, now);
            return Status::Ok();
        }

        // Coming back after the deadline is no use: say when the limits would allow it.
        const Clock::TimePoint until = SaturatingAdd(now, *wait);
        if (until >= call.deadline) {
            return WithRetryAfter(
                ResourceExhaustedError(
                    "rate limited (requests_per_minute " +
                    std::to_string(options_.requests_per_minute) + ", tokens_per_minute " +
                    std::to_string(options_.tokens_per_minute) + ") past the request's deadline"),
                std::chrono::ceil<std::chrono::milliseconds>(*wait));
        }
        switch (SleepUntil(until, call.stop, call.deadline)) {
            case WaitOutcome::kReady:
                break;
            case WaitOutcome::kStopped:
                return CancelledError("cancelled waiting for the rate limits");
            case WaitOutcome::kDeadline:
                return DeadlineExceededError("deadline passed waiting for the rate limits");
        }
    }
}

std::chrono::milliseconds OpenAiBackend::NextDelay(const Status& status, int attempt) {
    std::lock_guard lock(mu_);
    return RetryDelay(status, retry_policy_, attempt, rng_);
}

Result<std::unique_ptr<CurlConnection>> OpenAiBackend::TakeConnection() {
    {
        std::lock_guard lock(mu_);
        if (!idle_.empty()) {
            std::unique_ptr<CurlConnection> connection = std::move(idle_.back());
            idle_.pop_back();
            return connection;
        }
    }
    return CurlConnection::Create();
}

void OpenAiBackend::ReturnConnection(std::unique_ptr<CurlConnection> connection) {
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(connection));
}

}  // namespace openai

// Errors:
//   InvalidArgument     a bad option (here); a request no server could accept; HTTP 4xx other
//                       than 401, 403 and 429, with the server's message
//   FailedPrecondition  HTTP 401 or 403: the API key (names options.api_key_env)
//   ResourceExhausted   HTTP 429 after the last attempt (or when the next would come after the
//                       deadline), with the server's Retry-After carried by WithRetryAfter; or
//                       the rate limits would only grant the request after its deadline
//   Unavailable         HTTP 5xx, connection failures, malformed responses
//   DeadlineExceeded    min(request.deadline, start + request_timeout) passed
//   Cancelled           the stop token was triggered
Result<std::unique_ptr<LlmBackend>> OpenOpenAiBackend(const OpenAiOptions& options) {
    // Options.
    std::string base_url = options.base_url;
    const size_t scheme = base_url.starts_with("http://")    ? 7
                          : base_url.starts_with("https://") ? 8
                                                             : 0;
    while (base_url.ends_with('/')) base_url.pop_back();
    if (scheme == 0 || base_url.size() <= scheme) {
        return InvalidArgumentError("openai base_url must be an http:// or https:// URL, got '" +
                                    options.base_url + "'");
    }
    if (options.max_concurrent < 1) {
        return InvalidArgumentError("openai max_concurrent must be at least 1");
    }
    if (options.max_retries < 0) return InvalidArgumentError("openai max_retries is negative");
    if (options.connect_timeout.count() <= 0 || options.request_timeout.count() <= 0) {
        return InvalidArgumentError("openai connect_timeout and request_timeout must be positive");
    }
    if (options.retry_initial.count() < 0 || options.retry_max < options.retry_initial) {
        return InvalidArgumentError(
            "openai retry_initial must not be negative nor above retry_max");
    }
    const RateLimits limits{.requests_per_minute = options.requests_per_minute,
                            .tokens_per_minute = options.tokens_per_minute};
    if (Status status = limits.Validate(); !status.ok()) return status.WithContext("openai");

    // libcurl, once per process.
    EVENTLOOM_RETURN_IF_ERROR(openai::InitCurlOnce());

    // The key is read once, here: changing the variable later needs a new backend.
    std::string api_key;
    if (!options.api_key_env.empty()) {
        if (const char* value = std::getenv(options.api_key_env.c_str())) api_key = value;
    }
    return std::unique_ptr<LlmBackend>(
        std::make_unique<openai::OpenAiBackend>(options, std::move(base_url), std::move(api_key)));
}

}  // namespace eventloom
