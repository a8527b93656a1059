#include "troupe/actors/local_cluster.hpp"

#include "troupe/actors/api_tokens.hpp"
#include "troupe/actors/job_manager.hpp"
#include "troupe/actors/membership_actor.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/transport/auth.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <netinet/in.h>
#include <spawn.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace troupe::actors {

namespace {

using rerr = runtime::errc;
namespace fs = std::filesystem;

result<void> write_file(const fs::path& p, const std::string& text, mode_t mode) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    return error{rerr::io_error,
                 "cannot write " + p.string() + ": " + std::strerror(errno)};
  bool ok_write =
      ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok_write) return error{rerr::io_error, "cannot write " + p.string()};
  return ok();
}

/// [LAUNCHER...] trouped --config CONFIG, in its own process group, output
/// to LOG.
result<pid_t> spawn_node(const fs::path& trouped, const fs::path& config,
                         const fs::path& log, const local_host& host) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<std::string> args = host.launcher;
  args.push_back(trouped.string());
  args.emplace_back("--config");
  args.push_back(config.string());
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = host.launcher.empty()
               ? ::posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), environ)
               : ::posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    return error{rerr::unavailable,
                 "cannot start " + args.front() + ": " + std::strerror(rc)};
  return pid;
}

/// Waits for NAME.ready; fails early when the process exits.
result<std::string> wait_ready(const fs::path& ready, pid_t pid,
                               std::chrono::nanoseconds timeout, const fs::path& log) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in{ready};
    std::string name, address;
    if (in >> name >> address) return address;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      std::ifstream l{log};
      std::stringstream tail;
      tail << l.rdbuf();
      auto text = tail.str();
      if (text.size() > 2000) text = text.substr(text.size() - 2000);
      return error{rerr::unavailable, "trouped exited before listening (see " +
                                          log.string() + "):\n" + text};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  return error{rerr::timeout,
               "trouped did not listen within the timeout (" + ready.string() + ")"};
}

/// A TCP port free now on `host` (an IPv4 address of this network
/// namespace; loopback when it is not one): the head keeps its port across
/// restarts, so workers find it again.
result<uint16_t> free_port(const std::string& host = "127.0.0.1") {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return error{rerr::unavailable, std::string{"socket: "} + std::strerror(errno)};
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1)
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  auto bind_to = [&] {
    return ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  };
  bool bound = bind_to();
  if (!bound && a.sin_addr.s_addr != htonl(INADDR_LOOPBACK)) {
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bound = bind_to();
  }
  socklen_t len = sizeof a;
  uint16_t port = 0;
  if (bound && ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  if (port == 0) return error{rerr::unavailable, "no free port on loopback"};
  return port;
}

std::string node_toml(const local_cluster_options& o, const std::string& name, bool head,
                      const std::string& head_spec, const fs::path& dir,
                      const std::string& listen_host, uint16_t port, uint16_t api_port,
                      bool spot) {
  const std::string& price = spot ? o.spot_price_per_gpu_hour : o.price_per_gpu_hour;
  std::ostringstream t;
  t << "[node]\nname = \"" << name << "\"\n\n"
    << "[metrics]\nenabled = false\n\n"
    << "[transport]\nlisten = \"" << listen_host << ':' << port << "\"\nsecret_file = \""
    << (dir / "secret").string() << "\"\n\n"
    << "[resources]\ndiscovery = \"auto\"\nsimulated_gpus = " << o.gpus_per_node << "\n"
    << (spot ? "capacity = \"spot\"\n" : "")
    << (price.empty() ? std::string{} : "price_per_gpu_hour_usd = \"" + price + "\"\n")
    << "\n"
    << "[cluster]\nrole = \"" << (head ? "head" : "worker") << "\"\n";
  if (!head) t << "head = \"" << head_spec << "\"\n";
  t << "ready_file = \"" << (dir / (name + ".ready")).string() << "\"\n";
  t << "data_dir = \"" << (dir / (name + ".data")).string() << "\"\n";
  if (!o.exec_helper.empty()) t << "exec_helper = \"" << o.exec_helper.string() << "\"\n";
  if (head && api_port != 0)
    t << "\n[api]\nport = " << api_port << "\ntokens_file = \""
      << (dir / "tokens").string() << "\"\n";
  if (!o.extra_toml.empty()) t << '\n' << o.extra_toml << '\n';
  return t.str();
}

} // namespace

