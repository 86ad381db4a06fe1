"""A reduced Qwen3 decode layer in the seed's style (pypto-lib PR #295): every construct the seed
kernel uses, at toy sizes. Captured with pl.capture_source by the frontend tests (never run)."""

import math

import pldsl as pl

USER_BATCH_DYN = pl.dynamic("USER_BATCH_DYN")
KV_ROWS_DYN = pl.dynamic("KV_ROWS_DYN")

BATCH = 16
BATCH_TILE = 16
NUM_HEADS = 4
NUM_KV_HEADS = 2
HEAD_DIM = 64
HIDDEN = NUM_HEADS * HEAD_DIM
KV_HIDDEN = NUM_KV_HEADS * HEAD_DIM
Q_PER_KV = NUM_HEADS // NUM_KV_HEADS
INTER = 512
K_CHUNK = 128
SCOPE1_K_CHUNK = 128
Q_OUT_CHUNK = 64
MLP_OUT_CHUNK = 128
BLOCK_SIZE = 64
MAX_BLOCKS = 4
VOCAB_CHUNK = 64
PADDED_VOCAB = 256
HALF_DIM = HEAD_DIM // 2
EPS = 1e-6
HIDDEN_INV = 1.0 / HIDDEN
HEAD_DIM_INV = 1.0 / HEAD_DIM
ATTN_SCALE = 1.0 / math.sqrt(HEAD_DIM)
CORE = pl.Level.CORE_GROUP


