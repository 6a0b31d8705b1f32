// The broker contract (include/eventloom/broker.h), as behaviour every engine must show.
#include "broker/broker_contract.h"

#include <chrono>
#include <set>
#include <thread>

namespace eventloom::testing {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

TEST_P(Contract, EveryEventIsDeliveredOnceAndAckedStaysDone) {
    for (int i = 0; i < 30; ++i) Publish("e" + std::to_string(i), "k" + std::to_string(i % 7));
    auto c = Join(Group("g"));
    auto deliveries = FetchN(*c, 30);
    std::set<std::string> ids;
    for (auto& d : deliveries) {
        EXPECT_EQ(d.attempt(), 1);
        ids.insert(Id(d));
        ASSERT_TRUE(c->Ack(d.tag).ok());
    }
    EXPECT_EQ(ids.size(), 30u);
    auto more = c->Fetch(10, 200ms);
    ASSERT_TRUE(more.ok());
    EXPECT_TRUE(more->empty());
}

TEST_P(Contract, FetchWaitsForALaterPublish) {
    auto c = Join(Group("g"));
    std::thread publisher([&] {
        std::this_thread::sleep_for(50ms);
        Publish("late");
    });
    auto got = FetchN(*c, 1);
    publisher.join();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(Id(got[0]), "late");
}

TEST_P(Contract, FetchOnAnEmptyTopicReturnsNothing) {
    auto c = Join(Group("g"));
    auto got = c->Fetch(5, 50ms);
    ASSERT_TRUE(got.ok());
    EXPECT_TRUE(got->empty());
}

TEST_P(Contract, ExpiredLeaseRedeliversWithNextAttempt) {
    Publish("a");
    ConsumerOptions o = Group("g");
    o.lease = 200ms;
    auto c = Join(o);
    auto first = FetchN(*c, 1);
    ASSERT_EQ(first.size(), 1u);
    auto second = FetchN(*c, 1);  // not acked: comes back once the lease runs out
    ASSERT_EQ(second.size(), 1u);
    EXPECT_EQ(Id(second[0]), "a");
    EXPECT_EQ(second[0].attempt(), 2);
    EXPECT_GE(c->Stats().redelivered, 1);
}

TEST_P(Contract, SettlingAStaleDeliveryFails) {
    Publish("a");
    ConsumerOptions o = Group("g");
    o.lease = 100ms;
    auto c = Join(o);
    auto first = FetchN(*c, 1);
    auto second = FetchN(*c, 1);
    ASSERT_EQ(second.size(), 1u);
    Status stale = c->Ack(first[0].tag);
    EXPECT_EQ(stale.code(), StatusCode::kFailedPrecondition);
    EXPECT_THAT(stale.message(), HasSubstr("no longer leased"));
    EXPECT_TRUE(c->Ack(second[0].tag).ok());
}

TEST_P(Contract, NackRedeliversNoSoonerThanItsDelay) {
    Publish("a");
    auto c = Join(Group("g"));
    auto first = FetchN(*c, 1);
    ASSERT_EQ(first.size(), 1u);
    auto nacked_at = std::chrono::steady_clock::now();
    ASSERT_TRUE(c->Nack(first[0].tag, 300ms, "backend busy").ok());
    auto again = FetchN(*c, 1);
    ASSERT_EQ(again.size(), 1u);
    EXPECT_GE(std::chrono::steady_clock::now() - nacked_at, 300ms);
    EXPECT_EQ(again[0].attempt(), 2);
}

TEST_P(Contract, ExhaustedDeliveriesGoToTheDeadLetterTopicWithReason) {
    Publish("poison");
    ConsumerOptions o = Group("g");
    o.max_deliveries = 2;
    o.stage = "classify";
    auto c = Join(o);
    for (int i = 0; i < 2; ++i) {
        auto d = FetchN(*c, 1);
        ASSERT_EQ(d.size(), 1u);
        ASSERT_TRUE(c->Nack(d[0].tag, 0ms, "model said no").ok());
    }
    auto none = c->Fetch(1, 300ms);
    ASSERT_TRUE(none.ok());
    EXPECT_TRUE(none->empty());
    auto dead = ReadTopic("orders.dead-letter", 1);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_EQ(dead[0].id, "poison");
    EXPECT_EQ(dead[0].data, "data-poison");
    std::map<std::string, std::string> ext(dead[0].extensions.begin(), dead[0].extensions.end());
    EXPECT_THAT(ext[std::string(kDeadLetterReason)], HasSubstr("max_deliveries 2"));
    EXPECT_EQ(ext[std::string(kDeadLetterAttempts)], "2");
    EXPECT_EQ(ext[std::string(kDeadLetterError)], "model said no");
    EXPECT_EQ(ext[std::string(kDeadLetterStage)], "classify");
    EXPECT_THAT(ext[std::string(kDeadLetterSource)], HasSubstr("orders/"));
}

TEST_P(Contract, TermDeadLettersAtOnceWithTheReason) {
    Publish("bad");
    auto c = Join(Group("g"));
    auto d = FetchN(*c, 1);
    ASSERT_EQ(d.size(), 1u);
    ASSERT_TRUE(c->Term(d[0].tag, "schema ticket/3 is unknown").ok());
    auto dead = ReadTopic("orders.dead-letter", 1);
    ASSERT_EQ(dead.size(), 1u);
    std::map<std::string, std::string> ext(dead[0].extensions.begin(), dead[0].extensions.end());
    EXPECT_EQ(ext[std::string(kDeadLetterReason)], "schema ticket/3 is unknown");
    EXPECT_EQ(ext[std::string(kDeadLetterAttempts)], "1");
}

TEST_P(Contract, ExtendedLeaseIsNotRedelivered) {
    Publish("slow");
    ConsumerOptions o = Group("g");
    o.lease = 1s;  // extended every 150 ms: far inside it even on a loaded machine
    auto worker = Join(o);
    auto other = Join(o);
    auto d = FetchN(*worker, 1);
    ASSERT_EQ(d.size(), 1u);
    for (int i = 0; i < 12; ++i) {  // 1.8 s in all: well past the unextended lease
        std::this_thread::sleep_for(150ms);
        ASSERT_TRUE(worker->ExtendLease(d[0].tag).ok());
        auto stolen = other->Fetch(1, 0ms);
        ASSERT_TRUE(stolen.ok());
        EXPECT_TRUE(stolen->empty());
    }
    EXPECT_TRUE(worker->Ack(d[0].tag).ok());
}

TEST_P(Contract, MembersOfAGroupShareTheEvents) {
    for (int i = 0; i < 40; ++i) Publish("e" + std::to_string(i));
    auto a = Join(Group("g"));
    auto b = Join(Group("g"));
    std::multiset<std::string> seen;
    for (int round = 0; round < 20 && seen.size() < 40; ++round) {
        for (Consumer* c : {a.get(), b.get()}) {
            auto batch = c->Fetch(3, 50ms);
            ASSERT_TRUE(batch.ok());
            for (auto& d : *batch) {
                seen.insert(Id(d));
                ASSERT_TRUE(c->Ack(d.tag).ok());
            }
        }
    }
    EXPECT_EQ(seen.size(), 40u);
    EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 40u);
}

