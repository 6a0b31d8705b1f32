// `eventloom bench rag`: the live RAG index (docs/rag.md) on real text, against hnswlib used
// directly and against exact search.
//
// The corpus is the documentation of two Debian packages, python3.11-doc (reST sources) and
// perl-doc (POD), split into documents of one to a few paragraphs (about 400-800 bytes),
// shuffled with a fixed seed, and chunked by characters. Embeddings come from the hashing
// embedder. In one run, on an embedded broker (topic `durability: never`: the index is measured,
// not the log's fsync):
//   ingest     documents published to a topic, then Indexer::CatchUp until about `chunks`
//              chunks are indexed: documents/s and chunks/s, embedding included. Peers: the
//              hashing embedder alone, and hnswlib's addPoint alone on the same vectors with the
//              same M and ef_construction (no SQLite, no FTS5).
//   query      `queries` sentences of the corpus with some words dropped, k = 10, one at a time,
//              in hybrid, vector and keyword mode (embedding the query included, except in
//              keyword mode, which needs no vector). Peers: exact search (every stored vector
//              scored with hnswlib's own inner-product kernel) and hnswlib's searchKnn with the
//              same ef, embedding included in both. The phase stops after 100 s once 200
//              queries ran (the table says how many did).
//   recall@10  vector mode's top 10 against exact search's top 10 on the same vectors (a hit
//              counts when its cosine is at least the exact 10th's, so ties are not misses).
//   snapshot   Snapshot() timed at `chunks` chunks: how long the writer (the indexer's
//              thread) is blocked when the snapshot policy fires.
//   freshness  with the indexer running, new documents published open-loop at `fresh_rate` for
//              `fresh_seconds`; each is timed from the moment it was due to the indexer's
//              on_applied for it (an applied change is visible to the next Search).
#pragma once

#include <cstdint>
#include <string>

namespace eventloom::bench {

struct RagBenchOptions {
    std::string dir;  // parent of the temporary directory ("" = $TMPDIR or /tmp)
    int64_t chunks = 100'000;
    double fresh_rate = 1000;
    double fresh_seconds = 10;
    int queries = 1000;
    int chunk_size = 200;  // characters
    int chunk_overlap = 20;
    // HNSW settings for both the index and the hnswlib peer; < 1: LiveIndexOptions' defaults.
    int hnsw_m = 0;
    int ef_construction = 0;
    int ef_search = 0;
    // LiveIndexOptions::snapshot_every_changes for the run; 0 turns the policy off (the timed
    // snapshot still runs). The time-based policy is off either way, so runs compare.
    int64_t snapshot_every_changes = 0;
};

int RunRagBench(const RagBenchOptions& options);

}  // namespace eventloom::bench
