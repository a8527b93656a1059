#pragma once
/// Which message element types may cross the wire, under which stable ids.
///
/// A message sent to a remote actor is a CAF message: a tuple of elements.
/// Each element type that may travel is registered here under a name; its
/// wire id is the FNV-1a 64 hash of that name, the same on every node and
/// every build, so ids never depend on registration order. An envelope
/// carries one id per element; a receiver that does not know an id answers
/// with an `unknown_type` error (requests) and counts the drop, never
/// delivers an empty message.
///
/// Element values are written with CAF's binary serializer (the type's
/// `inspect` overload). Actor handles (`caf::actor`, `caf::strong_actor_ptr`,
/// `caf::actor_addr`) at the top level of a message are encoded by the
/// fabric as cluster-wide refs; handles nested inside user types are not
/// supported across nodes. `caf::error` travels as code, category and a
/// rendered context string.
///
/// Registration happens before the fabric starts; afterwards the registry
/// is read-only and shared by the fabric's threads without locks.

#include "troupe/runtime/result.hpp"
#include "troupe/transport/device_buffer.hpp"

#include <caf/all.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <typeindex>
#include <unordered_map>
#include <vector>

namespace troupe::transport {

/// FNV-1a 64 of a type name: its wire id.
[[nodiscard]] uint64_t type_id_of(std::string_view name) noexcept;

/// How the fabric writes and reads one element type.
struct element_codec {
  std::string name;
  uint64_t id = 0;
  /// Writes element `i` of `msg` (which has this type).
  std::function<caf::error(caf::serializer&, const caf::message& msg, size_t i)> save;
  /// Reads one value and appends it to `out`.
  std::function<caf::error(caf::deserializer&, caf::message_builder& out)> load;
  /// For byte-buffer types (std::vector<char>, std::string): the element's
  /// bytes, so a large one can travel by rendezvous without a copy; and how
  /// to append a received buffer. Empty for other types.
  std::function<std::pair<const char*, size_t>(const caf::message&, size_t)> bytes;
  /// Builds the element from bytes that travelled by rendezvous, after
  /// reading what `save_bulk_header` wrote (nothing for byte buffers).
  std::function<caf::error(caf::deserializer&, std::vector<char>&&,
                           caf::message_builder&)>
      append_bytes;
  /// For device memory types (device_buffer.hpp): the element's size, and a
  /// host (staged) or, with `direct`, device view of its bytes for a
  /// rendezvous send; plus what the receiver needs besides the bytes.
  std::function<size_t(const caf::message&, size_t)> device_size;
  std::function<result<staged_bytes>(const caf::message&, size_t, bool direct)> stage;
  std::function<caf::error(caf::serializer&, const caf::message&, size_t)>
      save_bulk_header;
  /// Kind of handle for actor handle types (encoded by the fabric).
  enum class handle_kind : uint8_t {
    none,
    actor,
    strong_ptr,
    addr
  } handle = handle_kind::none;
  /// Whether save/load are exactly CAF's inspect() of the type (then the
  /// type may take part in a fast signature decoder).
  bool plain = false;
};

class message_types {
public:
  /// Every CAF builtin value type that makes sense on the wire (integers,
  /// floats, bool, std::string, atoms, std::vector<char>, errors, actor
  /// handles, down_msg, exit_msg), troupe's span_context and device_buffer. The set of
  /// `defaults()` is the same on every node.
  [[nodiscard]] static message_types defaults();

  /// Registers `T` under `name`. Aborts (a bug) when `name` or `T` is
  /// already registered or when two names hash to one id.
  template <class T> message_types& add(std::string name) {
    element_codec c;
    c.name = std::move(name);
    c.plain = true;
    c.save = [](caf::serializer& sink, const caf::message& msg, size_t i) {
      return sink(const_cast<T&>(msg.get_as<T>(i)));
    };
    c.load = [](caf::deserializer& src, caf::message_builder& out) {
      T x{};
      if (auto err = src(x)) return err;
      out.append(std::move(x));
      return caf::error{};
    };
    return add_codec(key_of<T>(), std::move(c));
  }

  /// Registers a fast decoder for messages of exactly the element types
  /// `Ts...` (each registered with its inspect() format, so no actor handle
  /// or caf::error): they are read
  /// into one tuple and built with one make_message instead of one value
  /// per element. A pure optimisation: other messages decode element by
  /// element. Aborts (a bug) when a type is unknown.
  template <class... Ts> message_types& add_signature() {
    uint64_t ids[] = {require_id(key_of<Ts>())...};
    uint64_t key = signature_key(ids, sizeof...(Ts));
    signatures_[key] = [](caf::deserializer& src, caf::message& out) -> caf::error {
      std::tuple<Ts...> xs;
      auto err = std::apply([&](auto&... x) { return src(x...); }, xs);
      if (err) return err;
      out = std::apply([](auto&... x) { return caf::make_message(std::move(x)...); }, xs);
      return caf::error{};
    };
    return *this;
  }
  using signature_decoder = caf::error (*)(caf::deserializer&, caf::message&);
  /// The fast decoder for a message with these element ids, or null.
  [[nodiscard]] signature_decoder
  find_signature(std::span<const uint64_t> ids) const noexcept {
    if (signatures_.empty()) return nullptr;
    auto it = signatures_.find(signature_key(ids.data(), ids.size()));
    return it == signatures_.end() ? nullptr : it->second;
  }
  static uint64_t signature_key(const uint64_t* ids, size_t n) noexcept {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    for (size_t i = 0; i < n; ++i)
      h = (h ^ ids[i]) * 0x100000001B3ull + (h >> 29);
    return h;
  }

  /// The codec for element `i` of `msg`, or null when its type is not
  /// registered.
  [[nodiscard]] const element_codec* find(const caf::message& msg,
                                          size_t i) const noexcept;
  /// The codec with wire id `id`, or null.
  [[nodiscard]] const element_codec* find(uint64_t id) const noexcept;
  /// Registered names, sorted (for `troupe info` and errors).
  [[nodiscard]] std::vector<std::string> names() const;

  /// Registers a fully built codec; used by add() and defaults().
  message_types& add_codec(caf::rtti_pair key, element_codec c);

  template <class T> static caf::rtti_pair key_of() {
    constexpr uint16_t nr = caf::type_nr<T>::value;
    return {nr, nr == 0 ? &typeid(T) : nullptr};
  }

private:
  uint64_t require_id(caf::rtti_pair key) const;
  std::unordered_map<uint64_t, signature_decoder> signatures_;
  // Builtin types are found by CAF's type number, others by type_info.
  std::vector<const element_codec*> by_nr_ =
      std::vector<const element_codec*>(64, nullptr);
  std::unordered_map<std::type_index, const element_codec*> by_rtti_;
  std::unordered_map<uint64_t, std::shared_ptr<const element_codec>> by_id_;
};

} // namespace troupe::transport
