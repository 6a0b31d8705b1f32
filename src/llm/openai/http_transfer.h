// One HTTP POST through libcurl whose response body is handed over as it arrives, and that can
// be stopped at once from another thread (a std::stop_token) or by a deadline.
//
// Each transfer runs in a curl multi handle owned by its CurlConnection, so that a stop request
// wakes the transfer's poll immediately (curl_multi_wakeup) rather than at the next progress
// callback, and so that the connection stays open in the multi handle's cache for the next
// transfer on the same CurlConnection (keep-alive).
//
// A CurlConnection is used by one thread at a time; the backend keeps a pool of them.
// REQUIRES: curl_global_init has been called.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "eventloom/status.h"

namespace eventloom::openai {

class CurlConnection {
public:
    // InternalError when libcurl cannot allocate its handles.
    static Result<std::unique_ptr<CurlConnection>> Create();
    ~CurlConnection();

    CurlConnection(const CurlConnection&) = delete;
    CurlConnection& operator=(const CurlConnection&) = delete;

    CURL* easy() const { return easy_; }
    CURLM* multi() const { return multi_; }

private:
    CurlConnection(CURL* easy, CURLM* multi) : easy_(easy), multi_(multi) {}

    CURL* easy_;
    CURLM* multi_;
};

struct HttpRequest {
    std::string url;
    std::string body{};                  // sent as is
    std::vector<std::string> headers{};  // "Name: value"
    std::chrono::milliseconds connect_timeout{5'000};
    Clock::TimePoint deadline = Clock::TimePoint::max();  // the whole transfer
};

// The head of the response, as known so far (the status line and headers arrive before any
// body byte, so a body sink sees them complete), and how the transfer ended.
struct HttpResponse {
    long status = 0;  // 0: no status line was received
    std::string content_type;
    // Retry-After (seconds or a date) or retry-after-ms, whichever came last.
    std::optional<std::chrono::milliseconds> retry_after;

    CURLcode curl_code = CURLE_OK;
    std::string curl_error;          // libcurl's message when curl_code is not OK
    bool cancelled = false;          // the stop token was triggered
    bool deadline_exceeded = false;  // the deadline passed
    Status sink_status;              // the sink's error, which ended the transfer
};

// Receives the body piece by piece. A non-OK status ends the transfer; Perform returns it in
// HttpResponse::sink_status.
using BodySink = std::function<Status(const HttpResponse& head, std::string_view bytes)>;

// Runs the POST to completion, to an error, to the deadline or until `stop`. Never throws.
HttpResponse Perform(CurlConnection& connection, const HttpRequest& request, const BodySink& sink,
                     std::stop_token stop);

// libcurl's global initialisation, once per process whoever calls first; never cleaned up, as
// other users may share it. InternalError when it failed.
Status InitCurlOnce();

// Failures of the connection itself, before or during the response: worth another attempt when
// nothing was streamed yet.
bool IsConnectionFailure(CURLcode code);

// HTTP statuses worth another attempt: 429, 500, 502, 503, 504.
bool IsRetriedHttpStatus(long status);

// The status for an HTTP error response, with the server's message from its body and its
// Retry-After (carried by WithRetryAfter, runtime/retry.h):
//   401, 403   FailedPrecondition, naming the API key variable `api_key_env` (`key_set`: whether
//              it held a key)
//   429        ResourceExhausted
//   other 4xx  InvalidArgument
//   otherwise  Unavailable
Status HttpErrorStatus(const HttpResponse& response, std::string_view body,
                       std::string_view api_key_env, bool key_set);

}  // namespace eventloom::openai