result<local_cluster> start_local_cluster(const local_cluster_options& o) {
  if (o.workers < 0 || o.workers > 64)
    return error{rerr::invalid_argument, "workers: 0 to 64"};
  if (!fs::exists(o.trouped))
    return error{rerr::not_found, "no trouped at " + o.trouped.string()};
  std::error_code ec;
  fs::create_directories(o.dir, ec);
  if (ec)
    return error{rerr::io_error, "cannot create " + o.dir.string() + ": " + ec.message()};
  if (fs::exists(o.dir / "pids"))
    return error{rerr::already_exists, "a cluster already runs from " + o.dir.string() +
                                           " (troupe down first)"};
  local_cluster c;
  c.dir = o.dir;
  c.secret = transport::random_hex(32);
  if (auto r = write_file(o.dir / "secret", c.secret + "\n", 0600); !r)
    return std::move(r).err();
  std::ofstream pids{o.dir / "pids"};
  auto fail = [&](error e) -> result<local_cluster> {
    pids.close();
    (void)stop_local_cluster(o.dir, std::chrono::seconds{2});
    return e;
  };
  std::string head_spec;
  for (int i = 0; i <= o.workers; ++i) {
    bool head = i == 0;
    std::string name = o.name_prefix + (head ? "-head" : "-worker-" + std::to_string(i));
    auto config = o.dir / (name + ".toml");
    auto ready = o.dir / (name + ".ready");
    fs::remove(ready, ec);
    auto host = static_cast<size_t>(i) < o.hosts.size() ? o.hosts[static_cast<size_t>(i)]
                                                        : local_host{};
    uint16_t port = 0, api_port = 0;
    if (head) {
      auto p = free_port(host.listen_host);
      if (!p) return fail(p.err());
      port = *p;
      if (o.api) {
        auto a = free_port();
        if (!a) return fail(a.err());
        api_port = *a;
        // An admin token for this machine's user: hashed in DIR/tokens,
        // itself in DIR/admin.token (0600), the API's URL in DIR/api.
        auto t = mint_api_token("admin", true);
        if (!t) return fail(t.err());
        if (auto r = write_file(o.dir / "tokens", t->line + "\n", 0600); !r)
          return fail(r.err());
        if (auto r = write_file(o.dir / "admin.token", t->token + "\n", 0600); !r)
          return fail(r.err());
        c.api_url = "http://127.0.0.1:" + std::to_string(api_port);
        c.admin_token = t->token;
        if (auto r = write_file(o.dir / "api", c.api_url + "\n", 0644); !r)
          return fail(r.err());
      }
    }
    if (auto r =
            write_file(config,
                       node_toml(o, name, head, head_spec, o.dir, host.listen_host, port,
                                 api_port, !head && i > o.workers - o.spot_workers),
                       0644);
        !r)
      return fail(r.err());
    auto log = o.dir / (name + ".log");
    auto pid = spawn_node(o.trouped, config, log, host);
    if (!pid) return fail(pid.err());
    pids << *pid << ' ' << name << std::endl;
    local_node n{name, "", *pid, head, host};
    if (head) {
      // Workers need the head's address: wait for it first.
      auto addr = wait_ready(ready, *pid, o.ready_timeout, log);
      if (!addr) return fail(addr.err());
      n.address = *addr;
      head_spec = name + "@" + *addr;
    }
    c.nodes.push_back(std::move(n));
  }
  for (auto& n : c.nodes) {
    if (!n.address.empty()) continue;
    auto addr = wait_ready(o.dir / (n.name + ".ready"), n.pid, o.ready_timeout,
                           o.dir / (n.name + ".log"));
    if (!addr) return fail(addr.err());
    n.address = *addr;
  }
  return c;
}

