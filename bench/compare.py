"""Compare sides batched in one forward pass vs the same sides generated one after another, and the memory of a 4-way
compare.

    python bench/compare.py [--tokens 48] [--repeats 2]

Two small LoRA adapters are trained first (a few steps, so they answer differently from the base). Then, on the
same prompts with greedy decoding, N sides (2: base + LoRA; 4: base + two LoRAs + base with 3 few-shot examples)
are answered three ways:

- generate: each side alone with a plain `model.generate` (transformers + peft as they come, a model of its own),
  one after another: the N sequential generates a user would otherwise write;
- in turn: each side alone on the engine's own one-side path, one after another;
- batched: the engine's Compare path, one forward pass per token for all sides.

ratio_N is generate / batched, ratio_N_engine is in turn / batched (the stricter baseline: the engine's one-side
path is itself faster than generate). Batched answers are checked to equal the in-turn ones token for token; the
generate answers are counted (a different kernel may round a near-tie the other way). Memory: resident memory with
the base model loaded alone vs the peak during the batched 4-way compare (adapters loaded; memory_ratio) and after it
(memory_ratio_after). Last, one side on the Compare path against a plain `model.generate` (chat_ratio, ttft_ratio).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.memory import PeakRss, rss_mb  # noqa: E402

PROMPTS = ["Triage this customer message.\n\nI was charged twice for my order and nobody answers my emails.",
           "다음 리뷰의 감정과 주제를 분류하세요.\n\n배송은 빨랐는데 포장이 엉망이었어요.",
           "Write one sentence about why the sky is blue."]


def train_adapters(folder: Path) -> list[str]:
    from workbench.config import RunConfig
    from workbench.train.loop import run_training

    paths = []
    for seed in (0, 1):
        config = RunConfig().with_overrides({
            "train.max_steps": 4, "train.batch_size": 2, "train.max_seq_len": 128, "train.eval_every": 0,
            "train.learning_rate": 0.005, "train.seed": seed, "train.general_every": 0, "train.eval_test": False})
        paths.append(run_training(config, folder / f"lora{seed}").adapter_path)
    return paths


def timed(engine, sides, sampling, batched: bool, repeats: int) -> tuple[float, list, int]:
    """Best time over `repeats` to answer every prompt with every side: all sides in one batched stream, or each
    side generated alone, one after another (N sequential generates, each on the engine's fastest one-side path)."""
    best, answers, tokens = float("inf"), [], 0
    for _ in range(repeats):
        engine.prompt_cache.clear()  # each repeat starts cold: only what its own prompts share is reused
        started, answers, tokens = time.perf_counter(), [], 0
        for prompt in PROMPTS:
            history = [{"role": "user", "content": prompt}]
            groups = [sides] if batched else [[side] for side in sides]
            states = []
            for group in groups:
                for last in engine.stream(group, [history] * len(group), sampling):  # noqa: B007
                    pass
                states += last
            answers.append([s.token_ids for s in states])
            tokens += sum(s.new_tokens for s in states)
        best = min(best, time.perf_counter() - started)
    return best, answers, tokens


class FirstToken:
    """A generate() streamer that notes when the first new token arrives (put() gets the prompt first)."""

    def __init__(self) -> None:
        self.calls, self.first = 0, None

    def put(self, value) -> None:
        self.calls += 1
        if self.calls == 2:
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


class PlainGenerate:
    """The sides as a user would answer them without the engine: a model of its own, loaded as transformers gives
    it, the adapters in one peft model, and `model.generate` once per side."""

    def __init__(self, adapters: list[str]) -> None:
        from peft import PeftModel

        from workbench.config import ModelConfig
        from workbench.models.loading import load_model

        loaded = load_model(ModelConfig())
        self.tokenizer, self.base = loaded.tokenizer, loaded.model
        self.peft = PeftModel.from_pretrained(self.base, adapters[0], adapter_name="lora0")
        for index, path in enumerate(adapters[1:], 1):
            self.peft.load_adapter(path, adapter_name=f"lora{index}")
        self.peft.eval()

    def answer(self, side, history: list[dict], max_new_tokens: int) -> tuple[list[int], float, float]:
        """Greedy token ids, time to first token and total seconds of one side."""
        import contextlib

        import torch

        from workbench.data.formatting import encode_prompt

        ids = torch.tensor([encode_prompt(side.messages(history), self.tokenizer)])
        if side.adapter:
            self.peft.set_adapter(side.adapter)
        context = self.peft.disable_adapter() if not side.adapter else contextlib.nullcontext()
        streamer, started = FirstToken(), time.perf_counter()
        with context, torch.inference_mode():
            out = self.peft.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=max_new_tokens, streamer=streamer, temperature=None, top_p=None,
                                     top_k=None, pad_token_id=self.tokenizer.pad_token_id)
        seconds = time.perf_counter() - started
        new, eos = out[0, ids.shape[1]:].tolist(), self.tokenizer.eos_token_id
        new = new[:new.index(eos)] if eos in new else new
        return new, (streamer.first or time.perf_counter()) - started, seconds

    def timed(self, sides, max_new_tokens: int, repeats: int) -> tuple[float, list]:
        """Best time over `repeats` to answer every prompt with every side, one generate after another."""
        best, answers = float("inf"), []
        for _ in range(repeats):
            started, answers = time.perf_counter(), []
            for prompt in PROMPTS:
                history = [{"role": "user", "content": prompt}]
                answers.append([self.answer(side, history, max_new_tokens)[0] for side in sides])
            best = min(best, time.perf_counter() - started)
        return best, answers


