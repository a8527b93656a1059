#pragma once
/// JSON helpers the ledger's two codecs share (ledger_io.cpp: ledger_state;
/// ledger_store.cpp: the stored records). Private to finops. The readers
/// throw std::runtime_error saying what is wrong and where; each codec
/// turns that into its `corrupted` error in one place.

#include "troupe/finops/ledger.hpp"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace troupe::finops::ledger_json {

using json = nlohmann::json;

/// Totals as [gpu_ms, used_gpu_ms, cost, used_cost, entries].
inline json totals_json(const usage_totals& t) {
  return json::array(
      {t.gpu_ms, t.used_gpu_ms, t.cost.value(), t.used_cost.value(), t.entries});
}

inline const json& field(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) throw std::runtime_error(where + ": missing \"" + key + "\"");
  return *it;
}

inline int64_t int_field(const json& obj, const char* key, const std::string& where) {
  const auto& v = field(obj, key, where);
  if (!v.is_number_integer())
    throw std::runtime_error(where + "." + key + ": expected an integer");
  return v.get<int64_t>();
}

inline uint64_t uint_field(const json& obj, const char* key, const std::string& where) {
  const auto& v = field(obj, key, where);
  if (!v.is_number_unsigned())
    throw std::runtime_error(where + "." + key + ": expected a non-negative integer");
  return v.get<uint64_t>();
}

} // namespace troupe::finops::ledger_json
