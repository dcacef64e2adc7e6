// DecisionLog: one JSON line per decision (wire.h EncodeDecisionLog) to a
// file or to stdout. Lines hold a token's public id or its redacted prefix,
// never its secret.
//
// Each line goes out in one write(2) as it is made (no buffering), so
// `tail -f` and tests see it at once. A process killed inside that write (a
// SIGKILL between two pages of the file) can leave a line without its end;
// opening the file cuts such a torn last line off, so the next line does not
// continue it and the file stays one JSON object per line. (So: one sidecar
// per decision-log file.)
//
// The file is opened without following a symlink, must be a regular file,
// and is made 0600 whatever mode it had. A torn last line is cut off only in
// a file that holds our records (empty, or its first line a JSON object
// starting with {"time":); any other existing file is refused, so pointing
// --decision-log at the wrong file never destroys its tail.
//
// When a write fails (a full disk), the first failure and every recovery are
// reported on stderr (and at most every 10 s while it keeps failing, with
// the count of lost lines); healthy() tells whether the last write worked.
//
// Thread safety: Write and Reopen may be called from any thread; a mutex
// keeps lines whole.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "gatehouse/status.h"

namespace gatehouse::sidecar {

class DecisionLog {
 public:
  // "-" is stdout; anything else a file opened for appending (created 0600),
  // after cutting off a torn last line.
  // `kind` names the log in messages: the access log (access_log.h) is
  // the same kind of file, one JSON object per line starting {"time":.
  static Result<std::unique_ptr<DecisionLog>> Open(const std::string& path,
                                                   const std::string& kind = "decision log");
  ~DecisionLog();
  DecisionLog(const DecisionLog&) = delete;
  DecisionLog& operator=(const DecisionLog&) = delete;

  // Appends `line` and a newline. False when the write failed.
  bool Write(std::string_view line);
  // False while writes fail (from the first failed write to the next one
  // that works).
  bool healthy() const { return healthy_.load(std::memory_order_relaxed); }
  // Reopens the file (after log rotation; gatehoused does it on SIGHUP),
  // cutting off a torn last line as Open does.
  Status Reopen();
  const std::string& path() const { return path_; }

 private:
  DecisionLog(std::string path, std::string kind)
      : path_(std::move(path)), kind_(std::move(kind)) {}
  Status OpenLocked();
  bool WriteLocked(std::string_view line, int* error);

  std::string path_;
  const std::string kind_;
  std::mutex mu_;
  int fd_ = -1;
  bool owned_ = false;
  std::atomic<bool> healthy_{true};
  uint64_t lost_ = 0;        // lines lost since the last working write
  int64_t last_report_ = 0;  // steady seconds of the last failure report
};

}  // namespace gatehouse::sidecar
