#include "delivery_bench.h"

#include <sys/prctl.h>

#include <atomic>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "bench_json.h"
#include "bench_util.h"
#include "eventloom/broker.h"
#include "eventloom/stage.h"
#include "peers/nats_peer.h"
#include "peers/redis_peer.h"

namespace eventloom::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

Event MakeEvent(size_t size, int64_t i) {
    Event e;
    e.id = "bench-" + std::to_string(i);
    e.source = "bench";
    e.type = "bench.event";
    std::string probe = EncodeEvent(e);
    e.data.assign(size > probe.size() + 8 ? size - probe.size() - 8 : 1, 'x');
    e.has_data = true;
    return e;
}

TopicOptions BenchTopic() {
    TopicOptions t;
    t.durability = Durability::kNever;  // consumption and hand-off are measured, not fsync
    t.segment_bytes = 256ull << 20;
    return t;
}

Result<double> RunConsume(const DeliveryBenchOptions& o, size_t size) {
    EVENTLOOM_ASSIGN_OR_RETURN(TempDir dir, TempDir::Create("eventloom-bench-delivery", o.dir));
    EmbeddedBrokerOptions bo;
    bo.dir = dir.path() + "/data";
    EVENTLOOM_ASSIGN_OR_RETURN(auto broker, OpenEmbeddedBroker(bo));
    EVENTLOOM_RETURN_IF_ERROR(broker->CreateTopic("bench", BenchTopic()));

    // Prefill in batches, with distinct ids as real events have.
    std::vector<Event> batch;
    for (int64_t i = 0; i < o.messages; ++i) {
        batch.push_back(MakeEvent(size, i));
        if (batch.size() == 1000 || i + 1 == o.messages) {
            PublishOptions p;
            p.dedupe = false;
            EVENTLOOM_RETURN_IF_ERROR(broker->PublishBatch("bench", batch, p).status());
            batch.clear();
        }
    }

    ConsumerOptions c;
    c.topic = "bench";
    c.group = "bench";
    c.max_outstanding = 4096;
    EVENTLOOM_ASSIGN_OR_RETURN(auto consumer, broker->Subscribe(c));
    int64_t consumed = 0;
    auto start = SteadyClock::now();
    auto give_up = start + std::chrono::seconds(120);
    while (consumed < o.messages && SteadyClock::now() < give_up) {
        EVENTLOOM_ASSIGN_OR_RETURN(
            auto deliveries,
            consumer->Fetch(static_cast<size_t>(o.fetch_batch), std::chrono::milliseconds(100)));
        for (const Delivery& d : deliveries) {
            EVENTLOOM_RETURN_IF_ERROR(consumer->Ack(d.tag));  // each, as the peers do
        }
        consumed += static_cast<int64_t>(deliveries.size());
    }
    EVENTLOOM_RETURN_IF_ERROR(consumer->Commit());
    auto seconds = SecondsBetween(start, SteadyClock::now());
    if (consumed < o.messages) return DeadlineExceededError("consume did not finish in 120 s");
    return RatePerSecond(static_cast<double>(consumed), seconds);
}

struct HopResult {
    LatencyStats to_handler;  // publish called -> handler invoked
    LatencyStats to_ack;      // publish called -> delivery acked
    LatencyStats publish;     // publish called -> publish returned (written, durability never)
    double achieved_rate = 0;
};

Result<HopResult> RunHop(const DeliveryBenchOptions& o) {
    EVENTLOOM_ASSIGN_OR_RETURN(TempDir dir, TempDir::Create("eventloom-bench-hop", o.dir));
    EmbeddedBrokerOptions bo;
    bo.dir = dir.path() + "/data";
    EVENTLOOM_ASSIGN_OR_RETURN(auto broker, OpenEmbeddedBroker(bo));
    // Small segments: zero-filling a large spare segment mid-run would compete for the cores.
    TopicOptions hop_topic = BenchTopic();
    hop_topic.segment_bytes = 16 << 20;
    EVENTLOOM_RETURN_IF_ERROR(broker->CreateTopic("hop", hop_topic));

    auto total = static_cast<int64_t>(o.hop_rate * o.hop_seconds);
    std::vector<SteadyClock::time_point> sent(static_cast<size_t>(total));
    std::vector<double> to_handler(static_cast<size_t>(total), -1);
    std::vector<double> to_ack(static_cast<size_t>(total), -1);
    std::atomic<int64_t> acked{0};

    auto index_of = [](const Event& e) { return std::stoll(e.id.substr(4)); };
    StageOptions so;
    so.name = "hop";
    so.consumes = "hop";
    so.on_settled = [&](const Delivery& d, const Status&) {
        int64_t i = index_of(*d.event);
        to_ack[static_cast<size_t>(i)] =
            MicrosBetween(sent[static_cast<size_t>(i)], SteadyClock::now());
        ++acked;
    };
    StageRunner runner(broker.get(), nullptr, so, [&](StageContext& ctx) {
        int64_t i = index_of(ctx.event());
        to_handler[static_cast<size_t>(i)] =
            MicrosBetween(sent[static_cast<size_t>(i)], SteadyClock::now());
        return Status::Ok();
    });
    EVENTLOOM_RETURN_IF_ERROR(runner.Start());

    Event e;
    e.source = "bench";
    e.type = "bench.hop";
    e.time = "2026-12-03T00:00:00Z";  // producers stamp their events
    e.data.assign(200, 'x');
    e.has_data = true;
    std::vector<double> pub_lat;
    // A steady rate needs timely wake-ups: 1 us timer slack instead of the default 50 us.
    ::prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    auto interval = std::chrono::nanoseconds(static_cast<int64_t>(1e9 / o.hop_rate));
    auto start = SteadyClock::now();
    auto next = start;
    for (int64_t i = 0; i < total; ++i) {
        // Sleep until just before the send time, then poll: a steady rate without keeping a
        // core busy (which would slow the consumer on a small machine).
        auto early = next - std::chrono::microseconds(60);
        if (SteadyClock::now() < early) std::this_thread::sleep_until(early);
        while (SteadyClock::now() < next) {
        }
        e.id = "hop-" + std::to_string(i);
        sent[static_cast<size_t>(i)] = SteadyClock::now();
        EVENTLOOM_RETURN_IF_ERROR(broker->Publish("hop", e).status());
        pub_lat.push_back(MicrosBetween(sent[static_cast<size_t>(i)], SteadyClock::now()));
        next += interval;
    }
    double achieved =
        RatePerSecond(static_cast<double>(total), SecondsBetween(start, SteadyClock::now()));
    auto give_up = SteadyClock::now() + std::chrono::seconds(30);
    while (acked < total && SteadyClock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    runner.Stop(std::chrono::seconds(5));
    if (acked < total) return DeadlineExceededError("hop: not every event was handled in time");

    HopResult r;
    r.publish = Summarize(std::move(pub_lat));
    r.to_handler = Summarize(to_handler);
    r.to_ack = Summarize(to_ack);
    r.achieved_rate = achieved;
    return r;
}

}  // namespace

