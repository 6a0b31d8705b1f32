// The llama embedder on the tiny test model (written by the llm_tiny_model ctest fixture): a
// llama-architecture model with random weights and no pooling type, so the embedder pools by
// mean. The vectors mean nothing; the tests check their shape, norm, determinism and batching.
#include "llm/llama/llama_embedder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "support/temp_dir.h"
#include "support/vectors.h"

namespace eventloom::llm {
namespace {

using ::eventloom::testing::MaxDifference;
using ::eventloom::testing::Norm;

constexpr int kTinyModelWidth = 256;  // TestModelSize::kTiny

LlamaEmbedderOptions Options() {
    LlamaEmbedderOptions o;
    o.model_path = EVENTLOOM_TINY_MODEL;
    o.context = 128;
    o.max_sequences = 8;
    // One thread: llama.cpp's workers spin at barriers, and other tests may run meanwhile.
    o.threads = 1;
    return o;
}

std::unique_ptr<TextEmbedder> Open(const LlamaEmbedderOptions& o = Options()) {
    auto embedder = OpenLlamaEmbedder(o);
    EXPECT_TRUE(embedder.ok()) << embedder.status().ToString();
    return embedder.ok() ? std::move(*embedder) : nullptr;
}

std::vector<float> EmbedOne(TextEmbedder& embedder, const std::string& text) {
    auto vectors = embedder.Embed(std::span<const std::string>(&text, 1));
    EXPECT_TRUE(vectors.ok()) << vectors.status().ToString();
    return vectors.ok() && vectors->size() == 1 ? (*vectors)[0] : std::vector<float>();
}

TEST(LlamaEmbedder, DimensionIsTheModelsWidthAndFingerprintNamesTheModel) {
    auto embedder = Open();
    ASSERT_TRUE(embedder);
    EXPECT_EQ(embedder->dimension(), kTinyModelWidth);
    const std::string file = std::filesystem::path(EVENTLOOM_TINY_MODEL).filename().string();
    EXPECT_EQ(embedder->fingerprint(), "llama/" + file + "/256/mean");
}

TEST(LlamaEmbedder, PoolingOptionIsInTheFingerprint) {
    LlamaEmbedderOptions o = Options();
    o.pooling = EmbeddingPooling::kLast;
    auto embedder = Open(o);
    ASSERT_TRUE(embedder);
    EXPECT_TRUE(embedder->fingerprint().ends_with("/256/last")) << embedder->fingerprint();
    EXPECT_NEAR(Norm(EmbedOne(*embedder, "the last token decides")), 1.0, 1e-5);
}

TEST(LlamaEmbedder, VectorsHaveUnitLength) {
    auto embedder = Open();
    ASSERT_TRUE(embedder);
    const std::vector<std::string> texts = {"a", "The quick brown fox", "jumps over the lazy dog."};
    auto vectors = embedder->Embed(texts);
    ASSERT_TRUE(vectors.ok()) << vectors.status().ToString();
    ASSERT_EQ(vectors->size(), texts.size());
    for (const auto& v : *vectors) {
        ASSERT_EQ(v.size(), static_cast<size_t>(kTinyModelWidth));
        EXPECT_NEAR(Norm(v), 1.0, 1e-5);
    }
}

TEST(LlamaEmbedder, SameTextTwiceGivesTheSameVector) {
    auto embedder = Open();
    ASSERT_TRUE(embedder);
    const std::vector<float> first = EmbedOne(*embedder, "events flow through topics");
    const std::vector<float> second = EmbedOne(*embedder, "events flow through topics");
    EXPECT_EQ(first, second);
}

TEST(LlamaEmbedder, DifferentTextsGiveDifferentVectors) {
    auto embedder = Open();
    ASSERT_TRUE(embedder);
    const std::vector<float> a = EmbedOne(*embedder, "events flow through topics");
    const std::vector<float> b = EmbedOne(*embedder, "a consumer group acks its deliveries");
    EXPECT_GT(MaxDifference(a, b), 1e-3);
}

TEST(LlamaEmbedder, BatchEqualsOneByOne) {
    auto embedder = Open();
    ASSERT_TRUE(embedder);
    // Ten texts of different lengths: two decode calls of at most eight sequences.
    std::vector<std::string> texts;
    for (int i = 0; i < 10; ++i) {
        std::string text = "text " + std::to_string(i) + ":";
        for (int w = 0; w <= i; ++w) text += " word" + std::to_string(w * 7 % 11);
        texts.push_back(text);
    }
    auto batched = embedder->Embed(texts);
    ASSERT_TRUE(batched.ok()) << batched.status().ToString();
    ASSERT_EQ(batched->size(), texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
        SCOPED_TRACE(texts[i]);
        EXPECT_LT(MaxDifference((*batched)[i], EmbedOne(*embedder, texts[i])), 1e-4);
    }
}

TEST(LlamaEmbedder, EmptyTextGetsTheZeroVector) {
    auto embedder = Open();
    ASSERT_TRUE(embedder);
    const std::vector<std::string> texts = {"before", "", "after"};
    auto vectors = embedder->Embed(texts);
    ASSERT_TRUE(vectors.ok()) << vectors.status().ToString();
    ASSERT_EQ(vectors->size(), 3u);
    EXPECT_EQ((*vectors)[1], std::vector<float>(kTinyModelWidth, 0.0f));
    EXPECT_NEAR(Norm((*vectors)[0]), 1.0, 1e-5);
    EXPECT_NEAR(Norm((*vectors)[2]), 1.0, 1e-5);
    EXPECT_LT(MaxDifference((*vectors)[2], EmbedOne(*embedder, "after")), 1e-4);
}

TEST(LlamaEmbedder, NoTextsGiveNoVectors) {
    auto embedder = Open();
    ASSERT_TRUE(embedder);
    auto vectors = embedder->Embed({});
    ASSERT_TRUE(vectors.ok()) << vectors.status().ToString();
    EXPECT_TRUE(vectors->empty());
}

TEST(LlamaEmbedder, TextLongerThanTheContextIsTruncated) {
    auto embedder = Open();  // 128 tokens
    ASSERT_TRUE(embedder);
    std::string head;
    for (int i = 0; i < 400; ++i) head += "word" + std::to_string(i % 13) + " ";
    // Two texts that differ only far beyond the context embed the same.
    const std::vector<std::string> texts = {head + "tail one", head + "a different tail"};
    auto vectors = embedder->Embed(texts);
    ASSERT_TRUE(vectors.ok()) << vectors.status().ToString();
    EXPECT_NEAR(Norm((*vectors)[0]), 1.0, 1e-5);
    EXPECT_LT(MaxDifference((*vectors)[0], (*vectors)[1]), 1e-4);
}

TEST(LlamaEmbedder, ConcurrentCallsAllSucceed) {
    auto embedder = Open();
    ASSERT_TRUE(embedder);
    const std::vector<float> expected = EmbedOne(*embedder, "shared text");
    std::vector<std::jthread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            const std::vector<std::string> texts = {"shared text", "other"};
            auto vectors = embedder->Embed(texts);
            ASSERT_TRUE(vectors.ok()) << vectors.status().ToString();
            EXPECT_LT(MaxDifference((*vectors)[0], expected), 1e-4);
        });
    }
}

