// The live RAG index (live_index.h).
//
// Files in options.dir:
//   index.db                 SQLite in WAL mode: everything needed to rebuild the graph
//   graph-<generation>.hnsw  hnswlib's saveIndex of the graph at that generation; index.db names
//                            the current one, with its size and CRC32C
//
// Schema (version 1, PRAGMA user_version; PRAGMA application_id marks the file as ours):
//   index_info     one row: embedder, dimension, generation, next_label, and the snapshot
//                  (generation, highest label in it, bytes, crc32c)
//   applied        partition -> next offset to apply
//   document       id -> doc_id (unique), metadata (JSON array of [field, value])
//   chunk          label -> doc, idx, vector (float32 blob); the label is also the chunk's
//                  label in the graph and its rowid in chunk_text
//   chunk_text     FTS5 over the chunk text (porter stemming, unicode61)
//   graph_removed  label -> generation it was removed at
//
// The change log replayed on a snapshot: labels are never reused (next_label only grows), so
// the chunks added after a snapshot are exactly those above its highest label, and the ones
// removed after it are graph_removed's rows above its generation. Writing a snapshot forgets
// the rows at or below its generation.
//
// Locking: writer_mu_ serialises writers; state_mu_ (shared by readers, exclusive for a writer
// only while it commits and changes the graph and the in-memory state) makes every change
// whole for readers. Readers search the graph and read SQLite through their own connections
// (WAL), so a writer's open transaction never blocks them.
#include "rag/live_index.h"

// hnswlib 0.6.2's SSE paths prefetch through a read one past the end of a link list, which
// AddressSanitizer reports; under it, the plain loops are used instead.
#if defined(__SANITIZE_ADDRESS__)
#define NO_MANUAL_VECTORIZATION
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NO_MANUAL_VECTORIZATION
#endif
#endif
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <exception>
#include <filesystem>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <shared_mutex>
#include <string_view>
#include <unordered_map>

#include "common/crc32c.h"
#include "common/file.h"
#include "common/logging.h"
#include "state/sqlite_db.h"

#if defined(__SANITIZE_THREAD__)
// hnswlib's addPoint takes per-node locks in graph order, which ThreadSanitizer reports as a
// lock-order inversion even in one thread. The index never runs two addPoint calls at once (they
// need state_mu_ exclusively), so the cycle cannot deadlock.
extern "C" const char* __tsan_default_suppressions() {
    return "deadlock:hnswlib::HierarchicalNSW\n";
}
#endif

namespace eventloom::rag {
namespace {

using state::RollbackUnlessCommitted;
using state::SqliteDb;
using state::Statement;
using Graph = hnswlib::HierarchicalNSW<float>;
using Label = hnswlib::labeltype;

static_assert(std::endian::native == std::endian::little,
              "vectors are stored as little-endian float32 blobs");

constexpr int64_t kApplicationId = 0x45564c49;  // "EVLI"
constexpr int64_t kSchemaVersion = 1;
constexpr std::chrono::milliseconds kBusyTimeout{5000};
constexpr size_t kRandomSeed = 100;
// A filtered vector ranking scores every allowed chunk exactly when there are at most this many
// (cheaper than a graph search that must skip most of what it visits); above it, the graph is
// searched for more neighbours until enough of them pass the filter.
constexpr size_t kExactFilterLimit = 2048;
constexpr size_t kMaxQueryTerms = 64;
constexpr size_t kMaxChunkTerms = std::numeric_limits<size_t>::max();
// Below this many chunks a keyword query keeps every word: matching them all is cheap.
constexpr int64_t kCommonTermMinChunks = 256;
// Chunk matches a keyword query may score (see KeywordMatch).
constexpr int64_t kKeywordPostingsBudget = 1024;
constexpr size_t kMaxCandidates = size_t{1} << 20;
constexpr size_t kReadBlock = 1 << 20;
constexpr int kMaxDimension = 65536;
constexpr const char* kDbName = "index.db";
constexpr std::string_view kSnapshotPrefix = "graph-";
constexpr std::string_view kSnapshotSuffix = ".hnsw";

constexpr const char* kSchema = R"sql(
    CREATE TABLE index_info (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        embedder TEXT NOT NULL,
        dimension INTEGER NOT NULL,
        generation INTEGER NOT NULL,
        next_label INTEGER NOT NULL,
        snapshot_generation INTEGER NOT NULL,
        snapshot_label INTEGER NOT NULL,
        snapshot_bytes INTEGER NOT NULL,
        snapshot_crc INTEGER NOT NULL
    );
    CREATE TABLE applied (
        partition INTEGER PRIMARY KEY,
        next_offset INTEGER NOT NULL
    );
    CREATE TABLE document (
        id INTEGER PRIMARY KEY,
        doc_id TEXT NOT NULL UNIQUE,
        metadata TEXT NOT NULL
    );
    CREATE TABLE chunk (
        label INTEGER PRIMARY KEY,
        doc INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        vector BLOB NOT NULL
    );
    CREATE INDEX chunk_by_doc ON chunk (doc);
    CREATE VIRTUAL TABLE chunk_text USING fts5 (
        text, tokenize = 'porter unicode61 remove_diacritics 2'
    );
    CREATE TABLE graph_removed (
        label INTEGER PRIMARY KEY,
        generation INTEGER NOT NULL
    );
)sql";

// Statements. They have static storage: the statement cache keys on them.
constexpr std::string_view kBegin = "BEGIN IMMEDIATE";
constexpr std::string_view kCommit = "COMMIT";
constexpr std::string_view kSelectInfo =
    "SELECT embedder, dimension, generation, next_label, snapshot_generation, snapshot_label, "
    "snapshot_bytes, snapshot_crc FROM index_info WHERE id = 1";
constexpr std::string_view kInsertInfo =
    "INSERT INTO index_info (id, embedder, dimension, generation, next_label, "
    "snapshot_generation, snapshot_label, snapshot_bytes, snapshot_crc) "
    "VALUES (1, ?1, ?2, 0, 1, 0, 0, 0, 0)";
constexpr std::string_view kSetProgress =
    "UPDATE index_info SET generation = ?1, next_label = ?2 WHERE id = 1";
constexpr std::string_view kSetSnapshot =
    "UPDATE index_info SET snapshot_generation = ?1, snapshot_label = ?2, snapshot_bytes = ?3, "
    "snapshot_crc = ?4 WHERE id = 1";
constexpr std::string_view kTrimRemoved = "DELETE FROM graph_removed WHERE generation <= ?1";
constexpr std::string_view kSelectApplied = "SELECT partition, next_offset FROM applied";
constexpr std::string_view kSetApplied =
    "INSERT INTO applied (partition, next_offset) VALUES (?1, ?2) ON CONFLICT (partition) "
    "DO UPDATE SET next_offset = excluded.next_offset";
constexpr std::string_view kSelectDocuments = "SELECT id, metadata FROM document";
constexpr std::string_view kSelectChunkDocs = "SELECT label, doc FROM chunk";
constexpr std::string_view kSelectVectorsAbove =
    "SELECT label, vector FROM chunk WHERE label > ?1 ORDER BY label";
constexpr std::string_view kSelectRemovedSince =
    "SELECT label FROM graph_removed WHERE generation > ?1";
constexpr std::string_view kFindDocument = "SELECT id FROM document WHERE doc_id = ?1";
constexpr std::string_view kDocumentLabels = "SELECT label FROM chunk WHERE doc = ?1";
constexpr std::string_view kDeleteText = "DELETE FROM chunk_text WHERE rowid = ?1";
constexpr std::string_view kSelectText = "SELECT text FROM chunk_text WHERE rowid = ?1";
constexpr std::string_view kSelectAllText = "SELECT text FROM chunk_text";
constexpr std::string_view kDeleteChunks = "DELETE FROM chunk WHERE doc = ?1";
constexpr std::string_view kLogRemoved =
    "INSERT INTO graph_removed (label, generation) VALUES (?1, ?2)";
constexpr std::string_view kDeleteDocument = "DELETE FROM document WHERE id = ?1";
constexpr std::string_view kUpdateDocument = "UPDATE document SET metadata = ?2 WHERE id = ?1";
constexpr std::string_view kInsertDocument =
    "INSERT INTO document (doc_id, metadata) VALUES (?1, ?2) RETURNING id";
constexpr std::string_view kInsertChunk =
    "INSERT INTO chunk (label, doc, idx, vector) VALUES (?1, ?2, ?3, ?4)";
constexpr std::string_view kInsertText = "INSERT INTO chunk_text (rowid, text) VALUES (?1, ?2)";
constexpr const char* kResetTables =
    "DELETE FROM chunk; DELETE FROM chunk_text; DELETE FROM document; DELETE FROM applied; "
    "DELETE FROM graph_removed;";
// A negative LIMIT is no limit: a filtered query reads matches until enough pass the filter.
constexpr std::string_view kKeywordSearch =
    "SELECT rowid, rank FROM chunk_text WHERE chunk_text MATCH ?1 ORDER BY rank LIMIT ?2";
constexpr std::string_view kHitRow =
    "SELECT c.idx, d.doc_id, d.metadata, t.text FROM chunk c JOIN document d ON d.id = c.doc "
    "JOIN chunk_text t ON t.rowid = c.label WHERE c.label = ?1";

std::shared_ptr<spdlog::logger> Log() { return logging::Get("rag"); }

std::string Quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

Status Run(SqliteDb& db, std::string_view sql) {
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db.Prepare(sql));
    return st.Run();
}

