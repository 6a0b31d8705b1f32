// The http stage under a StageRunner against FakeOpenAiServer (a scripted HTTP server test
// double): requests built from templates, responses emitted, retries and dead letters, and
// option problems reported at their line and column.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "llm/openai/fake_openai_server.h"
#include "outbound_fixture.h"
#include "pipeline/outbound/stages.h"

namespace eventloom::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

FakeResponse JsonAnswer(int status, const json& body) {
    return FakeResponse::Error(status, body.dump());
}

class HttpStageTest : public OutboundFixture {
protected:
    std::string Url(const std::string& path) {
        return "http://127.0.0.1:" + std::to_string(server_.port()) + path;
    }

    // Runs an http stage on "in" emitting to "out"; `with_yaml` is indented by 6.
    StageRunner* RunHttp(const std::string& with_yaml) {
        const pipeline::StageSpec spec = StageFromYaml(
            "  - name: score\n    consumes: in\n    uses: http\n    emits: out\n    with:\n" +
            with_yaml);
        auto handler = pipeline::MakeHttpHandler(spec);
        EXPECT_TRUE(handler.ok()) << handler.status().ToString();
        if (!handler.ok()) return nullptr;
        return Run(Options(spec.name, spec.consumes), *handler);
    }

    FakeOpenAiServer server_;
};

const json kTicket = {{"id", 7}, {"text", "card declined"}, {"token", "t0k"}};

TEST_F(HttpStageTest, PostsTheEventDataAndEmitsTheResponse) {
    server_.SetDefault(JsonAnswer(200, {{"score", 0.9}}));
    ASSERT_TRUE(RunHttp("      url: \"" + Url("/score") + "\"\n"));

    Publish("in", JsonEvent("e1", "ticket.created", kTicket));

    const auto out = ReadAll("out", 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].type, "http.response");
    EXPECT_EQ(out[0].correlationid, "e1");
    EXPECT_EQ(out[0].causationid, "e1");
    EXPECT_EQ(out[0].datacontenttype, "application/json");
    EXPECT_EQ(Data(out[0]), json({{"score", 0.9}}));
    const ReceivedRequest r = server_.requests().at(0);
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, "/score");
    EXPECT_EQ(r.Json(), kTicket);
    EXPECT_EQ(r.headers.at("content-type"), "application/json");
    EXPECT_EQ(r.headers.at("x-eventloom-event-id"), "e1");
}

TEST_F(HttpStageTest, OutputPutsTheResponseIntoTheInputData) {
    server_.SetDefault(JsonAnswer(200, {{"score", 0.9}}));
    ASSERT_TRUE(RunHttp("      url: \"" + Url("/score") +
                        "\"\n      output: enrich.risk\n"
                        "      type: ticket.scored\n"));

    Publish("in", JsonEvent("e1", "ticket.created", kTicket));

    const auto out = ReadAll("out", 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].type, "ticket.scored");
    json expected = kTicket;
    expected["enrich"]["risk"] = {{"score", 0.9}};
    EXPECT_EQ(Data(out[0]), expected);
}

TEST_F(HttpStageTest, TemplatesBuildUrlHeadersAndBody) {
    server_.SetDefault(JsonAnswer(200, json::object()));
    ASSERT_TRUE(
        RunHttp("      url: \"" + Url("/tickets/{{ data.id }}") +
                "\"\n"
                "      method: put\n"
                "      headers:\n"
                "        Authorization: \"Bearer {{ data.token }}\"\n"
                "      body: { summary: \"{{ data.text | upper }}\", id: \"{{ data.id }}\" }\n"));

    Publish("in", JsonEvent("e1", "ticket.created", kTicket));

    ASSERT_EQ(ReadAll("out", 1).size(), 1u);
    const ReceivedRequest r = server_.requests().at(0);
    EXPECT_EQ(r.method, "PUT");
    EXPECT_EQ(r.path, "/tickets/7");
    EXPECT_EQ(r.headers.at("authorization"), "Bearer t0k");
    EXPECT_EQ(r.Json(), json({{"summary", "CARD DECLINED"}, {"id", 7}}));
}

TEST_F(HttpStageTest, GetSendsNoBody) {
    server_.SetDefault(JsonAnswer(200, {{"ok", true}}));
    ASSERT_TRUE(RunHttp("      url: \"" + Url("/lookup?id={{ data.id }}") +
                        "\"\n"
                        "      method: GET\n"));

    Publish("in", JsonEvent("e1", "ticket.created", kTicket));

    ASSERT_EQ(ReadAll("out", 1).size(), 1u);
    const ReceivedRequest r = server_.requests().at(0);
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.path, "/lookup?id=7");
    EXPECT_EQ(r.body, "");
}

TEST_F(HttpStageTest, DataCannotAddHeaders) {
    server_.SetDefault(JsonAnswer(200, json::object()));
    ASSERT_TRUE(RunHttp("      url: \"" + Url("/x") +
                        "\"\n"
                        "      headers: { X-Note: \"{{ data.note }}\" }\n"));

    Publish("in", JsonEvent("e1", "t", {{"note", "hi\r\nX-Injected: yes"}}));

    ASSERT_EQ(ReadAll("out", 1).size(), 1u);
    const ReceivedRequest r = server_.requests().at(0);
    EXPECT_EQ(r.headers.count("x-injected"), 0u);
    EXPECT_THAT(r.headers.at("x-note"), HasSubstr("hi"));
}

TEST_F(HttpStageTest, TraceContextTravelsWithTheRequest) {
    server_.SetDefault(JsonAnswer(200, json::object()));
    ASSERT_TRUE(RunHttp("      url: \"" + Url("/x") + "\"\n"));
    Event e = JsonEvent("e1", "t", kTicket);
    e.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    Publish("in", e);

    ASSERT_EQ(ReadAll("out", 1).size(), 1u);
    EXPECT_EQ(server_.requests().at(0).headers.at("traceparent"), e.traceparent);
}

