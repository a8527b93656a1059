#include "troupe/transport/message_types.hpp"

#include "troupe/runtime/trace.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace troupe::transport {

uint64_t type_id_of(std::string_view name) noexcept {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

message_types& message_types::add_codec(caf::rtti_pair key, element_codec c) {
  c.id = type_id_of(c.name);
  if (by_id_.count(c.id) != 0) {
    std::fprintf(stderr,
                 "troupe: message type \"%s\" registered twice (or its id collides)\n",
                 c.name.c_str());
    std::abort();
  }
  auto owned = std::make_shared<const element_codec>(std::move(c));
  const element_codec* raw = owned.get();
  if (key.first != 0) {
    if (by_nr_.size() <= key.first) by_nr_.resize(key.first + 1u, nullptr);
    if (by_nr_[key.first] != nullptr) {
      std::fprintf(stderr, "troupe: CAF builtin type %u registered twice (as \"%s\")\n",
                   unsigned{key.first}, raw->name.c_str());
      std::abort();
    }
    by_nr_[key.first] = raw;
  } else {
    if (!by_rtti_.emplace(std::type_index{*key.second}, raw).second) {
      std::fprintf(stderr, "troupe: type of message type \"%s\" registered twice\n",
                   raw->name.c_str());
      std::abort();
    }
  }
  by_id_.emplace(raw->id, std::move(owned));
  return *this;
}

const element_codec* message_types::find(const caf::message& msg,
                                         size_t i) const noexcept {
  auto key = msg.type(i);
  if (key.first != 0) return key.first < by_nr_.size() ? by_nr_[key.first] : nullptr;
  if (key.second == nullptr) return nullptr;
  auto it = by_rtti_.find(std::type_index{*key.second});
  return it == by_rtti_.end() ? nullptr : it->second;
}

uint64_t message_types::require_id(caf::rtti_pair key) const {
  const element_codec* c = nullptr;
  if (key.first != 0)
    c = key.first < by_nr_.size() ? by_nr_[key.first] : nullptr;
  else if (key.second != nullptr) {
    auto it = by_rtti_.find(std::type_index{*key.second});
    if (it != by_rtti_.end()) c = it->second;
  }
  if (c == nullptr || !c->plain) {
    std::fprintf(stderr, "troupe: add_signature with an unregistered or handle type\n");
    std::abort();
  }
  return c->id;
}

const element_codec* message_types::find(uint64_t id) const noexcept {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second.get();
}

std::vector<std::string> message_types::names() const {
  std::vector<std::string> out;
  out.reserve(by_id_.size());
  for (const auto& [id, c] : by_id_)
    out.push_back(c->name);
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

template <class T>
element_codec handle_codec(std::string name, element_codec::handle_kind k) {
  element_codec c;
  c.name = std::move(name);
  c.handle = k;
  return c;
}

} // namespace

// device_buffer.cpp
void add_device_buffer_codec(message_types& t);

message_types message_types::defaults() {
  message_types t;
  t.add<bool>("bool")
      .add<int8_t>("i8")
      .add<int16_t>("i16")
      .add<int32_t>("i32")
      .add<int64_t>("i64")
      .add<uint8_t>("u8")
      .add<uint16_t>("u16")
      .add<uint32_t>("u32")
      .add<uint64_t>("u64")
      .add<float>("f32")
      .add<double>("f64")
      .add<caf::atom_value>("atom")
      .add<std::vector<std::string>>("strvec")
      .add<std::map<std::string, std::string>>("strmap")
      .add<caf::timespan>("timespan")
      .add<caf::timestamp>("timestamp")
      .add<caf::unit_t>("unit")
      .add<troupe::span_context>("troupe.span_context");
  {
    // Strings and byte buffers: large ones travel by rendezvous.
    element_codec c;
    c.name = "str";
    c.plain = true;
    c.save = [](caf::serializer& sink, const caf::message& msg, size_t i) {
      return sink(const_cast<std::string&>(msg.get_as<std::string>(i)));
    };
    c.load = [](caf::deserializer& src, caf::message_builder& out) {
      std::string x;
      if (auto err = src(x)) return err;
      out.append(std::move(x));
      return caf::error{};
    };
    c.bytes = [](const caf::message& msg, size_t i) {
      const auto& s = msg.get_as<std::string>(i);
      return std::pair<const char*, size_t>{s.data(), s.size()};
    };
    c.append_bytes = [](caf::deserializer&, std::vector<char>&& buf,
                        caf::message_builder& out) {
      out.append(std::string{buf.begin(), buf.end()});
      return caf::error{};
    };
    t.add_codec(key_of<std::string>(), std::move(c));
  }
  {
    element_codec c;
    c.name = "charbuf";
    c.plain = true;
    c.save = [](caf::serializer& sink, const caf::message& msg, size_t i) {
      return sink(const_cast<std::vector<char>&>(msg.get_as<std::vector<char>>(i)));
    };
    c.load = [](caf::deserializer& src, caf::message_builder& out) {
      std::vector<char> x;
      if (auto err = src(x)) return err;
      out.append(std::move(x));
      return caf::error{};
    };
    c.bytes = [](const caf::message& msg, size_t i) {
      const auto& v = msg.get_as<std::vector<char>>(i);
      return std::pair<const char*, size_t>{v.data(), v.size()};
    };
    c.append_bytes = [](caf::deserializer&, std::vector<char>&& buf,
                        caf::message_builder& out) {
      out.append(std::move(buf));
      return caf::error{};
    };
    t.add_codec(key_of<std::vector<char>>(), std::move(c));
  }
  {
    // Errors: code, category and the context rendered as text (the
    // context's element types need not be known to the receiver).
    element_codec c;
    c.name = "error";
    c.save = [](caf::serializer& sink, const caf::message& msg, size_t i) {
      const auto& e = msg.get_as<caf::error>(i);
      // A "none" error (e.g. exit_reason::normal) has no code, category or
      // context to ask for.
      uint8_t code = e ? e.code() : 0;
      caf::atom_value cat = e ? e.category() : caf::atom("");
      std::string ctx =
          !e || e.context().empty() ? std::string{} : caf::to_string(e.context());
      return sink(code, cat, ctx);
    };
    c.load = [](caf::deserializer& src, caf::message_builder& out) {
      uint8_t code = 0;
      caf::atom_value cat{};
      std::string ctx;
      if (auto err = src(code, cat, ctx)) return err;
      if (code == 0)
        out.append(caf::error{});
      else if (ctx.empty())
        out.append(caf::error{code, cat});
      else
        out.append(caf::error{code, cat, caf::make_message(std::move(ctx))});
      return caf::error{};
    };
    t.add_codec(key_of<caf::error>(), std::move(c));
  }
  // The shapes the runtime itself and typical actors send most.
  t.add_signature<caf::atom_value>()
      .add_signature<caf::atom_value, int32_t>()
      .add_signature<caf::atom_value, int64_t>()
      .add_signature<caf::atom_value, uint64_t>()
      .add_signature<caf::atom_value, std::string>()
      .add_signature<caf::atom_value, int64_t, int64_t>()
      .add_signature<int32_t>()
      .add_signature<int64_t>()
      .add_signature<uint64_t>()
      .add_signature<int64_t, int64_t>()
      .add_signature<std::string>();
  using hk = element_codec::handle_kind;
  t.add_codec(key_of<caf::actor>(), handle_codec<caf::actor>("actor", hk::actor));
  t.add_codec(key_of<caf::strong_actor_ptr>(),
              handle_codec<caf::strong_actor_ptr>("strong_actor_ptr", hk::strong_ptr));
  t.add_codec(key_of<caf::actor_addr>(), handle_codec<caf::actor_addr>("addr", hk::addr));
  add_device_buffer_codec(t);
  return t;
}

} // namespace troupe::transport
