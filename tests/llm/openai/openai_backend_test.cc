// The openai backend against FakeOpenAiServer, a scripted test double: streaming, request
// bodies, retries, error classification, limits, deadlines and cancellation.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "eventloom/llm.h"
#include "llm/openai/fake_openai_server.h"
#include "runtime/retry.h"
#include "support/ports.h"

namespace eventloom {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;
using testing::FakeOpenAiServer;
using testing::FakeResponse;

constexpr auto kWait = std::chrono::seconds(10);  // generous: only failures wait this long

bool Contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

class OpenAiBackendTest : public ::testing::Test {
protected:
    OpenAiBackendTest() {
        options_.base_url = server_.base_url();
        options_.api_key_env = "EVENTLOOM_TEST_OPENAI_KEY_UNSET";
        options_.retry_initial = milliseconds(10);
        options_.retry_max = milliseconds(50);
    }

    std::unique_ptr<LlmBackend> Open() {
        Result<std::unique_ptr<LlmBackend>> backend = OpenOpenAiBackend(options_);
        EXPECT_TRUE(backend.ok()) << backend.status().ToString();
        return backend.ok() ? std::move(backend).value() : nullptr;
    }

    static LlmRequest Chat(const std::string& text = "hi") {
        LlmRequest request;
        request.id = "r1";
        request.messages = {{"user", text}};
        request.max_tokens = 8;
        return request;
    }

    // Generates with a callback that records the pieces.
    Result<LlmResult> Generate(LlmBackend& backend, const LlmRequest& request,
                               std::stop_token stop = {}) {
        return backend.Generate(
            request, [this](std::string_view piece) { pieces_.emplace_back(piece); }, stop);
    }

