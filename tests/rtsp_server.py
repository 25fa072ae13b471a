#!/usr/bin/python3
"""A real RTSP server for the tests: GStreamer's rtsp-server (Debian: gir1.2-gst-rtsp-server-1.0,
python3-gi, gstreamer1.0-plugins-good/-bad) serving an H.264 MP4 file in real time, without
re-encoding, at rtsp://127.0.0.1:PORT/stream.

Runs under Debian's /usr/bin/python3 (where python3-gi lives), not the project's Python:
    /usr/bin/python3 tests/rtsp_server.py VIDEO PORT [--once]
It prints "ready" once listening and serves until killed; with --once it exits a second after
the file has been played to its end once (a camera that then goes away), so a client sees
every frame exactly once.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def quit_after_eos(server, media, loop) -> None:
    """At the end of the file, refuse new sessions at once, and exit a second later (the
    last packets still go out)."""
    pad = media.get_element().get_by_name("pay0").get_static_pad("src")

    def probe(_pad, info):
        if info.get_event().type == Gst.EventType.EOS:
            GLib.idle_add(server.get_mount_points().remove_factory, "/stream")
            GLib.timeout_add(1000, loop.quit)
        return Gst.PadProbeReturn.OK
    pad.add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, probe)


def main() -> None:
    video, port = sys.argv[1], sys.argv[2]
    once = "--once" in sys.argv[3:]
    Gst.init(None)
    loop = GLib.MainLoop()
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( filesrc location="{video}" ! qtdemux ! h264parse ! '
        "rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    if once:
        factory.connect("media-configure",
                        lambda _f, media: quit_after_eos(server, media, loop))
    server.get_mount_points().add_factory("/stream", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr, flush=True)
        sys.exit(1)
    print("ready", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
