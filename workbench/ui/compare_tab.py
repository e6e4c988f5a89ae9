"""Compare tab: the base model and a trained adapter answer the same prompt, side by side, streaming."""

from __future__ import annotations

import gradio as gr

from workbench.chat import SamplingConfig, Side
from workbench.config import ConfigError
from workbench.context import Workbench
from workbench.ui.train_tab import TrainTab

SAMPLING_HELP = {
    "temperature": "0 = always the most likely token (repeatable); higher = more varied answers.",
    "top_p": "Sample only from the smallest set of tokens whose probabilities add up to this.",
    "max_new_tokens": "Longest answer, in tokens.",
    "seed": "The same seed with the same settings gives the same sampled answer.",
}


def _adapter_choices(workbench: Workbench) -> list[tuple[str, str]]:
    return [(f"{r.name} · {r.method} · {r.steps} steps", r.run_id) for r in workbench.adapters()]


def build_compare_tab(workbench: Workbench, train: TrainTab) -> None:
    gr.Markdown("Both sides get the same prompt, history and sampling settings; only the weights differ. "
                "One copy of the base model serves both: the right side switches the adapter on.")
    with gr.Row():
        adapter_dropdown = gr.Dropdown(_adapter_choices(workbench), label="Adapter (right side)",
                                       info="A finished or stopped run.", scale=3, allow_custom_value=True)
        refresh_btn = gr.Button("↻ Refresh", scale=1)
    with gr.Row():
        temperature_slider = gr.Slider(0, 2, value=0.0, step=0.05, label="Temperature",
                                       info=SAMPLING_HELP["temperature"])
        top_p_slider = gr.Slider(0.05, 1, value=0.9, step=0.05, label="Top-p", info=SAMPLING_HELP["top_p"])
        max_tokens_slider = gr.Slider(8, 512, value=96, step=8, label="Max new tokens",
                                      info=SAMPLING_HELP["max_new_tokens"])
        seed_number = gr.Number(0, precision=0, label="Seed", info=SAMPLING_HELP["seed"])
    with gr.Row():
        with gr.Column():
            base_chatbot = gr.Chatbot(label="Base model", height=380)
            base_stats_md = gr.Markdown()
        with gr.Column():
            adapter_chatbot = gr.Chatbot(label="Base + adapter", height=380)
            adapter_stats_md = gr.Markdown()
    prompt_box = gr.Textbox(label="Prompt", lines=3, placeholder="Ask both sides the same thing…")
    with gr.Row():
        send_btn = gr.Button("Send", variant="primary")
        clear_btn = gr.Button("Clear")
    base_history = gr.State([])
    adapter_history = gr.State([])

    def on_send(prompt, run_id, temperature, top_p, max_tokens, seed, base_hist, adapter_hist):
        if not prompt or not prompt.strip():
            raise gr.Error("Type a prompt first.")
        try:
            sampling = SamplingConfig(temperature=float(temperature), top_p=float(top_p),
                                      max_new_tokens=int(max_tokens), seed=int(seed or 0))
            model = workbench.store.load_config(run_id).model.name_or_path if run_id else "embedded"
            engine = workbench.engine(model)
            sides = [Side("base")]
            if run_id:
                engine.ensure_adapter(run_id, workbench.store.adapter_dir(run_id))
                sides.append(Side("adapter", run_id))
        except (ConfigError, ValueError, RuntimeError, OSError) as exc:
            raise gr.Error(str(exc)) from None
        user = {"role": "user", "content": prompt}
        histories = [base_hist + [user], adapter_hist + [user]][:len(sides)]
        for states in engine.stream(sides, histories, sampling):
            shown = [h + [{"role": "assistant", "content": s.text}] for h, s in zip(histories, states)]
            stats = [s.stats_line() for s in states]
            if len(sides) == 1:  # shown, not stored: the right pane's history stays as it was
                placeholder = adapter_hist + [user, {"role": "assistant", "content": "(choose an adapter)"}]
                yield "", shown[0], placeholder, stats[0], "", shown[0], adapter_hist
            else:
                yield "", shown[0], shown[1], stats[0], stats[1], shown[0], shown[1]

    def on_clear():
        return [], [], "", "", [], []

    inputs = [prompt_box, adapter_dropdown, temperature_slider, top_p_slider, max_tokens_slider, seed_number,
              base_history, adapter_history]
    outputs = [prompt_box, base_chatbot, adapter_chatbot, base_stats_md, adapter_stats_md, base_history,
               adapter_history]
    send_btn.click(on_send, inputs, outputs, api_name="compare")
    prompt_box.submit(on_send, inputs, outputs, api_visibility="private")
    clear_btn.click(on_clear, None, [base_chatbot, adapter_chatbot, base_stats_md, adapter_stats_md,
                                     base_history, adapter_history], api_name="clear_compare")
    refresh_btn.click(lambda: gr.update(choices=_adapter_choices(workbench)), None, adapter_dropdown,
                      api_name="list_adapters")
    adapter_dropdown.focus(lambda: gr.update(choices=_adapter_choices(workbench)), None, adapter_dropdown,
                           api_visibility="private")
