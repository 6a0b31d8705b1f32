// The indexer on the embedded broker: document events into a live index, in order, skipping
// what was applied, dead-lettering what is malformed, and rebuilding from the log.
#include "rag/indexer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "rag/document_event.h"
#include "support/temp_dir.h"
#include "support/topic_reader.h"

namespace eventloom::rag {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

// A test double: the real hashing embedder, counting the texts it embeds, and failing the next
// `fail_next` calls with Unavailable.
class CountingEmbedder : public Embedder {
public:
    CountingEmbedder() : inner_(std::move(MakeHashingEmbedder({.dimension = 64})).value()) {}
    int dimension() const override { return inner_->dimension(); }
    std::string fingerprint() const override { return inner_->fingerprint(); }
    Result<std::vector<Vector>> Embed(std::span<const std::string> texts) override {
        ++calls;
        for (const std::string& t : texts) {
            if (t.find("poison") != std::string::npos) {
                return InvalidArgumentError("the embedder refuses this text");
            }
        }
        if (fail_next > 0) {
            --fail_next;
            return UnavailableError("embedding server restarting");
        }
        texts_embedded += static_cast<int64_t>(texts.size());
        return inner_->Embed(texts);
    }
    std::atomic<int64_t> texts_embedded{0};
    std::atomic<int> calls{0};
    std::atomic<int> fail_next{0};

private:
    std::unique_ptr<Embedder> inner_;
};

Event DocEvent(const std::string& id, json data, const std::string& type = "doc.changed") {
    Event e;
    e.id = id;
    e.source = "test";
    e.type = type;
    e.datacontenttype = "application/json";
    e.data = data.is_string() ? data.get<std::string>() : data.dump();
    e.has_data = true;
    e.partitionkey = data.is_object() && data.contains("id") && data["id"].is_string()
                         ? data["id"].get<std::string>()
                         : id;
    return e;
}

class IndexerTest : public ::testing::Test {
protected:
    void SetUp() override {
        EmbeddedBrokerOptions b;
        b.dir = dir_.Sub("log");
        auto broker = OpenEmbeddedBroker(b);
        ASSERT_TRUE(broker.ok()) << broker.status().ToString();
        broker_ = std::move(*broker);
        TopicOptions t;
        t.partitions = 2;
        ASSERT_TRUE(broker_->CreateTopic("docs", t).ok());
        ASSERT_TRUE(broker_->CreateTopic("index.kb.dead-letter", {}).ok());
        Open();
    }

    void Open() {
        embedder_ = std::make_unique<CountingEmbedder>();
        LiveIndexOptions o;
        o.dir = dir_.Sub("kb");
        o.dimension = embedder_->dimension();
        o.embedder = embedder_->fingerprint();
        o.filter_fields = {"product"};
        auto index = LiveIndex::Open(o);
        ASSERT_TRUE(index.ok()) << index.status().ToString();
        index_ = std::move(*index);
        IndexerOptions io;
        io.name = "kb";
        io.source = "docs";
        io.chunking.unit = ChunkUnit::kCharacters;
        io.chunking.size = 60;
        io.chunking.overlap = 10;
        io.retry.initial_delay = 1ms;
        io.retry.max_delay = 5ms;
        auto indexer = Indexer::Make(broker_.get(), index_.get(), embedder_.get(), o.dir, io);
        ASSERT_TRUE(indexer.ok()) << indexer.status().ToString();
        indexer_ = std::move(*indexer);
    }

    void Close() {
        indexer_.reset();
        ASSERT_TRUE(index_->Close().ok());
        index_.reset();
    }

    void Publish(const std::string& id, json data, const std::string& type = "doc.changed") {
        ASSERT_TRUE(broker_->Publish("docs", DocEvent(id, std::move(data), type)).ok());
    }

    void CatchUp() {
        Status st = indexer_->CatchUp([](int64_t, int64_t) {});
        ASSERT_TRUE(st.ok()) << st.ToString();
    }

