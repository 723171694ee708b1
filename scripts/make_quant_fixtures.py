#!/usr/bin/env python3
"""Quantizes the tiny fixture models (tests/fixtures/models, written by make_fixtures.py) into
GPTQ, AWQ and FP8 checkpoints, with transformers' reference outputs on the dequantized weights.

Each variant is a directory tests/fixtures/quant/<name>/ holding what a quantizer leaves:
config.json (with quantization_config, or a quantize_config.json / quant_config.json beside
it), model.safetensors (quantized linear layers; embeddings, norms, the LM head and the layers
a checkpoint leaves unquantized in float16), generation_config.json, and reference.json: for
each prompt the greedy continuation that transformers computes in float32 on the dequantized
weights, the logits after the prompt and after the last generated token, and the top-1/top-2
logit gap at every greedy step (how near the path came to a tie there). --dense DIR also writes each
variant's dequantized dense checkpoint (DIR/<name>/) that the reference was computed on.

The formats, as this packer writes them (checked against the formats' published pack/unpack
code, read as documentation: AutoGPTQ / GPTQModel QuantLinear.pack and dequantize, AutoAWQ's
WQLinear_GEMM pack order, vLLM's Fp8LinearMethod):
  GPTQ  qweight int32 [in/pack, out], pack = 32/bits, input channel i in word i//pack at bit
        (i%pack)*bits; qzeros int32 [groups, out/pack], output o at bit (o%pack)*bits;
        scales fp16 [groups, out]; g_idx int32 [in], the group of each input channel. With
        act-order (desc_act) the quantizer visits the inputs in a permuted order and
        g_idx[perm[j]] = j // group_size, so groups are not contiguous. checkpoint_format
        "gptq" stores each zero minus one (readers add it back), "gptq_v2" the zero itself.
        The quantizer's range includes 0 (min(w, 0), max(w, 0)); sym puts the zero at
        2^(bits-1) with scale max|w| * 2 / maxq.
  AWQ   qweight int32 [in, out/8]: output 8j + ORDER[p] in nibble p of word j, ORDER =
        0,2,4,6,1,3,5,7; qzeros int32 [groups, out/8] packed the same way; scales fp16
        [groups, out]; zeros = -round(min / scale) clamped to [0, 15].
  FP8   weight float8_e4m3fn [out, in]; weight_scale float32, [] per tensor (vLLM) or
        [out, 1] per channel (llm-compressor), max|w| / 448; activations are quantized per
        token at run time (activation_scheme dynamic): the reference rounds each quantized
        layer's input to e4m3 with scale max|x_row| / 448, as pagoda and vLLM do.
  --quantization fp8 on a bf16 checkpoint: one scale per output channel, max|w_row| / 448.
  compressed-tensors (quant_method "compressed-tensors", as llm-compressor writes it; checked
        against the compressed-tensors package's pack_to_int32 / unpack_from_int32 and its
        pack-quantized decompressor when it is installed):
        pack-quantized: weight_packed int32 [out, in/pack], each row packed along the input,
        input j in word j//pack at bit (j%pack)*bits; every field is the signed value plus
        2^(bits-1); weight_scale [out, groups]; weight_zero_point int32 [out/pack, groups]
        (asymmetric only) packed the same way along the output; weight_shape int64 [2];
        weight_g_idx int32 [in] with actorder "group". float-quantized: weight e4m3 [out, in],
        weight_scale [1] (strategy tensor) or [out, 1] (channel), input_scale [1] when the
        activations are static (pagoda, and so the reference, quantizes them per token).
        config_groups target layers by name, "re:" regex (matched from the start) or the
        class "Linear"; ignore leaves layers dense. Older llm-compressor releases wrote the
        object under config.json's "compression_config" (legacy_key below).

Run where torch + transformers + safetensors are installed (any CPU machine):
    python3 scripts/make_quant_fixtures.py [--out tests/fixtures/quant] [--only NAME ...]
"""
import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile

import numpy as np
import torch
import transformers
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "tests", "fixtures", "models")
N_NEW = 16
PROMPT_LENGTHS = (5, 23)
# FP8 references are shorter: see fragile().
N_NEW_FP8 = 8
PROMPT_LENGTHS_FP8 = (5, 12)
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)

