/* sattn's QEMU TCG plugin: exact dynamic RISC-V instruction counts by class.
 *
 *   qemu-riscv64 -cpu rv64,v=true,vlen=256,elen=64 \
 *       -plugin librvv_insn_count.so,out=counts.txt ./binary
 *
 * Classes (decoded from the instruction bits, docs/backends/rvv.md "Counter classes"):
 *   scalar_alu  scalar integer/FP computation, system instructions
 *   scalar_mem  scalar loads/stores/AMOs (+ scalar_mem_bytes, from the encoding)
 *   branch      conditional branches, jal, jalr (and their compressed forms)
 *   vec_cfg     vsetvli / vsetivli / vsetvl
 *   vec_arith   every other OP-V instruction
 *   vec_mem     vector loads/stores (+ vec_mem_bytes, counted per element access by QEMU's
 *               memory callbacks; vec_mem_nonunit: strided/indexed ones)
 *               (vec_mem_nonunit_bytes: the bytes those moved)
 *   vec_arith_reg_ops  vector arithmetic weighted by the LMUL in force (vtype of the last vsetvli
 *               executed; fractional LMUL counts 1): register-group operations for the proxy
 *
 * Counts are kept for the whole run ("total.") and between the region markers ("region.") that
 * the runner executes around the kernels: the HINTs `addi x0,x0,0x7e1` (begin) and `0x7e2` (end).
 * Instruction counts are added per translation block when it starts; a marker subtracts the part
 * of its block that has not run yet, so region counts are exact. Output: "key value" lines.
 *
 * QEMU installs no plugin header on Debian, so the few API functions used are declared here
 * (QEMU plugin API version 1, as in QEMU 7.2).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- QEMU plugin API (include/qemu/qemu-plugin.h, version 1) ---- */
typedef uint64_t qemu_plugin_id_t;
typedef uint32_t qemu_plugin_meminfo_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1, QEMU_PLUGIN_MEM_W, QEMU_PLUGIN_MEM_RW };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t, struct qemu_plugin_tb*);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int, void*);
typedef void (*qemu_plugin_vcpu_mem_cb_t)(unsigned int, qemu_plugin_meminfo_t, uint64_t, void*);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t, void*);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, qemu_plugin_vcpu_tb_trans_cb_t);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb*);
struct qemu_plugin_insn* qemu_plugin_tb_get_insn(const struct qemu_plugin_tb*, size_t);
const void* qemu_plugin_insn_data(const struct qemu_plugin_insn*);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn*);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb*, enum qemu_plugin_op, void*, uint64_t);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn*, qemu_plugin_vcpu_udata_cb_t,
                                            enum qemu_plugin_cb_flags, void*);
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn*, qemu_plugin_vcpu_mem_cb_t,
                                      enum qemu_plugin_cb_flags, enum qemu_plugin_mem_rw, void*);
unsigned int qemu_plugin_mem_size_shift(qemu_plugin_meminfo_t);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, qemu_plugin_udata_cb_t, void*);
void qemu_plugin_outs(const char*);

#define EXPORT __attribute__((visibility("default")))
EXPORT int qemu_plugin_version = 1;

/* ---- counters ---- */
enum {
  C_INSNS, C_SCALAR_ALU, C_SCALAR_MEM, C_BRANCH, C_VEC_CFG, C_VEC_ARITH, C_VEC_MEM,
  C_VEC_MEM_NONUNIT, C_SCALAR_MEM_BYTES, /* static: added per block like the classes above */
  N_STATIC,
  C_VEC_MEM_BYTES = N_STATIC, C_VEC_MEM_NONUNIT_BYTES, C_VEC_ARITH_REG_OPS, /* dynamic: callbacks */
  N_COUNTERS
};
static const char* const kNames[N_COUNTERS] = {
    "insns", "scalar_alu", "scalar_mem", "branch", "vec_cfg", "vec_arith", "vec_mem",
    "vec_mem_nonunit", "scalar_mem_bytes", "vec_mem_bytes", "vec_mem_nonunit_bytes", "vec_arith_reg_ops"};

static uint64_t g_count[N_COUNTERS];
static uint64_t g_begin[N_COUNTERS], g_end[N_COUNTERS];
static int g_begins, g_ends;
static uint64_t g_lmul_eighths = 8; /* LMUL of the vtype in force, in eighths */
static char* g_out_path;