    std::vector<std::string> Docs(const std::string& text, SearchMode mode = SearchMode::kHybrid,
                                  std::vector<std::pair<std::string, std::string>> filters = {}) {
        SearchQuery q;
        q.text = text;
        q.mode = mode;
        q.k = 20;
        q.filters = std::move(filters);
        const std::string texts[] = {text};
        q.vector = std::move(embedder_->Embed(texts).value()[0]);
        auto r = index_->Search(q);
        EXPECT_TRUE(r.ok()) << r.status().ToString();
        std::vector<std::string> out;
        if (!r.ok()) return out;
        for (const SearchHit& h : r->hits) {
            if (std::find(out.begin(), out.end(), h.doc_id) == out.end()) out.push_back(h.doc_id);
        }
        return out;
    }

    testing::TempDir dir_;
    std::unique_ptr<Broker> broker_;
    std::unique_ptr<CountingEmbedder> embedder_;
    std::unique_ptr<LiveIndex> index_;
    std::unique_ptr<Indexer> indexer_;
};

TEST(DocumentEventTest, ParsesUpsertsAndDeletes) {
    auto up = ParseDocumentEvent(DocEvent(
        "e1",
        {{"id", "a"}, {"text", "hello"}, {"metadata", {{"n", 3}, {"ok", true}, {"s", "x"}}}}));
    ASSERT_TRUE(up.ok()) << up.status().ToString();
    EXPECT_EQ(up->op, DocumentChange::Op::kUpsert);
    EXPECT_EQ(up->id, "a");
    EXPECT_EQ(up->text, "hello");
    EXPECT_THAT(up->metadata,
                ::testing::UnorderedElementsAre(std::pair<std::string, std::string>("n", "3"),
                                                std::pair<std::string, std::string>("ok", "true"),
                                                std::pair<std::string, std::string>("s", "x")));
    auto del = ParseDocumentEvent(DocEvent("e2", {{"id", "a"}, {"op", "delete"}}));
    ASSERT_TRUE(del.ok());
    EXPECT_EQ(del->op, DocumentChange::Op::kDelete);
    auto by_type = ParseDocumentEvent(DocEvent("e3", {{"id", "a"}}, "doc.deleted"));
    ASSERT_TRUE(by_type.ok());
    EXPECT_EQ(by_type->op, DocumentChange::Op::kDelete);
}

TEST(DocumentEventTest, MalformedEventsNameTheProblem) {
    struct Case {
        json data;
        std::string expected;
    };
    const Case cases[] = {
        {"not json at all", "data is not JSON"},
        {json::array({1, 2}), "data is an array"},
        {{{"text", "no id"}}, "data has no 'id'"},
        {{{"id", 7}}, "id: expected a string, got a number"},
        {{{"id", ""}}, "id: is empty"},
        {{{"id", "a"}, {"op", "merge"}}, "op: expected \"upsert\" or \"delete\""},
        {{{"id", "a"}, {"text", json::array()}}, "text: expected a string, got an array"},
        {{{"id", "a"}, {"metadata", "x"}}, "metadata: expected an object, got a string"},
        {{{"id", "a"}, {"metadata", {{"tags", json::array()}}}},
         "metadata.tags: expected a string, number or boolean, got an array"},
    };
    for (const Case& c : cases) {
        auto r = ParseDocumentEvent(DocEvent("bad", c.data));
        ASSERT_FALSE(r.ok()) << c.data.dump();
        EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
        EXPECT_THAT(r.status().message(), HasSubstr(c.expected)) << c.data.dump();
        EXPECT_THAT(r.status().message(), HasSubstr("document event 'bad'"));
    }
}

TEST_F(IndexerTest, UpdateIsVisibleToTheNextQueryAfterItIsApplied) {
    Publish("e1", {{"id", "faq/login"}, {"text", "Reset your password from the login page."}});
    CatchUp();
    EXPECT_THAT(Docs("password reset login"), ::testing::ElementsAre("faq/login"));

    Publish("e2", {{"id", "faq/login"}, {"text", "Sign in with your company single sign-on."}});
    CatchUp();
    EXPECT_THAT(Docs("single sign-on company", SearchMode::kKeyword),
                ::testing::ElementsAre("faq/login"));
    EXPECT_THAT(Docs("password", SearchMode::kKeyword), ::testing::IsEmpty());
    EXPECT_EQ(index_->stats().documents, 1);
    EXPECT_EQ(indexer_->stats().upserts, 2);
}

TEST_F(IndexerTest, DeleteRemovesEveryChunkOfTheDocument) {
    std::string long_text;
    for (int i = 0; i < 20; ++i) long_text += "Paragraph " + std::to_string(i) + " about billing. ";
    Publish("e1", {{"id", "billing"}, {"text", long_text}});
    Publish("e2", {{"id", "other"}, {"text", "Shipping takes three days."}});
    CatchUp();
    const int64_t chunks = index_->stats().chunks;
    EXPECT_GT(chunks, 3);  // the long document is several chunks
    EXPECT_THAT(Docs("billing paragraph", SearchMode::kKeyword), ::testing::Contains("billing"));

    Publish("e3", {{"id", "billing"}}, "doc.deleted");
    CatchUp();
    EXPECT_EQ(index_->stats().chunks, 1);
    EXPECT_EQ(index_->stats().documents, 1);
    for (SearchMode mode : {SearchMode::kHybrid, SearchMode::kVector, SearchMode::kKeyword}) {
        EXPECT_THAT(Docs("billing paragraph", mode),
                    ::testing::Not(::testing::Contains("billing")));
    }
}

TEST_F(IndexerTest, MalformedDocumentEventsGoToTheDeadLetterTopicWithTheReason) {
    Publish("bad-1", "not json");
    Publish("bad-2", {{"text", "no id here"}});
    Publish("good", {{"id", "a"}, {"text", "a fine document"}});
    CatchUp();
    EXPECT_EQ(indexer_->stats().dead_lettered, 2);
    EXPECT_EQ(index_->stats().documents, 1);
    testing::TopicReader dead(broker_.get(), "index.kb.dead-letter");
    const auto& events = dead.WaitFor(2);
    ASSERT_EQ(events.size(), 2u);
    std::map<std::string, std::string> reasons;
    for (const Event& e : events) {
        for (const auto& [k, v] : e.extensions) {
            if (k == kDeadLetterReason) reasons[e.id] = v;
        }
    }
    EXPECT_THAT(reasons["bad-1"], HasSubstr("data is not JSON"));
    EXPECT_THAT(reasons["bad-2"], HasSubstr("data has no 'id'"));
}

TEST_F(IndexerTest, MalformedEventsInsideABatchDoNotHideTheEventsBeforeThem) {
    Publish("e1", {{"id", "a"}, {"text", "alpha document"}});
    Publish("e2", {{"id", "b"}, {"text", "bravo document"}});
    Publish("bad", {{"text", "no id"}});
    Publish("e3", {{"id", "c"}, {"text", "charlie document"}});
    Publish("e4", {{"id", "d"}, {"text", "a poison pill the embedder refuses"}});
    Publish("e5", {{"id", "e"}, {"text", "echo document"}});
    CatchUp();
    EXPECT_EQ(index_->stats().documents, 4);  // a, b, c, e
    EXPECT_EQ(indexer_->stats().dead_lettered, 2);
    for (const char* word : {"alpha", "bravo", "charlie", "echo"}) {
        EXPECT_EQ(Docs(word, SearchMode::kKeyword).size(), 1u) << word;
    }
    testing::TopicReader dead(broker_.get(), "index.kb.dead-letter");
    ASSERT_EQ(dead.WaitFor(2).size(), 2u);
}

TEST_F(IndexerTest, RestartCatchesUpWithoutEmbeddingWhatWasApplied) {
    for (int i = 0; i < 10; ++i) {
        Publish("e" + std::to_string(i), {{"id", "doc" + std::to_string(i)},
                                          {"text", "document number " + std::to_string(i)}});
    }
    CatchUp();
    EXPECT_EQ(embedder_->texts_embedded, 10);
    Close();

    Open();  // a new process: the index reopens from disk
    EXPECT_EQ(index_->stats().documents, 10);
    Publish("e10", {{"id", "doc10"}, {"text", "document number ten"}});
    CatchUp();
    EXPECT_EQ(embedder_->texts_embedded, 1);  // only the new one
    EXPECT_EQ(index_->stats().documents, 11);
}

TEST_F(IndexerTest, RedeliveredEventsAreSkippedByTheirPosition) {
    for (int i = 0; i < 5; ++i) {
        Publish("e" + std::to_string(i), {{"id", "doc" + std::to_string(i)}, {"text", "text"}});
    }
    CatchUp();
    const std::string epoch = indexer_->epoch();
    Close();
    // A lost consumer-group position: a new epoch reads the topic from the start again, while
    // the index keeps its applied offsets.
    std::filesystem::remove(dir_.Sub("kb") + "/EPOCH");
    Open();
    EXPECT_NE(indexer_->epoch(), epoch);
    CatchUp();
    EXPECT_EQ(embedder_->texts_embedded, 0);
    EXPECT_EQ(indexer_->stats().skipped, 5);
    EXPECT_EQ(index_->stats().documents, 5);
}

TEST_F(IndexerTest, EmbedderFailuresAreRetriedInPlaceKeepingOrder) {
    embedder_->fail_next = 3;
    Publish("e1", {{"id", "a"}, {"text", "first version"}});
    Publish("e2", {{"id", "a"}, {"text", "second version"}});
    CatchUp();
    EXPECT_GE(indexer_->stats().retries, 3);
    EXPECT_EQ(indexer_->stats().dead_lettered, 0);
    EXPECT_THAT(Docs("second", SearchMode::kKeyword), ::testing::ElementsAre("a"));
    EXPECT_THAT(Docs("first", SearchMode::kKeyword), ::testing::IsEmpty());
}

TEST_F(IndexerTest, RebuildAnswersQueriesTheSameAsTheLiveIndex) {
    const std::vector<std::string> topics = {"billing", "shipping", "login",
                                             "refunds", "invoices", "accounts"};
    for (size_t i = 0; i < 30; ++i) {
        const std::string t = topics[i % topics.size()];
        Publish("e" + std::to_string(i),
                {{"id", "doc" + std::to_string(i % 12)},
                 {"text", "All about " + t + " version " + std::to_string(i)},
                 {"metadata", {{"product", i % 2 ? "web" : "app"}}}});
    }
    Publish("d1", {{"id", "doc3"}, {"op", "delete"}});
    CatchUp();
    indexer_->Start();  // live from here
    Publish("late", {{"id", "doc20"}, {"text", "late news about refunds"}});
    for (int i = 0; i < 500 && index_->stats().documents < 12; ++i)
        std::this_thread::sleep_for(10ms);
    indexer_->Stop();

    // The best hit and the set of hits (documents whose scores tie may swap places).
    auto answers = [&] {
        std::vector<std::vector<std::string>> out;
        for (const std::string& t : topics) {
            for (std::vector<std::string> docs :
                 {Docs(t + " version"), Docs(t, SearchMode::kKeyword, {{"product", "web"}})}) {
                out.push_back({docs.empty() ? "" : docs.front()});
                std::sort(docs.begin(), docs.end());
                out.push_back(docs);
            }
        }
        return out;
    };
    const auto live = answers();
    const LiveIndexStats before = index_->stats();
    ASSERT_TRUE(indexer_->Reset().ok());
    EXPECT_EQ(index_->stats().documents, 0);
    int64_t last_done = -1, last_total = -1;
    ASSERT_TRUE(indexer_
                    ->CatchUp([&](int64_t done, int64_t total) {
                        last_done = done;
                        last_total = total;
                    })
                    .ok());
    EXPECT_EQ(last_done, 32);
    EXPECT_EQ(last_total, 32);
    EXPECT_EQ(index_->stats().documents, before.documents);
    EXPECT_EQ(index_->stats().chunks, before.chunks);
    EXPECT_EQ(answers(), live);
}

}  // namespace
}  // namespace eventloom::rag
