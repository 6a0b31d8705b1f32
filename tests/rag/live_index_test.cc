#include "rag/live_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "rag/embedder.h"
#include "support/temp_dir.h"

namespace eventloom::rag {
namespace {

namespace fs = std::filesystem;

constexpr int kDimension = 64;

const Metadata kNoMetadata;

class LiveIndexTest : public ::testing::Test {
protected:
    void SetUp() override {
        HashingEmbedderOptions options;
        options.dimension = kDimension;
        Result<std::unique_ptr<Embedder>> embedder = MakeHashingEmbedder(options);
        ASSERT_TRUE(embedder.ok()) << embedder.status().ToString();
        embedder_ = std::move(embedder).value();
    }

    LiveIndexOptions Options() const {
        LiveIndexOptions options;
        options.dir = dir_.Sub("index");
        options.dimension = kDimension;
        options.embedder = embedder_->fingerprint();
        options.filter_fields = {"lang", "team"};
        options.initial_capacity = 16;
        options.ef_construction = 64;
        return options;
    }

    std::unique_ptr<LiveIndex> OpenIndex(const LiveIndexOptions& options) {
        Result<std::unique_ptr<LiveIndex>> index = LiveIndex::Open(options);
        EXPECT_TRUE(index.ok()) << index.status().ToString();
        return index.ok() ? std::move(index).value() : nullptr;
    }
    std::unique_ptr<LiveIndex> OpenIndex() { return OpenIndex(Options()); }

    Vector Embed(const std::string& text) {
        Result<std::vector<Vector>> vectors = embedder_->Embed(std::vector<std::string>{text});
        EXPECT_TRUE(vectors.ok()) << vectors.status().ToString();
        return vectors.ok() ? vectors.value()[0] : Vector(kDimension, 0.0f);
    }

    std::vector<DocumentChunk> Chunks(const std::vector<std::string>& texts) {
        std::vector<DocumentChunk> chunks;
        for (size_t i = 0; i < texts.size(); ++i) chunks.push_back({i, texts[i], Embed(texts[i])});
        return chunks;
    }

    // Upserts `texts` as the chunks of `doc`; the result of Upsert (false: already applied).
    bool Put(LiveIndex& index, const std::string& doc, const std::vector<std::string>& texts,
             Position at, const Metadata& metadata = kNoMetadata) {
        Result<bool> applied = index.Upsert(doc, Chunks(texts), metadata, at);
        EXPECT_TRUE(applied.ok()) << applied.status().ToString();
        return applied.ok() && applied.value();
    }

    SearchQuery Query(const std::string& text, SearchMode mode = SearchMode::kHybrid,
                      size_t k = 5) {
        SearchQuery query;
        query.text = text;
        query.vector = Embed(text);
        query.mode = mode;
        query.k = k;
        return query;
    }

    SearchResult Find(const LiveIndex& index, const SearchQuery& query) {
        Result<SearchResult> result = index.Search(query);
        EXPECT_TRUE(result.ok()) << result.status().ToString();
        return result.ok() ? std::move(result).value() : SearchResult{};
    }

    // The doc ids of the hits of `text`, best first.
    std::vector<std::string> Docs(const LiveIndex& index, const std::string& text,
                                  SearchMode mode = SearchMode::kHybrid) {
        std::vector<std::string> docs;
        for (const SearchHit& hit : Find(index, Query(text, mode)).hits) docs.push_back(hit.doc_id);
        return docs;
    }

    std::string TopDoc(const LiveIndex& index, const std::string& text,
                       SearchMode mode = SearchMode::kHybrid) {
        std::vector<std::string> docs = Docs(index, text, mode);
        return docs.empty() ? "" : docs[0];
    }

    // The four documents most tests index, at offsets 0..3 of partition 0.
    void PutCorpus(LiveIndex& index) {
        ASSERT_TRUE(Put(index, "cats",
                        {"Cats are small domesticated felines that purr and chase mice."}, {0, 0}));
        ASSERT_TRUE(Put(
            index, "rockets",
            {"Rockets burn liquid oxygen and kerosene to reach orbit around the earth."}, {0, 1}));
        ASSERT_TRUE(
            Put(index, "bread",
                {"Sourdough bread needs a starter culture, flour, water and a long fermentation."},
                {0, 2}));
        ASSERT_TRUE(Put(index, "tides",
                        {"Ocean tides rise and fall with the gravitational pull of the moon."},
                        {0, 3}));
    }

    std::vector<std::string> SnapshotFiles() const {
        std::vector<std::string> files;
        for (const auto& entry : fs::directory_iterator(Options().dir)) {
            std::string name = entry.path().filename().string();
            if (name.starts_with("graph-") && name.ends_with(".hnsw")) {
                files.push_back(entry.path().string());
            }
        }
        return files;
    }

