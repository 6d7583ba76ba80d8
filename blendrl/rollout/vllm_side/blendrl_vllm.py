"""The engine process of ``generation.backend: vllm`` (:mod:`blendrl.rollout.vllm_engines` starts it).

Run as a script by the Python of an environment that has vLLM (it imports only the standard library, torch,
safetensors and vllm, never blendrl, so vLLM's own pins need not agree with blendrl's). It connects back to the
trainer over a Unix socket (``multiprocessing.connection`` with an auth key from the environment) and serves
requests ``(op, kwargs)`` one at a time, answering ``("ok", result)`` or ``("error", traceback)``:

- ``generate``: token-id prompts, one seed per request (the same tokens whatever the batch's order or make-up),
  ``stop_token_ids`` as the only stop rule (``ignore_eos``), log-probs of the sampled tokens under
  ``softmax(logits / T)`` (``logprobs_mode="processed_logprobs"``); every answer carries the weight version the
  engine sampled with.
- ``load``: weights from a safetensors file, then the two steps vLLM's in-place reload leaves to the caller: the
  CPU build's packed copies of embedding-shaped matrices are re-packed (a tied LM head is not reloaded as a layer
  of its own and would keep the old matrix), and the prefix cache is reset (else a prompt seen before reuses KV
  computed by the old weights). ``skip`` leaves either out: only tests use it, to show the staleness is caught.
  With ``adapter`` (an engine started with ``--lora-rank``), ``path`` is a peft adapter folder instead: it is loaded
  in place under one adapter id (``load_inplace``; without it vLLM keeps an adapter it already holds under that id)
  and every later request samples through it; the prefix cache is reset the same way.
The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so killing it leaves no engine behind; it
also exits when the trainer's connection closes or the trainer dies (``PR_SET_PDEATHSIG``, set by the parent).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback


class Engine:
    def __init__(self, model: str, dtype: str, max_model_len: int, seed: int, gpu_memory_utilization: float,
                 enforce_eager: bool, lora_rank: int = 0) -> None:
        from vllm import LLM

        lora = {"enable_lora": True, "max_lora_rank": lora_rank, "max_loras": 1} if lora_rank else {}
        self.llm = LLM(model=model, dtype=dtype, max_model_len=max_model_len, seed=seed, skip_tokenizer_init=True,
                       logprobs_mode="processed_logprobs", enable_prefix_caching=True, enforce_eager=enforce_eager,
                       gpu_memory_utilization=gpu_memory_utilization, **lora)
        self.version, self.adapter = 0, None

    def generate(self, prompts: list[list[int]], seeds: list[int], temperature: float, top_p: float,
                 max_tokens: int, stop_token_ids: list[int]) -> dict:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = [SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=s, logprobs=0,
                                 stop_token_ids=stop_token_ids, ignore_eos=True, detokenize=False) for s in seeds]
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False,
                                 lora_request=self.adapter)
        tokens, logps = [], []
        for out in outs:
            c = out.outputs[0]
            ids = list(c.token_ids)
            tokens.append(ids)
            logps.append([step[t].logprob for step, t in zip(c.logprobs, ids)])
        return {"version": self.version, "tokens": tokens, "logprobs": logps}

    def load(self, path: str, version: int, skip: tuple = (), adapter: bool = False) -> dict:
        start = time.perf_counter()
        if adapter:
            from vllm.lora.request import LoRARequest

            self.adapter = LoRARequest("policy", 1, path, load_inplace="load_inplace" not in skip)
            self.llm.llm_engine.add_lora(self.adapter)  # loaded now, not at the next request
        else:
            self.llm.collective_rpc(_reload, args=(path, "repack" not in skip))
        if "reset_prefix_cache" not in skip:
            self.llm.reset_prefix_cache()
        self.version = version
        return {"version": version, "seconds": time.perf_counter() - start}

    def ping(self) -> dict:
        return {"version": self.version, "pid": os.getpid()}

    def hang(self, seconds: float) -> dict:  # tests: an engine that stops answering
        time.sleep(seconds)
        return {}


def _reload(worker, path: str, repack: bool) -> None:
    """On the engine's worker: the weights of ``path`` into the model in place, then the packed embedding-shaped
    matrices (input embedding, LM head) rebuilt from the parameters they pack."""
    from safetensors.torch import load_file
    from vllm.model_executor.layers.vocab_parallel_embedding import VocabParallelEmbedding

    runner = worker.model_runner
    runner.reload_weights(weights_iterator=iter(load_file(path).items()))
    if repack:
        for module in runner.get_model().modules():
            if isinstance(module, VocabParallelEmbedding) and hasattr(module, "quant_method"):
                module.quant_method.process_weights_after_loading(module)


class WeightSync:
    """A vLLM worker extension (``--worker-extension-cls blendrl_vllm.WeightSync``, this file's folder on
    ``PYTHONPATH``) for a ``vllm serve`` process: ``POST /collective_rpc {"method": "blendrl_load", "args":
    [path, "1"]}`` does :func:`_reload` on each worker (the HTTP route passes strings only)."""

    def blendrl_load(self, path: str, repack: str = "1") -> None:
        _reload(self, path, repack == "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--address", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--max-model-len", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.3)
    ap.add_argument("--eager", action="store_true")
    ap.add_argument("--lora-rank", type=int, default=0, help="serve a LoRA adapter of at most this rank")
    args = ap.parse_args()
    from multiprocessing.connection import Client

    conn = Client(args.address, family="AF_UNIX", authkey=bytes.fromhex(os.environ.pop("BLENDRL_VLLM_AUTHKEY")))
    start = time.perf_counter()
    try:
        engine = Engine(args.model, args.dtype, args.max_model_len, args.seed, args.gpu_memory_utilization,
                        args.eager, args.lora_rank)
        import vllm
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ok", {"startup_s": time.perf_counter() - start, "vllm": vllm.__version__, "pid": os.getpid()}))
    while True:
        try:
            op, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        if op == "close":
            conn.send(("ok", {}))
            return
        try:
            conn.send(("ok", getattr(engine, op)(**kwargs)))
        except Exception:
            conn.send(("error", traceback.format_exc()))


if __name__ == "__main__":
    sys.exit(main())
