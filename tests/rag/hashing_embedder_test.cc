#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "rag/embedder.h"

namespace eventloom::rag {
namespace {

std::unique_ptr<Embedder> Make(HashingEmbedderOptions options = {}) {
    Result<std::unique_ptr<Embedder>> embedder = MakeHashingEmbedder(options);
    EXPECT_TRUE(embedder.ok()) << embedder.status().ToString();
    return embedder.ok() ? std::move(embedder).value() : nullptr;
}

std::vector<Vector> EmbedAll(Embedder& embedder, const std::vector<std::string>& texts) {
    Result<std::vector<Vector>> vectors = embedder.Embed(texts);
    EXPECT_TRUE(vectors.ok()) << vectors.status().ToString();
    return vectors.ok() ? std::move(vectors).value() : std::vector<Vector>{};
}

Vector EmbedOne(Embedder& embedder, const std::string& text) {
    std::vector<Vector> vectors = EmbedAll(embedder, {text});
    return vectors.empty() ? Vector{} : vectors[0];
}

double Dot(const Vector& a, const Vector& b) {
    double sum = 0.0;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) sum += static_cast<double>(a[i]) * b[i];
    return sum;
}

double Norm(const Vector& v) { return std::sqrt(Dot(v, v)); }

size_t NonZero(const Vector& v) {
    size_t count = 0;
    for (float x : v) count += x != 0.0f ? 1 : 0;
    return count;
}

// Options with only word unigrams: one feature per distinct word.
HashingEmbedderOptions WordsOnly() {
    HashingEmbedderOptions options;
    options.word_ngram_max = 1;
    options.char_ngram_min = 0;
    return options;
}

TEST(MakeHashingEmbedder, RejectsBadOptionsNamingTheField) {
    struct Case {
        const char* description;
        HashingEmbedderOptions options;
        const char* field;
    };
    auto with = [](auto change) {
        HashingEmbedderOptions options;
        change(options);
        return options;
    };
    const Case cases[] = {
        {"dimension too small", with([](auto& o) { o.dimension = 7; }), "dimension"},
        {"dimension zero", with([](auto& o) { o.dimension = 0; }), "dimension"},
        {"dimension too large", with([](auto& o) { o.dimension = 8193; }), "dimension"},
        {"word n-grams from zero", with([](auto& o) { o.word_ngram_min = 0; }), "word_ngram"},
        {"word n-grams inverted", with([](auto& o) { o.word_ngram_min = 3; }), "word_ngram"},
        {"word n-grams too long", with([](auto& o) { o.word_ngram_max = 100; }), "word_ngram"},
        {"char n-grams inverted", with([](auto& o) { o.char_ngram_max = 2; }), "char_ngram"},
        {"char n-grams negative", with([](auto& o) { o.char_ngram_min = -1; }), "char_ngram"},
        {"char n-grams too long", with([](auto& o) { o.char_ngram_max = 1000; }), "char_ngram"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.description);
        Result<std::unique_ptr<Embedder>> embedder = MakeHashingEmbedder(c.options);
        ASSERT_FALSE(embedder.ok());
        EXPECT_EQ(embedder.status().code(), StatusCode::kInvalidArgument);
        EXPECT_NE(embedder.status().message().find(c.field), std::string::npos)
            << embedder.status().message();
    }
}

TEST(MakeHashingEmbedder, AcceptsDimensionLimitsAndDisabledCharNgrams) {
    for (int dimension : {8, 8192}) {
        HashingEmbedderOptions options;
        options.dimension = dimension;
        EXPECT_TRUE(MakeHashingEmbedder(options).ok()) << dimension;
    }
    HashingEmbedderOptions options;
    options.char_ngram_min = 0;
    options.char_ngram_max = 0;
    EXPECT_TRUE(MakeHashingEmbedder(options).ok());
}

TEST(HashingEmbedder, FingerprintNamesTheSettings) {
    EXPECT_EQ(Make()->fingerprint(), "hashing/384/w1-2/c3-5/seed0");

    HashingEmbedderOptions options;
    options.dimension = 64;
    options.word_ngram_min = 2;
    options.word_ngram_max = 3;
    options.char_ngram_min = 0;
    options.seed = 42;
    EXPECT_EQ(Make(options)->fingerprint(), "hashing/64/w2-3/c0-0/seed42");
}

TEST(HashingEmbedder, VectorsHaveTheConfiguredDimension) {
    for (int dimension : {8, 100, 384, 8192}) {
        HashingEmbedderOptions options;
        options.dimension = dimension;
        std::unique_ptr<Embedder> embedder = Make(options);
        ASSERT_NE(embedder, nullptr);
        EXPECT_EQ(embedder->dimension(), dimension);
        const std::vector<Vector> vectors = EmbedAll(*embedder, {"some text", "", "more"});
        ASSERT_EQ(vectors.size(), 3u);
        for (const Vector& v : vectors) EXPECT_EQ(v.size(), static_cast<size_t>(dimension));
    }
}

TEST(HashingEmbedder, VectorsHaveUnitLength) {
    std::unique_ptr<Embedder> embedder = Make();
    const std::vector<std::string> texts = {
        "a",
        "the cat sat on the mat",
        "Quarterly revenue grew 12% year over year, beating estimates.",
        "héllo wörld 日本語のテキスト 🙂",
        std::string(5000, 'x'),
        "word word word word word",
    };
    for (const Vector& v : EmbedAll(*embedder, texts)) EXPECT_NEAR(Norm(v), 1.0, 1e-5);
}

TEST(HashingEmbedder, TextWithoutWordsGivesTheZeroVector) {
    std::unique_ptr<Embedder> embedder = Make();
    for (const std::string& text : {std::string(), std::string("   \n\t"), std::string("?!., -")}) {
        const Vector v = EmbedOne(*embedder, text);
        ASSERT_EQ(v.size(), 384u);
        EXPECT_EQ(NonZero(v), 0u) << text;
    }
}

TEST(HashingEmbedder, NoTextsGiveNoVectors) {
    std::unique_ptr<Embedder> embedder = Make();
    EXPECT_TRUE(EmbedAll(*embedder, {}).empty());
}

TEST(HashingEmbedder, SameTextGivesTheSameVector) {
    const std::string text = "Retrieval augmented generation over a live event log.";
    std::unique_ptr<Embedder> first = Make();
    std::unique_ptr<Embedder> second = Make();
    const std::vector<Vector> batch = EmbedAll(*first, {text, "something else", text});
    ASSERT_EQ(batch.size(), 3u);
    EXPECT_EQ(batch[0], batch[2]);
    EXPECT_EQ(batch[0], EmbedOne(*second, text));
}

TEST(HashingEmbedder, VectorsDoNotDependOnTheMachine) {
    // One word, one feature: pins the hash, so that stored vectors stay comparable.
    HashingEmbedderOptions options = WordsOnly();
    options.dimension = 1024;
    std::unique_ptr<Embedder> embedder = Make(options);
    const Vector v = EmbedOne(*embedder, "eventloom");
    ASSERT_EQ(NonZero(v), 1u);
    size_t bucket = 0;
    while (v[bucket] == 0.0f) ++bucket;
    EXPECT_EQ(bucket, 973u);
    EXPECT_FLOAT_EQ(v[bucket], 1.0f);
}

TEST(HashingEmbedder, IgnoresAsciiCaseAndPunctuation) {
    std::unique_ptr<Embedder> embedder = Make();
    const Vector plain = EmbedOne(*embedder, "hello world");
    EXPECT_EQ(EmbedOne(*embedder, "Hello, WORLD!"), plain);
    EXPECT_EQ(EmbedOne(*embedder, "  hello\n\nworld  "), plain);
}

TEST(HashingEmbedder, SimilarTextsAreCloserThanUnrelatedOnes) {
    std::unique_ptr<Embedder> embedder = Make();
    const std::vector<Vector> v = EmbedAll(
        *embedder, {"the cat sat on the mat", "a cat sat on a mat", "quarterly revenue grew"});
    ASSERT_EQ(v.size(), 3u);
    EXPECT_GT(Dot(v[0], v[1]), 0.5);
    EXPECT_LT(Dot(v[0], v[2]), 0.2);
    EXPECT_GT(Dot(v[0], v[1]), Dot(v[0], v[2]) + 0.3);
}

TEST(HashingEmbedder, CharNgramsMatchMisspellings) {
    std::unique_ptr<Embedder> with_chars = Make();
    const std::vector<Vector> v = EmbedAll(*with_chars, {"embedding", "embeding", "revenue"});
    ASSERT_EQ(v.size(), 3u);
    EXPECT_GT(Dot(v[0], v[1]), 0.4);
    EXPECT_GT(Dot(v[0], v[1]), Dot(v[0], v[2]) + 0.3);
}

TEST(HashingEmbedder, WordBigramsCaptureOrder) {
    std::unique_ptr<Embedder> bigrams = Make();
    const std::vector<Vector> ordered = EmbedAll(*bigrams, {"dog bites man", "man bites dog"});
    ASSERT_EQ(ordered.size(), 2u);
    EXPECT_LT(Dot(ordered[0], ordered[1]), 0.99);

    std::unique_ptr<Embedder> unigrams = Make(WordsOnly());
    const std::vector<Vector> bag = EmbedAll(*unigrams, {"dog bites man", "man bites dog"});
    ASSERT_EQ(bag.size(), 2u);
    EXPECT_NEAR(Dot(bag[0], bag[1]), 1.0, 1e-6);
}

TEST(HashingEmbedder, RepeatedWordsCountSubLinearly) {
    std::unique_ptr<Embedder> embedder = Make(WordsOnly());
    const std::vector<Vector> v = EmbedAll(*embedder, {"cat cat cat cat dog", "cat", "dog"});
    ASSERT_EQ(v.size(), 3u);
    if (Dot(v[1], v[2]) != 0.0) GTEST_SKIP() << "cat and dog share a bucket";
    const double cat = std::abs(Dot(v[0], v[1]));
    const double dog = std::abs(Dot(v[0], v[2]));
    EXPECT_NEAR(cat / dog, 1.0 + std::log(4.0), 1e-4);
}

TEST(HashingEmbedder, SeedChangesTheVectors) {
    HashingEmbedderOptions options;
    options.seed = 1;
    std::unique_ptr<Embedder> seeded = Make(options);
    std::unique_ptr<Embedder> unseeded = Make();
    const std::string text = "the same text under two seeds";
    const Vector a = EmbedOne(*seeded, text);
    const Vector b = EmbedOne(*unseeded, text);
    EXPECT_NE(a, b);
    EXPECT_LT(std::abs(Dot(a, b)), 0.5);
    EXPECT_NE(seeded->fingerprint(), unseeded->fingerprint());
}

TEST(HashingEmbedder, EmbedsNonAsciiText) {
    std::unique_ptr<Embedder> embedder = Make();
    const std::vector<Vector> v =
        EmbedAll(*embedder, {"日本語のテキスト", "日本語の文章", "Ελληνικά κείμενα"});
    ASSERT_EQ(v.size(), 3u);
    for (const Vector& x : v) EXPECT_NEAR(Norm(x), 1.0, 1e-5);
    // Shared characters give shared character n-grams.
    EXPECT_GT(Dot(v[0], v[1]), Dot(v[0], v[2]));
}

TEST(HashingEmbedder, ConcurrentCallsGiveTheSameVectors) {
    std::unique_ptr<Embedder> embedder = Make();
    std::vector<std::string> texts;
    for (int i = 0; i < 200; ++i) {
        texts.push_back("document " + std::to_string(i) + " about topic " + std::to_string(i % 7) +
                        " with some shared words and héllo 日本");
    }
    const std::vector<Vector> expected = EmbedAll(*embedder, texts);

    constexpr int kThreads = 4;
    std::vector<std::vector<Vector>> results(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int round = 0; round < 5; ++round) {
                Result<std::vector<Vector>> vectors = embedder->Embed(texts);
                if (!vectors.ok()) return;
                results[t] = std::move(vectors).value();
                if (results[t] != expected) return;
            }
        });
    }
    for (std::thread& thread : threads) thread.join();
    for (int t = 0; t < kThreads; ++t) EXPECT_EQ(results[t], expected) << "thread " << t;
}

}  // namespace
}  // namespace eventloom::rag
