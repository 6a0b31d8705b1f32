// LLM backends behind one interface.
//
// A request (chat messages or a raw prompt, sampling parameters, a token limit, stop sequences,
// an optional JSON schema, a deadline and a priority) produces a stream of text pieces, one per
// generated token, and a final result with usage. Two backends implement it:
//
//   llama    llama.cpp in this process (OpenLlamaBackend, src/llm/llama/): one scheduler
//            thread owns the model context and decodes up to `slots` sequences together
//            (continuous batching), with chunked prefill and shared-prefix reuse.
//   openai   any OpenAI-compatible server (OpenOpenAiBackend, src/llm/openai/): llama-server,
//            vLLM, Ollama, hosted APIs, over HTTP with SSE streaming.
//
// Errors are Status values the runtime acts on (eventloom/status.h):
//   kInvalidArgument     the request can never succeed (prompt longer than the context, bad
//                        schema, bad parameters): dead-letter it
//   kUnavailable         the backend is unreachable or failed (retry, trips the breaker)
//   kResourceExhausted   rate limited or out of room (retry later; a server's Retry-After is
//                        carried in the message, see runtime/retry.h)
//   kDeadlineExceeded    the request's deadline passed
//   kCancelled           the caller's stop token was triggered
//
// Thread-safety: a backend is shared; Generate may be called from many threads at once, each
// call blocking its thread until the result is ready.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "eventloom/status.h"

namespace eventloom {

struct ChatMessage {
    std::string role;  // "system", "user", "assistant"
    std::string content;
};

struct SamplingParams {
    float temperature = 0.8f;  // 0: greedy (always the most likely token)
    int top_k = 40;            // 0: off
    float top_p = 0.95f;       // 1: off
    uint32_t seed = 0;         // the sampler's seed; equal seeds give equal output
};

struct LlmRequest {
    std::string id;                     // names the request in logs and errors
    std::vector<ChatMessage> messages;  // a chat, rendered with the model's chat template...
    std::string prompt;                 // ...or a raw prompt when `messages` is empty
    SamplingParams sampling;
    int max_tokens = 256;  // new tokens at most
    std::vector<std::string> stop;
    std::string json_schema;  // JSON Schema text: the output is constrained to match it
    bool ignore_eos = false;  // keep generating past end-of-sequence (benchmarks)
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
    int priority = 0;  // higher first when requests wait for a slot
};

struct LlmUsage {
    int prompt_tokens = 0;
    int completion_tokens = 0;
    int cached_prompt_tokens = 0;  // prompt tokens reused from the KV cache, not computed
    double ttft_ms = 0;            // request start -> first generated token
    double decode_ms = 0;          // first token -> last token
    double queued_ms = 0;          // waiting for a slot
};

struct LlmResult {
    std::string text;
    std::string finish_reason;  // "stop" (EOS or a stop sequence) or "length" (max_tokens)
    LlmUsage usage;
};

// Receives the text of each generated token as it is produced (possibly empty for a token that
// completes no character yet). Called on a backend thread: must be quick and must not call
// the backend.
using TokenCallback = std::function<void(std::string_view piece)>;

// What the backend is doing now, for pulling work only when there is room.
struct LlmLoad {
    int slots = 0;                     // sequences that can run at once
    int busy_slots = 0;                // sequences running
    int queued = 0;                    // requests waiting for a slot
    int64_t queued_prompt_tokens = 0;  // prompt tokens of running prefills and queued requests
};

class LlmBackend {
public:
    virtual ~LlmBackend() = default;

    // "llama" or "openai".
    virtual std::string_view kind() const = 0;
    // The model's name (file stem, or the server's model id).
    virtual std::string model() const = 0;

    // Generates a completion, blocking until it is done, failed, past its deadline or stopped
    // through `stop`. `on_token` (may be empty) sees each token's text as it is produced.
    virtual Result<LlmResult> Generate(const LlmRequest& request, const TokenCallback& on_token,
                                       std::stop_token stop) = 0;
    Result<LlmResult> Generate(const LlmRequest& request) {
        return Generate(request, {}, std::stop_token());
    }

    // Prompt tokens the request would take: exact where the backend has the tokenizer,
    // estimated (bytes / 4) otherwise.
    virtual Result<int> CountPromptTokens(const LlmRequest& request) = 0;

    virtual LlmLoad Load() const = 0;
};

struct LlamaOptions {
    std::string model_path;  // a GGUF file
    int slots = 8;           // sequences decoded together
    int context = 0;         // KV cache cells in all; 0: slots x context_per_slot
    int context_per_slot = 1024;
    int threads = 0;           // 0: all cores
    int batch = 512;           // tokens per decode call (prefill chunks share it with decoding)
    bool prefix_cache = true;  // reuse a prompt prefix already in the KV cache
    // One KV buffer for all sequences: a shared prompt beginning is held once and read once
    // for all the sequences that share it (much faster for system prompts and templates), but
    // every token's attention spans the buffer's used range. false: a buffer per sequence,
    // each token attends over its own sequence only, and a shared beginning is copied into
    // each buffer that needs it (llama-server's layout with -np N).
    bool kv_unified = true;
    int gpu_layers = 0;
};

// Loads the model and starts the scheduler thread.
Result<std::unique_ptr<LlmBackend>> OpenLlamaBackend(const LlamaOptions& options);

struct OpenAiOptions {
    std::string base_url = "http://127.0.0.1:8080/v1";  // the server's API root
    std::string model;                                  // sent as "model"; may be empty
    std::string api_key_env = "OPENAI_API_KEY";  // the key is read from this variable, if set
    bool chat = true;        // /chat/completions; false: /completions with a raw prompt
    int max_concurrent = 8;  // requests in flight at once
    std::chrono::milliseconds connect_timeout{5'000};
    std::chrono::milliseconds request_timeout{300'000};
    int max_retries = 3;  // on 429, 5xx and connection failures, honouring Retry-After
    std::chrono::milliseconds retry_initial{500};
    std::chrono::milliseconds retry_max{30'000};
    double requests_per_minute = 0;  // 0: no limit
    double tokens_per_minute = 0;    // prompt + max_tokens per request; 0: no limit
    // Send `top_k`, which is not part of the OpenAI API: llama-server, vLLM and Ollama read it;
    // some hosted APIs reject a request that carries it.
    bool send_top_k = true;
};

Result<std::unique_ptr<LlmBackend>> OpenOpenAiBackend(const OpenAiOptions& options);

}  // namespace eventloom
