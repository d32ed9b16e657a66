"""`python -m smpp ...`: small admin commands around the pipeline."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC

from smpp.settings import get_settings
from smpp.training.metric_names import CLI_METRICS


def cmd_prepare_models(_: argparse.Namespace) -> int:
    from smpp.encoders import prepare_models

    settings = get_settings()
    resolved = prepare_models(settings)
    print(json.dumps({"profile": settings.model_profile, "models": resolved}, indent=2))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """Where the day's model landed and its headline metrics (what `make demo` prints last)."""
    from smpp import storage
    from smpp.lifecycle.registry import champion

    settings = get_settings()
    runs = storage.read_run_metrics(settings, args.day)
    if not runs:
        print(f"no run metrics for {args.day} under {settings.runs_dir}", file=sys.stderr)
        return 1
    print(f"run metrics      : {storage.run_metrics_path(settings, args.day, '').parent}")
    for stage, metrics in runs.items():
        brief = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list)) and k not in ("day", "partition")}
        print(f"  {stage:<20} {brief}")
    train = runs.get("train_model", {})
    if train.get("version_dir"):
        from pathlib import Path

        version_dir = Path(train["version_dir"])
        print(f"model            : {version_dir / 'model.keras'}")
        print(f"metrics          : {version_dir / 'metrics.json'}")
        metrics = json.loads((version_dir / "metrics.json").read_text())
        if metrics.get("skipped_reason"):
            print(f"training skipped : {metrics['skipped_reason']}")
        for name in ("model", "baseline_subreddit_mean", "baseline_metadata_gbm", "baseline_text_ridge"):
            m = metrics.get(name) or {}
            if m:
                print(f"  {name:<26} " + " ".join(f"{k}={m.get(k)}" for k in CLI_METRICS))
    publish = runs.get("evaluate_and_publish", {})
    if publish:
        print(f"promotion        : promoted={publish.get('promoted')} ({publish.get('reason')})")
    print(f"champion         : {champion(settings)}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """The whole feature + training + evaluation protocol on an archive dump; metrics.json as the last line."""
    import logging
    from datetime import datetime
    from pathlib import Path

    from smpp.lifecycle.evaluate import evaluate_archive

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    archive = Path(args.archive)
    if not archive.is_file():
        print(f"no such archive: {archive}", file=sys.stderr)
        return 2
    settings = get_settings()
    if args.profile:
        settings = settings.with_overrides(model_profile=args.profile)
    out = Path(args.out) if args.out else Path("evaluations") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    metrics = evaluate_archive(settings, archive, out)
    timing = metrics.get("timing_s") or {}
    steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in (timing.get("steps") or {}).items())
    print(f"time per step: {steps}; total {timing.get('total', 0):.1f} s", file=sys.stderr)
    print(f"wrote {out / 'metrics.json'}", file=sys.stderr)
    print(json.dumps(metrics, sort_keys=True, allow_nan=False))
    return 0 if not metrics.get("skipped_reason") else 1


def cmd_predict(args: argparse.Namespace) -> int:
    """Score JSON-lines posts with the champion; one JSON line out per post (errors per line)."""
    import contextlib
    import logging
    import time

    from smpp.lifecycle.predict import Predictor

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.serve and args.input not in (None, "-"):
        print("predict: --serve reads stdin; drop the input file", file=sys.stderr)
        return 2
    if args.input not in (None, "-") and not os.path.isfile(args.input):
        print(f"predict: no such input file: {args.input}", file=sys.stderr)  # before minutes of model loading
        return 2
    settings = get_settings()
    out = sys.stdout
    # stdout carries only the JSON lines: encoder libraries print progress there (FlagEmbedding's
    # "Loading from local path."), so anything printed while loading or scoring goes to stderr
    with contextlib.redirect_stdout(sys.stderr):
        try:
            predictor = Predictor.load(settings, args.version)
        except (RuntimeError, FileNotFoundError, ValueError) as exc:
            print(f"predict: {exc}", file=sys.stderr)
            return 2
        print(
            f"predict: start-up {predictor.startup_s:.1f} s (model {predictor.version}, "
            f"encoders {', '.join(predictor.roles) or 'none'})",
            file=sys.stderr,
        )
        if args.serve:
            return _serve(predictor, args, out)
        if args.input in (None, "-"):
            lines = sys.stdin.read().splitlines()
        else:
            with open(args.input, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        started = time.perf_counter()
        try:
            results = predictor.score(lines, fetch_authors=args.fetch_authors)
        except (RuntimeError, FileNotFoundError, ValueError) as exc:
            print(f"predict: {exc}", file=sys.stderr)
            return 2
        scored = sum("error" not in r for r in results)
        elapsed = time.perf_counter() - started
        per_post = f", {1000 * elapsed / scored:.0f} ms/post" if scored else ""
        print(f"predict: {scored} posts scored in {elapsed:.2f} s{per_post}", file=sys.stderr)
    for result in results:
        print(json.dumps(result, allow_nan=False), file=out, flush=True)
    return 1 if any("error" in result for result in results) else 0


def _serve(predictor, args: argparse.Namespace, out) -> int:
    """Warm mode: answer each stdin line as it arrives, until EOF; the model and encoders stay loaded."""
    import time

    failed = False
    for number, line in enumerate(sys.stdin, start=1):
        started = time.perf_counter()
        try:
            results = predictor.score([line], fetch_authors=args.fetch_authors, first_line_number=number)
        except (RuntimeError, FileNotFoundError, ValueError) as exc:  # one bad request, not the server
            results = [{"line": number, "error": f"{type(exc).__name__}: {exc}"}]
        for result in results:
            failed = failed or "error" in result
            print(json.dumps(result, allow_nan=False), file=out, flush=True)
        print(f"predict: line {number} in {1000 * (time.perf_counter() - started):.0f} ms", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smpp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare-models", help="build/check the encoder weights of the model profile").set_defaults(
        func=cmd_prepare_models
    )
    summary = sub.add_parser("summary", help="print a day's run metrics and model")
    summary.add_argument("--day", required=True, help="data_interval_start date, YYYY-MM-DD")
    summary.set_defaults(func=cmd_summary)
    evaluate = sub.add_parser("evaluate", help="train + evaluate the model and baselines on an archive dump")
    evaluate.add_argument("archive", help="Pushshift-style NDJSON dump (.zst allowed)")
    evaluate.add_argument("--out", help="output folder (default evaluations/<UTC time>)")
    evaluate.add_argument("--profile", choices=["tiny", "offline", "production"], help="model profile override")
    evaluate.set_defaults(func=cmd_evaluate)
    predict = sub.add_parser("predict", help="score JSON-lines posts with the champion model")
    predict.add_argument("input", nargs="?", help="JSON-lines file (default: stdin)")
    predict.add_argument("--version", help="score with this registered version instead of the champion")
    predict.add_argument(
        "--fetch-authors",
        action="store_true",
        help=(
            "fetch karma/account age from Reddit (needs credentials) for authors neither in the input nor the warehouse"
        ),
    )
    predict.add_argument(
        "--serve",
        action="store_true",
        help="warm mode: keep reading JSON lines from stdin and answer each at once (start-up paid once)",
    )
    predict.set_defaults(func=cmd_predict)
    args = parser.parse_args(argv)
    return args.func(args)
