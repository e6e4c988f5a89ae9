"""PEFT Workbench: fine-tune, compare, evaluate and rate adapters of small language models."""

import warnings

# peft reads the model's `is_gradient_checkpointing`, which transformers 5 renamed; the warning names nothing a
# user of the workbench could change.
warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
