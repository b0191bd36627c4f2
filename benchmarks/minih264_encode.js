// Encode a raw I420 file with minih264 (the npm package h264-mp4-encoder, a WebAssembly
// build of lieff's minih264): a second H.264 encoder besides x264, for
// benchmarks/encoders.py. Constant QP, or a bitrate when kbps > 0.
//
//   node benchmarks/minih264_encode.js in.yuv WIDTH HEIGHT FPS QP KBPS out.mp4
//
// Needs `npm install h264-mp4-encoder` in a folder on NODE_PATH (or this one).
const fs = require("fs");
const HME = require("h264-mp4-encoder");

async function main() {
  const [input, width, height, fps, qp, kbps, output] = process.argv.slice(2);
  const w = Number(width), h = Number(height);
  const frameBytes = (w * h * 3) / 2;
  const raw = fs.readFileSync(input);
  if (raw.length % frameBytes !== 0) throw new Error(`${input}: not whole ${w}x${h} I420 frames`);
  const encoder = await HME.createH264MP4Encoder();
  encoder.width = w;
  encoder.height = h;
  encoder.frameRate = Number(fps);
  encoder.quantizationParameter = Number(qp);
  encoder.kbps = Number(kbps);
  encoder.speed = 0; // best quality: what a careful user would pick
  encoder.initialize();
  for (let off = 0; off < raw.length; off += frameBytes) {
    encoder.addFrameYuv(raw.subarray(off, off + frameBytes));
  }
  encoder.finalize();
  fs.writeFileSync(output, encoder.FS.readFile(encoder.outputFilename));
  encoder.delete();
}

main().catch((err) => { console.error(`minih264_encode: ${err.message}`); process.exit(1); });
