// The sampler's per-row arithmetic on the host (src/sampling/choose.ts): the log-sum-exp of each
// row of logits, classifier-free guidance and the choice of one token under a mask at a
// temperature. Bit for bit the numbers of the TypeScript sampler (src/sampling/sampler.ts), which
// remains the definition and the fallback:
// - every sum, difference and quotient is the same float64 operation in the same order, and this
//   file is compiled with -ffp-contract=off (binding.gyp), so no multiply-add is fused;
// - exp is JavaScript's Math.exp: V8 computes it with the argument reduction and rational
//   approximation of Sun's fdlibm e_exp.c (x = k ln2 + r, |r| <= ln2 / 2; exp(r) from a degree-5
//   polynomial in r^2; then scaled by 2^k), which `jsExp` below implements from that description
//   (tested against Math.exp bit for bit: test/sampling/native_choose.test.ts);
// - log stays on the JS side (the log-sum-exp call returns each row's max and sum of exponentials,
//   and the caller adds Math.log of the sum).
// A row whose choice this code does not make (a NaN logit, no allowed token, every allowed logit
// -Infinity) gets -1, and the caller chooses it in TypeScript, which throws the sampler's own
// error; top-k and top-p are never sent here.

#include <napi.h>
#include <stdint.h>
#include <string.h>

#include <string>
#include <vector>

#include "napi_args.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

using mmgpt::napi::HostArgs;

uint32_t highWord(double x) {
  uint64_t b;
  memcpy(&b, &x, 8);
  return (uint32_t)(b >> 32);
}

double fromBits(uint64_t b) {
  double x;
  memcpy(&x, &b, 8);
  return x;
}

/** Math.exp(x) as V8 computes it (see the file header). */
inline double jsExp(double x) {
  const double kLn2Hi = 6.93147180369123816490e-01;  // ln 2, its high 32 bits
  const double kLn2Lo = 1.90821492927058770002e-10;  // and the rest
  const double kInvLn2 = 1.44269504088896338700e+00;
  const double P1 = 1.66666666666666019037e-01, P2 = -2.77777777770155933842e-03,
               P3 = 6.61375632143793436117e-05, P4 = -1.65339022054652515390e-06,
               P5 = 4.13813679705723846039e-08;
  const uint32_t top = highWord(x);
  const bool negative = (top >> 31) != 0;
  const uint32_t hx = top & 0x7fffffffu;
  if (hx >= 0x40862E42u) {  // |x| >= 709.78: overflow, underflow, inf or NaN
    if (hx >= 0x7ff00000u) {
      if (x != x) return x + x;  // NaN
      return negative ? 0.0 : x;
    }
    if (x > 7.09782712893383973096e+02) return __builtin_inf();
    if (x < -7.45133219101941108420e+02) return 0.0;
  }
  double hi = 0, lo = 0;
  int k = 0;
  if (hx > 0x3FD62E42u) {    // |x| > ln2 / 2: reduce
    if (hx < 0x3FF0A2B2u) {  // |x| < 3 ln2 / 2: k = +-1
      if (x == 1.0) return 2.718281828459045;  // V8 returns Math.E exactly
      hi = negative ? x + kLn2Hi : x - kLn2Hi;
      lo = negative ? -kLn2Lo : kLn2Lo;
      k = negative ? -1 : 1;
    } else {
      k = (int)(kInvLn2 * x + (negative ? -0.5 : 0.5));
      const double t = k;
      hi = x - t * kLn2Hi;
      lo = t * kLn2Lo;
    }
    x = hi - lo;
  } else if (hx < 0x3e300000u) {  // |x| < 2^-28
    if (1.0e+300 + x > 1.0) return 1.0 + x;
  }
  const double t = x * x;
  const double c = x - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))));
  if (k == 0) return 1.0 - ((x * c) / (c - 2.0) - x);
  const double y = 1.0 - ((lo - (x * c) / (2.0 - c)) - hi);
  if (k >= -1021) {
    if (k == 1024) return y * 2.0 * 8.98846567431157953865e+307;  // 2^1023
    return y * fromBits((uint64_t)(0x3ff + k) << 52);
  }
  return y * fromBits((uint64_t)(0x3ff + k + 1000) << 52) * 9.33263618503218878990e-302;
}

/** The double whose high 32 bits are `hi` and low 32 bits 0. */
double highBits(uint32_t hi) { return fromBits((uint64_t)hi << 32); }

