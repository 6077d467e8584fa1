"""The Gaussian bridge between a mask (t = 0) and an image (t = 1) used by the Segmentation Schrödinger Bridge.

This is the tractable form of I²SB (Liu et al., "I²SB: Image-to-Image Schrödinger Bridge", ICML 2023): with a
diffusion rate beta(t) on [0, 1], sigma²(t) = ∫₀ᵗ beta and sigma_bar²(t) = ∫ₜ¹ beta, the bridge between fixed ends
x0 and x1 has the marginal

    q(x_t | x0, x1) = N(mu_t, Sigma_t),  mu_t = (sigma_bar² x0 + sigma² x1) / (sigma² + sigma_bar²),
                                         Sigma_t = sigma² sigma_bar² / (sigma² + sigma_bar²)

(zero variance at both ends), and for s < t the posterior of the earlier time given x0 and x_t is the Brownian bridge

    q(x_s | x0, x_t) = N((sigma²_{s,t} x0 + sigma_s² x_t) / sigma_t²,  sigma_s² sigma²_{s,t} / sigma_t²),
    sigma²_{s,t} = sigma_t² - sigma_s² = ∫ₛᵗ beta,

which is what the sampler uses between bridge times with a predicted x0 (I²SB's DDPM-like posterior).

beta(t) is symmetric about t = 1/2 and, on the first half, the square of a linear ramp from sqrt(beta_end) at t = 0 to
sqrt(beta_mid) at t = 1/2 (the shape of I²SB's schedule), so sigma²(t) has a closed form.  The continuous time is
discretised into `n_train` equal intervals: training draws t from the grid {1/N, ..., N/N}, and a sampler with k
steps visits k + 1 grid points from 1 down to 0 (k = N is the full schedule).  The values of beta are ours.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class BridgeSchedule:
    """A symmetric beta schedule on [0, 1]; all methods accept scalars or numpy arrays of t."""

    n_train: int = 1000
    beta_end: float = 0.01  # diffusion rate at t = 0 and t = 1
    beta_mid: float = 3.0   # diffusion rate at t = 1/2

    def __post_init__(self) -> None:
        if self.n_train < 1:
            raise ValueError(f"n_train must be at least 1, got {self.n_train}")
        if not (self.beta_end > 0 and self.beta_mid > 0):
            raise ValueError(f"beta_end and beta_mid must be positive, got {self.beta_end}, {self.beta_mid}")

    def to_dict(self) -> dict:
        return asdict(self)

    # --- the continuous schedule ----------------------------------------------------------------------------------
    def beta(self, t):
        """The diffusion rate beta(t)."""
        t = np.asarray(t, dtype=np.float64)
        u = 2.0 * np.minimum(t, 1.0 - t)  # 0 at the ends, 1 in the middle
        a, b = math.sqrt(self.beta_end), math.sqrt(self.beta_mid)
        return (a + (b - a) * u) ** 2

    def _half_integral(self, u):
        """∫ of beta from t = 0 to t = u/2 for u in [0, 1] (the first, rising half)."""
        a, b = math.sqrt(self.beta_end), math.sqrt(self.beta_mid)
        if math.isclose(a, b):
            return 0.5 * a * a * u
        return ((a + (b - a) * u) ** 3 - a ** 3) / (6.0 * (b - a))

    @property
    def total(self) -> float:
        """sigma²(t) + sigma_bar²(t) = ∫₀¹ beta (the same for every t)."""
        return float(2.0 * self._half_integral(1.0))

    def sigma2(self, t):
        """sigma²(t) = ∫₀ᵗ beta: the variance gathered since the mask end."""
        t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
        first = self._half_integral(2.0 * np.minimum(t, 0.5))
        second = self.total - self._half_integral(2.0 * np.minimum(1.0 - t, 0.5))
        return np.where(t <= 0.5, first, second)

    def sigma2_bar(self, t):
        """sigma_bar²(t) = ∫ₜ¹ beta: the variance still to come before the image end."""
        return self.total - self.sigma2(t)

    # --- bridge marginal and posterior ------------------------------------------------------------------------------
    def marginal(self, t) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(c0, c1, var) with q(x_t | x0, x1) = N(c0 x0 + c1 x1, var)."""
        s2, sb2 = self.sigma2(t), self.sigma2_bar(t)
        total = s2 + sb2
        return sb2 / total, s2 / total, s2 * sb2 / total

    def posterior(self, s, t) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(c0, ct, var) with q(x_s | x0, x_t) = N(c0 x0 + ct x_t, var) for 0 <= s < t <= 1."""
        s, t = np.asarray(s, dtype=np.float64), np.asarray(t, dtype=np.float64)
        if np.any(s >= t) or np.any(s < 0) or np.any(t > 1):
            raise ValueError(f"posterior needs 0 <= s < t <= 1, got s={s}, t={t}")
        s2, t2 = self.sigma2(s), self.sigma2(t)
        gap = t2 - s2
        return gap / t2, s2 / t2, s2 * gap / t2

    def step(self, s, t, eta: float = 1.0) -> tuple[float, float, float, float]:
        """(a, b, k, std) of the sampler step x_s = a x0 + b x1 + k (x_t - mu_t(x0, x1)) + std z, 0 <= s < t <= 1.

        eta = 1 is exactly the posterior q(x_s | x0, x_t) above.  eta < 1 keeps only eta² of its variance as fresh
        noise and carries the rest over from the noise already in x_t (the DDIM construction for bridges, as in
        Zheng et al., "Diffusion Bridge Implicit Models", ICLR 2025), so that x_s still has the bridge marginal
        q(x_s | x0, x1) for every eta; eta = 0 is deterministic given x0.  At t = 1 (no noise in x_t) the whole
        marginal variance of x_s is fresh noise."""
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {eta}")
        a_s, b_s, var_s = (float(v) for v in self.marginal(s))
        var_t = float(self.marginal(t)[2])
        post_var = float(self.posterior(s, t)[2])
        if var_t <= 0.0:
            return a_s, b_s, 0.0, var_s ** 0.5
        fresh = eta * eta * post_var
        return a_s, b_s, (max(var_s - fresh, 0.0) / var_t) ** 0.5, fresh ** 0.5

    # --- discretisation ---------------------------------------------------------------------------------------------
    def sampling_times(self, steps: int) -> np.ndarray:
        """steps + 1 grid times from 1 down to 0 (evenly spaced grid indices; steps = n_train: every grid point)."""
        if not 1 <= int(steps) <= self.n_train:
            raise ValueError(f"steps must be between 1 and {self.n_train} (the full schedule), got {steps}")
        indices = np.round(np.linspace(self.n_train, 0, int(steps) + 1)).astype(np.int64)
        return indices / self.n_train

    def training_times(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Times drawn uniformly from the grid {1/N, ..., N/N} (t = 0 would ask the model to copy its input)."""
        return rng.integers(1, self.n_train + 1, size=size) / self.n_train
