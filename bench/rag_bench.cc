#include "rag_bench.h"

#include <sys/prctl.h>

// As in src/rag/live_index.cc: hnswlib's SSE paths read one past a link list, which
// AddressSanitizer reports; under it, the plain loops are used.
#if defined(__SANITIZE_ADDRESS__)
#define NO_MANUAL_VECTORIZATION
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NO_MANUAL_VECTORIZATION
#endif
#endif
// hnswlib 0.6.2 defines a few functions and variables in its headers without `inline`, so a
// second translation unit including it (src/rag/live_index.cc is the first) would define them
// twice: this one renames them. The system headers they use come first, unrenamed.
#include <cpuid.h>
#include <x86intrin.h>
#define cpuid bench_hnswlib_cpuid
#define xgetbv bench_hnswlib_xgetbv
#define AVXCapable bench_hnswlib_AVXCapable
#define AVX512Capable bench_hnswlib_AVX512Capable
#define InnerProductSIMD16Ext bench_hnswlib_InnerProductSIMD16Ext
#define InnerProductSIMD4Ext bench_hnswlib_InnerProductSIMD4Ext
#define InnerProductDistanceSIMD16Ext bench_hnswlib_InnerProductDistanceSIMD16Ext
#define InnerProductDistanceSIMD4Ext bench_hnswlib_InnerProductDistanceSIMD4Ext
#define L2SqrSIMD16Ext bench_hnswlib_L2SqrSIMD16Ext
#include <hnswlib/hnswlib.h>
#undef cpuid
#undef xgetbv
#undef AVXCapable
#undef AVX512Capable
#undef InnerProductSIMD16Ext
#undef InnerProductSIMD4Ext
#undef InnerProductDistanceSIMD16Ext
#undef InnerProductDistanceSIMD4Ext
#undef L2SqrSIMD16Ext

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bench_util.h"
#include "common/file.h"
#include "eventloom/broker.h"
#include "rag/chunker.h"
#include "rag/embedder.h"
#include "rag/indexer.h"
#include "rag/live_index.h"

namespace eventloom::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;
using Graph = hnswlib::HierarchicalNSW<float>;

constexpr size_t kTopK = 10;
constexpr size_t kMinDocBytes = 300;   // a document takes paragraphs until it has this many
constexpr size_t kMaxDocBytes = 600;   // and never grows past this many
constexpr size_t kMinTailBytes = 100;  // the end of a file shorter than this is dropped
constexpr uint64_t kSeed = 20261203;
constexpr size_t kWarmupQueries = 50;
// The query phase stops after this long once kMinQueries ran (each query runs in three modes
// and through two peers): keyword search is slow enough at 100k chunks to need it.
constexpr std::chrono::seconds kQueryBudget{100};
constexpr size_t kMinQueries = 200;
constexpr size_t kEmbedBatch = 512;
constexpr std::string_view kTopic = "docs";
constexpr std::string_view kFreshPrefix = "fresh-";

// ---------------------------------------------------------------------------------------------
// The corpus.

struct CorpusSource {
    std::string_view name;     // the documents' `source` metadata
    std::string_view package;  // the Debian package that installs it
    std::string_view root;
    std::string_view extension;
};

constexpr CorpusSource kSources[] = {
    {"python", "python3.11-doc", "/usr/share/doc/python3.11/html/_sources", ".txt"},
    {"perl", "perl-doc", "/usr/share/perl/5.36/pod", ".pod"},
};

struct Document {
    std::string id;  // "<source>/<path under the root>#<n>"
    std::string_view source;
    std::string text;
    size_t chunks = 0;
};