TEST_F(HttpStageTest, ServerErrorIsRetriedUntilItSucceeds) {
    server_.Enqueue(JsonAnswer(500, {{"error", "overloaded"}}));
    server_.SetDefault(JsonAnswer(200, {{"score", 0.5}}));
    StageRunner* stage = RunHttp("      url: \"" + Url("/score") + "\"\n");

    Publish("in", JsonEvent("e1", "ticket.created", kTicket));

    const auto out = ReadAll("out", 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(Data(out[0]), json({{"score", 0.5}}));
    EXPECT_EQ(server_.request_count(), 2u);
    EXPECT_EQ(stage->stats().retried, 1);
}

TEST_F(HttpStageTest, ClientErrorIsDeadLetteredNamingUrlAndStatus) {
    server_.SetDefault(JsonAnswer(404, {{"error", "no such ticket"}}));
    StageRunner* stage = RunHttp("      url: \"" + Url("/score?key=hunter2") + "\"\n");

    Publish("in", JsonEvent("e1", "ticket.created", kTicket));

    const auto dead = ReadAll("score.dead-letter", 1);
    ASSERT_EQ(dead.size(), 1u);
    const std::string reason = Extension(dead[0], kDeadLetterReason);
    EXPECT_THAT(reason, HasSubstr("stage 'score'"));
    EXPECT_THAT(reason, HasSubstr("POST http://127.0.0.1:"));
    EXPECT_THAT(reason, HasSubstr("/score: HTTP 404"));
    EXPECT_THAT(reason, HasSubstr("no such ticket"));
    EXPECT_THAT(reason, Not(HasSubstr("hunter2")));
    EXPECT_EQ(server_.request_count(), 1u);
    EXPECT_EQ(stage->stats().retried, 0);
}

TEST_F(HttpStageTest, OutputOnDataThatIsNotAnObjectIsDeadLettered) {
    server_.SetDefault(JsonAnswer(200, {{"score", 1}}));
    ASSERT_TRUE(RunHttp("      url: \"" + Url("/score") + "\"\n      output: risk\n"));

    Publish("in", JsonEvent("e1", "t", json::array({1, 2})));

    const auto dead = ReadAll("score.dead-letter", 1);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_THAT(Extension(dead[0], kDeadLetterReason), HasSubstr("needs event data that is a"));
}

TEST(HttpOptions, ProblemsAreReportedAtTheirLineAndColumn) {
    struct Case {
        const char* what;
        std::string with;
        int line;
        int column;
        std::string message;
    };
    // The first `with` line is line 9 of the file.
    const Case cases[] = {
        {"missing url", "      method: POST\n", 9, 7, "with: missing 'url'"},
        {"url without scheme", "      url: example.test/score\n", 9, 12,
         "url: expected an http:// or https:// URL"},
        {"url template error", "      url: \"https://x.test/{{ data.a | shout }}\"\n", 9, 12,
         "url: at column"},
        {"unknown method", "      url: https://x.test\n      method: FETCH\n", 10, 15,
         "method: unknown method 'FETCH'"},
        {"body on GET", "      url: https://x.test\n      method: GET\n      body: { a: 1 }\n", 11,
         13, "body: a GET request has no body"},
        {"bad timeout", "      url: https://x.test\n      timeout: soon\n", 10, 16, "timeout:"},
        {"bad output path", "      url: https://x.test\n      output: \"a..b\"\n", 10, 15,
         "output:"},
        {"header set by the transport",
         "      url: https://x.test\n      headers:\n        Content-Length: \"3\"\n", 11, 25,
         "headers.Content-Length: header 'Content-Length' is set by the transport"},
        {"header not a string", "      url: https://x.test\n      headers:\n        X-Count: 3\n",
         11, 18, "headers.X-Count: expected a string, found a number"},
        {"unknown key", "      url: https://x.test\n      retries: 3\n", 10, 16,
         "retries: unknown key 'retries'"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        const std::string yaml =
            "version: 1\nname: shop\nstages:\n  - name: h\n    consumes: in\n    uses: http\n"
            "    emits: out\n    with:\n" +
            c.with;
        auto spec = pipeline::ParsePipeline(yaml, "p.yaml", ".");
        ASSERT_TRUE(spec.ok()) << spec.status().ToString();
        std::vector<pipeline::Diagnostic> found;
        auto handler = pipeline::MakeHttpHandler(spec->stages[0], &found);
        EXPECT_EQ(handler.status().code(), StatusCode::kInvalidArgument);
        ASSERT_EQ(found.size(), 1u) << handler.status().ToString();
        EXPECT_EQ(found[0].where.file, "p.yaml");
        EXPECT_EQ(found[0].where.line, c.line);
        EXPECT_EQ(found[0].where.column, c.column);
        EXPECT_THAT(found[0].message, HasSubstr("stage 'h': " + c.message));
    }
}

TEST(HttpOptions, EveryProblemIsReportedAtOnce) {
    const std::string yaml =
        "version: 1\nname: shop\nstages:\n  - name: h\n    consumes: in\n    uses: http\n"
        "    emits: out\n    with:\n      url: ftp://x\n      method: FETCH\n      colour: red\n";
    auto spec = pipeline::ParsePipeline(yaml, "p.yaml", ".");
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    std::vector<pipeline::Diagnostic> found;

    auto handler = pipeline::MakeHttpHandler(spec->stages[0], &found);

    EXPECT_FALSE(handler.ok());
    EXPECT_EQ(found.size(), 3u);
}

}  // namespace
}  // namespace eventloom::testing
