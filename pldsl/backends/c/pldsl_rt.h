/* pldsl C backend runtime: tensors, buffers, the BF16 numerics contract, matmul.
 *
 * Every generated translation unit includes this header once. Everything here is static: one
 * compiled program is one self-contained shared object.
 *
 * Numerics mirror pldsl/execution/numerics.py bit for bit where the contract says "bit-exact":
 * conversions are done on integer bit patterns (pt_round_sig / pt_fconv), elementwise float
 * ops are single float32 IEEE operations (the translation unit is compiled with
 * -ffp-contract=off), exp/log go through double and are rounded once to float32.
 * Reductions replicate NumPy's summation order (pairwise along rows, sequential down
 * columns); matmul accumulates in float32 in its own order (bounded, not bit-exact).
 */
#ifndef PLDSL_RT_H
#define PLDSL_RT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__)
#include <immintrin.h>
#define PT_AVX512 1
#else
#define PT_AVX512 0
#endif

#define PT_MAXRANK 8
/* Orchestration functions (the program's own functions) mostly call kernels: compiling them
 * at -O1 keeps big programs quick to build; kernels and the runtime stay -O3. */
/* Generated kernels: static in a single translation unit; hidden globals when the build
 * splits a big program over several compile jobs. */
#ifndef PT_KERNEL
#define PT_KERNEL static
#endif
#ifndef PT_ORCH
#define PT_ORCH __attribute__((optimize("O1")))
#endif
#define PT_INLINE static inline __attribute__((always_inline))
#define PT_LIKELY(x) __builtin_expect(!!(x), 1)
#define PT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#ifdef PT_RUNTIME_IMPL
#define PT_API __attribute__((visibility("default")))
#else
#define PT_API extern
#endif

/* ------------------------------------------------------------------ dtype codes
 * Storage kinds (what an element is in memory). Kept in sync with runtime.py. */
enum {
    PT_BF16 = 0, PT_FP16 = 1, PT_FP32 = 2, PT_I8 = 3, PT_I16 = 4, PT_I32 = 5, PT_I64 = 6,
    PT_U8 = 7, PT_U16 = 8, PT_U32 = 9, PT_U64 = 10, PT_BOOL = 11
};
/* Cast modes (PyPTO CastMode numbering; none == rint). */
enum { PT_M_NONE = 0, PT_M_RINT = 1, PT_M_ROUND = 2, PT_M_FLOOR = 3, PT_M_CEIL = 4,
       PT_M_TRUNC = 5, PT_M_ODD = 6 };
/* Pad modes of a value (memory.py _pad_name). */
enum { PT_PAD_NULL = 0, PT_PAD_ZERO = 1, PT_PAD_MIN = 2, PT_PAD_MAX = 3 };

/* ------------------------------------------------------------------ buffers and tensors */

typedef struct pt_buf {
    int64_t refcnt;  /* < 0: external memory owned by Python, never freed here */
    int32_t written; /* set by assemble / write / host calls (RunResult.written) */
    int32_t unused_;
    size_t nbytes;
    int64_t pad_[5]; /* header is 64 bytes: data stays 64-byte aligned */
} pt_buf;

typedef struct pt_tensor {
    char *base;  /* element [0, ..., 0] of the buffer */
    pt_buf *buf; /* reference-counted owner (NULL only for the empty tensor) */
    int32_t rank;
    int32_t pad; /* PT_PAD_* */
    int64_t bshape[PT_MAXRANK];  /* buffer shape */
    int64_t bstride[PT_MAXRANK]; /* buffer strides, in elements */
    int64_t off[PT_MAXRANK];     /* window origin inside the buffer */
    int64_t shape[PT_MAXRANK];   /* window shape */
    int64_t valid[PT_MAXRANK];   /* valid box, anchored at the window origin */
} pt_tensor;

#define PT_EMPTY {0}

struct pt_ctx;
typedef int (*pt_host_fn)(struct pt_ctx *ctx, int32_t fn_id, pt_tensor *targs, int64_t *iargs,
                          double *fargs, pt_tensor *trets, int64_t *irets, double *frets);

typedef struct pt_ctx {
    int32_t err;  /* 0: no fault. Set once (first fault wins). */
    int32_t site; /* error site id: Python maps it to a span and a message */
    int64_t vals[16];
    int32_t bounds_check;
    int32_t nthreads;
    pt_host_fn host;
    int64_t par_min_work; /* elements of work below which a parallel loop runs serially */
    int64_t block_idx;    /* the SPMD block now running (pl.tile.get_block_idx); 0 outside */
} pt_ctx;


/* ------------------------------------------------------------------ runtime API
 * Implemented once in the runtime library (this header compiled with PT_RUNTIME_IMPL). */

PT_API void pt_fail(pt_ctx *ctx, int site, int n, int64_t v0, int64_t v1, int64_t v2, int64_t v3, int64_t v4, int64_t v5);

PT_API void pt_failv(pt_ctx *ctx, int site, int n, const int64_t *v);

PT_API pt_buf *pt_buf_alloc(size_t nbytes);

PT_API void pt_buf_free(pt_buf *b);

PT_API void pt_retain(const pt_tensor *t);

PT_API void pt_release(pt_tensor *t);

PT_API void pt_assign(pt_tensor *dst, const pt_tensor *src);

PT_API void pt_move(pt_tensor *dst, pt_tensor *src);

PT_API int pt_new(pt_ctx *ctx, int site_oom, pt_tensor *r, int rank, const int64_t *shape, int esize);

PT_API void pt_fill_outside(pt_tensor *r, const int64_t *valid, int esize, uint64_t pattern);

PT_API void pt_copy_box(const pt_tensor *dst, const int64_t *doff, const pt_tensor *src, const int64_t *box, int esize);

PT_API int pt_materialize(pt_ctx *ctx, int site_oom, const pt_tensor *x, int esize, uint64_t pattern, pt_tensor *out);

PT_API float pt_pairwise_sum(const float *a, int64_t n);

PT_API void pt_vexpf(float *x, int64_t n);

PT_API float pt_vmaxminf(const float *x, int64_t n, int is_max);

PT_API float *pt_scratch(int which, size_t nfloats);

PT_API float pt_ld_f32(const char *p, int dt);

PT_API int64_t pt_ld_i64(const char *p, int dt);

PT_API void pt_st_f32(char *p, int dt, float v);

PT_API void pt_st_i64(char *p, int dt, int64_t v);

PT_API void pt_matmul(pt_ctx *ctx, int site, const pt_tensor *A0, int adt, const pt_tensor *B0, int bdt, const pt_tensor *ACC0, int accdt, int rdt, int a_trans, int b_trans, pt_tensor *R);

PT_API int pt_check_window(pt_ctx *ctx, int site, const pt_tensor *t, const int64_t *offset, const int64_t *extent);

PT_API void pt_slice(pt_ctx *ctx, int site, const pt_tensor *x, const int64_t *shape, const int64_t *offset, const int64_t *want_in, int pad, pt_tensor *out);

PT_API void pt_assemble(pt_ctx *ctx, int site, const pt_tensor *target, const pt_tensor *source, const int64_t *offset, int esize);

PT_API void pt_reshape(pt_ctx *ctx, int site, const pt_tensor *x, int nr, const int64_t *shape, int esize, uint64_t pattern, pt_tensor *out);

PT_API int pt_index(pt_ctx *ctx, int site, const pt_tensor *x, int n, const int64_t *idx, int64_t *elem, int *inside, int64_t *bidx);

PT_API void pt_transpose(pt_ctx *ctx, int site_oom, const pt_tensor *x, int a, int b, int esize, pt_tensor *out);

PT_API void pt_concat(pt_ctx *ctx, int site_oom, const pt_tensor *x, const pt_tensor *y, int esize, pt_tensor *out);

PT_API void pt_gather(pt_ctx *ctx, int site, const pt_tensor *x, int xdt, const pt_tensor *idx, int idt, pt_tensor *out);

PT_API void pt_row_argmax(pt_ctx *ctx, int site, const pt_tensor *x, int xdt, pt_tensor *out);

PT_API void pt_gather_mask(pt_ctx *ctx, int site_oom, const pt_tensor *x, int esize, int stride, int off, pt_tensor *out);

PT_API void pt_gather_flat(pt_ctx *ctx, int site, const pt_tensor *x, int xdt, const pt_tensor *idx, int idt, pt_tensor *out);

PT_API void pt_scatter(pt_ctx *ctx, int site, const pt_tensor *x, int xdt, const pt_tensor *idx, int idt, const pt_tensor *src, pt_tensor *out);
PT_API void pt_scatter_mask(pt_ctx *ctx, int site, const pt_tensor *x, const pt_tensor *dst, int dt, int stride, int off, pt_tensor *out);

PT_API void pt_gather_cmp(pt_ctx *ctx, int site, const pt_tensor *x, int xdt, int is_float, double kf, int64_t ki, int mode, int64_t out_cols, int cdt, pt_tensor *dst, pt_tensor *cdst);

PT_API void pt_drop_lead(const pt_tensor *x, int n, int esize, pt_tensor *out);

PT_API void pt_add_lead(const pt_tensor *x, int n, pt_tensor *out);

PT_API void pt_sort32(pt_ctx *ctx, int site_oom, const pt_tensor *src, const pt_tensor *idx, pt_tensor *out);

PT_API void pt_mrgsort1(pt_ctx *ctx, int site, const pt_tensor *src, int64_t block_len, pt_tensor *out);

PT_API void pt_mrgsort2(pt_ctx *ctx, int site, int n, const pt_tensor *const *srcs, int64_t width, int exhausted, pt_tensor *out);

PT_API void pt_assemble_add(pt_ctx *ctx, int site, const pt_tensor *target, const pt_tensor *source, const int64_t *offset, int dt);

PT_API void *pldsl_buf_alloc(size_t nbytes);

PT_API void pldsl_retain(pt_tensor *t);

PT_API void pldsl_release(pt_tensor *t);

PT_API void pldsl_export(const pt_tensor *t, void *dst, int esize, uint64_t pattern);

PT_API void pldsl_import_valid(const pt_tensor *t, const void *src, int esize);

#define PT_FAIL0(ctx, site) pt_fail((ctx), (site), 0, 0, 0, 0, 0, 0, 0)
#define PT_FAIL(ctx, site, a, b, c, d, e, f) pt_fail((ctx), (site), 6, (a), (b), (c), (d), (e), (f))
#define PT_ERR(ctx) PT_UNLIKELY(__atomic_load_n(&(ctx)->err, __ATOMIC_RELAXED))


/* ------------------------------------------------------------------ small inline helpers */

PT_INLINE char *pt_buf_data(pt_buf *b) { return (char *)b + 64; }

PT_INLINE int64_t pt_numel(int rank, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < rank; d++) n *= shape[d];
    return n;
}

/* Element pointer of the window origin. */
PT_INLINE char *pt_origin(const pt_tensor *t, int esize) {
    int64_t o = 0;
    for (int d = 0; d < t->rank; d++) o += t->off[d] * t->bstride[d];
    return t->base + o * esize;
}

PT_INLINE int pt_fully_valid(const pt_tensor *t) {
    for (int d = 0; d < t->rank; d++)
        if (t->valid[d] != t->shape[d]) return 0;
    return 1;
}

/* Does t's valid region cover the box [0, need)? */
PT_INLINE int pt_covers(const pt_tensor *t, const int64_t *need) {
    for (int d = 0; d < t->rank; d++)
        if (t->valid[d] < need[d]) return 0;
    return 1;
}

#define PT_FOR_ROWS(rank, box, IDX, ...)                                                     \
    do {                                                                                     \
        int64_t IDX[PT_MAXRANK] = {0};                                                       \
        int pt_r_ = (rank);                                                                  \
        int64_t pt_rows_ = 1;                                                                \
        for (int pt_d_ = 0; pt_d_ < pt_r_ - 1; pt_d_++) pt_rows_ *= (box)[pt_d_];             \
        if (pt_r_ >= 1 && (box)[pt_r_ - 1] <= 0) pt_rows_ = 0;                               \
        for (int64_t pt_k_ = 0; pt_k_ < pt_rows_; pt_k_++) {                                 \
            __VA_ARGS__;                                                                     \
            for (int pt_d_ = pt_r_ - 2; pt_d_ >= 0; pt_d_--) {                               \
                if (++IDX[pt_d_] < (box)[pt_d_]) break;                                      \
                IDX[pt_d_] = 0;                                                              \
            }                                                                                \
        }                                                                                    \
    } while (0)

PT_INLINE int64_t pt_row_off(const pt_tensor *t, const int64_t *idx) {
    int64_t o = 0;
    for (int d = 0; d < t->rank - 1; d++) o += (t->off[d] + idx[d]) * t->bstride[d];
    if (t->rank >= 1) o += t->off[t->rank - 1] * t->bstride[t->rank - 1];
    return o;
}

PT_INLINE void pt_fill_bytes(char *dst, int64_t n, int esize, uint64_t pattern) {
    if (n <= 0) return;
    if (pattern == 0) { memset(dst, 0, (size_t)(n * esize)); return; }
    switch (esize) {
    case 1: memset(dst, (int)(pattern & 0xff), (size_t)n); break;
    case 2: { uint16_t v = (uint16_t)pattern, *p = (uint16_t *)dst; for (int64_t i = 0; i < n; i++) p[i] = v; } break;
    case 4: { uint32_t v = (uint32_t)pattern, *p = (uint32_t *)dst; for (int64_t i = 0; i < n; i++) p[i] = v; } break;
    default: { uint64_t v = pattern, *p = (uint64_t *)dst; for (int64_t i = 0; i < n; i++) p[i] = v; } break;
    }
}

