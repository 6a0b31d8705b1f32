// HttpServer: see http_server.h. The only translation unit of the gateway that runs Beast.
// clang-format off
#include "gateway/asio_prelude.h"  // first: see there
// clang-format on
#include "gateway/http_server.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "common/logging.h"

namespace eventloom::gateway::internal {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

const std::string* HttpRequest::Header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
        if (key == name) return &value;
    }
    return nullptr;
}

std::string_view StatusReason(int status) {
    auto reason = http::obsolete_reason(http::int_to_status(static_cast<unsigned>(status)));
    if (reason.empty() || reason.front() == '<') return "Unknown";
    return {reason.data(), reason.size()};
}

Result<std::pair<std::string, uint16_t>> ParseListenAddress(std::string_view listen) {
    std::string_view host;
    std::string_view port = listen;
    if (!listen.empty() && listen.front() == '[') {
        size_t close = listen.find(']');
        if (close == std::string_view::npos || close + 1 >= listen.size() ||
            listen[close + 1] != ':') {
            return InvalidArgumentError(fmt::format(
                "listen address '{}': expected [ADDRESS]:PORT for an IPv6 address", listen));
        }
        host = listen.substr(1, close - 1);
        port = listen.substr(close + 2);
    } else if (size_t colon = listen.rfind(':'); colon != std::string_view::npos) {
        host = listen.substr(0, colon);
        port = listen.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) {
            return InvalidArgumentError(fmt::format(
                "listen address '{}': write an IPv6 address in brackets, [::1]:8080", listen));
        }
    }
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return InvalidArgumentError(
            fmt::format("listen address '{}': the port must be a number 0-65535", listen));
    }
    int number = std::stoi(std::string(port));
    if (number > 65535) {
        return InvalidArgumentError(
            fmt::format("listen address '{}': the port must be a number 0-65535", listen));
    }
    return std::make_pair(host.empty() ? std::string("127.0.0.1") : std::string(host),
                          static_cast<uint16_t>(number));
}

namespace {

std::string_view View(beast::string_view text) { return {text.data(), text.size()}; }

std::string Lowercase(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

// Header values we send never carry a line break (no response splitting).
void AppendHeader(std::string* out, std::string_view name, std::string_view value) {
    out->append(name);
    out->append(": ");
    for (char c : value) {
        if (c != '\r' && c != '\n') out->push_back(c);
    }
    out->append("\r\n");
}

std::string StatusLine(int status) {
    return fmt::format("HTTP/1.1 {} {}\r\n", status, StatusReason(status));
}

bool IsQuietReadError(const beast::error_code& ec) {
    return ec == http::error::end_of_stream || ec == asio::error::eof ||
           ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
           ec == beast::error::timeout || ec == http::error::partial_message;
}

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

}  // namespace

class Session;

class HttpServer::Impl {
public:
    Impl(HttpServerOptions options, Handler handler)
        : options_(std::move(options)),
          handler_(std::move(handler)),
          guard_(asio::make_work_guard(ioc_)),
          acceptor_(asio::make_strand(ioc_)) {}

    ~Impl() { Stop(); }

    Status Listen() {
        beast::error_code ec;
        tcp::endpoint endpoint;
        auto address = asio::ip::make_address(options_.host, ec);
        if (!ec) {
            endpoint = tcp::endpoint(address, options_.port);
        } else {
            tcp::resolver resolver(ioc_);
            auto results = resolver.resolve(options_.host, std::to_string(options_.port), ec);
            if (ec || results.empty()) {
                return InvalidArgumentError(fmt::format(
                    "listen address '{}': not an IP address, and it does not resolve: {}",
                    options_.host, ec ? ec.message() : "no addresses"));
            }
            endpoint = results.begin()->endpoint();
        }

        std::string where = fmt::format("{}:{}", options_.host, options_.port);
        if (acceptor_.open(endpoint.protocol(), ec); ec) {
            return UnavailableError(fmt::format("listen on {}: {}", where, ec.message()));
        }
        acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
        if (acceptor_.bind(endpoint, ec); ec) {
            return UnavailableError(fmt::format("listen on {}: {}", where, ec.message()));
        }
        if (acceptor_.listen(asio::socket_base::max_listen_connections, ec); ec) {
            return UnavailableError(fmt::format("listen on {}: {}", where, ec.message()));
        }
        port_ = acceptor_.local_endpoint(ec).port();
        return Status::Ok();
    }

