// StoreWatch and ProbeStoreFile: SQLite's file formats read directly
// (sqlite.org/fileformat.html, sqlite.org/walformat.html), without SQLite.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "gatehouse/store.h"

namespace gatehouse {

std::unique_ptr<StoreWatch> StoreWatch::Open(const std::string& store_path) {
  const int fd = ::open((store_path + "-shm").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  return std::unique_ptr<StoreWatch>(new StoreWatch(fd));
}

StoreWatch::~StoreWatch() { ::close(fd_); }

bool StoreWatch::Read(StoreStamp* out) const {
  const ssize_t n = ::pread(fd_, out->data(), out->size(), 0);
  // isInit (byte 12 of the first copy) is 1 once SQLite has built the index.
  return n == static_cast<ssize_t>(out->size()) && (*out)[12] == 1;
}

Status ProbeStoreFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return Status::FailedPrecondition("store " + path + " is not there");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == EACCES || err == EPERM)
      return Status::PermissionDenied("store " + path + " cannot be read: " + std::strerror(err));
    return Status::IoError("store " + path + " cannot be opened: " + std::strerror(err));
  }
  static constexpr char kMagic[16] = {'S', 'Q', 'L', 'i', 't', 'e', ' ', 'f',
                                      'o', 'r', 'm', 'a', 't', ' ', '3', '\0'};
  char head[sizeof(kMagic)];
  const ssize_t n = ::pread(fd, head, sizeof(head), 0);
  const int err = errno;
  ::close(fd);
  if (n < 0) return Status::IoError("store " + path + " cannot be read: " + std::strerror(err));
  if (n != static_cast<ssize_t>(sizeof(head)) || std::memcmp(head, kMagic, sizeof(kMagic)) != 0)
    return Status::Corruption("store " + path + " is not a SQLite database (damaged or overwritten)");
  return Status::Ok();
}

}  // namespace gatehouse
