#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "common/logging.h"
#include "common/priority_lanes.h"
#include "common/uuid.h"
#include "eventloom/stage.h"
#include "runtime/batcher.h"
#include "runtime/buffered_transaction.h"

namespace eventloom {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Leases are this much longer than the handler's timeout, and are extended while it runs.
constexpr auto kLeaseMargin = std::chrono::seconds(5);
constexpr size_t kOutboxBatch = 256;

bool IsBackendFailure(const Status& s) {
    return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kDeadlineExceeded;
}

// Milliseconds since the epoch of an RFC 3339 time, or nullopt when it does not parse.
std::optional<int64_t> ParseRfc3339Ms(const std::string& text) {
    int y, mo, d, h, mi;
    double s;
    char tail[16] = {};
    if (std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%lf%15s", &y, &mo, &d, &h, &mi, &s, tail) < 6 &&
        std::sscanf(text.c_str(), "%d-%d-%dt%d:%d:%lf%15s", &y, &mo, &d, &h, &mi, &s, tail) < 6) {
        return std::nullopt;
    }
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = 0;
    int64_t ms = static_cast<int64_t>(timegm(&tm)) * 1000 + static_cast<int64_t>(s * 1000);
    std::string zone(tail);
    if (!zone.empty() && (zone[0] == '+' || zone[0] == '-') && zone.size() >= 6) {
        int oh = std::atoi(zone.substr(1, 2).c_str()), om = std::atoi(zone.substr(4, 2).c_str());
        int64_t offset = (oh * 60 + om) * 60'000;
        ms += zone[0] == '+' ? -offset : offset;
    }
    return ms;
}

int64_t NowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

std::string_view DeliveryModeName(DeliveryMode mode) {
    switch (mode) {
        case DeliveryMode::kAtMostOnce:
            return "at_most_once";
        case DeliveryMode::kAtLeastOnce:
            return "at_least_once";
        case DeliveryMode::kEffectivelyOnce:
            return "effectively_once";
    }
    return "unknown";
}

Result<DeliveryMode> ParseDeliveryMode(std::string_view name) {
    if (name == "at_most_once" || name == "at-most-once") return DeliveryMode::kAtMostOnce;
    if (name == "at_least_once" || name == "at-least-once") return DeliveryMode::kAtLeastOnce;
    if (name == "effectively_once" || name == "effectively-once") {
        return DeliveryMode::kEffectivelyOnce;
    }
    return InvalidArgumentError(
        "delivery must be at_most_once, at_least_once or "
        "effectively_once, got '" +
        std::string(name) + "'");
}

Event StageContext::Derive(std::string type) const {
    const Event& in = event();
    Event out;
    out.id = NewEventId();
    out.source = "eventloom/" + stage_;
    out.type = std::move(type);
    out.correlationid = in.correlationid.empty() ? in.id : in.correlationid;
    out.causationid = in.id;
    out.traceparent = in.traceparent;
    out.tracestate = in.tracestate;
    out.partitionkey = in.partitionkey;
    out.priority = in.priority;
    out.deadline = in.deadline;
    return out;
}

void StageContext::Emit(std::string topic, Event event) {
    emitted_.emplace_back(std::move(topic), std::move(event));
}

class StageRunner::Impl {
public:
    Impl(Broker* broker, StateStore* state, StageOptions options, StageHandler handler)
        : broker_(broker),
          state_(state),
          options_(std::move(options)),
          handler_(std::move(handler)),
          limiter_(options_.rate_limits),
          queue_(std::chrono::seconds(5)),
          debouncer_(options_.debounce.quiet, options_.debounce.max_delay.count() > 0
                                                  ? options_.debounce.max_delay
                                                  : options_.debounce.quiet * 10),
          batcher_(std::max<size_t>(options_.batch.max_events, 1), options_.batch.max_wait) {}

    ~Impl() { Stop(std::chrono::seconds(10)); }

    Status Start();
    void Stop(std::chrono::milliseconds grace);
    StageStats stats() const {
        std::lock_guard<std::mutex> lock(mu_);
        StageStats s = stats_;
        s.in_flight = static_cast<int64_t>(in_flight_);
        if (consumer_) s.lag = consumer_->Stats().lag;
        return s;
    }
    const StageOptions& options() const { return options_; }

private:
    struct Work {
        std::vector<Delivery> deliveries;  // one, or a micro-batch
    };

