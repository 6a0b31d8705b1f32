#include "runtime/buffered_transaction.h"

#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace eventloom::testing {
namespace {

class BufferedTransactionTest : public ::testing::Test {
protected:
    void SetUp() override {
        StateStoreOptions o;
        o.path = dir_.Sub("state.db");
        auto store = OpenSqliteStateStore(o);
        ASSERT_TRUE(store.ok()) << store.status().ToString();
        store_ = std::move(store).value();
    }
    Status Commit(const BufferedTransaction& buffered, const std::string& key = "event-1") {
        auto outcome =
            store_->RunOnce("stage", key, [&](StateTransaction& t) { return buffered.Replay(t); });
        return outcome.status();
    }

    TempDir dir_;
    std::unique_ptr<StateStore> store_;
};

TEST_F(BufferedTransactionTest, WritesAreInvisibleUntilReplayed) {
    BufferedTransaction txn(store_.get());
    ASSERT_TRUE(txn.Put("b", "k", "v", {}).ok());
    ASSERT_TRUE(txn.ListAppend("memory", "hello").ok());
    EXPECT_FALSE(store_->Get("b", "k")->has_value());
    ASSERT_TRUE(Commit(txn).ok());
    EXPECT_EQ((*store_->Get("b", "k"))->value, "v");
    EXPECT_EQ(*store_->ListLength("memory"), 1);
}

TEST_F(BufferedTransactionTest, GetSeesOwnWritesThenTheStore) {
    ASSERT_TRUE(store_->Put("b", "other", "stored").ok());
    BufferedTransaction txn(store_.get());
    ASSERT_TRUE(txn.Put("b", "k", "mine", {}).ok());
    EXPECT_EQ((*txn.Get("b", "k"))->value, "mine");
    EXPECT_EQ((*txn.Get("b", "other"))->value, "stored");
    ASSERT_TRUE(txn.Delete("b", "other").ok());
    EXPECT_FALSE(txn.Get("b", "other")->has_value());
}

TEST_F(BufferedTransactionTest, StaleCompareAndSetFailsTheCommitAsAWhole) {
    BufferedTransaction txn(store_.get());
    ASSERT_TRUE(txn.Put("b", "first", "x", {}).ok());
    ASSERT_TRUE(txn.CompareAndSet("b", "k", /*expected_revision=*/0, "mine", {}).ok());
    ASSERT_TRUE(store_->Put("b", "k", "theirs").ok());  // someone else, before the commit
    Status status = Commit(txn);
    EXPECT_EQ(status.code(), StatusCode::kAborted);
    EXPECT_FALSE(store_->Get("b", "first")->has_value());  // rolled back with it
    EXPECT_FALSE(*store_->Seen("stage", "event-1"));
}

TEST_F(BufferedTransactionTest, OutboxMessagesBecomePendingAtCommit) {
    BufferedTransaction txn(store_.get());
    ASSERT_TRUE(txn.OutboxAdd("out", "payload").ok());
    EXPECT_TRUE(store_->OutboxPending(10)->empty());
    ASSERT_TRUE(Commit(txn).ok());
    auto pending = store_->OutboxPending(10);
    ASSERT_EQ(pending->size(), 1u);
    EXPECT_EQ((*pending)[0].destination, "out");
}

}  // namespace
}  // namespace eventloom::testing