typedef struct {
  int cls;               /* C_* class of the instruction */
  int mem_bytes;         /* static scalar access size */
  int nonunit;           /* vector strided/indexed */
  int vtype_lmul8;       /* vsetvli/vsetivli: LMUL in eighths; 0: unknown (vsetvl) */
  int marker;            /* 1 begin, 2 end */
  uint64_t tail[N_STATIC]; /* markers: static counts of the rest of the block */
} InsnInfo;

static uint32_t load_insn(const struct qemu_plugin_insn* insn, size_t* len) {
  const uint8_t* p = (const uint8_t*)qemu_plugin_insn_data(insn);
  *len = qemu_plugin_insn_size(insn);
  uint32_t w = 0;
  for (size_t i = 0; i < *len && i < 4; ++i) w |= (uint32_t)p[i] << (8 * i);
  return w;
}

static int lmul8_of_vtype(uint32_t vtype) {
  static const int k[8] = {8, 16, 32, 64, 0, 1, 2, 4};
  return k[vtype & 7];
}

static void classify(uint32_t w, size_t len, InsnInfo* info) {
  memset(info, 0, sizeof *info);
  info->cls = C_SCALAR_ALU;
  if (len == 2) {
    const uint32_t q = w & 3, f3 = (w >> 13) & 7;
    if (q == 0 && f3 != 0 && f3 != 4) {
      info->cls = C_SCALAR_MEM;
      info->mem_bytes = (f3 == 2 || f3 == 6) ? 4 : 8;
    } else if (q == 1 && (f3 == 5 || f3 == 6 || f3 == 7)) {
      info->cls = C_BRANCH;
    } else if (q == 2 && f3 != 0 && f3 != 4) {
      info->cls = C_SCALAR_MEM;
      info->mem_bytes = (f3 == 2 || f3 == 6) ? 4 : 8;
    } else if (q == 2 && f3 == 4 && ((w >> 2) & 31) == 0 && ((w >> 7) & 31) != 0) {
      info->cls = C_BRANCH; /* c.jr / c.jalr */
    }
    return;
  }
  const uint32_t op = w & 0x7f, f3 = (w >> 12) & 7;
  if (w == 0x7E100013u) info->marker = 1;
  if (w == 0x7E200013u) info->marker = 2;
  switch (op) {
    case 0x07: /* LOAD-FP */
    case 0x27: /* STORE-FP */
      if (f3 == 0 || f3 >= 5) {
        info->cls = C_VEC_MEM;
        info->nonunit = ((w >> 26) & 3) != 0;
      } else {
        info->cls = C_SCALAR_MEM;
        info->mem_bytes = 1 << f3; /* flh 2, flw 4, fld 8, flq 16 */
      }
      break;
    case 0x57: /* OP-V */
      if (f3 == 7) {
        info->cls = C_VEC_CFG;
        if ((w >> 31) == 0) info->vtype_lmul8 = lmul8_of_vtype((w >> 20) & 0x7ff);
        else if ((w >> 30) == 3) info->vtype_lmul8 = lmul8_of_vtype((w >> 20) & 0x3ff);
      } else {
        info->cls = C_VEC_ARITH;
      }
      break;
    case 0x03: /* LOAD */
      info->cls = C_SCALAR_MEM;
      info->mem_bytes = 1 << (f3 & 3);
      break;
    case 0x23: /* STORE */
      info->cls = C_SCALAR_MEM;
      info->mem_bytes = 1 << (f3 & 3);
      break;
    case 0x2f: /* AMO */
      info->cls = C_SCALAR_MEM;
      info->mem_bytes = f3 == 3 ? 8 : 4;
      break;
    case 0x63: case 0x6f: case 0x67:
      info->cls = C_BRANCH;
      break;
    default:
      break;
  }
}

static void on_vec_mem(unsigned int vcpu, qemu_plugin_meminfo_t mi, uint64_t vaddr, void* ud) {
  (void)vcpu, (void)vaddr;
  const uint64_t bytes = 1u << qemu_plugin_mem_size_shift(mi);
  g_count[C_VEC_MEM_BYTES] += bytes;
  if (((const InsnInfo*)ud)->nonunit) g_count[C_VEC_MEM_NONUNIT_BYTES] += bytes;
}