    void FetchLoop();
    void WorkerLoop();
    size_t Room();
    void Dispatch(Delivery delivery);
    void DispatchWork(std::vector<Delivery> deliveries);
    void Execute(const std::vector<Delivery>& deliveries);
    Status ProcessBatch(const std::vector<Delivery>& deliveries);
    // Runs the handler and settles the delivery; returns the handler's outcome.
    Status Process(const Delivery& delivery);
    Status RunHandler(const Delivery& delivery, bool* duplicate);
    Status PublishEmitted(const std::vector<std::pair<std::string, Event>>& emitted);
    Status RelayOutbox();
    void Fail(const Delivery& delivery, const Status& status);
    void Settled(const Delivery& delivery);
    void ExtendLeases();
    void WaitRate(const Event& event);
    void CorrectWeight(const StageContext& ctx);

    Broker* broker_;
    StateStore* state_;
    const StageOptions options_;
    StageHandler handler_;
    RateLimiter limiter_;
    std::unique_ptr<Consumer> consumer_;

    mutable std::mutex mu_;
    // Room freed (the fetch loop and Stop wait on it) and work queued (the workers): two
    // variables, so that a settle does not wake every idle worker and a queued event wakes
    // one, not all (an LLM stage has a worker per slot: tens of threads).
    std::condition_variable cv_;       // room freed, in_flight_ changed
    std::condition_variable work_cv_;  // work queued, stopping
    PriorityLanes<Work> queue_;        // guarded by mu_: fetched, waiting for a worker
    std::map<std::pair<int32_t, int64_t>, Delivery> running_;  // guarded by mu_
    size_t in_flight_ = 0;                                     // guarded by mu_
    StageStats stats_;                                         // guarded by mu_
    Debouncer<Delivery> debouncer_;                            // fetch thread only
    MicroBatcher<Delivery> batcher_;                           // fetch thread only

