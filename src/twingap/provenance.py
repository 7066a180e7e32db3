"""What a result was computed with: package versions and the machine facts that change floats.

On one machine, the same config and seed give bit-identical models. Across machines they do not:
torch picks its CPU kernels at run time (ATen's vectorised kernels by CPU capability, oneDNN's
convolutions by ISA, MKL's GEMM by CPU), and each computes sums in another order. So a seed on
another machine is another draw of the training noise. :func:`machine_info` records what decides
those choices, so that two runs that disagree can be told apart from two machines that compute
differently.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: Packages whose versions shape a result (rendering, training, evaluation).
RESULT_PACKAGES = (
    "twingap",
    "torch",
    "torchvision",
    "numpy",
    "moderngl",
    "opencv-python-headless",
    "trimesh",
    "faster-coco-eval",
    "pycocotools",
)

#: CPU flags that select torch / oneDNN / MKL kernel paths.
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
)

#: Environment variables that pin kernel choices (``None`` when unset).
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_CBWR", "OMP_NUM_THREADS")


def package_versions(packages: tuple[str, ...] = RESULT_PACKAGES) -> dict[str, str]:
    """Python and package versions (``"not installed"`` for a missing package)."""
    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _cpuinfo() -> tuple[str, list[str]]:
    model, flags = platform.processor() or "", []
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model"):
                model = val.strip()
            elif key in ("flags", "Features") and not flags:
                flags = val.split()
            if model and flags:
                break
    return model, sorted(set(flags) & set(ISA_FLAGS))


def machine_info() -> dict[str, Any]:
    """Facts that decide which floats a training computes (JSON-ready).

    The torch facts are read only when torch is already imported (a process that trained); a
    process that did not (e.g. the fake stages) records None for them rather than paying for
    the import.

    Returns:
        ``{"machine", "system", "cpu_model", "cpu_count", "isa_flags", "torch_cpu_capability",
        "onednn", "mkl", "torch_threads", "torch_interop_threads", "kernel_env", "cuda_device"}``.
    """
    model, flags = _cpuinfo()
    base = {
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "isa_flags": flags,
        "kernel_env": {k: os.environ.get(k) for k in KERNEL_ENV},
    }
    torch = sys.modules.get("torch")
    if torch is None:
        return {**base, **dict.fromkeys(("torch_cpu_capability", "onednn", "mkl", "torch_threads"))}
    cfg = torch.__config__.show()
    onednn = next((ln.strip(" -") for ln in cfg.splitlines() if "DNN v" in ln), "")
    mkl = next((ln.strip(" -") for ln in cfg.splitlines() if "Math Kernel Library" in ln), "")
    cuda = None
    if torch.cuda.is_available():
        cuda = torch.cuda.get_device_name(0)
    return {
        **base,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn": onednn,
        "mkl": mkl,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cuda_device": cuda,
    }


def float_fingerprint(info: dict[str, Any]) -> str:
    """One line naming what makes two machines compute different floats (for a report)."""
    isa = info.get("torch_cpu_capability") or "?"
    dev = info.get("cuda_device") or info.get("cpu_model") or "?"
    return f"{dev}, torch kernels {isa}, {info.get('onednn', '')}, {info.get('torch_threads')} thread(s)"
