// The openai embedder against FakeOpenAiServer, a scripted test double that can also answer
// /embeddings requests itself (ServeEmbeddings): request bodies, ordering by index,
// normalisation, batching, error classification and malformed responses.
#include "llm/openai/openai_embedder.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "llm/openai/fake_openai_server.h"
#include "support/ports.h"
#include "support/vectors.h"

namespace eventloom::llm {
namespace {

using ::eventloom::testing::Norm;

using std::chrono::milliseconds;
using testing::FakeOpenAiServer;
using testing::FakeResponse;

constexpr int kDimension = 8;

bool Contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

std::vector<float> Normalized(std::vector<float> v) {
    NormalizeL2(v);
    return v;
}

void ExpectNear(const std::vector<float>& a, const std::vector<float>& b) {
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6) << "component " << i;
}

class OpenAiEmbedderTest : public ::testing::Test {
protected:
    OpenAiEmbedderTest() {
        server_.ServeEmbeddings(kDimension);
        options_.base_url = server_.base_url();
        options_.model = "text-embed";
        options_.api_key_env = "EVENTLOOM_TEST_OPENAI_KEY_UNSET";
        options_.retry_initial = milliseconds(1);
        options_.retry_max = milliseconds(5);
    }

    std::unique_ptr<TextEmbedder> Open() {
        Result<std::unique_ptr<TextEmbedder>> embedder = OpenOpenAiEmbedder(options_);
        EXPECT_TRUE(embedder.ok()) << embedder.status().ToString();
        return embedder.ok() ? std::move(embedder).value() : nullptr;
    }

    // An embedder told its dimension: Open sends nothing.
    std::unique_ptr<TextEmbedder> OpenWithDimension(int dimension = kDimension) {
        options_.dimension = dimension;
        return Open();
    }

