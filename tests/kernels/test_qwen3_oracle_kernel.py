"""Oracle for the KERNEL path: `python -m pldsl.kernels.qwen3 logits --checkpoint DIR` (the DSL
program on the interpreter, through `DecodeSession`) against Hugging Face transformers.

Skipped unless torch and transformers are installed (`pip install '.[oracle]'`). As in
`test_qwen3_oracle.py` (which checks the NumPy golden), a tiny random `Qwen3ForCausalLM` has its
parameters rounded to BF16-representable values (kept FP32) and is written with
`save_pretrained`; the CLI loads that directory and decodes ragged sequences one position per
step. `--precision fp32` must agree with the FP32 transformers model within 1e-4 of max|logit|;
the default BF16 mode (rounding at the kernel's cast points) within 3e-2, with the argmax equal on
at least 90% of positions. `pytest -s` prints the measured numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from hf_oracle import compare, hf_logits, hf_model  # noqa: E402
from pldsl.kernels.qwen3.__main__ import main  # noqa: E402

LENS = (37, 20, 5)  # ragged: sequences drop out of the batch as they finish; 3, 2, 1 KV pages


@pytest.fixture(
    scope="module",
    params=[("tiny", False), ("tiny", True), ("tiny-gqa4", False)],
    ids=["tiny", "tiny-tied", "tiny-gqa4"],
)
def oracle(request, tmp_path_factory):
    preset_name, tied = request.param
    model = hf_model(preset_name, tied, seed=4321)
    path = tmp_path_factory.mktemp("qwen3_ckpt")
    model.save_pretrained(path, safe_serialization=True)
    rng = np.random.default_rng(7)
    seqs = [rng.integers(0, model.config.vocab_size, n).tolist() for n in LENS]
    return request.param, path, seqs, hf_logits(model, seqs)


def _kernel_logits(path, seqs, precision, out):
    ids = ";".join(",".join(map(str, s)) for s in seqs)
    argv = ["logits", "--checkpoint", str(path), "--token-ids", ids, "--out", str(out)]
    assert main([*argv, "--precision", precision]) == 0
    logits = np.load(out)
    assert logits.shape == (len(seqs), max(LENS), 384)  # both presets have a 384-token vocab
    return logits


def test_kernel_fp32_matches_transformers(oracle, tmp_path):
    (name, tied), path, seqs, refs = oracle
    got = _kernel_logits(path, seqs, "fp32", tmp_path / "fp32.npy")
    err, agree = compare(got, refs, seqs)
    print(f"\n[kernel oracle {name} tied={tied}] fp32: max rel {err:.3g}, argmax {agree:.3f}")
    assert err <= 1e-4, err
    assert agree == 1.0


def test_kernel_bf16_close_to_transformers(oracle, tmp_path):
    (name, tied), path, seqs, refs = oracle
    got = _kernel_logits(path, seqs, "bf16", tmp_path / "bf16.npy")
    err, agree = compare(got, refs, seqs)
    print(f"\n[kernel oracle {name} tied={tied}] bf16: max rel {err:.3g}, argmax {agree:.3f}")
    assert err <= 3e-2, err
    assert agree >= 0.9, agree
