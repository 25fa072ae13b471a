// Drawing of the counting page: the frame, the stream's lanes over it (polygon, counting
// line, an arrow per counted direction with its key and label), in the video's own pixels.

import { COLORS } from "./chart.js";

/** Unit normal of a line pointing to its "in" side: "in" is a crossing from the left-hand
 *  side to the right-hand side walking from the first point to the second, as seen on screen
 *  (y down), so for a line drawn left to right it points down the image. */
function inNormal([[x1, y1], [x2, y2]]) {
  const dx = x2 - x1, dy = y2 - y1, length = Math.hypot(dx, dy) || 1;
  return [-dy / length, dx / length];
}

function arrow(g, from, to, width) {
  const [x1, y1] = from, [x2, y2] = to;
  const angle = Math.atan2(y2 - y1, x2 - x1), head = width * 4;
  g.beginPath();
  g.moveTo(x1, y1);
  g.lineTo(x2, y2);
  g.stroke();
  g.beginPath();
  g.moveTo(x2, y2);
  g.lineTo(x2 - head * Math.cos(angle - 0.45), y2 - head * Math.sin(angle - 0.45));
  g.lineTo(x2 - head * Math.cos(angle + 0.45), y2 - head * Math.sin(angle + 0.45));
  g.closePath();
  g.fill();
}

function label(g, text, x, y, color) {
  const w = g.measureText(text).width, h = parseInt(g.font, 10);
  g.fillStyle = "rgba(0, 0, 0, 0.65)";
  g.fillRect(x - 3, y - h, w + 6, h + 5);
  g.fillStyle = color;
  g.fillText(text, x, y);
}

/** The colour of lane `index` (the same in the key map as on the video). */
export function laneColor(index) {
  return COLORS[index % COLORS.length];
}

/** Draw `bitmap` (or black) and the lanes on the canvas; `flash` names a lane just counted. */
export function drawFrame(canvas, meta, bitmap, flash) {
  if (canvas.width !== meta.width || canvas.height !== meta.height) {
    canvas.width = meta.width;
    canvas.height = meta.height;
  }
  const g = canvas.getContext("2d");
  g.fillStyle = "#000";
  g.fillRect(0, 0, canvas.width, canvas.height);
  if (bitmap) g.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const unit = Math.max(meta.width / 1280, 0.5);  // line widths and text at any frame size
  g.font = `bold ${Math.round(14 * unit)}px system-ui, sans-serif`;
  g.lineJoin = "round";
  meta.lanes.forEach((lane, i) => {
    const color = laneColor(i);
    if (lane.polygon) {
      g.strokeStyle = color + "88";
      g.lineWidth = unit;
      g.beginPath();
      lane.polygon.forEach(([x, y], k) => (k ? g.lineTo(x, y) : g.moveTo(x, y)));
      g.closePath();
      g.stroke();
    }
    if (!lane.line) {
      const [x, y] = lane.polygon[0];
      label(g, `${lane.name} (no counting line)`, x + 4, y - 4, color);
      return;
    }
    const [[x1, y1], [x2, y2]] = lane.line;
    g.strokeStyle = lane.name === flash ? "#ffffff" : color;
    g.lineWidth = (lane.name === flash ? 5 : 3) * unit;
    g.beginPath();
    g.moveTo(x1, y1);
    g.lineTo(x2, y2);
    g.stroke();
    // An arrow per counted direction, across the line, with its key and label.
    const [nx, ny] = inNormal(lane.line);
    const keys = meta.keys.filter((k) => k.lane === lane.name);
    const reach = 26 * unit;
    keys.forEach((k, j) => {
      const t = (j + 1) / (keys.length + 1);
      const mx = x1 + (x2 - x1) * t, my = y1 + (y2 - y1) * t;
      const s = k.side === "in" ? 1 : -1;
      g.strokeStyle = g.fillStyle = color;
      g.lineWidth = 2 * unit;
      arrow(g, [mx - s * nx * reach, my - s * ny * reach], [mx + s * nx * reach, my + s * ny * reach],
            2 * unit);
      const text = `${k.key ? `[${k.key}] ` : ""}${k.direction}`;
      label(g, text, mx + s * nx * reach + 6 * unit, my + s * ny * reach + 14 * unit, color);
    });
    label(g, lane.name, Math.min(x1, x2), Math.min(y1, y2) - 8 * unit, color);
  });
}
