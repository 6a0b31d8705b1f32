// The OpenAI wire format as the gateway speaks it: request validation, and the JSON of
// responses, stream chunks and errors, built from eventloom's completion events
// (llm/request_json.h). Pure functions over values; thread-safe; no I/O.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "eventloom/status.h"

namespace eventloom::gateway {

enum class ApiKind { kChat, kCompletion };  // /v1/chat/completions, /v1/completions

// A validated request body.
struct CompletionRequest {
    nlohmann::json body;  // the body without "stream" and "stream_options": the event's data
    std::string model;
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage
    std::string user;            // "user", when a string
};

// Validates `text` as a request of `kind`: a JSON object with a string `model`, an array
// `messages` (chat) or a string `prompt` (completions), and members the LLM stage accepts
// (llm::ParseLlmRequest). InvalidArgument names the member ("'messages' must be an array");
// `param` receives that member's name (empty when the body as a whole is wrong).
Result<CompletionRequest> ParseCompletionRequest(std::string_view text, ApiKind kind,
                                                 std::string* param);

// The parts of a completion event's data ({"text","finish_reason","model","usage"}). Data that
// is not such an object (a pipeline's own output shape) is taken as the text itself.
struct Completion {
    std::string text;
    std::string finish_reason = "stop";
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;
    int64_t total_tokens = 0;
};
Completion ParseCompletion(std::string_view data);

// "chatcmpl-<event id>" or "cmpl-<event id>".
std::string ResponseId(ApiKind kind, std::string_view event_id);

// chat.completion / text_completion.
nlohmann::json CompletionResponse(ApiKind kind, std::string_view event_id, int64_t created,
                                  std::string_view model, const Completion& completion);

// One chat.completion.chunk (or text_completion chunk): a delta with `text` (and the role when
// `with_role`), or, with `finish_reason`, the empty final delta.
nlohmann::json StreamChunk(ApiKind kind, std::string_view event_id, int64_t created,
                           std::string_view model, std::string_view text, bool with_role,
                           const std::optional<std::string>& finish_reason);
// The usage chunk (stream_options.include_usage): no choices, the usage.
nlohmann::json UsageChunk(ApiKind kind, std::string_view event_id, int64_t created,
                          std::string_view model, const Completion& completion);

// {"error": {"message", "type", "param", "code"}}; empty param/code become null.
nlohmann::json ErrorJson(std::string_view message, std::string_view type,
                         std::string_view param = {}, std::string_view code = {});

// JSON text that never throws: invalid UTF-8 in strings is replaced.
std::string DumpJson(const nlohmann::json& value);

}  // namespace eventloom::gateway