/* ------------------------------------------------------------------ bit casts */
PT_INLINE uint32_t pt_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
PT_INLINE float pt_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
PT_INLINE uint64_t pt_d2u(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
PT_INLINE double pt_u2d(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }

#define PT_INF_F (__builtin_inff())
#define PT_NAN_F (__builtin_nanf(""))
#define PT_INF (__builtin_inf())
#define PT_NAN (__builtin_nan(""))

/* ------------------------------------------------------------------ conversions
 * Formats: precision p (with the hidden bit), emin, total width. */
#define PT_FMT_BF16 8, -126, 16
#define PT_FMT_FP16 11, -14, 16
#define PT_FMT_FP32 24, -126, 32
#define PT_FMT_FP64 53, -1022, 64

PT_INLINE int pt_bitlen64(uint64_t m) { return m ? 64 - __builtin_clzll(m) : 0; }

/* Round m * 2**(e-q) to an integer per mode (numerics._round_sig). */
PT_INLINE uint64_t pt_round_sig(uint64_t m, int64_t e, int64_t q, int neg, int mode, int *inexact) {
    int64_t s = q - e;
    if (s <= 0) {
        int64_t l = -s;
        if (l > 63) l = 63;
        *inexact = 0;
        return m << l;
    }
    uint64_t n, rem, half;
    if (s >= 64) { n = 0; rem = m; half = (uint64_t)1 << 63; }
    else { n = m >> s; rem = m & (((uint64_t)1 << s) - 1); half = (uint64_t)1 << (s - 1); }
    int in_range = s <= 64;
    int above = in_range && rem > half, tie = in_range && rem == half;
    int inex = rem != 0;
    int up;
    switch (mode) {
    case PT_M_RINT: case PT_M_NONE: up = above || (tie && (n & 1)); break;
    case PT_M_ROUND: up = above || tie; break;
    case PT_M_FLOOR: up = inex && neg; break;
    case PT_M_CEIL: up = inex && !neg; break;
    default: up = 0; break;
    }
    n += (uint64_t)up;
    if (mode == PT_M_ODD) n |= (uint64_t)inex;
    *inexact = inex;
    return n;
}

/* Exact value (neg, m * 2**e) -> bits of a float format, rounded once per mode. */
PT_INLINE uint64_t pt_encode_float(int neg, uint64_t m, int64_t e, int P, int EMIN, int W, int mode) {
    int mbits = P - 1;
    int64_t bias = 1 - EMIN;
    int64_t big_e = (int64_t)pt_bitlen64(m) - 1 + e;
    int64_t q = (big_e > EMIN ? big_e : EMIN) - (P - 1);
    int inex;
    uint64_t n = pt_round_sig(m, e, q, neg, mode, &inex);
    int64_t bits = n == 0 ? 0 : (((q + P - 2 + bias) << mbits) + (int64_t)n);
    int64_t inf_bits = (((int64_t)1 << (W - 1 - mbits)) - 1) << mbits;
    if (bits >= inf_bits) {
        int to_inf = (mode == PT_M_RINT || mode == PT_M_NONE || mode == PT_M_ROUND) ? 1
                     : mode == PT_M_FLOOR ? neg : mode == PT_M_CEIL ? !neg : 0;
        bits = to_inf ? inf_bits : inf_bits - 1;
    }
    return (uint64_t)bits | ((uint64_t)(neg ? 1 : 0) << (W - 1));
}

typedef struct { int neg, is_nan, is_inf; uint64_t m, mant; int64_t e; } pt_fparts;

PT_INLINE pt_fparts pt_decompose(uint64_t bits, int P, int EMIN, int W) {
    pt_fparts r;
    int mbits = P - 1, ew = W - 1 - mbits;
    int64_t bias = 1 - EMIN;
    r.neg = (int)((bits >> (W - 1)) & 1);
    int64_t expf = (int64_t)((bits >> mbits) & (((uint64_t)1 << ew) - 1));
    r.mant = bits & (((uint64_t)1 << mbits) - 1);
    int64_t top = ((int64_t)1 << ew) - 1;
    int special = expf == top;
    r.m = expf > 0 ? (r.mant | ((uint64_t)1 << mbits)) : r.mant;
    r.e = (expf > 0 ? expf : 1) - bias - mbits;
    if (special) r.m = 0;
    r.is_nan = special && r.mant != 0;
    r.is_inf = special && r.mant == 0;
    return r;
}

/* Float bits (source format) -> float bits (destination format), one rounding per mode;
 * NaN stays a quiet NaN with its sign and top payload bits (numerics._to_float). */
PT_INLINE uint64_t pt_fconv(uint64_t bits, int sP, int sEMIN, int sW, int dP, int dEMIN, int dW,
                            int mode) {
    pt_fparts f = pt_decompose(bits, sP, sEMIN, sW);
    int dm = dP - 1, sm = sP - 1;
    uint64_t inf_bits = (((uint64_t)1 << (dW - 1 - dm)) - 1) << dm;
    uint64_t sign = (uint64_t)f.neg << (dW - 1);
    if (f.is_inf) return inf_bits | sign;
    if (f.is_nan) {
        uint64_t payload = sm >= dm ? f.mant >> (sm - dm) : f.mant << (dm - sm);
        return inf_bits | ((uint64_t)1 << (dm - 1)) | payload | sign;
    }
    return pt_encode_float(f.neg, f.m, f.e, dP, dEMIN, dW, mode);
}

/* Integer value -> float bits. */
PT_INLINE uint64_t pt_i2fbits(int64_t x, int dP, int dEMIN, int dW, int mode) {
    int neg = x < 0;
    uint64_t m = neg ? (uint64_t)(-(x + 1)) + 1 : (uint64_t)x;
    return pt_encode_float(neg, m, 0, dP, dEMIN, dW, mode);
}
PT_INLINE uint64_t pt_u2fbits(uint64_t x, int dP, int dEMIN, int dW, int mode) {
    return pt_encode_float(0, x, 0, dP, dEMIN, dW, mode);
}

/* Float bits -> integer: round per mode, saturate to [lo, hi]; NaN -> 0 (numerics._float_to_int).
 * neg_max = -lo as uint64 (0 for unsigned targets). Returns the two's complement pattern. */
PT_INLINE uint64_t pt_f2ibits(uint64_t bits, int sP, int sEMIN, int sW, int mode, uint64_t pos_max,
                              uint64_t neg_max) {
    pt_fparts f = pt_decompose(bits, sP, sEMIN, sW);
    int huge = f.is_inf || ((int64_t)pt_bitlen64(f.m) - 1 + f.e >= 64);
    uint64_t m = huge ? 0 : f.m;
    int inex;
    uint64_t n = pt_round_sig(m, f.e, 0, f.neg, mode, &inex);
    n = f.neg ? (n < neg_max ? n : neg_max) : (n < pos_max ? n : pos_max);
    if (huge) n = f.neg ? neg_max : pos_max;
    if (f.is_nan) n = 0;
    return f.neg ? ~n + 1 : n;
}

/* ---- fast paths */
PT_INLINE float pt_bf2f(uint16_t h) { /* exact, NaN made quiet (numerics._widen) */
    uint32_t u = (uint32_t)h << 16;
    if ((u & 0x7fffffffu) > 0x7f800000u) u |= 0x00400000u;
    return pt_u2f(u);
}
PT_INLINE float pt_bf2f_raw(uint16_t h) { return pt_u2f((uint32_t)h << 16); }

PT_INLINE uint16_t pt_f2bf_rint(float f) {
    uint32_t u = pt_f2u(f), hi = u >> 16;
    uint32_t r = (u + 0x7fffu + (hi & 1u)) >> 16;
    return (uint16_t)(((u & 0x7fffffffu) > 0x7f800000u) ? (hi | 0x40u) : r);
}
PT_INLINE uint16_t pt_f2bf_mode(float f, int mode) {
    uint32_t u = pt_f2u(f), hi = u >> 16, low = u & 0xffffu, neg = u >> 31;
    uint32_t r;
    switch (mode) {
    case PT_M_RINT: case PT_M_NONE: r = (u + 0x7fffu + (hi & 1u)) >> 16; break;
    case PT_M_ROUND: r = (u + 0x8000u) >> 16; break;
    case PT_M_FLOOR: r = hi + ((low != 0) & neg); break;
    case PT_M_CEIL: r = hi + ((low != 0) & !neg); break;
    case PT_M_ODD: r = hi | (low != 0); break;
    default: r = hi; break;
    }
    return (uint16_t)(((u & 0x7fffffffu) > 0x7f800000u) ? (hi | 0x40u) : r);
}

PT_INLINE float pt_h2f(uint16_t h) {
    return pt_u2f((uint32_t)pt_fconv(h, PT_FMT_FP16, PT_FMT_FP32, PT_M_RINT));
}
PT_INLINE uint16_t pt_f2h_mode(float f, int mode) {
    return (uint16_t)pt_fconv(pt_f2u(f), PT_FMT_FP32, PT_FMT_FP16, mode);
}
PT_INLINE uint16_t pt_f2h_rint(float f) { return pt_f2h_mode(f, PT_M_RINT); }

/* double (a scalar) -> storage, one rounding (rint unless stated) */
PT_INLINE float pt_d2f(double d) { return (float)d; } /* C conversion: RNE, NaN quieted */
PT_INLINE uint16_t pt_d2bf_mode(double d, int mode) {
    return (uint16_t)pt_fconv(pt_d2u(d), PT_FMT_FP64, PT_FMT_BF16, mode);
}
PT_INLINE uint16_t pt_d2h_mode(double d, int mode) {
    return (uint16_t)pt_fconv(pt_d2u(d), PT_FMT_FP64, PT_FMT_FP16, mode);
}
PT_INLINE float pt_d2f_mode(double d, int mode) {
    if (mode == PT_M_RINT || mode == PT_M_NONE) return (float)d;
    return pt_u2f((uint32_t)pt_fconv(pt_d2u(d), PT_FMT_FP64, PT_FMT_FP32, mode));
}
/* value of a float scalar rounded to a dtype, kept as double */
PT_INLINE double pt_rnd_f32(double d) { return (double)(float)d; }
PT_INLINE double pt_rnd_bf16(double d) { return (double)pt_bf2f(pt_d2bf_mode(d, PT_M_RINT)); }
PT_INLINE double pt_rnd_fp16(double d) { return (double)pt_h2f(pt_d2h_mode(d, PT_M_RINT)); }

PT_INLINE int64_t pt_d2i(double d, int mode, uint64_t pos_max, uint64_t neg_max) {
    return (int64_t)pt_f2ibits(pt_d2u(d), PT_FMT_FP64, mode, pos_max, neg_max);
}
PT_INLINE int64_t pt_f2i(float f, int mode, uint64_t pos_max, uint64_t neg_max) {
    return (int64_t)pt_f2ibits(pt_f2u(f), PT_FMT_FP32, mode, pos_max, neg_max);
}
PT_INLINE float pt_i2f_mode(int64_t x, int mode) {
    if (mode == PT_M_RINT || mode == PT_M_NONE) return (float)x;
    return pt_u2f((uint32_t)pt_i2fbits(x, PT_FMT_FP32, mode));
}
PT_INLINE float pt_u2f_mode(uint64_t x, int mode) {
    if (mode == PT_M_RINT || mode == PT_M_NONE) return (float)x;
    return pt_u2f((uint32_t)pt_u2fbits(x, PT_FMT_FP32, mode));
}

/* ------------------------------------------------------------------ float ops */
/* IEEE 754-2019 maximum/minimum: NaN propagates, -0 < +0 (numerics._ieee_max). */
PT_INLINE float pt_fmax(float a, float b) {
    if (a != a || b != b) return a + b;
    if (a == 0.0f && b == 0.0f) return (signbit(a) && signbit(b)) ? -0.0f : 0.0f;
    return a > b ? a : b;
}
PT_INLINE float pt_fmin(float a, float b) {
    if (a != a || b != b) return a + b;
    if (a == 0.0f && b == 0.0f) return (signbit(a) || signbit(b)) ? -0.0f : 0.0f;
    return a < b ? a : b;
}
PT_INLINE float pt_relu(float x) { return (x != x || x > 0.0f) ? x : 0.0f; }
PT_INLINE float pt_expf(float x) { return (float)exp((double)x); }
PT_INLINE float pt_logf(float x) { return (float)log((double)x); }
PT_INLINE float pt_rsqrtf(float x) { return 1.0f / sqrtf(x); }

/* ------------------------------------------------------------------ scalars (Python semantics) */
PT_INLINE int64_t pt_floordiv_i(int64_t a, int64_t b) {
    if (b == -1) return (int64_t)(0 - (uint64_t)a);
    int64_t q = a / b, r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) q -= 1;
    return q;
}
PT_INLINE int64_t pt_mod_i(int64_t a, int64_t b) {
    if (b == -1) return 0;
    int64_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}
/* CPython float_divmod */
PT_INLINE void pt_divmod_f(double vx, double wx, double *fdiv, double *fmodv) {
    double mod = fmod(vx, wx);
    double div = (vx - mod) / wx;
    if (mod) {
        if ((wx < 0) != (mod < 0)) { mod += wx; div -= 1.0; }
    } else {
        mod = copysign(0.0, wx);
    }
    double floordiv;
    if (div) {
        floordiv = floor(div);
        if (div - floordiv > 0.5) floordiv += 1.0;
    } else {
        floordiv = copysign(0.0, vx / wx);
    }
    *fdiv = floordiv;
    *fmodv = mod;
}
PT_INLINE double pt_floordiv_f(double a, double b) { double d, m; pt_divmod_f(a, b, &d, &m); return d; }
PT_INLINE double pt_mod_f(double a, double b) { double d, m; pt_divmod_f(a, b, &d, &m); return m; }
/* Python min/max keep the first argument unless the second is strictly smaller/larger. */
PT_INLINE double pt_pymin_f(double a, double b) { return b < a ? b : a; }
PT_INLINE double pt_pymax_f(double a, double b) { return b > a ? b : a; }
PT_INLINE int64_t pt_pymin_i(int64_t a, int64_t b) { return b < a ? b : a; }
PT_INLINE int64_t pt_pymax_i(int64_t a, int64_t b) { return b > a ? b : a; }


/* ------------------------------------------------------------------ dtype tables */

static const int pt_esize_of[12] = {2, 2, 4, 1, 2, 4, 8, 1, 2, 4, 8, 1};

static const uint64_t pt_imax[12] = {0, 0, 0, 127, 32767, 2147483647, 9223372036854775807ULL,
                                     255, 65535, 4294967295ULL, 18446744073709551615ULL, 1};

static const uint64_t pt_inegmax[12] = {0, 0, 0, 128, 32768, 2147483648ULL, 9223372036854775808ULL,
                                        0, 0, 0, 0, 0};

PT_INLINE int pt_is_float_dt(int dt) { return dt <= PT_FP32; }

/* Bit pattern of a pad value in storage dtype dt (numerics.pad_value). In precision="fp32"
 * builds BF16/FP16 are stored as float32 and use PT_FP32 here. */
