// troupe-exec: runs one replica command so that it never outlives the node
// agent that started it (actors/include/troupe/actors/process.hpp).
//
//   troupe-exec --parent <pid> [--rlimit <resource>=<soft>:<hard>]...
//               [--cgroup <dir>] -- <command> [args...]
//
// 1. Leads its own process group (the agent spawns it with SETPGROUP; it
//    makes sure) and asks for SIGRTMIN+1 when its parent dies
//    (PR_SET_PDEATHSIG, which posix_spawn cannot set for a child). On that
//    signal it SIGKILLs its whole group: the command and everything the
//    command started. If the parent is already gone (not <pid>), it exits
//    127 without starting anything.
// 2. Applies the rlimits (setrlimit, resource numbers as in
//    <sys/resource.h>) and joins the cgroup, so both hold from the
//    command's first instruction.
// 3. Starts the command with posix_spawnp in its own group (default signal
//    dispositions, empty mask), stays as its parent, and exits the way it
//    did: the same status, or the same signal re-raised. Signals the agent
//    sends to the group (SIGTERM, SIGUSR1, ...) reach the command directly;
//    the helper catches them and does nothing, so it never ends first.
//
// Single-threaded; 125 on a usage error, 127 when the command cannot start.

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <signal.h>
#include <spawn.h>
#include <string>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {

void kill_group(int) {
  ::kill(0, SIGKILL);
}

void ignore(int) {}

[[noreturn]] void usage(const char* what) {
  std::fprintf(stderr,
               "troupe-exec: %s\nusage: troupe-exec --parent <pid> "
               "[--rlimit <res>=<soft>:<hard>]... [--cgroup <dir>] -- <command>...\n",
               what);
  std::_Exit(125);
}

bool parse_u64(const char* s, unsigned long long& out) {
  if (*s == '\0') return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtoull(s, &end, 10);
  return errno == 0 && end != nullptr && (*end == '\0' || *end == ':' || *end == '=');
}

} // namespace

int main(int argc, char** argv) {
  long parent = -1;
  const char* cgroup = nullptr;
  int i = 1;
  struct limit {
    int resource;
    rlimit value;
  };
  limit limits[64];
  int nlimits = 0;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (i + 1 >= argc) usage(("missing value after " + a).c_str());
    const char* v = argv[++i];
    unsigned long long n = 0;
    if (a == "--parent") {
      if (!parse_u64(v, n) || n == 0) usage("--parent: expected a pid");
      parent = static_cast<long>(n);
    } else if (a == "--cgroup") {
      cgroup = v;
    } else if (a == "--rlimit") {
      unsigned long long res = 0, soft = 0, hard = 0;
      const char* eq = std::strchr(v, '=');
      const char* colon = eq ? std::strchr(eq, ':') : nullptr;
      if (!parse_u64(v, res) || !eq || !colon || !parse_u64(eq + 1, soft) ||
          !parse_u64(colon + 1, hard) || nlimits == 64)
        usage("--rlimit: expected <resource>=<soft>:<hard>");
      limits[nlimits++] = {static_cast<int>(res),
                           {static_cast<rlim_t>(soft), static_cast<rlim_t>(hard)}};
    } else {
      usage(("unknown option " + a).c_str());
    }
  }
  if (parent < 0) usage("--parent is required");
  if (i >= argc) usage("no command");

  // 1. Our own group, and the whole group dies with the parent.
  if (getpgrp() != getpid()) (void)setpgid(0, 0);
  struct sigaction sa {};
  sa.sa_handler = kill_group;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGRTMIN + 1, &sa, nullptr);
  if (prctl(PR_SET_PDEATHSIG, SIGRTMIN + 1) != 0 || getppid() != parent) {
    std::fprintf(stderr, "troupe-exec: parent %ld is gone; not starting %s\n", parent,
                 argv[i]);
    return 127;
  }
  sa.sa_handler = ignore;
  for (int s :
       {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGPWR, SIGALRM})
    sigaction(s, &sa, nullptr);

  // 2. Limits and cgroup before the command starts.
  for (int k = 0; k < nlimits; ++k)
    if (setrlimit(static_cast<__rlimit_resource>(limits[k].resource), &limits[k].value) !=
        0)
      std::fprintf(stderr, "troupe-exec: setrlimit %d: %s\n", limits[k].resource,
                   std::strerror(errno));
  if (cgroup) {
    std::string procs = std::string{cgroup} + "/cgroup.procs";
    if (FILE* f = std::fopen(procs.c_str(), "w")) {
      std::fprintf(f, "%d\n", static_cast<int>(getpid()));
      if (std::fclose(f) != 0)
        std::fprintf(stderr, "troupe-exec: joining %s failed\n", cgroup);
    } else {
      std::fprintf(stderr, "troupe-exec: %s: %s\n", procs.c_str(), std::strerror(errno));
    }
  }

  // 3. The command, as our child in our group.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all;
  sigset_t none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  pid_t child = 0;
  int rc = posix_spawnp(&child, argv[i], nullptr, &attr, argv + i, environ);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    std::fprintf(stderr, "troupe-exec: %s: %s\n", argv[i], std::strerror(rc));
    return 127;
  }
  int status = 0;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return 127;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  // Die of the same signal, without a core file of our own.
  const int sig = WTERMSIG(status);
  rlimit no_core{0, 0};
  (void)setrlimit(RLIMIT_CORE, &no_core);
  signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  sigprocmask(SIG_UNBLOCK, &one, nullptr);
  raise(sig);
  return 128 + sig;
}
