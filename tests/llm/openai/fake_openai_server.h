// FakeOpenAiServer: a test double of an OpenAI-compatible server. A small blocking HTTP/1.1
// server on 127.0.0.1 (an ephemeral port) that answers each request with the next scripted
// FakeResponse, or a default one when the script is used up, and records every request: when
// it arrived, its path, headers and body. It can also answer /embeddings requests itself
// (ServeEmbeddings).
//
// Each connection is served by its own thread and closed after one response (the body ends
// with the connection), except that a response may hold the connection open after its body
// until the client goes away or the server is destroyed: a server that stops talking, for
// deadline and cancellation tests.
//
// Thread-safe. The destructor stops accepting, closes held connections and joins its threads.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace eventloom::testing {

struct FakeResponse {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::vector<std::string> body_parts;  // sent one send() each, in order
    bool hold_open = false;               // keep the connection open after the body

    // A chat completion stream: one chunk per piece, a finish_reason chunk, a usage chunk when
    // `usage` (prompt, completion) is given, then [DONE].
    static FakeResponse ChatStream(const std::vector<std::string>& pieces,
                                   const std::string& finish_reason = "stop",
                                   std::optional<std::pair<int, int>> usage = std::nullopt);
    // The same for /completions ("text" instead of "delta.content").
    static FakeResponse CompletionStream(const std::vector<std::string>& pieces,
                                         const std::string& finish_reason = "stop",
                                         std::optional<std::pair<int, int>> usage = std::nullopt);
    // An event stream with these exact bytes.
    static FakeResponse RawStream(std::string body);
    // An error with a JSON (or any) body.
    static FakeResponse Error(int status, std::string body,
                              std::vector<std::pair<std::string, std::string>> headers = {});
    // One SSE event with `json` as its data.
    static std::string Event(const nlohmann::json& json);
    // A whole /embeddings response: one data item per (index, vector), in the order given.
    static FakeResponse Embeddings(const std::vector<std::pair<int, std::vector<float>>>& items);
};

struct ReceivedRequest {
    std::chrono::steady_clock::time_point arrived;
    std::string method;
    std::string path;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;

    // The body as JSON (null when it is not JSON).
    nlohmann::json Json() const;
};

class FakeOpenAiServer {
public:
    FakeOpenAiServer();
    ~FakeOpenAiServer();

    FakeOpenAiServer(const FakeOpenAiServer&) = delete;
    FakeOpenAiServer& operator=(const FakeOpenAiServer&) = delete;

    int port() const { return port_; }
    // "http://127.0.0.1:<port>/v1".
    std::string base_url() const;

    // Appends a response to the script.
    void Enqueue(FakeResponse response);
    // The answer once the script is used up (initially a two-piece chat stream).
    void SetDefault(FakeResponse response);
    // From now on, requests to a path ending in "/embeddings" that find the script used up are
    // answered from their body: FakeEmbedding(input, dimension) for each of its "input"
    // strings, listed in reverse index order (the API does not promise any order).
    void ServeEmbeddings(int dimension);
    // The vector served for `input`: deterministic, and not of unit length.
    static std::vector<float> FakeEmbedding(const std::string& input, int dimension);

    std::vector<ReceivedRequest> requests() const;
    size_t request_count() const;
    // Waits until at least `count` requests have arrived; false after `timeout`.
    bool WaitForRequests(size_t count, std::chrono::milliseconds timeout) const;

private:
    void AcceptLoop();
    void Serve(int fd);
    FakeResponse NextResponse(const ReceivedRequest& request);

    int listen_fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stopping_{false};
    std::thread acceptor_;

    mutable std::mutex mu_;
    mutable std::condition_variable arrived_;
    std::deque<FakeResponse> script_;        // guarded by mu_
    FakeResponse default_;                   // guarded by mu_
    int embedding_dimension_ = 0;            // guarded by mu_; 0: no /embeddings handler
    std::vector<ReceivedRequest> requests_;  // guarded by mu_
    std::vector<std::thread> connections_;   // guarded by mu_
};

}  // namespace eventloom::testing
