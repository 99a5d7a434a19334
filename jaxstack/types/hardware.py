"""L1: hardware data types (frozen pytrees, SI units, one scalar per design point).

Only primitive, independently choosable parameters are stored; derived quantities
(peak FLOP/s, DRAM bandwidth, capacity, device count) are free functions in the
physics modules so that gradients reach the primitives.

Conventions
- ``Chip``: one logic die (an accelerator "device"); ``compute_units`` are SMs/CUs.
- ``Dram``: the memory attached to one chip. For a 3D stack, ``total_layers`` DRAM dies
  of which ``connected_layers`` have their own vertical port. For a 2.5D HBM GPU the
  whole HBM system is described as one "layer" of ``channels_per_layer`` pseudo-channels
  (documented in each preset).
- ``Fabric``: up to three levels, ``l1`` innermost (e.g. NVLink switch) to ``l3``
  outermost. Unused levels have ``size = 1``. Device count = l1.size * l2.size * l3.size.
"""

from enum import IntEnum

from ._tree import leaf, pytree

__all__ = ["Chip", "Dram", "FabricLevel", "Fabric", "Thermal", "TopologyKind"]


class TopologyKind(IntEnum):
    """Topology of one fabric level (stored as a numeric leaf so one compile covers all)."""

    switch = 0
    all_to_all = 1
    ring = 2
    chain = 3
    mesh2d = 4
    torus2d = 5


@pytree
class Chip:
    compute_units: float = leaf("1", "SMs / CUs / cores on the logic die", domain="int>=1")
    clock: float = leaf("Hz", "core clock", domain=">0")
    tensor_flops_per_cycle: float = leaf("1", "dense 16-bit tensor FLOP per cycle per unit", domain=">0")
    fp8_speedup: float = leaf("1", "8-bit tensor rate / 16-bit rate (1 if no FP8)", domain=">0")
    fp4_speedup: float = leaf("1", "4-bit tensor rate / 16-bit rate (1 if no FP4)", domain=">0")
    vector_flops_per_cycle: float = leaf("1", "FP32 vector FLOP per cycle per unit", domain=">0")
    sram_capacity: float = leaf("B", "shared memory / scratchpad per unit", domain=">0")
    sram_bandwidth: float = leaf("1", "SRAM bytes per cycle per unit", domain=">0")
    l2_capacity: float = leaf("B", "last-level on-chip cache (0 if none)", domain=">=0")
    compute_efficiency: float = leaf("1", "achieved fraction of tensor peak on large GEMMs", domain="(0,1]")
    op_overhead: float = leaf("s", "fixed cost per kernel (launch, prologue, tail)", domain=">=0")
    tdp: float = leaf("W", "thermal design power of one chip", domain=">0")
    static_power: float = leaf("W", "idle/leakage power of one chip at leakage_ref_temp", domain=">=0")
    energy_per_flop: float = leaf("J/FLOP", "dynamic energy per 16-bit tensor FLOP (8/4-bit: divided by "
                                  "fp8/fp4_speedup, power.py)", domain=">=0")
    # issue 4 (area.py, memory.py); defaults are neutral: GPU results unchanged unless a preset sets them
    die_area: float = leaf("m2", "logic-die area budget; 0 = compute_units fixed, > 0 = at most "
                           "compute_units, as many as fit (area.py)", default=0.0, domain=">=0")
    unit_area: float = leaf("m2", "logic area of one compute unit without its SRAM and L1 datapath",
                            default=0.0, domain=">=0")
    fabric_port_bandwidth: float = leaf("B/s", "fabric bandwidth whose ports sit on the logic die "
                                        "(costs die area; 0 = none)", default=0.0, domain=">=0")
    buffering_factor: float = leaf("1", "in-flight bytes per byte of DRAM bandwidth x latency "
                                   "(Little's law)", default=1.0, domain=">0")
    sram_traffic_factor: float = leaf("1", "SRAM bytes moved per DRAM byte for the SRAM-bandwidth cap "
                                      "(DeepStack 2; 0 = cap off)", default=0.0, domain=">=0")
    # issue 7: paged / MLA attention kernels read the KV cache in scattered blocks
    attention_bandwidth_efficiency: float = leaf("1", "achieved fraction of the DRAM bandwidth in the "
                                                 "attention kernel (paged KV reads; 1 = streaming)",
                                                 default=1.0, domain="(0,1]")
    moe_gemm_efficiency: float = leaf("1", "achieved fraction of the dense GEMM rate in the routed experts' "
                                      "grouped GEMMs (MoE kernels; 1 = as dense GEMMs)", default=1.0,
                                      domain="(0,1]")
    # issue 6 (power.py, thermal.py): energy and leakage; defaults leave the pre-issue-6 model unchanged
    vector_energy_per_flop: float = leaf("J/FLOP", "dynamic energy per FP32 vector (SIMT) FLOP incl. amortised "
                                         "instruction issue", default=2.0e-12, domain=">=0")
    sram_energy_scale: float = leaf("1", "SRAM J/bit relative to the CACTI 22 nm table by size (power.py); "
                                    "0.5 = 5-7 nm [U] (HARDWARE.md 3.4)", default=0.5, domain=">=0")
    leakage_temp_coeff: float = leaf("1/K", "beta of P_static(T) = static_power exp(beta (T_j - T_ref)); "
                                     "0 = static power independent of temperature", default=0.0, domain=">=0")
    leakage_ref_temp: float = leaf("degC", "junction temperature at which static_power is specified",
                                   default=85.0, domain=">-273.15")


