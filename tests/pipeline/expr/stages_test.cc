// The transform, route and emit stage handlers (pipeline/expr/stages.h), run for real by a
// StageRunner over the embedded broker: what they emit, with correlation and causation, and
// what they dead-letter, with the reason. Their compile errors are checked at their place.
#include "pipeline/expr/stages.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "eventloom/broker.h"
#include "eventloom/stage.h"
#include "pipeline/config/pipeline_spec.h"
#include "support/temp_dir.h"
#include "support/topic_reader.h"

namespace eventloom::pipeline {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

// A stage named `name` of `kind` consuming "in", whose `with:` is `with_yaml` (its first line
// is line 10 of "p.yaml").
StageSpec Stage(const std::string& name, const std::string& kind, const std::string& with_yaml,
                const std::string& emits = "out") {
    std::string yaml = "version: 1\nname: p\nstages:\n  - name: " + name +
                       "\n    consumes: in\n    uses: " + kind + "\n";
    yaml += emits.empty() ? "    concurrency: 1\n" : "    emits: " + emits + "\n";
    yaml += "    timeout: 30s\n    with:\n";
    std::istringstream lines(with_yaml);
    for (std::string line; std::getline(lines, line);) yaml += "      " + line + "\n";
    auto spec = ParsePipeline(yaml, "p.yaml", ".");
    EXPECT_TRUE(spec.ok()) << spec.status().ToString();
    if (!spec.ok() || spec->stages.empty()) return StageSpec();
    return spec->stages[0];
}

Event Input(const std::string& id, const std::string& data,
            const std::string& content_type = "application/json") {
    Event e;
    e.id = id;
    e.source = "test";
    e.type = "ticket.created";
    e.subject = "T-" + id;
    e.partitionkey = "cust-1";
    e.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    e.datacontenttype = content_type;
    e.data = data;
    e.has_data = true;
    return e;
}

std::string Extension(const Event& e, std::string_view name) {
    for (const auto& [key, value] : e.extensions) {
        if (key == name) return value;
    }
    return "";
}

class StageHandlerTest : public ::testing::Test {
protected:
    void SetUp() override {
        EmbeddedBrokerOptions b;
        b.dir = dir_.Sub("data");
        auto broker = OpenEmbeddedBroker(b);
        ASSERT_TRUE(broker.ok()) << broker.status().ToString();
        broker_ = std::move(broker).value();
        for (const char* topic : {"in", "out", "out2", "billing", "urgent", "general"}) {
            TopicOptions t;
            t.durability = Durability::kNever;
            ASSERT_TRUE(broker_->CreateTopic(topic, t).ok());
        }
    }

    void TearDown() override {
        if (runner_) runner_->Stop();
        runner_.reset();
        broker_.reset();
    }

    void Run(const StageSpec& stage, StageHandler handler) {
        StageOptions o;
        o.name = stage.name;
        o.consumes = "in";
        o.retry.max_attempts = 1;
        o.dead_letter_topic = stage.name + ".dead-letter";
        runner_ =
            std::make_unique<StageRunner>(broker_.get(), nullptr, std::move(o), std::move(handler));
        ASSERT_TRUE(runner_->Start().ok());
    }

    void Publish(const Event& e) {
        auto published = broker_->Publish("in", e);
        ASSERT_TRUE(published.ok()) << published.status().ToString();
    }

    // Waits (up to 30 s) until the runner has settled `count` deliveries, so that any topic
    // still empty stays empty.
    void WaitSettled(int64_t count) {
        const auto give_up = std::chrono::steady_clock::now() + 30s;
        while (std::chrono::steady_clock::now() < give_up) {
            const StageStats s = runner_->stats();
            if (s.succeeded + s.dead_lettered >= count) return;
            std::this_thread::sleep_for(5ms);
        }
        ADD_FAILURE() << "the stage did not settle " << count << " deliveries";
    }

    std::vector<Event> Read(const std::string& topic, size_t count) {
        testing::TopicReader reader(broker_.get(), topic, "check-" + std::to_string(++readers_));
        return reader.WaitFor(count);
    }

    // What `topic` holds once the stage has settled everything (nothing may arrive later).
    std::vector<Event> ReadSettled(const std::string& topic) {
        testing::TopicReader reader(broker_.get(), topic, "check-" + std::to_string(++readers_));
        return reader.WaitFor(SIZE_MAX, 300ms);
    }

