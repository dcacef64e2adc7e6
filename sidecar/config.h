// Small parsers for gatehoused's command line and config file.
//
// The config file (--config FILE) is a flat YAML mapping of option names to
// scalar values, one per line, the same names as the long options:
//
//   # /etc/gatehouse/gatehoused.yaml
//   listen: 127.0.0.1:7878
//   store: /var/lib/gatehouse/gatehouse.db
//   policy: /etc/gatehouse/policies
//   threads: 64
//   decision-log: /var/log/gatehouse/decisions.jsonl
//
// Only this subset of YAML is read (no nesting, lists or multi-line values;
// values may be quoted with '…' or "…"; '#' starts a comment); anything else
// is refused with FILE:LINE: message. Precedence: command line, then the
// environment (GATEHOUSE_STORE, GATEHOUSE_POLICY), then the file, then defaults.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gatehouse/status.h"

namespace gatehouse::sidecar {

struct ListenAddress {
  std::string host;
  int port = 0;
  std::string unix_path;  // set for unix:PATH (host and port then unused)
};

// "HOST:PORT", "[IPv6]:PORT", ":PORT" (all interfaces: 0.0.0.0) or
// "unix:PATH" (a Unix-domain socket; PATH absolute or relative, at most 107
// bytes). Port 0 asks for a free port. InvalidArgument otherwise.
Result<ListenAddress> ParseListen(std::string_view text);

// An octal permission mode such as "0660" or "660" (at most 0777).
Result<unsigned> ParseSocketMode(std::string_view text);

// The shared secret of --caller-secret-file: the file's content without its
// trailing newline. It must be 16 to 4096 bytes of visible ASCII (it travels
// as a header value). The error never quotes the content.
Result<std::string> ReadCallerSecret(const std::string& path);

// Parses config text; `file` names it in errors. Keys are returned as written
// (underscores turned into dashes); the caller checks they are known options.
Result<std::vector<std::pair<std::string, std::string>>> ParseConfigText(std::string_view text,
                                                                         const std::string& file);
Result<std::vector<std::pair<std::string, std::string>>> ParseConfigFile(const std::string& path);

}  // namespace gatehouse::sidecar
