// The llama backend on the tiny test model (written by the llm_tiny_model ctest fixture):
// real llama.cpp compute, gibberish text. Tests compare token counts, finish reasons and the
// scheduler's counters; text is compared only between runs of the same build.
#include "llm/llama/llama_backend.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "llm/grammar/json_schema_grammar.h"
#include "support/temp_dir.h"

namespace eventloom::llm {
namespace {

using namespace std::chrono_literals;

LlamaOptions Options(int slots = 4) {
    LlamaOptions o;
    o.model_path = EVENTLOOM_TINY_MODEL;
    o.slots = slots;
    o.context_per_slot = 512;
    // One thread: llama.cpp's workers spin at barriers, and a test machine running other
    // tests at the same time would make two threads crawl.
    o.threads = 1;
    o.batch = 128;
    return o;
}

std::unique_ptr<LlamaBackend> Open(const LlamaOptions& o) {
    auto backend = OpenLlama(o);
    EXPECT_TRUE(backend.ok()) << backend.status().ToString();
    return backend.ok() ? std::move(*backend) : nullptr;
}

LlmRequest Greedy(std::string prompt, int max_tokens) {
    LlmRequest r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;
    r.ignore_eos = true;
    return r;
}

std::string Words(int n, const std::string& seed) {
    std::string s;
    for (int i = 0; i < n; ++i) s += seed + std::to_string(i % 17) + " ";
    return s;
}

// Several tests hold the scheduler inside one request's first token (on_token runs on the
// scheduler thread) until the requests that follow are queued, so they are admitted together.
void WaitForQueued(const LlamaBackend& backend, int n) {
    while (backend.Load().queued != n) std::this_thread::sleep_for(1ms);
}

TEST(LlamaBackend, GeneratesExactlyMaxTokensWhenEosIsIgnored) {
    auto backend = Open(Options(1));
    ASSERT_TRUE(backend);
    int calls = 0;
    auto r = backend->Generate(Greedy("The quick brown fox", 24),
                               [&](std::string_view) { ++calls; }, {});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->usage.completion_tokens, 24);
    EXPECT_EQ(r->finish_reason, "length");
    EXPECT_GE(calls, 24);
    EXPECT_GT(r->usage.prompt_tokens, 3);
    EXPECT_EQ(backend->model(), "eventloom-test-tiny");
    EXPECT_EQ(backend->kind(), "llama");
}

TEST(LlamaBackend, SameSeedSameText) {
    // Two fresh backends: the same computation, so the same logits and the same draws. (On one
    // backend the second run would take its prompt from the cache and compute only the last
    // prompt token, in a batch of a different shape, which may change the logits' last bits.)
    LlmRequest r = Greedy("Once upon a time", 16);
    r.sampling.temperature = 0.9f;
    r.sampling.seed = 42;
    std::vector<std::string> texts;
    for (int i = 0; i < 2; ++i) {
        auto backend = Open(Options(1));
        ASSERT_TRUE(backend);
        auto result = backend->Generate(r);
        ASSERT_TRUE(result.ok());
        texts.push_back(result->text);
    }
    EXPECT_EQ(texts[0], texts[1]);
    EXPECT_FALSE(texts[0].empty());
    r.sampling.seed = 43;
    auto backend = Open(Options(1));
    auto other = backend->Generate(r);
    ASSERT_TRUE(other.ok());
    EXPECT_NE(other->text, texts[0]);
}

TEST(LlamaBackend, ConcurrentSequencesShareTheBatchAndFinishWithTheirCounts) {
    auto backend = Open(Options(4));
    ASSERT_TRUE(backend);
    const int kRequests = 6;
    std::vector<Result<LlmResult>> results(kRequests, InternalError("not run"));
    std::vector<std::thread> threads;
    std::atomic<bool> gated{false};
    // The first request holds the scheduler at its first token until the others are queued.
    threads.emplace_back([&] {
        results[0] = backend->Generate(Greedy("first request", 40),
                                       [&](std::string_view) {
                                           if (gated.exchange(true)) return;
                                           WaitForQueued(*backend, kRequests - 1);
                                       },
                                       {});
    });
    while (!gated) std::this_thread::sleep_for(1ms);
    for (int i = 1; i < kRequests; ++i) {
        threads.emplace_back([&, i] {
            results[static_cast<size_t>(i)] =
                backend->Generate(Greedy("request number " + std::to_string(i), 10 + i * 3));
        });
    }
    for (auto& t : threads) t.join();
    ASSERT_TRUE(results[0].ok()) << results[0].status().ToString();
    EXPECT_EQ(results[0]->usage.completion_tokens, 40);
    for (int i = 1; i < kRequests; ++i) {
        ASSERT_TRUE(results[static_cast<size_t>(i)].ok());
        EXPECT_EQ(results[static_cast<size_t>(i)]->usage.completion_tokens, 10 + i * 3);
    }
    EXPECT_EQ(backend->stats().max_sequences_in_batch, 4);
    EXPECT_EQ(backend->Load().busy_slots, 0);
    EXPECT_EQ(backend->Load().queued_prompt_tokens, 0);
}

TEST(LlamaBackend, LongPromptIsReadInChunksBetweenDecodeSteps) {
    LlamaOptions o = Options(2);
    o.batch = 32;  // prompt chunks of 16 tokens while another sequence generates
    auto backend = Open(o);
    ASSERT_TRUE(backend);
    std::atomic<bool> gated{false};
    std::atomic<bool> long_started{false};
    std::atomic<int> tokens_during_long_prefill{0};
    std::thread first([&] {
        auto r = backend->Generate(Greedy("short", 60),
                                   [&](std::string_view) {
                                       if (!gated.exchange(true)) {
                                           WaitForQueued(*backend, 1);
                                           return;
                                       }
                                       if (!long_started) ++tokens_during_long_prefill;
                                   },
                                   {});
        EXPECT_TRUE(r.ok());
    });
    while (!gated) std::this_thread::sleep_for(1ms);
    auto r = backend->Generate(Greedy(Words(60, "long"), 4),
                               [&](std::string_view) { long_started = true; }, {});
    first.join();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_GT(r->usage.prompt_tokens, 100);
    // The long prompt took several steps, and the short sequence produced a token in each.
    EXPECT_GE(tokens_during_long_prefill.load(), r->usage.prompt_tokens / 16 - 1);
    EXPECT_GT(backend->stats().mixed_decode_calls, 0);
}

TEST(LlamaBackend, PrefixReuseGivesTheSameTokensAsNoReuse) {
    std::string system = Words(40, "system");
    std::vector<std::string> prompts = {system + "first question", system + "second one",
                                        system + "and a third"};
    auto run = [&](bool reuse, LlamaStats* stats, std::vector<int>* cached) {
        LlamaOptions o = Options(2);
        o.prefix_cache = reuse;
        auto backend = Open(o);
        std::vector<std::string> out;
        for (const auto& p : prompts) {
            auto r = backend->Generate(Greedy(p, 12));
            EXPECT_TRUE(r.ok()) << r.status().ToString();
            out.push_back(r.ok() ? r->text : "");
            cached->push_back(r.ok() ? r->usage.cached_prompt_tokens : -1);
        }
        *stats = backend->stats();
        return out;
    };
    LlamaStats with, without;
    std::vector<int> cached_with, cached_without;
    auto a = run(true, &with, &cached_with);
    auto b = run(false, &without, &cached_without);
    EXPECT_EQ(a, b);
    EXPECT_EQ(cached_without, (std::vector<int>{0, 0, 0}));
    EXPECT_EQ(cached_with[0], 0);
    EXPECT_GT(cached_with[1], 60);
    EXPECT_GT(cached_with[2], 60);
    EXPECT_EQ(with.prompt_tokens_computed + with.prompt_tokens_reused,
              without.prompt_tokens_computed);
}

TEST(LlamaBackend, ConcurrentRequestsComputeASharedPrefixOnce) {
    auto backend = Open(Options(4));
    ASSERT_TRUE(backend);
    std::string system = Words(60, "shared");
    std::atomic<bool> gated{false};
    std::vector<Result<LlmResult>> results(5, InternalError("not run"));
    std::vector<std::thread> threads;
    threads.emplace_back([&] {
        results[0] = backend->Generate(Greedy("unrelated", 30),
                                       [&](std::string_view) {
                                           if (gated.exchange(true)) return;
                                           WaitForQueued(*backend, 4);
                                       },
                                       {});
    });
    while (!gated) std::this_thread::sleep_for(1ms);
    for (int i = 1; i < 5; ++i) {
        threads.emplace_back([&, i] {
            results[static_cast<size_t>(i)] =
                backend->Generate(Greedy(system + "question " + std::to_string(i), 8));
        });
    }
    for (auto& t : threads) t.join();
    int prefix = 0;
    int reused = 0;
    for (int i = 1; i < 5; ++i) {
        ASSERT_TRUE(results[static_cast<size_t>(i)].ok());
        prefix = std::max(prefix, results[static_cast<size_t>(i)]->usage.prompt_tokens);
        reused += results[static_cast<size_t>(i)]->usage.cached_prompt_tokens;
    }
    // Three of the four took the shared beginning from the first one that computed it.
    EXPECT_GT(reused, 3 * (prefix - 10));
}

TEST(LlamaBackend, CancellationFreesTheSlot) {
    auto backend = Open(Options(1));
    ASSERT_TRUE(backend);
    std::stop_source stop;
    int tokens = 0;
    auto r = backend->Generate(
        Greedy("cancel me", 400),
        [&](std::string_view) {
            if (++tokens == 3) stop.request_stop();
        },
        stop.get_token());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kCancelled);
    EXPECT_LT(tokens, 400);
    EXPECT_EQ(backend->Load().busy_slots, 0);
    auto next = backend->Generate(Greedy("after", 5));
    ASSERT_TRUE(next.ok());
    EXPECT_EQ(next->usage.completion_tokens, 5);
}