TEST_P(Contract, GroupsEachGetEveryEvent) {
    for (int i = 0; i < 10; ++i) Publish("e" + std::to_string(i));
    auto a = Join(Group("billing"));
    auto b = Join(Group("audit"));
    EXPECT_EQ(FetchN(*a, 10).size(), 10u);
    EXPECT_EQ(FetchN(*b, 10).size(), 10u);
}

TEST_P(Contract, OneInFlightPerKeyHoldsBackTheKeysNextEvent) {
    Publish("k1-first", "k1");
    Publish("k1-second", "k1");
    Publish("k2-first", "k2");
    ConsumerOptions o = Group("g");
    o.one_in_flight_per_key = true;
    auto c = Join(o);
    auto first = c->Fetch(10, 500ms);
    ASSERT_TRUE(first.ok());
    std::set<std::string> ids;
    for (auto& d : *first) ids.insert(Id(d));
    EXPECT_EQ(ids, (std::set<std::string>{"k1-first", "k2-first"}));
    for (auto& d : *first) {
        if (Id(d) == "k1-first") {
            ASSERT_TRUE(c->Ack(d.tag).ok());
        }
    }
    auto next = FetchN(*c, 1);
    ASSERT_EQ(next.size(), 1u);
    EXPECT_EQ(Id(next[0]), "k1-second");
}

TEST_P(Contract, HigherPriorityIsDeliveredFirst) {
    Publish("low-1", "same", 0);
    Publish("low-2", "same", 0);
    Publish("urgent", "same", 9);
    auto c = Join(Group("g"));
    auto got = c->Fetch(1, 500ms);
    ASSERT_TRUE(got.ok());
    ASSERT_EQ(got->size(), 1u);
    EXPECT_EQ(Id((*got)[0]), "urgent");
}

