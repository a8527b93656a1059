#include "troupe/finops/mig_advice.hpp"

#include "troupe/finops/errc.hpp"

#include <deque>
#include <map>
#include <utility>

namespace troupe::finops {
namespace {

/// The smallest plain (no "+me" media extension) profile that holds `need`
/// MiB and `compute` slices: fewest memory slices, then fewest compute
/// slices, then table order. Null when none does.
const placement::mig_profile* smallest_fit(const std::vector<placement::mig_profile>& ps,
                                           uint64_t need, uint32_t compute) {
  const placement::mig_profile* best = nullptr;
  for (const auto& p : ps) {
    if (p.name.find('+') != std::string::npos) continue;
    if (p.memory_mib < need || p.compute_slices < compute) continue;
    if (best == nullptr || p.memory_slices < best->memory_slices ||
        (p.memory_slices == best->memory_slices &&
         p.compute_slices < best->compute_slices))
      best = &p;
  }
  return best;
}

} // namespace

result<mig_advice> advise_mig(const std::string& gpu_model, uint64_t gpu_memory_mib,
                              const std::vector<inference_job>& jobs,
                              const mig_advice_options& options) {
  const auto* profiles = placement::mig_profiles_for(gpu_model);
  if (profiles == nullptr)
    return error{errc::invalid_argument,
                 "MIG advice: GPU model \"" + gpu_model + "\" has no MIG support"};
  if (gpu_memory_mib == 0)
    return error{errc::invalid_argument, "MIG advice: gpu_memory_mib must be > 0"};
  if (options.headroom_permille < 0 || options.headroom_permille > 10'000)
    return error{errc::invalid_argument,
                 "MIG advice: headroom_permille: expected 0..10000, got " +
                     std::to_string(options.headroom_permille)};
  if (options.max_memory_share_permille < 0 || options.max_memory_share_permille > 1000)
    return error{errc::invalid_argument,
                 "MIG advice: max_memory_share_permille: expected 0..1000, got " +
                     std::to_string(options.max_memory_share_permille)};

  mig_advice out;
  out.gpu_model = gpu_model;
  out.gpus_before = static_cast<uint32_t>(jobs.size());

  // Jobs by profile, in input order; the profile order follows the table.
  std::map<size_t, std::deque<allocation_id>> by_profile;
  for (const auto& j : jobs) {
    const unsigned __int128 peak = j.peak_memory_mib;
    const bool small =
        peak * 1000 <= static_cast<unsigned __int128>(options.max_memory_share_permille) *
                           gpu_memory_mib;
    const auto need = static_cast<uint64_t>(
        (peak * static_cast<unsigned __int128>(1000 + options.headroom_permille) + 999) /
        1000);
    const auto* p = small ? smallest_fit(*profiles, need, j.min_compute_slices) : nullptr;
    // A profile with every compute slice is a whole GPU under another name.
    if (p == nullptr || p->compute_slices >= placement::mig_compute_slices) {
      out.whole_gpu.push_back(j.allocation);
      continue;
    }
    by_profile[static_cast<size_t>(p - profiles->data())].push_back(j.allocation);
  }

  for (;;) {
    std::vector<std::pair<std::string, uint32_t>> demand;
    for (const auto& [index, queue] : by_profile)
      if (!queue.empty())
        demand.emplace_back((*profiles)[index].name, static_cast<uint32_t>(queue.size()));
    if (demand.empty()) break;
    auto placed = placement::pack_profiles(gpu_model, demand);
    if (placed.empty()) { // cannot happen for plain profiles; keep them whole
      for (auto& [index, queue] : by_profile)
        for (auto id : queue)
          out.whole_gpu.push_back(id);
      break;
    }
    advised_gpu gpu;
    for (auto& inst : placed) {
      for (auto& [index, queue] : by_profile) {
        if ((*profiles)[index].name != inst.profile || queue.empty()) continue;
        gpu.jobs.push_back(queue.front());
        queue.pop_front();
        break;
      }
      gpu.instances.push_back(std::move(inst));
    }
    out.layout.push_back(std::move(gpu));
  }

  out.gpus_after = static_cast<uint32_t>(out.layout.size() + out.whole_gpu.size());
  out.summary = std::to_string(jobs.size()) + " inference jobs on " + gpu_model + ": " +
                std::to_string(jobs.size() - out.whole_gpu.size()) +
                " fit MIG instances on " + std::to_string(out.layout.size()) + " GPUs, " +
                std::to_string(out.whole_gpu.size()) + " keep a whole GPU; frees " +
                std::to_string(out.gpus_freed()) + " of " +
                std::to_string(out.gpus_before) + " GPUs";
  return out;
}

} // namespace troupe::finops
