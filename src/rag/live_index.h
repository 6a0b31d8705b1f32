// LiveIndex: the live RAG index over one topic of document events (docs/rag.md). Chunks'
// vectors are in an HNSW graph (hnswlib, inner product on unit vectors = cosine) and their
// text in SQLite FTS5 (BM25); a search fuses both rankings by reciprocal rank, after filtering
// on metadata fields.
//
// The index is a view of the log. Every change records, in the same SQLite transaction, the
// position (partition, offset) of the document event it applies; a change at or below the
// position already applied for its partition is skipped, so redeliveries are harmless, and a
// restart resumes after applied(). SQLite (in WAL mode) holds everything needed to rebuild the
// HNSW graph without embedding again: chunk text, metadata and vectors. The graph itself is
// kept in memory and snapshotted to disk together with the SQLite generation it reflects;
// Open loads the snapshot and applies the changes logged after it (or rebuilds the graph from
// the stored vectors when the snapshot is missing or does not match).
//
// Thread-safety: one writer (Upsert, Delete, Skip, Snapshot, Reset) at a time, any number of
// concurrent readers (Search, applied, stats); readers see each change whole or not at all.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "eventloom/status.h"
#include "rag/embedder.h"

namespace eventloom::rag {

// Flat string fields of a document, kept with each of its chunks.
using Metadata = std::vector<std::pair<std::string, std::string>>;

// The next offset to apply, per partition of the source topic.
using AppliedOffsets = std::map<int32_t, int64_t>;

// Where a document event is in its topic.
struct Position {
    int32_t partition = 0;
    int64_t offset = 0;
};

struct DocumentChunk {
    size_t index = 0;  // 0, 1, ... within the document
    std::string text;
    Vector vector;  // unit length, of the index's dimension
};

struct LiveIndexOptions {
    std::string dir;  // created when missing; holds index.db and the graph snapshot
    int dimension = 384;
    std::string embedder;  // the embedder's fingerprint; Open refuses a dir made with another
    // Metadata fields queries may filter on (others are stored and returned only).
    std::vector<std::string> filter_fields;
    size_t initial_capacity = 1024;  // chunks; the graph doubles when full
    // Tuned with `eventloom bench rag` (docs/benchmarks.md) at 100,000 chunks of the hashing
    // embedder, whose vectors are hard for HNSW: ef_search 64 found 0.83-0.87 of the exact top
    // 10 whatever the graph; 384 finds 0.96 for about 3 ms a query. ef_construction 64 ingests
    // about twice as fast as 200 (ingest and freshness are bound by graph inserts) and still
    // reaches 0.95 at that ef_search.
    int hnsw_m = 16;
    int ef_construction = 64;
    int ef_search = 384;  // raised to the candidate count of a query when smaller
    // A snapshot is written by Snapshot(), at Close, and by a change once this many changes or
    // this much time passed since the last one.
    int64_t snapshot_every_changes = 20'000;
    std::chrono::seconds snapshot_every{60};
};

enum class SearchMode { kHybrid, kVector, kKeyword };

struct SearchQuery {
    std::string text;  // for BM25 (kHybrid, kKeyword)
    Vector vector;     // for HNSW (kHybrid, kVector); unit length
    SearchMode mode = SearchMode::kHybrid;
    size_t k = 5;
    // field == value, every one must hold; fields must be among filter_fields.
    std::vector<std::pair<std::string, std::string>> filters;
    size_t candidates = 50;  // taken from each ranking before fusion (at least k)
    double rrf_k = 60;       // fused score = sum over rankings of 1 / (rrf_k + rank), rank from 1
};

struct SearchHit {
    std::string doc_id;
    size_t chunk_index = 0;
    std::string text;
    Metadata metadata;
    double score = 0;                    // the fused score (kVector: cosine; kKeyword: -bm25)
    std::optional<double> cosine;        // when the vector ranking had it
    std::optional<double> bm25;          // SQLite's bm25() (lower is better), when matched
    std::optional<size_t> vector_rank;   // 1-based
    std::optional<size_t> keyword_rank;  // 1-based
};

struct SearchResult {
    std::vector<SearchHit> hits;  // best first, at most k
    AppliedOffsets offsets;       // the index's position when the search read it
};

struct LiveIndexStats {
    int64_t documents = 0;
    int64_t chunks = 0;
    int64_t graph_capacity = 0;
    int64_t graph_deleted = 0;  // slots of removed chunks still in the graph
    int64_t generation = 0;     // changes applied since the index was created
    int64_t snapshot_generation = 0;
};

class LiveIndex {
public:
    // InvalidArgument for bad options or an embedder/dimension other than the dir's;
    // DataLoss naming the file for a corrupt index.db (a corrupt snapshot is rebuilt instead).
    static Result<std::unique_ptr<LiveIndex>> Open(LiveIndexOptions options);
    ~LiveIndex();  // Close(), errors logged
    LiveIndex(const LiveIndex&) = delete;
    LiveIndex& operator=(const LiveIndex&) = delete;

    // Replaces every chunk of `doc_id` with `chunks` (an empty list removes the document).
    // False when `at` was already applied (nothing changed).
    Result<bool> Upsert(const std::string& doc_id, std::vector<DocumentChunk> chunks,
                        const Metadata& metadata, Position at);
    // Removes every chunk of `doc_id` (a doc it does not have is fine). False when `at` was
    // already applied.
    Result<bool> Delete(const std::string& doc_id, Position at);
    // Marks `at` applied without a change (an event the indexer could not use).
    Status Skip(Position at);

    Result<SearchResult> Search(const SearchQuery& query) const;

    AppliedOffsets applied() const;
    LiveIndexStats stats() const;

    // Writes the graph snapshot for the current generation (atomically: temp file + rename +
    // fsync), then forgets the change log up to it.
    Status Snapshot();
    // Empties the index (documents, graph, positions): `index rebuild` starts from here.
    Status Reset();
    // Snapshots and closes; further calls fail with FailedPrecondition. Idempotent.
    Status Close();

private:
    class Impl;
    explicit LiveIndex(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace eventloom::rag