    std::atomic<bool> stopping_{false};
    std::atomic<bool> fetching_{false};
    std::thread fetcher_;
    std::vector<std::thread> workers_;
    std::mutex relay_mu_;  // one outbox relay at a time
};

Status StageRunner::Impl::Start() {
    if (options_.name.empty()) return InvalidArgumentError("stage name is empty");
    if (options_.workers < 1)
        return InvalidArgumentError("stage " + options_.name + ": workers < 1");
    if (options_.max_in_flight < 1) {
        return InvalidArgumentError("stage " + options_.name + ": max_in_flight < 1");
    }
    if (options_.batch.max_events > 0 && !options_.batch_handler) {
        return InvalidArgumentError("stage " + options_.name +
                                    ": batch.max_events is set but there is no batch handler");
    }
    if (options_.batch.max_events > 0 && options_.delivery == DeliveryMode::kEffectivelyOnce) {
        return FailedPreconditionError("stage " + options_.name +
                                       ": micro-batching is not available with effectively_once");
    }
    if (options_.delivery == DeliveryMode::kEffectivelyOnce && state_ == nullptr) {
        return FailedPreconditionError("stage " + options_.name +
                                       ": effectively_once delivery needs a state store");
    }
    EVENTLOOM_RETURN_IF_ERROR(options_.retry.Validate().WithContext("stage " + options_.name));
    EVENTLOOM_RETURN_IF_ERROR(
        options_.rate_limits.Validate().WithContext("stage " + options_.name));

    ConsumerOptions c;
    c.topic = options_.consumes;
    c.group = options_.name;
    c.stage = options_.name;
    c.lease = options_.timeout + kLeaseMargin;
    // The runner decides retries itself; the broker's limit is a backstop for crashes that
    // keep a delivery from ever being settled.
    c.max_deliveries = std::max(options_.retry.max_attempts, 1) + 2;
    c.dead_letter_topic = options_.dead_letter_topic.empty() ? options_.name + ".dead-letter"
                                                             : options_.dead_letter_topic;
    c.max_outstanding = std::max<size_t>(options_.max_in_flight * 2, 64);
    c.one_in_flight_per_key = options_.one_in_flight_per_key;
    c.start = options_.start;
    c.spin = options_.poll;
    EVENTLOOM_ASSIGN_OR_RETURN(std::unique_ptr<Consumer> consumer, broker_->Subscribe(c));
    {
        std::lock_guard<std::mutex> lock(mu_);  // stats() reads it
        consumer_ = std::move(consumer);
    }

    if (options_.delivery == DeliveryMode::kEffectivelyOnce) {
        // Outputs a crash left in the outbox go out before anything new.
        EVENTLOOM_RETURN_IF_ERROR(RelayOutbox());
    }
    fetching_ = true;
    if (options_.workers > 1) {
        for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
    }
    fetcher_ = std::thread([this] { FetchLoop(); });
    return Status::Ok();
}

void StageRunner::Impl::Stop(std::chrono::milliseconds grace) {
    if (!fetcher_.joinable() && workers_.empty()) return;
    fetching_ = false;
    if (fetcher_.joinable()) fetcher_.join();

    // Let what is queued and running finish, for a while.
    {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, grace, [&] { return in_flight_ == 0; });
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    work_cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();

    // Whatever never started goes back to the group for another member.
    std::vector<Delivery> release;
    {
        std::lock_guard<std::mutex> lock(mu_);
        while (auto work = queue_.Pop(SteadyClock::now())) {
            for (auto& d : work->deliveries) release.push_back(std::move(d));
        }
    }
    for (auto& d : batcher_.Flush()) release.push_back(std::move(d));
    for (auto& r : debouncer_.Flush()) release.push_back(std::move(r.item));
    for (const Delivery& d : release) {
        consumer_->Nack(d.tag, std::chrono::milliseconds(0), "stage stopping").IgnoreError();
    }
    if (consumer_) consumer_->Commit().IgnoreError();
    std::unique_ptr<Consumer> closing;
    {
        std::lock_guard<std::mutex> lock(mu_);
        closing = std::move(consumer_);
    }
}

size_t StageRunner::Impl::Room() {
    std::lock_guard<std::mutex> lock(mu_);
    size_t room = in_flight_ >= options_.max_in_flight ? 0 : options_.max_in_flight - in_flight_;
    if (options_.capacity) room = std::min(room, options_.capacity());
    return room;
}

void StageRunner::Impl::CorrectWeight(const StageContext& ctx) {
    if (!ctx.actual_weight() || !options_.weight) return;
    // The estimate was taken from the token bucket before the call; settle the difference.
    limiter_.AdjustTokens(options_.weight(ctx.event()) - *ctx.actual_weight());
}

void StageRunner::Impl::WaitRate(const Event& event) {
    double weight = options_.weight ? options_.weight(event) : 0;
    while (fetching_) {
        auto wait = limiter_.TryAcquire(weight);
        if (!wait) return;
        std::this_thread::sleep_for(
            std::min<SteadyClock::duration>(*wait, std::chrono::milliseconds(50)));
    }
}

void StageRunner::Impl::FetchLoop() {
    auto next_extend = SteadyClock::now();
    while (fetching_) {
        auto now = SteadyClock::now();
        if (now >= next_extend) {
            ExtendLeases();
            next_extend = now + (options_.timeout + kLeaseMargin) / 3;
        }
        for (auto& r : debouncer_.Poll(now)) Dispatch(std::move(r.item));
        if (auto due = batcher_.Poll(now)) DispatchWork(std::move(*due));

        // An open breaker means the backend is down: take nothing until it may be up again.
        if (options_.breaker && options_.breaker->state() == CircuitBreaker::State::kOpen) {
            auto wait = std::max(options_.breaker->RetryIn(), std::chrono::milliseconds(1));
            std::this_thread::sleep_for(
                std::min<std::chrono::milliseconds>(wait, std::chrono::milliseconds(100)));
            continue;
        }
        size_t room = Room();
        if (room == 0) {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait_for(lock, std::chrono::milliseconds(50));
            continue;
        }
        auto wait = std::chrono::milliseconds(100);
        for (auto deadline : {debouncer_.NextDeadline(), batcher_.NextDeadline()}) {
            if (!deadline) continue;
            wait =
                std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - now),
                           std::chrono::milliseconds(0), wait);
        }
        auto batch = consumer_->Fetch(room, wait);
        if (!batch.ok()) {
            logging::Get("runtime")->error("stage={} fetch: {}", options_.name,
                                           batch.status().ToString());
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            continue;
        }
        for (Delivery& d : *batch) {
            WaitRate(*d.event);
            if (options_.debounce.quiet.count() > 0 && !d.event->partitionkey.empty()) {
                std::string key = d.event->partitionkey;
                auto replaced = debouncer_.Add(key, std::move(d), SteadyClock::now());
                if (replaced) {
                    // The older event of the key is superseded: it is done.
                    consumer_->Ack(replaced->tag).IgnoreError();
                    std::lock_guard<std::mutex> lock(mu_);
                    ++stats_.coalesced;
                }
                continue;
            }
            Dispatch(std::move(d));
        }
    }
}

