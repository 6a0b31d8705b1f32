#include "llm/llama/llama_backend.h"

#include <llama.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "llm/grammar/json_schema_grammar.h"
#include "llm/llama/llama_support.h"
#include "llm/text_output.h"

namespace eventloom::llm {

namespace {

using SteadyClock = std::chrono::steady_clock;

double MillisBetween(SteadyClock::time_point a, SteadyClock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

struct SamplerDeleter {
    void operator()(llama_sampler* s) const { llama_sampler_free(s); }
};
using SamplerPtr = std::unique_ptr<llama_sampler, SamplerDeleter>;

// One request, from Generate's call to its result. Lives on the caller's stack; the scheduler
// holds a pointer while it is queued or running and never touches it after `done`.
struct Job {
    const LlmRequest* request = nullptr;
    const TokenCallback* on_token = nullptr;
    std::vector<llama_token> prompt;
    SamplerPtr sampler;
    uint64_t order = 0;  // arrival order, the tie-break among equal priorities
    SteadyClock::time_point submitted;
    std::atomic<bool> cancelled{false};

    // Set by the scheduler under the backend's mutex.
    bool done = false;
    Status status;
    LlmResult result;
    std::condition_variable cv;
};

struct Slot {
    llama_seq_id seq = 0;
    Job* job = nullptr;
    // The tokens whose keys and values are in the cache for this sequence, in position order:
    // a prompt read so far, then the generated tokens that were fed back.
    std::vector<llama_token> tokens;
    uint64_t last_used = 0;

    // While the prompt's beginning is being computed by another slot, this one waits for it.
    Slot* wait_for = nullptr;
    Job* wait_job = nullptr;
    size_t wait_len = 0;

    // Generation state.
    bool generating = false;
    llama_token next = -1;  // sampled, not yet fed back
    int generated = 0;
    int batch_index = -1;   // where this slot's logits are in the current batch
    size_t batch_take = 0;  // prompt tokens this slot put into the current batch
    int reused = 0;
    std::unique_ptr<TextOutput> out;
    SteadyClock::time_point started, first_token;
};

size_t CommonPrefix(const std::vector<llama_token>& a, const std::vector<llama_token>& b) {
    size_t n = std::min(a.size(), b.size());
    size_t i = 0;
    while (i < n && a[i] == b[i]) ++i;
    return i;
}

class LlamaBackendImpl final : public LlamaBackend {
public:
    LlamaBackendImpl(const LlamaOptions& options, llama_model* model, llama_context* ctx,
                     std::string name)
        : options_(options), model_(model), ctx_(ctx), name_(std::move(name)) {
        vocab_ = llama_model_get_vocab(model_);
        mem_ = llama_get_memory(ctx_);
        int n_vocab = llama_vocab_n_tokens(vocab_);
        pieces_.resize(static_cast<size_t>(n_vocab));
        char buf[256];
        for (llama_token t = 0; t < n_vocab; ++t) {
            int n = llama_token_to_piece(vocab_, t, buf, sizeof(buf), 0, false);
            if (n > 0) pieces_[static_cast<size_t>(t)].assign(buf, static_cast<size_t>(n));
            if (llama_vocab_is_eog(vocab_, t)) eog_.push_back({t, -INFINITY});
        }
        const char* tmpl = llama_model_chat_template(model_, nullptr);
        chat_template_ = tmpl ? tmpl : "chatml";
        slots_.resize(static_cast<size_t>(options_.slots));
        for (size_t i = 0; i < slots_.size(); ++i) slots_[i].seq = static_cast<llama_seq_id>(i);
        batch_ = llama_batch_init(options_.batch, 0, 1);
        thread_ = std::thread([this] { Run(); });
    }

    ~LlamaBackendImpl() override {
        {
            std::lock_guard<std::mutex> lock(mu_);
            shutdown_ = true;
        }
        cv_.notify_all();
        thread_.join();
        llama_batch_free(batch_);
        llama_free(ctx_);
        llama_model_free(model_);
    }

    std::string_view kind() const override { return "llama"; }
    std::string model() const override { return name_; }

    LlamaStats stats() const override {
        std::lock_guard<std::mutex> lock(mu_);
        return stats_;
    }

    LlmLoad Load() const override {
        std::lock_guard<std::mutex> lock(mu_);
        LlmLoad load;
        load.slots = options_.slots;
        load.busy_slots = busy_;
        load.queued = static_cast<int>(queue_.size());
        load.queued_prompt_tokens = queued_prompt_tokens_;
        return load;
    }

    Result<int> CountPromptTokens(const LlmRequest& request) override {
        EVENTLOOM_ASSIGN_OR_RETURN(std::string text, Render(request));
        return static_cast<int>(Tokenize(text).size());
    }

    Result<LlmResult> Generate(const LlmRequest& request, const TokenCallback& on_token,
                               std::stop_token stop) override {
        EVENTLOOM_RETURN_IF_ERROR(Validate(request));
        Job job;
        job.request = &request;
        job.on_token = &on_token;
        EVENTLOOM_ASSIGN_OR_RETURN(std::string text, Render(request));
        job.prompt = Tokenize(text);
        if (job.prompt.empty()) return InvalidArgumentError(Where(request) + "the prompt is empty");
        if (static_cast<int>(job.prompt.size()) >= options_.context_per_slot) {
            return InvalidArgumentError(
                Where(request) + "the prompt has " + std::to_string(job.prompt.size()) +
                " tokens; the context holds " + std::to_string(options_.context_per_slot) +
                " per sequence (LlamaOptions::context_per_slot)");
        }
        EVENTLOOM_ASSIGN_OR_RETURN(job.sampler, MakeSampler(request));

        std::unique_lock<std::mutex> lock(mu_);
        if (shutdown_) return UnavailableError("llama backend: closed");
        job.submitted = SteadyClock::now();
        job.order = next_order_++;
        queue_.push_back(&job);
        queued_prompt_tokens_ += static_cast<int64_t>(job.prompt.size());
        cv_.notify_all();
        // The stop callback may run at once, on this thread: it only sets a flag and wakes
        // the scheduler, which settles the job.
        std::stop_callback on_stop(stop, [&] {
            job.cancelled = true;
            cv_.notify_all();
        });
        job.cv.wait(lock, [&] { return job.done; });
        if (!job.status.ok()) return job.status;
        return std::move(job.result);
    }

private:
    static std::string Where(const LlmRequest& r) {
        return r.id.empty() ? "llama: " : "llama: request '" + r.id + "': ";
    }

    Status Validate(const LlmRequest& r) const {
        if (r.max_tokens < 1) return InvalidArgumentError(Where(r) + "max_tokens must be >= 1");
        if (!(r.sampling.temperature >= 0)) {
            return InvalidArgumentError(Where(r) + "temperature must be >= 0");
        }
        if (!(r.sampling.top_p > 0 && r.sampling.top_p <= 1)) {
            return InvalidArgumentError(Where(r) + "top_p must be in (0, 1]");
        }
        if (r.sampling.top_k < 0) return InvalidArgumentError(Where(r) + "top_k must be >= 0");
        if (r.messages.empty() && r.prompt.empty()) {
            return InvalidArgumentError(Where(r) + "neither messages nor a prompt");
        }
        return Status::Ok();
    }

    Result<std::string> Render(const LlmRequest& r) const {
        if (r.messages.empty()) return r.prompt;
        std::vector<llama_chat_message> msgs;
        size_t chars = 0;
        for (const auto& m : r.messages) {
            msgs.push_back({m.role.c_str(), m.content.c_str()});
            chars += m.role.size() + m.content.size();
        }
        std::string out(2 * chars + 256, '\0');
        int n = llama_chat_apply_template(chat_template_.c_str(), msgs.data(), msgs.size(), true,
                                          out.data(), static_cast<int32_t>(out.size()));
        if (n > static_cast<int>(out.size())) {
            out.resize(static_cast<size_t>(n));
            n = llama_chat_apply_template(chat_template_.c_str(), msgs.data(), msgs.size(), true,
                                          out.data(), static_cast<int32_t>(out.size()));
        }
        if (n < 0) {
            return InvalidArgumentError(
                Where(r) +
                "the model's chat template is not one llama.cpp can apply; send a "
                "raw prompt instead");
        }
        out.resize(static_cast<size_t>(n));
        return out;
    }

    std::vector<llama_token> Tokenize(const std::string& text) const {
        return TokenizeText(vocab_, text, true, true);
    }

    Result<SamplerPtr> MakeSampler(const LlmRequest& r) const {
        SamplerPtr chain(llama_sampler_chain_init(llama_sampler_chain_default_params()));
        if (r.ignore_eos && !eog_.empty()) {
            llama_sampler_chain_add(
                chain.get(),
                llama_sampler_init_logit_bias(llama_vocab_n_tokens(vocab_),
                                              static_cast<int32_t>(eog_.size()), eog_.data()));
        }
        if (!r.json_schema.empty()) {
            auto gbnf = JsonSchemaToGbnf(r.json_schema);
            if (!gbnf.ok()) return gbnf.status().WithContext(Where(r) + "json_schema");
            llama_sampler* grammar = llama_sampler_init_grammar(vocab_, gbnf->c_str(), "root");
            if (!grammar) {
                return InvalidArgumentError(Where(r) +
                                            "json_schema: llama.cpp rejected the grammar made "
                                            "from it");
            }
            llama_sampler_chain_add(chain.get(), grammar);
        }
        const auto& s = r.sampling;
        if (s.temperature <= 0) {
            llama_sampler_chain_add(chain.get(), llama_sampler_init_greedy());
        } else {
            if (s.top_k > 0)
                llama_sampler_chain_add(chain.get(), llama_sampler_init_top_k(s.top_k));
            if (s.top_p < 1) {
                llama_sampler_chain_add(chain.get(), llama_sampler_init_top_p(s.top_p, 1));
            }
            llama_sampler_chain_add(chain.get(), llama_sampler_init_temp(s.temperature));
            llama_sampler_chain_add(chain.get(), llama_sampler_init_dist(s.seed));
        }
        return chain;
    }

    // ---- the scheduler thread ----

    void Run() {
        while (true) {
            {
                std::unique_lock<std::mutex> lock(mu_);
                if (busy_ == 0) {
                    cv_.wait(lock, [&] { return shutdown_ || !queue_.empty(); });
                    // Queued requests with deadlines are checked when there is a slot for
                    // them; an idle backend takes them at once, so no timed wait is needed.
                }
                if (shutdown_) break;
                SettleQueuedLocked(SteadyClock::now());
                AdmitLocked();
                RecountLocked();
            }
            SettleRunning(SteadyClock::now());
            if (!Step()) {
                std::unique_lock<std::mutex> lock(mu_);
                // Nothing could run (every active slot waits): let time pass.
                cv_.wait_for(lock, std::chrono::milliseconds(1));
            }
        }
        std::lock_guard<std::mutex> lock(mu_);
        for (Job* job : queue_) FinishLocked(job, UnavailableError("llama backend: closed"));
        queue_.clear();
        for (auto& slot : slots_) {
            if (slot.job) EndSlotLocked(slot, UnavailableError("llama backend: closed"));
        }
    }

    // Ends queued requests that were cancelled or ran out of time.
    void SettleQueuedLocked(SteadyClock::time_point now) {
        for (auto it = queue_.begin(); it != queue_.end();) {
            Job* job = *it;
            Status why;
            if (job->cancelled) {
                why = CancelledError(Where(*job->request) + "cancelled while queued");
            } else if (now >= job->request->deadline) {
                why = DeadlineExceededError(Where(*job->request) + "deadline passed while queued");
            }
            if (why.ok()) {
                ++it;
                continue;
            }
            FinishLocked(job, why);
            it = queue_.erase(it);
        }
    }

    void SettleRunning(SteadyClock::time_point now) {
        std::lock_guard<std::mutex> lock(mu_);
        for (auto& slot : slots_) {
            if (!slot.job) continue;
            if (slot.job->cancelled) {
                EndSlotLocked(slot, CancelledError(Where(*slot.job->request) + "cancelled"));
            } else if (now >= slot.job->request->deadline) {
                EndSlotLocked(slot, DeadlineExceededError(Where(*slot.job->request) +
                                                          "deadline passed while generating"));
            }
        }
    }

    // Gives free slots to queued requests, highest priority first, then oldest.
    void AdmitLocked() {
        while (!queue_.empty()) {
            Slot* slot = nullptr;
            for (auto& s : slots_) {
                if (!s.job) {
                    slot = &s;
                    break;
                }
            }
            if (!slot) return;
            auto best = std::min_element(queue_.begin(), queue_.end(), [](Job* a, Job* b) {
                if (a->request->priority != b->request->priority) {
                    return a->request->priority > b->request->priority;
                }
                return a->order < b->order;
            });
            Job* job = *best;
            queue_.erase(best);
            Assign(job);
        }
    }

    // Puts `job` in the free slot whose cache serves it best, and arranges the reuse of a
    // cached prompt beginning.
    void Assign(Job* job) {
        const auto& prompt = job->prompt;
        // At least the prompt's last token is computed: its logits pick the first new token.
        size_t limit = options_.prefix_cache ? prompt.size() - 1 : 0;

        Slot* slot = nullptr;
        size_t own = 0;
        for (auto& s : slots_) {
            if (s.job) continue;
            size_t l = std::min(CommonPrefix(s.tokens, prompt), limit);
            if (!slot || l > own || (l == own && s.last_used < slot->last_used)) {
                slot = &s;
                own = l;
            }
        }
        // Another sequence may hold (or be computing) a longer beginning.
        Slot* source = nullptr;
        size_t shared = own;
        for (auto& s : slots_) {
            if (&s == slot || limit == 0) continue;
            const auto& known = s.job ? s.job->prompt : s.tokens;
            size_t l = std::min(CommonPrefix(known, prompt), limit);
            if (l > shared) {
                source = &s;
                shared = l;
            }
        }

        slot->job = job;
        slot->last_used = ++use_counter_;
        slot->generating = false;
        slot->generated = 0;
        slot->next = -1;
        slot->out = std::make_unique<TextOutput>(job->request->stop);
        slot->started = SteadyClock::now();
        slot->wait_for = nullptr;
        slot->wait_job = nullptr;
        ++busy_;

        if (source && source->job && source->tokens.size() < shared) {
            // The other sequence is still computing the shared part: wait for it.
            DropFrom(*slot, 0);
            slot->wait_for = source;
            slot->wait_job = source->job;
            slot->wait_len = shared;
        } else if (source) {
            CopyPrefix(*source, *slot, shared);
        } else {
            DropFrom(*slot, own);
            slot->reused = static_cast<int>(own);
        }
        stats_.prompt_tokens_reused += slot->reused;
    }

    // Keeps the first `keep` cached tokens of the slot's sequence.
    void DropFrom(Slot& slot, size_t keep) {
        if (slot.tokens.size() > keep) {
            llama_memory_seq_rm(mem_, slot.seq, static_cast<llama_pos>(keep), -1);
            slot.tokens.resize(keep);
        }
        slot.reused = 0;
    }

    // Gives `to` the first `len` cached tokens of `from`.
    void CopyPrefix(const Slot& from, Slot& to, size_t len) {
        len = std::min(len, CommonPrefix(from.tokens, to.job->prompt));
        len = std::min(len, to.job->prompt.size() - 1);
        size_t own = CommonPrefix(to.tokens, to.job->prompt);
        if (own >= len) {
            DropFrom(to, own);
            to.reused = static_cast<int>(own);
            return;
        }
        llama_memory_seq_rm(mem_, to.seq, -1, -1);
        if (options_.kv_unified) {
            // One buffer: the cells become the other sequence's too, nothing is copied.
            llama_memory_seq_cp(mem_, from.seq, to.seq, 0, static_cast<llama_pos>(len));
        } else {
            // A buffer per sequence: llama.cpp copies whole buffers (a memory copy at the next
            // decode call, far cheaper than computing the tokens), then the rest is dropped.
            llama_memory_seq_cp(mem_, from.seq, to.seq, -1, -1);
            llama_memory_seq_rm(mem_, to.seq, static_cast<llama_pos>(len), -1);
        }
        to.tokens.assign(to.job->prompt.begin(), to.job->prompt.begin() + static_cast<long>(len));
        to.reused = static_cast<int>(len);
    }

    // Resolves waits whose source has computed the shared part, or went away.
    void ResolveWaits() {
        for (auto& slot : slots_) {
            if (!slot.job || !slot.wait_for) continue;
            Slot& src = *slot.wait_for;
            bool still_computing =
                src.job == slot.wait_job && src.tokens.size() < slot.wait_len && !src.generating;
            if (still_computing) continue;
            slot.wait_for = nullptr;
            slot.wait_job = nullptr;
            CopyPrefix(src, slot, slot.wait_len);
            std::lock_guard<std::mutex> lock(mu_);
            stats_.prompt_tokens_reused += slot.reused;
        }
    }

    // One decode call: a token for every generating sequence, then prompt chunks. Returns
    // false when there was nothing to run.
    bool Step() {
        ResolveWaits();
        batch_.n_tokens = 0;
        int generating = 0;
        for (auto& slot : slots_) {
            slot.batch_index = -1;
            slot.batch_take = 0;
            if (!slot.job || !slot.generating) continue;
            slot.batch_index = Add(slot.next, slot.tokens.size(), slot.seq, true);
            ++generating;
        }
        int budget = options_.batch - batch_.n_tokens;
        if (generating > 0) budget = std::min(budget, std::max(1, options_.batch / 2));

        // Prompts: higher priority first, then the older request.
        std::vector<Slot*> reading;
        for (auto& slot : slots_) {
            if (slot.job && !slot.generating && !slot.wait_for) reading.push_back(&slot);
        }
        std::sort(reading.begin(), reading.end(), [](Slot* a, Slot* b) {
            if (a->job->request->priority != b->job->request->priority) {
                return a->job->request->priority > b->job->request->priority;
            }
            return a->job->order < b->job->order;
        });
        int prefilling = 0;
        for (Slot* slot : reading) {
            if (budget <= 0) break;
            const auto& prompt = slot->job->prompt;
            size_t pos = slot->tokens.size();
            size_t take = std::min(prompt.size() - pos, static_cast<size_t>(budget));
            for (size_t i = 0; i < take; ++i) {
                bool last = pos + i + 1 == prompt.size();
                int index = Add(prompt[pos + i], pos + i, slot->seq, last);
                if (last) slot->batch_index = index;
            }
            slot->batch_take = take;
            budget -= static_cast<int>(take);
            ++prefilling;
        }
        if (batch_.n_tokens == 0) return false;

        int rc = llama_decode(ctx_, batch_);
        if (rc == 1) {
            // No room in the cache: drop what idle slots keep cached, then try once more.
            EvictIdle();
            rc = llama_decode(ctx_, batch_);
        }
        if (rc != 0) {
            FailBatch(rc);
            return true;
        }

        int sequences = 0;
        {
            std::lock_guard<std::mutex> lock(mu_);
            ++stats_.decode_calls;
            if (generating > 0 && prefilling > 0) ++stats_.mixed_decode_calls;
        }
        for (auto& slot : slots_) {
            if (!slot.job) continue;
            if (slot.batch_take > 0) {
                const auto& prompt = slot.job->prompt;
                size_t pos = slot.tokens.size();
                slot.tokens.insert(slot.tokens.end(), prompt.begin() + static_cast<long>(pos),
                                   prompt.begin() + static_cast<long>(pos + slot.batch_take));
                std::lock_guard<std::mutex> lock(mu_);
                stats_.prompt_tokens_computed += static_cast<int64_t>(slot.batch_take);
            } else if (slot.generating && slot.batch_index >= 0) {
                slot.tokens.push_back(slot.next);
            }
            if (slot.batch_index >= 0 || slot.batch_take > 0) ++sequences;
            if (slot.batch_index >= 0) Sample(slot);
        }
        std::lock_guard<std::mutex> lock(mu_);
        stats_.max_sequences_in_batch = std::max(stats_.max_sequences_in_batch, sequences);
        RecountLocked();
        return true;
    }

    // Prompt tokens still to compute: queued prompts and the unread rest of running ones.
    void RecountLocked() {
        int64_t n = 0;
        for (const Job* job : queue_) n += static_cast<int64_t>(job->prompt.size());
        for (const auto& slot : slots_) {
            if (slot.job && !slot.generating) {
                n += static_cast<int64_t>(slot.job->prompt.size() -
                                          std::min(slot.tokens.size(), slot.job->prompt.size()));
            }
        }
        queued_prompt_tokens_ = n;
    }

    int Add(llama_token token, size_t pos, llama_seq_id seq, bool logits) {
        int i = batch_.n_tokens++;
        batch_.token[i] = token;
        batch_.pos[i] = static_cast<llama_pos>(pos);
        batch_.n_seq_id[i] = 1;
        batch_.seq_id[i][0] = seq;
        batch_.logits[i] = logits ? 1 : 0;
        return i;
    }

    void Sample(Slot& slot) {
        Job* job = slot.job;
        const LlmRequest& r = *job->request;
        llama_token token = llama_sampler_sample(job->sampler.get(), ctx_, slot.batch_index);
        auto now = SteadyClock::now();
        if (slot.generated == 0) slot.first_token = now;
        ++slot.generated;
        {
            std::lock_guard<std::mutex> lock(mu_);
            ++stats_.generated_tokens;
        }
        if (llama_vocab_is_eog(vocab_, token)) {
            Complete(slot, "stop");
            return;
        }
        std::string released = slot.out->Add(pieces_[static_cast<size_t>(token)]);
        if (*job->on_token) (*job->on_token)(released);
        if (slot.out->stopped()) {
            Complete(slot, "stop");
        } else if (slot.generated >= r.max_tokens ||
                   static_cast<int>(slot.tokens.size()) + 1 >= options_.context_per_slot) {
            Complete(slot, "length");
        } else {
            slot.generating = true;
            slot.next = token;
        }
    }

    void Complete(Slot& slot, const char* finish_reason) {
        Job* job = slot.job;
        std::string rest = slot.out->Finish();
        if (!rest.empty() && *job->on_token) (*job->on_token)(rest);
        auto now = SteadyClock::now();
        LlmResult result;
        result.text = slot.out->text();
        result.finish_reason = finish_reason;
        result.usage.prompt_tokens = static_cast<int>(job->prompt.size());
        result.usage.completion_tokens = slot.generated;
        result.usage.cached_prompt_tokens = slot.reused;
        result.usage.queued_ms = MillisBetween(job->submitted, slot.started);
        result.usage.ttft_ms = MillisBetween(job->submitted, slot.first_token);
        result.usage.decode_ms = MillisBetween(slot.first_token, now);
        std::lock_guard<std::mutex> lock(mu_);
        job->result = std::move(result);
        EndSlotLocked(slot, Status::Ok());
    }

    // Frees the slot at once; its cached tokens stay for reuse.
    void EndSlotLocked(Slot& slot, const Status& status) {
        Job* job = slot.job;
        if (slot.wait_for) {
            // Its cache holds nothing useful yet.
            slot.wait_for = nullptr;
            slot.wait_job = nullptr;
        }
        slot.job = nullptr;
        slot.generating = false;
        slot.out.reset();
        --busy_;
        FinishLocked(job, status);
    }

    void FinishLocked(Job* job, const Status& status) {
        job->status = status;
        job->done = true;
        job->cv.notify_all();
    }

    void EvictIdle() {
        std::lock_guard<std::mutex> lock(mu_);
        for (auto& slot : slots_) {
            if (slot.job || slot.tokens.empty()) continue;
            llama_memory_seq_rm(mem_, slot.seq, -1, -1);
            slot.tokens.clear();
            ++stats_.cache_evictions;
        }
    }

    // The decode call failed: end the requests it carried.
    void FailBatch(int rc) {
        std::lock_guard<std::mutex> lock(mu_);
        Status status = rc == 1
                            ? ResourceExhaustedError("llama: no room in the KV cache for the batch")
                            : InternalError("llama: decoding failed (llama_decode returned " +
                                            std::to_string(rc) + ")");
        if (rc < 0 || rc > 1) {
            // The cache may hold part of the batch: start from an empty one.
            llama_memory_clear(mem_, true);
            for (auto& slot : slots_) slot.tokens.clear();
        }
        for (auto& slot : slots_) {
            if (slot.job && (slot.batch_index >= 0 || slot.batch_take > 0)) {
                llama_memory_seq_rm(mem_, slot.seq, -1, -1);
                slot.tokens.clear();
                EndSlotLocked(slot, status.WithContext(Where(*slot.job->request)));
            }
        }
    }

    const LlamaOptions options_;
    llama_model* model_;
    llama_context* ctx_;
    const llama_vocab* vocab_ = nullptr;
    llama_memory_t mem_ = nullptr;
    std::string name_;
    std::string chat_template_;
    std::vector<std::string> pieces_;
    std::vector<llama_logit_bias> eog_;
    llama_batch batch_{};

    // The scheduler thread alone touches slots_ and the context; mu_ guards the queue, the
    // counters and the jobs' results.
    std::vector<Slot> slots_;
    uint64_t use_counter_ = 0;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<Job*> queue_;
    uint64_t next_order_ = 0;
    int busy_ = 0;
    int64_t queued_prompt_tokens_ = 0;
    LlamaStats stats_;
    bool shutdown_ = false;
    std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<LlamaBackend>> OpenLlama(const LlamaOptions& options) {
    LlamaOptions o = options;
    if (o.slots < 1) return InvalidArgumentError("llama: slots must be >= 1");
    if (o.context_per_slot < 16)
        return InvalidArgumentError("llama: context_per_slot must be >= 16");
    if (o.context == 0) o.context = o.slots * o.context_per_slot;
    if (o.context < o.context_per_slot) {
        return InvalidArgumentError("llama: context must hold at least one slot's context");
    }
    if (o.batch < 1) return InvalidArgumentError("llama: batch must be >= 1");
    if (o.threads <= 0)
        o.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

    EVENTLOOM_ASSIGN_OR_RETURN(LlamaModelPtr model, LoadLlamaModel(o.model_path, o.gpu_layers));

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = static_cast<uint32_t>(o.context);
    cp.n_batch = static_cast<uint32_t>(o.batch);
    cp.n_ubatch = static_cast<uint32_t>(o.batch);
    cp.n_seq_max = static_cast<uint32_t>(o.slots);
    cp.n_threads = o.threads;
    cp.n_threads_batch = o.threads;
    cp.kv_unified = o.kv_unified;
    cp.no_perf = true;
    EVENTLOOM_ASSIGN_OR_RETURN(LlamaContextPtr ctx, NewLlamaContext(model.get(), cp, o.model_path));

    std::string name = std::filesystem::path(o.model_path).stem().string();
    char buf[256];
    if (llama_model_meta_val_str(model.get(), "general.name", buf, sizeof(buf)) > 0) name = buf;
    logging::Get("llm")->info("llama: loaded model={} slots={} context={} threads={}", name,
                              o.slots, o.context, o.threads);
    return std::unique_ptr<LlamaBackend>(
        new LlamaBackendImpl(o, model.release(), ctx.release(), std::move(name)));
}

}  // namespace eventloom::llm

namespace eventloom {

Result<std::unique_ptr<LlmBackend>> OpenLlamaBackend(const LlamaOptions& options) {
    EVENTLOOM_ASSIGN_OR_RETURN(auto backend, llm::OpenLlama(options));
    return std::unique_ptr<LlmBackend>(std::move(backend));
}

}  // namespace eventloom
