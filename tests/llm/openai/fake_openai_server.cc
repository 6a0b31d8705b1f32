#include "llm/openai/fake_openai_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace eventloom::testing {
namespace {

using nlohmann::json;

// How often blocked threads look at the stop flag.
constexpr int kPollMs = 20;

std::string ReasonPhrase(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 429:
            return "Too Many Requests";
        case 500:
            return "Internal Server Error";
        case 503:
            return "Service Unavailable";
        default:
            return "Status";
    }
}

std::string Lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

bool SendAll(int fd, const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
        const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return false;
        sent += static_cast<size_t>(n);
    }
    return true;
}

FakeResponse Stream(const std::vector<std::string>& pieces, const std::string& finish_reason,
                    std::optional<std::pair<int, int>> usage, bool chat) {
    auto choice = [chat](const json& content, const json& finish) {
        json c = {{"index", 0}, {"finish_reason", finish}};
        if (chat) {
            c["delta"] = content.is_null() ? json::object() : json{{"content", content}};
        } else {
            c["text"] = content.is_null() ? json("") : content;
        }
        return c;
    };

    FakeResponse response;
    response.headers = {{"Content-Type", "text/event-stream"}};
    for (const std::string& piece : pieces) {
        response.body_parts.push_back(
            FakeResponse::Event({{"choices", json::array({choice(piece, nullptr)})}}));
    }
    response.body_parts.push_back(
        FakeResponse::Event({{"choices", json::array({choice(nullptr, finish_reason)})}}));
    if (usage) {
        response.body_parts.push_back(
            FakeResponse::Event({{"choices", json::array()},
                                 {"usage",
                                  {{"prompt_tokens", usage->first},
                                   {"completion_tokens", usage->second},
                                   {"total_tokens", usage->first + usage->second}}}}));
    }
    response.body_parts.push_back("data: [DONE]\n\n");
    return response;
}

}  // namespace

FakeResponse FakeResponse::ChatStream(const std::vector<std::string>& pieces,
                                      const std::string& finish_reason,
                                      std::optional<std::pair<int, int>> usage) {
    return Stream(pieces, finish_reason, usage, true);
}

FakeResponse FakeResponse::CompletionStream(const std::vector<std::string>& pieces,
                                            const std::string& finish_reason,
                                            std::optional<std::pair<int, int>> usage) {
    return Stream(pieces, finish_reason, usage, false);
}

FakeResponse FakeResponse::RawStream(std::string body) {
    FakeResponse response;
    response.headers = {{"Content-Type", "text/event-stream"}};
    response.body_parts.push_back(std::move(body));
    return response;
}

FakeResponse FakeResponse::Error(int status, std::string body,
                                 std::vector<std::pair<std::string, std::string>> headers) {
    FakeResponse response;
    response.status = status;
    response.headers = std::move(headers);
    response.headers.emplace_back("Content-Type", "application/json");
    response.body_parts.push_back(std::move(body));
    return response;
}

std::string FakeResponse::Event(const json& data) { return "data: " + data.dump() + "\n\n"; }

FakeResponse FakeResponse::Embeddings(
    const std::vector<std::pair<int, std::vector<float>>>& items) {
    json data = json::array();
    for (const auto& [index, vector] : items) {
        data.push_back({{"object", "embedding"}, {"index", index}, {"embedding", vector}});
    }
    FakeResponse response;
    response.headers = {{"Content-Type", "application/json"}};
    response.body_parts.push_back(json{{"object", "list"},
                                       {"data", std::move(data)},
                                       {"model", "fake-embedder"},
                                       {"usage", {{"prompt_tokens", 1}, {"total_tokens", 1}}}}
                                      .dump());
    return response;
}

json ReceivedRequest::Json() const {
    json parsed = json::parse(body, nullptr, false);
    return parsed.is_discarded() ? json() : parsed;
}

FakeOpenAiServer::FakeOpenAiServer() {
    default_ = FakeResponse::ChatStream({"Hello", " world"}, "stop", std::make_pair(3, 2));

    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw std::runtime_error("fake server: socket failed");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof(address);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::listen(listen_fd_, 64) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        ::close(listen_fd_);
        throw std::runtime_error("fake server: cannot listen on 127.0.0.1");
    }
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
}

FakeOpenAiServer::~FakeOpenAiServer() {
    stopping_ = true;
    acceptor_.join();
    ::close(listen_fd_);
    std::vector<std::thread> connections;
    {
        std::lock_guard lock(mu_);
        connections.swap(connections_);
    }
    for (std::thread& connection : connections) connection.join();
}

std::string FakeOpenAiServer::base_url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/v1";
}

void FakeOpenAiServer::Enqueue(FakeResponse response) {
    std::lock_guard lock(mu_);
    script_.push_back(std::move(response));
}

void FakeOpenAiServer::SetDefault(FakeResponse response) {
    std::lock_guard lock(mu_);
    default_ = std::move(response);
}

std::vector<ReceivedRequest> FakeOpenAiServer::requests() const {
    std::lock_guard lock(mu_);
    return requests_;
}

size_t FakeOpenAiServer::request_count() const {
    std::lock_guard lock(mu_);
    return requests_.size();
}