TEST(LlamaBackend, DeadlineEndsAGenerationAndFreesTheSlot) {
    auto backend = Open(Options(1));
    ASSERT_TRUE(backend);
    LlmRequest r = Greedy("deadline", 450);
    r.deadline = std::chrono::steady_clock::now() + 100ms;
    // At least 1 ms per token: 450 tokens cannot beat the deadline.
    auto result =
        backend->Generate(r, [&](std::string_view) { std::this_thread::sleep_for(1ms); }, {});
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), StatusCode::kDeadlineExceeded);
    EXPECT_EQ(backend->Load().busy_slots, 0);

    LlmRequest late = Greedy("already late", 5);
    late.deadline = std::chrono::steady_clock::now() - 1ms;
    auto l = backend->Generate(late);
    ASSERT_FALSE(l.ok());
    EXPECT_EQ(l.status().code(), StatusCode::kDeadlineExceeded);
    EXPECT_TRUE(backend->Generate(Greedy("fine", 3)).ok());
}

TEST(LlamaBackend, HigherPriorityTakesTheFreeSlotFirst) {
    auto backend = Open(Options(1));
    ASSERT_TRUE(backend);
    std::atomic<bool> gated{false};
    std::mutex mu;
    std::vector<int> order;
    std::vector<std::thread> threads;
    threads.emplace_back([&] {
        auto r = backend->Generate(Greedy("holder", 3),
                                   [&](std::string_view) {
                                       if (gated.exchange(true)) return;
                                       WaitForQueued(*backend, 3);
                                   },
                                   {});
        EXPECT_TRUE(r.ok());
    });
    while (!gated) std::this_thread::sleep_for(1ms);
    for (int priority : {0, 5, 1}) {
        threads.emplace_back([&, priority] {
            LlmRequest r = Greedy("p" + std::to_string(priority), 2);
            r.priority = priority;
            auto result = backend->Generate(r);
            EXPECT_TRUE(result.ok());
            std::lock_guard<std::mutex> lock(mu);
            order.push_back(priority);
        });
        // Queue them one at a time so arrival order differs from priority order.
        WaitForQueued(*backend, static_cast<int>(threads.size()) - 1);
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(order, (std::vector<int>{5, 1, 0}));
}

TEST(LlamaBackend, StopSequenceEndsTheTextBeforeIt) {
    auto backend = Open(Options(1));
    ASSERT_TRUE(backend);
    auto full = backend->Generate(Greedy("stop sequences", 30));
    ASSERT_TRUE(full.ok());
    ASSERT_GT(full->text.size(), 12u);
    // A piece from the middle of the greedy text stops the same generation right before it.
    size_t at = full->text.size() / 2;
    std::string stop = full->text.substr(at, 4);
    size_t first = full->text.find(stop);
    LlmRequest r = Greedy("stop sequences", 30);
    r.stop = {stop};
    std::string streamed;
    auto cut = backend->Generate(r, [&](std::string_view p) { streamed += p; }, {});
    ASSERT_TRUE(cut.ok());
    EXPECT_EQ(cut->finish_reason, "stop");
    EXPECT_EQ(cut->text, full->text.substr(0, first));
    EXPECT_EQ(streamed, cut->text);
}

TEST(LlamaBackend, ChatMessagesUseTheModelsTemplate) {
    auto backend = Open(Options(1));
    ASSERT_TRUE(backend);
    LlmRequest chat;
    chat.messages = {{"system", "You are terse."}, {"user", "Hello"}};
    chat.max_tokens = 4;
    chat.ignore_eos = true;
    auto tokens = backend->CountPromptTokens(chat);
    ASSERT_TRUE(tokens.ok());
    LlmRequest plain = Greedy("You are terse. Hello", 4);
    auto plain_tokens = backend->CountPromptTokens(plain);
    ASSERT_TRUE(plain_tokens.ok());
    EXPECT_GT(*tokens, *plain_tokens + 5);  // role markers from the ChatML template
    auto r = backend->Generate(chat);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->usage.prompt_tokens, *tokens);
}

