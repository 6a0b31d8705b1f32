// The LLM stage over the embedded broker with the llama backend on the tiny test model.
#include "llm/llm_stage.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "llm/echo/echo_backend.h"
#include "llm/llama/llama_backend.h"
#include "support/ports.h"
#include "support/temp_dir.h"

namespace eventloom::llm {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
using nlohmann::json;

// Test double: forwards to a real backend and records how many calls ran at once.
class CountingBackend : public LlmBackend {
public:
    explicit CountingBackend(std::shared_ptr<LlmBackend> inner) : inner_(std::move(inner)) {}
    std::string_view kind() const override { return inner_->kind(); }
    std::string model() const override { return inner_->model(); }
    Result<LlmResult> Generate(const LlmRequest& r, const TokenCallback& on_token,
                               std::stop_token stop) override {
        int now = ++running_;
        int seen = max_running_.load();
        while (now > seen && !max_running_.compare_exchange_weak(seen, now)) {
        }
        auto result = inner_->Generate(r, on_token, stop);
        --running_;
        return result;
    }
    Result<int> CountPromptTokens(const LlmRequest& r) override {
        return inner_->CountPromptTokens(r);
    }
    LlmLoad Load() const override { return inner_->Load(); }
    int max_running() const { return max_running_; }

private:
    std::shared_ptr<LlmBackend> inner_;
    std::atomic<int> running_{0};
    std::atomic<int> max_running_{0};
};

class LlmStageTest : public ::testing::Test {
protected:
    void SetUp() override {
        EmbeddedBrokerOptions b;
        b.dir = dir_.Sub("data");
        auto broker = OpenEmbeddedBroker(b);
        ASSERT_TRUE(broker.ok()) << broker.status().ToString();
        broker_ = std::move(broker).value();
        TopicOptions t;
        t.partitions = 1;
        t.segment_bytes = 1 << 20;
        t.max_record_bytes = 256 << 10;
        t.durability = Durability::kNever;
        for (auto topic : {"requests", "completions", "chunks"}) {
            ASSERT_TRUE(broker_->CreateTopic(topic, t).ok());
        }
    }

    void TearDown() override {
        stage_.reset();
        broker_.reset();
    }

    static std::shared_ptr<LlmBackend> Llama(int slots) {
        LlamaOptions o;
        o.model_path = EVENTLOOM_TINY_MODEL;
        o.slots = slots;
        o.context_per_slot = 256;
        o.threads = 1;  // see llama_backend_test.cc
        auto backend = OpenLlama(o);
        EXPECT_TRUE(backend.ok()) << backend.status().ToString();
        return backend.ok() ? std::shared_ptr<LlmBackend>(std::move(*backend)) : nullptr;
    }

    LlmStageOptions Options() {
        LlmStageOptions o;
        o.stage.name = "llm";
        o.stage.consumes = "requests";
        o.stage.retry.initial_delay = 10ms;
        o.stage.retry.max_attempts = 2;
        o.emits = "completions";
        o.chunks_topic = "chunks";
        o.chunk_tokens = 8;
        o.chunk_interval = std::chrono::hours(1);  // chunks by token count only
        return o;
    }

    void Publish(const std::string& id, const json& body) {
        Event e;
        e.id = id;
        e.source = "test";
        e.type = "llm.request";
        e.datacontenttype = "application/json";
        e.data = body.dump();
        e.has_data = true;
        ASSERT_TRUE(broker_->Publish("requests", e).ok());
    }

    // Reads `expect` events from `topic` (bounded wait).
    std::vector<Event> ReadAll(const std::string& topic, size_t expect) {
        ConsumerOptions c;
        c.topic = topic;
        c.group = "reader-" + std::to_string(readers_++);
        auto deadline = std::chrono::steady_clock::now() + 60s;
        // A dead-letter topic exists once its first event is written.
        auto consumer = broker_->Subscribe(c);
        while (!consumer.ok() && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(20ms);
            consumer = broker_->Subscribe(c);
        }
        EXPECT_TRUE(consumer.ok()) << consumer.status().ToString();
        std::vector<Event> out;
        if (!consumer.ok()) return out;
        while (out.size() < expect && std::chrono::steady_clock::now() < deadline) {
            auto batch = (*consumer)->Fetch(100, 100ms);
            if (!batch.ok()) break;
            for (auto& d : *batch) {
                out.push_back(*d.event);
                (*consumer)->Ack(d.tag).IgnoreError();
            }
        }
        return out;
    }

