"""For media servers that embed streamfix: FrameStream (a Restorer on a worker
thread), several streams through one engine, the aiortc track and the Prometheus
metrics endpoint. The top of the runtime: nothing but the CLI imports it."""
