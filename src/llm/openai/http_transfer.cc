#include "llm/openai/http_transfer.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <mutex>

#include "llm/openai/openai_protocol.h"
#include "runtime/retry.h"

namespace eventloom::openai {
namespace {

// Longest wait in one poll: an upper bound on how late a deadline is noticed if libcurl has
// no timer of its own due sooner.
constexpr std::chrono::milliseconds kMaxPoll{250};

struct TransferState {
    HttpResponse* response;
    const BodySink* sink;
};

bool StartsWithNoCase(std::string_view text, std::string_view prefix) {
    if (text.size() < prefix.size()) return false;
    for (size_t i = 0; i < prefix.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(text[i])) !=
            std::tolower(static_cast<unsigned char>(prefix[i]))) {
            return false;
        }
    }
    return true;
}

std::string_view TrimLine(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
        text.remove_suffix(1);
    }
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
        text.remove_prefix(1);
    }
    return text;
}

// The value of "Name: value" when the line is that header; nullopt otherwise.
std::optional<std::string_view> HeaderValue(std::string_view line, std::string_view name) {
    if (!StartsWithNoCase(line, name) || line.size() <= name.size() || line[name.size()] != ':') {
        return std::nullopt;
    }
    return TrimLine(line.substr(name.size() + 1));
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
    auto* state = static_cast<TransferState*>(user);
    HttpResponse& response = *state->response;
    const std::string_view line(data, size * count);

    // A status line starts a new head (after "100 Continue", for one).
    if (line.starts_with("HTTP/")) {
        response.status = 0;
        response.content_type.clear();
        response.retry_after.reset();
        const size_t space = line.find(' ');
        if (space != std::string_view::npos) {
            response.status =
                std::strtol(std::string(line.substr(space + 1, 3)).c_str(), nullptr, 10);
        }
        return size * count;
    }

    if (auto value = HeaderValue(line, "content-type")) {
        response.content_type = std::string(*value);
    } else if (auto value = HeaderValue(line, "retry-after-ms")) {
        if (auto ms = ParseRetryAfterMs(*value)) response.retry_after = ms;
    } else if (auto value = HeaderValue(line, "retry-after")) {
        if (auto ms = ParseRetryAfter(*value, std::chrono::system_clock::now())) {
            response.retry_after = ms;
        }
    }
    return size * count;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
    auto* state = static_cast<TransferState*>(user);
    const size_t bytes = size * count;
    if (bytes == 0) return 0;

    Status status = (*state->sink)(*state->response, std::string_view(data, bytes));
    if (status.ok()) return bytes;
    state->response->sink_status = std::move(status);
    return 0;  // not the size given: libcurl ends the transfer with CURLE_WRITE_ERROR
}

// Puts the request's options on the easy handle, from a clean state.
void Configure(CURL* easy, const HttpRequest& request, curl_slist* headers, TransferState* state,
               char* error_buffer) {
    curl_easy_reset(easy);
    curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &OnHeader);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, state);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &OnBody);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, state);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::max<int64_t>(request.connect_timeout.count(), 1)));
}

// Drives the transfer until it ends, `stop` is triggered or the deadline passes.
void Drive(CURLM* multi, const HttpRequest& request, std::stop_token stop, HttpResponse& response) {
    // Wakes the poll below the moment a stop is requested, from whatever thread.
    std::stop_callback wake(stop, [multi] { curl_multi_wakeup(multi); });

    while (true) {
        int running = 0;
        const CURLMcode code = curl_multi_perform(multi, &running);
        if (code != CURLM_OK) {
            response.curl_code = CURLE_FAILED_INIT;
            response.curl_error = curl_multi_strerror(code);
            return;
        }
        if (running == 0) break;
        if (stop.stop_requested()) {
            response.cancelled = true;
            return;
        }
        const Clock::TimePoint now = Clock::Real()->Now();
        if (now >= request.deadline) {
            response.deadline_exceeded = true;
            return;
        }

        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(request.deadline - now);
        const auto wait =
            std::clamp(left + std::chrono::milliseconds(1), std::chrono::milliseconds(1), kMaxPoll);
        curl_multi_poll(multi, nullptr, 0, static_cast<int>(wait.count()), nullptr);
    }

    // The transfer is over: read how it ended.
    int left = 0;
    while (CURLMsg* message = curl_multi_info_read(multi, &left)) {
        if (message->msg == CURLMSG_DONE) response.curl_code = message->data.result;
    }
}

}  // namespace

