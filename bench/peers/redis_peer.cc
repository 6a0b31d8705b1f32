#include "peers/redis_peer.h"

#include <fmt/format.h>
#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <algorithm>
#include <memory>
#include <string_view>
#include <vector>

namespace eventloom::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kStream = "bench";
constexpr std::string_view kGroup = "bench_group";
constexpr std::string_view kConsumer = "bench_consumer";
constexpr auto kServerStartTimeout = std::chrono::seconds(10);
// A reply that takes longer than this fails the run instead of hanging it.
constexpr timeval kReplyTimeout = {10, 0};

struct ContextDeleter {
    void operator()(redisContext* c) const { redisFree(c); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextDeleter>;

struct ReplyDeleter {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

Status ContextError(std::string_view what, const redisContext* c) {
    // REDIS_ERR_IO / REDIS_ERR_EOF: the server went away or timed out.
    return UnavailableError(fmt::format("redis {}: {}", what, c->errstr));
}

// ---------------------------------------------------------------------------------------------
// The server.

// A redis-server on a free loopback port. Destruction stops the server first, then removes its
// directory (members are destroyed in reverse order).
struct RedisServer {
    TempDir dir;
    ChildProcess process;
    int port;
};

Result<RedisServer> StartRedisServer(const std::string& parent_dir, bool fsync_always) {
    EVENTLOOM_ASSIGN_OR_RETURN(TempDir dir, TempDir::Create("eventloom-redis-", parent_dir));
    const int port = FreeTcpPort();
    if (port <= 0) return UnavailableError("no free tcp port on 127.0.0.1");

    std::vector<std::string> argv = {
        "redis-server", "--port",  std::to_string(port), "--bind", "127.0.0.1", "--save", "",
        "--dir",        dir.path()};
    if (fsync_always) {
        argv.insert(argv.end(), {"--appendonly", "yes", "--appendfsync", "always"});
    } else {
        argv.insert(argv.end(), {"--appendonly", "no"});
    }
    EVENTLOOM_ASSIGN_OR_RETURN(ChildProcess process,
                               ChildProcess::Start(std::move(argv), dir.path() + "/redis.log"));
    EVENTLOOM_RETURN_IF_ERROR(process.WaitForPort(port, kServerStartTimeout));
    return RedisServer{std::move(dir), std::move(process), port};
}

// ---------------------------------------------------------------------------------------------
// The client.

Result<ContextPtr> Connect(const RedisServer& server) {
    const timeval connect_timeout = {5, 0};
    ContextPtr c(redisConnectWithTimeout("127.0.0.1", server.port, connect_timeout));
    if (c == nullptr) return UnavailableError("redis connect: out of memory");
    if (c->err != 0) return ContextError(fmt::format("connect port {}", server.port), c.get());
    if (redisSetTimeout(c.get(), kReplyTimeout) != REDIS_OK) {
        return ContextError("set timeout", c.get());
    }
    return c;
}

// Sends one command given as binary-safe arguments and reads its reply.
Result<ReplyPtr> Command(redisContext* c, const std::vector<std::string_view>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    for (auto arg : args) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
    }
    ReplyPtr reply(static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lengths.data())));
    if (reply == nullptr) return ContextError(args.front(), c);
    if (reply->type == REDIS_REPLY_ERROR) {
        return InternalError(fmt::format("redis {}: {}", args.front(), reply->str));
    }
    return reply;
}

Status CheckTimeLimit(Clock::time_point deadline, std::string_view phase, int64_t done,
                      int64_t total) {
    if (Clock::now() < deadline) return Status::Ok();
    return DeadlineExceededError(
        fmt::format("redis {}: time limit reached after {} of {} entries", phase, done, total));
}

// XADDs `count` entries in rounds of `pipeline`: append the round's commands (hiredis writes
// them out on the first redisGetReply), then read the round's replies.
Status XaddPipelined(redisContext* c, const std::string& payload, int64_t count, int pipeline,
                     Clock::time_point deadline) {
    // kStream views a literal, so data() is NUL-terminated; hiredis uses the lengths anyway.
    const char* argv[] = {"XADD", kStream.data(), "*", "d", payload.data()};
    const size_t lengths[] = {4, kStream.size(), 1, 1, payload.size()};

    for (int64_t done = 0; done < count;) {
        EVENTLOOM_RETURN_IF_ERROR(CheckTimeLimit(deadline, "xadd", done, count));
        const int64_t round = std::min<int64_t>(pipeline, count - done);
        for (int64_t i = 0; i < round; ++i) {
            if (redisAppendCommandArgv(c, 5, argv, lengths) != REDIS_OK) {
                return ContextError("append xadd", c);
            }
        }
        for (int64_t i = 0; i < round; ++i) {
            void* raw = nullptr;
            if (redisGetReply(c, &raw) != REDIS_OK) return ContextError("xadd reply", c);
            ReplyPtr reply(static_cast<redisReply*>(raw));
            if (reply->type != REDIS_REPLY_STRING) {
                return InternalError(fmt::format("redis xadd: unexpected reply type {}: {}",
                                                 reply->type,
                                                 reply->str != nullptr ? reply->str : ""));
            }
        }
        done += round;
    }
    return Status::Ok();
}

