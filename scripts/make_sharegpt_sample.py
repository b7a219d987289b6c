#!/usr/bin/env python3
"""Write data/sharegpt-sample.json: a small, seeded, self-made ShareGPT-shaped dataset.

The shape follows `ShareGPT_V3_unfiltered_cleaned_split.json` (a list of
`{"id", "conversations": [{"from": "human"|"gpt", "value": str}, ...]}`), so the
bench step's ShareGPT loader (vLLM's sampling rules) reads it unchanged. Nothing is
downloaded: the text is generated from a fixed word list with a fixed seed, so the
file is byte-identical on every run. Lengths are varied (log-uniform) so the length
filters (prompt < 4 or > 1024 tokens, output < 4, total > 2048) all have entries to
act on, and a few conversations have a single turn (dropped by the >= 2 turns rule).

Usage: python3 scripts/make_sharegpt_sample.py [--out data/sharegpt-sample.json] [--n 200] [--seed 0]
"""

import argparse
import json
import math
import random

WORDS = (
    "the of and to in is was for on that with as by at from it an be this are or have "
    "model server token latency request stream batch cache memory throughput prompt answer "
    "question explain write summary code function python rust kernel weight quantize price "
    "cost hour budget compare measure number result table chart report data time value "
    "please could you help me how what why when where which show list give describe "
    "simple short long detailed example step first second third finally because however "
    "river mountain city garden music history science market energy travel recipe story"
).split()
OPENERS = [
    "Explain", "Write", "Summarize", "Describe", "List", "Compare", "Translate",
    "How do I", "Why does", "What is", "Give me", "Help me with",
]


def sentence(rng: random.Random, n_words: int) -> str:
    words = [rng.choice(WORDS) for _ in range(max(1, n_words))]
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice([".", ".", ".", "?", "!"])


def text(rng: random.Random, n_words: int, opener: bool) -> str:
    parts, left = [], n_words
    if opener:
        parts.append(rng.choice(OPENERS))
        left -= 2
    while left > 0:
        k = min(left, rng.randint(4, 18))
        parts.append(sentence(rng, k))
        left -= k
    return " ".join(parts)


def log_uniform(rng: random.Random, lo: int, hi: int) -> int:
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="data/sharegpt-sample.json")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    convs = []
    for i in range(args.n):
        turns = 1 if i % 25 == 7 else rng.choice([2, 2, 2, 3, 4])
        conv = []
        for t in range(turns):
            human = t % 2 == 0
            n = log_uniform(rng, 2, 700) if human else log_uniform(rng, 2, 500)
            conv.append({"from": "human" if human else "gpt", "value": text(rng, n, human)})
        convs.append({"id": f"forge-sample-{i:04d}", "conversations": conv})
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(convs, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
