// The indexer: keeps a LiveIndex up to date with a topic of document events (docs/rag.md).
//
// One thread reads the source topic through the consumer group "index.<name>.<epoch>" and, for
// each fetched batch (sorted by partition and offset): skips events the index has already
// applied (so a redelivery after a restart embeds nothing again), sends malformed document
// events to the dead-letter topic with the reason (and marks them applied), chunks the
// upserts, embeds all their chunks in one call, and applies each change in its own index
// transaction with the event's position. Only then is the event acknowledged.
//
// Changes of one partition are applied in offset order and the indexer never moves past an
// event it could not apply: an embedder or disk failure is retried in place, with backoff,
// until it succeeds or the indexer stops (a later event must not overtake it, or the index's
// applied position would hide it).
//
// The epoch names a generation of the index: `Rebuild` resets the index and starts a new
// epoch, so a fresh consumer group reads the topic from the start.
//
// Thread-safety: Start/Stop/CatchUp from one thread; stats() from any.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>

#include "eventloom/broker.h"
#include "eventloom/status.h"
#include "rag/chunker.h"
#include "rag/embedder.h"
#include "rag/live_index.h"
#include "runtime/retry.h"

namespace eventloom::rag {

struct IndexerOptions {
    std::string name;               // the index's name
    std::string source;             // the topic of document events
    std::string dead_letter_topic;  // empty: "index.<name>.dead-letter"
    ChunkOptions chunking;
    size_t batch = 128;  // events fetched (and their chunks embedded) together
    // Backoff for embedder and index failures, retried in place; max_attempts is not used.
    RetryPolicy retry{.max_attempts = 0,
                      .initial_delay = std::chrono::milliseconds(200),
                      .max_delay = std::chrono::milliseconds(10'000),
                      .multiplier = 2,
                      .jitter = 0.2};
    // Called on the indexer thread after each change is applied (for freshness metrics).
    std::function<void(const Delivery&)> on_applied;
};

struct IndexerStats {
    int64_t upserts = 0;
    int64_t deletes = 0;
    int64_t chunks = 0;         // chunks embedded and written
    int64_t skipped = 0;        // events already applied (redeliveries)
    int64_t dead_lettered = 0;  // malformed document events
    int64_t retries = 0;        // embedder or index failures retried
    int64_t lag = 0;            // events in the topic not yet fetched
};

// The consumer group name for an epoch: "index.<name>.<epoch>".
std::string IndexerGroup(const std::string& name, const std::string& epoch);

class Indexer {
public:
    // `broker`, `index` and `embedder` must outlive the indexer. The epoch is read from (or
    // created in) "<index dir>/EPOCH".
    static Result<std::unique_ptr<Indexer>> Make(Broker* broker, LiveIndex* index,
                                                 Embedder* embedder, std::string index_dir,
                                                 IndexerOptions options);
    ~Indexer();  // Stop()
    Indexer(const Indexer&) = delete;
    Indexer& operator=(const Indexer&) = delete;

    // Starts the indexing thread.
    Status Start();
    // Stops it; what was fetched and not applied goes back to the log.
    void Stop();

    // On the calling thread (the indexer must not be started): applies every event published
    // to the source topic before the call, reporting (applied, total) now and then. For
    // `eventloom index rebuild` and tests.
    Status CatchUp(const std::function<void(int64_t done, int64_t total)>& progress,
                   std::stop_token stop = {});
    // Empties the index and starts a new epoch (a new consumer group, from the start). The
    // indexer must not be started.
    Status Reset();

    IndexerStats stats() const;
    const std::string& epoch() const;

private:
    class Impl;
    explicit Indexer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace eventloom::rag
