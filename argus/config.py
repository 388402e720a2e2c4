"""The one typed configuration object of Argus.

A deployment is described by one YAML or TOML file: the model variants, the approximation levels
built from them, and one section per subsystem. `load_config_file()` validates it and fails with
a message naming the offending field. Environment overrides are read here and nowhere else.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENV_CACHE_DIR = "ARGUS_CACHE_DIR"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariantConfig(_Section):
    """One model variant: a set of weights the workers can load."""

    name: str = Field(min_length=1)
    """Unique name, used by `model=` in requests and by levels."""
    source: str = Field(min_length=1)
    """Local diffusers folder, hub id, `builtin:<name>` (shipped weights) or `random:<arch>`."""
    default_steps: int = Field(ge=1, le=1000)
    """Denoising steps of this variant's full-quality generation."""
    resolution: int = Field(ge=8, le=4096)
    """Native square output size in pixels."""
    guidance_scale: float = Field(default=3.0, ge=0.0)
    """Classifier-free guidance weight (<= 1 disables guidance)."""
    scheduler: Literal["ddim", "euler", "dpm"] = "ddim"
    """Sampler family; a fresh instance is built for every generation."""
    eta: float = Field(default=0.0, ge=0.0, le=1.0)
    """DDIM stochasticity: 0 = deterministic DDIM; 1 = ancestral (DDPM-like) steps, fresh noise
    each step drawn from the request's seed. Noise corrects a weak model's early mistakes
    (docs/shapes.md). `scheduler: ddim` only."""
    load_time_s: float = Field(default=0.0, ge=0.0)
    """Measured time to load the weights onto a worker (a switch costs this)."""
    memory_gb: float = Field(default=0.0, ge=0.0)
    """Measured resident memory of the loaded pipeline."""

    @model_validator(mode="after")
    def _eta_needs_ddim(self) -> VariantConfig:
        if self.eta > 0 and self.scheduler != "ddim":
            raise ValueError(f"eta ({self.eta}) needs scheduler ddim, not {self.scheduler}")
        return self


FEATURE_CACHES = {"fbc": (float,), "taylorseer": (int, int)}
"""Feature-cache kinds and their parameters: `fbc:THRESHOLD` (diffusers' First-Block-Cache:
skip the other blocks while the first block's residual changes by less than THRESHOLD,
relative) and `taylorseer:INTERVAL:WARMUP` (TaylorSeer: compute every INTERVAL-th step after
WARMUP full steps, extrapolate attention outputs in between)."""


def parse_feature_cache(spec: str) -> tuple[str, tuple[float, ...]]:
    """("fbc", (0.08,)) from "fbc:0.08"; ("", ()) from ""; ValueError naming the problem."""
    if not spec:
        return "", ()
    kind, *raw = spec.split(":")
    if kind not in FEATURE_CACHES:
        raise ValueError(f"unknown feature cache {kind!r}; choose one of {sorted(FEATURE_CACHES)}")
    types = FEATURE_CACHES[kind]
    if len(raw) != len(types):
        raise ValueError(f"feature cache {spec!r}: {kind} takes {len(types)} parameter(s)")
    try:
        params = tuple(float(t(v)) for t, v in zip(types, raw, strict=True))
    except ValueError:
        raise ValueError(f"feature cache {spec!r}: parameters must be {types}") from None
    if any(p <= 0 for p in params[:1]) or any(p < 0 for p in params):
        raise ValueError(f"feature cache {spec!r}: parameters must be positive")
    return kind, params


class LevelConfig(_Section):
    """One approximation level = (variant, steps, cache skip K, feature cache)."""

    name: str = Field(min_length=1)
    variant: str = Field(min_length=1)
    steps: int = Field(ge=1, le=1000)
    cache_k: int = Field(default=0, ge=0)
    """Steps skipped by starting from a cached latent (0: no cache reuse)."""
    feature_cache: str = ""
    """Transformer feature cache applied to this level's batches (`parse_feature_cache`; ""
    none). Switched per batch on a loaded model: no load cost. Transformer variants only."""

    @model_validator(mode="after")
    def _k_below_steps(self) -> LevelConfig:
        if self.cache_k >= self.steps:
            raise ValueError(f"cache_k ({self.cache_k}) must be < steps ({self.steps})")
        parse_feature_cache(self.feature_cache)
        return self


