// `eventloom bench delivery`: consuming from the embedded broker (fetch + ack) against NATS
// JetStream pull consumers and Redis stream consumer groups, and the latency of an in-process
// stage hop (publish -> handler -> ack) at a steady rate.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace eventloom::bench {

struct DeliveryBenchOptions {
    std::vector<size_t> sizes{256, 1024};
    int64_t messages = 200000;  // per size, for the consume figures
    int fetch_batch = 100;
    double hop_rate = 10000;  // events per second for the hop latency
    double hop_seconds = 3;
    bool peers = true;
    std::string dir;
};

int RunDeliveryBench(const DeliveryBenchOptions& options);

}  // namespace eventloom::bench
