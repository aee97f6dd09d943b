"""The recipe of the demo corpus: which recordings of which Debian packages go in which class.

Every source is a set of *recorded* sounds shipped by a Debian package, with its licence:

=============  ======================  =====================================================
class          package                 what the recordings are
=============  ======================  =====================================================
speech         klettres-data           letters and syllables read aloud in about 20
                                       languages (KDE KLettres), GPL-2+
speech         fillets-ng-data-nl      Dutch voice acting of the game Fish Fillets NG, GPL-2
speech         pocketsphinx-testdata   read English (LibriVox, "Sense and Sensibility")
music          torus-trooper-data,     the soundtracks of four games by Kenta Cho (Torus
               gunroar-data,           Trooper, Gunroar, Mu-cade, Titanion): 15 pieces of
               mu-cade-data,           electronic music for drums, bass, leads and pads,
               titanion-data           BSD-2-Clause
environment    openttd-opensfx         vehicles, machines, animals, weather, crowds, edited
                                       from field recordings (CC-BY/CC-BY-SA/CC0 per sound)
environment    minetest-data           water, lava, fire, explosions, doors, footsteps, digging
                                       (freesound recordings, CC-BY-SA-3.0/CC-BY-3.0/CC0)
=============  ======================  =====================================================
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from aar.demo.clips import MIN_CONTENT_SECONDS
from aar.demo.debian import PackageTree
from aar.demo.formats import FormatError, decode_wav_bytes, read_openttd_cat


@dataclass(frozen=True)
class SourceItem:
    """One recording: ``load()`` returns it as mono float32 ``[T]`` and its sample rate."""

    name: str  # unique within its source, file-name safe
    source_file: str  # path inside the package, '#N' for an entry of a container file
    group: str  # what items are balanced over (language, piece of music, sound kind)
    licence: str
    credit: str
    load: Callable[[], tuple[np.ndarray, int]]


@dataclass(frozen=True)
class Source:
    """A set of recordings of one Debian package for one class.

    ``weight`` is this source's share of its class's clips; ``max_clips_per_item`` bounds how
    many consecutive one-second windows one recording may give; ``notices`` are credit files
    of the package, ``(path in the package, name under licenses/<package>/)``, copied next
    to the corpus with the package's copyright file; recordings whose sounding part is shorter
    than ``min_content_s`` give no clip (1.0: every clip sounds for its whole second, none is
    padded with silence).
    """

    name: str
    label: str
    package: str
    weight: float
    max_clips_per_item: int
    list_items: Callable[[PackageTree], list[SourceItem]]
    notices: tuple[tuple[str, str], ...] = ()
    min_content_s: float = MIN_CONTENT_SECONDS


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-")


def _read_file(path: Path) -> Callable[[], tuple[np.ndarray, int]]:
    def load() -> tuple[np.ndarray, int]:
        try:
            audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as exc:  # soundfile raises several types
            raise FormatError(f"{path}: cannot decode audio ({exc})") from None
        return audio.mean(axis=1), int(rate)

    return load


def _files(tree: PackageTree, folder: str, pattern: str) -> list[Path]:
    base = tree.path(folder)
    if not base.is_dir():
        raise FormatError(f"{tree.name} {tree.version}: folder {folder} missing from the package")
    return sorted(p for p in base.glob(pattern) if p.is_file())


def _relative(tree: PackageTree, path: Path) -> str:
    return path.relative_to(tree.root).as_posix()


# --- speech ---------------------------------------------------------------------------------


def klettres_items(tree: PackageTree) -> list[SourceItem]:
    items = []
    for path in _files(tree, "usr/share/klettres", "*/*/*.ogg"):
        language, kind = path.parent.parent.name, path.parent.name
        if kind not in ("alpha", "syllab"):
            continue
        items.append(
            SourceItem(
                name=slug(f"{language}-{kind}-{path.stem}"),
                source_file=_relative(tree, path),
                group=language,
                licence="GPL-2+",
                credit="KDE KLettres sounds",
                load=_read_file(path),
            )
        )
    return items


def fillets_items(tree: PackageTree) -> list[SourceItem]:
    items = []
    for path in _files(tree, "usr/share/games/fillets-ng/sound", "*/nl/*.ogg"):
        level = path.parent.parent.name
        items.append(
            SourceItem(
                name=slug(f"{level}-{path.stem}"),
                source_file=_relative(tree, path),
                group=level,
                licence="GPL-2",
                credit="Fish Fillets NG Dutch dialogue",
                load=_read_file(path),
            )
        )
    return items


def librivox_items(tree: PackageTree) -> list[SourceItem]:
    return [
        SourceItem(
            name=slug(path.stem.rsplit("-", 1)[-1]),
            source_file=_relative(tree, path),
            group="librivox",
            licence="public domain (LibriVox recording), package BSD-2-Clause",
            credit="LibriVox: Jane Austen, Sense and Sensibility, chapter 1",
            load=_read_file(path),
        )
        for path in _files(tree, "usr/share/pocketsphinx/test/data/librivox", "*.wav")
    ]


# --- music ----------------------------------------------------------------------------------

def soundtrack_items(game: str, title: str) -> Callable[[PackageTree], list[SourceItem]]:
    """The pieces of music of one of Kenta Cho's games (``usr/share/games/<game>/sounds/musics``):
    each piece is one recording, so held-out clips never come from a piece heard in training."""

    def items(tree: PackageTree) -> list[SourceItem]:
        return [
            SourceItem(
                name=slug(path.stem),
                source_file=_relative(tree, path),
                group=path.stem,
                licence="BSD-2-Clause",
                credit=f"Kenta Cho, music of {title}",
                load=_read_file(path),
            )
            for path in _files(tree, f"usr/share/games/{game}/sounds/musics", "*.ogg")
        ]

    return items


# --- environment ----------------------------------------------------------------------------

OPENSFX_CAT = "usr/share/games/openttd/baseset/opensfx/opensfx.cat"
OPENSFX_LICENCES = (
    ("Creative Commons Zero 1.0", "CC0-1.0"),
    ("Creative Commons Attribution-ShareAlike 3.0", "CC-BY-SA-3.0"),
    ("Creative Commons Attribution 3.0", "CC-BY-3.0"),
)


def opensfx_licence(description: str) -> str:
    for text, spdx in OPENSFX_LICENCES:
        if f"License: {text}" in description:
            return spdx
    raise FormatError(f"OpenSFX entry {description!r}: licence not recognised")


def opensfx_items(tree: PackageTree) -> list[SourceItem]:
    path = tree.path(OPENSFX_CAT)
    if not path.is_file():
        raise FormatError(f"{tree.name} {tree.version}: {OPENSFX_CAT} missing from the package")
    items = []
    for entry in read_openttd_cat(path):
        # Only sounds edited from a named original recording; the rest of the set was made
        # in a sound editor (beeps, jingles) or is empty.
        if "Original" not in entry.name:
            continue
        title = entry.name.split('"')[1] if entry.name.count('"') >= 2 else f"sound {entry.index}"
        what = f"{OPENSFX_CAT}#{entry.index}"
        items.append(
            SourceItem(
                name=slug(f"{entry.index:02d}-{title}")[:48],
                source_file=what,
                group=str(entry.index),
                licence=opensfx_licence(entry.name),
                credit=entry.name,
                load=(lambda e=entry, w=what: decode_wav_bytes(e.wav_bytes, w)),
            )
        )
    return items


MINETEST_MODS = "usr/share/games/minetest/games/minetest_game/mods"
# Sounds credited to field recordings in the mods' README files ("player_damage" is a voice).
MINETEST_SOUNDS = re.compile(
    r"^(env_sounds/sounds/.*|fire/sounds/.*|tnt/sounds/.*|doors/sounds/.*"
    r"|default/sounds/default_(.*footstep|dig|dug|gravel|ice|break_glass|chest|tool_breaks|furnace|place_node).*)\.ogg$"
)


def minetest_licence(relative: str) -> str:
    """Licence of a sound under the minetest_game mods folder, as Debian's copyright file gives it."""
    if relative.startswith("tnt/sounds/") or relative.startswith("doors/sounds/doors_glass_door_"):
        return "CC0-1.0"
    if relative.startswith("doors/sounds/"):
        return "CC-BY-3.0"
    return "CC-BY-SA-3.0"


