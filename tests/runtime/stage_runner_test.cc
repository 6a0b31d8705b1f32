// StageRunner over the embedded broker and the SQLite state store: delivery modes, retries,
// dead-lettering, flow control and shutdown.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "eventloom/stage.h"
#include "support/temp_dir.h"

namespace eventloom::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

Event MakeEvent(const std::string& id, const std::string& key = "", int priority = -1) {
    Event e;
    e.id = id;
    e.source = "test";
    e.type = "test.in";
    e.partitionkey = key;
    if (priority >= 0) e.priority = priority;
    e.data = id;
    e.has_data = true;
    return e;
}

class StageRunnerTest : public ::testing::Test {
protected:
    void SetUp() override {
        EmbeddedBrokerOptions b;
        b.dir = dir_.Sub("data");
        auto broker = OpenEmbeddedBroker(b);
        ASSERT_TRUE(broker.ok()) << broker.status().ToString();
        broker_ = std::move(broker).value();
        StateStoreOptions s;
        s.path = dir_.Sub("state.db");
        auto state = OpenSqliteStateStore(s);
        ASSERT_TRUE(state.ok()) << state.status().ToString();
        state_ = std::move(state).value();
        TopicOptions t;
        t.partitions = 2;
        t.segment_bytes = 1 << 20;
        t.max_record_bytes = 256 << 10;
        t.durability = Durability::kNever;
        ASSERT_TRUE(broker_->CreateTopic("in", t).ok());
        ASSERT_TRUE(broker_->CreateTopic("out", t).ok());
    }

    void TearDown() override {
        runner_.reset();
        broker_.reset();
    }

    StageOptions Options(const std::string& name = "stage") {
        StageOptions o;
        o.name = name;
        o.consumes = "in";
        o.retry.initial_delay = 10ms;
        o.retry.max_delay = 50ms;
        o.retry.max_attempts = 3;
        return o;
    }

    void Publish(const Event& e) { ASSERT_TRUE(broker_->Publish("in", e).ok()); }

    void Run(StageOptions options, StageHandler handler) {
        runner_ = std::make_unique<StageRunner>(broker_.get(), state_.get(), std::move(options),
                                                std::move(handler));
        ASSERT_TRUE(runner_->Start().ok());
    }

    // Waits (bounded) until `done` holds.
    bool Eventually(const std::function<bool()>& done, std::chrono::milliseconds patience = 20s) {
        auto deadline = std::chrono::steady_clock::now() + patience;
        while (!done()) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            std::this_thread::sleep_for(5ms);
        }
        return true;
    }

    // Every event in `topic`, read by a fresh group.
    std::vector<Event> ReadAll(const std::string& topic, size_t expect,
                               std::chrono::milliseconds patience = 10s) {
        ConsumerOptions o;
        o.topic = topic;
        o.group = "check-" + std::to_string(++checks_);
        auto c = broker_->Subscribe(o);
        EXPECT_TRUE(c.ok()) << c.status().ToString();
        std::vector<Event> out;
        auto deadline = std::chrono::steady_clock::now() + patience;
        while (c.ok() && std::chrono::steady_clock::now() < deadline) {
            auto batch = (*c)->Fetch(100, 100ms);
            if (!batch.ok()) break;
            for (auto& d : *batch) {
                out.push_back(*d.event);
                (*c)->Ack(d.tag).IgnoreError();
            }
            if (out.size() >= expect && batch->empty()) break;
        }
        return out;
    }

    std::map<std::string, std::string> Extensions(const Event& e) {
        return {e.extensions.begin(), e.extensions.end()};
    }

    TempDir dir_;
    std::unique_ptr<Broker> broker_;
    std::unique_ptr<StateStore> state_;
    std::unique_ptr<StageRunner> runner_;
    int checks_ = 0;
};