Result<std::unique_ptr<CurlConnection>> CurlConnection::Create() {
    CURL* easy = curl_easy_init();
    CURLM* multi = curl_multi_init();
    if (easy == nullptr || multi == nullptr) {
        if (easy != nullptr) curl_easy_cleanup(easy);
        if (multi != nullptr) curl_multi_cleanup(multi);
        return InternalError("libcurl could not create a handle");
    }
    return std::unique_ptr<CurlConnection>(new CurlConnection(easy, multi));
}

CurlConnection::~CurlConnection() {
    curl_multi_cleanup(multi_);
    curl_easy_cleanup(easy_);
}

HttpResponse Perform(CurlConnection& connection, const HttpRequest& request, const BodySink& sink,
                     std::stop_token stop) {
    HttpResponse response;
    TransferState state{&response, &sink};
    char error_buffer[CURL_ERROR_SIZE] = {};

    // The header list lives until the transfer is removed from the multi handle.
    curl_slist* headers = nullptr;
    for (const std::string& header : request.headers) {
        headers = curl_slist_append(headers, header.c_str());
    }
    std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> free_headers(headers,
                                                                             &curl_slist_free_all);

    Configure(connection.easy(), request, headers, &state, error_buffer);
    const CURLMcode added = curl_multi_add_handle(connection.multi(), connection.easy());
    if (added != CURLM_OK) {
        response.curl_code = CURLE_FAILED_INIT;
        response.curl_error = curl_multi_strerror(added);
        return response;
    }
    Drive(connection.multi(), request, stop, response);
    // Removing an unfinished transfer closes its connection; a finished one stays cached.
    curl_multi_remove_handle(connection.multi(), connection.easy());
    // Nothing may point into this frame once it returns.
    curl_easy_setopt(connection.easy(), CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_setopt(connection.easy(), CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(connection.easy(), CURLOPT_POSTFIELDS, nullptr);

    if (response.curl_code != CURLE_OK) {
        response.curl_error = error_buffer[0] != '\0' ? std::string(error_buffer)
                                                      : curl_easy_strerror(response.curl_code);
    }
    return response;
}

Status InitCurlOnce() {
    static std::once_flag once;
    static CURLcode code = CURLE_OK;
    std::call_once(once, [] { code = curl_global_init(CURL_GLOBAL_DEFAULT); });
    if (code != CURLE_OK) {
        return InternalError(std::string("libcurl initialisation failed: ") +
                             curl_easy_strerror(code));
    }
    return Status::Ok();
}

bool IsConnectionFailure(CURLcode code) {
    switch (code) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:  // the connect timeout; our deadline is checked apart
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
            return true;
        default:
            return false;
    }
}

bool IsRetriedHttpStatus(long status) {
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

Status HttpErrorStatus(const HttpResponse& response, std::string_view body,
                       std::string_view api_key_env, bool key_set) {
    const long status = response.status;
    std::string message = "http " + std::to_string(status) + ": " + ErrorMessageFromBody(body);
    if (status == 401 || status == 403) {
        message += api_key_env.empty() ? "; no API key variable is configured (api_key_env)"
                                       : "; check the API key in $" + std::string(api_key_env) +
                                             (key_set ? "" : " (not set)");
        return FailedPreconditionError(std::move(message));
    }

    Status error;
    if (status == 429) {
        error = ResourceExhaustedError(std::move(message));
    } else if (status >= 400 && status < 500) {
        error = InvalidArgumentError(std::move(message));
    } else {
        error = UnavailableError(std::move(message));
    }
    return response.retry_after ? WithRetryAfter(error, *response.retry_after) : error;
}

}  // namespace eventloom::openai
