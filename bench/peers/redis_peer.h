// Redis streams as a benchmark peer: each Run* function starts its own redis-server on a free
// loopback port (`redis-server --port PORT --bind 127.0.0.1 --save "" --appendonly no --dir DIR`,
// or `--appendonly yes --appendfsync always` when `fsync_always` is set), talks to it through
// hiredis, and stops it and removes the directory before returning, on success and on error.
//
// Durability: without AOF, an XADD reply means "in memory". With `appendfsync always`, Redis
// writes and fsyncs the AOF once per event-loop iteration, before sending that iteration's
// replies. An iteration handles what one read of the socket returned (at most 16 KiB per
// client), so a pipeline shares fsyncs in groups of about 55 XADDs of 256 B or 15 of 1 KiB,
// not one fsync per pipeline: expect 1 KiB to be several times slower than 256 B there.
//
// The functions block for the whole run and are not meant to run concurrently with each other.
// Every phase is bounded by its message count and by `time_limit`; running past the limit
// returns DeadlineExceeded.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "bench_util.h"
#include "eventloom/status.h"

namespace eventloom::bench {

struct RedisXaddOptions {
    size_t message_bytes = 256;
    int64_t messages = 200000;
    // XADDs per pipeline round: `pipeline` redisAppendCommand calls, then as many replies.
    // 1 means one XADD at a time.
    int pipeline = 256;
    bool fsync_always = false;
    // Where the server's directory (and AOF) is created ("" = $TMPDIR or /tmp).
    std::string parent_dir;
    std::chrono::seconds time_limit{120};
};

struct RedisXaddResult {
    // Acknowledged XADDs per second, from the first command sent to the last reply read.
    double per_s = 0;
    int64_t added = 0;
};

// XADD `messages` entries (one field "d" holding the payload) into stream "bench".
Result<RedisXaddResult> RunRedisXadd(const RedisXaddOptions& options);

struct RedisConsumeOptions {
    size_t message_bytes = 256;
    int64_t messages = 200000;
    // Entries per XREADGROUP (COUNT).
    int batch = 100;
    std::string parent_dir;                // as in RedisXaddOptions
    std::chrono::seconds time_limit{120};  // per phase (prefill, consume)
};

struct RedisConsumeResult {
    // Entries read with XREADGROUP and acked with XACK per second. Each batch is one XREADGROUP
    // round trip followed by one XACK round trip carrying all the batch's ids.
    double consume_per_s = 0;
    int64_t consumed = 0;
};

// Prefills stream "bench" with pipelined XADDs (no AOF), creates consumer group "bench_group",
// then drains it. Only the drain is timed.
Result<RedisConsumeResult> RunRedisConsume(const RedisConsumeOptions& options);

}  // namespace eventloom::bench
