# Expected values for src/drift/stats.test.ts (run once; the tests hardcode the output and need no Python).
#   python3 -m venv /tmp/venv && /tmp/venv/bin/pip install scipy numpy && /tmp/venv/bin/python src/drift/expected-values.py
# Printed with SciPy 1.17.1, NumPy 2.4.6, Python 3.11.
import numpy as np
from scipy import stats, special
from scipy.spatial import distance

def minstd(seed, n):
    x = seed; out = []
    for _ in range(n):
        x = (48271 * x) % 2147483647
        out.append(x / 2147483647)
    return out

r = lambda v: repr(float(v))
print("gammaincc", [(a, x, r(special.gammaincc(a, x))) for a, x in [(0.5, 0.1), (0.5, 2.0), (3, 1.5), (10, 25), (8, 8), (100, 90), (0.5, 30), (2.5, 0.01)]])
print("chi2.sf", [(x, df, r(stats.chi2.sf(x, df))) for x, df in [(3.84, 1), (26.3, 16), (32.0, 16), (1000, 900), (5.0, 2)]])
print("erfc", [(x, r(special.erfc(x))) for x in [1.2, -0.5, 3.0, 0.0]])
print("kstwobign.sf", [(l, r(stats.kstwobign.sf(l))) for l in [0.3, 0.8, 1.0, 1.18, 1.36, 2.0, 3.0]])
print("gammaln", [(x, r(special.gammaln(x))) for x in [0.5, 1, 4.5, 50, 1000.5]])

ref = [u * 10 for u in minstd(1, 300)]
cur = [u * 10 + 0.5 for u in minstd(2, 200)]
ks = stats.ks_2samp(ref, cur)
print("continuous ks stat", r(ks.statistic), "asymp p", r(stats.ks_2samp(ref, cur, method='asymp').pvalue), "kstwobign", r(stats.kstwobign.sf(np.sqrt(300*200/500)*ks.statistic)))
print("continuous wasserstein", r(stats.wasserstein_distance(ref, cur)), "normed by np.std(ref)", r(stats.wasserstein_distance(ref, cur)/np.std(ref)))
refd = [float(int(u * 6)) for u in minstd(3, 400)]
curd = [float(int(u * 5)) for u in minstd(4, 250)]
ksd = stats.ks_2samp(refd, curd)
print("discrete ks stat", r(ksd.statistic), "wasserstein", r(stats.wasserstein_distance(refd, curd)))
same = stats.ks_2samp(ref, [u*10 for u in minstd(5, 200)])
print("same-dist ks stat", r(same.statistic), "kstwobign p", r(stats.kstwobign.sf(np.sqrt(300*200/500)*same.statistic)), "wasserstein", r(stats.wasserstein_distance(ref, [u*10 for u in minstd(5, 200)])))

# categorical: Evidently chisquare: f_exp = ref_count * n_cur/n_ref
refc = np.array([500, 300, 150, 50]); curc = np.array([90, 70, 30, 10])
print("chisquare", r(stats.chisquare(curc, refc * curc.sum() / refc.sum()).pvalue), r(stats.chisquare(curc, refc * curc.sum() / refc.sum()).statistic))
curc2 = np.array([110, 55, 27, 8])
print("chisquare close", r(stats.chisquare(curc2, refc * curc2.sum() / refc.sum()).pvalue))
print("jensenshannon", r(distance.jensenshannon(refc / refc.sum(), curc / curc.sum())))
# unseen category: reference 0 in a 5th slot
refu = np.array([500, 300, 150, 50, 0]); curu = np.array([90, 70, 30, 0, 10]); 
print("jensenshannon unseen", r(distance.jensenshannon(refu / refu.sum(), curu / curu.sum())))
curu2 = np.array([90, 70, 30, 0, 4, 6]); refu2 = np.array([500, 300, 150, 50, 0, 0])
print("jensenshannon unseen split", r(distance.jensenshannon(refu2 / refu2.sum(), curu2 / curu2.sum())))
# PSI with evidently zero fill
def fill(a):
    a = a.copy(); nz = a[a != 0]; m = nz.min()
    np.place(a, a == 0, m / 10**6 if m <= 0.0001 else 0.0001); return a
rp = refu / refu.sum(); cp = curu / curu.sum()
rf, cf = fill(rp), fill(cp)
print("psi", r(np.sum((rf - cf) * np.log(rf / cf))))
# z test (evidently)
def zt(n1, p1, n2, p2):
    P = (p1*n1 + p2*n2)/(n1+n2); z = (p1-p2)/np.sqrt(P*(1-P)*(1/n1+1/n2)); return z, 2*(1-stats.norm.cdf(abs(z)))
print("ztest", [r(v) for v in zt(800, 300/800, 200, 60/200)])
# mahalanobis
cov = np.array([[1.0, 0.3, 0.1], [0.3, 2.0, -0.4], [0.1, -0.4, 0.5]])
mu = np.array([0.5, -1.0, 2.0]); xbar = np.array([0.7, -0.8, 2.1])
d = distance.mahalanobis(xbar, mu, np.linalg.inv(cov))
print("mahalanobis", r(d), "chi2.sf(en*d^2, 3) n=500 nref=4000", r(stats.chi2.sf(500*4000/4500*d*d, 3)))
