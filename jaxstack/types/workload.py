"""L1: workload data types. Model fields are named as in Hugging Face ``config.json``.

One transformer description covers dense GQA (Llama), MoE (Mixtral, Qwen3) and MLA + MoE
with shared experts (DeepSeek-V3): a dense model has ``n_routed_experts = 0``; MLA is on
when ``kv_lora_rank > 0``. All fields are numeric leaves so sweeping across models or
model shapes needs no recompile.
"""

import jax.numpy as jnp

from ..physics.lean import where
from ._tree import leaf, pytree

__all__ = ["Model", "Request", "Serving", "REGIMES", "gemm_operand_bytes", "gemm_act_operand_bytes", "expert_bytes",
           "expert_operand_bytes"]

REGIMES = {"static": 0, "offline": 1, "online": 2, "concurrency": 3}   # serving.regime codes (serving.py, closed.py)


@pytree
class Model:
    hidden_size: float = leaf("1", domain="int>=1")
    num_hidden_layers: float = leaf("1", domain="int>=1")
    num_attention_heads: float = leaf("1", domain="int>=1")
    num_key_value_heads: float = leaf("1", domain="int>=1")
    head_dim: float = leaf("1", domain="int>=1")
    intermediate_size: float = leaf("1", "dense FFN width (SwiGLU)", domain="int>=0")
    mlp_gated: float = leaf("1", "1: gated dense MLP (SwiGLU / GeGLU: gate, up and down matrices); 0: two matrices "
                            "with a plain activation (GELU / ReLU MLPs of GPT-2, GPT-J, GPT-NeoX, Falcon, OPT)",
                            default=1.0, domain="{0,1}")
    vocab_size: float = leaf("1", domain="int>=1")
    tie_word_embeddings: float = leaf("1", "1 if LM head shares the embedding matrix", domain="{0,1}")
    n_routed_experts: float = leaf("1", "0 for a dense model", domain="int>=0")
    num_experts_per_tok: float = leaf("1", domain="int>=0")
    n_shared_experts: float = leaf("1", domain="int>=0")
    moe_intermediate_size: float = leaf("1", domain="int>=0")
    moe_layer_step: float = leaf("1", "after the leading dense layers, every moe_layer_step-th layer is MoE and the "
                                 "others dense (1: all; Llama-4 Maverick interleave_moe_layer_step 2)", default=1.0,
                                 domain="int>=1")
    first_k_dense_replace: float = leaf("1", "leading dense layers in an MoE model", domain="int>=0")
    sliding_window: float = leaf("1", "sliding-window attention: the keys a query attends to in the windowed layers, "
                                 "and the KV tokens they keep (0 = none)", default=0.0, domain="int>=0")
    sliding_window_layers: float = leaf("1", "share of the layers with the sliding window (Mistral-7B 1; Gemma-2 "
                                        "and GPT-OSS 1/2; Gemma-3 5/6)", default=1.0, domain="[0,1]")
    q_lora_rank: float = leaf("1", "MLA query compression rank (0 = none)", domain="int>=0")
    kv_lora_rank: float = leaf("1", "MLA latent KV rank (0 = GQA)", domain="int>=0")
    qk_rope_head_dim: float = leaf("1", domain="int>=0")
    qk_nope_head_dim: float = leaf("1", domain="int>=0")
    v_head_dim: float = leaf("1", domain="int>=0")
    weight_bytes: float = leaf("B/elem", "bytes per weight element (2 BF16, 1 FP8, 0.5 FP4)", domain=">0")
    kv_bytes: float = leaf("B/elem", "bytes per KV-cache element", domain=">0")
    act_bytes: float = leaf("B/elem", "bytes per activation element", domain=">0")
    gemm_act_bytes: float = leaf("B/elem", "bytes per element of a GEMM's activation operand as the kernel reads it "
                                 "(the A of WxAy): 0 = like the weights (W8A8, W4A4); 2 = 16-bit activations with "
                                 "quantised weights (weight-only W8A16 / W4A16: the 16-bit tensor rate). The wider "
                                 "of weights and this sets the GEMM rate; below act_bytes a quantisation kernel runs",
                                 default=0.0, domain=">=0")
    expert_weight_bytes: float = leaf("B/elem", "bytes per routed-expert weight element where the experts are "
                                      "quantised apart from the rest (gpt-oss: MXFP4 experts, BF16 attention, "
                                      "router, embedding and LM head); 0 = weight_bytes. The experts' GEMMs read "
                                      "the same activation operand as the others, at the rate of the wider of "
                                      "the two", default=0.0, domain=">=0")
    attn_bytes: float = leaf("B/elem", "bytes per element of the attention core's matmul operands (Q K^T, P V) as the "
                             "kernel computes them: 2 = FP16 / BF16 (FlashAttention), 1 = FP8 attention (TensorRT-LLM "
                             "use_fp8_context_fmha, FlashAttention-3 FP8). The wider of the weights and this sets "
                             "the attention's tensor rate and energy", default=2.0, domain=">0")
    moe_imbalance: float = leaf("1", "busiest-expert-rank load / mean load", domain=">=1")
    moe_routing_independence: float = leaf("1", "how independently a batch's tokens pick their experts: the experts "
                                           "T tokens touch are those of T x this many independent uniform "
                                           "choices (1 = independent uniform routing; below 1 tokens co-route, "
                                           "e.g. a benchmark's random-token prompts)", default=1.0,
                                           domain="(0,1]")


