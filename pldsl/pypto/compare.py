"""Comparing a kernel's outputs with its golden, as pypto-lib's harness decides pass/fail.

The default rule is allclose (|actual - expected| <= atol + rtol * |expected|, NaN never
close). Files may name a comparator per output (`compare_fn={"out": ratio_allclose(...)}`);
the comparators pypto-lib's `golden` package offers are written here from their documented
rules, on NumPy (torch tensors are read through float32).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Outcome:
    """One output's comparison."""

    name: str
    passed: bool
    max_abs: float
    max_rel: float
    mismatched: int
    total: int
    rule: str
    detail: str = ""


def as_float(t: Any) -> np.ndarray:
    """A float64 NumPy copy of a torch tensor or NumPy array (bf16 included)."""
    if hasattr(t, "detach"):
        t = t.detach().cpu().float().numpy()
    return np.asarray(t).astype(np.float64)


def _errors(a: np.ndarray, e: np.ndarray) -> tuple[float, float]:
    if a.size == 0:
        return 0.0, 0.0
    diff = np.abs(a - e)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(np.abs(e) > 0, diff / np.abs(e), np.where(diff > 0, np.inf, 0.0))
    return float(np.nanmax(diff)) if diff.size else 0.0, float(np.nanmax(rel)) if rel.size else 0.0


def compare_outputs(
    outputs: dict[str, Any],
    golden: dict[str, Any],
    rtol: float,
    atol: float,
    compare_fn: dict[str, Callable] | None = None,
    inputs: dict[str, Any] | None = None,
) -> list[Outcome]:
    compare_fn = compare_fn or {}
    results = []
    for name, actual in outputs.items():
        a, e = as_float(actual), as_float(golden[name])
        if a.shape != e.shape:
            results.append(
                Outcome(
                    name,
                    False,
                    np.inf,
                    np.inf,
                    a.size,
                    a.size,
                    "shape",
                    f"shape {a.shape} vs golden {e.shape}",
                )  # fmt: skip
            )
            continue
        max_abs, max_rel = _errors(a, e)
        if name in compare_fn:
            fn = compare_fn[name]
            ok, detail = fn(actual, golden[name], actual_outputs=outputs, expected_outputs=golden,
                            inputs=inputs or {}, rtol=rtol, atol=atol)  # fmt: skip
            rule = getattr(fn, "__name__", "custom")
            results.append(Outcome(name, bool(ok), max_abs, max_rel, 0, a.size, rule, detail))
            continue
        close = np.isclose(a, e, rtol=rtol, atol=atol)
        bad = int(a.size - np.count_nonzero(close))
        results.append(
            Outcome(
                name,
                bad == 0,
                max_abs,
                max_rel,
                bad,
                a.size,
                f"allclose(rtol={rtol:g}, atol={atol:g})",
            )
        )
    return results


def validate_golden(
    outputs: dict[str, Any],
    golden: dict[str, Any],
    rtol: float = 1e-5,
    atol: float = 1e-5,
    compare_fn: dict[str, Callable] | None = None,
    inputs: dict[str, Any] | None = None,
) -> None:
    """pypto-lib's `validate_golden`: raises AssertionError naming the outputs that differ."""
    bad = [
        o for o in compare_outputs(outputs, golden, rtol, atol, compare_fn, inputs) if not o.passed
    ]
    if bad:
        raise AssertionError(f"Output(s) does not match golden: {[o.name for o in bad]}")


# ------------------------------------------------------------------ comparators


def _prefix(a: np.ndarray, e: np.ndarray, rows: int | None, axis: int, zero_tail: bool):
    """Keep the leading `rows` along `axis` (packed buffers); returns (a, e, error)."""
    if rows is None:
        return a, e, ""
    total = a.shape[axis]
    if not 0 <= rows <= total:
        return a, e, f"valid_rows={rows} out of range for axis {axis} of length {total}"
    if zero_tail and np.count_nonzero(np.take(a, range(rows, total), axis=axis)):
        return a, e, "inactive tail contains nonzero values"
    keep = range(rows)
    return np.take(a, keep, axis=axis), np.take(e, keep, axis=axis), ""


def _nonfinite(a: np.ndarray, e: np.ndarray) -> str:
    if np.isfinite(a).all() and np.isfinite(e).all():
        return ""
    return f"non-finite values: actual {int((~np.isfinite(a)).sum())}, expected {int((~np.isfinite(e)).sum())}"


def ratio_allclose(atol: float | None = None, rtol: float | None = None, max_error_ratio: float = 0.005,
                   max_show: int = 10, valid_rows: int | None = None, valid_axis: int = 0,
                   zero_tail: bool = False) -> Callable:  # fmt: skip
    """Pass when at most `max_error_ratio` of the points exceed atol + rtol*|expected|."""
    if not 0.0 <= max_error_ratio <= 1.0:
        raise ValueError(f"max_error_ratio must be in [0, 1], got {max_error_ratio}")

    def cmp(actual, expected, *, rtol: float, atol: float, **_: Any) -> tuple[bool, str]:
        eff_atol = atol if cmp_atol is None else cmp_atol
        eff_rtol = rtol if cmp_rtol is None else cmp_rtol
        a, e, err = _prefix(as_float(actual), as_float(expected), valid_rows, valid_axis, zero_tail)
        if err or a.size == 0:
            return not err, err
        err = _nonfinite(a, e)
        if err:
            return False, err
        bad = int((np.abs(a - e) > eff_atol + eff_rtol * np.abs(e)).sum())
        allowed = round(max_error_ratio * a.size)
        return bad <= allowed, f"{bad}/{a.size} points out of tolerance (allowed {allowed})"

    cmp_atol, cmp_rtol = atol, rtol
    cmp.__name__ = f"ratio_allclose(max_error_ratio={max_error_ratio})"
    return cmp