static void on_vec_insn(unsigned int vcpu, void* ud) {
  (void)vcpu;
  const InsnInfo* info = (const InsnInfo*)ud;
  if (info->cls == C_VEC_CFG) {
    /* vsetvl (register vtype) is not visible here: assume LMUL 1 for what follows. */
    g_lmul_eighths = info->vtype_lmul8 ? (uint64_t)info->vtype_lmul8 : 8;
  } else if (info->cls == C_VEC_ARITH) {
    g_count[C_VEC_ARITH_REG_OPS] += g_lmul_eighths < 8 ? 1 : g_lmul_eighths / 8;
  }
}

static void on_marker(unsigned int vcpu, void* ud) {
  (void)vcpu;
  const InsnInfo* info = (const InsnInfo*)ud;
  uint64_t* snap = info->marker == 1 ? g_begin : g_end;
  for (int c = 0; c < N_COUNTERS; ++c) snap[c] = g_count[c] - (c < N_STATIC ? info->tail[c] : 0);
  if (info->marker == 1) ++g_begins; else ++g_ends;
}

static void on_tb(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  (void)id;
  const size_t n = qemu_plugin_tb_n_insns(tb);
  uint64_t block[N_STATIC] = {0};
  /* Walk backwards so each marker knows the static counts of the instructions after it. */
  for (size_t k = n; k-- > 0;) {
    struct qemu_plugin_insn* insn = qemu_plugin_tb_get_insn(tb, k);
    size_t len;
    const uint32_t w = load_insn(insn, &len);
    InsnInfo tmp;
    classify(w, len, &tmp);
    if (tmp.marker) {
      /* Leaked on purpose: QEMU keeps the callback for as long as the translation lives. */
      InsnInfo* info = (InsnInfo*)malloc(sizeof *info);
      *info = tmp;
      memcpy(info->tail, block, sizeof block);
      qemu_plugin_register_vcpu_insn_exec_cb(insn, on_marker, QEMU_PLUGIN_CB_NO_REGS, info);
    }
    if (tmp.cls == C_VEC_ARITH || tmp.cls == C_VEC_CFG || tmp.cls == C_VEC_MEM) {
      InsnInfo* info = (InsnInfo*)malloc(sizeof *info);
      *info = tmp;
      if (tmp.cls == C_VEC_MEM)
        qemu_plugin_register_vcpu_mem_cb(insn, on_vec_mem, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, info);
      else
        qemu_plugin_register_vcpu_insn_exec_cb(insn, on_vec_insn, QEMU_PLUGIN_CB_NO_REGS, info);
    }
    block[C_INSNS] += 1;
    block[tmp.cls] += 1;
    block[C_VEC_MEM_NONUNIT] += tmp.nonunit;
    block[C_SCALAR_MEM_BYTES] += (uint64_t)tmp.mem_bytes;
  }
  for (int c = 0; c < N_STATIC; ++c)
    if (block[c]) qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &g_count[c], block[c]);
}

static void on_plugin_exit(qemu_plugin_id_t id, void* ud) {
  (void)id, (void)ud;
  char buf[4096];
  size_t len = 0;
  len += (size_t)snprintf(buf + len, sizeof buf - len, "sattn_rvv_counts 1\n");
  for (int c = 0; c < N_COUNTERS; ++c)
    len += (size_t)snprintf(buf + len, sizeof buf - len, "total.%s %llu\n", kNames[c], (unsigned long long)g_count[c]);
  /* A region is reported only if exactly one begin preceded exactly one end. */
  const int valid = g_begins == 1 && g_ends == 1;
  len += (size_t)snprintf(buf + len, sizeof buf - len, "region.valid %d\n", valid);
  if (valid)
    for (int c = 0; c < N_COUNTERS; ++c)
      len += (size_t)snprintf(buf + len, sizeof buf - len, "region.%s %llu\n", kNames[c],
                              (unsigned long long)(g_end[c] - g_begin[c]));
  if (g_out_path) {
    FILE* f = fopen(g_out_path, "w");
    if (f) {
      fputs(buf, f);
      fclose(f);
      return;
    }
    fprintf(stderr, "rvv_insn_count: cannot write %s\n", g_out_path);
  }
  qemu_plugin_outs(buf);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info, int argc, char** argv) {
  (void)info;
  for (int i = 0; i < argc; ++i) {
    if (strncmp(argv[i], "out=", 4) == 0) {
      g_out_path = strdup(argv[i] + 4);
    } else {
      fprintf(stderr, "rvv_insn_count: unknown argument '%s' (expected out=PATH)\n", argv[i]);
      return -1;
    }
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb);
  qemu_plugin_register_atexit_cb(id, on_plugin_exit, NULL);
  return 0;
}