    void Run() {
        asio::post(acceptor_.get_executor(), [this] { DoAccept(); });
        int threads = std::max(1, options_.threads);
        for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
    }

    uint16_t port() const { return port_; }

    size_t connections() {
        std::lock_guard<std::mutex> lock(sessions_mu_);
        return sessions_.size();
    }

    void StopAccepting() {
        asio::post(acceptor_.get_executor(), [this] {
            beast::error_code ec;
            acceptor_.close(ec);
        });
    }

    void CloseWhenIdle() { closing_ = true; }

    std::shared_ptr<Timer> After(std::chrono::milliseconds delay, std::function<void()> callback);

    void Stop();

    // For sessions and timers.
    const HttpServerOptions& options() const { return options_; }
    bool closing() const { return closing_; }
    bool stopped() const { return stopped_; }
    void Handle(std::shared_ptr<Exchange> exchange) { handler_(std::move(exchange)); }
    HttpResponse ErrorResponse(int status, std::string message) {
        if (options_.error_response) return options_.error_response(status, std::move(message));
        HttpResponse r;
        r.status = status;
        r.content_type = "text/plain; charset=utf-8";
        r.body = std::move(message) + "\n";
        return r;
    }
    void AddSession(Session* session, const std::shared_ptr<Session>& shared) {
        std::lock_guard<std::mutex> lock(sessions_mu_);
        sessions_[session] = shared;
    }
    void RemoveSession(Session* session) {
        std::lock_guard<std::mutex> lock(sessions_mu_);
        sessions_.erase(session);
    }
    void ForgetTimer(Timer* timer) {
        std::lock_guard<std::mutex> lock(timers_mu_);
        timers_.erase(timer);
    }
    asio::io_context& ioc() { return ioc_; }

private:
    void DoAccept();
    void OnAccept(beast::error_code ec, tcp::socket socket);

    const HttpServerOptions options_;
    const Handler handler_;
    std::atomic<bool> closing_{false};
    std::atomic<bool> stopped_{false};
    uint16_t port_ = 0;

    // Declared before the io_context, so they outlive the handlers it destroys.
    std::mutex sessions_mu_;
    std::unordered_map<Session*, std::weak_ptr<Session>> sessions_;
    std::mutex timers_mu_;
    std::unordered_map<Timer*, std::weak_ptr<Timer>> timers_;

    asio::io_context ioc_;
    asio::executor_work_guard<asio::io_context::executor_type> guard_;
    tcp::acceptor acceptor_;
    std::vector<std::thread> threads_;
};

// ---- Exchange --------------------------------------------------------------------------------

using FinishCallback = Exchange::FinishCallback;

class ExchangeImpl final : public Exchange, public std::enable_shared_from_this<ExchangeImpl> {
public:
    ExchangeImpl(std::shared_ptr<Session> session, HttpRequest request)
        : session_(std::move(session)), request_(std::move(request)) {}
    ~ExchangeImpl() override;

    const HttpRequest& request() const override { return request_; }
    void Respond(HttpResponse response) override;
    void StartStream(int status, Headers headers) override;
    void Write(std::string bytes) override;
    void End() override;

    void OnFinish(FinishCallback callback) override {
        std::unique_lock<std::mutex> lock(mu_);
        if (finished_) {
            int status = status_;
            bool completed = completed_;
            lock.unlock();
            callback(status, completed);
            return;
        }
        callbacks_.push_back(std::move(callback));
    }

    // On the session's strand, once.
    void Finish(int status, bool completed) {
        std::vector<FinishCallback> callbacks;
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (finished_) return;
            finished_ = true;
            status_ = status;
            completed_ = completed;
            callbacks.swap(callbacks_);
        }
        for (auto& callback : callbacks) callback(status, completed);
    }

private:
    std::shared_ptr<Session> session_;
    const HttpRequest request_;
    std::mutex mu_;
    bool finished_ = false;  // guarded by mu_
    int status_ = 0;
    bool completed_ = false;
    std::vector<FinishCallback> callbacks_;
};

