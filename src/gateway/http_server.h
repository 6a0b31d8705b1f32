// HttpServer: the gateway's HTTP/1.1 transport (Boost.Beast behind this Beast-free header).
//
// It accepts connections, reads one request at a time from each (keep-alive; a client that
// pipelines waits for the previous response), and hands every complete request to the handler
// as an Exchange. Whole responses carry Content-Length; streamed ones (server-sent events) use
// chunked transfer encoding on HTTP/1.1, or end by closing the connection on HTTP/1.0.
//
// The transport answers on its own, without calling the handler, only what it cannot parse:
// 400 for malformed HTTP, 413 for a body over `max_body_bytes` (checked against Content-Length
// before the body is read, so `Expect: 100-continue` clients are refused without sending it),
// and then closes the connection. It answers `Expect: 100-continue` with 100 Continue.
//
// Threads: `threads` I/O threads run every socket operation, timer and posted callback. The
// handler and Exchange callbacks run on them and must be quick (post slow work elsewhere).
//
// Ownership and thread-safety: HttpServer and Exchange methods are thread-safe. An Exchange
// keeps its connection alive while anyone holds it; after the connection closes, its methods
// do nothing. Callbacks are never called after Stop() returns, nor from destructors.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "eventloom/status.h"

namespace eventloom::gateway::internal {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
    std::string method;  // "GET", as sent
    std::string target;  // "/v1/jobs/abc?wait=1"
    std::string path;    // "/v1/jobs/abc" (not percent-decoded)
    std::string query;   // "wait=1"
    Headers headers;     // names in lowercase, in the order sent
    std::string body;
    std::string remote;  // the client's address, "127.0.0.1"
    int version = 11;    // 10 or 11

    // The first header named `name` (lowercase), or nullptr.
    const std::string* Header(std::string_view name) const;
};

struct HttpResponse {
    int status = 200;
    std::string content_type = "application/json";
    Headers headers;  // besides Content-Type, Content-Length and Connection
    std::string body;
};

// One request and its response.
class Exchange {
public:
    virtual ~Exchange() = default;

    virtual const HttpRequest& request() const = 0;

    // Sends a whole response. Only the first of Respond and StartStream counts.
    virtual void Respond(HttpResponse response) = 0;
    // Starts a streamed response with `status` and `headers` (which name the Content-Type);
    // Write sends bytes of its body as they come, End finishes it.
    virtual void StartStream(int status, Headers headers) = 0;
    virtual void Write(std::string bytes) = 0;
    virtual void End() = 0;

    // `callback` runs once when the exchange is over: `completed` once the whole response was
    // handed to the socket, false when the connection closed first (the client went away, a
    // write timed out, the server stopped). `status` is the status sent, 0 for none. Added
    // after the exchange is over, it runs at once on the calling thread.
    using FinishCallback = std::function<void(int status, bool completed)>;
    virtual void OnFinish(FinishCallback callback) = 0;
};

// A callback scheduled with HttpServer::After.
class Timer {
public:
    virtual ~Timer() = default;
    // The callback will not run (unless it is running already). Idempotent.
    virtual void Cancel() = 0;
};

struct HttpServerOptions {
    std::string host = "127.0.0.1";  // an address or a name to resolve
    uint16_t port = 0;               // 0 picks a free port
    int threads = 2;
    size_t max_body_bytes = 1 << 20;
    size_t max_header_bytes = 64 << 10;
    // How long a connection may stay idle between requests, or take to send one.
    std::chrono::milliseconds idle_timeout{60'000};
    // How long one write may wait for a client that does not read.
    std::chrono::milliseconds write_timeout{30'000};
    // A streamed response whose client lets more than this pile up unsent is cut off.
    size_t max_pending_bytes = 8 << 20;
    // The body of the transport's own 400 and 413 answers; empty: plain text.
    std::function<HttpResponse(int status, std::string message)> error_response;
};

class HttpServer {
public:
    // Called on an I/O thread for every complete request.
    using Handler = std::function<void(std::shared_ptr<Exchange>)>;

    // Binds the address. InvalidArgument for a host that is no address and does not resolve;
    // Unavailable when the address cannot be bound. Nothing is accepted before Run().
    static Result<std::unique_ptr<HttpServer>> Listen(HttpServerOptions options, Handler handler);
    // Starts the I/O threads: connections are accepted and the handler called from here on.
    void Run();
    ~HttpServer();  // Stop()
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    uint16_t port() const;
    // Open connections.
    size_t connections() const;

    // Runs `callback` on an I/O thread after `delay`, unless cancelled first or stopped.
    std::shared_ptr<Timer> After(std::chrono::milliseconds delay, std::function<void()> callback);

    // Closes the listening socket; connections already open go on.
    void StopAccepting();
    // From now on a finished response closes its connection instead of reading another.
    void CloseWhenIdle();
    // Stops accepting, closes every connection (their exchanges finish as not completed),
    // cancels every timer and joins the I/O threads. Idempotent.
    void Stop();

    class Impl;  // in http_server.cc

private:
    explicit HttpServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// "host:port", "[v6 address]:port", ":port" or "port" (an empty host is 127.0.0.1).
// InvalidArgument naming the problem for anything else.
Result<std::pair<std::string, uint16_t>> ParseListenAddress(std::string_view listen);

// The reason phrase of an HTTP status ("Not Found"); "Unknown" for codes it does not know.
std::string_view StatusReason(int status);

}  // namespace eventloom::gateway::internal
