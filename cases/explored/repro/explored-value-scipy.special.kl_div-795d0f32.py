# klconf reproduction of explored-value-scipy.special.kl_div-795d0f32::scipy.special.kl_div[]::cpu::float64
# scipy.special.kl_div() in float64 on cpu
# declared convention: (x=P as prob, y=Q as prob), p*log(p/q)-p+q, reduction=none
import numpy as np
import scipy.special
import scipy.stats

x = np.array([[0.5, 0.5]], dtype=np.float64)  # P as prob
y = np.array([[1.0, 2.2250738585e-313]], dtype=np.float64)  # Q as prob

x = np.array(x, dtype='float64')
y = np.array(y, dtype='float64')
result = scipy.special.kl_div(x, y)
observed = np.asarray(result).astype(np.float64)

expected = np.array([[0.15342640972002736, 359.10809840833394]], dtype=np.float64)  # the oracle, under the declared convention
np.set_printoptions(precision=17)
print('observed:', observed)
print('expected:', expected)
