// The SQLite state store: key/value with revisions and TTL, lists, RunOnce, outbox, purging,
// persistence and the errors of a bad path.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>
#include <vector>

#include "eventloom/state.h"
#include "support/temp_dir.h"

namespace eventloom::testing {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kStartMs = 1'700'000'000'000;

class StateStoreTest : public ::testing::Test {
protected:
    void SetUp() override { Open(); }

    StateStoreOptions Options() {
        StateStoreOptions options;
        options.path = dir_.Sub("state.db");
        options.idempotency_retention = std::chrono::hours(1);
        options.now_ms = [this] { return now_ms_.load(); };
        return options;
    }

    void Open() { Open(Options()); }
    void Open(const StateStoreOptions& options) {
        auto store = OpenSqliteStateStore(options);
        ASSERT_TRUE(store.ok()) << store.status().ToString();
        store_ = std::move(store).value();
    }
    void Reopen() {
        store_.reset();
        Open();
    }

    void Advance(milliseconds d) { now_ms_ += d.count(); }

    int64_t Put(std::string_view key, std::string_view value, milliseconds ttl = milliseconds(0)) {
        auto revision = store_->Put("b", key, value, ttl);
        EXPECT_TRUE(revision.ok()) << revision.status().ToString();
        return revision.value_or(-1);
    }

    // The value of "b"/key, or "<absent>".
    std::string Value(std::string_view key) {
        auto entry = store_->Get("b", key);
        EXPECT_TRUE(entry.ok()) << entry.status().ToString();
        if (!entry.ok() || !entry->has_value()) return "<absent>";
        return (*entry)->value;
    }

    std::vector<std::string> Range(std::string_view list, int64_t from, size_t max = 100) {
        auto items = store_->ListRange(list, from, max);
        EXPECT_TRUE(items.ok()) << items.status().ToString();
        return items.value_or(std::vector<std::string>{});
    }

    int64_t Length(std::string_view list) {
        auto length = store_->ListLength(list);
        EXPECT_TRUE(length.ok()) << length.status().ToString();
        return length.value_or(-1);
    }

    std::vector<std::string> PendingPayloads() {
        auto pending = store_->OutboxPending(100);
        EXPECT_TRUE(pending.ok()) << pending.status().ToString();
        std::vector<std::string> payloads;
        for (const auto& m : pending.value_or(std::vector<OutboxMessage>{})) {
            payloads.push_back(m.payload);
        }
        return payloads;
    }

    bool Seen(std::string_view key) {
        auto seen = store_->Seen("s", key);
        EXPECT_TRUE(seen.ok()) << seen.status().ToString();
        return seen.value_or(false);
    }