TEST_F(StageRunnerTest, HandlerOutputsAreDerivedAndPublished) {
    Event in = MakeEvent("a", "k");
    in.correlationid = "req-1";
    in.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    Publish(in);
    Run(Options(), [](StageContext& ctx) {
        Event out = ctx.Derive("test.out");
        out.data = "seen " + ctx.event().data;
        out.has_data = true;
        ctx.Emit("out", std::move(out));
        return Status::Ok();
    });
    auto out = ReadAll("out", 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].data, "seen a");
    EXPECT_EQ(out[0].causationid, "a");
    EXPECT_EQ(out[0].correlationid, "req-1");
    EXPECT_EQ(out[0].traceparent, in.traceparent);
    EXPECT_EQ(out[0].source, "eventloom/stage");
    EXPECT_TRUE(Eventually([&] { return runner_->stats().succeeded == 1; }));
}

TEST_F(StageRunnerTest, RetryableFailureIsRetriedUntilItSucceeds) {
    Publish(MakeEvent("a"));
    std::atomic<int> calls{0};
    Run(Options(), [&](StageContext& ctx) {
        if (++calls < 3) return UnavailableError("backend warming up");
        return Status::Ok();
    });
    ASSERT_TRUE(Eventually([&] { return runner_->stats().succeeded == 1; }));
    EXPECT_EQ(calls.load(), 3);
    EXPECT_EQ(runner_->stats().retried, 2);
}

TEST_F(StageRunnerTest, NonRetryableFailureIsDeadLetteredAtOnceWithTheReason) {
    Publish(MakeEvent("bad"));
    std::atomic<int> calls{0};
    Run(Options("classify"), [&](StageContext&) {
        ++calls;
        return InvalidArgumentError("field 'subject' is missing");
    });
    auto dead = ReadAll("classify.dead-letter", 1);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_EQ(dead[0].id, "bad");
    auto ext = Extensions(dead[0]);
    EXPECT_THAT(ext["deadletterreason"], HasSubstr("field 'subject' is missing"));
    EXPECT_EQ(ext["deadletterstage"], "classify");
    EXPECT_EQ(calls.load(), 1);
}

TEST_F(StageRunnerTest, ExhaustedRetriesAreDeadLettered) {
    Publish(MakeEvent("flaky"));
    std::atomic<int> calls{0};
    Run(Options(), [&](StageContext&) {
        ++calls;
        return UnavailableError("connection refused");
    });
    auto dead = ReadAll("stage.dead-letter", 1);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_THAT(Extensions(dead[0])["deadletterreason"], HasSubstr("gave up after 3 attempts"));
    EXPECT_EQ(calls.load(), 3);
}

TEST_F(StageRunnerTest, AtMostOnceDoesNotRetryAFailure) {
    Publish(MakeEvent("once"));
    std::atomic<int> calls{0};
    StageOptions o = Options();
    o.delivery = DeliveryMode::kAtMostOnce;
    Run(o, [&](StageContext&) {
        ++calls;
        return UnavailableError("down");
    });
    ASSERT_TRUE(Eventually([&] { return runner_->stats().failed == 1; }));
    std::this_thread::sleep_for(200ms);  // a retry, if there were one, would come in 10-50 ms
    EXPECT_EQ(calls.load(), 1);
    EXPECT_TRUE(ReadAll("stage.dead-letter", 0, 300ms).empty());
}

TEST_F(StageRunnerTest, EffectivelyOnceSkipsARedeliveredEvent) {
    Publish(MakeEvent("x"));
    std::atomic<int> calls{0};
    StageOptions o = Options();
    o.delivery = DeliveryMode::kEffectivelyOnce;
    Run(o, [&](StageContext& ctx) {
        ++calls;
        ctx.Emit("out", ctx.Derive("test.out"));
        EXPECT_NE(ctx.state(), nullptr);
        return ctx.state()->Put("counts", ctx.event().id, "1").status();
    });
    ASSERT_TRUE(Eventually([&] { return runner_->stats().succeeded == 1; }));
    // The same event again (as a redelivery after a crash would bring it).
    PublishOptions again;
    again.dedupe = false;
    ASSERT_TRUE(broker_->Publish("in", MakeEvent("x"), again).ok());
    ASSERT_TRUE(Eventually([&] { return runner_->stats().duplicates == 1; }));
    EXPECT_EQ(calls.load(), 1);
    EXPECT_EQ(ReadAll("out", 1).size(), 1u);
    auto entry = state_->Get("counts", "x");
    ASSERT_TRUE(entry.ok() && entry->has_value());
}

