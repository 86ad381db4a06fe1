"""A scaled-down Qwen3 decode in the seed's style: the scope shapes the checks must accept.

Same structure as the seed kernel (batch tiles of 16 over `batch_padded`, K-chunked RMSNorm,
K-accumulation with matmul / matmul_acc, paged KV cache slices through a block table, the
fused final RMSNorm + LM head) with small sizes so that structure-only runs stay cheap.
`CLEAN` passes every check (test_api); test_unwritten_output derives the seed's one-tile
tail from it.
"""

CLEAN = """
import pldsl as pl

USER_BATCH_DYN = pl.dynamic("USER_BATCH_DYN")
KV_ROWS_DYN = pl.dynamic("KV_ROWS_DYN")
BLOCK_TABLE_DYN = pl.dynamic("BLOCK_TABLE_DYN")
BATCH = 48
HIDDEN = 256
K_CHUNK = 128
HIDDEN_BLOCKS = 2
Q_OUT_CHUNK = 64
VOCAB = 256
VOCAB_CHUNK = 64
HEAD_DIM = 128
BLOCK_SIZE = 16
MAX_BLOCKS = 4
EPS = 1e-6
HIDDEN_INV = 1.0 / HIDDEN


@pl.program
class Qwen3Decode:
    @pl.function(type=pl.FunctionType.InCore)
    def q_proj(
        self,
        normed: pl.Tensor[[16, HIDDEN], pl.BF16],
        wq: pl.Tensor[[HIDDEN, HIDDEN], pl.BF16],
        q_out: pl.Out[pl.Tensor[[16, HIDDEN], pl.FP32]],
    ) -> pl.Tensor[[16, HIDDEN], pl.FP32]:
        for ob in pl.range(HIDDEN // Q_OUT_CHUNK):
            q0 = ob * Q_OUT_CHUNK
            q_acc = pl.create_tensor([16, Q_OUT_CHUNK], pl.FP32)
            for kb in pl.range(HIDDEN_BLOCKS):
                k0 = kb * K_CHUNK
                if k0 == 0:
                    q_acc = pl.matmul(
                        pl.slice(normed, [16, K_CHUNK], [0, k0]),
                        pl.slice(wq, [K_CHUNK, Q_OUT_CHUNK], [k0, q0]),
                        out_dtype=pl.FP32,
                    )
                else:
                    q_acc = pl.matmul_acc(
                        q_acc,
                        pl.slice(normed, [16, K_CHUNK], [0, k0]),
                        pl.slice(wq, [K_CHUNK, Q_OUT_CHUNK], [k0, q0]),
                    )
            q_out = pl.assemble(q_out, q_acc, [0, q0])
        return q_out

    @pl.function(type=pl.FunctionType.Opaque)
    def decode(
        self,
        hidden_states: pl.Tensor[[USER_BATCH_DYN, HIDDEN], pl.BF16],
        final_norm_weight: pl.Tensor[[1, HIDDEN], pl.FP32],
        wq: pl.Tensor[[HIDDEN, HIDDEN], pl.BF16],
        lm_head_weight_t: pl.Tensor[[VOCAB, HIDDEN], pl.BF16],
        seq_lens: pl.Tensor[[USER_BATCH_DYN], pl.INT32],
        block_table: pl.Tensor[[BLOCK_TABLE_DYN], pl.INT32],
        slot_mapping: pl.Tensor[[USER_BATCH_DYN], pl.INT32],
        k_cache: pl.InOut[pl.Tensor[[KV_ROWS_DYN, HEAD_DIM], pl.BF16]],
        scores: pl.Out[pl.Tensor[[USER_BATCH_DYN, MAX_BLOCKS], pl.FP32]],
        logits: pl.Out[pl.Tensor[[USER_BATCH_DYN, VOCAB], pl.FP32]],
    ) -> pl.Tuple[
        pl.Tensor[[KV_ROWS_DYN, HEAD_DIM], pl.BF16],
        pl.Tensor[[USER_BATCH_DYN, MAX_BLOCKS], pl.FP32],
        pl.Tensor[[USER_BATCH_DYN, VOCAB], pl.FP32],
    ]:
        user_batch = pl.tensor.dim(hidden_states, 0)
        batch_padded = (user_batch + 15) // 16 * 16
        normed_all = pl.create_tensor([BATCH, HIDDEN], pl.BF16)
        q_proj = pl.create_tensor([BATCH, HIDDEN], pl.FP32)

        # Scope 1: input RMSNorm, K-chunked, one pl.at per batch tile
        for b0 in pl.parallel(0, batch_padded, 16):
            with pl.at(level=pl.Level.CORE_GROUP, optimization=pl.chunked_loop_optimizer):
                cur_valid = pl.min(16, user_batch - b0)
                sq_sum = pl.full([16, 1], pl.FP32, 0.0)
                for kb in pl.range(HIDDEN_BLOCKS):
                    x_chunk = pl.cast(
                        pl.slice(hidden_states, [16, K_CHUNK], [b0, kb * K_CHUNK], valid_shape=[cur_valid, K_CHUNK]),
                        pl.FP32,
                    )
                    sq_sum = pl.add(sq_sum, pl.row_sum(pl.mul(x_chunk, x_chunk)))
                inv_rms = pl.rsqrt(pl.add(pl.mul(sq_sum, HIDDEN_INV), EPS))
                for kb in pl.range(HIDDEN_BLOCKS):
                    x_chunk = pl.cast(
                        pl.slice(hidden_states, [16, K_CHUNK], [b0, kb * K_CHUNK], valid_shape=[cur_valid, K_CHUNK]),
                        pl.FP32,
                    )
                    gamma = pl.slice(final_norm_weight, [1, K_CHUNK], [0, kb * K_CHUNK])
                    normed = pl.col_expand_mul(pl.row_expand_mul(x_chunk, inv_rms), gamma)
                    normed_all = pl.assemble(normed_all, pl.cast(normed, pl.BF16), [b0, kb * K_CHUNK])
            q_tile = pl.create_tensor([16, HIDDEN], pl.FP32)
            q_tile = self.q_proj(pl.slice(normed_all, [16, HIDDEN], [b0, 0]), wq, q_tile)
            q_proj = pl.assemble(q_proj, q_tile, [b0, 0])

        # Paged KV: write the current token's row, then one score per cached block
        for b in pl.parallel(0, user_batch, 1):
            with pl.at(level=pl.Level.CORE_GROUP):
                slot = pl.read(slot_mapping, [b])
                k_row = pl.cast(pl.slice(q_proj, [1, HEAD_DIM], [b, 0]), pl.BF16)
                k_cache = pl.assemble(k_cache, k_row, [slot, 0])
                ctx_len = pl.read(seq_lens, [b])
                ctx_blocks = (ctx_len + BLOCK_SIZE - 1) // BLOCK_SIZE
                for sb in pl.range(MAX_BLOCKS):
                    block_id = pl.read(block_table, [b * MAX_BLOCKS + sb])
                    k_tile = pl.cast(pl.slice(k_cache, [BLOCK_SIZE, HEAD_DIM], [block_id * BLOCK_SIZE, 0]), pl.FP32)
                    q_row = pl.slice(q_proj, [1, HEAD_DIM], [b, 0])
                    s = pl.row_sum(pl.matmul(q_row, k_tile, b_trans=True))
                    if sb < ctx_blocks:
                        scores = pl.assemble(scores, s, [b, sb])
                    else:
                        scores = pl.write(scores, [b, sb], 0.0)

        # Fused final RMSNorm + LM head over every batch tile, stores trimmed to the batch
        for b0 in pl.parallel(0, batch_padded, 16):
            for ob in pl.range(VOCAB // VOCAB_CHUNK):
                with pl.at(level=pl.Level.CORE_GROUP, optimizations=[pl.auto_chunk]):
                    o0 = ob * VOCAB_CHUNK
                    valid_rows = pl.min(16, user_batch - b0)
                    lm_acc = pl.matmul(
                        pl.slice(normed_all, [16, K_CHUNK], [b0, 0]),
                        pl.slice(lm_head_weight_t, [VOCAB_CHUNK, K_CHUNK], [o0, 0]),
                        out_dtype=pl.FP32,
                        b_trans=True,
                    )
                    for kb in pl.range(1, HIDDEN_BLOCKS):
                        lm_acc = pl.matmul_acc(
                            lm_acc,
                            pl.slice(normed_all, [16, K_CHUNK], [b0, kb * K_CHUNK]),
                            pl.slice(lm_head_weight_t, [VOCAB_CHUNK, K_CHUNK], [o0, kb * K_CHUNK]),
                            b_trans=True,
                        )
                    trimmed = pl.slice(lm_acc, [16, VOCAB_CHUNK], [0, 0], valid_shape=[valid_rows, VOCAB_CHUNK])
                    logits = pl.assemble(logits, trimmed, [b0, o0])
        return k_cache, scores, logits
"""
