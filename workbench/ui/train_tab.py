"""Train tab: choose model, method and hyper-parameters; start, watch and stop a run in the background."""

from __future__ import annotations

import functools
import html
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from workbench.app import Workbench
from workbench.classroom.access import SINGLE_USER, Viewer
from workbench.config import (
    ConfigError,
    RunConfig,
    TrainConfig,
    field_choices,
    field_range,
    load_preset,
    on_screen,
)
from workbench.data.examples import DataError, file_kind
from workbench.data.samples import resolve_data_path
from workbench.evaluate.scoring import chance_notes, read_report
from workbench.i18n import say, text
from workbench.methods.cards import method_card
from workbench.methods.registry import KNOBS, METHODS, get_method
from workbench.models.adapters import has_trained_weights
from workbench.plots import make_loss_figure
from workbench.presets import BUNDLED_DIR, read_preset, save_user_preset
from workbench.runs.store import StoreError
from workbench.train.jobs import launch_problems, resolve_init_adapter
from workbench.train.preflight import preflight
from workbench.train.sweeps import DEFAULT_RANKS, parse_ranks, sweep_configs
from workbench.ui.data_tab import DataTab
from workbench.ui.i18n import T, derived, lang_of
from workbench.ui.sides import follow_answer_lengths
from workbench.ui.train_lines import format_progress, preset_choices
from workbench.ui.who import store_of, viewer_of

DEFAULT_PRESET = "classroom-lora"
MAIN_FIELDS = ("learning_rate", "epochs", "max_steps", "batch_size", "max_seq_len")
FORGETTING_FIELDS = ("general_every", "general_samples", "replay_ratio", "l2_to_base")
AFTER_FIELDS = ("eval_test", "eval_max_new_tokens", "eval_mc", "eval_mc_shots")
PREFERENCE_FIELDS = ("objective", "dpo_beta", "init_adapter")
FIELD_MIN_WIDTH = 220  # pixels
# The words of the form's choices (the objective's, the learning-rate schedule's); the values stay as they are.
CHOICE_KEYS = {"sft": "train.objective.sft", "dpo": "train.objective.dpo",
               **{name: f"train.lr_schedule.{name}" for name in ("cosine", "linear", "constant")},
               **{name: f"train.eval_mc.{name}" for name in ("none", "knowledge_en", "knowledge_ko", "both")}}


NEXT_STATUSES = ("completed", "stopped")


@dataclass
class TrainTab:
    run_dropdown: gr.Dropdown
    compare_next_btn: gr.Button  # open Compare with the run shown on side 2
    evaluate_next_btn: gr.Button  # open Evaluate with the run shown picked
    model_box: gr.Textbox
    form: dict[str, gr.components.Component]  # the run's settings by parameter name: handlers take them by name
    params_md: gr.Markdown
    on_form_change: Callable
    on_page_load: Callable
    restore: Callable  # (saved form values by name, lang) -> ({component: value}, notes): a browser's choices back


def _default_config() -> RunConfig:
    path = BUNDLED_DIR / f"{DEFAULT_PRESET}.yaml"
    return load_preset(path) if path.is_file() else RunConfig()


def _knob_component(name: str, value: Any) -> gr.components.Component:
    knob = KNOBS[name]
    label, info = T(knob.label_key), T(knob.help_key)
    if knob.choices:
        return gr.Radio([(T(knob.choice_key(c)), c) for c in knob.choices], value=value, label=label, info=info)
    if isinstance(knob.default, str):
        return gr.Textbox(value, label=label, info=info)
    return gr.Slider(knob.minimum, knob.maximum, value=value, step=knob.step, label=label, info=info)


def _train_component(name: str, value: Any) -> gr.components.Component:
    """A training setting's widget; its choices and range are the config's own, so the form offers exactly what a
    run accepts."""
    label, info = T(f"train.{name}.label"), T(f"train.{name}.help")
    choices = field_choices("train", name)
    # A row of them shares the page's width: each keeps room for its label and help (a narrow one wraps to the next
    # line instead of being crushed to a word per line).
    width = {"min_width": FIELD_MIN_WIDTH}
    if choices:
        return gr.Radio([(T(CHOICE_KEYS[c]) if c in CHOICE_KEYS else c, c) for c in choices], value=value,
                        label=label, info=info, **width)
    if isinstance(value, bool):
        return gr.Checkbox(value, label=label, info=info, **width)
    if isinstance(value, str):
        return gr.Textbox(value, label=label, info=info, **width)
    lo, hi = field_range("train", name)
    info = derived(f"train.{name}.help+range", lambda lang: text(f"train.{name}.help", lang) + " " + text(
        "field.range", lang, low=f"{lo:g}", high=f"{hi:g}"))
    return gr.Number(value, label=label, info=info, minimum=lo, maximum=hi,
                     precision=0 if isinstance(value, int) else None, **width)


