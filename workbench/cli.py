"""Headless workbench: `python -m workbench {train,eval,data,methods,presets,runs,chat,export}`.

Every command calls the same core functions as the UI. `train` prints a progress bar on stderr and, as its last
line on stdout, one JSON object describing the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from workbench.config import ConfigError, ModelConfig, RunConfig, load_preset
from workbench.data.examples import DataError, read_examples
from workbench.data.general import GENERAL_SPEC, probe_examples
from workbench.evaluate.scoring import EvalOptions, EvalTarget, evaluate, load_examples, run_split
from workbench.fsio import (
    write_atomic,
    write_csv,  # the one CSV writer: spreadsheet formulas neutralised
)
from workbench.generate.engine import ChatEngine, Side
from workbench.generate.sampling import SamplingConfig
from workbench.i18n import LANGS, text
from workbench.methods.registry import KNOBS, METHODS
from workbench.models.export import ExportError, merge_adapter, push_adapter, zip_adapter
from workbench.models.loading import ModelError
from workbench.paths import workbench_home
from workbench.presets import list_presets, read_preset, save_user_preset
from workbench.runs.store import RunStore, default_store
from workbench.train.checkpoints import checkpoint_step
from workbench.train.jobs import execute_run, launch_problems
from workbench.train.preflight import PreflightError


def cmd_data_check(args: argparse.Namespace) -> int:
    try:
        report = read_examples(args.file, kind=args.kind)
    except DataError as exc:
        print(text("core.cli.error", error=exc), file=sys.stderr)
        return 1
    print(report.summary(max_problems=args.max_problems))
    return 0 if report.good else 1


def _method_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {f"method.{name}": getattr(args, name) for name in KNOBS if getattr(args, name) is not None}
    if args.method:
        overrides["method.name"] = args.method
    return overrides


def cmd_train(args: argparse.Namespace) -> int:
    import yaml


    store = RunStore(args.output_dir) if args.output_dir else default_store()
    if args.resume:  # a stopped, interrupted or failed run goes on from its checkpoint, with its own settings
        return _resume(store, args)
    config = read_preset(args.preset, workbench_home()) if args.preset else RunConfig()
    overrides = _method_overrides(args)
    if args.data:
        overrides["data.path"] = args.data
    if args.max_steps is not None:
        overrides["train.max_steps"] = args.max_steps
    if args.name:
        overrides["name"] = args.name
    for item in args.set or []:  # any config key: --set train.eval_test=false --set data.val_size=0.2
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: write KEY=VALUE, e.g. --set train.eval_every=20")
        overrides[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    config = config.with_overrides(overrides)
    _check_launch(store, config, args.force)
    record = store.create_run(config, claim="training")
    return _train(store, record.run_id, config, args)


def _check_launch(store: Any, config: Any, force: bool) -> None:
    """The same checks the Train tab makes before launch; --force starts anyway and says what it risks."""
    problems = launch_problems(store, config)
    if problems and not force:
        raise PreflightError("this run cannot start here:\n  - " + "\n  - ".join(problems) +
                             "\nchange the settings, or add --force to start anyway (a run that needs more memory "
                             "than is free may be killed by the system, losing what it trained since its last "
                             "checkpoint)")
    for problem in problems:
        print(f"warning (--force): {problem}", file=sys.stderr)


# Options that would change a run's settings: a resumed run goes on with its own, so these are refused.
_SETTING_OPTIONS = ("preset", "data", "method", "set")


def _resume(store: Any, args: argparse.Namespace) -> int:
    """Go on with a stopped run. --max-steps N stops it again at step N (its schedule stays that of its own
    length); --name renames it; options that would change its settings are refused, never ignored."""
    given = [f"--{name}" for name in (*_SETTING_OPTIONS, *KNOBS) if getattr(args, name, None)]
    if given:
        raise ValueError(f"--resume goes on with the run's own settings, so {', '.join(given)} cannot change them; "
                         "drop them, or start a new run (train.init_adapter=RUN_ID continues from its adapter)")
    record = store.get_run(args.resume)
    config = store.load_config(args.resume)
    if args.max_steps is not None:
        done = checkpoint_step(store.run_dir(record.run_id)) or 0
        if not done < args.max_steps <= record.total_steps:
            raise ValueError(f"--max-steps {args.max_steps}: run {record.name!r} has done {done} of its "
                             f"{record.total_steps} steps, and a resumed run keeps its learning-rate schedule; give a "
                             f"step from {done + 1} to {record.total_steps}, or start a new run with "
                             f"--set train.init_adapter={record.run_id} to train further")
    if args.name:
        store.rename_run(record.run_id, args.name)
    _check_launch(store, config, args.force)
    return _train(store, record.run_id, config, args, resume=True, stop_at=args.max_steps)


def _train(store: Any, run_id: str, config: Any, args: argparse.Namespace, resume: bool = False,
           stop_at: int | None = None) -> int:
    from tqdm import tqdm


    bar = tqdm(total=None, unit="step", file=sys.stderr, disable=args.quiet, dynamic_ncols=True)
    if args.quiet:  # nor the bars transformers draws while it loads weights
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

    reached = {"step": 0}

    def on_event(event: Any) -> None:
        if event.total_steps:
            bar.total = event.total_steps
        if event.kind == "phase":
            bar.set_description(str(event.values["phase"]))  # a catalogue Message: the environment's language
        if event.kind == "step":
            reached["step"] = event.step
        if event.kind == "start":
            for note in event.values.get("notes", []):
                bar.write(f"note: {note}", file=sys.stderr)
        if event.kind == "step":
            bar.update(event.step - bar.n)
            bar.set_postfix(loss=f"{event.values['train_loss']:.3f}", tok_s=f"{event.values['tokens_per_s']:.0f}")
        if event.kind == "eval":
            bar.write(f"step {event.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in event.values.items()
                                                          if k.endswith("_loss")), file=sys.stderr)

    stop = threading.Event()

    def on_ctrl_c(_signum: int, _frame: Any) -> None:  # the first Ctrl+C is a Stop; a second one aborts
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        bar.write("Stopping at the next step: the adapter and a checkpoint are saved. Ctrl+C again aborts now.",
                  file=sys.stderr)

    in_main = threading.current_thread() is threading.main_thread()  # only the main thread may set handlers
    signals = (signal.SIGINT, signal.SIGTERM)  # Ctrl+C, or `kill`: the same stop
    previous = [signal.signal(signum, on_ctrl_c) for signum in signals] if in_main else []
    def should_stop() -> bool:  # Ctrl+C, or the step --max-steps asked a resumed run to stop at
        return stop.is_set() or (stop_at is not None and reached["step"] >= stop_at)

    try:
        result = execute_run(store, run_id, config, should_stop=should_stop, on_event=on_event, resume=resume)
    finally:
        for signum, handler in zip(signals, previous):
            signal.signal(signum, handler)
        bar.close()
    summary = {"run_id": run_id, **result.to_dict(), "run_dir": str(store.run_dir(run_id))}
    print(json.dumps(summary, ensure_ascii=False))
    if result.status == "stopped":
        print(f"stopped at step {result.steps} of {result.total_steps}; go on with: python -m workbench train "
              f"--resume {run_id}", file=sys.stderr)
        if not stop.is_set():  # stopped where --max-steps asked: done as told
            return 0
        return 130  # what a shell reports for Ctrl+C: the run did not finish
    return 0


def cmd_hash_password(args: argparse.Namespace) -> int:
    """A password's hash for a classroom accounts file: read from stdin when piped, else asked twice."""
    import getpass

    from workbench.classroom.accounts import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass(text("classroom.hash.ask"))
        if password != getpass.getpass(text("classroom.hash.again")):
            print(text("classroom.hash.differ"), file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print(text("classroom.hash.empty"), file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    """Every method with its knobs, in the environment's language (English unless it asks for Korean)."""
    for spec in METHODS.values():
        needs = text("methods.cli.needs_cuda" if spec.needs_cuda else "methods.cli.cpu")
        print(f"{spec.name:<16} {text(spec.label_key)} ({text(spec.family_key + '.name')}; {needs})\n"
              f"    {text(spec.summary_key)}")
        for name in spec.knobs:
            knob = KNOBS[name]
            valid = (", ".join(knob.choices) if knob.choices else text("methods.cli.text") if knob.minimum is None
                     else f"{knob.minimum:g}–{knob.maximum:g}")
            print(f"    --{name:<12} {text('methods.cli.default')} {knob.default!r:<12} [{valid}]  "
                  f"{text(knob.label_key)}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    home = workbench_home()
    if args.save:  # a stored run's settings (--from-run) or a preset's (--from) kept under a name of one's own
        if bool(args.from_run) == bool(args.source):
            raise ConfigError("presets --save NAME: give the settings to keep, --from-run RUN_ID or --from PRESET")
        if args.from_run:
            config = default_store().load_config(args.from_run)
        else:
            config = read_preset(args.source, home)
        preset, replaced = save_user_preset(config, args.save, home)
        kept = f" (the previous version is kept as {preset.path.name}.bak)" if replaced else ""
        print(f"saved preset {preset.key}: {preset.path}{kept}")
        return 0
    for preset in list_presets(home):
        try:
            config = load_preset(preset.path)
        except ConfigError as exc:  # a saved preset edited by hand can break; the others are still listed
            print(f"{preset.key:<24} error: {exc}")
            continue
        print(f"{preset.key:<24} method={config.method.name} data={config.data.path} "
              f"steps={config.train.max_steps or f'{config.train.epochs:g} epoch(s)'}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    store = default_store()
    if args.rename:
        run_id, name = args.rename
        old = store.get_run(run_id).name
        print(f"renamed {run_id}: {old!r} -> {store.rename_run(run_id, name).name!r}")
        return 0
    if args.delete:
        name = store.get_run(args.delete).name
        where = store.delete_run(args.delete)
        print(f"moved {args.delete} ({name!r}) to the trash: {where}; `runs --restore {args.delete}` brings it back"
              if where else f"removed {args.delete} ({name!r}) from the index; it had no folder")
        return 0
    if args.restore:
        record = store.restore_run(args.restore)
        print(f"restored {record.run_id} ({record.name!r}, {record.status})")
        return 0
    if args.empty_trash:
        count, size = store.empty_trash()
        print(f"deleted {count} run(s) from the trash for good; {size / 2**20:.1f} MB freed")
        return 0
    if args.trash:
        for record, when, size in store.trash():
            deleted = time.strftime("%Y-%m-%d %H:%M", time.localtime(when))
            print(f"{record.run_id}  {record.name!r} {record.method}  deleted {deleted}  {size / 2**20:.1f} MB")
        return 0
    for run in store.list_runs():
        loss = f"{run.train_loss:.3f}" if run.train_loss is not None else "–"
        print(f"{run.run_id}  {run.status:<11} {run.method:<8} steps {run.steps}/{run.total_steps} loss {loss}  "
              f"{run.name!r}")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    engine = ChatEngine(ModelConfig(name_or_path=args.model))
    sides = [Side("base")]
    if args.adapter:
        engine.ensure_adapter("adapter", args.adapter)
        sides.append(Side("adapter", "adapter"))
    sampling = SamplingConfig(temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
                              seed=args.seed)
    history = [{"role": "user", "content": args.prompt}]
    for side in sides:
        state = engine.answer(side, history, sampling)
        print(json.dumps({"side": side.label, "text": state.text, "new_tokens": state.new_tokens,
                          "seconds": round(state.seconds, 3)}, ensure_ascii=False))
    return 0


def _eval_targets(args: argparse.Namespace, store: Any) -> list[Any]:
    targets = [EvalTarget("base")] if args.base or not (args.adapter or args.run) else []
    for run_id in args.run or []:
        store.run_dir(run_id)  # refuses ids that are not run ids, with the expected shape
        targets.append(EvalTarget(store.get_run(run_id).name, str(store.adapter_dir(run_id)), key=run_id))
    for path in args.adapter or []:
        folder = Path(path).expanduser()
        label = folder.parent.name if folder.name == "adapter" else folder.name
        targets.append(EvalTarget(label, str(folder)))
    seen: dict[str, int] = {}
    for i, target in enumerate(targets):  # two adapters from folders of the same name still get their own label
        seen[target.label] = seen.get(target.label, 0) + 1
        if seen[target.label] > 1:
            targets[i] = EvalTarget(f"{target.label} ({seen[target.label]})", target.adapter_path, target.key)
    return targets


def cmd_eval(args: argparse.Namespace) -> int:
    store = RunStore(args.output_dir) if args.output_dir else default_store()
    targets = _eval_targets(args, store)
    if args.mc:
        return _eval_mc(args, targets)
    if args.general:
        examples, data = probe_examples(args.limit or 50), f"{GENERAL_SPEC} (probe part)"
    elif args.data:
        examples, data = load_examples(args.data, args.split, args.val_size, args.test_size, args.split_seed,
                                       args.limit), f"{args.data} · {args.split}"
    elif args.run:
        examples, data = run_split(store, args.run[0], "test")[:args.limit or None], f"{args.run[0]} · test"
    else:
        raise ValueError("choose what to score: --data FILE (or sample:NAME), --general, or --run RUN_ID")
    options = EvalOptions(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                          similarity=not args.no_similarity, perplexity=not args.no_perplexity)
    engine = ChatEngine(ModelConfig(name_or_path=args.model))
    report = evaluate(engine, targets, examples, data, options,
                      on_progress=lambda fraction, message: print(f"[{fraction:4.0%}] {message}", file=sys.stderr))
    if args.csv:
        import pandas as pd


        write_csv(Path(args.csv), pd.DataFrame(report.example_rows()))
    if args.report:
        write_atomic(Path(args.report), json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    print(f"{len(examples)} examples from {data}; similarity: {report.similarity_kind or 'off'}")
    for note in report.notes:
        print(f"note: {note}")
    for row in report.summary_rows():
        print("  " + "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    for model in report.models:  # the last lines: one JSON object per model
        print(json.dumps({"model": model.label, "adapter": model.adapter_path, "examples": len(examples),
                          **{k: round(v, 6) for k, v in model.metrics.items()}}, ensure_ascii=False))
    return 0


def _eval_mc(args: argparse.Namespace, targets: list[Any]) -> int:
    """`eval --mc SET`: multiple choice through lm-evaluation-harness; the last lines are one JSON object per model."""
    from workbench.evaluate.multiple_choice import BASE_LABEL, score_mc

    adapters = [(t.label, t.adapter_path) for t in targets if t.adapter_path]
    base = BASE_LABEL if any(t.adapter_path is None for t in targets) else None
    report = score_mc(ModelConfig(name_or_path=args.model), adapters, args.mc, shots=args.shots,
                      limit=args.limit or None, batch_size=args.batch_size, style=args.style, base_label=base,
                      on_progress=lambda fraction, what: print(f"[{fraction:4.0%}] {what}",
                                                               file=sys.stderr))
    if args.csv:
        import pandas as pd

        write_csv(Path(args.csv), pd.DataFrame(report.question_rows()))
    if args.report:
        write_atomic(Path(args.report), json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    print(f"{len(report.rows)} questions of {report.task}, {report.shots}-shot (lm-evaluation-harness "
          f"{report.lm_eval_version})")
    for note in report.notes:
        print(f"note: {note}")
    for score in report.scores:  # the last lines: one JSON object per model
        print(json.dumps({"model": score.label, "adapter": score.adapter_path, "set": report.task,
                          "shots": report.shots, "questions": score.count, "accuracy": round(score.accuracy, 6),
                          "acc_norm": round(score.acc_norm, 6), "macro_f1": round(score.macro_f1, 6),
                          "ece": round(score.ece, 6), "brier": round(score.brier, 6),
                          "seconds": round(score.seconds, 2)}, ensure_ascii=False))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    store = RunStore(args.output_dir) if args.output_dir else default_store()
    if args.zip:
        print(json.dumps({"zip": str(zip_adapter(store, args.run_id))}))
    if args.merge:
        print(json.dumps({"merged": str(merge_adapter(store, args.run_id))}))
    if args.push:
        print(json.dumps({"pushed": push_adapter(store, args.run_id, args.push)}))
    if not (args.zip or args.merge or args.push):
        print("error: choose at least one of --zip, --merge, --push REPO", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workbench", description=__doc__.splitlines()[0])
    parser.add_argument("--lang", choices=LANGS, help="the language of reports and errors (default: the environment's "
                        "WORKBENCH_LANG, LC_ALL, LC_MESSAGES or LANG; English unless it asks for Korean)")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect data files").add_subparsers(dest="data_command", required=True)
    check = data.add_parser("check", help="validate a data file row by row and print the report")
    check.add_argument("file")
    check.add_argument("--kind", default="auto", choices=("auto", "sft", "preference"))
    check.add_argument("--max-problems", type=int, default=200)
    check.set_defaults(func=cmd_data_check)

    train = sub.add_parser("train", help="train one run with the same engine as the UI")
    train.add_argument("--preset", help="a preset: a bundled name (classroom-lora), saved:NAME for one you saved, "
                       "or a YAML file's path (see `presets`)")
    train.add_argument("--data", help="training data file (overrides the preset), or sample:NAME")
    train.add_argument("--max-steps", type=int, help="stop after N optimiser steps")
    train.add_argument("--output-dir", help="run store folder (default: $WORKBENCH_HOME/runs)")
    train.add_argument("--name", help="a name for the run")
    train.add_argument("--method", help="fine-tuning method (see `methods`)")
    for name, knob in KNOBS.items():
        kind = str if knob.choices else type(knob.default)
        train.add_argument(f"--{name}", type=kind, default=None, help=text(knob.help_key))
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override any setting of the run, e.g. --set train.eval_test=false (repeatable)")
    train.add_argument("--resume", metavar="RUN_ID", help="go on with a stopped, interrupted or failed run from its "
                       "last checkpoint, with its own settings (options that would change them are refused; "
                       "--max-steps N stops it at step N, --name renames it)")
    train.add_argument("--force", action="store_true", help="start even when the checks before launch refuse the "
                       "run (e.g. not enough free memory); it may then be killed by the system")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)

    sub.add_parser("methods", help="list fine-tuning methods and their knobs").set_defaults(func=cmd_methods)
    sub.add_parser("hash-password", help="print a password's hash for a classroom accounts file (the password from "
                   "stdin, or asked for)").set_defaults(func=cmd_hash_password)
    presets = sub.add_parser("presets", help="list the bundled and saved presets, or save one")
    presets.add_argument("--save", metavar="NAME", help="save settings as saved:NAME ($WORKBENCH_HOME/presets)")
    presets.add_argument("--from-run", metavar="RUN_ID", help="with --save: the settings of this stored run")
    presets.add_argument("--from", dest="source", metavar="PRESET", help="with --save: the settings of this preset")
    presets.set_defaults(func=cmd_presets)
    runs = sub.add_parser("runs", help="list, rename or delete stored runs (deleted runs go to a trash)")
    manage = runs.add_mutually_exclusive_group()
    manage.add_argument("--rename", nargs=2, metavar=("RUN_ID", "NAME"), help="give a run a new name")
    manage.add_argument("--delete", metavar="RUN_ID", help="move a finished, stopped or failed run to the trash")
    manage.add_argument("--restore", metavar="RUN_ID", help="bring a deleted run back from the trash")
    manage.add_argument("--trash", action="store_true", help="list the deleted runs")
    manage.add_argument("--empty-trash", action="store_true", help="delete the runs in the trash for good")
    runs.set_defaults(func=cmd_runs)

    export = sub.add_parser("export", help="zip, merge or push a run's adapter")
    export.add_argument("run_id")
    export.add_argument("--zip", action="store_true", help="write <run>/export/<run>-adapter.zip")
    export.add_argument("--merge", action="store_true", help="fold the adapter into the base, save <run>/merged")
    export.add_argument("--push", metavar="REPO", help="upload the adapter to a Hub repo (needs network + token)")
    export.add_argument("--output-dir", help="run store folder (default: $WORKBENCH_HOME/runs)")
    export.set_defaults(func=cmd_export)

    evaluate = sub.add_parser("eval", help="score the base model and adapters on a data set; the last lines are "
                              "one JSON object per model")
    evaluate.add_argument("--data", help="file (.jsonl/.json/.csv/.parquet) or sample:NAME to score")
    evaluate.add_argument("--split", default="all", choices=("all", "train", "val", "test"),
                          help="score the whole file or one split of it (made as training makes it)")
    evaluate.add_argument("--val-size", type=float, default=0.1, help="split sizes, as in training")
    evaluate.add_argument("--test-size", type=float, default=0.1)
    evaluate.add_argument("--split-seed", type=int, default=0)
    evaluate.add_argument("--general", action="store_true",
                          help="score on the general reference set's probe part (the forgetting probe)")
    evaluate.add_argument("--mc", metavar="SET",
                          help="multiple choice instead: a bundled set (knowledge_en, knowledge_ko, their _cloze "
                               "forms), a file of questions (.jsonl/.csv: question, choices or A-D, answer), or an "
                               "lm-evaluation-harness task name; accuracy, acc_norm, macro-F1 and calibration (ECE, "
                               "Brier) per model")
    evaluate.add_argument("--shots", type=int, default=0, help="multiple choice: k-shot examples, 0 to 5")
    evaluate.add_argument("--style", default="letters", choices=("letters", "cloze"),
                          help="multiple choice from a file: ask for the letter (MMLU-style) or score each answer's "
                               "text (cloze)")
    evaluate.add_argument("--base", action="store_true", help="include the base model (the default without adapters)")
    evaluate.add_argument("--adapter", action="append", metavar="DIR", help="an adapter folder; repeat for more")
    evaluate.add_argument("--run", action="append", metavar="RUN_ID",
                          help="a stored run's adapter; without --data its test split is scored")
    evaluate.add_argument("--model", default="embedded", help="the base model")
    evaluate.add_argument("--limit", type=int, default=0, help="score only the first N examples (0 = all)")
    evaluate.add_argument("--max-new-tokens", type=int, default=64)
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--no-similarity", action="store_true", help="skip the embedding similarity")
    evaluate.add_argument("--no-perplexity", action="store_true", help="skip perplexity")
    evaluate.add_argument("--csv", help="write the per-example table to this CSV file")
    evaluate.add_argument("--report", help="write the whole report (answers included) to this JSON file")
    evaluate.add_argument("--output-dir", help="run store folder (default: $WORKBENCH_HOME/runs)")
    evaluate.set_defaults(func=cmd_eval)

    chat = sub.add_parser("chat", help="answer one prompt with the base model (and an adapter)")
    chat.add_argument("--prompt", required=True)
    chat.add_argument("--adapter", help="adapter folder (a run's adapter/)")
    chat.add_argument("--model", default="embedded")
    chat.add_argument("--temperature", type=float, default=0.0)
    chat.add_argument("--top-p", type=float, default=1.0)
    chat.add_argument("--max-new-tokens", type=int, default=64)
    chat.add_argument("--seed", type=int, default=0)
    chat.set_defaults(func=cmd_chat)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Problems with what the user gave (config, data, model, run id, export) are one clear line; anything else is
    # a bug and keeps its traceback.
    user_errors = (ValueError, FileNotFoundError, ModelError, ExportError)  # incl. a run another process trains
    with language(argv):
        args = build_parser().parse_args(argv)
        try:
            return args.func(args)
        except user_errors as exc:
            print(text("core.cli.error", error=exc), file=sys.stderr)
            return 2


@contextlib.contextmanager
def language(argv: list[str] | None) -> Iterator[None]:
    """--lang ko|en is the language of the command, set before the parser is built (its help texts come from the
    catalogues). Messages print with str(), in the environment's language, so the choice goes where they look:
    WORKBENCH_LANG, put back as it was when the command ends (main() may run inside another program, e.g. a test)."""
    finder = argparse.ArgumentParser(add_help=False)
    finder.add_argument("--lang", choices=LANGS)
    known, _rest = finder.parse_known_args(sys.argv[1:] if argv is None else argv)
    before = os.environ.get("WORKBENCH_LANG")
    if known.lang:
        os.environ["WORKBENCH_LANG"] = known.lang
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("WORKBENCH_LANG", None)
        else:
            os.environ["WORKBENCH_LANG"] = before


if __name__ == "__main__":
    sys.exit(main())
