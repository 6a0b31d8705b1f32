// The echo test backend: what it answers, and that it honours the request's limits.
#include "llm/echo/echo_backend.h"

#include <gtest/gtest.h>

#include <stop_token>
#include <string>
#include <vector>

namespace eventloom::llm {
namespace {

LlmRequest Chat(std::string text) {
    LlmRequest r;
    r.messages.push_back({"system", "be brief"});
    r.messages.push_back({"user", std::move(text)});
    return r;
}

TEST(EchoBackend, AnswersWithTheLastUserMessageOneTokenPerWord) {
    auto backend = MakeEchoBackend();
    std::vector<std::string> pieces;
    auto result = backend->Generate(Chat("the quick  brown fox"),
                                    [&](std::string_view p) { pieces.emplace_back(p); }, {});
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(result->text, "the quick  brown fox");
    EXPECT_EQ(pieces, (std::vector<std::string>{"the", " quick", "  brown", " fox"}));
    EXPECT_EQ(result->finish_reason, "stop");
    EXPECT_EQ(result->usage.completion_tokens, 4);
    EXPECT_EQ(result->usage.prompt_tokens, 6);
    EXPECT_EQ(backend->kind(), "echo");
}

TEST(EchoBackend, StopsAtMaxTokensAndAtStopSequences) {
    auto backend = MakeEchoBackend();
    LlmRequest r = Chat("one two three four");
    r.max_tokens = 2;
    auto cut = backend->Generate(r);
    ASSERT_TRUE(cut.ok());
    EXPECT_EQ(cut->text, "one two");
    EXPECT_EQ(cut->finish_reason, "length");

    r.max_tokens = 100;
    r.stop = {"ee"};
    auto stopped = backend->Generate(r);
    ASSERT_TRUE(stopped.ok());
    EXPECT_EQ(stopped->text, "one two thr");
    EXPECT_EQ(stopped->finish_reason, "stop");
}

TEST(EchoBackend, ReportsCancellationAndDeadlines) {
    auto backend = MakeEchoBackend();
    std::stop_source stop;
    stop.request_stop();
    auto cancelled = backend->Generate(Chat("a b"), {}, stop.get_token());
    EXPECT_EQ(cancelled.status().code(), StatusCode::kCancelled);

    LlmRequest late = Chat("a b");
    late.deadline = std::chrono::steady_clock::now() - std::chrono::seconds(1);
    EXPECT_EQ(backend->Generate(late).status().code(), StatusCode::kDeadlineExceeded);
}

TEST(EchoBackend, AFixedReplyAndARawPrompt) {
    EchoOptions o;
    o.reply = R"({"category": "billing"})";
    o.model = "fixed";
    auto backend = MakeEchoBackend(o);
    LlmRequest r;
    r.prompt = "anything";
    auto result = backend->Generate(r);
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result->text, R"({"category": "billing"})");
    EXPECT_EQ(backend->model(), "fixed");
    EXPECT_EQ(backend->CountPromptTokens(r).value_or(-1), 1);
    EXPECT_EQ(backend->Load().slots, 64);
    EXPECT_EQ(backend->Load().busy_slots, 0);
}

}  // namespace
}  // namespace eventloom::llm
