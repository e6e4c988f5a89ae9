"""Train tab: choose model, method and hyper-parameters; start, watch and stop a run in the background."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from workbench.config import ConfigError, RunConfig, TrainConfig, field_help, field_range, load_preset
from workbench.context import Workbench
from workbench.method_cards import method_card
from workbench.methods import KNOBS, METHODS, get_method
from workbench.plots import make_loss_figure
from workbench.preflight import preflight
from workbench.store import StoreError
from workbench.ui.data_tab import DataTab

PRESETS_DIR = Path(__file__).resolve().parents[2] / "presets"
DEFAULT_PRESET = "classroom-lora"


@dataclass
class TrainTab:
    run_dropdown: gr.Dropdown
    model_box: gr.Textbox
    form: list
    params_md: gr.Markdown
    on_form_change: Callable
    on_page_load: Callable


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def _default_config() -> RunConfig:
    path = PRESETS_DIR / f"{DEFAULT_PRESET}.yaml"
    return load_preset(path) if path.is_file() else RunConfig()


def _knob_component(name: str, value: Any) -> gr.components.Component:
    knob = KNOBS[name]
    if knob.choices:
        return gr.Radio(list(knob.choices), value=value, label=knob.label, info=knob.help)
    if isinstance(knob.default, str):
        return gr.Textbox(value, label=knob.label, info=knob.help)
    return gr.Slider(knob.minimum, knob.maximum, value=value, step=knob.step, label=knob.label, info=knob.help)


def _train_component(name: str, value: Any) -> gr.components.Component:
    label, info = name.replace("_", " ").capitalize(), field_help("train", name)
    lo, hi = field_range("train", name)
    if name == "lr_schedule":
        return gr.Dropdown(["cosine", "linear", "constant"], value=value, label=label, info=info)
    if name in ("batch_size", "grad_accum"):
        return gr.Slider(1, 64, value=value, step=1, label=label, info=info)
    if name == "max_seq_len":
        return gr.Slider(32, 4096, value=value, step=32, label=label, info=info)
    precision = 0 if isinstance(value, int) else None
    return gr.Number(value, label=label, info=f"{info} Range {lo:g}–{hi:g}.", precision=precision)


def format_progress(snapshot: Any) -> str:
    """An HTML progress bar with step / total, ETA and speed."""
    pct = 100 * snapshot.fraction
    eta = f" · ETA {int(snapshot.eta // 60)}m {int(snapshot.eta % 60):02d}s" if snapshot.eta is not None else ""
    speed = f" · {snapshot.tokens_per_s:.0f} tokens/s" if snapshot.tokens_per_s else ""
    queue = f" · waiting, position {snapshot.queue_position} in the queue" if snapshot.queue_position else ""
    loss = f" · train loss {snapshot.train_loss:.4f}" if snapshot.train_loss is not None else ""
    val = f" · val loss {snapshot.val_loss:.4f}" if snapshot.val_loss is not None else ""
    error = f"<div style='color:#b91c1c'>{snapshot.error}</div>" if snapshot.error else ""
    return (f"<div><b>{snapshot.status}</b> · step {snapshot.step} / {snapshot.total_steps or '?'}{eta}{speed}"
            f"{loss}{val}{queue}</div><div style='background:#e5e7eb;border-radius:6px;height:14px'>"
            f"<div style='width:{pct:.1f}%;background:#2563eb;height:14px;border-radius:6px'></div></div>{error}")


def build_train_tab(workbench: Workbench, data: DataTab) -> TrainTab:
    config = _default_config()
    with gr.Row():
        preset_dropdown = gr.Dropdown(list_presets(), value=DEFAULT_PRESET if DEFAULT_PRESET in list_presets()
                                      else None, label="Preset", info="Saved settings from presets/*.yaml.")
        preset_btn = gr.Button("Load preset")
        run_name_box = gr.Textbox(label="Run name", placeholder="optional, e.g. rank-8-try")
    model_box = gr.Textbox(config.model.name_or_path, label="Base model", info=field_help("model", "name_or_path"))
    method_dropdown = gr.Dropdown([(spec.label, name) for name, spec in METHODS.items()], value=config.method.name,
                                  label="Method", info=field_help("method", "name"))
    card_md = gr.Markdown(method_card(config.method.name))
    with gr.Row():
        knob_components = {name: _knob_component(name, getattr(config.method, name)) for name in KNOBS}
        for name, component in knob_components.items():
            component.visible = name in get_method(config.method.name).knobs
    params_md = gr.Markdown()
    main_fields = ("learning_rate", "epochs", "max_steps", "batch_size", "max_seq_len")
    with gr.Row():
        train_components = {name: _train_component(name, getattr(config.train, name)) for name in main_fields}
    with gr.Accordion("Advanced", open=False):
        with gr.Row():
            for name in (f.name for f in TrainConfig.__dataclass_fields__.values() if f.name not in main_fields):
                train_components[name] = _train_component(name, getattr(config.train, name))
    with gr.Row():
        start_btn = gr.Button("Start training", variant="primary")
        stop_btn = gr.Button("Stop", variant="stop")
    run_dropdown = gr.Dropdown(label="Run shown", info="Any stored run; the one you start is selected.",
                               allow_custom_value=True)
    progress_html = gr.HTML()
    loss_plot = gr.Plot(label="Loss")
    timer = gr.Timer(1.0)

    form = [model_box, method_dropdown, *knob_components.values(), *train_components.values(),
            data.data_path_box, data.val_size_slider, data.test_size_slider, data.split_seed_number, run_name_box]

    def config_from_form(model, method, *values) -> RunConfig:
        knobs = dict(zip(knob_components, values[:len(knob_components)]))
        rest = values[len(knob_components):]
        train = dict(zip(train_components, rest[:len(train_components)]))
        path, val_size, test_size, seed, name = rest[len(train_components):]
        for key, value in train.items():  # sliders and numbers arrive as floats; int fields want ints
            if isinstance(getattr(TrainConfig(), key), int) and isinstance(value, float) and value.is_integer():
                train[key] = int(value)
        knobs = {k: int(v) if isinstance(v, float) and isinstance(KNOBS[k].default, int) else v
                 for k, v in knobs.items() if k in get_method(method).knobs}
        return RunConfig.from_dict({
            "name": name or "", "model": {"name_or_path": model}, "method": {"name": method, **knobs},
            "train": train, "data": {"path": path, "val_size": val_size, "test_size": test_size,
                                     "split_seed": int(seed or 0)},
        })

    def on_form_change(*values):
        try:
            return preflight(config_from_form(*values)).summary()
        except (ValueError, RuntimeError, OSError) as exc:
            return f"⚠️ {exc}"

    def on_method_change(method: str):  # any change, also from a preset: card and visible knobs follow
        spec = get_method(method)
        return [method_card(method), *[gr.update(visible=name in spec.knobs) for name in knob_components]]

    def on_start(*values):
        try:
            config = config_from_form(*values)
            problems = preflight(config).problems
            if problems:  # refuse before queueing: the reason and a way out, nothing started
                raise ConfigError("; ".join(problems))
            record = workbench.jobs.submit(config)
        except (ConfigError, ValueError, RuntimeError) as exc:
            raise gr.Error(str(exc)) from None
        return gr.update(choices=_run_choices(workbench), value=record.run_id)

    def on_stop(run_id: str):
        if run_id and workbench.jobs.stop(run_id):
            gr.Info("Stopping at the next step; the adapter trained so far will be saved.")

    def on_poll(run_id: str, seen: tuple | None = None):
        if not run_id:
            return gr.skip(), gr.skip(), seen
        try:
            snapshot = workbench.jobs.snapshot(run_id)
            rows = workbench.store.read_metrics(run_id)
        except StoreError as exc:
            raise gr.Error(str(exc)) from None
        key = (run_id, len(rows), snapshot.status)
        # Redraw the chart only when there is something new: polling stays light while a run trains.
        figure = gr.skip() if key == seen else make_loss_figure({run_id: rows})
        return format_progress(snapshot), figure, key

    def on_preset(name: str):
        loaded = load_preset(PRESETS_DIR / f"{name}.yaml")
        values = [loaded.model.name_or_path, loaded.method.name,
                  *[getattr(loaded.method, k) for k in knob_components],
                  *[getattr(loaded.train, k) for k in train_components], loaded.data.path,
                  loaded.data.val_size, loaded.data.test_size, loaded.data.split_seed, loaded.name]
        return values

    preset_btn.click(on_preset, preset_dropdown, form, api_name="load_preset")
    method_dropdown.change(on_method_change, method_dropdown, [card_md, *knob_components.values()],
                           api_visibility="private")
    # Picked by hand: also take the method's usual learning rate (full fine-tuning wants ~100× less than LoRA).
    method_dropdown.input(lambda method: get_method(method).learning_rate, method_dropdown,
                          train_components["learning_rate"], api_visibility="private")
    for component in [model_box, method_dropdown, *knob_components.values()]:
        component.change(on_form_change, form, params_md, api_visibility="private", show_progress="hidden")
    start_btn.click(on_start, form, run_dropdown, api_name="start_run")
    stop_btn.click(on_stop, run_dropdown, None, api_name="stop_run")
    seen_state = gr.State(None)
    timer.tick(on_poll, [run_dropdown, seen_state], [progress_html, loss_plot, seen_state],
               api_visibility="private", show_progress="hidden")
    run_dropdown.change(lambda run_id: on_poll(run_id)[:2], run_dropdown, [progress_html, loss_plot],
                        api_name="poll_run")
    run_dropdown.focus(lambda: gr.update(choices=_run_choices(workbench)), None, run_dropdown,
                       api_visibility="private")
    def on_page_load():  # a reload (or an app restart) shows the newest run and its curve again
        choices = _run_choices(workbench)
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    return TrainTab(run_dropdown, model_box, form, params_md, on_form_change, on_page_load)


def _run_choices(workbench: Workbench) -> list[tuple[str, str]]:
    # No status in the label: it would go stale in the list; the progress line shows the live status.
    return [(f"{r.name} · {r.method}", r.run_id) for r in workbench.store.list_runs()]
