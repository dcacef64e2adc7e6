#include "sidecar/decision_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace gatehouse::sidecar {
namespace {

// Cuts the file back to just after its last newline (to empty if it has
// none): what follows is a line a killed process did not finish.
Status CutTornLastLine(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return Status::Ok();
  off_t end = st.st_size;
  char buf[4096];
  while (end > 0) {
    const off_t start = end > static_cast<off_t>(sizeof(buf)) ? end - static_cast<off_t>(sizeof(buf)) : 0;
    const ssize_t n = ::pread(fd, buf, static_cast<size_t>(end - start), start);
    if (n != end - start)
      return Status::IoError("cannot read decision log " + path + ": " + std::strerror(errno));
    const void* nl = ::memrchr(buf, '\n', static_cast<size_t>(n));
    if (nl != nullptr) {
      end = start + (static_cast<const char*>(nl) - buf) + 1;
      break;
    }
    end = start;
  }
  if (end == st.st_size) return Status::Ok();
  if (::ftruncate(fd, end) != 0)
    return Status::IoError("cannot repair decision log " + path + ": " + std::strerror(errno));
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<DecisionLog>> DecisionLog::Open(const std::string& path) {
  std::unique_ptr<DecisionLog> log(new DecisionLog(path));
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
  // Read-write (not write-only) so that a torn last line can be found.
  const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0)
    return Status::IoError("cannot open decision log " + path_ + ": " + std::strerror(errno));
  Status cut = CutTornLastLine(fd, path_);
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
  if (fd_ < 0) return false;
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
    if (n <= 0) return false;
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