TEST_P(Contract, APoisonEventDoesNotBlockItsPartition) {
    Publish("poison", "same");
    for (int i = 0; i < 5; ++i) Publish("ok" + std::to_string(i), "same");
    ConsumerOptions o = Group("g");
    o.max_deliveries = 3;
    auto c = Join(o);
    std::set<std::string> acked;
    for (int round = 0; round < 50 && acked.size() < 5; ++round) {
        auto batch = c->Fetch(10, 100ms);
        ASSERT_TRUE(batch.ok());
        for (auto& d : *batch) {
            if (Id(d) == "poison") {
                ASSERT_TRUE(c->Nack(d.tag, 50ms, "always fails").ok());
            } else {
                acked.insert(Id(d));
                ASSERT_TRUE(c->Ack(d.tag).ok());
            }
        }
    }
    EXPECT_EQ(acked.size(), 5u);
}

TEST_P(Contract, SettledProgressSurvivesARestart) {
    for (int i = 0; i < 10; ++i) Publish("e" + std::to_string(i), "k");
    {
        auto c = Join(Group("g"));
        auto got = FetchN(*c, 10);
        ASSERT_EQ(got.size(), 10u);
        // Ack all but e3 and e7, whose deliveries are left open when the process goes.
        for (auto& d : got) {
            if (Id(d) != "e3" && Id(d) != "e7") {
                ASSERT_TRUE(c->Ack(d.tag).ok());
            }
        }
        ASSERT_TRUE(c->Commit().ok());
    }
    harness_->Restart();
    auto c = Join(Group("g"));
    auto again = FetchN(*c, 2);
    std::set<std::string> ids;
    for (auto& d : again) {
        ids.insert(Id(d));
        EXPECT_EQ(d.attempt(), 2);  // the first delivery counts across the restart
    }
    EXPECT_EQ(ids, (std::set<std::string>{"e3", "e7"}));
    auto none = c->Fetch(5, 200ms);
    ASSERT_TRUE(none.ok());
    EXPECT_TRUE(none->empty());
}

TEST_P(Contract, ClosingAMemberReleasesItsLeases) {
    Publish("a");
    auto keeper = Join(Group("g"));
    {
        auto leaver = Join(Group("g"));
        ASSERT_EQ(FetchN(*leaver, 1).size(), 1u);
    }
    auto got = FetchN(*keeper, 1, 2s);  // well before the 30 s lease would run out
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(Id(got[0]), "a");
}

TEST_P(Contract, RepublishingAnIdIsDeduplicated) {
    auto first = broker()->Publish("orders", MakeEvent("same-id", "k"));
    auto second = broker()->Publish("orders", MakeEvent("same-id", "k"));
    ASSERT_TRUE(first.ok() && second.ok());
    EXPECT_FALSE(first->duplicate);
    EXPECT_TRUE(second->duplicate);
    EXPECT_EQ(first->offset, second->offset);
    auto c = Join(Group("g"));
    EXPECT_EQ(FetchN(*c, 2, 500ms).size(), 1u);
}

TEST_P(Contract, DedupeCanBeTurnedOffForRedrive) {
    PublishOptions no_dedupe;
    no_dedupe.dedupe = false;
    ASSERT_TRUE(broker()->Publish("orders", MakeEvent("x", "k")).ok());
    auto again = broker()->Publish("orders", MakeEvent("x", "k"), no_dedupe);
    ASSERT_TRUE(again.ok());
    EXPECT_FALSE(again->duplicate);
}

TEST_P(Contract, ANewGroupCanStartAtTheLatestEvent) {
    Publish("old");
    ConsumerOptions o = Group("late-joiner");
    o.start = StartFrom::kLatest;
    auto c = Join(o);
    Publish("new");
    auto got = FetchN(*c, 2, 500ms);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(Id(got[0]), "new");
}

TEST_P(Contract, InvalidEventIsRejectedNamingTheAttribute) {
    Event e = MakeEvent("x");
    e.source.clear();
    auto r = broker()->Publish("orders", e);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr("source"));
}

TEST_P(Contract, UnknownTopicIsNotFound) {
    EXPECT_EQ(broker()->Publish("nope", MakeEvent("x")).status().code(), StatusCode::kNotFound);
    EXPECT_EQ(broker()->Subscribe(Group("g", "nope")).status().code(), StatusCode::kNotFound);
}

}  // namespace eventloom::testing
