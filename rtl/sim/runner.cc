#include "runner.h"

#include <cstdlib>
#include <cstring>

#include "sattn_rocc_driver.h"

namespace sattn {
namespace rocc {

DeviceBuffers::DeviceBuffers(const Problem& p) {
  q = static_cast<int8_t*>(Alloc(p.q.size()));
  std::memcpy(q, p.q.data(), p.q.size());
  k = static_cast<int8_t*>(Alloc(p.k.size()));
  std::memcpy(k, p.k.data(), p.k.size());
  v = static_cast<int8_t*>(Alloc(p.v.size()));
  std::memcpy(v, p.v.data(), p.v.size());
  out_bytes = size_t(p.out_elems()) * 2;
  stats_bytes = size_t(p.stats_elems()) * 4;
  scores_bytes = size_t(p.score_elems()) * 4;
  out = static_cast<int16_t*>(Alloc(out_bytes));
  stats = static_cast<int32_t*>(Alloc(stats_bytes));
  scores = static_cast<int32_t*>(Alloc(scores_bytes));
  auto copy = [this](const void* src, size_t n) {
    void* d = Alloc(n);
    if (n) std::memcpy(d, src, n);
    return d;
  };
  row_ptr = static_cast<int32_t*>(copy(p.plan.row_ptr.data(), p.plan.row_ptr.size() * 4));
  col_idx = static_cast<int32_t*>(copy(p.plan.col_idx.data(), p.plan.col_idx.size() * 4));
  mask_idx = static_cast<int32_t*>(copy(p.plan.mask_idx.data(), p.plan.mask_idx.size() * 4));
  bitmaps = static_cast<uint64_t*>(copy(p.plan.bitmaps.data(), p.plan.bitmaps.size() * 8));
  qmul = static_cast<uint32_t*>(copy(p.qmul.data(), p.qmul.size() * 4));
  kmul = static_cast<uint32_t*>(copy(p.kmul.data(), p.kmul.size() * 4));
}

DeviceBuffers::~DeviceBuffers() {
  for (const Block& b : blocks) std::free(b.p);
}

void* DeviceBuffers::Alloc(size_t bytes) {
  // Round up to whole beats so a beat never straddles the end of an allocation.
  const size_t n = (bytes + 15) / 16 * 16 + 16;
  void* p = std::aligned_alloc(16, n);
  std::memset(p, 0, n);
  blocks.push_back({p, n});
  return p;
}

void DeviceBuffers::MapAll(Sim* sim) const {
  for (const Block& b : blocks) sim->Map(b.p, b.n);
}

void FillDescriptor(const Problem& p, const DeviceBuffers& b, bool with_scores, sattn_rocc_desc_t* d) {
  std::memset(d, 0, sizeof(*d));
  auto u = [](const void* x) { return uint64_t(reinterpret_cast<uintptr_t>(x)); };
  d->q_ptr = u(b.q);
  d->k_ptr = u(b.k);
  d->v_ptr = u(b.v);
  d->out_ptr = u(b.out);
  d->stats_ptr = u(b.stats);
  d->scores_ptr = with_scores ? u(b.scores) : 0;
  d->row_ptr_ptr = u(b.row_ptr);
  d->col_idx_ptr = u(b.col_idx);
  d->mask_idx_ptr = u(b.mask_idx);
  d->bitmaps_ptr = p.plan.bitmaps.empty() ? 0 : u(b.bitmaps);
  d->qmul_ptr = u(b.qmul);
  d->kmul_ptr = u(b.kmul);
  d->B = uint64_t(p.B);
  d->Hq = uint64_t(p.Hq);
  d->Hkv = uint64_t(p.Hkv);
  d->D = uint64_t(p.D);
  d->block = uint64_t(p.block);
  d->n_k_blocks = uint64_t(p.n_k_blocks);
  d->plan_b = uint64_t(p.plan.plan_b);
  d->plan_h = uint64_t(p.plan.plan_h);
  d->q_block_begin = uint64_t(p.plan.q_block_begin);
  d->n_q_blocks = uint64_t(p.plan.n_q_blocks);
  d->nnz = uint64_t(p.plan.nnz());
  d->n_bitmaps = uint64_t(p.n_bitmaps());
  d->Lk = uint64_t(p.Lk);
  d->score_shift = p.score_shift;
  d->out_bytes = b.out_bytes;
  d->stats_bytes = b.stats_bytes;
  d->scores_bytes = with_scores ? b.scores_bytes : 0;
}

const std::vector<std::string>& StatusNames() {
  static const std::vector<std::string> names(sattn_rocc_stat_names,
                                               sattn_rocc_stat_names + SATTN_ROCC_N_STATUS_REGS);
  return names;
}

RunResult Run(const Problem& p, Path path, Sim* sim) {
  RunResult res;
  DeviceBuffers buf(p);
  sattn_rocc_desc_t* d = static_cast<sattn_rocc_desc_t*>(buf.Alloc(sizeof(sattn_rocc_desc_t)));
  FillDescriptor(p, buf, path == Path::kUnfused, d);
  sim->UnmapAll();
  buf.MapAll(sim);
  const uint64_t faults0 = sim->faults();
  sattn_rocc_set_host_transport(&SimTransport, sim);
  const auto& names = StatusNames();
  auto collect = [&]() {
    for (int r = 0; r < SATTN_ROCC_N_STATUS_REGS; ++r) {
      const uint64_t v = sattn_rocc_status(static_cast<sattn_rocc_stat_t>(r));
      if (names[r].rfind("param_", 0) == 0 || r == SATTN_ROCC_STAT_LAST_ERROR) res.counters[names[r]] = v;
      else res.counters[names[r]] += v;
    }
  };
  if (path == Path::kFused) {
    sattn_rocc_clear_counters();
    res.error = sattn_rocc_run(d, SATTN_ROCC_FUNCT_SOFTMAX_FUSED);
    collect();
  } else {
    sattn_rocc_clear_counters();
    res.error = sattn_rocc_run(d, SATTN_ROCC_FUNCT_SPDOT_BSR);
    collect();
    if (res.error == 0) {
      sattn_rocc_clear_counters();
      res.error = sattn_rocc_run(d, SATTN_ROCC_FUNCT_SPMM_BSR);
      collect();
    }
    res.scores.assign(buf.scores, buf.scores + p.score_elems());
  }
  res.output.out.assign(buf.out, buf.out + p.out_elems());
  res.output.stats.assign(buf.stats, buf.stats + p.stats_elems());
  res.sim_faults = sim->faults() - faults0;
  sim->UnmapAll();
  sattn_rocc_set_host_transport(nullptr, nullptr);
  return res;
}

BwdDeviceBuffers::BwdDeviceBuffers(const BwdProblem& bp) {
  const Problem& p = bp.fwd;
  q = static_cast<int8_t*>(Copy(p.q.data(), p.q.size()));
  k = static_cast<int8_t*>(Copy(p.k.data(), p.k.size()));
  v = static_cast<int8_t*>(Copy(p.v.data(), p.v.size()));
  dout = static_cast<int8_t*>(Copy(bp.dout.data(), bp.dout.size()));
  rs = static_cast<int32_t*>(Copy(bp.rs.data(), bp.rs.size() * 4));
  emul = static_cast<uint32_t*>(Copy(bp.emul.data(), bp.emul.size() * 4));
  kmul = static_cast<uint32_t*>(Copy(p.kmul.data(), p.kmul.size() * 4));
  row_ptr = static_cast<int32_t*>(Copy(p.plan.row_ptr.data(), p.plan.row_ptr.size() * 4));
  col_idx = static_cast<int32_t*>(Copy(p.plan.col_idx.data(), p.plan.col_idx.size() * 4));
  t_row_ptr = static_cast<int32_t*>(Copy(bp.t_row_ptr.data(), bp.t_row_ptr.size() * 4));
  t_ent = static_cast<int32_t*>(Copy(bp.t_ent.data(), bp.t_ent.size() * 4));
  bitmaps = static_cast<uint64_t*>(Copy(p.plan.bitmaps.data(), p.plan.bitmaps.size() * 8));
  ds_bytes = size_t(bp.n_ds_tiles() * bp.ds_tile_bytes());
  dq_bytes = size_t(bp.dq_elems()) * 8;
  dkv_bytes = size_t(bp.dkv_elems()) * 8;
  ds = static_cast<uint8_t*>(Alloc(ds_bytes));
  dq = static_cast<int64_t*>(Alloc(dq_bytes));
  dk = static_cast<int64_t*>(Alloc(dkv_bytes));
  dv = static_cast<int64_t*>(Alloc(dkv_bytes));
}

BwdDeviceBuffers::~BwdDeviceBuffers() {
  for (const auto& b : blocks) std::free(b.p);
}

void* BwdDeviceBuffers::Alloc(size_t bytes) {
  const size_t n = (bytes + 15) / 16 * 16 + 16;
  void* p = std::aligned_alloc(16, n);
  std::memset(p, 0, n);
  blocks.push_back({p, n});
  return p;
}

void* BwdDeviceBuffers::Copy(const void* src, size_t bytes) {
  void* d = Alloc(bytes);
  if (bytes) std::memcpy(d, src, bytes);
  return d;
}

void BwdDeviceBuffers::MapAll(Sim* sim) const {
  for (const auto& b : blocks) sim->Map(b.p, b.n);
}

void FillBwdDescriptor(const BwdProblem& bp, const BwdDeviceBuffers& b, sattn_rocc_bwd_desc_t* d) {
  const Problem& p = bp.fwd;
  std::memset(d, 0, sizeof(*d));
  auto u = [](const void* x) { return uint64_t(reinterpret_cast<uintptr_t>(x)); };
  d->q_ptr = u(b.q);
  d->k_ptr = u(b.k);
  d->v_ptr = u(b.v);
  d->do_ptr = u(b.dout);
  d->rs_ptr = u(b.rs);
  d->emul_ptr = u(b.emul);
  d->kmul_ptr = u(b.kmul);
  d->row_ptr_ptr = u(b.row_ptr);
  d->col_idx_ptr = u(b.col_idx);
  d->t_row_ptr_ptr = u(b.t_row_ptr);
  d->t_ent_ptr = u(b.t_ent);
  d->bitmaps_ptr = p.plan.bitmaps.empty() ? 0 : u(b.bitmaps);
  d->ds_ptr = u(b.ds);
  d->dq_ptr = u(b.dq);
  d->dk_ptr = u(b.dk);
  d->dv_ptr = u(b.dv);
  d->B = uint64_t(p.B);
  d->Hq = uint64_t(p.Hq);
  d->Hkv = uint64_t(p.Hkv);
  d->D = uint64_t(p.D);
  d->block = uint64_t(p.block);
  d->n_k_blocks = uint64_t(p.n_k_blocks);
  d->plan_b = uint64_t(p.plan.plan_b);
  d->plan_h = uint64_t(p.plan.plan_h);
  d->q_block_begin = uint64_t(p.plan.q_block_begin);
  d->n_q_blocks = uint64_t(p.plan.n_q_blocks);
  d->nnz = uint64_t(p.plan.nnz());
  d->n_bitmaps = uint64_t(p.n_bitmaps());
  d->t_nnz = uint64_t(bp.t_nnz());
  d->Lk = uint64_t(p.Lk);
  d->score_shift = p.score_shift;
  d->ds_bytes = b.ds_bytes;
  d->dq_bytes = b.dq_bytes;
  d->dk_bytes = b.dkv_bytes;
  d->dv_bytes = b.dkv_bytes;
}

BwdRunResult RunBwd(const BwdProblem& bp, Sim* sim) {
  BwdRunResult res;
  BwdDeviceBuffers buf(bp);
  auto* d = static_cast<sattn_rocc_bwd_desc_t*>(buf.Alloc(sizeof(sattn_rocc_bwd_desc_t)));
  FillBwdDescriptor(bp, buf, d);
  sim->UnmapAll();
  buf.MapAll(sim);
  const uint64_t faults0 = sim->faults();
  sattn_rocc_set_host_transport(&SimTransport, sim);
  sattn_rocc_clear_counters();
  res.error = sattn_rocc_run_bwd(d);
  const auto& names = StatusNames();
  for (int r = 0; r < SATTN_ROCC_N_STATUS_REGS; ++r)
    res.counters[names[r]] = sattn_rocc_status(static_cast<sattn_rocc_stat_t>(r));
  const int64_t T = int64_t(bp.fwd.block) * bp.fwd.block;
  res.output.ds.resize(size_t(bp.n_ds_tiles() * T));
  res.output.ds_shift.resize(size_t(bp.n_ds_tiles()));
  for (int64_t t = 0; t < bp.n_ds_tiles(); ++t) {
    const uint8_t* tile = buf.ds + t * bp.ds_tile_bytes();
    std::memcpy(&res.output.ds[size_t(t * T)], tile, size_t(T) * 2);
    std::memcpy(&res.output.ds_shift[size_t(t)], tile + T * 2, 4);
  }
  res.output.dq.assign(buf.dq, buf.dq + bp.dq_elems());
  res.output.dk.assign(buf.dk, buf.dk + bp.dkv_elems());
  res.output.dv.assign(buf.dv, buf.dv + bp.dkv_elems());
  res.sim_faults = sim->faults() - faults0;
  sim->UnmapAll();
  sattn_rocc_set_host_transport(nullptr, nullptr);
  return res;
}

}  // namespace rocc
}  // namespace sattn