// ---- Session ---------------------------------------------------------------------------------

// One connection. Every member is used on the connection's strand only.
class Session : public std::enable_shared_from_this<Session> {
public:
    Session(tcp::socket socket, HttpServer::Impl* server)
        : stream_(std::move(socket)), server_(server) {
        beast::error_code ec;
        auto endpoint = stream_.socket().remote_endpoint(ec);
        if (!ec) remote_ = endpoint.address().to_string();
    }
    ~Session() { server_->RemoveSession(this); }

    bool server_stopped() const { return server_->stopped(); }

    void Start() {
        server_->AddSession(this, shared_from_this());
        asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->DoRead(); });
    }

    template <typename F>
    void Post(F&& f) {
        asio::post(stream_.get_executor(), std::forward<F>(f));
    }

    void Close() {
        if (state_ == State::kClosed) return;
        state_ = State::kClosed;
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        stream_.close();
        server_->RemoveSession(this);
        FinishExchange(false);
    }

    // The exchange is held from its answer on, so its end is reported even when the handler
    // has let go of it by then.
    void DoRespond(std::shared_ptr<ExchangeImpl> from, HttpResponse response) {
        if (from.get() != current_ || state_ != State::kHandling) return;
        answering_ = std::move(from);
        status_ = response.status;
        QueueResponse(response);
    }

    void DoStartStream(std::shared_ptr<ExchangeImpl> from, int status, Headers headers) {
        if (from.get() != current_ || state_ != State::kHandling) return;
        answering_ = std::move(from);
        status_ = status;
        chunked_ = version_ >= 11;
        if (!chunked_) keep_alive_ = false;
        std::string head = StatusLine(status);
        for (const auto& [name, value] : headers) AppendHeader(&head, name, value);
        if (chunked_) AppendHeader(&head, "Transfer-Encoding", "chunked");
        if (!keep_alive_ || server_->closing()) AppendHeader(&head, "Connection", "close");
        head.append("\r\n");
        out_.append(head);
        state_ = State::kStreaming;
        Flush();
    }

    void DoWrite(ExchangeImpl* from, const std::string& bytes) {
        if (from != current_ || state_ != State::kStreaming || bytes.empty()) return;
        if (chunked_) {
            out_.append(fmt::format("{:x}\r\n", bytes.size()));
            out_.append(bytes);
            out_.append("\r\n");
        } else {
            out_.append(bytes);
        }
        if (out_.size() > server_->options().max_pending_bytes) {
            Log()->warn(
                "connection remote={} closed: a stream's client reads too slowly "
                "({} bytes pending)",
                remote_, out_.size());
            Close();
            return;
        }
        Flush();
    }

    void DoEnd(ExchangeImpl* from) {
        if (from != current_ || state_ != State::kStreaming) return;
        if (chunked_) out_.append("0\r\n\r\n");
        state_ = State::kFinishing;
        Flush();
    }

    // The handler let go of the exchange without answering it: answer it here, and report its
    // end to the exchange's finish callbacks (handed over by its destructor).
    void Abandoned(ExchangeImpl* from, std::vector<FinishCallback> callbacks) {
        if (from != current_) {
            for (auto& callback : callbacks) callback(500, false);
            return;
        }
        current_ = nullptr;
        exchange_.reset();
        orphaned_ = std::move(callbacks);
        if (state_ == State::kHandling) {
            status_ = 500;
            QueueResponse(server_->ErrorResponse(500, "the request was dropped unanswered"));
        } else if (state_ == State::kStreaming) {
            DoEndUnowned();
        }
    }