Result<int64_t> QueryInt(SqliteDb& db, std::string_view sql) {
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db.Prepare(sql));
    EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
    return row ? st.ColumnInt64(0) : 0;
}

std::string_view VectorBytes(const Vector& v) {
    return {reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)};
}

bool IsWordByte(unsigned char c) { return std::isalnum(c) != 0 || c >= 0x80; }

// The distinct words of `text`, ASCII-lowercased, at most `max` of them: runs of ASCII letters
// and digits and of non-ASCII bytes. FTS5's tokenizer splits and folds at least as finely, so a
// document holding one of these words also matches it quoted.
std::vector<std::string> Terms(std::string_view text, size_t max) {
    std::vector<std::string> terms;
    size_t i = 0;
    while (i < text.size() && terms.size() < max) {
        while (i < text.size() && !IsWordByte(static_cast<unsigned char>(text[i]))) ++i;
        size_t start = i;
        while (i < text.size() && IsWordByte(static_cast<unsigned char>(text[i]))) ++i;
        if (start == i) break;
        std::string term(text.substr(start, i - start));
        for (char& c : term) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (std::find(terms.begin(), terms.end(), term) == terms.end()) {
            terms.push_back(std::move(term));
        }
    }
    return terms;
}

// The FTS5 query for `terms`: each quoted (so nothing in them is FTS syntax), OR-ed.
std::string MatchExpression(const std::vector<const std::string*>& terms) {
    std::string match;
    for (const std::string* term : terms) {
        if (!match.empty()) match += " OR ";
        match += '"';
        match += *term;
        match += '"';
    }
    return match;
}

std::string EncodeMetadata(const Metadata& metadata) {
    nlohmann::json array = nlohmann::json::array();
    for (const auto& [field, value] : metadata) array.push_back({field, value});
    return array.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<Metadata> DecodeMetadata(std::string_view text, const std::string& db_path) {
    nlohmann::json array = nlohmann::json::parse(text, nullptr, false);
    Metadata metadata;
    bool ok = array.is_array();
    for (size_t i = 0; ok && i < array.size(); ++i) {
        const nlohmann::json& pair = array[i];
        ok = pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string();
        if (ok) metadata.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
    }
    if (!ok) return DataLossError("live index " + db_path + ": unreadable document metadata");
    return metadata;
}

// The bytes hnswlib's saveIndex writes for `g`, to tell a complete snapshot from a short one
// (saveIndex reports no write errors).
uint64_t ExpectedSnapshotBytes(const Graph& g) {
    uint64_t bytes = sizeof(g.offsetLevel0_) + sizeof(g.max_elements_) +
                     sizeof(g.cur_element_count) + sizeof(g.size_data_per_element_) +
                     sizeof(g.label_offset_) + sizeof(g.offsetData_) + sizeof(g.maxlevel_) +
                     sizeof(g.enterpoint_node_) + sizeof(g.maxM_) + sizeof(g.maxM0_) +
                     sizeof(g.M_) + sizeof(g.mult_) + sizeof(g.ef_construction_);
    bytes += static_cast<uint64_t>(g.cur_element_count) * g.size_data_per_element_;
    for (size_t i = 0; i < g.cur_element_count; ++i) {
        bytes += sizeof(unsigned int);
        if (g.element_levels_[i] > 0) bytes += g.size_links_per_element_ * g.element_levels_[i];
    }
    return bytes;
}

struct FileSummary {
    uint64_t bytes = 0;
    uint32_t crc = 0;
};

// The size and CRC32C of the file at `path`; syncs it first when `sync`.
Result<FileSummary> Summarize(const std::string& path, bool sync) {
    FileSystem* fs = FileSystem::Default();
    EVENTLOOM_ASSIGN_OR_RETURN(std::unique_ptr<File> file,
                               fs->Open(path, sync ? OpenMode::kReadWrite : OpenMode::kRead));
    if (sync) EVENTLOOM_RETURN_IF_ERROR(file->Sync());
    FileSummary summary;
    std::string block(kReadBlock, '\0');
    for (;;) {
        EVENTLOOM_ASSIGN_OR_RETURN(size_t n, file->ReadAt(summary.bytes, block.data(), kReadBlock));
        if (n == 0) break;
        summary.crc = crc32c::Extend(summary.crc, block.data(), n);
        summary.bytes += n;
    }
    return summary;
}

std::string SnapshotName(int64_t generation) {
    return std::string(kSnapshotPrefix) + std::to_string(generation) + std::string(kSnapshotSuffix);
}

Status ValidateOptions(const LiveIndexOptions& o) {
    auto bad = [](const std::string& what) { return InvalidArgumentError("live index: " + what); };
    if (o.dir.empty()) return bad("dir is empty");
    if (o.dimension < 1 || o.dimension > kMaxDimension) {
        return bad("dimension " + std::to_string(o.dimension) + " is outside 1.." +
                   std::to_string(kMaxDimension));
    }
    if (o.embedder.empty()) return bad("embedder fingerprint is empty");
    if (o.hnsw_m < 2 || o.hnsw_m > 1024) {
        return bad("hnsw_m " + std::to_string(o.hnsw_m) + " is outside 2..1024");
    }
    if (o.ef_construction < 1) return bad("ef_construction must be at least 1");
    if (o.ef_search < 1) return bad("ef_search must be at least 1");
    if (o.initial_capacity < 1) return bad("initial_capacity must be at least 1");
    for (size_t i = 0; i < o.filter_fields.size(); ++i) {
        if (o.filter_fields[i].empty()) return bad("a filter field name is empty");
        for (size_t j = 0; j < i; ++j) {
            if (o.filter_fields[i] == o.filter_fields[j]) {
                return bad("filter field " + Quoted(o.filter_fields[i]) + " is listed twice");
            }
        }
    }
    return Status::Ok();
}

Status ValidatePosition(Position at) {
    if (at.partition < 0 || at.offset < 0) {
        return InvalidArgumentError(
            "live index: bad position partition=" + std::to_string(at.partition) +
            " offset=" + std::to_string(at.offset));
    }
    return Status::Ok();
}

// Read connections, one per concurrent search, opened on demand and reused.
class ReaderPool {
public:
    explicit ReaderPool(std::string path) : path_(std::move(path)) {}

    Result<std::unique_ptr<SqliteDb>> Acquire() {
        {
            std::lock_guard lock(mu_);
            if (!free_.empty()) {
                std::unique_ptr<SqliteDb> db = std::move(free_.back());
                free_.pop_back();
                return db;
            }
        }
        EVENTLOOM_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db,
                                   SqliteDb::Open(path_, kBusyTimeout));
        EVENTLOOM_RETURN_IF_ERROR(db->Exec(
            "PRAGMA query_only = 1; PRAGMA cache_size = -16384; PRAGMA mmap_size = 268435456;"));
        return db;
    }

    void Release(std::unique_ptr<SqliteDb> db) {
        std::lock_guard lock(mu_);
        free_.push_back(std::move(db));
    }

    void Clear() {
        std::lock_guard lock(mu_);
        free_.clear();
    }

private:
    const std::string path_;
    std::mutex mu_;
    std::vector<std::unique_ptr<SqliteDb>> free_;
};

