// Skinny fp32 GEMM for decode steps: Y = X Wᵀ + b with few rows in X (the batch, <= 16) and W in nn.Linear's
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
static inline void tile(const float *W, const float *X, float *Y, int64_t K, int64_t ldy, const float *bias) {
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
        Y[j * ldy + i] = s + (bias ? bias[i] : 0.f);
    }
}

template <int nn>
static void rows(const float *W, const float *X, float *Y, int64_t M, int64_t K, int64_t ldy, const float *bias) {
    int64_t m0 = 0;
    for (; m0 + MB <= M; m0 += MB) tile<nn, MB>(W, X + m0 * K, Y + m0 * ldy, K, ldy, bias);
    switch (M - m0) {
        case 7: tile<nn, 7>(W, X + m0 * K, Y + m0 * ldy, K, ldy, bias); break;
        case 6: tile<nn, 6>(W, X + m0 * K, Y + m0 * ldy, K, ldy, bias); break;
        case 5: tile<nn, 5>(W, X + m0 * K, Y + m0 * ldy, K, ldy, bias); break;
        case 4: tile<nn, 4>(W, X + m0 * K, Y + m0 * ldy, K, ldy, bias); break;
        case 3: tile<nn, 3>(W, X + m0 * K, Y + m0 * ldy, K, ldy, bias); break;
        case 2: tile<nn, 2>(W, X + m0 * K, Y + m0 * ldy, K, ldy, bias); break;
        case 1: tile<nn, 1>(W, X + m0 * K, Y + m0 * ldy, K, ldy, bias); break;
        default: break;
    }
}

// For g < G (G <= MAX_GROUP): Y[g] (M, N[g]), row stride LD[g], = X (M, K) @ W[g]ᵀ + B[g]; B[g] may be null.
// X and W[g] are row-major and contiguous; several Y[g] may be column slices of one buffer.
enum { MAX_GROUP = 64 };
extern "C" int blendrl_max_group() { return MAX_GROUP; }
extern "C" void blendrl_linear_group(const float *X, int64_t M, int64_t K, int64_t G, const float *const *W,
                                     const float *const *B, float *const *Y, const int64_t *N,
                                     const int64_t *LD) {
    int64_t start[MAX_GROUP + 1];
    start[0] = 0;
    for (int64_t g = 0; g < G; g++) start[g + 1] = start[g] + (N[g] + NB - 1) / NB;
    const int64_t blocks = start[G];
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t g = 0;
        while (start[g + 1] <= b) g++;
        const int64_t n0 = (b - start[g]) * NB;
        const float *bias = B[g] ? B[g] + n0 : nullptr;
        if (N[g] - n0 >= NB) rows<NB>(W[g] + n0 * K, X, Y[g] + n0, M, K, LD[g], bias);
        else rows<1>(W[g] + n0 * K, X, Y[g] + n0, M, K, LD[g], bias);
    }
}