void StageRunner::Impl::Dispatch(Delivery delivery) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        ++in_flight_;
    }
    if (options_.batch.max_events > 0) {
        if (auto full = batcher_.Add(std::move(delivery), SteadyClock::now())) {
            DispatchWork(std::move(*full));
        }
        return;
    }
    std::vector<Delivery> one;
    one.push_back(std::move(delivery));
    DispatchWork(std::move(one));
}

void StageRunner::Impl::DispatchWork(std::vector<Delivery> deliveries) {
    if (deliveries.empty()) return;
    if (options_.workers == 1) {
        // One worker: the fetch thread runs the handler itself, saving a thread hand-off
        // (tens of microseconds when the worker sleeps).
        Execute(deliveries);
        return;
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        int priority = deliveries.front().event->priority.value_or(0);
        queue_.Push(Work{std::move(deliveries)}, priority, SteadyClock::now());
    }
    work_cv_.notify_one();
}

void StageRunner::Impl::Execute(const std::vector<Delivery>& deliveries) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        for (const Delivery& d : deliveries) {
            running_[{d.tag.partition.value(), d.tag.offset.value()}] = d;
        }
    }
    if (options_.batch.max_events > 0) {
        Status outcome = ProcessBatch(deliveries);
        for (const Delivery& d : deliveries) {
            if (options_.on_settled) options_.on_settled(d, outcome);
            Settled(d);
        }
        return;
    }
    Status outcome = Process(deliveries.front());
    if (options_.on_settled) options_.on_settled(deliveries.front(), outcome);
    Settled(deliveries.front());
}

Status StageRunner::Impl::ProcessBatch(const std::vector<Delivery>& deliveries) {
    auto deadline = SteadyClock::now() + options_.timeout;
    std::vector<StageContext> contexts;
    contexts.reserve(deliveries.size());
    for (const Delivery& d : deliveries) {
        contexts.emplace_back(options_.name, d, deadline, &stopping_);
    }
    std::vector<StageContext*> pointers;
    for (auto& c : contexts) pointers.push_back(&c);

    if (options_.delivery == DeliveryMode::kAtMostOnce) {
        for (const Delivery& d : deliveries) consumer_->Ack(d.tag).IgnoreError();
        consumer_->Commit().IgnoreError();
    }
    Status status;
    try {
        status = options_.batch_handler(std::span<StageContext*>(pointers));
    } catch (const std::exception& e) {
        status = InternalError(std::string("batch handler threw: ") + e.what());
    }
    for (const auto& c : contexts) CorrectWeight(c);
    if (status.ok()) {
        std::vector<std::pair<std::string, Event>> emitted;
        for (auto& c : contexts) {
            emitted.insert(emitted.end(), c.emitted().begin(), c.emitted().end());
        }
        status = PublishEmitted(emitted);
    }
    if (options_.breaker) {
        if (status.ok() || !IsBackendFailure(status)) {
            options_.breaker->RecordSuccess();
        } else {
            options_.breaker->RecordFailure();
        }
    }
    if (!status.ok()) {
        for (const Delivery& d : deliveries) Fail(d, status);
        return status;
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        stats_.succeeded += static_cast<int64_t>(deliveries.size());
    }
    if (options_.delivery != DeliveryMode::kAtMostOnce) {
        for (const Delivery& d : deliveries) consumer_->Ack(d.tag).IgnoreError();
    }
    return Status::Ok();
}

void StageRunner::Impl::WorkerLoop() {
    for (;;) {
        std::vector<Delivery> deliveries;
        {
            std::unique_lock<std::mutex> lock(mu_);
            work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            auto work = queue_.Pop(SteadyClock::now());
            if (!work) continue;
            deliveries = std::move(work->deliveries);
        }
        Execute(deliveries);
    }
}