# The level type shared by the control plane, the runtime and the simulator.
Level = LevelConfig


class ApiKeyConfig(_Section):
    """Who an API key (`server.api_keys`, by its SHA-256 digest) speaks for."""

    tenant: str = Field(min_length=1, max_length=256)
    """Its requests, images and cache entries belong to this tenant (the `user` field is then
    only a label)."""
    admin: bool = False
    """May see every tenant's request ids in /v1/cluster and cancel any request."""


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=256)
    """Worker processes on this machine; each owns its pipelines."""
    threads_per_worker: int = Field(default=0, ge=0)
    """torch threads per worker; 0 = cores // workers (never oversubscribe)."""
    queue_capacity: int = Field(default=0, ge=0)
    """Images waiting per dispatcher before 429 (a request wider than it still queues alone);
    0 = what the workers can serve within one SLO at the fastest level (at least 64). Admission
    rejects what cannot finish in time anyway: this bounds memory, not the promise."""
    max_batch: int = Field(default=8, ge=1)
    """Most requests the dispatcher hands one worker at once (the plane may give fewer)."""
    runtime: str = "local"
    """Worker-pool backend by name (`local` processes; `ray` actors on a Ray cluster)."""
    ray_address: str = ""
    """With `runtime: ray`: the cluster to join (`auto`, `ray://host:10001`, `host:6379`); ""
    starts a local Ray instance in the server process."""
    worker_stall_s: float = Field(default=600.0, gt=0.0)
    """A busy worker silent this long (no step, no result) is hung: it is restarted and its
    requests are retried like a crash's. Must exceed the slowest step and variant load."""
    boot_wait_s: float = Field(default=120.0, gt=0.0)
    """A request arriving before any worker has loaded its variant waits this long at the door
    (its SLO clock starts once a worker can serve), then gets 503 + Retry-After."""
    max_prompt_chars: int = Field(default=2000, ge=1)
    max_n: int = Field(default=4, ge=1)
    max_size: int = Field(default=1024, ge=8)
    slo_s: float = Field(default=0.0, ge=0.0)
    """Per-request latency deadline; 0 = slo_multiplier x the full level's batch-1 time."""
    slo_multiplier: float = Field(default=5.0, gt=0.0)
    response_margin_s: float = Field(default=0.1, ge=0.0)
    """Kept for answering (encoding and sending the image): the control plane plans each
    request to finish this long before its SLO ends, so the client sees it in time."""
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    """Base URL of the image links in responses (`response_format: url`), e.g. the address of a
    proxy in front of Argus; None: the address the server is bound to (never the client's
    `Host` header)."""
    max_body_bytes: int = Field(default=1024**2, ge=1024)
    """Largest request body; past this the server answers 413 (checked while the body streams,
    whatever `Content-Length` says)."""
    body_timeout_s: float = Field(default=30.0, gt=0.0)
    """A request body not complete this long after its headers gets 408 and the connection is
    closed."""
    keep_alive_s: float = Field(default=5.0, gt=0.0)
    """An idle keep-alive connection is closed after this long (uvicorn `timeout_keep_alive`)."""
    max_connections: int | None = Field(default=1000, ge=1)
    """Open connections plus running requests past which uvicorn answers 503
    (`limit_concurrency`); None: no limit."""
    backlog: int = Field(default=2048, ge=1)
    """Connections waiting to be accepted (the listen backlog)."""
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    """Largest request line plus headers (uvicorn `h11_max_incomplete_event_size`); past this
    the connection gets 400."""
    max_job_s: float = Field(default=0.0, ge=0.0)
    """Hard cap on one job's run time on a worker (variant loading excluded): past it the job is
    aborted ("exceeded the job time limit") and its worker restarted if it does not stop; 0 =
    4 x the SLO."""
    max_size_factor: float = Field(default=2.0, gt=0.0)
    """`size` may be at most this times the native resolution of the variants that may serve
    the request, per side (and at most `max_size`): 64x64 on a 32 px model."""
    api_keys: dict[str, ApiKeyConfig] = Field(default_factory=dict)
    """SHA-256 hex digest of an API key (`argus hash-key KEY`) -> its tenant. Empty: no
    authentication, the tenant is the request's `user` field. Set: every route but /health,
    /ready and /metrics needs `Authorization: Bearer KEY` (else 401)."""
    tenant_rate_rps: float = Field(default=0.0, ge=0.0)
    """Per-tenant generation requests per second (token bucket; 429 + Retry-After past it);
    0 = no limit."""
    tenant_rate_burst: int = Field(default=0, ge=0)
    """Bucket size of `tenant_rate_rps`; 0 = max(1, rate)."""
    tenant_max_queued: int = Field(default=0, ge=0)
    """Most generation requests one tenant may have queued or running (429 + Retry-After past
    it); 0 = no limit."""
    image_store_per_tenant: int = Field(default=256, ge=1)
    """Images one tenant keeps behind `response_format: url` links (each lives an hour); past
    it the tenant's own oldest is dropped, never another tenant's."""
    image_store_max_bytes: int = Field(default=512 * 1024**2, ge=1024**2)
    """Bytes of stored URL images over all tenants (plus 1 KiB each); past it expired images
    go first, then the oldest of the tenant with the most."""

    @model_validator(mode="after")
    def _key_digests(self) -> ServerConfig:
        for i, digest in enumerate(self.api_keys):
            if not re.fullmatch(r"[0-9a-f]{64}", digest):  # not echoed: it may be a raw key
                raise ValueError(
                    f"api_keys: entry {i} is not a SHA-256 hex digest (64 lowercase hex "
                    "characters): list digests, not keys (`argus hash-key KEY` prints one)"
                )
        return self


