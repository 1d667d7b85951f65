"""Burro's own trainer: LoRA fine-tuning of open-weight models, and serving the adapters.

The only package of Burro that imports torch. `trainer.training.train` runs one training run;
`trainer.serving` serves base models and adapters over an OpenAI-compatible HTTP API. The
types a driver needs (`trainer.runs`, `trainer.hyperparameters`, `trainer.errors`) import no
torch.
"""

import os

# Before torch loads OpenMP: threads that wait sleep instead of spinning. On a machine whose
# cores are shared (other trainers, other services) spinning threads stall each other; measured
# on 2 busy cores, a LoRA step took 2-5 times longer with OpenMP's default policy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Weights never come from a hub: a missing file is an error, not a download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
