// The llama backend: llama.cpp in this process (see include/eventloom/llm.h).
//
// One scheduler thread owns the llama context. Callers of Generate tokenize their prompt and
// build their sampler on their own thread, queue the request, and wait. The scheduler keeps up
// to `slots` sequences in one batch (continuous batching):
//
//   - each step decodes one token for every generating sequence plus a chunk of prompt tokens
//     of sequences still reading their prompt, so a long prompt never stalls the others (the
//     chunk is LlamaOptions::batch when nothing is generating, batch / 2 otherwise);
//   - a finished, cancelled or expired sequence leaves the batch at once and its slot takes
//     the next queued request (highest priority first, then oldest);
//   - the KV cache is unified: sequences may share cells. A new prompt whose beginning is
//     already in the cache (a finished request's prompt, or one being read right now) shares
//     those cells instead of computing them again; if another sequence is still computing that
//     shared beginning, the new one waits for it rather than computing it twice. What a slot
//     computed stays in the cache after its request ends, until the slot is reused.
//
// Only this folder includes llama.h.
#pragma once

#include <cstdint>
#include <memory>

#include "eventloom/llm.h"

namespace eventloom::llm {

struct LlamaStats {
    int64_t decode_calls = 0;
    int64_t prompt_tokens_computed = 0;  // prompt tokens run through the model
    int64_t prompt_tokens_reused = 0;    // prompt tokens taken from the KV cache instead
    int64_t generated_tokens = 0;
    int max_sequences_in_batch = 0;  // the most sequences one decode call served
    // Decode calls that carried prompt tokens of one sequence and generated tokens of another:
    // prefill interleaved with decoding.
    int64_t mixed_decode_calls = 0;
    int64_t cache_evictions = 0;  // idle slots' cached tokens dropped to make room
};

class LlamaBackend : public LlmBackend {
public:
    virtual LlamaStats stats() const = 0;
};

Result<std::unique_ptr<LlamaBackend>> OpenLlama(const LlamaOptions& options);

}  // namespace eventloom::llm