    TempDir dir_;
    std::atomic<int64_t> now_ms_{kStartMs};
    std::unique_ptr<StateStore> store_;
};

// ---- Key/value ------------------------------------------------------------------------------

TEST_F(StateStoreTest, RevisionsStartAtOneAndIncreaseByOne) {
    EXPECT_EQ(Put("k", "a"), 1);
    EXPECT_EQ(Put("k", "b"), 2);
    EXPECT_EQ(Put("k", "c"), 3);
    EXPECT_EQ(Put("other", "x"), 1);
}

TEST_F(StateStoreTest, GetReturnsTheLatestValueAndRevision) {
    Put("k", "a");
    Put("k", "b");
    auto entry = store_->Get("b", "k");
    ASSERT_TRUE(entry.ok()) << entry.status().ToString();
    ASSERT_TRUE(entry->has_value());
    EXPECT_EQ((*entry)->value, "b");
    EXPECT_EQ((*entry)->revision, 2);
    EXPECT_EQ((*entry)->expires_at_ms, 0);
}

TEST_F(StateStoreTest, MissingKeyIsAbsent) { EXPECT_EQ(Value("nope"), "<absent>"); }

TEST_F(StateStoreTest, ValuesAreBinarySafe) {
    std::string bytes("a\0b\xff", 4);
    Put("bin", bytes);
    Put("empty", "");
    EXPECT_EQ(Value("bin"), bytes);
    EXPECT_EQ(Value("empty"), "");
}

TEST_F(StateStoreTest, BucketsAreSeparate) {
    ASSERT_TRUE(store_->Put("b1", "k", "one").ok());
    ASSERT_TRUE(store_->Put("b2", "k", "two").ok());
    EXPECT_EQ(store_->Get("b1", "k")->value().value, "one");
    EXPECT_EQ(store_->Get("b2", "k")->value().value, "two");
}

TEST_F(StateStoreTest, CompareAndSetCreatesAMissingKeyOnlyOnce) {
    auto first = store_->CompareAndSet("b", "k", 0, "first");
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    EXPECT_EQ(*first, 1);

    auto second = store_->CompareAndSet("b", "k", 0, "second");
    EXPECT_EQ(second.status().code(), StatusCode::kAborted);
    EXPECT_EQ(Value("k"), "first");
}

TEST_F(StateStoreTest, CompareAndSetWithTheCurrentRevisionWrites) {
    int64_t revision = Put("k", "a");
    auto next = store_->CompareAndSet("b", "k", revision, "b");
    ASSERT_TRUE(next.ok()) << next.status().ToString();
    EXPECT_EQ(*next, revision + 1);
    EXPECT_EQ(Value("k"), "b");
}

TEST_F(StateStoreTest, CompareAndSetWithAStaleRevisionIsAbortedNamingBoth) {
    Put("counter", "1");
    Put("counter", "2");
    auto stale = store_->CompareAndSet("b", "counter", 1, "x");
    EXPECT_EQ(stale.status().code(), StatusCode::kAborted);
    EXPECT_THAT(stale.status().message(), HasSubstr("bucket 'b'"));
    EXPECT_THAT(stale.status().message(), HasSubstr("key 'counter'"));
    EXPECT_THAT(stale.status().message(), HasSubstr("expected revision 1"));
    EXPECT_THAT(stale.status().message(), HasSubstr("current revision 2"));
    EXPECT_EQ(Value("counter"), "2");
}

TEST_F(StateStoreTest, CompareAndSetOnAMissingKeyWithARevisionIsAborted) {
    auto result = store_->CompareAndSet("b", "k", 3, "x");
    EXPECT_EQ(result.status().code(), StatusCode::kAborted);
    EXPECT_THAT(result.status().message(), HasSubstr("current revision 0 (missing)"));
}

TEST_F(StateStoreTest, EntryExpiresWhenTheClockPassesItsTtl) {
    Put("session", "x", milliseconds(1000));
    auto entry = store_->Get("b", "session");
    ASSERT_TRUE(entry.ok() && entry->has_value());
    EXPECT_EQ((*entry)->expires_at_ms, kStartMs + 1000);

    Advance(milliseconds(999));
    EXPECT_EQ(Value("session"), "x");
    Advance(milliseconds(1));
    EXPECT_EQ(Value("session"), "<absent>");
}

TEST_F(StateStoreTest, PutWithoutTtlClearsAnEarlierTtl) {
    Put("k", "a", milliseconds(10));
    Put("k", "b");
    Advance(milliseconds(100));
    EXPECT_EQ(Value("k"), "b");
}

TEST_F(StateStoreTest, ExpiredKeyCanBeCreatedAgainWithAHigherRevision) {
    int64_t old_revision = Put("k", "a", milliseconds(10));
    Advance(milliseconds(10));
    auto created = store_->CompareAndSet("b", "k", 0, "again");
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    EXPECT_GT(*created, old_revision);
    EXPECT_EQ(store_->CompareAndSet("b", "k", old_revision, "x").status().code(),
              StatusCode::kAborted);
}

TEST_F(StateStoreTest, NegativeTtlIsInvalid) {
    auto result = store_->Put("b", "k", "v", milliseconds(-1));
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(result.status().message(), HasSubstr("ttl"));
}

TEST_F(StateStoreTest, LongestTtlDoesNotOverflow) {
    Put("k", "v", milliseconds::max());
    Advance(std::chrono::hours(24 * 365 * 100));
    EXPECT_EQ(Value("k"), "v");
}

TEST_F(StateStoreTest, DeleteRemovesTheEntry) {
    Put("k", "a");
    ASSERT_TRUE(store_->Delete("b", "k").ok());
    EXPECT_EQ(Value("k"), "<absent>");
}

TEST_F(StateStoreTest, DeleteOfAMissingKeyIsOk) { EXPECT_TRUE(store_->Delete("b", "nope").ok()); }

TEST_F(StateStoreTest, RevisionFromBeforeADeleteNeverMatchesTheNewKey) {
    Put("k", "a");
    int64_t before_delete = Put("k", "b");
    ASSERT_TRUE(store_->Delete("b", "k").ok());
    Put("k", "c");  // re-created
    Put("k", "d");

    auto stale = store_->CompareAndSet("b", "k", before_delete, "lost update");
    EXPECT_EQ(stale.status().code(), StatusCode::kAborted);
    EXPECT_EQ(Value("k"), "d");
}

TEST_F(StateStoreTest, ConcurrentCompareAndSetLosesNoIncrement) {
    constexpr int kThreads = 4;
    constexpr int kIncrements = 200;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([this] {
            for (int i = 0; i < kIncrements; ++i) {
                for (;;) {
                    auto entry = store_->Get("b", "counter");
                    ASSERT_TRUE(entry.ok()) << entry.status().ToString();
                    int64_t revision = entry->has_value() ? (*entry)->revision : 0;
                    int value = entry->has_value() ? std::stoi((*entry)->value) : 0;
                    auto set =
                        store_->CompareAndSet("b", "counter", revision, std::to_string(value + 1));
                    if (set.ok()) break;
                    ASSERT_EQ(set.status().code(), StatusCode::kAborted) << set.status().ToString();
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(Value("counter"), std::to_string(kThreads * kIncrements));
}

// ---- Lists ----------------------------------------------------------------------------------

TEST_F(StateStoreTest, ListAppendReturnsConsecutiveIndices) {
    for (int64_t i = 0; i < 3; ++i) {
        auto index = store_->ListAppend("chat", "m" + std::to_string(i));
        ASSERT_TRUE(index.ok()) << index.status().ToString();
        EXPECT_EQ(*index, i);
    }
    EXPECT_EQ(Length("chat"), 3);
}

TEST_F(StateStoreTest, ListRangeReturnsItemsOldestFirstFromAnIndex) {
    for (const char* m : {"a", "b", "c", "d"}) ASSERT_TRUE(store_->ListAppend("chat", m).ok());
    EXPECT_THAT(Range("chat", 0), ElementsAre("a", "b", "c", "d"));
    EXPECT_THAT(Range("chat", 1, 2), ElementsAre("b", "c"));
    EXPECT_THAT(Range("chat", 4), ElementsAre());
}

TEST_F(StateStoreTest, ListRangeWithNegativeFromCountsFromTheEnd) {
    for (const char* m : {"a", "b", "c", "d"}) ASSERT_TRUE(store_->ListAppend("chat", m).ok());
    EXPECT_THAT(Range("chat", -2), ElementsAre("c", "d"));
    EXPECT_THAT(Range("chat", -10), ElementsAre("a", "b", "c", "d"));
    EXPECT_THAT(Range("chat", INT64_MIN), ElementsAre("a", "b", "c", "d"));
}

TEST_F(StateStoreTest, MissingListIsEmpty) {
    EXPECT_EQ(Length("nope"), 0);
    EXPECT_THAT(Range("nope", 0), ElementsAre());
    EXPECT_THAT(Range("nope", -5), ElementsAre());
    EXPECT_TRUE(store_->ListTrim("nope", 0).ok());
}

TEST_F(StateStoreTest, ListTrimKeepsTheNewestItemsAndTheirIndices) {
    for (const char* m : {"a", "b", "c", "d", "e"}) {
        ASSERT_TRUE(store_->ListAppend("chat", m).ok());
    }
    ASSERT_TRUE(store_->ListTrim("chat", 2).ok());
    EXPECT_EQ(Length("chat"), 2);
    EXPECT_THAT(Range("chat", 0), ElementsAre("d", "e"));
    EXPECT_THAT(Range("chat", 4), ElementsAre("e"));

    auto next = store_->ListAppend("chat", "f");
    ASSERT_TRUE(next.ok());
    EXPECT_EQ(*next, 5);
    EXPECT_THAT(Range("chat", -2), ElementsAre("e", "f"));
}

TEST_F(StateStoreTest, ListTrimToZeroEmptiesTheList) {
    ASSERT_TRUE(store_->ListAppend("chat", "a").ok());
    ASSERT_TRUE(store_->ListTrim("chat", 0).ok());
    EXPECT_EQ(Length("chat"), 0);
    EXPECT_THAT(Range("chat", -5), ElementsAre());
}

TEST_F(StateStoreTest, ListTrimKeepingMoreThanTheLengthChangesNothing) {
    for (const char* m : {"a", "b"}) ASSERT_TRUE(store_->ListAppend("chat", m).ok());
    ASSERT_TRUE(store_->ListTrim("chat", SIZE_MAX).ok());
    EXPECT_THAT(Range("chat", 0), ElementsAre("a", "b"));
}

// ---- RunOnce --------------------------------------------------------------------------------

TEST_F(StateStoreTest, RunOnceAppliesTheBodyAndCommitsItsWrites) {
    auto outcome = store_->RunOnce("s", "event-1", [](StateTransaction& tx) {
        EVENTLOOM_RETURN_IF_ERROR(tx.Put("b", "result", "42").status());
        EVENTLOOM_RETURN_IF_ERROR(tx.ListAppend("chat", "answer").status());
        return tx.OutboxAdd("results", "42").status();
    });
    ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
    EXPECT_EQ(*outcome, RunOnceOutcome::kApplied);
    EXPECT_EQ(Value("result"), "42");
    EXPECT_THAT(Range("chat", 0), ElementsAre("answer"));
    EXPECT_THAT(PendingPayloads(), ElementsAre("42"));
    EXPECT_TRUE(Seen("event-1"));
}

TEST_F(StateStoreTest, RunOnceOfARecordedKeyIsADuplicateAndSkipsTheBody) {
    int runs = 0;
    auto body = [&](StateTransaction& tx) {
        ++runs;
        return tx.ListAppend("chat", "answer").status();
    };
    ASSERT_EQ(store_->RunOnce("s", "event-1", body).value_or(RunOnceOutcome::kDuplicate),
              RunOnceOutcome::kApplied);

    auto again = store_->RunOnce("s", "event-1", body);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(*again, RunOnceOutcome::kDuplicate);
    EXPECT_EQ(runs, 1);
    EXPECT_EQ(Length("chat"), 1);
}

TEST_F(StateStoreTest, FailingBodyRollsBackEverythingAndRecordsNoKey) {
    Put("result", "before");
    auto outcome = store_->RunOnce("s", "event-1", [](StateTransaction& tx) {
        EVENTLOOM_RETURN_IF_ERROR(tx.Put("b", "result", "after").status());
        EVENTLOOM_RETURN_IF_ERROR(tx.Delete("b", "other"));
        EVENTLOOM_RETURN_IF_ERROR(tx.ListAppend("chat", "answer").status());
        EVENTLOOM_RETURN_IF_ERROR(tx.OutboxAdd("results", "after").status());
        return UnavailableError("model timed out");
    });
    EXPECT_EQ(outcome.status(), UnavailableError("model timed out"));
    EXPECT_EQ(Value("result"), "before");
    EXPECT_EQ(Length("chat"), 0);
    EXPECT_THAT(PendingPayloads(), ElementsAre());
    EXPECT_FALSE(Seen("event-1"));
}

TEST_F(StateStoreTest, RunOnceAfterAFailedBodyAppliesOnRetry) {
    ASSERT_FALSE(
        store_->RunOnce("s", "e", [](StateTransaction&) { return UnavailableError("x"); }).ok());
    auto retry = store_->RunOnce("s", "e", [](StateTransaction&) { return Status::Ok(); });
    ASSERT_TRUE(retry.ok()) << retry.status().ToString();
    EXPECT_EQ(*retry, RunOnceOutcome::kApplied);
}

TEST_F(StateStoreTest, BodySeesItsOwnWrites) {
    Put("k", "a");
    auto outcome = store_->RunOnce("s", "e", [](StateTransaction& tx) -> Status {
        EVENTLOOM_ASSIGN_OR_RETURN(auto before, tx.Get("b", "k"));
        EVENTLOOM_ASSIGN_OR_RETURN(int64_t revision,
                                   tx.CompareAndSet("b", "k", before->revision, "b"));
        EVENTLOOM_ASSIGN_OR_RETURN(auto after, tx.Get("b", "k"));
        if (after->value != "b" || after->revision != revision) {
            return InternalError("body does not see its write");
        }
        return Status::Ok();
    });
    ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
    EXPECT_EQ(Value("k"), "b");
}

TEST_F(StateStoreTest, BodyThatHandlesAConflictStillCommits) {
    Put("k", "a");
    auto outcome = store_->RunOnce("s", "e", [](StateTransaction& tx) {
        if (tx.CompareAndSet("b", "k", 0, "x").status().code() != StatusCode::kAborted) {
            return InternalError("expected a conflict");
        }
        return tx.Put("b", "fallback", "y").status();
    });
    ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
    EXPECT_EQ(Value("fallback"), "y");
}

TEST_F(StateStoreTest, ScopesKeepSeparateKeys) {
    auto body = [](StateTransaction&) { return Status::Ok(); };
    ASSERT_TRUE(store_->RunOnce("stage-a", "e", body).ok());
    auto other = store_->RunOnce("stage-b", "e", body);
    ASSERT_TRUE(other.ok());
    EXPECT_EQ(*other, RunOnceOutcome::kApplied);
}

TEST_F(StateStoreTest, CallingTheStoreFromABodyIsFailedPrecondition) {
    Status inner;
    auto outcome = store_->RunOnce("s", "e", [&](StateTransaction&) {
        inner = store_->Put("b", "k", "v").status();
        return Status::Ok();
    });
    EXPECT_TRUE(outcome.ok()) << outcome.status().ToString();
    EXPECT_EQ(inner.code(), StatusCode::kFailedPrecondition);
}

TEST_F(StateStoreTest, TransactionUsedFromAnotherThreadIsFailedPrecondition) {
    Status from_other_thread;
    auto outcome = store_->RunOnce("s", "e", [&](StateTransaction& tx) {
        std::thread t([&] { from_other_thread = tx.Put("b", "k", "v").status(); });
        t.join();
        return Status::Ok();
    });
    ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
    EXPECT_EQ(from_other_thread.code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(Value("k"), "<absent>");
}

TEST_F(StateStoreTest, ConcurrentRunOnceOfOneKeyAppliesExactlyOnce) {
    std::atomic<int> applied{0};
    std::atomic<int> duplicates{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            auto outcome = store_->RunOnce("s", "e", [](StateTransaction& tx) {
                return tx.ListAppend("chat", "answer").status();
            });
            ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
            (*outcome == RunOnceOutcome::kApplied ? applied : duplicates)++;
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(applied.load(), 1);
    EXPECT_EQ(duplicates.load(), 3);
    EXPECT_EQ(Length("chat"), 1);
}

// ---- Outbox ---------------------------------------------------------------------------------

TEST_F(StateStoreTest, OutboxPendingListsMessagesOldestFirst) {
    for (const char* payload : {"one", "two", "three"}) {
        ASSERT_TRUE(store_
                        ->RunOnce("s", payload,
                                  [&](StateTransaction& tx) {
                                      return tx.OutboxAdd("topic.results", payload).status();
                                  })
                        .ok());
    }
    auto pending = store_->OutboxPending(2);
    ASSERT_TRUE(pending.ok()) << pending.status().ToString();
    ASSERT_EQ(pending->size(), 2u);
    EXPECT_EQ((*pending)[0].payload, "one");
    EXPECT_EQ((*pending)[0].destination, "topic.results");
    EXPECT_EQ((*pending)[1].payload, "two");
    EXPECT_LT((*pending)[0].id, (*pending)[1].id);
}

TEST_F(StateStoreTest, OutboxDoneRemovesTheMessageAndIsIdempotent) {
    int64_t id = 0;
    ASSERT_TRUE(store_
                    ->RunOnce("s", "e",
                              [&](StateTransaction& tx) -> Status {
                                  EVENTLOOM_ASSIGN_OR_RETURN(id, tx.OutboxAdd("d", "p"));
                                  return Status::Ok();
                              })
                    .ok());
    ASSERT_TRUE(store_->OutboxDone(id).ok());
    EXPECT_THAT(PendingPayloads(), ElementsAre());
    EXPECT_TRUE(store_->OutboxDone(id).ok());
}

// ---- Housekeeping ---------------------------------------------------------------------------

TEST_F(StateStoreTest, PurgeExpiredRemovesOnlyExpiredEntries) {
    Put("short", "x", milliseconds(10));
    Put("long", "y", milliseconds(10'000));
    Put("forever", "z");
    Advance(milliseconds(10));

    auto purged = store_->PurgeExpired();
    ASSERT_TRUE(purged.ok()) << purged.status().ToString();
    EXPECT_EQ(*purged, 1);
    EXPECT_EQ(Value("long"), "y");
    EXPECT_EQ(Value("forever"), "z");
}

TEST_F(StateStoreTest, PurgedKeyIsRecreatedAboveItsOldRevision) {
    Put("k", "a", milliseconds(10));
    int64_t old_revision = Put("k", "b", milliseconds(10));
    Advance(milliseconds(10));
    ASSERT_TRUE(store_->PurgeExpired().ok());
    EXPECT_GT(Put("k", "c"), old_revision);
}

TEST_F(StateStoreTest, PurgeExpiredForgetsIdempotencyKeysPastTheirRetention) {
    auto body = [](StateTransaction&) { return Status::Ok(); };
    ASSERT_TRUE(store_->RunOnce("s", "old", body).ok());
    Advance(std::chrono::minutes(30));
    ASSERT_TRUE(store_->RunOnce("s", "recent", body).ok());
    Advance(std::chrono::minutes(30));  // "old" is now 1 hour old: the retention

    auto purged = store_->PurgeExpired();
    ASSERT_TRUE(purged.ok()) << purged.status().ToString();
    EXPECT_EQ(*purged, 1);
    EXPECT_FALSE(Seen("old"));
    EXPECT_TRUE(Seen("recent"));
}

TEST_F(StateStoreTest, PurgeExpiredWorksThroughManyBatches) {
    constexpr int kEntries = 25'000;  // more than one purge batch
    ASSERT_TRUE(store_
                    ->RunOnce("s", "bulk",
                              [](StateTransaction& tx) {
                                  for (int i = 0; i < kEntries; ++i) {
                                      auto r = tx.Put("b", "k" + std::to_string(i), "v",
                                                      milliseconds(1));
                                      if (!r.ok()) return r.status();
                                  }
                                  return Status::Ok();
                              })
                    .ok());
    Advance(milliseconds(1));
    auto purged = store_->PurgeExpired();
    ASSERT_TRUE(purged.ok()) << purged.status().ToString();
    EXPECT_EQ(*purged, kEntries);
}

// ---- Names ----------------------------------------------------------------------------------

TEST_F(StateStoreTest, InvalidNamesAreRejectedNamingWhich) {
    const std::string too_long(kMaxStateNameBytes + 1, 'x');
    struct Case {
        std::string description;
        Status status;
        std::string expect;
    };
    auto body = [](StateTransaction&) { return Status::Ok(); };
    const Case cases[] = {
        {"empty bucket", store_->Put("", "k", "v").status(), "bucket name is empty"},
        {"empty key", store_->Get("b", "").status(), "key is empty"},
        {"long key", store_->Delete("b", too_long), "key is 513 bytes, the limit is 512"},
        {"long bucket", store_->CompareAndSet(too_long, "k", 0, "v").status(), "bucket name"},
        {"empty list", store_->ListAppend("", "v").status(), "list name is empty"},
        {"long list", store_->ListRange(too_long, 0, 1).status(), "list name"},
        {"empty scope", store_->RunOnce("", "k", body).status(), "scope is empty"},
        {"long idempotency key", store_->Seen("s", too_long).status(), "idempotency key"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.description);
        EXPECT_EQ(c.status.code(), StatusCode::kInvalidArgument);
        EXPECT_THAT(c.status.message(), HasSubstr(c.expect));
    }
}

TEST_F(StateStoreTest, NameOfTheMaximumLengthIsAccepted) {
    const std::string longest(kMaxStateNameBytes, 'x');
    ASSERT_TRUE(store_->Put(longest, longest, "v").ok());
    EXPECT_EQ(store_->Get(longest, longest)->value().value, "v");
}

// ---- Files ----------------------------------------------------------------------------------

TEST_F(StateStoreTest, FileStoreKeepsEverythingAcrossReopen) {
    Put("k", "a");
    Put("k", "b");
    ASSERT_TRUE(store_
                    ->RunOnce("s", "e",
                              [](StateTransaction& tx) {
                                  EVENTLOOM_RETURN_IF_ERROR(tx.ListAppend("chat", "m").status());
                                  return tx.OutboxAdd("d", "p").status();
                              })
                    .ok());
    Reopen();

    auto entry = store_->Get("b", "k");
    ASSERT_TRUE(entry.ok() && entry->has_value());
    EXPECT_EQ((*entry)->value, "b");
    EXPECT_EQ((*entry)->revision, 2);
    EXPECT_THAT(Range("chat", 0), ElementsAre("m"));
    EXPECT_THAT(PendingPayloads(), ElementsAre("p"));
    EXPECT_TRUE(Seen("e"));
}

TEST_F(StateStoreTest, CommittedWriteSurvivesSigkill) {
    store_.reset();
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // No gtest in the child: it reports through its exit status.
        auto store = OpenSqliteStateStore(Options());
        if (!store.ok()) ::_exit(2);
        if (!(*store)->Put("b", "k", "committed").ok()) ::_exit(3);
        ::raise(SIGKILL);
        ::_exit(4);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);

    Open();
    EXPECT_EQ(Value("k"), "committed");
}

TEST_F(StateStoreTest, SyncFullStoreOpensAndWrites) {
    store_.reset();
    StateStoreOptions options = Options();
    options.sync_full = true;
    Open(options);
    Put("k", "durable");
    Reopen();
    EXPECT_EQ(Value("k"), "durable");
}

TEST_F(StateStoreTest, InMemoryStoreWorks) {
    StateStoreOptions options = Options();
    options.path = ":memory:";
    Open(options);
    Put("k", "v");
    EXPECT_EQ(Value("k"), "v");
}

TEST_F(StateStoreTest, GarbageFileIsDataLossNamingThePath) {
    store_.reset();
    std::string path = dir_.Sub("garbage.db");
    {
        std::ofstream out(path, std::ios::binary);
        out << std::string(8192, 'g');
    }
    StateStoreOptions options = Options();
    options.path = path;
    auto store = OpenSqliteStateStore(options);
    EXPECT_EQ(store.status().code(), StatusCode::kDataLoss);
    EXPECT_THAT(store.status().message(), HasSubstr(path));
}

TEST_F(StateStoreTest, MissingDirectoryIsNotFoundNamingIt) {
    StateStoreOptions options = Options();
    options.path = dir_.Sub("no/such/dir/state.db");
    auto store = OpenSqliteStateStore(options);
    EXPECT_EQ(store.status().code(), StatusCode::kNotFound);
    EXPECT_THAT(store.status().message(), HasSubstr(dir_.Sub("no/such/dir")));
}

TEST_F(StateStoreTest, DirectoryAsPathIsFailedPrecondition) {
    StateStoreOptions options = Options();
    options.path = dir_.path();
    auto store = OpenSqliteStateStore(options);
    EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(StateStoreTest, EmptyPathIsInvalid) {
    StateStoreOptions options = Options();
    options.path.clear();
    EXPECT_EQ(OpenSqliteStateStore(options).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace eventloom::testing
