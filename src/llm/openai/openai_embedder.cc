#include "llm/openai/openai_embedder.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "common/logging.h"
#include "llm/openai/http_transfer.h"
#include "llm/openai/openai_protocol.h"
#include "runtime/retry.h"

namespace eventloom::llm {
namespace {

using nlohmann::json;
using openai::CurlConnection;
using openai::HttpRequest;
using openai::HttpResponse;

// Response bodies kept; a batch of 64 vectors of 3072 floats is about 4 MB of JSON.
constexpr size_t kMaxBodyBytes = 256 << 20;
constexpr char kProbeText[] = "dimension probe";

Status Malformed(const std::string& what) {
    return UnavailableError("malformed response: " + what);
}

// The vectors of one /embeddings response to `inputs` inputs, in input order. `dimension` 0
// accepts any (consistent) length.
Result<std::vector<std::vector<float>>> ParseEmbeddings(std::string_view body, size_t inputs,
                                                        int dimension) {
    const json parsed = json::parse(body, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) {
        return Malformed("not a JSON object: " + openai::Abbreviate(body));
    }
    const auto data = parsed.find("data");
    if (data == parsed.end() || !data->is_array()) return Malformed("no \"data\" array");
    if (data->size() != inputs) {
        return Malformed(std::to_string(data->size()) + " vectors for " + std::to_string(inputs) +
                         " inputs");
    }

    std::vector<std::vector<float>> vectors(inputs);
    std::vector<bool> seen(inputs, false);
    size_t length = static_cast<size_t>(dimension);  // 0: the first vector's
    for (size_t i = 0; i < data->size(); ++i) {
        const json& item = (*data)[i];
        const std::string where = "data[" + std::to_string(i) + "]";
        if (!item.is_object()) return Malformed(where + " is not an object");

        // Servers send "index"; without it, the position is the index.
        size_t index = i;
        if (const auto at = item.find("index"); at != item.end()) {
            if (!at->is_number_integer() || at->get<int64_t>() < 0 ||
                static_cast<uint64_t>(at->get<int64_t>()) >= inputs) {
                return Malformed(where + ".index is not an input's index: " + at->dump());
            }
            index = static_cast<size_t>(at->get<int64_t>());
        }
        if (seen[index]) return Malformed("index " + std::to_string(index) + " appears twice");
        seen[index] = true;

        const auto embedding = item.find("embedding");
        if (embedding == item.end() || !embedding->is_array() || embedding->empty()) {
            return Malformed(where + ".embedding is not an array of numbers");
        }
        std::vector<float>& v = vectors[index];
        v.reserve(embedding->size());
        for (const json& x : *embedding) {
            if (!x.is_number()) return Malformed(where + ".embedding holds " + x.dump());
            v.push_back(x.get<float>());
        }
        if (length == 0) length = v.size();
        if (v.size() != length) {
            const std::string message =
                where + " has " + std::to_string(v.size()) + " numbers, " +
                (dimension > 0 ? "the embedder's dimension is " : "the first vector has ") +
                std::to_string(length);
            return dimension > 0
                       ? FailedPreconditionError("vectors of another dimension: " + message)
                       : Malformed("vectors of different lengths: " + message);
        }
    }
    for (std::vector<float>& v : vectors) NormalizeL2(v);
    return vectors;
}

class OpenAiEmbedder final : public TextEmbedder {
public:
    OpenAiEmbedder(const OpenAiEmbedderOptions& options, std::string url, std::string api_key)
        : options_(options),
          url_(std::move(url)),
          api_key_(std::move(api_key)),
          retry_policy_{.max_attempts = options.max_retries + 1,
                        .initial_delay = options.retry_initial,
                        .max_delay = options.retry_max,
                        .multiplier = 2.0,
                        .jitter = 0.5},
          rng_(std::random_device{}()) {
        SetDimension(options.dimension);
    }

    // Learns the dimension by embedding one text. Only before the embedder is shared.
    Status Probe() {
        const std::string text = kProbeText;
        EVENTLOOM_ASSIGN_OR_RETURN(auto vectors, Request(std::span<const std::string>(&text, 1)));
        SetDimension(static_cast<int>(vectors[0].size()));
        return Status::Ok();
    }

