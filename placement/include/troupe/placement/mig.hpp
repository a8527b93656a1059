#pragma once
/// NVIDIA MIG (Multi-Instance GPU) profile tables and placement rules.
///
/// A MIG-capable GPU has 8 memory slices and 7 compute (SM) slices. A GPU
/// instance of a profile occupies the memory slices [start, start +
/// memory_slices) and `compute_slices` of the 7 compute slices; it may start
/// only at the positions NVIDIA lists for the profile (`nvidia-smi mig
/// -lgipp`). A set of instances is a layout NVIDIA allows when no two overlap
/// in memory slices, the compute slices sum to at most 7 and no profile has
/// more than its max_instances. The tables come from NVIDIA's Multi-Instance
/// GPU User Guide (see the top of mig.cpp for the sections).
///
/// Plain code over plain data: no I/O, no actors, no clock. The tables are
/// constants with static storage; every pointer returned into them stays
/// valid for the life of the program.
///
/// GPU models are spelled as troupe spells them: "A100-40GB", "A100-80GB",
/// "H100-80GB" (SXM5 and PCIe), "H100-94GB" (H100 NVL), "H200-141GB" (SXM and
/// NVL). Model and profile names are matched exactly (case-sensitive).

#include "troupe/runtime/result.hpp"

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::placement {

/// Memory slices of a MIG-capable GPU (bit i of a memory mask is slice i).
inline constexpr uint32_t mig_memory_slices = 8;
/// Compute (SM) slices of a MIG-capable GPU.
inline constexpr uint32_t mig_compute_slices = 7;

/// One GPU instance profile of one GPU model.
struct mig_profile {
  std::string name;        ///< e.g. "3g.40gb", "1g.10gb+me"
  uint32_t compute_slices; ///< the "g" number: compute slices out of 7
  uint32_t memory_slices;  ///< memory slices out of 8 the instance occupies
  /// The guide's GB figure * 1024 (e.g. 1g.10gb -> 10240). The name's GB is
  /// a rounded label: the memory CUDA sees in the instance is slightly less
  /// (nvidia-smi reports 9.75 GiB for a 1g.10gb). Use it to compare and
  /// label, not to promise allocatable bytes.
  uint64_t memory_mib;
  uint32_t max_instances;       ///< at most this many of the profile per GPU
  std::vector<uint32_t> starts; ///< memory slices an instance may start at, ascending
};

/// Profiles of a GPU model, or null when the model has no MIG support (V100,
/// T4, L4, ...). Largest profile last; the pointer is to a static table.
[[nodiscard]] const std::vector<mig_profile>*
mig_profiles_for(std::string_view gpu_model) noexcept;

/// The profile `profile` of `gpu_model`, or null when either is unknown.
[[nodiscard]] const mig_profile* find_mig_profile(std::string_view gpu_model,
                                                  std::string_view profile) noexcept;

/// The models that have MIG tables, in table order.
[[nodiscard]] const std::vector<std::string>& mig_models() noexcept;

/// Memory-slice mask of `p` placed at `start` (bits [start, start +
/// memory_slices)); 0 when it would run past slice 7.
[[nodiscard]] uint8_t mig_memory_mask(const mig_profile& p, uint32_t start) noexcept;

/// One placed instance: a profile name and the memory slice it starts at.
struct mig_instance {
  std::string profile;
  uint32_t start = 0;

  friend bool operator==(const mig_instance&, const mig_instance&) = default;
  /// By profile name, then start (for sets and sorting).
  friend auto operator<=>(const mig_instance&, const mig_instance&) = default;
};

/// The occupancy of one MIG-mode GPU: which memory slices are taken
/// (bitmask), how many compute slices are used and which instances are
/// placed. A value type; copy it to try a change.
///
/// A layout of a model without MIG support can be built (so callers need not
/// branch), but every place() on it fails and first_fit() finds nothing.
class mig_gpu_layout {
public:
  explicit mig_gpu_layout(std::string gpu_model);

  const std::string& model() const noexcept { return model_; }
  /// The model's profiles, or null when the model has no MIG support.
  const std::vector<mig_profile>* profiles() const noexcept { return profiles_; }

  /// The lowest valid start for `profile` given what is placed, or nullopt
  /// (unknown profile, or no start left).
  [[nodiscard]] std::optional<uint32_t> first_fit(std::string_view profile) const;
  /// All valid starts for `profile` now, ascending; empty when none or
  /// unknown.
  [[nodiscard]] std::vector<uint32_t> valid_starts(std::string_view profile) const;
  /// Whether place(profile, start) would succeed; the error says why not.
  [[nodiscard]] result<void> can_place(std::string_view profile, uint32_t start) const;

  /// Places `profile` at memory slice `start`. On failure returns
  /// invalid_argument saying why and changes nothing. Checked in this order:
  /// the model has MIG, the profile is known, the start is one the table
  /// lists, enough compute slices are free, fewer than max_instances of the
  /// profile are placed, and the memory slices do not overlap an instance.
  [[nodiscard]] result<void> place(std::string_view profile, uint32_t start);
  /// Removes the instance starting at memory slice `start`; not_found if
  /// none.
  [[nodiscard]] result<void> remove(uint32_t start);

  /// The placed instances, ordered by start.
  const std::vector<mig_instance>& instances() const noexcept { return instances_; }
  /// Bit i set: memory slice i is taken.
  uint8_t memory_mask() const noexcept { return memory_mask_; }
  /// Compute slices taken, 0..7.
  uint32_t compute_used() const noexcept { return compute_used_; }
  /// Instances of `profile` placed.
  uint32_t count(std::string_view profile) const noexcept;

  /// True when the current instances form a layout NVIDIA allows. Recomputes
  /// everything from the instances and the table (it does not trust the
  /// cached mask and counters, and checks they agree), so property tests can
  /// use it as an independent check.
  [[nodiscard]] bool valid() const;

private:
  std::string model_;
  const std::vector<mig_profile>* profiles_ = nullptr; // static table, or null
  std::vector<mig_instance> instances_;                // ordered by start
  uint8_t memory_mask_ = 0;
  uint32_t compute_used_ = 0;
};

/// Validates a whole layout (e.g. from config): builds the layout by placing
/// every instance in the given order. invalid_argument when the model has no
/// MIG support or an instance cannot be placed; the message names the
/// instance by index, profile and start, and says why.
[[nodiscard]] result<mig_gpu_layout>
make_layout(std::string_view gpu_model, const std::vector<mig_instance>& instances);

/// Recommends a layout for `demand` (profile -> count; repeated profiles add
/// up) on one empty GPU of `gpu_model`. Largest profiles first: it places as
/// many of the largest profile as can fit, then as many of the next as can
/// fit alongside, and so on. Starts are chosen by first fit, backtracking to
/// a later start only when that lets more of the demand fit (plain greedy
/// first fit puts 3g at 0 and then fits one 2g; 3g at 4 fits two).
/// Returns the instances that fit, in placement order (largest first, as
/// they should be created); the rest of the demand, unknown profiles and
/// unknown models are left unplaced. The result always passes make_layout.
[[nodiscard]] std::vector<mig_instance>
pack_profiles(std::string_view gpu_model,
              const std::vector<std::pair<std::string, uint32_t>>& demand);

} // namespace troupe::placement
