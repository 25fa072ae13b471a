"""lanewatch.sinks: the types every output reads (Frame, FrameResult, errors), the Sink protocol
and its FanOut, and the outputs: reports, annotated video, count store, metrics, WebSocket hub,
live video, validation reports, and the dashboard's static files."""
