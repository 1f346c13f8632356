// The FMA peak of one core, AVX2 (ymm) against AVX-512 (zmm): 12 independent chains of
// fused multiply-adds each, so that neither the FMA latency nor memory limits them. The CPU
// engine's "how close to the machine's arithmetic limit" figures are read against this.
// Build and run: gcc -O2 scripts/fma-peak.c -o /tmp/fma-peak && /tmp/fma-peak
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define R12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

__attribute__((target("avx2,fma"))) static double ymm(long n) {
#define D(i) __m256 a##i = _mm256_set1_ps(i * 0.001f);
    R12(D)
    __m256 b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.0001f);
    double t = now();
    for (long k = 0; k < n; k++) {
#define F(i) a##i = _mm256_fmadd_ps(a##i, b, c);
        R12(F)
    }
    t = now() - t;
#define S(i) +a##i[0]
    volatile float sink = 0 R12(S);
    (void)sink;
    return n * 12.0 * 8 * 2 / t / 1e9;
}

__attribute__((target("avx512f"))) static double zmm(long n) {
#define E(i) __m512 a##i = _mm512_set1_ps(i * 0.001f);
    R12(E)
    __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.0001f);
    double t = now();
    for (long k = 0; k < n; k++) {
#define G(i) a##i = _mm512_fmadd_ps(a##i, b, c);
        R12(G)
    }
    t = now() - t;
    volatile float sink = 0 R12(S);
    (void)sink;
    return n * 12.0 * 16 * 2 / t / 1e9;
}

int main(void) {
    __builtin_cpu_init();
    for (int r = 0; r < 3; r++) {
        double y = __builtin_cpu_supports("avx2") ? ymm(200000000) : 0;
        double z = __builtin_cpu_supports("avx512f") ? zmm(200000000) : 0;
        printf("one core: AVX2 %.1f GFLOP/s, AVX-512 %.1f GFLOP/s\n", y, z);
    }
    return 0;
}
