# klconf reproduction of explored-distribution-torch.distributions.kl.kl_divergence-ddf9f546::torch.distributions.kl.kl_divergence::cpu::float32
# normal||normal via Normal || Normal: 1 of 1 values differ; at [0]: observed NaN where the value is inf [inputs there: p=normal(loc=0, scale=1); q=normal(loc=0, scale=9.99999968e-21)]
import numpy as np
import torch
import torch.distributions as dist

kl = dist.kl_divergence

p = dist.Normal(loc=torch.as_tensor(np.array([0.0], dtype=np.float32)), scale=torch.as_tensor(np.array([1.0], dtype=np.float32)))
q = dist.Normal(loc=torch.as_tensor(np.array([0.0], dtype=np.float32)), scale=torch.as_tensor(np.array([9.999999682655225e-21], dtype=np.float32)))

np.set_printoptions(precision=17)
print('observed:', kl(p, q).numpy())
print('expected:', [5.00000031734479e+39])  # the closed form at these parameters (mpmath, 50 digits)