    static void Overwrite(const std::string& path, std::streamoff offset,
                          const std::string& bytes) {
        std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
        ASSERT_TRUE(file.is_open()) << path;
        file.seekp(offset);
        file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }

    eventloom::testing::TempDir dir_;
    std::unique_ptr<Embedder> embedder_;
};

// ---- Upsert, Delete, Search ------------------------------------------------------------------

TEST_F(LiveIndexTest, UpsertedDocIsFoundInEachMode) {
    auto index = OpenIndex();
    ASSERT_NE(index, nullptr);
    PutCorpus(*index);
    const struct {
        const char* name;
        SearchMode mode;
    } kModes[] = {{"hybrid", SearchMode::kHybrid},
                  {"vector", SearchMode::kVector},
                  {"keyword", SearchMode::kKeyword}};
    for (const auto& mode : kModes) {
        SCOPED_TRACE(mode.name);
        EXPECT_EQ(TopDoc(*index, "kerosene rockets reach orbit", mode.mode), "rockets");
        EXPECT_EQ(TopDoc(*index, "why do cats purr", mode.mode), "cats");
        EXPECT_EQ(TopDoc(*index, "sourdough starter fermentation", mode.mode), "bread");
    }
}

TEST_F(LiveIndexTest, HitCarriesTextMetadataAndBothRanks) {
    auto index = OpenIndex();
    Metadata metadata = {{"lang", "en"}, {"source", "wiki"}};
    ASSERT_TRUE(Put(*index, "rockets", {"intro to spaceflight", "Rockets burn kerosene."}, {0, 0},
                    metadata));
    SearchResult result = Find(*index, Query("rockets burn kerosene"));
    ASSERT_FALSE(result.hits.empty());
    const SearchHit& hit = result.hits[0];
    EXPECT_EQ(hit.doc_id, "rockets");
    EXPECT_EQ(hit.chunk_index, 1u);
    EXPECT_EQ(hit.text, "Rockets burn kerosene.");
    EXPECT_EQ(hit.metadata, metadata);
    ASSERT_TRUE(hit.cosine.has_value());
    EXPECT_NEAR(*hit.cosine, 1.0, 0.05);
    ASSERT_TRUE(hit.bm25.has_value());
    EXPECT_LT(*hit.bm25, 0.0);  // SQLite's bm25(): lower is better
    EXPECT_EQ(hit.vector_rank, 1u);
    EXPECT_EQ(hit.keyword_rank, 1u);
    EXPECT_NEAR(hit.score, 2.0 / 61.0, 1e-9);
}

TEST_F(LiveIndexTest, ScoreIsCosineForVectorAndNegatedBm25ForKeyword) {
    auto index = OpenIndex();
    PutCorpus(*index);
    SearchResult by_vector = Find(*index, Query("ocean tides moon", SearchMode::kVector));
    ASSERT_FALSE(by_vector.hits.empty());
    EXPECT_DOUBLE_EQ(by_vector.hits[0].score, *by_vector.hits[0].cosine);
    EXPECT_FALSE(by_vector.hits[0].bm25.has_value());

    SearchResult by_keyword = Find(*index, Query("ocean tides moon", SearchMode::kKeyword));
    ASSERT_EQ(by_keyword.hits.size(), 1u);
    EXPECT_DOUBLE_EQ(by_keyword.hits[0].score, -*by_keyword.hits[0].bm25);
    EXPECT_FALSE(by_keyword.hits[0].cosine.has_value());
}

TEST_F(LiveIndexTest, KIsRespected) {
    auto index = OpenIndex();
    PutCorpus(*index);
    SearchQuery query = Query("the", SearchMode::kVector, 2);
    EXPECT_EQ(Find(*index, query).hits.size(), 2u);
    query.k = 0;
    EXPECT_TRUE(Find(*index, query).hits.empty());
}

TEST_F(LiveIndexTest, UpsertReplacesOldChunks) {
    auto index = OpenIndex();
    ASSERT_TRUE(Put(*index, "doc", {"zebras graze on the savanna", "zebras have stripes"}, {0, 0}));
    ASSERT_TRUE(Put(*index, "doc", {"penguins live in antarctica"}, {0, 1}));

    EXPECT_TRUE(Docs(*index, "zebras stripes", SearchMode::kKeyword).empty());
    SearchResult result = Find(*index, Query("zebras stripes", SearchMode::kVector));
    ASSERT_EQ(result.hits.size(), 1u);
    EXPECT_EQ(result.hits[0].text, "penguins live in antarctica");
    EXPECT_EQ(TopDoc(*index, "penguins antarctica", SearchMode::kKeyword), "doc");

    LiveIndexStats stats = index->stats();
    EXPECT_EQ(stats.documents, 1);
    EXPECT_EQ(stats.chunks, 1);
    EXPECT_EQ(stats.graph_deleted, 2);
}

TEST_F(LiveIndexTest, UpsertWithNoChunksRemovesTheDocument) {
    auto index = OpenIndex();
    PutCorpus(*index);
    ASSERT_TRUE(Put(*index, "cats", {}, {0, 4}));
    EXPECT_TRUE(Docs(*index, "cats purr", SearchMode::kKeyword).empty());
    EXPECT_EQ(index->stats().documents, 3);
}

TEST_F(LiveIndexTest, DeleteRemovesEveryChunkOfTheDocument) {
    auto index = OpenIndex();
    PutCorpus(*index);
    ASSERT_TRUE(Put(*index, "more-cats", {"cats purr", "cats chase mice"}, {0, 4}));
    Result<bool> deleted = index->Delete("more-cats", {0, 5});
    ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
    EXPECT_TRUE(deleted.value());

    for (const std::string& doc : Docs(*index, "cats purr chase mice")) EXPECT_NE(doc, "more-cats");
    for (const std::string& doc : Docs(*index, "cats purr chase mice", SearchMode::kVector)) {
        EXPECT_NE(doc, "more-cats");
    }
    LiveIndexStats stats = index->stats();
    EXPECT_EQ(stats.documents, 4);
    EXPECT_EQ(stats.chunks, 4);
    EXPECT_EQ(stats.graph_deleted, 2);
}

TEST_F(LiveIndexTest, DeleteOfUnknownDocumentIsApplied) {
    auto index = OpenIndex();
    Result<bool> deleted = index->Delete("never-seen", {2, 7});
    ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
    EXPECT_TRUE(deleted.value());
    EXPECT_EQ(index->applied(), (AppliedOffsets{{2, 8}}));
}

TEST_F(LiveIndexTest, RedeliveredPositionReturnsFalseAndChangesNothing) {
    auto index = OpenIndex();
    ASSERT_TRUE(Put(*index, "doc", {"original text about volcanoes"}, {0, 5}));
    LiveIndexStats before = index->stats();

    EXPECT_FALSE(Put(*index, "doc", {"replacement text about glaciers"}, {0, 5}));
    EXPECT_FALSE(Put(*index, "other", {"a brand new document"}, {0, 4}));
    Result<bool> deleted = index->Delete("doc", {0, 3});
    ASSERT_TRUE(deleted.ok());
    EXPECT_FALSE(deleted.value());

    EXPECT_EQ(TopDoc(*index, "volcanoes", SearchMode::kKeyword), "doc");
    EXPECT_TRUE(Docs(*index, "glaciers", SearchMode::kKeyword).empty());
    EXPECT_TRUE(Docs(*index, "brand new document", SearchMode::kKeyword).empty());
    LiveIndexStats after = index->stats();
    EXPECT_EQ(after.generation, before.generation);
    EXPECT_EQ(after.chunks, before.chunks);
    EXPECT_EQ(index->applied(), (AppliedOffsets{{0, 6}}));
}

TEST_F(LiveIndexTest, AppliedIsTheNextOffsetPerPartition) {
    auto index = OpenIndex();
    EXPECT_TRUE(index->applied().empty());
    ASSERT_TRUE(Put(*index, "a", {"alpha"}, {0, 0}));
    ASSERT_TRUE(Put(*index, "b", {"beta"}, {3, 41}));
    ASSERT_TRUE(Put(*index, "c", {"gamma"}, {0, 9}));  // gaps are fine
    EXPECT_EQ(index->applied(), (AppliedOffsets{{0, 10}, {3, 42}}));
    EXPECT_FALSE(Put(*index, "d", {"delta"}, {0, 8}));
    EXPECT_FALSE(Put(*index, "d", {"delta"}, {3, 0}));
}

TEST_F(LiveIndexTest, SkipMarksThePositionAppliedWithoutAChange) {
    auto index = OpenIndex();
    int64_t generation = index->stats().generation;
    ASSERT_TRUE(index->Skip({1, 9}).ok());
    EXPECT_EQ(index->applied(), (AppliedOffsets{{1, 10}}));
    EXPECT_EQ(index->stats().generation, generation);

    EXPECT_FALSE(Put(*index, "doc", {"text"}, {1, 9}));
    ASSERT_TRUE(index->Skip({1, 2}).ok());  // already applied: nothing moves back
    EXPECT_EQ(index->applied(), (AppliedOffsets{{1, 10}}));
    EXPECT_TRUE(Put(*index, "doc", {"text"}, {1, 10}));
}

TEST_F(LiveIndexTest, SearchReturnsTheOffsetsItRead) {
    auto index = OpenIndex();
    PutCorpus(*index);
    ASSERT_TRUE(index->Skip({5, 100}).ok());
    EXPECT_EQ(Find(*index, Query("cats")).offsets, (AppliedOffsets{{0, 4}, {5, 101}}));
}

TEST_F(LiveIndexTest, StatsCountDocumentsChunksAndGenerations) {
    auto index = OpenIndex();
    LiveIndexStats empty = index->stats();
    EXPECT_EQ(empty.documents, 0);
    EXPECT_EQ(empty.chunks, 0);
    EXPECT_EQ(empty.generation, 0);
    EXPECT_EQ(empty.graph_capacity, 16);

    ASSERT_TRUE(Put(*index, "a", {"one", "two", "three"}, {0, 0}));
    ASSERT_TRUE(Put(*index, "b", {"four"}, {0, 1}));
    ASSERT_TRUE(Put(*index, "a", {"five"}, {0, 2}));
    LiveIndexStats stats = index->stats();
    EXPECT_EQ(stats.documents, 2);
    EXPECT_EQ(stats.chunks, 2);
    EXPECT_EQ(stats.graph_deleted, 3);
    EXPECT_EQ(stats.generation, 3);
    EXPECT_EQ(stats.snapshot_generation, 0);

    ASSERT_TRUE(index->Snapshot().ok());
    EXPECT_EQ(index->stats().snapshot_generation, 3);
}

TEST_F(LiveIndexTest, BadInputsAreInvalidArgument) {
    auto index = OpenIndex();
    std::vector<DocumentChunk> short_vector = {{0, "text", Vector(kDimension - 1, 0.1f)}};
    EXPECT_EQ(index->Upsert("doc", short_vector, kNoMetadata, {0, 0}).status().code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(index->Upsert("", Chunks({"x"}), kNoMetadata, {0, 0}).status().code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(index->Upsert("doc", Chunks({"x"}), kNoMetadata, {0, -1}).status().code(),
              StatusCode::kInvalidArgument);
    EXPECT_TRUE(index->applied().empty());

    SearchQuery query = Query("x", SearchMode::kVector);
    query.vector.pop_back();
    EXPECT_EQ(index->Search(query).status().code(), StatusCode::kInvalidArgument);
    query.mode = SearchMode::kKeyword;  // needs no vector
    EXPECT_TRUE(index->Search(query).ok());
}

TEST_F(LiveIndexTest, BadOptionsAreInvalidArgument) {
    LiveIndexOptions options = Options();
    options.filter_fields = {"lang", "lang"};
    EXPECT_EQ(LiveIndex::Open(options).status().code(), StatusCode::kInvalidArgument);
    options = Options();
    options.embedder = "";
    EXPECT_EQ(LiveIndex::Open(options).status().code(), StatusCode::kInvalidArgument);
    options = Options();
    options.dimension = 0;
    EXPECT_EQ(LiveIndex::Open(options).status().code(), StatusCode::kInvalidArgument);
}

// ---- Filters and query text ------------------------------------------------------------------

TEST_F(LiveIndexTest, FiltersApplyToBothRankings) {
    auto index = OpenIndex();
    ASSERT_TRUE(Put(*index, "en-launch", {"rocket launch schedule for the spring"}, {0, 0},
                    {{"lang", "en"}, {"team", "space"}}));
    ASSERT_TRUE(Put(*index, "fr-launch", {"rocket launch calendrier du printemps"}, {0, 1},
                    {{"lang", "fr"}, {"team", "space"}}));
    ASSERT_TRUE(
        Put(*index, "fr-bread", {"le pain au levain"}, {0, 2}, {{"lang", "fr"}, {"team", "food"}}));
    const SearchMode kModes[] = {SearchMode::kHybrid, SearchMode::kVector, SearchMode::kKeyword};
    for (SearchMode mode : kModes) {
        SCOPED_TRACE(static_cast<int>(mode));
        SearchQuery query = Query("rocket launch schedule for the spring", mode);
        query.filters = {{"lang", "fr"}};
        std::vector<std::string> docs;
        for (const SearchHit& hit : Find(*index, query).hits) docs.push_back(hit.doc_id);
        ASSERT_FALSE(docs.empty());
        EXPECT_EQ(docs[0], "fr-launch");
        EXPECT_EQ(std::count(docs.begin(), docs.end(), "en-launch"), 0);

        query.filters = {{"lang", "fr"}, {"team", "food"}};
        docs.clear();
        for (const SearchHit& hit : Find(*index, query).hits) docs.push_back(hit.doc_id);
        if (mode == SearchMode::kKeyword) {
            EXPECT_TRUE(docs.empty());  // no food document has the words
        } else {
            EXPECT_EQ(docs, (std::vector<std::string>{"fr-bread"}));
        }
    }
}

TEST_F(LiveIndexTest, FilterValueNoDocumentHasFindsNothing) {
    auto index = OpenIndex();
    ASSERT_TRUE(Put(*index, "doc", {"some text"}, {0, 0}, {{"lang", "en"}}));
    SearchQuery query = Query("some text");
    query.filters = {{"lang", "de"}};
    SearchResult result = Find(*index, query);
    EXPECT_TRUE(result.hits.empty());
    EXPECT_EQ(result.offsets, (AppliedOffsets{{0, 1}}));
}

TEST_F(LiveIndexTest, FilterFollowsReplacedMetadata) {
    auto index = OpenIndex();
    ASSERT_TRUE(Put(*index, "doc", {"some text"}, {0, 0}, {{"lang", "en"}}));
    ASSERT_TRUE(Put(*index, "doc", {"some text"}, {0, 1}, {{"lang", "fr"}}));
    SearchQuery query = Query("some text");
    query.filters = {{"lang", "en"}};
    EXPECT_TRUE(Find(*index, query).hits.empty());
    query.filters = {{"lang", "fr"}};
    EXPECT_EQ(Find(*index, query).hits.size(), 1u);
}

TEST_F(LiveIndexTest, FilterOnUndeclaredFieldIsInvalidArgument) {
    auto index = OpenIndex();
    ASSERT_TRUE(Put(*index, "doc", {"text"}, {0, 0}, {{"source", "wiki"}}));
    SearchQuery query = Query("text");
    query.filters = {{"source", "wiki"}};
    Result<SearchResult> result = index->Search(query);
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(result.status().message().find("source"), std::string::npos);
}

// Enough matching chunks that the vector ranking searches the graph (over-fetching) rather
// than scoring every allowed chunk, and few enough for the other filter to score them all.
TEST_F(LiveIndexTest, FiltersHoldOnLargeAndSmallMatchingSets) {
    LiveIndexOptions options = Options();
    options.ef_construction = 32;
    options.hnsw_m = 8;
    options.snapshot_every_changes = 0;
    auto index = OpenIndex(options);
    constexpr int kDocs = 300;
    constexpr int kChunksPerDoc = 10;
    for (int d = 0; d < kDocs; ++d) {
        std::vector<std::string> texts;
        for (int c = 0; c < kChunksPerDoc; ++c) {
            texts.push_back("record" + std::to_string(d) + "x" + std::to_string(c) +
                            " about topic " + std::to_string((d * 7 + c) % 13));
        }
        std::string team = d % 5 == 0 ? "small" : "large";  // 60 docs vs 240 docs
        ASSERT_TRUE(Put(*index, "doc" + std::to_string(d), texts, {0, d}, {{"team", team}}));
    }
    const struct {
        const char* team;
        int doc;
    } kCases[] = {{"large", 123}, {"small", 155}};
    for (const auto& c : kCases) {
        SCOPED_TRACE(c.team);
        for (SearchMode mode : {SearchMode::kVector, SearchMode::kHybrid}) {
            SearchQuery query =
                Query("record" + std::to_string(c.doc) + "x4 about topic", mode, 20);
            query.filters = {{"team", c.team}};
            SearchResult result = Find(*index, query);
            ASSERT_EQ(result.hits.size(), 20u);
            EXPECT_EQ(result.hits[0].doc_id, "doc" + std::to_string(c.doc));
            for (const SearchHit& hit : result.hits) {
                EXPECT_EQ(hit.metadata, (Metadata{{"team", c.team}})) << hit.doc_id;
            }
        }
    }
}

TEST_F(LiveIndexTest, FtsSyntaxInQueryTextIsTakenAsWords) {
    auto index = OpenIndex();
    PutCorpus(*index);
    const char* kHostile[] = {
        "what's \"this\"? (a OR b)",
        "\"",
        "(",
        "NEAR(cats purr, 2)",
        "cats AND NOT",
        "-cats +mice",
        "col:value text:cats",
        "^cats*",
        "{cats} [mice]",
        "''",
        "",
        "   ",
        "!!!???",
        "caf\xc3\xa9 \xe2\x80\x94 na\xc3\xafve",
        "\xe2\x80\x94",
        "\xff\xfe broken utf8",
    };
    for (const char* text : kHostile) {
        SCOPED_TRACE(text);
        for (SearchMode mode : {SearchMode::kKeyword, SearchMode::kHybrid}) {
            Result<SearchResult> result = index->Search(Query(text, mode));
            EXPECT_TRUE(result.ok()) << result.status().ToString();
        }
    }
    EXPECT_EQ(TopDoc(*index, "what's \"kerosene\"? (orbit OR x)", SearchMode::kKeyword), "rockets");
    EXPECT_EQ(TopDoc(*index, "NEAR(cats purr)", SearchMode::kKeyword), "cats");
}

// A word in at least half the chunks adds nothing to bm25() (its idf is 1e-6), so the keyword
// ranking leaves it out unless it is all the query has.
TEST_F(LiveIndexTest, WordsInMostChunksDoNotFloodTheKeywordRanking) {
    LiveIndexOptions options = Options();
    options.snapshot_every_changes = 0;
    auto index = OpenIndex(options);
    constexpr int kDocs = 300;
    for (int i = 0; i < kDocs; ++i) {
        ASSERT_TRUE(Put(*index, "filler" + std::to_string(i),
                        {"the filler text number " + std::to_string(i)}, {0, i}));
    }
    ASSERT_TRUE(Put(*index, "rocket", {"the rocket launch"}, {0, kDocs}));
    EXPECT_EQ(Docs(*index, "the rocket", SearchMode::kKeyword),
              (std::vector<std::string>{"rocket"}));
    EXPECT_EQ(Docs(*index, "THE", SearchMode::kKeyword).size(), 5u);

    // Replaced chunks stop counting: "the" is left in one chunk, and "filler" is the common word.
    for (int i = 0; i < kDocs; ++i) {
        ASSERT_TRUE(Put(*index, "filler" + std::to_string(i),
                        {"filler text number " + std::to_string(i)}, {0, kDocs + 1 + i}));
    }
    EXPECT_EQ(Docs(*index, "the filler", SearchMode::kKeyword),
              (std::vector<std::string>{"rocket"}));
}

// ---- Reopening -------------------------------------------------------------------------------

TEST_F(LiveIndexTest, ReopenResumesFromTheSnapshot) {
    {
        auto index = OpenIndex();
        PutCorpus(*index);
        ASSERT_TRUE(Put(*index, "cats", {"Cats are small felines that purr."}, {1, 7}));
        ASSERT_TRUE(index->Close().ok());
    }
    EXPECT_EQ(SnapshotFiles().size(), 1u);
    auto index = OpenIndex();
    EXPECT_EQ(index->applied(), (AppliedOffsets{{0, 4}, {1, 8}}));
    LiveIndexStats stats = index->stats();
    EXPECT_EQ(stats.documents, 4);
    EXPECT_EQ(stats.chunks, 4);
    EXPECT_EQ(stats.generation, 5);
    EXPECT_EQ(stats.snapshot_generation, 5);
    EXPECT_EQ(stats.graph_deleted, 1);  // the graph was loaded, not rebuilt
    EXPECT_EQ(TopDoc(*index, "kerosene rockets orbit", SearchMode::kVector), "rockets");
    EXPECT_EQ(TopDoc(*index, "felines purr", SearchMode::kKeyword), "cats");
    EXPECT_FALSE(Put(*index, "x", {"x"}, {0, 3}));
    EXPECT_TRUE(Put(*index, "x", {"x"}, {0, 4}));
}

TEST_F(LiveIndexTest, ReopenWithoutSnapshotRebuildsTheGraph) {
    {
        auto index = OpenIndex();
        PutCorpus(*index);
        ASSERT_TRUE(index->Delete("bread", {0, 4}).ok());
    }
    for (const std::string& file : SnapshotFiles()) fs::remove(file);
    auto index = OpenIndex();
    LiveIndexStats stats = index->stats();
    EXPECT_EQ(stats.chunks, 3);
    EXPECT_EQ(stats.graph_deleted, 0);  // rebuilt from the stored vectors
    EXPECT_EQ(index->applied(), (AppliedOffsets{{0, 5}}));
    EXPECT_EQ(TopDoc(*index, "kerosene rockets orbit", SearchMode::kVector), "rockets");
    EXPECT_EQ(TopDoc(*index, "ocean tides moon", SearchMode::kVector), "tides");
    EXPECT_EQ(SnapshotFiles().size(), 1u);  // the rebuilt graph was saved
}

// A copy of the directory taken while the index is open is what a crash leaves: the snapshot
// is older than index.db, so the changes logged after it are replayed on it.
TEST_F(LiveIndexTest, ReopenReplaysChangesMadeAfterTheSnapshot) {
    std::string copy = dir_.Sub("copy");
    {
        auto index = OpenIndex();
        PutCorpus(*index);
        ASSERT_TRUE(index->Snapshot().ok());
        ASSERT_TRUE(Put(*index, "cats", {"Lions are big cats that roar."}, {0, 4}));
        ASSERT_TRUE(index->Delete("bread", {0, 5}).ok());
        ASSERT_TRUE(Put(*index, "comets", {"Comets have icy nuclei and long tails."}, {0, 6}));
        fs::create_directories(copy);
        for (const auto& entry : fs::directory_iterator(Options().dir)) {
            if (entry.path().filename().string().ends_with("-shm")) continue;
            fs::copy_file(entry.path(), fs::path(copy) / entry.path().filename());
        }
    }
    LiveIndexOptions options = Options();
    options.dir = copy;
    auto index = OpenIndex(options);
    LiveIndexStats stats = index->stats();
    EXPECT_EQ(stats.snapshot_generation, 4);
    EXPECT_EQ(stats.generation, 7);
    EXPECT_EQ(stats.chunks, 4);
    EXPECT_EQ(stats.graph_deleted, 2);  // loaded and replayed, not rebuilt
    EXPECT_EQ(index->applied(), (AppliedOffsets{{0, 7}}));
    EXPECT_EQ(TopDoc(*index, "comets icy nuclei tails", SearchMode::kVector), "comets");
    EXPECT_EQ(TopDoc(*index, "lions roar", SearchMode::kVector), "cats");
    for (const std::string& doc : Docs(*index, "sourdough bread", SearchMode::kVector)) {
        EXPECT_NE(doc, "bread");
    }
    EXPECT_TRUE(Docs(*index, "domesticated mice", SearchMode::kKeyword).empty());
}

TEST_F(LiveIndexTest, CorruptSnapshotIsRebuilt) {
    {
        auto index = OpenIndex();
        PutCorpus(*index);
        ASSERT_TRUE(index->Delete("bread", {0, 4}).ok());
    }
    std::vector<std::string> files = SnapshotFiles();
    ASSERT_EQ(files.size(), 1u);
    Overwrite(files[0], 200, std::string(64, '\x5a'));

    auto index = OpenIndex();
    LiveIndexStats stats = index->stats();
    EXPECT_EQ(stats.chunks, 3);
    EXPECT_EQ(stats.graph_deleted, 0);  // rebuilt
    EXPECT_EQ(TopDoc(*index, "why do cats purr", SearchMode::kVector), "cats");
}

TEST_F(LiveIndexTest, TruncatedSnapshotIsRebuilt) {
    {
        auto index = OpenIndex();
        PutCorpus(*index);
    }
    std::vector<std::string> files = SnapshotFiles();
    ASSERT_EQ(files.size(), 1u);
    fs::resize_file(files[0], 50);
    auto index = OpenIndex();
    EXPECT_EQ(index->stats().chunks, 4);
    EXPECT_EQ(TopDoc(*index, "ocean tides moon", SearchMode::kVector), "tides");
}

TEST_F(LiveIndexTest, OtherEmbedderIsRefused) {
    { auto index = OpenIndex(); }
    LiveIndexOptions options = Options();
    options.embedder = "other/64";
    Result<std::unique_ptr<LiveIndex>> refused = LiveIndex::Open(options);
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(refused.status().message().find("other/64"), std::string::npos);
    EXPECT_NE(refused.status().message().find(embedder_->fingerprint()), std::string::npos);

    options = Options();
    options.dimension = 32;
    refused = LiveIndex::Open(options);
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(refused.status().message().find("dimension 64"), std::string::npos);
    EXPECT_NE(refused.status().message().find("dimension 32"), std::string::npos);
}

TEST_F(LiveIndexTest, CorruptIndexDbIsDataLoss) {
    {
        auto index = OpenIndex();
        PutCorpus(*index);
    }
    std::string db = Options().dir + "/index.db";
    ASSERT_FALSE(fs::exists(db + "-wal") && fs::file_size(db + "-wal") > 0);
    Overwrite(db, 0, std::string(4096, '\x42'));
    Result<std::unique_ptr<LiveIndex>> index = LiveIndex::Open(Options());
    EXPECT_EQ(index.status().code(), StatusCode::kDataLoss);
    EXPECT_NE(index.status().message().find("index.db"), std::string::npos);
}

TEST_F(LiveIndexTest, ChangesTriggerAPeriodicSnapshot) {
    LiveIndexOptions options = Options();
    options.snapshot_every_changes = 2;
    auto index = OpenIndex(options);
    ASSERT_TRUE(Put(*index, "a", {"alpha"}, {0, 0}));
    EXPECT_EQ(index->stats().snapshot_generation, 0);
    ASSERT_TRUE(Put(*index, "b", {"beta"}, {0, 1}));
    EXPECT_EQ(index->stats().snapshot_generation, 2);
    EXPECT_EQ(SnapshotFiles().size(), 1u);
}

// ---- Reset, Close, growth --------------------------------------------------------------------

TEST_F(LiveIndexTest, ResetEmptiesTheIndex) {
    auto index = OpenIndex();
    PutCorpus(*index);
    ASSERT_TRUE(index->Snapshot().ok());
    ASSERT_TRUE(index->Reset().ok());

    LiveIndexStats stats = index->stats();
    EXPECT_EQ(stats.documents, 0);
    EXPECT_EQ(stats.chunks, 0);
    EXPECT_EQ(stats.graph_deleted, 0);
    EXPECT_TRUE(index->applied().empty());
    EXPECT_TRUE(Find(*index, Query("cats purr")).hits.empty());
    EXPECT_TRUE(SnapshotFiles().empty());

    EXPECT_TRUE(Put(*index, "cats", {"cats purr"}, {0, 0}));  // positions were forgotten
    ASSERT_TRUE(index->Close().ok());
    index = OpenIndex();
    EXPECT_EQ(index->stats().documents, 1);
    EXPECT_EQ(index->applied(), (AppliedOffsets{{0, 1}}));
    EXPECT_TRUE(Docs(*index, "kerosene", SearchMode::kKeyword).empty());
}

TEST_F(LiveIndexTest, CloseIsIdempotentAndLaterCallsFail) {
    auto index = OpenIndex();
    PutCorpus(*index);
    ASSERT_TRUE(index->Close().ok());
    ASSERT_TRUE(index->Close().ok());
    auto failed = [](const Status& status) {
        return status.code() == StatusCode::kFailedPrecondition;
    };
    EXPECT_TRUE(failed(index->Upsert("d", Chunks({"x"}), kNoMetadata, {0, 9}).status()));
    EXPECT_TRUE(failed(index->Delete("cats", {0, 9}).status()));
    EXPECT_TRUE(failed(index->Skip({0, 9})));
    EXPECT_TRUE(failed(index->Search(Query("cats")).status()));
    EXPECT_TRUE(failed(index->Snapshot()));
    EXPECT_TRUE(failed(index->Reset()));
}

TEST_F(LiveIndexTest, GraphGrowsPastItsInitialCapacity) {
    LiveIndexOptions options = Options();
    options.initial_capacity = 4;
    auto index = OpenIndex(options);
    constexpr int kDocs = 50;
    for (int i = 0; i < kDocs; ++i) {
        ASSERT_TRUE(Put(*index, "doc" + std::to_string(i),
                        {"entry number " + std::to_string(i) + " word" + std::to_string(i * 31)},
                        {0, i}));
    }
    LiveIndexStats stats = index->stats();
    EXPECT_EQ(stats.chunks, kDocs);
    EXPECT_GE(stats.graph_capacity, kDocs);
    for (int i = 0; i < kDocs; ++i) {
        std::string text = "entry number " + std::to_string(i) + " word" + std::to_string(i * 31);
        EXPECT_EQ(TopDoc(*index, text, SearchMode::kVector), "doc" + std::to_string(i));
    }
    ASSERT_TRUE(index->Close().ok());
    index = OpenIndex(options);
    EXPECT_EQ(TopDoc(*index, "entry number 42 word1302", SearchMode::kVector), "doc42");
}

// ---- Concurrency -----------------------------------------------------------------------------

// Readers search while the writer indexes; each search sees every change up to the offsets it
// reports and none after them.
TEST_F(LiveIndexTest, ReadersSeeWholeChangesWhileAWriterIndexes) {
    LiveIndexOptions options = Options();
    options.snapshot_every_changes = 25;
    auto index = OpenIndex(options);
    constexpr int kDocs = 80;
    auto text_of = [](int i) { return "marker" + std::to_string(i) + " shared words here"; };
    std::vector<std::vector<DocumentChunk>> chunks;
    for (int i = 0; i < kDocs; ++i) chunks.push_back(Chunks({text_of(i), "second part"}));
    std::vector<SearchQuery> queries;
    for (int i = 0; i < kDocs; ++i) queries.push_back(Query(text_of(i)));

    std::atomic<bool> done{false};
    std::atomic<int> failures{0};
    std::atomic<int> searches{0};
    auto reader = [&](int seed) {
        int64_t last_offset = 0;
        for (int n = seed; !done.load() || n < seed + 5; n += 7) {
            int target = n % kDocs;
            SearchQuery query = queries[target];
            if (n % 3 == 0) query.mode = SearchMode::kKeyword;
            Result<SearchResult> result = index->Search(query);
            if (!result.ok()) {
                ++failures;
                continue;
            }
            ++searches;
            int64_t offset = result->offsets.count(0) ? result->offsets.at(0) : 0;
            bool found = std::any_of(
                result->hits.begin(), result->hits.end(),
                [&](const SearchHit& h) { return h.doc_id == "doc" + std::to_string(target); });
            bool applied = target < offset;
            if (offset < last_offset || found != applied) ++failures;
            last_offset = offset;
        }
    };
    std::vector<std::thread> readers;
    for (int r = 0; r < 3; ++r) readers.emplace_back(reader, r);
    for (int i = 0; i < kDocs; ++i) {
        Result<bool> applied =
            index->Upsert("doc" + std::to_string(i), chunks[i], kNoMetadata, {0, i});
        EXPECT_TRUE(applied.ok() && applied.value());
    }
    done = true;
    for (std::thread& t : readers) t.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_GT(searches.load(), 0);
    EXPECT_EQ(index->stats().chunks, 2 * kDocs);
}

}  // namespace
}  // namespace eventloom::rag