TEST_F(StageRunnerTest, EffectivelyOnceRollsBackAFailedHandler) {
    Publish(MakeEvent("y"));
    std::atomic<int> calls{0};
    StageOptions o = Options();
    o.delivery = DeliveryMode::kEffectivelyOnce;
    Run(o, [&](StageContext& ctx) {
        EXPECT_TRUE(ctx.state()->ListAppend("log", "attempt").ok());
        ctx.Emit("out", ctx.Derive("test.out"));
        if (++calls == 1) return UnavailableError("first attempt fails");
        return Status::Ok();
    });
    ASSERT_TRUE(Eventually([&] { return runner_->stats().succeeded == 1; }));
    EXPECT_EQ(*state_->ListLength("log"), 1);  // the failed attempt's write was rolled back
    EXPECT_EQ(ReadAll("out", 1).size(), 1u);
}

TEST_F(StageRunnerTest, EffectivelyOnceNeedsAStateStore) {
    StageOptions o = Options();
    o.delivery = DeliveryMode::kEffectivelyOnce;
    StageRunner runner(broker_.get(), nullptr, o, [](StageContext&) { return Status::Ok(); });
    EXPECT_EQ(runner.Start().code(), StatusCode::kFailedPrecondition);
}

TEST_F(StageRunnerTest, HigherPriorityIsHandledFirst) {
    for (int i = 0; i < 5; ++i) Publish(MakeEvent("low" + std::to_string(i), "k", 0));
    Publish(MakeEvent("urgent", "k", 9));
    std::mutex mu;
    std::vector<std::string> order;
    Run(Options(), [&](StageContext& ctx) {
        std::lock_guard<std::mutex> lock(mu);
        order.push_back(ctx.event().id);
        return Status::Ok();
    });
    ASSERT_TRUE(Eventually([&] { return runner_->stats().succeeded == 6; }));
    EXPECT_EQ(order.front(), "urgent");
}

TEST_F(StageRunnerTest, RequestRateLimitIsHonoured) {
    for (int i = 0; i < 6; ++i) Publish(MakeEvent("e" + std::to_string(i)));
    StageOptions o = Options();
    o.rate_limits.requests_per_second = 4;
    auto start = std::chrono::steady_clock::now();
    Run(o, [](StageContext&) { return Status::Ok(); });
    ASSERT_TRUE(Eventually([&] { return runner_->stats().succeeded == 6; }));
    // 4 per second with a burst of 4: the 6th cannot start before 0.5 s.
    EXPECT_GE(std::chrono::steady_clock::now() - start, 450ms);
}

TEST_F(StageRunnerTest, PoisonEventDoesNotHoldUpTheOthers) {
    Publish(MakeEvent("poison", "same"));
    for (int i = 0; i < 5; ++i) Publish(MakeEvent("ok" + std::to_string(i), "same"));
    Run(Options(), [](StageContext& ctx) {
        if (ctx.event().id == "poison") return UnavailableError("always");
        return Status::Ok();
    });
    ASSERT_TRUE(Eventually([&] { return runner_->stats().succeeded == 5; }));
    EXPECT_EQ(ReadAll("stage.dead-letter", 1).size(), 1u);
}