TEST(LlamaEmbedder, MissingModelIsNotFoundNamingTheFile) {
    LlamaEmbedderOptions o = Options();
    o.model_path = "/nonexistent/embedder.gguf";
    auto embedder = OpenLlamaEmbedder(o);
    ASSERT_FALSE(embedder.ok());
    EXPECT_EQ(embedder.status().code(), StatusCode::kNotFound);
    EXPECT_NE(embedder.status().message().find("/nonexistent/embedder.gguf"), std::string::npos)
        << embedder.status().ToString();
}

TEST(LlamaEmbedder, FileThatIsNotAModelIsInvalidArgumentNamingTheFile) {
    testing::TempDir dir;
    const std::string path = dir.Sub("not-a-model.gguf");
    std::ofstream(path) << "this is not a GGUF file";
    LlamaEmbedderOptions o = Options();
    o.model_path = path;
    auto embedder = OpenLlamaEmbedder(o);
    ASSERT_FALSE(embedder.ok());
    EXPECT_EQ(embedder.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(embedder.status().message().find(path), std::string::npos)
        << embedder.status().ToString();
}

TEST(LlamaEmbedder, OptionsOutOfRangeAreInvalidArgument) {
    LlamaEmbedderOptions o = Options();
    o.max_sequences = 0;
    EXPECT_EQ(OpenLlamaEmbedder(o).status().code(), StatusCode::kInvalidArgument);
    o = Options();
    o.context = 4;
    EXPECT_EQ(OpenLlamaEmbedder(o).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace eventloom::llm
