#include "sidecar/decision_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "sidecar/log.h"

namespace gatehouse::sidecar {
namespace {

// Cuts the file back to just after its last newline (to empty if it has
// none): what follows is a line a killed process did not finish.
Status CutTornLastLine(int fd, const std::string& path, const std::string& kind) {
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return Status::Ok();
  off_t end = st.st_size;
  char buf[4096];
  while (end > 0) {
    const off_t start = end > static_cast<off_t>(sizeof(buf)) ? end - static_cast<off_t>(sizeof(buf)) : 0;
    const ssize_t n = ::pread(fd, buf, static_cast<size_t>(end - start), start);
    if (n != end - start)
      return Status::IoError("cannot read " + kind + " " + path + ": " + std::strerror(errno));
    const void* nl = ::memrchr(buf, '\n', static_cast<size_t>(n));
    if (nl != nullptr) {
      end = start + (static_cast<const char*>(nl) - buf) + 1;
      break;
    }
    end = start;
  }
  if (end == st.st_size) return Status::Ok();
  if (::ftruncate(fd, end) != 0)
    return Status::IoError("cannot repair " + kind + " " + path + ": " + std::strerror(errno));
  return Status::Ok();
}

// Whether a non-empty file holds our records: its first line starts as
// EncodeDecisionLog's lines do.
bool HoldsOurRecords(int fd) {
  constexpr std::string_view kStart = "{\"time\":";
  char buf[16] = {};
  const ssize_t n = ::pread(fd, buf, kStart.size(), 0);
  return n == static_cast<ssize_t>(kStart.size()) && std::string_view(buf, kStart.size()) == kStart;
}

int64_t SteadySeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<std::unique_ptr<DecisionLog>> DecisionLog::Open(const std::string& path,
                                                      const std::string& kind) {
  std::unique_ptr<DecisionLog> log(new DecisionLog(path, kind));
  std::lock_guard<std::mutex> lock(log->mu_);
  GATEHOUSE_RETURN_IF_ERROR(log->OpenLocked());
  return log;
}

DecisionLog::~DecisionLog() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

Status DecisionLog::OpenLocked() {
  if (path_ == "-") {
    fd_ = STDOUT_FILENO;
    owned_ = false;
    return Status::Ok();
  }
  // Read-write (not write-only) so that a torn last line can be found; never
  // through a symlink; non-blocking so that a FIFO cannot hang the open.
  const int fd = ::open(path_.c_str(),
                        O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
  if (fd < 0) {
    return Status::IoError("cannot open " + kind_ + " " + path_ + ": " +
                           (errno == ELOOP ? std::string("it is a symbolic link")
                                           : std::string(std::strerror(errno))));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::IoError(kind_ + " " + path_ + " is not a regular file");
  }
  if (st.st_size > 0 && !HoldsOurRecords(fd)) {
    ::close(fd);
    return Status::IoError(kind_ + " " + path_ +
                           " holds something other than Gatehouse decision records; refusing to "
                           "append to it (give a new path, or empty the file)");
  }
  if ((st.st_mode & 07777) != 0600 && ::fchmod(fd, 0600) != 0) {
    ::close(fd);
    return Status::IoError("cannot make " + kind_ + " " + path_ + " mode 0600: " +
                           std::strerror(errno));
  }
  Status cut = CutTornLastLine(fd, path_, kind_);
  if (!cut.ok()) {
    ::close(fd);
    return cut;
  }
  fd_ = fd;
  owned_ = true;
  return Status::Ok();
}

bool DecisionLog::Write(std::string_view line) {
  std::lock_guard<std::mutex> lock(mu_);
  int error = 0;
  const bool ok = fd_ >= 0 && WriteLocked(line, &error);
  if (ok) {
    if (!healthy_.load(std::memory_order_relaxed)) {
      Log(LogLevel::kWarn,
          kind_ + " " + path_ + ": writing again (" + std::to_string(lost_) + " lines were lost)");
    }
    healthy_.store(true, std::memory_order_relaxed);
    lost_ = 0;
    return true;
  }
  ++lost_;
  const int64_t now = SteadySeconds();
  if (healthy_.load(std::memory_order_relaxed) || now - last_report_ >= 10) {
    Log(LogLevel::kError, kind_ + " " + path_ + ": write failed (" +
                              (error != 0 ? std::string(std::strerror(error)) : std::string("not open")) +
                              "); " + std::to_string(lost_) + " lines lost so far");
    last_report_ = now;
  }
  healthy_.store(false, std::memory_order_relaxed);
  return false;
}

bool DecisionLog::WriteLocked(std::string_view line, int* error) {
  char newline = '\n';
  // One writev for the line and its newline; after a short write (a full
  // disk, a signal) go on from where it stopped.
  for (size_t written = 0; written < line.size() + 1;) {
    iovec parts[2];
    int count = 0;
    if (written < line.size())
      parts[count++] = {const_cast<char*>(line.data()) + written, line.size() - written};
    parts[count++] = {&newline, 1};
    const ssize_t n = ::writev(fd_, parts, count);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = n < 0 ? errno : ENOSPC;
      return false;
    }
    written += static_cast<size_t>(n);
  }
  return true;
}

Status DecisionLog::Reopen() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!owned_) return Status::Ok();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  return OpenLocked();
}

}  // namespace gatehouse::sidecar