TEST(LlamaBackend, JsonSchemaOutputMatchesTheSchema) {
    auto backend = Open(Options(2));
    ASSERT_TRUE(backend);
    std::string schema = R"({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "mood": {"enum": ["calm", "busy", "late"]},
            "tags": {"type": "array", "items": {"type": "boolean"}, "maxItems": 3}
        },
        "required": ["name", "mood", "tags"]
    })";
    for (uint32_t seed : {1u, 2u, 3u}) {
        LlmRequest r;
        r.prompt = "Answer in JSON:";
        r.json_schema = schema;
        r.max_tokens = 200;
        r.sampling.seed = seed;
        auto result = backend->Generate(r);
        ASSERT_TRUE(result.ok()) << result.status().ToString();
        EXPECT_EQ(result->finish_reason, "stop") << result->text;
        auto parsed = nlohmann::json::parse(result->text, nullptr, false);
        ASSERT_FALSE(parsed.is_discarded()) << result->text;
        EXPECT_TRUE(ValidateJsonAgainstSchema(nlohmann::json::parse(schema), parsed).ok())
            << result->text;
    }
}

TEST(LlamaBackend, BadRequestsAreInvalidArguments) {
    auto backend = Open(Options(1));
    ASSERT_TRUE(backend);
    auto too_long = backend->Generate(Greedy(Words(400, "long"), 4));
    ASSERT_FALSE(too_long.ok());
    EXPECT_EQ(too_long.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(too_long.status().message().find("context"), std::string::npos);

    LlmRequest schema = Greedy("x", 4);
    schema.json_schema = R"({"type": "string", "pattern": "a+"})";
    auto bad_schema = backend->Generate(schema);
    ASSERT_FALSE(bad_schema.ok());
    EXPECT_EQ(bad_schema.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(bad_schema.status().message().find("pattern"), std::string::npos);

    EXPECT_EQ(backend->Generate(Greedy("", 4)).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(backend->Generate(Greedy("x", 0)).status().code(), StatusCode::kInvalidArgument);
    // The backend still serves.
    EXPECT_TRUE(backend->Generate(Greedy("still here", 2)).ok());
}

TEST(LlamaBackend, BadModelFilesAreClearErrors) {
    testing::TempDir dir;
    LlamaOptions o = Options(1);
    o.model_path = dir.Sub("missing.gguf");
    auto missing = OpenLlama(o);
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
    EXPECT_NE(missing.status().message().find("missing.gguf"), std::string::npos);

    o.model_path = dir.Sub("garbage.gguf");
    std::ofstream(o.model_path) << "this is not a model file at all";
    auto garbage = OpenLlama(o);
    ASSERT_FALSE(garbage.ok());
    EXPECT_EQ(garbage.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(garbage.status().message().find("garbage.gguf"), std::string::npos);
}

}  // namespace
}  // namespace eventloom::llm
