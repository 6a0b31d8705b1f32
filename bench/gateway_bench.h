// `eventloom bench gateway`: what the HTTP bridge adds to a model call.
//
// A pipeline with one llm stage over the echo test backend (it answers at once, so the model's
// own time does not hide the bridge's) runs behind the gateway, as `eventloom serve` runs it.
// An open-loop load generator on the same machine sends POST /v1/chat/completions at a fixed
// `rate` over `connections` keep-alive connections; each request's latency counts from the
// moment it was due, so a stall delays the requests behind it and shows in the tail
// (no coordinated omission). Three figures, one after another in the same run:
//   direct       the echo backend called in process: what a caller without the bridge pays;
//   HTTP floor   GET /healthz at the same rate: the HTTP server and the load generator alone;
//   bridge       HTTP -> event on the request topic -> LLM stage -> completion event -> HTTP,
//                once with the request and reply topics at `durability: never` and once at
//                `durability: always` (each event fsynced before it is acknowledged).
// added = bridge - direct, at p50 and p99.
#pragma once

#include <string>

namespace eventloom::bench {

struct GatewayBenchOptions {
    std::string dir;  // parent of the temporary directory ("" = $TMPDIR or /tmp)
    double rate = 2000;
    double seconds = 10;
    int connections = 32;
    int direct_calls = 20000;
};

int RunGatewayBench(const GatewayBenchOptions& options);

}  // namespace eventloom::bench
