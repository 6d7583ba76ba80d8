"""Decode steps on the CPU through blendrl's own kernels (``cpu_gemm.cpp``), built on first use.

A decode step multiplies a handful of rows (the batch) by every weight matrix of the model, so its speed is how
fast the weights stream from memory, and at 8-32 rows MKL's ``F.linear`` and oneDNN's packed linear read well below
the memory bandwidth a plain sum reaches (``benchmarks/generation.py --kernels`` prints the comparison; numbers in
docs/performance.md). Two entry points:

- :class:`LinearGroup`: ``x @ Wᵀ + b`` for several weights sharing one input (q/k/v, gate/up), one call;
- :class:`LlamaLayers`: a whole Llama-layout decoder layer per call (RMSNorm, projections, rope, attention over
  static caches, SiLU MLP, residuals) in one OpenMP region, instead of ~40 small torch ops a layer that cost
  several µs each inside a decode step.

The source is compiled once per machine with the system C++ compiler (``$CXX``, else ``c++``/``g++``) for the
host CPU (``-O3 -march=native -fopenmp``, about a second) into ``$BLENDRL_CACHE/kernels`` (default
``~/.cache/blendrl/kernels``), named by a hash of the source, the flags, the compiler and the CPU, written
atomically. The kernel's OpenMP calls go to the runtime torch has already loaded (torch ships ``libgomp.so.1``
and the loader reuses a loaded soname), so its threads are torch's threads (``torch.set_num_threads`` applies).
Without a compiler, off x86-64 (or without AVX2 + FMA), or with ``BLENDRL_CPU_KERNELS=0``, :func:`available` is
False and the decoder keeps torch ops (``F.linear``).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace

import torch

from ..models.layout import is_hf_rms_norm
from ..models.loading import cache_root

SOURCE = Path(__file__).with_name("cpu_gemm.cpp")
FLAGS = ["-O3", "-march=native", "-mprefer-vector-width=512", "-fopenmp", "-fPIC", "-shared", "-std=c++17"]
MAX_ROWS = 32  # above 32 rows F.linear is as fast (benchmarks/generation.py --kernels)
ENV_ENABLED = os.environ.get("BLENDRL_CPU_KERNELS", "1") != "0"
ENABLED = ENV_ENABLED  # a run's perf.cpu_kernels sets it; benchmarks flip it to compare with F.linear


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_signature() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    lines = [line for line in text.splitlines() if line.startswith(("model name", "flags"))]
    return "\n".join(lines[:2])


def _cache_dir() -> Path:
    return cache_root() / "kernels"


def build(cache_dir: Path | None = None, extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile the kernel if this machine has no build of the current source yet; → the shared library's path.
    ``extra_flags`` go after ``FLAGS`` (tests build the AVX2 path with ``-mno-avx512f``). Raises ``RuntimeError``
    with the compiler's message when compilation fails."""
    cxx = _compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set CXX, or install g++)")
    flags = [*FLAGS, *extra_flags]
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256("\0".join([SOURCE.read_text(), " ".join(flags), version, _cpu_signature()]).encode())
    out_dir = cache_dir or _cache_dir()
    target = out_dir / f"cpu_gemm-{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
    os.close(fd)
    try:
        done = subprocess.run([cxx, *flags, str(SOURCE), "-o", tmp], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"compiling {SOURCE} failed:\n{done.stderr.strip()}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


@functools.cache
def _library():
    """The loaded kernel, or None (warned once) where it cannot be built here."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        return load(build())
    except (RuntimeError, OSError) as err:
        warnings.warn(f"blendrl: decode steps use torch ops; the CPU kernel is unavailable: {err}", stacklevel=3)
        return None


def load(path: Path) -> SimpleNamespace:
    """The kernel library at ``path`` with its entry points typed."""
    lib = ctypes.CDLL(str(path))
    group = lib.blendrl_linear_group
    group.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64] + [ctypes.c_void_p] * 5
    layer = lib.blendrl_llama_layer
    layer.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    group.restype = layer.restype = None
    return SimpleNamespace(handle=lib, linear_group=group, llama_layer=layer, max_group=lib.blendrl_max_group())


def available() -> bool:
    """True when the kernel is enabled and built (or buildable) and loaded on this machine."""
    return ENABLED and _library() is not None


def supports(linear: torch.nn.Module, rows: int) -> bool:
    """Whether ``linear`` can run through the kernel for ``rows`` input rows: a plain fp32 ``nn.Linear`` on the
    CPU with a contiguous weight, ``rows <= MAX_ROWS``, and the kernel loaded."""
    w = getattr(linear, "weight", None)
    return (type(linear) is torch.nn.Linear and w.device.type == "cpu" and w.dtype == torch.float32
            and w.is_contiguous() and 0 < rows <= MAX_ROWS and available())


class LinearGroup:
    """``torch.cat([F.linear(x, m.weight, m.bias) for m in linears], -1)`` for ``x`` (rows, K), as one kernel call
    into an output buffer (rows, ΣN) allocated once (each call overwrites the previous call's output). Every module
    must satisfy :func:`supports` and share ``in_features``; the weights' storage must stay put while the group is
    in use (a decoder builds its groups per rollout)."""

    def __init__(self, linears: list[torch.nn.Linear], rows: int) -> None:
        lib = _library()
        max_group = lib.max_group
        if not 0 < len(linears) <= max_group:
            raise ValueError(f"a linear group holds 1 to {max_group} weights, got {len(linears)}")
        if len({m.in_features for m in linears}) != 1:
            raise ValueError(f"linears in a group share in_features, got {[m.in_features for m in linears]}")
        if not all(supports(m, rows) for m in linears):
            raise ValueError("every linear in a group must be a plain fp32 CPU nn.Linear (cpu_gemm.supports)")
        self.fn, self.rows, self.in_features = lib.linear_group, rows, linears[0].in_features
        self.linears = linears  # keeps the weights alive for the pointers below
        widths = [m.out_features for m in linears]
        self.output = torch.empty(rows, sum(widths))  # (rows, ΣN): column slices, one per linear
        offsets = [sum(widths[:g]) for g in range(len(widths))]
        self._biases = [m.bias.detach().contiguous() if m.bias is not None else None for m in linears]
        G, ptrs, ints = len(linears), ctypes.c_void_p * len(linears), ctypes.c_int64 * len(linears)
        self._args = (
            G,
            ptrs(*[m.weight.data_ptr() for m in linears]),
            ptrs(*[b.data_ptr() if b is not None else None for b in self._biases]),
            ptrs(*[self.output.data_ptr() + 4 * off for off in offsets]),
            ints(*widths),
            ints(*[self.output.shape[1]] * G),
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape != (self.rows, self.in_features) or x.dtype != torch.float32 or x.device.type != "cpu":
            raise ValueError(f"LinearGroup expects ({self.rows}, {self.in_features}) fp32 on the CPU, "
                             f"got {tuple(x.shape)} {x.dtype} {x.device}")
        x = x.contiguous()
        self.fn(x.data_ptr(), self.rows, self.in_features, *self._args)
        return self.output


_P = ctypes.c_void_p


class _LlamaLayerArgs(ctypes.Structure):
    """Mirror of ``struct LlamaLayer`` in cpu_gemm.cpp (same order, same types)."""
    _fields_ = ([(n, ctypes.c_int64) for n in ("M", "D", "H", "KV", "hd", "I", "T")]
                + [(n, ctypes.c_float) for n in ("eps1", "eps2", "scaling")]
                + [(n, _P) for n in ("x", "cos", "sin", "key_bias", "norm1", "norm2")]
                + [("w", _P * 7), ("b", _P * 7)]
                + [(n, _P) for n in ("kcache", "vcache", "h", "qkv", "attn", "gu", "act", "scores")])


def _is_rms_norm(norm: torch.nn.Module) -> bool:
    """An HF RMSNorm (:func:`~blendrl.models.layout.is_hf_rms_norm`) with a contiguous fp32 CPU weight."""
    w = getattr(norm, "weight", None)
    return is_hf_rms_norm(norm) and w.dtype == torch.float32 and w.device.type == "cpu" and w.is_contiguous()


def _is_silu(act: torch.nn.Module) -> bool:
    return isinstance(act, torch.nn.SiLU) or type(act).__name__ == "SiLUActivation"  # transformers' own SiLU


def fusable_llama_layer(layer: torch.nn.Module, rows: int) -> bool:
    """Whether :class:`LlamaLayers` computes ``layer`` (a transformers Llama/Qwen2/Mistral decoder layer): every
    projection :func:`supports`-ed, HF RMSNorms, a SiLU-gated MLP, an even head dimension."""
    attn, mlp = layer.self_attn, layer.mlp
    projections = (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj)
    return (all(supports(m, rows) for m in projections) and _is_rms_norm(layer.input_layernorm)
            and _is_rms_norm(layer.post_attention_layernorm) and _is_silu(mlp.act_fn)
            and attn.head_dim % 2 == 0)


class LlamaLayers:
    """A whole stack of decoder layers stepped for one new token per row, one kernel call per layer
    (``blendrl_llama_layer``): RMSNorm, q/k/v, rope, attention over the static caches, o + residual, RMSNorm,
    gate/up, SiLU·up, down + residual. ``x`` (rows, D) holds the residual stream: write the embedded tokens into it,
    call, read the last layer's output from it. Every layer must be :func:`fusable_llama_layer`."""

    def __init__(self, layers, keys: list[torch.Tensor], values: list[torch.Tensor], key_bias: torch.Tensor,
                 rows: int) -> None:
        self._fn = _library().llama_layer
        attn, mlp = layers[0].self_attn, layers[0].mlp
        H, KV = attn.config.num_attention_heads, attn.config.num_key_value_heads
        hd, D, inter, T = attn.head_dim, attn.q_proj.in_features, mlp.gate_proj.out_features, keys[0].shape[2]
        for k, v in zip(keys, values):
            if k.shape != (rows, KV, T, hd) or v.shape != k.shape or not (k.is_contiguous() and v.is_contiguous()):
                raise ValueError(f"caches must be contiguous ({rows}, {KV}, {T}, {hd}), got {tuple(k.shape)}")
        if key_bias.shape != (rows, 1, 1, T) or not key_bias.is_contiguous():
            raise ValueError(f"key_bias must be contiguous ({rows}, 1, 1, {T}), got {tuple(key_bias.shape)}")
        self.x, self.cos, self.sin = torch.zeros(rows, D), torch.zeros(rows, hd), torch.zeros(rows, hd)
        self._scratch = {"h": torch.empty(rows, D), "qkv": torch.empty(rows, (H + 2 * KV) * hd),
                         "attn": torch.empty(rows, H * hd), "gu": torch.empty(rows, 2 * inter),
                         "act": torch.empty(rows, inter), "scores": torch.empty(rows, H, T)}
        self._keep = (layers, keys, values, key_bias)  # the pointers below point into these
        self._args = []
        for layer, k, v in zip(layers, keys, values):
            a, m = layer.self_attn, layer.mlp
            projections = (a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj)
            args = _LlamaLayerArgs(
                rows, D, H, KV, hd, inter, T, layer.input_layernorm.variance_epsilon,
                layer.post_attention_layernorm.variance_epsilon, a.scaling,
                self.x.data_ptr(), self.cos.data_ptr(), self.sin.data_ptr(), key_bias.data_ptr(),
                layer.input_layernorm.weight.data_ptr(), layer.post_attention_layernorm.weight.data_ptr(),
                (_P * 7)(*[p.weight.data_ptr() for p in projections]),
                (_P * 7)(*[p.bias.data_ptr() if p.bias is not None else None for p in projections]),
                k.data_ptr(), v.data_ptr(), *[t.data_ptr() for t in self._scratch.values()])
            self._args.append(args)

    def __call__(self, cos: torch.Tensor, sin: torch.Tensor, t: int) -> torch.Tensor:
        """Run every layer for cache column ``t`` with this step's rotary ``cos``/``sin`` (rows, hd); → ``x``."""
        self.cos.copy_(cos)
        self.sin.copy_(sin)
        for args in self._args:
            self._fn(ctypes.byref(args), t)
        return self.x

