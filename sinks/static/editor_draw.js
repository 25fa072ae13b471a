// Drawing helpers of the lane editor's canvas.

const ARROW = 26;  // canvas pixels: length of a counting line's in/out arrow

/** The in/out arrow across a counting line, at its middle: crossing from the line's left-hand
 * side to its right-hand side (looking from its first point to its second) is "in". The arrow
 * points to the "in" side, labelled with in_label; out_label is at its tail; a direction the
 * lane does not count is greyed. `s`: canvas pixels per frame pixel. */
export function drawArrow(g, s, lane, [[x1, y1], [x2, y2]], chosen) {
  const length = Math.hypot(x2 - x1, y2 - y1) || 1;
  const [nx, ny] = [-(y2 - y1) / length, (x2 - x1) / length];  // right-hand normal (y down)
  const [mx, my] = [(x1 + x2) / 2 * s, (y1 + y2) / 2 * s];
  const [tx, ty] = [mx + nx * ARROW, my + ny * ARROW];  // tip, on the "in" side
  const [bx, by] = [mx - nx * ARROW, my - ny * ARROW];  // tail, on the "out" side
  g.save();
  g.lineWidth = chosen ? 2.5 : 1.5;
  g.strokeStyle = g.fillStyle = "#ffffff";
  g.beginPath();
  g.moveTo(bx, by);
  g.lineTo(tx, ty);
  g.stroke();
  const head = 8;
  g.beginPath();
  g.moveTo(tx, ty);
  g.lineTo(tx - nx * head + ny * head * 0.6, ty - ny * head - nx * head * 0.6);
  g.lineTo(tx - nx * head - ny * head * 0.6, ty - ny * head + nx * head * 0.6);
  g.closePath();
  g.fill();
  g.font = "11px system-ui, sans-serif";
  g.textAlign = "center";
  g.textBaseline = "middle";
  const counted = (d) => lane.direction === "both" || lane.direction === d;
  g.fillStyle = counted("in") ? "#ffffff" : "#8b96a5";
  g.fillText(`in: ${lane.in_label || "in"}`, tx + nx * 12, ty + ny * 12);
  g.fillStyle = counted("out") ? "#ffffff" : "#8b96a5";
  g.fillText(`out: ${lane.out_label || "out"}`, bx - nx * 12, by - ny * 12);
  g.restore();
}