def minetest_items(tree: PackageTree) -> list[SourceItem]:
    base = tree.path(MINETEST_MODS)
    items = []
    for path in _files(tree, MINETEST_MODS, "*/sounds/*.ogg"):
        relative = path.relative_to(base).as_posix()
        if not MINETEST_SOUNDS.match(relative):
            continue
        mod = relative.split("/", 1)[0]
        items.append(
            SourceItem(
                name=slug(path.stem),
                source_file=_relative(tree, path),
                group=re.sub(r"\.\d+$", "", path.stem),
                licence=minetest_licence(relative),
                credit=f"Minetest Game, credits in licenses/minetest-data/{mod}/README.txt",
                load=_read_file(path),
            )
        )
    return items


SOURCES: tuple[Source, ...] = (
    Source("klettres", "speech", "klettres-data", 0.50, 1, klettres_items),
    Source("fillets", "speech", "fillets-ng-data-nl", 0.35, 2, fillets_items),
    Source("librivox", "speech", "pocketsphinx-testdata", 0.15, 6, librivox_items),
    Source("torustrooper", "music", "torus-trooper-data", 4 / 15, 8, soundtrack_items("torus-trooper", "Torus Trooper")),
    Source("gunroar", "music", "gunroar-data", 4 / 15, 8, soundtrack_items("gunroar", "Gunroar")),
    Source("mucade", "music", "mu-cade-data", 4 / 15, 8, soundtrack_items("mu-cade", "Mu-cade")),
    Source("titanion", "music", "titanion-data", 3 / 15, 8, soundtrack_items("titanion", "Titanion")),
    Source(
        "opensfx", "environment", "openttd-opensfx", 0.55, 3, opensfx_items,
        notices=(("usr/share/doc/openttd-opensfx/readme.txt.gz", "readme.txt.gz"),), min_content_s=1.0,
    ),
    Source(
        "minetest", "environment", "minetest-data", 0.45, 3, minetest_items,
        notices=tuple(
            (f"{MINETEST_MODS}/{mod}/README.txt", f"{mod}/README.txt")
            for mod in ("default", "doors", "env_sounds", "fire", "tnt")
        ),
        min_content_s=1.0,
    ),
)  # fmt: skip