@pytree
class Request:
    batch: float = leaf("1", "concurrent requests in the whole system", domain="int>=1")
    input_len: float = leaf("1", "prompt tokens per request", domain="int>=1")
    output_len: float = leaf("1", "generated tokens per request", domain="int>=1")
    input_cv: float = leaf("1", "online: coefficient of variation (std / mean) of the prompt lengths of a real data "
                           "set (MLPerf llama2-70b 0.77): M/G/1 prefill queue and p99 TTFT; 0 = every prompt "
                           "input_len tokens", default=0.0, domain="[0,10]")
    output_cv: float = leaf("1", "offline, online and concurrency: coefficient of variation of the output lengths "
                            "(MLPerf llama2-70b 0.79): a running request holds KV in proportion to how long it runs "
                            "(length-biased, (1 + cv^2) output_len / 2 on average) and short requests spread TPOT "
                            "(its p99); 0 = every request output_len tokens", default=0.0, domain="[0,0.99]")


@pytree
class Serving:
    """How the engine schedules requests (``serving.py``). Defaults: today's static batch."""

    regime: float = leaf("enum", "0 static: request.batch requests decode together; 1 offline max-throughput: "
                         "all requests queued, the engine runs the largest batch its KV budget and limits allow, "
                         "prefill chunks mixed into decode steps; 2 online: Poisson arrivals at arrival_rate; "
                         "3 concurrency: a closed loop of `concurrency` clients, each sending its next request "
                         "when the last ends",
                         default=0.0, domain="{0,1,2,3}")
    max_num_seqs: float = leaf("1", "offline: running requests per engine replica (vLLM max_num_seqs, "
                               "TensorRT-LLM max_batch_size)", default=2048.0, domain="int>=1")
    max_num_batched_tokens: float = leaf("1", "offline: tokens per engine step per replica, decode tokens plus "
                                         "the prefill chunk (vLLM max_num_batched_tokens, TensorRT-LLM "
                                         "max_num_tokens)", default=8192.0, domain="int>=1")
    auto_limits: float = leaf("1", "1: the engine sizes its own limits from the design, as TensorRT-LLM's "
                              "trtllm-bench does (serving.engine_limits: batch from the KV capacity at full "
                              "sequence length, rounded up; token budget from that batch and ISL / OSL), capped "
                              "by max_num_seqs and max_num_batched_tokens; 0: those two leaves as given",
                              default=0.0, domain="{0,1}")
    kv_block_size: float = leaf("1", "paged KV cache: tokens per block; a request holds whole blocks (vLLM "
                                "--block-size, 16 by default; TensorRT-LLM tokens_per_block, 32 in the PyTorch "
                                "backend, 64 for built engines; 1 = token-granular, no rounding)",
                                default=1.0, domain="int>=1")
    num_requests: float = leaf("1", "offline: requests in the run (0 = an endless queue, the steady state); "
                               "N equal requests run in waves of the running batch, the last one partial",
                               default=0.0, domain="int>=0")
    arrival_rate: float = leaf("1", "online: Poisson arrival rate of requests for the whole system (requests/s)",
                               default=1.0, domain=">0")
    concurrency: float = leaf("1", "concurrency regime: clients for the whole system, each with one request in "
                              "flight (vllm bench serve --max-concurrency, trtllm-bench --concurrency)",
                              default=1.0, domain="int>=1")
    ttft_slo: float = leaf("s", "p99 TTFT limit of the goodput metric (largest arrival rate meeting both limits)",
                           default=2.0, domain=">0")
    tpot_slo: float = leaf("s", "p99 TPOT limit of the goodput metric", default=0.05, domain=">0")
    spec_tokens: float = leaf("1", "speculative decoding: tokens proposed per step by a draft model or MTP heads "
                              "(0 = off); each step verifies 1 + spec_tokens tokens per request",
                              default=0.0, domain="int>=0")
    spec_acceptance: float = leaf("1", "probability that each proposed token is accepted (i.i.d.)",
                                  default=0.7, domain="[0,1]")
    draft_cost: float = leaf("1", "time of one draft step relative to the target's decode step (MTP heads ~ "
                             "1 / layers; a draft model ~ its size ratio)", default=0.05, domain=">=0")
    step_overhead: float = leaf("s", "host time per engine iteration not hidden behind the GPU (scheduling, "
                                "sampling, input preparation): added to every decode step and prefill pass "
                                "(not fitted: the shipped measurements do not identify it)",
                                default=0.0, domain=">=0")


def gemm_operand_bytes(m: Model):
    """Operand width that sets the tensor rate and energy of the GEMMs: the wider of the weights
    and the activation operand (``gemm_act_bytes``; 0 = like the weights)."""
    return where(m.gemm_act_bytes > 0, jnp.maximum(m.weight_bytes, m.gemm_act_bytes), m.weight_bytes)


def expert_bytes(m: Model):
    """Bytes per routed-expert weight element: ``expert_weight_bytes``, or when 0 ``weight_bytes``."""
    return where(m.expert_weight_bytes > 0, m.expert_weight_bytes, m.weight_bytes)


def expert_operand_bytes(m: Model):
    """Operand width that sets the routed experts' tensor rate: the wider of their weights and
    the activation operand every GEMM reads (``gemm_operand_bytes`` when the experts are not
    quantised apart)."""
    return jnp.maximum(expert_bytes(m), gemm_act_operand_bytes(m))


def gemm_act_operand_bytes(m: Model):
    """Bytes per element of the activation operand a GEMM reads: ``gemm_act_bytes``, or when
    unset like the weights (W8A8 / W4A4 kernels read the quantised activations), never wider
    than ``act_bytes``."""
    return where(m.gemm_act_bytes > 0, m.gemm_act_bytes, jnp.minimum(m.weight_bytes, m.act_bytes))
