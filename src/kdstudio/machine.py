"""The machine a timing was measured on: CPU model, instruction sets, threads, libraries.

Speed-ups differ across CPUs (int8 kernels most of all), so every timing carries this.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

#: Instruction sets that decide how fast int8 and fp32 kernels run: (name, /proc flags).
CPU_FEATURES = (("AVX2", {"avx2"}), ("AVX-512", {"avx512f"}),
                ("VNNI", {"avx512_vnni", "avx_vnni"}), ("AMX", {"amx_int8"}),
                ("BF16", {"avx512_bf16", "amx_bf16"}))


def cpu_description(env: dict) -> str:
    """"Intel Xeon (AVX2, AVX-512, VNNI, AMX)": the machine a timing was measured on."""
    flags = env.get("cpu_flags")
    return f"{env.get('cpu', '?')}" + (f" ({', '.join(flags)})" if flags else "")


def cpu_info() -> tuple[str, list[str]]:
    """(the CPU's model name, the instruction sets of CPU_FEATURES it has)."""
    cpu, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
            if cpu != "unknown" and flags:
                break
    except OSError:
        pass
    return cpu, [name for name, f in CPU_FEATURES if f & flags]


def native_bf16() -> bool:
    """Whether the CPU does bfloat16 arithmetic in hardware (AVX-512 BF16 or AMX), where
    bfloat16 training steps run about 1.5x as fast as float32 ones; elsewhere they are
    emulated and slower."""
    return "BF16" in cpu_info()[1]


def environment(threads: int | None = None) -> dict:
    import onnxruntime
    import torch
    import transformers

    cpu, flags = cpu_info()
    return {"cpu": cpu, "cpu_flags": flags,
            "cores": os.cpu_count(), "threads": threads or torch.get_num_threads(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
