// Grouping events in time: MicroBatcher collects items into batches (embed 32 chunks in one
// call instead of 32 calls); Debouncer keeps only the latest item per key until the key goes
// quiet (re-index a document once after a burst of edits, not once per edit).
//
// Both are driven by the caller: nothing happens between calls. The caller passes `now` to
// every call, and uses NextDeadline() to know when to call Poll() next (a timer, or the wait of
// its fetch loop). Items are only moved, never copied; T needs only to be movable.
//
// Not thread-safe: the caller serialises all calls.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.h"

namespace eventloom {

// Collects items into batches of at most `max_items`, released when full or when the oldest
// item has waited `max_wait`, whichever comes first.
template <typename T>
class MicroBatcher {
public:
    using TimePoint = Clock::TimePoint;
    using Duration = Clock::Duration;

    // `max_items` below 1 acts as 1; a negative `max_wait` as 0.
    MicroBatcher(size_t max_items, Duration max_wait)
        : max_items_(std::max<size_t>(max_items, 1)),
          max_wait_(std::max(max_wait, Duration::zero())) {}

    // Adds `item`. Returns the pending batch, `item` included, when that makes it full or when
    // its oldest item is already due (a late Poll loses no time); nullopt otherwise.
    std::optional<std::vector<T>> Add(T item, TimePoint now) {
        if (pending_.empty()) oldest_ = now;
        pending_.push_back(std::move(item));
        if (pending_.size() >= max_items_ || Due(now)) return Take();
        return std::nullopt;
    }

    // Returns the pending batch once its oldest item has waited max_wait; nullopt before that
    // or when nothing is pending.
    std::optional<std::vector<T>> Poll(TimePoint now) {
        if (pending_.empty() || !Due(now)) return std::nullopt;
        return Take();
    }

    // When the pending batch is due; nullopt when nothing is pending.
    std::optional<TimePoint> NextDeadline() const {
        if (pending_.empty()) return std::nullopt;
        return SaturatingAdd(oldest_, max_wait_);
    }

    // Returns whatever is pending, due or not (shutdown, or a drain before a rebalance).
    std::vector<T> Flush() { return Take(); }

    size_t pending() const { return pending_.size(); }
    size_t max_items() const { return max_items_; }

private:
    // Compared as a difference: oldest_ + max_wait_ overflows for Duration::max().
    bool Due(TimePoint now) const { return now - oldest_ >= max_wait_; }

    std::vector<T> Take() {
        std::vector<T> batch;
        batch.swap(pending_);
        return batch;
    }

    const size_t max_items_;
    const Duration max_wait_;
    std::vector<T> pending_;
    TimePoint oldest_;  // when the first pending item was added
};

// Keeps the latest item per key and releases it once the key has been quiet (no Add) for
// `quiet`, or once `max_delay` has passed since the first Add of the burst even if updates
// keep coming, so a key updated without pause is still released regularly. Each replaced
// item counts as coalesced.
//
// Keys released by one Poll come in the order of their deadlines (ties: the key first added).
template <typename T>
class Debouncer {
public:
    using TimePoint = Clock::TimePoint;
    using Duration = Clock::Duration;

    struct Released {
        std::string key;
        T item;               // the latest item added under key
        uint64_t coalesced;   // earlier items of this burst that it replaced
        TimePoint first_add;  // when the burst began
    };

    // Negative durations act as 0. A max_delay of Duration::max() means no limit.
    Debouncer(Duration quiet, Duration max_delay)
        : quiet_(std::max(quiet, Duration::zero())),
          max_delay_(std::max(max_delay, Duration::zero())) {}

    // Adds `item` under `key`, replacing (coalescing) the item pending for that key if there is
    // one, which also restarts the key's quiet period. Returns the replaced item, so the caller
    // can settle it (a stage acks a superseded delivery); nullopt when nothing was pending.
    std::optional<T> Add(std::string key, T item, TimePoint now) {
        auto found = entries_.find(key);
        if (found == entries_.end()) {
            Entry entry{std::move(item), now, now, 0, deadlines_.end()};
            found = entries_.emplace(std::move(key), std::move(entry)).first;
            Schedule(found);
            return std::nullopt;
        }

        Entry& entry = found->second;
        std::optional<T> replaced(std::move(entry.item));
        entry.item = std::move(item);
        entry.last_add = now;
        ++entry.coalesced;
        ++coalesced_;
        deadlines_.erase(entry.deadline);
        Schedule(found);
        return replaced;
    }

    // Removes and returns the items whose key is due at `now`.
    std::vector<Released> Poll(TimePoint now) {
        std::vector<Released> released;
        while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
            released.push_back(Release(deadlines_.begin()->second));
        }
        return released;
    }

    // The earliest time a key is due; nullopt when nothing is pending.
    std::optional<TimePoint> NextDeadline() const {
        if (deadlines_.empty()) return std::nullopt;
        return deadlines_.begin()->first;
    }

    // Removes and returns every pending item, due or not, in deadline order.
    std::vector<Released> Flush() {
        std::vector<Released> released;
        while (!deadlines_.empty()) released.push_back(Release(deadlines_.begin()->second));
        return released;
    }

    size_t pending() const { return entries_.size(); }
    // Items replaced by a later one since construction; a counter for metrics.
    uint64_t coalesced() const { return coalesced_; }

private:
    // Deadline -> key. A multimap keeps keys with equal deadlines in insertion order.
    using Deadlines = std::multimap<TimePoint, std::string>;

    struct Entry {
        T item;
        TimePoint first_add;
        TimePoint last_add;
        uint64_t coalesced;
        typename Deadlines::iterator deadline;
    };
    using Entries = std::unordered_map<std::string, Entry>;

    void Schedule(typename Entries::iterator it) {
        const Entry& entry = it->second;
        const TimePoint due = std::min(SaturatingAdd(entry.last_add, quiet_),
                                       SaturatingAdd(entry.first_add, max_delay_));
        it->second.deadline = deadlines_.emplace(due, it->first);
    }

    Released Release(const std::string& key) {
        auto it = entries_.find(key);
        Entry& entry = it->second;
        Released out{it->first, std::move(entry.item), entry.coalesced, entry.first_add};
        deadlines_.erase(entry.deadline);
        entries_.erase(it);
        return out;
    }

    const Duration quiet_;
    const Duration max_delay_;
    Entries entries_;
    Deadlines deadlines_;
    uint64_t coalesced_ = 0;
};

}  // namespace eventloom