bool IsBlank(std::string_view line) {
    return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

// The longest prefix of `text` of at most `max` bytes that ends at a space (or, without one, at a
// UTF-8 sequence boundary).
size_t CutAt(std::string_view text, size_t max) {
    if (text.size() <= max) return text.size();
    size_t space = text.rfind(' ', max - 1);
    if (space != std::string_view::npos && space > max / 2) return space + 1;
    size_t cut = max;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    return cut > 0 ? cut : max;
}

// The blank-line separated paragraphs of `text`. A paragraph longer than kMaxDocBytes is cut at
// line ends (a longer line, at a space).
std::vector<std::string_view> Paragraphs(std::string_view text) {
    std::vector<std::string_view> out;
    size_t begin = std::string_view::npos;  // the open paragraph's start
    size_t end = 0;                         // and end
    size_t pos = 0;
    while (pos < text.size()) {
        size_t eol = text.find('\n', pos);
        if (eol == std::string_view::npos) eol = text.size();
        std::string_view line = text.substr(pos, eol - pos);
        if (IsBlank(line) || (begin != std::string_view::npos && eol - begin > kMaxDocBytes)) {
            if (begin != std::string_view::npos) out.push_back(text.substr(begin, end - begin));
            begin = std::string_view::npos;
        }
        if (!IsBlank(line)) {
            while (line.size() > kMaxDocBytes) {
                size_t cut = CutAt(line, kMaxDocBytes);
                out.push_back(line.substr(0, cut));
                line.remove_prefix(cut);
            }
            if (begin == std::string_view::npos)
                begin = static_cast<size_t>(line.data() - text.data());
            end = eol;
        }
        pos = eol + 1;
    }
    if (begin != std::string_view::npos) out.push_back(text.substr(begin, end - begin));
    return out;
}

// Groups the paragraphs of one file into documents of kMinDocBytes..kMaxDocBytes.
void SplitFile(std::string_view text, const std::string& id_prefix, std::string_view source,
               std::vector<Document>* out) {
    std::string doc;
    size_t n = 0;
    auto emit = [&] {
        out->push_back(Document{fmt::format("{}#{}", id_prefix, n++), source, std::move(doc), 0});
        doc.clear();
    };
    for (std::string_view paragraph : Paragraphs(text)) {
        if (!doc.empty() && doc.size() + 2 + paragraph.size() > kMaxDocBytes) emit();
        if (!doc.empty()) doc += "\n\n";
        doc += paragraph;
        if (doc.size() >= kMinDocBytes) emit();
    }
    if (doc.size() >= kMinTailBytes) emit();
}

Status ReadSource(const CorpusSource& source, std::vector<Document>* out) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(fs::path(source.root), ec)) {
        return FailedPreconditionError(
            fmt::format("bench rag: the corpus is missing: {} (Debian package {}); install it with "
                        "'scripts/setup.sh --peers' or 'apt-get install {}'",
                        source.root, source.package, source.package));
    }
    std::vector<fs::path> files;
    for (auto it = fs::recursive_directory_iterator(source.root, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file() && it->path().extension() == source.extension) {
            files.push_back(it->path());
        }
    }
    std::sort(files.begin(), files.end());
    const size_t before = out->size();
    for (const fs::path& file : files) {
        EVENTLOOM_ASSIGN_OR_RETURN(std::string text, FileSystem::Default()->ReadFile(file));
        std::string prefix =
            fmt::format("{}/{}", source.name, fs::relative(file, source.root).generic_string());
        SplitFile(text, prefix, source.name, out);
    }
    if (out->size() == before) {
        return FailedPreconditionError(
            fmt::format("bench rag: no {} files under {} (Debian package {}); reinstall it",
                        source.extension, source.root, source.package));
    }
    return Status::Ok();
}

// `text` with the bytes that are not well-formed UTF-8 replaced by U+FFFD, as a document event's
// JSON carries it: the peers embed exactly the text the index stores.
std::string ValidUtf8(const std::string& text) {
    const std::string json =
        nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return nlohmann::json::parse(json).get<std::string>();
}

// Every document of the corpus, shuffled with a fixed seed, with its chunk count.
Result<std::vector<Document>> LoadCorpus(const rag::ChunkOptions& chunking, size_t* bytes) {
    std::vector<Document> docs;
    for (const CorpusSource& source : kSources) {
        EVENTLOOM_RETURN_IF_ERROR(ReadSource(source, &docs));
    }
    std::mt19937_64 rng(kSeed);
    std::shuffle(docs.begin(), docs.end(), rng);
    *bytes = 0;
    for (Document& doc : docs) {
        doc.text = ValidUtf8(doc.text);
        doc.chunks = rag::ChunkText(doc.text, chunking).size();
        *bytes += doc.text.size();
    }
    return docs;
}

// The words of the sentence of `text` that follows position `at` (from after the next ". " or
// blank line to the one after it), at most `max` of them.
std::vector<std::string_view> SentenceAfter(std::string_view text, size_t at, size_t max) {
    auto boundary = [&](size_t from) {
        size_t best = text.size();
        for (std::string_view mark : {". ", ".\n", "? ", "! ", "\n\n"}) {
            best = std::min(best, std::min(text.find(mark, from), text.size()));
        }
        return best;
    };
    const size_t begin = boundary(at);
    if (begin + 2 >= text.size()) return {};
    std::string_view sentence = text.substr(begin + 2, boundary(begin + 2) - begin - 2);
    std::vector<std::string_view> words;
    for (size_t i = 0; i < sentence.size() && words.size() < max;) {
        size_t end = std::min(sentence.find_first_of(" \t\r\n", i), sentence.size());
        if (end > i) words.push_back(sentence.substr(i, end - i));
        i = end + 1;
    }
    return words;
}

// Sentences of random ingested documents, at most 24 words, each word dropped with probability
// 0.3 (at least 4 kept): real text, never a chunk verbatim.
std::vector<std::string> MakeQueries(const std::vector<Document>& docs, size_t ingested,
                                     size_t count) {
    std::mt19937_64 rng(kSeed + 1);
    std::uniform_int_distribution<size_t> pick(0, ingested - 1);
    std::bernoulli_distribution drop(0.3);
    std::vector<std::string> queries;
    while (queries.size() < count) {
        const std::string& text = docs[pick(rng)].text;
        std::uniform_int_distribution<size_t> at(0, text.size() / 2);
        std::vector<std::string_view> words = SentenceAfter(text, at(rng), 24);
        if (words.size() < 6) continue;
        std::string query;
        size_t kept = 0;
        for (size_t i = 0; i < words.size(); ++i) {
            const size_t needed = 4 - std::min<size_t>(kept, 4);
            if (words.size() - i > needed && drop(rng)) continue;
            if (!query.empty()) query += ' ';
            query += words[i];
            ++kept;
        }
        queries.push_back(std::move(query));
    }
    return queries;
}

// ---------------------------------------------------------------------------------------------
// The stored vectors, for the peers: the ingested documents' chunks embedded once more by the
// same (deterministic) embedder, in the same order.

