#include "gateway/http_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

namespace eventloom::testing {

namespace {

std::string Lowercase(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

std::string Trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
        text.remove_suffix(1);
    }
    return std::string(text);
}

}  // namespace

std::string HttpReply::Header(const std::string& name) const {
    auto it = headers.find(Lowercase(name));
    return it == headers.end() ? std::string() : it->second;
}

nlohmann::json HttpReply::Json() const { return nlohmann::json::parse(body, nullptr, false); }

std::vector<SseMessage> ParseSse(std::string_view body) {
    std::vector<SseMessage> out;
    SseMessage current;
    bool has_data = false;
    size_t start = 0;
    while (start < body.size()) {
        size_t end = body.find('\n', start);
        if (end == std::string_view::npos) end = body.size();
        std::string_view line = body.substr(start, end - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        start = end + 1;
        if (line.empty()) {
            if (has_data) out.push_back(current);
            current = SseMessage{};
            has_data = false;
            continue;
        }
        if (line.front() == ':') continue;
        size_t colon = line.find(':');
        std::string_view field = line.substr(0, colon);
        std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        if (field == "event") {
            current.event = std::string(value);
        } else if (field == "id") {
            current.id = std::string(value);
        } else if (field == "data") {
            if (has_data) current.data += '\n';
            current.data += value;
            has_data = true;
        }
    }
    if (has_data) out.push_back(current);
    return out;
}

HttpTestClient::HttpTestClient(int port, std::chrono::milliseconds timeout)
    : port_(port), timeout_(timeout) {}

HttpTestClient::~HttpTestClient() { Close(); }

void HttpTestClient::Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buffer_.clear();
}

bool HttpTestClient::Connect(std::string* error) {
    Close();
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) {
        *error = std::string("socket: ") + std::strerror(errno);
        return false;
    }
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout_.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout_.count() % 1000) * 1000);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port_));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        *error = std::string("connect: ") + std::strerror(errno);
        Close();
        return false;
    }
    ++connects_;
    close_after_ = false;
    return true;
}