    FakeOpenAiServer server_;
    OpenAiOptions options_;
    std::vector<std::string> pieces_;
};

TEST(OpenOpenAiBackend, RejectsABaseUrlThatIsNotHttp) {
    for (const char* url : {"127.0.0.1:8080/v1", "ftp://host/v1", "http://", ""}) {
        SCOPED_TRACE(url);
        OpenAiOptions options;
        options.base_url = url;
        EXPECT_EQ(OpenOpenAiBackend(options).status().code(), StatusCode::kInvalidArgument);
    }
}

TEST_F(OpenAiBackendTest, NamesItsKindAndModel) {
    EXPECT_EQ(Open()->kind(), "openai");
    EXPECT_EQ(Open()->model(), "default");
    options_.model = "qwen";
    EXPECT_EQ(Open()->model(), "qwen");
}

TEST_F(OpenAiBackendTest, StreamsEachDeltaToTheCallback) {
    server_.Enqueue(FakeResponse::ChatStream({"He", "llo", "!"}, "length", std::make_pair(11, 3)));
    Result<LlmResult> result = Generate(*Open(), Chat());

    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(pieces_, (std::vector<std::string>{"He", "llo", "!"}));
    EXPECT_EQ(result->text, "Hello!");
    EXPECT_EQ(result->finish_reason, "length");
    EXPECT_EQ(result->usage.prompt_tokens, 11);
    EXPECT_EQ(result->usage.completion_tokens, 3);
    EXPECT_GE(result->usage.ttft_ms, 0);
    EXPECT_GE(result->usage.decode_ms, 0);
}

TEST_F(OpenAiBackendTest, PostsTheChatWithItsParameters) {
    options_.model = "m";
    LlmRequest request = Chat();
    request.ignore_eos = true;
    request.json_schema = R"({"type":"object"})";
    ASSERT_TRUE(Generate(*Open(), request).ok());

    ASSERT_EQ(server_.request_count(), 1u);
    const testing::ReceivedRequest received = server_.requests()[0];
    EXPECT_EQ(received.method, "POST");
    EXPECT_EQ(received.path, "/v1/chat/completions");
    EXPECT_EQ(received.headers.at("content-type"), "application/json");
    const nlohmann::json body = received.Json();
    EXPECT_EQ(body["model"], "m");
    EXPECT_EQ(body["messages"][0]["content"], "hi");
    EXPECT_EQ(body["stream"], true);
    EXPECT_EQ(body["ignore_eos"], true);
    EXPECT_EQ(body["response_format"]["type"], "json_schema");
}

TEST_F(OpenAiBackendTest, PostsABarePromptToCompletionsWhenNotInChatMode) {
    options_.chat = false;
    server_.Enqueue(FakeResponse::CompletionStream({"a", "b"}));
    LlmRequest request;
    request.prompt = "once upon";
    Result<LlmResult> result = Generate(*Open(), request);

    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(result->text, "ab");
    EXPECT_EQ(server_.requests()[0].path, "/v1/completions");
    EXPECT_EQ(server_.requests()[0].Json()["prompt"], "once upon");
}

TEST_F(OpenAiBackendTest, CountsDeltasWhenTheServerSendsNoUsage) {
    server_.Enqueue(FakeResponse::ChatStream({"a", "b", "c", "d"}));
    Result<LlmResult> result = Generate(*Open(), Chat());
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(result->usage.completion_tokens, 4);
}

TEST_F(OpenAiBackendTest, TakesCachedTokensFromLlamaServerTimings) {
    server_.Enqueue(FakeResponse::RawStream(
        FakeResponse::Event({{"choices", {{{"delta", {{"content", "x"}}}}}}}) +
        FakeResponse::Event(
            {{"choices", {{{"delta", nlohmann::json::object()}, {"finish_reason", "stop"}}}},
             {"timings", {{"cache_n", 6}}}}) +
        "data: [DONE]\n\n"));
    Result<LlmResult> result = Generate(*Open(), Chat());
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(result->usage.cached_prompt_tokens, 6);
}

TEST_F(OpenAiBackendTest, AcceptsAnAnswerThatIsNotStreamed) {
    FakeResponse whole = FakeResponse::Error(
        200, R"({"choices":[{"message":{"content":"whole"},"finish_reason":"stop"}]})");
    server_.Enqueue(whole);
    Result<LlmResult> result = Generate(*Open(), Chat());
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(result->text, "whole");
}

TEST_F(OpenAiBackendTest, InvalidSchemaFailsBeforeAnythingIsSent) {
    LlmRequest request = Chat();
    request.json_schema = "{\"type\":";
    EXPECT_EQ(Generate(*Open(), request).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(server_.request_count(), 0u);
}

TEST_F(OpenAiBackendTest, WaitsForRetryAfterThenSucceeds) {
    server_.Enqueue(
        FakeResponse::Error(429, R"({"error":{"message":"slow down"}})", {{"Retry-After", "1"}}));
    Result<LlmResult> result = Generate(*Open(), Chat());

    ASSERT_TRUE(result.ok()) << result.status().ToString();
    const auto requests = server_.requests();
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_GE(requests[1].arrived - requests[0].arrived, milliseconds(1000));
}

TEST_F(OpenAiBackendTest, RetriesUnavailableUntilItSucceeds) {
    server_.Enqueue(FakeResponse::Error(503, "{}"));
    server_.Enqueue(FakeResponse::Error(503, "{}"));
    Result<LlmResult> result = Generate(*Open(), Chat());
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(server_.request_count(), 3u);
}

TEST_F(OpenAiBackendTest, ExhaustedRateLimitCarriesTheServersRetryAfter) {
    options_.max_retries = 1;
    server_.SetDefault(
        FakeResponse::Error(429, R"({"error":{"message":"quota"}})", {{"Retry-After", "1"}}));
    const Status status = Generate(*Open(), Chat()).status();

    EXPECT_EQ(status.code(), StatusCode::kResourceExhausted);
    EXPECT_EQ(RetryAfterHint(status), milliseconds(1000));
    EXPECT_TRUE(Contains(status.message(), "quota")) << status.message();
    EXPECT_EQ(server_.request_count(), 2u);
}

TEST_F(OpenAiBackendTest, RetryAfterBeyondTheDeadlineReturnsTheServersAnswerAtOnce) {
    server_.SetDefault(
        FakeResponse::Error(429, R"({"error":{"message":"quota"}})", {{"Retry-After", "60"}}));
    LlmRequest request = Chat();
    request.deadline = steady_clock::now() + std::chrono::seconds(30);
    const Status status = Generate(*Open(), request).status();

    EXPECT_EQ(status.code(), StatusCode::kResourceExhausted) << status.ToString();
    EXPECT_EQ(RetryAfterHint(status), milliseconds(60'000));
    EXPECT_EQ(server_.request_count(), 1u);
}

TEST_F(OpenAiBackendTest, UnauthorizedIsFailedPreconditionNamingTheKeyVariable) {
    server_.SetDefault(FakeResponse::Error(401, R"({"error":{"message":"bad key"}})"));
    const Status status = Generate(*Open(), Chat()).status();

    EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
    EXPECT_TRUE(Contains(status.message(), "EVENTLOOM_TEST_OPENAI_KEY_UNSET")) << status.message();
    EXPECT_EQ(server_.request_count(), 1u);
}

TEST_F(OpenAiBackendTest, BadRequestIsInvalidArgumentWithTheServersMessage) {
    server_.SetDefault(
        FakeResponse::Error(400, R"({"error":{"message":"max_tokens is too large","code":400}})"));
    const Status status = Generate(*Open(), Chat()).status();

    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(status.message(), "max_tokens is too large")) << status.message();
    EXPECT_TRUE(Contains(status.message(), server_.base_url() + "/chat/completions"))
        << status.message();
    EXPECT_EQ(server_.request_count(), 1u);
}

TEST_F(OpenAiBackendTest, MalformedDataLineIsUnavailable) {
    server_.Enqueue(FakeResponse::RawStream("data: {\"choices\": [\n\ndata: [DONE]\n\n"));
    const Status status = Generate(*Open(), Chat()).status();
    EXPECT_EQ(status.code(), StatusCode::kUnavailable);
    EXPECT_TRUE(Contains(status.message(), "not JSON")) << status.message();
}

TEST_F(OpenAiBackendTest, ChunkWithoutChoicesIsUnavailable) {
    server_.Enqueue(FakeResponse::RawStream("data: {\"id\": \"x\"}\n\ndata: [DONE]\n\n"));
    const Status status = Generate(*Open(), Chat()).status();
    EXPECT_EQ(status.code(), StatusCode::kUnavailable);
    EXPECT_TRUE(Contains(status.message(), "choices")) << status.message();
}

TEST_F(OpenAiBackendTest, StreamCutAfterTokensIsUnavailableAndNotRetried) {
    server_.Enqueue(FakeResponse::RawStream(
        FakeResponse::Event({{"choices", {{{"delta", {{"content", "x"}}}}}}})));
    const Status status = Generate(*Open(), Chat()).status();
    EXPECT_EQ(status.code(), StatusCode::kUnavailable);
    EXPECT_EQ(pieces_, std::vector<std::string>{"x"});
    EXPECT_EQ(server_.request_count(), 1u);
}

TEST_F(OpenAiBackendTest, SendsTheKeyFromTheVariableAsABearerToken) {
    options_.api_key_env = "EVENTLOOM_TEST_OPENAI_KEY";
    ::setenv("EVENTLOOM_TEST_OPENAI_KEY", "sk-test-123", 1);
    std::unique_ptr<LlmBackend> backend = Open();
    ::unsetenv("EVENTLOOM_TEST_OPENAI_KEY");
    ASSERT_TRUE(Generate(*backend, Chat()).ok());
    EXPECT_EQ(server_.requests()[0].headers["authorization"], "Bearer sk-test-123");
}

TEST_F(OpenAiBackendTest, SendsNoAuthorizationWithoutTheVariable) {
    ASSERT_TRUE(Generate(*Open(), Chat()).ok());
    EXPECT_EQ(server_.requests()[0].headers.count("authorization"), 0u);
}

TEST_F(OpenAiBackendTest, UnreachableServerIsUnavailableAfterRetries) {
    options_.base_url = "http://127.0.0.1:" + std::to_string(testing::UnusedLoopbackPort()) + "/v1";
    options_.max_retries = 2;
    const Status status = Generate(*Open(), Chat()).status();
    EXPECT_EQ(status.code(), StatusCode::kUnavailable);
    EXPECT_TRUE(Contains(status.message(), options_.base_url)) << status.message();
    EXPECT_TRUE(Contains(status.message(), "3 attempts")) << status.message();
}

TEST_F(OpenAiBackendTest, RequestsPerMinuteDelaysTheRequestBeyondTheBurst) {
    // A burst of 120 is allowed at once; the 121st waits for half a second of refill.
    options_.requests_per_minute = 120;
    const steady_clock::time_point opened = steady_clock::now();
    std::unique_ptr<LlmBackend> backend = Open();
    for (int i = 0; i < 121; ++i) {
        Result<LlmResult> result = backend->Generate(Chat("request " + std::to_string(i)));
        ASSERT_TRUE(result.ok()) << i << ": " << result.status().ToString();
    }

    const auto requests = server_.requests();
    ASSERT_EQ(requests.size(), 121u);
    for (int i = 0; i < 121; ++i) {
        EXPECT_EQ(requests[i].Json()["messages"][0]["content"], "request " + std::to_string(i));
    }
    EXPECT_GE(requests[120].arrived - opened, milliseconds(500));
}

TEST_F(OpenAiBackendTest, RateLimitWaitBeyondTheDeadlineIsResourceExhausted) {
    // A burst of one, refilled after a minute: the second request cannot go before its deadline.
    options_.requests_per_minute = 1;
    std::unique_ptr<LlmBackend> backend = Open();
    ASSERT_TRUE(backend->Generate(Chat()).ok());
    LlmRequest request = Chat();
    request.deadline = steady_clock::now() + std::chrono::seconds(5);
    const Status status = backend->Generate(request).status();

    EXPECT_EQ(status.code(), StatusCode::kResourceExhausted) << status.ToString();
    EXPECT_GT(RetryAfterHint(status), milliseconds(5'000));
    EXPECT_EQ(server_.request_count(), 1u);
}

TEST_F(OpenAiBackendTest, TokensPerMinuteChargesPromptAndMaxTokens) {
    // 600 tokens a minute, 10 a second. The first request weighs 5 (prompt estimate) + 600:
    // granted on the full bucket, which it leaves 5 in debt, repaid when the server reports
    // 600 tokens used. The second weighs 5 + 5, a second of refill.
    options_.tokens_per_minute = 600;
    server_.SetDefault(FakeResponse::ChatStream({"x"}, "stop", std::make_pair(300, 300)));
    const steady_clock::time_point opened = steady_clock::now();
    std::unique_ptr<LlmBackend> backend = Open();
    LlmRequest heavy = Chat();
    heavy.max_tokens = 600;
    ASSERT_TRUE(backend->Generate(heavy).ok());
    LlmRequest light = Chat();
    light.max_tokens = 5;
    ASSERT_TRUE(backend->Generate(light).ok());

    const auto requests = server_.requests();
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_GE(requests[1].arrived - opened, milliseconds(1000));
}

TEST_F(OpenAiBackendTest, StopTokenCancelsAStreamingRequest) {
    FakeResponse stalled = FakeResponse::RawStream(
        FakeResponse::Event({{"choices", {{{"delta", {{"content", "x"}}}}}}}));
    stalled.hold_open = true;
    server_.Enqueue(stalled);
    std::unique_ptr<LlmBackend> backend = Open();
    std::stop_source stop;
    std::atomic<bool> got_token{false};

    std::jthread canceller([&] {
        while (!got_token) std::this_thread::sleep_for(milliseconds(5));
        stop.request_stop();
    });
    const Status status =
        backend
            ->Generate(
                Chat(), [&](std::string_view) { got_token = true; }, stop.get_token())
            .status();
    EXPECT_EQ(status.code(), StatusCode::kCancelled) << status.ToString();

    // The backend still serves.
    EXPECT_TRUE(backend->Generate(Chat()).ok());
}

TEST_F(OpenAiBackendTest, DeadlineInThePastIsDeadlineExceeded) {
    LlmRequest request = Chat();
    request.deadline = steady_clock::now() - milliseconds(1);
    EXPECT_EQ(Generate(*Open(), request).status().code(), StatusCode::kDeadlineExceeded);
}

TEST_F(OpenAiBackendTest, ServerThatStallsHitsTheDeadline) {
    FakeResponse stalled = FakeResponse::RawStream(": waiting\n\n");
    stalled.hold_open = true;
    server_.Enqueue(stalled);
    LlmRequest request = Chat();
    request.deadline = steady_clock::now() + milliseconds(200);
    const Status status = Generate(*Open(), request).status();
    EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded) << status.ToString();
}

TEST_F(OpenAiBackendTest, RequestTimeoutBoundsTheRequest) {
    FakeResponse stalled = FakeResponse::RawStream(": waiting\n\n");
    stalled.hold_open = true;
    server_.Enqueue(stalled);
    options_.request_timeout = milliseconds(200);
    EXPECT_EQ(Generate(*Open(), Chat()).status().code(), StatusCode::kDeadlineExceeded);
}

TEST_F(OpenAiBackendTest, WaitersAreCountedAndServedHighestPriorityFirst) {
    options_.max_concurrent = 1;
    FakeResponse stalled = FakeResponse::RawStream(": waiting\n\n");
    stalled.hold_open = true;
    server_.Enqueue(stalled);
    std::unique_ptr<LlmBackend> backend = Open();

    // One request holds the only slot; a low and then a high priority request wait.
    std::stop_source hold;
    std::jthread holder(
        [&] { backend->Generate(Chat("holder"), {}, hold.get_token()).status().IgnoreError(); });
    ASSERT_TRUE(server_.WaitForRequests(1, kWait));
    auto waiter = [&](const std::string& text, int priority) {
        return std::jthread([&backend, text, priority] {
            LlmRequest request = Chat(text);
            request.priority = priority;
            EXPECT_TRUE(backend->Generate(request).ok());
        });
    };
    auto wait_queued = [&](int n) {
        const auto until = steady_clock::now() + kWait;
        while (backend->Load().queued < n && steady_clock::now() < until) {
            std::this_thread::sleep_for(milliseconds(1));
        }
        return backend->Load().queued == n;
    };
    std::jthread low = waiter("low", 0);
    ASSERT_TRUE(wait_queued(1));
    std::jthread high = waiter("high", 5);
    ASSERT_TRUE(wait_queued(2));

    const LlmLoad load = backend->Load();
    EXPECT_EQ(load.slots, 1);
    EXPECT_EQ(load.busy_slots, 1);
    EXPECT_GT(load.queued_prompt_tokens, 0);

    // Freeing the slot serves "high" before "low".
    hold.request_stop();
    holder.join();
    low.join();
    high.join();
    const auto requests = server_.requests();
    ASSERT_EQ(requests.size(), 3u);
    EXPECT_EQ(requests[1].Json()["messages"][0]["content"], "high");
    EXPECT_EQ(requests[2].Json()["messages"][0]["content"], "low");
    EXPECT_EQ(backend->Load().busy_slots, 0);
}

TEST_F(OpenAiBackendTest, CancelledWhileWaitingForASlot) {
    options_.max_concurrent = 1;
    FakeResponse stalled = FakeResponse::RawStream(": waiting\n\n");
    stalled.hold_open = true;
    server_.Enqueue(stalled);
    std::unique_ptr<LlmBackend> backend = Open();
    std::stop_source hold;
    std::jthread holder(
        [&] { backend->Generate(Chat(), {}, hold.get_token()).status().IgnoreError(); });
    ASSERT_TRUE(server_.WaitForRequests(1, kWait));

    std::stop_source stop;
    stop.request_stop();
    EXPECT_EQ(backend->Generate(Chat(), {}, stop.get_token()).status().code(),
              StatusCode::kCancelled);
    EXPECT_EQ(backend->Load().queued, 0);
    hold.request_stop();
}

}  // namespace
}  // namespace eventloom
