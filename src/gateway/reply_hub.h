// ReplyHub: routes the events that answer gateway requests (completions, chunks, job progress
// and results) to the requests waiting for them, by `correlationid`.
//
// It joins one consumer group on each topic, starting at the latest offset, fetches on one
// thread per topic and acks every event at once; an event nobody waits for is dropped. A
// request registers its waiter BEFORE it publishes, so no answer can arrive unseen.
//
// Callbacks run on the hub's fetch threads and must be quick (post to an executor and return);
// they must not call Register/Unregister. Thread-safety: all methods are thread-safe. After
// Unregister returns, the callback is not called again. `broker` must outlive the hub.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "eventloom/broker.h"
#include "eventloom/status.h"

namespace eventloom::gateway {

class ReplyHub {
public:
    using Callback =
        std::function<void(const std::string& topic, const std::shared_ptr<const Event>& event)>;

    ReplyHub(Broker* broker, std::string group);
    ~ReplyHub();
    ReplyHub(const ReplyHub&) = delete;
    ReplyHub& operator=(const ReplyHub&) = delete;

    // Subscribes to each topic (duplicates and empty names are skipped; a missing topic is
    // created with default options) and starts the fetch threads.
    Status Start(const std::vector<std::string>& topics);
    // Stops the fetch threads and forgets every waiter. Idempotent.
    void Stop();

    // Calls `callback` for every event whose correlationid is `correlation_id` until
    // Unregister(token). Several waiters may wait for one id.
    uint64_t Register(const std::string& correlation_id, Callback callback);
    void Unregister(const std::string& correlation_id, uint64_t token);

    int64_t dropped() const { return dropped_; }  // events that had no waiter

private:
    void Run(Consumer* consumer, const std::string& topic);
    void Dispatch(const std::string& topic, const std::shared_ptr<const Event>& event);

    Broker* broker_;
    std::string group_;
    std::atomic<bool> stopping_{false};
    std::atomic<int64_t> dropped_{0};
    std::vector<std::unique_ptr<Consumer>> consumers_;
    std::vector<std::string> topics_;  // of consumers_, in order
    std::vector<std::thread> threads_;

    // The callback lock is held while a callback runs, so Unregister can wait for a running
    // one to finish; the map lock is never held during a callback.
    std::mutex callback_mu_;
    std::mutex mu_;
    uint64_t next_token_ = 1;  // guarded by mu_
    std::unordered_map<std::string, std::map<uint64_t, std::shared_ptr<Callback>>>
        waiters_;  // guarded by mu_
};

}  // namespace eventloom::gateway
