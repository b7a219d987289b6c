#!/usr/bin/env python3
"""AWQ INT4 (W4A16, asymmetric, grouped) with llm-compressor; output saved compressed for vLLM.

Run it in the quantize environment (constraints/quantize.txt: llmcompressor 0.14.0.1,
compressed-tensors 0.19.0, torch 2.13.0, transformers 5.17.0):

    <quantize-env>/bin/python recipes/awq_int4.py --model <bf16-dir-or-hub-id> --out <dir> \
        --group-size 64 --num-samples 64 --max-seq-len 512 --calibration data/calibration.jsonl

Every choice, and where it comes from (shared/reference/serving-eval-quant-pricing.md §4 cites
llm-compressor's examples/awq/llama_example.py and tests/e2e/recipes/WNA16/recipe_w4a16_awq_asym.yaml;
shared/reference/cpu-rehearsal.md holds the measurements on this project's CPU):

* Method: AWQModifier (activation-aware scaling, "smoothing") followed by QuantizationModifier
  (round-to-nearest int4 with the smoothed weights). This is llm-compressor's AWQ example for
  Llama-3 8B; llm-compressor succeeded AutoAWQ, which was deprecated on 2025-05-11.
* duo_scaling="both": half of AWQ's scale grid search uses activations only, half uses
  activations and weights; the current example's setting (default n_grid=20).
* --n-grid: points of that scale search per mapping (llm-compressor's `n_grid`, default 20, as
  the example). The grid search is most of the step's time on a CPU, at a fixed cost per point
  whatever the sample count; the rehearsal profile uses a coarser grid (see its comment).
* int4, symmetric=False, strategy="group": the `W4A16_ASYM` scheme (zero points), i.e. the same
  format as AutoAWQ's `zero_point: True` and the published hugging-quants AWQ checkpoint.
  Written as explicit config_groups so the group size is a parameter.
* --group-size: 128 for Llama-3.1-8B (the preset's value and the hugging-quants checkpoint's;
  widths 4096 and 14336 divide by 128). 64 for SmolLM2-135M, whose 576-wide layers do not divide
  by 128 (the preset fails with `not divisible by group_size`).
* ignore=["lm_head"]: the output projection stays bf16, as in the example (quantizing it hurts
  quality most and saves little).
* targets=["Linear"]: every linear layer in the decoder blocks.
* Calibration: the example takes the first 256 rows of HuggingFaceH4/ultrachat_200k's split
  train_sft and shuffles them with seed 42 (the order changes, not which rows), rendered with the
  model's chat template, max_seq_length 512 ("a good place to start"); `--calibration hub:...`
  does the same with the first --num-samples rows. Offline, a local JSONL of chat messages
  shipped in the repo (data/calibration.jsonl: 64 short conversations written for Forge) replaces
  it: all its conversations are shuffled with --seed, then the first --num-samples are used.
* save_compressed=True: packs int4 weights in the compressed-tensors format; config.json then
  carries quant_method "compressed-tensors", which vLLM detects by itself (do not pass
  --quantization awq_marlin for this output; vLLM picks its Marlin/WNA16 kernel).
* CPU hosts only: llm-compressor 0.14's AWQ pins cached activations with `pin_memory()`, which
  needs an NVIDIA driver (`RuntimeError: Found no NVIDIA driver`). When torch sees no
  accelerator, pinning becomes a no-op; with a GPU the patch is never applied.

Besides the model (weights, config, tokenizer), --out receives `forge-quant.json`: the
parameters above, calibration file sha256, base model identity (its forge-model.json if
present), library versions, timings, and the sha256 of every output file.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import random
import shutil
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

HUB_DATASET = "HuggingFaceH4/ultrachat_200k"
HUB_SPLIT = "train_sft"


# A copy of scripts/forge_common.py's sha256_file: this recipe runs as `python recipes/awq_int4.py`
# in the quantize environment, where scripts/ is not on sys.path (and the quantize step's inputs
# name this file alone).
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_conversations(source: str, n: int, seed: int) -> tuple[list[list[dict[str, Any]]], dict[str, Any]]:
    """Chat conversations (lists of {role, content}) from a local JSONL or the hub dataset."""
    if source.startswith("hub:"):
        from datasets import load_dataset  # needs hub access (the a5000 profile)

        name = source[4:] or HUB_DATASET
        ds = load_dataset(name, split=f"{HUB_SPLIT}[:{n}]").shuffle(seed=seed)
        return [row["messages"] for row in ds], {"kind": "hub", "dataset": name, "split": f"{HUB_SPLIT}[:{n}]",
                                                 "seed": seed}
    path = Path(source)
    if not path.is_file():
        raise SystemExit(f"awq_int4: calibration file not found: {path} "
                         "(pass --calibration data/calibration.jsonl or hub:HuggingFaceH4/ultrachat_200k)")
    convs = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            msgs = json.loads(line)["messages"]
            assert isinstance(msgs, list) and all("role" in m and "content" in m for m in msgs)
        except (ValueError, KeyError, TypeError, AssertionError):
            raise SystemExit(
                f"awq_int4: {path}:{lineno}: expected {{\"messages\": [{{\"role\", \"content\"}}, ...]}}") from None
        convs.append(msgs)
    if len(convs) < n:
        print(f"awq_int4: {path} has {len(convs)} conversations; using all of them (asked for {n})",
              file=sys.stderr)
    random.Random(seed).shuffle(convs)
    return convs[:n], {"kind": "file", "path": str(path), "sha256": sha256_file(path), "seed": seed}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="base model: local bf16 directory or hub id")
    ap.add_argument("--out", required=True, help="output directory for the compressed model")
    ap.add_argument("--group-size", type=int, default=128, help="int4 group size (128 Llama-3.1-8B, 64 SmolLM2)")
    ap.add_argument("--num-samples", type=int, default=256, help="calibration samples")
    ap.add_argument("--max-seq-len", type=int, default=512, help="calibration sequence length (tokens)")
    ap.add_argument("--calibration", default="data/calibration.jsonl",
                    help="local JSONL of {messages: [...]}, or hub:<dataset id> (default dataset ultrachat_200k)")
    ap.add_argument("--n-grid", type=int, default=20,
                    help="AWQ scale-search points per mapping (llm-compressor's n_grid; default 20)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--force", action="store_true", help="replace a non-empty --out")
    args = ap.parse_args(argv)
    if args.n_grid < 4:
        raise SystemExit(f"awq_int4: --n-grid {args.n_grid}: at least 4 (duo scaling splits it in two halves)")

    out = Path(args.out).absolute()
    if out.exists() and any(out.iterdir()):
        if not args.force:
            print(f"awq_int4: {out} exists and is not empty (pass --force to replace it)", file=sys.stderr)
            return 2
        shutil.rmtree(out)

    import torch
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform.awq import AWQModifier
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cpu_patch = False
    if not torch.accelerator.is_available():
        # CPU-only host: see the module docstring. Inert where a GPU exists.
        from llmcompressor.pipelines.cache import IntermediatesCache

        IntermediatesCache.pin_memory = lambda self, *a, **k: None
        cpu_patch = True

    t0 = time.monotonic()
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype="auto")
    convs, calib = load_conversations(args.calibration, args.num_samples, args.seed)
    enc = [tok(tok.apply_chat_template(c, tokenize=False), max_length=args.max_seq_len, truncation=True,
               add_special_tokens=False) for c in convs]
    ds = Dataset.from_dict({"input_ids": [e["input_ids"] for e in enc],
                            "attention_mask": [e["attention_mask"] for e in enc]})
    calib.update(samples=len(enc), tokens=sum(len(e["input_ids"]) for e in enc))

    weights = {"num_bits": 4, "type": "int", "symmetric": False, "strategy": "group",
               "group_size": args.group_size}
    recipe = [
        AWQModifier(duo_scaling="both", n_grid=args.n_grid),
        QuantizationModifier(ignore=["lm_head"],
                             config_groups={"group_0": {"targets": ["Linear"], "weights": weights}}),
    ]
    t1 = time.monotonic()
    oneshot(model=model, dataset=ds, recipe=recipe, max_seq_length=args.max_seq_len,
            num_calibration_samples=len(enc))
    t2 = time.monotonic()
    model.save_pretrained(out, save_compressed=True)
    tok.save_pretrained(out)

    base_record = Path(args.model) / "forge-model.json"
    record = {
        "method": "AWQ + int4 weight-only (W4A16), asymmetric, grouped",
        "recipe_sha256": sha256_file(Path(__file__)),
        "recipe": {"awq": {"duo_scaling": "both", "n_grid": args.n_grid},
                   "quantization": {"targets": ["Linear"], "ignore": ["lm_head"], "weights": weights},
                   "max_seq_length": args.max_seq_len, "save_compressed": True},
        "base_model": {"id": args.model,
                       "forge_model": json.loads(base_record.read_text()) if base_record.is_file() else None},
        "calibration": calib,
        "device": "cuda" if not cpu_patch else "cpu (pin_memory patched out)",
        "libraries": {k: version(k) for k in ("llmcompressor", "compressed-tensors", "transformers", "torch")},
        "seconds": {"load_and_tokenize": round(t1 - t0, 1), "oneshot": round(t2 - t1, 1),
                    "save": round(time.monotonic() - t2, 1)},
        "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file():
            p.chmod(0o644)
            files[p.relative_to(out).as_posix()] = sha256_file(p)
    record["files"] = files
    (out / "forge-quant.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"awq_int4: wrote {out} (oneshot {t2 - t1:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