    FakeOpenAiServer server_;
    OpenAiEmbedderOptions options_;
};

TEST_F(OpenAiEmbedderTest, OpenLearnsTheDimensionFromOneProbe) {
    auto embedder = Open();
    ASSERT_TRUE(embedder);
    EXPECT_EQ(embedder->dimension(), kDimension);
    EXPECT_EQ(embedder->fingerprint(), "openai/text-embed/8");
    ASSERT_EQ(server_.request_count(), 1u);
    const auto request = server_.requests()[0];
    EXPECT_EQ(request.method, "POST");
    EXPECT_EQ(request.path, "/v1/embeddings");
    EXPECT_EQ(request.Json()["input"].size(), 1u);
}

TEST_F(OpenAiEmbedderTest, GivenDimensionOpensWithoutARequest) {
    auto embedder = OpenWithDimension();
    ASSERT_TRUE(embedder);
    EXPECT_EQ(embedder->dimension(), kDimension);
    EXPECT_EQ(server_.request_count(), 0u);
}

TEST_F(OpenAiEmbedderTest, EmptyModelIsLeftOutAndNamedDefault) {
    options_.model.clear();
    auto embedder = OpenWithDimension();
    ASSERT_TRUE(embedder);
    EXPECT_EQ(embedder->fingerprint(), "openai/default/8");
    ASSERT_TRUE(embedder->Embed(std::vector<std::string>{"x"}).ok());
    EXPECT_FALSE(server_.requests()[0].Json().contains("model"));
}

TEST_F(OpenAiEmbedderTest, BodyHasModelAndInputsAndTheKeyIsABearerToken) {
    ::setenv("EVENTLOOM_TEST_EMBEDDER_KEY", "sk-test", 1);
    options_.api_key_env = "EVENTLOOM_TEST_EMBEDDER_KEY";
    auto embedder = OpenWithDimension();
    ::unsetenv("EVENTLOOM_TEST_EMBEDDER_KEY");
    ASSERT_TRUE(embedder);
    const std::vector<std::string> texts = {"first", "second"};
    ASSERT_TRUE(embedder->Embed(texts).ok());

    const auto request = server_.requests().at(0);
    EXPECT_EQ(request.Json(),
              (nlohmann::json{{"model", "text-embed"}, {"input", {"first", "second"}}}));
    EXPECT_EQ(request.headers.at("authorization"), "Bearer sk-test");
    EXPECT_EQ(request.headers.at("content-type"), "application/json");
}

TEST_F(OpenAiEmbedderTest, VectorsFollowTheIndexNotTheResponseOrder) {
    // The fake lists the data items last input first.
    auto embedder = OpenWithDimension();
    ASSERT_TRUE(embedder);
    const std::vector<std::string> texts = {"alpha", "beta", "gamma"};
    auto vectors = embedder->Embed(texts);
    ASSERT_TRUE(vectors.ok()) << vectors.status().ToString();
    ASSERT_EQ(vectors->size(), 3u);
    for (size_t i = 0; i < texts.size(); ++i) {
        SCOPED_TRACE(texts[i]);
        ExpectNear((*vectors)[i],
                   Normalized(FakeOpenAiServer::FakeEmbedding(texts[i], kDimension)));
    }
}

TEST_F(OpenAiEmbedderTest, VectorsAreNormalised) {
    server_.Enqueue(FakeResponse::Embeddings({{0, {3, 0, 0, 4, 0, 0, 0, 0}}}));
    auto embedder = OpenWithDimension();
    ASSERT_TRUE(embedder);
    auto vectors = embedder->Embed(std::vector<std::string>{"x"});
    ASSERT_TRUE(vectors.ok()) << vectors.status().ToString();
    ExpectNear((*vectors)[0], {0.6f, 0, 0, 0.8f, 0, 0, 0, 0});
    EXPECT_NEAR(Norm((*vectors)[0]), 1.0, 1e-6);
}

TEST_F(OpenAiEmbedderTest, ManyTextsGoInRequestsOfMaxBatch) {
    options_.max_batch = 2;
    auto embedder = OpenWithDimension();
    ASSERT_TRUE(embedder);
    const std::vector<std::string> texts = {"a", "b", "c", "d", "e"};
    auto vectors = embedder->Embed(texts);
    ASSERT_TRUE(vectors.ok()) << vectors.status().ToString();

    const auto requests = server_.requests();
    ASSERT_EQ(requests.size(), 3u);
    EXPECT_EQ(requests[0].Json()["input"], (nlohmann::json{"a", "b"}));
    EXPECT_EQ(requests[1].Json()["input"], (nlohmann::json{"c", "d"}));
    EXPECT_EQ(requests[2].Json()["input"], (nlohmann::json{"e"}));
    for (size_t i = 0; i < texts.size(); ++i) {
        ExpectNear((*vectors)[i],
                   Normalized(FakeOpenAiServer::FakeEmbedding(texts[i], kDimension)));
    }
}

TEST_F(OpenAiEmbedderTest, EmptyTextsAreNotSentAndGetTheZeroVector) {
    auto embedder = OpenWithDimension();
    ASSERT_TRUE(embedder);
    const std::vector<std::string> texts = {"", "word", ""};
    auto vectors = embedder->Embed(texts);
    ASSERT_TRUE(vectors.ok()) << vectors.status().ToString();
    EXPECT_EQ((*vectors)[0], std::vector<float>(kDimension, 0.0f));
    EXPECT_EQ((*vectors)[2], std::vector<float>(kDimension, 0.0f));
    EXPECT_NEAR(Norm((*vectors)[1]), 1.0, 1e-6);
    ASSERT_EQ(server_.request_count(), 1u);
    EXPECT_EQ(server_.requests()[0].Json()["input"], (nlohmann::json{"word"}));

    const std::vector<std::string> only_empty = {""};
    ASSERT_TRUE(embedder->Embed(only_empty).ok());
    EXPECT_EQ(server_.request_count(), 1u);
}

TEST_F(OpenAiEmbedderTest, Http401IsFailedPreconditionNamingTheKeyVariableAndNotRetried) {
    server_.Enqueue(
        FakeResponse::Error(401, R"({"error": {"message": "Incorrect API key provided"}})"));
    auto embedder = OpenWithDimension();
    ASSERT_TRUE(embedder);
    const Status status = embedder->Embed(std::vector<std::string>{"x"}).status();
    EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition) << status.ToString();
    EXPECT_FALSE(status.retryable());
    EXPECT_TRUE(Contains(status.message(), "Incorrect API key provided")) << status.ToString();
    EXPECT_TRUE(Contains(status.message(), "EVENTLOOM_TEST_OPENAI_KEY_UNSET")) << status.ToString();
    EXPECT_TRUE(Contains(status.message(), "/v1/embeddings")) << status.ToString();
    EXPECT_EQ(server_.request_count(), 1u);
}