result<void> respawn_local_node(local_cluster& c, const std::string& name,
                                const fs::path& trouped,
                                std::chrono::nanoseconds ready_timeout) {
  auto it = std::find_if(c.nodes.begin(), c.nodes.end(),
                         [&](const local_node& n) { return n.name == name; });
  if (it == c.nodes.end())
    return error{rerr::not_found, "no node " + name + " in the cluster"};
  int status = 0;
  (void)::waitpid(it->pid, &status, WNOHANG); // reap the old one if it was ours
  auto ready = c.dir / (name + ".ready");
  std::error_code ec;
  fs::remove(ready, ec);
  auto log = c.dir / (name + ".log");
  auto pid = spawn_node(trouped, c.dir / (name + ".toml"), log, it->host);
  if (!pid) return std::move(pid).err();
  it->pid = *pid;
  {
    std::ofstream pids{c.dir / "pids"};
    for (const auto& n : c.nodes)
      pids << n.pid << ' ' << n.name << '\n';
  }
  auto addr = wait_ready(ready, *pid, ready_timeout, log);
  if (!addr) return std::move(addr).err();
  it->address = *addr;
  return ok();
}

result<local_cluster> read_local_cluster(const fs::path& dir) {
  std::ifstream pids{dir / "pids"};
  if (!pids) return error{rerr::not_found, "no cluster runs from " + dir.string()};
  local_cluster c;
  c.dir = dir;
  std::ifstream s{dir / "secret"};
  std::getline(s, c.secret);
  std::ifstream api{dir / "api"};
  std::getline(api, c.api_url);
  std::ifstream tok{dir / "admin.token"};
  std::getline(tok, c.admin_token);
  pid_t pid = 0;
  std::string name;
  while (pids >> pid >> name) {
    local_node n{name, "", pid, name.ends_with("-head"), {}};
    std::ifstream ready{dir / (name + ".ready")};
    std::string rn;
    ready >> rn >> n.address;
    c.nodes.push_back(std::move(n));
  }
  return c;
}

result<int> stop_local_cluster(const fs::path& dir, std::chrono::nanoseconds grace) {
  std::ifstream pids{dir / "pids"};
  if (!pids) return error{rerr::not_found, "no cluster runs from " + dir.string()};
  std::vector<pid_t> all;
  pid_t pid = 0;
  std::string name;
  while (pids >> pid >> name)
    if (pid > 0) all.push_back(pid);
  pids.close();
  // Workers first (they leave gracefully), the head last.
  int running = 0;
  for (auto it = all.rbegin(); it != all.rend(); ++it)
    if (::kill(-*it, SIGTERM) == 0) ++running;
  auto deadline = std::chrono::steady_clock::now() + grace;
  for (auto p : all) {
    for (;;) {
      int status = 0;
      pid_t r = ::waitpid(p, &status, WNOHANG);
      bool gone = r == p || (r < 0 && ::kill(p, 0) != 0);
      if (gone) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(-p, SIGKILL);
        (void)::waitpid(p, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
    }
  }
  std::error_code ec;
  fs::remove(dir / "pids", ec);
  return running;
}

result<std::unique_ptr<cluster_client>>
cluster_client::connect(std::string name, transport::transport_config tc,
                        const std::string& head_name, const std::string& head_address,
                        node_config base) {
  auto c = std::make_unique<cluster_client>();
  base.node.name = std::move(name);
  base.metrics.enabled = false;
  if (base.log.level < log_level::warn) base.log.level = log_level::warn;
  auto n = node::start(base);
  if (!n) return std::move(n).err();
  c->host = std::move(*n);
  tc.listen_enabled = false;
  auto f = transport::fabric::start(*c->host, tc);
  if (!f) return std::move(f).err();
  c->fabric = std::move(*f);
  if (auto p = c->fabric->connect(head_address); !p) return std::move(p).err();
  auto m = c->fabric->lookup(head_name, membership_actor_name, std::chrono::seconds{5});
  if (!m) return std::move(m).err();
  c->membership = *m;
  auto j = c->fabric->lookup(head_name, job_manager_name, std::chrono::seconds{5});
  if (j) c->jobs = *j;
  return c;
}

cluster_client::~cluster_client() {
  if (host) host->stop();
  fabric.reset();
}

} // namespace troupe::actors
