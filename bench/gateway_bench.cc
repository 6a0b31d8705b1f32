#include "gateway_bench.h"

#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "gateway/gateway.h"
#include "gateway/pipeline_gateway.h"
#include "http_load.h"
#include "llm/echo/echo_backend.h"
#include "pipeline/config/pipeline_spec.h"
#include "pipeline/pipeline.h"

namespace eventloom::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr std::string_view kChatBody =
    R"({"model":"echo","messages":[{"role":"user","content":"where is my order"}],)"
    R"("max_tokens":16})";

// The pipeline the bridge runs: `eventloom serve` on this file gives the same path.
std::string PipelineYaml(const std::string& data_dir, std::string_view durability) {
    return fmt::format(R"(version: 1
name: bench-gateway
broker: {{ dir: "{}" }}
topics:
  chat.requests: {{ partitions: 1, durability: {} }}
  chat.replies: {{ partitions: 1, durability: {} }}
models:
  echo: {{ backend: echo, slots: 64 }}
gateway:
  listen: 127.0.0.1:0
  max_backlog: 0
  openai:
    - model: echo
      topic: chat.requests
stages:
  - name: chat
    consumes: chat.requests
    uses: llm
    with: {{ model: echo }}
    emits: chat.replies
)",
                       data_dir, durability, durability);
}

// The echo backend called in process, one call at a time: the cost without the bridge.
LatencyStats RunDirect(int calls) {
    auto backend = llm::MakeEchoBackend();
    LlmRequest request;
    request.messages = {{"user", "where is my order"}};
    request.max_tokens = 16;
    std::vector<double> samples;
    samples.reserve(static_cast<size_t>(calls));
    for (int i = 0; i < calls; ++i) {
        const auto start = SteadyClock::now();
        auto result = backend->Generate(request);
        samples.push_back(MicrosBetween(start, SteadyClock::now()));
        if (!result.ok()) break;
    }
    return Summarize(std::move(samples));
}

struct BridgeRun {
    LatencyStats floor;   // GET /healthz
    LatencyStats bridge;  // POST /v1/chat/completions
    double rps = 0;
    int64_t failed = 0;
    std::string first_error;
};

Result<BridgeRun> RunBridge(const GatewayBenchOptions& o, std::string_view durability,
                            bool with_floor) {
    EVENTLOOM_ASSIGN_OR_RETURN(TempDir dir, TempDir::Create("eventloom-bench-gateway", o.dir));
    EVENTLOOM_ASSIGN_OR_RETURN(
        pipeline::PipelineSpec spec,
        pipeline::ParsePipeline(PipelineYaml(dir.path() + "/data", durability), "bench.yaml",
                                dir.path()));
    EVENTLOOM_ASSIGN_OR_RETURN(auto p, pipeline::Pipeline::Open(std::move(spec), {}));
    EVENTLOOM_RETURN_IF_ERROR(p->Start());
    EVENTLOOM_ASSIGN_OR_RETURN(gateway::GatewayOptions go, gateway::GatewayOptionsFor(*p));
    EVENTLOOM_ASSIGN_OR_RETURN(auto gw,
                               gateway::Gateway::Start(p->broker(), p->jobs(), std::move(go)));

    HttpLoadOptions load;
    load.port = gw->port();
    load.rate = o.rate;
    load.connections = o.connections;
    BridgeRun run;

    // A short warm-up, not counted: connections, pages, the stage's first fetches.
    load.method = "POST";
    load.path = "/v1/chat/completions";
    load.body = std::string(kChatBody);
    load.seconds = 1;
    EVENTLOOM_RETURN_IF_ERROR(RunHttpLoad(load).status());

    if (with_floor) {
        HttpLoadOptions floor = load;
        floor.method = "GET";
        floor.path = "/healthz";
        floor.body.clear();
        floor.seconds = o.seconds;
        EVENTLOOM_ASSIGN_OR_RETURN(HttpLoadResult f, RunHttpLoad(floor));
        run.floor = Summarize(std::move(f.latencies_us));
    }

    load.seconds = o.seconds;
    EVENTLOOM_ASSIGN_OR_RETURN(HttpLoadResult b, RunHttpLoad(load));
    run.rps = RatePerSecond(static_cast<double>(b.ok), b.seconds);
    run.failed = b.failed;
    run.first_error = b.first_error;
    run.bridge = Summarize(std::move(b.latencies_us));

    gw->Stop(std::chrono::seconds(2));
    p->Stop(std::chrono::seconds(2));
    return run;
}

double Ms(double us) { return us / 1000.0; }

}  // namespace

int RunGatewayBench(const GatewayBenchOptions& o) {
    std::cerr << "bench gateway: direct calls of the echo backend\n";
    const LatencyStats direct = RunDirect(o.direct_calls);

    std::cerr << "bench gateway: " << o.rate << " requests/s for " << o.seconds
              << " s, durability never\n";
    auto fast = RunBridge(o, "never", true);
    std::cerr << "bench gateway: the same, durability always\n";
    auto durable = RunBridge(o, "always", false);

    Table table;
    table.SetHeader({"figure", "p50", "p99", "max", "requests/s", "failed"});
    table.AddRow({"direct (echo backend in process)", FormatMicros(direct.p50_us),
                  FormatMicros(direct.p99_us), FormatMicros(direct.max_us), "", ""});
    auto row = [&](const std::string& name, const Result<BridgeRun>& r, bool floor) {
        if (!r.ok()) {
            table.AddRow({name, CellOr(r.status(), "")});
            return;
        }
        const LatencyStats& s = floor ? r->floor : r->bridge;
        table.AddRow({name, FormatMicros(s.p50_us), FormatMicros(s.p99_us), FormatMicros(s.max_us),
                      floor ? "" : FormatRate(r->rps), floor ? "" : std::to_string(r->failed)});
    };
    row("HTTP floor (GET /healthz)", fast, true);
    row("bridge, durability never", fast, false);
    row("bridge, durability always", durable, false);
    table.Print(std::cout);
    for (const auto* r : {&fast, &durable}) {
        if (r->ok() && !(*r)->first_error.empty()) {
            std::cout << "first failure: " << (*r)->first_error << "\n";
        }
    }

    nlohmann::json out;
    out["bench"] = "gateway";
    out["target_rps"] = o.rate;
    out["direct_p50_us"] = direct.p50_us;
    out["direct_p99_us"] = direct.p99_us;
    if (fast.ok()) {
        out["rps"] = fast->rps;
        out["failed"] = fast->failed;
        out["added_p50_ms"] = Ms(fast->bridge.p50_us - direct.p50_us);
        out["added_p99_ms"] = Ms(fast->bridge.p99_us - direct.p99_us);
        out["http_floor_p50_ms"] = Ms(fast->floor.p50_us);
        out["http_floor_p99_ms"] = Ms(fast->floor.p99_us);
    } else {
        out["error"] = fast.status().ToString();
    }
    if (durable.ok()) {
        out["durable_rps"] = durable->rps;
        out["durable_added_p50_ms"] = Ms(durable->bridge.p50_us - direct.p50_us);
        out["durable_added_p99_ms"] = Ms(durable->bridge.p99_us - direct.p99_us);
    }
    std::cout << out.dump() << std::endl;
    return fast.ok() && fast->failed == 0 ? 0 : 1;
}

}  // namespace eventloom::bench