class ControlConfig(_Section):
    quality_floor: float = Field(default=0.9, gt=0.0, le=1.0)
    """Default minimum predicted relative quality per request (Argus used ~90%)."""
    planning_period_s: float = Field(default=5.0, gt=0.0)
    profile: str | None = None
    """Profile JSON for this deployment (None: the shipped one of the embedded family)."""
    predictor: str | None = None
    """Trained predictor file (`argus train-predictor`) for this profile's levels. None: the
    profile means (the `argus` policy trains one on the profile's per-prompt table, if any). The
    embedded default sets the shipped one."""
    policy: str = "argus"
    """Serving policy by registry name (`argus`, or a baseline)."""
    redirect_tolerance: float = Field(default=0.1, ge=0.0, le=1.0)
    """Under load a request may be moved to a level predicted up to this far below its floor."""
    overload_floor: float = Field(default=0.5, ge=0.0, le=1.0)
    """Degrade before drop: when the alternative is rejecting it, a request on the default floor
    may be served down to this predicted quality (a request that states its own floor keeps
    it, minus the tolerance; 1.0 turns this off)."""
    upgrade_when_idle: bool = True
    """Quality up when idle: a worker with nothing of its own queued takes queued work better
    served at its levels, and a variant's only queued request starts at its best level still in
    time. Off: requests run where admission put them (cheaper levels keep being served, e.g.
    for the audit to see them, or to leave idle GPUs idle)."""
    burst_headroom: float = Field(default=0.1, ge=0.0)
    """Share of capacity planned above the forecast arrival rate."""
    load_window_s: float = Field(default=30.0, gt=0.0)
    """Sliding window of the arrival-rate estimate."""