# name -> (base fixture, method, options). Every GPTQ feature appears at least once: act-order
# and not, sym and asym, gptq and gptq_v2, 4 and 8 bits, group sizes 32, 64, 128 (wider than
# the 64-wide layers: one group there) and -1; every architecture gets several formats.
VARIANTS = {
    "llama-gptq-4b-g32-sym": ("llama-f32", "gptq", dict(bits=4, group=32, sym=True, act=False, v2=False)),
    "llama-gptq-4b-g64-asym-act": ("llama-f32", "gptq", dict(bits=4, group=64, sym=False, act=True, v2=False)),
    "llama-gptq-8b-g128-sym-act-v2": ("llama-f32", "gptq", dict(bits=8, group=128, sym=True, act=True, v2=True)),
    "qwen2-gptq-4b-g32-asym-v2": ("qwen2-f32", "gptq", dict(bits=4, group=32, sym=False, act=False, v2=True)),
    "qwen3-gptq-8b-gm1-asym": ("qwen3-f32", "gptq", dict(bits=8, group=-1, sym=False, act=False, v2=False)),
    "mistral-gptq-4b-g64-sym-act-v2-file": ("mistral-f32", "gptq", dict(bits=4, group=64, sym=True, act=True, v2=True, side_file=True)),
    "llama-awq-g32-skip": ("llama-f32", "awq", dict(group=32, skip=["layers.1.mlp"])),
    "qwen2-awq-g64-file": ("qwen2-f32", "awq", dict(group=64, side_file=True)),
    "qwen3-awq-g128": ("qwen3-f32", "awq", dict(group=128)),
    "llama-fp8-tensor": ("llama-f32", "fp8", dict(per_channel=False)),
    "qwen3-fp8-channel": ("qwen3-f32", "fp8", dict(per_channel=True)),
    "mistral-fp8-tensor-ignored": ("mistral-f32", "fp8", dict(per_channel=False, ignored=["model.layers.0.self_attn.o_proj"])),
    # compressed-tensors: W4A16 / W8A16 pack-quantized (group and channel strategies, sym and
    # asym, actorder group), FP8 float-quantized (dynamic per-token and static activations),
    # several config groups with regex targets, and ignore lists by name and by regex.
    "llama-ct-w4a16-g32-sym": ("llama-f32", "ct", dict(groups=[
        dict(targets=["Linear"], type="int", bits=4, group=32, sym=True, act=False)])),
    "qwen2-ct-w4a16-g32-asym-act": ("qwen2-f32", "ct", dict(groups=[
        dict(targets=["Linear"], type="int", bits=4, group=32, sym=False, act=True)])),
    "qwen3-ct-w8a16-channel-asym": ("qwen3-f32", "ct", dict(groups=[
        dict(targets=["Linear"], type="int", bits=8, group=-1, sym=False, act=False)])),
    "mistral-ct-mixed-ignore": ("mistral-f32", "ct", dict(groups=[
        dict(targets=["re:.*self_attn\\.[qkvo]_proj$"], type="int", bits=8, group=-1, sym=True,
             act=False),
        dict(targets=["Linear"], type="int", bits=4, group=64, sym=True, act=False)],
        ignore=["re:.*layers\\.1\\.mlp\\."])),
    "llama-ct-fp8-dynamic": ("llama-f32", "ct", dict(groups=[
        dict(targets=["Linear"], type="float", per_channel=True, static=False)])),
    "qwen3-ct-fp8-static": ("qwen3-f32", "ct", dict(groups=[
        dict(targets=["Linear"], type="float", per_channel=False, static=True)])),
    # Older llm-compressor releases wrote the same object under "compression_config".
    "qwen2-ct-w8a16-g64-legacy-key": ("qwen2-f32", "ct", dict(legacy_key=True, groups=[
        dict(targets=["Linear"], type="int", bits=8, group=64, sym=True, act=False)])),
    # No checkpoint of its own: the llama-bf16 fixture with --quantization fp8.
    "llama-bf16-fp8-dynamic": ("llama-bf16", "fp8-dynamic", dict()),
}


