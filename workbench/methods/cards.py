"""Explanation cards: one per method, in plain words, shown beside the method picker.

Each card says what the method trains (with its formula), what it costs, and when to pick it, followed by a
one-line summary in Korean for our Korean-speaking learners. Every registered method must have a card (tested).
"""

from __future__ import annotations

from workbench.methods.registry import get_method

FAMILIES = {
    "reparameterisation": "Re-parameterisation: the frozen weight W gets a small, cheaply stored change.",
    "additive": "Additive: small new pieces are added inside the model; the original weights stay frozen.",
    "soft prompt": "Soft prompt: learned vectors are put in front of the input; the model is untouched.",
    "selective": "Selective: some of the model's own weights train, the rest are frozen.",
    "full": "Full: every weight trains.",
}

CARDS: dict[str, str] = {
    "lora": """**LoRA — low-rank adaptation** · `W' = W + (α/r)·B·A`
- **Trains:** two thin matrices per adapted layer, B (d×r) and A (r×k), beside the frozen W. With r = 8 on a
  576×576 projection that is 9,216 numbers instead of 331,776.
- **Costs:** little memory (no gradients or optimiser state for W); no extra inference cost once merged.
- **Pick it when:** you want the default — it learns formats and styles quickly. Start at rank 4–8 and double it
  until the validation loss stops improving (usually somewhere in 4–32).
- **한국어:** *원래 가중치는 얼리고 작은 두 행렬 B·A만 학습합니다. 랭크는 4→8→16으로 올려 보며 검증 손실이 더 안 줄 때 멈추세요.*""",
    "qlora": """**QLoRA — LoRA on a quantised base** · `W' = dequant(W₄) + (α/r)·B·A`
- **Trains:** the same B·A as LoRA; the frozen base is stored in 4-bit NF4 with double quantisation (or 8-bit)
  and computed in bf16.
- **Costs:** about a quarter of the base model's memory, a little speed for de-quantising; needs a CUDA GPU.
- **Pick it when:** the model does not fit in GPU memory in 16 bits — e.g. a 7B model on a 24 GB card.
- **한국어:** *베이스 모델을 4비트로 압축해 올리고 그 위에 LoRA를 학습합니다. GPU 메모리가 부족할 때의 선택입니다 (CUDA 필요).*""",
    "dora": """**DoRA — weight-decomposed LoRA** · `W' = m · (W + B·A) / ‖W + B·A‖`
- **Trains:** a magnitude vector m per output, plus a LoRA update of the direction.
- **Costs:** slightly more parameters and compute than LoRA at the same rank.
- **Pick it when:** LoRA at low rank is not quite enough; DoRA often closes part of the gap to full fine-tuning.
- **한국어:** *가중치를 크기(m)와 방향으로 나눠, 크기는 직접 · 방향은 LoRA로 학습합니다. 같은 랭크에서 LoRA보다 조금 더 정교합니다.*""",
    "rslora": """**rsLoRA — rank-stabilised LoRA** · `W' = W + (α/√r)·B·A`
- **Trains:** exactly what LoRA trains; only the scale changes from α/r to α/√r.
- **Costs:** the same as LoRA.
- **Pick it when:** you use high ranks (32+): with α/r the update shrinks as r grows; α/√r keeps it learning.
- **한국어:** *LoRA와 같지만 스케일을 α/√r로 바꿔, 랭크를 크게 올려도 학습이 약해지지 않게 합니다.*""",
    "ia3": """**IA3 — scaling activations** · `h' = ℓ ⊙ h`
- **Trains:** one vector ℓ per adapted layer that rescales keys, values and the feed-forward output element by
  element — thousands of numbers, not millions.
- **Costs:** the fewest trainable parameters of all, tiny files; wants a higher learning rate (~1e-2).
- **Pick it when:** you keep many small task adapters, or memory is very tight; expect less capacity than LoRA.
- **한국어:** *각 층의 키·값·피드포워드 출력에 곱해지는 벡터 ℓ만 학습합니다. 학습 파라미터가 가장 적습니다.*""",
    "prompt_tuning": """**Prompt tuning — learned virtual tokens** · `input = [P; x]`
- **Trains:** n vectors P put in front of every input's embeddings; the model itself does not change.
- **Costs:** n × hidden size parameters; every input gets n tokens longer at inference.
- **Pick it when:** you want one frozen model serving many tasks, each with its own small prompt. Starting the
  vectors from a task description ("init text") helps small models a lot.
- **한국어:** *입력 앞에 붙는 가상 토큰 P만 학습합니다([P; x]). 모델은 그대로이고, 작업마다 프롬프트만 바꿔 끼울 수 있습니다.*""",
    "prefix_tuning": """**Prefix tuning — learned keys and values in every layer** · `attn(q, [Pₖ; K], [Pᵥ; V])`
- **Trains:** per layer, n key and n value vectors that every token can attend to.
- **Costs:** more parameters than prompt tuning (layers × 2 × n × kv-width), no change to the weights.
- **Pick it when:** prompt tuning is too weak — acting in every layer gives more control. Random prefixes disturb
  the model at first: expect a high starting loss.
- **한국어:** *모든 층의 어텐션에 학습된 키·값 접두어를 붙입니다. 프롬프트 튜닝보다 영향력이 크고 파라미터도 더 많습니다.*""",
    "p_tuning": """**P-tuning — virtual tokens from a prompt encoder** · `P = MLP(E)`
- **Trains:** a small MLP that produces the virtual tokens; after training only its output P is needed.
- **Costs:** like prompt tuning at inference; the encoder makes optimisation steadier during training.
- **Pick it when:** plain prompt tuning is unstable or slow to learn.
- **한국어:** *가상 토큰을 작은 MLP(프롬프트 인코더)가 만들어 내게 해, 프롬프트 튜닝보다 안정적으로 학습합니다.*""",
    "llama_adapter": """**LLaMA-Adapter — gated adaption prompts** · `attn + g · attn(q, Pₖ, Pᵥ)`, g starts at 0
- **Trains:** learned prompts in the top layers' attention and a gate g per layer, initialised to zero so training
  starts exactly from the base model.
- **Costs:** very few parameters; works with llama-family models only.
- **Pick it when:** you want a stable, tiny adapter on a llama-family model.
- **한국어:** *상위 층 어텐션에 학습 프롬프트를 더하고, 0에서 시작하는 게이트로 영향을 서서히 키웁니다 (LLaMA 계열 전용).*""",
    "selective": """**Selective (freeze) — train the top blocks only** · `θ = θ_frozen ∪ θ_top-N`
- **Trains:** the model's own weights in the top N blocks (or only their attention / MLP); the rest is frozen.
- **Costs:** gradients and optimiser state for those blocks only; the result is a changed copy of those weights.
- **Pick it when:** you want to see how much the top of the network alone can learn; lower layers keep their
  general knowledge, which limits forgetting.
- **한국어:** *위쪽 N개 블록의 원래 가중치만 학습하고 나머지는 얼립니다. 메모리와 속도에 유리하지만 성능 향상은 제한적일 수 있습니다.*""",
    "full": """**Full fine-tuning — every weight** · `θ' = θ − η·∇L`
- **Trains:** all parameters.
- **Costs:** the most memory (weights + gradients + two AdamW moments ≈ 4× the weights) and the most forgetting;
  needs a small learning rate (1e-5 to 5e-5).
- **Pick it when:** the task is far from what the model knows and you have the data and memory; compare it with
  LoRA before paying for it.
- **한국어:** *모든 파라미터를 학습합니다. 가장 강력하지만 메모리가 가장 많이 들고, 기존 지식을 잊는 문제(catastrophic forgetting)도 가장 큽니다.*""",
    "loha": """**LoHa — low-rank Hadamard product** · `ΔW = (B₁·A₁) ⊙ (B₂·A₂)`
- **Trains:** two low-rank pairs per adapted layer, multiplied element by element. The product of two rank-r
  matrices can reach rank r², so the update is richer than LoRA's at the same r, for twice LoRA's parameters.
- **Costs:** about 2× LoRA's parameters and a little more compute per step; merges into the weights like LoRA.
  In Compare it runs on its own copy of the base (peft cannot mix it with LoRA adapters in one model).
- **Pick it when:** LoRA at a small rank underfits and raising the rank costs too much; compare both on the same run.
- **한국어:** *두 개의 저랭크 행렬 쌍을 원소별(하다마드) 곱으로 합칩니다. 같은 랭크에서 LoRA보다 표현력이 크지만 파라미터는 두 배입니다.*""",
    "lokr": """**LoKr — low-rank Kronecker product** · `ΔW = C ⊗ (B·A)`
- **Trains:** a small matrix C and a low-rank pair, combined by the Kronecker product into a full-size update. On
  large layers this needs far fewer numbers than LoRA (on a 1024×1024 layer at r = 8: about 1,500 vs 16,384).
- **Costs:** the fewest parameters of the LoRA-like methods on big models; on a model as small as the embedded one,
  r changes little. Merges into the weights; in Compare it runs on its own copy of the base.
- **Pick it when:** memory for the adapter (or its file) matters most, e.g. many adapters for one large model.
- **한국어:** *작은 행렬과 저랭크 행렬의 크로네커 곱으로 큰 갱신을 만듭니다. 큰 모델에서 LoRA보다 훨씬 적은 파라미터로 학습합니다.*""",
    "vera": """**VeRA — vector-based random matrix adaptation** · `ΔW = Λ_b·B·Λ_d·A`
- **Trains:** only two vectors per layer (d and b, the diagonals Λ). A and B are random matrices, frozen and shared
  by every layer, saved with the adapter so it reloads the same anywhere.
- **Costs:** a tiny fraction of LoRA's parameters (hundreds, not hundreds of thousands); it changes the model more
  slowly, so it likes a larger rank (256 is usual) and a higher learning rate. Merges; own copy in Compare.
- **Pick it when:** you keep many adapters (one per student, one per task) and each must be as small as possible.
- **한국어:** *모든 층이 공유하는 고정된 랜덤 행렬에 층마다 스케일 벡터 두 개만 학습합니다. 어댑터가 아주 작지만, 랭크와 학습률을 크게 잡아야 합니다.*""",
    "adalora": """**AdaLoRA — adaptive rank allocation** · `ΔW = P·Λ·Q`
- **Trains:** LoRA in SVD form: P and Q with a diagonal Λ of singular values. Every layer starts at 1.5 × the rank;
  during training the least important singular values are cut, so the budget (rank on average) goes to the layers
  where the update matters most. A regulariser keeps P and Q orthogonal.
- **Costs:** like LoRA, plus the importance bookkeeping at every step; the schedule follows the run's step count
  (warm-up 10 %, budget cut until the last 20 %). Merges; own copy in Compare.
- **Pick it when:** you do not know which layers need capacity; compare its final per-layer ranks with LoRA's.
- **한국어:** *학습하면서 중요한 층에 랭크를 더 주고 덜 중요한 층의 랭크는 줄입니다. 어느 층이 중요한지 모를 때 쓰기 좋습니다.*""",
}


def method_card(name: str) -> str:
    """The card of a method, headed by its family's one-line description."""
    spec = get_method(name)
    return f"{CARDS[name]}\n\n*{FAMILIES[spec.family]}*"