// A read connection for the duration of one search.
class ReaderLease {
public:
    ReaderLease(ReaderPool* pool, std::unique_ptr<SqliteDb> db) : pool_(pool), db_(std::move(db)) {}
    ~ReaderLease() { pool_->Release(std::move(db_)); }
    ReaderLease(const ReaderLease&) = delete;
    ReaderLease& operator=(const ReaderLease&) = delete;
    SqliteDb& db() { return *db_; }

private:
    ReaderPool* pool_;
    std::unique_ptr<SqliteDb> db_;
};

// One entry of a ranking: a chunk's label and its value there (hnswlib's distance 1 - cosine,
// or bm25), best first.
struct Ranked {
    Label label;
    double value;
};

struct Fused {
    Label label = 0;
    double score = 0;
    std::optional<double> cosine;
    std::optional<double> bm25;
    std::optional<size_t> vector_rank;
    std::optional<size_t> keyword_rank;
};

}  // namespace

class LiveIndex::Impl {
public:
    explicit Impl(LiveIndexOptions options)
        : options_(std::move(options)),
          db_path_((std::filesystem::path(options_.dir) / kDbName).string()),
          readers_(db_path_),
          space_(static_cast<size_t>(options_.dimension)) {
        for (size_t i = 0; i < options_.filter_fields.size(); ++i) {
            filter_field_index_.emplace(options_.filter_fields[i], static_cast<uint32_t>(i));
        }
    }

    Status Open();
    Result<bool> Change(const std::string& doc_id, std::vector<DocumentChunk>* chunks,
                        const Metadata* metadata, Position at);
    Status Skip(Position at);
    Result<SearchResult> Search(const SearchQuery& query) const;
    AppliedOffsets applied() const;
    LiveIndexStats stats() const;
    Status Snapshot();
    Status Reset();
    Status Close();

private:
    // What a change did in SQLite, for the graph and the in-memory state once it commits.
    struct PendingChange {
        int64_t old_doc_row = 0;  // 0: the document was new
        int64_t doc_row = 0;      // 0: the document is gone
        std::vector<Label> removed;
        std::vector<std::string> removed_text;
        Label first_label = 0;  // the added chunks' labels are first_label, first_label + 1, ...
        int64_t next_label = 0;
        int64_t generation = 0;
    };

    // The filter of one search: which documents pass.
    struct Filter {
        bool active = false;
        std::vector<uint8_t> doc_passes;  // by document row
    };

    // Readers pass a gate the writer holds while it waits, so a stream of overlapping searches
    // cannot starve it (the platform's rwlock may prefer readers).
    std::shared_lock<std::shared_mutex> ReadLock() const {
        std::lock_guard gate(gate_);
        return std::shared_lock(state_mu_);
    }
    std::unique_lock<std::shared_mutex> WriteLock() const {
        std::lock_guard gate(gate_);
        return std::unique_lock(state_mu_);
    }

    Status ClosedError() const {
        return FailedPreconditionError("live index " + options_.dir + " is closed");
    }
    Status Begin() { return Run(*db_, kBegin); }
    Status Commit() { return Run(*db_, kCommit); }

    // Opening. REQUIRES: writer_mu_ held (or not yet shared).
    Status OpenDb();
    Status InitSchema();
    Status LoadState();
    Status LoadDocuments();
    Status LoadGraph();
    bool LoadSnapshot();
    Status ReplayLog();
    Status RebuildGraph();
    std::unique_ptr<Graph> NewGraph(size_t capacity);
    Status AddStoredVectors(Label above);
    void RemoveStaleSnapshots(const std::string& keep) const;

    // Writing. REQUIRES: writer_mu_ held.
    bool IsApplied(Position at) const;
    Status WriteChange(const std::string& doc_id, const std::vector<DocumentChunk>& chunks,
                       const Metadata* metadata, Position at, PendingChange* change);
    Status ApplyChange(const PendingChange& change, const std::vector<DocumentChunk>& chunks,
                       const Metadata* metadata, Position at);
    void MaybeSnapshot();
    Status SnapshotLocked();
    Status SaveSnapshot(int64_t generation, FileSummary* summary, std::string* name);

    // The graph and in-memory state. REQUIRES: writer_mu_ and state_mu_ (exclusive) held.
    void EnsureCapacity(size_t more);
    void AddToGraph(const float* vector, Label label, int64_t doc_row);
    void RemoveFromGraph(Label label);
    std::vector<uint32_t> FilterValues(const Metadata& metadata);
    void CountTerms(std::string_view text, int delta);

    // Searching. REQUIRES: state_mu_ held (shared).
    Status ValidateQuery(const SearchQuery& query) const;
    std::string KeywordMatch(const std::vector<std::string>& terms) const;
    bool ResolveFilter(const SearchQuery& query, Filter* filter) const;
    bool Passes(const Filter& filter, Label label) const;
    void VectorRanking(const Vector& vector, size_t candidates, const Filter& filter,
                       std::vector<Ranked>* out) const;
    void ExactRanking(const float* vector, size_t candidates, const Filter& filter,
                      std::vector<Ranked>* out) const;
    Status KeywordRanking(SqliteDb& db, const std::string& match, size_t candidates,
                          const Filter& filter, std::vector<Ranked>* out) const;
    Status FetchHits(SqliteDb& db, const std::vector<Fused>& fused, size_t k,
                     std::vector<SearchHit>* hits) const;

    const LiveIndexOptions options_;
    const std::string db_path_;
    std::unordered_map<std::string, uint32_t> filter_field_index_;  // immutable after ctor

    std::mutex writer_mu_;
    mutable std::mutex gate_;
    mutable std::shared_mutex state_mu_;
    mutable ReaderPool readers_;

    // Guarded by writer_mu_.
    std::unique_ptr<SqliteDb> db_;  // the writer's connection
    int64_t next_label_ = 1;
    int64_t snapshot_label_ = 0;  // the highest label in the snapshot
    int64_t snapshot_bytes_ = 0;
    int64_t snapshot_crc_ = 0;
    bool snapshot_current_ = false;  // the snapshot file is the graph at generation_
    bool graph_stale_ = false;       // a graph change failed after its commit: do not save
    int64_t changes_since_snapshot_ = 0;
    std::chrono::steady_clock::time_point last_snapshot_;

    // Written with writer_mu_ and state_mu_ (exclusive) held; read with either.
    bool closed_ = false;
    hnswlib::InnerProductSpace space_;  // outlives graph_, which points into it
    std::unique_ptr<Graph> graph_;
    AppliedOffsets applied_;
    int64_t generation_ = 0;
    int64_t snapshot_generation_ = 0;
    int64_t documents_ = 0;
    int64_t chunks_ = 0;
    std::vector<uint32_t> label_doc_;  // by label: the document row, 0 when removed
    // By document row: the sorted ids of its (filter field, value) pairs.
    std::vector<std::vector<uint32_t>> doc_filters_;
    // "<field index>:<value>" -> id, from 1.
    std::unordered_map<std::string, uint32_t> filter_value_ids_;
    // Word (as Terms() spells it) -> chunks holding it: a lower bound of FTS5's count for the
    // quoted word, which also matches other spellings and stems of it.
    std::unordered_map<std::string, uint32_t> term_chunks_;
};

// ---- Opening --------------------------------------------------------------------------------

Status LiveIndex::Impl::Open() {
    EVENTLOOM_RETURN_IF_ERROR(FileSystem::Default()->CreateDirs(options_.dir));
    Status status = OpenDb();
    if (status.ok()) status = InitSchema();
    if (status.ok()) status = LoadState();
    if (status.code() == StatusCode::kDataLoss) {
        return DataLossError("live index " + db_path_ + " is corrupt: " + status.message());
    }
    EVENTLOOM_RETURN_IF_ERROR(status);
    EVENTLOOM_RETURN_IF_ERROR(LoadGraph());
    last_snapshot_ = std::chrono::steady_clock::now();
    return Status::Ok();
}

Status LiveIndex::Impl::OpenDb() {
    EVENTLOOM_ASSIGN_OR_RETURN(db_, SqliteDb::Open(db_path_, kBusyTimeout));
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare("PRAGMA journal_mode = WAL"));
    EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
    std::string mode = row ? st.ColumnBytes(0) : "";
    if (mode != "wal") {
        return FailedPreconditionError("live index " + db_path_ +
                                       ": cannot switch to WAL mode (journal_mode is '" + mode +
                                       "')");
    }
    // A commit lost in a power failure only moves applied() back: the events are redelivered.
    return db_->Exec("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32768;");
}

