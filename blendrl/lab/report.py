"""The lab's report: Gao et al.'s functional forms fitted to the gold curves (docs/algorithms.md §3), a PNG of gold and
proxy against √KL, and an HTML page with the tables and the plot that a person opens.

Fitted forms, with d = √KL and R(d) = gold(d) − gold(0):
- best-of-n: ``R_bon(d) = d (α − β d)``  (peak at d* = α / 2β);
- RL:        ``R_RL(d) = d (α − β log d)`` (peak at d* = exp(α/β − 1)).
Both are linear in (α, β), fitted by least squares; a fit is drawn only when it has ≥ 3 points and R² ≥ 0.5.
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import torch

from ..core.fsutil import atomic_write_text


def fit_gao(points: list[dict], form: str) -> dict | None:
    """Least-squares (α, β) of ``form`` ("bon" or "rl") on points {kl, gold}; None with fewer than 3 points."""
    pts = sorted(points, key=lambda p: p["kl"])
    if len(pts) < 3:
        return None
    g0 = pts[0]["gold"]
    d = torch.tensor([math.sqrt(max(p["kl"], 0.0)) for p in pts], dtype=torch.float64)
    y = torch.tensor([p["gold"] - g0 for p in pts], dtype=torch.float64)
    second = -d * d if form == "bon" else -d * torch.where(d > 0, d.clamp_min(1e-12).log(), torch.zeros_like(d))
    X = torch.stack([d, second], dim=1)  # (P, 2)
    alpha, beta = torch.linalg.lstsq(X, y[:, None]).solution[:, 0].tolist()
    resid = y - X @ torch.tensor([alpha, beta], dtype=torch.float64)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else 0.0
    peak = None
    if beta > 0:
        peak = alpha / (2 * beta) if form == "bon" else math.exp(alpha / beta - 1)
    return {"alpha": alpha, "beta": beta, "r2": r2, "gold0": g0, "peak_sqrt_kl": peak}


def fit_curve(fit: dict, form: str, d: torch.Tensor) -> torch.Tensor:
    second = d * d if form == "bon" else d * d.clamp_min(1e-12).log()
    return fit["gold0"] + fit["alpha"] * d - fit["beta"] * second


def curves(result: dict) -> dict[str, dict[str, list[dict]]]:
    """{"bon": {objective: points}, "ppo": {run: points}}; points sorted by KL."""
    bon: dict[str, list[dict]] = {}
    for r in result["bon"]:
        bon.setdefault(r["objective"], []).append(r)
    return {"bon": {k: sorted(v, key=lambda p: p["kl"]) for k, v in bon.items()},
            "ppo": {k: sorted(v, key=lambda p: p["iteration"]) for k, v in result["ppo"].items()}}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = curves(result)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, (kind, form) in zip(axes, (("bon", "bon"), ("ppo", "rl"))):
        for i, (label, pts) in enumerate(data[kind].items()):
            color = f"C{i}"
            d = [math.sqrt(p["kl"]) for p in pts]
            ax.plot(d, [p["gold"] for p in pts], "o-", color=color, label=f"{label} gold")
            ax.plot(d, [p["proxy"] for p in pts], "x--", color=color, alpha=0.6, label=f"{label} proxy")
            fit = fit_gao(pts, form)
            if fit and fit["r2"] >= 0.5 and max(d) > 0:
                grid = torch.linspace(0, max(d), 50, dtype=torch.float64)
                ax.plot(grid.tolist(), fit_curve(fit, form, grid).tolist(), ":", color=color)
        ax.set_xlabel("√KL (nats½)")
        ax.set_ylabel("score")
        ax.set_title("best-of-n" if kind == "bon" else "PPO")
        ax.legend(fontsize=7)
    fig.suptitle("gold (solid) vs proxy (dashed) against √KL; dotted: Gao et al. fits")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_rows(result: dict) -> list[dict]:
    """One row per BoN objective and PPO run: best gold (and its √KL), last point's gold, proxy and √KL, fit."""
    rows = []
    for kind, form in (("bon", "bon"), ("ppo", "rl")):
        for label, pts in curves(result)[kind].items():
            if not pts:
                continue
            best = max(pts, key=lambda p: p["gold"])
            last = pts[-1] if kind == "ppo" else max(pts, key=lambda p: p["kl"])
            rows.append({"method": kind, "label": label, "gold_start": pts[0]["gold"], "best_gold": best["gold"],
                         "best_sqrt_kl": math.sqrt(best["kl"]), "last_gold": last["gold"],
                         "last_proxy": last["proxy"], "last_sqrt_kl": math.sqrt(last["kl"]),
                         "fit": fit_gao(pts, form)})
    return rows


def markdown_table(rows: list[dict]) -> str:
    head = ("| method | objective / run | gold at start | best gold (at √KL) | last gold | last proxy | last √KL "
            "| fit α, β, R² |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = r["fit"]
        fit = "-" if f is None else f"{f['alpha']:.3f}, {f['beta']:.3f}, {f['r2']:.2f}"
        lines.append(f"| {r['method']} | {r['label']} | {r['gold_start']:.3f} | {r['best_gold']:.3f} "
                     f"({r['best_sqrt_kl']:.2f}) | {r['last_gold']:.3f} | {r['last_proxy']:.3f} | "
                     f"{r['last_sqrt_kl']:.2f} | {fit} |")
    return "\n".join(lines)


def write_report(result: dict, out: Path) -> Path:
    png = out / "overopt.png"
    plot(result, png)
    rows = summary_rows(result)
    table = markdown_table(rows)
    atomic_write_text(out / "summary.md", table + "\n")
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in line.strip("|").split("|"))
                    + "</tr>" for line in table.splitlines()[2:])
    heads = "".join(f"<th>{html.escape(c.strip())}</th>" for c in table.splitlines()[0].strip("|").split("|"))
    image = base64.b64encode(png.read_bytes()).decode()
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>blendrl lab overopt</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}td,th{{border:1px solid #ccc;padding:4px 8px}}
table{{border-collapse:collapse}}</style></head><body>
<h1>Gold vs proxy (Gao et al. protocol)</h1>
<p>Labels: {html.escape(str(result['labels']))}<br>Proxy held-out accuracy (clean gold labels):
{html.escape(str([round(a, 3) if a is not None else None for a in result['proxy_accuracy']]))}</p>
<img src="data:image/png;base64,{image}" style="width:100%">
<table><tr>{heads}</tr>{cells}</table>
<p>Fits: best-of-n R(d) = d(α − βd), RL R(d) = d(α − β log d), d = √KL, R = gold − gold at KL 0.</p>
</body></html>"""
    atomic_write_text(out / "report.html", page)
    return out / "report.html"