class CacheConfig(_Section):
    enabled: bool = True
    dir: str = ".argus-cache"
    """Where latents live; `ARGUS_CACHE_DIR` overrides it."""
    capacity_bytes: int = Field(default=512 * 1024**2, ge=0)
    shared_namespace: str | None = None
    """If set, every tenant reads and writes this one namespace (no isolation)."""
    hnsw_threshold: int = Field(default=20_000, ge=1)
    """Index entries past which a namespace switches from exact (flat) search to the approximate
    index (`index_type`), built in the background."""
    similarity_bands: list[tuple[float, int]] = Field(
        default=[(0.95, 25), (0.90, 20), (0.85, 15), (0.75, 10), (0.65, 5)]
    )
    """(min cosine similarity, K of `band_steps`), NIRVANA's published bands."""
    band_steps: int = Field(default=50, ge=1)
    """Step count the bands' K refer to; K scales to a variant's steps as K * steps / band_steps."""
    top_k: int = Field(default=8, ge=1, le=256)
    """Nearest entries examined per lookup (the next one serves if the best is corrupt)."""
    hnsw_m: int = Field(default=16, ge=4, le=128)
    """HNSW graph degree once a namespace passes `hnsw_threshold`."""
    hnsw_ef_search: int = Field(default=64, ge=1)
    """HNSW search breadth: higher = better recall, slower lookups."""
    hnsw_ef_construction: int = Field(default=40, ge=8)
    """HNSW build breadth: higher = better recall at the same lookup cost, slower (off-path)
    rebuilds (200k random 96-d vectors: 40 -> recall@1 0.89, 100 -> 0.98, 2.4x build time)."""
    index_type: Literal["ivf", "hnsw"] = "ivf"
    """Approximate index past `hnsw_threshold`: `ivf` (IVF-flat, lists retrained in the
    background as the namespace grows; 1M random 96-d vectors: recall@1 0.999 at nprobe 16) or
    `hnsw` (`hnsw_*` knobs; recall@1 0.56 at 1M with the defaults). docs/cache.md has the table."""
    ivf_nprobe: int = Field(default=16, ge=1)
    """IVF lists scanned per lookup: higher = better recall, slower lookups."""
    ivf_nlist: int = Field(default=0, ge=0)
    """IVF lists; 0 = 4·sqrt(entries) rounded to a power of two at each (re)build."""
    index_buffer: int = Field(default=4096, ge=1)
    """Newest entries searched exactly before a background merge moves them into the
    approximate index (inserts never wait for the index)."""
    store_queue: int = Field(default=256, ge=1)
    """Pending asynchronous stores; past this new stores are dropped (and counted)."""


class RoutingConfig(_Section):
    enabled: bool = False
    cloud_url: str | None = None
    """OpenAI-compatible images endpoint base URL of the cloud tier."""
    cloud_model: str | None = None
    budget: float = Field(default=0.5, ge=0.0, le=1.0)
    """Maximum share of requests sent to the cloud over the window."""
    window_requests: int = Field(default=100, ge=1)
    """Sliding window: any this many consecutive decisions of a tenant hold at most
    floor(budget x window_requests) cloud calls."""
    tenant_budgets: dict[str, float] = Field(default_factory=dict)
    """Per-tenant cap overriding `budget` (a request may also carry its own cap)."""
    predictor: str | None = None
    """Trained PRS predictor JSON (`argus route-eval --save-predictor`); None: no routing."""
    metric_weights: dict[str, float] | None = None
    """PRS weight per metric name (None: equal weights)."""
    gamma: float = Field(default=1.0, gt=0.0)
    """PRS temperature: metric gaps are compared on the scale gamma x mean gap."""
    timeout_s: float = Field(default=30.0, gt=0.0)
    """Per-attempt timeout of a cloud call; a slower cloud falls back to the edge."""
    retries: int = Field(default=2, ge=0)
    """Extra attempts after a failed cloud call (exponential backoff between them)."""
    backoff_s: float = Field(default=0.2, ge=0.0)
    breaker_failures: int = Field(default=3, ge=1)
    """Consecutive failed calls that open the circuit breaker (cloud skipped while open)."""
    breaker_reset_s: float = Field(default=30.0, gt=0.0)
    """Seconds an open breaker waits before letting one trial call through."""
    cost_per_call: float = Field(default=0.0, ge=0.0)


