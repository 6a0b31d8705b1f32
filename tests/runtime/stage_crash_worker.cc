// The worker of the effectively-once crash test: an effectively-once stage that turns each
// event of "in" into one event on "out", until it is killed.
//
//   stage_crash_worker DATA_DIR STATE_DB
#include <cstdio>
#include <thread>

#include "eventloom/stage.h"

using namespace eventloom;

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s DATA_DIR STATE_DB\n", argv[0]);
        return 2;
    }
    EmbeddedBrokerOptions b;
    b.dir = argv[1];
    auto broker = OpenEmbeddedBroker(b);
    if (!broker.ok()) {
        std::fprintf(stderr, "broker: %s\n", broker.status().ToString().c_str());
        return 1;
    }
    StateStoreOptions s;
    s.path = argv[2];
    auto state = OpenSqliteStateStore(s);
    if (!state.ok()) {
        std::fprintf(stderr, "state: %s\n", state.status().ToString().c_str());
        return 1;
    }
    StageOptions o;
    o.name = "convert";
    o.consumes = "in";
    o.delivery = DeliveryMode::kEffectivelyOnce;
    o.workers = 2;
    o.max_in_flight = 32;
    StageRunner runner(broker->get(), state->get(), o, [](StageContext& ctx) {
        Event out = ctx.Derive("crash.out");
        out.data = ctx.event().id;
        out.has_data = true;
        ctx.Emit("out", std::move(out));
        return ctx.state()->Put("converted", ctx.event().id, "1").status();
    });
    Status started = runner.Start();
    if (!started.ok()) {
        std::fprintf(stderr, "start: %s\n", started.ToString().c_str());
        return 1;
    }
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}
