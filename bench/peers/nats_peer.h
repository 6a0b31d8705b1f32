// NATS JetStream as a benchmark peer: each Run* function starts its own nats-server
// (`nats-server -a 127.0.0.1 -p PORT -js -sd DIR`) on a free loopback port with a fresh store
// directory, talks to it through the NATS C client (libnats), and stops it and removes the
// directory before returning, on success and on error.
//
// The stream "BENCH" takes subjects "bench.>" with file storage; benchmarks publish to
// "bench.events". Durability: JetStream 2.9 (Debian's nats-server 2.9.10) never fsyncs per
// message; it syncs its files on a 60 s timer (`sync_interval` arrived in 2.10). Its publish
// acks mean "in the server's page cache", not "on disk", and do not survive power loss: compare
// its figures with eventloom's unsynced mode, or say so next to them.
//
// The functions block for the whole run and are not meant to run concurrently with each other
// (they would share the two cores they measure). Every phase is bounded by its message count and
// by `time_limit`; running past the limit returns DeadlineExceeded.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "bench_util.h"
#include "eventloom/status.h"

namespace eventloom::bench {

struct JetStreamPublishOptions {
    size_t message_bytes = 256;
    int64_t async_messages = 200000;
    // Async publishes in flight (jsOptions.PublishAsync.MaxPending).
    int window = 256;
    int64_t sync_messages = 2000;
    // Where the server's store directory is created ("" = $TMPDIR or /tmp). Put it on the disk
    // eventloom's log uses, for a fair comparison.
    std::string parent_dir;
    std::chrono::seconds time_limit{120};  // per phase
};

struct JetStreamPublishResult {
    // Acked async publishes per second, from the first publish to the last ack.
    double async_per_s = 0;
    int64_t async_acked = 0;
    int64_t async_failed = 0;  // negative acks or ack timeouts; not counted in async_per_s
    // One js_Publish at a time: publish to ack, in microseconds.
    LatencyStats sync_latency;
    double sync_per_s = 0;
};

// Async publish throughput, then sync publish latency, on one server and stream.
Result<JetStreamPublishResult> RunJetStreamPublish(const JetStreamPublishOptions& options);

struct JetStreamConsumeOptions {
    size_t message_bytes = 256;
    int64_t messages = 200000;
    // Messages per natsSubscription_Fetch.
    int fetch_batch = 100;
    std::string parent_dir;                // as in JetStreamPublishOptions
    std::chrono::seconds time_limit{120};  // per phase (prefill, consume)
};

struct JetStreamConsumeResult {
    // Messages fetched and acked per second by a durable pull consumer (explicit ack, each
    // message acked with natsMsg_Ack), from the first fetch until the server has the last ack.
    double consume_per_s = 0;
    int64_t consumed = 0;
};

// Prefills the stream with `messages` (async publish), then drains it with a durable pull
// consumer. Only the drain is timed. Afterwards (untimed) the consumer's info must show no
// pending and no unacked messages, or the run fails.
Result<JetStreamConsumeResult> RunJetStreamConsume(const JetStreamConsumeOptions& options);

}  // namespace eventloom::bench
