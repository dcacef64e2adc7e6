// The Prometheus text exposition format (0.0.4), line by line: the HELP and
// TYPE header of a metric family and its samples. Metrics::Render and
// AppendProcessMetrics write with these, so every family has one shape.
//
// Names, types and help text are the caller's constants (no escaping); label
// text comes already escaped (see LabelValue in metrics.cc).
//
// Thread safety: free functions over the caller's string.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace gatehouse::sidecar::prom {

// "# HELP name help\n# TYPE name type\n".
void Header(std::string& out, std::string_view name, std::string_view type, std::string_view help);
// "name{labels} value\n" ("name value\n" when `labels` is empty).
void Line(std::string& out, std::string_view name, std::string_view labels, uint64_t value);
void Line(std::string& out, std::string_view name, std::string_view labels, std::string_view value);
// A family of one unlabelled sample: Header, then Line.
void Metric(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            uint64_t value);
void Metric(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            std::string_view value);

}  // namespace gatehouse::sidecar::prom
