// TextEmbedder: a model that turns texts into vectors, behind one interface for the llama
// embedder (llm/llama/llama_embedder.h, in process) and the openai embedder
// (llm/openai/openai_embedder.h, over HTTP). The RAG index adapts it to rag::Embedder
// (rag/model_embedders.h); this layer knows nothing of the index.
//
// Contract of every implementation:
//   - Embed returns one vector per text, in the order of the texts, each of dimension()
//     floats and unit length (L2-normalised), so that cosine similarity is the inner product;
//   - an empty text gets the zero vector (and is never sent to the model);
//   - dimension() and fingerprint() are fixed from the moment the embedder is opened;
//   - Embed may be called from several threads at once.
#pragma once

#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "eventloom/status.h"

namespace eventloom::llm {

class TextEmbedder {
public:
    virtual ~TextEmbedder() = default;

    virtual int dimension() const = 0;
    // Names the model and the settings that change its vectors ("llama/bge-small.gguf/384/cls",
    // "openai/text-embedding-3-small/1536"): vectors with different fingerprints do not compare.
    virtual std::string fingerprint() const = 0;
    // Errors are those of the implementation; the retry decision is in the code (status.h).
    virtual Result<std::vector<std::vector<float>>> Embed(std::span<const std::string> texts) = 0;
};

// Scales `v` to unit length; a zero vector stays zero.
inline void NormalizeL2(std::vector<float>& v) {
    double sum = 0;
    for (float x : v) sum += static_cast<double>(x) * x;
    if (sum <= 0) return;
    const float scale = static_cast<float>(1.0 / std::sqrt(sum));
    for (float& x : v) x *= scale;
}

}  // namespace eventloom::llm
