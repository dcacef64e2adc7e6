// Status and Result<T>: the error values of the engine (leveldb's shape).
//
// Anything fallible in engine/ returns a [[nodiscard]] Status or Result<T>.
// A Status is a code plus a message; ok() is true for success. Result<T>
// holds either a value or a non-ok Status. Both are plain values: thread-safe
// to copy, not to mutate concurrently.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace gatehouse {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad input from a caller (maps to CLI exit 2)
  kNotFound,         // unknown user, workspace, API user, token (exit 4)
  kAlreadyExists,    // a name already taken (exit 5)
  kPermissionDenied, // denied by policy (exit 3)
  kIoError,          // store, file or network trouble (exit 1)
  kCorruption,       // a store or file that is not what it should be (exit 1)
  kFailedPrecondition, // e.g. the store does not exist yet (exit 1)
  kInternal,         // a bug (exit 1)
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) { return {StatusCode::kInvalidArgument, std::move(msg)}; }
  static Status NotFound(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
  static Status AlreadyExists(std::string msg) { return {StatusCode::kAlreadyExists, std::move(msg)}; }
  static Status PermissionDenied(std::string msg) { return {StatusCode::kPermissionDenied, std::move(msg)}; }
  static Status IoError(std::string msg) { return {StatusCode::kIoError, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {StatusCode::kCorruption, std::move(msg)}; }
  static Status FailedPrecondition(std::string msg) { return {StatusCode::kFailedPrecondition, std::move(msg)}; }
  static Status Internal(std::string msg) { return {StatusCode::kInternal, std::move(msg)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  bool IsNotFound() const { return code_ == StatusCode::kNotFound; }
  bool IsAlreadyExists() const { return code_ == StatusCode::kAlreadyExists; }
  bool IsPermissionDenied() const { return code_ == StatusCode::kPermissionDenied; }
  bool IsInvalidArgument() const { return code_ == StatusCode::kInvalidArgument; }

  // "OK" or the message (the code is implied by how the caller reports it).
  std::string ToString() const { return ok() ? std::string("OK") : message_; }

 private:
  Status(StatusCode code, std::string msg) : code_(code), message_(std::move(msg)) {}
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Either a T or a non-ok Status. Constructing from an ok Status is a bug and
// is turned into an Internal error rather than an empty value.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).ok()) v_ = Status::Internal("Result built from an ok Status");
  }
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace gatehouse

#define GATEHOUSE_RETURN_IF_ERROR(expr)          \
  do {                                           \
    ::gatehouse::Status gatehouse_status_ = (expr); \
    if (!gatehouse_status_.ok()) return gatehouse_status_; \
  } while (0)
