#pragma once
/// MIG advice: for an inference pool whose jobs each hold a whole GPU but use
/// only part of its memory, a MIG layout that holds the same jobs on fewer
/// GPUs, and how many GPUs that frees.
///
/// Uses placement's MIG tables and packer (placement/mig.hpp): each job gets
/// the smallest profile of the pool's GPU model whose memory covers its peak
/// use plus headroom (and its compute need, when given); the profiles are
/// packed GPU by GPU with `pack_profiles`. Plain code over plain data.

#include "troupe/finops/idle.hpp"
#include "troupe/placement/mig.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace troupe::finops {

/// One inference job of the pool, holding one whole GPU today.
struct inference_job {
  allocation_id allocation{0};
  uint64_t peak_memory_mib = 0; ///< highest GPU memory it used (telemetry)
  /// Compute slices (of 7) it needs at least; 0: memory decides alone.
  uint32_t min_compute_slices = 0;
};

/// Advice knobs.
struct mig_advice_options {
  /// Extra memory on top of the peak, permille (100 = 10%).
  int64_t headroom_permille = 100;
  /// Jobs using more than this share (permille) of the GPU's memory keep a
  /// whole GPU.
  int64_t max_memory_share_permille = 500;
};

/// One GPU of the recommended layout.
struct advised_gpu {
  std::vector<placement::mig_instance> instances; ///< in creation order
  std::vector<allocation_id> jobs;                ///< the job of each instance
};

/// The advice for one pool.
struct mig_advice {
  std::string gpu_model;
  std::vector<advised_gpu> layout;      ///< MIG GPUs holding the moved jobs
  std::vector<allocation_id> whole_gpu; ///< jobs that keep a whole GPU
  uint32_t gpus_before = 0;             ///< one per job
  uint32_t gpus_after = 0;              ///< layout + whole_gpu
  uint32_t gpus_freed() const noexcept { return gpus_before - gpus_after; }
  std::string summary; ///< one sentence
};

/// Advice for a pool of `gpu_model` GPUs of `gpu_memory_mib` each running
/// `jobs` (one whole GPU each). invalid_argument when the model has no MIG
/// support or the options are out of range. Deterministic: jobs are
/// assigned in input order.
[[nodiscard]] result<mig_advice> advise_mig(const std::string& gpu_model,
                                            uint64_t gpu_memory_mib,
                                            const std::vector<inference_job>& jobs,
                                            const mig_advice_options& options = {});

} // namespace troupe::finops
