#include "rag/indexer.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "common/file.h"
#include "common/logging.h"
#include "common/uuid.h"
#include "rag/document_event.h"

namespace eventloom::rag {
namespace {

constexpr std::chrono::milliseconds kLease{300'000};
constexpr std::chrono::milliseconds kFetchWait{200};

std::string NewEpoch() {
    std::string id = UuidToString(NewUuidV7());
    id.erase(std::remove(id.begin(), id.end(), '-'), id.end());
    return id;
}

Position PositionOf(const Delivery& d) {
    return Position{d.tag.partition.value(), d.tag.offset.value()};
}

// One event of a batch, on its way into the index.
struct Item {
    Delivery delivery;
    DocumentChange change;
    std::vector<Chunk> chunks;
    std::vector<Vector> vectors;
    Status failure;  // not OK: dead-letter it (when its turn comes, so positions stay in order)
};

}  // namespace

std::string IndexerGroup(const std::string& name, const std::string& epoch) {
    return fmt::format("index.{}.{}", name, epoch);
}

class Indexer::Impl {
public:
    Impl(Broker* broker, LiveIndex* index, Embedder* embedder, std::string dir,
         IndexerOptions options)
        : broker_(broker),
          index_(index),
          embedder_(embedder),
          dir_(std::move(dir)),
          options_(std::move(options)),
          log_(logging::Get("index")),
          rng_(std::random_device{}()) {
        if (options_.dead_letter_topic.empty()) {
            options_.dead_letter_topic = fmt::format("index.{}.dead-letter", options_.name);
        }
        options_.batch = std::max<size_t>(options_.batch, 1);
    }

    ~Impl() { Stop(); }

    Status LoadEpoch() {
        const std::string path = EpochPath();
        FileSystem* fs = FileSystem::Default();
        if (fs->Exists(path)) {
            EVENTLOOM_ASSIGN_OR_RETURN(epoch_, fs->ReadFile(path));
            while (!epoch_.empty() && (epoch_.back() == '\n' || epoch_.back() == ' ')) {
                epoch_.pop_back();
            }
            if (Status s = ValidateTopicName(IndexerGroup(options_.name, epoch_)); !s.ok()) {
                return DataLossError(
                    fmt::format("{}: not a valid index epoch ({}); delete the "
                                "file and run `eventloom index rebuild {}`",
                                path, s.message(), options_.name));
            }
            return Status::Ok();
        }
        return WriteEpoch(NewEpoch());
    }

    Status WriteEpoch(std::string epoch) {
        EVENTLOOM_RETURN_IF_ERROR(FileSystem::Default()->CreateDirs(dir_));
        EVENTLOOM_RETURN_IF_ERROR(
            FileSystem::Default()->WriteFileAtomic(EpochPath(), epoch + "\n"));
        epoch_ = std::move(epoch);
        return Status::Ok();
    }

    Status Start() {
        if (thread_.joinable()) return FailedPreconditionError("the indexer is already running");
        EVENTLOOM_ASSIGN_OR_RETURN(std::unique_ptr<Consumer> consumer, Subscribe());
        thread_ = std::jthread([this, c = std::move(consumer)](std::stop_token stop) mutable {
            // Run logs why it stopped; nothing waits for its Status.
            Run(*c, stop, nullptr).IgnoreError();
        });
        return Status::Ok();
    }

    void Stop() {
        if (!thread_.joinable()) return;
        thread_.request_stop();
        thread_.join();
    }

    Status CatchUp(const std::function<void(int64_t, int64_t)>& progress, std::stop_token stop) {
        if (thread_.joinable()) return FailedPreconditionError("the indexer is running");
        EVENTLOOM_ASSIGN_OR_RETURN(std::unique_ptr<Consumer> consumer, Subscribe());
        return Run(*consumer, stop, &progress);
    }

    Status Reset() {
        if (thread_.joinable()) return FailedPreconditionError("the indexer is running");
        // The new epoch first: should the reset not complete, the new group still reads the
        // topic from the start, and the positions in the index keep it consistent.
        EVENTLOOM_RETURN_IF_ERROR(WriteEpoch(NewEpoch()));
        return index_->Reset();
    }

    IndexerStats stats() const {
        std::lock_guard<std::mutex> lock(stats_mu_);
        return stats_;
    }

