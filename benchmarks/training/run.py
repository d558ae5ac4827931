#!/usr/bin/env python3
"""Does it train better? Fashion-MNIST from scratch under each initialisation.

Two architectures without batch normalisation (nets.py), two regimes (all 60,000 training
images for one epoch; 100 images per class for a fixed number of steps), several
initialisations (inits.py), the same SGD schedule and the same seeds for each. Writes
`results.json` (every curve), `curves.png` and `table.md` into `--output`.

    benchmarks/training/run.py                  # the whole benchmark (about an hour on 2 cores)
    benchmarks/training/run.py --smoke          # ~1 minute: checks the pipeline end to end
    benchmarks/training/run.py --lr-sweep 0.003,0.01,0.03,0.1   # how the learning rate was chosen
    benchmarks/training/run.py --redraw results.json            # table and plot again

See README.md beside this file.
"""
import argparse
import concurrent.futures as futures
import json
import math
import multiprocessing
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fashion_mnist  # noqa: E402
import report  # noqa: E402

BETA = 0.1            # MagicInit's target channel mean/std ratio (--bias; the reference code's)
INIT_PER_CLASS = 100  # 1,000 training images for every data-dependent initialisation
MOMENTUM = 0.9        # the paper's (§4: SGD, momentum 0.9)
LEARNING_RATE = 0.03  # at batch 60; chosen with --lr-sweep on the two standard inits only; see README.md
REFERENCE_BATCH = 60  # a regime of batch B trains at LEARNING_RATE · B / 60 (linear scaling: the same step per example)

FULL = dict(
    regimes={
        "full": dict(description="all 60,000 training images, one epoch, batch 60, 1,000 steps",
                     per_class=None, batch=60, steps=1000),
        "little-data": dict(description="100 images per class, batch 10, lr scaled to batch 10, 1,000 steps (10 epochs)",
                            per_class=100, batch=10, steps=1000),
    },
    seeds=3, init_per_class=INIT_PER_CLASS, curve_test_images=1000,
    eval_steps=[0, 50, 100, 200, 400, 600, 800, 1000], final_test_images=10000)
SMOKE = dict(
    regimes={
        "full": dict(description="smoke: 2,000 training images, batch 20, 30 steps",
                     per_class=None, limit=2000, batch=20, steps=30),
        "little-data": dict(description="smoke: 10 images per class, batch 10, lr scaled to batch 10, 30 steps",
                            per_class=10, batch=10, steps=30),
    },
    seeds=1, init_per_class=10, curve_test_images=500, eval_steps=[0, 15, 30], final_test_images=1000)

_data = {}


def _load_data():
    """Per worker process: the training and test sets, normalised (fashion_mnist.load)."""
    import torch
    torch.set_num_threads(_data["threads"])
    _data["train"] = fashion_mnist.load("train")
    _data["test"] = fashion_mnist.load("test")


def _worker_start(threads):
    _data["threads"] = threads
    _load_data()


def accuracy(model, images, labels, batch=1000) -> float:
    import torch
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            correct += (model(images[i:i + batch]).argmax(1) == labels[i:i + batch]).sum().item()
    model.train()
    return correct / len(images)


def channel_check(model, images) -> list[dict]:
    """Per convolution / linear layer, on `images` in eval mode: the largest |mean/std − β|
    over its output channels and the spread of its channel deviations (max/min − 1), the
    quantities MagicInit's Algorithms 1 + 2 make 0 (DESIGN: after both algorithms each
    layer carries its own scale, so mean/std = β and equal stds within a layer)."""
    import torch
    rows, hooks = [], []

    def record(name):
        def hook(module, inputs, output):
            z = output.detach().double().transpose(0, 1).reshape(output.shape[1], -1)
            mean, std = z.mean(1), z.std(1, unbiased=False)
            rows.append(dict(layer=name, ratio_error=(mean / std - BETA).abs().max().item(),
                             std_spread=(std.max() / std.min() - 1).item()))
        return hook
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            hooks.append(module.register_forward_hook(record(name)))
    model.eval()
    with torch.no_grad():
        model(images)
    model.train()
    for h in hooks:
        h.remove()
    return rows


def regime_learning_rate(config: dict, regime: dict) -> float:
    """The configured rate is for batch 60; batch B trains at rate · B / 60 (the linear
    scaling rule, Goyal et al. 2017: the same step per example)."""
    return config["learning_rate"] * regime["batch"] / REFERENCE_BATCH


