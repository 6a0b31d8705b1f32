// AdaptEmbedder: a TextEmbedder of the LLM layer seen as a rag::Embedder, against a scripted
// fake TextEmbedder (a test double).
#include "rag/model_embedders.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace eventloom::rag {
namespace {

// Answers every call with `answer`, or `error` when it is set.
class FakeTextEmbedder : public llm::TextEmbedder {
public:
    int dimension() const override { return 2; }
    std::string fingerprint() const override { return "fake/2"; }
    Result<std::vector<std::vector<float>>> Embed(std::span<const std::string> texts) override {
        texts_.assign(texts.begin(), texts.end());
        if (!error.ok()) return error;
        return answer;
    }

    std::vector<std::vector<float>> answer;
    Status error;
    std::vector<std::string> texts_;
};

TEST(AdaptEmbedder, ForwardsDimensionFingerprintTextsAndVectors) {
    auto fake = std::make_unique<FakeTextEmbedder>();
    FakeTextEmbedder* raw = fake.get();
    raw->answer = {{1, 0}, {0, 0}};
    std::unique_ptr<Embedder> embedder = AdaptEmbedder(std::move(fake));
    EXPECT_EQ(embedder->dimension(), 2);
    EXPECT_EQ(embedder->fingerprint(), "fake/2");

    const std::vector<std::string> texts = {"a", ""};
    auto vectors = embedder->Embed(texts);
    ASSERT_TRUE(vectors.ok()) << vectors.status().ToString();
    EXPECT_EQ(*vectors, (std::vector<Vector>{{1, 0}, {0, 0}}));
    EXPECT_EQ(raw->texts_, texts);
}

TEST(AdaptEmbedder, ErrorsPassThroughUnchanged) {
    auto fake = std::make_unique<FakeTextEmbedder>();
    fake->error = UnavailableError("server down");
    std::unique_ptr<Embedder> embedder = AdaptEmbedder(std::move(fake));
    EXPECT_EQ(embedder->Embed(std::vector<std::string>{"a"}).status(),
              UnavailableError("server down"));
}

TEST(AdaptEmbedder, WrongNumberOfVectorsIsInternal) {
    auto fake = std::make_unique<FakeTextEmbedder>();
    fake->answer = {{1, 0}};
    std::unique_ptr<Embedder> embedder = AdaptEmbedder(std::move(fake));
    const Status status = embedder->Embed(std::vector<std::string>{"a", "b"}).status();
    EXPECT_EQ(status.code(), StatusCode::kInternal) << status.ToString();
    EXPECT_NE(status.message().find("fake/2"), std::string::npos) << status.ToString();
}

TEST(AdaptEmbedder, VectorOfWrongDimensionIsInternal) {
    auto fake = std::make_unique<FakeTextEmbedder>();
    fake->answer = {{1, 0, 0}};
    std::unique_ptr<Embedder> embedder = AdaptEmbedder(std::move(fake));
    EXPECT_EQ(embedder->Embed(std::vector<std::string>{"a"}).status().code(),
              StatusCode::kInternal);
}

}  // namespace
}  // namespace eventloom::rag