    const std::string& epoch() const { return epoch_; }

private:
    std::string EpochPath() const { return (std::filesystem::path(dir_) / "EPOCH").string(); }

    Result<std::unique_ptr<Consumer>> Subscribe() {
        ConsumerOptions o;
        o.topic = options_.source;
        o.group = IndexerGroup(options_.name, epoch_);
        o.stage = fmt::format("index.{}", options_.name);
        o.dead_letter_topic = options_.dead_letter_topic;
        o.lease = kLease;
        o.max_deliveries = 0;  // failures are retried in place; only malformed events leave
        o.max_outstanding = options_.batch * 2;
        // FIFO: the index applies a partition's events in offset order.
        o.priority_max_wait = std::chrono::milliseconds(0);
        o.start = StartFrom::kEarliest;
        o.spin = std::chrono::microseconds(0);
        return broker_->Subscribe(o);
    }

    // The indexing loop. With `progress`, returns once the topic's events published before the
    // call are applied.
    Status Run(Consumer& consumer, std::stop_token stop,
               const std::function<void(int64_t, int64_t)>* progress) {
        int64_t done = 0;
        int64_t total = 0;
        if (progress) {
            ConsumerStats s = consumer.Stats();
            total = s.lag + s.waiting + s.in_flight;
            (*progress)(0, total);
        }
        while (!stop.stop_requested()) {
            Result<std::vector<Delivery>> batch = consumer.Fetch(options_.batch, kFetchWait);
            if (!batch.ok()) {
                log_->warn("index={} fetch from '{}' failed: {}", options_.name, options_.source,
                           batch.status().ToString());
                if (!Sleep(std::chrono::milliseconds(500), stop)) break;
                continue;
            }
            const ConsumerStats cs = consumer.Stats();
            {
                std::lock_guard<std::mutex> lock(stats_mu_);
                stats_.lag = cs.lag;
            }
            if (batch->empty()) {
                if (progress && cs.lag == 0 && cs.waiting == 0 && cs.in_flight == 0) {
                    (*progress)(done, std::max(done, total));
                    return Status::Ok();
                }
                continue;
            }
            Status st = Process(consumer, std::move(*batch), stop);
            if (!st.ok()) {
                if (st.code() == StatusCode::kCancelled) break;
                log_->error("index={} stopped: {}", options_.name, st.ToString());
                return st;
            }
            if (progress) {
                done += static_cast<int64_t>(last_batch_size_);
                (*progress)(done, std::max(done, total));
            }
        }
        return progress ? CancelledError("stopped before the index caught up") : Status::Ok();
    }

    Status Process(Consumer& consumer, std::vector<Delivery> batch, std::stop_token stop) {
        last_batch_size_ = batch.size();
        std::sort(batch.begin(), batch.end(), [](const Delivery& a, const Delivery& b) {
            return std::tie(a.tag.partition, a.tag.offset) <
                   std::tie(b.tag.partition, b.tag.offset);
        });
        const AppliedOffsets applied = index_->applied();
        std::vector<Item> items;
        items.reserve(batch.size());
        int64_t skipped = 0;
        for (Delivery& d : batch) {
            auto it = applied.find(d.tag.partition.value());
            if (it != applied.end() && d.tag.offset.value() < it->second) {
                ++skipped;
                Settle(consumer.Ack(d.tag), d);
                continue;
            }
            Result<DocumentChange> change = ParseDocumentEvent(*d.event);
            Item item{std::move(d), {}, {}, {}, change.status()};
            if (change.ok()) {
                item.change = std::move(change).value();
                if (item.change.op == DocumentChange::Op::kUpsert) {
                    item.chunks = ChunkText(item.change.text, options_.chunking);
                }
            }
            items.push_back(std::move(item));
        }
        if (skipped > 0) {
            std::lock_guard<std::mutex> lock(stats_mu_);
            stats_.skipped += skipped;
        }
        EVENTLOOM_RETURN_IF_ERROR(EmbedAll(consumer, items, stop));
        // In offset order: a dead-lettered event marks its position applied, which must not
        // come before the events ahead of it.
        for (Item& item : items) {
            if (!item.failure.ok()) {
                EVENTLOOM_RETURN_IF_ERROR(DeadLetter(consumer, item.delivery, item.failure, stop));
            } else {
                EVENTLOOM_RETURN_IF_ERROR(Apply(consumer, item, stop));
            }
        }
        return Status::Ok();
    }

