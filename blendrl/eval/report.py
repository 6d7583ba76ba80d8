"""``blendrl report RUN_DIR``: one self-contained HTML page of a run (no server, no network), to see whether a policy
is gaming its judges without grepping files.

The page holds, per task (a CGPO run's tasks; a PPO run is one task): the training curves (reward, judge pass
rates, hack signals, KL and length, costs), the held-out values drawn over them, and a table of the logged samples
with their reward, verdict, the judges' reasons and the hack signals each one raises, flagged samples first, with
a filter. Charts are SVG drawn by matplotlib; every text that came from a model is escaped, and the page's content
security policy allows nothing from outside it.
"""
from __future__ import annotations

import html
import io
import json
import math
from pathlib import Path

from ..judges.signals import sample_flags

# (panel title, what a metric name after the task prefix starts with)
PANELS = [
    ("reward", ("reward/",)),
    ("judges (pass rates)", ("pass_rate", "judge/")),
    ("hack signals", ("hack/injection", "hack/repetition", "hack/repeats_prompt", "hack/truncated")),
    ("KL and length", ("kl/seq_k1", "response/length", "response/eos_rate")),
    ("cost and λ", ("cost/", "lagrangian/")),
]
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:")


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a .jsonl file the run wrote; a row that is not JSON is an error naming the file and row."""
    if not path.is_file():
        return []
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, row {i}: not valid JSON ({exc.msg})") from None
    return rows


def run_config(run_dir: Path) -> dict:
    """The config the run saved with its newest checkpoint (``checkpoints/*/config.yaml``), or {}."""
    import yaml

    configs = sorted(run_dir.glob("checkpoints/*/config.yaml"))
    return yaml.safe_load(configs[-1].read_text()) if configs else {}


def tasks_of(config: dict, metrics: list[dict]) -> list[str]:
    """A CGPO run's task names (its config's, else the metrics' ``<task>/pass_rate``); ``[""]`` for one task."""
    names = [t.get("name") for t in config.get("tasks", []) if isinstance(t, dict) and t.get("name")]
    if not names:
        names = sorted({k.split("/")[0] for m in metrics for k in m if k.endswith("/pass_rate") and k.count("/") == 1})
    return names or [""]


def series(metrics: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(iterations, values) of ``key`` where it was logged as a finite number."""
    points = [(m["iteration"], m[key]) for m in metrics if isinstance(m.get(key), (int, float))
              and not isinstance(m.get(key), bool) and math.isfinite(m[key]) and "iteration" in m]
    return [p[0] for p in points], [p[1] for p in points]


def panel_svg(metrics: list[dict], task: str, title: str, starts: tuple) -> str | None:
    """One chart: each metric of the task matching ``starts`` as a line, its ``eval/`` twin as dots; None when the
    run logged none of them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prefix = f"{task}/" if task else ""
    keys = sorted({k[len(prefix):] for m in metrics for k in m if k.startswith(prefix) and k[len(prefix):]
                   .startswith(starts) and not k.startswith("eval/")})
    if task == "":
        keys = [k for k in keys if k.count("/") <= 2]
    drawn = False
    fig, ax = plt.subplots(figsize=(5.2, 2.8), dpi=80)
    for i, key in enumerate(keys):
        color = f"C{i % 10}"
        xs, ys = series(metrics, prefix + key)
        if xs:
            ax.plot(xs, ys, color=color, label=key, linewidth=1.5)
            drawn = True
        ex, ey = series(metrics, f"eval/{prefix}{key}")
        if ex:
            ax.plot(ex, ey, "o--", color=color, label=f"{key} (held-out)", markersize=4, linewidth=0.8)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("iteration", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]  # without the XML prolog and doctype


def sample_rows(samples: list[dict]) -> list[dict]:
    """The logged samples with the hack signals each raises, flagged ones first (then judge failures, newest
    first)."""
    rows = []
    for s in samples:
        response, prompt = str(s.get("response", "")), str(s.get("prompt", ""))
        flags = sample_flags(response, bool(s.get("finished", True)), prompt)
        rows.append({**s, "flags": flags})
    rows.sort(key=lambda r: (-sum(2 if f != "truncated" else 1 for f in r["flags"]), r.get("passed", True) is not False,
                             -int(r.get("iteration", 0))))  # the games first, then a cut-off, then judge failures
    return rows


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        return "<br>".join(html.escape(str(v)) for v in value)
    return html.escape("" if value is None else str(value))


def samples_table(rows: list[dict]) -> str:
    head = ["iteration", "tag", "task", "flags", "passed", "reward", "prompt", "response", "violations"]
    out = ['<table id="samples"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in rows:
        cls = "flagged" if r["flags"] else "failed" if r.get("passed") is False else ""
        task = html.escape(str(r.get("task", "")))
        out.append(f'<tr class="{cls}" data-task="{task}" data-tag="{html.escape(str(r.get("tag", "")))}">'
                   + "".join(f'<td class="{h}">{_cell(r.get(h))}</td>' for h in head) + "</tr>")
    return "\n".join(out) + "</tbody></table>"


SCRIPT = """
const input = document.getElementById('filter');
const only = document.getElementById('flagged');
function apply() {
  const q = input.value.toLowerCase();
  let shown = 0;
  for (const row of document.querySelectorAll('#samples tbody tr')) {
    const ok = (!q || row.textContent.toLowerCase().includes(q))
      && (!only.checked || row.classList.contains('flagged'));
    row.style.display = ok ? '' : 'none';
    shown += ok ? 1 : 0;
  }
  document.getElementById('shown').textContent = shown + ' shown';
}
input.addEventListener('input', apply);
only.addEventListener('change', apply);
apply();
"""
STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
.charts { display: flex; flex-wrap: wrap; gap: .5em; }
.charts svg { width: 420px; height: auto; border: 1px solid #eee; }
table { border-collapse: collapse; font-size: 12px; width: 100%; }
td, th { border: 1px solid #ddd; padding: 3px 5px; vertical-align: top; text-align: left; }
td.response, td.prompt { white-space: pre-wrap; max-width: 480px; }
tr.flagged { background: #fde2e2; } tr.failed { background: #fff4d6; }
.summary td { font-size: 13px; }
"""


def render(run_dir: Path) -> str:
    """The report page of ``run_dir`` (a folder written by ``blendrl ppo`` or ``blendrl cgpo``)."""
    metrics, samples = read_jsonl(run_dir / "metrics.jsonl"), read_jsonl(run_dir / "samples.jsonl")
    if not metrics:
        raise ValueError(f"{run_dir}: no metrics.jsonl with rows (is it a run folder?)")
    config = run_config(run_dir)
    rows = sample_rows(samples)
    iterations = max((m.get("iteration", 0) for m in metrics), default=0)
    parts = [f"<h1>blendrl run: {html.escape(str(run_dir))}</h1>",
             f"<p>{iterations} iterations; {len(samples)} samples logged, {sum(bool(r['flags']) for r in rows)} "
             f"flagged by the hack signals, {sum(r.get('passed') is False for r in rows)} failed by a judge.</p>"]
    for task in tasks_of(config, metrics):
        charts = [svg for title, starts in PANELS if (svg := panel_svg(metrics, task, title, starts))]
        parts.append(f'<h2>{html.escape(task or "run")}</h2><div class="charts">{"".join(charts)}</div>')
    parts.append('<h2>samples</h2><p><input id="filter" placeholder="filter: any text"> '
                 '<label><input type="checkbox" id="flagged"> flagged only</label> <span id="shown"></span></p>')
    parts.append(samples_table(rows))
    if config:
        parts.append("<details><summary>config</summary><pre>" + html.escape(json.dumps(config, indent=1))
                     + "</pre></details>")
    return (f'<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
            f'content="{CSP}"><title>blendrl report</title><style>{STYLE}</style></head><body>'
            + "\n".join(parts) + f"<script>{SCRIPT}</script></body></html>")


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write :func:`render`'s page to ``out`` (default ``RUN_DIR/report.html``), atomically."""
    from ..core.fsutil import atomic_write_text

    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / "report.html"
    atomic_write_text(out, render(run_dir))
    out.chmod(0o644)  # a page to share, not a secret
    return out
