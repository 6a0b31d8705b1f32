// `eventloom bench llm`: the LLM stage against llama-server, same model, same machine, same run.
//
// Two workloads of `requests` raw prompts, `new_tokens` new tokens each (EOS ignored, greedy),
// `concurrency` in flight at a time (a closed loop: a new request goes as one finishes):
//   A  distinct prompts of about 20 tokens;
//   B  the same behind a shared system prompt of `prefix_tokens` tokens.
// Each runs through eventloom (requests published as events to the embedded log, the LLM stage
// with `concurrency` slots, completions and chunk events read back from the log: time to first
// token is publish -> first chunk event read) and through llama-server with
// `-np concurrency` and enough context for every slot (over HTTP with streaming, through the
// openai backend: time to first token is request -> first streamed token). A one-at-a-time
// run of the llama backend gives the sequential baseline.
#pragma once

#include <string>

namespace eventloom::bench {

struct LlmBenchOptions {
    std::string model;         // empty: write the small test model into `dir`
    std::string dir;           // parent of the temporary directory ("" = $TMPDIR or /tmp)
    std::string llama_server;  // empty: the one built with the llama.cpp eventloom uses
    int threads = 2;
    int requests = 32;
    int concurrency = 8;
    int new_tokens = 64;
    int prefix_tokens = 1024;
    int sequential_requests = 8;
    bool skip_server = false;
    bool kv_unified = true;  // LlamaOptions::kv_unified for eventloom's backend
};

int RunLlmBench(const LlmBenchOptions& options);

}  // namespace eventloom::bench
