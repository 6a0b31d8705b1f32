// Webhook signatures and the WebhookSender (webhook.h).
#include "pipeline/outbound/webhook.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "pipeline/outbound/http_client.h"

namespace eventloom::pipeline {

namespace {

constexpr std::string_view kSignaturePrefix = "sha256=";

std::string HexLower(const unsigned char* bytes, size_t size) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(size * 2);
    for (size_t i = 0; i < size; ++i) {
        out += kDigits[bytes[i] >> 4];
        out += kDigits[bytes[i] & 0xf];
    }
    return out;
}

int64_t UnixSeconds(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

std::string WebhookTopic(std::string_view pipeline_name) {
    return std::string(pipeline_name) + ".webhooks";
}

std::string WebhookSignature(std::string_view secret, std::string_view timestamp,
                             std::string_view body) {
    std::string message;
    message.reserve(timestamp.size() + 1 + body.size());
    message.append(timestamp).append(".").append(body);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_size = 0;
    // An empty key is valid HMAC; OpenSSL wants a non-null pointer for it.
    static const unsigned char kEmpty = 0;
    const void* key = secret.empty() ? &kEmpty : static_cast<const void*>(secret.data());
    HMAC(EVP_sha256(), key, static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &mac_size);
    return std::string(kSignaturePrefix) + HexLower(mac, mac_size);
}

bool VerifyWebhookSignature(std::string_view secret, std::string_view timestamp,
                            std::string_view body, std::string_view signature,
                            std::chrono::seconds max_age,
                            std::chrono::system_clock::time_point now) {
    // The timestamp first, when its age matters.
    if (max_age.count() > 0) {
        int64_t seconds = 0;
        const auto [end, ec] =
            std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), seconds);
        if (timestamp.empty() || ec != std::errc() || end != timestamp.data() + timestamp.size()) {
            return false;
        }
        const int64_t age = UnixSeconds(now) - seconds;
        if (age > max_age.count() || -age > max_age.count()) return false;
    }

    // Then the signature, lowercased, against the expected one in constant time.
    const std::string expected = WebhookSignature(secret, timestamp, body);
    if (signature.size() != expected.size()) return false;
    std::string given(signature);
    for (size_t i = kSignaturePrefix.size(); i < given.size(); ++i) {
        given[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(given[i])));
    }
    return CRYPTO_memcmp(given.data(), expected.data(), expected.size()) == 0;
}

WebhookSender::WebhookSender(WebhookSenderOptions options)
    : options_(std::move(options)), client_(std::make_unique<outbound_internal::HttpClient>()) {}

WebhookSender::~WebhookSender() = default;

Status WebhookSender::Send(const WebhookDelivery& delivery) {
    const bool printable = std::all_of(delivery.event_id.begin(), delivery.event_id.end(),
                                       [](unsigned char c) { return c >= 0x20 && c != 0x7f; });
    if (delivery.event_id.empty() || !printable) {
        return InvalidArgumentError(
            fmt::format("webhook to {}: the event id must be non-empty printable text",
                        outbound_internal::UrlForMessages(delivery.url)));
    }
    const int64_t timestamp = delivery.timestamp != 0
                                  ? delivery.timestamp
                                  : UnixSeconds(std::chrono::system_clock::now());
    const std::string stamp = std::to_string(timestamp);

    outbound_internal::HttpCall call;
    call.method = "POST";
    call.url = delivery.url;
    call.body = delivery.body;
    call.timeout = delivery.timeout.count() > 0 ? std::min(delivery.timeout, options_.timeout)
                                                : options_.timeout;
    call.connect_timeout = options_.connect_timeout;
    call.max_response_bytes = 64 << 10;  // the answer is used only in error messages
    call.truncate_response = true;
    call.cancelled = delivery.cancelled;
    call.headers = {"Content-Type: application/json", "User-Agent: " + options_.user_agent,
                    "X-Eventloom-Event-Id: " + delivery.event_id,
                    "X-Eventloom-Timestamp: " + stamp};
    if (!delivery.secret.empty()) {
        call.headers.push_back("X-Eventloom-Signature: " +
                               WebhookSignature(delivery.secret, stamp, delivery.body));
    }

    auto reply = client_->Perform(call);
    if (!reply.ok()) return reply.status();
    return outbound_internal::ReplyStatus(call.method, call.url, *reply);
}

}  // namespace eventloom::pipeline
