/* AMX peak-probe loop (see peak_probe.h): tiles 0-3 accumulate, 4 and 5 are the
 * (zeroed) A and B operands, all 16 rows x 64 bytes. dispatch.c offers it only
 * after the OS granted tile data (detection asks). */
#include <immintrin.h>
#include <string.h>

#include "peak_probe.h"

void mnq_peak_loop_tdpbusd__amx(long iters) {
  unsigned char cfg[64];
  memset(cfg, 0, sizeof cfg);
  cfg[0] = 1; /* palette 1 */
  for (int t = 0; t < 6; t++) {
    cfg[16 + 2 * t] = 64; /* bytes per row (colsb, little-endian uint16) */
    cfg[48 + t] = 16;     /* rows */
  }
  _tile_loadconfig(cfg);
  _tile_zero(4);
  _tile_zero(5);
  for (long i = 0; i < iters; i++) {
    _tile_dpbusd(0, 4, 5);
    _tile_dpbusd(1, 4, 5);
    _tile_dpbusd(2, 4, 5);
    _tile_dpbusd(3, 4, 5);
  }
  _tile_release();
}
