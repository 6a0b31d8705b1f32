#include "http_load.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <thread>

#include "bench_util.h"

namespace eventloom::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

// One keep-alive connection, blocking I/O.
class Connection {
public:
    explicit Connection(int port) : port_(port) {}
    ~Connection() { Close(); }

    // Sends `request` and reads one response; the HTTP status, or an error.
    Result<int> RoundTrip(const std::string& request) {
        if (fd_ < 0) EVENTLOOM_RETURN_IF_ERROR(Connect());
        if (!WriteAll(request)) {
            // The server may have closed an idle connection: one fresh try.
            Close();
            EVENTLOOM_RETURN_IF_ERROR(Connect());
            if (!WriteAll(request)) return UnavailableError("write failed");
        }
        return ReadResponse();
    }

private:
    Status Connect() {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) return UnavailableError(std::string("socket: ") + std::strerror(errno));
        int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(static_cast<uint16_t>(port_));
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            Close();
            return UnavailableError(std::string("connect: ") + std::strerror(errno));
        }
        buffer_.clear();
        return Status::Ok();
    }

    void Close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    bool WriteAll(const std::string& data) {
        size_t done = 0;
        while (done < data.size()) {
            ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
            if (n <= 0) return false;
            done += static_cast<size_t>(n);
        }
        return true;
    }

    bool Fill() {
        char chunk[16384];
        ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
        if (n <= 0) return false;
        buffer_.append(chunk, static_cast<size_t>(n));
        return true;
    }

    Result<int> ReadResponse() {
        size_t end;
        while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
            if (!Fill()) {
                Close();
                return UnavailableError("connection closed before the response headers");
            }
        }
        std::string head = buffer_.substr(0, end);
        std::transform(head.begin(), head.end(), head.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        int status = 0;
        if (head.size() < 12 || std::sscanf(head.c_str(), "http/1.%*d %d", &status) != 1) {
            Close();
            return UnavailableError("malformed status line");
        }
        size_t length = 0;
        if (size_t at = head.find("\r\ncontent-length:"); at != std::string::npos) {
            length = std::strtoull(head.c_str() + at + 17, nullptr, 10);
        } else {
            Close();
            return UnavailableError("response without Content-Length");
        }
        const bool close = head.find("\r\nconnection: close") != std::string::npos;
        while (buffer_.size() < end + 4 + length) {
            if (!Fill()) {
                Close();
                return UnavailableError("connection closed inside the response body");
            }
        }
        buffer_.erase(0, end + 4 + length);
        if (close) Close();
        return status;
    }

    int port_;
    int fd_ = -1;
    std::string buffer_;
};

std::string RequestText(const HttpLoadOptions& o) {
    std::string r = o.method + " " + o.path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (!o.body.empty()) {
        r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(o.body.size()) +
             "\r\n";
    }
    r += "\r\n" + o.body;
    return r;
}

}  // namespace

Result<HttpLoadResult> RunHttpLoad(const HttpLoadOptions& o) {
    if (o.rate <= 0 || o.seconds <= 0 || o.connections <= 0) {
        return InvalidArgumentError("http load: rate, seconds and connections must be positive");
    }
    const auto total = static_cast<int64_t>(o.rate * o.seconds);
    const std::string request = RequestText(o);
    const auto interval = std::chrono::nanoseconds(static_cast<int64_t>(1e9 / o.rate));
    // Every thread is started before the first request is due.
    const SteadyClock::time_point start = SteadyClock::now() + std::chrono::milliseconds(50);
    const SteadyClock::time_point give_up = start + std::chrono::seconds(o.timeout);

    std::mutex mu;
    HttpLoadResult result;
    SteadyClock::time_point last_response = start;
    std::vector<std::thread> threads;
    for (int c = 0; c < o.connections; ++c) {
        threads.emplace_back([&, c] {
            Connection conn(o.port);
            std::vector<double> latencies;
            int64_t ok = 0, failed = 0, sent = 0;
            std::string error;
            SteadyClock::time_point last = start;
            for (int64_t i = c; i < total; i += o.connections) {
                const SteadyClock::time_point due = start + interval * i;
                if (due > give_up) break;
                std::this_thread::sleep_until(due);
                ++sent;
                Result<int> status = conn.RoundTrip(request);
                last = SteadyClock::now();
                if (status.ok() && *status >= 200 && *status < 300) {
                    ++ok;
                    latencies.push_back(MicrosBetween(due, last));
                } else {
                    ++failed;
                    if (error.empty()) {
                        error = status.ok() ? "HTTP " + std::to_string(*status)
                                            : status.status().message();
                    }
                }
            }
            std::lock_guard<std::mutex> lock(mu);
            result.latencies_us.insert(result.latencies_us.end(), latencies.begin(),
                                       latencies.end());
            result.ok += ok;
            result.failed += failed;
            result.sent += sent;
            if (result.first_error.empty()) result.first_error = error;
            last_response = std::max(last_response, last);
        });
    }
    for (auto& t : threads) t.join();
    result.seconds = SecondsBetween(start, last_response);
    return result;
}

}  // namespace eventloom::bench
