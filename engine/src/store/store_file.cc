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
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
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
  // The header is read through a shared mapping of the file's first page:
  // the same page cache pages SQLite's own connections map and write (in
  // this process too), so a commit's header write is seen by the next load,
  // with no system call per request (a pread() cost ~2.4 µs here, a tenth
  // of a request). A file shorter than the header cannot be mapped safely
  // (a load past its end would fault): then the caller asks the store.
  // Truncating -shm under a running SQLite faults SQLite's own mapping as
  // well; SQLite itself only ever shortens it to 3 bytes, within the page.
  struct stat st;
  if (::fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(sizeof(StoreStamp))) return nullptr;
  void* map = ::mmap(nullptr, sizeof(StoreStamp), PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return nullptr;
  return std::unique_ptr<SqliteWalWatch>(new SqliteWalWatch(static_cast<const unsigned char*>(map)));
}

SqliteWalWatch::~SqliteWalWatch() {
  // Unmapping drops no lock (only closing a descriptor does).
  ::munmap(const_cast<unsigned char*>(map_), sizeof(StoreStamp));
}

bool SqliteWalWatch::Read(StoreStamp* out) const {
  // Word by word with acquire loads: each call reads the page again (the
  // compiler may neither cache nor reorder it), in the order SQLite's own
  // readers do. A read torn by a concurrent commit differs from both
  // stamps, so it counts as "changed": a false positive, never a negative.
  static_assert(sizeof(StoreStamp) % sizeof(uint64_t) == 0);
  const auto* words = reinterpret_cast<const uint64_t*>(map_);
  for (size_t i = 0; i < sizeof(StoreStamp) / sizeof(uint64_t); ++i) {
    const uint64_t w = __atomic_load_n(words + i, __ATOMIC_ACQUIRE);
    std::memcpy(out->data() + i * sizeof w, &w, sizeof w);
  }
  // isInit (byte 12 of the first copy) is 1 once SQLite has built the index.
  return (*out)[12] == 1;
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