TEST_F(OpenAiEmbedderTest, Http404IsInvalidArgumentWithTheServersMessage) {
    server_.Enqueue(FakeResponse::Error(
        404, R"({"error": {"message": "The model 'text-embed' does not exist"}})"));
    auto embedder = OpenWithDimension();
    ASSERT_TRUE(embedder);
    const Status status = embedder->Embed(std::vector<std::string>{"x"}).status();
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
    EXPECT_FALSE(status.retryable());
    EXPECT_TRUE(Contains(status.message(), "does not exist")) << status.ToString();
    EXPECT_EQ(server_.request_count(), 1u);
}

TEST_F(OpenAiEmbedderTest, Http500IsUnavailableWithTheServersMessageAfterTheRetries) {
    options_.max_retries = 1;
    for (int i = 0; i < 2; ++i) {
        server_.Enqueue(FakeResponse::Error(500, R"({"error": {"message": "model crashed"}})"));
    }
    auto embedder = OpenWithDimension();
    ASSERT_TRUE(embedder);
    const Status status = embedder->Embed(std::vector<std::string>{"x"}).status();
    EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
    EXPECT_TRUE(status.retryable());
    EXPECT_TRUE(Contains(status.message(), "model crashed")) << status.ToString();
    EXPECT_TRUE(Contains(status.message(), "2 attempts")) << status.ToString();
    EXPECT_EQ(server_.request_count(), 2u);
}

TEST_F(OpenAiEmbedderTest, Http503ThenSuccessIsRetried) {
    server_.Enqueue(FakeResponse::Error(503, R"({"error": "loading model"})"));
    auto embedder = OpenWithDimension();
    ASSERT_TRUE(embedder);
    auto vectors = embedder->Embed(std::vector<std::string>{"x"});
    ASSERT_TRUE(vectors.ok()) << vectors.status().ToString();
    EXPECT_EQ(server_.request_count(), 2u);
}

TEST_F(OpenAiEmbedderTest, Http429IsResourceExhaustedWithRetryAfter) {
    options_.max_retries = 0;
    server_.Enqueue(
        FakeResponse::Error(429, R"({"error": {"message": "slow down"}})", {{"Retry-After", "2"}}));
    auto embedder = OpenWithDimension();
    ASSERT_TRUE(embedder);
    const Status status = embedder->Embed(std::vector<std::string>{"x"}).status();
    EXPECT_EQ(status.code(), StatusCode::kResourceExhausted) << status.ToString();
    EXPECT_TRUE(Contains(status.message(), "retry after 2000ms")) << status.ToString();
}

TEST_F(OpenAiEmbedderTest, VectorsOfDifferentLengthsInOneResponseAreAnError) {
    // The dimension is learned from the probe's answer; then a batch of two disagrees.
    server_.Enqueue(FakeResponse::Embeddings({{0, {1, 2, 3}}}));
    auto embedder = Open();
    ASSERT_TRUE(embedder);
    ASSERT_EQ(embedder->dimension(), 3);
    server_.Enqueue(FakeResponse::Embeddings({{0, {1, 2, 3}}, {1, {1, 2}}}));
    const Status status = embedder->Embed(std::vector<std::string>{"a", "b"}).status();
    EXPECT_FALSE(status.ok());
    EXPECT_TRUE(Contains(status.message(), "data[1] has 2 numbers")) << status.ToString();
}

