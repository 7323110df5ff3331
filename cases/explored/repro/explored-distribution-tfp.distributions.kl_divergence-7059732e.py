# klconf reproduction of explored-distribution-tfp.distributions.kl_divergence-7059732e::tfp.distributions.kl_divergence::cpu::float32
# one_hot_categorical||one_hot_categorical via OneHotCategorical || OneHotCategorical: 1 of 1 values differ; at [0]: observed NaN where the value is 0 [inputs there: p=one_hot_categorical(probs=[0, 1]); q=one_hot_categorical(probs=[0, 1])]
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

dist = tfp.distributions
kl = dist.kl_divergence

p = dist.OneHotCategorical(probs=tf.constant(np.array([[0.0, 1.0]], dtype=np.float32)))
q = dist.OneHotCategorical(probs=tf.constant(np.array([[0.0, 1.0]], dtype=np.float32)))

np.set_printoptions(precision=17)
print('observed:', kl(p, q).numpy())
print('expected:', [0.0])  # the closed form at these parameters (mpmath, 50 digits)
