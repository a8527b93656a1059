#pragma once
/// Building a cluster_topology from a TOML file, for the placement actor and
/// the simulator. The format is documented at the top of
/// config/cluster.example.toml: [[racks]], [[node_groups]] (N identical nodes
/// named <prefix>0..N-1), [[nodes]] (one node each), or alternatively a
/// [generate] table with the fields of generated_cluster.

#include "troupe/placement/topology.hpp"
#include "troupe/runtime/result.hpp"

#include <cstddef>
#include <filesystem>
#include <string_view>

namespace troupe::placement {

/// Most nodes one topology file may describe (node groups and generated
/// clusters included).
inline constexpr size_t max_config_nodes = 100'000;

/// Parses `toml` into a topology and checks it with
/// cluster_topology::validate(). On failure returns errc::invalid_argument
/// whose message lists every problem found, one per line, each as
/// `<source_name>:<line>: <dotted.key>: expected ..., got ...`. Unknown keys
/// are errors.
[[nodiscard]] result<cluster_topology> load_topology_string(std::string_view toml,
                                                            std::string_view source_name);

/// Reads `path` and calls load_topology_string with the path as source name.
/// Returns not_found when the file does not exist, invalid_argument when it
/// is not a regular file, is too large or does not load.
[[nodiscard]] result<cluster_topology>
load_topology_file(const std::filesystem::path& path);

/// Parses a price such as "2.50" (at most 6 fractional digits, no sign, no
/// exponent) into micro-USD exactly; invalid_argument saying what was wrong
/// otherwise.
/// Exposed for tests and for other config readers that hold prices.
[[nodiscard]] result<micro_usd> parse_price(std::string_view text);

} // namespace troupe::placement
