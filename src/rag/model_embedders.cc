#include "rag/model_embedders.h"

#include <cassert>
#include <string>
#include <utility>
#include <vector>

namespace eventloom::rag {
namespace {

class ModelEmbedder final : public Embedder {
public:
    explicit ModelEmbedder(std::unique_ptr<llm::TextEmbedder> embedder)
        : embedder_(std::move(embedder)) {}

    int dimension() const override { return embedder_->dimension(); }
    std::string fingerprint() const override { return embedder_->fingerprint(); }

    Result<std::vector<Vector>> Embed(std::span<const std::string> texts) override {
        EVENTLOOM_ASSIGN_OR_RETURN(std::vector<Vector> vectors, embedder_->Embed(texts));
        if (vectors.size() != texts.size()) {
            return InternalError("embedder " + fingerprint() + " returned " +
                                 std::to_string(vectors.size()) + " vectors for " +
                                 std::to_string(texts.size()) + " texts");
        }
        const size_t dimension = static_cast<size_t>(embedder_->dimension());
        for (size_t i = 0; i < vectors.size(); ++i) {
            if (vectors[i].size() != dimension) {
                return InternalError("embedder " + fingerprint() + " returned a vector of " +
                                     std::to_string(vectors[i].size()) + " floats for text " +
                                     std::to_string(i) + "; its dimension is " +
                                     std::to_string(dimension));
            }
        }
        return vectors;
    }

private:
    const std::unique_ptr<llm::TextEmbedder> embedder_;
};

}  // namespace

std::unique_ptr<Embedder> AdaptEmbedder(std::unique_ptr<llm::TextEmbedder> embedder) {
    assert(embedder != nullptr && "AdaptEmbedder needs an embedder");
    return std::make_unique<ModelEmbedder>(std::move(embedder));
}

}  // namespace eventloom::rag