Status LiveIndex::Impl::InitSchema() {
    EVENTLOOM_RETURN_IF_ERROR(Begin());
    RollbackUnlessCommitted guard{db_.get()};
    EVENTLOOM_ASSIGN_OR_RETURN(int64_t app, QueryInt(*db_, "PRAGMA application_id"));
    EVENTLOOM_ASSIGN_OR_RETURN(int64_t version, QueryInt(*db_, "PRAGMA user_version"));
    EVENTLOOM_ASSIGN_OR_RETURN(int64_t tables,
                               QueryInt(*db_, "SELECT count(*) FROM sqlite_master"));
    if (app != kApplicationId && !(app == 0 && version == 0 && tables == 0)) {
        return FailedPreconditionError("live index " + db_path_ +
                                       " is a SQLite database of another program (application_id " +
                                       std::to_string(app) + ")");
    }
    if (version > kSchemaVersion) {
        return FailedPreconditionError("live index " + db_path_ + " has schema version " +
                                       std::to_string(version) + ", newer than this build's " +
                                       std::to_string(kSchemaVersion));
    }
    if (version == 0) {
        EVENTLOOM_RETURN_IF_ERROR(db_->Exec(kSchema));
        std::string pragmas = "PRAGMA application_id = " + std::to_string(kApplicationId) +
                              "; PRAGMA user_version = " + std::to_string(kSchemaVersion) + ";";
        EVENTLOOM_RETURN_IF_ERROR(db_->Exec(pragmas.c_str()));
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kInsertInfo));
        st.BindText(1, options_.embedder).BindInt64(2, options_.dimension);
        EVENTLOOM_RETURN_IF_ERROR(st.Run());
    }

    // The embedder and dimension the index was made with.
    {
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kSelectInfo));
        EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) return DataLossError("live index " + db_path_ + " has no index_info row");
        std::string embedder = st.ColumnBytes(0);
        int64_t dimension = st.ColumnInt64(1);
        if (embedder != options_.embedder || dimension != options_.dimension) {
            return InvalidArgumentError(
                "live index " + options_.dir + " was built with embedder " + Quoted(embedder) +
                " (dimension " + std::to_string(dimension) + "), not with " +
                Quoted(options_.embedder) + " (dimension " + std::to_string(options_.dimension) +
                "); rebuild the index to change embedders");
        }
        generation_ = st.ColumnInt64(2);
        next_label_ = st.ColumnInt64(3);
        snapshot_generation_ = st.ColumnInt64(4);
        snapshot_label_ = st.ColumnInt64(5);
        snapshot_bytes_ = st.ColumnInt64(6);
        snapshot_crc_ = st.ColumnInt64(7);
    }
    EVENTLOOM_RETURN_IF_ERROR(Commit());
    guard.committed = true;
    return Status::Ok();
}

Status LiveIndex::Impl::LoadState() {
    {
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kSelectApplied));
        for (;;) {
            EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
            if (!row) break;
            applied_[static_cast<int32_t>(st.ColumnInt64(0))] = st.ColumnInt64(1);
        }
    }
    EVENTLOOM_RETURN_IF_ERROR(LoadDocuments());
    {
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kSelectAllText));
        for (;;) {
            EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
            if (!row) break;
            CountTerms(st.ColumnBytes(0), +1);
        }
    }

    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kSelectChunkDocs));
    label_doc_.assign(static_cast<size_t>(std::max<int64_t>(next_label_, 1)), 0);
    for (;;) {
        EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) break;
        int64_t label = st.ColumnInt64(0);
        int64_t doc = st.ColumnInt64(1);
        if (label < 1 || label >= next_label_ || doc < 1 ||
            doc > std::numeric_limits<uint32_t>::max()) {
            return DataLossError("live index " + db_path_ + ": chunk label " +
                                 std::to_string(label) + " (document row " + std::to_string(doc) +
                                 ") is out of range");
        }
        label_doc_[static_cast<size_t>(label)] = static_cast<uint32_t>(doc);
        ++chunks_;
    }
    return Status::Ok();
}

Status LiveIndex::Impl::LoadDocuments() {
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kSelectDocuments));
    for (;;) {
        EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) break;
        ++documents_;
        if (filter_field_index_.empty()) continue;
        int64_t id = st.ColumnInt64(0);
        if (id < 1 || id > std::numeric_limits<uint32_t>::max()) {
            return DataLossError("live index " + db_path_ + ": document row " + std::to_string(id) +
                                 " is out of range");
        }
        EVENTLOOM_ASSIGN_OR_RETURN(Metadata metadata, DecodeMetadata(st.ColumnBytes(1), db_path_));
        if (doc_filters_.size() <= static_cast<size_t>(id)) doc_filters_.resize(id + 1);
        doc_filters_[static_cast<size_t>(id)] = FilterValues(metadata);
    }
    return Status::Ok();
}

std::unique_ptr<Graph> LiveIndex::Impl::NewGraph(size_t capacity) {
    auto graph =
        std::make_unique<Graph>(&space_, capacity, static_cast<size_t>(options_.hnsw_m),
                                static_cast<size_t>(options_.ef_construction), kRandomSeed);
    graph->setEf(static_cast<size_t>(options_.ef_search));
    return graph;
}

Status LiveIndex::Impl::LoadGraph() {
    bool loaded = false;
    if (snapshot_generation_ > 0 && LoadSnapshot()) {
        loaded = true;
        Status replay = ReplayLog();
        if (replay.code() == StatusCode::kDataLoss) return replay;
        size_t live = graph_->cur_element_count - graph_->num_deleted_;
        if (!replay.ok() || live != static_cast<size_t>(chunks_)) {
            Log()->warn(
                "live index dir={} snapshot {} does not match index.db ({} chunks in the graph, "
                "{} stored{}{}); rebuilding the graph",
                options_.dir, SnapshotName(snapshot_generation_), live, chunks_,
                replay.ok() ? "" : ": ", replay.ok() ? "" : replay.ToString());
            loaded = false;
        }
    } else if (snapshot_generation_ == 0 && chunks_ > 0) {
        Log()->info("live index dir={} has no graph snapshot; building it from {} stored vectors",
                    options_.dir, chunks_);
    }
    if (loaded) {
        snapshot_current_ = generation_ == snapshot_generation_;
        RemoveStaleSnapshots(SnapshotName(snapshot_generation_));
        return Status::Ok();
    }

    EVENTLOOM_RETURN_IF_ERROR(RebuildGraph());
    if (chunks_ > 0) {
        // Saves the next open the rebuild just done.
        Status saved = SnapshotLocked();
        if (!saved.ok()) {
            Log()->warn("live index dir={} snapshot after rebuild failed: {}", options_.dir,
                        saved.ToString());
        }
    } else {
        RemoveStaleSnapshots("");
    }
    return Status::Ok();
}

bool LiveIndex::Impl::LoadSnapshot() {
    std::string name = SnapshotName(snapshot_generation_);
    std::string path = (std::filesystem::path(options_.dir) / name).string();
    auto unusable = [&](const std::string& why) {
        Log()->warn("live index dir={} snapshot {} {}; rebuilding the graph from {} stored vectors",
                    options_.dir, name, why, chunks_);
        return false;
    };
    if (!FileSystem::Default()->Exists(path)) return unusable("is missing");

    // The recorded size and checksum, checked before hnswlib reads a byte of it: hnswlib trusts
    // what it reads.
    const int64_t want_bytes = snapshot_bytes_;
    const int64_t want_crc = snapshot_crc_;
    Result<FileSummary> summary = Summarize(path, false);
    if (!summary.ok()) return unusable("cannot be read: " + summary.status().ToString());
    if (static_cast<int64_t>(summary->bytes) != want_bytes ||
        static_cast<int64_t>(summary->crc) != want_crc) {
        return unusable("is corrupt (" + std::to_string(summary->bytes) + " bytes, crc32c " +
                        std::to_string(summary->crc) + "; recorded " + std::to_string(want_bytes) +
                        " bytes, crc32c " + std::to_string(want_crc) + ")");
    }

    // The constructor for loading leaves the members loadIndex fills uninitialised; a failed
    // load must leave the destructor something safe to free.
    auto graph = std::make_unique<Graph>(&space_);
    graph->num_deleted_ = 0;
    graph->cur_element_count = 0;
    graph->max_elements_ = 0;
    graph->data_level0_memory_ = nullptr;
    graph->linkLists_ = nullptr;
    graph->visited_list_pool_ = nullptr;
    try {
        graph->loadIndex(path, &space_, 0);
    } catch (const std::exception& e) {
        graph->cur_element_count = 0;
        return unusable(std::string("cannot be loaded: ") + e.what());
    }
    bool layout_ok =
        graph->data_size_ == static_cast<size_t>(options_.dimension) * sizeof(float) &&
        graph->offsetData_ == graph->size_links_level0_ &&
        graph->label_offset_ == graph->offsetData_ + graph->data_size_ &&
        graph->size_data_per_element_ == graph->label_offset_ + sizeof(Label) &&
        graph->cur_element_count <= graph->max_elements_ &&
        (graph->cur_element_count == 0 || graph->enterpoint_node_ < graph->cur_element_count);
    if (!layout_ok) return unusable("has another layout than this index");
    graph->setEf(static_cast<size_t>(options_.ef_search));
    graph_ = std::move(graph);
    return true;
}