PT_INLINE uint64_t pt_pad_bits(int dt, int pad) {
    if (pad == PT_PAD_NULL || pad == PT_PAD_ZERO) return 0;
    int mx = pad == PT_PAD_MAX;
    switch (dt) {
    case PT_BF16: return mx ? 0x7f80u : 0xff80u;
    case PT_FP16: return mx ? 0x7c00u : 0xfc00u;
    case PT_FP32: return mx ? 0x7f800000u : 0xff800000u;
    case PT_BOOL: return mx ? 1 : 0;
    default: return mx ? pt_imax[dt] : (uint64_t)(0 - pt_inegmax[dt]);
    }
}

typedef struct {
    const char *p;  /* origin */
    int64_t rs, cs; /* element strides of rows / columns of the logical matrix */
    int dt;         /* PT_FP32 or PT_BF16 (others are converted before) */
} pt_mat;


#ifdef PT_RUNTIME_IMPL
/* ==================================================================== implementation */

#define PT_CACHE_N 16
#define PT_CACHE_MAX ((size_t)1 << 20)
typedef struct { size_t n; pt_buf *b; } pt_cache_ent;
static __thread pt_cache_ent pt_cache[PT_CACHE_N];

static __thread float *pt_scratch_p[4];
static __thread size_t pt_scratch_n[4];

#if PT_AVX512
PT_INLINE __m512 pt_ld16_bf(const uint16_t *p) {
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
PT_INLINE __m512 pt_ld16_bf_mask(const uint16_t *p, __mmask16 k) {
    __m256i h = _mm256_maskz_loadu_epi16(k, p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
#endif

/* B row-major [K,N]: rows of B contiguous along N. Register blocks of MR (<= 6) rows x 64
 * columns (4 zmm per row: 24 accumulators, one A broadcast per 4 FMAs), one function per MR
 * so the k loop is branch-free; a masked 16-column kernel for the column tail. The first row
 * block prefetches the B rows it is about to stream (past K: the next K chunk's first rows,
 * which K-tiled loops read next). */
#if PT_AVX512
PT_INLINE __m512 pt_ldB(const char *p, int bf) {
    return bf ? pt_ld16_bf((const uint16_t *)p) : _mm512_loadu_ps((const float *)p);
}
#define PT_MM64(MR)                                                                                \
    static void pt_mm64_##MR(int64_t K, const float *A, int64_t lda, const char *bp, int64_t ldb_b, \
                             int bf, int pf, float *C, int64_t ldc) {                              \
        __m512 c[MR][4];                                                                           \
        for (int i = 0; i < MR; i++)                                                               \
            for (int j = 0; j < 4; j++) c[i][j] = _mm512_setzero_ps();                             \
        const int64_t w = bf ? 128 : 256;                                                          \
        /* prefetch whole cache lines: NumPy data may be only 16-byte aligned */                   \
        const int64_t mis = (int64_t)((uintptr_t)bp & 63u);                                         \
        const char *bpa = bp - mis;                                                                \
        if (pf)                                                                                    \
            for (int64_t k = 0; k < 24 && k < K; k++)                                              \
                for (int64_t o = 0; o < w + mis; o += 64) _mm_prefetch(bpa + k * ldb_b + o, _MM_HINT_T0); \
        for (int64_t k = 0; k < K; k++) {                                                          \
            const char *row = bp + k * ldb_b;                                                      \
            if (pf)                                                                                \
                for (int64_t o = 0; o < w + mis; o += 64)                                          \
                    _mm_prefetch(bpa + (k + 24) * ldb_b + o, _MM_HINT_T0);                         \
            const __m512 b0 = pt_ldB(row, bf), b1 = pt_ldB(row + w / 4, bf);                       \
            const __m512 b2 = pt_ldB(row + w / 2, bf), b3 = pt_ldB(row + 3 * w / 4, bf);           \
            for (int i = 0; i < MR; i++) {                                                         \
                const __m512 a = _mm512_set1_ps(A[i * lda + k]);                                   \
                c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);                                         \
                c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);                                         \
                c[i][2] = _mm512_fmadd_ps(a, b2, c[i][2]);                                         \
                c[i][3] = _mm512_fmadd_ps(a, b3, c[i][3]);                                         \
            }                                                                                      \
        }                                                                                          \
        for (int i = 0; i < MR; i++) {                                                             \
            float *cp = C + i * ldc;                                                               \
            _mm512_storeu_ps(cp, c[i][0]); _mm512_storeu_ps(cp + 16, c[i][1]);                     \
            _mm512_storeu_ps(cp + 32, c[i][2]); _mm512_storeu_ps(cp + 48, c[i][3]);                \
        }                                                                                          \
    }
PT_MM64(1) PT_MM64(2) PT_MM64(3) PT_MM64(4) PT_MM64(5) PT_MM64(6)
typedef void (*pt_mm64_fn)(int64_t, const float *, int64_t, const char *, int64_t, int, int, float *, int64_t);
static const pt_mm64_fn pt_mm64[7] = {0, pt_mm64_1, pt_mm64_2, pt_mm64_3, pt_mm64_4, pt_mm64_5, pt_mm64_6};
#endif

static void pt_mm_kn(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                     const pt_mat *B, float *C, int64_t ldc) {
#if PT_AVX512
    const int bf = B->dt == PT_BF16;
    const int esz = bf ? 2 : 4;
    const int64_t ldb_b = B->rs * esz;
    /* prefetching pays for operands streamed from memory, not for packed panels */
    const int pf = B->rs > N;
    int64_t n0 = 0;
    for (; n0 + 64 <= N; n0 += 64) {
        const char *bp = B->p + n0 * esz;
        for (int64_t m0 = 0; m0 < M; m0 += 6) {
            const int64_t mr = M - m0 < 6 ? M - m0 : 6;
            pt_mm64[mr](K, A + m0 * lda, lda, bp, ldb_b, bf, pf && m0 == 0, C + m0 * ldc + n0, ldc);
        }
    }
    for (; n0 < N; n0 += 16) {
        int64_t nr = N - n0 < 16 ? N - n0 : 16;
        __mmask16 km = (__mmask16)((1u << nr) - 1u);
        for (int64_t m0 = 0; m0 < M; m0 += 8) {
            int64_t mr = M - m0 < 8 ? M - m0 : 8;
            __m512 c[8];
            for (int i = 0; i < 8; i++) c[i] = _mm512_setzero_ps();
            for (int64_t k = 0; k < K; k++) {
                __m512 b;
                if (bf) b = pt_ld16_bf_mask((const uint16_t *)B->p + k * B->rs + n0, km);
                else b = _mm512_maskz_loadu_ps(km, (const float *)B->p + k * B->rs + n0);
                for (int i = 0; i < 8; i++)
                    if (i < mr) c[i] = _mm512_fmadd_ps(_mm512_set1_ps(A[(m0 + i) * lda + k]), b, c[i]);
            }
            for (int i = 0; i < mr; i++) _mm512_mask_storeu_ps(C + (m0 + i) * ldc + n0, km, c[i]);
        }
    }
#else
    for (int64_t i = 0; i < M; i++) {
        float *cp = C + i * ldc;
        for (int64_t j = 0; j < N; j++) cp[j] = 0.0f;
        for (int64_t k = 0; k < K; k++) {
            float a = A[i * lda + k];
            if (B->dt == PT_BF16) {
                const uint16_t *bp = (const uint16_t *)B->p + k * B->rs;
                for (int64_t j = 0; j < N; j++) cp[j] = fmaf(a, pt_bf2f_raw(bp[j]), cp[j]);
            } else {
                const float *bp = (const float *)B->p + k * B->rs;
                for (int64_t j = 0; j < N; j++) cp[j] = fmaf(a, bp[j], cp[j]);
            }
        }
    }
#endif
}

/* B given as [N,K] (b_trans): C[m][n] = dot(A[m,:], B[n,:]).
 * Computed as C^T = B A^T with A^T packed [K][Mp] (m contiguous, zero padded to 16) and 16 rows
 * of B at a time converted to float32: each B element is broadcast once and multiplies a
 * vector of 16 m values, so the inner loop is one load + 16 broadcasts + 16 FMAs per k. */
static __thread float *pt_nk_at, *pt_nk_bf;
static __thread size_t pt_nk_at_n, pt_nk_bf_n;
static float *pt_tls_grow(float **p, size_t *n, size_t want) {
    if (*n < want) {
        free(*p);
        size_t m = want < 4096 ? 4096 : want;
        *p = (float *)aligned_alloc(64, ((m * 4 + 63) / 64) * 64);
        *n = *p ? m : 0;
    }
    return *p;
}

#if PT_AVX512
/* In-register transpose of a 16x16 float block (rows r[0..15] -> columns). */
PT_INLINE void pt_tr16(__m512 *r) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 16; g += 4) {
        r[g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[g + 0]), _mm512_castps_pd(t[g + 2])));
        r[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[g + 0]), _mm512_castps_pd(t[g + 2])));
        r[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[g + 1]), _mm512_castps_pd(t[g + 3])));
        r[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[g + 1]), _mm512_castps_pd(t[g + 3])));
    }
    for (int h = 0; h < 16; h += 8) {
        for (int i = 0; i < 4; i++) {
            t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
            t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
        }
    }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    }
}
#endif

/* A prefetch plan for the operand the *next* op will probably read (set by pt_matmul):
 * kernels issue it a few rows at a time between compute blocks, so the fetches overlap the
 * arithmetic without flooding the miss queues. */
typedef struct { const char *p; int64_t stride, rows, bytes, next, off; } pt_pf_plan;
static __thread pt_pf_plan pt_pf;
PT_INLINE void pt_pf_rows(int64_t nrows) {
    int64_t end = pt_pf.next + nrows;
    if (end > pt_pf.rows) end = pt_pf.rows;
    for (int64_t r = pt_pf.next; r < end; r++)
        for (int64_t o = pt_pf.off; o < pt_pf.bytes; o += 64) __builtin_prefetch(pt_pf.p + r * pt_pf.stride + o, 0, 2);
    pt_pf.next = end;
    pt_pf.off = 0;
}
/* one cache line of a plan (called from inside compute loops: a steady trickle of
 * prefetches instead of bursts that overflow the miss queues). Kernels work on a local copy:
 * thread-local variables of a dlopen()ed library cost a __tls_get_addr call per access. */
PT_INLINE void pt_pf_line(pt_pf_plan *pf) {
    if (pf->next < pf->rows) {
        __builtin_prefetch(pf->p + pf->next * pf->stride + pf->off, 0, 2);
        pf->off += 64;
        if (pf->off >= pf->bytes) { pf->off = 0; pf->next++; }
    }
}

#if PT_AVX512
/* C^T = B A^T for small M (<= 16) and a fixed K: B rows converted to float32 (no transpose),
 * A^T packed [K][16]; per k one A^T vector and NB broadcasts of B elements at immediate
 * offsets (K is a compile-time constant), NB accumulators; C^T blocks are transposed back
 * through registers. */
#define PT_NKS(KK)                                                                                 \
    static void pt_nks_##KK(int64_t M, int64_t N, const float *At, const float *Bf, float *C,     \
                            int64_t ldc, pt_pf_plan *pf) {                                         \
        for (int64_t n0 = 0; n0 < N; n0 += 16) {                                                   \
            const int64_t nr = N - n0 < 16 ? N - n0 : 16;                                          \
            __m512 acc[16];                                                                        \
            for (int j = 0; j < 16; j++) acc[j] = _mm512_setzero_ps();                             \
            const float *bb = Bf + n0 * KK;                                                        \
            for (int64_t k = 0; k < KK; k++) {                                                     \
                if (!(k & 1)) pt_pf_line(pf);                                                      \
                const __m512 a = _mm512_load_ps(At + k * 16);                                      \
                for (int j = 0; j < 16; j++)                                                       \
                    acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(bb[j * KK + k]), a, acc[j]);           \
            }                                                                                      \
            pt_tr16(acc);                                                                          \
            const __mmask16 nm = (__mmask16)(nr == 16 ? 0xffffu : ((1u << nr) - 1u));              \
            for (int64_t m = 0; m < M; m++) _mm512_mask_storeu_ps(C + m * ldc + n0, nm, acc[m]);   \
        }                                                                                          \
    }
PT_NKS(32) PT_NKS(64) PT_NKS(128) PT_NKS(256)
static __thread float *pt_nks_bf, *pt_nks_at;
static __thread size_t pt_nks_bf_n, pt_nks_at_n;

/* returns 0 when the shape has no specialised kernel */
static int pt_mm_nk_small(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                          const pt_mat *B, float *C, int64_t ldc) {
    void (*fn)(int64_t, int64_t, const float *, const float *, float *, int64_t, pt_pf_plan *) =
        K == 32 ? pt_nks_32 : K == 64 ? pt_nks_64 : K == 128 ? pt_nks_128 : K == 256 ? pt_nks_256 : 0;
    if (!fn || M > 16) return 0;
    const int64_t Np = (N + 15) & ~(int64_t)15;
    float *Bf = pt_tls_grow(&pt_nks_bf, &pt_nks_bf_n, (size_t)(Np * K));
    float *At = pt_tls_grow(&pt_nks_at, &pt_nks_at_n, (size_t)(K * 16));
    if (!Bf || !At) return 0;
    const int64_t ldb = B->rs;
    for (int64_t n = 0; n < N; n++) {
        float *dst = Bf + n * K;
        if (B->dt == PT_BF16) {
            const uint16_t *src = (const uint16_t *)B->p + n * ldb;
            for (int64_t k = 0; k < K; k += 16) _mm512_store_ps(dst + k, pt_ld16_bf(src + k));
        } else {
            memcpy(dst, (const float *)B->p + n * ldb, (size_t)K * 4);
        }
    }
    if (Np > N) memset(Bf + N * K, 0, (size_t)((Np - N) * K) * 4);
    for (int64_t k0 = 0; k0 < K; k0 += 16) {
        __m512 r[16];
        for (int64_t i = 0; i < 16; i++) r[i] = i < M ? _mm512_loadu_ps(A + i * lda + k0) : _mm512_setzero_ps();
        pt_tr16(r);
        for (int64_t kk = 0; kk < 16; kk++) _mm512_store_ps(At + (k0 + kk) * 16, r[kk]);
    }
    pt_pf_plan pf = pt_pf; /* one TLS access each way */
    fn(M, N, At, Bf, C, ldc, &pf);
    pt_pf = pf;
    return 1;
}
#endif

