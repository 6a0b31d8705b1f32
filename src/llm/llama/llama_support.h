// What the llama backend and the llama embedder share: llama.cpp's once-per-process set-up,
// model and context loading that turn llama.cpp's null returns into a Status naming the file
// and llama.cpp's own complaints, and tokenization.
//
// Internal to src/llm/llama/ (it includes llama.h). Thread-safe.
#pragma once

#include <llama.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "eventloom/status.h"

namespace eventloom::llm {

// Forwards llama.cpp's and ggml's log into the "llama" logger and initialises the backend;
// once per process, whoever calls first.
void InitLlamaOnce();

struct LlamaModelDeleter {
    void operator()(llama_model* model) const { llama_model_free(model); }
};
struct LlamaContextDeleter {
    void operator()(llama_context* ctx) const { llama_free(ctx); }
};
using LlamaModelPtr = std::unique_ptr<llama_model, LlamaModelDeleter>;
using LlamaContextPtr = std::unique_ptr<llama_context, LlamaContextDeleter>;

// Loads the GGUF model at `path` (calls InitLlamaOnce). Errors name the file:
//   NotFound         no regular file at `path`
//   InvalidArgument  llama.cpp cannot load it; the message carries llama.cpp's warnings and
//                    errors from the attempt
Result<LlamaModelPtr> LoadLlamaModel(const std::string& path, int gpu_layers);

// A context on `model` (which must outlive it). ResourceExhausted with llama.cpp's messages
// when it cannot be created; `path` names the model in the message.
Result<LlamaContextPtr> NewLlamaContext(llama_model* model, const llama_context_params& params,
                                        const std::string& path);

// The tokens of `text`, with the model's BOS/EOS/SEP as its vocabulary asks
// (`add_special`), and special tokens spelled in the text read as such (`parse_special`).
std::vector<llama_token> TokenizeText(const llama_vocab* vocab, std::string_view text,
                                      bool add_special, bool parse_special);

}  // namespace eventloom::llm
