#include "peers/nats_peer.h"

#include <fmt/format.h>
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <memory>
#include <thread>
#include <vector>

namespace eventloom::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kStream = "BENCH";
constexpr const char* kStreamSubjects = "bench.>";
constexpr const char* kSubject = "bench.events";
constexpr const char* kDurable = "bench_consumer";
constexpr auto kServerStartTimeout = std::chrono::seconds(10);
// How long a stalled js_PublishAsync (window full) waits before returning NATS_TIMEOUT; the
// caller retries until the phase deadline, so this only sets how often the deadline is checked.
constexpr int64_t kStallWaitMs = 1000;
constexpr int64_t kFetchTimeoutMs = 5000;

// ---------------------------------------------------------------------------------------------
// Errors and RAII for libnats handles.

Status NatsError(std::string_view what, natsStatus s,
                 jsErrCode js_err = static_cast<jsErrCode>(0)) {
    const char* detail = nats_GetLastError(nullptr);
    std::string message = fmt::format("nats {}: {}", what, natsStatus_GetText(s));
    if (js_err != 0) message += fmt::format(" (jetstream error {})", static_cast<int>(js_err));
    if (detail != nullptr && *detail != '\0') message += fmt::format(" [{}]", detail);
    if (s == NATS_TIMEOUT) return DeadlineExceededError(std::move(message));
    if (s == NATS_NO_SERVER || s == NATS_CONNECTION_CLOSED || s == NATS_NO_RESPONDERS) {
        return UnavailableError(std::move(message));
    }
    return InternalError(std::move(message));
}

struct OptionsDeleter {
    void operator()(natsOptions* o) const { natsOptions_Destroy(o); }
};
struct ConnectionDeleter {
    void operator()(natsConnection* c) const { natsConnection_Destroy(c); }
};
struct JsDeleter {
    void operator()(jsCtx* js) const { jsCtx_Destroy(js); }
};
struct SubscriptionDeleter {
    void operator()(natsSubscription* s) const { natsSubscription_Destroy(s); }
};
using SubscriptionPtr = std::unique_ptr<natsSubscription, SubscriptionDeleter>;

// ---------------------------------------------------------------------------------------------
// The server.

// A nats-server with JetStream on a free loopback port. Destruction stops the server first,
// then removes its directory (members are destroyed in reverse order).
struct NatsServer {
    TempDir dir;
    ChildProcess process;
    int port;

    std::string url() const { return fmt::format("nats://127.0.0.1:{}", port); }
};

Result<NatsServer> StartNatsServer(const std::string& parent_dir) {
    EVENTLOOM_ASSIGN_OR_RETURN(TempDir dir, TempDir::Create("eventloom-nats-", parent_dir));
    const int port = FreeTcpPort();
    if (port <= 0) return UnavailableError("no free tcp port on 127.0.0.1");

    EVENTLOOM_ASSIGN_OR_RETURN(
        ChildProcess process,
        ChildProcess::Start({"nats-server", "-a", "127.0.0.1", "-p", std::to_string(port), "-js",
                             "-sd", dir.path() + "/store"},
                            dir.path() + "/nats-server.log"));
    EVENTLOOM_RETURN_IF_ERROR(process.WaitForPort(port, kServerStartTimeout));
    return NatsServer{std::move(dir), std::move(process), port};
}

// ---------------------------------------------------------------------------------------------
// The client.

// Counts async publishes that failed: negative acks, or no responders. Written by libnats'
// reply thread, read by the publisher after js_PublishAsyncComplete.
//
// Only failures are reported (ErrHandler), not every ack (AckHandler): libnats then hands no
// per-ack callback to the application, and js_PublishAsyncComplete returning OK means every
// publish got its reply. libnats decrements its pending count only after the error handler
// returns, so when Complete returns, `failed` is final and acked = published - failed exactly.
struct AckCounters {
    std::atomic<int64_t> failed{0};
};

void OnPublishError(jsCtx* /*js*/, jsPubAckErr* /*error*/, void* closure) {
    // libnats destroys the message after we return (unless we re-publish it, which we don't).
    static_cast<AckCounters*>(closure)->failed.fetch_add(1, std::memory_order_relaxed);
}

// One connection and its JetStream context. `counters` must outlive the client: the context's
// error handler writes to it.
struct NatsClient {
    std::unique_ptr<natsConnection, ConnectionDeleter> connection;
    std::unique_ptr<jsCtx, JsDeleter> js;  // destroyed before the connection
};

