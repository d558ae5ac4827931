"""What the benchmark writes: the Markdown table and the PNG of the curves, both from the
JSON of every run (so they can be redrawn with `run.py --redraw results.json`)."""
import math
import statistics

TABLE_STEPS = (50, 200, 1000)
LOSS_WINDOW = 10  # the table's "loss at step s" is the mean training loss of steps s-9 … s
SMOOTHING = 25    # the plotted training loss is a moving average over this many steps


def loss_at(losses: list[float], step: int) -> float:
    """Mean training loss over the `LOSS_WINDOW` steps ending at `step` (1-based)."""
    window = losses[max(0, step - LOSS_WINDOW):step]
    return sum(window) / len(window)


def mean_spread(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation (0 for one value); NaN stays NaN."""
    if any(math.isnan(v) for v in values):
        return math.nan, math.nan
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def grouped(runs: list[dict]) -> dict:
    """(architecture, regime) -> init -> [runs over seeds], in first-seen order."""
    groups: dict = {}
    for run in runs:
        groups.setdefault((run["architecture"], run["regime"]), {}).setdefault(run["init"], []).append(run)
    return groups


def table_steps(steps: int) -> list[int]:
    return [s for s in TABLE_STEPS if s <= steps] or [steps]


def markdown_table(result: dict) -> str:
    """One table per architecture and regime: loss at steps 50/200/1000 and final test
    accuracy (mean ± standard deviation over seeds), and the initialisation's wall time."""
    lines = []
    for (architecture, regime), by_init in grouped(result["runs"]).items():
        config = result["regimes"][regime]
        steps = table_steps(config["steps"])
        counts = sorted({len(runs) for runs in by_init.values()})
        seeds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]} (per row: " + ", ".join(
            f"{init} {len(runs)}" for init, runs in by_init.items()) + ")"
        lines.append(f"**{architecture}, {regime}** ({config['description']}; {seeds} seed(s), mean ± std)")
        lines.append("")
        header = ["initialisation"] + [f"loss @ {s}" for s in steps] + ["test accuracy (%)", "init time (s)"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        best = {}
        for init, runs in by_init.items():
            best[init] = mean_spread([r["final_test_accuracy"] for r in runs])[0]
        top = max((v for v in best.values() if not math.isnan(v)), default=math.nan)
        for init, runs in by_init.items():
            cells = [init]
            for s in steps:
                m, sd = mean_spread([loss_at(r["train_loss"], s) for r in runs])
                cells.append(f"{m:.3f} ± {sd:.3f}")
            m, sd = mean_spread([100 * r["final_test_accuracy"] for r in runs])
            text = f"{m:.2f} ± {sd:.2f}"
            cells.append(f"**{text}**" if best[init] == top else text)
            cells.append(f"{statistics.fmean(r['init_seconds'] for r in runs):.2f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def moving_average(values: list[float], width: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= width:
            total -= values[i - width]
        out.append(total / min(i + 1, width))
    return out


def plot(result: dict, path: str) -> None:
    """Two rows (training loss, test accuracy) × one column per (architecture, regime);
    one line per initialisation: the mean over seeds, the band spans their min…max."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = grouped(result["runs"])
    inits = list(dict.fromkeys(r["init"] for r in result["runs"]))
    colours = {init: plt.get_cmap("tab10")(i % 10) for i, init in enumerate(inits)}
    fig, axes = plt.subplots(2, len(groups), figsize=(4.2 * len(groups), 7), squeeze=False)
    for column, ((architecture, regime), by_init) in enumerate(groups.items()):
        loss_axis, accuracy_axis = axes[0][column], axes[1][column]
        for init, runs in by_init.items():
            colour = colours[init]
            losses = np.array([moving_average(r["train_loss"], SMOOTHING) for r in runs])
            steps = np.arange(1, losses.shape[1] + 1)
            loss_axis.plot(steps, losses.mean(0), color=colour, label=init, lw=1.2)
            loss_axis.fill_between(steps, losses.min(0), losses.max(0), color=colour, alpha=0.15, lw=0)
            accuracy = 100 * np.array([r["test_accuracy"] for r in runs])
            eval_steps = runs[0]["eval_steps"]
            accuracy_axis.plot(eval_steps, accuracy.mean(0), color=colour, label=init, lw=1.2, marker=".")
            accuracy_axis.fill_between(eval_steps, accuracy.min(0), accuracy.max(0), color=colour, alpha=0.15, lw=0)
        loss_axis.set_title(f"{architecture}, {regime}", fontsize=10)
        loss_axis.set_ylabel(f"training loss (moving avg. {SMOOTHING} steps)")
        loss_axis.set_ylim(0, 3)
        accuracy_axis.set_ylabel(f"test accuracy (%), {result['config']['curve_test_images']} test images")
        accuracy_axis.set_ylim(0, 100)
        for axis in (loss_axis, accuracy_axis):
            axis.set_xlabel("SGD step")
            axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"Fashion-MNIST from scratch: mean over {result['config']['seeds']} seed(s), band = min…max "
                 f"(SGD lr {result['config']['learning_rate']} at batch 60, scaled with the batch; momentum {result['config']['momentum']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
