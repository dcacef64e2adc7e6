#include "sidecar/exposition.h"

namespace gatehouse::sidecar::prom {

void Header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out.append(name);
  out += ' ';
  out.append(help);
  out += "\n# TYPE ";
  out.append(name);
  out += ' ';
  out.append(type);
  out += '\n';
}

void Line(std::string& out, std::string_view name, std::string_view labels,
          std::string_view value) {
  out.append(name);
  if (!labels.empty()) {
    out += '{';
    out.append(labels);
    out += '}';
  }
  out += ' ';
  out.append(value);
  out += '\n';
}

void Line(std::string& out, std::string_view name, std::string_view labels, uint64_t value) {
  Line(out, name, labels, std::string_view(std::to_string(value)));
}

void Metric(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            uint64_t value) {
  Header(out, name, type, help);
  Line(out, name, "", value);
}

void Metric(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            std::string_view value) {
  Header(out, name, type, help);
  Line(out, name, "", value);
}

}  // namespace gatehouse::sidecar::prom