    int dimension() const override { return dimension_; }
    std::string fingerprint() const override { return fingerprint_; }

    Result<std::vector<std::vector<float>>> Embed(std::span<const std::string> texts) override {
        std::vector<std::vector<float>> out(texts.size(),
                                            std::vector<float>(static_cast<size_t>(dimension_)));

        // The non-empty texts, in requests of at most max_batch inputs.
        std::vector<size_t> sent;
        std::vector<std::string> inputs;
        for (size_t i = 0; i < texts.size(); ++i) {
            if (texts[i].empty()) continue;
            sent.push_back(i);
            inputs.push_back(texts[i]);
        }
        const size_t batch = static_cast<size_t>(options_.max_batch);
        for (size_t first = 0; first < inputs.size(); first += batch) {
            const size_t count = std::min(batch, inputs.size() - first);
            EVENTLOOM_ASSIGN_OR_RETURN(
                auto vectors, Request(std::span<const std::string>(inputs.data() + first, count)));
            for (size_t j = 0; j < count; ++j) out[sent[first + j]] = std::move(vectors[j]);
        }
        return out;
    }

private:
    void SetDimension(int dimension) {
        dimension_ = dimension;
        fingerprint_ = "openai/" +
                       (options_.model.empty() ? std::string("default") : options_.model) + "/" +
                       std::to_string(dimension);
    }

    // One request and its retries: the vectors of `inputs`, in order, normalised.
    Result<std::vector<std::vector<float>>> Request(std::span<const std::string> inputs) {
        json body = {{"input", json::array()}};
        if (!options_.model.empty()) body["model"] = options_.model;
        for (const std::string& input : inputs) body["input"].push_back(input);
        HttpRequest http{.url = url_,
                         .body = body.dump(-1, ' ', false, json::error_handler_t::replace),
                         .headers = {"Content-Type: application/json", "Expect:"},
                         .connect_timeout = options_.connect_timeout};
        if (!api_key_.empty()) http.headers.push_back("Authorization: Bearer " + api_key_);
        const std::string what = "openai embedder POST " + url_;

        EVENTLOOM_ASSIGN_OR_RETURN(std::unique_ptr<CurlConnection> connection, TakeConnection());
        Result<std::vector<std::vector<float>>> result = Malformed("no attempt");
        for (int attempt = 1;; ++attempt) {
            bool retry = false;
            http.deadline = SaturatingAdd(Clock::Real()->Now(), options_.request_timeout);
            result = Attempt(*connection, http, inputs.size(), retry);
            if (result.ok() || !retry) break;
            if (attempt > options_.max_retries) {
                result = result.status().WithContext(std::to_string(attempt) + " attempts");
                break;
            }
            const std::chrono::milliseconds delay = NextDelay(result.status(), attempt);
            logging::Get("llm")->debug("{} attempt={} failed ({}); retried after {}ms", what,
                                       attempt, result.status().ToString(), delay.count());
            std::this_thread::sleep_for(delay);
        }
        ReturnConnection(std::move(connection));
        if (!result.ok()) return result.status().WithContext(what);
        return result;
    }

    // One POST and its response. `retry`: the failure may pass on another attempt.
    Result<std::vector<std::vector<float>>> Attempt(CurlConnection& connection,
                                                    const HttpRequest& http, size_t inputs,
                                                    bool& retry) {
        std::string kept;
        const openai::BodySink sink = [&](const HttpResponse&, std::string_view bytes) {
            if (kept.size() + bytes.size() > kMaxBodyBytes) {
                return UnavailableError("response larger than " +
                                        std::to_string(kMaxBodyBytes >> 20) + " MiB");
            }
            kept.append(bytes);
            return Status::Ok();
        };
        const HttpResponse response = openai::Perform(connection, http, sink, {});

        if (response.deadline_exceeded) {
            return DeadlineExceededError("no response within request_timeout (" +
                                         std::to_string(options_.request_timeout.count()) + "ms)");
        }
        if (!response.sink_status.ok()) return response.sink_status;
        if (response.curl_code != CURLE_OK) {
            retry = openai::IsConnectionFailure(response.curl_code);
            return UnavailableError("connection failed: " + response.curl_error);
        }
        if (response.status / 100 != 2) {
            retry = openai::IsRetriedHttpStatus(response.status);
            return openai::HttpErrorStatus(response, kept, options_.api_key_env, !api_key_.empty());
        }
        return ParseEmbeddings(kept, inputs, dimension_);
    }

