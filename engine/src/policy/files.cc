#include "policy/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "policy/model.h"
#include "policy/yaml_reader.h"

namespace gatehouse::internal {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string Join(const std::string& dir, const std::string& name) {
  return !dir.empty() && dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::string SizeText(uint64_t bytes) {
  if (bytes >= (uint64_t{1} << 20) && bytes % (uint64_t{1} << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

const char* KindOf(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "not a regular file";
}

void Warn(std::vector<PolicyError>* warnings, const std::string& path, std::string why) {
  warnings->push_back({path, 0, 0, "warning: skipped: " + std::move(why)});
}

// The YAML files of a folder under the rule in files.h. `tests` is the
// subfolder name allowed silently beside them (none for a tests/ folder).
std::vector<std::string> FilesIn(const std::string& dir, bool policy_folder, std::vector<PolicyError>* errors,
                                 std::vector<PolicyError>* warnings) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    errors->push_back({dir, 1, 1, std::string("cannot read the folder: ") + std::strerror(errno)});
    return out;
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string path = Join(dir, name);
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {  // a dangling symlink, or a race
      if (IsYamlName(name)) errors->push_back({path, 1, 1, std::string("cannot read: ") + std::strerror(errno)});
      else Warn(warnings, path, std::string("cannot stat it: ") + std::strerror(errno));
      continue;
    }
    const bool hidden = name[0] == '.';
    if (S_ISDIR(st.st_mode)) {
      if (hidden) continue;
      if (policy_folder && (name == "tests" || name == "invariants")) continue;
      Warn(warnings, path + "/", policy_folder ? "a subfolder (only tests/ and invariants/ have a meaning here)"
                                               : "a subfolder (policy tests are the folder's *.yaml files)");
      continue;
    }
    if (IsYamlName(name)) {
      if (!S_ISREG(st.st_mode)) {
        errors->push_back({path, 1, 1, std::string(KindOf(st.st_mode)) + ", not a regular file: refused"});
        continue;
      }
      out.push_back(path);
      continue;
    }
    if (!hidden && Lower(name).ends_with(".json") && S_ISREG(st.st_mode)) continue;  // a JSON Schema
    if (hidden) Warn(warnings, path, "a hidden file (names starting with '.' are never policy files)");
    else if (!S_ISREG(st.st_mode)) Warn(warnings, path, std::string(KindOf(st.st_mode)));
    else Warn(warnings, path, "not a policy file (policy files are named *.yaml or *.yml)");
  }
  if (out.size() > kMaxLoadFiles) {
    errors->push_back({dir, 1, 1, std::to_string(out.size()) + " YAML files; at most " +
                                      std::to_string(kMaxLoadFiles) + " in one policy folder"});
    out.clear();
  }
  return out;
}

// stat() of a --policy path, with an error when it is neither a regular
// file nor a folder. Never opens it, so a FIFO cannot block.
bool StatPath(const std::string& path, struct stat* st, std::vector<PolicyError>* errors) {
  if (stat(path.c_str(), st) != 0) {
    errors->push_back({path, 1, 1, errno == ENOENT ? std::string("no such file or directory")
                                                   : std::string("cannot read: ") + std::strerror(errno)});
    return false;
  }
  if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode)) {
    errors->push_back({path, 1, 1, std::string(KindOf(st->st_mode)) +
                                       ": a policy is a regular file or a folder of them"});
    return false;
  }
  return true;
}

}  // namespace

bool IsYamlName(std::string_view filename) {
  if (filename.empty() || filename[0] == '.') return false;
  const std::string lower = Lower(filename);
  for (std::string_view ext : {".yaml", ".yml"})
    if (lower.size() > ext.size() && lower.ends_with(ext)) return true;
  return false;
}

std::vector<std::string> PolicyFiles(const std::string& path, std::vector<PolicyError>* errors,
                                     std::vector<PolicyError>* warnings) {
  struct stat st {};
  if (!StatPath(path, &st, errors)) return {};
  if (S_ISREG(st.st_mode)) return {path};
  const size_t before = errors->size();
  std::vector<std::string> out = FilesIn(path, true, errors, warnings);
  if (out.empty() && errors->size() == before)
    errors->push_back({path, 1, 1, "no policy files in this folder (expected *.yaml or *.yml)"});
  return out;
}

std::vector<std::string> PolicyTestFiles(const std::string& path, std::vector<PolicyError>* errors,
                                         std::vector<PolicyError>* warnings) {
  struct stat st {};
  if (!StatPath(path, &st, errors)) return {};
  if (S_ISREG(st.st_mode)) return {path};
  const std::string tests = Join(path, "tests");
  struct stat tst {};
  if (stat(tests.c_str(), &tst) == 0 && S_ISDIR(tst.st_mode)) return FilesIn(tests, false, errors, warnings);
  return FilesIn(path, false, errors, warnings);
}

std::vector<std::string> InvariantFiles(const std::string& path, std::vector<PolicyError>* errors,
                                        std::vector<PolicyError>* warnings) {
  struct stat st {};
  if (!StatPath(path, &st, errors)) return {};
  if (S_ISREG(st.st_mode)) return {path};
  return FilesIn(path, false, errors, warnings);
}

bool ReadFile(const std::string& path, size_t limit, std::string* out, std::vector<PolicyError>* errors) {
  // O_NONBLOCK: opening a FIFO that replaced the file since stat() must not
  // wait for a writer; fstat() below refuses it.
  const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    errors->push_back({path, 1, 1, errno == ENOENT   ? std::string("cannot read: no such file")
                                   : errno == EACCES ? std::string("cannot read: permission denied")
                                                     : std::string("cannot read: ") + std::strerror(errno)});
    return false;
  }
  struct stat st {};
  bool ok = fstat(fd, &st) == 0;
  if (ok && S_ISDIR(st.st_mode)) {
    errors->push_back({path, 1, 1, "is a directory, expected a policy file"});
    ok = false;
  } else if (ok && !S_ISREG(st.st_mode)) {
    errors->push_back({path, 1, 1, std::string(KindOf(st.st_mode)) + ", not a regular file: refused"});
    ok = false;
  } else if (ok && static_cast<uint64_t>(st.st_size) > limit) {
    errors->push_back({path, 1, 1, "file too large: " + SizeText(static_cast<uint64_t>(st.st_size)) +
                                       "; a policy file holds at most " + SizeText(limit)});
    ok = false;
  }
  if (ok) {
    out->clear();
    out->reserve(static_cast<size_t>(st.st_size));
    char buf[65536];
    while (true) {
      const ssize_t n = read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        errors->push_back({path, 1, 1, std::string("cannot read: ") + std::strerror(errno)});
        ok = false;
        break;
      }
      if (n == 0) break;
      if (out->size() + static_cast<size_t>(n) > limit) {  // it grew while we read
        errors->push_back({path, 1, 1, "file too large: a policy file holds at most " + SizeText(limit)});
        ok = false;
        break;
      }
      out->append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return ok;
}

}  // namespace gatehouse::internal