    testing::TempDir dir_;
    std::unique_ptr<Broker> broker_;
    std::unique_ptr<StageRunner> runner_;
    int readers_ = 0;
};

StageHandler MustMake(Result<StageHandler> handler) {
    EXPECT_TRUE(handler.ok()) << handler.status().ToString();
    return handler.ok() ? std::move(handler).value() : StageHandler();
}

// ---------------------------------------------------------------------------------------------
// transform

TEST_F(StageHandlerTest, TransformEmitsTheEditedDataAsADerivedEvent) {
    StageSpec stage = Stage("clean", "transform",
                            "type: ticket.cleaned\n"
                            "steps:\n"
                            "  - select: [subject, body]\n"
                            "  - redact: { paths: [body], patterns: [email] }\n",
                            "[out, out2]");
    Run(stage, MustMake(MakeTransformHandler(stage)));
    Publish(Input("e-1", R"({"subject":"Hi","body":"mail a@b.io","secret":1})"));

    for (const char* topic : {"out", "out2"}) {
        SCOPED_TRACE(topic);
        std::vector<Event> out = Read(topic, 1);
        ASSERT_EQ(out.size(), 1u);
        const Event& e = out[0];
        EXPECT_EQ(e.type, "ticket.cleaned");
        EXPECT_EQ(e.source, "eventloom/clean");
        EXPECT_EQ(e.datacontenttype, "application/json");
        EXPECT_EQ(json::parse(e.data), json({{"subject", "Hi"}, {"body", "mail [redacted]"}}));
        EXPECT_NE(e.id, "e-1");
        EXPECT_EQ(e.correlationid, "e-1");
        EXPECT_EQ(e.causationid, "e-1");
        EXPECT_EQ(e.partitionkey, "cust-1");
        EXPECT_EQ(e.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    }
}

TEST_F(StageHandlerTest, TransformKeepsAnExistingCorrelationAndTheInputType) {
    StageSpec stage = Stage("clean", "transform", "steps: [{ drop: [x] }]\n");
    Run(stage, MustMake(MakeTransformHandler(stage)));
    Event in = Input("e-2", R"({"x":1,"y":2})");
    in.correlationid = "request-7";
    Publish(in);
    std::vector<Event> out = Read("out", 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].type, "ticket.created");
    EXPECT_EQ(out[0].correlationid, "request-7");
    EXPECT_EQ(out[0].causationid, "e-2");
    EXPECT_EQ(json::parse(out[0].data), json({{"y", 2}}));
}

TEST_F(StageHandlerTest, TransformDeadLettersDataThatIsNotJsonNamingTheStage) {
    StageSpec stage = Stage("clean", "transform", "steps: [{ select: [a] }]\n");
    Run(stage, MustMake(MakeTransformHandler(stage)));
    Publish(Input("e-3", "just words", "text/plain"));
    std::vector<Event> dead = Read("clean.dead-letter", 1);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_EQ(dead[0].id, "e-3");
    const std::string reason = Extension(dead[0], kDeadLetterReason);
    EXPECT_THAT(reason, HasSubstr("stage 'clean'"));
    EXPECT_THAT(reason, HasSubstr("the data of event 'e-3' is not JSON"));
    WaitSettled(1);
    EXPECT_TRUE(ReadSettled("out").empty());
}

TEST_F(StageHandlerTest, TransformDeadLettersDataOfTheWrongShapeNamingTheStep) {
    StageSpec stage = Stage("clean", "transform", "steps: [{ select: [a] }]\n");
    Run(stage, MustMake(MakeTransformHandler(stage)));
    Publish(Input("e-4", "[1,2,3]"));
    std::vector<Event> dead = Read("clean.dead-letter", 1);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_THAT(Extension(dead[0], kDeadLetterReason),
                HasSubstr("stage 'clean': steps[0].select: data is not a JSON object"));
}

TEST(MakeTransformHandler, CompileErrorsNameTheStageAtTheirPlace) {
    std::vector<Diagnostic> found;
    auto handler =
        MakeTransformHandler(Stage("clean", "transform", "steps:\n  - explode: 1\n"), &found);
    ASSERT_FALSE(handler.ok());
    EXPECT_EQ(handler.status().code(), StatusCode::kInvalidArgument);
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].where.ToString(), "p.yaml:11:20");
    EXPECT_THAT(found[0].message, HasSubstr("stage 'clean': steps[0].explode: unknown step"));
}

// ---------------------------------------------------------------------------------------------
// route

constexpr const char* kRoutes =
    "routes:\n"
    "  - when: 'data.category == \"billing\"'\n"
    "    to: billing\n"
    "  - when: 'data.urgency >= 4 || data.category == \"outage\"'\n"
    "    to: urgent\n";

