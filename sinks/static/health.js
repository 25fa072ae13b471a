// Stream health warnings for the dashboard: pure functions of the stats pushed over the
// WebSocket (docs/websocket.md), so they are tested in the browser without a slow server.

/** Share of the camera's frames dropped (before the pipeline saw them) that warns. */
export const DROP_WARN = 0.05;
/** Capture-to-publish latency (p99, ms) that warns: a second behind is no longer "live". */
export const LATENCY_WARN_MS = 1000;

/**
 * The drop rate over the last stats interval when a previous message is given (the recent
 * state, not since the service's start), else over the stream's life.
 */
export function dropRate(stats, previous) {
  const seen = stats.frames_received || 0;
  const dropped = stats.frames_dropped || 0;
  if (previous && seen > (previous.frames_received || 0)) {
    return (dropped - (previous.frames_dropped || 0)) / (seen - previous.frames_received);
  }
  return seen ? dropped / seen : 0;
}


/**
 * Warnings of one stream's stats: [{kind: "drops" | "latency" | "counting", text}], empty when
 * all is well. `previous` is the stream's previous stats message (or null).
 */
export function healthWarnings(stats, previous = null) {
  const warnings = [];
  const rate = dropRate(stats, previous);
  if (rate > DROP_WARN) {
    warnings.push({ kind: "drops", text: `high drop rate: ${(100 * rate).toFixed(0)} % of ` +
      `frames dropped (warns above ${(100 * DROP_WARN).toFixed(0)} %)` });
  }
  const p99 = stats.latency_ms && stats.latency_ms.p99;
  if (typeof p99 === "number" && p99 > LATENCY_WARN_MS) {
    warnings.push({ kind: "latency", text: `high latency: p99 ${p99.toFixed(0)} ms from ` +
      `capture to publish (warns above ${LATENCY_WARN_MS} ms)` });
  }
  if (stats.counting_reliable === false) {
    const every = typeof stats.cadence === "number" && stats.cadence > 1
      ? `detection every ${stats.cadence} frames` : "detections missed";
    const gap = typeof stats.largest_gap_s === "number"
      ? ` (gap ${stats.largest_gap_s.toFixed(2)} s)` : "";
    const limit = typeof stats.gap_limit_s === "number"
      ? `, limit ${stats.gap_limit_s.toFixed(2)} s between detections` : "";
    warnings.push({ kind: "counting",
                    text: `counts may be inexact: ${every}${gap}${limit}` });
  }
  return warnings;
}

