// The openai backend: LlmBackend over any OpenAI-compatible HTTP server (llama-server, vLLM,
// Ollama, hosted APIs), streaming with server-sent events through libcurl.
//
// A Generate call goes through these steps, all on the caller's thread:
//   1. builds the JSON body (InvalidArgument at once for a request no server could accept);
//   2. waits for one of max_concurrent slots, highest priority first (SlotQueue), then for the
//      rate limits (requests and prompt + max_tokens per minute); this is usage.queued_ms;
//   3. POSTs to {base_url}/chat/completions or {base_url}/completions and streams the answer,
//      calling on_token for each content delta;
//   4. on 429, 500, 502, 503, 504 or a failed connection, and only while nothing has been
//      passed to on_token, tries again up to max_retries times, after the server's Retry-After
//      or an exponential backoff with jitter (runtime/retry.h), passing the rate limits again;
//      the slot is kept meanwhile. When the deadline would come before the next attempt, the
//      last error is returned at once.
// The deadline is min(request.deadline, start + request_timeout) and covers every step; the
// stop token ends any step at once. Error codes are described in docs/llm.md and at
// OpenOpenAiBackend's definition; every message names the request id and the URL.
//
// Connections: a pool of libcurl handles (at most max_concurrent), each keeping its connection
// alive between requests.
//
// Thread-safe: Generate, CountPromptTokens and Load may be called from any number of threads.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "eventloom/llm.h"
#include "llm/openai/http_transfer.h"
#include "llm/openai/openai_protocol.h"
#include "llm/openai/slot_queue.h"
#include "runtime/rate_limiter.h"
#include "runtime/retry.h"

namespace eventloom::openai {

class OpenAiBackend final : public LlmBackend {
public:
    // REQUIRES: `options` validated and `base_url` without a trailing slash (OpenOpenAiBackend
    // does both).
    OpenAiBackend(const OpenAiOptions& options, std::string base_url, std::string api_key);

    std::string_view kind() const override { return "openai"; }
    std::string model() const override;

    Result<LlmResult> Generate(const LlmRequest& request, const TokenCallback& on_token,
                               std::stop_token stop) override;
    using LlmBackend::Generate;

    // An estimate (no tokenizer here); see EstimatePromptTokens.
    Result<int> CountPromptTokens(const LlmRequest& request) override;

    // busy_slots counts requests holding a slot, including one waiting for the rate limits.
    LlmLoad Load() const override;

private:
    struct Call;
    struct Attempt;

    // The attempts of one call, until one succeeds, fails for good, streams and then fails,
    // or no retry is left; the last one is in `attempt`.
    Status RunAttempts(Call& call, CurlConnection& connection, Attempt& attempt);
    // One POST and its response, into `attempt`.
    void RunAttempt(Call& call, CurlConnection& connection, Attempt& attempt);
    // The status for an HTTP error response, with its body's message and Retry-After.
    Status HttpError(const HttpResponse& response, std::string_view body) const;
    LlmResult MakeResult(const Call& call, const Attempt& attempt);
    // Waits until the rate limits grant one request of `weight` tokens; adds the wait to the
    // call's queued_ms.
    Status AwaitRateLimits(double weight, Call& call);
    std::chrono::milliseconds NextDelay(const Status& status, int attempt);

    Result<std::unique_ptr<CurlConnection>> TakeConnection();
    void ReturnConnection(std::unique_ptr<CurlConnection> connection);

    const OpenAiOptions options_;
    const std::string base_url_;
    const std::string api_key_;  // empty: no Authorization header
    const RetryPolicy retry_policy_;
    SlotQueue slots_;
    std::optional<RateLimiter> limiter_;  // absent without limits

    std::mutex mu_;
    std::mt19937_64 rng_;                                // guarded by mu_
    std::vector<std::unique_ptr<CurlConnection>> idle_;  // guarded by mu_
};

}  // namespace eventloom::openai