Result<NatsClient> Connect(const NatsServer& server, int window, AckCounters* counters) {
    natsOptions* raw_options = nullptr;
    natsStatus s = natsOptions_Create(&raw_options);
    if (s != NATS_OK) return NatsError("options create", s);
    std::unique_ptr<natsOptions, OptionsDeleter> options(raw_options);
    const std::string url = server.url();
    s = natsOptions_SetURL(options.get(), url.c_str());
    if (s == NATS_OK) s = natsOptions_SetAllowReconnect(options.get(), false);
    if (s == NATS_OK) s = natsOptions_SetTimeout(options.get(), 5000);
    if (s != NATS_OK) return NatsError("options", s);

    NatsClient client;
    natsConnection* connection = nullptr;
    s = natsConnection_Connect(&connection, options.get());
    if (s != NATS_OK) return NatsError("connect " + url, s);
    client.connection.reset(connection);

    jsOptions js_options;
    jsOptions_Init(&js_options);
    js_options.PublishAsync.MaxPending = window;
    js_options.PublishAsync.StallWait = kStallWaitMs;
    js_options.PublishAsync.ErrHandler = OnPublishError;
    js_options.PublishAsync.ErrHandlerClosure = counters;
    jsCtx* js = nullptr;
    s = natsConnection_JetStream(&js, connection, &js_options);
    if (s != NATS_OK) return NatsError("jetstream context", s);
    client.js.reset(js);
    return client;
}