    static json Request(const std::string& prompt, int max_tokens) {
        return json{{"prompt", prompt},
                    {"max_tokens", max_tokens},
                    {"temperature", 0},
                    {"ignore_eos", true}};
    }

    testing::TempDir dir_;
    std::unique_ptr<Broker> broker_;
    std::unique_ptr<LlmStage> stage_;
    int readers_ = 0;
};

TEST_F(LlmStageTest, CompletionsAndCoalescedChunks) {
    stage_ = std::make_unique<LlmStage>(broker_.get(), nullptr, Options(), Llama(4));
    ASSERT_TRUE(stage_->Start().ok());
    for (int i = 0; i < 6; ++i)
        Publish("req-" + std::to_string(i), Request("hello " + std::to_string(i), 20));

    auto completions = ReadAll("completions", 6);
    ASSERT_EQ(completions.size(), 6u);
    std::map<std::string, std::string> text_of;
    for (const auto& c : completions) {
        EXPECT_EQ(c.type, "llm.completion");
        auto body = json::parse(c.data);
        EXPECT_EQ(body["usage"]["completion_tokens"], 20);
        EXPECT_EQ(body["finish_reason"], "length");
        EXPECT_EQ(body["model"], "eventloom-test-tiny");
        ASSERT_FALSE(c.causationid.empty());
        text_of[c.causationid] = body["text"];
    }
    // 20 tokens: the first at once, then 8, 8, and the last 3.
    auto chunks = ReadAll("chunks", 24);
    ASSERT_EQ(chunks.size(), 24u);
    std::map<std::string, std::string> streamed;
    std::map<std::string, int> tokens;
    for (const auto& c : chunks) {
        auto body = json::parse(c.data);
        streamed[c.causationid] += body["text"].get<std::string>();
        tokens[c.causationid] += body["tokens"].get<int>();
        EXPECT_EQ(body["attempt"], 1);
    }
    for (const auto& [id, text] : text_of) {
        EXPECT_EQ(streamed[id], text) << id;
        EXPECT_EQ(tokens[id], 20) << id;
    }
    EXPECT_EQ(stage_->stats().completion_tokens, 120);
}

TEST_F(LlmStageTest, TakesEventsOnlyWhenTheModelHasRoom) {
    auto counting = std::make_shared<CountingBackend>(Llama(2));
    LlmStageOptions o = Options();
    o.queued_requests = 0;
    o.chunks_topic.clear();
    stage_ = std::make_unique<LlmStage>(broker_.get(), nullptr, o, counting);
    ASSERT_TRUE(stage_->Start().ok());
    for (int i = 0; i < 10; ++i)
        Publish("req-" + std::to_string(i), Request("room " + std::to_string(i), 12));
    ASSERT_EQ(ReadAll("completions", 10).size(), 10u);
    EXPECT_LE(counting->max_running(), 2);
    EXPECT_GE(counting->max_running(), 1);
}

TEST_F(LlmStageTest, BadRequestsGoToTheDeadLetterTopicWithTheReason) {
    stage_ = std::make_unique<LlmStage>(broker_.get(), nullptr, Options(), Llama(2));
    ASSERT_TRUE(stage_->Start().ok());
    Publish("no-prompt", json{{"max_tokens", 3}});
    Publish("bad-type", json{{"prompt", "x"}, {"max_tokens", "many"}});
    std::string long_prompt;
    for (int i = 0; i < 300; ++i) long_prompt += "word" + std::to_string(i) + " ";
    Publish("too-long", Request(long_prompt, 3));
    Publish("fine", Request("fine", 3));

    auto dead = ReadAll("llm.dead-letter", 3);
    ASSERT_EQ(dead.size(), 3u);
    std::map<std::string, std::string> reason;
    for (const auto& d : dead) {
        for (const auto& [k, v] : d.extensions) {
            if (k == kDeadLetterReason) reason[d.id] = v;
        }
    }
    EXPECT_THAT(reason["no-prompt"], HasSubstr("prompt"));
    EXPECT_THAT(reason["bad-type"], HasSubstr("max_tokens"));
    EXPECT_THAT(reason["too-long"], HasSubstr("context"));
    EXPECT_EQ(ReadAll("completions", 1).size(), 1u);
}

TEST_F(LlmStageTest, AModelThatCannotBeLoadedDeadLettersEventsAndTheStageKeepsRunning) {
    LlmStageOptions o = Options();
    std::atomic<int> opens{0};
    std::string missing = dir_.Sub("no-such-model.gguf");
    stage_ = std::make_unique<LlmStage>(broker_.get(), nullptr, o,
                                        [&]() -> Result<std::shared_ptr<LlmBackend>> {
                                            ++opens;
                                            LlamaOptions l;
                                            l.model_path = missing;
                                            auto b = OpenLlama(l);
                                            if (!b.ok()) return b.status();
                                            return std::shared_ptr<LlmBackend>(std::move(*b));
                                        });
    ASSERT_TRUE(stage_->Start().ok());
    Publish("a", Request("a", 2));
    Publish("b", Request("b", 2));
    auto dead = ReadAll("llm.dead-letter", 2);
    ASSERT_EQ(dead.size(), 2u);
    for (const auto& d : dead) {
        std::string reason;
        for (const auto& [k, v] : d.extensions) {
            if (k == kDeadLetterReason) reason = v;
        }
        EXPECT_THAT(reason, HasSubstr("no-such-model.gguf"));
    }
    // One attempt to open at start; the failure is remembered, not retried per event.
    EXPECT_EQ(opens.load(), 1);
    EXPECT_EQ(stage_->stats().stage.dead_lettered, 2);
}

TEST_F(LlmStageTest, AnUnreachableServerOpensTheCircuit) {
    OpenAiOptions oo;
    oo.base_url = "http://127.0.0.1:" + std::to_string(testing::UnusedLoopbackPort()) + "/v1";
    oo.max_retries = 0;
    auto server = OpenOpenAiBackend(oo);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    CircuitBreakerOptions co;
    co.failure_threshold = 3;
    co.open_for = std::chrono::hours(1);
    auto breaker = std::make_shared<CircuitBreaker>(co);
    LlmStageOptions o = Options();
    o.stage.breaker = breaker;
    o.stage.retry.max_attempts = 100;
    o.stage.retry.initial_delay = 1ms;
    o.stage.retry.max_delay = 5ms;
    stage_ = std::make_unique<LlmStage>(broker_.get(), nullptr, o,
                                        std::shared_ptr<LlmBackend>(std::move(*server)));
    ASSERT_TRUE(stage_->Start().ok());
    Publish("a", Request("a", 2));
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (breaker->state() != CircuitBreaker::State::kOpen &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(breaker->state(), CircuitBreaker::State::kOpen);
    // Retried, not dead-lettered: the server may come back.
    EXPECT_EQ(stage_->stats().stage.dead_lettered, 0);
    EXPECT_GE(stage_->stats().stage.retried, 2);
}

TEST_F(LlmStageTest, RequestAndOutputHooksShapeWhatTheStageReadsAndWrites) {
    LlmStageOptions o = Options();
    o.chunks_topic.clear();
    o.output_type = "ticket.classified";
    o.make_request = [](const Event& e) -> Result<LlmRequest> {
        if (e.data.empty()) return InvalidArgumentError("no ticket text");
        LlmRequest r;
        r.messages.push_back({"user", "classify: " + e.data});
        r.max_tokens = 16;
        return r;
    };
    o.make_output = [](const Event& in, const LlmResult& result,
                       std::string_view model) -> Result<std::string> {
        return json{{"ticket", in.data}, {"label", result.text}, {"model", model}}.dump();
    };
    stage_ = std::make_unique<LlmStage>(broker_.get(), nullptr, o, MakeEchoBackend());
    ASSERT_TRUE(stage_->Start().ok());
    Event e;
    e.id = "t-1";
    e.source = "test";
    e.type = "ticket.created";
    e.data = "printer on fire";
    e.has_data = true;
    ASSERT_TRUE(broker_->Publish("requests", e).ok());
    Event empty = e;
    empty.id = "t-2";
    empty.data.clear();
    ASSERT_TRUE(broker_->Publish("requests", empty).ok());

    auto out = ReadAll("completions", 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].type, "ticket.classified");
    EXPECT_EQ(out[0].causationid, "t-1");
    auto body = json::parse(out[0].data);
    EXPECT_EQ(body["ticket"], "printer on fire");
    EXPECT_EQ(body["label"], "classify: printer on fire");
    EXPECT_EQ(body["model"], "echo");
    auto dead = ReadAll("llm.dead-letter", 1);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_EQ(dead[0].id, "t-2");
    bool has_reason = false;
    for (const auto& [k, v] : dead[0].extensions) {
        if (k == kDeadLetterReason) {
            has_reason = true;
            EXPECT_THAT(v, HasSubstr("no ticket text"));
        }
    }
    EXPECT_TRUE(has_reason);
}

}  // namespace
}  // namespace eventloom::llm
