"""`plot_report`: the paper's Figure 1 for one run."""
from __future__ import annotations

import math
import os

from ._coordinator import MagicInitError


def plot_report(report: dict, path) -> None:
    """Draws the paper's Figure 1 (Krähenbühl et al. 2016, §4.1) for a run's report: (a) the
    mean change rate C_k of each affine layer (log scale; a flat line is what Algorithm 2
    aims at), (b) the coefficient of variation of the change rates within each layer (lower
    is better), each before Algorithm 2 (after Algorithm 1) and after it; (b) also shows
    the coefficient of variation of the layer's channel standard deviations (dotted).

    Args:
        report: what `magicinit.initialize` returned (or a `.report.json` loaded).
        path: the image file to write; matplotlib picks the format by its extension.

    Raises:
        MagicInitError: the report has no Figure-1 rows (e.g. an Algorithm-1-only run
            measures none) or is not a MagicInit report.
    """
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    if not isinstance(report, dict) or "layers" not in report:
        raise MagicInitError("plot_report: not a MagicInit report (no 'layers')")
    series = [(label, report.get(key)) for key, label in (("figure1Before", "before Algorithm 2"),
                                                           ("figure1After", "after Algorithm 2"))]
    series = [(label, rows) for label, rows in series if rows]
    if not series:
        raise MagicInitError(f"plot_report: the report of {report.get('network', 'this run')} has no Figure-1 rows "
                             f"(mode {report.get('options', {}).get('mode', '?')!r}; Algorithm 2 measures them)")
    layers = [row["layer"] for row in series[0][1]]
    x = range(len(layers))
    measure = (report.get("algorithm2") or {}).get("rateMeasure", "")

    figure, (rates, spread) = plt.subplots(1, 2, figsize=(max(8.0, 0.55 * len(layers) + 5), 4.2))
    markers = ["o", "s"]
    for (label, rows), marker in zip(series, markers):
        by_layer = {row["layer"]: row for row in rows}
        rate = [by_layer[name]["changeRate"] if name in by_layer else math.nan for name in layers]
        cv = [by_layer[name]["changeRateCV"] if name in by_layer else math.nan for name in layers]
        std_cv = [by_layer[name]["outputStdCV"] if name in by_layer else math.nan for name in layers]
        line, = rates.plot(x, rate, marker=marker, label=label)
        spread.plot(x, cv, marker=marker, color=line.get_color(), label=f"change rate, {label}")
        spread.plot(x, std_cv, linestyle=":", marker=marker, markersize=3, color=line.get_color(),
                    label=f"channel std, {label}")
    rates.set_yscale("log")
    rates.set_title("(a) change rate per layer", fontsize="medium")
    rates.set_ylabel("change rate $C_k$" + (f" ({measure})" if measure else ""))
    spread.set_title("(b) spread within each layer", fontsize="medium")
    spread.set_ylabel("coefficient of variation (std / mean)")
    spread.set_ylim(bottom=0)
    for axes in (rates, spread):
        axes.set_xticks(list(x))
        axes.set_xticklabels(layers, rotation=45, ha="right")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")
    figure.suptitle(f"{report.get('network', '')}: {report.get('images', '?')} images")
    figure.tight_layout()
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