int RunDeliveryBench(const DeliveryBenchOptions& o) {
    Table table;
    table.SetHeader({"size", "system", "measure", "result"});
    nlohmann::json by_size = nlohmann::json::object();
    int failures = 0;
    // The hop runs first, before any peer server has started or stopped on this machine.
    std::cerr << "bench delivery: stage hop at " << o.hop_rate << "/s\n";
    auto hop = RunHop(o);
    std::string rate = FormatRate(o.hop_rate) + " steady";
    table.AddRow({"200 B", "eventloom stage hop", "publish -> handler, " + rate,
                  CellOr(hop.status(), hop.ok() ? FormatLatency(hop->to_handler) : "")});
    table.AddRow({"200 B", "eventloom stage hop", "publish -> acked, " + rate,
                  CellOr(hop.status(), hop.ok() ? FormatLatency(hop->to_ack) : "")});
    table.AddRow({"200 B", "eventloom publish", "call -> return, " + rate,
                  CellOr(hop.status(), hop.ok() ? FormatLatency(hop->publish) : "")});
    if (!hop.ok()) ++failures;

    for (size_t size : o.sizes) {
        std::string sz = std::to_string(size) + " B";
        std::string fetch = "fetch " + std::to_string(o.fetch_batch) + " + ack each";
        nlohmann::json j;
        std::cerr << "bench delivery: " << sz << ": eventloom\n";
        auto ours = RunConsume(o, size);
        table.AddRow({sz, "eventloom (embedded)", fetch,
                      CellOr(ours.status(), ours.ok() ? FormatRate(*ours) : "")});
        if (!ours.ok()) {
            ++failures;
            continue;
        }
        j["consume_per_s"] = *ours;
        if (o.peers) {
            std::cerr << "bench delivery: " << sz << ": NATS JetStream\n";
            JetStreamConsumeOptions js;
            js.message_bytes = size;
            js.messages = o.messages;
            js.fetch_batch = o.fetch_batch;
            js.parent_dir = o.dir;
            auto jet = RunJetStreamConsume(js);
            table.AddRow({sz, "JetStream 2.9 pull consumer", fetch,
                          CellOr(jet.status(), jet.ok() ? FormatRate(jet->consume_per_s) : "")});
            if (jet.ok()) {
                j["jetstream_consume_per_s"] = jet->consume_per_s;
                j["ratio_vs_jetstream"] = *ours / jet->consume_per_s;
            }
            std::cerr << "bench delivery: " << sz << ": Redis streams\n";
            RedisConsumeOptions rc;
            rc.message_bytes = size;
            rc.messages = o.messages;
            rc.batch = o.fetch_batch;
            rc.parent_dir = o.dir;
            auto redis = RunRedisConsume(rc);
            table.AddRow(
                {sz, "Redis 7 consumer group",
                 "XREADGROUP " + std::to_string(o.fetch_batch) + " + XACK",
                 CellOr(redis.status(), redis.ok() ? FormatRate(redis->consume_per_s) : "")});
            if (redis.ok()) {
                j["redis_consume_per_s"] = redis->consume_per_s;
                j["ratio_vs_redis"] = *ours / redis->consume_per_s;
            }
        }
        by_size[std::to_string(size)] = j;
    }

    table.Print(std::cout);
    nlohmann::json out = {{"bench", "delivery"}, {"messages", o.messages}};
    if (hop.ok()) {
        out["hop_p50_us"] = hop->to_handler.p50_us;
        out["hop_p99_us"] = hop->to_handler.p99_us;
        out["hop_ack_p50_us"] = hop->to_ack.p50_us;
        out["hop_ack_p99_us"] = hop->to_ack.p99_us;
        out["hop_rate_per_s"] = hop->achieved_rate;
        out["hop_publish_p50_us"] = hop->publish.p50_us;
        out["hop_publish_p99_us"] = hop->publish.p99_us;
    }
    PrintResultLine(std::move(out), by_size, o.sizes);
    return failures == 0 ? 0 : 1;
}

}  // namespace eventloom::bench
