#include "troupe/finops/telemetry.hpp"

#include "troupe/finops/errc.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <system_error>

namespace troupe::finops {
namespace {

int64_t whole_ms(duration d) noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// Visible form of a token for error messages: printable ASCII kept, other
// bytes as \xNN, at most 32 bytes.
std::string shown(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 32; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > 32) out += "...";
  return out;
}

// Parses a decimal integer no larger than `max`; nullopt otherwise.
std::optional<uint64_t> parse_bounded(std::string_view tok, uint64_t max) {
  if (tok.empty() || tok.size() > 20) return std::nullopt;
  for (char c : tok)
    if (c < '0' || c > '9') return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
  if (ec != std::errc{} || p != tok.data() + tok.size() || v > max) return std::nullopt;
  return v;
}

bool is_blank(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\r';
}

} // namespace

result<void> validate(const gpu_sample& s) {
  if (s.node.empty()) return error{errc::invalid_argument, "gpu sample: empty node name"};
  if (s.node.size() > 255)
    return error{errc::invalid_argument, "gpu sample: node name of " +
                                             std::to_string(s.node.size()) +
                                             " bytes (at most 255)"};
  const std::string where =
      "gpu sample " + s.node + "/" + std::to_string(s.gpu_index) + ": ";
  if (s.utilisation_pct > 100)
    return error{errc::invalid_argument, where + "utilisation " +
                                             std::to_string(s.utilisation_pct) +
                                             " over 100"};
  if (s.memory_used_mib > max_sample_memory_mib)
    return error{errc::invalid_argument, where + "memory " +
                                             std::to_string(s.memory_used_mib) +
                                             " MiB over the maximum"};
  if (s.power_mw > max_sample_power_mw)
    return error{errc::invalid_argument,
                 where + "power " + std::to_string(s.power_mw) + " mW over the maximum"};
  if (s.at.time_since_epoch().count() < 0)
    return error{errc::invalid_argument, where + "time before the clock's epoch"};
  return ok();
}

void sample_summary::add(const gpu_sample& s, uint32_t busy_threshold_pct) noexcept {
  ++samples;
  utilisation_sum += s.utilisation_pct;
  utilisation_max = std::max(utilisation_max, s.utilisation_pct);
  if (s.utilisation_pct >= busy_threshold_pct) ++busy_samples;
  memory_sum_mib += s.memory_used_mib;
  memory_max_mib = std::max(memory_max_mib, s.memory_used_mib);
  power_sum_mw += s.power_mw;
  power_max_mw = std::max(power_max_mw, s.power_mw);
}

void sample_summary::merge(const sample_summary& o) noexcept {
  samples += o.samples;
  utilisation_sum += o.utilisation_sum;
  utilisation_max = std::max(utilisation_max, o.utilisation_max);
  busy_samples += o.busy_samples;
  memory_sum_mib += o.memory_sum_mib;
  memory_max_mib = std::max(memory_max_mib, o.memory_max_mib);
  power_sum_mw += o.power_sum_mw;
  power_max_mw = std::max(power_max_mw, o.power_max_mw);
}

double sample_summary::mean_utilisation_pct() const noexcept {
  if (samples == 0) return 0.0;
  return static_cast<double>(utilisation_sum) / static_cast<double>(samples);
}

int64_t sample_summary::busy_gpu_ms(duration sample_interval) const noexcept {
  return static_cast<int64_t>(busy_samples) * whole_ms(sample_interval);
}

int64_t sample_summary::idle_gpu_ms(duration sample_interval) const noexcept {
  return static_cast<int64_t>(idle_samples()) * whole_ms(sample_interval);
}

std::unordered_map<allocation_id, sample_summary>
aggregate_by_allocation(std::span<const gpu_sample> samples,
                        const aggregation_rule& rule) {
  std::unordered_map<allocation_id, sample_summary> out;
  for (const auto& s : samples) {
    if (s.allocation.value() == 0 || !rule.window.contains(s.at)) continue;
    out[s.allocation].add(s, rule.busy_threshold_pct);
  }
  return out;
}