void StageRunner::Impl::Settled(const Delivery& delivery) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        running_.erase({delivery.tag.partition.value(), delivery.tag.offset.value()});
        --in_flight_;
    }
    cv_.notify_all();
}

void StageRunner::Impl::ExtendLeases() {
    std::vector<DeliveryTag> tags;
    {
        std::lock_guard<std::mutex> lock(mu_);
        for (auto& [key, d] : running_) tags.push_back(d.tag);
    }
    for (const DeliveryTag& tag : tags) consumer_->ExtendLease(tag).IgnoreError();
}

Status StageRunner::Impl::Process(const Delivery& delivery) {
    const Event& event = *delivery.event;
    if (!event.deadline.empty()) {
        auto deadline = ParseRfc3339Ms(event.deadline);
        if (deadline && *deadline < NowMs()) {
            std::lock_guard<std::mutex> lock(mu_);
            ++stats_.dead_lettered;
            consumer_
                ->Term(delivery.tag, "deadline " + event.deadline + " passed before stage " +
                                         options_.name + " could run")
                .IgnoreError();
            return DeadlineExceededError("deadline " + event.deadline + " passed");
        }
    }
    if (options_.breaker && !options_.breaker->Allow()) {
        // Opened while this event waited: come back when the backend may be up.
        consumer_->Nack(delivery.tag, options_.breaker->RetryIn(), "circuit open").IgnoreError();
        return UnavailableError("circuit open");
    }

    if (options_.delivery == DeliveryMode::kAtMostOnce) {
        // Settle first: a crash from here on loses the event rather than repeating it.
        Status acked = consumer_->Ack(delivery.tag);
        if (acked.ok()) acked = consumer_->Commit();
        if (!acked.ok()) {
            logging::Get("runtime")->warn("stage={} at-most-once ack: {}", options_.name,
                                          acked.ToString());
            return acked;
        }
    }

    bool duplicate = false;
    Status status = RunHandler(delivery, &duplicate);
    if (options_.breaker) {
        if (status.ok() || !IsBackendFailure(status)) {
            options_.breaker->RecordSuccess();
        } else {
            options_.breaker->RecordFailure();
        }
    }
    if (!status.ok()) {
        Fail(delivery, status);
        return status;
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.succeeded;
        if (duplicate) ++stats_.duplicates;
    }
    if (options_.delivery != DeliveryMode::kAtMostOnce) {
        Status acked = consumer_->Ack(delivery.tag);
        if (!acked.ok()) {
            // The lease ran out while the handler ran; the event comes again. Effectively-once
            // stages skip it then; at-least-once stages run it again.
            logging::Get("runtime")->warn("stage={} ack: {}", options_.name, acked.ToString());
        }
    }
    return Status::Ok();
}

Status StageRunner::Impl::RunHandler(const Delivery& delivery, bool* duplicate) {
    // The handler's deadline: the stage's timeout, or the event's own deadline if sooner.
    auto now = SteadyClock::now();
    auto deadline = now + options_.timeout;
    if (!delivery.event->deadline.empty()) {
        if (auto ms = ParseRfc3339Ms(delivery.event->deadline)) {
            deadline = std::min(deadline, now + std::chrono::milliseconds(*ms - NowMs()));
        }
    }
    StageContext ctx(options_.name, delivery, deadline, &stopping_);
    auto call = [&]() -> Status {
        Status status;
        try {
            status = handler_(ctx);
        } catch (const std::exception& e) {
            status = InternalError(std::string("handler threw: ") + e.what());
        }
        CorrectWeight(ctx);
        return status;
    };

    if (options_.delivery != DeliveryMode::kEffectivelyOnce) {
        EVENTLOOM_RETURN_IF_ERROR(call());
        Status published = PublishEmitted(ctx.emitted());
        if (!published.ok() && options_.delivery == DeliveryMode::kAtMostOnce) {
            logging::Get("runtime")->warn("stage={} at-most-once outputs lost: {}", options_.name,
                                          published.ToString());
            return Status::Ok();
        }
        return published;
    }

    // A redelivered event that was already done skips the handler.
    EVENTLOOM_ASSIGN_OR_RETURN(bool seen, state_->Seen(options_.name, delivery.event->id));
    if (seen) {
        *duplicate = true;
        return RelayOutbox();  // its outputs may not all have gone out before a crash
    }
    // The handler runs outside the store's transaction, so that slow handlers of one store
    // run side by side; its writes are recorded and committed below in one short transaction.
    BufferedTransaction buffered(state_);
    ctx.set_state(&buffered);
    EVENTLOOM_RETURN_IF_ERROR(call());
    std::string record;
    for (const auto& [topic, event] : ctx.emitted()) {
        Event out = event;
        FillDefaults(&out);
        EVENTLOOM_RETURN_IF_ERROR(ValidateEvent(out).WithContext("emitted to " + topic));
        record.clear();
        AppendEncodedEvent(out, &record);
        EVENTLOOM_RETURN_IF_ERROR(buffered.OutboxAdd(topic, record).status());
    }
    auto outcome = state_->RunOnce(options_.name, delivery.event->id,
                                   [&](StateTransaction& txn) { return buffered.Replay(txn); });
    if (!outcome.ok()) return outcome.status();
    *duplicate = *outcome == RunOnceOutcome::kDuplicate;
    // Publish this event's outputs (and any a crash left behind) before the ack.
    return RelayOutbox();
}

