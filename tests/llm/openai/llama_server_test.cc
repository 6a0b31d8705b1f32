// The openai backend against a real llama-server serving the tiny test model. The suite starts
// the server once (a free port on 127.0.0.1) and stops it at the end.
//
// The model's weights are random, so its text is gibberish; the tests check counts, framing,
// determinism, classification and that the server keeps serving, never the words.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "eventloom/llm.h"
#include "llm/openai/llama_server_process.h"

namespace eventloom {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

class LlamaServerTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        server_ = new testing::LlamaServerProcess();
        error_ = server_->Start(EVENTLOOM_LLAMA_SERVER, EVENTLOOM_TINY_MODEL,
                                {"-np", "4", "-c", "2048", "-t", "2"});
        port_ = server_->port();
        if (!error_.empty()) server_->Stop();
    }

    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }

    void SetUp() override { ASSERT_TRUE(error_.empty()) << error_; }

    static std::unique_ptr<LlmBackend> Open(bool chat = true) {
        OpenAiOptions options;
        options.base_url = "http://127.0.0.1:" + std::to_string(port_) + "/v1";
        options.chat = chat;
        options.max_concurrent = 4;
        options.api_key_env = "";
        Result<std::unique_ptr<LlmBackend>> backend = OpenOpenAiBackend(options);
        EXPECT_TRUE(backend.ok()) << backend.status().ToString();
        return backend.ok() ? std::move(backend).value() : nullptr;
    }

    static LlmRequest Chat(int max_tokens) {
        LlmRequest request;
        request.id = "chat";
        request.messages = {{"system", "You are terse."}, {"user", "Count to ten."}};
        request.max_tokens = max_tokens;
        request.ignore_eos = true;
        return request;
    }

    // Generates, checking that the pieces passed to the callback add up to the text and are
    // no more than the tokens generated (a token completing no character sends none).
    static Result<LlmResult> GenerateChecked(LlmBackend& backend, const LlmRequest& request) {
        std::string streamed;
        int pieces = 0;
        Result<LlmResult> result = backend.Generate(request,
                                                    [&](std::string_view piece) {
                                                        streamed += piece;
                                                        ++pieces;
                                                    },
                                                    {});
        if (result.ok()) {
            EXPECT_EQ(streamed, result->text);
            EXPECT_GE(pieces, 1);
            EXPECT_LE(pieces, result->usage.completion_tokens);
        }
        return result;
    }

    static inline std::string error_;
    static inline int port_ = 0;
    static inline testing::LlamaServerProcess* server_ = nullptr;
};

TEST_F(LlamaServerTest, ChatWithIgnoreEosGeneratesExactlyMaxTokens) {
    Result<LlmResult> result = GenerateChecked(*Open(), Chat(16));
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(result->usage.completion_tokens, 16);
    EXPECT_EQ(result->finish_reason, "length");
    EXPECT_GT(result->usage.prompt_tokens, 0);
    EXPECT_GT(result->usage.ttft_ms, 0);
}

TEST_F(LlamaServerTest, CompletionsWithIgnoreEosGenerateExactlyMaxTokens) {
    LlmRequest request;
    request.prompt = "Once upon a time";
    request.max_tokens = 12;
    request.ignore_eos = true;
    Result<LlmResult> result = GenerateChecked(*Open(false), request);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(result->usage.completion_tokens, 12);
    EXPECT_EQ(result->finish_reason, "length");
}

TEST_F(LlamaServerTest, FourConcurrentRequestsAllFinishWithTheirCounts) {
    std::unique_ptr<LlmBackend> backend = Open();
    std::vector<std::jthread> threads;
    for (int i = 0; i < 4; ++i) {
        threads.emplace_back([&backend, i] {
            const int max_tokens = 8 + 4 * i;
            Result<LlmResult> result = GenerateChecked(*backend, Chat(max_tokens));
            ASSERT_TRUE(result.ok()) << result.status().ToString();
            EXPECT_EQ(result->usage.completion_tokens, max_tokens);
        });
    }
    threads.clear();
    EXPECT_EQ(backend->Load().busy_slots, 0);
}