#if defined(__x86_64__)
// GCC 12's AVX-512 headers warn of their own undefined "passthrough" operands here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
/**
 * jsExp of 8 lanes at once: the scalar code's operations lane by lane, every branch computed and
 * the lanes' results selected by masks (its high-word tests as comparisons of |x|: positive
 * doubles order as their bits). The k = 0 and k = +-1 lanes run the general formula, which gives
 * their branches' bits: with k = 0, hi = x and lo = 0, and (x c) / (c - 2) is -(x c) / (2 - c).
 */
__attribute__((target("avx512f"))) void expLanesAvx512(const double* x, double* out, int64_t n) {
  const __m512d zero = _mm512_setzero_pd(), one = _mm512_set1_pd(1.0), two = _mm512_set1_pd(2.0);
  const __m512d ln2Hi = _mm512_set1_pd(6.93147180369123816490e-01);
  const __m512d ln2Lo = _mm512_set1_pd(1.90821492927058770002e-10);
  const __m512d P1 = _mm512_set1_pd(1.66666666666666019037e-01);
  const __m512d P2 = _mm512_set1_pd(-2.77777777770155933842e-03);
  const __m512d P3 = _mm512_set1_pd(6.61375632143793436117e-05);
  const __m512d P4 = _mm512_set1_pd(-1.65339022054652515390e-06);
  const __m512d P5 = _mm512_set1_pd(4.13813679705723846039e-08);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512d v = _mm512_loadu_pd(x + i);
    const __m512d ax = _mm512_abs_pd(v);
    const __mmask8 negative = _mm512_cmp_pd_mask(v, zero, _CMP_LT_OQ);
    const __mmask8 reduce = _mm512_cmp_pd_mask(ax, _mm512_set1_pd(highBits(0x3FD62E43)), _CMP_GE_OQ);
    const __mmask8 nearOne = _mm512_cmp_pd_mask(ax, _mm512_set1_pd(highBits(0x3FF0A2B2)), _CMP_LT_OQ);
    const __mmask8 tiny = _mm512_cmp_pd_mask(ax, _mm512_set1_pd(highBits(0x3e300000)), _CMP_LT_OQ);
    const __mmask8 inRange = _mm512_cmp_pd_mask(ax, _mm512_set1_pd(800.0), _CMP_LT_OQ);
    const __m512d half = _mm512_mask_blend_pd(negative, _mm512_set1_pd(0.5), _mm512_set1_pd(-0.5));
    const __m512d scaled = _mm512_mul_pd(_mm512_maskz_mov_pd(inRange, v), _mm512_set1_pd(1.44269504088896338700e+00));
    const __m512i rounded = _mm512_cvtepi32_epi64(_mm512_cvttpd_epi32(_mm512_add_pd(scaled, half)));
    const __m512i plusMinusOne =
        _mm512_mask_blend_epi64(negative, _mm512_set1_epi64(1), _mm512_set1_epi64(-1));
    __m512i k = _mm512_mask_blend_epi64(nearOne, rounded, plusMinusOne);
    k = _mm512_maskz_mov_epi64(reduce, k);
    const __m512d kd = _mm512_cvtepi32_pd(_mm512_cvtepi64_epi32(k));
    const __m512d hi = _mm512_mask_blend_pd(reduce, v, _mm512_sub_pd(v, _mm512_mul_pd(kd, ln2Hi)));
    const __m512d lo = _mm512_maskz_mov_pd(reduce, _mm512_mul_pd(kd, ln2Lo));
    const __m512d r = _mm512_mask_blend_pd(reduce, v, _mm512_sub_pd(hi, lo));
    const __m512d t = _mm512_mul_pd(r, r);
    __m512d p = _mm512_add_pd(P4, _mm512_mul_pd(t, P5));
    p = _mm512_add_pd(P3, _mm512_mul_pd(t, p));
    p = _mm512_add_pd(P2, _mm512_mul_pd(t, p));
    p = _mm512_add_pd(P1, _mm512_mul_pd(t, p));
    const __m512d c = _mm512_sub_pd(r, _mm512_mul_pd(t, p));
    const __m512d q = _mm512_div_pd(_mm512_mul_pd(r, c), _mm512_sub_pd(two, c));
    const __m512d y = _mm512_sub_pd(one, _mm512_sub_pd(_mm512_sub_pd(lo, q), hi));
    const __mmask8 small = _mm512_cmplt_epi64_mask(k, _mm512_set1_epi64(-1021));
    const __mmask8 top = _mm512_cmpeq_epi64_mask(k, _mm512_set1_epi64(1024));
    __m512i e = _mm512_mask_add_epi64(k, small, k, _mm512_set1_epi64(1000));
    e = _mm512_mask_sub_epi64(e, top, e, _mm512_set1_epi64(1));
    const __m512d scale =
        _mm512_castsi512_pd(_mm512_slli_epi64(_mm512_add_epi64(e, _mm512_set1_epi64(0x3ff)), 52));
    __m512d o = _mm512_mul_pd(y, scale);
    o = _mm512_mask_mul_pd(o, small, o, _mm512_set1_pd(9.33263618503218878990e-302));
    o = _mm512_mask_mul_pd(o, top, _mm512_mul_pd(y, two), scale);
    o = _mm512_mask_add_pd(o, tiny, one, v);
    o = _mm512_mask_mov_pd(o, _mm512_cmp_pd_mask(v, one, _CMP_EQ_OQ), _mm512_set1_pd(2.718281828459045));
    o = _mm512_mask_mov_pd(o, _mm512_cmp_pd_mask(v, _mm512_set1_pd(-7.45133219101941108420e+02), _CMP_LT_OQ), zero);
    o = _mm512_mask_mov_pd(o, _mm512_cmp_pd_mask(v, _mm512_set1_pd(7.09782712893383973096e+02), _CMP_GT_OQ),
                           _mm512_set1_pd(__builtin_inf()));
    o = _mm512_mask_add_pd(o, _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q), v, v);
    _mm512_storeu_pd(out + i, o);
  }
  for (; i < n; i++) out[i] = jsExp(x[i]);
}
#pragma GCC diagnostic pop

