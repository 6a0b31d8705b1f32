// The OpenAI endpoints over real HTTP: the request becomes an event, the echo LLM stage
// answers, and the completion (or its chunks) comes back as the OpenAI response.
#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>

#include "gateway/gateway_fixture.h"
#include "support/topic_reader.h"

namespace eventloom::testing {
namespace {

using nlohmann::json;

// The text of a stream's deltas, and its messages' JSON (all but "[DONE]").
struct StreamedText {
    std::string text;
    std::vector<json> chunks;
    bool done = false;  // ended with "data: [DONE]"
};

StreamedText ReadStream(const std::string& body, bool chat) {
    StreamedText out;
    auto messages = ParseSse(body);
    for (size_t i = 0; i < messages.size(); ++i) {
        if (messages[i].data == "[DONE]") {
            out.done = i + 1 == messages.size();
            continue;
        }
        json chunk = json::parse(messages[i].data, nullptr, false);
        out.chunks.push_back(chunk);
        if (!chunk.is_object() || chunk["choices"].empty()) continue;
        const json& choice = chunk["choices"][0];
        if (chat && choice["delta"].contains("content")) {
            out.text += choice["delta"]["content"].get<std::string>();
        }
        if (!chat && choice.contains("text")) out.text += choice["text"].get<std::string>();
    }
    return out;
}

TEST_F(GatewayTest, ChatCompletionAnswersWithTheStageReply) {
    Start();
    HttpReply r = client().Post("/v1/chat/completions", ChatBody("echo", "hello from the gateway"));
    ASSERT_EQ(r.status, 200) << r.error << r.body;
    json body = r.Json();
    EXPECT_EQ(body["object"], "chat.completion");
    EXPECT_EQ(body["model"], "echo");
    EXPECT_EQ(body["choices"][0]["message"]["role"], "assistant");
    EXPECT_EQ(body["choices"][0]["message"]["content"], "hello from the gateway");
    EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(body["id"], "chatcmpl-" + r.Header("x-request-id"));
}

TEST_F(GatewayTest, ChatStreamSendsDeltasThenDone) {
    Start();
    HttpReply r =
        client().Post("/v1/chat/completions", ChatBody("echo", "one two three four", true));
    ASSERT_EQ(r.status, 200) << r.error << r.body;
    EXPECT_EQ(r.Header("content-type"), "text/event-stream");
    StreamedText s = ReadStream(r.body, true);
    EXPECT_TRUE(s.done) << r.body;
    EXPECT_EQ(s.text, "one two three four");
    ASSERT_FALSE(s.chunks.empty());
    EXPECT_EQ(s.chunks.front()["choices"][0]["delta"]["role"], "assistant");
    EXPECT_EQ(s.chunks.back()["choices"][0]["finish_reason"], "stop");
    for (const json& chunk : s.chunks) EXPECT_EQ(chunk["object"], "chat.completion.chunk");
}

TEST_F(GatewayTest, ChatStreamWithIncludeUsageEndsWithUsageChunk) {
    Start();
    json body = json::parse(ChatBody("echo", "count these words", true));
    body["stream_options"] = {{"include_usage", true}};
    HttpReply r = client().Post("/v1/chat/completions", body.dump());
    ASSERT_EQ(r.status, 200) << r.error << r.body;
    StreamedText s = ReadStream(r.body, true);
    ASSERT_FALSE(s.chunks.empty());
    EXPECT_TRUE(s.chunks.back()["choices"].empty());
    EXPECT_EQ(s.chunks.back()["usage"]["completion_tokens"], 3);
}

TEST_F(GatewayTest, CompletionAnswersWithText) {
    Start();
    HttpReply r =
        client().Post("/v1/completions", R"({"model":"echo","prompt":"once upon a time"})");
    ASSERT_EQ(r.status, 200) << r.error << r.body;
    json body = r.Json();
    EXPECT_EQ(body["object"], "text_completion");
    EXPECT_EQ(body["choices"][0]["text"], "once upon a time");
}

TEST_F(GatewayTest, CompletionStreamSendsTextThenDone) {
    Start();
    HttpReply r = client().Post("/v1/completions",
                                R"({"model":"echo","prompt":"a streamed prompt","stream":true})");
    ASSERT_EQ(r.status, 200) << r.error << r.body;
    StreamedText s = ReadStream(r.body, false);
    EXPECT_TRUE(s.done);
    EXPECT_EQ(s.text, "a streamed prompt");
}

TEST_F(GatewayTest, ModelsListsEveryRoute) {
    Start();
    HttpReply r = client().Get("/v1/models");
    ASSERT_EQ(r.status, 200) << r.body;
    json body = r.Json();
    EXPECT_EQ(body["object"], "list");
    std::set<std::string> ids;
    for (const json& m : body["data"]) ids.insert(m["id"].get<std::string>());
    EXPECT_EQ(ids, (std::set<std::string>{"echo", "silent"}));
}

TEST_F(GatewayTest, ModelIsRetrievedByName) {
    Start();
    HttpReply r = client().Get("/v1/models/echo");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.Json()["id"], "echo");
    EXPECT_EQ(client().Get("/v1/models/nope").status, 404);
}

TEST_F(GatewayTest, UnknownModelIs404ModelNotFound) {
    Start();
    HttpReply r = client().Post("/v1/chat/completions", ChatBody("gpt-9", "hi"));
    ASSERT_EQ(r.status, 404) << r.body;
    json error = r.Json()["error"];
    EXPECT_EQ(error["type"], "invalid_request_error");
    EXPECT_EQ(error["code"], "model_not_found");
    EXPECT_NE(error["message"].get<std::string>().find("gpt-9"), std::string::npos);
}

TEST_F(GatewayTest, MalformedJsonIs400NamingTheProblem) {
    Start();
    HttpReply r = client().Post("/v1/chat/completions", R"({"model": "echo", "messages": [)");
    ASSERT_EQ(r.status, 400) << r.body;
    std::string message = r.Json()["error"]["message"];
    EXPECT_NE(message.find("not valid JSON"), std::string::npos) << message;
    EXPECT_NE(message.find("column"), std::string::npos) << message;
}

TEST_F(GatewayTest, InvalidMemberIs400NamingTheParam) {
    Start();
    json body = json::parse(ChatBody("echo", "hi"));
    body["max_tokens"] = "many";
    HttpReply r = client().Post("/v1/chat/completions", body.dump());
    ASSERT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.Json()["error"]["param"], "max_tokens");
}

