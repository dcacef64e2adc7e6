// SqliteWalWatch and ProbeStoreFile: SQLite's file formats read directly
// (sqlite.org/fileformat.html, sqlite.org/walformat.html), without SQLite.
//
// POSIX record locks belong to a process and a file, not to a descriptor:
// closing any descriptor of a file drops every lock the process holds on it,
// SQLite's included (sqlite.org/howtocorrupt.html, 2.2). A reader that opened
// and closed the store or its -shm file beside SQLite's connections would let
// another process checkpoint, delete the WAL or write under them. So the
// descriptors opened here are never closed: one per file (device and inode),
// kept for the life of the process; a file replaced under its path costs one
// more descriptor.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "store/sqlite_store.h"

namespace gatehouse {
namespace {

// A read-only descriptor of the file at `path`, opened on first use and never
// closed; -1 (errno set) when it cannot be opened.
int KeptDescriptor(const std::string& path) {
  static std::mutex mu;
  static auto* kept = new std::map<std::pair<dev_t, ino_t>, int>();  // never destroyed
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return -1;
  std::lock_guard<std::mutex> lock(mu);
  const auto it = kept->find({st.st_dev, st.st_ino});
  if (it != kept->end()) return it->second;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat opened;
  // Keyed by what was opened (the path may have been replaced since the stat).
  // Should that file be known already, this descriptor stays open unused.
  if (::fstat(fd, &opened) == 0) kept->emplace(std::pair{opened.st_dev, opened.st_ino}, fd);
  return fd;
}

}  // namespace

std::unique_ptr<SqliteWalWatch> SqliteWalWatch::Open(const std::string& store_path) {
  const int fd = KeptDescriptor(store_path + "-shm");
  if (fd < 0) return nullptr;
  return std::unique_ptr<SqliteWalWatch>(new SqliteWalWatch(fd));
}

bool SqliteWalWatch::Read(StoreStamp* out) const {
  const ssize_t n = ::pread(fd_, out->data(), out->size(), 0);
  // isInit (byte 12 of the first copy) is 1 once SQLite has built the index.
  return n == static_cast<ssize_t>(out->size()) && (*out)[12] == 1;
}

Status ProbeStoreFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return Status::FailedPrecondition("store " + path + " is not there");
  // An open descriptor keeps reading after a chmod: ask about the path.
  if (::faccessat(AT_FDCWD, path.c_str(), R_OK, AT_EACCESS) != 0) {
    const int err = errno;
    if (err == EACCES || err == EPERM)
      return Status::PermissionDenied("store " + path + " cannot be read: " + std::strerror(err));
    return Status::IoError("store " + path + " cannot be checked: " + std::strerror(err));
  }
  const int fd = KeptDescriptor(path);
  if (fd < 0) {
    const int err = errno;
    return Status::IoError("store " + path + " cannot be opened: " + std::strerror(err));
  }
  static constexpr char kMagic[16] = {'S', 'Q', 'L', 'i', 't', 'e', ' ', 'f',
                                      'o', 'r', 'm', 'a', 't', ' ', '3', '\0'};
  char head[sizeof(kMagic)];
  const ssize_t n = ::pread(fd, head, sizeof(head), 0);
  if (n < 0) {
    const int err = errno;
    return Status::IoError("store " + path + " cannot be read: " + std::strerror(err));
  }
  if (n != static_cast<ssize_t>(sizeof(head)) || std::memcmp(head, kMagic, sizeof(kMagic)) != 0)
    return Status::Corruption("store " + path +
                              " is not a SQLite database (damaged or overwritten)");
  return Status::Ok();
}

}  // namespace gatehouse
