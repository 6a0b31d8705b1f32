// A consumer group of the embedded broker: which events of a topic are unsettled, who holds
// their leases, what is due for redelivery, and the committed progress on disk.
//
// All members of a group in this process share one ConsumerGroup. Its state is guarded by mu_;
// publishing to the dead-letter topic and writing the progress file happen outside it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/file.h"
#include "common/priority_lanes.h"
#include "eventloom/broker.h"
#include "eventloom/log.h"

namespace eventloom {

class EmbeddedBroker;

class ConsumerGroup {
public:
    using Clock = std::chrono::steady_clock;

    // `broker` and `topic` must outlive the group.
    ConsumerGroup(EmbeddedBroker* broker, Topic* topic, ConsumerOptions options,
                  std::string progress_path, FileSystem* fs);

    // Reads the progress file (or starts per options.start) and opens a reader per partition.
    Status Open();

    const ConsumerOptions& options() const { return options_; }
    bool Compatible(const ConsumerOptions& other) const;

    uint64_t AddMember();
    // Makes the member's unsettled deliveries available to the others at once.
    void RemoveMember(uint64_t member);

    Result<std::vector<Delivery>> Fetch(uint64_t member, size_t max,
                                        std::chrono::milliseconds wait);
    Status Ack(const DeliveryTag& tag);
    Status Nack(const DeliveryTag& tag, std::chrono::milliseconds delay, std::string_view error);
    Status Term(const DeliveryTag& tag, std::string_view reason);
    Status ExtendLease(const DeliveryTag& tag);
    Status Commit();
    // Writes progress if it changed and commit_interval has passed; the broker's committer
    // thread calls it, so acks never wait for the file.
    Status CommitIfDue() { return WriteProgress(false); }
    ConsumerStats Stats();

private:
    enum class SlotState { kReady, kInFlight, kDelayed, kDeadLettering };

    struct Slot {
        std::shared_ptr<const Event> event;
        int64_t published_ms = 0;
        int attempts = 0;  // deliveries so far
        SlotState state = SlotState::kReady;
        uint64_t member = 0;
        uint64_t generation = 0;  // changes with every state change; timers carry it
        Clock::time_point deadline;
        std::string last_error;
        std::string dead_letter_reason;  // set once the event is bound for the dead-letter topic
    };

    struct PartitionState {
        std::unique_ptr<Reader> reader;
        std::map<int64_t, Slot> slots;  // unsettled events, by offset
        // From the progress file: offsets below restored_read_to were read before; of those,
        // only the ones in restored_unsettled (with their attempt counts) are still to do.
        int64_t restored_read_to = 0;
        std::unordered_map<int64_t, int> restored_unsettled;
        Clock::time_point last_error_logged{};
        Offset committed() const {
            return slots.empty() ? reader->next() : Offset(slots.begin()->first);
        }
    };

    struct Ref {
        int32_t partition;
        int64_t offset;
        uint64_t generation;
    };

    struct Timer {
        Clock::time_point at;
        Ref ref;
        bool operator>(const Timer& o) const { return at > o.at; }
    };

    struct DeadLetter {
        Ref ref;
        Event event;
    };

    Slot* Find(const Ref& ref);
    Result<Slot*> FindLeased(const DeliveryTag& tag);
    void MakeReady(int32_t partition, int64_t offset, Slot& slot);
    void FireTimers(Clock::time_point now);
    void ReadAhead();
    // Arrival-rate tracking for how long an idle Fetch polls before it sleeps.
    void NoteArrival(Clock::time_point now);
    std::chrono::microseconds SpinFor();
    size_t outstanding() const { return outstanding_; }
    void Settle(int32_t partition, int64_t offset);
    void ReleaseKey(const Slot& slot, int32_t partition, int64_t offset);
    DeadLetter PrepareDeadLetter(int32_t partition, int64_t offset, Slot& slot,
                                 std::string_view reason_in);
    void SendDeadLetters(std::vector<DeadLetter> letters);
    std::string ProgressJson();
    Status WriteProgress(bool force);

    EmbeddedBroker* broker_;
    Topic* topic_;
    const ConsumerOptions options_;
    const std::string progress_path_;
    FileSystem* fs_;

    std::mutex mu_;
    std::vector<PartitionState> partitions_;  // guarded by mu_
    PriorityLanes<Ref> ready_;                // guarded by mu_; reads ahead, by priority
    // Nack delays and dead-letter retries, which come in any order.
    std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;  // guarded by mu_
    // Lease expiries. Every lease is `options.lease` long, so they are added in deadline order
    // and a FIFO holds them: no heap work per delivery, no reallocation of a big array.
    std::deque<Timer> leases_;  // guarded by mu_
    // one_in_flight_per_key: the event that holds each key, and events waiting behind it.
    std::unordered_map<std::string, std::pair<int32_t, int64_t>> key_owner_;
    std::unordered_map<std::string, std::deque<Ref>> key_waiting_;
    size_t outstanding_ = 0;
    size_t next_partition_ = 0;
    uint64_t next_member_ = 1;
    uint64_t next_generation_ = 1;
    ConsumerStats stats_;
    bool dirty_ = false;
    Clock::time_point last_arrival_{};  // guarded by mu_
    double arrival_gap_us_ = 1e6;       // guarded by mu_: moving average of the gap
    Clock::time_point last_commit_;

    std::mutex commit_mu_;       // orders progress file writes; taken without mu_
    uint64_t progress_seq_ = 0;  // guarded by mu_
    uint64_t written_seq_ = 0;   // guarded by commit_mu_
};

}  // namespace eventloom