def against_generate(engine, plain: PlainGenerate, sampling, repeats: int) -> dict:
    """One side on the Compare path vs a plain `model.generate` on the same prompts: time to first token and
    tokens/s (best of `repeats`), greedy; how many answers are the same."""
    from workbench.generate.engine import Side

    best = {"raw": [float("inf"), float("inf")], "ours": [float("inf"), float("inf")]}
    for _ in range(repeats):
        engine.prompt_cache.clear()
        raw_ttft = raw_s = ours_ttft = ours_s = 0.0
        raw_tokens = ours_tokens = same = 0
        for prompt in PROMPTS:
            history = [{"role": "user", "content": prompt}]
            raw_ids, ttft, seconds = plain.answer(Side("base"), history, sampling.max_new_tokens)
            raw_s, raw_ttft, raw_tokens = raw_s + seconds, raw_ttft + ttft, raw_tokens + len(raw_ids)
            started = time.perf_counter()
            state = engine.answer(Side("base"), history, sampling)
            ours_s += time.perf_counter() - started
            ours_ttft, ours_tokens = ours_ttft + state.ttft, ours_tokens + state.new_tokens
            same += state.token_ids == raw_ids
        best["raw"] = [min(best["raw"][0], raw_ttft / len(PROMPTS)), min(best["raw"][1], raw_s / raw_tokens)]
        best["ours"] = [min(best["ours"][0], ours_ttft / len(PROMPTS)), min(best["ours"][1], ours_s / ours_tokens)]
    return {"tokens": ours_tokens, "same_answers": f"{same}/{len(PROMPTS)}", "raw_ttft_s": best["raw"][0],
            "ours_ttft_s": best["ours"][0], "raw_tokens_per_s": 1 / best["raw"][1],
            "ours_tokens_per_s": 1 / best["ours"][1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=48, help="max new tokens per answer")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats; the best is kept")
    args = parser.parse_args()

    import torch

    from workbench.config import ModelConfig
    from workbench.generate.engine import ChatEngine, Side
    from workbench.generate.lineups import few_shot_turns
    from workbench.generate.sampling import SamplingConfig
    from workbench.models.loading import free_memory

    with tempfile.TemporaryDirectory() as folder:
        adapters = train_adapters(Path(folder))
        free_memory()
        torch.manual_seed(0)
        engine = ChatEngine(ModelConfig())
        sampling = SamplingConfig(temperature=0.0, max_new_tokens=args.tokens)
        timed(engine, [Side("base")], sampling, True, 1)  # the base alone, loaded and warm: one model's memory
        free_memory()
        one_model = rss_mb()
        shots = few_shot_turns("sample:en_ticket_triage", 3, seed=0)
        setups = {2: [Side("base"), Side("lora0", "lora0")],
                  4: [Side("base"), Side("lora0", "lora0"), Side("lora1", "lora1"), Side("few-shot", None, shots)]}
        plain = PlainGenerate(adapters)  # measured first, then let go: not part of the compare's memory
        single = against_generate(engine, plain, sampling, args.repeats)
        plain.timed(setups[2], args.tokens, 1)  # warm-up
        generated = {n: plain.timed(sides, args.tokens, args.repeats) for n, sides in setups.items()}
        plain = None
        free_memory()
        chat_ratio = single["ours_tokens_per_s"] / single["raw_tokens_per_s"]
        print(f"1 side vs model.generate: first token {single['ours_ttft_s'] * 1000:.0f} ms vs "
              f"{single['raw_ttft_s'] * 1000:.0f} ms · {single['ours_tokens_per_s']:.1f} vs "
              f"{single['raw_tokens_per_s']:.1f} tok/s · ×{chat_ratio:.2f} · same answers {single['same_answers']}")
        for index, path in enumerate(adapters):
            engine.ensure_adapter(f"lora{index}", path)
        timed(engine, setups[2], sampling, True, 1)  # warm-up
        results = {}
        for n, sides in setups.items():
            gen_s, gen_answers = generated[n]
            seq_s, seq_answers, tokens = timed(engine, sides, sampling, False, args.repeats)
            free_memory()  # what the runs one after another left in the heap is not the compare's
            with PeakRss() as peak:
                bat_s, bat_answers, _ = timed(engine, sides, sampling, True, args.repeats)
            assert seq_answers == bat_answers, f"{n} sides: batched answers differ from one-at-a-time"
            same = sum(a == b for row_a, row_b in zip(gen_answers, bat_answers) for a, b in zip(row_a, row_b))
            results[n] = {"generate_s": gen_s, "sequential_s": seq_s, "batched_s": bat_s, "tokens": tokens,
                          "ratio": gen_s / bat_s, "ratio_engine": seq_s / bat_s,
                          "same_as_generate": f"{same}/{n * len(PROMPTS)}"}
            print(f"{n} sides: {tokens} tokens · generate one after another {gen_s:.2f} s "
                  f"({tokens / gen_s:.1f} tok/s) · engine one after another {seq_s:.2f} s "
                  f"({tokens / seq_s:.1f} tok/s) · batched {bat_s:.2f} s ({tokens / bat_s:.1f} tok/s) · "
                  f"×{gen_s / bat_s:.2f} vs generate, ×{seq_s / bat_s:.2f} vs the engine in turn · same answers "
                  f"as in turn, {same}/{n * len(PROMPTS)} as generate")
        four_way_peak = peak.peak  # the last setup measured is the 4-way one
        free_memory()
        four_way = rss_mb()
    print(f"memory: base alone {one_model:.0f} MB · during the batched 4-way compare at most {four_way_peak:.0f} "
          f"MB (×{four_way_peak / one_model:.3f}) · after it {four_way:.0f} MB (×{four_way / one_model:.3f})")
    print(json.dumps({"ratio_2": round(results[2]["ratio"], 3), "ratio_4": round(results[4]["ratio"], 3),
                      "ratio_2_engine": round(results[2]["ratio_engine"], 3),
                      "ratio_4_engine": round(results[4]["ratio_engine"], 3),
                      "memory_ratio": round(four_way_peak / one_model, 3),
                      "memory_ratio_after": round(four_way / one_model, 3),
                      "chat_ratio": round(chat_ratio, 3),
                      "ttft_ratio": round(single["raw_ttft_s"] / single["ours_ttft_s"], 3), "single_side": single,
                      "threads": torch.get_num_threads(),
                      "max_new_tokens": args.tokens, "results": results}))


if __name__ == "__main__":
    main()
