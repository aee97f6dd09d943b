"""The markdown table of an experiment's results."""

from __future__ import annotations

TOKENIZER_COLUMNS = [
    ("variant", "variant", "{}"),
    ("scales", "num_scales", "{}"),
    ("window (s)", "window_s", "{:g}"),
    ("tokens/s", "tokens_per_s", "{:g}"),
    ("phi convs", "num_phi", "{}"),
    ("SAT params", "sat_parameters", "{:,}"),
    ("discriminators", "discriminators", "{}"),
    ("disc. params", "discriminator_parameters", "{:,}"),
    ("steps", "steps", "{}"),
    ("MEL dist. ↓", "mel_distance", "{:.3f}"),
    ("STFT dist. ↓", "stft_distance", "{:.3f}"),
    ("FAD (mel) ↓", "fad_mel", "{:.3f}"),
]
GUIDANCE_COLUMNS = [
    ("cfg", "cfg", "{:g}"),
    ("clips", "clips", "{}"),
    ("FAD (mel) ↓", "fad_mel", "{:.3f}"),
    ("own-class FAD (mel) ↓", "fad_mel_own_class", "{:.3f}"),
    ("classes nearest own", "nearest_class_matches", "{}"),
    ("ISc (probe) ↑", "isc_probe", "{:.2f}"),
    ("KL (probe) ↓", "kl_probe", "{:.3f}"),
    ("probe accuracy ↑", "probe_accuracy", "{:.2f}"),
    ("generation s", "generation_s", "{:.1f}"),
]


def _cell(fmt: str, value) -> str:
    if value is None:
        return "–"
    if isinstance(value, list):
        return " + ".join(str(v) for v in value)
    return fmt.format(value)


def markdown_table(results: dict) -> str:
    """``results`` (as written to results.json) -> a markdown table, one row per variant."""
    columns = TOKENIZER_COLUMNS if results["kind"] == "tokenizer" else GUIDANCE_COLUMNS
    lines = [
        "| " + " | ".join(c[0] for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in results["rows"]:
        cells = [_cell(fmt, row.get(key)) for _, key, fmt in columns]
        if results["kind"] == "guidance":
            cells[4] = f"{row['nearest_class_matches']}/{row['classes']}"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