bool FakeOpenAiServer::WaitForRequests(size_t count, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mu_);
    return arrived_.wait_for(lock, timeout, [&] { return requests_.size() >= count; });
}

void FakeOpenAiServer::AcceptLoop() {
    while (!stopping_) {
        pollfd pfd{listen_fd_, POLLIN, 0};
        if (::poll(&pfd, 1, kPollMs) <= 0) continue;
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        std::lock_guard lock(mu_);
        connections_.emplace_back([this, fd] { Serve(fd); });
    }
}

void FakeOpenAiServer::ServeEmbeddings(int dimension) {
    std::lock_guard lock(mu_);
    embedding_dimension_ = dimension;
}

std::vector<float> FakeOpenAiServer::FakeEmbedding(const std::string& input, int dimension) {
    // FNV-1a of the input and the component's number, mapped to [-2, 2).
    std::vector<float> vector;
    for (int k = 0; k < dimension; ++k) {
        uint64_t hash = 14695981039346656037ull ^ static_cast<uint64_t>(k);
        for (unsigned char c : input) hash = (hash ^ c) * 1099511628211ull;
        hash = (hash ^ (hash >> 29)) * 1099511628211ull;
        vector.push_back(static_cast<float>(hash % 4096) / 1024.0f - 2.0f);
    }
    return vector;
}

FakeResponse FakeOpenAiServer::NextResponse(const ReceivedRequest& request) {
    std::lock_guard lock(mu_);
    if (script_.empty()) {
        const json body = request.Json();
        if (embedding_dimension_ == 0 || !request.path.ends_with("/embeddings") ||
            !body.contains("input") || !body["input"].is_array()) {
            return default_;
        }
        std::vector<std::pair<int, std::vector<float>>> items;
        for (int i = static_cast<int>(body["input"].size()) - 1; i >= 0; --i) {
            const json& input = body["input"][static_cast<size_t>(i)];
            items.emplace_back(i, FakeEmbedding(input.is_string() ? input.get<std::string>() : "",
                                                embedding_dimension_));
        }
        return FakeResponse::Embeddings(items);
    }
    FakeResponse response = std::move(script_.front());
    script_.pop_front();
    return response;
}

void FakeOpenAiServer::Serve(int fd) {
    // Read the head, then Content-Length bytes of body.
    std::string data;
    size_t head_end = std::string::npos;
    size_t body_length = 0;
    bool have_head = false;
    while (!stopping_) {
        if (!have_head) head_end = data.find("\r\n\r\n");
        if (head_end != std::string::npos && !have_head) {
            have_head = true;
            const std::string head = Lower(data.substr(0, head_end));
            const size_t at = head.find("\r\ncontent-length:");
            if (at != std::string::npos) body_length = std::stoul(head.substr(at + 17));
        }
        if (have_head && data.size() >= head_end + 4 + body_length) break;

        pollfd pfd{fd, POLLIN, 0};
        if (::poll(&pfd, 1, kPollMs) <= 0) continue;
        char buffer[8192];
        const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
        if (n <= 0) {
            ::close(fd);
            return;
        }
        data.append(buffer, static_cast<size_t>(n));
    }
    if (stopping_) {
        ::close(fd);
        return;
    }

    // Record it: request line, headers, body.
    ReceivedRequest request;
    request.arrived = std::chrono::steady_clock::now();
    const std::string head = data.substr(0, head_end);
    const size_t line_end = head.find("\r\n");
    const std::string request_line = head.substr(0, line_end);
    const size_t space1 = request_line.find(' ');
    const size_t space2 = request_line.find(' ', space1 + 1);
    request.method = request_line.substr(0, space1);
    request.path = request_line.substr(space1 + 1, space2 - space1 - 1);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
        size_t end = head.find("\r\n", pos);
        if (end == std::string::npos) end = head.size();
        const std::string line = head.substr(pos, end - pos);
        const size_t colon = line.find(':');
        if (colon != std::string::npos) {
            const size_t value = line.find_first_not_of(' ', colon + 1);
            request.headers[Lower(line.substr(0, colon))] =
                value == std::string::npos ? "" : line.substr(value);
        }
        pos = end + 2;
    }
    request.body = data.substr(head_end + 4, body_length);
    {
        std::lock_guard lock(mu_);
        requests_.push_back(request);
    }
    arrived_.notify_all();

    // Answer, then close (or hold).
    const FakeResponse response = NextResponse(request);
    std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " +
                      ReasonPhrase(response.status) + "\r\nConnection: close\r\n";
    for (const auto& [name, value] : response.headers) out += name + ": " + value + "\r\n";
    out += "\r\n";
    bool open = SendAll(fd, out);
    for (const std::string& part : response.body_parts) {
        if (open) open = SendAll(fd, part);
    }
    while (open && response.hold_open && !stopping_) {
        pollfd pfd{fd, POLLIN, 0};
        if (::poll(&pfd, 1, kPollMs) <= 0) continue;
        char buffer[256];
        if (::recv(fd, buffer, sizeof(buffer), 0) <= 0) break;  // the client went away
    }
    ::close(fd);
}

}  // namespace eventloom::testing