Status LiveIndex::Impl::ReplayLog() {
    try {
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kSelectRemovedSince));
        st.BindInt64(1, snapshot_generation_);
        for (;;) {
            EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
            if (!row) break;
            RemoveFromGraph(static_cast<Label>(st.ColumnInt64(0)));
        }
    } catch (const std::exception& e) {
        return InternalError(std::string("replaying removals: ") + e.what());
    }
    return AddStoredVectors(static_cast<Label>(snapshot_label_));
}

Status LiveIndex::Impl::RebuildGraph() {
    size_t capacity = options_.initial_capacity;
    while (capacity < static_cast<size_t>(chunks_)) capacity *= 2;
    try {
        graph_ = NewGraph(capacity);
    } catch (const std::exception& e) {
        return ResourceExhaustedError("live index " + options_.dir +
                                      ": cannot allocate the graph: " + e.what());
    }
    return AddStoredVectors(0);
}

Status LiveIndex::Impl::AddStoredVectors(Label above) {
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kSelectVectorsAbove));
    st.BindInt64(1, static_cast<int64_t>(above));
    const size_t bytes = static_cast<size_t>(options_.dimension) * sizeof(float);
    try {
        for (;;) {
            EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
            if (!row) break;
            int64_t label = st.ColumnInt64(0);
            std::string vector = st.ColumnBytes(1);
            if (vector.size() != bytes) {
                return DataLossError("live index " + db_path_ + ": chunk label " +
                                     std::to_string(label) + " has a vector of " +
                                     std::to_string(vector.size()) + " bytes, expected " +
                                     std::to_string(bytes));
            }
            EnsureCapacity(1);
            graph_->addPoint(vector.data(), static_cast<Label>(label));
        }
    } catch (const std::exception& e) {
        return ResourceExhaustedError("live index " + options_.dir +
                                      ": cannot add to the graph: " + e.what());
    }
    return Status::Ok();
}

void LiveIndex::Impl::RemoveStaleSnapshots(const std::string& keep) const {
    FileSystem* fs = FileSystem::Default();
    Result<std::vector<std::string>> names = fs->ListDir(options_.dir);
    if (!names.ok()) return;
    for (const std::string& name : *names) {
        if (name == keep || !name.starts_with(kSnapshotPrefix)) continue;
        if (!name.ends_with(kSnapshotSuffix) && !name.ends_with(".tmp")) continue;
        Status removed = fs->Remove((std::filesystem::path(options_.dir) / name).string());
        if (!removed.ok()) {
            Log()->warn("live index dir={} cannot remove old snapshot {}: {}", options_.dir, name,
                        removed.ToString());
        }
    }
}

// ---- Writing --------------------------------------------------------------------------------

bool LiveIndex::Impl::IsApplied(Position at) const {
    auto it = applied_.find(at.partition);
    return it != applied_.end() && at.offset < it->second;
}

Result<bool> LiveIndex::Impl::Change(const std::string& doc_id, std::vector<DocumentChunk>* chunks,
                                     const Metadata* metadata, Position at) {
    if (doc_id.empty()) return InvalidArgumentError("live index: doc_id is empty");
    EVENTLOOM_RETURN_IF_ERROR(ValidatePosition(at));
    static const std::vector<DocumentChunk> kNone;
    const std::vector<DocumentChunk>& list = chunks != nullptr ? *chunks : kNone;
    for (const DocumentChunk& chunk : list) {
        if (chunk.vector.size() != static_cast<size_t>(options_.dimension)) {
            return InvalidArgumentError(
                "live index: doc " + Quoted(doc_id) + " chunk " + std::to_string(chunk.index) +
                " has a vector of " + std::to_string(chunk.vector.size()) +
                " dimensions, the index has " + std::to_string(options_.dimension));
        }
        for (float x : chunk.vector) {
            if (!std::isfinite(x)) {
                return InvalidArgumentError("live index: doc " + Quoted(doc_id) + " chunk " +
                                            std::to_string(chunk.index) +
                                            " has a non-finite vector component");
            }
        }
    }

    std::lock_guard writer(writer_mu_);
    if (closed_) return ClosedError();
    if (IsApplied(at)) return false;

    PendingChange change;
    EVENTLOOM_RETURN_IF_ERROR(Begin());
    RollbackUnlessCommitted guard{db_.get()};
    EVENTLOOM_RETURN_IF_ERROR(WriteChange(doc_id, list, metadata, at, &change));
    {
        auto lock = WriteLock();
        EVENTLOOM_RETURN_IF_ERROR(Commit());
        guard.committed = true;
        EVENTLOOM_RETURN_IF_ERROR(ApplyChange(change, list, metadata, at));
    }
    MaybeSnapshot();
    return true;
}

Status LiveIndex::Impl::WriteChange(const std::string& doc_id,
                                    const std::vector<DocumentChunk>& chunks,
                                    const Metadata* metadata, Position at, PendingChange* change) {
    change->generation = generation_ + 1;
    change->next_label = next_label_;

    // The document's current chunks go, whatever replaces them.
    {
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kFindDocument));
        st.BindText(1, doc_id);
        EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (row) change->old_doc_row = st.ColumnInt64(0);
    }
    if (change->old_doc_row != 0) {
        {
            EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kDocumentLabels));
            st.BindInt64(1, change->old_doc_row);
            for (;;) {
                EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
                if (!row) break;
                change->removed.push_back(static_cast<Label>(st.ColumnInt64(0)));
            }
        }
        for (Label label : change->removed) {
            {
                EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kSelectText));
                st.BindInt64(1, static_cast<int64_t>(label));
                EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
                change->removed_text.push_back(row ? st.ColumnBytes(0) : std::string());
            }
            {
                EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kDeleteText));
                st.BindInt64(1, static_cast<int64_t>(label));
                EVENTLOOM_RETURN_IF_ERROR(st.Run());
            }
            EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kLogRemoved));
            st.BindInt64(1, static_cast<int64_t>(label)).BindInt64(2, change->generation);
            EVENTLOOM_RETURN_IF_ERROR(st.Run());
        }
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kDeleteChunks));
        st.BindInt64(1, change->old_doc_row);
        EVENTLOOM_RETURN_IF_ERROR(st.Run());
    }

    // The document row, kept (same id) when it has chunks again.
    if (chunks.empty()) {
        if (change->old_doc_row != 0) {
            EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kDeleteDocument));
            st.BindInt64(1, change->old_doc_row);
            EVENTLOOM_RETURN_IF_ERROR(st.Run());
        }
    } else {
        std::string encoded = EncodeMetadata(metadata != nullptr ? *metadata : Metadata{});
        if (change->old_doc_row != 0) {
            EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kUpdateDocument));
            st.BindInt64(1, change->old_doc_row).BindText(2, encoded);
            EVENTLOOM_RETURN_IF_ERROR(st.Run());
            change->doc_row = change->old_doc_row;
        } else {
            EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kInsertDocument));
            st.BindText(1, doc_id).BindText(2, encoded);
            EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
            if (!row) return InternalError("live index " + db_path_ + ": insert returned no id");
            change->doc_row = st.ColumnInt64(0);
        }
        if (change->doc_row > std::numeric_limits<uint32_t>::max()) {
            return ResourceExhaustedError("live index " + db_path_ + ": document rows exhausted");
        }
    }

    // The new chunks, under fresh labels.
    change->first_label = static_cast<Label>(change->next_label);
    for (const DocumentChunk& chunk : chunks) {
        int64_t label = change->next_label++;
        {
            EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kInsertChunk));
            st.BindInt64(1, label)
                .BindInt64(2, change->doc_row)
                .BindInt64(3, static_cast<int64_t>(chunk.index))
                .BindBlob(4, VectorBytes(chunk.vector));
            EVENTLOOM_RETURN_IF_ERROR(st.Run());
        }
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kInsertText));
        st.BindInt64(1, label).BindText(2, chunk.text);
        EVENTLOOM_RETURN_IF_ERROR(st.Run());
    }

    // The position and the generation, in the same transaction.
    {
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kSetApplied));
        st.BindInt64(1, at.partition).BindInt64(2, at.offset + 1);
        EVENTLOOM_RETURN_IF_ERROR(st.Run());
    }
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kSetProgress));
    st.BindInt64(1, change->generation).BindInt64(2, change->next_label);
    return st.Run();
}