@pl.program
class Qwen3Like:
    @pl.function(type=pl.FunctionType.Opaque)
    def qwen3_decode_all(
        self,
        hidden_states: pl.Tensor[[USER_BATCH_DYN, HIDDEN], pl.BF16],
        input_rms_weight: pl.Tensor[[1, HIDDEN], pl.FP32],
        wq: pl.Tensor[[HIDDEN, HIDDEN], pl.BF16],
        q_norm_weight: pl.Tensor[[1, HEAD_DIM], pl.FP32],
        seq_lens: pl.Tensor[[USER_BATCH_DYN], pl.INT32],
        block_table: pl.Tensor[[BATCH * MAX_BLOCKS], pl.INT32],
        rope_cos: pl.Tensor[[MAX_BLOCKS * BLOCK_SIZE, HEAD_DIM], pl.FP32],
        k_cache_all: pl.Tensor[[KV_ROWS_DYN, HEAD_DIM], pl.BF16],
        v_cache_all: pl.Tensor[[KV_ROWS_DYN, HEAD_DIM], pl.BF16],
        w_gate: pl.Tensor[[HIDDEN, INTER], pl.BF16],
        w_down: pl.Tensor[[INTER, HIDDEN], pl.BF16],
        final_norm_weight: pl.Tensor[[1, HIDDEN], pl.FP32],
        lm_head_weight_t: pl.Tensor[[PADDED_VOCAB, HIDDEN], pl.BF16],
        out: pl.Out[pl.Tensor[[USER_BATCH_DYN, HIDDEN], pl.BF16]],
        rms_normed: pl.Out[pl.Tensor[[BATCH_TILE, HIDDEN], pl.BF16]],
        logits_padded: pl.Out[pl.Tensor[[BATCH_TILE, PADDED_VOCAB], pl.FP32]],
    ) -> pl.Tuple[
        pl.Tensor[[USER_BATCH_DYN, HIDDEN], pl.BF16],
        pl.Tensor[[BATCH_TILE, HIDDEN], pl.BF16],
        pl.Tensor[[BATCH_TILE, PADDED_VOCAB], pl.FP32],
    ]:
        user_batch = pl.tensor.dim(hidden_states, 0)
        batch_padded = (user_batch + BATCH_TILE - 1) // BATCH_TILE * BATCH_TILE

        # copy-in
        current_hidden = pl.create_tensor([BATCH, HIDDEN], dtype=pl.BF16)
        for b0 in pl.parallel(0, batch_padded, BATCH_TILE):
            cur_valid = pl.min(BATCH_TILE, user_batch - b0)
            with pl.at(level=CORE):
                for kb in pl.range(HIDDEN // K_CHUNK):
                    k0 = kb * K_CHUNK
                    tile = pl.slice(
                        hidden_states,
                        [BATCH_TILE, K_CHUNK],
                        [b0, k0],
                        valid_shape=[cur_valid, K_CHUNK],
                    )
                    current_hidden = pl.assemble(current_hidden, tile, [b0, k0])

        # input RMSNorm
        normed_tile = pl.create_tensor([BATCH_TILE, HIDDEN], dtype=pl.BF16)
        q_proj = pl.create_tensor([BATCH, HIDDEN], dtype=pl.FP32)
        for b0 in pl.parallel(0, batch_padded, BATCH_TILE):
            with pl.at(level=pl.Level.CORE_GROUP):
                partial_sq = pl.full([1, BATCH_TILE], dtype=pl.FP32, value=0.0)
                for kb in pl.range(HIDDEN // SCOPE1_K_CHUNK):
                    k0 = kb * SCOPE1_K_CHUNK
                    x_chunk = pl.cast(
                        pl.slice(current_hidden, [BATCH_TILE, SCOPE1_K_CHUNK], [b0, k0]),
                        target_type=pl.FP32,
                    )
                    partial_sq = pl.add(
                        partial_sq,
                        pl.reshape(pl.row_sum(pl.mul(x_chunk, x_chunk)), [1, BATCH_TILE]),
                    )
                variance = pl.reshape(pl.add(pl.mul(partial_sq, HIDDEN_INV), EPS), [BATCH_TILE, 1])
                inv_rms = pl.recip(pl.sqrt(variance))
                for kb in pl.range(HIDDEN // SCOPE1_K_CHUNK):
                    k0 = kb * SCOPE1_K_CHUNK
                    x_chunk = pl.cast(
                        pl.slice(current_hidden, [BATCH_TILE, SCOPE1_K_CHUNK], [b0, k0]),
                        target_type=pl.FP32,
                    )
                    gamma = pl.slice(input_rms_weight, [1, SCOPE1_K_CHUNK], [0, k0])
                    normed = pl.col_expand_mul(pl.row_expand_mul(x_chunk, inv_rms), gamma)
                    normed_tile = pl.assemble(
                        normed_tile, pl.cast(normed, target_type=pl.BF16), [0, k0]
                    )

            # Q projection: peeled first K step, then matmul_acc
            with pl.at(level=pl.Level.CORE_GROUP, optimization=pl.chunked_loop_optimizer):
                for ob in pl.parallel(0, HIDDEN // Q_OUT_CHUNK, 1, chunk=4):
                    q0 = ob * Q_OUT_CHUNK
                    q_acc = pl.matmul(
                        pl.slice(normed_tile, [BATCH_TILE, K_CHUNK], [0, 0]),
                        pl.slice(wq, [K_CHUNK, Q_OUT_CHUNK], [0, q0]),
                        out_dtype=pl.FP32,
                    )
                    for kb in pl.range(1, HIDDEN // K_CHUNK):
                        k0 = kb * K_CHUNK
                        q_acc = pl.matmul_acc(
                            q_acc,
                            pl.slice(normed_tile, [BATCH_TILE, K_CHUNK], [0, k0]),
                            pl.slice(wq, [K_CHUNK, Q_OUT_CHUNK], [k0, q0]),
                        )
                    q_proj = pl.assemble(q_proj, q_acc, [b0, q0])

            # per-head Q norm
            with pl.at(level=pl.Level.CORE_GROUP):
                for h in pl.range(NUM_HEADS):
                    q_chunk = pl.slice(q_proj, [BATCH_TILE, HEAD_DIM], [b0, h * HEAD_DIM])
                    q_inv = pl.rsqrt(
                        pl.add(pl.mul(pl.row_sum(pl.mul(q_chunk, q_chunk)), HEAD_DIM_INV), EPS)
                    )
                    q_normed = pl.col_expand_mul(pl.row_expand_mul(q_chunk, q_inv), q_norm_weight)
                    q_proj = pl.assemble(q_proj, q_normed, [b0, h * HEAD_DIM])

        # RoPE on one row per user, K cache write, attention over paged blocks
        attn_out = pl.create_tensor([BATCH, HIDDEN], dtype=pl.BF16)
        for b in pl.parallel(user_batch):
            ctx_len = pl.tensor.read(seq_lens, [b])
            pos = pl.cast(ctx_len, pl.INDEX) - 1
            ctx_blocks = (pos + BLOCK_SIZE) // BLOCK_SIZE
            cos_row = pl.slice(rope_cos, [1, HEAD_DIM], [pos, 0])
            cos_lo = pl.slice(cos_row, [1, HALF_DIM], [0, 0])
            cos_hi = pl.slice(cos_row, [1, HALF_DIM], [0, HALF_DIM])
            with pl.at(level=pl.Level.CORE_GROUP, optimization=pl.chunked_loop_optimizer):
                for ki in pl.parallel(0, NUM_KV_HEADS, chunk=8):
                    x_lo = pl.slice(q_proj, [1, HALF_DIM], [b, ki * HEAD_DIM])
                    x_hi = pl.slice(q_proj, [1, HALF_DIM], [b, ki * HEAD_DIM + HALF_DIM])
                    rot_lo = pl.sub(
                        pl.col_expand_mul(x_lo, cos_lo), pl.col_expand_mul(x_hi, cos_hi)
                    )
                    rot_hi = pl.add(
                        pl.col_expand_mul(x_hi, cos_hi), pl.col_expand_mul(x_lo, cos_lo)
                    )
                    slot_row = ki * BLOCK_SIZE + pos
                    k_cache_all = pl.assemble(
                        k_cache_all,
                        pl.cast(rot_lo, target_type=pl.BF16, mode="rint"),
                        [slot_row, 0],
                    )
                    k_cache_all = pl.assemble(
                        k_cache_all, pl.cast(rot_hi, target_type=pl.BF16), [slot_row, HALF_DIM]
                    )

            for gi in pl.range(NUM_KV_HEADS):
                q_padded = pl.cast(
                    pl.slice(q_proj, [BATCH_TILE, HEAD_DIM], [0, gi * HEAD_DIM]),
                    target_type=pl.BF16,
                )
                with pl.at(level=pl.Level.CORE_GROUP, optimization=pl.chunked_loop_optimizer):
                    oi = pl.full([BATCH_TILE, HEAD_DIM], dtype=pl.FP32, value=0.0)
                    li = pl.full([BATCH_TILE, 1], dtype=pl.FP32, value=0.0)
                    mi = pl.full([BATCH_TILE, 1], dtype=pl.FP32, value=-1e30)
                    for sb in pl.range(ctx_blocks):
                        pbid = pl.cast(pl.tensor.read(block_table, [b * MAX_BLOCKS + sb]), pl.INDEX)
                        cache_row0 = (pbid * NUM_KV_HEADS + gi) * BLOCK_SIZE
                        k_tile = pl.slice(k_cache_all, [BLOCK_SIZE, HEAD_DIM], [cache_row0, 0])
                        raw = pl.matmul(q_padded, k_tile, b_trans=True, out_dtype=pl.FP32)
                        valid_len = pl.min(BLOCK_SIZE, pos + 1 - sb * BLOCK_SIZE)
                        masked = pl.fillpad(
                            pl.slice(
                                raw,
                                [BATCH_TILE, BLOCK_SIZE],
                                [0, 0],
                                valid_shape=[BATCH_TILE, valid_len],
                            ),
                            pad_value=pl.PadValue.min,
                        )
                        scores = pl.mul(masked, ATTN_SCALE)
                        cur_mi = pl.row_max(scores)
                        exp_f = pl.exp(pl.row_expand_sub(scores, cur_mi))
                        exp_bf16 = pl.cast(exp_f, target_type=pl.BF16)
                        cur_li = pl.row_sum(pl.cast(exp_bf16, target_type=pl.FP32))
                        v_tile = pl.slice(v_cache_all, [BLOCK_SIZE, HEAD_DIM], [cache_row0, 0])
                        oi_tmp = pl.matmul(exp_bf16, v_tile, out_dtype=pl.FP32)
                        mi_new = pl.maximum(mi, cur_mi)
                        alpha = pl.exp(pl.sub(mi, mi_new))
                        beta = pl.exp(pl.sub(cur_mi, mi_new))
                        li = pl.add(pl.mul(alpha, li), pl.mul(beta, cur_li))
                        oi = pl.add(pl.row_expand_mul(oi, alpha), pl.row_expand_mul(oi_tmp, beta))
                        mi = mi_new
                    ctx = pl.row_expand_div(oi, li)
                    ctx_row = pl.reshape(pl.slice(ctx, [1, HEAD_DIM], [0, 0]), [1, HEAD_DIM])
                    attn_out = pl.assemble(
                        attn_out, pl.cast(ctx_row, target_type=pl.BF16), [b, gi * HEAD_DIM]
                    )

        # SwiGLU MLP and down projection with a residual
        for b0 in pl.parallel(0, batch_padded, BATCH_TILE):
            mlp_tile = pl.create_tensor([BATCH_TILE, INTER], dtype=pl.BF16)
            for ob in pl.range(INTER // MLP_OUT_CHUNK):
                o0 = ob * MLP_OUT_CHUNK
                with pl.at(level=pl.Level.CORE_GROUP):
                    gate = pl.matmul(
                        pl.slice(attn_out, [BATCH_TILE, K_CHUNK], [b0, 0]),
                        pl.slice(w_gate, [K_CHUNK, MLP_OUT_CHUNK], [0, o0]),
                        out_dtype=pl.FP32,
                    )
                    for kb in pl.range(1, HIDDEN // K_CHUNK):
                        k0 = kb * K_CHUNK
                        gate = pl.matmul_acc(
                            gate,
                            pl.slice(attn_out, [BATCH_TILE, K_CHUNK], [b0, k0]),
                            pl.slice(w_gate, [K_CHUNK, MLP_OUT_CHUNK], [k0, o0]),
                        )
                with pl.at(level=pl.Level.CORE_GROUP, optimization=pl.chunked_loop_optimizer):
                    sigmoid = pl.recip(pl.add(pl.exp(pl.neg(gate)), 1.0))
                    mlp = pl.mul(pl.mul(gate, sigmoid), gate)
                    mlp_tile = pl.assemble(mlp_tile, pl.cast(mlp, target_type=pl.BF16), [0, o0])
            for dob in pl.range(HIDDEN // K_CHUNK):
                d0 = dob * K_CHUNK
                with pl.at(level=pl.Level.CORE_GROUP):
                    down = pl.matmul(
                        pl.slice(mlp_tile, [BATCH_TILE, MLP_OUT_CHUNK], [0, 0]),
                        pl.slice(w_down, [MLP_OUT_CHUNK, K_CHUNK], [0, d0]),
                        out_dtype=pl.FP32,
                    )
                    for ob in pl.range(1, INTER // MLP_OUT_CHUNK):
                        down = pl.matmul_acc(
                            down,
                            pl.slice(
                                mlp_tile, [BATCH_TILE, MLP_OUT_CHUNK], [0, ob * MLP_OUT_CHUNK]
                            ),
                            pl.slice(w_down, [MLP_OUT_CHUNK, K_CHUNK], [ob * MLP_OUT_CHUNK, d0]),
                        )
                    resid = pl.cast(
                        pl.slice(current_hidden, [BATCH_TILE, K_CHUNK], [b0, d0]), pl.FP32
                    )
                    summed = pl.add(down, resid)
                    current_hidden = pl.assemble(
                        current_hidden, pl.cast(summed, target_type=pl.BF16), [b0, d0]
                    )

        # copy out (only the valid rows land)
        for b0 in pl.parallel(0, batch_padded, BATCH_TILE):
            cur_valid = pl.min(BATCH_TILE, user_batch - b0)
            for kb in pl.range(HIDDEN // K_CHUNK):
                k0 = kb * K_CHUNK
                with pl.at(level=pl.Level.CORE_GROUP):
                    out_tile = pl.slice(
                        current_hidden,
                        [BATCH_TILE, K_CHUNK],
                        [b0, k0],
                        valid_shape=[cur_valid, K_CHUNK],
                    )
                    out = pl.assemble(out, out_tile, [b0, k0])

        # fused final RMSNorm
        with pl.at(level=pl.Level.CORE_GROUP):
            for b0 in pl.range(0, BATCH_TILE, BATCH_TILE):
                sq_sum_fin = pl.full([1, BATCH_TILE], dtype=pl.FP32, value=0.0)
                for kb in pl.range(HIDDEN // K_CHUNK):
                    k0 = kb * K_CHUNK
                    x_fin = pl.cast(
                        pl.slice(current_hidden, [BATCH_TILE, K_CHUNK], [b0, k0]), pl.FP32
                    )
                    sq_sum_fin = pl.add(
                        sq_sum_fin, pl.reshape(pl.row_sum(pl.mul(x_fin, x_fin)), [1, BATCH_TILE])
                    )
                final_inv_rms = pl.reshape(
                    pl.rsqrt(pl.add(pl.mul(sq_sum_fin, HIDDEN_INV), EPS)), [BATCH_TILE, 1]
                )
                for kb in pl.range(HIDDEN // K_CHUNK):
                    k0 = kb * K_CHUNK
                    x_fin = pl.cast(
                        pl.slice(current_hidden, [BATCH_TILE, K_CHUNK], [b0, k0]), pl.FP32
                    )
                    w_fin = pl.slice(final_norm_weight, [1, K_CHUNK], [0, k0])
                    normed_fin = pl.col_expand_mul(pl.row_expand_mul(x_fin, final_inv_rms), w_fin)
                    rms_normed = pl.assemble(
                        rms_normed, pl.cast(normed_fin, target_type=pl.BF16), [b0, k0]
                    )

        # fused LM head
        with pl.at(level=pl.Level.CORE_GROUP, optimizations=[pl.auto_chunk]):
            for b0 in pl.range(0, BATCH_TILE, BATCH_TILE):
                for ob in pl.parallel(PADDED_VOCAB // VOCAB_CHUNK, chunk=8):
                    o0 = ob * VOCAB_CHUNK
                    lm_acc = pl.matmul(
                        pl.slice(rms_normed, [BATCH_TILE, K_CHUNK], [b0, 0]),
                        pl.slice(lm_head_weight_t, [VOCAB_CHUNK, K_CHUNK], [o0, 0]),
                        b_trans=True,
                        out_dtype=pl.FP32,
                    )
                    for kb in pl.range(1, HIDDEN // K_CHUNK):
                        k0 = kb * K_CHUNK
                        lm_acc = pl.matmul_acc(
                            lm_acc,
                            pl.slice(rms_normed, [BATCH_TILE, K_CHUNK], [b0, k0]),
                            pl.slice(lm_head_weight_t, [VOCAB_CHUNK, K_CHUNK], [o0, k0]),
                            b_trans=True,
                        )
                    logits_padded = pl.assemble(logits_padded, lm_acc, [b0, o0])
        return out, rms_normed, logits_padded

    @pl.function(level=pl.Level.HOST, role=pl.Role.SubWorker)
    def sample_and_prepare(
        self,
        logits: pl.Tensor[[BATCH_TILE, PADDED_VOCAB], pl.FP32],
        seq_lens: pl.InOut[pl.Tensor[[USER_BATCH_DYN], pl.INT32]],
        hidden: pl.InOut[pl.Tensor[[USER_BATCH_DYN, HIDDEN], pl.BF16]],
    ) -> pl.Tensor[[USER_BATCH_DYN, HIDDEN], pl.BF16]:
        pass

    @pl.function(level=pl.Level.HOST, role=pl.Role.Orchestrator)
    def host_orch(
        self,
        decode_hidden: pl.Tensor[[USER_BATCH_DYN, HIDDEN], pl.BF16],
        input_rms_weight: pl.Tensor[[1, HIDDEN], pl.FP32],
        wq: pl.Tensor[[HIDDEN, HIDDEN], pl.BF16],
        q_norm_weight: pl.Tensor[[1, HEAD_DIM], pl.FP32],
        seq_lens: pl.Tensor[[USER_BATCH_DYN], pl.INT32],
        block_table: pl.Tensor[[BATCH * MAX_BLOCKS], pl.INT32],
        rope_cos: pl.Tensor[[MAX_BLOCKS * BLOCK_SIZE, HEAD_DIM], pl.FP32],
        k_cache_all: pl.InOut[pl.Tensor[[KV_ROWS_DYN, HEAD_DIM], pl.BF16]],
        v_cache_all: pl.InOut[pl.Tensor[[KV_ROWS_DYN, HEAD_DIM], pl.BF16]],
        w_gate: pl.Tensor[[HIDDEN, INTER], pl.BF16],
        w_down: pl.Tensor[[INTER, HIDDEN], pl.BF16],
        final_norm_weight: pl.Tensor[[1, HIDDEN], pl.FP32],
        lm_head_weight_t: pl.Tensor[[PADDED_VOCAB, HIDDEN], pl.BF16],
        has_more: pl.Scalar[pl.BOOL],
        decode_out: pl.Out[pl.Tensor[[USER_BATCH_DYN, HIDDEN], pl.BF16]],
        rms_normed: pl.Out[pl.Tensor[[BATCH_TILE, HIDDEN], pl.BF16]],
        logits_padded: pl.Out[pl.Tensor[[BATCH_TILE, PADDED_VOCAB], pl.FP32]],
    ) -> pl.Tensor[[USER_BATCH_DYN, HIDDEN], pl.BF16]:
        out_d, out_rms, out_lm = self.qwen3_decode_all(
            decode_hidden, input_rms_weight, wq, q_norm_weight, seq_lens, block_table, rope_cos,
            k_cache_all, v_cache_all, w_gate, w_down, final_norm_weight, lm_head_weight_t,
            decode_out, rms_normed, logits_padded,
        )  # fmt: skip
        upd_hidden = self.sample_and_prepare(out_lm, seq_lens, decode_hidden)
        if has_more:
            for _step in pl.range(2):
                out_d, out_rms, out_lm = self.qwen3_decode_all(
                    upd_hidden, input_rms_weight, wq, q_norm_weight, seq_lens, block_table,
                    rope_cos, k_cache_all, v_cache_all, w_gate, w_down, final_norm_weight,
                    lm_head_weight_t, out_d, out_rms, out_lm,
                )  # fmt: skip
                upd_hidden = self.sample_and_prepare(out_lm, seq_lens, upd_hidden)
        return out_d