// Reads the entry ids out of an XREADGROUP reply:
// [[stream, [[id, [field, value, ...]], ...]]], or nil when nothing was delivered.
Status CollectIds(const redisReply* reply, std::vector<std::string_view>& ids) {
    ids.clear();
    if (reply->type == REDIS_REPLY_NIL) return Status::Ok();
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1 ||
        reply->element[0]->type != REDIS_REPLY_ARRAY || reply->element[0]->elements != 2) {
        return InternalError("redis xreadgroup: unexpected reply shape");
    }
    const redisReply* entries = reply->element[0]->element[1];
    if (entries->type != REDIS_REPLY_ARRAY) {
        return InternalError("redis xreadgroup: entries are not an array");
    }
    for (size_t i = 0; i < entries->elements; ++i) {
        const redisReply* entry = entries->element[i];
        if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 1 ||
            entry->element[0]->type != REDIS_REPLY_STRING) {
            return InternalError("redis xreadgroup: malformed entry");
        }
        ids.emplace_back(entry->element[0]->str, entry->element[0]->len);
    }
    return Status::Ok();
}

// Reads batches of new entries for the group and acks each batch with one XACK carrying all
// of its ids (two round trips per batch, not pipelined). Returns the number consumed.
Result<int64_t> DrainGroup(redisContext* c, int batch, int64_t total, Clock::time_point deadline) {
    const std::string count = std::to_string(batch);
    const std::vector<std::string_view> read_args = {
        "XREADGROUP", "GROUP", kGroup, kConsumer, "COUNT", count, "STREAMS", kStream, ">"};
    std::vector<std::string_view> ids;
    std::vector<std::string_view> ack_args;

    int64_t consumed = 0;
    while (consumed < total) {
        EVENTLOOM_RETURN_IF_ERROR(CheckTimeLimit(deadline, "consume", consumed, total));
        EVENTLOOM_ASSIGN_OR_RETURN(ReplyPtr reply, Command(c, read_args));
        EVENTLOOM_RETURN_IF_ERROR(CollectIds(reply.get(), ids));
        if (ids.empty()) {
            return InternalError(fmt::format("redis consume: stream ran dry after {} of {} entries",
                                             consumed, total));
        }

        ack_args = {"XACK", kStream, kGroup};
        ack_args.insert(ack_args.end(), ids.begin(), ids.end());
        EVENTLOOM_ASSIGN_OR_RETURN(ReplyPtr acked, Command(c, ack_args));
        if (acked->type != REDIS_REPLY_INTEGER ||
            acked->integer != static_cast<long long>(ids.size())) {
            return InternalError(
                fmt::format("redis xack: acked {} of {} ids", acked->integer, ids.size()));
        }
        consumed += static_cast<int64_t>(ids.size());
    }
    return consumed;
}

Status Validate(size_t message_bytes, int64_t messages, int per_round) {
    if (message_bytes == 0 || message_bytes > (1 << 20) || messages <= 0 || per_round <= 0) {
        return InvalidArgumentError(
            fmt::format("redis: message_bytes={} messages={} batch={}: message_bytes must be in "
                        "[1, 1 MiB], the others positive",
                        message_bytes, messages, per_round));
    }
    return Status::Ok();
}

}  // namespace

Result<RedisXaddResult> RunRedisXadd(const RedisXaddOptions& options) {
    EVENTLOOM_RETURN_IF_ERROR(Validate(options.message_bytes, options.messages, options.pipeline));
    EVENTLOOM_ASSIGN_OR_RETURN(RedisServer server,
                               StartRedisServer(options.parent_dir, options.fsync_always));
    EVENTLOOM_ASSIGN_OR_RETURN(ContextPtr c, Connect(server));
    const std::string payload(options.message_bytes, 'x');

    const auto start = Clock::now();
    EVENTLOOM_RETURN_IF_ERROR(XaddPipelined(c.get(), payload, options.messages, options.pipeline,
                                            start + options.time_limit));
    const auto end = Clock::now();

    RedisXaddResult result;
    result.added = options.messages;
    result.per_s = RatePerSecond(static_cast<double>(options.messages), SecondsBetween(start, end));
    return result;
}

Result<RedisConsumeResult> RunRedisConsume(const RedisConsumeOptions& options) {
    EVENTLOOM_RETURN_IF_ERROR(Validate(options.message_bytes, options.messages, options.batch));
    EVENTLOOM_ASSIGN_OR_RETURN(RedisServer server,
                               StartRedisServer(options.parent_dir, /*fsync_always=*/false));
    EVENTLOOM_ASSIGN_OR_RETURN(ContextPtr c, Connect(server));

    // Prefill (untimed), then a group that starts at the beginning of the stream.
    const std::string payload(options.message_bytes, 'x');
    EVENTLOOM_RETURN_IF_ERROR(
        XaddPipelined(c.get(), payload, options.messages, 256, Clock::now() + options.time_limit));
    EVENTLOOM_RETURN_IF_ERROR(
        Command(c.get(), {"XGROUP", "CREATE", kStream, kGroup, "0"}).status());

    // Drain (timed).
    const auto start = Clock::now();
    EVENTLOOM_ASSIGN_OR_RETURN(
        int64_t consumed,
        DrainGroup(c.get(), options.batch, options.messages, start + options.time_limit));
    const auto end = Clock::now();

    RedisConsumeResult result;
    result.consumed = consumed;
    result.consume_per_s = RatePerSecond(static_cast<double>(consumed), SecondsBetween(start, end));
    return result;
}

}  // namespace eventloom::bench
