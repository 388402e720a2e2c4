"""The approximate cache in the live server: the runtime's `CacheHook` (contract D).

The dispatcher calls it at three points, all on the API process' event loop:
- `annotate` before admission: probe the cache so the control plane sees the request's
  `cache_similarity` when it predicts each level's quality;
- `prepare` at dispatch, once the level is known: an exact repeat (same prompt, negative
  prompt, seed, variant, resolution, guidance) resumes from its entry's deepest stored step at the
  variant's full step count whatever the level; a similar prompt resumes at its band's K, capped
  by the level's `cache_k` (0 on levels without caching, so pinned/high-quality requests never get
  a similar-prompt latent); a miss asks the worker to capture the band steps of its N;
- `store` after completion: the captured latents go to the cache's background writer.

Workers never touch the cache: latents travel in `Job.start_latents` and `JobDone.captured`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from argus.cache.cache import ApproximateCache, CacheHit, EmbedderNotReady, EmbedFn, Generation
from argus.config import ArgusConfig, LevelConfig, VariantConfig

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from argus.runtime.base import CacheInfo, GenerationRequest
    from argus.runtime.messages import Job, JobDone
    from argus.types import Request

log = logging.getLogger(__name__)

_PENDING_PROBES = 4096  # probes of requests admitted but not yet dispatched


def embedding_variant(config: ArgusConfig) -> VariantConfig:
    """The variant whose text encoder embeds prompts for the cache: the one the cache levels
    use (else the first level's). One encoder for all partitions keeps similarities comparable."""
    cached = [lv for lv in config.levels if lv.cache_k > 0]
    return config.variant((cached or config.levels)[0].variant)


def text_encoder_embed_fn(variant: VariantConfig) -> EmbedFn:
    """The engine's `embed_prompts` over this variant's pipeline, loaded in this process (slow:
    imports torch and diffusers; `BackgroundEmbedder` keeps it off the startup path)."""
    import torch

    from argus.engine import embed_prompts, load_pipeline

    # The API process only embeds prompts; one thread leaves the cores to the workers.
    torch.set_num_threads(1)
    pipe = load_pipeline(variant)

    def embed(prompts: Sequence[str]) -> np.ndarray:
        return embed_prompts(pipe, prompts)

    return embed


class BackgroundEmbedder:
    """An `EmbedFn` whose encoder loads on a thread, so the server starts at once. Until it is
    ready, calls raise `EmbedderNotReady`: lookups then see exact repeats only, stores are
    dropped (counted)."""

    def __init__(self, load: Callable[[], EmbedFn]) -> None:
        self._load = load
        self._embed: EmbedFn | None = None
        self._done = threading.Event()
        threading.Thread(target=self._run, name="argus-cache-embedder", daemon=True).start()

    def _run(self) -> None:
        try:
            self._embed = self._load()
        except Exception:  # the server still serves, without similarity lookups
            log.exception("cache: cannot load the text encoder; similarity lookups disabled")
        finally:
            self._done.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """True once the encoder is loaded (False on timeout or failure)."""
        self._done.wait(timeout_s)
        return self._embed is not None

    def __call__(self, prompts: Sequence[str]) -> np.ndarray:
        if self._embed is None:
            raise EmbedderNotReady("the cache's text encoder is still loading")
        return self._embed(prompts)


class CacheServing:
    """Implements the dispatcher's `CacheHook` over an `ApproximateCache`."""

    def __init__(self, config: ArgusConfig, cache: ApproximateCache) -> None:
        self.config = config
        self.cache = cache
        self._probes: OrderedDict[str, tuple[Generation, CacheHit | None]] = OrderedDict()

    # -- before admission ---------------------------------------------------------------------

    def annotate(self, request: Request, spec: GenerationRequest) -> None:
        try:
            self._annotate(request, spec)
        except Exception:  # the cache must never fail a request: admit it as a miss
            log.exception("cache: annotate failed for %s", request.request_id)

    def _annotate(self, request: Request, spec: GenerationRequest) -> None:
        variant = self._likely_variant(spec)
        size = spec.width or variant.resolution
        if not self.cache.config.enabled or (spec.height or variant.resolution) != size or (
                spec.edit is not None):  # an edit's latents are not its prompt's
            return
        generation = Generation(
            prompt=spec.prompt,
            tenant=request.tenant,
            variant=variant.name,
            resolution=size,
            steps=spec.pinned_steps or variant.default_steps,
            seed=spec.seed,
            guidance=variant.guidance_scale if spec.guidance_scale is None
            else spec.guidance_scale,
            negative_prompt=spec.negative_prompt,
        )
        hit = self.cache.probe(generation)
        request.cache_similarity = (
            hit.similarity if hit is not None else self.cache.nearest_similarity(generation)
        )
        self._probes[request.request_id] = (generation, hit)
        while len(self._probes) > _PENDING_PROBES:  # rejected requests never reach `prepare`
            self._probes.popitem(last=False)

    def _likely_variant(self, spec: GenerationRequest) -> VariantConfig:
        if spec.pinned_variant is not None:
            return self.config.variant(spec.pinned_variant)
        return embedding_variant(self.config)

    # -- at dispatch ----------------------------------------------------------------------------

    def prepare(self, request: Request, job: Job, level: LevelConfig) -> tuple[Job, CacheInfo]:
        from argus.runtime.base import CacheInfo

        probed = self._probes.pop(request.request_id, None)
        if not self.cache.config.enabled or job.width != job.height or job.edit is not None:
            return job, CacheInfo(similarity=request.cache_similarity)
        try:
            return self._prepare(request, job, level, probed)
        except Exception:  # the cache must never fail a request: serve it from noise
            log.exception("cache: prepare failed for %s", request.request_id)
            return job, CacheInfo(similarity=request.cache_similarity)

    def _prepare(
        self,
        request: Request,
        job: Job,
        level: LevelConfig,
        probed: tuple[Generation, CacheHit | None] | None,
    ) -> tuple[Job, CacheInfo]:
        variant = self.config.variant(level.variant)
        exact = self._exact_repeat(request, job, variant)
        if exact is not None:
            return exact
        generation = self._generation(request, job, variant.name, job.steps, job.seed)
        hit = None
        if job.n == 1 and level.cache_k > 0 and not request.no_approximation:
            if probed is not None and probed[0] == generation:
                hit = probed[1]
            else:
                hit = self.cache.probe(generation)
        hit = self.cache.accept(hit, max_k=level.cache_k)
        if hit is not None:
            resumed = dataclasses.replace(
                job, start_step=hit.k, start_latents=(hit.latents,), capture_steps=()
            )
            return resumed, _info(hit)
        for _ in range(job.n - 1):  # every image slot is one lookup
            self.cache.accept(None)
        # Every run from noise is kept, under its own step count: full-quality runs serve all
        # levels of N steps; a step-reduced level's runs serve its own repeats (the plane often
        # serves most traffic there, so storing only full runs would leave the cache empty).
        capture = tuple(self.cache.capture_steps(job.steps)) if job.start_step == 0 else ()
        return dataclasses.replace(job, capture_steps=capture), _miss_info(request)

    def _exact_repeat(
        self, request: Request, job: Job, variant: VariantConfig
    ) -> tuple[Job, CacheInfo] | None:
        """All n images stored before with these seeds: resume each from its deepest step, at
        the step count it was stored with (the variant's full count unless steps were pinned)."""
        steps_options = [job.steps]
        if request.pinned_steps is None and variant.default_steps != job.steps:
            steps_options.insert(0, variant.default_steps)
        for steps in steps_options:
            hits = []
            for i in range(job.n):
                generation = self._generation(request, job, variant.name, steps, job.seed + i)
                hit = self.cache.probe(generation)
                if hit is None or not hit.exact:
                    break
                hits.append(hit)
            else:
                k = min(hit.k for hit in hits)
                hits = [self.cache.accept(dataclasses.replace(hit, k=k)) for hit in hits]
                latents = tuple(hit.latents for hit in hits)  # type: ignore[union-attr]
                resumed = dataclasses.replace(
                    job, steps=steps, start_step=k, start_latents=latents, capture_steps=()
                )
                return resumed, _info(hits[0])  # type: ignore[arg-type]
        return None

    def _generation(
        self, request: Request, job: Job, variant: str, steps: int, seed: int
    ) -> Generation:
        return Generation(
            prompt=job.prompt,
            tenant=request.tenant,
            variant=variant,
            resolution=job.width,
            steps=steps,
            seed=seed,
            guidance=job.guidance_scale,
            negative_prompt=job.negative_prompt,
        )

    # -- after completion -----------------------------------------------------------------------

    def store(self, request: Request, job: Job, done: JobDone) -> None:
        if job.start_step != 0 or not job.capture_steps or request.level is None:
            return
        variant = self.config.level(request.level).variant
        for i, captured in enumerate(done.captured):
            if not captured:
                continue
            generation = self._generation(request, job, variant, job.steps, job.seed + i)
            try:
                self.cache.store_async(generation, captured)
            except Exception:  # losing one entry must not fail the finished request
                log.exception("cache: store failed for %s", request.request_id)


def _info(hit: CacheHit) -> CacheInfo:
    from argus.runtime.base import CacheInfo

    return CacheInfo(hit=True, k=hit.k, similarity=round(hit.similarity, 6), entry_id=hit.entry_id)


def _miss_info(request: Request) -> CacheInfo:
    from argus.runtime.base import CacheInfo

    similarity = request.cache_similarity
    return CacheInfo(similarity=None if similarity is None else round(similarity, 6))


def build_cache_hook(
    config: ArgusConfig,
    embed_fn: EmbedFn | None = None,
    registry: CollectorRegistry | None = None,
) -> CacheServing | None:
    """The server's cache hook (None when `cache.enabled` is false); loads the embedding
    variant's text encoder unless `embed_fn` is given."""
    if not config.cache.enabled:
        return None
    if embed_fn is None:
        variant = embedding_variant(config)
        embed_fn = BackgroundEmbedder(lambda: text_encoder_embed_fn(variant))
    try:
        cache = ApproximateCache(config, embed_fn, registry=registry)
    except OSError as err:  # e.g. an unwritable cache dir: serve without the cache
        log.error("cache: disabled, cannot open %s: %s", config.cache_dir, err)
        return None
    return CacheServing(config, cache)
