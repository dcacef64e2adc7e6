#include "sidecar/config.h"

#include <charconv>
#include <fstream>
#include <sstream>

namespace gatehouse::sidecar {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

Result<ListenAddress> ParseListen(std::string_view text) {
  ListenAddress out;
  if (text.substr(0, 5) == "unix:") {
    out.unix_path = std::string(text.substr(5));
    if (out.unix_path.empty()) return Status::InvalidArgument("--listen unix: needs a path");
    // sockaddr_un's sun_path holds 108 bytes with the terminating NUL.
    if (out.unix_path.size() > 107) {
      return Status::InvalidArgument("--listen unix:PATH: the path is longer than 107 bytes");
    }
    if (out.unix_path.find('\0') != std::string::npos) {
      return Status::InvalidArgument("--listen unix:PATH: the path holds a NUL byte");
    }
    return out;
  }
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Status::InvalidArgument("--listen must be HOST:PORT or [IPV6]:PORT, not '" +
                                     std::string(text) + "'");
    }
    out.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return Status::InvalidArgument("--listen must be HOST:PORT, not '" + std::string(text) + "'");
    }
    out.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
    if (out.host.find(':') != std::string::npos) {
      return Status::InvalidArgument(
          "--listen: write an IPv6 address in brackets, e.g. [::1]:7878");
    }
  }
  if (out.host.empty()) out.host = "0.0.0.0";
  int value = -1;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value < 0 ||
      value > 65535) {
    return Status::InvalidArgument("--listen: '" + std::string(port) +
                                   "' is not a port number (0-65535)");
  }
  out.port = value;
  return out;
}

Result<unsigned> ParseSocketMode(std::string_view text) {
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 8);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || value > 0777) {
    return Status::InvalidArgument("--socket-mode: '" + std::string(text.substr(0, 16)) +
                                   "' is not an octal mode such as 0660");
  }
  return value;
}

Result<std::string> ReadCallerSecret(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IoError("cannot read --caller-secret-file " + path);
  std::string secret(4098, '\0');
  in.read(secret.data(), static_cast<std::streamsize>(secret.size()));
  secret.resize(static_cast<size_t>(in.gcount()));
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.size() < 16 || secret.size() > 4096) {
    return Status::InvalidArgument("--caller-secret-file " + path +
                                   ": the secret must be 16 to 4096 bytes");
  }
  for (char c : secret) {
    if (c <= 0x20 || c >= 0x7F) {
      return Status::InvalidArgument("--caller-secret-file " + path +
                                     ": the secret must be visible ASCII, one line");
    }
  }
  return secret;
}

Result<std::vector<std::pair<std::string, std::string>>> ParseConfigText(std::string_view text,
                                                                         const std::string& file) {
  std::vector<std::pair<std::string, std::string>> out;
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    const std::string where = file + ":" + std::to_string(line_no) + ": ";
    std::string_view t = Trim(line);
    if (t.empty() || t.front() == '#' || t == "---") continue;
    if (line.front() == ' ' || line.front() == '\t') {
      return Status::InvalidArgument(where +
                                     "nested values are not supported; write `key: value` lines");
    }
    const size_t colon = t.find(':');
    if (colon == std::string_view::npos)
      return Status::InvalidArgument(where + "expected `key: value`");
    std::string key(Trim(t.substr(0, colon)));
    if (key.empty()) return Status::InvalidArgument(where + "empty key");
    for (char& c : key) {
      if (c == '_') c = '-';
    }
    std::string_view v = Trim(t.substr(colon + 1));
    std::string value;
    if (!v.empty() && (v.front() == '"' || v.front() == '\'')) {
      const char q = v.front();
      const size_t end = v.find(q, 1);
      if (end == std::string_view::npos)
        return Status::InvalidArgument(where + "unterminated quoted value");
      std::string_view rest = Trim(v.substr(end + 1));
      if (!rest.empty() && rest.front() != '#')
        return Status::InvalidArgument(where + "text after a quoted value");
      value = std::string(v.substr(1, end - 1));
    } else {
      const size_t hash = v.find(" #");
      if (hash != std::string_view::npos) v = Trim(v.substr(0, hash));
      if (!v.empty() &&
          (v.front() == '[' || v.front() == '{' || v.front() == '|' || v.front() == '>')) {
        return Status::InvalidArgument(where + "only plain scalar values are supported");
      }
      value = std::string(v);
    }
    for (const auto& [k, unused] : out) {
      if (k == key) return Status::InvalidArgument(where + "key '" + key + "' given twice");
    }
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

Result<std::vector<std::pair<std::string, std::string>>> ParseConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IoError("cannot read config file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseConfigText(ss.str(), path);
}

}  // namespace gatehouse::sidecar
