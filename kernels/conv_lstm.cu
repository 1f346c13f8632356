// The ConvLSTM's convolutions (DESIGN §1): the slice input convolution, computed once per
// slice and shared by every window of its phase, and the fused batched recurrent step
// (recurrent "same" convolution + shared or per-state input term + gates + c/h update).
// fp32 throughout; summation order differs from the CPU engines (within 1e-5 on p).
#ifndef BW_COMMON_CUH
#include "common.cuh"
#endif

// acc[j][g][f] += the 3x3 convolution of `src` with packed weights `w` at pixel j of this
// thread, gate g, filter fg*4 + f (fg: the thread's filter group, see bw_filter_group),
// over all `channels` input channels.
//
// `src` element (channel c, row y, column x) is at src[c*cs + y*ys + x*xs]; the map is
// sh x sw and zero outside. Output pixel (y, x) reads src[y + ky + off][x + kx + off]:
// off = 0 is a valid convolution (input map 2 larger than the output), off = -1 a same
// convolution with zero padding. Channels go through shared memory `chunk` at a time:
// the (TILE_H + 2) x (TILE_W + 2) input tile, planar, and the chunk's packed weights.
// Every thread of the block must call this (it has barriers).
__device__ __forceinline__ void bw_conv3x3_accumulate(
    float (&acc)[4][4][4], float* smem, const float* __restrict__ src, long long cs,
    long long ys, long long xs, int sh, int sw, int off, int channels,
    const float* __restrict__ w, int groups, int chunk, int ty0, int tx0, int pg)
{
    const int halo = BW_HALO_H * BW_HALO_W;
    // This block's filter groups: fg0 .. fg0 + nb (blockIdx.z picks 4 of them).
    const int fg0 = blockIdx.z * BW_GROUPS_PER_BLOCK;
    const int nb = min(BW_GROUPS_PER_BLOCK, groups - fg0);
    const int lg = threadIdx.x / BW_PIXEL_GROUPS; // this thread's group, within the block
    const int wrow = nb * 16; // packed floats per (tap, channel) in shared memory
    float* s_in = smem;
    // chunk * halo * 4 bytes is a multiple of 16 (halo = 340), so float4 reads below are
    // aligned.
    float* s_w = smem + chunk * halo;
    const int row0 = pg / BW_TILE_W, col0 = pg % BW_TILE_W;
    for (int c0 = 0; c0 < channels; c0 += chunk) {
        const int cc = min(chunk, channels - c0);
        __syncthreads(); // the previous chunk (or caller) is done with shared memory
        for (int i = threadIdx.x; i < cc * halo; i += blockDim.x) {
            const int ci = i / halo, r = i - ci * halo;
            const int yy = r / BW_HALO_W, xx = r - yy * BW_HALO_W;
            const int sy = ty0 + yy + off, sx = tx0 + xx + off;
            float v = 0.0f;
            if (sy >= 0 && sy < sh && sx >= 0 && sx < sw)
                v = src[(c0 + ci) * cs + sy * ys + sx * xs];
            s_in[i] = v;
        }
        const int per_tap = cc * wrow;
        for (int i = threadIdx.x; i < 9 * per_tap; i += blockDim.x) {
            const int tap = i / per_tap, r = i - tap * per_tap;
            const int ci = r / wrow, q = r - ci * wrow;
            s_w[i] = w[(((long long)tap * channels + c0 + ci) * groups + fg0) * 16 + q];
        }
        __syncthreads();
        for (int ci = 0; ci < cc; ++ci) {
            const float* in_c = s_in + ci * halo + row0 * BW_HALO_W + col0;
#pragma unroll
            for (int ky = 0; ky < 3; ++ky) {
#pragma unroll
                for (int kx = 0; kx < 3; ++kx) {
                    const float4* wv =
                        (const float4*)(s_w + ((ky * 3 + kx) * cc + ci) * wrow + lg * 16);
                    const float4 w0 = wv[0], w1 = wv[1], w2 = wv[2], w3 = wv[3];
#pragma unroll
                    for (int j = 0; j < BW_PIXELS_PER_THREAD; ++j) {
                        // Pixel j lies PIXEL_GROUPS / TILE_W = 2 rows below pixel j - 1.
                        const float v = in_c[(2 * j + ky) * BW_HALO_W + kx];
                        acc[j][0][0] += v * w0.x; acc[j][0][1] += v * w0.y;
                        acc[j][0][2] += v * w0.z; acc[j][0][3] += v * w0.w;
                        acc[j][1][0] += v * w1.x; acc[j][1][1] += v * w1.y;
                        acc[j][1][2] += v * w1.z; acc[j][1][3] += v * w1.w;
                        acc[j][2][0] += v * w2.x; acc[j][2][1] += v * w2.y;
                        acc[j][2][2] += v * w2.z; acc[j][2][3] += v * w2.w;
                        acc[j][3][0] += v * w3.x; acc[j][3][1] += v * w3.y;
                        acc[j][3][2] += v * w3.z; acc[j][3][3] += v * w3.w;
                    }
                }
            }
        }
    }
}