Status LiveIndex::Impl::ApplyChange(const PendingChange& change,
                                    const std::vector<DocumentChunk>& chunks,
                                    const Metadata* metadata, Position at) {
    applied_[at.partition] = at.offset + 1;
    generation_ = change.generation;
    next_label_ = change.next_label;
    snapshot_current_ = false;
    if (change.old_doc_row == 0 && change.doc_row != 0) ++documents_;
    if (change.old_doc_row != 0 && change.doc_row == 0) --documents_;
    chunks_ += static_cast<int64_t>(chunks.size()) - static_cast<int64_t>(change.removed.size());

    if (!filter_field_index_.empty()) {
        size_t row = static_cast<size_t>(std::max(change.doc_row, change.old_doc_row));
        if (doc_filters_.size() <= row) doc_filters_.resize(row + 1);
        if (change.doc_row == 0) {
            doc_filters_[row].clear();
        } else {
            doc_filters_[row] = FilterValues(metadata != nullptr ? *metadata : Metadata{});
        }
    }
    if (label_doc_.size() < static_cast<size_t>(next_label_)) label_doc_.resize(next_label_);
    for (const std::string& text : change.removed_text) CountTerms(text, -1);
    for (const DocumentChunk& chunk : chunks) CountTerms(chunk.text, +1);

    // The SQLite change is committed: a graph that fails to follow it is rebuilt at next open
    // (whose check finds the counts differ), and is not saved until then.
    try {
        for (Label label : change.removed) RemoveFromGraph(label);
        EnsureCapacity(chunks.size());
        for (size_t i = 0; i < chunks.size(); ++i) {
            AddToGraph(chunks[i].vector.data(), change.first_label + i, change.doc_row);
        }
    } catch (const std::exception& e) {
        graph_stale_ = true;
        Log()->error("live index dir={} graph update failed after commit at generation {}: {}",
                     options_.dir, generation_, e.what());
        return InternalError("live index " + options_.dir + ": graph update failed: " + e.what());
    }
    return Status::Ok();
}

void LiveIndex::Impl::EnsureCapacity(size_t more) {
    size_t need = graph_->cur_element_count + more;
    if (need <= graph_->max_elements_) return;
    size_t capacity = std::max<size_t>(graph_->max_elements_, 1);
    while (capacity < need) capacity *= 2;
    graph_->resizeIndex(capacity);
}

void LiveIndex::Impl::AddToGraph(const float* vector, Label label, int64_t doc_row) {
    graph_->addPoint(vector, label);
    label_doc_[label] = static_cast<uint32_t>(doc_row);
}

void LiveIndex::Impl::RemoveFromGraph(Label label) {
    if (label < label_doc_.size()) label_doc_[label] = 0;
    auto it = graph_->label_lookup_.find(label);
    if (it == graph_->label_lookup_.end() || graph_->isMarkedDeleted(it->second)) return;
    graph_->markDelete(label);
}

void LiveIndex::Impl::CountTerms(std::string_view text, int delta) {
    for (std::string& term : Terms(text, kMaxChunkTerms)) {
        if (delta > 0) {
            ++term_chunks_[std::move(term)];
            continue;
        }
        auto it = term_chunks_.find(term);
        if (it != term_chunks_.end() && --it->second == 0) term_chunks_.erase(it);
    }
}

std::vector<uint32_t> LiveIndex::Impl::FilterValues(const Metadata& metadata) {
    std::vector<uint32_t> ids;
    for (const auto& [field, value] : metadata) {
        auto field_it = filter_field_index_.find(field);
        if (field_it == filter_field_index_.end()) continue;
        std::string key = std::to_string(field_it->second) + ":" + value;
        auto [it, inserted] = filter_value_ids_.try_emplace(
            std::move(key), static_cast<uint32_t>(filter_value_ids_.size() + 1));
        ids.push_back(it->second);
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
}

Status LiveIndex::Impl::Skip(Position at) {
    EVENTLOOM_RETURN_IF_ERROR(ValidatePosition(at));
    std::lock_guard writer(writer_mu_);
    if (closed_) return ClosedError();
    if (IsApplied(at)) return Status::Ok();

    EVENTLOOM_RETURN_IF_ERROR(Begin());
    RollbackUnlessCommitted guard{db_.get()};
    {
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kSetApplied));
        st.BindInt64(1, at.partition).BindInt64(2, at.offset + 1);
        EVENTLOOM_RETURN_IF_ERROR(st.Run());
    }
    auto lock = WriteLock();
    EVENTLOOM_RETURN_IF_ERROR(Commit());
    guard.committed = true;
    applied_[at.partition] = at.offset + 1;
    return Status::Ok();
}

// ---- Snapshots ------------------------------------------------------------------------------

void LiveIndex::Impl::MaybeSnapshot() {
    ++changes_since_snapshot_;
    bool by_count = options_.snapshot_every_changes > 0 &&
                    changes_since_snapshot_ >= options_.snapshot_every_changes;
    bool by_time = options_.snapshot_every.count() > 0 &&
                   std::chrono::steady_clock::now() - last_snapshot_ >= options_.snapshot_every;
    if (!by_count && !by_time) return;
    Status status = SnapshotLocked();
    if (!status.ok()) {
        Log()->warn("live index dir={} snapshot at generation {} failed: {}", options_.dir,
                    generation_, status.ToString());
    }
}

Status LiveIndex::Impl::Snapshot() {
    std::lock_guard writer(writer_mu_);
    if (closed_) return ClosedError();
    return SnapshotLocked();
}

Status LiveIndex::Impl::SnapshotLocked() {
    // Generation 0 is an index never changed: nothing to save, and 0 names no snapshot.
    if (snapshot_current_ || generation_ == 0) return Status::Ok();
    if (graph_stale_) {
        return FailedPreconditionError("live index " + options_.dir +
                                       ": the graph missed a change; reopen to rebuild it");
    }
    const int64_t generation = generation_;
    FileSummary summary;
    std::string name;
    EVENTLOOM_RETURN_IF_ERROR(SaveSnapshot(generation, &summary, &name));

    // Name the new snapshot and forget the log up to it, in one transaction.
    const int64_t label = next_label_ - 1;
    {
        EVENTLOOM_RETURN_IF_ERROR(Begin());
        RollbackUnlessCommitted guard{db_.get()};
        {
            EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kSetSnapshot));
            st.BindInt64(1, generation)
                .BindInt64(2, label)
                .BindInt64(3, static_cast<int64_t>(summary.bytes))
                .BindInt64(4, summary.crc);
            EVENTLOOM_RETURN_IF_ERROR(st.Run());
        }
        {
            EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kTrimRemoved));
            st.BindInt64(1, generation);
            EVENTLOOM_RETURN_IF_ERROR(st.Run());
        }
        auto lock = WriteLock();
        EVENTLOOM_RETURN_IF_ERROR(Commit());
        guard.committed = true;
        snapshot_generation_ = generation;
    }
    snapshot_label_ = label;
    snapshot_bytes_ = static_cast<int64_t>(summary.bytes);
    snapshot_crc_ = summary.crc;
    snapshot_current_ = true;
    changes_since_snapshot_ = 0;
    last_snapshot_ = std::chrono::steady_clock::now();
    RemoveStaleSnapshots(name);
    return Status::Ok();
}