    // Embeds the chunks of every upsert in one call; when the embedder refuses the batch (not
    // a transient failure), document by document, marking those it refuses for the
    // dead-letter topic.
    Status EmbedAll(Consumer& consumer, std::vector<Item>& items, std::stop_token stop) {
        std::vector<Item*> todo;
        for (Item& item : items) {
            if (item.failure.ok() && !item.chunks.empty()) todo.push_back(&item);
        }
        return Embed(consumer, todo, stop);
    }

    Status Embed(Consumer& consumer, const std::vector<Item*>& items, std::stop_token stop) {
        if (items.empty()) return Status::Ok();
        std::vector<std::string> texts;
        for (const Item* item : items) {
            for (const Chunk& c : item->chunks) texts.push_back(c.text);
        }
        std::vector<Vector> vectors;
        Status st = Persist(
            [&]() -> Status {
                EVENTLOOM_ASSIGN_OR_RETURN(vectors, embedder_->Embed(texts));
                if (vectors.size() != texts.size()) {
                    return InternalError(
                        fmt::format("the embedder returned {} vectors for {} "
                                    "texts",
                                    vectors.size(), texts.size()));
                }
                return Status::Ok();
            },
            "embedding", consumer, items, stop);
        if (st.ok()) {
            size_t next = 0;
            for (Item* item : items) {
                item->vectors.clear();
                for (size_t i = 0; i < item->chunks.size(); ++i) {
                    item->vectors.push_back(std::move(vectors[next++]));
                }
            }
            return Status::Ok();
        }
        if (st.code() == StatusCode::kCancelled) return st;
        if (items.size() == 1) {
            items[0]->failure = st.WithContext("embedding");
            return Status::Ok();
        }
        for (Item* item : items) EVENTLOOM_RETURN_IF_ERROR(Embed(consumer, {item}, stop));
        return Status::Ok();
    }

    Status Apply(Consumer& consumer, Item& item, std::stop_token stop) {
        const Position at = PositionOf(item.delivery);
        const std::vector<Item*> none;
        bool changed = false;
        const size_t chunk_count = item.chunks.size();
        Status st = Persist(
            [&]() -> Status {
                Result<bool> r = false;
                if (item.change.op == DocumentChange::Op::kDelete) {
                    r = index_->Delete(item.change.id, at);
                } else {
                    std::vector<DocumentChunk> chunks;
                    chunks.reserve(chunk_count);
                    for (size_t i = 0; i < chunk_count; ++i) {
                        chunks.push_back(DocumentChunk{item.chunks[i].index, item.chunks[i].text,
                                                       item.vectors[i]});
                    }
                    r = index_->Upsert(item.change.id, std::move(chunks), item.change.metadata, at);
                }
                if (!r.ok()) return r.status();
                changed = *r;
                return Status::Ok();
            },
            "writing the index", consumer, none, stop, /*all_retryable=*/true);
        EVENTLOOM_RETURN_IF_ERROR(st);
        {
            std::lock_guard<std::mutex> lock(stats_mu_);
            if (!changed) {
                ++stats_.skipped;
            } else if (item.change.op == DocumentChange::Op::kDelete) {
                ++stats_.deletes;
            } else {
                ++stats_.upserts;
                stats_.chunks += static_cast<int64_t>(chunk_count);
            }
        }
        if (options_.on_applied) options_.on_applied(item.delivery);
        Settle(consumer.Ack(item.delivery.tag), item.delivery);
        return Status::Ok();
    }

    Status DeadLetter(Consumer& consumer, const Delivery& d, const Status& reason,
                      std::stop_token stop) {
        log_->warn("index={} dead-letters event {} ({}/{}@{}): {}", options_.name, d.event->id,
                   d.topic, d.tag.partition.value(), d.tag.offset.value(), reason.message());
        // Marked applied first: a redelivery of it is then skipped, not dead-lettered twice.
        const std::vector<Item*> none;
        EVENTLOOM_RETURN_IF_ERROR(Persist([&] { return index_->Skip(PositionOf(d)); },
                                          "writing the index", consumer, none, stop,
                                          /*all_retryable=*/true));
        Settle(consumer.Term(d.tag, reason.message()), d);
        std::lock_guard<std::mutex> lock(stats_mu_);
        ++stats_.dead_lettered;
        return Status::Ok();
    }

