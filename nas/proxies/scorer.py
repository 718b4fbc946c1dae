"""Score search configs with a proxy: what the zero-shot strategies are given.

The strategies stay torch-free: :func:`nas.search.run_search` builds a :class:`ProxyScorer` from
the search's own context (space, fixed choices, task, seed) and hands it to the strategy as
``score(config, proxy) -> float``. Every candidate is scored on the *same* minibatch (the first
``batch_size`` training images of a permutation seeded by the search seed, at the candidate's
resolution), so scores compare across candidates. The scorer keeps the seconds it spent
(building models and running proxies, wall-clock on the driver) so a search can charge them to
its compute, and caches scores so a candidate asked about twice costs once.

It holds only the picklable trial context and floats: Ray Tune pickles its searcher, and
models are never pickled.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import torch

from . import check_proxy, score_model

BATCH = 32


def minibatch(dataset: Any, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` items of ``dataset`` picked by a permutation seeded with ``seed``, stacked."""
    picks = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:size]
    items = [dataset[int(i)] for i in picks]
    return (torch.stack([image for image, _ in items]),
            torch.as_tensor([int(label) for _, label in items]))


class ProxyScorer:
    """``scorer(config, proxy)``: the proxy score of the candidate a search config names."""

    def __init__(self, context: Any, batch_size: int = BATCH) -> None:
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {batch_size}")
        self.context, self.batch_size = context, batch_size
        self.seconds = 0.0
        self.calls = 0
        self.cache: dict[str, float] = {}

    def __call__(self, config: Mapping[str, Any], proxy: str) -> float:
        from nas.trial import architecture, task_of

        key = json.dumps([proxy, dict(config)], sort_keys=True)
        if key in self.cache:
            return self.cache[key]
        check_proxy(proxy)
        start = time.perf_counter()
        seed = self.context.search.seed
        task = task_of(self.context)
        arch = architecture(self.context, dict(config))
        data = task.data(arch.resolution)
        images, labels = minibatch(data.train, self.batch_size, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = task.model(arch, data)
        value = score_model(proxy, model, images, labels, seed)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        self.cache[key] = value
        return value


class ProxyOf:
    """``f(config)``: the score by proxy ``proxy`` through ``scorer`` (what evolution's late
    climb takes; picklable, as Tune pickles the searcher)."""

    def __init__(self, scorer: ProxyScorer, proxy: str) -> None:
        check_proxy(proxy)
        self.scorer, self.proxy = scorer, proxy

    def __call__(self, config: Mapping[str, Any]) -> float:
        return self.scorer(config, self.proxy)
