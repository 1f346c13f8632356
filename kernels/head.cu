// What follows a stage's step (DESIGN §1): MaxPool 2x2 + BatchNorm between the stages of
// the two-stage model (per state: each state's next-stage input is its own), and the head
// of the windows that finish: BatchNorm, global max over the map, Dense, sigmoid.
#ifndef BW_COMMON_CUH
#include "common.cuh"
#endif

// The map of a slot's h: the current buffer, or (after_step) the one the step just wrote.
__device__ __forceinline__ const float* bw_slot_h(const float* h0, const float* h1, int flags,
                                                  bool after_step, long long state, int slot)
{
    const bool in_h1 = (flags & BW_FLAG_IN_H1) != 0;
    return ((in_h1 != after_step) ? h1 : h0) + slot * state;
}

// norm(pool(h)) at channel k, output pixel (py, px) of an h x w map.
__device__ __forceinline__ float bw_pool_norm_at(const float* hk, int w, int pool, int py, int px,
                                                 const float* scale, const float* shift, int k)
{
    float v;
    if (pool) {
        const float* r0 = hk + (long long)(2 * py) * w + 2 * px;
        const float* r1 = r0 + w;
        v = fmaxf(fmaxf(fmaxf(r0[0], r0[1]), r1[0]), r1[1]);
    } else {
        v = hk[(long long)py * w + px];
    }
    if (scale != 0) v = bw_norm(v, scale[k], shift[k]);
    return v;
}

// out[e] = norm(pool(h_new)) of slot batch[e] right after a step: grid
// (ceil(F * out_h * out_w / blockDim.x), entries), any block size. No barriers.
extern "C" __global__ void pool_norm_f32(const PoolNormParams p)
{
    const int e = blockIdx.y;
    const long long plane = (long long)p.out_h * p.out_w;
    const long long n = p.filters * plane;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int slot = p.batch[e], flags = p.batch[p.entries + e];
    const long long map = (long long)p.h * p.w;
    const float* h = bw_slot_h(p.h0, p.h1, flags, true, p.filters * map, slot);
    const int k = (int)(i / plane);
    const int r = (int)(i - k * plane);
    const int py = r / p.out_w, px = r - py * p.out_w;
    p.out[e * n + i] = bw_pool_norm_at(h + k * map, p.w, p.pool, py, px, p.scale, p.shift, k);
}

// p[e] = sigmoid(bias + sum_k dense[k] * max over the map of norm(pool(h))[k]) for the
// current h of slot batch[e] (h = 0 for a zero slot): grid (entries), block
// BW_HEAD_THREADS (a power of two). The logit and sigmoid are computed in double, as the
// CPU engines do.
extern "C" __global__ void BW_LAUNCH_BOUNDS(BW_HEAD_THREADS) head_f32(const HeadParams p)
{
    __shared__ float s_max[BW_HEAD_THREADS];
    __shared__ float s_feature[BW_MAX_FILTERS];
    const int e = blockIdx.x;
    const int slot = p.batch[e], flags = p.batch[p.entries + e];
    const bool zero = (flags & BW_FLAG_ZERO) != 0;
    const long long map = (long long)p.h * p.w;
    const float* h = bw_slot_h(p.h0, p.h1, flags, false, p.filters * map, slot);
    const int oh = p.pool ? p.h / 2 : p.h, ow = p.pool ? p.w / 2 : p.w;
    const int pixels = oh * ow;
    const int t = threadIdx.x;
    for (int k = 0; k < p.filters; ++k) {
        float m = __int_as_float((int)0xff800000u); // -inf
        if (zero) {
            // The whole map is norm(pool(0)) = norm(0).
            if (t == 0) m = p.scale != 0 ? bw_norm(0.0f, p.scale[k], p.shift[k]) : 0.0f;
        } else {
            for (int i = t; i < pixels; i += blockDim.x) {
                const int py = i / ow, px = i - py * ow;
                m = fmaxf(m, bw_pool_norm_at(h + k * map, p.w, p.pool, py, px, p.scale, p.shift, k));
            }
        }
        s_max[t] = m;
        __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if (t < s) s_max[t] = fmaxf(s_max[t], s_max[t + s]);
            __syncthreads();
        }
        if (t == 0) s_feature[k] = s_max[0];
        __syncthreads();
    }
    if (t == 0) {
        double sum = 0.0;
        for (int k = 0; k < p.filters; ++k) sum += (double)s_feature[k] * (double)p.dense[k];
        const double logit = (double)p.bias + sum;
        p.out[e] = (float)(1.0 / (1.0 + exp(-logit)));
    }
}