def is_quantizable(name):
    return name.startswith("model.layers.") and name.endswith(".weight") and \
        name.split(".")[-2] in LINEARS


def site_of(name):
    """Layers that read the same input (q/k/v, gate/up) share an act-order permutation, as
    GPTQ's permutation comes from the input's Hessian."""
    parts = name.split(".")
    kind = parts[-2]
    site = {"q_proj": "qkv", "k_proj": "qkv", "v_proj": "qkv", "gate_proj": "gu",
            "up_proj": "gu"}.get(kind, kind)
    return ".".join(parts[:3] + [site])


def seed_of(text):
    h = 1469598103934665603
    for c in text.encode():
        h = ((h ^ c) * 1099511628211) % (1 << 63)
    return h


# ---- GPTQ ----------------------------------------------------------------------------------
def pack_along_rows(q, bits):
    """q uint [rows, cols] -> uint32 [rows/pack, cols]: row r in word r//pack, bit (r%pack)*bits."""
    pack = 32 // bits
    rows, cols = q.shape
    out = np.zeros((rows // pack, cols), dtype=np.uint64)
    for r in range(rows):
        out[r // pack] |= q[r].astype(np.uint64) << np.uint64((r % pack) * bits)
    return out.astype(np.uint32)


def unpack_rows(p, bits, rows):
    pack = 32 // bits
    mask = (1 << bits) - 1
    return np.stack([(p[r // pack] >> np.uint32((r % pack) * bits)) & mask for r in range(rows)])


def gptq_quantize(w, bits, group, sym, act, v2, site):
    """w float64 [out, in] -> the checkpoint's tensors and the dequantized weights."""
    out_f, in_f = w.shape
    maxq = (1 << bits) - 1
    gs = in_f if group == -1 or group > in_f else group
    groups = in_f // gs
    if act:
        perm = torch.randperm(in_f, generator=torch.Generator().manual_seed(seed_of(site) % (1 << 31))).numpy()
    else:
        perm = np.arange(in_f)
    g_idx = np.empty(in_f, dtype=np.int32)
    g_idx[perm] = np.arange(in_f) // gs
    scales = np.empty((groups, out_f), dtype=np.float16)
    zeros = np.empty((groups, out_f), dtype=np.int64)
    q = np.empty((in_f, out_f), dtype=np.int64)
    for g in range(groups):
        cols = np.nonzero(g_idx == g)[0]
        wg = w[:, cols]
        xmin = np.minimum(wg.min(axis=1), 0.0)
        xmax = np.maximum(wg.max(axis=1), 0.0)
        if sym:
            xmax = np.maximum(-xmin, xmax)
            xmin = np.where(xmin < 0, -xmax, xmin)
        scale = (xmax - xmin) / maxq
        scale[scale == 0] = 1.0
        s16 = scale.astype(np.float16)
        if sym:
            z = np.full(out_f, (maxq + 1) // 2)
        else:
            z = np.clip(np.round(-xmin / s16.astype(np.float64)), 0, maxq).astype(np.int64)
            if not v2:
                # v1 stores max(zero - 1, 0) and readers add the one back: a zero of 0 would
                # read back as 1, so the reference (and any v1 checkpoint) has zeros >= 1.
                z = np.maximum(z, 1)
        scales[g] = s16
        zeros[g] = z
        qg = np.clip(np.round(wg / s16.astype(np.float64)[:, None]) + z[:, None], 0, maxq)
        q[cols] = qg.T.astype(np.int64)
    qweight = pack_along_rows(q.astype(np.uint32), bits)
    stored = (zeros - (0 if v2 else 1)).astype(np.uint32)
    qzeros = pack_along_rows(stored.T, bits).T.copy()
    t = {"qweight": torch.from_numpy(qweight.view(np.int32)),
         "qzeros": torch.from_numpy(qzeros.view(np.int32)),
         "scales": torch.from_numpy(scales), "g_idx": torch.from_numpy(g_idx)}
    return t, gptq_dequantize(t, bits, v2, in_f, out_f)


def gptq_dequantize(t, bits, v2, in_f, out_f):
    """What a GPTQ reader computes from the stored tensors (independent of the packing above)."""
    qw = t["qweight"].numpy().view(np.uint32)
    qz = t["qzeros"].numpy().view(np.uint32)
    sc = t["scales"].numpy().astype(np.float32)
    g_idx = t["g_idx"].numpy()
    q = unpack_rows(qw, bits, in_f).astype(np.float32)               # [in, out]
    z = unpack_rows(qz.T.copy(), bits, out_f).T.astype(np.float32)   # [groups, out]
    if not v2:
        z = z + 1
    w = (q - z[g_idx]) * sc[g_idx]                                   # [in, out] in float32
    return torch.from_numpy(w.T.copy())


# ---- AWQ -----------------------------------------------------------------------------------
def awq_pack(q):
    """q uint [rows, out] -> uint32 [rows, out/8] with output 8j + AWQ_ORDER[p] in nibble p."""
    rows, out_f = q.shape
    packed = np.zeros((rows, out_f // 8), dtype=np.uint32)
    for p, col in enumerate(AWQ_ORDER):
        packed |= q[:, col::8].astype(np.uint32) << np.uint32(4 * p)
    return packed


def awq_unpack(packed):
    rows, words = packed.shape
    q = np.empty((rows, words * 8), dtype=np.uint32)
    for p, col in enumerate(AWQ_ORDER):
        q[:, col::8] = (packed >> np.uint32(4 * p)) & 0xF
    return q


def awq_quantize(w, group):
    out_f, in_f = w.shape
    gs = in_f if group == -1 or group > in_f else group
    groups = in_f // gs
    wg = w.reshape(out_f, groups, gs)
    wmax, wmin = wg.max(axis=2), wg.min(axis=2)
    scales = (np.maximum(wmax - wmin, 1e-5) / 15).astype(np.float16)      # [out, groups]
    s = scales.astype(np.float64)
    zeros = np.clip(-np.round(wmin / s), 0, 15)
    q = np.clip(np.round(wg / s[:, :, None]) + zeros[:, :, None], 0, 15).reshape(out_f, in_f)
    t = {"qweight": torch.from_numpy(awq_pack(q.T.astype(np.uint32)).view(np.int32)),
         "qzeros": torch.from_numpy(awq_pack(zeros.T.astype(np.uint32)).view(np.int32)),
         "scales": torch.from_numpy(np.ascontiguousarray(scales.T))}
    return t, awq_dequantize(t, gs)


def awq_dequantize(t, gs):
    q = awq_unpack(t["qweight"].numpy().view(np.uint32)).astype(np.float32)   # [in, out]
    z = awq_unpack(t["qzeros"].numpy().view(np.uint32)).astype(np.float32)    # [groups, out]
    sc = t["scales"].numpy().astype(np.float32)
    g = np.arange(q.shape[0]) // gs
    return torch.from_numpy(((q - z[g]) * sc[g]).T.copy())


# ---- FP8 -----------------------------------------------------------------------------------
def fp8_round(x, scale):
    """e4m3(x / scale) as float32 codes' values (x, scale float32, broadcastable)."""
    return (x / scale).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)


def fp8_quantize(w, per_channel):
    w = w.float()
    amax = w.abs().amax(dim=1, keepdim=True) if per_channel else w.abs().max().reshape(())
    scale = torch.where(amax > 0, amax / 448.0, torch.ones_like(amax))
    q = fp8_round(w, scale)
    t = {"weight": q, "weight_scale": scale.float()}
    return t, q.float() * scale


# ---- compressed-tensors --------------------------------------------------------------------
def ct_matches(entry, name):
    """A target or ignore entry naming the module: "re:" regex from the start, or the name."""
    if entry.startswith("re:"):
        return re.match(entry[3:], name) is not None
    return entry == name


def ct_group_of(o, prefix):
    """The config group that quantizes the layer at prefix (None: dense), as pagoda and vLLM
    pick it: not ignored ("lm_head" always is), then the first group naming it, then the
    first targeting the class Linear."""
    if any(ct_matches(e, prefix) for e in ["lm_head"] + o.get("ignore", [])):
        return None
    for g in o["groups"]:
        if any(ct_matches(t, prefix) for t in g["targets"]):
            return g
    return next((g for g in o["groups"] if "Linear" in g["targets"]), None)


def ct_int_quantize(w, g, site):
    """w float64 [out, in] -> pack-quantized tensors and the dequantized weights."""
    bits, sym = g["bits"], g["sym"]
    out_f, in_f = w.shape
    half = 1 << (bits - 1)                 # signed values in [-half, half - 1]
    gs = in_f if g["group"] == -1 or g["group"] > in_f else g["group"]
    groups = in_f // gs
    if g["act"]:
        perm = torch.randperm(in_f, generator=torch.Generator().manual_seed(seed_of(site) % (1 << 31))).numpy()
    else:
        perm = np.arange(in_f)
    g_idx = np.empty(in_f, dtype=np.int32)
    g_idx[perm] = np.arange(in_f) // gs
    scales = np.empty((out_f, groups), dtype=np.float16)
    zp = np.zeros((out_f, groups), dtype=np.int64)
    q = np.empty((out_f, in_f), dtype=np.int64)
    for k in range(groups):
        cols = np.nonzero(g_idx == k)[0]
        wg = w[:, cols]
        if sym:
            scale = np.abs(wg).max(axis=1) / ((2 * half - 1) / 2)
        else:
            xmin, xmax = np.minimum(wg.min(axis=1), 0.0), np.maximum(wg.max(axis=1), 0.0)
            scale = (xmax - xmin) / (2 * half - 1)
        scale[scale == 0] = 1.0
        s16 = scale.astype(np.float16)
        if not sym:
            zp[:, k] = np.clip(np.round(-xmin / s16.astype(np.float64)) - half, -half, half - 1)
        scales[:, k] = s16
        q[:, cols] = np.clip(np.round(wg / s16.astype(np.float64)[:, None]) + zp[:, k:k + 1],
                             -half, half - 1)
    packed = pack_along_rows((q + half).astype(np.uint32).T, bits).T.copy()      # [out, in/pack]
    t = {"weight_packed": torch.from_numpy(packed.view(np.int32)),
         "weight_scale": torch.from_numpy(scales),
         "weight_shape": torch.tensor([out_f, in_f], dtype=torch.int64)}
    if not sym:
        zpacked = pack_along_rows((zp + half).astype(np.uint32), bits)           # [out/pack, groups]
        t["weight_zero_point"] = torch.from_numpy(zpacked.view(np.int32))
    if g["act"]:
        t["weight_g_idx"] = torch.from_numpy(g_idx)
    dq = ct_int_dequantize(t, bits, g_idx, in_f, out_f)
    ct_check_with_package(t, g, q, zp, dq, gs)
    return t, dq


def ct_int_dequantize(t, bits, g_idx, in_f, out_f):
    """What a compressed-tensors reader computes from the stored tensors."""
    half = 1 << (bits - 1)
    q = unpack_rows(t["weight_packed"].numpy().view(np.uint32).T.copy(), bits, in_f).T  # [out, in]
    q = q.astype(np.float32) - half
    if "weight_zero_point" in t:
        z = unpack_rows(t["weight_zero_point"].numpy().view(np.uint32), bits, out_f)   # [out, groups]
        z = z.astype(np.float32) - half
    else:
        z = np.zeros(t["weight_scale"].shape, dtype=np.float32)
    sc = t["weight_scale"].numpy().astype(np.float32)
    return torch.from_numpy((q - z[:, g_idx]) * sc[:, g_idx])


def ct_check_with_package(t, g, q, zp, dq, gs):
    """The packing against the compressed-tensors package itself, when it is installed: its
    pack_to_int32 makes the same words, its unpack_from_int32 reads back the same integers,
    and (without actorder, which its current decompressor no longer reads) its pack-quantized
    decompressor gives the same weights."""
    try:
        from compressed_tensors.compressors.pack_quantized.helpers import (
            pack_to_int32, unpack_from_int32)
        from compressed_tensors.compressors.pack_quantized.base import (
            PackedQuantizationCompressor)
        from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    except ImportError:
        return
    bits, shape = g["bits"], torch.Size(q.shape)
    qt = torch.from_numpy(q.astype(np.int8))
    assert torch.equal(pack_to_int32(qt, bits), t["weight_packed"]), "weight_packed differs"
    assert torch.equal(unpack_from_int32(t["weight_packed"], bits, shape), qt)
    if "weight_zero_point" in t:
        zt = torch.from_numpy(zp.astype(np.int8))
        assert torch.equal(pack_to_int32(zt, bits, packed_dim=0), t["weight_zero_point"])
        assert torch.equal(unpack_from_int32(t["weight_zero_point"], bits, torch.Size(zp.shape),
                                             packed_dim=0), zt)
    if g["act"]:
        return
    args = QuantizationArgs(num_bits=bits, type="int", symmetric=g["sym"],
                            strategy="channel" if g["group"] == -1 else "group",
                            group_size=None if g["group"] == -1 else gs)
    scheme = QuantizationScheme(targets=["Linear"], weights=args)
    sd = {k: v for k, v in t.items()}
    # It computes in the scale's dtype (float16): compare against ours rounded the same way.
    got = PackedQuantizationCompressor.decompress(sd, scheme)["weight"]
    err = float((got.float() - dq.to(got.dtype).float()).abs().max())
    assert err <= 1e-3 * float(dq.abs().max()), \
        f"compressed-tensors decompresses other weights (max difference {err})"


def ct_fp8_quantize(w, g):
    t, dq = fp8_quantize(w, g["per_channel"])
    if g["per_channel"]:
        t["weight_scale"] = t["weight_scale"].to(torch.bfloat16)        # [out, 1], as stored
        dq = t["weight"].float() * t["weight_scale"].float()
    else:
        t["weight_scale"] = t["weight_scale"].reshape(1)
    if g["static"]:
        t["input_scale"] = torch.tensor([0.05], dtype=torch.float32)
    return t, dq


def ct_scheme_dict(g):
    if g["type"] == "int":
        weights = {"num_bits": g["bits"], "type": "int", "symmetric": g["sym"],
                   "group_size": None if g["group"] == -1 else g["group"],
                   "strategy": "channel" if g["group"] == -1 else "group", "dynamic": False,
                   "actorder": "group" if g["act"] else None, "block_structure": None,
                   "observer": "minmax", "observer_kwargs": {}}
        return {"targets": g["targets"], "weights": weights, "input_activations": None,
                "output_activations": None, "format": "pack-quantized"}
    weights = {"num_bits": 8, "type": "float", "symmetric": True, "group_size": None,
               "strategy": "channel" if g["per_channel"] else "tensor", "dynamic": False,
               "actorder": None, "block_structure": None, "observer": "minmax",
               "observer_kwargs": {}}
    inputs = {"num_bits": 8, "type": "float", "symmetric": True, "group_size": None,
              "strategy": "tensor" if g["static"] else "token", "dynamic": not g["static"],
              "actorder": None, "block_structure": None, "observer": None if not g["static"]
              else "minmax", "observer_kwargs": {}}
    return {"targets": g["targets"], "weights": weights, "input_activations": inputs,
            "output_activations": None, "format": "float-quantized"}


def ct_config(o):
    groups = {f"group_{i}": ct_scheme_dict(g) for i, g in enumerate(o["groups"])}
    formats = {v["format"] for v in groups.values()}
    return {"quant_method": "compressed-tensors", "config_groups": groups,
            "format": formats.pop() if len(formats) == 1 else "mixed-precision",
            "global_compression_ratio": None, "ignore": ["lm_head"] + o.get("ignore", []),
            "kv_cache_scheme": None, "quantization_status": "compressed",
            "sparsity_config": {}, "transform_config": {}, "version": "0.12.2"}


# Relative noise put on every FP8 layer's input while probing how fragile a reference is.
PROBE = {"noise": 0.0, "gen": torch.Generator().manual_seed(5)}


def fake_quant_input(module, args):
    """The activation side of W8A8: each token's row rounded to e4m3 with max|x| / 448."""
    x = args[0]
    if PROBE["noise"]:
        x = x * (1 + PROBE["noise"] * torch.randn(x.shape, generator=PROBE["gen"]))
    amax = x.abs().amax(dim=-1, keepdim=True)
    s = torch.where(amax > 0, amax / 448.0, torch.ones_like(amax))
    return (fp8_round(x.float(), s).float() * s,) + tuple(args[1:])


# ---- references ----------------------------------------------------------------------------
def fragile(model, ids, out):
    """Whether the logits move by more than 1e-4 of their range when every FP8 layer's input
    moves by 3e-7 relative (a few float32 roundings, what another summation order such as
    pagoda's makes): then some input sits on a rounding boundary of e4m3 whose other side
    moves the logits by 1e-4 to 1e-1 in these random tiny models (their attention is nearly
    one-hot, so one rounded input can change which key wins). Such a prompt is no reference:
    another one is drawn. Long sequences meet such boundaries more often, hence the shorter
    FP8 prompts."""
    worst = 0.0
    for _ in range(3):
        PROBE["noise"] = 3e-7
        noisy = model(torch.tensor([ids])).logits[0, -1].double()
        PROBE["noise"] = 0.0
        worst = max(worst, float((noisy - out).abs().max() / out.abs().max()))
    return worst > 1e-4


def greedy_reference(model, prompt, probe):
    ids = list(prompt)
    first = last = None
    gaps = []
    n_new = N_NEW_FP8 if probe else N_NEW
    with torch.no_grad():
        for step in range(n_new + 1):
            out = model(torch.tensor([ids])).logits[0, -1].double()
            if probe and fragile(model, ids, out):
                return None
            top2 = torch.topk(out, 2).values
            if step == 0:
                first = out
            if step == n_new:
                last = out
                break
            gaps.append(float("%.6g" % float(top2[0] - top2[1])))
            ids.append(int(torch.argmax(out)))
    return ids[len(prompt):], first, last, gaps


def reference(dense_dir, cfg, desc, fp8_layers):
    model = transformers.AutoModelForCausalLM.from_pretrained(
        dense_dir, dtype=torch.float32, attn_implementation="eager").eval()
    for name, mod in model.named_modules():
        if name in fp8_layers:
            mod.register_forward_pre_hook(fake_quant_input)
    g = torch.Generator().manual_seed(7)
    refs = {"description": desc, "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
            "n_new": N_NEW_FP8 if fp8_layers else N_NEW, "cases": []}
    for n in PROMPT_LENGTHS_FP8 if fp8_layers else PROMPT_LENGTHS:
        for _ in range(50):
            prompt = torch.randint(3, cfg["vocab_size"], (n,), generator=g).tolist()
            ref = greedy_reference(model, prompt, bool(fp8_layers))
            if ref:
                break
        else:
            sys.exit(f"{desc}: no prompt of length {n} whose FP8 reference is stable")
        toks, first, last, gaps = ref
        refs["cases"].append({"prompt": prompt, "greedy": toks, "top2_gaps": gaps,
                              "first_logits": [float("%.7g" % x) for x in first],
                              "last_logits": [float("%.7g" % x) for x in last]})
    return refs


# ---- variants ------------------------------------------------------------------------------
def quant_config(method, o):
    if method == "gptq":
        return {"quant_method": "gptq", "bits": o["bits"], "group_size": o["group"],
                "sym": o["sym"], "desc_act": o["act"], "true_sequential": True,
                "static_groups": False, "damp_percent": 0.01,
                "checkpoint_format": "gptq_v2" if o["v2"] else "gptq"}
    if method == "awq":
        if o.get("side_file"):   # AutoAWQ's own quant_config.json spelling
            return {"zero_point": True, "q_group_size": o["group"], "w_bit": 4, "version": "GEMM"}
        c = {"quant_method": "awq", "bits": 4, "group_size": o["group"], "zero_point": True,
             "version": "gemm"}
        if o.get("skip"):
            c["modules_to_not_convert"] = o["skip"]
        return c
    if method == "ct":
        return ct_config(o)
    c = {"quant_method": "fp8", "activation_scheme": "dynamic"}
    if o.get("ignored"):
        c["ignored_layers"] = o["ignored"]
    return c


def skipped(method, o, name):
    prefix = name[:-len(".weight")]
    if method == "awq":
        return any(s in prefix for s in o.get("skip", []))
    if method == "fp8":
        return prefix in o.get("ignored", [])
    if method == "ct":
        return ct_group_of(o, prefix) is None
    return False


def make(name, out_root, dense_root):
    base, method, o = VARIANTS[name]
    base_dir = os.path.join(MODELS, base)
    cfg = json.load(open(os.path.join(base_dir, "config.json")))
    state = load_file(os.path.join(base_dir, "model.safetensors"))
    tensors, dense, fp8_layers = {}, {}, set()
    for tname, w in state.items():
        if method == "fp8-dynamic" and is_quantizable(tname):
            # --quantization fp8: the bf16 weights widened, one scale per output channel.
            _, dq = fp8_quantize(w.float(), per_channel=True)
            dense[tname] = dq
            fp8_layers.add(tname[:-len(".weight")])
            continue
        if not is_quantizable(tname) or skipped(method, o, tname) or method == "fp8-dynamic":
            keep = w if method == "fp8-dynamic" else w.to(torch.float16)
            tensors[tname] = keep
            dense[tname] = keep.float()
            continue
        prefix = tname[:-len(".weight")]
        if method == "gptq":
            t, dq = gptq_quantize(w.double().numpy(), o["bits"], o["group"], o["sym"], o["act"],
                                  o["v2"], site_of(tname))
        elif method == "awq":
            t, dq = awq_quantize(w.double().numpy(), o["group"])
        elif method == "ct" and ct_group_of(o, prefix)["type"] == "int":
            t, dq = ct_int_quantize(w.double().numpy(), ct_group_of(o, prefix), site_of(tname))
        elif method == "ct":
            t, dq = ct_fp8_quantize(w, ct_group_of(o, prefix))
            fp8_layers.add(prefix)
        else:
            t, dq = fp8_quantize(w, o["per_channel"])
            fp8_layers.add(prefix)
        for k, v in t.items():
            tensors[f"{prefix}.{k}"] = v.contiguous()
        dense[tname] = dq.float()
    desc = f"{base} as {method} {json.dumps(o, sort_keys=True)}"

    # The dequantized dense checkpoint the reference runs on (float32).
    tmp = tempfile.mkdtemp()
    dense_dir = os.path.join(dense_root, name) if dense_root else os.path.join(tmp, "dense")
    os.makedirs(dense_dir, exist_ok=True)
    dcfg = dict(cfg, dtype="float32")
    json.dump(dcfg, open(os.path.join(dense_dir, "config.json"), "w"), indent=2)
    save_file({k: v.contiguous() for k, v in dense.items()},
              os.path.join(dense_dir, "model.safetensors"), metadata={"format": "pt"})
    refs = reference(dense_dir, cfg, desc, fp8_layers)
    shutil.rmtree(tmp)

    path = os.path.join(out_root, name)
    os.makedirs(path, exist_ok=True)
    if method != "fp8-dynamic":
        qcfg = dict(cfg, dtype="float16")
        qc = quant_config(method, o)
        if o.get("side_file"):
            side = "quantize_config.json" if method == "gptq" else "quant_config.json"
            json.dump(qc, open(os.path.join(path, side), "w"), indent=2)
        elif o.get("legacy_key"):
            qcfg["compression_config"] = qc
        else:
            qcfg["quantization_config"] = qc
        json.dump(qcfg, open(os.path.join(path, "config.json"), "w"), indent=2)
        shutil.copy(os.path.join(base_dir, "generation_config.json"), path)
        save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    refs["base"] = base
    refs["quantization"] = "fp8" if method == "fp8-dynamic" else ""
    with open(os.path.join(path, "reference.json"), "w") as f:
        json.dump(refs, f, separators=(",", ":"))
    print(f"{name}: greedy {refs['cases'][0]['greedy'][:6]}... min gap "
          f"{min(min(c['top2_gaps']) for c in refs['cases']):.3g}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "fixtures", "quant"))
    ap.add_argument("--dense", help="also keep each variant's dequantized checkpoint here")
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(2)
    for name in VARIANTS:
        if not args.only or name in args.only:
            make(name, args.out, args.dense)


if __name__ == "__main__":
    main()
