// Skinny fp32 GEMM for decode steps: Y = X Wᵀ + b with few rows in X (the batch, <= 32) and W in nn.Linear's
// (N, K) layout; several weights that share one X run in a single OpenMP region. Built and loaded by cpu_gemm.py.
//
// Each task takes NB = 2 rows of W and goes over X in tiles of MB rows (8 with AVX-512, 4 with AVX2): NB x MB
// vector accumulators, one pass over K, the W rows PF_ROWS ahead prefetched. W is read from memory once (the
// next X tile finds its two rows in L1), and reading W is what bounds a decode step. Sums run in fp32 along K in
// vector lanes, then across the lanes: another rounding order than MKL's, the same precision (tests check it
// against a float64 product). Measured speed: benchmarks/generation.py --kernels.
#if !defined(__x86_64__) || !(defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__)))
#error "cpu_gemm needs x86-64 with AVX-512F or AVX2 + FMA"
#endif
#include <stdint.h>
#include <immintrin.h>
#if defined(__AVX512F__)
typedef __m512 vec;
enum { L = 16, MB = 8 };  // 2 x 8 accumulators of 32 registers
static inline vec vzero() { return _mm512_setzero_ps(); }
static inline vec vload(const float *p) { return _mm512_loadu_ps(p); }
static inline vec vfma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
static inline float vsum(vec v) { return _mm512_reduce_add_ps(v); }
#else
typedef __m256 vec;
enum { L = 8, MB = 4 };  // 2 x 4 accumulators of 16 registers
static inline vec vzero() { return _mm256_setzero_ps(); }
static inline vec vload(const float *p) { return _mm256_loadu_ps(p); }
static inline vec vfma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
static inline float vsum(vec v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif
enum { NB = 2, PF_ROWS = 4 };

template <int nn, int mm>
static inline void tile(const float *W, const float *X, float *Y, int64_t K, int64_t ldy, const float *bias,
                        bool accumulate) {
    vec acc[nn][mm];
    for (int i = 0; i < nn; i++) for (int j = 0; j < mm; j++) acc[i][j] = vzero();
    int64_t k = 0;
    for (; k + L <= K; k += L) {
        vec w[nn];
        for (int i = 0; i < nn; i++) {
            w[i] = vload(W + i * K + k);
            _mm_prefetch((const char *)(W + (i + PF_ROWS) * K + k), _MM_HINT_T0);
        }
        for (int j = 0; j < mm; j++) {
            vec x = vload(X + j * K + k);
            for (int i = 0; i < nn; i++) acc[i][j] = vfma(w[i], x, acc[i][j]);
        }
    }
    for (int i = 0; i < nn; i++) for (int j = 0; j < mm; j++) {
        float s = vsum(acc[i][j]);
        for (int64_t r = k; r < K; r++) s += W[i * K + r] * X[j * K + r];
        s += bias ? bias[i] : 0.f;
        Y[j * ldy + i] = accumulate ? Y[j * ldy + i] + s : s;
    }
}

template <int nn>
static void rows(const float *W, const float *X, float *Y, int64_t M, int64_t K, int64_t ldy, const float *bias,
                 bool acc) {
    int64_t m0 = 0;
    for (; m0 + MB <= M; m0 += MB) tile<nn, MB>(W, X + m0 * K, Y + m0 * ldy, K, ldy, bias, acc);
    switch (M - m0) {
        case 7: tile<nn, 7>(W, X + m0 * K, Y + m0 * ldy, K, ldy, bias, acc); break;
        case 6: tile<nn, 6>(W, X + m0 * K, Y + m0 * ldy, K, ldy, bias, acc); break;
        case 5: tile<nn, 5>(W, X + m0 * K, Y + m0 * ldy, K, ldy, bias, acc); break;
        case 4: tile<nn, 4>(W, X + m0 * K, Y + m0 * ldy, K, ldy, bias, acc); break;
        case 3: tile<nn, 3>(W, X + m0 * K, Y + m0 * ldy, K, ldy, bias, acc); break;
        case 2: tile<nn, 2>(W, X + m0 * K, Y + m0 * ldy, K, ldy, bias, acc); break;
        case 1: tile<nn, 1>(W, X + m0 * K, Y + m0 * ldy, K, ldy, bias, acc); break;
        default: break;
    }
}

// For g < G (G <= MAX_GROUP): Y[g] (M, N[g]), row stride LD[g], = X (M, K) @ W[g]ᵀ + B[g] (+ Y[g] when
// accumulate); B[g] may be null. X and W[g] are row-major and contiguous; Y[g] may be column slices of one buffer.
// An orphaned worksharing loop: inside a parallel region the threads split the row blocks.
enum { MAX_GROUP = 64 };
static void gemm_for(const float *X, int64_t M, int64_t K, int64_t G, const float *const *W, const float *const *B,
                     float *const *Y, const int64_t *N, const int64_t *LD, bool accumulate) {
    int64_t start[MAX_GROUP + 1];
    start[0] = 0;
    for (int64_t g = 0; g < G; g++) start[g + 1] = start[g] + (N[g] + NB - 1) / NB;
    const int64_t blocks = start[G];
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t g = 0;
        while (start[g + 1] <= b) g++;
        const int64_t n0 = (b - start[g]) * NB;
        const float *bias = B[g] ? B[g] + n0 : nullptr;
        if (N[g] - n0 >= NB) rows<NB>(W[g] + n0 * K, X, Y[g] + n0, M, K, LD[g], bias, accumulate);
        else rows<1>(W[g] + n0 * K, X, Y[g] + n0, M, K, LD[g], bias, accumulate);
    }
}

