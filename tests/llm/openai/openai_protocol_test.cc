// The wire protocol on strings: request bodies, response decoding, error bodies, Retry-After.
#include "llm/openai/openai_protocol.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace eventloom::openai {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;

json Body(const LlmRequest& request, Endpoint endpoint, const OpenAiOptions& options = {}) {
    Result<std::string> body = BuildRequestBody(request, options, endpoint);
    EXPECT_TRUE(body.ok()) << body.status().ToString();
    return body.ok() ? json::parse(*body) : json();
}

TEST(EndpointFor, ChatUnlessABarePromptInCompletionsMode) {
    LlmRequest prompt;
    prompt.prompt = "p";
    LlmRequest chat;
    chat.messages = {{"user", "hi"}};
    EXPECT_EQ(EndpointFor(prompt, true), Endpoint::kChat);
    EXPECT_EQ(EndpointFor(prompt, false), Endpoint::kCompletions);
    EXPECT_EQ(EndpointFor(chat, false), Endpoint::kChat);
}

TEST(BuildRequestBody, CarriesEveryParameter) {
    LlmRequest request;
    request.messages = {{"system", "be brief"}, {"user", "hi"}};
    request.sampling = {.temperature = 0.5f, .top_k = 7, .top_p = 0.25f, .seed = 42};
    request.max_tokens = 9;
    request.stop = {"\n"};
    request.ignore_eos = true;
    OpenAiOptions options;
    options.model = "m";

    const json body = Body(request, Endpoint::kChat, options);
    EXPECT_EQ(body["model"], "m");
    EXPECT_EQ(
        body["messages"],
        json::parse(R"([{"role":"system","content":"be brief"},{"role":"user","content":"hi"}])"));
    EXPECT_EQ(body["stream"], true);
    EXPECT_EQ(body["stream_options"]["include_usage"], true);
    EXPECT_EQ(body["temperature"], 0.5);
    EXPECT_EQ(body["top_p"], 0.25);
    EXPECT_EQ(body["top_k"], 7);
    EXPECT_EQ(body["seed"], 42);
    EXPECT_EQ(body["max_tokens"], 9);
    EXPECT_EQ(body["stop"], json::array({"\n"}));
    EXPECT_EQ(body["ignore_eos"], true);
}

TEST(BuildRequestBody, LeavesOutWhatIsNotSet) {
    LlmRequest request;
    request.prompt = "p";
    request.sampling.top_k = 0;
    const json body = Body(request, Endpoint::kCompletions);
    EXPECT_EQ(body["prompt"], "p");
    for (const char* key :
         {"model", "messages", "top_k", "stop", "ignore_eos", "response_format"}) {
        SCOPED_TRACE(key);
        EXPECT_FALSE(body.contains(key));
    }
}

TEST(BuildRequestBody, SendsABarePromptAsOneUserMessageToChat) {
    LlmRequest request;
    request.prompt = "p";
    EXPECT_EQ(Body(request, Endpoint::kChat)["messages"],
              json::parse(R"([{"role":"user","content":"p"}])"));
}

TEST(BuildRequestBody, WrapsTheSchemaInResponseFormat) {
    LlmRequest request;
    request.prompt = "p";
    request.json_schema = R"({"type":"object","required":["a"]})";
    EXPECT_EQ(Body(request, Endpoint::kChat)["response_format"], json::parse(R"({
        "type": "json_schema",
        "json_schema": {"name": "output", "strict": true,
                        "schema": {"type": "object", "required": ["a"]}}})"));
}

TEST(BuildRequestBody, AlsoSendsTheSchemaTopLevelToCompletions) {
    LlmRequest request;
    request.prompt = "p";
    request.json_schema = R"({"type":"object"})";
    EXPECT_EQ(Body(request, Endpoint::kCompletions)["json_schema"],
              json::parse(request.json_schema));
    EXPECT_FALSE(Body(request, Endpoint::kChat).contains("json_schema"));
}

TEST(BuildRequestBody, RefusesRequestsNoServerCouldAccept) {
    struct Case {
        const char* description;
        LlmRequest request;
    };
    LlmRequest base;
    base.prompt = "p";
    std::vector<Case> cases;
    cases.push_back({"no input", LlmRequest{}});
    cases.push_back({"schema not JSON", base});
    cases.back().request.json_schema = "{not json";
    cases.push_back({"schema not an object", base});
    cases.back().request.json_schema = "[1]";
    cases.push_back({"no tokens", base});
    cases.back().request.max_tokens = 0;
    cases.push_back({"temperature NaN", base});
    cases.back().request.sampling.temperature = std::numeric_limits<float>::quiet_NaN();
    for (const Case& c : cases) {
        SCOPED_TRACE(c.description);
        EXPECT_EQ(BuildRequestBody(c.request, {}, Endpoint::kChat).status().code(),
                  StatusCode::kInvalidArgument);
    }
}

TEST(BuildRequestBody, ReplacesInvalidUtf8InsteadOfThrowing) {
    LlmRequest request;
    request.prompt =
        "a\xff"
        "b";
    EXPECT_TRUE(BuildRequestBody(request, {}, Endpoint::kCompletions).ok());
}

TEST(EstimatePromptTokens, IsBytesOverFourPlusFourPerMessage) {
    LlmRequest request;
    request.messages = {{"system", "12345678"}, {"user", "1"}};
    EXPECT_EQ(EstimatePromptTokens(request, Endpoint::kChat), (9 + 3) / 4 + 8);
    LlmRequest prompt;
    prompt.prompt = std::string(10, 'x');
    EXPECT_EQ(EstimatePromptTokens(prompt, Endpoint::kCompletions), 3);
    EXPECT_EQ(EstimatePromptTokens(prompt, Endpoint::kChat), 7);
}

