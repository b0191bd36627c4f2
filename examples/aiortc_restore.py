"""Restore the video of a WebRTC call with aiortc, in real time.

Two peer connections in one process, joined on loopback: the "sender" plays a file
(a low-bitrate recording stands in for a camera), the "receiver" wraps the incoming
video track in streamfix's RestoredVideoTrack and records what comes out. In a real
media server the receiver side is the same three lines: take the remote track, wrap
it, add the wrapped track to the outgoing connection (or a recorder).

    pip install "streamfix[webrtc]"
    python examples/aiortc_restore.py call.mp4 restored.mp4 --qp 36

WebRTC decoders export no QP map, so tell the model how compressed the call is with
--qp (a typical H.264 QP of the stream: 30-40 for low-bitrate video). Frames that
cannot be restored within --max-latency ms pass through, so the call never lags.
"""

from __future__ import annotations

import argparse
import asyncio

from aiortc import RTCPeerConnection
from aiortc.contrib.media import MediaPlayer, MediaRecorder

from streamfix.serve.aiortc_track import RestoredVideoTrack


async def main(source: str, target: str, qp: float, max_latency_ms: float) -> None:
    sender, receiver = RTCPeerConnection(), RTCPeerConnection()
    player = MediaPlayer(source)
    sender.addTrack(player.video)
    recorder = MediaRecorder(target)
    restored: list[RestoredVideoTrack] = []

    @receiver.on("track")
    def on_track(track) -> None:
        if track.kind == "video":
            # The whole integration: wrap the remote track, use the wrapped one.
            restored.append(RestoredVideoTrack(track, max_latency_ms=max_latency_ms, assume_qp=qp))
            recorder.addTrack(restored[-1])

    # Offer/answer through memory instead of a signalling server.
    await sender.setLocalDescription(await sender.createOffer())
    await receiver.setRemoteDescription(sender.localDescription)
    await receiver.setLocalDescription(await receiver.createAnswer())
    await sender.setRemoteDescription(receiver.localDescription)
    await recorder.start()
    while player.video.readyState != "ended":  # the "camera" plays the file in real time
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # the last frames are still on their way
    await recorder.stop()
    await sender.close()
    await receiver.close()
    for track in restored:
        print("streamfix:", track.stats())
        track.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a video file standing in for the camera")
    parser.add_argument("target", help="where the restored video is recorded")
    parser.add_argument("--qp", type=float, default=36.0, help="typical QP of the incoming stream (default 36)")
    parser.add_argument("--max-latency", type=float, default=150.0, help="latency budget in ms (default 150)")
    args = parser.parse_args()
    asyncio.run(main(args.source, args.target, args.qp, args.max_latency))