@pytree
class Dram:
    total_layers: float = leaf("1", "DRAM dies in the stack (m); sets capacity", domain="int>=1")
    connected_layers: float = leaf("1", "dies with their own vertical port (n); sets bandwidth", domain="int>=1")
    channels_per_layer: float = leaf("1", "independent channels per connected layer", domain="int>=1")
    bytes_per_transfer: float = leaf("B/elem", "bytes per channel per transfer", domain=">0")
    transfer_rate: float = leaf("Hz", "transfers per second per channel", domain=">0")
    capacity_per_layer: float = leaf("B", "capacity of one DRAM layer", domain=">0")
    usable_fraction: float = leaf("1", "fraction of capacity available to weights+KV+activations", domain="(0,1]")
    efficiency: float = leaf("1", "achieved fraction of peak bandwidth on streaming reads", domain="(0,1]")
    row_cycle_efficiency: float = leaf("1", "read/(read+recharge) when every layer is connected (n = m)",
                                       domain="(0,1]")
    energy_per_bit: float = leaf("J/bit", "DRAM core energy per bit (array + on-die data path); the whole "
                                 "access energy when io/activation_energy_per_bit are 0", domain=">=0")
    # issue 4 (memory.py); every default switches its effect off (GPU results unchanged)
    row_bytes: float = leaf("B", "DRAM row (page) behind one port; 0 = rows not modelled (streaming)",
                            default=0.0, domain=">=0")
    transaction_bytes: float = leaf("B", "access granularity (sector) of one port; 0 = no transaction / "
                                    "wave quantisation", default=0.0, domain=">=0")
    banks_per_port: float = leaf("1", "banks of one layer behind one port (1 = DeepStack's bank abstraction)",
                                 default=1.0, domain=">=1")
    t_rrd: float = leaf("1", "min transfer-clock cycles between row activations on one port (0 = off)",
                        default=0.0, domain=">=0")
    t_faw: float = leaf("1", "four-activation window of one port in transfer-clock cycles (0 = off)",
                        default=0.0, domain=">=0")
    t_rfc: float = leaf("s", "all-bank refresh cycle time (0 = refresh not modelled)", default=0.0, domain=">=0")
    t_refi: float = leaf("s", "refresh interval in the normal temperature range", default=3.9e-6, domain=">0")
    refresh_double_temp: float = leaf("degC", "DRAM temperature above which refresh doubles (JEDEC 85 C)",
                                      default=85.0, domain=">-273.15")
    round_trip_cycles: float = leaf("1", "DRAM round-trip latency in core-clock cycles for the "
                                    "Little's-law cap (0 = off)", default=0.0, domain=">=0")
    bond_pitch: float = leaf("m", "vertical bond / TSV pitch (0 = vertical interface not limiting)",
                             default=0.0, domain=">=0")
    bond_signal_fraction: float = leaf("1", "fraction of bonds that carry data", default=0.5, domain="(0,1]")
    bond_bits_per_transfer: float = leaf("1", "bits per data bond per transfer-clock cycle (the vertical "
                                         "bus runs on the DRAM transfer clock)", default=2.0, domain=">0")
    port_area: float = leaf("m2", "logic-die bond field of one connected layer's vertical port",
                            default=0.0, domain=">=0")
    channel_area: float = leaf("m2", "logic-die area of one channel's controller and PHY", default=0.0, domain=">=0")
    # issue 6 (power.py, thermal.py): energy split and time-based DRAM power; ``energy_per_bit`` above is the
    # core (array + on-die data path) part; every default is 0 (the pre-issue-6 total stays energy_per_bit)
    io_energy_per_bit: float = leaf("J/bit", "interface energy per bit: HBM DQ + TSV + base die + host PHY, "
                                    "or the hybrid bond of a 3D stack", default=0.0, domain=">=0")
    activation_energy_per_bit: float = leaf("J/bit", "ACT+PRE energy per bit of the opened row (one activation "
                                            "costs this x 8 x row_bytes); per transferred bit when streaming "
                                            "whole rows or when rows are off", default=0.0, domain=">=0")
    refresh_power: float = leaf("W", "refresh power of one DRAM layer in the normal range (IDD5-style "
                                "E_REF x channels / tREFI); doubles above refresh_double_temp", default=0.0,
                                domain=">=0")
    background_power: float = leaf("W", "active-standby (background) power of one connected layer's "
                                   "channels", default=0.0, domain=">=0")


