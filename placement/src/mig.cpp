// MIG profile tables and placement rules.
//
// Source: NVIDIA Multi-Instance GPU User Guide (v580 documentation):
//  - "Supported MIG Profiles": Table 6 "GPU Instance Profiles on A100"
//    (A100-SXM4-40GB; the note there gives the A100-80GB names), Table 7 "GPU
//    Instance Profiles on H100" (H100 80GB, PCIe and SXM5), Table 8 "GPU
//    Instance Profiles on H200" (141GB): names, fraction of memory (memory
//    slices out of 8), fraction of SMs (compute slices out of 7) and "Number
//    of Instances Available" (max_instances).
//  - "Getting Started with MIG" -> "nvidia-smi mig -lgipp": the placements,
//    {0,1,2,3,4,5,6}:1 for 1g (and 1g+me), {0,2,4,6}:2 for the two-memory-slice
//    1g, {0,2,4}:2 for 2g, {0,4}:4 for 3g, {0}:4 for 4g, {0}:8 for 7g, where
//    {starts}:size counts memory slices. Same geometry on A100 and Hopper.
//  - "Concepts" -> "Partitioning" (Figures 7 and 8, profile placements on
//    A100): an instance occupies the memory slices of its placement; valid
//    combinations never overlap. It also notes that 4g + 3g needs driver
//    R510 or later; these tables assume a current driver.
// The guide's section for "the H100 94GB product (PCIe and SXM5)" (H100
// NVL) has the same geometry; its names (1g.12gb, 1g.24gb, 2g.24gb, 3g.47gb,
// 4g.47gb, 7g.94gb) are those `nvidia-smi mig -lgip` prints on an H100 NVL.
//
// Two deliberate readings of the guide:
//  - Table 6 lists A100-40GB 1g.10gb with 1/8 of memory, but its placements
//    are {0,2,4,6}:2 (two memory slices, like 1g.20gb on the 80GB parts,
//    which Table 7 lists as 1/4); we use 2.
//  - memory_mib is the GB in the profile name * 1024, not the usable memory.

#include "troupe/placement/mig.hpp"