TEST_F(StageRunnerTest, OpenCircuitStopsTakingEvents) {
    for (int i = 0; i < 20; ++i) Publish(MakeEvent("e" + std::to_string(i)));
    CircuitBreakerOptions b;
    b.failure_threshold = 3;
    b.open_for = 60s;
    StageOptions o = Options();
    o.breaker = std::make_shared<CircuitBreaker>(b);
    o.retry.max_attempts = 100;
    std::atomic<int> calls{0};
    Run(o, [&](StageContext&) {
        ++calls;
        return UnavailableError("backend down");
    });
    ASSERT_TRUE(Eventually([&] { return o.breaker->state() == CircuitBreaker::State::kOpen; }));
    int at_open = calls.load();
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(calls.load(), at_open);  // nothing reaches the handler while open
    EXPECT_LE(at_open, 3);
}

TEST_F(StageRunnerTest, ExpiredDeadlineGoesToDeadLetter) {
    Event e = MakeEvent("late");
    e.deadline = "2020-01-01T00:00:00Z";
    Publish(e);
    std::atomic<int> calls{0};
    Run(Options(), [&](StageContext&) {
        ++calls;
        return Status::Ok();
    });
    auto dead = ReadAll("stage.dead-letter", 1);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_THAT(Extensions(dead[0])["deadletterreason"], HasSubstr("deadline"));
    EXPECT_EQ(calls.load(), 0);
}

TEST_F(StageRunnerTest, DebounceKeepsOnlyTheLatestEventOfAKey) {
    StageOptions o = Options();
    o.debounce.quiet = 200ms;
    std::mutex mu;
    std::vector<std::string> handled;
    // Published before the stage starts, so they arrive together whatever the machine's load.
    for (int i = 0; i < 5; ++i) Publish(MakeEvent("doc-v" + std::to_string(i), "doc-1"));
    Run(o, [&](StageContext& ctx) {
        std::lock_guard<std::mutex> lock(mu);
        handled.push_back(ctx.event().id);
        return Status::Ok();
    });
    ASSERT_TRUE(Eventually([&] { return runner_->stats().succeeded >= 1; }));
    std::this_thread::sleep_for(400ms);
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(handled.size(), 1u);
    EXPECT_EQ(handled[0], "doc-v4");
    EXPECT_EQ(runner_->stats().coalesced, 4);
}

TEST_F(StageRunnerTest, StopLetsRunningHandlersFinish) {
    Publish(MakeEvent("slow"));
    std::atomic<bool> started{false}, finished{false};
    Run(Options(), [&](StageContext&) {
        started = true;
        std::this_thread::sleep_for(200ms);
        finished = true;
        return Status::Ok();
    });
    ASSERT_TRUE(Eventually([&] { return started.load(); }));
    runner_->Stop(5s);
    EXPECT_TRUE(finished.load());
    EXPECT_EQ(runner_->stats().succeeded, 1);
}

TEST_F(StageRunnerTest, HandlerExceptionIsDeadLettered) {
    Publish(MakeEvent("boom"));
    Run(Options(), [](StageContext&) -> Status { throw std::runtime_error("kaboom"); });
    auto dead = ReadAll("stage.dead-letter", 1);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_THAT(Extensions(dead[0])["deadletterreason"], HasSubstr("kaboom"));
}

}  // namespace
}  // namespace eventloom::testing

namespace eventloom::testing {
namespace {

TEST_F(StageRunnerTest, MicroBatchesGroupEvents) {
    for (int i = 0; i < 10; ++i) Publish(MakeEvent("e" + std::to_string(i)));
    std::mutex mu;
    std::vector<size_t> sizes;
    StageOptions o = Options();
    o.batch.max_events = 4;
    o.batch.max_wait = 50ms;
    o.batch_handler = [&](std::span<StageContext*> batch) {
        std::lock_guard<std::mutex> lock(mu);
        sizes.push_back(batch.size());
        for (StageContext* ctx : batch) ctx->Emit("out", ctx->Derive("test.out"));
        return Status::Ok();
    };
    Run(o, [](StageContext&) { return InternalError("not used with batches"); });
    ASSERT_TRUE(Eventually([&] { return runner_->stats().succeeded == 10; }));
    std::lock_guard<std::mutex> lock(mu);
    size_t total = 0;
    for (size_t n : sizes) {
        EXPECT_LE(n, 4u);
        total += n;
    }
    EXPECT_EQ(total, 10u);
    EXPECT_LT(sizes.size(), 10u);  // grouped, not one by one
    EXPECT_EQ(ReadAll("out", 10).size(), 10u);
}

TEST_F(StageRunnerTest, FailedBatchRetriesEveryEventInIt) {
    for (int i = 0; i < 3; ++i) Publish(MakeEvent("e" + std::to_string(i)));
    std::atomic<int> calls{0};
    StageOptions o = Options();
    o.batch.max_events = 3;
    o.batch.max_wait = 100ms;
    o.batch_handler = [&](std::span<StageContext*> batch) {
        if (++calls == 1) return UnavailableError("bulk endpoint busy");
        return Status::Ok();
    };
    Run(o, [](StageContext&) { return Status::Ok(); });
    ASSERT_TRUE(Eventually([&] { return runner_->stats().succeeded == 3; }));
    EXPECT_EQ(runner_->stats().retried, 3);
}

}  // namespace
}  // namespace eventloom::testing

