// One synchronous HTTP request through libcurl, and what its outcome means for a stage: the
// transport shared by the webhook sender and the http stage. Internal to the outbound library.
//
// Perform() runs one request to completion, to its timeout, or until `cancelled` says so (it
// is polled while the transfer runs, at least once a second). Only http and https URLs are
// accepted; redirects are not followed (a 3xx is an answer like any other). The response body
// is kept up to `max_response_bytes`.
//
// Transport outcomes (the Status of Perform):
//   connection refused or reset, name not resolved, timeout, any other transfer error
//                                               -> Unavailable (retry with backoff)
//   a malformed URL or a scheme other than http/https -> InvalidArgument (dead-letter)
//   a response body above max_response_bytes    -> FailedPrecondition (unless truncated)
//   `cancelled` returned true                   -> Cancelled (the runner releases the event)
// A response of any HTTP status is OK for Perform; ReplyStatus() then judges it:
//   2xx -> OK; 408, 429, 5xx -> Unavailable carrying the server's Retry-After (retry.h's
//   WithRetryAfter); anything else (3xx, other 4xx) -> FailedPrecondition. Messages name the
//   method, the URL (without user info or query, which may hold credentials) and the status.
//
// Ownership and thread-safety: HttpClient keeps a pool of libcurl handles (and so their
// connection caches, for keep-alive) and is thread-safe: each call takes a handle of its own.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "eventloom/status.h"

namespace eventloom::pipeline::outbound_internal {

struct HttpCall {
    std::string method = "POST";                // GET, POST, PUT, PATCH, DELETE
    std::string url;                            // http:// or https://
    std::vector<std::string> headers;           // "Name: value"
    std::optional<std::string> body;            // nullopt: no body
    std::chrono::milliseconds timeout{10'000};  // the whole request
    std::chrono::milliseconds connect_timeout{5'000};
    size_t max_response_bytes = 4 << 20;
    // What happens past max_response_bytes: false fails the call (FailedPrecondition), true
    // keeps the first max_response_bytes and reads the rest into nothing.
    bool truncate_response = false;
    std::function<bool()> cancelled;  // empty: never
};

struct HttpReply {
    long status = 0;
    std::string body;
    std::string content_type;
    // Retry-After (seconds or an HTTP date) or retry-after-ms, whichever came last.
    std::optional<std::chrono::milliseconds> retry_after;
};

class HttpClient {
public:
    HttpClient() = default;
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    Result<HttpReply> Perform(const HttpCall& call);

private:
    void* TakeHandle();
    void GiveBack(void* handle);

    std::mutex mu_;
    std::vector<void*> idle_;  // CURL* handles; guarded by mu_
};

// How a reply settles a call (see above). `url` is shortened with UrlForMessages.
Status ReplyStatus(std::string_view method, std::string_view url, const HttpReply& reply);

// `url` without user info and query string: "https://user:pw@host/p?q=1" -> "https://host/p".
std::string UrlForMessages(std::string_view url);

// True when `url` starts with "http://" or "https://" (case-insensitive) and has a host.
bool IsHttpUrl(std::string_view url);

}  // namespace eventloom::pipeline::outbound_internal