private:
    enum class State { kReading, kHandling, kStreaming, kFinishing, kClosed };

    static std::shared_ptr<spdlog::logger> Log() { return logging::Get("gateway"); }

    // The exchange's response is over (`completed`) or cut off: tell whoever waits for that.
    void FinishExchange(bool completed) {
        std::shared_ptr<ExchangeImpl> exchange =
            answering_ ? std::move(answering_) : exchange_.lock();
        answering_.reset();
        exchange_.reset();
        current_ = nullptr;
        if (exchange) exchange->Finish(status_, completed);
        std::vector<FinishCallback> orphaned;
        orphaned.swap(orphaned_);
        for (auto& callback : orphaned) callback(status_, completed);
    }

    void DoEndUnowned() {
        if (chunked_) out_.append("0\r\n\r\n");
        state_ = State::kFinishing;
        Flush();
    }

    void QueueResponse(const HttpResponse& response) {
        bool keep_alive = keep_alive_ && !server_->closing();
        keep_alive_ = keep_alive;
        std::string head = StatusLine(response.status);
        if (!response.content_type.empty()) {
            AppendHeader(&head, "Content-Type", response.content_type);
        }
        for (const auto& [name, value] : response.headers) AppendHeader(&head, name, value);
        AppendHeader(&head, "Content-Length", std::to_string(response.body.size()));
        if (!keep_alive) {
            AppendHeader(&head, "Connection", "close");
        } else if (version_ < 11) {
            AppendHeader(&head, "Connection", "keep-alive");
        }
        head.append("\r\n");
        out_.append(head);
        out_.append(response.body);
        state_ = State::kFinishing;
        Flush();
    }

    // A response of the transport's own (400, 413): the connection closes after it.
    void RespondError(int status, std::string message) {
        keep_alive_ = false;
        status_ = status;
        state_ = State::kHandling;
        QueueResponse(server_->ErrorResponse(status, std::move(message)));
    }

    void Flush() {
        if (writing_ || state_ == State::kClosed) return;
        if (out_.empty()) {
            if (state_ == State::kFinishing) {
                ResponseDone();
            } else {
                stream_.expires_never();
            }
            return;
        }
        inflight_.swap(out_);
        out_.clear();
        writing_ = true;
        stream_.expires_after(server_->options().write_timeout);
        asio::async_write(
            stream_, asio::buffer(inflight_),
            [self = shared_from_this()](beast::error_code ec, size_t) { self->OnWrite(ec); });
    }

    void OnWrite(beast::error_code ec) {
        writing_ = false;
        inflight_.clear();
        if (state_ == State::kClosed) return;
        if (ec) {
            Close();
            return;
        }
        Flush();
    }

    void ResponseDone() {
        FinishExchange(true);
        if (state_ == State::kClosed) return;  // a finish callback may not close, but be safe
        if (keep_alive_ && !server_->closing()) {
            DoRead();
            return;
        }
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        Close();
    }

    // 413, quoting the declared length when it is known.
    void RespondTooLarge(boost::optional<std::uint64_t> length) {
        const size_t limit = server_->options().max_body_bytes;
        RespondError(
            413,
            length ? fmt::format("the body is {} bytes, more than the limit of {}", *length, limit)
                   : fmt::format("the body is more than the limit of {} bytes", limit));
    }

    void DoRead() {
        state_ = State::kReading;
        status_ = 0;
        parser_.emplace();
        parser_->body_limit(server_->options().max_body_bytes);
        parser_->header_limit(static_cast<uint32_t>(server_->options().max_header_bytes));
        stream_.expires_after(server_->options().idle_timeout);
        http::async_read_header(
            stream_, buffer_, *parser_,
            [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
    }

    void OnHeader(beast::error_code ec) {
        if (state_ == State::kClosed) return;
        // Beast checks a declared Content-Length against the limit while it reads the head.
        if (ec == http::error::body_limit) {
            // The error may come while the head is still being read (a Content-Length over
            // the limit): the length is known only once the head is done.
            RespondTooLarge(parser_->is_header_done() ? parser_->content_length()
                                                      : boost::optional<std::uint64_t>());
            return;
        }
        if (ec) {
            if (IsQuietReadError(ec)) {
                Close();
            } else {
                RespondError(400, "malformed HTTP request: " + ec.message());
            }
            return;
        }

        if (auto length = parser_->content_length();
            length && *length > server_->options().max_body_bytes) {
            RespondTooLarge(length);
            return;
        }
        if (parser_->is_done()) {
            OnRequest();
            return;
        }
        auto expect = parser_->get()[http::field::expect];
        if (beast::iequals(expect, "100-continue")) {
            asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                              [self = shared_from_this()](beast::error_code ec, size_t) {
                                  if (self->state_ == State::kClosed) return;
                                  if (ec) {
                                      self->Close();
                                      return;
                                  }
                                  self->ReadBody();
                              });
            return;
        }
        ReadBody();
    }

    void ReadBody() {
        stream_.expires_after(server_->options().idle_timeout);
        http::async_read(
            stream_, buffer_, *parser_,
            [self = shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
    }

    void OnBody(beast::error_code ec) {
        if (state_ == State::kClosed) return;
        if (ec == http::error::body_limit) {
            RespondTooLarge({});
            return;
        }
        if (ec) {
            if (IsQuietReadError(ec)) {
                Close();
            } else {
                RespondError(400, "malformed HTTP request body: " + ec.message());
            }
            return;
        }
        OnRequest();
    }

    void OnRequest() {
        stream_.expires_never();
        http::request<http::string_body> message = parser_->release();
        parser_.reset();

        HttpRequest request;
        request.method = std::string(View(message.method_string()));
        request.target = std::string(View(message.target()));
        size_t question = request.target.find('?');
        request.path = request.target.substr(0, question);
        if (question != std::string::npos) request.query = request.target.substr(question + 1);
        for (const auto& field : message) {
            request.headers.emplace_back(Lowercase(View(field.name_string())),
                                         std::string(View(field.value())));
        }
        request.body = std::move(message.body());
        request.remote = remote_;
        request.version = static_cast<int>(message.version());

        version_ = request.version;
        keep_alive_ = message.keep_alive();
        chunked_ = false;
        state_ = State::kHandling;
        auto exchange = std::make_shared<ExchangeImpl>(shared_from_this(), std::move(request));
        exchange_ = exchange;
        current_ = exchange.get();
        server_->Handle(std::move(exchange));
    }

    beast::tcp_stream stream_;
    HttpServer::Impl* server_;
    std::string remote_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;

    State state_ = State::kReading;
    int version_ = 11;
    bool keep_alive_ = true;
    bool chunked_ = false;
    int status_ = 0;
    // The exchange being handled. Weak, so a handler that drops it unanswered is noticed
    // (Abandoned); held (answering_) from its answer on, until its response is over.
    std::weak_ptr<ExchangeImpl> exchange_;
    std::shared_ptr<ExchangeImpl> answering_;
    std::vector<FinishCallback> orphaned_;  // of an abandoned exchange
    ExchangeImpl* current_ = nullptr;

    std::string out_;       // bytes waiting for the write in progress
    std::string inflight_;  // bytes of the write in progress
    bool writing_ = false;
};

ExchangeImpl::~ExchangeImpl() {
    std::vector<FinishCallback> callbacks;
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (finished_) return;
        callbacks.swap(callbacks_);
    }
    // After Stop the io_context may be going away: nothing is answered any more.
    if (session_->server_stopped()) {
        for (auto& callback : callbacks) callback(500, false);
        return;
    }
    // The handler let go of it unanswered: the session answers 500 and reports the end.
    session_->Post([session = session_, self = this, callbacks = std::move(callbacks)]() mutable {
        session->Abandoned(self, std::move(callbacks));
    });
}

void ExchangeImpl::Respond(HttpResponse response) {
    session_->Post(
        [session = session_, self = shared_from_this(), response = std::move(response)]() mutable {
            session->DoRespond(std::move(self), std::move(response));
        });
}

void ExchangeImpl::StartStream(int status, Headers headers) {
    session_->Post(
        [session = session_, self = shared_from_this(), status, headers = std::move(headers)]() {
            session->DoStartStream(std::move(self), status, headers);
        });
}

void ExchangeImpl::Write(std::string bytes) {
    session_->Post([session = session_, self = shared_from_this(), bytes = std::move(bytes)] {
        session->DoWrite(self.get(), bytes);
    });
}

void ExchangeImpl::End() {
    session_->Post([session = session_, self = shared_from_this()] { session->DoEnd(self.get()); });
}

// ---- Timers and the server -------------------------------------------------------------------

namespace {

class TimerImpl final : public Timer, public std::enable_shared_from_this<TimerImpl> {
public:
    TimerImpl(asio::io_context& ioc, HttpServer::Impl* server)
        : timer_(asio::make_strand(ioc)), server_(server) {}

    void Arm(std::chrono::milliseconds delay, std::function<void()> callback) {
        asio::post(timer_.get_executor(), [self = shared_from_this(), delay,
                                           callback = std::move(callback)]() mutable {
            if (self->cancelled_) {
                self->server_->ForgetTimer(self.get());
                return;
            }
            self->timer_.expires_after(delay);
            self->timer_.async_wait([self, callback = std::move(callback)](beast::error_code ec) {
                self->server_->ForgetTimer(self.get());
                if (ec || self->cancelled_.exchange(true)) return;
                callback();
            });
        });
    }

    void Cancel() override {
        if (cancelled_.exchange(true)) return;
        asio::post(timer_.get_executor(), [self = shared_from_this()] { self->timer_.cancel(); });
    }

private:
    asio::steady_timer timer_;
    HttpServer::Impl* server_;
    std::atomic<bool> cancelled_{false};
};

}  // namespace

std::shared_ptr<Timer> HttpServer::Impl::After(std::chrono::milliseconds delay,
                                               std::function<void()> callback) {
    auto timer = std::make_shared<TimerImpl>(ioc_, this);
    {
        std::lock_guard<std::mutex> lock(timers_mu_);
        timers_[timer.get()] = timer;
    }
    timer->Arm(delay, std::move(callback));
    return timer;
}

void HttpServer::Impl::DoAccept() {
    acceptor_.async_accept(
        asio::make_strand(ioc_),
        [this](beast::error_code ec, tcp::socket socket) { OnAccept(ec, std::move(socket)); });
}

void HttpServer::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
    if (!acceptor_.is_open() || stopped_) return;
    if (ec) {
        if (ec == asio::error::operation_aborted) return;
        // Out of descriptors, say: wait a little instead of spinning on the error.
        logging::Get("gateway")->warn("accept: {}", ec.message());
        auto timer = std::make_shared<asio::steady_timer>(acceptor_.get_executor(), 50ms);
        timer->async_wait([this, timer](beast::error_code) {
            if (acceptor_.is_open()) DoAccept();
        });
        return;
    }
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    std::make_shared<Session>(std::move(socket), this)->Start();
    DoAccept();
}