bool hasAvx512() {
  static const bool has = (__builtin_cpu_init(), __builtin_cpu_supports("avx512f"));
  return has;
}
#else
bool hasAvx512() { return false; }
#endif

/** out[i] = jsExp(x[i]): 8 lanes at a time where the processor has AVX-512 (unless scalar). */
void expInto(const double* x, double* out, int64_t n, bool scalar = false) {
#if defined(__x86_64__)
  if (!scalar && hasAvx512()) {
    expLanesAvx512(x, out, n);
    return;
  }
#endif
  for (int64_t i = 0; i < n; i++) out[i] = jsExp(x[i]);
}

// ---- argument checks ---------------------------------------------------------------------------

/**
 * logSumExpParts(x: Float32Array [rows * V], rows, V, max: Float64Array [rows],
 * sum: Float64Array [rows]): each row's max and sum of exp(x - max), in index order (the caller's
 * log-sum-exp is max + Math.log(sum)).
 */
Napi::Value LogSumExpParts(const Napi::CallbackInfo& info) {
  const HostArgs c(info, "logSumExpParts", 5);
  const int64_t rows = c.size(1, "rows"), V = c.size(2, "V");
  const float* x = c.f32(0, "x", c.mul(rows, V));
  double* max = c.f64(3, "max", rows);
  double* sum = c.f64(4, "sum", rows);
  std::vector<double> d((size_t)V), e((size_t)V);
  for (int64_t r = 0; r < rows; r++) {
    const float* row = x + r * V;
    double m = -__builtin_inf();
    for (int64_t i = 0; i < V; i++)
      if ((double)row[i] > m) m = row[i];
    for (int64_t i = 0; i < V; i++) d[i] = (double)row[i] - m;
    expInto(d.data(), e.data(), V);
    double s = 0;
    for (int64_t i = 0; i < V; i++) s += e[i];  // in index order
    max[r] = m;
    sum[r] = s;
  }
  return info.Env().Undefined();
}

/**
 * chooseTokens(logits: Float32Array [rows * V], uncond: Float32Array [rows * V] | null,
 * lseC: Float64Array [rows], lseU: Float64Array [rows], guidance, rows, V,
 * masks: Uint8Array [maskCount * V], maskOf: Int32Array [rows], temperature: Float64Array [rows],
 * uniform: Float64Array [rows], out: Int32Array [rows]).
 * Row r: with uncond, the guided row (float32) lc + (g - 1) (lc - lu), lc = x - lseC[r] and
 * lu = u - lseU[r]; then the token among mask maskOf[r] (-1: skip the row, out -2) at
 * temperature[r] (0: the first largest; else drawn with uniform[r]), as sampleToken draws it.
 * out[r] = -1 where the TypeScript sampler must choose (see the file header).
 */