TEST_F(OpenAiEmbedderTest, VectorsOfAnotherDimensionThanTheEmbeddersAreFailedPrecondition) {
    auto embedder = OpenWithDimension(4);  // the server answers with 8
    ASSERT_TRUE(embedder);
    const Status status = embedder->Embed(std::vector<std::string>{"x"}).status();
    EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition) << status.ToString();
    EXPECT_TRUE(Contains(status.message(), "dimension is 4")) << status.ToString();
}

TEST_F(OpenAiEmbedderTest, MalformedResponsesAreUnavailable) {
    struct Case {
        const char* description;
        std::string body;
        const char* says;
    };
    const std::vector<Case> cases = {
        {"not json", "<html>oops</html>", "not a JSON object"},
        {"no data", R"({"object": "list"})", "no \"data\" array"},
        {"too few vectors", R"({"data": [{"index": 0, "embedding": [1, 2]}]})",
         "1 vectors for 2 inputs"},
        {"index out of range",
         R"({"data": [{"index": 0, "embedding": [1, 2]}, {"index": 5, "embedding": [1, 2]}]})",
         "not an input's index"},
        {"index twice",
         R"({"data": [{"index": 1, "embedding": [1, 2]}, {"index": 1, "embedding": [1, 2]}]})",
         "appears twice"},
        {"base64", R"({"data": [{"index": 0, "embedding": "AAAA"}, {"index": 1,
            "embedding": "AAAA"}]})",
         "not an array of numbers"},
    };
    auto embedder = OpenWithDimension(2);
    ASSERT_TRUE(embedder);
    for (const Case& c : cases) {
        SCOPED_TRACE(c.description);
        FakeResponse response;
        response.headers = {{"Content-Type", "application/json"}};
        response.body_parts = {c.body};
        server_.Enqueue(response);
        const Status status = embedder->Embed(std::vector<std::string>{"a", "b"}).status();
        EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
        EXPECT_TRUE(Contains(status.message(), c.says)) << status.ToString();
    }
}

TEST_F(OpenAiEmbedderTest, RefusedConnectionIsUnavailable) {
    options_.base_url = "http://127.0.0.1:" + std::to_string(testing::UnusedLoopbackPort()) + "/v1";
    options_.max_retries = 0;
    const Status status = OpenOpenAiEmbedder(options_).status();
    EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
    EXPECT_TRUE(Contains(status.message(), "connection failed")) << status.ToString();
}

TEST_F(OpenAiEmbedderTest, BadOptionsAreInvalidArgument) {
    OpenAiEmbedderOptions bad = options_;
    bad.base_url = "localhost:8080";
    EXPECT_EQ(OpenOpenAiEmbedder(bad).status().code(), StatusCode::kInvalidArgument);
    bad = options_;
    bad.max_batch = 0;
    EXPECT_EQ(OpenOpenAiEmbedder(bad).status().code(), StatusCode::kInvalidArgument);
    bad = options_;
    bad.dimension = -1;
    EXPECT_EQ(OpenOpenAiEmbedder(bad).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(OpenAiEmbedderTest, ConcurrentCallsEachGetTheirVectors) {
    auto embedder = OpenWithDimension();
    ASSERT_TRUE(embedder);
    std::vector<std::jthread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&embedder, t] {
            const std::vector<std::string> texts = {"thread " + std::to_string(t), "shared"};
            auto vectors = embedder->Embed(texts);
            ASSERT_TRUE(vectors.ok()) << vectors.status().ToString();
            ExpectNear((*vectors)[0],
                       Normalized(FakeOpenAiServer::FakeEmbedding(texts[0], kDimension)));
        });
    }
}

}  // namespace
}  // namespace eventloom::llm
