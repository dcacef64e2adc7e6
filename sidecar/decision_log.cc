#include "sidecar/decision_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace gatehouse::sidecar {

Result<std::unique_ptr<DecisionLog>> DecisionLog::Open(const std::string& path) {
  std::unique_ptr<DecisionLog> log(new DecisionLog(path));
  std::lock_guard<std::mutex> lock(log->mu_);
  GATEHOUSE_RETURN_IF_ERROR(log->OpenLocked());
  return log;
}

DecisionLog::~DecisionLog() {
  if (file_ != nullptr) {
    std::fflush(file_);
    if (owned_) std::fclose(file_);
  }
}

Status DecisionLog::OpenLocked() {
  if (path_ == "-") {
    file_ = stdout;
    owned_ = false;
    return Status::Ok();
  }
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0)
    return Status::IoError("cannot open decision log " + path_ + ": " + std::strerror(errno));
  FILE* f = ::fdopen(fd, "a");
  if (f == nullptr) {
    ::close(fd);
    return Status::IoError("cannot open decision log " + path_ + ": " + std::strerror(errno));
  }
  file_ = f;
  owned_ = true;
  return Status::Ok();
}

bool DecisionLog::Write(std::string_view line) {
  std::lock_guard<std::mutex> lock(mu_);
  if (file_ == nullptr) return false;
  bool ok = std::fwrite(line.data(), 1, line.size(), file_) == line.size();
  ok = std::fputc('\n', file_) != EOF && ok;
  ok = std::fflush(file_) == 0 && ok;
  return ok;
}

Status DecisionLog::Reopen() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!owned_) return Status::Ok();
  if (file_ != nullptr) std::fclose(file_);
  file_ = nullptr;
  return OpenLocked();
}

}  // namespace gatehouse::sidecar