    std::chrono::milliseconds NextDelay(const Status& status, int attempt) {
        std::lock_guard lock(mu_);
        return RetryDelay(status, retry_policy_, attempt, rng_);
    }

    Result<std::unique_ptr<CurlConnection>> TakeConnection() {
        {
            std::lock_guard lock(mu_);
            if (!idle_.empty()) {
                std::unique_ptr<CurlConnection> connection = std::move(idle_.back());
                idle_.pop_back();
                return connection;
            }
        }
        return CurlConnection::Create();
    }

    void ReturnConnection(std::unique_ptr<CurlConnection> connection) {
        std::lock_guard lock(mu_);
        idle_.push_back(std::move(connection));
    }

    const OpenAiEmbedderOptions options_;
    const std::string url_;      // {base_url}/embeddings
    const std::string api_key_;  // empty: no Authorization header
    const RetryPolicy retry_policy_;
    // Set at construction or by Probe, before the embedder is shared; fixed afterwards.
    int dimension_ = 0;
    std::string fingerprint_;

    std::mutex mu_;
    std::mt19937_64 rng_;                                // guarded by mu_
    std::vector<std::unique_ptr<CurlConnection>> idle_;  // guarded by mu_
};

Status ValidateOptions(const OpenAiEmbedderOptions& o, const std::string& base_url) {
    const size_t scheme = base_url.starts_with("http://")    ? 7
                          : base_url.starts_with("https://") ? 8
                                                             : 0;
    if (scheme == 0 || base_url.size() <= scheme) {
        return InvalidArgumentError(
            "openai embedder base_url must be an http:// or https:// URL, got '" + o.base_url +
            "'");
    }
    if (o.dimension < 0) return InvalidArgumentError("openai embedder dimension is negative");
    if (o.max_batch < 1) return InvalidArgumentError("openai embedder max_batch must be >= 1");
    if (o.max_retries < 0) return InvalidArgumentError("openai embedder max_retries is negative");
    if (o.connect_timeout.count() <= 0 || o.request_timeout.count() <= 0) {
        return InvalidArgumentError(
            "openai embedder connect_timeout and request_timeout must be positive");
    }
    if (o.retry_initial.count() < 0 || o.retry_max < o.retry_initial) {
        return InvalidArgumentError(
            "openai embedder retry_initial must not be negative nor above retry_max");
    }
    return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<TextEmbedder>> OpenOpenAiEmbedder(const OpenAiEmbedderOptions& options) {
    std::string base_url = options.base_url;
    while (base_url.ends_with('/')) base_url.pop_back();
    EVENTLOOM_RETURN_IF_ERROR(ValidateOptions(options, base_url));
    EVENTLOOM_RETURN_IF_ERROR(openai::InitCurlOnce());

    // The key is read once, here: changing the variable later needs a new embedder.
    std::string api_key;
    if (!options.api_key_env.empty()) {
        if (const char* value = std::getenv(options.api_key_env.c_str())) api_key = value;
    }
    auto embedder =
        std::make_unique<OpenAiEmbedder>(options, base_url + "/embeddings", std::move(api_key));
    if (options.dimension == 0) EVENTLOOM_RETURN_IF_ERROR(embedder->Probe());
    logging::Get("llm")->info("openai embedder: url={}/embeddings model={} dimension={}", base_url,
                              options.model.empty() ? "default" : options.model,
                              embedder->dimension());
    return std::unique_ptr<TextEmbedder>(std::move(embedder));
}

}  // namespace eventloom::llm