def batch_order(count: int, batch: int, steps: int, generator):
    """`steps` batches of `batch` indices into `count` examples: consecutive shuffled epochs."""
    import torch
    needed = batch * steps
    order = torch.cat([torch.randperm(count, generator=generator) for _ in range(-(-needed // count))])
    return order[:needed].view(steps, batch)


def train_one(task: dict) -> dict:
    """One (architecture, regime, seed, initialisation) run: build, initialise, train, test."""
    import torch
    import torch.nn.functional as F
    import inits
    import nets

    config, regime = task["config"], task["config"]["regimes"][task["regime"]]
    seed = task["seed"]
    train_x, train_y = _data["train"]
    test_x, test_y = _data["test"]
    if regime.get("limit"):
        train_x, train_y = train_x[:regime["limit"]], train_y[:regime["limit"]]

    # The 1,000 initialisation images: 100 per class, drawn by the seed; the little-data
    # regime trains on exactly these.
    init_index = fashion_mnist.per_class_subset(_data["train"][1], config["init_per_class"],
                                                torch.Generator().manual_seed(seed))
    init_images = _data["train"][0][init_index]
    if regime["per_class"] is not None:
        if regime["per_class"] != config["init_per_class"]:
            raise ValueError("the little-data regime trains on the initialisation images; per_class must match")
        train_x, train_y = init_images, _data["train"][1][init_index]
    curve_index = torch.randperm(len(test_x), generator=torch.Generator().manual_seed(0))[:config["curve_test_images"]]
    curve_x, curve_y = test_x[curve_index], test_y[curve_index]
    final_x, final_y = test_x[:config["final_test_images"]], test_y[:config["final_test_images"]]

    torch.manual_seed(seed)
    model = nets.ARCHITECTURES[task["architecture"]]()
    method = inits.methods(task["threads"], magicinit=task["init"].startswith("magicinit"))[task["init"]]
    started = time.perf_counter()
    extra = method(model, init_images, seed)
    init_seconds = time.perf_counter() - started
    run = dict(architecture=task["architecture"], regime=task["regime"], init=task["init"], seed=seed,
               init_seconds=init_seconds, **extra)
    if task["init"].startswith("magicinit"):
        run["channel_check"] = channel_check(model, init_images)

    rate = regime_learning_rate(config, regime)
    run["learning_rate"] = rate
    optimiser = torch.optim.SGD(model.parameters(), lr=rate, momentum=config["momentum"])
    order = batch_order(len(train_x), regime["batch"], regime["steps"], torch.Generator().manual_seed(seed))
    torch.manual_seed(10_000 + seed)  # dropout masks: the same stream for every initialisation
    losses, test_accuracy, eval_steps = [], [], [s for s in config["eval_steps"] if s <= regime["steps"]]
    started = time.perf_counter()
    diverged = None
    for step in range(regime["steps"] + 1):
        if step in eval_steps:
            test_accuracy.append(accuracy(model, curve_x, curve_y) if diverged is None else 0.1)
        if step == regime["steps"]:
            break
        if diverged is not None:
            losses.append(math.nan)
            continue
        batch = order[step]
        loss = F.cross_entropy(model(train_x[batch]), train_y[batch])
        if not torch.isfinite(loss):
            diverged = step + 1
            losses.append(math.nan)
            continue
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    run.update(train_seconds=time.perf_counter() - started, train_loss=losses, eval_steps=eval_steps,
               test_accuracy=test_accuracy, diverged_at_step=diverged,
               final_test_accuracy=accuracy(model, final_x, final_y) if diverged is None else math.nan)
    return run


def tasks_for(config: dict, architectures, init_names, threads) -> list[dict]:
    """Seed by seed (every configuration's first seed before any second seed), so that an
    interrupted benchmark has covered every configuration."""
    tasks = []
    for seed in range(config["seeds"]):
        for architecture in architectures:
            for regime in config["regimes"]:
                for init in init_names:
                    tasks.append(dict(config=config, architecture=architecture, regime=regime, seed=seed,
                                      init=init, threads=threads))
    return tasks


def resumable(tasks: list[dict], files: list[str]) -> dict:
    """Runs of earlier results.json files that a task would repeat exactly (same
    architecture, regime settings, seed, initialisation, rate, momentum, evaluation):
    task index -> run."""
    done = {}
    for path in files:
        earlier = read_json(path)
        same = all(earlier["config"].get(k) == tasks[0]["config"].get(k) for k in
                   ("learning_rate", "momentum", "init_per_class", "eval_steps", "curve_test_images", "final_test_images"))
        if not same:
            print(f"[benchmark] {path}: another schedule, nothing reused", flush=True)
            continue
        runs = {(r["architecture"], r["regime"], r["seed"], r["init"]): r for r in earlier["runs"]}
        for i, task in enumerate(tasks):
            key = (task["architecture"], task["regime"], task["seed"], task["init"])
            if key in runs and earlier["regimes"].get(task["regime"]) == task["config"]["regimes"][task["regime"]]:
                done[i] = runs[key]
    return done


def execute(tasks: list[dict], jobs: int, threads: int, progress=None, done=None) -> list[dict]:
    """Runs the tasks on `jobs` worker processes (each `threads` threads); returns the runs
    in task order. `progress(runs so far)` is called after each run. A failing run stops
    the benchmark with its task named."""
    context = multiprocessing.get_context("spawn")
    runs = [None] * len(tasks)
    for i, run in (done or {}).items():
        runs[i] = run
    started = time.perf_counter()
    with futures.ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_start, initargs=(threads,)) as pool:
        pending = {pool.submit(train_one, task): i for i, task in enumerate(tasks) if runs[i] is None}
        for done, future in enumerate(futures.as_completed(pending), 1):
            i = pending[future]
            t = tasks[i]
            name = f"{t['architecture']} {t['regime']} seed {t['seed']} {t['init']}"
            try:
                run = future.result()
            except Exception as error:
                for other in pending:
                    other.cancel()
                raise SystemExit(f"[benchmark] {name} failed: {error}") from error
            runs[i] = run
            print(f"[benchmark] {done}/{len(pending)} {name}: init {run['init_seconds']:.1f} s, "
                  f"train {run['train_seconds']:.1f} s, loss@end {report.loss_at(run['train_loss'], len(run['train_loss'])):.3f}, "
                  f"test {100 * run['final_test_accuracy']:.2f} % ({time.perf_counter() - started:.0f} s elapsed)",
                  flush=True)
            if progress:
                progress([r for r in runs if r is not None])
    return runs


def write_json(result: dict, path: str) -> None:
    """JSON with NaN written as null (strict JSON)."""
    def clean(value):
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(clean(result), f, separators=(",", ":"))
    os.replace(tmp, path)


def read_json(path: str) -> dict:
    with open(path) as f:
        result = json.load(f)
    for run in result["runs"]:
        run["train_loss"] = [math.nan if v is None else v for v in run["train_loss"]]
        if run["final_test_accuracy"] is None:
            run["final_test_accuracy"] = math.nan
    return result


def merge(results: list[dict]) -> dict:
    """Several results.json of the same schedule (e.g. the benchmark run in parts, by
    --inits) as one: runs concatenated in initialisation order; wall time summed."""
    first = results[0]
    for other in results[1:]:
        for key in ("learning_rate", "momentum", "seeds", "init_per_class", "eval_steps", "curve_test_images"):
            if other["config"][key] != first["config"][key]:
                raise SystemExit(f"cannot merge: {key} differs ({first['config'][key]} vs {other['config'][key]})")
        if other["regimes"] != first["regimes"]:
            raise SystemExit("cannot merge: the regimes differ")
    inits = list(dict.fromkeys(i for r in results for i in r["config"]["inits"]))
    runs = sorted((run for r in results for run in r["runs"]),
                  key=lambda run: (run["seed"], inits.index(run["init"])))
    parts = [dict(inits=r["config"]["inits"], wall_seconds=r["wall_seconds"], load_average_before=r["load_average_before"],
                  load_average_after=r["load_average_after"]) for r in results]
    return dict(first, config=dict(first["config"], inits=inits), runs=runs, parts=parts,
                wall_seconds=math.fsum(r["wall_seconds"] for r in results))


def write_outputs(result: dict, folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    write_json(result, os.path.join(folder, "results.json"))
    with open(os.path.join(folder, "table.md"), "w") as f:
        f.write(report.markdown_table(result))
    report.plot(result, os.path.join(folder, "curves.png"))
    print(f"[benchmark] wrote {folder}/results.json, table.md, curves.png")


def smoke_checks(result: dict, folder: str, init_names: list[str]) -> None:
    """What --smoke proves: every architecture × regime × initialisation ran and trained
    with finite losses; MagicInit's weights, loaded back into PyTorch, give every channel of
    every layer mean/std = β and equal deviations within a layer on the initialisation
    images (VGG: within 1e-3, exact for ReLU/pooling; CaffeNet: within 5e-2, LRN is not
    homogeneous); the three files exist and the table names every initialisation."""
    problems = []
    seen = {(r["architecture"], r["regime"], r["init"]) for r in result["runs"]}
    for architecture in result["config"]["architectures"]:
        for regime in result["regimes"]:
            for init in init_names:
                if (architecture, regime, init) not in seen:
                    problems.append(f"no run for {architecture} {regime} {init}")
    for run in result["runs"]:
        name = f"{run['architecture']} {run['regime']} {run['init']}"
        if not all(math.isfinite(v) for v in run["train_loss"]):
            problems.append(f"{name}: non-finite training loss (diverged at step {run['diverged_at_step']})")
        if not 0.0 <= run["final_test_accuracy"] <= 1.0:
            problems.append(f"{name}: test accuracy {run['final_test_accuracy']}")
        tolerance = 1e-3 if run["architecture"] == "vgg-plain" else 5e-2
        for row in run.get("channel_check", []):
            worst = max(row["ratio_error"], row["std_spread"])
            if not worst <= tolerance:
                problems.append(f"{name}: layer {row['layer']} |mean/std − β| {row['ratio_error']:.2e}, "
                                f"std spread {row['std_spread']:.2e} > {tolerance}")
        if run["init"].startswith("magicinit") and not run.get("channel_check"):
            problems.append(f"{name}: no channel check recorded")
    table = open(os.path.join(folder, "table.md")).read()
    problems += [f"table.md does not name {init}" for init in init_names if f"| {init} |" not in table]
    if os.path.getsize(os.path.join(folder, "curves.png")) < 10_000:
        problems.append("curves.png is suspiciously small")
    checked = sum(len(r.get("channel_check", [])) for r in result["runs"])
    if problems:
        raise SystemExit("[smoke] FAILED:\n  " + "\n  ".join(problems))
    print(f"[smoke] {len(result['runs'])} runs trained with finite losses; {checked} MagicInit layer checks "
          f"within tolerance; table and plot written")


def lr_sweep(rates: list[float], jobs: int, threads: int, architectures) -> None:
    """The learning-rate choice: PyTorch's default and He-normal only (never MagicInit),
    full regime, 200 steps, seed 100 (not a benchmark seed); prints the training loss at
    step 200 per rate and picks the rate with the lowest mean over the four runs."""
    config = dict(FULL, seeds=1, momentum=MOMENTUM, eval_steps=[0, 200], final_test_images=2000)
    config["regimes"] = {"full": dict(FULL["regimes"]["full"], steps=200)}
    tasks = []
    for rate in rates:
        for task in tasks_for(dict(config, learning_rate=rate), architectures, ["pytorch-default", "he-normal"], threads):
            task["seed"] = 100
            tasks.append(task)
    runs = execute(tasks, jobs, threads)
    per_rate = 2 * len(architectures)
    print("\nlearning rate | " + " | ".join(f"{r['architecture']} {r['init']}" for r in runs[:per_rate]) + " | mean")
    means = {}
    for i, rate in enumerate(rates):
        chunk = runs[per_rate * i:per_rate * (i + 1)]
        values = [report.loss_at(r["train_loss"], 200) for r in chunk]
        means[rate] = math.fsum(v if math.isfinite(v) else 10.0 for v in values) / len(values)
        print(f"{rate} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {means[rate]:.3f}", flush=True)
    print(f"lowest mean training loss at step 200: lr {min(means, key=means.get)}")


def main() -> None:
    import nets
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny subsets, 30 steps, one seed: checks the pipeline (~1 min)")
    parser.add_argument("--output", help="folder for results.json, table.md, curves.png "
                        "(default: benchmarks/training/results, or out/training-smoke with --smoke)")
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    parser.add_argument("--seeds", type=int, help="seeds per configuration (default 3; 1 with --smoke)")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, one process each (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="threads per run, PyTorch and mi-coordinator (default 1)")
    parser.add_argument("--architectures", default=",".join(nets.ARCHITECTURES))
    parser.add_argument("--inits", help="comma-separated subset of the initialisations (default: all)")
    parser.add_argument("--resume", metavar="RESULTS_JSON[,...]", help="reuse the runs of earlier results.json file(s) "
                        "that this benchmark would repeat exactly (an interrupted benchmark goes on)")
    parser.add_argument("--lr-sweep", help="comma-separated learning rates: run the learning-rate choice instead")
    parser.add_argument("--redraw", metavar="RESULTS_JSON[,...]", help="only rewrite results.json, table.md and curves.png "
                        "from results.json file(s); several (comma-separated, same schedule) are merged")
    args = parser.parse_args()

    architectures = [a for a in args.architectures.split(",") if a]
    unknown = [a for a in architectures if a not in nets.ARCHITECTURES]
    if unknown:
        parser.error(f"unknown architecture(s) {', '.join(unknown)}; choose from {', '.join(nets.ARCHITECTURES)}")
    if args.redraw:
        files = args.redraw.split(",")
        result = merge([read_json(path) for path in files])
        write_outputs(result, args.output or os.path.dirname(os.path.abspath(files[0])))
        return
    fashion_mnist.ensure_installed()
    if args.lr_sweep:
        lr_sweep([float(v) for v in args.lr_sweep.split(",")], args.jobs, args.threads, architectures)
        return

    import inits
    requested = [n for n in (args.inits or "").split(",") if n]
    # MagicInit (and its mi-coordinator) is needed unless only other inits are asked for.
    available = list(inits.methods(args.threads, magicinit=not requested or any(n.startswith("magicinit") for n in requested)))
    init_names = available
    if requested:
        init_names = requested
        missing = [n for n in init_names if n not in available]
        if missing:
            parser.error(f"unknown initialisation(s) {', '.join(missing)}; available: {', '.join(available)}")
    if "lsuv" in init_names:
        try:
            import lsuv  # noqa: F401
        except ImportError:
            raise SystemExit("[benchmark] the lsuv initialisation needs the PyPI package lsuv: python3 -m pip install lsuv "
                             "(or leave it out with --inits)")
    config = dict(SMOKE if args.smoke else FULL, learning_rate=args.learning_rate, momentum=MOMENTUM,
                  architectures=architectures, inits=init_names, jobs=args.jobs, threads=args.threads, beta=BETA)
    if args.seeds:
        config["seeds"] = args.seeds
    folder = args.output or (os.path.join("out", "training-smoke") if args.smoke else os.path.join(HERE, "results"))
    print(f"[benchmark] {len(architectures)} architecture(s) × {len(config['regimes'])} regime(s) × "
          f"{config['seeds']} seed(s) × {len(init_names)} initialisation(s): {', '.join(init_names)}; "
          f"lr {config['learning_rate']}, {args.jobs} job(s) × {args.threads} thread(s); "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    started = time.perf_counter()
    load_before = os.getloadavg()
    tasks = tasks_for(config, architectures, init_names, args.threads)
    regimes = config["regimes"]
    summary = {k: v for k, v in config.items() if k != "regimes"}

    def result_of(runs):
        return dict(config=summary, regimes=regimes, wall_seconds=time.perf_counter() - started,
                    load_average_before=load_before, load_average_after=os.getloadavg(), runs=runs)

    def save_partial(runs):  # results.json after every run: an interrupted benchmark keeps what it did
        os.makedirs(folder, exist_ok=True)
        write_json(result_of(runs), os.path.join(folder, "results.json"))
    done = resumable(tasks, args.resume.split(",")) if args.resume else {}
    if done:
        print(f"[benchmark] reusing {len(done)} run(s) of {args.resume}", flush=True)
    runs = execute(tasks, args.jobs, args.threads, save_partial, done)
    result = result_of(runs)
    wall = result["wall_seconds"]
    print(f"[benchmark] all {len(runs)} runs in {wall / 60:.1f} min (load average {load_before[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after)", flush=True)
    write_outputs(result, folder)
    if args.smoke:
        smoke_checks(result, folder, init_names)


if __name__ == "__main__":
    main()
