"""Float64 reference of jaxstack.compute / jaxstack.memory (single-chip op costs), from their docstrings."""

import numpy as np


def dram_bandwidth(dram):
    peak = dram["connected_layers"] * dram["channels_per_layer"] * dram["bytes_per_transfer"] * dram["transfer_rate"]
    m, n = dram["total_layers"], dram["connected_layers"]
    x = np.clip((n - m / 2) / np.maximum(m / 2, 1e-9), 0.0, 1.0)
    return peak * (1.0 + x * (dram["row_cycle_efficiency"] - 1.0)) * dram["efficiency"]


def tensor_peak(chip, elem_bytes):
    rate = np.where(elem_bytes <= 0.5, chip["fp4_speedup"], np.where(elem_bytes <= 1.0, chip["fp8_speedup"], 1.0))
    return chip["compute_units"] * chip["clock"] * chip["tensor_flops_per_cycle"] * rate


def _time(chip, flops, nbytes, peak, bw, kernels):
    return np.maximum(flops / (peak * chip["compute_efficiency"]), nbytes / bw) + kernels * chip["op_overhead"]


def gemm(chip, dram, M, K, N, wb, ab, on=1.0):
    f = 2 * M * K * N * on
    b = (K * N * wb + M * (K + N) * ab) * on
    return _time(chip, f, b, tensor_peak(chip, wb), dram_bandwidth(dram), on), f, b


def expert_gemm(chip, dram, assign, touched, K, N, wb, ab, on):
    f = 2 * assign * K * N * on
    b = (touched * K * N * wb + assign * (2 * K + N) * ab) * on
    return _time(chip, f, b, tensor_peak(chip, wb), dram_bandwidth(dram), 3.0 * on), f, b


def attention(chip, dram, flops, kv_bytes, io_bytes, wb):
    b = kv_bytes + io_bytes
    return _time(chip, flops, b, tensor_peak(chip, np.maximum(wb, 2.0)), dram_bandwidth(dram), 1.0), flops, b


def elementwise(chip, dram, flops, nbytes, kernels):
    vpeak = chip["compute_units"] * chip["clock"] * chip["vector_flops_per_cycle"]
    return _time(chip, flops, nbytes, vpeak, dram_bandwidth(dram), kernels), flops, nbytes
