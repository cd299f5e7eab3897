// Replay driver for libFuzzer harnesses in builds without libFuzzer (the default gcc config).
//
// Usage: <harness> [-mutations=N] [-seed=S] FILE_OR_DIR...
// Runs LLVMFuzzerTestOneInput on every corpus file, then on N deterministic mutations of each
// (bit flips, interesting integers at aligned offsets, truncations, byte insertions/deletions,
// splices with another corpus file). Every input is handed over in its own exactly-sized heap
// buffer, as libFuzzer does, so a sanitizer catches reads past the end. Deterministic: the same
// corpus and flags give the same inputs in the same order, so a failure reproduces.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));

namespace {

using Bytes = std::vector<uint8_t>;

struct Corpus {
  std::vector<std::string> names;
  std::vector<Bytes> files;
};

bool ReadFile(const std::string& path, Bytes* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

// Adds a file, or every regular file of a directory (sorted by name, so the order is stable).
bool AddPath(const std::string& path, Corpus* corpus) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return false;
  std::vector<std::string> paths;
  if (S_ISDIR(st.st_mode)) {
    DIR* d = opendir(path.c_str());
    if (d == nullptr) return false;
    for (dirent* e; (e = readdir(d)) != nullptr;) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      struct stat fs;
      const std::string full = path + "/" + name;
      if (stat(full.c_str(), &fs) == 0 && S_ISREG(fs.st_mode)) paths.push_back(full);
    }
    closedir(d);
    std::sort(paths.begin(), paths.end());
  } else {
    paths.push_back(path);
  }
  for (const std::string& p : paths) {
    Bytes b;
    if (!ReadFile(p, &b)) return false;
    corpus->names.push_back(p);
    corpus->files.push_back(std::move(b));
  }
  return true;
}

// xorshift64*: tiny, seedable, identical on every platform.
struct Rng {
  uint64_t s;
  uint64_t Next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  size_t Below(size_t n) { return n == 0 ? 0 : size_t(Next() % n); }
};

// Values that break size arithmetic: zero, one, sign boundaries, powers of two near overflow.
constexpr uint64_t kInteresting[] = {
    0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff,
    0x40000000, 0x10000, 0x100000000ull, 0x7fffffffffffffffull, 0x8000000000000000ull,
    0xffffffffffffffffull, 0xffffffc0, 0x7fffffc0,
};

Bytes Mutate(const Bytes& in, const Corpus& corpus, Rng* rng) {
  Bytes b = in;
  switch (rng->Below(7)) {
    case 0:  // flip one bit
      if (!b.empty()) b[rng->Below(b.size())] ^= uint8_t(1u << rng->Below(8));
      break;
    case 1:  // random byte
      if (!b.empty()) b[rng->Below(b.size())] = uint8_t(rng->Next());
      break;
    case 2: {  // interesting 4- or 8-byte integer at an aligned offset (the format's fields)
      const size_t width = rng->Below(2) ? 8 : 4;
      if (b.size() >= width) {
        const size_t at = rng->Below(b.size() / 4 - (width == 8 ? 1 : 0)) * 4;
        const uint64_t v = kInteresting[rng->Below(sizeof(kInteresting) / sizeof(kInteresting[0]))];
        std::memcpy(b.data() + at, &v, width);
      }
      break;
    }
    case 3:  // truncate
      b.resize(rng->Below(b.size() + 1));
      break;
    case 4:  // insert a byte
      b.insert(b.begin() + long(rng->Below(b.size() + 1)), uint8_t(rng->Next()));
      break;
    case 5:  // delete a byte
      if (!b.empty()) b.erase(b.begin() + long(rng->Below(b.size())));
      break;
    default: {  // splice: our prefix, another file's suffix
      const Bytes& other = corpus.files[rng->Below(corpus.files.size())];
      const size_t cut = rng->Below(b.size() + 1), from = rng->Below(other.size() + 1);
      b.resize(cut);
      b.insert(b.end(), other.begin() + long(from), other.end());
      break;
    }
  }
  return b;
}

void RunOne(const Bytes& input) {
  // An exactly-sized copy: reading one byte past the end is a heap overflow a sanitizer reports.
  std::unique_ptr<uint8_t[]> copy(new uint8_t[input.size() ? input.size() : 1]);
  if (!input.empty()) std::memcpy(copy.get(), input.data(), input.size());
  LLVMFuzzerTestOneInput(copy.get(), input.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  long mutations = 500;
  uint64_t seed = 1;
  Corpus corpus;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("-mutations=", 0) == 0) {
      mutations = std::strtol(a.c_str() + 11, nullptr, 10);
    } else if (a.rfind("-seed=", 0) == 0) {
      seed = std::strtoull(a.c_str() + 6, nullptr, 10);
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "replay: unknown flag '%s' (expected -mutations=N, -seed=S)\n", a.c_str());
      return 2;
    } else if (!AddPath(a, &corpus)) {
      std::fprintf(stderr, "replay: cannot read corpus path '%s'\n", a.c_str());
      return 2;
    }
  }
  if (corpus.files.empty()) {
    std::fprintf(stderr, "replay: no corpus files given (usage: %s [-mutations=N] FILE_OR_DIR...)\n", argv[0]);
    return 2;
  }
  const auto t0 = std::chrono::steady_clock::now();
  RunOne({});  // the empty input, as libFuzzer always tries it
  long runs = 1;
  for (size_t f = 0; f < corpus.files.size(); ++f) {
    std::fprintf(stderr, "replay: %s (%zu bytes)\n", corpus.names[f].c_str(), corpus.files[f].size());
    RunOne(corpus.files[f]);
    ++runs;
    Rng rng{seed * 0x9E3779B97F4A7C15ull + f + 1};
    for (long m = 0; m < mutations; ++m) {
      // Stack up to four mutations so several fields can change at once.
      Bytes b = corpus.files[f];
      for (size_t depth = 1 + rng.Below(4); depth > 0; --depth) b = Mutate(b, corpus, &rng);
      RunOne(b);
      ++runs;
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "replay: %ld runs over %zu corpus files in %.2f s, no crash\n", runs,
               corpus.files.size(), s);
  return 0;
}
