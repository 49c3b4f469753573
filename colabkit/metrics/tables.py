"""Our numbers next to the papers' (the numbers themselves: colabkit/data/papers.py)."""

from __future__ import annotations

from typing import Any

from ..data.papers import PAPER_NUMBERS


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, (tuple, list)):
        mean, std = value
        return f"{float(mean):.{digits}f} ± {float(std):.{digits}f}"
    return f"{float(value):.{digits}f}"


def compare_table(measured: dict[str, Any], paper_key: str, digits: int = 2, *,
                  comparable: bool = True, why: str | None = None) -> str:
    """A small text table of our numbers next to the paper's, for a notebook to print.

    measured maps row names to a number or a (mean, std) pair, e.g. {"BEGAN": (5.1, 0.07)};
    names are matched to the paper's rows ignoring case, and unmatched names get rows of their
    own. paper_key is one of PAPER_NUMBERS' keys.

    comparable=False: our numbers were measured on another scale than the paper's (another
    network, say); the table then prints no difference ("n/c" in its place) and `why` (required)
    as a line of its own, so that nobody reads ours minus theirs as a gap to close.
    """
    if paper_key not in PAPER_NUMBERS:
        raise KeyError(f"Unknown paper_key {paper_key!r}; choose one of {sorted(PAPER_NUMBERS)}.")
    if not comparable and not why:
        raise ValueError("comparable=False needs why=: say what differs and what that means for the reader.")
    entry = PAPER_NUMBERS[paper_key]
    paper = entry["values"]
    lookup = {k.casefold(): k for k in paper}
    ours: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in measured.items():
        if key.casefold() in lookup:
            ours[lookup[key.casefold()]] = value
        else:
            extra[key] = value

    rows = [("", "ours", "paper", "ours - paper")]
    for key, ref in paper.items():
        mine = ours.get(key)
        if mine is None:
            delta = "-"
        elif not comparable:
            delta = "n/c"
        else:
            mean = mine[0] if isinstance(mine, (tuple, list)) else mine
            delta = f"{float(mean) - ref:+.{digits}f}"
        rows.append((key, _fmt(mine, digits), _fmt(ref, digits), delta))
    for key, value in extra.items():
        rows.append((key, _fmt(value, digits), "-", "-"))

    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    direction = "higher is better" if entry["higher_is_better"] else "lower is better"
    lines = [f"{entry['title']} - {entry['metric']}, {direction}"]
    for i, row in enumerate(rows):
        lines.append("  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(f"source: {entry['source']}")
    if entry.get("note"):
        lines.append(f"note: {entry['note']}")
    if not comparable:
        lines.append(f"n/c = not comparable: {why}")
    return "\n".join(lines)