Status LiveIndex::Impl::SaveSnapshot(int64_t generation, FileSummary* summary, std::string* name) {
    FileSystem* fs = FileSystem::Default();
    *name = SnapshotName(generation);
    std::string path = (std::filesystem::path(options_.dir) / *name).string();
    std::string temp = path + ".tmp";
    // Readers may search meanwhile: saving only reads the graph, and writers wait on writer_mu_.
    try {
        graph_->saveIndex(temp);
    } catch (const std::exception& e) {
        fs->Remove(temp).IgnoreError();
        return UnavailableError("live index " + options_.dir + ": writing " + temp + ": " +
                                e.what());
    }
    uint64_t expected = ExpectedSnapshotBytes(*graph_);
    Result<FileSummary> written = Summarize(temp, true);
    if (!written.ok() || written->bytes != expected) {
        fs->Remove(temp).IgnoreError();
        if (!written.ok()) return written.status();
        return UnavailableError("live index " + options_.dir + ": short write of " + temp + " (" +
                                std::to_string(written->bytes) + " of " + std::to_string(expected) +
                                " bytes); is the disk full?");
    }
    EVENTLOOM_RETURN_IF_ERROR(fs->Rename(temp, path));
    EVENTLOOM_RETURN_IF_ERROR(fs->SyncDir(options_.dir));
    *summary = *written;
    return Status::Ok();
}

// ---- Reset and Close ------------------------------------------------------------------------

Status LiveIndex::Impl::Reset() {
    std::lock_guard writer(writer_mu_);
    if (closed_) return ClosedError();

    std::unique_ptr<Graph> empty;
    try {
        empty = NewGraph(options_.initial_capacity);
    } catch (const std::exception& e) {
        return ResourceExhaustedError("live index " + options_.dir +
                                      ": cannot allocate the graph: " + e.what());
    }
    // Generations go on counting, so a snapshot name never stands for two graphs.
    const int64_t generation = generation_ + 1;
    EVENTLOOM_RETURN_IF_ERROR(Begin());
    RollbackUnlessCommitted guard{db_.get()};
    EVENTLOOM_RETURN_IF_ERROR(db_->Exec(kResetTables));
    {
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kSetProgress));
        st.BindInt64(1, generation).BindInt64(2, next_label_);
        EVENTLOOM_RETURN_IF_ERROR(st.Run());
    }
    {
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db_->Prepare(kSetSnapshot));
        st.BindInt64(1, 0).BindInt64(2, 0).BindInt64(3, 0).BindInt64(4, 0);
        EVENTLOOM_RETURN_IF_ERROR(st.Run());
    }
    {
        auto lock = WriteLock();
        EVENTLOOM_RETURN_IF_ERROR(Commit());
        guard.committed = true;
        graph_ = std::move(empty);
        applied_.clear();
        generation_ = generation;
        snapshot_generation_ = 0;
        documents_ = 0;
        chunks_ = 0;
        std::fill(label_doc_.begin(), label_doc_.end(), 0);
        doc_filters_.clear();
        filter_value_ids_.clear();
        term_chunks_.clear();
    }
    snapshot_label_ = 0;
    snapshot_bytes_ = 0;
    snapshot_crc_ = 0;
    snapshot_current_ = false;
    graph_stale_ = false;
    changes_since_snapshot_ = 0;
    RemoveStaleSnapshots("");
    return Status::Ok();
}

Status LiveIndex::Impl::Close() {
    std::lock_guard writer(writer_mu_);
    if (closed_) return Status::Ok();
    Status status = graph_stale_ ? Status::Ok() : SnapshotLocked();

    auto lock = WriteLock();
    closed_ = true;
    readers_.Clear();
    graph_.reset();
    db_.reset();
    label_doc_ = {};
    doc_filters_ = {};
    filter_value_ids_ = {};
    term_chunks_ = {};
    return status;
}

// ---- Searching ------------------------------------------------------------------------------

Status LiveIndex::Impl::ValidateQuery(const SearchQuery& query) const {
    if (query.mode != SearchMode::kKeyword &&
        query.vector.size() != static_cast<size_t>(options_.dimension)) {
        return InvalidArgumentError(
            "live index: the query vector has " + std::to_string(query.vector.size()) +
            " dimensions, the index has " + std::to_string(options_.dimension));
    }
    if (!(query.rrf_k >= 0)) return InvalidArgumentError("live index: rrf_k must be >= 0");
    for (const auto& [field, value] : query.filters) {
        if (filter_field_index_.count(field) == 0) {
            std::string declared;
            for (const std::string& f : options_.filter_fields) {
                declared += (declared.empty() ? "" : ", ") + Quoted(f);
            }
            return InvalidArgumentError(
                "live index: cannot filter on " + Quoted(field) +
                ": not a filter field (declared: " + (declared.empty() ? "none" : declared) + ")");
        }
    }
    return Status::Ok();
}

// FTS5 scores every chunk that matches any word of the query before it ranks them, so the cost
// of a keyword search is the sum of its words' chunk counts. Words are taken rarest first while
// that sum stays within kKeywordPostingsBudget and none is in half the chunks or more (the
// rarest is always taken): the rare words decide a BM25 ranking (a word in many chunks has a low
// idf; one in half of them, 1e-6), and a query of common words no longer scores most of the
// index. term_chunks_ undercounts, so no word
// is dropped for a count it does not have. Small indexes keep every word.
std::string LiveIndex::Impl::KeywordMatch(const std::vector<std::string>& terms) const {
    std::vector<const std::string*> kept;
    if (chunks_ < kCommonTermMinChunks) {
        for (const std::string& term : terms) kept.push_back(&term);
        return MatchExpression(kept);
    }
    std::vector<std::pair<uint32_t, const std::string*>> by_count;
    by_count.reserve(terms.size());
    for (const std::string& term : terms) {
        auto it = term_chunks_.find(term);
        by_count.emplace_back(it == term_chunks_.end() ? 0 : it->second, &term);
    }
    std::stable_sort(by_count.begin(), by_count.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    int64_t postings = 0;
    for (const auto& [count, term] : by_count) {
        if (!kept.empty() && (postings + count > kKeywordPostingsBudget ||
                              2 * static_cast<int64_t>(count) >= chunks_)) {
            break;
        }
        kept.push_back(term);
        postings += count;
    }
    return MatchExpression(kept);
}

bool LiveIndex::Impl::ResolveFilter(const SearchQuery& query, Filter* filter) const {
    if (query.filters.empty()) return true;
    std::vector<uint32_t> required;
    required.reserve(query.filters.size());
    for (const auto& [field, value] : query.filters) {
        std::string key = std::to_string(filter_field_index_.at(field)) + ":" + value;
        auto it = filter_value_ids_.find(key);
        if (it == filter_value_ids_.end()) return false;  // no document has it
        required.push_back(it->second);
    }
    std::sort(required.begin(), required.end());
    required.erase(std::unique(required.begin(), required.end()), required.end());

    filter->active = true;
    filter->doc_passes.assign(doc_filters_.size(), 0);
    for (size_t row = 0; row < doc_filters_.size(); ++row) {
        const std::vector<uint32_t>& have = doc_filters_[row];
        filter->doc_passes[row] = !have.empty() && std::includes(have.begin(), have.end(),
                                                                 required.begin(), required.end());
    }
    return true;
}

bool LiveIndex::Impl::Passes(const Filter& filter, Label label) const {
    if (!filter.active) return true;
    if (label >= label_doc_.size()) return false;
    uint32_t row = label_doc_[label];
    return row != 0 && row < filter.doc_passes.size() && filter.doc_passes[row] != 0;
}

void LiveIndex::Impl::VectorRanking(const Vector& vector, size_t candidates, const Filter& filter,
                                    std::vector<Ranked>* out) const {
    const size_t live = graph_->cur_element_count - graph_->num_deleted_;
    if (live == 0) return;
    size_t allowed = live;
    if (filter.active) {
        allowed = 0;
        for (Label label = 1; label < label_doc_.size(); ++label) allowed += Passes(filter, label);
        if (allowed == 0) return;
        if (allowed <= kExactFilterLimit)
            return ExactRanking(vector.data(), candidates, filter, out);
    }

    // Over-fetch by the filter's selectivity, and again twice as far until enough pass.
    size_t fetch = candidates;
    if (allowed < live) fetch = std::min(live, candidates * ((live + allowed - 1) / allowed) * 2);
    for (;;) {
        auto found = graph_->searchKnn(vector.data(), fetch);
        out->resize(found.size());
        for (size_t i = found.size(); i-- > 0; found.pop()) {
            (*out)[i] = Ranked{found.top().second, found.top().first};
        }
        if (filter.active) {
            std::erase_if(*out, [&](const Ranked& r) { return !Passes(filter, r.label); });
        }
        if (out->size() >= candidates || fetch >= live) break;
        fetch = std::min(live, fetch * 2);
    }
    if (out->size() > candidates) out->resize(candidates);
}

void LiveIndex::Impl::ExactRanking(const float* vector, size_t candidates, const Filter& filter,
                                   std::vector<Ranked>* out) const {
    for (Label label = 1; label < label_doc_.size(); ++label) {
        if (!Passes(filter, label)) continue;
        auto it = graph_->label_lookup_.find(label);
        if (it == graph_->label_lookup_.end()) continue;
        float distance = graph_->fstdistfunc_(vector, graph_->getDataByInternalId(it->second),
                                              graph_->dist_func_param_);
        out->push_back(Ranked{label, distance});
    }
    auto better = [](const Ranked& a, const Ranked& b) {
        return a.value < b.value || (a.value == b.value && a.label < b.label);
    };
    size_t keep = std::min(candidates, out->size());
    std::partial_sort(out->begin(), out->begin() + keep, out->end(), better);
    out->resize(keep);
}

Status LiveIndex::Impl::KeywordRanking(SqliteDb& db, const std::string& match, size_t candidates,
                                       const Filter& filter, std::vector<Ranked>* out) const {
    EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db.Prepare(kKeywordSearch));
    st.BindText(1, match).BindInt64(2, filter.active ? -1 : static_cast<int64_t>(candidates));
    while (out->size() < candidates) {
        EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) break;
        Label label = static_cast<Label>(st.ColumnInt64(0));
        if (!Passes(filter, label)) continue;
        out->push_back(Ranked{label, st.ColumnDouble(1)});
    }
    return Status::Ok();
}