#include "troupe/runtime/errc.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace troupe::placement {
namespace {

// ---------------------------------------------------------------------------
// Errors: the one place that picks the error code (switch to placement::errc
// here).

enum class failure { invalid_argument, not_found };

error mig_error(failure f, std::string message) {
  return error{f == failure::not_found ? runtime::errc::not_found
                                       : runtime::errc::invalid_argument,
               std::move(message)};
}

// ---------------------------------------------------------------------------
// Tables.

struct mig_model_table {
  std::string model;
  std::vector<mig_profile> profiles;
};

std::string gb_name(uint32_t compute, uint64_t gb, const char* suffix = "") {
  return std::to_string(compute) + "g." + std::to_string(gb) + "gb" + suffix;
}

// The seven GPU instance profiles every GA100 and GH100 MIG part offers,
// named by the part's GB figures. Geometry (memory slices, placements) from
// `nvidia-smi mig -lgipp`; instance counts from the guide's tables:
//
//   profile        compute  memory  max  starts
//   1g.<small>     1        1       7    0 1 2 3 4 5 6
//   1g.<small>+me  1        1       1    0 1 2 3 4 5 6   (media extensions)
//   1g.<quarter>   1        2       4    0 2 4 6
//   2g.<quarter>   2        2       3    0 2 4
//   3g.<half>      3        4       2    0 4
//   4g.<half>      4        4       1    0
//   7g.<full>      7        8       1    0
std::vector<mig_profile> seven_slice_profiles(uint64_t small_gb, uint64_t quarter_gb,
                                              uint64_t half_gb, uint64_t full_gb) {
  auto row = [](std::string name, uint32_t compute, uint32_t memory, uint64_t gb,
                uint32_t max, std::vector<uint32_t> starts) {
    return mig_profile{.name = std::move(name),
                       .compute_slices = compute,
                       .memory_slices = memory,
                       .memory_mib = gb * 1024,
                       .max_instances = max,
                       .starts = std::move(starts)};
  };
  return {
      row(gb_name(1, small_gb), 1, 1, small_gb, 7, {0, 1, 2, 3, 4, 5, 6}),
      row(gb_name(1, small_gb, "+me"), 1, 1, small_gb, 1, {0, 1, 2, 3, 4, 5, 6}),
      row(gb_name(1, quarter_gb), 1, 2, quarter_gb, 4, {0, 2, 4, 6}),
      row(gb_name(2, quarter_gb), 2, 2, quarter_gb, 3, {0, 2, 4}),
      row(gb_name(3, half_gb), 3, 4, half_gb, 2, {0, 4}),
      row(gb_name(4, half_gb), 4, 4, half_gb, 1, {0}),
      row(gb_name(7, full_gb), 7, 8, full_gb, 1, {0}),
  };
}

const std::vector<mig_model_table>& tables() {
  static const std::vector<mig_model_table> all = {
      {"A100-40GB", seven_slice_profiles(5, 10, 20, 40)},
      {"A100-80GB", seven_slice_profiles(10, 20, 40, 80)},
      {"H100-80GB", seven_slice_profiles(10, 20, 40, 80)},
      {"H100-94GB", seven_slice_profiles(12, 24, 47, 94)},
      {"H200-141GB", seven_slice_profiles(18, 35, 71, 141)},
  };
  return all;
}

const mig_profile* find_in(const std::vector<mig_profile>& profiles,
                           std::string_view name) noexcept {
  for (const auto& p : profiles) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

bool lists_start(const mig_profile& p, uint32_t start) noexcept {
  return std::find(p.starts.begin(), p.starts.end(), start) != p.starts.end();
}

std::string join_names(const std::vector<mig_profile>& profiles) {
  std::string out;
  for (const auto& p : profiles) {
    if (!out.empty()) out += ", ";
    out += p.name;
  }
  return out;
}

std::string join_starts(const std::vector<uint32_t>& starts) {
  std::string out;
  for (uint32_t s : starts) {
    if (!out.empty()) out += ", ";
    out += std::to_string(s);
  }
  return out;
}

std::string slice_range(const mig_profile& p, uint32_t start) {
  if (p.memory_slices == 1) return "memory slice " + std::to_string(start);
  return "memory slices " + std::to_string(start) + "-" +
         std::to_string(start + p.memory_slices - 1);
}

std::string no_mig_message(std::string_view model) {
  std::string models;
  for (const auto& m : mig_models()) {
    if (!models.empty()) models += ", ";
    models += m;
  }
  return "GPU model \"" + std::string(model) +
         "\" has no MIG support (MIG models: " + models + ")";
}

// ---------------------------------------------------------------------------
// Packing: exact search over starts for a small multiset of profiles.

// Finds starts for items[i..] on top of `mask`/`compute`, trying starts in
// ascending order (first fit first). Identical neighbouring items take
// ascending starts, which skips permutations of the same placement.
bool find_starts(const std::vector<const mig_profile*>& items, size_t i, uint8_t mask,
                 uint32_t compute, std::vector<uint32_t>& starts) {
  if (i == items.size()) return true;
  const mig_profile& p = *items[i];
  if (compute + p.compute_slices > mig_compute_slices) return false;
  for (uint32_t s : p.starts) {
    if (i > 0 && items[i - 1] == items[i] && s <= starts[i - 1]) continue;
    const uint8_t m = mig_memory_mask(p, s);
    if (m == 0 || (m & mask) != 0) continue;
    starts[i] = s;
    if (find_starts(items, i + 1, static_cast<uint8_t>(mask | m),
                    compute + p.compute_slices, starts)) {
      return true;
    }
  }
  return false;
}

} // namespace

// ---------------------------------------------------------------------------
// Table lookups.

const std::vector<mig_profile>* mig_profiles_for(std::string_view gpu_model) noexcept {
  for (const auto& t : tables()) {
    if (t.model == gpu_model) return &t.profiles;
  }
  return nullptr;
}

const mig_profile* find_mig_profile(std::string_view gpu_model,
                                    std::string_view profile) noexcept {
  const auto* profiles = mig_profiles_for(gpu_model);
  return profiles == nullptr ? nullptr : find_in(*profiles, profile);
}

const std::vector<std::string>& mig_models() noexcept {
  static const std::vector<std::string> models = [] {
    std::vector<std::string> out;
    for (const auto& t : tables())
      out.push_back(t.model);
    return out;
  }();
  return models;
}

uint8_t mig_memory_mask(const mig_profile& p, uint32_t start) noexcept {
  if (p.memory_slices == 0 || start >= mig_memory_slices ||
      p.memory_slices > mig_memory_slices - start) {
    return 0;
  }
  return static_cast<uint8_t>(((1u << p.memory_slices) - 1u) << start);
}

// ---------------------------------------------------------------------------
// mig_gpu_layout.

mig_gpu_layout::mig_gpu_layout(std::string gpu_model)
    : model_(std::move(gpu_model)), profiles_(mig_profiles_for(model_)) {}

uint32_t mig_gpu_layout::count(std::string_view profile) const noexcept {
  return static_cast<uint32_t>(
      std::count_if(instances_.begin(), instances_.end(),
                    [&](const mig_instance& i) { return i.profile == profile; }));
}

result<void> mig_gpu_layout::can_place(std::string_view profile, uint32_t start) const {
  if (profiles_ == nullptr)
    return mig_error(failure::invalid_argument, no_mig_message(model_));
  const mig_profile* p = find_in(*profiles_, profile);
  if (p == nullptr) {
    return mig_error(failure::invalid_argument,
                     model_ + ": unknown MIG profile \"" + std::string(profile) +
                         "\" (profiles: " + join_names(*profiles_) + ")");
  }
  if (!lists_start(*p, start)) {
    return mig_error(failure::invalid_argument,
                     model_ + ": " + p->name + " cannot start at memory slice " +
                         std::to_string(start) +
                         " (valid starts: " + join_starts(p->starts) + ")");
  }
  if (compute_used_ + p->compute_slices > mig_compute_slices) {
    return mig_error(failure::invalid_argument,
                     model_ + ": " + p->name + " at " + std::to_string(start) +
                         " needs " + std::to_string(p->compute_slices) +
                         " compute slice" + (p->compute_slices == 1 ? "" : "s") +
                         " but only " +
                         std::to_string(mig_compute_slices - compute_used_) + " of " +
                         std::to_string(mig_compute_slices) + " are free");
  }
  if (const uint32_t n = count(p->name); n >= p->max_instances) {
    return mig_error(failure::invalid_argument,
                     model_ + ": " + p->name + " allows at most " +
                         std::to_string(p->max_instances) + " instance" +
                         (p->max_instances == 1 ? "" : "s") + " per GPU and " +
                         std::to_string(n) + " " + (n == 1 ? "is" : "are") + " placed");
  }
  const uint8_t mask = mig_memory_mask(*p, start);
  if ((mask & memory_mask_) != 0) {
    for (const auto& other : instances_) {
      const mig_profile* q = find_in(*profiles_, other.profile);
      if ((mig_memory_mask(*q, other.start) & mask) == 0) continue;
      return mig_error(failure::invalid_argument,
                       model_ + ": " + p->name + " at " + std::to_string(start) + " (" +
                           slice_range(*p, start) + ") overlaps " + q->name + " at " +
                           std::to_string(other.start) + " (" +
                           slice_range(*q, other.start) + ")");
    }
    TROUPE_ASSERT(false, "memory mask set but no instance owns the slice");
  }
  return troupe::ok();
}

result<void> mig_gpu_layout::place(std::string_view profile, uint32_t start) {
  if (auto r = can_place(profile, start); !r) return r;
  const mig_profile* p = find_in(*profiles_, profile);
  auto pos = std::find_if(instances_.begin(), instances_.end(),
                          [&](const mig_instance& i) { return i.start > start; });
  instances_.insert(pos, mig_instance{p->name, start});
  memory_mask_ = static_cast<uint8_t>(memory_mask_ | mig_memory_mask(*p, start));
  compute_used_ += p->compute_slices;
  return troupe::ok();
}

result<void> mig_gpu_layout::remove(uint32_t start) {
  auto it = std::find_if(instances_.begin(), instances_.end(),
                         [&](const mig_instance& i) { return i.start == start; });
  if (it == instances_.end()) {
    return mig_error(failure::not_found, model_ +
                                             ": no MIG instance starts at memory slice " +
                                             std::to_string(start));
  }
  const mig_profile* p = find_in(*profiles_, it->profile);
  TROUPE_ASSERT(p != nullptr, "placed instance has a profile outside the table");
  memory_mask_ = static_cast<uint8_t>(memory_mask_ & ~mig_memory_mask(*p, start));
  compute_used_ -= p->compute_slices;
  instances_.erase(it);
  return troupe::ok();
}

std::vector<uint32_t> mig_gpu_layout::valid_starts(std::string_view profile) const {
  std::vector<uint32_t> out;
  if (profiles_ == nullptr) return out;
  const mig_profile* p = find_in(*profiles_, profile);
  if (p == nullptr) return out;
  for (uint32_t s : p->starts) {
    if (can_place(profile, s)) out.push_back(s);
  }
  return out;
}

std::optional<uint32_t> mig_gpu_layout::first_fit(std::string_view profile) const {
  if (profiles_ == nullptr) return std::nullopt;
  const mig_profile* p = find_in(*profiles_, profile);
  if (p == nullptr) return std::nullopt;
  for (uint32_t s : p->starts) {
    if (can_place(profile, s)) return s;
  }
  return std::nullopt;
}

bool mig_gpu_layout::valid() const {
  if (profiles_ == nullptr) {
    return instances_.empty() && memory_mask_ == 0 && compute_used_ == 0;
  }
  uint8_t mask = 0;
  uint32_t compute = 0;
  std::vector<uint32_t> counts(profiles_->size(), 0);
  for (size_t i = 0; i < instances_.size(); ++i) {
    const mig_instance& inst = instances_[i];
    if (i > 0 && instances_[i - 1].start >= inst.start) return false; // ordered, unique
    const mig_profile* p = find_in(*profiles_, inst.profile);
    if (p == nullptr || !lists_start(*p, inst.start)) return false;
    const uint8_t m = mig_memory_mask(*p, inst.start);
    if (m == 0 || (m & mask) != 0) return false;
    mask = static_cast<uint8_t>(mask | m);
    compute += p->compute_slices;
    const auto index = static_cast<size_t>(p - profiles_->data());
    if (++counts[index] > p->max_instances) return false;
  }
  return compute <= mig_compute_slices && mask == memory_mask_ &&
         compute == compute_used_;
}

// ---------------------------------------------------------------------------
// Whole layouts.

result<mig_gpu_layout> make_layout(std::string_view gpu_model,
                                   const std::vector<mig_instance>& instances) {
  mig_gpu_layout layout{std::string(gpu_model)};
  if (layout.profiles() == nullptr) {
    return mig_error(failure::invalid_argument, no_mig_message(gpu_model));
  }
  for (size_t i = 0; i < instances.size(); ++i) {
    const mig_instance& inst = instances[i];
    if (auto r = layout.place(inst.profile, inst.start); !r) {
      return mig_error(failure::invalid_argument,
                       "instance " + std::to_string(i) + " (" + inst.profile + " at " +
                           std::to_string(inst.start) + "): " + r.err().message());
    }
  }
  return layout;
}

std::vector<mig_instance>
pack_profiles(std::string_view gpu_model,
              const std::vector<std::pair<std::string, uint32_t>>& demand) {
  const auto* profiles = mig_profiles_for(gpu_model);
  if (profiles == nullptr) return {};

  // Wanted count per profile, capped at max_instances (more can never fit).
  std::vector<uint32_t> wanted(profiles->size(), 0);
  for (const auto& [name, n] : demand) {
    const mig_profile* p = find_in(*profiles, name);
    if (p == nullptr) continue;
    auto& w = wanted[static_cast<size_t>(p - profiles->data())];
    w = std::min(p->max_instances, w + std::min(n, p->max_instances));
  }

  // Largest first: more compute slices, then more memory slices, then table
  // order.
  std::vector<size_t> order(profiles->size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const mig_profile& pa = (*profiles)[a];
    const mig_profile& pb = (*profiles)[b];
    if (pa.compute_slices != pb.compute_slices)
      return pa.compute_slices > pb.compute_slices;
    return pa.memory_slices > pb.memory_slices;
  });

  // For each profile in that order, the most instances that still fit next
  // to those already chosen (fitting is monotone: fewer always fit too).
  std::vector<const mig_profile*> chosen;
  std::vector<uint32_t> starts;
  for (size_t index : order) {
    const mig_profile* p = &(*profiles)[index];
    for (uint32_t k = wanted[index]; k > 0; --k) {
      std::vector<const mig_profile*> candidate = chosen;
      candidate.insert(candidate.end(), k, p);
      std::vector<uint32_t> candidate_starts(candidate.size(), 0);
      if (find_starts(candidate, 0, 0, 0, candidate_starts)) {
        chosen = std::move(candidate);
        starts = std::move(candidate_starts);
        break;
      }
    }
  }

  std::vector<mig_instance> out;
  out.reserve(chosen.size());
  for (size_t i = 0; i < chosen.size(); ++i)
    out.push_back({chosen[i]->name, starts[i]});
  return out;
}

} // namespace troupe::placement
