"""The shapes-world model family: word-level tokenizer, architectures, diffusers-format folders.

A variant is a pixel-space text-to-image model (contract A): a small CLIPTextModel trained from
scratch, a UNet2DConditionModel working on 2x2 pixel-unshuffled images (12 channels at 16x16)
with the pooled prompt embedding as a "projection" class embedding, and a DDIM scheduler
(cosine betas, v-prediction, trailing spacing, x0 clipped).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import diffusers
import torch
from diffusers import DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

from argus.engine.random_models import PIXEL_SCHEDULER
from argus.shapes.grammar import CANVAS, GRAMMAR_WORDS, normalize

PIXEL_UNSHUFFLE = 2
MAX_TOKENS = 24  # longest grammar prompt: 19 words + BOS + EOS
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


@dataclass(frozen=True)
class Arch:
    """Sizes of one variant."""

    channels: tuple[int, int, int]
    text_dim: int
    text_layers: int = 2
    text_heads: int = 4
    unet_heads: int = 4
    norm_groups: int = 8


ARCHS: dict[str, Arch] = {
    "shapes-l": Arch(channels=(32, 64, 128), text_dim=96),
    "shapes-m": Arch(channels=(24, 48, 96), text_dim=96),
    "shapes-s": Arch(channels=(16, 32, 48), text_dim=64),
}


def arch(variant: str) -> Arch:
    if variant not in ARCHS:
        raise ValueError(f"unknown shapes variant {variant!r}; choose one of {sorted(ARCHS)}")
    return ARCHS[variant]


# --- tokenizer -----------------------------------------------------------------------------


def _base_vocab() -> dict[str, int]:
    """Byte-level characters (with and without end-of-word mark), as CLIP's BPE needs."""
    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    return vocab


def build_tokenizer() -> CLIPTokenizer:
    """A CLIP BPE tokenizer whose merges make every grammar word exactly one token.

    Merges are added greedily (the first two pieces of a word still split) with the real
    tokenizer as the oracle, so the result holds for CLIP's BPE whatever the merge interplay.
    """
    vocab = _base_vocab()
    merges: list[tuple[str, str]] = []

    def make() -> CLIPTokenizer:
        full = {**vocab, BOS: len(vocab), EOS: len(vocab) + 1}
        return CLIPTokenizer(vocab=full, merges=list(merges), model_max_length=MAX_TOKENS)

    tok = make()
    while True:
        split = [pieces for w in GRAMMAR_WORDS if len(pieces := tok.tokenize(w)) > 1]
        if not split:
            return tok
        first, second = split[0][0], split[0][1]
        merges.append((first, second))
        vocab.setdefault(first + second, len(vocab))
        tok = make()


def token_ids(tokenizer: CLIPTokenizer, prompts: list[str]) -> torch.Tensor:
    """Padded input ids (B, MAX_TOKENS), exactly as the engine tokenizes."""
    return tokenizer(
        [normalize(p) for p in prompts],
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


class FastTokenizer:
    """Word -> id lookup equal to the CLIP tokenizer on grammar prompts (training hot path)."""

    def __init__(self, tokenizer: CLIPTokenizer) -> None:
        self.tokenizer = tokenizer
        self.bos = tokenizer.convert_tokens_to_ids(BOS)
        self.eos = tokenizer.convert_tokens_to_ids(EOS)
        self.ids = {w: tokenizer.convert_tokens_to_ids(w + "</w>") for w in GRAMMAR_WORDS}

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        out = torch.full((len(prompts), MAX_TOKENS), self.eos, dtype=torch.long)
        out[:, 0] = self.bos
        for i, p in enumerate(prompts):
            ids = [self.ids[w] for w in p.split()]
            out[i, 1 : 1 + len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out


# --- models --------------------------------------------------------------------------------


def build_text_encoder(a: Arch, tokenizer: CLIPTokenizer) -> CLIPTextModel:
    eos = tokenizer.convert_tokens_to_ids(EOS)
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=a.text_dim,
        intermediate_size=4 * a.text_dim,
        num_hidden_layers=a.text_layers,
        num_attention_heads=a.text_heads,
        max_position_embeddings=MAX_TOKENS,
        bos_token_id=tokenizer.convert_tokens_to_ids(BOS),
        eos_token_id=eos,
        pad_token_id=eos,
    )
    return CLIPTextModel(config)


def build_unet(a: Arch) -> UNet2DConditionModel:
    """Levels 16/8/4; self+cross-attention at 8 and 4 and in the middle block."""
    channels = 3 * PIXEL_UNSHUFFLE**2
    return UNet2DConditionModel(
        sample_size=CANVAS // PIXEL_UNSHUFFLE,
        in_channels=channels,
        out_channels=channels,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=a.channels,
        layers_per_block=1,
        cross_attention_dim=a.text_dim,
        attention_head_dim=a.unet_heads,
        norm_num_groups=a.norm_groups,
        class_embed_type="projection",
        projection_class_embeddings_input_dim=a.text_dim,
        # FiLM: the time+prompt embedding scales and shifts every ResBlock's features, a
        # stronger conditioning than adding it (what a one-object prompt relies on).
        resnet_time_scale_shift="scale_shift",
    )


def build_scheduler() -> DDIMScheduler:
    return DDIMScheduler.from_config(PIXEL_SCHEDULER)


@dataclass
class Components:
    tokenizer: CLIPTokenizer
    text_encoder: CLIPTextModel
    unet: UNet2DConditionModel
    scheduler: DDIMScheduler


def build_components(variant: str, seed: int = 0) -> Components:
    a = arch(variant)
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    return Components(tokenizer, build_text_encoder(a, tokenizer), build_unet(a), build_scheduler())


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def save_variant(
    folder: str | Path, parts: Components, extra: dict[str, Any] | None = None
) -> None:
    """Write a diffusers-format folder (each component loads with `from_pretrained`)."""
    save_folder(folder, "ArgusShapesPipeline", {
        "unet": (parts.unet, "diffusers", "UNet2DConditionModel"),
        "text_encoder": (parts.text_encoder, "transformers", "CLIPTextModel"),
        "tokenizer": (parts.tokenizer, "transformers", "CLIPTokenizer"),
        "scheduler": (parts.scheduler, "diffusers", "DDIMScheduler"),
    }, extra)


def save_folder(folder: str | Path, pipeline: str, parts: dict[str, tuple[Any, str, str]],
                extra: dict[str, Any] | None = None) -> None:
    """Each part (object, library, class) by `save_pretrained` into its subfolder, and the
    `model_index.json` that names them (pixel space: `_argus_pixel_unshuffle`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, (part, _, _) in parts.items():
        part.save_pretrained(folder / name)
    index = {"_class_name": pipeline, "_diffusers_version": diffusers.__version__,
             "_argus_pixel_unshuffle": PIXEL_UNSHUFFLE,
             **{name: [library, cls] for name, (_, library, cls) in parts.items()},
             **(extra or {})}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


def load_variant(folder: str | Path) -> Components:
    folder = str(folder)
    return Components(
        tokenizer=CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer"),
        text_encoder=CLIPTextModel.from_pretrained(folder, subfolder="text_encoder"),
        unet=UNet2DConditionModel.from_pretrained(folder, subfolder="unet"),
        scheduler=DDIMScheduler.from_pretrained(folder, subfolder="scheduler"),
    )


def arch_record(variant: str) -> dict[str, Any]:
    return asdict(arch(variant))