Status LiveIndex::Impl::FetchHits(SqliteDb& db, const std::vector<Fused>& fused, size_t k,
                                  std::vector<SearchHit>* hits) const {
    hits->reserve(std::min(k, fused.size()));
    for (size_t i = 0; i < fused.size() && hits->size() < k; ++i) {
        const Fused& f = fused[i];
        EVENTLOOM_ASSIGN_OR_RETURN(Statement st, db.Prepare(kHitRow));
        st.BindInt64(1, static_cast<int64_t>(f.label));
        EVENTLOOM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) continue;  // cannot happen while the state lock is held
        SearchHit hit;
        hit.chunk_index = static_cast<size_t>(st.ColumnInt64(0));
        hit.doc_id = st.ColumnBytes(1);
        EVENTLOOM_ASSIGN_OR_RETURN(hit.metadata, DecodeMetadata(st.ColumnBytes(2), db_path_));
        hit.text = st.ColumnBytes(3);
        hit.score = f.score;
        hit.cosine = f.cosine;
        hit.bm25 = f.bm25;
        hit.vector_rank = f.vector_rank;
        hit.keyword_rank = f.keyword_rank;
        hits->push_back(std::move(hit));
    }
    return Status::Ok();
}

Result<SearchResult> LiveIndex::Impl::Search(const SearchQuery& query) const {
    EVENTLOOM_RETURN_IF_ERROR(ValidateQuery(query));
    const bool by_vector = query.mode != SearchMode::kKeyword;
    const bool by_keyword = query.mode != SearchMode::kVector;
    const size_t candidates = std::min(std::max(query.candidates, query.k), kMaxCandidates);
    const std::vector<std::string> terms =
        by_keyword ? Terms(query.text, kMaxQueryTerms) : std::vector<std::string>();

    auto lock = ReadLock();
    if (closed_) return ClosedError();
    SearchResult result;
    result.offsets = applied_;
    Filter filter;
    if (query.k == 0 || !ResolveFilter(query, &filter)) return result;

    std::vector<Ranked> vector_ranking;
    std::vector<Ranked> keyword_ranking;
    vector_ranking.reserve(std::min<size_t>(candidates, 1024));
    if (by_vector) VectorRanking(query.vector, candidates, filter, &vector_ranking);
    EVENTLOOM_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> conn, readers_.Acquire());
    ReaderLease lease(&readers_, std::move(conn));
    const std::string match = KeywordMatch(terms);
    if (!match.empty()) {
        keyword_ranking.reserve(std::min<size_t>(candidates, 1024));
        EVENTLOOM_RETURN_IF_ERROR(
            KeywordRanking(lease.db(), match, candidates, filter, &keyword_ranking));
    }

    // Fusion: reciprocal rank over both rankings (or one ranking's own score).
    std::vector<Fused> fused;
    fused.reserve(vector_ranking.size() + keyword_ranking.size());
    for (size_t i = 0; i < vector_ranking.size(); ++i) {
        Fused f;
        f.label = vector_ranking[i].label;
        f.cosine = 1.0 - vector_ranking[i].value;
        f.vector_rank = i + 1;
        f.score = query.mode == SearchMode::kVector ? *f.cosine : 1.0 / (query.rrf_k + i + 1);
        fused.push_back(f);
    }
    auto by_label = [](const Fused& a, const Fused& b) { return a.label < b.label; };
    std::sort(fused.begin(), fused.end(), by_label);
    const size_t from_vector = fused.size();
    for (size_t i = 0; i < keyword_ranking.size(); ++i) {
        Fused key;
        key.label = keyword_ranking[i].label;
        auto end = fused.begin() + static_cast<ptrdiff_t>(from_vector);
        auto it = std::lower_bound(fused.begin(), end, key, by_label);
        if (it == end || it->label != key.label) {
            fused.push_back(key);
            it = fused.end() - 1;
        }
        it->bm25 = keyword_ranking[i].value;
        it->keyword_rank = i + 1;
        it->score += query.mode == SearchMode::kKeyword ? -keyword_ranking[i].value
                                                        : 1.0 / (query.rrf_k + i + 1);
    }
    const size_t keep = std::min(query.k, fused.size());
    std::partial_sort(fused.begin(), fused.begin() + static_cast<ptrdiff_t>(keep), fused.end(),
                      [](const Fused& a, const Fused& b) {
                          return a.score > b.score || (a.score == b.score && a.label < b.label);
                      });
    fused.resize(keep);
    EVENTLOOM_RETURN_IF_ERROR(FetchHits(lease.db(), fused, query.k, &result.hits));
    return result;
}

AppliedOffsets LiveIndex::Impl::applied() const {
    auto lock = ReadLock();
    return applied_;
}

LiveIndexStats LiveIndex::Impl::stats() const {
    auto lock = ReadLock();
    LiveIndexStats stats;
    stats.documents = documents_;
    stats.chunks = chunks_;
    if (graph_ != nullptr) {
        stats.graph_capacity = static_cast<int64_t>(graph_->max_elements_);
        stats.graph_deleted = static_cast<int64_t>(graph_->num_deleted_);
    }
    stats.generation = generation_;
    stats.snapshot_generation = snapshot_generation_;
    return stats;
}

// ---- LiveIndex ------------------------------------------------------------------------------

Result<std::unique_ptr<LiveIndex>> LiveIndex::Open(LiveIndexOptions options) {
    EVENTLOOM_RETURN_IF_ERROR(ValidateOptions(options));
    auto impl = std::make_unique<Impl>(std::move(options));
    EVENTLOOM_RETURN_IF_ERROR(impl->Open());
    return std::unique_ptr<LiveIndex>(new LiveIndex(std::move(impl)));
}

LiveIndex::LiveIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LiveIndex::~LiveIndex() {
    Status status = Close();
    if (!status.ok()) Log()->warn("live index close failed: {}", status.ToString());
}

Result<bool> LiveIndex::Upsert(const std::string& doc_id, std::vector<DocumentChunk> chunks,
                               const Metadata& metadata, Position at) {
    return impl_->Change(doc_id, &chunks, &metadata, at);
}

Result<bool> LiveIndex::Delete(const std::string& doc_id, Position at) {
    return impl_->Change(doc_id, nullptr, nullptr, at);
}

Status LiveIndex::Skip(Position at) { return impl_->Skip(at); }

Result<SearchResult> LiveIndex::Search(const SearchQuery& query) const {
    return impl_->Search(query);
}

AppliedOffsets LiveIndex::applied() const { return impl_->applied(); }

LiveIndexStats LiveIndex::stats() const { return impl_->stats(); }

Status LiveIndex::Snapshot() { return impl_->Snapshot(); }

Status LiveIndex::Reset() { return impl_->Reset(); }

Status LiveIndex::Close() { return impl_->Close(); }

}  // namespace eventloom::rag
