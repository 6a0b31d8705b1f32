// eventloom validate|run|serve FILE: check a pipeline file, run its stages, or run them behind
// the HTTP gateway (docs/pipelines.md, docs/gateway.md); eventloom index rebuild|search|stats:
// the pipeline's live indexes (docs/rag.md).
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stop_token>
#include <thread>

#include "cli/cli.h"
#include "gateway/gateway.h"
#include "gateway/pipeline_gateway.h"
#include "pipeline/config/pipeline_spec.h"
#include "pipeline/pipeline.h"

namespace eventloom::cli {
namespace {

using pipeline::Diagnostic;
using pipeline::Pipeline;
using pipeline::PipelineSpec;

struct PipelineFlags {
    std::string file;
    std::string data_dir;  // set only when --data-dir was given
    std::string listen;
    std::chrono::milliseconds grace{10'000};
    std::chrono::milliseconds status_interval{0};
    bool quiet = false;
};

struct IndexFlags {
    std::string file;
    std::string data_dir;
    std::string name;
    std::string query;
    size_t k = 5;
    std::string mode = "hybrid";
    std::vector<std::string> filters;  // field=value
    bool json = false;
};

// Loads and checks the file; prints every diagnostic to stderr.
Result<PipelineSpec> LoadAndCheck(const std::string& file) {
    std::vector<Diagnostic> diagnostics;
    auto spec = pipeline::LoadPipelineFile(file, &diagnostics);
    if (spec.ok()) {
        Pipeline::Check(*spec, &diagnostics).IgnoreError();
    }
    for (const Diagnostic& d : diagnostics) std::cerr << d.ToString() << "\n";
    if (!diagnostics.empty()) {
        return InvalidArgumentError(fmt::format("{}: {} error{}", file, diagnostics.size(),
                                                diagnostics.size() == 1 ? "" : "s"));
    }
    if (!spec.ok()) return spec.status();
    return spec;
}

int RunValidate(const PipelineFlags& f) {
    auto spec = LoadAndCheck(f.file);
    if (!spec.ok()) return Fail(spec.status());
    if (!f.quiet) {
        std::printf("%s: ok: pipeline '%s', %zu stage%s, %zu model%s%s\n", f.file.c_str(),
                    spec->name.c_str(), spec->stages.size(), spec->stages.size() == 1 ? "" : "s",
                    spec->models.size(), spec->models.size() == 1 ? "" : "s",
                    spec->gateway.enabled ? ", gateway" : "");
    }
    return 0;
}

// Blocks SIGINT and SIGTERM in this thread and every thread started after it, so that only
// WaitForSignal sees them.
sigset_t BlockStopSignals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    return set;
}

void PrintStatus(const Pipeline& p) {
    std::string line;
    for (const pipeline::IndexStatus& s : p.Indexes()) {
        line += fmt::format("{}index {}: {} documents, {} chunks, {} waiting, {} dead-lettered",
                            line.empty() ? "" : " | ", s.name, s.index.documents, s.index.chunks,
                            s.indexer.lag, s.indexer.dead_lettered);
    }
    for (const pipeline::StageStatus& s : p.Stages()) {
        line += fmt::format("{}{}: {} done, {} in flight, {} waiting, {} dead-lettered",
                            line.empty() ? "" : " | ", s.name, s.stats.succeeded, s.stats.in_flight,
                            s.stats.lag, s.stats.dead_lettered);
    }
    std::fprintf(stderr, "status: %s\n", line.c_str());
}

// Waits for SIGINT or SIGTERM, printing the stages' status every `interval` (0: never).
void WaitForSignal(const sigset_t& set, const Pipeline& p, std::chrono::milliseconds interval) {
    auto next = std::chrono::steady_clock::now() + interval;
    for (;;) {
        timespec tick{0, 200'000'000};
        const int sig = sigtimedwait(&set, nullptr, &tick);
        if (sig == SIGINT || sig == SIGTERM) {
            std::fprintf(stderr, "eventloom: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
            return;
        }
        if (interval.count() > 0 && std::chrono::steady_clock::now() >= next) {
            PrintStatus(p);
            next += interval;
        }
    }
}

Result<std::unique_ptr<Pipeline>> OpenAndStart(const PipelineFlags& f) {
    EVENTLOOM_ASSIGN_OR_RETURN(PipelineSpec spec, LoadAndCheck(f.file));
    pipeline::PipelineOptions o;
    o.data_dir = f.data_dir;
    EVENTLOOM_ASSIGN_OR_RETURN(std::unique_ptr<Pipeline> p, Pipeline::Open(std::move(spec), o));
    EVENTLOOM_RETURN_IF_ERROR(p->Start());
    std::fprintf(stderr, "eventloom: pipeline '%s' running, %zu stages, data in %s\n",
                 p->spec().name.c_str(), p->spec().stages.size(), p->data_dir().c_str());
    return p;
}

int RunPipeline(const PipelineFlags& f) {
    const sigset_t signals = BlockStopSignals();
    auto p = OpenAndStart(f);
    if (!p.ok()) return Fail(p.status());
    WaitForSignal(signals, **p, f.status_interval);
    (*p)->Stop(f.grace);
    return 0;
}

int RunServe(const PipelineFlags& f) {
    const sigset_t signals = BlockStopSignals();
    auto p = OpenAndStart(f);
    if (!p.ok()) return Fail(p.status());
    Pipeline& pipeline = **p;
    auto options = gateway::GatewayOptionsFor(pipeline, f.listen);
    if (!options.ok()) {
        pipeline.Stop(f.grace);
        return Fail(options.status());
    }
    const std::string listen = options->spec.listen;
    auto gw = gateway::Gateway::Start(pipeline.broker(), pipeline.jobs(), std::move(*options));
    if (!gw.ok()) {
        pipeline.Stop(f.grace);
        return Fail(gw.status());
    }
    const std::string host = listen.substr(0, listen.rfind(':'));
    std::fprintf(stderr, "eventloom: gateway listening on http://%s:%u\n", host.c_str(),
                 static_cast<unsigned>((*gw)->port()));
    WaitForSignal(signals, pipeline, f.status_interval);

    // Drain: new requests get 503 while accepted ones finish; then the stages stop and give
    // back to the log whatever they have not finished.
    (*gw)->BeginDrain();
    (*gw)->Stop(f.grace);
    pipeline.Stop(f.grace);
    return 0;
}

// Opens the pipeline without starting it (the broker lock is taken: not while it runs).
Result<std::unique_ptr<Pipeline>> OpenStopped(const std::string& file, const std::string& dir) {
    EVENTLOOM_ASSIGN_OR_RETURN(PipelineSpec spec, LoadAndCheck(file));
    pipeline::PipelineOptions o;
    o.data_dir = dir;
    o.open_models_at_start = false;
    return Pipeline::Open(std::move(spec), o);
}

// A progress bar on a terminal; a line per tenth otherwise.
class Progress {
public:
    explicit Progress(std::string what) : what_(std::move(what)), tty_(isatty(2) == 1) {}

    void Update(int64_t done, int64_t total) {
        const int64_t percent = total > 0 ? std::min<int64_t>(100, done * 100 / total) : 100;
        if (tty_) {
            const int width = 30;
            const int fill = static_cast<int>(percent * width / 100);
            std::fprintf(stderr, "\r%s [%s%s] %3lld%% %lld/%lld events", what_.c_str(),
                         std::string(static_cast<size_t>(fill), '#').c_str(),
                         std::string(static_cast<size_t>(width - fill), '.').c_str(),
                         static_cast<long long>(percent), static_cast<long long>(done),
                         static_cast<long long>(total));
        } else if (percent / 10 != last_tenth_) {
            std::fprintf(stderr, "%s: %lld%% (%lld/%lld events)\n", what_.c_str(),
                         static_cast<long long>(percent), static_cast<long long>(done),
                         static_cast<long long>(total));
        }
        last_tenth_ = percent / 10;
    }
    void Finish() {
        if (tty_) std::fprintf(stderr, "\n");
    }

private:
    std::string what_;
    bool tty_;
    int64_t last_tenth_ = -1;
};

int RunIndexRebuild(const IndexFlags& f) {
    const sigset_t signals = BlockStopSignals();
    auto p = OpenStopped(f.file, f.data_dir);
    if (!p.ok()) return Fail(p.status());
    std::stop_source stop;
    // SIGINT/SIGTERM stop the rebuild; the index then holds what was applied so far, and the
    // next `run` or `serve` carries on from there.
    std::jthread watcher([&signals, &stop](std::stop_token token) {
        while (!token.stop_requested()) {
            timespec tick{0, 200'000'000};
            const int sig = sigtimedwait(&signals, nullptr, &tick);
            if (sig == SIGINT || sig == SIGTERM) {
                stop.request_stop();
                return;
            }
        }
    });
    Progress progress(fmt::format("index {}", f.name));
    const auto started = std::chrono::steady_clock::now();
    Status st = (*p)->RebuildIndex(
        f.name, [&progress](int64_t done, int64_t total) { progress.Update(done, total); },
        stop.get_token());
    progress.Finish();
    watcher.request_stop();
    if (!st.ok()) return Fail(st);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    for (const pipeline::IndexStatus& s : (*p)->Indexes()) {
        if (s.name != f.name) continue;
        std::printf("index %s rebuilt: %lld documents, %lld chunks, %lld dead-lettered in %.1f s\n",
                    s.name.c_str(), static_cast<long long>(s.index.documents),
                    static_cast<long long>(s.index.chunks),
                    static_cast<long long>(s.indexer.dead_lettered), seconds);
    }
    return 0;
}

int RunIndexSearch(const IndexFlags& f) {
    auto p = OpenStopped(f.file, f.data_dir);
    if (!p.ok()) return Fail(p.status());
    rag::SearchQuery q;
    q.text = f.query;
    q.k = f.k;
    q.candidates = std::max<size_t>(q.candidates, f.k);
    q.mode = f.mode == "vector"    ? rag::SearchMode::kVector
             : f.mode == "keyword" ? rag::SearchMode::kKeyword
                                   : rag::SearchMode::kHybrid;
    for (const std::string& filter : f.filters) {
        const size_t eq = filter.find('=');
        if (eq == std::string::npos || eq == 0) {
            return Fail(
                InvalidArgumentError(fmt::format("--filter '{}': expected FIELD=VALUE", filter)));
        }
        q.filters.emplace_back(filter.substr(0, eq), filter.substr(eq + 1));
    }
    auto result = (*p)->SearchIndex(f.name, q);
    if (!result.ok()) return Fail(result.status());
    nlohmann::json offsets = nlohmann::json::object();
    for (const auto& [partition, offset] : result->offsets) {
        offsets[std::to_string(partition)] = offset;
    }
    if (f.json) {
        nlohmann::json hits = nlohmann::json::array();
        for (const rag::SearchHit& h : result->hits) {
            nlohmann::json metadata = nlohmann::json::object();
            for (const auto& [k, v] : h.metadata) metadata[k] = v;
            hits.push_back({{"doc", h.doc_id},
                            {"chunk", h.chunk_index},
                            {"score", h.score},
                            {"text", h.text},
                            {"metadata", metadata}});
        }
        std::printf("%s\n", nlohmann::json({{"offsets", offsets}, {"hits", hits}})
                                .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                                .c_str());
        return 0;
    }
    std::printf("index %s at offsets %s: %zu hit%s\n", f.name.c_str(), offsets.dump().c_str(),
                result->hits.size(), result->hits.size() == 1 ? "" : "s");
    for (const rag::SearchHit& h : result->hits) {
        std::string text = h.text.substr(0, 160);
        for (char& c : text) {
            if (c == '\n') c = ' ';
        }
        std::printf("%.4f  %s#%zu  %s\n", h.score, h.doc_id.c_str(), h.chunk_index, text.c_str());
    }
    return 0;
}

int RunIndexStats(const IndexFlags& f) {
    auto p = OpenStopped(f.file, f.data_dir);
    if (!p.ok()) return Fail(p.status());
    if ((*p)->Indexes().empty()) {
        std::printf("%s declares no indexes\n", f.file.c_str());
        return 0;
    }
    for (const pipeline::IndexStatus& s : (*p)->Indexes()) {
        if (!f.name.empty() && s.name != f.name) continue;
        std::string offsets;
        for (const auto& [partition, offset] : s.applied) {
            offsets += fmt::format("{}{}:{}", offsets.empty() ? "" : " ", partition, offset);
        }
        std::printf(
            "index %s: %lld documents, %lld chunks, graph %lld/%lld slots (%lld "
            "deleted), applied offsets %s\n",
            s.name.c_str(), static_cast<long long>(s.index.documents),
            static_cast<long long>(s.index.chunks),
            static_cast<long long>(s.index.chunks + s.index.graph_deleted),
            static_cast<long long>(s.index.graph_capacity),
            static_cast<long long>(s.index.graph_deleted),
            offsets.empty() ? "(none)" : offsets.c_str());
    }
    return 0;
}

void AddFileArgument(CLI::App* cmd, PipelineFlags& f) {
    cmd->add_option("file", f.file, "The pipeline file (YAML)")
        ->required()
        ->check(CLI::ExistingFile);
}

void AddRunFlags(CLI::App* cmd, PipelineFlags& f) {
    cmd->add_option_function<std::string>(
        "--grace",
        [&f](const std::string& text) {
            auto d = ParseDuration(text);
            if (!d.ok()) throw CLI::ValidationError("--grace", d.status().message());
            f.grace = *d;
        },
        "On SIGINT/SIGTERM, how long running events may take to finish (default 10s); the "
        "rest go back to the log");
    cmd->add_option_function<std::string>(
        "--status-every",
        [&f](const std::string& text) {
            auto d = ParseDuration(text);
            if (!d.ok()) throw CLI::ValidationError("--status-every", d.status().message());
            f.status_interval = *d;
        },
        "Print each stage's counts to stderr this often (e.g. 2s)");
}

}  // namespace

void AddPipelineCommands(CLI::App& app, GlobalOptions& g, Action& action) {
    auto f = std::make_shared<PipelineFlags>();
    // --data-dir overrides the file's broker.dir only when given.
    CLI::Option* data_dir = app.get_option("--data-dir");
    auto explicit_dir = [f, data_dir, &g] {
        if (data_dir->count() > 0) f->data_dir = g.data_dir;
    };

    auto* validate = app.add_subcommand(
        "validate",
        "Check a pipeline file: its structure, every stage's options, templates, conditions, "
        "prompt and schema files. Every problem is printed as FILE:LINE:COL: error: ...; the "
        "exit code is 1 when there is any.");
    AddFileArgument(validate, *f);
    validate->add_flag("--quiet,-q", f->quiet, "Print nothing when the file is valid");
    validate->callback([f, &action] { action = [f] { return RunValidate(*f); }; });

    auto* run = app.add_subcommand(
        "run",
        "Run a pipeline's stages until SIGINT or SIGTERM, on the embedded broker in the file's "
        "broker.dir (or --data-dir). Events already accepted are never lost: on stop, running "
        "events get --grace to finish and the rest are delivered again at the next start.");
    AddFileArgument(run, *f);
    AddRunFlags(run, *f);
    run->callback([f, &action, explicit_dir] {
        explicit_dir();
        action = [f] { return RunPipeline(*f); };
    });

    auto* serve = app.add_subcommand(
        "serve",
        "Run a pipeline's stages and its HTTP gateway (OpenAI-compatible /v1/chat/completions, "
        "/v1/completions and /v1/models; CloudEvents ingest at /v1/events; jobs at /v1/jobs; "
        "/healthz, /readyz). Listens on the file's gateway.listen (default 127.0.0.1:8080). "
        "On SIGINT or SIGTERM it stops taking connections, lets accepted requests finish for "
        "--grace, then stops the stages.");
    AddFileArgument(serve, *f);
    AddRunFlags(serve, *f);
    serve
        ->add_option("--listen", f->listen,
                     "HOST:PORT to listen on, instead of the file's gateway.listen (port 0: any "
                     "free port)")
        ->check([](const std::string& text) {
            Status valid = pipeline::ValidateListenAddress(text);
            return valid.ok() ? std::string() : valid.message();
        });
    serve->callback([f, &action, explicit_dir] {
        explicit_dir();
        action = [f] { return RunServe(*f); };
    });

    auto x = std::make_shared<IndexFlags>();
    auto index_dir = [x, data_dir, &g] {
        if (data_dir->count() > 0) x->data_dir = g.data_dir;
    };
    auto* index = app.add_subcommand(
        "index",
        "The live RAG indexes a pipeline file declares under `indexes:` (docs/rag.md). Not "
        "while `run` or `serve` has the pipeline's data directory.");
    index->require_subcommand(1);
    auto add_common = [x](CLI::App* cmd, bool name_required) {
        cmd->add_option("file", x->file, "The pipeline file (YAML)")
            ->required()
            ->check(CLI::ExistingFile);
        auto* name = cmd->add_option("name", x->name, "The index's name");
        if (name_required) name->required();
    };
    auto* rebuild = index->add_subcommand(
        "rebuild",
        "Empty the index and apply its source topic again from the first event, with a "
        "progress bar. SIGINT stops it; `run` or `serve` then carries on from where it got.");
    add_common(rebuild, true);
    rebuild->callback([x, &action, index_dir] {
        index_dir();
        action = [x] { return RunIndexRebuild(*x); };
    });
    auto* search = index->add_subcommand(
        "search", "Search the index as a retrieve stage does, and print the hits best first.");
    add_common(search, true);
    search->add_option("query", x->query, "The query text")->required();
    search->add_option("--k,-k", x->k, "Hits to return (default 5)")->check(CLI::Range(1, 100));
    search->add_option("--mode", x->mode, "hybrid (default), vector or keyword")
        ->check(CLI::IsMember({"hybrid", "vector", "keyword"}));
    search->add_option("--filter", x->filters,
                       "FIELD=VALUE on a metadata field the index filters on (repeatable)");
    search->add_flag("--json", x->json, "One JSON object with the offsets and the hits");
    search->callback([x, &action, index_dir] {
        index_dir();
        action = [x] { return RunIndexSearch(*x); };
    });
    auto* stats = index->add_subcommand(
        "stats", "Documents, chunks, graph size and applied offsets of the indexes.");
    add_common(stats, false);
    stats->callback([x, &action, index_dir] {
        index_dir();
        action = [x] { return RunIndexStats(*x); };
    });
}

}  // namespace eventloom::cli
