// The OpenAI wire protocol, without any I/O: which endpoint a request goes to, the JSON body
// sent, the decoding of a streamed (or whole) response, the server's error messages and the
// Retry-After header. Kept apart from the HTTP transfer so it can be tested on strings.
//
// Functions are pure and thread-safe; a ResponseDecoder is used by one thread at a time.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "eventloom/llm.h"
#include "eventloom/status.h"

namespace eventloom::openai {

enum class Endpoint {
    kChat,         // POST {base_url}/chat/completions with "messages"
    kCompletions,  // POST {base_url}/completions with "prompt"
};

// Chat when the request has messages or the backend is in chat mode (a bare prompt is then sent
// as one user message); completions otherwise.
Endpoint EndpointFor(const LlmRequest& request, bool chat);

// "/chat/completions" or "/completions".
std::string_view EndpointPath(Endpoint endpoint);

// The request body: messages or prompt, sampling parameters, max_tokens, stop, ignore_eos (only
// when true), response_format from json_schema (on /completions also llama-server's top-level
// "json_schema"), and "stream": true with usage in the last
// chunk. InvalidArgument when the request can never be sent: no messages and no prompt,
// max_tokens below 1, a non-finite sampling parameter, or a json_schema that is not a JSON
// object.
Result<std::string> BuildRequestBody(const LlmRequest& request, const OpenAiOptions& options,
                                     Endpoint endpoint);

// The prompt-token estimate without a tokenizer: (bytes of every message content, or of the
// prompt, + 3) / 4, plus 4 per message for the chat template's framing.
int EstimatePromptTokens(const LlmRequest& request, Endpoint endpoint);

// What the server reported about its work; absent fields were not sent.
struct ServerUsage {
    std::optional<int> prompt_tokens;
    std::optional<int> completion_tokens;
    std::optional<int> cached_tokens;  // usage.prompt_tokens_details.cached_tokens
    std::optional<int> cache_n;        // llama-server's timings.cache_n
};

// Builds the result of one response from its SSE events (OnEvent) or, from a server that
// answered without streaming, from the whole JSON body (OnBody).
//
// Errors (Unavailable unless said otherwise) name what was wrong: a data line that is not a
// JSON object, a chunk without "choices" (and without usage), a choice of the wrong shape. An
// error object sent inside the stream maps like an HTTP status: 429 ResourceExhausted, other
// 4xx InvalidArgument, anything else Unavailable.
class ResponseDecoder {
public:
    // Receives the text of each content delta.
    using ContentHandler = std::function<void(std::string_view text)>;

    explicit ResponseDecoder(Endpoint endpoint) : endpoint_(endpoint) {}

    // One event's data: a JSON chunk, or "[DONE]".
    Status OnEvent(std::string_view data, const ContentHandler& on_content);
    // A whole non-streamed completion.
    Status OnBody(std::string_view body, const ContentHandler& on_content);

    // True once the response said it was over: "[DONE]" or a finish_reason.
    bool complete() const { return done_ || !finish_reason_.empty(); }
    const std::string& text() const { return text_; }
    const std::string& finish_reason() const { return finish_reason_; }
    // Content deltas seen: one per generated token on servers that stream token by token. The
    // final chunk's empty text next to its finish_reason is not counted.
    int content_deltas() const { return content_deltas_; }
    const ServerUsage& usage() const { return usage_; }

private:
    Status OnChunk(std::string_view data, bool whole_body, const ContentHandler& on_content);

    Endpoint endpoint_;
    bool done_ = false;
    std::string text_;
    std::string finish_reason_;
    int content_deltas_ = 0;
    ServerUsage usage_;
};

// The human-readable message of an error body: error.message (the OpenAI shape), a string
// "error", "message" or "detail", or else the body itself, trimmed and shortened to 300 bytes.
std::string ErrorMessageFromBody(std::string_view body);

// A Retry-After header value: delay-seconds ("120") or an HTTP-date, read against `now`
// (a date in the past gives zero). nullopt when it is neither.
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now);

// The non-standard "retry-after-ms" header some hosted APIs send: milliseconds, possibly with
// a fraction. nullopt when it is not a number.
std::optional<std::chrono::milliseconds> ParseRetryAfterMs(std::string_view value);

// `text` cut to at most `max_bytes`, with "..." when cut; for quoting server output in errors.
std::string Abbreviate(std::string_view text, size_t max_bytes = 200);

}  // namespace eventloom::openai