def ratio_reldiff(diff_thd: float = 0.01, pct_thd: float = 0.05, max_diff_hd: float = float("inf"),
                  max_show: int = 10, valid_rows: int | None = None, valid_axis: int = 0,
                  zero_tail: bool = False) -> Callable:  # fmt: skip
    """Relative difference with a floor for small values: a point is bad when its rdiff
    exceeds `diff_thd`; pass when the bad fraction is at most `pct_thd` and the worst bad
    rdiff stays under `max_diff_hd`."""
    if diff_thd <= 0 or not 0 <= pct_thd <= 1 or max_diff_hd <= 0:
        raise ValueError("ratio_reldiff: diff_thd > 0, 0 <= pct_thd <= 1, max_diff_hd > 0")

    def cmp(actual, expected, **_: Any) -> tuple[bool, str]:
        a, e, err = _prefix(as_float(actual), as_float(expected), valid_rows, valid_axis, zero_tail)
        if err or a.size == 0:
            return not err, err
        err = _nonfinite(a, e)
        if err:
            return False, err
        diff = np.abs(a - e)
        floor = (1.0 / (1 << 14)) / diff_thd
        denom = np.maximum(np.maximum(np.abs(a), np.abs(e)), floor) + 1e-9
        rdiff = np.where(diff < diff_thd, diff, diff / denom)
        bad = rdiff > diff_thd
        count = int(bad.sum())
        worst = float(rdiff[bad].max()) if count else 0.0
        ok = count <= round(pct_thd * a.size) and worst < max_diff_hd
        return ok, f"{count}/{a.size} points with rdiff > {diff_thd}, worst {worst:.4g}"

    cmp.__name__ = f"ratio_reldiff(diff_thd={diff_thd}, pct_thd={pct_thd})"
    return cmp


def mapped_pool_ratio_allclose(*args: Any, **kwargs: Any) -> Callable:
    """pldsl compares the whole pool with `ratio_allclose`'s rule (the slot mapping that
    pypto-lib's version applies first is not read)."""
    kwargs = {k: v for k, v in kwargs.items() if k in ("atol", "rtol", "max_error_ratio")}
    return ratio_allclose(**kwargs)


def error_distribution(*args: Any, always_pass: bool = True, **kwargs: Any) -> Callable:
    """A measurement, not a gate: prints rel-L2 and the worst error; passes unless
    `always_pass=False` and a value is not finite."""

    def cmp(actual, expected, **_: Any) -> tuple[bool, str]:
        a, e = as_float(actual), as_float(expected)
        err = _nonfinite(a, e)
        norm = float(np.linalg.norm(e)) or 1.0
        print(f"[pldsl]   rel-L2 {float(np.linalg.norm(a - e)) / norm:.3g}, "
              f"max abs {float(np.abs(a - e).max()) if a.size else 0.0:.3g}")  # fmt: skip
        return (True, "") if always_pass or not err else (False, err)

    cmp.__name__ = "error_distribution"
    return cmp


def topk_pair_compare(
    vals_name: str, *, dim: int = -1, descending: bool = True, max_show: int = 10
) -> Callable:
    """Top-k indices: a position whose index differs passes when the paired values stay
    ordered around it (a legal swap between tied scores)."""

    def cmp(actual, expected, *, actual_outputs: dict, **_: Any) -> tuple[bool, str]:
        if vals_name not in actual_outputs:
            return False, f"compare_fn misconfigured: no output named {vals_name!r}"
        ai, ei = np.moveaxis(as_float(actual), dim, -1), np.moveaxis(as_float(expected), dim, -1)
        av = np.moveaxis(as_float(actual_outputs[vals_name]), dim, -1)
        if ai.shape != ei.shape or ai.shape != av.shape:
            return False, "idx/vals shape mismatch"
        differs = ai != ei
        ordered = np.ones_like(differs)
        if ai.shape[-1] >= 2:
            pair = av[..., :-1] >= av[..., 1:] if descending else av[..., :-1] <= av[..., 1:]
            ordered[..., 1:] &= pair
            ordered[..., :-1] &= pair
        bad = int((differs & ~ordered).sum())
        return bad == 0, f"{bad} index position(s) break the value order"

    cmp.__name__ = "topk_pair_compare"
    return cmp


def bf16_allclose_or_ulp(*args: Any, ulp: int = 1, **kwargs: Any) -> Callable:
    """allclose, or within `ulp` BF16 units in the last place of the expected value."""

    def cmp(actual, expected, *, rtol: float, atol: float, **_: Any) -> tuple[bool, str]:
        a, e = as_float(actual), as_float(expected)
        exp = np.floor(np.log2(np.maximum(np.abs(e), np.finfo(np.float32).tiny)))
        one_ulp = np.exp2(exp - 7)
        ok = np.isclose(a, e, rtol=rtol, atol=atol) | (np.abs(a - e) <= ulp * one_ulp)
        bad = int(a.size - np.count_nonzero(ok))
        return bad == 0, f"{bad}/{a.size} points beyond allclose and {ulp} bf16 ulp"

    cmp.__name__ = "bf16_allclose_or_ulp"
    return cmp
