// The runner end to end under QEMU: a Problem file in, a Result file out that matches the driver
// run in-process; re-planning on target reproduces the file's plan; truncated, corrupted and
// missing files and bad arguments give a non-zero exit with a message, never a crash.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "rvv/driver.h"
#include "rvv/runner_main.h"
#include "sattn/plan.h"
#include "sattn/plan_io.h"

namespace {

int g_failures = 0;
#define EXPECT(cond, ...)                                                   \
  do {                                                                      \
    if (!(cond)) {                                                          \
      ++g_failures;                                                         \
      std::fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);             \
      std::fprintf(stderr, __VA_ARGS__);                                    \
      std::fprintf(stderr, "\n");                                           \
    }                                                                       \
  } while (0)

int Run(std::vector<std::string> args) {
  args.insert(args.begin(), "runner");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(&a[0]);
  return sattn::rvv::RunnerMain(int(argv.size()), argv.data());
}

std::vector<char> ReadAll(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string& p, const std::vector<char>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(b.data(), std::streamsize(b.size()));
}

int64_t Counter(const sattn::Result& r, const std::string& name) {
  for (auto& kv : r.counters)
    if (kv.first == name) return kv.second;
  return -12345;
}

}  // namespace

int main() {
  using namespace sattn;
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = tmp ? tmp : "/tmp";
  Problem pb;
  pb.spec.kind = SpecKind::kBlockTopK;
  pb.spec.causal = true;
  pb.spec.block = 16;
  pb.spec.keep = 0.3;
  pb.shape.B = 1, pb.shape.Hq = 2, pb.shape.Hkv = 1, pb.shape.Lq = 70, pb.shape.Lk = 70, pb.shape.D = 16;
  pb.scale = 0.25;
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  pb.q.resize(2 * 70 * 16), pb.k.resize(70 * 16), pb.v.resize(70 * 16);
  for (auto* x : {&pb.q, &pb.k, &pb.v})
    for (auto& f : *x) f = nd(rng);
  PlanOptions po;
  po.scale = pb.scale;
  po.num_threads = 1;
  Status st = BuildPlan(pb.spec, pb.shape, pb.q.data(), pb.k.data(), po, &pb.plan);
  EXPECT(st.ok(), "BuildPlan: %s", st.message.c_str());
  const std::string prob = dir + "/p.bin", res = dir + "/r.bin";
  st = WriteProblem(prob, pb);
  EXPECT(st.ok(), "WriteProblem: %s", st.message.c_str());

  EXPECT(Run({"--problem", prob, "--result", res, "--plan-on-target", "--check-selection"}) == 0, "runner failed");
  Result r;
  st = ReadResult(res, &r);
  EXPECT(st.ok(), "ReadResult: %s", st.message.c_str());
  std::vector<float> out, lse;
  st = rvv::RunAttention(pb, rvv::RunOptions{}, &out, &lse, nullptr);
  EXPECT(st.ok() && r.out == out && r.lse == lse, "runner output differs from the in-process driver");
  EXPECT(Counter(r, "target_plan_matches_host") == 1, "plan built on target differs from the file's");
  EXPECT(Counter(r, "selection_mismatched_rows") == 0, "RVV selection differs from the planner");
  EXPECT(Counter(r, "visible_pairs") == pb.plan.VisiblePairs(), "visible_pairs counter wrong");

  // --region selection: the selection is what gets counted, and it is still checked.
  EXPECT(Run({"--problem", prob, "--result", res, "--region", "selection"}) == 0, "--region selection failed");
  Result rs;
  st = ReadResult(res, &rs);
  EXPECT(st.ok() && Counter(rs, "selection_mismatched_rows") == 0, "--region selection: selection differs");
  EXPECT(rs.out == out, "--region selection changed the attention output");

  for (const char* dt : {"bf16", "int8"})
    EXPECT(Run({"--problem", prob, "--result", res, "--dtype", dt}) == 0, "runner --dtype %s failed", dt);

  // --mode backward: the forward's Result file and an upstream Result file (dout in `out`, dlse
  // in `lse`) in, dq/dk/dv Result files out, equal to the in-process driver's.
  {
    Result up;
    up.shape = pb.shape;
    up.out.resize(pb.q.size());
    up.lse.resize(size_t(70) * 2);
    for (auto& f : up.out) f = nd(rng);
    for (auto& f : up.lse) f = nd(rng);
    const std::string fwd = dir + "/fwd.bin", ups = dir + "/up.bin", gq = dir + "/dq.bin", gk = dir + "/dk.bin",
                      gv = dir + "/dv.bin";
    EXPECT(Run({"--problem", prob, "--result", fwd}) == 0, "forward run failed");
    st = WriteResult(ups, up);
    EXPECT(st.ok(), "WriteResult: %s", st.message.c_str());
    const std::vector<std::string> bwd = {"--mode", "backward", "--problem", prob, "--forward", fwd, "--upstream", ups,
                                          "--result", gq, "--result-dk", gk, "--result-dv", gv};
    EXPECT(Run(bwd) == 0, "backward run failed");
    Result rq, rk, rv;
    EXPECT(ReadResult(gq, &rq).ok() && ReadResult(gk, &rk).ok() && ReadResult(gv, &rv).ok(), "reading gradients");
    rvv::BackwardInputs in;
    in.out = &out, in.lse = &lse, in.dout = &up.out, in.dlse = &up.lse;
    std::vector<float> dq, dk, dv, delta;
    st = rvv::RunAttentionBackward(pb, in, rvv::RunOptions{}, &dq, &dk, &dv, &delta, nullptr);
    EXPECT(st.ok() && rq.out == dq && rq.lse == delta && rk.out == dk && rv.out == dv,
           "runner gradients differ from the in-process driver");
    EXPECT(rk.shape.Hq == 1 && rk.shape.Lq == 70 && rk.out.size() == pb.k.size(), "dk result shape");
    EXPECT(Counter(rq, "visible_pairs") == pb.plan.VisiblePairs(), "backward visible_pairs counter wrong");
    EXPECT(Run({"--mode", "backward", "--problem", prob, "--result", gq}) == 2, "backward without --forward accepted");
    EXPECT(Run({"--problem", prob, "--result", gq, "--forward", fwd}) == 2, "--forward without --mode backward accepted");
    std::vector<std::string> i8 = bwd;
    i8.insert(i8.end(), {"--dtype", "int8"});
    EXPECT(Run(i8) == 1, "int8 backward accepted");
    std::vector<std::string> swapped = bwd;
    swapped[5] = gk;  // a Result of another shape as --forward
    EXPECT(Run(swapped) == 1, "--forward of another shape accepted");
    EXPECT(Run({"--mode", "sideways", "--problem", prob, "--result", gq}) == 2, "bad --mode accepted");
  }

  // Damaged inputs: every truncation point class and a flipped byte must be rejected cleanly.
  const std::vector<char> good = ReadAll(prob);
  const std::string bad = dir + "/bad.bin";
  for (size_t cut : {size_t(0), size_t(5), size_t(30), good.size() / 2, good.size() - 1}) {
    WriteAll(bad, std::vector<char>(good.begin(), good.begin() + long(cut)));
    EXPECT(Run({"--problem", bad, "--result", res}) == 1, "truncated file (%zu bytes) not rejected", cut);
  }
  for (size_t at : {size_t(2), size_t(40), good.size() / 3, good.size() - 3}) {
    std::vector<char> c = good;
    c[at] = char(c[at] ^ 0x5a);
    WriteAll(bad, c);
    EXPECT(Run({"--problem", bad, "--result", res}) == 1, "corrupted byte %zu not rejected", at);
  }
  EXPECT(Run({"--problem", dir + "/missing.bin", "--result", res}) == 1, "missing file not rejected");
  EXPECT(Run({"--problem", prob}) == 2, "missing --result accepted");
  EXPECT(Run({"--problem", prob, "--result", res, "--dtype", "fp8"}) == 2, "bad --dtype accepted");
  EXPECT(Run({"--problem", prob, "--result", res, "--bogus"}) == 2, "unknown flag accepted");
  EXPECT(Run({"--problem", prob, "--result", res, "--region", "planner"}) == 2, "bad --region accepted");
  std::printf("%d failures\n", g_failures);
  return g_failures == 0 ? 0 : 1;
}
