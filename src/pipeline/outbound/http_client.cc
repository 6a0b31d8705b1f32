// HttpClient over libcurl's easy interface (http_client.h).
#include "pipeline/outbound/http_client.h"

#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <mutex>

#include "llm/openai/openai_protocol.h"
#include "runtime/retry.h"

namespace eventloom::pipeline::outbound_internal {

namespace {

// Handles kept for reuse; more are closed after their call.
constexpr size_t kMaxIdleHandles = 16;

void InitCurlOnce() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

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

std::string_view Trim(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
        text.remove_prefix(1);
    }
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
        text.remove_suffix(1);
    }
    return text;
}

// What the callbacks of one transfer fill in.
struct Transfer {
    const HttpCall* call = nullptr;
    HttpReply reply;
    bool too_large = false;
    bool cancelled = false;
};

size_t OnBody(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const size_t n = size * count;
    if (t->reply.body.size() + n > t->call->max_response_bytes) {
        if (t->call->truncate_response) {
            t->reply.body.append(data, t->call->max_response_bytes - t->reply.body.size());
            return n;
        }
        t->too_large = true;
        return 0;  // ends the transfer with CURLE_WRITE_ERROR
    }
    t->reply.body.append(data, n);
    return n;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const size_t n = size * count;
    const std::string_view line(data, n);
    if (StartsWithNoCase(line, "HTTP/")) {
        t->reply.retry_after.reset();  // a new response head (after a 100 Continue)
    } else if (StartsWithNoCase(line, "retry-after-ms:")) {
        if (auto ms = openai::ParseRetryAfterMs(Trim(line.substr(15)))) t->reply.retry_after = ms;
    } else if (StartsWithNoCase(line, "retry-after:")) {
        if (auto ms =
                openai::ParseRetryAfter(Trim(line.substr(12)), std::chrono::system_clock::now())) {
            t->reply.retry_after = ms;
        }
    }
    return n;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* t = static_cast<Transfer*>(user);
    if (t->call->cancelled && t->call->cancelled()) {
        t->cancelled = true;
        return 1;  // ends the transfer with CURLE_ABORTED_BY_CALLBACK
    }
    return 0;
}

std::string_view ReasonPhrase(long status) {
    switch (status) {
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 409:
            return "Conflict";
        case 410:
            return "Gone";
        case 413:
            return "Content Too Large";
        case 422:
            return "Unprocessable Content";
        case 429:
            return "Too Many Requests";
        case 500:
            return "Internal Server Error";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        default:
            return "";
    }
}

}  // namespace

std::string UrlForMessages(std::string_view url) {
    std::string_view rest = url;
    std::string scheme;
    if (const size_t at = rest.find("://"); at != std::string_view::npos) {
        scheme = std::string(rest.substr(0, at + 3));
        rest.remove_prefix(at + 3);
    }
    rest = rest.substr(0, rest.find_first_of("?#"));
    const size_t slash = rest.find('/');
    const size_t user = rest.substr(0, slash).rfind('@');
    if (user != std::string_view::npos) rest.remove_prefix(user + 1);
    return scheme + std::string(rest);
}

bool IsHttpUrl(std::string_view url) {
    size_t host = 0;
    if (StartsWithNoCase(url, "http://")) {
        host = 7;
    } else if (StartsWithNoCase(url, "https://")) {
        host = 8;
    } else {
        return false;
    }
    return url.size() > host && url[host] != '/' && url[host] != '?' && url[host] != '#';
}

HttpClient::~HttpClient() {
    for (void* handle : idle_) curl_easy_cleanup(static_cast<CURL*>(handle));
}

void* HttpClient::TakeHandle() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (!idle_.empty()) {
            void* handle = idle_.back();
            idle_.pop_back();
            return handle;
        }
    }
    InitCurlOnce();
    return curl_easy_init();
}

void HttpClient::GiveBack(void* handle) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (idle_.size() < kMaxIdleHandles) {
            idle_.push_back(handle);
            return;
        }
    }
    curl_easy_cleanup(static_cast<CURL*>(handle));
}

Result<HttpReply> HttpClient::Perform(const HttpCall& call) {
    const std::string where = fmt::format("{} {}", call.method, UrlForMessages(call.url));
    if (!IsHttpUrl(call.url)) {
        return InvalidArgumentError(fmt::format("{}: expected an http:// or https:// URL", where));
    }
    CURL* curl = static_cast<CURL*>(TakeHandle());
    if (curl == nullptr) return InternalError(where + ": libcurl cannot allocate a handle");
    curl_easy_reset(curl);  // keeps the handle's connection cache

    // The request: method, URL, headers, body, limits.
    Transfer t;
    t.call = &call;
    char error[CURL_ERROR_SIZE] = {0};
    curl_slist* headers = nullptr;
    for (const std::string& h : call.headers) headers = curl_slist_append(headers, h.c_str());
    headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
    curl_easy_setopt(curl, CURLOPT_URL, call.url.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(std::max<int64_t>(call.timeout.count(), 1)));
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::max<int64_t>(
                         std::min(call.connect_timeout, call.timeout).count(), 1)));
    if (call.method == "GET") {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    } else if (call.method == "POST") {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
    } else {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, call.method.c_str());
    }
    if (call.body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, call.body->data());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                         static_cast<curl_off_t>(call.body->size()));
    } else if (call.method == "POST") {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(0));
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
    }
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, OnProgress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);

    // Run it, then read the head.
    const CURLcode code = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    char* content_type = nullptr;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &content_type);
    if (content_type != nullptr) t.reply.content_type = content_type;
    // Nothing of this call may stay referenced by the pooled handle.
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
    curl_slist_free_all(headers);
    GiveBack(curl);

    if (code == CURLE_OK) {
        t.reply.status = status;
        return std::move(t.reply);
    }
    const std::string detail = error[0] != '\0' ? error : curl_easy_strerror(code);
    if (t.cancelled) return CancelledError(where + ": cancelled, the stage is stopping");
    if (t.too_large) {
        return FailedPreconditionError(fmt::format("{}: the response is larger than {} bytes",
                                                   where, call.max_response_bytes));
    }
    switch (code) {
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
            return InvalidArgumentError(fmt::format("{}: {}", where, detail));
        case CURLE_OPERATION_TIMEDOUT:
            return UnavailableError(
                fmt::format("{}: no response within {} ms", where, call.timeout.count()));
        default:
            return UnavailableError(fmt::format("{}: {}", where, detail));
    }
}

Status ReplyStatus(std::string_view method, std::string_view url, const HttpReply& reply) {
    if (reply.status >= 200 && reply.status < 300) return Status::Ok();
    const std::string_view phrase = ReasonPhrase(reply.status);
    const std::string message =
        fmt::format("{} {}: HTTP {}{}{}: {}", method, UrlForMessages(url), reply.status,
                    phrase.empty() ? "" : " ", phrase, openai::ErrorMessageFromBody(reply.body));
    if (reply.status == 408 || reply.status == 429 || reply.status >= 500) {
        Status unavailable = UnavailableError(message);
        return reply.retry_after ? WithRetryAfter(unavailable, *reply.retry_after) : unavailable;
    }
    return FailedPreconditionError(message);
}

}  // namespace eventloom::pipeline::outbound_internal