bool HttpTestClient::SendAll(std::string_view bytes, std::string* error) {
    while (!bytes.empty()) {
        ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n <= 0) {
            *error = std::string("send: ") + std::strerror(errno);
            return false;
        }
        bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

bool HttpTestClient::Fill(std::string* error) {
    char chunk[16384];
    ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n < 0) {
        *error = std::string("recv: ") + std::strerror(errno);
        return false;
    }
    if (n == 0) {
        *error = "the server closed the connection";
        return false;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
}

bool HttpTestClient::ReadLine(std::string* line, std::string* error) {
    for (;;) {
        size_t end = buffer_.find("\r\n");
        if (end != std::string::npos) {
            *line = buffer_.substr(0, end);
            buffer_.erase(0, end + 2);
            return true;
        }
        if (!Fill(error)) return false;
    }
}

bool HttpTestClient::ReadHead(HttpReply* reply) {
    for (;;) {
        std::string line;
        if (!ReadLine(&line, &reply->error)) return false;
        // "HTTP/1.1 200 OK"
        size_t space = line.find(' ');
        if (space == std::string::npos) {
            reply->error = "bad status line: " + line;
            return false;
        }
        reply->status = std::atoi(line.c_str() + space + 1);
        reply->headers.clear();
        for (;;) {
            if (!ReadLine(&line, &reply->error)) return false;
            if (line.empty()) break;
            size_t colon = line.find(':');
            if (colon == std::string::npos) continue;
            reply->headers[Lowercase(line.substr(0, colon))] = Trim(line.substr(colon + 1));
        }
        if (reply->status != 100) break;  // 100 Continue: the real response follows
    }
    close_after_ = Lowercase(reply->Header("connection")) == "close";
    return true;
}

std::string HttpTestClient::ReadBody(HttpReply* head) {
    std::string body;
    std::string& error = head->error;
    const std::string length = head->Header("content-length");
    if (last_method_ == "HEAD" || head->status == 204 || head->status == 304) {
        // no body
    } else if (Lowercase(head->Header("transfer-encoding")) == "chunked") {
        std::string data;
        while (NextChunk(head, &data)) body += data;
    } else if (!length.empty()) {
        size_t size = std::strtoul(length.c_str(), nullptr, 10);
        while (buffer_.size() < size && Fill(&error)) {
        }
        size_t take = std::min(size, buffer_.size());
        body = buffer_.substr(0, take);
        buffer_.erase(0, take);
        if (take < size) close_after_ = true;
    } else {
        while (Fill(&error)) {
        }
        body = std::move(buffer_);
        buffer_.clear();
        close_after_ = true;
        error.clear();  // the end of the connection is the end of the body
    }
    if (close_after_) Close();
    return body;
}

bool HttpTestClient::NextChunk(HttpReply* head, std::string* data) {
    data->clear();
    if (fd_ < 0) return false;
    std::string line;
    if (!ReadLine(&line, &head->error)) {
        close_after_ = true;
        return false;
    }
    size_t size = std::strtoul(line.c_str(), nullptr, 16);
    if (size == 0) {
        while (ReadLine(&line, &head->error) && !line.empty()) {
        }
        return false;
    }
    while (buffer_.size() < size + 2 && Fill(&head->error)) {
    }
    if (buffer_.size() < size + 2) {
        close_after_ = true;
        return false;
    }
    data->assign(buffer_, 0, size);
    buffer_.erase(0, size + 2);
    return true;
}

std::string HttpTestClient::ReadUntil(HttpReply* head, std::string_view marker) {
    std::string body;
    std::string data;
    while (body.find(marker) == std::string::npos && NextChunk(head, &data)) body += data;
    return body;
}

std::string HttpTestClient::Serialize(const std::string& method, const std::string& path,
                                      const std::string& body,
                                      const RequestHeaders& headers) const {
    std::string out =
        method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port_) + "\r\n";
    bool has_type = false;
    for (const auto& [name, value] : headers) {
        if (Lowercase(name) == "content-type") has_type = true;
        out += name + ": " + value + "\r\n";
    }
    if (!body.empty() || method == "POST") {
        if (!has_type) out += "Content-Type: application/json\r\n";
        out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    }
    out += "\r\n";
    out += body;
    return out;
}

HttpReply HttpTestClient::Begin(const std::string& method, const std::string& path,
                                const std::string& body, const RequestHeaders& headers) {
    HttpReply reply;
    last_method_ = method;
    const std::string bytes = Serialize(method, path, body, headers);
    // A kept connection the server closed meanwhile fails on use: then once more on a new one.
    for (int round = 0; round < 2; ++round) {
        const bool fresh = fd_ < 0 || close_after_;
        if (fresh && !Connect(&reply.error)) return reply;
        if (SendAll(bytes, &reply.error) && ReadHead(&reply)) return reply;
        Close();
        if (fresh) return reply;
        reply = HttpReply{};
    }
    return reply;
}

HttpReply HttpTestClient::Request(const std::string& method, const std::string& path,
                                  const std::string& body, const RequestHeaders& headers) {
    HttpReply reply = Begin(method, path, body, headers);
    if (reply.status != 0) reply.body = ReadBody(&reply);
    return reply;
}

HttpReply HttpTestClient::Get(const std::string& path, const RequestHeaders& headers) {
    return Request("GET", path, "", headers);
}

HttpReply HttpTestClient::Post(const std::string& path, const std::string& body,
                               const RequestHeaders& headers) {
    return Request("POST", path, body, headers);
}

HttpReply HttpTestClient::Raw(const std::string& bytes) {
    HttpReply reply;
    last_method_.clear();
    if (!Connect(&reply.error)) return reply;
    if (!SendAll(bytes, &reply.error) || !ReadHead(&reply)) {
        Close();
        return reply;
    }
    reply.body = ReadBody(&reply);
    return reply;
}

}  // namespace eventloom::testing
