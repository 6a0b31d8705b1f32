// eventloom_peers_bench: measures the peers eventloom's benchmarks compare against (the disk's
// fsync floor, NATS JetStream, Redis streams) at 256 B and 1 KiB, and prints one table.
//
//   eventloom_peers_bench [--messages N] [--dir PARENT] [--only fsync|nats|redis]
//
// --messages scales every workload (default 200000; the one-at-a-time runs use N/100, at least
// 200). --dir is where the servers' stores and the fsync files go (default $TMPDIR or /tmp).
// Exits 1 if any measurement failed (its row shows the error).
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "bench_util.h"
#include "peers/fsync_floor.h"
#include "peers/nats_peer.h"
#include "peers/redis_peer.h"

namespace eventloom::bench {
namespace {

struct Flags {
    int64_t messages = 200000;
    std::string dir;
    std::string only;
};

bool ParseFlags(int argc, char** argv, Flags& flags) {
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "--messages" && has_value) {
            flags.messages = std::strtoll(argv[++i], nullptr, 10);
        } else if (arg == "--dir" && has_value) {
            flags.dir = argv[++i];
        } else if (arg == "--only" && has_value) {
            flags.only = argv[++i];
        } else {
            std::cerr << "usage: " << argv[0]
                      << " [--messages N] [--dir PARENT] [--only fsync|nats|redis]\n";
            return false;
        }
    }
    return flags.messages > 0;
}

// Collects result rows: peer, measurement, size, rate, p50, p99, max.
class Report {
public:
    Report() {
        table_.SetHeader({"peer", "measurement", "size", "rate", "p50", "p99", "max"});
        table_.SetAlignment(1, Table::Align::kLeft);
    }

    void Rate(std::string peer, std::string what, size_t bytes, double per_s) {
        table_.AddRow({std::move(peer), std::move(what), FormatBytes(bytes), FormatRate(per_s)});
    }

    void Latency(std::string peer, std::string what, size_t bytes, const LatencyStats& stats,
                 double per_s) {
        table_.AddRow({std::move(peer), std::move(what), FormatBytes(bytes), FormatRate(per_s),
                       FormatMicros(stats.p50_us), FormatMicros(stats.p99_us),
                       FormatMicros(stats.max_us)});
    }

    void Error(std::string peer, std::string what, size_t bytes, const Status& status) {
        table_.AddRow({std::move(peer), std::move(what), FormatBytes(bytes), "error"});
        errors_.push_back(status.ToString());
    }

    // Prints progress to stderr so a long run shows where it is.
    static void Progress(std::string_view peer, std::string_view what, size_t bytes) {
        std::cerr << "running " << peer << " " << what << " " << FormatBytes(bytes) << "\n";
    }

    bool Print(std::ostream& out) const {
        table_.Print(out);
        for (const auto& e : errors_) out << "error: " << e << "\n";
        return errors_.empty();
    }

private:
    Table table_;
    std::vector<std::string> errors_;
};

void RunFsync(const Flags& flags, size_t bytes, Report& report) {
    Report::Progress("disk", "fdatasync", bytes);
    std::string dir = flags.dir;
    if (dir.empty()) {
        const char* tmp = std::getenv("TMPDIR");
        dir = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
    }
    auto floor = MeasureFsyncFloor(dir, bytes, 2000);
    if (!floor.ok()) {
        report.Error("disk", "write + fdatasync", bytes, floor.status());
        return;
    }
    auto rate = [](const LatencyStats& s) { return s.mean_us > 0 ? 1e6 / s.mean_us : 0; };
    report.Latency("disk", "overwrite preallocated + fdatasync", bytes, floor->overwrite,
                   rate(floor->overwrite));
    report.Latency("disk", "append + fdatasync", bytes, floor->append, rate(floor->append));
}

void RunNats(const Flags& flags, size_t bytes, Report& report) {
    Report::Progress("nats", "jetstream publish", bytes);
    JetStreamPublishOptions publish;
    publish.message_bytes = bytes;
    publish.async_messages = flags.messages;
    publish.sync_messages = std::max<int64_t>(200, flags.messages / 100);
    publish.parent_dir = flags.dir;
    if (auto r = RunJetStreamPublish(publish); r.ok()) {
        report.Rate("nats js", "async publish, 256 in flight", bytes, r->async_per_s);
        report.Latency("nats js", "sync publish", bytes, r->sync_latency, r->sync_per_s);
    } else {
        report.Error("nats js", "publish", bytes, r.status());
    }

    Report::Progress("nats", "jetstream consume", bytes);
    JetStreamConsumeOptions consume;
    consume.message_bytes = bytes;
    consume.messages = flags.messages;
    consume.parent_dir = flags.dir;
    if (auto r = RunJetStreamConsume(consume); r.ok()) {
        report.Rate("nats js", "pull fetch 100 + ack each", bytes, r->consume_per_s);
    } else {
        report.Error("nats js", "pull fetch 100 + ack each", bytes, r.status());
    }
}

void RunRedis(const Flags& flags, size_t bytes, Report& report) {
    struct XaddCase {
        std::string what;
        int pipeline;
        bool fsync_always;
        int64_t messages;
    };
    const int64_t one_at_a_time = std::max<int64_t>(200, flags.messages / 100);
    const std::vector<XaddCase> cases = {
        {"xadd pipeline 256, no aof", 256, false, flags.messages},
        {"xadd pipeline 256, aof fsync always", 256, true, flags.messages},
        {"xadd one at a time, no aof", 1, false, one_at_a_time},
        {"xadd one at a time, aof fsync always", 1, true, one_at_a_time},
    };
    for (const auto& c : cases) {
        Report::Progress("redis", c.what, bytes);
        RedisXaddOptions options;
        options.message_bytes = bytes;
        options.messages = c.messages;
        options.pipeline = c.pipeline;
        options.fsync_always = c.fsync_always;
        options.parent_dir = flags.dir;
        if (auto r = RunRedisXadd(options); r.ok()) {
            report.Rate("redis", c.what, bytes, r->per_s);
        } else {
            report.Error("redis", c.what, bytes, r.status());
        }
    }

    Report::Progress("redis", "xreadgroup", bytes);
    RedisConsumeOptions consume;
    consume.message_bytes = bytes;
    consume.messages = flags.messages;
    consume.parent_dir = flags.dir;
    if (auto r = RunRedisConsume(consume); r.ok()) {
        report.Rate("redis", "xreadgroup 100 + xack batch", bytes, r->consume_per_s);
    } else {
        report.Error("redis", "xreadgroup 100 + xack batch", bytes, r.status());
    }
}

int Main(int argc, char** argv) {
    Flags flags;
    if (!ParseFlags(argc, argv, flags)) return 2;

    const std::vector<std::pair<std::string, std::function<void(const Flags&, size_t, Report&)>>>
        peers = {{"fsync", RunFsync}, {"nats", RunNats}, {"redis", RunRedis}};
    Report report;
    for (const auto& [name, run] : peers) {
        if (!flags.only.empty() && flags.only != name) continue;
        for (size_t bytes : {size_t{256}, size_t{1024}}) run(flags, bytes, report);
    }
    return report.Print(std::cout) ? 0 : 1;
}

}  // namespace
}  // namespace eventloom::bench

int main(int argc, char** argv) { return eventloom::bench::Main(argc, argv); }