class AuditConfig(_Section):
    """Online quality audit of served images and recalibration of the predictor (`argus.audit`,
    docs/audit.md). Cheap by default: a 5% sample, at most `budget_per_min` audits a minute."""

    enabled: bool = True
    scorer: str | None = None
    """Scorer spec (`shapes`, `clip:<model>`, `multi:<model>`; `argus.scorers.make_scorer`).
    None: `shapes` when every variant is a shipped shapes model, else the audit is off."""
    share: float = Field(default=0.05, ge=0.0, le=1.0)
    """Share of completed requests whose first image is audited."""
    stale_s: float = Field(default=60.0, gt=0.0)
    """A level not audited for this long has its next served image audited, whatever `share`."""
    budget_per_min: float = Field(default=12.0, ge=0.0)
    """Audits started per minute at most: each scores two images and runs one full-level
    reference generation through the runtime. Samples past the budget are dropped."""
    queue: int = Field(default=8, ge=1)
    """Pending audits; a sample that finds the queue full is dropped (serving never waits)."""
    reference_max_queued: int = Field(default=0, ge=0)
    """A reference generation is submitted only while at most this many requests are queued
    (spare capacity only; a reference that waits past the SLO is dropped)."""
    window: int = Field(default=40, ge=2)
    """Recent audited samples per level that the stats, the alarm and the refit look at."""
    min_samples: int = Field(default=5, ge=1)
    """Samples a level needs before it can alarm or be recalibrated."""
    drift_threshold: float = Field(default=0.1, gt=0.0)
    """|mean measured - mean predicted| relative quality above which a level drifts."""
    alarm_after_s: float = Field(default=20.0, ge=0.0)
    """The gap must hold this long before the drift alarm fires (one noisy sample must not)."""
    alarm_idle_s: float = Field(default=300.0, gt=0.0)
    """A raised alarm clears (logged as idle) when its level gets no audited sample this long:
    a level the planner stopped serving, e.g. after a refit lowered its prediction, gives no
    evidence either way, and a stale alarm would hide the next real one."""
    recalibrate: bool = True
    """Refit the predictor's per-level offsets from audited samples."""
    max_step: float = Field(default=0.1, gt=0.0)
    """Largest change of one level's offset per refit (one bad batch cannot swing it)."""
    max_offset: float = Field(default=0.5, gt=0.0)
    """Offsets are clamped to +-this."""
    offsets: dict[str, float] = Field(default_factory=dict)
    """Per-level offsets added to the predictor's output at start (a previous refit's, or a
    deliberate miscalibration to test the audit with)."""


class ArgusConfig(_Section):
    """Everything a deployment needs; one instance is passed everywhere."""

    variants: list[VariantConfig] = Field(min_length=1)
    levels: list[LevelConfig] = Field(min_length=1)
    server: ServerConfig = ServerConfig()
    control: ControlConfig = ControlConfig()
    cache: CacheConfig = CacheConfig()
    routing: RoutingConfig = RoutingConfig()
    audit: AuditConfig = AuditConfig()

    @model_validator(mode="after")
    def _cross_check(self) -> ArgusConfig:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variants: duplicate name in {names}")
        level_names = [lv.name for lv in self.levels]
        if len(set(level_names)) != len(level_names):
            raise ValueError(f"levels: duplicate name in {level_names}")
        for i, level in enumerate(self.levels):
            if level.variant not in names:
                raise ValueError(f"levels.{i}.variant: unknown variant {level.variant!r}")
        for name in self.audit.offsets:
            if name not in level_names:
                raise ValueError(f"audit.offsets: unknown level {name!r}")
        return self

    def variant(self, name: str) -> VariantConfig:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"unknown variant {name!r}")

    def level(self, name: str) -> LevelConfig:
        for lv in self.levels:
            if lv.name == name:
                return lv
        raise KeyError(f"unknown level {name!r}")

    @property
    def cache_dir(self) -> Path:
        return Path(os.environ.get(ENV_CACHE_DIR) or self.cache.dir)


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the field."""


def _format_validation_error(err: ValidationError, origin: str) -> str:
    lines = [f"invalid config {origin}:"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "<root>"
        lines.append(f"  {field}: {e['msg']}")
    return "\n".join(lines)


def parse_config(data: dict, origin: str = "<dict>") -> ArgusConfig:
    try:
        return ArgusConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, origin)) from None


def load_config_file(path: str | Path) -> ArgusConfig:
    """Load and validate a YAML/TOML config file (`argus.defaults.load_config` also takes None
    for the embedded default)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot parse config {path}: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {path}: top level must be a mapping")
    return parse_config(_beside(data, path.parent), str(path))


def _beside(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """`control.profile` / `control.predictor` given as paths relative to the config file (a
    file there, not a built-in name) resolve against its folder, wherever the server starts."""
    control = data.get("control")
    if not isinstance(control, dict):
        return data
    files = {key: str(folder / value) for key in ("profile", "predictor")
             if isinstance(value := control.get(key), str) and not Path(value).is_absolute()
             and (folder / value).is_file()}
    return {**data, "control": {**control, **files}} if files else data
