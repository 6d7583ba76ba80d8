"""``blendrl soup``: merge checkpoints by weights (rewarded soup, SALSA) or by Bone Soup coefficients."""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("soup", help="weight-average models: rewarded soup / SALSA, or Bone Soup (c = A^-1 lambda)")
    p.add_argument("--models", nargs="+", required=True, help="causal-LM folders with the same architecture")
    p.add_argument("--weights", nargs="+", type=float, help="one weight per model (default: equal)")
    p.add_argument("--bone-matrix", help="Bone Soup: rows of A as 'a,b;c,d' (row i = reward mix of backbone i)")
    p.add_argument("--preference", help="Bone Soup: the user's reward mix lambda, e.g. '0.3,0.7'")
    p.add_argument("--extrapolate", help="Bone Soup: k_j per reward, e.g. '1.25,1.25'; needs --sft")
    p.add_argument("--sft", help="Bone Soup: the SFT model the backbones started from (extrapolation)")
    p.add_argument("--out", required=True, help="output folder (save_pretrained)")
    p.set_defaults(func=main)


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def main(args: argparse.Namespace) -> int:
    from ..config import ConfigError
    from ..models.soups import bone_soup_coefficients, soup_models

    models = list(args.models)
    if args.bone_matrix:
        if not args.preference:
            raise ConfigError("--preference: required with --bone-matrix")
        A = [_floats(row) for row in args.bone_matrix.split(";")]
        if len(A) != len(models) or any(len(r) != len(models) for r in A):
            raise ConfigError(f"--bone-matrix: expected a {len(models)}x{len(models)} matrix for {len(models)} models")
        if args.extrapolate and not args.sft:
            raise ConfigError("--sft: required with --extrapolate")
        x, x_sft = bone_soup_coefficients(A, _floats(args.preference),
                                          _floats(args.extrapolate) if args.extrapolate else None)
        weights = x + ([x_sft] if args.sft else [])
        models += [args.sft] if args.sft else []
    else:
        weights = args.weights or [1.0 / len(models)] * len(models)
        if len(weights) != len(models):
            raise ConfigError(f"--weights: {len(weights)} weights for {len(models)} models")
    out = soup_models(models, weights, args.out)
    print("soup: " + " + ".join(f"{w:+.4f}*{m}" for w, m in zip(weights, models)) + f" -> {out}")
    return 0
