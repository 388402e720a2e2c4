"""Feature caching on a loaded transformer, switched per batch, with diffusers' own hooks.

A level's `feature_cache` (`argus.config.parse_feature_cache`: "fbc:0.08", "taylorseer:3:2")
becomes a diffusers hook config (`FirstBlockCacheConfig`, `TaylorSeerCacheConfig`) applied with
diffusers' `apply_first_block_cache` / `apply_taylorseer_cache` and removed by hook name.
Switching only moves hooks: no weights are loaded (benchmarks/feature_cache.py measures it).

NOTE: not `CacheMixin.enable_cache`: `SD3Transformer2DModel` does not inherit `CacheMixin` in
diffusers 0.42.1, although its `JointTransformerBlock` is registered with the hooks; the
`apply_*` functions work on any transformer, so both families take the same path.

NOTE: a dynamic cache decides per forward for the whole batch (FBC compares the batch's mean
residual change), so with a feature cache an image depends on its batch-mates, not only on its
seed; without one, nothing changes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from diffusers.hooks import (
    FirstBlockCacheConfig,
    HookRegistry,
    TaylorSeerCacheConfig,
    apply_first_block_cache,
    apply_taylorseer_cache,
)
from diffusers.hooks.first_block_cache import _FBC_BLOCK_HOOK, _FBC_LEADER_BLOCK_HOOK
from diffusers.hooks.hooks import CacheContext, _set_cache_context
from diffusers.hooks.taylorseer_cache import _TAYLORSEER_CACHE_HOOK

from argus.config import parse_feature_cache


@dataclass
class CacheState:
    """Which feature cache a pipeline's transformer carries now."""

    spec: str = ""
    switches: int = 0
    """Times the hooks were changed (a measure of level churn on this worker)."""


def hook_config(spec: str) -> FirstBlockCacheConfig | TaylorSeerCacheConfig:
    """The diffusers config a (validated) spec stands for."""
    kind, params = parse_feature_cache(spec)
    if kind == "fbc":
        return FirstBlockCacheConfig(threshold=params[0])
    interval, warmup = int(params[0]), int(params[1])
    # float32 factors: CPU bfloat16 extrapolation drifts visibly on small models.
    return TaylorSeerCacheConfig(cache_interval=interval, disable_cache_before_step=warmup,
                                 taylor_factors_dtype=torch.float32)


HOOK_NAMES = {"fbc": (_FBC_LEADER_BLOCK_HOOK, _FBC_BLOCK_HOOK),
              "taylorseer": (_TAYLORSEER_CACHE_HOOK,)}
"""The hooks each kind registers (what `CacheMixin.disable_cache` removes)."""


def _enable(transformer: torch.nn.Module, spec: str) -> None:
    config = hook_config(spec)
    if isinstance(config, FirstBlockCacheConfig):
        apply_first_block_cache(_fbc_blocks(transformer), config)
    else:
        apply_taylorseer_cache(transformer, config)
    # New block hooks stale the registry's child cache (as `enable_cache` does).
    HookRegistry.check_if_exists_or_initialize(transformer).invalidate_child_registries_cache()


class _BlocksView(torch.nn.Module):
    """The transformer's blocks but the last, as FBC sees them (the blocks are shared)."""

    def __init__(self, blocks: list[torch.nn.Module]) -> None:
        super().__init__()
        self.transformer_blocks = torch.nn.ModuleList(blocks)


def _fbc_blocks(transformer: torch.nn.Module) -> torch.nn.Module:
    """What FBC is applied to. SD3's last joint block returns no text stream
    (`context_pre_only`), which FBC's tail hook of diffusers 0.42.1 cannot subtract from, so on
    SD3 FBC spans the other blocks and the last one always runs."""
    blocks = getattr(transformer, "transformer_blocks", None)
    if blocks is None or not getattr(blocks[-1], "context_pre_only", False):
        return transformer
    return _BlocksView(list(blocks)[:-1])


def _disable(transformer: torch.nn.Module, spec: str) -> None:
    registry = HookRegistry.check_if_exists_or_initialize(transformer)
    for name in HOOK_NAMES[parse_feature_cache(spec)[0]]:
        registry.remove_hook(name, recurse=True)
    registry.invalidate_child_registries_cache()


def use(transformer: torch.nn.Module, state: CacheState, spec: str) -> float:
    """Make `transformer` carry the feature cache `spec` ("" = none) with fresh state for a new
    generation; returns the milliseconds spent switching hooks (0 when unchanged)."""
    if spec == state.spec:
        if spec:  # a new generation must not compare against the last one's residuals
            HookRegistry.check_if_exists_or_initialize(transformer).reset_stateful_hooks()
        return 0.0
    start = time.perf_counter()
    if state.spec:
        _disable(transformer, state.spec)
    if spec:
        _enable(transformer, spec)
    state.spec = spec
    state.switches += 1
    return (time.perf_counter() - start) * 1e3


@dataclass
class Counter:
    count: int = 0
    """Denoising steps whose transformer ran in full (its last attention was computed)."""


def _last_query(transformer: torch.nn.Module) -> torch.nn.Module:
    """The last block's attention query projection: every cache that skips work skips it (FBC
    and MagCache skip whole blocks, TaylorSeer predicts attention outputs)."""
    blocks = _fbc_blocks(transformer)  # on SD3, not the last block: it never skips under FBC
    queries = [m for name, m in blocks.named_modules() if name.endswith("attn.to_q")]
    if not queries:
        raise ValueError(f"{type(transformer).__name__} has no attention blocks to count")
    return queries[-1]


@contextmanager
def counting(transformer: torch.nn.Module, state: CacheState) -> Iterator[Counter]:
    """Count full transformer forwards, one per denoising step (CFG's two branches run as one
    batched call); with a cache on, run inside the cache context its hooks need."""
    counter = Counter()

    def seen(*_: object) -> None:
        counter.count += 1

    handle = _last_query(transformer).register_forward_hook(seen)
    if state.spec:  # the hooks keep their state per named context
        _set_cache_context(transformer, CacheContext("cond"))
    try:
        yield counter
    finally:
        handle.remove()
        if state.spec:
            _set_cache_context(transformer, None)
