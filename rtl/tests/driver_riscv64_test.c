/* The C driver as riscv64 machine code under qemu-riscv64: each custom-0 instruction the core
 * cannot execute traps (SIGILL) into a stand-in accelerator that decodes the instruction word
 * and answers in rd, so the test checks the encodings, the operand registers and the result
 * register of the real cross-compiled driver, not just that it assembles. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

#include "sattn_rocc_driver.h"

static volatile int g_traps;
static volatile uint32_t g_funct3, g_funct7;
static volatile uint64_t g_rs1, g_rs2;

static void on_sigill(int sig, siginfo_t* info, void* ctx) {
  (void)sig;
  (void)info;
  ucontext_t* uc = (ucontext_t*)ctx;
  unsigned long* x = uc->uc_mcontext.__gregs; /* x[0] holds the pc, x[i] register xi */
  const uint32_t insn = *(const uint32_t*)x[REG_PC];
  if ((insn & 0x7f) != SATTN_ROCC_OPCODE) {
    signal(SIGILL, SIG_DFL);
    return;
  }
  const uint32_t rd = (insn >> 7) & 31, rs1 = (insn >> 15) & 31, rs2 = (insn >> 20) & 31;
  g_funct3 = (insn >> 12) & 7;
  g_funct7 = insn >> 25;
  g_rs1 = rs1 ? x[rs1] : 0;
  g_rs2 = rs2 ? x[rs2] : 0;
  uint64_t result = 0;
  if (g_funct7 == SATTN_ROCC_FUNCT_STATUS) {
    result = g_rs1 < SATTN_ROCC_N_STATUS_REGS ? 1000 + g_rs1 : SATTN_ROCC_STATUS_ERROR_BIT | SATTN_ROCC_ERR_BAD_STATUS_INDEX;
  } else if (g_funct7 == SATTN_ROCC_FUNCT_SOFTMAX_FUSED) {
    /* The accelerator reads the descriptor from memory: answer from its contents. */
    const sattn_rocc_desc_t* d = (const sattn_rocc_desc_t*)(uintptr_t)g_rs1;
    result = d->D == 64 ? SATTN_ROCC_ERR_OK : SATTN_ROCC_ERR_BAD_SHAPE;
  } else {
    result = g_funct7 * 3 + g_rs2;
  }
  if (rd) x[rd] = result;
  x[REG_PC] += 4;
  ++g_traps;
}

static int failures;
#define CHECK(c)                                                  \
  do {                                                            \
    if (!(c)) {                                                   \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
      ++failures;                                                 \
    }                                                             \
  } while (0)

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_sigill;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGILL, &sa, NULL);

  CHECK(sattn_rocc_status(SATTN_ROCC_STAT_MACS) == 1000 + SATTN_ROCC_STAT_MACS);
  CHECK(g_funct3 == SATTN_ROCC_FUNCT3 && g_funct7 == SATTN_ROCC_FUNCT_STATUS);

  sattn_rocc_clear_counters();
  CHECK(g_funct7 == SATTN_ROCC_FUNCT_CONFIGURE && g_rs1 == 1);
  uint64_t value = 0;
  CHECK(sattn_rocc_read_status(SATTN_ROCC_STAT_CYCLES, &value) == SATTN_ROCC_ERR_OK && value == 1000 + SATTN_ROCC_STAT_CYCLES);
  CHECK(sattn_rocc_read_status(1ULL << 63, &value) == SATTN_ROCC_ERR_BAD_STATUS_INDEX && g_rs1 == 1ULL << 63);

  static sattn_rocc_desc_t desc __attribute__((aligned(16)));
  desc.D = 64;
  CHECK(sattn_rocc_run(&desc, SATTN_ROCC_FUNCT_SOFTMAX_FUSED) == SATTN_ROCC_ERR_OK);
  CHECK(g_rs1 == (uint64_t)(uintptr_t)&desc);
  desc.D = 24;
  CHECK(sattn_rocc_run(&desc, SATTN_ROCC_FUNCT_SOFTMAX_FUSED) == SATTN_ROCC_ERR_BAD_SHAPE);

  /* Every other command of the table: its own funct7, both source registers, rd back. */
  const uint32_t others[] = {SATTN_ROCC_FUNCT_BLK_REDUCE, SATTN_ROCC_FUNCT_TOPK_IDX, SATTN_ROCC_FUNCT_GATH2D,
                             SATTN_ROCC_FUNCT_SCAT2D, SATTN_ROCC_FUNCT_SPDOT_BSR, SATTN_ROCC_FUNCT_SPMM_BSR};
  for (unsigned i = 0; i < sizeof(others) / sizeof(others[0]); ++i) {
    const uint64_t r = sattn_rocc_issue(others[i], 0x1234 + i, 7 + i);
    CHECK(g_funct7 == others[i] && g_rs1 == 0x1234 + i && g_rs2 == 7 + i);
    CHECK(r == others[i] * 3 + 7 + i);
  }
  static sattn_rocc_copy_desc_t cdesc __attribute__((aligned(16)));
  CHECK(sattn_rocc_copy2d(&cdesc, SATTN_ROCC_FUNCT_SCAT2D) == SATTN_ROCC_FUNCT_SCAT2D * 3);
  CHECK(g_funct7 == SATTN_ROCC_FUNCT_SCAT2D && g_rs1 == (uint64_t)(uintptr_t)&cdesc && g_rs2 == 0);

  /* Not a command: answered by the driver without an instruction. */
  const int traps = g_traps;
  CHECK(sattn_rocc_issue(0x55, 0, 0) == SATTN_ROCC_ERR_BAD_FUNCT);
  CHECK(sattn_rocc_issue(149, 0, 0) == SATTN_ROCC_ERR_BAD_FUNCT);
  CHECK(sattn_rocc_run(&desc, SATTN_ROCC_FUNCT_STATUS) == SATTN_ROCC_ERR_UNSUPPORTED);
  CHECK(sattn_rocc_copy2d(&cdesc, SATTN_ROCC_FUNCT_SOFTMAX_FUSED) == SATTN_ROCC_ERR_UNSUPPORTED);
  CHECK(g_traps == traps);

  if (failures) {
    fprintf(stderr, "driver_riscv64_test: %d check(s) failed\n", failures);
    return 1;
  }
  printf("driver_riscv64_test: %d instructions trapped and answered; all checks passed\n", g_traps);
  return 0;
}
