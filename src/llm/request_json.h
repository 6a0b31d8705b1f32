// The JSON form of an LLM request and result, as carried in event data (and, later, by the
// HTTP gateway). The request follows the OpenAI chat/completions body:
//
//   {"messages": [{"role": "user", "content": "Hi"}],   // or "prompt": "Once upon a time"
//    "max_tokens": 128, "temperature": 0.7, "top_p": 0.9, "top_k": 40, "seed": 7,
//    "stop": ["\n\n"],                                   // or a single string
//    "response_format": {"type": "json_schema", "json_schema": {"schema": {...}}},
//    "ignore_eos": false}
//
// Unknown members are ignored (a client may send "model", "stream", "user", ...). A wrong type
// or value is InvalidArgument naming the member.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "eventloom/llm.h"

namespace eventloom::llm {

Result<LlmRequest> ParseLlmRequest(std::string_view json);
Result<LlmRequest> ParseLlmRequest(const nlohmann::json& body);

// {"text": ..., "finish_reason": ..., "model": ..., "usage": {"prompt_tokens": ..., ...}}
nlohmann::json LlmResultToJson(const LlmResult& result, std::string_view model);

}  // namespace eventloom::llm