TEST_F(LlamaServerTest, StopTokenCancelsAndTheServerKeepsServing) {
    std::unique_ptr<LlmBackend> backend = Open();
    std::stop_source stop;
    int pieces = 0;
    const Status status = backend
                              ->Generate(
                                  Chat(400),
                                  [&](std::string_view) {
                                      if (++pieces == 2) stop.request_stop();
                                  },
                                  stop.get_token())
                              .status();
    EXPECT_EQ(status.code(), StatusCode::kCancelled) << status.ToString();

    Result<LlmResult> after = GenerateChecked(*backend, Chat(8));
    ASSERT_TRUE(after.ok()) << after.status().ToString();
    EXPECT_EQ(after->usage.completion_tokens, 8);
}

TEST_F(LlamaServerTest, PastOrTinyDeadlineIsDeadlineExceeded) {
    std::unique_ptr<LlmBackend> backend = Open();
    LlmRequest past = Chat(200);
    past.deadline = steady_clock::now() - milliseconds(1);
    EXPECT_EQ(backend->Generate(past).status().code(), StatusCode::kDeadlineExceeded);

    LlmRequest tiny = Chat(400);
    tiny.deadline = steady_clock::now() + milliseconds(5);
    EXPECT_EQ(backend->Generate(tiny).status().code(), StatusCode::kDeadlineExceeded);
}

TEST_F(LlamaServerTest, GreedyWithTheSameSeedGivesTheSameText) {
    std::unique_ptr<LlmBackend> backend = Open();
    LlmRequest request = Chat(24);
    request.sampling.temperature = 0;
    request.sampling.seed = 7;
    Result<LlmResult> first = backend->Generate(request);
    Result<LlmResult> second = backend->Generate(request);
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    ASSERT_TRUE(second.ok()) << second.status().ToString();
    EXPECT_EQ(first->text, second->text);
}

TEST_F(LlamaServerTest, RepeatedPromptReportsCachedTokens) {
    std::unique_ptr<LlmBackend> backend = Open();
    LlmRequest request = Chat(4);
    request.messages[1].content =
        "A longer question that the server can keep in its cache: " + std::string(200, 'x');
    ASSERT_TRUE(backend->Generate(request).ok());
    Result<LlmResult> again = backend->Generate(request);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_GT(again->usage.cached_prompt_tokens, 0);
}

// Through /completions: llama-server cannot build the chat grammar for this model, whose
// vocabulary has no <|im_start|> token for its ChatML template ("Failed to initialize samplers").
TEST_F(LlamaServerTest, JsonSchemaOutputParsesWithTheRequiredKeys) {
    LlmRequest request;
    request.prompt = "Answer in JSON: ";
    request.max_tokens = 200;
    request.sampling.temperature = 0;
    request.json_schema = R"({
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "kind": {"type": "string", "enum": ["a", "b"]}
        },
        "required": ["ok", "kind"],
        "additionalProperties": false
    })";
    Result<LlmResult> result = Open(false)->Generate(request);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    const nlohmann::json output = nlohmann::json::parse(result->text, nullptr, false);
    ASSERT_FALSE(output.is_discarded()) << result->text;
    EXPECT_TRUE(output.contains("ok")) << result->text;
    EXPECT_TRUE(output.contains("kind")) << result->text;
}

TEST_F(LlamaServerTest, PromptLongerThanTheContextIsInvalidArgument) {
    LlmRequest request = Chat(8);
    request.messages[1].content.clear();
    for (int i = 0; i < 800; ++i) request.messages[1].content += "word" + std::to_string(i) + " ";
    const Status status = Open()->Generate(request).status();
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
}

TEST_F(LlamaServerTest, UnknownModelOrSchemaIsClassifiedNotFatal) {
    OpenAiOptions options;
    options.base_url = "http://127.0.0.1:" + std::to_string(port_) + "/v1";
    options.model = "no-such-model";
    options.api_key_env = "";
    Result<std::unique_ptr<LlmBackend>> backend = OpenOpenAiBackend(options);
    ASSERT_TRUE(backend.ok());
    const Status model = (*backend)->Generate(Chat(4)).status();
    EXPECT_TRUE(model.ok() || model.code() == StatusCode::kInvalidArgument) << model.ToString();

    LlmRequest request = Chat(4);
    request.json_schema = R"({"type": "object", "properties": {"a": {"$ref": "#/$defs/none"}}})";
    const Status schema = Open()->Generate(request).status();
    EXPECT_TRUE(schema.ok() || schema.code() == StatusCode::kInvalidArgument) << schema.ToString();

    // The server is still there.
    EXPECT_TRUE(Open()->Generate(Chat(4)).ok());
}

}  // namespace
}  // namespace eventloom