extern "C" int blendrl_max_group() { return MAX_GROUP; }
extern "C" void blendrl_linear_group(const float *X, int64_t M, int64_t K, int64_t G, const float *const *W,
                                     const float *const *B, float *const *Y, const int64_t *N,
                                     const int64_t *LD) {
#pragma omp parallel
    gemm_for(X, M, K, G, W, B, Y, N, LD, false);
}

// ---- one Llama decoder layer for one new token per row, in a single parallel region ----------------------------
// Computes what transformers' LlamaDecoderLayer computes in fp32 (RMSNorm, q/k/v projections, rotary embedding with
// rotate_half, grouped-query attention over the cached keys with an additive 0/-inf key bias, o projection and
// residual, RMSNorm, SiLU-gated MLP and residual), with the kernel above for every projection. The cos/sin rows are
// the model's own rotary embedding for this step's positions, so rope scaling is whatever the model does.
#include <math.h>
#include <string.h>

struct LlamaLayer {
    int64_t M, D, H, KV, hd, I, T;  // rows, hidden, heads, kv heads, head dim, intermediate, cache length
    float eps1, eps2, scaling;
    float *x;                                     // (M, D) residual stream, updated in place
    const float *cos, *sin, *key_bias;            // (M, hd), (M, hd), (M, T)
    const float *norm1, *norm2;                   // (D,)
    const float *w[7], *b[7];                     // q, k, v, o, gate, up, down; biases may be null
    float *kcache, *vcache;                       // (M, KV, T, hd)
    float *h, *qkv, *attn, *gu, *act, *scores;    // scratch: (M, D), (M, (H+2KV)hd), (M, H hd), (M, 2I), (M, I), (M, H, T)
};

static void rms_norm_for(const float *X, const float *w, float eps, float *Y, int64_t M, int64_t D) {
#pragma omp for schedule(static)
    for (int64_t m = 0; m < M; m++) {
        const float *x = X + m * D;
        float *y = Y + m * D;
        float ss = 0.f;
#pragma omp simd reduction(+ : ss)
        for (int64_t d = 0; d < D; d++) ss += x[d] * x[d];
        const float r = 1.f / sqrtf(ss / (float)D + eps);
#pragma omp simd
        for (int64_t d = 0; d < D; d++) y[d] = w[d] * (x[d] * r);
    }
}

