#!/usr/bin/env python3
"""The AWQ weights in the form the engine on this machine can serve.

    <quantize-env>/bin/python scripts/awq_weights.py --awq <awq-dir> --out <dir> \
        --mode int4|dequantized --reason "<why this mode>"

* `int4`: the compressed-tensors W4A16 checkpoint itself (files hard-linked, copied where links
  are impossible). vLLM serves it with its INT4 kernel: Marlin/Machete on a GPU,
  `cpu_gemm_wna16` in the CPU build's AVX-512 libraries.
* `dequantized`: the same checkpoint unpacked to BF16 weights, for engines without an INT4
  kernel (vLLM's CPU build on AVX2-only x86-64 and on arm64: only its AVX-512 libraries carry
  `cpu_gemm_wna16`; see shared/reference/cpu-rehearsal.md). Every weight is still one of the 16
  int4 levels of its group (scale x (q - zero point)), so the served model carries exactly the
  quantization error: quality and retention stay meaningful, speed is BF16 speed, not INT4's.
  The script checks that on every quantized layer (at most 2^bits distinct values per group)
  and refuses to write a copy that does not hold it.

Run it in the quantize environment (compressed-tensors and transformers that read the format).
Besides the weights, --out receives `forge-model.json`: what was served (`weights.format`), why
(`weights.reason`), the source checkpoint's `forge-quant.json` (a quantization made here) or its
`forge-model.json` `source` (a published checkpoint: hub id and commit), and the check's figures; the serve
step publishes it as the `weights` fact, and results, charts and the report name the path.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

QUANT_PARAMS = ("weight_scale", "weight_zero_point", "weight_shape", "weight_g_idx", "weight_packed")


class WeightsError(Exception):
    """A failure with a message that says what to do."""


def link_tree(src: Path, out: Path) -> int:
    """Hard-links every file of `src` into `out` (copies across file systems); returns the count."""
    count = 0
    for path in sorted(src.rglob("*")):
        target = out / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
        count += 1
    return count


def quantization_bits(config: dict[str, Any]) -> int:
    """The weight bit width of a compressed-tensors config (4 for AWQ INT4)."""
    groups = config.get("quantization_config", {}).get("config_groups", {})
    for group in groups.values():
        bits = (group.get("weights") or {}).get("num_bits")
        if bits:
            return int(bits)
    raise WeightsError("config.json has no compressed-tensors `quantization_config.config_groups`"
                       " with weight `num_bits`: is --awq the quantize step's output?")


def max_levels_per_group(weight: Any, group_size: int) -> int:
    """The largest number of distinct values in any `group_size` run of a weight's rows."""
    import torch

    rows, cols = weight.shape
    if cols % group_size:
        raise WeightsError(f"a {rows}x{cols} weight does not divide into groups of {group_size}")
    groups = weight.reshape(rows * (cols // group_size), group_size).float()
    ordered, _ = torch.sort(groups, dim=1)
    distinct = 1 + (ordered[:, 1:] != ordered[:, :-1]).sum(dim=1)
    return int(distinct.max())


def dequantize(src: Path, out: Path) -> dict[str, Any]:
    """Loads the checkpoint decompressed, saves plain BF16 weights, checks the int4 grid."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils.quantization_config import CompressedTensorsConfig

    config_json = json.loads((src / "config.json").read_text())
    bits = quantization_bits(config_json)
    group_size = next(iter(config_json["quantization_config"]["config_groups"].values()))["weights"]["group_size"]
    quantized = AutoModelForCausalLM.from_pretrained(
        src, dtype=torch.bfloat16, quantization_config=CompressedTensorsConfig(run_compressed=False))
    state = {name: tensor for name, tensor in quantized.state_dict().items()
             if name.rsplit(".", 1)[-1] not in QUANT_PARAMS}
    config = AutoConfig.from_pretrained(src)
    del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    missing, unexpected = plain.load_state_dict(state, strict=False)
    # Tied embeddings show up as "missing" lm_head weights; anything else means a wrong layout.
    missing = [m for m in missing if not (config.tie_word_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        raise WeightsError(f"the decompressed weights do not fit the model: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
    ignored = set(config_json["quantization_config"].get("ignore", []))
    checked, worst = 0, 0
    for name, module in plain.named_modules():
        if isinstance(module, torch.nn.Linear) and name not in ignored and name != "lm_head":
            worst = max(worst, max_levels_per_group(module.weight.data, group_size))
            checked += 1
    if checked == 0 or worst > 2 ** bits:
        raise WeightsError(f"the dequantized weights are not on the int{bits} grid ({checked} layers, "
                           f"up to {worst} distinct values in a group of {group_size}); refusing to "
                           "serve them as the AWQ model")
    plain.save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return {"layers_checked": checked, "group_size": group_size,
            "max_distinct_values_per_group": worst, "bits": bits}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--awq", type=Path, required=True, help="the quantize step's output")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--mode", choices=("int4", "dequantized"), required=True)
    parser.add_argument("--reason", required=True, help="why this mode, in plain words")
    args = parser.parse_args(argv)
    try:
        if not (args.awq / "config.json").is_file():
            raise WeightsError(f"{args.awq}/config.json not found: run the quantize step first")
        # A published checkpoint's download record (`source`: hub id and commit) names where the
        # weights came from; read it before --out's copy of it is replaced below.
        prior = args.awq / "forge-model.json"
        source = json.loads(prior.read_text()).get("source") if prior.is_file() else None
        args.out.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        if args.mode == "int4":
            check: dict[str, Any] = {"files_linked": link_tree(args.awq, args.out)}
            fmt = "int4"
        else:
            check = dequantize(args.awq, args.out)
            fmt = "bf16-dequantized"
        quant = args.awq / "forge-quant.json"
        if quant.is_file() and not (args.out / "forge-quant.json").exists():
            # Where these weights came from (recipe, calibration, llm-compressor), as in INT4 form.
            shutil.copy2(quant, args.out / "forge-quant.json")
        record = {
            "weights": {"format": fmt, "reason": args.reason, "source": str(args.awq), **check,
                        "seconds": round(time.monotonic() - started, 1)},
            "quantization": json.loads(quant.read_text()) if quant.is_file() else None,
        }
        if source:
            record["source"] = source
        (args.out / "forge-model.json").unlink(missing_ok=True)  # never write through a hard link
        (args.out / "forge-model.json").write_text(json.dumps(record, indent=2) + "\n")
    except WeightsError as e:
        print(f"awq_weights: error: {e}", file=sys.stderr)
        return 2
    print(f"awq_weights: {fmt} weights in {args.out} ({args.reason})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
