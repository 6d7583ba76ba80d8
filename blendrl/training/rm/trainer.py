"""The reward-model trainer: pairs → scores → recipe loss (+ contrastive term) → optimizer step.

One step (:meth:`RMTrainer.train_step`; :meth:`RMTrainer.step` for the run loop) takes ``train.batch_size`` pairs
in a fixed per-epoch order (seeded, so a resumed run sees exactly the same batches), accumulates the loss over
micro-batches, clips and steps. MetaRM (:mod:`blendrl.training.rm.metarm`) overrides :meth:`RMTrainer.gradient`
around the same pieces.

Scorers turn token lists into ``(scores (B,), hidden (B, H))`` at the last real token:
:class:`ModelScorer` runs the backbone (full / LoRA training); :class:`CachedFeatureScorer` (``model.trainable:
head``) runs the frozen backbone once per conversation and trains only the score head.
"""
from __future__ import annotations

import math

import torch

from ...config.rm_schema import RMRunConfig
from ...data.pair_encoding import EncodedPairs, pad_right
from ...data.prompts import epoch_batch
from ...functional.rm_losses import simcse_loss, swav_loss
from ...models.heads import last_token_hidden, score_head
from ..engine import LocalEngine
from ..trainer import StepOutput
from .recipes import RECIPES, prepare_pairs


