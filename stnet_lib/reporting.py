"""Stage 6: writing tables, figures and Markdown into ``reports/<profile>/``, atomically.

Every writer returns the path it wrote; nothing here computes results.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .io import atomic_write

__all__ = ["save_table", "save_figure", "save_markdown", "markdown_table"]


def markdown_table(table: pd.DataFrame, *, floatfmt: str = ".3g") -> str:
    """A GitHub-flavoured Markdown table of ``table`` (index dropped), numbers formatted with ``floatfmt``."""
    def cell(value):
        if isinstance(value, float):
            return "" if pd.isna(value) else format(value, floatfmt)
        return str(value)

    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def save_table(table: pd.DataFrame, folder, name: str, *, floatfmt: str = ".3g", caption: str = "") -> Path:
    """Write ``name.csv`` (full precision) and ``name.md`` (formatted, with ``caption``) into ``folder``."""
    folder = Path(folder)
    with atomic_write(folder / f"{name}.csv") as tmp:
        table.to_csv(tmp, index=False)
    text = (f"{caption}\n\n" if caption else "") + markdown_table(table, floatfmt=floatfmt)
    return save_markdown(text, folder / f"{name}.md")


def save_figure(figure, folder, name: str, *, dpi: int = 120) -> Path:
    """Write ``figure`` as ``folder/name.png``."""
    path = Path(folder) / f"{name}.png"
    with atomic_write(path) as tmp:
        figure.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    return path


def save_markdown(text: str, path) -> Path:
    """Write Markdown ``text`` to ``path``."""
    path = Path(path)
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return path
