// Embedders turn text into vectors for the live index (docs/rag.md).
//
// Every embedder returns unit-length (L2-normalised) float vectors of dimension(), so that
// cosine similarity is the inner product. Thread-safety: Embed may be called from several
// threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "eventloom/status.h"

namespace eventloom::rag {

using Vector = std::vector<float>;

class Embedder {
public:
    virtual ~Embedder() = default;
    virtual int dimension() const = 0;
    // Names the embedder and its settings ("hashing/384/w1-2/c3-5/seed0"): an index records it
    // and refuses to open with another, whose vectors would not compare.
    virtual std::string fingerprint() const = 0;
    // One vector per text, in order. An empty text gets the zero vector.
    virtual Result<std::vector<Vector>> Embed(std::span<const std::string> texts) = 0;
};

// The built-in offline embedder: feature hashing of word n-grams and character n-grams
// (within words, with boundary marks), signed, sub-linear term weights, L2-normalised. Needs
// no model; deterministic across runs and machines.
struct HashingEmbedderOptions {
    int dimension = 384;
    int word_ngram_min = 1;
    int word_ngram_max = 2;
    int char_ngram_min = 3;  // 0 turns character n-grams off
    int char_ngram_max = 5;
    uint32_t seed = 0;
};

// InvalidArgument for a dimension outside 8..8192 or inverted n-gram ranges.
Result<std::unique_ptr<Embedder>> MakeHashingEmbedder(HashingEmbedderOptions options = {});

}  // namespace eventloom::rag