class ModelScorer:
    """Scores by a forward pass of the whole (trainable) model."""

    def __init__(self, model, pad_id: int, batch_size: int = 32) -> None:
        self.model, self.pad_id, self.batch_size = model, pad_id, batch_size

    def __call__(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = pad_right(seqs, self.pad_id)  # (B, L)
        hidden = last_token_hidden(self.model, ids, mask)  # (B, H)
        return score_head(self.model)(hidden)[:, 0].float(), hidden  # (B,), (B, H)

    @torch.no_grad()
    def score(self, seqs: list[list[int]]) -> torch.Tensor:
        """Eval-mode scores (B,) in batches."""
        was_training = self.model.training
        self.model.eval()
        try:
            return torch.cat([self(seqs[i: i + self.batch_size])[0] for i in range(0, len(seqs), self.batch_size)])
        finally:
            self.model.train(was_training)


class CachedFeatureScorer(ModelScorer):
    """``model.trainable: head``: last-token features of the frozen backbone, computed once per conversation."""

    def __init__(self, model, pad_id: int, batch_size: int = 32) -> None:
        super().__init__(model, pad_id, batch_size)
        self.cache: dict[tuple[int, ...], torch.Tensor] = {}

    @torch.no_grad()
    def features(self, seqs: list[list[int]]) -> torch.Tensor:
        missing = list({tuple(s) for s in seqs if tuple(s) not in self.cache})
        for i in range(0, len(missing), self.batch_size):
            chunk = missing[i: i + self.batch_size]
            ids, mask = pad_right([list(s) for s in chunk], self.pad_id)
            for key, h in zip(chunk, last_token_hidden(self.model, ids, mask)):
                self.cache[key] = h
        return torch.stack([self.cache[tuple(s)] for s in seqs])  # (B, H)

    def __call__(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.features(seqs)
        return score_head(self.model)(hidden)[:, 0].float(), hidden


def contrastive_views(hidden: torch.Tensor, n: int, representation: str) -> torch.Tensor:
    """Secrets II §3.1 representations of n pairs from hidden (2n, H) = [chosen; rejected]:
    ``pairs`` → {f_c, f_r} (2n, H); ``difference`` → {f_c − f_r, f_r − f_c} (2n, H)."""
    if representation == "pairs":
        return hidden
    diff = hidden[:n] - hidden[n:]  # (n, H)
    return torch.cat([diff, -diff])


class RMTrainer:
    """Trains ``model`` (a sequence-classification reward model) on ``train`` pairs with ``cfg``'s recipe."""

    def __init__(self, cfg: RMRunConfig, model, tokenizer, train: EncodedPairs, seed: int | None = None,
                 scorer: ModelScorer | None = None) -> None:
        self.cfg, self.model, self.tokenizer = cfg, model, tokenizer
        self.seed = cfg.train.seed if seed is None else seed
        self.pairs, self.mu, self.flipped = prepare_pairs(train, cfg.loss.recipe, cfg.loss)
        self.loss_fn = RECIPES[cfg.loss.recipe].loss_fn(cfg.loss)
        head_only = cfg.model.trainable == "head"
        if head_only:
            for p in model.parameters():
                p.requires_grad_(False)
            for p in score_head(model).parameters():
                p.requires_grad_(True)
        self.scorer = scorer or (CachedFeatureScorer if head_only else ModelScorer)(
            model, tokenizer.pad_token_id, cfg.eval.batch_size)
        t = cfg.train
        self.steps_per_epoch = math.ceil(len(self.pairs) / t.batch_size)
        self.total_steps = t.epochs * self.steps_per_epoch
        self.prototypes = None  # SwAV's K learnable prototypes, trained with the model (kept in the trainer state)
        trained = model
        if cfg.contrastive.kind == "swav":
            g = torch.Generator().manual_seed(self.seed)
            k, h = cfg.contrastive.prototypes, model.config.hidden_size
            self.prototypes = torch.nn.Embedding(k, h, _weight=torch.randn(k, h, generator=g))
            trained = torch.nn.ModuleList([model, self.prototypes])
        self.engine = LocalEngine(trained, t.lr, t, self.total_steps)
        self.iteration = 0  # optimizer steps taken

    @property
    def done(self) -> bool:
        return self.iteration >= self.total_steps

    def batch_indices(self, step: int) -> list[int]:
        """Pairs of optimizer step ``step`` (:func:`~blendrl.data.prompts.epoch_batch`)."""
        return epoch_batch(len(self.pairs), self.cfg.train.batch_size, self.seed, step)

    def pair_loss(self, idx: list[int]) -> tuple[torch.Tensor, dict]:
        """Recipe loss (+ β·SimCSE over a second dropout view) on pairs ``idx``, with batch statistics."""
        n = len(idx)
        seqs = [self.pairs.chosen[i] for i in idx] + [self.pairs.rejected[i] for i in idx]
        scores, hidden = self.scorer(seqs)  # (2n,), (2n, H)
        chosen, rejected = scores[:n], scores[n:]
        mu = self.mu[idx] if self.mu is not None else None
        loss = self.loss_fn(chosen, rejected, mu)
        stats = {"loss/rm": loss.item(), "train/accuracy": (chosen > rejected).float().mean().item(),
                 "train/margin": (chosen - rejected).mean().item()}
        c = self.cfg.contrastive
        if c.kind != "none":
            _, hidden2 = self.scorer(seqs)  # another dropout mask
            views = contrastive_views(hidden, n, c.representation), contrastive_views(hidden2, n, c.representation)
            if c.kind == "simcse":
                cl = simcse_loss(*views, c.tau)
            else:
                cl = swav_loss(*views, self.prototypes.weight, c.tau, c.sinkhorn_eps, c.sinkhorn_iters)
            loss = loss + c.beta * cl
            stats["loss/contrastive"] = cl.item()
        stats["loss/total"] = loss.item()
        return loss, stats

    def accumulate(self, idx: list[int]) -> dict:
        """Backward of the batch loss over micro-batches (each weighted by its share of pairs). Returns stats."""
        sums: dict[str, float] = {}
        for start in range(0, len(idx), self.cfg.train.micro_batch_size):
            micro = idx[start: start + self.cfg.train.micro_batch_size]
            loss, stats = self.pair_loss(micro)
            weight = len(micro) / len(idx)
            self.engine.backward(loss * weight)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v * weight
        return sums

    def gradient(self, idx: list[int]) -> dict:
        """Leave the gradient of the step's loss on pairs ``idx`` in ``.grad``; return statistics. The seam that
        MetaRM overrides."""
        return self.accumulate(idx)

    def train_step(self) -> dict:
        """One optimizer step on the next batch. Returns its metrics."""
        self.model.train(self.cfg.model.trainable != "head")
        lr = self.engine.lr
        stats = self.gradient(self.batch_indices(self.iteration))
        stats["grad_norm"] = self.engine.step(all(math.isfinite(v) for k, v in stats.items() if k.startswith("loss/")))
        self.iteration += 1
        return {**stats, "lr": lr, "epoch": (self.iteration - 1) // self.steps_per_epoch}

    def step(self) -> StepOutput:
        """:meth:`train_step` as the run loop takes it (:mod:`blendrl.training.driver`)."""
        return StepOutput(self.train_step())

    @torch.no_grad()
    def score_pairs(self, enc: EncodedPairs) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode scores of every pair's chosen and rejected side: (N,), (N,)."""
        if hasattr(self.scorer, "register"):  # a segment scorer finds the new conversations' segments first
            self.scorer.register(enc)
        return self.scorer.score(enc.chosen), self.scorer.score(enc.rejected)

    def state_dict(self) -> tuple[dict, dict]:
        trainer = {"step": self.iteration, "seed": self.seed, "torch_rng": torch.get_rng_state()}
        if self.prototypes is not None:
            trainer["prototypes"] = self.prototypes.weight.detach().clone()
        return trainer, {"engines": {"model": self.engine.state_dict()}}

    def load_state_dict(self, trainer: dict, optim: dict) -> None:
        self.iteration = trainer["step"]
        torch.set_rng_state(trainer["torch_rng"])
        if self.prototypes is not None:
            with torch.no_grad():
                self.prototypes.weight.copy_(trainer["prototypes"])
        self.engine.load_state_dict(optim["engines"]["model"])
