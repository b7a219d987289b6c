"""Tests and CI only: make vLLM's CPU build behave as on an x86-64 CPU with AVX2 but no AVX-512.

`scripts/vllm_serve.py` puts this directory first on PYTHONPATH when FORGE_EMULATE_CPU=avx2, so
every Python process of the server (API server, EngineCore, workers) runs it at start-up. vLLM
decides every CPU kernel through `torch.cpu._is_*_supported()` (vllm/platforms/cpu.py picks
`_C_AVX2` instead of `_C`/`_C_AVX512` when `_is_avx512_supported()` is false); PyTorch's own
kernels follow ATEN_CPU_CAPABILITY=avx2 and oneDNN's follow ONEDNN_MAX_CPU_ISA=AVX2, which the
launcher sets too. What this cannot change: a kernel that would need AVX-512 on a real AVX2 CPU
is never reached, because the AVX2 library is what gets loaded, exactly as on such a CPU.
"""

import os

if os.environ.get("FORGE_EMULATE_CPU", "").strip().lower() == "avx2":
    import torch.cpu

    for _name in ("_is_avx512_supported", "_is_avx512_bf16_supported", "_is_vnni_supported",
                  "_is_amx_tile_supported", "_is_amx_fp16_supported"):
        if hasattr(torch.cpu, _name):
            setattr(torch.cpu, _name, lambda: False)
