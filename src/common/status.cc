#include "eventloom/status.h"

namespace eventloom {

std::string_view StatusCodeName(StatusCode code) {
    switch (code) {
        case StatusCode::kOk:
            return "ok";
        case StatusCode::kCancelled:
            return "cancelled";
        case StatusCode::kInvalidArgument:
            return "invalid_argument";
        case StatusCode::kDeadlineExceeded:
            return "deadline_exceeded";
        case StatusCode::kNotFound:
            return "not_found";
        case StatusCode::kAlreadyExists:
            return "already_exists";
        case StatusCode::kResourceExhausted:
            return "resource_exhausted";
        case StatusCode::kFailedPrecondition:
            return "failed_precondition";
        case StatusCode::kAborted:
            return "aborted";
        case StatusCode::kOutOfRange:
            return "out_of_range";
        case StatusCode::kUnimplemented:
            return "unimplemented";
        case StatusCode::kInternal:
            return "internal";
        case StatusCode::kUnavailable:
            return "unavailable";
        case StatusCode::kDataLoss:
            return "data_loss";
    }
    return "unknown";
}

bool IsRetryable(StatusCode code) {
    switch (code) {
        case StatusCode::kUnavailable:
        case StatusCode::kDeadlineExceeded:
        case StatusCode::kResourceExhausted:
        case StatusCode::kAborted:
            return true;
        default:
            return false;
    }
}

Status::Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {
    if (code_ == StatusCode::kOk) message_.clear();
}

std::string Status::ToString() const {
    if (ok()) return "ok";
    std::string out(StatusCodeName(code_));
    out += ": ";
    out += message_;
    return out;
}

Status Status::WithContext(std::string_view context) const {
    if (ok()) return *this;
    std::string message(context);
    message += ": ";
    message += message_;
    return Status(code_, std::move(message));
}

Status CancelledError(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
Status InvalidArgumentError(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
Status DeadlineExceededError(std::string m) {
    return {StatusCode::kDeadlineExceeded, std::move(m)};
}
Status NotFoundError(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
Status AlreadyExistsError(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
Status ResourceExhaustedError(std::string m) {
    return {StatusCode::kResourceExhausted, std::move(m)};
}
Status FailedPreconditionError(std::string m) {
    return {StatusCode::kFailedPrecondition, std::move(m)};
}
Status AbortedError(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
Status OutOfRangeError(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
Status UnimplementedError(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
Status InternalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
Status UnavailableError(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
Status DataLossError(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }

}  // namespace eventloom
