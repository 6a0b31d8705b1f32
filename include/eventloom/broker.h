// The broker contract: publish events to topics, and consume them through consumer groups with
// leased deliveries. Two engines implement it: the embedded one over eventloom's own log, and
// NATS JetStream. The contract is shaped after JetStream's pull consumers, so both engines can
// pass the same test suite (tests/broker/broker_contract.h).
//
// A consumer group reads a topic; each event goes to one member of the group at a time, as a
// delivery under a lease. A delivery ends with:
//   Ack    done;
//   Nack   retry after a delay (the event is delivered again, attempt + 1);
//   Term   give up: the event goes to the group's dead-letter topic with the reason.
// A lease that expires without any of these redelivers the event. An event delivered
// max_deliveries times without an ack goes to the dead-letter topic too.
//
// Thread-safety: Broker and Consumer are thread-safe. Deliveries are values; settle each once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "eventloom/event.h"
#include "eventloom/log.h"
#include "eventloom/status.h"
#include "eventloom/types.h"

namespace eventloom {

struct PublishResult {
    PartitionId partition;
    Offset offset;
    bool duplicate = false;  // an event with this id was published within the dedupe window
};

enum class StartFrom { kEarliest, kLatest };

struct ConsumerOptions {
    std::string topic;
    std::string group;  // same rules as topic names
    // How long a delivery may stay unsettled before it is delivered again (JetStream: AckWait).
    std::chrono::milliseconds lease{30'000};
    // Deliveries of one event before it is dead-lettered; 0 means no limit.
    int max_deliveries = 5;
    // Where terminated and exhausted events go; empty: "<topic>.dead-letter".
    std::string dead_letter_topic;
    // The stage consuming, named in dead-letter events.
    std::string stage;
    // Events fetched but not yet settled, over the whole group: bounds memory and how far the
    // group reads ahead of its oldest unsettled event (JetStream: MaxAckPending).
    size_t max_outstanding = 1024;
    // Hold back an event while another event of the same partition key is unsettled, so a key's
    // events are processed one at a time, in order.
    bool one_in_flight_per_key = false;
    // Higher `priority` events are delivered first, but an event waits at most this long
    // behind higher ones before it goes next (see common/priority_lanes.h).
    std::chrono::milliseconds priority_max_wait{5000};
    // Where a new group starts.
    StartFrom start = StartFrom::kEarliest;
    // How often settled progress is persisted, in the background (also on Commit and when the
    // consumer closes).
    std::chrono::milliseconds commit_interval{100};
    // A Fetch that finds nothing polls at least this long before it sleeps, so an event
    // published within it is picked up in microseconds instead of after a thread wake-up (tens
    // of microseconds). While events arrive less than 500 us apart, it polls for 1.5 times the
    // usual gap instead (at most 500 us): a busy stream costs a polling core, a quiet one does
    // not. 0 turns polling off.
    std::chrono::microseconds spin{50};
};

// Identifies one delivery attempt; a settle call with a stale tag (the lease expired and the
// event was delivered again) fails with FailedPrecondition.
struct DeliveryTag {
    PartitionId partition;
    Offset offset;
    int attempt = 0;
};

struct Delivery {
    std::string topic;
    DeliveryTag tag;
    std::shared_ptr<const Event> event;
    int64_t published_ms = 0;  // when the event was appended to the topic
    std::chrono::steady_clock::time_point lease_expires;

    int attempt() const { return tag.attempt; }
};

struct ConsumerStats {
    int64_t lag = 0;            // events published but not yet delivered
    int64_t in_flight = 0;      // delivered, not settled
    int64_t waiting = 0;        // read ahead or waiting for a nack delay
    int64_t dead_lettered = 0;  // since the consumer opened
    int64_t redelivered = 0;    // lease expiries, since the consumer opened
};

class Consumer {
public:
    virtual ~Consumer() = default;  // releases this member's leases for redelivery at once

    // Up to `max` deliveries, higher `priority` first; waits up to `wait` for the first one.
    virtual Result<std::vector<Delivery>> Fetch(size_t max, std::chrono::milliseconds wait) = 0;

    virtual Status Ack(const DeliveryTag& tag) = 0;
    // Delivers the event again after `delay`. `error` is kept for the dead-letter record.
    virtual Status Nack(const DeliveryTag& tag, std::chrono::milliseconds delay,
                        std::string_view error = {}) = 0;
    // Sends the event to the dead-letter topic with `reason`; it is not delivered again.
    virtual Status Term(const DeliveryTag& tag, std::string_view reason) = 0;
    // Restarts the lease of an unsettled delivery (JetStream: in progress).
    virtual Status ExtendLease(const DeliveryTag& tag) = 0;

    // Persists settled progress now. At-most-once delivery acks and commits before processing.
    virtual Status Commit() = 0;

    virtual ConsumerStats Stats() = 0;
};

struct PublishOptions {
    // Drop the event if one with the same id was published within the dedupe window, and
    // return the first one's position. Redrive from a dead-letter topic turns this off.
    bool dedupe = true;
};

class Broker {
public:
    virtual ~Broker() = default;

    // Creates the topic if missing (a no-op when it exists with the same options).
    virtual Status CreateTopic(const std::string& name, const TopicOptions& options) = 0;
    virtual Result<TopicOptions> DescribeTopic(const std::string& name) = 0;
    virtual std::vector<std::string> ListTopics() = 0;

    // Publishes one event and returns once it is durable per the topic's policy. The event
    // must be valid (ValidateEvent); its partitionkey chooses the partition.
    virtual Result<PublishResult> Publish(const std::string& topic, const Event& event,
                                          const PublishOptions& options = {}) = 0;
    // Publishes several events and waits for durability once, for all of them.
    virtual Result<std::vector<PublishResult>> PublishBatch(const std::string& topic,
                                                            std::span<const Event> events,
                                                            const PublishOptions& options = {}) = 0;

    // Joins (creating when missing) the consumer group `options.group` on `options.topic`.
    virtual Result<std::unique_ptr<Consumer>> Subscribe(const ConsumerOptions& options) = 0;
};

struct EmbeddedBrokerOptions {
    std::string dir;  // the log directory; consumer groups live in "<dir>/_groups"
    // Ids remembered per topic for publish deduplication: those of the last `dedupe_window`,
    // at most `dedupe_max_ids` (the table is sized for them up front, so it never rehashes
    // on the publish path; about 100 bytes per id).
    std::chrono::seconds dedupe_window{120};
    size_t dedupe_max_ids = 100'000;
    FileSystem* fs = nullptr;  // nullptr: the real file system
};

// The embedded engine: one process owns the log directory; consumer group members are the
// consumers of that process.
Result<std::unique_ptr<Broker>> OpenEmbeddedBroker(const EmbeddedBrokerOptions& options);

// Extension attributes a dead-letter event carries besides the original event's.
inline constexpr std::string_view kDeadLetterReason = "deadletterreason";
inline constexpr std::string_view kDeadLetterStage = "deadletterstage";
inline constexpr std::string_view kDeadLetterAttempts = "deadletterattempts";
inline constexpr std::string_view kDeadLetterError = "deadlettererror";
inline constexpr std::string_view kDeadLetterSource = "deadlettersource";  // topic/partition/offset

}  // namespace eventloom
