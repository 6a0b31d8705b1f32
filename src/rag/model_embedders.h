// Model embedders for the live index: a TextEmbedder of the LLM layer (the llama embedder in
// process, llm/llama/llama_embedder.h, or the openai embedder over HTTP,
// llm/openai/openai_embedder.h) seen as a rag::Embedder.
//
// The RAG layer depends on the LLM layer here, never the reverse.
#pragma once

#include <memory>

#include "llm/embedding.h"
#include "rag/embedder.h"

namespace eventloom::rag {

// An Embedder that owns `embedder` and forwards to it: same dimension, fingerprint and
// vectors. It checks what the index relies on: one vector per text, each of dimension()
// floats; a model embedder that breaks it gets InternalError naming its fingerprint.
// Thread-safe as `embedder` is (model embedders are). REQUIRES: embedder != nullptr.
std::unique_ptr<Embedder> AdaptEmbedder(std::unique_ptr<llm::TextEmbedder> embedder);

}  // namespace eventloom::rag