TEST_F(GatewayTest, CallWhoseReplyNeverComesTimesOutWith504) {
    gateway::GatewayOptions o = DefaultOptions();
    o.spec.request_timeout = std::chrono::milliseconds(300);
    Start(o);
    HttpReply r = client().Post("/v1/chat/completions", ChatBody("silent", "anyone there?"));
    ASSERT_EQ(r.status, 504) << r.body;
    EXPECT_EQ(r.Json()["error"]["code"], "request_timeout");
}

TEST_F(GatewayTest, StreamWhoseChunksNeverComeEndsWithTimeoutError) {
    gateway::GatewayOptions o = DefaultOptions();
    o.spec.request_timeout = std::chrono::milliseconds(300);
    Start(o);
    HttpReply r = client().Post("/v1/chat/completions", ChatBody("silent", "anyone?", true));
    ASSERT_EQ(r.status, 200) << r.body;
    auto messages = ParseSse(r.body);
    ASSERT_FALSE(messages.empty());
    EXPECT_EQ(json::parse(messages.back().data)["error"]["code"], "request_timeout");
}

TEST_F(GatewayTest, RequestDeadLetteredByThePipelineIs500) {
    Start();
    // What the pipeline's job-failure stage publishes when it dead-letters a request.
    std::thread failer([&] {
        TopicReader requests(broker_.get(), "silent.requests");
        const auto& seen = requests.WaitFor(1);
        if (seen.empty()) return;
        PublishReply("test.results", seen[0].id, "job.failed",
                     R"({"error":"prompt longer than the context"})");
    });
    HttpReply r = client().Post("/v1/chat/completions", ChatBody("silent", "too long"));
    failer.join();
    ASSERT_EQ(r.status, 500) << r.body;
    EXPECT_NE(r.Json()["error"]["message"].get<std::string>().find("longer than the context"),
              std::string::npos);
}

TEST_F(GatewayTest, ManyConcurrentCallsAreAllAnswered) {
    Start();
    constexpr int kThreads = 8;
    constexpr int kCalls = 5;
    std::atomic<int> right{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            HttpTestClient c(port());
            for (int i = 0; i < kCalls; ++i) {
                std::string text = "call " + std::to_string(t) + " " + std::to_string(i);
                HttpReply r = c.Post("/v1/chat/completions", ChatBody("echo", text, i % 2 == 1));
                if (r.status != 200) continue;
                std::string got =
                    i % 2 == 1 ? ReadStream(r.body, true).text
                               : r.Json()["choices"][0]["message"]["content"].get<std::string>();
                if (got == text) ++right;
            }
        });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(right, kThreads * kCalls);
}

// The official OpenAI Node.js client library against the gateway (openai_client_test.mjs).
TEST_F(GatewayTest, OpenAiNodeClientChatsAndStreams) {
    std::string node = std::getenv("EVENTLOOM_NODE") ? std::getenv("EVENTLOOM_NODE") : "";
    if (node.empty()) {
        for (const char* dir : {"/usr/bin", "/usr/local/bin"}) {
            if (std::filesystem::exists(std::string(dir) + "/node")) {
                node = std::string(dir) + "/node";
                break;
            }
        }
    }
    if (node.empty()) GTEST_SKIP() << "node is not installed (set EVENTLOOM_NODE)";
    std::string cache = std::getenv("EVENTLOOM_CACHE")
                            ? std::getenv("EVENTLOOM_CACHE")
                            : std::string(std::getenv("HOME")) + "/.cache/eventloom";
    std::string modules = cache + "/npm/node_modules";
    if (!std::filesystem::exists(modules + "/openai/package.json")) {
        GTEST_SKIP() << "the openai package is missing from " << modules
                     << " (scripts/setup.sh --peers installs it)";
    }

    Start();
    std::string command = "GATEWAY_URL=http://127.0.0.1:" + std::to_string(port()) +
                          " NODE_PATH='" + modules + "' '" + node + "' '" +
                          EVENTLOOM_GATEWAY_TEST_DIR "/openai_client_test.mjs' 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::string output;
    char buffer[4096];
    while (size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
    int status = ::pclose(pipe);
    ASSERT_TRUE(WIFEXITED(status)) << output;
    EXPECT_EQ(WEXITSTATUS(status), 0) << output;
}

}  // namespace
}  // namespace eventloom::testing
