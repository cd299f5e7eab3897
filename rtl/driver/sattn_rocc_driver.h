/* C driver for the sattn RoCC accelerator. The same API runs on a RISC-V core with the accelerator
 * attached (each call is one custom-0 instruction, encoded in the generated sattn_rocc_cmds.h) and
 * on the host, where the instruction goes to a transport (the Verilator simulator). */
#ifndef SATTN_ROCC_DRIVER_H_
#define SATTN_ROCC_DRIVER_H_

#include <stdint.h>

#include "sattn_rocc_cmds.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Host builds: where the driver sends an instruction. Unused on RISC-V. */
typedef uint64_t (*sattn_rocc_transport_fn)(void* ctx, uint32_t funct7, uint64_t rs1, uint64_t rs2);
void sattn_rocc_set_host_transport(sattn_rocc_transport_fn fn, void* ctx);

/* One accelerator instruction; returns rd. A funct7 that is not a command of the table (or does not
 * fit in 7 bits) returns SATTN_ROCC_ERR_BAD_FUNCT; on riscv64 without touching the accelerator. */
uint64_t sattn_rocc_issue(uint32_t funct7, uint64_t rs1, uint64_t rs2);

/* Runs SPDOT_BSR, SOFTMAX_FUSED or SPMM_BSR on a descriptor (16-byte aligned, in memory the
 * accelerator can read); returns a sattn_rocc_err_t naming the first fault (sattn_rocc_err_name,
 * sattn_rocc_err_doc), SATTN_ROCC_ERR_UNSUPPORTED for a funct7 that is not one of the three.
 * Blocks until the accelerator answers; the accelerator's watchdog bounds the wait. */
int sattn_rocc_run(const sattn_rocc_desc_t* desc, uint32_t funct7);

/* ATTN_BWD on a backward descriptor (16-byte aligned): the gradients of the attention whose plan,
 * quantised Q/K/V and row statistics it names (docs/backends/rocc.md, "Backward"); returns a
 * sattn_rocc_err_t. */
int sattn_rocc_run_bwd(const sattn_rocc_bwd_desc_t* desc);

/* GATH2D (dst row r <- src row idx[r]) or SCAT2D (dst row idx[r] <- src row r) on a copy
 * descriptor; returns a sattn_rocc_err_t. */
int sattn_rocc_copy2d(const sattn_rocc_copy_desc_t* desc, uint32_t funct7);

/* The raw STATUS answer for a register of the table. */
uint64_t sattn_rocc_status(sattn_rocc_stat_t reg);
/* STATUS of any index: SATTN_ROCC_ERR_OK and *value, or the error code of the answer
 * (SATTN_ROCC_ERR_BAD_STATUS_INDEX for an index >= SATTN_ROCC_N_STATUS_REGS). */
int sattn_rocc_read_status(uint64_t index, uint64_t* value);
/* Sets the watchdog: a command busy for more than `cycles` cycles answers
 * SATTN_ROCC_ERR_WATCHDOG (0 restores SATTN_ROCC_WATCHDOG_DEFAULT). Returns the error code. */
int sattn_rocc_set_watchdog(uint64_t cycles);
void sattn_rocc_clear_counters(void);

#ifdef __cplusplus
}
#endif

#endif /* SATTN_ROCC_DRIVER_H_ */