void HttpServer::Impl::Stop() {
    if (stopped_.exchange(true)) return;
    closing_ = true;
    StopAccepting();

    std::vector<std::weak_ptr<Session>> sessions;
    {
        std::lock_guard<std::mutex> lock(sessions_mu_);
        for (auto& [raw, weak] : sessions_) sessions.push_back(weak);
    }
    for (auto& weak : sessions) {
        if (auto session = weak.lock()) {
            session->Post([session] { session->Close(); });
        }
    }
    std::vector<std::weak_ptr<Timer>> timers;
    {
        std::lock_guard<std::mutex> lock(timers_mu_);
        for (auto& [raw, weak] : timers_) timers.push_back(weak);
    }
    for (auto& weak : timers) {
        if (auto timer = weak.lock()) timer->Cancel();
    }

    // The closes and cancellations run; then the threads run out of work. Whatever still
    // holds them after a while (a handler's stray timer) is cut off by stop().
    guard_.reset();
    auto deadline = std::chrono::steady_clock::now() + 2s;
    while (!ioc_.stopped() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(2ms);
    }
    ioc_.stop();
    for (auto& thread : threads_) {
        if (thread.joinable()) thread.join();
    }
    threads_.clear();
}

Result<std::unique_ptr<HttpServer>> HttpServer::Listen(HttpServerOptions options, Handler handler) {
    auto impl = std::make_unique<Impl>(std::move(options), std::move(handler));
    EVENTLOOM_RETURN_IF_ERROR(impl->Listen());
    return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

void HttpServer::Run() { impl_->Run(); }

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() { Stop(); }
uint16_t HttpServer::port() const { return impl_->port(); }
size_t HttpServer::connections() const { return impl_->connections(); }
std::shared_ptr<Timer> HttpServer::After(std::chrono::milliseconds delay,
                                         std::function<void()> callback) {
    return impl_->After(delay, std::move(callback));
}
void HttpServer::StopAccepting() { impl_->StopAccepting(); }
void HttpServer::CloseWhenIdle() { impl_->CloseWhenIdle(); }
void HttpServer::Stop() { impl_->Stop(); }

}  // namespace eventloom::gateway::internal