static void pt_mm_nk(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                     const pt_mat *B, float *C, int64_t ldc) {
#if PT_AVX512
    if (M <= 16 && pt_mm_nk_small(M, N, K, A, lda, B, C, ldc)) return;
    /* pack B^T as a float32 [K][N] panel (16x16 transposes), then the [K,N] kernel */
    const int64_t ldb = B->rs;
    const int esz = B->dt == PT_BF16 ? 2 : 4;
    const int64_t Np = (N + 15) & ~(int64_t)15;
    float *Bt = pt_tls_grow(&pt_nk_bf, &pt_nk_bf_n, (size_t)(K * Np + 16));
    if (!Bt) return;
    for (int64_t n0 = 0; n0 < N; n0 += 16) {
        const int64_t nr = N - n0 < 16 ? N - n0 : 16;
        if (n0 + 16 < N) {
            const int64_t nn = N - n0 - 16 < 16 ? N - n0 - 16 : 16;
            for (int64_t j = 0; j < nn; j++) {
                const char *rp = B->p + (n0 + 16 + j) * ldb * esz;
                const int64_t mis = (int64_t)((uintptr_t)rp & 63u);
                for (int64_t o = 0; o < K * esz + mis; o += 64) _mm_prefetch(rp - mis + o, _MM_HINT_T0);
            }
        }

        for (int64_t k0 = 0; k0 < K; k0 += 16) {
            __m512 r[16];
            const int64_t kr = K - k0 < 16 ? K - k0 : 16;
            const __mmask16 km = (__mmask16)(kr == 16 ? 0xffffu : ((1u << kr) - 1u));
            for (int64_t j = 0; j < 16; j++) {
                if (j < nr) {
                    if (B->dt == PT_BF16)
                        r[j] = pt_ld16_bf_mask((const uint16_t *)B->p + (n0 + j) * ldb + k0, km);
                    else
                        r[j] = _mm512_maskz_loadu_ps(km, (const float *)B->p + (n0 + j) * ldb + k0);
                } else {
                    r[j] = _mm512_setzero_ps();
                }
            }
            pt_tr16(r);
            for (int64_t kk = 0; kk < kr; kk++) _mm512_storeu_ps(Bt + (k0 + kk) * Np + n0, r[kk]);
        }
    }
    pt_mat Bm = {(const char *)Bt, Np, 1, PT_FP32};
    pt_mm_kn(M, N, K, A, lda, &Bm, C, ldc);
#else
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float s = 0.0f;
            if (B->dt == PT_BF16) {
                const uint16_t *bp = (const uint16_t *)B->p + j * B->rs;
                for (int64_t k = 0; k < K; k++) s = fmaf(A[i * lda + k], pt_bf2f_raw(bp[k]), s);
            } else {
                const float *bp = (const float *)B->p + j * B->rs;
                for (int64_t k = 0; k < K; k++) s = fmaf(A[i * lda + k], bp[k], s);
            }
            C[i * ldc + j] = s;
        }
#endif
}

/* Split the N range of a big product over the OpenMP team when not already parallel. */
static void pt_mm_driver(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                         const pt_mat *B, int b_trans, float *C, int64_t ldc) {
#ifdef _OPENMP
    double work = (double)M * (double)N * (double)K;
    if (work >= 4.0e6 && N >= 128 && !omp_in_parallel() && omp_get_max_threads() > 1) {
        int64_t nb = (N + 63) / 64;
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t t = 0; t < nb; t++) {
            int64_t n0 = t * 64, nn = N - n0 < 64 ? N - n0 : 64;
            pt_mat Bt = *B;
            if (b_trans) Bt.p = B->p + n0 * B->rs * (B->dt == PT_BF16 ? 2 : 4);
            else Bt.p = B->p + n0 * (B->dt == PT_BF16 ? 2 : 4);
            if (b_trans) pt_mm_nk(M, nn, K, A, lda, &Bt, C + n0, ldc);
            else pt_mm_kn(M, nn, K, A, lda, &Bt, C + n0, ldc);
        }
        return;
    }
#endif
    if (b_trans) pt_mm_nk(M, N, K, A, lda, B, C, ldc);
    else pt_mm_kn(M, N, K, A, lda, B, C, ldc);
}

static int pt_windows_overlap(const pt_tensor *a, const int64_t *aoff, const int64_t *abox,
                              const pt_tensor *b, const int64_t *bbox, int esize) {
    /* conservative address-range test */
    const char *a0 = a->base, *b0 = b->base;
    int64_t alo = 0, ahi = 0, blo = 0, bhi = 0;
    for (int d = 0; d < a->rank; d++) {
        if (abox[d] <= 0) return 0;
        alo += (a->off[d] + aoff[d]) * a->bstride[d];
        ahi += (a->off[d] + aoff[d] + abox[d] - 1) * a->bstride[d];
    }
    for (int d = 0; d < b->rank; d++) {
        if (bbox[d] <= 0) return 0;
        blo += b->off[d] * b->bstride[d];
        bhi += (b->off[d] + bbox[d] - 1) * b->bstride[d];
    }
    const char *as = a0 + alo * esize, *ae = a0 + (ahi + 1) * esize;
    const char *bs = b0 + blo * esize, *be = b0 + (bhi + 1) * esize;
    return as < be && bs < ae;
}

/* numpy's _attempt_nocopy_reshape (C order), strides in elements. */
static int pt_nocopy_strides(int ord, const int64_t *odims_in, const int64_t *ostr_in, int nnd,
                             const int64_t *ndims, int64_t *nstr) {
    int64_t odims[PT_MAXRANK], ostr[PT_MAXRANK];
    int ond = 0;
    for (int i = 0; i < ord; i++)
        if (odims_in[i] != 1) { odims[ond] = odims_in[i]; ostr[ond] = ostr_in[i]; ond++; }
    int oi = 0, oj = 1, ni = 0, nj = 1;
    while (ni < nnd && oi < ond) {
        int64_t np_ = ndims[ni], op = odims[oi];
        while (np_ != op) {
            if (np_ < op) {
                if (nj >= nnd) return 0;
                np_ *= ndims[nj++];
            } else {
                if (oj >= ond) return 0;
                op *= odims[oj++];
            }
        }
        for (int ok = oi; ok < oj - 1; ok++)
            if (ostr[ok] != odims[ok + 1] * ostr[ok + 1]) return 0;
        nstr[nj - 1] = ostr[oj - 1];
        for (int nk = nj - 1; nk > ni; nk--) nstr[nk - 1] = nstr[nk] * ndims[nk];
        ni = nj++;
        oi = oj++;
    }
    int64_t last = ni >= 1 ? nstr[ni - 1] : 1;
    for (int nk = ni; nk < nnd; nk++) nstr[nk] = last;
    return 1;
}

