#include "gateway/openai_json.h"

#include <gtest/gtest.h>

namespace eventloom::gateway {
namespace {

using nlohmann::json;

TEST(ParseCompletionRequest, ChatBodyDropsStreamFields) {
    std::string param;
    auto r = ParseCompletionRequest(
        R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,)"
        R"("stream_options":{"include_usage":true},"max_tokens":5})",
        ApiKind::kChat, &param);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->model, "m");
    EXPECT_TRUE(r->stream);
    EXPECT_TRUE(r->include_usage);
    EXPECT_FALSE(r->body.contains("stream"));
    EXPECT_FALSE(r->body.contains("stream_options"));
    EXPECT_EQ(r->body["max_tokens"], 5);
}

TEST(ParseCompletionRequest, MalformedJsonNamesThePlace) {
    std::string param = "stale";
    auto r = ParseCompletionRequest("{\"model\": ", ApiKind::kChat, &param);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("not valid JSON"), std::string::npos);
    EXPECT_NE(r.status().message().find("column"), std::string::npos);
    EXPECT_EQ(param, "");
}

TEST(ParseCompletionRequest, MissingMessagesIsNamed) {
    std::string param;
    auto r = ParseCompletionRequest(R"({"model":"m"})", ApiKind::kChat, &param);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(param, "messages");
}

TEST(ParseCompletionRequest, CompletionNeedsStringPrompt) {
    std::string param;
    auto r = ParseCompletionRequest(R"({"model":"m","prompt":7})", ApiKind::kCompletion, &param);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(param, "prompt");
    r = ParseCompletionRequest(R"({"model":"m","prompt":""})", ApiKind::kCompletion, &param);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(param, "prompt");
}

TEST(ParseCompletionRequest, MemberTheLlmStageRejectsIsNamed) {
    std::string param;
    auto r = ParseCompletionRequest(
        R"({"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":"ten"})",
        ApiKind::kChat, &param);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(param, "max_tokens");
}

TEST(ParseCompletionRequest, NonStringModelIsRejected) {
    std::string param;
    auto r = ParseCompletionRequest(R"({"model":3,"prompt":"x"})", ApiKind::kCompletion, &param);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(param, "model");
}

TEST(ParseCompletion, ReadsCompletionEventData) {
    Completion c =
        ParseCompletion(R"({"text":"hello","finish_reason":"length","model":"x",)"
                        R"("usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})");
    EXPECT_EQ(c.text, "hello");
    EXPECT_EQ(c.finish_reason, "length");
    EXPECT_EQ(c.prompt_tokens, 3);
    EXPECT_EQ(c.completion_tokens, 2);
    EXPECT_EQ(c.total_tokens, 5);
}

TEST(ParseCompletion, OtherDataIsTheText) {
    Completion c = ParseCompletion(R"({"category":"billing"})");
    EXPECT_EQ(c.text, R"({"category":"billing"})");
    EXPECT_EQ(c.finish_reason, "stop");
}

TEST(CompletionResponse, ChatHasAssistantMessage) {
    Completion c;
    c.text = "hi";
    json r = CompletionResponse(ApiKind::kChat, "abc", 100, "echo", c);
    EXPECT_EQ(r["id"], "chatcmpl-abc");
    EXPECT_EQ(r["object"], "chat.completion");
    EXPECT_EQ(r["model"], "echo");
    EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
    EXPECT_EQ(r["choices"][0]["message"]["content"], "hi");
    EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
    EXPECT_TRUE(r["usage"].contains("total_tokens"));
}

TEST(CompletionResponse, TextCompletionHasText) {
    Completion c;
    c.text = "once";
    json r = CompletionResponse(ApiKind::kCompletion, "abc", 100, "echo", c);
    EXPECT_EQ(r["id"], "cmpl-abc");
    EXPECT_EQ(r["object"], "text_completion");
    EXPECT_EQ(r["choices"][0]["text"], "once");
}

TEST(StreamChunk, FirstChatChunkCarriesRole) {
    json c = StreamChunk(ApiKind::kChat, "abc", 1, "echo", "", true, std::nullopt);
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    EXPECT_EQ(c["choices"][0]["delta"]["role"], "assistant");
    EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());
}

TEST(StreamChunk, FinalChunkHasFinishReasonAndEmptyDelta) {
    json c = StreamChunk(ApiKind::kChat, "abc", 1, "echo", "", false, std::string("stop"));
    EXPECT_EQ(c["choices"][0]["finish_reason"], "stop");
    EXPECT_TRUE(c["choices"][0]["delta"].empty());
}

TEST(UsageChunk, HasNoChoices) {
    Completion c;
    c.total_tokens = 9;
    json u = UsageChunk(ApiKind::kChat, "abc", 1, "echo", c);
    EXPECT_TRUE(u["choices"].empty());
    EXPECT_EQ(u["usage"]["total_tokens"], 9);
}

TEST(ErrorJson, EmptyParamAndCodeAreNull) {
    json e = ErrorJson("bad", "invalid_request_error");
    EXPECT_EQ(e["error"]["message"], "bad");
    EXPECT_EQ(e["error"]["type"], "invalid_request_error");
    EXPECT_TRUE(e["error"]["param"].is_null());
    EXPECT_TRUE(e["error"]["code"].is_null());
}

TEST(DumpJson, InvalidUtf8IsReplaced) {
    json value = std::string(
        "a\xff"
        "b");
    std::string text = DumpJson(value);
    EXPECT_EQ(json::parse(text, nullptr, false).is_discarded(), false);
}

}  // namespace
}  // namespace eventloom::gateway