TEST(ResponseDecoder, CollectsChatDeltasUsageAndFinishReason) {
    ResponseDecoder decoder(Endpoint::kChat);
    std::vector<std::string> pieces;
    auto feed = [&](const char* data) {
        ASSERT_TRUE(
            decoder.OnEvent(data, [&](std::string_view p) { pieces.emplace_back(p); }).ok());
    };
    feed(R"({"choices":[{"delta":{"role":"assistant","content":null}}]})");
    feed(R"({"choices":[{"delta":{"content":"He"},"finish_reason":null}]})");
    feed(R"({"choices":[{"delta":{"content":"llo"}}]})");
    feed(R"({"choices":[{"delta":{},"finish_reason":"length"}],"timings":{"cache_n":5}})");
    feed(R"({"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,
             "prompt_tokens_details":{"cached_tokens":4}}})");
    feed("[DONE]");

    EXPECT_EQ(pieces, (std::vector<std::string>{"He", "llo"}));
    EXPECT_EQ(decoder.text(), "Hello");
    EXPECT_EQ(decoder.finish_reason(), "length");
    EXPECT_EQ(decoder.content_deltas(), 2);
    EXPECT_EQ(decoder.usage().prompt_tokens, 7);
    EXPECT_EQ(decoder.usage().completion_tokens, 2);
    EXPECT_EQ(decoder.usage().cached_tokens, 4);
    EXPECT_EQ(decoder.usage().cache_n, 5);
    EXPECT_TRUE(decoder.complete());
}

TEST(ResponseDecoder, DoesNotCountTheEmptyTextBesideTheFinishReason) {
    ResponseDecoder decoder(Endpoint::kCompletions);
    ASSERT_TRUE(decoder.OnEvent(R"({"choices":[{"text":"a"}]})", {}).ok());
    ASSERT_TRUE(decoder.OnEvent(R"({"choices":[{"text":""}]})", {}).ok());
    ASSERT_TRUE(decoder.OnEvent(R"({"choices":[{"text":"","finish_reason":"stop"}]})", {}).ok());
    EXPECT_EQ(decoder.content_deltas(), 2);
    EXPECT_EQ(decoder.text(), "a");
}

TEST(ResponseDecoder, ReadsAWholeNonStreamedBody) {
    ResponseDecoder decoder(Endpoint::kChat);
    ASSERT_TRUE(decoder
                    .OnBody(R"({"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}],
                               "usage":{"prompt_tokens":3,"completion_tokens":1}})",
                            {})
                    .ok());
    EXPECT_EQ(decoder.text(), "hi");
    EXPECT_EQ(decoder.finish_reason(), "stop");
    EXPECT_TRUE(decoder.complete());
}

TEST(ResponseDecoder, NamesWhatIsMalformed) {
    struct Case {
        const char* data;
        const char* named;
    };
    const Case cases[] = {
        {"{oops", "not JSON"},
        {"[1,2]", "not a JSON object"},
        {R"({"id":"x"})", "no 'choices'"},
        {R"({"choices":{}})", "not an array"},
        {R"({"choices":[{"delta":{"content":5}}]})", "not a string"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.data);
        ResponseDecoder decoder(Endpoint::kChat);
        const Status status = decoder.OnEvent(c.data, {});
        EXPECT_EQ(status.code(), StatusCode::kUnavailable);
        EXPECT_NE(status.message().find(c.named), std::string::npos) << status.message();
    }
}

TEST(ResponseDecoder, MapsAnErrorInTheStreamLikeAnHttpStatus) {
    ResponseDecoder decoder(Endpoint::kChat);
    EXPECT_EQ(decoder.OnEvent(R"({"error":{"code":400,"message":"bad"}})", {}).code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(decoder.OnEvent(R"({"error":{"code":500,"message":"oom"}})", {}).code(),
              StatusCode::kUnavailable);
}

TEST(ErrorMessageFromBody, ReadsTheUsualShapes) {
    EXPECT_EQ(ErrorMessageFromBody(R"({"error":{"message":"m1","type":"x"}})"), "m1");
    EXPECT_EQ(ErrorMessageFromBody(R"({"error":"m2"})"), "m2");
    EXPECT_EQ(ErrorMessageFromBody(R"({"detail":"m3"})"), "m3");
    EXPECT_EQ(ErrorMessageFromBody("  plain text\n"), "plain text");
    EXPECT_EQ(ErrorMessageFromBody(""), "(empty body)");
}

TEST(ParseRetryAfter, ReadsSecondsAndDates) {
    const auto now = std::chrono::system_clock::from_time_t(784111777);  // 06 Nov 1994 08:49:37
    EXPECT_EQ(ParseRetryAfter("1", now), milliseconds(1000));
    EXPECT_EQ(ParseRetryAfter(" 120 ", now), milliseconds(120000));
    EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:40 GMT", now), milliseconds(3000));
    EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:00:00 GMT", now), milliseconds(0));
    EXPECT_EQ(ParseRetryAfter("soon", now), std::nullopt);
    EXPECT_EQ(ParseRetryAfter("", now), std::nullopt);
}

TEST(ParseRetryAfterMs, ReadsMillisecondsWithAFraction) {
    EXPECT_EQ(ParseRetryAfterMs("250"), milliseconds(250));
    EXPECT_EQ(ParseRetryAfterMs("20.5"), milliseconds(21));
    EXPECT_EQ(ParseRetryAfterMs("x"), std::nullopt);
}

}  // namespace
}  // namespace eventloom::openai
