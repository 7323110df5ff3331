# klconf reproduction of explored-distribution-torch.distributions.kl.kl_divergence-30e27e3e::torch.distributions.kl.kl_divergence::cpu::float32
# categorical||categorical via Categorical || Categorical: 1 of 1 values differ; at [0]: expected 0.0487901642, observed 0.0487900414 (|diff| 1.23e-07, rel 2.52e-06, ratio observed/expected 0.999997; tolerance 1.05e-07) [inputs there: p=categorical(probs=[0, 1]); q=categorical(probs=[1, 20])]
import numpy as np
import torch
import torch.distributions as dist

kl = dist.kl_divergence

p = dist.Categorical(probs=torch.as_tensor(np.array([[0.0, 1.0]], dtype=np.float32)))
q = dist.Categorical(probs=torch.as_tensor(np.array([[1.0, 20.0]], dtype=np.float32)))

np.set_printoptions(precision=17)
print('observed:', kl(p, q).numpy())
print('expected:', [0.048790164169432])  # the closed form at these parameters (mpmath, 50 digits)
