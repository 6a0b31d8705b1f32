// HttpTestClient: a small HTTP/1.1 client over a plain loopback socket, for the gateway's
// tests. It keeps its connection open between requests (and reconnects when the server closed
// it), reads bodies framed by Content-Length, by chunked encoding or by the connection's end,
// and can read a streamed response's head before its body.
//
// Every read waits at most `timeout` (default 30 s): a test fails instead of hanging. Not
// thread-safe: one client per thread.
#pragma once

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace eventloom::testing {

struct HttpReply {
    int status = 0;                              // 0: no response (see error)
    std::map<std::string, std::string> headers;  // lowercase names
    std::string body;
    std::string error;  // what went wrong on the wire

    std::string Header(const std::string& name) const;  // "" when absent
    nlohmann::json Json() const;                        // discarded when not JSON
};

// One server-sent event.
struct SseMessage {
    std::string event;  // "" when the stream names none
    std::string id;
    std::string data;  // data lines joined by '\n'
};
// The events of a whole text/event-stream body; comment lines are skipped.
std::vector<SseMessage> ParseSse(std::string_view body);

using RequestHeaders = std::vector<std::pair<std::string, std::string>>;

class HttpTestClient {
public:
    explicit HttpTestClient(int port, std::chrono::milliseconds timeout = std::chrono::seconds(30));
    ~HttpTestClient();
    HttpTestClient(const HttpTestClient&) = delete;
    HttpTestClient& operator=(const HttpTestClient&) = delete;

    HttpReply Get(const std::string& path, const RequestHeaders& headers = {});
    // Content-Type application/json unless `headers` name one.
    HttpReply Post(const std::string& path, const std::string& body,
                   const RequestHeaders& headers = {});
    HttpReply Request(const std::string& method, const std::string& path, const std::string& body,
                      const RequestHeaders& headers);

    // Sends a request and reads only the status line and headers; ReadBody reads the rest.
    HttpReply Begin(const std::string& method, const std::string& path, const std::string& body,
                    const RequestHeaders& headers = {});
    std::string ReadBody(HttpReply* head);
    // For a chunked body: reads chunks until what was read of it contains `marker`, or it
    // ends; returns what was read. ReadBody then returns the rest.
    std::string ReadUntil(HttpReply* head, std::string_view marker);

    // Sends `bytes` as they are and reads one response.
    HttpReply Raw(const std::string& bytes);

    // Times a new connection had to be opened (the first one included).
    int connects() const { return connects_; }

private:
    bool Connect(std::string* error);
    void Close();
    bool SendAll(std::string_view bytes, std::string* error);
    bool Fill(std::string* error);  // reads more bytes into buffer_; false at the end
    bool ReadLine(std::string* line, std::string* error);
    bool ReadHead(HttpReply* reply);
    // One chunk of a chunked body into `data`; false at its end (or on an error).
    bool NextChunk(HttpReply* head, std::string* data);
    std::string Serialize(const std::string& method, const std::string& path,
                          const std::string& body, const RequestHeaders& headers) const;

    int port_;
    std::chrono::milliseconds timeout_;
    int fd_ = -1;
    int connects_ = 0;
    std::string buffer_;  // received, not yet consumed
    bool close_after_ = false;
    std::string last_method_;
};

}  // namespace eventloom::testing