PT_API void pt_fail(pt_ctx *ctx, int site, int n, int64_t v0, int64_t v1, int64_t v2, int64_t v3, int64_t v4, int64_t v5) {
    int32_t expected = 0;
    if (__atomic_compare_exchange_n(&ctx->err, &expected, -1, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        ctx->site = site;
        ctx->vals[0] = v0; ctx->vals[1] = v1; ctx->vals[2] = v2;
        ctx->vals[3] = v3; ctx->vals[4] = v4; ctx->vals[5] = v5;
        (void)n;
        __atomic_store_n(&ctx->err, 1, __ATOMIC_RELEASE);
    }
}

/* A fault with up to 16 values (index lists, shapes). */
PT_API void pt_failv(pt_ctx *ctx, int site, int n, const int64_t *v) {
    int32_t expected = 0;
    if (__atomic_compare_exchange_n(&ctx->err, &expected, -1, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        ctx->site = site;
        for (int i = 0; i < 16; i++) ctx->vals[i] = i < n ? v[i] : 0;
        __atomic_store_n(&ctx->err, 1, __ATOMIC_RELEASE);
    }
}

PT_API pt_buf *pt_buf_alloc(size_t nbytes) {
    size_t n = (nbytes + 63) & ~(size_t)63;
    if (n == 0) n = 64;
    if (n <= PT_CACHE_MAX) {
        for (int i = 0; i < PT_CACHE_N; i++) {
            if (pt_cache[i].b && pt_cache[i].n == n) {
                pt_buf *b = pt_cache[i].b;
                pt_cache[i].b = NULL;
                b->refcnt = 1; b->written = 0; b->nbytes = nbytes;
                return b;
            }
        }
    }
    pt_buf *b = (pt_buf *)aligned_alloc(64, 64 + n);
    if (!b) return NULL;
    b->refcnt = 1; b->written = 0; b->nbytes = nbytes;
    return b;
}

PT_API void pt_buf_free(pt_buf *b) {
    size_t n = (b->nbytes + 63) & ~(size_t)63;
    if (n == 0) n = 64;
    if (n <= PT_CACHE_MAX) {
        for (int i = 0; i < PT_CACHE_N; i++) {
            if (!pt_cache[i].b) { pt_cache[i].b = b; pt_cache[i].n = n; return; }
        }
    }
    free(b);
}

PT_API void pt_retain(const pt_tensor *t) {
    pt_buf *b = t->buf;
    if (b && b->refcnt >= 0) __atomic_add_fetch(&b->refcnt, 1, __ATOMIC_RELAXED);
}

PT_API void pt_release(pt_tensor *t) {
    pt_buf *b = t->buf;
    if (b && b->refcnt >= 0 && __atomic_sub_fetch(&b->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
        pt_buf_free(b);
    t->buf = NULL;
    t->base = NULL;
    t->rank = 0;
}

/* dst := src (both owned references; dst's old value released, src's reference retained) */
PT_API void pt_assign(pt_tensor *dst, const pt_tensor *src) {
    if (dst == src) return;
    pt_retain(src);
    pt_release(dst);
    *dst = *src;
}

/* dst := *src, taking over src's reference (src becomes empty). */
PT_API void pt_move(pt_tensor *dst, pt_tensor *src) {
    if (dst == src) return;
    pt_release(dst);
    *dst = *src;
    src->buf = NULL;
    src->base = NULL;
    src->rank = 0;
}

/* A fresh, contiguous, fully valid buffer of `shape` (contents uninitialised). */
PT_API int pt_new(pt_ctx *ctx, int site_oom, pt_tensor *r, int rank, const int64_t *shape, int esize) {
    int64_t n = pt_numel(rank, shape);
    if (n < 0) n = 0;
    pt_buf *b = pt_buf_alloc((size_t)n * (size_t)esize);
    memset(r, 0, sizeof(*r));
    if (!b) { PT_FAIL(ctx, site_oom, n * esize, 0, 0, 0, 0, 0); return 0; }
    r->buf = b;
    r->base = pt_buf_data(b);
    r->rank = rank;
    r->pad = PT_PAD_NULL;
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        r->bshape[d] = r->shape[d] = r->valid[d] = shape[d];
        r->bstride[d] = s;
        s *= shape[d] > 0 ? shape[d] : 1;
    }
    return 1;
}

/* Fill the part of a fresh contiguous tensor outside `valid` with `pattern`. */
PT_API void pt_fill_outside(pt_tensor *r, const int64_t *valid, int esize, uint64_t pattern) {
    int rank = r->rank;
    if (rank == 0) return;
    int full = 1;
    for (int d = 0; d < rank; d++) if (valid[d] < r->shape[d]) { full = 0; break; }
    if (full) return;
    int64_t last = r->shape[rank - 1], vlast = valid[rank - 1];
    if (vlast < 0) vlast = 0;
    char *o = pt_origin(r, esize);
    PT_FOR_ROWS(rank, r->shape, idx, {
        int inside = 1;
        int64_t ro = 0;
        for (int d = 0; d < rank - 1; d++) {
            if (idx[d] >= valid[d]) inside = 0;
            ro += idx[d] * r->bstride[d];
        }
        char *row = o + ro * esize;
        if (inside) pt_fill_bytes(row + vlast * esize, last - vlast, esize, pattern);
        else pt_fill_bytes(row, last, esize, pattern);
    });
    for (int d = 0; d < rank; d++) r->valid[d] = valid[d] < r->shape[d] ? (valid[d] < 0 ? 0 : valid[d]) : r->shape[d];
}

/* Copy the box [0, box) of src (window coords) into dst (window coords, dst offset doff). */
PT_API void pt_copy_box(const pt_tensor *dst, const int64_t *doff, const pt_tensor *src, const int64_t *box, int esize) {
    int rank = src->rank;
    if (rank == 0) return;
    for (int d = 0; d < rank; d++) if (box[d] <= 0) return;
    int64_t n = box[rank - 1];
    int64_t ds = dst->bstride[rank - 1], ss = src->bstride[rank - 1];
    PT_FOR_ROWS(rank, box, idx, {
        int64_t so = 0, dof = 0;
        for (int d = 0; d < rank - 1; d++) {
            so += (src->off[d] + idx[d]) * src->bstride[d];
            dof += (dst->off[d] + doff[d] + idx[d]) * dst->bstride[d];
        }
        so += src->off[rank - 1] * ss;
        dof += (dst->off[rank - 1] + doff[rank - 1]) * ds;
        const char *sp = src->base + so * esize;
        char *dp = dst->base + dof * esize;
        if ((ss == 1 || n == 1) && (ds == 1 || n == 1)) memmove(dp, sp, (size_t)(n * esize));
        else for (int64_t j = 0; j < n; j++) memcpy(dp + j * ds * esize, sp + j * ss * esize, (size_t)esize);
    });
}

/* materialize(): a fresh contiguous copy of the window, `pattern` outside the valid box. */
PT_API int pt_materialize(pt_ctx *ctx, int site_oom, const pt_tensor *x, int esize, uint64_t pattern, pt_tensor *out) {
    if (!pt_new(ctx, site_oom, out, x->rank, x->shape, esize)) return 0;
    int64_t box[PT_MAXRANK], zero[PT_MAXRANK] = {0};
    for (int d = 0; d < x->rank; d++) box[d] = x->valid[d] < x->shape[d] ? x->valid[d] : x->shape[d];
    pt_copy_box(out, zero, x, box, esize);
    pt_fill_outside(out, box, esize, pattern);
    for (int d = 0; d < x->rank; d++) out->valid[d] = x->shape[d];
    out->pad = PT_PAD_NULL;
    return 1;
}

/* ------------------------------------------------------------------ reductions
 * NumPy's float32 pairwise summation (numpy/_core/src/umath/loops_utils.h.src). */
PT_API float pt_pairwise_sum(const float *a, int64_t n) {
    if (n < 8) {
        float res = 0.0f;
        for (int64_t i = 0; i < n; i++) res += a[i];
        return res;
    } else if (n <= 128) {
        float r0 = a[0], r1 = a[1], r2 = a[2], r3 = a[3], r4 = a[4], r5 = a[5], r6 = a[6], r7 = a[7];
        int64_t i;
        for (i = 8; i < n - (n % 8); i += 8) {
            r0 += a[i + 0]; r1 += a[i + 1]; r2 += a[i + 2]; r3 += a[i + 3];
            r4 += a[i + 4]; r5 += a[i + 5]; r6 += a[i + 6]; r7 += a[i + 7];
        }
        float res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7));
        for (; i < n; i++) res += a[i];
        return res;
    } else {
        int64_t n2 = n / 2;
        n2 -= n2 % 8;
        return pt_pairwise_sum(a, n2) + pt_pairwise_sum(a + n2, n - n2);
    }
}

PT_API float *pt_scratch(int which, size_t nfloats) {
    if (pt_scratch_n[which] < nfloats) {
        free(pt_scratch_p[which]);
        size_t n = nfloats < 1024 ? 1024 : nfloats;
        pt_scratch_p[which] = (float *)aligned_alloc(64, ((n * 4 + 63) / 64) * 64);
        pt_scratch_n[which] = pt_scratch_p[which] ? n : 0;
    }
    return pt_scratch_p[which];
}

PT_API float pt_ld_f32(const char *p, int dt) {
    switch (dt) {
    case PT_BF16: return pt_bf2f(*(const uint16_t *)p);
    case PT_FP16: return pt_h2f(*(const uint16_t *)p);
    case PT_FP32: return *(const float *)p;
    case PT_I8: return (float)*(const int8_t *)p;
    case PT_I16: return (float)*(const int16_t *)p;
    case PT_I32: return (float)*(const int32_t *)p;
    case PT_I64: return (float)*(const int64_t *)p;
    case PT_U8: return (float)*(const uint8_t *)p;
    case PT_U16: return (float)*(const uint16_t *)p;
    case PT_U32: return (float)*(const uint32_t *)p;
    case PT_U64: return (float)*(const uint64_t *)p;
    default: return (float)*(const uint8_t *)p;
    }
}

PT_API int64_t pt_ld_i64(const char *p, int dt) {
    switch (dt) {
    case PT_I8: return *(const int8_t *)p;
    case PT_I16: return *(const int16_t *)p;
    case PT_I32: return *(const int32_t *)p;
    case PT_I64: return *(const int64_t *)p;
    case PT_U8: return *(const uint8_t *)p;
    case PT_U16: return *(const uint16_t *)p;
    case PT_U32: return *(const uint32_t *)p;
    case PT_U64: return (int64_t)*(const uint64_t *)p;
    default: return *(const uint8_t *)p;
    }
}

/* store a float32 value, rounded RNE (float dtypes) or saturating rint (ints). */
PT_API void pt_st_f32(char *p, int dt, float v) {
    switch (dt) {
    case PT_BF16: *(uint16_t *)p = pt_f2bf_rint(v); break;
    case PT_FP16: *(uint16_t *)p = pt_f2h_rint(v); break;
    case PT_FP32: *(float *)p = v; break;
    case PT_BOOL: *(uint8_t *)p = v != 0.0f; break;
    default: {
        uint64_t b = (uint64_t)pt_f2i(v, PT_M_RINT, pt_imax[dt], pt_inegmax[dt]);
        switch (pt_esize_of[dt]) {
        case 1: *(uint8_t *)p = (uint8_t)b; break;
        case 2: *(uint16_t *)p = (uint16_t)b; break;
        case 4: *(uint32_t *)p = (uint32_t)b; break;
        default: *(uint64_t *)p = b; break;
        }
    }
    }
}

/* store an integer value: wrap (ints), exact/rint (floats). */
PT_API void pt_st_i64(char *p, int dt, int64_t v) {
    switch (dt) {
    case PT_BF16: *(uint16_t *)p = (uint16_t)pt_i2fbits(v, PT_FMT_BF16, PT_M_RINT); break;
    case PT_FP16: *(uint16_t *)p = (uint16_t)pt_i2fbits(v, PT_FMT_FP16, PT_M_RINT); break;
    case PT_FP32: *(float *)p = (float)v; break;
    case PT_BOOL: *(uint8_t *)p = v != 0; break;
    default:
        switch (pt_esize_of[dt]) {
        case 1: *(uint8_t *)p = (uint8_t)v; break;
        case 2: *(uint16_t *)p = (uint16_t)v; break;
        case 4: *(uint32_t *)p = (uint32_t)v; break;
        default: *(uint64_t *)p = (uint64_t)v; break;
        }
    }
}

/* ------------------------------------------------------------------ matmul op
 * sites: site+0 contraction mismatch, site+1 accumulator shape, site+2 out of memory. */
PT_API void pt_matmul(pt_ctx *ctx, int site, const pt_tensor *A0, int adt, const pt_tensor *B0, int bdt, const pt_tensor *ACC0, int accdt, int rdt, int a_trans, int b_trans, pt_tensor *R) {
    int64_t m = a_trans ? A0->shape[1] : A0->shape[0], k1 = a_trans ? A0->shape[0] : A0->shape[1];
    int64_t k2 = b_trans ? B0->shape[1] : B0->shape[0], n = b_trans ? B0->shape[0] : B0->shape[1];
    if (k1 != k2) { PT_FAIL(ctx, site, k1, k2, 0, 0, 0, 0); return; }
    if (ACC0 && (ACC0->shape[0] != m || ACC0->shape[1] != n)) {
        PT_FAIL(ctx, site + 1, ACC0->shape[0], ACC0->shape[1], m, n, 0, 0);
        return;
    }
    int64_t K = k1;
    pt_tensor Am = PT_EMPTY, Bm = PT_EMPTY, Cm = PT_EMPTY;
    const pt_tensor *A = A0, *B = B0, *ACC = ACC0;
    int ae = pt_esize_of[adt], be = pt_esize_of[bdt];
    if (!pt_fully_valid(A) && !pt_materialize(ctx, site + 2, A, ae, pt_pad_bits(adt, A->pad), &Am)) goto done;
    if (Am.buf) A = &Am;
    if (!pt_fully_valid(B) && !pt_materialize(ctx, site + 2, B, be, pt_pad_bits(bdt, B->pad), &Bm)) goto done;
    if (Bm.buf) B = &Bm;
    if (ACC && !pt_fully_valid(ACC) &&
        !pt_materialize(ctx, site + 2, ACC, pt_esize_of[accdt], pt_pad_bits(accdt, ACC->pad), &Cm)) goto done;
    if (Cm.buf) ACC = &Cm;
    {
        int64_t shp[2] = {m, n};
        if (!pt_new(ctx, site + 2, R, 2, shp, pt_esize_of[rdt])) goto done;
    }
    if (m == 0 || n == 0) goto done;
    const char *ap = pt_origin(A, ae), *bp = pt_origin(B, be);
    int64_t ars = A->bstride[0], acs = A->bstride[1], brs = B->bstride[0], bcs = B->bstride[1];
    if (a_trans) { int64_t t = ars; ars = acs; acs = t; }
    char *rp = R->base;
    int int_path = !pt_is_float_dt(adt) && !pt_is_float_dt(bdt);
    if (int_path) {
        int64_t brs2 = brs, bcs2 = bcs;
        if (b_trans) { brs2 = bcs; bcs2 = brs; }
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                uint64_t s = 0;
                for (int64_t kk = 0; kk < K; kk++)
                    s += (uint64_t)pt_ld_i64(ap + (i * ars + kk * acs) * ae, adt) *
                         (uint64_t)pt_ld_i64(bp + (kk * brs2 + j * bcs2) * be, bdt);
                int64_t v = (int32_t)(uint32_t)s;
                if (ACC) v = (int32_t)((uint32_t)v + (uint32_t)pt_ld_i64(pt_origin(ACC, pt_esize_of[accdt]) + (i * ACC->bstride[0] + j * ACC->bstride[1]) * pt_esize_of[accdt], accdt));
                pt_st_i64(rp + (i * n + j) * pt_esize_of[rdt], rdt, v);
            }
        goto done;
    }
    {
        /* A as a packed float32 [m, K] panel (unless it already is one) */
        const float *Af;
        int64_t lda;
        if (adt == PT_FP32 && acs == 1 && K > 0) {
            Af = (const float *)ap; lda = ars;
        } else {
            float *pa = pt_scratch(0, (size_t)(m * (K > 0 ? K : 1)));
            if (!pa) { PT_FAIL(ctx, site + 2, m * K * 4, 0, 0, 0, 0, 0); goto done; }
            if (adt == PT_BF16 && acs == 1) {
                for (int64_t i = 0; i < m; i++) {
                    const uint16_t *src = (const uint16_t *)ap + i * ars;
                    for (int64_t kk = 0; kk < K; kk++) pa[i * K + kk] = pt_bf2f_raw(src[kk]);
                }
            } else {
                for (int64_t i = 0; i < m; i++)
                    for (int64_t kk = 0; kk < K; kk++) pa[i * K + kk] = pt_ld_f32(ap + (i * ars + kk * acs) * ae, adt);
            }
            Af = pa; lda = K;
        }
        /* B: float32 / BF16 used in place when its inner axis is contiguous */
        pt_mat Bmat;
        int btr = b_trans;
        if ((bdt == PT_FP32 || bdt == PT_BF16) && (bcs == 1 || (b_trans ? K : n) == 1)) {
            Bmat.p = bp; Bmat.rs = brs; Bmat.cs = 1; Bmat.dt = bdt;
        } else {
            float *pb = pt_scratch(1, (size_t)(K * n > 0 ? K * n : 1));
            if (!pb) { PT_FAIL(ctx, site + 2, K * n * 4, 0, 0, 0, 0, 0); goto done; }
            for (int64_t kk = 0; kk < K; kk++)
                for (int64_t j = 0; j < n; j++) {
                    int64_t r0 = b_trans ? j : kk, c0 = b_trans ? kk : j;
                    pb[kk * n + j] = pt_ld_f32(bp + (r0 * brs + c0 * bcs) * be, bdt);
                }
            Bmat.p = (const char *)pb; Bmat.rs = n; Bmat.cs = 1; Bmat.dt = PT_FP32;
            btr = 0;
        }
        /* A [N,K] window of a wider weight (b_trans) is usually walked by a K loop inside an N
         * loop: start fetching the window the next op will read (same rows, next K chunk; at
         * the end of the rows, the next row group from column 0). */
        if (btr && B0->rank == 2 && B0->bstride[1] == 1 && B0->shape[0] == n && B0->shape[1] == K) {
            int64_t r0 = B0->off[0], c0 = B0->off[1] + K;
            if (c0 + K > B0->bshape[1]) { r0 += n; c0 = 0; }
            if (r0 + n <= B0->bshape[0] && c0 + K <= B0->bshape[1]) {
                /* NumPy data is often only 16-byte aligned: cover whole cache lines */
                const char *first = B0->base + (r0 * B0->bstride[0] + c0) * be;
                const uintptr_t mis = (uintptr_t)first & 63u;
                pt_pf.p = first - mis;
                pt_pf.stride = B0->bstride[0] * be;
                pt_pf.rows = n;
                pt_pf.bytes = (int64_t)mis + K * be;
                pt_pf.next = 0;
                pt_pf.off = 0;
            }
        }
        int direct = rdt == PT_FP32 && !ACC;
        float *Cf = direct ? (float *)rp : pt_scratch(2, (size_t)(m * n));
        if (!Cf) { PT_FAIL(ctx, site + 2, m * n * 4, 0, 0, 0, 0, 0); goto done; }
        if (K == 0) { for (int64_t i = 0; i < m * n; i++) Cf[i] = 0.0f; }
        else pt_mm_driver(m, n, K, Af, lda, &Bmat, btr, Cf, n);
        pt_pf_rows(pt_pf.rows);
        pt_pf.rows = 0;
        if (!direct) {
            int re = pt_esize_of[rdt];
            if (ACC && accdt == PT_FP32 && rdt == PT_FP32 && (ACC->bstride[1] == 1 || n == 1)) {
                const float *cp = (const float *)pt_origin(ACC, 4);
                float *o = (float *)rp;
                for (int64_t i = 0; i < m; i++) {
                    const float *ar = cp + i * ACC->bstride[0];
                    const float *cr = Cf + i * n;
                    float *orow = o + i * n;
                    for (int64_t j = 0; j < n; j++) orow[j] = ar[j] + cr[j];
                }
            } else if (ACC) {
                int ce = pt_esize_of[accdt];
                const char *cp = pt_origin(ACC, ce);
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < n; j++) {
                        float s = pt_ld_f32(cp + (i * ACC->bstride[0] + j * ACC->bstride[1]) * ce, accdt) + Cf[i * n + j];
                        pt_st_f32(rp + (i * n + j) * re, rdt, s);
                    }
            } else if (rdt == PT_BF16) {
                uint16_t *o = (uint16_t *)rp;
                for (int64_t i = 0; i < m * n; i++) o[i] = pt_f2bf_rint(Cf[i]);
            } else {
                for (int64_t i = 0; i < m * n; i++) pt_st_f32(rp + i * re, rdt, Cf[i]);
            }
        }
    }
done:
    pt_release(&Am);
    pt_release(&Bm);
    pt_release(&Cm);
}

/* _check_window: sites +0 negative offset (axis, offset), +1 past the dim (axis, offset, extent,
 * dim), +2 past the buffer (axis, buffer offset, extent, buffer dim). */
PT_API int pt_check_window(pt_ctx *ctx, int site, const pt_tensor *t, const int64_t *offset, const int64_t *extent) {
    for (int i = 0; i < t->rank; i++) {
        if (offset[i] < 0) { PT_FAIL(ctx, site, i, offset[i], 0, 0, 0, 0); return 0; }
        if (offset[i] + extent[i] > t->shape[i]) {
            PT_FAIL(ctx, site + 1, i, offset[i], extent[i], t->shape[i], 0, 0);
            return 0;
        }
    }
    for (int i = 0; i < t->rank; i++) {
        int64_t o = t->off[i] + offset[i];
        if (extent[i] > 0 && o + extent[i] > t->bshape[i]) {
            PT_FAIL(ctx, site + 2, i, o, extent[i], t->bshape[i], 0, 0);
            return 0;
        }
    }
    return 1;
}

