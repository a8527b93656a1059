#include "troupe/placement/request.hpp"

#include "troupe/placement/errc.hpp"

namespace troupe::placement {

const char* to_string(strategy s) noexcept {
  switch (s) {
  case strategy::pack:
    return "pack";
  case strategy::spread:
    return "spread";
  case strategy::strict_pack:
    return "strict_pack";
  case strategy::strict_spread:
    return "strict_spread";
  case strategy::topology:
    return "topology";
  }
  return "?";
}

std::optional<strategy> parse_strategy(std::string_view s) noexcept {
  for (auto st : {strategy::pack, strategy::spread, strategy::strict_pack,
                  strategy::strict_spread, strategy::topology})
    if (s == to_string(st)) return st;
  return std::nullopt;
}

double bundle::gpu_equivalent() const noexcept {
  if (gpus > 0) return gpus;
  if (gpu_milli > 0) return gpu_milli / 1000.0;
  return 0.0; // MIG instances are accounted by profile, not here
}

double gang_request::gpu_equivalent() const noexcept {
  double sum = 0;
  for (auto& b : bundles)
    sum += b.gpu_equivalent();
  return sum;
}

result<void> gang_request::validate() const {
  std::string problems;
  auto problem = [&](const std::string& s) {
    if (!problems.empty()) problems += '\n';
    problems += "request " + std::to_string(id.value()) + ": " + s;
  };
  if (bundles.empty()) problem("gang has no bundles");
  if (min_bundles > bundles.size())
    problem("min_bundles " + std::to_string(min_bundles) + " exceeds bundles (" +
            std::to_string(bundles.size()) + ")");
  for (size_t i = 0; i < bundles.size(); ++i) {
    const auto& b = bundles[i];
    std::string w = "bundle " + std::to_string(i) + ": ";
    int kinds = (b.gpus > 0) + (b.gpu_milli > 0) + (!b.mig_profile.empty());
    if (kinds > 1)
      problem(w + "asks for more than one of whole GPUs, a GPU share and a MIG profile");
    if (b.gpu_milli >= 1000)
      problem(w + "gpu_milli " + std::to_string(b.gpu_milli) +
              " must be below 1000 (ask for whole GPUs instead)");
    if (!b.wants_gpu() && b.cpu_milli == 0 && b.memory_mib == 0)
      problem(w + "asks for nothing");
    if (b.gpus > 1024) problem(w + "asks for more than 1024 GPUs on one node");
  }
  if (runtime_estimate.count() < 0) problem("negative runtime estimate");
  if (require_nvlink_domain && placement_strategy == strategy::strict_spread &&
      bundles.size() > 1)
    problem(
        "require_nvlink_domain keeps the gang on one node; strict_spread forbids that");
  if (!problems.empty()) return error{errc::invalid_argument, problems};
  return ok();
}

} // namespace troupe::placement
