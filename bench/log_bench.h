// `eventloom bench log`: durable publish into the embedded log against NATS JetStream and Redis
// streams, in the same run on the same disk.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace eventloom::bench {

struct LogBenchOptions {
    std::vector<size_t> sizes{256, 1024};
    int64_t messages = 200000;    // per size, for each throughput figure
    int window = 256;             // publishes in flight (eventloom and JetStream alike)
    int64_t sync_samples = 2000;  // one-at-a-time publishes for the latency figures
    bool peers = true;            // also measure JetStream and Redis
    std::string dir;              // parent of the data directories ("" = $TMPDIR or /tmp)
};

// Prints a table, then one JSON object as the last line. Returns the exit code.
int RunLogBench(const LogBenchOptions& options);

}  // namespace eventloom::bench