/* pl.slice. sites: +0 negative extent (axis, value), +1 bad valid_shape (axis, valid, shape),
 * +2..+4 window checks. want == NULL: no valid_shape given. */
PT_API void pt_slice(pt_ctx *ctx, int site, const pt_tensor *x, const int64_t *shape, const int64_t *offset, const int64_t *want_in, int pad, pt_tensor *out) {
    int r = x->rank;
    for (int i = 0; i < r; i++)
        if (shape[i] < 0) { PT_FAIL(ctx, site, i, shape[i], 0, 0, 0, 0); return; }
    const int64_t *want = want_in ? want_in : shape;
    for (int i = 0; i < r; i++)
        if (!(0 <= want[i] && want[i] <= shape[i])) {
            PT_FAIL(ctx, site + 1, i, want[i], shape[i], 0, 0, 0);
            return;
        }
    if (ctx->bounds_check && !pt_check_window(ctx, site + 2, x, offset, want)) return;
    *out = *x;
    for (int i = 0; i < r; i++) {
        out->off[i] = x->off[i] + offset[i];
        out->shape[i] = shape[i];
        int64_t v = x->valid[i] - offset[i];
        if (want[i] < v) v = want[i];
        out->valid[i] = v > 0 ? v : 0;
    }
    out->pad = pad;
    pt_retain(out);
}

/* pl.assemble: write source's valid region into target at offset, in place. sites +0..+2:
 * window checks, +3 out of memory. */
PT_API void pt_assemble(pt_ctx *ctx, int site, const pt_tensor *target, const pt_tensor *source, const int64_t *offset, int esize) {
    int64_t box[PT_MAXRANK];
    for (int d = 0; d < source->rank; d++) box[d] = source->valid[d];
    if (ctx->bounds_check && !pt_check_window(ctx, site, target, offset, box)) return;
    if (pt_windows_overlap(target, offset, box, source, box, esize)) {
        pt_tensor tmp = PT_EMPTY;
        if (!pt_materialize(ctx, site + 3, source, esize, 0, &tmp)) return;
        pt_copy_box(target, offset, &tmp, box, esize);
        pt_release(&tmp);
    } else {
        pt_copy_box(target, offset, source, box, esize);
    }
    if (target->buf) target->buf->written = 1;
}

/* pl.reshape (ops.reshape + memory.reshaped). sites: +0 negative extent (axis, value),
 * +1 element count (old, new), +2 partial valid region, +3 out of memory. */
PT_API void pt_reshape(pt_ctx *ctx, int site, const pt_tensor *x, int nr, const int64_t *shape, int esize, uint64_t pattern, pt_tensor *out) {
    for (int i = 0; i < nr; i++)
        if (shape[i] < 0) { PT_FAIL(ctx, site, i, shape[i], 0, 0, 0, 0); return; }
    int64_t on = pt_numel(x->rank, x->shape), nn = pt_numel(nr, shape);
    if (on != nn) { PT_FAIL(ctx, site + 1, on, nn, 0, 0, 0, 0); return; }
    int64_t valid[PT_MAXRANK];
    for (int i = 0; i < nr; i++) valid[i] = shape[i];
    if (!pt_fully_valid(x)) {
        int nnon = 0, onon = 0, ni = -1;
        int64_t od = 0, ov = 0;
        for (int i = 0; i < nr; i++) if (shape[i] != 1) { nnon++; ni = i; }
        for (int i = 0; i < x->rank; i++) if (x->shape[i] != 1) { onon++; od = x->shape[i]; ov = x->valid[i]; }
        if (nnon == 1 && onon == 1 && shape[ni] == od) {
            for (int i = 0; i < nr; i++) valid[i] = shape[i] != 1 ? ov : 1;
        } else {
            PT_FAIL(ctx, site + 2, 0, 0, 0, 0, 0, 0);
            return;
        }
    }
    int inbuf = 1;
    for (int d = 0; d < x->rank; d++) if (x->off[d] + x->shape[d] > x->bshape[d]) inbuf = 0;
    int64_t nstr[PT_MAXRANK];
    int view = 0;
    if (inbuf) {
        int same = nr == x->rank;
        for (int d = 0; same && d < nr; d++) if (shape[d] != x->shape[d]) same = 0;
        if (same) {
            for (int d = 0; d < nr; d++) nstr[d] = x->bstride[d];
            view = 1;
        } else {
            int contig = 1, zero = 0;
            int64_t sd = 1;
            for (int d = x->rank - 1; d >= 0; d--) {
                if (x->shape[d] == 0) { zero = 1; break; }
                if (x->shape[d] != 1) {
                    if (x->bstride[d] != sd) { contig = 0; }
                    sd *= x->shape[d];
                }
            }
            if (zero) contig = 1;
            if (contig) {
                int64_t s = 1;
                for (int d = nr - 1; d >= 0; d--) { nstr[d] = s; s *= shape[d] > 0 ? shape[d] : 1; }
                view = 1;
            } else if (pt_nocopy_strides(x->rank, x->shape, x->bstride, nr, shape, nstr)) {
                view = 1;
            }
        }
    }
    if (view) {
        memset(out, 0, sizeof(*out));
        out->base = pt_origin(x, esize);
        out->buf = x->buf;
        out->rank = nr;
        out->pad = x->pad;
        for (int d = 0; d < nr; d++) {
            out->bshape[d] = out->shape[d] = shape[d];
            out->bstride[d] = nstr[d];
            out->valid[d] = valid[d];
        }
        pt_retain(out);
        return;
    }
    pt_tensor m = PT_EMPTY;
    if (!pt_materialize(ctx, site + 3, x, esize, pattern, &m)) return;
    *out = m;
    out->rank = nr;
    out->pad = x->pad;
    int64_t s = 1;
    for (int d = nr - 1; d >= 0; d--) {
        out->bshape[d] = out->shape[d] = shape[d];
        out->off[d] = 0;
        out->bstride[d] = s;
        out->valid[d] = valid[d];
        s *= shape[d] > 0 ? shape[d] : 1;
    }
}

/* ops._check_index + element address. n: number of indices (1 = flat when rank != 1).
 * sites: +0 flat index out of bounds (flat, size), +1 index out of bounds (axis, dim, idx...).
 * Returns the element offset from base; *inside: inside the valid region. */
PT_API int pt_index(pt_ctx *ctx, int site, const pt_tensor *x, int n, const int64_t *idx, int64_t *elem, int *inside, int64_t *bidx) {
    int64_t ix[PT_MAXRANK];
    int r = x->rank;
    if (n == 1 && r != 1) {
        int64_t flat = idx[0], size = pt_numel(r, x->shape);
        if (ctx->bounds_check && !(0 <= flat && flat < size)) {
            PT_FAIL(ctx, site, flat, size, 0, 0, 0, 0);
            return 0;
        }
        for (int d = r - 1; d >= 0; d--) {
            int64_t s = x->shape[d] > 0 ? x->shape[d] : 1;
            ix[d] = flat % s;
            flat /= s;
        }
    } else {
        for (int d = 0; d < r; d++) ix[d] = idx[d];
        if (ctx->bounds_check)
            for (int d = 0; d < r; d++)
                if (!(0 <= ix[d] && ix[d] < x->shape[d])) {
                    int64_t v[16] = {d, x->shape[d], r};
                    for (int k = 0; k < r && k < 13; k++) v[3 + k] = ix[k];
                    pt_failv(ctx, site + 1, 3 + r, v);
                    return 0;
                }
    }
    int64_t e = 0;
    int in = 1;
    for (int d = 0; d < r; d++) {
        if (!(ix[d] < x->valid[d])) in = 0;
        bidx[d] = x->off[d] + ix[d];
        e += bidx[d] * x->bstride[d];
    }
    *elem = e;
    *inside = in;
    return 1;
}

/* ------------------------------------------------------------------ Python-facing helpers */
PT_API void *pldsl_buf_alloc(size_t nbytes) {
    return pt_buf_alloc(nbytes);
}

PT_API void pldsl_retain(pt_tensor *t) { pt_retain(t); }

PT_API void pldsl_release(pt_tensor *t) { pt_release(t); }

/* materialize t into dst (contiguous, window shape), pattern outside the valid box */
PT_API void pldsl_export(const pt_tensor *t, void *dst, int esize, uint64_t pattern) {
    pt_tensor d;
    memset(&d, 0, sizeof(d));
    d.base = (char *)dst;
    d.rank = t->rank;
    int64_t s = 1;
    int64_t box[PT_MAXRANK], zero[PT_MAXRANK] = {0};
    for (int i = t->rank - 1; i >= 0; i--) {
        d.bshape[i] = d.shape[i] = d.valid[i] = t->shape[i];
        d.bstride[i] = s;
        s *= t->shape[i] > 0 ? t->shape[i] : 1;
        box[i] = t->valid[i] < t->shape[i] ? t->valid[i] : t->shape[i];
    }
    pt_copy_box(&d, zero, t, box, esize);
    pt_fill_outside(&d, box, esize, pattern);
}

/* copy a contiguous array (the valid box of t's window) back into t (host write-back) */
PT_API void pldsl_import_valid(const pt_tensor *t, const void *src, int esize) {
    pt_tensor s_;
    memset(&s_, 0, sizeof(s_));
    s_.base = (char *)src;
    s_.rank = t->rank;
    int64_t s = 1, box[PT_MAXRANK], zero[PT_MAXRANK] = {0};
    for (int i = t->rank - 1; i >= 0; i--) {
        s_.bshape[i] = s_.shape[i] = s_.valid[i] = t->shape[i];
        s_.bstride[i] = s;
        s *= t->shape[i] > 0 ? t->shape[i] : 1;
        box[i] = t->valid[i] < t->shape[i] ? t->valid[i] : t->shape[i];
    }
    pt_copy_box(t, zero, &s_, box, esize);
}


/* exp of float32 values computed in double and rounded once to float32 (the contract's
 * definition), 8 lanes at a time: k = round(x / ln 2), r = x - k ln 2 (Cody-Waite, two
 * parts), exp(r) by its Taylor series to degree 13 (|r| <= 0.35: truncation < 5e-18), times
 * 2**k. The double result is within ~2 ulp of exp(x), so the float32 rounding agrees with a
 * correctly rounded double exp except when exp(x) lies within ~2**-50 (relative) of a float32
 * rounding boundary. */
PT_API void pt_vexpf(float *x, int64_t n) {
    int64_t i = 0;
#if PT_AVX512
    const __m512d inv_ln2 = _mm512_set1_pd(1.4426950408889634);
    const __m512d ln2_hi = _mm512_set1_pd(0.693147180369123816490);
    const __m512d ln2_lo = _mm512_set1_pd(1.90821492927058770002e-10);
    const __m512d lo = _mm512_set1_pd(-120.0), hi = _mm512_set1_pd(120.0);
    static const double c[14] = {1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720,
                                 1.0 / 5040, 1.0 / 40320, 1.0 / 362880, 1.0 / 3628800,
                                 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0};
    for (; i + 8 <= n; i += 8) {
        __m256 xf = _mm256_loadu_ps(x + i);
        __m512d xd = _mm512_cvtps_pd(xf);
        __mmask8 nan = _mm512_cmp_pd_mask(xd, xd, _CMP_UNORD_Q);
        __m512d xc = _mm512_min_pd(_mm512_max_pd(xd, lo), hi);
        __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(xc, inv_ln2), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512d r = _mm512_fnmadd_pd(k, ln2_hi, xc);
        r = _mm512_fnmadd_pd(k, ln2_lo, r);
        __m512d p = _mm512_set1_pd(c[13]);
        for (int j = 12; j >= 0; j--) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c[j]));
        __m256i ki = _mm512_cvtpd_epi32(k);
        __m512i e = _mm512_slli_epi64(_mm512_add_epi64(_mm512_cvtepi32_epi64(ki), _mm512_set1_epi64(1023)), 52);
        __m512d res = _mm512_mul_pd(p, _mm512_castsi512_pd(e));
        res = _mm512_mask_mov_pd(res, nan, xd);
        _mm256_storeu_ps(x + i, _mm512_cvtpd_ps(res));
    }
#endif
    for (; i < n; i++) x[i] = (float)exp((double)x[i]);
}


/* max / min of n >= 1 float32 values; NaN if any is NaN (maximum/minimum are exact, so the
 * order does not matter; which zero wins a +0/-0 tie may differ from NumPy). */
PT_API float pt_vmaxminf(const float *x, int64_t n, int is_max) {
    int64_t i = 0;
    float acc = x[0];
    int nan = acc != acc;
#if PT_AVX512
    if (n >= 32) {
        __m512 va = _mm512_loadu_ps(x);
        __mmask16 nm = _mm512_cmp_ps_mask(va, va, _CMP_UNORD_Q);
        for (i = 16; i + 16 <= n; i += 16) {
            const __m512 v = _mm512_loadu_ps(x + i);
            nm |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
            va = is_max ? _mm512_max_ps(va, v) : _mm512_min_ps(va, v);
        }
        acc = is_max ? _mm512_reduce_max_ps(va) : _mm512_reduce_min_ps(va);
        nan |= nm != 0;
    }
#endif
    for (; i < n; i++) {
        const float v = x[i];
        nan |= v != v;
        acc = is_max ? (v > acc ? v : acc) : (v < acc ? v : acc);
    }
    return nan ? __builtin_nanf("") : acc;
}


/* ------------------------------------------------------------------ PyPTO's wider op set
 * Layout moves and index ops: bit copies (no numerics), zero outside the result's valid box,
 * as the interpreter's fresh tiles. */

