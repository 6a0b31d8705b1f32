#include "log_bench.h"

#include <deque>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bench_json.h"
#include "bench_util.h"
#include "common/file.h"
#include "eventloom/event.h"
#include "eventloom/log.h"
#include "peers/fsync_floor.h"
#include "peers/nats_peer.h"
#include "peers/redis_peer.h"

namespace eventloom::bench {
namespace {

// An encoded event of exactly `size` bytes: a realistic envelope padded with data.
std::string MakeRecord(size_t size) {
    Event e;
    e.id = "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a6";
    e.source = "bench";
    e.type = "bench.event";
    e.has_data = true;
    std::string record = EncodeEvent(e);
    if (record.size() < size) {
        e.data.assign(size - record.size(), 'x');
        record = EncodeEvent(e);
        // Length varints may have grown by a byte; trim the data to land on `size`.
        while (record.size() > size && !e.data.empty()) {
            e.data.pop_back();
            record = EncodeEvent(e);
        }
    }
    return record;
}

struct EventloomResult {
    double durable_per_s = 0;
    LatencyStats sync;
    LatencyStats floor;  // bare write + fdatasync, interleaved with `sync`
};

Status PrepareFloorFile(const std::string& path) {
    EVENTLOOM_ASSIGN_OR_RETURN(auto file, FileSystem::Default()->Open(path, OpenMode::kReadWrite));
    EVENTLOOM_RETURN_IF_ERROR(file->Preallocate(0, 64ull << 20));
    return file->Sync();
}

Result<EventloomResult> RunEventloom(const LogBenchOptions& o, size_t size) {
    EVENTLOOM_ASSIGN_OR_RETURN(TempDir dir, TempDir::Create("eventloom-bench-log", o.dir));
    LogOptions log_options;
    log_options.dir = dir.path() + "/log";
    EVENTLOOM_ASSIGN_OR_RETURN(auto log, Log::Open(log_options));
    TopicOptions topic_options;
    topic_options.durability = Durability::kAlways;
    topic_options.segment_bytes = 256ull << 20;
    EVENTLOOM_ASSIGN_OR_RETURN(Topic * topic, log->CreateTopic("bench", topic_options));
    std::string record = MakeRecord(size);
    EventloomResult result;

    // Durable publish with a window of appends in flight: each waits for its fdatasync.
    std::deque<RecordPosition> in_flight;
    auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < o.messages; ++i) {
        if (static_cast<int>(in_flight.size()) >= o.window) {
            EVENTLOOM_RETURN_IF_ERROR(topic->WaitDurable(in_flight.front()));
            in_flight.pop_front();
        }
        EVENTLOOM_ASSIGN_OR_RETURN(RecordPosition pos, topic->AppendTo(PartitionId(0), record));
        in_flight.push_back(pos);
    }
    if (!in_flight.empty()) EVENTLOOM_RETURN_IF_ERROR(topic->WaitDurable(in_flight.back()));
    result.durable_per_s = RatePerSecond(static_cast<double>(o.messages),
                                         SecondsBetween(start, std::chrono::steady_clock::now()));

    // One publish at a time: the latency a lone producer sees. Each publish is paired with a
    // bare write + fdatasync of the same size into a zero-filled file on the same disk, taken
    // right after it, so that the disk's floor is measured under the same conditions.
    std::string floor_path = dir.path() + "/floor";
    EVENTLOOM_RETURN_IF_ERROR(PrepareFloorFile(floor_path));
    EVENTLOOM_ASSIGN_OR_RETURN(auto floor_file,
                               FileSystem::Default()->Open(floor_path, OpenMode::kReadWrite));
    std::vector<double> latencies, floor;
    latencies.reserve(static_cast<size_t>(o.sync_samples));
    floor.reserve(static_cast<size_t>(o.sync_samples));
    std::string raw(record.size() + 24, 'r');
    for (int64_t i = 0; i < o.sync_samples; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        EVENTLOOM_ASSIGN_OR_RETURN(RecordPosition pos, topic->PublishTo(PartitionId(0), record));
        (void)pos;
        auto t1 = std::chrono::steady_clock::now();
        EVENTLOOM_RETURN_IF_ERROR(floor_file->WriteAt(static_cast<uint64_t>(i) * raw.size(), raw));
        EVENTLOOM_RETURN_IF_ERROR(floor_file->Sync());
        auto t2 = std::chrono::steady_clock::now();
        latencies.push_back(MicrosBetween(t0, t1));
        floor.push_back(MicrosBetween(t1, t2));
    }
    result.sync = Summarize(std::move(latencies));
    result.floor = Summarize(std::move(floor));
    return result;
}

}  // namespace

