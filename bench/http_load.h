// An open-loop HTTP/1.1 load generator for benchmarks on loopback.
//
// Requests are due at a fixed rate (request i at start + i / rate) and spread round-robin over
// `connections` keep-alive connections, one thread each. A connection sends a request when it
// is due, or at once when its previous response came late; the latency of a request is counted
// from when it was due to when its whole response was read, so queueing behind a slow
// response is part of the figure. Responses must carry Content-Length (the gateway's
// non-streaming answers do); a response with `Connection: close` reconnects.
//
// Runs on the calling thread until every request is answered or `timeout` passes. Not
// thread-safe; one run at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "eventloom/status.h"

namespace eventloom::bench {

struct HttpLoadOptions {
    int port = 0;  // on 127.0.0.1
    std::string method = "GET";
    std::string path = "/";
    std::string body;  // sent with Content-Type: application/json when not empty
    double rate = 1000;
    double seconds = 5;
    int connections = 32;
    std::chrono::seconds timeout{60};
};

struct HttpLoadResult {
    std::vector<double> latencies_us;  // of 2xx responses
    int64_t sent = 0;
    int64_t ok = 0;      // 2xx
    int64_t failed = 0;  // other statuses, broken connections
    std::string first_error;
    double seconds = 0;  // from the first due time to the last response
};

Result<HttpLoadResult> RunHttpLoad(const HttpLoadOptions& options);

}  // namespace eventloom::bench
