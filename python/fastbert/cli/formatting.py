"""Metrics, slices and seed summaries as text for the terminal."""

from __future__ import annotations

from typing import Any

__all__ = ["SLICE_COLUMNS", "format_metrics", "format_seed_summary", "format_slices", "number"]


def number(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return f"{float(v):.4f}"


#: Above this many rows a per-class (or per-entity-type) table is cut to its `TABLE_ENDS` rows of
#: lowest F1 and its `TABLE_ENDS` of highest: 5,000 classes printed 5,013 lines.
TABLE_UP_TO = 30
TABLE_ENDS = 10


def format_metrics(metrics: dict[str, Any], full_table: str = "") -> str:
    """Metrics as text: the per-class (or per-entity-type) table, then the overall scores, last
    so that they sit next to the prompt however long the table is (as scikit-learn's report).

    A table of more than `TABLE_UP_TO` rows shows those of lowest and highest F1 and a line on the
    rows left out, ending with ``full_table``: where the whole table is, in the command line's
    words ("the full table is in DIR/report.json"). The confusion matrix is left to the JSON output.
    """
    lines = []
    tables = (
        ("per_class", "class", "classes"),
        ("per_type", "entity type", "entity types"),
        ("per_type_strict", "entity type (strict)", "entity types"),
    )
    for key, title, plural in tables:
        table = metrics.get(key)
        if not table:
            continue
        rows = list(table.items())
        left_out: list[tuple[str, Any]] = []
        if len(rows) > TABLE_UP_TO:
            # Worst first; of equal F1, the class with more examples first (its errors cost more).
            rows.sort(key=lambda item: (item[1]["f1"], -item[1]["support"]))
            left_out = rows[TABLE_ENDS:-TABLE_ENDS]
            rows = rows[:TABLE_ENDS] + rows[-TABLE_ENDS:]
        w = max(len(title), *(len(str(n)) for n, _ in rows))
        lines.append(f"  {title:<{w}}  precision  recall      f1  support")
        for i, (name, row) in enumerate(rows):
            if left_out and i == TABLE_ENDS:
                lines.append(_left_out_line(left_out, len(table), plural, full_table))
            lines.append(
                f"  {name!s:<{w}}  {row['precision']:9.4f}  {row['recall']:6.4f}  "
                f"{row['f1']:6.4f}  {row['support']:7d}"
            )
        lines.append("")
    scalars = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    width = max((len(k) for k, _ in scalars), default=0)
    for k, v in scalars:
        lines.append(f"  {k:<{width}}  {number(v)}")
    return "\n".join(lines)


def _left_out_line(left_out: list[tuple[str, Any]], total: int, plural: str, full_table: str) -> str:
    low, high = left_out[0][1]["f1"], left_out[-1][1]["f1"]
    line = (
        f"  ... {len(left_out)} of the {total} {plural} left out (f1 {low:.4f} to {high:.4f}): "
        f"above, the {TABLE_ENDS} of lowest f1; below, the {TABLE_ENDS} of highest"
    )
    return f"{line}; {full_table}" if full_table else line


SLICE_COLUMNS = ("accuracy", "macro_f1", "f1", "precision", "recall", "mse", "pearson", "spearman")


def format_slices(slices: dict[str, dict[str, dict[str, Any]]]) -> str:
    """``FineTunedModel.evaluate(..., slice_by=...)``'s ``slices`` as text: one table per slicing."""
    from fastbert.evaluation.slices import slicing_title  # evaluation imports PyTorch: not at start-up

    lines = []
    for name, table in slices.items():
        if not table:
            continue
        cols = [c for c in SLICE_COLUMNS if any(c in row for row in table.values())]
        w = max(len("slice"), *(len(str(k)) for k in table))
        lines += [
            "",
            f"  by {slicing_title(name)}:",
            f"  {'slice':<{w}}  examples" + "".join(f"  {c:>9}" for c in cols),
        ]
        for key, row in table.items():
            cells = "".join(f"  {number(row[c]) if c in row else '':>9}" for c in cols)
            lines.append(f"  {key!s:<{w}}  {row['examples']:8d}{cells}")
    return "\n".join(lines)


def format_seed_summary(summary: dict[str, Any]) -> str:
    """Text for the command line: one ``metric  mean ± std`` line per metric."""
    seeds = ", ".join(str(s) for s in summary["seeds"])
    lines = [
        f"dev metrics over seeds {seeds} (mean ± sample std); the model kept is seed "
        f"{summary['returned_seed']}'s, the best {summary['selected_by']}:"
    ]
    metrics = summary["metrics"]
    width = max((len(k) for k in metrics), default=0)
    for name, s in metrics.items():
        lines.append(f"  {name:<{width}}  {s['mean']:.4f} ± {s['std']:.4f}")
    return "\n".join(lines)
