"""Where `pldsl check` / the corpus take a jit entry's types from without running pypto-lib's
spec builders, which generate real-size weights (minutes of torch work in the DeepSeek-V4
files): a builder that cannot be read is run only for an entry whose annotations do not give
every parameter a static shape; spec calls are read with a stand-in for torch's dtype names."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pldsl.dtypes import BF16, FP32
from pldsl.ir.types import TensorType
from pldsl.pypto.files import _spec_type, _TorchDtypes, file_programs

ROOT = Path(__file__).resolve().parents[2]

FILE = """
import pypto.language as pl
from pathlib import Path

MARK = Path(__file__).with_suffix(".ran")
M = pl.dynamic("M")


@pl.jit
def scale(x: ANNOTATION, y: pl.Out[ANNOTATION]):
    with pl.at(level=pl.Level.CORE_GROUP):
        y = pl.mul(x, 2.0)
    return y


def build_tensor_specs(rows=8):
    from golden import TensorSpec

    MARK.write_text("ran")  # stands for minutes of weight generation
    shapes = {"x": [rows, 16], "y": [rows, 16]}  # a local: the calls cannot be read
    return [TensorSpec(n, s, "float32") for n, s in shapes.items()]
"""


def write(tmp_path: Path, annotation: str) -> Path:
    f = tmp_path / "kernel.py"
    f.write_text(textwrap.dedent(FILE).replace("ANNOTATION", annotation))
    return f


@pytest.mark.parametrize(
    "annotation, shape",
    [("pl.Tensor[[8, 16], pl.FP32]", (8, 16)), ("pl.Tensor[[M, 16], pl.FP32]", ("M", 16))],
)
def test_full_annotations_need_no_builder_run(tmp_path, annotation, shape):
    f = write(tmp_path, annotation)
    (program,) = file_programs(f)
    got = program.function_list[0].params[0].type.shape
    assert tuple(getattr(d, "name", d) for d in got) == shape  # a dynamic dim stays symbolic
    assert not f.with_suffix(".ran").exists()


def test_a_bare_parameter_runs_the_builder(tmp_path):
    f = write(tmp_path, "pl.Tensor")
    (program,) = file_programs(f)
    assert f.with_suffix(".ran").exists()
    assert program.function_list[0].params[0].type.shape == (8, 16)  # the spec's shape


def test_torch_dtype_names_without_torch():
    torch = _TorchDtypes()
    assert torch.bfloat16 == "torch.bfloat16" and torch.float == "torch.float32"
    with pytest.raises(AttributeError):
        torch.randn  # noqa: B018 - anything but a dtype fails the read (the builder runs)

    class Spec:
        name, shape, dtype = "w", [4, 8], torch.bfloat16

    t = _spec_type(Spec())
    assert isinstance(t, TensorType) and t.shape == (4, 8) and t.dtype == BF16
    Spec.dtype = torch.float32
    assert _spec_type(Spec()).dtype == FP32


READABLE = """
import pypto.language as pl

N = 8


@pl.jit
def scale(x: pl.Tensor, y: pl.Out[pl.Tensor]):
    with pl.at(level=pl.Level.CORE_GROUP):
        y = pl.add(x, x)
    return y


def build_tensor_specs():
    import torch
    from golden import TensorSpec

    return [TensorSpec("x", [N, 16], torch.bfloat16), TensorSpec("y", [N, 16], torch.bfloat16)]
"""


def test_reading_spec_calls_does_not_import_torch(tmp_path):
    f = tmp_path / "readable.py"
    f.write_text(textwrap.dedent(READABLE))
    code = (
        "import sys\nfrom pathlib import Path\nfrom pldsl.pypto.files import file_programs\n"
        f"(p,) = file_programs(Path({str(f)!r}))\n"
        "print(p.function_list[0].params[0].type.shape, 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["(8,", "16)", "False"]