    // Runs `op` until it succeeds, retrying transient failures (every failure when
    // `all_retryable`: an index write must not be skipped) with backoff, and extending the
    // leases of `items` meanwhile. Cancelled when the indexer stops first.
    template <typename Op>
    Status Persist(Op&& op, std::string_view what, Consumer& consumer,
                   const std::vector<Item*>& items, std::stop_token stop,
                   bool all_retryable = false) {
        for (int attempt = 1;; ++attempt) {
            Status st = op();
            if (st.ok()) return st;
            if (st.code() == StatusCode::kCancelled) return st;
            if (st.code() == StatusCode::kFailedPrecondition && all_retryable) {
                return st;  // the index is closed: nothing to wait for
            }
            if (!all_retryable && !IsRetryable(st.code())) return st;
            const std::chrono::milliseconds delay =
                RetryDelay(st, options_.retry, std::min(attempt, 30), rng_);
            log_->warn("index={} {} failed (attempt {}), retrying in {} ms: {}", options_.name,
                       what, attempt, delay.count(), st.ToString());
            {
                std::lock_guard<std::mutex> lock(stats_mu_);
                ++stats_.retries;
            }
            for (const Item* item : items) consumer.ExtendLease(item->delivery.tag).IgnoreError();
            if (!Sleep(delay, stop)) return CancelledError("the indexer is stopping");
        }
    }

    // A failed ack is harmless: the event comes back and is skipped by its position.
    void Settle(const Status& st, const Delivery& d) {
        if (!st.ok()) {
            log_->debug("index={} settling {}/{}@{}: {}", options_.name, d.topic,
                        d.tag.partition.value(), d.tag.offset.value(), st.ToString());
        }
    }

    // False when stopped first.
    static bool Sleep(std::chrono::milliseconds delay, std::stop_token stop) {
        const auto until = std::chrono::steady_clock::now() + delay;
        while (!stop.stop_requested()) {
            const auto now = std::chrono::steady_clock::now();
            if (now >= until) return true;
            std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
                until - now, std::chrono::milliseconds(50)));
        }
        return false;
    }

    Broker* broker_;
    LiveIndex* index_;
    Embedder* embedder_;
    const std::string dir_;
    IndexerOptions options_;
    std::shared_ptr<spdlog::logger> log_;
    std::mt19937_64 rng_;
    std::string epoch_;
    size_t last_batch_size_ = 0;
    mutable std::mutex stats_mu_;
    IndexerStats stats_;
    std::jthread thread_;
};

Indexer::Indexer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Indexer::~Indexer() = default;

Result<std::unique_ptr<Indexer>> Indexer::Make(Broker* broker, LiveIndex* index, Embedder* embedder,
                                               std::string index_dir, IndexerOptions options) {
    if (options.name.empty()) return InvalidArgumentError("indexer: the index has no name");
    EVENTLOOM_RETURN_IF_ERROR(ValidateTopicName(options.source)
                                  .WithContext(fmt::format("index '{}': source", options.name)));
    EVENTLOOM_RETURN_IF_ERROR(ValidateChunkOptions(options.chunking)
                                  .WithContext(fmt::format("index '{}': chunking", options.name)));
    auto impl =
        std::make_unique<Impl>(broker, index, embedder, std::move(index_dir), std::move(options));
    EVENTLOOM_RETURN_IF_ERROR(impl->LoadEpoch());
    return std::unique_ptr<Indexer>(new Indexer(std::move(impl)));
}

Status Indexer::Start() { return impl_->Start(); }
void Indexer::Stop() { impl_->Stop(); }
Status Indexer::CatchUp(const std::function<void(int64_t, int64_t)>& progress,
                        std::stop_token stop) {
    return impl_->CatchUp(progress, stop);
}
Status Indexer::Reset() { return impl_->Reset(); }
IndexerStats Indexer::stats() const { return impl_->stats(); }
const std::string& Indexer::epoch() const { return impl_->epoch(); }

}  // namespace eventloom::rag