struct Vectors {
    size_t dimension = 0;
    std::vector<float> data;                          // row i: chunk i
    std::unordered_map<std::string, uint32_t> index;  // "<doc id>\n<chunk index>" -> row
    double embed_seconds = 0;

    const float* row(size_t i) const { return data.data() + i * dimension; }
    size_t size() const { return dimension == 0 ? 0 : data.size() / dimension; }
};

std::string ChunkKey(std::string_view doc_id, size_t chunk) {
    return fmt::format("{}\n{}", doc_id, chunk);
}

Result<Vectors> EmbedCorpus(rag::Embedder& embedder, const std::vector<Document>& docs,
                            size_t count, const rag::ChunkOptions& chunking) {
    Vectors v;
    v.dimension = static_cast<size_t>(embedder.dimension());
    std::vector<std::string> texts;
    auto flush = [&]() -> Status {
        if (texts.empty()) return Status::Ok();
        const auto start = SteadyClock::now();
        EVENTLOOM_ASSIGN_OR_RETURN(std::vector<rag::Vector> out, embedder.Embed(texts));
        v.embed_seconds += SecondsBetween(start, SteadyClock::now());
        for (const rag::Vector& vector : out)
            v.data.insert(v.data.end(), vector.begin(), vector.end());
        texts.clear();
        return Status::Ok();
    };
    for (size_t d = 0; d < count; ++d) {
        for (rag::Chunk& chunk : rag::ChunkText(docs[d].text, chunking)) {
            v.index.emplace(ChunkKey(docs[d].id, chunk.index),
                            static_cast<uint32_t>(v.size() + texts.size()));
            texts.push_back(std::move(chunk.text));
        }
        if (texts.size() >= kEmbedBatch) EVENTLOOM_RETURN_IF_ERROR(flush());
    }
    EVENTLOOM_RETURN_IF_ERROR(flush());
    return v;
}

// The inner-product kernel hnswlib searches with, for exact search and recall.
class Scorer {
public:
    explicit Scorer(size_t dimension)
        : space_(dimension),
          distance_(space_.get_dist_func()),
          param_(space_.get_dist_func_param()) {}

    hnswlib::SpaceInterface<float>* space() { return &space_; }
    float Cosine(const float* a, const float* b) const { return 1.0f - distance_(a, b, param_); }

    // The `k` best rows for `query`, as (1 - cosine, row), best first.
    std::vector<std::pair<float, uint32_t>> Exact(const Vectors& v, const float* query,
                                                  size_t k) const {
        std::vector<std::pair<float, uint32_t>> all(v.size());
        for (size_t i = 0; i < v.size(); ++i) {
            all[i] = {distance_(query, v.row(i), param_), static_cast<uint32_t>(i)};
        }
        k = std::min(k, all.size());
        std::partial_sort(all.begin(), all.begin() + static_cast<ptrdiff_t>(k), all.end());
        all.resize(k);
        return all;
    }

private:
    hnswlib::InnerProductSpace space_;
    hnswlib::DISTFUNC<float> distance_;
    void* param_;
};

// The share of `found` (rows, any order) whose cosine to `query` is at least that of the exact
// k-th best (less a rounding margin): ties with the k-th are not misses.
double Recall(const Scorer& s, const Vectors& v, const float* query,
              const std::vector<std::pair<float, uint32_t>>& exact,
              const std::vector<uint32_t>& found) {
    if (exact.empty()) return 1;
    const float kth = 1.0f - exact.back().first - 1e-5f;
    size_t hits = 0;
    for (uint32_t row : found) hits += s.Cosine(query, v.row(row)) >= kth;
    return static_cast<double>(std::min(hits, exact.size())) / static_cast<double>(exact.size());
}

// ---------------------------------------------------------------------------------------------
// The system under test.