std::unordered_map<std::string, sample_summary>
aggregate_by_tenant(std::span<const gpu_sample> samples, const aggregation_rule& rule,
                    const std::unordered_map<allocation_id, std::string>& tenant_of,
                    std::string_view unattributed) {
  std::unordered_map<std::string, sample_summary> out;
  for (const auto& s : samples) {
    if (!rule.window.contains(s.at)) continue;
    auto it = s.allocation.value() == 0 ? tenant_of.end() : tenant_of.find(s.allocation);
    if (it == tenant_of.end())
      out[std::string{unattributed}].add(s, rule.busy_threshold_pct);
    else
      out[it->second].add(s, rule.busy_threshold_pct);
  }
  return out;
}

result<std::vector<utilisation_hook_line>> parse_utilisation_hook(std::string_view text,
                                                                  std::string_view origin,
                                                                  uint32_t gpu_count) {
  auto fail = [&](size_t line, const std::string& what) {
    return error{errc::invalid_argument,
                 std::string{origin} + ":" + std::to_string(line) + ": " + what};
  };
  if (text.size() > max_hook_file_bytes)
    return error{errc::invalid_argument,
                 std::string{origin} + ": " + std::to_string(text.size()) +
                     " bytes, over the limit of " + std::to_string(max_hook_file_bytes)};
  std::vector<utilisation_hook_line> out;
  std::vector<bool> seen(gpu_count, false);
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    ++line_no;
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(
        pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (line.size() > max_hook_line_bytes)
      return fail(line_no, "line of " + std::to_string(line.size()) +
                               " bytes, over the limit of " +
                               std::to_string(max_hook_line_bytes));
    if (auto hash = line.find('#'); hash != std::string_view::npos)
      line = line.substr(0, hash);
    std::vector<std::string_view> fields;
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && is_blank(line[i]))
        ++i;
      size_t start = i;
      while (i < line.size() && !is_blank(line[i]))
        ++i;
      if (i > start) fields.push_back(line.substr(start, i - start));
    }
    if (fields.empty()) continue;
    if (fields.size() < 2)
      return fail(line_no, "expected 'gpu_index utilisation_pct [memory_used_mib] "
                           "[power_mw]', got 1 field");
    if (fields.size() > 4)
      return fail(line_no,
                  "expected at most 4 fields, got " + std::to_string(fields.size()));
    utilisation_hook_line h;
    auto idx = parse_bounded(fields[0], UINT32_MAX);
    if (!idx)
      return fail(line_no, "gpu_index: expected an unsigned integer, got \"" +
                               shown(fields[0]) + "\"");
    if (*idx >= gpu_count)
      return fail(line_no, "gpu_index: " + std::to_string(*idx) + " but the node has " +
                               std::to_string(gpu_count) + " GPUs");
    h.gpu_index = static_cast<uint32_t>(*idx);
    if (seen[h.gpu_index])
      return fail(line_no, "gpu_index: GPU " + std::to_string(*idx) + " given twice");
    seen[h.gpu_index] = true;
    auto util = parse_bounded(fields[1], 100);
    if (!util)
      return fail(line_no, "utilisation_pct: expected an integer in [0, 100], got \"" +
                               shown(fields[1]) + "\"");
    h.utilisation_pct = static_cast<uint32_t>(*util);
    if (fields.size() > 2) {
      auto mem = parse_bounded(fields[2], max_sample_memory_mib);
      if (!mem)
        return fail(line_no, "memory_used_mib: expected an integer in [0, " +
                                 std::to_string(max_sample_memory_mib) + "], got \"" +
                                 shown(fields[2]) + "\"");
      h.memory_used_mib = *mem;
    }
    if (fields.size() > 3) {
      auto pw = parse_bounded(fields[3], max_sample_power_mw);
      if (!pw)
        return fail(line_no, "power_mw: expected an integer in [0, " +
                                 std::to_string(max_sample_power_mw) + "], got \"" +
                                 shown(fields[3]) + "\"");
      h.power_mw = static_cast<uint32_t>(*pw);
    }
    out.push_back(h);
  }
  return out;
}

