/* Peak probes: loops of one int8 multiply-accumulate instruction sequence over
 * independent accumulator chains (enough to cover the latency, so they measure
 * throughput). Each runs `iters` iterations of MNQ_PEAK_MACS_PER_ITER_* MACs and is
 * compiled with its level's flags; generic/peak_probe.c times them. */
#ifndef MNQ_X86_PEAK_PROBE_H
#define MNQ_X86_PEAK_PROBE_H

/* 8 chains of vpmaddwd ymm (16 int16 products) + vpaddd: the exact AVX2 GEMM's arithmetic */
#define MNQ_PEAK_MACS_PER_ITER_VPMADDWD (8 * 16)
void mnq_peak_loop_vpmaddwd__avx2(long iters);
/* 8 chains of vpmaddubsw ymm (32 u8 x s8 products, saturating int16) + vpmaddwd by ones + vpaddd */
#define MNQ_PEAK_MACS_PER_ITER_VPMADDUBSW (8 * 32)
void mnq_peak_loop_vpmaddubsw__avx2(long iters);
/* 12 chains of VEX vpdpbusd ymm (32 MACs) */
#define MNQ_PEAK_MACS_PER_ITER_AVXVNNI (12 * 32)
void mnq_peak_loop_vpdpbusd_ymm__avxvnni(long iters);
/* 16 chains of EVEX vpdpbusd zmm (64 MACs) */
#define MNQ_PEAK_MACS_PER_ITER_AVX512VNNI (16 * 64)
void mnq_peak_loop_vpdpbusd_zmm__avx512vnni(long iters);
/* 4 chains of tdpbusd on 16x64-byte tiles (16 x 16 x 64 MACs) */
#define MNQ_PEAK_MACS_PER_ITER_AMX (4 * 16 * 16 * 64)
void mnq_peak_loop_tdpbusd__amx(long iters);

#endif
