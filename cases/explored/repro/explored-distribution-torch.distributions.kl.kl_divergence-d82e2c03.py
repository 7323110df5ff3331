# klconf reproduction of explored-distribution-torch.distributions.kl.kl_divergence-d82e2c03::torch.distributions.kl.kl_divergence::cpu::float32
# gamma||gamma via Gamma || Gamma: 1 of 1 values differ; at [0]: observed NaN where the value is inf [inputs there: p=gamma(concentration=1, rate=1.00000005e-18); q=gamma(concentration=1, rate=1.99999998e+27)]
import numpy as np
import torch
import torch.distributions as dist

kl = dist.kl_divergence

p = dist.Gamma(concentration=torch.as_tensor(np.array([1.0], dtype=np.float32)), rate=torch.as_tensor(np.array([1.000000045813705e-18], dtype=np.float32)))
q = dist.Gamma(concentration=torch.as_tensor(np.array([1.0], dtype=np.float32)), rate=torch.as_tensor(np.array([1.9999999769683095e+27], dtype=np.float32)))

np.set_printoptions(precision=17)
print('observed:', kl(p, q).numpy())
print('expected:', [1.9999998853409048e+45])  # the closed form at these parameters (mpmath, 50 digits)
