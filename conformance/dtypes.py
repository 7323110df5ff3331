"""The floating-point formats klconf feeds, without importing any framework.

Values are carried as NumPy arrays. bfloat16 has no NumPy type, so its values are
carried exactly in float32 (every bfloat16 is a float32) and each binding casts the
carrier to its own bfloat16; rounding to bfloat16 happens here, once, so the oracle
sees exactly the binary values the API is fed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Format:
    name: str
    mantissa_bits: int  # including the implicit bit
    max: float
    smallest_normal: float
    smallest_subnormal: float
    carrier: str  # NumPy dtype that holds the values exactly

    @property
    def unit_roundoff(self) -> float:
        """u = 2**-p: the largest relative error of one correctly rounded operation."""
        return 2.0**-self.mantissa_bits

    @property
    def eps(self) -> float:
        """Machine epsilon, the gap between 1 and the next value (= 2u)."""
        return 2.0 ** (1 - self.mantissa_bits)

    def ulp(self, x: np.ndarray) -> np.ndarray:
        """Spacing of this format at |x| (subnormal spacing below the normal range)."""
        ax = np.abs(np.asarray(x, dtype=np.float64))
        # the binade read exactly by frexp (|x| = m 2^e, 0.5 <= m < 1: spacing 2^(e - mantissa bits)). Through
        # floor(log2 |x|) it came out one binade high for the largest value below many powers of two, where
        # log2 rounds up to the integer (2^1023 - ulp, say, read as 2^1023's spacing), and cost more
        _, exponent = np.frexp(np.maximum(ax, self.smallest_normal))
        spacing = np.ldexp(1.0, exponent - self.mantissa_bits)
        return np.where(np.isfinite(ax), spacing, np.nan)


FORMATS: dict[str, Format] = {
    "float16": Format("float16", 11, 65504.0, 2.0**-14, 2.0**-24, "float16"),
    "bfloat16": Format("bfloat16", 8, 3.3895313892515355e38, 2.0**-126, 2.0**-133, "float32"),
    "float32": Format("float32", 24, 3.4028234663852886e38, 2.0**-126, 2.0**-149, "float32"),
    "float64": Format("float64", 53, 1.7976931348623157e308, 2.0**-1022, 5e-324, "float64"),
}
DTYPES = tuple(FORMATS)  # the order used everywhere: narrow to wide


def round_to(values: np.ndarray, dtype: str) -> np.ndarray:
    """Round float64 values to `dtype` (nearest, ties to even) and return them in the carrier."""
    values = np.asarray(values, dtype=np.float64)
    if dtype == "bfloat16":
        return _round_bfloat16(values)
    with np.errstate(over="ignore"):
        return values.astype(FORMATS[dtype].carrier)


def _round_bfloat16(values: np.ndarray) -> np.ndarray:
    """float64 -> bfloat16 in one rounding (no float32 detour), carried in float32."""
    fmt = FORMATS["bfloat16"]
    ax = np.abs(values)
    finite = np.isfinite(ax) & (ax > 0)
    safe = np.where(finite, ax, 1.0)
    exponent = np.maximum(np.frexp(safe)[1] - 1, -126)
    quantum = np.ldexp(1.0, exponent - (fmt.mantissa_bits - 1))
    rounded = np.round(safe / quantum) * quantum  # scaling by 2**k is exact; np.round ties to even
    rounded = np.where(rounded > fmt.max, np.inf, rounded)
    out = np.where(finite, np.copysign(rounded, values), values)
    return out.astype(np.float32)
