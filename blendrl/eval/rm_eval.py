"""Reward-model evaluation on held-out pairs: accuracy, accuracy per μ̂ decile, reward statistics, calibration.

Calibration reads σ(Δ) (Δ = r(x, y_c) − r(x, y_r)) as the model's probability that its preferred side is the
labelled one: confidence ``max(σ(Δ), 1 − σ(Δ))`` is binned over [0.5, 1] and compared with the share of pairs
ranked correctly (a reliability diagram); ECE = Σ_b (n_b / N)·|accuracy_b − confidence_b|.
"""
from __future__ import annotations

import torch


def decile_ids(values: torch.Tensor, deciles: int = 10) -> torch.Tensor:
    """Decile index 0..deciles−1 of each value by rank (ties broken by position). (N,) → (N,) long."""
    ranks = torch.empty_like(values, dtype=torch.long)
    ranks[torch.argsort(values, stable=True)] = torch.arange(values.numel())
    return ranks * deciles // values.numel()


def pair_metrics(chosen: torch.Tensor, rejected: torch.Tensor, mu: torch.Tensor | None = None,
                 bins: int = 10) -> dict:
    """Metrics of scores (N,), (N,). A tie counts as half right. ``mu`` (N,) adds accuracy per μ̂ decile."""
    delta = chosen - rejected  # (N,)
    correct = (delta > 0).float() + 0.5 * (delta == 0).float()  # (N,)
    rewards = torch.cat([chosen, rejected])
    out = {"accuracy": correct.mean().item(), "pairs": int(delta.numel()), "reward_mean": rewards.mean().item(),
           "reward_std": rewards.std(unbiased=False).item(), "margin_mean": delta.mean().item(),
           "chosen_mean": chosen.mean().item(), "rejected_mean": rejected.mean().item()}
    conf = torch.sigmoid(delta.abs())  # (N,) in [0.5, 1)
    edges = torch.linspace(0.5, 1.0, bins + 1)
    which = torch.clamp(torch.bucketize(conf, edges, right=True) - 1, 0, bins - 1)  # (N,)
    table, ece = [], 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            acc, c = correct[sel].mean().item(), conf[sel].mean().item()
            ece += sel.float().mean().item() * abs(acc - c)
            table.append({"bin": [round(edges[b].item(), 3), round(edges[b + 1].item(), 3)], "count": int(sel.sum()),
                          "confidence": c, "accuracy": acc})
    out["calibration"], out["ece"] = table, ece
    if mu is not None:
        d = decile_ids(mu)
        out["by_mu_decile"] = [
            {"decile": k + 1, "mu_min": mu[d == k].min().item(), "mu_max": mu[d == k].max().item(),
             "accuracy": correct[d == k].mean().item(), "count": int((d == k).sum())}
            for k in range(10) if (d == k).any()
        ]
    return out


def calibration_plot(metrics: dict, path, title: str = "reward-model calibration") -> None:
    """Reliability diagram (PNG): accuracy vs confidence per bin, with the diagonal and the ECE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = metrics["calibration"]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0.5, 1.0], [0.5, 1.0], "--", color="grey", label="perfect calibration")
    ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], "o-", label="reward model")
    for r in rows:
        ax.annotate(str(r["count"]), (r["confidence"], r["accuracy"]), fontsize=7, xytext=(3, -9),
                    textcoords="offset points")
    ax.set_xlabel("confidence max(σ(Δ), 1−σ(Δ))")
    ax.set_ylabel("share of pairs ranked as labelled")
    ax.set_xlim(0.48, 1.02)
    ax.set_ylim(0.0, 1.02)
    ax.set_title(f"{title}\naccuracy {metrics['accuracy']:.3f}, ECE {metrics['ece']:.3f}", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_report(metrics: dict) -> str:
    """A plain-text table of the metrics for the terminal."""
    lines = [f"pairs {metrics['pairs']}  accuracy {metrics['accuracy']:.4f}  ECE {metrics['ece']:.4f}  "
             f"reward mean {metrics['reward_mean']:.3f} std {metrics['reward_std']:.3f}"]
    if "by_mu_decile" in metrics:
        lines.append("decile  mu range            accuracy  pairs")
        for r in metrics["by_mu_decile"]:
            lines.append(f"{r['decile']:>6}  [{r['mu_min']:+.3f}, {r['mu_max']:+.3f}]  {r['accuracy']:8.3f}  "
                         f"{r['count']:5d}")
    lines.append("confidence bin   confidence  accuracy  pairs")
    for r in metrics["calibration"]:
        lines.append(f"[{r['bin'][0]:.2f}, {r['bin'][1]:.2f})     {r['confidence']:.3f}     {r['accuracy']:.3f}  "
                     f"{r['count']:5d}")
    return "\n".join(lines)
