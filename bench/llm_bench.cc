#include "llm_bench.h"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "bench_util.h"
#include "eventloom/broker.h"
#include "eventloom/llm.h"
#include "llm/llama/llama_backend.h"
#include "llm/llm_stage.h"
#include "llm/test_model/test_model.h"

namespace eventloom::bench {

namespace {

using SteadyClock = std::chrono::steady_clock;
using nlohmann::json;

struct Workload {
    std::string name;
    std::vector<std::string> prompts;
};

struct RunResult {
    int64_t tokens = 0;
    double seconds = 0;
    double tok_per_s = 0;
    LatencyStats ttft;            // microseconds
    int64_t prompt_tokens = 0;    // prompt tokens of all requests
    int64_t computed_tokens = 0;  // of which the model computed (the rest came from a cache)
};

LlmRequest MakeRequest(const std::string& prompt, int new_tokens, const std::string& id) {
    LlmRequest r;
    r.id = id;
    r.prompt = prompt;
    r.max_tokens = new_tokens;
    r.sampling.temperature = 0;
    r.ignore_eos = true;
    return r;
}

// About 20 tokens each, all different.
std::vector<std::string> DistinctPrompts(int n) {
    static const char* kTopics[] = {"ocean tides",    "bread baking",  "railway signals",
                                    "bee colonies",   "glass blowing", "river deltas",
                                    "chess openings", "paper making"};
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) {
        out.push_back("Request " + std::to_string(i) + ": write a short note about " +
                      kTopics[i % 8] + " for reader number " + std::to_string(i * 7 + 3) + ".");
    }
    return out;
}

// A system prompt of about `tokens` tokens for `backend`'s tokenizer.
Result<std::string> SharedPrefix(LlmBackend& backend, int tokens) {
    std::string text = "You are the archive assistant. Rules follow.\n";
    int i = 0;
    while (true) {
        LlmRequest r = MakeRequest(text, 1, "prefix");
        EVENTLOOM_ASSIGN_OR_RETURN(int n, backend.CountPromptTokens(r));
        if (n >= tokens) break;
        std::string line = "Rule " + std::to_string(i) + ": keep record " +
                           std::to_string(i * 13 % 997) + " in drawer " + std::to_string(i % 31) +
                           ".\n";
        // Add lines quickly while far from the target, then one word at a time.
        text += n + 40 < tokens ? line : "note ";
        ++i;
    }
    return text;
}

Result<std::string> TestModelPath(const LlmBenchOptions& o) {
    if (!o.model.empty()) return o.model;
    const char* cache = std::getenv("EVENTLOOM_CACHE");
    const char* home = std::getenv("HOME");
    std::string dir =
        cache && *cache ? cache : std::string(home ? home : "/tmp") + "/.cache/eventloom";
    std::string path = dir + "/models/eventloom-test-small-seed1.gguf";
    std::error_code ec;
    if (std::filesystem::is_regular_file(path, ec)) return path;
    std::filesystem::create_directories(dir + "/models", ec);
    std::cerr << "bench llm: writing the small test model to " << path << "\n";
    llm::TestModelOptions t;
    t.size = llm::TestModelSize::kSmall;
    t.out = path;
    t.seed = 1;
    EVENTLOOM_RETURN_IF_ERROR(llm::WriteTestModel(t).status());
    return path;
}

// Through eventloom: events in, the LLM stage, completions and chunks read back from the log.
Result<RunResult> RunThroughEventloom(std::shared_ptr<llm::LlamaBackend> backend, const Workload& w,
                                      const LlmBenchOptions& o, const std::string& dir) {
    EmbeddedBrokerOptions bo;
    bo.dir = dir;
    EVENTLOOM_ASSIGN_OR_RETURN(auto broker, OpenEmbeddedBroker(bo));
    TopicOptions t;
    t.partitions = 1;
    t.durability = Durability::kInterval;
    for (auto topic : {"requests", "completions"}) {
        EVENTLOOM_RETURN_IF_ERROR(broker->CreateTopic(topic, t));
    }
    // Chunks are progress for streaming clients; the completion is the durable result.
    t.durability = Durability::kNever;
    EVENTLOOM_RETURN_IF_ERROR(broker->CreateTopic("chunks", t));
    llm::LlmStageOptions so;
    so.stage.name = "llm";
    so.stage.consumes = "requests";
    so.emits = "completions";
    so.chunks_topic = "chunks";
    so.chunk_tokens = 16;
    so.chunk_interval = std::chrono::milliseconds(100);
    auto computed_before = backend->stats().prompt_tokens_computed;
    llm::LlmStage stage(broker.get(), nullptr, so, backend);
    EVENTLOOM_RETURN_IF_ERROR(stage.Start());

    ConsumerOptions cc;
    cc.topic = "completions";
    cc.group = "bench";
    cc.spin = std::chrono::microseconds(0);  // a client that waits, as llama-server's do
    EVENTLOOM_ASSIGN_OR_RETURN(auto completions, broker->Subscribe(cc));
    cc.topic = "chunks";
    EVENTLOOM_ASSIGN_OR_RETURN(auto chunks, broker->Subscribe(cc));

    size_t n = w.prompts.size();
    std::vector<SteadyClock::time_point> published(n), first_chunk(n);
    std::vector<bool> seen(n, false);
    std::mutex mu;
    std::atomic<bool> done{false};
    auto index_of = [](const std::string& id) { return std::stoul(id.substr(4)); };
    std::thread chunk_reader([&] {
        while (!done) {
            auto batch = chunks->Fetch(256, std::chrono::milliseconds(50));
            if (!batch.ok()) return;
            auto now = SteadyClock::now();
            std::lock_guard<std::mutex> lock(mu);
            for (auto& d : *batch) {
                size_t i = index_of(d.event->causationid);
                if (!seen[i]) {
                    seen[i] = true;
                    first_chunk[i] = now;
                }
                chunks->Ack(d.tag).IgnoreError();
            }
        }
    });

    auto publish = [&](size_t i) -> Status {
        Event e;
        e.id = "req-" + std::to_string(i);
        e.source = "bench";
        e.type = "llm.request";
        e.datacontenttype = "application/json";
        e.data = json{
            {"prompt", w.prompts[i]},
            {"max_tokens", o.new_tokens},
            {"temperature", 0},
            {"ignore_eos",
             true}}.dump();
        e.has_data = true;
        {
            std::lock_guard<std::mutex> lock(mu);
            published[i] = SteadyClock::now();
        }
        return broker->Publish("requests", e).status();
    };

    RunResult r;
    auto start = SteadyClock::now();
    size_t sent = 0;
    for (; sent < std::min(n, static_cast<size_t>(o.concurrency)); ++sent) {
        EVENTLOOM_RETURN_IF_ERROR(publish(sent));
    }
    size_t finished = 0;
    auto give_up = start + std::chrono::minutes(20);
    while (finished < n && SteadyClock::now() < give_up) {
        EVENTLOOM_ASSIGN_OR_RETURN(auto batch,
                                   completions->Fetch(64, std::chrono::milliseconds(100)));
        for (auto& d : batch) {
            auto body = json::parse(d.event->data, nullptr, false);
            if (body.is_discarded()) return InternalError("bench: bad completion event");
            r.tokens += body["usage"]["completion_tokens"].get<int64_t>();
            r.prompt_tokens += body["usage"]["prompt_tokens"].get<int64_t>();
            completions->Ack(d.tag).IgnoreError();
            ++finished;
            if (sent < n) EVENTLOOM_RETURN_IF_ERROR(publish(sent++));
        }
    }
    auto end = SteadyClock::now();
    // The last chunks may still be on their way to the reader.
    for (int i = 0; i < 100; ++i) {
        std::lock_guard<std::mutex> lock(mu);
        if (std::all_of(seen.begin(), seen.end(), [](bool b) { return b; })) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    done = true;
    chunk_reader.join();
    stage.Stop();
    if (finished < n) return DeadlineExceededError("bench llm: eventloom did not finish in time");
    auto failed = stage.stats().stage.dead_lettered;
    if (failed > 0)
        return InternalError("bench llm: " + std::to_string(failed) + " requests failed");

    std::vector<double> ttft;
    for (size_t i = 0; i < n; ++i) {
        if (seen[i]) ttft.push_back(MicrosBetween(published[i], first_chunk[i]));
    }
    r.seconds = SecondsBetween(start, end);
    r.tok_per_s = RatePerSecond(static_cast<double>(r.tokens), r.seconds);
    r.ttft = Summarize(std::move(ttft));
    r.computed_tokens = backend->stats().prompt_tokens_computed - computed_before;
    return r;
}

// `concurrency` client threads, each sending the next request when its last one finished.
Result<RunResult> RunClients(LlmBackend& backend, const Workload& w, const LlmBenchOptions& o,
                             int concurrency) {
    std::atomic<size_t> next{0};
    std::mutex mu;
    RunResult r;
    std::vector<double> ttft;
    Status failure;
    auto start = SteadyClock::now();
    std::vector<std::thread> clients;
    for (int c = 0; c < concurrency; ++c) {
        clients.emplace_back([&] {
            while (true) {
                size_t i = next++;
                if (i >= w.prompts.size()) return;
                auto sent = SteadyClock::now();
                auto first = SteadyClock::time_point{};
                auto result = backend.Generate(
                    MakeRequest(w.prompts[i], o.new_tokens, "req-" + std::to_string(i)),
                    [&](std::string_view) {
                        if (first == SteadyClock::time_point{}) first = SteadyClock::now();
                    },
                    {});
                std::lock_guard<std::mutex> lock(mu);
                if (!result.ok()) {
                    failure = result.status();
                    return;
                }
                r.tokens += result->usage.completion_tokens;
                r.prompt_tokens += result->usage.prompt_tokens;
                r.computed_tokens +=
                    result->usage.prompt_tokens - result->usage.cached_prompt_tokens;
                ttft.push_back(MicrosBetween(sent, first));
            }
        });
    }
    for (auto& t : clients) t.join();
    if (!failure.ok()) return failure;
    r.seconds = SecondsBetween(start, SteadyClock::now());
    r.tok_per_s = RatePerSecond(static_cast<double>(r.tokens), r.seconds);
    r.ttft = Summarize(std::move(ttft));
    return r;
}

std::string FormatTps(double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1f", v);
    return buf;
}

int ContextPerSlot(const LlmBenchOptions& o) {
    int need = o.prefix_tokens + 64 + o.new_tokens + 64;
    return (need + 255) / 256 * 256;
}

}  // namespace

int RunLlmBench(const LlmBenchOptions& o) {
    auto model = TestModelPath(o);
    if (!model.ok()) {
        std::cerr << "bench llm: " << model.status().ToString() << "\n";
        return 1;
    }
    auto dir = TempDir::Create("eventloom-bench-llm", o.dir);
    if (!dir.ok()) {
        std::cerr << "bench llm: " << dir.status().ToString() << "\n";
        return 1;
    }
    int ctx = ContextPerSlot(o);

    LlamaOptions lo;
    lo.model_path = *model;
    lo.slots = o.concurrency;
    lo.context_per_slot = ctx;
    lo.threads = o.threads;
    lo.kv_unified = o.kv_unified;
    auto opened = llm::OpenLlama(lo);
    if (!opened.ok()) {
        std::cerr << "bench llm: " << opened.status().ToString() << "\n";
        return 1;
    }
    std::shared_ptr<llm::LlamaBackend> backend = std::move(*opened);
    // Warm up: the first decode calls allocate the compute graphs.
    (void)backend->Generate(MakeRequest("warm up", 8, "warm"));

    auto prefix = SharedPrefix(*backend, o.prefix_tokens);
    if (!prefix.ok()) {
        std::cerr << "bench llm: " << prefix.status().ToString() << "\n";
        return 1;
    }
    Workload a{"A distinct", DistinctPrompts(o.requests)};
    Workload b{"B shared prefix", DistinctPrompts(o.requests)};
    for (auto& p : b.prompts) p = *prefix + p;

    std::cerr << "bench llm: model " << *model << ", " << o.requests << " requests x "
              << o.new_tokens << " tokens, " << o.concurrency << " at a time, " << o.threads
              << " threads\n";
    std::map<std::string, Result<RunResult>> ours, server;
    int n = 0;
    for (const Workload* w : {&a, &b}) {
        std::cerr << "bench llm: eventloom, workload " << w->name << "\n";
        ours.emplace(w->name, RunThroughEventloom(backend, *w, o,
                                                  dir->path() + "/data-" + std::to_string(n++)));
    }
    // The same backend called directly by client threads: what the log and the stage cost.
    std::cerr << "bench llm: llama backend called directly, workload " << a.name << "\n";
    auto direct = RunClients(*backend, a, o, o.concurrency);
    backend.reset();

    if (!o.skip_server) {
        std::string exe = o.llama_server.empty() ? EVENTLOOM_LLAMA_SERVER : o.llama_server;
        int port = FreeTcpPort();
        auto child = ChildProcess::Start(
            {exe, "-m", *model, "--host", "127.0.0.1", "--port", std::to_string(port), "-np",
             std::to_string(o.concurrency), "-c", std::to_string(ctx * o.concurrency), "-t",
             std::to_string(o.threads)},
            dir->path() + "/llama-server.log");
        Status started =
            child.ok() ? child->WaitForPort(port, std::chrono::seconds(60)) : child.status();
        std::unique_ptr<LlmBackend> client;
        if (started.ok()) {
            OpenAiOptions oo;
            oo.base_url = "http://127.0.0.1:" + std::to_string(port) + "/v1";
            oo.chat = false;
            oo.max_concurrent = o.concurrency;
            oo.max_retries = 20;  // 503 while the server loads the model
            oo.request_timeout = std::chrono::minutes(20);
            auto c = OpenOpenAiBackend(oo);
            if (c.ok()) {
                client = std::move(*c);
                auto warm = client->Generate(MakeRequest("warm up", 8, "warm"));
                if (!warm.ok()) started = warm.status();
            } else {
                started = c.status();
            }
        }
        for (const Workload* w : {&a, &b}) {
            std::cerr << "bench llm: llama-server, workload " << w->name << "\n";
            server.emplace(w->name, started.ok() ? RunClients(*client, *w, o, o.concurrency)
                                                 : Result<RunResult>(started));
        }
        if (child.ok()) child->Stop().IgnoreError();
    }

    std::cerr << "bench llm: sequential baseline\n";
    Result<RunResult> sequential = InternalError("not run");
    {
        LlamaOptions so = lo;
        so.slots = 1;
        auto one = llm::OpenLlama(so);
        if (one.ok()) {
            (void)(*one)->Generate(MakeRequest("warm up", 8, "warm"));
            Workload s{"sequential", DistinctPrompts(o.sequential_requests)};
            sequential = RunClients(**one, s, o, 1);
        } else {
            sequential = one.status();
        }
    }

    Table table;
    table.SetHeader({"workload", "system", "tokens/s", "time to first token",
                     "prompt tokens computed", "wall"});
    auto row = [&](const std::string& wl, const std::string& sys, const Result<RunResult>& r) {
        if (!r.ok()) {
            table.AddRow({wl, sys, CellOr(r.status(), "")});
            return;
        }
        table.AddRow(
            {wl, sys, FormatTps(r->tok_per_s),
             "p50 " + FormatMicros(r->ttft.p50_us) + ", p90 " + FormatMicros(r->ttft.p90_us),
             std::to_string(r->computed_tokens) + " of " + std::to_string(r->prompt_tokens),
             FormatTps(r->seconds) + " s"});
    };
    int failures = 0;
    json out{{"bench", "llm"},
             {"model", *model},
             {"requests", o.requests},
             {"concurrency", o.concurrency},
             {"new_tokens", o.new_tokens},
             {"prefix_tokens", o.prefix_tokens},
             {"threads", o.threads},
             {"kv_unified", o.kv_unified}};
    struct Keys {
        const Workload* w;
        std::string ours_tps, server_tps, ratio, ours_ttft, server_ttft;
    };
    for (const Keys& k :
         {Keys{&a, "tok_per_s", "llama_server_tok_per_s", "ratio_vs_llama_server", "ttft_p50_ms",
               "llama_server_ttft_p50_ms"},
          Keys{&b, "shared_prefix_tok_per_s", "llama_server_shared_prefix_tok_per_s",
               "shared_prefix_ratio_vs_llama_server", "shared_prefix_ttft_p50_ms",
               "llama_server_shared_prefix_ttft_p50_ms"}}) {
        const auto& mine = ours.at(k.w->name);
        row(k.w->name, "eventloom (log + LLM stage)", mine);
        if (!mine.ok()) ++failures;
        if (mine.ok()) {
            out[k.ours_tps] = mine->tok_per_s;
            out[k.ours_ttft] = mine->ttft.p50_us / 1000;
        }
        if (!o.skip_server) {
            const auto& theirs = server.at(k.w->name);
            row(k.w->name, "llama-server -np " + std::to_string(o.concurrency), theirs);
            if (!theirs.ok()) ++failures;
            if (theirs.ok()) {
                out[k.server_tps] = theirs->tok_per_s;
                out[k.server_ttft] = theirs->ttft.p50_us / 1000;
            }
            if (mine.ok() && theirs.ok() && theirs->tok_per_s > 0) {
                out[k.ratio] = mine->tok_per_s / theirs->tok_per_s;
            }
        }
    }
    row(a.name, "llama backend called directly", direct);
    if (direct.ok()) out["direct_tok_per_s"] = direct->tok_per_s;
    row("sequential", "eventloom llama backend, 1 slot", sequential);
    if (sequential.ok()) {
        out["sequential_tok_per_s"] = sequential->tok_per_s;
    } else {
        ++failures;
    }
    table.Print(std::cout);
    std::cout << out.dump() << std::endl;
    return failures == 0 ? 0 : 1;
}

}  // namespace eventloom::bench