@pytree
class FabricLevel:
    size: float = leaf("1", "nodes (sub-systems of the next inner level) in this level", domain="int>=1")
    kind: float = leaf("enum", "TopologyKind code", domain="{0,1,2,3,4,5}")
    dim_x: float = leaf("1", "first dimension for 2D kinds (size for 1D kinds)", domain="int>=1")
    dim_y: float = leaf("1", "second dimension for 2D kinds (1 for 1D kinds)", domain="int>=1")
    link_bandwidth: float = leaf("B/s", "per-direction bandwidth of one link", domain=">0")
    links_per_node: float = leaf("1", "links per node (per neighbour on all-to-all)", domain=">0")
    hop_latency: float = leaf("s", "latency of one hop", domain=">=0")
    energy_per_bit: float = leaf("J/bit", "link energy per bit", domain=">=0")
    switch_bandwidth: float = leaf("B/s", "aggregate crossbar throughput of one switch (0 = non-blocking)",
                                   default=0.0, domain=">=0")
    packet_payload: float = leaf("B", "payload bytes per packet (0 = not packetised)", default=0.0, domain=">=0")
    packet_header: float = leaf("B", "header bytes per packet on the wire", default=0.0, domain=">=0")
    ack_bytes: float = leaf("B", "acknowledgement bytes per data packet, sent on the reverse link",
                            default=0.0, domain=">=0")
    switch_reduce: float = leaf("1", "1: the switch reduces and multicasts (NVLink SHARP / NVLS, InfiniBand "
                                "SHARP): an all-reduce within the level sends each rank's buffer up once and "
                                "receives the sum once (level 1 only; used from fabric.switch_reduce_from bytes)",
                                default=0.0, domain="{0,1}")


@pytree
class Fabric:
    l1: FabricLevel
    l2: FabricLevel
    l3: FabricLevel
    collective_overhead: float = leaf("s", "fixed software cost per collective call", domain=">=0")
    bandwidth_efficiency: float = leaf("1", "achieved fraction of link bandwidth", domain="(0,1]")
    ack_round_trip: float = leaf("1", "1: a transfer completes when its last ACK is back at the sender",
                                 default=0.0, domain="{0,1}")
    two_stage_threshold: float = leaf("B", "all-reduces of at least this many bytes run in two stages (a reduce-"
                                      "scatter and an all-gather), each paying collective_overhead (vLLM's custom "
                                      "all-reduce: 256 KiB on 5-8 GPUs, twice that on 3-4, never on 2); 0 = one "
                                      "overhead per call", default=0.0, domain=">=0")
    switch_reduce_from: float = leaf("B", "all-reduces of at least this many bytes reduce in the switch where level 1 "
                                     "can (l1.switch_reduce): the stack's choice (vLLM hands messages of 8 MiB and "
                                     "more to NCCL, which does); 0 = never", default=0.0, domain=">=0")


@pytree
class Thermal:
    ambient: float = leaf("degC", "coolant / ambient temperature", domain=">-273.15")
    r_base: float = leaf("K/W", "junction-to-ambient resistance of the bare chip", domain=">=0")
    r_per_layer: float = leaf("K/W", "added resistance per stacked DRAM layer", domain=">=0")
    dram_limit: float = leaf("degC", "DRAM temperature above which the design is infeasible", domain=">-273.15")
    # issue 6 (thermal.py): 2.5D HBM beside the logic die; defaults: DRAM stacked on the logic die (1-D stack)
    dram_beside: float = leaf("1", "1 = 2.5D: DRAM stacks beside the logic die under a shared heat sink "
                              "(HBM GPUs); 0 = 3D: DRAM layers stacked on the logic die", default=0.0, domain="{0,1}")
    sink_fraction: float = leaf("1", "2.5D only: share of r_base in the heat-sink path shared with the DRAM "
                                "(the rest is the logic die's own junction-to-sink path)", default=0.6, domain="[0,1]")
    r_dram: float = leaf("K/W", "2.5D only: resistance from the hottest DRAM die of all stacks (in parallel) "
                         "to the shared heat-sink base", default=0.0, domain=">=0")
