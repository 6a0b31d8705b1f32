// Status and Result<T>: how eventloom reports errors on I/O and broker paths.
//
// A Status is either OK or a code with a message. The code carries the retry decision, so a
// caller that knows nothing about the failing component can still act on it:
//   kUnavailable, kDeadlineExceeded, kAborted  -> retry with backoff
//   kResourceExhausted                          -> backpressure: slow down, retry later
//   kInvalidArgument, kFailedPrecondition, ...  -> do not retry (dead-letter the event)
//   kDataLoss                                   -> corruption; never retried, always reported
//
// Status and Result<T> are values: cheap to move, safe to copy, not thread-safe to mutate.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace eventloom {

enum class StatusCode : int {
    kOk = 0,
    kCancelled,
    kInvalidArgument,
    kDeadlineExceeded,
    kNotFound,
    kAlreadyExists,
    kResourceExhausted,
    kFailedPrecondition,
    kAborted,
    kOutOfRange,
    kUnimplemented,
    kInternal,
    kUnavailable,
    kDataLoss,
};

// "ok", "invalid_argument", ...: the spelling used in logs, metrics and the CLI.
std::string_view StatusCodeName(StatusCode code);

// True for codes where the same operation may succeed later (retry with backoff).
bool IsRetryable(StatusCode code);

class [[nodiscard]] Status {
public:
    Status() = default;
    Status(StatusCode code, std::string message);

    static Status Ok() { return Status(); }

    bool ok() const { return code_ == StatusCode::kOk; }
    StatusCode code() const { return code_; }
    const std::string& message() const { return message_; }
    bool retryable() const { return IsRetryable(code_); }

    // "invalid_argument: attribute 'specversion' must be '1.0'".
    std::string ToString() const;

    // Returns a copy whose message is "context: message".
    Status WithContext(std::string_view context) const;

    // Marks a status as deliberately dropped.
    void IgnoreError() const {}

    friend bool operator==(const Status& a, const Status& b) {
        return a.code_ == b.code_ && a.message_ == b.message_;
    }

private:
    StatusCode code_ = StatusCode::kOk;
    std::string message_;
};

Status CancelledError(std::string message);
Status InvalidArgumentError(std::string message);
Status DeadlineExceededError(std::string message);
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status ResourceExhaustedError(std::string message);
Status FailedPreconditionError(std::string message);
Status AbortedError(std::string message);
Status OutOfRangeError(std::string message);
Status UnimplementedError(std::string message);
Status InternalError(std::string message);
Status UnavailableError(std::string message);
Status DataLossError(std::string message);

// A value of T, or the Status that explains why there is none. Never holds an OK status
// without a value.
template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
    Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
        assert(!status_.ok() && "Result constructed from an OK status without a value");
        if (status_.ok()) status_ = InternalError("Result built from OK status without value");
    }

    bool ok() const { return status_.ok(); }
    const Status& status() const { return status_; }

    T& value() & {
        assert(ok());
        return *value_;
    }
    const T& value() const& {
        assert(ok());
        return *value_;
    }
    T&& value() && {
        assert(ok());
        return std::move(*value_);
    }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    template <typename U>
    T value_or(U&& fallback) const& {
        return ok() ? *value_ : static_cast<T>(std::forward<U>(fallback));
    }

private:
    Status status_;
    std::optional<T> value_;
};

}  // namespace eventloom

// Returns from the enclosing function when `expr` (a Status) is not OK.
#define EVENTLOOM_RETURN_IF_ERROR(expr)                        \
    do {                                                       \
        ::eventloom::Status eventloom_status_ = (expr);        \
        if (!eventloom_status_.ok()) return eventloom_status_; \
    } while (false)

#define EVENTLOOM_CONCAT_INNER_(a, b) a##b
#define EVENTLOOM_CONCAT_(a, b) EVENTLOOM_CONCAT_INNER_(a, b)

// `EVENTLOOM_ASSIGN_OR_RETURN(auto x, MakeX());` binds the value or returns the error.
#define EVENTLOOM_ASSIGN_OR_RETURN(lhs, expr) \
    EVENTLOOM_ASSIGN_OR_RETURN_IMPL_(EVENTLOOM_CONCAT_(eventloom_result_, __LINE__), lhs, expr)
#define EVENTLOOM_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
    auto tmp = (expr);                                   \
    if (!tmp.ok()) return tmp.status();                  \
    lhs = std::move(tmp).value()
