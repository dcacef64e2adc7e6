// DecisionLog: one JSON line per decision (wire.h EncodeDecisionLog) to a
// file or to stdout. Lines hold a token's public id or its redacted prefix,
// never its secret.
//
// Thread safety: Write and Reopen may be called from any thread; a mutex
// keeps lines whole. Each line is flushed, so `tail -f` and tests see it at once.
#pragma once

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "gatehouse/status.h"

namespace gatehouse::sidecar {

class DecisionLog {
 public:
  // "-" is stdout; anything else a file opened for appending (created 0600).
  static Result<std::unique_ptr<DecisionLog>> Open(const std::string& path);
  ~DecisionLog();
  DecisionLog(const DecisionLog&) = delete;
  DecisionLog& operator=(const DecisionLog&) = delete;

  // Appends `line` and a newline. False when the write failed.
  bool Write(std::string_view line);
  // Reopens the file (after log rotation; gatehoused does it on SIGHUP).
  Status Reopen();
  const std::string& path() const { return path_; }

 private:
  explicit DecisionLog(std::string path) : path_(std::move(path)) {}
  Status OpenLocked();

  std::string path_;
  std::mutex mu_;
  FILE* file_ = nullptr;
  bool owned_ = false;
};

}  // namespace gatehouse::sidecar