Status AddStream(jsCtx* js) {
    jsStreamConfig config;
    jsStreamConfig_Init(&config);
    config.Name = kStream;
    const char* subjects[] = {kStreamSubjects};
    config.Subjects = subjects;
    config.SubjectsLen = 1;
    config.Storage = js_FileStorage;

    // The client port opens a moment before JetStream answers API requests: retry briefly.
    const auto deadline = Clock::now() + kServerStartTimeout;
    while (true) {
        jsStreamInfo* info = nullptr;
        jsErrCode js_err = static_cast<jsErrCode>(0);
        natsStatus s = js_AddStream(&info, js, &config, nullptr, &js_err);
        jsStreamInfo_Destroy(info);
        if (s == NATS_OK) return Status::Ok();
        const bool not_ready = s == NATS_NO_RESPONDERS || s == NATS_TIMEOUT;
        if (!not_ready || Clock::now() >= deadline) return NatsError("add stream", s, js_err);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

Status CheckTimeLimit(Clock::time_point deadline, std::string_view phase, int64_t done,
                      int64_t total) {
    if (Clock::now() < deadline) return Status::Ok();
    return DeadlineExceededError(
        fmt::format("nats {}: time limit reached after {} of {} messages", phase, done, total));
}

struct AsyncPublishRun {
    Clock::time_point first_publish;
    Clock::time_point all_acked;  // js_PublishAsyncComplete returned: every reply is in
    int64_t acked = 0;
    int64_t failed = 0;
};

// Publishes `count` messages with at most the context's window in flight and waits until every
// one has its reply. `counters` must be the one the context's error handler writes to.
Result<AsyncPublishRun> PublishAsyncAll(jsCtx* js, const std::string& payload, int64_t count,
                                        Clock::time_point deadline, const AckCounters& counters) {
    AsyncPublishRun run;
    const int64_t failed_before = counters.failed.load();
    run.first_publish = Clock::now();
    for (int64_t i = 0; i < count; ++i) {
        while (true) {
            natsStatus s = js_PublishAsync(js, kSubject, payload.data(),
                                           static_cast<int>(payload.size()), nullptr);
            if (s == NATS_OK) break;
            // NATS_TIMEOUT: the window stayed full for kStallWaitMs; the message was not sent.
            if (s != NATS_TIMEOUT) return NatsError("publish async", s);
            EVENTLOOM_RETURN_IF_ERROR(CheckTimeLimit(deadline, "publish async", i, count));
        }
        if ((i & 1023) == 0) {
            EVENTLOOM_RETURN_IF_ERROR(CheckTimeLimit(deadline, "publish async", i, count));
        }
    }

    jsPubOptions complete_options;
    jsPubOptions_Init(&complete_options);
    complete_options.MaxWait = std::max<int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    natsStatus s = js_PublishAsyncComplete(js, &complete_options);
    run.all_acked = Clock::now();
    if (s != NATS_OK) return NatsError(fmt::format("publish async complete ({} sent)", count), s);

    run.failed = counters.failed.load() - failed_before;
    run.acked = count - run.failed;
    return run;
}

// One js_Publish at a time, each waiting for its ack.
Status PublishSyncAll(jsCtx* js, const std::string& payload, int64_t count,
                      Clock::time_point deadline, JetStreamPublishResult& result) {
    std::vector<double> micros;
    micros.reserve(static_cast<size_t>(count));
    const auto start = Clock::now();
    for (int64_t i = 0; i < count; ++i) {
        jsPubAck* ack = nullptr;
        jsErrCode js_err = static_cast<jsErrCode>(0);
        const auto sent = Clock::now();
        natsStatus s = js_Publish(&ack, js, kSubject, payload.data(),
                                  static_cast<int>(payload.size()), nullptr, &js_err);
        const auto acked = Clock::now();
        jsPubAck_Destroy(ack);
        if (s != NATS_OK) return NatsError("publish", s, js_err);
        micros.push_back(MicrosBetween(sent, acked));
        EVENTLOOM_RETURN_IF_ERROR(CheckTimeLimit(deadline, "publish sync", i + 1, count));
    }
    const double seconds = SecondsBetween(start, Clock::now());
    result.sync_per_s = RatePerSecond(static_cast<double>(micros.size()), seconds);
    result.sync_latency = Summarize(std::move(micros));
    return Status::Ok();
}

// A durable pull consumer with explicit acks on the bench stream.
Result<SubscriptionPtr> PullSubscribe(jsCtx* js, int fetch_batch, size_t message_bytes) {
    jsSubOptions sub_options;
    jsSubOptions_Init(&sub_options);
    sub_options.Stream = kStream;
    sub_options.Config.AckPolicy = js_AckExplicit;
    // The server's default (1000 unacked) is enough: each batch is acked before the next fetch.

    natsSubscription* raw = nullptr;
    jsErrCode js_err = static_cast<jsErrCode>(0);
    natsStatus s =
        js_PullSubscribe(&raw, js, kStreamSubjects, kDurable, nullptr, &sub_options, &js_err);
    if (s != NATS_OK) return NatsError("pull subscribe", s, js_err);
    SubscriptionPtr sub(raw);

    // Pending limits sized to a few batches. Not via natsOptions_SetMaxPendingMsgs with a large
    // count: libnats derives the byte limit from it and an int overflow there makes subscribe
    // fail. Fetch never has more than one batch outstanding.
    const int msg_limit = std::max(1024, 4 * fetch_batch);
    const int64_t byte_limit = std::min<int64_t>(
        INT_MAX, static_cast<int64_t>(msg_limit) * static_cast<int64_t>(message_bytes + 1024));
    s = natsSubscription_SetPendingLimits(sub.get(), msg_limit, static_cast<int>(byte_limit));
    if (s != NATS_OK) return NatsError("set pending limits", s);
    return sub;
}

// Fetches and acks until `total` messages were consumed. Returns the number consumed.
Result<int64_t> DrainWithAcks(natsConnection* connection, natsSubscription* sub, int fetch_batch,
                              int64_t total, Clock::time_point deadline) {
    int64_t consumed = 0;
    while (consumed < total) {
        EVENTLOOM_RETURN_IF_ERROR(CheckTimeLimit(deadline, "consume", consumed, total));
        natsMsgList list{};
        jsErrCode js_err = static_cast<jsErrCode>(0);
        natsStatus s = natsSubscription_Fetch(&list, sub, fetch_batch, kFetchTimeoutMs, &js_err);
        if (s == NATS_TIMEOUT) continue;  // nothing yet; the deadline bounds the retries
        if (s != NATS_OK) return NatsError("fetch", s, js_err);

        // One "+ACK" per message (natsMsg_Ack publishes without waiting for a reply).
        for (int i = 0; i < list.Count && s == NATS_OK; ++i) s = natsMsg_Ack(list.Msgs[i], nullptr);
        consumed += list.Count;
        natsMsgList_Destroy(&list);
        if (s != NATS_OK) return NatsError("ack", s);
    }

    // The acks are buffered by the client: a flush (PING/PONG) proves the server has read them.
    natsStatus s = natsConnection_FlushTimeout(connection, kFetchTimeoutMs);
    if (s != NATS_OK) return NatsError("flush acks", s);
    return consumed;
}

// Checks, after the timed drain, that the server has processed every ack: the consumer has
// nothing pending and nothing unacked. Polls briefly, since the server applies acks
// asynchronously after reading them.
Status VerifyAllAcked(jsCtx* js) {
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (true) {
        jsConsumerInfo* info = nullptr;
        jsErrCode js_err = static_cast<jsErrCode>(0);
        natsStatus s = js_GetConsumerInfo(&info, js, kStream, kDurable, nullptr, &js_err);
        if (s != NATS_OK) return NatsError("consumer info", s, js_err);
        const int64_t ack_pending = info->NumAckPending;
        const uint64_t pending = info->NumPending;
        jsConsumerInfo_Destroy(info);
        if (ack_pending == 0 && pending == 0) return Status::Ok();
        if (Clock::now() >= deadline) {
            return InternalError(
                fmt::format("nats consume: consumer still has {} unacked and {} pending messages",
                            ack_pending, pending));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

Status ValidateCommon(size_t message_bytes) {
    if (message_bytes == 0 || message_bytes > (1 << 20)) {
        return InvalidArgumentError(
            fmt::format("nats: message_bytes={} must be in [1, 1 MiB]", message_bytes));
    }
    return Status::Ok();
}

}  // namespace

Result<JetStreamPublishResult> RunJetStreamPublish(const JetStreamPublishOptions& options) {
    EVENTLOOM_RETURN_IF_ERROR(ValidateCommon(options.message_bytes));
    if (options.window <= 0 || options.async_messages < 0 || options.sync_messages < 0) {
        return InvalidArgumentError("nats publish: window must be positive, counts >= 0");
    }
    EVENTLOOM_ASSIGN_OR_RETURN(NatsServer server, StartNatsServer(options.parent_dir));
    AckCounters counters;
    EVENTLOOM_ASSIGN_OR_RETURN(NatsClient client, Connect(server, options.window, &counters));
    EVENTLOOM_RETURN_IF_ERROR(AddStream(client.js.get()));
    const std::string payload(options.message_bytes, 'x');
    JetStreamPublishResult result;

    // Async throughput: first publish to last ack, acked messages only.
    if (options.async_messages > 0) {
        EVENTLOOM_ASSIGN_OR_RETURN(AsyncPublishRun run,
                                   PublishAsyncAll(client.js.get(), payload, options.async_messages,
                                                   Clock::now() + options.time_limit, counters));
        result.async_acked = run.acked;
        result.async_failed = run.failed;
        result.async_per_s = RatePerSecond(static_cast<double>(run.acked),
                                           SecondsBetween(run.first_publish, run.all_acked));
    }

    // Sync latency, on the same stream (now holding the async messages).
    EVENTLOOM_RETURN_IF_ERROR(PublishSyncAll(client.js.get(), payload, options.sync_messages,
                                             Clock::now() + options.time_limit, result));
    return result;
}

Result<JetStreamConsumeResult> RunJetStreamConsume(const JetStreamConsumeOptions& options) {
    EVENTLOOM_RETURN_IF_ERROR(ValidateCommon(options.message_bytes));
    if (options.fetch_batch <= 0 || options.messages <= 0) {
        return InvalidArgumentError("nats consume: fetch_batch and messages must be positive");
    }
    EVENTLOOM_ASSIGN_OR_RETURN(NatsServer server, StartNatsServer(options.parent_dir));
    AckCounters counters;
    EVENTLOOM_ASSIGN_OR_RETURN(NatsClient client, Connect(server, 256, &counters));
    EVENTLOOM_RETURN_IF_ERROR(AddStream(client.js.get()));

    // Prefill (untimed).
    const std::string payload(options.message_bytes, 'x');
    EVENTLOOM_ASSIGN_OR_RETURN(AsyncPublishRun prefill,
                               PublishAsyncAll(client.js.get(), payload, options.messages,
                                               Clock::now() + options.time_limit, counters));
    if (prefill.acked != options.messages) {
        return InternalError(fmt::format("nats consume: prefill stored {} of {} messages",
                                         prefill.acked, options.messages));
    }
    const int64_t stored = prefill.acked;

    // Drain (timed): first fetch until the server has read the last ack.
    EVENTLOOM_ASSIGN_OR_RETURN(
        SubscriptionPtr sub,
        PullSubscribe(client.js.get(), options.fetch_batch, options.message_bytes));
    const auto start = Clock::now();
    EVENTLOOM_ASSIGN_OR_RETURN(
        int64_t consumed, DrainWithAcks(client.connection.get(), sub.get(), options.fetch_batch,
                                        stored, start + options.time_limit));
    const auto end = Clock::now();
    EVENTLOOM_RETURN_IF_ERROR(VerifyAllAcked(client.js.get()));

    JetStreamConsumeResult result;
    result.consumed = consumed;
    result.consume_per_s = RatePerSecond(static_cast<double>(consumed), SecondsBetween(start, end));
    return result;
}

}  // namespace eventloom::bench
