"""The accelerator mode of benchmarks/ppo_iteration.py runs end to end (here on the CPU with the tiny architecture;
on a GPU with ``--device cuda --arch qwen2-0.5b``), and its FLOP count is the formula in its docstring."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ppo_device import iteration_flops, run  # noqa: E402


def test_iteration_flops_by_hand():
    # N = 10, 2 rows of 3 prompt + 4 response tokens: sampling 2N·(6 + 8) = 280; reference + RM + critic values
    # 2N·14·3 = 840; PPO, 1 epoch: 6N·14·2 (policy + critic) = 1680 → 2800
    assert iteration_flops(10, 2, 3, 4, 1, critic=True) == 2800
    assert iteration_flops(10, 2, 3, 4, 1, critic=False) == 280 + 2 * 10 * 14 * 2 + 6 * 10 * 14


def test_device_mode_runs_on_the_cpu(tiny_dir, capsys):
    rows = run("cpu", "tiny", 1, "bf16", 1.0, str(tiny_dir), "builtin:concise")
    assert [r["row"] for r in rows] == ["blendrl PPO, 1 epoch", "blendrl PPO, 4 epochs", "blendrl RLOO (8×2)",
                                        "blendrl RLOO (8×2), vLLM engine"]  # set-up makes .venv-vllm
    assert all(r["s_per_iter"] > 0 and r["tokens_per_s"] > 0 and 0 < r["mfu"] for r in rows)
    assert "| blendrl PPO, 1 epoch |" in capsys.readouterr().out