TEST_F(StageHandlerTest, RouteSendsToTheFirstMatchOnlyByDefault) {
    StageSpec stage = Stage("route", "route", std::string(kRoutes) + "default: general\n", "");
    EXPECT_THAT(stage.emits, ElementsAre("billing", "urgent", "general"));
    Run(stage, MustMake(MakeRouteHandler(stage)));
    Event in = Input("e-1", R"({"category":"billing","urgency":5})");
    in.dataschema = "ticket/1";
    Publish(in);
    WaitSettled(1);

    std::vector<Event> billing = ReadSettled("billing");
    ASSERT_EQ(billing.size(), 1u);
    const Event& e = billing[0];
    EXPECT_EQ(e.type, "ticket.created");
    EXPECT_EQ(e.subject, "T-e-1");
    EXPECT_EQ(e.dataschema, "ticket/1");
    EXPECT_EQ(e.datacontenttype, "application/json");
    EXPECT_EQ(e.data, R"({"category":"billing","urgency":5})");
    EXPECT_EQ(e.source, "eventloom/route");
    EXPECT_EQ(e.correlationid, "e-1");
    EXPECT_EQ(e.causationid, "e-1");
    EXPECT_TRUE(ReadSettled("urgent").empty());
    EXPECT_TRUE(ReadSettled("general").empty());
}

TEST_F(StageHandlerTest, RouteModeAllSendsToEveryMatch) {
    StageSpec stage =
        Stage("route", "route", std::string(kRoutes) + "default: general\nmode: all\n", "");
    Run(stage, MustMake(MakeRouteHandler(stage)));
    Publish(Input("e-1", R"({"category":"billing","urgency":5})"));
    WaitSettled(1);
    ASSERT_EQ(ReadSettled("billing").size(), 1u);
    std::vector<Event> urgent = ReadSettled("urgent");
    ASSERT_EQ(urgent.size(), 1u);
    EXPECT_EQ(urgent[0].causationid, "e-1");
    EXPECT_TRUE(ReadSettled("general").empty());
}

TEST_F(StageHandlerTest, RouteWithoutAMatchGoesToTheDefault) {
    StageSpec stage = Stage("route", "route", std::string(kRoutes) + "default: general\n", "");
    Run(stage, MustMake(MakeRouteHandler(stage)));
    Publish(Input("e-1", R"({"category":"account","urgency":1})"));
    Publish(Input("e-2", R"({"urgency":"high"})"));  // missing field, wrong type: no match
    std::vector<Event> general = Read("general", 2);
    ASSERT_EQ(general.size(), 2u);
    EXPECT_EQ(general[0].causationid, "e-1");
    EXPECT_EQ(general[1].causationid, "e-2");
}

TEST_F(StageHandlerTest, RouteWithoutAMatchOrDefaultDeadLettersWithTheReason) {
    StageSpec stage = Stage("route", "route", kRoutes, "");
    Run(stage, MustMake(MakeRouteHandler(stage)));
    Publish(Input("e-9", R"({"category":"account"})"));
    std::vector<Event> dead = Read("route.dead-letter", 1);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_EQ(dead[0].id, "e-9");
    EXPECT_THAT(Extension(dead[0], kDeadLetterReason),
                HasSubstr("stage 'route': no route matched event 'e-9'"));
    EXPECT_EQ(Extension(dead[0], kDeadLetterStage), "route");
}

TEST_F(StageHandlerTest, RouteEvaluatesConditionsOverTextDataToo) {
    StageSpec stage = Stage("route", "route",
                            "routes:\n  - when: 'data contains \"down\"'\n    to: urgent\n"
                            "default: general\n",
                            "");
    Run(stage, MustMake(MakeRouteHandler(stage)));
    Publish(Input("e-1", "the site is down", "text/plain"));
    std::vector<Event> urgent = Read("urgent", 1);
    ASSERT_EQ(urgent.size(), 1u);
    EXPECT_EQ(urgent[0].data, "the site is down");
    EXPECT_EQ(urgent[0].datacontenttype, "text/plain");
}

TEST(MakeRouteHandler, CompileErrorsAreReportedAtTheirPlace) {
    std::vector<Diagnostic> found;
    auto handler = MakeRouteHandler(Stage("route", "route",
                                          "routes:\n"
                                          "  - when: 'data.a =='\n"
                                          "    to: billing\n"
                                          "  - to: urgent\n"
                                          "  - when: 'true'\n"
                                          "    to: 'bad topic'\n"
                                          "mode: some\n"
                                          "default: general\n",
                                          ""),
                                    &found);
    ASSERT_FALSE(handler.ok());
    std::vector<std::string> got;
    for (const Diagnostic& d : found) got.push_back(d.where.ToString() + " " + d.message);
    EXPECT_THAT(
        got, ::testing::UnorderedElementsAre(
                 "p.yaml:11:17 stage 'route': routes[0].when: at column 10: expected a value, "
                 "a path, '(' or '!', found the end",
                 "p.yaml:13:11 stage 'route': routes[1]: missing 'when'",
                 "p.yaml:15:15 stage 'route': routes[2].to: topic name 'bad topic' may contain "
                 "only letters, digits, '.', '_' and '-'",
                 "p.yaml:16:13 stage 'route': mode: unknown mode 'some'; expected first or all"));
}