static int64_t pt_min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* pl.transpose: axes a and b of x swapped; x's valid box copied (swapped). */
PT_API void pt_transpose(pt_ctx *ctx, int site_oom, const pt_tensor *x, int a, int b, int esize, pt_tensor *out) {
    int r = x->rank;
    int64_t shape[PT_MAXRANK], box[PT_MAXRANK], valid[PT_MAXRANK];
    for (int d = 0; d < r; d++) shape[d] = x->shape[d];
    shape[a] = x->shape[b]; shape[b] = x->shape[a];
    if (!pt_new(ctx, site_oom, out, r, shape, esize)) return;
    memset(out->base, 0, (size_t)(pt_numel(r, shape) * esize));
    for (int d = 0; d < r; d++) box[d] = pt_min64(x->valid[d], x->shape[d]);
    const char *xo = pt_origin(x, esize);
    PT_FOR_ROWS(r, box, idx, {
        int64_t so = 0, dof = 0;
        for (int d = 0; d < r - 1; d++) {
            int dd = d == a ? b : d == b ? a : d;
            so += idx[d] * x->bstride[d];
            dof += idx[d] * out->bstride[dd];
        }
        int last = r - 1, dl = last == a ? b : last == b ? a : last;
        for (int64_t j = 0; j < box[last]; j++)
            memcpy(out->base + (dof + j * out->bstride[dl]) * esize, xo + (so + j * x->bstride[last]) * esize, (size_t)esize);
    });
    for (int d = 0; d < r; d++) valid[d] = box[d];
    valid[a] = box[b]; valid[b] = box[a];
    for (int d = 0; d < r; d++) out->valid[d] = valid[d];
}

/* pl.concat along the last axis. Valid: the smaller leading extents; x's valid columns, then
 * y's only when all of x's are valid (the same rule as ops/table_more.concat_valid). */
PT_API void pt_concat(pt_ctx *ctx, int site_oom, const pt_tensor *x, const pt_tensor *y, int esize, pt_tensor *out) {
    int r = x->rank, l = r - 1;
    int64_t shape[PT_MAXRANK], valid[PT_MAXRANK], box[PT_MAXRANK], off[PT_MAXRANK] = {0};
    for (int d = 0; d < r; d++) shape[d] = x->shape[d];
    shape[l] = x->shape[l] + y->shape[l];
    if (!pt_new(ctx, site_oom, out, r, shape, esize)) return;
    memset(out->base, 0, (size_t)(pt_numel(r, shape) * esize));
    for (int d = 0; d < l; d++) valid[d] = pt_min64(x->valid[d], y->valid[d]);
    int64_t xv = pt_min64(x->valid[l], x->shape[l]), yv = pt_min64(y->valid[l], y->shape[l]);
    valid[l] = xv == x->shape[l] ? x->shape[l] + yv : xv;
    for (int d = 0; d < l; d++) box[d] = valid[d];
    box[l] = pt_min64(xv, valid[l]);
    pt_copy_box(out, off, x, box, esize);
    box[l] = valid[l] - x->shape[l] > 0 ? valid[l] - x->shape[l] : 0;
    off[l] = x->shape[l];
    pt_copy_box(out, off, y, box, esize);
    for (int d = 0; d < r; d++) out->valid[d] = valid[d];
}

/* pl.gather (index form, last axis): out[b, k] = x[b, idx[b, k]] over idx's valid box; x reads
 * its pad beyond its valid box. sites: +0 index out of range (b, k, value, ncols), +1 more
 * valid index rows than x has (rows, x rows), +2 out of memory. */
PT_API void pt_gather(pt_ctx *ctx, int site, const pt_tensor *x, int xdt, const pt_tensor *idx, int idt, pt_tensor *out) {
    int esize = pt_esize_of[xdt], ie = pt_esize_of[idt];
    int64_t rows = pt_min64(idx->valid[0], idx->shape[0]), cols = pt_min64(idx->valid[1], idx->shape[1]);
    if (rows > x->shape[0]) { PT_FAIL(ctx, site + 1, rows, x->shape[0], 0, 0, 0, 0); return; }
    const char *io = pt_origin(idx, ie), *xo = pt_origin(x, esize);
    for (int64_t b = 0; b < rows; b++)
        for (int64_t k = 0; k < cols; k++) {
            int64_t v = pt_ld_i64(io + (b * idx->bstride[0] + k * idx->bstride[1]) * ie, idt);
            if (v < 0 || v >= x->shape[1]) { PT_FAIL(ctx, site, b, k, v, x->shape[1], 0, 0); return; }
        }
    if (!pt_new(ctx, site + 2, out, 2, idx->shape, esize)) return;
    memset(out->base, 0, (size_t)(pt_numel(2, idx->shape) * esize));
    uint64_t pad = pt_pad_bits(xdt, x->pad);
    int64_t xvr = pt_min64(x->valid[0], x->shape[0]), xvc = pt_min64(x->valid[1], x->shape[1]);
    for (int64_t b = 0; b < rows; b++)
        for (int64_t k = 0; k < cols; k++) {
            int64_t v = pt_ld_i64(io + (b * idx->bstride[0] + k * idx->bstride[1]) * ie, idt);
            char *dst = out->base + (b * out->bstride[0] + k) * esize;
            if (b < xvr && v < xvc) memcpy(dst, xo + (b * x->bstride[0] + v * x->bstride[1]) * esize, (size_t)esize);
            else memcpy(dst, &pad, (size_t)esize); /* little-endian: the low bytes */
        }
    out->valid[0] = rows; out->valid[1] = cols;
}

/* pl.row_argmax: INT32 index of the first maximum of each row (NaN counts as the maximum:
 * the first NaN wins); the whole row is read, pad beyond the valid columns. sites: +0 empty
 * row, +1 out of memory. */
PT_API void pt_row_argmax(pt_ctx *ctx, int site, const pt_tensor *x, int xdt, pt_tensor *out) {
    int r = x->rank, l = r - 1, esize = pt_esize_of[xdt];
    int is_float = xdt == PT_BF16 || xdt == PT_FP16 || xdt == PT_FP32;
    if (x->shape[l] == 0) { PT_FAIL0(ctx, site); return; }
    int64_t shape[PT_MAXRANK], box[PT_MAXRANK];
    for (int d = 0; d < r; d++) shape[d] = x->shape[d];
    shape[l] = 1;
    if (!pt_new(ctx, site + 1, out, r, shape, 4)) return;
    memset(out->base, 0, (size_t)(pt_numel(r, shape) * 4));
    for (int d = 0; d < l; d++) box[d] = pt_min64(x->valid[d], x->shape[d]);
    box[l] = 1;
    uint64_t padbits = pt_pad_bits(xdt, x->pad);
    char pad[8];
    memcpy(pad, &padbits, 8);
    int64_t n = x->shape[l], nv = pt_min64(x->valid[l], n);
    const char *xo = pt_origin(x, esize);
    int32_t *ro = (int32_t *)out->base;
    PT_FOR_ROWS(r, box, idx, {
        int64_t so = 0, dof = 0;
        for (int d = 0; d < l; d++) { so += idx[d] * x->bstride[d]; dof += idx[d] * out->bstride[d]; }
        int64_t best = 0;
        if (is_float) {
            float bv = 0.0f;
            for (int64_t j = 0; j < n; j++) {
                float v = pt_ld_f32(j < nv ? xo + (so + j * x->bstride[l]) * esize : pad, xdt);
                if (j == 0 || v != v || v > bv) { best = j; bv = v; }
                if (v != v) break;
            }
        } else {
            int64_t bv = 0;
            for (int64_t j = 0; j < n; j++) {
                int64_t v = pt_ld_i64(j < nv ? xo + (so + j * x->bstride[l]) * esize : pad, xdt);
                if (j == 0 || v > bv) { best = j; bv = v; }
            }
        }
        ro[dof] = (int32_t)best;
    });
    for (int d = 0; d < r; d++) out->valid[d] = box[d];
}

/* pl.assemble(atomic=pl.AtomicType.Add): target[window] += source's valid region, each element
 * rounded as pl.add (float32 add, RNE; ints wrap). A lower-rank source fills the trailing
 * axes. sites: +0..+2 window checks, +3 out of memory. */
PT_API void pt_assemble_add(pt_ctx *ctx, int site, const pt_tensor *target, const pt_tensor *source, const int64_t *offset, int dt) {
    int tr = target->rank, sr = source->rank, lead = tr - sr, es = pt_esize_of[dt];
    int is_float = dt == PT_BF16 || dt == PT_FP16 || dt == PT_FP32;
    int64_t box[PT_MAXRANK];
    for (int d = 0; d < tr; d++) box[d] = d < lead ? 1 : pt_min64(source->valid[d - lead], source->shape[d - lead]);
    if (ctx->bounds_check && !pt_check_window(ctx, site, target, offset, box)) return;
    pt_tensor src = PT_EMPTY; /* a copy: the windows may overlap */
    if (!pt_materialize(ctx, site + 3, source, es, 0, &src)) return;
    int l = tr - 1;
    PT_FOR_ROWS(tr, box, idx, {
        int64_t to = 0, so = 0;
        for (int d = 0; d < l; d++) to += (target->off[d] + offset[d] + idx[d]) * target->bstride[d];
        for (int d = lead; d < l; d++) so += idx[d] * src.bstride[d - lead];
        for (int64_t j = 0; j < box[l]; j++) {
            char *tp = target->base + (to + (target->off[l] + offset[l] + j) * target->bstride[l]) * es;
            const char *sp = src.base + (so + j * src.bstride[sr - 1]) * es;
            if (is_float) pt_st_f32(tp, dt, pt_ld_f32(tp, dt) + pt_ld_f32(sp, dt));
            else pt_st_i64(tp, dt, (int64_t)((uint64_t)pt_ld_i64(tp, dt) + (uint64_t)pt_ld_i64(sp, dt)));
        }
    });
    if (target->buf) target->buf->written = 1;
    pt_release(&src);
}

/* pl.gather mask form: columns j of x with j % stride == off (bits copied); valid: x's valid
 * rows, the selected columns below x's valid column count; zero outside. */
PT_API void pt_gather_mask(pt_ctx *ctx, int site_oom, const pt_tensor *x, int esize, int stride, int off, pt_tensor *out) {
    int64_t shape[2] = {x->shape[0], x->shape[1] / stride};
    if (!pt_new(ctx, site_oom, out, 2, shape, esize)) return;
    memset(out->base, 0, (size_t)(pt_numel(2, shape) * esize));
    int64_t rows = pt_min64(x->valid[0], x->shape[0]), vc = pt_min64(x->valid[1], x->shape[1]);
    int64_t cols = vc - off > 0 ? (vc - off + stride - 1) / stride : 0;
    if (cols > shape[1]) cols = shape[1];
    const char *xo = pt_origin(x, esize);
    for (int64_t b = 0; b < rows; b++)
        for (int64_t k = 0; k < cols; k++)
            memcpy(out->base + (b * out->bstride[0] + k) * esize,
                   xo + (b * x->bstride[0] + (off + k * stride) * x->bstride[1]) * esize, (size_t)esize);
    out->valid[0] = rows; out->valid[1] = cols;
}


/* x without its first n axes (each of extent 1): a retained view of the same buffer; its valid
 * box is x's trailing one, or empty when a dropped axis has no valid element. */
PT_API void pt_drop_lead(const pt_tensor *x, int n, int esize, pt_tensor *out) {
    int64_t shift = 0, any = 1;
    for (int d = 0; d < n; d++) { shift += x->off[d] * x->bstride[d]; if (x->valid[d] < 1) any = 0; }
    pt_tensor v = *x;
    v.rank = x->rank - n;
    for (int d = 0; d < v.rank; d++) {
        v.bshape[d] = x->bshape[d + n]; v.bstride[d] = x->bstride[d + n]; v.off[d] = x->off[d + n];
        v.shape[d] = x->shape[d + n]; v.valid[d] = any ? x->valid[d + n] : 0;
    }
    v.base = x->base + shift * esize;
    *out = v;
    pt_retain(out);
}

/* x with n leading axes of extent 1 added: a retained view of the same buffer. */
PT_API void pt_add_lead(const pt_tensor *x, int n, pt_tensor *out) {
    pt_tensor v = *x;
    v.rank = x->rank + n;
    for (int d = 0; d < n; d++) { v.bshape[d] = 1; v.bstride[d] = 0; v.off[d] = 0; v.shape[d] = 1; v.valid[d] = 1; }
    for (int d = 0; d < x->rank; d++) {
        v.bshape[d + n] = x->bshape[d]; v.bstride[d + n] = x->bstride[d]; v.off[d + n] = x->off[d];
        v.shape[d + n] = x->shape[d]; v.valid[d + n] = x->valid[d];
    }
    *out = v;
    pt_retain(out);
}

/* pl.tile.gather (index form): out[i, j] = x's element at flat row-major offset idx[i, j] of
 * its tile shape (pad bits outside x's valid region); valid: idx's. sites: +0 offset out of
 * range, +1 out of memory. */
PT_API void pt_gather_flat(pt_ctx *ctx, int site, const pt_tensor *x, int xdt, const pt_tensor *idx, int idt, pt_tensor *out) {
    int esize = pt_esize_of[xdt], ie = pt_esize_of[idt];
    pt_tensor m = PT_EMPTY;
    if (!pt_materialize(ctx, site + 1, x, esize, pt_pad_bits(xdt, x->pad), &m)) return;
    int64_t size = pt_numel(x->rank, x->shape);
    int64_t rows = pt_min64(idx->valid[0], idx->shape[0]), cols = pt_min64(idx->valid[1], idx->shape[1]);
    if (pt_new(ctx, site + 1, out, 2, idx->shape, esize)) {
        memset(out->base, 0, (size_t)(pt_numel(2, idx->shape) * esize));
        const char *io = pt_origin(idx, ie);
        for (int64_t b = 0; b < rows; b++)
            for (int64_t k = 0; k < cols; k++) {
                int64_t v = pt_ld_i64(io + (b * idx->bstride[0] + k * idx->bstride[1]) * ie, idt);
                if (v < 0 || v >= size) { PT_FAIL(ctx, site, b, k, v, size, 0, 0); pt_release(&m); return; }
                memcpy(out->base + (b * out->bstride[0] + k) * esize, m.base + v * esize, (size_t)esize);
            }
        out->valid[0] = rows; out->valid[1] = cols;
    }
    pt_release(&m);
}

/* pl.scatter (index form): a copy of x with out[b, idx[b, k]] = src[b, k] over idx's valid
 * region, k in order; valid: x's. sites: +0 index out of range, +1 shapes, +2 out of memory. */
