// eventloom bench NAME: benchmarks against their real peers, run from the one binary.
#include "cli/cli.h"
#include "delivery_bench.h"
#include "gateway_bench.h"
#include "llm_bench.h"
#include "log_bench.h"
#include "rag_bench.h"

namespace eventloom::cli {

void AddBenchCommands(CLI::App& app, GlobalOptions& g, Action& action) {
    auto* bench = app.add_subcommand(
        "bench",
        "Benchmarks: print a table and, as the last line, one JSON object. Peers (nats-server, "
        "redis-server) are started on 127.0.0.1 by the benchmark; install them with "
        "'scripts/setup.sh --peers'.");
    bench->require_subcommand(1);

    auto lo = std::make_shared<bench::LogBenchOptions>();
    auto* log = bench->add_subcommand(
        "log", "Durable publish into the embedded log vs NATS JetStream and Redis streams");
    log->add_option("--sizes", lo->sizes, "Event sizes in bytes")->capture_default_str();
    log->add_option("--messages", lo->messages, "Events per throughput figure")
        ->capture_default_str();
    log->add_option("--window", lo->window, "Publishes in flight")->capture_default_str();
    log->add_option("--sync-samples", lo->sync_samples, "One-at-a-time publishes for latency")
        ->capture_default_str();
    log->add_option("--dir", lo->dir, "Where to put data (default $TMPDIR or /tmp)");
    auto no_peers = std::make_shared<bool>(false);
    log->add_flag("--no-peers", *no_peers, "Skip JetStream and Redis");
    log->callback([&action, lo, no_peers] {
        lo->peers = !*no_peers;
        action = [lo] { return bench::RunLogBench(*lo); };
    });

    auto dopt = std::make_shared<bench::DeliveryBenchOptions>();
    auto* delivery = bench->add_subcommand(
        "delivery", "Consume rate (fetch + ack) vs JetStream and Redis, and the stage hop latency");
    delivery->add_option("--sizes", dopt->sizes, "Event sizes in bytes")->capture_default_str();
    delivery->add_option("--messages", dopt->messages, "Events per consume figure")
        ->capture_default_str();
    delivery->add_option("--batch", dopt->fetch_batch, "Deliveries per fetch")
        ->capture_default_str();
    delivery->add_option("--hop-rate", dopt->hop_rate, "Events per second for the hop latency")
        ->capture_default_str();
    delivery->add_option("--hop-seconds", dopt->hop_seconds, "How long the hop runs")
        ->capture_default_str();
    delivery->add_option("--dir", dopt->dir, "Where to put data (default $TMPDIR or /tmp)");
    auto d_no_peers = std::make_shared<bool>(false);
    delivery->add_flag("--no-peers", *d_no_peers, "Skip JetStream and Redis");
    delivery->callback([&action, dopt, d_no_peers] {
        dopt->peers = !*d_no_peers;
        action = [dopt] { return bench::RunDeliveryBench(*dopt); };
    });

    auto mopt = std::make_shared<bench::LlmBenchOptions>();
    auto* llm = bench->add_subcommand(
        "llm",
        "The LLM stage (events through the log, continuous batching) vs llama-server on the same "
        "model: distinct prompts (A), a shared system prompt (B), and one at a time. Without "
        "--model it writes the small test model (gibberish text, real compute) once into "
        "~/.cache/eventloom/models.");
    llm->add_option("--model", mopt->model, "A GGUF model file");
    llm->add_option("--threads", mopt->threads, "CPU threads, for both")->capture_default_str();
    llm->add_option("--requests", mopt->requests, "Requests per workload")->capture_default_str();
    llm->add_option("--concurrency", mopt->concurrency,
                    "Requests in flight (the LLM stage's slots and llama-server's -np)")
        ->capture_default_str();
    llm->add_option("--new-tokens", mopt->new_tokens, "New tokens per request (EOS ignored)")
        ->capture_default_str();
    llm->add_option("--prefix-tokens", mopt->prefix_tokens, "Shared system prompt of workload B")
        ->capture_default_str();
    llm->add_option("--llama-server", mopt->llama_server,
                    "The llama-server binary (default: the one 'scripts/setup.sh --peers' builds)");
    llm->add_option("--dir", mopt->dir, "Where to put data (default $TMPDIR or /tmp)");
    llm->add_flag("--no-server", mopt->skip_server, "Skip llama-server");
    llm->add_flag("--kv-unified,!--kv-per-sequence", mopt->kv_unified,
                  "One KV buffer for all of eventloom's sequences (the default), or one per "
                  "sequence (see docs/llm.md)");
    llm->callback([&action, mopt] { action = [mopt] { return bench::RunLlmBench(*mopt); }; });

    auto gopt = std::make_shared<bench::GatewayBenchOptions>();
    auto* gw = bench->add_subcommand(
        "gateway",
        "What the HTTP bridge adds to a model call: POST /v1/chat/completions through the "
        "gateway, an event, an LLM stage on the echo test backend and back, at a steady rate "
        "from an open-loop load generator, against the echo backend called in process and "
        "GET /healthz (the HTTP floor)");
    gw->add_option("--rate", gopt->rate, "Requests per second")->capture_default_str();
    gw->add_option("--seconds", gopt->seconds, "How long each figure runs")->capture_default_str();
    gw->add_option("--connections", gopt->connections, "Keep-alive client connections")
        ->capture_default_str();
    gw->add_option("--dir", gopt->dir, "Where to put data (default $TMPDIR or /tmp)");
    gw->callback([&action, gopt] { action = [gopt] { return bench::RunGatewayBench(*gopt); }; });

    auto ropt = std::make_shared<bench::RagBenchOptions>();
    auto* rag = bench->add_subcommand(
        "rag",
        "The live RAG index on real text (python3.11-doc and perl-doc, hashing embedder): "
        "ingest rate, freshness (publish -> searchable) at a steady rate, query latency and "
        "recall@10, against hnswlib used directly and exact search");
    rag->add_option("--chunks", ropt->chunks, "Chunks to index before the queries")
        ->capture_default_str();
    rag->add_option("--fresh-rate", ropt->fresh_rate, "New documents per second for freshness")
        ->capture_default_str();
    rag->add_option("--fresh-seconds", ropt->fresh_seconds, "How long freshness runs")
        ->capture_default_str();
    rag->add_option("--queries", ropt->queries,
                    "Queries, each in every mode (the phase stops after 100 s once 200 ran)")
        ->capture_default_str();
    rag->add_option("--chunk-size", ropt->chunk_size, "Characters per chunk")
        ->capture_default_str();
    rag->add_option("--chunk-overlap", ropt->chunk_overlap, "Characters shared by neighbours")
        ->capture_default_str();
    rag->add_option("--hnsw-m", ropt->hnsw_m, "HNSW M (default: the index's default)");
    rag->add_option("--ef-construction", ropt->ef_construction,
                    "HNSW ef_construction (default: the index's default)");
    rag->add_option("--ef-search", ropt->ef_search,
                    "HNSW ef_search (default: the index's default)");
    rag->add_option("--snapshot-every-changes", ropt->snapshot_every_changes,
                    "The index's snapshot policy for the run (0: off; the timed snapshot runs "
                    "either way)")
        ->capture_default_str();
    rag->add_option("--dir", ropt->dir, "Where to put data (default $TMPDIR or /tmp)");
    rag->callback([&action, ropt] { action = [ropt] { return bench::RunRagBench(*ropt); }; });
}

}  // namespace eventloom::cli
