"""Small profiles and planes shared by the control-plane tests."""

from __future__ import annotations

from argus.control.builtin import a100_sdxl, config_for_profile
from argus.control.plane import ControlPlane
from argus.control.profile import LevelProfile, Profile, VariantProfile


def two_level_profile(full_time: float = 1.0, fast_time: float = 0.5) -> Profile:
    """One variant, a full level and a 2x faster level at 90% quality; batch 1 only."""
    return Profile(
        name="two-level", hardware="test", quality_source="modelled", full_level="full",
        variants=[VariantProfile(name="v", load_time_s=10.0)],
        levels=[
            LevelProfile(name="full", variant="v", steps=10, service_time_s={1: full_time},
                         mean_quality=1.0),
            LevelProfile(name="fast", variant="v", steps=5, service_time_s={1: fast_time},
                         mean_quality=0.9),
        ],
    )


def make_plane(profile: Profile | None = None, workers: int = 4, **server: object) -> ControlPlane:
    """Default: a100-sdxl's per-level means without its per-prompt table (profile-means
    prediction, so admission tests do not depend on the trained text predictor)."""
    profile = profile or a100_sdxl(with_prompts=False)
    server = {"queue_capacity": 10_000, **server}
    config = config_for_profile(profile, server=server)
    plane = ControlPlane(config, profile, num_workers=workers)
    plane.tick(0.0)
    return plane
