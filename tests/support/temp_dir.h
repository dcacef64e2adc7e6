// A fresh directory for one test (mkdtemp under $TMPDIR, or /tmp), removed
// with everything in it when the object goes, even where the test took a
// directory's permissions away. Header-only, so that tests which do not link
// gatehouse_test_support can use it. One object per test; not thread-safe.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

namespace gatehouse::testing {

class TempDir {
 public:
  // A test failure (and an empty path) when the directory cannot be made.
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/gatehouse-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      const int error = errno;
      ADD_FAILURE() << "mkdtemp " << tmpl << ": " << std::strerror(error);
      return;
    }
    path_ = tmpl;
  }
  ~TempDir() {
    if (path_.empty()) return;
    namespace fs = std::filesystem;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(path_, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec))
        fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace gatehouse::testing
