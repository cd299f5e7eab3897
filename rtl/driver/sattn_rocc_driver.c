#include "sattn_rocc_driver.h"

#include <stddef.h>

#if defined(__riscv)
/* .insn needs funct7 as an assemble-time constant: one instruction per command. */
#define SATTN_ROCC_CASE(name)                                 \
  case SATTN_ROCC_FUNCT_##name: {                             \
    uint64_t rd;                                              \
    SATTN_ROCC_INSN(SATTN_ROCC_FUNCT_##name, rd, rs1, rs2);   \
    return rd;                                                \
  }

void sattn_rocc_set_host_transport(sattn_rocc_transport_fn fn, void* ctx) {
  (void)fn;
  (void)ctx;
}

uint64_t sattn_rocc_issue(uint32_t funct7, uint64_t rs1, uint64_t rs2) {
  switch (funct7) {
    SATTN_ROCC_CASE(CONFIGURE)
    SATTN_ROCC_CASE(STATUS)
    SATTN_ROCC_CASE(BLK_REDUCE)
    SATTN_ROCC_CASE(TOPK_IDX)
    SATTN_ROCC_CASE(GATH2D)
    SATTN_ROCC_CASE(SCAT2D)
    SATTN_ROCC_CASE(SPDOT_BSR)
    SATTN_ROCC_CASE(SOFTMAX_FUSED)
    SATTN_ROCC_CASE(SPMM_BSR)
    SATTN_ROCC_CASE(ATTN_BWD)
    default:
      return SATTN_ROCC_ERR_BAD_FUNCT;
  }
}
#else
static sattn_rocc_transport_fn g_fn = NULL;
static void* g_ctx = NULL;

void sattn_rocc_set_host_transport(sattn_rocc_transport_fn fn, void* ctx) {
  g_fn = fn;
  g_ctx = ctx;
}

uint64_t sattn_rocc_issue(uint32_t funct7, uint64_t rs1, uint64_t rs2) {
  if (funct7 > 127) return SATTN_ROCC_ERR_BAD_FUNCT; /* no 7-bit encoding: never a truncated command */
  if (g_fn == NULL) return SATTN_ROCC_ERR_UNSUPPORTED;
  return g_fn(g_ctx, funct7, rs1, rs2);
}
#endif

int sattn_rocc_run(const sattn_rocc_desc_t* desc, uint32_t funct7) {
  if (funct7 != SATTN_ROCC_FUNCT_SPDOT_BSR && funct7 != SATTN_ROCC_FUNCT_SOFTMAX_FUSED &&
      funct7 != SATTN_ROCC_FUNCT_SPMM_BSR)
    return SATTN_ROCC_ERR_UNSUPPORTED;
  /* The accelerator reads the descriptor itself; the fence orders our stores before it. */
#if defined(__riscv)
  __asm__ volatile("fence rw, rw" ::: "memory");
#endif
  return (int)sattn_rocc_issue(funct7, (uint64_t)(uintptr_t)desc, 0);
}

int sattn_rocc_run_bwd(const sattn_rocc_bwd_desc_t* desc) {
#if defined(__riscv)
  __asm__ volatile("fence rw, rw" ::: "memory");
#endif
  return (int)sattn_rocc_issue(SATTN_ROCC_FUNCT_ATTN_BWD, (uint64_t)(uintptr_t)desc, 0);
}

int sattn_rocc_copy2d(const sattn_rocc_copy_desc_t* desc, uint32_t funct7) {
  if (funct7 != SATTN_ROCC_FUNCT_GATH2D && funct7 != SATTN_ROCC_FUNCT_SCAT2D) return SATTN_ROCC_ERR_UNSUPPORTED;
#if defined(__riscv)
  __asm__ volatile("fence rw, rw" ::: "memory");
#endif
  return (int)sattn_rocc_issue(funct7, (uint64_t)(uintptr_t)desc, 0);
}

uint64_t sattn_rocc_status(sattn_rocc_stat_t reg) {
  return sattn_rocc_issue(SATTN_ROCC_FUNCT_STATUS, (uint64_t)reg, 0);
}

int sattn_rocc_read_status(uint64_t index, uint64_t* value) {
  const uint64_t rd = sattn_rocc_issue(SATTN_ROCC_FUNCT_STATUS, index, 0);
  if (rd & SATTN_ROCC_STATUS_ERROR_BIT) return (int)(rd & 0xff);
  if (value != NULL) *value = rd;
  return SATTN_ROCC_ERR_OK;
}

int sattn_rocc_set_watchdog(uint64_t cycles) {
  return (int)sattn_rocc_issue(SATTN_ROCC_FUNCT_CONFIGURE, 2, cycles);
}

void sattn_rocc_clear_counters(void) { (void)sattn_rocc_issue(SATTN_ROCC_FUNCT_CONFIGURE, 1, 0); }