std::string DocumentEventData(const Document& doc) {
    nlohmann::json data = {
        {"id", doc.id}, {"text", doc.text}, {"metadata", {{"source", std::string(doc.source)}}}};
    return data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Event DocumentEvent(const Document& doc, std::string id) {
    Event e;
    e.id = std::move(id);
    e.source = "bench/rag";
    e.type = "document.upserted";
    e.datacontenttype = "application/json";
    e.data = DocumentEventData(doc);
    e.has_data = true;
    return e;
}

// Publish -> applied times of the freshness phase, indexed by the event id's number.
struct FreshRecorder {
    std::vector<SteadyClock::time_point> due;
    std::vector<double> latency_us;
    std::atomic<int64_t> applied{0};
    SteadyClock::time_point last_applied;  // read after the indexer stopped

    // On the indexer's thread.
    void OnApplied(const Delivery& d) {
        std::string_view id = d.event->id;
        if (!id.starts_with(kFreshPrefix)) return;
        id.remove_prefix(kFreshPrefix.size());
        size_t i = 0;
        std::from_chars(id.data(), id.data() + id.size(), i);
        if (i >= due.size()) return;
        last_applied = SteadyClock::now();
        latency_us[i] = MicrosBetween(due[i], last_applied);
        applied.fetch_add(1, std::memory_order_release);
    }
};

struct System {
    std::unique_ptr<TempDir> dir;
    std::unique_ptr<Broker> broker;
    std::unique_ptr<rag::Embedder> embedder;
    std::unique_ptr<rag::LiveIndex> index;
    std::unique_ptr<rag::Indexer> indexer;
    FreshRecorder fresh;
};

// `capacity`: chunks the graph is made for, so that no resize (a copy of the whole graph under
// the write lock) falls into a measurement.
Status OpenSystem(const RagBenchOptions& o, const rag::LiveIndexOptions& tuned,
                  const rag::ChunkOptions& chunking, size_t capacity, System* s) {
    EVENTLOOM_ASSIGN_OR_RETURN(TempDir dir, TempDir::Create("eventloom-bench-rag", o.dir));
    s->dir = std::make_unique<TempDir>(std::move(dir));
    EmbeddedBrokerOptions bo;
    bo.dir = s->dir->path() + "/data";
    EVENTLOOM_ASSIGN_OR_RETURN(s->broker, OpenEmbeddedBroker(bo));
    TopicOptions topic;
    topic.durability = Durability::kNever;
    topic.segment_bytes = 64 << 20;
    EVENTLOOM_RETURN_IF_ERROR(s->broker->CreateTopic(std::string(kTopic), topic));
    EVENTLOOM_ASSIGN_OR_RETURN(s->embedder, rag::MakeHashingEmbedder());

    rag::LiveIndexOptions lo = tuned;
    lo.dir = s->dir->path() + "/index";
    lo.dimension = s->embedder->dimension();
    lo.embedder = s->embedder->fingerprint();
    lo.initial_capacity = capacity;
    EVENTLOOM_ASSIGN_OR_RETURN(s->index, rag::LiveIndex::Open(lo));

    rag::IndexerOptions io;
    io.name = "bench";
    io.source = std::string(kTopic);
    io.chunking = chunking;
    io.on_applied = [fresh = &s->fresh](const Delivery& d) { fresh->OnApplied(d); };
    EVENTLOOM_ASSIGN_OR_RETURN(s->indexer, rag::Indexer::Make(s->broker.get(), s->index.get(),
                                                              s->embedder.get(), lo.dir, io));
    return Status::Ok();
}

struct IngestResult {
    double publish_seconds = 0;
    double index_seconds = 0;
    int64_t docs = 0;
    int64_t chunks = 0;
};

// Publishes the first `count` documents, then times CatchUp over them.
Result<IngestResult> RunIngest(System& s, const std::vector<Document>& docs, size_t count) {
    IngestResult r;
    const auto start = SteadyClock::now();
    std::vector<Event> batch;
    for (size_t i = 0; i < count; ++i) {
        batch.push_back(DocumentEvent(docs[i], fmt::format("doc-{}", i)));
        if (batch.size() == 256 || i + 1 == count) {
            EVENTLOOM_RETURN_IF_ERROR(s.broker->PublishBatch(std::string(kTopic), batch).status());
            batch.clear();
        }
    }
    r.publish_seconds = SecondsBetween(start, SteadyClock::now());

    const auto index_start = SteadyClock::now();
    auto last_report = index_start;
    EVENTLOOM_RETURN_IF_ERROR(s.indexer->CatchUp([&](int64_t done, int64_t total) {
        if (SteadyClock::now() - last_report < std::chrono::seconds(10)) return;
        last_report = SteadyClock::now();
        std::cerr << fmt::format("bench rag: indexed {} of {} documents\n", done, total);
    }));
    r.index_seconds = SecondsBetween(index_start, SteadyClock::now());
    const rag::LiveIndexStats stats = s.index->stats();
    r.docs = stats.documents;
    r.chunks = stats.chunks;
    return r;
}

struct HnswlibPeer {
    std::unique_ptr<Graph> graph;
    double insert_seconds = 0;
};

Result<HnswlibPeer> BuildHnswlib(Scorer& scorer, const Vectors& v,
                                 const rag::LiveIndexOptions& tuned) {
    HnswlibPeer peer;
    try {
        peer.graph =
            std::make_unique<Graph>(scorer.space(), v.size(), static_cast<size_t>(tuned.hnsw_m),
                                    static_cast<size_t>(tuned.ef_construction), 100);
        const auto start = SteadyClock::now();
        for (size_t i = 0; i < v.size(); ++i) peer.graph->addPoint(v.row(i), i);
        peer.insert_seconds = SecondsBetween(start, SteadyClock::now());
    } catch (const std::exception& e) {
        return ResourceExhaustedError(std::string("bench rag: hnswlib: ") + e.what());
    }
    return peer;
}

// ---------------------------------------------------------------------------------------------
// Queries.

struct QueryResults {
    size_t n = 0;  // queries run (each in every mode)
    LatencyStats hybrid;
    LatencyStats vector;
    LatencyStats keyword;
    LatencyStats exact;
    LatencyStats hnswlib;
    double recall = 0;          // vector mode against exact
    double hnswlib_recall = 0;  // hnswlib's searchKnn against exact
    double empty_keyword = 0;   // share of keyword queries without a hit
};

Result<rag::Vector> EmbedOne(rag::Embedder& embedder, const std::string& text) {
    const std::string texts[] = {text};
    EVENTLOOM_ASSIGN_OR_RETURN(std::vector<rag::Vector> out, embedder.Embed(texts));
    return std::move(out[0]);
}

// One search of the index, embedding included (but in keyword mode). Returns the hits' rows.
Result<std::vector<uint32_t>> TimedSearch(System& s, const Vectors& v, const std::string& text,
                                          rag::SearchMode mode, rag::Vector* vector,
                                          std::vector<double>* micros) {
    const auto start = SteadyClock::now();
    rag::SearchQuery q;
    q.text = text;
    q.mode = mode;
    q.k = kTopK;
    if (mode != rag::SearchMode::kKeyword) {
        EVENTLOOM_ASSIGN_OR_RETURN(q.vector, EmbedOne(*s.embedder, text));
    }
    EVENTLOOM_ASSIGN_OR_RETURN(rag::SearchResult result, s.index->Search(q));
    if (micros) micros->push_back(MicrosBetween(start, SteadyClock::now()));
    if (vector) *vector = std::move(q.vector);
    std::vector<uint32_t> rows;
    for (const rag::SearchHit& hit : result.hits) {
        auto it = v.index.find(ChunkKey(hit.doc_id, hit.chunk_index));
        if (it == v.index.end()) {
            return InternalError("bench rag: the index returned an unknown chunk " + hit.doc_id);
        }
        rows.push_back(it->second);
    }
    return rows;
}

// Per-query latencies of every mode and peer, and the recall sums.
struct QuerySamples {
    std::vector<double> hybrid, vector, keyword, exact, hnswlib;
    double recall = 0;
    double hnswlib_recall = 0;
    size_t empty_keyword = 0;
};

// Runs one query in each mode and through each peer, one after another.
Status MeasureQuery(System& s, const Scorer& scorer, const Vectors& v, Graph& peer,
                    const std::string& text, QuerySamples* out) {
    EVENTLOOM_RETURN_IF_ERROR(
        TimedSearch(s, v, text, rag::SearchMode::kHybrid, nullptr, &out->hybrid).status());
    EVENTLOOM_ASSIGN_OR_RETURN(
        std::vector<uint32_t> keyword,
        TimedSearch(s, v, text, rag::SearchMode::kKeyword, nullptr, &out->keyword));
    out->empty_keyword += keyword.empty();
    rag::Vector q;
    EVENTLOOM_ASSIGN_OR_RETURN(std::vector<uint32_t> found,
                               TimedSearch(s, v, text, rag::SearchMode::kVector, &q, &out->vector));

    auto start = SteadyClock::now();
    EVENTLOOM_ASSIGN_OR_RETURN(rag::Vector eq, EmbedOne(*s.embedder, text));
    const auto best = scorer.Exact(v, eq.data(), kTopK);
    out->exact.push_back(MicrosBetween(start, SteadyClock::now()));

    start = SteadyClock::now();
    EVENTLOOM_ASSIGN_OR_RETURN(rag::Vector hq, EmbedOne(*s.embedder, text));
    auto knn = peer.searchKnn(hq.data(), kTopK);
    out->hnswlib.push_back(MicrosBetween(start, SteadyClock::now()));
    std::vector<uint32_t> rows;
    for (; !knn.empty(); knn.pop()) rows.push_back(static_cast<uint32_t>(knn.top().second));

    out->recall += Recall(scorer, v, q.data(), best, found);
    out->hnswlib_recall += Recall(scorer, v, q.data(), best, rows);
    return Status::Ok();
}

Result<QueryResults> RunQueries(System& s, const Scorer& scorer, const Vectors& v,
                                HnswlibPeer& peer, const std::vector<std::string>& queries,
                                size_t ef) {
    // Warm-up, not counted: the readers' SQLite connections and pages.
    for (size_t i = 0; i < std::min(kWarmupQueries, queries.size()); ++i) {
        EVENTLOOM_RETURN_IF_ERROR(
            TimedSearch(s, v, queries[i], rag::SearchMode::kHybrid, nullptr, nullptr).status());
    }
    peer.graph->setEf(ef);
    QuerySamples samples;
    const auto give_up = SteadyClock::now() + kQueryBudget;
    size_t n = 0;
    for (const std::string& text : queries) {
        if (n >= kMinQueries && SteadyClock::now() > give_up) break;
        EVENTLOOM_RETURN_IF_ERROR(MeasureQuery(s, scorer, v, *peer.graph, text, &samples));
        ++n;
    }
    QueryResults r;
    r.n = n;
    r.hybrid = Summarize(std::move(samples.hybrid));
    r.vector = Summarize(std::move(samples.vector));
    r.keyword = Summarize(std::move(samples.keyword));
    r.exact = Summarize(std::move(samples.exact));
    r.hnswlib = Summarize(std::move(samples.hnswlib));
    r.recall = samples.recall / static_cast<double>(n);
    r.hnswlib_recall = samples.hnswlib_recall / static_cast<double>(n);
    r.empty_keyword = static_cast<double>(samples.empty_keyword) / static_cast<double>(n);
    return r;
}

// ---------------------------------------------------------------------------------------------
// Freshness.

struct FreshResult {
    LatencyStats latency;
    double achieved_rate = 0;  // published
    double applied_rate = 0;   // applied, from the first due time to the last applied
    int64_t docs = 0;
    int64_t chunks = 0;
};

Result<FreshResult> RunFreshness(System& s, const RagBenchOptions& o,
                                 const std::vector<Document>& docs, size_t first, size_t count) {
    FreshRecorder& rec = s.fresh;
    rec.due.assign(count, {});
    rec.latency_us.assign(count, -1);
    std::vector<Event> events;
    events.reserve(count);
    int64_t chunks = 0;
    for (size_t i = 0; i < count; ++i) {
        events.push_back(DocumentEvent(docs[first + i], fmt::format("{}{}", kFreshPrefix, i)));
        chunks += static_cast<int64_t>(docs[first + i].chunks);
    }
    EVENTLOOM_RETURN_IF_ERROR(s.indexer->Start());

    // Open loop: each document is due at a fixed time and timed from then, so a stall of the
    // publisher or the indexer delays the ones behind it and shows in the tail.
    ::prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    const auto interval = std::chrono::nanoseconds(static_cast<int64_t>(1e9 / o.fresh_rate));
    const auto start = SteadyClock::now() + std::chrono::milliseconds(20);
    auto due = start;
    Status published = Status::Ok();
    for (size_t i = 0; i < count && published.ok(); ++i, due += interval) {
        const auto early = due - std::chrono::microseconds(60);
        if (SteadyClock::now() < early) std::this_thread::sleep_until(early);
        while (SteadyClock::now() < due) {
        }
        rec.due[i] = due;
        published = s.broker->Publish(std::string(kTopic), events[i]).status();
    }
    const double achieved =
        RatePerSecond(static_cast<double>(count), SecondsBetween(start, SteadyClock::now()));
    const auto give_up = SteadyClock::now() + std::chrono::seconds(60);
    while (rec.applied.load(std::memory_order_acquire) < static_cast<int64_t>(count) &&
           SteadyClock::now() < give_up && published.ok()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    s.indexer->Stop();
    EVENTLOOM_RETURN_IF_ERROR(published);
    const int64_t applied = rec.applied.load(std::memory_order_acquire);
    if (applied < static_cast<int64_t>(count)) {
        return DeadlineExceededError(fmt::format(
            "bench rag: freshness: {} of {} documents applied 60 s after the last publish", applied,
            count));
    }
    FreshResult r;
    r.latency = Summarize(rec.latency_us);
    r.achieved_rate = achieved;
    r.applied_rate =
        RatePerSecond(static_cast<double>(count), SecondsBetween(start, rec.last_applied));
    r.docs = static_cast<int64_t>(count);
    r.chunks = chunks;
    return r;
}

// ---------------------------------------------------------------------------------------------
// The run.

struct Plan {
    size_t ingest_docs = 0;
    int64_t ingest_chunks = 0;
    size_t fresh_docs = 0;
    int64_t fresh_chunks = 0;
};

Result<Plan> MakePlan(const RagBenchOptions& o, const std::vector<Document>& docs) {
    Plan p;
    while (p.ingest_docs < docs.size() && p.ingest_chunks < o.chunks) {
        p.ingest_chunks += static_cast<int64_t>(docs[p.ingest_docs++].chunks);
    }
    p.fresh_docs = static_cast<size_t>(o.fresh_rate * o.fresh_seconds);
    for (size_t i = p.ingest_docs; i < std::min(docs.size(), p.ingest_docs + p.fresh_docs); ++i) {
        p.fresh_chunks += static_cast<int64_t>(docs[i].chunks);
    }
    if (p.ingest_chunks < o.chunks || p.ingest_docs + p.fresh_docs > docs.size()) {
        int64_t total = 0;
        for (const Document& doc : docs) total += static_cast<int64_t>(doc.chunks);
        return FailedPreconditionError(fmt::format(
            "bench rag: the corpus has {} documents ({} chunks); {} chunks need {} of them and "
            "the freshness phase {} more: lower --chunks, --fresh-rate or --fresh-seconds",
            docs.size(), total, o.chunks, p.ingest_docs, p.fresh_docs));
    }
    return p;
}

rag::LiveIndexOptions Tuned(const RagBenchOptions& o) {
    rag::LiveIndexOptions lo;
    if (o.hnsw_m > 0) lo.hnsw_m = o.hnsw_m;
    if (o.ef_construction > 0) lo.ef_construction = o.ef_construction;
    if (o.ef_search > 0) lo.ef_search = o.ef_search;
    lo.snapshot_every_changes = o.snapshot_every_changes;
    lo.snapshot_every = std::chrono::seconds(0);
    return lo;
}

double Ms(double us) { return us / 1000.0; }

struct Report {
    const RagBenchOptions* options = nullptr;
    rag::LiveIndexOptions tuned;
    rag::ChunkOptions chunking;
    size_t corpus_docs = 0;
    size_t corpus_bytes = 0;
    size_t ef = 0;  // the ef both searches use
    Plan plan;
    IngestResult ingest;
    double embed_per_s = 0;
    double hnswlib_insert_per_s = 0;
    Result<QueryResults> queries = QueryResults{};
    Result<double> snapshot_ms = 0.0;
    Result<FreshResult> fresh = FreshResult{};
};

void PrintTable(const Report& r) {
    const RagBenchOptions& o = *r.options;
    Table t;
    t.SetHeader({"figure", "p50", "p99", "max", "rate / value"});
    t.AddRow({fmt::format("ingest: CatchUp, {} published docs -> {} chunks", r.ingest.docs,
                          r.ingest.chunks),
              "", "", "",
              fmt::format("{} docs, {} chunks",
                          FormatRate(RatePerSecond(r.ingest.docs, r.ingest.index_seconds)),
                          FormatRate(RatePerSecond(r.ingest.chunks, r.ingest.index_seconds)))});
    t.AddRow({"  peer: hashing embedder alone", "", "", "", FormatRate(r.embed_per_s) + " chunks"});
    t.AddRow({fmt::format("  peer: hnswlib addPoint alone (M {}, ef_c {})", r.tuned.hnsw_m,
                          r.tuned.ef_construction),
              "", "", "", FormatRate(r.hnswlib_insert_per_s) + " inserts"});
    auto latency = [&](const std::string& name, const LatencyStats& s) {
        t.AddRow(
            {name, FormatMicros(s.p50_us), FormatMicros(s.p99_us), FormatMicros(s.max_us), ""});
    };
    if (r.queries.ok()) {
        const QueryResults& q = *r.queries;
        const std::string at =
            fmt::format(" at {} chunks, k {}, {} queries", r.ingest.chunks, kTopK, q.n);
        latency("query hybrid" + at, q.hybrid);
        latency("query vector" + at, q.vector);
        latency("query keyword" + at + " (no embedding)", q.keyword);
        latency("  peer: exact search (every vector)", q.exact);
        latency(fmt::format("  peer: hnswlib searchKnn (ef {})", r.ef), q.hnswlib);
        t.AddRow({"recall@10, vector mode vs exact", "", "", "", fmt::format("{:.4f}", q.recall)});
        t.AddRow({"  peer: recall@10, hnswlib vs exact", "", "", "",
                  fmt::format("{:.4f}", q.hnswlib_recall)});
    } else {
        t.AddRow({"queries", CellOr(r.queries.status(), "")});
    }
    t.AddRow({fmt::format("snapshot at {} chunks (writer blocked)", r.ingest.chunks), "", "", "",
              CellOr(r.snapshot_ms.status(),
                     r.snapshot_ms.ok() ? FormatMicros(*r.snapshot_ms * 1000) : "")});
    if (r.fresh.ok()) {
        const FreshResult& f = *r.fresh;
        t.AddRow({fmt::format("freshness at {} docs/s: due -> applied ({} docs, {} chunks)",
                              o.fresh_rate, f.docs, f.chunks),
                  FormatMicros(f.latency.p50_us), FormatMicros(f.latency.p99_us),
                  FormatMicros(f.latency.max_us),
                  fmt::format("{} docs applied", FormatRate(f.applied_rate))});
    } else {
        t.AddRow({"freshness", CellOr(r.fresh.status(), "")});
    }
    t.Print(std::cout);
    std::cout << fmt::format(
        "corpus: {} documents, {} ({} ingested, {} for freshness); chunks of {} characters, "
        "overlap {}; HNSW M {}, ef_construction {}, ef_search {}; {} queries\n",
        r.corpus_docs, FormatBytes(r.corpus_bytes), r.plan.ingest_docs, r.plan.fresh_docs,
        r.chunking.size, r.chunking.overlap, r.tuned.hnsw_m, r.tuned.ef_construction,
        r.tuned.ef_search, r.queries.ok() ? r.queries->n : 0);
}

void PrintJson(const Report& r) {
    const RagBenchOptions& o = *r.options;
    nlohmann::json out;
    out["bench"] = "rag";
    out["chunks"] = r.ingest.chunks;
    out["documents"] = r.ingest.docs;
    out["ingest_docs_per_s"] = RatePerSecond(r.ingest.docs, r.ingest.index_seconds);
    out["ingest_chunks_per_s"] = RatePerSecond(r.ingest.chunks, r.ingest.index_seconds);
    out["embed_chunks_per_s"] = r.embed_per_s;
    out["hnswlib_insert_per_s"] = r.hnswlib_insert_per_s;
    if (r.fresh.ok()) {
        out["fresh_rate_per_s"] = r.fresh->achieved_rate;
        out["fresh_applied_per_s"] = r.fresh->applied_rate;
        out["fresh_p50_ms"] = Ms(r.fresh->latency.p50_us);
        out["fresh_p99_ms"] = Ms(r.fresh->latency.p99_us);
        out["fresh_max_ms"] = Ms(r.fresh->latency.max_us);
    } else {
        out["fresh_error"] = r.fresh.status().ToString();
    }
    if (r.queries.ok()) {
        const QueryResults& q = *r.queries;
        out["query_p50_ms"] = Ms(q.hybrid.p50_us);
        out["query_p99_ms"] = Ms(q.hybrid.p99_us);
        out["vector_query_p50_ms"] = Ms(q.vector.p50_us);
        out["vector_query_p99_ms"] = Ms(q.vector.p99_us);
        out["keyword_query_p50_ms"] = Ms(q.keyword.p50_us);
        out["keyword_query_p99_ms"] = Ms(q.keyword.p99_us);
        out["exact_query_p50_ms"] = Ms(q.exact.p50_us);
        out["exact_query_p99_ms"] = Ms(q.exact.p99_us);
        out["hnswlib_query_p50_ms"] = Ms(q.hnswlib.p50_us);
        out["hnswlib_query_p99_ms"] = Ms(q.hnswlib.p99_us);
        out["recall_at_10"] = q.recall;
        out["hnswlib_recall_at_10"] = q.hnswlib_recall;
        out["keyword_no_hit_share"] = q.empty_keyword;
    } else {
        out["query_error"] = r.queries.status().ToString();
    }
    if (r.snapshot_ms.ok()) out["snapshot_ms"] = *r.snapshot_ms;
    out["queries"] = r.queries.ok() ? static_cast<int64_t>(r.queries->n) : 0;
    out["fresh_target_rate"] = o.fresh_rate;
    out["hnsw_m"] = r.tuned.hnsw_m;
    out["ef_construction"] = r.tuned.ef_construction;
    out["ef_search"] = r.tuned.ef_search;
    out["chunk_size"] = r.chunking.size;
    out["chunk_overlap"] = r.chunking.overlap;
    std::cout << out.dump() << std::endl;
}

// Reads the corpus, opens the system and indexes the first `chunks` chunks' documents.
Status Ingest(const RagBenchOptions& o, Report* r, std::vector<Document>* docs, System* s) {
    std::cerr << "bench rag: reading the corpus\n";
    EVENTLOOM_ASSIGN_OR_RETURN(*docs, LoadCorpus(r->chunking, &r->corpus_bytes));
    r->corpus_docs = docs->size();
    EVENTLOOM_ASSIGN_OR_RETURN(r->plan, MakePlan(o, *docs));

    const size_t capacity = static_cast<size_t>(r->plan.ingest_chunks + r->plan.fresh_chunks);
    EVENTLOOM_RETURN_IF_ERROR(OpenSystem(o, r->tuned, r->chunking, capacity + 1024, s));
    std::cerr << fmt::format("bench rag: ingest of {} documents ({} chunks)\n", r->plan.ingest_docs,
                             r->plan.ingest_chunks);
    EVENTLOOM_ASSIGN_OR_RETURN(r->ingest, RunIngest(*s, *docs, r->plan.ingest_docs));
    return Status::Ok();
}

// The peers (the embedder alone, hnswlib alone), then the queries at `chunks` chunks, before
// freshness adds to the index.
Status PeersAndQueries(const RagBenchOptions& o, Report* r, const std::vector<Document>& docs,
                       System& s) {
    std::cerr << "bench rag: embedding the same chunks for the peers\n";
    EVENTLOOM_ASSIGN_OR_RETURN(Vectors vectors,
                               EmbedCorpus(*s.embedder, docs, r->plan.ingest_docs, r->chunking));
    if (static_cast<int64_t>(vectors.size()) != r->ingest.chunks) {
        return InternalError(fmt::format("bench rag: the index holds {} chunks, expected {}",
                                         r->ingest.chunks, vectors.size()));
    }
    const auto n = static_cast<double>(vectors.size());
    r->embed_per_s = RatePerSecond(n, vectors.embed_seconds);
    Scorer scorer(vectors.dimension);
    std::cerr << "bench rag: hnswlib alone\n";
    EVENTLOOM_ASSIGN_OR_RETURN(HnswlibPeer peer, BuildHnswlib(scorer, vectors, r->tuned));
    r->hnswlib_insert_per_s = RatePerSecond(n, peer.insert_seconds);

    std::cerr << fmt::format("bench rag: {} queries, each in 3 modes and through 2 peers\n",
                             o.queries);
    const rag::SearchQuery defaults;
    r->ef = std::max(static_cast<size_t>(r->tuned.ef_search), defaults.candidates);
    r->queries =
        RunQueries(s, scorer, vectors, peer,
                   MakeQueries(docs, r->plan.ingest_docs, static_cast<size_t>(o.queries)), r->ef);
    return Status::Ok();
}

int Fail(const Status& status) {
    std::cerr << status.ToString() << "\n";
    nlohmann::json out = {{"bench", "rag"}, {"error", status.ToString()}};
    std::cout << out.dump() << std::endl;
    return 1;
}

}  // namespace

int RunRagBench(const RagBenchOptions& o) {
    Report r;
    r.options = &o;
    r.tuned = Tuned(o);
    r.chunking.unit = rag::ChunkUnit::kCharacters;
    r.chunking.size = o.chunk_size;
    r.chunking.overlap = o.chunk_overlap;
    if (Status s = rag::ValidateChunkOptions(r.chunking); !s.ok()) return Fail(s);
    if (o.chunks < 1 || o.fresh_rate <= 0 || o.fresh_seconds <= 0 || o.queries < 1) {
        return Fail(InvalidArgumentError(
            "bench rag: --chunks, --fresh-rate, --fresh-seconds and --queries must be positive"));
    }
    std::vector<Document> docs;
    System s;
    if (Status st = Ingest(o, &r, &docs, &s); !st.ok()) return Fail(st);
    if (Status st = PeersAndQueries(o, &r, docs, s); !st.ok()) return Fail(st);

    // The snapshot the policy would take now, on the writer's thread.
    std::cerr << "bench rag: snapshot\n";
    const auto snap_start = SteadyClock::now();
    Status snap = s.index->Snapshot();
    r.snapshot_ms = snap.ok() ? Result<double>(Ms(MicrosBetween(snap_start, SteadyClock::now())))
                              : Result<double>(snap);

    std::cerr << fmt::format("bench rag: freshness, {} documents/s for {} s\n", o.fresh_rate,
                             o.fresh_seconds);
    r.fresh = RunFreshness(s, o, docs, r.plan.ingest_docs, r.plan.fresh_docs);

    PrintTable(r);
    PrintJson(r);
    return r.queries.ok() && r.fresh.ok() && r.snapshot_ms.ok() ? 0 : 1;
}

}  // namespace eventloom::bench
