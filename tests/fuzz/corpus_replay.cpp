// Replays fuzz corpora without libFuzzer, so every build (GCC too) runs
// each fuzz target's LLVMFuzzerTestOneInput over its seed corpus as a
// ctest. Linked with one *_fuzz.cpp instead of -fsanitize=fuzzer.
//
// Usage: replay_<target> <file-or-directory>...
// Exits 0 when every input ran (a target signals a bug by aborting or
// trapping, which fails the process), 1 on unreadable paths or when no
// input was found.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

bool replay_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "corpus_replay: cannot read %s\n", p.c_str());
    return false;
  }
  std::vector<char> bytes{std::istreambuf_iterator<char>(in),
                          std::istreambuf_iterator<char>()};
  // A fresh heap copy of exactly the input's size, as libFuzzer passes it,
  // so ASan sees reads past the end.
  std::vector<uint8_t> data(bytes.begin(), bytes.end());
  std::fprintf(stderr, "corpus_replay: %s (%zu bytes)\n", p.c_str(), data.size());
  LLVMFuzzerTestOneInput(data.data(), data.size());
  return true;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <corpus file or directory>...\n", argv[0]);
    return 2;
  }
  size_t count = 0;
  bool ok = true;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path root{argv[i]};
    std::error_code ec;
    if (std::filesystem::is_directory(root, ec)) {
      std::vector<std::filesystem::path> files;
      for (const auto& entry : std::filesystem::recursive_directory_iterator(root, ec))
        if (entry.is_regular_file()) files.push_back(entry.path());
      if (ec) {
        std::fprintf(stderr, "corpus_replay: cannot list %s: %s\n", argv[i],
                     ec.message().c_str());
        ok = false;
      }
      std::sort(files.begin(), files.end());
      for (const auto& f : files)
        if (replay_file(f))
          ++count;
        else
          ok = false;
    } else if (std::filesystem::is_regular_file(root, ec)) {
      if (replay_file(root))
        ++count;
      else
        ok = false;
    } else {
      std::fprintf(stderr, "corpus_replay: no such file or directory: %s\n", argv[i]);
      ok = false;
    }
  }
  std::printf("corpus_replay: %zu inputs replayed\n", count);
  if (count == 0) {
    std::fprintf(stderr, "corpus_replay: no inputs found\n");
    return 1;
  }
  return ok ? 0 : 1;
}