namespace eventloom::testing {
namespace {

TEST_F(StageRunnerTest, EffectivelyOnceCompareAndSetConflictRetriesTheEvent) {
    Publish(MakeEvent("cas"));
    std::atomic<int> calls{0};
    StageOptions o = Options();
    o.delivery = DeliveryMode::kEffectivelyOnce;
    Run(o, [&](StageContext& ctx) {
        auto current = ctx.state()->Get("owners", "doc");
        if (!current.ok()) return current.status();
        int64_t revision = current->has_value() ? (*current)->revision : 0;
        EVENTLOOM_RETURN_IF_ERROR(
            ctx.state()->CompareAndSet("owners", "doc", revision, "stage").status());
        if (++calls == 1) {
            // Another writer gets in between the handler and its commit.
            EXPECT_TRUE(state_->Put("owners", "doc", "someone else").ok());
        }
        return Status::Ok();
    });
    ASSERT_TRUE(Eventually([&] { return runner_->stats().succeeded == 1; }));
    EXPECT_EQ(calls.load(), 2);
    EXPECT_EQ(runner_->stats().retried, 1);
    auto entry = state_->Get("owners", "doc");
    ASSERT_TRUE(entry.ok() && entry->has_value());
    EXPECT_EQ((*entry)->value, "stage");
}

TEST_F(StageRunnerTest, EffectivelyOnceHandlersRunSideBySide) {
    for (int i = 0; i < 8; ++i)
        Publish(MakeEvent("e" + std::to_string(i), "k" + std::to_string(i)));
    std::atomic<int> running{0}, most{0};
    StageOptions o = Options();
    o.delivery = DeliveryMode::kEffectivelyOnce;
    o.workers = 4;
    Run(o, [&](StageContext& ctx) {
        int now = ++running;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(100ms);  // a slow backend
        --running;
        return ctx.state()->Put("done", ctx.event().id, "1").status();
    });
    ASSERT_TRUE(Eventually([&] { return runner_->stats().succeeded == 8; }));
    EXPECT_GE(most.load(), 2);  // the store's lock is not held while handlers run
}

}  // namespace
}  // namespace eventloom::testing

namespace eventloom::testing {
namespace {

TEST_F(StageRunnerTest, ReportedWeightCorrectsTheTokenEstimate) {
    // 600 tokens per minute, each event estimated at 500 but really costing 10: with the
    // correction all three go at once; without it the second would wait most of a minute.
    for (int i = 0; i < 3; ++i) Publish(MakeEvent("e" + std::to_string(i)));
    StageOptions o = Options();
    o.rate_limits.tokens_per_minute = 600;
    o.weight = [](const Event&) { return 500.0; };
    Run(o, [](StageContext& ctx) {
        ctx.ReportWeight(10);
        return Status::Ok();
    });
    EXPECT_TRUE(Eventually([&] { return runner_->stats().succeeded == 3; }, 10s));
}

}  // namespace
}  // namespace eventloom::testing