simulated_source::simulated_source(std::string node, uint32_t gpu_count,
                                   std::filesystem::path hook_file)
    : node_(std::move(node)), hook_file_(std::move(hook_file)), gpus_(gpu_count) {}

result<void> simulated_source::set_utilisation(uint32_t gpu, uint32_t pct) {
  if (gpu >= gpus_.size())
    return error{errc::invalid_argument, "simulated GPU " + std::to_string(gpu) +
                                             " does not exist (node has " +
                                             std::to_string(gpus_.size()) + ")"};
  if (pct > 100)
    return error{errc::invalid_argument,
                 "utilisation " + std::to_string(pct) + " over 100"};
  gpus_[gpu].utilisation_pct = pct;
  return ok();
}

result<void> simulated_source::set_memory(uint32_t gpu, uint64_t mib) {
  if (gpu >= gpus_.size())
    return error{errc::invalid_argument,
                 "simulated GPU " + std::to_string(gpu) + " does not exist"};
  if (mib > max_sample_memory_mib)
    return error{errc::invalid_argument,
                 "memory " + std::to_string(mib) + " MiB over the maximum"};
  gpus_[gpu].memory_used_mib = mib;
  return ok();
}

result<void> simulated_source::set_power(uint32_t gpu, uint32_t mw) {
  if (gpu >= gpus_.size())
    return error{errc::invalid_argument,
                 "simulated GPU " + std::to_string(gpu) + " does not exist"};
  if (mw > max_sample_power_mw)
    return error{errc::invalid_argument,
                 "power " + std::to_string(mw) + " mW over the maximum"};
  gpus_[gpu].power_mw = mw;
  return ok();
}

result<bool> simulated_source::reload() {
  if (hook_file_.empty()) return false;
  std::error_code ec;
  auto mtime = std::filesystem::last_write_time(hook_file_, ec);
  if (ec) return false; // missing (not written yet, or removed): keep the values
  auto size = std::filesystem::file_size(hook_file_, ec);
  if (ec) return false;
  file_version v{mtime, size};
  if (seen_ && *seen_ == v) {
    if (file_error_) return *file_error_;
    return false;
  }
  seen_ = v;
  file_error_.reset();
  const std::string origin = hook_file_.string();
  if (size > max_hook_file_bytes) {
    file_error_ = error{errc::invalid_argument, origin + ": " + std::to_string(size) +
                                                    " bytes, over the limit of " +
                                                    std::to_string(max_hook_file_bytes)};
    return *file_error_;
  }
  std::ifstream in(hook_file_, std::ios::binary);
  if (!in) return false; // vanished between stat and open: next time
  std::string text(static_cast<size_t>(size) + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  auto lines = parse_utilisation_hook(text, origin, gpu_count());
  if (!lines) {
    file_error_ = lines.err();
    return std::move(lines).err();
  }
  for (const auto& l : *lines) {
    auto& g = gpus_[l.gpu_index];
    g.utilisation_pct = l.utilisation_pct;
    if (l.memory_used_mib) g.memory_used_mib = *l.memory_used_mib;
    if (l.power_mw) g.power_mw = *l.power_mw;
  }
  return true;
}

result<std::vector<gpu_sample>> simulated_source::sample(time_point at) {
  if (auto r = reload(); !r) return std::move(r).err();
  std::vector<gpu_sample> out;
  out.reserve(gpus_.size());
  for (uint32_t i = 0; i < gpus_.size(); ++i) {
    gpu_sample s;
    s.node = node_;
    s.gpu_index = i;
    s.uuid = "SIM-" + node_ + "-" + std::to_string(i);
    s.at = at;
    s.utilisation_pct = gpus_[i].utilisation_pct;
    s.memory_used_mib = gpus_[i].memory_used_mib;
    s.power_mw = gpus_[i].power_mw;
    out.push_back(std::move(s));
  }
  return out;
}

} // namespace troupe::finops
