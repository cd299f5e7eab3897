"""Energy, latency and area of a Mapping on an Arch, split by component.

Activity is counted first (cell reads, DAC and ADC conversions, accumulations, cells written,
digital softmax ops, bytes moved) and priced once by `price`, the one place energies are
applied, so the attention estimate and the peak-efficiency check (`peak`) share the accounting.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from sattn.imc.arch import Arch
from sattn.imc.mapping import Entries, Mapping

PARTIAL_BYTES = 4   # scores and partial outputs leave the arrays as 32-bit accumulators


@dataclasses.dataclass
class Activity:
    cell_reads: float = 0.0
    dac_conversions: float = 0.0
    adc_conversions: float = 0.0
    accumulations: float = 0.0
    cells_written: float = 0.0
    digital_ops: float = 0.0
    bytes_moved: float = 0.0
    array_compute_s: float = 0.0   # busiest slot's MVM time
    array_write_s: float = 0.0     # busiest slot's write time
    array_s: float = 0.0           # busiest slot, writes overlapped or not as the design says

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _mvm_counts(arch: Arch, rows, outputs, col_tiles, row_tiles):
    """Counts of one input vector through arrays holding a rows x outputs weight tile."""
    cyc, S = arch.input_cycles, arch.slices
    cells = rows * outputs * S * cyc
    dac = rows * col_tiles * cyc
    if arch.analog:
        adc = outputs * S * row_tiles * cyc
        acc = adc
    else:
        adc = 0 * cells
        acc = outputs * row_tiles * cyc
    return cells, dac, adc, acc


def attention_activity(ent: Entries, mp: Mapping, arch: Arch) -> Activity:
    R, wpr = arch.array["rows"], arch.weights_per_row
    D, S = ent.D, arch.slices
    w = ent.queries_c                                      # query vectors through each key block
    kc = ent.kcols_c
    ck, dk, ak, sk = _mvm_counts(arch, D, kc, -(-kc // wpr), math.ceil(D / R))   # Q . K^T, K arrays
    cv, dv, av, sv = _mvm_counts(arch, kc, D, math.ceil(D / wpr), -(-kc // R))   # P . V, V arrays
    act = Activity()
    act.cell_reads = float(np.dot(w, ck + cv))
    act.dac_conversions = float(np.dot(w, dk + dv))
    act.adc_conversions = float(np.dot(w, ak + av))
    act.accumulations = float(np.dot(w, sk + sv))
    wkc = mp.kv_kcols[mp.write_kv].astype(np.float64)
    act.cells_written = float(2.0 * D * S * wkc.sum())
    act.digital_ops = (arch.digital["ops_per_score"] * float(ent.visible_pairs)
                       + arch.digital["ops_per_output"] * D * float(w.sum()))
    in_b = arch.operands["input_bits"] / 8.0
    w_b = arch.operands["weight_bits"] / 8.0
    per_query = D * in_b + kc * PARTIAL_BYTES + kc * in_b + D * PARTIAL_BYTES
    act.bytes_moved = float(np.dot(w, per_query)) + 2.0 * D * w_b * float(wkc.sum())
    # Per slot: each written copy streams its queries (K and V arrays pipelined: one MVM time
    # per query vector) and costs one write of its rows (arrays of a slot write in parallel).
    comp = mp.write_queries * arch.mvm_time_s()
    write = np.maximum(min(D, R), np.minimum(wkc, R)) * arch.write["latency_per_row_s"]
    per_block = np.maximum(comp, write) if arch.write["overlapped"] else comp + write
    n = mp.slots
    act.array_compute_s = float(np.bincount(mp.write_slot, weights=comp, minlength=n).max())
    act.array_write_s = float(np.bincount(mp.write_slot, weights=write, minlength=n).max())
    act.array_s = float(np.bincount(mp.write_slot, weights=per_block, minlength=n).max())
    return act


def peak_activity(arch: Arch) -> tuple:
    """(Activity, ops) of every array doing one MVM on a full weight tile (weights resident)."""
    n, R, wpr = arch.array["count"], arch.array["rows"], arch.weights_per_row
    cells, dac, adc, acc = _mvm_counts(arch, R, wpr, 1, 1)
    act = Activity(cell_reads=n * cells, dac_conversions=n * dac, adc_conversions=n * adc, accumulations=n * acc)
    act.bytes_moved = n * (R * arch.operands["input_bits"] / 8.0 + wpr * PARTIAL_BYTES)
    act.array_compute_s = act.array_s = arch.mvm_time_s()
    return act, 2.0 * n * R * wpr


def price(act: Activity, arch: Arch) -> dict:
    """{"energy_j", "energy_split_j", "latency_s", "latency_split_s", "bottleneck"} of `act`."""
    digital_s = act.digital_ops / arch.digital["ops_per_s"]
    inter_s = act.bytes_moved / arch.interconnect["bytes_per_s"]
    lat = {"array": act.array_s, "digital": digital_s, "interconnect": inter_s}
    latency = max(lat.values())
    split_lat = {"array_compute": act.array_compute_s, "array_write": act.array_write_s, **lat}
    energy = {
        "array_read": act.cell_reads * arch.array["read_energy_per_cell_j"],
        "dac": act.dac_conversions * arch.dac["energy_j"],
        "adc": act.adc_conversions * arch.adc["energy_j"],
        "accumulate": act.accumulations * arch.accumulate["energy_per_op_j"],
        "write": act.cells_written * arch.write["energy_per_cell_j"],
        "digital": act.digital_ops * arch.digital["energy_per_op_j"],
        "interconnect": act.bytes_moved * arch.interconnect["energy_per_byte_j"],
        "static": arch.static["power_w"] * latency,
    }
    return {"energy_j": sum(energy.values()), "energy_split_j": energy, "latency_s": latency,
            "latency_split_s": split_lat, "bottleneck": max(lat, key=lat.get)}


def area(arch: Arch) -> dict:
    n = arch.array["count"]
    split = {"arrays": n * arch.area["array_mm2"], "peripherals": n * arch.area["peripheral_per_array_mm2"],
             "digital": arch.area["digital_mm2"]}
    return {"area_mm2": sum(split.values()), "area_split_mm2": split}


def peak(arch: Arch) -> dict:
    """The design's peak efficiency as the model prices it: TOPS/W and TOPS/mm^2 (2 ops per MAC)."""
    act, ops = peak_activity(arch)
    p = price(act, arch)
    a = area(arch)
    return {"ops": ops, "energy_j": p["energy_j"], "latency_s": p["latency_s"],
            "tops_per_w": ops / p["energy_j"] / 1e12,
            "tops_per_mm2": ops / p["latency_s"] / a["area_mm2"] / 1e12,
            "energy_split_j": p["energy_split_j"]}
