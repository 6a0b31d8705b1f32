// Stages: a handler run over the events of a topic, with delivery guarantees, retries,
// dead-lettering and flow control. A StageRunner pulls deliveries from a consumer group (named
// after the stage), runs the handler on a pool of workers, publishes what the handler emits,
// and settles each delivery.
//
// Delivery modes:
//   at_most_once      the delivery is acked and committed before the handler runs; a failure
//                     is counted and logged, never retried.
//   at_least_once     the handler runs, its events are published, then the delivery is acked.
//                     A crash in between runs the handler again for the redelivered event.
//   effectively_once  at-least-once, plus: the handler's state writes and emitted events are
//                     committed in one state-store transaction with the event's id for the
//                     stage (emitted events through an outbox). A redelivered event whose id is
//                     recorded skips the handler; outbox events are published with dedupe on
//                     their ids, so a crash never repeats an output or a side effect written
//                     through the transaction. The handler itself runs outside the
//                     transaction and its writes are replayed at commit (see
//                     runtime/buffered_transaction.h for what it can see).
//
// Failures: the handler's Status decides (eventloom/status.h, runtime/retry.h): retryable codes
// are nacked with exponential backoff and jitter (or the server's Retry-After) until
// retry.max_attempts; other codes, and exhausted attempts, go to the stage's dead-letter topic
// with the reason.
//
// Thread-safety: the handler is called from several worker threads at once (options.workers);
// a StageContext is used by one thread. StageRunner methods are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "eventloom/broker.h"
#include "eventloom/state.h"
#include "eventloom/status.h"
#include "runtime/circuit_breaker.h"
#include "runtime/rate_limiter.h"
#include "runtime/retry.h"

namespace eventloom {

enum class DeliveryMode { kAtMostOnce, kAtLeastOnce, kEffectivelyOnce };
std::string_view DeliveryModeName(DeliveryMode mode);
Result<DeliveryMode> ParseDeliveryMode(std::string_view name);

class StageContext {
public:
    StageContext(const std::string& stage, const Delivery& delivery,
                 std::chrono::steady_clock::time_point deadline, const std::atomic<bool>* stopping)
        : stage_(stage), delivery_(delivery), deadline_(deadline), stopping_(stopping) {}

    const Event& event() const { return *delivery_.event; }
    const Delivery& delivery() const { return delivery_; }
    const std::string& stage() const { return stage_; }
    std::chrono::steady_clock::time_point deadline() const { return deadline_; }
    // True once the runner is stopping: a long handler should wrap up.
    bool stopping() const { return *stopping_; }

    // A new event derived from this one: a new id, source "eventloom/<stage>", the given type,
    // the same correlationid (this event's id when it has none), causationid = this event's id,
    // and the same trace context and partition key.
    Event Derive(std::string type) const;

    // Publishes `event` to `topic` once the handler has succeeded.
    void Emit(std::string topic, Event event);
    const std::vector<std::pair<std::string, Event>>& emitted() const { return emitted_; }

    // With effectively-once delivery, the transaction that records this event as done for the
    // stage: what the handler writes through it commits with that record, or not at all.
    // Writes are recorded and made at commit; a compare-and-set conflict then retries the
    // event. Null in the other modes.
    StateTransaction* state() const { return state_; }
    void set_state(StateTransaction* state) { state_ = state; }

    // The event's real weight once known (an LLM call's actual tokens), to correct the
    // estimate options.weight gave the token rate limit before the call.
    void ReportWeight(double actual) { actual_weight_ = actual; }
    std::optional<double> actual_weight() const { return actual_weight_; }

private:
    const std::string& stage_;
    const Delivery& delivery_;
    std::chrono::steady_clock::time_point deadline_;
    const std::atomic<bool>* stopping_;
    std::vector<std::pair<std::string, Event>> emitted_;
    StateTransaction* state_ = nullptr;
    std::optional<double> actual_weight_;
};

using StageHandler = std::function<Status(StageContext&)>;
// Handles several events at once (one call to a batch API, one database round trip). The
// batch succeeds or fails as a whole: on failure every event in it is retried or dead-lettered.
using BatchHandler = std::function<Status(std::span<StageContext*> batch)>;

struct BatchOptions {
    size_t max_events = 0;  // 0: no micro-batching
    std::chrono::milliseconds max_wait{
        10};  // a smaller batch goes once its first event waited this
};

struct DebounceOptions {
    std::chrono::milliseconds quiet{0};      // 0: off. Events of one key closer than this coalesce.
    std::chrono::milliseconds max_delay{0};  // release the latest anyway after this (0: 10 x quiet)
};

struct StageOptions {
    std::string name;      // also the consumer group's name
    std::string consumes;  // the topic
    DeliveryMode delivery = DeliveryMode::kAtLeastOnce;
    int workers = 1;            // threads running the handler
    size_t max_in_flight = 64;  // deliveries taken and not yet settled
    RetryPolicy retry;
    std::chrono::milliseconds timeout{30'000};  // the handler's deadline for one event
    std::string dead_letter_topic;              // empty: "<name>.dead-letter"
    RateLimits rate_limits;
    // The weight of an event for rate_limits.tokens_per_minute (e.g. its prompt tokens).
    std::function<double(const Event&)> weight;
    bool one_in_flight_per_key = false;
    // Trips when the handler's backend keeps failing (Unavailable, DeadlineExceeded): while it
    // is open the stage takes no events. Share one breaker between stages using one backend.
    std::shared_ptr<CircuitBreaker> breaker;
    DebounceOptions debounce;
    // With batch.max_events > 0, events are handed to batch_handler in groups of up to
    // max_events (the handler given to the runner is then not used). Not with effectively-once.
    BatchOptions batch;
    BatchHandler batch_handler;
    // How many more events the stage can take right now, besides max_in_flight (the LLM stage
    // answers from free slots and its token budget). Empty: no extra limit.
    std::function<size_t()> capacity;
    // Called on the worker thread after each delivery is settled (acked, nacked or
    // dead-lettered) with the handler's outcome; for metrics and benchmarks. Must be quick.
    std::function<void(const Delivery&, const Status&)> on_settled;
    StartFrom start = StartFrom::kEarliest;
    // How long an idle fetch polls before it sleeps (ConsumerOptions::spin): microseconds off
    // each hop for a busy stream. 0 for stages whose work takes milliseconds (the LLM stage),
    // where a polling thread would only take CPU from the work.
    std::chrono::microseconds poll{50};
};

struct StageStats {
    int64_t succeeded = 0;
    int64_t failed = 0;  // handler failures, each followed by a retry or a dead-letter
    int64_t retried = 0;
    int64_t dead_lettered = 0;
    int64_t duplicates = 0;  // effectively-once: redelivered events skipped
    int64_t coalesced = 0;   // debounce: events replaced by a later one of their key
    int64_t in_flight = 0;
    int64_t lag = 0;  // events in the topic not yet delivered to the stage
};

class StageRunner {
public:
    // `broker` must outlive the runner; `state` too, and is required for effectively-once.
    StageRunner(Broker* broker, StateStore* state, StageOptions options, StageHandler handler);
    ~StageRunner();
    StageRunner(const StageRunner&) = delete;
    StageRunner& operator=(const StageRunner&) = delete;

    // Joins the consumer group and starts the fetch loop and the workers.
    Status Start();
    // Stops taking events, lets running handlers finish for up to `grace`, and releases the
    // leases of everything not finished so other members take it at once.
    void Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

    StageStats stats() const;
    const StageOptions& options() const;

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace eventloom
