// Embedding eventloom: open the embedded broker, run a stage over a topic, publish events and
// read what the stage emitted. Build target: eventloom_example_stage.
//
//   eventloom_example_stage [DATA_DIR]
#include <cstdio>
#include <filesystem>
#include <thread>

#include "eventloom/stage.h"

using namespace eventloom;

int main(int argc, char** argv) {
    std::string dir = argc > 1 ? argv[1] : "eventloom-example-data";
    std::filesystem::remove_all(dir);

    // 1. The broker: the embedded log in `dir`; the state store for effectively-once delivery.
    EmbeddedBrokerOptions broker_options;
    broker_options.dir = dir + "/log";
    auto broker = OpenEmbeddedBroker(broker_options);
    if (!broker.ok()) {
        std::fprintf(stderr, "broker: %s\n", broker.status().ToString().c_str());
        return 1;
    }
    StateStoreOptions state_options;
    state_options.path = dir + "/state.db";
    auto state = OpenSqliteStateStore(state_options);
    if (!state.ok()) {
        std::fprintf(stderr, "state: %s\n", state.status().ToString().c_str());
        return 1;
    }
    for (const char* topic : {"tickets", "tickets.triaged"}) {
        TopicOptions t;
        t.partitions = 2;
        t.segment_bytes = 1 << 20;
        t.max_record_bytes = 64 << 10;
        if (Status s = (*broker)->CreateTopic(topic, t); !s.ok()) {
            std::fprintf(stderr, "topic %s: %s\n", topic, s.ToString().c_str());
            return 1;
        }
    }

    // 2. A stage: each ticket becomes a triaged ticket; invalid ones go to the dead-letter topic.
    StageOptions stage;
    stage.name = "triage";
    stage.consumes = "tickets";
    stage.delivery = DeliveryMode::kEffectivelyOnce;
    stage.workers = 2;
    StageRunner runner(broker->get(), state->get(), stage, [](StageContext& ctx) {
        if (ctx.event().data.empty()) return InvalidArgumentError("ticket has no text");
        Event out = ctx.Derive("ticket.triaged");
        bool urgent = ctx.event().data.find("down") != std::string::npos;
        out.data = std::string(urgent ? "urgent: " : "normal: ") + ctx.event().data;
        out.has_data = true;
        ctx.Emit("tickets.triaged", std::move(out));
        return Status::Ok();
    });
    if (Status s = runner.Start(); !s.ok()) {
        std::fprintf(stderr, "stage: %s\n", s.ToString().c_str());
        return 1;
    }

    // 3. Publish a few tickets, keyed by customer so each customer's stay in order.
    const char* texts[] = {"Login page is down", "Invoice question", "", "API down since 9:00"};
    for (int i = 0; i < 4; ++i) {
        Event e;
        e.id = "ticket-" + std::to_string(i);
        e.source = "example";
        e.type = "ticket.created";
        e.partitionkey = "customer-" + std::to_string(i % 2);
        e.data = texts[i];
        e.has_data = true;
        if (auto r = (*broker)->Publish("tickets", e); !r.ok()) {
            std::fprintf(stderr, "publish: %s\n", r.status().ToString().c_str());
            return 1;
        }
    }

    // 4. Read the stage's output as another consumer group would.
    ConsumerOptions reader;
    reader.topic = "tickets.triaged";
    reader.group = "printer";
    auto consumer = (*broker)->Subscribe(reader);
    if (!consumer.ok()) return 1;
    int seen = 0;
    for (int round = 0; round < 100 && seen < 3; ++round) {
        auto batch = (*consumer)->Fetch(10, std::chrono::milliseconds(100));
        if (!batch.ok()) return 1;
        for (const Delivery& d : *batch) {
            std::printf("%s (from %s): %s\n", d.event->type.c_str(), d.event->causationid.c_str(),
                        d.event->data.c_str());
            (*consumer)->Ack(d.tag).IgnoreError();
            ++seen;
        }
    }
    consumer->reset();
    runner.Stop();
    StageStats stats = runner.stats();
    std::printf("triage: %lld succeeded, %lld dead-lettered\n",
                static_cast<long long>(stats.succeeded),
                static_cast<long long>(stats.dead_lettered));
    return seen == 3 && stats.dead_lettered == 1 ? 0 : 1;
}