// Tile origin of this block over an h x w map (blockIdx.x enumerates tiles row-major).
__device__ __forceinline__ void bw_tile_origin(int w, int* ty0, int* tx0) {
    const int tiles_x = (w + BW_TILE_W - 1) / BW_TILE_W;
    *ty0 = (blockIdx.x / tiles_x) * BW_TILE_H;
    *tx0 = (blockIdx.x % tiles_x) * BW_TILE_W;
}

// The filter group of this thread: 4 groups per block, blockIdx.z picks which 4.
__device__ __forceinline__ int bw_filter_group() {
    return blockIdx.z * BW_GROUPS_PER_BLOCK + threadIdx.x / BW_PIXEL_GROUPS;
}

// zx[group] = conv3x3_valid(x[group], K): grid (tiles of the output map, groups,
// ceil(F / 16)), block 64 * min(4, ceil(F / 4)) threads, dynamic shared memory
// chunk * (340 + 9 * 16 * groups in the block) floats.
extern "C" __global__ void BW_LAUNCH_BOUNDS(BW_MAX_THREADS)
input_conv_f32(const InputConvParams p)
{
    BW_DYNAMIC_SMEM(smem);
    const int F = p.filters, groups = (F + 3) / 4;
    const int fg = bw_filter_group(), pg = threadIdx.x % BW_PIXEL_GROUPS;
    int ty0, tx0;
    bw_tile_origin(p.out_w, &ty0, &tx0);
    float acc[4][4][4];
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int g = 0; g < 4; ++g)
#pragma unroll
            for (int f = 0; f < 4; ++f) acc[j][g][f] = 0.0f;
    const long long in_size = (long long)p.in_h * p.in_w * p.cin;
    bw_conv3x3_accumulate(acc, smem, p.x + blockIdx.y * in_size, 1, (long long)p.in_w * p.cin,
                          p.cin, p.in_h, p.in_w, 0, p.cin, p.weights, groups, p.chunk, ty0, tx0,
                          pg);
    const long long map = (long long)p.out_h * p.out_w;
    float* zx = p.zx + blockIdx.y * 4LL * F * map;
    const int row0 = pg / BW_TILE_W, col0 = pg % BW_TILE_W;
#pragma unroll
    for (int j = 0; j < BW_PIXELS_PER_THREAD; ++j) {
        const int y = ty0 + row0 + 2 * j, x = tx0 + col0;
        if (y >= p.out_h || x >= p.out_w) continue;
#pragma unroll
        for (int g = 0; g < 4; ++g)
#pragma unroll
            for (int f = 0; f < 4; ++f) {
                const int k = fg * 4 + f;
                if (k < F) zx[(g * F + k) * map + (long long)y * p.out_w + x] = acc[j][g][f];
            }
    }
}

