// Writes (or checks) the seed corpora of cc/fuzz: small valid problem, result and plan-section
// files from cc/fuzz/corpus.cc.
//   bazel run //cc/fuzz:make_corpus -- write $PWD/cc/fuzz/corpus
//   make_corpus check FILE...   (the corpus_test: every checked-in seed_* equals what we generate)
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "cc/fuzz/corpus.h"
#include "sattn/plan_io.h"

namespace {

// relative path -> bytes
std::map<std::string, std::vector<uint8_t>> Generate() {
  std::map<std::string, std::vector<uint8_t>> files;
  const std::vector<sattn::Problem> seeds = sattn::fuzz::SeedProblems();
  for (size_t i = 0; i < seeds.size(); ++i) {
    const std::string n = std::to_string(i);
    files["problem/seed_" + n] = sattn::SerializeProblem(seeds[i]);
    files["result/seed_" + n] = sattn::SerializeResult(sattn::fuzz::SeedResult(seeds[i]));
    std::vector<uint8_t> plan = {uint8_t(i)};
    const std::vector<uint8_t> section = sattn::fuzz::PlanSection(seeds[i]);
    plan.insert(plan.end(), section.begin(), section.end());
    files["plan/seed_" + n] = plan;
  }
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || (std::strcmp(argv[1], "write") != 0 && std::strcmp(argv[1], "check") != 0)) {
    std::fprintf(stderr, "usage: %s write DIR | check FILE...\n", argv[0]);
    return 2;
  }
  const auto files = Generate();
  if (std::strcmp(argv[1], "write") == 0) {
    for (const auto& [rel, bytes] : files) {
      const std::string path = std::string(argv[2]) + "/" + rel;
      std::ofstream f(path, std::ios::binary);
      f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
      if (!f) { std::fprintf(stderr, "cannot write %s (do the directories exist?)\n", path.c_str()); return 1; }
    }
    std::printf("wrote %zu seed files under %s\n", files.size(), argv[2]);
    return 0;
  }
  int checked = 0, failures = 0;
  for (int i = 2; i < argc; ++i) {
    const std::string path = argv[i];
    const size_t slash = path.rfind('/', path.rfind('/') - 1);  // ".../<dir>/<name>"
    const std::string rel = path.substr(slash + 1);
    if (rel.find("/seed_") == std::string::npos) continue;  // crashers: checked by the fuzz tests
    std::ifstream f(path, std::ios::binary);
    const std::vector<uint8_t> got((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const auto it = files.find(rel);
    ++checked;
    if (it == files.end() || it->second != got) {
      std::fprintf(stderr, "%s: differs from the generator (regenerate: bazel run //cc/fuzz:make_corpus -- write $PWD/cc/fuzz/corpus)\n", rel.c_str());
      ++failures;
    }
  }
  if (checked != int(files.size())) {
    std::fprintf(stderr, "checked %d seed files, the generator makes %zu\n", checked, files.size());
    ++failures;
  }
  std::printf("corpus_test: %d seed files, %d mismatches\n", checked, failures);
  return failures ? 1 : 0;
}