int RunLogBench(const LogBenchOptions& o) {
    Table table;
    table.SetHeader({"size", "system", "measure", "result"});
    table.SetAlignment(3, Table::Align::kRight);
    nlohmann::json by_size = nlohmann::json::object();
    int failures = 0;

    for (size_t size : o.sizes) {
        std::string sz = std::to_string(size) + " B";
        nlohmann::json j;
        std::cerr << "bench log: " << sz << ": disk fsync floor\n";
        auto floor = MeasureFsyncFloor(o.dir.empty() ? "/tmp" : o.dir, size, 1000);
        if (floor.ok()) {
            table.AddRow(
                {sz, "disk", "write + fdatasync, growing file", FormatLatency(floor->append)});
            j["fsync_append_p50_us"] = floor->append.p50_us;
        }

        std::cerr << "bench log: " << sz << ": eventloom\n";
        auto ours = RunEventloom(o, size);
        if (!ours.ok()) {
            std::cerr << "eventloom: " << ours.status().ToString() << "\n";
            ++failures;
            continue;
        }
        table.AddRow({sz, "eventloom (always, group commit)",
                      "durable publish, " + std::to_string(o.window) + " in flight",
                      FormatRate(ours->durable_per_s)});
        table.AddRow(
            {sz, "eventloom (always)", "publish one at a time", FormatLatency(ours->sync)});
        table.AddRow({sz, "disk (interleaved with the above)",
                      "write + fdatasync, zero-filled file", FormatLatency(ours->floor)});
        j["fsync_p50_us"] = ours->floor.p50_us;
        j["sync_publish_over_fsync_p50_us"] = ours->sync.p50_us - ours->floor.p50_us;
        j["durable_publish_per_s"] = ours->durable_per_s;
        j["sync_publish_p50_us"] = ours->sync.p50_us;
        j["sync_publish_p99_us"] = ours->sync.p99_us;

        if (o.peers) {
            std::cerr << "bench log: " << sz << ": NATS JetStream\n";
            JetStreamPublishOptions js;
            js.message_bytes = size;
            js.async_messages = o.messages;
            js.window = o.window;
            js.sync_messages = o.sync_samples;
            js.parent_dir = o.dir;
            auto jet = RunJetStreamPublish(js);
            table.AddRow({sz, "JetStream 2.9 (file, no fsync)",
                          "async publish, " + std::to_string(o.window) + " in flight",
                          CellOr(jet.status(), jet.ok() ? FormatRate(jet->async_per_s) : "")});
            table.AddRow({sz, "JetStream 2.9 (file, no fsync)", "publish one at a time",
                          CellOr(jet.status(), jet.ok() ? FormatLatency(jet->sync_latency) : "")});
            if (jet.ok()) {
                j["jetstream_async_publish_per_s"] = jet->async_per_s;
                j["jetstream_sync_publish_p50_us"] = jet->sync_latency.p50_us;
                j["ratio_vs_jetstream"] = ours->durable_per_s / jet->async_per_s;
            }

            std::cerr << "bench log: " << sz << ": Redis streams\n";
            RedisXaddOptions rx;
            rx.message_bytes = size;
            rx.messages = o.messages;
            rx.pipeline = o.window;
            rx.parent_dir = o.dir;
            auto redis = RunRedisXadd(rx);
            table.AddRow({sz, "Redis 7 (no AOF)", "XADD, pipeline of " + std::to_string(o.window),
                          CellOr(redis.status(), redis.ok() ? FormatRate(redis->per_s) : "")});
            rx.fsync_always = true;
            auto redis_fsync = RunRedisXadd(rx);
            table.AddRow({sz, "Redis 7 (AOF, appendfsync always)",
                          "XADD, pipeline of " + std::to_string(o.window),
                          CellOr(redis_fsync.status(),
                                 redis_fsync.ok() ? FormatRate(redis_fsync->per_s) : "")});
            if (redis.ok()) {
                j["redis_xadd_per_s"] = redis->per_s;
                j["ratio_vs_redis"] = ours->durable_per_s / redis->per_s;
            }
            if (redis_fsync.ok()) j["redis_xadd_fsync_always_per_s"] = redis_fsync->per_s;
        }
        by_size[std::to_string(size)] = j;
    }

    table.Print(std::cout);
    nlohmann::json out = {{"bench", "log"}, {"messages", o.messages}, {"window", o.window}};
    PrintResultLine(std::move(out), by_size, o.sizes);  // headline: the first size (256 B)
    return failures == 0 ? 0 : 1;
}

}  // namespace eventloom::bench