Status StageRunner::Impl::PublishEmitted(
    const std::vector<std::pair<std::string, Event>>& emitted) {
    // One durable wait per topic.
    std::map<std::string, std::vector<Event>> by_topic;
    for (const auto& [topic, event] : emitted) by_topic[topic].push_back(event);
    for (auto& [topic, events] : by_topic) {
        EVENTLOOM_RETURN_IF_ERROR(
            broker_->PublishBatch(topic, events).status().WithContext("publishing to " + topic));
    }
    return Status::Ok();
}

Status StageRunner::Impl::RelayOutbox() {
    std::lock_guard<std::mutex> relay(relay_mu_);
    for (;;) {
        EVENTLOOM_ASSIGN_OR_RETURN(auto pending, state_->OutboxPending(kOutboxBatch));
        if (pending.empty()) return Status::Ok();
        for (const OutboxMessage& m : pending) {
            auto event = DecodeEvent(m.payload);
            if (event.ok()) {
                // Deduplicated by the event's id: a relay repeated after a crash adds nothing.
                EVENTLOOM_RETURN_IF_ERROR(broker_->Publish(m.destination, *event).status());
            } else {
                logging::Get("runtime")->error("stage={} outbox message {} is damaged: {}",
                                               options_.name, m.id, event.status().ToString());
            }
            EVENTLOOM_RETURN_IF_ERROR(state_->OutboxDone(m.id));
        }
    }
}

void StageRunner::Impl::Fail(const Delivery& delivery, const Status& status) {
    if (stopping_ && status.code() == StatusCode::kCancelled) {
        consumer_->Nack(delivery.tag, std::chrono::milliseconds(0), "stage stopping").IgnoreError();
        return;
    }
    FailureAction action = Classify(status, delivery.attempt(), options_.retry);
    thread_local std::mt19937_64 rng(std::random_device{}());
    {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.failed;
        if (action == FailureAction::kRetry) {
            ++stats_.retried;
        } else {
            ++stats_.dead_lettered;
        }
    }
    if (action == FailureAction::kRetry) {
        auto delay = RetryDelay(status, options_.retry, delivery.attempt(), rng);
        consumer_->Nack(delivery.tag, delay, status.ToString()).IgnoreError();
        return;
    }
    std::string reason = status.ToString();
    if (status.retryable()) {
        reason = "gave up after " + std::to_string(delivery.attempt()) + " attempts: " + reason;
    }
    if (options_.delivery == DeliveryMode::kAtMostOnce) {
        logging::Get("runtime")->warn("stage={} at-most-once event {} failed: {}", options_.name,
                                      delivery.event->id, reason);
        return;
    }
    consumer_->Term(delivery.tag, reason).IgnoreError();
}

StageRunner::StageRunner(Broker* broker, StateStore* state, StageOptions options,
                         StageHandler handler)
    : impl_(std::make_unique<Impl>(broker, state, std::move(options), std::move(handler))) {}

StageRunner::~StageRunner() = default;

Status StageRunner::Start() { return impl_->Start(); }
void StageRunner::Stop(std::chrono::milliseconds grace) { impl_->Stop(grace); }
StageStats StageRunner::stats() const { return impl_->stats(); }
const StageOptions& StageRunner::options() const { return impl_->options(); }

}  // namespace eventloom