TEST(MakeRouteHandler, MissingRoutesIsAnError) {
    std::vector<Diagnostic> found;
    EXPECT_FALSE(MakeRouteHandler(Stage("route", "route", "mode: all\n", ""), &found).ok());
    ASSERT_EQ(found.size(), 1u);
    EXPECT_THAT(found[0].message, HasSubstr("stage 'route': with: missing 'routes'"));
}

TEST(RouteTargets, ListsEveryTargetOnceInOrder) {
    StageSpec stage = Stage(
        "route", "route",
        std::string(kRoutes) + "  - when: 'true'\n    to: billing\n" + "default: general\n", "");
    EXPECT_THAT(RouteTargets(stage), ElementsAre("billing", "urgent", "general"));
    EXPECT_TRUE(RouteTargets(StageSpec()).empty());
}

// ---------------------------------------------------------------------------------------------
// emit

TEST_F(StageHandlerTest, EmitRendersTypeSubjectAndData) {
    StageSpec stage = Stage("reply", "emit",
                            "type: ticket.reply\n"
                            "subject: 'reply to {{ event.subject }}'\n"
                            "data:\n"
                            "  to: '{{ data.customer }}'\n"
                            "  urgency: '{{ data.urgency }}'\n"
                            "  text: 'Hello {{ data.customer | default: \"there\" }}'\n"
                            "  fixed: [1, true]\n");
    Run(stage, MustMake(MakeEmitHandler(stage)));
    Publish(Input("e-1", R"({"customer":"Ada","urgency":4})"));
    std::vector<Event> out = Read("out", 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].type, "ticket.reply");
    EXPECT_EQ(out[0].subject, "reply to T-e-1");
    EXPECT_EQ(out[0].datacontenttype, "application/json");
    EXPECT_EQ(json::parse(out[0].data), json({{"to", "Ada"},
                                              {"urgency", 4},
                                              {"text", "Hello Ada"},
                                              {"fixed", json::array({1, true})}}));
    EXPECT_EQ(out[0].correlationid, "e-1");
    EXPECT_EQ(out[0].causationid, "e-1");
}

TEST_F(StageHandlerTest, EmitWithoutDataPassesTheInputDataOn) {
    StageSpec stage = Stage("fwd", "emit", "type: forwarded\n");
    Run(stage, MustMake(MakeEmitHandler(stage)));
    Publish(Input("e-1", R"({"a": [1, 2]})"));
    std::vector<Event> out = Read("out", 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].type, "forwarded");
    EXPECT_EQ(out[0].data, R"({"a":[1,2]})");
}

TEST_F(StageHandlerTest, EmitWithoutDataDeadLettersTextDataNamingTheStage) {
    StageSpec stage = Stage("fwd", "emit", "type: forwarded\n");
    Run(stage, MustMake(MakeEmitHandler(stage)));
    Publish(Input("e-5", "<xml/>", "application/xml"));
    std::vector<Event> dead = Read("fwd.dead-letter", 1);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_THAT(Extension(dead[0], kDeadLetterReason),
                HasSubstr("stage 'fwd': the data of event 'e-5' is not JSON (content type "
                          "'application/xml')"));
}

TEST(MakeEmitHandler, CompileErrorsAreReportedAtTheirPlace) {
    std::vector<Diagnostic> found;
    auto handler = MakeEmitHandler(Stage("reply", "emit",
                                         "subject: '{{ event.id'\n"
                                         "data: { a: '{{ data.x | shout }}' }\n"
                                         "extra: 1\n"),
                                   &found);
    ASSERT_FALSE(handler.ok());
    std::vector<std::string> got;
    for (const Diagnostic& d : found) got.push_back(d.where.ToString() + " " + d.message);
    EXPECT_THAT(got, ::testing::UnorderedElementsAre(
                         "p.yaml:10:7 stage 'reply': with: missing 'type'",
                         "p.yaml:10:16 stage 'reply': subject: at column 1: expected '}}' to "
                         "close '{{'",
                         "p.yaml:11:18 stage 'reply': data.a: at column 13: unknown filter "
                         "'shout' (known: default, upper, lower, trim, json, truncate, join, "
                         "length)",
                         "p.yaml:12:14 stage 'reply': extra: unknown key 'extra'; expected one "
                         "of type, data, subject"));
}

}  // namespace
}  // namespace eventloom::pipeline