PT_API void pt_scatter(pt_ctx *ctx, int site, const pt_tensor *x, int xdt, const pt_tensor *idx, int idt, const pt_tensor *src, pt_tensor *out) {
    int esize = pt_esize_of[xdt], ie = pt_esize_of[idt];
    int64_t rows = pt_min64(idx->valid[0], idx->shape[0]), cols = pt_min64(idx->valid[1], idx->shape[1]);
    if (rows > x->shape[0] || rows > src->shape[0] || cols > src->shape[1]) { PT_FAIL(ctx, site + 1, rows, cols, 0, 0, 0, 0); return; }
    const char *io = pt_origin(idx, ie);
    for (int64_t b = 0; b < rows; b++) /* every index checked first, in row-major order */
        for (int64_t k = 0; k < cols; k++) {
            int64_t v = pt_ld_i64(io + (b * idx->bstride[0] + k * idx->bstride[1]) * ie, idt);
            if (v < 0 || v >= x->shape[1]) { PT_FAIL(ctx, site, b, k, v, x->shape[1], 0, 0); return; }
        }
    /* past src's valid region it reads src's pad value, as in the interpreter */
    pt_tensor sm = PT_EMPTY;
    const pt_tensor *s = src;
    if (!pt_fully_valid(src)) {
        if (!pt_materialize(ctx, site + 2, src, esize, pt_pad_bits(xdt, src->pad), &sm)) return;
        s = &sm;
    }
    if (pt_materialize(ctx, site + 2, x, esize, pt_pad_bits(xdt, x->pad), out)) {
        const char *so = pt_origin(s, esize);
        for (int64_t k = 0; k < cols; k++)
            for (int64_t b = 0; b < rows; b++) {
                int64_t v = pt_ld_i64(io + (b * idx->bstride[0] + k * idx->bstride[1]) * ie, idt);
                memcpy(out->base + (b * out->bstride[0] + v) * esize, so + (b * s->bstride[0] + k * s->bstride[1]) * esize, (size_t)esize);
            }
        for (int d = 0; d < 2; d++) out->valid[d] = pt_min64(x->valid[d], x->shape[d]);
    }
    pt_release(&sm);
}

/* pl.scatter mask form: a copy of dst with out[b, off + k * stride] = x[b, k] over x's valid
 * region; valid: dst's. sites: +0 x's valid region does not fit dst, +1 out of memory. */
PT_API void pt_scatter_mask(pt_ctx *ctx, int site, const pt_tensor *x, const pt_tensor *dst, int dt, int stride, int off, pt_tensor *out) {
    int esize = pt_esize_of[dt];
    int64_t rows = pt_min64(x->valid[0], x->shape[0]), cols = pt_min64(x->valid[1], x->shape[1]);
    if (rows > dst->shape[0] || (cols > 0 && off + (cols - 1) * stride >= dst->shape[1])) {
        PT_FAIL(ctx, site, rows, cols, dst->shape[0], dst->shape[1], stride, 0); return;
    }
    if (!pt_materialize(ctx, site + 1, dst, esize, pt_pad_bits(dt, dst->pad), out)) return;
    const char *xo = pt_origin(x, esize);
    for (int64_t b = 0; b < rows; b++)
        for (int64_t k = 0; k < cols; k++)
            memcpy(out->base + (b * out->bstride[0] + off + k * stride) * esize,
                   xo + (b * x->bstride[0] + k * x->bstride[1]) * esize, (size_t)esize);
    for (int d = 0; d < 2; d++) out->valid[d] = pt_min64(dst->valid[d], dst->shape[d]);
}

/* pl.gather compare form: per valid row b of x, the valid columns j (ascending) with
 * x[b, j] <mode> k (0..5 = eq ne lt le gt ge; floats as FP32, IEEE; ints exact) as INT32
 * indices in dst [rows, out_cols], and the count in cdst [1, rows] (INT32 or UINT32 bits).
 * A row whose count is not out_cols faults (PyPTO states no result for it).
 * sites: +0 count mismatch, +1 out of memory. */
static int pt_cmp_hit(int mode, int c) { /* c: -1 less, 0 equal, 1 greater, 2 unordered */
    switch (mode) {
        case 0: return c == 0;
        case 1: return c != 0;
        case 2: return c == -1;
        case 3: return c == -1 || c == 0;
        case 4: return c == 1;
        default: return c == 1 || c == 0;
    }
}

static int pt_cmp_at(const pt_tensor *x, int xdt, int esize, int is_float, float kf, int64_t ki, int64_t b, int64_t j) {
    const char *p = pt_origin(x, esize) + (b * x->bstride[0] + j * x->bstride[1]) * esize;
    if (is_float) {
        float v = pt_ld_f32(p, xdt);
        return v != v || kf != kf ? 2 : v < kf ? -1 : v > kf ? 1 : 0;
    }
    int64_t v = pt_ld_i64(p, xdt);
    return v < ki ? -1 : v > ki ? 1 : 0;
}

PT_API void pt_gather_cmp(pt_ctx *ctx, int site, const pt_tensor *x, int xdt, int is_float, double kf, int64_t ki, int mode, int64_t out_cols, int cdt, pt_tensor *dst, pt_tensor *cdst) {
    int esize = pt_esize_of[xdt];
    float k = (float)kf;
    int64_t rows = pt_min64(x->valid[0], x->shape[0]), cols = pt_min64(x->valid[1], x->shape[1]);
    for (int64_t b = 0; b < rows; b++) {
        int64_t n = 0;
        for (int64_t j = 0; j < cols; j++) n += pt_cmp_hit(mode, pt_cmp_at(x, xdt, esize, is_float, k, ki, b, j));
        if (n != out_cols) { PT_FAIL(ctx, site, b, n, out_cols, 0, 0, 0); return; }
    }
    int64_t dshape[2] = {x->shape[0], out_cols}, cshape[2] = {1, x->shape[0]};
    if (!pt_new(ctx, site + 1, dst, 2, dshape, 4)) return;
    if (!pt_new(ctx, site + 1, cdst, 2, cshape, 4)) return;
    memset(dst->base, 0, (size_t)(pt_numel(2, dshape) * 4));
    memset(cdst->base, 0, (size_t)(pt_numel(2, cshape) * 4));
    for (int64_t b = 0; b < rows; b++) {
        int32_t n = 0;
        for (int64_t j = 0; j < cols; j++)
            if (pt_cmp_hit(mode, pt_cmp_at(x, xdt, esize, is_float, k, ki, b, j))) {
                int32_t jj = (int32_t)j;
                memcpy(dst->base + (b * dst->bstride[0] + n) * 4, &jj, 4);
                n++;
            }
        memcpy(cdst->base + b * cdst->bstride[1] * 4, &n, 4);  /* INT32 and UINT32 share the bits */
    }
    (void)cdt;
    dst->valid[0] = rows; dst->valid[1] = out_cols;
    cdst->valid[0] = 1; cdst->valid[1] = rows;
}

/* ------------------------------------------------------------------ sorting (pl.sort32, pl.mrgsort)
 * A sorted run is a row of (value, index) pairs: FP32 columns, each value followed by the raw
 * bits of its UINT32 index. */

typedef struct { float v; uint32_t i; } pt_pair;

/* sort32's order: value descending, NaN first, ties by index ascending. */
static int pt_pair_before(pt_pair a, pt_pair b) {
    int an = a.v != a.v, bn = b.v != b.v;
    if (an != bn) return an;
    if (!an && a.v != b.v) return a.v > b.v;
    return a.i < b.i;
}

/* Blocks of 32 along the last axis sorted into pairs; valid: src's rows, 2x its valid columns. */
PT_API void pt_sort32(pt_ctx *ctx, int site_oom, const pt_tensor *src, const pt_tensor *idx, pt_tensor *out) {
    int r = src->rank, l = r - 1;
    pt_tensor s = PT_EMPTY, x = PT_EMPTY;
    /* outside their valid regions both read as their pad values, as in the interpreter */
    if (!pt_materialize(ctx, site_oom, src, 4, pt_pad_bits(PT_FP32, src->pad), &s)) return;
    if (!pt_materialize(ctx, site_oom, idx, 4, pt_pad_bits(PT_U32, idx->pad), &x)) { pt_release(&s); return; }
    int64_t shape[PT_MAXRANK];
    for (int d = 0; d < r; d++) shape[d] = src->shape[d];
    shape[l] *= 2;
    if (pt_new(ctx, site_oom, out, r, shape, 4)) {
        int64_t w = src->shape[l], rows = w ? pt_numel(r, src->shape) / w : 0;
        int64_t vc = pt_min64(src->valid[l], w);
        memset(out->base, 0, (size_t)(pt_numel(r, shape) * 4));
        for (int64_t row = 0; row < rows; row++) {
            const float *sv = (const float *)s.base + row * w;
            const uint32_t *iv = (const uint32_t *)x.base + row * w;
            char *o = out->base + row * 2 * w * 4;
            for (int64_t b = 0; b < vc; b += 32) {
                pt_pair blk[32];
                int n = (int)pt_min64(32, vc - b);
                for (int k = 0; k < n; k++) {
                    pt_pair p = {sv[b + k], iv[b + k]};
                    int j = k;
                    while (j > 0 && pt_pair_before(p, blk[j - 1])) { blk[j] = blk[j - 1]; j--; }
                    blk[j] = p;
                }
                for (int k = 0; k < n; k++) {
                    memcpy(o + (2 * (b + k)) * 4, &blk[k].v, 4);
                    memcpy(o + (2 * (b + k) + 1) * 4, &blk[k].i, 4);
                }
            }
        }
        for (int d = 0; d < l; d++) out->valid[d] = pt_min64(src->valid[d], src->shape[d]);
        out->valid[l] = 2 * vc;
    }
    pt_release(&s);
    pt_release(&x);
}

/* The merge's literal procedure over n runs of pairs (8 bytes each): take the head with the
 * strictly greatest value, the earliest run on a tie; stop after `cap` pairs, or (exhausted)
 * right after a run runs out. Returns the pairs written. */
static int64_t pt_merge_runs(int n, const char *const *run, const int64_t *len, int64_t cap, int exhausted, char *dst) {
    int64_t head[4] = {0, 0, 0, 0}, out = 0;
    while (out < cap) {
        int pick = -1;
        float best = 0.0f;
        for (int k = 0; k < n; k++) {
            if (head[k] >= len[k]) continue;
            float v;
            memcpy(&v, run[k] + head[k] * 8, 4);
            if (pick < 0 || v > best) { pick = k; best = v; }
        }
        if (pick < 0) break;
        memcpy(dst + out * 8, run[pick] + head[pick] * 8, 8);
        out++;
        if (++head[pick] == len[pick] && exhausted) break;
    }
    return out;
}

/* mrgsort format1: per row, each group of 4 runs of block_len columns merged into one run;
 * valid columns: those the whole groups cover. sites: +0 bad block_len, +1 out of memory. */
PT_API void pt_mrgsort1(pt_ctx *ctx, int site, const pt_tensor *src, int64_t block_len, pt_tensor *out) {
    if (block_len <= 0 || block_len % 64) { PT_FAIL(ctx, site, block_len, 0, 0, 0, 0, 0); return; }
    int r = src->rank, l = r - 1;
    pt_tensor s = PT_EMPTY;
    if (!pt_materialize(ctx, site + 1, src, 4, pt_pad_bits(PT_FP32, src->pad), &s)) return;
    if (pt_new(ctx, site + 1, out, r, src->shape, 4)) {
        int64_t w = src->shape[l], rows = w ? pt_numel(r, src->shape) / w : 0;
        int64_t group = 4 * block_len, covered = (w / group) * group, len[4];
        memset(out->base, 0, (size_t)(pt_numel(r, src->shape) * 4));
        for (int k = 0; k < 4; k++) len[k] = block_len / 2;
        for (int64_t row = 0; row < rows; row++)
            for (int64_t g = 0; g < covered; g += group) {
                const char *base = s.base + (row * w + g) * 4, *run[4];
                for (int k = 0; k < 4; k++) run[k] = base + k * block_len * 4;
                pt_merge_runs(4, run, len, 2 * block_len, 0, out->base + (row * w + g) * 4);
            }
        for (int d = 0; d < l; d++) out->valid[d] = pt_min64(src->valid[d], src->shape[d]);
        out->valid[l] = covered;
    }
    pt_release(&s);
}

/* mrgsort format2: per row, the n lists (their valid pairs) merged into `width` columns; valid
 * columns: twice the pairs every row took. sites: +0 leading axes differ, +1 out of memory. */
PT_API void pt_mrgsort2(pt_ctx *ctx, int site, int n, const pt_tensor *const *srcs, int64_t width, int exhausted, pt_tensor *out) {
    int r = srcs[0]->rank, l = r - 1;
    for (int k = 1; k < n; k++)
        for (int d = 0; d < l; d++)
            if (srcs[k]->shape[d] != srcs[0]->shape[d]) { PT_FAIL(ctx, site, k, d, srcs[k]->shape[d], srcs[0]->shape[d], 0, 0); return; }
    pt_tensor m[4] = {PT_EMPTY, PT_EMPTY, PT_EMPTY, PT_EMPTY};
    int64_t shape[PT_MAXRANK], len[4], taken = width / 2;
    int ok = 1;
    for (int k = 0; k < n && ok; k++) ok = pt_materialize(ctx, site + 1, srcs[k], 4, 0, &m[k]);
    for (int d = 0; d < r; d++) shape[d] = srcs[0]->shape[d];
    shape[l] = width;
    if (ok && pt_new(ctx, site + 1, out, r, shape, 4)) {
        int64_t rows = 1;
        for (int d = 0; d < l; d++) rows *= shape[d];
        memset(out->base, 0, (size_t)(pt_numel(r, shape) * 4));
        for (int k = 0; k < n; k++) len[k] = pt_min64(srcs[k]->valid[l], srcs[k]->shape[l]) / 2;
        for (int64_t row = 0; row < rows; row++) {
            const char *run[4];
            for (int k = 0; k < n; k++) run[k] = m[k].base + row * srcs[k]->shape[l] * 4;
            int64_t got = pt_merge_runs(n, run, len, width / 2, exhausted, out->base + row * width * 4);
            if (got < taken) taken = got;
        }
        for (int d = 0; d < l; d++) {
            int64_t v = srcs[0]->valid[d];
            for (int k = 1; k < n; k++) v = pt_min64(v, srcs[k]->valid[d]);
            out->valid[d] = pt_min64(v, shape[d]);
        }
        out->valid[l] = 2 * taken;
    }
    for (int k = 0; k < n; k++) pt_release(&m[k]);
}

#endif /* PT_RUNTIME_IMPL */

#endif /* PLDSL_RT_H */