// One ConvLSTM step of one stage for every batch entry: grid (tiles of the h x w state
// map, entries, ceil(F / 16)), block 64 * min(4, ceil(F / 4)) threads, dynamic shared
// memory for the larger of the input and recurrent chunks. Entry e advances slot batch[e]:
//   z = zx[batch group] (stage 0) + conv3x3_valid(x[e], K) (later stages)
//       + conv3x3_same(h_old, U) (skipped for a zero slot);
//   i, f, o = hard_sigmoid, g = tanh; c = f*c + i*g; h_new = o * tanh(c).
// h_old is read from the current buffer and h_new written to the other one, so that no
// block overwrites h that a neighbouring tile still reads; c is updated in place (each
// value is read and written by one thread).
extern "C" __global__ void BW_LAUNCH_BOUNDS(BW_MAX_THREADS)
lstm_step_f32(const StepParams p)
{
    BW_DYNAMIC_SMEM(smem);
    const int e = blockIdx.y;
    const int slot = p.batch[e];
    const int flags = p.batch[p.entries + e];
    const int group = p.batch[2 * p.entries + e];
    const bool zero = (flags & BW_FLAG_ZERO) != 0;
    const bool in_h1 = (flags & BW_FLAG_IN_H1) != 0;
    const int F = p.filters, groups = (F + 3) / 4;
    const int fg = bw_filter_group(), pg = threadIdx.x % BW_PIXEL_GROUPS;
    int ty0, tx0;
    bw_tile_origin(p.w, &ty0, &tx0);
    const int row0 = pg / BW_TILE_W, col0 = pg % BW_TILE_W;
    const long long map = (long long)p.h * p.w;
    const long long state = F * map;
    const float* h_old = (in_h1 ? p.h1 : p.h0) + slot * state;
    float* h_new = (in_h1 ? p.h0 : p.h1) + slot * state;
    float* c = p.c + slot * state;

    float acc[4][4][4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const int y = ty0 + row0 + 2 * j, x = tx0 + col0;
        const bool inside = y < p.h && x < p.w;
#pragma unroll
        for (int g = 0; g < 4; ++g)
#pragma unroll
            for (int f = 0; f < 4; ++f) {
                const int k = fg * 4 + f;
                float v = 0.0f;
                if (p.zx != 0 && inside && k < F)
                    v = p.zx[(group * 4LL + g) * F * map + k * map + (long long)y * p.w + x];
                acc[j][g][f] = v;
            }
    }
    if (p.x != 0) {
        const int ih = p.h + 2, iw = p.w + 2;
        const long long plane = (long long)ih * iw;
        bw_conv3x3_accumulate(acc, smem, p.x + e * p.cin * plane, plane, iw, 1, ih, iw, 0, p.cin,
                              p.kernel, groups, p.chunk_x, ty0, tx0, pg);
    }
    if (!zero) {
        bw_conv3x3_accumulate(acc, smem, h_old, map, p.w, 1, p.h, p.w, -1, F, p.recurrent,
                              groups, p.chunk_h, ty0, tx0, pg);
    }
#pragma unroll
    for (int j = 0; j < BW_PIXELS_PER_THREAD; ++j) {
        const int y = ty0 + row0 + 2 * j, x = tx0 + col0;
        if (y >= p.h || x >= p.w) continue;
        const long long px = (long long)y * p.w + x;
#pragma unroll
        for (int f = 0; f < 4; ++f) {
            const int k = fg * 4 + f;
            if (k >= F) continue;
            const float in_gate = bw_hard_sigmoid(acc[j][0][f]);
            const float forget = bw_hard_sigmoid(acc[j][1][f]);
            const float cand = tanhf(acc[j][2][f]);
            const float out_gate = bw_hard_sigmoid(acc[j][3][f]);
            const long long at = k * map + px;
            const float c_old = zero ? 0.0f : c[at];
            // c = f*c + i*g, h = o*tanh(c), rounded as the CPU engines (no contraction).
            const float c_new = __fadd_rn(__fmul_rn(forget, c_old), __fmul_rn(in_gate, cand));
            c[at] = c_new;
            h_new[at] = __fmul_rn(out_gate, tanhf(c_new));
        }
    }
}
