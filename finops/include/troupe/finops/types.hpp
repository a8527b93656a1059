#pragma once
/// Names the finops policies share with placement.

#include "troupe/placement/request.hpp"
#include "troupe/placement/topology.hpp"

namespace troupe::finops {

/// The allocation a sample, action or ledger entry is about.
using allocation_id = placement::allocation_id;
/// Labels of an allocation (team, project, env, exemptions...).
using labels = placement::labels;

} // namespace troupe::finops
