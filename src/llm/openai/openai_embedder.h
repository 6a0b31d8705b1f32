// The openai embedder: POST {base_url}/embeddings on any OpenAI-compatible server (OpenAI,
// llama-server --embeddings, vLLM, Ollama), as a TextEmbedder (llm/embedding.h).
//
// An Embed call sends the non-empty texts in requests of at most `max_batch` inputs, one after
// the other, with the body {"model": model, "input": [texts]} ("model" left out when empty)
// and the bearer key read from $api_key_env at Open. Each response must hold one vector per
// input, all of the embedder's dimension; vectors are put in order by their "index" field and
// L2-normalised here (whether or not the server did). Empty texts get the zero vector without
// being sent (the OpenAI API refuses empty inputs).
//
// A request that fails with 429, 500, 502, 503, 504 or a failed connection is tried again up
// to `max_retries` times, after the server's Retry-After or an exponential backoff with
// jitter (runtime/retry.h). Each attempt has `request_timeout`.
//
// llama-server: start it with --embeddings, a pooling type other than none, and --kv-unified
// when it has several slots (-np): without it, the llama-server we build (llama.cpp de3ff81) gave
// the longer of two inputs of one request a different vector than that input sent alone.
//
// Thread-safety: Embed may be called from any number of threads; each call uses a pooled
// connection of its own.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "eventloom/status.h"
#include "llm/embedding.h"

namespace eventloom::llm {

struct OpenAiEmbedderOptions {
    std::string base_url = "http://127.0.0.1:8080/v1";  // the server's API root
    std::string model;                                  // sent as "model"; may be empty
    std::string api_key_env = "OPENAI_API_KEY";  // the key is read from this variable, if set
    // The vectors' dimension. 0: learned at Open by embedding one short text (a request to the
    // server); otherwise Open sends nothing and every response is checked against it.
    int dimension = 0;
    int max_batch = 64;  // inputs per request
    std::chrono::milliseconds connect_timeout{5'000};
    std::chrono::milliseconds request_timeout{60'000};  // one attempt of one request
    int max_retries = 2;
    std::chrono::milliseconds retry_initial{500};
    std::chrono::milliseconds retry_max{30'000};
};

// Errors, of Open and of Embed; every message names the URL:
//   InvalidArgument     a bad option; HTTP 4xx other than 401, 403 and 429 (a model the server
//                       does not have, an input too long), with the server's message
//   FailedPrecondition  HTTP 401 or 403: the API key (names api_key_env); vectors of another
//                       dimension than the embedder's
//   ResourceExhausted   HTTP 429 after the last attempt, with the server's Retry-After
//   Unavailable         HTTP 5xx, connection failures, malformed responses (not JSON, the wrong
//                       number of vectors, indexes out of range or repeated, vectors of
//                       different lengths in one response)
//   DeadlineExceeded    an attempt took longer than request_timeout
// fingerprint() is "openai/<model>/<dimension>", the model being "default" when empty.
Result<std::unique_ptr<TextEmbedder>> OpenOpenAiEmbedder(const OpenAiEmbedderOptions& options);

}  // namespace eventloom::llm
