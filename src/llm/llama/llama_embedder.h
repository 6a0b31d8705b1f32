// The llama embedder: a GGUF embedding model run by llama.cpp in this process (a TextEmbedder,
// llm/embedding.h).
//
// The context is created with embeddings on. Each text is tokenized (with the BOS/EOS/SEP the
// model's vocabulary adds) and becomes one sequence; an Embed call packs as many sequences
// into one llama_batch as fit in `context` tokens and `max_sequences` sequences, decodes it,
// reads each sequence's pooled vector (llama_get_embeddings_seq), L2-normalises it, clears the
// memory and goes on with the next batch.
//
// Truncation: a text longer than `context` tokens is cut to its first `context` tokens (the
// final EOS/SEP the tokenizer added is kept), and embedded; it is not an error. The context is
// also the batch and the micro-batch (n_ctx = n_batch = n_ubatch), so that a whole sequence is
// computed in one step, which non-causal attention and pooling require.
//
// Pooling: the model's own (its GGUF key <arch>.pooling_type) unless `pooling` says otherwise;
// mean for a model that declares none (generative models). Rerankers (rank pooling) are refused.
//
// Thread-safety: Embed may be called from any number of threads; tokenization runs on the
// caller's thread, the decoding of one call at a time (a mutex guards the llama context).
//
// Only src/llm/llama/ includes llama.h; this header does not.
#pragma once

#include <memory>
#include <string>

#include "eventloom/status.h"
#include "llm/embedding.h"

namespace eventloom::llm {

enum class EmbeddingPooling {
    kModel,  // the model's pooling type; mean when it declares none
    kMean,
    kCls,   // the first token's vector (BERT-style models)
    kLast,  // the last token's vector (decoder models trained for it)
};

struct LlamaEmbedderOptions {
    std::string model_path;  // a GGUF file
    EmbeddingPooling pooling = EmbeddingPooling::kModel;
    // Tokens per text (longer texts are truncated) and per decode call: n_ctx = n_batch =
    // n_ubatch. 0: the model's training context, at most 8192.
    int context = 512;
    int max_sequences = 16;  // texts per decode call, 1..256
    int threads = 0;         // 0: all cores
    int gpu_layers = 0;
};

// Loads the model and creates the context. Errors name the model file:
//   NotFound           no file at model_path
//   InvalidArgument    options out of range; not a loadable GGUF model (with llama.cpp's
//                      messages); a reranker or an encoder-decoder model
//   ResourceExhausted  the context cannot be allocated
// Embed's errors: Internal when llama.cpp fails to decode a batch or returns no pooled vector.
// fingerprint() is "llama/<model file name>/<dimension>/<pooling>", pooling being "mean",
// "cls" or "last".
Result<std::unique_ptr<TextEmbedder>> OpenLlamaEmbedder(const LlamaEmbedderOptions& options);

}  // namespace eventloom::llm
