// EchoBackend: a test backend for the LLM interface (include/eventloom/llm.h). It runs no
// model: it answers at once with the request's last user message (or its raw prompt), one
// token per word, streamed through the token callback. For tests and benchmarks of everything
// around the model (the LLM stage, the gateway) where a model's own time would hide theirs.
//
// It honours max_tokens (finish_reason "length"), stop sequences (found in text not yet
// streamed; it holds nothing back), the stop token (Cancelled) and the deadline
// (DeadlineExceeded), and reports usage with words as tokens. `reply` fixes the answer instead
// (a JSON document for schema tests, say).
//
// Thread-safe: Generate may run on many threads at once.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "eventloom/llm.h"

namespace eventloom::llm {

struct EchoOptions {
    std::string model = "echo";
    int slots = 64;
    // Time per generated token, to stand in for a slow model; 0 answers at once.
    std::chrono::microseconds token_delay{0};
    std::optional<std::string> reply;
};

std::shared_ptr<LlmBackend> MakeEchoBackend(EchoOptions options = {});

}  // namespace eventloom::llm