Napi::Value ChooseTokens(const Napi::CallbackInfo& info) {
  const HostArgs c(info, "chooseTokens", 12);
  const int64_t rows = c.size(5, "rows"), V = c.size(6, "V");
  const int64_t size = c.mul(rows, V);
  const float* logits = c.f32(0, "logits", size);
  const bool guided = !c.isNull(1);
  const float* uncond = guided ? c.f32(1, "uncond", size) : nullptr;
  const double* lseC = guided ? c.f64(2, "lseC", rows) : nullptr;
  const double* lseU = guided ? c.f64(3, "lseU", rows) : nullptr;
  const double g = c.number(4, "guidance");
  const uint8_t* masks = c.u8(7, "masks", 0);
  const int64_t maskCount = V > 0 ? c.length(7) / V : 0;
  const int32_t* maskOf = c.i32(8, "maskOf", rows);
  const double* temperature = c.f64(9, "temperature", rows);
  const double* uniform = c.f64(10, "uniform", rows);
  int32_t* out = c.i32(11, "out", rows);
  for (int64_t r = 0; r < rows; r++)
    if (maskOf[r] < -1 || maskOf[r] >= maskCount)
      c.rangeError("maskOf[" + std::to_string(r) + "] = " + std::to_string(maskOf[r]) +
                   " names no mask of " + std::to_string(maskCount));
  std::vector<float> rowBuffer((size_t)V);
  std::vector<int32_t> allowedBuffer((size_t)V);
  std::vector<double> argument((size_t)V), weightBuffer((size_t)V);
  float* row = rowBuffer.data();
  int32_t* allowed = allowedBuffer.data();
  double* weight = weightBuffer.data();
  for (int64_t r = 0; r < rows; r++) {
    if (maskOf[r] < 0) {
      out[r] = -2;
      continue;
    }
    const float* x = logits + r * V;
    if (guided) {  // guidedLogits: the two log softmaxes as they are used
      const float* u = uncond + r * V;
      const double lc0 = lseC[r], lu0 = lseU[r];
      for (int64_t i = 0; i < V; i++) {
        const double lc = (double)x[i] - lc0;
        row[i] = (float)(lc + (g - 1) * (lc - ((double)u[i] - lu0)));
      }
      x = row;
    }
    const uint8_t* mask = masks + maskOf[r] * V;
    int64_t n = 0, best = -1;
    double bestValue = -__builtin_inf();
    bool nan = false;
    for (int64_t i = 0; i < V; i++) {
      if (mask[i] != 1) continue;
      const double v = x[i];
      if (v != v) {
        nan = true;
        break;
      }
      allowed[n++] = (int32_t)i;
      if (best < 0 || v > bestValue) {
        best = i;
        bestValue = v;
      }
    }
    if (nan || n == 0 || bestValue == -__builtin_inf()) {
      out[r] = -1;
      continue;
    }
    const double T = temperature[r];
    if (T == 0) {
      out[r] = (int32_t)best;
      continue;
    }
    for (int64_t j = 0; j < n; j++) argument[j] = ((double)x[allowed[j]] - bestValue) / T;
    expInto(argument.data(), weight, n);
    double total = 0;
    for (int64_t j = 0; j < n; j++) total += weight[j];  // in the allowed tokens' order
    const double target = uniform[r] * total;
    double cumulative = 0;
    int64_t lastPositive = 0, chosen = -1;
    for (int64_t j = 0; j < n; j++) {
      const double w = weight[j];
      if (w > 0) lastPositive = j;
      cumulative += w;
      if (target < cumulative) {
        chosen = j;
        break;
      }
    }
    out[r] = allowed[chosen >= 0 ? chosen : lastPositive];
  }
  return c.env().Undefined();
}

/**
 * jsExpInto(x: Float64Array, out: Float64Array, scalar: boolean): out[i] = Math.exp(x[i]) as
 * computed here, by the vector path where the processor has it unless `scalar` (tests).
 */
Napi::Value JsExpInto(const Napi::CallbackInfo& info) {
  const HostArgs c(info, "jsExpInto", 3);
  const double* x = c.f64(0, "x", 0);
  const int64_t n = c.length(0);
  double* out = c.f64(1, "out", n);
  expInto(x, out, n, c.flag(2, "scalar"));
  return c.env().Undefined();
}

}  // namespace

namespace mmgpt {

/** The host sampler's entry points: `exports.sampling`. */
void registerSampling(Napi::Env env, Napi::Object exports) {
  Napi::Object s = Napi::Object::New(env);
  s.Set("logSumExpParts", Napi::Function::New(env, LogSumExpParts, "logSumExpParts"));
  s.Set("chooseTokens", Napi::Function::New(env, ChooseTokens, "chooseTokens"));
  s.Set("jsExpInto", Napi::Function::New(env, JsExpInto, "jsExpInto"));
  exports.Set("sampling", s);
}

}  // namespace mmgpt