def _whole(value: Any, default: Any) -> Any:
    """Numbers arrive from the browser as floats: an int setting gets an int (a fraction stays, and is refused)."""
    whole = isinstance(default, int) and not isinstance(default, bool)
    return int(value) if whole and isinstance(value, float) and value.is_integer() else value


def build_train_tab(workbench: Workbench, data: DataTab) -> TrainTab:
    config = _default_config()
    presets = preset_choices(workbench, viewer=workbench.page_viewer())
    with gr.Row():
        preset_dropdown = gr.Dropdown(presets, value=DEFAULT_PRESET if (DEFAULT_PRESET, DEFAULT_PRESET)
                                      in presets else None, label=T("train.preset.label"),
                                      allow_custom_value=True, info=T("train.preset.info"))
        preset_btn = gr.Button(T("train.preset.button"))
        run_name_box = gr.Textbox(label=T("train.run_name.label"), placeholder=T("train.run_name.placeholder"))
    model_box = gr.Textbox(config.model.name_or_path, label=T("model.name_or_path.label"),
                           info=T("model.name_or_path.help"))
    method_dropdown = gr.Dropdown([(T(spec.label_key), name) for name, spec in METHODS.items()],
                                  value=config.method.name, label=T("method.name.label"), info=T("method.name.help"))
    first = config.method.name  # its card as the page opens; a change of method writes the card in the browser's words
    card_md = gr.Markdown(derived(f"{get_method(first).card_key}+family", functools.partial(method_card, first)))
    with gr.Row():
        knob_components = {name: _knob_component(name, getattr(config.method, name)) for name in KNOBS}
        for name, component in knob_components.items():
            component.visible = name in get_method(config.method.name).knobs
    params_md = gr.Markdown()
    with gr.Row():
        train_components = {name: _train_component(name, getattr(config.train, name)) for name in MAIN_FIELDS}
    grouped = MAIN_FIELDS + FORGETTING_FIELDS + AFTER_FIELDS + PREFERENCE_FIELDS
    with gr.Accordion(T("train.advanced"), open=False):
        with gr.Row():
            for name in (f for f in TrainConfig.__dataclass_fields__ if f not in grouped):
                train_components[name] = _train_component(name, getattr(config.train, name))
    with gr.Accordion(T("train.forgetting"), open=False):
        gr.Markdown(T("train.forgetting.help"))
        with gr.Row():
            for name in FORGETTING_FIELDS:
                train_components[name] = _train_component(name, getattr(config.train, name))
    with gr.Accordion(T("train.objective"), open=False) as objective_accordion:
        gr.Markdown(T("train.objective.intro"))
        with gr.Row():
            for name in PREFERENCE_FIELDS:
                train_components[name] = _train_component(name, getattr(config.train, name))
    with gr.Accordion(T("train.after"), open=False):
        with gr.Row():
            for name in AFTER_FIELDS:
                train_components[name] = _train_component(name, getattr(config.train, name))
    with gr.Accordion(T("train.save"), open=False):
        gr.Markdown(T("train.save.help"))
        with gr.Row():
            preset_name_box = gr.Textbox(label=T("train.preset_name.label"),
                                         placeholder=T("train.preset_name.placeholder"),
                                         info=T("train.preset_name.info"))
            save_btn = gr.Button(T("train.save.button"))
            settings_run_dropdown = gr.Dropdown(label=T("train.run_settings.label"), allow_custom_value=True,
                                                info=T("train.run_settings.info"))
            settings_btn = gr.Button(T("train.run_settings.button"))
        save_md = gr.Markdown()
    data.training_md.render()  # what Start will train on, right above it
    with gr.Row():
        start_btn = gr.Button(T("train.start"), variant="primary")
        stop_btn = gr.Button(T("train.stop"), variant="stop")
        resume_btn = gr.Button(T("train.resume"))
    run_dropdown = gr.Dropdown(label=T("train.run_shown.label"), info=T("train.run_shown.info"),
                               allow_custom_value=True)
    progress_html = gr.HTML()
    with gr.Row(visible=False) as next_row:  # once the run shown has a saved adapter: where to go next
        gr.Markdown(T("train.next.help"))
        compare_next_btn = gr.Button(T("train.next.compare"), variant="primary")
        evaluate_next_btn = gr.Button(T("train.next.evaluate"))
    loss_plot = gr.Plot(label=T("train.loss.label"))
    timer = gr.Timer(1.0)
    with gr.Accordion(T("train.sweep"), open=False):
        gr.Markdown(T("train.sweep.help"))
        with gr.Row():
            ranks_box = gr.Textbox(", ".join(map(str, DEFAULT_RANKS)), label=T("train.sweep.ranks.label"),
                                   info=T("train.sweep.ranks.info"))
            keep_ratio_checkbox = gr.Checkbox(True, label=T("train.sweep.keep_ratio.label"),
                                              info=T("train.sweep.keep_ratio.info"))
            sweep_btn = gr.Button(T("train.sweep.button"))
        sweep_md = gr.Markdown()

    # The run's settings by name (every handler below takes them as keyword arguments, which are also the API's
    # parameter names): config_from_form reads them by name and form_values writes them back by name.
    form = {"model": model_box, "method": method_dropdown, **knob_components, **train_components,
            "data_path": data.data_path_box, "val_size": data.val_size_slider, "test_size": data.test_size_slider,
            "split_seed": data.split_seed_number, "run_name": run_name_box}
    defaults = TrainConfig()

    def config_from_form(viewer: Viewer = SINGLE_USER, **values: Any) -> RunConfig:
        """The form's values as a run config, its data path (and starting adapter) checked for this viewer."""
        method = values["method"]
        knobs = {k: _whole(values[k], KNOBS[k].default) for k in get_method(method).knobs}
        config = RunConfig.from_dict({
            "name": values["run_name"] or "", "model": {"name_or_path": values["model"]},
            "method": {"name": method, **knobs},
            "train": {k: _whole(values[k], getattr(defaults, k)) for k in train_components},
            # start, sweep, preflight and save all come through here: the data path is checked once for all
            "data": {"path": workbench.check_data_path(values["data_path"], viewer), "val_size": values["val_size"],
                     "test_size": values["test_size"], "split_seed": int(values["split_seed"] or 0)},
        })
        return workbench.check_start_adapter(config, viewer)

    def values_of(loaded: RunConfig) -> dict:  # a config as the form's values, by name
        return {"model": loaded.model.name_or_path, "method": loaded.method.name,
                **{k: getattr(loaded.method, k) for k in knob_components},
                **{k: getattr(loaded.train, k) for k in train_components}, "data_path": loaded.data.path,
                "val_size": loaded.data.val_size, "test_size": loaded.data.test_size,
                "split_seed": loaded.data.split_seed, "run_name": loaded.name}

    def form_values(loaded: RunConfig) -> dict:  # a config back into the form, by component
        return {form[key]: value for key, value in values_of(loaded).items()}

    def restore(saved: dict | None, lang: str = "en", viewer: Viewer = SINGLE_USER) -> tuple[dict, list[str]]:
        """A browser's saved form (values by name) back into the form, if it still makes a valid run: data that is
        gone falls back to the default sample, settings this version refuses to the defaults; each with a note (in
        `lang`)."""
        defaults_by_name = values_of(config)
        values = {**defaults_by_name, **{k: v for k, v in (saved or {}).items() if k in form}}
        notes = []
        try:
            resolve_data_path(workbench.check_data_path(values["data_path"], viewer)).stat()
        except (ValueError, OSError):
            if values["data_path"]:
                notes.append(text("train.restore.data_gone", lang, path=values["data_path"]))
            values["data_path"] = defaults_by_name["data_path"]
        try:
            config_from_form(viewer, **values)
        except (ValueError, RuntimeError) as exc:
            notes.append(text("train.restore.settings_refused", lang, error=on_screen(say(exc, lang))))
            values = {**defaults_by_name, "data_path": values["data_path"]}
        return {form[key]: value for key, value in values.items()}, notes

    def choices(request: gr.Request | None) -> list[tuple[str, str]]:  # the runs this browser's account may see
        return workbench.run_choices(viewer=viewer_of(workbench, request))

    def on_choices_focus(request: gr.Request = None):  # runs made since, also in another browser or the CLI
        return gr.update(choices=choices(request))

    def checked(config: RunConfig) -> list[str]:  # a run id in "Continue from adapter" is checked as its folder
        return launch_problems(workbench.store, config)  # the CLI's `train` asks the same

    def on_form_change(request: gr.Request = None, **values):
        try:
            plan = preflight(resolve_init_adapter(workbench.store,
                                                  config_from_form(viewer_of(workbench, request), **values)))
        except (ValueError, RuntimeError, OSError) as exc:
            return f"⚠️ {on_screen(say(exc, lang_of(request)))}"
        return plan.summary(lang_of(request))

    def on_method_change(method: str, request: gr.Request = None):  # any change, also from a preset: card and
        spec = get_method(method)  # visible knobs follow
        return [method_card(method, lang_of(request)),
                *[gr.update(visible=name in spec.knobs) for name in knob_components]]

    def on_start(request: gr.Request = None, **values):
        try:
            viewer = viewer_of(workbench, request)
            config = workbench.class_budget(config_from_form(viewer, **values), viewer)
            problems = checked(config)
            if problems:  # refuse before queueing: the reason and a way out, nothing started
                raise ConfigError("; ".join(problems))
            record = workbench.jobs.submit(config, owner=viewer.owner)
        except (ConfigError, ValueError, RuntimeError) as exc:
            raise gr.Error(on_screen(say(exc, lang_of(request)))) from None
        return gr.update(choices=workbench.run_choices(viewer=viewer), value=record.run_id)

    def on_queue_sweep(ranks_text: str, keep_ratio: bool, request: gr.Request = None, **values):
        lang = lang_of(request)
        try:
            viewer = viewer_of(workbench, request)
            config = workbench.class_budget(config_from_form(viewer, **values), viewer)
            configs = sweep_configs(config, parse_ranks(ranks_text or ""), bool(keep_ratio), config.name)
            problems = [text("train.sweep.problem", lang, rank=c.method.rank, problem=p)
                        for c in configs for p in checked(c)]
            if problems:  # all or nothing: a half-queued sweep would chart a misleading curve
                raise ConfigError("; ".join(problems))
            records = [workbench.jobs.submit(c, owner=viewer.owner) for c in configs]
        except (ConfigError, ValueError, RuntimeError) as exc:
            raise gr.Error(on_screen(say(exc, lang))) from None
        lines = [text("train.sweep.queued", lang, count=len(records))]
        for record in records:
            position = workbench.jobs.queue_position(record.run_id)
            where = (text("train.sweep.position", lang, position=position) if position
                     else text("train.sweep.training_now", lang))
            lines.append(f"- **{record.name}** · `{record.run_id}` · {where}")
        return "\n".join(lines), [r.run_id for r in records]

    def on_sweep_queued(run_ids: list[str], request: gr.Request = None):  # the sweep's first run in "Run shown"
        return gr.update(choices=choices(request), value=run_ids[0] if run_ids else None)

    def on_resume(run_id: str, request: gr.Request = None):
        lang = lang_of(request)
        if not run_id:
            raise gr.Error(text("train.resume.none", lang))
        try:
            store_of(workbench, request).run(run_id, change=True)
            record = workbench.jobs.resume(run_id)
        except (ValueError, StoreError) as exc:
            raise gr.Error(text("train.resume.refused", lang, error=say(exc, lang))) from None
        gr.Info(text("train.resume.started", lang, name=record.name))
        return gr.update(choices=choices(request), value=run_id)

    def on_stop(run_id: str, request: gr.Request = None):  # a waiting run is taken out of the queue; a training
        if run_id:  # one stops at its next step
            try:
                store_of(workbench, request).run(run_id, change=True)
            except (ValueError, StoreError) as exc:
                raise gr.Error(say(exc, lang_of(request))) from None
        waiting = bool(run_id) and workbench.jobs.queue_position(run_id) is not None
        if run_id and workbench.jobs.stop(run_id):
            gr.Info(text("train.stop.cancelled" if waiting else "train.stop.stopping", lang_of(request)))

    figures_lock = threading.Lock()
    figures: dict[tuple, Any] = {}  # the latest loss figure per run state and language, shared by every browser

    def loss_figure(key: tuple, rows: list[dict]) -> Any:  # key: (run id, rows, status, name, language)
        with figures_lock:  # polls of many browsers run at once: one changes the shared cache at a time
            figure = figures.get(key)
        if figure is None:
            figure = make_loss_figure({key[3]: rows}, lang=key[4])
            with figures_lock:
                while len(figures) >= 128:  # a class's runs, each in two languages
                    figures.pop(next(iter(figures)))
                figures[key] = figure
        return figure

    notes: dict[tuple, str] = {}  # a finished run's warnings by (run, its scores' time, language), read once

    def summary_notes(run_id: str, lang: str) -> str:
        """Under a finished run's line: a label accuracy at chance on its test split (the format learned, not the
        task) and what to try."""
        path = workbench.store.run_dir(run_id) / "eval.json"
        try:
            key = (run_id, path.stat().st_mtime, lang)
        except OSError:  # not scored (yet)
            return ""
        if key not in notes:
            report = read_report(workbench.store, run_id)
            warnings = chance_notes(report) if report is not None else []
            notes[key] = "".join(f"<div style='color:#92400e'>⚠️ {html.escape(say(note, lang))}</div>"
                                 for note in warnings)
        return notes[key]

    def on_poll(run_id: str, seen: tuple | None = None, request: gr.Request = None):
        lang = lang_of(request)
        if not run_id:
            return gr.skip(), gr.skip(), seen, gr.update(visible=False)
        store = store_of(workbench, request)
        try:
            workbench.store.run_dir(run_id)  # not a run id at all: refused
            if store.viewer.in_class and not store.viewer.teacher:  # a student's own or shared runs only (a
                store.run(run_id)  # deleted one included: the same refusal, whether it ever existed or not)
        except StoreError as exc:
            raise gr.Error(say(exc, lang)) from None
        try:
            snapshot = workbench.jobs.snapshot(run_id)
            rows = workbench.store.read_metrics(run_id)
        except StoreError as exc:  # a run deleted in the Runs tab: said in place, not as a toast every second
            deleted = text("train.run_deleted", lang, error=html.escape(say(exc, lang)))
            return f"<div style='color:#b91c1c'>{deleted}</div>", gr.skip(), seen, gr.update(visible=False)
        name = workbench.store.get_run(run_id).name
        key = (run_id, len(rows), snapshot.status, name, lang)
        # Redraw the chart only when there is something new: polling stays light while a run trains. Every
        # browser watching the same run gets the one figure drawn for that state (a class polls the same run).
        # The legend names the run by its name, as the Runs tab does.
        line = format_progress(snapshot, lang) + (summary_notes(run_id, lang) if snapshot.finished else "")
        if key == seen:
            return line, gr.skip(), key, gr.skip()
        trained = snapshot.status in NEXT_STATUSES and has_trained_weights(workbench.store.adapter_dir(run_id))
        return line, loss_figure(key, rows), key, gr.update(visible=trained)

    def on_preset(key: str, request: gr.Request = None):
        if not key:
            raise gr.Error(text("train.preset.none", lang_of(request)))
        try:
            return form_values(read_preset(key, workbench.preset_home(viewer_of(workbench, request)),
                                           allow_paths=False, shared_home=workbench.class_home))
        except ConfigError as exc:
            raise gr.Error(on_screen(say(exc, lang_of(request)))) from None

    def on_save_preset(preset_name: str, request: gr.Request = None, **values):
        lang = lang_of(request)
        try:
            viewer = viewer_of(workbench, request)
            preset, replaced = save_user_preset(config_from_form(viewer, **values), preset_name,
                                                workbench.preset_home(viewer))
        except (ConfigError, ValueError, OSError) as exc:
            raise gr.Error(on_screen(say(exc, lang))) from None
        saved = text("train.preset.saved_message", lang, name=preset.name, path=preset.path)
        if replaced:
            saved += text("train.preset.backup", lang, backup=f"{preset.path.name}.bak")
        return saved, gr.update(choices=preset_choices(workbench, lang, viewer), value=preset.key)

    def on_run_settings(run_id: str, request: gr.Request = None):
        lang = lang_of(request)
        if not run_id:
            raise gr.Error(text("train.run_settings.none", lang))
        try:
            return form_values(store_of(workbench, request).load_config(run_id))
        except (StoreError, ConfigError, ValueError) as exc:
            raise gr.Error(text("train.run_settings.refused", lang, error=on_screen(say(exc, lang)))) from None

    def on_data_change(path: str, request: gr.Request = None):  # instructions train with SFT, preference pairs
        try:  # with DPO: follow the data
            kind = file_kind(resolve_data_path(workbench.check_data_path(path, viewer_of(workbench, request))))
        except (DataError, OSError, ValueError):
            return gr.skip(), gr.skip()
        return ("dpo", gr.update(open=True)) if kind == "preference" else ("sft", gr.skip())

    # The Data tab's histogram marks this run's max length, and its report counts the examples it would cut.
    train_components["max_seq_len"].change(lambda value: int(value or 0), train_components["max_seq_len"],
                                           data.max_len_state, api_visibility="private",
                                           trigger_mode="always_last").then(
        data.on_show, inputs_kwargs=data.show_inputs, outputs=data.outputs, api_visibility="private",
        show_progress="hidden")
    follow_answer_lengths(train_components["eval_max_new_tokens"], data)  # scoring after training: answers whole
    data.data_path_box.change(on_data_change, data.data_path_box,
                              [train_components["objective"], objective_accordion], api_visibility="private")
    fields = list(form.values())
    preset_btn.click(on_preset, preset_dropdown, fields, api_name="load_preset")
    def on_preset_focus(request: gr.Request = None):  # presets saved since, also from the CLI or another browser
        return gr.update(choices=preset_choices(workbench, lang_of(request), viewer_of(workbench, request)))

    preset_dropdown.focus(on_preset_focus, None, preset_dropdown, api_visibility="private")
    save_btn.click(on_save_preset, inputs_kwargs={"preset_name": preset_name_box, **form},
                   outputs=[save_md, preset_dropdown], api_name="save_preset")
    settings_btn.click(on_run_settings, settings_run_dropdown, fields, api_name="load_run_settings")
    settings_run_dropdown.focus(on_choices_focus, None, settings_run_dropdown, api_visibility="private")
    method_dropdown.change(on_method_change, method_dropdown, [card_md, *knob_components.values()],
                           api_visibility="private")
    # Picked by hand: also take the method's usual learning rate (full fine-tuning wants ~100× less than LoRA).
    method_dropdown.input(lambda method: get_method(method).learning_rate, method_dropdown,
                          train_components["learning_rate"], api_visibility="private")
    for component in [model_box, method_dropdown, *knob_components.values()]:
        component.change(on_form_change, inputs_kwargs=form, outputs=params_md, api_visibility="private",
                         show_progress="hidden")
    start_btn.click(on_start, inputs_kwargs=form, outputs=run_dropdown, api_name="start_run")
    stop_btn.click(on_stop, run_dropdown, None, api_name="stop_run")
    resume_btn.click(on_resume, run_dropdown, run_dropdown, api_name="resume_run")
    sweep_state = gr.State([])
    sweep_btn.click(on_queue_sweep, inputs_kwargs={"ranks_text": ranks_box, "keep_ratio": keep_ratio_checkbox,
                                                   **form}, outputs=[sweep_md, sweep_state],
                    api_name="queue_sweep").success(on_sweep_queued, sweep_state, run_dropdown,
                                                    api_visibility="private")
    seen_state = gr.State(None)
    timer.tick(on_poll, [run_dropdown, seen_state], [progress_html, loss_plot, seen_state, next_row],
               api_visibility="private", show_progress="hidden")
    def on_show_run(run_id: str, request: gr.Request = None):  # the run picked: its line and chart at once
        return on_poll(run_id, None, request)[:2]

    run_dropdown.change(on_show_run, run_dropdown, [progress_html, loss_plot], api_name="poll_run")
    run_dropdown.focus(on_choices_focus, None, run_dropdown, api_visibility="private")

    def on_page_load(request: gr.Request = None):  # a reload (or an app restart) shows the newest run and its curve
        runs = choices(request)  # again
        return gr.update(choices=runs, value=runs[0][1] if runs else None)

    return TrainTab(run_dropdown, compare_next_btn, evaluate_next_btn, model_box, form, params_md, on_form_change,
                    on_page_load, restore)

