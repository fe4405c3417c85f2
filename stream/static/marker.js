// Reader of the frame-number marker (the same format as stream/sources/marker.py):
// one row of blocks in the top-left corner: [W][B][16 data bits][6 check bits].

export const DATA_BITS = 16;
export const CHECK_BITS = 6;
export const BLOCKS = 2 + DATA_BITS + CHECK_BITS;
export const MODULO = 1 << DATA_BITS;

export function blockSize(height) {
  return Math.max(4, Math.round(height / 30));
}

export function checkOf(n) {
  n &= MODULO - 1;
  const x = (n * 0x9e37) & 0xffff;
  return ((x >> 10) ^ (n >> 6) ^ n ^ 0x2a) & 0x3f;
}

// luma(x, y) of an ImageData (RGBA): the marker is grey, so a plain mean is enough
function sampler(img) {
  const { data, width } = img;
  return (x, y) => {
    const i = (y * width + x) * 4;
    return (data[i] + data[i + 1] + data[i + 2]) / 3;
  };
}

function decodeWith(img, luma, b) {
  const half = Math.max(1, Math.floor(b / 4));
  const yc = Math.floor(1.5 * b);
  if (yc + half >= img.height || (BLOCKS + 1) * b >= img.width) return null;
  const values = [];
  for (let k = 0; k < BLOCKS; k++) {
    const xc = Math.floor((k + 1.5) * b);
    let sum = 0;
    let count = 0;
    for (let y = yc - half; y <= yc + half; y++) {
      for (let x = xc - half; x <= xc + half; x++) {
        sum += luma(x, y);
        count++;
      }
    }
    values.push(sum / count);
  }
  const hi = values[0];
  const lo = values[1];
  if (hi - lo < 60) return null;
  const thr = (hi + lo) / 2;
  let margin = Infinity;
  for (const v of values) margin = Math.min(margin, Math.abs(v - thr));
  if (margin < (hi - lo) * 0.2) return null;
  // structure: the black pad above, below and left of the bit row must be dark too (a wrong
  // block size on a busy picture can pass the check bits by chance; this it cannot)
  const dark = thr - (hi - lo) * 0.2;
  const mean = (xc, yc0) => {
    let sum = 0;
    let count = 0;
    for (let y = Math.max(0, yc0 - half); y <= yc0 + half; y++) {
      for (let x = Math.max(0, xc - half); x <= xc + half; x++) {
        sum += luma(x, y);
        count++;
      }
    }
    return sum / count;
  };
  for (const ycPad of [Math.floor(0.5 * b), Math.floor(2.5 * b)]) {
    for (let k = -1; k <= BLOCKS; k++) {
      if (mean(Math.floor((k + 1.5) * b), ycPad) > dark) return null;
    }
  }
  if (mean(Math.floor(0.5 * b), yc) > dark) return null;
  let n = 0;
  for (let k = 2; k < 2 + DATA_BITS; k++) n = (n << 1) | (values[k] > thr ? 1 : 0);
  let c = 0;
  for (let k = 2 + DATA_BITS; k < BLOCKS; k++) c = (c << 1) | (values[k] > thr ? 1 : 0);
  return c === checkOf(n) ? n : null;
}

// Read the marker from an ImageData holding the top-left corner of a frame whose full
// height is frameHeight. Returns {n, block} or null. `hint` is the last block size found.
export function readMarker(img, frameHeight, hint) {
  const luma = sampler(img);
  const candidates = [];
  if (hint) candidates.push(hint);
  candidates.push(blockSize(frameHeight));
  for (const s of [2, 3, 4, 1.5]) candidates.push(blockSize(Math.round(frameHeight / s)) * s);
  for (let b = 3; b <= 64; b++) candidates.push(b);
  const seen = new Set();
  for (const b of candidates) {
    if (seen.has(b)) continue;
    seen.add(b);
    const n = decodeWith(img, luma, b);
    if (n !== null) return { n, block: b };
  }
  return null;
}