static void attend(const LlamaLayer &L, int64_t m, int64_t kvh, int64_t t) {
    const int64_t hd = L.hd, T = L.T, groups = L.H / L.KV, QKV = (L.H + 2 * L.KV) * hd;
    const float *keys = L.kcache + (m * L.KV + kvh) * T * hd, *values = L.vcache + (m * L.KV + kvh) * T * hd;
    const float *bias = L.key_bias + m * T;
    for (int64_t g = 0; g < groups; g++) {
        const int64_t head = kvh * groups + g;  // query head h reads kv head h / groups
        const float *q = L.qkv + m * QKV + head * hd;
        float *p = L.scores + (m * L.H + head) * T, mx = -INFINITY;
        for (int64_t j = 0; j <= t; j++) {
            float d = 0.f;
#pragma omp simd reduction(+ : d)
            for (int64_t i = 0; i < hd; i++) d += q[i] * keys[j * hd + i];
            p[j] = d * L.scaling + bias[j];
            mx = p[j] > mx ? p[j] : mx;
        }
        float sum = 0.f;
        for (int64_t j = 0; j <= t; j++) sum += (p[j] = expf(p[j] - mx));
        const float inv = 1.f / sum;
        float *out = L.attn + m * L.H * hd + head * hd;
        for (int64_t i = 0; i < hd; i++) out[i] = 0.f;
        for (int64_t j = 0; j <= t; j++) {
            const float pj = p[j] * inv;
#pragma omp simd
            for (int64_t i = 0; i < hd; i++) out[i] += pj * values[j * hd + i];
        }
    }
}

extern "C" void blendrl_llama_layer(const LlamaLayer *layer, int64_t t) {
    const LlamaLayer &L = *layer;
    const int64_t M = L.M, D = L.D, H = L.H, KV = L.KV, hd = L.hd, I = L.I, QKV = (H + 2 * KV) * hd;
#pragma omp parallel
    {
        rms_norm_for(L.x, L.norm1, L.eps1, L.h, M, D);
        {
            float *Y[3] = {L.qkv, L.qkv + H * hd, L.qkv + (H + KV) * hd};
            const int64_t N[3] = {H * hd, KV * hd, KV * hd}, LD[3] = {QKV, QKV, QKV};
            gemm_for(L.h, M, D, 3, L.w, L.b, Y, N, LD, false);
        }
#pragma omp for schedule(static)
        for (int64_t r = 0; r < M * (H + 2 * KV); r++) {  // rope on q and k heads; k and v into cache column t
            const int64_t m = r / (H + 2 * KV), head = r % (H + 2 * KV), half = hd / 2;
            float *v = L.qkv + m * QKV + head * hd;
            if (head < H + KV) {
                const float *c = L.cos + m * hd, *s = L.sin + m * hd;
                for (int64_t i = 0; i < half; i++) {
                    const float a = v[i], b = v[i + half];
                    v[i] = a * c[i] - b * s[i];
                    v[i + half] = b * c[i + half] + a * s[i + half];
                }
            }
            if (head >= H) {
                const int64_t kvh = (head - H) % KV;
                float *cache = (head < H + KV ? L.kcache : L.vcache) + ((m * KV + kvh) * L.T + t) * hd;
                memcpy(cache, v, hd * sizeof(float));
            }
        }
#pragma omp for schedule(static)
        for (int64_t r = 0; r < M * KV; r++) attend(L, r / KV, r % KV, t);
        {
            float *Y[1] = {L.x};
            const int64_t N[1] = {D}, LD[1] = {D};
            gemm_for(L.attn, M, H * hd, 1, L.w + 3, L.b + 3, Y, N, LD, true);  // x += o_proj(attn)
        }
        rms_norm_for(L.x, L.norm2, L.eps2, L.h, M, D);
        {
            float *Y[2] = {L.gu, L.gu + I};
            const int64_t N[2] = {I, I}, LD[2] = {2 * I, 2 * I};
            gemm_for(L.h, M, D, 2, L.w + 4, L.b + 4, Y, N, LD, false);
        }
#pragma omp for schedule(static)
        for (int64_t m = 0; m < M; m++) {  // act = silu(gate) * up
            const float *g = L.gu + m * 2 * I, *u = g + I;
            float *a = L.act + m * I;
            for (int64_t i = 0; i < I; i++) a[i] = g[i] / (1.f + expf(-g[i])) * u[i];
        }
        {
            float *Y[1] = {L.x};
            const int64_t N[1] = {D}, LD[1] = {D};
            gemm_for(L.act, M, I, 1, L.w + 6, L.b + 6, Y, N, LD, true);  // x += down_proj(act)
        }
    }
}
